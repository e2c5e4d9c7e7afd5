//! Scopes in direct style: timeout scopes (asyncio's `async with
//! timeout(...)`) and task groups (`async with TaskGroup()`), as
//! begin/end pairs around ordinary C code; plus `wait_for` and `shield`.
//!
//! A scope's Rust future ([`TimeoutFuture`], [`GroupFuture`]) runs its
//! entry on the first poll and its exit when its body completes. From C,
//! the body is the code between `begin` and `end`, so the future's body is
//! a [`Gate`]: `begin` polls the scope once (it enters, the gate is still
//! closed), `end` puts the C code's status in the gate and blocks on the
//! scope until it has exited. Everything a scope does in between (a
//! deadline cancelling the task, a failing child cancelling the parent)
//! it does through the task's cancellation, which the C code sees as
//! `SPINDLE_ECANCELED` from its next blocking call.

use super::fiber;
use super::stack::StackPool;
use super::task::{
    spawn_c_task_in, spindle_arg_free_fn, spindle_task, spindle_task_fn, OwnedArg, TaskFailure,
    TaskResult,
};
use super::{
    block_on, boundary, code_of, limit_from_secs, optional_str, write_out, SPINDLE_EBUSY,
    SPINDLE_ECANCELED, SPINDLE_EINVAL, SPINDLE_ENOTASK, SPINDLE_ESTATE, SPINDLE_ETIMEDOUT,
};
use crate::error::{Error, Result};
use crate::flow::Shield;
use crate::group::{GroupFuture, TaskGroup};
use crate::loom::{lock, Mutex};
use crate::task::{Join, TaskId};
use crate::time::{Timeout, TimeoutFuture};
use std::ffi::{c_char, c_int, c_void};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The body of a scope entered from C: done when `end` says so.
struct Gate(Arc<Mutex<Option<Result<()>>>>);

impl Future for Gate {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        // `end` fills the gate and polls the scope right after: no waker is
        // needed.
        match lock(&self.0).take() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}

/// The error a C status stands for, to end a scope's body with.
fn error_of(status: c_int) -> Error {
    match status {
        SPINDLE_ECANCELED => fiber::take_cancel(),
        SPINDLE_ETIMEDOUT => Error::timeout(),
        code => Error::other(TaskFailure { code }),
    }
}

/// A scope entered from C.
struct CScope<F: Future> {
    gate: Arc<Mutex<Option<Result<()>>>>,
    /// `None` once ended.
    future: Option<Pin<Box<F>>>,
    /// The task that entered it (only that task may end it).
    task: TaskId,
}

impl<F: Future<Output = Result<()>> + Send> CScope<F> {
    /// Enters the scope made by `make` around a gate, from a C task.
    fn begin(make: impl FnOnce(Gate) -> F) -> std::result::Result<Self, c_int> {
        let Some(task) = fiber::current_task() else {
            return Err(SPINDLE_ENOTASK);
        };
        let gate = Arc::new(Mutex::new(None));
        let mut future = Box::pin(make(Gate(gate.clone())));
        match fiber::poll_here(future.as_mut()) {
            Some(Poll::Pending) => Ok(CScope {
                gate,
                future: Some(future),
                task: task.id(),
            }),
            Some(Poll::Ready(outcome)) => Err(code_of(
                &outcome
                    .err()
                    .unwrap_or_else(|| Error::invalid_state("empty scope")),
            )),
            None => Err(SPINDLE_ENOTASK),
        }
    }

    /// Ends the scope with the body's `status`; returns the scope's outcome.
    fn end(&mut self, status: c_int) -> std::result::Result<Result<()>, c_int> {
        match fiber::current_task() {
            Some(task) if task.id() == self.task => {}
            Some(_) => return Err(SPINDLE_ESTATE),
            None => return Err(SPINDLE_ENOTASK),
        }
        let Some(future) = self.future.as_mut() else {
            return Err(SPINDLE_ESTATE);
        };
        let body = if status == 0 {
            Ok(())
        } else {
            Err(error_of(status))
        };
        *lock(&self.gate) = Some(body);
        let outcome = block_on(future.as_mut())?;
        self.future = None;
        Ok(outcome)
    }
}

/// A timeout scope (asyncio's `asyncio.timeout`).
pub struct spindle_timeout {
    scope: Timeout,
    inner: CScope<TimeoutFuture<Gate>>,
}

/// Enters a timeout scope in the calling task: after `seconds` (negative:
/// no deadline, until rescheduled) the task is cancelled, and
/// `spindle_timeout_end` turns that cancellation into `SPINDLE_ETIMEDOUT`.
///
/// ```c
/// spindle_timeout *scope;
/// int rc = spindle_timeout_begin(2.0, &scope);
/// if (rc == 0) {
///     rc = do_slow_work();              // returns SPINDLE_ECANCELED at the deadline
///     rc = spindle_timeout_end(scope, rc);  // SPINDLE_ETIMEDOUT if the deadline fired
///     spindle_timeout_free(scope);
/// }
/// ```
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_timeout_begin(
    seconds: f64,
    out: *mut *mut spindle_timeout,
) -> c_int {
    boundary(|| {
        if out.is_null() {
            return SPINDLE_EINVAL;
        }
        let when = match limit_from_secs(seconds) {
            Ok(limit) => limit.and_then(|d| Instant::now().checked_add(d)),
            Err(code) => return code,
        };
        let scope = Timeout::at(when);
        let inner = match CScope::begin(|gate| scope.run(gate)) {
            Ok(inner) => inner,
            Err(code) => return code,
        };
        // SAFETY: checked non-null; valid for writes per the contract.
        unsafe { out.write(Box::into_raw(Box::new(spindle_timeout { scope, inner }))) };
        0
    })
}

/// Leaves a timeout scope. `status` is the outcome of the code inside (0 or
/// a status code); the return value is that status, except that the
/// cancellation caused by this scope's deadline becomes
/// `SPINDLE_ETIMEDOUT`. `SPINDLE_ESTATE` if already ended or called from
/// another task.
///
/// # Safety
/// `scope` is NULL or a live scope.
#[no_mangle]
pub unsafe extern "C" fn spindle_timeout_end(scope: *mut spindle_timeout, status: c_int) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(scope) = (unsafe { scope.as_mut() }) else {
            return SPINDLE_EINVAL;
        };
        match scope.inner.end(status) {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => {
                if e.is_cancelled() {
                    fiber::note_cancel(&e);
                }
                code_of(&e)
            }
            Err(code) => code,
        }
    })
}

/// Moves the deadline of an entered scope to `seconds` from now (negative:
/// no deadline). Zero (a deadline already passed) expires the scope at
/// once, whoever calls this (the scope's task, another task, a thread
/// outside the runtime): its task sees the cancellation at its next
/// blocking call.
///
/// # Safety
/// `scope` is NULL or a live scope.
#[no_mangle]
pub unsafe extern "C" fn spindle_timeout_reschedule(
    scope: *mut spindle_timeout,
    seconds: f64,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(scope) = (unsafe { scope.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        let when = match limit_from_secs(seconds) {
            Ok(limit) => limit.and_then(|d| Instant::now().checked_add(d)),
            Err(code) => return code,
        };
        super::status(scope.scope.reschedule_from_c(when))
    })
}

/// Stores 1 in `*expired` if the scope's deadline fired.
///
/// # Safety
/// `scope` is NULL or a live scope; `expired` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_timeout_expired(
    scope: *const spindle_timeout,
    expired: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { scope.as_ref() } {
            Some(scope) if !expired.is_null() => {
                // SAFETY: checked non-null.
                unsafe { expired.write(c_int::from(scope.scope.expired())) };
                0
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// Frees a scope. `SPINDLE_EBUSY` (nothing freed) if it was entered and not
/// ended yet.
///
/// # Safety
/// `scope` is NULL or a live scope, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_timeout_free(scope: *mut spindle_timeout) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { scope.as_ref() } {
            None => SPINDLE_EINVAL,
            Some(s) if s.inner.future.is_some() => SPINDLE_EBUSY,
            Some(_) => {
                // SAFETY: made by `spindle_timeout_begin`, freed once.
                drop(unsafe { Box::from_raw(scope) });
                0
            }
        }
    })
}

/// A task group (asyncio's `TaskGroup`).
pub struct spindle_group {
    group: TaskGroup,
    inner: CScope<GroupFuture<Gate, ()>>,
    stacks: Arc<StackPool>,
    /// The failures of the group, once it ended with `SPINDLE_EGROUP`.
    errors: Vec<Error>,
}

/// Enters a task group in the calling task. Spawn children with
/// `spindle_group_spawn`; `spindle_group_wait` waits for all of them. The
/// first child to fail cancels the others and the calling task (whose
/// next blocking call returns `SPINDLE_ECANCELED`).
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_group_new(out: *mut *mut spindle_group) -> c_int {
    boundary(|| {
        if out.is_null() {
            return SPINDLE_EINVAL;
        }
        let Some(stacks) = fiber::with_current_pool(Arc::clone) else {
            return SPINDLE_ENOTASK;
        };
        let group = TaskGroup::new();
        let inner = match CScope::begin(|gate| group.run(gate)) {
            Ok(inner) => inner,
            Err(code) => return code,
        };
        let handle = spindle_group {
            group,
            inner,
            stacks,
            errors: Vec::new(),
        };
        // SAFETY: checked non-null; valid for writes per the contract.
        unsafe { out.write(Box::into_raw(Box::new(handle))) };
        0
    })
}

/// Spawns `func(arg)` as a child of the group (asyncio's
/// `tg.create_task`). `SPINDLE_ESTATE` once the group is shutting down or
/// done. `out` may be NULL. `arg` stays the caller's (see `spindle_spawn`).
///
/// # Safety
/// `group` is NULL or a live group; `name` NULL or a C string; `out` NULL
/// or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_group_spawn(
    group: *mut spindle_group,
    func: spindle_task_fn,
    arg: *mut c_void,
    name: *const c_char,
    out: *mut *mut spindle_task,
) -> c_int {
    // SAFETY: the same contract.
    boundary(|| unsafe { spindle_group_spawn_owned(group, func, arg, None, name, out) })
}

/// `spindle_group_spawn`, taking ownership of `arg` as
/// `spindle_spawn_owned` does: either `func` runs with it or
/// `arg_free(arg)` is called, exactly once (failed calls included, and a
/// child cancelled before it started because a sibling failed).
///
/// # Safety
/// As `spindle_group_spawn`; `arg_free` is NULL or a function safe to call
/// with `arg` from any thread.
#[no_mangle]
pub unsafe extern "C" fn spindle_group_spawn_owned(
    group: *mut spindle_group,
    func: spindle_task_fn,
    arg: *mut c_void,
    arg_free: spindle_arg_free_fn,
    name: *const c_char,
    out: *mut *mut spindle_task,
) -> c_int {
    let arg = OwnedArg::new(arg, arg_free);
    boundary(move || {
        // SAFETY: NULL or live per the contract.
        let Some(group) = (unsafe { group.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        // SAFETY: per the contract.
        let name = unsafe { optional_str(name) };
        let spawned = spawn_c_task_in(&group.stacks, func, arg, name, |builder, fiber| {
            group.group.spawn_with(builder, fiber)
        });
        // SAFETY: `out` per the contract.
        unsafe { spindle_task::hand_out(spawned, out) }
    })
}

/// Leaves the group: waits until every child is done (asyncio's end of
/// `async with`). `status` is the outcome of the calling code since
/// `spindle_group_new`. Returns 0; `SPINDLE_EGROUP` if children (or the
/// calling code) failed — `spindle_group_errors` lists the codes; or
/// `SPINDLE_ECANCELED` if the calling task was cancelled from outside.
///
/// # Safety
/// `group` is NULL or a live group.
#[no_mangle]
pub unsafe extern "C" fn spindle_group_wait(group: *mut spindle_group, status: c_int) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(group) = (unsafe { group.as_mut() }) else {
            return SPINDLE_EINVAL;
        };
        match group.inner.end(status) {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => {
                if let Some(errors) = e.as_group() {
                    group.errors = errors.leaves();
                }
                // SAFETY: NULL out-pointer.
                unsafe { TaskResult(Err(e)).write_to(std::ptr::null_mut()) }
            }
            Err(code) => code,
        }
    })
}

/// Copies the failure codes of a group that ended with `SPINDLE_EGROUP`
/// into `codes` (up to `capacity`), in the order they happened; `*count`
/// receives how many there are.
///
/// # Safety
/// `group` is NULL or a live group; `codes` valid for `capacity` ints (NULL
/// if 0); `count` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_group_errors(
    group: *const spindle_group,
    codes: *mut c_int,
    capacity: usize,
    count: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(group) = (unsafe { group.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        if codes.is_null() && capacity > 0 {
            return SPINDLE_EINVAL;
        }
        for (i, error) in group.errors.iter().take(capacity).enumerate() {
            // SAFETY: i < capacity, `codes` has `capacity` ints.
            unsafe { codes.add(i).write(code_of(error)) };
        }
        // SAFETY: per the contract.
        unsafe { write_out(count, group.errors.len()) };
        0
    })
}

/// Frees a group. `SPINDLE_EBUSY` (nothing freed) if it was not waited.
///
/// # Safety
/// `group` is NULL or a live group, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_group_free(group: *mut spindle_group) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { group.as_ref() } {
            None => SPINDLE_EINVAL,
            Some(g) if g.inner.future.is_some() => SPINDLE_EBUSY,
            Some(_) => {
                // SAFETY: made by `spindle_group_new`, freed once.
                drop(unsafe { Box::from_raw(group) });
                0
            }
        }
    })
}

/// Waits for `task` for at most `seconds` (asyncio's `wait_for`; negative:
/// no limit). At the limit the task is cancelled, waited for, and the call
/// returns `SPINDLE_ETIMEDOUT`. Otherwise as `spindle_task_join`.
///
/// # Safety
/// `task` is NULL or a live handle; `result` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_wait_for(
    task: *const spindle_task,
    seconds: f64,
    result: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        let Some(task) = (unsafe { spindle_task::get(task) }) else {
            return SPINDLE_EINVAL;
        };
        let limit = match limit_from_secs(seconds) {
            Ok(limit) => limit,
            Err(code) => return code,
        };
        match block_on(crate::wait_for(limit, Join::cloning(task.clone()))) {
            // SAFETY: per the contract.
            Ok(outcome) => unsafe { TaskResult(outcome).write_to(result) },
            Err(code) => code,
        }
    })
}

/// Waits for `task` without passing a cancellation of the caller on to it
/// (asyncio's `await shield(task)`): if the caller is cancelled, the call
/// returns `SPINDLE_ECANCELED` and `task` keeps running.
///
/// # Safety
/// `task` is NULL or a live handle; `result` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_shield(
    task: *const spindle_task,
    result: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        let Some(task) = (unsafe { spindle_task::get(task) }) else {
            return SPINDLE_EINVAL;
        };
        match block_on(Shield::cloning(task.clone())) {
            // SAFETY: per the contract.
            Ok(outcome) => unsafe { TaskResult(outcome).write_to(result) },
            Err(code) => code,
        }
    })
}
