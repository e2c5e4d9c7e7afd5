//! Completion tracking shared by [`gather`](fn@super::gather),
//! [`wait`](fn@super::wait) and [`as_completed`](fn@super::as_completed), the way
//! asyncio builds them: an internal done callback on every task records the
//! completion (in completion order) and wakes the awaiter only when its
//! condition may have become true.
//!
//! Lock order: the tracker's lock is never held while a task's lock is
//! taken (callbacks read the task first, then lock the tracker).

use crate::loom::{lock, Mutex};
use crate::task::{AnyTask, DoneHook, HookRef, Task, TaskState};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// When a completion wakes the awaiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeOn {
    /// Every completion.
    Each,
    /// The last completion.
    All,
    /// The first failure or cancellation, or the last completion.
    FirstFailure,
    /// The first failure that is not a cancellation, or the last completion.
    FirstError,
}

/// What has happened so far, for the awaiter's decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Progress {
    /// Whether every tracked slot is done.
    pub(crate) all_done: bool,
    /// The slot that failed or was cancelled first.
    pub(crate) first_failure: Option<usize>,
    /// Whether that slot's task was already done when tracking started
    /// (recorded then, in slot order); otherwise its done hook recorded it
    /// as the task completed.
    pub(crate) first_failure_at_start: bool,
}

struct Track {
    total: usize,
    finished: usize,
    wake_on: WakeOn,
    /// Completed slots in completion order, not yet popped (only kept when
    /// `record_order`).
    order: VecDeque<usize>,
    record_order: bool,
    first_failure: Option<usize>,
    first_failure_at_start: bool,
    first_error: Option<usize>,
    /// Later completions are ignored.
    closed: bool,
    /// Later completions have their failure marked retrieved.
    retrieve_late: bool,
    waker: Option<Waker>,
}

impl Track {
    fn ready(&self) -> bool {
        let all = self.finished >= self.total;
        match self.wake_on {
            WakeOn::Each => self.finished > 0,
            WakeOn::All => all,
            WakeOn::FirstFailure => all || self.first_failure.is_some(),
            WakeOn::FirstError => all || self.first_error.is_some(),
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            all_done: self.finished >= self.total,
            first_failure: self.first_failure,
            first_failure_at_start: self.first_failure_at_start,
        }
    }

    fn store_waker(&mut self, waker: &Waker) {
        match &mut self.waker {
            Some(existing) if existing.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }
}

/// A handle a [`Tracker`] holds: untyped, or typed (a gather keeps its
/// tasks in its tracker instead of a second handle to each).
pub(crate) trait Tracked {
    /// The task, untyped.
    fn any(&self) -> &AnyTask;
}

impl Tracked for AnyTask {
    fn any(&self) -> &AnyTask {
        self
    }
}

impl<T> Tracked for Task<T> {
    fn any(&self) -> &AnyTask {
        self.as_any()
    }
}

/// Tracks the completion of a list of tasks (slots; a task may fill more
/// than one slot).
pub(crate) struct Tracker<H: Tracked = AnyTask> {
    tasks: Vec<H>,
    shared: Arc<Mutex<Track>>,
}

impl<H: Tracked> Tracker<H> {
    /// Starts tracking. Slots already done are recorded now, in order.
    pub(crate) fn new(tasks: Vec<H>, wake_on: WakeOn, record_order: bool) -> Tracker<H> {
        let shared = Arc::new(Mutex::new(Track {
            total: tasks.len(),
            finished: 0,
            wake_on,
            order: VecDeque::new(),
            record_order,
            first_failure: None,
            first_failure_at_start: false,
            first_error: None,
            closed: false,
            retrieve_late: false,
            waker: None,
        }));
        // Whether the first failure may still be recorded: then a slot done
        // at registration is checked for it.
        let mut first_failure_open = true;
        for (slot, task) in tasks.iter().enumerate() {
            let done = task
                .any()
                .on_done_internal(HookRef::Strong(shared.clone()), slot);
            if done && first_failure_open {
                let mut track = lock(&shared);
                track.first_failure_at_start = track.first_failure == Some(slot);
                first_failure_open = track.first_failure.is_none();
            }
        }
        Tracker { tasks, shared }
    }

    /// The tracked tasks, one per slot.
    pub(crate) fn tasks(&self) -> &[H] {
        &self.tasks
    }

    /// Changes when the awaiter is woken (before it first waits).
    pub(crate) fn set_wake_on(&self, wake_on: WakeOn) {
        lock(&self.shared).wake_on = wake_on;
    }

    /// `Ready` when the wake condition holds; otherwise the waker is kept.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Progress> {
        let mut track = lock(&self.shared);
        if track.ready() {
            return Poll::Ready(track.progress());
        }
        track.store_waker(cx.waker());
        Poll::Pending
    }

    /// The next completed slot in completion order; otherwise the waker is
    /// kept (`record_order` trackers).
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<usize> {
        let mut track = lock(&self.shared);
        if let Some(slot) = track.order.pop_front() {
            return Poll::Ready(slot);
        }
        track.store_waker(cx.waker());
        Poll::Pending
    }

    /// The next completed slot recorded before the tracker was closed.
    pub(crate) fn pop_recorded(&self) -> Option<usize> {
        lock(&self.shared).order.pop_front()
    }

    /// Stops recording: later completions are ignored.
    pub(crate) fn close(&self) {
        let mut track = lock(&self.shared);
        track.closed = true;
        track.waker = None;
    }

    /// asyncio's "mark exception retrieved" for a gather that already
    /// failed: every failure of these tasks, now or later, counts as read.
    pub(crate) fn retrieve_all(&self) {
        {
            let mut track = lock(&self.shared);
            track.closed = true;
            track.retrieve_late = true;
            track.waker = None;
        }
        for task in &self.tasks {
            if task.any().done() {
                mark_retrieved(task.any());
            }
        }
    }
}

impl<H: Tracked> Drop for Tracker<H> {
    fn drop(&mut self) {
        let track = lock(&self.shared);
        if track.retrieve_late || track.finished >= track.total {
            // The callbacks still have work to do, or have all run.
            return;
        }
        drop(track);
        for task in &self.tasks {
            if !task.any().done() {
                task.any().remove_internal_callbacks(&self.shared);
            }
        }
    }
}

fn mark_retrieved(task: &AnyTask) {
    // Reading the failure marks it retrieved; a cancellation is never reported.
    let _ = task.exception();
}

/// The done hook of every slot (`token`: the slot).
impl DoneHook for Mutex<Track> {
    fn task_done(&self, slot: usize, task: &AnyTask) {
        completed(self, slot, task);
    }
}

/// Records the completion of one slot.
fn completed(shared: &Mutex<Track>, slot: usize, task: &AnyTask) {
    let state = task.state();
    let mut track = lock(shared);
    track.finished += 1;
    if track.retrieve_late {
        drop(track);
        mark_retrieved(task);
        return;
    }
    if track.closed {
        return;
    }
    if track.record_order {
        track.order.push_back(slot);
    }
    match state {
        TaskState::Failed => {
            track.first_failure.get_or_insert(slot);
            track.first_error.get_or_insert(slot);
        }
        TaskState::Cancelled => {
            track.first_failure.get_or_insert(slot);
        }
        _ => {}
    }
    if track.ready() {
        if let Some(waker) = track.waker.take() {
            drop(track);
            waker.wake();
        }
    }
}
