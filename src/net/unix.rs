//! Unix domain stream sockets: [`UnixListener`] and [`UnixStream`].

use super::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use super::stream::{async_read_write, stream_methods, Stream, StreamIo};
use crate::error::{Error, Result};
use crate::io::registration::Registered;
use crate::io::Interest;
use std::fmt;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A Unix domain socket listening for connections.
///
/// ```
/// use spindle::net::{UnixListener, UnixStream};
///
/// spindle::run(async {
///     let path = std::env::temp_dir().join(format!("spindle-doc-{}.sock", std::process::id()));
///     let _ = std::fs::remove_file(&path);
///     let listener = UnixListener::bind(&path)?;
///     let client = UnixStream::connect(&path).await?;
///     let (server, _) = listener.accept().await?;
///     client.write_all(b"hi").await?;
///     let mut buf = [0u8; 2];
///     server.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     std::fs::remove_file(&path)?;
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct UnixListener {
    registered: Registered<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to the filesystem path `path` and listens (the path must not
    /// exist yet).
    pub fn bind(path: impl AsRef<Path>) -> Result<UnixListener> {
        let listener = mio::net::UnixListener::bind(path).map_err(Error::io)?;
        Ok(UnixListener {
            registered: Registered::new(listener, Interest::READABLE)?,
        })
    }

    /// Adopts a listening standard-library socket (made non-blocking here).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> Result<UnixListener> {
        listener.set_nonblocking(true).map_err(Error::io)?;
        Ok(UnixListener {
            registered: Registered::new(
                mio::net::UnixListener::from_std(listener),
                Interest::READABLE,
            )?,
        })
    }

    /// Waits for the next connection. A cancellation point; a failure
    /// affects this call only.
    pub async fn accept(&self) -> Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self
            .registered
            .io(Interest::READABLE, |l| l.accept())
            .await?;
        Ok((UnixStream::from_mio(stream)?, addr))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.registered.get().local_addr().map_err(Error::io)
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.registered.get().as_raw_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.registered, f)
    }
}

/// A Unix domain stream connection; the same surface as
/// [`TcpStream`](super::TcpStream).
pub struct UnixStream {
    io: StreamIo<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> Result<UnixStream> {
        let stream = UnixStream::from_mio(mio::net::UnixStream::connect(path).map_err(Error::io)?)?;
        let registered = stream.io.registered();
        loop {
            let event = registered.readiness(Interest::WRITABLE).await?;
            if let Some(e) = registered.get().take_error().map_err(Error::io)? {
                return Err(Error::io(e));
            }
            match registered.get().peer_addr() {
                Result::Ok(_) => return Ok(stream),
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => registered.clear(event),
                Err(e) => return Err(Error::io(e)),
            }
        }
    }

    /// A connected pair of streams.
    pub fn pair() -> Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair().map_err(Error::io)?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    fn from_mio(stream: mio::net::UnixStream) -> Result<UnixStream> {
        Ok(UnixStream {
            io: StreamIo::new(stream)?,
        })
    }

    /// Adopts a connected standard-library socket (made non-blocking here).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> Result<UnixStream> {
        stream.set_nonblocking(true).map_err(Error::io)?;
        Self::from_mio(mio::net::UnixStream::from_std(stream))
    }

    stream_methods!(io);

    /// Shuts down the reading side, the writing side (half-close), or both.
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

    /// Borrowed halves.
    pub fn split(&self) -> (ReadHalf<'_, UnixStream>, WriteHalf<'_, UnixStream>) {
        super::split::split(self)
    }

    /// Owned halves.
    pub fn into_split(self) -> (OwnedReadHalf<UnixStream>, OwnedWriteHalf<UnixStream>) {
        super::split::into_split(Arc::new(self))
    }
}

impl Stream for UnixStream {
    type Source = mio::net::UnixStream;
    fn stream_io(&self) -> &StreamIo<Self::Source> {
        &self.io
    }
}

async_read_write!(UnixStream, |this| this.io);

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_raw_fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}
