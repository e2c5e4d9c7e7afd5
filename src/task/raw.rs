//! The raw task: one heap allocation holding the header, the output slot and
//! the future, and the type-erased operations on it.
//!
//! ```text
//! Cell<F, T> (repr(C))
//! +-------------------------------+  <- NonNull<Header> points here
//! | Prefix<T>                     |
//! |   Header   state, vtable, id, |     non-generic: what the scheduler,
//! |            runtime, name, aux |     wakers and untyped handles touch
//! |   output   Option<T>          |     read by Task<T>, under the aux lock
//! | future     ManuallyDrop<F>    |     touched only by the running worker
//! +-------------------------------+
//! ```
//!
//! `Prefix<T>` is a `repr(C)` prefix of `Cell<F, T>`, so a `Task<T>` that does
//! not know `F` can still reach the output slot.
//!
//! The future is present exactly until the task completes: it is dropped in
//! place by the worker that completes the task, just before `COMPLETE` is
//! set, and a task freed without completing drops it with the cell. No
//! `Option` around it: an async block's future has no niche, and the tag
//! would cost every task 8 bytes.

use super::completion::{Completion, Status, StoredCallback};
use super::recycle::{self, TaskCache};
use super::state::{IdleAction, State, WakeAction};
use super::TaskId;
use crate::error::Error;
use crate::loom::{lock, AtomicU32, Mutex};
use crate::runtime::context;
use crate::scheduler::{Schedule, Shared};
use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

/// The non-generic part of every task.
///
/// Every parked task carries one, so what is rarely used lives out of line
/// (in the completion record's cold part, [`Cold`]) and the fields are laid
/// out without padding: 88 bytes on 64-bit targets.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    vtable: &'static Vtable,
    pub(crate) id: TaskId,
    /// The runtime the task belongs to (where wakes schedule it).
    pub(crate) shared: Arc<Shared>,
    /// The completion record, with the task's cold data.
    pub(crate) aux: Mutex<Aux>,
    /// asyncio's `cancelling()` count: cancel requests not withdrawn by
    /// `uncancel`. Written only under the aux lock (which orders the
    /// writes; `cancelling` reads it alone, without the lock); an
    /// atomic rather than a field of `Aux` so that it shares a word with
    /// `registry_key` instead of padding the lock's data.
    pub(crate) cancel_requests: AtomicU32,
    /// The task's slot in the runtime's registry, [`NOT_REGISTERED`] when
    /// not registered. Written under the lock of the registry shard the
    /// task belongs to, except by the completing task itself
    /// (`Registry::take_key`), whose store may meet only `close`'s, of the
    /// same value; an atomic so that those accesses without the lock are
    /// not data races (`Relaxed` everywhere: the lock orders the others).
    pub(crate) registry_key: AtomicU32,
}

/// The registry key of a task that is not in the registry (the registry
/// never hands out this key).
pub(crate) const NOT_REGISTERED: u32 = u32::MAX;

/// State under the task's lock.
pub(crate) struct Aux {
    pub(crate) completion: Completion<Cold>,
}

/// What few tasks need, kept out of line with the completion record's other
/// rarely used parts (allocated on first use, freed with the task).
#[derive(Default)]
pub(crate) struct Cold {
    /// The name given at spawn; `None` means the default `Task-<id>`.
    pub(crate) name: Option<Arc<str>>,
    /// The cancellation to deliver for the pending request, made from the
    /// first of its requests that carried a message (`None`: no message).
    pending_cancel: Option<Error>,
    /// The task's [place among the runtime's failures](Shared::next_failure_order),
    /// if it failed or was cancelled; 0 otherwise.
    pub(crate) failure_order: u64,
}

impl Aux {
    /// The cancellation that delivers the pending request.
    fn take_cancellation(&mut self) -> Error {
        self.completion
            .cold_if_any()
            .and_then(|cold| cold.pending_cancel.take())
            .unwrap_or_else(|| Error::cancelled(None))
    }

    /// Whether the pending request already has its cancellation (a message).
    pub(crate) fn has_pending_cancel(&self) -> bool {
        self.completion
            .cold()
            .is_some_and(|cold| cold.pending_cancel.is_some())
    }

    /// Sets the cancellation that delivers the pending request (`None`: a
    /// plain one, nothing stored).
    pub(crate) fn set_pending_cancel(&mut self, cancel: Option<Error>) {
        match cancel {
            Some(cancel) => self.completion.cold_mut().pending_cancel = Some(cancel),
            None => {
                if let Some(cold) = self.completion.cold_if_any() {
                    cold.pending_cancel = None;
                }
            }
        }
    }
}

#[repr(C)]
struct Prefix<T> {
    header: Header,
    output: UnsafeCell<Option<T>>,
}

#[repr(C)]
struct Cell<F, T> {
    prefix: Prefix<T>,
    /// Live while the task is not `COMPLETE` (see the module docs).
    future: UnsafeCell<ManuallyDrop<F>>,
}

struct Vtable {
    /// Polls the future once; on `Ready` the task has been completed. The
    /// caller owns RUNNING and holds a reference throughout.
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> Poll<()>,
    /// Drops the future without polling it and completes with the error.
    /// The caller owns RUNNING and holds a reference throughout.
    abort: unsafe fn(NonNull<Header>, Error),
    /// Frees the allocation.
    dealloc: unsafe fn(NonNull<Header>),
}

/// A pointer to a task that does not own a reference by itself. Types built
/// on it ([`Notified`], handles, wakers) own one reference each.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawTask {
    ptr: NonNull<Header>,
}

// SAFETY: everything reachable through the header is `Sync` (atomics, a mutex,
// an `Arc`, immutable fields) or only touched by the worker that owns the
// `RUNNING` state; the future and output are `Send` (required at spawn).
unsafe impl Send for RawTask {}
// SAFETY: see `Send`.
unsafe impl Sync for RawTask {}

/// Spawn-time settings of a task.
pub(crate) struct Spawn {
    pub(crate) name: Option<Arc<str>>,
    /// Internal tasks (done-callback runners) are not listed in `all_tasks`,
    /// are not cancelled at shutdown and have no handle.
    pub(crate) hidden: bool,
    /// The first step runs inside the spawn call, when that is made on one
    /// of the runtime's workers (asyncio's eager start); `None`: as the
    /// runtime's default says.
    pub(crate) eager: Option<bool>,
}

impl RawTask {
    /// Allocates a task. Its state holds `refs` references and is `NOTIFIED`.
    pub(crate) fn allocate<F, T, E>(
        future: F,
        id: TaskId,
        shared: Arc<Shared>,
        spawn: Spawn,
        refs: usize,
    ) -> RawTask
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        let cell = Cell::<F, T> {
            prefix: Prefix::<T> {
                header: Header {
                    state: State::new(refs),
                    vtable: &Vtable {
                        poll: poll::<F, T, E>,
                        abort: abort::<F, T>,
                        dealloc: dealloc::<F, T>,
                    },
                    id,
                    shared,
                    aux: Mutex::new(Aux {
                        completion: Completion::new(),
                    }),
                    cancel_requests: AtomicU32::new(0),
                    registry_key: AtomicU32::new(NOT_REGISTERED),
                },
                output: UnsafeCell::new(None),
            },
            future: UnsafeCell::new(ManuallyDrop::new(future)),
        };
        if let Some(name) = spawn.name {
            // Not shared yet: the lock is uncontended.
            lock(&cell.prefix.header.aux).completion.cold_mut().name = Some(name);
        }
        let layout = recycle::layout_for(Layout::new::<Cell<F, T>>());
        let block = context::with_worker(|worker| {
            TaskCache::allocate(worker.map(|w| &w.task_cache), layout)
        })
        .cast::<Cell<F, T>>();
        // SAFETY: the block is unused, and `layout_for` keeps (or raises)
        // the cell's size and alignment.
        unsafe { block.write(cell) };
        #[cfg(spindle_helgrind)]
        {
            // SAFETY: just written.
            let header = &unsafe { block.as_ref() }.prefix.header;
            header.state.announce_initialized();
            // A completing task's `Registry::take_key` and the registry's
            // `close` may both store NOT_REGISTERED, without a common lock.
            crate::valgrind::atomic_only(&header.registry_key);
        }
        RawTask { ptr: block.cast() }
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: a `RawTask` is only used while some reference keeps the
        // allocation alive (the caller's handle, waker or queue entry).
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn as_ptr(&self) -> *const Header {
        self.ptr.as_ptr()
    }

    /// # Safety
    /// `ptr` must point to a live task header.
    pub(crate) unsafe fn from_ptr(ptr: *const Header) -> RawTask {
        RawTask {
            // SAFETY: the caller guarantees `ptr` is a live, hence non-null, header.
            ptr: unsafe { NonNull::new_unchecked(ptr as *mut Header) },
        }
    }

    /// The output slot, for a task whose output type is `T`.
    ///
    /// # Safety
    /// `T` must be the task's output type, and the caller must hold the aux
    /// lock while touching the slot.
    pub(crate) unsafe fn output<T>(&self) -> *mut Option<T> {
        let prefix = self.ptr.cast::<Prefix<T>>();
        // SAFETY: `Prefix<T>` is the repr(C) prefix of the task's `Cell<F, T>`.
        unsafe { prefix.as_ref().output.get() }
    }

    /// Drops one reference, freeing the task if it was the last.
    pub(crate) fn drop_reference(self) {
        if self.header().state.ref_dec() {
            // SAFETY: that was the last reference.
            unsafe { self.dealloc() };
        }
    }

    /// # Safety
    /// No reference to the task may remain.
    unsafe fn dealloc(self) {
        // SAFETY: no reference to the task remains (the caller's contract):
        // this is the only access to it, so its lock need not be taken (the
        // decrement of the last reference ordered every earlier use).
        let aux = unsafe { &mut (*self.ptr.as_ptr()).aux };
        let unretrieved = aux
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .completion
            .unretrieved_error()
            .cloned();
        let header = self.header();
        if let Some(error) = unretrieved {
            header
                .shared
                .report(crate::runtime::Unhandled::never_retrieved(
                    header.id,
                    super::name_of(header),
                    error,
                ));
        }
        // SAFETY: the vtable matches the allocation; no reference remains.
        unsafe { (header.vtable.dealloc)(self.ptr) };
    }

    /// Wakes the task, keeping the caller's reference.
    pub(crate) fn wake_by_ref(self) {
        match self.header().state.wake_by_ref() {
            WakeAction::Submit => self
                .header()
                .shared
                .schedule(Notified(self), Schedule::Wake),
            WakeAction::Nothing | WakeAction::Dealloc => {}
        }
    }

    /// Wakes the task, consuming the caller's reference.
    fn wake_by_val(self) {
        match self.header().state.wake_by_val() {
            WakeAction::Submit => self
                .header()
                .shared
                .schedule(Notified(self), Schedule::Wake),
            WakeAction::Nothing => {}
            // SAFETY: the caller's reference was the last one.
            WakeAction::Dealloc => unsafe { self.dealloc() },
        }
    }

    /// Requests cancellation (asyncio's `Task.cancel`). Returns `false` if the
    /// task is already done.
    pub(crate) fn cancel(self, message: Option<Arc<str>>) -> bool {
        let accepted = self.request_cancel(message);
        if accepted {
            self.wake_by_ref();
        }
        accepted
    }

    /// The first half of [`cancel`](Self::cancel): records the request
    /// without waking the task. Returns `true` if the request was taken, and
    /// the caller must then wake the task ([`wake_by_ref`](Self::wake_by_ref)).
    /// Cancelling several tasks as one step (see [`super::cancel_all`])
    /// records every request before waking any task.
    #[must_use = "an accepted request must be followed by a wake of the task"]
    pub(crate) fn request_cancel(self, message: Option<Arc<str>>) -> bool {
        let header = self.header();
        {
            let mut aux = lock(&header.aux);
            // asyncio: cancelling a task silences its "never retrieved"
            // report, even when it is already done.
            aux.completion.retrieved = true;
            if aux.completion.is_done() || !header.state.set_cancel_pending() {
                return false;
            }
            let requests = header.cancel_requests.load(Relaxed);
            header
                .cancel_requests
                .store(requests.saturating_add(1), Relaxed);
            if let Some(message) = message {
                if !aux.has_pending_cancel() {
                    aux.set_pending_cancel(Some(Error::cancelled(Some(message))));
                }
            }
        }
        true
    }

    /// Withdraws one cancel request (asyncio's `Task.uncancel`); at zero, a
    /// request not yet delivered is withdrawn. Returns the remaining count.
    pub(crate) fn uncancel(self) -> u32 {
        let header = self.header();
        let mut aux = lock(&header.aux);
        let mut requests = header.cancel_requests.load(Relaxed);
        if requests > 0 {
            requests -= 1;
            header.cancel_requests.store(requests, Relaxed);
            if requests == 0 {
                header.state.clear_cancel_pending();
                aux.set_pending_cancel(None);
            }
        }
        requests
    }

    /// Takes a pending cancel request for delivery, if there is one.
    pub(crate) fn take_cancel(self) -> Option<Error> {
        let header = self.header();
        if !header.state.load().is_cancel_pending() {
            return None;
        }
        let mut aux = lock(&header.aux);
        if header.state.clear_cancel_pending() {
            // Delivered: a later request carries its own message.
            Some(aux.take_cancellation())
        } else {
            None
        }
    }

    /// Requests a hard abort: the future is dropped at the task's next run.
    pub(crate) fn abort(self) -> bool {
        if self.header().state.set_abort() {
            self.wake_by_ref();
            true
        } else {
            false
        }
    }

    /// Adds a done callback (already bound to its handle).
    pub(crate) fn add_callback(self, callback: StoredCallback) {
        let ready = lock(&self.header().aux).completion.add_callback(callback);
        if let Some(callback) = ready {
            self.header().shared.call_soon([callback]);
        }
    }

    /// Runs the task once on the current worker. Consumes the queue's
    /// reference (`task`) and returns what to do with the task next.
    pub(crate) fn run(task: Notified) -> RunOutcome {
        let raw = task.into_raw();
        let header = raw.header();
        let snapshot = header.state.to_running();
        let first_poll = !snapshot.is_started();

        let finished = if snapshot.is_abort_requested() {
            // SAFETY: RUNNING is owned; the vtable matches the allocation.
            unsafe { (header.vtable.abort)(raw.ptr, Error::cancelled(Some("aborted".into()))) };
            true
        } else if first_poll && snapshot.is_cancel_pending() {
            // asyncio: a task cancelled before its first step never runs its body.
            let error = raw.take_cancel().unwrap_or_else(|| Error::cancelled(None));
            // SAFETY: as above.
            unsafe { (header.vtable.abort)(raw.ptr, error) };
            true
        } else {
            let waker = std::mem::ManuallyDrop::new(
                // SAFETY: a borrowed waker: the worker's reference keeps the
                // task alive for the poll, and ManuallyDrop keeps the waker
                // from giving back a reference it never took.
                unsafe { Waker::from_raw(RawWaker::new(raw.as_ptr() as *const (), &WAKER_VTABLE)) },
            );
            let mut cx = Context::from_waker(&waker);
            let _current = crate::runtime::context::enter_task(raw);
            // SAFETY: RUNNING is owned; the vtable matches the allocation.
            unsafe { (header.vtable.poll)(raw.ptr, &mut cx) }.is_ready()
        };

        if finished {
            raw.drop_reference();
            return RunOutcome::Done;
        }
        match header.state.to_idle() {
            IdleAction::Requeue => RunOutcome::Requeue(Notified(raw)),
            IdleAction::Parked => RunOutcome::Done,
            IdleAction::Dealloc => {
                // SAFETY: the worker's reference was the last one.
                unsafe { raw.dealloc() };
                RunOutcome::Done
            }
        }
    }

    /// Completes a task that no worker will run any more (the runtime has
    /// stopped): its future is dropped here. Does nothing if the task is
    /// complete or being polled.
    pub(crate) fn abort_stopped(self) {
        if self.header().state.try_to_running() {
            // SAFETY: RUNNING is now owned; the vtable matches the allocation.
            unsafe {
                (self.header().vtable.abort)(
                    self.ptr,
                    Error::cancelled(Some("aborted at shutdown".into())),
                )
            };
        }
    }

    /// Completes a task that never got to run (spawned on a closed runtime).
    pub(crate) fn complete_unrun(task: Notified, error: Error) {
        let raw = task.into_raw();
        let _ = raw.header().state.to_running();
        // SAFETY: RUNNING is owned; the vtable matches the allocation.
        unsafe { (raw.header().vtable.abort)(raw.ptr, error) };
        raw.drop_reference();
    }
}

/// What the worker does with a task after running it.
pub(crate) enum RunOutcome {
    /// Woken during its own poll (e.g. `yield_now`): queue it at the back.
    Requeue(Notified),
    /// Nothing: it waits for a wake, or it finished.
    Done,
}

/// A task in a run queue: owns the queue's reference.
pub(crate) struct Notified(RawTask);

impl Notified {
    /// The task, without giving up the queue's reference.
    pub(crate) fn raw(&self) -> RawTask {
        self.0
    }

    pub(crate) fn into_raw(self) -> RawTask {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }

    /// # Safety
    /// `raw` must carry a reference that the new `Notified` takes over, and
    /// the task must be in the `NOTIFIED` state.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Notified {
        Notified(raw)
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        // A queue entry dropped without running (runtime shut down).
        self.0.drop_reference();
    }
}

// -- typed operations -------------------------------------------------------

unsafe fn poll<F, T, E>(ptr: NonNull<Header>, cx: &mut Context<'_>) -> Poll<()>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Error>,
{
    // SAFETY: the vtable was built for `Cell<F, T>`.
    let cell = unsafe { ptr.cast::<Cell<F, T>>().as_ref() };
    // SAFETY: the caller owns the RUNNING state, which gives exclusive access
    // to the future; a task being run is not complete, so the future is live.
    let future = unsafe { &mut *cell.future.get() };
    // SAFETY: the future lives in the heap cell and is dropped in place.
    let pinned = unsafe { Pin::new_unchecked(&mut **future) };
    let outcome = match catch_unwind(AssertUnwindSafe(|| pinned.poll(cx))) {
        Ok(Poll::Pending) => return Poll::Pending,
        Ok(Poll::Ready(Ok(value))) => Ok(value),
        Ok(Poll::Ready(Err(error))) => Err(error.into()),
        Err(payload) => Err(Error::panicked(&*payload)),
    };
    // SAFETY: the future is live (see above) and completion follows at once.
    unsafe { drop_future(future) };
    // SAFETY: forwarded contract.
    unsafe { complete::<T>(ptr, outcome) };
    Poll::Ready(())
}

unsafe fn abort<F, T>(ptr: NonNull<Header>, error: Error) {
    // SAFETY: the vtable was built for `Cell<F, T>`; RUNNING is owned.
    let cell = unsafe { ptr.cast::<Cell<F, T>>().as_ref() };
    // SAFETY: RUNNING gives exclusive access to the future, live because
    // the task is not complete; completion follows at once.
    unsafe { drop_future(&mut *cell.future.get()) };
    // SAFETY: forwarded contract.
    unsafe { complete::<T>(ptr, Err(error)) };
}

/// Drops the future in place; a panic in its destructor is contained.
///
/// # Safety
/// The future must be live, and the task must be completed right after, so
/// that nothing touches the future again.
unsafe fn drop_future<F>(future: &mut ManuallyDrop<F>) {
    // SAFETY: forwarded contract: live now, never used again.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(future) }));
}

/// Stores the outcome, marks the task complete and releases its awaiters.
///
/// # Safety
/// The caller owns the RUNNING state of a task whose output type is `T`,
/// and holds a reference to it until this returns.
unsafe fn complete<T>(ptr: NonNull<Header>, outcome: Result<T, Error>) {
    let raw = RawTask { ptr };
    let header = raw.header();
    let mut discarded = None;
    let mut released = {
        let mut aux = lock(&header.aux);
        let status = match outcome {
            // asyncio: a task whose cancel request is still pending when its
            // body returns ends cancelled.
            Ok(value) if header.state.load().is_cancel_pending() => {
                discarded = Some(value);
                Status::Failed(aux.take_cancellation())
            }
            Ok(value) => {
                // SAFETY: aux lock held; `T` is the output type.
                unsafe { *raw.output::<T>() = Some(value) };
                Status::Succeeded
            }
            Err(error) => Status::Failed(error),
        };
        if let Status::Failed(_) = status {
            aux.completion.cold_mut().failure_order = header.shared.next_failure_order();
        }
        aux.completion.announce_completing();
        header.state.to_complete();
        aux.completion.finish(status)
    };
    released.prefetch_first_hook();
    // A value discarded for a late cancel may panic in its destructor:
    // contained, like the future's and the output's.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(discarded)));
    header.shared.unregister(raw);
    // Done callbacks run here, after the outcome is recorded and before the
    // awaiters wake, so a callback can still read a result that an awaiter
    // will move out.
    if let Some(callbacks) = released.take_callbacks() {
        // The hooks among them are handed the task, borrowed: every caller
        // that owns RUNNING also holds a reference until this returns
        // (`run`'s, `complete_unrun`'s, the shutdown's list), and
        // ManuallyDrop keeps the borrowed handle from giving back a
        // reference it never took.
        let task = ManuallyDrop::new(super::AnyTask::from_raw(raw));
        crate::scheduler::run_callbacks(Some(&header.shared), callbacks, Some(&task));
    }
    released.wake_waiters();
    header.shared.task_finished();
}

unsafe fn dealloc<F, T>(ptr: NonNull<Header>) {
    let block = ptr.cast::<Cell<F, T>>();
    // SAFETY: the block holds a `Cell<F, T>` (written by `allocate`) and no
    // reference to it remains: this is the only access.
    let cell = unsafe { &mut *block.as_ptr() };
    if !cell.prefix.header.state.load().is_complete() {
        // Freed without completing (its runtime is gone): the future is
        // still live.
        // SAFETY: live because not complete, and the cell goes away next.
        unsafe { drop_future(cell.future.get_mut()) };
    }
    // Dropping a leftover output may run user code; contain panics (the
    // remaining fields are dropped even if one panics).
    // SAFETY: the cell is dropped once, and not used afterwards.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { ptr::drop_in_place(cell) }));
    let layout = recycle::layout_for(Layout::new::<Cell<F, T>>());
    // SAFETY: allocated by `allocate` with this layout; the cell is dropped.
    context::with_worker(|worker| unsafe {
        TaskCache::free(worker.map(|w| &w.task_cache), block.cast(), layout)
    });
}

// -- waker ------------------------------------------------------------------

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is the header of a task the waker keeps alive.
    let raw = unsafe { RawTask::from_ptr(data as *const Header) };
    raw.header().state.ref_inc();
    RawWaker::new(data, &WAKER_VTABLE)
}

unsafe fn waker_wake(data: *const ()) {
    // SAFETY: as in `waker_clone`; the waker's reference is consumed.
    let raw = unsafe { RawTask::from_ptr(data as *const Header) };
    raw.wake_by_val();
}

unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: as in `waker_clone`.
    let raw = unsafe { RawTask::from_ptr(data as *const Header) };
    raw.wake_by_ref();
}

unsafe fn waker_drop(data: *const ()) {
    // SAFETY: as in `waker_clone`; the waker's reference is given back.
    let raw = unsafe { RawTask::from_ptr(data as *const Header) };
    raw.drop_reference();
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    /// The header is part of every task, parked or not: what is rarely used
    /// lives out of line (a regression guard for the bytes per parked task,
    /// `benches/memory.rs`).
    #[test]
    fn the_header_stays_small() {
        assert!(std::mem::size_of::<Header>() <= 88);
    }
}
