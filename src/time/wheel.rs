//! A hashed hierarchical timing wheel (Varghese & Lauck, 1987).
//!
//! Time is counted in ticks of one millisecond since the runtime's clock
//! origin. The wheel has [`LEVELS`] levels of 64 slots; a slot of level `L`
//! spans `64^L` ticks, so level 0 holds the next 64 ms one tick per slot,
//! level 1 the next 4 s 64 ms per slot, and so on up to about two years.
//! Each level keeps a 64-bit occupancy bitmap, so finding the next expiring
//! slot is a rotate and a `trailing_zeros` per level.
//!
//! A timer is an entry in a slab, linked into its slot's doubly linked list
//! by slab indices: inserting and cancelling are O(1). When a slot of a
//! level above 0 comes due, its entries move down to the level that matches
//! their remaining time ("cascading"); entries of a level-0 slot fire.
//!
//! A timer leaves the slab as it fires, while its entry is in the cache, and
//! its key may then serve a new timer. So the holder of a key tells a fired
//! timer from a pending one by its deadline, not by its key: **a timer with
//! deadline `d` is in the wheel if and only if `d > elapsed`** (insert refuses
//! `d <= elapsed`; `advance(now)` fires every entry with `d <= now` and ends
//! with `elapsed >= now`). The holder needs no second look at the entry,
//! which firing a large batch has long evicted from the cache.
//! Deadlines beyond the current rotation of the top level (about two years
//! ahead) wait in an overflow list and are re-inserted when the top level
//! starts its next rotation, so any deadline, however far, is handled
//! without overflow.
//!
//! The wheel itself is single-threaded; the runtime keeps one per worker
//! behind that worker's own lock (see `time::Timers`).

use slab::Slab;
use std::task::Waker;

/// Number of levels.
pub(crate) const LEVELS: usize = 6;
const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
/// The ticks of one rotation of the top level, minus one.
const ROTATION_MASK: u64 = (1 << (SLOT_BITS * LEVELS as u32)) - 1;
const NIL: u32 = u32::MAX;
/// The `position` level of an entry in the overflow list.
const OVERFLOW: u8 = u8::MAX;

/// The key of a timer in its wheel.
pub(crate) type TimerKey = usize;

struct Entry {
    /// The real deadline, in ticks.
    deadline: u64,
    waker: Waker,
    /// Where the entry is linked: (level, slot), or ([`OVERFLOW`], 0).
    position: (u8, u8),
    prev: u32,
    next: u32,
}

struct Level {
    occupied: u64,
    heads: [u32; SLOTS],
    tails: [u32; SLOTS],
}

/// One timing wheel.
pub(crate) struct Wheel {
    /// Ticks up to which the wheel has been advanced.
    elapsed: u64,
    levels: [Level; LEVELS],
    entries: Slab<Entry>,
    /// Timers due after the top level's current rotation.
    overflow: Vec<TimerKey>,
}

/// The level at which a deadline `when` sits, seen from `elapsed`: the
/// highest 6-bit digit in which the two differ.
fn level_for(elapsed: u64, when: u64) -> usize {
    let differing = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - differing.leading_zeros();
    (significant / SLOT_BITS) as usize
}

fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1)
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel::new()
    }
}

impl Wheel {
    pub(crate) fn new() -> Wheel {
        Wheel {
            elapsed: 0,
            levels: std::array::from_fn(|_| Level {
                occupied: 0,
                heads: [NIL; SLOTS],
                tails: [NIL; SLOTS],
            }),
            entries: Slab::new(),
            overflow: Vec::new(),
        }
    }

    /// Number of timers that have not fired or been removed.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.entries.len()
    }

    /// Ticks up to which the wheel has fired: a timer whose deadline is at
    /// most this has fired (see the module documentation).
    pub(crate) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Adds a timer. Returns `None` (and stores nothing) if the deadline has
    /// already passed: the caller treats the timer as fired.
    pub(crate) fn insert(&mut self, deadline: u64, waker: Waker) -> Option<TimerKey> {
        if deadline <= self.elapsed {
            return None;
        }
        let key = self.entries.insert(Entry {
            deadline,
            waker,
            position: (0, 0),
            prev: NIL,
            next: NIL,
        });
        if key >= NIL as usize {
            // More than four billion live timers: refuse rather than corrupt links.
            self.entries.remove(key);
            panic!("spindle: too many live timers on one worker");
        }
        self.link(key);
        Some(key)
    }

    /// Replaces the waker of the timer `key` inserted with `deadline`.
    /// Returns `false` (and touches nothing) if it fired.
    pub(crate) fn set_waker(&mut self, key: TimerKey, deadline: u64, waker: &Waker) -> bool {
        if deadline <= self.elapsed {
            return false;
        }
        let entry = &mut self.entries[key];
        debug_assert_eq!(entry.deadline, deadline, "a key used after its timer fired");
        if !entry.waker.will_wake(waker) {
            entry.waker = waker.clone();
        }
        true
    }

    /// Cancels the timer `key` inserted with `deadline`: returns its waker,
    /// or `None` (and touches nothing) if it fired.
    pub(crate) fn cancel(&mut self, key: TimerKey, deadline: u64) -> Option<Waker> {
        if deadline <= self.elapsed {
            return None;
        }
        debug_assert_eq!(
            self.entries[key].deadline, deadline,
            "a key used after its timer fired"
        );
        self.unlink(key);
        Some(self.entries.remove(key).waker)
    }

    fn link(&mut self, key: TimerKey) {
        let deadline = self.entries[key].deadline;
        if (self.elapsed ^ deadline) > ROTATION_MASK {
            self.entries[key].position = (OVERFLOW, 0);
            self.overflow.push(key);
            return;
        }
        let level = level_for(self.elapsed, deadline);
        let slot = slot_for(deadline, level);
        // Appended at the tail: timers with the same deadline fire in the
        // order they were registered, as asyncio's do.
        let tail = self.levels[level].tails[slot];
        {
            let entry = &mut self.entries[key];
            entry.position = (level as u8, slot as u8);
            entry.prev = tail;
            entry.next = NIL;
        }
        let level = &mut self.levels[level];
        if tail == NIL {
            level.heads[slot] = key as u32;
        } else {
            self.entries[tail as usize].next = key as u32;
        }
        level.tails[slot] = key as u32;
        level.occupied |= 1 << slot;
    }

    fn unlink(&mut self, key: TimerKey) {
        let entry = &self.entries[key];
        let (level, slot) = entry.position;
        if level == OVERFLOW {
            self.overflow.retain(|&k| k != key);
            return;
        }
        let (level, slot, prev, next) = (level as usize, slot as usize, entry.prev, entry.next);
        if prev == NIL {
            self.levels[level].heads[slot] = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.levels[level].tails[slot] = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if self.levels[level].heads[slot] == NIL {
            self.levels[level].occupied &= !(1 << slot);
        }
    }

    /// The next slot to come due: `(level, slot, tick at which it is due)`.
    fn next_due_slot(&self) -> Option<(usize, usize, u64)> {
        for (index, level) in self.levels.iter().enumerate() {
            if level.occupied == 0 {
                continue;
            }
            let shift = index as u32 * SLOT_BITS;
            let position = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            let distance = level
                .occupied
                .rotate_right(position as u32)
                .trailing_zeros() as usize;
            let slot = (position + distance) % SLOTS;
            let level_span = 1u64 << (shift + SLOT_BITS);
            let level_start = self.elapsed & !(level_span - 1);
            let mut due = level_start + ((slot as u64) << shift);
            if slot < position {
                due += level_span;
            }
            return Some((index, slot, due));
        }
        None
    }

    /// When the overflow list must be re-inserted: the start of the top
    /// level's next rotation.
    fn next_rotation(&self) -> Option<u64> {
        (!self.overflow.is_empty()).then(|| (self.elapsed | ROTATION_MASK).saturating_add(1))
    }

    /// The earliest tick at which [`advance`](Self::advance) has work to do.
    /// A slot above level 0 may only cascade at that tick, so this is a lower
    /// bound on the next firing, which is what a sleeping driver needs.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let slot = self
            .next_due_slot()
            .map(|(_, _, due)| due.max(self.elapsed));
        match (slot, self.next_rotation()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances the wheel to `now`, handing the wakers of every timer whose
    /// deadline is `<= now` to `fire`, in deadline order slot by slot. A
    /// fired timer leaves the wheel at once.
    pub(crate) fn advance(&mut self, now: u64, mut fire: impl FnMut(Waker)) {
        loop {
            let next_slot = self.next_due_slot();
            if let Some(rotation) = self.next_rotation() {
                if rotation <= now && next_slot.is_none_or(|(_, _, due)| rotation < due) {
                    self.elapsed = rotation;
                    for key in std::mem::take(&mut self.overflow) {
                        self.link(key);
                    }
                    continue;
                }
            }
            let Some((level, slot, due)) = next_slot else {
                break;
            };
            if due > now {
                break;
            }
            self.elapsed = self.elapsed.max(due);
            let mut cursor = self.levels[level].heads[slot];
            self.levels[level].heads[slot] = NIL;
            self.levels[level].tails[slot] = NIL;
            self.levels[level].occupied &= !(1 << slot);
            while cursor != NIL {
                let key = cursor as usize;
                let entry = &self.entries[key];
                cursor = entry.next;
                if entry.deadline <= now {
                    fire(self.entries.remove(key).waker);
                } else {
                    self.link(key);
                }
            }
        }
        self.elapsed = self.elapsed.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    /// A waker that records its id when woken.
    struct Recorder {
        id: u64,
        log: Arc<Mutex<Vec<u64>>>,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.log.lock().unwrap().push(self.id);
        }
    }

    fn waker(id: u64, log: &Arc<Mutex<Vec<u64>>>) -> Waker {
        Waker::from(Arc::new(Recorder {
            id,
            log: log.clone(),
        }))
    }

    fn fire_all(wheel: &mut Wheel, now: u64) {
        wheel.advance(now, Waker::wake);
    }

    #[test]
    fn levels_follow_the_differing_digit() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(60, 70), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, ROTATION_MASK), LEVELS - 1);
    }

    #[test]
    fn fires_in_deadline_order_at_the_right_tick() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let deadlines = [5u64, 1, 64, 63, 65, 4096, 100_000, 3, 4095, 262_144, 70];
        for &d in &deadlines {
            wheel.insert(d, waker(d, &log)).unwrap();
        }
        let mut sorted = deadlines.to_vec();
        sorted.sort();
        for now in 0..=300_000u64 {
            fire_all(&mut wheel, now);
            let fired = log.lock().unwrap().clone();
            // Everything due by `now` fired, nothing later did.
            let due: Vec<u64> = sorted.iter().copied().filter(|&d| d <= now).collect();
            assert_eq!(fired, due, "at tick {now}");
        }
        assert_eq!(wheel.pending(), 0);
    }

    #[test]
    fn jumps_fire_everything_due_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        for d in [700u64, 10, 300_000, 5_000, 64] {
            wheel.insert(d, waker(d, &log)).unwrap();
        }
        fire_all(&mut wheel, 6_000);
        assert_eq!(*log.lock().unwrap(), vec![10, 64, 700, 5_000]);
        assert_eq!(wheel.next_deadline().map(|d| d <= 300_000), Some(true));
        fire_all(&mut wheel, 1_000_000);
        assert_eq!(*log.lock().unwrap(), vec![10, 64, 700, 5_000, 300_000]);
    }

    #[test]
    fn removed_timers_never_fire() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let a = wheel.insert(10, waker(1, &log)).unwrap();
        let b = wheel.insert(10, waker(2, &log)).unwrap();
        wheel.insert(10, waker(3, &log)).unwrap();
        assert!(wheel.cancel(b, 10).is_some());
        fire_all(&mut wheel, 10);
        assert_eq!(
            *log.lock().unwrap(),
            vec![1, 3],
            "same deadline: registration order"
        );
        assert_eq!(wheel.pending(), 0, "fired timers left the wheel");
        assert!(
            wheel.cancel(a, 10).is_none(),
            "a fired timer has no waker left"
        );
        assert!(!wheel.set_waker(a, 10, &waker(4, &log)));
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn a_fired_timers_key_may_serve_a_new_timer_and_its_holder_leaves_it_alone() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let old = wheel.insert(5, waker(1, &log)).unwrap();
        fire_all(&mut wheel, 5);
        assert_eq!(*log.lock().unwrap(), vec![1]);
        assert!(wheel.elapsed() >= 5, "the holder can tell its timer fired");
        let new = wheel.insert(20, waker(2, &log)).unwrap();
        assert_eq!(new, old, "the slab reuses the freed key");
        // The first timer's holder, seeing its deadline passed, touches nothing.
        assert!(wheel.cancel(old, 5).is_none());
        assert!(!wheel.set_waker(old, 5, &waker(3, &log)));
        fire_all(&mut wheel, 20);
        assert_eq!(
            *log.lock().unwrap(),
            vec![1, 2],
            "the new timer still fires"
        );
    }

    #[test]
    fn past_deadlines_are_refused() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        fire_all(&mut wheel, 50);
        assert!(wheel.insert(50, waker(1, &log)).is_none());
        assert!(wheel.insert(49, waker(1, &log)).is_none());
        assert!(wheel.insert(51, waker(1, &log)).is_some());
    }

    #[test]
    fn deadlines_beyond_the_span_wait_and_fire() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let far = ROTATION_MASK * 3 + 17;
        wheel.insert(far, waker(9, &log)).unwrap();
        wheel.insert(u64::MAX, waker(10, &log)).unwrap();
        let mut now = 0;
        while let Some(next) = wheel.next_deadline() {
            if next > far {
                break;
            }
            now = next;
            fire_all(&mut wheel, now);
        }
        assert_eq!(*log.lock().unwrap(), vec![9]);
        assert_eq!(now, far);
        assert_eq!(wheel.pending(), 1);
    }

    #[test]
    fn next_deadline_is_a_lower_bound_of_the_next_firing() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        wheel.insert(130, waker(1, &log)).unwrap();
        let next = wheel.next_deadline().unwrap();
        assert!(next <= 130);
        fire_all(&mut wheel, next);
        assert!(log.lock().unwrap().is_empty() || next == 130);
        assert_eq!(wheel.next_deadline(), Some(130));
    }
}
