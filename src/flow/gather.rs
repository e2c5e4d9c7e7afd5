//! [`gather`]: run awaitables in parallel and collect their results in
//! argument order, like `asyncio.gather`; and the [`gather!`](crate::gather!)
//! macro for a fixed list of differently typed awaitables.

use super::track::{Tracked, Tracker, WakeOn};
use crate::error::{Error, Result};
use crate::runtime::context;
use crate::task::{AnyTask, IntoTask, Task};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Runs every awaitable in parallel and gives their values in argument
/// order (not completion order), like `asyncio.gather`.
///
/// Futures are spawned as tasks right away, so they run in parallel even
/// before the gather is awaited; [`Task`] handles are used as they are.
/// Awaiting the gather moves each value out of its task (as awaiting the
/// task would), so a task given twice fills its second slot with an
/// invalid-state error.
///
/// - The first failure (in completion order, across workers; tasks already
///   done when the gather starts come first, in argument order, as in
///   asyncio) is returned at once; the other
///   tasks are **not** cancelled and keep running, and their later failures
///   count as retrieved (no "never retrieved" report). A task cancelled on
///   its own counts as a failure here: the gather returns its cancellation.
/// - [`return_exceptions`](Gather::return_exceptions) instead waits for all
///   of them and gives every outcome in its slot.
/// - If the task awaiting the gather is cancelled, every unfinished task is
///   cancelled with the same message. Without `return_exceptions` the
///   gather then ends like above, at the first task that ends cancelled (or
///   failed); if every task swallows the cancellation, or with
///   `return_exceptions`, it waits for all of them and returns the
///   cancellation. Once all the tasks are done, a cancellation no longer
///   affects the gather: awaiting it gives the results (the cancellation
///   is delivered at the next await point).
/// - A gather of nothing gives an empty `Vec`.
///
/// Awaiting is a cancellation point and consumes cooperative budget.
/// Dropping the gather before it ends detaches the tasks (they keep
/// running, nothing is cancelled).
///
/// # Panics
/// Spawning a future outside a runtime panics, like [`spawn`](crate::spawn).
///
/// ```
/// use std::time::{Duration, Instant};
/// spindle::run(async {
///     let start = Instant::now();
///     let fetches = ["a", "bb", "ccc"].map(|page| async move {
///         spindle::sleep(Duration::from_millis(100)).await?;
///         spindle::Ok(page.len())
///     });
///     // The three fetches run in parallel: about 100 ms, not 300.
///     assert_eq!(spindle::gather(fetches).await?, [1, 2, 3]);
///     assert!(start.elapsed() < Duration::from_millis(290));
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn gather<I>(items: I) -> Gather<<I::Item as IntoTask>::Output>
where
    I: IntoIterator,
    I::Item: IntoTask,
{
    let tasks: Vec<Task<_>> = items.into_iter().map(IntoTask::into_task).collect();
    Gather {
        core: Core::new(tasks),
        read: Task::take_result,
    }
}

/// The future of [`gather`]: `Result<Vec<T>>`.
#[must_use = "the tasks run anyway; await the gather to collect their results"]
pub struct Gather<T> {
    /// Holds the tasks, in argument order.
    core: Core<Task<T>>,
    /// How a result leaves its task: moved out, or cloned
    /// ([`Gather::cloning`]).
    read: fn(&Task<T>) -> Result<T>,
}

impl<T> Gather<T> {
    /// Gives every outcome in its slot instead of returning the first
    /// failure (asyncio's `return_exceptions=True`): the gather waits for
    /// every task and gives `Vec<Result<T>>`. It still returns the
    /// cancellation if the awaiting task was cancelled while it waited.
    ///
    /// ```
    /// spindle::run(async {
    ///     let outcomes = spindle::gather([
    ///         spindle::spawn(async { Err::<u32, _>(spindle::Error::msg("v")) }),
    ///         spindle::spawn(async { spindle::Ok(7) }),
    ///     ])
    ///     .return_exceptions()
    ///     .await?;
    ///     assert_eq!(outcomes[0].as_ref().unwrap_err().to_string(), "v");
    ///     assert_eq!(*outcomes[1].as_ref().unwrap(), 7);
    ///     spindle::Ok(())
    /// }).unwrap();
    /// ```
    pub fn return_exceptions(self) -> GatherOutcomes<T> {
        self.core.tracker.set_wake_on(WakeOn::All);
        GatherOutcomes {
            core: Core {
                return_exceptions: true,
                ..self.core
            },
            read: self.read,
        }
    }

    /// The gathered tasks, in argument order.
    pub fn tasks(&self) -> &[Task<T>] {
        self.core.tracker.tasks()
    }
}

impl<T: Clone> Gather<T> {
    /// Collects the results by cloning, leaving them in the tasks so that a
    /// later join or `result()` reads them again (asyncio's behaviour, which
    /// the C API follows).
    pub(crate) fn cloning(self) -> Gather<T> {
        Gather {
            read: Task::result,
            ..self
        }
    }
}

impl<T> Future for Gather<T> {
    type Output = Result<Vec<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let end = std::task::ready!(this.core.poll_end(cx));
        let read = this.read;
        Poll::Ready(
            this.core
                .finish(end, |tasks| tasks.iter().map(read).collect()),
        )
    }
}

impl<T> std::fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather")
            .field("tasks", &self.tasks())
            .finish_non_exhaustive()
    }
}

/// The future of [`Gather::return_exceptions`]: `Result<Vec<Result<T>>>`,
/// an error only when the awaiting task is cancelled.
#[must_use = "the tasks run anyway; await the gather to collect their results"]
pub struct GatherOutcomes<T> {
    /// Holds the tasks, in argument order.
    core: Core<Task<T>>,
    read: fn(&Task<T>) -> Result<T>,
}

impl<T> GatherOutcomes<T> {
    /// The gathered tasks, in argument order.
    pub fn tasks(&self) -> &[Task<T>] {
        self.core.tracker.tasks()
    }
}

impl<T> Future for GatherOutcomes<T> {
    type Output = Result<Vec<Result<T>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let end = std::task::ready!(this.core.poll_end(cx));
        let read = this.read;
        Poll::Ready(
            this.core
                .finish(end, |tasks| Ok(tasks.iter().map(read).collect())),
        )
    }
}

impl<T> std::fmt::Debug for GatherOutcomes<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatherOutcomes")
            .field("tasks", &self.tasks())
            .finish_non_exhaustive()
    }
}

/// How a gather ends.
enum End {
    /// Every task is done; no failure counts (or `return_exceptions`).
    Completed,
    /// This slot failed or was cancelled first (without `return_exceptions`).
    Failed(usize),
    /// The awaiting task was cancelled and every task is done.
    Cancelled(Error),
    /// Misuse: awaiting itself, or polled after the end.
    Invalid(Error),
}

/// The part of every gather future that does not read the values: the
/// tracker holds the tasks (`H`: typed handles for [`gather`], untyped ones
/// for [`gather!`](crate::gather!), whose tasks are differently typed).
struct Core<H: Tracked = AnyTask> {
    tracker: Tracker<H>,
    return_exceptions: bool,
    started: bool,
    ended: bool,
    /// The awaiting task's cancellation, returned once every task is done.
    cancel: Option<Error>,
}

impl<H: Tracked> Core<H> {
    fn new(tasks: Vec<H>) -> Core<H> {
        Core {
            tracker: Tracker::new(tasks, WakeOn::FirstFailure, false),
            return_exceptions: false,
            started: false,
            ended: false,
            cancel: None,
        }
    }

    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        if self.ended {
            return Poll::Ready(End::Invalid(Error::invalid_state(
                "the gather already finished",
            )));
        }
        if !self.started {
            self.started = true;
            if self
                .tracker
                .tasks()
                .iter()
                .any(|task| task.any().is_same_as_current())
            {
                return Poll::Ready(End::Invalid(Error::invalid_state(
                    "a task cannot await itself",
                )));
            }
        }
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        if let Poll::Ready(end) = self.poll_progress(cx) {
            return Poll::Ready(end);
        }
        if let Some(cancel) = context::take_current_cancel() {
            // asyncio's `_GatheringFuture.cancel`: pass it on to every task
            // not done yet, and end cancelled once they all are.
            let message = cancel.cancel_message().map(Arc::<str>::from);
            let accepted = crate::task::cancel_all(
                self.tracker
                    .tasks()
                    .iter()
                    .map(Tracked::any)
                    .filter(|task| !task.done()),
                message,
            );
            if accepted || self.cancel.is_some() {
                self.cancel.get_or_insert(cancel);
            } else {
                // Every task had just finished: the gather is not affected
                // (asyncio: `gather.cancel()` returns false) and the task
                // keeps its cancellation for its next await point.
                crate::task::restore_current_cancel(&cancel);
            }
            // Tasks may have ended in between.
            return self.poll_progress(cx);
        }
        Poll::Pending
    }

    fn poll_progress(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        let progress = std::task::ready!(self.tracker.poll_ready(cx));
        Poll::Ready(match progress.first_failure {
            Some(slot) if !self.return_exceptions => {
                End::Failed(if progress.first_failure_at_start {
                    slot
                } else {
                    self.first_failed_slot(slot)
                })
            }
            _ if progress.all_done => match self.cancel.take() {
                Some(cancel) => End::Cancelled(cancel),
                None => End::Completed,
            },
            // Not reachable: the tracker is ready only at a failure (counted
            // above) or when all are done.
            _ => return Poll::Pending,
        })
    }

    /// The slot whose task failed first, from the first one `recorded` by
    /// its done hook after tracking started (tasks already done then count
    /// in argument order, before the others, as in asyncio). The hooks run
    /// in the order the tasks completed, except that a task that failed
    /// after seeing another one done can have its hook run first, when the
    /// two completed on different workers; so the done tasks are checked
    /// for an earlier failure. Once per failed gather.
    fn first_failed_slot(&self, recorded: usize) -> usize {
        let tasks = self.tracker.tasks();
        let recorded_task = tasks[recorded].any();
        let (mut first, mut first_order) = (recorded, recorded_task.failure_order());
        for (slot, task) in tasks.iter().enumerate() {
            let task = task.any();
            if !task.done() || !task.same_runtime(recorded_task) {
                continue;
            }
            let order = task.failure_order();
            if order != 0 && order < first_order {
                (first, first_order) = (slot, order);
            }
        }
        first
    }

    /// The outcome of an ended gather; `values` reads the tasks' values.
    fn finish<V>(&mut self, end: End, values: impl FnOnce(&[H]) -> Result<V>) -> Result<V> {
        self.ended = true;
        match end {
            End::Completed => values(self.tracker.tasks()),
            End::Failed(slot) => {
                let task = self.tracker.tasks()[slot].any();
                let error = match task.exception() {
                    Ok(Some(error)) | Err(error) => error,
                    Ok(None) => Error::invalid_state("the failed task has no error"),
                };
                self.tracker.retrieve_all();
                Err(error)
            }
            End::Cancelled(cancel) => {
                self.tracker.retrieve_all();
                Err(cancel)
            }
            End::Invalid(error) => Err(error),
        }
    }
}

// -- gather! -----------------------------------------------------------------

/// Runs a fixed list of differently typed awaitables in parallel, like
/// [`gather`], and gives their values as a tuple:
/// `spindle::gather!(a, b, c).await` is a `Result<(A, B, C)>`. Each argument
/// is anything [`IntoTask`]: a future (spawned as a task) or a [`Task`]. The
/// semantics are those of [`gather`], including `.return_exceptions()`,
/// which gives a tuple of `Result`s.
///
/// ```
/// spindle::run(async {
///     let (n, s) = spindle::gather!(
///         async { spindle::Ok(1u8) },
///         spindle::spawn(async { spindle::Ok("two") }),
///     ).await?;
///     assert_eq!((n, s), (1, "two"));
///
///     let (a, b) = spindle::gather!(
///         async { Err::<u8, _>(spindle::Error::msg("bad")) },
///         async { spindle::Ok('b') },
///     ).return_exceptions().await?;
///     assert!(a.is_err());
///     assert_eq!(b?, 'b');
///     spindle::Ok(())
/// }).unwrap();
/// ```
#[macro_export]
macro_rules! gather {
    ($($item:expr),* $(,)?) => {
        $crate::flow::__gather_tuple(($($crate::task::IntoTask::into_task($item),)*))
    };
}

/// A tuple of tasks that [`gather!`](crate::gather!) can collect.
#[doc(hidden)]
pub trait GatherTuple {
    /// The tuple of values.
    type Values;
    /// The tuple of outcomes.
    type Outcomes;
    /// The untyped handles, in order.
    fn any_tasks(&self) -> Vec<AnyTask>;
    /// Moves the values out.
    fn take_values(&self) -> Result<Self::Values>;
    /// Moves the outcomes out.
    fn take_outcomes(&self) -> Self::Outcomes;
}

macro_rules! gather_tuple {
    ($($t:ident $i:tt),*) => {
        impl<$($t),*> GatherTuple for ($(Task<$t>,)*) {
            type Values = ($($t,)*);
            type Outcomes = ($(Result<$t>,)*);
            fn any_tasks(&self) -> Vec<AnyTask> {
                vec![$(self.$i.as_any().clone()),*]
            }
            fn take_values(&self) -> Result<Self::Values> {
                Ok(($(self.$i.take_result()?,)*))
            }
            fn take_outcomes(&self) -> Self::Outcomes {
                ($(self.$i.take_result(),)*)
            }
        }
    };
}

impl GatherTuple for () {
    type Values = ();
    type Outcomes = ();
    fn any_tasks(&self) -> Vec<AnyTask> {
        Vec::new()
    }
    fn take_values(&self) -> Result<()> {
        Ok(())
    }
    fn take_outcomes(&self) {}
}

gather_tuple!(A 0);
gather_tuple!(A 0, B 1);
gather_tuple!(A 0, B 1, C 2);
gather_tuple!(A 0, B 1, C 2, D 3);
gather_tuple!(A 0, B 1, C 2, D 3, E 4);
gather_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
gather_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
gather_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
gather_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
gather_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
gather_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
gather_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

/// What [`gather!`](crate::gather!) expands to.
#[doc(hidden)]
pub fn __gather_tuple<S: GatherTuple>(tasks: S) -> GatherTupleFuture<S> {
    let core = Core::new(tasks.any_tasks());
    GatherTupleFuture { tasks, core }
}

/// The future of [`gather!`](crate::gather!).
#[doc(hidden)]
#[must_use = "the tasks run anyway; await the gather to collect their results"]
pub struct GatherTupleFuture<S> {
    tasks: S,
    core: Core,
}

impl<S: GatherTuple> GatherTupleFuture<S> {
    /// Gives every outcome in its slot (see [`Gather::return_exceptions`]).
    pub fn return_exceptions(self) -> GatherTupleOutcomes<S> {
        self.core.tracker.set_wake_on(WakeOn::All);
        GatherTupleOutcomes {
            tasks: self.tasks,
            core: Core {
                return_exceptions: true,
                ..self.core
            },
        }
    }

    /// The gathered tasks.
    pub fn tasks(&self) -> &S {
        &self.tasks
    }
}

impl<S: GatherTuple + Unpin> Future for GatherTupleFuture<S> {
    type Output = Result<S::Values>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let end = std::task::ready!(this.core.poll_end(cx));
        Poll::Ready(this.core.finish(end, |_| this.tasks.take_values()))
    }
}

/// The future of [`gather!`](crate::gather!)`.return_exceptions()`.
#[doc(hidden)]
#[must_use = "the tasks run anyway; await the gather to collect their results"]
pub struct GatherTupleOutcomes<S> {
    tasks: S,
    core: Core,
}

impl<S: GatherTuple> GatherTupleOutcomes<S> {
    /// The gathered tasks.
    pub fn tasks(&self) -> &S {
        &self.tasks
    }
}

impl<S: GatherTuple + Unpin> Future for GatherTupleOutcomes<S> {
    type Output = Result<S::Outcomes>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let end = std::task::ready!(this.core.poll_end(cx));
        Poll::Ready(this.core.finish(end, |_| Ok(this.tasks.take_outcomes())))
    }
}
