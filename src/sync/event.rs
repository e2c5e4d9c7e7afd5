//! [`Event`]: a flag tasks can wait for (asyncio's `Event`).

use super::waitlist::WaitList;
use crate::error::{Error, Result};
use crate::loom::{lock, Mutex};
use crate::runtime::context;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A flag that tasks wait for: `set` wakes every waiter, `clear` resets it.
/// A waiter woken by `set` resumes even if the flag is cleared before it
/// runs; a cancelled waiter leaves the queue.
///
/// ```
/// use std::sync::Arc;
/// spindle::run(async {
///     let event = Arc::new(spindle::Event::new());
///     let waiter = {
///         let event = event.clone();
///         spindle::spawn(async move { event.wait().await })
///     };
///     spindle::yield_now().await?;
///     event.set();
///     waiter.await?;
///     assert!(event.is_set());
///     spindle::Ok(())
/// }).unwrap();
/// ```
#[derive(Default)]
pub struct Event {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    set: bool,
    waiters: WaitList,
}

impl Event {
    /// An event that is not set.
    pub fn new() -> Event {
        Event::default()
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        lock(&self.state).set
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let wakers = {
            let mut state = lock(&self.state);
            state.set = true;
            state.waiters.grant_all()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        lock(&self.state).set = false;
    }

    /// Waits until the flag is set (at once if it is). A cancellation point
    /// when it has to wait.
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            key: None,
            done: false,
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Event")
            .field("set", &state.set)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// The future of [`Event::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    key: Option<usize>,
    done: bool,
}

impl Future for EventWait<'_> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        if this.done {
            return Poll::Ready(Err(Error::invalid_state("wait polled after completion")));
        }
        match this.key {
            None => {
                if lock(&this.event.state).set {
                    this.done = true;
                    return Poll::Ready(Ok(()));
                }
                if let Some(cancel) = context::take_current_cancel() {
                    this.done = true;
                    return Poll::Ready(Err(cancel));
                }
                let mut state = lock(&this.event.state);
                if state.set {
                    this.done = true;
                    return Poll::Ready(Ok(()));
                }
                this.key = Some(state.waiters.push(cx.waker()));
                Poll::Pending
            }
            Some(key) => {
                if let Some(cancel) = context::take_current_cancel() {
                    lock(&this.event.state).waiters.remove(key);
                    this.key = None;
                    this.done = true;
                    return Poll::Ready(Err(cancel));
                }
                let mut state = lock(&this.event.state);
                if state.waiters.is_granted(key) {
                    state.waiters.remove(key);
                    this.key = None;
                    this.done = true;
                    return Poll::Ready(Ok(()));
                }
                state.waiters.set_waker(key, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.event.state).waiters.remove(key);
        }
    }
}
