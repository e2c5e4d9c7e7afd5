//! The multi-threaded work-stealing scheduler.
//!
//! # Design
//!
//! Each worker thread owns a FIFO run queue (a crossbeam-deque `Worker`), and
//! a *LIFO slot* that holds the task most recently woken by the task running
//! on that worker. Every worker's queue can be stolen from (the `Stealer`s
//! and the LIFO slots sit in [`Shared::remotes`]), and a global injector
//! takes the tasks scheduled from outside the runtime.
//!
//! Where a task goes when it becomes runnable ([`Schedule`]):
//! - spawned from a worker: the back of that worker's queue. The spawner
//!   keeps running, and the new task runs when the spawner yields or another
//!   worker steals it (asyncio's `create_task` rule). A sleeping worker is
//!   woken for it only if more than the one task this worker runs next is
//!   waiting, counted at once or when the spawner's step ends: a chain of
//!   tasks that each spawn the next stays on one worker, as with tokio's
//!   LIFO slot (chained_spawn on 2 workers: 8-9 context switches per 1000
//!   spawns down to 2.7). The price, also tokio's: a task that spawns one
//!   child and then computes without yielding delays that child unless
//!   another worker is awake to steal it;
//! - woken by a task on the same worker: the LIFO slot, the old occupant
//!   moving to the back of the queue. Message passing between two tasks then
//!   stays on one core and in cache. (A runtime with a single worker has no
//!   LIFO slot: it keeps asyncio's one FIFO ready queue exactly.) Timers fired
//!   by a worker go to the back of its queue, in deadline order;
//! - woken during its own poll (`yield_now`, an exhausted budget): the back
//!   of the queue, so it runs after everything already waiting. As for a
//!   spawn, a sleeping worker is woken only if more than that one task is
//!   waiting: a task yielding alone runs again here, instead of being
//!   stolen back and forth by a worker woken at every yield (a yield on 2
//!   workers: 65-75 ns down to 25-32 ns, as on one worker). A C task's
//!   yield that would come straight back (nothing queued, nothing due at
//!   the step boundary) goes on in place instead, without leaving its
//!   fiber ([`WorkerCore::yield_in_place`]); likewise a C task about to
//!   join the one task queued after it runs that task's step inside the
//!   join ([`WorkerCore::run_awaited_in_place`]);
//! - from any other thread: the injector, and one sleeping worker is woken;
//! - on a runtime of several workers, a spawn that finds its worker's queue
//!   holding [`LOCAL_QUEUE_SPILL_AT`] tasks first spills the queue's oldest
//!   half to the injector, once per step ([`WorkerCore::push_local_spilling`]);
//! - spawned *eagerly* from a worker (asyncio's `eager_start`): nowhere at
//!   first. Its first step runs inside the spawn, nested in the spawner's
//!   step ([`WorkerCore::try_run_eagerly`]), and it is queued only if that
//!   step yields (at the back, like a new task). At most
//!   [`MAX_EAGER_DEPTH`] eager steps nest on one thread; past that, and
//!   while timers or I/O events are being dispatched, an eager task is
//!   queued like a lazy one.
//!
//! How a worker finds its next task ([`WorkerCore::next_task`], the order of
//! crossbeam-deque's `find_task`): every [`GLOBAL_QUEUE_INTERVAL`] ticks the
//! injector first (so outside work is never starved by local work); then the
//! LIFO slot, at most [`MAX_LIFO_STREAK`] times in a row (two tasks waking
//! each other cannot starve the queue); then the local queue; then the
//! injector; then, as a *searcher*, steal half of another worker's queue or
//! its LIFO slot, from a random victim. The LIFO slot is stealable: a task
//! woken by a task that then runs for a long time is not stuck behind it
//! (tokio-rs/tokio#4941). The worker of a runtime of one worker, which
//! nobody steals from, reads its queue one task ahead and prefetches that
//! task ([`WorkerCore::pop_local`]).
//!
//! When nothing is found the worker parks, following the protocol in
//! [`idle`]: at most one searching worker is woken per burst of new work,
//! at most half the workers search, and no wakeup is lost.
//!
//! A task that is always ready cannot starve the others: every await point
//! of the runtime consumes one unit of a per-poll budget ([`coop`]), and when
//! it is spent the task goes to the back of the queue.
//!
//! Why the local queue stays a growable deque (measured, fork-join on one
//! worker): crossbeam's FIFO `Worker` reallocates its buffer when it fills
//! and when it drains below a quarter, and with glibc each of those
//! allocations (1 KiB and up) consolidates the freed small blocks first:
//! about a quarter of fib(27) through task groups. A fixed 256-slot
//! stealable ring with a lock-guarded overflow list, which never allocates,
//! ran the first fib(27) of a process 30% faster (0.67-0.71 s against
//! 0.98-1.02 s), but every later run took 1.3-1.7 s against 0.80-0.87 s,
//! and skynet 1.6-1.8 s against
//! 0.24-0.28 s: without those consolidations the small blocks freed by one
//! burst of tasks stay scattered in glibc's fast bins and the next burst
//! allocates from them (with `malloc_trim` between runs the ring stayed at
//! 0.66-0.72 s). A queue that never allocates pays off only together with
//! task-side allocations that do not go through those bins.
//!
//! Why a worker's queue spills to the injector on several workers (tokio's
//! local queue is bounded the same way): a fork-join tree run breadth-first
//! keeps most of itself alive. fib(27) through task groups spawns 635k
//! tasks; with unbounded FIFO queues up to 310k of them were alive at once
//! on 2 workers (peak RSS 155 MB), and the time went to first touches of
//! cold task blocks. Spilled, the oldest (the largest subtrees) wait in the
//! injector while the newest, the deepest, run, complete and free their
//! parents: 75k alive at most (37 MB), and 375-400 ms against 550-600 ms
//! (tokio: 40-50k alive, 660-780 ms). Only spawns spill, and a step spills
//! once at most: a step that spawns a flood of tasks (one generation, with
//! no depth to favour) or a queue kept long by wakes gained nothing from
//! it and paid with tasks moved between the workers and their allocator
//! arenas (spilling on every spawn and displaced wake, on 2 workers: 1M
//! sleeps from one task 15% slower, 100k tasks gated by a semaphore 20%).
//! One worker keeps its one FIFO queue: asyncio's order is observable
//! there.
//!
//! # Invariants
//! - A task is in at most one queue or slot at a time, and then it carries
//!   the `NOTIFIED` bit and the queue owns one reference
//!   (see `task::state`).
//! - Only the owning worker pushes to its queue and writes its LIFO slot;
//!   anyone may steal from both (the slot by an atomic swap).
//! - After [`Shared::closed`] is set, nothing new is accepted: spawns
//!   complete at once with a runtime error, and a task pushed to the
//!   injector by a racing wake or spill is drained by whoever sees `closed`
//!   after its push ([`Shared::inject`]).

pub(crate) mod coop;
mod idle;
mod park;

use crate::error::Error;
use crate::io::blocking::BlockingPool;
use crate::io::driver::{Driver, NOT_SLEEPING, SLEEPING_FOREVER};
use crate::loom::{
    fence, lock, wait_timeout, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Condvar, Mutex,
};
use crate::runtime::{context, Handle, Unhandled};
use crate::task::completion::StoredCallback;
use crate::task::raw::{Header, Notified, RawTask, RunOutcome, Spawn};
use crate::task::recycle::{BlockPool, TaskCache};
use crate::task::registry::{Registry, Unregistering};
use crate::task::{AnyTask, TaskId};
use crate::time::Timers;
use crossbeam_deque::{Injector, Steal, Stealer, Worker as LocalQueue};
use idle::Idle;
use park::Parker;
use std::cell::Cell;
use std::future::Future;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every this many ticks a worker looks at the injector before its own queue.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// At most this many batches of the injector (crossbeam moves at most 32
/// tasks per batch) are moved in ahead of a task that yielded.
const INJECTOR_BATCHES_AHEAD_OF_YIELD: usize = 32;
/// On a runtime of several workers, a spawn that finds its worker's queue
/// holding this many tasks first moves the queue's oldest half to the
/// injector (once per step; see [`WorkerCore::push_local_spilling`]).
const LOCAL_QUEUE_SPILL_AT: usize = 256;
/// Tasks a worker may take from its LIFO slot in a row.
const MAX_LIFO_STREAK: u32 = 3;
/// Eager first steps that may run nested in one another on one thread;
/// a deeper eager spawn is queued like a lazy one.
const MAX_EAGER_DEPTH: u32 = 64;

/// Why a task is being scheduled; decides where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// A new task.
    Spawn,
    /// Woken by another task or by an event.
    Wake,
}

/// A hook that receives reports of failures nobody handled.
pub(crate) type ReportHook = Arc<dyn Fn(&Unhandled) + Send + Sync>;

/// What the workers of one runtime share.
pub(crate) struct Shared {
    injector: Injector<Notified>,
    remotes: Box<[Remote]>,
    idle: Idle,
    pub(crate) registry: Registry,
    /// Unfinished tasks, visible and hidden.
    live: AtomicUsize,
    /// The last [`failure order`](Shared::next_failure_order) handed out.
    failures: AtomicU64,
    /// No new tasks are accepted; queues are being drained.
    closed: AtomicBool,
    /// Workers leave their loops.
    stopping: AtomicBool,
    /// Signalled when `live` drops to zero (shutdown waits on it).
    all_done: (Mutex<()>, Condvar),
    report_hook: ReportHook,
    /// The timing wheels, one per worker.
    pub(crate) timers: Timers,
    /// The mio driver idle workers sleep in.
    pub(crate) driver: Driver,
    /// The threads of `to_thread`.
    pub(crate) blocking: Arc<BlockingPool>,
    /// Done callbacks waiting to run (see [`Shared::call_soon`]).
    callbacks: Mutex<CallbackQueue>,
    /// Task blocks passed between the workers' caches (see `recycle`); none
    /// with one worker.
    block_pool: Option<Arc<BlockPool>>,
    /// Tasks start eagerly unless their builder says otherwise (asyncio's
    /// `eager_task_factory`).
    eager_tasks: bool,
}

/// A created task waiting for its start (see [`Shared::create`]). Dropping
/// it without starting would leave the task registered and never run.
#[must_use = "a created task runs only once started"]
pub(crate) struct PendingStart {
    /// `None` if the runtime was closed and the task is already complete.
    task: Option<Notified>,
    eager: bool,
}

impl PendingStart {
    /// Queues the task on `shared`, the runtime that created it; an eager
    /// task instead runs its first step now when this thread is one of the
    /// runtime's workers and may nest one more eager step (see
    /// [`MAX_EAGER_DEPTH`]), and is queued otherwise.
    pub(crate) fn start(self, shared: &Shared) {
        let Some(task) = self.task else {
            return;
        };
        debug_assert!(ptr::eq(&*task.raw().header().shared, shared));
        #[cfg(spindle_helgrind)]
        task.raw().header().state.announce_first_queueing();
        let task = if self.eager {
            context::with_worker(|worker| match worker {
                Some(worker) if ptr::eq(&*worker.shared, shared) => worker.try_run_eagerly(task),
                _ => Some(task),
            })
        } else {
            Some(task)
        };
        if let Some(task) = task {
            shared.schedule(task, Schedule::Spawn);
        }
    }
}

struct CallbackQueue {
    pending: std::collections::VecDeque<StoredCallback>,
    /// An internal task is draining the queue.
    draining: bool,
}

/// The parts of a worker that other threads touch.
struct Remote {
    stealer: Stealer<Notified>,
    /// The LIFO slot: a task (with its queue reference) or null.
    lifo: AtomicPtr<Header>,
    parker: Parker,
}

impl Shared {
    /// A scheduler for `workers` workers; returns it with the local queues
    /// to hand to each worker thread.
    pub(crate) fn new(
        workers: usize,
        report_hook: ReportHook,
        blocking: BlockingPool,
        eager_tasks: bool,
    ) -> std::io::Result<(Arc<Shared>, Vec<LocalQueue<Notified>>)> {
        let driver = Driver::new()?;
        let locals: Vec<_> = (0..workers).map(|_| LocalQueue::new_fifo()).collect();
        let remotes = locals
            .iter()
            .map(|local| Remote {
                stealer: local.stealer(),
                lifo: AtomicPtr::new(ptr::null_mut()),
                parker: Parker::new(),
            })
            .collect();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            remotes,
            idle: Idle::new(workers),
            registry: Registry::new(workers * 4),
            live: AtomicUsize::new(0),
            failures: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            all_done: (Mutex::new(()), Condvar::new()),
            report_hook,
            timers: Timers::new(workers),
            driver,
            blocking: Arc::new(blocking),
            callbacks: Mutex::new(CallbackQueue {
                pending: Default::default(),
                draining: false,
            }),
            block_pool: (workers > 1).then(Arc::default),
            eager_tasks,
        });
        Ok((shared, locals))
    }

    pub(crate) fn workers(&self) -> usize {
        self.remotes.len()
    }

    /// Creates a task and starts it (see [`Shared::create`]).
    pub(crate) fn spawn<F, T, E>(self: &Arc<Self>, future: F, spawn: Spawn) -> Option<RawTask>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        let (raw, start) = self.create(future, spawn);
        start.start(self);
        raw
    }

    /// Creates and registers a task without starting it. Returns the task
    /// with one reference for the caller's handle (none for hidden tasks),
    /// and the start that queues it (or runs its first step, if eager),
    /// which the caller makes once it has recorded the task where it must
    /// be before the task can finish (a task group's children).
    pub(crate) fn create<F, T, E>(
        self: &Arc<Self>,
        future: F,
        spawn: Spawn,
    ) -> (Option<RawTask>, PendingStart)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        let hidden = spawn.hidden;
        let eager = spawn.eager.unwrap_or(self.eager_tasks);
        // References: the queue's, plus the handle's and the registry's.
        let refs = if hidden { 1 } else { 3 };
        let id = TaskId::next();
        if !hidden {
            self.registry.prefetch_slot(id);
        }
        let raw = RawTask::allocate(future, id, self.clone(), spawn, refs);
        self.live.fetch_add(1, AcqRel);
        let accepted = if hidden {
            !self.closed.load(SeqCst)
        } else if self.registry.insert(raw) {
            true
        } else {
            // Closed: the registry did not take its reference.
            raw.drop_reference();
            false
        };
        // SAFETY: the task is NOTIFIED and one of its references is the queue's.
        let notified = unsafe { Notified::from_raw(raw) };
        let start = if accepted {
            PendingStart {
                task: Some(notified),
                eager,
            }
        } else {
            RawTask::complete_unrun(notified, Error::runtime("the runtime has shut down"));
            PendingStart { task: None, eager }
        };
        ((!hidden).then_some(raw), start)
    }

    /// Makes a runnable task run: locally when called on one of this
    /// runtime's workers, through the injector otherwise.
    pub(crate) fn schedule(&self, task: Notified, how: Schedule) {
        let remote = context::with_worker(|worker| match worker {
            Some(worker) if ptr::eq(&*worker.shared, self) => {
                worker.schedule_local(task, how);
                None
            }
            _ => Some(task),
        });
        if let Some(task) = remote {
            if self.inject([task]) {
                self.notify_parked();
            }
        }
    }

    /// Pushes `tasks` to the injector. Returns whether the runtime still
    /// accepts them: if it closed meanwhile, the injector is drained instead
    /// (the push, then the `SeqCst` fence and the load of `closed`, pair
    /// with `close`'s store and then drain: one of the two drains sees the
    /// tasks).
    fn inject(&self, tasks: impl IntoIterator<Item = Notified>) -> bool {
        for task in tasks {
            self.injector.push(task);
        }
        fence(SeqCst);
        if self.closed.load(SeqCst) {
            self.drain_injector();
            return false;
        }
        true
    }

    fn notify_parked(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            self.remotes[index].parker.unpark(&self.driver);
        }
    }

    /// A timer for `tick` was registered: make sure the driver's sleeper
    /// does not oversleep it.
    pub(crate) fn timer_added(&self, tick: u64) {
        self.driver.timer_added(tick);
    }

    fn drain_injector(&self) {
        while let Some(task) = self.steal_one_injected() {
            drop(task);
        }
    }

    /// The injector's front task, if any (retrying a contended steal).
    fn steal_one_injected(&self) -> Option<Notified> {
        loop {
            match self.injector.steal() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    /// Whether any queue, slot or the injector holds a task.
    fn has_work(&self) -> bool {
        !self.injector.is_empty()
            || self
                .remotes
                .iter()
                .any(|r| !r.stealer.is_empty() || !r.lifo.load(Acquire).is_null())
    }

    /// A task completed: it leaves the registry, so `all_tasks` no longer
    /// lists it (that leaves out completed tasks at once). On one of the
    /// workers of a runtime with several, the removal joins the worker's
    /// batch (see [`WorkerCore::defer_unregister`]); elsewhere it happens
    /// now. A single worker does not batch: its removals rarely meet another
    /// thread on a shard's lock, and a batch delays freeing the task blocks
    /// its next spawns would reuse (chained_spawn on one worker: 200-211 ->
    /// 218-220 µs with batches).
    pub(crate) fn unregister(&self, task: RawTask) {
        let deferred = context::with_worker(|worker| match worker {
            Some(worker) if self.workers() > 1 && ptr::eq(Arc::as_ptr(&worker.shared), self) => {
                if let Some(entry) = self.registry.take_key(task) {
                    worker.defer_unregister(entry);
                }
                true
            }
            _ => false,
        });
        if !deferred && self.registry.remove(task) {
            task.drop_reference();
        }
    }

    /// The place of a task's failure (an error or a cancellation) among
    /// this runtime's failures, taken as the task completes (under its
    /// lock). A task that fails after seeing another one done (awaiting it,
    /// say) gets a later place, even when the two complete on different
    /// workers and the first one's done callbacks have not run yet: a group
    /// orders its children's errors by it, and a gather picks its first
    /// failure by it, as asyncio orders them by completion. `Relaxed`: the count's
    /// modification order already follows every happens-before edge (the
    /// task locks through which one task sees another done).
    pub(crate) fn next_failure_order(&self) -> u64 {
        self.failures.fetch_add(1, Relaxed) + 1
    }

    /// A task completed and its callbacks ran: count it down.
    pub(crate) fn task_finished(&self) {
        if self.live.fetch_sub(1, AcqRel) == 1 {
            let _guard = lock(&self.all_done.0);
            self.all_done.1.notify_all();
        }
    }

    /// Runs done callbacks soon, on the runtime, in the order they were
    /// handed in across all calls (asyncio's `call_soon` FIFO): they go to
    /// one queue drained by a single internal task at a time. Inline if the
    /// runtime no longer runs tasks.
    pub(crate) fn call_soon(self: &Arc<Self>, callbacks: impl IntoIterator<Item = StoredCallback>) {
        if self.closed.load(SeqCst) {
            run_callbacks(Some(self), callbacks, None);
            return;
        }
        let start_runner = {
            let mut queue = lock(&self.callbacks);
            queue.pending.extend(callbacks);
            !std::mem::replace(&mut queue.draining, true)
        };
        if start_runner {
            let shared = self.clone();
            let runner = async move {
                shared.drain_callbacks();
                Ok::<(), Error>(())
            };
            self.spawn(
                runner,
                Spawn {
                    name: None,
                    hidden: true,
                    eager: Some(false),
                },
            );
        }
    }

    /// Runs queued callbacks one at a time until the queue is empty.
    fn drain_callbacks(&self) {
        loop {
            let next = {
                let mut queue = lock(&self.callbacks);
                let next = queue.pending.pop_front();
                queue.draining = next.is_some();
                next
            };
            match next {
                Some(callback) => run_callbacks(Some(self), [callback], None),
                None => return,
            }
        }
    }

    /// Hands a report of an unhandled failure to the runtime's hook.
    pub(crate) fn report(&self, report: Unhandled) {
        let hook = &self.report_hook;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&report))).is_err() {
            crate::runtime::default_report(&report);
        }
    }

    pub(crate) fn all_tasks(&self) -> Vec<AnyTask> {
        self.registry.snapshot()
    }

    pub(crate) fn live_tasks(&self) -> usize {
        self.live.load(Acquire)
    }

    /// Waits until no task is unfinished, or `deadline` passes. Returns
    /// whether every task finished.
    pub(crate) fn wait_all_done(&self, deadline: Instant) -> bool {
        let mut guard = lock(&self.all_done.0);
        loop {
            if self.live.load(Acquire) == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Bounded waits: a task finishing between the check and the wait
            // is seen at the next round at the latest.
            let wait = (deadline - now).min(Duration::from_millis(10));
            guard = wait_timeout(&self.all_done.1, guard, wait).0;
        }
    }

    /// Stops accepting tasks and hands back the ones still registered.
    pub(crate) fn close(&self) -> Vec<RawTask> {
        self.closed.store(true, SeqCst);
        self.driver.shut_down();
        let left = self.registry.close();
        self.drain_injector();
        left
    }

    /// Tells every worker to leave its loop.
    pub(crate) fn stop_workers(&self) {
        self.stopping.store(true, SeqCst);
        for remote in self.remotes.iter() {
            remote.parker.unpark(&self.driver);
        }
    }
}

/// Runs stored done callbacks in order, outside any task; a panicking
/// callback is reported and the next ones still run. `task`: the task whose
/// completion released them (see [`StoredCallback::run`]).
pub(crate) fn run_callbacks(
    shared: Option<&Shared>,
    callbacks: impl IntoIterator<Item = StoredCallback>,
    task: Option<&AnyTask>,
) {
    // Like asyncio's, callbacks run outside any task.
    let _no_task = context::leave_task();
    for callback in callbacks {
        let run = || callback.run(task);
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            let report = Unhandled::callback_failed(Error::panicked(&*payload));
            match shared {
                Some(shared) => shared.report(report),
                None => crate::runtime::default_report(&report),
            }
        }
    }
}

/// The state of one worker, owned by its thread and reachable from the
/// thread's context while the worker loop runs.
pub(crate) struct WorkerCore {
    index: usize,
    shared: Arc<Shared>,
    local: LocalQueue<Notified>,
    tick: Cell<u32>,
    lifo_streak: Cell<u32>,
    /// Ticks until the next look at this worker's timers (see `maintenance`).
    ticks_to_timer_check: Cell<u32>,
    searching: Cell<bool>,
    rng: Cell<u64>,
    /// Set while firing timers or dispatching I/O events: the tasks they
    /// wake are held here, in order, and queued together once the whole
    /// batch is done, so that no task runs before every timer due with it
    /// has fired (two nested timeout scopes with one deadline both expire,
    /// as in asyncio), and I/O wakes do not go through the LIFO slot.
    collecting: Cell<bool>,
    collected: std::cell::RefCell<Vec<Notified>>,
    /// Tasks completed on this worker that still hold their registry
    /// reference: they leave the registry together, one lock per shard,
    /// when [`UNREGISTER_BATCH`] have gathered and before the worker parks
    /// or exits. One removal per task meant one trip of a shard's lock
    /// line between the spawning thread and this worker per task.
    unregistering: std::cell::RefCell<Vec<Unregistering>>,
    /// Freed task blocks this worker reuses for its next spawns (dropped,
    /// and its blocks freed, when the worker exits).
    pub(crate) task_cache: TaskCache,
    /// Task steps running on this thread nested in another one's: eager
    /// first steps, and awaited steps run in place.
    eager_depth: Cell<u32>,
    /// A task spawned during the current step went to an empty queue
    /// without waking another worker: whether to wake one is decided when
    /// the step ends.
    spawn_offer_deferred: Cell<bool>,
    /// Whether the current step has spilled this worker's queue already
    /// (see [`WorkerCore::push_local_spilling`]).
    spilled_in_step: Cell<bool>,
    /// The task this worker runs after the current one, already taken from
    /// the front of its queue and its header prefetched: only the worker of
    /// a runtime of one worker reads its queue one task ahead (see
    /// [`WorkerCore::pop_local`]). Empty whenever the worker looks for work
    /// elsewhere or parks.
    next_up: Cell<Option<Notified>>,
}

impl WorkerCore {
    pub(crate) fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// The runtime this worker belongs to.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// This worker's index.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    fn schedule_local(&self, task: Notified, how: Schedule) {
        if self.collecting.get() {
            self.collected.borrow_mut().push(task);
            return;
        }
        match how {
            // One worker keeps asyncio's single FIFO ready queue: no LIFO slot.
            Schedule::Wake if self.shared.remotes.len() > 1 => {
                let slot = &self.shared.remotes[self.index].lifo;
                let previous = slot.swap(task.into_raw().as_ptr() as *mut Header, AcqRel);
                if previous.is_null() {
                    return;
                }
                // SAFETY: a non-null slot holds a task with its queue reference.
                self.local
                    .push(unsafe { Notified::from_raw(RawTask::from_ptr(previous)) });
            }
            // A new task alone in this worker's queue and slot runs here
            // as soon as the current step ends: no other worker is woken
            // for it unless more has queued up by then (see `run_task`).
            // Waking one for every spawn made a chain of tasks that each
            // spawn the next bounce between the workers.
            Schedule::Spawn
                if self.shared.remotes.len() > 1
                    && self.local.is_empty()
                    && self.shared.remotes[self.index].lifo.load(Relaxed).is_null() =>
            {
                self.local.push(task);
                self.spawn_offer_deferred.set(true);
                return;
            }
            Schedule::Spawn if self.shared.remotes.len() > 1 => self.push_local_spilling(task),
            Schedule::Spawn | Schedule::Wake => self.local.push(task),
        }
        // The only worker of a one-worker runtime is this one, awake.
        if self.shared.remotes.len() > 1 {
            self.shared.notify_parked();
        }
    }

    /// Pushes a new task to the back of this worker's queue, on a runtime
    /// of several workers. If the queue has reached [`LOCAL_QUEUE_SPILL_AT`]
    /// tasks and the current step has not spilled yet, its oldest half
    /// first moves to the injector, where any worker takes them: one at a
    /// time every [`GLOBAL_QUEUE_INTERVAL`] ticks, by batches once its own
    /// queue is empty. The newest tasks of a fork-join tree, the deepest,
    /// then run first, and complete and free their parents sooner (see the
    /// module's "Why a worker's queue spills").
    fn push_local_spilling(&self, task: Notified) {
        if self.local.len() >= LOCAL_QUEUE_SPILL_AT && !self.spilled_in_step.replace(true) {
            let oldest = std::iter::from_fn(|| self.local.pop()).take(LOCAL_QUEUE_SPILL_AT / 2);
            // A runtime closed meanwhile has drained them: nothing is lost.
            let _ = self.shared.inject(oldest);
        }
        self.local.push(task);
    }

    fn take_lifo(&self) -> Option<Notified> {
        let previous = self.shared.remotes[self.index]
            .lifo
            .swap(ptr::null_mut(), AcqRel);
        // SAFETY: a non-null slot holds a task with its queue reference.
        (!previous.is_null()).then(|| unsafe { Notified::from_raw(RawTask::from_ptr(previous)) })
    }

    fn pop_injector(&self) -> Option<Notified> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.local) {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    /// One task of the injector, for the look at it every
    /// [`GLOBAL_QUEUE_INTERVAL`] ticks. A runtime of several workers takes
    /// a single task: a batch would refill a local queue that spilled
    /// there (fib(27) through task groups on 2 workers took 660-700 ms with
    /// batches, 375-400 ms with single tasks). One worker takes a batch,
    /// as when its queue is empty.
    fn pop_injector_periodic(&self) -> Option<Notified> {
        if self.shared.remotes.len() == 1 {
            return self.pop_injector();
        }
        self.shared.steal_one_injected()
    }

    /// The next task from this worker's own sources.
    fn next_task(&self) -> Option<Notified> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % GLOBAL_QUEUE_INTERVAL == 0 {
            if let Some(task) = self.pop_injector_periodic() {
                self.lifo_streak.set(0);
                return Some(task);
            }
        }
        if let Some(task) = self.take_lifo() {
            let streak = self.lifo_streak.get();
            if streak < MAX_LIFO_STREAK {
                self.lifo_streak.set(streak + 1);
                return Some(task);
            }
            // Enough in a row: the woken task waits its turn at the back.
            self.local.push(task);
        }
        self.lifo_streak.set(0);
        self.pop_local().or_else(|| self.pop_injector())
    }

    /// The front of this worker's queue. The worker of a runtime of one
    /// worker reads its queue one task ahead: it takes the task after the
    /// front too, keeps it in [`next_up`](Self::next_up) and prefetches its
    /// header, so that the cache miss of a task's first touch (its state
    /// word) overlaps the step before it instead of stalling the worker.
    /// With many tasks queued that one load was a tenth of the worker's
    /// time (a million sleeps firing, perf: 10.5% in `RawTask::run`, 88% of
    /// it on that load); reading ahead made that workload 10-14% faster
    /// and fib(27) through task groups 5-12%. The order is unchanged: the
    /// task in `next_up` is still the front of the queue.
    /// With several workers a task held there would be out of the stealers'
    /// reach for a whole step, so they do not read ahead.
    fn pop_local(&self) -> Option<Notified> {
        if self.shared.remotes.len() > 1 {
            return self.local.pop();
        }
        let task = self.next_up.take().or_else(|| self.local.pop())?;
        if let Some(next) = self.local.pop() {
            crate::prefetch::prefetch(next.raw().as_ptr());
            self.next_up.set(Some(next));
        }
        Some(task)
    }

    /// Tasks waiting in this worker's queue (the one read ahead included).
    fn queued(&self) -> usize {
        let next_up = self.next_up.take();
        let ahead = usize::from(next_up.is_some());
        self.next_up.set(next_up);
        self.local.len() + ahead
    }

    fn random(&self) -> u64 {
        // xorshift64: cheap, and seedable for a deterministic mode later.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    /// Steals from other workers, as a searcher.
    fn steal(&self) -> Option<Notified> {
        if !self.searching.get() {
            if !self.shared.idle.try_start_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let remotes = &self.shared.remotes;
        let count = remotes.len();
        let start = (self.random() % count as u64) as usize;
        for _ in 0..2 {
            let mut retry = false;
            for offset in 0..count {
                let victim = (start + offset) % count;
                if victim == self.index {
                    continue;
                }
                match remotes[victim].stealer.steal_batch_and_pop(&self.local) {
                    Steal::Success(task) => return Some(task),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
                let stolen = remotes[victim].lifo.swap(ptr::null_mut(), AcqRel);
                if !stolen.is_null() {
                    // SAFETY: a non-null slot holds a task with its queue reference.
                    return Some(unsafe { Notified::from_raw(RawTask::from_ptr(stolen)) });
                }
            }
            if let Some(task) = self.pop_injector() {
                return Some(task);
            }
            if !retry {
                break;
            }
        }
        None
    }

    fn stop_searching(&self) {
        if self.searching.replace(false) && self.shared.idle.stop_searching() {
            // The last searcher found work: there may be more, wake a helper.
            self.shared.notify_parked();
        }
    }

    /// Runs the first step of an eager task now, nested in whatever this
    /// worker is running; hands the task back if it must be queued instead:
    /// while timers or I/O events are being dispatched (their wakes are
    /// being collected), or when [`MAX_EAGER_DEPTH`] steps are already
    /// nested (a chain of eager spawns must not exhaust the thread's stack).
    fn try_run_eagerly(&self, task: Notified) -> Option<Notified> {
        if self.eager_depth.get() >= MAX_EAGER_DEPTH || self.collecting.get() {
            return Some(task);
        }
        self.nested(|| {
            if let RunOutcome::Requeue(task) = RawTask::run(task) {
                // It yielded in its first step: it waits its turn like any new task.
                self.schedule_local(task, Schedule::Spawn);
            }
        });
        None
    }

    /// Whether the task being polled, about to yield (a C task's
    /// `spindle_yield`, see `ffi::fiber::yield_in_place`), may go on at
    /// once instead: when this worker's next step would run that same task
    /// again, and nothing between the two steps has anything to do. The
    /// step boundary is then kept here (see
    /// [`boundary_in_place`](Self::boundary_in_place)) instead of through
    /// the queue, and the yield skips its suspension, requeue and resume:
    /// for a C task, the two stack switches (a lone `spindle_yield` on one
    /// worker: 520 -> 246 instructions, 75-80 -> 25-28 ns).
    #[inline]
    fn yield_in_place(&self) -> bool {
        // The likeliest reason not to, and the cheapest to see, inline: a
        // task waits here (a yield that does switch pays little for the
        // question).
        let slot = &self.shared.remotes[self.index].lifo;
        if self.queued() != 0 || !slot.load(Relaxed).is_null() {
            return false;
        }
        self.boundary_in_place()
    }

    /// Whether the step boundary after the current task's step, with no
    /// task waiting in this worker's queue or slot ahead of the next step,
    /// has nothing to do; if so, keeps its bookkeeping here (the tick
    /// advances, the timer look counts down, the budget is renewed) so that
    /// the next step can follow without going through the worker loop.
    ///
    /// Nothing to do means: not inside an eager step (a task that suspends
    /// there hands the thread back to its spawner), not while wakes are
    /// collected, nothing in the injector, not stopping, the current task
    /// neither woken nor aborted and of this runtime (its next poll must be
    /// a real one), not the tick whose boundary polls I/O and every timer
    /// wheel, and no timer of this worker due.
    #[inline(never)]
    fn boundary_in_place(&self) -> bool {
        if self.eager_depth.get() != 0
            || self.collecting.get()
            || !self.shared.injector.is_empty()
            || self.shared.stopping.load(Relaxed)
        {
            return false;
        }
        let Some(task) = context::current_task_raw() else {
            return false;
        };
        let state = task.header().state.load();
        if state.is_notified()
            || state.is_abort_requested()
            || !ptr::eq(&*task.header().shared, &*self.shared)
        {
            return false;
        }
        // The boundary's `maintenance`, which must have nothing to do.
        let tick = self.tick.get();
        if tick % GLOBAL_QUEUE_INTERVAL == 0 {
            return false;
        }
        let ticks_left = self.ticks_to_timer_check.get();
        if ticks_left <= 1 {
            let timers = &self.shared.timers;
            if timers
                .next_of(self.index)
                .is_some_and(|next| next <= timers.now())
            {
                return false;
            }
            // The next look after the one task queued, as `maintenance`
            // would set it.
            self.ticks_to_timer_check.set(1);
        } else {
            self.ticks_to_timer_check.set(ticks_left - 1);
        }
        // The boundary's `next_task` and `run_task`: the injector, looked
        // at first on some ticks, is empty.
        self.tick.set(tick.wrapping_add(1));
        self.lifo_streak.set(0);
        self.spilled_in_step.set(false);
        context::renew_budget();
        true
    }

    /// Runs the step of `awaited` now, nested in the current task's step,
    /// when the current task is about to wait for it (a C task's
    /// `spindle_task_join`, see `ffi::fiber::run_awaited_in_place`) and the
    /// worker would run `awaited` next anyway: it is the one task queued
    /// here and the boundary has nothing to do. The order is that of the
    /// wait: the current task would suspend, `awaited` would run its step,
    /// then whatever it queued. Returns whether the step ran.
    fn run_awaited_in_place(&self, awaited: RawTask) -> bool {
        let slot = &self.shared.remotes[self.index].lifo;
        if self.queued() != 1 || !slot.load(Relaxed).is_null() {
            return false;
        }
        let Some(front) = self.pop_local() else {
            return false;
        };
        if front.raw().as_ptr() != awaited.as_ptr() || !self.boundary_in_place() {
            // Back where it was, alone in the queue.
            self.local.push(front);
            return false;
        }
        self.nested(|| {
            if let RunOutcome::Requeue(task) = RawTask::run(front) {
                self.requeue_yielded(task);
            }
        });
        if self.spawn_offer_deferred.replace(false) {
            self.offer_spare_work();
        }
        true
    }

    /// Runs `step`, a task's step nested in the current one, counted in
    /// [`eager_depth`](Self::eager_depth) (restored even if it unwinds).
    fn nested(&self, step: impl FnOnce()) {
        /// Restores the depth even if the step unwinds.
        struct Nested<'a>(&'a Cell<u32>, u32);
        impl Drop for Nested<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let depth = self.eager_depth.get();
        self.eager_depth.set(depth + 1);
        let _nested = Nested(&self.eager_depth, depth);
        step();
    }

    fn run_task(&self, task: Notified) {
        self.stop_searching();
        self.spilled_in_step.set(false);
        if let RunOutcome::Requeue(task) = RawTask::run(task) {
            self.requeue_yielded(task);
        }
        if self.spawn_offer_deferred.replace(false) {
            self.offer_spare_work();
        }
    }

    /// A task that yielded goes behind everything already runnable,
    /// including work waiting in the injector (asyncio's ready queue is one
    /// FIFO for local and thread-safe `call_soon` alike): the injector's
    /// tasks are moved in ahead of it, up to
    /// [`INJECTOR_BATCHES_AHEAD_OF_YIELD`] batches (other workers steal from
    /// the local queue as from any other).
    /// Without this, tasks that keep yielding would keep the local queue
    /// full and starve the injector; with a small batch, tasks spawned from
    /// outside would wait for every yielding task's turn once per batch.
    fn requeue_yielded(&self, task: Notified) {
        let injector = &self.shared.injector;
        for _ in 0..INJECTOR_BATCHES_AHEAD_OF_YIELD {
            if injector.is_empty() {
                break;
            }
            if let Steal::Empty = injector.steal_batch(&self.local) {
                break;
            }
        }
        self.local.push(task);
        // Alone in the queue, it runs here next: a helper is woken only if
        // more is waiting (one task yielding in a loop on a runtime with
        // several workers woke another worker at every yield, which stole
        // it and bounced it between the cores: 3-4x the cost of a yield).
        self.offer_spare_work();
    }

    /// Runs `wake_some` (timers firing, I/O events dispatched) and queues
    /// the tasks it woke together, at the back of this worker's queue.
    /// Returns whether it woke any. Wakes no other worker: the caller
    /// [offers](Self::offer_spare_work) what this worker will not run next.
    #[must_use]
    fn collect_wakes(&self, wake_some: impl FnOnce()) -> bool {
        self.collecting.set(true);
        wake_some();
        self.collecting.set(false);
        let mut woken = self.collected.borrow_mut();
        let any = !woken.is_empty();
        for task in woken.drain(..) {
            self.local.push(task);
        }
        // Kept for the next batch up to a bound, as the timers' spare
        // vector is: a vector grown from empty at every batch was 2% of a
        // million sleeps firing on one worker (its reallocations).
        if woken.capacity() > KEPT_COLLECTED {
            *woken = Vec::new();
        }
        any
    }

    /// This worker queued tasks for itself (timers, I/O events): wakes a
    /// helper if more than the one it runs next are waiting (rule 5 of
    /// [`idle`]); one task is not worth another worker's futex wake.
    fn offer_spare_work(&self) {
        // The only worker of a one-worker runtime has no one to offer to
        // (and the offer costs a `SeqCst` fence).
        if self.shared.remotes.len() == 1 {
            return;
        }
        let slot = usize::from(!self.shared.remotes[self.index].lifo.load(Acquire).is_null());
        if self.local.len() + slot > 1 {
            self.shared.notify_parked();
        }
    }

    /// Fires the timers expired at tick `now`: of this worker's wheel, or
    /// of all wheels. Returns whether any task was woken.
    #[must_use]
    fn fire_timers(&self, all: bool, now: u64) -> bool {
        let timers = &self.shared.timers;
        self.collect_wakes(|| {
            if all {
                timers.process_all(now);
            } else {
                timers.process(self.index, now);
            }
        })
    }

    /// Between tasks, every [`GLOBAL_QUEUE_INTERVAL`] ticks: collect the I/O
    /// events that are ready without sleeping, so sockets are served while
    /// every worker is busy. Skipped when another worker is in the driver or
    /// nothing is registered.
    /// Returns whether any task was woken.
    #[must_use]
    fn poll_io(&self) -> bool {
        let driver = &self.shared.driver;
        if !driver.has_sources() {
            return false;
        }
        match driver.try_enter() {
            Some(mut poller) => self.collect_wakes(|| poller.poll(driver, Some(Duration::ZERO))),
            None => false,
        }
    }

    /// Between tasks: fire this worker's due timers, and every
    /// [`GLOBAL_QUEUE_INTERVAL`] ticks collect ready I/O and fire those of
    /// every wheel (a worker stuck in a long poll cannot fire its own).
    fn maintenance(&self) {
        let timers = &self.shared.timers;
        let all = self.tick.get() % GLOBAL_QUEUE_INTERVAL == 0;
        let mut woken = all && self.poll_io();
        let ticks_left = self.ticks_to_timer_check.get();
        if all || ticks_left <= 1 {
            let next = if all {
                timers.next_deadline()
            } else {
                timers.next_of(self.index)
            };
            if let Some(next) = next {
                let now = timers.now();
                if next <= now {
                    woken |= self.fire_timers(all, now);
                }
            }
            // Like asyncio's loop, which looks at its timers once per batch
            // of ready callbacks: the next look is after the tasks queued
            // now (timers just fired included) have run, and at most
            // GLOBAL_QUEUE_INTERVAL ticks later. Saves a clock read per
            // task while many are queued.
            let batch = self.queued().clamp(1, GLOBAL_QUEUE_INTERVAL as usize);
            self.ticks_to_timer_check.set(batch as u32);
        } else {
            self.ticks_to_timer_check.set(ticks_left - 1);
        }
        if woken {
            self.offer_spare_work();
        }
    }

    fn has_local_work(&self) -> bool {
        !self.local.is_empty() || !self.shared.remotes[self.index].lifo.load(Acquire).is_null()
    }

    /// Parks until woken with work, or until the runtime stops. The first
    /// idle worker sleeps in the driver, with the earliest timer deadline as
    /// its timeout; the others sleep on their condition variable.
    fn park(&self) {
        debug_assert_eq!(
            self.queued(),
            self.local.len(),
            "parking with a task read ahead"
        );
        self.flush_unregistering();
        let shared = &*self.shared;
        shared.idle.park(self.index, self.searching.replace(false));
        while !(shared.has_work() || shared.stopping.load(SeqCst))
            && shared.idle.is_asleep(self.index)
        {
            match shared.driver.try_enter() {
                Some(mut poller) => {
                    // (Tasks woken here are offered to others, if there
                    // are several, once this worker is counted awake.)
                    if self.fire_timers(true, shared.timers.now()) {
                        break;
                    }
                    // The deadline handshake (see io::driver): announce,
                    // then read the timers.
                    shared.driver.announce_sleep(SLEEPING_FOREVER);
                    let next = shared.timers.next_deadline();
                    let timeout = next.map(|tick| {
                        shared.driver.announce_sleep(tick);
                        shared
                            .timers
                            .instant_of(tick)
                            .map(|at| at.saturating_duration_since(Instant::now()))
                    });
                    let parker = &shared.remotes[self.index].parker;
                    let _ = self.collect_wakes(|| {
                        parker.park_in_driver(&shared.driver, &mut poller, timeout.flatten())
                    });
                    shared.driver.announce_sleep(NOT_SLEEPING);
                    drop(poller);
                    let _ = self.fire_timers(true, shared.timers.now());
                }
                None => shared.remotes[self.index].parker.park(),
            }
        }
        // Awake again. If a producer took this worker off the sleeper list,
        // it counted it as searching. Otherwise it counts itself: as a
        // searcher if it woke for work elsewhere, and not searching if its
        // own driver sleep or timers queued tasks here (rule 5 of `idle`).
        let own_work = self.has_local_work();
        let searching = if shared.idle.unpark_self(self.index, !own_work) {
            !own_work
        } else {
            true
        };
        self.searching.set(searching);
        if own_work {
            self.offer_spare_work();
        }
    }

    /// The worker loop.
    fn run(&self) {
        while !self.shared.stopping.load(Relaxed) {
            self.maintenance();
            if let Some(task) = self.next_task().or_else(|| self.steal()) {
                self.run_task(task);
            } else {
                self.park();
            }
        }
    }

    /// Adds a completed, registered task of this runtime to the batch that
    /// leaves the registry together.
    fn defer_unregister(&self, entry: Unregistering) {
        let full = {
            let mut batch = self.unregistering.borrow_mut();
            batch.push(entry);
            batch.len() >= UNREGISTER_BATCH
        };
        if full {
            self.flush_unregistering();
        }
    }

    /// Takes the batch of completed tasks out of the registry and drops the
    /// registry's references (which may free the tasks and run user code,
    /// so the batch is not borrowed meanwhile).
    fn flush_unregistering(&self) {
        let mut batch = std::mem::take(&mut *self.unregistering.borrow_mut());
        if batch.is_empty() {
            *self.unregistering.borrow_mut() = batch;
            return;
        }
        let mut released = Vec::with_capacity(batch.len());
        self.shared.registry.remove_batch(&mut batch, &mut released);
        *self.unregistering.borrow_mut() = batch;
        for task in released {
            task.drop_reference();
        }
    }

    /// Drops whatever is left in this worker's queue and slot.
    fn drain(&self) {
        drop(self.next_up.take());
        while let Some(task) = self.local.pop() {
            drop(task);
        }
        drop(self.take_lifo());
    }
}

/// The most wakes a worker's collecting vector keeps room for between two
/// batches (8 bytes each; see `WorkerCore::collect_wakes`).
const KEPT_COLLECTED: usize = 16 * 1024;

/// Completed tasks a worker gathers before taking them out of the registry
/// together (see `WorkerCore::unregistering`).
const UNREGISTER_BATCH: usize = 32;

/// Whether the task being polled on this thread, about to yield, may go on
/// at once because it is what its worker would run next anyway (see
/// `WorkerCore::yield_in_place`). `false` off a worker.
pub(crate) fn yield_in_place() -> bool {
    context::with_worker(|worker| worker.is_some_and(WorkerCore::yield_in_place))
}

/// Runs the step of `awaited`, which the task being polled on this thread
/// is about to wait for, now, if it is what this worker would run next
/// anyway (see `WorkerCore::run_awaited_in_place`). `false` off a worker.
pub(crate) fn run_awaited_in_place(awaited: RawTask) -> bool {
    context::with_worker(|worker| worker.is_some_and(|w| w.run_awaited_in_place(awaited)))
}

/// The body of worker thread `index`.
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize, local: LocalQueue<Notified>) {
    let task_cache = TaskCache::new(shared.block_pool.clone());
    let core = WorkerCore {
        index,
        shared,
        local,
        tick: Cell::new(0),
        lifo_streak: Cell::new(0),
        ticks_to_timer_check: Cell::new(1),
        searching: Cell::new(false),
        rng: Cell::new(
            0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407),
        ),
        collecting: Cell::new(false),
        collected: Default::default(),
        unregistering: std::cell::RefCell::new(Vec::with_capacity(UNREGISTER_BATCH)),
        task_cache,
        eager_depth: Cell::new(0),
        spawn_offer_deferred: Cell::new(false),
        spilled_in_step: Cell::new(false),
        next_up: Cell::new(None),
    };
    {
        let _worker = context::enter_worker(&core);
        core.run();
        core.flush_unregistering();
        core.drain();
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::{run_awaited_in_place, yield_in_place};
    use std::future::poll_fn;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::Poll;
    use std::time::Duration;

    fn one_worker() -> crate::Runtime {
        crate::Runtime::builder()
            .worker_threads(1)
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_lone_task_yields_in_place_except_where_the_boundary_polls_io() {
        let (in_place, through_queue) = one_worker()
            .block_on(async {
                let (mut in_place, mut through_queue) = (0, 0);
                for _ in 0..200 {
                    if yield_in_place() {
                        in_place += 1;
                    } else {
                        through_queue += 1;
                        crate::yield_now().await?;
                    }
                }
                crate::Ok((in_place, through_queue))
            })
            .unwrap();
        // Every GLOBAL_QUEUE_INTERVAL-th tick polls I/O and the injector
        // through the queue; the others go on in place.
        assert!(in_place >= 150, "{in_place} in place");
        assert!(through_queue >= 2, "{through_queue} through the queue");
    }

    #[test]
    fn anything_runnable_or_due_makes_the_yield_real() {
        assert!(!yield_in_place(), "off a worker");
        one_worker()
            .block_on(async {
                // A queued task runs first.
                let queued = crate::spawn(async { crate::Ok(()) });
                assert!(!yield_in_place());
                queued.await?;
                // A task woken during its poll gets a real next poll.
                let woken = poll_fn(|cx| {
                    cx.waker().wake_by_ref();
                    Poll::Ready(yield_in_place())
                })
                .await;
                assert!(!woken);
                crate::yield_now().await?;
                // A due timer of this worker fires first. Start just past
                // a tick that polls I/O (the only other reason a lone task
                // yields through the queue), so that none comes soon.
                while yield_in_place() {}
                crate::yield_now().await?;
                let sleeper = crate::spawn(crate::time::sleep(Duration::from_millis(1)));
                crate::yield_now().await?; // the sleeper arms its timer
                std::thread::sleep(Duration::from_millis(20));
                // The worker looks at its timers after the tasks queued at
                // its last look (at most two here) have run.
                let in_place_while_due = (0..3).take_while(|_| yield_in_place()).count();
                assert!(in_place_while_due < 3, "the due timer was not seen");
                assert!(!sleeper.done());
                sleeper.await?;
                // An eager task's first step is queued after a yield.
                let eager_in_place = Arc::new(AtomicBool::new(true));
                let seen = eager_in_place.clone();
                let eager = crate::task::Builder::new()
                    .eager_start(true)
                    .spawn(async move {
                        seen.store(yield_in_place(), Ordering::SeqCst);
                        crate::Ok(())
                    });
                assert!(!eager_in_place.load(Ordering::SeqCst));
                eager.await?;
                crate::Ok(())
            })
            .unwrap();
    }

    #[test]
    fn the_one_task_queued_runs_in_place_when_awaited() {
        one_worker()
            .block_on(async {
                // Whatever the runtime queued at start runs first.
                crate::yield_now().await?;
                let child = crate::spawn(async { crate::Ok(7) });
                let mut ran = false;
                for _ in 0..3 {
                    // (one boundary in GLOBAL_QUEUE_INTERVAL polls I/O)
                    if run_awaited_in_place(child.as_any().raw) {
                        ran = true;
                        break;
                    }
                }
                assert!(ran && child.done());
                assert_eq!(child.await?, 7);
                // Not the one queued: it stays where it was, in order.
                let first = crate::spawn(async { crate::Ok(1) });
                let second = crate::spawn(async { crate::Ok(2) });
                assert!(!run_awaited_in_place(second.as_any().raw));
                assert!(!run_awaited_in_place(first.as_any().raw));
                assert!(!first.done() && !second.done());
                assert_eq!(crate::gather([first, second]).await?, [1, 2]);
                crate::Ok(())
            })
            .unwrap();
    }
}
