//! Spec section F: wait (`/work/shared/spec/asyncio-semantics.md`, cases
//! 40-44), and the seed scenario of racing servers.

mod common;
use common::{rt, within_limit};

use spindle::{Error, ErrorKind, Promise, ReturnWhen, Task};
use std::time::{Duration, Instant};

/// A task that returns `value` once `gate` is set.
fn gated<T: Send + 'static>(gate: &Promise<()>, value: T) -> Task<T> {
    let gate = gate.clone();
    spindle::spawn(async move {
        gate.await?;
        spindle::Ok(value)
    })
}

/// A task that fails with `Error::msg(text)` once `gate` is set.
fn failing_after(gate: &Promise<()>, text: &'static str) -> Task<u32> {
    let gate = gate.clone();
    spindle::spawn(async move {
        gate.await?;
        Err::<u32, _>(Error::msg(text))
    })
}

fn ids<T>(tasks: &[Task<T>]) -> Vec<spindle::TaskId> {
    tasks.iter().map(|t| t.id()).collect()
}

/// Yields a few times, giving other tasks a chance to run.
async fn settle() -> spindle::Result<()> {
    for _ in 0..20 {
        spindle::yield_now().await?;
    }
    Ok(())
}

// -- case 40 ------------------------------------------------------------------

/// FIRST_COMPLETED returns as soon as one finishes: done = {it}, pending = the
/// rest, which are not cancelled. (TT::test_wait_first_completed)
#[test]
fn case_40_first_completed_returns_the_first_done() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let gates = [Promise::new(), Promise::new(), Promise::new()];
                let tasks: Vec<Task<u32>> = (0..3).map(|i| gated(&gates[i], i as u32)).collect();
                let waiting = spindle::spawn(spindle::wait(
                    tasks.clone(),
                    ReturnWhen::FirstCompleted,
                    None,
                ));
                settle().await?;
                assert!(!waiting.done());
                gates[1].set_result(())?;
                let (done, pending) = waiting.await?;
                assert_eq!(ids(&done), ids(&tasks[1..2]));
                assert_eq!(done[0].result()?, 1);
                assert_eq!(ids(&pending), [tasks[0].id(), tasks[2].id()]);
                for task in &pending {
                    assert!(!task.done() && !task.cancelled());
                }
                gates[0].set_result(())?;
                gates[2].set_result(())?;
                assert_eq!(tasks[0].clone().await?, 0);
                assert_eq!(tasks[2].clone().await?, 2);

                // Already done: returns at once with it.
                let (done, pending) =
                    spindle::wait(tasks.clone(), ReturnWhen::FirstCompleted, None).await?;
                assert_eq!((done.len(), pending.len()), (3, 0));
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 41 ------------------------------------------------------------------

/// FIRST_EXCEPTION returns at the first failure; if nothing fails it acts like
/// ALL_COMPLETED; a cancelled member is not a failure.
/// (TT::test_wait_first_exception)
#[test]
fn case_41_first_exception() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                // Returns at the first failure, the others still pending.
                let (fail_gate, gate) = (Promise::new(), Promise::new());
                let ok = gated(&gate, 1u32);
                let fails = failing_after(&fail_gate, "boom");
                let waiting = spindle::spawn(spindle::wait(
                    vec![ok.clone(), fails.clone()],
                    ReturnWhen::FirstException,
                    None,
                ));
                fail_gate.set_result(())?;
                let (done, pending) = waiting.await?;
                assert_eq!(ids(&done), [fails.id()]);
                assert_eq!(ids(&pending), [ok.id()]);
                assert_eq!(done[0].exception()?.unwrap().to_string(), "boom");

                // A cancelled member is not a failure; a success is not either:
                // it waits for all.
                let (g1, g2, g3) = (Promise::new(), Promise::new(), Promise::new());
                let (a, b, c) = (gated(&g1, 1u32), gated(&g2, 2), gated(&g3, 3));
                let waiting = spindle::spawn(spindle::wait(
                    vec![a.clone(), b.clone(), c.clone()],
                    ReturnWhen::FirstException,
                    None,
                ));
                b.cancel();
                g1.set_result(())?;
                settle().await?;
                assert!(!waiting.done(), "a cancellation or success ended the wait");
                g3.set_result(())?;
                let (done, pending) = waiting.await?;
                assert_eq!(ids(&done), ids(&[a, b.clone(), c]));
                assert!(pending.is_empty());
                assert!(b.cancelled());
                drop(g2);
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 42 ------------------------------------------------------------------

/// On timeout wait returns (done, pending) without raising or cancelling;
/// timeout 0 returns (nothing, all), or what is already done.
/// (TT::test_wait_with_timeout)
#[test]
fn case_42_timeout_returns_without_cancelling() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (done_gate, gate) = (Promise::new(), Promise::new());
                let quick = gated(&done_gate, 1u32);
                let slow = gated(&gate, 2u32);
                done_gate.set_result(())?;
                let start = Instant::now();
                let (done, pending) = spindle::wait(
                    vec![quick.clone(), slow.clone()],
                    ReturnWhen::AllCompleted,
                    Some(Duration::from_millis(50)),
                )
                .await?;
                let elapsed = start.elapsed();
                assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
                assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
                assert_eq!(ids(&done), [quick.id()]);
                assert_eq!(ids(&pending), [slow.id()]);
                assert!(!slow.done() && !slow.cancelled());

                // Timeout zero: nothing new is waited for.
                let other = gated(&gate, 3u32);
                let (done, pending) = spindle::wait(
                    vec![slow.clone(), other.clone()],
                    ReturnWhen::AllCompleted,
                    Some(Duration::ZERO),
                )
                .await?;
                assert!(done.is_empty());
                assert_eq!(ids(&pending), [slow.id(), other.id()]);
                let (done, pending) = spindle::wait(
                    vec![slow.clone(), quick.clone()],
                    ReturnWhen::FirstCompleted,
                    Some(Duration::ZERO),
                )
                .await?;
                assert_eq!(
                    (ids(&done), ids(&pending)),
                    (vec![quick.id()], vec![slow.id()])
                );

                gate.set_result(())?;
                assert_eq!(slow.await?, 2, "not cancelled by the timeouts");
                assert_eq!(other.await?, 3);
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 43 ------------------------------------------------------------------

/// wait never raises the members' errors; cancelling the waiting task does
/// not cancel the members. (TT::test_wait_with_exception,
/// test_yield_wait_does_not_shield_cancel)
#[test]
fn case_43_never_raises_errors_and_cancel_does_not_cancel_members() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let gate = Promise::new();
                let fails = failing_after(&gate, "member failed");
                let ok = gated(&gate, 5u32);
                gate.set_result(())?;
                let (done, pending) = spindle::wait(
                    vec![fails.clone(), ok.clone()],
                    ReturnWhen::AllCompleted,
                    None,
                )
                .await?;
                assert_eq!(done.len(), 2);
                assert!(pending.is_empty());
                assert_eq!(fails.exception()?.unwrap().to_string(), "member failed");

                // Cancelling the waiter: it gets the cancellation, members run on.
                let (gate, started) = (Promise::new(), Promise::new());
                let members = vec![gated(&gate, 1u32), gated(&gate, 2u32)];
                let (m, s) = (members.clone(), started.clone());
                let waiter = spindle::spawn(async move {
                    s.set_result(())?;
                    spindle::wait(m, ReturnWhen::AllCompleted, None).await?;
                    spindle::Ok("not cancelled")
                });
                started.await?;
                waiter.cancel_with("give up");
                let err = waiter.clone().await.unwrap_err();
                assert!(err.is_cancelled());
                assert_eq!(err.cancel_message(), Some("give up"));
                assert!(waiter.cancelled());
                settle().await?;
                assert!(members.iter().all(|m| !m.done()), "members were cancelled");
                assert!(!gate.cancelled());
                gate.set_result(())?;
                assert_eq!(members[0].clone().await?, 1);
                assert_eq!(members[1].clone().await?, 2);
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- case 44 ------------------------------------------------------------------

/// wait of an empty set is an invalid-argument error; duplicates are
/// removed. (TT::test_wait_errors; an invalid return_when cannot be written)
#[test]
fn case_44_empty_set_is_an_error_and_duplicates_are_removed() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let err = spindle::wait(Vec::<Task<u32>>::new(), ReturnWhen::default(), None)
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidArgument);

                let gate = Promise::new();
                let (a, b) = (gated(&gate, 1u32), gated(&gate, 2u32));
                let wait = spindle::wait(
                    vec![a.clone(), b.clone(), a.clone(), b.clone(), a.clone()],
                    ReturnWhen::AllCompleted,
                    None,
                );
                assert_eq!(ids(wait.tasks()), [a.id(), b.id()]);
                gate.set_result(())?;
                let (done, pending) = wait.await?;
                assert_eq!(ids(&done), [a.id(), b.id()]);
                assert!(pending.is_empty());
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- seed scenario ------------------------------------------------------------

/// Race three "servers" for the same answer: take the first reply, cancel the
/// others.
#[test]
fn seed_wait_first_completed_races_servers_and_cancels_the_rest() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let servers: Vec<Task<String>> = [("eu", 2_000u64), ("us", 20), ("asia", 3_000)]
                    .into_iter()
                    .map(|(name, latency)| {
                        spindle::task::Builder::new().name(name).spawn(async move {
                            spindle::sleep(Duration::from_millis(latency)).await?;
                            spindle::Ok(format!("reply from {name}"))
                        })
                    })
                    .collect();
                let start = Instant::now();
                let (done, pending) =
                    spindle::wait(servers.clone(), ReturnWhen::FirstCompleted, None).await?;
                assert!(start.elapsed() < Duration::from_millis(1_500));
                assert_eq!(done.len(), 1);
                assert_eq!(done[0].name(), "us");
                assert_eq!(done[0].result()?, "reply from us");
                for task in &pending {
                    task.cancel_with("another server answered");
                }
                let (done, pending) =
                    spindle::wait(pending, ReturnWhen::AllCompleted, None).await?;
                assert!(pending.is_empty());
                for task in &done {
                    assert!(task.cancelled(), "{task:?}");
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}
