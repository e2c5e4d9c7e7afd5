//! Scheduler benchmarks: spindle against tokio's multi-thread runtime and
//! smol's executor (`async-executor`), in one run.
//!
//! The workloads follow tokio's own `benches/rt_multi_threaded.rs`
//! (spawn_many_local, spawn_many_remote_idle, spawn_many_remote_busy1,
//! yield_many, ping_pong, chained_spawn, with its parameters), plus the
//! classic skynet.
//!
//! # Naming and worker counts
//! Each workload is one criterion group (named after the workload); each
//! runtime is one function of it, with the worker count as the parameter:
//! `<workload>/<runtime>/<workers>`, e.g. `spawn_many_local/spindle/1`,
//! `spawn_many_local/tokio/1`, `spawn_many_local/smol/1`,
//! `spawn_many_local/spindle/2`, ... Every workload runs with 1 worker
//! thread and with all cores (`available_parallelism`; just 1 on a 1-core
//! machine), and at each worker count every runtime gets exactly that many
//! worker threads. Runtimes are built one at a time, once per worker count,
//! outside the measured closure.
//!
//! The runtimes:
//! - `spindle`: `spindle::Runtime` with `worker_threads(w)`;
//! - `tokio`: `Builder::new_multi_thread().worker_threads(w)`;
//! - `smol`: one `async_executor::Executor` run by `w` threads, each in
//!   `futures_lite::future::block_on(ex.run(stop))` (`SmolRt` below). Tasks
//!   spawn tasks through a thread-local handle to the executor of their
//!   worker (the analogue of `tokio::spawn` / `spindle::spawn`);
//!   fire-and-forget tasks are `detach`ed. Its one-shot in ping_pong is an
//!   `async_channel::bounded(1)` (smol has no dedicated one-shot).
//!
//! Differences from tokio's file, applied to all runtimes alike:
//! - spindle's `block_on` runs its future as a task on a worker, so nothing
//!   here blocks inside `block_on`: completion signals go through a std
//!   channel that the bench thread waits on (with a timeout, so a lost
//!   wake-up fails the bench instead of hanging it).
//! - spawn_many_local spawns from inside a task running on a worker, so the
//!   spawns really are local for every runtime (in tokio's file they come
//!   from `block_on`'s thread, which is not a worker).
//! - spawn_many_remote_busy's spinning tasks also stop after a deadline.
//! - yield_many runs TASKS_PER_CPU tasks per worker of the run.
//!
//! # The summary
//! At the end a summary is printed: per workload and worker count, the mean
//! time per iteration of every runtime over criterion's measurement samples
//! (warm-up left out) and the ratios spindle/tokio and spindle/smol (below 1:
//! spindle faster). In test mode it is printed too, from one iteration each.
//!
//! A full `cargo bench --bench scheduler` takes about 4 minutes on an idle
//! 2-core machine (7 workloads x 2 worker counts x 3 runtimes; each function
//! about 4 s, skynet's 6 to 12 s), more under load. `benches/report.sh scheduler` runs it and writes
//! the table and the plot of the ratios into `docs/benchmarks.md`.
//!
//! `cargo bench --bench scheduler -- --test` runs every benchmark once.

use criterion::Criterion;
use futures_lite::future;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{
    all_cores, print_summary, smol_spawn, spindle_rt, tokio_rt, worker_counts, Group, SmolRt,
};

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
fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
    Group::new(
        c,
        name,
        20,
        Duration::from_secs(1),
        Duration::from_secs(3),
        false,
    )
}

// ---------------------------------------------------------------------------
// spawn_many_local: a task spawns NUM_SPAWN trivial tasks; the last one to
// run signals completion.

fn spawn_many_local(c: &mut Criterion) {
    let mut group = group(c, "spawn_many_local");
    let (tx, rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));

    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            group.bench("spindle", w, None, || {
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
            });
        }
        {
            let rt = tokio_rt(w);
            group.bench("tokio", w, None, || {
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
            });
        }
        {
            let rt = SmolRt::new(w);
            group.bench("smol", w, None, || {
                rem.store(NUM_SPAWN, Relaxed);
                let (tx, rem) = (tx.clone(), rem.clone());
                rt.spawn(async move {
                    for _ in 0..NUM_SPAWN {
                        let (tx, rem) = (tx.clone(), rem.clone());
                        smol_spawn(async move {
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                tx.send(()).unwrap();
                            }
                        })
                        .detach();
                    }
                })
                .detach();
                wait(&rx, 1, "smol spawn_many_local");
            });
        }
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

fn smol_spawn_remote(rt: &SmolRt, handles: &mut Vec<async_executor::Task<()>>) {
    for _ in 0..NUM_SPAWN {
        handles.push(rt.spawn(async {}));
    }
    future::block_on(async {
        for task in handles.drain(..) {
            task.await;
        }
    });
}

fn spawn_many_remote_idle(c: &mut Criterion) {
    let mut group = group(c, "spawn_many_remote_idle");
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            group.bench("spindle", w, None, || {
                handles = spindle_spawn_remote(&rt, std::mem::take(&mut handles))
            });
        }
        {
            let rt = tokio_rt(w);
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            group.bench("tokio", w, None, || tokio_spawn_remote(&rt, &mut handles));
        }
        {
            let rt = SmolRt::new(w);
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            group.bench("smol", w, None, || smol_spawn_remote(&rt, &mut handles));
        }
    }
    group.finish();
}

/// tokio's spawn_many_remote_busy1: 2 tasks per worker keep the workers busy
/// with CPU work and yields while the bench thread spawns.
fn spawn_many_remote_busy(c: &mut Criterion) {
    let mut group = group(c, "spawn_many_remote_busy");
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            let flag = Arc::new(AtomicBool::new(true));
            let deadline = Instant::now() + BUSY_DEADLINE;
            let busy: Vec<_> = (0..2 * w)
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
            group.bench("spindle", w, None, || {
                handles = spindle_spawn_remote(&rt, std::mem::take(&mut handles))
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
            let rt = tokio_rt(w);
            let flag = Arc::new(AtomicBool::new(true));
            let deadline = Instant::now() + BUSY_DEADLINE;
            let busy: Vec<_> = (0..2 * w)
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
            group.bench("tokio", w, None, || tokio_spawn_remote(&rt, &mut handles));
            flag.store(false, Relaxed);
            rt.block_on(async move {
                for task in busy {
                    task.await.unwrap();
                }
            });
        }
        {
            let rt = SmolRt::new(w);
            let flag = Arc::new(AtomicBool::new(true));
            let deadline = Instant::now() + BUSY_DEADLINE;
            let busy: Vec<_> = (0..2 * w)
                .map(|_| {
                    let flag = flag.clone();
                    rt.spawn(async move {
                        while flag.load(Relaxed) && Instant::now() < deadline {
                            future::yield_now().await;
                            stall();
                        }
                    })
                })
                .collect();
            let mut handles = Vec::with_capacity(NUM_SPAWN);
            group.bench("smol", w, None, || smol_spawn_remote(&rt, &mut handles));
            flag.store(false, Relaxed);
            future::block_on(async move {
                for task in busy {
                    task.await;
                }
            });
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// yield_many: TASKS_PER_CPU tasks per worker, each yielding NUM_YIELD times.

fn yield_many(c: &mut Criterion) {
    let mut group = group(c, "yield_many");
    let (tx, rx) = mpsc::sync_channel(TASKS_PER_CPU * all_cores());
    for w in worker_counts() {
        let tasks = TASKS_PER_CPU * w;
        {
            let rt = spindle_rt(w);
            group.bench("spindle", w, None, || {
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
            });
        }
        {
            let rt = tokio_rt(w);
            group.bench("tokio", w, None, || {
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
            });
        }
        {
            let rt = SmolRt::new(w);
            group.bench("smol", w, None, || {
                for _ in 0..tasks {
                    let tx = tx.clone();
                    rt.spawn(async move {
                        for _ in 0..NUM_YIELD {
                            future::yield_now().await;
                        }
                        tx.send(()).unwrap();
                    })
                    .detach();
                }
                wait(&rx, tasks, "smol yield_many");
            });
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// ping_pong: a task spawns NUM_PINGS tasks; each spawns a partner, sends it a
// ping through a one-shot (a `Promise` on spindle, an `async_channel` of
// capacity 1 on smol) and awaits the pong.

fn ping_pong(c: &mut Criterion) {
    let mut group = group(c, "ping_pong");
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            group.bench("spindle", w, None, || {
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
            });
        }
        {
            let rt = tokio_rt(w);
            group.bench("tokio", w, None, || {
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
            });
        }
        {
            let rt = SmolRt::new(w);
            group.bench("smol", w, None, || {
                rem.store(NUM_PINGS, Relaxed);
                let (done_tx, rem) = (done_tx.clone(), rem.clone());
                rt.spawn(async move {
                    for _ in 0..NUM_PINGS {
                        let (done_tx, rem) = (done_tx.clone(), rem.clone());
                        smol_spawn(async move {
                            let (tx1, rx1) = async_channel::bounded::<()>(1);
                            let (tx2, rx2) = async_channel::bounded::<()>(1);
                            smol_spawn(async move {
                                rx1.recv().await.unwrap();
                                tx2.try_send(()).unwrap();
                            })
                            .detach();
                            tx1.try_send(()).unwrap();
                            rx2.recv().await.unwrap();
                            if 1 == rem.fetch_sub(1, Relaxed) {
                                done_tx.send(()).unwrap();
                            }
                        })
                        .detach();
                    }
                })
                .detach();
                wait(&done_rx, 1, "smol ping_pong");
            });
        }
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

fn smol_chain(done_tx: SyncSender<()>, n: usize) {
    if n == 0 {
        done_tx.send(()).unwrap();
    } else {
        smol_spawn(async move {
            smol_chain(done_tx, n - 1);
        })
        .detach();
    }
}

fn chained_spawn(c: &mut Criterion) {
    let mut group = group(c, "chained_spawn");
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            group.bench("spindle", w, None, || {
                let done_tx = done_tx.clone();
                drop(rt.spawn(async move {
                    spindle_chain(done_tx, ITER);
                    spindle::Ok(())
                }));
                wait(&done_rx, 1, "spindle chained_spawn");
            });
        }
        {
            let rt = tokio_rt(w);
            group.bench("tokio", w, None, || {
                let done_tx = done_tx.clone();
                rt.spawn(async move {
                    tokio_chain(done_tx, ITER);
                });
                wait(&done_rx, 1, "tokio chained_spawn");
            });
        }
        {
            let rt = SmolRt::new(w);
            group.bench("smol", w, None, || {
                let done_tx = done_tx.clone();
                rt.spawn(async move {
                    smol_chain(done_tx, ITER);
                })
                .detach();
                wait(&done_rx, 1, "smol chained_spawn");
            });
        }
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

fn smol_skynet(num: u64, size: u64) -> BoxFuture<u64> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let child = size / 10;
        let children: Vec<_> = (0..10)
            .map(|i| smol_spawn(smol_skynet(num + i * child, child)))
            .collect();
        let mut sum = 0;
        for task in children {
            sum += task.await;
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

fn run_smol_skynet(rt: &SmolRt) -> u64 {
    // The root is a task on the executor; the bench thread awaits it.
    future::block_on(rt.spawn(smol_skynet(0, SKYNET_LEAVES)))
}

fn skynet(c: &mut Criterion) {
    let mut group = Group::new(
        c,
        "skynet",
        10,
        Duration::from_secs(1),
        Duration::from_secs(5),
        true,
    );
    for w in worker_counts() {
        {
            let rt = spindle_rt(w);
            group.bench("spindle", w, Some(SKYNET_SUM), || run_spindle_skynet(&rt));
        }
        {
            let rt = tokio_rt(w);
            group.bench("tokio", w, Some(SKYNET_SUM), || run_tokio_skynet(&rt));
        }
        {
            let rt = SmolRt::new(w);
            group.bench("smol", w, Some(SKYNET_SUM), || run_smol_skynet(&rt));
        }
    }
    group.finish();
}

// criterion_main!, then the summary.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    spawn_many_local(&mut criterion);
    spawn_many_remote_idle(&mut criterion);
    spawn_many_remote_busy(&mut criterion);
    yield_many(&mut criterion);
    ping_pong(&mut criterion);
    chained_spawn(&mut criterion);
    skynet(&mut criterion);
    criterion.final_summary();
    print_summary("scheduler");
}
