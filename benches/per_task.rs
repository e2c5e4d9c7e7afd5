//! Per-task cost benchmarks: the three workloads of the Python comparison
//! (`benches/compare_python.sh`, whose Python side is
//! `benches/asyncio_workloads.py`), run on spindle, tokio (multi-thread) and
//! smol's executor (`async-executor`) in one run.
//!
//! Each workload is one criterion group; each runtime one function of it
//! with the worker count as the parameter, `<workload>/<runtime>/<workers>`
//! (e.g. `gather/spindle/2`). Every workload runs with 1 worker thread and
//! with all cores (`available_parallelism`), every runtime with exactly that
//! many worker threads. Runtimes are built once per worker count outside
//! the measured closure; the result of a run goes to the bench thread
//! through a std channel with a watchdog timeout, so a lost wake-up fails
//! the bench instead of hanging it. Every function's result is checked once,
//! outside the timing.
//!
//! - `create_and_await`: from inside a task, create N tasks whose body
//!   returns its index, keep the handles, then await each in order and sum
//!   the values (asyncio: `tasks = [create_task(f(i)) for i in range(N)]`,
//!   then `s += await t` for each).
//! - `gather`: from inside a task, gather N such tasks into a `Vec` of their
//!   values, in order, and sum it (asyncio:
//!   `await gather(*(f(i) for i in range(N)))`): spindle with
//!   `spindle::gather` over the spawned tasks; tokio and smol, which have no
//!   gather, by awaiting the handles in order into the `Vec` (as in
//!   `gather_100k` of `benches/structured.rs`). `futures_util`'s `join_all`
//!   is not used: over 100,000 tokio `JoinHandle`s on 2 workers it took
//!   about 4 s per run (against 67 ms on 1 worker), superlinear, apparently
//!   its `FuturesUnordered` against tokio's coop budget; that measures the
//!   combinator, not the runtime.
//! - `semaphore_gating`: from inside a task, spawn N tasks that each take a
//!   permit of a `Semaphore(50)`, yield once while holding it and release it;
//!   the run ends when all are done (the shape of `semaphore_50_gating_100k`
//!   in `benches/sync.rs` and of `gating` in `benches/asyncio_sync.py`). smol
//!   has no semaphore of its own in the dev-dependencies (it is async-lock's),
//!   so its tasks use `tokio::sync::Semaphore`, which runs on any executor.
//!   A run outside the timing checks that at most 50 tasks held a permit at
//!   once.
//!
//! N is 100,000, or 10,000 in test mode (`--test`, or not run by
//! `cargo bench`).
//!
//! At the end a summary is printed: per workload and worker count, the mean
//! time per task of every runtime over criterion's measurement samples
//! (warm-up left out) and the ratios spindle/tokio and spindle/smol (below 1:
//! spindle faster); then one machine-readable line per function:
//!
//! ```text
//! PER_TASK <workload> <runtime> <workers> <ns_per_task>
//! ```
//!
//! A full `cargo bench --bench per_task` takes about 2 minutes on 2 cores.
//! `cargo bench --bench per_task -- --test` runs every benchmark once.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use futures_lite::future;
use std::hint::black_box;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{smol_spawn, spindle_rt, tokio_rt, worker_counts, SmolRt};

/// Tasks per iteration.
const TASKS: u64 = 100_000;
/// Tasks per iteration in test mode.
const TASKS_TEST: u64 = 10_000;
/// Permits of the gating semaphore.
const GATING_PERMITS: usize = 50;
/// An iteration that takes longer than this is a hang: the bench fails.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether criterion runs in test mode: `--test`, or not run by `cargo bench`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

/// Tasks per iteration in this run.
fn tasks() -> u64 {
    if test_mode() {
        TASKS_TEST
    } else {
        TASKS
    }
}

/// 0 + 1 + ... + (n - 1): what the tasks' values add up to.
fn expected_sum(n: u64) -> u64 {
    n * (n - 1) / 2
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

// ---------------------------------------------------------------------------
// create_and_await: N trivial tasks created, then awaited one by one in order.

fn spindle_create_and_await(rt: &spindle::Runtime, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move {
        let outcome = async {
            let tasks: Vec<_> = (0..n)
                .map(|i| spindle::spawn(async move { spindle::Ok(i) }))
                .collect();
            let mut sum = 0;
            for task in tasks {
                sum += task.await?;
            }
            spindle::Ok(sum)
        }
        .await;
        tx.send(outcome).unwrap();
        spindle::Ok(())
    }));
    wait(&rx, "spindle create_and_await").expect("spindle create_and_await")
}

fn tokio_create_and_await(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.expect("tokio create_and_await task");
        }
        tx.send(sum).unwrap();
    });
    wait(&rx, "tokio create_and_await")
}

fn smol_create_and_await(rt: &SmolRt, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let tasks: Vec<_> = (0..n).map(|i| smol_spawn(async move { i })).collect();
        let mut sum = 0;
        for task in tasks {
            sum += task.await;
        }
        tx.send(sum).unwrap();
    })
    .detach();
    wait(&rx, "smol create_and_await")
}

fn create_and_await(c: &mut Criterion) {
    let n = tasks();
    let expected = Some(expected_sum(n));
    let mut group = Group::new(c, "create_and_await", n);
    for w in worker_counts() {
        // One runtime at a time, as in the other benches.
        {
            let rt = spindle_rt(w);
            group.bench("spindle", w, expected, || spindle_create_and_await(&rt, n));
        }
        {
            let rt = tokio_rt(w);
            group.bench("tokio", w, expected, || tokio_create_and_await(&rt, n));
        }
        {
            let rt = SmolRt::new(w);
            group.bench("smol", w, expected, || smol_create_and_await(&rt, n));
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// gather: N trivial tasks gathered at once.

fn spindle_gather(rt: &spindle::Runtime, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move {
        let outcome = async {
            let tasks = (0..n).map(|i| spindle::spawn(async move { spindle::Ok(i) }));
            let values = spindle::gather(tasks).await?;
            spindle::Ok(values.iter().sum::<u64>())
        }
        .await;
        tx.send(outcome).unwrap();
        spindle::Ok(())
    }));
    wait(&rx, "spindle gather").expect("spindle gather")
}

fn tokio_gather(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
        let mut values = Vec::with_capacity(handles.len());
        for handle in handles {
            values.push(handle.await.expect("tokio gather task"));
        }
        tx.send(values.iter().sum::<u64>()).unwrap();
    });
    wait(&rx, "tokio gather")
}

fn smol_gather(rt: &SmolRt, n: u64) -> u64 {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let tasks: Vec<_> = (0..n).map(|i| smol_spawn(async move { i })).collect();
        let mut values = Vec::with_capacity(tasks.len());
        for task in tasks {
            values.push(task.await);
        }
        tx.send(values.iter().sum::<u64>()).unwrap();
    })
    .detach();
    wait(&rx, "smol gather")
}

fn gather(c: &mut Criterion) {
    let n = tasks();
    let expected = Some(expected_sum(n));
    let mut group = Group::new(c, "gather", n);
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            group.bench("spindle", w, expected, || spindle_gather(&rt, n));
        }
        {
            let rt = tokio_rt(w);
            group.bench("tokio", w, expected, || tokio_gather(&rt, n));
        }
        {
            let rt = SmolRt::new(w);
            group.bench("smol", w, expected, || smol_gather(&rt, n));
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// semaphore_gating: N tasks share a Semaphore(50); each holds a permit
// across one yield.

/// Counts the tasks of a gating run down; the last one sends the number of
/// tasks that failed to the bench thread. Optionally (in the checking run
/// only) tracks how many tasks hold a permit at once.
struct Gating {
    rem: AtomicUsize,
    failures: AtomicUsize,
    tx: SyncSender<usize>,
    holding: AtomicUsize,
    most: AtomicUsize,
    gauge: bool,
}

impl Gating {
    fn new(tasks: u64, gauge: bool) -> (Arc<Gating>, Receiver<usize>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let gating = Gating {
            rem: AtomicUsize::new(tasks as usize),
            failures: AtomicUsize::new(0),
            tx,
            holding: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            gauge,
        };
        (Arc::new(gating), rx)
    }

    fn enter(&self) {
        if self.gauge {
            let now = self.holding.fetch_add(1, AcqRel) + 1;
            self.most.fetch_max(now, AcqRel);
        }
    }

    fn leave(&self) {
        if self.gauge {
            self.holding.fetch_sub(1, AcqRel);
        }
    }

    fn done(&self, ok: bool) {
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
        if self.rem.fetch_sub(1, AcqRel) == 1 {
            self.tx.send(self.failures.load(Relaxed)).unwrap();
        }
    }

    /// Waits for the last task; fails the bench if any task failed or, in a
    /// gauged run, if the semaphore let more than its permits through.
    /// Returns the number of tasks that ran.
    fn wait(&self, rx: &Receiver<usize>, tasks: u64, what: &str) -> u64 {
        let failures = wait(rx, what);
        assert_eq!(failures, 0, "{what}: {failures} tasks failed");
        if self.gauge {
            let most = self.most.load(Relaxed);
            assert!(
                (1..=GATING_PERMITS).contains(&most),
                "{what}: {most} tasks held a permit at once (Semaphore({GATING_PERMITS}))"
            );
        }
        tasks
    }
}

fn spindle_gating(rt: &spindle::Runtime, n: u64, gauge: bool) -> u64 {
    let (gating, rx) = Gating::new(n, gauge);
    let sem = Arc::new(spindle::Semaphore::new(GATING_PERMITS));
    let g = gating.clone();
    drop(rt.spawn(async move {
        for _ in 0..n {
            let (sem, g) = (sem.clone(), g.clone());
            drop(spindle::spawn(async move {
                let result = async {
                    let _permit = sem.acquire_owned().await?;
                    g.enter();
                    let yielded = spindle::yield_now().await;
                    g.leave();
                    yielded
                }
                .await;
                g.done(result.is_ok());
                spindle::Ok(())
            }));
        }
        spindle::Ok(())
    }));
    gating.wait(&rx, n, "spindle semaphore_gating")
}

fn tokio_gating(rt: &tokio::runtime::Runtime, n: u64, gauge: bool) -> u64 {
    let (gating, rx) = Gating::new(n, gauge);
    let sem = Arc::new(tokio::sync::Semaphore::new(GATING_PERMITS));
    let g = gating.clone();
    rt.spawn(async move {
        for _ in 0..n {
            let (sem, g) = (sem.clone(), g.clone());
            tokio::spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    g.done(false);
                    return;
                };
                g.enter();
                tokio::task::yield_now().await;
                g.leave();
                g.done(true);
            });
        }
    });
    gating.wait(&rx, n, "tokio semaphore_gating")
}

/// smol's executor with `tokio::sync::Semaphore` (executor-agnostic).
fn smol_gating(rt: &SmolRt, n: u64, gauge: bool) -> u64 {
    let (gating, rx) = Gating::new(n, gauge);
    let sem = Arc::new(tokio::sync::Semaphore::new(GATING_PERMITS));
    let g = gating.clone();
    rt.spawn(async move {
        for _ in 0..n {
            let (sem, g) = (sem.clone(), g.clone());
            smol_spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    g.done(false);
                    return;
                };
                g.enter();
                future::yield_now().await;
                g.leave();
                g.done(true);
            })
            .detach();
        }
    })
    .detach();
    gating.wait(&rx, n, "smol semaphore_gating")
}

fn semaphore_gating(c: &mut Criterion) {
    let n = tasks();
    let expected = Some(n);
    let mut group = Group::new(c, "semaphore_gating", n);
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            spindle_gating(&rt, n, true);
            group.bench("spindle", w, expected, || spindle_gating(&rt, n, false));
        }
        {
            let rt = tokio_rt(w);
            tokio_gating(&rt, n, true);
            group.bench("tokio", w, expected, || tokio_gating(&rt, n, false));
        }
        {
            let rt = SmolRt::new(w);
            smol_gating(&rt, n, true);
            group.bench("smol", w, expected, || smol_gating(&rt, n, false));
        }
    }
    group.finish();
}

// criterion_main!, then the summary.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    create_and_await(&mut criterion);
    gather(&mut criterion);
    semaphore_gating(&mut criterion);
    criterion.final_summary();
    print_summary();
}

// ---------------------------------------------------------------------------
// Groups, records of the measured calls, and the summary.

/// Warm-up of every group.
const WARM_UP: Duration = Duration::from_secs(1);

/// One measured call: when it started, its iterations, the time they took.
type Call = (Instant, u64, Duration);

/// The calls of one function (`runtime` at `workers` workers) of a group.
struct Record {
    group: String,
    runtime: &'static str,
    workers: usize,
    tasks: u64,
    calls: Vec<Call>,
}

impl Record {
    /// Mean time per iteration, in seconds, over the calls of criterion's
    /// measurement (those that started after the warm-up; all calls if none
    /// did, as in test mode).
    fn mean(&self) -> f64 {
        let first = self.calls[0].0;
        let measured: Vec<&Call> = self
            .calls
            .iter()
            .filter(|(start, _, _)| start.duration_since(first) >= WARM_UP)
            .collect();
        let calls = if measured.is_empty() {
            self.calls.iter().collect()
        } else {
            measured
        };
        let per_iter = |(_, iters, elapsed): &&Call| elapsed.as_secs_f64() / *iters as f64;
        calls.iter().map(per_iter).sum::<f64>() / calls.len() as f64
    }

    /// Mean time per task, in nanoseconds.
    fn ns_per_task(&self) -> f64 {
        self.mean() * 1e9 / self.tasks as f64
    }
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

fn record(group: &str, runtime: &'static str, workers: usize, tasks: u64, call: Call) {
    let mut records = RECORDS.lock().unwrap();
    match records
        .iter_mut()
        .find(|r| r.group == group && r.runtime == runtime && r.workers == workers)
    {
        Some(r) => r.calls.push(call),
        None => records.push(Record {
            group: group.to_string(),
            runtime,
            workers,
            tasks,
            calls: vec![call],
        }),
    }
}

/// A criterion group whose functions are `<runtime>/<workers>` and whose
/// measured calls are recorded for the summary. Iterations take tens of
/// milliseconds: few flat samples keep the whole file to about 2 minutes.
struct Group<'a> {
    inner: BenchmarkGroup<'a, WallTime>,
    name: String,
    tasks: u64,
}

impl<'a> Group<'a> {
    fn new(c: &'a mut Criterion, name: &str, tasks: u64) -> Group<'a> {
        let mut inner = c.benchmark_group(name);
        inner
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(WARM_UP)
            .measurement_time(Duration::from_secs(3));
        Group {
            inner,
            name: name.to_string(),
            tasks,
        }
    }

    /// Benchmarks `run` as `<runtime>/<workers>`; if `expected` is given,
    /// checks `run`'s result once first, outside the timing.
    fn bench<T: PartialEq + std::fmt::Debug>(
        &mut self,
        runtime: &'static str,
        workers: usize,
        expected: Option<T>,
        mut run: impl FnMut() -> T,
    ) {
        let (group, tasks) = (self.name.clone(), self.tasks);
        let mut expected = expected;
        self.inner
            .bench_function(BenchmarkId::new(runtime, workers), |b| {
                if let Some(expected) = expected.take() {
                    assert_eq!(run(), expected, "{group}/{runtime}/{workers}: wrong result");
                }
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(run());
                    }
                    let elapsed = start.elapsed();
                    record(&group, runtime, workers, tasks, (start, iters, elapsed));
                    elapsed
                })
            });
    }

    fn finish(self) {
        self.inner.finish();
    }
}

/// Prints, per group and worker count, every runtime's mean time per task
/// and the ratios of spindle to each peer; then the `PER_TASK` lines.
fn print_summary() {
    let records = RECORDS.lock().unwrap();
    if records.is_empty() {
        return;
    }
    println!();
    println!(
        "per_task summary: mean time per task over criterion's measurement samples \
         (warm-up left out); ratio = spindle time / peer time (below 1: spindle faster){}",
        if test_mode() {
            "\n  TEST MODE: one iteration each, not a measurement"
        } else {
            ""
        }
    );
    let mut groups: Vec<&str> = records.iter().map(|r| r.group.as_str()).collect();
    groups.dedup();
    for group in groups {
        let tasks = records.iter().find(|r| r.group == group).unwrap().tasks;
        println!("  {group} ({tasks} tasks):");
        let mut worker_counts: Vec<usize> = records
            .iter()
            .filter(|r| r.group == group)
            .map(|r| r.workers)
            .collect();
        worker_counts.sort_unstable();
        worker_counts.dedup();
        for w in worker_counts {
            let of_run: Vec<(&str, f64)> = records
                .iter()
                .filter(|r| r.group == group && r.workers == w)
                .map(|r| (r.runtime, r.ns_per_task()))
                .collect();
            let times: Vec<String> = of_run
                .iter()
                .map(|(runtime, ns)| format!("{runtime} {ns:.1} ns/task"))
                .collect();
            println!("    {w} worker(s): {}", times.join(", "));
            if let Some((_, spindle)) = of_run.iter().find(|(r, _)| *r == "spindle") {
                let ratios: Vec<String> = of_run
                    .iter()
                    .filter(|(r, _)| *r != "spindle")
                    .map(|(peer, ns)| format!("spindle/{peer} {:.3}", spindle / ns))
                    .collect();
                println!("      {}", ratios.join("  "));
            }
        }
    }
    println!();
    for r in records.iter() {
        println!(
            "PER_TASK {} {} {} {:.1}",
            r.group,
            r.runtime,
            r.workers,
            r.ns_per_task()
        );
    }
}
