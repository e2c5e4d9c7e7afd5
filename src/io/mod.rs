//! I/O: the mio driver that idle workers sleep in, the registrations of
//! sources with it, readiness of any file descriptor ([`AsyncFd`]), and
//! [`to_thread`] for blocking calls. Sockets are in [`crate::net`].
//!
//! Every readiness wait is a cancellation point, checked before the
//! operation is tried, so a cancelled read or write has moved no data.

mod async_fd;
pub(crate) mod blocking;
pub(crate) mod driver;
mod readiness;
pub(crate) mod registration;

pub use async_fd::{AsyncFd, ReadyGuard};
pub use blocking::{to_thread, ToThread};
pub(crate) use readiness::Direction;
pub use readiness::{Interest, Ready};
