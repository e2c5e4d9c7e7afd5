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

use super::overflow;
use crate::loom::{lock, Mutex};
use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};
use std::io;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
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
        // every stack carved from it is back in the pool (stacks hold the
        // pool alive).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// A free slot.
struct Slot {
    /// The lowest usable address (above the guard page, if any).
    low: NonNull<u8>,
    /// Whether a guard page sits below `low`.
    guarded: bool,
}

// SAFETY: a free slot is plain memory owned by the pool.
unsafe impl Send for Slot {}

/// Stacks of one size for one runtime.
pub(crate) struct StackPool {
    /// Usable bytes per stack (a multiple of the page size).
    stack_size: usize,
    page: usize,
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
            state: Mutex::new(PoolState {
                free: Vec::new(),
                regions: Vec::new(),
            }),
        })
    }

    /// A stack, reused if one is free, else carved from a new region.
    pub(crate) fn take(self: &Arc<Self>) -> io::Result<PooledStack> {
        let slot = {
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
        };
        let stack = PooledStack {
            low: slot.low,
            guarded: slot.guarded,
            size: self.stack_size,
            pool: self.clone(),
            valgrind: ManuallyDrop::new(ValgrindStackRegistration::new(
                slot.low.as_ptr(),
                self.stack_size,
            )),
        };
        stack.arm_red_zone();
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

    /// Returns a slot to the free list.
    fn give_back(&self, slot: Slot) {
        let mut state = lock(&self.state);
        state.free.push(slot);
    }
}

/// A stack taken from a [`StackPool`]; goes back to it when dropped.
pub(crate) struct PooledStack {
    low: NonNull<u8>,
    guarded: bool,
    size: usize,
    pool: Arc<StackPool>,
    valgrind: ManuallyDrop<ValgrindStackRegistration>,
}

// SAFETY: the stack is memory owned by this value alone; moving it to
// another thread moves that ownership (a suspended fiber may resume on
// another worker).
unsafe impl Send for PooledStack {}

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
        let guard = if self.guarded { self.pool.page } else { 0 };
        StackPointer::new(self.low.as_ptr() as usize - guard).expect("non-null")
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        // SAFETY: dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.valgrind) };
        self.pool.give_back(Slot {
            low: self.low,
            guarded: self.guarded,
        });
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    #[test]
    fn stacks_are_reused_and_distinct() {
        let pool = StackPool::new(32 * 1024);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_ne!(a.base(), b.base());
        assert_eq!(a.base().get() - a.low.as_ptr() as usize, pool.stack_size);
        let a_base = a.base();
        drop(a);
        let c = pool.take().unwrap();
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
        let stack = pool.take().unwrap();
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
        let stacks: Vec<_> = (0..1000).map(|_| pool.take().unwrap()).collect();
        let regions = pool.state.lock().unwrap().regions.len();
        assert_eq!(regions, 1000usize.div_ceil(STACKS_PER_REGION));
        drop(stacks);
        assert_eq!(
            pool.state.lock().unwrap().free.len(),
            regions * STACKS_PER_REGION
        );
    }
}
