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
//!
//! # Sources
//! Every registered I/O source has a [`ScheduledIo`] in the driver's slab;
//! its mio token is its slab index plus a generation (bits above
//! [`INDEX_BITS`]). An event is dispatched only if the slot still holds the
//! same generation, so an event for a source deregistered (or closed) while
//! the event was in flight is dropped, never delivered to the slot's next
//! occupant, with no unsafe code.

use super::readiness::{Ready, ScheduledIo};
use crate::error::{Error, Result};
use crate::loom::{lock, try_lock, AtomicU64, AtomicUsize, Guard, Mutex};
use slab::Slab;
use std::io;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// The bits of a token that are the slab index (16M live sources).
const INDEX_BITS: u32 = 24;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

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
    /// Registers sources while someone else sleeps in `poller`.
    registry: mio::Registry,
    sources: Mutex<Sources>,
    /// The number of registered sources: workers busy with tasks poll the
    /// driver between tasks only when there are some.
    registered: AtomicUsize,
}

struct Sources {
    slab: Slab<Source>,
    next_generation: usize,
    /// The runtime shut down: no new registrations.
    shut_down: bool,
}

struct Source {
    generation: usize,
    io: Arc<ScheduledIo>,
}

/// A source's place in the driver: give it back with [`Driver::deregister`].
#[derive(Debug)]
pub(crate) struct Key {
    token: mio::Token,
}

/// The selector, owned by whoever is in the driver.
pub(crate) struct Poller {
    poll: mio::Poll,
    events: mio::Events,
    /// The sources of the events being dispatched (kept to reuse its
    /// allocation).
    ready: Vec<(Arc<ScheduledIo>, usize)>,
}

impl Driver {
    pub(crate) fn new() -> io::Result<Driver> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        let registry = poll.registry().try_clone()?;
        Ok(Driver {
            registry,
            sources: Mutex::new(Sources {
                slab: Slab::new(),
                next_generation: 0,
                shut_down: false,
            }),
            registered: AtomicUsize::new(0),
            poller: Mutex::new(Poller {
                poll,
                events: mio::Events::with_capacity(1024),
                ready: Vec::new(),
            }),
            waker,
            sleeping_until: AtomicU64::new(NOT_SLEEPING),
        })
    }

    /// Takes the driver if nobody is in it.
    pub(crate) fn try_enter(&self) -> Option<Guard<'_, Poller>> {
        try_lock(&self.poller)
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

    /// Registers `source` for `interest`; returns its key and readiness record.
    pub(crate) fn register(
        &self,
        source: &mut impl mio::event::Source,
        interest: mio::Interest,
    ) -> Result<(Key, Arc<ScheduledIo>)> {
        let io = Arc::new(ScheduledIo::new());
        let token = {
            let mut sources = lock(&self.sources);
            if sources.shut_down {
                return Err(Error::runtime("the runtime has shut down"));
            }
            // (The last index is left out: with an all-ones generation it
            // would be the waker's token.)
            if sources.slab.vacant_key() >= INDEX_MASK {
                return Err(Error::io(io::Error::other(
                    "too many I/O sources registered with one runtime",
                )));
            }
            let generation = sources.next_generation;
            sources.next_generation = generation.wrapping_add(1);
            let index = sources.slab.insert(Source {
                generation,
                io: io.clone(),
            });
            mio::Token(index | generation.wrapping_shl(INDEX_BITS))
        };
        if let Err(e) = self.registry.register(source, token, interest) {
            lock(&self.sources).slab.remove(token.0 & INDEX_MASK);
            return Err(Error::io(registration_error(e)));
        }
        self.registered.fetch_add(1, Relaxed);
        Ok((Key { token }, io))
    }

    /// Deregisters `source` (if it is still open) and frees its slot.
    pub(crate) fn deregister(&self, source: &mut impl mio::event::Source, key: Key) {
        // A source already closed by its owner is no longer in the selector
        // (or, if duplicated elsewhere, its stale events miss the
        // generation check): the error changes nothing.
        let _ = self.registry.deregister(source);
        let mut sources = lock(&self.sources);
        let index = key.token.0 & INDEX_MASK;
        if sources.slab.contains(index) {
            sources.slab.remove(index);
        }
        drop(sources);
        self.registered.fetch_sub(1, Relaxed);
    }

    /// Whether any source is registered (so a poll between tasks is useful).
    pub(crate) fn has_sources(&self) -> bool {
        self.registered.load(Relaxed) > 0
    }

    /// The runtime shut down: fail every readiness wait, refuse new sources.
    pub(crate) fn shut_down(&self) {
        let ios: Vec<_> = {
            let mut sources = lock(&self.sources);
            sources.shut_down = true;
            sources.slab.iter().map(|(_, s)| s.io.clone()).collect()
        };
        for io in ios {
            io.shut_down();
        }
    }

    /// Hands the events of the last poll to their sources (`ready` is a
    /// buffer kept between polls).
    fn dispatch(&self, events: &mio::Events, ready: &mut Vec<(Arc<ScheduledIo>, usize)>) {
        {
            let sources = lock(&self.sources);
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                let generation = token.0 >> INDEX_BITS;
                if let Some(source) = sources.slab.get(token.0 & INDEX_MASK) {
                    let expected = source.generation.wrapping_shl(INDEX_BITS) >> INDEX_BITS;
                    if expected == generation {
                        ready.push((source.io.clone(), Ready::from_mio(event)));
                    }
                }
            }
        }
        // Outside the slab lock: a woken task may register or drop sources.
        for (io, bits) in ready.drain(..) {
            io.report(bits);
        }
    }
}

/// Makes the error of registering a source that epoll cannot watch explain
/// itself (a regular file or a directory gives `EPERM`).
fn registration_error(error: io::Error) -> io::Error {
    if error.raw_os_error() == Some(1) {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "this file descriptor does not support readiness (a regular file or directory?)",
        )
    } else {
        error
    }
}

impl Poller {
    /// Waits for I/O events, a wake, or the timeout (`Some(ZERO)` just
    /// collects what is ready), and wakes the tasks the events are for.
    pub(crate) fn poll(&mut self, driver: &Driver, timeout: Option<Duration>) {
        // An error (interrupted, out of resources) just ends this sleep
        // early: the caller re-checks everything and comes back.
        if self.poll.poll(&mut self.events, timeout).is_ok() {
            driver.dispatch(&self.events, &mut self.ready);
        }
    }
}
