//! Cancellation points that are not tied to another object: [`yield_now`] and
//! [`cancellable`], the wrapper that makes any future observe cancellation.

use crate::error::{Error, Result};
use crate::runtime::context;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the scheduler once, like asyncio's `sleep(0)`: the task goes to
/// the back of its worker's run queue. A cancellation point: a pending cancel
/// request is delivered after the yield.
///
/// ```
/// spindle::run(async {
///     spindle::yield_now().await?;
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if !self.yielded {
            self.yielded = true;
            // Woken while running: the worker puts the task at the back.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match context::take_current_cancel() {
            Some(cancel) => Poll::Ready(Err(cancel)),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Makes a future from outside spindle a cancellation point: when the task
/// awaiting it is cancelled, the inner future is dropped and the await
/// returns the cancellation error.
///
/// ```
/// spindle::run(async {
///     let task = spindle::spawn(spindle::cancellable(std::future::pending::<()>()));
///     spindle::yield_now().await?;
///     task.cancel_with("enough");
///     let err = task.await.unwrap_err();
///     assert_eq!(err.cancel_message(), Some("enough"));
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn cancellable<F: IntoFuture>(future: F) -> Cancellable<F::IntoFuture> {
    Cancellable {
        inner: Some(future.into_future()),
    }
}

/// The future of [`cancellable`].
#[must_use = "futures do nothing unless awaited"]
pub struct Cancellable<F> {
    inner: Option<F>,
}

impl<F: Future> Future for Cancellable<F> {
    type Output = Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out, only
        // dropped in place (set to `None`), and `Cancellable` has no `Drop`
        // impl or `Unpin` impl of its own that would move it.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(cancel) = context::take_current_cancel() {
            this.inner = None;
            return Poll::Ready(Err(cancel));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(Error::invalid_state(
                "cancellable polled after completion",
            )));
        };
        // SAFETY: see above; `inner` stays in place until dropped.
        let inner = unsafe { Pin::new_unchecked(inner) };
        match inner.poll(cx) {
            Poll::Ready(value) => {
                this.inner = None;
                Poll::Ready(Ok(value))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
