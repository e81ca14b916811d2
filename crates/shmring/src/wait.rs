//! Sleeping and waking across processes: futex wait/wake on a `u32` in shared memory.
//!
//! The protocol around each futex word (a "doorbell") is:
//! - the sleeper increments the waiter count (SeqCst), reads the doorbell's value, checks its
//!   condition once more, and only then sleeps with `FUTEX_WAIT(value)`;
//! - the waker makes its change visible, issues a SeqCst fence, and rings (bumps the doorbell
//!   and `FUTEX_WAKE`s) only if the waiter count is non-zero.
//!
//! The two SeqCst points form a Dekker pair: either the sleeper's re-check sees the change,
//! or the waker sees the waiter count; and a bump between the sleeper's read and its
//! `FUTEX_WAIT` makes the kernel return at once (the value no longer matches). No wake-up is
//! lost, and a waker with nobody asleep pays one load and no system call.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, for at most `timeout` (`None`: no limit). Returns when
/// woken, when the value differs, on a signal, or at the timeout; callers re-check.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-aligned u32 in a MAP_SHARED mapping (hence the non-private
    // futex op); `ts_ptr` is null or points to a timespec that outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process and thread sleeping on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, 4-aligned u32; FUTEX_WAKE reads no other argument.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}
