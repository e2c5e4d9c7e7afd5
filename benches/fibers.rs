//! C fibers: spindle's C tasks (stackful fibers on pooled stacks) against
//! `may`'s stackful coroutines and OS threads (`std::thread`), in one run.
//!
//! Every spindle workload goes through the C ABI exactly as a C program
//! would: `extern "C"` task functions written here, `spindle_runtime_run`,
//! `spindle_spawn`, `spindle_task_join`, `spindle_yield`, `spindle_sleep`
//! (declared below from `include/spindle.h`).
//!
//! - `fiber_switch`: one yield, per yield, from a loop of N yields:
//!   - `spindle_c_yield_pair_1worker`: two C tasks on a one-worker runtime
//!     calling `spindle_yield()` in turn (N in all, with the spawn and join
//!     of the second task): every yield suspends one fiber, goes through
//!     the scheduler and resumes the other. The goal below is judged on it;
//!   - `spindle_c_yield`: a C task calling `spindle_yield()` alone (N
//!     workers). Nothing else is runnable, so each yield goes on in place
//!     (the task is what its worker would run next anyway): the cost of a
//!     yield that finds nothing to yield to, without a fiber switch;
//!   - `spindle_c_yield_1worker`: the same on a one-worker runtime;
//!   - `spindle_rust_yield_now_pair_1worker`, `spindle_rust_yield_now`
//!     (and `_1worker`): the same with Rust tasks awaiting
//!     `spindle::yield_now()` (the scheduler without a fiber: what the
//!     fiber adds is the difference);
//!   - `corosensei_resume_suspend`: a bare corosensei coroutine resumed and
//!     suspending, no scheduler (the floor of a fiber switch pair);
//!   - `may_yield_now`: a `may` coroutine calling `may::coroutine::yield_now()`;
//!   - `thread_pingpong`: two OS threads handing a token back and forth
//!     (park/unpark): one round trip, that is two thread switches.
//! - `fiber_spawn_join`: spawn a trivial task and join it, repeated; per pair:
//!   - `spindle_c_task` / `spindle_c_task_1worker`: from a C task,
//!     `spindle_spawn` of a C function that returns 0, `spindle_task_join`,
//!     `spindle_task_free`;
//!   - `spindle_c_task_eager`: the same on a runtime with eager tasks
//!     (`spindle_options.eager_tasks = 1`, asyncio's eager task factory):
//!     the child runs inside `spindle_spawn` and is done when it returns
//!     (the goal below is for the default, `spindle_c_task`);
//!   - `spindle_rust_task` (and `_1worker`): `spindle::spawn(async {..})
//!     .await` (a task without a fiber: what the fiber adds is the
//!     difference);
//!   - `may_go_join`: from a `may` coroutine, `go!(|| ..)` and `join()`;
//!   - `std_thread`: `std::thread::spawn(|| ..).join()`.
//! - `live fibers` (not criterion: one run of each peer in a child process
//!   of this bench, so each starts from a clean address space): spawn
//!   100,000 tasks that each block in a one-hour sleep, wait until all are
//!   blocked, read the resident set (`/proc/self/statm`) and the number of
//!   memory maps (lines of `/proc/self/maps`; the kernel's default limit is
//!   vm.max_map_count = 65,530), then cancel them all and join them.
//!   Bytes per live fiber = growth of the resident set / live fibers (for
//!   spindle this includes the task, its fiber, its timer and the
//!   `spindle_task` handle kept to cancel it). `may` is expected to stop
//!   near 32,700 (a mapping plus a guard page per stack: its spawn panics,
//!   which is caught and recorded). A Rust thread that cannot map its
//!   stacks aborts the process instead, so the thread peer checks the map
//!   count as it goes and stops 2,048 maps short of the limit (or at the
//!   kernel's thread or pid limit, whichever comes first); that is
//!   recorded too.
//!
//! Worker threads: the machine's available parallelism for every runtime
//! (spindle, `may`), as in the other benches, plus one-worker variants of
//! spindle for the single-thread cost. The goals of the issue are printed
//! next to the results at the end: switch under 10 ns, spawn+join under
//! 200 ns, 100,000 live fibers at default kernel limits, at most 16 KiB
//! resident per live fiber.
//!
//! In test mode (`--test`, or not run by `cargo bench`, as in
//! `cargo test --benches`) each workload runs once, small: few yields and
//! spawns, 2,000 live fibers.
//!
//! `cargo bench --bench fibers` runs it all (about three minutes).

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use std::ffi::{c_char, c_int, c_void};
use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// The library must be linked for the C ABI declared below.
use spindle as _;

// ---------------------------------------------------------------------------
// The C ABI, as include/spindle.h declares it.

/// `spindle_task_fn`.
type TaskFn = unsafe extern "C" fn(arg: *mut c_void, result: *mut *mut c_void) -> c_int;

#[repr(C)]
struct SpindleRuntime {
    _opaque: [u8; 0],
}

#[repr(C)]
struct SpindleTask {
    _opaque: [u8; 0],
}

/// The first version of `spindle_options`; `struct_size` says so (newer
/// fields take their defaults). Filled here, not by `spindle_options_init`,
/// which writes the library's whole, possibly larger, struct.
#[repr(C)]
struct SpindleOptions {
    struct_size: usize,
    workers: u32,
    max_blocking_threads: u32,
    stack_size: usize,
    shutdown_timeout: f64,
    eager_tasks: u32,
}

const SPINDLE_ECANCELED: c_int = -3;

extern "C" {
    fn spindle_runtime_new(options: *const SpindleOptions, out: *mut *mut SpindleRuntime) -> c_int;
    fn spindle_runtime_run(
        runtime: *mut SpindleRuntime,
        main: Option<TaskFn>,
        arg: *mut c_void,
        result: *mut *mut c_void,
    ) -> c_int;
    fn spindle_runtime_free(runtime: *mut SpindleRuntime) -> c_int;
    fn spindle_spawn(
        func: Option<TaskFn>,
        arg: *mut c_void,
        name: *const c_char,
        out: *mut *mut SpindleTask,
    ) -> c_int;
    fn spindle_task_join(task: *const SpindleTask, result: *mut *mut c_void) -> c_int;
    fn spindle_task_cancel(
        task: *const SpindleTask,
        message: *const c_char,
        requested: *mut c_int,
    ) -> c_int;
    fn spindle_task_free(task: *mut SpindleTask) -> c_int;
    fn spindle_sleep(seconds: f64) -> c_int;
    fn spindle_yield() -> c_int;
}

/// A runtime made through the C ABI; freed on drop.
struct CRuntime(*mut SpindleRuntime);

impl CRuntime {
    /// A runtime of `workers` workers; `eager`: its tasks start eagerly
    /// (`spindle_options.eager_tasks`).
    fn new(workers: usize, eager: bool) -> CRuntime {
        let options = SpindleOptions {
            struct_size: std::mem::size_of::<SpindleOptions>(),
            workers: workers as u32,
            max_blocking_threads: 0,
            stack_size: 0,
            shutdown_timeout: -1.0,
            eager_tasks: u32::from(eager),
        };
        let mut rt = ptr::null_mut();
        // SAFETY: valid options and out-pointer.
        let rc = unsafe { spindle_runtime_new(&options, &mut rt) };
        assert_eq!(rc, 0, "spindle_runtime_new");
        CRuntime(rt)
    }

    /// Runs `main(arg)` as the main C task; panics unless it returns 0.
    fn run<T>(&self, main: TaskFn, arg: &mut T, what: &str) {
        // SAFETY: a live runtime; `arg` outlives the call, which blocks
        // until the task has ended.
        let rc = unsafe {
            spindle_runtime_run(self.0, Some(main), (arg as *mut T).cast(), ptr::null_mut())
        };
        assert_eq!(rc, 0, "{what}: the main C task failed");
    }
}

impl Drop for CRuntime {
    fn drop(&mut self) {
        // SAFETY: made by spindle_runtime_new, freed once, from outside.
        unsafe { spindle_runtime_free(self.0) };
    }
}

// ---------------------------------------------------------------------------
// Settings

/// Whether criterion runs in test mode: `--test`, or not run by `cargo bench`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench")
}

fn workers() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// A spindle runtime with `workers` worker threads, for the Rust rows.
fn spindle_rt(workers: usize) -> spindle::Runtime {
    spindle::Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("build the spindle runtime")
}

/// Live fibers per peer (the figure), and in test mode.
const LIVE: usize = 100_000;
const LIVE_TEST: usize = 2_000;
/// The kernel's default vm.max_map_count.
const DEFAULT_MAX_MAP_COUNT: usize = 65_530;
/// The environment variable that makes this binary a live-fiber child.
const CHILD_ENV: &str = "SPINDLE_FIBERS_LIVE_CHILD";
/// Maps left free when the thread peer stops (it checks every 256 spawns,
/// at up to four maps a thread).
const THREAD_MAP_HEADROOM: usize = 2_048;
/// A live-fiber child that takes longer than this has hung.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

/// Goals from the issue.
const GOAL_SWITCH_NS: f64 = 10.0;
const GOAL_SPAWN_JOIN_NS: f64 = 200.0;
const GOAL_BYTES_PER_FIBER: f64 = 16.0 * 1024.0;

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

// ---------------------------------------------------------------------------
// Our own record of every measured call, for the summary against the goals.

struct Record {
    group: &'static str,
    name: &'static str,
    ns_per_op: f64,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

fn record(group: &'static str, name: &'static str, iters: u64, elapsed: Duration) -> Duration {
    if iters > 0 {
        RECORDS.lock().unwrap().push(Record {
            group,
            name,
            ns_per_op: elapsed.as_nanos() as f64 / iters as f64,
        });
    }
    elapsed
}

/// Median and fastest ns/op of the measured calls of one function (the
/// later half of its calls: criterion's warm-up comes first).
fn stats(group: &str, name: &str) -> Option<(f64, f64)> {
    let records = RECORDS.lock().unwrap();
    let all: Vec<f64> = records
        .iter()
        .filter(|r| r.group == group && r.name == name)
        .map(|r| r.ns_per_op)
        .collect();
    if all.is_empty() {
        return None;
    }
    let mut later = all[all.len() / 2..].to_vec();
    later.sort_by(f64::total_cmp);
    Some((later[later.len() / 2], later[0]))
}

// ---------------------------------------------------------------------------
// C task functions (what a C program would write)

/// The arguments of a measuring main task: how many operations, and the
/// time they took (measured inside the task, so the spawn of the main task
/// itself is not counted).
struct Loop {
    iters: u64,
    elapsed: Duration,
}

unsafe extern "C" fn yield_loop(arg: *mut c_void, _result: *mut *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Loop` that `CRuntime::run` was given.
    let l = unsafe { &mut *arg.cast::<Loop>() };
    let start = Instant::now();
    for _ in 0..l.iters {
        // SAFETY: called from a C task.
        let rc = unsafe { spindle_yield() };
        if rc != 0 {
            return rc;
        }
    }
    l.elapsed = start.elapsed();
    0
}

/// Yields `arg` (a count) times: the partner of `yield_pair_loop`.
unsafe extern "C" fn yield_partner(arg: *mut c_void, _result: *mut *mut c_void) -> c_int {
    for _ in 0..arg as usize {
        // SAFETY: called from a C task.
        let rc = unsafe { spindle_yield() };
        if rc != 0 {
            return rc;
        }
    }
    0
}

/// Yields with a partner task, `Loop::iters` yields between the two.
unsafe extern "C" fn yield_pair_loop(arg: *mut c_void, _result: *mut *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Loop` that `CRuntime::run` was given.
    let l = unsafe { &mut *arg.cast::<Loop>() };
    let partner_yields = l.iters / 2;
    let start = Instant::now();
    let mut partner = ptr::null_mut();
    // SAFETY: called from a C task with valid pointers; the handle is freed
    // once.
    unsafe {
        let rc = spindle_spawn(
            Some(yield_partner),
            partner_yields as usize as *mut c_void,
            ptr::null(),
            &mut partner,
        );
        if rc != 0 {
            return rc;
        }
        for _ in partner_yields..l.iters {
            let rc = spindle_yield();
            if rc != 0 {
                spindle_task_free(partner);
                return rc;
            }
        }
        let rc = spindle_task_join(partner, ptr::null_mut());
        spindle_task_free(partner);
        if rc != 0 {
            return rc;
        }
    }
    l.elapsed = start.elapsed();
    0
}

unsafe extern "C" fn trivial(_arg: *mut c_void, result: *mut *mut c_void) -> c_int {
    // SAFETY: `result` is the library's valid out-pointer.
    unsafe { *result = 42usize as *mut c_void };
    0
}

unsafe extern "C" fn spawn_join_loop(arg: *mut c_void, _result: *mut *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Loop` that `CRuntime::run` was given.
    let l = unsafe { &mut *arg.cast::<Loop>() };
    let start = Instant::now();
    for _ in 0..l.iters {
        let mut task = ptr::null_mut();
        let mut value = ptr::null_mut();
        // SAFETY: called from a C task with valid pointers; the handle is
        // freed once.
        unsafe {
            let rc = spindle_spawn(Some(trivial), ptr::null_mut(), ptr::null(), &mut task);
            if rc != 0 {
                return rc;
            }
            let rc = spindle_task_join(task, &mut value);
            spindle_task_free(task);
            if rc != 0 || value as usize != 42 {
                return 1;
            }
        }
    }
    l.elapsed = start.elapsed();
    0
}

// ---------------------------------------------------------------------------
// fiber_switch

fn fiber_switch(c: &mut Criterion) {
    const G: &str = "fiber_switch";
    let mut group = group(c, G);
    for (name, workers, main) in [
        ("spindle_c_yield_pair_1worker", 1, yield_pair_loop as TaskFn),
        ("spindle_c_yield", workers(), yield_loop),
        ("spindle_c_yield_1worker", 1, yield_loop),
    ] {
        let rt = CRuntime::new(workers, false);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut l = Loop {
                    iters,
                    elapsed: Duration::ZERO,
                };
                rt.run(main, &mut l, name);
                record(G, name, iters, l.elapsed)
            })
        });
    }
    {
        const NAME: &str = "spindle_rust_yield_now_pair_1worker";
        let rt = spindle_rt(1);
        group.bench_function(NAME, |b| {
            b.iter_custom(|iters| {
                let elapsed = rt
                    .block_on(async move {
                        let start = Instant::now();
                        let partner = spindle::spawn(async move {
                            for _ in 0..iters / 2 {
                                spindle::yield_now().await?;
                            }
                            spindle::Ok(())
                        });
                        for _ in iters / 2..iters {
                            spindle::yield_now().await?;
                        }
                        partner.await?;
                        spindle::Ok(start.elapsed())
                    })
                    .expect("yield pair");
                record(G, NAME, iters, elapsed)
            })
        });
    }
    for (name, workers) in [
        ("spindle_rust_yield_now", workers()),
        ("spindle_rust_yield_now_1worker", 1),
    ] {
        let rt = spindle_rt(workers);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = rt
                    .block_on(async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            spindle::yield_now().await?;
                        }
                        spindle::Ok(start.elapsed())
                    })
                    .expect("yield loop");
                record(G, name, iters, elapsed)
            })
        });
    }
    {
        use corosensei::{Coroutine, CoroutineResult};
        let mut co: Coroutine<(), (), ()> = Coroutine::new(|yielder, ()| loop {
            yielder.suspend(());
        });
        group.bench_function("corosensei_resume_suspend", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    if let CoroutineResult::Return(()) = black_box(co.resume(())) {
                        unreachable!("the coroutine never returns");
                    }
                }
                record(G, "corosensei_resume_suspend", iters, start.elapsed())
            })
        });
    }
    group.bench_function("may_yield_now", |b| {
        b.iter_custom(|iters| {
            let elapsed = may::go!(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    may::coroutine::yield_now();
                }
                start.elapsed()
            })
            .join()
            .expect("may yield loop");
            record(G, "may_yield_now", iters, elapsed)
        })
    });
    {
        let pong = PingPong::start();
        group.bench_function("thread_pingpong", |b| {
            b.iter_custom(|iters| record(G, "thread_pingpong", iters, pong.round_trips(iters)))
        });
    }
    group.finish();
}

/// Two threads handing a token back and forth with park/unpark.
struct PingPong {
    /// Round trips the partner still has to answer; usize::MAX stops it.
    turn: Arc<AtomicUsize>,
    partner: Option<thread::JoinHandle<()>>,
}

impl PingPong {
    /// 0: the partner waits for a ball; odd: the ball is with the partner;
    /// even > 0: the ball is back.
    fn start() -> PingPong {
        let turn = Arc::new(AtomicUsize::new(0));
        let me = thread::current();
        let partner = {
            let turn = turn.clone();
            thread::spawn(move || loop {
                let t = turn.load(SeqCst);
                if t == usize::MAX {
                    return;
                }
                if t % 2 == 1 {
                    turn.store(t + 1, SeqCst);
                    me.unpark();
                } else {
                    thread::park();
                }
            })
        };
        PingPong {
            turn,
            partner: Some(partner),
        }
    }

    fn round_trips(&self, iters: u64) -> Duration {
        let partner = self.partner.as_ref().expect("running").thread().clone();
        let start = Instant::now();
        for _ in 0..iters {
            let t = self.turn.load(SeqCst);
            let sent = if t % 2 == 0 { t + 1 } else { t + 2 };
            self.turn.store(sent, SeqCst);
            partner.unpark();
            while self.turn.load(SeqCst) == sent {
                thread::park();
            }
        }
        start.elapsed()
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        self.turn.store(usize::MAX, SeqCst);
        if let Some(partner) = self.partner.take() {
            partner.thread().unpark();
            partner.join().expect("ping-pong partner");
        }
    }
}

// ---------------------------------------------------------------------------
// fiber_spawn_join

fn fiber_spawn_join(c: &mut Criterion) {
    const G: &str = "fiber_spawn_join";
    let mut group = group(c, G);
    for (name, workers, eager) in [
        ("spindle_c_task", workers(), false),
        ("spindle_c_task_1worker", 1, false),
        ("spindle_c_task_eager", workers(), true),
    ] {
        let rt = CRuntime::new(workers, eager);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut l = Loop {
                    iters,
                    elapsed: Duration::ZERO,
                };
                rt.run(spawn_join_loop, &mut l, name);
                record(G, name, iters, l.elapsed)
            })
        });
    }
    for (name, workers) in [
        ("spindle_rust_task", workers()),
        ("spindle_rust_task_1worker", 1),
    ] {
        let rt = spindle_rt(workers);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = rt
                    .block_on(async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let value =
                                spindle::spawn(async { spindle::Ok(black_box(42)) }).await?;
                            assert_eq!(value, 42);
                        }
                        spindle::Ok(start.elapsed())
                    })
                    .expect("spawn+join loop");
                record(G, name, iters, elapsed)
            })
        });
    }
    group.bench_function("may_go_join", |b| {
        b.iter_custom(|iters| {
            let elapsed = may::go!(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    let value = may::go!(|| black_box(42)).join().expect("may child");
                    assert_eq!(value, 42);
                }
                start.elapsed()
            })
            .join()
            .expect("may spawn+join loop");
            record(G, "may_go_join", iters, elapsed)
        })
    });
    group.bench_function("std_thread", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let value = thread::spawn(|| black_box(42)).join().expect("thread");
                assert_eq!(value, 42);
            }
            record(G, "std_thread", iters, start.elapsed())
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// Live fibers: one child process per peer.

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Calls `each` with the chunks of a /proc file, read into a buffer on the
/// stack: no allocation, so it works at the map limit, where `malloc` may
/// fail.
fn read_proc(path: &str, mut each: impl FnMut(&[u8])) -> bool {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = [0u8; 16 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => each(&buf[..n]),
            Err(_) => return false,
        }
    }
}

/// Resident bytes of this process (the second field of /proc/self/statm,
/// in pages).
fn rss() -> usize {
    let mut fields = 0;
    let mut pages = 0usize;
    read_proc("/proc/self/statm", |chunk| {
        for &b in chunk {
            match b {
                b' ' => fields += 1,
                b'0'..=b'9' if fields == 1 => pages = pages * 10 + usize::from(b - b'0'),
                _ => {}
            }
        }
    });
    pages * page_size()
}

/// Memory maps of this process (lines of /proc/self/maps).
fn maps() -> usize {
    let mut lines = 0;
    read_proc("/proc/self/maps", |chunk| {
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    });
    lines
}

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// What one child measured.
#[derive(Default, Debug)]
struct Live {
    peer: String,
    requested: usize,
    live: usize,
    rss_before: usize,
    rss_after: usize,
    maps_before: usize,
    maps_after: usize,
    spawn: Duration,
    teardown: Duration,
    stopped_by: String,
}

impl Live {
    fn line(&self) -> String {
        format!(
            "LIVE peer={} requested={} live={} rss_before={} rss_after={} maps_before={} \
             maps_after={} spawn_ns={} teardown_ns={} stopped_by={}",
            self.peer,
            self.requested,
            self.live,
            self.rss_before,
            self.rss_after,
            self.maps_before,
            self.maps_after,
            self.spawn.as_nanos(),
            self.teardown.as_nanos(),
            self.stopped_by.replace(' ', "_"),
        )
    }

    fn parse(line: &str) -> Option<Live> {
        let rest = line.strip_prefix("LIVE ")?;
        let mut live = Live::default();
        for field in rest.split(' ') {
            let (key, value) = field.split_once('=')?;
            let n = || value.parse::<usize>().unwrap_or(0);
            match key {
                "peer" => live.peer = value.to_string(),
                "requested" => live.requested = n(),
                "live" => live.live = n(),
                "rss_before" => live.rss_before = n(),
                "rss_after" => live.rss_after = n(),
                "maps_before" => live.maps_before = n(),
                "maps_after" => live.maps_after = n(),
                "spawn_ns" => live.spawn = Duration::from_nanos(n() as u64),
                "teardown_ns" => live.teardown = Duration::from_nanos(n() as u64),
                "stopped_by" => live.stopped_by = value.replace('_', " "),
                _ => {}
            }
        }
        Some(live)
    }

    fn bytes_per_fiber(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.live.max(1) as f64
    }
}

/// The state shared by the live C tasks and the main C task.
struct LiveC {
    requested: usize,
    started: AtomicUsize,
    out: Live,
}

unsafe extern "C" fn block_an_hour(arg: *mut c_void, _result: *mut *mut c_void) -> c_int {
    // SAFETY: `arg` is the `LiveC` of the main task, alive until all are
    // joined.
    let shared = unsafe { &*arg.cast::<LiveC>() };
    shared.started.fetch_add(1, SeqCst);
    // SAFETY: called from a C task.
    match unsafe { spindle_sleep(3600.0) } {
        SPINDLE_ECANCELED => SPINDLE_ECANCELED,
        _ => 1,
    }
}

unsafe extern "C" fn live_main(arg: *mut c_void, _result: *mut *mut c_void) -> c_int {
    // SAFETY: `arg` is the `LiveC` given to `CRuntime::run`.
    let shared = unsafe { &mut *arg.cast::<LiveC>() };
    let requested = shared.requested;
    shared.out.rss_before = rss();
    shared.out.maps_before = maps();
    let mut tasks = Vec::with_capacity(requested);
    let start = Instant::now();
    for _ in 0..requested {
        let mut task = ptr::null_mut();
        // SAFETY: called from a C task; `shared` outlives every task.
        let rc = unsafe {
            spindle_spawn(
                Some(block_an_hour),
                (shared as *mut LiveC).cast(),
                ptr::null(),
                &mut task,
            )
        };
        if rc != 0 {
            shared.out.stopped_by = format!("spindle_spawn returned {rc}");
            break;
        }
        tasks.push(task);
    }
    // Every task has started and is blocked once the counter is full.
    while shared.started.load(SeqCst) < tasks.len() {
        // SAFETY: called from a C task.
        unsafe { spindle_sleep(0.001) };
    }
    shared.out.spawn = start.elapsed();
    shared.out.live = tasks.len();
    shared.out.rss_after = rss();
    shared.out.maps_after = maps();
    let start = Instant::now();
    let mut wrong = 0;
    for &task in &tasks {
        // SAFETY: live handles.
        unsafe { spindle_task_cancel(task, ptr::null(), ptr::null_mut()) };
    }
    for task in tasks {
        // SAFETY: live handles, freed once.
        unsafe {
            if spindle_task_join(task, ptr::null_mut()) != SPINDLE_ECANCELED {
                wrong += 1;
            }
            spindle_task_free(task);
        }
    }
    shared.out.teardown = start.elapsed();
    if wrong > 0 {
        shared.out.stopped_by = format!("{wrong} tasks did not end cancelled");
    }
    0
}

fn live_spindle(requested: usize) -> Live {
    let rt = CRuntime::new(workers(), false);
    let mut shared = LiveC {
        requested,
        started: AtomicUsize::new(0),
        out: Live {
            peer: "spindle".into(),
            requested,
            stopped_by: "-".into(),
            ..Live::default()
        },
    };
    rt.run(live_main, &mut shared, "live fibers");
    shared.out
}

fn live_may(requested: usize) -> Live {
    may::config().set_workers(workers());
    // Start may's workers before the first reading.
    may::go!(|| ()).join().expect("may warm-up");
    let mut out = Live {
        peer: "may".into(),
        requested,
        stopped_by: "-".into(),
        rss_before: rss(),
        maps_before: maps(),
        ..Live::default()
    };
    let started = Arc::new(AtomicUsize::new(0));
    // may panics when it cannot map a stack: keep that quiet, record it.
    std::panic::set_hook(Box::new(|_| {}));
    let mut handles = Vec::with_capacity(requested);
    let start = Instant::now();
    for _ in 0..requested {
        let started = started.clone();
        let spawned = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the coroutine uses no thread-local storage.
            unsafe {
                may::coroutine::Builder::new().spawn(move || {
                    started.fetch_add(1, SeqCst);
                    may::coroutine::sleep(Duration::from_secs(3600));
                })
            }
        }));
        match spawned {
            Ok(Ok(handle)) => handles.push(handle),
            Ok(Err(e)) => {
                out.stopped_by = format!("spawn error: {e}");
                break;
            }
            Err(_) => {
                out.stopped_by = "spawn panicked (failed to map a stack)".into();
                break;
            }
        }
    }
    let _ = std::panic::take_hook();
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.load(SeqCst) < handles.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    out.spawn = start.elapsed();
    out.live = started.load(SeqCst);
    out.rss_after = rss();
    out.maps_after = maps();
    // Tear down only what spawned cleanly; a failed map may have left may in
    // a state where cancelling is not safe, and the process exits anyway.
    if out.live == requested {
        let start = Instant::now();
        for handle in &handles {
            // SAFETY: cancelling a coroutine blocked in may's sleep.
            unsafe { handle.coroutine().cancel() };
        }
        for handle in handles {
            let _ = handle.join();
        }
        out.teardown = start.elapsed();
    } else {
        std::mem::forget(handles);
    }
    out
}

fn live_threads(requested: usize) -> Live {
    let mut out = Live {
        peer: "std_thread".into(),
        requested,
        stopped_by: "-".into(),
        rss_before: rss(),
        maps_before: maps(),
        ..Live::default()
    };
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(requested);
    let limit = max_map_count();
    let start = Instant::now();
    for i in 0..requested {
        // A Rust thread that cannot map what it needs (its stack, its
        // signal stack) aborts the process: stop short of the map limit.
        if i % 256 == 0 && maps() + THREAD_MAP_HEADROOM > limit {
            out.stopped_by = format!(
                "{} of {limit} maps used ({:.1} per thread): stopped short of the limit",
                maps(),
                (maps() - out.maps_before) as f64 / i.max(1) as f64
            );
            break;
        }
        let (gate, started) = (gate.clone(), started.clone());
        let spawned = thread::Builder::new().spawn(move || {
            started.fetch_add(1, SeqCst);
            let (lock, cvar) = &*gate;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cvar.wait(open).unwrap();
            }
        });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                out.stopped_by = format!("spawn error: {e}");
                break;
            }
        }
    }
    while started.load(SeqCst) < handles.len() {
        thread::sleep(Duration::from_millis(1));
    }
    out.spawn = start.elapsed();
    out.live = handles.len();
    out.rss_after = rss();
    out.maps_after = maps();
    let start = Instant::now();
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    for handle in handles {
        let _ = handle.join();
    }
    out.teardown = start.elapsed();
    out
}

/// In a child: measure one peer, print its line.
fn live_child(spec: &str) {
    let (peer, n) = spec.split_once(',').expect("peer,count");
    let n: usize = n.parse().expect("count");
    let live = match peer {
        "spindle" => live_spindle(n),
        "may" => live_may(n),
        "std_thread" => live_threads(n),
        other => panic!("unknown peer {other}"),
    };
    println!("{}", live.line());
}

/// In the bench: run one child per peer.
fn live_fibers() -> Vec<Live> {
    let n = if test_mode() { LIVE_TEST } else { LIVE };
    let exe = std::env::current_exe().expect("the bench binary");
    let mut results = Vec::new();
    for peer in ["spindle", "may", "std_thread"] {
        let started = Instant::now();
        let child = Command::new(&exe)
            .env(CHILD_ENV, format!("{peer},{n}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start a live-fiber child");
        // A watchdog: a hung child is killed, not waited for forever.
        let id = child.id();
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let done = done.clone();
            thread::spawn(move || {
                while !done.load(Relaxed) {
                    if started.elapsed() > CHILD_TIMEOUT {
                        // SAFETY: signalling the child we started, by its id.
                        unsafe { libc::kill(id as libc::pid_t, libc::SIGKILL) };
                        return;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let output = child.wait_with_output();
        done.store(true, Relaxed);
        watchdog.join().expect("watchdog");
        let output = output.expect("wait for a live-fiber child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        match stdout.lines().find_map(Live::parse) {
            Some(live) => results.push(live),
            None => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().last().unwrap_or("").to_string();
                results.push(Live {
                    peer: peer.into(),
                    requested: n,
                    stopped_by: format!("child died ({}): {last}", output.status),
                    ..Live::default()
                });
            }
        }
    }
    results
}

// ---------------------------------------------------------------------------
// Summary

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn verdict(ok: bool) -> &'static str {
    if test_mode() {
        "not judged in test mode"
    } else if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn print_summary(live: &[Live], load_before: &str) {
    println!();
    println!(
        "fibers summary: {} workers (and 1-worker variants), {} cores; load average {} before, \
         {} after{}",
        workers(),
        workers(),
        load_before,
        loadavg(),
        if test_mode() {
            "\n  TEST MODE: tiny runs, not a measurement"
        } else {
            ""
        }
    );
    println!("per operation: median of the measured calls [fastest call], ns");
    for (group, unit) in [
        ("fiber_switch", "per yield"),
        ("fiber_spawn_join", "per spawn + join pair"),
    ] {
        println!("  {group} ({unit}):");
        let names: Vec<&'static str> = {
            let records = RECORDS.lock().unwrap();
            let mut names: Vec<&'static str> = records
                .iter()
                .filter(|r| r.group == group)
                .map(|r| r.name)
                .collect();
            names.dedup();
            names
        };
        for name in names {
            if let Some((median, fastest)) = stats(group, name) {
                println!("    {name:<28} {median:>10.1} [{fastest:.1}]");
            }
        }
    }
    if let Some((median, _)) = stats("fiber_switch", "spindle_c_yield_pair_1worker") {
        println!(
            "  goal: C fiber switch (a yield to another C task) < {GOAL_SWITCH_NS} ns: {} ({median:.1} ns)",
            verdict(median < GOAL_SWITCH_NS)
        );
    }
    if let Some((median, _)) = stats("fiber_spawn_join", "spindle_c_task") {
        println!(
            "  goal: C task spawn + join < {GOAL_SPAWN_JOIN_NS} ns: {} ({median:.1} ns)",
            verdict(median < GOAL_SPAWN_JOIN_NS)
        );
    }
    if live.is_empty() {
        return;
    }
    println!(
        "live fibers (each blocked in a 1 h sleep; vm.max_map_count here {}, default {}):",
        max_map_count(),
        DEFAULT_MAX_MAP_COUNT
    );
    for l in live {
        println!(
            "  {:<10} {:>6}/{:<6} live  {:>8.0} B/fiber resident  maps {:>5} -> {:>5}  \
             spawn {:>7.1} ms  teardown {:>7.1} ms  {}",
            l.peer,
            l.live,
            l.requested,
            l.bytes_per_fiber(),
            l.maps_before,
            l.maps_after,
            l.spawn.as_secs_f64() * 1e3,
            l.teardown.as_secs_f64() * 1e3,
            if l.stopped_by == "-" {
                String::new()
            } else {
                format!("stopped: {}", l.stopped_by)
            }
        );
    }
    if let Some(l) = live.iter().find(|l| l.peer == "spindle") {
        println!(
            "  goal: {} live C fibers under the default map limit: {} ({} maps)",
            l.requested,
            verdict(
                l.live == l.requested
                    && l.maps_after < DEFAULT_MAX_MAP_COUNT
                    && l.stopped_by == "-"
            ),
            l.maps_after
        );
        println!(
            "  goal: <= 16 KiB resident per live fiber: {} ({:.0} B)",
            verdict(l.live > 0 && l.bytes_per_fiber() <= GOAL_BYTES_PER_FIBER),
            l.bytes_per_fiber()
        );
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        live_child(&spec);
        return;
    }
    let load_before = loadavg();
    may::config().set_workers(workers());
    let mut criterion = Criterion::default().configure_from_args();
    fiber_switch(&mut criterion);
    fiber_spawn_join(&mut criterion);
    criterion.final_summary();
    // A name filter (`cargo bench --bench fibers -- switch`) that does not
    // match "live_fibers" skips the children.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && !a.is_empty());
    let live = match filter {
        Some(f) if !"live_fibers".contains(f.as_str()) => Vec::new(),
        _ => live_fibers(),
    };
    print_summary(&live, &load_before);
}
