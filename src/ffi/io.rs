//! I/O from C: waiting until a file descriptor is ready
//! (`spindle_fd_wait`), and running blocking functions on the blocking
//! pool (`spindle_to_thread`).

use super::task::{blocking_status, SendPtr, TaskResult};
use super::{block_on, boundary, limit_from_secs, write_out, SPINDLE_EINVAL, SPINDLE_OK};
use crate::error::{Error, Result};
use crate::io::{AsyncFd, Interest};
use std::ffi::{c_int, c_short, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// `spindle_fd_wait` event: the descriptor can be read without blocking
/// (data, end of stream, or an error to report).
pub const SPINDLE_READABLE: c_int = 1;
/// `spindle_fd_wait` event: the descriptor can be written without blocking
/// (room, or an error to report).
pub const SPINDLE_WRITABLE: c_int = 2;
/// `spindle_fd_wait` result flag: the peer hung up (poll's `POLLHUP`).
pub const SPINDLE_HANGUP: c_int = 4;
/// `spindle_fd_wait` result flag: an error is pending on the descriptor
/// (poll's `POLLERR`).
pub const SPINDLE_FD_ERROR: c_int = 8;

/// A function run on the blocking pool by `spindle_to_thread`: gets its
/// `arg`, returns the result. It runs on an ordinary thread, where it may
/// block (read a file, call a blocking library) and use thread-locals.
pub type spindle_thread_fn = Option<unsafe extern "C-unwind" fn(arg: *mut c_void) -> *mut c_void>;

/// The descriptor a wait registers: the caller's own, or (when that one is
/// registered already, by a concurrent wait) a duplicate of it.
enum Watched {
    /// Borrowed: not closed here.
    Caller(RawFd),
    /// A duplicate made for this wait, closed after it.
    Duplicate(OwnedFd),
}

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Watched::Caller(fd) => *fd,
            Watched::Duplicate(fd) => fd.as_raw_fd(),
        }
    }
}

/// Registers `fd` with the current runtime's driver for `interest`.
fn register(fd: RawFd, interest: Interest) -> Result<AsyncFd<Watched>> {
    match AsyncFd::with_interest(Watched::Caller(fd), interest) {
        Err(e) if e.io_error().and_then(io::Error::raw_os_error) == Some(libc::EEXIST) => {
            // Another wait (or an AsyncFd) has this descriptor registered:
            // epoll takes a second descriptor for the same file.
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor number; no memory.
            let duplicate = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            if duplicate < 0 {
                return Err(Error::io(io::Error::last_os_error()));
            }
            // SAFETY: a new descriptor that nothing else owns.
            let duplicate = unsafe { OwnedFd::from_raw_fd(duplicate) };
            AsyncFd::with_interest(Watched::Duplicate(duplicate), interest)
        }
        registered => registered,
    }
}

/// What `poll(2)` reports for `fd` now, as `SPINDLE_*` flags limited to
/// `events` (plus `SPINDLE_HANGUP` and `SPINDLE_FD_ERROR`); 0 if it would
/// block.
fn ready_now(fd: RawFd, events: c_int) -> Result<c_int> {
    let mut wanted: c_short = 0;
    if events & SPINDLE_READABLE != 0 {
        wanted |= libc::POLLIN;
    }
    if events & SPINDLE_WRITABLE != 0 {
        wanted |= libc::POLLOUT;
    }
    let mut poll = libc::pollfd {
        fd,
        events: wanted,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd; a zero timeout does not block.
        if unsafe { libc::poll(&mut poll, 1, 0) } >= 0 {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(Error::io(error));
        }
    }
    let got = poll.revents;
    if got & libc::POLLNVAL != 0 {
        return Err(Error::io(io::Error::from_raw_os_error(libc::EBADF)));
    }
    let hangup = got & libc::POLLHUP != 0;
    let error = got & libc::POLLERR != 0;
    let mut ready = 0;
    if events & SPINDLE_READABLE != 0 && (got & libc::POLLIN != 0 || hangup || error) {
        ready |= SPINDLE_READABLE;
    }
    if events & SPINDLE_WRITABLE != 0 && (got & libc::POLLOUT != 0 || hangup || error) {
        ready |= SPINDLE_WRITABLE;
    }
    if hangup {
        ready |= SPINDLE_HANGUP;
    }
    if error {
        ready |= SPINDLE_FD_ERROR;
    }
    Ok(ready)
}

/// Registers `fd`, waits until `poll(2)` finds it ready for `events`, and
/// deregisters it (on return or when dropped).
async fn wait_fd(fd: RawFd, interest: Interest, events: c_int) -> Result<c_int> {
    let watched = register(fd, interest)?;
    loop {
        // A new registration counts as ready, and an event may be stale:
        // `poll` tells, and the readiness is cleared when it finds nothing.
        let guard = watched.ready(interest).await?;
        let ready = ready_now(fd, events)?;
        if ready != 0 {
            return Ok(ready);
        }
        guard.clear_ready();
    }
}

/// Waits until `fd` is ready for `events` (`SPINDLE_READABLE`,
/// `SPINDLE_WRITABLE` or both) or `seconds` pass (negative: no limit; 0
/// checks once). Call from a C task; the descriptor may be blocking or not,
/// but use a non-blocking one to be sure an operation will not block the
/// worker after a wait.
///
/// Returns 0 and stores in `*revents` (if not NULL) what is ready, as
/// `poll(2)` says: `SPINDLE_READABLE` / `SPINDLE_WRITABLE` from `events`,
/// plus `SPINDLE_HANGUP` and `SPINDLE_FD_ERROR` (which also count as
/// readable and writable: the operation reports them without blocking).
/// `SPINDLE_ETIMEDOUT` at the limit; `SPINDLE_EINVAL` for a negative `fd`
/// or bad `events`; `SPINDLE_EIO` for a descriptor that cannot be watched
/// (not open, a regular file). A cancellation point: `SPINDLE_ECANCELED`.
/// Several tasks may wait on the same descriptor at once.
///
/// The descriptor is registered with the runtime for the wait only, and is
/// never closed by it.
///
/// # Safety
/// `revents` is NULL or valid for writes; `fd` is not closed during the
/// wait.
#[no_mangle]
pub unsafe extern "C" fn spindle_fd_wait(
    fd: c_int,
    events: c_int,
    seconds: f64,
    revents: *mut c_int,
) -> c_int {
    boundary(|| {
        // Like every out-pointer, `revents` is written only on success.
        let both = SPINDLE_READABLE | SPINDLE_WRITABLE;
        if fd < 0 || events & both == 0 || events & !both != 0 {
            return SPINDLE_EINVAL;
        }
        let interest = match (
            events & SPINDLE_READABLE != 0,
            events & SPINDLE_WRITABLE != 0,
        ) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            _ => Interest::WRITABLE,
        };
        let limit = match limit_from_secs(seconds) {
            Ok(limit) => limit,
            Err(code) => return code,
        };
        let waiting = wait_fd(fd, interest, events);
        let outcome = match limit {
            None => block_on(waiting),
            Some(limit) => block_on(crate::timeout_at(
                Instant::now().checked_add(limit),
                waiting,
            )),
        };
        match outcome {
            Ok(Ok(ready)) => {
                // SAFETY: per the contract.
                unsafe { write_out(revents, ready) };
                SPINDLE_OK
            }
            Ok(Err(e)) => blocking_status(Err(e)),
            Err(code) => code,
        }
    })
}

/// Runs `func(arg)` on the runtime's blocking pool and waits for it
/// (asyncio's `to_thread`), storing what it returns in `*result` (if not
/// NULL). Call from a C task; use it for anything that blocks (file I/O, a
/// blocking library call, a pthread mutex), which must not run in a task.
///
/// A cancellation point: `SPINDLE_ECANCELED` at once; a function not
/// started yet never starts, one already running runs to its end (a thread
/// cannot be interrupted) and what it returns is lost — so have it hand
/// anything it allocates over through `arg`. `SPINDLE_ERUNTIME` if the
/// pool cannot run it. A C++ exception must not leave `func`: the process
/// aborts.
///
/// # Safety
/// `func` is a valid function and `arg` what it expects, usable from
/// another thread until it returns (also after a cancellation); `result`
/// is NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn spindle_to_thread(
    func: spindle_thread_fn,
    arg: *mut c_void,
    result: *mut *mut c_void,
) -> c_int {
    boundary(|| {
        let Some(func) = func else {
            return SPINDLE_EINVAL;
        };
        let arg = SendPtr(arg);
        let call = move || {
            let arg = arg;
            // SAFETY: the C program gave this function and argument to run
            // on another thread.
            SendPtr(unsafe { func(arg.0) })
        };
        match block_on(crate::to_thread(call)) {
            // SAFETY: per the contract.
            Ok(outcome) => unsafe { TaskResult(outcome.map(|r| r.0 as usize)).write_to(result) },
            Err(code) => code,
        }
    })
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use crate::ffi::sync::test_util::{join, run_c, spawn_c};
    use crate::ffi::task::{spindle_sleep, spindle_task_cancel};
    use crate::ffi::{SPINDLE_ECANCELED, SPINDLE_EIO, SPINDLE_ENOTASK, SPINDLE_ETIMEDOUT};
    use std::ptr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A non-blocking pipe: (read end, write end).
    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(rc, 0);
        // SAFETY: both are new descriptors owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write_byte(fd: RawFd) {
        // SAFETY: one byte from a valid buffer.
        assert_eq!(unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) }, 1);
    }

    fn wait(fd: RawFd, events: c_int, seconds: f64) -> (c_int, c_int) {
        // -1 shows whether the call wrote it (only on success).
        let mut revents = -1;
        // SAFETY: a valid out-pointer.
        let code = unsafe { spindle_fd_wait(fd, events, seconds, &mut revents) };
        (code, revents)
    }

    #[test]
    fn fd_wait_waits_until_a_pipe_is_readable() {
        let (code, _) = run_c(|| {
            let (read, write) = pipe();
            let fd = read.as_raw_fd();
            let reader = spawn_c(move || {
                let started = Instant::now();
                let (code, revents) = wait(fd, SPINDLE_READABLE, -1.0);
                assert_eq!((code, revents), (0, SPINDLE_READABLE));
                Ok(started.elapsed().as_millis() as usize)
            });
            // A second waiter on the same descriptor at the same time.
            let other = spawn_c(move || {
                let (code, revents) = wait(fd, SPINDLE_READABLE | SPINDLE_WRITABLE, 5.0);
                assert_eq!((code, revents), (0, SPINDLE_READABLE));
                Ok(0)
            });
            assert_eq!(spindle_sleep(0.03), 0);
            write_byte(write.as_raw_fd());
            let (code, waited_ms) = join(reader);
            assert_eq!(code, 0);
            assert!(waited_ms >= 20, "returned after {waited_ms} ms");
            assert_eq!(join(other).0, 0);
            // Ready now: at once, also with a zero timeout.
            assert_eq!(wait(fd, SPINDLE_READABLE, 0.0), (0, SPINDLE_READABLE));
            // The write end has room.
            assert_eq!(
                wait(write.as_raw_fd(), SPINDLE_READABLE | SPINDLE_WRITABLE, -1.0),
                (0, SPINDLE_WRITABLE)
            );
            // End of stream: readable, with a hang-up.
            drop(write);
            assert_eq!(
                wait(fd, SPINDLE_READABLE, -1.0),
                (0, SPINDLE_READABLE | SPINDLE_HANGUP)
            );
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn fd_wait_times_out_and_is_cancellable() {
        let (code, _) = run_c(|| {
            let (read, _write) = pipe();
            let fd = read.as_raw_fd();
            let started = Instant::now();
            assert_eq!(wait(fd, SPINDLE_READABLE, 0.03), (SPINDLE_ETIMEDOUT, -1));
            assert!(started.elapsed() >= Duration::from_millis(25));
            assert_eq!(wait(fd, SPINDLE_READABLE, 0.0), (SPINDLE_ETIMEDOUT, -1));
            let waiter = spawn_c(move || Err(wait(fd, SPINDLE_READABLE, -1.0).0));
            assert_eq!(spindle_sleep(0.01), 0);
            // SAFETY: a live task.
            unsafe { spindle_task_cancel(waiter.get(), ptr::null(), ptr::null_mut()) };
            assert_eq!(join(waiter).0, SPINDLE_ECANCELED);
            // The cancelled wait deregistered the descriptor.
            assert_eq!(wait(fd, SPINDLE_READABLE, 0.01), (SPINDLE_ETIMEDOUT, -1));
            Ok(0)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn fd_wait_refuses_what_cannot_be_watched() {
        let (code, _) = run_c(|| {
            let file = std::fs::File::open("Cargo.toml").unwrap();
            assert_eq!(
                wait(file.as_raw_fd(), SPINDLE_READABLE, -1.0).0,
                SPINDLE_EIO
            );
            let (read, write) = pipe();
            let closed = read.as_raw_fd();
            drop(read);
            assert_eq!(wait(closed, SPINDLE_READABLE, 0.1).0, SPINDLE_EIO);
            let fd = write.as_raw_fd();
            assert_eq!(wait(-1, SPINDLE_READABLE, -1.0).0, SPINDLE_EINVAL);
            assert_eq!(wait(fd, 0, -1.0).0, SPINDLE_EINVAL);
            assert_eq!(wait(fd, 4, -1.0).0, SPINDLE_EINVAL);
            assert_eq!(wait(fd, SPINDLE_WRITABLE, f64::NAN).0, SPINDLE_EINVAL);
            // SAFETY: a NULL `revents` is allowed.
            let code = unsafe { spindle_fd_wait(fd, SPINDLE_WRITABLE, -1.0, ptr::null_mut()) };
            assert_eq!(code, 0);
            Ok(0)
        });
        assert_eq!(code, 0);
        let (_read, write) = pipe();
        assert_eq!(
            wait(write.as_raw_fd(), SPINDLE_WRITABLE, -1.0).0,
            SPINDLE_ENOTASK
        );
    }

    unsafe extern "C-unwind" fn thread_id(arg: *mut c_void) -> *mut c_void {
        // SAFETY: the test passes a `*mut Option<ThreadId>`.
        unsafe { *arg.cast::<Option<std::thread::ThreadId>>() = Some(std::thread::current().id()) };
        0x2a as *mut c_void
    }

    unsafe extern "C-unwind" fn slow(arg: *mut c_void) -> *mut c_void {
        std::thread::sleep(Duration::from_millis(150));
        // SAFETY: the test passes an `Arc<AtomicBool>` made with `Arc::into_raw`.
        let finished = unsafe { Arc::from_raw(arg.cast::<AtomicBool>().cast_const()) };
        finished.store(true, Ordering::SeqCst);
        ptr::null_mut()
    }

    #[test]
    fn to_thread_runs_the_function_on_another_thread() {
        let (code, _) = run_c(|| {
            let mut ran_on: Option<std::thread::ThreadId> = None;
            let mut result = ptr::null_mut();
            // SAFETY: `thread_id` takes this argument; valid out-pointer.
            let code = unsafe {
                spindle_to_thread(
                    Some(thread_id),
                    (&mut ran_on as *mut Option<_>).cast(),
                    &mut result,
                )
            };
            assert_eq!(code, 0);
            assert_eq!(result as usize, 0x2a);
            let ran_on = ran_on.expect("it ran");
            assert_ne!(ran_on, std::thread::current().id());
            // SAFETY: a NULL function is refused.
            let code = unsafe { spindle_to_thread(None, ptr::null_mut(), ptr::null_mut()) };
            assert_eq!(code, SPINDLE_EINVAL);

            // Cancelled: returns at once, the function runs to its end.
            let finished = Arc::new(AtomicBool::new(false));
            let arg = super::SendPtr(Arc::into_raw(finished.clone()).cast_mut().cast());
            let waiter = spawn_c(move || {
                let arg = arg;
                let started = Instant::now();
                // SAFETY: `slow` takes this argument.
                let code = unsafe { spindle_to_thread(Some(slow), arg.0, ptr::null_mut()) };
                assert!(started.elapsed() < Duration::from_millis(120));
                Err(code)
            });
            assert_eq!(spindle_sleep(0.02), 0);
            // SAFETY: a live task.
            unsafe { spindle_task_cancel(waiter.get(), ptr::null(), ptr::null_mut()) };
            assert_eq!(join(waiter).0, SPINDLE_ECANCELED);
            assert!(!finished.load(Ordering::SeqCst));
            assert_eq!(spindle_sleep(0.3), 0);
            assert!(finished.load(Ordering::SeqCst), "still ran to its end");
            Ok(0)
        });
        assert_eq!(code, 0);
        let mut ran_on: Option<std::thread::ThreadId> = None;
        // SAFETY: `thread_id` takes this argument.
        let code = unsafe {
            spindle_to_thread(
                Some(thread_id),
                (&mut ran_on as *mut Option<_>).cast(),
                ptr::null_mut(),
            )
        };
        assert_eq!(code, SPINDLE_ENOTASK);
        assert!(ran_on.is_none(), "nothing ran");
    }
}
