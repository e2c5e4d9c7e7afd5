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

/// Helpers for the loom models: a waker that counts its wakes, and a single
/// poll of a future.
#[cfg(all(spindle_loom, test))]
pub(crate) mod model {
    use super::AtomicUsize;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::Ordering::SeqCst;
    use std::task::{Context, Poll, Wake, Waker};

    /// Counts the wakes of the wakers made from it.
    #[derive(Default)]
    pub(crate) struct WakeCounter(AtomicUsize);

    impl WakeCounter {
        /// A new counter and a waker that increments it.
        pub(crate) fn new() -> (std::sync::Arc<WakeCounter>, Waker) {
            let counter = std::sync::Arc::new(WakeCounter(AtomicUsize::new(0)));
            (counter.clone(), Waker::from(counter))
        }

        /// How many times a waker of this counter was woken.
        pub(crate) fn wakes(&self) -> usize {
            self.0.load(SeqCst)
        }
    }

    impl Wake for WakeCounter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// Polls `future` once with `waker`.
    pub(crate) fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(waker))
    }
}
