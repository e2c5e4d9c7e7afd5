//! Readiness of any file descriptor: the building block for sockets, pipes
//! and devices that spindle does not wrap itself (the C API's fd waits use
//! it).

use super::readiness::{Interest, Ready, ReadyEvent};
use super::registration::Registered;
use crate::error::Result;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A file descriptor registered with the runtime's driver, so tasks can
/// wait until it is readable or writable. The descriptor must be in
/// non-blocking mode for the operations tried after a wait; `AsyncFd`
/// owns `inner` and deregisters the descriptor before dropping it.
///
/// Waits are cancellation points. Registering something epoll cannot watch
/// (a regular file) is an error of kind [`Io`](crate::ErrorKind::Io) with
/// `InvalidInput`.
///
/// ```
/// use spindle::io::{AsyncFd, Interest};
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
///
/// spindle::run(async {
///     let (mut a, b) = UnixStream::pair()?;
///     b.set_nonblocking(true)?;
///     let b = AsyncFd::new(b)?;
///     a.write_all(b"ping")?;
///     let mut buf = [0u8; 4];
///     let n = b.async_io(Interest::READABLE, |mut s| s.read(&mut buf)).await?;
///     assert_eq!(&buf[..n], b"ping");
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct AsyncFd<T: AsRawFd> {
    registered: Registered<FdSource>,
    /// What the descriptor is registered for: waits for anything else are
    /// refused (they would never end).
    interest: Interest,
    inner: Option<T>,
}

/// A raw descriptor as a mio source.
#[derive(Debug)]
struct FdSource(RawFd);

impl mio::event::Source for FdSource {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        mio::unix::SourceFd(&self.0).deregister(registry)
    }
}

impl<T: AsRawFd> AsyncFd<T> {
    /// Registers `inner` for both reading and writing.
    pub fn new(inner: T) -> Result<AsyncFd<T>> {
        Self::with_interest(inner, Interest::READABLE | Interest::WRITABLE)
    }

    /// Registers `inner` for `interest` only.
    pub fn with_interest(inner: T, interest: Interest) -> Result<AsyncFd<T>> {
        let registered = Registered::new(FdSource(inner.as_raw_fd()), interest)?;
        Ok(AsyncFd {
            registered,
            interest,
            inner: Some(inner),
        })
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        self.inner.as_ref().expect("present until dropped")
    }

    /// The wrapped value, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("present until dropped")
    }

    /// Deregisters the descriptor and gives the value back.
    pub fn into_inner(mut self) -> T {
        let inner = self.inner.take().expect("present until dropped");
        // Deregister now, while `inner` keeps the descriptor open.
        drop(self);
        inner
    }

    /// Waits until the descriptor is readable.
    pub async fn readable(&self) -> Result<ReadyGuard<'_, T>> {
        self.ready(Interest::READABLE).await
    }

    /// Waits until the descriptor is writable.
    pub async fn writable(&self) -> Result<ReadyGuard<'_, T>> {
        self.ready(Interest::WRITABLE).await
    }

    /// Waits until the descriptor is ready for `interest`. The guard tells
    /// what is ready; call [`ReadyGuard::clear_ready`] when an operation
    /// found it would block after all, or the next wait returns at once.
    /// An interest the descriptor was not registered for is an
    /// invalid-argument error.
    pub async fn ready(&self, interest: Interest) -> Result<ReadyGuard<'_, T>> {
        self.check_interest(interest)?;
        let event = self.registered.readiness(interest).await?;
        Ok(ReadyGuard { fd: self, event })
    }

    /// Waits for `interest`, then runs `op`; while `op` fails with
    /// `WouldBlock`, clears the readiness and waits again.
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Result<R> {
        self.check_interest(interest)?;
        let inner = self.get_ref();
        self.registered.io(interest, |_| op(inner)).await
    }

    fn check_interest(&self, interest: Interest) -> Result<()> {
        if (interest.is_readable() && !self.interest.is_readable())
            || (interest.is_writable() && !self.interest.is_writable())
        {
            return Err(crate::Error::invalid_argument(format!(
                "waiting for {interest:?} on a descriptor registered for {:?}",
                self.interest
            )));
        }
        Ok(())
    }
}

impl<T: AsRawFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.registered.get().0
    }
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// What [`AsyncFd::ready`] found.
pub struct ReadyGuard<'a, T: AsRawFd> {
    fd: &'a AsyncFd<T>,
    event: ReadyEvent,
}

impl<T: AsRawFd> ReadyGuard<'_, T> {
    /// The readiness that ended the wait.
    pub fn ready(&self) -> Ready {
        self.event.ready()
    }

    /// The operation would block after all: the next wait waits for a new
    /// event (unless one arrived since this wait returned).
    pub fn clear_ready(self) {
        self.fd.registered.clear(self.event);
    }

    /// Runs `op`; clears the readiness if it fails with `WouldBlock`.
    pub fn try_io<R>(self, op: impl FnOnce(&T) -> io::Result<R>) -> io::Result<R> {
        let result = op(self.fd.get_ref());
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.clear_ready();
        }
        result
    }
}

impl<T: AsRawFd> fmt::Debug for ReadyGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyGuard")
            .field("ready", &self.ready())
            .finish()
    }
}
