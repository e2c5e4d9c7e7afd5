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
    /// `record_order`). A place is taken as a task completes
    /// ([`DoneHook::completing`]) and filled when its done hook runs, which
    /// may be after the hook of a task that completed later (on another
    /// worker, having seen this one done): a slot is popped only once
    /// every place before it is filled.
    order: VecDeque<Option<usize>>,
    /// Places popped from the front of `order` so far.
    popped: usize,
    /// The place each slot took in `order` as its task completed
    /// ([`NO_PLACE`] if none yet, or if it was done before tracking
    /// started); empty unless `record_order`.
    places: Vec<usize>,
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

/// A slot that has taken no place in [`Track::order`].
const NO_PLACE: usize = usize::MAX;

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
            popped: 0,
            places: if record_order {
                vec![NO_PLACE; tasks.len()]
            } else {
                Vec::new()
            },
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
            let hook = HookRef::Strong(shared.clone());
            let done = if record_order {
                task.any().on_done_in_order(hook, slot)
            } else {
                task.any().on_done_internal(hook, slot)
            };
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
        if let Some(&Some(slot)) = track.order.front() {
            track.order.pop_front();
            track.popped += 1;
            return Poll::Ready(slot);
        }
        track.store_waker(cx.waker());
        Poll::Pending
    }

    /// The next completed slot recorded before the tracker was closed
    /// (places taken but never filled are skipped: their hooks ran after
    /// the close).
    pub(crate) fn pop_recorded(&self) -> Option<usize> {
        let mut track = lock(&self.shared);
        while let Some(place) = track.order.pop_front() {
            track.popped += 1;
            if place.is_some() {
                return place;
            }
        }
        None
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

    /// Takes the slot's place in the completion order (`record_order`
    /// trackers register with [`AnyTask::on_done_in_order`]).
    fn completing(&self, slot: usize) {
        let mut track = lock(self);
        if track.closed || track.places.is_empty() {
            return;
        }
        track.places[slot] = track.popped + track.order.len();
        track.order.push_back(None);
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
        match track.places[slot] {
            NO_PLACE => track.order.push_back(Some(slot)),
            place => {
                let index = place - track.popped;
                track.order[index] = Some(slot);
            }
        }
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

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Two tasks waiting on a gate, tracked in order (whose hooks the tests
    /// call by hand).
    struct Gated {
        rt: crate::Runtime,
        gate: crate::Promise<()>,
        typed: Vec<Task<()>>,
        tasks: Vec<AnyTask>,
        tracker: Tracker,
    }

    impl Gated {
        fn new() -> Gated {
            let rt = crate::Runtime::builder().worker_threads(1).build().unwrap();
            let gate = crate::Promise::<()>::new();
            let typed: Vec<Task<()>> = (0..2).map(|_| rt.spawn(gate.clone())).collect();
            let tasks: Vec<AnyTask> = typed.iter().map(|task| task.as_any().clone()).collect();
            let tracker = Tracker::new(tasks.clone(), WakeOn::Each, true);
            Gated {
                rt,
                gate,
                typed,
                tasks,
                tracker,
            }
        }

        /// Opens the gate and waits for both tasks.
        fn finish(self) {
            self.gate.set_result(()).unwrap();
            let typed = self.typed;
            self.rt
                .block_on(async move {
                    for task in typed {
                        task.await?;
                    }
                    crate::Ok(())
                })
                .unwrap();
        }
    }

    /// Two tasks complete in one order and their done hooks run in the
    /// other (what two workers can do when the second task saw the first
    /// one done): the slots still come out in completion order, and the
    /// second is held back until the first one's hook has run.
    #[test]
    fn slots_come_out_in_completion_order_whatever_order_the_hooks_ran_in() {
        let fixture = Gated::new();
        let (tracker, tasks) = (&fixture.tracker, &fixture.tasks);
        let mut cx = Context::from_waker(Waker::noop());
        tracker.shared.completing(0);
        tracker.shared.completing(1);
        tracker.shared.task_done(1, &tasks[1]);
        assert!(
            tracker.poll_next(&mut cx).is_pending(),
            "slot 1 overtook slot 0"
        );
        tracker.shared.task_done(0, &tasks[0]);
        assert_eq!(tracker.poll_next(&mut cx), Poll::Ready(0));
        assert_eq!(tracker.poll_next(&mut cx), Poll::Ready(1));
        // The real completions, later, are ignored.
        tracker.close();
        fixture.finish();
    }

    /// A place taken but never filled before the tracker was closed (its
    /// hook ran after the close) is skipped by `pop_recorded`.
    #[test]
    fn places_left_empty_by_a_close_are_skipped() {
        let fixture = Gated::new();
        let (tracker, tasks) = (&fixture.tracker, &fixture.tasks);
        tracker.shared.completing(0);
        tracker.shared.completing(1);
        tracker.shared.task_done(1, &tasks[1]);
        tracker.close();
        tracker.shared.task_done(0, &tasks[0]);
        assert_eq!(tracker.pop_recorded(), Some(1));
        assert_eq!(tracker.pop_recorded(), None);
        fixture.finish();
    }
}
