//! The C ABI: C tasks run as fibers on the work-stealing pool.
//!
//! This module is the only place with `extern "C"`; `include/spindle.h` is
//! generated from it by cbindgen (a test fails when the committed header is
//! stale).
//!
//! # Conventions
//! - Opaque handles allocated by the library, freed with `*_free`.
//! - Every function returns an `int`: 0 (`SPINDLE_OK`) or a negative
//!   `SPINDLE_E*` code; a joined task's own failure code is positive.
//!   Results go through out-pointers. `errno` is never used (it is
//!   thread-local and fibers migrate between threads).
//! - Every export runs inside [`boundary`]: a Rust panic becomes
//!   `SPINDLE_EPANIC` and never crosses into C.
//! - NULL where a handle is needed is `SPINDLE_EINVAL`; a blocking call
//!   from a thread that is not running a C task is `SPINDLE_ENOTASK`.
//! - Time is in seconds as a `double`, like asyncio; a negative timeout
//!   means no limit.
//!
//! # Fibers
//! A C task is a fiber ([`fiber`]) on a pooled stack ([`stack`]). A
//! blocking call polls the matching Rust future from the fiber and
//! suspends the fiber while it is pending; the worker runs other tasks
//! meanwhile, and the fiber may resume on another worker.

// The exported names are C's: `spindle_task`, not `SpindleTask`.
#![allow(non_camel_case_types)]

pub(crate) mod fiber;
mod flow;
mod io;
mod overflow;
mod queue;
mod runtime;
mod scope;
pub(crate) mod stack;
mod sync;
mod task;

use crate::error::{Error, ErrorKind};
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Success.
pub const SPINDLE_OK: c_int = 0;
/// An argument is invalid: a NULL handle or out-pointer, a bad value.
pub const SPINDLE_EINVAL: c_int = -1;
/// A blocking call was made from a thread that is not running a C task.
pub const SPINDLE_ENOTASK: c_int = -2;
/// The calling task was cancelled (or the awaited task was): clean up and
/// return `SPINDLE_ECANCELED` from the task function.
pub const SPINDLE_ECANCELED: c_int = -3;
/// A time limit passed.
pub const SPINDLE_ETIMEDOUT: c_int = -4;
/// A panic inside the library was caught at the boundary.
pub const SPINDLE_EPANIC: c_int = -5;
/// Out of memory (fiber stacks, handles).
pub const SPINDLE_ENOMEM: c_int = -6;
/// The runtime has shut down, or there is no runtime.
pub const SPINDLE_ERUNTIME: c_int = -7;
/// The object is not in a state that allows this (the result of a task
/// still running, a scope ended twice).
pub const SPINDLE_ESTATE: c_int = -8;
/// An operating-system error (a fd that cannot be watched, a thread that
/// cannot be started).
pub const SPINDLE_EIO: c_int = -9;
/// The handle is still in use (a queue with waiters, a group not waited).
pub const SPINDLE_EBUSY: c_int = -10;
/// A queue is full (non-blocking put).
pub const SPINDLE_EFULL: c_int = -11;
/// A queue is empty (non-blocking get), or an iteration is over.
pub const SPINDLE_EEMPTY: c_int = -12;
/// A barrier was broken, or a queue was shut down.
pub const SPINDLE_ESHUTDOWN: c_int = -13;
/// A task group failed: its children's failure codes are listed by
/// `spindle_group_errors`.
pub const SPINDLE_EGROUP: c_int = -14;
/// A task failed in a way that has no C code (a Rust error).
pub const SPINDLE_EFAILED: c_int = -15;

/// The message for a status code.
///
/// # Safety
/// None: any value is accepted. The string is static.
#[no_mangle]
pub extern "C" fn spindle_strerror(code: c_int) -> *const c_char {
    let message: &'static CStr = match code {
        SPINDLE_OK => c"success",
        SPINDLE_EINVAL => c"invalid argument",
        SPINDLE_ENOTASK => c"a blocking call made outside a C task",
        SPINDLE_ECANCELED => c"cancelled",
        SPINDLE_ETIMEDOUT => c"timed out",
        SPINDLE_EPANIC => c"internal panic caught at the library boundary",
        SPINDLE_ENOMEM => c"out of memory",
        SPINDLE_ERUNTIME => c"no runtime, or the runtime has shut down",
        SPINDLE_ESTATE => c"invalid state for this operation",
        SPINDLE_EIO => c"operating-system error",
        SPINDLE_EBUSY => c"the handle is still in use",
        SPINDLE_EFULL => c"the queue is full",
        SPINDLE_EEMPTY => c"the queue is empty",
        SPINDLE_ESHUTDOWN => c"shut down or broken",
        SPINDLE_EGROUP => c"a task group failed",
        SPINDLE_EFAILED => c"the task failed",
        code if code > 0 => c"a task's own failure code",
        _ => c"unknown status code",
    };
    message.as_ptr()
}

/// The library's version, `"major.minor.patch"`.
#[no_mangle]
pub extern "C" fn spindle_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(version) => version,
            Err(_) => panic!("the version has no interior NUL"),
        };
    VERSION.as_ptr()
}

/// Runs an export's body: a panic becomes `SPINDLE_EPANIC`; the forced
/// unwinding of a fiber being destroyed becomes `SPINDLE_ECANCELED`, so it
/// never unwinds through C frames. Always inlined: every frame between a C
/// task's code and its fiber's stack switch costs a mispredicted return
/// when the fiber resumes (the return predictor holds the other stack's
/// calls); without this frame, a yield between two C tasks took 85-87 ns
/// instead of 97-106 (one worker).
#[inline(always)]
pub(crate) fn boundary(body: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(code) => code,
        Err(_) if fiber::is_doomed() => SPINDLE_ECANCELED,
        Err(_) => SPINDLE_EPANIC,
    }
}

/// The status code of an error.
pub(crate) fn code_of(error: &Error) -> c_int {
    match error.kind() {
        ErrorKind::Cancelled => SPINDLE_ECANCELED,
        ErrorKind::Timeout => SPINDLE_ETIMEDOUT,
        ErrorKind::InvalidArgument => SPINDLE_EINVAL,
        ErrorKind::InvalidState => SPINDLE_ESTATE,
        ErrorKind::Runtime => SPINDLE_ERUNTIME,
        ErrorKind::Panicked => SPINDLE_EPANIC,
        ErrorKind::Io => SPINDLE_EIO,
        ErrorKind::Group => SPINDLE_EGROUP,
        _ => match error.downcast_ref::<task::TaskFailure>() {
            Some(failure) => failure.code,
            None => SPINDLE_EFAILED,
        },
    }
}

/// `Ok` as 0, an error as its code.
pub(crate) fn status(result: crate::Result<()>) -> c_int {
    match result {
        Ok(()) => SPINDLE_OK,
        Err(e) => code_of(&e),
    }
}

/// Runs `future` to completion from the current C task (suspending its
/// fiber while it is pending); `SPINDLE_ENOTASK` outside a C task.
pub(crate) fn block_on<F: std::future::Future + Send>(future: F) -> Result<F::Output, c_int> {
    fiber::block_on(future).ok_or(SPINDLE_ENOTASK)
}

/// Writes `value` through `out` if it is not NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null and valid for writes per the caller.
        unsafe { out.write(value) };
    }
}

/// Converts asyncio-style seconds (negative: no limit) into a limit.
pub(crate) fn limit_from_secs(seconds: f64) -> Result<Option<std::time::Duration>, c_int> {
    if seconds.is_nan() {
        return Err(SPINDLE_EINVAL);
    }
    if seconds < 0.0 {
        return Ok(None);
    }
    crate::time::duration_from_secs(seconds)
        .map(Some)
        .map_err(|_| SPINDLE_EINVAL)
}

/// A string argument: NULL is `None`; invalid UTF-8 is replaced.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
pub(crate) unsafe fn optional_str(s: *const c_char) -> Option<String> {
    // SAFETY: per the caller.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_turns_a_panic_into_epanic_and_passes_codes_through() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let caught = boundary(|| panic!("a bug inside the library"));
        std::panic::set_hook(previous);
        assert_eq!(caught, SPINDLE_EPANIC);
        assert_eq!(boundary(|| SPINDLE_ETIMEDOUT), SPINDLE_ETIMEDOUT);
        assert_eq!(boundary(|| 7), 7, "a task's own positive code");
    }

    #[test]
    fn every_code_has_its_own_message() {
        let codes = [
            SPINDLE_OK,
            SPINDLE_EINVAL,
            SPINDLE_ENOTASK,
            SPINDLE_ECANCELED,
            SPINDLE_ETIMEDOUT,
            SPINDLE_EPANIC,
        ];
        let unknown = spindle_strerror(-9999);
        for code in codes {
            assert_ne!(spindle_strerror(code), unknown, "code {code}");
        }
    }
}
