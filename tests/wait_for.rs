//! Spec section H: `wait_for` (`/work/shared/spec/asyncio-semantics.md`,
//! cases 50-54; case 55 needs `shield`, which does not exist yet).

mod common;
use common::{current, ms, rt, within_limit};

use spindle::time::duration_from_secs;
use spindle::{ErrorKind, Promise, Task};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A user error (asyncio's `FooException`).
#[derive(Debug)]
struct FooError;

impl std::fmt::Display for FooError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("foo")
    }
}

impl std::error::Error for FooError {}

/// Sleeps "forever"; on cancel, sleeps `cleanup` more, sets `done`, and
/// re-raises the cancel.
async fn slow_cleanup(cleanup: Duration, done: Arc<AtomicBool>) -> spindle::Result<&'static str> {
    match spindle::sleep(Duration::from_secs(10)).await {
        Err(e) if e.is_cancelled() => {
            let result = spindle::sleep(cleanup).await;
            done.store(true, Ordering::SeqCst);
            result?;
            Err(e)
        }
        Err(e) => Err(e),
        Ok(()) => Ok("slept 10 s"),
    }
}

/// Checks the caller is not left with a cancel request and can await.
async fn caller_is_clean() -> spindle::Result<()> {
    assert_eq!(current().cancelling(), 0, "the caller is left cancelling");
    spindle::sleep(ms(1)).await?;
    spindle::yield_now().await?;
    Ok(())
}

// -- case 50 ------------------------------------------------------------------

/// On timeout the inner is cancelled and wait_for waits for its cleanup
/// before failing with TimeoutError: 20 ms timeout + 50 ms cleanup fails at
/// ~70 ms. (WF::test_wait_for_waits_for_task_cancellation)
#[test]
fn case_50_wait_for_waits_for_cancellation_cleanup() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            // An inline future.
            let done = Arc::new(AtomicBool::new(false));
            let start = Instant::now();
            let err = spindle::wait_for(Some(ms(20)), slow_cleanup(ms(50), done.clone()))
                .await
                .unwrap_err();
            let elapsed = start.elapsed();
            assert!(err.is_timeout(), "{err:?}");
            assert_eq!(err.kind(), ErrorKind::Timeout);
            assert!(
                done.load(Ordering::SeqCst),
                "returned before the cleanup ended"
            );
            assert!(
                elapsed >= ms(65),
                "failed after {elapsed:?}, before the cleanup"
            );
            assert!(elapsed < ms(1000), "{elapsed:?}");
            caller_is_clean().await?;

            // A task.
            let done = Arc::new(AtomicBool::new(false));
            let task = spindle::spawn(slow_cleanup(ms(50), done.clone()));
            let start = Instant::now();
            let err = spindle::wait_for(Some(ms(20)), task.clone())
                .await
                .unwrap_err();
            let elapsed = start.elapsed();
            assert!(err.is_timeout(), "{err:?}");
            assert!(
                done.load(Ordering::SeqCst),
                "returned before the cleanup ended"
            );
            assert!(task.done() && task.cancelled());
            assert!(
                elapsed >= ms(65),
                "failed after {elapsed:?}, before the cleanup"
            );
            assert!(elapsed < ms(1000), "{elapsed:?}");
            caller_is_clean().await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 51 ------------------------------------------------------------------

/// If the inner swallows the cancel and returns v, wait_for returns v.
/// (WF::test_wait_for_cancel_suppressed)
#[test]
fn case_51_wait_for_returns_value_when_inner_swallows_cancel() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            async fn return_42() -> spindle::Result<u32> {
                match spindle::sleep(Duration::from_secs(10)).await {
                    Err(e) if e.is_cancelled() => Ok(42),
                    Err(e) => Err(e),
                    Ok(()) => Ok(0),
                }
            }
            let start = Instant::now();
            assert_eq!(spindle::wait_for(Some(ms(20)), return_42()).await?, 42);
            assert!(start.elapsed() >= ms(20) && start.elapsed() < ms(1000));
            caller_is_clean().await?;

            let task = spindle::spawn(return_42());
            assert_eq!(spindle::wait_for(Some(ms(20)), task.clone()).await?, 42);
            assert!(task.done());
            assert!(!task.cancelled(), "it returned a value");
            caller_is_clean().await?;

            // The same when the swallowing cleanup awaits first.
            let value = spindle::wait_for(Some(ms(10)), async {
                match spindle::sleep(Duration::from_secs(10)).await {
                    Err(e) if e.is_cancelled() => {
                        spindle::sleep(ms(10)).await?;
                        spindle::Ok("cleaned up")
                    }
                    other => other.map(|()| "slept"),
                }
            })
            .await?;
            assert_eq!(value, "cleaned up");
            caller_is_clean().await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 52 ------------------------------------------------------------------

/// If the inner fails with another error during cleanup, that error
/// propagates instead of TimeoutError.
/// (WF::test_wait_for_reraises_exception_during_cancellation)
#[test]
fn case_52_error_during_cleanup_replaces_the_timeout() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            async fn inner() -> spindle::Result<()> {
                // try: sleep(0.2) finally: raise FooException
                let _ = spindle::sleep(ms(200)).await;
                Err(spindle::Error::other(FooError))
            }
            let start = Instant::now();
            let err = spindle::wait_for(Some(ms(10)), inner()).await.unwrap_err();
            assert!(err.downcast_ref::<FooError>().is_some(), "{err:?}");
            assert!(!err.is_timeout() && !err.is_cancelled());
            assert!(start.elapsed() < ms(150), "the sleep was not cancelled");
            caller_is_clean().await?;

            let task = spindle::spawn(inner());
            let err = spindle::wait_for(Some(ms(10)), task.clone())
                .await
                .unwrap_err();
            assert!(err.downcast_ref::<FooError>().is_some(), "{err:?}");
            assert!(!task.cancelled());
            assert_eq!(task.state(), spindle::TaskState::Failed);
            caller_is_clean().await?;

            // A failure after a cleanup that awaited, too.
            let err = spindle::wait_for(Some(ms(10)), async {
                if let Err(e) = spindle::sleep(Duration::from_secs(10)).await {
                    assert!(e.is_cancelled());
                    spindle::sleep(ms(5)).await?;
                }
                Err::<(), _>(spindle::Error::other(FooError))
            })
            .await
            .unwrap_err();
            assert!(err.downcast_ref::<FooError>().is_some(), "{err:?}");
            caller_is_clean().await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 53 ------------------------------------------------------------------

/// Timeout <= 0 on an already-done awaitable gives its result.
/// (WF::test_wait_for_timeout_less_then_0_or_0_future_done)
#[test]
fn case_53_zero_limit_on_a_done_awaitable_gives_its_result() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            for limit in [Duration::ZERO, duration_from_secs(-1.0)?] {
                let promise = Promise::new();
                promise.set_result("done")?;
                assert_eq!(
                    spindle::wait_for(Some(limit), promise.clone()).await?,
                    "done"
                );
                assert!(promise.done() && !promise.cancelled());
                caller_is_clean().await?;

                let task = spindle::spawn(async { spindle::Ok("task done") });
                while !task.done() {
                    spindle::sleep(ms(1)).await?;
                }
                assert_eq!(
                    spindle::wait_for(Some(limit), task.clone()).await?,
                    "task done"
                );
                assert!(!task.cancelled());
                caller_is_clean().await?;

                let failed = spindle::spawn(async { Err::<(), _>(FooError) });
                while !failed.done() {
                    spindle::sleep(ms(1)).await?;
                }
                let err = spindle::wait_for(Some(limit), failed).await.unwrap_err();
                assert!(err.downcast_ref::<FooError>().is_some(), "{err:?}");
                caller_is_clean().await?;
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Timeout <= 0 on a task that has not started: it never runs its body, it
/// ends cancelled, and wait_for fails with TimeoutError.
/// (WF::test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started)
#[test]
fn case_53_zero_limit_on_an_unstarted_task_never_starts_it() {
    within_limit(|| {
        // One worker: the spawned task cannot start before wait_for runs.
        let rt = rt(1);
        rt.block_on(async {
            for limit in [Duration::ZERO, duration_from_secs(-1.0)?] {
                let started = Arc::new(AtomicBool::new(false));
                let flag = started.clone();
                let task = spindle::spawn(async move {
                    flag.store(true, Ordering::SeqCst);
                    spindle::Ok("ran")
                });
                let err = spindle::wait_for(Some(limit), task.clone())
                    .await
                    .unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                assert!(!started.load(Ordering::SeqCst), "the body ran");
                assert!(task.done() && task.cancelled());
                caller_is_clean().await?;
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Timeout <= 0 on a running task: it is cancelled, its cleanup is awaited,
/// then TimeoutError. (WF::test_wait_for_timeout_less_then_0_or_0,
/// test_wait_for_waits_for_task_cancellation_w_timeout_0)
#[test]
fn case_53_zero_limit_on_a_running_task_cancels_and_awaits_it() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            for limit in [Duration::ZERO, duration_from_secs(-1.0)?] {
                let running = Arc::new(AtomicBool::new(false));
                let cleaned = Arc::new(AtomicBool::new(false));
                let started = Promise::<()>::new();
                let (r, c, s) = (running.clone(), cleaned.clone(), started.clone());
                let task = spindle::spawn(async move {
                    r.store(true, Ordering::SeqCst);
                    s.set_result(())?;
                    let outcome = spindle::sleep(Duration::from_secs(10)).await;
                    // finally: (awaits, then marks not running)
                    spindle::sleep(ms(10)).await?;
                    r.store(false, Ordering::SeqCst);
                    c.store(true, Ordering::SeqCst);
                    outcome?;
                    spindle::Ok("done")
                });
                started.await?;
                let start = Instant::now();
                let err = spindle::wait_for(Some(limit), task.clone())
                    .await
                    .unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                assert!(task.done(), "wait_for returned before the task ended");
                assert!(task.cancelled(), "{:?}", task.state());
                assert!(cleaned.load(Ordering::SeqCst), "cleanup not awaited");
                assert!(!running.load(Ordering::SeqCst));
                assert!(start.elapsed() >= ms(10) && start.elapsed() < ms(1000));
                caller_is_clean().await?;
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The documented deviation for a zero limit on a plain (inline) future:
/// it runs until its first await point, which returns the cancellation, and
/// wait_for then fails with TimeoutError (docs/semantics.md).
#[test]
fn case_53_zero_limit_on_an_inline_future_runs_to_its_first_await() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let before = Arc::new(AtomicBool::new(false));
            let after = Arc::new(AtomicBool::new(false));
            let (b, a) = (before.clone(), after.clone());
            let start = Instant::now();
            let err = spindle::wait_for(Some(Duration::ZERO), async move {
                b.store(true, Ordering::SeqCst);
                let outcome = spindle::sleep(Duration::from_secs(10)).await;
                assert!(
                    outcome.as_ref().is_err_and(|e| e.is_cancelled()),
                    "{outcome:?}"
                );
                outcome?;
                a.store(true, Ordering::SeqCst);
                spindle::Ok(())
            })
            .await
            .unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            assert!(before.load(Ordering::SeqCst));
            assert!(!after.load(Ordering::SeqCst));
            assert!(start.elapsed() < ms(1000));
            caller_is_clean().await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 54 ------------------------------------------------------------------

/// No timeout means no limit. (WF::test_wait_for_blocking)
#[test]
fn case_54_no_limit_waits_as_long_as_needed() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let start = Instant::now();
            let waiting = spindle::wait_for(None, async {
                spindle::sleep(ms(60)).await?;
                spindle::Ok("done")
            });
            assert_eq!(waiting.scope().when(), None);
            assert_eq!(waiting.await?, "done");
            assert!(start.elapsed() >= ms(60));

            let task = spindle::spawn(async {
                spindle::sleep(ms(30)).await?;
                spindle::Ok(7)
            });
            assert_eq!(spindle::wait_for(None, task).await?, 7);
            // A limit too large for the clock is no limit either.
            let waiting = spindle::wait_for(Some(Duration::MAX), async {
                spindle::sleep(ms(5)).await?;
                spindle::Ok(8)
            });
            assert_eq!(waiting.scope().when(), None);
            assert_eq!(waiting.await?, 8);
            caller_is_clean().await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Cancelling the caller of wait_for cancels the inner, with or without a
/// limit, and the caller ends Cancelled with its message.
/// (WF::test_cancel_wait_for, test_cancel_blocking_wait_for)
#[test]
fn case_54_cancelling_the_caller_cancels_the_inner() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            for limit in [None, Some(Duration::from_secs(60))] {
                // The inner is a task blocked on a promise never set.
                let never = Promise::<u32>::new();
                let inner = spindle::spawn(never.clone());
                let waiter = spindle::spawn(spindle::wait_for(limit, inner.clone()));
                spindle::sleep(ms(10)).await?;
                let start = Instant::now();
                assert!(waiter.cancel_with("stop"));
                let err = waiter.clone().await.unwrap_err();
                assert!(err.is_cancelled(), "{limit:?}: {err:?}");
                assert_eq!(err.cancel_message(), Some("stop"));
                assert!(waiter.cancelled());
                assert!(inner.done() && inner.cancelled(), "{limit:?}: {inner:?}");
                assert!(never.cancelled(), "the promise the inner awaited");
                assert!(start.elapsed() < ms(1000));

                // The inner is an inline future.
                let cleaned = Arc::new(AtomicBool::new(false));
                let c = cleaned.clone();
                let waiter = spindle::spawn(spindle::wait_for(limit, async move {
                    let outcome = spindle::sleep(Duration::from_secs(60)).await;
                    c.store(true, Ordering::SeqCst);
                    outcome
                }));
                spindle::sleep(ms(10)).await?;
                waiter.cancel_with("stop inline");
                let err = waiter.clone().await.unwrap_err();
                assert!(err.is_cancelled(), "{limit:?}: {err:?}");
                assert_eq!(err.cancel_message(), Some("stop inline"));
                assert!(!err.is_timeout());
                assert!(cleaned.load(Ordering::SeqCst));
                assert!(waiter.cancelled());
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- a Task handle vs an inline future ------------------------------------------

/// wait_for of a Task handle and of an inline future: both give the value in
/// time, pass other errors unchanged, and on timeout both have their cleanup
/// awaited; the task's cleanup runs in the task (which ends cancelled), the
/// inline future's in the caller.
#[test]
fn wait_for_task_handle_vs_inline_future() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let caller = current().id();
            async fn work(ms_: u64) -> spindle::Result<(u64, spindle::TaskId)> {
                let me = current().id();
                match spindle::sleep(ms(ms_)).await {
                    Ok(()) => Ok((ms_, me)),
                    Err(e) => {
                        spindle::sleep(ms(10)).await?;
                        Err(e)
                    }
                }
            }

            // In time: the value.
            let (v, ran_in) = spindle::wait_for(Some(ms(500)), work(5)).await?;
            assert_eq!(
                (v, ran_in),
                (5, caller),
                "an inline future runs in the caller"
            );
            let task: Task<(u64, spindle::TaskId)> = spindle::spawn(work(5));
            let (v, ran_in) = spindle::wait_for(Some(ms(500)), task.clone()).await?;
            assert_eq!(v, 5);
            assert_eq!(ran_in, task.id(), "a task runs in itself");
            assert_ne!(ran_in, caller);

            // Another error: unchanged.
            let err = spindle::wait_for(Some(ms(500)), async { Err::<(), _>(FooError) })
                .await
                .unwrap_err();
            assert!(err.downcast_ref::<FooError>().is_some());
            let failing = spindle::spawn(async {
                spindle::sleep(ms(5)).await?;
                Err::<(), _>(spindle::Error::other(FooError))
            });
            let err = spindle::wait_for(Some(ms(500)), failing).await.unwrap_err();
            assert!(err.downcast_ref::<FooError>().is_some());

            // Timeout: both cleanups awaited.
            let done_inline = Arc::new(AtomicBool::new(false));
            let start = Instant::now();
            let err = spindle::wait_for(Some(ms(20)), slow_cleanup(ms(20), done_inline.clone()))
                .await
                .unwrap_err();
            assert!(err.is_timeout());
            assert!(done_inline.load(Ordering::SeqCst));
            assert!(start.elapsed() >= ms(40));

            let done_task = Arc::new(AtomicBool::new(false));
            let task = spindle::spawn(slow_cleanup(ms(20), done_task.clone()));
            let start = Instant::now();
            let err = spindle::wait_for(Some(ms(20)), task.clone())
                .await
                .unwrap_err();
            assert!(err.is_timeout());
            assert!(done_task.load(Ordering::SeqCst));
            assert!(start.elapsed() >= ms(40));
            assert!(task.cancelled(), "the timed-out task ends cancelled");
            let again = task.clone().await.unwrap_err();
            assert!(again.is_cancelled(), "awaiting it again gives its cancel");
            caller_is_clean().await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}
