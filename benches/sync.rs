//! Synchronization benchmarks: spindle's `Semaphore` and `Queue` against
//! `tokio::sync` and smol's peers (async-lock's `Semaphore` and
//! async-channel, on smol's executor), plus async-channel on tokio.
//!
//! # Naming and worker counts
//! Each workload is one criterion group (named after the workload); each
//! runtime or peer is one function of it, with the worker count as the
//! parameter: `<workload>/<function>/<workers>`, e.g.
//! `uncontended_acquire_release/spindle/1`, `.../tokio/1`, `.../smol/1`,
//! `.../spindle/2`, ... Every workload runs with 1 worker thread and with all
//! cores (`available_parallelism`; just 1 on a 1-core machine), and at each
//! worker count every runtime gets exactly that many worker threads.
//! Runtimes are built one at a time, once per worker count, outside the
//! measured closure (`benches/common`).
//!
//! The runtimes:
//! - spindle: `spindle::Runtime` with `worker_threads(w)`;
//! - tokio: `Builder::new_multi_thread().worker_threads(w)` (no time or io
//!   driver: nothing here needs them);
//! - smol: one `async_executor::Executor` run by `w` threads (`SmolRt`);
//!   tasks spawn tasks on their worker's executor (`smol_spawn`), and
//!   fire-and-forget tasks are `detach`ed.
//!
//! As in `benches/scheduler.rs`, completion goes to the bench thread through
//! a std channel with a watchdog timeout, so a lost wake-up fails the bench
//! instead of hanging it. Task failures are counted and fail the bench too.
//!
//! # The workloads
//! - `uncontended_acquire_release` (`spindle`, `tokio`, `smol`): one task
//!   acquires and releases a `Semaphore(1)` N times (dropping the guard gives
//!   the permit back: `Semaphore::release` on spindle). Nobody else touches
//!   it. After the runs, the semaphore must have its one permit back.
//! - `semaphore_50_gating_100k` (`spindle`, `tokio`, `smol`): N tasks,
//!   spawned from a task, each acquire a permit of a `Semaphore(50)`, yield
//!   once while holding it, and release it; the iteration ends when all are
//!   done. A run outside the timing checks that at most 50 tasks held a
//!   permit at once.
//! - `mpmc_bounded_4x4_1m`: 4 producers put N `u64`s (0..N, interleaved)
//!   into a bounded queue of capacity 1024 and 4 consumers take them out.
//!   - `spindle`: `Queue::new(1024)`; the last producer to finish shuts the
//!     queue down, and the consumers drain it until `QueueError::ShutDown`.
//!   - `smol_async_channel`: async-channel's `bounded(1024)` on smol's
//!     executor; `async_channel`: the same on the tokio runtime.
//!   - `tokio_mpsc_1consumer`: `tokio::sync::mpsc::channel(1024)` is
//!     single-consumer, so it runs with 4 producers and ONE consumer that
//!     takes all N items (sharing the receiver behind a lock, or fanning it
//!     out from one task, would measure something else): a reference point,
//!     not an MPMC peer.
//!
//!   A run outside the timing checks that the consumers' sums add up to
//!   0 + 1 + ... + (N - 1).
//!
//! N is 100,000 / 100,000 / 1,000,000, or 10,000 / 5,000 / 20,000 in test
//! mode (`--test`, or not run by `cargo bench`).
//!
//! `cargo bench --bench sync -- --test` runs every benchmark once.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use spindle::QueueError;
use std::future::Future;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{smol_spawn, spindle_rt, test_mode, tokio_rt, worker_counts, SmolRt};

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

/// Benchmarks `run` as `<function>/<workers>` of `group`.
fn bench<R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    function: &str,
    workers: usize,
    mut run: impl FnMut() -> R,
) {
    group.bench_function(BenchmarkId::new(function, workers), |b| b.iter(&mut run));
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

fn smol_uncontended(
    rt: &SmolRt,
    sem: &Arc<async_lock::Semaphore>,
    ops: usize,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
) {
    countdown.reset(1);
    let (sem, cd) = (sem.clone(), countdown.clone());
    rt.spawn(async move {
        for _ in 0..ops {
            // async-lock's acquire cannot fail.
            drop(sem.acquire().await);
        }
        cd.done(true);
    })
    .detach();
    countdown.wait(rx, "smol uncontended_acquire_release");
}

fn uncontended_acquire_release(c: &mut Criterion) {
    let ops = sizes().uncontended_ops;
    let mut group = group(c, "uncontended_acquire_release");
    group.throughput(Throughput::Elements(ops as u64));
    let (countdown, rx) = Countdown::new();
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            let sem = Arc::new(spindle::Semaphore::new(1));
            bench(&mut group, "spindle", w, || {
                spindle_uncontended(&rt, &sem, ops, &countdown, &rx)
            });
            assert_eq!(sem.available_permits(), 1, "spindle: a permit was lost");
        }
        {
            let rt = tokio_rt(w);
            let sem = Arc::new(tokio::sync::Semaphore::new(1));
            bench(&mut group, "tokio", w, || {
                tokio_uncontended(&rt, &sem, ops, &countdown, &rx)
            });
            assert_eq!(sem.available_permits(), 1, "tokio: a permit was lost");
        }
        {
            let rt = SmolRt::new(w);
            let sem = Arc::new(async_lock::Semaphore::new(1));
            bench(&mut group, "smol", w, || {
                smol_uncontended(&rt, &sem, ops, &countdown, &rx)
            });
            // async-lock cannot tell its permits: exactly one must be free.
            let permit = sem.try_acquire().expect("smol: a permit was lost");
            assert!(sem.try_acquire().is_none(), "smol: a permit too many");
            drop(permit);
        }
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

fn smol_gating(
    rt: &SmolRt,
    tasks: usize,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
    gauge: Option<Arc<Gauge>>,
) {
    countdown.reset(tasks);
    let sem = Arc::new(async_lock::Semaphore::new(GATING_PERMITS));
    let cd = countdown.clone();
    rt.spawn(async move {
        for _ in 0..tasks {
            let (sem, cd, gauge) = (sem.clone(), cd.clone(), gauge.clone());
            smol_spawn(async move {
                let _permit = sem.acquire_arc().await;
                if let Some(gauge) = &gauge {
                    gauge.enter();
                }
                futures_lite::future::yield_now().await;
                if let Some(gauge) = &gauge {
                    gauge.leave();
                }
                cd.done(true);
            })
            .detach();
        }
    })
    .detach();
    countdown.wait(rx, "smol semaphore_50_gating");
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
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            let gauge = Arc::new(Gauge::default());
            spindle_gating(&rt, tasks, &countdown, &rx, Some(gauge.clone()));
            check_gauge(&gauge, "spindle");
            bench(&mut group, "spindle", w, || {
                spindle_gating(&rt, tasks, &countdown, &rx, None)
            });
        }
        {
            let rt = tokio_rt(w);
            let gauge = Arc::new(Gauge::default());
            tokio_gating(&rt, tasks, &countdown, &rx, Some(gauge.clone()));
            check_gauge(&gauge, "tokio");
            bench(&mut group, "tokio", w, || {
                tokio_gating(&rt, tasks, &countdown, &rx, None)
            });
        }
        {
            let rt = SmolRt::new(w);
            let gauge = Arc::new(Gauge::default());
            smol_gating(&rt, tasks, &countdown, &rx, Some(gauge.clone()));
            check_gauge(&gauge, "smol");
            bench(&mut group, "smol", w, || {
                smol_gating(&rt, tasks, &countdown, &rx, None)
            });
        }
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

/// Spawns a fire-and-forget task: the async-channel workload runs the same
/// code on tokio and on smol.
trait SpawnDetached {
    fn spawn_detached(&self, task: impl Future<Output = ()> + Send + 'static);
}

impl SpawnDetached for tokio::runtime::Runtime {
    fn spawn_detached(&self, task: impl Future<Output = ()> + Send + 'static) {
        drop(self.spawn(task));
    }
}

impl SpawnDetached for SmolRt {
    fn spawn_detached(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.spawn(task).detach();
    }
}

/// async-channel's bounded MPMC channel on the tokio runtime or on smol's
/// executor.
fn async_channel_mpmc(
    rt: &impl SpawnDetached,
    items: u64,
    countdown: &Arc<Countdown>,
    rx: &Receiver<()>,
    what: &str,
) -> u64 {
    countdown.reset(CONSUMERS);
    let (tx, queue) = async_channel::bounded::<u64>(CAPACITY);
    for _ in 0..CONSUMERS {
        let (queue, cd) = (queue.clone(), countdown.clone());
        rt.spawn_detached(async move {
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
        rt.spawn_detached(async move {
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
    countdown.wait(rx, what)
}

fn mpmc_bounded_4x4_1m(c: &mut Criterion) {
    let items = sizes().mpmc_items;
    let expected = expected_sum(items);
    let mut group = slow_group(c, "mpmc_bounded_4x4_1m");
    group.throughput(Throughput::Elements(items));
    let (countdown, rx) = Countdown::new();
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            let sum = spindle_mpmc(&rt, items, &countdown, &rx);
            assert_eq!(sum, expected, "spindle mpmc sum");
            bench(&mut group, "spindle", w, || {
                spindle_mpmc(&rt, items, &countdown, &rx)
            });
        }
        {
            let rt = tokio_rt(w);
            let sum = tokio_mpsc(&rt, items, &countdown, &rx);
            assert_eq!(sum, expected, "tokio mpsc sum");
            bench(&mut group, "tokio_mpsc_1consumer", w, || {
                tokio_mpsc(&rt, items, &countdown, &rx)
            });
        }
        {
            let rt = tokio_rt(w);
            let what = "async-channel on tokio mpmc_bounded";
            let sum = async_channel_mpmc(&rt, items, &countdown, &rx, what);
            assert_eq!(sum, expected, "async-channel on tokio sum");
            bench(&mut group, "async_channel", w, || {
                async_channel_mpmc(&rt, items, &countdown, &rx, what)
            });
        }
        {
            let rt = SmolRt::new(w);
            let what = "async-channel on smol mpmc_bounded";
            let sum = async_channel_mpmc(&rt, items, &countdown, &rx, what);
            assert_eq!(sum, expected, "async-channel on smol sum");
            bench(&mut group, "smol_async_channel", w, || {
                async_channel_mpmc(&rt, items, &countdown, &rx, what)
            });
        }
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
