//! Halves of a stream: a reading and a writing side that can be used by
//! different tasks, borrowed ([`ReadHalf`], [`WriteHalf`]) or owned
//! ([`OwnedReadHalf`], [`OwnedWriteHalf`]).

use super::stream::{async_read, async_write, Stream};
use crate::error::Result;
use std::fmt;
use std::net::Shutdown;
use std::sync::Arc;

/// The reading side of a borrowed stream.
pub struct ReadHalf<'a, T: Stream>(&'a T);

/// The writing side of a borrowed stream.
pub struct WriteHalf<'a, T: Stream>(&'a T);

/// The reading side of a stream, owned.
pub struct OwnedReadHalf<T: Stream>(Arc<T>);

/// The writing side of a stream, owned.
pub struct OwnedWriteHalf<T: Stream>(Arc<T>);

pub(crate) fn split<T: Stream>(stream: &T) -> (ReadHalf<'_, T>, WriteHalf<'_, T>) {
    (ReadHalf(stream), WriteHalf(stream))
}

pub(crate) fn into_split<T: Stream>(stream: Arc<T>) -> (OwnedReadHalf<T>, OwnedWriteHalf<T>) {
    (OwnedReadHalf(stream.clone()), OwnedWriteHalf(stream))
}

/// The halves given to [`OwnedReadHalf::reunite`] came from two different
/// streams; here they are back.
pub struct ReuniteError<T: Stream>(pub OwnedReadHalf<T>, pub OwnedWriteHalf<T>);

impl<T: Stream> fmt::Debug for ReuniteError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(the halves are of different streams)")
    }
}

impl<T: Stream> fmt::Display for ReuniteError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves of different streams")
    }
}

impl<T: Stream> std::error::Error for ReuniteError<T> {}

impl<T: Stream> OwnedReadHalf<T> {
    /// Puts the stream back together from its two halves.
    pub fn reunite(self, write: OwnedWriteHalf<T>) -> std::result::Result<T, ReuniteError<T>> {
        if !Arc::ptr_eq(&self.0, &write.0) {
            return Err(ReuniteError(self, write));
        }
        drop(write);
        Ok(Arc::try_unwrap(self.0).unwrap_or_else(|_| unreachable!("both halves are here")))
    }
}

macro_rules! read_half {
    ([$($generics:tt)*] $half:ty) => {
        impl<$($generics)*> $half {
            /// Reads into `buf` (0 at end of stream). A cancellation point.
            pub async fn read(&self, buf: &mut [u8]) -> Result<usize> {
                self.0.stream_io().read(buf).await
            }

            /// Reads exactly `buf.len()` bytes; cancelled or failed part-way,
            /// the bytes it read stay readable.
            pub async fn read_exact(&self, buf: &mut [u8]) -> Result<()> {
                self.0.stream_io().read_exact(buf).await
            }

            /// Waits until a read would not block.
            pub async fn readable(&self) -> Result<()> {
                self.0.stream_io().ready(crate::io::Interest::READABLE).await
            }
        }

        async_read!([$($generics)*] $half, |this| this.0.stream_io());

        impl<$($generics)*> fmt::Debug for $half {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($half))
            }
        }
    };
}

macro_rules! write_half {
    ([$($generics:tt)*] $half:ty) => {
        impl<$($generics)*> $half {
            /// Writes some of `buf`; returns how many bytes. A cancellation point.
            pub async fn write(&self, buf: &[u8]) -> Result<usize> {
                self.0.stream_io().write(buf).await
            }

            /// Writes all of `buf` (cancelled part-way, a prefix was sent).
            pub async fn write_all(&self, buf: &[u8]) -> Result<()> {
                self.0.stream_io().write_all(buf).await
            }

            /// Waits until a write would not block.
            pub async fn writable(&self) -> Result<()> {
                self.0.stream_io().ready(crate::io::Interest::WRITABLE).await
            }

            /// Half-closes the stream: the peer reads end of stream.
            pub fn shutdown(&self) -> Result<()> {
                self.0.stream_io().shutdown(Shutdown::Write)
            }
        }

        async_write!([$($generics)*] $half, |this| this.0.stream_io());

        impl<$($generics)*> fmt::Debug for $half {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($half))
            }
        }
    };
}

read_half!(['a, T: Stream] ReadHalf<'a, T>);
read_half!([T: Stream] OwnedReadHalf<T>);
write_half!(['a, T: Stream] WriteHalf<'a, T>);
write_half!([T: Stream] OwnedWriteHalf<T>);
