//! [`to_thread`]: blocking functions run on a bounded pool of threads, so
//! they never stall a worker (asyncio's `to_thread` and its default
//! executor).
//!
//! The pool starts a thread when a function is queued and no idle thread
//! will take it, up to its limit (default: asyncio's `min(32, cores + 4)`);
//! beyond it, functions wait in a FIFO queue. A thread idle for the
//! keep-alive period (10 s by default) exits.
//!
//! Cancellation follows asyncio's `run_in_executor`: cancelling the awaiting
//! task returns the cancellation to it at once; a function still queued is
//! then never started, one already running runs to its end and its result
//! is dropped. At shutdown, queued functions are dropped and the runtime
//! waits for running ones up to its shutdown timeout, then leaves them to
//! finish on their own threads.

use crate::error::{Error, Result};
use crate::loom::{lock, wait_timeout, Condvar, Mutex};
use crate::runtime::context;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The pool whose thread this is (null on other threads): a runtime
    /// dropped from one of its own blocking threads does not wait for it.
    static OWN_POOL: std::cell::Cell<*const BlockingPool> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// The threads that run blocking functions for one runtime.
pub(crate) struct BlockingPool {
    state: Mutex<PoolState>,
    /// Signalled when a job is queued for an idle thread, or at shutdown.
    job_ready: Condvar,
    /// Signalled when the last thread exits.
    all_exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    shut_down: bool,
    spawned: usize,
}

impl BlockingPool {
    /// The default thread limit: asyncio's default executor's.
    pub(crate) fn default_max_threads() -> usize {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        (cores + 4).min(32)
    }

    pub(crate) fn new(max_threads: usize, keep_alive: Duration) -> BlockingPool {
        BlockingPool {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                shut_down: false,
                spawned: 0,
            }),
            job_ready: Condvar::new(),
            all_exited: Condvar::new(),
            max_threads,
            keep_alive,
        }
    }

    /// Queues `job`; starts a thread for it if no idle thread will take it.
    fn submit(self: &Arc<Self>, job: Job) -> Result<()> {
        let mut state = lock(&self.state);
        if state.shut_down {
            return Err(Error::runtime("the runtime has shut down"));
        }
        state.queue.push_back(job);
        if state.idle >= state.queue.len() {
            self.job_ready.notify_one();
            return Ok(());
        }
        if state.threads >= self.max_threads {
            // A busy thread takes it when it is done.
            return Ok(());
        }
        let name = format!("spindle-blocking-{}", state.spawned);
        let pool = self.clone();
        match thread::Builder::new()
            .name(name)
            .spawn(move || pool.thread_main())
        {
            Ok(_) => {
                state.threads += 1;
                state.spawned += 1;
                Ok(())
            }
            Err(e) if state.threads == 0 => {
                // Nobody would ever run it: give the job back as an error.
                let job = state.queue.pop_back();
                drop(state);
                drop(job);
                Err(Error::runtime(format!(
                    "could not start a blocking thread: {e}"
                )))
            }
            // Existing threads work through the queue.
            Err(_) => Ok(()),
        }
    }

    fn thread_main(&self) {
        OWN_POOL.with(|own| own.set(self));
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job();
                state = lock(&self.state);
                continue;
            }
            if state.shut_down {
                break;
            }
            state.idle += 1;
            let (next, timed_out) = wait_timeout(&self.job_ready, state, self.keep_alive);
            state = next;
            state.idle -= 1;
            if timed_out && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
        if state.threads == 0 {
            self.all_exited.notify_all();
        }
    }

    /// Drops the queued functions, then waits until `deadline` for the
    /// running ones (not at all if `deadline` is `None`). Returns how many
    /// threads were still running functions when it gave up.
    pub(crate) fn shut_down(&self, deadline: Option<Instant>) -> usize {
        let mut state = lock(&self.state);
        state.shut_down = true;
        let queued = std::mem::take(&mut state.queue);
        self.job_ready.notify_all();
        drop(state);
        // Dropping a job tells its awaiter (outside the lock).
        drop(queued);
        // Shut down from one of its own threads: that one cannot be waited for.
        let this_thread = usize::from(OWN_POOL.with(|own| std::ptr::eq(own.get(), self)));
        let mut state = lock(&self.state);
        let Some(deadline) = deadline else {
            return state.threads;
        };
        while state.threads > this_thread {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = wait_timeout(&self.all_exited, state, deadline - now).0;
        }
        state.threads
    }
}

/// Runs a blocking function on the runtime's blocking pool and returns its
/// value (asyncio's `to_thread`). Nothing starts until the returned future
/// is first polled.
///
/// A cancellation point: cancelling the awaiting task returns the
/// cancellation at once; a function not started yet never starts, one
/// already running runs to its end on its thread (like asyncio, a thread
/// cannot be interrupted) and its value is dropped. A panic in the function
/// becomes an error of kind [`Panicked`](crate::ErrorKind::Panicked).
///
/// ```
/// spindle::run(async {
///     let bytes = spindle::to_thread(|| std::fs::read("Cargo.toml")).await??;
///     assert!(!bytes.is_empty());
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn to_thread<F, T>(function: F) -> ToThread<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(Slot::new());
    let completer = Completer { slot: slot.clone() };
    ToThread {
        job: Some(Box::new(move || completer.run(function))),
        slot,
    }
}

/// The future of [`to_thread`].
#[must_use = "futures do nothing unless awaited"]
pub struct ToThread<T> {
    /// The job, until it is handed to the pool on the first poll.
    job: Option<Job>,
    slot: Arc<Slot<T>>,
}

impl<T> fmt::Debug for ToThread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToThread")
            .field("submitted", &self.job.is_none())
            .finish_non_exhaustive()
    }
}

impl<T> Unpin for ToThread<T> {}

impl<T: Send + 'static> Future for ToThread<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        if let Some(cancel) = context::take_current_cancel() {
            self.slot.abandon();
            self.job = None;
            return Poll::Ready(Err(cancel));
        }
        if let Some(job) = self.job.take() {
            let Some(handle) = context::current_handle() else {
                return Poll::Ready(Err(Error::runtime(
                    "to_thread needs a running spindle runtime",
                )));
            };
            if let Err(e) = handle.shared.blocking.submit(job) {
                return Poll::Ready(Err(e));
            }
        }
        let mut outcome = lock(&self.slot.outcome);
        match outcome.result.take() {
            Some(Ok(value)) => Poll::Ready(Ok(value)),
            Some(Err(payload)) => Poll::Ready(Err(Error::panicked(&*payload))),
            None if outcome.finished => Poll::Ready(Err(Error::runtime(
                "the runtime shut down before the blocking function ran",
            ))),
            None => {
                outcome.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for ToThread<T> {
    fn drop(&mut self) {
        // Dropped before its function started (an abort, a dropped select
        // arm): it never starts.
        self.slot.abandon();
    }
}

/// The function is queued.
const QUEUED: u8 = 0;
/// A pool thread runs it.
const RUNNING: u8 = 1;
/// The awaiter is gone: do not start it.
const ABANDONED: u8 = 2;

/// Where a blocking function's result travels to its awaiter.
struct Slot<T> {
    stage: AtomicU8,
    outcome: Mutex<Outcome<T>>,
}

struct Outcome<T> {
    result: Option<thread::Result<T>>,
    /// The job ended (ran, or was dropped unrun at shutdown).
    finished: bool,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn new() -> Slot<T> {
        Slot {
            stage: AtomicU8::new(QUEUED),
            outcome: Mutex::new(Outcome {
                result: None,
                finished: false,
                waker: None,
            }),
        }
    }

    /// Marks the function not to be started, if it has not started yet.
    fn abandon(&self) {
        let _ = self
            .stage
            .compare_exchange(QUEUED, ABANDONED, AcqRel, Acquire);
    }

    fn finish(&self, result: Option<thread::Result<T>>) {
        let waker = {
            let mut outcome = lock(&self.outcome);
            outcome.result = result;
            outcome.finished = true;
            outcome.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The pool's side of a [`Slot`]: runs the function unless abandoned, and
/// tells the awaiter even if it is dropped without running.
struct Completer<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Completer<T> {
    fn run(self, function: impl FnOnce() -> T) {
        if self
            .slot
            .stage
            .compare_exchange(QUEUED, RUNNING, AcqRel, Acquire)
            .is_err()
        {
            return;
        }
        let result = catch_unwind(AssertUnwindSafe(function));
        self.slot.finish(Some(result));
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        // After `run` finished this only sets `finished` again; unrun (at
        // shutdown, or abandoned) it tells the awaiter there is no value.
        let mut outcome = lock(&self.slot.outcome);
        if !outcome.finished {
            outcome.finished = true;
            if let Some(waker) = outcome.waker.take() {
                drop(outcome);
                waker.wake();
            }
        }
    }
}
