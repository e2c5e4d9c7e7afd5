//! [`shield`]: await a task without passing the awaiter's cancellation on.

use crate::error::{Error, Result};
use crate::runtime::context;
use crate::task::{IntoTask, Task};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Awaits a task while protecting it from the awaiter's cancellation, like
/// `asyncio.shield`: if the awaiting task is cancelled, the await returns the
/// cancellation at once and the shielded task keeps running to completion.
/// If the shielded task fails, the await fails with its error; if it is
/// cancelled directly, the await is cancelled too. A future is first spawned
/// as a task.
///
/// Keep a clone of the task to collect its result later:
///
/// ```
/// use std::time::Duration;
/// spindle::run(async {
///     let save = spindle::spawn(async {
///         spindle::sleep(Duration::from_millis(50)).await?;
///         spindle::Ok("saved")
///     });
///     let err = spindle::wait_for(Some(Duration::from_millis(10)), spindle::shield(save.clone()))
///         .await
///         .unwrap_err();
///     assert!(err.is_timeout());
///     assert_eq!(save.await?, "saved"); // it kept running
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn shield<A: IntoTask>(awaitable: A) -> Shield<A::Output> {
    Shield {
        task: awaitable.into_task(),
        key: None,
        read: Task::take_result,
    }
}

impl<T: Clone> Shield<T> {
    /// Like [`shield`], leaving the task's value in place so that later
    /// joins and `result()` read it again (the C API's `spindle_shield`).
    pub(crate) fn cloning(task: Task<T>) -> Shield<T> {
        Shield {
            task,
            key: None,
            read: Task::result,
        }
    }
}

/// The future of [`shield`].
#[must_use = "futures do nothing unless awaited"]
pub struct Shield<T> {
    task: Task<T>,
    key: Option<usize>,
    /// How the outcome is read once the task is done: moved out, or cloned.
    read: fn(&Task<T>) -> Result<T>,
}

impl<T> Future for Shield<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        if this.task.is_same_as_current() {
            return Poll::Ready(Err(Error::invalid_state("a task cannot await itself")));
        }
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let raw = this.task.as_any().raw;
        if !raw.header().state.load().is_complete() {
            if let Some(cancel) = context::take_current_cancel() {
                // The awaiter is cancelled; the shielded task is not told.
                crate::task::release_waiter(raw, &mut this.key);
                return Poll::Ready(Err(cancel));
            }
            std::task::ready!(crate::task::poll_done(raw, &mut this.key, cx));
        }
        Poll::Ready((this.read)(&this.task))
    }
}

impl<T> Drop for Shield<T> {
    fn drop(&mut self) {
        crate::task::release_waiter(self.task.as_any().raw, &mut self.key);
    }
}
