//! Waiting for tasks: [`Join`] (what awaiting a [`Task`] does), the
//! completion wait that the combinators build on, and [`IntoTask`].

use super::raw::RawTask;
use super::Task;
use crate::error::{Error, Result};
use crate::loom::lock;
use crate::runtime::context;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// `Ready` once the task is complete; otherwise registers the waker in the
/// awaiter slot `key` (kept by the caller across polls and released with
/// [`release_waiter`]).
pub(crate) fn poll_done(raw: RawTask, key: &mut Option<usize>, cx: &mut Context<'_>) -> Poll<()> {
    let mut aux = lock(&raw.header().aux);
    if aux.completion.is_done() {
        aux.completion.unregister(key);
        return Poll::Ready(());
    }
    aux.completion.register(key, cx.waker());
    Poll::Pending
}

/// Releases an awaiter slot that will not be polled again.
pub(crate) fn release_waiter(raw: RawTask, key: &mut Option<usize>) {
    if key.is_some() {
        lock(&raw.header().aux).completion.unregister(key);
    }
}

/// The future of awaiting a [`Task`]: the task's result. Awaiting a task
/// that is already done never suspends (asyncio's rule for done futures).
///
/// A cancellation point with asyncio's rule: when the awaiting task is
/// cancelled, the cancel (and its message) is passed on to the awaited task,
/// which is still awaited; the outcome of the await is the awaited task's.
#[must_use = "futures do nothing unless awaited"]
pub struct Join<T> {
    task: Task<T>,
    key: Option<usize>,
    /// How the value leaves the task's slot: moved out (awaiting a task),
    /// or cloned so that it can be read again ([`Join::cloning`]).
    read: fn(&mut Option<T>) -> Option<T>,
}

impl<T> IntoFuture for Task<T> {
    type Output = Result<T>;
    type IntoFuture = Join<T>;

    fn into_future(self) -> Join<T> {
        Join {
            task: self,
            key: None,
            read: Option::take,
        }
    }
}

impl<T: Clone> Join<T> {
    /// Awaits `task` leaving its value in place, so that later joins and
    /// `result()` read it again (asyncio's `await task`, which the C API
    /// follows).
    pub(crate) fn cloning(task: Task<T>) -> Join<T> {
        Join {
            task,
            key: None,
            read: |slot| slot.clone(),
        }
    }
}

impl<T> Join<T> {
    /// The task being awaited.
    pub fn task(&self) -> &Task<T> {
        &self.task
    }

    fn take_outcome(&mut self) -> Option<Result<T>> {
        let raw = self.task.as_any().raw;
        let mut aux = lock(&raw.header().aux);
        let outcome = self.task.read_outcome_with(&mut aux, self.read);
        if outcome.is_some() {
            aux.completion.unregister(&mut self.key);
        }
        outcome
    }
}

impl<T> Future for Join<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        if this.task.is_same_as_current() {
            return Poll::Ready(Err(Error::invalid_state("a task cannot await itself")));
        }
        let raw = this.task.as_any().raw;
        // Done already: the outcome, with no budget spent (see `coop`).
        if raw.header().state.load().is_complete() {
            if let Some(outcome) = this.take_outcome() {
                return Poll::Ready(outcome);
            }
        }
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        if let Some(cancel) = context::take_current_cancel() {
            raw.cancel(cancel.cancel_message().map(Arc::from));
        }
        match poll_done(raw, &mut this.key, cx) {
            Poll::Ready(()) => Poll::Ready(
                this.take_outcome()
                    .unwrap_or_else(|| Err(Error::invalid_state("the task is not done yet"))),
            ),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Join<T> {
    fn drop(&mut self) {
        release_waiter(self.task.as_any().raw, &mut self.key);
    }
}

/// Something that can become a task: a [`Task`] handle (as it is) or a
/// future (spawned on the current runtime, so it runs in parallel). Used by
/// the combinators that, like asyncio's, accept "awaitables".
///
/// # Panics
/// Converting a future outside a runtime panics, like [`spawn`](crate::spawn).
pub trait IntoTask {
    /// The value the task produces.
    type Output;
    /// The task.
    fn into_task(self) -> Task<Self::Output>;
}

impl<T> IntoTask for Task<T> {
    type Output = T;
    fn into_task(self) -> Task<T> {
        self
    }
}

impl<F, T, E> IntoTask for F
where
    F: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<Error>,
{
    type Output = T;
    fn into_task(self) -> Task<T> {
        crate::spawn(self)
    }
}
