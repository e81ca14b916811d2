//! Facts about processes: start times (to tell a reused pid apart), liveness, clocks.

use std::time::{SystemTime, UNIX_EPOCH};

/// Start time of process `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`),
/// or `None` if there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); field 22 is the 20th from here.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Start time of this process.
pub fn self_start_time() -> u64 {
    start_time(std::process::id()).unwrap_or(0)
}

/// Whether the process `pid` that started at `start` is still running. A pid that now
/// belongs to a process with another start time counts as dead; zombies count as dead.
/// Participants are not judged this way (their slot locks tell, in any PID namespace; see
/// `Segment::slot_owner_alive`): only a segment's creator, for messages and as a second
/// opinion behind the segment file's `flock`, and a slot whose lock cannot be asked about.
pub fn is_alive(pid: u32, start: u64) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let zombie = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_ascii_whitespace().next())
                == Some("Z");
            !zombie && parse_start_time(&stat) == Some(start)
        }
        // No /proc entry: the process is gone, or /proc is hidden from us (`hidepid`); ask
        // kill(2). EPERM means it exists but is not ours to signal: alive.
        Err(_) => {
            // SAFETY: signal 0 only checks for existence and permission.
            let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
            rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// 64 random bits from the kernel.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is a valid 8-byte out-buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(buf)
    } else {
        // Never expected on Linux ≥ 3.17; fall back to something that still differs per call.
        now_ns() ^ ((std::process::id() as u64) << 32)
    }
}

/// Nanoseconds since the Unix epoch from the coarse clock (a few ms resolution, no syscall):
/// cheap enough for a heartbeat on every batch.
pub fn now_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_REALTIME_COARSE is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC (`coarse`: CLOCK_MONOTONIC_COARSE) in nanoseconds. The coarse clock is the
/// same clock as of the last tick (a few ms behind at most, never ahead) and costs no
/// timestamp-counter read.
pub(crate) fn monotonic_ns(coarse: bool) -> u64 {
    // A loom model must replay every execution the same way, so time stands still there: a
    // recovery poll never comes due inside a model (none kills a process), where the real
    // clock made a reader's path depend on how slowly the model happened to run.
    if cfg!(loom) {
        return 0;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let clock = if coarse {
        libc::CLOCK_MONOTONIC_COARSE
    } else {
        libc::CLOCK_MONOTONIC
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The monotonic coarse clock in milliseconds (no system call).
pub(crate) fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_parens_and_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1000 0";
        assert_eq!(parse_start_time(stat), Some(98765));
    }

    #[test]
    fn self_is_alive_and_wrong_start_is_not() {
        let me = std::process::id();
        let st = self_start_time();
        assert!(st > 0);
        assert!(is_alive(me, st));
        assert!(!is_alive(me, st + 1));
    }
}
