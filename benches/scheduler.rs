//! Scheduler benchmarks: spindle against tokio's multi-thread runtime.
//!
//! The workloads follow tokio's own `benches/rt_multi_threaded.rs`
//! (spawn_many_local, spawn_many_remote_idle, spawn_many_remote_busy1,
//! yield_many, ping_pong, chained_spawn, with its parameters), plus the
//! classic skynet. Each workload is one criterion group with two functions,
//! `spindle` and `tokio`, run with the same number of worker threads (the
//! machine's available parallelism), so criterion prints them side by side.
//!
//! Differences from tokio's file, applied to both runtimes alike:
//! - spindle's `block_on` runs its future as a task on a worker, so nothing
//!   here blocks inside `block_on`: completion signals go through a std
//!   channel that the bench thread waits on (with a timeout, so a lost
//!   wake-up fails the bench instead of hanging it).
//! - spawn_many_local spawns from inside a task running on a worker, so the
//!   spawns really are local for both runtimes (in tokio's file they come
//!   from `block_on`'s thread, which is not a worker).
//! - spawn_many_remote_busy's spinning tasks also stop after a deadline.
//!
//! `cargo bench --bench scheduler -- --test` runs every benchmark once.

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tasks spawned per iteration by the spawn_many_* benchmarks.
const NUM_SPAWN: usize = 10_000;
/// Yields per task in yield_many.
const NUM_YIELD: usize = 1_000;
/// Tasks per worker in yield_many.
const TASKS_PER_CPU: usize = 50;
/// Ping-pong pairs per iteration.
const NUM_PINGS: usize = 1_000;
/// Depth of chained_spawn.
const ITER: usize = 1_000;
/// How long a busy task spins between yields in spawn_many_remote_busy.
const STALL_DUR: Duration = Duration::from_micros(10);
/// Leaves of the skynet tree (10 children per node, 6 levels).
const SKYNET_LEAVES: u64 = 1_000_000;
/// Sum of the numbers of the skynet leaves, 0..SKYNET_LEAVES.
const SKYNET_SUM: u64 = SKYNET_LEAVES * (SKYNET_LEAVES - 1) / 2;
/// An iteration that takes longer than this is a hang: the bench fails.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);
/// The busy tasks of spawn_many_remote_busy stop by themselves after this.
const BUSY_DEADLINE: Duration = Duration::from_secs(300);

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

/// Waits for `count` completion signals; panics instead of hanging.
fn wait(rx: &Receiver<()>, count: usize, what: &str) {
    for _ in 0..count {
        if rx.recv_timeout(HANG_TIMEOUT).is_err() {
            panic!("{what}: no completion signal within {HANG_TIMEOUT:?} (lost wake-up or failed task)");
        }
    }
}

/// Burns CPU for `STALL_DUR`, as tokio's bench does.
fn stall() {
    let now = Instant::now();
    while now.elapsed() < STALL_DUR {
        std::thread::yield_now();
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
// spawn_many_local: a task spawns NUM_SPAWN trivial tasks; the last one to
// run signals completion.

fn spawn_many_local(c: &mut Criterion) {
    let mut group = group(c, "spawn_many_local");
    let (tx, rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));

    {
        let rt = spindle_rt();
        group.bench_function("spindle", |b| {
            b.iter(|| {
                rem.store(NUM_SPAWN, Relaxed);
                let (tx, rem) = (tx.clone(), rem.clone());
                drop(rt.spawn(async move {
                    for _ in 0..NUM_SPAWN {
                        let (tx, rem) = (tx.clone(), rem.clone());
                        drop(spindle::spawn(async move {
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                tx.send(()).unwrap();
                            }
                            spindle::Ok(())
                        }));
                    }
                    spindle::Ok(())
                }));
                wait(&rx, 1, "spindle spawn_many_local");
            })
        });
    }
    {
        let rt = tokio_rt();
        group.bench_function("tokio", |b| {
            b.iter(|| {
                rem.store(NUM_SPAWN, Relaxed);
                let (tx, rem) = (tx.clone(), rem.clone());
                rt.spawn(async move {
                    for _ in 0..NUM_SPAWN {
                        let (tx, rem) = (tx.clone(), rem.clone());
                        tokio::spawn(async move {
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                tx.send(()).unwrap();
                            }
                        });
                    }
                });
                wait(&rx, 1, "tokio spawn_many_local");
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// spawn_many_remote_*: the bench thread spawns NUM_SPAWN empty tasks, then
// awaits their handles.

fn spindle_spawn_remote(
    rt: &spindle::Runtime,
    mut handles: Vec<spindle::Task<()>>,
) -> Vec<spindle::Task<()>> {
    let handle = rt.handle();
    for _ in 0..NUM_SPAWN {
        handles.push(handle.spawn(async { spindle::Ok(()) }));
    }
    rt.block_on(async move {
        for task in handles.drain(..) {
            task.await?;
        }
        spindle::Ok(handles)
    })
    .expect("spindle remote spawn")
}

fn tokio_spawn_remote(
    rt: &tokio::runtime::Runtime,
    handles: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    let handle = rt.handle();
    for _ in 0..NUM_SPAWN {
        handles.push(handle.spawn(async {}));
    }
    rt.block_on(async {
        for task in handles.drain(..) {
            task.await.unwrap();
        }
    });
}

fn spawn_many_remote_idle(c: &mut Criterion) {
    let mut group = group(c, "spawn_many_remote_idle");
    {
        let rt = spindle_rt();
        let mut handles = Vec::with_capacity(NUM_SPAWN);
        group.bench_function("spindle", |b| {
            b.iter(|| handles = spindle_spawn_remote(&rt, std::mem::take(&mut handles)))
        });
    }
    {
        let rt = tokio_rt();
        let mut handles = Vec::with_capacity(NUM_SPAWN);
        group.bench_function("tokio", |b| {
            b.iter(|| tokio_spawn_remote(&rt, &mut handles))
        });
    }
    group.finish();
}

/// tokio's spawn_many_remote_busy1: 2 tasks per worker keep the workers busy
/// with CPU work and yields while the bench thread spawns.
fn spawn_many_remote_busy(c: &mut Criterion) {
    let mut group = group(c, "spawn_many_remote_busy");
    {
        let rt = spindle_rt();
        let flag = Arc::new(AtomicBool::new(true));
        let deadline = Instant::now() + BUSY_DEADLINE;
        let busy: Vec<_> = (0..2 * workers())
            .map(|_| {
                let flag = flag.clone();
                rt.spawn(async move {
                    while flag.load(Relaxed) && Instant::now() < deadline {
                        spindle::yield_now().await?;
                        stall();
                    }
                    spindle::Ok(())
                })
            })
            .collect();
        let mut handles = Vec::with_capacity(NUM_SPAWN);
        group.bench_function("spindle", |b| {
            b.iter(|| handles = spindle_spawn_remote(&rt, std::mem::take(&mut handles)))
        });
        flag.store(false, Relaxed);
        rt.block_on(async move {
            for task in busy {
                task.await?;
            }
            spindle::Ok(())
        })
        .expect("spindle busy tasks");
    }
    {
        let rt = tokio_rt();
        let flag = Arc::new(AtomicBool::new(true));
        let deadline = Instant::now() + BUSY_DEADLINE;
        let busy: Vec<_> = (0..2 * workers())
            .map(|_| {
                let flag = flag.clone();
                rt.spawn(async move {
                    while flag.load(Relaxed) && Instant::now() < deadline {
                        tokio::task::yield_now().await;
                        stall();
                    }
                })
            })
            .collect();
        let mut handles = Vec::with_capacity(NUM_SPAWN);
        group.bench_function("tokio", |b| {
            b.iter(|| tokio_spawn_remote(&rt, &mut handles))
        });
        flag.store(false, Relaxed);
        rt.block_on(async move {
            for task in busy {
                task.await.unwrap();
            }
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// yield_many: TASKS_PER_CPU tasks per worker, each yielding NUM_YIELD times.

fn yield_many(c: &mut Criterion) {
    let tasks = TASKS_PER_CPU * workers();
    let mut group = group(c, "yield_many");
    let (tx, rx) = mpsc::sync_channel(tasks);
    {
        let rt = spindle_rt();
        group.bench_function("spindle", |b| {
            b.iter(|| {
                for _ in 0..tasks {
                    let tx = tx.clone();
                    drop(rt.spawn(async move {
                        for _ in 0..NUM_YIELD {
                            spindle::yield_now().await?;
                        }
                        tx.send(()).unwrap();
                        spindle::Ok(())
                    }));
                }
                wait(&rx, tasks, "spindle yield_many");
            })
        });
    }
    {
        let rt = tokio_rt();
        group.bench_function("tokio", |b| {
            b.iter(|| {
                for _ in 0..tasks {
                    let tx = tx.clone();
                    rt.spawn(async move {
                        for _ in 0..NUM_YIELD {
                            tokio::task::yield_now().await;
                        }
                        tx.send(()).unwrap();
                    });
                }
                wait(&rx, tasks, "tokio yield_many");
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// ping_pong: a task spawns NUM_PINGS tasks; each spawns a partner, sends it a
// ping through a one-shot (a `Promise` on spindle) and awaits the pong.

fn ping_pong(c: &mut Criterion) {
    let mut group = group(c, "ping_pong");
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    {
        let rt = spindle_rt();
        group.bench_function("spindle", |b| {
            b.iter(|| {
                rem.store(NUM_PINGS, Relaxed);
                let (done_tx, rem) = (done_tx.clone(), rem.clone());
                drop(rt.spawn(async move {
                    for _ in 0..NUM_PINGS {
                        let (done_tx, rem) = (done_tx.clone(), rem.clone());
                        drop(spindle::spawn(async move {
                            let ping = spindle::Promise::<()>::new();
                            let pong = spindle::Promise::<()>::new();
                            let (ping_rx, pong_tx) = (ping.clone(), pong.clone());
                            drop(spindle::spawn(async move {
                                ping_rx.await?;
                                pong_tx.set_result(())
                            }));
                            ping.set_result(())?;
                            pong.await?;
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                done_tx.send(()).unwrap();
                            }
                            spindle::Ok(())
                        }));
                    }
                    spindle::Ok(())
                }));
                wait(&done_rx, 1, "spindle ping_pong");
            })
        });
    }
    {
        let rt = tokio_rt();
        group.bench_function("tokio", |b| {
            b.iter(|| {
                rem.store(NUM_PINGS, Relaxed);
                let (done_tx, rem) = (done_tx.clone(), rem.clone());
                rt.spawn(async move {
                    for _ in 0..NUM_PINGS {
                        let (done_tx, rem) = (done_tx.clone(), rem.clone());
                        tokio::spawn(async move {
                            let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
                            let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
                            tokio::spawn(async move {
                                rx1.await.unwrap();
                                tx2.send(()).unwrap();
                            });
                            tx1.send(()).unwrap();
                            rx2.await.unwrap();
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                done_tx.send(()).unwrap();
                            }
                        });
                    }
                });
                wait(&done_rx, 1, "tokio ping_pong");
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// chained_spawn: each task spawns the next, ITER deep; the last one signals.

fn spindle_chain(done_tx: SyncSender<()>, n: usize) {
    if n == 0 {
        done_tx.send(()).unwrap();
    } else {
        drop(spindle::spawn(async move {
            spindle_chain(done_tx, n - 1);
            spindle::Ok(())
        }));
    }
}

fn tokio_chain(done_tx: SyncSender<()>, n: usize) {
    if n == 0 {
        done_tx.send(()).unwrap();
    } else {
        tokio::spawn(async move {
            tokio_chain(done_tx, n - 1);
        });
    }
}

fn chained_spawn(c: &mut Criterion) {
    let mut group = group(c, "chained_spawn");
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    {
        let rt = spindle_rt();
        group.bench_function("spindle", |b| {
            b.iter(|| {
                let done_tx = done_tx.clone();
                drop(rt.spawn(async move {
                    spindle_chain(done_tx, ITER);
                    spindle::Ok(())
                }));
                wait(&done_rx, 1, "spindle chained_spawn");
            })
        });
    }
    {
        let rt = tokio_rt();
        group.bench_function("tokio", |b| {
            b.iter(|| {
                let done_tx = done_tx.clone();
                rt.spawn(async move {
                    tokio_chain(done_tx, ITER);
                });
                wait(&done_rx, 1, "tokio chained_spawn");
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// skynet: every node spawns 10 children, 6 levels down to 1,000,000 leaves
// (1,111,111 tasks with the root), and sums the leaves' numbers.

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn spindle_skynet(num: u64, size: u64) -> BoxFuture<spindle::Result<u64>> {
    Box::pin(async move {
        if size == 1 {
            return spindle::Ok(num);
        }
        let child = size / 10;
        let children: Vec<_> = (0..10)
            .map(|i| spindle::spawn(spindle_skynet(num + i * child, child)))
            .collect();
        let mut sum = 0;
        for task in children {
            sum += task.await?;
        }
        spindle::Ok(sum)
    })
}

fn tokio_skynet(num: u64, size: u64) -> BoxFuture<u64> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let child = size / 10;
        let children: Vec<_> = (0..10)
            .map(|i| tokio::spawn(tokio_skynet(num + i * child, child)))
            .collect();
        let mut sum = 0;
        for task in children {
            sum += task.await.unwrap();
        }
        sum
    })
}

fn run_spindle_skynet(rt: &spindle::Runtime) -> u64 {
    rt.block_on(spindle_skynet(0, SKYNET_LEAVES))
        .expect("spindle skynet")
}

fn run_tokio_skynet(rt: &tokio::runtime::Runtime) -> u64 {
    // The root is a task too, as on spindle (whose block_on spawns one).
    rt.block_on(rt.spawn(tokio_skynet(0, SKYNET_LEAVES)))
        .expect("tokio skynet")
}

fn skynet(c: &mut Criterion) {
    let mut group = c.benchmark_group("skynet");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    {
        let rt = spindle_rt();
        let mut verified = false;
        group.bench_function("spindle", |b| {
            if !verified {
                assert_eq!(run_spindle_skynet(&rt), SKYNET_SUM, "spindle skynet sum");
                verified = true;
            }
            b.iter(|| run_spindle_skynet(&rt))
        });
    }
    {
        let rt = tokio_rt();
        let mut verified = false;
        group.bench_function("tokio", |b| {
            if !verified {
                assert_eq!(run_tokio_skynet(&rt), SKYNET_SUM, "tokio skynet sum");
                verified = true;
            }
            b.iter(|| run_tokio_skynet(&rt))
        });
    }
    group.finish();
}

criterion_group!(
    scheduler,
    spawn_many_local,
    spawn_many_remote_idle,
    spawn_many_remote_busy,
    yield_many,
    ping_pong,
    chained_spawn,
    skynet,
);
criterion_main!(scheduler);
