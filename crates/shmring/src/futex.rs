//! The futex system calls on a `u32` in shared memory (shared, not `_PRIVATE`): wait (with
//! wake bits), wake. The protocol around them (the doorbells) is in `wait.rs`.

#[cfg(not(loom))]
use std::sync::atomic::AtomicU32;
#[cfg(not(loom))]
use std::time::Duration;

/// The wake bits of a sleeper any wake-up reaches (`FUTEX_BITSET_MATCH_ANY`). A sleeper
/// with narrower bits is still woken by every plain [`futex_wake_all`]
/// (it wakes all bits), and by a [`futex_wake_bits`] only if the bits meet.
pub const WAKE_ANY: u32 = u32::MAX;

#[cfg(not(loom))]
/// Sleeps while `*word == expected`, for at most `timeout` (`None`: no limit), with wake
/// bits `bits` (`FUTEX_WAIT_BITSET`): woken by every plain wake, and by [`futex_wake_bits`]
/// whose bits meet `bits` ([`WAKE_ANY`]: by every wake). Returns when woken, when the value
/// differs, on a signal, or at the timeout; callers re-check.
pub fn futex_wait_bits(word: &AtomicU32, expected: u32, timeout: Option<Duration>, bits: u32) {
    // FUTEX_WAIT_BITSET takes an absolute deadline on CLOCK_MONOTONIC (Instant's clock).
    let ts = timeout.map(|d| {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid out pointer; CLOCK_MONOTONIC always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let nanos = now.tv_nsec as u64 + u64::from(d.subsec_nanos());
        let secs = (d.as_secs() + nanos / 1_000_000_000).min(i64::MAX as u64 / 2);
        libc::timespec {
            tv_sec: now.tv_sec.saturating_add(secs as libc::time_t),
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        }
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-aligned u32 in a MAP_SHARED mapping (hence the non-private
    // futex op); `ts_ptr` is null or points to a timespec that outlives the call;
    // FUTEX_WAIT_BITSET reads `bits` as its last argument.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            bits,
        );
    }
}

#[cfg(not(loom))]
/// Wakes the processes and threads sleeping on `word` whose wake bits meet `bits` (sleepers
/// with [`WAKE_ANY`] have them all).
pub fn futex_wake_bits(word: &AtomicU32, bits: u32) {
    // SAFETY: `word` is a live, 4-aligned u32; FUTEX_WAKE_BITSET reads only the count and
    // `bits`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE_BITSET,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            bits,
        );
    }
}

#[cfg(not(loom))]
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
