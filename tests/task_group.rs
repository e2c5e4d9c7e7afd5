//! Spec section J: `TaskGroup` (`/work/shared/spec/asyncio-semantics.md`,
//! cases 71-81), plus case 70 (a group inside a timeout scope), nested groups,
//! splitting the `ErrorGroup` like `except*`, bad input, dropped groups and
//! panicking children. Every case was checked against CPython 3.13
//! (`test_taskgroups.py`, `taskgroups.py`).

mod common;
use common::{current, hold_permit_for_an_hour, rt, until_all_waiting, within_limit};

use spindle::task::Builder as TaskBuilder;
use spindle::{
    task_group, Error, ErrorGroup, ErrorKind, Promise, Runtime, Task, TaskGroup, Timeout,
};
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Longer than any test may take: a sleep this long only ends by cancellation.
const LONG: Duration = Duration::from_secs(60);

/// A runtime that records the kinds of unhandled-error reports.
fn recording_rt(workers: usize) -> (Runtime, Arc<Mutex<Vec<String>>>) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let rt = Runtime::builder()
        .worker_threads(workers)
        .on_unhandled_error(move |report| {
            sink.lock()
                .unwrap()
                .push(format!("{:?}: {report}", report.kind()))
        })
        .build()
        .unwrap();
    (rt, reports)
}

/// A user error (Python's `MyExc` / `ZeroDivisionError` in the CPython tests).
#[derive(Debug)]
struct MyError(String);

impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MyError {}

/// Another user error type, for splitting by type.
#[derive(Debug)]
struct OtherError(String);

impl fmt::Display for OtherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OtherError {}

fn my(message: &str) -> Error {
    Error::from(MyError(message.to_string()))
}

fn other(message: &str) -> Error {
    Error::from(OtherError(message.to_string()))
}

type Log = Arc<Mutex<Vec<String>>>;

fn new_log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// The group inside an error, or a panic naming what it was instead.
fn group_of(err: &Error) -> ErrorGroup {
    err.as_group()
        .unwrap_or_else(|| panic!("expected an ErrorGroup, got {err:?}"))
        .clone()
}

/// The messages of a group's direct errors, in order.
fn messages(group: &ErrorGroup) -> Vec<String> {
    group.errors().iter().map(|e| e.to_string()).collect()
}

/// Asserts that no error anywhere in the group is a cancellation.
fn assert_no_cancelled(group: &ErrorGroup) {
    for leaf in group.leaves() {
        assert!(!leaf.is_cancelled(), "a Cancelled in the group: {group:?}");
    }
    let (cancelled, _) = group.split(|e| e.is_cancelled());
    assert!(cancelled.is_none(), "a Cancelled in the group: {group:?}");
}

/// A future that sets `polled` if it ever runs and `dropped` when it is
/// dropped (run or not).
fn probe(
    polled: &Arc<AtomicBool>,
    dropped: &Arc<AtomicBool>,
) -> impl Future<Output = spindle::Result<()>> + Send + 'static {
    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let guard = OnDrop(dropped.clone());
    let polled = polled.clone();
    async move {
        let _guard = guard;
        polled.store(true, Ordering::SeqCst);
        spindle::Ok(())
    }
}

/// A child that sleeps "forever"; when cancelled it logs `cancelled <name>`,
/// awaits `cleanup` (cleanup may await), logs `cleanup <name>` and ends
/// cancelled.
fn sleeper(
    name: &str,
    log: &Log,
    cleanup: Duration,
) -> impl Future<Output = spindle::Result<u32>> + Send + 'static {
    let (name, log) = (name.to_string(), log.clone());
    async move {
        match spindle::sleep(LONG).await {
            Err(e) if e.is_cancelled() => {
                push(&log, format!("cancelled {name}"));
                spindle::sleep(cleanup).await?;
                push(&log, format!("cleanup {name}"));
                Err(e)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(0),
        }
    }
}

fn panic_in_child() -> u32 {
    panic!("boom in child")
}

// -- case 71 ------------------------------------------------------------------

/// Exit waits for every child. (TG::test_taskgroup_01)
#[test]
fn case_71_exit_waits_for_every_child() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let start = Instant::now();
            let (t1, t2) = task_group(|tg| async move {
                let t1 = tg.spawn(async {
                    spindle::sleep(Duration::from_millis(20)).await?;
                    spindle::Ok(42u32)
                })?;
                let t2 = tg.spawn(async {
                    spindle::sleep(Duration::from_millis(40)).await?;
                    spindle::Ok(11u32)
                })?;
                spindle::Ok((t1, t2))
            })
            .await?;
            assert!(start.elapsed() >= Duration::from_millis(40));
            assert!(t1.done() && t2.done());
            assert_eq!(t1.result()?, 42);
            assert_eq!(t2.result()?, 11);
            assert_eq!(current().cancelling(), 0);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A child spawned after the body awaited is waited for too.
/// (TG::test_taskgroup_02)
#[test]
fn case_71_child_spawned_later_in_body_is_waited_for() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (t1, t2) = task_group(|tg| async move {
                let t1 = tg.spawn(async {
                    spindle::sleep(Duration::from_millis(10)).await?;
                    spindle::Ok(42u32)
                })?;
                spindle::sleep(Duration::from_millis(15)).await?;
                let t2 = tg.spawn(async {
                    spindle::sleep(Duration::from_millis(20)).await?;
                    spindle::Ok(11u32)
                })?;
                spindle::Ok((t1, t2))
            })
            .await?;
            assert_eq!(t1.result()?, 42);
            assert_eq!(t2.result()?, 11);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Children created by another child while the group is already exiting are
/// waited for as well. (TG::test_taskgroup_24)
#[test]
fn case_71_exit_waits_for_children_spawned_by_children_while_exiting() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let finished = Arc::new(AtomicUsize::new(0));
            let grandchildren: Arc<Mutex<Vec<Task<()>>>> = Arc::default();
            let (f, g) = (finished.clone(), grandchildren.clone());
            task_group(|tg| async move {
                let inner = tg.clone();
                tg.spawn(async move {
                    // The body has returned by now: the group is exiting.
                    spindle::sleep(Duration::from_millis(10)).await?;
                    for delay in [10, 20] {
                        let f = f.clone();
                        let t = inner.spawn(async move {
                            spindle::sleep(Duration::from_millis(delay)).await?;
                            f.fetch_add(1, Ordering::SeqCst);
                            spindle::Ok(())
                        })?;
                        g.lock().unwrap().push(t);
                    }
                    spindle::Ok(())
                })?;
                spindle::Ok(())
            })
            .await?;
            assert_eq!(finished.load(Ordering::SeqCst), 2, "both grandchildren ran");
            let grandchildren = grandchildren.lock().unwrap().clone();
            assert_eq!(grandchildren.len(), 2);
            assert!(grandchildren.iter().all(|t| t.done() && !t.cancelled()));
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 72 ------------------------------------------------------------------

/// A child cancelled on its own is ignored; the others complete and the group
/// succeeds. (TG::test_taskgroup_03)
#[test]
fn case_72_child_cancelled_on_its_own_is_ignored() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let start = Instant::now();
            let (t1, t2, late) = task_group(|tg| async move {
                let t1 = tg.spawn(async {
                    spindle::sleep(LONG).await?;
                    spindle::Ok(42u32)
                })?;
                spindle::sleep(Duration::from_millis(15)).await?;
                t1.cancel();
                let t2 = tg.spawn(async {
                    spindle::sleep(Duration::from_millis(20)).await?;
                    spindle::Ok(11u32)
                })?;
                // The body is not cancelled: it goes on awaiting normally.
                spindle::sleep(Duration::from_millis(5)).await?;
                // And the group still accepts children.
                let late = tg.spawn(async { spindle::Ok(7u32) })?;
                spindle::Ok((t1, t2, late))
            })
            .await?;
            assert!(t1.cancelled());
            assert_eq!(t2.result()?, 11);
            assert_eq!(late.result()?, 7);
            assert_eq!(current().cancelling(), 0);
            assert!(start.elapsed() < Duration::from_secs(20));
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 73 ------------------------------------------------------------------

/// The first child failure cancels the other children and the body's current
/// await; code after it does not run; the group fails with [the error]; the
/// runner is not cancelled. (TG::test_taskgroup_04)
#[test]
fn case_73_child_failure_cancels_siblings_and_body() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let num = Arc::new(AtomicUsize::new(0));
            let t2_cancel = Arc::new(AtomicBool::new(false));
            let runner_cancel = Arc::new(AtomicBool::new(false));
            let t2_slot: Arc<Mutex<Option<Task<()>>>> = Arc::default();
            let runner = {
                let (num, t2_cancel, runner_cancel, t2_slot) = (
                    num.clone(),
                    t2_cancel.clone(),
                    runner_cancel.clone(),
                    t2_slot.clone(),
                );
                spindle::spawn(async move {
                    let outer_num = num.clone();
                    task_group(|g| async move {
                        // foo1 fails 10 ms after foo2 runs (as in asyncio,
                        // where foo2 has started by then).
                        let (go, t2_started) = (Promise::<()>::new(), Promise::<()>::new());
                        let (foo1_go, foo2_started) = (go.clone(), t2_started.clone());
                        g.spawn(async move {
                            foo1_go.await?;
                            spindle::sleep(Duration::from_millis(10)).await?;
                            Err::<(), _>(my("division by zero"))
                        })?;
                        let num2 = num.clone();
                        let t2 = g.spawn(async move {
                            foo2_started.set_result(())?;
                            match spindle::sleep(LONG).await {
                                Err(e) if e.is_cancelled() => {
                                    t2_cancel.store(true, Ordering::SeqCst);
                                    return Err(e);
                                }
                                other => other?,
                            }
                            num2.fetch_add(1, Ordering::SeqCst);
                            spindle::Ok(())
                        })?;
                        *t2_slot.lock().unwrap() = Some(t2);
                        t2_started.await?;
                        go.set_result(())?;
                        match spindle::sleep(LONG).await {
                            Err(e) if e.is_cancelled() => {
                                runner_cancel.store(true, Ordering::SeqCst);
                                return Err(e);
                            }
                            other => other?,
                        }
                        num.fetch_add(100, Ordering::SeqCst);
                        spindle::Ok(())
                    })
                    .await?;
                    outer_num.fetch_add(10, Ordering::SeqCst);
                    spindle::Ok(())
                })
            };
            let err = runner.clone().await.unwrap_err();
            let group = group_of(&err);
            assert_eq!(messages(&group), ["division by zero"]);
            assert!(group.errors()[0].downcast_ref::<MyError>().is_some());
            assert_eq!(group.message(), "unhandled errors in a TaskGroup");
            assert_eq!(
                num.load(Ordering::SeqCst),
                0,
                "no code ran after the awaits"
            );
            assert!(t2_cancel.load(Ordering::SeqCst));
            assert!(
                runner_cancel.load(Ordering::SeqCst),
                "the body saw Cancelled"
            );
            let t2 = t2_slot.lock().unwrap().clone().unwrap();
            assert!(t2.cancelled());
            assert!(
                !runner.cancelled(),
                "the runner failed, it was not cancelled"
            );
            assert_eq!(runner.state(), spindle::TaskState::Failed);
            assert_eq!(runner.cancelling(), 0, "the group withdrew its request");
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Several children failing at about the same time: the group holds between
/// one and three of their errors (the others may be cancelled first, as the
/// CPython test notes), never a Cancelled. (TG::test_cancel_children_on_child_error)
#[test]
fn case_73_several_failing_children_no_cancelled_in_group() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let log = new_log();
            let l = log.clone();
            let err = task_group(|g| async move {
                for _ in 0..3 {
                    g.spawn(async {
                        spindle::sleep(Duration::from_millis(10)).await?;
                        Err::<(), _>(my("division by zero"))
                    })?;
                }
                g.spawn(sleeper("foo2", &l, Duration::ZERO))?;
                match spindle::sleep(LONG).await {
                    Err(e) if e.is_cancelled() => {
                        push(&l, "runner cancelled");
                        Err(e)
                    }
                    other => other,
                }
            })
            .await
            .unwrap_err();
            let group = group_of(&err);
            assert!((1..=3).contains(&group.len()), "{group:?}");
            assert!(group.iter().all(|e| e.to_string() == "division by zero"));
            assert_no_cancelled(&group);
            let log = entries(&log);
            assert!(log.contains(&"runner cancelled".to_string()), "{log:?}");
            assert_eq!(current().cancelling(), 0);
            // Not left cancelled: the next await runs normally.
            spindle::sleep(Duration::from_millis(1)).await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The group's errors are the children's in completion order, then the
/// body's. The children fail in their cleanup, each one after the previous
/// one is done (it awaits it), so the completion order is fixed.
/// (Checked with CPython 3.13: ['trigger', 'c0', 'c1', 'c2', 'body'].)
#[test]
fn case_73_errors_in_completion_order_then_body() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let log = new_log();
            let l = log.clone();
            let err = task_group(|tg| async move {
                let go = Promise::<()>::new();
                let trigger_go = go.clone();
                tg.spawn(async move {
                    trigger_go.await?;
                    Err::<(), _>(my("trigger"))
                })?;
                let mut prev: Option<Task<()>> = None;
                let mut started = Vec::new();
                for k in 0..3 {
                    let s = Promise::<()>::new();
                    started.push(s.clone());
                    let l = l.clone();
                    let before = prev.take();
                    prev = Some(tg.spawn(async move {
                        s.set_result(())?;
                        match spindle::sleep(LONG).await {
                            Err(e) if e.is_cancelled() => {
                                push(&l, format!("c{k} cleanup"));
                                if let Some(before) = before {
                                    let _ = before.await;
                                }
                                Err(my(&format!("c{k}")))
                            }
                            other => other,
                        }
                    })?);
                }
                for s in started {
                    s.await?;
                }
                go.set_result(())?;
                match spindle::sleep(LONG).await {
                    Err(e) if e.is_cancelled() => {
                        push(&l, "body cancelled");
                        Err::<(), _>(my("body"))
                    }
                    other => other,
                }
            })
            .await
            .unwrap_err();
            let group = group_of(&err);
            assert_eq!(messages(&group), ["trigger", "c0", "c1", "c2", "body"]);
            assert_no_cancelled(&group);
            let mut log = entries(&log);
            log.sort();
            assert_eq!(
                log,
                ["body cancelled", "c0 cleanup", "c1 cleanup", "c2 cleanup"]
            );
            assert_eq!(current().cancelling(), 0);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The group never holds a Cancelled: children that end cancelled, one that
/// swallows the cancel and returns a value, and the body's cancellation are
/// all left out. (taskgroups.py `_on_task_done` / `__aexit__`)
#[test]
fn case_73_group_never_contains_cancelled() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let log = new_log();
            let l = log.clone();
            let swallower: Arc<Mutex<Option<Task<u32>>>> = Arc::default();
            let s_slot = swallower.clone();
            let err = task_group(|tg| async move {
                let ready = Promise::<()>::new();
                let mut started = vec![ready.clone()];
                let r = ready.clone();
                let swallow = tg.spawn(async move {
                    r.set_result(())?;
                    match spindle::sleep(LONG).await {
                        Err(e) if e.is_cancelled() => spindle::Ok(5u32),
                        other => other.map(|()| 0),
                    }
                })?;
                *s_slot.lock().unwrap() = Some(swallow);
                for name in ["a", "b", "c"] {
                    let s = Promise::<()>::new();
                    started.push(s.clone());
                    let child = sleeper(name, &l, Duration::from_millis(1));
                    tg.spawn(async move {
                        s.set_result(())?;
                        child.await
                    })?;
                }
                for s in started {
                    s.await?;
                }
                tg.spawn(async { Err::<(), _>(my("the one failure")) })?;
                // The body's cancellation propagates out of it.
                spindle::sleep(LONG).await?;
                spindle::Ok(())
            })
            .await
            .unwrap_err();
            let group = group_of(&err);
            assert_eq!(messages(&group), ["the one failure"]);
            assert_no_cancelled(&group);
            let swallower = swallower.lock().unwrap().clone().unwrap();
            assert_eq!(swallower.result()?, 5, "a swallowed cancel is a value");
            let mut log = entries(&log);
            log.sort();
            assert_eq!(
                log,
                [
                    "cancelled a",
                    "cancelled b",
                    "cancelled c",
                    "cleanup a",
                    "cleanup b",
                    "cleanup c"
                ]
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// After the group failed and the error was handled, the parent is not left
/// cancelled. (TG::test_cancelling_level_preserved)
#[test]
fn case_73_cancelling_level_preserved() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let err = task_group(|tg| async move {
                tg.spawn(async {
                    spindle::yield_now().await?;
                    Err::<(), _>(my("runtime error"))
                })?;
                spindle::Ok(())
            })
            .await
            .unwrap_err();
            assert_eq!(messages(&group_of(&err)), ["runtime error"]);
            assert_eq!(current().cancelling(), 0);
            spindle::sleep(Duration::from_millis(1)).await?;
            spindle::yield_now().await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 74 ------------------------------------------------------------------

/// The body fails after an await: the children are cancelled and the group
/// holds the body's error. (TG::test_taskgroup_09)
#[test]
fn case_74_body_failure_cancels_children() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let start = Instant::now();
            let slots: Arc<Mutex<Vec<Task<u32>>>> = Arc::default();
            let s = slots.clone();
            let err = task_group(|g| async move {
                for value in [42u32, 11] {
                    s.lock().unwrap().push(g.spawn(async move {
                        spindle::sleep(LONG).await?;
                        spindle::Ok(value)
                    })?);
                }
                spindle::sleep(Duration::from_millis(10)).await?;
                Err::<(), _>(my("division by zero"))
            })
            .await
            .unwrap_err();
            let group = group_of(&err);
            assert_eq!(messages(&group), ["division by zero"]);
            assert!(group.errors()[0].downcast_ref::<MyError>().is_some());
            let children = slots.lock().unwrap().clone();
            assert!(children.iter().all(|t| t.cancelled()));
            assert_eq!(current().cancelling(), 0);
            assert!(start.elapsed() < Duration::from_secs(20));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The body fails without awaiting at all: the children are cancelled.
/// (TG::test_taskgroup_10)
#[test]
fn case_74_body_failure_without_await_cancels_children() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let slots: Arc<Mutex<Vec<Task<u32>>>> = Arc::default();
            let s = slots.clone();
            let err = task_group(|g| async move {
                for value in [42u32, 11] {
                    s.lock().unwrap().push(g.spawn(async move {
                        spindle::sleep(LONG).await?;
                        spindle::Ok(value)
                    })?);
                }
                Err::<(), _>(my("body"))
            })
            .await
            .unwrap_err();
            assert_eq!(messages(&group_of(&err)), ["body"]);
            let children = slots.lock().unwrap().clone();
            assert_eq!(children.len(), 2);
            assert!(children.iter().all(|t| t.cancelled()));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A child fails, the body is cancelled and its cleanup fails with another
/// error: both are in the group, the child's first. (TG::test_taskgroup_19;
/// order checked with CPython 3.13: (ZeroDivisionError, MyExc))
#[test]
fn case_74_body_cleanup_error_is_included_after_child_error() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let runner = spindle::spawn(async {
                task_group(|g| async move {
                    g.spawn(async {
                        spindle::sleep(Duration::from_millis(10)).await?;
                        Err::<(), _>(my("division by zero"))
                    })?;
                    // nested(): try: sleep(10) finally: raise MyExc
                    let _ = spindle::sleep(LONG).await;
                    Err::<(), _>(other("MyExc in finally"))
                })
                .await
            });
            let err = runner.clone().await.unwrap_err();
            let group = group_of(&err);
            assert_eq!(messages(&group), ["division by zero", "MyExc in finally"]);
            assert!(group.errors()[0].downcast_ref::<MyError>().is_some());
            assert!(group.errors()[1].downcast_ref::<OtherError>().is_some());
            assert_eq!(runner.cancelling(), 0);
            assert!(!runner.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The body fails; the children fail in their cleanup: the group holds the
/// children's errors, then the body's. (Checked with CPython 3.13:
/// (MyExc(0), MyExc(2), MyExc(1), ValueError('body')).)
#[test]
fn case_74_children_cleanup_errors_then_body_error() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let err = task_group(|g| async move {
                let mut started = Vec::new();
                for k in 0..3 {
                    let s = Promise::<()>::new();
                    started.push(s.clone());
                    g.spawn(async move {
                        s.set_result(())?;
                        match spindle::sleep(LONG).await {
                            Err(e) if e.is_cancelled() => Err(my(&format!("child {k}"))),
                            other => other,
                        }
                    })?;
                }
                for s in started {
                    s.await?;
                }
                Err::<(), _>(other("body"))
            })
            .await
            .unwrap_err();
            let group = group_of(&err);
            assert_eq!(group.len(), 4, "{group:?}");
            assert_eq!(
                group.errors()[3].to_string(),
                "body",
                "the body's error is last"
            );
            let mut children: Vec<String> = messages(&group)[..3].to_vec();
            children.sort();
            assert_eq!(children, ["child 0", "child 1", "child 2"]);
            assert_no_cancelled(&group);
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 76 ------------------------------------------------------------------

/// Spawns the runner of case 76: a group with `children` children that log
/// their cancel and cleanup (cleanup awaits `cleanup`); the body signals
/// `ready` and then, if `in_body`, sleeps (logging its cancel) or else
/// returns and the group waits at exit.
fn runner_76(
    children: usize,
    in_body: bool,
    cleanup: Duration,
    log: &Log,
    ready: &Promise<()>,
    slots: &Arc<Mutex<Vec<Task<u32>>>>,
) -> Task<()> {
    let (log, ready, slots) = (log.clone(), ready.clone(), slots.clone());
    spindle::spawn(async move {
        let outer_log = log.clone();
        task_group(|g| async move {
            let mut started = Vec::new();
            for k in 0..children {
                let s = Promise::<()>::new();
                started.push(s.clone());
                let child = sleeper(&format!("child {k}"), &log, cleanup);
                slots.lock().unwrap().push(g.spawn(async move {
                    s.set_result(())?;
                    child.await
                })?);
            }
            for s in started {
                s.await?;
            }
            ready.set_result(())?;
            if in_body {
                match spindle::sleep(LONG).await {
                    Err(e) if e.is_cancelled() => {
                        push(&log, format!("body cancelled: {:?}", e.cancel_message()));
                        return Err(e);
                    }
                    other => other?,
                }
                push(&log, "body went on");
            }
            spindle::Ok(())
        })
        .await?;
        push(&outer_log, "after the group");
        spindle::Ok(())
    })
}

/// The parent is cancelled from outside while the body awaits: the children
/// are cancelled (their cleanup runs before the group ends) and the Cancelled
/// propagates with the outside message. (TG::test_taskgroup_07)
#[test]
fn case_76_outside_cancel_in_body_cancels_children_and_propagates() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (log, ready, slots) = (new_log(), Promise::new(), Arc::default());
            let r = runner_76(5, true, Duration::from_millis(5), &log, &ready, &slots);
            ready.await?;
            assert!(!r.done());
            r.cancel_with("stop");
            let err = r.clone().await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            assert_eq!(err.cancel_message(), Some("stop"));
            assert!(r.cancelled());
            let log = entries(&log);
            assert_eq!(
                log.iter()
                    .filter(|e| e.starts_with("cleanup child"))
                    .count(),
                5,
                "every child's cleanup finished before the group ended: {log:?}"
            );
            assert!(
                log.contains(&"body cancelled: Some(\"stop\")".to_string()),
                "{log:?}"
            );
            assert!(!log
                .iter()
                .any(|e| e == "body went on" || e == "after the group"));
            let children = slots.lock().unwrap().clone();
            assert!(children.iter().all(|t| t.cancelled()));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The parent is cancelled from outside while the group waits at exit: the
/// same. (TG::test_cancellation, test_taskgroup_22)
#[test]
fn case_76_outside_cancel_at_exit_cancels_children_and_propagates() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (log, ready, slots) = (new_log(), Promise::new(), Arc::default());
            let r = runner_76(5, false, Duration::from_millis(5), &log, &ready, &slots);
            ready.await?;
            assert!(!r.done());
            r.cancel_with("stop");
            let err = r.clone().await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            assert_eq!(err.cancel_message(), Some("stop"));
            assert!(r.cancelled());
            let log = entries(&log);
            assert_eq!(
                log.iter()
                    .filter(|e| e.starts_with("cleanup child"))
                    .count(),
                5,
                "{log:?}"
            );
            assert!(!log.contains(&"after the group".to_string()));
            let children = slots.lock().unwrap().clone();
            assert_eq!(children.len(), 5);
            assert!(children.iter().all(|t| t.cancelled()));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A group without children: the cancel reaches the body and propagates.
/// (TG::test_taskgroup_17)
#[test]
fn case_76_outside_cancel_without_children() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (log, ready, slots) = (new_log(), Promise::new(), Arc::default());
            let r = runner_76(0, true, Duration::ZERO, &log, &ready, &slots);
            ready.await?;
            r.cancel_with("stop");
            let err = r.clone().await.unwrap_err();
            assert_eq!(err.cancel_message(), Some("stop"));
            assert!(r.cancelled());
            assert_eq!(entries(&log), ["body cancelled: Some(\"stop\")"]);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// After an outside cancel, the body's cancel handler may still spawn (the
/// group is not shutting down yet); that child is cancelled with the others,
/// and a child's cleanup cannot spawn any more. (Checked with CPython 3.13:
/// ['body spawn ok', ('child', '... is shutting down')].)
#[test]
fn case_76_spawn_in_body_cancel_handler_is_allowed_then_cancelled() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let log = new_log();
            let ready = Promise::<()>::new();
            let late: Arc<Mutex<Option<Task<()>>>> = Arc::default();
            let r = {
                let (log, ready, late) = (log.clone(), ready.clone(), late.clone());
                spindle::spawn(async move {
                    task_group(|g| async move {
                        let s = Promise::<()>::new();
                        let (child_s, child_g, child_log) = (s.clone(), g.clone(), log.clone());
                        g.spawn(async move {
                            child_s.set_result(())?;
                            let outcome = spindle::sleep(LONG).await;
                            let spawned = child_g.spawn(async { spindle::Ok(()) });
                            push(
                                &child_log,
                                match spawned {
                                    Ok(_) => "child spawn ok".to_string(),
                                    Err(e) => format!("child spawn: {:?}", e.kind()),
                                },
                            );
                            outcome
                        })?;
                        s.await?;
                        ready.set_result(())?;
                        match spindle::sleep(LONG).await {
                            Err(e) if e.is_cancelled() => {
                                let t = g.spawn(async {
                                    spindle::sleep(LONG).await?;
                                    spindle::Ok(())
                                })?;
                                push(&log, "body spawn ok");
                                *late.lock().unwrap() = Some(t);
                                Err(e)
                            }
                            other => other,
                        }
                    })
                    .await
                })
            };
            ready.await?;
            r.cancel();
            let err = r.clone().await.unwrap_err();
            assert!(err.is_cancelled());
            let mut log = entries(&log);
            log.sort();
            assert_eq!(log, ["body spawn ok", "child spawn: InvalidState"]);
            let late = late.lock().unwrap().clone().unwrap();
            assert!(
                late.cancelled(),
                "the late child was cancelled by the group"
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Cancelled from outside, the children fail in their cleanup: the group
/// fails with their errors and no Cancelled; the runner keeps its cancel
/// request (cancelling() stays 1). (TG::test_taskgroup_08; cancelling checked
/// with CPython 3.13)
#[test]
fn case_76_outside_cancel_children_cleanup_errors_give_group() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let ready = Promise::<()>::new();
            let r = {
                let ready = ready.clone();
                spindle::spawn(async move {
                    task_group(|g| async move {
                        let mut started = Vec::new();
                        for _ in 0..5 {
                            let s = Promise::<()>::new();
                            started.push(s.clone());
                            g.spawn(async move {
                                s.set_result(())?;
                                let _ = spindle::sleep(LONG).await;
                                Err::<(), _>(my("division by zero"))
                            })?;
                        }
                        for s in started {
                            s.await?;
                        }
                        ready.set_result(())?;
                        spindle::sleep(LONG).await?;
                        spindle::Ok(())
                    })
                    .await
                })
            };
            ready.await?;
            r.cancel_with("m");
            let err = r.clone().await.unwrap_err();
            let group = group_of(&err);
            assert_eq!(group.len(), 5, "{group:?}");
            assert!(group.iter().all(|e| e.downcast_ref::<MyError>().is_some()));
            assert_no_cancelled(&group);
            assert!(!r.cancelled());
            assert_eq!(r.cancelling(), 1);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Cancelled from outside; while the body cleans up, a child fails: the
/// group fails with [that error]. (TG::test_taskgroup_15, made deterministic:
/// the child fails when the body's cancel handler lets it; checked with
/// CPython 3.13)
#[test]
fn case_76_child_failure_during_outside_cancel_gives_group() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let ready = Promise::<()>::new();
            let r = {
                let ready = ready.clone();
                spindle::spawn(async move {
                    task_group(|g| async move {
                        let go = Promise::<()>::new();
                        let child_go = go.clone();
                        g.spawn(async move {
                            child_go.await?;
                            Err::<(), _>(my("division by zero"))
                        })?;
                        ready.set_result(())?;
                        match spindle::sleep(LONG).await {
                            Err(e) if e.is_cancelled() => {
                                go.set_result(())?;
                                // Cancelled again, by the group this time.
                                spindle::sleep(LONG).await?;
                                Err(e)
                            }
                            other => other,
                        }
                    })
                    .await
                })
            };
            ready.await?;
            r.cancel();
            let err = r.clone().await.unwrap_err();
            assert_eq!(messages(&group_of(&err)), ["division by zero"]);
            assert!(!r.cancelled());
            assert_eq!(r.cancelling(), 1, "the outside request is kept");
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A child fails, and while the group waits at exit for another child's
/// cleanup the parent is cancelled from outside: the group keeps waiting for
/// that cleanup, then fails with [the error]; the outside request is kept and
/// delivered at the parent's next await. (Checked with CPython 3.13:
/// ('group', ['bad'], 1, 'cancelled', ()) and the task not done meanwhile.)
#[test]
fn case_76_outside_cancel_while_group_aborts_at_exit_is_kept() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let in_cleanup = Promise::<()>::new();
            let release = Promise::<()>::new();
            let r = {
                let (in_cleanup, release) = (in_cleanup.clone(), release.clone());
                spindle::spawn(async move {
                    let outcome = task_group(|g| async move {
                        let s = Promise::<()>::new();
                        let started = s.clone();
                        g.spawn(async move {
                            started.set_result(())?;
                            match spindle::sleep(LONG).await {
                                Err(e) if e.is_cancelled() => {
                                    in_cleanup.set_result(())?;
                                    release.await?;
                                    Err(e)
                                }
                                other => other,
                            }
                        })?;
                        s.await?;
                        g.spawn(async {
                            spindle::sleep(Duration::from_millis(1)).await?;
                            Err::<(), _>(my("bad"))
                        })?;
                        spindle::Ok(())
                    })
                    .await;
                    let group = outcome.as_ref().err().and_then(|e| e.as_group().cloned());
                    let cancelling = current().cancelling();
                    let next = spindle::yield_now().await;
                    spindle::Ok((
                        group.map(|g| messages(&g)),
                        cancelling,
                        next.map_err(|e| (e.is_cancelled(), e.cancel_message().map(String::from))),
                    ))
                })
            };
            in_cleanup.await?;
            r.cancel_with("outside");
            spindle::sleep(Duration::from_millis(10)).await?;
            assert!(!r.done(), "the group still waits for the child's cleanup");
            release.set_result(())?;
            let (group, cancelling, next) = r.clone().await?;
            assert_eq!(group, Some(vec!["bad".to_string()]));
            assert_eq!(cancelling, 1);
            assert_eq!(
                next,
                Err((true, None)),
                "the request is re-armed, without message"
            );
            assert!(!r.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 78 ------------------------------------------------------------------

/// A body that turns its Cancelled into MyError makes the group fail with
/// [MyError]; the runner fails (not cancelled) and keeps its request.
/// (TG::test_taskgroup_18; cancelling() == 1 checked with CPython 3.13)
#[test]
fn case_78_body_turning_cancel_into_error_gives_group() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let num = Arc::new(AtomicUsize::new(0));
            let ready = Promise::<()>::new();
            let r = {
                let (num, ready) = (num.clone(), ready.clone());
                spindle::spawn(async move {
                    task_group(|_g| async move {
                        ready.set_result(())?;
                        match spindle::sleep(LONG).await {
                            Err(e) if e.is_cancelled() => {
                                num.fetch_add(10, Ordering::SeqCst);
                                Err(my("MyExc"))
                            }
                            other => other,
                        }
                    })
                    .await
                })
            };
            ready.await?;
            r.cancel();
            let err = r.clone().await.unwrap_err();
            let group = group_of(&err);
            assert_eq!(messages(&group), ["MyExc"]);
            assert!(group.errors()[0].downcast_ref::<MyError>().is_some());
            assert_eq!(num.load(Ordering::SeqCst), 10);
            assert!(!r.cancelled());
            assert_eq!(r.state(), spindle::TaskState::Failed);
            assert_eq!(r.cancelling(), 1);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Same, but the runner handles the group error (`except* MyExc`) and goes
/// on: the outside cancel request is still pending, so its next await is
/// cancelled. (Checked with CPython 3.13: cancelling 1, "cancelled again".)
#[test]
fn case_78_outside_cancel_still_pending_after_group_error() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let ready = Promise::<()>::new();
            let r = {
                let ready = ready.clone();
                spindle::spawn(async move {
                    let outcome = task_group(|_g| async move {
                        ready.set_result(())?;
                        match spindle::sleep(LONG).await {
                            Err(e) if e.is_cancelled() => Err(my("MyExc")),
                            other => other,
                        }
                    })
                    .await;
                    let handled = matches!(&outcome, Err(e) if e.as_group().is_some());
                    let cancelling = current().cancelling();
                    let next = spindle::yield_now().await;
                    spindle::Ok((handled, cancelling, next.map_err(|e| e.is_cancelled())))
                })
            };
            ready.await?;
            r.cancel();
            let (handled, cancelling, next) = r.clone().await?;
            assert!(handled);
            assert_eq!(cancelling, 1);
            assert_eq!(next, Err(true), "the next await is cancelled");
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 81 and other bad input ----------------------------------------------

/// Spawning into a group that was never entered is an invalid-state error and
/// the future never runs. (TG::test_taskgroup_not_entered)
#[test]
fn case_81_spawn_before_entry_is_error_and_never_runs() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (polled, dropped) = (Arc::default(), Arc::default());
            let tg = TaskGroup::new();
            let err = tg.spawn(probe(&polled, &dropped)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
            assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
            for _ in 0..3 {
                spindle::yield_now().await?;
            }
            assert!(!polled.load(Ordering::SeqCst), "the future never ran");
            // The group can still be used normally afterwards.
            let t = tg
                .run(async { tg.spawn(async { spindle::Ok(3u32) }) })
                .await?;
            assert_eq!(t.result()?, 3);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Spawning into a finished group is an invalid-state error and the future
/// never runs. (TG::test_taskgroup_finished)
#[test]
fn case_81_spawn_after_finish_is_error_and_never_runs() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let tg = TaskGroup::new();
            let child = tg
                .run(async {
                    tg.spawn(async {
                        spindle::sleep(Duration::from_millis(2)).await?;
                        spindle::Ok(1u32)
                    })
                })
                .await?;
            assert_eq!(child.result()?, 1);
            let (polled, dropped) = (Arc::default(), Arc::default());
            let err = tg.spawn(probe(&polled, &dropped)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
            assert!(dropped.load(Ordering::SeqCst));
            spindle::sleep(Duration::from_millis(2)).await?;
            assert!(!polled.load(Ordering::SeqCst), "the future never ran");

            // The same for a group that failed.
            let failed = TaskGroup::new();
            let outcome = failed
                .run(async { Err::<(), _>(my("body")) })
                .await
                .unwrap_err();
            assert!(outcome.as_group().is_some());
            let (polled, dropped) = (Arc::default(), Arc::default());
            let err = failed.spawn(probe(&polled, &dropped)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
            assert!(dropped.load(Ordering::SeqCst));
            spindle::sleep(Duration::from_millis(2)).await?;
            assert!(!polled.load(Ordering::SeqCst));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Spawning while the group shuts down after a failure is an invalid-state
/// error and the future never runs: from a child's cleanup and from the
/// body's. (TG::test_taskgroup_no_create_task_after_failure)
#[test]
fn case_81_spawn_while_shutting_down_is_error_and_never_runs() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (c_polled, c_dropped) = (Arc::new(AtomicBool::new(false)), Arc::default());
            let (b_polled, b_dropped) = (Arc::new(AtomicBool::new(false)), Arc::default());
            let kinds = new_log();
            let (cp, cd, bp, bd, k) = (
                c_polled.clone(),
                Arc::clone(&c_dropped),
                b_polled.clone(),
                Arc::clone(&b_dropped),
                kinds.clone(),
            );
            let err = task_group(|g| async move {
                let started = Promise::<()>::new();
                let s = started.clone();
                g.spawn(async move {
                    s.await?;
                    spindle::sleep(Duration::from_millis(1)).await?;
                    Err::<(), _>(my("division by zero"))
                })?;
                let (cg, ck) = (g.clone(), k.clone());
                g.spawn(async move {
                    started.set_result(())?;
                    match spindle::sleep(LONG).await {
                        Err(e) if e.is_cancelled() => {
                            let r = cg.spawn(probe(&cp, &cd));
                            push(
                                &ck,
                                format!("child: {:?}", r.map(|_| ()).map_err(|e| e.kind())),
                            );
                            Err(e)
                        }
                        other => other,
                    }
                })?;
                match spindle::sleep(LONG).await {
                    Err(e) if e.is_cancelled() => {
                        let r = g.spawn(probe(&bp, &bd));
                        push(
                            &k,
                            format!("body: {:?}", r.map(|_| ()).map_err(|e| e.kind())),
                        );
                        Err(e)
                    }
                    other => other,
                }
            })
            .await
            .unwrap_err();
            assert_eq!(messages(&group_of(&err)), ["division by zero"]);
            let mut kinds = entries(&kinds);
            kinds.sort();
            assert_eq!(
                kinds,
                ["body: Err(InvalidState)", "child: Err(InvalidState)"]
            );
            assert!(c_dropped.load(Ordering::SeqCst) && b_dropped.load(Ordering::SeqCst));
            spindle::sleep(Duration::from_millis(2)).await?;
            assert!(!c_polled.load(Ordering::SeqCst) && !b_polled.load(Ordering::SeqCst));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Entering a group twice is an error, after it finished and while it is
/// still entered; the second body never runs.
/// (TG::test_taskgroup_double_enter, test_taskgroup_already_entered)
#[test]
fn case_81_entering_a_group_twice_is_an_error() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let tg = TaskGroup::new();
            tg.run(async { spindle::Ok(()) }).await?;
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let err = tg
                .run(async move {
                    r.store(true, Ordering::SeqCst);
                    spindle::Ok(())
                })
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidState, "{err:?}");
            assert!(!ran.load(Ordering::SeqCst));

            let tg = TaskGroup::new();
            let inner = tg.clone();
            let (outcome, inner_ran) = tg
                .run(async move {
                    let ran = Arc::new(AtomicBool::new(false));
                    let r = ran.clone();
                    let outcome = inner
                        .run(async move {
                            r.store(true, Ordering::SeqCst);
                            spindle::Ok(())
                        })
                        .await;
                    // The group entered first still works.
                    let t = inner.spawn(async { spindle::Ok(2u32) })?;
                    assert_eq!(t.await?, 2);
                    spindle::Ok((outcome.map_err(|e| e.kind()), ran.load(Ordering::SeqCst)))
                })
                .await?;
            assert_eq!(outcome, Err(ErrorKind::InvalidState));
            assert!(!inner_ran);
            spindle::Ok(())
        })
        .unwrap();
    });
}

struct NoopWake;

impl std::task::Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Entering a group outside any task is a runtime error; the body never
/// runs and the group stays not entered. (TG::test_taskgroup_without_parent_task)
#[test]
fn entering_a_group_outside_a_task_is_an_error() {
    within_limit(|| {
        let rt = rt(1);
        let _inside_runtime = rt.handle().enter();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let tg = TaskGroup::new();
        let mut group = pin!(tg.run(async move {
            r.store(true, Ordering::SeqCst);
            spindle::Ok(())
        }));
        let waker = std::task::Waker::from(Arc::new(NoopWake));
        let mut cx = std::task::Context::from_waker(&waker);
        match group.as_mut().poll(&mut cx) {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Runtime, "{e:?}"),
            other => panic!("expected a runtime error, got {other:?}"),
        }
        assert!(!ran.load(Ordering::SeqCst));
        let (polled, dropped) = (Arc::default(), Arc::default());
        let err = tg.spawn(probe(&polled, &dropped)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "not entered: {err:?}");
        assert!(dropped.load(Ordering::SeqCst));
        assert!(!polled.load(Ordering::SeqCst));
    });
}

// -- nested groups -------------------------------------------------------------

/// An inner group failing inside an outer one: the outer's ErrorGroup holds
/// the inner's group, nested; the outer's other child is cancelled.
/// (TG::test_taskgroup_14)
#[test]
fn nested_inner_group_failure_is_nested_in_outer_group() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let outer_child: Arc<Mutex<Option<Task<()>>>> = Arc::default();
            let slot = outer_child.clone();
            let err = task_group(|g1| async move {
                *slot.lock().unwrap() = Some(g1.spawn(async {
                    spindle::sleep(LONG).await?;
                    Err::<(), _>(my("ValueError(10)"))
                })?);
                task_group(|g2| async move {
                    g2.spawn(async {
                        spindle::sleep(Duration::from_millis(10)).await?;
                        Err::<(), _>(my("ValueError(0.1)"))
                    })?;
                    spindle::Ok(())
                })
                .await?;
                spindle::Ok(())
            })
            .await
            .unwrap_err();
            let outer = group_of(&err);
            assert_eq!(outer.len(), 1, "{outer:?}");
            let inner = group_of(&outer.errors()[0]);
            assert_eq!(messages(&inner), ["ValueError(0.1)"]);
            assert_eq!(inner.message(), "unhandled errors in a TaskGroup");
            let leaves: Vec<String> = outer.leaves().iter().map(|e| e.to_string()).collect();
            assert_eq!(leaves, ["ValueError(0.1)"]);
            // Splitting keeps the nesting.
            let (matching, rest) = outer.split_by::<MyError>();
            assert!(rest.is_none());
            let matching = matching.unwrap();
            assert_eq!(matching.len(), 1);
            assert_eq!(group_of(&matching.errors()[0]).len(), 1);
            let outer_child = outer_child.lock().unwrap().clone().unwrap();
            assert!(outer_child.cancelled());
            assert_eq!(current().cancelling(), 0);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The outer group's child fails while the inner group waits: the inner
/// group is cancelled (its child too) and the outer fails with just the
/// outer child's error, not nested. (TG::test_taskgroup_13)
#[test]
fn nested_outer_child_failure_cancels_inner_group() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let inner_child: Arc<Mutex<Option<Task<()>>>> = Arc::default();
            let inner_outcome = new_log();
            let (slot, io) = (inner_child.clone(), inner_outcome.clone());
            let err = task_group(|g1| async move {
                g1.spawn(async {
                    spindle::sleep(Duration::from_millis(10)).await?;
                    Err::<(), _>(my("ValueError(0.1)"))
                })?;
                let outcome = task_group(|g2| async move {
                    *slot.lock().unwrap() = Some(g2.spawn(async {
                        spindle::sleep(LONG).await?;
                        Err::<(), _>(my("ValueError(10)"))
                    })?);
                    spindle::Ok(())
                })
                .await;
                push(
                    &io,
                    format!("{:?}", outcome.as_ref().map_err(|e| e.is_cancelled())),
                );
                outcome
            })
            .await
            .unwrap_err();
            let group = group_of(&err);
            assert_eq!(messages(&group), ["ValueError(0.1)"]);
            assert!(group.errors()[0].as_group().is_none());
            assert_eq!(
                entries(&inner_outcome),
                ["Err(true)"],
                "the inner group was cancelled"
            );
            let inner_child = inner_child.lock().unwrap().clone().unwrap();
            assert!(inner_child.cancelled());
            assert_eq!(current().cancelling(), 0);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Both groups fail: the inner with its child's error, the outer with its
/// own child's; the cancel requests are counted right at every step.
/// (TG::test_nested_groups_both_cancelled, made deterministic: as in asyncio
/// both children have started before either fails; the outer child fails
/// first, the inner child once it is done.)
#[test]
fn nested_groups_both_failing_keep_cancelling_levels() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let levels = new_log();
            let l = levels.clone();
            let err = task_group(|outer_tg| async move {
                let inner_started = Promise::<()>::new();
                let started = inner_started.clone();
                let outer_child = outer_tg.spawn(async move {
                    started.await?;
                    spindle::yield_now().await?;
                    Err::<(), _>(my("ValueError"))
                })?;
                let inner = task_group(|inner_tg| async move {
                    inner_tg.spawn(async move {
                        inner_started.set_result(())?;
                        let _ = outer_child.await;
                        Err::<(), _>(other("RuntimeError"))
                    })?;
                    spindle::Ok(())
                })
                .await;
                let inner = inner.unwrap_err();
                let inner = group_of(&inner);
                push(&l, format!("inner: {:?}", messages(&inner)));
                push(&l, format!("cancelling {}", current().cancelling()));
                spindle::Ok(())
            })
            .await
            .unwrap_err();
            assert_eq!(messages(&group_of(&err)), ["ValueError"]);
            assert_eq!(
                entries(&levels),
                ["inner: [\"RuntimeError\"]", "cancelling 1"]
            );
            assert_eq!(current().cancelling(), 0);
            // No cancel left pending.
            spindle::yield_now().await?;
            spindle::sleep(Duration::from_millis(1)).await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 70: a group inside a timeout scope ---------------------------------

/// Spawns three logging children (cleanup awaits 2 ms) into `tg` and waits
/// until they all run, so each of them sees the cancellation.
async fn spawn_running_sleepers(tg: &TaskGroup, log: &Log) -> spindle::Result<()> {
    let mut started = Vec::new();
    for k in 0..3 {
        let s = Promise::<()>::new();
        started.push(s.clone());
        let child = sleeper(&format!("c{k}"), log, Duration::from_millis(2));
        tg.spawn(async move {
            s.set_result(())?;
            child.await
        })?;
    }
    for s in started {
        s.await?;
    }
    Ok(())
}

/// `timeout(d, task_group(..))` with the body awaiting: the children are
/// cancelled and their cleanup runs, the result is a timeout error, and the
/// enclosing task is not left cancelled. (TO::test_timeout_taskgroup,
/// test_outer_task_is_not_cancelled; checked with CPython 3.13.) The 20 ms
/// deadline is set once the children run, so that each sees the cancel.
#[test]
fn case_70_group_in_timeout_body_awaiting() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let log = new_log();
            let l = log.clone();
            let slot: Arc<Mutex<Option<Timeout>>> = Arc::default();
            let s = slot.clone();
            let armed = Arc::new(Mutex::new(None::<Instant>));
            let a = armed.clone();
            let future = spindle::timeout(
                LONG,
                task_group(|tg| async move {
                    spawn_running_sleepers(&tg, &l).await?;
                    let scope = s.lock().unwrap().clone().unwrap();
                    *a.lock().unwrap() = Some(Instant::now());
                    scope.reschedule(Some(Instant::now() + Duration::from_millis(20)))?;
                    spindle::sleep(LONG).await?;
                    spindle::Ok(())
                }),
            );
            *slot.lock().unwrap() = Some(future.scope().clone());
            let err = future.await.unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            let armed = armed.lock().unwrap().unwrap();
            assert!(armed.elapsed() >= Duration::from_millis(20));
            assert!(armed.elapsed() < Duration::from_secs(20));
            assert!(slot.lock().unwrap().as_ref().unwrap().expired());
            let log = entries(&log);
            assert_eq!(
                log.iter().filter(|e| e.starts_with("cleanup")).count(),
                3,
                "{log:?}"
            );
            assert_eq!(current().cancelling(), 0);
            spindle::sleep(Duration::from_millis(1)).await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The same with the group waiting at exit, through a `Timeout` scope: the
/// scope reports it expired; the enclosing task ends with a value.
#[test]
fn case_70_group_in_timeout_scope_waiting_at_exit() {
    within_limit(|| {
        let rt = rt(2);
        let log = new_log();
        let l = log.clone();
        let runner = rt.spawn(async move {
            let scope = Timeout::after(LONG);
            let inner = scope.clone();
            let err = scope
                .run(task_group(|tg| async move {
                    spawn_running_sleepers(&tg, &l).await?;
                    inner.reschedule(Some(Instant::now() + Duration::from_millis(20)))?;
                    spindle::Ok(())
                }))
                .await
                .unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            assert!(scope.expired());
            assert_eq!(current().cancelling(), 0);
            spindle::yield_now().await?;
            spindle::Ok("went on")
        });
        let handle = runner.clone();
        assert_eq!(rt.block_on(async move { handle.await }).unwrap(), "went on");
        assert!(!runner.cancelled());
        let log = entries(&log);
        assert_eq!(log.iter().filter(|e| e.starts_with("cleanup")).count(), 3);
    });
}

// -- ErrorGroup split like except* -----------------------------------------

/// A real group failure with mixed error types (user errors of two types, an
/// I/O error, a panic, nested groups), split like `except*` by type and by
/// kind; the nesting is kept and no Cancelled is anywhere.
#[test]
fn error_group_split_by_type_on_real_failure() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let err = task_group(|tg| async move {
                let go = Promise::<()>::new();
                let mut started = Vec::new();
                let mut ready = || {
                    let s = Promise::<()>::new();
                    started.push(s.clone());
                    s
                };
                let g = go.clone();
                tg.spawn(async move {
                    g.await?;
                    Err::<(), _>(my("a: trigger"))
                })?;
                let s = ready();
                tg.spawn(async move {
                    s.set_result(())?;
                    let _ = spindle::sleep(LONG).await;
                    Err::<(), _>(Error::from(std::io::Error::other("b: io")))
                })?;
                let s = ready();
                tg.spawn(async move {
                    s.set_result(())?;
                    let _ = spindle::sleep(LONG).await;
                    spindle::Ok(panic_in_child())
                })?;
                // Two children that run groups of their own, which fail in
                // their children's cleanup when cancelled.
                for (first, second) in [
                    (my("d: inner my"), None),
                    (
                        my("e: inner my"),
                        Some(std::io::Error::other("e: inner io")),
                    ),
                ] {
                    let (s1, s2) = (ready(), ready());
                    tg.spawn(async move {
                        task_group(|inner| async move {
                            inner.spawn(async move {
                                s1.set_result(())?;
                                let _ = spindle::sleep(LONG).await;
                                Err::<(), _>(first)
                            })?;
                            inner.spawn(async move {
                                s2.set_result(())?;
                                let _ = spindle::sleep(LONG).await;
                                match second {
                                    Some(e) => Err(Error::from(e)),
                                    None => spindle::Ok(()),
                                }
                            })?;
                            spindle::Ok(())
                        })
                        .await
                    })?;
                }
                for s in started {
                    s.await?;
                }
                go.set_result(())?;
                match spindle::sleep(LONG).await {
                    Err(e) if e.is_cancelled() => Err(other("body: other")),
                    other => other,
                }
            })
            .await
            .unwrap_err();
            let group = group_of(&err);
            assert_eq!(group.len(), 6, "{group:?}");
            assert_eq!(
                group.errors()[5].to_string(),
                "body: other",
                "the body's is last"
            );
            assert_no_cancelled(&group);
            assert_eq!(group.leaves().len(), 7, "{group:?}");
            assert_eq!(group.iter().filter(|e| e.as_group().is_some()).count(), 2);

            // except* MyError
            let (mine, rest) = group.split_by::<MyError>();
            let (mine, rest) = (mine.unwrap(), rest.unwrap());
            let mut mine_leaves: Vec<String> =
                mine.leaves().iter().map(|e| e.to_string()).collect();
            mine_leaves.sort();
            assert_eq!(mine_leaves, ["a: trigger", "d: inner my", "e: inner my"]);
            assert_eq!(mine.len(), 3);
            assert_eq!(
                mine.iter().filter(|e| e.as_group().is_some()).count(),
                2,
                "the nested groups keep their nesting"
            );
            assert!(mine
                .leaves()
                .iter()
                .all(|e| e.downcast_ref::<MyError>().is_some()));
            assert_eq!(mine.message(), group.message());
            let mut rest_leaves: Vec<String> =
                rest.leaves().iter().map(|e| e.to_string()).collect();
            rest_leaves.sort();
            assert_eq!(
                rest_leaves,
                [
                    "b: io",
                    "body: other",
                    "e: inner io",
                    "task panicked: boom in child"
                ]
            );
            assert!(rest
                .leaves()
                .iter()
                .all(|e| e.downcast_ref::<MyError>().is_none()));
            // The group with only "e: inner io" left is still nested.
            let nested_rest: Vec<ErrorGroup> =
                rest.iter().filter_map(|e| e.as_group().cloned()).collect();
            assert_eq!(nested_rest.len(), 1);
            assert_eq!(messages(&nested_rest[0]), ["e: inner io"]);

            // except* std::io::Error, then except* OtherError on the rest.
            let (io, rest) = rest.split_by::<std::io::Error>();
            assert_eq!(io.unwrap().leaves().len(), 2);
            let (others, rest) = rest.unwrap().split_by::<OtherError>();
            assert_eq!(messages(&others.unwrap()), ["body: other"]);
            let rest = rest.unwrap();
            assert_eq!(rest.len(), 1);
            assert_eq!(rest.errors()[0].kind(), ErrorKind::Panicked);

            // By kind.
            let (panics, _) = group.split(|e| e.kind() == ErrorKind::Panicked);
            assert_eq!(panics.unwrap().leaves().len(), 1);
            let (groups, flat) = group.split(|e| e.kind() == ErrorKind::Group);
            assert_eq!(groups.unwrap().len(), 2);
            assert_eq!(flat.unwrap().len(), 4);
            let (none, all) = group.split(|e| e.is_cancelled());
            assert!(none.is_none());
            assert_eq!(all.unwrap().leaves().len(), 7);
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- seed scenario --------------------------------------------------------------

/// "TaskGroup where item 3 fails and the others are cancelled": five items;
/// item 3 fails after a short sleep; the others sleep longer, see the
/// cancellation, run their cleanup (which awaits) and end cancelled. The group
/// fails with item 3's error only, nothing is reported as unhandled, and
/// the parent is not left cancelled.
#[test]
fn seed_item_3_fails_and_the_others_are_cancelled() {
    within_limit(|| {
        let (rt, reports) = recording_rt(2);
        rt.block_on(async {
            let log = new_log();
            let started = Arc::new(AtomicUsize::new(0));
            let items: Arc<Mutex<Vec<Task<u32>>>> = Arc::default();
            let (l, s, it) = (log.clone(), started.clone(), items.clone());
            let start = Instant::now();
            let outcome = task_group(|tg| async move {
                for item in 0..5u32 {
                    let (log, started) = (l.clone(), s.clone());
                    let task = tg.spawn_with(
                        TaskBuilder::new().name(format!("item-{item}")),
                        async move {
                            started.fetch_add(1, Ordering::SeqCst);
                            if item == 3 {
                                spindle::sleep(Duration::from_millis(10)).await?;
                                // Every item is running (so it can see the
                                // cancellation), as in asyncio.
                                while started.load(Ordering::SeqCst) < 5 {
                                    spindle::sleep(Duration::from_millis(1)).await?;
                                }
                                push(&log, "item 3 fails");
                                return Err(my("item 3 failed"));
                            }
                            match spindle::sleep(LONG).await {
                                Err(e) if e.is_cancelled() => {
                                    push(&log, format!("item {item} cancelled"));
                                    spindle::sleep(Duration::from_millis(2)).await?;
                                    push(&log, format!("item {item} cleanup"));
                                    Err(e)
                                }
                                Err(e) => Err(e),
                                Ok(()) => Ok(item),
                            }
                        },
                    )?;
                    it.lock().unwrap().push(task);
                }
                spindle::Ok(())
            })
            .await;
            let err = outcome.unwrap_err();
            assert!(start.elapsed() < Duration::from_secs(20));
            let group = group_of(&err);
            assert_eq!(messages(&group), ["item 3 failed"]);
            assert!(group.errors()[0].downcast_ref::<MyError>().is_some());
            let items = items.lock().unwrap().clone();
            assert_eq!(items.len(), 5);
            let own = items[3].exception()?.expect("item 3 failed");
            assert!(
                group.errors()[0].ptr_eq(&own),
                "the group holds the child's error itself"
            );
            let log = entries(&log);
            for (k, task) in items.iter().enumerate() {
                assert!(task.done());
                assert_eq!(task.name(), format!("item-{k}"));
                if k == 3 {
                    assert_eq!(task.state(), spindle::TaskState::Failed);
                    continue;
                }
                assert!(task.cancelled(), "item {k}: {:?}", task.state());
                let cancelled = log.iter().position(|e| *e == format!("item {k} cancelled"));
                let cleanup = log.iter().position(|e| *e == format!("item {k} cleanup"));
                assert!(
                    matches!((cancelled, cleanup), (Some(a), Some(b)) if a < b),
                    "item {k}: {log:?}"
                );
            }
            assert_eq!(log.len(), 9, "{log:?}");
            assert_eq!(current().cancelling(), 0);
            spindle::sleep(Duration::from_millis(1)).await?;
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        let reports = reports.lock().unwrap().clone();
        assert!(reports.is_empty(), "nothing unhandled: {reports:?}");
    });
}

// -- a group future dropped before its end ----------------------------------

/// Spawns a parent running a group with three logging children, the body
/// either sleeping or waiting at exit; `ready` is set when every child runs.
fn parent_with_group(
    in_body: bool,
    log: &Log,
    ready: &Promise<()>,
    children: &Arc<Mutex<Vec<Task<u32>>>>,
) -> Task<()> {
    let (log, ready, children) = (log.clone(), ready.clone(), children.clone());
    spindle::spawn(async move {
        task_group(|tg| async move {
            let mut started = Vec::new();
            for k in 0..3 {
                let s = Promise::<()>::new();
                started.push(s.clone());
                let child = sleeper(&format!("c{k}"), &log, Duration::from_millis(2));
                children.lock().unwrap().push(tg.spawn(async move {
                    s.set_result(())?;
                    child.await
                })?);
            }
            for s in started {
                s.await?;
            }
            ready.set_result(())?;
            if in_body {
                spindle::sleep(LONG).await?;
            }
            spindle::Ok(())
        })
        .await
    })
}

/// Awaits each child with a limit: a child the group did not cancel would
/// sleep on and give a timeout error instead of a cancellation.
async fn assert_children_cancelled(children: &Arc<Mutex<Vec<Task<u32>>>>) -> spindle::Result<()> {
    let children = children.lock().unwrap().clone();
    assert_eq!(children.len(), 3);
    for child in children {
        let outcome = spindle::wait_for(Some(Duration::from_secs(10)), child.clone()).await;
        match outcome {
            Err(e) if e.is_cancelled() => {}
            other => panic!("child not cancelled by the dropped group: {other:?}"),
        }
        assert!(child.cancelled());
    }
    Ok(())
}

/// The parent task is aborted while the body awaits: the group future is
/// dropped, which cancels the children; their cleanup runs; nothing is left
/// for the runtime's shutdown to abort.
#[test]
fn dropped_group_parent_aborted_in_body_cancels_children() {
    within_limit(|| {
        let (rt, reports) = recording_rt(2);
        let log = new_log();
        let l = log.clone();
        rt.block_on(async move {
            let (ready, children) = (Promise::new(), Arc::default());
            let parent = parent_with_group(true, &l, &ready, &children);
            ready.await?;
            assert!(parent.abort());
            let err = parent.clone().await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            assert_children_cancelled(&children).await?;
            spindle::Ok(())
        })
        .unwrap();
        assert_eq!(
            entries(&log)
                .iter()
                .filter(|e| e.starts_with("cleanup"))
                .count(),
            3
        );
        let start = Instant::now();
        drop(rt);
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "shutdown was quick"
        );
        let reports = reports.lock().unwrap().clone();
        assert!(reports.is_empty(), "{reports:?}");
    });
}

/// The same with the parent aborted while the group waits at exit.
#[test]
fn dropped_group_parent_aborted_at_exit_cancels_children() {
    within_limit(|| {
        let (rt, reports) = recording_rt(2);
        let log = new_log();
        let l = log.clone();
        rt.block_on(async move {
            let (ready, children) = (Promise::new(), Arc::default());
            let parent = parent_with_group(false, &l, &ready, &children);
            ready.await?;
            assert!(parent.abort());
            assert!(parent.clone().await.unwrap_err().is_cancelled());
            assert_children_cancelled(&children).await?;
            spindle::Ok(())
        })
        .unwrap();
        assert_eq!(
            entries(&log)
                .iter()
                .filter(|e| e.starts_with("cleanup"))
                .count(),
            3
        );
        drop(rt);
        let reports = reports.lock().unwrap().clone();
        assert!(reports.is_empty(), "{reports:?}");
    });
}

/// A `GroupFuture` polled once (children running, body awaiting) and then
/// dropped cancels its children; their cleanup runs.
#[test]
fn dropped_group_future_after_one_poll_cancels_children() {
    within_limit(|| {
        let (rt, reports) = recording_rt(2);
        rt.block_on(async {
            let log = new_log();
            let children: Arc<Mutex<Vec<Task<u32>>>> = Arc::default();
            let started: Arc<Mutex<Vec<Promise<()>>>> = Arc::default();
            let (l, c, s) = (log.clone(), children.clone(), started.clone());
            {
                let mut group = pin!(task_group(|tg| async move {
                    for k in 0..3 {
                        let p = Promise::<()>::new();
                        s.lock().unwrap().push(p.clone());
                        let child = sleeper(&format!("c{k}"), &l, Duration::from_millis(2));
                        c.lock().unwrap().push(tg.spawn(async move {
                            p.set_result(())?;
                            child.await
                        })?);
                    }
                    spindle::sleep(LONG).await?;
                    spindle::Ok(())
                }));
                let pending =
                    std::future::poll_fn(|cx| Poll::Ready(group.as_mut().poll(cx).is_pending()))
                        .await;
                assert!(pending, "the body is sleeping");
                let started = started.lock().unwrap().clone();
                assert_eq!(started.len(), 3);
                for p in started {
                    p.await?;
                }
                // `group` is dropped here, without being awaited to the end.
            }
            assert_children_cancelled(&children).await?;
            let log = entries(&log);
            assert_eq!(log.iter().filter(|e| e.starts_with("cleanup")).count(), 3);
            // The dropped group did not cancel its parent.
            assert_eq!(current().cancelling(), 0);
            spindle::sleep(Duration::from_millis(1)).await?;
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        let reports = reports.lock().unwrap().clone();
        assert!(reports.is_empty(), "{reports:?}");
    });
}

/// A `GroupFuture` whose child failed (so the group asked its parent to
/// cancel, a request it withdraws when it exits) is dropped while the parent
/// goes on, as when a group is raced against another future: the parent must
/// not be left with the group's cancel request. (asyncio always runs
/// `__aexit__`, which calls `uncancel()` for that request; case 70's rule
/// that the enclosing task is not left cancelled.)
#[test]
fn dropped_group_future_withdraws_its_cancel_request_on_parent() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let failed: Arc<Mutex<Option<Task<()>>>> = Arc::default();
            let f = failed.clone();
            let cancelling_after_failure;
            {
                let mut group = pin!(task_group(|tg| async move {
                    *f.lock().unwrap() = Some(tg.spawn(async {
                        spindle::sleep(Duration::from_millis(1)).await?;
                        Err::<(), _>(my("child failed"))
                    })?);
                    spindle::sleep(LONG).await?;
                    spindle::Ok(())
                }));
                let pending =
                    std::future::poll_fn(|cx| Poll::Ready(group.as_mut().poll(cx).is_pending()))
                        .await;
                assert!(pending);
                // Wait until the group has reacted to the failure, without a
                // runtime await point (so the cancel is not delivered): the
                // group's cancel request wakes this task.
                std::future::poll_fn(|_cx| {
                    if current().cancelling() > 0 {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                cancelling_after_failure = current().cancelling();
                // `group` is dropped here, before its exit ran.
            }
            assert_eq!(
                cancelling_after_failure, 1,
                "the group cancelled its parent"
            );
            let child = failed.lock().unwrap().clone().unwrap();
            assert_eq!(
                child.exception()?.map(|e| e.to_string()),
                Some("child failed".into())
            );
            assert_eq!(
                current().cancelling(),
                0,
                "the dropped group left its cancel request on the parent"
            );
            let next = spindle::yield_now().await;
            assert!(
                next.is_ok(),
                "a stray cancellation reached the parent: {next:?}"
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The parent is aborted and the runtime shut down at once, without waiting
/// for the children: shutdown does not hang, every child sees its
/// cancellation and ends cancelled, and no task has to be destroyed while
/// pending. (Whether a child's cleanup *await* completes is not asserted: the
/// shutdown's own cancel may arrive after the group's was delivered and then
/// interrupts that await, as `asyncio.run`'s `_cancel_all_tasks` does.)
#[test]
fn dropped_group_then_runtime_shutdown_does_not_hang() {
    within_limit(|| {
        let (rt, reports) = recording_rt(2);
        let log = new_log();
        let children: Arc<Mutex<Vec<Task<u32>>>> = Arc::default();
        let (l, c) = (log.clone(), children.clone());
        rt.block_on(async move {
            let ready = Promise::new();
            let parent = parent_with_group(true, &l, &ready, &c);
            ready.await?;
            parent.abort();
            spindle::Ok(())
        })
        .unwrap();
        let start = Instant::now();
        drop(rt);
        assert!(start.elapsed() < Duration::from_secs(4), "shutdown hung");
        let children = children.lock().unwrap().clone();
        assert_eq!(children.len(), 3);
        assert!(children.iter().all(|t| t.cancelled()));
        let mut seen: Vec<String> = entries(&log)
            .into_iter()
            .filter(|e| e.starts_with("cancelled"))
            .collect();
        seen.sort();
        assert_eq!(seen, ["cancelled c0", "cancelled c1", "cancelled c2"]);
        let reports = reports.lock().unwrap().clone();
        assert!(
            !reports.iter().any(|r| r.starts_with("DestroyedPending")),
            "{reports:?}"
        );
    });
}

// -- panics -----------------------------------------------------------------

/// A child that panics is a failure like any other: the group fails with an
/// error of kind Panicked (the message kept), and the other children are
/// cancelled.
#[test]
fn child_panic_becomes_group_error() {
    within_limit(|| {
        let (rt, reports) = recording_rt(2);
        rt.block_on(async {
            let log = new_log();
            let l = log.clone();
            let sibling: Arc<Mutex<Option<Task<u32>>>> = Arc::default();
            let slot = sibling.clone();
            let err = task_group(|tg| async move {
                let s = Promise::<()>::new();
                let (s2, child) = (s.clone(), sleeper("sibling", &l, Duration::ZERO));
                *slot.lock().unwrap() = Some(tg.spawn(async move {
                    s2.set_result(())?;
                    child.await
                })?);
                s.await?;
                tg.spawn(async {
                    spindle::yield_now().await?;
                    spindle::Ok(panic_in_child())
                })?;
                spindle::sleep(LONG).await?;
                spindle::Ok(())
            })
            .await
            .unwrap_err();
            let group = group_of(&err);
            assert_eq!(group.len(), 1, "{group:?}");
            let panic = &group.errors()[0];
            assert_eq!(panic.kind(), ErrorKind::Panicked);
            assert!(panic.to_string().contains("boom in child"), "{panic}");
            let sibling = sibling.lock().unwrap().clone().unwrap();
            assert!(sibling.cancelled());
            assert_eq!(entries(&log), ["cancelled sibling", "cleanup sibling"]);
            assert_eq!(current().cancelling(), 0);
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        let reports = reports.lock().unwrap().clone();
        assert!(
            reports.is_empty(),
            "the group retrieved the panic: {reports:?}"
        );
    });
}

fn panic_in_body() -> u32 {
    panic!("boom in body")
}

/// The body panics: the parent task fails with the panic, and the group
/// future, dropped with the parent's future, cancels the children; their
/// cleanup runs.
#[test]
fn body_panic_fails_parent_and_cancels_children() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let log = new_log();
            let children: Arc<Mutex<Vec<Task<u32>>>> = Arc::default();
            let (l, c) = (log.clone(), children.clone());
            let parent = spindle::spawn(async move {
                task_group(|tg| async move {
                    for k in 0..3 {
                        let s = Promise::<()>::new();
                        let child = sleeper(&format!("c{k}"), &l, Duration::from_millis(2));
                        let started = s.clone();
                        c.lock().unwrap().push(tg.spawn(async move {
                            started.set_result(())?;
                            child.await
                        })?);
                        s.await?;
                    }
                    spindle::Ok(panic_in_body())
                })
                .await
            });
            let err = parent.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Panicked, "{err:?}");
            assert!(err.to_string().contains("boom in body"), "{err}");
            assert_children_cancelled(&children).await?;
            let log = entries(&log);
            assert_eq!(log.iter().filter(|e| e.starts_with("cleanup")).count(), 3);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A timeout around a task group whose children queue behind a
/// `Semaphore(3)`: the group cancels every child as one step, so a child
/// still waiting for the semaphore never takes a permit that a cancelled
/// holder gives back (asyncio's `_abort` cancels every child before any of
/// them runs again), also on two workers.
#[test]
fn cancelled_group_lets_no_waiting_child_take_a_freed_permit() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            for round in 0..200 {
                let sem = Arc::new(spindle::Semaphore::new(3));
                let acquired = Arc::new(AtomicUsize::new(0));
                let (s, a) = (sem.clone(), acquired.clone());
                let scope = Timeout::at(None);
                let expire = scope.clone();
                let outcome = scope
                    .run(spindle::task_group(move |tg| async move {
                        let children = (0..10)
                            .map(|_| tg.spawn(hold_permit_for_an_hour(s.clone(), a.clone())))
                            .collect::<spindle::Result<Vec<_>>>()?;
                        // The timeout fires once every child is parked (the
                        // holders in their sleep, the others queued on the
                        // semaphore).
                        until_all_waiting(&children).await?;
                        expire.reschedule(Some(Instant::now()))
                    }))
                    .await;
                assert!(outcome.unwrap_err().is_timeout(), "round {round}");
                // The holders never give a permit back but by ending
                // cancelled: a fourth acquisition took a freed one.
                let acquired = acquired.load(Ordering::SeqCst);
                assert!(
                    acquired <= 3,
                    "round {round}: {acquired} acquisitions, a waiting child took a freed permit"
                );
                assert_eq!(
                    sem.available_permits(),
                    3,
                    "round {round}: a permit was lost"
                );
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}
