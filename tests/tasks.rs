//! Spec section A: scheduling, tasks, introspection
//! (`/work/shared/spec/asyncio-semantics.md`, cases 1, 2, 6, 7, 8, 9).
//!
//! Case 3 (sleep) is in `time.rs`, case 4 (eager tasks) in `eager_tasks.rs`.

mod common;
use common::{rt, within_limit, Log};

use spindle::{ErrorKind, Promise, Task, TaskState};
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

// -- case 1 -------------------------------------------------------------------

/// asyncio: `create_task` does not run the coroutine; it first runs when the
/// creator yields. Log: [after create_task, child runs].
#[test]
fn case_01_create_task_does_not_run_before_creator_yields() {
    within_limit(|| {
        let rt = rt(1);
        let log = Log::default();
        let main_log = log.clone();
        rt.block_on(async move {
            let child_log = main_log.clone();
            let child = spindle::spawn(async move {
                child_log.push("child runs");
                spindle::Ok(())
            });
            // Still in the creator's step: the child has not run.
            main_log.push("after create_task");
            assert!(!child.done());
            assert_eq!(child.state(), TaskState::Scheduled);
            assert_eq!(main_log.get(), ["after create_task"]);
            child.await?;
            spindle::Ok(())
        })
        .unwrap();
        assert_eq!(log.get(), ["after create_task", "child runs"]);
    });
}

// -- case 2 -------------------------------------------------------------------

/// asyncio: tasks a, b, c each log, sleep(0), log again -> a,b,c,a2,b2,c2
/// (FIFO ready queue). On one worker, `yield_now` is `sleep(0)`.
#[test]
fn case_02_yield_now_interleaves_fifo_on_one_worker() {
    within_limit(|| {
        let rt = rt(1);
        let log = Log::default();
        let main_log = log.clone();
        rt.block_on(async move {
            let tasks: Vec<Task<()>> = ["a", "b", "c"]
                .into_iter()
                .map(|name| {
                    let log = main_log.clone();
                    spindle::spawn(async move {
                        log.push(name);
                        spindle::yield_now().await?;
                        log.push(format!("{name}2"));
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
        assert_eq!(log.get(), ["a", "b", "c", "a2", "b2", "c2"]);
    });
}

/// Case 2 with a long queue: on one worker the FIFO ready queue holds
/// however many tasks wait. New tasks and tasks that yield go to its back
/// and run in that order (the worker reads the queue one task ahead, which
/// must neither reorder nor lose a task).
#[test]
fn case_02_fifo_holds_for_a_long_queue_of_spawns_and_yields_on_one_worker() {
    const TASKS: usize = 300;
    within_limit(|| {
        let log = Log::default();
        let main_log = log.clone();
        rt(1)
            .block_on(async move {
                let tasks: Vec<Task<()>> = (0..TASKS)
                    .map(|i| {
                        let log = main_log.clone();
                        spindle::spawn(async move {
                            log.push(format!("{i} starts"));
                            let child_log = log.clone();
                            // Queued behind everything waiting, then this
                            // task behind its child.
                            drop(spindle::spawn(async move {
                                child_log.push(format!("child of {i}"));
                                spindle::Ok(())
                            }));
                            spindle::yield_now().await?;
                            log.push(format!("{i} resumes"));
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
        let starts = (0..TASKS).map(|i| format!("{i} starts"));
        let then = (0..TASKS).flat_map(|i| [format!("child of {i}"), format!("{i} resumes")]);
        assert_eq!(log.get(), starts.chain(then).collect::<Vec<_>>());
    });
}

thread_local! {
    /// Set on the creator's thread while the creator is inside its step
    /// (between spawning and its first await).
    static CREATOR_RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// On several workers, a task created by a running task does not preempt its
/// creator: it never runs on the creator's thread inside the creator's step
/// (other workers may run it in parallel).
#[test]
fn case_02_spawned_task_does_not_preempt_creator_on_many_workers() {
    within_limit(|| {
        let rt = rt(2);
        let preempted = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let (p, r) = (preempted.clone(), ran.clone());
        rt.block_on(async move {
            CREATOR_RUNNING.with(|c| c.set(true));
            let mut children = Vec::new();
            for _ in 0..16 {
                let (p, r) = (p.clone(), r.clone());
                children.push(spindle::spawn(async move {
                    if CREATOR_RUNNING.with(|c| c.get()) {
                        p.fetch_add(1, Ordering::SeqCst);
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    spindle::Ok(())
                }));
            }
            // Keep the step going for a moment so that other workers may
            // steal and run children meanwhile; none may run on this thread.
            let until = Instant::now() + Duration::from_millis(20);
            while Instant::now() < until && r.load(Ordering::SeqCst) < 16 {
                std::hint::spin_loop();
            }
            CREATOR_RUNNING.with(|c| c.set(false));
            for child in children {
                child.await?;
            }
            spindle::Ok(())
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 16);
        assert_eq!(
            preempted.load(Ordering::SeqCst),
            0,
            "a child ran on the creator's thread inside the creator's step"
        );
    });
}

// -- case 6 -------------------------------------------------------------------

/// Every task has a name; the default is "Task-N" with N increasing
/// process-wide. (TT::test_task_repr_autogenerated)
#[test]
fn case_06_default_names_task_n() {
    within_limit(|| {
        fn number(name: &str) -> u64 {
            name.strip_prefix("Task-")
                .unwrap_or_else(|| panic!("default name {name:?} is not Task-N"))
                .parse()
                .unwrap()
        }
        let rt1 = rt(2);
        let rt2 = rt(1);
        let (n1, n2, named, inner_name) = rt1
            .block_on(async {
                let t1 = spindle::spawn(async { spindle::Ok(()) });
                let t2 = spindle::spawn(async { spindle::Ok(()) });
                let named = spindle::task::Builder::new()
                    .name("fetch-a")
                    .spawn(async { spindle::Ok(()) });
                // The name seen from inside is the same as on the handle.
                let inner =
                    spindle::spawn(async { spindle::Ok(spindle::current_task()?.unwrap().name()) });
                let inner_handle_name = inner.name();
                let inner_name = inner.await?;
                assert_eq!(inner_name, inner_handle_name);
                assert_eq!(t1.name(), format!("Task-{}", t1.id()));
                assert_eq!(t2.name(), format!("Task-{}", t2.id()));
                let out = (t1.name(), t2.name(), named.name(), inner_name);
                t1.await?;
                t2.await?;
                named.await?;
                spindle::Ok(out)
            })
            .unwrap();
        assert!(number(&n2) > number(&n1), "{n1} then {n2}");
        assert_eq!(named, "fetch-a");
        number(&inner_name);
        // Process-wide: a task of another runtime spawned later gets a larger N.
        let t3 = rt2.spawn(async { spindle::Ok(()) });
        let n3 = t3.name();
        assert!(
            number(&n3) > number(&n2),
            "{n2} then {n3} on another runtime"
        );
        assert_eq!(t3.name(), format!("Task-{}", t3.id()));
        rt2.block_on(t3).unwrap();
    });
}

// -- case 7 -------------------------------------------------------------------

/// current_task() returns the running task; outside a task it returns none;
/// outside a runtime it is an error. (TT::test_current_task)
#[test]
fn case_07_current_task() {
    within_limit(|| {
        let rt = rt(2);
        // Outside a runtime: an error.
        let err = spindle::current_task().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime);
        // On a thread that entered the runtime, outside any task: none.
        {
            let _guard = rt.handle().enter();
            assert!(spindle::current_task().unwrap().is_none());
        }
        assert!(
            spindle::current_task().is_err(),
            "the guard left the runtime"
        );

        let main = rt.spawn(async {
            let me = spindle::current_task()?.expect("inside a task");
            let child = spindle::spawn(async {
                let me = spindle::current_task()?.expect("inside a task");
                spindle::Ok(me.id())
            });
            let child_id = child.id();
            let seen_by_child = child.await?;
            assert_eq!(seen_by_child, child_id, "the child sees itself");
            // Still the main task after awaiting (possibly on another worker).
            let again = spindle::current_task()?.expect("inside a task");
            assert_eq!(again, me);
            spindle::Ok(me.id())
        });
        let main_id = main.id();
        assert_eq!(rt.block_on(main).unwrap(), main_id);
    });
}

/// asyncio runs done callbacks from the event loop, outside any task:
/// `current_task()` is None inside them (checked with CPython 3.13 for a
/// task's and a future's callbacks).
#[test]
fn case_07_current_task_is_none_in_done_callbacks() {
    within_limit(|| {
        let rt = rt(1);
        type Seen = Vec<(&'static str, Option<String>)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let s = seen.clone();
        rt.block_on(async move {
            let all_ran = Promise::<()>::new();
            let task = spindle::task::Builder::new()
                .name("child")
                .spawn(async { spindle::Ok(1) });
            let s1 = s.clone();
            task.add_done_callback(move |_: &Task<i32>| {
                let current = spindle::current_task().ok().flatten().map(|t| t.name());
                s1.lock().unwrap().push(("task callback", current));
            });
            let promise = Promise::<i32>::new();
            let (s2, done) = (s.clone(), all_ran.clone());
            promise.add_done_callback(move |_: &Promise<i32>| {
                let current = spindle::current_task().ok().flatten().map(|t| t.name());
                s2.lock().unwrap().push(("promise callback", current));
                let _ = done.set_result(());
            });
            task.await?;
            promise.set_result(1)?;
            all_ran.await?;
            spindle::Ok(())
        })
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [("task callback", None), ("promise callback", None)],
            "done callbacks must run outside any task"
        );
    });
}

// -- case 8 -------------------------------------------------------------------

/// all_tasks() includes tasks not yet started and suspended ones, and excludes
/// finished ones.
#[test]
fn case_08_all_tasks() {
    within_limit(|| {
        let rt = rt(1);
        rt.block_on(async {
            let me = spindle::current_task()?.unwrap();

            let finished = spindle::spawn(async { spindle::Ok(()) });
            let finished_id = finished.id();
            finished.await?;

            let gate = Promise::<()>::new();
            let g = gate.clone();
            let suspended = spindle::spawn(g);
            spindle::yield_now().await?; // lets `suspended` start and park
            assert_eq!(suspended.state(), TaskState::Waiting);

            let not_started = spindle::spawn(async { spindle::Ok(()) });
            assert_eq!(not_started.state(), TaskState::Scheduled);

            let ids: HashSet<_> = spindle::all_tasks()?.iter().map(|t| t.id()).collect();
            assert!(ids.contains(&me.id()), "the running task is listed");
            assert!(ids.contains(&suspended.id()), "a suspended task is listed");
            assert!(
                ids.contains(&not_started.id()),
                "a task not started is listed"
            );
            assert!(!ids.contains(&finished_id), "a finished task is not listed");

            gate.set_result(())?;
            let (suspended_id, not_started_id) = (suspended.id(), not_started.id());
            suspended.await?;
            not_started.await?;
            let ids: HashSet<_> = spindle::all_tasks()?.iter().map(|t| t.id()).collect();
            assert!(!ids.contains(&suspended_id));
            assert!(!ids.contains(&not_started_id));
            assert!(ids.contains(&me.id()));
            spindle::Ok(())
        })
        .unwrap();
        // Outside a runtime: an error.
        assert_eq!(spindle::all_tasks().unwrap_err().kind(), ErrorKind::Runtime);
    });
}

/// The registry reuses the keys of finished tasks (their slots are left
/// stale until reused): after waves of tasks finishing and new ones taking
/// their keys, `all_tasks()` lists exactly the unfinished ones, and the
/// runtime's shutdown cancels exactly those.
#[test]
fn all_tasks_lists_exactly_the_unfinished_tasks_after_keys_are_reused() {
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    within_limit(|| {
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = rt(2);
        let parked = rt
            .block_on({
                let dropped = dropped.clone();
                async move {
                    let me = spindle::current_task()?.unwrap().id();
                    let mut parked = HashSet::new();
                    for wave in 0..4u64 {
                        let mut finishing = Vec::new();
                        for i in 0..300u64 {
                            // Every third task of a wave parks for good; the
                            // others finish and free their keys.
                            if (i + wave) % 3 == 0 {
                                let guard = CountDrop(dropped.clone());
                                let task = spindle::spawn(async move {
                                    let _guard = guard;
                                    Promise::<()>::new().await
                                });
                                parked.insert(task.id());
                            } else {
                                finishing.push(spindle::spawn(async { spindle::Ok(()) }));
                            }
                        }
                        for task in finishing {
                            task.await?;
                        }
                        let listed: HashSet<_> = spindle::all_tasks()?
                            .iter()
                            .map(|t| t.id())
                            .filter(|&id| id != me)
                            .collect();
                        assert_eq!(listed, parked, "after wave {wave}");
                    }
                    spindle::Ok(parked.len())
                }
            })
            .unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
        drop(rt);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            parked,
            "shutdown ends every parked task, and only those"
        );
    });
}

/// asyncio's all_tasks() lists only tasks that are not done. A task is done
/// (`done()` is true) while its done callbacks run; it must not be listed then
/// (observed from another thread while a callback of the task is running).
#[test]
fn case_08_all_tasks_excludes_done_task_while_its_callbacks_run() {
    within_limit(|| {
        let rt = rt(2);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let gate = Promise::<()>::new();
        let g = gate.clone();
        let task = rt.spawn(g);
        task.add_done_callback(move |_: &Task<()>| {
            // Hold the callback until the test thread has looked.
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10));
        });
        gate.set_result(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !task.done() {
            assert!(Instant::now() < deadline, "the task never finished");
            std::thread::yield_now();
        }
        let listed = rt.handle().all_tasks().iter().any(|t| t.id() == task.id());
        release_tx.send(()).unwrap();
        assert!(task.done());
        assert!(
            !listed,
            "a task whose done() is true is still listed by all_tasks()"
        );
        rt.block_on(task).unwrap();
    });
}

// -- case 9 -------------------------------------------------------------------

/// A task awaiting itself is an error, not a deadlock.
/// (TT::test_task_awaits_on_itself)
#[test]
fn case_09_task_awaiting_itself_is_an_error() {
    within_limit(|| {
        let rt = rt(2);
        rt.block_on(async {
            let handle_slot = Promise::<Task<u32>>::new();
            let slot = handle_slot.clone();
            let task = spindle::spawn(async move {
                let me = slot.await?;
                me.await?;
                spindle::Ok(7)
            });
            handle_slot.set_result(task.clone())?;
            let err = task.clone().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
            assert!(err.to_string().contains("itself"), "{err}");
            assert!(task.done());
            assert!(!task.cancelled());
            assert_eq!(task.state(), TaskState::Failed);
            spindle::Ok(())
        })
        .unwrap();
    });
}
