//! The synchronization shim: every atomic, lock and thread primitive that a
//! concurrency protocol of spindle relies on is imported from here, so that the
//! protocols can be model-checked with [loom] by building with
//! `--cfg spindle_loom` (a name of our own: dependencies that react to a
//! global `cfg(loom)` are left alone).
//!
//! Process-wide counters that take part in no protocol (task ids) use
//! `std` atomics directly, because loom atomics cannot live in `static`s.
//!
//! [loom]: https://docs.rs/loom

#[cfg(spindle_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};

#[cfg(not(spindle_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};

#[cfg(all(spindle_loom, test))]
pub(crate) use loom::{sync::Arc, thread};

/// Locks a mutex, ignoring poisoning: spindle never panics while holding one
/// of its own locks (user code never runs under them), so a poisoned lock
/// still guards consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
