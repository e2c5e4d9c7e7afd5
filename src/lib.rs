//! # spindle
//!
//! A multi-threaded, work-stealing task runtime with Python asyncio's task
//! model: tasks with names and done callbacks, cancellation that is a
//! request delivered at the next await point (so cleanup can still await),
//! settable futures ([`Promise`]), task groups, gather/wait/as_completed,
//! timeouts, shield, synchronization primitives and queues, sockets and fd
//! readiness ([`net`], [`io`]) and [`to_thread`] for blocking calls.
//!
//! ```
//! use std::time::Instant;
//!
//! let result = spindle::run(async {
//!     // Tasks run concurrently on every core.
//!     let tasks: Vec<_> = (0..4u64)
//!         .map(|i| spindle::task::Builder::new()
//!             .name(format!("sum-{i}"))
//!             .spawn(async move { spindle::Ok((0..1_000u64).map(|x| x * i).sum::<u64>()) }))
//!         .collect();
//!     let mut total = 0;
//!     for task in tasks {
//!         total += task.await?;
//!     }
//!     spindle::Ok(total)
//! });
//! assert_eq!(result.unwrap(), 499_500 * 6);
//! ```
//!
//! Cancellation follows asyncio: [`AnyTask::cancel`] is a request; the
//! task's current or next runtime await point returns an error for which
//! [`Error::is_cancelled`] holds, once; the task may clean up (and await)
//! before it ends, and it counts as cancelled only if it ends with that
//! error.
//!
//! The mapping from asyncio to spindle is in `docs/semantics.md`.

#![warn(missing_docs)]

mod error;
mod ffi;
pub mod flow;
mod group;
pub mod io;
mod loom;
pub mod net;
mod prefetch;
pub mod queue;
pub mod runtime;
mod scheduler;
pub mod sync;
pub mod task;
pub mod time;
#[cfg(spindle_helgrind)]
mod valgrind;

pub use error::{Error, ErrorGroup, ErrorKind, Ok, Result};
pub use flow::{as_completed, gather, shield, wait, ReturnWhen};
pub use group::{task_group, GroupFuture, TaskGroup};
pub use io::to_thread;
pub use queue::{LifoQueue, PriorityQueue, Queue, QueueError};
pub use runtime::{run, Builder, Handle, Runtime, Unhandled, UnhandledKind};
pub use sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, Semaphore};
pub use task::{
    all_tasks, cancellable, current_task, spawn, yield_now, AnyTask, Promise, Task, TaskId,
    TaskState,
};
pub use time::{sleep, sleep_until, timeout, timeout_at, wait_for, Timeout};
