//! Networking benchmark: a TCP echo server on spindle against the same
//! server on tokio's multi-thread runtime, over loopback.
//!
//! # The servers
//! One per runtime, each with 2 worker threads: a listener on
//! `127.0.0.1:0` whose accept loop spawns one task per connection; the task
//! reads into a 512-byte buffer and `write_all`s what it read back, until
//! end of stream. `TCP_NODELAY` is set on every socket (on both sides), so
//! an echo that happens to be split in two is never held back by Nagle
//! waiting for a delayed ACK. The code is the same, line for line, on both
//! runtimes (`spindle_echo` / `tokio_echo`).
//!
//! # The clients (the load generator), and why they run where they do
//! The clients must be the same for both servers, or the comparison
//! measures the clients. They run on a *third*, fixed runtime that is
//! neither server's: a tokio `current_thread` runtime driven by the bench
//! thread itself (`block_on`). So for both servers the load comes from the
//! same code on one separate thread, sharing no scheduler, driver or queue
//! with the server. It is async because 500 blocking client threads would
//! swamp the 2 cores; it is single-threaded so that it takes the same, fixed
//! share of the machine whichever server runs. The cost: on a 2-core
//! machine three busy threads (2 server workers + the client) share two
//! cores, and the client's CPU is part of every round trip. The numbers are
//! therefore the throughput of *client + server* on the box, in which a
//! difference between servers shows up diluted, but in the right direction
//! (a server that spends less CPU or wakes fewer threads per message leaves
//! more to the client). In a profile the client thread takes about half of
//! the process's CPU, and the kernel's TCP path most of the rest.
//!
//! Each workload opens its N connections once, before timing (so neither
//! connect nor accept is measured, and no ports pile up in TIME_WAIT across
//! iterations), and waits until the server has accepted all N. One iteration
//! is: every connection, concurrently, does M round trips, each a 512-byte
//! message written (`write_all`) and its 512-byte echo read back
//! (`read_exact`) and compared with what was sent. The iteration ends when
//! all N*M round trips are done. It is bounded in count (N*M) and in time:
//! an iteration slower than `HANG_TIMEOUT` panics instead of hanging.
//!
//! Throughput is in messages (round trips of 512 bytes each way) per second:
//! criterion's `Throughput::Elements(N * M)`.
//!
//! - `tcp_echo_50conn`: N = 50, M = 200 (10,000 round trips per iteration)
//! - `tcp_echo_500conn`: N = 500, M = 20 (10,000 round trips per iteration)
//!
//! In test mode (`--test`, or not run by `cargo bench`) M is 2.
//!
//! # Teardown
//! After each workload the client closes its connections; the bench waits
//! until every server connection task has seen end of stream and ended
//! (and checks none failed), then stops the accept loop (spindle: cancel
//! the task; tokio: abort it) and awaits it, checks that the listening
//! port now refuses connections (the listener was closed, not leaked), and
//! shuts the runtime down (joining its threads).
//!
//! # The ratio
//! At the end of the run a summary is printed, in three parts. Read the ratio
//! `spindle time / tokio time` as: above 1, spindle is slower (1.10: each
//! message takes 10% more wall time with the spindle server).
//! - criterion: for each workload, the mean time per iteration over
//!   criterion's measurement samples (warm-up calls left out), as messages
//!   per second with the slowest and fastest sample, and the ratio. The two
//!   servers are measured one after the other, so on a shared machine a
//!   change of background load between the two shows up in this ratio.
//! - paired: then, for each workload criterion ran, both servers are started
//!   again side by side (the idle one sleeps), and `PAIRS` iterations of
//!   each are alternated (spindle first in even rounds, tokio first in odd
//!   ones). Printed: messages per second of each over the whole run, the
//!   ratio of the total times, and the median, lowest and highest ratio of
//!   the single pairs. Load that drifts slowly hits both alike here; the
//!   spread of the pair ratios shows how noisy the machine was.
//!
//! - CPU time per message, from the paired run: the CPU time of each
//!   server's worker threads (the kernel's count per thread, in
//!   `/proc/self/task/*/schedstat`, found by thread name) over the whole
//!   paired run, and the CPU time of the client thread during each server's
//!   iterations, per message, and the share of the servers' time spent in
//!   user mode (the rest is the kernel's). Because the client thread is the bottleneck
//!   (about 100% of a core in a profile, with the two server workers near
//!   45% each), wall time shows a difference between the servers only
//!   diluted; their CPU per message shows it directly.
//!
//! In test mode all three parts are printed too but are tiny runs, not a
//! measurement. A full run takes about 80 s.
//!
//! `cargo bench --bench net -- --test` runs every workload once.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Worker threads of each server runtime.
const WORKERS: usize = 2;
/// The names of the server runtimes' threads (as the kernel keeps them:
/// at most 15 bytes), by which their CPU time is found.
const SPINDLE_THREADS: &str = "spindle-server";
const TOKIO_THREADS: &str = "tokio-server";
/// The size of a message and of the server's read buffer.
const MSG: usize = 512;
/// (connections, round trips per connection per iteration).
const WORKLOADS: [(usize, usize); 2] = [(50, 200), (500, 20)];
/// Round trips per connection per iteration in test mode.
const TRIPS_TEST: usize = 2;
/// Alternated iterations of each server in the paired run, after criterion.
const PAIRS: usize = 15;
const PAIRS_TEST: usize = 1;
/// An iteration (or a setup or teardown wait) longer than this is a hang.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);
/// Setup and teardown waits (accepting all, closing all).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Criterion's settings for each workload.
const WARM_UP: Duration = Duration::from_secs(2);
const MEASUREMENT: Duration = Duration::from_secs(8);
const SAMPLES: usize = 20;

/// Whether criterion runs in test mode: `--test`, or not run by `cargo bench`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

/// Round trips per connection per iteration: `trips`, or `TRIPS_TEST` in
/// test mode.
fn trips_for(trips: usize) -> usize {
    if test_mode() {
        TRIPS_TEST
    } else {
        trips
    }
}

fn group_name(conns: usize) -> String {
    format!("tcp_echo_{conns}conn")
}

/// Waits until `done()` holds; panics with `what` after `timeout`.
fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What a server's connection tasks report.
#[derive(Default)]
struct ServerStats {
    /// Connections accepted so far.
    accepted: AtomicUsize,
    /// Connection tasks still running.
    live: AtomicUsize,
    /// Connection tasks that ended with an error.
    failed: AtomicUsize,
}

impl ServerStats {
    fn opened(&self) {
        self.live.fetch_add(1, AcqRel);
        self.accepted.fetch_add(1, AcqRel);
    }

    fn closed(&self, ok: bool) {
        if !ok {
            self.failed.fetch_add(1, AcqRel);
        }
        self.live.fetch_sub(1, AcqRel);
    }
}

// ---------------------------------------------------------------------------
// The servers.

async fn spindle_echo(stream: spindle::net::TcpStream) -> spindle::Result<()> {
    let mut buf = [0u8; MSG];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn spindle_accept(
    listener: spindle::net::TcpListener,
    stats: Arc<ServerStats>,
) -> spindle::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        stats.opened();
        let stats = stats.clone();
        drop(spindle::spawn(async move {
            let result = spindle_echo(stream).await;
            stats.closed(result.is_ok());
            spindle::Ok(())
        }));
    }
}

async fn tokio_echo(mut stream: tokio::net::TcpStream) -> io::Result<()> {
    let mut buf = [0u8; MSG];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn tokio_accept(
    listener: tokio::net::TcpListener,
    stats: Arc<ServerStats>,
) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        stats.opened();
        let stats = stats.clone();
        tokio::spawn(async move {
            let result = tokio_echo(stream).await;
            stats.closed(result.is_ok());
        });
    }
}

/// A running echo server and its runtime.
enum Server {
    Spindle {
        rt: spindle::Runtime,
        accept: spindle::Task<()>,
    },
    Tokio {
        rt: tokio::runtime::Runtime,
        accept: tokio::task::JoinHandle<io::Result<()>>,
    },
}

struct Running {
    server: Server,
    addr: SocketAddr,
    stats: Arc<ServerStats>,
}

impl Running {
    fn spindle() -> Running {
        let rt = spindle::Runtime::builder()
            .worker_threads(WORKERS)
            .thread_name(SPINDLE_THREADS)
            .build()
            .expect("build the spindle runtime");
        let listener = rt
            .block_on(spindle::net::TcpListener::bind("127.0.0.1:0"))
            .expect("spindle: bind");
        let addr = listener.local_addr().expect("spindle: local_addr");
        let stats = Arc::new(ServerStats::default());
        let accept = rt.spawn(spindle_accept(listener, stats.clone()));
        Running {
            server: Server::Spindle { rt, accept },
            addr,
            stats,
        }
    }

    fn tokio() -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name(TOKIO_THREADS)
            .enable_all()
            .build()
            .expect("build the tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("tokio: bind");
        let addr = listener.local_addr().expect("tokio: local_addr");
        let stats = Arc::new(ServerStats::default());
        let accept = rt.spawn(tokio_accept(listener, stats.clone()));
        Running {
            server: Server::Tokio { rt, accept },
            addr,
            stats,
        }
    }

    /// Call after the clients closed their connections: waits for every
    /// connection task to end, stops the accept loop, checks the listener
    /// is closed, shuts the runtime down.
    fn shut_down(self, name: &str) {
        let stats = &self.stats;
        wait_until(
            SETTLE_TIMEOUT,
            &format!("{name}: server connections ending after the clients closed"),
            || stats.live.load(Acquire) == 0,
        );
        let failed = stats.failed.load(Acquire);
        assert_eq!(failed, 0, "{name}: {failed} server connection tasks failed");
        match self.server {
            Server::Spindle { rt, accept } => {
                accept.cancel();
                let ended = rt.block_on(accept);
                assert!(
                    matches!(&ended, Err(e) if e.is_cancelled()),
                    "spindle: the accept loop ended with {ended:?} instead of being cancelled"
                );
                assert_refused(self.addr, name);
                rt.shutdown();
            }
            Server::Tokio { rt, accept } => {
                accept.abort();
                let ended = rt.block_on(accept);
                assert!(
                    matches!(&ended, Err(e) if e.is_cancelled()),
                    "tokio: the accept loop ended with {ended:?} instead of being aborted"
                );
                assert_refused(self.addr, name);
                rt.shutdown_timeout(SETTLE_TIMEOUT);
            }
        }
    }
}

/// The listener at `addr` is closed: a connection is refused.
fn assert_refused(addr: SocketAddr, name: &str) {
    match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        other => panic!("{name}: the listener at {addr} is still open after shutdown: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The clients: N connections on a tokio current_thread runtime driven by the
// bench thread.

struct Clients {
    rt: tokio::runtime::Runtime,
    streams: Vec<tokio::net::TcpStream>,
    /// Iterations run so far (varies the message contents).
    round: u64,
}

impl Clients {
    fn connect(addr: SocketAddr, conns: usize) -> Clients {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build the client runtime");
        let streams = rt.block_on(async {
            let mut streams = Vec::with_capacity(conns);
            for _ in 0..conns {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                streams.push(stream);
            }
            io::Result::Ok(streams)
        });
        Clients {
            rt,
            streams: streams.expect("client: connect"),
            round: 0,
        }
    }

    /// One iteration: every connection does `trips` round trips, all
    /// connections at once.
    fn run(&mut self, trips: usize) {
        let streams = std::mem::take(&mut self.streams);
        let round = self.round;
        self.round += 1;
        let run = async move {
            let tasks: Vec<_> = streams
                .into_iter()
                .enumerate()
                .map(|(index, stream)| tokio::spawn(client(stream, index, round, trips)))
                .collect();
            let mut streams = Vec::with_capacity(tasks.len());
            for task in tasks {
                streams.push(task.await.expect("client task panicked")?);
            }
            io::Result::Ok(streams)
        };
        let streams = self
            .rt
            .block_on(async { tokio::time::timeout(HANG_TIMEOUT, run).await })
            .unwrap_or_else(|_| panic!("an iteration took more than {HANG_TIMEOUT:?}"))
            .expect("client: round trip");
        self.streams = streams;
    }

    /// Closes every connection (the server reads end of stream).
    fn close(self) {
        drop(self.streams);
        drop(self.rt);
    }
}

/// `trips` round trips on one connection; gives the connection back.
async fn client(
    mut stream: tokio::net::TcpStream,
    index: usize,
    round: u64,
    trips: usize,
) -> io::Result<tokio::net::TcpStream> {
    let mut msg = [0u8; MSG];
    let mut echo = [0u8; MSG];
    for trip in 0..trips {
        let stamp = (index as u64) << 40 ^ round << 20 ^ trip as u64;
        for (i, chunk) in msg.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(stamp ^ i as u64).to_le_bytes());
        }
        stream.write_all(&msg).await?;
        stream.read_exact(&mut echo).await?;
        if echo != msg {
            return Err(io::Error::other(format!(
                "connection {index}: the echo differs from the message"
            )));
        }
    }
    Ok(stream)
}

// ---------------------------------------------------------------------------
// Timings for the summary.

struct Record {
    group: String,
    name: &'static str,
    msgs_per_iter: u64,
    /// (start of the call, iterations, elapsed) for each call criterion made.
    calls: Vec<(Instant, u64, Duration)>,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

fn record(group: &str, name: &'static str, msgs_per_iter: u64, call: (Instant, u64, Duration)) {
    let mut records = RECORDS.lock().unwrap();
    match records
        .iter_mut()
        .find(|r| r.group == group && r.name == name)
    {
        Some(r) => r.calls.push(call),
        None => records.push(Record {
            group: group.to_string(),
            name,
            msgs_per_iter,
            calls: vec![call],
        }),
    }
}

/// Mean, slowest and fastest seconds per iteration over the measurement
/// samples: the calls that started after the warm-up (criterion warms up
/// for `WARM_UP` from its first call, then takes the samples). With no
/// such call (test mode), all calls.
fn per_iteration(record: &Record) -> (f64, f64, f64) {
    let first = record.calls[0].0;
    let measured: Vec<_> = record
        .calls
        .iter()
        .filter(|(start, _, _)| start.duration_since(first) >= WARM_UP)
        .collect();
    let calls = if measured.is_empty() {
        record.calls.iter().collect()
    } else {
        measured
    };
    let times: Vec<f64> = calls
        .iter()
        .map(|(_, iters, elapsed)| elapsed.as_secs_f64() / *iters as f64)
        .collect();
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let slowest = times.iter().copied().fold(f64::MIN, f64::max);
    let fastest = times.iter().copied().fold(f64::MAX, f64::min);
    (mean, slowest, fastest)
}

/// Whether criterion measured both servers of `group` (not filtered out,
/// not `--list`).
fn measured_both(group: &str) -> bool {
    let records = RECORDS.lock().unwrap();
    ["spindle", "tokio"]
        .iter()
        .all(|name| records.iter().any(|r| r.group == group && r.name == *name))
}

/// The paired run of one workload: both servers up at once, iterations
/// alternated (spindle first in even rounds, tokio first in odd ones).
struct Paired {
    group: String,
    msgs_per_iter: u64,
    spindle: Duration,
    tokio: Duration,
    /// spindle time / tokio time of each pair, sorted.
    ratios: Vec<f64>,
    /// CPU time of each server's worker threads over the paired run.
    spindle_server_cpu: ThreadsCpu,
    tokio_server_cpu: ThreadsCpu,
    /// CPU time of the client thread during each server's iterations.
    spindle_client_cpu: Duration,
    tokio_client_cpu: Duration,
}

/// CPU time of a set of threads.
#[derive(Clone, Copy, Default)]
struct ThreadsCpu {
    /// On a CPU, in nanoseconds (`/proc/self/task/*/schedstat`).
    total: Duration,
    /// The part in user mode and the part in the kernel, in clock ticks
    /// (`/proc/self/task/*/stat`, fields 14 and 15: 10 ms each, coarser).
    user_ticks: u64,
    system_ticks: u64,
}

impl ThreadsCpu {
    fn since(self, before: ThreadsCpu) -> ThreadsCpu {
        ThreadsCpu {
            total: self.total.saturating_sub(before.total),
            user_ticks: self.user_ticks.saturating_sub(before.user_ticks),
            system_ticks: self.system_ticks.saturating_sub(before.system_ticks),
        }
    }

    /// The share of the time spent in user mode (the runtime and the
    /// server's code; the rest is the kernel's TCP path and wake-ups).
    fn user_share(self) -> f64 {
        self.user_ticks as f64 / (self.user_ticks + self.system_ticks).max(1) as f64
    }
}

/// The CPU time used so far by this process's threads whose name starts
/// with `prefix` (threads that have exited are not counted). Zero where
/// `/proc` cannot be read.
fn threads_cpu(prefix: &str) -> ThreadsCpu {
    let mut cpu = ThreadsCpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let named =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|name| name.starts_with(prefix));
        if !named {
            continue;
        }
        if let Ok(schedstat) = std::fs::read_to_string(path.join("schedstat")) {
            let ns = schedstat.split_whitespace().next();
            cpu.total += Duration::from_nanos(ns.and_then(|ns| ns.parse().ok()).unwrap_or(0));
        }
        if let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
            // The fields after the name, which is in parentheses: field 3
            // (the state) first, so utime (14) and stime (15) are 11 and 12.
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<u64> = after_name
                .split_whitespace()
                .map(|field| field.parse().unwrap_or(0))
                .collect();
            cpu.user_ticks += fields.get(11).copied().unwrap_or(0);
            cpu.system_ticks += fields.get(12).copied().unwrap_or(0);
        }
    }
    cpu
}

/// The CPU time used so far by the calling thread.
fn this_thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write; the clock id is a constant.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn paired(conns: usize, trips: usize, pairs: usize) -> Paired {
    let start = |name: &str, start: fn() -> Running| {
        let server = start();
        let clients = Clients::connect(server.addr, conns);
        let stats = server.stats.clone();
        wait_until(
            SETTLE_TIMEOUT,
            &format!("{name}: accepting {conns} connections"),
            || stats.accepted.load(Acquire) == conns,
        );
        (server, clients)
    };
    let (spindle_server, mut spindle) = start("spindle", Running::spindle);
    let (tokio_server, mut tokio) = start("tokio", Running::tokio);
    // One unrecorded iteration each, as a warm-up.
    spindle.run(trips);
    tokio.run(trips);
    // (wall time, client thread CPU time) of one iteration.
    let timed = |clients: &mut Clients| {
        let (start, cpu) = (Instant::now(), this_thread_cpu());
        clients.run(trips);
        (start.elapsed(), this_thread_cpu().saturating_sub(cpu))
    };
    let mut result = Paired {
        group: group_name(conns),
        msgs_per_iter: (conns * trips) as u64,
        spindle: Duration::ZERO,
        tokio: Duration::ZERO,
        ratios: Vec::with_capacity(pairs),
        spindle_server_cpu: ThreadsCpu::default(),
        tokio_server_cpu: ThreadsCpu::default(),
        spindle_client_cpu: Duration::ZERO,
        tokio_client_cpu: Duration::ZERO,
    };
    let servers_cpu = || (threads_cpu(SPINDLE_THREADS), threads_cpu(TOKIO_THREADS));
    let before = servers_cpu();
    for round in 0..pairs {
        let (s, t) = if round % 2 == 0 {
            let s = timed(&mut spindle);
            (s, timed(&mut tokio))
        } else {
            let t = timed(&mut tokio);
            (timed(&mut spindle), t)
        };
        result.spindle += s.0;
        result.tokio += t.0;
        result.spindle_client_cpu += s.1;
        result.tokio_client_cpu += t.1;
        result.ratios.push(s.0.as_secs_f64() / t.0.as_secs_f64());
    }
    let after = servers_cpu();
    result.spindle_server_cpu = after.0.since(before.0);
    result.tokio_server_cpu = after.1.since(before.1);
    result.ratios.sort_by(f64::total_cmp);
    spindle.close();
    tokio.close();
    spindle_server.shut_down("spindle");
    tokio_server.shut_down("tokio");
    result
}

fn print_summary(paired: &[Paired]) {
    let records = RECORDS.lock().unwrap();
    if records.is_empty() {
        return;
    }
    println!();
    println!(
        "tcp echo summary: {WORKERS} workers per server runtime, clients on one separate \
         thread; msgs/s = 512-byte round trips per second; ratio = spindle time / tokio \
         time (above 1: spindle slower){}",
        if test_mode() {
            "\n  TEST MODE: tiny runs, not a measurement"
        } else {
            ""
        }
    );
    println!(
        "criterion (mean over the measurement samples [slowest .. fastest sample]; \
         the two servers measured one after the other):"
    );
    let mut groups: Vec<&str> = records.iter().map(|r| r.group.as_str()).collect();
    groups.dedup();
    for group in groups {
        let mut times = Vec::new();
        for r in records.iter().filter(|r| r.group == group) {
            let (mean, slowest, fastest) = per_iteration(r);
            let rate = |secs: f64| r.msgs_per_iter as f64 / secs;
            println!(
                "  {group:<17} {:<8} {:>7.0} msgs/s [{:.0} .. {:.0}]",
                r.name,
                rate(mean),
                rate(slowest),
                rate(fastest)
            );
            times.push((r.name, mean));
        }
        let time = |name| times.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        if let (Some(s), Some(t)) = (time("spindle"), time("tokio")) {
            println!("  {group:<17} ratio    {:.3}", s / t);
        }
    }
    if paired.is_empty() {
        return;
    }
    println!(
        "paired (both servers up, iterations alternated, {} pairs; robust to load that \
         drifts during the run):",
        paired[0].ratios.len()
    );
    for p in paired {
        let msgs = p.msgs_per_iter as f64 * p.ratios.len() as f64;
        let ratios = &p.ratios;
        println!(
            "  {:<17} spindle {:>7.0} msgs/s  tokio {:>7.0} msgs/s  ratio: total {:.3}, \
             median pair {:.3} [{:.3} .. {:.3}]",
            p.group,
            msgs / p.spindle.as_secs_f64(),
            msgs / p.tokio.as_secs_f64(),
            p.spindle.as_secs_f64() / p.tokio.as_secs_f64(),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
        );
    }
    println!(
        "CPU time per message in the paired run (µs; server = its {WORKERS} worker threads, \
         client = the client thread during that server's iterations):"
    );
    for p in paired {
        let msgs = p.msgs_per_iter as f64 * p.ratios.len() as f64;
        let per_msg = |cpu: Duration| cpu.as_secs_f64() * 1e6 / msgs;
        let (spindle, tokio) = (p.spindle_server_cpu, p.tokio_server_cpu);
        let (spindle_us, tokio_us) = (per_msg(spindle.total), per_msg(tokio.total));
        println!(
            "  {:<17} server: spindle {spindle_us:.2} ({:.0}% user)  tokio {tokio_us:.2} \
             ({:.0}% user)  ratio {:.3}   client: with spindle {:.2}  with tokio {:.2}",
            p.group,
            spindle.user_share() * 100.0,
            tokio.user_share() * 100.0,
            spindle_us / tokio_us,
            per_msg(p.spindle_client_cpu),
            per_msg(p.tokio_client_cpu),
        );
    }
}

// ---------------------------------------------------------------------------
// The benchmark.

fn bench_server(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    name: &'static str,
    start: fn() -> Running,
    conns: usize,
    trips: usize,
) {
    let server = start();
    let mut clients = Clients::connect(server.addr, conns);
    let stats = server.stats.clone();
    wait_until(
        SETTLE_TIMEOUT,
        &format!("{name}: accepting {conns} connections"),
        || stats.accepted.load(Acquire) == conns,
    );
    let msgs = (conns * trips) as u64;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                clients.run(trips);
            }
            let elapsed = start.elapsed();
            record(group_name, name, msgs, (start, iters, elapsed));
            elapsed
        })
    });
    clients.close();
    server.shut_down(name);
}

fn tcp_echo(c: &mut Criterion) {
    for (conns, trips) in WORKLOADS {
        let trips = trips_for(trips);
        let name = group_name(conns);
        let mut group = c.benchmark_group(&name);
        group
            .sample_size(SAMPLES)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(WARM_UP)
            .measurement_time(MEASUREMENT)
            .throughput(Throughput::Elements((conns * trips) as u64));
        bench_server(&mut group, &name, "spindle", Running::spindle, conns, trips);
        bench_server(&mut group, &name, "tokio", Running::tokio, conns, trips);
        group.finish();
    }
}

// criterion_main!, then the paired run and the summary.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    tcp_echo(&mut criterion);
    criterion.final_summary();
    let pairs = if test_mode() { PAIRS_TEST } else { PAIRS };
    let paired: Vec<Paired> = WORKLOADS
        .iter()
        .filter(|(conns, _)| measured_both(&group_name(*conns)))
        .map(|&(conns, trips)| paired(conns, trips_for(trips), pairs))
        .collect();
    print_summary(&paired);
}
