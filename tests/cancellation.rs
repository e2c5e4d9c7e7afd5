//! Spec section C: cancellation (`/work/shared/spec/asyncio-semantics.md`,
//! cases 19-24 and 26-28), plus `cancellable()` and `abort()`.

mod common;
use common::{current, rt, within_limit};

use spindle::{Error, ErrorKind, Promise, Task, TaskState};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Sets a flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A future that never completes, counts its polls and flags its drop.
struct Forever {
    polls: Arc<AtomicUsize>,
    _drop: DropFlag,
}

impl Future for Forever {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u32> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Pending
    }
}

/// Spawns a task that signals `started`, then awaits `waited` and returns its
/// value (so a cancel ends it cancelled, like asyncio's `await fut`).
fn waiting_on(started: &Promise<()>, waited: &Promise<u32>) -> Task<u32> {
    let (started, waited) = (started.clone(), waited.clone());
    spindle::spawn(async move {
        started.set_result(())?;
        waited.await
    })
}

// -- case 19 ------------------------------------------------------------------

/// cancel() on a done task -> false; on a pending one -> true.
/// (TT::test_cancel)
#[test]
fn case_19_cancel_returns_true_on_pending_false_on_done() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, fut) = (Promise::new(), Promise::new());
            let task = waiting_on(&started, &fut);
            started.await?;
            assert!(task.cancel());
            assert!(task.clone().await.unwrap_err().is_cancelled());
            assert!(!task.cancel(), "cancelled task");
            assert!(!task.cancel_with("again"));
            assert!(task.cancelled());

            let ok = spindle::spawn(async { spindle::Ok(1) });
            assert_eq!(ok.clone().await?, 1);
            assert!(!ok.cancel(), "succeeded task");
            assert!(!ok.cancelled());
            assert_eq!(ok.cancelling(), 0, "a refused cancel is not counted");

            let failed = spindle::spawn(async { Err::<(), _>(Error::msg("x")) });
            let _ = failed.clone().await;
            assert!(!failed.cancel(), "failed task");
            assert_eq!(failed.state(), TaskState::Failed);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A second cancel() also returns true and cancelling() becomes 2, but only
/// one Cancelled is delivered, carrying the first message.
/// (TT::test_cancelling; checked with CPython 3.13)
#[test]
fn case_19_second_cancel_counts_but_delivers_once_with_first_message() {
    within_limit(|| {
        // One worker: both cancels happen before the task runs again.
        let rt = rt(1);
        rt.block_on(async {
            let (started, first) = (Promise::<()>::new(), Promise::<()>::new());
            let (s, f) = (started.clone(), first.clone());
            let task = spindle::spawn(async move {
                s.set_result(())?;
                let mut log = Vec::new();
                match f.await {
                    Err(e) if e.is_cancelled() => {
                        log.push(format!("cancelled {:?}", e.cancel_message()))
                    }
                    other => log.push(format!("unexpected {other:?}")),
                }
                for _ in 0..3 {
                    spindle::yield_now().await?;
                }
                let second = Promise::<u32>::new();
                second.set_result(2)?;
                log.push(format!("later awaits ok: {}", second.await?));
                spindle::Ok(log)
            });
            started.await?;
            assert!(task.cancel_with("first"));
            assert_eq!(task.cancelling(), 1);
            assert!(task.cancel_with("second"), "a second cancel returns true");
            assert_eq!(task.cancelling(), 2);
            let log = task.clone().await?;
            assert_eq!(
                log,
                [
                    "cancelled Some(\"first\")".to_string(),
                    "later awaits ok: 2".to_string()
                ]
            );
            assert!(!task.cancelled(), "it caught the cancel and returned");
            assert_eq!(task.cancelling(), 2);
            assert_eq!(
                first.result().unwrap_err().cancel_message(),
                Some("first"),
                "the awaited promise was cancelled with the first message"
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 20 ------------------------------------------------------------------

/// cancel(msg): the awaiter of the task gets Cancelled carrying msg.
/// (TT::test_cancel_with_message_then_future_result)
#[test]
fn case_20_cancel_message_reaches_the_awaiter() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, fut) = (Promise::new(), Promise::new());
            let task = waiting_on(&started, &fut);
            started.await?;
            assert!(task.cancel_with("my message"));
            // Another task awaits it.
            let t = task.clone();
            let awaiter = spindle::spawn(async move {
                let err = t.await.unwrap_err();
                spindle::Ok((err.is_cancelled(), err.cancel_message().map(String::from)))
            });
            assert_eq!(awaiter.await?, (true, Some("my message".to_string())));
            let err = task.clone().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            assert_eq!(err.cancel_message(), Some("my message"));
            assert_eq!(
                task.result().unwrap_err().cancel_message(),
                Some("my message")
            );
            assert_eq!(
                task.exception().unwrap_err().cancel_message(),
                Some("my message")
            );

            // Without a message: Cancelled without one.
            let (started, fut) = (Promise::new(), Promise::new());
            let task = waiting_on(&started, &fut);
            started.await?;
            task.cancel();
            let err = task.await.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.cancel_message(), None);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A cancel requested after an earlier one was delivered (and caught) is a new
/// request: it carries its own message, or none. (Checked with CPython 3.13:
/// args ('first',) then ('second',); and ('first',) then ().)
#[test]
fn case_20_later_cancel_carries_its_own_message() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            for second in [Some("second"), None] {
                let (started, caught) = (Promise::<()>::new(), Promise::<()>::new());
                let (s, c) = (started.clone(), caught.clone());
                let task = spindle::spawn(async move {
                    s.set_result(())?;
                    let mut messages = Vec::new();
                    let e = Promise::<()>::new().await.unwrap_err();
                    messages.push(e.cancel_message().map(String::from));
                    c.set_result(())?;
                    let e = Promise::<()>::new().await.unwrap_err();
                    messages.push(e.cancel_message().map(String::from));
                    spindle::Ok(messages)
                });
                started.await?;
                task.cancel_with("first");
                caught.await?;
                match second {
                    Some(message) => task.cancel_with(message),
                    None => task.cancel(),
                };
                assert_eq!(
                    task.clone().await?,
                    [Some("first".to_string()), second.map(String::from)]
                );
                assert_eq!(task.cancelling(), 2);
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 21 ------------------------------------------------------------------

/// A task cancelled before its first step never runs its body; its awaiter
/// gets Cancelled(msg). (TT::test_cancel_with_message_before_starting_task)
#[test]
fn case_21_task_cancelled_before_first_step_never_runs() {
    within_limit(|| {
        // One worker: the child cannot start before the creator yields.
        let rt = rt(1);
        let ran = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicBool::new(false));
        let (r, d) = (ran.clone(), dropped.clone());
        rt.block_on(async move {
            let guard = DropFlag(d.clone());
            let task = spindle::spawn(async move {
                let _guard = guard;
                r.store(true, Ordering::SeqCst);
                spindle::Ok(1)
            });
            assert!(task.cancel_with("my message"));
            let err = task.clone().await.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.cancel_message(), Some("my message"));
            assert!(task.cancelled());
            assert!(d.load(Ordering::SeqCst), "the body's future was dropped");
            spindle::Ok(())
        })
        .unwrap();
        assert!(!ran.load(Ordering::SeqCst), "the body ran");
    });
}

// -- case 22 ------------------------------------------------------------------

/// Cancelling a task that waits on a future cancels that future.
/// (TT::test_task_cancel_waiter_future)
#[test]
fn case_22_cancelling_task_cancels_awaited_promise() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, fut) = (Promise::new(), Promise::new());
            let task = waiting_on(&started, &fut);
            started.await?;
            task.cancel_with("stop");
            assert!(task.clone().await.unwrap_err().is_cancelled());
            assert!(task.cancelled());
            assert!(fut.cancelled(), "the awaited future is cancelled");
            assert_eq!(fut.result().unwrap_err().cancel_message(), Some("stop"));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Cancelling a task that awaits another task cancels the inner task, and the
/// message propagates through both.
#[test]
fn case_22_cancelling_task_cancels_awaited_task_with_message() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (inner_started, fut) = (Promise::new(), Promise::new());
            let inner_slot = Promise::<Task<u32>>::new();
            let (is, f, slot) = (inner_started.clone(), fut.clone(), inner_slot.clone());
            let outer = spindle::spawn(async move {
                let inner = waiting_on(&is, &f);
                slot.set_result(inner.clone())?;
                inner.await
            });
            inner_started.await?;
            let inner = inner_slot.await?;
            assert!(outer.cancel_with("from outside"));
            let err = outer.clone().await.unwrap_err();
            assert_eq!(err.cancel_message(), Some("from outside"));
            assert!(outer.cancelled());
            let inner_err = inner.clone().await.unwrap_err();
            assert_eq!(inner_err.cancel_message(), Some("from outside"));
            assert!(inner.cancelled());
            assert!(fut.cancelled());
            assert_eq!(
                fut.result().unwrap_err().cancel_message(),
                Some("from outside")
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The cancel passed on to an awaited task is the outer task's delivery: if
/// the inner task swallows it and returns v, the outer await returns v and the
/// outer task goes on normally (later awaits are not cancelled).
/// (Checked with CPython 3.13: ('inner caught', ('m',)), cancelled() False.)
#[test]
fn case_22_inner_task_swallowing_cancel_gives_outer_its_value() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let inner_started = Promise::<()>::new();
            let is = inner_started.clone();
            let outer = spindle::spawn(async move {
                let inner = spindle::spawn(async move {
                    is.set_result(())?;
                    let err = Promise::<()>::new().await.unwrap_err();
                    spindle::Ok(format!("inner caught {:?}", err.cancel_message()))
                });
                let value = inner.await?;
                spindle::yield_now().await?;
                spindle::Ok(value)
            });
            inner_started.await?;
            assert!(outer.cancel_with("m"));
            assert_eq!(outer.clone().await?, "inner caught Some(\"m\")");
            assert!(!outer.cancelled());
            assert_eq!(outer.cancelling(), 1);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A task that requests its own cancellation and then awaits a task: the
/// inner task is cancelled at once, and the future it waits on too.
/// (TT::test_cancel_awaited_task)
#[test]
fn case_22_self_cancel_then_await_task_cancels_inner() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (nested_started, fut) = (Promise::new(), Promise::new());
            let nested_slot = Promise::<Task<u32>>::new();
            let (ns, f, slot) = (nested_started.clone(), fut.clone(), nested_slot.clone());
            let task = spindle::spawn(async move {
                let nested = waiting_on(&ns, &f);
                slot.set_result(nested.clone())?;
                ns.await?;
                current().cancel();
                nested.await
            });
            let err = task.clone().await.unwrap_err();
            assert!(err.is_cancelled());
            assert!(task.cancelled());
            let nested = nested_slot.result()?;
            assert!(nested.cancelled());
            assert!(fut.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 23 ------------------------------------------------------------------

/// If someone cancels the future a task is awaiting, the task ends cancelled
/// with that message. (TT::test_cancel_inner_future)
#[test]
fn case_23_cancelling_the_awaited_promise_cancels_the_task() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, fut) = (Promise::new(), Promise::new());
            let task = waiting_on(&started, &fut);
            started.await?;
            assert!(fut.cancel_with("inner message"));
            let err = task.clone().await.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.cancel_message(), Some("inner message"));
            assert!(fut.cancelled());
            assert!(task.cancelled());
            assert_eq!(task.cancelling(), 0, "nobody cancelled the task itself");
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 24 ------------------------------------------------------------------

/// A task that catches Cancelled and returns v: result v, cancelled() false,
/// cancelling() stays 1. (TT::test_cancel_task_catching)
#[test]
fn case_24_task_catching_cancel_returns_value() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (fut1, fut2, at_fut2) = (
                Promise::<()>::new(),
                Promise::<()>::new(),
                Promise::<()>::new(),
            );
            let (f1, f2, at2) = (fut1.clone(), fut2.clone(), at_fut2.clone());
            let task = spindle::spawn(async move {
                f1.await?;
                at2.set_result(())?;
                match f2.await {
                    Err(e) if e.is_cancelled() => spindle::Ok(42),
                    other => panic!("expected a cancel, got {other:?}"),
                }
            });
            fut1.set_result(())?;
            at_fut2.await?;
            assert!(task.cancel());
            assert_eq!(task.clone().await?, 42);
            assert!(!task.cancelled());
            assert_eq!(task.state(), TaskState::Succeeded);
            assert_eq!(task.cancelling(), 1);
            assert!(fut2.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 26 ------------------------------------------------------------------

/// A task that cancels itself and returns without awaiting still ends
/// cancelled. (TT::test_cancel_at_end)
#[test]
fn case_26_self_cancel_then_return_ends_cancelled() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let task = spindle::spawn(async {
                assert!(current().cancel_with("at end"));
                spindle::Ok(12)
            });
            let err = task.clone().await.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.cancel_message(), Some("at end"));
            assert!(task.done());
            assert!(task.cancelled());
            assert!(!task.cancel());
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A task that cancels itself and then awaits: that await fails with
/// Cancelled at once (a future nobody will ever set), and the code after it
/// does not run. (TT::test_cancel_current_task)
#[test]
fn case_26_self_cancel_then_await_fails_at_once() {
    within_limit(|| {
        let rt = rt(2);
        let after = Arc::new(AtomicBool::new(false));
        let a = after.clone();
        rt.block_on(async move {
            let never = Promise::<u32>::new();
            let n = never.clone();
            let task = spindle::spawn(async move {
                current().cancel();
                let value = n.await?;
                a.store(true, Ordering::SeqCst);
                spindle::Ok(value)
            });
            assert!(task.clone().await.unwrap_err().is_cancelled());
            assert!(task.cancelled());
            assert!(!task.cancel());
            assert!(never.cancelled(), "the awaited future was cancelled");

            // The same with yield_now as the await point.
            let task = spindle::spawn(async move {
                current().cancel_with("self");
                let err = spindle::yield_now().await.unwrap_err();
                assert_eq!(err.cancel_message(), Some("self"));
                // Delivered once: the next await runs normally.
                spindle::yield_now().await?;
                Err::<(), _>(err)
            });
            assert_eq!(
                task.clone().await.unwrap_err().cancel_message(),
                Some("self")
            );
            assert!(task.cancelled());
            spindle::Ok(())
        })
        .unwrap();
        assert!(!after.load(Ordering::SeqCst));
    });
}

// -- case 27 ------------------------------------------------------------------

/// A task that turns a cancel into another error ends failed, not cancelled.
#[test]
fn case_27_cancel_turned_into_error_ends_failed() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, fut) = (Promise::<()>::new(), Promise::<()>::new());
            let (s, f) = (started.clone(), fut.clone());
            let task = spindle::spawn(async move {
                s.set_result(())?;
                match f.await {
                    Err(e) if e.is_cancelled() => Err::<(), _>(Error::msg("my error")),
                    other => panic!("expected a cancel, got {other:?}"),
                }
            });
            started.await?;
            task.cancel();
            let err = task.clone().await.unwrap_err();
            assert!(!err.is_cancelled());
            assert_eq!(err.to_string(), "my error");
            assert!(task.done());
            assert!(!task.cancelled());
            assert_eq!(task.state(), TaskState::Failed);
            assert_eq!(task.exception()?.unwrap().to_string(), "my error");
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 28 ------------------------------------------------------------------

/// uncancel() decrements the count and returns it; the task can then be
/// cancelled again; uncancel after completion leaves it cancelled.
/// (TT::test_uncancel_basic)
#[test]
fn case_28_uncancel_basic() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, first, second_wait) = (
                Promise::<()>::new(),
                Promise::<()>::new(),
                Promise::<()>::new(),
            );
            let (s, f, sw) = (started.clone(), first.clone(), second_wait.clone());
            let task = spindle::spawn(async move {
                s.set_result(())?;
                if let Err(e) = f.await {
                    assert!(e.is_cancelled());
                    assert_eq!(current().uncancel(), 0);
                    sw.set_result(())?;
                    Promise::<()>::new().await?;
                }
                spindle::Ok(())
            });
            started.await?;
            assert!(task.cancel());
            assert_eq!(task.cancelling(), 1);
            assert!(!task.cancelled());
            second_wait.await?;
            assert_eq!(task.cancelling(), 0);
            assert!(!task.cancelled());
            assert!(!task.done());
            assert!(task.cancel());
            assert_eq!(task.cancelling(), 1);
            assert!(task.clone().await.unwrap_err().is_cancelled());
            assert!(task.cancelled());
            assert!(task.done());
            // No longer effective once the task is complete.
            assert_eq!(task.uncancel(), 0);
            assert!(task.cancelled());
            assert!(task.done());
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// uncancel() never goes below 0.
#[test]
fn case_28_uncancel_never_below_zero() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, fut) = (Promise::new(), Promise::new());
            let task = waiting_on(&started, &fut);
            started.await?;
            assert_eq!(task.uncancel(), 0);
            assert_eq!(task.uncancel(), 0);
            assert_eq!(task.cancelling(), 0);
            fut.set_result(3)?;
            assert_eq!(task.clone().await?, 3);
            assert_eq!(task.uncancel(), 0);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Reaching 0 before delivery withdraws the pending cancel (3.13): a task
/// that cancels itself and uncancels before its next await is not cancelled.
#[test]
fn case_28_uncancel_to_zero_withdraws_pending_self_cancel() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let task = spindle::spawn(async {
                let me = current();
                me.cancel();
                me.cancel();
                assert_eq!(me.cancelling(), 2);
                assert_eq!(me.uncancel(), 1);
                assert_eq!(me.uncancel(), 0);
                spindle::yield_now().await?;
                let p = Promise::<u32>::new();
                p.set_result(7)?;
                p.await
            });
            assert_eq!(task.clone().await?, 7);
            assert!(!task.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Reaching 0 before the task's first step withdraws the cancel: the body runs
/// normally; if the count stays above 0 the body never runs. (Checked with
/// CPython 3.13.)
#[test]
fn case_28_uncancel_before_first_step() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let ran = Arc::new(AtomicUsize::new(0));
            let r = ran.clone();
            let withdrawn = spindle::spawn(async move {
                r.fetch_add(1, Ordering::SeqCst);
                spindle::Ok(5)
            });
            assert!(withdrawn.cancel_with("x"));
            assert_eq!(withdrawn.uncancel(), 0);
            assert_eq!(withdrawn.clone().await?, 5);
            assert_eq!(ran.load(Ordering::SeqCst), 1);
            assert!(!withdrawn.cancelled());

            let r = ran.clone();
            let still = spindle::spawn(async move {
                r.fetch_add(1, Ordering::SeqCst);
                spindle::Ok(5)
            });
            assert!(still.cancel_with("first"));
            assert!(still.cancel_with("second"));
            assert_eq!(still.uncancel(), 1);
            let err = still.clone().await.unwrap_err();
            assert_eq!(err.cancel_message(), Some("first"));
            assert_eq!(ran.load(Ordering::SeqCst), 1, "the body did not run");
            assert!(still.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- cancellable() -------------------------------------------------------------

/// cancellable() makes a foreign future a cancellation point: on cancel the
/// inner future is dropped at once and the await returns Cancelled(msg).
#[test]
fn cancellable_drops_inner_future_on_cancel() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let polls = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicBool::new(false));
            let started = Promise::<()>::new();
            let (p, d, s) = (polls.clone(), dropped.clone(), started.clone());
            let task = spindle::spawn(async move {
                s.set_result(())?;
                let inner = Forever {
                    polls: p,
                    _drop: DropFlag(d.clone()),
                };
                let err = spindle::cancellable(inner).await.unwrap_err();
                assert!(d.load(Ordering::SeqCst), "dropped when the await returned");
                // Cleanup may await.
                spindle::yield_now().await?;
                Err::<u32, _>(err)
            });
            started.await?;
            // Wait until the inner future was polled at least once.
            while polls.load(Ordering::SeqCst) == 0 {
                spindle::yield_now().await?;
            }
            task.cancel_with("enough");
            let err = task.clone().await.unwrap_err();
            assert_eq!(err.cancel_message(), Some("enough"));
            assert!(task.cancelled());
            assert!(dropped.load(Ordering::SeqCst));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// cancellable() passes the inner value through, and with a cancel already
/// pending it returns Cancelled without polling the inner future.
#[test]
fn cancellable_passes_value_and_honours_pending_cancel() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            assert_eq!(spindle::cancellable(async { 5 }).await?, 5);

            let polls = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicBool::new(false));
            let (p, d) = (polls.clone(), dropped.clone());
            let task = spindle::spawn(async move {
                current().cancel_with("pending");
                let inner = Forever {
                    polls: p,
                    _drop: DropFlag(d),
                };
                spindle::cancellable(inner).await
            });
            let err = task.clone().await.unwrap_err();
            assert_eq!(err.cancel_message(), Some("pending"));
            assert_eq!(
                polls.load(Ordering::SeqCst),
                0,
                "the inner future was polled"
            );
            assert!(dropped.load(Ordering::SeqCst));
            assert!(task.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- abort() --------------------------------------------------------------------

/// abort() drops the task's future at its next run without letting its
/// cleanup run; the task ends cancelled with "aborted".
#[test]
fn abort_drops_future_without_running_cleanup() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let cleanup_ran = Arc::new(AtomicBool::new(false));
            let dropped = Arc::new(AtomicBool::new(false));
            let started = Promise::<()>::new();
            let (c, d, s) = (cleanup_ran.clone(), dropped.clone(), started.clone());
            let task = spindle::spawn(async move {
                let _guard = DropFlag(d);
                s.set_result(())?;
                if Promise::<()>::new().await.is_err() {
                    c.store(true, Ordering::SeqCst);
                    spindle::yield_now().await?;
                }
                spindle::Ok(())
            });
            started.await?;
            assert!(task.abort());
            let err = task.clone().await.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.cancel_message(), Some("aborted"));
            assert!(task.cancelled());
            assert!(dropped.load(Ordering::SeqCst));
            assert!(!cleanup_ran.load(Ordering::SeqCst), "the cleanup ran");
            assert!(!task.abort(), "abort() on a done task returns false");
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// abort() ends a task that swallows every cancel, and one aborted before its
/// first step never runs.
#[test]
fn abort_ends_task_ignoring_cancel_and_unstarted_task() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let cancels = Arc::new(AtomicUsize::new(0));
            let started = Promise::<()>::new();
            let (c, s) = (cancels.clone(), started.clone());
            let stop = Arc::new(AtomicBool::new(false));
            let st = stop.clone();
            let stubborn = spindle::spawn(async move {
                s.set_result(())?;
                while !st.load(Ordering::SeqCst) {
                    if spindle::yield_now().await.is_err() {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                }
                spindle::Ok(())
            });
            started.await?;
            stubborn.cancel();
            while cancels.load(Ordering::SeqCst) == 0 {
                spindle::yield_now().await?;
            }
            assert!(!stubborn.done(), "it ignores the cancel");
            assert!(stubborn.abort());
            let err = stubborn.clone().await.unwrap_err();
            assert_eq!(err.cancel_message(), Some("aborted"));
            assert!(stubborn.cancelled());
            assert_eq!(cancels.load(Ordering::SeqCst), 1);

            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let unstarted = spindle::spawn(async move {
                r.store(true, Ordering::SeqCst);
                spindle::Ok(())
            });
            assert!(unstarted.abort());
            assert!(unstarted.clone().await.unwrap_err().is_cancelled());
            assert!(!ran.load(Ordering::SeqCst));
            assert!(unstarted.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The cancel count and message seen by several awaiters of one task are the
/// same: every awaiter gets the same Cancelled.
#[test]
fn every_awaiter_of_a_cancelled_task_gets_the_cancel() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, fut) = (Promise::new(), Promise::new());
            let task = waiting_on(&started, &fut);
            started.await?;
            let messages = Arc::new(Mutex::new(Vec::new()));
            let awaiters: Vec<_> = (0..4)
                .map(|_| {
                    let (t, m) = (task.clone(), messages.clone());
                    spindle::spawn(async move {
                        let err = t.await.unwrap_err();
                        m.lock()
                            .unwrap()
                            .push(err.cancel_message().map(String::from));
                        spindle::Ok(())
                    })
                })
                .collect();
            for _ in 0..3 {
                spindle::yield_now().await?;
            }
            task.cancel_with("all");
            for a in awaiters {
                a.await?;
            }
            assert_eq!(*messages.lock().unwrap(), vec![Some("all".to_string()); 4]);
            spindle::Ok(())
        })
        .unwrap();
    });
}
