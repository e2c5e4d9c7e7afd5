//! Networking benchmark: a TCP echo server on spindle against the same
//! server on tokio's multi-thread runtime and on smol (async-executor with
//! async-io's reactor), over loopback.
//!
//! # The servers
//! One per runtime, each run with 1 worker thread and with all cores
//! (`common::worker_counts()`): a listener on `127.0.0.1:0` whose accept
//! loop spawns one task per connection; the task reads into a 512-byte
//! buffer and `write_all`s what it read back, until end of stream.
//! `TCP_NODELAY` is set on every socket (on both sides), so an echo that
//! happens to be split in two is never held back by Nagle waiting for a
//! delayed ACK. The code is the same, line for line, on the three runtimes
//! (`spindle_echo` / `tokio_echo` / `smol_echo`, and the `*_accept` loops).
//!
//! smol's server is `common::SmolRt::with_reactor(W)`: W threads
//! (`smol-worker-{i}`) each running the executor inside `async_io::block_on`,
//! so that they drive async-io's reactor themselves when idle, which is how
//! smol runs; its sockets are `async_io::Async<std::net::TcpListener>` and
//! `Async<std::net::TcpStream>`, read and written with futures-lite's
//! `AsyncReadExt` / `AsyncWriteExt`. async-io also runs a fallback thread
//! of its own, `async-io`, that drives the reactor when no `block_on` does
//! (process-wide, started with the reactor): its CPU time is counted as
//! part of smol's server below.
//!
//! # The clients (the load generator), and why they run where they do
//! The clients must be the same for every server, or the comparison
//! measures the clients. They run on a separate, fixed runtime that is
//! none of the servers': a tokio `current_thread` runtime driven by the
//! bench thread itself (`block_on`). So for every server the load comes from
//! the same code on one separate thread, sharing no scheduler, driver or
//! queue with the server. It is async because 500 blocking client threads
//! would swamp the 2 cores; it is single-threaded so that it takes the same,
//! fixed share of the machine whichever server runs. The cost: on a 2-core
//! machine with 2 server workers three busy threads share two cores, and the
//! client's CPU is part of every round trip. The numbers are therefore the
//! throughput of *client + server* on the box, in which a difference between
//! servers shows up diluted, but in the right direction (a server that
//! spends less CPU or wakes fewer threads per message leaves more to the
//! client). In a profile (2 workers) the client thread takes about half of
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
//! criterion's `Throughput::Elements(N * M)`. The ids are
//! `<workload>/<server>/<workers>` (`tcp_echo_50conn/smol/1`), the server
//! one of `spindle`, `tokio`, `smol`.
//!
//! - `tcp_echo_50conn`: N = 50, M = 200 (10,000 round trips per iteration)
//! - `tcp_echo_500conn`: N = 500, M = 20 (10,000 round trips per iteration)
//!
//! In test mode (`--test`, or not run by `cargo bench`) M is 2.
//!
//! # Teardown
//! After each workload the client closes its connections; the bench waits
//! until every server connection task has seen end of stream and ended
//! (and checks none failed), then stops the accept loop (spindle: cancel the
//! task; tokio: abort it; smol: `Task::cancel`) and awaits it, checks that
//! the listening port now refuses connections (the listener was closed, not
//! leaked), and shuts the runtime down (joining its threads; smol: dropping
//! the `SmolRt`). A watchdog fails the bench (exits the process) if the
//! teardown of a server hangs.
//!
//! # The ratios
//! At the end of the run a summary is printed, in three parts, for each
//! workload and worker count (`1w`, `2w`, ...). Read a ratio
//! `spindle time / peer time` (`spindle/tokio`, `spindle/smol`) as: above 1,
//! spindle is slower (1.10: each message takes 10% more wall time with the
//! spindle server).
//! - criterion: the mean time per iteration over criterion's measurement
//!   samples (warm-up calls left out), as messages per second with the
//!   slowest and fastest sample, and the ratios. The servers are measured
//!   one after the other, so on a shared machine a change of background load
//!   between them shows up in these ratios.
//! - paired: then, for each workload and worker count criterion ran with all
//!   three servers, the three are started again side by side (the idle ones
//!   sleep), and `ROUNDS` rounds are run, each one iteration of every server,
//!   in an order that rotates from round to round (spindle, tokio, smol;
//!   then tokio, smol, spindle; then smol, spindle, tokio), so each server
//!   takes each place equally often. Printed: messages per second of each
//!   over the whole run, and for each peer the ratio of the total times and
//!   the median, lowest and highest ratio of the single rounds. Load that
//!   drifts slowly hits all three alike here; the spread of the round ratios
//!   shows how noisy the machine was.
//! - CPU time per message, from the paired run: the CPU time of each
//!   server's threads (the kernel's count per thread, in
//!   `/proc/self/task/*/schedstat`, found by thread name: `spindle-server`,
//!   `tokio-server`, smol's `smol-worker-*` plus async-io's `async-io`
//!   thread, whose own part is also shown) over the whole paired run, and
//!   the CPU time of the client thread during each server's iterations, per
//!   message, and the share of the servers' time spent in user mode (the
//!   rest is the kernel's). Because the client thread is the bottleneck
//!   (with 2 workers, about 100% of a core in a profile, with the two server
//!   workers near 45% each), wall time shows a difference between the
//!   servers only diluted; their CPU per message shows it directly.
//!
//! In test mode all three parts are printed too but are tiny runs, not a
//! measurement. A full run takes about 4 minutes on 2 cores.
//!
//! `cargo bench --bench net -- --test` runs every workload once.

use async_io::Async;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use futures_lite::future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{smol_spawn, test_mode, worker_counts, SmolRt};

/// The servers' threads, by name prefix (as the kernel keeps names: at most
/// 15 bytes), by which their CPU time is found.
const SPINDLE_THREADS: &str = "spindle-server";
const TOKIO_THREADS: &str = "tokio-server";
/// `SmolRt`'s worker threads are `smol-worker-{i}`.
const SMOL_THREADS: &str = "smol-worker";
/// async-io's fallback thread that drives its reactor (part of smol).
const ASYNC_IO_THREAD: &str = "async-io";
/// The size of a message and of the server's read buffer.
const MSG: usize = 512;
/// (connections, round trips per connection per iteration).
const WORKLOADS: [(usize, usize); 2] = [(50, 200), (500, 20)];
/// Round trips per connection per iteration in test mode.
const TRIPS_TEST: usize = 2;
/// Rounds of the paired run, after criterion (each one iteration of every
/// server; a multiple of 3 so each server takes each place equally often).
const ROUNDS: usize = 15;
const ROUNDS_TEST: usize = 1;
/// An iteration, or a server's shutdown, longer than this is a hang.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);
/// Setup and teardown waits (accepting all, closing all, shutting down).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Criterion's settings for each workload.
const WARM_UP: Duration = Duration::from_secs(2);
const MEASUREMENT: Duration = Duration::from_secs(8);
const SAMPLES: usize = 20;

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

/// For waits with no timeout of their own (blocking on a runtime, joining
/// its threads): exits the process, failing the bench, unless what it
/// returns is dropped within `timeout`.
fn watchdog(timeout: Duration, what: String) -> mpsc::Sender<()> {
    let (disarm, armed) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("net-watchdog".to_string())
        .spawn(move || {
            if armed.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
                eprintln!("{what}: not within {timeout:?}, a hang");
                std::process::exit(101);
            }
        })
        .expect("spawn the watchdog thread");
    disarm
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

async fn smol_echo(mut stream: Async<std::net::TcpStream>) -> io::Result<()> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; MSG];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn smol_accept(
    listener: Async<std::net::TcpListener>,
    stats: Arc<ServerStats>,
) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.get_ref().set_nodelay(true)?;
        stats.opened();
        let stats = stats.clone();
        smol_spawn(async move {
            let result = smol_echo(stream).await;
            stats.closed(result.is_ok());
        })
        .detach();
    }
}

/// The servers, by criterion function name; also the index of each in the
/// per-server arrays of the paired run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Spindle = 0,
    Tokio = 1,
    Smol = 2,
}

/// Every server, in the order criterion measures them.
const KINDS: [Kind; 3] = [Kind::Spindle, Kind::Tokio, Kind::Smol];
/// The servers spindle's is compared with.
const PEERS: [Kind; 2] = [Kind::Tokio, Kind::Smol];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Spindle => "spindle",
            Kind::Tokio => "tokio",
            Kind::Smol => "smol",
        }
    }

    /// The name prefixes of the threads whose CPU time is the server's.
    fn threads(self) -> &'static [&'static str] {
        match self {
            Kind::Spindle => &[SPINDLE_THREADS],
            Kind::Tokio => &[TOKIO_THREADS],
            Kind::Smol => &[SMOL_THREADS, ASYNC_IO_THREAD],
        }
    }

    fn start(self, workers: usize) -> Running {
        match self {
            Kind::Spindle => Running::spindle(workers),
            Kind::Tokio => Running::tokio(workers),
            Kind::Smol => Running::smol(workers),
        }
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
    Smol {
        rt: SmolRt,
        accept: async_executor::Task<io::Result<()>>,
    },
}

struct Running {
    server: Server,
    addr: SocketAddr,
    stats: Arc<ServerStats>,
}

impl Running {
    fn spindle(workers: usize) -> Running {
        let rt = spindle::Runtime::builder()
            .worker_threads(workers)
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

    fn tokio(workers: usize) -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
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

    fn smol(workers: usize) -> Running {
        let rt = SmolRt::with_reactor(workers);
        let listener =
            Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).expect("smol: bind");
        let addr = listener.get_ref().local_addr().expect("smol: local_addr");
        let stats = Arc::new(ServerStats::default());
        let accept = rt.spawn(smol_accept(listener, stats.clone()));
        Running {
            server: Server::Smol { rt, accept },
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
        let _watchdog = watchdog(HANG_TIMEOUT, format!("{name}: shutting the server down"));
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
            Server::Smol { rt, accept } => {
                // `None`: cancelled (its future, and the listener, dropped).
                let ended = future::block_on(accept.cancel());
                assert!(
                    ended.is_none(),
                    "smol: the accept loop ended with {ended:?} instead of being cancelled"
                );
                assert_refused(self.addr, name);
                // Closes the executor's stop channel and joins its threads.
                drop(rt);
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Starts `kind`'s server with `workers` workers, connects `conns` clients
/// to it, and waits until the server has accepted them all.
fn start_with_clients(kind: Kind, workers: usize, conns: usize) -> (Running, Clients) {
    let server = kind.start(workers);
    let clients = Clients::connect(server.addr, conns);
    let stats = server.stats.clone();
    wait_until(
        SETTLE_TIMEOUT,
        &format!("{}/{workers}: accepting {conns} connections", kind.name()),
        || stats.accepted.load(Acquire) == conns,
    );
    (server, clients)
}

// ---------------------------------------------------------------------------
// Timings for the summary.

struct Record {
    group: String,
    kind: Kind,
    workers: usize,
    msgs_per_iter: u64,
    /// (start of the call, iterations, elapsed) for each call criterion made.
    calls: Vec<(Instant, u64, Duration)>,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

fn record(
    group: &str,
    kind: Kind,
    workers: usize,
    msgs_per_iter: u64,
    call: (Instant, u64, Duration),
) {
    let mut records = RECORDS.lock().unwrap();
    match records
        .iter_mut()
        .find(|r| r.group == group && r.kind == kind && r.workers == workers)
    {
        Some(r) => r.calls.push(call),
        None => records.push(Record {
            group: group.to_string(),
            kind,
            workers,
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

/// Whether criterion measured every server of `group` at `workers` workers
/// (none filtered out, not `--list`).
fn measured_all(group: &str, workers: usize) -> bool {
    let records = RECORDS.lock().unwrap();
    KINDS.iter().all(|&kind| {
        records
            .iter()
            .any(|r| r.group == group && r.kind == kind && r.workers == workers)
    })
}

/// The paired run of one workload at one worker count: the three servers
/// up at once, one iteration of each per round, in rotating order.
struct Paired {
    group: String,
    workers: usize,
    msgs_per_iter: u64,
    rounds: usize,
    /// Per server (indexed by `Kind`): wall time of its iterations.
    wall: [Duration; 3],
    /// Per server: CPU time of its threads over the paired run.
    server_cpu: [ThreadsCpu; 3],
    /// The part of smol's that async-io's own `async-io` thread used.
    async_io_cpu: Duration,
    /// Per server: CPU time of the client thread during its iterations.
    client_cpu: [Duration; 3],
    /// Per peer (as in `PEERS`): spindle time / peer time of each round,
    /// sorted.
    ratios: [Vec<f64>; 2],
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
/// with one of `prefixes` (threads that have exited are not counted). Zero
/// where `/proc` cannot be read.
fn threads_cpu(prefixes: &[&str]) -> ThreadsCpu {
    let mut cpu = ThreadsCpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let named = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|name| prefixes.iter().any(|prefix| name.starts_with(prefix)));
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

fn run_paired(conns: usize, trips: usize, workers: usize, rounds: usize) -> Paired {
    // Indexed by `Kind`, as `KINDS` is.
    let mut servers: Vec<(Running, Clients)> = KINDS
        .iter()
        .map(|&kind| start_with_clients(kind, workers, conns))
        .collect();
    // One unrecorded iteration each, as a warm-up.
    for (_, clients) in &mut servers {
        clients.run(trips);
    }
    // (wall time, client thread CPU time) of one iteration.
    let timed = |clients: &mut Clients| {
        let (start, cpu) = (Instant::now(), this_thread_cpu());
        clients.run(trips);
        (start.elapsed(), this_thread_cpu().saturating_sub(cpu))
    };
    let mut result = Paired {
        group: group_name(conns),
        workers,
        msgs_per_iter: (conns * trips) as u64,
        rounds,
        wall: [Duration::ZERO; 3],
        server_cpu: [ThreadsCpu::default(); 3],
        async_io_cpu: Duration::ZERO,
        client_cpu: [Duration::ZERO; 3],
        ratios: [Vec::with_capacity(rounds), Vec::with_capacity(rounds)],
    };
    let servers_cpu = || KINDS.map(|kind| threads_cpu(kind.threads()));
    let async_io_before = threads_cpu(&[ASYNC_IO_THREAD]);
    let before = servers_cpu();
    for round in 0..rounds {
        // Round 0: spindle, tokio, smol; round 1: tokio, smol, spindle; ...
        let mut wall = [Duration::ZERO; 3];
        for place in 0..KINDS.len() {
            let server = (round + place) % KINDS.len();
            let (time, client_cpu) = timed(&mut servers[server].1);
            wall[server] = time;
            result.wall[server] += time;
            result.client_cpu[server] += client_cpu;
        }
        for (ratios, peer) in result.ratios.iter_mut().zip(PEERS) {
            let spindle = wall[Kind::Spindle as usize];
            ratios.push(spindle.as_secs_f64() / wall[peer as usize].as_secs_f64());
        }
    }
    let after = servers_cpu();
    result.async_io_cpu = threads_cpu(&[ASYNC_IO_THREAD]).since(async_io_before).total;
    for kind in KINDS {
        let i = kind as usize;
        result.server_cpu[i] = after[i].since(before[i]);
    }
    for ratios in &mut result.ratios {
        ratios.sort_by(f64::total_cmp);
    }
    let (servers, clients): (Vec<Running>, Vec<Clients>) = servers.into_iter().unzip();
    for clients in clients {
        clients.close();
    }
    for (server, kind) in servers.into_iter().zip(KINDS) {
        server.shut_down(&format!("{}/{workers}", kind.name()));
    }
    result
}

/// `spindle/<peer> <ratio>` for each peer with a time, from times (seconds)
/// indexed by `Kind`.
fn ratios_to_peers(times: [Option<f64>; 3]) -> String {
    let Some(spindle) = times[Kind::Spindle as usize] else {
        return String::new();
    };
    PEERS
        .iter()
        .filter_map(|&peer| {
            let peer_time = times[peer as usize]?;
            Some(format!(
                "spindle/{} {:.3}",
                peer.name(),
                spindle / peer_time
            ))
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn print_summary(paired: &[Paired]) {
    let records = RECORDS.lock().unwrap();
    if records.is_empty() {
        return;
    }
    let counts: Vec<String> = worker_counts().iter().map(|w| w.to_string()).collect();
    println!();
    println!(
        "tcp echo summary: servers spindle, tokio, smol with {} worker threads (Nw below, the \
         last part of the criterion ids), clients on one separate thread; msgs/s = 512-byte \
         round trips per second; ratio = spindle time / peer time (above 1: spindle slower){}",
        counts.join(" and "),
        if test_mode() {
            "\n  TEST MODE: tiny runs, not a measurement"
        } else {
            ""
        }
    );
    println!(
        "criterion (mean over the measurement samples [slowest .. fastest sample]; \
         the servers measured one after the other):"
    );
    let mut runs: Vec<(&str, usize)> = records
        .iter()
        .map(|r| (r.group.as_str(), r.workers))
        .collect();
    runs.dedup();
    for (group, workers) in runs {
        let label = format!("{group} {workers}w");
        let mut times = [None; 3];
        for r in records
            .iter()
            .filter(|r| r.group == group && r.workers == workers)
        {
            let (mean, slowest, fastest) = per_iteration(r);
            let rate = |secs: f64| r.msgs_per_iter as f64 / secs;
            println!(
                "  {label:<20} {:<8} {:>7.0} msgs/s [{:.0} .. {:.0}]",
                r.kind.name(),
                rate(mean),
                rate(slowest),
                rate(fastest)
            );
            times[r.kind as usize] = Some(mean);
        }
        let ratios = ratios_to_peers(times);
        if !ratios.is_empty() {
            println!("  {label:<20} ratio    {ratios}");
        }
    }
    if paired.is_empty() {
        return;
    }
    println!(
        "paired (the three servers up at once, each round one iteration of each in rotating \
         order, {} rounds; robust to load that drifts during the run):",
        paired[0].rounds
    );
    for p in paired {
        let label = format!("{} {}w", p.group, p.workers);
        let msgs = p.msgs_per_iter as f64 * p.rounds as f64;
        let rates: Vec<String> = KINDS
            .iter()
            .map(|&kind| {
                let rate = msgs / p.wall[kind as usize].as_secs_f64();
                format!("{} {rate:>7.0} msgs/s", kind.name())
            })
            .collect();
        println!("  {label:<20} {}", rates.join("  "));
        let ratios: Vec<String> = PEERS
            .iter()
            .zip(&p.ratios)
            .map(|(&peer, ratios)| {
                let total = p.wall[Kind::Spindle as usize].as_secs_f64()
                    / p.wall[peer as usize].as_secs_f64();
                format!(
                    "spindle/{}: total {total:.3}, median round {:.3} [{:.3} .. {:.3}]",
                    peer.name(),
                    ratios[ratios.len() / 2],
                    ratios[0],
                    ratios[ratios.len() - 1],
                )
            })
            .collect();
        println!("  {label:<20} ratio    {}", ratios.join("  "));
    }
    println!(
        "CPU time per message in the paired run (µs; server = its worker threads, smol's \
         with async-io's `async-io` thread, whose part is in brackets; client = the client \
         thread during that server's iterations):"
    );
    for p in paired {
        let label = format!("{} {}w", p.group, p.workers);
        let msgs = p.msgs_per_iter as f64 * p.rounds as f64;
        let per_msg = |cpu: Duration| cpu.as_secs_f64() * 1e6 / msgs;
        let servers: Vec<String> = KINDS
            .iter()
            .map(|&kind| {
                let cpu = p.server_cpu[kind as usize];
                let async_io = if kind == Kind::Smol {
                    format!(" [async-io {:.2}]", per_msg(p.async_io_cpu))
                } else {
                    String::new()
                };
                format!(
                    "{} {:.2} ({:.0}% user){async_io}",
                    kind.name(),
                    per_msg(cpu.total),
                    cpu.user_share() * 100.0
                )
            })
            .collect();
        let ratios = ratios_to_peers(p.server_cpu.map(|cpu| Some(cpu.total.as_secs_f64())));
        println!(
            "  {label:<20} server: {}  ratio {ratios}",
            servers.join("  ")
        );
        let clients: Vec<String> = KINDS
            .iter()
            .map(|&kind| {
                let cpu = per_msg(p.client_cpu[kind as usize]);
                format!("with {} {cpu:.2}", kind.name())
            })
            .collect();
        println!("  {label:<20} client: {}", clients.join("  "));
    }
}

// ---------------------------------------------------------------------------
// The benchmark.

fn bench_server(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    kind: Kind,
    workers: usize,
    conns: usize,
    trips: usize,
) {
    let msgs = (conns * trips) as u64;
    // Started on criterion's first call of the routine, which it makes
    // only for an id its filter lets through (and never with `--list`).
    let mut running: Option<(Running, Clients)> = None;
    group.bench_function(BenchmarkId::new(kind.name(), workers), |b| {
        let (_, clients) = running.get_or_insert_with(|| start_with_clients(kind, workers, conns));
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                clients.run(trips);
            }
            let elapsed = start.elapsed();
            record(group_name, kind, workers, msgs, (start, iters, elapsed));
            elapsed
        })
    });
    if let Some((server, clients)) = running {
        clients.close();
        server.shut_down(&format!("{}/{workers}", kind.name()));
    }
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
        for workers in worker_counts() {
            for kind in KINDS {
                bench_server(&mut group, &name, kind, workers, conns, trips);
            }
        }
        group.finish();
    }
}

// criterion_main!, then the paired run and the summary.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    tcp_echo(&mut criterion);
    criterion.final_summary();
    let rounds = if test_mode() { ROUNDS_TEST } else { ROUNDS };
    let mut paired = Vec::new();
    for (conns, trips) in WORKLOADS {
        for workers in worker_counts() {
            if measured_all(&group_name(conns), workers) {
                paired.push(run_paired(conns, trips_for(trips), workers, rounds));
            }
        }
    }
    print_summary(&paired);
}
