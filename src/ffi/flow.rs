//! Combinators over task handles from C (asyncio's): `spindle_gather`,
//! `spindle_wait` and `spindle_as_completed_*`.
//!
//! They take arrays of task handles, `spindle_task *const *tasks` with `n`
//! entries (`tasks` may be NULL when `n` is 0), and never take ownership of
//! the handles. As in asyncio, collecting a task's result leaves it in the
//! task: `spindle_task_join` and `spindle_task_result` read it again.

use super::task::{blocking_status, spindle_task, TaskResult};
use super::{
    block_on, boundary, code_of, limit_from_secs, write_out, SPINDLE_EBUSY, SPINDLE_EEMPTY,
    SPINDLE_EINVAL, SPINDLE_OK,
};
use crate::flow::{AsCompletedTasks, ReturnWhen};
use crate::task::{Task, TaskId};
use std::cell::UnsafeCell;
use std::collections::HashSet;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

/// `spindle_wait` returns when every task is done (asyncio's
/// `ALL_COMPLETED`).
pub const SPINDLE_ALL_COMPLETED: c_int = 0;
/// `spindle_wait` returns as soon as any task is done (asyncio's
/// `FIRST_COMPLETED`).
pub const SPINDLE_FIRST_COMPLETED: c_int = 1;
/// `spindle_wait` returns as soon as any task fails, or when all are done
/// if none fails (asyncio's `FIRST_EXCEPTION`); a cancelled task is not a
/// failure.
pub const SPINDLE_FIRST_EXCEPTION: c_int = 2;

/// The tasks behind an array of `n` handles; `SPINDLE_EINVAL` for a NULL
/// array (unless `n` is 0) or a NULL entry.
///
/// # Safety
/// `tasks` is NULL or valid for reading `n` pointers, each NULL or a live
/// handle.
unsafe fn task_list(tasks: *const *mut spindle_task, n: usize) -> Result<Vec<Task<usize>>, c_int> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if tasks.is_null() {
        return Err(SPINDLE_EINVAL);
    }
    // SAFETY: non-null and valid for `n` reads per the caller.
    let handles = unsafe { std::slice::from_raw_parts(tasks, n) };
    handles
        .iter()
        // SAFETY: each entry is NULL or a live handle per the caller.
        .map(|&handle| unsafe { spindle_task::get(handle) }.map(|task| Task::clone(&task)))
        .collect::<Option<Vec<_>>>()
        .ok_or(SPINDLE_EINVAL)
}

/// Waits for every task and collects their results (asyncio's `gather`).
/// The caller must be a C task.
///
/// With `codes` NULL (asyncio's default): returns 0 and stores each task's
/// result in `results[i]` (if `results` is not NULL) once all succeeded, or
/// returns the first failure as it happens — a task's own code,
/// `SPINDLE_ECANCELED` for a cancelled task, ... — leaving the other tasks
/// running. With `codes` not NULL (asyncio's `return_exceptions=True`):
/// waits for all of them, stores each task's status in `codes[i]` and, if
/// `results` is not NULL, its result (NULL for a failure) in `results[i]`,
/// and returns 0.
///
/// A cancellation of the caller cancels every unfinished task (as asyncio
/// does) and returns `SPINDLE_ECANCELED` once they have ended (without
/// `codes`, as soon as one ends cancelled); the arrays are then not
/// filled. A gather of nothing (`n` = 0) returns 0.
///
/// # Safety
/// `tasks` is valid for reading `n` live handles (may be NULL if `n` is 0);
/// `results` and `codes` are NULL or valid for writing `n` entries.
#[no_mangle]
pub unsafe extern "C" fn spindle_gather(
    tasks: *const *mut spindle_task,
    n: usize,
    results: *mut *mut c_void,
    codes: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        let tasks = match unsafe { task_list(tasks, n) } {
            Ok(tasks) => tasks,
            Err(code) => return code,
        };
        if codes.is_null() {
            return match block_on(crate::gather(tasks).cloning()) {
                Ok(Ok(values)) => {
                    if !results.is_null() {
                        for (i, value) in values.into_iter().enumerate() {
                            // SAFETY: i < n; `results` has `n` entries.
                            unsafe { results.add(i).write(value as *mut c_void) };
                        }
                    }
                    SPINDLE_OK
                }
                // SAFETY: NULL out-pointer.
                Ok(Err(e)) => unsafe { TaskResult(Err(e)).write_to(std::ptr::null_mut()) },
                Err(code) => code,
            };
        }
        match block_on(crate::gather(tasks).cloning().return_exceptions()) {
            Ok(Ok(outcomes)) => {
                for (i, outcome) in outcomes.into_iter().enumerate() {
                    let (code, value) = match outcome {
                        Ok(value) => (SPINDLE_OK, value as *mut c_void),
                        Err(e) => (code_of(&e), std::ptr::null_mut()),
                    };
                    // SAFETY: i < n; `codes` (and `results` if not NULL)
                    // have `n` entries.
                    unsafe {
                        codes.add(i).write(code);
                        if !results.is_null() {
                            results.add(i).write(value);
                        }
                    }
                }
                SPINDLE_OK
            }
            Ok(Err(e)) => blocking_status(Err(e)),
            Err(code) => code,
        }
    })
}

/// Waits until `return_when` holds (`SPINDLE_FIRST_COMPLETED`,
/// `SPINDLE_FIRST_EXCEPTION` or `SPINDLE_ALL_COMPLETED`) or `seconds` pass
/// (negative: no limit), like asyncio's `wait`. The caller must be a C
/// task. Returns 0, sets `done[i]` (if `done` is not NULL) to 1 for each
/// task that is done and 0 for the others, and stores the number of 1s in
/// `*done_count` (if not NULL): after a timeout it may be smaller than
/// asked, even 0. Nothing is cancelled, not at the timeout either; read
/// the outcomes with `spindle_task_result`.
///
/// `SPINDLE_EINVAL` for another `return_when` or an empty set of tasks
/// (`n` = 0), as asyncio's `ValueError`. A cancellation point:
/// `SPINDLE_ECANCELED` (the tasks keep running).
///
/// # Safety
/// `tasks` is valid for reading `n` live handles; `done` is NULL or valid
/// for writing `n` ints; `done_count` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_wait(
    tasks: *const *mut spindle_task,
    n: usize,
    return_when: c_int,
    seconds: f64,
    done: *mut c_int,
    done_count: *mut usize,
) -> c_int {
    boundary(|| {
        let return_when = match return_when {
            SPINDLE_ALL_COMPLETED => ReturnWhen::AllCompleted,
            SPINDLE_FIRST_COMPLETED => ReturnWhen::FirstCompleted,
            SPINDLE_FIRST_EXCEPTION => ReturnWhen::FirstException,
            _ => return SPINDLE_EINVAL,
        };
        if n == 0 {
            return SPINDLE_EINVAL;
        }
        // SAFETY: per the contract.
        let tasks = match unsafe { task_list(tasks, n) } {
            Ok(tasks) => tasks,
            Err(code) => return code,
        };
        let limit = match limit_from_secs(seconds) {
            Ok(limit) => limit,
            Err(code) => return code,
        };
        let finished: HashSet<TaskId> =
            match block_on(crate::wait(tasks.iter().cloned(), return_when, limit)) {
                Ok(Ok((finished, _pending))) => finished.iter().map(|t| t.id()).collect(),
                Ok(Err(e)) => return blocking_status(Err(e)),
                Err(code) => return code,
            };
        let mut count = 0;
        for (i, task) in tasks.iter().enumerate() {
            let is_done = finished.contains(&task.id());
            count += usize::from(is_done);
            if !done.is_null() {
                // SAFETY: i < n; `done` has `n` entries.
                unsafe { done.add(i).write(c_int::from(is_done)) };
            }
        }
        // SAFETY: per the contract.
        unsafe { write_out(done_count, count) };
        SPINDLE_OK
    })
}

/// An iteration over tasks in the order they finish (asyncio's
/// `as_completed`).
pub struct spindle_as_completed {
    /// Used by one `next` at a time (see `busy`).
    tasks: UnsafeCell<AsCompletedTasks<usize>>,
    /// A `next` is in progress.
    busy: AtomicBool,
}

// SAFETY: `tasks` is only reached by the `next` that set `busy`, so by one
// thread at a time; `AsCompletedTasks<usize>` is `Send`.
unsafe impl Sync for spindle_as_completed {}

/// Ends a `next`: clears `busy`, also when a doomed fiber unwinds.
struct Next<'a>(&'a AtomicBool);

impl Drop for Next<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Starts iterating over `tasks` in the order they finish (asyncio's
/// `as_completed(tasks, timeout)`): call `spindle_as_completed_next` until
/// it returns `SPINDLE_EEMPTY`. A task given twice comes out once. With
/// `seconds` (negative: no limit), counted from this call, every task not
/// done by then comes out as a `SPINDLE_ETIMEDOUT` from `next`; nothing is
/// cancelled. Callable from any thread; free it with
/// `spindle_as_completed_free`.
///
/// # Safety
/// `tasks` is valid for reading `n` live handles (may be NULL if `n` is 0);
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_as_completed_new(
    tasks: *const *mut spindle_task,
    n: usize,
    seconds: f64,
    out: *mut *mut spindle_as_completed,
) -> c_int {
    boundary(|| {
        if out.is_null() {
            return SPINDLE_EINVAL;
        }
        // SAFETY: per the contract.
        let tasks = match unsafe { task_list(tasks, n) } {
            Ok(tasks) => tasks,
            Err(code) => return code,
        };
        let limit = match limit_from_secs(seconds) {
            Ok(limit) => limit,
            Err(code) => return code,
        };
        let iteration = spindle_as_completed {
            tasks: UnsafeCell::new(crate::as_completed(tasks, limit).tasks()),
            busy: AtomicBool::new(false),
        };
        // SAFETY: checked non-null; valid for writes per the contract.
        unsafe { out.write(Box::into_raw(Box::new(iteration))) };
        SPINDLE_OK
    })
}

/// Waits for the next task to finish and stores a new handle to it in
/// `*out` (free it with `spindle_task_free`; `out` may be NULL to skip
/// it). Returns `SPINDLE_EEMPTY` once every task has come out;
/// `SPINDLE_ETIMEDOUT` for each task not done at the time limit, after the
/// ones that were. A cancellation point: `SPINDLE_ECANCELED`, and the
/// iteration goes on. `SPINDLE_EBUSY` if another task is in `next` on the
/// same iteration.
///
/// # Safety
/// `iteration` is NULL or live; `out` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_as_completed_next(
    iteration: *mut spindle_as_completed,
    out: *mut *mut spindle_task,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(iteration) = (unsafe { iteration.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        if iteration
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return SPINDLE_EBUSY;
        }
        let _next = Next(&iteration.busy);
        // SAFETY: `busy` gives this call the only access to `tasks`.
        let tasks = unsafe { &mut *iteration.tasks.get() };
        match block_on(std::future::poll_fn(|cx| tasks.poll_next(cx))) {
            Ok(Some(Ok(task))) => {
                // SAFETY: per the contract.
                unsafe { spindle_task::write_out(out, task) };
                SPINDLE_OK
            }
            Ok(Some(Err(e))) => blocking_status(Err(e)),
            Ok(None) => SPINDLE_EEMPTY,
            Err(code) => code,
        }
    })
}

/// Frees an iteration (the tasks keep running). `SPINDLE_EBUSY` (nothing
/// freed) while a task is in `spindle_as_completed_next` on it.
///
/// # Safety
/// `iteration` is NULL or live, not used after a successful free.
#[no_mangle]
pub unsafe extern "C" fn spindle_as_completed_free(iteration: *mut spindle_as_completed) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        match unsafe { iteration.as_ref() } {
            None => SPINDLE_EINVAL,
            Some(i) if i.busy.load(Ordering::Acquire) => SPINDLE_EBUSY,
            Some(_) => {
                // SAFETY: made by `spindle_as_completed_new`, freed once.
                drop(unsafe { Box::from_raw(iteration) });
                SPINDLE_OK
            }
        }
    })
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use crate::ffi::sync::test_util::{run_c, spawn_c, P};
    use crate::ffi::task::{
        spindle_sleep, spindle_task_cancel, spindle_task_free, spindle_task_id, spindle_task_join,
        spindle_task_result,
    };
    use crate::ffi::{SPINDLE_ENOTASK, SPINDLE_ESTATE, SPINDLE_ETIMEDOUT};
    use std::ptr;

    /// A task that sleeps `seconds`, then returns `value` (or fails with
    /// `code` if not 0).
    fn task(seconds: f64, value: usize, code: c_int) -> *mut spindle_task {
        spawn_c(move || match spindle_sleep(seconds) {
            0 if code == 0 => Ok(value),
            0 => Err(code),
            cancelled => Err(cancelled),
        })
        .get()
    }

    fn free_all(tasks: &[*mut spindle_task]) {
        for &task in tasks {
            // SAFETY: live handles, freed once.
            unsafe {
                spindle_task_cancel(task, ptr::null(), ptr::null_mut());
                assert_eq!(spindle_task_free(task), 0);
            }
        }
    }

    fn id(task: *const spindle_task) -> u64 {
        let mut id = 0;
        // SAFETY: a live handle; a valid out-pointer.
        assert_eq!(unsafe { spindle_task_id(task, &mut id) }, 0);
        id
    }

    #[test]
    fn gather_gives_the_results_in_argument_order() {
        let (code, _) = run_c(|| {
            let tasks = [task(0.03, 1, 0), task(0.01, 2, 0), task(0.02, 3, 0)];
            let mut results = [ptr::null_mut(); 3];
            // SAFETY: three live handles; three result slots.
            let code =
                unsafe { spindle_gather(tasks.as_ptr(), 3, results.as_mut_ptr(), ptr::null_mut()) };
            assert_eq!(code, 0);
            assert_eq!(results.map(|r| r as usize), [1, 2, 3]);
            // The results stay in the tasks, as in asyncio.
            let mut again = ptr::null_mut();
            // SAFETY: a live handle; a valid out-pointer.
            assert_eq!(unsafe { spindle_task_result(tasks[0], &mut again) }, 0);
            assert_eq!(again as usize, 1);
            for _ in 0..2 {
                let mut joined = ptr::null_mut();
                // SAFETY: a live handle; a valid out-pointer.
                assert_eq!(unsafe { spindle_task_join(tasks[1], &mut joined) }, 0);
                assert_eq!(joined as usize, 2);
            }
            free_all(&tasks);
            // A gather of nothing.
            // SAFETY: no handles are read.
            assert_eq!(
                unsafe { spindle_gather(ptr::null(), 0, ptr::null_mut(), ptr::null_mut()) },
                0
            );
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn gather_returns_the_first_failure_or_every_status_with_codes() {
        let (code, _) = run_c(|| {
            let tasks = [task(0.05, 1, 0), task(0.005, 0, 42), task(0.01, 3, 0)];
            let mut results = [ptr::null_mut(); 3];
            // SAFETY: three live handles; three result slots.
            let code =
                unsafe { spindle_gather(tasks.as_ptr(), 3, results.as_mut_ptr(), ptr::null_mut()) };
            assert_eq!(code, 42);
            // The others were left running.
            let mut result = ptr::null_mut();
            // SAFETY: a live handle.
            assert_eq!(
                unsafe { spindle_task_result(tasks[0], &mut result) },
                SPINDLE_ESTATE
            );
            free_all(&tasks);

            let tasks = [task(0.03, 1, 0), task(0.005, 0, 42), task(0.01, 3, 0)];
            let mut codes = [-100; 3];
            // SAFETY: three live handles; three slots each.
            let code = unsafe {
                spindle_gather(tasks.as_ptr(), 3, results.as_mut_ptr(), codes.as_mut_ptr())
            };
            assert_eq!(code, 0);
            assert_eq!(codes, [0, 42, 0]);
            assert_eq!(results.map(|r| r as usize), [1, 0, 3]);
            free_all(&tasks);
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn gather_refuses_bad_arrays_and_needs_a_task() {
        let mut codes = [0; 1];
        // SAFETY: NULL arrays and entries are refused before any use.
        unsafe {
            assert_eq!(
                spindle_gather(ptr::null(), 1, ptr::null_mut(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            let tasks = [ptr::null_mut::<spindle_task>()];
            assert_eq!(
                spindle_gather(tasks.as_ptr(), 1, ptr::null_mut(), codes.as_mut_ptr()),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_gather(ptr::null(), 0, ptr::null_mut(), ptr::null_mut()),
                SPINDLE_ENOTASK
            );
        }
    }

    #[test]
    fn wait_splits_the_tasks_by_return_when_and_timeout() {
        let (code, _) = run_c(|| {
            let tasks = [task(0.2, 1, 0), task(0.005, 2, 0), task(0.3, 3, 0)];
            let mut done = [-1; 3];
            let mut count = usize::MAX;
            // SAFETY: three live handles; three flags.
            unsafe {
                let code = spindle_wait(
                    tasks.as_ptr(),
                    3,
                    SPINDLE_FIRST_COMPLETED,
                    -1.0,
                    done.as_mut_ptr(),
                    &mut count,
                );
                assert_eq!(code, 0);
                assert_eq!((done, count), ([0, 1, 0], 1));
                // A timeout is no error: fewer are done.
                let code = spindle_wait(
                    tasks.as_ptr(),
                    3,
                    SPINDLE_ALL_COMPLETED,
                    0.01,
                    done.as_mut_ptr(),
                    &mut count,
                );
                assert_eq!(code, 0);
                assert_eq!((done, count), ([0, 1, 0], 1));
            }
            free_all(&tasks);

            let failing = task(0.01, 0, 7);
            let tasks = [task(0.3, 1, 0), failing, failing, task(0.005, 3, 0)];
            // SAFETY: four live handles (one twice); four flags.
            unsafe {
                let code = spindle_wait(
                    tasks.as_ptr(),
                    4,
                    SPINDLE_FIRST_EXCEPTION,
                    -1.0,
                    done.as_mut_ptr(),
                    &mut count,
                );
                assert_eq!(code, 0);
                let mut flags = [-1; 4];
                assert_eq!(
                    spindle_wait(
                        tasks.as_ptr(),
                        4,
                        SPINDLE_FIRST_EXCEPTION,
                        0.0,
                        flags.as_mut_ptr(),
                        &mut count
                    ),
                    0
                );
                assert_eq!((flags, count), ([0, 1, 1, 1], 3));
                assert_eq!(spindle_task_result(failing, ptr::null_mut()), 7);
            }
            free_all(&[tasks[0], failing, tasks[3]]);

            let tasks = [task(0.01, 1, 0), task(0.02, 2, 0)];
            // SAFETY: two live handles; NULL outputs.
            unsafe {
                assert_eq!(
                    spindle_wait(
                        tasks.as_ptr(),
                        2,
                        SPINDLE_ALL_COMPLETED,
                        5.0,
                        ptr::null_mut(),
                        &mut count
                    ),
                    0
                );
                assert_eq!(count, 2);
                assert_eq!(
                    spindle_wait(tasks.as_ptr(), 2, 3, -1.0, ptr::null_mut(), ptr::null_mut()),
                    SPINDLE_EINVAL
                );
                assert_eq!(
                    spindle_wait(
                        tasks.as_ptr(),
                        0,
                        SPINDLE_ALL_COMPLETED,
                        -1.0,
                        ptr::null_mut(),
                        ptr::null_mut()
                    ),
                    SPINDLE_EINVAL
                );
                assert_eq!(
                    spindle_wait(
                        tasks.as_ptr(),
                        2,
                        SPINDLE_ALL_COMPLETED,
                        f64::NAN,
                        ptr::null_mut(),
                        ptr::null_mut()
                    ),
                    SPINDLE_EINVAL
                );
            }
            free_all(&tasks);
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn as_completed_yields_the_tasks_as_they_finish() {
        let (code, _) = run_c(|| {
            let tasks = [task(0.06, 1, 0), task(0.01, 2, 0), task(0.03, 3, 0)];
            let mut iteration = ptr::null_mut();
            // SAFETY: three live handles; a valid out-pointer.
            assert_eq!(
                unsafe { spindle_as_completed_new(tasks.as_ptr(), 3, -1.0, &mut iteration) },
                0
            );
            let iteration = P(iteration);
            let mut order = Vec::new();
            loop {
                let mut next = ptr::null_mut();
                // SAFETY: a live iteration; a valid out-pointer.
                match unsafe { spindle_as_completed_next(iteration.get(), &mut next) } {
                    0 => {
                        // The same task, so the same address as the handle
                        // passed in; but a reference of its own.
                        assert!(tasks.contains(&next), "as_completed gave another task");
                        let mut result = ptr::null_mut();
                        // SAFETY: a new live handle, freed right after.
                        unsafe {
                            assert_eq!(spindle_task_result(next, &mut result), 0);
                            assert_eq!(spindle_task_free(next), 0);
                        }
                        order.push(result as usize);
                    }
                    SPINDLE_EEMPTY => break,
                    code => return Err(code),
                }
            }
            assert_eq!(order, [2, 3, 1]);
            for (&task, expected) in tasks.iter().zip([1, 2, 3]) {
                let mut result = ptr::null_mut();
                // SAFETY: the handles passed in are still live: freeing the
                // ones the iteration gave did not free them.
                assert_eq!(unsafe { spindle_task_result(task, &mut result) }, 0);
                assert_eq!(result as usize, expected);
            }
            // SAFETY: a live iteration.
            unsafe {
                assert_eq!(
                    spindle_as_completed_next(iteration.get(), ptr::null_mut()),
                    SPINDLE_EEMPTY
                );
                assert_eq!(spindle_as_completed_free(iteration.get()), 0);
            }
            free_all(&tasks);
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn as_completed_times_out_the_tasks_not_done_in_time() {
        let (code, _) = run_c(|| {
            let (fast, slow) = (task(0.005, 1, 0), task(10.0, 2, 0));
            let tasks = [slow, fast, fast];
            let mut iteration = ptr::null_mut();
            // SAFETY: live handles; a valid out-pointer.
            assert_eq!(
                unsafe { spindle_as_completed_new(tasks.as_ptr(), 3, 0.05, &mut iteration) },
                0
            );
            let mut next = ptr::null_mut();
            // SAFETY: a live iteration; a valid out-pointer.
            unsafe {
                assert_eq!(spindle_as_completed_next(iteration, &mut next), 0);
                assert_eq!(id(next), id(fast));
                assert_eq!(spindle_task_free(next), 0);
                // The duplicate comes out once; the slow one times out.
                assert_eq!(
                    spindle_as_completed_next(iteration, &mut next),
                    SPINDLE_ETIMEDOUT
                );
                assert_eq!(
                    spindle_as_completed_next(iteration, &mut next),
                    SPINDLE_EEMPTY
                );
                assert_eq!(spindle_as_completed_free(iteration), 0);
            }
            // Nothing was cancelled.
            let mut result = ptr::null_mut();
            // SAFETY: a live handle.
            assert_eq!(
                unsafe { spindle_task_result(slow, &mut result) },
                SPINDLE_ESTATE
            );
            free_all(&[slow, fast]);
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn as_completed_refuses_bad_arguments_and_needs_a_task_to_wait() {
        let mut iteration = ptr::null_mut();
        // SAFETY: NULL pointers are refused before any use.
        unsafe {
            assert_eq!(
                spindle_as_completed_new(ptr::null(), 0, -1.0, ptr::null_mut()),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_as_completed_new(ptr::null(), 2, -1.0, &mut iteration),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_as_completed_new(ptr::null(), 0, f64::NAN, &mut iteration),
                SPINDLE_EINVAL
            );
            assert_eq!(
                spindle_as_completed_next(ptr::null_mut(), ptr::null_mut()),
                SPINDLE_EINVAL
            );
            assert_eq!(spindle_as_completed_free(ptr::null_mut()), SPINDLE_EINVAL);
            // An empty iteration, made outside a task: next needs one.
            assert_eq!(
                spindle_as_completed_new(ptr::null(), 0, 1.0, &mut iteration),
                0
            );
            assert_eq!(
                spindle_as_completed_next(iteration, ptr::null_mut()),
                SPINDLE_ENOTASK
            );
            assert_eq!(spindle_as_completed_free(iteration), 0);
        }
        let (code, _) = run_c(|| {
            let mut iteration = ptr::null_mut();
            // SAFETY: an empty array; valid out-pointers.
            unsafe {
                assert_eq!(
                    spindle_as_completed_new(ptr::null(), 0, -1.0, &mut iteration),
                    0
                );
                assert_eq!(
                    spindle_as_completed_next(iteration, ptr::null_mut()),
                    SPINDLE_EEMPTY
                );
                assert_eq!(spindle_as_completed_free(iteration), 0);
            }
            Ok(0)
        });
        assert_eq!(code, 0);
    }
}
