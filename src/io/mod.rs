//! I/O: the mio driver that idle workers sleep in. (Sockets and fd
//! readiness will be registered with it.)

pub(crate) mod driver;
