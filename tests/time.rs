//! Time: `sleep`, `sleep_until` and `duration_from_secs`
//! (`/work/shared/spec/asyncio-semantics.md`, case 3, and the timer
//! guarantees of `src/time`: nothing fires early, timers fire in deadline
//! order, cancelled or dropped timers never fire, shutdown cancels sleeps).

mod common;
use common::{ms, rt, within_limit};

use spindle::time::duration_from_secs;
use spindle::{ErrorKind, Runtime, Task};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// A waker that counts its wakes.
#[derive(Default)]
struct WakeCount(AtomicUsize);

impl WakeCount {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(WakeCount::default()));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    future.as_mut().poll(&mut cx)
}

/// A deterministic generator (splitmix64) for seeded random deadlines.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

// -- case 3 -------------------------------------------------------------------

/// Case 3: sleep(0) yields once. Tasks a, b, c each log, sleep 0, log again
/// -> a, b, c, a2, b2, c2 on a single worker; a deadline in the past and a
/// negative delay (through `duration_from_secs`) act like 0.
#[test]
fn case_3_sleep_zero_yields_once_like_asyncio() {
    within_limit(|| {
        let rt = rt(1);
        let log = rt
            .block_on(async {
                let log = Arc::new(Mutex::new(Vec::new()));
                let mut tasks = Vec::new();
                for name in ["a", "b", "c", "d"] {
                    let log = log.clone();
                    tasks.push(spindle::spawn(async move {
                        log.lock().unwrap().push(name.to_string());
                        match name {
                            "a" => spindle::sleep(Duration::ZERO).await?,
                            "b" => {
                                let past = Instant::now().checked_sub(ms(1000));
                                spindle::sleep_until(past.unwrap_or_else(Instant::now)).await?
                            }
                            "c" => spindle::sleep(duration_from_secs(-1.0)?).await?,
                            _ => spindle::sleep_until(Instant::now()).await?,
                        }
                        log.lock().unwrap().push(format!("{name}2"));
                        spindle::Ok(())
                    }));
                }
                for task in tasks {
                    task.await?;
                }
                let log = log.lock().unwrap().clone();
                spindle::Ok(log)
            })
            .unwrap();
        assert_eq!(log, ["a", "b", "c", "d", "a2", "b2", "c2", "d2"]);
    });
}

/// Case 3: `sleep(Duration::ZERO)` is asyncio's `sleep(0)`, the same single
/// yield as `yield_now()` (docs/semantics.md): on one worker, a task looping
/// on `sleep(0)` and one looping on `yield_now()` alternate strictly.
#[test]
fn case_3_sleep_zero_alternates_with_yield_now() {
    within_limit(|| {
        let rt = rt(1);
        let log = rt
            .block_on(async {
                let log = Arc::new(Mutex::new(Vec::new()));
                let (la, lb) = (log.clone(), log.clone());
                let a = spindle::spawn(async move {
                    for i in 0..4 {
                        la.lock().unwrap().push(format!("sleep{i}"));
                        spindle::sleep(Duration::ZERO).await?;
                    }
                    spindle::Ok(())
                });
                let b = spindle::spawn(async move {
                    for i in 0..4 {
                        lb.lock().unwrap().push(format!("yield{i}"));
                        spindle::yield_now().await?;
                    }
                    spindle::Ok(())
                });
                a.await?;
                b.await?;
                let log = log.lock().unwrap().clone();
                spindle::Ok(log)
            })
            .unwrap();
        let expected: Vec<String> = (0..4)
            .flat_map(|i| [format!("sleep{i}"), format!("yield{i}")])
            .collect();
        assert_eq!(
            log, expected,
            "sleep(0) must be one yield, not a wait for the next timer tick"
        );
    });
}

/// Case 3: sleep(0) does not wait for a timer: 500 of them in a row take
/// nowhere near 500 timer ticks (one tick is 1 ms).
#[test]
fn case_3_sleep_zero_does_not_wait_for_a_tick() {
    within_limit(|| {
        let rt = rt(1);
        let elapsed = rt
            .block_on(async {
                let start = Instant::now();
                for _ in 0..500 {
                    spindle::sleep(Duration::ZERO).await?;
                }
                spindle::Ok(start.elapsed())
            })
            .unwrap();
        assert!(
            elapsed < ms(200),
            "500 sleep(0) took {elapsed:?}: each one waits for a timer tick"
        );
    });
}

/// Case 3: `duration_from_secs` converts delays as asyncio does: negative
/// -> 0, NaN -> invalid argument, infinity -> no limit.
#[test]
fn case_3_duration_from_secs_maps_like_asyncio() {
    assert_eq!(duration_from_secs(-1.0).unwrap(), Duration::ZERO);
    assert_eq!(duration_from_secs(-0.0).unwrap(), Duration::ZERO);
    assert_eq!(duration_from_secs(0.0).unwrap(), Duration::ZERO);
    assert_eq!(
        duration_from_secs(f64::NEG_INFINITY).unwrap(),
        Duration::ZERO
    );
    assert_eq!(duration_from_secs(0.25).unwrap(), ms(250));
    assert_eq!(duration_from_secs(1.5).unwrap(), ms(1500));
    assert_eq!(duration_from_secs(f64::INFINITY).unwrap(), Duration::MAX);
    assert_eq!(duration_from_secs(1e300).unwrap(), Duration::MAX);
    let err = duration_from_secs(f64::NAN).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(!err.is_timeout() && !err.is_cancelled());
    // A tiny positive delay is not rounded to zero by the conversion.
    assert!(duration_from_secs(1e-6).unwrap() > Duration::ZERO);
}

// -- sleeping -----------------------------------------------------------------

/// A sleep lasts at least its duration.
#[test]
fn sleep_never_returns_early() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            for d in [1, 2, 5, 13, 30] {
                let start = Instant::now();
                spindle::sleep(ms(d)).await?;
                let elapsed = start.elapsed();
                assert!(elapsed >= ms(d), "sleep({d} ms) returned after {elapsed:?}");
                let deadline = Instant::now() + ms(d);
                spindle::sleep_until(deadline).await?;
                assert!(Instant::now() >= deadline, "sleep_until returned early");
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Sleeps in separate tasks run concurrently: three 100 ms sleeps take about
/// 100 ms, not 300, on one worker as on two.
#[test]
fn sleeps_run_concurrently() {
    within_limit(|| {
        for workers in [1, 2] {
            let rt = rt(workers);
            let elapsed = rt
                .block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..3)
                        .map(|_| spindle::spawn(spindle::sleep(ms(100))))
                        .collect();
                    for task in tasks {
                        task.await?;
                    }
                    spindle::Ok(start.elapsed())
                })
                .unwrap();
            assert!(elapsed >= ms(100), "{workers} workers: {elapsed:?}");
            assert!(
                elapsed < ms(250),
                "{workers} workers: three concurrent 100 ms sleeps took {elapsed:?}"
            );
        }
    });
}

/// A sleep is a cancellation point: cancelling a sleeping task ends the sleep
/// at once with Cancelled carrying the message; the task may then sleep
/// again in its cleanup (R1).
#[test]
fn sleep_is_a_cancellation_point() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let started = spindle::Promise::<()>::new();
            let s = started.clone();
            let task = spindle::spawn(async move {
                s.set_result(())?;
                let err = spindle::sleep(Duration::from_secs(10)).await.unwrap_err();
                let at = Instant::now();
                // Cleanup can sleep again: the cancel was delivered once.
                let cleanup = spindle::sleep(ms(5)).await;
                assert!(at.elapsed() >= ms(5));
                spindle::Ok((err, at, cleanup.is_ok()))
            });
            started.await?;
            spindle::sleep(ms(10)).await?;
            let cancelled_at = Instant::now();
            assert!(task.cancel_with("wake up"));
            let (err, woke_at, cleanup_ok) = task.await?;
            assert!(err.is_cancelled(), "{err:?}");
            assert_eq!(err.cancel_message(), Some("wake up"));
            let delay = woke_at.duration_since(cancelled_at);
            assert!(delay < ms(500), "the sleep saw the cancel after {delay:?}");
            assert!(
                cleanup_ok,
                "a sleep after the delivered cancel runs normally"
            );

            // Sleeping with a cancel already pending fails at once; the task
            // ends cancelled.
            let task = spindle::spawn(async {
                let start = Instant::now();
                let result = spindle::sleep(Duration::from_secs(10)).await;
                assert!(start.elapsed() < ms(500));
                result
            });
            task.cancel_with("early");
            let start = Instant::now();
            let err = task.clone().await.unwrap_err();
            assert!(start.elapsed() < ms(500));
            assert_eq!(err.cancel_message(), Some("early"));
            assert!(task.cancelled());

            // A task that cancels itself sleeps no more: sleep(0) and a long
            // sleep both fail at once.
            let task = spindle::spawn(async {
                let me = spindle::current_task()?.unwrap();
                me.cancel_with("self");
                let err = spindle::sleep(Duration::ZERO).await.unwrap_err();
                assert_eq!(err.cancel_message(), Some("self"));
                me.cancel_with("again");
                let start = Instant::now();
                let err = spindle::sleep(Duration::from_secs(10)).await.unwrap_err();
                assert!(start.elapsed() < ms(500));
                assert_eq!(err.cancel_message(), Some("again"));
                spindle::Ok("caught both")
            });
            assert_eq!(task.await?, "caught both");
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// 2,000 tasks with seeded random deadlines within 300 ms: none wakes before
/// its deadline, and the order of the wake-ups follows the deadlines up to a
/// few milliseconds of scheduling jitter.
///
/// Flakiness analysis: a timer never fires early, so "not early" is exact.
/// For the order, a task counts as out of order only if some task whose
/// deadline is more than `DEADLINE_SLACK` later woke more than `WAKE_SLACK`
/// before it; tasks woken in one batch are recorded microseconds apart, so
/// only a task whose own worker was descheduled by the OS in the middle of
/// its poll can count, and a few such tasks are allowed. A timer bug
/// (e.g. a wheel level that cascades late or fires slots out of order)
/// makes whole slots late and breaks the bound by hundreds.
#[test]
fn many_timers_fire_in_deadline_order() {
    const TASKS: usize = 2_000;
    const SPREAD_US: u64 = 300_000;
    const LEAD: Duration = Duration::from_millis(50);
    const DEADLINE_SLACK: Duration = Duration::from_millis(3);
    const WAKE_SLACK: Duration = Duration::from_millis(2);
    within_limit(|| {
        let rt = rt(2);
        let mut rng = SplitMix(0x5EED_F00D_71AE);
        let offsets: Vec<Duration> = (0..TASKS)
            .map(|_| Duration::from_micros(rng.next() % SPREAD_US))
            .collect();
        let records = rt
            .block_on(async move {
                let base = Instant::now() + LEAD;
                let tasks: Vec<Task<(Instant, Instant, Instant)>> = offsets
                    .iter()
                    .map(|&offset| {
                        let deadline = base + offset;
                        spindle::spawn(async move {
                            let registered = Instant::now();
                            spindle::sleep_until(deadline).await?;
                            spindle::Ok((deadline, registered, Instant::now()))
                        })
                    })
                    .collect();
                let mut records = Vec::with_capacity(TASKS);
                for task in tasks {
                    records.push(task.await?);
                }
                spindle::Ok(records)
            })
            .unwrap();

        for (i, &(deadline, _, woke)) in records.iter().enumerate() {
            assert!(
                woke >= deadline,
                "task {i} woke {:?} before its deadline",
                deadline - woke
            );
        }
        // Only tasks that registered their timer before the deadline say
        // anything about timer order (the others yielded once and woke at
        // their first poll).
        let mut timed: Vec<(Instant, Instant)> = records
            .iter()
            .filter(|(deadline, registered, _)| *registered + ms(1) < *deadline)
            .map(|&(deadline, _, woke)| (deadline, woke))
            .collect();
        assert!(
            timed.len() >= TASKS / 2,
            "only {} of {TASKS} tasks registered their timer before the deadline",
            timed.len()
        );
        timed.sort();
        let mut lateness: Vec<Duration> = timed.iter().map(|(d, w)| *w - *d).collect();
        lateness.sort();
        let (p50, p90, max) = (
            percentile(&lateness, 50),
            percentile(&lateness, 90),
            *lateness.last().unwrap(),
        );
        eprintln!(
            "{} timed tasks; lateness p50 {p50:?} p90 {p90:?} max {max:?}",
            timed.len()
        );
        assert!(p50 < ms(25), "median lateness {p50:?}");
        assert!(p90 < ms(60), "90th percentile lateness {p90:?}");

        // suffix_min[k]: the earliest wake-up among tasks k.. (by deadline).
        let mut suffix_min = vec![timed.last().unwrap().1; timed.len() + 1];
        for k in (0..timed.len()).rev() {
            suffix_min[k] = suffix_min[k + 1].min(timed[k].1);
        }
        let mut out_of_order = Vec::new();
        for (i, &(deadline, woke)) in timed.iter().enumerate() {
            let later = timed.partition_point(|(d, _)| *d <= deadline + DEADLINE_SLACK);
            if later < timed.len() && suffix_min[later] + WAKE_SLACK < woke {
                out_of_order.push((i, woke - suffix_min[later]));
            }
        }
        eprintln!("{} tasks out of order", out_of_order.len());
        assert!(
            out_of_order.len() <= timed.len() / 100,
            "{} of {} tasks woke after a task due more than {DEADLINE_SLACK:?} later \
             (first ones: index, by how much: {:?})",
            out_of_order.len(),
            timed.len(),
            &out_of_order[..out_of_order.len().min(10)]
        );
    });
}

/// On an idle runtime a timer fires soon after its deadline: 20 sequential
/// 10 ms sleeps are never early and rarely more than a few ms late.
#[test]
fn lateness_on_an_idle_runtime_is_small() {
    within_limit(|| {
        let rt = rt(2);
        let mut lateness = rt
            .block_on(async {
                let mut lateness = Vec::new();
                for _ in 0..20 {
                    let start = Instant::now();
                    spindle::sleep(ms(10)).await?;
                    let elapsed = start.elapsed();
                    assert!(elapsed >= ms(10), "a 10 ms sleep took {elapsed:?}");
                    lateness.push(elapsed - ms(10));
                }
                spindle::Ok(lateness)
            })
            .unwrap();
        lateness.sort();
        eprintln!(
            "lateness p50 {:?} p90 {:?}",
            percentile(&lateness, 50),
            percentile(&lateness, 90)
        );
        assert!(
            percentile(&lateness, 90) < ms(20),
            "lateness of 10 ms sleeps: {lateness:?}"
        );
    });
}

/// Sleeping tasks cancelled from another task end cancelled, their timers
/// never let the code after the sleep run, and the timers keep working.
#[test]
fn sleeps_cancelled_from_another_task_never_wake() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let woke = Arc::new(AtomicUsize::new(0));
            let started = Arc::new(AtomicUsize::new(0));
            let sleepers: Vec<Task<()>> = (0..100)
                .map(|_| {
                    let (woke, started) = (woke.clone(), started.clone());
                    spindle::spawn(async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        spindle::sleep(ms(150)).await?;
                        woke.fetch_add(1, Ordering::SeqCst);
                        spindle::Ok(())
                    })
                })
                .collect();
            while started.load(Ordering::SeqCst) < 100 {
                spindle::sleep(ms(1)).await?;
            }
            let start = Instant::now();
            let targets = sleepers.clone();
            spindle::spawn(async move {
                for task in &targets {
                    task.cancel_with("cancelled by a peer");
                }
                spindle::Ok(())
            })
            .await?;
            for task in &sleepers {
                let err = task.clone().await.unwrap_err();
                assert_eq!(err.cancel_message(), Some("cancelled by a peer"));
                assert!(task.cancelled());
            }
            assert!(
                start.elapsed() < ms(140),
                "cancelled sleeps should end at once, not at their deadline ({:?})",
                start.elapsed()
            );
            // Past the old deadlines: nothing woke.
            spindle::sleep(ms(200)).await?;
            assert_eq!(woke.load(Ordering::SeqCst), 0);
            // The wheels still work.
            let start = Instant::now();
            let fresh: Vec<_> = (0..10)
                .map(|_| spindle::spawn(spindle::sleep(ms(20))))
                .collect();
            for task in fresh {
                task.await?;
            }
            assert!(start.elapsed() >= ms(20) && start.elapsed() < ms(1000));
            spindle::Ok(())
        })
        .unwrap();
    });
}

type Registered = (std::pin::Pin<Box<spindle::time::Sleep>>, Arc<WakeCount>);

/// Timers whose `Sleep` is dropped on another task or another thread than
/// the worker whose wheel holds them never fire (their waker is never
/// woken), while a control timer registered the same way does fire.
#[test]
fn dropped_sleeps_never_fire_even_when_dropped_elsewhere() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let deadline = Instant::now() + ms(300);
            // Register timers from many tasks, so both workers' wheels hold some.
            let registrars: Vec<Task<Registered>> = (0..64)
                .map(|_| {
                    spindle::spawn(async move {
                        let count = Arc::new(WakeCount::default());
                        let waker = Waker::from(count.clone());
                        let mut sleep = Box::pin(spindle::sleep_until(deadline));
                        let polled = sleep.as_mut().poll(&mut Context::from_waker(&waker));
                        assert!(polled.is_pending());
                        spindle::yield_now().await?;
                        spindle::Ok((sleep, count))
                    })
                })
                .collect();
            let mut registered = Vec::new();
            for task in registrars {
                registered.push(task.await?);
            }
            let (mut control, control_count) = registered.pop().unwrap();
            let counts: Vec<Arc<WakeCount>> = registered.iter().map(|(_, c)| c.clone()).collect();
            let on_thread = registered.split_off(registered.len() / 2);
            // Half dropped by another task, half by a plain thread.
            spindle::spawn(async move {
                drop(registered);
                spindle::Ok(())
            })
            .await?;
            std::thread::spawn(move || drop(on_thread)).join().unwrap();
            assert!(
                Instant::now() < deadline,
                "the machine is too slow for this test: the drops ended after the deadline"
            );
            spindle::sleep_until(deadline + ms(100)).await?;
            let woken: Vec<usize> = counts.iter().map(|c| c.get()).collect();
            assert!(
                woken.iter().all(|&n| n == 0),
                "dropped timers fired: {woken:?}"
            );
            assert!(control_count.get() >= 1, "the control timer must fire");
            let noop = Waker::from(Arc::new(WakeCount::default()));
            assert!(matches!(
                control.as_mut().poll(&mut Context::from_waker(&noop)),
                Poll::Ready(Ok(()))
            ));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Dropping a runtime while tasks sleep for 60 s returns promptly: the
/// sleeps are cancelled, and cleanup code that awaits a short sleep runs.
#[test]
fn shutdown_cancels_sleeps_and_cleanup_can_still_sleep() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .shutdown_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let cleaned = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<Task<()>> = (0..8)
            .map(|_| {
                let (started, cleaned) = (started.clone(), cleaned.clone());
                rt.spawn(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    match spindle::sleep(Duration::from_secs(60)).await {
                        Err(e) if e.is_cancelled() => {
                            let start = Instant::now();
                            spindle::sleep(ms(10)).await?;
                            assert!(start.elapsed() >= ms(10));
                            cleaned.fetch_add(1, Ordering::SeqCst);
                            Err(e)
                        }
                        other => other,
                    }
                })
            })
            .collect();
        let wait_start = Instant::now();
        while started.load(Ordering::SeqCst) < 8 {
            assert!(
                wait_start.elapsed() < Duration::from_secs(5),
                "tasks never started"
            );
            std::thread::sleep(ms(1));
        }
        std::thread::sleep(ms(10));
        let start = Instant::now();
        drop(rt);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "dropping the runtime took {took:?}"
        );
        assert_eq!(cleaned.load(Ordering::SeqCst), 8, "every cleanup sleep ran");
        for task in &tasks {
            assert!(task.cancelled(), "{task:?}");
        }
    });
}

/// Enormous durations never panic: `Duration::MAX`, deadlines decades or
/// millennia away and the farthest `Instant` the clock can express all
/// sleep until cancelled, and other timers keep working meanwhile.
#[test]
fn enormous_durations_sleep_until_cancelled() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let now = Instant::now();
            let mut farthest = Duration::from_secs(u64::MAX);
            while now.checked_add(farthest).is_none() {
                farthest /= 2;
            }
            let year = Duration::from_secs(365 * 24 * 3600);
            let mut sleepers: Vec<Task<()>> = vec![
                spindle::spawn(spindle::sleep(Duration::MAX)),
                spindle::spawn(spindle::sleep(Duration::from_secs(u64::MAX))),
                spindle::spawn(spindle::sleep(Duration::from_millis(u64::MAX))),
                spindle::spawn(spindle::sleep(year)),
                spindle::spawn(spindle::sleep(year * 3)),
                spindle::spawn(spindle::sleep(year * 100)),
                spindle::spawn(spindle::sleep_until(now + year * 1000)),
                spindle::spawn(spindle::sleep_until(now + farthest)),
            ];
            assert_eq!(spindle::sleep(Duration::MAX).deadline(), None);
            assert_eq!(
                spindle::sleep_until(now + farthest).deadline(),
                Some(now + farthest)
            );
            // Other timers still fire on time.
            let start = Instant::now();
            spindle::sleep(ms(30)).await?;
            let elapsed = start.elapsed();
            assert!(elapsed >= ms(30) && elapsed < ms(1000), "{elapsed:?}");
            for (i, task) in sleepers.iter().enumerate() {
                assert!(!task.done(), "sleeper {i} finished: {:?}", task.result());
            }
            for task in &sleepers {
                task.cancel_with("enough");
            }
            let start = Instant::now();
            for task in sleepers.drain(..) {
                let err = task.await.unwrap_err();
                assert_eq!(err.cancel_message(), Some("enough"));
            }
            assert!(start.elapsed() < ms(1000));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Polling a sleep on a thread with no runtime is a clear runtime error,
/// not a panic or a hang.
#[test]
fn sleep_outside_a_runtime_is_a_runtime_error() {
    for (what, sleep) in [
        ("sleep(10 ms)", spindle::sleep(ms(10))),
        ("sleep(0)", spindle::sleep(Duration::ZERO)),
        ("sleep(MAX)", spindle::sleep(Duration::MAX)),
        ("sleep_until(now)", spindle::sleep_until(Instant::now())),
    ] {
        match poll_once(sleep) {
            Poll::Ready(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Runtime, "{what}: {e:?}");
                assert!(!e.to_string().is_empty());
            }
            Poll::Ready(Ok(())) => panic!("{what}: slept outside a runtime"),
            Poll::Pending => panic!("{what}: pending outside a runtime (would hang)"),
        }
    }
}

/// A thread that entered the runtime (`Handle::enter`) but is not one of its
/// workers can sleep: its timer lives on the runtime and wakes the thread.
#[test]
fn sleep_on_a_thread_that_entered_the_runtime() {
    within_limit(|| {
        let rt = rt(2);
        let handle = rt.handle().clone();
        let (elapsed, outcome) = std::thread::spawn(move || {
            let _guard = handle.enter();
            struct Unpark(std::thread::Thread, AtomicBool);
            impl Wake for Unpark {
                fn wake(self: Arc<Self>) {
                    self.1.store(true, Ordering::SeqCst);
                    self.0.unpark();
                }
            }
            let unpark = Arc::new(Unpark(std::thread::current(), AtomicBool::new(false)));
            let waker = Waker::from(unpark.clone());
            let mut cx = Context::from_waker(&waker);
            let start = Instant::now();
            let mut sleep = Box::pin(spindle::sleep(ms(30)));
            loop {
                if let Poll::Ready(outcome) = sleep.as_mut().poll(&mut cx) {
                    return (start.elapsed(), outcome);
                }
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "the timer never woke the thread (woken: {})",
                    unpark.1.load(Ordering::SeqCst)
                );
                std::thread::park_timeout(ms(2000));
            }
        })
        .join()
        .unwrap();
        outcome.unwrap();
        assert!(elapsed >= ms(30), "{elapsed:?}");
        assert!(elapsed < ms(1000), "{elapsed:?}");
        drop(rt);
    });
}
