//! Fiber stacks: carved from large regions, pooled and reused.
//!
//! Creating a fiber must not cost a system call in the steady state, and
//! 100,000 live fibers must fit the kernel's default limit of 65,530 memory
//! maps. So stacks are not mapped one by one: a [`StackPool`] maps a region
//! of [`STACKS_PER_REGION`] stacks at once (`MAP_NORESERVE`: only the pages
//! a fiber touches become resident) and hands out slots of it; a stack that
//! is given back goes on a free list and is reused, most recent first.
//!
//! # Overflow detection
//! A guard page (`PROT_NONE`) at the low end of a slot makes an overflow
//! fault instead of corrupting the next slot; but each guard splits the
//! region's mapping in two, so guards are used only for the first
//! [`GUARDED_STACKS`] slots of a process (about half the default map limit).
//! A fault in a guard page is reported as a stack overflow by
//! [`super::overflow`]. Every slot also has a *red zone*: a canary pattern at its low end that
//! the fiber driver checks after every switch and when the fiber ends
//! ([`RedZone::overflowed`]); a hit is reported as a stack overflow and
//! the process aborts, because the neighbouring stack was written.
//!
//! Stacks are registered with Valgrind (a no-op outside it) so that
//! memcheck follows the switches.
//!
//! # The spare slot
//! A fiber that spawns and joins a short C task gives its stack back just
//! before the next spawn takes one. So the pool keeps the last stack given
//! back in one atomic word ([`SpareSlot`]) in front of its mutex: a give
//! that finds the word empty, and a take that finds it full, touch the word
//! alone (one read-modify-write each, where the mutex costs two). The word
//! holds a free slot's address with its guard flag in bit 0 (addresses are
//! page aligned), or 0. A giver owns the slot it stores, a taker the slot
//! it swaps out, so no slot is ever in two hands; orderings: the giver's
//! compare-and-swap is `Release` and the taker's swap `Acquire`, so what
//! the last fiber on a stack wrote (its canary included) is visible to the
//! next owner. The `Relaxed` loads before them only decide whether to try.
//! In helgrind builds the pair is announced as a happens-before edge on the
//! word (a failed give announces one that nothing uses).

use super::overflow;
use crate::loom::{lock, AtomicUsize as SpareWord, Mutex};
use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};
use std::io;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;

/// Stacks mapped together.
pub(crate) const STACKS_PER_REGION: usize = 64;

/// Slots with a real guard page, per process.
pub(crate) const GUARDED_STACKS: usize = 16_384;

/// Bytes of canary at the low end of every stack.
const RED_ZONE: usize = 256;

/// The canary word.
const CANARY: u64 = 0x5350_494E_444C_4521; // "SPINDLE!"

/// The smallest stack a fiber gets (a C function calling `printf` needs
/// a few KiB).
pub(crate) const MIN_STACK_SIZE: usize = 16 * 1024;

/// Slots given a guard page so far, across all pools.
static GUARDS_USED: AtomicUsize = AtomicUsize::new(0);

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// One mapping of `STACKS_PER_REGION` slots.
struct Region {
    base: NonNull<u8>,
    len: usize,
    /// Its entry in the overflow reporter's table, if it has guard pages.
    watched: Option<usize>,
}

// SAFETY: a region is plain memory owned by the pool; the pointer is only
// used to unmap it.
unsafe impl Send for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        if let Some(index) = self.watched {
            overflow::unwatch(index);
        }
        // SAFETY: `base..base+len` is a mapping this region made and owns;
        // every stack carved from it is back in the pool (their fibers keep the
        // pool alive).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// A free slot.
#[derive(Clone, Copy)]
struct Slot {
    /// The lowest usable address (above the guard page, if any).
    low: NonNull<u8>,
    /// Whether a guard page sits below `low`.
    guarded: bool,
}

// SAFETY: a free slot is plain memory owned by the pool.
unsafe impl Send for Slot {}

impl Slot {
    /// The slot as a [`SpareSlot`] word: its address, the guard flag in
    /// bit 0 (never 0: the address is not null).
    fn into_word(self) -> usize {
        self.low.as_ptr().expose_provenance() | usize::from(self.guarded)
    }

    /// The slot [`into_word`](Self::into_word) made.
    fn from_word(word: usize) -> Slot {
        Slot {
            // Exposed again: the word came from a pointer to the mapping.
            low: NonNull::new(std::ptr::with_exposed_provenance_mut(word & !1))
                .expect("a spare word is not 0"),
            guarded: word & 1 == 1,
        }
    }
}

/// One free slot kept outside the pool's mutex (module documentation,
/// "The spare slot"): a word, 0 when empty.
struct SpareSlot(SpareWord);

impl SpareSlot {
    fn new() -> SpareSlot {
        SpareSlot(SpareWord::new(0))
    }

    /// Stores `word` (not 0) if the slot is empty; whether it did.
    fn put(&self, word: usize) -> bool {
        if self.0.load(Relaxed) != 0 {
            return false;
        }
        // The release below, for helgrind (which does not see atomics).
        #[cfg(spindle_helgrind)]
        crate::valgrind::happens_before(&self.0);
        self.0.compare_exchange(0, word, Release, Relaxed).is_ok()
    }

    /// Takes the word stored, if any.
    fn take(&self) -> Option<usize> {
        if self.0.load(Relaxed) == 0 {
            return None;
        }
        let word = self.0.swap(0, Acquire);
        #[cfg(spindle_helgrind)]
        crate::valgrind::happens_after(&self.0);
        (word != 0).then_some(word)
    }
}

/// Stacks of one size for one runtime.
pub(crate) struct StackPool {
    /// Usable bytes per stack (a multiple of the page size).
    stack_size: usize,
    page: usize,
    /// The last slot given back, if it found the spare empty.
    spare: SpareSlot,
    state: Mutex<PoolState>,
}

struct PoolState {
    free: Vec<Slot>,
    regions: Vec<Region>,
}

impl StackPool {
    /// A pool of stacks of at least `stack_size` usable bytes.
    pub(crate) fn new(stack_size: usize) -> Arc<StackPool> {
        let page = page_size();
        let stack_size = stack_size.max(MIN_STACK_SIZE).next_multiple_of(page);
        Arc::new(StackPool {
            stack_size,
            page,
            spare: SpareSlot::new(),
            state: Mutex::new(PoolState {
                free: Vec::new(),
                regions: Vec::new(),
            }),
        })
    }

    /// A stack, reused if one is free, else carved from a new region.
    ///
    /// The stack points back to this pool without counting itself as an
    /// owner (an `Arc` clone and drop per fiber were two atomic
    /// read-modify-writes on every C spawn: about 3% of a spawn + join).
    ///
    /// # Safety
    /// The pool outlives the stack: the caller keeps an `Arc` of it at
    /// least until the stack is dropped.
    pub(crate) unsafe fn take(&self) -> io::Result<PooledStack> {
        let slot = match self.spare.take() {
            Some(word) => Slot::from_word(word),
            None => {
                let mut state = lock(&self.state);
                match state.free.pop() {
                    Some(slot) => slot,
                    None => {
                        let (region, mut slots) = self.map_region()?;
                        state.regions.push(region);
                        let slot = slots.pop().expect("a region has slots");
                        state.free.extend(slots);
                        slot
                    }
                }
            }
        };
        let stack = PooledStack {
            low: slot.low,
            guarded: slot.guarded,
            size: self.stack_size,
            pool: NonNull::from(self),
            valgrind: ManuallyDrop::new(ValgrindStackRegistration::new(
                slot.low.as_ptr(),
                self.stack_size,
            )),
        };
        // A stack given back keeps its canary: the fiber driver checked the
        // zone's ends after the last switch of the fiber it held. So only a
        // slot whose ends are not the canary (a fresh one) is filled, which
        // saves 32 stores on every other take.
        if stack.red_zone().overflowed() {
            stack.arm_red_zone();
        }
        Ok(stack)
    }

    /// Maps a region and cuts it into slots (lowest address last, so the
    /// first slots handed out are at the top).
    fn map_region(&self) -> io::Result<(Region, Vec<Slot>)> {
        let slot_len = self.stack_size + self.page;
        let len = slot_len * STACKS_PER_REGION;
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let mut region = Region {
            base,
            len,
            watched: None,
        };
        let mut slots = Vec::with_capacity(STACKS_PER_REGION);
        for index in 0..STACKS_PER_REGION {
            // SAFETY: `index * slot_len + page` is inside the mapping.
            let guard = unsafe { base.as_ptr().add(index * slot_len) };
            let guarded = GUARDS_USED.fetch_add(1, Relaxed) < GUARDED_STACKS
                // SAFETY: the guard page is inside our mapping, page aligned.
                && unsafe { libc::mprotect(guard.cast(), self.page, libc::PROT_NONE) } == 0;
            // SAFETY: as above, still inside the mapping.
            let low = unsafe { NonNull::new_unchecked(guard.add(self.page)) };
            slots.push(Slot { low, guarded });
        }
        if slots.iter().any(|slot| slot.guarded) {
            region.watched = overflow::watch(base.as_ptr() as usize, len, slot_len, self.page);
        }
        slots.reverse();
        Ok((region, slots))
    }

    /// Returns a slot to the spare word, or else to the free list.
    fn give_back(&self, slot: Slot) {
        if self.spare.put(slot.into_word()) {
            return;
        }
        let mut state = lock(&self.state);
        state.free.push(slot);
    }
}

/// A stack taken from a [`StackPool`]; goes back to it when dropped.
pub(crate) struct PooledStack {
    low: NonNull<u8>,
    guarded: bool,
    size: usize,
    /// Alive until this stack is dropped (the contract of
    /// [`StackPool::take`]).
    pool: NonNull<StackPool>,
    valgrind: ManuallyDrop<ValgrindStackRegistration>,
}

// SAFETY: the stack is memory owned by this value alone; moving it to
// another thread moves that ownership (a suspended fiber may resume on
// another worker). The pool it points to is `Sync` (a mutex and atomics).
unsafe impl Send for PooledStack {}

impl PooledStack {
    fn pool(&self) -> &StackPool {
        // SAFETY: the pool outlives this stack (the contract of `take`).
        unsafe { self.pool.as_ref() }
    }
}

impl PooledStack {
    fn red_zone_start(&self) -> *mut u64 {
        self.low.as_ptr().cast::<u64>()
    }

    fn arm_red_zone(&self) {
        for i in 0..RED_ZONE / 8 {
            // SAFETY: the red zone is the first RED_ZONE bytes of this
            // stack, writable, aligned to a page.
            unsafe { self.red_zone_start().add(i).write_volatile(CANARY) };
        }
    }

    /// A probe of this stack's red zone, to check after the stack moved
    /// into a coroutine.
    pub(crate) fn red_zone(&self) -> RedZone {
        RedZone {
            start: NonNull::new(self.red_zone_start()).expect("non-null"),
        }
    }
}

/// The canary at the low end of a [`PooledStack`]; valid while the stack
/// lives (its owner checks it, and drops it before the stack).
pub(crate) struct RedZone {
    start: NonNull<u64>,
}

// SAFETY: a read-only probe of memory owned by a stack that moves with it.
unsafe impl Send for RedZone {}

impl RedZone {
    /// Whether the fiber ran past the end of its stack (the canary was
    /// overwritten). Call only while the fiber is suspended or finished.
    ///
    /// Checks the zone's two ends only (two loads per switch instead of
    /// 32): a stack growing down past its end writes the zone's top word
    /// first, and a frame that skips it usually still lands on the bottom
    /// one. A write that misses both is missed, as a write that jumps over
    /// the whole zone always is; the guard page and the handler in
    /// [`super::overflow`] are the exact check. The zone is filled whole so
    /// that a trampled canary stands out in a debugger.
    pub(crate) fn overflowed(&self) -> bool {
        [RED_ZONE / 8 - 1, 0].into_iter().any(|i| {
            // SAFETY: the red zone is RED_ZONE bytes of a live stack; the
            // fiber on it is not running.
            unsafe { self.start.as_ptr().add(i).read_volatile() != CANARY }
        })
    }
}

// SAFETY: base and limit delimit memory owned by this value, writable,
// aligned to a page (a multiple of the 16-byte stack alignment); the limit
// includes the guard page when there is one.
unsafe impl Stack for PooledStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.low.as_ptr() as usize + self.size).expect("non-null")
    }

    fn limit(&self) -> StackPointer {
        let guard = if self.guarded { self.pool().page } else { 0 };
        StackPointer::new(self.low.as_ptr() as usize - guard).expect("non-null")
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        // SAFETY: dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.valgrind) };
        self.pool().give_back(Slot {
            low: self.low,
            guarded: self.guarded,
        });
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    /// A stack of `pool`, which every test keeps until its stacks are gone.
    fn take(pool: &Arc<StackPool>) -> PooledStack {
        // SAFETY: each test drops its stacks before its pool.
        unsafe { pool.take() }.unwrap()
    }

    #[test]
    fn stacks_are_reused_and_distinct() {
        let pool = StackPool::new(32 * 1024);
        let a = take(&pool);
        let b = take(&pool);
        assert_ne!(a.base(), b.base());
        assert_eq!(a.base().get() - a.low.as_ptr() as usize, pool.stack_size);
        let a_base = a.base();
        drop(a);
        let c = take(&pool);
        assert_eq!(
            c.base(),
            a_base,
            "the last stack given back is reused first"
        );
        assert_eq!(pool.state.lock().unwrap().regions.len(), 1);
    }

    #[test]
    fn the_red_zone_detects_a_write_past_the_end() {
        let pool = StackPool::new(MIN_STACK_SIZE);
        let stack = take(&pool);
        let probe = stack.red_zone();
        assert!(!probe.overflowed());
        // SAFETY: the first word of the stack is ours to write in a test.
        unsafe { stack.low.as_ptr().write_volatile(0) };
        assert!(probe.overflowed());
        stack.arm_red_zone();
        assert!(!probe.overflowed());
        // The zone's top word, the first a stack growing down reaches.
        // SAFETY: inside the stack, ours to write in a test.
        unsafe { stack.low.as_ptr().add(RED_ZONE - 1).write_volatile(0) };
        assert!(probe.overflowed());
    }

    #[test]
    fn thousands_of_stacks_fit_in_few_regions() {
        let pool = StackPool::new(MIN_STACK_SIZE);
        let stacks: Vec<_> = (0..1000).map(|_| take(&pool)).collect();
        let regions = pool.state.lock().unwrap().regions.len();
        assert_eq!(regions, 1000usize.div_ceil(STACKS_PER_REGION));
        drop(stacks);
        // The first stack given back waits in the spare word.
        assert!(pool.spare.take().is_some());
        assert_eq!(
            pool.state.lock().unwrap().free.len(),
            regions * STACKS_PER_REGION - 1
        );
    }

    #[test]
    fn the_spare_word_holds_the_last_stack_given_back_when_empty() {
        let pool = StackPool::new(MIN_STACK_SIZE);
        let a = take(&pool);
        let b = take(&pool);
        let (a_base, b_base) = (a.base(), b.base());
        drop(a);
        drop(b); // the spare is full: b goes to the list
        assert_eq!(pool.state.lock().unwrap().free.len(), STACKS_PER_REGION - 1);
        let spare = take(&pool);
        assert_eq!(spare.base(), a_base, "the spare is taken first");
        assert!(!spare.red_zone().overflowed(), "its canary is intact");
        let listed = take(&pool);
        assert_eq!(listed.base(), b_base, "then the list, most recent first");
        assert_eq!(pool.spare.take(), None);
    }

    #[test]
    fn a_spare_word_keeps_the_guard_flag() {
        let pool = StackPool::new(MIN_STACK_SIZE);
        let stack = take(&pool);
        for guarded in [false, true] {
            let slot = Slot {
                low: stack.low,
                guarded,
            };
            let back = Slot::from_word(slot.into_word());
            assert_eq!((back.low, back.guarded), (stack.low, guarded));
        }
    }

    #[test]
    fn a_reused_stack_whose_canary_was_hit_is_armed_again() {
        let pool = StackPool::new(MIN_STACK_SIZE);
        let stack = take(&pool);
        let low = stack.low;
        // SAFETY: the zone's top word, inside the stack, ours to write in
        // a test (as an unchecked write past a fiber's end would).
        unsafe {
            low.as_ptr()
                .add(RED_ZONE - 8)
                .cast::<u64>()
                .write_volatile(0)
        };
        drop(stack);
        let again = take(&pool);
        assert_eq!(again.low, low);
        assert!(!again.red_zone().overflowed());
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{thread, yield_now, Arc, RaceCell};

    /// What a giver wrote to a stack before giving it through the spare
    /// word is visible to the thread that takes it; a full word refuses a
    /// give, an empty one takes it, and a word is taken once.
    #[test]
    fn a_spare_word_hands_a_stack_over_with_what_its_giver_wrote() {
        loom::model(|| {
            let spare = Arc::new(SpareSlot::new());
            // The "stack": written by the giver before the give, read by
            // the taker. Words are page addresses in real life; any
            // non-zero value with bit 0 clear will do here.
            let memory = Arc::new(RaceCell::new(0u64));
            let giver = {
                let (spare, memory) = (spare.clone(), memory.clone());
                thread::spawn(move || {
                    // SAFETY: the giver owns the stack until it gives it.
                    memory.with_mut(|p| unsafe { *p = 7 });
                    assert!(spare.put(2), "an empty word takes a give");
                })
            };
            let word = loop {
                if let Some(word) = spare.take() {
                    break word;
                }
                yield_now();
            };
            assert_eq!(word, 2);
            // SAFETY: the taker owns the stack it took.
            assert_eq!(
                memory.with(|p| unsafe { *p }),
                7,
                "the giver's write is visible"
            );
            giver.join().unwrap();
            assert_eq!(spare.take(), None, "taken once");
        });
    }

    /// Two givers race for an empty word: exactly one succeeds, and its
    /// word is the one taken.
    #[test]
    fn of_two_gives_at_once_exactly_one_is_kept() {
        loom::model(|| {
            let spare = Arc::new(SpareSlot::new());
            let givers: Vec<_> = [2, 4]
                .into_iter()
                .map(|word| {
                    let spare = spare.clone();
                    thread::spawn(move || spare.put(word).then_some(word))
                })
                .collect();
            let kept: Vec<usize> = givers
                .into_iter()
                .filter_map(|giver| giver.join().unwrap())
                .collect();
            assert_eq!(kept.len(), 1, "one give kept: {kept:?}");
            assert_eq!(spare.take(), Some(kept[0]));
            assert_eq!(spare.take(), None);
        });
    }
}
