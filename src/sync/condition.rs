//! [`Condition`]: a condition variable over a [`Lock`] (asyncio's
//! `Condition`).

use super::semaphore::{Acquire, Lock, Semaphore};
use super::waitlist::WaitList;
use crate::error::{Error, Result};
use crate::loom::{lock, Mutex};
use crate::runtime::context;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A condition variable: tasks holding its lock [`wait`](Self::wait) until
/// another task [`notify`](Self::notify)s them (asyncio's `Condition`).
///
/// The lock is a [`Lock`], owned ([`Condition::new`]) or shared with other
/// conditions or code ([`Condition::with_lock`]). As in asyncio:
///
/// - `wait()` and `notify()` need the lock to be held (checked with
///   [`locked`](Self::locked)); otherwise they fail with an invalid-state
///   error.
/// - `wait()` releases the lock, waits to be notified and re-acquires the
///   lock before it returns. A notified waiter therefore resumes only after
///   the notifier releases the lock. A cancelled `wait()` also re-acquires
///   the lock first, then returns the cancellation; a waiter that was
///   notified and is then cancelled passes the notification on to the next
///   waiter, so no wake-up is lost.
/// - `notify(n)` wakes the first `n` waiters, in the order they started
///   waiting; `notify_all()` wakes them all.
///
/// The lock is taken with [`acquire`](Self::acquire), which returns a
/// [`ConditionGuard`] that releases it when dropped (`async with cond:`),
/// or released explicitly with [`release`](Self::release) after
/// [`ConditionGuard::forget`].
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// spindle::run(async {
///     let cond = Arc::new(spindle::Condition::new());
///     let ready = Arc::new(AtomicBool::new(false));
///     let waiter = {
///         let (cond, ready) = (cond.clone(), ready.clone());
///         spindle::spawn(async move {
///             let mut guard = cond.acquire().await?;
///             guard.wait_for(|| ready.load(Ordering::SeqCst)).await?;
///             assert!(cond.locked()); // held again after the wait
///             spindle::Ok("woken")
///         })
///     };
///     spindle::yield_now().await?;
///     {
///         let _guard = cond.acquire().await?;
///         ready.store(true, Ordering::SeqCst);
///         cond.notify(1)?;
///     } // the waiter resumes once the lock is released here
///     assert_eq!(waiter.await?, "woken");
///     assert!(cond.notify(1).is_err(), "notify without the lock");
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct Condition {
    lock: Arc<Lock>,
    waiters: Mutex<WaitList>,
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

fn wake(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

impl Condition {
    /// A condition with a lock of its own.
    pub fn new() -> Condition {
        Condition::with_lock(Arc::new(Lock::new()))
    }

    /// A condition over `lock`, which may be shared with other conditions
    /// (asyncio's `Condition(lock)`).
    pub fn with_lock(lock: Arc<Lock>) -> Condition {
        Condition {
            lock,
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// The underlying lock.
    pub fn lock(&self) -> &Arc<Lock> {
        &self.lock
    }

    /// Whether the underlying lock is held (by anyone).
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Waits for the underlying lock; the guard releases it when dropped.
    /// A cancellation point when it has to wait.
    pub fn acquire(&self) -> ConditionAcquire<'_> {
        ConditionAcquire {
            condition: self,
            acquire: self.lock.acquire(),
        }
    }

    /// Releases the underlying lock (after an explicit
    /// [`ConditionGuard::forget`]). An error if it is not held.
    pub fn release(&self) -> Result<()> {
        self.lock.release()
    }

    /// Releases the lock, waits until notified, and re-acquires the lock
    /// before returning, also when cancelled (the cancellation is returned
    /// once the lock is held again). An invalid-state error if the lock is
    /// not held. Like asyncio's, a wait may end without a matching notify
    /// (e.g. a notification passed on by a cancelled waiter): re-check the
    /// condition, or use [`wait_for`](Self::wait_for).
    ///
    /// Dropping the future before it completes (rather than cancelling the
    /// task) leaves the lock released; [`ConditionGuard::wait`] records this
    /// in its guard, so prefer it when the lock is held through a guard.
    pub fn wait(&self) -> ConditionWait<'_> {
        ConditionWait::new(self, None)
    }

    /// Waits until `predicate` returns true: checks it first (with no need
    /// for the lock if it already holds), then [`wait`](Self::wait)s and
    /// checks again after every wake-up. The predicate is called with the
    /// lock held.
    pub async fn wait_for<F: FnMut() -> bool>(&self, mut predicate: F) -> Result<()> {
        while !predicate() {
            self.wait().await?;
        }
        Ok(())
    }

    /// Wakes the first `n` waiters (fewer if fewer wait). They resume once
    /// they re-acquire the lock, i.e. after the caller releases it. An
    /// invalid-state error if the lock is not held.
    pub fn notify(&self, n: usize) -> Result<()> {
        if !self.locked() {
            return Err(Error::invalid_state("cannot notify on un-acquired lock"));
        }
        self.notify_waiters(n);
        Ok(())
    }

    /// Wakes every waiter. An invalid-state error if the lock is not held.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(usize::MAX)
    }

    fn notify_waiters(&self, n: usize) {
        let wakers: Vec<Waker> = {
            let mut waiters = lock(&self.waiters);
            (0..n).map_while(|_| waiters.grant_first()).collect()
        };
        wake(wakers);
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiters = lock(&self.waiters).len();
        f.debug_struct("Condition")
            .field("locked", &self.locked())
            .field("waiters", &waiters)
            .finish()
    }
}

/// The future of [`Condition::acquire`].
#[must_use = "futures do nothing unless awaited"]
pub struct ConditionAcquire<'a> {
    condition: &'a Condition,
    acquire: Acquire<&'a Semaphore>,
}

impl<'a> Future for ConditionAcquire<'a> {
    type Output = Result<ConditionGuard<'a>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let permit = std::task::ready!(Pin::new(&mut this.acquire).poll(cx))?;
        permit.forget();
        Poll::Ready(Ok(ConditionGuard {
            condition: this.condition,
            held: true,
        }))
    }
}

impl fmt::Debug for ConditionAcquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionAcquire").finish_non_exhaustive()
    }
}

/// The lock of a [`Condition`], held: released when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    condition: &'a Condition,
    /// Whether this guard holds the lock (false after a `wait` was dropped
    /// half-way, with the lock released).
    held: bool,
}

impl<'a> ConditionGuard<'a> {
    /// The condition.
    pub fn condition(&self) -> &'a Condition {
        self.condition
    }

    /// [`Condition::wait`] for the holder of this guard. If the returned
    /// future is dropped before it completes, the guard knows the lock is no
    /// longer held and will not release it; a later `wait` through it is then
    /// an invalid-state error.
    pub fn wait(&mut self) -> ConditionWait<'_> {
        ConditionWait::new(self.condition, Some(&mut self.held))
    }

    /// [`Condition::wait_for`] for the holder of this guard.
    pub async fn wait_for<F: FnMut() -> bool>(&mut self, mut predicate: F) -> Result<()> {
        while !predicate() {
            self.wait().await?;
        }
        Ok(())
    }

    /// Keeps the lock held without the guard: release it later with
    /// [`Condition::release`].
    pub fn forget(mut self) {
        self.held = false;
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            // The guard holds the lock, so releasing cannot fail.
            let _ = self.condition.lock.release();
        }
    }
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard")
            .field("held", &self.held)
            .finish()
    }
}

enum Phase<'a> {
    Start,
    /// In the condition's wait list.
    Waiting(usize),
    /// Re-acquiring the lock.
    Reacquire(Acquire<&'a Semaphore>),
    Done,
}

/// The future of [`Condition::wait`] and [`ConditionGuard::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct ConditionWait<'a> {
    condition: &'a Condition,
    phase: Phase<'a>,
    /// Whether a notification was consumed (to pass on if the wait ends
    /// cancelled).
    notified: bool,
    /// The cancellation to return once the lock is held again.
    error: Option<Error>,
    /// The guard's flag, for a wait through a guard.
    held: Option<&'a mut bool>,
}

impl<'a> ConditionWait<'a> {
    fn new(condition: &'a Condition, held: Option<&'a mut bool>) -> ConditionWait<'a> {
        ConditionWait {
            condition,
            phase: Phase::Start,
            notified: false,
            error: None,
            held,
        }
    }

    fn set_held(&mut self, value: bool) {
        if let Some(held) = self.held.as_deref_mut() {
            *held = value;
        }
    }

    /// Leaves the wait list and starts re-acquiring the lock, to return
    /// `error` (if any) once it is held.
    fn reacquire(&mut self, key: Option<usize>, error: Option<Error>) {
        if let Some(key) = key {
            if lock(&self.condition.waiters).remove(key) {
                self.notified = true;
            }
        }
        if error.is_some() {
            self.error = error;
        }
        self.phase = Phase::Reacquire(self.condition.lock.acquire());
    }
}

impl Future for ConditionWait<'_> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        loop {
            match &mut this.phase {
                Phase::Start => {
                    let holds = match this.held.as_deref() {
                        Some(held) => *held,
                        None => this.condition.locked(),
                    };
                    if !holds {
                        this.phase = Phase::Done;
                        return Poll::Ready(Err(Error::invalid_state(
                            "cannot wait on un-acquired lock",
                        )));
                    }
                    // Join the wait list before releasing the lock, so that
                    // a notify made by the next holder reaches this waiter.
                    let key = lock(&this.condition.waiters).push(cx.waker());
                    if let Err(err) = this.condition.lock.release() {
                        if lock(&this.condition.waiters).remove(key) {
                            this.condition.notify_waiters(1);
                        }
                        this.phase = Phase::Done;
                        return Poll::Ready(Err(err));
                    }
                    this.set_held(false);
                    this.phase = Phase::Waiting(key);
                    if let Some(cancel) = context::take_current_cancel() {
                        // asyncio: the lock was released; take it back, then
                        // return the cancellation.
                        this.reacquire(Some(key), Some(cancel));
                        continue;
                    }
                    return Poll::Pending;
                }
                Phase::Waiting(key) => {
                    let key = *key;
                    if let Some(cancel) = context::take_current_cancel() {
                        this.reacquire(Some(key), Some(cancel));
                        continue;
                    }
                    let mut waiters = lock(&this.condition.waiters);
                    if waiters.is_granted(key) {
                        drop(waiters);
                        this.reacquire(Some(key), None);
                        continue;
                    }
                    waiters.set_waker(key, cx.waker());
                    return Poll::Pending;
                }
                Phase::Reacquire(acquire) => match Pin::new(acquire).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(permit)) => {
                        permit.forget();
                        this.set_held(true);
                        this.phase = Phase::Done;
                        return Poll::Ready(match this.error.take() {
                            None => Ok(()),
                            Some(err) => {
                                if this.notified {
                                    // The notification this waiter consumed
                                    // goes to the next one.
                                    this.condition.notify_waiters(1);
                                }
                                Err(err)
                            }
                        });
                    }
                    // Cancelled while re-acquiring: asyncio keeps trying and
                    // returns the latest cancellation once the lock is held.
                    Poll::Ready(Err(err)) if err.is_cancelled() => {
                        this.reacquire(None, Some(err));
                    }
                    Poll::Ready(Err(err)) => {
                        this.phase = Phase::Done;
                        return Poll::Ready(Err(err));
                    }
                },
                Phase::Done => {
                    return Poll::Ready(Err(Error::invalid_state("wait polled after completion")))
                }
            }
        }
    }
}

impl Drop for ConditionWait<'_> {
    fn drop(&mut self) {
        // The lock is not held (the guard's flag already says so); a
        // notification consumed but not used goes to the next waiter.
        let handed_on = match self.phase {
            Phase::Waiting(key) => lock(&self.condition.waiters).remove(key),
            Phase::Reacquire(_) => self.notified,
            Phase::Start | Phase::Done => false,
        };
        if handed_on {
            self.condition.notify_waiters(1);
        }
    }
}

impl fmt::Debug for ConditionWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionWait").finish_non_exhaustive()
    }
}
