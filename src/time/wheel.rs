//! A hashed hierarchical timing wheel (Varghese & Lauck, 1987).
//!
//! Time is counted in ticks of one millisecond since the runtime's clock
//! origin. The wheel has [`LEVELS`] levels of 64 slots; a slot of level `L`
//! spans `64^L` ticks, so level 0 holds the next 64 ms one tick per slot,
//! level 1 the next 4 s 64 ms per slot, and so on up to about two years.
//! Each level keeps a 64-bit occupancy bitmap, so finding the next expiring
//! slot is a rotate and a `trailing_zeros` per level.
//!
//! A timer is an entry in a vector, indexed by its key (free keys are kept
//! on a stack, the most recently freed reused first; when the wheel empties,
//! both start over, see [`Wheel::release`]). Each slot lists its
//! timers' keys in registration order, so timers with the same deadline
//! fire in the order they were registered, as asyncio's do; the entry
//! records where its key sits in that list, and cancelling writes a
//! tombstone there: inserting and cancelling are O(1) and touch one entry.
//! When a slot of a level above 0 comes due, its entries move down to the
//! level that matches their remaining time ("cascading"); entries of a
//! level-0 slot fire. A slot's list is read in order, so the entries it
//! names are prefetched a few keys ahead (a linked list through the entries
//! could only load one entry after another, each a cache miss with a
//! million timers).
//!
//! A timer leaves the wheel as it fires, while its entry is in the cache,
//! and its key may then serve a new timer. So the holder of a key tells a
//! fired timer from a pending one by its deadline, not by its key: **a timer
//! with deadline `d` is in the wheel if and only if `d > elapsed`** (insert
//! refuses `d <= elapsed`; `advance(now)` fires every entry with `d <= now`
//! and ends with `elapsed >= now`). The holder needs no second look at the
//! entry, which firing a large batch has long evicted from the cache.
//!
//! Deadlines beyond the current rotation of the top level (about two years
//! ahead) wait in an overflow list and are re-inserted when the top level
//! starts its next rotation, so any deadline, however far, is handled
//! without overflow.
//!
//! The wheel itself is single-threaded; the runtime keeps one per worker
//! behind that worker's own lock (see `time::Timers`).

use std::task::Waker;

/// Number of levels.
pub(crate) const LEVELS: usize = 6;
const SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
/// The ticks of one rotation of the top level, minus one.
const ROTATION_MASK: u64 = (1 << (SLOT_BITS * LEVELS as u32)) - 1;
/// The index of the overflow list, after the `LEVELS * SLOTS` slot lists.
const OVERFLOW: usize = LEVELS * SLOTS;
/// A cancelled timer's place in its list.
const TOMBSTONE: u32 = u32::MAX;
/// A list emptied with room for more keys than this gives its memory back.
const KEEP_ROOM: usize = 1024;
/// An emptied wheel with room for more entries than this gives its entries'
/// and free keys' memory back (36 bytes per entry: about 1.1 MiB).
const KEEP_ENTRIES: usize = 32 * 1024;
/// Tombstones a list may hold beyond its live keys before it is compacted.
const COMPACT_SLACK: usize = 32;
/// How many keys ahead of the entry being fired or cascaded a slot's
/// entries are prefetched.
const PREFETCH_DISTANCE: usize = 8;

/// The key of a timer in its wheel.
pub(crate) type TimerKey = usize;

struct Entry {
    /// The real deadline, in ticks.
    deadline: u64,
    /// `None` while the key is free.
    waker: Option<Waker>,
    /// The list holding the key: `level * SLOTS + slot`, or [`OVERFLOW`].
    list: u32,
    /// The key's index in that list.
    index: u32,
}

/// The keys of one slot's timers, in registration order, with tombstones
/// where timers were cancelled.
#[derive(Default)]
struct List {
    keys: Vec<u32>,
    /// Keys that are not tombstones.
    live: u32,
}

/// One timing wheel.
pub(crate) struct Wheel {
    /// Ticks up to which the wheel has been advanced.
    elapsed: u64,
    /// Per level, the slots whose list has a live key.
    occupied: [u64; LEVELS],
    /// The slot lists of every level, then the overflow list: timers due
    /// after the top level's current rotation.
    lists: Box<[List]>,
    entries: Vec<Entry>,
    /// The free keys, the most recently freed last.
    free: Vec<u32>,
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
            occupied: [0; LEVELS],
            lists: (0..=OVERFLOW).map(|_| List::default()).collect(),
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Number of timers that have not fired or been removed.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.entries.len() - self.free.len()
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
        let key = match self.free.pop() {
            Some(key) => {
                // The next insert reuses the key now on top of the stack,
                // whose entry was last touched when its timer left, long
                // ago with many timers: its line starts loading now.
                if let Some(&next) = self.free.last() {
                    crate::prefetch::prefetch(self.entries.as_ptr().wrapping_add(next as usize));
                }
                key as usize
            }
            None => {
                // Keys and list indices are u32 (TOMBSTONE excluded): this
                // needs more than four billion live timers on one worker.
                let key = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|&key| key != TOMBSTONE)
                    .expect("spindle: too many live timers on one worker");
                self.entries.push(Entry {
                    deadline,
                    waker: None,
                    list: 0,
                    index: 0,
                });
                key as usize
            }
        };
        let entry = &mut self.entries[key];
        entry.deadline = deadline;
        entry.waker = Some(waker);
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
        match &mut entry.waker {
            Some(existing) if existing.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        true
    }

    /// Cancels the timer `key` inserted with `deadline`: returns its waker,
    /// or `None` (and touches nothing) if it fired.
    pub(crate) fn cancel(&mut self, key: TimerKey, deadline: u64) -> Option<Waker> {
        if deadline <= self.elapsed {
            return None;
        }
        let entry = &mut self.entries[key];
        debug_assert_eq!(entry.deadline, deadline, "a key used after its timer fired");
        let waker = entry.waker.take();
        let (list_index, index) = (entry.list as usize, entry.index as usize);
        self.release(key as u32);
        let list = &mut self.lists[list_index];
        list.keys[index] = TOMBSTONE;
        list.live -= 1;
        if list.live == 0 {
            if list.keys.capacity() > KEEP_ROOM {
                list.keys = Vec::new();
            } else {
                list.keys.clear();
            }
            if list_index != OVERFLOW {
                self.occupied[list_index / SLOTS] &= !(1 << (list_index % SLOTS));
            }
            return waker;
        }
        // The usual timeout is cancelled soon after it was added, at the
        // list's end: drop the trailing tombstones.
        while list.keys.last() == Some(&TOMBSTONE) {
            list.keys.pop();
        }
        // Cancels elsewhere (a long timer keeps the list alive while others
        // come and go): compact once tombstones outnumber live keys, so a
        // list's length stays within twice its live keys plus a constant.
        if list.keys.len() > 2 * list.live as usize + COMPACT_SLACK {
            self.compact(list_index);
        }
        waker
    }

    /// Frees the key of a timer that left the wheel. When the last one
    /// leaves, the wheel forgets every key: the next timers get keys in
    /// order again (their entries written and fired in address order), and
    /// the memory of a burst of timers beyond [`KEEP_ENTRIES`] goes back to
    /// the allocator instead of staying with the worker for good.
    fn release(&mut self, key: u32) {
        self.free.push(key);
        if self.free.len() == self.entries.len() {
            if self.entries.capacity() > KEEP_ENTRIES {
                self.entries = Vec::new();
                self.free = Vec::new();
            } else {
                self.entries.clear();
                self.free.clear();
            }
        }
    }

    /// Removes a list's tombstones, keeping its live keys in order.
    fn compact(&mut self, list_index: usize) {
        let list = &mut self.lists[list_index];
        list.keys.retain(|&key| key != TOMBSTONE);
        for (index, &key) in list.keys.iter().enumerate() {
            self.entries[key as usize].index = index as u32;
        }
    }

    /// Appends the key to the list that matches its deadline.
    fn link(&mut self, key: TimerKey) {
        let deadline = self.entries[key].deadline;
        let list_index = if (self.elapsed ^ deadline) > ROTATION_MASK {
            OVERFLOW
        } else {
            let level = level_for(self.elapsed, deadline);
            let slot = slot_for(deadline, level);
            self.occupied[level] |= 1 << slot;
            level * SLOTS + slot
        };
        let list = &mut self.lists[list_index];
        let entry = &mut self.entries[key];
        entry.list = list_index as u32;
        entry.index = list.keys.len() as u32;
        list.keys.push(key as u32);
        list.live += 1;
    }

    /// Empties a list, handing back its keys (tombstones included) in order.
    fn take_list(&mut self, list_index: usize) -> Vec<u32> {
        if list_index != OVERFLOW {
            self.occupied[list_index / SLOTS] &= !(1 << (list_index % SLOTS));
        }
        let list = &mut self.lists[list_index];
        list.live = 0;
        std::mem::take(&mut list.keys)
    }

    /// Gives an emptied list's vector back for reuse, unless it is large.
    fn return_list(&mut self, list_index: usize, mut keys: Vec<u32>) {
        keys.clear();
        let list = &mut self.lists[list_index];
        if keys.capacity() <= KEEP_ROOM && list.keys.capacity() == 0 {
            list.keys = keys;
        }
    }

    /// The next slot to come due: `(level, slot, tick at which it is due)`.
    fn next_due_slot(&self) -> Option<(usize, usize, u64)> {
        for (index, &occupied) in self.occupied.iter().enumerate() {
            if occupied == 0 {
                continue;
            }
            let shift = index as u32 * SLOT_BITS;
            let position = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            let distance = occupied.rotate_right(position as u32).trailing_zeros() as usize;
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
        (self.lists[OVERFLOW].live > 0).then(|| (self.elapsed | ROTATION_MASK).saturating_add(1))
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
                    let keys = self.take_list(OVERFLOW);
                    for &key in keys.iter().filter(|&&key| key != TOMBSTONE) {
                        self.link(key as usize);
                    }
                    self.return_list(OVERFLOW, keys);
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
            let list_index = level * SLOTS + slot;
            let keys = self.take_list(list_index);
            for (position, &key) in keys.iter().enumerate() {
                if let Some(&ahead) = keys.get(position + PREFETCH_DISTANCE) {
                    crate::prefetch::prefetch(self.entries.as_ptr().wrapping_add(ahead as usize));
                }
                if key == TOMBSTONE {
                    continue;
                }
                if level == 0 {
                    // A level-0 slot holds one tick: every deadline in it is `due`.
                    let entry = &mut self.entries[key as usize];
                    debug_assert_eq!(entry.deadline, due);
                    let waker = entry.waker.take().expect("a timer in a list has its waker");
                    self.release(key);
                    fire(waker);
                } else {
                    // Cascading, even a timer already due: the slot spans
                    // many ticks and its list is in registration order, so
                    // firing from it would break deadline order. Seen from
                    // `due`, the slot's start, every deadline in it belongs
                    // to a lower level, never back to this list.
                    self.link(key as usize);
                }
            }
            self.return_list(list_index, keys);
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
    fn an_emptied_wheel_hands_out_keys_in_order_and_gives_a_bursts_memory_back() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let burst = KEEP_ENTRIES as u64 * 2;
        for i in 0..burst {
            wheel.insert(1 + i % 50, waker(i, &log)).unwrap();
        }
        assert!(wheel.entries.capacity() > KEEP_ENTRIES);
        fire_all(&mut wheel, 50);
        assert_eq!(log.lock().unwrap().len() as u64, burst);
        assert_eq!(wheel.pending(), 0);
        assert_eq!(wheel.entries.capacity(), 0, "the burst's entries are freed");
        assert_eq!(wheel.free.capacity(), 0, "the burst's free keys are freed");
        // A small burst keeps its room, and both start over in key order,
        // whether the last timer fired or was cancelled.
        let keys: Vec<_> = (0..3)
            .map(|i| wheel.insert(60 + i, waker(i, &log)).unwrap())
            .collect();
        assert_eq!(keys, [0, 1, 2]);
        assert!(wheel.cancel(keys[1], 61).is_some());
        fire_all(&mut wheel, 60);
        assert!(wheel.cancel(keys[2], 62).is_some());
        assert_eq!(wheel.pending(), 0);
        assert!(
            wheel.entries.capacity() >= 3,
            "a small wheel keeps its room"
        );
        let keys: Vec<_> = (0..2)
            .map(|i| wheel.insert(70 + i, waker(i, &log)).unwrap())
            .collect();
        assert_eq!(keys, [0, 1]);
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
    fn cancelling_every_timer_of_a_slot_empties_it() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let keys: Vec<_> = (0..3)
            .map(|i| wheel.insert(700, waker(i, &log)).unwrap())
            .collect();
        let far = wheel.insert(ROTATION_MASK * 2, waker(9, &log)).unwrap();
        for &key in &keys {
            assert!(wheel.cancel(key, 700).is_some());
        }
        assert!(wheel.cancel(far, ROTATION_MASK * 2).is_some());
        assert_eq!(wheel.pending(), 0);
        assert_eq!(wheel.next_deadline(), None, "no slot left marked occupied");
    }

    #[test]
    fn a_list_kept_alive_by_one_timer_does_not_grow_with_cancelled_ones() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        let long = wheel.insert(5_000, waker(0, &log)).unwrap();
        let mut older = Vec::new();
        for i in 0..10_000u64 {
            // Cancelled at once (at the list's end) and cancelled later.
            let quick = wheel.insert(5_001, waker(i, &log)).unwrap();
            assert!(wheel.cancel(quick, 5_001).is_some());
            older.push(wheel.insert(5_002, waker(i, &log)).unwrap());
            if older.len() == 10 {
                for key in older.drain(..5) {
                    assert!(wheel.cancel(key, 5_002).is_some());
                }
            }
        }
        let longest = wheel
            .lists
            .iter()
            .map(|list| list.keys.len())
            .max()
            .unwrap();
        // At most 11 live timers share the list: the long one and 10 older.
        assert!(
            longest <= 2 * 11 + COMPACT_SLACK,
            "a list holds {longest} keys"
        );
        assert!(wheel.cancel(long, 5_000).is_some());
        fire_all(&mut wheel, 6_000);
        assert_eq!(
            log.lock().unwrap().len(),
            older.len(),
            "the live ones still fire"
        );
    }

    /// Random inserts, cancels (of timers still pending, some after they
    /// cascaded) and advances, checked against a plain ordered list: the
    /// same timers fire, in deadline then registration order.
    #[test]
    fn matches_a_reference_model_under_random_operations() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new();
        // (deadline, id, key) of the pending timers, in registration order.
        let mut pending: Vec<(u64, u64, TimerKey)> = Vec::new();
        let mut expected = Vec::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut now = 0u64;
        for id in 0..20_000u64 {
            match next(10) {
                0..=5 => {
                    let delay = match next(4) {
                        0 => 1 + next(64),
                        1 => 1 + next(5_000),
                        2 => 1 + next(400_000),
                        _ => ROTATION_MASK + next(1_000),
                    };
                    let deadline = now + delay;
                    let key = wheel.insert(deadline, waker(id, &log)).unwrap();
                    pending.push((deadline, id, key));
                }
                6 | 7 if !pending.is_empty() => {
                    let (deadline, _, key) = pending.remove(next(pending.len() as u64) as usize);
                    assert!(wheel.cancel(key, deadline).is_some());
                }
                _ => {
                    now += next(3_000);
                    fire_all(&mut wheel, now);
                    let mut due: Vec<_> = pending.iter().filter(|t| t.0 <= now).copied().collect();
                    due.sort_by_key(|&(deadline, id, _)| (deadline, id));
                    expected.extend(due.iter().map(|&(_, id, _)| id));
                    pending.retain(|t| t.0 > now);
                    assert_eq!(*log.lock().unwrap(), expected, "at tick {now}");
                    assert_eq!(wheel.pending(), pending.len());
                }
            }
        }
        while let Some(next_tick) = wheel.next_deadline() {
            now = now.max(next_tick);
            fire_all(&mut wheel, now);
        }
        pending.sort_by_key(|&(deadline, id, _)| (deadline, id));
        expected.extend(pending.iter().map(|&(_, id, _)| id));
        assert_eq!(*log.lock().unwrap(), expected);
        assert_eq!(wheel.pending(), 0);
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
