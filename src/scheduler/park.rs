//! A worker's parker: a sleep that an unpark can end, on a condition
//! variable or inside the driver, that never misses an unpark that came
//! first (the token is kept until the next park).
//!
//! One atomic word tells where the worker sleeps, so that [`Parker::unpark`]
//! knows how to wake it: a condition-variable sleeper is signalled under the
//! lock (so the signal cannot fall between its check and its wait), a
//! sleeper in the driver is woken through the driver's mio waker.

use crate::io::driver::{Driver, Poller};
use crate::loom::{lock, wait, AtomicUsize, Condvar, Mutex};
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

/// Awake, no unpark pending.
const EMPTY: usize = 0;
/// Sleeping on the condition variable.
const PARKED_CONDVAR: usize = 1;
/// Sleeping in the driver.
const PARKED_DRIVER: usize = 2;
/// An unpark is pending: the next park returns at once.
const NOTIFIED: usize = 3;

pub(crate) struct Parker {
    state: AtomicUsize,
    lock: Mutex<()>,
    condvar: Condvar,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            state: AtomicUsize::new(EMPTY),
            lock: Mutex::new(()),
            condvar: Condvar::new(),
        }
    }

    /// Consumes a pending unpark, if any.
    fn take_notification(&self) -> bool {
        self.state
            .compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst)
            .is_ok()
    }

    /// Sleeps on the condition variable until an unpark.
    pub(crate) fn park(&self) {
        if self.take_notification() {
            return;
        }
        let mut guard = lock(&self.lock);
        if self
            .state
            .compare_exchange(EMPTY, PARKED_CONDVAR, SeqCst, SeqCst)
            .is_err()
        {
            // Notified between the first check and the lock.
            self.state.store(EMPTY, SeqCst);
            return;
        }
        loop {
            guard = wait(&self.condvar, guard);
            if self.take_notification() {
                return;
            }
            // Spurious wakeup: still PARKED_CONDVAR, wait again.
        }
    }

    /// Sleeps in the driver until an unpark, an event or the timeout.
    pub(crate) fn park_in_driver(
        &self,
        driver: &Driver,
        poller: &mut Poller,
        timeout: Option<Duration>,
    ) {
        if self.take_notification() {
            return;
        }
        if self
            .state
            .compare_exchange(EMPTY, PARKED_DRIVER, SeqCst, SeqCst)
            .is_err()
        {
            self.state.store(EMPTY, SeqCst);
            return;
        }
        poller.poll(driver, timeout);
        // PARKED_DRIVER or NOTIFIED: either way the sleep is over.
        self.state.swap(EMPTY, SeqCst);
    }

    /// Wakes the worker, or makes its next park return at once.
    pub(crate) fn unpark(&self, driver: &Driver) {
        match self.state.swap(NOTIFIED, SeqCst) {
            PARKED_CONDVAR => {
                // Taking the lock orders this signal after the sleeper's wait.
                drop(lock(&self.lock));
                self.condvar.notify_one();
            }
            PARKED_DRIVER => driver.wake(),
            _ => {}
        }
    }
}
