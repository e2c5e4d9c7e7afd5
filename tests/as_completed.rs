//! Spec section G: as_completed (`/work/shared/spec/asyncio-semantics.md`,
//! cases 46, 47 and 49), and the seed scenario of printing the fastest
//! first.

mod common;
use common::{rt, wait_done, within_limit};

use futures_core::Stream;
use spindle::{Error, Promise, Task};
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A task that returns `value` once `gate` is set.
fn gated<T: Send + 'static>(gate: &Promise<()>, value: T) -> Task<T> {
    let gate = gate.clone();
    spindle::spawn(async move {
        gate.await?;
        spindle::Ok(value)
    })
}

// -- case 46 ------------------------------------------------------------------

/// Results in completion order (here c, a, b, enforced with gates); an error
/// comes out of its own slot and the iteration goes on.
/// (TT::test_as_completed)
#[test]
fn case_46_outcomes_in_completion_order_errors_in_their_slot() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let gates = [Promise::new(), Promise::new(), Promise::new()];
                let tasks = [
                    gated(&gates[0], "a"),
                    gated(&gates[1], "b"),
                    gated(&gates[2], "c"),
                ];
                let mut results = spindle::as_completed(tasks.clone(), None);
                assert_eq!(results.remaining(), 3);
                let mut order = Vec::new();
                for i in [2, 0, 1] {
                    gates[i].set_result(())?;
                    wait_done(&tasks[i]).await?;
                    order.push(results.next().await.unwrap()?);
                }
                assert_eq!(order, ["c", "a", "b"]);
                assert!(results.next().await.is_none());
                assert!(results.next().await.is_none());

                // An error in the middle: its own slot, then the rest.
                let (g1, g2) = (Promise::new(), Promise::new());
                let failing = {
                    let g = g1.clone();
                    spindle::spawn(async move {
                        g.await?;
                        Err::<u32, _>(Error::msg("middle failed"))
                    })
                };
                let first = spindle::spawn(async { spindle::Ok(1u32) });
                let last = gated(&g2, 3u32);
                let mut results = spindle::as_completed([last, failing.clone(), first], None);
                assert_eq!(results.next().await.unwrap()?, 1);
                g1.set_result(())?;
                let err = results.next().await.unwrap().unwrap_err();
                assert_eq!(err.to_string(), "middle failed");
                g2.set_result(())?;
                assert_eq!(results.next().await.unwrap()?, 3);
                assert!(results.next().await.is_none());

                // Empty: nothing to yield.
                let mut none = spindle::as_completed(Vec::<Task<u32>>::new(), None);
                assert!(none.next().await.is_none());
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 47 ------------------------------------------------------------------

/// Completion order holds across workers: the second task completes as
/// soon as it sees the first one done, and its done hook may run first (on
/// the other worker). asyncio schedules the callbacks as the tasks
/// complete, so the first task always comes out first. Before the fix about
/// 1% of the rounds gave the second task first (a release build on 2
/// workers).
#[test]
fn case_46_completion_order_holds_across_workers() {
    const ROUNDS: usize = 4_000;
    within_limit(|| {
        let rt = rt(2);
        for round in 0..ROUNDS {
            let first = rt
                .block_on(async {
                    let gate = Promise::<()>::new();
                    let t0 = gated(&gate, 0u32);
                    let seen = t0.clone();
                    let t1 = spindle::spawn(async move {
                        while !seen.done() {
                            spindle::yield_now().await?;
                        }
                        spindle::Ok(1u32)
                    });
                    let mut outcomes = spindle::as_completed([t1, t0], None);
                    gate.set_result(())?;
                    let first = outcomes.next().await.expect("two slots")?;
                    let second = outcomes.next().await.expect("two slots")?;
                    assert_eq!(first + second, 1);
                    spindle::Ok(first)
                })
                .unwrap();
            assert_eq!(first, 0, "round {round}: the second task came out first");
        }
    });
}

/// With a timeout, the slots not finished at the deadline fail with a timeout
/// error; the underlying tasks are not cancelled.
/// (TT::test_as_completed_with_timeout)
#[test]
fn case_47_timeout_fails_the_remaining_slots_without_cancelling() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (gate, never) = (Promise::new(), Promise::new());
                let quick = gated(&gate, "quick");
                let slow = gated(&never, "slow");
                let slower = gated(&never, "slower");
                gate.set_result(())?;
                let start = Instant::now();
                let mut results = spindle::as_completed(
                    [slow.clone(), quick.clone(), slower.clone()],
                    Some(Duration::from_millis(50)),
                );
                assert_eq!(results.next().await.unwrap()?, "quick");
                let err = results.next().await.unwrap().unwrap_err();
                assert!(err.is_timeout(), "{err}");
                let elapsed = start.elapsed();
                assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
                assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
                assert!(results.next().await.unwrap().unwrap_err().is_timeout());
                assert!(results.next().await.is_none());
                assert!(!slow.done() && !slower.done(), "the tasks were cancelled");
                never.set_result(())?;
                assert_eq!(slow.await?, "slow");
                assert_eq!(slower.await?, "slower");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 49 ------------------------------------------------------------------

/// The form that yields the original tasks in completion order (3.13).
/// (TT::test_as_completed_same_tasks_in_as_out)
#[test]
fn case_49_tasks_form_yields_the_original_tasks() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let gates = [Promise::new(), Promise::new(), Promise::new()];
                let tasks: Vec<Task<usize>> = (0..3).map(|i| gated(&gates[i], i)).collect();
                let mut done = spindle::as_completed(tasks.clone(), None).tasks();
                let mut seen = Vec::new();
                for i in [1, 2, 0] {
                    gates[i].set_result(())?;
                    let task = done.next().await.unwrap()?;
                    assert!(task.done());
                    assert_eq!(task.id(), tasks[i].id(), "the same task came out");
                    assert_eq!(task.await?, i);
                    seen.push(i);
                }
                assert_eq!(seen, [1, 2, 0]);
                assert!(done.next().await.is_none());

                // A task given twice comes out once.
                let t = spindle::spawn(async { spindle::Ok(7usize) });
                let mut done = spindle::as_completed([t.clone(), t.clone()], None).tasks();
                assert_eq!(done.remaining(), 1);
                assert_eq!(done.next().await.unwrap()?.id(), t.id());
                assert!(done.next().await.is_none());
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- cancellation and Stream ---------------------------------------------------

/// Waiting for the next outcome is a cancellation point: the cancellation
/// comes out of `next()` and consumes no slot.
#[test]
fn next_is_a_cancellation_point_that_consumes_no_slot() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (gate, started, cancelled) = (Promise::new(), Promise::new(), Promise::new());
                let member = gated(&gate, 9u32);
                let (m, s, c) = (member.clone(), started.clone(), cancelled.clone());
                let consumer = spindle::spawn(async move {
                    let mut results = spindle::as_completed([m], None);
                    s.set_result(())?;
                    // The gate opens only after the cancellation came out, so
                    // the member cannot win the race on the other worker.
                    let first = results.next().await.unwrap();
                    let cancel = first.unwrap_err();
                    assert!(cancel.is_cancelled());
                    assert_eq!(cancel.cancel_message(), Some("wake up"));
                    assert_eq!(results.remaining(), 1);
                    c.set_result(())?;
                    // Cleanup may still wait for the outcome.
                    results.next().await.unwrap()
                });
                started.await?;
                consumer.cancel_with("wake up");
                cancelled.await?;
                assert!(!member.done(), "the member was cancelled");
                gate.set_result(())?;
                assert_eq!(consumer.await?, 9);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Both forms are `Stream`s.
#[test]
fn as_completed_is_a_stream() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let gate = Promise::new();
                let tasks = [gated(&gate, 1u32), gated(&gate, 2u32)];
                gate.set_result(())?;
                let mut stream = spindle::as_completed(tasks.clone(), None);
                assert_eq!(stream.size_hint(), (2, Some(2)));
                let mut sum = 0;
                while let Some(item) =
                    std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
                {
                    sum += item?;
                }
                assert_eq!(sum, 3);

                let mut stream = spindle::as_completed(tasks.clone(), None).tasks();
                let mut count = 0;
                while let Some(task) =
                    std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await
                {
                    assert!(task?.done());
                    count += 1;
                }
                assert_eq!(count, 2);
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- seed scenario ------------------------------------------------------------

/// Print the fastest first: downloads of 300, 20 and 150 ms come out as 20,
/// 150, 300.
#[test]
fn seed_as_completed_prints_fastest_first() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let start = Instant::now();
                let downloads = [("big.iso", 300u64), ("tiny.txt", 20), ("photo.jpg", 150)];
                let mut finished = spindle::as_completed(
                    downloads.map(|(file, ms)| async move {
                        spindle::sleep(Duration::from_millis(ms)).await?;
                        spindle::Ok(format!("{file} after {ms} ms"))
                    }),
                    None,
                );
                let mut printed = Vec::new();
                while let Some(line) = finished.next().await {
                    let line = line?;
                    println!("{line}");
                    printed.push(line);
                }
                assert_eq!(
                    printed,
                    [
                        "tiny.txt after 20 ms",
                        "photo.jpg after 150 ms",
                        "big.iso after 300 ms"
                    ]
                );
                let elapsed = start.elapsed();
                assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
                assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
                spindle::Ok(())
            })
            .unwrap();
    });
}
