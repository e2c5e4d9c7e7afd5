//! Synchronization primitives from C (asyncio's): semaphores, locks,
//! events, conditions and barriers, as library-allocated handles.
//!
//! The blocking calls (`acquire`, `wait`) are made from C tasks and are
//! cancellation points; the others (`release`, `set`, `notify`, ...) may be
//! made from any thread. A handle counts the calls blocked on it, so that
//! freeing it meanwhile is refused with `SPINDLE_EBUSY` instead of leaving
//! them on freed memory.

use super::task::blocking_status;
use super::{block_on, boundary, code_of, write_out, SPINDLE_EBUSY, SPINDLE_EINVAL};
use super::{SPINDLE_ESHUTDOWN, SPINDLE_OK};
use crate::error::Error;
use crate::sync::{
    Barrier, BoundedSemaphore, BrokenBarrierError, Condition, Event, Lock, Semaphore,
};
use std::ffi::c_int;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The calls blocked on a handle.
#[derive(Default)]
pub(crate) struct Users(AtomicUsize);

/// One call blocked on a handle; leaves when dropped (also when a doomed
/// fiber unwinds through it).
struct Using<'a>(&'a AtomicUsize);

impl Drop for Using<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Users {
    /// Runs `future` from the current C task (as [`block_on`]), counted as
    /// a user of the handle meanwhile.
    pub(crate) fn block_on<F: Future + Send>(&self, future: F) -> Result<F::Output, c_int> {
        self.0.fetch_add(1, Ordering::AcqRel);
        let _using = Using(&self.0);
        block_on(future)
    }

    /// Whether a call is blocked on the handle.
    pub(crate) fn busy(&self) -> bool {
        self.0.load(Ordering::Acquire) != 0
    }
}

/// A handle whose blocking calls are counted.
pub(crate) trait Counted {
    /// The handle's count of blocked calls.
    fn users(&self) -> &Users;
}

/// Stores a new handle holding `value` in `*out`.
///
/// # Safety
/// `out` is NULL (`SPINDLE_EINVAL`) or valid for writes.
pub(crate) unsafe fn new_handle<T>(out: *mut *mut T, value: T) -> c_int {
    if out.is_null() {
        return SPINDLE_EINVAL;
    }
    // SAFETY: non-null and valid for writes per the caller.
    unsafe { out.write(Box::into_raw(Box::new(value))) };
    SPINDLE_OK
}

/// Frees a handle made by [`new_handle`], unless a call is blocked on it
/// (`SPINDLE_EBUSY`, nothing freed).
///
/// # Safety
/// `handle` is NULL or a live handle made by [`new_handle`], not used after
/// a successful free.
pub(crate) unsafe fn free_handle<T: Counted>(handle: *mut T) -> c_int {
    // SAFETY: NULL or live per the caller.
    match unsafe { handle.as_ref() } {
        None => SPINDLE_EINVAL,
        Some(h) if h.users().busy() => SPINDLE_EBUSY,
        Some(_) => {
            // SAFETY: made by `new_handle` (`Box::into_raw`), freed once.
            drop(unsafe { Box::from_raw(handle) });
            SPINDLE_OK
        }
    }
}

/// Stores `value` (0 or 1) in `*out`; `SPINDLE_EINVAL` if `out` is NULL.
///
/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn write_flag(out: *mut c_int, value: bool) -> c_int {
    if out.is_null() {
        return SPINDLE_EINVAL;
    }
    // SAFETY: non-null and valid for writes per the caller.
    unsafe { out.write(c_int::from(value)) };
    SPINDLE_OK
}

/// A permit count from C: negative is asyncio's `ValueError`.
fn permits(value: i64) -> Result<usize, c_int> {
    usize::try_from(value).map_err(|_| SPINDLE_EINVAL)
}

// -- semaphores ---------------------------------------------------------------

/// A semaphore (asyncio's `Semaphore` or `BoundedSemaphore`).
pub struct spindle_sem {
    sem: SemKind,
    users: Users,
}

enum SemKind {
    Plain(Semaphore),
    Bounded(BoundedSemaphore),
}

impl spindle_sem {
    fn sem(&self) -> &Semaphore {
        match &self.sem {
            SemKind::Plain(sem) => sem,
            SemKind::Bounded(sem) => sem,
        }
    }
}

impl Counted for spindle_sem {
    fn users(&self) -> &Users {
        &self.users
    }
}

/// Creates a semaphore with `value` permits (asyncio's `Semaphore(value)`).
/// Releasing beyond `value` is allowed. `SPINDLE_EINVAL` if `value` is
/// negative. Free it with `spindle_sem_free`.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_sem_new(value: i64, out: *mut *mut spindle_sem) -> c_int {
    boundary(|| {
        let permits = match permits(value) {
            Ok(permits) => permits,
            Err(code) => return code,
        };
        let sem = spindle_sem {
            sem: SemKind::Plain(Semaphore::new(permits)),
            users: Users::default(),
        };
        // SAFETY: per the contract.
        unsafe { new_handle(out, sem) }
    })
}

/// Creates a bounded semaphore with `value` permits (asyncio's
/// `BoundedSemaphore(value)`): `spindle_sem_release` beyond `value` fails
/// with `SPINDLE_ESTATE`. `SPINDLE_EINVAL` if `value` is negative.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_bounded_sem_new(value: i64, out: *mut *mut spindle_sem) -> c_int {
    boundary(|| {
        let permits = match permits(value) {
            Ok(permits) => permits,
            Err(code) => return code,
        };
        let sem = spindle_sem {
            sem: SemKind::Bounded(BoundedSemaphore::new(permits)),
            users: Users::default(),
        };
        // SAFETY: per the contract.
        unsafe { new_handle(out, sem) }
    })
}

/// Takes a permit, waiting while there is none (asyncio's `await
/// sem.acquire()`); give it back with `spindle_sem_release`. Waiters are
/// served first come, first served. A cancellation point:
/// `SPINDLE_ECANCELED` with no permit taken (none is lost either).
///
/// # Safety
/// `sem` is NULL or a live semaphore.
#[no_mangle]
pub unsafe extern "C" fn spindle_sem_acquire(sem: *mut spindle_sem) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(sem) = (unsafe { sem.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        match sem.users.block_on(sem.sem().acquire()) {
            Ok(Ok(permit)) => {
                // Kept until `spindle_sem_release`.
                permit.forget();
                SPINDLE_OK
            }
            Ok(Err(e)) => blocking_status(Err(e)),
            Err(code) => code,
        }
    })
}

/// Takes a permit if one is free and nobody waits for one, without
/// waiting: `*acquired` is 1 if it did, else 0. Not a cancellation point;
/// callable from any thread.
///
/// # Safety
/// `sem` is NULL or a live semaphore; `acquired` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_sem_try_acquire(
    sem: *mut spindle_sem,
    acquired: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(sem) = (unsafe { sem.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        if acquired.is_null() {
            return SPINDLE_EINVAL;
        }
        let taken = sem
            .sem()
            .try_acquire()
            .map(|permit| permit.forget())
            .is_some();
        // SAFETY: checked non-null; valid for writes per the contract.
        unsafe { write_flag(acquired, taken) }
    })
}

/// Gives a permit back and wakes the first waiter (asyncio's
/// `sem.release()`). `SPINDLE_ESTATE` for a bounded semaphore already at
/// its initial count. Callable from any thread.
///
/// # Safety
/// `sem` is NULL or a live semaphore.
#[no_mangle]
pub unsafe extern "C" fn spindle_sem_release(sem: *mut spindle_sem) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { sem.as_ref() } {
            Some(sem) => super::status(sem.sem().release()),
            None => SPINDLE_EINVAL,
        }
    })
}

/// Stores 1 in `*locked` if `spindle_sem_acquire` would wait (no permit
/// free, or tasks wait for one), else 0 (asyncio's `sem.locked()`).
///
/// # Safety
/// `sem` is NULL or a live semaphore; `locked` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_sem_locked(sem: *const spindle_sem, locked: *mut c_int) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { sem.as_ref() } {
            // SAFETY: valid for writes per the contract.
            Some(sem) => unsafe { write_flag(locked, sem.sem().locked()) },
            None => SPINDLE_EINVAL,
        }
    })
}

/// Stores the number of free permits in `*value`.
///
/// # Safety
/// `sem` is NULL or a live semaphore; `value` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_sem_value(sem: *const spindle_sem, value: *mut usize) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { sem.as_ref() } {
            Some(sem) if !value.is_null() => {
                // SAFETY: checked non-null; valid for writes per the contract.
                unsafe { value.write(sem.sem().available_permits()) };
                SPINDLE_OK
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// Frees a semaphore. `SPINDLE_EBUSY` (nothing freed) while tasks wait in
/// `spindle_sem_acquire`.
///
/// # Safety
/// `sem` is NULL or a live semaphore, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_sem_free(sem: *mut spindle_sem) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        unsafe { free_handle(sem) }
    })
}

// -- locks --------------------------------------------------------------------

/// A lock (asyncio's `Lock`): not reentrant, served first come, first
/// served.
pub struct spindle_lock {
    lock: Arc<Lock>,
    users: Users,
}

impl Counted for spindle_lock {
    fn users(&self) -> &Users {
        &self.users
    }
}

/// Creates an unlocked lock. Free it with `spindle_lock_free`.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_lock_new(out: *mut *mut spindle_lock) -> c_int {
    boundary(|| {
        let lock = spindle_lock {
            lock: Arc::new(Lock::new()),
            users: Users::default(),
        };
        // SAFETY: per the contract.
        unsafe { new_handle(out, lock) }
    })
}

/// Takes the lock, waiting while another task holds it (asyncio's `await
/// lock.acquire()`). Not reentrant: a task that takes it twice waits until
/// cancelled. A cancellation point: `SPINDLE_ECANCELED` without the lock.
///
/// # Safety
/// `lock` is NULL or a live lock.
#[no_mangle]
pub unsafe extern "C" fn spindle_lock_acquire(lock: *mut spindle_lock) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(lock) = (unsafe { lock.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        match lock.users.block_on(lock.lock.acquire()) {
            Ok(Ok(permit)) => {
                // Held until `spindle_lock_release`.
                permit.forget();
                SPINDLE_OK
            }
            Ok(Err(e)) => blocking_status(Err(e)),
            Err(code) => code,
        }
    })
}

/// Releases the lock and lets the first waiter take it (asyncio's
/// `lock.release()`). `SPINDLE_ESTATE` if it is not held. Like asyncio's,
/// any task or thread may release it.
///
/// # Safety
/// `lock` is NULL or a live lock.
#[no_mangle]
pub unsafe extern "C" fn spindle_lock_release(lock: *mut spindle_lock) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { lock.as_ref() } {
            Some(lock) => super::status(lock.lock.release()),
            None => SPINDLE_EINVAL,
        }
    })
}

/// Stores 1 in `*locked` if the lock is held, else 0.
///
/// # Safety
/// `lock` is NULL or a live lock; `locked` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_lock_locked(
    lock: *const spindle_lock,
    locked: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { lock.as_ref() } {
            // SAFETY: valid for writes per the contract.
            Some(lock) => unsafe { write_flag(locked, lock.lock.locked()) },
            None => SPINDLE_EINVAL,
        }
    })
}

/// Frees a lock handle. `SPINDLE_EBUSY` (nothing freed) while tasks wait in
/// `spindle_lock_acquire`. Conditions made over this lock keep it alive.
///
/// # Safety
/// `lock` is NULL or a live lock, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_lock_free(lock: *mut spindle_lock) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        unsafe { free_handle(lock) }
    })
}

// -- events -------------------------------------------------------------------

/// An event (asyncio's `Event`): a flag tasks wait for.
pub struct spindle_event {
    event: Event,
    users: Users,
}

impl Counted for spindle_event {
    fn users(&self) -> &Users {
        &self.users
    }
}

/// Creates an event that is not set. Free it with `spindle_event_free`.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_event_new(out: *mut *mut spindle_event) -> c_int {
    boundary(|| {
        let event = spindle_event {
            event: Event::new(),
            users: Users::default(),
        };
        // SAFETY: per the contract.
        unsafe { new_handle(out, event) }
    })
}

/// Sets the flag and wakes every waiter (asyncio's `event.set()`).
/// Callable from any thread.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn spindle_event_set(event: *mut spindle_event) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { event.as_ref() } {
            Some(event) => {
                event.event.set();
                SPINDLE_OK
            }
            None => SPINDLE_EINVAL,
        }
    })
}

/// Clears the flag (asyncio's `event.clear()`). Waiters already woken by a
/// `spindle_event_set` still return. Callable from any thread.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn spindle_event_clear(event: *mut spindle_event) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { event.as_ref() } {
            Some(event) => {
                event.event.clear();
                SPINDLE_OK
            }
            None => SPINDLE_EINVAL,
        }
    })
}

/// Stores 1 in `*is_set` if the flag is set, else 0.
///
/// # Safety
/// `event` is NULL or a live event; `is_set` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_event_is_set(
    event: *const spindle_event,
    is_set: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { event.as_ref() } {
            // SAFETY: valid for writes per the contract.
            Some(event) => unsafe { write_flag(is_set, event.event.is_set()) },
            None => SPINDLE_EINVAL,
        }
    })
}

/// Waits until the flag is set (at once if it is; asyncio's `await
/// event.wait()`). A cancellation point.
///
/// # Safety
/// `event` is NULL or a live event.
#[no_mangle]
pub unsafe extern "C" fn spindle_event_wait(event: *mut spindle_event) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(event) = (unsafe { event.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        match event.users.block_on(event.event.wait()) {
            Ok(result) => blocking_status(result),
            Err(code) => code,
        }
    })
}

/// Frees an event. `SPINDLE_EBUSY` (nothing freed) while tasks wait in
/// `spindle_event_wait`.
///
/// # Safety
/// `event` is NULL or a live event, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_event_free(event: *mut spindle_event) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        unsafe { free_handle(event) }
    })
}

// -- conditions ---------------------------------------------------------------

/// A condition variable over a lock (asyncio's `Condition`).
pub struct spindle_cond {
    cond: Condition,
    users: Users,
}

impl Counted for spindle_cond {
    fn users(&self) -> &Users {
        &self.users
    }
}

/// Creates a condition over `lock` (shared with the lock's handle and other
/// conditions), or over a lock of its own if `lock` is NULL (asyncio's
/// `Condition(lock=None)`). The condition keeps the lock alive: the lock's
/// handle may be freed first. Free it with `spindle_cond_free`.
///
/// # Safety
/// `lock` is NULL or a live lock; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_cond_new(
    lock: *const spindle_lock,
    out: *mut *mut spindle_cond,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let cond = match unsafe { lock.as_ref() } {
            Some(lock) => Condition::with_lock(lock.lock.clone()),
            None => Condition::new(),
        };
        let cond = spindle_cond {
            cond,
            users: Users::default(),
        };
        // SAFETY: per the contract.
        unsafe { new_handle(out, cond) }
    })
}

/// Takes the condition's lock, waiting while it is held (asyncio's `await
/// cond.acquire()`). A cancellation point: `SPINDLE_ECANCELED` without the
/// lock.
///
/// # Safety
/// `cond` is NULL or a live condition.
#[no_mangle]
pub unsafe extern "C" fn spindle_cond_acquire(cond: *mut spindle_cond) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(cond) = (unsafe { cond.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        match cond.users.block_on(cond.cond.acquire()) {
            Ok(Ok(guard)) => {
                // Held until `spindle_cond_release`.
                guard.forget();
                SPINDLE_OK
            }
            Ok(Err(e)) => blocking_status(Err(e)),
            Err(code) => code,
        }
    })
}

/// Releases the condition's lock (asyncio's `cond.release()`).
/// `SPINDLE_ESTATE` if it is not held.
///
/// # Safety
/// `cond` is NULL or a live condition.
#[no_mangle]
pub unsafe extern "C" fn spindle_cond_release(cond: *mut spindle_cond) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { cond.as_ref() } {
            Some(cond) => super::status(cond.cond.release()),
            None => SPINDLE_EINVAL,
        }
    })
}

/// Stores 1 in `*locked` if the condition's lock is held, else 0.
///
/// # Safety
/// `cond` is NULL or a live condition; `locked` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_cond_locked(
    cond: *const spindle_cond,
    locked: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { cond.as_ref() } {
            // SAFETY: valid for writes per the contract.
            Some(cond) => unsafe { write_flag(locked, cond.cond.locked()) },
            None => SPINDLE_EINVAL,
        }
    })
}

/// Releases the lock, waits until notified, and takes the lock again before
/// returning (asyncio's `await cond.wait()`). Call it with the lock held:
/// `SPINDLE_ESTATE` otherwise. A cancellation point: `SPINDLE_ECANCELED` is
/// returned once the lock is held again (release it while cleaning up), and
/// a notification the caller had received goes to the next waiter. Like
/// asyncio's, a wait may end without a matching notify: check the
/// condition again in a loop.
///
/// # Safety
/// `cond` is NULL or a live condition.
#[no_mangle]
pub unsafe extern "C" fn spindle_cond_wait(cond: *mut spindle_cond) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(cond) = (unsafe { cond.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        match cond.users.block_on(cond.cond.wait()) {
            Ok(result) => blocking_status(result),
            Err(code) => code,
        }
    })
}

/// Wakes the first `n` waiters (asyncio's `cond.notify(n)`); they return
/// once they take the lock again, after the caller releases it. Call it
/// with the lock held: `SPINDLE_ESTATE` otherwise.
///
/// # Safety
/// `cond` is NULL or a live condition.
#[no_mangle]
pub unsafe extern "C" fn spindle_cond_notify(cond: *mut spindle_cond, n: usize) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { cond.as_ref() } {
            Some(cond) => super::status(cond.cond.notify(n)),
            None => SPINDLE_EINVAL,
        }
    })
}

/// Wakes every waiter (asyncio's `cond.notify_all()`). Call it with the
/// lock held: `SPINDLE_ESTATE` otherwise.
///
/// # Safety
/// `cond` is NULL or a live condition.
#[no_mangle]
pub unsafe extern "C" fn spindle_cond_notify_all(cond: *mut spindle_cond) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { cond.as_ref() } {
            Some(cond) => super::status(cond.cond.notify_all()),
            None => SPINDLE_EINVAL,
        }
    })
}

/// Frees a condition. `SPINDLE_EBUSY` (nothing freed) while tasks wait in
/// `spindle_cond_acquire` or `spindle_cond_wait`.
///
/// # Safety
/// `cond` is NULL or a live condition, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_cond_free(cond: *mut spindle_cond) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        unsafe { free_handle(cond) }
    })
}

// -- barriers -----------------------------------------------------------------

/// A barrier for a fixed number of tasks (asyncio's `Barrier`).
pub struct spindle_barrier {
    barrier: Barrier,
    users: Users,
}

impl Counted for spindle_barrier {
    fn users(&self) -> &Users {
        &self.users
    }
}

/// The status of a barrier call: a broken barrier is `SPINDLE_ESHUTDOWN`.
fn barrier_status(error: Error) -> c_int {
    if error.downcast_ref::<BrokenBarrierError>().is_some() {
        SPINDLE_ESHUTDOWN
    } else {
        blocking_status(Err(error))
    }
}

/// Creates a barrier for `parties` tasks (asyncio's `Barrier(parties)`).
/// `SPINDLE_EINVAL` if `parties` is 0. Free it with `spindle_barrier_free`.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_barrier_new(
    parties: usize,
    out: *mut *mut spindle_barrier,
) -> c_int {
    boundary(|| {
        let barrier = match Barrier::new(parties) {
            Ok(barrier) => barrier,
            Err(e) => return code_of(&e),
        };
        let barrier = spindle_barrier {
            barrier,
            users: Users::default(),
        };
        // SAFETY: per the contract.
        unsafe { new_handle(out, barrier) }
    })
}

/// Waits until `parties` tasks wait, then lets them all go (asyncio's
/// `await barrier.wait()`); `*index` (if not NULL) receives this task's
/// index in `0..parties`, distinct for each. The barrier is then reused.
/// `SPINDLE_ESHUTDOWN` if the barrier is broken, or is reset or aborted
/// while waiting. A cancellation point: a cancelled waiter leaves the
/// barrier.
///
/// # Safety
/// `barrier` is NULL or a live barrier; `index` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_barrier_wait(
    barrier: *mut spindle_barrier,
    index: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(barrier) = (unsafe { barrier.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        match barrier.users.block_on(barrier.barrier.wait()) {
            Ok(Ok(i)) => {
                // SAFETY: per the contract.
                unsafe { write_out(index, i) };
                SPINDLE_OK
            }
            Ok(Err(e)) => barrier_status(e),
            Err(code) => code,
        }
    })
}

/// Resets the barrier (asyncio's `barrier.reset()`): the tasks waiting
/// return `SPINDLE_ESHUTDOWN`; once they have left, the barrier is empty and
/// usable again (also after `spindle_barrier_abort`).
///
/// # Safety
/// `barrier` is NULL or a live barrier.
#[no_mangle]
pub unsafe extern "C" fn spindle_barrier_reset(barrier: *mut spindle_barrier) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { barrier.as_ref() } {
            Some(barrier) => {
                barrier.barrier.reset();
                SPINDLE_OK
            }
            None => SPINDLE_EINVAL,
        }
    })
}

/// Breaks the barrier (asyncio's `barrier.abort()`): the tasks waiting,
/// and every later `spindle_barrier_wait`, return `SPINDLE_ESHUTDOWN` until
/// a `spindle_barrier_reset`.
///
/// # Safety
/// `barrier` is NULL or a live barrier.
#[no_mangle]
pub unsafe extern "C" fn spindle_barrier_abort(barrier: *mut spindle_barrier) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { barrier.as_ref() } {
            Some(barrier) => {
                barrier.barrier.abort();
                SPINDLE_OK
            }
            None => SPINDLE_EINVAL,
        }
    })
}

/// Stores 1 in `*broken` if the barrier is broken (aborted and not reset
/// since), else 0.
///
/// # Safety
/// `barrier` is NULL or a live barrier; `broken` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_barrier_broken(
    barrier: *const spindle_barrier,
    broken: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { barrier.as_ref() } {
            // SAFETY: valid for writes per the contract.
            Some(barrier) => unsafe { write_flag(broken, barrier.barrier.broken()) },
            None => SPINDLE_EINVAL,
        }
    })
}

/// Frees a barrier. `SPINDLE_EBUSY` (nothing freed) while tasks wait in
/// `spindle_barrier_wait`.
///
/// # Safety
/// `barrier` is NULL or a live barrier, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_barrier_free(barrier: *mut spindle_barrier) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        unsafe { free_handle(barrier) }
    })
}

/// Running C-like task bodies (Rust closures behind an `extern "C"`
/// trampoline) for the C ABI's unit tests.
#[cfg(all(test, not(spindle_loom)))]
pub(crate) mod test_util {
    use crate::ffi::runtime::spindle_run;
    use crate::ffi::task::{spindle_spawn, spindle_task, spindle_task_join};
    use std::ffi::{c_int, c_void};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::ptr;
    use std::sync::{Arc, Mutex};

    /// A C task body: `Ok(result)` or a status code.
    type Body = Box<dyn FnOnce() -> Result<usize, c_int> + Send>;

    /// The code a body that panicked returns.
    pub(crate) const PANICKED: c_int = 777;

    /// A raw pointer moved between tasks by a test.
    pub(crate) struct P<T>(pub(crate) *mut T);

    impl<T> P<T> {
        /// The pointer (a method, so that closures capture the whole `P`).
        pub(crate) fn get(self) -> *mut T {
            self.0
        }
    }

    impl<T> Clone for P<T> {
        fn clone(&self) -> Self {
            *self
        }
    }
    impl<T> Copy for P<T> {}
    // SAFETY: the tests share handles the way C programs do; the library
    // synchronizes what the handles point to.
    unsafe impl<T> Send for P<T> {}
    // SAFETY: as above.
    unsafe impl<T> Sync for P<T> {}

    unsafe extern "C" fn trampoline(arg: *mut c_void, out: *mut *mut c_void) -> c_int {
        // SAFETY: `arg` is the boxed body made by `run_c` or `spawn_c`, run once.
        let body = unsafe { Box::from_raw(arg.cast::<Body>()) };
        match body() {
            Ok(value) => {
                // SAFETY: the fiber's result slot.
                unsafe { out.write(value as *mut c_void) };
                0
            }
            Err(code) => code,
        }
    }

    fn boxed(body: impl FnOnce() -> Result<usize, c_int> + Send + 'static) -> *mut c_void {
        let body: Body = Box::new(body);
        Box::into_raw(Box::new(body)).cast()
    }

    fn message(payload: &(dyn std::any::Any + Send)) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    }

    /// Runs `body` as the main C task of a new runtime (`spindle_run`);
    /// returns its status and result. A panic in the body fails the test.
    pub(crate) fn run_c(
        body: impl FnOnce() -> Result<usize, c_int> + Send + 'static,
    ) -> (c_int, usize) {
        let panicked = Arc::new(Mutex::new(None));
        let slot = panicked.clone();
        let arg = boxed(move || match catch_unwind(AssertUnwindSafe(body)) {
            Ok(outcome) => outcome,
            Err(payload) => {
                *slot.lock().unwrap() = Some(message(&*payload));
                Err(PANICKED)
            }
        });
        let mut result = ptr::null_mut();
        // SAFETY: a valid task function and its argument; `result` is valid.
        let code = unsafe { spindle_run(ptr::null(), Some(trampoline), arg, &mut result) };
        if let Some(message) = panicked.lock().unwrap().take() {
            panic!("the C task panicked: {message}");
        }
        (code, result as usize)
    }

    /// Spawns `body` as a C task from the current one; a panic in it makes
    /// it fail with [`PANICKED`].
    pub(crate) fn spawn_c(
        body: impl FnOnce() -> Result<usize, c_int> + Send + 'static,
    ) -> P<spindle_task> {
        let arg = boxed(move || {
            catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
                eprintln!("a C task panicked: {}", message(&*payload));
                Err(PANICKED)
            })
        });
        let mut task = ptr::null_mut();
        // SAFETY: a valid task function and its argument; `task` is valid.
        let code = unsafe { spindle_spawn(Some(trampoline), arg, ptr::null(), &mut task) };
        assert_eq!(code, 0, "spindle_spawn");
        P(task)
    }

    /// Joins and frees a task handle: its status and result.
    pub(crate) fn join(task: P<spindle_task>) -> (c_int, usize) {
        let mut result = ptr::null_mut();
        // SAFETY: a live handle, freed right after.
        let code = unsafe { spindle_task_join(task.0, &mut result) };
        // SAFETY: as above.
        unsafe { crate::ffi::task::spindle_task_free(task.0) };
        (code, result as usize)
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::test_util::{join, run_c, spawn_c, P};
    use super::*;
    use crate::ffi::task::{spindle_sleep, spindle_task_cancel};
    use crate::ffi::{SPINDLE_ECANCELED, SPINDLE_ENOTASK, SPINDLE_ESTATE};
    use std::ptr;
    use std::sync::atomic::AtomicUsize;

    fn sleep(seconds: f64) {
        assert_eq!(spindle_sleep(seconds), 0);
    }

    fn new_sem(value: i64) -> P<spindle_sem> {
        let mut sem = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        assert_eq!(unsafe { spindle_sem_new(value, &mut sem) }, 0);
        P(sem)
    }

    #[test]
    fn a_semaphore_of_two_lets_two_of_five_sleepers_run_at_once() {
        let (code, max) = run_c(|| {
            let sem = new_sem(2);
            let now = Arc::new(AtomicUsize::new(0));
            let max = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..5)
                .map(|_| {
                    let (now, max) = (now.clone(), max.clone());
                    spawn_c(move || {
                        // SAFETY: the semaphore outlives its tasks.
                        let code = unsafe { spindle_sem_acquire(sem.get()) };
                        if code != 0 {
                            return Err(code);
                        }
                        let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(running, Ordering::SeqCst);
                        sleep(0.02);
                        now.fetch_sub(1, Ordering::SeqCst);
                        // SAFETY: as above.
                        Err(unsafe { spindle_sem_release(sem.get()) }).or(Ok(0))
                    })
                })
                .collect();
            for task in tasks {
                assert_eq!(join(task).0, 0);
            }
            let mut value = 0;
            // SAFETY: live handle; valid out-pointer.
            assert_eq!(unsafe { spindle_sem_value(sem.get(), &mut value) }, 0);
            assert_eq!(value, 2);
            // SAFETY: live, no waiter.
            assert_eq!(unsafe { spindle_sem_free(sem.get()) }, 0);
            Ok(max.load(Ordering::SeqCst))
        });
        assert_eq!(code, 0);
        assert_eq!(max, 2);
    }

    #[test]
    fn a_cancelled_acquire_takes_no_permit_and_loses_none() {
        let (code, _) = run_c(|| {
            let sem = new_sem(0);
            let waiter = spawn_c(move || {
                // SAFETY: the semaphore outlives the task.
                let code = unsafe { spindle_sem_acquire(sem.get()) };
                assert_eq!(code, SPINDLE_ECANCELED);
                Err(code)
            });
            sleep(0.01);
            let mut locked = 0;
            // SAFETY: live handles; valid out-pointers.
            unsafe {
                assert_eq!(spindle_sem_locked(sem.get(), &mut locked), 0);
                assert_eq!(locked, 1);
                assert_eq!(
                    spindle_task_cancel(waiter.get(), ptr::null(), ptr::null_mut()),
                    0
                );
            }
            assert_eq!(join(waiter).0, SPINDLE_ECANCELED);
            let mut value = usize::MAX;
            // SAFETY: live handle; valid out-pointers.
            unsafe {
                assert_eq!(spindle_sem_value(sem.get(), &mut value), 0);
                assert_eq!(value, 0, "the cancelled waiter took nothing");
                assert_eq!(spindle_sem_release(sem.get()), 0);
                assert_eq!(spindle_sem_value(sem.get(), &mut value), 0);
                assert_eq!(value, 1, "and nothing was lost");
                let mut acquired = -1;
                assert_eq!(spindle_sem_try_acquire(sem.get(), &mut acquired), 0);
                assert_eq!(acquired, 1);
                assert_eq!(spindle_sem_try_acquire(sem.get(), &mut acquired), 0);
                assert_eq!(acquired, 0, "and no deadlock when there is none");
                assert_eq!(spindle_sem_locked(sem.get(), &mut locked), 0);
                assert_eq!(locked, 1);
                assert_eq!(spindle_sem_free(sem.get()), 0);
            }
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn try_acquire_racing_with_waiters_loses_no_permit() {
        let (code, value) = run_c(|| {
            let sem = new_sem(2);
            let tasks: Vec<_> = (0..6)
                .map(|i| {
                    spawn_c(move || {
                        for _ in 0..200 {
                            // SAFETY: the semaphore outlives its tasks.
                            unsafe {
                                if i % 2 == 0 {
                                    let mut acquired = 0;
                                    assert_eq!(
                                        spindle_sem_try_acquire(sem.get(), &mut acquired),
                                        0
                                    );
                                    if acquired == 1 {
                                        assert_eq!(spindle_sem_release(sem.get()), 0);
                                    }
                                } else {
                                    assert_eq!(spindle_sem_acquire(sem.get()), 0);
                                    assert_eq!(crate::ffi::task::spindle_yield(), 0);
                                    assert_eq!(spindle_sem_release(sem.get()), 0);
                                }
                            }
                        }
                        Ok(0)
                    })
                })
                .collect();
            for task in tasks {
                assert_eq!(join(task).0, 0);
            }
            let mut value = 0;
            // SAFETY: a live handle; a valid out-pointer.
            unsafe {
                assert_eq!(spindle_sem_value(sem.get(), &mut value), 0);
                assert_eq!(spindle_sem_free(sem.get()), 0);
            }
            Ok(value)
        });
        assert_eq!((code, value), (0, 2));
    }

    #[test]
    fn a_bounded_semaphore_refuses_extra_releases() {
        let mut sem = ptr::null_mut();
        // SAFETY: valid out-pointers; handles live until freed.
        unsafe {
            assert_eq!(spindle_bounded_sem_new(-1, &mut sem), SPINDLE_EINVAL);
            assert_eq!(spindle_sem_new(-1, &mut sem), SPINDLE_EINVAL);
            assert_eq!(spindle_bounded_sem_new(1, ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_bounded_sem_new(1, &mut sem), 0);
            assert_eq!(spindle_sem_release(sem), SPINDLE_ESTATE);
        }
        let shared = P(sem);
        let (code, _) = run_c(move || {
            // SAFETY: the semaphore outlives the task.
            unsafe {
                assert_eq!(spindle_sem_acquire(shared.get()), 0);
                assert_eq!(spindle_sem_release(shared.get()), 0);
                assert_eq!(spindle_sem_acquire(shared.get()), 0);
            }
            Ok(0)
        });
        assert_eq!(code, 0);
        // SAFETY: a live handle.
        unsafe {
            assert_eq!(spindle_sem_release(sem), 0);
            assert_eq!(spindle_sem_release(sem), SPINDLE_ESTATE);
            assert_eq!(spindle_sem_free(sem), 0);
        }
        // An unbounded one may go above its initial count.
        let sem = new_sem(0);
        let mut value = 0;
        // SAFETY: live handle; valid out-pointer.
        unsafe {
            assert_eq!(spindle_sem_release(sem.get()), 0);
            assert_eq!(spindle_sem_release(sem.get()), 0);
            assert_eq!(spindle_sem_value(sem.get(), &mut value), 0);
            assert_eq!(value, 2);
            assert_eq!(spindle_sem_free(sem.get()), 0);
        }
    }

    #[test]
    fn freeing_a_semaphore_with_a_waiter_is_busy() {
        let (code, _) = run_c(|| {
            let sem = new_sem(0);
            // SAFETY: the semaphore outlives the task.
            let waiter = spawn_c(move || Err(unsafe { spindle_sem_acquire(sem.get()) }).or(Ok(0)));
            sleep(0.01);
            // SAFETY: live handle.
            unsafe {
                assert_eq!(spindle_sem_free(sem.get()), SPINDLE_EBUSY);
                assert_eq!(spindle_sem_release(sem.get()), 0);
            }
            assert_eq!(join(waiter).0, 0);
            // SAFETY: live handle, no waiter now.
            assert_eq!(unsafe { spindle_sem_free(sem.get()) }, 0);
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn null_handles_are_invalid_arguments() {
        let mut flag = 0;
        let mut size = 0;
        // SAFETY: NULL handles are refused before any use.
        unsafe {
            assert_eq!(spindle_sem_acquire(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(
                spindle_sem_try_acquire(ptr::null_mut(), &mut flag),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_sem_release(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_sem_locked(ptr::null(), &mut flag), SPINDLE_EINVAL);
            assert_eq!(spindle_sem_value(ptr::null(), &mut size), SPINDLE_EINVAL);
            assert_eq!(spindle_sem_free(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_lock_new(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_lock_acquire(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_lock_release(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_lock_locked(ptr::null(), &mut flag), SPINDLE_EINVAL);
            assert_eq!(spindle_lock_free(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_event_new(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_event_set(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_event_clear(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_event_is_set(ptr::null(), &mut flag), SPINDLE_EINVAL);
            assert_eq!(spindle_event_wait(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_event_free(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(
                spindle_cond_new(ptr::null(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_cond_acquire(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_cond_release(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_cond_locked(ptr::null(), &mut flag), SPINDLE_EINVAL);
            assert_eq!(spindle_cond_wait(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_cond_notify(ptr::null_mut(), 1), SPINDLE_EINVAL);
            assert_eq!(spindle_cond_notify_all(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_cond_free(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_barrier_new(2, ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(
                spindle_barrier_wait(ptr::null_mut(), &mut size),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_barrier_reset(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(spindle_barrier_abort(ptr::null_mut()), SPINDLE_EINVAL);
            assert_eq!(
                spindle_barrier_broken(ptr::null(), &mut flag),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_barrier_free(ptr::null_mut()), SPINDLE_EINVAL);
            // A NULL out-pointer on a live handle.
            let sem = new_sem(1);
            assert_eq!(
                spindle_sem_locked(sem.get(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_sem_value(sem.get(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_sem_try_acquire(sem.get(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_sem_free(sem.get()), 0);
        }
    }

    #[test]
    fn blocking_calls_outside_a_task_are_enotask_and_the_others_work() {
        let (mut sem, mut lock, mut event, mut cond, mut barrier) = (
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        let mut flag = 0;
        // SAFETY: valid out-pointers; the handles are live until freed.
        unsafe {
            assert_eq!(spindle_sem_new(1, &mut sem), 0);
            assert_eq!(spindle_lock_new(&mut lock), 0);
            assert_eq!(spindle_event_new(&mut event), 0);
            assert_eq!(spindle_cond_new(lock, &mut cond), 0);
            assert_eq!(spindle_barrier_new(1, &mut barrier), 0);
            // Even when they would not have to wait.
            assert_eq!(spindle_sem_acquire(sem), SPINDLE_ENOTASK);
            assert_eq!(spindle_lock_acquire(lock), SPINDLE_ENOTASK);
            assert_eq!(spindle_event_set(event), 0);
            assert_eq!(spindle_event_wait(event), SPINDLE_ENOTASK);
            assert_eq!(spindle_cond_acquire(cond), SPINDLE_ENOTASK);
            assert_eq!(spindle_cond_wait(cond), SPINDLE_ENOTASK);
            assert_eq!(
                spindle_barrier_wait(barrier, ptr::null_mut()),
                SPINDLE_ENOTASK
            );
            // Non-blocking calls work from any thread.
            assert_eq!(spindle_sem_try_acquire(sem, &mut flag), 0);
            assert_eq!(flag, 1);
            assert_eq!(spindle_sem_try_acquire(sem, &mut flag), 0);
            assert_eq!(flag, 0);
            assert_eq!(spindle_sem_release(sem), 0);
            assert_eq!(spindle_sem_locked(sem, &mut flag), 0);
            assert_eq!(flag, 0);
            assert_eq!(spindle_event_is_set(event, &mut flag), 0);
            assert_eq!(flag, 1);
            for code in [
                spindle_sem_free(sem),
                spindle_cond_free(cond),
                spindle_lock_free(lock),
                spindle_event_free(event),
                spindle_barrier_free(barrier),
            ] {
                assert_eq!(code, 0);
            }
        }
    }

    #[test]
    fn a_lock_excludes_and_refuses_a_release_when_free() {
        let (code, _) = run_c(|| {
            let mut lock = ptr::null_mut();
            // SAFETY: a valid out-pointer.
            assert_eq!(unsafe { spindle_lock_new(&mut lock) }, 0);
            let lock = P(lock);
            let inside = Arc::new(AtomicUsize::new(0));
            let overlaps = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let (inside, overlaps) = (inside.clone(), overlaps.clone());
                    spawn_c(move || {
                        for _ in 0..3 {
                            // SAFETY: the lock outlives its tasks.
                            assert_eq!(unsafe { spindle_lock_acquire(lock.get()) }, 0);
                            if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            sleep(0.002);
                            inside.fetch_sub(1, Ordering::SeqCst);
                            // SAFETY: as above.
                            assert_eq!(unsafe { spindle_lock_release(lock.get()) }, 0);
                        }
                        Ok(0)
                    })
                })
                .collect();
            for task in tasks {
                assert_eq!(join(task).0, 0);
            }
            assert_eq!(overlaps.load(Ordering::SeqCst), 0);
            let mut locked = 1;
            // SAFETY: live handle; valid out-pointer.
            unsafe {
                assert_eq!(spindle_lock_locked(lock.get(), &mut locked), 0);
                assert_eq!(locked, 0);
                assert_eq!(spindle_lock_release(lock.get()), SPINDLE_ESTATE);
                assert_eq!(spindle_lock_acquire(lock.get()), 0);
                assert_eq!(spindle_lock_locked(lock.get(), &mut locked), 0);
                assert_eq!(locked, 1);
                assert_eq!(spindle_lock_release(lock.get()), 0);
                assert_eq!(spindle_lock_free(lock.get()), 0);
            }
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn an_event_wakes_every_waiter() {
        let (code, _) = run_c(|| {
            let mut event = ptr::null_mut();
            // SAFETY: a valid out-pointer.
            assert_eq!(unsafe { spindle_event_new(&mut event) }, 0);
            let event = P(event);
            let waiters: Vec<_> = (0..3)
                // SAFETY: the event outlives its tasks.
                .map(|_| spawn_c(move || Err(unsafe { spindle_event_wait(event.get()) }).or(Ok(1))))
                .collect();
            sleep(0.01);
            let mut is_set = 1;
            // SAFETY: live handle; valid out-pointer.
            unsafe {
                assert_eq!(spindle_event_is_set(event.get(), &mut is_set), 0);
                assert_eq!(is_set, 0);
                assert_eq!(spindle_event_free(event.get()), SPINDLE_EBUSY);
                assert_eq!(spindle_event_set(event.get()), 0);
            }
            for waiter in waiters {
                assert_eq!(join(waiter), (0, 1));
            }
            // SAFETY: live handle; valid out-pointer.
            unsafe {
                assert_eq!(spindle_event_wait(event.get()), 0, "set: at once");
                assert_eq!(spindle_event_clear(event.get()), 0);
                assert_eq!(spindle_event_is_set(event.get(), &mut is_set), 0);
                assert_eq!(is_set, 0);
                assert_eq!(spindle_event_free(event.get()), 0);
            }
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn a_condition_hands_items_from_a_producer_to_consumers() {
        let (code, total) = run_c(|| {
            let mut lock = ptr::null_mut();
            let mut cond = ptr::null_mut();
            // SAFETY: valid out-pointers.
            unsafe {
                assert_eq!(spindle_lock_new(&mut lock), 0);
                assert_eq!(spindle_cond_new(lock, &mut cond), 0);
            }
            let (lock, cond) = (P(lock), P(cond));
            // SAFETY: live handles.
            unsafe {
                assert_eq!(
                    spindle_cond_wait(cond.get()),
                    SPINDLE_ESTATE,
                    "without the lock"
                );
                assert_eq!(spindle_cond_notify(cond.get(), 1), SPINDLE_ESTATE);
                assert_eq!(spindle_cond_notify_all(cond.get()), SPINDLE_ESTATE);
                assert_eq!(spindle_cond_release(cond.get()), SPINDLE_ESTATE);
            }
            let items = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
            let consumers: Vec<_> = (0..3)
                .map(|_| {
                    let items = items.clone();
                    spawn_c(move || {
                        // SAFETY: the condition outlives its tasks.
                        unsafe {
                            assert_eq!(spindle_cond_acquire(cond.get()), 0);
                            let item = loop {
                                if let Some(item) = items.lock().unwrap().pop() {
                                    break item;
                                }
                                assert_eq!(spindle_cond_wait(cond.get()), 0);
                                let mut locked = 0;
                                assert_eq!(spindle_cond_locked(cond.get(), &mut locked), 0);
                                assert_eq!(locked, 1, "held again after the wait");
                            };
                            assert_eq!(spindle_cond_release(cond.get()), 0);
                            Ok(item)
                        }
                    })
                })
                .collect();
            sleep(0.01);
            // The lock is shared with the lock's own handle.
            // SAFETY: live handles.
            unsafe {
                assert_eq!(spindle_lock_acquire(lock.get()), 0);
                items.lock().unwrap().extend([1, 2]);
                assert_eq!(spindle_cond_notify(cond.get(), 2), 0);
                assert_eq!(spindle_lock_release(lock.get()), 0);
                assert_eq!(spindle_cond_acquire(cond.get()), 0);
                items.lock().unwrap().push(4);
                assert_eq!(spindle_cond_notify_all(cond.get()), 0);
                assert_eq!(spindle_cond_release(cond.get()), 0);
            }
            let total: usize = consumers.into_iter().map(|c| join(c).1).sum();
            // SAFETY: live handles, no waiters; the condition keeps the lock.
            unsafe {
                assert_eq!(spindle_lock_free(lock.get()), 0);
                assert_eq!(spindle_cond_acquire(cond.get()), 0);
                assert_eq!(spindle_cond_release(cond.get()), 0);
                assert_eq!(spindle_cond_free(cond.get()), 0);
            }
            Ok(total)
        });
        assert_eq!((code, total), (0, 7));
    }

    #[test]
    fn a_cancelled_condition_wait_returns_with_the_lock_held() {
        let (code, _) = run_c(|| {
            let mut cond = ptr::null_mut();
            // SAFETY: a valid out-pointer.
            assert_eq!(unsafe { spindle_cond_new(ptr::null(), &mut cond) }, 0);
            let cond = P(cond);
            let waiter = spawn_c(move || {
                // SAFETY: the condition outlives the task.
                unsafe {
                    assert_eq!(spindle_cond_acquire(cond.get()), 0);
                    let code = spindle_cond_wait(cond.get());
                    let mut locked = 0;
                    assert_eq!(spindle_cond_locked(cond.get(), &mut locked), 0);
                    assert_eq!(locked, 1);
                    assert_eq!(spindle_cond_release(cond.get()), 0);
                    Err(code)
                }
            });
            sleep(0.01);
            // SAFETY: live handles.
            unsafe {
                assert_eq!(spindle_cond_free(cond.get()), SPINDLE_EBUSY);
                assert_eq!(
                    spindle_task_cancel(waiter.get(), ptr::null(), ptr::null_mut()),
                    0
                );
            }
            assert_eq!(join(waiter).0, SPINDLE_ECANCELED);
            // SAFETY: live, no waiter.
            assert_eq!(unsafe { spindle_cond_free(cond.get()) }, 0);
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn a_barrier_gives_distinct_indices_and_breaks_on_abort() {
        let (code, _) = run_c(|| {
            let mut barrier = ptr::null_mut();
            // SAFETY: valid out-pointers.
            unsafe {
                assert_eq!(spindle_barrier_new(0, &mut barrier), SPINDLE_EINVAL);
                assert_eq!(spindle_barrier_new(3, &mut barrier), 0);
            }
            let barrier = P(barrier);
            let wait = move || {
                let mut index = usize::MAX;
                // SAFETY: the barrier outlives its tasks.
                match unsafe { spindle_barrier_wait(barrier.get(), &mut index) } {
                    0 => Ok(index),
                    code => Err(code),
                }
            };
            for _round in 0..2 {
                let tasks: Vec<_> = (0..3).map(|_| spawn_c(wait)).collect();
                let mut indices: Vec<_> = tasks
                    .into_iter()
                    .map(|t| {
                        let (code, index) = join(t);
                        assert_eq!(code, 0);
                        index
                    })
                    .collect();
                indices.sort();
                assert_eq!(indices, [0, 1, 2]);
            }
            // Two wait; an abort breaks them out.
            let tasks: Vec<_> = (0..2).map(|_| spawn_c(wait)).collect();
            sleep(0.01);
            let mut broken = 1;
            // SAFETY: live handle; valid out-pointer.
            unsafe {
                assert_eq!(spindle_barrier_broken(barrier.get(), &mut broken), 0);
                assert_eq!(broken, 0);
                assert_eq!(spindle_barrier_free(barrier.get()), SPINDLE_EBUSY);
                assert_eq!(spindle_barrier_abort(barrier.get()), 0);
            }
            for task in tasks {
                assert_eq!(join(task).0, SPINDLE_ESHUTDOWN);
            }
            assert_eq!(wait(), Err(SPINDLE_ESHUTDOWN), "broken until reset");
            // SAFETY: live handle; valid out-pointer.
            unsafe {
                assert_eq!(spindle_barrier_broken(barrier.get(), &mut broken), 0);
                assert_eq!(broken, 1);
                assert_eq!(spindle_barrier_reset(barrier.get()), 0);
                assert_eq!(spindle_barrier_broken(barrier.get(), &mut broken), 0);
                assert_eq!(broken, 0);
                assert_eq!(spindle_barrier_free(barrier.get()), 0);
            }
            Ok(0)
        });
        assert_eq!(code, 0);
    }
}
