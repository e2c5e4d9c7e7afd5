//! The runtime: `run` and shutdown, panics in tasks, the "never retrieved"
//! report, work spreading over workers, and bad input.

mod common;
use common::{rt, wait_done, within_limit};

use spindle::{Error, ErrorKind, Promise, Runtime, Task, TaskState, Unhandled, UnhandledKind};
use std::collections::HashSet;
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

/// Sets a flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// -- run and shutdown ------------------------------------------------------------

/// `spindle::run` returns main's result, then cancels the tasks still running
/// and waits for their cleanup, which may await (here each cleanup yields and
/// one waits for a value the other's cleanup provides).
#[test]
fn run_cancels_leftover_tasks_and_waits_for_cleanup_that_awaits() {
    within_limit(|| {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let handles: Arc<Mutex<Vec<Task<()>>>> = Arc::default();
        let (l, h) = (log.clone(), handles.clone());
        let answer = spindle::run(async move {
            let handoff = Promise::<u32>::new();
            let (a_started, b_started) = (Promise::<()>::new(), Promise::<()>::new());

            let (l_a, hand_a, s_a) = (l.clone(), handoff.clone(), a_started.clone());
            let a = spindle::task::Builder::new().name("a").spawn(async move {
                s_a.set_result(())?;
                let cancel = Promise::<()>::new().await.unwrap_err();
                spindle::yield_now().await?;
                let got = hand_a.await?;
                l_a.lock().unwrap().push(format!("a cleaned up with {got}"));
                Err::<(), _>(cancel)
            });
            let (l_b, hand_b, s_b) = (l.clone(), handoff.clone(), b_started.clone());
            let b = spindle::task::Builder::new().name("b").spawn(async move {
                s_b.set_result(())?;
                let _ = Promise::<()>::new().await.unwrap_err();
                for _ in 0..3 {
                    spindle::yield_now().await?;
                }
                hand_b.set_result(42)?;
                l_b.lock().unwrap().push("b cleaned up".to_string());
                spindle::Ok(())
            });
            a_started.await?;
            b_started.await?;
            h.lock().unwrap().extend([a, b]);
            spindle::Ok("main's result")
        })
        .unwrap();
        assert_eq!(answer, "main's result");
        let mut log = log.lock().unwrap().clone();
        log.sort();
        assert_eq!(log, ["a cleaned up with 42", "b cleaned up"]);
        let handles = handles.lock().unwrap();
        assert!(handles[0].cancelled(), "a re-raised its cancel");
        assert!(
            handles[1].done() && !handles[1].cancelled(),
            "b swallowed it"
        );
    });
}

/// `spindle::run` returns main's error as is.
#[test]
fn run_returns_main_error() {
    within_limit(|| {
        let err = spindle::run(async { Err::<(), _>(Error::msg("main failed")) }).unwrap_err();
        assert_eq!(err.to_string(), "main failed");
        assert_eq!(err.kind(), ErrorKind::Other);
    });
}

/// Dropping a runtime with pending tasks (started or not) cancels them and
/// returns; their futures are dropped.
#[test]
fn dropping_runtime_cancels_pending_tasks_and_returns() {
    within_limit(|| {
        let rt = rt(2);
        let started = Promise::<()>::new();
        let dropped = Arc::new(AtomicBool::new(false));
        let (s, d) = (started.clone(), dropped.clone());
        let waiting = rt.spawn(async move {
            let _guard = DropFlag(d);
            s.set_result(())?;
            Promise::<()>::new().await
        });
        rt.block_on(started).unwrap();
        let late = rt.spawn(Promise::<()>::new());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            drop(rt);
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("dropping the runtime did not return");
        assert!(waiting.done() && waiting.cancelled());
        assert!(late.done() && late.cancelled());
        assert!(dropped.load(Ordering::SeqCst));
    });
}

// -- panics ---------------------------------------------------------------------

/// A panic in a task becomes its error (kind Panicked, message kept), and the
/// worker survives: more work runs on the same single worker afterwards.
#[test]
fn panic_in_task_becomes_its_error_and_worker_survives() {
    within_limit(|| {
        let rt = rt(1);
        let task = rt.spawn(async {
            if std::hint::black_box(true) {
                panic!("kaboom {}", 7);
            }
            spindle::Ok(())
        });
        let err = rt.block_on(task.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Panicked);
        assert!(err.to_string().contains("kaboom 7"), "{err}");
        assert_eq!(task.state(), TaskState::Failed);
        assert!(!task.cancelled());
        assert_eq!(
            task.exception().unwrap().unwrap().kind(),
            ErrorKind::Panicked
        );

        // A panic with a &str payload, awaited by another task.
        let from_awaiter = rt
            .block_on(async {
                let t = spindle::spawn(async {
                    if std::hint::black_box(true) {
                        panic!("static message");
                    }
                    spindle::Ok(())
                });
                let err = t.await.unwrap_err();
                spindle::Ok((err.kind(), err.to_string()))
            })
            .unwrap();
        assert_eq!(from_awaiter.0, ErrorKind::Panicked);
        assert!(
            from_awaiter.1.contains("static message"),
            "{}",
            from_awaiter.1
        );

        // The single worker still runs tasks.
        let sum = rt
            .block_on(async {
                let tasks: Vec<_> = (1..=4u32)
                    .map(|i| spindle::spawn(async move { spindle::Ok(i) }))
                    .collect();
                let mut sum = 0;
                for t in tasks {
                    sum += t.await?;
                }
                spindle::Ok(sum)
            })
            .unwrap();
        assert_eq!(sum, 10);
    });
}

// -- the never-retrieved report ---------------------------------------------------

/// A failure nobody reads is reported exactly once, however many handles the
/// task had and wherever they were dropped; a failure read through one handle
/// is not reported when the others are dropped.
#[test]
fn never_retrieved_report_happens_exactly_once() {
    within_limit(|| {
        let (rt, reports) = rt_reporting(2);
        let (unread_id, read_id) = rt
            .block_on(async {
                let unread = spindle::task::Builder::new().name("unread").spawn(async {
                    if std::hint::black_box(true) {
                        panic!("nobody reads this");
                    }
                    spindle::Ok(())
                });
                wait_done(&unread).await?;
                let clones: Vec<_> = (0..4).map(|_| unread.clone()).collect();
                let id = unread.id();
                // Drop the handles in several tasks and here.
                for clone in clones {
                    spindle::spawn(async move {
                        spindle::yield_now().await?;
                        drop(clone);
                        spindle::Ok(())
                    })
                    .await?;
                }
                drop(unread);

                let read = spindle::task::Builder::new()
                    .name("read")
                    .spawn(async { Err::<(), _>(Error::msg("read once")) });
                let other = read.clone();
                assert_eq!(read.await.unwrap_err().to_string(), "read once");
                let read_id = other.id();
                drop(other);
                spindle::Ok((id, read_id))
            })
            .unwrap();
        drop(rt);
        let reports = reports.lock().unwrap().clone();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let report = &reports[0];
        assert_eq!(report.kind(), UnhandledKind::NeverRetrieved);
        assert_eq!(report.task(), Some((unread_id, "unread")));
        let error = report.error().unwrap();
        assert_eq!(error.kind(), ErrorKind::Panicked);
        assert!(error.to_string().contains("nobody reads this"), "{error}");
        assert!(report.task().unwrap().0 != read_id);
    });
}

// -- work spreads over workers ------------------------------------------------------

/// Tasks spawned by one task spread over several workers (the others steal):
/// with 2 workers, tasks that do some CPU work and yield are seen running on
/// at least 2 distinct worker threads. Robust: the tasks keep going until two
/// threads were seen (or a generous deadline passes).
#[test]
fn work_spreads_over_several_workers() {
    within_limit(|| {
        let rt = Runtime::builder()
            .worker_threads(2)
            .thread_name("spread")
            .build()
            .unwrap();
        assert_eq!(rt.worker_threads(), 2);
        let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
        let s = seen.clone();
        rt.block_on(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let s = s.clone();
                    spindle::spawn(async move {
                        loop {
                            let name = std::thread::current().name().unwrap_or("?").to_string();
                            let distinct = {
                                let mut seen = s.lock().unwrap();
                                seen.insert(name);
                                seen.len()
                            };
                            if distinct >= 2 || Instant::now() > deadline {
                                return spindle::Ok(());
                            }
                            // Some CPU work, then yield.
                            let until = Instant::now() + Duration::from_micros(200);
                            while Instant::now() < until {
                                std::hint::spin_loop();
                            }
                            spindle::yield_now().await?;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await?;
            }
            spindle::Ok(())
        })
        .unwrap();
        let seen = seen.lock().unwrap();
        assert!(seen.len() >= 2, "all tasks ran on {seen:?}");
        for name in seen.iter() {
            assert!(name.starts_with("spread-"), "not a worker thread: {name}");
        }
    });
}

/// A task that yields while nothing else is runnable runs again on its own
/// worker: a yield wakes another worker only if more than the yielded task
/// is waiting (with a wake at every yield, the idle worker stole the task
/// back and forth: about 2% of 1M yields moved it to the other thread).
#[test]
fn a_task_yielding_alone_stays_on_its_worker() {
    within_limit(|| {
        let moves = rt(2)
            .block_on(async {
                let mut thread = std::thread::current().id();
                let mut moves = 0;
                for _ in 0..20_000 {
                    spindle::yield_now().await?;
                    let now = std::thread::current().id();
                    if now != thread {
                        moves += 1;
                        thread = now;
                    }
                }
                spindle::Ok(moves)
            })
            .unwrap();
        assert!(moves <= 10, "moved between threads {moves} times");
    });
}

/// Sets `mine`, then spins (without yielding) until `theirs` is set too;
/// `false` if that takes 10 s: the other task never ran at the same time.
fn rendezvous(mine: &AtomicBool, theirs: &AtomicBool) -> bool {
    mine.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !theirs.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// A spawn into an empty queue wakes no other worker at once (the spawner's
/// worker runs the task when the step ends), but a second spawn in the
/// same step does: here the spawner does not yield until one of its two
/// children has started, which only another worker can do.
#[test]
fn a_second_spawn_in_one_step_wakes_another_worker_at_once() {
    within_limit(|| {
        let rt = rt(2);
        let started = rt
            .block_on(async {
                let started = Arc::new(AtomicBool::new(false));
                let spinning = Arc::new(AtomicBool::new(false));
                // Both workers go to sleep; the one that fires this timer
                // runs the rest without waking the other.
                spindle::sleep(Duration::from_millis(50)).await?;
                let children: Vec<_> = (0..2)
                    .map(|_| {
                        let (started, spinning) = (started.clone(), spinning.clone());
                        spindle::spawn(async move { spindle::Ok(rendezvous(&started, &spinning)) })
                    })
                    .collect();
                let met = rendezvous(&spinning, &started);
                for child in children {
                    child.await?;
                }
                spindle::Ok(met)
            })
            .unwrap();
        assert!(started, "no child started while the spawner's step ran");
    });
}

/// The other half of the deferred spawn wake-up: a task spawned alone into
/// the queue wakes no one, but if more work is queued by the end of the
/// spawner's step (here a task woken into the LIFO slot), another worker is
/// woken then. The spawned task and the woken one must run at the same
/// time, on both workers.
#[test]
fn a_spawn_deferred_to_the_end_of_the_step_still_wakes_a_worker_for_more_work() {
    within_limit(|| {
        let rt = rt(2);
        let (a_met, b_met) = rt
            .block_on(async {
                let (a_flag, b_flag) = (
                    Arc::new(AtomicBool::new(false)),
                    Arc::new(AtomicBool::new(false)),
                );
                let go = Promise::<()>::new();
                let parked = Promise::<()>::new();
                let b = {
                    let (go, parked) = (go.clone(), parked.clone());
                    let (a_flag, b_flag) = (a_flag.clone(), b_flag.clone());
                    spindle::spawn(async move {
                        parked.set_result(())?;
                        go.await?;
                        spindle::Ok(rendezvous(&b_flag, &a_flag))
                    })
                };
                parked.await?;
                // b reaches its await of `go`, and both workers go to sleep;
                // the one that fires this timer runs the rest without
                // waking the other.
                spindle::sleep(Duration::from_millis(50)).await?;
                // One step: spawn a, then wake b; the step ends at the join.
                let a = spindle::spawn(async move { spindle::Ok(rendezvous(&a_flag, &b_flag)) });
                go.set_result(())?;
                let a_met = a.await?;
                spindle::Ok((a_met, b.await?))
            })
            .unwrap();
        assert!(
            a_met && b_met,
            "the spawned task and the woken one never ran at once"
        );
    });
}

// -- bad input -------------------------------------------------------------------

/// Spawning on a runtime that has shut down (through a handle kept past the
/// shutdown) gives a task that is already done and failed with a runtime
/// error; its body never runs.
#[test]
fn spawn_after_shutdown_fails_with_runtime_error() {
    within_limit(|| {
        let rt = rt(2);
        let handle = rt.handle().clone();
        rt.shutdown();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let task = handle.spawn(async move {
            r.store(true, Ordering::SeqCst);
            spindle::Ok(1)
        });
        assert!(task.done());
        assert!(!task.cancelled());
        assert_eq!(task.state(), TaskState::Failed);
        assert_eq!(task.result().unwrap_err().kind(), ErrorKind::Runtime);
        // Through the entered runtime too.
        let _guard = handle.enter();
        let task = spindle::spawn(async { spindle::Ok(2) });
        assert_eq!(task.result().unwrap_err().kind(), ErrorKind::Runtime);
        let task = spindle::task::Builder::new()
            .try_spawn(async { spindle::Ok(3) })
            .expect("a runtime is entered");
        assert_eq!(task.result().unwrap_err().kind(), ErrorKind::Runtime);
        assert!(!ran.load(Ordering::SeqCst));
    });
}

/// result() on a pending task is an invalid-state error.
#[test]
fn result_on_pending_task_is_invalid_state() {
    within_limit(|| {
        let rt = rt(2);
        let gate = Promise::<()>::new();
        let g = gate.clone();
        let task = rt.spawn(async move {
            g.await?;
            spindle::Ok(1)
        });
        assert_eq!(task.result().unwrap_err().kind(), ErrorKind::InvalidState);
        assert_eq!(
            task.take_result().unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        gate.set_result(()).unwrap();
        assert_eq!(rt.block_on(task).unwrap(), 1);
    });
}

/// A task awaiting its own handle gets an error instead of hanging.
#[test]
fn task_awaiting_itself_gets_an_error() {
    within_limit(|| {
        let rt = rt(1);
        let slot = Promise::<Task<()>>::new();
        let s = slot.clone();
        let task = rt.spawn(async move { s.await?.await });
        slot.set_result(task.clone()).unwrap();
        let err = rt.block_on(task).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState);
    });
}

/// A runtime with zero workers (or absurdly many) is an invalid argument.
#[test]
fn zero_workers_is_invalid_argument() {
    let err = Runtime::builder().worker_threads(0).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = Runtime::builder()
        .worker_threads(1 << 20)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// block_on called from inside a task (of the same or of another runtime, or
/// through `spindle::run`) is an error, not a blocked worker.
#[test]
fn block_on_inside_a_task_is_an_error() {
    within_limit(|| {
        let rt = Arc::new(rt(2));
        let other = Arc::new(self::rt(1));
        let (same, another) = (rt.clone(), other.clone());
        let (k1, k2, k3) = rt
            .block_on(async move {
                let e1 = same.block_on(async { spindle::Ok(1) }).unwrap_err();
                let e2 = another.block_on(async { spindle::Ok(2) }).unwrap_err();
                let e3 = spindle::run(async { spindle::Ok(3) }).unwrap_err();
                spindle::Ok((e1.kind(), e2.kind(), e3.kind()))
            })
            .unwrap();
        assert_eq!(k1, ErrorKind::Runtime);
        assert_eq!(k2, ErrorKind::Runtime);
        assert_eq!(k3, ErrorKind::Runtime, "spindle::run inside a task");
        // Both runtimes still work from a plain thread.
        assert_eq!(rt.block_on(async { spindle::Ok(3) }).unwrap(), 3);
        assert_eq!(other.block_on(async { spindle::Ok(4) }).unwrap(), 4);
    });
}

/// Outside any runtime: `Builder::try_spawn` is an error, `spawn` panics,
/// `current_task()` and `all_tasks()` are errors.
#[test]
fn spawn_and_introspection_outside_a_runtime() {
    within_limit(|| {
        let err = spindle::task::Builder::new()
            .try_spawn(async { spindle::Ok(()) })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime);
        let panicked = std::panic::catch_unwind(|| {
            drop(spindle::spawn(async { spindle::Ok(()) }));
        });
        assert!(
            panicked.is_err(),
            "spindle::spawn outside a runtime must panic"
        );
        assert!(spindle::Handle::try_current().is_err());
        assert_eq!(
            spindle::current_task().unwrap_err().kind(),
            ErrorKind::Runtime
        );
        assert_eq!(spindle::all_tasks().unwrap_err().kind(), ErrorKind::Runtime);
    });
}

/// Many tasks spawned from outside and from inside all run to completion on
/// several workers (a smoke test of the queues and the park protocol).
#[test]
fn many_tasks_complete_on_several_workers() {
    within_limit(|| {
        let rt = rt(2);
        let count = Arc::new(AtomicUsize::new(0));
        let outside: Vec<_> = (0..200)
            .map(|_| {
                let c = count.clone();
                rt.spawn(async move {
                    spindle::yield_now().await?;
                    c.fetch_add(1, Ordering::SeqCst);
                    spindle::Ok(())
                })
            })
            .collect();
        let c = count.clone();
        rt.block_on(async move {
            let inside: Vec<_> = (0..200)
                .map(|_| {
                    let c = c.clone();
                    spindle::spawn(async move {
                        spindle::yield_now().await?;
                        c.fetch_add(1, Ordering::SeqCst);
                        spindle::Ok(())
                    })
                })
                .collect();
            for t in inside.into_iter().chain(outside) {
                t.await?;
            }
            spindle::Ok(())
        })
        .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 400);
    });
}

/// On several workers a spawn that finds its worker's queue holding 256
/// tasks first spills the queue's oldest half to the injector (once per
/// step): of the tasks a task spawns without yielding, those spilled and
/// those kept each run exactly once.
#[test]
fn tasks_spilled_from_a_long_queue_each_run_once_on_several_workers() {
    const TASKS: usize = 5_000;
    within_limit(|| {
        let runs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
        let counted = runs.clone();
        rt(2)
            .block_on(async move {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|i| {
                        let runs = counted.clone();
                        spindle::spawn(async move {
                            runs[i].fetch_add(1, Ordering::SeqCst);
                            spindle::Ok(())
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await?;
                }
                spindle::Ok(())
            })
            .unwrap();
        let not_once: Vec<usize> = (0..TASKS)
            .filter(|&i| runs[i].load(Ordering::SeqCst) != 1)
            .collect();
        assert!(
            not_once.is_empty(),
            "tasks not run exactly once: {not_once:?}"
        );
    });
}

/// Counts the fork-join tasks alive at once, and the most ever alive.
#[derive(Default)]
struct Alive {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Held by a task of [`fib_alive`] for its whole life.
struct AliveGuard(Arc<Alive>);

impl AliveGuard {
    fn new(alive: &Arc<Alive>) -> AliveGuard {
        let now = alive.now.fetch_add(1, Ordering::SeqCst) + 1;
        alive.peak.fetch_max(now, Ordering::SeqCst);
        AliveGuard(alive.clone())
    }
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// fib(n) through task groups, one task per call, counted in `alive`.
fn fib_alive(
    n: u64,
    alive: Arc<Alive>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = spindle::Result<u64>> + Send>> {
    let guard = AliveGuard::new(&alive);
    Box::pin(async move {
        let _guard = guard;
        if n < 2 {
            return spindle::Ok(n);
        }
        let (a, b) = spindle::task_group(|tg| async move {
            let a = tg.spawn(fib_alive(n - 1, alive.clone()))?;
            let b = tg.spawn(fib_alive(n - 2, alive))?;
            spindle::Ok((a, b))
        })
        .await?;
        spindle::Ok(a.take_result()? + b.take_result()?)
    })
}

/// On several workers a fork-join tree does not run breadth-first: the
/// oldest tasks of a long queue (the largest subtrees) wait in the injector
/// while the newest (the deepest) run, complete, and let their parents
/// complete. fib(22) spawns 57,313 tasks; with unbounded FIFO queues 20,000
/// to 31,000 of them were alive at once on 2 workers (also with both
/// workers on one CPU), with the spill 6,800 to 9,400.
#[test]
fn a_fork_join_tree_on_several_workers_keeps_few_tasks_alive() {
    const BOUND: usize = 15_000;
    within_limit(|| {
        let alive = Arc::new(Alive::default());
        let counted = alive.clone();
        let value = rt(2)
            .block_on(async move { fib_alive(22, counted).await })
            .unwrap();
        assert_eq!(value, 17_711);
        assert_eq!(alive.now.load(Ordering::SeqCst), 0, "every task ended");
        let peak = alive.peak.load(Ordering::SeqCst);
        assert!(
            peak < BOUND,
            "{peak} of fib(22)'s 57,313 tasks were alive at once (bound {BOUND})"
        );
    });
}

/// The cooperative budget: a task whose await points keep being ready (an
/// event that stays set) is still made to yield, so another task on the
/// only worker gets to run and stop it.
#[test]
fn an_always_ready_await_loop_does_not_starve_the_worker() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let event = Arc::new(spindle::Event::new());
                event.set();
                let stop = Arc::new(AtomicBool::new(false));
                let (e, s) = (event.clone(), stop.clone());
                let spinner = spindle::spawn(async move {
                    let mut rounds = 0u64;
                    while !s.load(Ordering::SeqCst) {
                        e.wait().await?;
                        rounds += 1;
                    }
                    spindle::Ok(rounds)
                });
                let s = stop.clone();
                let stopper = spindle::spawn(async move {
                    s.store(true, Ordering::SeqCst);
                    spindle::Ok(())
                });
                // Only a yield of the spinner lets the stopper run.
                let rounds = spinner.await?;
                stopper.await?;
                assert!(rounds >= 1);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Awaiting a task that is already done gives its result without a
/// scheduling point, as asyncio's `await` of a done future: collecting many
/// finished results does not send the collector behind every other task
/// once per budget.
#[test]
fn awaiting_finished_tasks_never_yields() {
    within_limit(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        rt(1)
            .block_on(async move {
                let tasks: Vec<Task<usize>> = (0..1000)
                    .map(|i| spindle::spawn(async move { spindle::Ok(i) }))
                    .collect();
                for task in &tasks {
                    wait_done(task).await?;
                }
                let other_log = l.clone();
                let other = spindle::spawn(async move {
                    other_log.lock().unwrap().push("other task");
                    spindle::Ok(())
                });
                let mut sum = 0;
                for task in tasks {
                    sum += task.await?;
                }
                l.lock().unwrap().push("collected 1000 results");
                assert_eq!(sum, (0..1000).sum::<usize>());
                other.await
            })
            .unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["collected 1000 results", "other task"]
        );
    });
}
