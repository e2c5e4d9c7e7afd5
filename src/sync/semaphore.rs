//! [`Semaphore`], [`BoundedSemaphore`] and [`Lock`], with asyncio's
//! semantics: strict FIFO, no permit lost when a waiter is cancelled.

use super::waitlist::{WaitList, Wakers};
use crate::error::{Error, Result};
use crate::loom::{lock, Mutex};
use crate::runtime::context;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A counter of permits that tasks acquire and release (asyncio's
/// `Semaphore`).
///
/// Waiters are served strictly first come, first served: while anyone
/// waits, a new acquirer queues even if a permit is free. A waiter that is
/// cancelled leaves the queue; one that was already handed a permit and is
/// then cancelled hands it on. Releasing beyond the initial count is
/// allowed (see [`BoundedSemaphore`] for the checked kind).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// spindle::run(async {
///     let sem = Arc::new(spindle::Semaphore::new(2));
///     let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
///     let tasks: Vec<_> = (0..5).map(|_| {
///         let (sem, now, max) = (sem.clone(), now.clone(), max.clone());
///         spindle::spawn(async move {
///             let _permit = sem.acquire().await?;
///             let running = now.fetch_add(1, Ordering::SeqCst) + 1;
///             max.fetch_max(running, Ordering::SeqCst);
///             spindle::sleep(Duration::from_millis(10)).await?;
///             now.fetch_sub(1, Ordering::SeqCst);
///             spindle::Ok(())
///         })
///     }).collect();
///     for t in tasks { t.await?; }
///     assert_eq!(max.load(Ordering::SeqCst), 2);
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct Semaphore {
    state: Mutex<State>,
    /// The most permits there may be (BoundedSemaphore, Lock).
    bound: Option<usize>,
}

struct State {
    permits: usize,
    waiters: WaitList,
}

impl State {
    /// asyncio's `locked()`: no permit, or someone waits for one (including
    /// a waiter handed a permit that has not resumed yet: a task that
    /// releases and acquires again queues behind it).
    fn locked(&self) -> bool {
        self.permits == 0 || !self.waiters.is_vacant()
    }

    /// Takes a permit if one is free and nobody queues.
    fn try_take(&mut self) -> bool {
        if self.locked() {
            return false;
        }
        self.permits -= 1;
        true
    }

    /// Hands free permits to waiters, in order.
    fn grant_waiters(&mut self, wakers: &mut Wakers) {
        while self.permits > 0 {
            match self.waiters.grant_first() {
                Some(waker) => {
                    self.permits -= 1;
                    wakers.push(waker);
                }
                None => break,
            }
        }
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore::with_bound(permits, None)
    }

    fn with_bound(permits: usize, bound: Option<usize>) -> Semaphore {
        Semaphore {
            state: Mutex::new(State {
                permits,
                waiters: WaitList::new(),
            }),
            bound,
        }
    }

    /// A semaphore from a signed count, as asyncio takes it: a negative
    /// count is an invalid-argument error.
    pub fn try_new(permits: i64) -> Result<Semaphore> {
        usize::try_from(permits).map(Semaphore::new).map_err(|_| {
            Error::invalid_argument(format!(
                "Semaphore initial value must be >= 0, got {permits}"
            ))
        })
    }

    /// Whether an `acquire` would wait (no permit free, or others queue).
    pub fn locked(&self) -> bool {
        lock(&self.state).locked()
    }

    /// The permits free right now.
    pub fn available_permits(&self) -> usize {
        lock(&self.state).permits
    }

    /// Waits for a permit. The permit is given back when the returned guard
    /// is dropped (`async with sem:`), or kept with [`Permit::forget`] and
    /// given back later with [`release`](Self::release). A cancellation
    /// point when it has to wait.
    pub fn acquire(&self) -> Acquire<&Semaphore> {
        Acquire {
            semaphore: Some(self),
            key: None,
        }
    }

    /// Like [`acquire`](Self::acquire), with a guard that owns a reference
    /// to the semaphore (for moving into tasks).
    pub fn acquire_owned(self: &Arc<Self>) -> Acquire<Arc<Semaphore>> {
        Acquire {
            semaphore: Some(self.clone()),
            key: None,
        }
    }

    /// Takes a permit if one is free and nobody queues, without waiting.
    ///
    /// ```
    /// let sem = spindle::Semaphore::new(1);
    /// let permit = sem.try_acquire().expect("the one permit is free");
    /// assert!(sem.try_acquire().is_none());
    /// drop(permit);
    /// assert!(sem.try_acquire().is_some());
    /// ```
    pub fn try_acquire(&self) -> Option<Permit<&Semaphore>> {
        // The lock is released before a permit exists: a permit dropped
        // while it is held would deadlock on it.
        let taken = lock(&self.state).try_take();
        taken.then(|| Permit {
            semaphore: Some(self),
        })
    }

    /// Gives a permit back and wakes the first waiter. An error for a
    /// bounded semaphore already at its initial count.
    pub fn release(&self) -> Result<()> {
        let mut state = lock(&self.state);
        if let Some(bound) = self.bound {
            if state.permits >= bound {
                return Err(Error::invalid_state(
                    "BoundedSemaphore released too many times",
                ));
            }
        }
        state.permits += 1;
        if state.waiters.len() == 0 {
            return Ok(());
        }
        let mut wakers = Wakers::default();
        state.grant_waiters(&mut wakers);
        drop(state);
        wakers.wake_all();
        Ok(())
    }

    /// A waiter leaves: a grant it held goes back to the pool and on to the
    /// next waiters.
    fn leave(&self, key: usize) {
        let mut wakers = Wakers::default();
        {
            let mut state = lock(&self.state);
            if state.waiters.remove(key) {
                state.permits += 1;
            }
            state.grant_waiters(&mut wakers);
        }
        wakers.wake_all();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Semaphore")
            .field("permits", &state.permits)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// The future of [`Semaphore::acquire`].
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<S: Deref<Target = Semaphore>> {
    /// `None` once the permit was handed out.
    semaphore: Option<S>,
    key: Option<usize>,
}

impl<S: Deref<Target = Semaphore>> Acquire<S> {
    /// Hands out the permit this future obtained.
    fn permit(&mut self) -> Permit<S> {
        Permit {
            semaphore: self.semaphore.take(),
        }
    }
}

impl<S: Deref<Target = Semaphore> + Unpin> Future for Acquire<S> {
    type Output = Result<Permit<S>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        let Some(semaphore) = this.semaphore.as_ref() else {
            return Poll::Ready(Err(Error::invalid_state("acquire polled after completion")));
        };
        match this.key {
            None => {
                // A free permit is taken without a suspension, so without
                // delivering a pending cancellation (asyncio's `acquire`
                // does not await when the semaphore is not locked).
                let mut state = lock(&semaphore.state);
                if state.try_take() {
                    drop(state);
                    return Poll::Ready(Ok(this.permit()));
                }
                if context::current_cancel_pending() {
                    drop(state);
                    if let Some(cancel) = context::take_current_cancel() {
                        return Poll::Ready(Err(cancel));
                    }
                    // Withdrawn in between: look again.
                    state = lock(&semaphore.state);
                    if state.try_take() {
                        drop(state);
                        return Poll::Ready(Ok(this.permit()));
                    }
                }
                this.key = Some(state.waiters.push(cx.waker()));
                Poll::Pending
            }
            Some(key) => {
                if let Some(cancel) = context::take_current_cancel() {
                    this.key = None;
                    semaphore.leave(key);
                    return Poll::Ready(Err(cancel));
                }
                let mut state = lock(&semaphore.state);
                if state.waiters.is_granted(key) {
                    state.waiters.remove(key);
                    this.key = None;
                    // asyncio: waiters that queued behind this one while
                    // permits were free may go now.
                    let mut wakers = Wakers::default();
                    state.grant_waiters(&mut wakers);
                    drop(state);
                    wakers.wake_all();
                    return Poll::Ready(Ok(this.permit()));
                }
                state.waiters.set_waker(key, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<S: Deref<Target = Semaphore>> Drop for Acquire<S> {
    fn drop(&mut self) {
        if let (Some(semaphore), Some(key)) = (self.semaphore.as_ref(), self.key.take()) {
            semaphore.leave(key);
        }
    }
}

/// A permit of a [`Semaphore`]: given back when dropped.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit<S: Deref<Target = Semaphore>> {
    semaphore: Option<S>,
}

impl<S: Deref<Target = Semaphore>> Permit<S> {
    /// Keeps the permit taken: give it back later with
    /// [`Semaphore::release`] (asyncio's explicit `acquire`/`release`).
    pub fn forget(mut self) {
        self.semaphore = None;
    }
}

impl<S: Deref<Target = Semaphore>> Drop for Permit<S> {
    fn drop(&mut self) {
        if let Some(semaphore) = self.semaphore.take() {
            // Giving back a permit that was taken never exceeds the bound.
            let _ = semaphore.release();
        }
    }
}

impl<S: Deref<Target = Semaphore>> fmt::Debug for Permit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// A semaphore that refuses to be released above its initial count
/// (asyncio's `BoundedSemaphore`).
///
/// ```
/// let sem = spindle::BoundedSemaphore::new(1);
/// assert!(sem.release().is_err());
/// ```
pub struct BoundedSemaphore(Semaphore);

impl BoundedSemaphore {
    /// A bounded semaphore with `permits` permits.
    pub fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore(Semaphore::with_bound(permits, Some(permits)))
    }
}

impl Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.0
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A lock that tasks take in turn, first come first served (asyncio's
/// `Lock`). Not reentrant: a task that holds it and acquires it again waits
/// forever (or until cancelled). Releasing a lock that is not held is an
/// error.
///
/// ```
/// spindle::run(async {
///     let lock = spindle::Lock::new();
///     {
///         let _guard = lock.acquire().await?; // async with lock:
///         assert!(lock.locked());
///     }
///     assert!(!lock.locked());
///     assert!(lock.release().is_err());
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub struct Lock(Semaphore);

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Lock {
        Lock(Semaphore::with_bound(1, Some(1)))
    }

    /// Whether the lock is held.
    pub fn locked(&self) -> bool {
        self.0.available_permits() == 0
    }

    /// Waits for the lock. It is released when the guard drops, or kept
    /// with [`Permit::forget`] and released with [`release`](Self::release).
    pub fn acquire(&self) -> Acquire<&Semaphore> {
        self.0.acquire()
    }

    /// Like [`acquire`](Self::acquire), with a guard that owns a reference
    /// to the lock's semaphore.
    pub fn acquire_owned(self: &Arc<Self>) -> Acquire<ArcLock> {
        Acquire {
            semaphore: Some(ArcLock(self.clone())),
            key: None,
        }
    }

    /// Releases the lock and lets the first waiter take it. An error if the
    /// lock is not held.
    pub fn release(&self) -> Result<()> {
        self.0
            .release()
            .map_err(|_| Error::invalid_state("Lock is not acquired"))
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.locked())
            .finish()
    }
}

/// An owned reference to a [`Lock`], as held by [`Lock::acquire_owned`].
#[derive(Clone)]
pub struct ArcLock(Arc<Lock>);

impl Deref for ArcLock {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.0 .0
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::model::{poll_once, WakeCounter};
    use crate::loom::thread;

    /// A waiter that is handed the permit and dropped (cancelled) at the
    /// same time passes the permit on: the next waiter is woken and gets
    /// it, whichever comes first, and no permit is lost or made up.
    #[test]
    fn a_granted_waiter_dropped_while_the_permit_arrives_hands_it_on() {
        loom::model(|| {
            let sem = Arc::new(Semaphore::new(1));
            let (_, waker) = WakeCounter::new();
            let held = match poll_once(&mut sem.acquire_owned(), &waker) {
                Poll::Ready(Ok(permit)) => permit,
                _ => panic!("the free permit was not taken"),
            };
            let (b_wakes, b_waker) = WakeCounter::new();
            let (c_wakes, c_waker) = WakeCounter::new();
            let mut b = sem.acquire();
            let mut c = sem.acquire();
            assert!(poll_once(&mut b, &b_waker).is_pending());
            assert!(poll_once(&mut c, &c_waker).is_pending());

            let releaser = thread::spawn(move || drop(held));
            drop(b);
            releaser.join().unwrap();

            assert!(b_wakes.wakes() <= 1);
            assert_eq!(c_wakes.wakes(), 1, "the next waiter was not woken");
            match poll_once(&mut c, &c_waker) {
                Poll::Ready(Ok(permit)) => drop(permit),
                _ => panic!("the woken waiter did not get the permit"),
            }
            drop(c);
            assert_eq!(sem.available_permits(), 1, "a permit was lost or made up");
        });
    }

    /// A release racing with a waiter's poll: the waiter either takes the
    /// permit in that poll or is woken, never left waiting with a free
    /// permit.
    #[test]
    fn a_release_racing_with_a_poll_is_never_lost() {
        loom::model(|| {
            let sem = Arc::new(Semaphore::new(0));
            let (wakes, waker) = WakeCounter::new();
            let mut waiter = sem.acquire();
            assert!(poll_once(&mut waiter, &waker).is_pending());

            let releaser = {
                let sem = sem.clone();
                thread::spawn(move || sem.release().unwrap())
            };
            let first = poll_once(&mut waiter, &waker);
            releaser.join().unwrap();

            let permit = match first {
                Poll::Ready(Ok(permit)) => permit,
                Poll::Pending => {
                    assert_eq!(wakes.wakes(), 1, "wakeup lost");
                    match poll_once(&mut waiter, &waker) {
                        Poll::Ready(Ok(permit)) => permit,
                        _ => panic!("woken without the permit"),
                    }
                }
                Poll::Ready(Err(e)) => panic!("{e}"),
            };
            drop(permit);
            drop(waiter);
            assert_eq!(sem.available_permits(), 1);
        });
    }
}
