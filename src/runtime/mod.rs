//! The runtime: [`Builder`], [`Runtime`], [`Handle`], and [`run`], the
//! counterpart of `asyncio.run`.
//!
//! ```
//! let rt = spindle::Runtime::builder().worker_threads(2).build().unwrap();
//! let six = rt.block_on(async { spindle::Ok(2 * 3) }).unwrap();
//! assert_eq!(six, 6);
//! ```

pub(crate) mod context;

pub use context::EnterGuard;

use crate::error::{Error, Result};
use crate::io::blocking::BlockingPool;
use crate::scheduler::{self, ReportHook, Shared};
use crate::task::{self, raw::Spawn, AnyTask, Task, TaskId};
use std::collections::HashSet;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Runs `main` as the main task of a new runtime with default settings, like
/// `asyncio.run`: when `main` finishes, the tasks still running are
/// cancelled and their cleanup awaited, then the runtime shuts down.
/// Returns `main`'s result.
///
/// ```
/// let greeting = spindle::run(async {
///     let task = spindle::spawn(async { spindle::Ok("hello") });
///     task.await
/// }).unwrap();
/// assert_eq!(greeting, "hello");
/// ```
pub fn run<F, T, E>(main: F) -> Result<T>
where
    F: IntoFuture<Output = std::result::Result<T, E>>,
    F::IntoFuture: Send + 'static,
    T: Send + 'static,
    E: Into<Error>,
{
    let runtime = Runtime::new()?;
    let result = runtime.block_on(main);
    runtime.shutdown();
    result
}

/// Settings for a [`Runtime`].
///
/// ```
/// let rt = spindle::Runtime::builder()
///     .worker_threads(4)
///     .thread_name("my-worker")
///     .on_unhandled_error(|report| eprintln!("unhandled: {report}"))
///     .build()
///     .unwrap();
/// assert_eq!(rt.worker_threads(), 4);
/// ```
pub struct Builder {
    workers: Option<usize>,
    thread_name: Arc<dyn Fn(usize) -> String + Send + Sync>,
    thread_stack_size: Option<usize>,
    report_hook: ReportHook,
    shutdown_timeout: Duration,
    max_blocking_threads: usize,
    blocking_keep_alive: Duration,
    eager_tasks: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("thread_stack_size", &self.thread_stack_size)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("blocking_keep_alive", &self.blocking_keep_alive)
            .field("eager_tasks", &self.eager_tasks)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Default settings: one worker per available core, threads named
    /// `spindle-worker-<n>`, reports printed on stderr, a 5 s grace period
    /// for cancelled tasks at shutdown.
    pub fn new() -> Builder {
        Builder {
            workers: None,
            thread_name: Arc::new(|index| format!("spindle-worker-{index}")),
            thread_stack_size: None,
            report_hook: Arc::new(default_report),
            shutdown_timeout: Duration::from_secs(5),
            max_blocking_threads: BlockingPool::default_max_threads(),
            blocking_keep_alive: Duration::from_secs(10),
            eager_tasks: false,
        }
    }

    /// The number of worker threads (default: the machine's available
    /// parallelism). Zero is rejected by [`build`](Self::build).
    pub fn worker_threads(mut self, count: usize) -> Builder {
        self.workers = Some(count);
        self
    }

    /// Names worker threads `<prefix>-<index>`.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        let prefix = prefix.into();
        self.thread_name = Arc::new(move |index| format!("{prefix}-{index}"));
        self
    }

    /// Names worker threads with a function of their index.
    pub fn thread_name_fn(
        mut self,
        name: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> Builder {
        self.thread_name = Arc::new(name);
        self
    }

    /// The stack size of worker threads, in bytes.
    pub fn thread_stack_size(mut self, bytes: usize) -> Builder {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// Receives the failures nobody handled: a task error never retrieved
    /// (asyncio's "Task exception was never retrieved"), a done callback
    /// that panicked, a task destroyed while pending at shutdown. The default
    /// prints one line on stderr.
    pub fn on_unhandled_error(
        mut self,
        hook: impl Fn(&Unhandled) + Send + Sync + 'static,
    ) -> Builder {
        self.report_hook = Arc::new(hook);
        self
    }

    /// How long shutdown waits for cancelled tasks to finish their cleanup
    /// before it aborts them (drops their futures) and reports them.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Builder {
        self.shutdown_timeout = timeout;
        self
    }

    /// The most threads [`to_thread`](crate::to_thread) runs functions on at
    /// once (default: asyncio's `min(32, cores + 4)`); further calls queue.
    /// Zero is rejected by [`build`](Self::build).
    pub fn max_blocking_threads(mut self, count: usize) -> Builder {
        self.max_blocking_threads = count;
        self
    }

    /// How long an idle blocking thread waits for work before it exits
    /// (default 10 s).
    pub fn blocking_keep_alive(mut self, idle: Duration) -> Builder {
        self.blocking_keep_alive = idle;
        self
    }

    /// Makes every task spawned on this runtime start eagerly unless its
    /// [`task::Builder::eager_start`] says otherwise: asyncio's
    /// `loop.set_task_factory(asyncio.eager_task_factory)`. Its first step
    /// runs inside the spawn when that is made on one of the runtime's
    /// workers (see `eager_start` for the limits). Off by default. C tasks
    /// follow it too (`spindle_options.eager_tasks` in C).
    ///
    /// ```
    /// let rt = spindle::Runtime::builder().eager_tasks(true).build().unwrap();
    /// rt.block_on(async {
    ///     let t = spindle::spawn(async { spindle::Ok(1) });
    ///     assert!(t.done()); // ran inside the spawn
    ///     let lazy = spindle::task::Builder::new()
    ///         .eager_start(false)
    ///         .spawn(async { spindle::Ok(2) });
    ///     assert!(!lazy.done());
    ///     spindle::Ok(t.await? + lazy.await?)
    /// }).unwrap();
    /// ```
    pub fn eager_tasks(mut self, eager: bool) -> Builder {
        self.eager_tasks = eager;
        self
    }

    /// Starts the worker threads.
    ///
    /// Errors: zero workers (invalid argument); a worker thread that cannot
    /// be started (runtime error, the threads already started are stopped).
    pub fn build(self) -> Result<Runtime> {
        let workers = match self.workers {
            Some(0) => {
                return Err(Error::invalid_argument(
                    "a runtime needs at least one worker thread",
                ))
            }
            Some(n) if n >= 1 << 15 => {
                return Err(Error::invalid_argument(format!(
                    "{n} worker threads is more than the supported 32767"
                )))
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.max_blocking_threads == 0 {
            return Err(Error::invalid_argument(
                "max_blocking_threads must be at least 1",
            ));
        }
        let blocking = BlockingPool::new(self.max_blocking_threads, self.blocking_keep_alive);
        let (shared, locals) =
            Shared::new(workers, self.report_hook, blocking, self.eager_tasks)
                .map_err(|e| Error::runtime(format!("could not create the I/O driver: {e}")))?;
        let mut runtime = Runtime {
            handle: Handle { shared },
            threads: Vec::with_capacity(workers),
            shutdown_timeout: self.shutdown_timeout,
        };
        for (index, local) in locals.into_iter().enumerate() {
            let mut builder = thread::Builder::new().name((self.thread_name)(index));
            if let Some(size) = self.thread_stack_size {
                builder = builder.stack_size(size);
            }
            let shared = runtime.handle.shared.clone();
            match builder.spawn(move || scheduler::run_worker(shared, index, local)) {
                Ok(thread) => runtime.threads.push(thread),
                Err(e) => {
                    return Err(Error::runtime(format!(
                        "could not start worker thread {index}: {e}"
                    )));
                    // `runtime` drops here and stops the threads started so far.
                }
            }
        }
        Ok(runtime)
    }
}

/// A running spindle runtime: its worker threads and their scheduler.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) cancels the tasks
/// still running, waits up to the shutdown timeout for their cleanup, aborts
/// what is left, and joins the worker threads. It never leaks a task.
pub struct Runtime {
    handle: Handle,
    threads: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime with default settings.
    pub fn new() -> Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure one.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A handle that can spawn onto this runtime from anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The number of worker threads.
    pub fn worker_threads(&self) -> usize {
        self.handle.shared.workers()
    }

    /// Spawns a task on this runtime (see [`spawn`](crate::spawn)).
    pub fn spawn<F, T, E>(&self, future: F) -> Task<T>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        self.handle.spawn(future)
    }

    /// Runs `future` as a task and blocks this thread until it is done;
    /// returns its result. The runtime keeps running afterwards, with any
    /// other tasks. An error if called from a worker thread of a runtime
    /// (that would block the worker: await instead).
    pub fn block_on<F, T, E>(&self, future: F) -> Result<T>
    where
        F: IntoFuture<Output = std::result::Result<T, E>>,
        F::IntoFuture: Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        if context::with_worker(|worker| worker.is_some()) {
            return Err(Error::runtime(
                "block_on called from a runtime worker thread; await the future instead",
            ));
        }
        let task = self.handle.spawn(future.into_future());
        block_on_thread(task.into_future())
    }

    /// Shuts down: see the type's docs. Same as dropping the runtime.
    pub fn shutdown(self) {
        drop(self);
    }

    fn shutdown_now(&mut self) {
        let shared = self.handle.shared.clone();
        let on_worker = context::with_worker(|w| w.is_some());
        let deadline = Instant::now() + self.shutdown_timeout;
        if !on_worker {
            // 1. Cancel every task, including ones spawned during cleanup,
            //    and wait for their cleanup.
            let mut cancelled: HashSet<TaskId> = HashSet::new();
            loop {
                let tasks = shared.all_tasks();
                crate::task::cancel_all(
                    tasks.iter().filter(|task| cancelled.insert(task.id())),
                    None,
                );
                let round = (Instant::now() + Duration::from_millis(20)).min(deadline);
                if shared.wait_all_done(round) || Instant::now() >= deadline {
                    break;
                }
            }
            // 2. Abort what ignored the cancel, and report it (once).
            let abort_deadline = Instant::now() + self.shutdown_timeout;
            let mut aborted: HashSet<TaskId> = HashSet::new();
            while shared.live_tasks() > 0 && Instant::now() < abort_deadline {
                for task in shared.all_tasks() {
                    if aborted.insert(task.id()) && task.abort() {
                        shared.report(Unhandled::destroyed_pending(&task));
                    }
                }
                shared.wait_all_done(
                    (Instant::now() + Duration::from_millis(20)).min(abort_deadline),
                );
            }
        }
        // 3. Stop accepting work, stop the workers, give back what is left.
        let left = shared.close();
        shared.stop_workers();
        if !on_worker {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
        // Blocking functions still running finish on their own threads;
        // shutdown waits for them only up to the deadline.
        shared
            .blocking
            .shut_down((!on_worker).then(|| Instant::now() + self.shutdown_timeout));
        for task in left {
            if !on_worker {
                // No worker runs any more: a task still not complete (its
                // abort could not take effect in time) is completed here, so
                // no handle waits on it forever.
                task.abort_stopped();
            }
            task.drop_reference();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// A reference to a runtime, to spawn onto it from any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// The runtime of this thread: the one whose worker this is, or the one
    /// entered with [`enter`](Self::enter).
    ///
    /// # Panics
    /// Outside a runtime; [`try_current`](Self::try_current) returns an error.
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(e) => panic!("{e}"),
        }
    }

    /// The runtime of this thread, or a runtime error outside one.
    pub fn try_current() -> Result<Handle> {
        context::current_handle().ok_or_else(Handle::no_runtime)
    }

    /// The error of a call that needs a runtime on a thread that has none.
    pub(crate) fn no_runtime() -> Error {
        Error::runtime(
            "no spindle runtime on this thread (use spindle::run, block_on or Handle::enter)",
        )
    }

    /// Makes this runtime the current one on this thread until the guard is
    /// dropped, so that [`spawn`](crate::spawn) works from plain threads.
    pub fn enter(&self) -> EnterGuard {
        context::enter_runtime(self.clone())
    }

    /// Spawns a task on this runtime (see [`spawn`](crate::spawn)).
    pub fn spawn<F, T, E>(&self, future: F) -> Task<T>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        self.spawn_with(task::Builder::new(), future)
    }

    /// Spawns a task with settings from a task [`Builder`](task::Builder).
    pub fn spawn_with<F, T, E>(&self, builder: task::Builder, future: F) -> Task<T>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        let spawn: Spawn = builder.into_spawn();
        let raw = self
            .shared
            .spawn(future, spawn)
            .expect("a visible task always has a handle reference");
        task::task_from_raw(raw)
    }

    /// A snapshot of the unfinished tasks (see [`all_tasks`](crate::all_tasks)).
    pub fn all_tasks(&self) -> Vec<AnyTask> {
        self.shared.all_tasks()
    }
}

/// Blocks the calling thread until `future` is ready.
fn block_on_thread<F: Future>(future: F) -> F::Output {
    struct ThreadWaker(Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// What kind of unhandled failure an [`Unhandled`] report is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnhandledKind {
    /// A task or promise failed and nobody read its error before it was
    /// dropped (asyncio: "Task exception was never retrieved").
    NeverRetrieved,
    /// A done callback panicked.
    CallbackFailed,
    /// A task still pending at shutdown ignored its cancellation past the
    /// shutdown timeout and was aborted (asyncio: "Task was destroyed but it
    /// is pending").
    DestroyedPending,
}

/// A report of a failure nobody handled, given to the runtime's
/// [`on_unhandled_error`](Builder::on_unhandled_error) hook.
#[derive(Clone, Debug)]
pub struct Unhandled {
    kind: UnhandledKind,
    task: Option<(TaskId, String)>,
    error: Option<Error>,
}

impl Unhandled {
    pub(crate) fn never_retrieved(id: TaskId, name: String, error: Error) -> Unhandled {
        Unhandled {
            kind: UnhandledKind::NeverRetrieved,
            task: Some((id, name)),
            error: Some(error),
        }
    }

    pub(crate) fn never_retrieved_promise(error: Error) -> Unhandled {
        Unhandled {
            kind: UnhandledKind::NeverRetrieved,
            task: None,
            error: Some(error),
        }
    }

    pub(crate) fn callback_failed(error: Error) -> Unhandled {
        Unhandled {
            kind: UnhandledKind::CallbackFailed,
            task: None,
            error: Some(error),
        }
    }

    pub(crate) fn destroyed_pending(task: &AnyTask) -> Unhandled {
        Unhandled {
            kind: UnhandledKind::DestroyedPending,
            task: Some((task.id(), task.name())),
            error: None,
        }
    }

    /// What happened.
    pub fn kind(&self) -> UnhandledKind {
        self.kind
    }

    /// The task concerned (id and name), if it was a task.
    pub fn task(&self) -> Option<(TaskId, &str)> {
        self.task.as_ref().map(|(id, name)| (*id, name.as_str()))
    }

    /// The error, if there was one.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }
}

impl fmt::Display for Unhandled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            UnhandledKind::NeverRetrieved if self.task.is_some() => {
                "Task exception was never retrieved"
            }
            UnhandledKind::NeverRetrieved => "Promise exception was never retrieved",
            UnhandledKind::CallbackFailed => "Exception in done callback",
            UnhandledKind::DestroyedPending => {
                "Task was destroyed but it is pending (aborted at shutdown)"
            }
        };
        f.write_str(what)?;
        if let Some((id, name)) = &self.task {
            write!(f, ": task {name} (id {id})")?;
        }
        if let Some(error) = &self.error {
            write!(f, ": {error}")?;
        }
        Ok(())
    }
}

/// The default report: one line on stderr.
pub(crate) fn default_report(report: &Unhandled) {
    eprintln!("spindle: {report}");
}
