//! [`Promise`]: a settable future, asyncio's `Future` under a name that does
//! not clash with `std::future::Future`.

use super::completion::{Callbacks, Completion, Status, StatusRef, StoredCallback};
use super::recycle::Recycled;
use super::DoneCallback;
use crate::error::{Error, Result};
use crate::loom::{lock, Mutex};
use crate::runtime::{context, Handle, Unhandled};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A result that some code will set later, awaited by others: asyncio's
/// `Future`. Clones share the same slot. Awaiting a promise is a
/// cancellation point: if the awaiting task is cancelled, the promise is
/// cancelled too (asyncio's rule), and every awaiter gets the cancellation.
///
/// ```
/// spindle::run(async {
///     let promise = spindle::Promise::new();
///     let setter = promise.clone();
///     spindle::spawn(async move { setter.set_result("Data ready!") });
///     assert_eq!(promise.await?, "Data ready!");
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct Promise<T> {
    inner: Recycled<Inner<T>>,
    wait_key: Option<usize>,
}

struct Inner<T> {
    slot: Mutex<Slot<T>>,
}

struct Slot<T> {
    completion: Completion,
    value: Option<T>,
}

impl<T> Default for Promise<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Promise<T> {
    /// A pending promise. Its done callbacks run on the runtime of the
    /// thread that completes it (inline if that thread has none), and a
    /// failure never read is reported to the runtime of the thread that
    /// drops it last (stderr if none).
    pub fn new() -> Promise<T> {
        Promise {
            inner: Recycled::new(Inner {
                slot: Mutex::new(Slot {
                    completion: Completion::new(),
                    value: None,
                }),
            }),
            wait_key: None,
        }
    }

    fn finish(&self, status: Status, value: Option<T>) -> Result<()> {
        let released = {
            let mut slot = lock(&self.inner.slot);
            if slot.completion.is_done() {
                return Err(Error::invalid_state("the promise is already done"));
            }
            slot.value = value;
            slot.completion.finish(status)
        };
        if let Some(callbacks) = released.wake_all() {
            self.dispatch(callbacks);
        }
        Ok(())
    }

    fn dispatch(&self, callbacks: Callbacks) {
        if callbacks.is_empty() {
            return;
        }
        match Handle::try_current() {
            Ok(handle) => handle.shared.call_soon(callbacks),
            Err(_) => crate::scheduler::run_callbacks(None, callbacks, None),
        }
    }

    /// Sets the value and wakes every awaiter. An invalid-state error if the
    /// promise is already done.
    pub fn set_result(&self, value: T) -> Result<()> {
        self.finish(Status::Succeeded, Some(value))
    }

    /// Fails the promise with an error. An invalid-state error if it is
    /// already done.
    pub fn set_exception(&self, error: impl Into<Error>) -> Result<()> {
        self.finish(Status::Failed(error.into()), None)
    }

    /// Cancels the promise at once (unlike a task's cancel, which is a
    /// request). Returns `false` if it is already done; like asyncio, that
    /// still silences the report of a failure never retrieved.
    pub fn cancel(&self) -> bool {
        self.cancel_with_error(Error::cancelled(None))
    }

    /// Cancels the promise with a message for its awaiters.
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.cancel_with_error(Error::cancelled(Some(Arc::from(message.into()))))
    }

    fn cancel_with_error(&self, error: Error) -> bool {
        lock(&self.inner.slot).completion.retrieved = true;
        self.finish(Status::Failed(error), None).is_ok()
    }

    /// Whether a result, error or cancellation was set.
    pub fn done(&self) -> bool {
        lock(&self.inner.slot).completion.is_done()
    }

    /// Whether the promise was cancelled.
    pub fn cancelled(&self) -> bool {
        lock(&self.inner.slot).completion.is_cancelled()
    }

    /// The value (cloned), the error, or the cancellation; an invalid-state
    /// error while pending.
    pub fn result(&self) -> Result<T>
    where
        T: Clone,
    {
        let mut slot = lock(&self.inner.slot);
        read(&mut slot).unwrap_or_else(|| Err(Error::invalid_state("the promise is not done yet")))
    }

    /// The error: `Ok(None)` on success, `Ok(Some(e))` on failure,
    /// `Err(Cancelled)` if cancelled, `Err(InvalidState)` while pending.
    pub fn exception(&self) -> Result<Option<Error>> {
        let mut slot = lock(&self.inner.slot);
        match slot.completion.status() {
            StatusRef::Pending => Err(Error::invalid_state("the promise is not done yet")),
            StatusRef::Succeeded => Ok(None),
            StatusRef::Failed(e) if e.is_cancelled() => Err(e.clone()),
            StatusRef::Failed(_) => Ok(slot.completion.read_error()),
        }
    }

    /// Registers a done callback; it never runs inside `set_result`, but
    /// soon after, in registration order (also when added to a done promise).
    pub fn add_done_callback(&self, callback: impl Into<DoneCallback<Promise<T>>>)
    where
        T: Send + 'static,
    {
        let callback = callback.into();
        let handle = self.clone();
        let stored = StoredCallback::Closure {
            key: callback.key(),
            call: Box::new(move || callback.call(&handle)),
        };
        let ready = lock(&self.inner.slot).completion.add_callback(stored);
        if let Some(stored) = ready {
            self.dispatch(Callbacks::one(stored));
        }
    }

    /// Removes every registration of `callback`; returns how many there were.
    pub fn remove_done_callback(&self, callback: &DoneCallback<Promise<T>>) -> usize {
        lock(&self.inner.slot)
            .completion
            .remove_callbacks(callback.key())
    }
}

fn read<T: Clone>(slot: &mut Slot<T>) -> Option<Result<T>> {
    match slot.completion.status() {
        StatusRef::Pending => None,
        StatusRef::Succeeded => Some(
            slot.value
                .clone()
                .ok_or_else(|| Error::invalid_state("the promise has no value")),
        ),
        StatusRef::Failed(_) => slot.completion.read_error().map(Err),
    }
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Self {
        Promise {
            inner: self.inner.clone(),
            wait_key: None,
        }
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = lock(&self.inner.slot);
        let state = match slot.completion.status() {
            StatusRef::Pending => "pending",
            StatusRef::Succeeded => "finished",
            StatusRef::Failed(e) if e.is_cancelled() => "cancelled",
            StatusRef::Failed(_) => "failed",
        };
        f.debug_struct("Promise").field("state", &state).finish()
    }
}

impl<T: Clone> Future for Promise<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        {
            let mut slot = lock(&this.inner.slot);
            if let Some(outcome) = read(&mut slot) {
                slot.completion.unregister(&mut this.wait_key);
                return Poll::Ready(outcome);
            }
        }
        if let Some(cancel) = context::take_current_cancel() {
            // asyncio: cancelling a task that waits on a future cancels the future.
            let _ = this.cancel_with_error(cancel.clone());
            let mut slot = lock(&this.inner.slot);
            slot.completion.unregister(&mut this.wait_key);
            return Poll::Ready(read(&mut slot).unwrap_or(Err(cancel)));
        }
        let mut slot = lock(&this.inner.slot);
        if let Some(outcome) = read(&mut slot) {
            slot.completion.unregister(&mut this.wait_key);
            return Poll::Ready(outcome);
        }
        slot.completion.register(&mut this.wait_key, cx.waker());
        Poll::Pending
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if self.wait_key.is_some() {
            lock(&self.inner.slot)
                .completion
                .unregister(&mut self.wait_key);
        }
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        let slot = lock(&self.slot);
        if let Some(error) = slot.completion.unretrieved_error() {
            let report = Unhandled::never_retrieved_promise(error.clone());
            match Handle::try_current() {
                Ok(handle) => handle.shared.report(report),
                Err(_) => crate::runtime::default_report(&report),
            }
        }
    }
}
