//! TCP: [`TcpListener`] and [`TcpStream`].

use super::addr::{each_address, ToSocketAddrs};
use super::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use super::stream::{async_read_write, stream_methods, Stream, StreamIo};
use crate::error::{Error, Result};
use crate::io::registration::Registered;
use crate::io::Interest;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// A TCP socket listening for connections (asyncio's `start_server`
/// socket).
///
/// ```
/// use spindle::net::{TcpListener, TcpStream};
///
/// spindle::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let server = spindle::spawn(async move {
///         let (stream, _) = listener.accept().await?;
///         let mut buf = [0u8; 5];
///         stream.read_exact(&mut buf).await?;
///         stream.write_all(&buf).await?;
///         spindle::Ok(())
///     });
///     let client = TcpStream::connect(addr).await?;
///     client.write_all(b"hello").await?;
///     let mut echo = [0u8; 5];
///     client.read_exact(&mut echo).await?;
///     assert_eq!(&echo, b"hello");
///     server.await
/// }).unwrap();
/// ```
pub struct TcpListener {
    registered: Registered<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (trying each address it resolves to) and listens,
    /// with `SO_REUSEADDR` set. Port 0 picks a free port.
    pub async fn bind(addr: impl ToSocketAddrs) -> Result<TcpListener> {
        each_address(addr, |addr| async move {
            let listener = mio::net::TcpListener::bind(addr).map_err(Error::io)?;
            TcpListener::from_mio(listener)
        })
        .await
    }

    fn from_mio(listener: mio::net::TcpListener) -> Result<TcpListener> {
        Ok(TcpListener {
            registered: Registered::new(listener, Interest::READABLE)?,
        })
    }

    /// Adopts a listening standard-library socket (made non-blocking here).
    pub fn from_std(listener: std::net::TcpListener) -> Result<TcpListener> {
        listener.set_nonblocking(true).map_err(Error::io)?;
        Self::from_mio(mio::net::TcpListener::from_std(listener))
    }

    /// Waits for the next connection. A cancellation point; a failure
    /// (out of file descriptors, a connection aborted before it was
    /// accepted) affects this call only: the listener keeps working, and
    /// after `EMFILE` the waiting connection is accepted by a later call.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self
            .registered
            .io(Interest::READABLE, |l| l.accept())
            .await?;
        Ok((TcpStream::from_mio(stream)?, addr))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.registered.get().local_addr().map_err(Error::io)
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.registered.get().as_raw_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.registered, f)
    }
}

/// A TCP connection (asyncio's reader/writer pair in one object). Reads and
/// writes take `&self`, so one task can read while another writes; `split`
/// and `into_split` give typed halves. Implements the `futures-io`
/// `AsyncRead`/`AsyncWrite` traits (also on `&TcpStream`).
pub struct TcpStream {
    io: StreamIo<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, trying each address it resolves to in turn.
    /// A refused connection is an error of kind [`Io`](crate::ErrorKind::Io)
    /// with `ConnectionRefused`.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
        each_address(addr, |addr| async move {
            let stream = mio::net::TcpStream::connect(addr).map_err(Error::io)?;
            let stream = TcpStream::from_mio(stream)?;
            stream.finish_connect().await?;
            Ok(stream)
        })
        .await
    }

    /// Waits until a non-blocking connect is done, and says how it ended.
    async fn finish_connect(&self) -> Result<()> {
        let registered = self.io.registered();
        loop {
            let event = registered.readiness(Interest::WRITABLE).await?;
            let socket = registered.get();
            if let Some(e) = socket.take_error().map_err(Error::io)? {
                return Err(Error::io(e));
            }
            match socket.peer_addr() {
                Result::Ok(_) => return Ok(()),
                // Still in progress (the first, optimistic readiness).
                Err(e) if e.kind() == io::ErrorKind::NotConnected => registered.clear(event),
                Err(e) => return Err(Error::io(e)),
            }
        }
    }

    fn from_mio(stream: mio::net::TcpStream) -> Result<TcpStream> {
        Ok(TcpStream {
            io: StreamIo::new(stream)?,
        })
    }

    /// Adopts a connected standard-library socket (made non-blocking here).
    pub fn from_std(stream: std::net::TcpStream) -> Result<TcpStream> {
        stream.set_nonblocking(true).map_err(Error::io)?;
        Self::from_mio(mio::net::TcpStream::from_std(stream))
    }

    stream_methods!(io);

    /// Reads into `buf` without taking the bytes from the socket (bytes a
    /// cancelled `read_exact` gave back come first, as they do for `read`).
    pub async fn peek(&self, buf: &mut [u8]) -> Result<usize> {
        let n = self.io.peek_unread(buf);
        if n > 0 {
            return Ok(n);
        }
        self.io
            .registered()
            .io(Interest::READABLE, |s| s.peek(buf))
            .await
    }

    /// Shuts down the reading side, the writing side (a half-close: the
    /// peer reads end of stream, and can still send), or both.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.io.shutdown(how)
    }

    /// The local address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.io.get().local_addr().map_err(Error::io)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.io.get().peer_addr().map_err(Error::io)
    }

    /// Sets `TCP_NODELAY` (no Nagle delay for small writes).
    pub fn set_nodelay(&self, nodelay: bool) -> Result<()> {
        self.io.get().set_nodelay(nodelay).map_err(Error::io)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> Result<bool> {
        self.io.get().nodelay().map_err(Error::io)
    }

    /// Borrowed halves: one task reads while another writes. (With
    /// `futures::io::AsyncReadExt` in scope, `stream.split()` resolves to
    /// that trait's by-value `split`; call `TcpStream::split(&stream)`.)
    pub fn split(&self) -> (ReadHalf<'_, TcpStream>, WriteHalf<'_, TcpStream>) {
        super::split::split(self)
    }

    /// Owned halves that can move into different tasks;
    /// [`OwnedReadHalf::reunite`] puts them back together.
    pub fn into_split(self) -> (OwnedReadHalf<TcpStream>, OwnedWriteHalf<TcpStream>) {
        super::split::into_split(Arc::new(self))
    }
}

impl Stream for TcpStream {
    type Source = mio::net::TcpStream;
    fn stream_io(&self) -> &StreamIo<Self::Source> {
        &self.io
    }
}

async_read_write!(TcpStream, |this| this.io);

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_raw_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}
