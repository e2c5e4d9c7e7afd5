//! Timer benchmarks: spindle against tokio's multi-thread runtime and smol
//! (`async-executor` with `async-io`'s timers), in one run.
//!
//! # Naming and worker counts
//! Each workload is one criterion group (named after the workload); each
//! runtime is one function of it, with the worker count as the parameter:
//! `<workload>/<runtime>/<workers>`, e.g. `sleeps_fire/spindle/1`,
//! `sleeps_fire/tokio/1`, `sleeps_fire/smol/1`, `sleeps_fire/spindle/2`, ...
//! Every workload runs with 1 worker thread and with all cores
//! (`available_parallelism`; just 1 on a 1-core machine), and at each worker
//! count every runtime gets exactly that many worker threads. Runtimes are
//! built one at a time, once per worker count, outside the measured closure.
//!
//! The runtimes:
//! - `spindle`: `spindle::Runtime` with `worker_threads(w)`; its timers are
//!   `spindle::sleep` and `spindle::timeout`;
//! - `tokio`: `Builder::new_multi_thread().worker_threads(w).enable_time()`;
//!   its timers are `tokio::time::sleep` and `tokio::time::timeout`;
//! - `smol`: one `async_executor::Executor` run by `w` threads, each in
//!   `async_io::block_on(ex.run(stop))` (`SmolRt::with_reactor` in
//!   `benches/common/mod.rs`), so the workers drive async-io's reactor and
//!   timers, as smol does. Its timer is `async_io::Timer`; smol has no
//!   timeout combinator, so its timeout is the obvious one (`smol_timeout`):
//!   the inner future raced against `Timer::after(limit)` with
//!   `futures_lite::future::or` (inner first). Tasks spawn tasks through a
//!   thread-local handle to the executor of their worker; fire-and-forget
//!   tasks are `detach`ed.
//!
//! Completion goes to the bench thread through a std channel with a watchdog
//! timeout, so a lost wake-up fails the bench instead of hanging it (as in
//! `benches/scheduler.rs`).
//!
//! # The workloads
//! - `sleeps_fire`: N tasks each sleep a random 1-100 ms (seeded xorshift,
//!   the same durations for every runtime) and all fire; the time is from
//!   the first spawn to the last wake-up. Before the group, one extra run per
//!   runtime and worker count measures each task's lateness (wake-up time
//!   minus deadline) and prints its p99, one line per worker count.
//! - `timeouts_mostly_cancelled`: 100,000 timeouts in 1,000 tasks of 100
//!   sequential timeouts; 99 per task are `timeout(1 s, yield_now())`, which
//!   complete at once (the timer is inserted, then cancelled), and one per
//!   task (at a seeded random position) is `timeout(20 ms, sleep(1 s))`,
//!   which expires.
//! - `insert_cancel_10k_pending` / `insert_cancel_1m_pending`: with 10,000
//!   (resp. 1,000,000) one-hour sleeps pending in as many tasks, a task
//!   creates a one-hour sleep, polls it once (which registers it) and drops
//!   it (which cancels it), 10,000 times per iteration. The task yields every
//!   64 operations so that the cooperative budget (128 on spindle and tokio;
//!   smol has none) never makes a poll return before registering; the yields
//!   are not timed.
//!   The pending tasks are cancelled after each function.
//!
//! N of `sleeps_fire` is `SPINDLE_BENCH_TIMERS_N` if set, else 10,000 when
//! the bench runs in test mode (`--test`, or not run by `cargo bench`), else
//! 1,000,000.
//!
//! `cargo bench --bench timers -- --test` runs every benchmark once.

use async_io::Timer;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use futures_lite::future;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

mod common;
use common::{smol_spawn, spindle_rt, test_mode, worker_counts, SmolRt};

/// `sleeps_fire`'s N outside test mode.
const SLEEPS_DEFAULT: usize = 1_000_000;
/// `sleeps_fire`'s N in test mode.
const SLEEPS_TEST: usize = 10_000;
/// `sleeps_fire`'s sleeps last 1..=MAX_SLEEP_MS milliseconds.
const MAX_SLEEP_MS: u64 = 100;
/// Tasks of `timeouts_mostly_cancelled`.
const TIMEOUT_TASKS: usize = 1_000;
/// Sequential timeouts per task (one of which expires).
const TIMEOUTS_PER_TASK: usize = 100;
/// The limit of the timeouts that complete.
const LONG_LIMIT: Duration = Duration::from_secs(1);
/// The limit of the timeouts that expire.
const SHORT_LIMIT: Duration = Duration::from_millis(20);
/// The sleep guarded by the timeouts that expire.
const SLOW_SLEEP: Duration = Duration::from_secs(1);
/// The sleeps pending during `insert_cancel_*` and the ones measured.
const HOUR: Duration = Duration::from_secs(3600);
/// Create/poll/drop operations per iteration of `insert_cancel_*`.
const OPS_PER_ITER: usize = 10_000;
/// Operations between two yields (below the cooperative budget of 128).
const OPS_PER_POLL: usize = 64;
/// A wait longer than this is a hang: the bench fails.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);
/// Seed of every random choice (the same for every runtime).
const SEED: u64 = 0x5eed_7133_d00d_f00d;

/// A tokio multi-thread runtime with `workers` worker threads and its time
/// driver (`common::tokio_rt` has no time driver).
fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .expect("build the tokio runtime")
}

/// Waits for one signal; panics instead of hanging.
fn wait<T>(rx: &Receiver<T>, what: &str) -> T {
    match rx.recv_timeout(HANG_TIMEOUT) {
        Ok(value) => value,
        Err(_) => panic!(
            "{what}: no completion signal within {HANG_TIMEOUT:?} (lost wake-up or failed task)"
        ),
    }
}

fn sleeps_n() -> usize {
    if let Ok(value) = std::env::var("SPINDLE_BENCH_TIMERS_N") {
        return value
            .trim()
            .parse()
            .expect("SPINDLE_BENCH_TIMERS_N must be a number of sleeps");
    }
    if test_mode() {
        SLEEPS_TEST
    } else {
        SLEEPS_DEFAULT
    }
}

/// xorshift64 (Marsaglia): deterministic workloads without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Counts tasks down; the last one signals the bench thread. Failures are
/// counted, not lost, so a failing task cannot turn into a hang.
struct Countdown {
    rem: AtomicUsize,
    failures: AtomicUsize,
    tx: SyncSender<()>,
}

impl Countdown {
    fn new() -> (Arc<Countdown>, Receiver<()>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let countdown = Countdown {
            rem: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            tx,
        };
        (Arc::new(countdown), rx)
    }

    fn reset(&self, count: usize) {
        self.failures.store(0, Relaxed);
        self.rem.store(count, Relaxed);
    }

    fn done(&self, ok: bool) {
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
        if self.rem.fetch_sub(1, AcqRel) == 1 {
            self.tx.send(()).unwrap();
        }
    }

    fn wait(&self, rx: &Receiver<()>, what: &str) {
        wait(rx, what);
        let failures = self.failures.load(Relaxed);
        assert_eq!(failures, 0, "{what}: {failures} tasks failed");
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

// ---------------------------------------------------------------------------
// sleeps_fire: N tasks sleep a random 1-100 ms each; all fire.

/// The state of one `sleeps_fire` run, shared by its tasks (one `Arc`
/// clone per task).
struct Fire {
    /// Each task's sleep, in ms.
    durations: Vec<u8>,
    /// Each task's lateness, in µs.
    lateness: Vec<AtomicU64>,
    /// Tasks that woke before their deadline.
    early: AtomicUsize,
    countdown: Arc<Countdown>,
}

impl Fire {
    fn new(n: usize) -> (Arc<Fire>, Receiver<()>) {
        let mut rng = XorShift(SEED);
        let (countdown, rx) = Countdown::new();
        let fire = Fire {
            durations: (0..n).map(|_| 1 + rng.below(MAX_SLEEP_MS) as u8).collect(),
            lateness: (0..n).map(|_| AtomicU64::new(0)).collect(),
            early: AtomicUsize::new(0),
            countdown,
        };
        (Arc::new(fire), rx)
    }

    fn n(&self) -> usize {
        self.durations.len()
    }

    fn duration(&self, i: usize) -> Duration {
        Duration::from_millis(u64::from(self.durations[i]))
    }

    fn record(&self, i: usize, deadline: Instant, ok: bool) {
        let now = Instant::now();
        if now < deadline {
            self.early.fetch_add(1, Relaxed);
        }
        let late = now.saturating_duration_since(deadline).as_micros() as u64;
        self.lateness[i].store(late, Relaxed);
        self.countdown.done(ok);
    }

    fn reset(&self) {
        self.early.store(0, Relaxed);
        self.countdown.reset(self.n());
    }

    fn wait(&self, rx: &Receiver<()>, what: &str) {
        self.countdown.wait(rx, what);
        let early = self.early.load(Relaxed);
        assert_eq!(
            early, 0,
            "{what}: {early} sleeps woke before their deadline"
        );
    }

    /// The p99 lateness of the last run.
    fn p99(&self) -> Duration {
        let mut late: Vec<u64> = self.lateness.iter().map(|l| l.load(Relaxed)).collect();
        let index = (late.len() * 99).div_ceil(100).saturating_sub(1);
        let (_, p99, _) = late.select_nth_unstable(index);
        Duration::from_micros(*p99)
    }
}

/// One `sleeps_fire` run: from the spawner's start to the last wake-up.
fn spindle_fire(rt: &spindle::Runtime, fire: &Arc<Fire>, rx: &Receiver<()>) -> Duration {
    fire.reset();
    let start = Instant::now();
    let spawner = fire.clone();
    drop(rt.spawn(async move {
        for i in 0..spawner.n() {
            let fire = spawner.clone();
            drop(spindle::spawn(async move {
                let duration = fire.duration(i);
                let deadline = Instant::now() + duration;
                let ok = spindle::sleep(duration).await.is_ok();
                fire.record(i, deadline, ok);
                spindle::Ok(())
            }));
        }
        spindle::Ok(())
    }));
    fire.wait(rx, "spindle sleeps_fire");
    start.elapsed()
}

fn tokio_fire(rt: &tokio::runtime::Runtime, fire: &Arc<Fire>, rx: &Receiver<()>) -> Duration {
    fire.reset();
    let start = Instant::now();
    let spawner = fire.clone();
    rt.spawn(async move {
        for i in 0..spawner.n() {
            let fire = spawner.clone();
            tokio::spawn(async move {
                let duration = fire.duration(i);
                let deadline = Instant::now() + duration;
                tokio::time::sleep(duration).await;
                fire.record(i, deadline, true);
            });
        }
    });
    fire.wait(rx, "tokio sleeps_fire");
    start.elapsed()
}

fn smol_fire(rt: &SmolRt, fire: &Arc<Fire>, rx: &Receiver<()>) -> Duration {
    fire.reset();
    let start = Instant::now();
    let spawner = fire.clone();
    rt.spawn(async move {
        for i in 0..spawner.n() {
            let fire = spawner.clone();
            smol_spawn(async move {
                let duration = fire.duration(i);
                let deadline = Instant::now() + duration;
                Timer::after(duration).await;
                fire.record(i, deadline, true);
            })
            .detach();
        }
    })
    .detach();
    fire.wait(rx, "smol sleeps_fire");
    start.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn sleeps_fire(c: &mut Criterion) {
    let n = sleeps_n();
    let (fire, rx) = Fire::new(n);

    // One extra run per runtime and worker count, outside criterion's
    // timing, for lateness.
    for w in worker_counts() {
        let spindle_p99 = {
            let rt = spindle_rt(w);
            spindle_fire(&rt, &fire, &rx);
            fire.p99()
        };
        let tokio_p99 = {
            let rt = tokio_rt(w);
            tokio_fire(&rt, &fire, &rx);
            fire.p99()
        };
        let smol_p99 = {
            let rt = SmolRt::with_reactor(w);
            smol_fire(&rt, &fire, &rx);
            fire.p99()
        };
        println!(
            "timers/sleeps_fire p99 lateness, {w} worker(s): spindle {} ms, tokio {} ms, \
             smol {} ms (N = {n})",
            ms(spindle_p99),
            ms(tokio_p99),
            ms(smol_p99)
        );
    }

    let mut group = c.benchmark_group("sleeps_fire");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            group.bench_function(BenchmarkId::new("spindle", w), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| spindle_fire(&rt, &fire, &rx)).sum())
            });
        }
        {
            let rt = tokio_rt(w);
            group.bench_function(BenchmarkId::new("tokio", w), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| tokio_fire(&rt, &fire, &rx)).sum())
            });
        }
        {
            let rt = SmolRt::with_reactor(w);
            group.bench_function(BenchmarkId::new("smol", w), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| smol_fire(&rt, &fire, &rx)).sum())
            });
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// timeouts_mostly_cancelled: 1,000 tasks of 100 sequential timeouts, 99 of
// which complete at once and one of which expires.

struct Timeouts {
    /// The position of each task's expiring timeout.
    expiring: Vec<usize>,
    expired: AtomicUsize,
    countdown: Arc<Countdown>,
}

impl Timeouts {
    fn new() -> (Arc<Timeouts>, Receiver<()>) {
        let mut rng = XorShift(SEED ^ 0x7100_7100);
        let (countdown, rx) = Countdown::new();
        let timeouts = Timeouts {
            expiring: (0..TIMEOUT_TASKS)
                .map(|_| rng.below(TIMEOUTS_PER_TASK as u64) as usize)
                .collect(),
            expired: AtomicUsize::new(0),
            countdown,
        };
        (Arc::new(timeouts), rx)
    }

    fn reset(&self) {
        self.expired.store(0, Relaxed);
        self.countdown.reset(TIMEOUT_TASKS);
    }

    fn wait(&self, rx: &Receiver<()>, what: &str) {
        self.countdown.wait(rx, what);
        let expired = self.expired.load(Relaxed);
        assert_eq!(expired, TIMEOUT_TASKS, "{what}: timeouts that expired");
    }
}

async fn spindle_timeouts_task(shared: &Timeouts, task: usize) -> spindle::Result<()> {
    for j in 0..TIMEOUTS_PER_TASK {
        if j == shared.expiring[task] {
            match spindle::timeout(SHORT_LIMIT, spindle::sleep(SLOW_SLEEP)).await {
                Err(e) if e.is_timeout() => {
                    shared.expired.fetch_add(1, Relaxed);
                }
                other => other?,
            }
        } else {
            spindle::timeout(LONG_LIMIT, spindle::yield_now()).await?;
        }
    }
    spindle::Ok(())
}

async fn tokio_timeouts_task(shared: &Timeouts, task: usize) -> bool {
    for j in 0..TIMEOUTS_PER_TASK {
        if j == shared.expiring[task] {
            let slow = tokio::time::sleep(SLOW_SLEEP);
            if tokio::time::timeout(SHORT_LIMIT, slow).await.is_err() {
                shared.expired.fetch_add(1, Relaxed);
            }
        } else {
            let quick = tokio::task::yield_now();
            if tokio::time::timeout(LONG_LIMIT, quick).await.is_err() {
                return false;
            }
        }
    }
    true
}

/// smol's timeout: `inner` raced against a timer of `limit`, `inner` first
/// (so a ready `inner` wins); `None` if the timer won.
async fn smol_timeout<F: Future>(limit: Duration, inner: F) -> Option<F::Output> {
    let inner = async { Some(inner.await) };
    let timer = async {
        Timer::after(limit).await;
        None
    };
    future::or(inner, timer).await
}

async fn smol_timeouts_task(shared: &Timeouts, task: usize) -> bool {
    for j in 0..TIMEOUTS_PER_TASK {
        if j == shared.expiring[task] {
            let slow = Timer::after(SLOW_SLEEP);
            if smol_timeout(SHORT_LIMIT, slow).await.is_none() {
                shared.expired.fetch_add(1, Relaxed);
            }
        } else {
            let quick = future::yield_now();
            if smol_timeout(LONG_LIMIT, quick).await.is_none() {
                return false;
            }
        }
    }
    true
}

fn timeouts_mostly_cancelled(c: &mut Criterion) {
    let mut group = group(c, "timeouts_mostly_cancelled");
    group.throughput(Throughput::Elements(
        (TIMEOUT_TASKS * TIMEOUTS_PER_TASK) as u64,
    ));
    let (shared, rx) = Timeouts::new();
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            group.bench_function(BenchmarkId::new("spindle", w), |b| {
                b.iter(|| {
                    shared.reset();
                    for task in 0..TIMEOUT_TASKS {
                        let shared = shared.clone();
                        drop(rt.spawn(async move {
                            let ok = spindle_timeouts_task(&shared, task).await.is_ok();
                            shared.countdown.done(ok);
                            spindle::Ok(())
                        }));
                    }
                    shared.wait(&rx, "spindle timeouts_mostly_cancelled");
                })
            });
        }
        {
            let rt = tokio_rt(w);
            group.bench_function(BenchmarkId::new("tokio", w), |b| {
                b.iter(|| {
                    shared.reset();
                    for task in 0..TIMEOUT_TASKS {
                        let shared = shared.clone();
                        rt.spawn(async move {
                            let ok = tokio_timeouts_task(&shared, task).await;
                            shared.countdown.done(ok);
                        });
                    }
                    shared.wait(&rx, "tokio timeouts_mostly_cancelled");
                })
            });
        }
        {
            let rt = SmolRt::with_reactor(w);
            group.bench_function(BenchmarkId::new("smol", w), |b| {
                b.iter(|| {
                    shared.reset();
                    for task in 0..TIMEOUT_TASKS {
                        let shared = shared.clone();
                        rt.spawn(async move {
                            let ok = smol_timeouts_task(&shared, task).await;
                            shared.countdown.done(ok);
                        })
                        .detach();
                    }
                    shared.wait(&rx, "smol timeouts_mostly_cancelled");
                })
            });
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// insert_cancel_*: create + poll once + drop a sleep while many are pending.

/// Tracks the tasks holding the pending sleeps.
struct Parked {
    count: usize,
    /// Tasks whose sleep is registered.
    armed: AtomicUsize,
    /// Tasks not finished yet.
    live: AtomicUsize,
    tx: SyncSender<()>,
}

impl Parked {
    fn new(count: usize) -> (Arc<Parked>, Receiver<()>) {
        let (tx, rx) = mpsc::sync_channel(2);
        let parked = Parked {
            count,
            armed: AtomicUsize::new(0),
            live: AtomicUsize::new(count),
            tx,
        };
        (Arc::new(parked), rx)
    }

    fn armed(&self) {
        if self.armed.fetch_add(1, AcqRel) + 1 == self.count {
            self.tx.send(()).unwrap();
        }
    }
}

/// Counts a parked task as finished when its future is dropped, whether it
/// returns, is cancelled or is aborted.
struct LiveGuard(Arc<Parked>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, AcqRel) == 1 {
            self.0.tx.send(()).unwrap();
        }
    }
}

/// Awaits `sleep`, reporting to `parked` once its first poll (which
/// registers its timer) is done.
async fn park<F: Future>(parked: Arc<Parked>, sleep: F) -> F::Output {
    let guard = LiveGuard(parked);
    let mut sleep = pin!(sleep);
    let mut first = true;
    poll_fn(|cx| {
        let poll = sleep.as_mut().poll(cx);
        if std::mem::take(&mut first) {
            assert!(poll.is_pending(), "a one-hour sleep completed at once");
            guard.0.armed();
        }
        poll
    })
    .await
}

/// Polls `future` once with the task's context: `true` if it is pending.
async fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> bool {
    let mut future = Some(future);
    poll_fn(|cx| Poll::Ready(future.take().unwrap().poll(cx).is_pending())).await
}

/// Runs `iters` batches of create/poll/drop in a spindle task; returns the
/// time spent in them (yields excluded).
fn spindle_insert_cancel(rt: &spindle::Runtime, iters: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters * (OPS_PER_ITER / OPS_PER_POLL) as u64 {
            let start = Instant::now();
            for _ in 0..OPS_PER_POLL {
                let sleep = pin!(spindle::sleep(HOUR));
                assert!(poll_once(sleep).await, "a one-hour sleep completed at once");
            }
            total += start.elapsed();
            spindle::yield_now().await?;
        }
        tx.send(total).unwrap();
        spindle::Ok(())
    }));
    wait(&rx, "spindle insert_cancel")
}

fn tokio_insert_cancel(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters * (OPS_PER_ITER / OPS_PER_POLL) as u64 {
            let start = Instant::now();
            for _ in 0..OPS_PER_POLL {
                let sleep = pin!(tokio::time::sleep(HOUR));
                assert!(poll_once(sleep).await, "a one-hour sleep completed at once");
            }
            total += start.elapsed();
            tokio::task::yield_now().await;
        }
        tx.send(total).unwrap();
    });
    wait(&rx, "tokio insert_cancel")
}

fn smol_insert_cancel(rt: &SmolRt, iters: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters * (OPS_PER_ITER / OPS_PER_POLL) as u64 {
            let start = Instant::now();
            for _ in 0..OPS_PER_POLL {
                let sleep = pin!(Timer::after(HOUR));
                assert!(poll_once(sleep).await, "a one-hour sleep completed at once");
            }
            total += start.elapsed();
            future::yield_now().await;
        }
        tx.send(total).unwrap();
    })
    .detach();
    wait(&rx, "smol insert_cancel")
}

fn insert_cancel(c: &mut Criterion, name: &str, pending: usize) {
    let mut group = group(c, name);
    // 10,000 operations per iteration, in whole polls.
    let ops = (OPS_PER_ITER / OPS_PER_POLL * OPS_PER_POLL) as u64;
    group.throughput(Throughput::Elements(ops));
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            let (parked, rx) = Parked::new(pending);
            let spawner = parked.clone();
            let tasks = rt
                .block_on(async move {
                    let tasks: Vec<spindle::Task<()>> = (0..pending)
                        .map(|_| spindle::spawn(park(spawner.clone(), spindle::sleep(HOUR))))
                        .collect();
                    spindle::Ok(tasks)
                })
                .expect("spawn the pending sleeps");
            wait(&rx, "spindle: arm the pending sleeps");
            group.bench_function(BenchmarkId::new("spindle", w), |b| {
                b.iter_custom(|iters| spindle_insert_cancel(&rt, iters))
            });
            for task in &tasks {
                task.cancel();
            }
            wait(&rx, "spindle: cancel the pending sleeps");
        }
        {
            let rt = tokio_rt(w);
            let (parked, rx) = Parked::new(pending);
            let spawner = parked.clone();
            let tasks = rt
                .block_on(rt.spawn(async move {
                    (0..pending)
                        .map(|_| tokio::spawn(park(spawner.clone(), tokio::time::sleep(HOUR))))
                        .collect::<Vec<_>>()
                }))
                .expect("spawn the pending sleeps");
            wait(&rx, "tokio: arm the pending sleeps");
            group.bench_function(BenchmarkId::new("tokio", w), |b| {
                b.iter_custom(|iters| tokio_insert_cancel(&rt, iters))
            });
            for task in &tasks {
                task.abort();
            }
            wait(&rx, "tokio: cancel the pending sleeps");
        }
        {
            let rt = SmolRt::with_reactor(w);
            let (parked, rx) = Parked::new(pending);
            let spawner = parked.clone();
            let (tasks_tx, tasks_rx) = mpsc::sync_channel(1);
            rt.spawn(async move {
                let tasks: Vec<async_executor::Task<Instant>> = (0..pending)
                    .map(|_| smol_spawn(park(spawner.clone(), Timer::after(HOUR))))
                    .collect();
                tasks_tx.send(tasks).unwrap();
            })
            .detach();
            let tasks = wait(&tasks_rx, "smol: spawn the pending sleeps");
            wait(&rx, "smol: arm the pending sleeps");
            group.bench_function(BenchmarkId::new("smol", w), |b| {
                b.iter_custom(|iters| smol_insert_cancel(&rt, iters))
            });
            // Dropping an `async_executor::Task` cancels it.
            drop(tasks);
            wait(&rx, "smol: cancel the pending sleeps");
        }
    }
    group.finish();
}

fn insert_cancel_10k_pending(c: &mut Criterion) {
    insert_cancel(c, "insert_cancel_10k_pending", 10_000);
}

fn insert_cancel_1m_pending(c: &mut Criterion) {
    insert_cancel(c, "insert_cancel_1m_pending", 1_000_000);
}

criterion_group!(
    timers,
    sleeps_fire,
    timeouts_mostly_cancelled,
    insert_cancel_10k_pending,
    insert_cancel_1m_pending,
);
criterion_main!(timers);
