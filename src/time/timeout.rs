//! Timeout scopes (asyncio's `timeout` / `timeout_at`) and [`wait_for`].
//!
//! A scope works like asyncio's: when its deadline passes it *cancels the
//! task* it runs in and remembers that it did; when the block it guards ends
//! with the cancellation, the scope withdraws its own request
//! (`uncancel`) and, if no other cancel request is left beyond those that
//! were there at entry, turns the cancellation into a timeout error. So
//! only the scope whose own deadline fired converts the cancellation; a
//! cancel from outside passes through untouched, and nested scopes behave
//! as in asyncio (spec cases 63-70).
//!
//! A deadline can only take effect between the block's steps, so a scope
//! whose deadline is ahead at entry registers its timer when the block
//! first suspends: a block that finishes without suspending (an operation
//! that was ready) never touches a timer wheel, and one that overruns its
//! deadline without suspending finishes unexpired, as in asyncio.

use super::TimerEntry;
use crate::error::{Error, Result};
use crate::loom::{lock, AtomicBool, Guard, Mutex};
use crate::runtime::context;
use crate::task::recycle::{Recycled, RecycledWake};
use crate::task::AnyTask;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::PoisonError;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A timeout scope: a deadline that, when it passes, cancels the block the
/// scope guards and turns the cancellation into a timeout error (asyncio's
/// `asyncio.timeout` / `asyncio.timeout_at` context managers).
///
/// Clones refer to the same scope, so the block can reschedule it:
///
/// ```
/// use std::time::{Duration, Instant};
/// use spindle::time::Timeout;
/// spindle::run(async {
///     let scope = Timeout::after(Duration::from_millis(10));
///     let inner = scope.clone();
///     let result = scope.run(async move {
///         // More time is needed: move the deadline.
///         inner.reschedule(Some(Instant::now() + Duration::from_secs(10)))?;
///         spindle::sleep(Duration::from_millis(30)).await?;
///         spindle::Ok("finished")
///     }).await;
///     assert_eq!(result?, "finished");
///     assert!(!scope.expired());
///     spindle::Ok(())
/// }).unwrap();
/// ```
#[derive(Clone)]
pub struct Timeout {
    shared: Recycled<ScopeCell>,
}

/// A scope's state, shared by its handles and its armed timer: the waker
/// stored in the timer wheel is this block itself (one allocation per
/// scope, not one per arming, and from the worker's recycled blocks).
///
/// `due` lives beside the lock so that the block's poll can see, without
/// the lock, that there is nothing to expire (every time the block
/// suspends). It is written only under the lock, and only the block's own
/// task leaves it `true` when it unlocks (at entry, or rescheduling from
/// inside the block); a critical section on any other thread that sets it
/// clears it before unlocking (`Locked::expire_if_due`). The poll's load
/// is `Relaxed`: a `true` stored by the block's task happens before its
/// next poll (program order, and the scheduler's hand-over of the task
/// between polls), so coherence makes the load see it or a later store; a
/// stale `true` only sends the poll to the lock, under which `due` is
/// read again.
struct ScopeCell {
    scope: Mutex<Scope>,
    /// The deadline had already passed when it was set: the scope expires
    /// when the block next suspends (asyncio schedules `_on_timeout` with
    /// `call_soon`), unless it is rescheduled before that.
    due: AtomicBool,
}

impl ScopeCell {
    #[inline]
    fn lock(this: &Recycled<ScopeCell>) -> Locked<'_> {
        Locked {
            cell: this,
            scope: lock(&this.scope),
        }
    }
}

/// A scope under its lock, with the cell it lives in.
struct Locked<'a> {
    cell: &'a Recycled<ScopeCell>,
    scope: Guard<'a, Scope>,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Scope;

    fn deref(&self) -> &Scope {
        &self.scope
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Scope {
        &mut self.scope
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Created,
    Entered,
    Expiring,
    Expired,
    Exited,
}

struct Scope {
    phase: Phase,
    when: Option<Instant>,
    /// The task the scope was entered in.
    task: Option<AnyTask>,
    /// `task.cancelling()` at entry.
    cancelling_at_entry: u32,
    /// The armed timer.
    timer: Option<TimerEntry>,
    /// Entered and not armed yet: the timer is registered when the block
    /// first suspends (see [`Scope::mark_entered`]).
    arm_at_suspension: bool,
    /// `when` may be in the past when the timer is armed (set by the user,
    /// not computed as now plus a positive delay); otherwise the clock is
    /// not read again at arming (a deadline passed by then is refused by
    /// the wheel, with the same outcome).
    may_have_passed: bool,
}

/// The scope's timer fired. It may be the timer of an earlier deadline,
/// fired while `reschedule` moved the deadline (the wheel wakes outside its
/// lock), so the deadline decides: passed, the scope expires; still ahead,
/// the scope makes sure a timer is armed for it (the wheel rounds deadlines
/// up to its next tick, so the scope's own timer never fires early).
impl RecycledWake for ScopeCell {
    fn wake(this: &Recycled<ScopeCell>) {
        let mut scope = ScopeCell::lock(this);
        if scope.phase != Phase::Entered {
            return;
        }
        match scope.when {
            Some(when) if when <= Instant::now() => {
                // Give the fired entry back to its wheel, then expire.
                scope.disarm();
                scope.expire();
            }
            Some(_) => {
                scope.arm();
                // A deadline the wheel calls passed by now expires at once
                // (the block is suspended: `due` would wait for its next
                // poll).
                scope.expire_if_due();
            }
            None => scope.disarm(),
        }
    }
}

impl Scope {
    /// Entered in `task`. A deadline can only take effect once the block
    /// suspends (asyncio's timer callback runs between task steps), so its
    /// timer is registered then, and a block that finishes without
    /// suspending (an operation already ready) never touches a wheel. (A
    /// deadline already passed at entry is the caller's to find.)
    fn mark_entered(&mut self, task: AnyTask) {
        self.cancelling_at_entry = task.cancelling();
        self.task = Some(task);
        self.phase = Phase::Entered;
        self.arm_at_suspension = true;
    }
}

impl Locked<'_> {
    /// asyncio's `_on_timeout`: cancel the task, mark the scope expiring.
    fn expire(&mut self) {
        if self.phase == Phase::Entered {
            self.phase = Phase::Expiring;
            if let Some(task) = &self.task {
                task.cancel();
            }
        }
    }

    fn set_due(&self, due: bool) {
        self.cell.due.store(due, Relaxed);
    }

    fn disarm(&mut self) {
        self.arm_at_suspension = false;
        self.set_due(false);
        // Dropping the entry removes the timer from its wheel.
        self.timer = None;
    }

    /// The block suspended, or the deadline was moved into the past from
    /// outside the block: a deadline found already passed takes effect now.
    fn expire_if_due(&mut self) {
        if self.cell.due.load(Relaxed) {
            self.set_due(false);
            self.expire();
        }
    }

    /// Whether the deadline may have been set in the past and has passed
    /// (the clock is read only then; see `Scope::may_have_passed`).
    fn passed_already(&self) -> bool {
        self.may_have_passed && self.when.is_some_and(|when| when <= Instant::now())
    }

    /// Whether the block runs on this thread now: the scope is entered and
    /// the task being polled here is the one it guards.
    fn block_runs_here(&self) -> bool {
        self.task.as_ref().map(|task| task.raw) == context::current_task_raw()
    }

    /// Arms the timer for `self.when` (the scope is entered), on the wheel
    /// of this thread's worker if it is one of the scope's runtime, else on
    /// that runtime's wheel for outside timers. A deadline already passed
    /// leaves the scope `due` instead.
    fn arm(&mut self) {
        self.disarm();
        if self.passed_already() {
            self.set_due(true);
            return;
        }
        let (Some(when), Some(task)) = (self.when, &self.task) else {
            return;
        };
        let runtime = &task.raw.header().shared;
        let timers = &runtime.timers;
        let tick = timers.tick_of(when);
        let wheel = context::worker_index_in(runtime).unwrap_or_else(|| timers.outside_wheel());
        match timers.register(wheel, tick, Recycled::waker(self.cell)) {
            Some(entry) => {
                runtime.timer_added(tick);
                self.timer = Some(entry);
            }
            // Passed by now: the wheel refuses it.
            None => self.set_due(true),
        }
    }
}

impl Timeout {
    /// A scope with deadline `when` (`None`: no deadline), like
    /// `asyncio.timeout_at(when)`.
    pub fn at(when: Option<Instant>) -> Timeout {
        Timeout::with_deadline(when, true)
    }

    fn with_deadline(when: Option<Instant>, may_have_passed: bool) -> Timeout {
        let timeout = Timeout {
            shared: Recycled::new(ScopeCell {
                scope: Mutex::new(Scope {
                    phase: Phase::Created,
                    when,
                    task: None,
                    cancelling_at_entry: 0,
                    timer: None,
                    arm_at_suspension: false,
                    may_have_passed,
                }),
                due: AtomicBool::new(false),
            }),
        };
        // Read without the lock on purpose (see `ScopeCell`): not a race
        // for helgrind to report.
        #[cfg(spindle_helgrind)]
        crate::valgrind::atomic_only(&timeout.shared.due);
        timeout
    }

    /// A scope whose deadline is `delay` from now, like
    /// `asyncio.timeout(delay)`. A delay too large for the clock means no
    /// deadline.
    pub fn after(delay: Duration) -> Timeout {
        Timeout::with_deadline(Instant::now().checked_add(delay), delay.is_zero())
    }

    /// The deadline, `None` if there is none.
    pub fn when(&self) -> Option<Instant> {
        lock(&self.shared.scope).when
    }

    /// Whether the deadline passed and the scope cancelled its block.
    pub fn expired(&self) -> bool {
        matches!(
            lock(&self.shared.scope).phase,
            Phase::Expiring | Phase::Expired
        )
    }

    /// Moves the deadline (asyncio's `reschedule`): later lets the block run
    /// longer, earlier fires as soon as possible, `None` disables it. A
    /// deadline already passed expires the scope at the block's next
    /// suspension when the block itself moves it, and at once when anything
    /// else does (another task, a thread outside the runtime). An
    /// invalid-state error before the scope is entered, after it exited, or
    /// once it expired.
    pub fn reschedule(&self, when: Option<Instant>) -> Result<()> {
        self.move_deadline(when, false)
    }

    /// [`reschedule`](Self::reschedule) for a scope entered from C, whose
    /// block is C code between `spindle_timeout_begin` and `_end`: its
    /// suspensions are its blocking calls, which the scope does not see, so
    /// a deadline already passed expires the scope at once, whoever moves
    /// it (the C code sees the cancellation at its next blocking call).
    pub(crate) fn reschedule_from_c(&self, when: Option<Instant>) -> Result<()> {
        self.move_deadline(when, true)
    }

    /// Moves the deadline; a passed one expires the scope at once if
    /// `expire_now` or if the block is not what runs here.
    fn move_deadline(&self, when: Option<Instant>, expire_now: bool) -> Result<()> {
        let mut scope = ScopeCell::lock(&self.shared);
        match scope.phase {
            Phase::Entered => {}
            Phase::Created => return Err(Error::invalid_state("the timeout has not been entered")),
            phase => {
                return Err(Error::invalid_state(format!(
                    "cannot reschedule a timeout that is {}",
                    match phase {
                        Phase::Expiring | Phase::Expired => "expired",
                        _ => "finished",
                    }
                )))
            }
        }
        scope.when = when;
        scope.may_have_passed = true;
        scope.arm();
        // asyncio schedules the expiry of a passed deadline with
        // `call_soon`: it comes after the step that moved it. Moved by the
        // block itself, that is the block's next suspension (`due`); moved
        // from anywhere else, the block is suspended (or runs on another
        // worker, and sees the cancellation at its next await): now.
        if expire_now || !scope.block_runs_here() {
            scope.expire_if_due();
        }
        Ok(())
    }

    /// Runs `future` under this scope (asyncio's `async with timeout:`).
    /// A scope can be entered once; the future must be awaited in a task.
    pub fn run<F: IntoFuture>(&self, future: F) -> TimeoutFuture<F::IntoFuture> {
        self.clone().into_run(future)
    }

    /// [`run`](Self::run) for a scope nobody else holds (`timeout`,
    /// `timeout_at`): moved in, not cloned (two reference-count updates).
    fn into_run<F: IntoFuture>(self, future: F) -> TimeoutFuture<F::IntoFuture> {
        TimeoutFuture {
            scope: self,
            stage: Stage::NotEntered,
            expire_at_entry: false,
            future: future.into_future(),
        }
    }
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = lock(&self.shared.scope);
        f.debug_struct("Timeout")
            .field("when", &scope.when)
            .field("phase", &scope.phase)
            .finish()
    }
}

/// Runs `future` with a time limit of `delay`, like `async with
/// asyncio.timeout(delay):`. On expiry the future sees a cancellation at its
/// current await point, may clean up (and await), and the result is a
/// timeout error ([`Error::is_timeout`]).
///
/// ```
/// use std::time::Duration;
/// spindle::run(async {
///     let slow = spindle::sleep(Duration::from_secs(5));
///     let err = spindle::timeout(Duration::from_millis(20), slow).await.unwrap_err();
///     assert!(err.is_timeout());
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn timeout<F: IntoFuture>(delay: Duration, future: F) -> TimeoutFuture<F::IntoFuture> {
    Timeout::after(delay).into_run(future)
}

/// Runs `future` with the deadline `when` (`None`: no deadline), like
/// `asyncio.timeout_at(when)`.
pub fn timeout_at<F: IntoFuture>(when: Option<Instant>, future: F) -> TimeoutFuture<F::IntoFuture> {
    Timeout::at(when).into_run(future)
}

/// Waits for `future` with a time limit, like `asyncio.wait_for` (3.12+):
/// on expiry the future is cancelled, its cleanup is awaited, then a
/// timeout error is returned; if it swallows the cancellation and returns a
/// value, that value is returned; if its cleanup fails with another error,
/// that error is returned. `None` means no limit. With a zero limit, a
/// [`Task`](crate::Task) that is already done gives its outcome and one that
/// is not is cancelled, awaited, and a timeout error is returned.
///
/// ```
/// use std::time::Duration;
/// spindle::run(async {
///     let task = spindle::spawn(async {
///         spindle::sleep(Duration::from_secs(10)).await?;
///         spindle::Ok(())
///     });
///     let err = spindle::wait_for(Some(Duration::from_millis(20)), task).await.unwrap_err();
///     assert!(err.is_timeout());
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn wait_for<F: IntoFuture>(limit: Option<Duration>, future: F) -> WaitFor<F::IntoFuture> {
    let mut waiting = match limit {
        Some(limit) => timeout(limit, future),
        None => timeout_at(None, future),
    };
    // asyncio's wait_for cancels at once when the limit is <= 0, where a
    // timeout scope would let the block run until it suspends.
    waiting.expire_at_entry = true;
    waiting
}

/// The future of [`wait_for`].
pub type WaitFor<F> = TimeoutFuture<F>;

/// The future of [`Timeout::run`], [`timeout`] and [`timeout_at`].
#[must_use = "futures do nothing unless awaited"]
pub struct TimeoutFuture<F> {
    scope: Timeout,
    stage: Stage,
    /// A deadline already passed at entry expires the scope before the
    /// guarded future is first polled (wait_for's rule).
    expire_at_entry: bool,
    future: F,
}

/// How far a [`TimeoutFuture`] is through its scope.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    NotEntered,
    /// Entered; the block has not suspended yet.
    Entered,
    /// The block has suspended at least once (the scope is armed).
    Suspended,
    /// Exited with the block's outcome: nothing is left to undo at drop.
    Exited,
}

impl<F> TimeoutFuture<F> {
    /// The scope, to query or reschedule it.
    pub fn scope(&self) -> &Timeout {
        &self.scope
    }

    fn enter(&mut self) -> Result<()> {
        let task = crate::task::current_task()?
            .ok_or_else(|| Error::runtime("a timeout scope must run inside a task"))?;
        // A scope nobody else holds (made by `timeout` and not cloned since)
        // is entered without its lock when its deadline cannot have passed
        // yet: nothing else can look at it meanwhile.
        if let Some(cell) = Recycled::get_mut(&mut self.scope.shared) {
            let scope = cell.scope.get_mut().unwrap_or_else(PoisonError::into_inner);
            if scope.phase == Phase::Created && !scope.may_have_passed {
                scope.mark_entered(task);
                self.stage = Stage::Entered;
                return Ok(());
            }
        }
        let mut scope = ScopeCell::lock(&self.scope.shared);
        if scope.phase != Phase::Created {
            return Err(Error::invalid_state(
                "a timeout scope can be entered only once",
            ));
        }
        scope.mark_entered(task);
        self.stage = Stage::Entered;
        // Possibly passed already: that must be known now (wait_for expires
        // before the first poll; a timeout scope at the block's first
        // suspension).
        if scope.passed_already() {
            scope.arm_at_suspension = false;
            scope.set_due(true);
            if self.expire_at_entry {
                scope.expire_if_due();
            }
        }
        Ok(())
    }

    /// The block suspended for the first time: the timer of a deadline
    /// still ahead at entry is armed now (one the wheel has seen pass
    /// meanwhile is refused and leaves the scope due), and a deadline found
    /// already passed takes effect.
    fn first_suspension(&mut self) {
        self.stage = Stage::Suspended;
        let mut scope = ScopeCell::lock(&self.scope.shared);
        if scope.arm_at_suspension {
            scope.arm();
        }
        scope.expire_if_due();
    }

    /// asyncio's `__aexit__`.
    fn exit<T>(&mut self, outcome: Result<T>) -> Result<T> {
        self.stage = Stage::Exited;
        let mut scope = ScopeCell::lock(&self.scope.shared);
        scope.disarm();
        match scope.phase {
            Phase::Expiring => {
                scope.phase = Phase::Expired;
                let task = scope.task.take();
                let remaining = task.as_ref().map_or(0, AnyTask::uncancel);
                match outcome {
                    Err(e) if e.is_cancelled() && remaining <= scope.cancelling_at_entry => {
                        Err(Error::timeout())
                    }
                    other => other,
                }
            }
            _ => {
                scope.phase = Phase::Exited;
                scope.task = None;
                outcome
            }
        }
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: Into<Error>,
{
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self`; the other fields are not pinned and are only accessed
        // through `&mut`, which never moves `future`.
        let this = unsafe { self.get_unchecked_mut() };
        if this.stage == Stage::NotEntered {
            if let Err(e) = this.enter() {
                return Poll::Ready(Err(e));
            }
        }
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        match future.poll(cx) {
            Poll::Pending => {
                if this.stage == Stage::Entered {
                    this.first_suspension();
                } else if this.scope.shared.due.load(Relaxed) {
                    // Read without the lock: see `ScopeCell`.
                    ScopeCell::lock(&this.scope.shared).expire_if_due();
                }
                Poll::Pending
            }
            Poll::Ready(outcome) => Poll::Ready(this.exit(outcome.map_err(Into::into))),
        }
    }
}

impl<F> Drop for TimeoutFuture<F> {
    fn drop(&mut self) {
        if matches!(self.stage, Stage::Entered | Stage::Suspended) {
            let mut scope = ScopeCell::lock(&self.scope.shared);
            if matches!(scope.phase, Phase::Entered | Phase::Expiring) {
                scope.disarm();
                scope.phase = Phase::Exited;
                scope.task = None;
            }
        }
    }
}
