//! Spec section D: `shield` (`/work/shared/spec/asyncio-semantics.md`,
//! cases 29-31), case 55 (`wait_for(shield(t))`), and shielding a plain
//! future. Each case was checked against CPython 3.13.

mod common;
use common::{current, rt, within_limit};

use spindle::{Error, ErrorKind, Promise};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// -- case 29 ------------------------------------------------------------------

/// A task awaits shield(inner) and is cancelled: it gets Cancelled at once
/// (while inner is still pending) and code after the await does not run;
/// inner is not told and runs to completion. (TT::test_shield_effect)
#[test]
fn case_29_cancelled_awaiter_gets_cancelled_at_once_inner_keeps_running() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let proof = Arc::new(AtomicUsize::new(0));
            let waiter = Promise::<()>::new();
            let inner = {
                let (proof, waiter) = (proof.clone(), waiter.clone());
                spindle::spawn(async move {
                    waiter.await?;
                    proof.fetch_add(1, Ordering::SeqCst);
                    spindle::Ok(7u32)
                })
            };
            let started = Promise::<()>::new();
            let outer = {
                let (proof, inner, started) = (proof.clone(), inner.clone(), started.clone());
                spindle::spawn(async move {
                    started.set_result(())?;
                    let value = spindle::shield(inner).await?;
                    proof.fetch_add(100, Ordering::SeqCst);
                    spindle::Ok(value)
                })
            };
            started.await?;
            assert!(outer.cancel_with("bye"));
            let err = outer.clone().await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            assert_eq!(err.cancel_message(), Some("bye"));
            assert!(outer.cancelled());
            // The awaiter ended while the shielded task is still waiting.
            assert!(!inner.done(), "the shield returned at once");
            assert_eq!(inner.cancelling(), 0, "the cancel was not passed on");
            assert_eq!(proof.load(Ordering::SeqCst), 0);

            waiter.set_result(())?;
            assert_eq!(inner.clone().await?, 7);
            assert!(!inner.cancelled());
            assert_eq!(
                proof.load(Ordering::SeqCst),
                1,
                "inner ran, outer did not go on"
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The awaiter catches the Cancelled from the shield and goes on; a later
/// await of the same (still running) task returns its value.
#[test]
fn case_29_awaiter_catches_cancel_and_awaits_inner_again() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let waiter = Promise::<u32>::new();
            let inner = spindle::spawn(waiter.clone());
            let started = Promise::<()>::new();
            let outer = {
                let (inner, started, waiter) = (inner.clone(), started.clone(), waiter.clone());
                spindle::spawn(async move {
                    started.set_result(())?;
                    let first = match spindle::shield(inner.clone()).await {
                        Err(e) if e.is_cancelled() => "cancelled".to_string(),
                        other => format!("unexpected {other:?}"),
                    };
                    assert!(!inner.done());
                    // Cleanup may await: later awaits run normally.
                    waiter.set_result(5)?;
                    let value = inner.await?;
                    spindle::Ok((first, value, current().cancelling()))
                })
            };
            started.await?;
            outer.cancel();
            let (first, value, cancelling) = outer.clone().await?;
            assert_eq!(first, "cancelled");
            assert_eq!(value, 5);
            assert_eq!(cancelling, 1, "catching does not withdraw the request");
            assert!(
                !outer.cancelled(),
                "it caught the cancel and returned a value"
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Without a cancel, awaiting a shield gives the inner task's value.
/// (TT::test_shield_result)
#[test]
fn case_29_shield_without_cancel_gives_the_value() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let inner = spindle::spawn(async {
                spindle::sleep(Duration::from_millis(5)).await?;
                spindle::Ok(42u32)
            });
            assert_eq!(spindle::shield(inner.clone()).await?, 42);
            assert!(inner.done());
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 30 ------------------------------------------------------------------

/// The inner task fails: awaiting the shield fails with the inner's error
/// (the same error value). (TT::test_shield_exception)
#[test]
fn case_30_inner_failure_propagates_through_shield() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let go = Promise::<()>::new();
            let inner = {
                let go = go.clone();
                spindle::spawn(async move {
                    go.await?;
                    Err::<u32, _>(Error::msg("expected"))
                })
            };
            let awaiter = {
                let inner = inner.clone();
                spindle::spawn(async move { spindle::shield(inner).await })
            };
            spindle::yield_now().await?;
            go.set_result(())?;
            let err = awaiter.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Other);
            assert_eq!(err.to_string(), "expected");
            let own = inner.exception()?.expect("inner failed");
            assert!(
                err.ptr_eq(&own),
                "the shield gives the inner's error itself"
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The inner task is cancelled directly: the shield is cancelled too, and the
/// awaiter itself is not left with a cancel request. (TT::test_shield_cancel_inner)
#[test]
fn case_30_inner_cancelled_directly_cancels_the_shield() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let inner_started = Promise::<()>::new();
            let inner = {
                let s = inner_started.clone();
                spindle::spawn(async move {
                    s.set_result(())?;
                    spindle::sleep(Duration::from_secs(30)).await?;
                    spindle::Ok(1u32)
                })
            };
            let awaiting = Promise::<()>::new();
            let awaiter = {
                let (inner, awaiting) = (inner.clone(), awaiting.clone());
                spindle::spawn(async move {
                    awaiting.set_result(())?;
                    let outcome = spindle::shield(inner).await;
                    let cancelled = matches!(&outcome, Err(e) if e.is_cancelled());
                    // The awaiter was not cancelled: its next await runs.
                    spindle::yield_now().await?;
                    spindle::Ok((cancelled, current().cancelling()))
                })
            };
            inner_started.await?;
            awaiting.await?;
            assert!(inner.cancel_with("inner msg"));
            let (cancelled, cancelling) = awaiter.await?;
            assert!(cancelled, "the shield ends cancelled");
            assert_eq!(cancelling, 0);
            assert!(inner.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 31 ------------------------------------------------------------------

/// shield of an already-done task returns its outcome immediately: value,
/// error or cancellation. (TT::test_shield_shortcut)
#[test]
fn case_31_shield_of_done_task_returns_outcome_immediately() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let ok = spindle::spawn(async { spindle::Ok(42u32) });
            let failed = spindle::spawn(async { Err::<u32, _>(Error::msg("v")) });
            let cancelled = spindle::spawn(async {
                spindle::sleep(Duration::from_secs(30)).await?;
                spindle::Ok(0u32)
            });
            cancelled.cancel_with("gone");
            for t in [&ok, &failed, &cancelled] {
                while !t.done() {
                    spindle::sleep(Duration::from_millis(1)).await?;
                }
            }
            assert_eq!(spindle::shield(ok).await?, 42);
            let err = spindle::shield(failed.clone()).await.unwrap_err();
            assert_eq!(err.to_string(), "v");
            let err = spindle::shield(cancelled).await.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.cancel_message(), Some("gone"));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// On one worker, awaiting the shield of a done task does not yield (another
/// ready task does not run in between), and even a pending cancel request of
/// the awaiter is not delivered there: the next await delivers it. (Checked
/// with CPython 3.13: `shield(done)` returns the future itself, and awaiting a
/// done future does not suspend.)
#[test]
fn case_31_shield_of_done_task_does_not_suspend() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let done = spindle::spawn(async { spindle::Ok(5u32) });
            while !done.done() {
                spindle::yield_now().await?;
            }
            let other_ran = Arc::new(AtomicBool::new(false));
            let flag = other_ran.clone();
            let other = spindle::spawn(async move {
                flag.store(true, Ordering::SeqCst);
                spindle::Ok(())
            });
            current().cancel();
            let value = spindle::shield(done).await?;
            assert!(
                !other_ran.load(Ordering::SeqCst),
                "the shield did not yield"
            );
            let next = spindle::yield_now().await;
            assert!(matches!(&next, Err(e) if e.is_cancelled()), "{next:?}");
            assert_eq!(current().uncancel(), 0);
            other.await?;
            spindle::Ok(value)
        })
        .map(|value| assert_eq!(value, 5))
        .unwrap();
    });
}

// -- case 55 ------------------------------------------------------------------

/// wait_for(shield(t), 10 ms) fails with a timeout while t keeps running, not
/// cancelled, and later yields its value. (WF::test_shielded_timeout)
#[test]
fn case_55_wait_for_shield_times_out_and_task_keeps_running() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let release = Promise::<()>::new();
            let task = {
                let release = release.clone();
                spindle::spawn(async move {
                    release.await?;
                    spindle::sleep(Duration::from_millis(10)).await?;
                    spindle::Ok("done")
                })
            };
            let start = Instant::now();
            let err = spindle::wait_for(
                Some(Duration::from_millis(10)),
                spindle::shield(task.clone()),
            )
            .await
            .unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            assert!(start.elapsed() >= Duration::from_millis(10));
            assert!(!task.done(), "the shielded task is not finished");
            assert!(!task.cancelled());
            assert_eq!(task.cancelling(), 0, "the timeout did not reach the task");
            assert_eq!(
                current().cancelling(),
                0,
                "the caller is not left cancelled"
            );
            release.set_result(())?;
            assert_eq!(task.clone().await?, "done");
            assert!(!task.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- shielding a plain future -----------------------------------------------

/// A plain future given to shield is spawned as a task: awaited normally it
/// gives its value.
#[test]
fn shield_plain_future_gives_its_value() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let value = spindle::shield(async {
                spindle::sleep(Duration::from_millis(2)).await?;
                spindle::Ok(9u32)
            })
            .await?;
            assert_eq!(value, 9);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A plain future given to shield runs as its own task: when the awaiter is
/// cancelled, the future is not cancelled and runs to completion.
#[test]
fn shield_plain_future_keeps_running_when_awaiter_is_cancelled() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let release = Promise::<()>::new();
            let finished = Promise::<&'static str>::new();
            let saw_cancel = Arc::new(AtomicBool::new(false));
            let started = Promise::<()>::new();
            let outer = {
                let (release, finished, saw_cancel, started) = (
                    release.clone(),
                    finished.clone(),
                    saw_cancel.clone(),
                    started.clone(),
                );
                spindle::spawn(async move {
                    let shielded = spindle::shield(async move {
                        started.set_result(())?;
                        if release.await.is_err() {
                            saw_cancel.store(true, Ordering::SeqCst);
                        }
                        finished.set_result("finished")?;
                        spindle::Ok(())
                    });
                    shielded.await
                })
            };
            started.await?;
            outer.cancel();
            let err = outer.clone().await.unwrap_err();
            assert!(err.is_cancelled());
            assert!(!finished.done(), "the shielded future is still running");
            release.set_result(())?;
            assert_eq!(finished.await?, "finished");
            assert!(!saw_cancel.load(Ordering::SeqCst), "it was never cancelled");
            spindle::Ok(())
        })
        .unwrap();
    });
}
