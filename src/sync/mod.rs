//! Synchronization primitives with asyncio's semantics: [`Semaphore`],
//! [`BoundedSemaphore`], [`Lock`], [`Event`], [`Condition`], [`Barrier`].
//! Usable from tasks on any worker; every wait is a cancellation point;
//! waiters are served first come, first served; a cancelled waiter loses
//! nothing and, if it had already been woken, hands what it was given to
//! the next waiter.

mod barrier;
mod condition;
mod event;
mod semaphore;
mod waitlist;

pub use barrier::{Barrier, BarrierWait, BrokenBarrierError};
pub use condition::{Condition, ConditionAcquire, ConditionGuard, ConditionWait};
pub use event::{Event, EventWait};
pub use semaphore::{Acquire, ArcLock, BoundedSemaphore, Lock, Permit, Semaphore};
pub(crate) use waitlist::WaitList;
