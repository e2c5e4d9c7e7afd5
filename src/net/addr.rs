//! Socket addresses from the forms people write them in, resolved without
//! blocking a worker: literal addresses at once, host names through
//! [`to_thread`](crate::to_thread) (asyncio's `getaddrinfo` in the default
//! executor).

use crate::error::{Error, Result};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that names one or more socket addresses: a `SocketAddr`, an
/// `(ip, port)` pair, `"host:port"`, `("host", port)`, or a slice of
/// addresses. Host names are looked up on the blocking pool.
///
/// This trait is sealed: spindle implements it for the types above.
pub trait ToSocketAddrs: sealed::Sealed {}

mod sealed {
    /// How an address argument resolves.
    pub enum Resolution {
        Done(std::io::Result<Vec<std::net::SocketAddr>>),
        /// A host name to look up (`"host:port"`).
        Lookup(String),
    }

    pub trait Sealed {
        fn resolution(&self) -> Resolution;
    }
}

use sealed::{Resolution, Sealed};

macro_rules! literal_addresses {
    ($($ty:ty => |$a:ident| $addr:expr),* $(,)?) => {$(
        impl ToSocketAddrs for $ty {}
        impl Sealed for $ty {
            fn resolution(&self) -> Resolution {
                let $a = self;
                Resolution::Done(Ok(vec![$addr]))
            }
        }
    )*};
}

literal_addresses! {
    SocketAddr => |a| *a,
    SocketAddrV4 => |a| SocketAddr::V4(*a),
    SocketAddrV6 => |a| SocketAddr::V6(*a),
    (IpAddr, u16) => |a| SocketAddr::new(a.0, a.1),
    (Ipv4Addr, u16) => |a| SocketAddr::new(IpAddr::V4(a.0), a.1),
    (Ipv6Addr, u16) => |a| SocketAddr::new(IpAddr::V6(a.0), a.1),
}

impl ToSocketAddrs for [SocketAddr] {}
impl Sealed for [SocketAddr] {
    fn resolution(&self) -> Resolution {
        Resolution::Done(Ok(self.to_vec()))
    }
}

impl ToSocketAddrs for str {}
impl Sealed for str {
    fn resolution(&self) -> Resolution {
        match self.parse::<SocketAddr>() {
            Result::Ok(addr) => Resolution::Done(Ok(vec![addr])),
            Err(_) if self.rsplit_once(':').is_some() => Resolution::Lookup(self.to_string()),
            Err(_) => Resolution::Done(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid socket address {self:?}: expected \"host:port\""),
            ))),
        }
    }
}

impl ToSocketAddrs for String {}
impl Sealed for String {
    fn resolution(&self) -> Resolution {
        self.as_str().resolution()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Sealed for (&str, u16) {
    fn resolution(&self) -> Resolution {
        match self.0.parse::<IpAddr>() {
            Result::Ok(ip) => Resolution::Done(Ok(vec![SocketAddr::new(ip, self.1)])),
            Err(_) => Resolution::Lookup(format!("{}:{}", self.0, self.1)),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Sealed for (String, u16) {
    fn resolution(&self) -> Resolution {
        (self.0.as_str(), self.1).resolution()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: Sealed + ?Sized> Sealed for &T {
    fn resolution(&self) -> Resolution {
        (**self).resolution()
    }
}

/// Resolves `host` to its socket addresses (asyncio's `getaddrinfo`), on
/// the blocking pool when it is a name. A cancellation point.
///
/// ```
/// spindle::run(async {
///     let addrs = spindle::net::lookup_host("127.0.0.1:80").await?;
///     assert_eq!(addrs[0].port(), 80);
///     let err = spindle::net::lookup_host("no port here").await.unwrap_err();
///     assert_eq!(err.io_error().unwrap().kind(), std::io::ErrorKind::InvalidInput);
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub async fn lookup_host(host: impl ToSocketAddrs) -> Result<Vec<SocketAddr>> {
    let addrs = match host.resolution() {
        Resolution::Done(addrs) => addrs.map_err(Error::io)?,
        Resolution::Lookup(name) => crate::to_thread(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&name).map(Iterator::collect::<Vec<_>>)
        })
        .await?
        .map_err(Error::io)?,
    };
    if addrs.is_empty() {
        return Err(Error::io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )));
    }
    Ok(addrs)
}

/// Tries `attempt` on each address in turn (asyncio's `create_connection`
/// order); the first success, or the last error.
pub(crate) async fn each_address<T, F, Fut>(addrs: impl ToSocketAddrs, mut attempt: F) -> Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut last = None;
    for addr in lookup_host(addrs).await? {
        match attempt(addr).await {
            Result::Ok(value) => return Ok(value),
            Err(e) if e.is_cancelled() => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("lookup_host returns at least one address"))
}
