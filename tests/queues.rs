//! Spec section L: queues (`/work/shared/spec/asyncio-semantics.md`, cases
//! 93 and 95-97), cancellation that loses no item (R3), first-come
//! first-served waiters (R4), the seed producer-consumer scenario, and a
//! seeded cancellation storm.
//!
//! Tests that check an order run on one worker, where the ready queue is one
//! FIFO as in asyncio; the others run on several workers.

mod common;
use common::storm::{chaos, storm_seed, Ended, Rng};
use common::{rt, within_limit};

use spindle::queue::{LifoQueue, PriorityQueue, Queue, QueueError};
use spindle::{ErrorKind, Task};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Yields `n` times.
async fn yields(n: usize) -> spindle::Result<()> {
    for _ in 0..n {
        spindle::yield_now().await?;
    }
    Ok(())
}

/// Yields until `condition` holds.
async fn until(mut condition: impl FnMut() -> bool) -> spindle::Result<()> {
    for _ in 0..100_000 {
        if condition() {
            return Ok(());
        }
        spindle::yield_now().await?;
    }
    panic!("condition never became true");
}

/// Polls `future` once and drops it (as a `select!` would).
struct PollOnce<F>(Option<F>);

impl<F: Future + Unpin> Future for PollOnce<F> {
    type Output = bool;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut future = self.0.take().expect("polled once");
        Poll::Ready(Pin::new(&mut future).poll(cx).is_ready())
    }
}

fn queue_error(err: &spindle::Error) -> Option<QueueError> {
    err.downcast_ref::<QueueError>().copied()
}

/// The three queue kinds behind one interface, to run a test on each.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = spindle::Result<T>> + Send + 'a>>;

trait AnyQueue<T>: Send + Sync + 'static {
    fn put(&self, item: T) -> BoxFuture<'_, ()>;
    fn put_nowait(&self, item: T) -> spindle::Result<()>;
    fn get(&self) -> BoxFuture<'_, T>;
    fn get_nowait(&self) -> spindle::Result<T>;
    fn task_done(&self) -> spindle::Result<()>;
    fn join(&self) -> BoxFuture<'_, ()>;
    fn shutdown(&self, immediate: bool);
    fn qsize(&self) -> usize;
    fn debug(&self) -> String;
}

macro_rules! any_queue {
    ($kind:ident $(, $bound:path)?) => {
        impl<T: Send + 'static $(+ $bound)?> AnyQueue<T> for $kind<T> {
            fn put(&self, item: T) -> BoxFuture<'_, ()> {
                Box::pin($kind::put(self, item))
            }
            fn put_nowait(&self, item: T) -> spindle::Result<()> {
                $kind::put_nowait(self, item)
            }
            fn get(&self) -> BoxFuture<'_, T> {
                Box::pin($kind::get(self))
            }
            fn get_nowait(&self) -> spindle::Result<T> {
                $kind::get_nowait(self)
            }
            fn task_done(&self) -> spindle::Result<()> {
                $kind::task_done(self)
            }
            fn join(&self) -> BoxFuture<'_, ()> {
                Box::pin($kind::join(self))
            }
            fn shutdown(&self, immediate: bool) {
                $kind::shutdown(self, immediate)
            }
            fn qsize(&self) -> usize {
                $kind::qsize(self)
            }
            fn debug(&self) -> String {
                format!("{self:?}")
            }
        }
    };
}

any_queue!(Queue);
any_queue!(LifoQueue);
any_queue!(PriorityQueue, Ord);

/// One queue of each kind with `maxsize`.
fn each_kind<T: Ord + Send + 'static>(maxsize: usize) -> Vec<(&'static str, Arc<dyn AnyQueue<T>>)> {
    vec![
        (
            "Queue",
            Arc::new(Queue::new(maxsize)) as Arc<dyn AnyQueue<T>>,
        ),
        ("LifoQueue", Arc::new(LifoQueue::new(maxsize))),
        ("PriorityQueue", Arc::new(PriorityQueue::new(maxsize))),
    ]
}

#[test]
fn queues_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Queue<String>>();
    check::<LifoQueue<String>>();
    check::<PriorityQueue<String>>();
    check::<spindle::queue::Get<'static, String>>();
    check::<spindle::queue::Put<'static, String>>();
    check::<spindle::queue::Join<'static, String>>();
}

// -- case 93 ------------------------------------------------------------------

/// Queue(maxsize=2): the third put blocks until a get. (QU::test_maxsize)
#[test]
fn case_93_third_put_blocks_until_a_get() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let q = Arc::new(Queue::new(2));
                let have_been_put = Arc::new(Mutex::new(Vec::new()));
                let (q2, put) = (q.clone(), have_been_put.clone());
                let putter = spindle::spawn(async move {
                    for i in 0..3 {
                        q2.put(i).await?;
                        put.lock().unwrap().push(i);
                    }
                    spindle::Ok(true)
                });
                yields(2).await?;
                assert_eq!(*have_been_put.lock().unwrap(), [0, 1], "blocked after two");
                assert!(q.full());
                assert_eq!(q.get().await?, 0);
                spindle::yield_now().await?;
                assert_eq!(*have_been_put.lock().unwrap(), [0, 1, 2]);
                assert_eq!(q.get().await?, 1);
                assert_eq!(q.get().await?, 2);
                assert!(putter.await?);
                assert!(q.empty());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// put_nowait on a full queue -> QueueFull; get_nowait on an empty one ->
/// QueueEmpty; empty()/full()/qsize()/maxsize(). (QU::test_nonblocking_put_exception,
/// test_nonblocking_get_exception, test_empty, test_full)
#[test]
fn case_93_nowait_errors_and_sizes() {
    for (name, q) in each_kind::<u32>(1) {
        assert!(q.debug().starts_with(name), "{}", q.debug());
        assert_eq!(
            queue_error(&q.get_nowait().unwrap_err()),
            Some(QueueError::Empty)
        );
        q.put_nowait(1).unwrap();
        assert_eq!(q.qsize(), 1);
        let err = q.put_nowait(2).unwrap_err();
        assert_eq!(queue_error(&err), Some(QueueError::Full), "{name}");
        assert_eq!(err.kind(), ErrorKind::Other);
        assert_eq!(err.to_string(), "queue is full");
        assert_eq!(q.get_nowait().unwrap(), 1);
        assert_eq!(q.qsize(), 0);
    }
    let q = Queue::new(2);
    assert_eq!(q.maxsize(), 2);
    assert!(q.empty() && !q.full());
    q.put_nowait("a").unwrap();
    assert!(!q.empty() && !q.full());
    q.put_nowait("b").unwrap();
    assert!(q.full());
}

/// maxsize 0 is unbounded (asyncio: maxsize <= 0).
#[test]
fn case_93_maxsize_zero_is_unbounded() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                for (_, q) in each_kind::<u32>(0) {
                    for i in 0..1000 {
                        q.put_nowait(i)?;
                    }
                    q.put(1000).await?;
                    assert_eq!(q.qsize(), 1001);
                }
                let q = Queue::<u8>::default();
                assert_eq!(q.maxsize(), 0);
                assert!(!q.full());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// LIFO gives [2, 3, 1] for puts 1, 3, 2; priority gives [1, 2, 3].
/// (QU::LifoQueueTests::test_order, PriorityQueueTests::test_order, QueueBasicTests::test_order)
#[test]
fn case_93_lifo_and_priority_order() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let expected = [
                    ("Queue", [1, 3, 2]),
                    ("LifoQueue", [2, 3, 1]),
                    ("PriorityQueue", [1, 2, 3]),
                ];
                for ((name, q), (kind, order)) in each_kind::<u32>(0).into_iter().zip(expected) {
                    assert_eq!(name, kind);
                    for item in [1, 3, 2] {
                        q.put(item).await?;
                    }
                    let mut got = Vec::new();
                    for _ in 0..3 {
                        got.push(q.get().await?);
                    }
                    assert_eq!(got, order, "{name}");
                }
                let q = PriorityQueue::new(0);
                for item in [(2, "b"), (3, "c"), (1, "a")] {
                    q.put_nowait(item)?;
                }
                assert_eq!(q.get_nowait()?, (1, "a"));
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 95 ------------------------------------------------------------------

/// join() waits until task_done() was called once per item.
/// (QU::_QueueJoinTestMixin::test_task_done)
#[test]
fn case_95_join_waits_for_every_task_done() {
    within_limit(|| {
        rt(3)
            .block_on(async {
                for (name, q) in each_kind::<u64>(0) {
                    for i in 0..100 {
                        q.put_nowait(i)?;
                    }
                    let total = Arc::new(AtomicU64::new(0));
                    let workers: Vec<Task<()>> = (0..2)
                        .map(|_| {
                            let (q, total) = (q.clone(), total.clone());
                            spindle::spawn(async move {
                                loop {
                                    let item = q.get().await?;
                                    spindle::yield_now().await?;
                                    total.fetch_add(item, Ordering::SeqCst);
                                    q.task_done()?;
                                }
                                #[allow(unreachable_code)]
                                spindle::Ok(())
                            })
                        })
                        .collect();
                    q.join().await?;
                    assert_eq!(
                        total.load(Ordering::SeqCst),
                        (0..100).sum::<u64>(),
                        "{name}"
                    );
                    for worker in workers {
                        worker.cancel();
                        assert!(worker.await.unwrap_err().is_cancelled());
                    }
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// An extra task_done is an error; join() on an untouched queue returns at
/// once; a pending join can be cancelled. (QU::test_task_done_underflow,
/// test_join_empty_queue)
#[test]
fn case_95_task_done_underflow_and_join_on_untouched_queue() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                for (name, q) in each_kind::<u32>(0) {
                    let err = q.task_done().unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::InvalidState, "{name}");
                    q.join().await?;
                    q.join().await?;

                    q.put_nowait(7)?;
                    let err = spindle::timeout(Duration::from_millis(10), q.join())
                        .await
                        .unwrap_err();
                    assert!(err.is_timeout());
                    assert_eq!(q.get_nowait()?, 7);
                    q.task_done()?;
                    q.join().await?;
                    assert!(q.task_done().is_err());
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 96 ------------------------------------------------------------------

/// shutdown() of an empty queue: a blocked get fails with QueueShutDown, as
/// do later puts and gets; join returns. (QU::test_shutdown_empty)
#[test]
fn case_96_shutdown_empty() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                for (name, q) in each_kind::<&'static str>(0) {
                    let q2 = q.clone();
                    let get_task = spindle::spawn(async move { q2.get().await });
                    spindle::yield_now().await?;
                    q.shutdown(false);
                    assert_eq!(q.qsize(), 0);
                    q.join().await?;
                    spindle::yield_now().await?;
                    assert!(get_task.done(), "{name}");
                    let err = get_task.await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown), "{name}");
                    assert_eq!(err.to_string(), "queue is shut down");

                    let shut = |r: spindle::Result<()>| queue_error(&r.unwrap_err());
                    assert_eq!(shut(q.put("data").await), Some(QueueError::ShutDown));
                    assert_eq!(shut(q.put_nowait("data")), Some(QueueError::ShutDown));
                    let err = q.get().await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    let err = q.get_nowait().unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    assert!(q.debug().contains("shutdown: true"));
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// shutdown() of a full queue: the blocked put fails with QueueShutDown; gets
/// drain the remaining item first, then fail; join waits for its task_done.
/// (QU::test_shutdown_nonempty)
#[test]
fn case_96_shutdown_nonempty() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                for (name, q) in each_kind::<&'static str>(1) {
                    q.put_nowait("data")?;
                    let (q1, q2) = (q.clone(), q.clone());
                    let join_task = spindle::spawn(async move { q1.join().await });
                    let put_task = spindle::spawn(async move { q2.put("data2").await });
                    spindle::yield_now().await?;
                    assert!(!put_task.done());

                    q.shutdown(false);
                    assert_eq!(q.qsize(), 1);
                    spindle::yield_now().await?;
                    assert!(put_task.done(), "{name}");
                    let err = put_task.await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));

                    assert_eq!(q.get().await?, "data", "gets drain what is left");
                    spindle::yield_now().await?;
                    assert!(!join_task.done());

                    let err = q.put("data").await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    let err = q.put_nowait("data").unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    let err = q.get().await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    let err = q.get_nowait().unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));

                    q.task_done()?;
                    spindle::yield_now().await?;
                    assert!(join_task.done());
                    join_task.await?;
                    assert!(q.task_done().is_err());
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Getters blocked on an empty queue drain the items left when it shuts down
/// before failing; blocked putters fail and insert nothing.
#[test]
fn case_96_shutdown_wakes_every_blocked_getter_and_putter() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let q = Arc::new(Queue::new(1));
                let getters: Vec<Task<u32>> = (0..3)
                    .map(|_| {
                        let q = q.clone();
                        spindle::spawn(async move { q.get().await })
                    })
                    .collect();
                until(|| q.qsize() == 0 && format!("{q:?}").contains("getters: 3")).await?;
                q.shutdown(false);
                for getter in getters {
                    let err = getter.await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                }

                let q = Arc::new(Queue::new(1));
                q.put_nowait(0)?;
                let putters: Vec<Task<()>> = (1..=3)
                    .map(|i| {
                        let q = q.clone();
                        spindle::spawn(async move { q.put(i).await })
                    })
                    .collect();
                until(|| format!("{q:?}").contains("putters: 3")).await?;
                q.shutdown(false);
                for putter in putters {
                    let err = putter.await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                }
                assert_eq!(q.get_nowait()?, 0);
                assert_eq!(
                    queue_error(&q.get_nowait().unwrap_err()),
                    Some(QueueError::ShutDown)
                );
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 97 ------------------------------------------------------------------

/// shutdown(immediate): queued items are dropped and counted as done (join
/// returns); get fails at once. (QU::test_shutdown_immediate)
#[test]
fn case_97_shutdown_immediate() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                for (name, q) in each_kind::<&'static str>(0) {
                    q.put_nowait("data")?;
                    let q1 = q.clone();
                    let join_task = spindle::spawn(async move { q1.join().await });
                    q.shutdown(true);
                    assert_eq!(q.qsize(), 0);
                    spindle::yield_now().await?;
                    assert!(join_task.done(), "{name}");
                    join_task.await?;

                    let err = q.put("data").await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    let err = q.put_nowait("data").unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    let err = q.get().await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    let err = q.get_nowait().unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    assert!(q.task_done().is_err(), "no unfinished item is left");
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// shutdown(immediate) with an item already taken: only the dropped items
/// count as done; join still waits for the taken one.
/// (QU::test_shutdown_immediate_with_unfinished)
#[test]
fn case_97_shutdown_immediate_with_unfinished() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                for (name, q) in each_kind::<&'static str>(0) {
                    q.put_nowait("data")?;
                    q.put_nowait("data")?;
                    let q1 = q.clone();
                    let join_task = spindle::spawn(async move { q1.join().await });
                    assert_eq!(q.get().await?, "data");
                    q.shutdown(true);
                    assert_eq!(q.qsize(), 0);
                    spindle::yield_now().await?;
                    assert!(!join_task.done(), "{name}");

                    let err = q.get().await.unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                    let err = q.put_nowait("data").unwrap_err();
                    assert_eq!(queue_error(&err), Some(QueueError::ShutDown));

                    q.task_done()?;
                    assert!(q.task_done().is_err());
                    spindle::yield_now().await?;
                    assert!(join_task.done());
                    join_task.await?;
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// shutdown(immediate) drops the queued items (outside the queue's lock).
#[test]
fn case_97_shutdown_immediate_drops_items() {
    let item = Arc::new(());
    let q = Queue::new(0);
    for _ in 0..3 {
        q.put_nowait(item.clone()).unwrap();
    }
    assert_eq!(Arc::strong_count(&item), 4);
    q.shutdown(true);
    assert_eq!(Arc::strong_count(&item), 1);
    // A failed put drops its item too.
    assert!(q.put_nowait(item.clone()).is_err());
    assert_eq!(Arc::strong_count(&item), 1);
}

// -- cancellation loses nothing (R3) -------------------------------------------

/// A getter woken by a put and cancelled before it runs takes no item: a new
/// get gets the first item, not the second. (QU::test_get_cancel_drop_one_pending_reader)
#[test]
fn cancelled_get_loses_no_item_one_reader() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                for (name, q) in each_kind::<u32>(0) {
                    let q1 = q.clone();
                    let reader = spindle::spawn(async move { q1.get().await });
                    spindle::yield_now().await?;
                    q.put_nowait(1)?;
                    q.put_nowait(2)?;
                    reader.cancel();
                    let result = match reader.await {
                        Ok(item) => item,
                        Err(err) => {
                            assert!(err.is_cancelled());
                            q.get().await?
                        }
                    };
                    let first = if name == "LifoQueue" { 2 } else { 1 };
                    assert_eq!(result, first, "{name}: an item was dropped");
                    assert_eq!(q.qsize(), 1);
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Several readers, one cancelled after being woken: the other two still get
/// both items. (QU::test_get_cancel_drop_many_pending_readers)
#[test]
fn cancelled_get_loses_no_item_many_readers() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let q = Arc::new(Queue::new(0));
                let readers: Vec<Task<u32>> = (0..3)
                    .map(|_| {
                        let q = q.clone();
                        spindle::spawn(async move { q.get().await })
                    })
                    .collect();
                spindle::yield_now().await?;
                q.put_nowait(1)?;
                q.put_nowait(2)?;
                readers[0].cancel();
                assert!(readers[0].clone().await.unwrap_err().is_cancelled());
                let mut got = vec![readers[1].clone().await?, readers[2].clone().await?];
                got.sort();
                assert_eq!(got, [1, 2]);
                assert!(q.empty());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A cancelled getter leaves the getters: the next put goes to the other one.
/// (QU::test_get_cancelled_race, test_cancelled_getters_not_being_held_in_self_getters)
#[test]
fn cancelled_get_leaves_the_getters() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let q = Arc::new(Queue::new(0));
                let (q1, q2) = (q.clone(), q.clone());
                let t1 = spindle::spawn(async move { q1.get().await });
                let t2 = spindle::spawn(async move { q2.get().await });
                spindle::yield_now().await?;
                t1.cancel();
                spindle::yield_now().await?;
                assert!(t1.done());
                q.put("a").await?;
                spindle::yield_now().await?;
                assert_eq!(t2.await?, "a");

                let q = Queue::<u32>::new(5);
                let err = spindle::wait_for(Some(Duration::from_millis(10)), q.get())
                    .await
                    .unwrap_err();
                assert!(err.is_timeout());
                assert!(format!("{q:?}").contains("getters: 0"), "{q:?}");
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A putter woken by a get and cancelled before it runs inserts nothing; a
/// new put then succeeds. (QU::test_put_cancel_drop, test_cancelled_put_silence_value_error_exception)
#[test]
fn cancelled_put_inserts_nothing() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                for (name, q) in each_kind::<u32>(1) {
                    q.put_nowait(1)?;
                    let q1 = q.clone();
                    let writer = spindle::spawn(async move { q1.put(2).await });
                    spindle::yield_now().await?;
                    assert_eq!(q.get_nowait()?, 1); // wakes the writer...
                    writer.cancel(); // ...which is cancelled before it runs
                    match writer.await {
                        Ok(()) => panic!("{name}: the cancel must win"),
                        Err(err) => assert!(err.is_cancelled()),
                    }
                    assert_eq!(q.qsize(), 0, "{name}: the cancelled put inserted nothing");
                    q.put(2).await?;
                    assert_eq!(q.get_nowait()?, 2);
                    assert_eq!(q.qsize(), 0);
                    // One item was put and got twice, none marked done yet.
                    q.task_done()?;
                    q.task_done()?;
                    assert!(
                        q.task_done().is_err(),
                        "{name}: the cancelled put was not counted"
                    );
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A cancelled putter leaves the putters; the put after it proceeds.
/// (QU::test_put_cancelled_race, test_cancelled_puts_not_being_held_in_self_putters)
#[test]
fn cancelled_put_leaves_the_putters() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let q = Arc::new(Queue::new(1));
                let put = |item: &'static str| {
                    let q = q.clone();
                    spindle::spawn(async move { q.put(item).await })
                };
                let put_a = put("a");
                let put_b = put("b");
                let put_c = put("X");
                spindle::yield_now().await?;
                assert!(put_a.done());
                assert!(!put_b.done());
                assert!(format!("{q:?}").contains("putters: 2"), "{q:?}");
                put_c.cancel();
                spindle::yield_now().await?;
                assert!(put_c.done());
                assert!(format!("{q:?}").contains("putters: 1"), "{q:?}");
                assert_eq!(q.get_nowait()?, "a");
                spindle::yield_now().await?;
                assert_eq!(q.get_nowait()?, "b");
                put_b.await?;
                assert!(put_c.await.unwrap_err().is_cancelled());
                assert!(q.empty());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A getter that was woken and is then cancelled passes its wake-up to the
/// next getter; a putter likewise passes on the free slot.
#[test]
fn woken_then_cancelled_waiters_hand_on() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let q = Arc::new(Queue::new(1));
                let getter = || {
                    let q = q.clone();
                    spindle::spawn(async move { q.get().await })
                };
                let (g1, g2) = (getter(), getter());
                spindle::yield_now().await?;
                q.put_nowait(1)?; // wakes g1
                g1.cancel();
                assert!(g1.await.unwrap_err().is_cancelled());
                assert_eq!(g2.await?, 1, "g2 got the item g1 was woken for");

                q.put_nowait(10)?;
                let putter = |item| {
                    let q = q.clone();
                    spindle::spawn(async move { q.put(item).await })
                };
                let (p1, p2) = (putter(11), putter(12));
                spindle::yield_now().await?;
                assert_eq!(q.get_nowait()?, 10); // wakes p1
                p1.cancel();
                assert!(p1.await.unwrap_err().is_cancelled());
                p2.await?;
                assert_eq!(q.get_nowait()?, 12, "p2 got the slot p1 was woken for");
                assert!(q.empty());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Dropping a pending get or put (as a `select!` would) loses nothing, also
/// when it had been woken.
#[test]
fn dropped_get_and_put_lose_nothing() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let q = Arc::new(Queue::new(1));
                let q1 = q.clone();
                let mut get = q.get();
                assert!(!PollOnce(Some(&mut get)).await);
                let other = spindle::spawn(async move { q1.get().await });
                until(|| format!("{q:?}").contains("getters: 2")).await?;
                q.put_nowait(5)?; // wakes the pending get
                drop(get); // which hands the wake-up on
                assert_eq!(other.await?, 5);

                q.put_nowait(1)?;
                let mut put = q.put(2);
                assert!(!PollOnce(Some(&mut put)).await);
                drop(put);
                assert!(format!("{q:?}").contains("putters: 0"));
                assert_eq!(q.get_nowait()?, 1);
                assert!(q.empty(), "the dropped put inserted nothing");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- first come, first served (R4) -----------------------------------------------

/// Waiting getters are served in the order they came.
/// (QU::test_put_with_waiting_getters)
#[test]
fn waiting_getters_are_served_in_order() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let q = Arc::new(Queue::new(0));
                let log = Arc::new(Mutex::new(Vec::new()));
                let getters: Vec<Task<()>> = ["g1", "g2", "g3"]
                    .into_iter()
                    .map(|name| {
                        let (q, log) = (q.clone(), log.clone());
                        spindle::spawn(async move {
                            let item = q.get().await?;
                            log.lock().unwrap().push(format!("{name}={item}"));
                            spindle::Ok(())
                        })
                    })
                    .collect();
                spindle::yield_now().await?;
                for item in 1..=3 {
                    q.put(item).await?;
                }
                for getter in getters {
                    getter.await?;
                }
                assert_eq!(*log.lock().unwrap(), ["g1=1", "g2=2", "g3=3"]);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Waiting putters are served in the order they came.
/// (QU::test_get_with_waiting_putters, test_why_are_putters_waiting)
#[test]
fn waiting_putters_are_served_in_order() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let q = Arc::new(Queue::new(1));
                q.put_nowait("x")?;
                let putters: Vec<Task<()>> = ["a", "b", "c"]
                    .into_iter()
                    .map(|item| {
                        let q = q.clone();
                        spindle::spawn(async move { q.put(item).await })
                    })
                    .collect();
                spindle::yield_now().await?;
                let mut got = Vec::new();
                for _ in 0..4 {
                    got.push(q.get().await?);
                }
                assert_eq!(got, ["x", "a", "b", "c"]);
                for putter in putters {
                    putter.await?;
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- seed scenario: producer-consumer ---------------------------------------------

/// The seed's producer-consumer: a bounded queue, a producer putting items
/// with a pause, a consumer processing them and calling task_done; main
/// waits for the producer, joins the queue, then cancels the consumer that
/// loops forever.
#[test]
fn seed_producer_consumer_with_join_then_cancel_consumers() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let queue = Arc::new(Queue::new(5));
                let processed = Arc::new(Mutex::new(Vec::new()));
                let producer = |name: &'static str, count: usize| {
                    let queue = queue.clone();
                    spindle::spawn(async move {
                        for i in 0..count {
                            queue.put(format!("{name}-item-{i}")).await?;
                            spindle::sleep(Duration::from_millis(10)).await?;
                        }
                        spindle::Ok(())
                    })
                };
                let consumer = |name: &'static str| {
                    let (queue, processed) = (queue.clone(), processed.clone());
                    spindle::spawn(async move {
                        loop {
                            let item = queue.get().await?;
                            processed
                                .lock()
                                .unwrap()
                                .push(format!("{name} processed: {item}"));
                            spindle::sleep(Duration::from_millis(5)).await?;
                            queue.task_done()?;
                        }
                        #[allow(unreachable_code)]
                        spindle::Ok(())
                    })
                };
                let start = Instant::now();
                let producers = vec![producer("P1", 5)];
                let consumers = vec![consumer("C1")];
                spindle::gather(producers).await?;
                queue.join().await?;
                let elapsed = start.elapsed();
                for c in &consumers {
                    c.cancel();
                }
                for c in consumers {
                    assert!(c.clone().await.unwrap_err().is_cancelled());
                    assert!(c.cancelled());
                }
                let processed = processed.lock().unwrap().clone();
                let expected: Vec<_> = (0..5)
                    .map(|i| format!("C1 processed: P1-item-{i}"))
                    .collect();
                assert_eq!(processed, expected);
                assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
                assert!(queue.empty());
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- cancellation storm -------------------------------------------------------------

#[derive(Default)]
struct Record {
    put: Mutex<Vec<u64>>,
    got: Mutex<Vec<u64>>,
}

/// The (qsize, waiting getters, waiting putters) of a queue, from its Debug.
fn counts(debug: &str) -> (usize, usize, usize) {
    let field = |name: &str| -> usize {
        let start = debug.find(&format!("{name}: ")).expect(name) + name.len() + 2;
        let rest = &debug[start..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().expect(name)
    };
    (field("qsize"), field("getters"), field("putters"))
}

/// One storm task: a producer putting unique items or a consumer getting
/// them, a few times, some under a random timeout. A timeout moves on; a
/// shut-down queue or a cancellation ends the task.
async fn storm_task(
    q: Arc<dyn AnyQueue<u64>>,
    record: Arc<Record>,
    id: u64,
    seed: u64,
    _ended: Ended,
) -> spindle::Result<()> {
    let mut rng = Rng(seed);
    let producer = rng.below(2) == 0;
    for k in 0..5 {
        let limit = Duration::from_micros(200 + rng.below(3000));
        let timed = rng.below(2) == 0;
        let outcome = if producer {
            let item = id * 100 + k;
            let put = q.put(item);
            let result = if timed {
                spindle::timeout(limit, put).await
            } else {
                put.await
            };
            result.map(|()| record.put.lock().unwrap().push(item))
        } else {
            let get = q.get();
            let result = if timed {
                spindle::timeout(limit, get).await
            } else {
                get.await
            };
            result.and_then(|item| {
                record.got.lock().unwrap().push(item);
                q.task_done()
            })
        };
        match outcome {
            Ok(()) => {}
            Err(err) if err.is_timeout() => {}
            Err(err) if queue_error(&err) == Some(QueueError::ShutDown) => return Ok(()),
            Err(err) => return Err(err),
        }
        if rng.below(3) == 0 {
            spindle::yield_now().await?;
        }
    }
    Ok(())
}

/// A few hundred producers and consumers on several workers, under random
/// cancels, aborts and timeouts, for each queue kind; then a shutdown lets
/// the consumers drain. Every item put was got exactly once or is still
/// queued, no failed put inserted anything, the task_done count matches,
/// no waiter is left behind, and every task ended exactly once.
#[test]
fn storm_cancellation_loses_no_item() {
    let seed = storm_seed(0x5eed_0002);
    within_limit(move || {
        let rt = rt(3);
        const TASKS: usize = 300;
        for (name, q) in each_kind::<u64>(4) {
            let record = Arc::new(Record::default());
            let ended = Arc::new(AtomicUsize::new(0));
            let (q2, rec, en) = (q.clone(), record.clone(), ended.clone());
            rt.block_on(async move {
                let mut rng = Rng(seed);
                let live = Arc::new(Mutex::new(Vec::new()));
                let stop = Arc::new(AtomicBool::new(false));
                let chaos = chaos(live.clone(), stop.clone(), rng.next());
                let mut tasks: Vec<Task<()>> = Vec::with_capacity(TASKS);
                for id in 0..TASKS as u64 {
                    tasks.push(spindle::spawn(storm_task(
                        q2.clone(),
                        rec.clone(),
                        id,
                        rng.next(),
                        // Moved into the future: counted even if the task is
                        // cancelled or aborted before its first step.
                        Ended(en.clone()),
                    )));
                    live.lock()
                        .unwrap()
                        .push(tasks[tasks.len() - 1].as_any().clone());
                    // Mostly hit recent tasks: they are likely still waiting.
                    let recent = tasks.len() - 1 - rng.below(tasks.len().min(16) as u64) as usize;
                    match rng.below(16) {
                        0..=3 => {
                            tasks[recent].cancel();
                        }
                        4 => {
                            tasks[recent].abort();
                        }
                        5..=6 => spindle::yield_now().await?,
                        7 => spindle::sleep(Duration::from_micros(rng.below(1000))).await?,
                        _ => {}
                    }
                }
                for _ in 0..TASKS / 4 {
                    tasks[rng.below(TASKS as u64) as usize].cancel();
                    if rng.below(2) == 0 {
                        spindle::yield_now().await?;
                    }
                }
                spindle::sleep(Duration::from_millis(5)).await?;
                stop.store(true, Ordering::SeqCst);
                let hits = chaos.await?;
                assert!(hits > 0);
                // Once the storm settles, no wake-up may have been lost: no
                // getter waits while items are queued, no putter while there
                // is room. (Both hold only once woken waiters have run, so
                // allow time; a lost wake-up never resolves.)
                let mut settled = false;
                for _ in 0..400 {
                    let (qsize, getters, putters) = counts(&q2.debug());
                    if (getters == 0 || qsize == 0) && (putters == 0 || qsize == 4) {
                        settled = true;
                        break;
                    }
                    spindle::sleep(Duration::from_millis(5)).await?;
                }
                assert!(settled, "seed {seed} {name}: lost wake-up: {}", q2.debug());
                q2.shutdown(false);
                for task in &tasks {
                    if let Err(err) = task.clone().await {
                        assert!(err.is_cancelled(), "seed {seed} {name}: {err:?}");
                    }
                }
                assert!(tasks.iter().all(|t| t.done()));
                spindle::Ok(())
            })
            .unwrap();
            assert_eq!(
                ended.load(Ordering::SeqCst),
                TASKS,
                "seed {seed} {name}: every task ended once"
            );

            // The rest is still queued.
            let mut remaining = Vec::new();
            loop {
                match q.get_nowait() {
                    Ok(item) => {
                        remaining.push(item);
                        q.task_done().unwrap();
                    }
                    Err(err) => {
                        assert_eq!(queue_error(&err), Some(QueueError::ShutDown));
                        break;
                    }
                }
            }
            let mut put = record.put.lock().unwrap().clone();
            let mut got = record.got.lock().unwrap().clone();
            assert!(
                !got.is_empty() && !put.is_empty(),
                "seed {seed} {name}: nothing happened"
            );
            got.extend(remaining);
            put.sort();
            got.sort();
            let unique = put.windows(2).all(|w| w[0] != w[1]);
            assert!(unique, "seed {seed} {name}: an item was put twice");
            assert_eq!(
                got, put,
                "seed {seed} {name}: items lost, duplicated or invented"
            );
            assert!(
                q.task_done().is_err(),
                "seed {seed} {name}: task_done count"
            );
            let debug = q.debug();
            assert!(
                debug.contains("getters: 0") && debug.contains("putters: 0"),
                "{debug}"
            );
            assert!(debug.contains("unfinished: 0"), "{debug}");
            rt.block_on(async move { spindle::timeout(Duration::from_secs(5), q.join()).await })
                .unwrap();
        }
    });
}
