//! Structured-concurrency benchmarks: spindle's `TaskGroup` and `gather`
//! against tokio's `JoinSet` / `JoinHandle`s, smol's executor
//! (`async-executor`) and rayon's `join`, in one run.
//!
//! Conventions follow `benches/scheduler.rs`: each workload is one criterion
//! group, each runtime's variant one function of it with the worker count
//! as the parameter, `<workload>/<function>/<workers>` (e.g.
//! `fib_30/spindle_task_group/1`, `fib_30/tokio_joinset/1`,
//! `fib_30/smol/2`, `gather_100k/tokio/2`). Every workload runs with 1
//! worker thread and with all cores (`available_parallelism`), every
//! runtime with exactly that many worker threads; runtimes are built once
//! per worker count outside the measured closure, and the result goes to
//! the bench thread through a std channel with a watchdog timeout, so a
//! lost wake-up fails the bench instead of hanging it. smol's executor runs
//! on `w` threads as in `benches/scheduler.rs` (`SmolRt`), and its tasks
//! spawn through a thread-local handle to their worker's executor.
//!
//! - `fib_N`: fork-join Fibonacci. Every call with `n >= 2` spawns its two
//!   halves and sums their results; there is no sequential cutoff, so this
//!   measures spawning and joining (fib(30) spawns 2,692,536 tasks per run).
//!   - `spindle_task_group`: the halves are spawned into a `TaskGroup`
//!     (`spindle::task_group`), the group is awaited, then the children's
//!     results are read;
//!   - `spindle_task_group_eager`: the same with the halves started
//!     eagerly (`task::Builder::eager_start`, asyncio's `eager_start`): each
//!     half runs inside its spawn up to its first suspension, and a half
//!     that never suspends (here: all of them, depth first) is never
//!     queued;
//!   - `spindle_gather`: the halves are spawned and `spindle::gather`ed;
//!   - `tokio_joinset`: the halves are spawned into a `JoinSet`, which is
//!     drained with `join_next`;
//!   - `smol`: the halves are spawned on the executor and both `Task`s
//!     awaited (smol has no task group or join set);
//!   - `rayon_join`: `rayon::join` in a rayon `ThreadPool` with the same
//!     thread count (not async: the lower bound of fork-join overhead).
//!
//!   N is 25 and 30, or 15 and 18 in test mode (`--test`, or not run by
//!   `cargo bench`). Each function's result is checked once, outside the
//!   timing.
//! - `gather_100k`: from inside a task, spawn 100,000 trivial tasks (each
//!   returns its index) and collect their values in order:
//!   - `spindle_gather`: `spindle::gather` over the spawned tasks;
//!   - `spindle_await_in_order`: the same tasks awaited one by one (a
//!     reference that separates gather's own cost from spawning);
//!   - `tokio`: `tokio::spawn` and the `JoinHandle`s awaited in order;
//!   - `smol`: spawned on the executor and the `Task`s awaited in order.
//!
//! At the end a summary is printed: per workload and worker count, the mean
//! time per iteration of every function over criterion's measurement
//! samples (warm-up left out) and the ratio of each spindle function to
//! each peer (below 1: spindle faster).
//!
//! A full `cargo bench --bench structured` takes about 5 minutes on an idle
//! 2-core machine (fib_30 alone, 10 functions of at least 10 runs of about a
//! second each, about 3 of them), more under load.
//! `benches/report.sh structured` runs it and writes the table and the plot
//! of the ratios into `docs/benchmarks.md`.
//!
//! `cargo bench --bench structured -- --test` runs every benchmark once.

use criterion::Criterion;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

mod common;
use common::{
    print_summary, smol_spawn, spindle_rt, test_mode, tokio_rt, worker_counts, Group, SmolRt,
};

/// fib's arguments outside test mode.
const FIB_BENCH: [u64; 2] = [25, 30];
/// fib's arguments in test mode.
const FIB_TEST: [u64; 2] = [15, 18];
/// Trivial tasks per iteration of gather_100k.
const GATHER_TASKS: u64 = 100_000;
/// Sum of the values of gather_100k's tasks, 0..GATHER_TASKS.
const GATHER_SUM: u64 = GATHER_TASKS * (GATHER_TASKS - 1) / 2;
/// An iteration that takes longer than this is a hang: the bench fails.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);

fn rayon_pool(workers: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("build the rayon thread pool")
}

/// Waits for the value a run sends; panics instead of hanging.
fn wait<T>(rx: &Receiver<T>, what: &str) -> T {
    match rx.recv_timeout(HANG_TIMEOUT) {
        Ok(value) => value,
        Err(_) => panic!(
            "{what}: no completion signal within {HANG_TIMEOUT:?} (lost wake-up or failed task)"
        ),
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

// ---------------------------------------------------------------------------
// fib: fork-join, one spawn per half, no sequential cutoff.

/// fib(n), iteratively: the expected results.
fn fib_expected(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

fn spindle_fib_group(n: u64) -> BoxFuture<spindle::Result<u64>> {
    Box::pin(async move {
        if n < 2 {
            return spindle::Ok(n);
        }
        let (a, b) = spindle::task_group(|tg| async move {
            let a = tg.spawn(spindle_fib_group(n - 1))?;
            let b = tg.spawn(spindle_fib_group(n - 2))?;
            spindle::Ok((a, b))
        })
        .await?;
        // The group is done, so are its children.
        spindle::Ok(a.take_result()? + b.take_result()?)
    })
}

/// As [`spindle_fib_group`], with the halves started eagerly
/// (`task::Builder::eager_start`): a half runs inside its spawn, up to its
/// first suspension.
fn spindle_fib_group_eager(n: u64) -> BoxFuture<spindle::Result<u64>> {
    Box::pin(async move {
        if n < 2 {
            return spindle::Ok(n);
        }
        let eager = || spindle::task::Builder::new().eager_start(true);
        let (a, b) = spindle::task_group(|tg| async move {
            let a = tg.spawn_with(eager(), spindle_fib_group_eager(n - 1))?;
            let b = tg.spawn_with(eager(), spindle_fib_group_eager(n - 2))?;
            spindle::Ok((a, b))
        })
        .await?;
        spindle::Ok(a.take_result()? + b.take_result()?)
    })
}

fn spindle_fib_gather(n: u64) -> BoxFuture<spindle::Result<u64>> {
    Box::pin(async move {
        if n < 2 {
            return spindle::Ok(n);
        }
        let halves = [
            spindle::spawn(spindle_fib_gather(n - 1)),
            spindle::spawn(spindle_fib_gather(n - 2)),
        ];
        let values = spindle::gather(halves).await?;
        spindle::Ok(values[0] + values[1])
    })
}

fn tokio_fib(n: u64) -> BoxFuture<u64> {
    Box::pin(async move {
        if n < 2 {
            return n;
        }
        let mut set = tokio::task::JoinSet::new();
        set.spawn(tokio_fib(n - 1));
        set.spawn(tokio_fib(n - 2));
        let mut sum = 0;
        while let Some(value) = set.join_next().await {
            sum += value.expect("tokio fib child");
        }
        sum
    })
}

fn smol_fib(n: u64) -> BoxFuture<u64> {
    Box::pin(async move {
        if n < 2 {
            return n;
        }
        let a = smol_spawn(smol_fib(n - 1));
        let b = smol_spawn(smol_fib(n - 2));
        a.await + b.await
    })
}

fn rayon_fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| rayon_fib(n - 1), || rayon_fib(n - 2));
    a + b
}

/// Runs `fib(n)` as a root task on spindle; its result comes back through
/// the channel.
fn run_spindle_fib(
    rt: &spindle::Runtime,
    fib: fn(u64) -> BoxFuture<spindle::Result<u64>>,
    n: u64,
    what: &str,
) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move {
        tx.send(fib(n).await).unwrap();
        spindle::Ok(())
    }));
    wait(&rx, what).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn run_tokio_fib(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        tx.send(tokio_fib(n).await).unwrap();
    });
    wait(&rx, "tokio fib")
}

fn run_smol_fib(rt: &SmolRt, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        tx.send(smol_fib(n).await).unwrap();
    })
    .detach();
    wait(&rx, "smol fib")
}

fn run_rayon_fib(pool: &rayon::ThreadPool, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    pool.spawn(move || tx.send(rayon_fib(n)).unwrap());
    wait(&rx, "rayon fib")
}

fn fib(c: &mut Criterion) {
    assert_eq!(fib_expected(25), 75_025);
    assert_eq!(fib_expected(30), 832_040);
    let ns = if test_mode() { FIB_TEST } else { FIB_BENCH };
    for n in ns {
        let expected = Some(fib_expected(n));
        // fib(30) takes up to seconds per run: few flat samples keep the
        // whole file within a few minutes on 2 cores.
        let mut group = Group::new(
            c,
            &format!("fib_{n}"),
            10,
            Duration::from_secs(1),
            Duration::from_secs(if n >= 30 { 5 } else { 3 }),
            true,
        );
        for w in worker_counts() {
            // One runtime at a time, as in benches/scheduler.rs.
            {
                let rt = spindle_rt(w);
                group.bench("spindle_task_group", w, expected, || {
                    run_spindle_fib(&rt, spindle_fib_group, n, "spindle fib task_group")
                });
                group.bench("spindle_task_group_eager", w, expected, || {
                    run_spindle_fib(
                        &rt,
                        spindle_fib_group_eager,
                        n,
                        "spindle fib eager task_group",
                    )
                });
                group.bench("spindle_gather", w, expected, || {
                    run_spindle_fib(&rt, spindle_fib_gather, n, "spindle fib gather")
                });
            }
            {
                let rt = tokio_rt(w);
                group.bench("tokio_joinset", w, expected, || run_tokio_fib(&rt, n));
            }
            {
                let rt = SmolRt::new(w);
                group.bench("smol", w, expected, || run_smol_fib(&rt, n));
            }
            {
                let pool = rayon_pool(w);
                group.bench("rayon_join", w, expected, || run_rayon_fib(&pool, n));
            }
        }
        group.finish();
    }
}

// ---------------------------------------------------------------------------
// gather_100k: a task spawns GATHER_TASKS trivial tasks and collects their
// values in order.

fn run_spindle_gather(rt: &spindle::Runtime) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move {
        let outcome = async {
            let tasks: Vec<_> = (0..GATHER_TASKS)
                .map(|i| spindle::spawn(async move { spindle::Ok(i) }))
                .collect();
            let values = spindle::gather(tasks).await?;
            spindle::Ok(values.iter().sum::<u64>())
        }
        .await;
        tx.send(outcome).unwrap();
        spindle::Ok(())
    }));
    wait(&rx, "spindle gather_100k").expect("spindle gather_100k")
}

fn run_spindle_await_in_order(rt: &spindle::Runtime) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move {
        let outcome = async {
            let tasks: Vec<_> = (0..GATHER_TASKS)
                .map(|i| spindle::spawn(async move { spindle::Ok(i) }))
                .collect();
            let mut values = Vec::with_capacity(tasks.len());
            for task in tasks {
                values.push(task.await?);
            }
            spindle::Ok(values.iter().sum::<u64>())
        }
        .await;
        tx.send(outcome).unwrap();
        spindle::Ok(())
    }));
    wait(&rx, "spindle await_in_order").expect("spindle await_in_order")
}

fn run_tokio_gather(rt: &tokio::runtime::Runtime) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let handles: Vec<_> = (0..GATHER_TASKS)
            .map(|i| tokio::spawn(async move { i }))
            .collect();
        let mut values = Vec::with_capacity(handles.len());
        for handle in handles {
            values.push(handle.await.expect("tokio gather task"));
        }
        tx.send(values.iter().sum::<u64>()).unwrap();
    });
    wait(&rx, "tokio gather_100k")
}

fn run_smol_gather(rt: &SmolRt) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let tasks: Vec<_> = (0..GATHER_TASKS)
            .map(|i| smol_spawn(async move { i }))
            .collect();
        let mut values = Vec::with_capacity(tasks.len());
        for task in tasks {
            values.push(task.await);
        }
        tx.send(values.iter().sum::<u64>()).unwrap();
    })
    .detach();
    wait(&rx, "smol gather_100k")
}

fn gather_100k(c: &mut Criterion) {
    let mut group = Group::new(
        c,
        "gather_100k",
        20,
        Duration::from_secs(1),
        Duration::from_secs(3),
        false,
    );
    let expected = Some(GATHER_SUM);
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            group.bench("spindle_gather", w, expected, || run_spindle_gather(&rt));
            group.bench("spindle_await_in_order", w, expected, || {
                run_spindle_await_in_order(&rt)
            });
        }
        {
            let rt = tokio_rt(w);
            group.bench("tokio", w, expected, || run_tokio_gather(&rt));
        }
        {
            let rt = SmolRt::new(w);
            group.bench("smol", w, expected, || run_smol_gather(&rt));
        }
    }
    group.finish();
}

// criterion_main!, then the summary.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    fib(&mut criterion);
    gather_100k(&mut criterion);
    criterion.final_summary();
    print_summary("structured");
}
