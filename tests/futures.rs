//! Spec section B: futures (`spindle::Promise`, asyncio.Future) and done
//! callbacks, the "never retrieved" report and shutdown with pending tasks
//! (`/work/shared/spec/asyncio-semantics.md`, cases 10-12 and 14-18).

mod common;
use common::{rt, wait_done, within_limit, Log};

use spindle::task::DoneCallback;
use spindle::{Error, ErrorKind, Promise, Runtime, Task, TaskState, Unhandled, UnhandledKind};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

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

fn taken(reports: &Reports) -> Vec<Unhandled> {
    reports.lock().unwrap().clone()
}

/// A task that fails with `Error::msg(text)` once `gate` is set.
fn failing_after(gate: &Promise<()>, name: &str, text: &'static str) -> Task<u32> {
    let gate = gate.clone();
    spindle::task::Builder::new().name(name).spawn(async move {
        gate.await?;
        Err::<u32, _>(Error::msg(text))
    })
}

/// `Runtime::spawn` with a task name.
trait SpawnNamed {
    fn spawn_named<F, T>(&self, name: &str, future: F) -> Task<T>
    where
        F: std::future::Future<Output = spindle::Result<T>> + Send + 'static,
        T: Send + 'static;
}

impl SpawnNamed for Runtime {
    fn spawn_named<F, T>(&self, name: &str, future: F) -> Task<T>
    where
        F: std::future::Future<Output = spindle::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.handle()
            .spawn_with(spindle::task::Builder::new().name(name), future)
    }
}

// -- case 10 ------------------------------------------------------------------

/// result()/exception() on a pending task -> invalid state; on a cancelled
/// one -> Cancelled; on a failed one result() returns the error and
/// exception() returns it as a value. (FU::test_result, test_exception)
#[test]
fn case_10_task_result_and_exception_in_each_state() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            // Pending.
            let gate = Promise::<()>::new();
            let g = gate.clone();
            let pending = spindle::spawn(async move {
                g.await?;
                spindle::Ok(5)
            });
            assert_eq!(
                pending.result().unwrap_err().kind(),
                ErrorKind::InvalidState
            );
            assert_eq!(
                pending.exception().unwrap_err().kind(),
                ErrorKind::InvalidState
            );
            assert_eq!(
                pending.take_result().unwrap_err().kind(),
                ErrorKind::InvalidState
            );
            gate.set_result(())?;

            // Succeeded (waited for without awaiting the handle, which would
            // move the value out).
            wait_done(&pending).await?;
            assert_eq!(pending.result().unwrap(), 5);
            assert!(pending.exception().unwrap().is_none());

            // Failed.
            let failed = spindle::spawn(async { Err::<u32, _>(Error::msg("boom")) });
            let awaited = failed.clone().await.unwrap_err();
            let from_result = failed.result().unwrap_err();
            let from_exception = failed.exception().unwrap().expect("an error value");
            assert_eq!(from_result.to_string(), "boom");
            assert_eq!(from_result.kind(), ErrorKind::Other);
            assert!(from_result.ptr_eq(&from_exception), "the same error object");
            assert!(awaited.ptr_eq(&from_exception), "the same error object");
            assert_eq!(failed.state(), TaskState::Failed);

            // Cancelled.
            let never = Promise::<()>::new();
            let n = never.clone();
            let cancelled = spindle::spawn(n);
            spindle::yield_now().await?;
            cancelled.cancel_with("stop");
            let _ = cancelled.clone().await;
            let r = cancelled.result().unwrap_err();
            assert!(r.is_cancelled());
            assert_eq!(r.cancel_message(), Some("stop"));
            let e = cancelled.exception().unwrap_err();
            assert!(e.is_cancelled());
            assert_eq!(e.cancel_message(), Some("stop"));
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// The same rules for a Promise. (FU::test_result, test_exception)
#[test]
fn case_10_promise_result_and_exception_in_each_state() {
    within_limit(|| {
        let p = Promise::<u32>::new();
        assert_eq!(p.result().unwrap_err().kind(), ErrorKind::InvalidState);
        assert_eq!(p.exception().unwrap_err().kind(), ErrorKind::InvalidState);
        assert!(!p.done());
        p.set_result(3).unwrap();
        assert_eq!(p.result().unwrap(), 3);
        assert!(p.exception().unwrap().is_none());

        let f = Promise::<u32>::new();
        f.set_exception(Error::msg("bad")).unwrap();
        let from_result = f.result().unwrap_err();
        let from_exception = f.exception().unwrap().unwrap();
        assert_eq!(from_result.to_string(), "bad");
        assert!(from_result.ptr_eq(&from_exception));
        assert!(f.done() && !f.cancelled());

        let c = Promise::<u32>::new();
        assert!(c.cancel_with("why"));
        let r = c.result().unwrap_err();
        assert!(r.is_cancelled());
        assert_eq!(r.cancel_message(), Some("why"));
        let e = c.exception().unwrap_err();
        assert!(e.is_cancelled());
        assert_eq!(e.cancel_message(), Some("why"));
    });
}

// -- case 11 ------------------------------------------------------------------

/// set_result/set_exception on a done future -> invalid state; cancel() on a
/// done future -> false. (FU::test_cancel)
#[test]
fn case_11_setting_a_done_promise_is_invalid_state() {
    within_limit(|| {
        let p = Promise::<u32>::new();
        p.set_result(1).unwrap();
        assert_eq!(p.set_result(2).unwrap_err().kind(), ErrorKind::InvalidState);
        assert_eq!(
            p.set_exception(Error::msg("late")).unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        assert!(!p.cancel());
        assert!(!p.cancel_with("late"));
        assert_eq!(p.result().unwrap(), 1, "the first outcome is kept");
        assert!(!p.cancelled());

        let f = Promise::<u32>::new();
        f.set_exception(Error::msg("first")).unwrap();
        assert_eq!(f.set_result(2).unwrap_err().kind(), ErrorKind::InvalidState);
        assert!(!f.cancel());
        assert_eq!(f.result().unwrap_err().to_string(), "first");

        let c = Promise::<u32>::new();
        assert!(c.cancel());
        assert!(!c.cancel(), "a second cancel of a promise returns false");
        assert_eq!(c.set_result(2).unwrap_err().kind(), ErrorKind::InvalidState);
        assert_eq!(
            c.set_exception(Error::msg("x")).unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        assert!(c.cancelled());
    });
}

// -- case 12 ------------------------------------------------------------------

/// Future.cancel() marks the future cancelled at once.
#[test]
fn case_12_promise_cancel_is_immediate() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let p = Promise::<u32>::new();
            let waiter = {
                let p = p.clone();
                spindle::spawn(p)
            };
            spindle::yield_now().await?;
            assert!(p.cancel());
            assert!(p.done());
            assert!(p.cancelled());
            assert!(p.result().unwrap_err().is_cancelled());
            // The task awaiting it ends cancelled.
            assert!(waiter.clone().await.unwrap_err().is_cancelled());
            assert!(waiter.cancelled());
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Task.cancel() is only a request: cancelled() stays false until the task
/// ends with Cancelled, even after the Cancelled was delivered.
/// (TT::test_cancelling)
#[test]
fn case_12_task_cancel_is_only_a_request() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, first, delivered, gate) = (
                Promise::<()>::new(),
                Promise::<()>::new(),
                Promise::<()>::new(),
                Promise::<()>::new(),
            );
            let task = {
                let (started, first) = (started.clone(), first.clone());
                let (delivered, gate) = (delivered.clone(), gate.clone());
                spindle::spawn(async move {
                    started.set_result(())?;
                    let err = first.await.unwrap_err();
                    assert!(err.is_cancelled());
                    delivered.set_result(())?;
                    gate.await?;
                    Err::<(), _>(err)
                })
            };
            started.await?;
            assert!(task.cancel());
            assert!(!task.cancelled(), "a request, not a state");
            assert!(!task.done());
            assert_eq!(task.cancelling(), 1);
            delivered.await?;
            assert!(!task.cancelled(), "delivered but the task has not ended");
            assert!(!task.done());
            assert_ne!(task.state(), TaskState::Cancelled);
            gate.set_result(())?;
            let err = task.clone().await.unwrap_err();
            assert!(err.is_cancelled());
            assert!(task.cancelled());
            assert_eq!(task.state(), TaskState::Cancelled);
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 14 ------------------------------------------------------------------

thread_local! {
    static INSIDE_SET_RESULT: Cell<bool> = const { Cell::new(false) };
}

/// Done callbacks never run inside set_result; they run after completion, in
/// registration order, also when added to an already-done future.
/// (FU::test_callbacks_invoked_on_set_result)
#[test]
fn case_14_promise_callbacks_run_after_set_result_in_order() {
    within_limit(|| {
        let rt = rt(2);
        let log = Log::default();
        let inside = Arc::new(AtomicUsize::new(0));
        let (l, ins) = (log.clone(), inside.clone());
        rt.block_on(async move {
            let p = Promise::<u32>::new();
            let all_ran = Promise::<()>::new();
            for i in 1..=3 {
                let (l, ins) = (l.clone(), ins.clone());
                let all_ran = all_ran.clone();
                p.add_done_callback(move |p: &Promise<u32>| {
                    if INSIDE_SET_RESULT.with(|c| c.get()) {
                        ins.fetch_add(1, Ordering::SeqCst);
                    }
                    assert!(p.done());
                    l.push(format!("cb{i}={}", p.result().unwrap()));
                    if i == 3 {
                        let _ = all_ran.set_result(());
                    }
                });
            }
            INSIDE_SET_RESULT.with(|c| c.set(true));
            p.set_result(42)?;
            INSIDE_SET_RESULT.with(|c| c.set(false));
            all_ran.await?;
            assert_eq!(l.get(), ["cb1=42", "cb2=42", "cb3=42"]);

            // Added to a done promise: runs soon, not inside add_done_callback.
            let late_ran = Promise::<()>::new();
            let (l2, late) = (l.clone(), late_ran.clone());
            let adding = Arc::new(AtomicBool::new(true));
            let a = adding.clone();
            let added_inline = Arc::new(AtomicBool::new(false));
            let ai = added_inline.clone();
            INSIDE_SET_RESULT.with(|c| c.set(true));
            p.add_done_callback(move |_: &Promise<u32>| {
                if INSIDE_SET_RESULT.with(|c| c.get()) && a.load(Ordering::SeqCst) {
                    ai.store(true, Ordering::SeqCst);
                }
                l2.push("late");
                let _ = late.set_result(());
            });
            INSIDE_SET_RESULT.with(|c| c.set(false));
            adding.store(false, Ordering::SeqCst);
            late_ran.await?;
            assert!(
                !added_inline.load(Ordering::SeqCst),
                "a callback added to a done promise ran inside add_done_callback"
            );
            assert_eq!(l.get(), ["cb1=42", "cb2=42", "cb3=42", "late"]);
            spindle::Ok(())
        })
        .unwrap();
        assert_eq!(
            inside.load(Ordering::SeqCst),
            0,
            "a callback ran inside set_result"
        );
    });
}

/// On one worker the same is visible in plain order: nothing runs at
/// set_result, the callbacks run (in order) once the setter yields.
#[test]
fn case_14_promise_callbacks_deferred_on_one_worker() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let log = Log::default();
            let p = Promise::<u32>::new();
            for i in 1..=3 {
                let l = log.clone();
                p.add_done_callback(move |_: &Promise<u32>| l.push(format!("cb{i}")));
            }
            p.set_result(1)?;
            assert!(
                log.get().is_empty(),
                "ran inside set_result: {:?}",
                log.get()
            );
            spindle::yield_now().await?;
            assert_eq!(log.get(), ["cb1", "cb2", "cb3"]);
            let l = log.clone();
            p.add_done_callback(move |_: &Promise<u32>| l.push("late"));
            assert_eq!(log.get().len(), 3, "ran inside add_done_callback");
            spindle::yield_now().await?;
            assert_eq!(log.get(), ["cb1", "cb2", "cb3", "late"]);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A task's done callbacks run after it completed (it is done and its result
/// readable), in registration order; one added to a done task runs later,
/// not inside add_done_callback.
#[test]
fn case_14_task_callbacks_run_after_completion_in_order() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let log = Log::default();
            let task = spindle::spawn(async { spindle::Ok(9) });
            for i in 1..=3 {
                let l = log.clone();
                task.add_done_callback(move |t: &Task<i32>| {
                    assert!(t.done());
                    l.push(format!("cb{i}={}", t.result().unwrap()));
                });
            }
            assert_eq!(task.clone().await?, 9);
            assert_eq!(log.get(), ["cb1=9", "cb2=9", "cb3=9"]);
            let l = log.clone();
            task.add_done_callback(move |t: &Task<i32>| {
                l.push(format!("late done={}", t.done()));
            });
            assert_eq!(log.get().len(), 3, "ran inside add_done_callback");
            spindle::yield_now().await?;
            assert_eq!(log.get(), ["cb1=9", "cb2=9", "cb3=9", "late done=true"]);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Callbacks added one by one to an already-done promise run in the order
/// they were added (asyncio schedules each with call_soon, a FIFO), also on
/// several workers.
#[test]
fn case_14_callbacks_added_to_done_promise_run_in_order_on_many_workers() {
    within_limit(|| {
        let rt = rt(2);
        let log: Arc<Mutex<Vec<usize>>> = Arc::default();
        let l = log.clone();
        rt.block_on(async move {
            for round in 0..300 {
                l.lock().unwrap().clear();
                let p = Promise::<()>::new();
                p.set_result(())?;
                let all_ran = Promise::<()>::new();
                const N: usize = 64;
                for i in 0..N {
                    let (l, all_ran) = (l.clone(), all_ran.clone());
                    p.add_done_callback(move |_: &Promise<()>| {
                        // A little work, so that callbacks running on two
                        // workers at once would overlap.
                        let until = Instant::now() + Duration::from_micros(20);
                        while Instant::now() < until {
                            std::hint::spin_loop();
                        }
                        let mut log = l.lock().unwrap();
                        log.push(i);
                        if log.len() == N {
                            let _ = all_ran.set_result(());
                        }
                    });
                }
                all_ran.await?;
                let got = l.lock().unwrap().clone();
                assert_eq!(got, (0..N).collect::<Vec<_>>(), "round {round}");
            }
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 15 ------------------------------------------------------------------

/// remove_done_callback(cb) removes every registration of cb and returns the
/// count. (FU::test_remove_done_callback)
#[test]
fn case_15_remove_done_callback_removes_every_registration() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let log = Log::default();
            let p = Promise::<u32>::new();
            let removed: DoneCallback<Promise<u32>> = {
                let l = log.clone();
                DoneCallback::new(move |_| l.push("removed"))
            };
            let kept: DoneCallback<Promise<u32>> = {
                let l = log.clone();
                DoneCallback::new(move |_| l.push("kept"))
            };
            p.add_done_callback(removed.clone());
            p.add_done_callback(kept.clone());
            p.add_done_callback(removed.clone());
            p.add_done_callback(removed.clone());
            assert_eq!(p.remove_done_callback(&removed), 3);
            assert_eq!(p.remove_done_callback(&removed), 0);
            p.set_result(1)?;
            spindle::yield_now().await?;
            spindle::yield_now().await?;
            assert_eq!(log.get(), ["kept"]);

            // The same for a task.
            let gate = Promise::<()>::new();
            let g = gate.clone();
            let task = spindle::spawn(g);
            let t_removed: DoneCallback<Task<()>> = {
                let l = log.clone();
                DoneCallback::new(move |_| l.push("task removed"))
            };
            let t_kept: DoneCallback<Task<()>> = {
                let l = log.clone();
                DoneCallback::new(move |_| l.push("task kept"))
            };
            task.add_done_callback(t_removed.clone());
            task.add_done_callback(t_removed.clone());
            task.add_done_callback(t_kept.clone());
            assert_eq!(task.remove_done_callback(&t_removed), 2);
            assert_eq!(task.remove_done_callback(&t_removed), 0);
            gate.set_result(())?;
            task.await?;
            spindle::yield_now().await?;
            assert_eq!(log.get(), ["kept", "task kept"]);
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- case 16 ------------------------------------------------------------------

/// A callback that fails is reported and later callbacks still run.
#[test]
fn case_16_failing_callback_is_reported_and_later_ones_run() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(2);
        let log = Log::default();
        let l = log.clone();
        rt.block_on(async move {
            let p = Promise::<u32>::new();
            let done = Promise::<()>::new();
            let l1 = l.clone();
            p.add_done_callback(move |_: &Promise<u32>| l1.push("p1"));
            p.add_done_callback(|_: &Promise<u32>| panic!("promise callback boom"));
            let (l3, d) = (l.clone(), done.clone());
            p.add_done_callback(move |_: &Promise<u32>| {
                l3.push("p3");
                let _ = d.set_result(());
            });
            p.set_result(1)?;
            done.await?;

            let gate = Promise::<()>::new();
            let g = gate.clone();
            let task = spindle::spawn(g);
            let l1 = l.clone();
            task.add_done_callback(move |_: &Task<()>| l1.push("t1"));
            task.add_done_callback(|_: &Task<()>| panic!("task callback boom"));
            let l3 = l.clone();
            task.add_done_callback(move |_: &Task<()>| l3.push("t3"));
            gate.set_result(())?;
            // A task's callbacks run before its awaiters wake.
            task.await?;
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        assert_eq!(log.get(), ["p1", "p3", "t1", "t3"]);
        let reports = taken(&reports);
        assert_eq!(reports.len(), 2, "{reports:?}");
        for (report, text) in reports
            .iter()
            .zip(["promise callback boom", "task callback boom"])
        {
            assert_eq!(report.kind(), UnhandledKind::CallbackFailed, "{report}");
            let error = report.error().expect("the callback's error");
            assert_eq!(error.kind(), ErrorKind::Panicked);
            assert!(error.to_string().contains(text), "{error}");
        }
    });
}

// -- case 17 ------------------------------------------------------------------

/// A failed task dropped without its error ever being read reports "exception
/// never retrieved", once, with the task's name and the error.
/// (FU::test_tb_logger_exception_unretrieved)
#[test]
fn case_17_unread_task_failure_is_reported_once() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(2);
        let ids = rt
            .block_on(async {
                let gate = Promise::<()>::new();
                let task = failing_after(&gate, "failer", "boom");
                let id = task.id();
                let clone = task.clone();
                gate.set_result(())?;
                wait_done(&task).await?;
                drop(clone);
                drop(task);
                // A detached task (handle dropped before it failed).
                let gate2 = Promise::<()>::new();
                let detached = failing_after(&gate2, "detached", "lost");
                let id2 = detached.id();
                let finished2 = Promise::<()>::new();
                let f2 = finished2.clone();
                detached.add_done_callback(move |_: &Task<u32>| {
                    let _ = f2.set_result(());
                });
                drop(detached);
                gate2.set_result(())?;
                finished2.await?;
                spindle::Ok((id, id2))
            })
            .unwrap();
        drop(rt);
        let reports = taken(&reports);
        assert_eq!(reports.len(), 2, "{reports:?}");
        let mut seen: Vec<_> = reports
            .iter()
            .map(|r| {
                assert_eq!(r.kind(), UnhandledKind::NeverRetrieved, "{r}");
                let (id, name) = r.task().expect("a task report");
                (id, name.to_string(), r.error().unwrap().to_string())
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                (ids.0, "failer".to_string(), "boom".to_string()),
                (ids.1, "detached".to_string(), "lost".to_string()),
            ]
        );
        assert!(
            reports[0].to_string().contains("never retrieved"),
            "{}",
            reports[0]
        );
    });
}

/// Nothing is reported for a failure that was read (awaited, result(),
/// exception()), for a cancelled task, or for a task that succeeded.
#[test]
fn case_17_no_report_when_read_cancelled_or_succeeded() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(2);
        rt.block_on(async {
            let gate = Promise::<()>::new();
            let awaited = failing_after(&gate, "awaited", "e1");
            let by_result = failing_after(&gate, "by-result", "e2");
            let by_exception = failing_after(&gate, "by-exception", "e3");
            let never = Promise::<()>::new();
            let n = never.clone();
            let cancelled = spindle::task::Builder::new().name("cancelled").spawn(n);
            let succeeded = spindle::task::Builder::new()
                .name("succeeded")
                .spawn(async { spindle::Ok(1) });
            gate.set_result(())?;
            assert_eq!(awaited.await.unwrap_err().to_string(), "e1");
            // Wait without reading, then read through result() / exception()
            // only.
            wait_done(&by_result).await?;
            assert_eq!(by_result.result().unwrap_err().to_string(), "e2");
            wait_done(&by_exception).await?;
            assert_eq!(by_exception.exception()?.unwrap().to_string(), "e3");
            // A cancelled task, never read.
            spindle::yield_now().await?;
            cancelled.cancel();
            wait_done(&cancelled).await?;
            assert!(cancelled.cancelled());
            assert_eq!(succeeded.await?, 1);
            drop((by_result, by_exception, cancelled));
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        let reports = taken(&reports);
        assert!(reports.is_empty(), "unexpected reports: {reports:?}");
    });
}

/// asyncio: cancel() on a task that already failed returns false and silences
/// the "never retrieved" report (Task.cancel clears the log flag first).
/// (TT::test_tb_logger_not_called_after_cancel)
#[test]
fn case_17_no_report_after_cancel_on_failed_task() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(2);
        rt.block_on(async {
            let gate = Promise::<()>::new();
            let task = failing_after(&gate, "failed-then-cancelled", "type error");
            gate.set_result(())?;
            wait_done(&task).await?;
            assert!(task.done());
            assert!(!task.cancel(), "cancel() on a done task returns false");
            drop(task);
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        let reports = taken(&reports);
        assert!(reports.is_empty(), "unexpected reports: {reports:?}");
    });
}

/// A promise whose failure is never read reports it once when dropped; one
/// whose failure was read does not.
#[test]
fn case_17_promise_unread_failure_is_reported_once() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(1);
        rt.block_on(async {
            let unread = Promise::<u32>::new();
            let clone = unread.clone();
            unread.set_exception(Error::msg("promise failure"))?;
            drop(unread);
            drop(clone);
            let read = Promise::<u32>::new();
            read.set_exception(Error::msg("read failure"))?;
            assert!(read.clone().await.is_err());
            drop(read);
            let cancelled = Promise::<u32>::new();
            cancelled.cancel();
            drop(cancelled);
            spindle::Ok(())
        })
        .unwrap();
        drop(rt);
        let reports = taken(&reports);
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].kind(), UnhandledKind::NeverRetrieved);
        assert!(reports[0].task().is_none());
        assert_eq!(reports[0].error().unwrap().to_string(), "promise failure");
    });
}

// -- case 18 ------------------------------------------------------------------

/// Drops the runtime on another thread and fails if that does not return.
fn drop_within(rt: Runtime, limit: Duration) -> Duration {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        drop(rt);
        let _ = tx.send(start.elapsed());
    });
    rx.recv_timeout(limit)
        .expect("dropping the runtime did not return")
}

/// A runtime shut down while a task ignores its cancellation forever reports
/// that task ("destroyed but pending") and returns; the cancellation was
/// delivered once. (TT::test_log_destroyed_pending_task)
#[test]
fn case_18_task_ignoring_cancel_is_reported_destroyed_pending() {
    within_limit(|| {
        let reports: Reports = Arc::default();
        let sink = reports.clone();
        let rt = Runtime::builder()
            .worker_threads(2)
            .shutdown_timeout(Duration::from_millis(100))
            .on_unhandled_error(move |report| sink.lock().unwrap().push(report.clone()))
            .build()
            .unwrap();
        let cancels = Arc::new(AtomicUsize::new(0));
        let started = Promise::<()>::new();
        let never_true = Arc::new(AtomicBool::new(false));
        let (c, s, stop) = (cancels.clone(), started.clone(), never_true.clone());
        let stubborn = rt.spawn_named("stubborn", async move {
            s.set_result(())?;
            while !stop.load(Ordering::SeqCst) {
                if spindle::yield_now().await.is_err() {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            }
            spindle::Ok(())
        });
        rt.block_on(started).unwrap();
        drop_within(rt, Duration::from_secs(20));
        assert!(stubborn.done());
        assert!(stubborn.cancelled());
        assert_eq!(
            cancels.load(Ordering::SeqCst),
            1,
            "the cancel is delivered once"
        );
        let reports = taken(&reports);
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(
            reports[0].kind(),
            UnhandledKind::DestroyedPending,
            "{}",
            reports[0]
        );
        assert_eq!(reports[0].task(), Some((stubborn.id(), "stubborn")));
    });
}

/// Shuts down (50 ms timeout) a runtime with a task that swallows the cancel
/// and then blocks its worker inside one poll for 400 ms, so that the abort
/// can only take effect after the abort phase of the shutdown is over.
fn shutdown_with_blocking_task() -> (Vec<Unhandled>, Task<()>) {
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let rt = Runtime::builder()
        .worker_threads(2)
        .shutdown_timeout(Duration::from_millis(50))
        .on_unhandled_error(move |report| sink.lock().unwrap().push(report.clone()))
        .build()
        .unwrap();
    let started = Promise::<()>::new();
    let s = started.clone();
    let never_true = Arc::new(AtomicBool::new(false));
    let stop = never_true.clone();
    let blocker = rt.spawn_named("blocker", async move {
        s.set_result(())?;
        let _ = Promise::<()>::new().await; // the shutdown's cancel
        while !stop.load(Ordering::SeqCst) {
            // Blocking work inside one poll: an abort can only take effect at
            // the task's next run.
            std::thread::sleep(Duration::from_millis(400));
            let _ = spindle::yield_now().await;
        }
        spindle::Ok(())
    });
    rt.block_on(started).unwrap();
    drop_within(rt, Duration::from_secs(20));
    let reports = taken(&reports);
    (reports, blocker)
}

/// The "destroyed but pending" report is made once per task, even when the
/// abort cannot take effect at once (R5: reported once).
#[test]
fn case_18_destroyed_pending_reported_once_when_abort_is_slow() {
    within_limit(|| {
        let (reports, blocker) = shutdown_with_blocking_task();
        assert_eq!(reports.len(), 1, "reported more than once: {reports:?}");
        assert_eq!(reports[0].kind(), UnhandledKind::DestroyedPending);
        assert_eq!(reports[0].task(), Some((blocker.id(), "blocker")));
    });
}

/// Once the runtime is dropped no task is left pending, even one whose abort
/// could not take effect before the workers stopped: a handle kept past the
/// shutdown sees it done (cancelled), so nothing can wait on it forever.
#[test]
fn case_18_no_task_left_pending_after_shutdown() {
    within_limit(|| {
        let (_reports, blocker) = shutdown_with_blocking_task();
        assert!(blocker.done(), "the task is left pending after shutdown");
        assert!(blocker.cancelled());
    });
}

/// A task pending at shutdown is cancelled and its cleanup, which awaits
/// (yields and awaits another task that is cleaning up too), runs to the end;
/// nothing is reported.
#[test]
fn case_18_shutdown_runs_cleanup_that_awaits() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(2);
        let log = Log::default();
        let (l, l2) = (log.clone(), log.clone());
        let started = Promise::<()>::new();
        let s = started.clone();
        let outer = rt.spawn_named("outer", async move {
            let never = Promise::<()>::new();
            let inner_ready = Promise::<()>::new();
            let (n, ready) = (never.clone(), inner_ready.clone());
            let inner = spindle::task::Builder::new()
                .name("inner")
                .spawn(async move {
                    ready.set_result(())?;
                    let err = n.await.unwrap_err();
                    for _ in 0..3 {
                        spindle::yield_now().await?;
                    }
                    l2.push(format!("inner cleanup done ({err})"));
                    spindle::Ok(5)
                });
            inner_ready.await?;
            s.set_result(())?;
            let err = Promise::<()>::new().await.unwrap_err();
            assert!(err.is_cancelled());
            spindle::yield_now().await?;
            let from_inner = inner.await?;
            l.push(format!("outer cleanup got {from_inner}"));
            Err::<(), _>(err)
        });
        rt.block_on(started).unwrap();
        drop_within(rt, Duration::from_secs(20));
        let mut entries = log.get();
        entries.sort();
        assert_eq!(
            entries,
            ["inner cleanup done (cancelled)", "outer cleanup got 5"]
        );
        assert!(outer.cancelled());
        let reports = taken(&reports);
        assert!(reports.is_empty(), "unexpected reports: {reports:?}");
    });
}
