//! Spec section I: timeout scopes, asyncio's `timeout` / `timeout_at`
//! (`/work/shared/spec/asyncio-semantics.md`, cases 58-70; the TaskGroup
//! part of case 70 waits for TaskGroup).

mod common;
use common::{current, ms, rt, within_limit};

use spindle::time::{duration_from_secs, Timeout};
use spindle::ErrorKind;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Runs `f` as the main task of a fresh runtime.
fn run_on<F>(workers: usize, f: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = spindle::Result<()>> + Send + 'static,
{
    within_limit(move || {
        let rt = rt(workers);
        rt.block_on(f()).unwrap();
    });
}

/// Checks the current task is not left with a cancel request and can await.
async fn task_is_clean() -> spindle::Result<()> {
    assert_eq!(current().cancelling(), 0, "the task is left cancelling");
    spindle::sleep(ms(1)).await?;
    spindle::yield_now().await?;
    Ok(())
}

/// Spawns a task that enters `scope` and sleeps `duration` in it; returns
/// once the scope is entered.
async fn spawn_sleeping_in(
    scope: &Timeout,
    duration: Duration,
) -> spindle::Result<spindle::Task<()>> {
    let entered = spindle::Promise::<()>::new();
    let (scope, signal) = (scope.clone(), entered.clone());
    let task = spindle::spawn(async move {
        scope
            .run(async move {
                signal.set_result(())?;
                spindle::sleep(duration).await
            })
            .await
    });
    entered.await?;
    Ok(task)
}

/// A user error (Python's `KeyError` / `ZeroDivisionError` in the tests).
#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyError {}

fn is_my_error(e: &spindle::Error) -> bool {
    e.downcast_ref::<MyError>().is_some()
}

type Log = Arc<Mutex<Vec<String>>>;

/// A named way to make a scope.
type Scoped = (&'static str, fn() -> Timeout);

fn push(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

// -- case 58 ------------------------------------------------------------------

/// On expiry the block sees Cancelled (its cleanup runs and may await), then
/// the scope turns it into TimeoutError; expired() is true and when() is the
/// deadline. (TO::test_timeout_basic, test_timeout_at_basic,
/// test_waiter_cancelled)
#[test]
fn case_58_expiry_cancels_the_block_then_gives_timeout() {
    run_on(2, || async {
        let log: Log = Log::default();
        let deadline = Instant::now() + ms(20);
        let scope = Timeout::at(Some(deadline));
        assert_eq!(scope.when(), Some(deadline));
        assert!(!scope.expired());
        let l = log.clone();
        let start = Instant::now();
        let err = scope
            .run(async move {
                match spindle::sleep(Duration::from_secs(10)).await {
                    Err(e) if e.is_cancelled() => {
                        push(&l, "cancelled");
                        spindle::sleep(ms(10)).await?;
                        push(&l, "cleanup slept");
                        Err(e)
                    }
                    other => other,
                }
            })
            .await
            .unwrap_err();
        let elapsed = start.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(entries(&log), ["cancelled", "cleanup slept"]);
        assert!(scope.expired());
        assert_eq!(scope.when(), Some(deadline));
        assert!(Instant::now() >= deadline + ms(10));
        assert!(elapsed < ms(1000), "{elapsed:?}");
        task_is_clean().await?;

        // timeout(): the same with a relative delay.
        let start = Instant::now();
        let err = spindle::timeout(ms(20), spindle::sleep(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert!(start.elapsed() >= ms(20) && start.elapsed() < ms(1000));
        task_is_clean().await?;

        // A block awaiting a task: the cancel reaches the task.
        let task = spindle::spawn(spindle::sleep(Duration::from_secs(10)));
        let err = spindle::timeout(ms(20), task.clone()).await.unwrap_err();
        assert!(err.is_timeout());
        assert!(task.cancelled());
        task_is_clean().await
    });
}

// -- case 59 ------------------------------------------------------------------

/// A scope with no deadline never fires. (TO::test_timeout_disabled,
/// test_timeout_at_disabled)
#[test]
fn case_59_scope_without_deadline_never_fires() {
    run_on(2, || async {
        let scope = Timeout::at(None);
        let value = scope
            .run(async {
                spindle::sleep(ms(50)).await?;
                spindle::Ok(1)
            })
            .await?;
        assert_eq!(value, 1);
        assert!(!scope.expired());
        assert_eq!(scope.when(), None);

        let future = spindle::timeout_at(None, async {
            spindle::sleep(ms(20)).await?;
            spindle::Ok(2)
        });
        assert_eq!(future.scope().when(), None);
        assert_eq!(future.await?, 2);

        // A delay too large for the clock is no deadline either.
        let scope = Timeout::after(Duration::MAX);
        assert_eq!(scope.when(), None);
        assert_eq!(scope.run(async { spindle::Ok(3) }).await?, 3);
        assert!(!scope.expired());
        let scope = Timeout::after(duration_from_secs(f64::INFINITY)?);
        assert_eq!(scope.when(), None);
        task_is_clean().await
    });
}

// -- case 60 ------------------------------------------------------------------

/// A deadline of 0 or in the past fires at the next await point: code before
/// it runs, the await returns Cancelled, the scope gives TimeoutError.
/// (TO::test_timeout_zero, test_timeout_zero_sleep_zero,
/// test_timeout_in_the_past_sleep_zero)
#[test]
fn case_60_zero_or_past_deadline_fires_at_the_next_await() {
    run_on(2, || async {
        let kinds: [Scoped; 3] = [
            ("timeout(0)", || Timeout::after(Duration::ZERO)),
            ("timeout(-11 s)", || {
                Timeout::after(duration_from_secs(-11.0).unwrap())
            }),
            ("timeout_at(past)", || {
                Timeout::at(Some(Instant::now() - ms(11)))
            }),
        ];
        let mut failures = Vec::new();
        for (what, make) in kinds {
            for await_point in ["sleep(0)", "yield_now", "sleep(10 s)"] {
                let log: Log = Log::default();
                let t0 = Instant::now();
                let scope = make();
                let l = log.clone();
                let outcome = scope
                    .run(async move {
                        push(&l, "before");
                        let result = match await_point {
                            "sleep(0)" => spindle::sleep(Duration::ZERO).await,
                            "yield_now" => spindle::yield_now().await,
                            _ => spindle::sleep(Duration::from_secs(10)).await,
                        };
                        push(&l, format!("await: cancelled={}", result.is_err()));
                        result?;
                        push(&l, "after");
                        spindle::Ok(())
                    })
                    .await;
                let t1 = Instant::now();
                if !outcome.as_ref().is_err_and(|e| e.is_timeout()) {
                    failures.push(format!(
                        "{what} around {await_point}: {outcome:?}, log {:?}",
                        entries(&log)
                    ));
                    continue;
                }
                assert_eq!(entries(&log), ["before", "await: cancelled=true"]);
                assert!(scope.expired(), "{what}");
                assert!(scope.when().unwrap() <= t1, "{what}");
                assert!(t1 - t0 < ms(1000), "{what} around {await_point}");
                task_is_clean().await?;
            }
        }
        assert!(failures.is_empty(), "no timeout: {failures:#?}");
        spindle::Ok(())
    });
}

/// A deadline of 0 or in the past with no await point in the block: the
/// block exits normally, the scope is not expired (it never got to fire),
/// and the task is not left cancelled. (Checked with CPython 3.13.)
#[test]
fn case_60_block_without_await_exits_normally() {
    run_on(2, || async {
        for (what, scope) in [
            ("timeout(0)", Timeout::after(Duration::ZERO)),
            (
                "timeout_at(past)",
                Timeout::at(Some(Instant::now() - ms(5))),
            ),
        ] {
            assert_eq!(scope.run(async { spindle::Ok(5) }).await?, 5);
            assert!(
                !scope.expired(),
                "{what}: expired, though it never got to fire"
            );
            task_is_clean().await?;
            // Later awaits of the task are not cancelled.
            let start = Instant::now();
            spindle::sleep(ms(10)).await?;
            assert!(start.elapsed() >= ms(10));
        }
        spindle::Ok(())
    });
}

// -- case 61 ------------------------------------------------------------------

/// reschedule: later lets the block finish, earlier fires as soon as
/// possible, None disables the deadline.
#[test]
fn case_61_reschedule_moves_the_deadline() {
    run_on(2, || async {
        // Later: the block finishes.
        let scope = Timeout::after(ms(20));
        let inner = scope.clone();
        let value = scope
            .run(async move {
                inner.reschedule(Some(Instant::now() + Duration::from_secs(10)))?;
                spindle::sleep(ms(60)).await?;
                spindle::Ok("finished")
            })
            .await?;
        assert_eq!(value, "finished");
        assert!(!scope.expired());

        // Earlier: fires at the new deadline.
        let scope = Timeout::after(Duration::from_secs(10));
        let inner = scope.clone();
        let start = Instant::now();
        let new_deadline = start + ms(20);
        let err = scope
            .run(async move {
                inner.reschedule(Some(new_deadline))?;
                spindle::sleep(Duration::from_secs(10)).await
            })
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(Instant::now() >= new_deadline);
        assert!(start.elapsed() < ms(1000));
        assert_eq!(scope.when(), Some(new_deadline));
        assert!(scope.expired());
        task_is_clean().await?;

        // Into the past: fires at the next await point.
        let scope = Timeout::after(Duration::from_secs(10));
        let inner = scope.clone();
        let start = Instant::now();
        let err = scope
            .run(async move {
                inner.reschedule(Some(Instant::now() - ms(1)))?;
                spindle::sleep(Duration::from_secs(10)).await
            })
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(start.elapsed() < ms(1000));
        task_is_clean().await?;

        // None: disabled.
        let scope = Timeout::after(ms(20));
        let inner = scope.clone();
        scope
            .run(async move {
                inner.reschedule(None)?;
                assert_eq!(inner.when(), None);
                spindle::sleep(ms(60)).await
            })
            .await?;
        assert!(!scope.expired());
        assert_eq!(scope.when(), None);
        task_is_clean().await
    });
}

/// A deadline moved into the past from outside the block fires at once,
/// though the block is suspended: asyncio's `reschedule` schedules the
/// expiry with `call_soon`, which runs after the caller's step, not at the
/// block's next await. Moved from another task, and from a thread outside
/// the runtime. (Checked with CPython 3.13: a block sleeping 5 s under
/// `timeout(10)`, rescheduled to `loop.time() - 1` by another task after
/// 50 ms, times out after 0.05 s.)
#[test]
fn case_61_a_past_deadline_set_from_outside_fires_at_once() {
    run_on(2, || async {
        for from_plain_thread in [false, true] {
            let scope = Timeout::after(Duration::from_secs(100));
            let task = spawn_sleeping_in(&scope, Duration::from_secs(50)).await?;
            let start = Instant::now();
            let past = Some(start - ms(1));
            if from_plain_thread {
                let s = scope.clone();
                std::thread::spawn(move || s.reschedule(past))
                    .join()
                    .expect("the rescheduling thread")?;
            } else {
                scope.reschedule(past)?;
            }
            let err = task.clone().await.unwrap_err();
            assert!(
                err.is_timeout(),
                "{err:?} (from a plain thread: {from_plain_thread})"
            );
            assert!(scope.expired());
            assert!(!task.cancelled(), "the task failed with a timeout");
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited for the block's sleep: {:?}",
                start.elapsed()
            );
        }
        spindle::Ok(())
    });
}

/// A block that overruns its deadline without suspending finishes, and the
/// scope is not expired: asyncio's timer can only run between task steps,
/// and the scope's exit cancels it. Once the block does suspend after the
/// deadline, the scope expires. On two workers too, where another worker
/// could fire a timer while the block runs (the timer is armed only when
/// the block first suspends). (Checked with CPython 3.13: `time.sleep(0.05)`
/// under `timeout(0.01)` finishes with `expired()` false; followed by
/// `await asyncio.sleep(0.001)` it raises TimeoutError.)
#[test]
fn case_60_a_block_overrunning_its_deadline_without_suspending_finishes_unexpired() {
    fn busy(duration: Duration) {
        let start = Instant::now();
        while start.elapsed() < duration {
            std::hint::spin_loop();
        }
    }
    for workers in [1, 2] {
        run_on(workers, || async {
            // A delay, and a deadline (which may have passed at entry, so
            // the scope looks at the clock there).
            for scope in [
                Timeout::after(ms(10)),
                Timeout::at(Some(Instant::now() + ms(10))),
            ] {
                let value = scope
                    .run(async {
                        busy(ms(50));
                        spindle::Ok("finished")
                    })
                    .await?;
                assert_eq!(value, "finished");
                assert!(!scope.expired());
                task_is_clean().await?;
            }
            let scope = Timeout::after(ms(10));
            let err = scope
                .run(async {
                    busy(ms(50));
                    spindle::sleep(ms(1)).await?;
                    spindle::Ok("not reached")
                })
                .await
                .unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            assert!(scope.expired());
            task_is_clean().await
        });
    }
}

/// A past deadline fires only at the next await point (asyncio schedules
/// `_on_timeout` with `call_soon`): until then the scope is not expired and
/// can still be moved, and then the block finishes. (Checked with CPython
/// 3.13.)
#[test]
fn case_61_past_deadline_can_be_moved_before_the_next_await() {
    run_on(2, || async {
        let scope = Timeout::after(Duration::ZERO);
        let inner = scope.clone();
        let value = scope
            .run(async move {
                assert!(!inner.expired(), "expired before any await point");
                inner.reschedule(Some(Instant::now() + Duration::from_secs(10)))?;
                spindle::sleep(ms(10)).await?;
                spindle::Ok("finished")
            })
            .await?;
        assert_eq!(value, "finished");
        assert!(!scope.expired());
        task_is_clean().await?;

        let scope = Timeout::after(Duration::from_secs(10));
        let inner = scope.clone();
        scope
            .run(async move {
                inner.reschedule(Some(Instant::now() - Duration::from_secs(1)))?;
                assert!(!inner.expired(), "expired before any await point");
                inner.reschedule(None)?;
                spindle::sleep(ms(10)).await
            })
            .await?;
        assert!(!scope.expired());
        task_is_clean().await
    });
}

/// reschedule from another task while the block runs, then a cancel from
/// outside: Cancelled, not expired. (TO::test_reschedule)
#[test]
fn case_61_reschedule_from_another_task() {
    run_on(2, || async {
        let deadline1 = Instant::now() + Duration::from_secs(10);
        let deadline2 = deadline1 + Duration::from_secs(20);
        let scope = Timeout::at(Some(deadline1));
        let task = spawn_sleeping_in(&scope, Duration::from_secs(50)).await?;
        assert_eq!(scope.when(), Some(deadline1));
        scope.reschedule(Some(deadline2))?;
        assert_eq!(scope.when(), Some(deadline2));
        scope.reschedule(None)?;
        assert_eq!(scope.when(), None);
        task.cancel();
        let err = task.clone().await.unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(task.cancelled());
        assert!(!scope.expired());
        // Moved to a near deadline from outside: it fires.
        let scope = Timeout::after(Duration::from_secs(10));
        let task = spawn_sleeping_in(&scope, Duration::from_secs(50)).await?;
        let start = Instant::now();
        scope.reschedule(Some(Instant::now() + ms(20)))?;
        let err = task.clone().await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(!task.cancelled(), "the task failed with a timeout");
        assert!(start.elapsed() >= ms(20) && start.elapsed() < ms(1000));
        assert!(scope.expired());
        spindle::Ok(())
    });
}

// -- case 62 ------------------------------------------------------------------

/// reschedule before entry, after exit, while expiring or after expiry is an
/// invalid-state error; a scope can be entered once.
/// (TO::test_timeout_not_entered, _finished, _expired, _expiring,
/// test_timeout_double_enter, test_timeout_already_entered)
#[test]
fn case_62_reschedule_and_reentry_errors() {
    run_on(2, || async {
        let later = || Some(Instant::now() + ms(20));

        // Not entered.
        let scope = Timeout::after(ms(10));
        let err = scope.reschedule(later()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
        assert!(!scope.expired());

        // Finished.
        let scope = Timeout::after(ms(10));
        scope.run(async { spindle::Ok(()) }).await?;
        let err = scope.reschedule(later()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
        assert!(scope.reschedule(None).is_err());

        // Expired.
        let scope = Timeout::after(ms(10));
        let err = scope
            .run(spindle::sleep(Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        let err = scope.reschedule(later()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
        assert!(scope.expired());

        // Expiring: inside the block, after the cancel was delivered.
        let scope = Timeout::after(ms(10));
        let inner = scope.clone();
        scope
            .run(async move {
                let err = spindle::sleep(Duration::from_secs(1)).await.unwrap_err();
                assert!(err.is_cancelled());
                assert!(inner.expired());
                let err = inner.reschedule(later()).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
                spindle::Ok(())
            })
            .await?;
        task_is_clean().await?;

        // Entered twice: after it finished, and while it is active.
        let scope = Timeout::after(ms(100));
        scope.run(async { spindle::Ok(()) }).await?;
        let err = scope.run(async { spindle::Ok(()) }).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
        let scope = Timeout::after(ms(100));
        let again = scope.clone();
        scope
            .run(async move {
                let err = again.run(async { spindle::Ok(()) }).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
                // The active scope is still active.
                let rescheduled = again.reschedule(None);
                assert!(
                    rescheduled.is_ok(),
                    "a refused second entry ended the active scope: {rescheduled:?}"
                );
                spindle::Ok(())
            })
            .await?;
        task_is_clean().await
    });
}

/// A refused second entry leaves the active scope armed: it still fires at
/// its deadline. (TO::test_timeout_already_entered)
#[test]
fn case_62_refused_reentry_leaves_the_active_scope_armed() {
    run_on(2, || async {
        let scope = Timeout::after(ms(30));
        let again = scope.clone();
        let start = Instant::now();
        let outcome = scope
            .run(async move {
                let err = again.run(async { spindle::Ok(()) }).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
                assert!(!again.expired());
                spindle::sleep(ms(300)).await
            })
            .await;
        let elapsed = start.elapsed();
        assert!(
            outcome.as_ref().is_err_and(|e| e.is_timeout()),
            "the scope must still fire at 30 ms: got {outcome:?} after {elapsed:?}"
        );
        assert!(elapsed < ms(300), "{elapsed:?}");
        assert!(scope.expired());
        task_is_clean().await
    });
}

/// A timeout scope outside a task is a runtime error, and the scope stays
/// not entered. (TO::test_timeout_without_task)
#[test]
fn case_62_scope_outside_a_task_is_a_runtime_error() {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let scope = Timeout::after(ms(10));
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let mut future = Box::pin(scope.run(async move {
        r.store(true, Ordering::SeqCst);
        spindle::Ok(())
    }));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Runtime, "{e:?}"),
        other => panic!("expected a runtime error, got {other:?}"),
    }
    assert!(!ran.load(Ordering::SeqCst), "the block ran outside a task");
    let err = scope.reschedule(Some(Instant::now())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
}

// -- case 63 ------------------------------------------------------------------

/// Nested, inner shorter: the inner fails with TimeoutError, which the block
/// can catch; the outer fires later at its own deadline.
#[test]
fn case_63_nested_inner_shorter_inner_times_out_outer_later() {
    run_on(2, || async {
        let start = Instant::now();
        let outer = Timeout::after(ms(250));
        let inner = Timeout::after(ms(20));
        let (o, i) = (outer.clone(), inner.clone());
        let err = outer
            .run(async move {
                let err = i
                    .run(spindle::sleep(Duration::from_secs(1)))
                    .await
                    .unwrap_err();
                let at = start.elapsed();
                assert!(err.is_timeout(), "the inner gives a timeout: {err:?}");
                assert!(at >= ms(20) && at < ms(250), "inner fired at {at:?}");
                assert!(i.expired());
                assert!(!o.expired());
                assert_eq!(current().cancelling(), 0);
                // Caught; the block goes on until the outer deadline.
                spindle::sleep(Duration::from_secs(10)).await
            })
            .await
            .unwrap_err();
        let elapsed = start.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(outer.expired() && inner.expired());
        assert!(elapsed >= ms(250) && elapsed < ms(1500), "{elapsed:?}");
        task_is_clean().await
    });
}

// -- case 64 ------------------------------------------------------------------

/// Nested, same deadline: the inner lets Cancelled through; only the
/// outermost scope turns it into TimeoutError; both are expired, since both
/// timers are due before the task runs again. (TO::test_nested_timeouts)
///
/// Repeated, on one worker and on two: on two workers the outer timer's
/// cancel must not let the task run (on the other worker) before the inner
/// timer, due at the same tick, has fired too.
#[test]
fn case_64_nested_equal_deadlines_only_outermost_converts() {
    for workers in [1, 2] {
        run_on(workers, move || async move {
            let mut wrong = Vec::new();
            for round in 0..20 {
                let deadline = Instant::now() + ms(5);
                let outer = Timeout::at(Some(deadline));
                let inner = Timeout::at(Some(deadline));
                let seen = Arc::new(Mutex::new(None));
                let (i, s) = (inner.clone(), seen.clone());
                let err = outer
                    .run(async move {
                        let result = i.run(spindle::sleep(Duration::from_secs(10))).await;
                        *s.lock().unwrap() = Some(result.as_ref().map_err(|e| e.kind()).err());
                        result
                    })
                    .await
                    .unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                assert_eq!(
                    *seen.lock().unwrap(),
                    Some(Some(ErrorKind::Cancelled)),
                    "the inner scope lets the cancel through"
                );
                if !(outer.expired() && inner.expired()) {
                    wrong.push(format!(
                        "round {round}: outer.expired()={} inner.expired()={}",
                        outer.expired(),
                        inner.expired()
                    ));
                }
                task_is_clean().await?;
            }
            assert!(
                wrong.is_empty(),
                "{workers} workers: both scopes must be expired: {wrong:#?}"
            );
            spindle::Ok(())
        });
    }
}

/// Nested, outer shorter: the inner (not expired) lets Cancelled through and
/// the outer turns it into TimeoutError; with three levels only the
/// outermost expired one converts.
#[test]
fn case_64_nested_outer_shorter_inner_lets_cancel_through() {
    run_on(2, || async {
        let start = Instant::now();
        let outer = Timeout::after(ms(20));
        let middle = Timeout::after(Duration::from_secs(10));
        let inner = Timeout::after(Duration::from_secs(20));
        let log: Log = Log::default();
        let (m, i, l) = (middle.clone(), inner.clone(), log.clone());
        let err = outer
            .run(async move {
                let l2 = l.clone();
                let result = m
                    .run(async move {
                        let result = i.run(spindle::sleep(Duration::from_secs(30))).await;
                        push(
                            &l2,
                            format!("inner: {:?}", result.as_ref().map_err(|e| e.kind())),
                        );
                        result
                    })
                    .await;
                push(
                    &l,
                    format!("middle: {:?}", result.as_ref().map_err(|e| e.kind())),
                );
                result
            })
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(
            entries(&log),
            ["inner: Err(Cancelled)", "middle: Err(Cancelled)"]
        );
        assert!(outer.expired());
        assert!(!middle.expired() && !inner.expired());
        assert!(start.elapsed() >= ms(20) && start.elapsed() < ms(1000));
        task_is_clean().await
    });
}

/// Both deadlines pass while the task is busy (blocking): at its next await
/// both scopes have fired; the inner lets Cancelled through (another cancel
/// request is left) and the outer converts it. (TO::test_nested_timeouts_loop_busy,
/// checked with CPython 3.13: the inner sees CancelledError.)
#[test]
fn case_64_both_deadlines_pass_while_busy() {
    run_on(1, || async {
        let start = Instant::now();
        let outer = Timeout::after(ms(50));
        let inner = Timeout::after(ms(10));
        let log: Log = Log::default();
        let (i, l) = (inner.clone(), log.clone());
        let err = outer
            .run(async move {
                let result = i
                    .run(async {
                        std::thread::sleep(ms(80));
                        spindle::sleep(Duration::from_secs(1)).await
                    })
                    .await;
                push(
                    &l,
                    format!("inner: {:?}", result.as_ref().map_err(|e| e.kind())),
                );
                result?;
                push(&l, "after inner");
                spindle::sleep(Duration::from_secs(10)).await
            })
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(entries(&log), ["inner: Err(Cancelled)"]);
        assert!(inner.expired() && outer.expired());
        assert!(start.elapsed() < ms(1000));
        task_is_clean().await
    });
}

// -- case 65 ------------------------------------------------------------------

/// A cancel from outside while the scope is active but not expired gives
/// Cancelled with its message, and expired() stays false.
/// (TO::test_foreign_cancel_doesnt_timeout_if_not_expired)
#[test]
fn case_65_foreign_cancel_is_not_a_timeout() {
    run_on(2, || async {
        // The task cancels itself inside the scope.
        let scope = Timeout::after(Duration::from_secs(10));
        let err = scope
            .run(async {
                current().cancel_with("foreign");
                spindle::sleep(Duration::from_secs(10)).await
            })
            .await
            .unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(!err.is_timeout());
        assert_eq!(err.cancel_message(), Some("foreign"));
        assert!(!scope.expired());
        assert_eq!(current().cancelling(), 1, "the foreign request stays");
        current().uncancel();

        // Another task cancels it while it sleeps in the scope.
        let scope = Timeout::after(Duration::from_secs(10));
        let task = spawn_sleeping_in(&scope, Duration::from_secs(10)).await?;
        let start = Instant::now();
        task.cancel_with("from outside");
        let err = task.clone().await.unwrap_err();
        assert_eq!(err.cancel_message(), Some("from outside"));
        assert!(task.cancelled());
        assert!(!scope.expired());
        assert!(start.elapsed() < ms(1000));
        task_is_clean().await
    });
}

/// After a caught cancel (cancelling() stays 1), a scope entered in the
/// cleanup still converts its own expiry into TimeoutError, and a new cancel
/// inside it passes through. (TO::test_timeout_after_cancellation,
/// test_cancel_in_timeout_after_cancellation)
#[test]
fn case_65_scope_in_cleanup_after_a_caught_cancel() {
    run_on(2, || async {
        current().cancel();
        let err = spindle::sleep(Duration::from_secs(1)).await.unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(current().cancelling(), 1);

        let err = spindle::timeout(ms(5), spindle::sleep(Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(current().cancelling(), 1);

        let err = spindle::timeout(Duration::from_secs(1), async {
            current().cancel_with("again");
            spindle::sleep(Duration::from_secs(2)).await
        })
        .await
        .unwrap_err();
        assert!(err.is_cancelled() && !err.is_timeout(), "{err:?}");
        assert_eq!(err.cancel_message(), Some("again"));
        assert_eq!(current().cancelling(), 2);
        current().uncancel();
        current().uncancel();
        task_is_clean().await
    });
}

// -- case 68 ------------------------------------------------------------------

/// Another error passes through unchanged and the scope is not expired; if
/// the block fails with another error after expiry, that error wins.
/// (TO::test_foreign_exception_passed, test_foreign_exception_on_timeout)
#[test]
fn case_68_other_errors_pass_through() {
    run_on(2, || async {
        let scope = Timeout::after(ms(10));
        let err = scope
            .run(async { Err::<(), _>(MyError) })
            .await
            .unwrap_err();
        assert!(is_my_error(&err), "{err:?}");
        assert!(!scope.expired());

        // try: sleep(1) finally: 1/0
        let scope = Timeout::after(ms(10));
        let err = scope
            .run(async {
                let _ = spindle::sleep(Duration::from_secs(1)).await;
                Err::<(), _>(spindle::Error::other(MyError))
            })
            .await
            .unwrap_err();
        assert!(is_my_error(&err), "the later error wins: {err:?}");
        assert!(scope.expired());
        task_is_clean().await?;

        // The same after a cleanup that awaited.
        let scope = Timeout::after(ms(10));
        let err = scope
            .run(async {
                if spindle::sleep(Duration::from_secs(1)).await.is_err() {
                    spindle::sleep(ms(5)).await?;
                }
                Err::<(), _>(spindle::Error::other(MyError))
            })
            .await
            .unwrap_err();
        assert!(is_my_error(&err), "{err:?}");
        assert!(scope.expired());
        task_is_clean().await
    });
}

// -- case 69 ------------------------------------------------------------------

/// A block that swallows the Cancelled after expiry exits normally: no
/// TimeoutError; the scope is expired and the task not left cancelled.
/// (Checked with CPython 3.13.)
#[test]
fn case_69_swallowed_cancel_exits_normally() {
    run_on(2, || async {
        let scope = Timeout::after(ms(10));
        let value = scope
            .run(async {
                match spindle::sleep(Duration::from_secs(1)).await {
                    Err(e) if e.is_cancelled() => spindle::Ok(7),
                    other => other.map(|()| 0),
                }
            })
            .await?;
        assert_eq!(value, 7);
        assert!(scope.expired());
        task_is_clean().await?;

        // Swallowed, then more awaits in the block run normally.
        let scope = Timeout::after(ms(10));
        let start = Instant::now();
        let value = scope
            .run(async {
                let _ = spindle::sleep(Duration::from_secs(1)).await;
                spindle::sleep(ms(20)).await?;
                spindle::Ok("went on")
            })
            .await?;
        assert_eq!(value, "went on");
        assert!(start.elapsed() >= ms(30));
        assert!(scope.expired());
        task_is_clean().await
    });
}

// -- case 70 ------------------------------------------------------------------

/// The enclosing task is not left cancelled: after the scope converted its
/// own cancel, cancelling() is back to 0, later awaits run, and the task
/// ends with its value. (TO::test_outer_task_is_not_cancelled; the TaskGroup
/// half of case 70 waits for TaskGroup.)
#[test]
fn case_70_enclosing_task_not_left_cancelled() {
    run_on(2, || async {
        let task = spindle::spawn(async {
            let err = spindle::timeout(ms(1), spindle::sleep(Duration::from_secs(10)))
                .await
                .unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            assert_eq!(current().cancelling(), 0);
            let start = Instant::now();
            spindle::sleep(ms(5)).await?;
            assert!(start.elapsed() >= ms(5));
            spindle::Ok("done")
        });
        assert_eq!(task.clone().await?, "done");
        assert!(task.done());
        assert!(!task.cancelled());
        assert_eq!(task.cancelling(), 0);

        // Many scopes in a row in the same task.
        for _ in 0..5 {
            let err = spindle::timeout(ms(2), spindle::sleep(Duration::from_secs(10)))
                .await
                .unwrap_err();
            assert!(err.is_timeout());
            assert_eq!(current().cancelling(), 0);
        }
        task_is_clean().await
    });
}

// -- when() / expired() -------------------------------------------------------------

/// when() reports the deadline before, during and after the scope; a scope
/// that finished in time is not expired. (TO::test_timeout_not_called)
#[test]
fn when_and_expired() {
    run_on(2, || async {
        let t0 = Instant::now();
        let scope = Timeout::after(Duration::from_secs(10));
        let t1 = Instant::now();
        let when = scope.when().unwrap();
        assert!(when >= t0 + Duration::from_secs(10) && when <= t1 + Duration::from_secs(10));
        let inner = scope.clone();
        scope
            .run(async move {
                assert_eq!(inner.when(), Some(when));
                assert!(!inner.expired());
                spindle::sleep(ms(10)).await
            })
            .await?;
        assert!(!scope.expired());
        assert_eq!(scope.when(), Some(when));
        assert!(when > Instant::now());

        let future = spindle::timeout(ms(10), spindle::sleep(Duration::from_secs(1)));
        let scope = future.scope().clone();
        assert!(!scope.expired());
        assert!(future.await.unwrap_err().is_timeout());
        assert!(scope.expired());
        task_is_clean().await
    });
}
