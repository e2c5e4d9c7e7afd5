//! Networking on the runtime's I/O driver: TCP, UDP and Unix domain
//! sockets. Every operation that waits is a cancellation point checked
//! before any data moves; errors from the OS are of kind
//! [`Io`](crate::ErrorKind::Io) with the `std::io::Error` inside
//! ([`Error::io_error`](crate::Error::io_error)).
//!
//! Streams implement the `futures-io` `AsyncRead`/`AsyncWrite` traits, so
//! codecs and utilities of the wider ecosystem work on them; a cancellation
//! reaching a task through those traits arrives as an `io::Error` that `?`
//! turns back into the cancellation.

mod addr;
mod split;
mod stream;
mod tcp;
mod udp;
mod unix;

pub use addr::{lookup_host, ToSocketAddrs};
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use stream::Stream;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};
