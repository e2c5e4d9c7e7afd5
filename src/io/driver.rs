//! The driver: mio's `Poll`, which one idle worker at a time sleeps in,
//! with the next timer deadline as its timeout.
//!
//! Whoever holds the [`Poller`] lock is *in the driver*; a worker only
//! holds it while it sleeps, never while it runs tasks, so a worker busy
//! with a long poll never stalls the timers of the others
//! (tokio-rs/tokio#4730): the next worker to go idle takes the driver over.
//!
//! # Deadline handshake
//! A timer registered with a deadline earlier than the one the driver sleeps
//! until must wake the driver. The sleeper publishes [`Driver::sleeping_until`]
//! *before* it reads the timers' next deadline; a registrant publishes its
//! timer (in its wheel's cached deadline) *before* it reads
//! `sleeping_until`. Both sides use `SeqCst`, so at least one of them sees
//! the other: either the sleeper's timeout covers the new timer, or the
//! registrant wakes the driver.

use crate::loom::{AtomicU64, Mutex, MutexGuard};
use std::io;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

/// The token of the driver's own waker.
const WAKER: mio::Token = mio::Token(usize::MAX);

/// `sleeping_until` when nobody sleeps in the driver.
pub(crate) const NOT_SLEEPING: u64 = u64::MAX;
/// `sleeping_until` of a sleeper with no deadline (or still computing it).
pub(crate) const SLEEPING_FOREVER: u64 = u64::MAX - 1;

pub(crate) struct Driver {
    poller: Mutex<Poller>,
    waker: mio::Waker,
    /// The tick the sleeper in the driver will wake at by itself.
    sleeping_until: AtomicU64,
}

/// The selector, owned by whoever is in the driver.
pub(crate) struct Poller {
    poll: mio::Poll,
    events: mio::Events,
}

impl Driver {
    pub(crate) fn new() -> io::Result<Driver> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        Ok(Driver {
            poller: Mutex::new(Poller {
                poll,
                events: mio::Events::with_capacity(1024),
            }),
            waker,
            sleeping_until: AtomicU64::new(NOT_SLEEPING),
        })
    }

    /// Takes the driver if nobody is in it.
    pub(crate) fn try_enter(&self) -> Option<MutexGuard<'_, Poller>> {
        self.poller.try_lock().ok()
    }

    /// Ends the sleep of whoever is in the driver (or makes the next
    /// sleep return at once).
    pub(crate) fn wake(&self) {
        // A failed wake (eventfd full) still leaves a wake pending.
        let _ = self.waker.wake();
    }

    /// Announces the sleeper's deadline (first half of the handshake).
    pub(crate) fn announce_sleep(&self, until: u64) {
        self.sleeping_until.store(until, SeqCst);
    }

    /// Called after a timer for `deadline` was published: wakes the driver if
    /// its sleeper would wake too late (second half of the handshake).
    pub(crate) fn timer_added(&self, deadline: u64) {
        let until = self.sleeping_until.load(SeqCst);
        if until != NOT_SLEEPING && deadline < until {
            self.wake();
        }
    }
}

impl Poller {
    /// Sleeps until an I/O event, a wake, or the timeout.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>) {
        // An error (interrupted, out of resources) just ends this sleep
        // early: the caller re-checks everything and comes back.
        let _ = self.poll.poll(&mut self.events, timeout);
        for event in self.events.iter() {
            debug_assert_eq!(event.token(), WAKER);
        }
    }
}
