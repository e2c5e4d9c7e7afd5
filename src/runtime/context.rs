//! The per-thread context: which worker this thread is, which task it is
//! polling, the task's cooperative budget, and a runtime entered with
//! [`Handle::enter`](super::Handle::enter).
//!
//! Every access goes through a small function here, so that the C ABI's
//! fibers (which may resume on another thread) can later re-read the
//! thread-locals after each suspension instead of caching their address.

use super::Handle;
use crate::error::Error;
use crate::scheduler::WorkerCore;
use crate::task::raw::{Header, RawTask};
use std::cell::{Cell, RefCell};
use std::ptr;

struct ThreadContext {
    /// The worker loop running on this thread, if it is a worker.
    worker: Cell<*const WorkerCore>,
    /// The task being polled on this thread.
    task: Cell<*const Header>,
    /// Await points left before the current task must yield.
    budget: Cell<u32>,
    /// A runtime entered from a non-worker thread.
    entered: RefCell<Option<Handle>>,
}

thread_local! {
    static CONTEXT: ThreadContext = const {
        ThreadContext {
            worker: Cell::new(ptr::null()),
            task: Cell::new(ptr::null()),
            budget: Cell::new(u32::MAX),
            entered: RefCell::new(None),
        }
    };
}

/// Await points a task may pass in one poll before it is made to yield.
pub(crate) const TASK_BUDGET: u32 = 128;

/// Runs `f` with the worker of this thread, if any.
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&WorkerCore>) -> R) -> R {
    let worker = CONTEXT.with(|c| c.worker.get());
    // SAFETY: the pointer is set by `WorkerGuard` for the lifetime of the
    // worker loop, which outlives every call made from inside it, and is
    // cleared before the core is dropped.
    f(unsafe { worker.as_ref() })
}

/// Runs `f` with this thread's runtime and, on a worker, the worker's index,
/// without taking a reference; `None` outside a runtime.
pub(crate) fn with_runtime<R>(
    f: impl FnOnce(&std::sync::Arc<crate::scheduler::Shared>, Option<usize>) -> R,
) -> Option<R> {
    let worker = CONTEXT.with(|c| c.worker.get());
    // SAFETY: as in `with_worker`: the pointer is valid while it is set.
    if let Some(worker) = unsafe { worker.as_ref() } {
        return Some(f(worker.shared(), Some(worker.index())));
    }
    current_handle().map(|handle| f(&handle.shared, None))
}

/// The index of this thread's worker if it is a worker of `runtime`.
pub(crate) fn worker_index_in(runtime: &crate::scheduler::Shared) -> Option<usize> {
    with_worker(|worker| {
        worker
            .filter(|worker| ptr::eq(&**worker.shared(), runtime))
            .map(|worker| worker.index())
    })
}

/// Marks this thread as running `core` until the guard drops.
pub(crate) fn enter_worker(core: &WorkerCore) -> WorkerGuard {
    CONTEXT.with(|c| c.worker.set(core));
    WorkerGuard(())
}

pub(crate) struct WorkerGuard(());

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.worker.set(ptr::null()));
    }
}

/// Marks `task` as the task being polled (with a fresh budget) until the
/// guard drops.
pub(crate) fn enter_task(task: RawTask) -> TaskGuard {
    let (previous_task, previous_budget) = CONTEXT.with(|c| {
        let saved = (c.task.get(), c.budget.get());
        c.task.set(task.as_ptr());
        c.budget.set(TASK_BUDGET);
        saved
    });
    TaskGuard {
        previous_task,
        previous_budget,
    }
}

/// Gives the current task a fresh budget, as a new poll would (the task
/// yielded in place, see `scheduler::yield_in_place`).
pub(crate) fn renew_budget() {
    CONTEXT.with(|c| c.budget.set(TASK_BUDGET));
}

/// Marks this thread as polling no task until the guard drops (done
/// callbacks run this way).
pub(crate) fn leave_task() -> TaskGuard {
    let (previous_task, previous_budget) =
        CONTEXT.with(|c| (c.task.replace(ptr::null()), c.budget.get()));
    TaskGuard {
        previous_task,
        previous_budget,
    }
}

pub(crate) struct TaskGuard {
    previous_task: *const Header,
    previous_budget: u32,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| {
            c.task.set(self.previous_task);
            c.budget.set(self.previous_budget);
        });
    }
}

#[inline(never)]
pub(crate) fn current_task_ptr() -> Option<*const Header> {
    let task = CONTEXT.with(|c| c.task.get());
    (!task.is_null()).then_some(task)
}

/// The current task, without taking a reference (the task is alive while
/// it is being polled).
pub(crate) fn current_task_raw() -> Option<RawTask> {
    // SAFETY: a non-null current task is being polled on this thread, and its
    // worker holds a reference for the duration of the poll.
    current_task_ptr().map(|p| unsafe { RawTask::from_ptr(p) })
}

/// Whether the current task has a cancel request to deliver (one atomic
/// load; [`take_current_cancel`] delivers it).
pub(crate) fn current_cancel_pending() -> bool {
    current_task_raw().is_some_and(|raw| raw.header().state.load().is_cancel_pending())
}

/// Delivers the current task's pending cancel request, if any: the caller is
/// an await point that will return it.
pub(crate) fn take_current_cancel() -> Option<Error> {
    current_task_raw().and_then(|raw| raw.take_cancel())
}

/// Consumes one unit of the current task's budget; `false` when it is spent.
#[inline(never)]
pub(crate) fn consume_budget() -> bool {
    CONTEXT.with(|c| {
        let left = c.budget.get();
        if left == 0 {
            false
        } else {
            c.budget.set(left - 1);
            true
        }
    })
}

/// The runtime of this thread: its worker's, or the one entered.
pub(crate) fn current_handle() -> Option<Handle> {
    if let Some(handle) = with_worker(|w| w.map(|w| w.handle())) {
        return Some(handle);
    }
    CONTEXT.with(|c| c.entered.borrow().clone())
}

/// Enters `handle` on this thread until the guard drops.
pub(crate) fn enter_runtime(handle: Handle) -> EnterGuard {
    let previous = CONTEXT.with(|c| c.entered.replace(Some(handle)));
    EnterGuard { previous }
}

/// Keeps a runtime entered on this thread; see [`Handle::enter`].
#[must_use = "the runtime is entered only while the guard lives"]
pub struct EnterGuard {
    previous: Option<Handle>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CONTEXT.with(|c| *c.entered.borrow_mut() = previous);
    }
}
