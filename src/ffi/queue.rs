//! Queues of pointers from C (asyncio's `Queue`, `LifoQueue`,
//! `PriorityQueue`).
//!
//! Items are `void *` that the queue hands back untouched; C owns what they
//! point to. A priority queue orders them by an `int64_t` priority given
//! with each put, lowest first, first in first out among equal priorities.

use super::sync::{free_handle, new_handle, Counted, Users};
use super::task::{blocking_status, SendPtr};
use super::SPINDLE_OK;
use super::{boundary, SPINDLE_EEMPTY, SPINDLE_EFULL, SPINDLE_EINVAL, SPINDLE_ESHUTDOWN};
use crate::error::{Error, Result};
use crate::queue::{LifoQueue, PriorityQueue, Queue, QueueError};
use std::cmp::Ordering;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A first-in, first-out queue (asyncio's `Queue`).
pub const SPINDLE_QUEUE_FIFO: c_int = 0;
/// A last-in, first-out queue (asyncio's `LifoQueue`).
pub const SPINDLE_QUEUE_LIFO: c_int = 1;
/// A priority queue (asyncio's `PriorityQueue`): lowest priority first,
/// first in first out among equal priorities.
pub const SPINDLE_QUEUE_PRIORITY: c_int = 2;

/// A queue of `void *` items.
pub struct spindle_queue {
    kind: Kind,
    /// The order of puts, to keep equal priorities first in, first out.
    next_seq: AtomicU64,
    users: Users,
}

enum Kind {
    Fifo(Queue<SendPtr>),
    Lifo(LifoQueue<SendPtr>),
    Priority(PriorityQueue<Ranked>),
}

/// An item of a priority queue, ordered by (priority, order of the put).
struct Ranked {
    priority: i64,
    seq: u64,
    item: SendPtr,
}

impl Ranked {
    fn key(&self) -> (i64, u64) {
        (self.priority, self.seq)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Calls the same method on whichever queue `kind` holds.
macro_rules! each {
    ($kind:expr, $queue:ident => $body:expr) => {
        match $kind {
            Kind::Fifo($queue) => $body,
            Kind::Lifo($queue) => $body,
            Kind::Priority($queue) => $body,
        }
    };
}

impl spindle_queue {
    fn ranked(&self, priority: i64, item: SendPtr) -> Ranked {
        Ranked {
            priority,
            seq: self.next_seq.fetch_add(1, Relaxed),
            item,
        }
    }

    /// Puts `item`, waiting while the queue is full; `priority` only counts
    /// for a priority queue.
    async fn put(&self, priority: i64, item: SendPtr) -> Result<()> {
        match &self.kind {
            Kind::Fifo(queue) => queue.put(item).await,
            Kind::Lifo(queue) => queue.put(item).await,
            Kind::Priority(queue) => queue.put(self.ranked(priority, item)).await,
        }
    }

    fn put_nowait(&self, priority: i64, item: SendPtr) -> Result<()> {
        match &self.kind {
            Kind::Fifo(queue) => queue.put_nowait(item),
            Kind::Lifo(queue) => queue.put_nowait(item),
            Kind::Priority(queue) => queue.put_nowait(self.ranked(priority, item)),
        }
    }

    async fn get(&self) -> Result<SendPtr> {
        match &self.kind {
            Kind::Fifo(queue) => queue.get().await,
            Kind::Lifo(queue) => queue.get().await,
            Kind::Priority(queue) => queue.get().await.map(|ranked| ranked.item),
        }
    }

    fn get_nowait(&self) -> Result<SendPtr> {
        match &self.kind {
            Kind::Fifo(queue) => queue.get_nowait(),
            Kind::Lifo(queue) => queue.get_nowait(),
            Kind::Priority(queue) => queue.get_nowait().map(|ranked| ranked.item),
        }
    }

    async fn join(&self) -> Result<()> {
        each!(&self.kind, queue => queue.join().await)
    }
}

impl Counted for spindle_queue {
    fn users(&self) -> &Users {
        &self.users
    }
}

/// The status of a failed queue call: `SPINDLE_EFULL`, `SPINDLE_EEMPTY`,
/// `SPINDLE_ESHUTDOWN`, or the error's code (a cancellation remembered).
fn failure(error: Error) -> c_int {
    match error.downcast_ref::<QueueError>() {
        Some(QueueError::Full) => SPINDLE_EFULL,
        Some(QueueError::Empty) => SPINDLE_EEMPTY,
        Some(QueueError::ShutDown) => SPINDLE_ESHUTDOWN,
        None => blocking_status(Err(error)),
    }
}

/// The status of a queue call.
fn status(result: Result<()>) -> c_int {
    match result {
        Ok(()) => SPINDLE_OK,
        Err(e) => failure(e),
    }
}

/// Creates a queue of `kind` (`SPINDLE_QUEUE_FIFO`, `SPINDLE_QUEUE_LIFO` or
/// `SPINDLE_QUEUE_PRIORITY`) holding at most `maxsize` items, 0 meaning
/// unbounded. `SPINDLE_EINVAL` for another kind. Free it with
/// `spindle_queue_free`.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_new(
    kind: c_int,
    maxsize: usize,
    out: *mut *mut spindle_queue,
) -> c_int {
    boundary(|| {
        let kind = match kind {
            SPINDLE_QUEUE_FIFO => Kind::Fifo(Queue::new(maxsize)),
            SPINDLE_QUEUE_LIFO => Kind::Lifo(LifoQueue::new(maxsize)),
            SPINDLE_QUEUE_PRIORITY => Kind::Priority(PriorityQueue::new(maxsize)),
            _ => return SPINDLE_EINVAL,
        };
        let queue = spindle_queue {
            kind,
            next_seq: AtomicU64::new(0),
            users: Users::default(),
        };
        // SAFETY: per the contract.
        unsafe { new_handle(out, queue) }
    })
}

/// Puts with `priority`, waiting while full (shared by the two puts).
///
/// # Safety
/// `queue` is NULL or a live queue.
unsafe fn put(queue: *mut spindle_queue, priority: i64, item: *mut c_void) -> c_int {
    // SAFETY: NULL or live per the caller.
    let Some(queue) = (unsafe { queue.as_ref() }) else {
        return SPINDLE_EINVAL;
    };
    match queue.users.block_on(queue.put(priority, SendPtr(item))) {
        Ok(result) => status(result),
        Err(code) => code,
    }
}

/// Puts `item` at the end of the queue, waiting while it is full (asyncio's
/// `await queue.put(item)`); on a priority queue its priority is 0.
/// `SPINDLE_ESHUTDOWN` once the queue is shut down (also while waiting). A
/// cancellation point: `SPINDLE_ECANCELED` with nothing put.
///
/// # Safety
/// `queue` is NULL or a live queue.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_put(queue: *mut spindle_queue, item: *mut c_void) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        unsafe { put(queue, 0, item) }
    })
}

/// Puts `item` with `priority` in a priority queue, waiting while it is
/// full: `spindle_queue_get` returns the lowest priority first, and items
/// of equal priority in the order they were put. `SPINDLE_EINVAL` on a
/// queue of another kind. Otherwise as `spindle_queue_put`.
///
/// # Safety
/// `queue` is NULL or a live queue.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_put_priority(
    queue: *mut spindle_queue,
    priority: i64,
    item: *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { queue.as_ref() } {
            Some(q) if matches!(q.kind, Kind::Priority(_)) => {
                // SAFETY: per the contract.
                unsafe { put(queue, priority, item) }
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// Puts `item` if there is room, without waiting (asyncio's
/// `put_nowait`): `SPINDLE_EFULL` if the queue is full, `SPINDLE_ESHUTDOWN`
/// once it is shut down. On a priority queue its priority is 0. Callable
/// from any thread.
///
/// # Safety
/// `queue` is NULL or a live queue.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_put_nowait(
    queue: *mut spindle_queue,
    item: *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { queue.as_ref() } {
            Some(queue) => status(queue.put_nowait(0, SendPtr(item))),
            None => SPINDLE_EINVAL,
        }
    })
}

/// `spindle_queue_put_nowait` with a priority, for a priority queue
/// (`SPINDLE_EINVAL` on another kind).
///
/// # Safety
/// `queue` is NULL or a live queue.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_put_priority_nowait(
    queue: *mut spindle_queue,
    priority: i64,
    item: *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { queue.as_ref() } {
            Some(queue) if matches!(queue.kind, Kind::Priority(_)) => {
                status(queue.put_nowait(priority, SendPtr(item)))
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// Takes the next item into `*item`, waiting while the queue is empty
/// (asyncio's `await queue.get()`). After a shutdown it returns the items
/// left, then `SPINDLE_ESHUTDOWN` (at once after an immediate shutdown). A
/// cancellation point: `SPINDLE_ECANCELED` with no item taken.
///
/// # Safety
/// `queue` is NULL or a live queue; `item` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_get(
    queue: *mut spindle_queue,
    item: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(queue) = (unsafe { queue.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        if item.is_null() {
            return SPINDLE_EINVAL;
        }
        match queue.users.block_on(queue.get()) {
            Ok(Ok(got)) => {
                // SAFETY: checked non-null; valid for writes per the contract.
                unsafe { item.write(got.0) };
                SPINDLE_OK
            }
            Ok(Err(e)) => failure(e),
            Err(code) => code,
        }
    })
}

/// Takes the next item into `*item` if there is one, without waiting
/// (asyncio's `get_nowait`): `SPINDLE_EEMPTY` if the queue is empty,
/// `SPINDLE_ESHUTDOWN` if it is also shut down. Callable from any thread.
///
/// # Safety
/// `queue` is NULL or a live queue; `item` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_get_nowait(
    queue: *mut spindle_queue,
    item: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(queue) = (unsafe { queue.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        if item.is_null() {
            return SPINDLE_EINVAL;
        }
        match queue.get_nowait() {
            Ok(got) => {
                // SAFETY: checked non-null; valid for writes per the contract.
                unsafe { item.write(got.0) };
                SPINDLE_OK
            }
            Err(e) => failure(e),
        }
    })
}

/// Marks one item taken from the queue as processed (asyncio's
/// `task_done()`). `SPINDLE_ESTATE` if called more often than items were
/// put. Callable from any thread.
///
/// # Safety
/// `queue` is NULL or a live queue.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_task_done(queue: *mut spindle_queue) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { queue.as_ref() } {
            Some(queue) => status(each!(&queue.kind, q => q.task_done())),
            None => SPINDLE_EINVAL,
        }
    })
}

/// Waits until every item put was marked done with
/// `spindle_queue_task_done` (asyncio's `await queue.join()`); returns at
/// once if none is pending. A cancellation point.
///
/// # Safety
/// `queue` is NULL or a live queue.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_join(queue: *mut spindle_queue) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(queue) = (unsafe { queue.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        match queue.users.block_on(queue.join()) {
            Ok(result) => status(result),
            Err(code) => code,
        }
    })
}

/// Stores the number of items in the queue in `*size` (asyncio's
/// `qsize()`).
///
/// # Safety
/// `queue` is NULL or a live queue; `size` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_size(
    queue: *const spindle_queue,
    size: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { queue.as_ref() } {
            Some(queue) if !size.is_null() => {
                // SAFETY: checked non-null; valid for writes per the contract.
                unsafe { size.write(each!(&queue.kind, q => q.qsize())) };
                SPINDLE_OK
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// Stores the most items the queue holds in `*maxsize` (0: unbounded).
///
/// # Safety
/// `queue` is NULL or a live queue; `maxsize` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_maxsize(
    queue: *const spindle_queue,
    maxsize: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { queue.as_ref() } {
            Some(queue) if !maxsize.is_null() => {
                // SAFETY: checked non-null; valid for writes per the contract.
                unsafe { maxsize.write(each!(&queue.kind, q => q.maxsize())) };
                SPINDLE_OK
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// Shuts the queue down (asyncio's `shutdown(immediate)`): puts fail with
/// `SPINDLE_ESHUTDOWN`, also those waiting; gets return the items left,
/// then fail. If `immediate` is non-zero, the items left are discarded (the
/// pointers are dropped, not freed: C still owns what they point to) and
/// counted as done, and gets fail at once. Callable from any thread.
///
/// # Safety
/// `queue` is NULL or a live queue.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_shutdown(
    queue: *mut spindle_queue,
    immediate: c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { queue.as_ref() } {
            Some(queue) => {
                each!(&queue.kind, q => q.shutdown(immediate != 0));
                SPINDLE_OK
            }
            None => SPINDLE_EINVAL,
        }
    })
}

/// Frees a queue. `SPINDLE_EBUSY` (nothing freed) while tasks wait in
/// `spindle_queue_put`, `spindle_queue_get` or `spindle_queue_join` (an
/// immediate shutdown releases the waiting puts and gets). The items left
/// are dropped, not freed.
///
/// # Safety
/// `queue` is NULL or a live queue, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_queue_free(queue: *mut spindle_queue) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        unsafe { free_handle(queue) }
    })
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use crate::ffi::sync::test_util::{join, run_c, spawn_c, P};
    use crate::ffi::task::{spindle_sleep, spindle_task_cancel};
    use crate::ffi::{SPINDLE_EBUSY, SPINDLE_ECANCELED, SPINDLE_ENOTASK, SPINDLE_ESTATE};
    use std::ptr;

    fn new_queue(kind: c_int, maxsize: usize) -> P<spindle_queue> {
        let mut queue = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        assert_eq!(unsafe { spindle_queue_new(kind, maxsize, &mut queue) }, 0);
        P(queue)
    }

    fn item(n: usize) -> *mut c_void {
        n as *mut c_void
    }

    /// Takes every item without waiting, as numbers.
    fn drain(queue: P<spindle_queue>) -> Vec<usize> {
        let mut items = Vec::new();
        let mut got = ptr::null_mut();
        // SAFETY: a live queue; a valid out-pointer.
        while unsafe { spindle_queue_get_nowait(queue.get(), &mut got) } == 0 {
            items.push(got as usize);
        }
        items
    }

    #[test]
    fn a_producer_and_a_consumer_pass_items_through_a_bounded_queue() {
        let (code, sum) = run_c(|| {
            let queue = new_queue(SPINDLE_QUEUE_FIFO, 2);
            let consumer = spawn_c(move || {
                let mut sum = 0;
                let mut order = Vec::new();
                loop {
                    let mut got = ptr::null_mut();
                    // SAFETY: the queue outlives the task.
                    match unsafe { spindle_queue_get(queue.get(), &mut got) } {
                        0 => {
                            sum += got as usize;
                            order.push(got as usize);
                            // SAFETY: as above.
                            assert_eq!(unsafe { spindle_queue_task_done(queue.get()) }, 0);
                        }
                        SPINDLE_ESHUTDOWN => break,
                        code => return Err(code),
                    }
                }
                assert_eq!(order, (1..=10).collect::<Vec<_>>());
                Ok(sum)
            });
            let mut size = usize::MAX;
            // SAFETY: a live queue; valid out-pointers.
            unsafe {
                for n in 1..=10 {
                    assert_eq!(spindle_queue_put(queue.get(), item(n)), 0);
                    assert_eq!(spindle_queue_size(queue.get(), &mut size), 0);
                    assert!(size <= 2);
                }
                assert_eq!(spindle_queue_maxsize(queue.get(), &mut size), 0);
                assert_eq!(size, 2);
                assert_eq!(spindle_queue_join(queue.get()), 0);
                assert_eq!(spindle_queue_size(queue.get(), &mut size), 0);
                assert_eq!(size, 0);
                assert_eq!(spindle_queue_shutdown(queue.get(), 0), 0);
                assert_eq!(spindle_queue_put(queue.get(), item(1)), SPINDLE_ESHUTDOWN);
            }
            let (code, sum) = join(consumer);
            assert_eq!(code, 0);
            // SAFETY: a live queue, no waiter.
            assert_eq!(unsafe { spindle_queue_free(queue.get()) }, 0);
            Ok(sum)
        });
        assert_eq!((code, sum), (0, 55));
    }

    #[test]
    fn the_three_kinds_give_their_items_in_their_order() {
        let fifo = new_queue(SPINDLE_QUEUE_FIFO, 0);
        let lifo = new_queue(SPINDLE_QUEUE_LIFO, 0);
        let priority = new_queue(SPINDLE_QUEUE_PRIORITY, 0);
        // SAFETY: live queues.
        unsafe {
            for n in [1, 3, 2] {
                assert_eq!(spindle_queue_put_nowait(fifo.get(), item(n)), 0);
                assert_eq!(spindle_queue_put_nowait(lifo.get(), item(n)), 0);
            }
            // Lowest priority first; equal priorities first in, first out.
            for (priority_of, n) in [(5, 50), (-1, 10), (5, 51), (0, 20), (5, 52), (-1, 11)] {
                assert_eq!(
                    spindle_queue_put_priority_nowait(priority.get(), priority_of, item(n)),
                    0
                );
            }
            // A plain put on a priority queue has priority 0.
            assert_eq!(spindle_queue_put_nowait(priority.get(), item(21)), 0);
            // Priorities only go to a priority queue.
            assert_eq!(
                spindle_queue_put_priority_nowait(fifo.get(), 1, item(0)),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_queue_put_priority(lifo.get(), 1, item(0)),
                SPINDLE_EINVAL
            );
        }
        assert_eq!(drain(fifo), [1, 3, 2]);
        assert_eq!(drain(lifo), [2, 3, 1]);
        assert_eq!(drain(priority), [10, 11, 20, 21, 50, 51, 52]);
        for queue in [fifo, lifo, priority] {
            // SAFETY: live queues, no waiters.
            assert_eq!(unsafe { spindle_queue_free(queue.get()) }, 0);
        }
    }

    #[test]
    fn nowait_calls_report_full_empty_and_shut_down() {
        let queue = new_queue(SPINDLE_QUEUE_FIFO, 1);
        let mut got = ptr::null_mut();
        // SAFETY: a live queue; a valid out-pointer.
        unsafe {
            assert_eq!(
                spindle_queue_get_nowait(queue.get(), &mut got),
                SPINDLE_EEMPTY
            );
            assert_eq!(spindle_queue_put_nowait(queue.get(), item(7)), 0);
            assert_eq!(
                spindle_queue_put_nowait(queue.get(), item(8)),
                SPINDLE_EFULL
            );
            assert_eq!(
                spindle_queue_get_nowait(queue.get(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_queue_task_done(queue.get()), 0);
            assert_eq!(spindle_queue_task_done(queue.get()), SPINDLE_ESTATE);
            assert_eq!(spindle_queue_shutdown(queue.get(), 0), 0);
            assert_eq!(
                spindle_queue_put_nowait(queue.get(), item(9)),
                SPINDLE_ESHUTDOWN
            );
            // The item left still comes out, then the queue is shut.
            assert_eq!(spindle_queue_get_nowait(queue.get(), &mut got), 0);
            assert_eq!(got as usize, 7);
            assert_eq!(
                spindle_queue_get_nowait(queue.get(), &mut got),
                SPINDLE_ESHUTDOWN
            );
            assert_eq!(spindle_queue_free(queue.get()), 0);
            let mut out = ptr::null_mut();
            assert_eq!(spindle_queue_new(3, 0, &mut out), SPINDLE_EINVAL);
            assert_eq!(spindle_queue_new(-1, 0, &mut out), SPINDLE_EINVAL);
            assert_eq!(
                spindle_queue_new(SPINDLE_QUEUE_FIFO, 0, ptr::null_mut()),
                SPINDLE_EINVAL
            );
        }
    }

    #[test]
    fn null_handles_and_calls_outside_a_task() {
        let mut got = ptr::null_mut();
        let mut size = 0;
        // SAFETY: NULL handles are refused before any use.
        unsafe {
            assert_eq!(spindle_queue_put(ptr::null_mut(), item(1)), SPINDLE_EINVAL);
            assert_eq!(
                spindle_queue_put_priority(ptr::null_mut(), 0, item(1)),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_queue_put_nowait(ptr::null_mut(), item(1)),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_queue_put_priority_nowait(ptr::null_mut(), 0, item(1)),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_queue_get(ptr::null_mut(), &mut got), SPINDLE_EINVAL);
            assert_eq!(
                spindle_queue_get_nowait(ptr::null_mut(), &mut got),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_queue_task_done(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_queue_join(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_queue_size(ptr::null(), &mut size), SPINDLE_EINVAL);
            assert_eq!(
                spindle_queue_maxsize(ptr::null(), &mut size),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_queue_shutdown(ptr::null_mut(), 0), SPINDLE_EINVAL);
            assert_eq!(spindle_queue_free(ptr::null_mut()), SPINDLE_EINVAL);
        }
        let queue = new_queue(SPINDLE_QUEUE_PRIORITY, 0);
        // SAFETY: a live queue; valid out-pointers.
        unsafe {
            assert_eq!(
                spindle_queue_size(queue.get(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_queue_get(queue.get(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            // Blocking calls need a task, even when they would not wait.
            assert_eq!(spindle_queue_put(queue.get(), item(1)), SPINDLE_ENOTASK);
            assert_eq!(
                spindle_queue_put_priority(queue.get(), 1, item(1)),
                SPINDLE_ENOTASK
            );
            assert_eq!(spindle_queue_join(queue.get()), SPINDLE_ENOTASK);
            assert_eq!(spindle_queue_put_nowait(queue.get(), item(1)), 0);
            assert_eq!(spindle_queue_get(queue.get(), &mut got), SPINDLE_ENOTASK);
            assert_eq!(spindle_queue_size(queue.get(), &mut size), 0);
            assert_eq!(size, 1);
            assert_eq!(spindle_queue_free(queue.get()), 0);
        }
    }

    #[test]
    fn a_queue_with_waiters_is_busy_until_an_immediate_shutdown_releases_them() {
        let (code, _) = run_c(|| {
            let queue = new_queue(SPINDLE_QUEUE_LIFO, 1);
            let getter = spawn_c(move || {
                let mut got = ptr::null_mut();
                // SAFETY: the queue outlives the task.
                Err(unsafe { spindle_queue_get(queue.get(), &mut got) })
            });
            assert_eq!(spindle_sleep(0.01), 0);
            // SAFETY: a live queue.
            unsafe {
                assert_eq!(spindle_queue_free(queue.get()), SPINDLE_EBUSY);
                assert_eq!(spindle_queue_shutdown(queue.get(), 1), 0);
            }
            assert_eq!(join(getter).0, SPINDLE_ESHUTDOWN);
            // SAFETY: a live queue, no waiter now.
            assert_eq!(unsafe { spindle_queue_free(queue.get()) }, 0);
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn a_cancelled_put_inserts_nothing_and_a_cancelled_get_takes_nothing() {
        let (code, _) = run_c(|| {
            let queue = new_queue(SPINDLE_QUEUE_FIFO, 1);
            // SAFETY: a live queue.
            assert_eq!(unsafe { spindle_queue_put(queue.get(), item(1)) }, 0);
            // SAFETY: the queue outlives the task.
            let putter = spawn_c(move || Err(unsafe { spindle_queue_put(queue.get(), item(2)) }));
            assert_eq!(spindle_sleep(0.01), 0);
            // SAFETY: a live task.
            unsafe { spindle_task_cancel(putter.get(), ptr::null(), ptr::null_mut()) };
            assert_eq!(join(putter).0, SPINDLE_ECANCELED);
            assert_eq!(drain(queue), [1]);
            let getter = spawn_c(move || {
                let mut got = ptr::null_mut();
                // SAFETY: the queue outlives the task.
                Err(unsafe { spindle_queue_get(queue.get(), &mut got) })
            });
            assert_eq!(spindle_sleep(0.01), 0);
            // SAFETY: a live task.
            unsafe { spindle_task_cancel(getter.get(), ptr::null(), ptr::null_mut()) };
            assert_eq!(join(getter).0, SPINDLE_ECANCELED);
            // SAFETY: a live queue.
            unsafe {
                assert_eq!(spindle_queue_put_nowait(queue.get(), item(3)), 0);
            }
            assert_eq!(drain(queue), [3]);
            // SAFETY: a live queue, no waiter.
            assert_eq!(unsafe { spindle_queue_free(queue.get()) }, 0);
            Ok(0)
        });
        assert_eq!(code, 0);
    }
}
