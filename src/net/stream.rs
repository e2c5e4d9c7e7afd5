//! What TCP and Unix streams (and their halves) share: reading and writing
//! through the driver, and the `futures-io` traits.
//!
//! Cancellation: `read`, `write` and the waits are cancellation points
//! checked before any byte moves. `read_exact` gives the bytes it had read
//! back to the stream when it is cancelled or fails, so the next read
//! returns them: nothing is lost. `write_all` cancelled part-way has sent a
//! prefix of its buffer; use `write` in a loop when the exact count matters.

use crate::error::{Error, Result};
use crate::io::registration::Registered;
use crate::io::{Direction, Interest};
use crate::loom::{lock, Mutex};
use crate::runtime::context;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// A mio stream socket.
pub trait StreamSource: mio::event::Source + Send + Sync + 'static {
    /// `read(2)` on a shared reference.
    fn read_from(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// `write(2)` on a shared reference.
    fn write_to(&self, buf: &[u8]) -> io::Result<usize>;
    /// `writev(2)` on a shared reference.
    fn write_vectored_to(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// `shutdown(2)`.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

macro_rules! stream_source {
    ($($ty:ty),*) => {$(
        impl StreamSource for $ty {
            fn read_from(&self, buf: &mut [u8]) -> io::Result<usize> {
                (&*self).read(buf)
            }
            fn write_to(&self, buf: &[u8]) -> io::Result<usize> {
                (&*self).write(buf)
            }
            fn write_vectored_to(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                (&*self).write_vectored(bufs)
            }
            fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                <$ty>::shutdown(self, how)
            }
        }
    )*};
}

stream_source!(mio::net::TcpStream, mio::net::UnixStream);

/// A registered stream socket.
pub struct StreamIo<S: StreamSource> {
    registered: Registered<S>,
    /// Bytes a cancelled or failed `read_exact` had taken: reads return
    /// them first.
    unread: Mutex<Vec<u8>>,
    has_unread: AtomicBool,
}

impl<S: StreamSource> StreamIo<S> {
    pub(crate) fn new(source: S) -> Result<StreamIo<S>> {
        Ok(StreamIo {
            registered: Registered::new(source, Interest::READABLE | Interest::WRITABLE)?,
            unread: Mutex::new(Vec::new()),
            has_unread: AtomicBool::new(false),
        })
    }

    pub(crate) fn registered(&self) -> &Registered<S> {
        &self.registered
    }

    pub(crate) fn get(&self) -> &S {
        self.registered.get()
    }

    /// Moves given-back bytes into `buf`; returns how many (0 if none).
    fn take_unread(&self, buf: &mut [u8]) -> usize {
        if !self.has_unread.load(Ordering::Acquire) || buf.is_empty() {
            return 0;
        }
        let mut unread = lock(&self.unread);
        let n = unread.len().min(buf.len());
        buf[..n].copy_from_slice(&unread[..n]);
        unread.drain(..n);
        self.has_unread.store(!unread.is_empty(), Ordering::Release);
        n
    }

    /// Gives `bytes` back to the stream, in front of any already given back.
    fn give_back(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut unread = lock(&self.unread);
        unread.splice(0..0, bytes.iter().copied());
        self.has_unread.store(true, Ordering::Release);
    }

    pub(crate) async fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.has_unread.load(Ordering::Acquire) {
            if let Some(cancel) = context::take_current_cancel() {
                return Err(cancel);
            }
            let n = self.take_unread(buf);
            if n > 0 {
                return Ok(n);
            }
        }
        self.registered
            .stream_io(Interest::READABLE, buf.len(), |s| s.read_from(buf))
            .await
    }

    pub(crate) async fn read_exact(&self, buf: &mut [u8]) -> Result<()> {
        // Gives the bytes read so far back to the stream if this future is
        // cancelled, fails, or is dropped part-way.
        struct Progress<'a, S: StreamSource> {
            io: &'a StreamIo<S>,
            buf: &'a mut [u8],
            filled: usize,
        }
        impl<S: StreamSource> Drop for Progress<'_, S> {
            fn drop(&mut self) {
                if self.filled < self.buf.len() {
                    self.io.give_back(&self.buf[..self.filled]);
                }
            }
        }
        let len = buf.len();
        let mut progress = Progress {
            io: self,
            buf,
            filled: 0,
        };
        while progress.filled < len {
            let filled = progress.filled;
            match self.read(&mut progress.buf[filled..]).await? {
                0 => {
                    return Err(Error::io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("end of stream after {filled} of {len} bytes (they stay readable)"),
                    )))
                }
                n => progress.filled += n,
            }
        }
        Ok(())
    }

    /// Copies given-back bytes into `buf` without taking them (0 if none).
    pub(crate) fn peek_unread(&self, buf: &mut [u8]) -> usize {
        if !self.has_unread.load(Ordering::Acquire) {
            return 0;
        }
        let unread = lock(&self.unread);
        let n = unread.len().min(buf.len());
        buf[..n].copy_from_slice(&unread[..n]);
        n
    }

    pub(crate) async fn write(&self, buf: &[u8]) -> Result<usize> {
        self.registered
            .stream_io(Interest::WRITABLE, buf.len(), |s| s.write_to(buf))
            .await
    }

    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(Error::io(io::ErrorKind::WriteZero.into())),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    pub(crate) async fn ready(&self, interest: Interest) -> Result<()> {
        if interest.is_readable() && self.has_unread.load(Ordering::Acquire) {
            // Given-back bytes are readable now.
            return match context::take_current_cancel() {
                Some(cancel) => Err(cancel),
                None => Ok(()),
            };
        }
        self.registered.readiness(interest).await.map(drop)
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.get().shutdown(how).map_err(Error::io)
    }

    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = self.take_unread(buf);
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        self.registered
            .poll_stream_io(cx, Direction::Read, buf.len(), |s| s.read_from(buf))
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.registered
            .poll_stream_io(cx, Direction::Write, buf.len(), |s| s.write_to(buf))
    }

    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let room = bufs.iter().map(|buf| buf.len()).sum();
        self.registered
            .poll_stream_io(cx, Direction::Write, room, |s| s.write_vectored_to(bufs))
    }
}

/// A stream type that can be split into halves ([`ReadHalf`](super::ReadHalf)
/// and friends). Sealed: implemented by [`TcpStream`](super::TcpStream) and
/// [`UnixStream`](super::UnixStream).
pub trait Stream: Send + Sync + 'static {
    /// The mio socket inside.
    #[doc(hidden)]
    type Source: StreamSource;
    #[doc(hidden)]
    fn stream_io(&self) -> &StreamIo<Self::Source>;
}

/// The stream methods shared by TCP and Unix streams: one definition,
/// expanded into each type (`$io` gets the `StreamIo` from `self`).
macro_rules! stream_methods {
    ($($io:tt)+) => {
        /// Reads into `buf`; returns how many bytes were read (0 at end of
        /// stream). Waits until data arrives. A cancellation point.
        pub async fn read(&self, buf: &mut [u8]) -> $crate::Result<usize> {
            self.$($io)+.read(buf).await
        }

        /// Reads exactly `buf.len()` bytes. At end of stream first: an error
        /// of kind `UnexpectedEof`. Cancelled or failed part-way, the bytes
        /// it read are given back and the next read returns them.
        pub async fn read_exact(&self, buf: &mut [u8]) -> $crate::Result<()> {
            self.$($io)+.read_exact(buf).await
        }

        /// Writes some of `buf`; returns how many bytes were written. Waits
        /// while the socket's buffer is full. A cancellation point.
        pub async fn write(&self, buf: &[u8]) -> $crate::Result<usize> {
            self.$($io)+.write(buf).await
        }

        /// Writes all of `buf`. Cancelled part-way, a prefix of `buf` has
        /// been sent (use [`write`](Self::write) to count exactly).
        pub async fn write_all(&self, buf: &[u8]) -> $crate::Result<()> {
            self.$($io)+.write_all(buf).await
        }

        /// Waits until a read would not block.
        pub async fn readable(&self) -> $crate::Result<()> {
            self.$($io)+.ready($crate::io::Interest::READABLE).await
        }

        /// Waits until a write would not block.
        pub async fn writable(&self) -> $crate::Result<()> {
            self.$($io)+.ready($crate::io::Interest::WRITABLE).await
        }
    };
}

/// `futures-io` `AsyncRead` for a type and for references to it.
macro_rules! async_read {
    ([$($generics:tt)*] $ty:ty, |$this:ident| $io:expr) => {
        impl<$($generics)*> futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_read(cx, buf)
            }
        }
    };
}

/// `futures-io` `AsyncWrite`; closing shuts the writing side down.
macro_rules! async_write {
    ([$($generics:tt)*] $ty:ty, |$this:ident| $io:expr) => {
        impl<$($generics)*> futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // Nothing is buffered in user space.
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                std::task::Poll::Ready(
                    $crate::net::stream::StreamSource::shutdown(
                        $io.get(),
                        std::net::Shutdown::Write,
                    )
                        .or_else(|e| match e.kind() {
                            // Already closed by the peer: closing is done.
                            std::io::ErrorKind::NotConnected => Ok(()),
                            _ => Err(e),
                        }),
                )
            }
        }
    };
}

/// Both `futures-io` traits, for a stream type and `&` it.
macro_rules! async_read_write {
    ($ty:ty, |$this:ident| $io:expr) => {
        $crate::net::stream::async_read!([] $ty, |$this| $io);
        $crate::net::stream::async_read!(['a] &'a $ty, |$this| $io);
        $crate::net::stream::async_write!([] $ty, |$this| $io);
        $crate::net::stream::async_write!(['a] &'a $ty, |$this| $io);
    };
}

pub(crate) use {async_read, async_read_write, async_write, stream_methods};
