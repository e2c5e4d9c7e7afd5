//! `to_thread`: blocking functions on the runtime's bounded blocking pool,
//! with asyncio's `to_thread` / `run_in_executor` semantics (value, panic,
//! concurrency and its bound, cancellation of a running or a queued function,
//! no runtime, shutdown, keep-alive of idle threads, bad settings).
//!
//! Timing limits are generous: functions sleep (they need no CPU), and every
//! "this must not have happened yet" check is made deterministic by gating
//! the function on a channel the test controls, not by racing a clock.

mod common;
use common::{ms, rt, within_limit};

use futures_util::FutureExt;
use spindle::{ErrorKind, Runtime};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

// -- helpers ------------------------------------------------------------------

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_string()
}

/// Waits (in a task) until `condition` holds; fails the test after 10 s.
async fn wait_until(what: &str, condition: impl Fn() -> bool) -> spindle::Result<()> {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        spindle::sleep(ms(1)).await?;
    }
    Ok(())
}

/// Waits (on a plain thread) until `condition` holds; fails after 10 s.
fn wait_until_blocking(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        thread::sleep(ms(1));
    }
}

/// A blocking function's gate: the function waits until the test opens it
/// (or `limit` passes, so a failed test never leaves a thread forever).
fn gate() -> (mpsc::Sender<()>, impl FnOnce(Duration)) {
    let (open, opened) = mpsc::channel::<()>();
    (open, move |limit: Duration| {
        let _ = opened.recv_timeout(limit);
    })
}

/// Sets its flag once the wrapped future has returned `Pending` (for a
/// `to_thread` future: its function has been handed to the pool).
struct NotePending<F> {
    inner: Pin<Box<F>>,
    pending: Arc<AtomicBool>,
}

impl<F> NotePending<F> {
    fn new(inner: F, pending: Arc<AtomicBool>) -> Self {
        NotePending {
            inner: Box::pin(inner),
            pending,
        }
    }
}

impl<F: Future> Future for NotePending<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let poll = self.inner.as_mut().poll(cx);
        if poll.is_pending() {
            self.pending.store(true, SeqCst);
        }
        poll
    }
}

/// A minimal executor for a plain thread: polls, parks until woken.
fn block_on_plain<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park_timeout(ms(10));
    }
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

// -- value and thread -----------------------------------------------------------

/// `to_thread(f).await` returns `f`'s value (moved, not copied), computed on
/// a pool thread named `spindle-blocking-<n>`, not on a worker, and outside
/// any task; a `Result` value comes back as the value, not as the await's error.
#[test]
fn returns_the_value_computed_on_a_blocking_thread_not_a_worker() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .thread_name("tt-worker")
            .build()
            .unwrap();
        rt.block_on(async {
            let worker = thread_name();
            let worker_id = thread::current().id();
            assert!(worker.starts_with("tt-worker-"), "awaited on {worker}");

            let (value, name, id, in_task) = spindle::to_thread(|| {
                (
                    6 * 7,
                    thread_name(),
                    thread::current().id(),
                    matches!(spindle::current_task(), Ok(Some(_))),
                )
            })
            .await?;
            assert_eq!(value, 42);
            assert!(name.starts_with("spindle-blocking-"), "ran on {name}");
            assert_ne!(id, worker_id);
            assert!(!in_task, "a blocking function runs outside any task");

            let owned = spindle::to_thread(|| vec![String::from("moved"); 3]).await?;
            assert_eq!(owned, ["moved", "moved", "moved"]);

            let inner = spindle::to_thread(|| std::fs::read("/nonexistent/spindle-to-thread"))
                .await?
                .unwrap_err();
            assert_eq!(inner.kind(), std::io::ErrorKind::NotFound);
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// `to_thread` from a plain thread that entered the runtime
/// (`Handle::enter`), driven by a non-spindle executor, runs the function
/// on the pool and returns its value.
#[test]
fn works_from_a_plain_thread_inside_handle_enter() {
    within_limit(|| {
        let rt = rt(1);
        let _entered = rt.handle().enter();
        let name = block_on_plain(spindle::to_thread(thread_name)).unwrap();
        assert!(name.starts_with("spindle-blocking-"), "ran on {name}");
    });
}

// -- concurrency and its bound -------------------------------------------------

/// Four functions sleeping 200 ms each, gathered, finish together in well
/// under the 800 ms they would take one after the other, on four distinct
/// threads; meanwhile the runtime's only worker stays free: a task ticking
/// on `spindle::sleep(5 ms)` keeps ticking.
#[test]
fn four_sleeping_functions_run_concurrently_and_the_worker_stays_free() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let ticks = Arc::new(AtomicUsize::new(0));
            let t = ticks.clone();
            // Ticks until cancelled (the cancel ends its sleep).
            let ticker = spindle::spawn(async move {
                while spindle::sleep(ms(5)).await.is_ok() {
                    t.fetch_add(1, SeqCst);
                }
                spindle::Ok(())
            });
            spindle::yield_now().await?;

            let start = Instant::now();
            let before = ticks.load(SeqCst);
            let results = spindle::gather((0..4).map(|i| {
                spindle::to_thread(move || {
                    thread::sleep(ms(200));
                    (i, thread_name())
                })
            }))
            .await?;
            let elapsed = start.elapsed();
            let ticked = ticks.load(SeqCst) - before;

            let order: Vec<i32> = results.iter().map(|(i, _)| *i).collect();
            assert_eq!(order, [0, 1, 2, 3], "gather keeps the argument order");
            let threads: HashSet<&String> = results.iter().map(|(_, name)| name).collect();
            assert_eq!(threads.len(), 4, "one thread each: {threads:?}");
            assert!(elapsed >= ms(200), "{elapsed:?}");
            assert!(elapsed < ms(600), "not concurrent: {elapsed:?}");
            // ~40 expected; a blocked worker would give 0.
            assert!(ticked >= 5, "the worker was blocked: {ticked} ticks");

            ticker.cancel();
            ticker.await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// With `max_blocking_threads(2)`, six 100 ms functions never run more
/// than two at once (counted with an atomic), use at most two threads, and
/// so take at least three rounds (300 ms).
#[test]
fn max_blocking_threads_bounds_how_many_functions_run_at_once() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_blocking_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let running = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let threads = Arc::new(Mutex::new(HashSet::new()));
            let start = Instant::now();
            let done = spindle::gather((0..6).map(|i| {
                let (running, most, threads) = (running.clone(), most.clone(), threads.clone());
                spindle::to_thread(move || {
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    threads.lock().unwrap().insert(thread_name());
                    thread::sleep(ms(100));
                    running.fetch_sub(1, SeqCst);
                    i
                })
            }))
            .await?;
            let elapsed = start.elapsed();
            assert_eq!(done, [0, 1, 2, 3, 4, 5]);
            assert_eq!(
                most.load(SeqCst),
                2,
                "at most (and here exactly) two at once"
            );
            let threads = threads.lock().unwrap();
            assert!(
                threads.len() <= 2,
                "more threads than the bound: {threads:?}"
            );
            // Three rounds of >= 100 ms (5 ms slack for clock rounding only).
            assert!(elapsed >= ms(295), "{elapsed:?}");
            assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// Many short functions through a tiny pool whose threads exit almost as
/// soon as they are idle (keep-alive 1 ms), submitted in staggered waves so
/// submissions race with threads going idle and exiting: every function
/// runs exactly once, returns its own value, and the bound holds.
#[test]
fn many_functions_through_a_small_pool_with_short_keep_alive_all_complete() {
    const CALLS: usize = 300;
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_blocking_threads(3)
            .blocking_keep_alive(ms(1))
            .build()
            .unwrap();
        rt.block_on(async {
            let running = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let runs = Arc::new(AtomicUsize::new(0));
            let mut rng = common::storm::Rng(0x7e57_0001);
            let tasks: Vec<_> = (0..CALLS)
                .map(|i| {
                    let (running, most, runs) = (running.clone(), most.clone(), runs.clone());
                    let pause = rng.below(4);
                    spindle::spawn(async move {
                        if pause > 0 {
                            spindle::sleep(ms(pause)).await?;
                        }
                        spindle::to_thread(move || {
                            let now = running.fetch_add(1, SeqCst) + 1;
                            most.fetch_max(now, SeqCst);
                            runs.fetch_add(1, SeqCst);
                            if i % 7 == 0 {
                                thread::sleep(ms(1));
                            }
                            running.fetch_sub(1, SeqCst);
                            i * 2
                        })
                        .await
                    })
                })
                .collect();
            let values = spindle::gather(tasks).await?;
            let expected: Vec<usize> = (0..CALLS).map(|i| i * 2).collect();
            assert_eq!(values, expected);
            assert_eq!(runs.load(SeqCst), CALLS, "each function runs exactly once");
            assert!(
                most.load(SeqCst) <= 3,
                "bound exceeded: {}",
                most.load(SeqCst)
            );
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A function's result reaches its awaiter while the runtime's only worker
/// is kept busy by a task that never sleeps (it only yields).
#[test]
fn a_result_reaches_its_awaiter_while_the_only_worker_is_busy() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let stop = flag();
            let s = stop.clone();
            let spinner = spindle::spawn(async move {
                let mut spins = 0u64;
                while !s.load(SeqCst) {
                    spindle::yield_now().await?;
                    spins += 1;
                }
                spindle::Ok(spins)
            });
            let value = spindle::timeout(
                Duration::from_secs(5),
                spindle::to_thread(|| {
                    thread::sleep(ms(50));
                    "through a busy worker"
                }),
            )
            .await?;
            assert_eq!(value, "through a busy worker");
            assert!(!spinner.done(), "the spinner was still running");
            stop.store(true, SeqCst);
            assert!(spinner.await? > 0);
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- panics ---------------------------------------------------------------------

/// A panic inside the function becomes the await's error of kind
/// `Panicked`, carrying the message; the pool thread survives (the next
/// function runs on the same single thread) and the runtime lives on.
#[test]
fn a_panic_becomes_a_panicked_error_and_the_runtime_lives_on() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_blocking_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let before = spindle::to_thread(thread_name).await?;
            let err = spindle::to_thread(|| -> u32 { panic!("boom in a blocking function") })
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Panicked);
            assert!(
                err.to_string().contains("boom in a blocking function"),
                "{err}"
            );
            let code = 7;
            let err = spindle::to_thread(move || -> u32 { panic!("formatted {code}") })
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Panicked);
            assert!(err.to_string().contains("formatted 7"), "{err}");

            let after = spindle::to_thread(thread_name).await?;
            assert_eq!(after, before, "the pool thread survived the panics");
            assert_eq!(spindle::to_thread(|| 5).await?, 5);
            assert_eq!(spindle::spawn(async { spindle::Ok(6) }).await?, 6);
            spindle::Ok(())
        })
        .unwrap();
        assert_eq!(rt.block_on(async { spindle::Ok(1) }).unwrap(), 1);
    });
}

// -- cancellation -------------------------------------------------------------

/// Cancelling a task while its `to_thread` function runs ends the task
/// cancelled (with the message) at once, while the function is still held
/// at its gate; the function then runs to its end anyway and its value is
/// dropped (as asyncio: a thread cannot be interrupted).
#[test]
fn cancelling_the_awaiter_returns_at_once_and_the_running_function_still_finishes() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let (started, finished, value_dropped) = (flag(), flag(), flag());
            let (open, wait_for_gate) = gate();
            let (s, f, d) = (started.clone(), finished.clone(), value_dropped.clone());
            let task = spindle::spawn(async move {
                let value = spindle::to_thread(move || {
                    s.store(true, SeqCst);
                    wait_for_gate(Duration::from_secs(10));
                    f.store(true, SeqCst);
                    DropFlag(d)
                })
                .await?;
                drop(value);
                spindle::Ok(())
            });
            wait_until("the function started", || started.load(SeqCst)).await?;

            let cancelled_at = Instant::now();
            task.cancel_with("stop waiting");
            let err = task.clone().await.unwrap_err();
            let took = cancelled_at.elapsed();
            assert!(err.is_cancelled(), "{err:?}");
            assert_eq!(err.cancel_message(), Some("stop waiting"));
            assert!(task.cancelled());
            assert!(
                !finished.load(SeqCst),
                "the task ended before the function could"
            );
            assert!(took < Duration::from_secs(2), "cancel took {took:?}");

            // The function still runs to its end; its value is dropped, not leaked.
            open.send(()).unwrap();
            wait_until("the function finished", || finished.load(SeqCst)).await?;
            wait_until("its value was dropped", || value_dropped.load(SeqCst)).await?;
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// With the pool saturated (one thread, held at a gate), a function still
/// queued when its awaiter is cancelled never starts: the awaiter ends
/// cancelled at once, and once the pool is free the next function runs
/// (after the cancelled one would have) while the cancelled one stays unrun.
#[test]
fn a_queued_function_whose_awaiter_is_cancelled_never_starts() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_blocking_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let (blocker_started, queued_ran, queued_submitted) = (flag(), flag(), flag());
            let (open, wait_for_gate) = gate();
            let bs = blocker_started.clone();
            let blocker = spindle::spawn(spindle::to_thread(move || {
                bs.store(true, SeqCst);
                wait_for_gate(Duration::from_secs(10));
                "blocker"
            }));
            wait_until("the blocker started", || blocker_started.load(SeqCst)).await?;

            let ran = queued_ran.clone();
            let queued = spindle::spawn(NotePending::new(
                spindle::to_thread(move || ran.store(true, SeqCst)),
                queued_submitted.clone(),
            ));
            wait_until("the queued function was submitted", || {
                queued_submitted.load(SeqCst)
            })
            .await?;

            queued.cancel();
            let err = queued.clone().await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            assert!(!blocker.done(), "the pool is still saturated");

            // The same for an awaiter aborted (its future dropped, no cancel
            // delivered): the function it queued never starts either.
            let (aborted_ran, aborted_submitted) = (flag(), flag());
            let ran = aborted_ran.clone();
            let aborted = spindle::spawn(NotePending::new(
                spindle::to_thread(move || ran.store(true, SeqCst)),
                aborted_submitted.clone(),
            ));
            wait_until("the second queued function was submitted", || {
                aborted_submitted.load(SeqCst)
            })
            .await?;
            aborted.abort();
            assert!(aborted.clone().await.unwrap_err().is_cancelled());

            open.send(()).unwrap();
            assert_eq!(blocker.await?, "blocker");
            // FIFO on one thread: this runs only after the cancelled job was
            // taken off the queue.
            let next = spindle::to_thread(|| "next").await?;
            assert_eq!(next, "next");
            assert!(!queued_ran.load(SeqCst), "a cancelled queued function ran");
            assert!(!aborted_ran.load(SeqCst), "an aborted queued function ran");
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// A storm of random cancels and aborts over 300 tasks awaiting short
/// functions on a 3-thread pool: every task ends, a function runs at most
/// once, every task that returned a value had its own function run, every
/// function that started also finished, and the pool still works after.
#[test]
fn a_cancellation_storm_runs_every_function_once_or_never() {
    use common::storm::{chaos, storm_seed, Ended, Rng};
    const TASKS: usize = 300;
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_blocking_threads(3)
            .build()
            .unwrap();
        rt.block_on(async {
            let seed = storm_seed(0x70_7468_7265_6164);
            let started: Arc<Vec<AtomicUsize>> =
                Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
            let finished: Arc<Vec<AtomicUsize>> =
                Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
            let ended = Arc::new(AtomicUsize::new(0));
            let live = Arc::new(Mutex::new(Vec::new()));
            let stop = flag();
            let canceller = chaos(live.clone(), stop.clone(), seed);
            let mut rng = Rng(seed ^ 1);
            let mut tasks = Vec::new();
            for i in 0..TASKS {
                let (started, finished, ended) = (started.clone(), finished.clone(), ended.clone());
                let pause = rng.below(3);
                // Moved into the future: dropped with it, even if it never ran.
                let ended = Ended(ended);
                let task = spindle::spawn(async move {
                    let _ended = ended;
                    spindle::to_thread(move || {
                        started[i].fetch_add(1, SeqCst);
                        if pause > 0 {
                            thread::sleep(ms(pause));
                        }
                        finished[i].fetch_add(1, SeqCst);
                        i
                    })
                    .await
                });
                live.lock().unwrap().push(task.as_any().clone());
                tasks.push(task);
                if i % 8 == 0 {
                    spindle::yield_now().await?;
                }
            }
            let outcomes = spindle::gather(tasks).return_exceptions().await?;
            stop.store(true, SeqCst);
            let hits = canceller.await?;
            assert!(hits > 0, "the storm cancelled nothing (seed {seed:#x})");

            wait_until("every started function finished", || {
                (0..TASKS).all(|i| started[i].load(SeqCst) == finished[i].load(SeqCst))
            })
            .await?;
            wait_until("every task's future was dropped", || {
                ended.load(SeqCst) >= TASKS
            })
            .await?;
            assert_eq!(ended.load(SeqCst), TASKS, "every task ended exactly once");
            let mut values = 0;
            for (i, outcome) in outcomes.into_iter().enumerate() {
                let runs = started[i].load(SeqCst);
                assert!(runs <= 1, "function {i} ran {runs} times (seed {seed:#x})");
                match outcome {
                    Ok(v) => {
                        assert_eq!(v, i);
                        assert_eq!(runs, 1, "task {i} has a value its function never made");
                        values += 1;
                    }
                    Err(e) => assert!(e.is_cancelled(), "task {i}: {e:?}"),
                }
            }
            assert!(values > 0, "no task survived the storm (seed {seed:#x})");
            assert_eq!(spindle::to_thread(|| "after").await?, "after");
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- no runtime ---------------------------------------------------------------

/// Outside any runtime, `to_thread` fails with a `Runtime` error (no panic)
/// and never runs its function, polled by `now_or_never` or by a plain
/// executor; the same through the handle of a runtime that has shut down.
#[test]
fn outside_a_runtime_it_is_a_runtime_error_and_the_function_never_runs() {
    within_limit(|| {
        let ran = flag();
        let r = ran.clone();
        let outcome = spindle::to_thread(move || r.store(true, SeqCst)).now_or_never();
        match outcome {
            Some(Err(err)) => {
                assert_eq!(err.kind(), ErrorKind::Runtime);
                assert!(err.to_string().contains("runtime"), "{err}");
            }
            other => panic!("expected a runtime error, got {other:?}"),
        }

        let r = ran.clone();
        let err = block_on_plain(spindle::to_thread(move || r.store(true, SeqCst))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime);

        let rt = rt(1);
        let handle = rt.handle().clone();
        drop(rt);
        let entered = handle.enter();
        let r = ran.clone();
        let outcome = spindle::to_thread(move || r.store(true, SeqCst)).now_or_never();
        drop(entered);
        match outcome {
            Some(Err(err)) => assert_eq!(err.kind(), ErrorKind::Runtime, "{err}"),
            other => panic!("expected a runtime error after shutdown, got {other:?}"),
        }

        thread::sleep(ms(50));
        assert!(!ran.load(SeqCst), "a function ran without a runtime");
    });
}

// -- shutdown -----------------------------------------------------------------

/// Dropping a runtime while a 300 ms function runs (shutdown timeout 5 s)
/// returns only after the function finished; the awaiting task ends
/// cancelled, and a function queued behind it (one thread) never starts.
#[test]
fn shutdown_waits_for_a_running_function_within_the_shutdown_timeout() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .max_blocking_threads(1)
            .shutdown_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let (started, finished, queued_ran, queued_submitted) = (flag(), flag(), flag(), flag());
        let (s, f) = (started.clone(), finished.clone());
        let running = rt.spawn(spindle::to_thread(move || {
            s.store(true, SeqCst);
            thread::sleep(ms(300));
            f.store(true, SeqCst);
        }));
        wait_until_blocking("the function started", || started.load(SeqCst));
        let q = queued_ran.clone();
        let queued = rt.spawn(NotePending::new(
            spindle::to_thread(move || q.store(true, SeqCst)),
            queued_submitted.clone(),
        ));
        wait_until_blocking("the second function was queued", || {
            queued_submitted.load(SeqCst)
        });

        let dropping = Instant::now();
        drop(rt);
        let took = dropping.elapsed();
        assert!(
            finished.load(SeqCst),
            "drop returned before the running function finished ({took:?})"
        );
        assert!(took < Duration::from_secs(4), "drop took {took:?}");
        assert!(running.cancelled(), "the awaiting task was cancelled");
        assert!(queued.cancelled());
        thread::sleep(ms(100));
        assert!(
            !queued_ran.load(SeqCst),
            "a queued function started after shutdown"
        );
    });
}

/// As in `asyncio.run` (tasks are cancelled before the default executor
/// shuts down), the cleanup of a task cancelled by shutdown can still await
/// `to_thread`, and shutdown waits for that cleanup.
#[test]
fn cleanup_during_shutdown_can_still_use_to_thread() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .shutdown_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let (waiting, cleaned) = (flag(), Arc::new(AtomicUsize::new(0)));
        let (w, c) = (waiting.clone(), cleaned.clone());
        let task = rt.spawn(async move {
            w.store(true, SeqCst);
            let err = spindle::sleep(Duration::from_secs(60)).await.unwrap_err();
            assert!(err.is_cancelled());
            let value = spindle::to_thread(|| {
                thread::sleep(ms(50));
                42
            })
            .await?;
            c.store(value, SeqCst);
            Err::<(), _>(err)
        });
        wait_until_blocking("the task is waiting", || waiting.load(SeqCst));
        drop(rt);
        assert_eq!(cleaned.load(SeqCst), 42, "the cleanup's to_thread ran");
        assert!(task.cancelled());
    });
}

/// With `shutdown_timeout(100 ms)`, dropping a runtime while a function
/// runs for up to 3 s returns in well under 3 s, leaving the function to
/// finish on its own thread.
#[test]
fn shutdown_stops_waiting_for_a_long_function_after_the_shutdown_timeout() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .shutdown_timeout(ms(100))
            .build()
            .unwrap();
        let (started, finished) = (flag(), flag());
        let (open, wait_for_gate) = gate();
        let (s, f) = (started.clone(), finished.clone());
        let task = rt.spawn(spindle::to_thread(move || {
            s.store(true, SeqCst);
            wait_for_gate(Duration::from_secs(3));
            f.store(true, SeqCst);
        }));
        wait_until_blocking("the function started", || started.load(SeqCst));

        let dropping = Instant::now();
        drop(rt);
        let took = dropping.elapsed();
        assert!(took < ms(1500), "drop waited for the function: {took:?}");
        assert!(!finished.load(SeqCst), "the function cannot have finished");
        assert!(task.cancelled());

        // It finishes on its own thread after the runtime is gone.
        open.send(()).unwrap();
        wait_until_blocking("the function finished", || finished.load(SeqCst));
    });
}

/// A function queued (not started) when the runtime shuts down is dropped:
/// polled from a plain thread inside `Handle::enter` (no task, so no
/// cancellation reaches it), its future then fails with a `Runtime` error,
/// while the running one's future still gives its value.
#[test]
fn queued_functions_never_start_after_shutdown() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_blocking_threads(1)
            .shutdown_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let (started, queued_ran) = (flag(), flag());
        let (s, q) = (started.clone(), queued_ran.clone());
        let entered = rt.handle().enter();
        let mut running = spindle::to_thread(move || {
            s.store(true, SeqCst);
            thread::sleep(ms(200));
            "ran"
        });
        let mut queued = spindle::to_thread(move || q.store(true, SeqCst));
        assert!(poll_once(&mut running).is_pending());
        wait_until_blocking("the first function started", || started.load(SeqCst));
        assert!(poll_once(&mut queued).is_pending());
        drop(entered);

        drop(rt);
        assert_eq!(running.now_or_never().map(Result::unwrap), Some("ran"));
        match queued.now_or_never() {
            Some(Err(err)) => assert_eq!(err.kind(), ErrorKind::Runtime, "{err}"),
            other => panic!("expected a runtime error for the dropped job, got {other:?}"),
        }
        thread::sleep(ms(100));
        assert!(
            !queued_ran.load(SeqCst),
            "a queued function ran after shutdown"
        );
    });
}

// -- keep-alive -----------------------------------------------------------------

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The thread `tid` of this process still exists.
fn thread_alive(tid: i32) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// The kernel's name of thread `tid` (15 characters at most).
fn thread_comm(tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// With `blocking_keep_alive(50 ms)` an idle pool thread exits: the very
/// thread that ran a function (identified by its kernel thread id, so other
/// tests' pools running in parallel cannot disturb the count) disappears
/// from `/proc/self/task`, and the next function starts a new thread.
#[test]
fn idle_blocking_threads_exit_after_the_keep_alive() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_blocking_threads(1)
            .blocking_keep_alive(ms(50))
            .build()
            .unwrap();
        rt.block_on(async {
            let first = spindle::to_thread(gettid).await?;
            let comm = thread_comm(first);
            // The comm is "spindle-blockin" (truncated), or "" if it already exited.
            assert!(
                comm.is_empty() || comm.starts_with("spindle-blockin"),
                "{comm}"
            );
            let since = Instant::now();
            wait_until("the idle thread exited", || !thread_alive(first)).await?;
            assert!(since.elapsed() < Duration::from_secs(10));

            let (second, name) = spindle::to_thread(|| (gettid(), thread_name())).await?;
            assert_ne!(second, first, "a new thread runs the next function");
            assert_eq!(name, "spindle-blocking-1");
            spindle::Ok(())
        })
        .unwrap();
    });
}

/// With the default keep-alive (10 s) an idle thread stays and is reused:
/// 300 ms after its function it still exists, and it runs the next one.
#[test]
fn idle_blocking_threads_are_reused_within_the_keep_alive() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(1)
            .max_blocking_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let first = spindle::to_thread(gettid).await?;
            assert!(thread_comm(first).starts_with("spindle-blockin"));
            spindle::sleep(ms(300)).await?;
            assert!(thread_alive(first), "the idle thread exited too early");
            let second = spindle::to_thread(gettid).await?;
            assert_eq!(second, first, "the idle thread was reused");
            spindle::Ok(())
        })
        .unwrap();
    });
}

// -- settings -------------------------------------------------------------------

/// `max_blocking_threads(0)` is rejected by `build()` with an
/// `InvalidArgument` error; 1 is accepted.
#[test]
fn zero_max_blocking_threads_is_an_invalid_argument() {
    within_limit(|| {
        let err = Runtime::builder()
            .worker_threads(1)
            .max_blocking_threads(0)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("max_blocking_threads"), "{err}");

        let rt = Runtime::builder()
            .worker_threads(1)
            .max_blocking_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            rt.block_on(spindle::to_thread(|| 3)).unwrap(),
            3,
            "a to_thread future can be the main task itself"
        );
    });
}

#[test]
fn a_runtime_dropped_on_its_own_blocking_thread_does_not_wait_for_that_thread() {
    let runtime = Runtime::builder()
        .worker_threads(1)
        .shutdown_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let handle = runtime.handle().clone();
    let _entered = handle.enter();
    let took = block_on_plain(spindle::to_thread(move || {
        let start = Instant::now();
        drop(runtime);
        start.elapsed()
    }))
    .unwrap();
    // Before the fix, shutdown waited the whole 3 s for the thread doing it.
    assert!(took < Duration::from_millis(1500), "drop took {took:?}");
}
