//! An I/O source registered with the driver of the current runtime, and
//! the two ways tasks wait on it: readiness futures (any number of waiters)
//! and poll-style calls (one reader and one writer, for the `futures-io`
//! traits).
//!
//! Every wait is a cancellation point checked *before* the operation is
//! tried: a cancelled task has moved no data.

use super::readiness::{Direction, Interest, ReadyEvent, ScheduledIo};
use crate::error::{Error, Result};
use crate::io::driver::Key;
use crate::runtime::context;
use crate::scheduler::Shared;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// A mio source registered with a runtime's driver; deregistered (before
/// the source is closed) when dropped.
pub(crate) struct Registered<S: mio::event::Source> {
    /// Always `Some` until `into_inner` or drop.
    source: Option<S>,
    io: Arc<ScheduledIo>,
    key: Option<Key>,
    shared: Arc<Shared>,
}

impl<S: mio::event::Source> Registered<S> {
    /// Registers `source` with the current runtime's driver.
    pub(crate) fn new(mut source: S, interest: Interest) -> Result<Registered<S>> {
        let Some(handle) = context::current_handle() else {
            return Err(Error::runtime(
                "I/O needs a running spindle runtime (call from a task or inside Handle::enter)",
            ));
        };
        let shared = handle.shared;
        let (key, io) = shared.driver.register(&mut source, interest.to_mio())?;
        Ok(Registered {
            source: Some(source),
            io,
            key: Some(key),
            shared,
        })
    }

    /// The source.
    pub(crate) fn get(&self) -> &S {
        self.source.as_ref().expect("present until dropped")
    }

    fn deregister(&mut self) {
        if let (Some(source), Some(key)) = (self.source.as_mut(), self.key.take()) {
            self.shared.driver.deregister(source, key);
        }
    }

    /// Waits until the source is ready for `interest`.
    pub(crate) fn readiness(&self, interest: Interest) -> Readiness<'_> {
        Readiness {
            io: &self.io,
            interest,
            key: None,
        }
    }

    /// The operation after `event` would block: wait for the next event.
    pub(crate) fn clear(&self, event: ReadyEvent) {
        self.io.clear(event);
    }

    /// Runs `op` when the source is ready for `interest`, waiting again
    /// each time it would block.
    pub(crate) async fn io<R>(
        &self,
        interest: Interest,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> Result<R> {
        self.io_until(interest, op, |_| false).await
    }

    /// [`io`](Self::io) for a stream socket's read or write with `room`
    /// bytes of buffer: an operation that moved some bytes but fewer than
    /// `room` also clears the readiness it used (see [`drained`]), so the
    /// next one waits for the driver instead of making a system call that
    /// would only say `WouldBlock`.
    pub(crate) async fn stream_io(
        &self,
        interest: Interest,
        room: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> Result<usize> {
        self.io_until(interest, op, |&n| drained(n, room)).await
    }

    async fn io_until<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&S) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Result<R> {
        loop {
            let event = self.readiness(interest).await?;
            match op(self.get()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear(event),
                Ok(value) => {
                    if drained(&value) {
                        self.io.clear(event);
                    }
                    return Ok(value);
                }
                Err(e) => return Err(Error::io(e)),
            }
        }
    }

    /// The poll form of [`stream_io`](Self::stream_io), for the
    /// `futures-io` traits: one waiter per direction. A cancellation comes
    /// back as an `io::Error` that converts into the cancellation again
    /// with `?`.
    pub(crate) fn poll_stream_io(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        room: usize,
        mut op: impl FnMut(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        ready!(crate::scheduler::coop::poll_proceed(cx));
        if let Some(cancel) = context::take_current_cancel() {
            return Poll::Ready(Err(cancel.into()));
        }
        loop {
            let event = ready!(self.io.poll_ready_slot(cx, direction))?;
            match op(self.get()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear(event),
                Ok(moved) => {
                    if drained(moved, room) {
                        self.io.clear(event);
                    }
                    return Poll::Ready(Ok(moved));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Whether a stream socket's read or write that moved `moved` of `room`
/// bytes shows that the socket is drained (nothing left to read, no room
/// left to write). On an edge-triggered selector (epoll, kqueue; mio uses
/// nothing else on the platforms spindle supports) a read returns less than
/// asked only when the receive queue is empty, and a write only when the
/// send buffer is full, and any later change raises a new event, which
/// `clear` does not erase. Nothing moved (end of stream, or an empty
/// buffer) proves nothing.
fn drained(moved: usize, room: usize) -> bool {
    0 < moved && moved < room
}

impl<S: mio::event::Source> Drop for Registered<S> {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl<S: mio::event::Source + fmt::Debug> fmt::Debug for Registered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.get(), f)
    }
}

/// Waits for one readiness of a registered source; a cancellation point.
pub(crate) struct Readiness<'a> {
    io: &'a ScheduledIo,
    interest: Interest,
    key: Option<u64>,
}

impl Future for Readiness<'_> {
    type Output = Result<ReadyEvent>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<ReadyEvent>> {
        ready!(crate::scheduler::coop::poll_proceed(cx));
        if let Some(cancel) = context::take_current_cancel() {
            return Poll::Ready(Err(cancel));
        }
        let this = &mut *self;
        let result = ready!(this.io.poll_ready_keyed(cx, this.interest, &mut this.key));
        // Ready: the driver already took this waiter off its list.
        this.key = None;
        Poll::Ready(result)
    }
}

impl Drop for Readiness<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.io.forget(key);
        }
    }
}
