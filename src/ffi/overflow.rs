//! Reporting a fiber stack overflow as a stack overflow.
//!
//! A fiber that runs past the low end of a guarded stack touches its guard
//! page ([`super::stack`]) and the kernel raises `SIGSEGV` on the faulting
//! thread. Left alone, that kills the process with a plain segmentation
//! fault. This module installs a `SIGSEGV`/`SIGBUS` handler that looks the
//! fault address up among the guard pages of the stack pools; for a guard
//! page it writes "a C task overflowed its fiber stack" to stderr and
//! aborts, and any other fault is handed to the handler that was installed
//! before (Rust's own stack-overflow reporter in a Rust program), or to the
//! default action.
//!
//! # Running the handler at all
//! The fault happens with the stack pointer in the guard page, so the
//! kernel can only deliver the signal on an alternate signal stack. Rust
//! gives its own threads one in Rust programs, but not in C programs that
//! link the static library; [`ensure_signal_stack`], called before a fiber
//! is resumed, gives the thread one if it has none (freed when the thread
//! exits).
//!
//! # The table of guarded regions
//! The handler may run at any moment on any thread, so it reads only a
//! fixed table of atomics: no lock, no allocation. A region is recorded in
//! a slot claimed with `fetch_add` and never reused; that suffices because
//! guard pages are given to at most [`GUARDED_STACKS`] slots per process,
//! so at most `GUARDED_STACKS / STACKS_PER_REGION + 1` regions ever have
//! one. Orderings: a slot's `slot_len` is written before its `base` is
//! published with a `Release` store, and the handler loads `base` with
//! `Acquire`, so a non-zero base comes with its layout. A region's base is
//! reset to zero (`Release`) before the region is unmapped.

use super::stack::{GUARDED_STACKS, STACKS_PER_REGION};
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Once, OnceLock};

/// What is printed before aborting.
pub(crate) const MESSAGE: &str = "spindle: a C task overflowed its fiber stack (raise \
     stack_size in spindle_options); aborting\n";

/// Regions that can hold a guard page, at most (and one for a unit test).
const MAX_REGIONS: usize = GUARDED_STACKS / STACKS_PER_REGION + 2;

/// Bytes of each alternate signal stack made here.
const SIGNAL_STACK_SIZE: usize = 64 * 1024;

/// A region of stacks with guard pages: slots of `slot_len` bytes from
/// `base`, each starting with a guard page of `guard_len` bytes.
struct Watched {
    base: AtomicUsize,
    len: AtomicUsize,
    slot_len: AtomicUsize,
    guard_len: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)] // only to build the table
const UNWATCHED: Watched = Watched {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    slot_len: AtomicUsize::new(0),
    guard_len: AtomicUsize::new(0),
};

static WATCHED: [Watched; MAX_REGIONS] = [UNWATCHED; MAX_REGIONS];
static WATCHED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The handlers found when ours was installed, for `SIGSEGV` and `SIGBUS`.
static PREVIOUS: OnceLock<[(c_int, libc::sigaction); 2]> = OnceLock::new();
static INSTALL: Once = Once::new();

/// Records a region whose slots start with a guard page (so a fault in one
/// is reported as an overflow) and installs the signal handler if it is
/// not yet. Returns the table slot, for [`unwatch`].
pub(crate) fn watch(base: usize, len: usize, slot_len: usize, guard_len: usize) -> Option<usize> {
    INSTALL.call_once(install_handler);
    let index = WATCHED_COUNT.fetch_add(1, Relaxed);
    let watched = WATCHED.get(index)?;
    watched.len.store(len, Relaxed);
    watched.slot_len.store(slot_len, Relaxed);
    watched.guard_len.store(guard_len, Relaxed);
    watched.base.store(base, Release);
    Some(index)
}

/// Forgets a region recorded by [`watch`], before it is unmapped.
pub(crate) fn unwatch(index: usize) {
    WATCHED[index].base.store(0, Release);
}

/// Whether `address` lies in the guard page of a watched stack slot.
fn in_guard_page(address: usize) -> bool {
    let count = WATCHED_COUNT.load(Relaxed).min(MAX_REGIONS);
    WATCHED[..count].iter().any(|w| {
        let base = w.base.load(Acquire);
        if base == 0 || address < base {
            return false;
        }
        let offset = address - base;
        let slot_len = w.slot_len.load(Relaxed);
        offset < w.len.load(Relaxed)
            && slot_len != 0
            && offset % slot_len < w.guard_len.load(Relaxed)
    })
}

fn install_handler() {
    let mut previous = [
        (libc::SIGSEGV, empty_action()),
        (libc::SIGBUS, empty_action()),
    ];
    for (signal, old) in &mut previous {
        let mut action = empty_action();
        action.sa_sigaction = on_fault as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)
            as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `action` is a valid, fully initialised sigaction whose
        // handler is async-signal-safe; `old` is valid for writes.
        unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(*signal, &action, old);
        }
    }
    // Set before any guard page exists (the caller maps them after this).
    let _ = PREVIOUS.set(previous);
}

fn empty_action() -> libc::sigaction {
    // SAFETY: sigaction is plain data for which all-zero is valid (handler
    // SIG_DFL, no flags, empty mask).
    unsafe { std::mem::zeroed() }
}

/// The handler: report an overflow, or pass the fault on.
extern "C" fn on_fault(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let address = unsafe { (*info).si_addr() } as usize;
    if in_guard_page(address) {
        // SAFETY: write(2) and abort(3) are async-signal-safe; the buffer
        // is a static string.
        unsafe {
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            libc::abort();
        }
    }
    let previous = PREVIOUS
        .get()
        .and_then(|all| all.iter().find(|(s, _)| *s == signal))
        .map(|(_, action)| *action);
    match previous {
        Some(action)
            if action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN =>
        {
            if action.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: an SA_SIGINFO handler has this signature; we pass
                // on what the kernel gave us.
                let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(action.sa_sigaction) };
                handler(signal, info, context);
            } else {
                // SAFETY: a plain handler has this signature.
                let handler: extern "C" fn(c_int) =
                    unsafe { std::mem::transmute(action.sa_sigaction) };
                handler(signal);
            }
        }
        _ => {
            // Not ours and no handler before us: back to the default action;
            // the faulting instruction runs again and the fault ends the
            // process as it would have without spindle.
            let default = empty_action();
            // SAFETY: restores SIG_DFL, async-signal-safe.
            unsafe { libc::sigaction(signal, &default, std::ptr::null_mut()) };
        }
    }
}

/// This thread's alternate signal stack, if spindle made it.
struct SignalStack {
    checked: Cell<bool>,
    mapped: Cell<*mut c_void>,
}

impl Drop for SignalStack {
    fn drop(&mut self) {
        let mapped = self.mapped.get();
        if mapped.is_null() {
            return;
        }
        let disable = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: the thread is exiting and not running on this stack;
        // disabling it first means no signal is delivered on unmapped memory.
        unsafe {
            libc::sigaltstack(&disable, std::ptr::null_mut());
            libc::munmap(mapped, SIGNAL_STACK_SIZE);
        }
    }
}

thread_local! {
    static SIGNAL_STACK: SignalStack = const {
        SignalStack { checked: Cell::new(false), mapped: Cell::new(std::ptr::null_mut()) }
    };
}

/// Gives this thread an alternate signal stack if it has none, so that the
/// overflow report can run when a fiber's stack is exhausted. Cheap after
/// the first call on a thread.
pub(crate) fn ensure_signal_stack() {
    // A thread being torn down has no fibers to run: nothing to do.
    let _ = SIGNAL_STACK.try_with(|stack| {
        if stack.checked.replace(true) {
            return;
        }
        let mut current = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: 0,
            ss_size: 0,
        };
        // SAFETY: queries only; `current` is valid for writes.
        if unsafe { libc::sigaltstack(std::ptr::null(), &mut current) } != 0
            || current.ss_flags & libc::SS_DISABLE == 0
        {
            return; // the thread has one already (Rust's, or the program's)
        }
        // SAFETY: an anonymous private mapping; the result is checked.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIGNAL_STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return; // no report on this thread, but the fault still stops it
        }
        let new = libc::stack_t {
            ss_sp: mapped,
            ss_flags: 0,
            ss_size: SIGNAL_STACK_SIZE,
        };
        // SAFETY: `new` describes a mapping owned by this thread's
        // `SignalStack`, which disables it before unmapping.
        if unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) } == 0 {
            stack.mapped.set(mapped);
        } else {
            // SAFETY: the mapping made above, unused.
            unsafe { libc::munmap(mapped, SIGNAL_STACK_SIZE) };
        }
    });
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    #[test]
    fn guard_pages_are_found_and_nothing_else() {
        // A fake region far from anything mapped: 3 slots of 0x3000 bytes,
        // each with a 0x1000-byte guard.
        let base = 0x7000_0000_0000;
        let index = watch(base, 3 * 0x3000, 0x3000, 0x1000).expect("a free table slot");
        assert!(in_guard_page(base));
        assert!(in_guard_page(base + 0xfff));
        assert!(!in_guard_page(base + 0x1000));
        assert!(in_guard_page(base + 0x3000 + 8));
        assert!(in_guard_page(base + 2 * 0x3000 + 0x800));
        assert!(!in_guard_page(base + 3 * 0x3000));
        assert!(!in_guard_page(base - 1));
        unwatch(index);
        assert!(!in_guard_page(base));
    }

    #[test]
    fn a_thread_without_a_signal_stack_gets_one() {
        std::thread::spawn(|| {
            let mut current = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // Rust gave this thread a signal stack; take it away, as in a
            // thread of a C program.
            // SAFETY: disables this thread's alternate stack, not in use.
            assert_eq!(
                unsafe { libc::sigaltstack(&current, std::ptr::null_mut()) },
                0
            );
            ensure_signal_stack();
            // SAFETY: a query; `current` is valid for writes.
            assert_eq!(
                unsafe { libc::sigaltstack(std::ptr::null(), &mut current) },
                0
            );
            assert_eq!(current.ss_flags & libc::SS_DISABLE, 0);
            assert_eq!(current.ss_size, SIGNAL_STACK_SIZE);
            assert_eq!(current.ss_sp, SIGNAL_STACK.with(|s| s.mapped.get()));
        })
        .join()
        .unwrap();
    }
}
