//! Helgrind annotations: client requests that tell valgrind's thread error
//! detector about synchronization it cannot see by itself. Compiled only with
//! `--cfg spindle_helgrind` (`c-examples/Makefile`, target `check-helgrind`):
//! ordinary builds contain neither this module nor any call to it.
//!
//! Helgrind builds its happens-before relation from the pthread calls it
//! intercepts (`pthread_mutex_*`, `pthread_cond_*`, thread create and join,
//! ...). spindle synchronizes threads by other means that it does not see:
//!
//! - atomics: a task is handed from one worker to the next through its state
//!   word ([`crate::task`]'s `State`) and the run queues; the next worker then
//!   touches the task object, its future and (for C tasks) its fiber stack,
//!   which helgrind would report as races with the previous worker;
//! - Rust std's `Mutex` and `Condvar`, built on bare `futex` calls rather than
//!   on pthread locks, so data guarded by them looks unguarded.
//!
//! The annotations are helgrind's "user synchronization objects"
//! (`ANNOTATE_HAPPENS_BEFORE` / `ANNOTATE_HAPPENS_AFTER` of `helgrind.h`):
//! [`happens_before`] on the releasing side and [`happens_after`] on the
//! acquiring side, keyed on the address of the atomic or lock that carries the
//! synchronization. They only add edges that the Rust code really has (a
//! release/acquire pair, or an unlock/lock pair); they never hide an access.
//!
//! The requests use valgrind's client request mechanism: a "magic" instruction
//! sequence that does nothing on a real CPU and that valgrind's JIT
//! recognizes. It is written here for x86_64 (the layout is valgrind's public
//! interface, `valgrind.h`); on other architectures the functions do nothing.

/// `VG_USERREQ_TOOL_BASE('H', 'G')`: the first request number of helgrind.
const HG_BASE: u64 = ((b'H' as u64) << 24) | ((b'G' as u64) << 16);
/// `_VG_USERREQ__HG_USERSO_SEND_PRE` (`ANNOTATE_HAPPENS_BEFORE`).
const USERSO_SEND_PRE: u64 = HG_BASE + 0x121;
/// `_VG_USERREQ__HG_USERSO_RECV_POST` (`ANNOTATE_HAPPENS_AFTER`).
const USERSO_RECV_POST: u64 = HG_BASE + 0x122;
/// `_VG_USERREQ__HG_ARANGE_MAKE_UNTRACKED` (`VALGRIND_HG_DISABLE_CHECKING`).
const ARANGE_MAKE_UNTRACKED: u64 = HG_BASE + 0x127;

/// Everything the calling thread did so far happens before whatever a thread
/// does after a later [`happens_after`] on the same object.
#[inline(always)]
pub(crate) fn happens_before<T: ?Sized>(object: &T) {
    client_request(USERSO_SEND_PRE, key(object), 0);
}

/// Whatever the calling thread does from now on happens after everything
/// done before any earlier [`happens_before`] on the same object.
#[inline(always)]
pub(crate) fn happens_after<T: ?Sized>(object: &T) {
    client_request(USERSO_RECV_POST, key(object), 0);
}

/// Tells helgrind that `object` (an atomic) is only ever accessed
/// atomically, so that its accesses are not checked for races among
/// themselves: helgrind sees an atomic load as a plain read (on x86_64 it is
/// one) and would report it against the read-modify-writes of other threads.
/// Whatever the atomic publishes is still checked, through the
/// [`happens_before`] / [`happens_after`] edges announced on it. Helgrind
/// checks the memory again once it is freed and allocated anew.
#[inline(always)]
pub(crate) fn atomic_only<T>(object: &T) {
    client_request(
        ARANGE_MAKE_UNTRACKED,
        key(object),
        std::mem::size_of::<T>() as u64,
    );
}

/// The tag of a synchronization object: its address.
fn key<T: ?Sized>(object: &T) -> u64 {
    (object as *const T).cast::<u8>() as usize as u64
}

/// Sends a client request with two arguments to valgrind; does nothing when
/// the program does not run under valgrind.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn client_request(request: u64, arg1: u64, arg2: u64) {
    // The request block valgrind reads through %rax: the request number and
    // five arguments (unused ones zero).
    let block: [u64; 6] = [request, arg1, arg2, 0, 0, 0];
    let mut result: u64 = 0;
    // SAFETY: the sequence is valgrind's amd64 client request: four
    // rotations of %rdi by 3 + 13 + 61 + 51 = 128 bits (which leave it
    // unchanged) followed by `xchg rbx, rbx` (which leaves %rbx unchanged).
    // On a real CPU it only changes the flags, which `asm!` assumes clobbered
    // by default. Under valgrind the request is served from `block`, which
    // lives on this stack for the whole asm statement (memory is not declared
    // untouched, so the compiler keeps the stores to it), and the result comes
    // back in %rdx, declared as an output. No stack is used.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") block.as_ptr(),
            inout("rdx") result,
            options(nostack),
        );
    }
    // The annotations return nothing: the result is the default (0).
    let _ = result;
}

/// No client requests on this architecture: the annotations do nothing.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn client_request(_request: u64, _arg1: u64, _arg2: u64) {}
