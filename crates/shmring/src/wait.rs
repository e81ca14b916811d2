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

use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::filecheck::FILE_CHECK_SLICE;
use crate::segment::Segment;
use crate::sync::{Ordering, fence};

/// How a reader waits for data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin briefly (about 50 µs), then sleep in the kernel: low latency for bursts, no CPU
    /// when idle.
    #[default]
    Adaptive,
    /// Never sleep: lowest latency, one core busy while waiting.
    Spin,
    /// Sleep in the kernel at once: least CPU, a wake-up costs a system call.
    Block,
}

/// How long [`WaitStrategy::Adaptive`] spins before it sleeps.
const ADAPTIVE_SPIN: Duration = Duration::from_micros(50);

impl WaitStrategy {
    /// Parses `adaptive`, `spin` or `block`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "adaptive" => Ok(Self::Adaptive),
            "spin" => Ok(Self::Spin),
            "block" => Ok(Self::Block),
            other => Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("wait {other:?} is not one of adaptive, spin, block"),
            )),
        }
    }

    /// The spinning phase: polls `ready` until it holds (true), or until the phase ends
    /// (false): never for `Block`, about 50 µs for `Adaptive`, until `deadline` for `Spin`.
    pub(crate) fn spin(self, deadline: Option<Instant>, ready: &mut impl FnMut() -> bool) -> bool {
        if cfg!(loom) {
            // A model has no wall clock to spin against; its waits are the condvar futex.
            return ready();
        }
        let until = match self {
            Self::Block => return false,
            Self::Adaptive => {
                let end = Instant::now() + ADAPTIVE_SPIN;
                Some(deadline.map_or(end, |d| d.min(end)))
            }
            Self::Spin => deadline,
        };
        let mut i: u32 = 0;
        loop {
            if ready() {
                return true;
            }
            i = i.wrapping_add(1);
            if i.is_multiple_of(64) && until.is_some_and(|u| Instant::now() >= u) {
                return false;
            }
            std::hint::spin_loop();
        }
    }
}

/// Rings a doorbell: makes the caller's change visible and, if anyone sleeps on the doorbell
/// at `seq_off` (its waiter count at `waiters_off`), bumps it and wakes them.
pub(crate) fn ring_doorbell(seg: &Segment, seq_off: usize, waiters_off: usize) {
    // SYNC POINT: the SeqCst fence orders our commit (or cursor) store before the waiter-count
    // load; it pairs with the sleeper's SeqCst increment + re-check (see `sleep_until`).
    fence(Ordering::SeqCst);
    if seg.u32_at(waiters_off).load(Ordering::Relaxed) > 0 {
        seg.u32_at(seq_off).fetch_add(1, Ordering::Release);
        seg.futex_wake_all(seq_off);
    }
}

/// Sleeps on a doorbell until `ready()` holds or `deadline` passes, spinning first as
/// `strategy` says. Returns `ready()`. `bits` are the sleeper's wake bits: every ring of the
/// doorbell wakes it, and an interrupt (`futex_wake_bits`) only if the bits meet
/// ([`crate::futex::WAKE_ANY`] for all).
#[allow(clippy::too_many_arguments)] // one doorbell's words, the wait's bounds, and the check
pub(crate) fn sleep_until(
    seg: &Segment,
    seq_off: usize,
    waiters_off: usize,
    bits: u32,
    deadline: Option<Instant>,
    slice: Option<Duration>,
    strategy: WaitStrategy,
    mut ready: impl FnMut() -> bool,
) -> bool {
    // A segment shrunk, removed or unlinked under us ends the wait: the caller's next
    // operation reports it (see `filecheck.rs`).
    if seg.check_file_if_older(FILE_CHECK_SLICE).is_err() {
        return true;
    }
    let mut ready = || seg.finished() || ready();
    if strategy.spin(deadline, &mut ready) {
        return true;
    }
    if strategy == WaitStrategy::Spin {
        return ready();
    }
    if seg.check_file().is_err() {
        return true;
    }
    let waiters = seg.u32_at(waiters_off);
    let bell = seg.u32_at(seq_off);
    waiters.fetch_add(1, Ordering::Relaxed);
    // SYNC POINT: pairs with the waker's SeqCst fence in `ring_doorbell` (a Dekker pair):
    // either our re-check below sees its change, or it sees our waiter count and rings.
    fence(Ordering::SeqCst);
    // Acquire: a bump after this read makes FUTEX_WAIT return at once (value mismatch).
    let seen = bell.load(Ordering::Acquire);
    let mut ok = ready();
    if !ok {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let nap = match (left, slice) {
            (Some(l), Some(s)) => Some(l.min(s)),
            (l, s) => l.or(s),
        };
        if nap != Some(Duration::ZERO) {
            seg.futex_wait_bits(seq_off, seen, nap, bits);
            // The file may have shrunk while we slept: look (one fstat, next to the futex
            // system call) before `ready` touches the mapping again.
            let _ = seg.check_file();
        }
        if seg.shrunk() {
            return true; // the mapping must not be touched any more
        }
        ok = ready();
    }
    // Relaxed: a late decrement only costs a waker one unneeded FUTEX_WAKE.
    waiters.fetch_sub(1, Ordering::Relaxed);
    ok
}
