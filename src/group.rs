//! [`TaskGroup`]: structured concurrency, asyncio's `TaskGroup`.
//!
//! The group runs a *body* (the `async with` block) in the current task,
//! the *parent*, and tasks spawned into it, the *children*. It follows
//! CPython 3.13's `taskgroups.py` step by step:
//! - it waits for every child, including children spawned by other children
//!   while it is already waiting;
//! - a child cancelled on its own is ignored;
//! - the first child failure cancels the other children and the parent
//!   (the body sees the cancellation at its current await point); the group
//!   withdraws that cancel request again when it exits;
//! - the group then fails with an [`ErrorGroup`] of every real failure: the
//!   children's in completion order, then the body's; never a cancellation;
//! - a cancel from outside cancels the children and propagates, with its
//!   message, once they are done.

use crate::error::{Error, ErrorGroup, Result};
use crate::loom::{lock, Mutex};
use crate::runtime::context;
use crate::task::{self, AnyTask, DoneHook, HookRef, Task};
use slab::Slab;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

/// A group of tasks that all end before the group does (asyncio's
/// `TaskGroup`). Clones refer to the same group, so the body and the
/// children can spawn into it.
///
/// ```
/// use std::time::Duration;
/// let doubled = spindle::run(async {
///     let tg = spindle::TaskGroup::new();
///     let tasks = tg.run(async {
///         let mut tasks = Vec::new();
///         for i in 0..5u64 {
///             tasks.push(tg.spawn(async move {
///                 spindle::sleep(Duration::from_millis(10)).await?;
///                 spindle::Ok(i * 2)
///             })?);
///         }
///         spindle::Ok(tasks)
///     }).await?;
///     // Every child is done here.
///     tasks.iter().map(|t| t.result()).collect::<spindle::Result<Vec<u64>>>()
/// }).unwrap();
/// assert_eq!(doubled, [0, 2, 4, 6, 8]);
/// ```
///
/// When children fail, the group fails with every failure, and the errors
/// can be sorted out by type like Python's `except*`:
///
/// ```
/// let err = spindle::run(async {
///     spindle::task_group(|tg| async move {
///         tg.spawn(async { Err::<(), _>(spindle::Error::msg("bad item 3")) })?;
///         tg.spawn(spindle::sleep(std::time::Duration::from_secs(60)))?; // cancelled
///         spindle::Ok(())
///     }).await
/// }).unwrap_err();
/// let group = err.as_group().unwrap();
/// assert_eq!(group.len(), 1);
/// assert_eq!(group.errors()[0].to_string(), "bad item 3");
/// ```
#[derive(Clone, Default)]
pub struct TaskGroup {
    shared: Arc<Mutex<GroupState>>,
}

#[derive(Default)]
struct GroupState {
    entered: bool,
    exiting: bool,
    aborting: bool,
    /// The task the group was entered in.
    parent: Option<AnyTask>,
    /// The group cancelled the parent after a child failed, and must
    /// withdraw that request when it exits.
    parent_cancel_requested: bool,
    /// Children not done yet, by the key their done callback holds.
    children: Children,
    /// Real failures of children, each with its place among the
    /// runtime's failures (see [`AnyTask::failure_order`]); sorted by it at
    /// exit, for completion order.
    errors: Vec<(u64, Error)>,
    /// The exit waiting for the last child.
    on_completed: Option<Waker>,
}

/// The children a group waits for, by key: the first [`INLINE_CHILDREN`]
/// in the group's own block, the rest in a slab. In a fork-join tree every
/// group has two children, and the slab's first allocation (64 bytes) was
/// one more malloc per group.
#[derive(Default)]
struct Children {
    /// Keys `0..INLINE_CHILDREN`.
    inline: [Option<AnyTask>; INLINE_CHILDREN],
    /// Key `INLINE_CHILDREN + k` is `more[k]`.
    more: Slab<AnyTask>,
}

/// Children a group keeps without an allocation of their own.
const INLINE_CHILDREN: usize = 2;

impl Children {
    /// Adds a child; returns its key.
    fn insert(&mut self, child: AnyTask) -> usize {
        match self.inline.iter().position(Option::is_none) {
            Some(key) => {
                self.inline[key] = Some(child);
                key
            }
            None => INLINE_CHILDREN + self.more.insert(child),
        }
    }

    /// Removes the child of `key`, if it is still there.
    fn remove(&mut self, key: usize) {
        match key.checked_sub(INLINE_CHILDREN) {
            None => self.inline[key] = None,
            Some(key) => {
                self.more.try_remove(key);
            }
        }
    }

    fn len(&self) -> usize {
        self.inline.iter().flatten().count() + self.more.len()
    }

    fn is_empty(&self) -> bool {
        self.inline.iter().all(Option::is_none) && self.more.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &AnyTask> {
        self.inline
            .iter()
            .flatten()
            .chain(self.more.iter().map(|(_, child)| child))
    }
}

impl GroupState {
    /// asyncio's `_abort`: cancel every child still running.
    fn abort(&mut self) {
        self.aborting = true;
        crate::task::cancel_all(self.children.iter(), None);
    }

    /// The children's errors, in the order they failed.
    fn take_errors(&mut self) -> Vec<Error> {
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|(order, _)| *order);
        errors.into_iter().map(|(_, error)| error).collect()
    }

    /// asyncio's `_on_task_done`.
    fn child_done(&mut self, key: usize, child: &AnyTask) {
        self.children.remove(key);
        if self.children.is_empty() {
            if let Some(waker) = self.on_completed.take() {
                waker.wake();
            }
        }
        // One look at the outcome: a cancelled child is `Err` here, and
        // ignored like a successful one.
        let Ok(Some(error)) = child.exception() else {
            return;
        };
        // The hooks of children completing on different workers may run in
        // either order, even when one child failed after seeing the other
        // done: their places among the failures say which came first.
        self.errors.push((child.failure_order(), error));
        let Some(parent) = self.parent.clone() else {
            return;
        };
        if parent.done() {
            return;
        }
        if !self.aborting && !self.parent_cancel_requested {
            // Cancel whatever the body is awaiting; withdrawn at exit.
            self.abort();
            self.parent_cancel_requested = true;
            parent.cancel();
        }
    }
}

/// asyncio's `_on_task_done`, as a done hook on every child (`token`: the
/// child's key in `children`).
impl DoneHook for Mutex<GroupState> {
    fn task_done(&self, token: usize, task: &AnyTask) {
        lock(self).child_done(token, task);
    }
}

impl TaskGroup {
    /// A group that has not been entered yet.
    pub fn new() -> TaskGroup {
        TaskGroup::default()
    }

    /// Spawns a child (asyncio's `TaskGroup.create_task`). An invalid-state
    /// error, and the future is dropped without running, if the group has
    /// not been entered, has finished, or is shutting down after a failure
    /// or a cancellation.
    pub fn spawn<F, T, E>(&self, future: F) -> Result<Task<T>>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        self.spawn_with(task::Builder::new(), future)
    }

    /// Spawns a child with settings (a name) from a task builder.
    pub fn spawn_with<F, T, E>(&self, builder: task::Builder, future: F) -> Result<Task<T>>
    where
        F: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Error>,
    {
        let state = lock(&self.shared);
        if !state.entered {
            return Err(Error::invalid_state("the TaskGroup has not been entered"));
        }
        if state.exiting && state.children.is_empty() {
            return Err(Error::invalid_state("the TaskGroup is finished"));
        }
        if state.aborting {
            return Err(Error::invalid_state("the TaskGroup is shutting down"));
        }
        // The child is recorded in the group, and its done hook installed,
        // before it starts: an eager child may finish at its start, and its
        // failure must then abort the group (asyncio runs `_on_task_done`
        // at once for a child already done at creation).
        let mut state = Some(state);
        builder.try_spawn_recorded(future, |task| {
            let mut state = state.take().expect("a task is recorded once");
            let key = state.children.insert(task.as_any().clone());
            drop(state);
            // asyncio adds `_on_task_done` as a done callback; an internal
            // hook costs no allocation. If the child is already done (the
            // runtime has shut down) it runs here and now: nothing of the
            // group is locked at this point.
            let group: Weak<dyn DoneHook> = Arc::downgrade(&self.shared) as Weak<Mutex<GroupState>>;
            task.as_any().on_done_internal(HookRef::Weak(group), key);
        })
    }

    /// Runs `body` as the group's block (asyncio's `async with TaskGroup()`),
    /// in the current task. The future gives the body's value once every
    /// child is done; or an [`ErrorGroup`] error if children or the body
    /// failed; or the cancellation if the task was cancelled from outside.
    /// A group can be entered once.
    pub fn run<F, T, E>(&self, body: F) -> GroupFuture<F::IntoFuture, T>
    where
        F: IntoFuture<Output = std::result::Result<T, E>>,
        E: Into<Error>,
    {
        GroupFuture {
            group: self.clone(),
            stage: Stage::Start,
            body: Some(body.into_future()),
        }
    }

    fn enter(&self) -> Result<()> {
        let parent = task::current_task()?
            .ok_or_else(|| Error::runtime("a TaskGroup must run inside a task"))?;
        let mut state = lock(&self.shared);
        if state.entered {
            return Err(Error::invalid_state("a TaskGroup can be entered only once"));
        }
        state.entered = true;
        state.parent = Some(parent);
        Ok(())
    }
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("TaskGroup")
            .field("children", &state.children.len())
            .field("errors", &state.errors.len())
            .field("aborting", &state.aborting)
            .finish()
    }
}

/// Runs `body` with a new [`TaskGroup`] that it receives, like
/// `async with asyncio.TaskGroup() as tg:`.
pub fn task_group<B, F, T, E>(body: B) -> GroupFuture<F::IntoFuture, T>
where
    B: FnOnce(TaskGroup) -> F,
    F: IntoFuture<Output = std::result::Result<T, E>>,
    E: Into<Error>,
{
    let group = TaskGroup::new();
    let future = body(group.clone());
    group.run(future)
}

enum Stage<T> {
    Start,
    Body,
    /// The body ended; waiting for the children.
    Exiting {
        body: Result<T>,
        propagate: Option<Error>,
    },
    Done,
}

/// The future of [`TaskGroup::run`] and [`task_group`].
#[must_use = "futures do nothing unless awaited"]
pub struct GroupFuture<F, T> {
    group: TaskGroup,
    stage: Stage<T>,
    body: Option<F>,
}

impl<F, T, E> GroupFuture<F, T>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: Into<Error>,
{
    /// The body ended: start exiting (asyncio's `__aexit__`, first part).
    fn begin_exit(&mut self, body: Result<T>) {
        let mut state = lock(&self.group.shared);
        state.exiting = true;
        let propagate = match &body {
            Err(e) if e.is_cancelled() => Some(e.clone()),
            _ => None,
        };
        if body.is_err() && !state.aborting {
            state.abort();
        }
        drop(state);
        self.stage = Stage::Exiting { body, propagate };
    }

    /// Waits for the children; `Ready` once they are all done.
    fn poll_children(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Stage::Exiting { propagate, .. } = &mut self.stage else {
            return Poll::Ready(());
        };
        if lock(&self.group.shared).children.is_empty() {
            return Poll::Ready(());
        }
        if let Some(cancel) = context::take_current_cancel() {
            let mut state = lock(&self.group.shared);
            if !state.aborting {
                // The parent is cancelled from outside while waiting.
                *propagate = Some(cancel);
                state.abort();
            }
        }
        let mut state = lock(&self.group.shared);
        if state.children.is_empty() {
            return Poll::Ready(());
        }
        state.on_completed = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Every child is done (asyncio's `__aexit__`, last part).
    fn finish(&mut self) -> Result<T> {
        let Stage::Exiting {
            body,
            mut propagate,
        } = std::mem::replace(&mut self.stage, Stage::Done)
        else {
            return Err(Error::invalid_state("the TaskGroup already finished"));
        };
        let mut state = lock(&self.group.shared);
        let parent = state.parent.clone();
        if state.parent_cancel_requested {
            if let Some(parent) = &parent {
                if parent.uncancel() == 0 {
                    propagate = None;
                }
            }
        }
        let mut errors = state.take_errors();
        drop(state);
        if let Some(cancel) = propagate {
            if errors.is_empty() {
                return Err(cancel);
            }
        }
        match body {
            Err(e) if !e.is_cancelled() => errors.push(e),
            Ok(value) if errors.is_empty() => return Ok(value),
            _ => {}
        }
        if errors.is_empty() {
            // The body was cancelled by the group itself and nothing failed;
            // cannot happen (the group only cancels after a failure).
            return Err(Error::invalid_state("the TaskGroup's body was cancelled"));
        }
        if let Some(parent) = &parent {
            if parent.cancelling() > 0 {
                // Cancelled from outside too: keep the count stable.
                parent.uncancel();
                parent.cancel();
            }
        }
        Err(Error::group(ErrorGroup::new(
            "unhandled errors in a TaskGroup",
            errors,
        )))
    }
}

impl<F, T, E> Future for GroupFuture<F, T>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: Into<Error>,
{
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `body` is structurally pinned: it is never moved out while
        // `Some`, only dropped in place (set to `None`); the other fields are
        // not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        loop {
            match &this.stage {
                Stage::Start => {
                    if let Err(e) = this.group.enter() {
                        this.stage = Stage::Done;
                        this.body = None;
                        return Poll::Ready(Err(e));
                    }
                    this.stage = Stage::Body;
                }
                Stage::Body => {
                    let Some(body) = this.body.as_mut() else {
                        return Poll::Ready(Err(Error::invalid_state(
                            "the TaskGroup's body is gone",
                        )));
                    };
                    // SAFETY: see above.
                    let body = unsafe { Pin::new_unchecked(body) };
                    let outcome = std::task::ready!(body.poll(cx)).map_err(Into::into);
                    this.body = None;
                    this.begin_exit(outcome);
                }
                Stage::Exiting { .. } => {
                    std::task::ready!(this.poll_children(cx));
                    return Poll::Ready(this.finish());
                }
                Stage::Done => {
                    return Poll::Ready(Err(Error::invalid_state("the TaskGroup already finished")))
                }
            }
        }
    }
}

impl<F, T> Drop for GroupFuture<F, T> {
    fn drop(&mut self) {
        // Dropped before the children were awaited (the parent was aborted):
        // they must not outlive the group unnoticed, so cancel them.
        if matches!(self.stage, Stage::Body | Stage::Exiting { .. }) {
            let mut state = lock(&self.group.shared);
            state.exiting = true;
            state.abort();
            // The group's own cancel request on the parent goes with it.
            if std::mem::take(&mut state.parent_cancel_requested) {
                if let Some(parent) = &state.parent {
                    parent.uncancel();
                }
            }
        }
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    /// Two children completing on different workers may have their hooks
    /// run in either order, even when one failed after seeing the other
    /// done (`case_73_errors_in_completion_order_then_body` failed 5 times
    /// in 7,734 runs that way): the errors still come in the order the
    /// children failed.
    #[test]
    fn errors_come_in_failure_order_whatever_order_the_hooks_ran_in() {
        let rt = crate::Runtime::builder().worker_threads(1).build().unwrap();
        let (first, second) = rt
            .block_on(async {
                let first = crate::spawn(async { Err::<(), _>(Error::msg("first")) });
                let seen = first.clone();
                let second = crate::spawn(async move {
                    let _ = seen.await;
                    Err::<(), _>(Error::msg("second"))
                });
                let _ = second.clone().await;
                crate::Ok((first, second))
            })
            .unwrap();
        assert!(first.failure_order() < second.failure_order());
        let mut state = GroupState::default();
        let first_key = state.children.insert(first.as_any().clone());
        let second_key = state.children.insert(second.as_any().clone());
        state.child_done(second_key, second.as_any());
        state.child_done(first_key, first.as_any());
        let messages: Vec<_> = state.take_errors().iter().map(Error::to_string).collect();
        assert_eq!(messages, ["first", "second"]);
    }

    #[test]
    fn children_keep_their_keys_inline_and_beyond_and_reuse_freed_ones() {
        let rt = crate::Runtime::builder().worker_threads(1).build().unwrap();
        let tasks: Vec<_> = (0..5).map(|_| rt.spawn(async { crate::Ok(()) })).collect();
        let mut children = Children::default();
        let keys: Vec<_> = tasks[..4]
            .iter()
            .map(|task| children.insert(task.as_any().clone()))
            .collect();
        assert_eq!(keys, [0, 1, 2, 3]);
        assert_eq!((children.len(), children.iter().count()), (4, 4));
        children.remove(0);
        children.remove(0);
        children.remove(3);
        children.remove(3);
        assert_eq!((children.len(), children.iter().count()), (2, 2));
        let ids: Vec<_> = children.iter().map(AnyTask::id).collect();
        assert_eq!(ids, [tasks[1].id(), tasks[2].id()]);
        assert_eq!(
            children.insert(tasks[4].as_any().clone()),
            0,
            "a freed inline key first"
        );
        assert_eq!(children.insert(tasks[0].as_any().clone()), 3);
        for key in [0, 1, 2, 3] {
            children.remove(key);
        }
        assert!(children.is_empty());
        assert_eq!(children.iter().count(), 0);
    }
}
