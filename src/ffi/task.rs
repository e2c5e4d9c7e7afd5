//! C tasks: spawn, join, cancel, inspect; sleep and yield.

use super::fiber::{self, Fiber};
use super::stack::StackPool;
use super::{
    block_on, boundary, code_of, limit_from_secs, optional_str, write_out, SPINDLE_ECANCELED,
    SPINDLE_EINVAL, SPINDLE_ENOMEM, SPINDLE_ENOTASK, SPINDLE_ESTATE,
};
use crate::error::{Error, Result};
use crate::task::raw::{Header, RawTask};
use crate::task::{self, AnyTask, Join, Task};
use std::ffi::{c_char, c_int, c_void};
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;

/// A C task's function: runs with `arg`; on success stores its result in
/// `*result` (NULL unless set) and returns 0. Any other value fails the
/// task: `SPINDLE_ECANCELED` ends it cancelled (return it after cleaning
/// up when a blocking call reported a cancellation), a positive value is
/// the task's own failure code, handed to whoever joins it.
pub type spindle_task_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, result: *mut *mut c_void) -> c_int>;

/// A handle to a task. Freeing it detaches the task, which keeps running.
///
/// Handles to one task have the same address (`spindle_as_completed_next`
/// gives back the pointers that were passed in; `spindle_task_current`
/// gives the same pointer each time), but every handle a call hands out is
/// a reference of its own: free each one once, even when two compare equal.
// Opaque, and never built: a handle is the address of the task itself and
// stands for one reference to it, so handing one out allocates nothing.
pub struct spindle_task {
    _opaque: [u8; 0],
}

impl spindle_task {
    /// Hands `task` to C through the out-pointer `out`: its reference
    /// becomes the handle when `out` is non-NULL; it is dropped (the task
    /// detached) when `out` is NULL, so a NULL out-pointer leaks nothing.
    ///
    /// # Safety
    /// `out` is NULL or valid for writes.
    pub(crate) unsafe fn write_out(out: *mut *mut spindle_task, task: Task<usize>) {
        if !out.is_null() {
            let task = ManuallyDrop::new(task);
            let handle = task.as_any().raw.as_ptr().cast_mut().cast::<spindle_task>();
            // SAFETY: non-null and valid for writes per the caller.
            unsafe { out.write(handle) };
        }
    }

    /// Ends a spawn call: on success the task goes to C through `out` (see
    /// [`write_out`](Self::write_out)) and the status is 0; otherwise the
    /// status is the spawn's error code.
    ///
    /// # Safety
    /// `out` is NULL or valid for writes.
    pub(crate) unsafe fn hand_out(
        spawned: std::result::Result<Task<usize>, c_int>,
        out: *mut *mut spindle_task,
    ) -> c_int {
        match spawned {
            Ok(task) => {
                // SAFETY: per the caller.
                unsafe { spindle_task::write_out(out, task) };
                0
            }
            Err(code) => code,
        }
    }

    /// The task behind a handle argument, borrowed from the handle.
    ///
    /// # Safety
    /// `handle` is NULL or a live handle, which outlives the borrow.
    pub(crate) unsafe fn get<'a>(handle: *const spindle_task) -> Option<BorrowedTask<'a>> {
        (!handle.is_null()).then(|| BorrowedTask {
            // SAFETY: live per the caller; the reference stays the handle's:
            // the borrowed copy is never dropped.
            task: ManuallyDrop::new(unsafe { spindle_task::adopt(handle) }),
            _handle: PhantomData,
        })
    }

    /// Frees a handle: drops its reference.
    ///
    /// # Safety
    /// `handle` is a live handle, freed once.
    unsafe fn free(handle: *mut spindle_task) {
        // SAFETY: per the caller; the reference is dropped here, once.
        drop(unsafe { spindle_task::adopt(handle) });
    }

    /// The task a handle stands for, holding the handle's reference.
    ///
    /// # Safety
    /// `handle` is a live handle (a C task, of output `usize`); the caller
    /// decides what becomes of the reference.
    unsafe fn adopt(handle: *const spindle_task) -> Task<usize> {
        // SAFETY: per the caller, `handle` is a task's header.
        unsafe {
            Task::from_any(AnyTask::from_raw(RawTask::from_ptr(
                handle.cast::<Header>(),
            )))
        }
    }
}

/// A task seen through a C handle, without a reference of its own (the
/// handle's keeps the task alive). Derefs to the task; `clone` makes an
/// owned handle.
pub(crate) struct BorrowedTask<'a> {
    task: ManuallyDrop<Task<usize>>,
    _handle: PhantomData<&'a spindle_task>,
}

impl Deref for BorrowedTask<'_> {
    type Target = Task<usize>;

    fn deref(&self) -> &Task<usize> {
        &self.task
    }
}

/// A C task failed with its own (positive) code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskFailure {
    pub(crate) code: c_int,
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the C task failed with code {}", self.code)
    }
}

impl std::error::Error for TaskFailure {}

/// Frees the argument of a task whose function will never run with it:
/// the `arg_free` of the `_owned` spawn functions.
pub type spindle_arg_free_fn = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// A task's argument from the spawn call on: either handed to the task's
/// function ([`OwnedArg::into_arg`]) or, if that never happens, given to
/// its `arg_free` when dropped (the spawn failed, the task was cancelled
/// before it started, its runtime shut down first). Exactly one of the two.
pub(crate) struct OwnedArg {
    arg: SendPtr,
    free: spindle_arg_free_fn,
}

impl OwnedArg {
    /// `free` NULL: the caller keeps ownership (the plain spawn functions).
    pub(crate) fn new(arg: *mut c_void, free: spindle_arg_free_fn) -> OwnedArg {
        OwnedArg {
            arg: SendPtr(arg),
            free,
        }
    }

    /// The argument, for the task's function: `arg_free` will not be called.
    fn into_arg(mut self) -> *mut c_void {
        self.free = None;
        self.arg.0
    }
}

impl Drop for OwnedArg {
    fn drop(&mut self) {
        if let Some(free) = self.free.take() {
            // SAFETY: the C program gave this function to free this argument
            // when the task's function never runs, which is now certain.
            unsafe { free(self.arg.0) };
        }
    }
}

/// A C pointer that moves with its task (C owns what it points to).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut c_void);

// SAFETY: the pointer is handed back to C untouched; C decides what may be
// shared between its tasks.
unsafe impl Send for SendPtr {}

/// The outcome of a task as C sees it.
pub(crate) struct TaskResult(pub(crate) Result<usize>);

impl TaskResult {
    /// Writes the result pointer on success; returns the status. A
    /// cancellation is remembered, so a task that returns
    /// `SPINDLE_ECANCELED` ends with it.
    ///
    /// # Safety
    /// `out` is NULL or valid for writes.
    pub(crate) unsafe fn write_to(self, out: *mut *mut c_void) -> c_int {
        match self.0 {
            Ok(value) => {
                // SAFETY: per the caller.
                unsafe { write_out(out, value as *mut c_void) };
                0
            }
            Err(e) => {
                if e.is_cancelled() {
                    fiber::note_cancel(&e);
                }
                code_of(&e)
            }
        }
    }
}

/// Turns a blocking call's result into a status (0, or the error's code,
/// remembering a cancellation).
// Inlined: it is on the path of every blocking call. Left to the compiler
// it was once split out, and C's yield went from 62 to 75 ns a round trip.
#[inline]
pub(crate) fn blocking_status(result: Result<()>) -> c_int {
    // SAFETY: NULL out-pointer.
    unsafe { TaskResult(result.map(|()| 0)).write_to(std::ptr::null_mut()) }
}

/// Spawns `func(arg)` as a C task on the current runtime.
pub(crate) fn spawn_c_task(
    stacks: &Arc<StackPool>,
    func: spindle_task_fn,
    arg: OwnedArg,
    name: Option<String>,
) -> std::result::Result<Task<usize>, c_int> {
    spawn_c_task_in(stacks, func, arg, name, |builder, fiber| {
        builder.try_spawn(fiber)
    })
}

/// Makes the fiber of a C task and hands it to `spawn` (a plain spawn, or a
/// task group's).
pub(crate) fn spawn_c_task_in(
    stacks: &Arc<StackPool>,
    func: spindle_task_fn,
    arg: OwnedArg,
    name: Option<String>,
    spawn: impl FnOnce(task::Builder, Fiber) -> Result<Task<usize>>,
) -> std::result::Result<Task<usize>, c_int> {
    let Some(func) = func else {
        return Err(SPINDLE_EINVAL);
    };
    let body = move || {
        let arg = arg.into_arg();
        let mut result: *mut c_void = std::ptr::null_mut();
        // SAFETY: the C program gave this function and argument to run
        // as a task; `result` is a valid out-pointer.
        let code = unsafe { func(arg, &mut result) };
        match code {
            0 => Ok(result as usize),
            SPINDLE_ECANCELED => Err(fiber::take_cancel()),
            code => Err(Error::other(TaskFailure { code })),
        }
    };
    let fiber = Fiber::new(stacks, body).map_err(|_| SPINDLE_ENOMEM)?;
    // Eager if the runtime says so (`spindle_options::eager_tasks`): the
    // first step then resumes the new fiber from inside this call. Only
    // the resume's frames go on the spawner's stack; the new task's C code
    // runs on its own, so nested eager spawns do not pile up on one stack.
    let mut builder = task::Builder::new();
    if let Some(name) = name {
        builder = builder.name(name);
    }
    spawn(builder, fiber).map_err(|e| code_of(&e))
}

/// Spawns `func(arg)` as a C task (asyncio's `create_task`), named `name`
/// (NULL for the default `Task-<id>`). Call from a C task; `out` receives
/// a handle to free with `spindle_task_free`, or is NULL to detach.
///
/// `arg` stays the caller's: if the task never starts (cancelled first, or
/// its runtime shut down), nothing tells the caller; `spindle_spawn_owned`
/// hands over an argument that must be freed.
///
/// # Safety
/// `func` is a valid task function; `name` NULL or a C string; `out` NULL
/// or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_spawn(
    func: spindle_task_fn,
    arg: *mut c_void,
    name: *const c_char,
    out: *mut *mut spindle_task,
) -> c_int {
    // SAFETY: the same contract.
    boundary(|| unsafe { spindle_spawn_owned(func, arg, None, name, out) })
}

/// `spindle_spawn`, taking ownership of `arg`: from this call on, either
/// `func` runs with it or `arg_free(arg)` is called, exactly once. Called
/// when the task was cancelled before it started, when its runtime shut
/// down first, and when this call fails (any error code, bad arguments
/// included). It runs on whichever thread drops the task, outside any task:
/// it must only free (no spindle calls). `arg_free` NULL: as `spindle_spawn`.
///
/// # Safety
/// As `spindle_spawn`; `arg_free` is NULL or a function safe to call with
/// `arg` from any thread.
#[no_mangle]
pub unsafe extern "C" fn spindle_spawn_owned(
    func: spindle_task_fn,
    arg: *mut c_void,
    arg_free: spindle_arg_free_fn,
    name: *const c_char,
    out: *mut *mut spindle_task,
) -> c_int {
    let arg = OwnedArg::new(arg, arg_free);
    boundary(move || {
        // Off a fiber, the closure and the argument in it are dropped
        // unused (`arg_free` runs).
        fiber::with_current_pool(|stacks| {
            // SAFETY: per the contract.
            let name = unsafe { optional_str(name) };
            // SAFETY: `out` per the contract.
            unsafe { spindle_task::hand_out(spawn_c_task(stacks, func, arg, name), out) }
        })
        .unwrap_or(SPINDLE_ENOTASK)
    })
}

/// Waits until `task` ends (asyncio's `await task`). Returns 0 and stores
/// its result; `SPINDLE_ECANCELED` if it was cancelled — or if the caller
/// was, in which case `task` is cancelled too, as in asyncio; or the task's
/// own failure code (positive).
///
/// # Safety
/// `task` is NULL or a live handle; `result` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_join(
    task: *const spindle_task,
    result: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        let Some(task) = (unsafe { spindle_task::get(task) }) else {
            return SPINDLE_EINVAL;
        };
        fiber::run_awaited_in_place(task.as_any().raw);
        match block_on(Join::cloning(task.clone())) {
            // SAFETY: per the contract.
            Ok(outcome) => unsafe { TaskResult(outcome).write_to(result) },
            Err(code) => code,
        }
    })
}

/// Asks `task` to cancel (asyncio's `task.cancel(msg)`); `message` may be
/// NULL. `*requested` (if not NULL) is 1 if the request was recorded, 0 if
/// the task was already done.
///
/// # Safety
/// `task` is NULL or a live handle; `message` NULL or a C string;
/// `requested` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_cancel(
    task: *const spindle_task,
    message: *const c_char,
    requested: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        let Some(task) = (unsafe { spindle_task::get(task) }) else {
            return SPINDLE_EINVAL;
        };
        // SAFETY: per the contract.
        let recorded = match unsafe { optional_str(message) } {
            Some(message) => task.cancel_with(message),
            None => task.cancel(),
        };
        // SAFETY: per the contract.
        unsafe { write_out(requested, c_int::from(recorded)) };
        0
    })
}

/// Stores 1 in `*done` if `task` has ended (any way), else 0.
///
/// # Safety
/// `task` is NULL or a live handle; `done` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_done(task: *const spindle_task, done: *mut c_int) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        match unsafe { spindle_task::get(task) } {
            Some(task) if !done.is_null() => {
                // SAFETY: checked non-null.
                unsafe { done.write(c_int::from(task.done())) };
                0
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// Stores 1 in `*cancelled` if `task` ended cancelled, else 0.
///
/// # Safety
/// `task` is NULL or a live handle; `cancelled` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_cancelled(
    task: *const spindle_task,
    cancelled: *mut c_int,
) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        match unsafe { spindle_task::get(task) } {
            Some(task) if !cancelled.is_null() => {
                // SAFETY: checked non-null.
                unsafe { cancelled.write(c_int::from(task.cancelled())) };
                0
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// The outcome of a task that has ended, without waiting (asyncio's
/// `task.result()`): as `spindle_task_join`, or `SPINDLE_ESTATE` if it is
/// still running. Callable from any thread.
///
/// # Safety
/// `task` is NULL or a live handle; `result` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_result(
    task: *const spindle_task,
    result: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        let Some(task) = (unsafe { spindle_task::get(task) }) else {
            return SPINDLE_EINVAL;
        };
        if !task.done() {
            return SPINDLE_ESTATE;
        }
        // SAFETY: per the contract.
        unsafe { TaskResult(task.result()).write_to(result) }
    })
}

/// A new handle to the task running this code (`SPINDLE_ENOTASK` outside
/// a task). Free it with `spindle_task_free`.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_current(out: *mut *mut spindle_task) -> c_int {
    boundary(|| {
        if out.is_null() {
            return SPINDLE_EINVAL;
        }
        if !fiber::in_fiber() {
            return SPINDLE_ENOTASK;
        }
        match fiber::current_task() {
            Some(task) => {
                // SAFETY: checked non-null.
                unsafe { spindle_task::write_out(out, task) };
                0
            }
            None => SPINDLE_ENOTASK,
        }
    })
}

/// The task's id (unique in the process, increasing).
///
/// # Safety
/// `task` is NULL or a live handle; `id` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_id(task: *const spindle_task, id: *mut u64) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        match unsafe { spindle_task::get(task) } {
            Some(task) if !id.is_null() => {
                // SAFETY: checked non-null.
                unsafe { id.write(task.id().as_u64()) };
                0
            }
            _ => SPINDLE_EINVAL,
        }
    })
}

/// Copies the task's name, NUL-terminated and cut to fit, into `buffer` of
/// `capacity` bytes; `*length` (if not NULL) receives the full length
/// without the NUL.
///
/// # Safety
/// `task` is NULL or a live handle; `buffer` valid for `capacity` bytes
/// (may be NULL when `capacity` is 0); `length` NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_name(
    task: *const spindle_task,
    buffer: *mut c_char,
    capacity: usize,
    length: *mut usize,
) -> c_int {
    boundary(|| {
        // SAFETY: per the contract.
        let Some(task) = (unsafe { spindle_task::get(task) }) else {
            return SPINDLE_EINVAL;
        };
        if buffer.is_null() && capacity > 0 {
            return SPINDLE_EINVAL;
        }
        let name = task.name();
        // SAFETY: per the contract.
        unsafe { write_out(length, name.len()) };
        if capacity > 0 {
            let n = name.len().min(capacity - 1);
            // SAFETY: `buffer` has `capacity` bytes; we write n + 1 <= capacity.
            unsafe {
                std::ptr::copy_nonoverlapping(name.as_ptr(), buffer.cast::<u8>(), n);
                buffer.add(n).write(0);
            }
        }
        0
    })
}

/// Frees a task handle. The task keeps running (detached), as a Python
/// task does when its last reference goes.
///
/// # Safety
/// `task` is NULL or a live handle, not used after.
#[no_mangle]
pub unsafe extern "C" fn spindle_task_free(task: *mut spindle_task) -> c_int {
    boundary(|| {
        if task.is_null() {
            return SPINDLE_EINVAL;
        }
        // SAFETY: a live handle made by `write_out`, freed once.
        unsafe { spindle_task::free(task) };
        0
    })
}

/// Suspends the calling task for `seconds` (asyncio's `sleep`; 0 or less
/// yields once). A cancellation point: `SPINDLE_ECANCELED`.
#[no_mangle]
pub extern "C" fn spindle_sleep(seconds: f64) -> c_int {
    boundary(|| {
        let delay = match limit_from_secs(seconds) {
            Ok(delay) => delay.unwrap_or_default(),
            Err(code) => return code,
        };
        if delay.is_zero() {
            if let Some(result) = fiber::yield_in_place() {
                return blocking_status(result);
            }
        }
        match block_on(crate::time::sleep(delay)) {
            Ok(result) => blocking_status(result),
            Err(code) => code,
        }
    })
}

/// Lets the other ready tasks run (asyncio's `sleep(0)`). A cancellation
/// point. With nothing else to run first, the task goes on at once,
/// without a switch of stacks.
#[no_mangle]
pub extern "C" fn spindle_yield() -> c_int {
    boundary(|| {
        if let Some(result) = fiber::yield_in_place() {
            return blocking_status(result);
        }
        match block_on(crate::yield_now()) {
            Ok(result) => blocking_status(result),
            Err(code) => code,
        }
    })
}
