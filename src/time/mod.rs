//! Time: [`sleep`](fn@sleep), [`sleep_until`], timeout scopes ([`timeout`](fn@timeout),
//! [`timeout_at`], [`Timeout`]) and [`wait_for`], on per-worker timing wheels.
//!
//! ```
//! use std::time::{Duration, Instant};
//! spindle::run(async {
//!     let start = Instant::now();
//!     // Three 100 ms sleeps in three tasks take about 100 ms, not 300.
//!     let sleeps: Vec<_> = (0..3)
//!         .map(|_| spindle::spawn(spindle::sleep(Duration::from_millis(100))))
//!         .collect();
//!     for s in sleeps {
//!         s.await?;
//!     }
//!     assert!(start.elapsed() < Duration::from_millis(280));
//!     spindle::Ok(())
//! }).unwrap();
//! ```
//!
//! # Clock and resolution
//! Time is `std::time::Instant`. Timers have a resolution of one tick of one
//! millisecond: a deadline is rounded up to the next tick, so a timer never
//! fires early and, on an idle runtime, at most one tick plus the scheduling
//! delay late.
//!
//! # Where timers live
//! Every worker has its own wheel behind its own lock: a task registers its
//! timer on the wheel of the worker it runs on, so workers do not contend
//! on one timer lock (tokio-rs/tokio#6504). Cancelling a timer (dropping a
//! `Sleep`) from another worker takes only that wheel's lock. Expired timers
//! are fired by the wheel's own worker between tasks, by any worker every
//! few dozen tasks, and by the worker sleeping in the driver, whose timeout
//! is the earliest deadline of all wheels.
//!
//! A fired timer leaves its wheel as it fires (see `wheel`'s invariant: a
//! timer is in the wheel iff its deadline is past the wheel's `elapsed`).
//! Each wheel publishes `elapsed` in an atomic after every advance, so a
//! sleep woken by its timer sees it fired with one load and no lock. The
//! load is `Relaxed`: it only ever decides to leave the wheel alone (the
//! timer is gone), and a stale value only sends the caller to the lock,
//! under which the wheel's own `elapsed` decides.

mod sleep;
mod timeout;
pub(crate) mod wheel;

pub use sleep::{duration_from_secs, sleep, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at, wait_for, Timeout, TimeoutFuture, WaitFor};

use crate::loom::{lock, AtomicU64, Mutex};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};
use wheel::{TimerKey, Wheel};

/// Cached "no timer" deadline.
const NONE: u64 = u64::MAX;

/// The timers of one runtime: a wheel per worker plus one for timers
/// registered from threads outside the runtime.
pub(crate) struct Timers {
    origin: Instant,
    wheels: Box<[Arc<WheelSlot>]>,
}

pub(crate) struct WheelSlot {
    wheel: Mutex<Wheel>,
    /// A lower bound of the wheel's next deadline (`NONE` if empty),
    /// readable without the lock. Exact after every `process`; an insert
    /// lowers it when needed; a removal leaves it (a stale lower bound only
    /// costs one early look).
    next: AtomicU64,
    /// The wheel's `elapsed`, published after every advance (it never
    /// leads the wheel's own): a timer whose deadline is at most this has
    /// fired and left the wheel.
    elapsed: AtomicU64,
    /// The vector the last [`Timers::process`] of this wheel collected its
    /// wakers in, kept for the next (a batch of a hundred thousand timers
    /// used to grow a new one each time).
    spare: Mutex<Vec<Waker>>,
}

/// The most wakers a wheel's spare vector keeps room for (256 KiB).
const SPARE_WAKERS: usize = 16 * 1024;

/// How many wakers ahead of the one being woken a firing prefetches the
/// woken task's header.
const WAKE_PREFETCH_DISTANCE: usize = 8;

/// A registered timer: its wheel (kept alive by the entry), its key and its
/// deadline (which tells whether it fired: the key may serve another timer
/// once this one fired).
pub(crate) struct TimerEntry {
    slot: Arc<WheelSlot>,
    /// [`REMOVED`] once the entry is known to have left the wheel.
    key: TimerKey,
    deadline: u64,
}

/// The key of a [`TimerEntry`] already removed from its wheel (wheel keys
/// stay below `u32::MAX`).
const REMOVED: TimerKey = TimerKey::MAX;

impl TimerEntry {
    /// Whether the timer left the wheel: removed, or fired as the wheel's
    /// published `elapsed` shows (one load, no lock).
    fn is_gone(&self) -> bool {
        self.key == REMOVED || self.deadline <= self.slot.elapsed.load(Relaxed)
    }

    /// Whether the timer fired. If not, its waker is refreshed.
    pub(crate) fn poll_fired(&mut self, waker: &Waker) -> bool {
        if !self.is_gone() && lock(&self.slot.wheel).set_waker(self.key, self.deadline, waker) {
            return false;
        }
        self.key = REMOVED;
        true
    }
}

impl Drop for TimerEntry {
    /// Removes the timer from its wheel unless it fired.
    fn drop(&mut self) {
        if !self.is_gone() {
            let waker = lock(&self.slot.wheel).cancel(self.key, self.deadline);
            drop(waker);
        }
    }
}

impl std::fmt::Debug for TimerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerEntry")
            .field("key", &self.key)
            .finish()
    }
}

impl Timers {
    pub(crate) fn new(workers: usize) -> Timers {
        Timers {
            origin: Instant::now(),
            wheels: (0..=workers)
                .map(|_| {
                    let slot = Arc::new(WheelSlot {
                        wheel: Mutex::new(Wheel::new()),
                        next: AtomicU64::new(NONE),
                        elapsed: AtomicU64::new(0),
                        spare: Mutex::new(Vec::new()),
                    });
                    // Read without the wheel's lock on purpose (see the
                    // module documentation): not a race for helgrind.
                    #[cfg(spindle_helgrind)]
                    {
                        crate::valgrind::atomic_only(&slot.next);
                        crate::valgrind::atomic_only(&slot.elapsed);
                    }
                    slot
                })
                .collect(),
        }
    }

    /// The wheel for timers registered outside the workers.
    pub(crate) fn outside_wheel(&self) -> usize {
        self.wheels.len() - 1
    }

    /// The current tick (whole milliseconds since the origin).
    pub(crate) fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The tick of a deadline, rounded up; deadlines before the origin are
    /// tick 0, deadlines too far to express saturate.
    pub(crate) fn tick_of(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.origin);
        // In u64 (`as_millis` is a u128 multiplication and division).
        let nanos = since.subsec_nanos();
        let partial = u64::from(nanos % 1_000_000 != 0);
        since
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(nanos / 1_000_000) + partial)
            .min(u64::MAX - 2)
    }

    /// The instant of a tick, `None` if it is too far to express.
    pub(crate) fn instant_of(&self, tick: u64) -> Option<Instant> {
        self.origin.checked_add(Duration::from_millis(tick))
    }

    fn refresh(slot: &WheelSlot, wheel: &Wheel) {
        slot.next
            .store(wheel.next_deadline().unwrap_or(NONE), SeqCst);
    }

    /// Registers a timer that wakes `waker`; `None` if `tick` has already
    /// passed (the timer counts as fired).
    pub(crate) fn register(&self, wheel: usize, tick: u64, waker: Waker) -> Option<TimerEntry> {
        let slot = &self.wheels[wheel];
        let mut guard = lock(&slot.wheel);
        let key = guard.insert(tick, waker)?;
        // Publish an earlier deadline (first half of the driver handshake).
        if tick < slot.next.load(Relaxed) {
            Self::refresh(slot, &guard);
        }
        drop(guard);
        Some(TimerEntry {
            slot: slot.clone(),
            key,
            deadline: tick,
        })
    }

    /// Fires the expired timers of one wheel (wakers are woken after the
    /// lock is released). Returns how many fired.
    pub(crate) fn process(&self, wheel: usize, now: u64) -> usize {
        let slot = &self.wheels[wheel];
        if slot.next.load(Relaxed) > now {
            return 0;
        }
        let mut fired = std::mem::take(&mut *lock(&slot.spare));
        {
            let mut guard = lock(&slot.wheel);
            guard.advance(now, |waker| fired.push(waker));
            slot.elapsed.store(guard.elapsed(), Relaxed);
            Self::refresh(slot, &guard);
        }
        let count = fired.len();
        for index in 0..count {
            // The woken task's header is cold after a large batch: start
            // loading a later one while this one is woken.
            if let Some(ahead) = fired.get(index + WAKE_PREFETCH_DISTANCE) {
                crate::prefetch::prefetch(ahead.data());
            }
            std::mem::replace(&mut fired[index], Waker::noop().clone()).wake();
        }
        fired.clear();
        if fired.capacity() <= SPARE_WAKERS {
            *lock(&slot.spare) = fired;
        }
        count
    }

    /// Fires the expired timers of every wheel.
    pub(crate) fn process_all(&self, now: u64) -> usize {
        (0..self.wheels.len()).map(|w| self.process(w, now)).sum()
    }

    /// The cached next deadline of one wheel.
    pub(crate) fn next_of(&self, wheel: usize) -> Option<u64> {
        let next = self.wheels[wheel].next.load(Relaxed);
        (next != NONE).then_some(next)
    }

    /// The earliest deadline of all wheels.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let next = self
            .wheels
            .iter()
            .map(|slot| slot.next.load(SeqCst))
            .min()
            .unwrap_or(NONE);
        (next != NONE).then_some(next)
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_rounded_up_to_its_tick() {
        let timers = Timers::new(1);
        let at = |d: Duration| timers.tick_of(timers.origin + d);
        assert_eq!(at(Duration::ZERO), 0);
        assert_eq!(at(Duration::from_nanos(1)), 1);
        assert_eq!(at(Duration::from_millis(1)), 1);
        assert_eq!(at(Duration::from_millis(1) + Duration::from_nanos(1)), 2);
        assert_eq!(at(Duration::from_micros(2_999_999)), 3_000);
        assert_eq!(at(Duration::from_secs(3) + Duration::from_micros(1)), 3_001);
        if let Some(before) = timers.origin.checked_sub(Duration::from_secs(1)) {
            assert_eq!(timers.tick_of(before), 0, "before the origin is tick 0");
        }
        if let Some(far) = timers
            .origin
            .checked_add(Duration::from_secs(u64::MAX / 1000 + 1))
        {
            assert_eq!(timers.tick_of(far), u64::MAX - 2, "too far saturates");
        }
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::model::WakeCounter;
    use crate::loom::thread;

    /// A timer dropped (cancelled) while its wheel fires it: the waker is
    /// woken at most once, nothing is left in the wheel, and the wheel
    /// keeps no clone of the waker.
    #[test]
    fn a_timer_cancelled_while_it_fires() {
        loom::model(|| {
            let timers = Arc::new(Timers::new(1));
            let (wakes, waker) = WakeCounter::new();
            let entry = timers
                .register(0, 5, waker.clone())
                .expect("tick 5 is ahead");
            drop(waker);
            let firer = {
                let timers = timers.clone();
                thread::spawn(move || timers.process(0, 10))
            };
            drop(entry);
            let fired = firer.join().unwrap();
            assert!(fired <= 1);
            assert_eq!(wakes.wakes(), fired, "a fired timer woke no one, or twice");
            assert_eq!(timers.process(0, 20), 0, "the timer fired again");
            assert_eq!(timers.next_of(0), None, "the wheel kept the timer");
            assert_eq!(Arc::strong_count(&wakes), 1, "the wheel kept the waker");
        });
    }

    /// A timer polled while its wheel fires it: the poll sees it fired, or
    /// the refreshed waker is woken; never a lost wakeup.
    #[test]
    fn a_poll_racing_with_firing_is_never_lost() {
        loom::model(|| {
            let timers = Arc::new(Timers::new(1));
            let (first_wakes, first) = WakeCounter::new();
            let (second_wakes, second) = WakeCounter::new();
            let mut entry = timers
                .register(0, 5, first.clone())
                .expect("tick 5 is ahead");
            let firer = {
                let timers = timers.clone();
                thread::spawn(move || timers.process(0, 10))
            };
            let saw_fired = entry.poll_fired(&second);
            assert_eq!(firer.join().unwrap(), 1);
            assert_eq!(first_wakes.wakes() + second_wakes.wakes(), 1);
            assert!(saw_fired || second_wakes.wakes() == 1, "wakeup lost");
            assert!(entry.poll_fired(&second));
        });
    }
}
