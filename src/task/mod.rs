//! Tasks: spawning, the [`Task`] handle and its asyncio surface, names, ids,
//! introspection ([`current_task`], [`all_tasks`]) and done callbacks.
//!
//! A task is a spawned future whose output is `Result<T, E>` with
//! `E: Into<Error>`. It *fails* when it returns `Err` or panics, and it is
//! *cancelled* when it ends with [`Error::is_cancelled`]. Dropping a [`Task`]
//! handle detaches the task: it keeps running.
//!
//! ```
//! let total = spindle::run(async {
//!     let a = spindle::spawn(async { spindle::Ok(20) });
//!     let b = spindle::task::Builder::new().name("b").spawn(async { spindle::Ok(22) });
//!     assert_eq!(b.name(), "b");
//!     spindle::Ok(a.await? + b.await?)
//! })
//! .unwrap();
//! assert_eq!(total, 42);
//! ```

mod cancel;
pub(crate) mod completion;
mod join;
mod promise;
pub(crate) mod raw;
pub(crate) mod recycle;
pub(crate) mod registry;
pub(crate) mod state;

pub use cancel::{cancellable, yield_now, Cancellable, YieldNow};
pub(crate) use completion::{DoneHook, HookRef};
pub(crate) use join::{poll_done, release_waiter};
pub use join::{IntoTask, Join};
pub use promise::Promise;

use crate::error::{Error, Result};
use crate::loom::lock;
use crate::runtime::{context, Handle};
use completion::{StatusRef, StoredCallback};
use raw::{Header, RawTask};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A task's id: unique in the process, increasing in spawn order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TaskId(NonZeroU64);

impl TaskId {
    #[inline]
    pub(crate) fn next() -> TaskId {
        // Not part of any protocol: a plain std counter (see crate::loom).
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        TaskId(NonZeroU64::new(id).expect("task id counter overflowed"))
    }

    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub(crate) fn name_of(header: &Header) -> String {
    let aux = lock(&header.aux);
    match aux.completion.cold().and_then(|cold| cold.name.as_ref()) {
        Some(name) => name.to_string(),
        None => format!("Task-{}", header.id),
    }
}

/// Where a task is in its life, as seen by [`AnyTask::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Queued to run (including spawned but not started).
    Scheduled,
    /// Being polled by a worker right now.
    Running,
    /// Suspended at an await point, waiting for a wake.
    Waiting,
    /// Finished with a value.
    Succeeded,
    /// Finished with an error other than cancellation.
    Failed,
    /// Finished cancelled.
    Cancelled,
}

/// An untyped handle to a task: everything of [`Task`] but the typed result.
/// Returned by [`current_task`] and [`all_tasks`]; a [`Task`] derefs to it.
pub struct AnyTask {
    pub(crate) raw: RawTask,
}

impl AnyTask {
    /// Takes over one reference held by the caller.
    pub(crate) fn from_raw(raw: RawTask) -> AnyTask {
        AnyTask { raw }
    }

    /// A new handle to a task the caller keeps alive.
    pub(crate) fn clone_from_raw(raw: RawTask) -> AnyTask {
        raw.header().state.ref_inc();
        AnyTask { raw }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.raw.header().id
    }

    /// The task's name: the one given at spawn, or `Task-<id>`.
    pub fn name(&self) -> String {
        name_of(self.raw.header())
    }

    /// Whether the task has finished (with a value, an error or cancelled).
    pub fn done(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// Whether the task finished cancelled. A cancel request alone does not
    /// make a task cancelled: it must end with the cancellation error.
    pub fn cancelled(&self) -> bool {
        self.done() && lock(&self.raw.header().aux).completion.is_cancelled()
    }

    /// Requests cancellation, like asyncio's `Task.cancel()`: the task's
    /// current or next await point of the runtime returns a cancellation
    /// error, once. Returns `false` if the task is already done.
    pub fn cancel(&self) -> bool {
        self.raw.cancel(None)
    }

    /// Requests cancellation carrying a message, which the cancellation error
    /// (and everyone awaiting the task) will see. The first message of the
    /// pending request wins.
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.raw.cancel(Some(Arc::from(message.into())))
    }

    /// The number of cancel requests not withdrawn by [`uncancel`](Self::uncancel).
    pub fn cancelling(&self) -> u32 {
        // Written only under the aux lock, but read without it: a read of
        // one atomic sees every write that happens before it (coherence),
        // and one racing with a `cancel` or an `uncancel` sees the count
        // either before or after it, as it would ordered by the lock. No
        // other field is read with it. (The lock cost a timeout scope 32
        // instructions at its entry.)
        self.raw.header().cancel_requests.load(Ordering::Relaxed)
    }

    /// Withdraws one cancel request and returns the remaining count. When it
    /// reaches zero before delivery, the pending cancellation is withdrawn.
    pub fn uncancel(&self) -> u32 {
        self.raw.uncancel()
    }

    /// Hard abort: drop the task's future at its next run, without letting
    /// its cleanup await. The task ends cancelled with the message "aborted".
    /// Returns `false` if the task is already done.
    pub fn abort(&self) -> bool {
        self.raw.abort()
    }

    /// The task's error, like asyncio's `Task.exception()`: `Ok(None)` if it
    /// succeeded, `Ok(Some(e))` if it failed, `Err(Cancelled)` if it was
    /// cancelled, `Err(InvalidState)` if it is not done yet. Reading a
    /// failure marks it retrieved.
    pub fn exception(&self) -> Result<Option<Error>> {
        let mut aux = lock(&self.raw.header().aux);
        match aux.completion.status() {
            StatusRef::Pending => Err(Error::invalid_state("the task is not done yet")),
            StatusRef::Succeeded => Ok(None),
            StatusRef::Failed(e) if e.is_cancelled() => Err(e.clone()),
            StatusRef::Failed(_) => Ok(aux.completion.read_error()),
        }
    }

    /// The task's place among its runtime's failures
    /// ([`Shared::next_failure_order`](crate::scheduler::Shared::next_failure_order));
    /// 0 if it did not fail or be cancelled (yet).
    pub(crate) fn failure_order(&self) -> u64 {
        lock(&self.raw.header().aux)
            .completion
            .cold()
            .map_or(0, |cold| cold.failure_order)
    }

    /// Whether both tasks belong to one runtime (their
    /// [`failure_order`](Self::failure_order)s are comparable).
    pub(crate) fn same_runtime(&self, other: &AnyTask) -> bool {
        Arc::ptr_eq(&self.raw.header().shared, &other.raw.header().shared)
    }

    /// Where the task is in its life.
    pub fn state(&self) -> TaskState {
        let snapshot = self.raw.header().state.load();
        if snapshot.is_complete() {
            return match lock(&self.raw.header().aux).completion.status() {
                StatusRef::Succeeded | StatusRef::Pending => TaskState::Succeeded,
                StatusRef::Failed(e) if e.is_cancelled() => TaskState::Cancelled,
                StatusRef::Failed(_) => TaskState::Failed,
            };
        }
        if snapshot.is_running() {
            TaskState::Running
        } else if snapshot.is_notified() {
            TaskState::Scheduled
        } else {
            TaskState::Waiting
        }
    }

    pub(crate) fn is_same_as_current(&self) -> bool {
        context::current_task_ptr() == Some(self.raw.as_ptr())
    }

    /// Tells `hook` (with `token`) once the task is done, for the
    /// combinators and task groups: right away on this thread if it already
    /// is, otherwise from a done callback (removable with
    /// [`remove_internal_callbacks`](Self::remove_internal_callbacks)).
    /// Returns whether it was done (and `hook` told before returning).
    pub(crate) fn on_done_internal(&self, hook: HookRef, token: usize) -> bool {
        self.add_hook(hook, token, false)
    }

    /// [`on_done_internal`](Self::on_done_internal), for an observer that
    /// needs the order in which its tasks complete: `hook` is also told,
    /// under the task's lock, that the task is completing, before anyone
    /// can see it done ([`DoneHook::completing`]). Its done hook may run
    /// after the hooks of tasks that completed later (on another worker,
    /// having seen this one done); that call may not.
    pub(crate) fn on_done_in_order(&self, hook: HookRef, token: usize) -> bool {
        self.add_hook(hook, token, true)
    }

    /// Registers `hook` (run at once if the task is done: returns whether
    /// it was); `announce`: the record also tells it the task is completing.
    fn add_hook(&self, hook: HookRef, token: usize, announce: bool) -> bool {
        let ready = {
            let mut aux = lock(&self.raw.header().aux);
            if announce {
                aux.completion.announce_completion();
            }
            aux.completion
                .add_callback(StoredCallback::Hook { hook, token })
        };
        let done = ready.is_some();
        if let Some(callback) = ready {
            callback.run(Some(self));
        }
        done
    }

    /// Removes the registrations of `hook` made by
    /// [`on_done_internal`](Self::on_done_internal); returns how many.
    pub(crate) fn remove_internal_callbacks<H: DoneHook + 'static>(&self, hook: &Arc<H>) -> usize {
        let key = completion::hook_key(Arc::as_ptr(hook) as *const dyn DoneHook);
        lock(&self.raw.header().aux)
            .completion
            .remove_callbacks(key)
    }
}

/// Cancels every task of `tasks` as one step, as asyncio does from its one
/// thread: every request is recorded before any task is woken, so no task
/// runs on another worker, in between, on the effects of another's
/// cancellation while its own request is still to come (a waiter of a
/// semaphore taking the permit a cancelled holder gives back, say). Returns
/// `true` if any task took the request (some were not done yet).
pub(crate) fn cancel_all<'a>(
    tasks: impl IntoIterator<Item = &'a AnyTask>,
    message: Option<Arc<str>>,
) -> bool {
    let accepted: Vec<RawTask> = tasks
        .into_iter()
        .map(|task| task.raw)
        .filter(|raw| raw.request_cancel(message.clone()))
        .collect();
    for raw in &accepted {
        raw.wake_by_ref();
    }
    !accepted.is_empty()
}

/// Puts back a cancellation of the current task that an await point took
/// (with `take_current_cancel`) but had no effect on (a gather whose tasks
/// had all just finished): it is delivered, with its message, at the next
/// await point. Nothing happens if the request was withdrawn meanwhile.
pub(crate) fn restore_current_cancel(cancel: &Error) {
    let Some(raw) = context::current_task_raw() else {
        return;
    };
    let header = raw.header();
    let mut aux = lock(&header.aux);
    if header.cancel_requests.load(Ordering::Relaxed) > 0
        && header.state.set_cancel_pending()
        && !aux.has_pending_cancel()
    {
        aux.set_pending_cancel(cancel.cancel_message().is_some().then(|| cancel.clone()));
    }
}

impl Clone for AnyTask {
    fn clone(&self) -> Self {
        AnyTask::clone_from_raw(self.raw)
    }
}

impl Drop for AnyTask {
    fn drop(&mut self) {
        self.raw.drop_reference();
    }
}

impl PartialEq for AnyTask {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for AnyTask {}

impl std::hash::Hash for AnyTask {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl fmt::Debug for AnyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}

/// A handle to a spawned task whose body produces `T` (asyncio's `Task`).
///
/// Await it (it converts into a [`Join`] future) to get the task's result. Awaiting is a cancellation point with
/// asyncio's rule: if the awaiting task is cancelled, the awaited task is
/// cancelled with the same message and still awaited, and its outcome is
/// the outcome of the await. Handles can be cloned; the first await (or
/// [`take_result`](Self::take_result)) moves the value out, later ones get an
/// invalid-state error (use [`result`](Self::result) for `T: Clone`).
///
/// All the untyped methods (`id`, `name`, `cancel`, ...) come from
/// [`AnyTask`] through `Deref`.
pub struct Task<T> {
    any: AnyTask,
    _output: PhantomData<fn() -> T>,
}

// SAFETY: the output `T` is only moved out under the task's lock, so sharing
// or sending a handle is safe when `T: Send`.
unsafe impl<T: Send> Send for Task<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Task<T> {}

impl<T> Task<T> {
    fn from_raw(raw: RawTask) -> Task<T> {
        Task {
            any: AnyTask::from_raw(raw),
            _output: PhantomData,
        }
    }

    /// A typed handle from an untyped one.
    ///
    /// # Safety
    /// The task's output type is `T`.
    pub(crate) unsafe fn from_any(any: AnyTask) -> Task<T> {
        Task {
            any,
            _output: PhantomData,
        }
    }

    /// The untyped handle.
    pub fn as_any(&self) -> &AnyTask {
        &self.any
    }

    /// Reads the outcome under the lock; `take` moves the value out.
    fn read_outcome(&self, aux: &mut raw::Aux, take: bool) -> Option<Result<T>>
    where
        T: Clone,
    {
        self.read_outcome_with(aux, |slot| if take { slot.take() } else { slot.clone() })
    }

    pub(crate) fn read_outcome_with(
        &self,
        aux: &mut raw::Aux,
        read: impl FnOnce(&mut Option<T>) -> Option<T>,
    ) -> Option<Result<T>> {
        match aux.completion.status() {
            StatusRef::Pending => None,
            StatusRef::Failed(_) => aux.completion.read_error().map(Err),
            StatusRef::Succeeded => {
                // SAFETY: the aux lock is held and `T` is this task's output type.
                let slot = unsafe { &mut *self.any.raw.output::<T>() };
                Some(read(slot).ok_or_else(|| {
                    Error::invalid_state("the task's result was already taken by another await")
                }))
            }
        }
    }

    /// The task's result, like asyncio's `Task.result()`: the value (cloned),
    /// or the error it failed with, or the cancellation; an invalid-state
    /// error if the task is not done.
    pub fn result(&self) -> Result<T>
    where
        T: Clone,
    {
        let mut aux = lock(&self.any.raw.header().aux);
        self.read_outcome(&mut aux, false)
            .unwrap_or_else(|| Err(Error::invalid_state("the task is not done yet")))
    }

    /// Like [`result`](Self::result) but moves the value out, for `T` that is
    /// not `Clone`. Later reads of the value fail with an invalid-state error.
    pub fn take_result(&self) -> Result<T> {
        let mut aux = lock(&self.any.raw.header().aux);
        self.read_outcome_with(&mut aux, Option::take)
            .unwrap_or_else(|| Err(Error::invalid_state("the task is not done yet")))
    }

    /// Registers a callback to run when the task is done (asyncio's
    /// `add_done_callback`). Callbacks run after completion, on the worker
    /// that completed the task, in registration order, before the task's
    /// awaiters wake (so they can read the result); one added to a done task
    /// runs soon, and by then an await may already have moved the value out
    /// (its `result()` is then an invalid-state error: read the value with
    /// [`result`](Self::result) instead of awaiting if callbacks need it).
    /// A callback that panics is reported and the others still run. Keep
    /// callbacks short: they run on a worker thread.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// let seen = Arc::new(AtomicBool::new(false));
    /// let flag = seen.clone();
    /// spindle::run(async move {
    ///     let go = Arc::new(spindle::Event::new());
    ///     let gate = go.clone();
    ///     let task = spindle::spawn(async move {
    ///         gate.wait().await?;
    ///         spindle::Ok(1)
    ///     });
    ///     // Registered before the task is done: runs before the await below
    ///     // wakes, so the value is still there to read.
    ///     task.add_done_callback(move |t: &spindle::Task<i32>| {
    ///         flag.store(t.result().unwrap() == 1, Ordering::SeqCst);
    ///     });
    ///     go.set();
    ///     task.await?;
    ///     spindle::Ok(())
    /// }).unwrap();
    /// assert!(seen.load(Ordering::SeqCst));
    /// ```
    pub fn add_done_callback(&self, callback: impl Into<DoneCallback<Task<T>>>)
    where
        T: Send + 'static,
    {
        let callback = callback.into();
        let handle = self.clone();
        let key = callback.key();
        self.any.raw.add_callback(StoredCallback::Closure {
            key,
            call: Box::new(move || (callback.0)(&handle)),
        });
    }

    /// Removes every registration of `callback`; returns how many there were.
    pub fn remove_done_callback(&self, callback: &DoneCallback<Task<T>>) -> usize {
        lock(&self.any.raw.header().aux)
            .completion
            .remove_callbacks(callback.key())
    }
}

impl<T> Clone for Task<T> {
    fn clone(&self) -> Self {
        Task {
            any: self.any.clone(),
            _output: PhantomData,
        }
    }
}

impl<T> std::ops::Deref for Task<T> {
    type Target = AnyTask;
    fn deref(&self) -> &AnyTask {
        &self.any
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.any.fmt(f)
    }
}

/// A done callback that can be registered and later removed by identity
/// (asyncio's `remove_done_callback(cb)` removes every registration of `cb`).
/// Closures convert into it; keep a clone to remove it later.
///
/// ```
/// use spindle::task::DoneCallback;
/// spindle::run(async {
///     let task = spindle::spawn(std::future::pending::<spindle::Result<()>>());
///     let cb: DoneCallback<spindle::Task<()>> = DoneCallback::new(|_t| {});
///     task.add_done_callback(cb.clone());
///     task.add_done_callback(cb.clone());
///     assert_eq!(task.remove_done_callback(&cb), 2);
///     task.cancel();
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct DoneCallback<H>(Arc<dyn Fn(&H) + Send + Sync>);

impl<H> DoneCallback<H> {
    /// Wraps a function.
    pub fn new(f: impl Fn(&H) + Send + Sync + 'static) -> Self {
        DoneCallback(Arc::new(f))
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }

    pub(crate) fn call(&self, handle: &H) {
        (self.0)(handle)
    }
}

impl<H> Clone for DoneCallback<H> {
    fn clone(&self) -> Self {
        DoneCallback(self.0.clone())
    }
}

impl<H, F: Fn(&H) + Send + Sync + 'static> From<F> for DoneCallback<H> {
    fn from(f: F) -> Self {
        DoneCallback::new(f)
    }
}

/// Settings for a task to spawn: its name, and whether it starts eagerly.
///
/// ```
/// spindle::run(async {
///     let t = spindle::task::Builder::new().name("fetch-a").spawn(async { spindle::Ok(()) });
///     assert_eq!(t.name(), "fetch-a");
///     t.await
/// }).unwrap();
/// ```
#[derive(Default, Debug, Clone)]
pub struct Builder {
    name: Option<Arc<str>>,
    eager: Option<bool>,
}

impl Builder {
    /// Default settings: the task is named `Task-<id>`.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// Starts the task eagerly (`true`, asyncio's `eager_start=True`) or
    /// lazily (`false`): an eager task's first step runs inside the spawn
    /// call, as the current task, up to its first suspension; a task that
    /// never suspends is done when the spawn returns, without ever being
    /// queued. A lazy task first runs when its creator yields. Without
    /// this call the runtime's default applies: lazy, unless the runtime
    /// was built with
    /// [`eager_tasks`](crate::runtime::Builder::eager_tasks) (asyncio's
    /// `eager_task_factory`).
    ///
    /// The eager step runs only when the spawn is made on one of the
    /// runtime's workers and fewer than 64 eager steps are already nested
    /// there; otherwise the task is queued as usual. C tasks never start
    /// eagerly.
    ///
    /// ```
    /// spindle::run(async {
    ///     let t = spindle::task::Builder::new()
    ///         .eager_start(true)
    ///         .spawn(async { spindle::Ok("hello") });
    ///     assert!(t.done()); // it never suspended
    ///     t.await
    /// }).unwrap();
    /// ```
    pub fn eager_start(mut self, eager: bool) -> Builder {
        self.eager = Some(eager);
        self
    }

    /// Spawns on the current runtime (see [`spawn`]).
    ///
    /// # Panics
    /// Outside a runtime; use [`Handle::spawn_with`] or
    /// [`try_spawn`](Self::try_spawn) there.
    pub fn spawn<F, T, E>(self, future: F) -> Task<T>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        match self.try_spawn(future) {
            Ok(task) => task,
            Err(e) => panic!("spindle::spawn: {e}"),
        }
    }

    /// Spawns on the current runtime; an error outside a runtime.
    pub fn try_spawn<F, T, E>(self, future: F) -> Result<Task<T>>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        self.try_spawn_recorded(future, |_| {})
    }

    /// Spawns on the current runtime, calling `record` with the new task
    /// after it is created and before it starts (it may finish at its start,
    /// if eager). An error outside a runtime, before anything is created.
    pub(crate) fn try_spawn_recorded<F, T, E>(
        self,
        future: F,
        record: impl FnOnce(&Task<T>),
    ) -> Result<Task<T>>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        // Spawned through the thread's runtime without cloning a `Handle`
        // (two reference-count updates per spawn saved).
        let spawn = self.into_spawn();
        context::with_runtime(|shared, _| {
            let (raw, start) = shared.create(future, spawn);
            let task = task_from_raw(raw.expect("a visible task always has a handle reference"));
            record(&task);
            start.start(shared);
            task
        })
        .ok_or_else(Handle::no_runtime)
    }

    pub(crate) fn into_spawn(self) -> raw::Spawn {
        raw::Spawn {
            name: self.name,
            hidden: false,
            eager: self.eager,
        }
    }
}

/// Spawns a task on the current runtime, like asyncio's `create_task`.
///
/// The task does not run before its creator reaches an await point that
/// yields, or another worker picks it up ([`Builder::eager_start`] runs its
/// first step inside the spawn instead). Its handle can be awaited,
/// inspected and cancelled; dropping the handle detaches the task.
///
/// On a runtime that has shut down, the returned task is already done and
/// failed with a runtime error.
///
/// # Panics
/// Outside a runtime (no runtime on this thread). [`Builder::try_spawn`]
/// returns that as an error instead.
pub fn spawn<F, T, E>(future: F) -> Task<T>
where
    F: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<Error>,
{
    Builder::new().spawn(future)
}

pub(crate) fn task_from_raw<T>(raw: RawTask) -> Task<T> {
    Task::from_raw(raw)
}

/// The task running on this thread (asyncio's `current_task()`): `Ok(None)`
/// on a runtime thread outside any task, an error outside a runtime.
pub fn current_task() -> Result<Option<AnyTask>> {
    if let Some(raw) = context::current_task_raw() {
        return Ok(Some(AnyTask::clone_from_raw(raw)));
    }
    Handle::try_current().map(|_| None)
}

/// A snapshot of the runtime's unfinished tasks, including ones not started
/// yet and suspended ones (asyncio's `all_tasks()`). An error outside a
/// runtime.
pub fn all_tasks() -> Result<Vec<AnyTask>> {
    Ok(Handle::try_current()?.all_tasks())
}
