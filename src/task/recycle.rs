//! Task memory recycled on each worker thread.
//!
//! A short task costs little more than its allocation and its free, and with
//! glibc's malloc those are slow as soon as many tasks of one size are alive
//! at once: its per-thread cache holds 7 chunks per size, so a burst of
//! spawns (or of completions, or a task freed on another worker) goes
//! through the arena's bins and, every so often, a consolidation of all of
//! them. Measured on `ping_pong` (2000 tasks alive per round): raising
//! glibc's per-size cache to 2000 chunks made the round 10% faster with one
//! worker and 40% with two.
//!
//! So each worker keeps the task blocks freed on it in LIFO free lists, one
//! per size (8-byte steps up to [`MAX_BLOCK`]), and its next spawn of that
//! size takes the most recently freed block, still warm in its cache. The
//! lists hold at most [`BUDGET`] bytes per worker; beyond that, and on
//! threads that are not workers, blocks go straight back to the global
//! allocator. A block is always allocated and freed with the same layout
//! ([`layout_for`]), so it may be freed on any thread, recycled or not, and
//! what a worker still holds when it exits is freed then.
//!
//! Nothing here is shared between threads: the lists are plain `Cell`s of
//! the worker that owns them (see [`crate::runtime::context::with_worker`]),
//! and a block enters a list only after its last reference is gone (the
//! task's reference count orders everything before the free).
//!
//! Builds for helgrind do not recycle: helgrind learns that memory changed
//! hands from `malloc` and `free`, which recycling would hide from it.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};

/// The largest block recycled, in bytes; bigger tasks use the global
/// allocator directly.
const MAX_BLOCK: usize = 1024;
/// Sizes are recycled in steps of this many bytes (the alignment of every
/// recycled block).
const STEP: usize = 8;
/// Number of free lists: one per size `STEP, 2 * STEP, ..., MAX_BLOCK`.
const CLASSES: usize = MAX_BLOCK / STEP;
/// Bytes a worker's lists may hold in all.
const BUDGET: usize = 1024 * 1024;

/// A free block, linked through its first word.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// The free lists of one worker thread.
pub(crate) struct TaskCache {
    heads: [Cell<*mut FreeBlock>; CLASSES],
    /// Bytes held in all lists.
    held: Cell<usize>,
}

impl Default for TaskCache {
    fn default() -> Self {
        TaskCache {
            heads: std::array::from_fn(|_| Cell::new(ptr::null_mut())),
            held: Cell::new(0),
        }
    }
}

/// The layout to allocate and free a value of layout `natural` with: the
/// same for every call, so that any block can go to any list or back to
/// the global allocator. Sizes that can be recycled are rounded up to
/// [`STEP`] and aligned to it.
#[inline]
pub(crate) fn layout_for(natural: Layout) -> Layout {
    if natural.align() <= STEP && natural.size() <= MAX_BLOCK {
        let size = natural.size().max(1).next_multiple_of(STEP);
        // A multiple of 8 no larger than MAX_BLOCK, aligned to 8: valid.
        Layout::from_size_align(size, STEP).unwrap_or(natural)
    } else {
        natural
    }
}

/// The list for blocks of `layout` (as returned by [`layout_for`]), if
/// such blocks are recycled.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    let recyclable = !cfg!(spindle_helgrind)
        && layout.align() == STEP
        && layout.size() <= MAX_BLOCK
        && layout.size() % STEP == 0;
    recyclable.then(|| layout.size() / STEP - 1)
}

impl TaskCache {
    /// Takes a block of `layout` from this cache or the global allocator.
    pub(crate) fn allocate(cache: Option<&TaskCache>, layout: Layout) -> NonNull<u8> {
        if let (Some(cache), Some(class)) = (cache, class_of(layout)) {
            let head = cache.heads[class].get();
            if let Some(block) = NonNull::new(head) {
                // SAFETY: a block in a list is an unused allocation of this
                // class whose first word links to the next block.
                cache.heads[class].set(unsafe { (*head).next });
                cache.held.set(cache.held.get() - layout.size());
                return block.cast();
            }
        }
        // SAFETY: `layout` has a non-zero size (tasks are never zero-sized:
        // `layout_for` rounds up to at least STEP, and an unrecycled layout
        // holds a task header).
        let block = unsafe { alloc(layout) };
        NonNull::new(block).unwrap_or_else(|| handle_alloc_error(layout))
    }

    /// Gives back a block of `layout` that [`allocate`](Self::allocate)
    /// returned (on any thread) and that nothing uses any more.
    ///
    /// # Safety
    /// `block` came from `allocate` with this `layout`, and is not used
    /// after this call.
    pub(crate) unsafe fn free(cache: Option<&TaskCache>, block: NonNull<u8>, layout: Layout) {
        if let (Some(cache), Some(class)) = (cache, class_of(layout)) {
            if cache.held.get() + layout.size() <= BUDGET {
                let block = block.cast::<FreeBlock>().as_ptr();
                // SAFETY: the block is unused, at least STEP bytes long and
                // aligned to STEP: room for the link.
                unsafe {
                    block.write(FreeBlock {
                        next: cache.heads[class].get(),
                    })
                };
                cache.heads[class].set(block);
                cache.held.set(cache.held.get() + layout.size());
                return;
            }
        }
        // SAFETY: the caller guarantees the block came from the global
        // allocator (directly or through a list) with this layout.
        unsafe { dealloc(block.as_ptr(), layout) };
    }
}

impl Drop for TaskCache {
    fn drop(&mut self) {
        for (class, head) in self.heads.iter().enumerate() {
            let layout = Layout::from_size_align((class + 1) * STEP, STEP)
                .expect("a recycled class is a valid layout");
            let mut block = head.replace(ptr::null_mut());
            while !block.is_null() {
                // SAFETY: every block in the list is an unused allocation of
                // this class from the global allocator.
                unsafe {
                    let next = (*block).next;
                    dealloc(block.cast(), layout);
                    block = next;
                }
            }
        }
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    #[test]
    fn small_layouts_are_rounded_to_the_step_and_large_ones_kept() {
        let small = Layout::from_size_align(150, 4).unwrap();
        assert_eq!(layout_for(small), Layout::from_size_align(152, 8).unwrap());
        let large = Layout::from_size_align(4096, 8).unwrap();
        assert_eq!(layout_for(large), large);
        let aligned = Layout::from_size_align(128, 64).unwrap();
        assert_eq!(layout_for(aligned), aligned);
    }

    #[test]
    fn a_freed_block_is_reused_last_in_first_out_within_the_budget() {
        let cache = TaskCache::default();
        let layout = layout_for(Layout::from_size_align(200, 8).unwrap());
        let a = TaskCache::allocate(Some(&cache), layout);
        let b = TaskCache::allocate(Some(&cache), layout);
        // SAFETY: both came from `allocate` with `layout` and are unused.
        unsafe {
            TaskCache::free(Some(&cache), a, layout);
            TaskCache::free(Some(&cache), b, layout);
        }
        assert_eq!(cache.held.get(), 2 * layout.size());
        assert_eq!(TaskCache::allocate(Some(&cache), layout), b);
        assert_eq!(TaskCache::allocate(Some(&cache), layout), a);
        assert_eq!(cache.held.get(), 0);
        // SAFETY: as above; the cache's drop frees what it holds.
        unsafe {
            TaskCache::free(Some(&cache), a, layout);
            TaskCache::free(None, b, layout);
        }
        assert_eq!(cache.held.get(), layout.size());
    }

    #[test]
    fn the_lists_hold_no_more_than_the_budget() {
        let cache = TaskCache::default();
        let layout = layout_for(Layout::from_size_align(MAX_BLOCK, 8).unwrap());
        let blocks: Vec<_> = (0..BUDGET / MAX_BLOCK + 10)
            .map(|_| TaskCache::allocate(Some(&cache), layout))
            .collect();
        for block in blocks {
            // SAFETY: from `allocate` with `layout`, unused.
            unsafe { TaskCache::free(Some(&cache), block, layout) };
        }
        assert_eq!(cache.held.get(), BUDGET);
    }
}
