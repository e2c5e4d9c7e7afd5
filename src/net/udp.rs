//! UDP: [`UdpSocket`].

use super::addr::{each_address, lookup_host, ToSocketAddrs};
use crate::error::{Error, Result};
use crate::io::registration::Registered;
use crate::io::Interest;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// A UDP socket (asyncio's datagram endpoint). Every method takes `&self`,
/// so several tasks may send and receive on one socket at once.
///
/// ```
/// use spindle::net::UdpSocket;
///
/// spindle::run(async {
///     let a = UdpSocket::bind("127.0.0.1:0").await?;
///     let b = UdpSocket::bind("127.0.0.1:0").await?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buf = [0u8; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct UdpSocket {
    registered: Registered<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (trying each address it resolves to).
    pub async fn bind(addr: impl ToSocketAddrs) -> Result<UdpSocket> {
        each_address(addr, |addr| async move {
            let socket = mio::net::UdpSocket::bind(addr).map_err(Error::io)?;
            UdpSocket::from_mio(socket)
        })
        .await
    }

    fn from_mio(socket: mio::net::UdpSocket) -> Result<UdpSocket> {
        Ok(UdpSocket {
            registered: Registered::new(socket, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// Adopts a bound standard-library socket (made non-blocking here).
    pub fn from_std(socket: std::net::UdpSocket) -> Result<UdpSocket> {
        socket.set_nonblocking(true).map_err(Error::io)?;
        Self::from_mio(mio::net::UdpSocket::from_std(socket))
    }

    /// Sets the default peer for [`send`](Self::send) and
    /// [`recv`](Self::recv), and only receives from it.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> Result<()> {
        let mut last = None;
        for addr in lookup_host(addr).await? {
            match self.registered.get().connect(addr) {
                Result::Ok(()) => return Ok(()),
                Err(e) => last = Some(Error::io(e)),
            }
        }
        Err(last.expect("lookup_host returns at least one address"))
    }

    /// Sends one datagram to `target`. A cancellation point.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> Result<usize> {
        each_address(target, |target| {
            self.registered
                .io(Interest::WRITABLE, move |s| s.send_to(buf, target))
        })
        .await
    }

    /// Receives one datagram; returns its length and sender. A datagram
    /// longer than `buf` is cut. A cancellation point.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.registered
            .io(Interest::READABLE, |s| s.recv_from(buf))
            .await
    }

    /// Sends one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> Result<usize> {
        self.registered
            .io(Interest::WRITABLE, |s| s.send(buf))
            .await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.registered
            .io(Interest::READABLE, |s| s.recv(buf))
            .await
    }

    /// Waits until a datagram can be received.
    pub async fn readable(&self) -> Result<()> {
        self.registered
            .readiness(Interest::READABLE)
            .await
            .map(drop)
    }

    /// Waits until a datagram can be sent.
    pub async fn writable(&self) -> Result<()> {
        self.registered
            .readiness(Interest::WRITABLE)
            .await
            .map(drop)
    }

    /// The local address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.registered.get().local_addr().map_err(Error::io)
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.registered.get().peer_addr().map_err(Error::io)
    }

    /// Allows sending to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> Result<()> {
        self.registered.get().set_broadcast(on).map_err(Error::io)
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.registered.get().as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.registered, f)
    }
}
