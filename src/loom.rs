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
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};

#[cfg(not(spindle_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};

#[cfg(all(spindle_loom, test))]
pub(crate) use loom::{sync::Arc, thread};

/// Lets another thread run while this one waits for a step that another
/// thread has started and not finished yet (loom must see the wait as a
/// yield, or it reports a livelock).
#[cfg(spindle_loom)]
pub(crate) use loom::thread::yield_now;
#[cfg(not(spindle_loom))]
pub(crate) use std::thread::yield_now;

/// A cell whose reads and writes are checked for races in loom models
/// (`loom::cell::UnsafeCell`); a plain [`std::cell::UnsafeCell`] otherwise.
#[cfg(spindle_loom)]
pub(crate) use loom::cell::UnsafeCell as RaceCell;

/// A cell whose reads and writes are checked for races in loom models;
/// in ordinary builds a plain [`std::cell::UnsafeCell`] with loom's API.
#[cfg(not(spindle_loom))]
pub(crate) struct RaceCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(spindle_loom))]
impl<T> RaceCell<T> {
    pub(crate) fn new(value: T) -> RaceCell<T> {
        RaceCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer for reading the value.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a pointer for writing the value.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Locks a mutex, ignoring poisoning: spindle never panics while holding one
/// of its own locks (user code never runs under them), so a poisoned lock
/// still guards consistent data.
#[cfg(not(spindle_helgrind))]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What [`lock`] returns.
#[cfg(not(spindle_helgrind))]
pub(crate) type Guard<'a, T> = MutexGuard<'a, T>;

/// Locks a mutex if nobody holds it (poisoning ignored, as in [`lock`]);
/// `None` if it is held. In helgrind builds the guard is announced like
/// [`lock`]'s.
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<Guard<'_, T>> {
    let guard = match mutex.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    #[cfg(spindle_helgrind)]
    return Some(HelgrindGuard::relocked(mutex, guard));
    #[cfg(not(spindle_helgrind))]
    Some(guard)
}

/// Waits on `condvar`, releasing the lock of `guard` meanwhile (poisoning
/// ignored, as in [`lock`]).
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: Guard<'a, T>) -> Guard<'a, T> {
    #[cfg(spindle_helgrind)]
    {
        let (mutex, guard) = guard.into_parts();
        HelgrindGuard::relocked(mutex, std_wait(condvar, guard))
    }
    #[cfg(not(spindle_helgrind))]
    std_wait(condvar, guard)
}

fn std_wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    match condvar.wait(guard) {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on `condvar` for at most `timeout`, releasing the lock of `guard`
/// meanwhile (poisoning ignored). The flag tells whether the wait timed out.
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: Guard<'a, T>,
    timeout: std::time::Duration,
) -> (Guard<'a, T>, bool) {
    #[cfg(spindle_helgrind)]
    {
        let (mutex, guard) = guard.into_parts();
        let (guard, timed_out) = std_wait_timeout(condvar, guard, timeout);
        (HelgrindGuard::relocked(mutex, guard), timed_out)
    }
    #[cfg(not(spindle_helgrind))]
    std_wait_timeout(condvar, guard, timeout)
}

fn std_wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> (MutexGuard<'a, T>, bool) {
    match condvar.wait_timeout(guard, timeout) {
        Ok((guard, result)) => (guard, result.timed_out()),
        Err(poisoned) => {
            let (guard, result) = poisoned.into_inner();
            (guard, result.timed_out())
        }
    }
}

/// Locks a mutex, ignoring poisoning (see the ordinary build's `lock`), and
/// tells helgrind about it: std's mutex is built on bare futex calls that
/// helgrind does not see, so each unlock is announced as a
/// [`happens_before`](crate::valgrind::happens_before) on the mutex and each
/// lock as a [`happens_after`](crate::valgrind::happens_after).
#[cfg(spindle_helgrind)]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> Guard<'_, T> {
    let guard = match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    HelgrindGuard::relocked(mutex, guard)
}

/// What [`lock`] returns in helgrind builds.
#[cfg(spindle_helgrind)]
pub(crate) type Guard<'a, T> = HelgrindGuard<'a, T>;

/// The guard of [`lock`] in helgrind builds: std's guard, announced to
/// helgrind as released just before it unlocks.
#[cfg(spindle_helgrind)]
pub(crate) struct HelgrindGuard<'a, T> {
    mutex: &'a Mutex<T>,
    /// `None` only once handed to a condition variable.
    guard: Option<MutexGuard<'a, T>>,
}

#[cfg(spindle_helgrind)]
impl<'a, T> HelgrindGuard<'a, T> {
    /// The guard of `mutex`, just locked by this thread.
    fn relocked(mutex: &'a Mutex<T>, guard: MutexGuard<'a, T>) -> Self {
        crate::valgrind::happens_after(mutex);
        HelgrindGuard {
            mutex,
            guard: Some(guard),
        }
    }

    /// Gives up the std guard (to a condition variable, which unlocks it):
    /// announces the unlock.
    fn into_parts(mut self) -> (&'a Mutex<T>, MutexGuard<'a, T>) {
        let guard = self.guard.take().expect("a guard is held until dropped");
        crate::valgrind::happens_before(self.mutex);
        (self.mutex, guard)
    }
}

#[cfg(spindle_helgrind)]
impl<T> std::ops::Deref for HelgrindGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("a guard is held until dropped")
    }
}

#[cfg(spindle_helgrind)]
impl<T> std::ops::DerefMut for HelgrindGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("a guard is held until dropped")
    }
}

#[cfg(spindle_helgrind)]
impl<T> Drop for HelgrindGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            crate::valgrind::happens_before(self.mutex);
            drop(guard);
        }
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
