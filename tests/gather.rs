//! Spec section E: gather (`/work/shared/spec/asyncio-semantics.md`, cases
//! 33-39), the `gather!` macro, and the seed scenarios built on gather.

mod common;
use common::{hold_permit_for_an_hour, rt, until_all_waiting, wait_done, within_limit};

use spindle::{Error, ErrorKind, Promise, Runtime, Task, Unhandled, UnhandledKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type BoxFuture<T> = Pin<Box<dyn Future<Output = spindle::Result<T>> + Send>>;

type Reports = Arc<Mutex<Vec<Unhandled>>>;

/// A runtime whose unhandled-failure reports are collected.
fn rt_reporting(workers: usize) -> (Runtime, Reports) {
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let rt = Runtime::builder()
        .worker_threads(workers)
        .on_unhandled_error(move |report| sink.lock().unwrap().push(report.clone()))
        .build()
        .unwrap();
    (rt, reports)
}

/// A task that returns `value` once `gate` is set.
fn gated<T: Send + 'static>(gate: &Promise<()>, value: T) -> Task<T> {
    let gate = gate.clone();
    spindle::spawn(async move {
        gate.await?;
        spindle::Ok(value)
    })
}

/// Like [`gated`], with a promise set once the task has started (and is about
/// to wait on `gate`).
fn gated_and_started<T: Send + 'static>(gate: &Promise<()>, value: T) -> (Task<T>, Promise<()>) {
    let (gate, started) = (gate.clone(), Promise::new());
    let s = started.clone();
    let task = spindle::spawn(async move {
        s.set_result(())?;
        gate.await?;
        spindle::Ok(value)
    });
    (task, started)
}

/// A task named `name` that fails with `Error::msg(text)` once `gate` is set.
fn failing_after(gate: &Promise<()>, name: &str, text: &'static str) -> Task<u32> {
    let gate = gate.clone();
    spindle::task::Builder::new().name(name).spawn(async move {
        gate.await?;
        Err::<u32, _>(Error::msg(text))
    })
}

/// A task that, when cancelled while waiting (on a promise of its own),
/// swallows the cancellation and returns `value`. Its second half is set
/// once it waits.
fn swallowing(value: u32) -> (Task<u32>, Promise<()>) {
    let (gate, started) = (Promise::<()>::new(), Promise::new());
    let s = started.clone();
    let task = spindle::spawn(async move {
        s.set_result(())?;
        match gate.await {
            Err(e) if e.is_cancelled() => spindle::Ok(value),
            other => other.map(|()| 0),
        }
    });
    (task, started)
}

/// A task that, when cancelled while waiting (on a promise of its own),
/// waits for `cleanup` before ending cancelled. Its second half is set once
/// it waits.
fn slow_cleanup(cleanup: &Promise<()>) -> (Task<u32>, Promise<()>) {
    let (gate, cleanup, started) = (Promise::<()>::new(), cleanup.clone(), Promise::new());
    let s = started.clone();
    let task = spindle::spawn(async move {
        s.set_result(())?;
        match gate.await {
            Err(e) if e.is_cancelled() => {
                cleanup.await?;
                Err(e)
            }
            other => other.map(|()| 0),
        }
    });
    (task, started)
}

/// Yields a few times, giving other tasks a chance to run.
async fn settle() -> spindle::Result<()> {
    for _ in 0..20 {
        spindle::yield_now().await?;
    }
    Ok(())
}

// -- case 33 ------------------------------------------------------------------

/// Results in argument order, not completion order; gather of nothing gives
/// an empty list. (TT::test_success)
#[test]
fn case_33_results_in_argument_order_and_empty_gather() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                // Completion order c, a, b, enforced with gates.
                let gates = [Promise::new(), Promise::new(), Promise::new()];
                let tasks = [
                    gated(&gates[0], "a"),
                    gated(&gates[1], "b"),
                    gated(&gates[2], "c"),
                ];
                let gather = spindle::gather(tasks.clone());
                for i in [2, 0, 1] {
                    gates[i].set_result(())?;
                    wait_done(&tasks[i]).await?;
                }
                assert_eq!(gather.await?, ["a", "b", "c"]);

                // Futures, spawned by gather, with asyncio's test delays.
                let values = spindle::gather([30u64, 10, 20].map(|ms| async move {
                    spindle::sleep(Duration::from_millis(ms)).await?;
                    spindle::Ok(ms)
                }))
                .await?;
                assert_eq!(values, [30, 10, 20]);

                let empty: Vec<u32> = spindle::gather(Vec::<Task<u32>>::new()).await?;
                assert!(empty.is_empty());
                let outcomes = spindle::gather(Vec::<Task<u32>>::new())
                    .return_exceptions()
                    .await?;
                assert!(outcomes.is_empty());
                spindle::gather!().await?;
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 34 ------------------------------------------------------------------

/// Without return_exceptions the first error propagates at once; the other
/// children are not cancelled and run to completion. (TT::test_one_exception)
#[test]
fn case_34_first_error_returns_at_once_others_keep_running() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (fail_gate, slow_gate) = (Promise::new(), Promise::new());
                let fails = failing_after(&fail_gate, "fails", "boom");
                let slow = gated(&slow_gate, 7u32);
                let finished = Arc::new(AtomicBool::new(false));
                let (gate, flag) = (slow_gate.clone(), finished.clone());
                let third = spindle::spawn(async move {
                    gate.await?;
                    spindle::sleep(Duration::from_millis(5)).await?;
                    flag.store(true, Ordering::SeqCst);
                    spindle::Ok(8)
                });
                let gather = spindle::gather([fails.clone(), slow.clone(), third]);
                let spawned = gather.tasks()[2].clone();
                fail_gate.set_result(())?;
                let err = gather.await.unwrap_err();
                assert_eq!(err.to_string(), "boom");
                // "At once": the others cannot have finished, their gate is shut.
                assert!(!slow.done() && !spawned.done());
                slow_gate.set_result(())?;
                assert_eq!(slow.clone().await?, 7);
                assert_eq!(spawned.clone().await?, 8);
                assert!(finished.load(Ordering::SeqCst));
                assert!(!slow.cancelled() && !spawned.cancelled());

                // The same with futures, spawned by gather (reachable through
                // tasks()).
                let gate = Promise::<()>::new();
                let (g, flag) = (gate.clone(), Arc::new(AtomicBool::new(false)));
                let f = flag.clone();
                let gather = spindle::gather::<Vec<BoxFuture<u32>>>(vec![
                    Box::pin(async { Err(Error::msg("early")) }),
                    Box::pin(async move {
                        g.await?;
                        f.store(true, Ordering::SeqCst);
                        spindle::Ok(1)
                    }),
                ]);
                let other = gather.tasks()[1].clone();
                assert_eq!(gather.await.unwrap_err().to_string(), "early");
                gate.set_result(())?;
                assert_eq!(other.await?, 1);
                assert!(flag.load(Ordering::SeqCst));
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// The first error is the first in completion order even when the tasks
/// complete on different workers: the second task fails after seeing the
/// first one done (cancelled on its own in the second half of the rounds),
/// and its done hook may run before the first task's. asyncio schedules the
/// gather's callbacks as the tasks complete, so it always gives the first
/// task's failure. Before the fix this gave the second task's error in about
/// 7 rounds of 20,000 (a release build on 2 workers).
#[test]
fn case_34_the_first_failure_is_the_first_in_completion_order_across_workers() {
    const ROUNDS: usize = 4_000;
    within_limit(|| {
        let rt = rt(2);
        for round in 0..ROUNDS {
            let cancel_first = round >= ROUNDS / 2;
            let first = rt
                .block_on(async move {
                    let t0 = spindle::spawn(async move {
                        if cancel_first {
                            spindle::sleep(Duration::from_secs(3600)).await?;
                        } else {
                            spindle::yield_now().await?;
                        }
                        Err::<(), _>(Error::msg("t0"))
                    });
                    let seen = t0.clone();
                    let t1 = spindle::spawn(async move {
                        if cancel_first {
                            seen.cancel();
                        }
                        while !seen.done() {
                            spindle::yield_now().await?;
                        }
                        let _ = seen.await;
                        Err::<(), _>(Error::msg("t1"))
                    });
                    let error = spindle::gather([t0, t1]).await.unwrap_err();
                    spindle::Ok(error)
                })
                .unwrap();
            if cancel_first {
                assert!(first.is_cancelled(), "round {round}: {first}");
            } else {
                assert_eq!(first.to_string(), "t0", "round {round}");
            }
        }
    });
}

/// Tasks already done when the gather starts count in argument order, before
/// any later completion: asyncio adds its callbacks in argument order, and a
/// done task's callback is scheduled at once. Here the second argument failed
/// first, yet the first argument's error is returned, as in asyncio.
#[test]
fn case_34_tasks_done_before_the_gather_count_in_argument_order() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let early = spindle::spawn(async { Err::<(), _>(Error::msg("failed first")) });
                let seen = early.clone();
                let late = spindle::spawn(async move {
                    let _ = seen.await;
                    Err::<(), _>(Error::msg("failed second"))
                });
                let _ = late.clone().await;
                assert!(early.done() && late.done());
                let error = spindle::gather([late, early]).await.unwrap_err();
                assert_eq!(error.to_string(), "failed second");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 35 ------------------------------------------------------------------

/// Children that fail after the gather has already failed are marked
/// retrieved: nothing is reported for them. A failure outside any gather is
/// still reported (the control). (TT::test_exception_marking)
#[test]
fn case_35_later_failures_are_marked_retrieved() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(2);
        rt.block_on(async {
            // b fails after the gather returned a's error.
            let (ga, gb) = (Promise::new(), Promise::new());
            let a = failing_after(&ga, "a", "first");
            let b = failing_after(&gb, "b", "second");
            let gather = spindle::gather([a.clone(), b.clone()]);
            ga.set_result(())?;
            assert_eq!(gather.await.unwrap_err().to_string(), "first");
            gb.set_result(())?;
            wait_done(&b).await?;

            // Both fail before the gather is awaited: one is returned, the
            // other is marked too.
            let gxy = Promise::new();
            let x = failing_after(&gxy, "x", "x failed");
            let y = failing_after(&gxy, "y", "y failed");
            let gather = spindle::gather([x.clone(), y.clone()]);
            gxy.set_result(())?;
            wait_done(&x).await?;
            wait_done(&y).await?;
            let err = gather.await.unwrap_err().to_string();
            assert!(err == "x failed" || err == "y failed", "{err}");

            // The control: never read, so reported.
            let gc = Promise::new();
            let c = failing_after(&gc, "control", "third");
            gc.set_result(())?;
            wait_done(&c).await?;
            drop((a, b, c, x, y));
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        let reports = reports.lock().unwrap().clone();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].kind(), UnhandledKind::NeverRetrieved);
        assert_eq!(reports[0].task().unwrap().1, "control");
    });
}

// -- case 36 ------------------------------------------------------------------

/// With return_exceptions, errors take their slot in the result list:
/// [Error('v'), 'ok']; a child cancelled on its own gives its cancellation in
/// its slot; the gather waits for every child. (TT::test_return_exceptions)
#[test]
fn case_36_return_exceptions_errors_take_their_slot() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let outcomes = spindle::gather([
                    spindle::spawn(async { Err::<&str, _>(Error::msg("v")) }),
                    spindle::spawn(async { spindle::Ok("ok") }),
                ])
                .return_exceptions()
                .await?;
                assert_eq!(outcomes.len(), 2);
                assert_eq!(outcomes[0].as_ref().unwrap_err().to_string(), "v");
                assert_eq!(*outcomes[1].as_ref().unwrap(), "ok");

                // The failure comes first; the gather still waits for the rest.
                let (fail_gate, cancel_gate, last_gate) =
                    (Promise::new(), Promise::new(), Promise::new());
                let fails = failing_after(&fail_gate, "fails", "bad");
                let cancelled = gated(&cancel_gate, 0u32);
                let last = gated(&last_gate, 3u32);
                let gather = spindle::spawn(
                    spindle::gather([fails.clone(), cancelled.clone(), last.clone()])
                        .return_exceptions(),
                );
                fail_gate.set_result(())?;
                wait_done(&fails).await?;
                settle().await?;
                cancelled.cancel_with("own");
                wait_done(&cancelled).await?;
                settle().await?;
                assert!(!gather.done(), "gather ended before its last child");
                last_gate.set_result(())?;
                let outcomes = gather.await?;
                assert_eq!(outcomes[0].as_ref().unwrap_err().to_string(), "bad");
                let cancel = outcomes[1].as_ref().unwrap_err();
                assert!(cancel.is_cancelled());
                assert_eq!(cancel.cancel_message(), Some("own"));
                assert_eq!(*outcomes[2].as_ref().unwrap(), 3);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Without return_exceptions, a child cancelled on its own makes the gather
/// return that cancellation (asyncio raises CancelledError from the await).
#[test]
fn case_36_without_return_exceptions_a_cancelled_child_is_a_failure() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                // Each child waits on its own gate: cancelling a task that
                // awaits a promise cancels the promise too (as asyncio's
                // Task.cancel cancels its _fut_waiter), so a shared gate could
                // be cancelled under b when a had already started.
                let (gate_a, gate_b) = (Promise::new(), Promise::new());
                let (a, b) = (gated(&gate_a, 1u32), gated(&gate_b, 2u32));
                let gather = spindle::gather([a.clone(), b.clone()]);
                a.cancel_with("a is gone");
                let err = gather.await.unwrap_err();
                assert!(err.is_cancelled());
                assert_eq!(err.cancel_message(), Some("a is gone"));
                assert!(!b.done(), "b is not cancelled");
                gate_b.set_result(())?;
                assert_eq!(b.await?, 2);
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 38 ------------------------------------------------------------------

/// Cancelling the task that awaits the gather cancels every unfinished child
/// with the message; the task ends cancelled with it.
/// (TT::test_cancellation_broadcast, test_cancel_gather_2)
#[test]
fn case_38_cancelling_the_awaiter_cancels_every_child_with_the_message() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (gate, started) = (Promise::new(), Promise::new());
                let done = Promise::new();
                done.set_result(())?;
                let (first, first_started) = gated_and_started(&gate, 1u32);
                let (second, second_started) = gated_and_started(&gate, 2u32);
                let children = [first, second, gated(&done, 3u32)];
                wait_done(&children[2]).await?;
                // Both wait on the gate before the cancel, so it reaches it.
                first_started.await?;
                second_started.await?;
                let (kids, s) = (children.clone(), started.clone());
                let outer = spindle::spawn(async move {
                    s.set_result(())?;
                    let values = spindle::gather(kids).await?;
                    spindle::Ok(values.len())
                });
                started.await?;
                assert!(outer.cancel_with("stop"));
                let err = outer.clone().await.unwrap_err();
                assert!(err.is_cancelled());
                assert_eq!(err.cancel_message(), Some("stop"));
                assert!(outer.cancelled());
                for child in &children[..2] {
                    wait_done(child).await?;
                    assert!(child.cancelled());
                    assert_eq!(
                        child.exception().unwrap_err().cancel_message(),
                        Some("stop")
                    );
                }
                assert_eq!(children[2].result()?, 3, "a done child is untouched");
                // As in asyncio: the children's cancellation cancelled the
                // future they were waiting on.
                assert!(gate.cancelled());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Without return_exceptions the gather ends at the first child that ends
/// cancelled, like at a failure: it does not wait for a child whose cleanup
/// is slow. (CPython 3.13, checked with a script)
#[test]
fn case_38_without_return_exceptions_ends_at_the_first_cancelled_child() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (gate, cleanup, started) = (Promise::new(), Promise::new(), Promise::new());
                let (slow, slow_started) = slow_cleanup(&cleanup);
                slow_started.await?;
                let quick = gated(&gate, 2u32);
                let (kids, s) = ([slow.clone(), quick.clone()], started.clone());
                let outer = spindle::spawn(async move {
                    s.set_result(())?;
                    spindle::gather(kids).await
                });
                started.await?;
                outer.cancel_with("stop");
                let err = outer.await.unwrap_err();
                assert!(err.is_cancelled());
                assert_eq!(err.cancel_message(), Some("stop"));
                assert!(!slow.done(), "the slow child is still cleaning up");
                cleanup.set_result(())?;
                wait_done(&slow).await?;
                assert!(slow.cancelled() && quick.cancelled());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// With return_exceptions the gather waits for every child, then ends
/// cancelled (not with the list). (TT::test_cancel_gather_2)
#[test]
fn case_38_with_return_exceptions_waits_for_all_children_then_ends_cancelled() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (gate, cleanup, started) = (Promise::new(), Promise::new(), Promise::new());
                let (slow, slow_started) = slow_cleanup(&cleanup);
                slow_started.await?;
                let quick = gated(&gate, 2u32);
                let (kids, s) = ([slow.clone(), quick.clone()], started.clone());
                let outer = spindle::spawn(async move {
                    s.set_result(())?;
                    spindle::gather(kids).return_exceptions().await
                });
                started.await?;
                outer.cancel_with("stop");
                wait_done(&quick).await?;
                settle().await?;
                assert!(!outer.done(), "the gather waits for the slow child");
                cleanup.set_result(())?;
                let err = outer.clone().await.unwrap_err();
                assert!(err.is_cancelled());
                assert_eq!(err.cancel_message(), Some("stop"));
                assert!(outer.cancelled());
                assert!(slow.done() && slow.cancelled());
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// The gather ends cancelled even if every child swallowed the cancellation
/// and returned a value, with or without return_exceptions.
/// (TT::test_cancel_gather_2)
#[test]
fn case_38_children_swallowing_the_cancel_still_end_the_gather_cancelled() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                for return_exceptions in [false, true] {
                    let (first, first_started) = swallowing(1);
                    let (second, second_started) = swallowing(2);
                    first_started.await?;
                    second_started.await?;
                    let children = [first, second];
                    let gather = spindle::gather(children.clone());
                    let started = Promise::new();
                    let s = started.clone();
                    let task = if return_exceptions {
                        let gather = gather.return_exceptions();
                        spindle::spawn(async move {
                            s.set_result(())?;
                            gather.await.map(|v| v.len())
                        })
                    } else {
                        spindle::spawn(async move {
                            s.set_result(())?;
                            gather.await.map(|v| v.len())
                        })
                    };
                    // (A task cancelled before it starts never awaits the gather.)
                    started.await?;
                    task.cancel_with("stop");
                    let err = task.clone().await.unwrap_err();
                    assert!(err.is_cancelled(), "{err}");
                    assert!(task.cancelled());
                    assert_eq!(children[0].result()?, 1, "the child swallowed it");
                    assert_eq!(children[1].result()?, 2);
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 39 ------------------------------------------------------------------

/// Once every child is done, a cancel no longer affects the gather: awaiting
/// it gives the results, and the cancellation comes at the next await point.
/// The cancel is made from the child's done callback, i.e. after the child
/// finished and before the awaiter runs again. (TT::test_cancel_gather_1)
#[test]
fn case_39_cancel_after_all_children_are_done_keeps_the_result() {
    within_limit(|| {
        for workers in [1, 2] {
            rt(workers)
                .block_on(async {
                    let (gate, started) = (Promise::<u32>::new(), Promise::new());
                    let g = gate.clone();
                    let child = spindle::spawn(g);
                    let seen = Arc::new(Mutex::new(None));
                    let (kid, s, seen2) = (child.clone(), started.clone(), seen.clone());
                    let outer = spindle::spawn(async move {
                        s.set_result(())?;
                        let gathered = spindle::gather([kid]).await;
                        *seen2.lock().unwrap() = Some(gathered);
                        spindle::yield_now().await // the cancellation comes here
                    });
                    started.await?;
                    settle().await?;
                    let o = outer.clone();
                    child.add_done_callback(move |_: &Task<u32>| {
                        o.cancel();
                    });
                    gate.set_result(42)?;
                    let err = outer.clone().await.unwrap_err();
                    assert!(err.is_cancelled());
                    let gathered = seen.lock().unwrap().take().expect("the gather ended");
                    assert_eq!(gathered?, [42]);
                    spindle::Ok(())
                })
                .unwrap();
        }
    });
}

// -- dropping -----------------------------------------------------------------

/// Dropping a gather before it ends detaches its tasks: they keep running
/// (nothing is cancelled), and a failure nobody reads is still reported.
#[test]
fn dropping_an_unfinished_gather_detaches_its_tasks() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(2);
        rt.block_on(async {
            let gate = Promise::new();
            let fails = failing_after(&gate, "dropped", "unread");
            let ok = gated(&gate, 1u32);
            let mut gather = spindle::gather([fails.clone(), ok.clone()]);
            std::future::poll_fn(|cx| {
                assert!(Pin::new(&mut gather).poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            drop(gather);
            gate.set_result(())?;
            wait_done(&fails).await?;
            assert!(!fails.cancelled());
            assert_eq!(ok.clone().await?, 1);
            drop(fails);
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        let reports = reports.lock().unwrap().clone();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].task().unwrap().1, "dropped");
    });
}

// -- gather! ------------------------------------------------------------------

/// The macro gathers differently typed awaitables into a tuple, in argument
/// order, with gather's failure rules and return_exceptions.
#[test]
fn gather_macro_gives_a_tuple_with_gathers_semantics() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let gate = Promise::new();
                let late = gated(&gate, String::from("late"));
                let g = gate.clone();
                let (n, s, flag) = spindle::gather!(
                    async move {
                        g.await?;
                        spindle::Ok(1u8)
                    },
                    late.clone(),
                    async move {
                        gate.set_result(())?;
                        spindle::Ok(true)
                    },
                )
                .await?;
                assert_eq!((n, s.as_str(), flag), (1, "late", true));

                let gate = Promise::new();
                let slow = gated(&gate, 'x');
                let err = spindle::gather!(slow.clone(), async {
                    Err::<(), _>(Error::msg("macro boom"))
                })
                .await
                .unwrap_err();
                assert_eq!(err.to_string(), "macro boom");
                assert!(!slow.done(), "the other task keeps running");
                gate.set_result(())?;
                assert_eq!(slow.await?, 'x');

                let (a, b) = spindle::gather!(async { Err::<u8, _>(Error::msg("bad")) }, async {
                    spindle::Ok("fine")
                },)
                .return_exceptions()
                .await?;
                assert_eq!(a.unwrap_err().to_string(), "bad");
                assert_eq!(b?, "fine");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- seed scenarios -----------------------------------------------------------

/// Three "fetches" of 200 ms gathered finish in about 200 ms, not 600: they
/// all start before any of them finishes.
#[test]
fn seed_three_fetches_gathered_run_in_parallel() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let started = Arc::new(AtomicUsize::new(0));
                let start = Instant::now();
                let pages = spindle::gather(["a.example", "b.example", "c.example"].map(|url| {
                    let started = started.clone();
                    async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        spindle::sleep(Duration::from_millis(200)).await?;
                        // Every fetch had started before this one finished.
                        assert_eq!(started.load(Ordering::SeqCst), 3);
                        spindle::Ok(format!("<html>{url}</html>"))
                    }
                }))
                .await?;
                let elapsed = start.elapsed();
                assert_eq!(pages[0], "<html>a.example</html>");
                assert_eq!(pages[2], "<html>c.example</html>");
                assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
                assert!(
                    elapsed < Duration::from_millis(550),
                    "ran one after the other: {elapsed:?}"
                );
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// gather with return_exceptions lists every failure with its input.
#[test]
fn seed_gather_return_exceptions_lists_failures() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let jobs = [1u32, 2, 3, 4, 5, 6];
                let outcomes = spindle::gather(jobs.map(|n| async move {
                    spindle::sleep(Duration::from_millis(u64::from(n) * 3)).await?;
                    if n % 3 == 0 {
                        return Err(Error::msg(format!("job {n} failed")));
                    }
                    spindle::Ok(n * 10)
                }))
                .return_exceptions()
                .await?;
                let failures: Vec<String> = jobs
                    .iter()
                    .zip(&outcomes)
                    .filter_map(|(n, o)| o.as_ref().err().map(|e| format!("{n}: {e}")))
                    .collect();
                assert_eq!(failures, ["3: job 3 failed", "6: job 6 failed"]);
                let values: Vec<u32> = outcomes.into_iter().filter_map(Result::ok).collect();
                assert_eq!(values, [10, 20, 40, 50]);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Bad input: one task awaited by two gathers. Values move out, so exactly one
/// gather gets the value and the other an invalid-state error in that slot;
/// nothing panics or hangs.
#[test]
fn task_awaited_by_two_gathers_gives_the_value_once() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let gate = Promise::<()>::new();
            let shared = gated(&gate, 7u32);
            let first = spindle::spawn(spindle::gather([shared.clone()]).return_exceptions());
            let second = spindle::spawn(spindle::gather([shared.clone()]).return_exceptions());
            spindle::yield_now().await?;
            gate.set_result(())?;
            let mut outcomes = first.await?;
            outcomes.extend(second.await?);
            let values: Vec<u32> = outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok().copied())
                .collect();
            assert_eq!(values, [7], "{outcomes:?}");
            let err = outcomes
                .into_iter()
                .find_map(Result::err)
                .expect("one slot failed");
            assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The seed scraper's shape (a timeout around a gather of fetches behind a
/// `Semaphore(3)`), reduced to what it checks: when the timeout cancels the
/// gather, a task that holds a permit gives it back as it ends cancelled,
/// and no task still waiting for the semaphore may take it and go on. As in
/// asyncio, where `gather.cancel()` requests the cancellation of every child
/// before any of them runs again, also on two workers where the children
/// run while the gather is still passing the cancellation on.
#[test]
fn cancelled_gather_lets_no_waiter_take_a_freed_permit() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            for round in 0..200 {
                let sem = Arc::new(spindle::Semaphore::new(3));
                let acquired = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<Task<()>> = (0..10)
                    .map(|_| {
                        spindle::spawn(hold_permit_for_an_hour(sem.clone(), acquired.clone()))
                    })
                    .collect();
                // The cancellation comes once every child is parked (the
                // holders in their sleep, the others queued on the
                // semaphore); with the timeout running from the spawns, a
                // worker preempted mid-step under load let a child take a
                // freed permit before it saw the cancel.
                until_all_waiting(&tasks).await?;
                let outcome =
                    spindle::timeout(Duration::from_millis(2), spindle::gather(tasks.clone()))
                        .await;
                assert!(outcome.unwrap_err().is_timeout());
                spindle::wait(tasks.clone(), spindle::ReturnWhen::AllCompleted, None).await?;
                for task in &tasks {
                    assert!(task.cancelled(), "round {round}: {task:?} not cancelled");
                }
                // The holders never give a permit back but by ending
                // cancelled: a fourth acquisition took a freed one.
                let acquired = acquired.load(Ordering::SeqCst);
                assert!(
                    acquired <= 3,
                    "round {round}: {acquired} acquisitions, a waiter took a permit freed by the cancellation"
                );
                assert_eq!(sem.available_permits(), 3, "round {round}: a permit was lost");
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}
