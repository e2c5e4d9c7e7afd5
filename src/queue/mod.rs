//! Queues for passing items between tasks, with asyncio's semantics:
//! [`Queue`] (first in, first out), [`LifoQueue`] (last in, first out) and
//! [`PriorityQueue`] (smallest first).
//!
//! All three have asyncio's `Queue` methods:
//!
//! - `new(maxsize)`: at most `maxsize` items; **0 means unbounded** (asyncio
//!   takes any `maxsize <= 0` as unbounded; a negative bound cannot be
//!   written as `usize`).
//! - `put(item).await` waits while the queue is full; `get().await` waits
//!   while it is empty. `put_nowait` fails with [`QueueError::Full`],
//!   `get_nowait` with [`QueueError::Empty`].
//! - `task_done()` marks one item as processed; `join().await` waits until
//!   every item put was marked done (at once if none is pending). Calling
//!   `task_done()` more often than items were put is an invalid-state error.
//! - `shutdown(immediate)`: later puts fail with [`QueueError::ShutDown`],
//!   and so do the puts waiting; gets return the remaining items, then fail
//!   with `ShutDown`. With `immediate`, the remaining items are dropped (and
//!   counted as done, which may release `join`), and gets fail at once.
//!
//! Errors reach the caller as a [`crate::Error`] wrapping a [`QueueError`]:
//! match it with `err.downcast_ref::<QueueError>()`.
//!
//! Waiting getters and putters are woken first come, first served. No
//! await point loses data: a cancelled `get` takes no item (an item stays
//! in the queue until a `get` returns it), a cancelled `put` inserts
//! nothing, and a getter (putter) that was woken and is then cancelled
//! passes its wake-up to the next getter (putter). As in asyncio, a woken
//! waiter takes an item (a free slot) when it runs; a `get_nowait` or a new
//! `get` made before it runs may take it first, and the woken waiter then
//! waits again.
//!
//! Queues are `Send + Sync` (for `T: Send`): share one through an `Arc`
//! between tasks on any worker. A bounded [`Queue`] keeps its items in a
//! lock-free ring allocated up front (up to 1 MiB of slots; larger bounds,
//! unbounded queues and the other kinds keep them behind a lock), so puts
//! and gets on different workers do not wait for each other.
//!
//! ```
//! use std::sync::Arc;
//! use spindle::queue::{Queue, QueueError};
//! spindle::run(async {
//!     let queue = Arc::new(Queue::new(2));
//!     let consumer = {
//!         let queue = queue.clone();
//!         spindle::spawn(async move {
//!             let mut sum = 0;
//!             loop {
//!                 match queue.get().await {
//!                     Ok(n) => { sum += n; queue.task_done()?; }
//!                     Err(e) if e.downcast_ref::<QueueError>() == Some(&QueueError::ShutDown) => {
//!                         return spindle::Ok(sum);
//!                     }
//!                     Err(e) => return Err(e),
//!                 }
//!             }
//!         })
//!     };
//!     for n in 1..=10 {
//!         queue.put(n).await?; // waits while 2 items are queued
//!     }
//!     queue.join().await?; // every item was processed
//!     queue.shutdown(false);
//!     assert_eq!(consumer.await?, 55);
//!     spindle::Ok(())
//! }).unwrap();
//! ```

mod inner;
mod ring;

pub use inner::{Get, Join, Put};

use crate::error::Result;
use inner::{Core, Items};
use std::collections::VecDeque;
use std::fmt;

/// Why a queue operation failed (asyncio's `QueueFull`, `QueueEmpty`,
/// `QueueShutDown`). It reaches the caller wrapped in a [`crate::Error`]:
///
/// ```
/// use spindle::queue::{Queue, QueueError};
/// let queue = Queue::new(1);
/// queue.put_nowait(1).unwrap();
/// let err = queue.put_nowait(2).unwrap_err();
/// assert_eq!(err.downcast_ref::<QueueError>(), Some(&QueueError::Full));
/// assert_eq!(queue.get_nowait().unwrap(), 1);
/// let err = queue.get_nowait().unwrap_err();
/// assert_eq!(err.downcast_ref::<QueueError>(), Some(&QueueError::Empty));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueError {
    /// `put_nowait` on a full queue.
    Full,
    /// `get_nowait` on an empty queue.
    Empty,
    /// A put on a queue that was shut down, or a get on one that was shut
    /// down and is empty (or was shut down immediately).
    ShutDown,
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueueError::Full => "queue is full",
            QueueError::Empty => "queue is empty",
            QueueError::ShutDown => "queue is shut down",
        })
    }
}

impl std::error::Error for QueueError {}

/// The methods shared by the three queues (asyncio's `Queue` API).
macro_rules! queue_methods {
    ($name:ident) => {
        impl<T> $name<T> {
            /// The most items the queue holds; 0 means unbounded.
            pub fn maxsize(&self) -> usize {
                self.core.maxsize()
            }

            /// The number of items in the queue.
            pub fn qsize(&self) -> usize {
                self.core.qsize()
            }

            /// Whether the queue holds no item.
            pub fn empty(&self) -> bool {
                self.core.qsize() == 0
            }

            /// Whether the queue holds `maxsize` items (never for an
            /// unbounded queue).
            pub fn full(&self) -> bool {
                self.core.full()
            }

            /// Puts an item, waiting while the queue is full. Fails with
            /// [`QueueError::ShutDown`] if the queue is (or gets) shut down.
            /// A cancellation point when it has to wait; a cancelled put
            /// inserts nothing.
            pub fn put(&self, item: T) -> Put<'_, T> {
                self.core.put(item)
            }

            /// Puts an item if there is room: [`QueueError::Full`] if not,
            /// [`QueueError::ShutDown`] after a shutdown. Wakes the first
            /// waiting getter.
            pub fn put_nowait(&self, item: T) -> Result<()> {
                self.core.put_nowait(item)
            }

            /// Takes an item, waiting while the queue is empty. After a
            /// shutdown it returns the remaining items, then fails with
            /// [`QueueError::ShutDown`]. A cancellation point when it has to
            /// wait; a cancelled get takes no item.
            pub fn get(&self) -> Get<'_, T> {
                self.core.get()
            }

            /// Takes an item if there is one: [`QueueError::Empty`] if not
            /// ([`QueueError::ShutDown`] if the queue was shut down). Wakes
            /// the first waiting putter.
            pub fn get_nowait(&self) -> Result<T> {
                self.core.get_nowait()
            }

            /// Marks one item taken from the queue as processed. An
            /// invalid-state error if called more often than items were put.
            pub fn task_done(&self) -> Result<()> {
                self.core.task_done()
            }

            /// Waits until every item put was marked done with
            /// [`task_done`](Self::task_done); returns at once if none is
            /// pending. A cancellation point when it has to wait.
            pub fn join(&self) -> Join<'_, T> {
                self.core.join()
            }

            /// Shuts the queue down: puts fail with [`QueueError::ShutDown`]
            /// (also those waiting); gets drain the remaining items, then
            /// fail. With `immediate`, the remaining items are dropped and
            /// counted as done, and gets fail at once.
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate)
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.core.fmt_as(stringify!($name), f)
            }
        }
    };
}

/// A first-in, first-out queue (asyncio's `Queue`). See the [module
/// documentation](self) for the semantics.
///
/// ```
/// use std::time::Duration;
/// spindle::run(async {
///     let queue = spindle::Queue::new(2);
///     queue.put(1).await?;
///     queue.put(2).await?;
///     assert!(queue.full());
///     // A third put waits for a get: here it times out.
///     let err = spindle::timeout(Duration::from_millis(10), queue.put(3)).await.unwrap_err();
///     assert!(err.is_timeout());
///     assert_eq!(queue.get().await?, 1);
///     assert_eq!(queue.get().await?, 2);
///     assert!(queue.empty());
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct Queue<T> {
    core: Core<T>,
}

impl<T> Queue<T> {
    /// A queue of at most `maxsize` items; 0 means unbounded.
    pub fn new(maxsize: usize) -> Queue<T> {
        Queue {
            core: Core::new(maxsize, Items::Fifo(VecDeque::new())),
        }
    }
}

impl<T> Default for Queue<T> {
    /// An unbounded queue.
    fn default() -> Self {
        Queue::new(0)
    }
}

queue_methods!(Queue);

/// A last-in, first-out queue (asyncio's `LifoQueue`): `get` returns the
/// item put most recently. Otherwise like [`Queue`].
///
/// ```
/// let queue = spindle::LifoQueue::new(0);
/// for n in [1, 3, 2] {
///     queue.put_nowait(n).unwrap();
/// }
/// let order: Vec<_> = (0..3).map(|_| queue.get_nowait().unwrap()).collect();
/// assert_eq!(order, [2, 3, 1]);
/// ```
pub struct LifoQueue<T> {
    core: Core<T>,
}

impl<T> LifoQueue<T> {
    /// A LIFO queue of at most `maxsize` items; 0 means unbounded.
    pub fn new(maxsize: usize) -> LifoQueue<T> {
        LifoQueue {
            core: Core::new(maxsize, Items::Lifo(Vec::new())),
        }
    }
}

impl<T> Default for LifoQueue<T> {
    /// An unbounded LIFO queue.
    fn default() -> Self {
        LifoQueue::new(0)
    }
}

queue_methods!(LifoQueue);

/// A priority queue (asyncio's `PriorityQueue`): `get` returns the
/// smallest item by [`Ord`] (use `(priority, data)` tuples, or
/// [`std::cmp::Reverse`] for largest first). Items that compare equal come
/// out in no particular order. The comparison runs under the queue's lock:
/// it must not use the queue. Otherwise like [`Queue`].
///
/// ```
/// let queue = spindle::PriorityQueue::new(0);
/// for item in [(3, "c"), (1, "a"), (2, "b")] {
///     queue.put_nowait(item).unwrap();
/// }
/// let order: Vec<_> = (0..3).map(|_| queue.get_nowait().unwrap().1).collect();
/// assert_eq!(order, ["a", "b", "c"]);
/// ```
pub struct PriorityQueue<T> {
    core: Core<T>,
}

impl<T: Ord> PriorityQueue<T> {
    /// A priority queue of at most `maxsize` items; 0 means unbounded.
    pub fn new(maxsize: usize) -> PriorityQueue<T> {
        PriorityQueue {
            core: Core::new(maxsize, Items::Priority(Vec::new(), T::cmp)),
        }
    }
}

impl<T: Ord> Default for PriorityQueue<T> {
    /// An unbounded priority queue.
    fn default() -> Self {
        PriorityQueue::new(0)
    }
}

queue_methods!(PriorityQueue);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn queues_are_send_and_sync() {
        assert_send_sync::<Queue<String>>();
        assert_send_sync::<LifoQueue<String>>();
        assert_send_sync::<PriorityQueue<String>>();
        assert_send_sync::<Get<'static, String>>();
        assert_send_sync::<Put<'static, String>>();
        assert_send_sync::<Join<'static, String>>();
    }

    #[test]
    fn priority_queue_is_a_min_heap() {
        let queue = PriorityQueue::new(0);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut expected = Vec::new();
        for _ in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = x % 100;
            expected.push(n);
            queue.put_nowait(n).unwrap();
        }
        expected.sort();
        let got: Vec<_> = (0..500).map(|_| queue.get_nowait().unwrap()).collect();
        assert_eq!(got, expected);
        assert!(queue.get_nowait().is_err());
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::model::{poll_once, WakeCounter};
    use crate::loom::thread;
    use std::sync::Arc;
    use std::task::Poll;

    /// A getter that is woken for an item and dropped (cancelled) at the
    /// same time passes the wake-up on: the next getter gets the item, and
    /// no item is lost or duplicated.
    #[test]
    fn a_woken_getter_dropped_while_the_item_arrives_hands_it_on() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(0));
            let (b_wakes, b_waker) = WakeCounter::new();
            let (c_wakes, c_waker) = WakeCounter::new();
            let mut b = queue.get();
            let mut c = queue.get();
            assert!(poll_once(&mut b, &b_waker).is_pending());
            assert!(poll_once(&mut c, &c_waker).is_pending());

            let putter = {
                let queue = queue.clone();
                thread::spawn(move || queue.put_nowait(7u32).unwrap())
            };
            drop(b);
            putter.join().unwrap();

            assert!(b_wakes.wakes() <= 1);
            assert_eq!(c_wakes.wakes(), 1, "the next getter was not woken");
            match poll_once(&mut c, &c_waker) {
                Poll::Ready(Ok(item)) => assert_eq!(item, 7),
                _ => panic!("the woken getter did not get the item"),
            }
            drop(c);
            assert_eq!(queue.qsize(), 0, "the item was duplicated");
        });
    }

    /// A putter that is woken for a free slot and dropped at the same time
    /// passes the slot on to the next putter; its own item is not inserted.
    #[test]
    fn a_woken_putter_dropped_while_a_slot_frees_hands_it_on() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(1));
            queue.put_nowait(1u32).unwrap();
            let (b_wakes, b_waker) = WakeCounter::new();
            let (c_wakes, c_waker) = WakeCounter::new();
            let mut b = queue.put(2);
            let mut c = queue.put(3);
            assert!(poll_once(&mut b, &b_waker).is_pending());
            assert!(poll_once(&mut c, &c_waker).is_pending());

            let getter = {
                let queue = queue.clone();
                thread::spawn(move || queue.get_nowait().unwrap())
            };
            drop(b);
            assert_eq!(getter.join().unwrap(), 1);

            assert!(b_wakes.wakes() <= 1);
            assert_eq!(c_wakes.wakes(), 1, "the next putter was not woken");
            assert!(matches!(poll_once(&mut c, &c_waker), Poll::Ready(Ok(()))));
            drop(c);
            assert_eq!(queue.get_nowait().unwrap(), 3);
            assert!(queue.empty());
        });
    }

    /// An item put while a getter polls is either taken by that poll or
    /// wakes the getter: with items behind the lock (unbounded) and in a
    /// ring (bounded).
    #[test]
    fn a_put_racing_with_a_get_is_never_lost() {
        put_racing_with_get(0);
        put_racing_with_get(4);
    }

    fn put_racing_with_get(maxsize: usize) {
        loom::model(move || {
            let queue = Arc::new(Queue::new(maxsize));
            let (wakes, waker) = WakeCounter::new();
            let mut get = queue.get();
            assert!(poll_once(&mut get, &waker).is_pending());
            let putter = {
                let queue = queue.clone();
                thread::spawn(move || queue.put_nowait(5u32).unwrap())
            };
            let first = poll_once(&mut get, &waker);
            putter.join().unwrap();
            let item = match first {
                Poll::Ready(item) => item.unwrap(),
                Poll::Pending => {
                    assert_eq!(wakes.wakes(), 1, "wakeup lost");
                    match poll_once(&mut get, &waker) {
                        Poll::Ready(item) => item.unwrap(),
                        Poll::Pending => panic!("woken without the item"),
                    }
                }
            };
            assert_eq!(item, 5);
            assert!(queue.empty());
        });
    }

    /// A get that frees a slot while a putter waits on a full ring queue
    /// either lets that poll put or wakes the putter.
    #[test]
    fn a_get_racing_with_a_full_put_is_never_lost() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(1));
            queue.put_nowait(1u32).unwrap();
            let (wakes, waker) = WakeCounter::new();
            let mut put = queue.put(2);
            assert!(poll_once(&mut put, &waker).is_pending());
            let getter = {
                let queue = queue.clone();
                thread::spawn(move || queue.get_nowait().unwrap())
            };
            let first = poll_once(&mut put, &waker);
            assert_eq!(getter.join().unwrap(), 1);
            if first.is_pending() {
                assert_eq!(wakes.wakes(), 1, "wakeup lost");
                assert!(matches!(poll_once(&mut put, &waker), Poll::Ready(Ok(()))));
            }
            assert_eq!(queue.get_nowait().unwrap(), 2);
        });
    }

    /// The last `task_done` racing a `join` on a ring queue: the join
    /// completes, at once or by a wake-up.
    #[test]
    fn a_task_done_racing_with_a_join_is_never_lost() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
            queue.put_nowait(1u32).unwrap();
            assert_eq!(queue.get_nowait().unwrap(), 1);
            let (wakes, waker) = WakeCounter::new();
            let mut join = queue.join();
            let done = {
                let queue = queue.clone();
                thread::spawn(move || queue.task_done().unwrap())
            };
            let first = poll_once(&mut join, &waker);
            done.join().unwrap();
            if first.is_pending() {
                assert_eq!(wakes.wakes(), 1, "wakeup lost");
                assert!(matches!(poll_once(&mut join, &waker), Poll::Ready(Ok(()))));
            }
        });
    }

    /// An immediate shutdown racing a put on a ring queue: the item is
    /// refused, or dropped by the shutdown and counted as done; a get
    /// afterwards fails either way.
    #[test]
    fn an_immediate_shutdown_racing_a_put_leaves_nothing_behind() {
        loom::model(|| {
            let queue = Arc::new(Queue::new(2));
            let item = std::sync::Arc::new(());
            let putter = {
                let (queue, item) = (queue.clone(), item.clone());
                thread::spawn(move || queue.put_nowait(item).is_ok())
            };
            queue.shutdown(true);
            let put = putter.join().unwrap();
            if put && queue.qsize() == 1 {
                // The put landed after the drain had finished: impossible,
                // the drain shut the ring first.
                panic!("an item put after an immediate shutdown");
            }
            assert!(queue.get_nowait().is_err());
            assert_eq!(std::sync::Arc::strong_count(&item), 1);
            assert!(matches!(
                poll_once(&mut queue.join(), &WakeCounter::new().1),
                Poll::Ready(Ok(()))
            ));
        });
    }
}
