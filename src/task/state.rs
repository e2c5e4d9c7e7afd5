//! The task state word: one atomic `usize` holding the lifecycle bits and the
//! reference count.
//!
//! ```text
//!  usize::BITS-1 ........ 6     5         4        3               2          1          0
//! [ reference count       ][ STARTED ][ ABORT ][ CANCEL_PENDING ][ NOTIFIED ][ COMPLETE ][ RUNNING ]
//! ```
//!
//! Invariants:
//! - `NOTIFIED` and not `RUNNING`: exactly one run queue (or the worker that is
//!   about to push it) holds a reference for the task, counted in the refcount.
//! - `RUNNING`: exactly one worker is polling the task and holds a reference.
//!   A wake in this state only sets `NOTIFIED`; the worker re-queues the task
//!   when the poll returns (that is how `yield_now` goes to the back).
//! - `COMPLETE` is set once, by the running worker, after the output is stored;
//!   afterwards `RUNNING` and `NOTIFIED` are never set again.
//! - `CANCEL_PENDING` is a cancel request not yet delivered to an await point;
//!   it is set and cleared under the task's aux lock (which also holds the
//!   cancel count and message); the running task reads it without the lock.
//! - `ABORT` asks the next run of the task to drop its future at once.
//! - `STARTED` is set by the first `to_running` and never cleared: a run
//!   that sees it clear in the snapshot before is the task's first.
//! - The task is freed by whoever drops the last reference.
//!
//! Orderings: transitions are `AcqRel` read-modify-writes, so a worker that
//! takes the task (`to_running`) sees everything the previous poll wrote, and
//! the reference decrement that frees the task synchronizes with every
//! earlier decrement (the `Arc` pattern).
//!
//! In helgrind builds (`--cfg spindle_helgrind`) each release side announces
//! itself with `crate::valgrind::happens_before` on the word and each
//! acquire side with `crate::valgrind::happens_after` (a module compiled only
//! in those builds): helgrind does not see
//! atomics, and without them every hand-over of a task between workers (its
//! future, its output, a C task's fiber stack) would look like a race.

use crate::loom::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

/// The task is being polled by a worker.
const RUNNING: usize = 1 << 0;
/// The task has finished; its outcome is stored.
const COMPLETE: usize = 1 << 1;
/// The task is scheduled: it sits in a run queue, or will be re-queued by the
/// worker polling it.
const NOTIFIED: usize = 1 << 2;
/// A cancel request waits to be delivered at the task's next await point.
pub(crate) const CANCEL_PENDING: usize = 1 << 3;
/// A hard abort was requested: drop the future at the next run.
const ABORT: usize = 1 << 4;
/// A worker took the task to run at least once.
const STARTED: usize = 1 << 5;
/// One reference; the count occupies the bits from here up.
const REF_ONE: usize = 1 << 6;
const REF_MASK: usize = !(REF_ONE - 1);

/// The atomic state word of a task.
pub(crate) struct State {
    word: AtomicUsize,
}

/// A copy of the state word at one moment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_cancel_pending(self) -> bool {
        self.0 & CANCEL_PENDING != 0
    }
    pub(crate) fn is_abort_requested(self) -> bool {
        self.0 & ABORT != 0
    }
    pub(crate) fn is_started(self) -> bool {
        self.0 & STARTED != 0
    }
    pub(crate) fn ref_count(self) -> usize {
        (self.0 & REF_MASK) / REF_ONE
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("notified", &self.is_notified())
            .field("cancel_pending", &self.is_cancel_pending())
            .field("abort", &self.is_abort_requested())
            .field("started", &self.is_started())
            .field("refs", &self.ref_count())
            .finish()
    }
}

/// What a worker must do after it woke a task.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WakeAction {
    /// Push the task to a run queue; the reference for the queue is taken.
    Submit,
    /// Nothing: the task is already queued, running or complete.
    Nothing,
    /// Nothing, and the caller's reference was the last one: free the task.
    Dealloc,
}

/// What a worker must do after a poll returned `Pending`.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IdleAction {
    /// The task was woken during the poll: queue it again (keeps the ref).
    Requeue,
    /// The task waits; the worker's reference was dropped.
    Parked,
    /// The task waits and nobody else refers to it: free it.
    Dealloc,
}

impl State {
    /// A new task: notified (it is about to be queued) with `refs` references.
    pub(crate) fn new(refs: usize) -> State {
        State {
            word: AtomicUsize::new(NOTIFIED | (refs * REF_ONE)),
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        let now = self.word.load(Acquire);
        #[cfg(spindle_helgrind)]
        crate::valgrind::happens_after(&self.word);
        Snapshot(now)
    }

    fn update(&self, mut f: impl FnMut(usize) -> usize) -> usize {
        #[cfg(spindle_helgrind)]
        crate::valgrind::happens_before(&self.word);
        let mut current = self.word.load(Acquire);
        loop {
            let next = f(current);
            match self
                .word
                .compare_exchange_weak(current, next, AcqRel, Acquire)
            {
                Ok(_) => {
                    #[cfg(spindle_helgrind)]
                    crate::valgrind::happens_after(&self.word);
                    return current;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// A worker took the task from a queue: `NOTIFIED` -> `RUNNING`, and
    /// `STARTED`. Returns the snapshot before the transition.
    #[must_use]
    pub(crate) fn to_running(&self) -> Snapshot {
        let prev = self.update(|s| {
            debug_assert!(s & NOTIFIED != 0 && s & (RUNNING | COMPLETE) == 0);
            (s & !NOTIFIED) | RUNNING | STARTED
        });
        Snapshot(prev)
    }

    /// Takes the `RUNNING` state of a task that is neither running nor
    /// complete, whether or not it is notified (used once the workers have
    /// stopped). Returns `false` if that is not possible.
    pub(crate) fn try_to_running(&self) -> bool {
        #[cfg(spindle_helgrind)]
        crate::valgrind::happens_before(&self.word);
        let mut current = self.word.load(Acquire);
        loop {
            if current & (RUNNING | COMPLETE) != 0 {
                return false;
            }
            let next = (current & !NOTIFIED) | RUNNING | STARTED;
            match self
                .word
                .compare_exchange_weak(current, next, AcqRel, Acquire)
            {
                Ok(_) => {
                    #[cfg(spindle_helgrind)]
                    crate::valgrind::happens_after(&self.word);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// The poll returned `Pending`: leave `RUNNING`, re-queue if woken meanwhile,
    /// otherwise give up the worker's reference.
    pub(crate) fn to_idle(&self) -> IdleAction {
        let prev = self.update(|s| {
            debug_assert!(s & RUNNING != 0);
            if s & NOTIFIED != 0 {
                s & !RUNNING
            } else {
                (s & !RUNNING) - REF_ONE
            }
        });
        if prev & NOTIFIED != 0 {
            IdleAction::Requeue
        } else if (prev & REF_MASK) == REF_ONE {
            IdleAction::Dealloc
        } else {
            IdleAction::Parked
        }
    }

    /// The task finished: `RUNNING` -> `COMPLETE` (clears `NOTIFIED` and
    /// `CANCEL_PENDING`, which mean nothing any more). The worker keeps its
    /// reference.
    #[inline]
    pub(crate) fn to_complete(&self) {
        let prev = self.update(|s| {
            debug_assert!(s & RUNNING != 0);
            (s & !(RUNNING | NOTIFIED | CANCEL_PENDING)) | COMPLETE
        });
        debug_assert!(prev & COMPLETE == 0);
    }

    /// A wake that keeps the caller's reference (`wake_by_ref`).
    pub(crate) fn wake_by_ref(&self) -> WakeAction {
        let prev = self.update(|s| {
            if s & (COMPLETE | NOTIFIED) != 0 {
                s
            } else if s & RUNNING != 0 {
                s | NOTIFIED
            } else {
                (s | NOTIFIED) + REF_ONE
            }
        });
        if prev & (COMPLETE | NOTIFIED | RUNNING) == 0 {
            WakeAction::Submit
        } else {
            WakeAction::Nothing
        }
    }

    /// A wake that consumes the caller's reference (`wake`).
    pub(crate) fn wake_by_val(&self) -> WakeAction {
        let prev = self.update(|s| {
            if s & (COMPLETE | NOTIFIED) != 0 {
                s - REF_ONE
            } else if s & RUNNING != 0 {
                (s | NOTIFIED) - REF_ONE
            } else {
                // The caller's reference becomes the queue's reference.
                s | NOTIFIED
            }
        });
        if prev & (COMPLETE | NOTIFIED | RUNNING) == 0 {
            WakeAction::Submit
        } else if prev & REF_MASK == REF_ONE {
            WakeAction::Dealloc
        } else {
            WakeAction::Nothing
        }
    }

    /// Sets `CANCEL_PENDING` (the caller holds the aux lock). Returns `false`
    /// if the task is already complete.
    pub(crate) fn set_cancel_pending(&self) -> bool {
        let prev = self.update(|s| {
            if s & COMPLETE != 0 {
                s
            } else {
                s | CANCEL_PENDING
            }
        });
        prev & COMPLETE == 0
    }

    /// Clears `CANCEL_PENDING` (the caller holds the aux lock). Returns whether
    /// it was set.
    pub(crate) fn clear_cancel_pending(&self) -> bool {
        let prev = self.update(|s| s & !CANCEL_PENDING);
        prev & CANCEL_PENDING != 0
    }

    /// Sets `ABORT`. Returns `false` if the task is already complete.
    pub(crate) fn set_abort(&self) -> bool {
        let prev = self.update(|s| if s & COMPLETE != 0 { s } else { s | ABORT });
        prev & COMPLETE == 0
    }

    /// Adds one reference.
    #[inline]
    pub(crate) fn ref_inc(&self) {
        let prev = self
            .word
            .fetch_add(REF_ONE, std::sync::atomic::Ordering::Relaxed);
        // A count this large means references are leaked in a loop; abort
        // rather than wrap around into the flag bits.
        if prev > usize::MAX / 2 {
            std::process::abort();
        }
    }

    /// Drops one reference; returns `true` if it was the last one.
    #[must_use]
    #[inline]
    pub(crate) fn ref_dec(&self) -> bool {
        #[cfg(spindle_helgrind)]
        crate::valgrind::happens_before(&self.word);
        let prev = self.word.fetch_sub(REF_ONE, AcqRel);
        debug_assert!(prev & REF_MASK >= REF_ONE);
        let last = prev & REF_MASK == REF_ONE;
        // The last reference frees the task: it must see every earlier use.
        #[cfg(spindle_helgrind)]
        if last {
            crate::valgrind::happens_after(&self.word);
        }
        last
    }

    /// Tells helgrind about a task just initialized at its final address:
    /// the word is accessed only atomically (see
    /// [`atomic_only`](crate::valgrind::atomic_only)).
    #[cfg(spindle_helgrind)]
    pub(crate) fn announce_initialized(&self) {
        crate::valgrind::atomic_only(&self.word);
    }

    /// Tells helgrind that everything the spawner wrote to a new task (its
    /// initialization, its registry key) happens before the task's first
    /// transition, on whatever worker pops it from a run queue: that
    /// hand-over goes through the queue's atomics, which helgrind does not
    /// see, and through no transition of the word.
    #[cfg(spindle_helgrind)]
    pub(crate) fn announce_first_queueing(&self) {
        crate::valgrind::happens_before(&self.word);
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    #[test]
    fn spawn_run_park_wake_complete() {
        // handle + queue references.
        let state = State::new(2);
        let s = state.to_running();
        assert!(s.is_notified() && !s.is_running());
        assert_eq!(state.to_idle(), IdleAction::Parked);
        assert_eq!(state.load().ref_count(), 1);
        assert_eq!(state.wake_by_ref(), WakeAction::Submit);
        assert_eq!(state.wake_by_ref(), WakeAction::Nothing);
        assert_eq!(state.load().ref_count(), 2);
        let _ = state.to_running();
        state.to_complete();
        assert!(state.load().is_complete());
        assert_eq!(state.wake_by_ref(), WakeAction::Nothing);
        assert!(!state.ref_dec());
        assert!(state.ref_dec());
    }

    #[test]
    fn wake_while_running_requeues() {
        let state = State::new(1);
        let _ = state.to_running();
        assert_eq!(state.wake_by_ref(), WakeAction::Nothing);
        assert_eq!(state.to_idle(), IdleAction::Requeue);
        assert!(state.load().is_notified());
        assert_eq!(state.load().ref_count(), 1);
    }

    #[test]
    fn wake_by_val_of_last_reference_on_complete_task_frees() {
        let state = State::new(1);
        let _ = state.to_running();
        state.to_complete();
        assert_eq!(state.wake_by_val(), WakeAction::Dealloc);
    }

    #[test]
    fn parked_task_with_no_other_reference_is_freed() {
        let state = State::new(1);
        let _ = state.to_running();
        assert_eq!(state.to_idle(), IdleAction::Dealloc);
    }

    #[test]
    fn cancel_pending_is_refused_once_complete() {
        let state = State::new(1);
        assert!(state.set_cancel_pending());
        assert!(state.load().is_cancel_pending());
        let _ = state.to_running();
        state.to_complete();
        assert!(!state.load().is_cancel_pending());
        assert!(!state.set_cancel_pending());
        assert!(!state.set_abort());
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{thread, Arc, AtomicBool};
    use std::sync::atomic::Ordering::SeqCst;

    /// A wake that races with a poll is never lost: if the poll did not see
    /// the event, the task is scheduled again (by the waker or by the
    /// worker's requeue), exactly once, and the references add up.
    #[test]
    fn wake_during_poll_is_never_lost() {
        loom::model(|| {
            // The handle's reference and the queue's.
            let state = Arc::new(State::new(2));
            let event = Arc::new(AtomicBool::new(false));
            let waker = {
                let (state, event) = (state.clone(), event.clone());
                thread::spawn(move || {
                    event.store(true, SeqCst);
                    state.wake_by_ref()
                })
            };
            let _ = state.to_running();
            let saw_event = event.load(SeqCst);
            let idle = state.to_idle();
            let wake = waker.join().unwrap();
            let scheduled =
                usize::from(idle == IdleAction::Requeue) + usize::from(wake == WakeAction::Submit);
            assert!(scheduled <= 1, "scheduled twice");
            assert!(saw_event || scheduled == 1, "wakeup lost");
            assert_eq!(state.load().ref_count(), 1 + scheduled);
        });
    }

    /// A cancel request racing with completion either lands before the task
    /// completes (and is then cleared) or is refused.
    #[test]
    fn cancel_racing_completion() {
        loom::model(|| {
            let state = Arc::new(State::new(2));
            let canceller = {
                let state = state.clone();
                thread::spawn(move || state.set_cancel_pending())
            };
            let _ = state.to_running();
            state.to_complete();
            let _accepted = canceller.join().unwrap();
            let after = state.load();
            assert!(after.is_complete());
            assert!(!after.is_cancel_pending(), "a cancel survived completion");
            assert!(!state.set_cancel_pending());
        });
    }

    /// An abort racing with a run of the task: the run sees it, or the run
    /// parks and the task is scheduled again exactly once (by the abort's
    /// wake or by the worker's requeue), and that run sees it.
    #[test]
    fn abort_racing_with_a_parking_poll() {
        loom::model(|| {
            let state = Arc::new(State::new(2));
            let aborter = {
                let state = state.clone();
                thread::spawn(move || state.set_abort().then(|| state.wake_by_ref()))
            };
            if state.to_running().is_abort_requested() {
                // The abort came first: this run drops the future.
                state.to_complete();
                let wake = aborter.join().unwrap();
                assert_eq!(
                    wake,
                    Some(WakeAction::Nothing),
                    "an extra run was scheduled"
                );
                return;
            }
            let idle = state.to_idle();
            let wake = aborter.join().unwrap();
            assert!(wake.is_some(), "an abort of a live task was refused");
            let scheduled = usize::from(idle == IdleAction::Requeue)
                + usize::from(wake == Some(WakeAction::Submit));
            assert_eq!(
                scheduled, 1,
                "the aborted task is not run again exactly once"
            );
            assert_eq!(state.load().ref_count(), 2);
            assert!(state.to_running().is_abort_requested());
            state.to_complete();
        });
    }

    /// Two wakers of a parked task wake it at once: it is submitted once,
    /// and the last reference is dropped exactly once after it completes.
    #[test]
    fn concurrent_wakes_submit_once_and_free_once() {
        loom::model(|| {
            // The queue's reference and two wakers'.
            let state = Arc::new(State::new(3));
            let _ = state.to_running();
            assert_eq!(state.to_idle(), IdleAction::Parked);
            let other = {
                let state = state.clone();
                thread::spawn(move || state.wake_by_val())
            };
            let here = state.wake_by_val();
            let there = other.join().unwrap();
            let submits =
                usize::from(here == WakeAction::Submit) + usize::from(there == WakeAction::Submit);
            assert_eq!(submits, 1, "submitted {submits} times");
            assert!(here != WakeAction::Dealloc && there != WakeAction::Dealloc);
            assert_eq!(
                state.load().ref_count(),
                1,
                "only the queue's reference is left"
            );
            let _ = state.to_running();
            state.to_complete();
            assert!(state.ref_dec(), "the last reference was not the last");
        });
    }
}
