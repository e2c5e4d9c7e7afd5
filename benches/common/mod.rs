//! Code shared by the benches that compare spindle with tokio and smol run
//! by run (`scheduler.rs`, `structured.rs`, `per_task.rs`): the runtimes at
//! 1 worker and all cores, smol's executor on W threads,
//! and the criterion groups that record every measured call for the summary
//! printed at the end (`<workload>/<runtime>/<workers>`).
//!
//! Each bench uses a part of it, so unused items are allowed here.
#![allow(dead_code)]

use async_executor::Executor;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use futures_lite::future;
use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// All cores: the machine's available parallelism.
pub(crate) fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The worker counts every workload runs at: 1 and all cores.
pub(crate) fn worker_counts() -> Vec<usize> {
    let mut counts = vec![1];
    if all_cores() > 1 {
        counts.push(all_cores());
    }
    counts
}

/// A spindle runtime with `workers` worker threads.
pub(crate) fn spindle_rt(workers: usize) -> spindle::Runtime {
    spindle::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("build the spindle runtime")
}

/// A tokio multi-thread runtime with `workers` worker threads.
pub(crate) fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("build the tokio runtime")
}

// ---------------------------------------------------------------------------
// smol's executor on W threads.

thread_local! {
    /// The executor whose worker this thread is (set on `SmolRt`'s threads).
    static SMOL_EX: RefCell<Option<Arc<Executor<'static>>>> = const { RefCell::new(None) };
}

/// An `async_executor::Executor` run by `workers` threads until dropped.
pub(crate) struct SmolRt {
    ex: Arc<Executor<'static>>,
    /// Closed (dropped) to stop the workers: their `run` future is the
    /// `recv` of this channel, which fails once it is closed.
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl SmolRt {
    /// `workers` threads, each running the executor in
    /// `futures_lite::future::block_on` (no reactor: for workloads of tasks
    /// only).
    pub(crate) fn new(workers: usize) -> SmolRt {
        SmolRt::build(workers, false)
    }

    /// `workers` threads, each running the executor in `async_io::block_on`
    /// (what `smol::block_on` is), which also drives async-io's reactor
    /// (timers, sockets) while the thread waits: for workloads that use
    /// smol's timers or sockets.
    pub(crate) fn with_reactor(workers: usize) -> SmolRt {
        SmolRt::build(workers, true)
    }

    fn build(workers: usize, reactor: bool) -> SmolRt {
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let threads = (0..workers)
            .map(|i| {
                let (ex, stopped) = (ex.clone(), stopped.clone());
                std::thread::Builder::new()
                    .name(format!("smol-worker-{i}"))
                    .spawn(move || {
                        SMOL_EX.with(|cur| *cur.borrow_mut() = Some(ex.clone()));
                        let run = ex.run(stopped.recv());
                        let _ = if reactor {
                            async_io::block_on(run)
                        } else {
                            future::block_on(run)
                        };
                        SMOL_EX.with(|cur| cur.borrow_mut().take());
                    })
                    .expect("spawn a smol worker thread")
            })
            .collect();
        SmolRt {
            ex,
            stop: Some(stop),
            threads,
        }
    }

    /// Spawns from outside the workers (a remote spawn).
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> async_executor::Task<T> {
        self.ex.spawn(fut)
    }
}

impl Drop for SmolRt {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("a smol worker thread panicked");
            }
        }
    }
}

/// Spawns onto the executor of the current smol worker thread.
pub(crate) fn smol_spawn<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> async_executor::Task<T> {
    SMOL_EX.with(|cur| {
        cur.borrow()
            .as_ref()
            .expect("smol_spawn outside a smol worker")
            .spawn(fut)
    })
}

// ---------------------------------------------------------------------------
// Groups, records of the measured calls, and the summary.

/// One call of a measured routine: when it started, its iterations, and
/// the time they took.
pub(crate) type Call = (Instant, u64, Duration);

/// The calls of one function (`runtime` at `workers` workers) of a group.
pub(crate) struct Record {
    group: String,
    name: &'static str,
    workers: usize,
    warm_up: Duration,
    calls: Vec<Call>,
}

impl Record {
    /// Mean time per iteration, in seconds, over the calls of criterion's
    /// measurement (those that started after the warm-up; all calls if none
    /// did, as in test mode).
    pub(crate) fn mean(&self) -> f64 {
        let first = self.calls[0].0;
        let measured: Vec<&Call> = self
            .calls
            .iter()
            .filter(|(start, _, _)| start.duration_since(first) >= self.warm_up)
            .collect();
        let calls = if measured.is_empty() {
            self.calls.iter().collect()
        } else {
            measured
        };
        let per_iter = |(_, iters, elapsed): &&Call| elapsed.as_secs_f64() / *iters as f64;
        calls.iter().map(per_iter).sum::<f64>() / calls.len() as f64
    }
}

pub(crate) static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

pub(crate) fn record(
    group: &str,
    name: &'static str,
    workers: usize,
    warm_up: Duration,
    call: Call,
) {
    let mut records = RECORDS.lock().unwrap();
    match records
        .iter_mut()
        .find(|r| r.group == group && r.name == name && r.workers == workers)
    {
        Some(r) => r.calls.push(call),
        None => records.push(Record {
            group: group.to_string(),
            name,
            workers,
            warm_up,
            calls: vec![call],
        }),
    }
}

/// A criterion group whose functions are `<runtime>/<workers>` and whose
/// measured calls are recorded for the summary.
pub(crate) struct Group<'a> {
    inner: BenchmarkGroup<'a, WallTime>,
    name: String,
    warm_up: Duration,
}

impl<'a> Group<'a> {
    pub(crate) fn new(
        c: &'a mut Criterion,
        name: &str,
        sample_size: usize,
        warm_up: Duration,
        measurement: Duration,
        flat: bool,
    ) -> Group<'a> {
        let mut inner = c.benchmark_group(name);
        inner
            .sample_size(sample_size)
            .warm_up_time(warm_up)
            .measurement_time(measurement);
        if flat {
            inner.sampling_mode(SamplingMode::Flat);
        }
        Group {
            inner,
            name: name.to_string(),
            warm_up,
        }
    }

    /// Benchmarks `run` as `<runtime>/<workers>`; if `expected` is given,
    /// checks `run`'s result once first, outside the timing.
    pub(crate) fn bench<T: PartialEq + std::fmt::Debug>(
        &mut self,
        runtime: &'static str,
        workers: usize,
        expected: Option<T>,
        mut run: impl FnMut() -> T,
    ) {
        let (group, warm_up) = (self.name.clone(), self.warm_up);
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
                    record(&group, runtime, workers, warm_up, (start, iters, elapsed));
                    elapsed
                })
            });
    }

    pub(crate) fn finish(self) {
        self.inner.finish();
    }
}

/// Whether criterion runs in test mode: `--test`, or not run by `cargo bench`.
pub(crate) fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

pub(crate) fn fmt_time(secs: f64) -> String {
    if secs >= 1.0 {
        format!("{secs:.3} s")
    } else if secs >= 1e-3 {
        format!("{:.3} ms", secs * 1e3)
    } else if secs >= 1e-6 {
        format!("{:.3} us", secs * 1e6)
    } else {
        format!("{:.1} ns", secs * 1e9)
    }
}

/// Prints, per group and worker count, every function's mean time per
/// iteration and the ratios of each spindle function to each peer.
pub(crate) fn print_summary(bench: &str) {
    let records = RECORDS.lock().unwrap();
    if records.is_empty() {
        return;
    }
    println!();
    println!(
        "{bench} summary: mean time per iteration over criterion's measurement samples \
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
        println!("  {group}:");
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
                .map(|r| (r.name, r.mean()))
                .collect();
            let times: Vec<String> = of_run
                .iter()
                .map(|(name, t)| format!("{name} {}", fmt_time(*t)))
                .collect();
            println!("    {w} worker(s): {}", times.join(", "));
            for (name, t) in of_run.iter().filter(|(n, _)| n.starts_with("spindle")) {
                let ratios: Vec<String> = of_run
                    .iter()
                    .filter(|(n, _)| !n.starts_with("spindle"))
                    .map(|(peer, p)| format!("{name}/{peer} {:.3}", t / p))
                    .collect();
                if !ratios.is_empty() {
                    println!("      {}", ratios.join("  "));
                }
            }
        }
    }
}
