//! C tasks as fibers: stackful coroutines (corosensei) driven by ordinary
//! spindle tasks.
//!
//! A [`Fiber`] is the future of a C task. Each poll resumes the coroutine
//! with the poll's `Context`; the C code runs on the fiber's own stack
//! until it calls a blocking spindle function, which goes through
//! [`block_on`]: it polls the matching Rust future with that `Context`,
//! and on `Pending` suspends the fiber back to the poll, which returns
//! `Pending` too. When the future's waker fires, the task is polled again —
//! possibly on another worker — and resumes the fiber where it stopped.
//!
//! # Thread-locals
//! A fiber may suspend on one worker and resume on another. Code on the
//! fiber stack must therefore not keep the address of a thread-local across
//! a suspension: the compiler may compute it once in a function that calls
//! `suspend`. [`block_on`] polls through [`poll_once`], which is never
//! inlined, so every thread-local the runtime reads during a poll is looked
//! up afresh on the thread that runs that poll; the fiber's own state is
//! reached through [`CURRENT`], read by the never-inlined [`current`].
//!
//! # Ending
//! A fiber dropped while suspended (its task aborted) is unwound by
//! corosensei: the suspension it is in returns by unwinding. The C ABI's
//! export boundary turns that into `SPINDLE_ECANCELED` for the C code, and
//! every later blocking call does the same, until the C function returns.

use super::stack::{PooledStack, RedZone, StackPool};
use crate::error::Error;
use crate::runtime::context;
use crate::task::raw::RawTask;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::marker::PhantomPinned;
use std::pin::{pin, Pin};
use std::ptr;
use std::sync::Arc;
use std::task::{Context, Poll};

thread_local! {
    /// The fiber being resumed on this thread, if any.
    static CURRENT: Cell<*const FiberState> = const { Cell::new(ptr::null()) };
}

/// What a running fiber needs: the `Context` of the poll that resumed it,
/// its yielder, the stack pool its children take stacks from. Lives inside
/// its [`Fiber`], which does not move once polled (it is `!Unpin`); the
/// fiber reaches it through [`CURRENT`], set by every resume.
struct FiberState {
    /// The `Context` of the poll in progress (valid only during it).
    cx: Cell<*mut Context<'static>>,
    /// The coroutine's yielder, set when the fiber starts.
    yielder: Cell<*const Yielder<(), ()>>,
    /// Also what keeps the pool of this fiber's own stack alive (the stack
    /// does not count itself, see `StackPool::take`).
    pool: Arc<StackPool>,
    /// The fiber is being destroyed while suspended: every blocking call
    /// fails with a cancellation until the C function returns.
    doomed: Cell<bool>,
    /// The last cancellation a blocking call returned, to end the task with
    /// (its message kept) when the C function returns `SPINDLE_ECANCELED`.
    last_cancel: RefCell<Option<Error>>,
}

/// The future of a C task: drives its fiber.
pub(crate) struct Fiber {
    coroutine: Coroutine<(), (), crate::Result<usize>, PooledStack>,
    /// The canary of the coroutine's stack (declared after it: dropped
    /// first is the coroutine, but the probe is never read after that).
    red_zone: RedZone,
    /// Declared after the coroutine: a coroutine dropped while suspended
    /// unwinds first, and its frames may still read the state; and its
    /// stack goes back to the pool that `state.pool` keeps alive.
    state: FiberState,
    /// A stack overflow was found: the fiber must not run again.
    overflowed: bool,
    /// The fiber reaches `state` by address during a resume: once polled,
    /// the `Fiber` stays where it is.
    _pinned: PhantomPinned,
}

// SAFETY: a fiber's stack holds the C task's frames, `block_on`'s frames
// and the futures it polls. Those futures are `Send` (bound on `block_on`)
// and the C frames follow the documented fiber rules (no thread-local or
// thread-bound lock kept across a blocking call). `state` is only touched
// by the thread currently polling the fiber.
unsafe impl Send for Fiber {}

impl Fiber {
    /// A fiber that will run `body` on a stack from `pool`. The body is
    /// moved onto the fiber's stack (no allocation of its own).
    pub(crate) fn new<B>(pool: &Arc<StackPool>, body: B) -> io::Result<Fiber>
    where
        B: FnOnce() -> crate::Result<usize> + Send + 'static,
    {
        // SAFETY: the stack lives in `coroutine`, which is dropped before
        // `state` and the `pool` clone it keeps (field order).
        let stack = unsafe { pool.take() }?;
        let red_zone = stack.red_zone();
        let coroutine = Coroutine::with_stack(stack, move |yielder: &Yielder<(), ()>, ()| {
            // The first resume set CURRENT to this fiber's state.
            let state = current().expect("a fiber starts inside its resume");
            state.yielder.set(yielder);
            body()
        });
        Ok(Fiber {
            coroutine,
            red_zone,
            state: FiberState {
                cx: Cell::new(ptr::null_mut()),
                yielder: Cell::new(ptr::null()),
                pool: pool.clone(),
                doomed: Cell::new(false),
                last_cancel: RefCell::new(None),
            },
            overflowed: false,
            _pinned: PhantomPinned,
        })
    }
}

impl Future for Fiber {
    type Output = crate::Result<usize>;

    /// Inlined into the task's poll for the reason `ffi::boundary` is: one
    /// frame fewer to return through after each switch (a yield between two
    /// C tasks: median 99.8 -> 76.4 ns with both, one worker).
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<crate::Result<usize>> {
        // SAFETY: nothing is moved out of the fiber; its state's address,
        // published in CURRENT below, stays valid until it is dropped.
        let this = unsafe { self.get_unchecked_mut() };
        if this.overflowed {
            return Poll::Ready(Err(crate::Error::runtime("the fiber overflowed its stack")));
        }
        // The context is only used during this resume; erase its lifetime
        // to hand it to the fiber.
        this.state
            .cx
            .set((cx as *mut Context<'_>).cast::<Context<'static>>());
        super::overflow::ensure_signal_stack();
        let previous = CURRENT.with(|c| c.replace(&this.state));
        let result = this.coroutine.resume(());
        CURRENT.with(|c| c.set(previous));
        this.state.cx.set(ptr::null_mut());
        if this.red_zone.overflowed() {
            this.overflowed = true;
            stack_overflow();
        }
        match result {
            CoroutineResult::Yield(()) => Poll::Pending,
            CoroutineResult::Return(result) => Poll::Ready(result),
        }
    }
}

impl Drop for Fiber {
    fn drop(&mut self) {
        if self.coroutine.started() && !self.coroutine.done() {
            // Destroyed while suspended: corosensei unwinds the fiber from
            // its suspension. Mark it doomed so the export boundary turns
            // the unwinding into a cancellation and later blocking calls
            // fail at once.
            self.state.doomed.set(true);
            let previous = CURRENT.with(|c| c.replace(&self.state));
            self.coroutine.force_unwind();
            CURRENT.with(|c| c.set(previous));
        }
    }
}

/// A fiber ran past its stack into its neighbour's: memory is corrupt, so
/// say so and stop the process.
#[cold]
fn stack_overflow() -> ! {
    eprint!("{}", super::overflow::MESSAGE);
    std::process::abort();
}

/// The fiber running on this thread, if any.
#[inline(never)]
fn current() -> Option<&'static FiberState> {
    let state = CURRENT.with(Cell::get);
    // SAFETY: a non-null CURRENT points to the state of the fiber being
    // resumed on this thread, alive for the whole resume; the caller runs
    // on that fiber.
    (!state.is_null()).then(|| unsafe { &*state })
}

/// Whether the caller runs on a fiber.
pub(crate) fn in_fiber() -> bool {
    current().is_some()
}

/// Whether the caller runs on a fiber that is being destroyed.
pub(crate) fn is_doomed() -> bool {
    current().is_some_and(|state| state.doomed.get())
}

/// Calls `f` with the stack pool of the fiber running on this thread
/// (`None` off a fiber).
pub(crate) fn with_current_pool<R>(f: impl FnOnce(&Arc<StackPool>) -> R) -> Option<R> {
    current().map(|state| f(&state.pool))
}

/// The task running the current fiber.
pub(crate) fn current_task() -> Option<crate::Task<usize>> {
    current()?;
    let task = crate::current_task().ok().flatten()?;
    // SAFETY: a fiber is only ever the whole future of its task (see
    // `spawn_c_task`), and a fiber's output is `Result<usize>`.
    Some(unsafe { crate::Task::from_any(task) })
}

/// Records the cancellation a blocking call is returning to C.
pub(crate) fn note_cancel(error: &Error) {
    if let Some(state) = current() {
        *state.last_cancel.borrow_mut() = Some(error.clone());
    }
}

/// The cancellation to end the task with when it returns "cancelled".
pub(crate) fn take_cancel() -> Error {
    current()
        .and_then(|state| state.last_cancel.borrow_mut().take())
        .unwrap_or_else(|| Error::cancelled(None))
}

/// Runs `future` to completion from a fiber: polls it, and suspends the
/// fiber while it is pending. `None` when not called from a fiber.
pub(crate) fn block_on<F: Future + Send>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    loop {
        // Looked up afresh after every suspension: the fiber may now run
        // on another thread, with another `Context`.
        let state = current()?;
        if state.doomed.get() {
            // Unwinding to the export boundary, which reports a
            // cancellation; the future is dropped on the way.
            std::panic::resume_unwind(Box::new(Doomed));
        }
        // SAFETY: `cx` was set by the poll that is resuming this fiber and
        // stays valid until the fiber suspends.
        let cx = unsafe { &mut *state.cx.get() };
        if let Poll::Ready(output) = poll_once(future.as_mut(), cx) {
            return Some(output);
        }
        // SAFETY: the yielder lives on this fiber's stack, set at its start.
        let yielder = unsafe { &*state.yielder.get() };
        yielder.suspend(());
    }
}

/// A yield of the C task on this fiber (`spindle_yield`, `spindle_sleep(0)`)
/// made in place, without suspending, when its worker would run this task
/// next anyway (see `scheduler::yield_in_place`): returns the yield's
/// outcome then (a cancellation requested meanwhile is delivered, as by the
/// next poll), `None` when the yield must go through the queue or the
/// caller is not on a live fiber.
///
/// Only C tasks yield in place: a C task's fiber polls one future at a
/// time, so nothing but the fiber sees whether a yield suspended. In Rust a
/// task may poll several futures at once (`join!`, `select!`, a timeout
/// scope whose deadline had passed at entry, which expires when its block
/// next suspends), and they order themselves by those suspensions.
#[inline(never)]
pub(crate) fn yield_in_place() -> Option<crate::Result<()>> {
    // The scheduler's question first: when the answer is no, a yield that
    // switches pays only for it.
    if !crate::scheduler::yield_in_place() || current()?.doomed.get() {
        return None;
    }
    Some(match context::take_current_cancel() {
        Some(cancel) => Err(cancel),
        None => Ok(()),
    })
}

/// Before the C task on this fiber waits for `awaited` (`spindle_task_join`):
/// when its worker would run `awaited` next anyway (the one task queued
/// there, nothing due in between), runs that step now, nested, instead of
/// suspending first (see `scheduler::run_awaited_in_place`). If `awaited`
/// completed in it, this task then goes on as if woken by that completion:
/// in place when nothing else is queued, else behind what `awaited`
/// queued. Either way the wait that follows finds `awaited` done and ends
/// at once, as it would on being woken (a cancellation requested
/// meanwhile stays pending for the next blocking call, as it would then).
///
/// C tasks only, as for [`yield_in_place`].
#[inline(never)]
pub(crate) fn run_awaited_in_place(awaited: RawTask) {
    let ran_to_completion = !awaited.header().state.load().is_complete()
        && !context::current_cancel_pending()
        && current().is_some_and(|state| !state.doomed.get())
        && crate::scheduler::run_awaited_in_place(awaited)
        && awaited.header().state.load().is_complete();
    if ran_to_completion && !crate::scheduler::yield_in_place() {
        block_on(BehindQueued(false));
    }
}

/// Goes once to the back of the queue, as a task woken by another's
/// completion does; unlike `yield_now`, not a cancellation point.
struct BehindQueued(bool);

impl Future for BehindQueued {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Polls `future` once from the current fiber, without suspending (a
/// scope's entry). `None` when not called from a fiber.
pub(crate) fn poll_here<F: Future>(future: Pin<&mut F>) -> Option<Poll<F::Output>> {
    let state = current()?;
    // SAFETY: `cx` is the context of the poll resuming this fiber.
    let cx = unsafe { &mut *state.cx.get() };
    Some(poll_once(future, cx))
}

/// The unwinding payload of a blocking call in a doomed fiber.
struct Doomed;

/// One poll, never inlined into a loop that suspends (see the module docs).
#[inline(never)]
fn poll_once<F: Future>(future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
    future.poll(cx)
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_fiber_blocks_on_futures_and_migrates_freely() {
        let pool = StackPool::new(64 * 1024);
        let started = Instant::now();
        let total = crate::run(async move {
            let fibers: Vec<_> = (0..8)
                .map(|i| {
                    let fiber = Fiber::new(&pool, move || {
                        assert!(in_fiber());
                        for _ in 0..3 {
                            block_on(crate::time::sleep(Duration::from_millis(30)))
                                .expect("in a fiber")
                                .expect("not cancelled");
                        }
                        Ok(i)
                    })
                    .unwrap();
                    crate::spawn(fiber)
                })
                .collect();
            let mut total = 0;
            for fiber in fibers {
                total += fiber.await?;
            }
            crate::Ok(total)
        })
        .unwrap();
        assert_eq!(total, (0..8).sum::<usize>());
        // Eight fibers sleeping 3 x 30 ms each ran concurrently.
        assert!(started.elapsed() < Duration::from_millis(90 * 8 / 2));
        assert!(!in_fiber());
        assert!(block_on(async {}).is_none(), "not in a fiber");
    }

    #[test]
    fn a_cancelled_fiber_sees_the_cancellation_at_its_next_blocking_call() {
        let pool = StackPool::new(64 * 1024);
        let outcome = crate::run(async move {
            let fiber = Fiber::new(&pool, || {
                let first = block_on(crate::time::sleep(Duration::from_secs(10))).unwrap();
                // Cleanup can still block.
                let second = block_on(crate::time::sleep(Duration::from_millis(1))).unwrap();
                Ok(usize::from(first.is_err_and(|e| e.is_cancelled())) * 10
                    + usize::from(second.is_ok()))
            })
            .unwrap();
            let task = crate::spawn(fiber);
            crate::time::sleep(Duration::from_millis(20)).await?;
            task.cancel();
            task.await
        })
        .unwrap();
        assert_eq!(outcome, 11);
    }
}
