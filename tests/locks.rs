//! Spec section K: Lock, Event, Condition, Semaphore, BoundedSemaphore and
//! Barrier (`/work/shared/spec/asyncio-semantics.md`, cases 84, 86, 87 and
//! 89-92), the bad inputs, and a seeded cancellation storm.
//!
//! Tests that check an order run on one worker, where the ready queue is one
//! FIFO as in asyncio; the others run on several workers.

mod common;
use common::storm::{chaos, storm_seed, Ended, Rng};
use common::{rt, within_limit, Log};

use spindle::sync::BrokenBarrierError;
use spindle::{Barrier, BoundedSemaphore, Condition, ErrorKind, Event, Lock, Semaphore, Task};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// A shared log of what the tasks did.
/// Yields `n` times.
async fn yields(n: usize) -> spindle::Result<()> {
    for _ in 0..n {
        spindle::yield_now().await?;
    }
    Ok(())
}

/// Yields until `condition` holds (at most a few thousand times).
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

fn is_broken(err: &spindle::Error) -> bool {
    err.downcast_ref::<BrokenBarrierError>().is_some()
}

#[test]
fn primitives_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Lock>();
    check::<Semaphore>();
    check::<BoundedSemaphore>();
    check::<Event>();
    check::<Condition>();
    check::<Barrier>();
    check::<spindle::sync::ConditionWait<'static>>();
    check::<spindle::sync::BarrierWait<'static>>();
}

// -- case 84: Lock --------------------------------------------------------------

/// First come, first served; each release wakes exactly one waiter.
/// (LK::LockTests::test_acquire)
#[test]
fn case_84_lock_fifo_each_release_wakes_exactly_one() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let lock = Arc::new(Lock::new());
                let log = Log::default();
                lock.acquire().await?.forget();
                let taker = |n: u32| {
                    let (lock, log) = (lock.clone(), log.clone());
                    spindle::spawn(async move {
                        lock.acquire().await?.forget();
                        log.push(n.to_string());
                        spindle::Ok(true)
                    })
                };
                let t1 = taker(1);
                let t2 = taker(2);
                spindle::yield_now().await?;
                assert!(log.get().is_empty());

                lock.release()?;
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1"]);
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1"], "one release, one waiter");

                let t3 = taker(3);
                lock.release()?;
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1", "2"]);

                lock.release()?;
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1", "2", "3"]);
                assert!(t1.await? && t2.await? && t3.await?);
                assert!(lock.locked());
                lock.release()?;
                assert!(!lock.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Releasing an unlocked lock is an error; the lock is not reentrant; the
/// guard releases it (`async with lock:`). (LK::test_release_not_acquired,
/// test_context_manager)
#[test]
fn case_84_lock_release_unlocked_is_error_and_not_reentrant() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let lock = Lock::new();
                let err = lock.release().unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidState);
                {
                    let _guard = lock.acquire().await?;
                    assert!(lock.locked());
                    let again = spindle::timeout(Duration::from_millis(20), lock.acquire()).await;
                    assert!(again.unwrap_err().is_timeout(), "not reentrant");
                    assert!(lock.locked());
                }
                assert!(!lock.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A waiter woken by a release and cancelled before it runs hands the lock to
/// the next waiter. (LK::test_finished_waiter_cancelled, test_cancel_race)
#[test]
fn case_84_lock_woken_then_cancelled_waiter_hands_lock_on() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let lock = Arc::new(Lock::new());
                lock.acquire().await?.forget();
                let (l1, l2) = (lock.clone(), lock.clone());
                let tb = spindle::spawn(async move {
                    l1.acquire().await?.forget();
                    spindle::Ok("b")
                });
                spindle::yield_now().await?;
                let tc = spindle::spawn(async move {
                    l2.acquire().await?.forget();
                    spindle::Ok("c")
                });
                spindle::yield_now().await?;
                lock.release()?; // hands the lock to b...
                tb.cancel(); // ...which is cancelled before it runs
                assert!(tb.clone().await.unwrap_err().is_cancelled());
                assert_eq!(tc.await?, "c", "c got the lock b was given");
                assert!(lock.locked());
                lock.release()?;
                assert!(!lock.locked(), "no extra permit");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 86: Event -------------------------------------------------------------

/// set() wakes every waiter; set() then clear() before they run still wakes
/// them all. (LK::EventTests::test_wait, test_clear_with_waiters)
#[test]
fn case_86_event_set_wakes_all_even_if_cleared_before_they_run() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let event = Arc::new(Event::new());
                let waiters: Vec<Task<u32>> = (0..3)
                    .map(|i| {
                        let event = event.clone();
                        spindle::spawn(async move {
                            event.wait().await?;
                            spindle::Ok(i)
                        })
                    })
                    .collect();
                spindle::yield_now().await?;
                assert!(waiters.iter().all(|w| !w.done()));
                event.set();
                event.clear();
                assert!(!event.is_set());
                for (i, waiter) in waiters.into_iter().enumerate() {
                    assert_eq!(waiter.await?, i as u32);
                }
                // A wait on a set event returns at once.
                event.set();
                event.wait().await?;
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A cancelled waiter is removed; the others are still woken.
/// (LK::EventTests::test_wait_cancel)
#[test]
fn case_86_event_cancelled_waiter_is_removed() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let event = Arc::new(Event::new());
                let (e1, e2) = (event.clone(), event.clone());
                let cancelled = spindle::spawn(async move { e1.wait().await });
                let kept = spindle::spawn(async move { e2.wait().await });
                until(|| format!("{event:?}").contains("waiters: 2")).await?;
                cancelled.cancel();
                assert!(cancelled.await.unwrap_err().is_cancelled());
                assert!(format!("{event:?}").contains("waiters: 1"), "{event:?}");
                event.set();
                kept.await?;
                assert!(format!("{event:?}").contains("waiters: 0"));
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 87: Condition ---------------------------------------------------------

/// wait() or notify() without the lock is an error; wait_for with a true
/// predicate needs no lock. (LK::test_wait_unacquired, test_notify_unacquired,
/// test_notify_all_unacquired, test_wait_for_unacquired)
#[test]
fn case_87_condition_wait_and_notify_without_lock_are_errors() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let cond = Condition::new();
                let err = cond.wait().await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidState);
                assert_eq!(cond.notify(1).unwrap_err().kind(), ErrorKind::InvalidState);
                assert_eq!(
                    cond.notify_all().unwrap_err().kind(),
                    ErrorKind::InvalidState
                );
                cond.wait_for(|| true).await?;
                let err = cond.wait_for(|| false).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidState);
                assert_eq!(cond.release().unwrap_err().kind(), ErrorKind::InvalidState);
                assert!(!cond.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A notified waiter resumes only after the notifier releases the lock;
/// notify(n) wakes the next n in order. (LK::ConditionTests::test_wait)
#[test]
fn case_87_condition_notified_waiter_resumes_after_release() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let cond = Arc::new(Condition::new());
                let log = Log::default();
                let tasks: Vec<Task<bool>> = (1..=3)
                    .map(|n| {
                        let (cond, log) = (cond.clone(), log.clone());
                        spindle::spawn(async move {
                            cond.acquire().await?.forget();
                            cond.wait().await?;
                            log.push(n.to_string());
                            spindle::Ok(true) // keeps the lock, as in the asyncio test
                        })
                    })
                    .collect();
                spindle::yield_now().await?;
                assert!(log.get().is_empty());
                assert!(!cond.locked());

                cond.acquire().await?.forget();
                cond.notify(1)?;
                spindle::yield_now().await?;
                assert!(log.get().is_empty(), "the notifier still holds the lock");
                assert!(cond.locked());

                cond.release()?;
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1"]);
                assert!(cond.locked());

                cond.notify(2)?;
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1"]);
                assert!(cond.locked());

                cond.release()?;
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1", "2"]);
                assert!(cond.locked());

                cond.release()?;
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1", "2", "3"]);
                assert!(cond.locked());
                for task in tasks {
                    assert!(task.await?);
                }
                cond.release()?;
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// notify(n) wakes the first n waiters in order; notify_all wakes all.
/// (LK::ConditionTests::test_notify, test_notify_all)
#[test]
fn case_87_condition_notify_n_in_order_and_notify_all() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let cond = Arc::new(Condition::new());
                let log = Log::default();
                let spawn_waiters = |names: &[&'static str]| -> Vec<Task<()>> {
                    names
                        .iter()
                        .map(|&name| {
                            let (cond, log) = (cond.clone(), log.clone());
                            spindle::spawn(async move {
                                let mut guard = cond.acquire().await?;
                                guard.wait().await?;
                                log.push(name);
                                spindle::Ok(())
                            })
                        })
                        .collect()
                };
                let tasks = spawn_waiters(&["1", "2", "3"]);
                spindle::yield_now().await?;

                {
                    let _guard = cond.acquire().await?;
                    cond.notify(1)?;
                }
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1"]);

                {
                    let _guard = cond.acquire().await?;
                    cond.notify(1)?;
                    cond.notify(2048)?;
                }
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1", "2", "3"]);
                for task in tasks {
                    task.await?;
                }

                let tasks = spawn_waiters(&["a", "b"]);
                spindle::yield_now().await?;
                {
                    let _guard = cond.acquire().await?;
                    cond.notify_all()?;
                }
                spindle::yield_now().await?;
                assert_eq!(log.get(), ["1", "2", "3", "a", "b"]);
                for task in tasks {
                    task.await?;
                }
                assert!(!cond.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// wait_for re-checks its predicate after each wake-up.
/// (LK::ConditionTests::test_wait_for)
#[test]
fn case_87_condition_wait_for_rechecks_predicate() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let cond = Arc::new(Condition::new());
                let ready = Arc::new(AtomicBool::new(false));
                let (c, r) = (cond.clone(), ready.clone());
                let waiter = spindle::spawn(async move {
                    let mut guard = c.acquire().await?;
                    guard.wait_for(|| r.load(Ordering::SeqCst)).await?;
                    spindle::Ok(())
                });
                spindle::yield_now().await?;
                {
                    let _guard = cond.acquire().await?;
                    cond.notify(1)?;
                }
                yields(3).await?;
                assert!(!waiter.done(), "the predicate is still false");
                {
                    let _guard = cond.acquire().await?;
                    ready.store(true, Ordering::SeqCst);
                    cond.notify(1)?;
                }
                waiter.await?;
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A cancelled wait re-acquires the lock before it returns the cancellation,
/// and leaves the waiters. (LK::test_wait_cancel, test_cancelled_error_wakeup)
#[test]
fn case_87_condition_cancelled_wait_reacquires_lock() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let cond = Arc::new(Condition::new());
                let c = cond.clone();
                let task = spindle::spawn(async move {
                    let mut guard = c.acquire().await?;
                    let err = guard.wait().await.unwrap_err();
                    assert!(err.is_cancelled());
                    assert_eq!(err.cancel_message(), Some("foo"));
                    assert!(c.locked(), "re-acquired before returning");
                    Err::<(), _>(err)
                });
                // The waiter joins the waiters, then releases the lock (in
                // that order, so that no notify slips in between): on two
                // workers this task may see it waiting with the lock still
                // held for a moment, so it waits for both. A wait that never
                // released the lock never gets past this.
                until(|| format!("{cond:?}").contains("waiters: 1") && !cond.locked()).await?;
                task.cancel_with("foo");
                let err = task.await.unwrap_err();
                assert_eq!(err.cancel_message(), Some("foo"));
                assert!(!cond.locked(), "the guard released it");
                assert!(format!("{cond:?}").contains("waiters: 0"));

                // With a timeout around the wait: a timeout, and the lock is
                // held again. (LK::test_timeout_in_block)
                let mut guard = cond.acquire().await?;
                let err = spindle::wait_for(Some(Duration::from_millis(20)), guard.wait())
                    .await
                    .unwrap_err();
                assert!(err.is_timeout());
                assert!(cond.locked());
                drop(guard);
                assert!(!cond.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A waiter cancelled while it re-acquires the lock ends cancelled once the
/// lock is released. (LK::test_wait_cancel_after_notify,
/// test_cancelled_error_re_aquire)
#[test]
fn case_87_condition_cancelled_while_reacquiring() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let cond = Arc::new(Condition::new());
                let waited = Arc::new(AtomicBool::new(false));
                let (c, w) = (cond.clone(), waited.clone());
                let waiter = spindle::spawn(async move {
                    let mut guard = c.acquire().await?;
                    w.store(true, Ordering::SeqCst);
                    guard.wait().await
                });
                spindle::yield_now().await?;
                cond.acquire().await?.forget();
                cond.notify(1)?;
                spindle::yield_now().await?; // the waiter now waits for the lock
                waiter.cancel_with("foo");
                spindle::yield_now().await?;
                assert!(!waiter.done(), "it needs the lock first");
                cond.release()?;
                let err = waiter.clone().await.unwrap_err();
                assert_eq!(err.cancel_message(), Some("foo"));
                assert!(waiter.cancelled());
                assert!(waited.load(Ordering::SeqCst));
                assert!(!cond.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A waiter notified and then cancelled (before it runs, or while it
/// re-acquires the lock) passes the notification on: no wake-up is lost.
/// (LK::test_cancelled_wakeup, test_cancelled_wakeup_relock)
#[test]
fn case_87_condition_notified_then_cancelled_passes_notification_on() {
    for relock in [false, true] {
        within_limit(move || {
            rt(1)
                .block_on(async move {
                    let cond = Arc::new(Condition::new());
                    let state = Arc::new(AtomicI64::new(0));
                    let consumers: Vec<Task<()>> = (0..2)
                        .map(|_| {
                            let (cond, state) = (cond.clone(), state.clone());
                            spindle::spawn(async move {
                                let mut guard = cond.acquire().await?;
                                loop {
                                    guard.wait_for(|| state.load(Ordering::SeqCst) != 0).await?;
                                    if state.load(Ordering::SeqCst) < 0 {
                                        return spindle::Ok(());
                                    }
                                    state.fetch_sub(1, Ordering::SeqCst);
                                }
                            })
                        })
                        .collect();
                    spindle::yield_now().await?;
                    {
                        let mut guard = cond.acquire().await?;
                        state.fetch_add(1, Ordering::SeqCst);
                        cond.notify(1)?;
                        if relock {
                            // Let the consumer wake up and wait for the lock.
                            spindle::yield_now().await?;
                        }
                        consumers[0].cancel();
                        let s = state.clone();
                        let waited = spindle::timeout(
                            Duration::from_millis(50),
                            guard.wait_for(|| s.load(Ordering::SeqCst) == 0),
                        )
                        .await;
                        if let Err(err) = waited {
                            assert!(err.is_timeout(), "{err:?}");
                        }
                        assert_eq!(state.load(Ordering::SeqCst), 0, "the item was consumed");
                        state.store(-1, Ordering::SeqCst);
                        cond.notify_all()?;
                    }
                    let mut consumers = consumers.into_iter();
                    let first = consumers.next().unwrap();
                    assert!(first.clone().await.unwrap_err().is_cancelled());
                    consumers.next().unwrap().await?;
                    spindle::Ok(())
                })
                .unwrap();
        });
    }
}

/// A condition over a shared lock: locking either locks both.
/// (LK::ConditionTests::test_explicit_lock, test_context_manager)
#[test]
fn case_87_condition_over_shared_lock() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let lock = Arc::new(Lock::new());
                let cond = Condition::with_lock(lock.clone());
                let other = Condition::with_lock(lock.clone());
                assert!(Arc::ptr_eq(cond.lock(), &lock));
                {
                    let _guard = cond.acquire().await?;
                    assert!(lock.locked() && cond.locked() && other.locked());
                    other.notify_all()?; // the shared lock is held
                }
                assert!(!lock.locked() && !cond.locked());
                {
                    let _guard = lock.acquire().await?;
                    assert!(cond.locked());
                }
                assert!(!cond.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A guard whose wait was dropped half-way knows the lock is no longer held:
/// it does not release someone else's lock, and waiting through it again is
/// an error.
#[test]
fn case_87_condition_guard_survives_a_dropped_wait() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let cond = Condition::new();
                let mut guard = cond.acquire().await?;
                let finished = PollOnce(Some(guard.wait())).await;
                assert!(!finished);
                assert!(!cond.locked(), "the dropped wait left the lock released");
                assert!(format!("{cond:?}").contains("waiters: 0"));
                let other = cond.lock().acquire().await?;
                assert_eq!(
                    guard.wait().await.unwrap_err().kind(),
                    ErrorKind::InvalidState
                );
                drop(guard);
                assert!(
                    cond.locked(),
                    "the guard did not release the other holder's lock"
                );
                drop(other);
                assert!(!cond.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 89: Semaphore ---------------------------------------------------------

/// Strict FIFO: c1_1, c2_1, c3_1, c1_2, c2_2, c3_2.
/// (LK::SemaphoreTests::test_acquire_fifo_order)
#[test]
fn case_89_semaphore_fifo_order() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let sem = Arc::new(Semaphore::new(1));
                let log = Log::default();
                let tasks: Vec<Task<()>> = ["c1", "c2", "c3"]
                    .into_iter()
                    .map(|tag| {
                        let (sem, log) = (sem.clone(), log.clone());
                        spindle::spawn(async move {
                            for round in 1..=2 {
                                let _permit = sem.acquire().await?;
                                log.push(format!("{tag}_{round}"));
                                spindle::sleep(Duration::from_millis(10)).await?;
                            }
                            spindle::Ok(())
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await?;
                }
                assert_eq!(log.get(), ["c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"]);
                assert_eq!(sem.available_permits(), 1);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A released permit goes to the first waiter, even if the releaser asks
/// again at once: a waiter that was given a permit but has not run yet
/// still counts as waiting, so the releaser queues behind it.
/// (LK::test_acquire_fifo_order_2; CPython 3.13 gives [1, 2, 3, 4])
#[test]
fn case_89_semaphore_fifo_order_releaser_queues_behind_woken_waiters() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let sem = Arc::new(Semaphore::new(1));
                let log = Log::default();
                let (s1, s2, s3) = (sem.clone(), sem.clone(), sem.clone());
                let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
                let t1 = spindle::spawn(async move {
                    s1.acquire().await?.forget();
                    l1.push("1");
                    spindle::Ok(())
                });
                let t2 = spindle::spawn(async move {
                    s2.acquire().await?.forget();
                    l2.push("2");
                    s2.release()?;
                    s2.acquire().await?.forget();
                    l2.push("4");
                    spindle::Ok(())
                });
                let t3 = spindle::spawn(async move {
                    s3.acquire().await?.forget();
                    l3.push("3");
                    spindle::Ok(())
                });
                spindle::yield_now().await?;
                sem.release()?;
                sem.release()?;
                t1.await?;
                t2.await?;
                t3.await?;
                assert_eq!(log.get(), ["1", "2", "3", "4"]);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A cancelled waiter is skipped. (LK::test_acquire_fifo_order_3)
#[test]
fn case_89_semaphore_fifo_order_skips_cancelled_waiter() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let sem = Arc::new(Semaphore::new(0));
                let log = Log::default();
                let tasks: Vec<Task<()>> = (1..=3)
                    .map(|n| {
                        let (sem, log) = (sem.clone(), log.clone());
                        spindle::spawn(async move {
                            sem.acquire().await?.forget();
                            log.push(n.to_string());
                            spindle::Ok(())
                        })
                    })
                    .collect();
                spindle::yield_now().await?;
                tasks[0].cancel();
                spindle::yield_now().await?;
                sem.release()?;
                sem.release()?;
                for task in &tasks {
                    let _ = task.clone().await;
                }
                assert_eq!(log.get(), ["2", "3"]);
                assert!(tasks[0].cancelled());
                assert_eq!(sem.available_permits(), 0);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Semaphore(2) never admits more than 2, on several workers.
#[test]
fn case_89_semaphore_of_two_never_admits_more_than_two() {
    within_limit(|| {
        rt(4)
            .block_on(async {
                let sem = Arc::new(Semaphore::new(2));
                let inside = Arc::new(AtomicUsize::new(0));
                let most = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<Task<()>> = (0..64)
                    .map(|i| {
                        let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
                        spindle::spawn(async move {
                            let _permit = sem.acquire().await?;
                            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            if i % 4 == 0 {
                                spindle::sleep(Duration::from_millis(1)).await?;
                            } else {
                                yields(3).await?;
                            }
                            inside.fetch_sub(1, Ordering::SeqCst);
                            spindle::Ok(())
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await?;
                }
                assert_eq!(most.load(Ordering::SeqCst), 2);
                assert_eq!(sem.available_permits(), 2);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A negative initial value is an error; releasing beyond the initial value
/// is allowed. (LK::SemaphoreTests::test_semaphore_value,
/// test_release_no_waiters)
#[test]
fn case_89_semaphore_negative_value_error_and_release_beyond_initial() {
    let err = Semaphore::try_new(-1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(Semaphore::try_new(0).unwrap().available_permits(), 0);
    let sem = Semaphore::new(1);
    sem.release().unwrap();
    assert_eq!(sem.available_permits(), 2);
    assert!(!sem.locked());
}

// -- case 90: no permit leaked or lost ------------------------------------------

/// Waiters cancelled before they are woken leave; a release wakes exactly
/// the next one. (LK::test_acquire_cancel_before_awoken)
#[test]
fn case_90_semaphore_cancelled_before_awoken() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let sem = Arc::new(Semaphore::new(0));
                let tasks: Vec<Task<()>> = (0..4)
                    .map(|_| {
                        let sem = sem.clone();
                        spindle::spawn(async move {
                            sem.acquire().await?.forget();
                            spindle::Ok(())
                        })
                    })
                    .collect();
                spindle::yield_now().await?;
                tasks[0].cancel();
                tasks[1].cancel();
                sem.release()?;
                yields(2).await?;
                assert!(tasks[2].done() && !tasks[3].done());
                tasks[3].cancel();
                for task in &tasks {
                    let _ = task.clone().await;
                }
                assert!(tasks[0].cancelled() && tasks[1].cancelled() && tasks[3].cancelled());
                assert_eq!(sem.available_permits(), 0, "t3 holds the one permit");
                sem.release()?;
                assert_eq!(sem.available_permits(), 1);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A cancelled waiter leaves the list; the release goes to the next one.
/// (LK::test_acquire_hang)
#[test]
fn case_90_semaphore_cancelled_waiter_leaves_no_hang() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let sem = Arc::new(Semaphore::new(0));
                let (s1, s2) = (sem.clone(), sem.clone());
                let t1 = spindle::spawn(async move {
                    s1.acquire().await?.forget();
                    spindle::Ok(())
                });
                let t2 = spindle::spawn(async move {
                    s2.acquire().await?.forget();
                    spindle::Ok(())
                });
                spindle::yield_now().await?;
                t1.cancel();
                sem.release()?;
                yields(2).await?;
                assert!(sem.locked());
                assert!(t2.done());
                assert!(t1.await.unwrap_err().is_cancelled());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A waiter woken (given a permit) and cancelled before it runs hands the
/// permit to the next waiter; a timed-out waiter leaves the list.
#[test]
fn case_90_semaphore_woken_then_cancelled_hands_permit_on() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let sem = Arc::new(Semaphore::new(0));
                let (s1, s2) = (sem.clone(), sem.clone());
                let t1 = spindle::spawn(async move {
                    s1.acquire().await?.forget();
                    spindle::Ok(1)
                });
                let t2 = spindle::spawn(async move {
                    s2.acquire().await?.forget();
                    spindle::Ok(2)
                });
                spindle::yield_now().await?;
                sem.release()?; // granted to t1
                t1.cancel(); // t1 has not run yet
                assert!(t1.clone().await.unwrap_err().is_cancelled());
                assert_eq!(t2.await?, 2, "t2 got the permit t1 was given");
                assert_eq!(sem.available_permits(), 0);

                // A timed-out waiter leaves: the next release is not lost.
                let err = spindle::timeout(Duration::from_millis(10), sem.acquire())
                    .await
                    .unwrap_err();
                assert!(err.is_timeout());
                assert!(format!("{sem:?}").contains("waiters: 0"), "{sem:?}");
                sem.release()?;
                assert_eq!(sem.available_permits(), 1);
                assert!(!sem.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Dropping a pending acquire (or one that was already granted) loses no
/// permit.
#[test]
fn case_90_semaphore_dropped_acquire_loses_nothing() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let sem = Semaphore::new(1);
                let held = sem.acquire().await?;
                let mut pending = sem.acquire();
                assert!(!PollOnce(Some(&mut pending)).await);
                drop(held); // grants the pending acquire
                drop(pending); // ...which is dropped: the permit comes back
                assert_eq!(sem.available_permits(), 1);
                assert!(!sem.locked());
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 91: BoundedSemaphore --------------------------------------------------

/// Releasing above the initial value is an error.
/// (LK::SemaphoreTests::test_release_not_acquired)
#[test]
fn case_91_bounded_semaphore_release_above_initial_is_error() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let sem = BoundedSemaphore::new(2);
                assert_eq!(sem.release().unwrap_err().kind(), ErrorKind::InvalidState);
                sem.acquire().await?.forget();
                sem.release()?;
                assert!(sem.release().is_err());
                assert_eq!(sem.available_permits(), 2);
                {
                    let _a = sem.acquire().await?;
                    let _b = sem.acquire().await?;
                    assert!(sem.locked());
                }
                assert_eq!(sem.available_permits(), 2);
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 92: Barrier -----------------------------------------------------------

/// N waiters get distinct indices 0..N-1, and the barrier is reused round
/// after round. (LK::BarrierTests::test_barrier, test_filling_tasks_wait_twice)
#[test]
fn case_92_barrier_distinct_indices_every_round() {
    within_limit(|| {
        rt(3)
            .block_on(async {
                const N: usize = 5;
                let barrier = Arc::new(Barrier::new(N)?);
                assert_eq!(barrier.parties(), N);
                let tasks: Vec<Task<Vec<usize>>> = (0..N)
                    .map(|_| {
                        let barrier = barrier.clone();
                        spindle::spawn(async move {
                            let mut indices = Vec::new();
                            for _ in 0..3 {
                                indices.push(barrier.wait().await?);
                            }
                            spindle::Ok(indices)
                        })
                    })
                    .collect();
                let mut rounds = vec![Vec::new(); 3];
                for task in tasks {
                    for (round, index) in task.await?.into_iter().enumerate() {
                        rounds[round].push(index);
                    }
                }
                for mut round in rounds {
                    round.sort();
                    assert_eq!(round, (0..N).collect::<Vec<_>>());
                }
                assert_eq!(barrier.n_waiting(), 0);
                assert!(!barrier.broken());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// On one worker the indices follow arrival order, and while the barrier
/// drains, new arrivals wait for the round to end.
/// (LK::test_filling_task_by_task, test_blocking_tasks_while_draining)
#[test]
fn case_92_barrier_arrival_order_and_draining_blocks_new_arrivals() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let barrier = Arc::new(Barrier::new(3)?);
                let log = Log::default();
                let tasks: Vec<Task<()>> = (0..3)
                    .map(|n| {
                        let (barrier, log) = (barrier.clone(), log.clone());
                        spindle::spawn(async move {
                            let index = barrier.wait().await?;
                            log.push(format!("t{n}:{index}"));
                            // Straight back in: waits for the others to leave.
                            let again = barrier.wait().await?;
                            log.push(format!("t{n}:again:{again}"));
                            spindle::Ok(())
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await?;
                }
                let log = log.get();
                assert_eq!(&log[..3], ["t2:2", "t0:0", "t1:1"], "{log:?}");
                assert_eq!(log.len(), 6);
                // The tripping task re-entered first, while the others were
                // still draining: it waited, so the second round completed.
                assert_eq!(barrier.n_waiting(), 0);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A cancelled waiter leaves the barrier. (LK::test_filling_tasks_cancel_one)
#[test]
fn case_92_barrier_cancelled_waiter_leaves() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let barrier = Arc::new(Barrier::new(3)?);
                let passed = Arc::new(AtomicUsize::new(0));
                let waiter = || {
                    let (barrier, passed) = (barrier.clone(), passed.clone());
                    spindle::spawn(async move {
                        barrier.wait().await?;
                        passed.fetch_add(1, Ordering::SeqCst);
                        spindle::Ok(())
                    })
                };
                let t1 = waiter();
                spindle::yield_now().await?;
                assert_eq!(barrier.n_waiting(), 1);
                let t2 = waiter();
                spindle::yield_now().await?;
                assert_eq!(barrier.n_waiting(), 2);
                t1.cancel();
                spindle::yield_now().await?;
                assert_eq!(barrier.n_waiting(), 1);
                assert!(t1.clone().await.unwrap_err().is_cancelled());
                assert!(t1.cancelled());
                let t3 = waiter();
                spindle::yield_now().await?;
                assert_eq!(barrier.n_waiting(), 2);
                let t4 = waiter();
                t2.await?;
                t3.await?;
                t4.await?;
                assert_eq!(passed.load(Ordering::SeqCst), 3);
                assert_eq!(barrier.n_waiting(), 0);
                assert!(!barrier.broken());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// reset() breaks the current waiters and the barrier is usable again.
/// (LK::test_reset_barrier, test_reset_barrier_while_tasks_waiting)
#[test]
fn case_92_barrier_reset_breaks_waiters_then_usable_again() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                const N: usize = 4;
                let barrier = Arc::new(Barrier::new(N)?);
                barrier.reset(); // on an empty barrier: nothing happens
                assert!(!barrier.broken());
                let spawn_waiters = |n: usize| -> Vec<Task<usize>> {
                    (0..n)
                        .map(|_| {
                            let barrier = barrier.clone();
                            spindle::spawn(async move { barrier.wait().await })
                        })
                        .collect()
                };
                let waiting = spawn_waiters(N - 1);
                until(|| barrier.n_waiting() == N - 1).await?;
                barrier.reset();
                for task in waiting {
                    let err = task.await.unwrap_err();
                    assert!(is_broken(&err), "{err:?}");
                    assert_eq!(
                        err.downcast_ref::<BrokenBarrierError>().unwrap().reason(),
                        "Abort or reset of barrier"
                    );
                }
                assert_eq!(barrier.n_waiting(), 0);
                assert!(!barrier.broken());
                let mut indices = Vec::new();
                for task in spawn_waiters(N) {
                    indices.push(task.await?);
                }
                indices.sort();
                assert_eq!(indices, [0, 1, 2, 3]);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// abort() breaks current and future waiters until a reset.
/// (LK::test_abort_barrier, test_abort_barrier_when_tasks_half_draining_half_blocking)
#[test]
fn case_92_barrier_abort_breaks_current_and_future_waiters() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let barrier = Arc::new(Barrier::new(3)?);
                let spawn_waiters = |n: usize| -> Vec<Task<usize>> {
                    (0..n)
                        .map(|_| {
                            let barrier = barrier.clone();
                            spindle::spawn(async move { barrier.wait().await })
                        })
                        .collect()
                };
                let waiting = spawn_waiters(2);
                until(|| barrier.n_waiting() == 2).await?;
                barrier.abort();
                assert!(barrier.broken());
                assert_eq!(barrier.n_waiting(), 0);
                for task in waiting {
                    assert!(is_broken(&task.await.unwrap_err()));
                }
                let err = barrier.wait().await.unwrap_err();
                assert_eq!(
                    err.downcast_ref::<BrokenBarrierError>().unwrap().reason(),
                    "Barrier aborted"
                );
                assert!(err.to_string().contains("barrier broken"));
                barrier.reset();
                assert!(!barrier.broken());
                let mut indices = Vec::new();
                for task in spawn_waiters(3) {
                    indices.push(task.await?);
                }
                indices.sort();
                assert_eq!(indices, [0, 1, 2]);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Barrier(0) is an error; Barrier(1) never waits.
#[test]
fn case_92_barrier_of_zero_is_error() {
    let err = Barrier::new(0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    within_limit(|| {
        rt(1)
            .block_on(async {
                let barrier = Barrier::new(1)?;
                assert_eq!(barrier.wait().await?, 0);
                assert_eq!(barrier.wait().await?, 0);
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- bad inputs -------------------------------------------------------------------

/// Every misuse is an error value, never a panic or a hang.
#[test]
fn bad_inputs_are_errors() {
    assert_eq!(
        Semaphore::try_new(-1).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let bounded = BoundedSemaphore::new(1);
    assert_eq!(
        bounded.release().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(
        Barrier::new(0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        Lock::new().release().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    let cond = Condition::new();
    assert_eq!(cond.notify(1).unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(
        cond.notify_all().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(cond.release().unwrap_err().kind(), ErrorKind::InvalidState);
    within_limit(|| {
        rt(1)
            .block_on(async {
                let cond = Condition::new();
                assert_eq!(
                    cond.wait().await.unwrap_err().kind(),
                    ErrorKind::InvalidState
                );
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- cancellation storm -----------------------------------------------------------

/// Tracks how many tasks are inside a section, and the most at once.
struct Inside<'a>(&'a AtomicUsize);

impl<'a> Inside<'a> {
    fn enter(count: &'a AtomicUsize, most: &AtomicUsize) -> Inside<'a> {
        let now = count.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        Inside(count)
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Shared {
    sem: Semaphore,
    lock: Lock,
    cond: Condition,
    tokens: AtomicI64,
    produced: AtomicI64,
    consumed: AtomicI64,
    in_sem: AtomicUsize,
    most_in_sem: AtomicUsize,
    in_lock: AtomicUsize,
    most_in_lock: AtomicUsize,
    passed_barrier: AtomicUsize,
}

const STORM_PERMITS: usize = 3;
const STORM_PARTIES: usize = 3;

async fn hold(rng: &mut Rng) -> spindle::Result<()> {
    if rng.below(4) == 0 {
        spindle::sleep(Duration::from_micros(rng.below(1500))).await
    } else {
        yields(rng.below(3) as usize).await
    }
}

/// One storm task: a few random operations on the shared primitives, some
/// under a random timeout. A timeout or a broken barrier moves on to the
/// next operation; a cancellation ends the task.
async fn storm_task(
    shared: Arc<Shared>,
    barrier: Arc<Barrier>,
    seed: u64,
    _ended: Ended,
) -> spindle::Result<()> {
    let mut rng = Rng(seed);
    for _ in 0..4 {
        let limit = Duration::from_micros(200 + rng.below(3000));
        let timed = rng.below(2) == 0;
        let sh = &shared;
        let outcome: spindle::Result<()> = match rng.below(5) {
            0 => {
                let mut rng = Rng(rng.next());
                let op = async move {
                    let _permit = sh.sem.acquire().await?;
                    let _inside = Inside::enter(&sh.in_sem, &sh.most_in_sem);
                    hold(&mut rng).await
                };
                if timed {
                    spindle::timeout(limit, op).await
                } else {
                    op.await
                }
            }
            1 => {
                let mut rng = Rng(rng.next());
                let op = async move {
                    let _guard = sh.lock.acquire().await?;
                    let _inside = Inside::enter(&sh.in_lock, &sh.most_in_lock);
                    hold(&mut rng).await
                };
                if timed {
                    spindle::timeout(limit, op).await
                } else {
                    op.await
                }
            }
            2 => {
                // A consumer: waits for a token (always with a time limit,
                // since producers may be gone).
                let op = async move {
                    let mut guard = sh.cond.acquire().await?;
                    guard
                        .wait_for(|| sh.tokens.load(Ordering::SeqCst) > 0)
                        .await?;
                    let left = sh.tokens.fetch_sub(1, Ordering::SeqCst) - 1;
                    assert!(left >= 0, "a token was taken twice");
                    sh.consumed.fetch_add(1, Ordering::SeqCst);
                    spindle::Ok(())
                };
                spindle::timeout(limit, op).await
            }
            3 => {
                let op = async move {
                    let _guard = sh.cond.acquire().await?;
                    sh.tokens.fetch_add(1, Ordering::SeqCst);
                    sh.produced.fetch_add(1, Ordering::SeqCst);
                    sh.cond.notify(1)
                };
                if timed {
                    spindle::timeout(limit, op).await
                } else {
                    op.await
                }
            }
            _ => {
                let barrier = &barrier;
                let op = async move {
                    barrier.wait().await?;
                    sh.passed_barrier.fetch_add(1, Ordering::SeqCst);
                    spindle::Ok(())
                };
                spindle::timeout(limit, op).await
            }
        };
        match outcome {
            Ok(()) => {}
            Err(err) if err.is_timeout() || is_broken(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// A few hundred tasks on several workers acquire, wait and notify under
/// random cancels, aborts and timeouts. At the end every permit is back, the
/// locks are free, no waiter is left behind, the limits were never exceeded,
/// no token was lost or taken twice, the barrier is consistent, and every
/// task ended exactly once.
#[test]
fn storm_cancellation_loses_no_permit() {
    let seed = storm_seed(0x5eed_0001);
    within_limit(move || {
        let rt = rt(3);
        const TASKS: usize = 300;
        let shared = Arc::new(Shared {
            sem: Semaphore::new(STORM_PERMITS),
            lock: Lock::new(),
            cond: Condition::new(),
            tokens: AtomicI64::new(0),
            produced: AtomicI64::new(0),
            consumed: AtomicI64::new(0),
            in_sem: AtomicUsize::new(0),
            most_in_sem: AtomicUsize::new(0),
            in_lock: AtomicUsize::new(0),
            most_in_lock: AtomicUsize::new(0),
            passed_barrier: AtomicUsize::new(0),
        });
        let barrier = Arc::new(Barrier::new(STORM_PARTIES).unwrap());
        let ended = Arc::new(AtomicUsize::new(0));
        let (sh, br, en) = (shared.clone(), barrier.clone(), ended.clone());
        let outcomes = rt
            .block_on(async move {
                let mut rng = Rng(seed);
                let live = Arc::new(Mutex::new(Vec::new()));
                let stop = Arc::new(AtomicBool::new(false));
                let chaos = chaos(live.clone(), stop.clone(), rng.next());
                let mut tasks = Vec::with_capacity(TASKS);
                for _ in 0..TASKS {
                    let task_seed = rng.next();
                    tasks.push(spindle::spawn(storm_task(
                        sh.clone(),
                        br.clone(),
                        task_seed,
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
                assert!(chaos.await? > 0);
                let mut outcomes = (0, 0);
                for task in &tasks {
                    match task.clone().await {
                        Ok(()) => outcomes.0 += 1,
                        Err(err) => {
                            assert!(err.is_cancelled(), "seed {seed}: {err:?}");
                            outcomes.1 += 1;
                        }
                    }
                }
                assert!(tasks.iter().all(|t| t.done()));
                spindle::Ok(outcomes)
            })
            .unwrap();
        assert_eq!(outcomes.0 + outcomes.1, TASKS, "seed {seed}");
        assert_eq!(
            ended.load(Ordering::SeqCst),
            TASKS,
            "seed {seed}: every task ended once"
        );

        let sh = &shared;
        assert_eq!(sh.sem.available_permits(), STORM_PERMITS, "seed {seed}");
        assert!(!sh.sem.locked(), "seed {seed}");
        assert!(
            format!("{:?}", sh.sem).contains("waiters: 0"),
            "seed {seed}"
        );
        assert!(!sh.lock.locked(), "seed {seed}");
        assert!(!sh.cond.locked(), "seed {seed}");
        assert!(
            format!("{:?}", sh.cond).contains("waiters: 0"),
            "seed {seed}"
        );
        assert!(
            sh.most_in_sem.load(Ordering::SeqCst) <= STORM_PERMITS,
            "seed {seed}"
        );
        assert_eq!(sh.most_in_lock.load(Ordering::SeqCst), 1, "seed {seed}");
        assert_eq!(
            sh.tokens.load(Ordering::SeqCst),
            sh.produced.load(Ordering::SeqCst) - sh.consumed.load(Ordering::SeqCst),
            "seed {seed}"
        );
        assert_eq!(barrier.n_waiting(), 0, "seed {seed}: nobody left inside");
        assert!(!barrier.broken());
        // The barrier still works: a full round passes.
        rt.block_on(async move {
            let tasks: Vec<_> = (0..STORM_PARTIES)
                .map(|_| {
                    let barrier = barrier.clone();
                    spindle::spawn(async move { barrier.wait().await })
                })
                .collect();
            let mut indices = Vec::new();
            for task in tasks {
                indices.push(spindle::timeout(Duration::from_secs(5), task).await?);
            }
            indices.sort();
            assert_eq!(indices, (0..STORM_PARTIES).collect::<Vec<_>>());
            spindle::Ok(())
        })
        .unwrap();
    });
}
