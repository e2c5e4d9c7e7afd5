//! Memory per parked task: spindle against tokio's multi-thread runtime and
//! smol's executor (`async-executor`), in one run.
//!
//! # What is measured
//! N tasks (1,000,000; 10,000 in test mode) are spawned from the main
//! thread, each of which parks forever on a shared signal that is never
//! fired while measuring. Once every task has been polled once and returned
//! `Pending` (a wrapper around its wait counts the first `Pending`, so the
//! task is registered with the signal by then), this bench reads:
//! - heap bytes per parked task: live heap bytes now minus live heap bytes
//!   before the first spawn (with the runtime already built and warmed up),
//!   divided by N. The heap is counted by the `#[global_allocator]` of this
//!   bench, which wraps `std::alloc::System` and keeps the live bytes and
//!   live allocations in atomics; the live allocations per task are shown
//!   too, and, for the allocations made during the spawns, the sizes that
//!   recur at least once per two tasks (the task cell, a waiter node, ...);
//! - resident bytes per parked task: the same difference of the resident
//!   set (`/proc/self/statm`, in pages). It includes what the heap figure
//!   leaves out: the allocator's headers and rounding, and whatever the
//!   runtime maps itself;
//! - the time to spawn the N tasks and see them all parked (informative),
//!   and the time to wake them all and see them finish.
//!
//! Then the signal wakes every task, each finishes, the runtime is dropped,
//! and the child asserts that the live heap is back where it was before
//! anything was made (within `LEFTOVER_TOLERANCE`): the runtime freed every
//! task and its bookkeeping. A failure there fails the bench.
//!
//! Every measurement runs in a fresh child process (this bench binary
//! re-executed with `SPINDLE_MEMORY_CHILD=<runtime>:<workers>:<wait>:<N>`;
//! the child prints one `MEM ...` line that the parent parses), so the
//! resident set of one cannot inflate or hide that of another.
//!
//! Runtimes, each with 1 worker thread and with all cores
//! (`available_parallelism`):
//! - `spindle`: `Runtime::spawn` of detached tasks;
//! - `tokio`: `Builder::new_multi_thread().worker_threads(w)`, `spawn`
//!   with the `JoinHandle` dropped;
//! - `smol`: one `async_executor::Executor` run by `w` scoped threads
//!   (`futures_lite::future::block_on(ex.run(stop))`), `spawn(..).detach()`.
//!
//! Two kinds of wait, each measured for every runtime:
//! - `native`: the cheapest "wait until told" of each ecosystem, with the
//!   same semantics (stays `Pending`, woken once for all at the end):
//!   spindle `Event::wait` (woken by `Event::set`), tokio
//!   `Notify::notified` (woken by `notify_waiters`; its waiter node is
//!   intrusive, inside the future, no allocation), smol `async_channel`
//!   `Receiver::recv` on a channel that never gets a message (woken by
//!   `Sender::close`; event-listener allocates a listener per waiter);
//! - `gate`: one signal written here, the same for all three runtimes: a
//!   flag plus a `Vec` of wakers whose capacity for N wakers is reserved
//!   and touched before the baseline, so a parked task costs the signal
//!   nothing measurable and the figures are the runtime's own cost per task
//!   (the task allocation with its future, the waker, the runtime's
//!   per-task bookkeeping).
//!
//! The spawned future is as small as it can be: an `async move` block that
//! holds an `Arc` of the signal and awaits the wait wrapped in `Parked` (the
//! wait plus a flag), 40 to 88 bytes; its size is printed. Heavier task
//! bodies add their own size to every runtime's task allocation alike.
//!
//! The summary at the end prints, per row, heap B/task, live
//! allocations/task, RSS B/task, the size of the spawned future, and the
//! times; then the ratios spindle/tokio and spindle/smol, and whether
//! spindle meets its target of at most 200 heap bytes per parked task (with
//! its native wait; printed, not enforced).
//!
//! The memory of a live C task (a fiber with its stack) is measured by
//! `benches/fibers.rs` (`live fibers`), not here.
//!
//! In test mode (`--test`, or not run by `cargo bench`, as in
//! `cargo test --benches`, which passes no arguments) N is 10,000 and the
//! whole run takes well under a second; the leftover check still runs.
//!
//! `cargo bench --bench memory` runs it all (12 children of 1,000,000 tasks,
//! about 10 s on a 2-core machine, 0.5 GB resident at most);
//! `cargo bench --bench memory -- --test` runs the quick version.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The counting allocator.

/// Live heap bytes (signed: a thread may free what another counted first).
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Live heap allocations.
static LIVE_ALLOCS: AtomicIsize = AtomicIsize::new(0);
/// Whether allocations are being counted by size (during the spawns).
static HISTOGRAM_ON: AtomicBool = AtomicBool::new(false);
/// Allocation granularity of the histogram, and its number of buckets:
/// sizes up to `HIST_STEP * HIST_BUCKETS` bytes, rounded up to the step.
const HIST_STEP: usize = 8;
const HIST_BUCKETS: usize = 512;
/// Allocations counted by size while `HISTOGRAM_ON`; the last bucket takes
/// everything larger.
static HISTOGRAM: [AtomicUsize; HIST_BUCKETS + 1] =
    [const { AtomicUsize::new(0) }; HIST_BUCKETS + 1];

struct Counting;

impl Counting {
    fn allocated(size: usize) {
        LIVE_BYTES.fetch_add(size as isize, Relaxed);
        LIVE_ALLOCS.fetch_add(1, Relaxed);
        if HISTOGRAM_ON.load(Relaxed) {
            let bucket = size.div_ceil(HIST_STEP).min(HIST_BUCKETS);
            HISTOGRAM[bucket].fetch_add(1, Relaxed);
        }
    }

    fn freed(size: usize) {
        LIVE_BYTES.fetch_sub(size as isize, Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// only bookkeeping on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Counting::allocated(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Counting::allocated(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) };
        Counting::freed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Relaxed)
}

fn live_allocs() -> isize {
    LIVE_ALLOCS.load(Relaxed)
}

// ---------------------------------------------------------------------------
// Settings

/// Tasks per run.
const N_FULL: usize = 1_000_000;
/// Tasks per run in test mode.
const N_TEST: usize = 10_000;
/// The environment variable that makes this binary a measuring child.
const CHILD_ENV: &str = "SPINDLE_MEMORY_CHILD";
/// How far above the first baseline the live heap may stay once everything
/// is dropped (thread-locals of exited threads, lazily made statics). A
/// task not freed costs 100 bytes or more, so even at N = 10,000 one lost
/// byte in every task would show well above this.
const LEFTOVER_TOLERANCE: isize = 64 * 1024;
/// Parking or finishing that takes longer than this is a hang: the child
/// fails.
const HANG_TIMEOUT: Duration = Duration::from_secs(120);
/// spindle's target: heap bytes per parked task, at most.
const GOAL_BYTES_PER_TASK: f64 = 200.0;

/// Whether the bench runs in test mode: `--test`, or not run by `cargo bench`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

fn workers() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Resident bytes of this process (the second field of /proc/self/statm,
/// in pages).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

// ---------------------------------------------------------------------------
// The parked tasks.

/// Tasks whose wait has returned `Pending` once.
static PARKED: AtomicUsize = AtomicUsize::new(0);
/// Tasks that got past their wait.
static DONE: AtomicUsize = AtomicUsize::new(0);

/// Wraps a wait: counts in `PARKED` the first time it returns `Pending` (by
/// then it is registered with its signal) and in `DONE` when it is ready.
/// A plain struct (the wait plus a flag) rather than an `async fn`, so it
/// adds next to nothing to the size of the task's future.
fn parked<F: Future>(wait: F) -> Parked<F> {
    Parked {
        wait,
        counted: false,
    }
}

struct Parked<F> {
    wait: F,
    counted: bool,
}

impl<F: Future> Future for Parked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `wait` is structurally pinned: it is never moved out of
        // `self`, and `Parked` has no `Drop` and is `Unpin` only if `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this` came from a pinned `Parked`.
        let wait = unsafe { Pin::new_unchecked(&mut this.wait) };
        let poll = wait.poll(cx);
        match poll {
            Poll::Pending if !this.counted => {
                this.counted = true;
                PARKED.fetch_add(1, Release);
            }
            Poll::Ready(_) => {
                DONE.fetch_add(1, Release);
            }
            Poll::Pending => {}
        }
        poll
    }
}

/// The runtime-neutral signal: a flag and the wakers of its waiters, in a
/// `Vec` whose capacity is reserved (and its pages touched) up front.
struct Gate {
    open: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Gate {
    fn new(capacity: usize) -> Gate {
        let mut wakers = vec![Waker::noop().clone(); capacity];
        wakers.clear();
        Gate {
            open: AtomicBool::new(false),
            wakers: Mutex::new(wakers),
        }
    }

    /// Opens the gate and wakes every waiter. The wakers are woken under the
    /// lock (draining in place keeps the capacity, so nothing is allocated
    /// or freed); a woken waiter sees the flag without taking the lock.
    fn open(&self) {
        self.open.store(true, Release);
        let mut wakers = self.wakers.lock().unwrap();
        for waker in wakers.drain(..) {
            waker.wake();
        }
    }

    /// Pending until the gate opens.
    fn wait(&self) -> GateWait<'_> {
        GateWait {
            gate: self,
            registered: false,
        }
    }
}

/// The future of [`Gate::wait`]. The waker is stored once: the three
/// runtimes give a task the same waker on every poll.
struct GateWait<'a> {
    gate: &'a Gate,
    registered: bool,
}

impl Future for GateWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.gate.open.load(Acquire) {
            return Poll::Ready(());
        }
        if !self.registered {
            let mut wakers = self.gate.wakers.lock().unwrap();
            if self.gate.open.load(Acquire) {
                return Poll::Ready(());
            }
            wakers.push(cx.waker().clone());
            drop(wakers);
            self.registered = true;
        }
        Poll::Pending
    }
}

/// Waits until `count` is at least `n`, or panics.
fn wait_for(count: &AtomicUsize, n: usize, what: &str) {
    let deadline = Instant::now() + HANG_TIMEOUT;
    while count.load(Acquire) < n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} after {HANG_TIMEOUT:?}",
            count.load(Acquire)
        );
        thread::sleep(Duration::from_micros(500));
    }
}

// ---------------------------------------------------------------------------
// One measurement (in a child process).

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rt {
    Spindle,
    Tokio,
    Smol,
}

impl Rt {
    const ALL: [Rt; 3] = [Rt::Spindle, Rt::Tokio, Rt::Smol];

    fn name(self) -> &'static str {
        match self {
            Rt::Spindle => "spindle",
            Rt::Tokio => "tokio",
            Rt::Smol => "smol",
        }
    }

    fn parse(s: &str) -> Option<Rt> {
        Rt::ALL.into_iter().find(|r| r.name() == s)
    }

    /// What the native wait is, for the table.
    fn native_wait(self) -> &'static str {
        match self {
            Rt::Spindle => "Event::wait",
            Rt::Tokio => "Notify::notified",
            Rt::Smol => "async_channel recv",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wait {
    Native,
    Gate,
}

impl Wait {
    const ALL: [Wait; 2] = [Wait::Native, Wait::Gate];

    fn name(self) -> &'static str {
        match self {
            Wait::Native => "native",
            Wait::Gate => "gate",
        }
    }

    fn parse(s: &str) -> Option<Wait> {
        Wait::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// What one child measured.
#[derive(Default, Debug, Clone)]
struct Sample {
    rt: String,
    workers: usize,
    wait: String,
    n: usize,
    /// Live heap before anything was made.
    heap_start: isize,
    /// Live heap and allocations with the runtime built, before the spawns.
    heap_before: isize,
    allocs_before: isize,
    rss_before: usize,
    /// The same with all N parked.
    heap_after: isize,
    allocs_after: isize,
    rss_after: usize,
    /// Live heap after everything was dropped.
    heap_end: isize,
    /// Size of one spawned future (before its first poll).
    future_size: usize,
    spawn_ns: u128,
    finish_ns: u128,
    /// Allocation sizes made at least N/2 times during the spawns:
    /// `size x count` joined by `,` (sizes rounded up to `HIST_STEP`).
    sizes: String,
}

impl Sample {
    fn line(&self) -> String {
        format!(
            "MEM rt={} workers={} wait={} n={} heap_start={} heap_before={} allocs_before={} \
             rss_before={} heap_after={} allocs_after={} rss_after={} heap_end={} \
             future_size={} spawn_ns={} finish_ns={} sizes={}",
            self.rt,
            self.workers,
            self.wait,
            self.n,
            self.heap_start,
            self.heap_before,
            self.allocs_before,
            self.rss_before,
            self.heap_after,
            self.allocs_after,
            self.rss_after,
            self.heap_end,
            self.future_size,
            self.spawn_ns,
            self.finish_ns,
            if self.sizes.is_empty() {
                "-"
            } else {
                &self.sizes
            },
        )
    }

    fn parse(line: &str) -> Option<Sample> {
        let rest = line.strip_prefix("MEM ")?;
        let mut s = Sample::default();
        for field in rest.split(' ') {
            let (key, value) = field.split_once('=')?;
            let i = || value.parse::<isize>().unwrap_or(0);
            let u = || value.parse::<usize>().unwrap_or(0);
            match key {
                "rt" => s.rt = value.to_string(),
                "workers" => s.workers = u(),
                "wait" => s.wait = value.to_string(),
                "n" => s.n = u(),
                "heap_start" => s.heap_start = i(),
                "heap_before" => s.heap_before = i(),
                "allocs_before" => s.allocs_before = i(),
                "rss_before" => s.rss_before = u(),
                "heap_after" => s.heap_after = i(),
                "allocs_after" => s.allocs_after = i(),
                "rss_after" => s.rss_after = u(),
                "heap_end" => s.heap_end = i(),
                "future_size" => s.future_size = u(),
                "spawn_ns" => s.spawn_ns = value.parse().unwrap_or(0),
                "finish_ns" => s.finish_ns = value.parse().unwrap_or(0),
                "sizes" if value != "-" => s.sizes = value.to_string(),
                _ => {}
            }
        }
        Some(s)
    }

    fn heap_per_task(&self) -> f64 {
        (self.heap_after - self.heap_before) as f64 / self.n.max(1) as f64
    }

    fn allocs_per_task(&self) -> f64 {
        (self.allocs_after - self.allocs_before) as f64 / self.n.max(1) as f64
    }

    fn rss_per_task(&self) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / self.n.max(1) as f64
    }

    fn leftover(&self) -> isize {
        self.heap_end - self.heap_start
    }
}

/// The measuring steps around a runtime's own code, in order: `start`
/// (nothing made yet), `ready` (runtime built and warmed up), `spawning`
/// ... `parked` (all N parked), `woken` (all N past their wait) and `end`
/// (runtime and signal dropped).
struct Probe {
    s: Sample,
    spawn_start: Option<Instant>,
    parked_at: Option<Instant>,
}

impl Probe {
    fn start(rt: Rt, workers: usize, wait: Wait, n: usize) -> Probe {
        Probe {
            s: Sample {
                rt: rt.name().to_string(),
                workers,
                wait: wait.name().to_string(),
                n,
                heap_start: live_bytes(),
                ..Sample::default()
            },
            spawn_start: None,
            parked_at: None,
        }
    }

    fn future_size<F>(&mut self, future: &F) {
        self.s.future_size = std::mem::size_of_val(future);
    }

    fn ready(&mut self) {
        self.s.rss_before = rss();
        self.s.heap_before = live_bytes();
        self.s.allocs_before = live_allocs();
        HISTOGRAM_ON.store(true, Relaxed);
        self.spawn_start = Some(Instant::now());
    }

    fn parked(&mut self) {
        wait_for(&PARKED, self.s.n, "tasks parked");
        let now = Instant::now();
        HISTOGRAM_ON.store(false, Relaxed);
        self.s.spawn_ns = (now - self.spawn_start.unwrap()).as_nanos();
        self.s.heap_after = live_bytes();
        self.s.allocs_after = live_allocs();
        self.s.rss_after = rss();
        let threshold = self.s.n.div_ceil(2).max(1);
        self.s.sizes = HISTOGRAM
            .iter()
            .enumerate()
            .filter(|(_, c)| c.load(Relaxed) >= threshold)
            .map(|(bucket, c)| {
                let size = if bucket == HIST_BUCKETS {
                    format!(">{}", HIST_STEP * HIST_BUCKETS)
                } else {
                    (bucket * HIST_STEP).to_string()
                };
                format!("{size}x{}", c.load(Relaxed))
            })
            .collect::<Vec<_>>()
            .join(",");
        // The clock for waking starts once the reading is done.
        self.parked_at = Some(Instant::now());
    }

    fn woken(&mut self) {
        wait_for(&DONE, self.s.n, "tasks finished");
        self.s.finish_ns = self.parked_at.unwrap().elapsed().as_nanos();
    }

    /// Reads the live heap once everything is dropped: it must come back to
    /// where it started. Exiting threads may still be freeing their
    /// thread-locals for a moment, hence the retries.
    fn end(mut self) -> Sample {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            self.s.heap_end = live_bytes();
            if self.s.leftover() <= LEFTOVER_TOLERANCE || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.s
    }
}

fn run_spindle(p: &mut Probe, workers: usize, wait: Wait) {
    let n = p.s.n;
    let event = Arc::new(spindle::Event::new());
    let gate = Arc::new(Gate::new(if wait == Wait::Gate { n } else { 0 }));
    let rt = spindle::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("build the spindle runtime");
    rt.block_on(async { spindle::Ok(()) }).expect("warm-up");
    let spindle_native = |event: Arc<spindle::Event>| async move { parked(event.wait()).await };
    let spindle_gate = |gate: Arc<Gate>| async move {
        parked(gate.wait()).await;
        spindle::Ok(())
    };
    match wait {
        Wait::Native => p.future_size(&spindle_native(event.clone())),
        Wait::Gate => p.future_size(&spindle_gate(gate.clone())),
    }
    p.ready();
    for _ in 0..n {
        match wait {
            Wait::Native => drop(rt.spawn(spindle_native(event.clone()))),
            Wait::Gate => drop(rt.spawn(spindle_gate(gate.clone()))),
        }
    }
    p.parked();
    match wait {
        Wait::Native => event.set(),
        Wait::Gate => gate.open(),
    }
    p.woken();
    drop(rt);
    drop((event, gate));
}

fn run_tokio(p: &mut Probe, workers: usize, wait: Wait) {
    let n = p.s.n;
    let notify = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(Gate::new(if wait == Wait::Gate { n } else { 0 }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("build the tokio runtime");
    rt.block_on(async { rt.spawn(async {}).await.expect("warm-up") });
    let tokio_native = |notify: Arc<tokio::sync::Notify>| async move {
        parked(notify.notified()).await;
    };
    let tokio_gate = |gate: Arc<Gate>| async move { parked(gate.wait()).await };
    match wait {
        Wait::Native => p.future_size(&tokio_native(notify.clone())),
        Wait::Gate => p.future_size(&tokio_gate(gate.clone())),
    }
    p.ready();
    for _ in 0..n {
        match wait {
            Wait::Native => drop(rt.spawn(tokio_native(notify.clone()))),
            Wait::Gate => drop(rt.spawn(tokio_gate(gate.clone()))),
        }
    }
    p.parked();
    match wait {
        Wait::Native => notify.notify_waiters(),
        Wait::Gate => gate.open(),
    }
    p.woken();
    drop(rt);
    drop((notify, gate));
}

fn run_smol(p: &mut Probe, workers: usize, wait: Wait) {
    let n = p.s.n;
    let (tx, rx) = async_channel::unbounded::<()>();
    let gate = Arc::new(Gate::new(if wait == Wait::Gate { n } else { 0 }));
    let (stop_tx, stop_rx) = async_channel::unbounded::<()>();
    let ex = async_executor::Executor::new();
    // The channel never gets a message: it is closed at the end, which
    // wakes every receiver.
    let smol_native = |rx: async_channel::Receiver<()>| async move {
        let _ = parked(rx.recv()).await;
    };
    let smol_gate = |gate: Arc<Gate>| async move { parked(gate.wait()).await };
    thread::scope(|scope| {
        for _ in 0..workers {
            let (ex, stop_rx) = (&ex, stop_rx.clone());
            scope.spawn(move || {
                let _ = futures_lite::future::block_on(ex.run(stop_rx.recv()));
            });
        }
        let (warm_tx, warm_rx) = std::sync::mpsc::channel();
        ex.spawn(async move { warm_tx.send(()).unwrap() }).detach();
        warm_rx.recv_timeout(HANG_TIMEOUT).expect("warm-up");
        match wait {
            Wait::Native => p.future_size(&smol_native(rx.clone())),
            Wait::Gate => p.future_size(&smol_gate(gate.clone())),
        }
        p.ready();
        for _ in 0..n {
            match wait {
                Wait::Native => ex.spawn(smol_native(rx.clone())).detach(),
                Wait::Gate => ex.spawn(smol_gate(gate.clone())).detach(),
            }
        }
        p.parked();
        match wait {
            Wait::Native => {
                tx.close();
            }
            Wait::Gate => gate.open(),
        }
        p.woken();
        stop_tx.close();
    });
    drop(ex);
    drop((tx, rx, gate, stop_rx, stop_tx));
}

/// The child: one measurement, printed as one `MEM` line.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let [rt, workers, wait, n] = parts[..] else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let rt = Rt::parse(rt).expect("runtime name");
    let wait = Wait::parse(wait).expect("wait name");
    let workers: usize = workers.parse().expect("worker count");
    let n: usize = n.parse().expect("task count");
    let mut probe = Probe::start(rt, workers, wait, n);
    match rt {
        Rt::Spindle => run_spindle(&mut probe, workers, wait),
        Rt::Tokio => run_tokio(&mut probe, workers, wait),
        Rt::Smol => run_smol(&mut probe, workers, wait),
    }
    let sample = probe.end();
    println!("{}", sample.line());
    assert!(
        sample.leftover() <= LEFTOVER_TOLERANCE,
        "{} ({} workers, {} wait): {} bytes still live after the runtime and all {} tasks \
         were dropped (tolerance {LEFTOVER_TOLERANCE})",
        rt.name(),
        workers,
        wait.name(),
        sample.leftover(),
        n
    );
}

// ---------------------------------------------------------------------------
// The parent: one child per row, then the summary.

fn run_child(rt: Rt, workers: usize, wait: Wait, n: usize) -> Result<Sample, String> {
    let spec = format!("{}:{}:{}:{}", rt.name(), workers, wait.name(), n);
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let output = Command::new(exe)
        .env(CHILD_ENV, &spec)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{spec}: cannot run the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let sample = stdout.lines().find_map(Sample::parse);
    match (output.status.success(), sample) {
        (true, Some(sample)) => Ok(sample),
        (_, sample) => Err(format!(
            "{spec}: child failed ({}){}",
            output.status,
            sample.map_or(String::new(), |s| format!(", measured {}", s.line()))
        )),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".to_string()
    }
}

fn print_summary(samples: &[Sample], n: usize, worker_counts: &[usize], elapsed: Duration) {
    println!();
    println!(
        "memory summary: {n} parked tasks per run, one child process per row, {} cores; \
         whole run {:.1} s",
        workers(),
        elapsed.as_secs_f64()
    );
    println!(
        "{:<8} {:>3}  {:<6} {:<18} {:>9} {:>8} {:>9} {:>7} {:>10} {:>8} {:>9}  sizes allocated per task",
        "runtime",
        "wrk",
        "wait",
        "",
        "heap B/t",
        "allocs/t",
        "RSS B/t",
        "fut B",
        "spawn ms",
        "ns/task",
        "finish ms"
    );
    let find = |rt: Rt, w: usize, wait: Wait| {
        samples
            .iter()
            .find(|s| s.rt == rt.name() && s.workers == w && s.wait == wait.name())
    };
    for &w in worker_counts {
        for wait in Wait::ALL {
            for rt in Rt::ALL {
                let Some(s) = find(rt, w, wait) else {
                    println!("{:<8} {:>3}  {:<6} (failed)", rt.name(), w, wait.name());
                    continue;
                };
                let what = match wait {
                    Wait::Native => rt.native_wait(),
                    Wait::Gate => "Vec<Waker> gate",
                };
                println!(
                    "{:<8} {:>3}  {:<6} {:<18} {:>9.1} {:>8.2} {:>9.1} {:>7} {:>10.1} {:>8.0} {:>9.1}  {}",
                    rt.name(),
                    w,
                    wait.name(),
                    what,
                    s.heap_per_task(),
                    s.allocs_per_task(),
                    s.rss_per_task(),
                    s.future_size,
                    s.spawn_ns as f64 / 1e6,
                    s.spawn_ns as f64 / s.n.max(1) as f64,
                    s.finish_ns as f64 / 1e6,
                    if s.sizes.is_empty() { "-" } else { &s.sizes }
                );
            }
        }
    }
    println!();
    println!("ratios spindle/peer (below 1: spindle uses less)");
    println!(
        "{:>3}  {:<6}  {:>14} {:>14}  {:>14} {:>14}",
        "wrk", "wait", "heap /tokio", "heap /smol", "RSS /tokio", "RSS /smol"
    );
    for &w in worker_counts {
        for wait in Wait::ALL {
            let (Some(sp), Some(tk), Some(sm)) = (
                find(Rt::Spindle, w, wait),
                find(Rt::Tokio, w, wait),
                find(Rt::Smol, w, wait),
            ) else {
                continue;
            };
            println!(
                "{:>3}  {:<6}  {:>14} {:>14}  {:>14} {:>14}",
                w,
                wait.name(),
                ratio(sp.heap_per_task(), tk.heap_per_task()),
                ratio(sp.heap_per_task(), sm.heap_per_task()),
                ratio(sp.rss_per_task(), tk.rss_per_task()),
                ratio(sp.rss_per_task(), sm.rss_per_task()),
            );
        }
    }
    println!();
    let natives: Vec<&Sample> = worker_counts
        .iter()
        .filter_map(|&w| find(Rt::Spindle, w, Wait::Native))
        .collect();
    if !natives.is_empty() {
        let met = natives
            .iter()
            .all(|s| s.heap_per_task() <= GOAL_BYTES_PER_TASK);
        let figures: Vec<String> = natives
            .iter()
            .map(|s| {
                format!(
                    "{:.0} B heap, {:.0} B resident with {} worker(s)",
                    s.heap_per_task(),
                    s.rss_per_task(),
                    s.workers
                )
            })
            .collect();
        println!(
            "goal: spindle <= {GOAL_BYTES_PER_TASK:.0} heap bytes per parked task (Event::wait): \
             {} ({})",
            if met { "met" } else { "NOT met" },
            figures.join("; ")
        );
    }
    println!(
        "every child checked that the live heap came back to its starting point once the \
         runtime and the tasks were dropped (tolerance {LEFTOVER_TOLERANCE} B): leftovers {}",
        samples
            .iter()
            .map(|s| s.leftover().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let start = Instant::now();
    let n = if test_mode() { N_TEST } else { N_FULL };
    let mut worker_counts = vec![1];
    if workers() > 1 {
        worker_counts.push(workers());
    }
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for &w in &worker_counts {
        for wait in Wait::ALL {
            for rt in Rt::ALL {
                match run_child(rt, w, wait, n) {
                    Ok(s) => {
                        println!(
                            "{:<8} {} worker(s), {:<6} wait: {:>7.1} heap B/task, {:>7.1} RSS \
                             B/task, spawn+park {:.1} ms",
                            rt.name(),
                            w,
                            wait.name(),
                            s.heap_per_task(),
                            s.rss_per_task(),
                            s.spawn_ns as f64 / 1e6
                        );
                        samples.push(s);
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failures.push(e);
                    }
                }
            }
        }
    }
    print_summary(&samples, n, &worker_counts, start.elapsed());
    assert!(failures.is_empty(), "failed runs:\n{}", failures.join("\n"));
}
