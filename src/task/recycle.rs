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
//! The lists are plain `Cell`s of the worker that owns them (see
//! [`crate::runtime::context::with_worker`]), and a block enters a list only
//! after its last reference is gone (the task's reference count orders
//! everything before the free).
//!
//! Tasks often end on another worker than the one that spawned them (a
//! producer spawns, its consumers steal and finish the tasks). The
//! finishing worker's lists then stay full while the spawner's stay empty,
//! and every block beyond the budget went back to glibc, into the
//! spawner's arena, under that arena's lock, which the spawner takes for
//! its next allocation: measured on 100k tasks gated by a semaphore on two
//! workers, most context switches were waits for that lock. So a worker
//! whose lists are full hands a batch of [`GIVE_BATCH`] blocks to its
//! runtime's [`BlockPool`], if the pool's slot for that size is empty, and
//! a worker whose list is empty takes the slot's batch before it calls the
//! allocator. One batch per size at most: when every worker is over budget
//! (a fork-join tree), the blocks go back to glibc as before (measured:
//! an unbounded pool made fib(25) through task groups on two workers 1.7x
//! slower, the blocks it passed around scattered over the heap). A runtime
//! with one worker has no pool.
//!
//! # The pool's protocol
//!
//! One atomic slot per size class, null or the first block of a batch
//! linked through the blocks' first words and ending in null. A giver owns
//! the batch it links (blocks nobody else references) and publishes it with
//! a compare-and-swap from null; a taker swaps the slot to null and owns
//! the batch it got. A batch is never changed while it is in the slot, so
//! there is no ABA to fear: a giver that finds the slot full keeps nothing
//! there. Orderings: the giver's successful CAS is `Release` and the
//! taker's swap `Acquire`, so the links (and everything the block's
//! earlier life wrote) are visible to the taker. The `Relaxed` loads that
//! look at the slot first only decide whether to try.
//!
//! # Idle lists
//!
//! A block freed on a worker that never allocates its size (a task spawned
//! from a thread that is not a worker, or on another worker) stays in the
//! worker's list for good, and such blocks add up until they fill the
//! budget: from then on every size the worker does allocate goes to glibc.
//! Measured on `ping_pong` with one worker, where the bench thread spawns
//! one 128-byte task a round: those blocks filled the lists (6,048 of them
//! after 6,050 rounds, 2.5 seconds; criterion runs more), and from about
//! round 4,500 on the rounds made 3 allocations a ping instead of none:
//! 485-553 ns a ping against 376-392 ns once idle lists are emptied. So every
//! [`TRIM_PERIOD`] frees that find the budget spent, the worker empties the
//! lists of the sizes it has not allocated during its last [`IDLE_AFTER`]
//! allocations ([`TaskCache::trim_idle`]): they are idle, and their bytes
//! go back to the sizes in use. A worker over budget because every size is
//! in use (a fork-join tree) finds none idle and keeps what it has, and so
//! does one that only frees for a while (the tree's unwinding): its clock
//! is its allocations.
//!
//! [`Recycled`] is an `Arc` whose block comes from the same lists, for
//! the small shared values that tasks make and drop as often as tasks
//! (a [`Promise`](crate::Promise)'s state). Measured on `ping_pong` with one
//! worker (1000 pings a round, 2000 promises alive), counting instructions
//! with callgrind over 200 rounds: 899.6M with `Arc`, 767.0M with
//! `Recycled` (tokio: 1014.6M). [`RecycledBox`] is the `Box` of the same
//! lists, for a completion's extra part, which every child of a task group
//! or a gather allocates for its done hook: fib(20) through task groups on
//! one worker, six runs, 340.9M instructions with `Box`, 326.9M with
//! `RecycledBox` with eager children, 505.6M and 499.1M with lazy ones
//! (most of their blocks are alive at once, beyond the lists' budget).
//!
//! Builds for helgrind do not recycle: helgrind learns that memory changed
//! hands from `malloc` and `free`, which recycling would hide from it.

use crate::loom::{fence, AtomicPtr, AtomicUsize};
use crate::runtime::context;
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

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
/// Blocks a worker over its budget hands to the pool at once.
const GIVE_BATCH: usize = 64;
/// Frees that find the budget spent between two looks for idle lists
/// (module documentation, "Idle lists").
const TRIM_PERIOD: u32 = 1024;
/// A size not allocated during this many of the worker's allocations is
/// idle: its list goes back to the global allocator at the next look.
const IDLE_AFTER: u32 = 4096;

/// A free block, linked through its first word.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// The free lists of one worker thread.
pub(crate) struct TaskCache {
    heads: [Cell<*mut FreeBlock>; CLASSES],
    /// Bytes held in all lists.
    held: Cell<usize>,
    /// Allocations of recycled sizes on this worker (wrapping): the clock
    /// of the idle lists.
    allocations: Cell<u32>,
    /// Per size class, `allocations` at its last allocation here.
    last_allocated: [Cell<u32>; CLASSES],
    /// Frees that found the budget spent since the last look for idle
    /// lists.
    over_budget_frees: Cell<u32>,
    /// Where blocks beyond the budget go, and where an empty list looks
    /// first; `None` for the only worker of a runtime (there is nobody to
    /// pass blocks to, and measured: recycling beyond the budget made
    /// fib(25) through task groups on one worker 1.8x slower, its blocks
    /// scattered).
    pool: Option<Arc<BlockPool>>,
}

/// Free blocks passed between the workers of one runtime: at most one
/// batch per size class (see the module documentation for the protocol).
pub(crate) struct BlockPool {
    batches: [AtomicPtr<FreeBlock>; CLASSES],
}

impl Default for BlockPool {
    fn default() -> Self {
        BlockPool {
            batches: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }
}

impl BlockPool {
    /// Whether the slot of `class` looks empty (a give may succeed).
    fn has_room(&self, class: usize) -> bool {
        self.batches[class].load(Relaxed).is_null()
    }

    /// Puts the batch starting at `first` in the slot of `class` if it is
    /// empty; `false` (and nothing kept) if it is not.
    ///
    /// # Safety
    /// The batch is a null-terminated chain of unused blocks of `class`,
    /// linked through their first word, owned by the caller.
    unsafe fn give(&self, class: usize, first: *mut FreeBlock) -> bool {
        self.batches[class]
            .compare_exchange(ptr::null_mut(), first, Release, Relaxed)
            .is_ok()
    }

    /// Takes the batch of `class`: its first block and its length (null
    /// and 0 if the slot is empty).
    fn take(&self, class: usize) -> (*mut FreeBlock, usize) {
        let slot = &self.batches[class];
        if slot.load(Relaxed).is_null() {
            return (ptr::null_mut(), 0);
        }
        let first = slot.swap(ptr::null_mut(), Acquire);
        let mut count = 0;
        let mut block = first;
        while !block.is_null() {
            count += 1;
            // SAFETY: the swap made the batch ours; its links were written
            // before the give that the swap synchronizes with.
            block = unsafe { (*block).next };
        }
        (first, count)
    }
}

impl Drop for BlockPool {
    fn drop(&mut self) {
        for class in 0..CLASSES {
            let (first, _) = self.take(class);
            // SAFETY: the batch is ours and every block in it is an unused
            // allocation of this class from the global allocator.
            unsafe { free_chain(first, class) };
        }
    }
}

/// The layout of the blocks of `class`.
fn class_layout(class: usize) -> Layout {
    Layout::from_size_align((class + 1) * STEP, STEP).expect("a recycled class is a valid layout")
}

/// Gives a chain of blocks of `class` back to the global allocator;
/// returns how many there were.
///
/// # Safety
/// Every block of the chain is an unused allocation of this class from the
/// global allocator, owned by the caller.
unsafe fn free_chain(mut block: *mut FreeBlock, class: usize) -> usize {
    let layout = class_layout(class);
    let mut freed = 0;
    while !block.is_null() {
        // SAFETY: per the contract, read the link before freeing.
        unsafe {
            let next = (*block).next;
            dealloc(block.cast(), layout);
            block = next;
        }
        freed += 1;
    }
    freed
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
    /// Empty lists that overflow into (and refill from) `pool`, or into the
    /// global allocator if there is none.
    pub(crate) fn new(pool: Option<Arc<BlockPool>>) -> TaskCache {
        TaskCache {
            heads: std::array::from_fn(|_| Cell::new(ptr::null_mut())),
            held: Cell::new(0),
            allocations: Cell::new(0),
            last_allocated: std::array::from_fn(|_| Cell::new(0)),
            over_budget_frees: Cell::new(0),
            pool,
        }
    }

    /// Takes a block of `layout` from this cache, its pool, or the global
    /// allocator.
    pub(crate) fn allocate(cache: Option<&TaskCache>, layout: Layout) -> NonNull<u8> {
        if let (Some(cache), Some(class)) = (cache, class_of(layout)) {
            let now = cache.allocations.get().wrapping_add(1);
            cache.allocations.set(now);
            cache.last_allocated[class].set(now);
            let mut head = cache.heads[class].get();
            if let (true, Some(pool)) = (head.is_null(), &cache.pool) {
                let (taken, count) = pool.take(class);
                head = taken;
                cache.held.set(cache.held.get() + count * layout.size());
            }
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
            let mut within_budget = cache.held.get() + layout.size() <= BUDGET;
            if !within_budget && cache.count_over_budget_free() {
                within_budget = cache.held.get() + layout.size() <= BUDGET;
            }
            let pool = cache
                .pool
                .as_deref()
                .filter(|pool| !within_budget && pool.has_room(class));
            if within_budget || pool.is_some() {
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
                if let Some(pool) = pool {
                    cache.give_batch(pool, class);
                }
                return;
            }
        }
        // SAFETY: the caller guarantees the block came from the global
        // allocator (directly or through a list) with this layout.
        unsafe { dealloc(block.as_ptr(), layout) };
    }
}

impl TaskCache {
    /// A free found the budget spent: counts it, and every
    /// [`TRIM_PERIOD`] such frees empties the idle lists. Returns whether
    /// it looked.
    #[inline]
    fn count_over_budget_free(&self) -> bool {
        let frees = self.over_budget_frees.get() + 1;
        if frees < TRIM_PERIOD {
            self.over_budget_frees.set(frees);
            return false;
        }
        self.over_budget_frees.set(0);
        self.trim_idle();
        true
    }

    /// Gives back to the global allocator every list of a size not
    /// allocated during the worker's last [`IDLE_AFTER`] allocations
    /// (module documentation, "Idle lists").
    #[cold]
    #[inline(never)]
    fn trim_idle(&self) {
        let now = self.allocations.get();
        for (class, head) in self.heads.iter().enumerate() {
            let idle = now.wrapping_sub(self.last_allocated[class].get()) >= IDLE_AFTER;
            if idle && !head.get().is_null() {
                // SAFETY: every block in the list is an unused allocation
                // of this class, owned by this cache; the list is cut off.
                let freed = unsafe { free_chain(head.replace(ptr::null_mut()), class) };
                self.held
                    .set(self.held.get() - freed * class_layout(class).size());
            }
        }
    }

    /// Over budget after a free of `class`, with room in the pool: hands
    /// the list's first [`GIVE_BATCH`] blocks to it (to the global
    /// allocator if another worker filled the slot meanwhile).
    fn give_batch(&self, pool: &BlockPool, class: usize) {
        let size = class_layout(class).size();
        // The list holds at least the block just freed.
        let first = self.heads[class].get();
        let mut last = first;
        let mut count = 1;
        while count < GIVE_BATCH {
            // SAFETY: every block in the list is unused and links to the
            // next through its first word.
            let next = unsafe { (*last).next };
            if next.is_null() {
                break;
            }
            last = next;
            count += 1;
        }
        // SAFETY: as above; `last` is in the list. Cutting the batch off
        // leaves it null-terminated.
        let rest = unsafe { std::mem::replace(&mut (*last).next, ptr::null_mut()) };
        self.heads[class].set(rest);
        self.held.set(self.held.get() - count * size);
        // SAFETY: `first ..= last` is a null-terminated chain of unused
        // blocks of `class`, cut from the list: ours to give or free.
        unsafe {
            if !pool.give(class, first) {
                free_chain(first, class);
            }
        }
    }
}

impl Drop for TaskCache {
    fn drop(&mut self) {
        for (class, head) in self.heads.iter().enumerate() {
            // SAFETY: every block in the list is an unused allocation of
            // this class from the global allocator, owned by this cache.
            unsafe { free_chain(head.replace(ptr::null_mut()), class) };
        }
    }
}

/// A shared value counted like an `Arc`, in a block from the current
/// worker's lists: for the small values that tasks create and drop by the
/// thousand ([`Promise`](crate::Promise)'s state), which with glibc pay
/// the same bins as task blocks once many are alive at once.
///
/// Only strong references; the value is dropped, and its block freed (to
/// the lists of whichever worker drops the last reference), when the last
/// one goes. The count follows `Arc`'s protocol: a clone increments it
/// `Relaxed` (a clone is made from a live reference, which keeps the value
/// alive); a drop decrements it `Release`, and the drop that reaches zero
/// runs an `Acquire` fence before it touches the value, so every use
/// through the other references happens before the value is dropped.
pub(crate) struct Recycled<T> {
    block: NonNull<Counted<T>>,
    /// Owns a `Counted<T>` (for the drop check).
    _owns: PhantomData<Counted<T>>,
}

struct Counted<T> {
    references: AtomicUsize,
    value: T,
}

// SAFETY: as `Arc<T>`: the value is shared between threads (hence `Sync`)
// and dropped on whichever thread drops the last reference (hence `Send`).
unsafe impl<T: Send + Sync> Send for Recycled<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync> Sync for Recycled<T> {}

// A pointer to a value that never moves, as `Arc`.
impl<T> Unpin for Recycled<T> {}

impl<T> Recycled<T> {
    /// `value` in a block of its own, with one reference.
    pub(crate) fn new(value: T) -> Recycled<T> {
        Recycled {
            block: new_block(Counted {
                references: AtomicUsize::new(1),
                value,
            }),
            _owns: PhantomData,
        }
    }

    /// The value, if this is its only reference (as `Arc::get_mut`):
    /// nothing else can reach it while the borrow lasts. The load is
    /// `Acquire`, as the last drop's fence: the references dropped before
    /// released their uses. Always `None` in helgrind builds, which do not
    /// see that ordering (they see the value's own locks).
    pub(crate) fn get_mut(this: &mut Recycled<T>) -> Option<&mut T> {
        if cfg!(spindle_helgrind) || this.counted().references.load(Acquire) != 1 {
            return None;
        }
        // SAFETY: the only reference is borrowed mutably, so no other
        // exists or can be made while the borrow lasts, and the block
        // holds a live value.
        Some(unsafe { &mut (*this.block.as_ptr()).value })
    }

    fn counted(&self) -> &Counted<T> {
        // SAFETY: the block holds a live `Counted<T>` while any reference,
        // this one included, exists.
        unsafe { self.block.as_ref() }
    }
}

impl<T> std::ops::Deref for Recycled<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.counted().value
    }
}

impl<T> Clone for Recycled<T> {
    fn clone(&self) -> Self {
        let before = self.counted().references.fetch_add(1, Relaxed);
        // As `Arc`: a count this high means references are being leaked
        // in a loop; wrapping around would free the value while in use.
        if before > isize::MAX as usize {
            std::process::abort();
        }
        Recycled {
            block: self.block,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for Recycled<T> {
    fn drop(&mut self) {
        if self.counted().references.fetch_sub(1, Release) != 1 {
            return;
        }
        fence(Acquire);
        // SAFETY: this was the last reference: nothing else uses the
        // value, and it is dropped once.
        unsafe { drop_block(self.block) };
    }
}

/// std's `Wake` for a [`Recycled`] value: what waking a waker made by
/// [`Recycled::waker`] does. The waker holds one reference to the value, so
/// a value that is stored in a timer wheel as its own waker (a timeout
/// scope) costs no allocation per arming.
pub(crate) trait RecycledWake: Send + Sync + Sized + 'static {
    /// The waker was woken (by value or by reference).
    fn wake(this: &Recycled<Self>);
}

impl<T: RecycledWake> Recycled<T> {
    /// A waker holding a new reference to the value.
    pub(crate) fn waker(this: &Recycled<T>) -> Waker {
        let data = this.clone().into_raw();
        // SAFETY: the vtable's functions treat `data` as the reference it is
        // (see `WakerOf`), which is `Send + Sync` as the `RawWaker` contract
        // asks, because `T: Send + Sync`.
        unsafe { Waker::from_raw(RawWaker::new(data, WakerOf::<T>::vtable())) }
    }

    /// Gives up this reference as a pointer, for [`Recycled::from_raw`].
    fn into_raw(self) -> *const () {
        let block = self.block;
        std::mem::forget(self);
        block.as_ptr().cast_const().cast()
    }

    /// The reference given up by [`Recycled::into_raw`].
    ///
    /// # Safety
    /// `data` came from `into_raw` of a `Recycled<T>` and is used once.
    unsafe fn from_raw(data: *const ()) -> Recycled<T> {
        Recycled {
            // SAFETY: `into_raw` gave a non-null block pointer.
            block: unsafe { NonNull::new_unchecked(data.cast_mut().cast()) },
            _owns: PhantomData,
        }
    }
}

/// The waker vtable of `Recycled<T>`: a waker's data is one reference.
struct WakerOf<T>(PhantomData<T>);

impl<T: RecycledWake> WakerOf<T> {
    const VTABLE: RawWakerVTable =
        RawWakerVTable::new(Self::clone, Self::wake, Self::wake_by_ref, Self::drop);

    /// The one address of the vtable, taken by every waker. `&VTABLE`
    /// written in two functions may become two statics (one per codegen
    /// unit: seen with `CARGO_INCREMENTAL=0`), and `Waker::will_wake`
    /// compares the addresses.
    #[inline(never)]
    fn vtable() -> &'static RawWakerVTable {
        &Self::VTABLE
    }

    /// # Safety (all four)
    /// `data` is a waker's reference, from `into_raw`.
    unsafe fn clone(data: *const ()) -> RawWaker {
        // SAFETY: the waker keeps its reference; the clone takes a new one.
        let this = ManuallyDrop::new(unsafe { Recycled::<T>::from_raw(data) });
        RawWaker::new(Recycled::clone(&this).into_raw(), Self::vtable())
    }

    unsafe fn wake(data: *const ()) {
        // SAFETY: waking by value consumes the waker's reference.
        let this = unsafe { Recycled::<T>::from_raw(data) };
        T::wake(&this);
    }

    unsafe fn wake_by_ref(data: *const ()) {
        // SAFETY: the waker keeps its reference.
        let this = ManuallyDrop::new(unsafe { Recycled::<T>::from_raw(data) });
        T::wake(&this);
    }

    unsafe fn drop(data: *const ()) {
        // SAFETY: dropping the waker gives its reference back.
        drop(unsafe { Recycled::<T>::from_raw(data) });
    }
}

/// A value owned alone, like a `Box`, in a block from the current worker's
/// lists: for the small parts that most tasks of some kinds allocate (the
/// completion's extra part, with a task group's or a gather's hook).
pub(crate) struct RecycledBox<T> {
    block: NonNull<T>,
    /// Owns a `T` (for the drop check).
    _owns: PhantomData<T>,
}

// SAFETY: as `Box<T>`: the value is reached only through this owner.
unsafe impl<T: Send> Send for RecycledBox<T> {}
// SAFETY: as `Box<T>`: `&RecycledBox<T>` gives only `&T`.
unsafe impl<T: Sync> Sync for RecycledBox<T> {}

// A pointer to a value that never moves, as `Box`.
impl<T> Unpin for RecycledBox<T> {}

impl<T> RecycledBox<T> {
    /// `value` in a block of its own.
    pub(crate) fn new(value: T) -> RecycledBox<T> {
        RecycledBox {
            block: new_block(value),
            _owns: PhantomData,
        }
    }
}

impl<T: Default> Default for RecycledBox<T> {
    fn default() -> Self {
        RecycledBox::new(T::default())
    }
}

impl<T> std::ops::Deref for RecycledBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the block holds a live `T` until this owner drops it.
        unsafe { self.block.as_ref() }
    }
}

impl<T> std::ops::DerefMut for RecycledBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and this owner is the only way to it.
        unsafe { self.block.as_mut() }
    }
}

impl<T> Drop for RecycledBox<T> {
    fn drop(&mut self) {
        // SAFETY: the only owner is going: the value is dropped once.
        unsafe { drop_block(self.block) };
    }
}

/// The layout of the block of a `T` (the same for every block of `T`, so
/// any block may go to any list or back to the allocator).
fn block_layout<T>() -> Layout {
    layout_for(Layout::new::<T>())
}

/// Moves `value` into a block from the current worker's lists (or the
/// global allocator). `RawTask::allocate` and its `dealloc` do the same
/// for a task's cell with their own few lines, on purpose: routing the
/// cell through this function and [`drop_block`]'s free cost about 36 and 7
/// instructions more per task (callgrind, ping_pong on one worker).
fn new_block<T>(value: T) -> NonNull<T> {
    let block = context::with_worker(|worker| {
        TaskCache::allocate(worker.map(|w| &w.task_cache), block_layout::<T>())
    })
    .cast::<T>();
    // SAFETY: the block is unused, and `layout_for` keeps (or raises) the
    // size and alignment of `T`.
    unsafe { block.write(value) };
    block
}

/// Drops the value of a block from [`new_block`] and frees the block (to
/// the current worker's lists), even if the value's drop unwinds.
///
/// # Safety
/// `block` came from `new_block::<T>`, holds a live value, and is not used
/// after this call.
unsafe fn drop_block<T>(block: NonNull<T>) {
    /// Frees the block on the way out, unwinding or not.
    struct Free(NonNull<u8>, Layout);
    impl Drop for Free {
        fn drop(&mut self) {
            // SAFETY: allocated by `TaskCache::allocate` with this layout
            // (in `new_block`); its value is dropped, or unwinding out of
            // its drop, and nothing uses it any more (the caller's
            // contract).
            context::with_worker(|worker| unsafe {
                TaskCache::free(worker.map(|w| &w.task_cache), self.0, self.1)
            });
        }
    }
    let _free = Free(block.cast(), block_layout::<T>());
    // SAFETY: live and dropped once (the caller's contract).
    unsafe { ptr::drop_in_place(block.as_ptr()) };
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    /// Counts its drops.
    struct Dropped(Arc<StdAtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn a_recycled_value_is_dropped_once_with_its_last_reference() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let first = Recycled::new(Dropped(drops.clone()));
        let clones: Vec<_> = (0..4).map(|_| first.clone()).collect();
        drop(first);
        assert_eq!(drops.load(Relaxed), 0, "nothing dropped while referenced");
        let threads: Vec<_> = clones
            .into_iter()
            .map(|clone| std::thread::spawn(move || drop(clone)))
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(drops.load(Relaxed), 1);
    }

    #[test]
    fn only_the_only_reference_gets_the_value_mutably() {
        let mut value = Recycled::new(1u32);
        *Recycled::get_mut(&mut value).expect("alone") += 1;
        let clone = value.clone();
        assert!(Recycled::get_mut(&mut value).is_none(), "shared");
        std::thread::spawn(move || assert_eq!(*clone, 2))
            .join()
            .unwrap();
        assert_eq!(
            Recycled::get_mut(&mut value).copied(),
            Some(2),
            "alone again"
        );
    }

    /// Counts its wakes; its drops through the `Dropped` it holds.
    struct Alarm {
        wakes: StdAtomicUsize,
        _dropped: Dropped,
    }
    impl RecycledWake for Alarm {
        fn wake(this: &Recycled<Alarm>) {
            this.wakes.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn a_recycled_waker_wakes_its_value_and_holds_one_reference_per_waker() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let alarm = Recycled::new(Alarm {
            wakes: StdAtomicUsize::new(0),
            _dropped: Dropped(drops.clone()),
        });
        let waker = Recycled::waker(&alarm);
        let other = waker.clone();
        assert!(other.will_wake(&waker), "clones wake the same value");
        waker.wake_by_ref();
        let on_another_thread = std::thread::spawn(move || other.wake());
        on_another_thread.join().unwrap();
        assert_eq!(alarm.wakes.load(Relaxed), 2);
        drop(alarm);
        assert_eq!(drops.load(Relaxed), 0, "the remaining waker keeps it");
        drop(waker);
        assert_eq!(drops.load(Relaxed), 1, "dropped once, with the last waker");
    }

    #[test]
    fn a_recycled_box_drops_its_value_once_and_lends_it_mutably() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let mut boxed = RecycledBox::new((Dropped(drops.clone()), 1));
        boxed.1 += 1;
        assert_eq!(boxed.1, 2);
        let moved = std::thread::spawn(move || boxed).join().unwrap();
        assert_eq!(drops.load(Relaxed), 0);
        drop(moved);
        assert_eq!(drops.load(Relaxed), 1);
        assert_eq!(*RecycledBox::<Vec<u8>>::default(), Vec::<u8>::new());
    }

    #[test]
    // (Builds for helgrind recycle nothing.)
    #[cfg(not(spindle_helgrind))]
    fn on_a_worker_a_recycled_block_is_reused_by_the_next_value_of_its_size() {
        let rt = crate::Runtime::builder().worker_threads(1).build().unwrap();
        let (first, second, third, fourth) = rt
            .block_on(async {
                let value = Recycled::new([7u64; 5]);
                let first = &*value as *const [u64; 5] as usize;
                drop(value);
                // Had the block gone back to the allocator, this allocation
                // of the same size would take it (glibc reuses last in,
                // first out too).
                let other = std::hint::black_box(Box::new([9u64; 6]));
                let value = Recycled::new([8u64; 5]);
                assert_eq!(other[0], 9);
                assert_eq!(*value, [8; 5]);
                let second = &*value as *const [u64; 5] as usize;
                let boxed = RecycledBox::new([6u64; 6]);
                let third = &*boxed as *const [u64; 6] as usize;
                drop(boxed);
                let other = std::hint::black_box(Box::new([9u64; 6]));
                let boxed = RecycledBox::new([5u64; 6]);
                assert_eq!((other[0], boxed[0]), (9, 5));
                crate::Ok((first, second, third, &*boxed as *const [u64; 6] as usize))
            })
            .unwrap();
        assert_eq!(first, second, "the freed block went to the worker's list");
        assert_eq!(third, fourth, "so did the box's");
    }

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
        let cache = TaskCache::new(Some(Arc::default()));
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
        let cache = TaskCache::new(None);
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

    /// Blocks of a size the worker never allocates (tasks spawned from
    /// another thread) fill its budget; once the worker has made
    /// [`IDLE_AFTER`] allocations of another size, the next look gives
    /// them back, and that size is recycled again.
    #[test]
    fn idle_lists_give_their_bytes_back_to_the_sizes_in_use() {
        let cache = TaskCache::new(None);
        let idle = layout_for(Layout::from_size_align(128, 8).unwrap());
        let in_use = layout_for(Layout::from_size_align(200, 8).unwrap());
        for _ in 0..BUDGET / idle.size() {
            let block = TaskCache::allocate(None, idle);
            // SAFETY: from `allocate` with `idle`, unused, freed once.
            unsafe { TaskCache::free(Some(&cache), block, idle) };
        }
        assert_eq!(cache.held.get(), BUDGET);
        // Each round's free finds the budget spent, until a look finds the
        // idle list: the first after IDLE_AFTER allocations.
        let mut rounds = 0;
        let last = loop {
            let block = TaskCache::allocate(Some(&cache), in_use);
            // SAFETY: from `allocate` with `in_use`, unused, freed once.
            unsafe { TaskCache::free(Some(&cache), block, in_use) };
            rounds += 1;
            if cache.held.get() < BUDGET {
                break block;
            }
            assert!(rounds < IDLE_AFTER + TRIM_PERIOD, "never trimmed");
        };
        assert!(rounds >= IDLE_AFTER, "trimmed after {rounds} allocations");
        assert_eq!(cache.held.get(), in_use.size(), "the idle list is gone");
        assert_eq!(TaskCache::allocate(Some(&cache), in_use), last);
        // SAFETY: as above.
        unsafe { TaskCache::free(None, last, in_use) };
    }

    /// A worker over its budget with every size in use (a fork-join tree)
    /// keeps its lists, and so does one that only frees.
    #[test]
    fn lists_of_sizes_in_use_are_kept_over_the_budget() {
        let cache = TaskCache::new(None);
        let layout = layout_for(Layout::from_size_align(200, 8).unwrap());
        let blocks: Vec<_> = (0..BUDGET / layout.size())
            .map(|_| TaskCache::allocate(Some(&cache), layout))
            .collect();
        for block in blocks {
            // SAFETY: from `allocate` with `layout`, unused, freed once.
            unsafe { TaskCache::free(Some(&cache), block, layout) };
        }
        let full = cache.held.get();
        // Only frees: the clock stands still.
        for _ in 0..2 * TRIM_PERIOD {
            let extra = TaskCache::allocate(None, layout);
            // SAFETY: from `allocate` with `layout`, unused, freed once.
            unsafe { TaskCache::free(Some(&cache), extra, layout) };
        }
        assert_eq!(cache.held.get(), full, "nothing was trimmed");
        for _ in 0..2 * IDLE_AFTER {
            // One block out of the list and back, and one more freed
            // beyond the budget (to the allocator): the size is in use.
            let taken = TaskCache::allocate(Some(&cache), layout);
            let extra = TaskCache::allocate(None, layout);
            // SAFETY: from `allocate` with `layout`, unused, freed once.
            unsafe {
                TaskCache::free(Some(&cache), taken, layout);
                TaskCache::free(Some(&cache), extra, layout);
            }
        }
        assert!(cache.allocations.get() >= 2 * IDLE_AFTER);
        assert_eq!(cache.held.get(), full, "nothing was trimmed");
    }

    /// Blocks freed beyond one worker's budget serve another worker's
    /// allocations (a spawner whose tasks end elsewhere), one batch per
    /// size at most.
    #[test]
    fn a_batch_beyond_the_budget_goes_through_the_pool_to_another_worker() {
        let pool = Arc::new(BlockPool::default());
        let spawner = TaskCache::new(Some(pool.clone()));
        let finisher = TaskCache::new(Some(pool.clone()));
        let layout = layout_for(Layout::from_size_align(MAX_BLOCK, 8).unwrap());
        let class = class_of(layout).unwrap();
        let blocks: Vec<_> = (0..BUDGET / MAX_BLOCK + 3 * GIVE_BATCH)
            .map(|_| TaskCache::allocate(Some(&spawner), layout))
            .collect();
        for block in &blocks {
            // SAFETY: from `allocate` with `layout`, unused, freed once.
            unsafe { TaskCache::free(Some(&finisher), *block, layout) };
        }
        assert!(finisher.held.get() <= BUDGET);
        assert!(!pool.has_room(class), "one batch waits in the pool");
        // The spawner's empty list takes the batch, not new blocks.
        let mut again = vec![TaskCache::allocate(Some(&spawner), layout)];
        assert!(pool.has_room(class));
        assert_eq!(spawner.held.get(), (GIVE_BATCH - 1) * layout.size());
        again.extend((1..GIVE_BATCH).map(|_| TaskCache::allocate(Some(&spawner), layout)));
        assert!(
            again.iter().all(|block| blocks.contains(block)),
            "the batch's blocks"
        );
        assert_eq!(spawner.held.get(), 0);
        for block in again {
            // SAFETY: from `allocate` with `layout`, unused, freed once.
            unsafe { TaskCache::free(None, block, layout) };
        }
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::thread;

    /// Two workers give a batch each while a third takes: every block ends
    /// up taken exactly once or freed by its giver, links intact.
    #[test]
    fn every_batch_is_taken_once_or_kept_by_its_giver() {
        loom::model(|| {
            let pool = Arc::new(BlockPool::default());
            let class = 1; // 16-byte blocks
            let layout = class_layout(class);
            let give_two = |pool: Arc<BlockPool>| {
                thread::spawn(move || {
                    // SAFETY: fresh blocks of the class's layout, linked
                    // into a null-terminated chain of two this thread owns.
                    unsafe {
                        let first = alloc(layout).cast::<FreeBlock>();
                        let last = alloc(layout).cast::<FreeBlock>();
                        first.write(FreeBlock { next: last });
                        last.write(FreeBlock {
                            next: ptr::null_mut(),
                        });
                        if pool.give(class, first) {
                            2
                        } else {
                            free_chain(first, class);
                            0
                        }
                    }
                })
            };
            let givers = [give_two(pool.clone()), give_two(pool.clone())];
            let (taken, count) = pool.take(class);
            let given: usize = givers.into_iter().map(|g| g.join().unwrap()).sum();
            let (rest, more) = pool.take(class);
            assert!(count == 0 || count == 2, "batches arrive whole");
            assert!(more == 0 || more == 2);
            assert_eq!(count + more, given, "a batch given is taken once");
            assert!(given >= 2, "an empty slot takes a batch");
            // SAFETY: both batches are ours, of unused blocks of the class.
            unsafe {
                free_chain(taken, class);
                free_chain(rest, class);
            }
        });
    }

    /// Counts the uses made through the references, and checks at its drop
    /// that it sees all of them.
    struct Uses {
        count: AtomicUsize,
        expected: usize,
    }
    impl Drop for Uses {
        fn drop(&mut self) {
            assert_eq!(
                self.count.load(Relaxed),
                self.expected,
                "a use is not visible"
            );
        }
    }

    /// Whichever thread drops the last reference drops the value once, and
    /// after every use made through the other references.
    #[test]
    fn the_last_reference_drops_the_value_after_every_use() {
        loom::model(|| {
            let value = Recycled::new(Uses {
                count: AtomicUsize::new(0),
                expected: 2,
            });
            let other = value.clone();
            let thread = thread::spawn(move || {
                other.count.fetch_add(1, Relaxed);
                drop(other);
            });
            value.count.fetch_add(1, Relaxed);
            drop(value);
            thread.join().unwrap();
        });
    }
}
