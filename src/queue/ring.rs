//! The item store of a bounded FIFO [`Queue`](super::Queue): a ring of
//! slots that a put and a get each claim with one compare-and-swap, so
//! producers and consumers never wait for a lock, and never for each other
//! except for the few instructions between a claim and its publication.
//!
//! # Protocol
//!
//! `tail` counts the positions claimed by pushes, `head` those claimed by
//! pops. Position `p` lives in slot `p % capacity`, whose `stamp` says whose
//! turn it is:
//!
//! - `stamp == 2p` ([`free_for`]): the slot is free for the push of `p`;
//! - `stamp == 2p + 1` ([`holds`]): it holds the item of position `p`, for
//!   the pop of `p`;
//! - the pop of `p` stores `stamp = 2(p + capacity)`: free for the next lap.
//!
//! (Doubling keeps "holds `p`" apart from "free for `p + 1`" even with a
//! single slot.) A push reads `tail = p`, sees `stamp == 2p`, claims with
//! the CAS `tail: p -> p + 1`, writes the item and publishes it with
//! `stamp = 2p + 1`. A pop reads `head = p`, sees `stamp == 2p + 1`, claims
//! with the CAS `head: p -> p + 1`, moves the item out and frees the slot
//! with `stamp = 2(p + capacity)`.
//!
//! Invariants (positions, flag bits masked):
//!
//! 1. `head <= tail <= head + capacity`.
//! 2. Between its claim and its stamp store, a position's slot is touched
//!    by its claimer only (the position is *in flight*).
//! 3. `Empty` is reported only when one load of `tail` equals the `head`
//!    being popped, and `Full` only when `tail == head + capacity` was seen
//!    at one instant: a pop that finds its position in flight waits for the
//!    push to publish, and a push that finds its slot in flight waits for
//!    the pop to free it. Both answers are therefore linearizable, which is
//!    what lets `inner.rs` decide from them whether to wait.
//!
//! Shutdown: `SHUT`, the top bit of `tail`, fails every later push (a
//! push's CAS expects a tail without it). `DRAINED`, the top bit of `head`,
//! fails every later pop except the draining ones of an immediate shutdown,
//! which set `SHUT` first, then `DRAINED`, then pop until empty. A pop that
//! finds the ring empty reads `SHUT` in the same load of `tail` that proved
//! it empty: once that load shows `SHUT`, no push can follow, so `ShutDown`
//! loses no item.
//!
//! `unfinished` (asyncio's count of items not yet marked done) sits on the
//! tail's cache line, which a push owns anyway after its claim. A push
//! increments it after claiming and before publishing, so the `task_done`
//! of an item, which follows its pop, always finds the item counted.
//!
//! # Contention
//!
//! A claim that loses its CAS to another claim of the same side waits about
//! [`CONTENDED_PAUSE`] before it tries again ([`back_off_contended`]). Two
//! workers that put (or get) at once otherwise take turns on the `tail` (or
//! `head`) cache line: every claim moves the line between the cores, and
//! the move costs more than the rest of the operation. Waiting lets the
//! winner run a streak of claims on a line its core keeps. Measured with 4
//! producers and 4 consumers of a ring of 1024 on 2 workers, 1M items:
//! medians of 25 ms against 47 ms, and every run 42-49 ms against 107-132
//! ms at a time when the host made transfers between the two cores slower;
//! before the change a quarter to a third of the claims lost a CAS. Pauses
//! from 250 ns to 4 us all did about as well. Only a lost claim waits, so
//! a queue that one thread uses, or several that rarely collide, never
//! does.
//!
//! # Orderings
//!
//! - Stamp loads are Acquire and stamp stores Release: a push's write of
//!   the item happens before the pop that sees its stamp reads it, and that
//!   read happens before the next lap's push, which sees the pop's stamp,
//!   overwrites the slot.
//! - The claims and every read of `head`, `tail` and `unfinished` that
//!   decides an answer are SeqCst, so that the answers are linearizable
//!   (invariant 3) without reasoning about each pair.
//! - [`Ring::gettable`], [`Ring::puttable`] and [`Ring::all_done_sync`]
//!   read the counter that the other side of the wake-up handshake in
//!   `inner.rs` changes with a read-modify-write that adds nothing: the
//!   handshake rests on the modification order of that counter (see
//!   `RingQueue` there), not on SeqCst, which loom does not model.
//! - The first load of `tail` or `head` in a loop is Relaxed: it is only a
//!   guess that the CAS or the SeqCst re-read checks.

use super::QueueError;
use crate::loom::{yield_now, AtomicU64, RaceCell};
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

/// In `tail`: the ring is shut down, no push succeeds.
const SHUT: u64 = 1 << 63;
/// In `head`: an immediate shutdown took the remaining items; only its
/// draining pops succeed.
const DRAINED: u64 = 1 << 63;
/// The position part of `head` and `tail`.
const POSITION: u64 = !(1 << 63);

/// The largest ring, in bytes of slots. A bounded queue whose slots would
/// take more (a huge `maxsize` used as "practically unbounded") keeps its
/// items in a growable buffer behind a lock instead.
const MAX_RING_BYTES: usize = 1 << 20;

/// The stamp of a slot free for the push of `position`. Positions stay
/// below 2^62 (a century at a billion items a second): no overflow.
fn free_for(position: u64) -> u64 {
    position * 2
}

/// The stamp of a slot holding the item of `position`.
fn holds(position: u64) -> u64 {
    position * 2 + 1
}

/// Whether a bounded FIFO queue of `maxsize` items of type `T` keeps them in
/// a ring (all slots are allocated up front). Never in helgrind builds:
/// helgrind sees neither the stamps' hand-over of the slots nor the atomics
/// as synchronization, and the ring is model-checked with loom instead.
pub(crate) fn fits<T>(maxsize: usize) -> bool {
    !cfg!(spindle_helgrind)
        && maxsize > 0
        && (maxsize as u64) < POSITION / 4
        && maxsize
            .checked_mul(std::mem::size_of::<Slot<T>>())
            .is_some_and(|bytes| bytes <= MAX_RING_BYTES)
}

struct Slot<T> {
    stamp: AtomicU64,
    item: RaceCell<MaybeUninit<T>>,
}

/// The producers' side, alone on its cache lines.
#[repr(align(128))]
struct TailSide {
    tail: AtomicU64,
    unfinished: AtomicU64,
}

/// The consumers' side, alone on its cache lines.
#[repr(align(128))]
struct HeadSide {
    head: AtomicU64,
}

/// A bounded lock-free FIFO (see the module documentation).
pub(crate) struct Ring<T> {
    tail: TailSide,
    head: HeadSide,
    slots: Box<[Slot<T>]>,
    capacity: u64,
}

// SAFETY: items move into and out of the ring, possibly on different
// threads (hence `T: Send`); no `&T` is ever handed out, so sharing the
// ring needs nothing more. The slots' cells are guarded by the stamp
// protocol (module documentation, invariant 2).
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send> Sync for Ring<T> {}

/// How long a claim that lost its CAS to a claim of the same side waits
/// before it tries again (module documentation, "Contention").
const CONTENDED_PAUSE: Duration = Duration::from_micros(1);

/// Waits about [`CONTENDED_PAUSE`] after a lost claim. The pause is timed,
/// not counted in spin-loop hints, whose cost depends on the processor (25
/// ns a hint on the host where the pause was tuned).
/// Loom models skip it: it only changes timing.
fn back_off_contended() {
    if cfg!(spindle_loom) {
        return;
    }
    let start = Instant::now();
    loop {
        for _ in 0..4 {
            std::hint::spin_loop();
        }
        if start.elapsed() >= CONTENDED_PAUSE {
            return;
        }
    }
}

/// Waits a little for another thread to finish a step it has started.
fn backoff(rounds: &mut u32) {
    if cfg!(spindle_loom) || *rounds >= 6 {
        yield_now();
    } else {
        for _ in 0..(1u32 << *rounds) {
            std::hint::spin_loop();
        }
    }
    *rounds = rounds.saturating_add(1);
}

impl<T> Ring<T> {
    /// A ring of `capacity` slots (`fits` said yes).
    pub(crate) fn new(capacity: usize) -> Ring<T> {
        assert!(capacity > 0, "a ring has at least one slot");
        Ring {
            tail: TailSide {
                tail: AtomicU64::new(0),
                unfinished: AtomicU64::new(0),
            },
            head: HeadSide {
                head: AtomicU64::new(0),
            },
            slots: (0..capacity as u64)
                .map(|position| Slot {
                    stamp: AtomicU64::new(free_for(position)),
                    item: RaceCell::new(MaybeUninit::uninit()),
                })
                .collect(),
            capacity: capacity as u64,
        }
    }

    fn slot(&self, position: u64) -> &Slot<T> {
        &self.slots[(position % self.capacity) as usize]
    }

    /// Appends `item`; fails with `Full` or `ShutDown` and hands it back.
    pub(crate) fn push(&self, item: T) -> Result<(), (T, QueueError)> {
        let mut rounds = 0;
        let mut tail = self.tail.tail.load(Relaxed);
        loop {
            if tail & SHUT != 0 {
                return Err((item, QueueError::ShutDown));
            }
            let slot = self.slot(tail);
            if slot.stamp.load(Acquire) == free_for(tail) {
                match self
                    .tail
                    .tail
                    .compare_exchange_weak(tail, tail + 1, SeqCst, Relaxed)
                {
                    Ok(_) => {
                        self.tail.unfinished.fetch_add(1, SeqCst);
                        slot.item.with_mut(|cell| {
                            // SAFETY: the claim gives this push the slot
                            // until its stamp store (invariant 2), and the
                            // stamp (Acquire) showed the last pop done with it.
                            unsafe { (*cell).write(item) };
                        });
                        slot.stamp.store(holds(tail), Release);
                        return Ok(());
                    }
                    Err(now) => {
                        // Another push claimed `tail` (not a spurious
                        // failure, nor a shutdown): let it run a streak.
                        if now & POSITION != tail & POSITION {
                            back_off_contended();
                        }
                        tail = now;
                    }
                }
                continue;
            }
            // Not free for `tail`: `tail` is stale, or the slot still holds
            // (or is being emptied of) the item of `tail - capacity`.
            let head = self.head.head.load(SeqCst) & POSITION;
            let now = self.tail.tail.load(SeqCst);
            if now != tail {
                tail = now;
                continue;
            }
            if head + self.capacity <= tail {
                return Err((item, QueueError::Full));
            }
            // The pop of `tail - capacity` has claimed the slot, not freed it.
            backoff(&mut rounds);
            tail = self.tail.tail.load(Relaxed);
        }
    }

    /// Takes the oldest item; fails with `Empty`, or `ShutDown` once the
    /// ring is shut down and empty (or drained).
    pub(crate) fn pop(&self) -> Result<T, QueueError> {
        self.pop_as(false)
    }

    fn pop_as(&self, draining: bool) -> Result<T, QueueError> {
        let mut rounds = 0;
        let mut head = self.head.head.load(Relaxed);
        loop {
            if head & DRAINED != 0 && !draining {
                return Err(QueueError::ShutDown);
            }
            let position = head & POSITION;
            let slot = self.slot(position);
            if slot.stamp.load(Acquire) == holds(position) {
                // `head + 1` keeps a `DRAINED` bit: positions stay below it.
                match self
                    .head
                    .head
                    .compare_exchange_weak(head, head + 1, SeqCst, Relaxed)
                {
                    Ok(_) => {
                        let item = slot.item.with(|cell| {
                            // SAFETY: the claim gives this pop the slot until
                            // its stamp store (invariant 2); the stamp
                            // (Acquire) showed the item written. It is moved
                            // out once: the slot is free after the store.
                            unsafe { (*cell).assume_init_read() }
                        });
                        slot.stamp
                            .store(free_for(position + self.capacity), Release);
                        return Ok(item);
                    }
                    Err(now) => {
                        // Another pop claimed `head`: let it run a streak.
                        if now & POSITION != head & POSITION {
                            back_off_contended();
                        }
                        head = now;
                    }
                }
                continue;
            }
            // Nothing to take at `head`: `head` is stale, the ring is empty,
            // or the push of `position` has claimed it and not published.
            let tail = self.tail.tail.load(SeqCst);
            let now = self.head.head.load(SeqCst);
            if now != head {
                head = now;
                continue;
            }
            if tail & POSITION == position {
                return Err(if tail & SHUT != 0 {
                    QueueError::ShutDown
                } else {
                    QueueError::Empty
                });
            }
            backoff(&mut rounds);
            head = self.head.head.load(Relaxed);
        }
    }

    /// The number of items (a snapshot; in-flight pushes count).
    pub(crate) fn len(&self) -> usize {
        let head = self.head.head.load(SeqCst) & POSITION;
        let tail = self.tail.tail.load(SeqCst) & POSITION;
        // `tail` was read after `head`, so it is not behind it.
        (tail.saturating_sub(head)).min(self.capacity) as usize
    }

    /// Whether a get now would not wait: an item is there (or in flight),
    /// or the ring is shut down. `false` is exact: the ring was empty and
    /// open at the load of `tail`.
    pub(crate) fn gettable(&self) -> bool {
        let head = self.head.head.load(SeqCst);
        let tail = self.tail.tail.fetch_add(0, SeqCst);
        head & DRAINED != 0 || tail & SHUT != 0 || tail & POSITION != head & POSITION
    }

    /// Whether a put now would not wait: a slot is free (or being freed),
    /// or the ring is shut down. `false` is exact: the ring was full and
    /// open at the load of `head`.
    pub(crate) fn puttable(&self) -> bool {
        let tail = self.tail.tail.load(SeqCst);
        let head = self.head.head.fetch_add(0, SeqCst);
        tail & SHUT != 0 || (tail & POSITION) < (head & POSITION) + self.capacity
    }

    /// Whether the ring was shut down.
    pub(crate) fn is_shut(&self) -> bool {
        self.tail.tail.load(SeqCst) & SHUT != 0
    }

    /// Fails every later push.
    pub(crate) fn shut(&self) {
        self.tail.tail.fetch_or(SHUT, SeqCst);
    }

    /// Shuts the ring and takes every item left: later pops fail. Returns
    /// how many items were dropped. Items are dropped here: the caller
    /// holds no lock.
    pub(crate) fn drain(&self) -> u64 {
        self.shut();
        self.head.head.fetch_or(DRAINED, SeqCst);
        let mut dropped = 0;
        while let Ok(item) = self.pop_as(true) {
            drop(item);
            dropped += 1;
        }
        dropped
    }

    /// Items put and not yet marked done (or dropped by a drain).
    pub(crate) fn unfinished(&self) -> u64 {
        self.tail.unfinished.load(SeqCst)
    }

    /// Whether no item is unfinished, read for the wake-up handshake (an
    /// RMW that adds nothing: see the module documentation).
    pub(crate) fn all_done_sync(&self) -> bool {
        self.tail.unfinished.fetch_add(0, SeqCst) == 0
    }

    /// Marks one item done. `None` if none is unfinished; otherwise whether
    /// this made the count zero.
    pub(crate) fn task_done(&self) -> Option<bool> {
        self.tail
            .unfinished
            .fetch_update(SeqCst, SeqCst, |count| count.checked_sub(1))
            .ok()
            .map(|before| before == 1)
    }

    /// Counts `dropped` items as done (never below zero); returns what is
    /// left unfinished.
    pub(crate) fn finish_dropped(&self, dropped: u64) -> u64 {
        let before = self
            .tail
            .unfinished
            .fetch_update(SeqCst, SeqCst, |count| Some(count.saturating_sub(dropped)))
            .unwrap_or_else(|count| count);
        before.saturating_sub(dropped)
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Nobody else holds the ring: every claimed position is published.
        let head = self.head.head.load(Relaxed) & POSITION;
        let tail = self.tail.tail.load(Relaxed) & POSITION;
        for position in head..tail {
            self.slot(position).item.with_mut(|cell| {
                // SAFETY: positions `head..tail` hold published items that
                // no pop took; each is dropped once, here.
                unsafe { (*cell).assume_init_drop() };
            });
        }
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn items_come_out_in_order_across_laps() {
        let ring = Ring::new(3);
        for lap in 0..5u32 {
            for n in 0..3 {
                ring.push(lap * 10 + n).unwrap();
            }
            assert_eq!(ring.push(99).unwrap_err().1, QueueError::Full);
            assert_eq!(ring.len(), 3);
            for n in 0..3 {
                assert_eq!(ring.pop().unwrap(), lap * 10 + n);
            }
            assert_eq!(ring.pop().unwrap_err(), QueueError::Empty);
        }
        assert_eq!(ring.unfinished(), 15);
    }

    #[test]
    fn shut_fails_puts_and_lets_gets_drain() {
        let ring = Ring::new(4);
        ring.push(1).unwrap();
        ring.shut();
        assert_eq!(ring.push(2).unwrap_err().1, QueueError::ShutDown);
        assert!(ring.gettable());
        assert_eq!(ring.pop().unwrap(), 1);
        assert_eq!(ring.pop().unwrap_err(), QueueError::ShutDown);
    }

    #[test]
    fn drain_drops_what_is_left_and_fails_later_gets() {
        let item = Arc::new(());
        let ring = Ring::new(4);
        ring.push(item.clone()).unwrap();
        ring.push(item.clone()).unwrap();
        assert_eq!(ring.drain(), 2);
        assert_eq!(Arc::strong_count(&item), 1);
        assert_eq!(ring.pop().unwrap_err(), QueueError::ShutDown);
        assert_eq!(ring.finish_dropped(2), 0);
    }

    #[test]
    fn dropping_the_ring_drops_its_items_once() {
        let item = Arc::new(());
        let ring = Ring::new(2);
        ring.push(item.clone()).unwrap();
        ring.push(item.clone()).unwrap();
        drop(ring.pop().unwrap());
        ring.push(item.clone()).unwrap();
        drop(ring);
        assert_eq!(Arc::strong_count(&item), 1);
    }

    #[test]
    fn task_done_counts_down_to_zero_and_no_further() {
        let ring = Ring::new(2);
        ring.push(1).unwrap();
        ring.push(2).unwrap();
        assert_eq!(ring.task_done(), Some(false));
        assert_eq!(ring.task_done(), Some(true));
        assert_eq!(ring.task_done(), None);
    }

    #[test]
    fn only_small_bounded_queues_get_a_ring() {
        assert!(fits::<u64>(1024));
        assert!(!fits::<u64>(0));
        assert!(!fits::<u64>(usize::MAX));
        assert!(!fits::<[u8; 4096]>(1024));
    }

    /// Four producers and four consumers on threads: every item comes out
    /// exactly once.
    #[test]
    fn threads_pass_every_item_exactly_once() {
        const PER_PRODUCER: u64 = 20_000;
        let ring = Arc::new(Ring::new(8));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for n in 0..PER_PRODUCER {
                        let mut item = p * PER_PRODUCER + n;
                        loop {
                            match ring.push(item) {
                                Ok(()) => break,
                                Err((back, QueueError::Full)) => {
                                    item = back;
                                    std::thread::yield_now();
                                }
                                Err((_, err)) => panic!("push failed: {err}"),
                            }
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match ring.pop() {
                            Ok(item) => got.push(item),
                            Err(QueueError::Empty) => std::thread::yield_now(),
                            Err(_) => return got,
                        }
                    }
                })
            })
            .collect();
        producers.into_iter().for_each(|p| p.join().unwrap());
        ring.shut();
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        assert!(all.iter().copied().eq(0..4 * PER_PRODUCER));
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{thread, Arc};

    /// A push and a pop racing on a ring of one slot: the pop gets the item
    /// or reports empty, never a torn or duplicated item.
    #[test]
    fn a_pop_racing_a_push_sees_the_item_or_empty() {
        loom::model(|| {
            let ring = Arc::new(Ring::new(1));
            let pusher = {
                let ring = ring.clone();
                thread::spawn(move || ring.push(7u32).unwrap())
            };
            let first = ring.pop();
            pusher.join().unwrap();
            match first {
                Ok(item) => assert_eq!(item, 7),
                Err(err) => {
                    assert_eq!(err, QueueError::Empty);
                    assert_eq!(ring.pop().unwrap(), 7);
                }
            }
            assert_eq!(ring.pop().unwrap_err(), QueueError::Empty);
        });
    }

    /// Two pushes into the last free slot: exactly one wins; the slot is
    /// reused across a lap while a pop frees it.
    #[test]
    fn pushes_and_pops_across_a_lap_lose_nothing() {
        loom::model(|| {
            let ring = Arc::new(Ring::new(1));
            ring.push(1u32).unwrap();
            let popper = {
                let ring = ring.clone();
                thread::spawn(move || ring.pop().unwrap())
            };
            let pushed = ring.push(2).is_ok();
            assert_eq!(popper.join().unwrap(), 1);
            if !pushed {
                ring.push(2).unwrap();
            }
            assert_eq!(ring.pop().unwrap(), 2);
        });
    }

    /// A shutdown racing a push: the pushed item is either refused or
    /// delivered before `ShutDown`.
    #[test]
    fn shutdown_racing_a_push_loses_no_item() {
        loom::model(|| {
            let ring = Arc::new(Ring::new(2));
            let pusher = {
                let ring = ring.clone();
                thread::spawn(move || ring.push(5u32).is_ok())
            };
            ring.shut();
            let mut got = Vec::new();
            let pushed = loop {
                match ring.pop() {
                    Ok(item) => got.push(item),
                    Err(QueueError::ShutDown) => break pusher.join().unwrap(),
                    Err(QueueError::Empty) => thread::yield_now(),
                    Err(err) => panic!("{err}"),
                }
            };
            assert_eq!(got.len(), usize::from(pushed));
        });
    }
}
