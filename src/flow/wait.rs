//! [`wait`]: wait until some or all of a set of tasks are done, like
//! `asyncio.wait`, and get them back split into done and pending.

use super::track::{Tracker, WakeOn};
use crate::error::{Error, Result};
use crate::runtime::context;
use crate::task::Task;
use crate::time::Sleep;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// When [`wait`] returns (asyncio's `return_when`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any task is done (`FIRST_COMPLETED`).
    FirstCompleted,
    /// As soon as any task fails, or when all are done if none fails
    /// (`FIRST_EXCEPTION`). A cancelled task is not a failure.
    FirstException,
    /// When every task is done (`ALL_COMPLETED`, the default).
    #[default]
    AllCompleted,
}

/// Waits for the tasks until `return_when` holds or `timeout` passes, like
/// `asyncio.wait`, and gives them back as `(done, pending)`, each in input
/// order, with duplicates (the same task given twice) removed.
///
/// `wait` never returns the tasks' errors and never cancels them, not on
/// timeout either (`None` means no limit; a zero timeout yields once and
/// returns, typically with everything pending). Read the outcomes from the
/// returned handles. An empty set of tasks is an invalid-argument error
/// (an invalid `return_when`, asyncio's other `ValueError`, cannot be
/// written).
///
/// Awaiting is a cancellation point and consumes cooperative budget: if the
/// awaiting task is cancelled, `wait` returns the cancellation and the tasks
/// are left running (asyncio's `wait` does not cancel them either).
///
/// ```
/// use std::time::Duration;
/// use spindle::ReturnWhen;
/// spindle::run(async {
///     let servers: Vec<_> = [30u64, 5, 60]
///         .map(|ms| spindle::spawn(async move {
///             spindle::sleep(Duration::from_millis(ms)).await?;
///             spindle::Ok(ms)
///         }))
///         .into();
///     let (done, pending) = spindle::wait(servers, ReturnWhen::FirstCompleted, None).await?;
///     assert_eq!(done.len(), 1);
///     assert_eq!(done[0].result()?, 5);
///     for task in &pending {
///         task.cancel(); // wait itself cancels nothing
///     }
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn wait<T, I>(tasks: I, return_when: ReturnWhen, timeout: Option<Duration>) -> Wait<T>
where
    I: IntoIterator<Item = Task<T>>,
{
    let mut seen = HashSet::new();
    let tasks = tasks
        .into_iter()
        .filter(|task| seen.insert(task.id()))
        .collect();
    Wait {
        tasks,
        return_when,
        timeout,
        stage: Stage::Start,
    }
}

/// The future of [`wait`]: `Result<(done, pending)>`.
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<T> {
    tasks: Vec<Task<T>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
    stage: Stage,
}

enum Stage {
    Start,
    Waiting {
        tracker: Tracker,
        timer: Option<Sleep>,
    },
    Done,
}

impl<T> Wait<T> {
    /// The tasks waited for (duplicates removed), in input order.
    pub fn tasks(&self) -> &[Task<T>] {
        &self.tasks
    }

    fn start(&mut self) -> Result<()> {
        if self.tasks.is_empty() {
            return Err(Error::invalid_argument("wait() of an empty set of tasks"));
        }
        let wake_on = match self.return_when {
            ReturnWhen::FirstCompleted => WakeOn::Each,
            ReturnWhen::FirstException => WakeOn::FirstError,
            ReturnWhen::AllCompleted => WakeOn::All,
        };
        let tasks = self.tasks.iter().map(|t| t.as_any().clone()).collect();
        self.stage = Stage::Waiting {
            tracker: Tracker::new(tasks, wake_on, false),
            timer: self.timeout.map(crate::time::sleep),
        };
        Ok(())
    }

    /// Splits the tasks into (done, pending), in input order.
    fn split(&mut self) -> (Vec<Task<T>>, Vec<Task<T>>) {
        self.stage = Stage::Done;
        std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|task| task.done())
    }
}

impl<T> Future for Wait<T> {
    type Output = Result<(Vec<Task<T>>, Vec<Task<T>>)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Stage::Start = this.stage {
            if let Err(e) = this.start() {
                this.stage = Stage::Done;
                return Poll::Ready(Err(e));
            }
        }
        let Stage::Waiting { tracker, timer } = &mut this.stage else {
            return Poll::Ready(Err(Error::invalid_state("the wait already finished")));
        };
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        if tracker.poll_ready(cx).is_ready() {
            return Poll::Ready(Ok(this.split()));
        }
        if let Some(cancel) = context::take_current_cancel() {
            this.stage = Stage::Done;
            return Poll::Ready(Err(cancel));
        }
        if let Some(timer) = timer {
            match Pin::new(timer).poll(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(this.split())),
                // A cancellation that arrived in between, or no runtime.
                Poll::Ready(Err(e)) => {
                    this.stage = Stage::Done;
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for Wait<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait")
            .field("tasks", &self.tasks)
            .field("return_when", &self.return_when)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
