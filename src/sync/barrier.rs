//! [`Barrier`]: tasks wait until a fixed number of them arrived (asyncio's
//! `Barrier`).

use super::waitlist::WaitList;
use crate::error::{Error, Result};
use crate::loom::{lock, Mutex};
use crate::runtime::context;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A barrier for a fixed number of tasks, the *parties* (asyncio's
/// `Barrier`).
///
/// Each [`wait`](Self::wait) blocks until `parties` tasks are waiting;
/// then all of them go on, each with a distinct index in `0..parties` (the
/// last to arrive gets `parties - 1`). The barrier is then reused: tasks
/// that arrive while the previous round is still leaving (*draining*) wait
/// for it to finish.
///
/// The state machine is asyncio's (filling, draining, resetting, broken):
///
/// - a waiter that is cancelled leaves, and the barrier needs one more
///   party again;
/// - [`reset`](Self::reset) makes the current waiters fail with
///   [`BrokenBarrierError`]; once they have left, the barrier is usable
///   again;
/// - [`abort`](Self::abort) breaks the barrier: current and future waiters
///   fail with [`BrokenBarrierError`] until a `reset`.
///
/// The error is a user-kind [`Error`] wrapping a [`BrokenBarrierError`]:
/// match it with `err.downcast_ref::<BrokenBarrierError>()`. In asyncio
/// `reset()` and `abort()` are coroutines (they take the barrier's internal
/// lock, which is never held across a suspension); here they are plain
/// methods.
///
/// ```
/// use std::sync::Arc;
/// spindle::run(async {
///     let barrier = Arc::new(spindle::Barrier::new(3)?);
///     let tasks: Vec<_> = (0..3).map(|_| {
///         let barrier = barrier.clone();
///         spindle::spawn(async move { barrier.wait().await })
///     }).collect();
///     let mut indices = Vec::new();
///     for task in tasks {
///         indices.push(task.await?);
///     }
///     indices.sort();
///     assert_eq!(indices, [0, 1, 2]);
///
///     barrier.abort();
///     let err = barrier.wait().await.unwrap_err();
///     assert!(err.downcast_ref::<spindle::sync::BrokenBarrierError>().is_some());
///     assert!(spindle::Barrier::new(0).is_err());
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct Barrier {
    parties: usize,
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Filling,
    Draining,
    Resetting,
    Broken,
}

struct State {
    phase: Phase,
    /// Tasks inside the barrier (past the draining/resetting block).
    count: usize,
    /// Tasks waiting for the phase to change; every change wakes them all.
    waiters: WaitList,
}

impl State {
    fn notify_all(&mut self, wakers: &mut Vec<Waker>) {
        wakers.extend(self.waiters.grant_all());
    }

    /// asyncio's `_exit`: the last task to leave ends draining or
    /// resetting.
    fn exit(&mut self, wakers: &mut Vec<Waker>) {
        if self.count == 0 {
            if matches!(self.phase, Phase::Resetting | Phase::Draining) {
                self.phase = Phase::Filling;
            }
            self.notify_all(wakers);
        }
    }
}

fn wake(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

impl Barrier {
    /// A barrier for `parties` tasks. Zero parties is an invalid-argument
    /// error (asyncio's `ValueError`).
    pub fn new(parties: usize) -> Result<Barrier> {
        if parties == 0 {
            return Err(Error::invalid_argument("parties must be > 0"));
        }
        Ok(Barrier {
            parties,
            state: Mutex::new(State {
                phase: Phase::Filling,
                count: 0,
                waiters: WaitList::new(),
            }),
        })
    }

    /// Waits until `parties` tasks wait; returns this task's index in
    /// `0..parties`. Fails with [`BrokenBarrierError`] if the barrier is
    /// broken or is reset or aborted while waiting. A cancellation point
    /// when it has to wait; a cancelled waiter leaves the barrier.
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            step: Step::Block,
            key: None,
        }
    }

    /// Resets the barrier: the tasks waiting fail with
    /// [`BrokenBarrierError`]; once they have left, the barrier is empty
    /// and usable again (also after [`abort`](Self::abort)).
    pub fn reset(&self) {
        let mut wakers = Vec::new();
        {
            let mut state = lock(&self.state);
            state.phase = if state.count > 0 {
                Phase::Resetting
            } else {
                Phase::Filling
            };
            state.notify_all(&mut wakers);
        }
        wake(wakers);
    }

    /// Breaks the barrier: the tasks waiting, and every later
    /// [`wait`](Self::wait), fail with [`BrokenBarrierError`] until a
    /// [`reset`](Self::reset).
    pub fn abort(&self) {
        let mut wakers = Vec::new();
        {
            let mut state = lock(&self.state);
            state.phase = Phase::Broken;
            state.notify_all(&mut wakers);
        }
        wake(wakers);
    }

    /// The number of tasks needed to pass the barrier.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// The number of tasks waiting for the barrier to fill (0 while it
    /// drains, resets or is broken).
    pub fn n_waiting(&self) -> usize {
        let state = lock(&self.state);
        if state.phase == Phase::Filling {
            state.count
        } else {
            0
        }
    }

    /// Whether the barrier is broken (aborted and not reset since).
    pub fn broken(&self) -> bool {
        lock(&self.state).phase == Phase::Broken
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("state", &state.phase)
            .field("count", &state.count)
            .finish()
    }
}

/// The error of a [`Barrier::wait`] on a barrier that is broken, or that
/// was reset or aborted while the task waited (asyncio's
/// `BrokenBarrierError`). It reaches the caller wrapped in an [`Error`]:
/// `err.downcast_ref::<BrokenBarrierError>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenBarrierError {
    reason: &'static str,
}

impl BrokenBarrierError {
    /// Why: `"Barrier aborted"` (waiting on a broken barrier) or `"Abort or
    /// reset of barrier"` (broken or reset while waiting), asyncio's
    /// messages.
    pub fn reason(&self) -> &str {
        self.reason
    }
}

impl fmt::Display for BrokenBarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "barrier broken: {}", self.reason)
    }
}

impl std::error::Error for BrokenBarrierError {}

fn broken(reason: &'static str) -> Error {
    Error::other(BrokenBarrierError { reason })
}

#[derive(Clone, Copy)]
enum Step {
    /// Waiting for a draining or resetting round to end.
    Block,
    /// Inside the barrier with this index, waiting for it to fill.
    Wait(usize),
    Done,
}

/// The future of [`Barrier::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    step: Step,
    key: Option<usize>,
}

impl BarrierWait<'_> {
    /// Moves as far as the state allows; `None` when the task must wait.
    fn advance(&mut self, state: &mut State, wakers: &mut Vec<Waker>) -> Option<Result<usize>> {
        loop {
            match self.step {
                Step::Block => {
                    if matches!(state.phase, Phase::Draining | Phase::Resetting) {
                        return None;
                    }
                    if state.phase == Phase::Broken {
                        self.step = Step::Done;
                        return Some(Err(broken("Barrier aborted")));
                    }
                    let index = state.count;
                    state.count += 1;
                    if index + 1 == self.barrier.parties {
                        // The last party releases the others.
                        state.phase = Phase::Draining;
                        state.notify_all(wakers);
                        state.count -= 1;
                        state.exit(wakers);
                        self.step = Step::Done;
                        return Some(Ok(index));
                    }
                    self.step = Step::Wait(index);
                }
                Step::Wait(index) => {
                    if state.phase == Phase::Filling {
                        return None;
                    }
                    let phase = state.phase;
                    state.count -= 1;
                    state.exit(wakers);
                    self.step = Step::Done;
                    return Some(match phase {
                        Phase::Broken | Phase::Resetting => {
                            Err(broken("Abort or reset of barrier"))
                        }
                        Phase::Filling | Phase::Draining => Ok(index),
                    });
                }
                Step::Done => {
                    return Some(Err(Error::invalid_state("wait polled after completion")))
                }
            }
        }
    }

    /// Leaves the barrier (cancelled or dropped).
    fn leave(&mut self) {
        let mut wakers = Vec::new();
        {
            let mut state = lock(&self.barrier.state);
            if let Some(key) = self.key.take() {
                // Every wake-up is a broadcast: nothing to pass on.
                state.waiters.remove(key);
            }
            if let Step::Wait(_) = self.step {
                state.count -= 1;
                state.exit(&mut wakers);
            }
            self.step = Step::Done;
        }
        wake(wakers);
    }
}

impl Future for BarrierWait<'_> {
    type Output = Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<usize>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        let mut checked = false;
        if let Some(key) = this.key {
            if let Some(cancel) = context::take_current_cancel() {
                this.leave();
                return Poll::Ready(Err(cancel));
            }
            checked = true;
            let mut state = lock(&this.barrier.state);
            if !state.waiters.is_granted(key) {
                state.waiters.set_waker(key, cx.waker());
                return Poll::Pending;
            }
            state.waiters.remove(key);
            this.key = None;
        }
        loop {
            let mut wakers = Vec::new();
            let mut state = lock(&this.barrier.state);
            if let Some(outcome) = this.advance(&mut state, &mut wakers) {
                drop(state);
                wake(wakers);
                return Poll::Ready(outcome);
            }
            if checked {
                this.key = Some(state.waiters.push(cx.waker()));
                return Poll::Pending;
            }
            drop(state);
            if let Some(cancel) = context::take_current_cancel() {
                this.leave();
                return Poll::Ready(Err(cancel));
            }
            checked = true;
        }
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        if self.key.is_some() || matches!(self.step, Step::Wait(_)) {
            self.leave();
        }
    }
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait").finish_non_exhaustive()
    }
}
