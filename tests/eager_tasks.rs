//! Spec section A, case 4: eager tasks (`task::Builder::eager_start`), the
//! behaviour of asyncio's `eager_task_factory` and `eager_start=True`
//! (`test_asyncio/test_eager_task_factory.py`, EA below).

mod common;
use common::{ms, rt, within_limit, Log};

use spindle::task::Builder;
use spindle::{ErrorKind, Promise, Task, TaskState};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxFuture<T> = Pin<Box<dyn Future<Output = spindle::Result<T>> + Send>>;

fn eager() -> Builder {
    Builder::new().eager_start(true)
}

/// EA::test_eager_completion: a task that never suspends is done when the
/// spawn returns, on one worker and on several.
#[test]
fn case_04_eager_task_that_never_suspends_is_done_at_spawn() {
    within_limit(|| {
        for workers in [1, 2] {
            let value = rt(workers)
                .block_on(async {
                    let t = eager().spawn(async { spindle::Ok("hello") });
                    assert!(t.done());
                    assert_eq!(t.state(), TaskState::Succeeded);
                    t.await
                })
                .unwrap();
            assert_eq!(value, "hello");
        }
    });
}

/// The eager step runs inside the spawn call, on the spawner's thread,
/// before the creator goes on (a lazy task runs only once the creator
/// yields); the task's later steps run when it is woken.
#[test]
fn case_04_eager_step_runs_before_spawn_returns() {
    within_limit(|| {
        let log = Log::default();
        let l = log.clone();
        rt(2)
            .block_on(async move {
                let creator_thread = std::thread::current().id();
                let gate = Promise::<()>::new();
                let (child_log, child_gate) = (l.clone(), gate.clone());
                let t = eager().spawn(async move {
                    assert_eq!(std::thread::current().id(), creator_thread);
                    child_log.push("child first step");
                    child_gate.await?;
                    child_log.push("child second step");
                    spindle::Ok(())
                });
                l.push("after spawn");
                assert!(!t.done());
                gate.set_result(())?;
                t.await
            })
            .unwrap();
        assert_eq!(
            log.get(),
            ["child first step", "after spawn", "child second step"]
        );
    });
}

/// EA::test_await_future_during_eager_step: the eager step sets a promise
/// the creator then awaits.
#[test]
fn case_04_promise_set_during_eager_step() {
    within_limit(|| {
        let value = rt(1)
            .block_on(async {
                let fut = Promise::<String>::new();
                let f = fut.clone();
                let t = eager().spawn(async move { f.set_result("my message".to_string()) });
                assert!(t.done());
                fut.await
            })
            .unwrap();
        assert_eq!(value, "my message");
    });
}

/// EA::test_block_after_eager_step: a task that suspends is pending after
/// the spawn and finishes later like any task.
#[test]
fn case_04_eager_task_that_suspends_finishes_later() {
    within_limit(|| {
        let value = rt(1)
            .block_on(async {
                let t = eager().spawn(async {
                    spindle::sleep(ms(20)).await?;
                    spindle::Ok("finished after blocking")
                });
                assert!(!t.done());
                assert_eq!(t.state(), TaskState::Waiting);
                common::wait_done(&t).await?;
                assert!(t.done());
                t.await
            })
            .unwrap();
        assert_eq!(value, "finished after blocking");
    });
}

/// EA::test_cancellation_after_eager_completion: a task done at its spawn
/// cannot be cancelled; its result stays.
#[test]
fn case_04_cancel_after_eager_completion_is_refused() {
    within_limit(|| {
        let value = rt(1)
            .block_on(async {
                let t = eager().spawn(async { spindle::Ok("finished without blocking") });
                assert!(!t.cancel());
                assert!(!t.cancelled());
                t.await
            })
            .unwrap();
        assert_eq!(value, "finished without blocking");
    });
}

/// EA::test_cancellation_after_eager_step_blocks: cancelling a task
/// suspended after its eager step delivers the cancel with its message.
#[test]
fn case_04_cancel_after_eager_step_blocks() {
    within_limit(|| {
        let err = rt(1)
            .block_on(async {
                let t = eager().spawn(async {
                    spindle::sleep(ms(100)).await?;
                    spindle::Ok("finished after blocking")
                });
                assert!(t.cancel_with("cancellation message"));
                assert!(t.cancelling() > 0);
                t.await
            })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
        assert_eq!(err.cancel_message(), Some("cancellation message"));
    });
}

/// EA::test_current_task: the eager step runs as the new task, and the
/// creator is the current task again once the spawn returns.
#[test]
fn case_04_current_task_during_and_after_eager_step() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let creator = common::current().id();
                let seen = Arc::new(Mutex::new(None));
                let s = seen.clone();
                let t = eager().spawn(async move {
                    let me = common::current().id();
                    *s.lock().unwrap() = Some(me);
                    spindle::sleep(ms(5)).await?;
                    assert_eq!(common::current().id(), me);
                    spindle::Ok(())
                });
                assert_eq!(*seen.lock().unwrap(), Some(t.id()));
                assert_eq!(common::current().id(), creator);
                t.await
            })
            .unwrap();
    });
}

/// EA::test_all_tasks_with_eager_completion and test_all_tasks_with_blocking:
/// an eager task is listed during its eager step, stays listed while it is
/// suspended, and is gone once done.
#[test]
fn case_04_all_tasks_lists_eager_tasks_until_done() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let captured = Arc::new(Mutex::new(Vec::new()));
                let c = captured.clone();
                let t = eager().spawn(async move {
                    *c.lock().unwrap() = spindle::all_tasks()?.iter().map(|t| t.id()).collect();
                    spindle::Ok(())
                });
                assert!(captured.lock().unwrap().contains(&t.id()));
                assert!(!spindle::all_tasks()?.iter().any(|a| a.id() == t.id()));

                let (go, finished) = (Promise::<()>::new(), Promise::<()>::new());
                let (g, f) = (go.clone(), finished.clone());
                let c = captured.clone();
                let blocking = eager().spawn(async move {
                    *c.lock().unwrap() = spindle::all_tasks()?.iter().map(|t| t.id()).collect();
                    g.await?;
                    f.set_result(())
                });
                assert!(captured.lock().unwrap().contains(&blocking.id()));
                assert!(spindle::all_tasks()?
                    .iter()
                    .any(|a| a.id() == blocking.id()));
                go.set_result(())?;
                finished.await?;
                common::wait_done(&blocking).await?;
                assert!(!spindle::all_tasks()?
                    .iter()
                    .any(|a| a.id() == blocking.id()));
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A task that yields in its eager step goes to the back of the ready
/// queue like a new lazy task: it runs again after its creator yields.
#[test]
fn case_04_yield_in_eager_step_waits_its_turn() {
    within_limit(|| {
        let log = Log::default();
        let l = log.clone();
        rt(1)
            .block_on(async move {
                let child_log = l.clone();
                let t = eager().spawn(async move {
                    child_log.push("child 1");
                    spindle::yield_now().await?;
                    child_log.push("child 2");
                    spindle::Ok(())
                });
                l.push("creator 1");
                spindle::yield_now().await?;
                l.push("creator 2");
                t.await
            })
            .unwrap();
        assert_eq!(log.get(), ["child 1", "creator 1", "child 2", "creator 2"]);
    });
}

/// A panic in the eager step fails the task, not its creator.
#[test]
fn case_04_panic_in_eager_step_fails_only_the_task() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let t: Task<()> = eager().spawn(async {
                    if true {
                        panic!("boom in the eager step");
                    }
                    spindle::Ok(())
                });
                assert!(t.done());
                let err = t.await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Panicked);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Outside the runtime's workers there is no task to nest the eager step
/// in: the task is queued and runs as usual.
#[test]
fn case_04_eager_spawn_from_outside_the_runtime_is_queued() {
    within_limit(|| {
        let rt = rt(1);
        let t = rt
            .handle()
            .spawn_with(eager(), async { spindle::Ok(std::thread::current().id()) });
        let worker_thread = rt.block_on(t).unwrap();
        assert_ne!(worker_thread, std::thread::current().id());
    });
}

thread_local! {
    /// Chain steps in their first step on this thread right now, and the
    /// most seen at once.
    static NESTED: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// A chain of eager spawns, each awaiting the next, is deeper than the
/// nesting limit: 64 eager steps nest in the root's step, the spawns past
/// them are queued instead of growing the worker's stack, and the chain
/// still completes (on a worker stack of 256 KiB).
#[test]
fn case_04_deep_chain_of_eager_spawns_does_not_exhaust_the_stack() {
    fn chain(depth: u32) -> BoxFuture<u32> {
        Box::pin(async move {
            if depth == 0 {
                return spindle::Ok(0);
            }
            NESTED.with(|n| {
                let (now, most) = n.get();
                n.set((now + 1, most.max(now + 1)));
            });
            let next = eager().spawn(chain(depth - 1));
            NESTED.with(|n| n.set((n.get().0 - 1, n.get().1)));
            spindle::Ok(next.await? + 1)
        })
    }
    within_limit(|| {
        let rt = spindle::Runtime::builder()
            .worker_threads(1)
            .thread_stack_size(256 * 1024)
            .build()
            .unwrap();
        assert_eq!(rt.block_on(chain(1000)).unwrap(), 1000);
        let most_nested = rt
            .block_on(async { spindle::Ok(NESTED.with(|n| n.get().1)) })
            .unwrap();
        // The root's step and the 64 eager steps nested in it.
        assert_eq!(most_nested, 65);
    });
}

/// EA::test_recursive_taskgroups (width 5, depth 4): with eager children
/// that never suspend, no child is ever queued: each is done when its
/// spawn returns.
#[test]
fn case_04_recursive_task_groups_complete_eagerly() {
    fn tree(
        width: usize,
        depth: u32,
        spawned_pending: Arc<AtomicUsize>,
        spawned: Arc<AtomicUsize>,
    ) -> BoxFuture<()> {
        Box::pin(async move {
            if depth == 0 {
                return spindle::Ok(());
            }
            spindle::task_group(|tg| async move {
                for _ in 0..width {
                    let child = tg.spawn_with(
                        eager(),
                        tree(width, depth - 1, spawned_pending.clone(), spawned.clone()),
                    )?;
                    spawned.fetch_add(1, Ordering::SeqCst);
                    if !child.done() {
                        spawned_pending.fetch_add(1, Ordering::SeqCst);
                    }
                }
                spindle::Ok(())
            })
            .await
        })
    }
    within_limit(|| {
        let (pending, spawned) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        rt(2)
            .block_on(tree(5, 4, pending.clone(), spawned.clone()))
            .unwrap();
        assert_eq!(spawned.load(Ordering::SeqCst), 5 + 25 + 125 + 625);
        assert_eq!(pending.load(Ordering::SeqCst), 0);
    });
}

/// An eager child that fails at its spawn fails the group like any child:
/// the group cancels its other children and the body (at the body's next
/// await), and ends with the child's error.
#[test]
fn case_04_eager_child_failing_at_spawn_aborts_the_group() {
    within_limit(|| {
        let log = Log::default();
        let l = log.clone();
        let err = rt(1)
            .block_on(async move {
                spindle::task_group(|tg| async move {
                    let sleeper = tg.spawn(spindle::sleep(Duration::from_secs(3600)))?;
                    let failed = tg.spawn_with(eager(), async {
                        Err::<(), _>(spindle::Error::msg("failed at once"))
                    })?;
                    assert!(failed.done());
                    l.push("body goes on to its next await");
                    match spindle::sleep(Duration::from_secs(3600)).await {
                        Err(e) if e.is_cancelled() => l.push("body cancelled"),
                        other => l.push(format!("body: {other:?}")),
                    }
                    // The sleeper was cancelled by the abort.
                    let _ = sleeper;
                    spindle::Ok(())
                })
                .await
            })
            .unwrap_err();
        let group = err.as_group().expect("an ErrorGroup");
        assert_eq!(group.len(), 1);
        assert_eq!(group.errors()[0].to_string(), "failed at once");
        assert_eq!(
            log.get(),
            ["body goes on to its next await", "body cancelled"]
        );
    });
}

/// asyncio's `loop.set_task_factory(asyncio.eager_task_factory)`: on a
/// runtime built with `eager_tasks(true)`, every spawn is eager unless its
/// builder opts out, task groups' spawns included.
#[test]
fn case_04_eager_task_factory_makes_every_spawn_eager() {
    within_limit(|| {
        // One worker: the lazy child cannot be stolen before the checks.
        let rt = spindle::Runtime::builder()
            .worker_threads(1)
            .eager_tasks(true)
            .build()
            .unwrap();
        let log = Log::default();
        let l = log.clone();
        rt.block_on(async move {
            let plain = spindle::spawn(async { spindle::Ok(1) });
            assert!(plain.done(), "spindle::spawn is eager");
            let child_log = l.clone();
            let lazy = Builder::new().eager_start(false).spawn(async move {
                child_log.push("lazy child runs");
                spindle::Ok(2)
            });
            l.push("after the lazy spawn");
            assert!(!lazy.done(), "an explicit eager_start(false) stays lazy");
            let in_group = spindle::task_group(|tg| async move {
                let child = tg.spawn(async { spindle::Ok(3) })?;
                assert!(child.done(), "a group's spawn is eager");
                spindle::Ok(child)
            })
            .await?;
            spindle::Ok(plain.await? + lazy.await? + in_group.take_result()?)
        })
        .map(|sum| assert_eq!(sum, 6))
        .unwrap();
        assert_eq!(log.get(), ["after the lazy spawn", "lazy child runs"]);
        // From outside the workers, even the factory's tasks are queued.
        let outside = rt
            .handle()
            .spawn(async { spindle::Ok(std::thread::current().id()) });
        assert_ne!(rt.block_on(outside).unwrap(), std::thread::current().id());
    });
}

/// The default runtime is lazy: asyncio's default task factory.
#[test]
fn case_01_tasks_are_lazy_by_default() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let t = spindle::spawn(async { spindle::Ok(()) });
                assert!(!t.done());
                t.await
            })
            .unwrap();
    });
}
