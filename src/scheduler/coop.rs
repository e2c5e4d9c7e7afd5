//! Cooperative budgeting: every await point of the runtime consumes one unit
//! of the polling task's budget; when it is spent the await point returns
//! `Pending` after waking the task, so a task that is always ready goes to
//! the back of the queue instead of starving the others.

use crate::runtime::context;
use std::task::{Context, Poll};

/// `Ready` while the current task has budget left; otherwise wakes the task
/// (it is requeued at the back) and returns `Pending`.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    if context::consume_budget() {
        Poll::Ready(())
    } else {
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
