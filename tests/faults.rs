//! Fault injection: worker threads that cannot start, done callbacks and
//! unhandled-error hooks that panic, tasks whose bodies or destructors panic.
//! None of them may kill a worker, hang the runtime or leak its threads.
//!
//! Covered elsewhere, not repeated here: zero workers (and absurdly many) in
//! `tests/runtime.rs` (`zero_workers_is_invalid_argument`), zero
//! `max_blocking_threads` in `tests/to_thread.rs`, the basic order of
//! callbacks around a panicking one in `tests/futures.rs`, descriptor
//! exhaustion during `accept` in `tests/net.rs`
//! (`accept_fails_with_emfile_...`) and a C task overflowing its fiber stack
//! in `c-examples/tests/stack_overflow.c` (run by `tests/c_examples.rs`).

mod common;
use common::{ms, within_limit};

use spindle::{ErrorKind, Promise, Runtime, Task, Unhandled, UnhandledKind};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

type Reports = Arc<Mutex<Vec<Unhandled>>>;

const WORKER_PREFIX: &str = "fault-w";

/// A runtime with `workers` threads named `fault-w-<n>`, a short shutdown
/// timeout, and its unhandled-failure reports collected.
fn rt_reporting(workers: usize) -> (Runtime, Reports) {
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let rt = Runtime::builder()
        .worker_threads(workers)
        .thread_name(WORKER_PREFIX)
        .shutdown_timeout(ms(200))
        .on_unhandled_error(move |report| sink.lock().unwrap().push(report.clone()))
        .build()
        .unwrap();
    (rt, reports)
}

fn taken(reports: &Reports) -> Vec<Unhandled> {
    std::mem::take(&mut *reports.lock().unwrap())
}

/// Asserts that `report` is a panicked done callback whose message contains `text`.
fn assert_callback_failed(report: &Unhandled, text: &str) {
    assert_eq!(report.kind(), UnhandledKind::CallbackFailed, "{report}");
    let error = report.error().expect("a callback report carries the error");
    assert_eq!(error.kind(), ErrorKind::Panicked, "{report}");
    assert!(error.to_string().contains(text), "{report}");
}

/// Proves the runtime still runs work: 20 tasks spawned from a task, summed.
fn assert_still_runs_tasks(rt: &Runtime) {
    let sum = rt
        .block_on(async {
            let tasks: Vec<_> = (1..=20u64)
                .map(|i| spindle::spawn(async move { spindle::Ok(i) }))
                .collect();
            let mut sum = 0;
            for task in tasks {
                sum += task.await?;
            }
            spindle::Ok(sum)
        })
        .unwrap();
    assert_eq!(sum, 210);
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// Panics when dropped (unless the thread is already unwinding).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

// -- worker threads that cannot start -----------------------------------------------

/// A worker thread the OS cannot create (its stack cannot be mapped) makes
/// `build()` return a runtime error naming the worker thread, instead of
/// panicking; a runtime built afterwards with sane settings works.
#[test]
fn worker_thread_that_cannot_start_is_a_runtime_error() {
    within_limit(|| {
        // 1 PiB: larger than the user address space, so the stack's mmap
        // fails (pthread_create: EAGAIN) whatever the overcommit policy.
        // (usize::MAX would overflow std's page rounding and panic instead.)
        let err = Runtime::builder()
            .worker_threads(2)
            .thread_stack_size(1 << 50)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime, "{err}");
        let text = err.to_string();
        assert!(text.contains("worker thread 0"), "{text}");

        let rt = Runtime::builder()
            .worker_threads(2)
            .thread_stack_size(1 << 20)
            .build()
            .unwrap();
        assert_still_runs_tasks(&rt);
    });
}

const CHILD_ENV: &str = "SPINDLE_FAULTS_TEST_CHILD";
const CHILD_DONE: &str = "spindle-faults-child: body completed";

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the test `name` of this binary in a child process (process-wide
/// resource limits stay there) and fails unless it passes and prints
/// [`CHILD_DONE`] within a generous limit.
fn run_in_child(name: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("wait for the child"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("the child running {name} did not finish within 60 s (hang)");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(CHILD_DONE),
        "the child running {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's virtual size (VmSize), in bytes.
fn virtual_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    kib * 1024
}

fn set_address_space_limit(bytes: libc::rlim_t) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &new), 0);
    }
    old
}

/// In a child process, with the address space limited so that two 1 GiB
/// worker stacks fit and a third does not: `build()` of four workers fails
/// with a runtime error naming worker thread 2, and the two workers already
/// started are stopped and joined (no thread of the runtime is left, no
/// descriptor leaks), without a hang. With the limit lifted, a runtime of
/// four such workers builds and runs.
#[test]
fn a_later_worker_failing_to_start_stops_the_ones_already_started() {
    const NAME: &str = "a_later_worker_failing_to_start_stops_the_ones_already_started";
    if !in_child() {
        run_in_child(NAME);
        return;
    }
    const GIB: u64 = 1 << 30;
    let build = || {
        Runtime::builder()
            .worker_threads(4)
            .thread_name("fault-as")
            .thread_stack_size(GIB as usize)
            .build()
    };
    let fds = open_fds();
    // Two stacks (2 GiB) plus slack for the new threads' malloc arenas
    // (< 256 MiB); a third stack would need a further 1 GiB.
    let old = set_address_space_limit(virtual_size() + 2 * GIB + 3 * GIB / 4);
    let err = build().unwrap_err();
    set_address_space_limit(old.rlim_cur);
    assert_eq!(err.kind(), ErrorKind::Runtime, "{err}");
    let text = err.to_string();
    assert!(text.contains("worker thread 2"), "{text}");
    // Joined threads leave /proc/self/task at the latest shortly after the
    // join; the loop is only a watchdog against that window.
    let deadline = Instant::now() + Duration::from_secs(20);
    while thread_names().iter().any(|n| n.starts_with("fault-as")) {
        assert!(Instant::now() < deadline, "left: {:?}", thread_names());
        std::thread::sleep(ms(5));
    }
    assert_eq!(open_fds(), fds, "descriptors leaked by the failed build");

    let rt = build().unwrap();
    assert_eq!(rt.worker_threads(), 4);
    assert_still_runs_tasks(&rt);
    drop(rt);
    println!("{CHILD_DONE}");
}

// -- done callbacks that panic --------------------------------------------------------

/// A done callback that panics is reported through the unhandled-error hook
/// (kind CallbackFailed, the panic's message kept), the callbacks after it
/// still run, and the single worker survives: 100 tasks each with a panicking
/// callback give 100 reports, and normal tasks still run.
#[test]
fn a_panicking_done_callback_is_reported_and_the_worker_survives() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(1);
        let after = Arc::new(AtomicUsize::new(0));
        let a = after.clone();
        rt.block_on(async move {
            for i in 0..100 {
                let task = spindle::spawn(async move { spindle::Ok(i) });
                task.add_done_callback(move |_: &Task<i32>| panic!("callback boom {i}"));
                let a = a.clone();
                task.add_done_callback(move |t: &Task<i32>| {
                    assert_eq!(t.result().unwrap(), i);
                    a.fetch_add(1, Ordering::SeqCst);
                });
                // Callbacks run before awaiters wake.
                assert_eq!(task.await?, i);
            }
            spindle::Ok(())
        })
        .unwrap();
        assert_eq!(after.load(Ordering::SeqCst), 100);
        let reports = taken(&reports);
        assert_eq!(reports.len(), 100, "{reports:?}");
        for (i, report) in reports.iter().enumerate() {
            assert_callback_failed(report, &format!("callback boom {i}"));
        }
        assert_still_runs_tasks(&rt);
    });
}

/// A callback added to a task that is already done does not run inside
/// `add_done_callback`: it runs soon after, on a worker thread (whether added
/// from inside a task or from a plain thread). If it panics, that is reported
/// through the hook and the callbacks added after it still run, in order.
#[test]
fn a_panicking_callback_on_a_done_task_runs_on_a_worker_and_is_reported() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(1);
        let task = rt.spawn(async { spindle::Ok(7) });
        let log: Arc<Mutex<Vec<String>>> = Arc::default();

        // From inside a task on the single worker: nothing runs until the
        // adding task gives the worker back.
        let l = log.clone();
        let t = task.clone();
        rt.block_on(async move {
            common::wait_done(&t).await?;
            let done = Promise::<()>::new();
            let l1 = l.clone();
            t.add_done_callback(move |_: &Task<i32>| l1.lock().unwrap().push("in-1".into()));
            t.add_done_callback(|_: &Task<i32>| panic!("late boom"));
            let (l3, d) = (l.clone(), done.clone());
            t.add_done_callback(move |t: &Task<i32>| {
                l3.lock()
                    .unwrap()
                    .push(format!("in-3 {} {}", t.result().unwrap(), thread_name()));
                let _ = d.set_result(());
            });
            assert!(l.lock().unwrap().is_empty(), "a callback ran inline");
            done.await
        })
        .unwrap();

        // From a plain thread (this one): the callback runs on the worker.
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        task.add_done_callback(|_: &Task<i32>| panic!("outside boom"));
        task.add_done_callback(move |_: &Task<i32>| {
            tx.lock().unwrap().send(thread_name()).unwrap();
        });
        let ran_on = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(ran_on, format!("{WORKER_PREFIX}-0"));

        assert_eq!(
            *log.lock().unwrap(),
            ["in-1".to_string(), format!("in-3 7 {WORKER_PREFIX}-0")]
        );
        let reports = taken(&reports);
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_callback_failed(&reports[0], "late boom");
        assert_callback_failed(&reports[1], "outside boom");
        assert_still_runs_tasks(&rt);
    });
}

/// Callbacks that run at shutdown: on a task cancelled by the shutdown, on a
/// task that ignores its cancellation and is aborted, and on a task whose
/// runtime is already shut down (they then run inline on the thread that
/// adds them). In each case a panicking callback is reported through the
/// hook, the next callback runs, and shutdown finishes.
#[test]
fn panicking_callbacks_at_and_after_shutdown_are_reported() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(1);
        let ran: Arc<Mutex<Vec<String>>> = Arc::default();
        let (cancelled, stubborn) = rt
            .block_on(async {
                let cancelled = spindle::spawn(spindle::cancellable(std::future::pending::<()>()));
                let stubborn = spindle::spawn(async {
                    // Ignores every cancellation: only the abort ends it.
                    loop {
                        let _ = spindle::sleep(ms(5)).await;
                    }
                    #[allow(unreachable_code)]
                    spindle::Ok(())
                });
                spindle::yield_now().await?;
                spindle::Ok((cancelled, stubborn))
            })
            .unwrap();
        for (task, name) in [(&cancelled, "cancelled"), (&stubborn, "stubborn")] {
            task.add_done_callback(move |_: &Task<()>| panic!("{name} boom"));
            let r = ran.clone();
            task.add_done_callback(move |_: &Task<()>| {
                r.lock().unwrap().push(format!("{name} {}", thread_name()))
            });
        }
        drop(rt);
        assert!(cancelled.cancelled());
        assert!(stubborn.cancelled());
        let mut ran_now = std::mem::take(&mut *ran.lock().unwrap());
        ran_now.sort();
        assert_eq!(
            ran_now,
            [
                format!("cancelled {WORKER_PREFIX}-0"),
                format!("stubborn {WORKER_PREFIX}-0")
            ]
        );
        let mut shutdown_reports = taken(&reports);
        let aborted: Vec<_> = shutdown_reports
            .iter()
            .filter(|r| r.kind() == UnhandledKind::DestroyedPending)
            .collect();
        assert_eq!(aborted.len(), 1, "{shutdown_reports:?}");
        assert_eq!(aborted[0].task().unwrap().0, stubborn.id());
        shutdown_reports.retain(|r| r.kind() != UnhandledKind::DestroyedPending);
        shutdown_reports.sort_by_key(|r| r.error().unwrap().to_string());
        assert_eq!(shutdown_reports.len(), 2, "{shutdown_reports:?}");
        assert_callback_failed(&shutdown_reports[0], "cancelled boom");
        assert_callback_failed(&shutdown_reports[1], "stubborn boom");

        // After shutdown: inline on this thread, still reported.
        let r = ran.clone();
        cancelled.add_done_callback(|_: &Task<()>| panic!("after boom"));
        cancelled.add_done_callback(move |_: &Task<()>| {
            r.lock().unwrap().push(format!("after {}", thread_name()))
        });
        assert_eq!(*ran.lock().unwrap(), [format!("after {}", thread_name())]);
        let reports = taken(&reports);
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_callback_failed(&reports[0], "after boom");
    });
}

// -- panics in tasks and in their destructors ----------------------------------------------

/// A panic in a task never kills a worker: on a single worker, 1000 tasks
/// that panic each end Panicked with their message, and normal tasks run
/// afterwards. (`tests/runtime.rs` covers one panic; this is the volume.)
#[test]
fn a_thousand_panicking_tasks_leave_the_single_worker_running() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(1);
        let tasks: Vec<_> = (0..1000u32)
            .map(|i| {
                rt.spawn(async move {
                    if std::hint::black_box(true) {
                        panic!("task boom {i}");
                    }
                    spindle::Ok(())
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let err = rt.block_on(task).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Panicked);
            assert!(err.to_string().contains(&format!("task boom {i}")), "{err}");
        }
        assert_still_runs_tasks(&rt);
        // Every error was read: nothing to report.
        assert!(taken(&reports).is_empty());
    });
}

/// A future that panics when dropped, around an inner future.
struct PanicOnDropFuture<F> {
    inner: std::pin::Pin<Box<F>>,
    message: &'static str,
}

impl<F: std::future::Future> std::future::Future for PanicOnDropFuture<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for PanicOnDropFuture<F> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.message);
        }
    }
}

fn panic_on_drop<F: std::future::Future>(message: &'static str, inner: F) -> PanicOnDropFuture<F> {
    PanicOnDropFuture {
        inner: Box::pin(inner),
        message,
    }
}

/// A task's future whose destructor panics never kills a worker, however the
/// future is dropped: cancelled before its first poll (the task ends
/// Cancelled), after it returned the cancellation (Cancelled) or a value
/// (the value is kept), and aborted at shutdown after ignoring its
/// cancellation (reported as destroyed pending; shutdown finishes). A panic
/// in the destructor of a value the body itself drops (a local as the body
/// returns, the inner future `cancellable` drops on cancellation) is part of
/// the body: it becomes the task's Panicked error. The single worker keeps
/// running tasks throughout.
#[test]
fn futures_that_panic_when_dropped_never_kill_a_worker() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(1);
        rt.block_on(async {
            // Cancelled before it ever ran: the unstarted future is dropped.
            let task = spindle::spawn(panic_on_drop("drop boom: unstarted", async {
                spindle::Ok(())
            }));
            task.cancel();
            assert_eq!(task.await.unwrap_err().kind(), ErrorKind::Cancelled);

            // Dropped by the runtime after returning the cancellation.
            let task = spindle::spawn(panic_on_drop(
                "drop boom: cancelled",
                spindle::cancellable(std::future::pending::<()>()),
            ));
            spindle::yield_now().await?;
            task.cancel();
            assert_eq!(task.await.unwrap_err().kind(), ErrorKind::Cancelled);

            // Dropped by the runtime after returning a value.
            let task = spindle::spawn(panic_on_drop("drop boom: finished", async {
                spindle::yield_now().await?;
                spindle::Ok(5)
            }));
            assert_eq!(task.await?, 5);

            // A local of the body dropped as the body returns.
            let task = spindle::spawn(async {
                let _guard = PanicOnDrop("drop boom: returned");
                spindle::cancellable(std::future::pending::<()>()).await?;
                spindle::Ok(())
            });
            spindle::yield_now().await?;
            task.cancel();
            let err = task.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Panicked, "{err}");
            assert!(err.to_string().contains("drop boom: returned"), "{err}");

            // `cancellable` drops its inner future inside the task's poll.
            let task = spindle::spawn(async {
                spindle::cancellable(async {
                    let _guard = PanicOnDrop("drop boom: inner");
                    std::future::pending::<()>().await;
                })
                .await?;
                spindle::Ok(())
            });
            spindle::yield_now().await?;
            task.cancel();
            let err = task.await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Panicked, "{err}");
            assert!(err.to_string().contains("drop boom: inner"), "{err}");
            spindle::Ok(())
        })
        .unwrap();
        assert_still_runs_tasks(&rt);

        // Aborted at shutdown after ignoring its cancellation.
        let stubborn = rt.spawn(panic_on_drop("drop boom: aborted", async {
            loop {
                let _ = spindle::sleep(ms(5)).await;
            }
            #[allow(unreachable_code)]
            spindle::Ok(())
        }));
        rt.block_on(async { spindle::sleep(ms(10)).await }).unwrap();
        drop(rt);
        assert!(stubborn.done());
        assert!(stubborn.cancelled());
        let reports = taken(&reports);
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].kind(), UnhandledKind::DestroyedPending);
        assert_eq!(reports[0].task().unwrap().0, stubborn.id());
    });
}

/// A task output whose destructor panics, left unread in a finished task, is
/// dropped with the task's last handle without unwinding into the caller.
#[test]
fn an_unread_output_that_panics_when_dropped_is_contained() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(1);
        let task = rt.spawn(async { spindle::Ok(PanicOnDrop("drop boom: output")) });
        let t = task.clone();
        rt.block_on(async move { common::wait_done(&t).await })
            .unwrap();
        drop(task);
        assert_still_runs_tasks(&rt);
        drop(rt);
        assert!(taken(&reports).is_empty());
    });
}

// -- the hook itself panics -----------------------------------------------------------

/// A panic inside the unhandled-error hook never kills the thread that made
/// the report: the report falls back to stderr, the hook is still called for
/// later reports, and the single worker keeps running tasks. Covered: a
/// panicking callback (reported on the worker), a never-retrieved error
/// (reported where the last handle drops: on this thread) and a task
/// destroyed pending at shutdown (reported by the shutting-down thread).
#[test]
fn a_panicking_hook_never_kills_a_worker() {
    within_limit(|| {
        let calls: Arc<Mutex<Vec<UnhandledKind>>> = Arc::default();
        let c = calls.clone();
        let rt = Runtime::builder()
            .worker_threads(1)
            .shutdown_timeout(ms(200))
            .on_unhandled_error(move |report| {
                c.lock().unwrap().push(report.kind());
                panic!("hook boom");
            })
            .build()
            .unwrap();
        for _ in 0..20 {
            rt.block_on(async {
                let task = spindle::spawn(async { spindle::Ok(()) });
                task.add_done_callback(|_: &Task<()>| panic!("callback boom"));
                task.await
            })
            .unwrap();
        }
        assert_still_runs_tasks(&rt);

        let failed = rt.spawn(async { Err::<(), _>(spindle::Error::invalid_state("unread")) });
        rt.block_on({
            let f = failed.clone();
            async move { common::wait_done(&f).await }
        })
        .unwrap();
        drop(failed);
        assert_still_runs_tasks(&rt);

        let _stubborn = rt.spawn(async {
            loop {
                let _ = spindle::sleep(ms(5)).await;
            }
            #[allow(unreachable_code)]
            spindle::Ok(())
        });
        rt.block_on(async { spindle::sleep(ms(10)).await }).unwrap();
        drop(rt);

        let calls = calls.lock().unwrap();
        let count = |kind| calls.iter().filter(|k| **k == kind).count();
        assert_eq!(count(UnhandledKind::CallbackFailed), 20, "{calls:?}");
        assert_eq!(count(UnhandledKind::NeverRetrieved), 1, "{calls:?}");
        assert_eq!(count(UnhandledKind::DestroyedPending), 1, "{calls:?}");
        assert_eq!(calls.len(), 22, "{calls:?}");
    });
}

/// A task that requests its own cancellation and then returns a value ends
/// cancelled, and the value is discarded. If that value's destructor panics,
/// the panic must be contained like every other user destructor the runtime
/// runs: the task ends Cancelled and the single worker keeps running tasks.
/// (Without the `catch_unwind` around that drop in `src/task/raw.rs`
/// `complete`, the panic killed the worker and this test hung until its
/// watchdog failed it.)
#[test]
fn a_discarded_output_that_panics_when_dropped_never_kills_a_worker() {
    within_limit(|| {
        let (rt, _reports) = rt_reporting(1);
        let task = rt.spawn(async {
            common::current().cancel();
            spindle::Ok(PanicOnDrop("drop boom: discarded"))
        });
        let err = rt.block_on(task).map(drop).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
        assert_still_runs_tasks(&rt);
    });
}
