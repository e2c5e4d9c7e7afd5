//! A cache prefetch hint, for the few places where the next cold line is
//! known some work before it is touched (a registry slot, a woken task).

/// Starts loading the cache line at `ptr`. A hint only: it never faults,
/// whatever the address (stale or dangling included), and does nothing on
/// targets without a prefetch instruction exposed by `std::arch`.
#[inline]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and has no effect on
    // program state, whatever the address; SSE is part of x86_64.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
