//! The runtime from C: options, create, run a main task, free.

use super::stack::StackPool;
use super::task::{
    spawn_c_task, spawn_c_task_in, spindle_arg_free_fn, spindle_task, spindle_task_fn, OwnedArg,
    TaskResult,
};
use super::{boundary, optional_str, SPINDLE_EINVAL, SPINDLE_ERUNTIME, SPINDLE_ESTATE};
use crate::runtime::{context, Runtime};
use std::ffi::{c_char, c_int, c_void};
use std::mem::{offset_of, size_of};
use std::sync::Arc;
use std::time::Duration;

/// The default usable size of a C task's stack.
pub const SPINDLE_DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Settings for `spindle_runtime_new`. Fill it with `spindle_options_init`
/// first, then change fields: new fields are added at the end, and
/// `struct_size` tells the library which ones the caller knows.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct spindle_options {
    /// `sizeof(spindle_options)` as the caller compiled it (set by
    /// `spindle_options_init`).
    pub struct_size: usize,
    /// Worker threads; 0 means one per available core.
    pub workers: u32,
    /// Most threads for `spindle_to_thread`; 0 means asyncio's default,
    /// `min(32, cores + 4)`.
    pub max_blocking_threads: u32,
    /// Usable bytes of each C task's stack; 0 means
    /// `SPINDLE_DEFAULT_STACK_SIZE`. Rounded up to whole pages, at least 16 KiB.
    pub stack_size: usize,
    /// Seconds that shutdown waits for cancelled tasks to finish their
    /// cleanup before it aborts them; negative means the default, 5 s.
    pub shutdown_timeout: f64,
    /// 1: tasks spawned from the runtime's tasks start eagerly (asyncio's
    /// `eager_task_factory`): `spindle_spawn` runs the new task until it
    /// first blocks, inside the call, and a task that never blocks is done
    /// when the call returns, without being queued. 0 (the default): they
    /// are queued and start later, as with `asyncio.create_task`. Tasks
    /// started from a thread that is not one of the runtime's workers
    /// (`spindle_runtime_run`) and by `spindle_runtime_spawn`, from any
    /// thread, are queued (as asyncio's `run_coroutine_threadsafe` never
    /// starts a task eagerly). Other values: `SPINDLE_EINVAL`.
    pub eager_tasks: u32,
}

impl Default for spindle_options {
    fn default() -> Self {
        spindle_options {
            struct_size: size_of::<spindle_options>(),
            workers: 0,
            max_blocking_threads: 0,
            stack_size: 0,
            shutdown_timeout: -1.0,
            eager_tasks: 0,
        }
    }
}

/// A runtime: worker threads, the I/O driver, timers, fiber stacks.
pub struct spindle_runtime {
    runtime: Option<Runtime>,
    stacks: Arc<StackPool>,
}

/// The size of the first version of `spindle_options` (up to
/// `shutdown_timeout`): every caller's struct has at least these bytes.
const FIRST_VERSION: usize = offset_of!(spindle_options, shutdown_timeout) + size_of::<f64>();

/// Fills `options`, a struct of `size` bytes (`sizeof *options` as the
/// caller compiled it), with the defaults and sets its `struct_size` to
/// `size`: the fields this library knows get their defaults, bytes beyond
/// them (a newer header's fields) are zeroed. The header's
/// `spindle_options_init(options)` is a macro that calls this with
/// `sizeof *(options)`.
///
/// `SPINDLE_EINVAL` if `options` is NULL or `size` is smaller than the
/// first version of the struct.
///
/// # Safety
/// `options` is NULL or valid for writes of `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn spindle_options_init_sized(
    options: *mut spindle_options,
    size: usize,
) -> c_int {
    boundary(|| {
        if options.is_null() || size < FIRST_VERSION {
            return SPINDLE_EINVAL;
        }
        let defaults = spindle_options {
            struct_size: size,
            ..spindle_options::default()
        };
        let known = size.min(size_of::<spindle_options>());
        // SAFETY: `options` is valid for writes of `size` bytes per the
        // contract; `known` bytes come from `defaults`, the rest (if any)
        // is zeroed, all within those `size` bytes.
        unsafe {
            let out = options.cast::<u8>();
            std::ptr::copy_nonoverlapping(
                (&defaults as *const spindle_options).cast::<u8>(),
                out,
                known,
            );
            std::ptr::write_bytes(out.add(known), 0, size - known);
        }
        0
    })
}

/// Fills the first version of `options` (up to `shutdown_timeout`) with
/// the defaults, and `struct_size` with that size, so that the library
/// reads no later field: what programs compiled against the first header
/// call. The header's `spindle_options_init(options)` macro calls
/// `spindle_options_init_sized` instead, which fills every field the
/// caller knows.
///
/// # Safety
/// `options` is NULL (`SPINDLE_EINVAL`) or valid for writes of the first
/// version's bytes.
#[no_mangle]
pub unsafe extern "C" fn spindle_options_init(options: *mut spindle_options) -> c_int {
    // SAFETY: the same contract, for the first version's size.
    boundary(|| unsafe { spindle_options_init_sized(options, FIRST_VERSION) })
}

/// Reads caller options of any (known) size over the defaults.
///
/// # Safety
/// `options` is NULL or points to `struct_size` readable bytes.
unsafe fn read_options(options: *const spindle_options) -> Result<spindle_options, c_int> {
    let mut merged = spindle_options::default();
    if options.is_null() {
        return Ok(merged);
    }
    // SAFETY: the first field is always present.
    let size = unsafe { options.cast::<usize>().read_unaligned() };
    if size < FIRST_VERSION {
        return Err(SPINDLE_EINVAL);
    }
    let known = size.min(size_of::<spindle_options>());
    // SAFETY: the caller's struct has `size` readable bytes; we copy the
    // part both sides know.
    unsafe {
        std::ptr::copy_nonoverlapping(
            options.cast::<u8>(),
            (&mut merged as *mut spindle_options).cast::<u8>(),
            known,
        );
    }
    Ok(merged)
}

/// Creates a runtime and starts its workers. `options` may be NULL for
/// the defaults.
///
/// Returns `SPINDLE_EINVAL` for bad options, `SPINDLE_ERUNTIME` if the
/// threads or the I/O driver could not be started.
///
/// # Safety
/// `options` is NULL or a `spindle_options` filled by
/// `spindle_options_init`; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_runtime_new(
    options: *const spindle_options,
    out: *mut *mut spindle_runtime,
) -> c_int {
    boundary(|| {
        if out.is_null() {
            return SPINDLE_EINVAL;
        }
        // SAFETY: per the contract.
        let options = match unsafe { read_options(options) } {
            Ok(options) => options,
            Err(code) => return code,
        };
        let mut builder = Runtime::builder();
        if options.workers > 0 {
            builder = builder.worker_threads(options.workers as usize);
        }
        if options.max_blocking_threads > 0 {
            builder = builder.max_blocking_threads(options.max_blocking_threads as usize);
        }
        if options.shutdown_timeout >= 0.0 {
            match Duration::try_from_secs_f64(options.shutdown_timeout) {
                Ok(timeout) => builder = builder.shutdown_timeout(timeout),
                Err(_) => return SPINDLE_EINVAL,
            }
        } else if options.shutdown_timeout.is_nan() {
            return SPINDLE_EINVAL;
        }
        match options.eager_tasks {
            0 => {}
            1 => builder = builder.eager_tasks(true),
            _ => return SPINDLE_EINVAL,
        }
        let runtime = match builder.build() {
            Ok(runtime) => runtime,
            Err(e) => return super::code_of(&e),
        };
        let stack_size = match options.stack_size {
            0 => SPINDLE_DEFAULT_STACK_SIZE,
            size => size,
        };
        let handle = Box::new(spindle_runtime {
            runtime: Some(runtime),
            stacks: StackPool::new(stack_size),
        });
        // SAFETY: checked non-null; valid for writes per the contract.
        unsafe { out.write(Box::into_raw(handle)) };
        0
    })
}

/// Runs `main(arg, &result)` as a C task and blocks the calling thread
/// until it ends. Returns what `spindle_task_join` would: 0 (and
/// `*result`), `SPINDLE_ECANCELED`, or the task's own failure code. The
/// runtime keeps running other tasks afterwards.
///
/// `SPINDLE_ESTATE` when called from inside a task (await a task there).
///
/// # Safety
/// `runtime` is a live runtime; `main` a valid task function; `result` is
/// NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_runtime_run(
    runtime: *mut spindle_runtime,
    main: spindle_task_fn,
    arg: *mut c_void,
    result: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        // SAFETY: NULL or live per the contract.
        let Some(rt) = (unsafe { runtime.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        if context::with_worker(|w| w.is_some()) {
            return SPINDLE_ESTATE;
        }
        let Some(runtime) = rt.runtime.as_ref() else {
            return SPINDLE_ERUNTIME;
        };
        let task = {
            let _entered = runtime.handle().enter();
            match spawn_c_task(
                &rt.stacks,
                main,
                OwnedArg::new(arg, None),
                Some("main".into()),
            ) {
                Ok(task) => task,
                Err(code) => return code,
            }
        };
        let outcome = runtime.block_on(task);
        // SAFETY: NULL or valid for writes per the contract.
        unsafe { TaskResult(outcome).write_to(result) }
    })
}

/// Spawns a C task on `runtime` from any thread (inside a task,
/// `spindle_spawn` is enough). `name` may be NULL; `out` may be NULL to
/// detach the task. `arg` stays the caller's (see `spindle_spawn`). The
/// task is queued, never started inside the call, even on a runtime with
/// `eager_tasks` (asyncio's `run_coroutine_threadsafe`).
///
/// # Safety
/// `runtime` is a live runtime; `name` is NULL or a C string; `out` is NULL
/// or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_runtime_spawn(
    runtime: *mut spindle_runtime,
    func: spindle_task_fn,
    arg: *mut c_void,
    name: *const c_char,
    out: *mut *mut spindle_task,
) -> c_int {
    // SAFETY: the same contract.
    boundary(|| unsafe { spindle_runtime_spawn_owned(runtime, func, arg, None, name, out) })
}

/// `spindle_runtime_spawn`, taking ownership of `arg` as
/// `spindle_spawn_owned` does: either `func` runs with it or
/// `arg_free(arg)` is called, exactly once (failed calls included).
///
/// # Safety
/// As `spindle_runtime_spawn`; `arg_free` is NULL or a function safe to
/// call with `arg` from any thread.
#[no_mangle]
pub unsafe extern "C" fn spindle_runtime_spawn_owned(
    runtime: *mut spindle_runtime,
    func: spindle_task_fn,
    arg: *mut c_void,
    arg_free: spindle_arg_free_fn,
    name: *const c_char,
    out: *mut *mut spindle_task,
) -> c_int {
    let arg = OwnedArg::new(arg, arg_free);
    boundary(move || {
        // SAFETY: NULL or live per the contract.
        let Some(rt) = (unsafe { runtime.as_ref() }) else {
            return SPINDLE_EINVAL;
        };
        let Some(runtime) = rt.runtime.as_ref() else {
            return SPINDLE_ERUNTIME;
        };
        let _entered = runtime.handle().enter();
        // SAFETY: per the contract.
        let name = unsafe { optional_str(name) };
        let queued = spawn_c_task_in(&rt.stacks, func, arg, name, |builder, fiber| {
            builder.eager_start(false).try_spawn(fiber)
        });
        // SAFETY: `out` per the contract.
        unsafe { spindle_task::hand_out(queued, out) }
    })
}

/// Shuts the runtime down: cancels the tasks still running, waits up to the
/// shutdown timeout for their cleanup, stops the workers, frees it.
/// `SPINDLE_ESTATE` (and nothing freed) when called from inside a task of
/// any runtime.
///
/// # Safety
/// `runtime` is NULL or a runtime not freed yet; it must not be used after.
#[no_mangle]
pub unsafe extern "C" fn spindle_runtime_free(runtime: *mut spindle_runtime) -> c_int {
    boundary(|| {
        if runtime.is_null() {
            return SPINDLE_EINVAL;
        }
        if context::with_worker(|w| w.is_some()) {
            return SPINDLE_ESTATE;
        }
        // SAFETY: a live runtime made by `spindle_runtime_new`, freed once.
        drop(unsafe { Box::from_raw(runtime) });
        0
    })
}

/// Creates a runtime with `options` (NULL for defaults), runs `main` as in
/// `spindle_runtime_run`, and frees the runtime (asyncio's `asyncio.run`).
///
/// # Safety
/// As for `spindle_runtime_new` and `spindle_runtime_run`.
#[no_mangle]
pub unsafe extern "C" fn spindle_run(
    options: *const spindle_options,
    main: spindle_task_fn,
    arg: *mut c_void,
    result: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        let mut runtime = std::ptr::null_mut();
        // SAFETY: per the contract; `runtime` is a valid out-pointer.
        let created = unsafe { spindle_runtime_new(options, &mut runtime) };
        if created != 0 {
            return created;
        }
        // SAFETY: just created; freed right after.
        let code = unsafe { spindle_runtime_run(runtime, main, arg, result) };
        // SAFETY: created above, not used after.
        unsafe { spindle_runtime_free(runtime) };
        code
    })
}
