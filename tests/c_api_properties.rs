//! Property-based tests of the C API (`include/spindle.h`): random sequences
//! of C calls, valid and invalid, run from a C main task on a runtime with one
//! or two workers (and some from the plain test thread, outside any task),
//! each return code checked against a shadow model of the handles; at the
//! end every handle is freed and the process's allocations must be back to
//! where they were.
//!
//! The model predicts the exact code of every call. Where child tasks run
//! concurrently with the main task, it keeps bounds (a queue holds between
//! `lo` and `hi` items, an event may be set) and accepts only the codes
//! those bounds allow; what a child did is checked once it is known to be
//! done, from the codes the child recorded.
//!
//! `SPINDLE_SOAK=1` runs many more cases.

// Links the library: its `#[no_mangle]` exports resolve the declarations
// below.
extern crate spindle;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// -- the C API, as in include/spindle.h ---------------------------------------

macro_rules! opaque {
    ($($name:ident),*) => {$(
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
        }
    )*};
}
opaque!(
    SpindleAsCompleted,
    SpindleEvent,
    SpindleGroup,
    SpindleLock,
    SpindleQueue,
    SpindleRuntime,
    SpindleSem,
    SpindleTask,
    SpindleTimeout
);

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SpindleOptions {
    struct_size: usize,
    workers: u32,
    max_blocking_threads: u32,
    stack_size: usize,
    shutdown_timeout: f64,
}

type TaskFn = Option<unsafe extern "C" fn(arg: *mut c_void, result: *mut *mut c_void) -> c_int>;

const OK: c_int = 0;
const EINVAL: c_int = -1;
const ENOTASK: c_int = -2;
const ECANCELED: c_int = -3;
const ETIMEDOUT: c_int = -4;
const ESTATE: c_int = -8;
const EBUSY: c_int = -10;
const EFULL: c_int = -11;
const EEMPTY: c_int = -12;
const ESHUTDOWN: c_int = -13;

const ALL_COMPLETED: c_int = 0;
const FIRST_COMPLETED: c_int = 1;
const READABLE: c_int = 1;
const QUEUE_FIFO: c_int = 0;
const QUEUE_PRIORITY: c_int = 2;

extern "C" {
    fn spindle_strerror(code: c_int) -> *const c_char;
    fn spindle_gather(
        tasks: *const *mut SpindleTask,
        n: usize,
        results: *mut *mut c_void,
        codes: *mut c_int,
    ) -> c_int;
    fn spindle_wait(
        tasks: *const *mut SpindleTask,
        n: usize,
        return_when: c_int,
        seconds: f64,
        done: *mut c_int,
        done_count: *mut usize,
    ) -> c_int;
    fn spindle_as_completed_new(
        tasks: *const *mut SpindleTask,
        n: usize,
        seconds: f64,
        out: *mut *mut SpindleAsCompleted,
    ) -> c_int;
    fn spindle_as_completed_next(
        iteration: *mut SpindleAsCompleted,
        out: *mut *mut SpindleTask,
    ) -> c_int;
    fn spindle_as_completed_free(iteration: *mut SpindleAsCompleted) -> c_int;
    fn spindle_fd_wait(fd: c_int, events: c_int, seconds: f64, revents: *mut c_int) -> c_int;
    fn spindle_queue_new(kind: c_int, maxsize: usize, out: *mut *mut SpindleQueue) -> c_int;
    fn spindle_queue_put(queue: *mut SpindleQueue, item: *mut c_void) -> c_int;
    fn spindle_queue_put_priority(
        queue: *mut SpindleQueue,
        priority: i64,
        item: *mut c_void,
    ) -> c_int;
    fn spindle_queue_put_nowait(queue: *mut SpindleQueue, item: *mut c_void) -> c_int;
    fn spindle_queue_put_priority_nowait(
        queue: *mut SpindleQueue,
        priority: i64,
        item: *mut c_void,
    ) -> c_int;
    fn spindle_queue_get(queue: *mut SpindleQueue, item: *mut *mut c_void) -> c_int;
    fn spindle_queue_get_nowait(queue: *mut SpindleQueue, item: *mut *mut c_void) -> c_int;
    fn spindle_queue_task_done(queue: *mut SpindleQueue) -> c_int;
    fn spindle_queue_join(queue: *mut SpindleQueue) -> c_int;
    fn spindle_queue_size(queue: *const SpindleQueue, size: *mut usize) -> c_int;
    fn spindle_queue_maxsize(queue: *const SpindleQueue, maxsize: *mut usize) -> c_int;
    fn spindle_queue_shutdown(queue: *mut SpindleQueue, immediate: c_int) -> c_int;
    fn spindle_queue_free(queue: *mut SpindleQueue) -> c_int;
    fn spindle_options_init(options: *mut SpindleOptions) -> c_int;
    fn spindle_runtime_new(options: *const SpindleOptions, out: *mut *mut SpindleRuntime) -> c_int;
    fn spindle_runtime_run(
        runtime: *mut SpindleRuntime,
        main: TaskFn,
        arg: *mut c_void,
        result: *mut *mut c_void,
    ) -> c_int;
    fn spindle_runtime_spawn(
        runtime: *mut SpindleRuntime,
        func: TaskFn,
        arg: *mut c_void,
        name: *const c_char,
        out: *mut *mut SpindleTask,
    ) -> c_int;
    fn spindle_runtime_free(runtime: *mut SpindleRuntime) -> c_int;
    fn spindle_timeout_begin(seconds: f64, out: *mut *mut SpindleTimeout) -> c_int;
    fn spindle_timeout_end(scope: *mut SpindleTimeout, status: c_int) -> c_int;
    fn spindle_timeout_reschedule(scope: *mut SpindleTimeout, seconds: f64) -> c_int;
    fn spindle_timeout_expired(scope: *const SpindleTimeout, expired: *mut c_int) -> c_int;
    fn spindle_timeout_free(scope: *mut SpindleTimeout) -> c_int;
    fn spindle_group_new(out: *mut *mut SpindleGroup) -> c_int;
    fn spindle_group_spawn(
        group: *mut SpindleGroup,
        func: TaskFn,
        arg: *mut c_void,
        name: *const c_char,
        out: *mut *mut SpindleTask,
    ) -> c_int;
    fn spindle_group_wait(group: *mut SpindleGroup, status: c_int) -> c_int;
    fn spindle_group_errors(
        group: *const SpindleGroup,
        codes: *mut c_int,
        capacity: usize,
        count: *mut usize,
    ) -> c_int;
    fn spindle_group_free(group: *mut SpindleGroup) -> c_int;
    fn spindle_wait_for(task: *const SpindleTask, seconds: f64, result: *mut *mut c_void) -> c_int;
    fn spindle_shield(task: *const SpindleTask, result: *mut *mut c_void) -> c_int;
    fn spindle_sem_new(value: i64, out: *mut *mut SpindleSem) -> c_int;
    fn spindle_bounded_sem_new(value: i64, out: *mut *mut SpindleSem) -> c_int;
    fn spindle_sem_acquire(sem: *mut SpindleSem) -> c_int;
    fn spindle_sem_try_acquire(sem: *mut SpindleSem, acquired: *mut c_int) -> c_int;
    fn spindle_sem_release(sem: *mut SpindleSem) -> c_int;
    fn spindle_sem_locked(sem: *const SpindleSem, locked: *mut c_int) -> c_int;
    fn spindle_sem_value(sem: *const SpindleSem, value: *mut usize) -> c_int;
    fn spindle_sem_free(sem: *mut SpindleSem) -> c_int;
    fn spindle_lock_new(out: *mut *mut SpindleLock) -> c_int;
    fn spindle_lock_acquire(lock: *mut SpindleLock) -> c_int;
    fn spindle_lock_release(lock: *mut SpindleLock) -> c_int;
    fn spindle_lock_locked(lock: *const SpindleLock, locked: *mut c_int) -> c_int;
    fn spindle_lock_free(lock: *mut SpindleLock) -> c_int;
    fn spindle_event_new(out: *mut *mut SpindleEvent) -> c_int;
    fn spindle_event_set(event: *mut SpindleEvent) -> c_int;
    fn spindle_event_clear(event: *mut SpindleEvent) -> c_int;
    fn spindle_event_is_set(event: *const SpindleEvent, is_set: *mut c_int) -> c_int;
    fn spindle_event_wait(event: *mut SpindleEvent) -> c_int;
    fn spindle_event_free(event: *mut SpindleEvent) -> c_int;
    fn spindle_spawn(
        func: TaskFn,
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
    fn spindle_task_done(task: *const SpindleTask, done: *mut c_int) -> c_int;
    fn spindle_task_cancelled(task: *const SpindleTask, cancelled: *mut c_int) -> c_int;
    fn spindle_task_result(task: *const SpindleTask, result: *mut *mut c_void) -> c_int;
    fn spindle_task_current(out: *mut *mut SpindleTask) -> c_int;
    fn spindle_task_id(task: *const SpindleTask, id: *mut u64) -> c_int;
    fn spindle_task_name(
        task: *const SpindleTask,
        buffer: *mut c_char,
        capacity: usize,
        length: *mut usize,
    ) -> c_int;
    fn spindle_task_free(task: *mut SpindleTask) -> c_int;
    fn spindle_sleep(seconds: f64) -> c_int;
    fn spindle_yield() -> c_int;
}

// -- a counting allocator -----------------------------------------------------

/// Counts the live blocks and bytes allocated by the threads that belong to
/// the test being measured. Each block carries a tag saying whether it was
/// counted, so that a block freed on another thread (or after the
/// measurement) is uncounted exactly once.
struct Counting;

static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
/// The kernel thread id of the test that measures (0: none).
static MEASURER: AtomicI64 = AtomicI64::new(0);

thread_local! {
    /// This thread runs a test of this file.
    static TEST_THREAD: Cell<bool> = const { Cell::new(false) };
    static TID: Cell<i64> = const { Cell::new(0) };
}

fn tid() -> i64 {
    TID.try_with(|t| {
        if t.get() == 0 {
            // SAFETY: a plain system call.
            t.set(unsafe { libc::gettid() } as i64);
        }
        t.get()
    })
    .unwrap_or(-1)
}

fn counted_thread() -> bool {
    let measurer = MEASURER.load(SeqCst);
    if measurer == 0 {
        return false;
    }
    let me = tid();
    if me == measurer {
        return true;
    }
    // SAFETY: a plain system call.
    let pid = unsafe { libc::getpid() } as i64;
    if me == pid {
        return false; // libtest's main thread (the test runs elsewhere)
    }
    !TEST_THREAD.try_with(Cell::get).unwrap_or(false)
}

const HEADER: usize = 16;

fn padded(layout: Layout) -> (Layout, usize) {
    let prefix = HEADER.max(layout.align());
    let full = Layout::from_size_align(layout.size() + prefix, layout.align().max(HEADER))
        .expect("layout");
    (full, prefix)
}

// SAFETY: delegates to System with a larger block; the tag lives in the
// prefix, before the pointer handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (full, prefix) = padded(layout);
        // SAFETY: `full` has a non-zero size.
        let base = unsafe { System.alloc(full) };
        if base.is_null() {
            return base;
        }
        let counted = counted_thread();
        if counted {
            LIVE_BLOCKS.fetch_add(1, SeqCst);
            LIVE_BYTES.fetch_add(layout.size() as i64, SeqCst);
        }
        // SAFETY: `prefix` >= 16 bytes precede the user pointer.
        unsafe {
            let user = base.add(prefix);
            user.sub(8).cast::<u64>().write(u64::from(counted));
            user
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let (full, prefix) = padded(layout);
        // SAFETY: written by `alloc`.
        let counted = unsafe { ptr.sub(8).cast::<u64>().read() } == 1;
        if counted {
            LIVE_BLOCKS.fetch_sub(1, SeqCst);
            LIVE_BYTES.fetch_sub(layout.size() as i64, SeqCst);
        }
        // SAFETY: the block `alloc` got from System.
        unsafe { System.dealloc(ptr.sub(prefix), full) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> (i64, i64) {
    (LIVE_BLOCKS.load(SeqCst), LIVE_BYTES.load(SeqCst))
}

/// Serializes the tests of this file (the allocation counts are global).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TEST_THREAD.with(|t| t.set(true));
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Blocks the per-case check tolerates (lazily made thread-locals, timer
/// wheel slots, crossbeam-epoch garbage not collected yet). Fixed: it does
/// not grow with the number of operations or cases.
const SLACK_BLOCKS: i64 = 64;
const SLACK_BYTES: i64 = 64 * 1024;

// -- checks that work inside a C task -----------------------------------------

/// Fails the model (a panic, caught in the main task and reported on the
/// test thread: it never unwinds through C).
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            panic!($($msg)+);
        }
    };
}

macro_rules! expect_code {
    ($call:expr, $expected:expr) => {{
        let got: c_int = $call;
        let want: c_int = $expected;
        check!(
            got == want,
            "{} returned {} ({}), expected {} ({})",
            stringify!($call),
            got,
            describe(got),
            want,
            describe(want)
        );
    }};
}

fn describe(code: c_int) -> String {
    // SAFETY: any value is accepted; the string is static.
    let text = unsafe { CStr::from_ptr(spindle_strerror(code)) };
    text.to_string_lossy().into_owned()
}

fn expect_in(what: &str, got: c_int, allowed: &[c_int]) {
    check!(
        allowed.contains(&got),
        "{what} returned {got} ({}), expected one of {allowed:?}",
        describe(got)
    );
}

fn item(token: usize) -> *mut c_void {
    token as *mut c_void
}

/// Runs `call` (which blocks forever) in a timeout scope of 1 ms: the call
/// must end cancelled and the scope turn that into a timeout.
fn blocks_forever(what: &str, call: impl FnOnce() -> c_int) {
    let mut scope = null_mut();
    // SAFETY: valid out-pointer; called from a C task.
    expect_code!(unsafe { spindle_timeout_begin(0.001, &mut scope) }, OK);
    let rc = call();
    check!(
        rc == ECANCELED,
        "{what} in a 1 ms scope returned {rc}, expected ECANCELED"
    );
    // SAFETY: the scope is live and was begun by this task.
    unsafe {
        expect_code!(spindle_timeout_end(scope, rc), ETIMEDOUT);
        let mut expired = 0;
        expect_code!(spindle_timeout_expired(scope, &mut expired), OK);
        check!(expired == 1, "{what}: the scope did not expire");
        expect_code!(spindle_timeout_free(scope), OK);
    }
}

// -- child tasks ----------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Step {
    Sleep(u8),
    Yield,
    SetEvent(u8),
    WaitEvent(u8),
    PutNowait(u8),
    GetNowait(u8),
    Get(u8),
    SemCycle(u8, u8),
    LockCycle(u8, u8),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Value(usize),
    Fail(c_int),
    Cancelled,
}

impl Outcome {
    fn code(self) -> c_int {
        match self {
            Outcome::Value(_) => OK,
            Outcome::Fail(code) => code,
            Outcome::Cancelled => ECANCELED,
        }
    }
}

#[derive(Clone, Debug)]
struct Plan {
    steps: Vec<Step>,
    outcome: Outcome,
    named: bool,
}

/// A step resolved to live handles.
#[derive(Clone, Copy, Debug)]
enum CStep {
    Sleep(f64),
    Yield,
    SetEvent(usize, *mut SpindleEvent),
    WaitEvent(usize, *mut SpindleEvent),
    PutNowait(usize, *mut SpindleQueue, usize),
    GetNowait(usize, *mut SpindleQueue),
    Get(usize, *mut SpindleQueue),
    SemCycle(usize, *mut SpindleSem, f64),
    LockCycle(usize, *mut SpindleLock, f64),
}

/// What a child did in one step: up to three codes, and an item taken.
#[derive(Clone, Copy, Debug, Default)]
struct Rec {
    a: c_int,
    b: c_int,
    c: c_int,
    item: usize,
}

/// A child's argument: its steps, its outcome, and what it recorded.
struct Child {
    steps: Vec<CStep>,
    outcome: Outcome,
    started: AtomicBool,
    records: Mutex<Vec<Rec>>,
}

unsafe extern "C" fn child_body(arg: *mut c_void, result: *mut *mut c_void) -> c_int {
    // SAFETY: the model keeps the `Child` alive until the task is done.
    let child = unsafe { &*arg.cast::<Child>() };
    child.started.store(true, SeqCst);
    for step in &child.steps {
        let mut rec = Rec::default();
        // SAFETY: the model frees no handle a pending child refers to.
        unsafe {
            match *step {
                CStep::Sleep(s) => rec.a = spindle_sleep(s),
                CStep::Yield => rec.a = spindle_yield(),
                CStep::SetEvent(_, e) => rec.a = spindle_event_set(e),
                CStep::WaitEvent(_, e) => rec.a = spindle_event_wait(e),
                CStep::PutNowait(_, q, token) => rec.a = spindle_queue_put_nowait(q, item(token)),
                CStep::GetNowait(_, q) | CStep::Get(_, q) => {
                    let mut got = null_mut();
                    rec.a = if matches!(step, CStep::Get(..)) {
                        spindle_queue_get(q, &mut got)
                    } else {
                        spindle_queue_get_nowait(q, &mut got)
                    };
                    rec.item = got as usize;
                }
                CStep::SemCycle(_, s, pause) => {
                    rec.a = spindle_sem_acquire(s);
                    if rec.a == OK {
                        rec.b = spindle_sleep(pause);
                        rec.c = spindle_sem_release(s);
                    }
                }
                CStep::LockCycle(_, l, pause) => {
                    rec.a = spindle_lock_acquire(l);
                    if rec.a == OK {
                        rec.b = spindle_sleep(pause);
                        rec.c = spindle_lock_release(l);
                    }
                }
            }
        }
        child
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(rec);
        if rec.a == ECANCELED || rec.b == ECANCELED {
            return ECANCELED; // the cleanup (a release) is done: re-raise
        }
    }
    match child.outcome {
        Outcome::Value(v) => {
            // SAFETY: a valid out-pointer from the runtime.
            unsafe { result.write(item(v)) };
            OK
        }
        Outcome::Fail(code) => code,
        Outcome::Cancelled => ECANCELED,
    }
}

/// A detached child: sleeps `arg` ms and ends with `arg` as result.
unsafe extern "C" fn sleeper_body(arg: *mut c_void, result: *mut *mut c_void) -> c_int {
    // SAFETY: called from a C task.
    let rc = unsafe { spindle_sleep(arg as usize as f64 / 1000.0) };
    // SAFETY: a valid out-pointer from the runtime.
    unsafe { result.write(arg) };
    rc
}

/// The argument of a task that blocks on one object.
struct Waiter {
    kind: u8,
    handle: *mut c_void,
    started: AtomicBool,
}

unsafe extern "C" fn waiter_body(arg: *mut c_void, result: *mut *mut c_void) -> c_int {
    // SAFETY: the model keeps the `Waiter` alive until the task is done.
    let waiter = unsafe { &*arg.cast::<Waiter>() };
    waiter.started.store(true, SeqCst);
    // SAFETY: the handle is live until the waiter is joined.
    let rc = unsafe {
        match waiter.kind {
            0 => spindle_sem_acquire(waiter.handle.cast()),
            1 => spindle_lock_acquire(waiter.handle.cast()),
            2 => spindle_event_wait(waiter.handle.cast()),
            _ => {
                let mut got = null_mut();
                let rc = spindle_queue_get(waiter.handle.cast(), &mut got);
                result.write(got);
                rc
            }
        }
    };
    if rc == ECANCELED {
        ECANCELED
    } else {
        rc
    }
}

// -- operations ---------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    NewSem {
        bounded: bool,
        value: i64,
    },
    NewLock,
    NewEvent,
    NewQueue {
        kind: c_int,
        maxsize: usize,
    },
    FreeSem(u8),
    FreeLock(u8),
    FreeEvent(u8),
    FreeQueue(u8),
    SemTry(u8),
    SemRelease(u8),
    SemAcquire(u8),
    SemQuery(u8),
    LockAcquire(u8),
    LockRelease(u8),
    LockQuery(u8),
    EventSet(u8),
    EventClear(u8),
    EventQuery(u8),
    EventWait(u8),
    QPut {
        q: u8,
        nowait: bool,
        priority: Option<i64>,
    },
    QGet {
        q: u8,
        nowait: bool,
    },
    QSize(u8),
    QTaskDone(u8),
    QJoin(u8),
    QShutdown {
        q: u8,
        immediate: bool,
    },
    Spawn(Plan),
    SpawnDetached(u8),
    Cancel {
        t: u8,
        message: bool,
        requested: bool,
    },
    Join(u8),
    Done(u8),
    Result(u8),
    Info(u8),
    FreeTask(u8),
    Gather {
        ts: Vec<u8>,
        codes: bool,
    },
    Wait {
        ts: Vec<u8>,
        when: c_int,
        secs: u8,
    },
    AsCompleted {
        ts: Vec<u8>,
        secs: u8,
    },
    Sleep(u8),
    Yield,
    Invalid(u8),
    BlockedFree(u8),
}

/// Calls made from the plain test thread, outside any task.
#[derive(Clone, Copy, Debug)]
enum Outside {
    SemTry,
    SemRelease,
    SemAcquire,
    SemQuery,
    LockAcquire,
    LockRelease,
    LockQuery,
    EventSet,
    EventClear,
    EventQuery,
    EventWait,
    QPutNowait,
    QGetNowait,
    QPut,
    QGet,
    QJoin,
    QSize,
    QTaskDone,
    Blocking(u8),
}

#[derive(Clone, Debug)]
struct Case {
    workers: u32,
    sem_value: i64,
    queue_max: usize,
    outside: Vec<Outside>,
    ops: Vec<Op>,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..3).prop_map(Step::Sleep),
        2 => Just(Step::Yield),
        2 => any::<u8>().prop_map(Step::SetEvent),
        1 => any::<u8>().prop_map(Step::WaitEvent),
        2 => any::<u8>().prop_map(Step::PutNowait),
        2 => any::<u8>().prop_map(Step::GetNowait),
        1 => any::<u8>().prop_map(Step::Get),
        2 => (any::<u8>(), 0u8..2).prop_map(|(s, p)| Step::SemCycle(s, p)),
        2 => (any::<u8>(), 0u8..2).prop_map(|(l, p)| Step::LockCycle(l, p)),
    ]
}

fn plan_strategy() -> impl Strategy<Value = Plan> {
    let outcome = prop_oneof![
        3 => (1usize..1000).prop_map(Outcome::Value),
        2 => (1i32..100).prop_map(Outcome::Fail),
        1 => Just(Outcome::Fail(ETIMEDOUT)),
        1 => Just(Outcome::Cancelled),
    ];
    (
        proptest::collection::vec(step_strategy(), 0..5),
        outcome,
        any::<bool>(),
    )
        .prop_map(|(steps, outcome, named)| Plan {
            steps,
            outcome,
            named,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let i = any::<u8>;
    let ts = || proptest::collection::vec(any::<u8>(), 1..4);
    prop_oneof![
        2 => (any::<bool>(), -1i64..4).prop_map(|(bounded, value)| Op::NewSem { bounded, value }),
        1 => Just(Op::NewLock),
        1 => Just(Op::NewEvent),
        2 => (-1i32..4, 0usize..3).prop_map(|(kind, maxsize)| Op::NewQueue { kind, maxsize }),
        1 => i().prop_map(Op::FreeSem),
        1 => i().prop_map(Op::FreeLock),
        1 => i().prop_map(Op::FreeEvent),
        1 => i().prop_map(Op::FreeQueue),
        2 => i().prop_map(Op::SemTry),
        2 => i().prop_map(Op::SemRelease),
        2 => i().prop_map(Op::SemAcquire),
        1 => i().prop_map(Op::SemQuery),
        2 => i().prop_map(Op::LockAcquire),
        2 => i().prop_map(Op::LockRelease),
        1 => i().prop_map(Op::LockQuery),
        2 => i().prop_map(Op::EventSet),
        1 => i().prop_map(Op::EventClear),
        1 => i().prop_map(Op::EventQuery),
        1 => i().prop_map(Op::EventWait),
        3 => (i(), any::<bool>(), proptest::option::of(-3i64..3))
            .prop_map(|(q, nowait, priority)| Op::QPut { q, nowait, priority }),
        3 => (i(), any::<bool>()).prop_map(|(q, nowait)| Op::QGet { q, nowait }),
        1 => i().prop_map(Op::QSize),
        1 => i().prop_map(Op::QTaskDone),
        1 => i().prop_map(Op::QJoin),
        1 => (i(), any::<bool>()).prop_map(|(q, immediate)| Op::QShutdown { q, immediate }),
        6 => plan_strategy().prop_map(Op::Spawn),
        1 => (0u8..3).prop_map(Op::SpawnDetached),
        2 => (i(), any::<bool>(), any::<bool>())
            .prop_map(|(t, message, requested)| Op::Cancel { t, message, requested }),
        3 => i().prop_map(Op::Join),
        1 => i().prop_map(Op::Done),
        1 => i().prop_map(Op::Result),
        1 => i().prop_map(Op::Info),
        1 => i().prop_map(Op::FreeTask),
        1 => (ts(), any::<bool>()).prop_map(|(ts, codes)| Op::Gather { ts, codes }),
        1 => (ts(), -1i32..4, 0u8..4).prop_map(|(ts, when, secs)| Op::Wait { ts, when, secs }),
        1 => (ts(), 0u8..4).prop_map(|(ts, secs)| Op::AsCompleted { ts, secs }),
        1 => (0u8..3).prop_map(Op::Sleep),
        1 => Just(Op::Yield),
        4 => (0u8..INVALID_CALLS).prop_map(Op::Invalid),
        1 => (0u8..5).prop_map(Op::BlockedFree),
    ]
}

fn outside_strategy() -> impl Strategy<Value = Outside> {
    prop_oneof![
        Just(Outside::SemTry),
        Just(Outside::SemRelease),
        Just(Outside::SemAcquire),
        Just(Outside::SemQuery),
        Just(Outside::LockAcquire),
        Just(Outside::LockRelease),
        Just(Outside::LockQuery),
        Just(Outside::EventSet),
        Just(Outside::EventClear),
        Just(Outside::EventQuery),
        Just(Outside::EventWait),
        Just(Outside::QPutNowait),
        Just(Outside::QGetNowait),
        Just(Outside::QPut),
        Just(Outside::QGet),
        Just(Outside::QJoin),
        Just(Outside::QSize),
        Just(Outside::QTaskDone),
        (0u8..OUTSIDE_BLOCKING).prop_map(Outside::Blocking),
    ]
}

fn case_strategy(max_ops: usize) -> impl Strategy<Value = Case> {
    (
        1u32..3,
        0i64..3,
        0usize..3,
        proptest::collection::vec(outside_strategy(), 0..12),
        proptest::collection::vec(op_strategy(), 1..max_ops),
    )
        .prop_map(|(workers, sem_value, queue_max, outside, ops)| Case {
            workers,
            sem_value,
            queue_max,
            outside,
            ops,
        })
}

// -- the shadow model -----------------------------------------------------------

struct Sem {
    h: *mut SpindleSem,
    bounded: bool,
    init: i64,
    /// Permits not held by the main task (free, or held for a moment by a
    /// child's acquire-release cycle).
    base: i64,
    /// Pending children that cycle on it.
    cyclers: usize,
}

struct Lck {
    h: *mut SpindleLock,
    held: bool,
    cyclers: usize,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Flag {
    Set,
    Unset,
    Maybe,
}

struct Evt {
    h: *mut SpindleEvent,
    flag: Flag,
    /// Bumped by every clear.
    epoch: u64,
    setters: usize,
    waiters: usize,
}

struct Que {
    h: *mut SpindleQueue,
    kind: c_int,
    max: usize,
    /// Items, counting what the main task and the settled children did.
    base: i64,
    /// Unfinished items (put and not marked done), likewise.
    unfinished: i64,
    shut: bool,
    /// Items that may be in the queue (each token is put at most once).
    tokens: HashSet<usize>,
    /// Puts and gets that pending children may still make.
    pending_puts: i64,
    pending_gets: i64,
    refs: usize,
}

impl Que {
    fn lo(&self) -> i64 {
        (self.base - self.pending_gets).max(0)
    }

    fn hi(&self) -> i64 {
        let hi = self.base + self.pending_puts;
        if self.max > 0 {
            hi.min(self.max as i64)
        } else {
            hi
        }
    }

    fn has_room(&self) -> bool {
        self.max == 0 || self.hi() < self.max as i64
    }
}

struct Tsk {
    h: *mut SpindleTask,
    child: *mut Child,
    plan: Plan,
    id: u64,
    name: String,
    cancel_requested: bool,
    /// Final code and result, once observed.
    fin: Option<(c_int, usize)>,
    /// The event epochs when it was spawned, for its `SetEvent` steps.
    epochs: Vec<u64>,
}

struct Model {
    in_task: bool,
    workers: u32,
    runtime: *mut SpindleRuntime,
    sems: Vec<Option<Sem>>,
    locks: Vec<Option<Lck>>,
    events: Vec<Option<Evt>>,
    queues: Vec<Option<Que>>,
    tasks: Vec<Option<Tsk>>,
    next_token: usize,
    last_id: u64,
    main_id: u64,
    /// Calls whose code was checked.
    checked: usize,
}

fn live_index<T>(slots: &[Option<T>], pick: u8) -> Option<usize> {
    let live: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
    if live.is_empty() {
        None
    } else {
        Some(live[pick as usize % live.len()])
    }
}

fn pause(ms: u8) -> f64 {
    f64::from(ms) / 1000.0
}

impl Model {
    fn new(workers: u32, runtime: *mut SpindleRuntime) -> Model {
        Model {
            in_task: false,
            workers,
            runtime,
            sems: Vec::new(),
            locks: Vec::new(),
            events: Vec::new(),
            queues: Vec::new(),
            tasks: Vec::new(),
            next_token: 1,
            last_id: 0,
            main_id: 0,
            checked: 0,
        }
    }

    fn token(&mut self) -> usize {
        self.next_token += 1;
        self.next_token
    }

    fn live_handles(&self) -> usize {
        self.sems.iter().flatten().count()
            + self.locks.iter().flatten().count()
            + self.events.iter().flatten().count()
            + self.queues.iter().flatten().count()
            + self.tasks.iter().flatten().count()
    }

    // -- creation ------------------------------------------------------------

    fn new_sem(&mut self, bounded: bool, value: i64) {
        let mut h = null_mut();
        // SAFETY: valid out-pointer.
        let rc = unsafe {
            if bounded {
                spindle_bounded_sem_new(value, &mut h)
            } else {
                spindle_sem_new(value, &mut h)
            }
        };
        self.checked += 1;
        if value < 0 {
            expect_code!(rc, EINVAL);
            check!(h.is_null(), "a failed sem_new wrote its out-pointer");
            return;
        }
        expect_code!(rc, OK);
        check!(!h.is_null(), "sem_new gave NULL");
        self.sems.push(Some(Sem {
            h,
            bounded,
            init: value,
            base: value,
            cyclers: 0,
        }));
    }

    fn new_lock(&mut self) {
        let mut h = null_mut();
        // SAFETY: valid out-pointer.
        expect_code!(unsafe { spindle_lock_new(&mut h) }, OK);
        self.checked += 1;
        self.locks.push(Some(Lck {
            h,
            held: false,
            cyclers: 0,
        }));
    }

    fn new_event(&mut self) {
        let mut h = null_mut();
        // SAFETY: valid out-pointer.
        expect_code!(unsafe { spindle_event_new(&mut h) }, OK);
        self.checked += 1;
        self.events.push(Some(Evt {
            h,
            flag: Flag::Unset,
            epoch: 0,
            setters: 0,
            waiters: 0,
        }));
    }

    fn new_queue(&mut self, kind: c_int, max: usize) {
        let mut h = null_mut();
        // SAFETY: valid out-pointer.
        let rc = unsafe { spindle_queue_new(kind, max, &mut h) };
        self.checked += 1;
        if !(0..=2).contains(&kind) {
            expect_code!(rc, EINVAL);
            check!(h.is_null(), "a failed queue_new wrote its out-pointer");
            return;
        }
        expect_code!(rc, OK);
        self.queues.push(Some(Que {
            h,
            kind,
            max,
            base: 0,
            unfinished: 0,
            shut: false,
            tokens: HashSet::new(),
            pending_puts: 0,
            pending_gets: 0,
            refs: 0,
        }));
    }

    // -- semaphores ------------------------------------------------------------

    fn sem_try(&mut self, i: usize) {
        let s = self.sems[i].as_mut().expect("live");
        let mut got = -1;
        // SAFETY: live handle, valid out-pointer.
        expect_code!(unsafe { spindle_sem_try_acquire(s.h, &mut got) }, OK);
        let allowed: &[c_int] = if s.base == 0 {
            &[0]
        } else if s.cyclers == 0 {
            &[1]
        } else {
            &[0, 1]
        };
        expect_in("sem_try_acquire's flag", got, allowed);
        if got == 1 {
            s.base -= 1;
        }
        self.checked += 1;
    }

    fn sem_release(&mut self, i: usize) {
        let s = self.sems[i].as_mut().expect("live");
        if s.bounded && s.base >= s.init {
            if s.cyclers > 0 {
                return; // a child may hold a permit: not predictable
            }
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_sem_release(s.h) }, ESTATE);
        } else {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_sem_release(s.h) }, OK);
            s.base += 1;
        }
        self.checked += 1;
    }

    fn sem_acquire(&mut self, i: usize) {
        let in_task = self.in_task;
        let s = self.sems[i].as_mut().expect("live");
        let h = s.h;
        if !in_task {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_sem_acquire(h) }, ENOTASK);
        } else if s.base >= 1 {
            // SAFETY: live handle; children holding a permit give it back.
            expect_code!(unsafe { spindle_sem_acquire(h) }, OK);
            s.base -= 1;
        } else {
            // SAFETY: live handle.
            blocks_forever("sem_acquire with no permit", || unsafe {
                spindle_sem_acquire(h)
            });
        }
        self.checked += 1;
    }

    fn sem_query(&mut self, i: usize) {
        let s = self.sems[i].as_ref().expect("live");
        let (mut value, mut locked) = (usize::MAX, -1);
        // SAFETY: live handle, valid out-pointers.
        unsafe {
            expect_code!(spindle_sem_value(s.h, &mut value), OK);
            expect_code!(spindle_sem_locked(s.h, &mut locked), OK);
            expect_code!(spindle_sem_value(s.h, null_mut()), EINVAL);
            expect_code!(spindle_sem_locked(s.h, null_mut()), EINVAL);
            expect_code!(spindle_sem_try_acquire(s.h, null_mut()), EINVAL);
        }
        let lo = s.base - s.base.min(s.cyclers as i64);
        check!(
            (lo..=s.base).contains(&(value as i64)),
            "sem_value {value} not in {lo}..={}",
            s.base
        );
        let allowed: &[c_int] = if s.base == 0 {
            &[1]
        } else if s.cyclers == 0 {
            &[0]
        } else {
            &[0, 1]
        };
        expect_in("sem_locked's flag", locked, allowed);
        self.checked += 5;
    }

    // -- locks -------------------------------------------------------------------

    fn lock_acquire(&mut self, i: usize) {
        let in_task = self.in_task;
        let l = self.locks[i].as_mut().expect("live");
        let h = l.h;
        if !in_task {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_lock_acquire(h) }, ENOTASK);
        } else if !l.held {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_lock_acquire(h) }, OK);
            l.held = true;
        } else {
            // SAFETY: live handle. Not reentrant: waits until cancelled.
            blocks_forever("lock_acquire of a lock the task holds", || unsafe {
                spindle_lock_acquire(h)
            });
        }
        self.checked += 1;
    }

    fn lock_release(&mut self, i: usize) {
        let l = self.locks[i].as_mut().expect("live");
        if l.held {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_lock_release(l.h) }, OK);
            l.held = false;
        } else if l.cyclers == 0 {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_lock_release(l.h) }, ESTATE);
        } else {
            return; // a child may hold it
        }
        self.checked += 1;
    }

    fn lock_query(&mut self, i: usize) {
        let l = self.locks[i].as_ref().expect("live");
        let mut locked = -1;
        // SAFETY: live handle, valid out-pointer.
        unsafe {
            expect_code!(spindle_lock_locked(l.h, &mut locked), OK);
            expect_code!(spindle_lock_locked(l.h, null_mut()), EINVAL);
        }
        let allowed: &[c_int] = if l.held {
            &[1]
        } else if l.cyclers == 0 {
            &[0]
        } else {
            &[0, 1]
        };
        expect_in("lock_locked's flag", locked, allowed);
        self.checked += 2;
    }

    // -- events ------------------------------------------------------------------

    fn event_set(&mut self, i: usize) {
        let e = self.events[i].as_mut().expect("live");
        // SAFETY: live handle.
        expect_code!(unsafe { spindle_event_set(e.h) }, OK);
        e.flag = Flag::Set;
        self.checked += 1;
    }

    fn event_clear(&mut self, i: usize) {
        let e = self.events[i].as_mut().expect("live");
        // SAFETY: live handle.
        expect_code!(unsafe { spindle_event_clear(e.h) }, OK);
        e.flag = Flag::Unset;
        e.epoch += 1;
        self.checked += 1;
    }

    fn event_query(&mut self, i: usize) {
        let e = self.events[i].as_mut().expect("live");
        let mut set = -1;
        // SAFETY: live handle, valid out-pointer.
        unsafe {
            expect_code!(spindle_event_is_set(e.h, &mut set), OK);
            expect_code!(spindle_event_is_set(e.h, null_mut()), EINVAL);
        }
        let allowed: &[c_int] = match e.flag {
            Flag::Set => &[1],
            Flag::Unset if e.setters == 0 => &[0],
            _ => &[0, 1],
        };
        expect_in("event_is_set's flag", set, allowed);
        if set == 1 {
            e.flag = Flag::Set;
        } else if e.setters == 0 {
            e.flag = Flag::Unset;
        }
        self.checked += 2;
    }

    fn event_wait(&mut self, i: usize) {
        if !self.in_task {
            let e = self.events[i].as_ref().expect("live");
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_event_wait(e.h) }, ENOTASK);
            self.checked += 1;
            return;
        }
        if self.events[i].as_ref().expect("live").flag == Flag::Maybe {
            self.event_query(i);
        }
        let e = self.events[i].as_ref().expect("live");
        let h = e.h;
        if e.flag == Flag::Set {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_event_wait(h) }, OK);
        } else if e.setters == 0 {
            // SAFETY: live handle.
            blocks_forever("event_wait on an event nobody sets", || unsafe {
                spindle_event_wait(h)
            });
        } else {
            return; // a child may set it at any time
        }
        self.checked += 1;
    }

    // -- queues ------------------------------------------------------------------

    fn q_put(&mut self, i: usize, nowait: bool, priority: Option<i64>) {
        let token = self.token();
        let in_task = self.in_task;
        let q = self.queues[i].as_mut().expect("live");
        let h = q.h;
        // SAFETY: live handle.
        let call = || unsafe {
            match (nowait, priority) {
                (true, None) => spindle_queue_put_nowait(h, item(token)),
                (true, Some(p)) => spindle_queue_put_priority_nowait(h, p, item(token)),
                (false, None) => spindle_queue_put(h, item(token)),
                (false, Some(p)) => spindle_queue_put_priority(h, p, item(token)),
            }
        };
        let rc = if priority.is_some() && q.kind != QUEUE_PRIORITY {
            expect_code!(call(), EINVAL);
            EINVAL
        } else if !nowait && !in_task {
            expect_code!(call(), ENOTASK);
            ENOTASK
        } else if q.shut {
            expect_code!(call(), ESHUTDOWN);
            ESHUTDOWN
        } else if q.has_room() {
            expect_code!(call(), OK);
            OK
        } else if !nowait {
            return; // would wait for a child's get, or forever
        } else {
            let rc = call();
            let allowed: &[c_int] = if q.lo() >= q.max as i64 {
                &[EFULL]
            } else {
                &[OK, EFULL]
            };
            expect_in("queue_put_nowait", rc, allowed);
            rc
        };
        if rc == OK {
            q.base += 1;
            q.unfinished += 1;
            q.tokens.insert(token);
        }
        self.checked += 1;
    }

    fn take_token(&mut self, i: usize, got: usize) {
        let q = self.queues[i].as_mut().expect("live");
        check!(
            q.tokens.remove(&got),
            "queue gave item {got}, which is not in it (or was taken before)"
        );
        q.base -= 1;
    }

    fn q_get(&mut self, i: usize, nowait: bool) {
        let in_task = self.in_task;
        let q = self.queues[i].as_ref().expect("live");
        let h = q.h;
        let mut got = null_mut();
        // SAFETY: live handle.
        unsafe {
            if nowait {
                expect_code!(spindle_queue_get_nowait(h, null_mut()), EINVAL);
            } else {
                expect_code!(spindle_queue_get(h, null_mut()), EINVAL);
            }
        }
        let empty = if q.shut { ESHUTDOWN } else { EEMPTY };
        let rc = if nowait {
            // SAFETY: live handle, valid out-pointer.
            let rc = unsafe { spindle_queue_get_nowait(h, &mut got) };
            let allowed: &[c_int] = if q.lo() >= 1 {
                &[OK]
            } else if q.hi() == 0 {
                &[empty]
            } else {
                &[OK, empty]
            };
            expect_in("queue_get_nowait", rc, allowed);
            rc
        } else if !in_task {
            // SAFETY: live handle, valid out-pointer.
            expect_code!(unsafe { spindle_queue_get(h, &mut got) }, ENOTASK);
            ENOTASK
        } else if q.lo() >= 1 {
            // SAFETY: live handle, valid out-pointer.
            expect_code!(unsafe { spindle_queue_get(h, &mut got) }, OK);
            OK
        } else if q.hi() == 0 && q.shut {
            // SAFETY: live handle, valid out-pointer.
            expect_code!(unsafe { spindle_queue_get(h, &mut got) }, ESHUTDOWN);
            ESHUTDOWN
        } else if q.hi() == 0 && q.pending_puts == 0 {
            // SAFETY: live handle, valid out-pointer.
            blocks_forever("queue_get on an empty queue", || unsafe {
                spindle_queue_get(h, &mut got)
            });
            ECANCELED
        } else {
            return;
        };
        if rc == OK {
            self.take_token(i, got as usize);
        } else {
            check!(got.is_null(), "a failed get wrote its out-pointer");
        }
        self.checked += 2;
    }

    fn q_size(&mut self, i: usize) {
        let q = self.queues[i].as_ref().expect("live");
        let (mut size, mut max) = (usize::MAX, usize::MAX);
        // SAFETY: live handle, valid out-pointers.
        unsafe {
            expect_code!(spindle_queue_size(q.h, &mut size), OK);
            expect_code!(spindle_queue_maxsize(q.h, &mut max), OK);
            expect_code!(spindle_queue_size(q.h, null_mut()), EINVAL);
            expect_code!(spindle_queue_maxsize(q.h, null_mut()), EINVAL);
        }
        check!(
            (q.lo()..=q.hi()).contains(&(size as i64)),
            "queue_size {size} not in {}..={}",
            q.lo(),
            q.hi()
        );
        check!(max == q.max, "queue_maxsize {max}, expected {}", q.max);
        self.checked += 4;
    }

    fn q_task_done(&mut self, i: usize) {
        let q = self.queues[i].as_mut().expect("live");
        // SAFETY: live handle.
        let rc = unsafe { spindle_queue_task_done(q.h) };
        let (lo, hi) = (q.unfinished, q.unfinished + q.pending_puts);
        let allowed: &[c_int] = if lo >= 1 {
            &[OK]
        } else if hi <= 0 {
            &[ESTATE]
        } else {
            &[OK, ESTATE]
        };
        expect_in("queue_task_done", rc, allowed);
        if rc == OK {
            q.unfinished -= 1;
        }
        self.checked += 1;
    }

    fn q_join(&mut self, i: usize) {
        let q = self.queues[i].as_ref().expect("live");
        let h = q.h;
        if !self.in_task {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_queue_join(h) }, ENOTASK);
        } else if q.unfinished + q.pending_puts <= 0 {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_queue_join(h) }, OK);
        } else if q.unfinished >= 1 {
            // SAFETY: live handle. Only this task marks items done.
            blocks_forever("queue_join with unfinished items", || unsafe {
                spindle_queue_join(h)
            });
        } else {
            return;
        }
        self.checked += 1;
    }

    fn q_shutdown(&mut self, i: usize, immediate: bool) {
        let q = self.queues[i].as_mut().expect("live");
        if immediate && q.refs > 0 {
            return; // the items dropped would not be known
        }
        // SAFETY: live handle.
        expect_code!(
            unsafe { spindle_queue_shutdown(q.h, c_int::from(immediate)) },
            OK
        );
        q.shut = true;
        if immediate {
            q.unfinished = (q.unfinished - q.base).max(0);
            q.base = 0;
            q.tokens.clear();
        }
        self.checked += 1;
    }

    // -- freeing -------------------------------------------------------------------

    fn free_sem(&mut self, i: usize) {
        let s = self.sems[i].as_ref().expect("live");
        if s.cyclers > 0 {
            return; // a pending child uses it: freeing could be a use after free
        }
        // SAFETY: live handle, nobody waits on it.
        expect_code!(unsafe { spindle_sem_free(s.h) }, OK);
        self.sems[i] = None;
        self.checked += 1;
    }

    fn free_lock(&mut self, i: usize) {
        let l = self.locks[i].as_ref().expect("live");
        if l.cyclers > 0 {
            return;
        }
        // SAFETY: live handle, nobody waits on it.
        expect_code!(unsafe { spindle_lock_free(l.h) }, OK);
        self.locks[i] = None;
        self.checked += 1;
    }

    fn free_event(&mut self, i: usize) {
        let e = self.events[i].as_ref().expect("live");
        if e.setters + e.waiters > 0 {
            return;
        }
        // SAFETY: live handle, nobody waits on it.
        expect_code!(unsafe { spindle_event_free(e.h) }, OK);
        self.events[i] = None;
        self.checked += 1;
    }

    fn free_queue(&mut self, i: usize) {
        let q = self.queues[i].as_ref().expect("live");
        if q.refs > 0 {
            return;
        }
        // SAFETY: live handle, nobody waits on it.
        expect_code!(unsafe { spindle_queue_free(q.h) }, OK);
        self.queues[i] = None;
        self.checked += 1;
    }

    // -- tasks ---------------------------------------------------------------------

    fn spawn(&mut self, plan: Plan) {
        let mut steps = Vec::new();
        let mut epochs = Vec::new();
        for step in &plan.steps {
            let resolved = match *step {
                Step::Sleep(ms) => Some(CStep::Sleep(pause(ms))),
                Step::Yield => Some(CStep::Yield),
                Step::SetEvent(e) => live_index(&self.events, e).map(|i| {
                    let ev = self.events[i].as_mut().expect("live");
                    ev.setters += 1;
                    epochs.push(ev.epoch);
                    CStep::SetEvent(i, ev.h)
                }),
                Step::WaitEvent(e) => live_index(&self.events, e).map(|i| {
                    let ev = self.events[i].as_mut().expect("live");
                    ev.waiters += 1;
                    CStep::WaitEvent(i, ev.h)
                }),
                Step::PutNowait(q) => match live_index(&self.queues, q) {
                    Some(i) => {
                        let token = self.token();
                        let qu = self.queues[i].as_mut().expect("live");
                        qu.refs += 1;
                        qu.pending_puts += 1;
                        qu.tokens.insert(token);
                        Some(CStep::PutNowait(i, qu.h, token))
                    }
                    None => None,
                },
                Step::GetNowait(q) | Step::Get(q) => live_index(&self.queues, q).map(|i| {
                    let qu = self.queues[i].as_mut().expect("live");
                    qu.refs += 1;
                    qu.pending_gets += 1;
                    if matches!(step, Step::Get(_)) {
                        CStep::Get(i, qu.h)
                    } else {
                        CStep::GetNowait(i, qu.h)
                    }
                }),
                Step::SemCycle(s, ms) => live_index(&self.sems, s).map(|i| {
                    let se = self.sems[i].as_mut().expect("live");
                    se.cyclers += 1;
                    CStep::SemCycle(i, se.h, pause(ms))
                }),
                Step::LockCycle(l, ms) => live_index(&self.locks, l).map(|i| {
                    let lo = self.locks[i].as_mut().expect("live");
                    lo.cyclers += 1;
                    CStep::LockCycle(i, lo.h, pause(ms))
                }),
            };
            steps.extend(resolved);
        }
        let child = Box::into_raw(Box::new(Child {
            steps,
            outcome: plan.outcome,
            started: AtomicBool::new(false),
            records: Mutex::new(Vec::with_capacity(plan.steps.len())),
        }));
        let slot = self.tasks.len();
        let name = format!("t{slot}");
        let cname = std::ffi::CString::new(name.clone()).expect("no NUL");
        let mut h = null_mut();
        // SAFETY: a task function, its argument kept alive, a C string.
        let rc = unsafe {
            spindle_spawn(
                Some(child_body),
                child.cast(),
                if plan.named { cname.as_ptr() } else { null() },
                &mut h,
            )
        };
        expect_code!(rc, OK);
        check!(!h.is_null(), "spawn gave a NULL handle");
        let mut id = 0;
        // SAFETY: live handle.
        expect_code!(unsafe { spindle_task_id(h, &mut id) }, OK);
        check!(
            id > self.last_id && id != self.main_id,
            "task id {id} not above {}",
            self.last_id
        );
        self.last_id = id;
        let name = if plan.named {
            name
        } else {
            format!("Task-{id}")
        };
        self.tasks.push(Some(Tsk {
            h,
            child,
            plan,
            id,
            name,
            cancel_requested: false,
            fin: None,
            epochs,
        }));
        self.checked += 2;
    }

    fn spawn_detached(&mut self, ms: u8) {
        // SAFETY: a task function and an integer argument; NULL `out`
        // detaches it.
        expect_code!(
            unsafe {
                spindle_spawn(
                    Some(sleeper_body),
                    item(usize::from(ms)),
                    null(),
                    null_mut(),
                )
            },
            OK
        );
        self.checked += 1;
    }

    /// The codes a task may end with.
    fn allowed(&self, t: usize) -> Vec<c_int> {
        let task = self.tasks[t].as_ref().expect("live");
        let mut codes = vec![task.plan.outcome.code()];
        if task.cancel_requested {
            codes.push(ECANCELED);
        }
        codes
    }

    /// A task ended with `code` and `value` (seen by a join, result,
    /// gather...): checks it against the model and what the task recorded,
    /// and applies what it did.
    fn observe_final(&mut self, t: usize, code: c_int, value: usize, what: &str) {
        let allowed = self.allowed(t);
        let task = self.tasks[t].as_mut().expect("live");
        if let Some((fin, fin_value)) = task.fin {
            check!(
                fin == code && (code != OK || fin_value == value),
                "{what}: task t{t} gave {code}/{value}, before {fin}/{fin_value}"
            );
            return;
        }
        expect_in(what, code, &allowed);
        if let Outcome::Value(v) = task.plan.outcome {
            if code == OK {
                check!(value == v, "{what}: task t{t} result {value}, expected {v}");
            }
        }
        task.fin = Some((code, value));
        self.settle(t);
    }

    /// A task is known to be done: reads its final code if not seen yet.
    fn known_done(&mut self, t: usize, what: &str) {
        let task = self.tasks[t].as_ref().expect("live");
        if task.fin.is_some() {
            return;
        }
        let mut value = null_mut();
        // SAFETY: live handle, valid out-pointer.
        let rc = unsafe { spindle_task_result(task.h, &mut value) };
        check!(
            rc != ESTATE,
            "{what}: task t{t} said done, but result is ESTATE"
        );
        self.observe_final(t, rc, value as usize, what);
    }

    /// Applies what a finished child did, after checking its records.
    fn settle(&mut self, t: usize) {
        let task = self.tasks[t].as_ref().expect("live");
        let (code, _) = task.fin.expect("final code");
        let cancel_requested = task.cancel_requested;
        // SAFETY: the child is done; it no longer touches its argument.
        let child = unsafe { &*task.child };
        let records = child
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let epochs = task.epochs.clone();
        let plan_code = task.plan.outcome.code();
        let ok_or_cancel = |rc: c_int| rc == OK || (rc == ECANCELED && cancel_requested);
        check!(
            records.len() <= child.steps.len(),
            "t{t}: more records than steps"
        );
        if !child.started.load(SeqCst) {
            check!(
                code == ECANCELED && cancel_requested && records.is_empty(),
                "t{t} never ran, yet ended with {code}"
            );
        } else if records.len() < child.steps.len() {
            let last = records.last().expect("a step ended it");
            check!(
                last.a == ECANCELED || last.b == ECANCELED,
                "t{t} stopped early without a cancellation"
            );
            check!(code == ECANCELED, "t{t} stopped cancelled but ended {code}");
        } else {
            let cancelled_step = records.iter().any(|r| r.a == ECANCELED || r.b == ECANCELED);
            // A request still pending when the body returns makes the task
            // end cancelled (docs/semantics.md, as asyncio).
            let allowed: &[c_int] = if cancelled_step {
                &[ECANCELED]
            } else if cancel_requested {
                &[plan_code, ECANCELED]
            } else {
                &[plan_code]
            };
            check!(
                allowed.contains(&code),
                "t{t} ran its steps and ended {code}, expected one of {allowed:?}"
            );
        }
        let mut event_steps = 0;
        for (k, step) in child.steps.iter().enumerate() {
            let rec = records.get(k).copied();
            match *step {
                CStep::Sleep(_) | CStep::Yield => {
                    if let Some(r) = rec {
                        check!(ok_or_cancel(r.a), "t{t}: sleep/yield gave {}", r.a);
                    }
                }
                CStep::SetEvent(i, _) => {
                    let epoch = epochs[event_steps];
                    event_steps += 1;
                    let e = self.events[i].as_mut().expect("live");
                    e.setters -= 1;
                    if let Some(r) = rec {
                        check!(r.a == OK, "t{t}: event_set gave {}", r.a);
                        e.flag = if e.epoch == epoch || e.flag == Flag::Set {
                            Flag::Set
                        } else {
                            Flag::Maybe
                        };
                    }
                }
                CStep::WaitEvent(i, _) => {
                    self.events[i].as_mut().expect("live").waiters -= 1;
                    if let Some(r) = rec {
                        check!(ok_or_cancel(r.a), "t{t}: event_wait gave {}", r.a);
                    }
                }
                CStep::PutNowait(i, _, token) => {
                    let q = self.queues[i].as_mut().expect("live");
                    q.refs -= 1;
                    q.pending_puts -= 1;
                    let rc = rec.map_or(ECANCELED, |r| r.a);
                    if rc == OK {
                        q.base += 1;
                        q.unfinished += 1;
                    } else {
                        check!(
                            rec.is_none()
                                || (rc == EFULL && q.max > 0)
                                || (rc == ESHUTDOWN && q.shut),
                            "t{t}: queue_put_nowait gave {rc}"
                        );
                        // Never put: nobody can have taken it.
                        check!(
                            q.tokens.remove(&token),
                            "t{t}: item {token} was taken, but its put failed"
                        );
                    }
                }
                CStep::GetNowait(i, _) | CStep::Get(i, _) => {
                    let blocking = matches!(step, CStep::Get(..));
                    let q = self.queues[i].as_mut().expect("live");
                    q.refs -= 1;
                    q.pending_gets -= 1;
                    let shut = q.shut;
                    if let Some(r) = rec {
                        if r.a == OK {
                            self.take_token(i, r.item);
                        } else {
                            check!(
                                (r.a == ESHUTDOWN && shut)
                                    || (r.a == EEMPTY && !blocking)
                                    || (r.a == ECANCELED && blocking && cancel_requested),
                                "t{t}: queue get gave {}",
                                r.a
                            );
                        }
                    }
                }
                CStep::SemCycle(i, _, _) => {
                    self.sems[i].as_mut().expect("live").cyclers -= 1;
                    if let Some(r) = rec {
                        check!(ok_or_cancel(r.a), "t{t}: sem_acquire gave {}", r.a);
                        if r.a == OK {
                            check!(ok_or_cancel(r.b), "t{t}: sleep gave {}", r.b);
                            check!(r.c == OK, "t{t}: sem_release gave {}", r.c);
                        }
                    }
                }
                CStep::LockCycle(i, _, _) => {
                    self.locks[i].as_mut().expect("live").cyclers -= 1;
                    if let Some(r) = rec {
                        check!(ok_or_cancel(r.a), "t{t}: lock_acquire gave {}", r.a);
                        if r.a == OK {
                            check!(ok_or_cancel(r.b), "t{t}: sleep gave {}", r.b);
                            check!(r.c == OK, "t{t}: lock_release gave {}", r.c);
                        }
                    }
                }
            }
        }
    }

    /// Whether joining the task cannot wait forever.
    fn can_finish(&self, t: usize) -> bool {
        let task = self.tasks[t].as_ref().expect("live");
        if task.fin.is_some() || task.cancel_requested {
            return true;
        }
        // SAFETY: the child is alive while the task is live in the model.
        let child = unsafe { &*task.child };
        child.steps.iter().all(|step| match *step {
            CStep::Sleep(_)
            | CStep::Yield
            | CStep::SetEvent(..)
            | CStep::PutNowait(..)
            | CStep::GetNowait(..) => true,
            CStep::WaitEvent(i, _) => self.events[i].as_ref().expect("live").flag == Flag::Set,
            CStep::Get(..) => false,
            CStep::SemCycle(i, _, _) => self.sems[i].as_ref().expect("live").base >= 1,
            CStep::LockCycle(i, _, _) => !self.locks[i].as_ref().expect("live").held,
        })
    }

    fn cancel(&mut self, t: usize, message: bool, want_requested: bool) {
        let task = self.tasks[t].as_mut().expect("live");
        let mut requested = -1;
        let msg = c"stop";
        // SAFETY: live handle, C string, valid out-pointer.
        expect_code!(
            unsafe {
                spindle_task_cancel(
                    task.h,
                    if message { msg.as_ptr() } else { null() },
                    if want_requested {
                        &mut requested
                    } else {
                        null_mut()
                    },
                )
            },
            OK
        );
        self.checked += 1;
        if !want_requested {
            task.cancel_requested = true;
            return;
        }
        if task.fin.is_some() {
            check!(requested == 0, "cancel of a finished task said {requested}");
            return;
        }
        expect_in("cancel's requested flag", requested, &[0, 1]);
        if requested == 1 {
            task.cancel_requested = true;
        } else {
            self.known_done(t, "a task cancel found done");
        }
    }

    fn join(&mut self, t: usize) {
        let h = self.tasks[t].as_ref().expect("live").h;
        let mut value = null_mut();
        if !self.in_task {
            // SAFETY: live handle.
            expect_code!(unsafe { spindle_task_join(h, &mut value) }, ENOTASK);
            return;
        }
        if self.can_finish(t) {
            // SAFETY: live handle, valid out-pointer.
            let rc = unsafe { spindle_task_join(h, &mut value) };
            self.observe_final(t, rc, value as usize, "task_join");
        } else {
            // SAFETY: live handle, valid out-pointer.
            let rc = unsafe { spindle_wait_for(h, 0.003, &mut value) };
            if rc == ETIMEDOUT {
                self.tasks[t].as_mut().expect("live").cancel_requested = true;
                let mut done = -1;
                // SAFETY: live handle.
                expect_code!(unsafe { spindle_task_done(h, &mut done) }, OK);
                check!(done == 1, "wait_for timed out but left the task running");
                value = null_mut();
                // SAFETY: live handle, valid out-pointer.
                let rc = unsafe { spindle_task_result(h, &mut value) };
                self.observe_final(t, rc, value as usize, "after a wait_for timeout");
            } else {
                self.observe_final(t, rc, value as usize, "wait_for");
            }
        }
        self.checked += 1;
    }

    fn done(&mut self, t: usize) {
        let task = self.tasks[t].as_ref().expect("live");
        let (mut done, mut cancelled) = (-1, -1);
        // SAFETY: live handle, valid out-pointers.
        unsafe {
            expect_code!(spindle_task_done(task.h, &mut done), OK);
            expect_code!(spindle_task_cancelled(task.h, &mut cancelled), OK);
            expect_code!(spindle_task_done(task.h, null_mut()), EINVAL);
            expect_code!(spindle_task_cancelled(task.h, null_mut()), EINVAL);
        }
        self.checked += 4;
        if task.fin.is_some() {
            check!(done == 1, "a finished task is not done");
        }
        expect_in("task_done's flag", done, &[0, 1]);
        expect_in("task_cancelled's flag", cancelled, &[0, 1]);
        if cancelled == 1 {
            check!(
                self.allowed(t).contains(&ECANCELED),
                "t{t} is cancelled, yet it neither was asked to nor ends so"
            );
        }
        if done == 1 || cancelled == 1 {
            self.known_done(t, "a done task's result");
            let task = self.tasks[t].as_ref().expect("live");
            let (code, _) = task.fin.expect("final");
            // SAFETY: live handle, valid out-pointer.
            expect_code!(
                unsafe { spindle_task_cancelled(task.h, &mut cancelled) },
                OK
            );
            check!(
                cancelled == c_int::from(code == ECANCELED),
                "t{t} ended {code} but task_cancelled says {cancelled}"
            );
        }
    }

    fn result(&mut self, t: usize) {
        let task = self.tasks[t].as_ref().expect("live");
        let mut value = null_mut();
        // SAFETY: live handle, valid out-pointer.
        let rc = unsafe { spindle_task_result(task.h, &mut value) };
        self.checked += 1;
        if rc == ESTATE {
            check!(task.fin.is_none(), "a finished task's result is ESTATE");
            check!(value.is_null(), "result wrote its out-pointer on ESTATE");
            return;
        }
        self.observe_final(t, rc, value as usize, "task_result");
    }

    fn info(&mut self, t: usize) {
        let task = self.tasks[t].as_ref().expect("live");
        let (mut id, mut length) = (0u64, usize::MAX);
        let mut buffer = [0x7f as c_char; 8];
        // SAFETY: live handle, valid buffers.
        unsafe {
            expect_code!(spindle_task_id(task.h, &mut id), OK);
            expect_code!(spindle_task_id(task.h, null_mut()), EINVAL);
            expect_code!(
                spindle_task_name(task.h, buffer.as_mut_ptr(), 3, &mut length),
                OK
            );
            expect_code!(spindle_task_name(task.h, null_mut(), 4, null_mut()), EINVAL);
        }
        check!(id == task.id, "task id changed: {id} vs {}", task.id);
        check!(
            length == task.name.len(),
            "name length {length}, expected {} ({})",
            task.name.len(),
            task.name
        );
        let cut: Vec<u8> = task.name.bytes().take(2).collect();
        let got: Vec<u8> = buffer[..cut.len()].iter().map(|&c| c as u8).collect();
        check!(got == cut, "task name cut wrong: {got:?}");
        check!(buffer[cut.len()] == 0, "task name not NUL-terminated");
        check!(buffer[3] == 0x7f, "task_name wrote past its capacity");
        let mut full = [0 as c_char; 32];
        length = 0;
        // SAFETY: live handle, a buffer of 32 bytes; capacity 0 with NULL.
        unsafe {
            expect_code!(
                spindle_task_name(task.h, full.as_mut_ptr(), full.len(), &mut length),
                OK
            );
            expect_code!(spindle_task_name(task.h, null_mut(), 0, &mut length), OK);
        }
        // SAFETY: NUL-terminated by the call above.
        let name = unsafe { CStr::from_ptr(full.as_ptr()) };
        check!(
            name.to_bytes() == task.name.as_bytes() && length == task.name.len(),
            "task name {name:?}, expected {}",
            task.name
        );
        self.checked += 6;
    }

    /// Cancels and joins a task not known to be done (cannot wait forever).
    fn finish(&mut self, t: usize) {
        if self.tasks[t].as_ref().expect("live").fin.is_some() {
            return;
        }
        self.cancel(t, false, true);
        if self.tasks[t].as_ref().expect("live").fin.is_none() {
            self.join(t);
        }
    }

    fn free_task(&mut self, t: usize) {
        self.finish(t);
        let task = self.tasks[t].take().expect("live");
        // SAFETY: live handle, freed once.
        expect_code!(unsafe { spindle_task_free(task.h) }, OK);
        // SAFETY: the task is done: its argument is ours again.
        drop(unsafe { Box::from_raw(task.child) });
        self.checked += 1;
    }

    fn pick_tasks(&self, ts: &[u8]) -> Vec<usize> {
        let mut picked = Vec::new();
        for &t in ts {
            if let Some(i) = live_index(&self.tasks, t) {
                if !picked.contains(&i) {
                    picked.push(i);
                }
            }
        }
        picked
    }

    fn handles(&self, picked: &[usize]) -> Vec<*mut SpindleTask> {
        picked
            .iter()
            .map(|&t| self.tasks[t].as_ref().expect("live").h)
            .collect()
    }

    fn gather(&mut self, ts: &[u8], with_codes: bool) {
        let picked = self.pick_tasks(ts);
        if picked.is_empty() || !picked.iter().all(|&t| self.can_finish(t)) {
            return;
        }
        let handles = self.handles(&picked);
        let n = handles.len();
        let mut results = vec![item(usize::MAX); n];
        let mut codes = vec![i32::MIN; n];
        if with_codes {
            // SAFETY: `n` live handles; arrays of `n` entries.
            let rc = unsafe {
                spindle_gather(
                    handles.as_ptr(),
                    n,
                    results.as_mut_ptr(),
                    codes.as_mut_ptr(),
                )
            };
            expect_code!(rc, OK);
            for (k, &t) in picked.iter().enumerate() {
                if codes[k] != OK {
                    check!(results[k].is_null(), "gather: a failure's result not NULL");
                }
                self.observe_final(t, codes[k], results[k] as usize, "gather's codes");
            }
        } else {
            // SAFETY: `n` live handles; an array of `n` entries.
            let rc =
                unsafe { spindle_gather(handles.as_ptr(), n, results.as_mut_ptr(), null_mut()) };
            if rc == OK {
                for (k, &t) in picked.iter().enumerate() {
                    self.observe_final(t, OK, results[k] as usize, "gather");
                }
            } else {
                let allowed: Vec<c_int> = picked
                    .iter()
                    .flat_map(|&t| self.allowed(t))
                    .filter(|&c| c != OK)
                    .collect();
                expect_in("gather's first failure", rc, &allowed);
                check!(
                    results.iter().all(|&r| r == item(usize::MAX)),
                    "a failed gather filled its results"
                );
            }
        }
        self.checked += 1;
    }

    fn wait(&mut self, ts: &[u8], when: c_int, secs: u8) {
        let picked = self.pick_tasks(ts);
        if picked.is_empty() {
            return;
        }
        let handles = self.handles(&picked);
        let n = handles.len();
        let all_safe = picked.iter().all(|&t| self.can_finish(t));
        let seconds = match secs {
            0 => f64::NAN,
            1 => 0.0,
            3 if all_safe => -1.0,
            _ => 0.002,
        };
        let mut done = vec![-1; n];
        let mut count = usize::MAX;
        let known: Vec<bool> = picked
            .iter()
            .map(|&t| self.tasks[t].as_ref().expect("live").fin.is_some())
            .collect();
        // SAFETY: `n` live handles; arrays of `n` entries.
        let rc = unsafe {
            spindle_wait(
                handles.as_ptr(),
                n,
                when,
                seconds,
                done.as_mut_ptr(),
                &mut count,
            )
        };
        self.checked += 1;
        if !(0..=2).contains(&when) || seconds.is_nan() {
            expect_code!(rc, EINVAL);
            check!(
                count == usize::MAX && done.iter().all(|&d| d == -1),
                "a failed wait wrote its out-pointers"
            );
            return;
        }
        expect_code!(rc, OK);
        let ones = done.iter().filter(|&&d| d == 1).count();
        check!(
            done.iter().all(|&d| d == 0 || d == 1) && count == ones,
            "wait: done {done:?}, count {count}"
        );
        for k in 0..n {
            if known[k] {
                check!(done[k] == 1, "wait: a finished task not in done");
            }
        }
        if seconds < 0.0 {
            if when == ALL_COMPLETED {
                check!(ones == n, "wait ALL_COMPLETED returned with {ones} of {n}");
            } else {
                check!(ones >= 1, "wait without a limit returned with none done");
            }
        }
        for (k, &t) in picked.iter().enumerate() {
            if done[k] == 1 {
                self.known_done(t, "a task wait said done");
            }
        }
    }

    fn as_completed(&mut self, ts: &[u8], secs: u8) {
        let mut picked = self.pick_tasks(ts);
        if picked.is_empty() {
            return;
        }
        let all_safe = picked.iter().all(|&t| self.can_finish(t));
        let seconds = match secs {
            0 => f64::NAN,
            1 => 0.0,
            3 if all_safe => -1.0,
            _ => 0.002,
        };
        // A task given twice comes out once.
        picked.push(picked[0]);
        let handles = self.handles(&picked);
        picked.pop();
        let mut it = null_mut();
        // SAFETY: live handles, a valid out-pointer.
        let rc =
            unsafe { spindle_as_completed_new(handles.as_ptr(), handles.len(), seconds, &mut it) };
        self.checked += 1;
        if seconds.is_nan() {
            expect_code!(rc, EINVAL);
            check!(
                it.is_null(),
                "a failed as_completed_new wrote its out-pointer"
            );
            return;
        }
        expect_code!(rc, OK);
        let ids: HashMap<u64, usize> = picked
            .iter()
            .map(|&t| (self.tasks[t].as_ref().expect("live").id, t))
            .collect();
        let mut seen = HashSet::new();
        let mut timed_out = 0;
        for _ in 0..picked.len() {
            let mut next = null_mut();
            // SAFETY: a live iteration, a valid out-pointer.
            let rc = unsafe { spindle_as_completed_next(it, &mut next) };
            self.checked += 1;
            if rc == ETIMEDOUT {
                let limited = seconds >= 0.0;
                check!(limited, "as_completed timed out without a limit");
                timed_out += 1;
                continue;
            }
            expect_code!(rc, OK);
            check!(timed_out == 0, "as_completed gave a task after a time-out");
            let (mut id, mut done) = (0, -1);
            // SAFETY: a new live handle.
            unsafe {
                expect_code!(spindle_task_id(next, &mut id), OK);
                expect_code!(spindle_task_done(next, &mut done), OK);
                expect_code!(spindle_task_free(next), OK);
            }
            check!(done == 1, "as_completed gave a task not done");
            check!(seen.insert(id), "as_completed gave task {id} twice");
            let Some(&t) = ids.get(&id) else {
                panic!("as_completed gave task {id}, not one of its tasks");
            };
            self.known_done(t, "as_completed's task");
        }
        // SAFETY: a live iteration.
        unsafe {
            expect_code!(spindle_as_completed_next(it, null_mut()), EEMPTY);
            expect_code!(spindle_as_completed_free(it), OK);
        }
        self.checked += 2;
    }

    // -- invalid calls ------------------------------------------------------------

    fn invalid(&mut self, which: u8) {
        let in_task = self.in_task;
        // SAFETY: each call gets NULL (or bad values) where the header says
        // the library checks for them; handles passed are live.
        unsafe {
            match which {
                0 => {
                    let mut out = null_mut();
                    expect_code!(spindle_sem_new(-1, &mut out), EINVAL);
                    expect_code!(spindle_bounded_sem_new(i64::MIN, &mut out), EINVAL);
                    check!(out.is_null(), "a failed sem_new wrote its out-pointer");
                    expect_code!(spindle_sem_new(1, null_mut()), EINVAL);
                    expect_code!(spindle_bounded_sem_new(1, null_mut()), EINVAL);
                    expect_code!(spindle_lock_new(null_mut()), EINVAL);
                    expect_code!(spindle_event_new(null_mut()), EINVAL);
                    expect_code!(spindle_queue_new(QUEUE_FIFO, 0, null_mut()), EINVAL);
                    let mut q = null_mut();
                    expect_code!(spindle_queue_new(3, 0, &mut q), EINVAL);
                    expect_code!(spindle_queue_new(c_int::MIN, 1, &mut q), EINVAL);
                    check!(q.is_null(), "a failed queue_new wrote its out-pointer");
                }
                1 => {
                    let (mut flag, mut value) = (0, 0usize);
                    expect_code!(spindle_sem_acquire(null_mut()), EINVAL);
                    expect_code!(spindle_sem_try_acquire(null_mut(), &mut flag), EINVAL);
                    expect_code!(spindle_sem_release(null_mut()), EINVAL);
                    expect_code!(spindle_sem_locked(null(), &mut flag), EINVAL);
                    expect_code!(spindle_sem_value(null(), &mut value), EINVAL);
                    expect_code!(spindle_sem_free(null_mut()), EINVAL);
                    expect_code!(spindle_lock_acquire(null_mut()), EINVAL);
                    expect_code!(spindle_lock_release(null_mut()), EINVAL);
                    expect_code!(spindle_lock_locked(null(), &mut flag), EINVAL);
                    expect_code!(spindle_lock_free(null_mut()), EINVAL);
                    expect_code!(spindle_event_set(null_mut()), EINVAL);
                    expect_code!(spindle_event_clear(null_mut()), EINVAL);
                    expect_code!(spindle_event_is_set(null(), &mut flag), EINVAL);
                    expect_code!(spindle_event_wait(null_mut()), EINVAL);
                    expect_code!(spindle_event_free(null_mut()), EINVAL);
                }
                2 => {
                    let mut got = null_mut();
                    let mut size = 0;
                    expect_code!(spindle_queue_put(null_mut(), item(1)), EINVAL);
                    expect_code!(spindle_queue_put_priority(null_mut(), 0, item(1)), EINVAL);
                    expect_code!(spindle_queue_put_nowait(null_mut(), item(1)), EINVAL);
                    expect_code!(
                        spindle_queue_put_priority_nowait(null_mut(), 0, item(1)),
                        EINVAL
                    );
                    expect_code!(spindle_queue_get(null_mut(), &mut got), EINVAL);
                    expect_code!(spindle_queue_get_nowait(null_mut(), &mut got), EINVAL);
                    expect_code!(spindle_queue_task_done(null_mut()), EINVAL);
                    expect_code!(spindle_queue_join(null_mut()), EINVAL);
                    expect_code!(spindle_queue_size(null(), &mut size), EINVAL);
                    expect_code!(spindle_queue_maxsize(null(), &mut size), EINVAL);
                    expect_code!(spindle_queue_shutdown(null_mut(), 1), EINVAL);
                    expect_code!(spindle_queue_free(null_mut()), EINVAL);
                    check!(got.is_null(), "a failed get wrote its out-pointer");
                }
                3 => {
                    let mut value = null_mut();
                    let (mut flag, mut id, mut len) = (0, 0u64, 0usize);
                    let mut buf = [0 as c_char; 4];
                    expect_code!(spindle_task_join(null(), &mut value), EINVAL);
                    expect_code!(spindle_wait_for(null(), 1.0, &mut value), EINVAL);
                    expect_code!(spindle_task_cancel(null(), null(), &mut flag), EINVAL);
                    expect_code!(spindle_task_done(null(), &mut flag), EINVAL);
                    expect_code!(spindle_task_cancelled(null(), &mut flag), EINVAL);
                    expect_code!(spindle_task_result(null(), &mut value), EINVAL);
                    expect_code!(spindle_task_id(null(), &mut id), EINVAL);
                    expect_code!(
                        spindle_task_name(null(), buf.as_mut_ptr(), 4, &mut len),
                        EINVAL
                    );
                    expect_code!(spindle_task_free(null_mut()), EINVAL);
                    expect_code!(spindle_task_current(null_mut()), EINVAL);
                    let mut t = null_mut();
                    let rc = spindle_spawn(None, null_mut(), null(), &mut t);
                    expect_code!(rc, if in_task { EINVAL } else { ENOTASK });
                    check!(t.is_null(), "a failed spawn wrote its out-pointer");
                }
                4 => {
                    expect_code!(spindle_sleep(f64::NAN), EINVAL);
                    expect_code!(spindle_sleep(-1.0), if in_task { OK } else { ENOTASK });
                    expect_code!(
                        spindle_sleep(f64::NEG_INFINITY),
                        if in_task { OK } else { ENOTASK }
                    );
                    expect_code!(spindle_sleep(0.0), if in_task { OK } else { ENOTASK });
                    expect_code!(spindle_yield(), if in_task { OK } else { ENOTASK });
                    if in_task {
                        blocks_forever("sleep(+inf)", || spindle_sleep(f64::INFINITY));
                        blocks_forever("sleep(1e300)", || spindle_sleep(1e300));
                    }
                }
                5 => {
                    let mut value = null_mut();
                    let mut code = 0;
                    let none: [*mut SpindleTask; 1] = [null_mut()];
                    let mut count = usize::MAX;
                    let mut done = [-1; 1];
                    expect_code!(
                        spindle_gather(null(), 0, null_mut(), null_mut()),
                        if in_task { OK } else { ENOTASK }
                    );
                    expect_code!(spindle_gather(null(), 2, &mut value, &mut code), EINVAL);
                    expect_code!(
                        spindle_gather(none.as_ptr(), 1, &mut value, null_mut()),
                        EINVAL
                    );
                    expect_code!(
                        spindle_wait(null(), 0, ALL_COMPLETED, -1.0, null_mut(), &mut count),
                        EINVAL
                    );
                    expect_code!(
                        spindle_wait(
                            none.as_ptr(),
                            1,
                            FIRST_COMPLETED,
                            0.0,
                            done.as_mut_ptr(),
                            &mut count
                        ),
                        EINVAL
                    );
                    expect_code!(
                        spindle_wait(null(), 3, FIRST_COMPLETED, 0.0, null_mut(), &mut count),
                        EINVAL
                    );
                    check!(
                        count == usize::MAX && done[0] == -1 && code == 0 && value.is_null(),
                        "failed combinators wrote their out-pointers"
                    );
                }
                6 => {
                    let mut it = null_mut();
                    let none: [*mut SpindleTask; 1] = [null_mut()];
                    expect_code!(spindle_as_completed_new(null(), 1, -1.0, &mut it), EINVAL);
                    expect_code!(
                        spindle_as_completed_new(none.as_ptr(), 1, -1.0, &mut it),
                        EINVAL
                    );
                    expect_code!(
                        spindle_as_completed_new(null(), 0, -1.0, null_mut()),
                        EINVAL
                    );
                    expect_code!(
                        spindle_as_completed_new(null(), 0, f64::NAN, &mut it),
                        EINVAL
                    );
                    check!(
                        it.is_null(),
                        "a failed as_completed_new wrote its out-pointer"
                    );
                    expect_code!(spindle_as_completed_next(null_mut(), null_mut()), EINVAL);
                    expect_code!(spindle_as_completed_free(null_mut()), EINVAL);
                    expect_code!(spindle_as_completed_new(null(), 0, 0.5, &mut it), OK);
                    expect_code!(
                        spindle_as_completed_next(it, null_mut()),
                        if in_task { EEMPTY } else { ENOTASK }
                    );
                    expect_code!(spindle_as_completed_free(it), OK);
                }
                7 => {
                    let mut scope = null_mut();
                    let mut expired = 0;
                    expect_code!(spindle_timeout_begin(f64::NAN, &mut scope), EINVAL);
                    expect_code!(spindle_timeout_begin(1.0, null_mut()), EINVAL);
                    check!(
                        scope.is_null(),
                        "a failed timeout_begin wrote its out-pointer"
                    );
                    expect_code!(spindle_timeout_end(null_mut(), 0), EINVAL);
                    expect_code!(spindle_timeout_reschedule(null_mut(), 1.0), EINVAL);
                    expect_code!(spindle_timeout_expired(null(), &mut expired), EINVAL);
                    expect_code!(spindle_timeout_free(null_mut()), EINVAL);
                    let rc = spindle_timeout_begin(-1.0, &mut scope);
                    if !in_task {
                        expect_code!(rc, ENOTASK);
                        return;
                    }
                    expect_code!(rc, OK);
                    expect_code!(spindle_timeout_free(scope), EBUSY); // not ended
                    expect_code!(spindle_timeout_reschedule(scope, f64::NAN), EINVAL);
                    expect_code!(spindle_timeout_reschedule(scope, 30.0), OK);
                    expect_code!(spindle_timeout_expired(scope, null_mut()), EINVAL);
                    expect_code!(spindle_timeout_expired(scope, &mut expired), OK);
                    check!(expired == 0, "an unexpired scope says expired");
                    expect_code!(spindle_timeout_end(scope, 42), 42);
                    expect_code!(spindle_timeout_end(scope, 0), ESTATE); // ended twice
                    expect_code!(spindle_timeout_free(scope), OK);
                }
                8 => {
                    let mut group = null_mut();
                    let mut count = usize::MAX;
                    expect_code!(spindle_group_new(null_mut()), EINVAL);
                    expect_code!(
                        spindle_group_spawn(
                            null_mut(),
                            Some(sleeper_body),
                            null_mut(),
                            null(),
                            null_mut()
                        ),
                        EINVAL
                    );
                    expect_code!(spindle_group_wait(null_mut(), 0), EINVAL);
                    expect_code!(
                        spindle_group_errors(null(), null_mut(), 0, &mut count),
                        EINVAL
                    );
                    expect_code!(spindle_group_free(null_mut()), EINVAL);
                    let rc = spindle_group_new(&mut group);
                    if !in_task {
                        expect_code!(rc, ENOTASK);
                        check!(group.is_null(), "a failed group_new wrote its out-pointer");
                        return;
                    }
                    expect_code!(rc, OK);
                    expect_code!(
                        spindle_group_spawn(group, None, null_mut(), null(), null_mut()),
                        EINVAL
                    );
                    expect_code!(
                        spindle_group_spawn(
                            group,
                            Some(sleeper_body),
                            item(1),
                            c"g".as_ptr(),
                            null_mut()
                        ),
                        OK
                    );
                    expect_code!(spindle_group_free(group), EBUSY); // not waited
                    expect_code!(
                        spindle_group_errors(group, null_mut(), 2, &mut count),
                        EINVAL
                    );
                    expect_code!(spindle_group_wait(group, 0), OK);
                    expect_code!(spindle_group_wait(group, 0), ESTATE);
                    expect_code!(
                        spindle_group_spawn(group, Some(sleeper_body), item(1), null(), null_mut()),
                        ESTATE
                    );
                    expect_code!(spindle_group_errors(group, null_mut(), 0, &mut count), OK);
                    check!(count == 0, "a group that succeeded lists {count} errors");
                    expect_code!(spindle_group_free(group), OK);
                }
                9 => {
                    let mut result = null_mut();
                    expect_code!(
                        spindle_runtime_run(
                            null_mut(),
                            Some(sleeper_body),
                            null_mut(),
                            &mut result
                        ),
                        EINVAL
                    );
                    expect_code!(spindle_runtime_free(null_mut()), EINVAL);
                    expect_code!(
                        spindle_runtime_spawn(
                            null_mut(),
                            Some(sleeper_body),
                            null_mut(),
                            null(),
                            null_mut()
                        ),
                        EINVAL
                    );
                    let mut t = null_mut();
                    expect_code!(
                        spindle_runtime_spawn(self.runtime, None, null_mut(), null(), &mut t),
                        EINVAL
                    );
                    check!(t.is_null(), "a failed runtime_spawn wrote its out-pointer");
                    expect_code!(spindle_options_init(null_mut()), EINVAL);
                    let mut rt = null_mut();
                    expect_code!(spindle_runtime_new(null(), null_mut()), EINVAL);
                    let mut options = zeroed_options();
                    expect_code!(spindle_runtime_new(&options, &mut rt), EINVAL);
                    options.struct_size = std::mem::size_of::<usize>();
                    expect_code!(spindle_runtime_new(&options, &mut rt), EINVAL);
                    expect_code!(spindle_options_init(&mut options), OK);
                    options.shutdown_timeout = f64::NAN;
                    expect_code!(spindle_runtime_new(&options, &mut rt), EINVAL);
                    check!(rt.is_null(), "a failed runtime_new wrote its out-pointer");
                    if in_task {
                        // Inside a task: refused, nothing freed.
                        expect_code!(
                            spindle_runtime_run(
                                self.runtime,
                                Some(sleeper_body),
                                null_mut(),
                                &mut result
                            ),
                            ESTATE
                        );
                        expect_code!(spindle_runtime_free(self.runtime), ESTATE);
                    }
                    check!(result.is_null(), "a failed runtime_run wrote its result");
                }
                10 => {
                    let mut current = null_mut();
                    let rc = spindle_task_current(&mut current);
                    if !in_task {
                        expect_code!(rc, ENOTASK);
                        check!(
                            current.is_null(),
                            "a failed task_current wrote its out-pointer"
                        );
                        return;
                    }
                    expect_code!(rc, OK);
                    let (mut id, mut done, mut len) = (0, -1, 0);
                    let mut value = null_mut();
                    expect_code!(spindle_task_id(current, &mut id), OK);
                    check!(
                        id == self.main_id,
                        "task_current gave {id}, not the main task"
                    );
                    expect_code!(spindle_task_done(current, &mut done), OK);
                    check!(done == 0, "the running task says done");
                    expect_code!(spindle_task_result(current, &mut value), ESTATE);
                    expect_code!(spindle_wait_for(current, f64::NAN, &mut value), EINVAL);
                    expect_code!(spindle_task_name(current, null_mut(), 0, &mut len), OK);
                    check!(len == 4, "the main task's name has length {len}");
                    check!(value.is_null(), "failed calls wrote their out-pointers");
                    expect_code!(spindle_task_free(current), OK);
                }
                11 => {
                    let mut revents = -1;
                    expect_code!(spindle_fd_wait(-1, READABLE, 0.0, &mut revents), EINVAL);
                    expect_code!(spindle_fd_wait(0, 0, 0.0, &mut revents), EINVAL);
                    expect_code!(spindle_fd_wait(0, 64, 0.0, &mut revents), EINVAL);
                    expect_code!(spindle_fd_wait(0, READABLE, f64::NAN, null_mut()), EINVAL);
                }
                _ => {
                    for code in [-100, -16, -15, -1, 0, 1, 42, c_int::MAX, c_int::MIN] {
                        let text = spindle_strerror(code);
                        check!(!text.is_null(), "strerror({code}) is NULL");
                        check!(
                            !CStr::from_ptr(text).to_bytes().is_empty(),
                            "strerror({code}) is empty"
                        );
                    }
                }
            }
        }
        self.checked += 1;
    }

    // -- freeing an object while a task waits on it ---------------------------

    fn blocked_free(&mut self, kind: u8) {
        // Only with one worker is it certain that the waiter, once started,
        // is suspended inside the call: freeing too early would be a use
        // after free, not a code.
        let certain = self.workers == 1;
        let kind = kind % 4;
        let mut handle: *mut c_void = null_mut();
        // SAFETY: fresh handles, used by this task and the waiter only.
        unsafe {
            match kind {
                0 => expect_code!(
                    spindle_sem_new(0, (&mut handle as *mut *mut c_void).cast()),
                    OK
                ),
                1 => {
                    expect_code!(
                        spindle_lock_new((&mut handle as *mut *mut c_void).cast()),
                        OK
                    );
                    expect_code!(spindle_lock_acquire(handle.cast()), OK);
                }
                2 => expect_code!(
                    spindle_event_new((&mut handle as *mut *mut c_void).cast()),
                    OK
                ),
                _ => expect_code!(
                    spindle_queue_new(QUEUE_FIFO, 1, (&mut handle as *mut *mut c_void).cast()),
                    OK
                ),
            }
        }
        let waiter = Box::into_raw(Box::new(Waiter {
            kind,
            handle,
            started: AtomicBool::new(false),
        }));
        let mut task = null_mut();
        // SAFETY: the waiter lives until joined below.
        expect_code!(
            unsafe {
                spindle_spawn(
                    Some(waiter_body),
                    waiter.cast(),
                    c"waiter".as_ptr(),
                    &mut task,
                )
            },
            OK
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        // SAFETY: alive until freed below.
        while !unsafe { &*waiter }.started.load(SeqCst) {
            check!(Instant::now() < deadline, "the waiter never started");
            // SAFETY: called from a C task.
            expect_code!(unsafe { spindle_sleep(0.0005) }, OK);
        }
        // SAFETY: the handle is live; the waiter waits on it (certain) or
        // is about to.
        unsafe {
            if certain {
                // One worker: the waiter ran up to its blocking call.
                let rc = match kind {
                    0 => spindle_sem_free(handle.cast()),
                    1 => spindle_lock_free(handle.cast()),
                    2 => spindle_event_free(handle.cast()),
                    _ => spindle_queue_free(handle.cast()),
                };
                expect_code!(rc, EBUSY);
                let mut done = -1;
                expect_code!(spindle_task_done(task, &mut done), OK);
                check!(done == 0, "the waiter did not wait");
            }
            let mut value = null_mut();
            match kind {
                0 => expect_code!(spindle_sem_release(handle.cast()), OK),
                1 => expect_code!(spindle_lock_release(handle.cast()), OK),
                2 => expect_code!(spindle_event_set(handle.cast()), OK),
                _ => expect_code!(spindle_queue_put_nowait(handle.cast(), item(77)), OK),
            }
            expect_code!(spindle_task_join(task, &mut value), OK);
            if kind == 3 {
                check!(value == item(77), "the waiting get took {value:?}");
            }
            expect_code!(spindle_task_free(task), OK);
            let rc = match kind {
                0 => {
                    let mut v = usize::MAX;
                    expect_code!(spindle_sem_value(handle.cast(), &mut v), OK);
                    check!(v == 0, "the waiter's permit came back: {v}");
                    spindle_sem_free(handle.cast())
                }
                1 => {
                    let mut locked = -1;
                    expect_code!(spindle_lock_locked(handle.cast(), &mut locked), OK);
                    check!(locked == 1, "the waiter does not hold the lock");
                    spindle_lock_free(handle.cast())
                }
                2 => spindle_event_free(handle.cast()),
                _ => spindle_queue_free(handle.cast()),
            };
            expect_code!(rc, OK);
            drop(Box::from_raw(waiter));
        }
        self.checked += 4;
    }

    // -- dispatch -----------------------------------------------------------------

    fn apply(&mut self, op: &Op) {
        match op {
            Op::NewSem { bounded, value } => self.new_sem(*bounded, *value),
            Op::NewLock => self.new_lock(),
            Op::NewEvent => self.new_event(),
            Op::NewQueue { kind, maxsize } => self.new_queue(*kind, *maxsize),
            Op::FreeSem(i) => self.on_sem(*i, Model::free_sem),
            Op::FreeLock(i) => self.on_lock(*i, Model::free_lock),
            Op::FreeEvent(i) => self.on_event(*i, Model::free_event),
            Op::FreeQueue(i) => self.on_queue(*i, Model::free_queue),
            Op::SemTry(i) => self.on_sem(*i, Model::sem_try),
            Op::SemRelease(i) => self.on_sem(*i, Model::sem_release),
            Op::SemAcquire(i) => self.on_sem(*i, Model::sem_acquire),
            Op::SemQuery(i) => self.on_sem(*i, Model::sem_query),
            Op::LockAcquire(i) => self.on_lock(*i, Model::lock_acquire),
            Op::LockRelease(i) => self.on_lock(*i, Model::lock_release),
            Op::LockQuery(i) => self.on_lock(*i, Model::lock_query),
            Op::EventSet(i) => self.on_event(*i, Model::event_set),
            Op::EventClear(i) => self.on_event(*i, Model::event_clear),
            Op::EventQuery(i) => self.on_event(*i, Model::event_query),
            Op::EventWait(i) => self.on_event(*i, Model::event_wait),
            Op::QPut {
                q,
                nowait,
                priority,
            } => {
                let (nowait, priority) = (*nowait, *priority);
                self.on_queue(*q, |m, i| m.q_put(i, nowait, priority));
            }
            Op::QGet { q, nowait } => {
                let nowait = *nowait;
                self.on_queue(*q, |m, i| m.q_get(i, nowait));
            }
            Op::QSize(i) => self.on_queue(*i, Model::q_size),
            Op::QTaskDone(i) => self.on_queue(*i, Model::q_task_done),
            Op::QJoin(i) => self.on_queue(*i, Model::q_join),
            Op::QShutdown { q, immediate } => {
                let immediate = *immediate;
                self.on_queue(*q, |m, i| m.q_shutdown(i, immediate));
            }
            Op::Spawn(plan) => self.spawn(plan.clone()),
            Op::SpawnDetached(ms) => self.spawn_detached(*ms),
            Op::Cancel {
                t,
                message,
                requested,
            } => {
                if let Some(i) = live_index(&self.tasks, *t) {
                    self.cancel(i, *message, *requested);
                }
            }
            Op::Join(t) => self.on_task(*t, Model::join),
            Op::Done(t) => self.on_task(*t, Model::done),
            Op::Result(t) => self.on_task(*t, Model::result),
            Op::Info(t) => self.on_task(*t, Model::info),
            Op::FreeTask(t) => self.on_task(*t, Model::free_task),
            Op::Gather { ts, codes } => self.gather(ts, *codes),
            Op::Wait { ts, when, secs } => self.wait(ts, *when, *secs),
            Op::AsCompleted { ts, secs } => self.as_completed(ts, *secs),
            Op::Sleep(ms) => {
                // SAFETY: called from a C task.
                expect_code!(unsafe { spindle_sleep(pause(*ms)) }, OK);
                self.checked += 1;
            }
            Op::Yield => {
                // SAFETY: called from a C task.
                expect_code!(unsafe { spindle_yield() }, OK);
                self.checked += 1;
            }
            Op::Invalid(which) => self.invalid(*which),
            Op::BlockedFree(kind) => self.blocked_free(*kind),
        }
    }

    fn on_sem(&mut self, pick: u8, f: impl FnOnce(&mut Model, usize)) {
        if let Some(i) = live_index(&self.sems, pick) {
            f(self, i);
        }
    }

    fn on_lock(&mut self, pick: u8, f: impl FnOnce(&mut Model, usize)) {
        if let Some(i) = live_index(&self.locks, pick) {
            f(self, i);
        }
    }

    fn on_event(&mut self, pick: u8, f: impl FnOnce(&mut Model, usize)) {
        if let Some(i) = live_index(&self.events, pick) {
            f(self, i);
        }
    }

    fn on_queue(&mut self, pick: u8, f: impl FnOnce(&mut Model, usize)) {
        if let Some(i) = live_index(&self.queues, pick) {
            f(self, i);
        }
    }

    fn on_task(&mut self, pick: u8, f: impl FnOnce(&mut Model, usize)) {
        if let Some(i) = live_index(&self.tasks, pick) {
            f(self, i);
        }
    }

    /// Calls from the plain thread: the blocking ones give ENOTASK.
    fn outside(&mut self, op: Outside) {
        match op {
            Outside::SemTry => self.sem_try(0),
            Outside::SemRelease => self.sem_release(0),
            Outside::SemAcquire => self.sem_acquire(0),
            Outside::SemQuery => self.sem_query(0),
            Outside::LockAcquire => self.lock_acquire(0),
            Outside::LockRelease => self.lock_release(0),
            Outside::LockQuery => self.lock_query(0),
            Outside::EventSet => self.event_set(0),
            Outside::EventClear => self.event_clear(0),
            Outside::EventQuery => self.event_query(0),
            Outside::EventWait => self.event_wait(0),
            Outside::QPutNowait => self.q_put(0, true, None),
            Outside::QGetNowait => self.q_get(0, true),
            Outside::QPut => self.q_put(0, false, None),
            Outside::QGet => self.q_get(0, false),
            Outside::QJoin => self.q_join(0),
            Outside::QSize => self.q_size(0),
            Outside::QTaskDone => self.q_task_done(0),
            Outside::Blocking(which) => self.invalid(which),
        }
    }

    /// Ends every task, frees every handle; the model must be empty after.
    fn cleanup(&mut self) {
        for t in 0..self.tasks.len() {
            if self.tasks[t].is_some() {
                self.free_task(t);
            }
        }
        for i in 0..self.sems.len() {
            if self.sems[i].is_some() {
                self.free_sem(i);
            }
        }
        for i in 0..self.locks.len() {
            if self.locks[i].is_some() {
                self.free_lock(i);
            }
        }
        for i in 0..self.events.len() {
            if self.events[i].is_some() {
                self.free_event(i);
            }
        }
        for i in 0..self.queues.len() {
            if self.queues[i].is_some() {
                self.free_queue(i);
            }
        }
        check!(
            self.live_handles() == 0,
            "{} handles still live after the cleanup",
            self.live_handles()
        );
    }
}

const INVALID_CALLS: u8 = 13;
/// The invalid calls whose outside-a-task codes differ (ENOTASK).
const OUTSIDE_BLOCKING: u8 = 13;

fn zeroed_options() -> SpindleOptions {
    SpindleOptions {
        struct_size: 0,
        workers: 0,
        max_blocking_threads: 0,
        stack_size: 0,
        shutdown_timeout: 0.0,
    }
}

// -- running a case -----------------------------------------------------------

struct MainArg {
    model: Model,
    ops: Vec<Op>,
    failure: Option<String>,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "a panic".to_string()
    }
}

unsafe extern "C" fn main_body(arg: *mut c_void, result: *mut *mut c_void) -> c_int {
    // SAFETY: the test thread blocks in runtime_run while this runs.
    let main = unsafe { &mut *arg.cast::<MainArg>() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let model = &mut main.model;
        model.in_task = true;
        let mut me = null_mut();
        // SAFETY: a valid out-pointer.
        unsafe {
            expect_code!(spindle_task_current(&mut me), OK);
            expect_code!(spindle_task_id(me, &mut model.main_id), OK);
            expect_code!(spindle_task_free(me), OK);
        }
        for op in &main.ops {
            model.apply(op);
        }
        model.cleanup();
    }));
    match outcome {
        Ok(()) => {
            // SAFETY: a valid out-pointer.
            unsafe { result.write(item(4242)) };
            OK
        }
        Err(payload) => {
            main.failure = Some(panic_message(&*payload));
            99
        }
    }
}

/// Runs one case on a fresh runtime; `Err` describes the first wrong code.
fn run_case(case: &Case) -> Result<usize, String> {
    let mut options = zeroed_options();
    // SAFETY: valid pointers.
    unsafe {
        assert_eq!(spindle_options_init(&mut options), OK);
    }
    options.workers = case.workers;
    options.max_blocking_threads = 1;
    options.stack_size = 64 * 1024;
    options.shutdown_timeout = 2.0;
    let mut runtime = null_mut();
    // SAFETY: initialized options, a valid out-pointer.
    assert_eq!(unsafe { spindle_runtime_new(&options, &mut runtime) }, OK);
    let mut model = Model::new(case.workers, runtime);

    // Objects made on the plain thread, used there, then by the main task.
    model.new_sem(false, case.sem_value);
    model.new_lock();
    model.new_event();
    model.new_queue(QUEUE_FIFO, case.queue_max);
    let outside = catch_unwind(AssertUnwindSafe(|| {
        for op in &case.outside {
            model.outside(*op);
        }
        for which in 0..OUTSIDE_BLOCKING {
            model.invalid(which);
        }
    }));
    if let Err(payload) = outside {
        // Leaks the handles: a failing case must not free what may be wrong.
        // SAFETY: not inside a task; nothing runs on it yet.
        unsafe { spindle_runtime_free(runtime) };
        return Err(format!("outside a task: {}", panic_message(&*payload)));
    }

    // A task spawned from the plain thread, checked from it.
    let mut external = null_mut();
    // SAFETY: a task function with an integer argument, a valid out-pointer.
    unsafe {
        assert_eq!(
            spindle_runtime_spawn(
                runtime,
                Some(sleeper_body),
                item(1),
                c"ext".as_ptr(),
                &mut external
            ),
            OK
        );
        let mut value = null_mut();
        assert_eq!(spindle_task_join(external, &mut value), ENOTASK);
        assert_eq!(spindle_wait_for(external, 1.0, &mut value), ENOTASK);
        let one = [external];
        let mut count = usize::MAX;
        assert_eq!(
            spindle_gather(one.as_ptr(), 1, null_mut(), null_mut()),
            ENOTASK
        );
        assert_eq!(
            spindle_wait(one.as_ptr(), 1, ALL_COMPLETED, -1.0, null_mut(), &mut count),
            ENOTASK
        );
        assert!(value.is_null() && count == usize::MAX);
        let rc = spindle_task_result(external, &mut value);
        assert!(
            rc == ESTATE || (rc == OK && value == item(1)),
            "result {rc}"
        );
    }

    let mut arg = MainArg {
        model,
        ops: case.ops.clone(),
        failure: None,
    };
    let mut result = null_mut();
    // SAFETY: `arg` outlives the call, which blocks until the task ends.
    let rc = unsafe {
        spindle_runtime_run(
            runtime,
            Some(main_body),
            (&mut arg as *mut MainArg).cast(),
            &mut result,
        )
    };
    if let Some(failure) = arg.failure.take() {
        // Leaks what the model still holds: children may use it until the
        // runtime is gone, and nothing is freed twice.
        // SAFETY: not inside a task.
        unsafe { spindle_runtime_free(runtime) };
        std::mem::forget(arg);
        return Err(failure);
    }
    assert_eq!(rc, OK, "the main task ended {rc}");
    assert_eq!(result, item(4242));
    let checked = arg.model.checked;
    assert_eq!(arg.model.live_handles(), 0);

    // SAFETY: the external task's handle is live; not inside a task.
    unsafe {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut done = 0;
        while done == 0 {
            assert_eq!(spindle_task_done(external, &mut done), OK);
            assert!(Instant::now() < deadline, "the external task never ended");
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut value = null_mut();
        assert_eq!(spindle_task_result(external, &mut value), OK);
        assert_eq!(value, item(1));
        assert_eq!(spindle_task_join(external, &mut value), ENOTASK);
        assert_eq!(spindle_task_free(external), OK);
        assert_eq!(spindle_runtime_free(runtime), OK);
    }
    Ok(checked)
}

fn soak() -> bool {
    std::env::var("SPINDLE_SOAK").is_ok_and(|v| v == "1")
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

/// Random call sequences, valid and invalid, inside and outside tasks:
/// every code as the model predicts, no crash, and no allocation left over.
#[test]
fn random_c_call_sequences_give_the_documented_codes_and_leak_nothing() {
    let _serial = serial();
    // Warm up: the lazily made statics and this thread's locals.
    let warm = Case {
        workers: 2,
        sem_value: 1,
        queue_max: 1,
        outside: vec![Outside::QPutNowait, Outside::SemAcquire],
        ops: (0..INVALID_CALLS)
            .map(Op::Invalid)
            .chain((0..4).map(Op::BlockedFree))
            .chain([
                Op::Spawn(Plan {
                    steps: vec![Step::Sleep(1), Step::PutNowait(0), Step::SemCycle(0, 1)],
                    outcome: Outcome::Value(3),
                    named: true,
                }),
                Op::SpawnDetached(1),
                Op::Gather {
                    ts: vec![0],
                    codes: true,
                },
                Op::AsCompleted {
                    ts: vec![0],
                    secs: 3,
                },
            ])
            .collect(),
    };
    run_case(&warm).expect("the warm-up case");

    MEASURER.store(tid(), SeqCst);
    let (cases, max_ops) = if soak() { (2000, 80) } else { (128, 40) };
    let mut runner = TestRunner::new(config(cases));
    let leaked = Mutex::new((0i64, 0i64));
    let checked = AtomicUsize::new(0);
    let result = runner.run(&case_strategy(max_ops), |case| {
        let before = live();
        let outcome = run_case(&case);
        let after = live();
        let n = outcome.map_err(TestCaseError::fail)?;
        checked.fetch_add(n, SeqCst);
        let (blocks, bytes) = (after.0 - before.0, after.1 - before.1);
        prop_assert!(
            blocks <= SLACK_BLOCKS && bytes <= SLACK_BYTES,
            "a case left {blocks} blocks ({bytes} bytes) allocated"
        );
        let mut total = leaked.lock().unwrap_or_else(|p| p.into_inner());
        total.0 += blocks;
        total.1 += bytes;
        Ok(())
    });
    MEASURER.store(0, SeqCst);
    if let Err(e) = result {
        panic!("{e}");
    }
    let (blocks, bytes) = *leaked.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        blocks <= SLACK_BLOCKS && bytes <= SLACK_BYTES,
        "{cases} cases together left {blocks} blocks ({bytes} bytes) allocated"
    );
    assert!(
        checked.load(SeqCst) > cases as usize * 10,
        "too few calls checked: {}",
        checked.load(SeqCst)
    );
}

/// Every invalid call and every "free while a task waits" case, on one
/// worker (where the waiter is certainly inside its call), twice: the
/// second run must leave no allocation behind.
#[test]
fn every_misuse_gives_its_code_on_one_worker_and_leaks_nothing() {
    let _serial = serial();
    let case = Case {
        workers: 1,
        sem_value: 0,
        queue_max: 1,
        outside: vec![
            Outside::SemAcquire,
            Outside::SemRelease,
            Outside::SemTry,
            Outside::LockAcquire,
            Outside::LockRelease,
            Outside::EventWait,
            Outside::EventSet,
            Outside::EventQuery,
            Outside::QPut,
            Outside::QPutNowait,
            Outside::QPutNowait,
            Outside::QJoin,
            Outside::QGet,
            Outside::QGetNowait,
            Outside::QTaskDone,
            Outside::QTaskDone,
            Outside::QSize,
        ],
        ops: (0..INVALID_CALLS)
            .map(Op::Invalid)
            .chain((0..4).map(Op::BlockedFree))
            .chain([
                Op::SemAcquire(0), // a permit released outside
                Op::SemAcquire(0), // none left: waits until the scope ends it
                Op::LockAcquire(0),
                Op::LockAcquire(0), // not reentrant
                Op::LockRelease(0),
                Op::LockRelease(0), // not held
                Op::EventWait(0),   // set outside
                Op::EventClear(0),
                Op::EventWait(0), // nobody sets it
                Op::QJoin(0),     // nothing unfinished
                Op::QGet {
                    q: 0,
                    nowait: false,
                }, // empty: waits until the scope ends it
                Op::QShutdown {
                    q: 0,
                    immediate: false,
                },
                Op::QGet {
                    q: 0,
                    nowait: false,
                },
            ])
            .collect(),
    };
    run_case(&case).expect("the first run");
    MEASURER.store(tid(), SeqCst);
    let before = live();
    let outcome = run_case(&case);
    let after = live();
    MEASURER.store(0, SeqCst);
    let checked = outcome.expect("the second run");
    assert!(checked > 60, "only {checked} calls checked");
    let (blocks, bytes) = (after.0 - before.0, after.1 - before.1);
    assert!(
        blocks <= SLACK_BLOCKS && bytes <= SLACK_BYTES,
        "the run left {blocks} blocks ({bytes} bytes) allocated"
    );
}

/// The error model says out-pointers are written only on success, but
/// `spindle_fd_wait` stores 0 in `*revents` before it checks its arguments
/// (src/ffi/io.rs), so a failed call overwrites the caller's value.
#[test]
fn fd_wait_leaves_revents_alone_when_it_fails() {
    let _serial = serial();
    let mut revents = -1;
    // SAFETY: a valid out-pointer; the arguments are rejected.
    unsafe {
        assert_eq!(spindle_fd_wait(-1, READABLE, 0.0, &mut revents), EINVAL);
    }
    assert_eq!(revents, -1, "a failed fd_wait wrote its out-pointer");
    // SAFETY: as above; outside a task.
    unsafe {
        assert_eq!(spindle_fd_wait(0, READABLE, 0.0, &mut revents), ENOTASK);
    }
    assert_eq!(revents, -1, "a failed fd_wait wrote its out-pointer");
}

/// Runs `body` as the main C task of a fresh runtime with `workers`
/// workers; a failed check in it comes back as `Err`.
fn in_task(workers: u32, mut body: impl FnMut()) -> Result<(), String> {
    struct Arg<'a> {
        body: &'a mut dyn FnMut(),
        failure: Option<String>,
    }
    unsafe extern "C" fn trampoline(arg: *mut c_void, _result: *mut *mut c_void) -> c_int {
        // SAFETY: the caller blocks in runtime_run while this runs.
        let arg = unsafe { &mut *arg.cast::<Arg>() };
        match catch_unwind(AssertUnwindSafe(|| (arg.body)())) {
            Ok(()) => OK,
            Err(payload) => {
                arg.failure = Some(panic_message(&*payload));
                99
            }
        }
    }
    let mut options = zeroed_options();
    let mut runtime = null_mut();
    let mut arg = Arg {
        body: &mut body,
        failure: None,
    };
    // SAFETY: valid pointers; `arg` outlives the run.
    let rc = unsafe {
        assert_eq!(spindle_options_init(&mut options), OK);
        options.workers = workers;
        assert_eq!(spindle_runtime_new(&options, &mut runtime), OK);
        let rc = spindle_runtime_run(
            runtime,
            Some(trampoline),
            (&mut arg as *mut Arg).cast(),
            null_mut(),
        );
        assert_eq!(spindle_runtime_free(runtime), OK);
        rc
    };
    match arg.failure {
        Some(failure) => Err(failure),
        None if rc == OK => Ok(()),
        None => Err(format!("the main task ended {rc}")),
    }
}

/// A task body that ends at once with its argument as result.
unsafe extern "C" fn quick_body(arg: *mut c_void, result: *mut *mut c_void) -> c_int {
    // SAFETY: a valid out-pointer from the runtime.
    unsafe { result.write(arg) };
    OK
}

/// docs/c-api.md: collecting a result leaves it in the task; `wait_for` is
/// "otherwise as `spindle_task_join`". But after a successful
/// `spindle_wait_for`, joining the same task (or asking its result) gives
/// `SPINDLE_ESTATE`: `wait_for` takes the result out of the task.
#[test]
fn a_result_collected_by_wait_for_stays_in_the_task() {
    let _serial = serial();
    in_task(1, || {
        let mut task = null_mut();
        let mut value = null_mut();
        // SAFETY: a task function with an integer argument; live handle.
        unsafe {
            expect_code!(
                spindle_spawn(Some(quick_body), item(7), null(), &mut task),
                OK
            );
            expect_code!(spindle_wait_for(task, 1.0, &mut value), OK);
            check!(value == item(7), "wait_for gave {value:?}");
            value = null_mut();
            let rc = spindle_task_result(task, &mut value);
            let rc2 = spindle_task_join(task, &mut value);
            expect_code!(spindle_task_free(task), OK);
            check!(
                rc == OK && rc2 == OK,
                "then task_result gave {rc}, task_join {rc2}"
            );
            check!(value == item(7), "then the result was {value:?}");
        }
    })
    .unwrap();
}

/// The same as for `wait_for`, with `spindle_shield` ("waits for `task`
/// like `spindle_task_join`"): after it returned the result, the task's
/// result is gone (`SPINDLE_ESTATE`).
#[test]
fn a_result_collected_by_shield_stays_in_the_task() {
    let _serial = serial();
    in_task(1, || {
        let mut task = null_mut();
        let mut value = null_mut();
        // SAFETY: a task function with an integer argument; live handle.
        unsafe {
            expect_code!(
                spindle_spawn(Some(quick_body), item(8), null(), &mut task),
                OK
            );
            expect_code!(spindle_shield(task, &mut value), OK);
            check!(value == item(8), "shield gave {value:?}");
            value = null_mut();
            let rc = spindle_task_result(task, &mut value);
            let rc2 = spindle_task_join(task, &mut value);
            expect_code!(spindle_task_free(task), OK);
            check!(
                rc == OK && rc2 == OK,
                "then task_result gave {rc}, task_join {rc2}"
            );
            check!(value == item(8), "then the result was {value:?}");
        }
    })
    .unwrap();
}

/// What the two above expect, as `spindle_task_join` and `spindle_gather`
/// do it: the result stays in the task.
#[test]
fn a_result_collected_by_join_or_gather_stays_in_the_task() {
    let _serial = serial();
    in_task(2, || {
        // SAFETY: task functions with integer arguments; live handles.
        unsafe {
            for how in 0..2 {
                let mut task = null_mut();
                let mut value = null_mut();
                expect_code!(
                    spindle_spawn(Some(quick_body), item(9), null(), &mut task),
                    OK
                );
                let rc = if how == 0 {
                    spindle_task_join(task, &mut value)
                } else {
                    spindle_gather(&task, 1, &mut value, null_mut())
                };
                expect_code!(rc, OK);
                check!(value == item(9), "the first collection gave {value:?}");
                for _ in 0..2 {
                    value = null_mut();
                    expect_code!(spindle_task_result(task, &mut value), OK);
                    check!(value == item(9), "task_result then gave {value:?}");
                    value = null_mut();
                    expect_code!(spindle_task_join(task, &mut value), OK);
                    check!(value == item(9), "task_join then gave {value:?}");
                }
                expect_code!(spindle_task_free(task), OK);
            }
        }
    })
    .unwrap();
}
