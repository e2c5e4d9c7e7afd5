//! [`as_completed`]: the outcomes of several awaitables in the order they
//! finish, like `asyncio.as_completed`.

use super::track::{Tracker, WakeOn};
use crate::error::{Error, Result};
use crate::runtime::context;
use crate::task::{IntoTask, Task};
use crate::time::Sleep;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Runs every awaitable in parallel and yields their outcomes in the order
/// they finish (across workers too: a task that finished after seeing
/// another one done comes after it), like `asyncio.as_completed`: call
/// [`next`](AsCompleted::next) until it gives `None` (or use it as a
/// [`Stream`](futures_core::Stream)).
///
/// Futures are spawned as tasks right away; [`Task`] handles are used as
/// they are (a task given twice is yielded once). A failure comes out in
/// its own slot and the iteration goes on. With a `timeout` (counted from
/// this call), once it passes every slot not finished by then yields a
/// timeout error ([`Error::is_timeout`]); the tasks are **not** cancelled.
/// [`tasks`](AsCompleted::tasks) gives the tasks themselves instead of their
/// outcomes (asyncio 3.13's `async for`).
///
/// Waiting for the next outcome is a cancellation point and consumes
/// cooperative budget: a cancellation of the awaiting task comes out as
/// `Some(Err(cancelled))` and consumes no slot. Dropping the iterator
/// detaches the tasks (they keep running).
///
/// # Panics
/// Spawning a future outside a runtime panics, like [`spawn`](crate::spawn).
///
/// ```
/// use std::time::Duration;
/// spindle::run(async {
///     let delays = [30u64, 10, 20];
///     let mut fastest_first = spindle::as_completed(
///         delays.map(|ms| async move {
///             spindle::sleep(Duration::from_millis(ms)).await?;
///             spindle::Ok(ms)
///         }),
///         None,
///     );
///     let mut order = Vec::new();
///     while let Some(outcome) = fastest_first.next().await {
///         order.push(outcome?);
///     }
///     assert_eq!(order, [10, 20, 30]);
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn as_completed<I>(
    items: I,
    timeout: Option<Duration>,
) -> AsCompleted<<I::Item as IntoTask>::Output>
where
    I: IntoIterator,
    I::Item: IntoTask,
{
    let mut seen = HashSet::new();
    let tasks: Vec<Task<_>> = items
        .into_iter()
        .map(IntoTask::into_task)
        .filter(|task| seen.insert(task.id()))
        .collect();
    let remaining = tasks.len();
    let any = tasks.iter().map(|t| t.as_any().clone()).collect();
    AsCompleted {
        inner: Inner {
            tracker: Tracker::new(any, WakeOn::Each, true),
            timer: match timeout {
                Some(timeout) if remaining > 0 => Some(crate::time::sleep(timeout)),
                _ => None,
            },
            timed_out: false,
            tasks: tasks.into_iter().map(Some).collect(),
            remaining,
        },
    }
}

/// The iterator of [`as_completed`]: outcomes in completion order.
#[must_use = "the tasks run anyway; iterate to collect their outcomes"]
pub struct AsCompleted<T> {
    inner: Inner<T>,
}

impl<T> AsCompleted<T> {
    /// The next outcome in completion order; `None` when every slot has
    /// been yielded.
    pub async fn next(&mut self) -> Option<Result<T>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next outcome (what [`next`](Self::next) awaits).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        self.inner
            .poll_next(cx)
            .map(|next| next.map(|task| task.and_then(|task| task.take_result())))
    }

    /// Yields the tasks themselves in completion order instead of their
    /// outcomes (asyncio 3.13's `async for t in as_completed(..)`), so a
    /// result can be matched with the task that produced it.
    ///
    /// ```
    /// use std::time::Duration;
    /// spindle::run(async {
    ///     let slow = spindle::task::Builder::new().name("slow")
    ///         .spawn(spindle::sleep(Duration::from_millis(40)));
    ///     let fast = spindle::task::Builder::new().name("fast")
    ///         .spawn(spindle::sleep(Duration::from_millis(5)));
    ///     let mut tasks = spindle::as_completed([slow, fast], None).tasks();
    ///     let first = tasks.next().await.unwrap()?;
    ///     assert_eq!(first.name(), "fast");
    ///     assert!(first.done());
    ///     spindle::Ok(())
    /// }).unwrap();
    /// ```
    pub fn tasks(self) -> AsCompletedTasks<T> {
        AsCompletedTasks { inner: self.inner }
    }

    /// How many slots are still to be yielded.
    pub fn remaining(&self) -> usize {
        self.inner.remaining
    }
}

impl<T> futures_core::Stream for AsCompleted<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        AsCompleted::poll_next(self.get_mut(), cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.inner.remaining, Some(self.inner.remaining))
    }
}

impl<T> futures_core::FusedStream for AsCompleted<T> {
    fn is_terminated(&self) -> bool {
        self.inner.remaining == 0
    }
}

impl<T> std::fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.inner.remaining)
            .finish_non_exhaustive()
    }
}

/// The iterator of [`AsCompleted::tasks`]: the tasks in completion order.
#[must_use = "the tasks run anyway; iterate to collect them"]
pub struct AsCompletedTasks<T> {
    inner: Inner<T>,
}

impl<T> AsCompletedTasks<T> {
    /// The next task to finish, done; `None` when every task has been
    /// yielded. An error is the timeout (for each task not done when it
    /// passed) or the awaiting task's cancellation (which consumes no slot).
    pub async fn next(&mut self) -> Option<Result<Task<T>>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next task (what [`next`](Self::next) awaits).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Task<T>>>> {
        self.inner.poll_next(cx)
    }

    /// How many slots are still to be yielded.
    pub fn remaining(&self) -> usize {
        self.inner.remaining
    }
}

impl<T> futures_core::Stream for AsCompletedTasks<T> {
    type Item = Result<Task<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Task<T>>>> {
        AsCompletedTasks::poll_next(self.get_mut(), cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.inner.remaining, Some(self.inner.remaining))
    }
}

impl<T> futures_core::FusedStream for AsCompletedTasks<T> {
    fn is_terminated(&self) -> bool {
        self.inner.remaining == 0
    }
}

impl<T> std::fmt::Debug for AsCompletedTasks<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompletedTasks")
            .field("remaining", &self.inner.remaining)
            .finish_non_exhaustive()
    }
}

/// The state of both iterators (asyncio's `_AsCompletedIterator`).
struct Inner<T> {
    tracker: Tracker,
    /// The deadline, until it passes.
    timer: Option<Sleep>,
    timed_out: bool,
    /// One per slot; taken when yielded.
    tasks: Vec<Option<Task<T>>>,
    /// Slots not yielded yet.
    remaining: usize,
}

impl<T> Inner<T> {
    fn take(&mut self, slot: usize) -> Option<Result<Task<T>>> {
        self.remaining -= 1;
        Some(
            self.tasks[slot]
                .take()
                .ok_or_else(|| Error::invalid_state("the task was already yielded")),
        )
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Task<T>>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        if self.timed_out {
            // What finished before the deadline, then one timeout per slot.
            return Poll::Ready(match self.tracker.pop_recorded() {
                Some(slot) => self.take(slot),
                None => {
                    self.remaining -= 1;
                    Some(Err(Error::timeout()))
                }
            });
        }
        if let Poll::Ready(slot) = self.tracker.poll_next(cx) {
            return Poll::Ready(self.take(slot));
        }
        if let Some(cancel) = context::take_current_cancel() {
            return Poll::Ready(Some(Err(cancel)));
        }
        if let Some(timer) = &mut self.timer {
            match Pin::new(&mut *timer).poll(cx) {
                Poll::Ready(Ok(())) => {
                    // asyncio's `_handle_timeout`: later completions are
                    // ignored; nothing is cancelled.
                    self.timer = None;
                    self.timed_out = true;
                    self.tracker.close();
                    return self.poll_next(cx);
                }
                Poll::Ready(Err(e)) => {
                    // A cancellation that arrived in between disarmed the
                    // timer: arm it again for the same deadline.
                    if e.is_cancelled() {
                        self.timer = timer.deadline().map(crate::time::sleep_until);
                    }
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}
