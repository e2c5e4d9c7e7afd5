//! Synchronization benchmarks: spindle's `Semaphore` and `Queue` against
//! `tokio::sync` (and async-channel, the natural MPMC peer of the queue).
//!
//! Each workload is one criterion group with one function per peer, run
//! with the same number of worker threads (the machine's available
//! parallelism). Conventions follow `benches/scheduler.rs`: runtimes are
//! built once outside the measured closure, and completion goes to the bench
//! thread through a std channel with a watchdog timeout, so a lost wake-up
//! fails the bench instead of hanging it. Task failures are counted and
//! fail the bench too.
//!
//! - `uncontended_acquire_release`: one task acquires and releases a
//!   `Semaphore(1)` N times (dropping the guard gives the permit back:
//!   `Semaphore::release` on spindle). Nobody else touches it.
//! - `semaphore_50_gating_100k`: N tasks, spawned from a task, each acquire a
//!   permit of a `Semaphore(50)`, yield once while holding it, and release
//!   it; the iteration ends when all are done. A run outside the timing
//!   checks that at most 50 tasks held a permit at once.
//! - `mpmc_bounded_4x4_1m`: 4 producers put N `u64`s (0..N, interleaved)
//!   into a bounded queue of capacity 1024 and 4 consumers take them out.
//!   spindle: `Queue::new(1024)`; the last producer to finish shuts the
//!   queue down, and the consumers drain it until `QueueError::ShutDown`.
//!   async-channel: `bounded(1024)` with 4 consumers, on the tokio runtime.
//!   tokio: `tokio::sync::mpsc::channel(1024)` is single-consumer, so it runs
//!   with 4 producers and ONE consumer that takes all N items (sharing the
//!   receiver behind a lock, or fanning it out from one task, would measure
//!   something else): a reference point, not an MPMC peer. A run outside the
//!   timing checks that the consumers' sums add up to 0 + 1 + ... + (N - 1).
//!
//! N is 100,000 / 100,000 / 1,000,000, or 10,000 / 5,000 / 20,000 in test
//! mode (`--test`, or not run by `cargo bench`).
//!
//! `cargo bench --bench sync -- --test` runs every benchmark once.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use spindle::QueueError;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

/// Acquire/release pairs per iteration of `uncontended_acquire_release`.
const UNCONTENDED_OPS: usize = 100_000;
const UNCONTENDED_OPS_TEST: usize = 10_000;
/// Tasks per iteration of `semaphore_50_gating_100k`.
const GATING_TASKS: usize = 100_000;
const GATING_TASKS_TEST: usize = 5_000;
/// Permits of the gating semaphore.
const GATING_PERMITS: usize = 50;
/// Items per iteration of `mpmc_bounded_4x4_1m`.
const MPMC_ITEMS: u64 = 1_000_000;
const MPMC_ITEMS_TEST: u64 = 20_000;
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;
/// The bound of the queue / channel capacity.
const CAPACITY: usize = 1024;
/// A wait longer than this is a hang: the bench fails.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);

fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn spindle_rt() -> spindle::Runtime {
    spindle::Runtime::builder()
        .worker_threads(workers())
        .build()
        .expect("build the spindle runtime")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .build()
        .expect("build the tokio runtime")
}

/// Whether criterion runs in test mode: `--test`, or not run by `cargo bench`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

/// The sizes of the workloads, smaller in test mode.
#[derive(Clone, Copy)]
struct Sizes {
    uncontended_ops: usize,
    gating_tasks: usize,
    mpmc_items: u64,
}

fn sizes() -> Sizes {
    if test_mode() {
        Sizes {
            uncontended_ops: UNCONTENDED_OPS_TEST,
            gating_tasks: GATING_TASKS_TEST,
            mpmc_items: MPMC_ITEMS_TEST,
        }
    } else {
        Sizes {
            uncontended_ops: UNCONTENDED_OPS,
            gating_tasks: GATING_TASKS,
            mpmc_items: MPMC_ITEMS,
        }
    }
}

/// Counts tasks down; the last one signals the bench thread. Failures are
/// counted, not lost, so a failing task cannot turn into a hang. Consumers
/// add what they took to `sum`.
struct Countdown {
    rem: AtomicUsize,
    failures: AtomicUsize,
    sum: AtomicU64,
    tx: SyncSender<()>,
}

impl Countdown {
    fn new() -> (Arc<Countdown>, Receiver<()>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let countdown = Countdown {
            rem: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            sum: AtomicU64::new(0),
            tx,
        };
        (Arc::new(countdown), rx)
    }

    fn reset(&self, count: usize) {
        self.failures.store(0, Relaxed);
        self.sum.store(0, Relaxed);
        self.rem.store(count, Relaxed);
    }

    /// Records a failure of a task that is not counted down (a producer).
    fn fail(&self) {
        self.failures.fetch_add(1, Relaxed);
    }

    fn done(&self, ok: bool) {
        if !ok {
            self.fail();
        }
        if self.rem.fetch_sub(1, AcqRel) == 1 {
            self.tx.send(()).unwrap();
        }
    }

    /// Waits for the last task; returns the consumers' sum.
    fn wait(&self, rx: &Receiver<()>, what: &str) -> u64 {
        if rx.recv_timeout(HANG_TIMEOUT).is_err() {
            panic!("{what}: no completion signal within {HANG_TIMEOUT:?} (lost wake-up or failed task)");
        }
        let failures = self.failures.load(Relaxed);
        assert_eq!(failures, 0, "{what}: {failures} tasks failed");
        self.sum.load(Relaxed)
    }
}

/// A group with modest sampling so the whole file runs in a few minutes.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

/// A group for iterations of tens to hundreds of milliseconds.
fn slow_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

// ---------------------------------------------------------------------------
// uncontended_acquire_release: one task, a Semaphore(1), N acquire + release.

fn spindle_uncontended(
    rt: &spindle::Runtime,
    sem: &Arc<spindle::Semaphore>,
    ops: usize,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
) {
    countdown.reset(1);
    let (sem, cd) = (sem.clone(), countdown.clone());
    drop(rt.spawn(async move {
        let result = async {
            for _ in 0..ops {
                // Dropping the guard calls `release()`.
                drop(sem.acquire().await?);
            }
            spindle::Ok(())
        }
        .await;
        cd.done(result.is_ok());
        spindle::Ok(())
    }));
    countdown.wait(rx, "spindle uncontended_acquire_release");
}

fn tokio_uncontended(
    rt: &tokio::runtime::Runtime,
    sem: &Arc<tokio::sync::Semaphore>,
    ops: usize,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
) {
    countdown.reset(1);
    let (sem, cd) = (sem.clone(), countdown.clone());
    rt.spawn(async move {
        let mut ok = true;
        for _ in 0..ops {
            match sem.acquire().await {
                Ok(permit) => drop(permit),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        cd.done(ok);
    });
    countdown.wait(rx, "tokio uncontended_acquire_release");
}

fn uncontended_acquire_release(c: &mut Criterion) {
    let ops = sizes().uncontended_ops;
    let mut group = group(c, "uncontended_acquire_release");
    group.throughput(Throughput::Elements(ops as u64));
    let (countdown, rx) = Countdown::new();
    {
        let rt = spindle_rt();
        let sem = Arc::new(spindle::Semaphore::new(1));
        group.bench_function("spindle", |b| {
            b.iter(|| spindle_uncontended(&rt, &sem, ops, &countdown, &rx))
        });
        assert_eq!(sem.available_permits(), 1, "spindle: a permit was lost");
    }
    {
        let rt = tokio_rt();
        let sem = Arc::new(tokio::sync::Semaphore::new(1));
        group.bench_function("tokio", |b| {
            b.iter(|| tokio_uncontended(&rt, &sem, ops, &countdown, &rx))
        });
        assert_eq!(sem.available_permits(), 1, "tokio: a permit was lost");
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// semaphore_50_gating_100k: N tasks share a Semaphore(50); each holds a
// permit across one yield.

/// How many tasks hold a permit, and the most that did at once (only in the
/// checking run, outside the timing).
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let now = self.now.fetch_add(1, AcqRel) + 1;
        self.max.fetch_max(now, AcqRel);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, AcqRel);
    }
}

fn spindle_gating(
    rt: &spindle::Runtime,
    tasks: usize,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
    gauge: Option<Arc<Gauge>>,
) {
    countdown.reset(tasks);
    let sem = Arc::new(spindle::Semaphore::new(GATING_PERMITS));
    let cd = countdown.clone();
    drop(rt.spawn(async move {
        for _ in 0..tasks {
            let (sem, cd, gauge) = (sem.clone(), cd.clone(), gauge.clone());
            drop(spindle::spawn(async move {
                let result = async {
                    let _permit = sem.acquire_owned().await?;
                    if let Some(gauge) = &gauge {
                        gauge.enter();
                    }
                    let yielded = spindle::yield_now().await;
                    if let Some(gauge) = &gauge {
                        gauge.leave();
                    }
                    yielded
                }
                .await;
                cd.done(result.is_ok());
                spindle::Ok(())
            }));
        }
        spindle::Ok(())
    }));
    countdown.wait(rx, "spindle semaphore_50_gating");
}

fn tokio_gating(
    rt: &tokio::runtime::Runtime,
    tasks: usize,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
    gauge: Option<Arc<Gauge>>,
) {
    countdown.reset(tasks);
    let sem = Arc::new(tokio::sync::Semaphore::new(GATING_PERMITS));
    let cd = countdown.clone();
    rt.spawn(async move {
        for _ in 0..tasks {
            let (sem, cd, gauge) = (sem.clone(), cd.clone(), gauge.clone());
            tokio::spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    cd.done(false);
                    return;
                };
                if let Some(gauge) = &gauge {
                    gauge.enter();
                }
                tokio::task::yield_now().await;
                if let Some(gauge) = &gauge {
                    gauge.leave();
                }
                cd.done(true);
            });
        }
    });
    countdown.wait(rx, "tokio semaphore_50_gating");
}

fn check_gauge(gauge: &Gauge, who: &str) {
    let max = gauge.max.load(Relaxed);
    assert!(
        (1..=GATING_PERMITS).contains(&max),
        "{who}: {max} tasks held a permit at once (Semaphore({GATING_PERMITS}))"
    );
}

fn semaphore_50_gating_100k(c: &mut Criterion) {
    let tasks = sizes().gating_tasks;
    let mut group = slow_group(c, "semaphore_50_gating_100k");
    group.throughput(Throughput::Elements(tasks as u64));
    let (countdown, rx) = Countdown::new();
    {
        let rt = spindle_rt();
        let gauge = Arc::new(Gauge::default());
        spindle_gating(&rt, tasks, &countdown, &rx, Some(gauge.clone()));
        check_gauge(&gauge, "spindle");
        group.bench_function("spindle", |b| {
            b.iter(|| spindle_gating(&rt, tasks, &countdown, &rx, None))
        });
    }
    {
        let rt = tokio_rt();
        let gauge = Arc::new(Gauge::default());
        tokio_gating(&rt, tasks, &countdown, &rx, Some(gauge.clone()));
        check_gauge(&gauge, "tokio");
        group.bench_function("tokio", |b| {
            b.iter(|| tokio_gating(&rt, tasks, &countdown, &rx, None))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// mpmc_bounded_4x4_1m: 4 producers, 4 consumers (1 on tokio mpsc), N items
// through a bounded queue of capacity 1024.

/// The items of producer `p`: p, p + PRODUCERS, p + 2 * PRODUCERS, ...
fn items_of(p: usize, items: u64) -> impl Iterator<Item = u64> {
    (p as u64..items).step_by(PRODUCERS)
}

fn expected_sum(items: u64) -> u64 {
    items * (items - 1) / 2
}

/// One run; returns the consumers' sum.
fn spindle_mpmc(
    rt: &spindle::Runtime,
    items: u64,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
) -> u64 {
    countdown.reset(CONSUMERS);
    let queue = Arc::new(spindle::Queue::<u64>::new(CAPACITY));
    let producing = Arc::new(AtomicUsize::new(PRODUCERS));
    for _ in 0..CONSUMERS {
        let (queue, cd) = (queue.clone(), countdown.clone());
        drop(rt.spawn(async move {
            let mut sum = 0;
            let ok = loop {
                match queue.get().await {
                    Ok(n) => sum += n,
                    Err(e) => break e.downcast_ref::<QueueError>() == Some(&QueueError::ShutDown),
                }
            };
            cd.sum.fetch_add(sum, Relaxed);
            cd.done(ok);
            spindle::Ok(())
        }));
    }
    for p in 0..PRODUCERS {
        let (queue, cd, producing) = (queue.clone(), countdown.clone(), producing.clone());
        drop(rt.spawn(async move {
            let result = async {
                for n in items_of(p, items) {
                    queue.put(n).await?;
                }
                spindle::Ok(())
            }
            .await;
            if result.is_err() {
                cd.fail();
            }
            if producing.fetch_sub(1, AcqRel) == 1 {
                // The consumers drain what is left, then get ShutDown.
                queue.shutdown(false);
            }
            spindle::Ok(())
        }));
    }
    countdown.wait(rx, "spindle mpmc_bounded")
}

/// tokio's mpsc has one receiver: 4 producers, ONE consumer.
fn tokio_mpsc(
    rt: &tokio::runtime::Runtime,
    items: u64,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
) -> u64 {
    countdown.reset(1);
    let (tx, mut queue) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
    let cd = countdown.clone();
    rt.spawn(async move {
        let mut sum = 0;
        while let Some(n) = queue.recv().await {
            sum += n;
        }
        cd.sum.fetch_add(sum, Relaxed);
        cd.done(true);
    });
    for p in 0..PRODUCERS {
        let (tx, cd) = (tx.clone(), countdown.clone());
        rt.spawn(async move {
            for n in items_of(p, items) {
                if tx.send(n).await.is_err() {
                    cd.fail();
                    break;
                }
            }
            // Dropping the last sender closes the channel.
        });
    }
    drop(tx);
    countdown.wait(rx, "tokio mpsc (4 producers, 1 consumer)")
}

/// async-channel's bounded MPMC channel on the tokio runtime.
fn async_channel_mpmc(
    rt: &tokio::runtime::Runtime,
    items: u64,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
) -> u64 {
    countdown.reset(CONSUMERS);
    let (tx, queue) = async_channel::bounded::<u64>(CAPACITY);
    for _ in 0..CONSUMERS {
        let (queue, cd) = (queue.clone(), countdown.clone());
        rt.spawn(async move {
            let mut sum = 0;
            while let Ok(n) = queue.recv().await {
                sum += n;
            }
            cd.sum.fetch_add(sum, Relaxed);
            cd.done(true);
        });
    }
    drop(queue);
    for p in 0..PRODUCERS {
        let (tx, cd) = (tx.clone(), countdown.clone());
        rt.spawn(async move {
            for n in items_of(p, items) {
                if tx.send(n).await.is_err() {
                    cd.fail();
                    break;
                }
            }
            // Dropping the last sender closes the channel.
        });
    }
    drop(tx);
    countdown.wait(rx, "async-channel mpmc_bounded")
}

fn mpmc_bounded_4x4_1m(c: &mut Criterion) {
    let items = sizes().mpmc_items;
    let expected = expected_sum(items);
    let mut group = slow_group(c, "mpmc_bounded_4x4_1m");
    group.throughput(Throughput::Elements(items));
    let (countdown, rx) = Countdown::new();
    {
        let rt = spindle_rt();
        let sum = spindle_mpmc(&rt, items, &countdown, &rx);
        assert_eq!(sum, expected, "spindle mpmc sum");
        group.bench_function("spindle", |b| {
            b.iter(|| spindle_mpmc(&rt, items, &countdown, &rx))
        });
    }
    {
        let rt = tokio_rt();
        let sum = tokio_mpsc(&rt, items, &countdown, &rx);
        assert_eq!(sum, expected, "tokio mpsc sum");
        group.bench_function("tokio_mpsc_1consumer", |b| {
            b.iter(|| tokio_mpsc(&rt, items, &countdown, &rx))
        });
    }
    {
        let rt = tokio_rt();
        let sum = async_channel_mpmc(&rt, items, &countdown, &rx);
        assert_eq!(sum, expected, "async-channel sum");
        group.bench_function("async_channel", |b| {
            b.iter(|| async_channel_mpmc(&rt, items, &countdown, &rx))
        });
    }
    group.finish();
}

criterion_group!(
    sync,
    uncontended_acquire_release,
    semaphore_50_gating_100k,
    mpmc_bounded_4x4_1m,
);
criterion_main!(sync);
