//! The C ABI: C tasks run as fibers on the work-stealing pool.
//!
//! (Being built: the fiber layer first; the exported functions follow.)

// Until the exports that use it land (issue 7, in progress).
#![allow(dead_code)]

pub(crate) mod fiber;
pub(crate) mod stack;
