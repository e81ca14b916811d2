//! Sleeping and waking across processes: futex wait/wake on a `u32` in shared memory.
//!
//! The protocol around each futex word (a "doorbell") is:
//! - the sleeper increments the waiter count, issues a SeqCst fence, reads the doorbell's
//!   value, checks its condition once more, and only then sleeps with `FUTEX_WAIT(value)`;
//! - the waker makes its change visible, issues a SeqCst fence, and rings (bumps the doorbell
//!   and `FUTEX_WAKE`s) only if the waiter count is non-zero.
//!
//! The two SeqCst points form a Dekker pair: either the sleeper's re-check sees the change,
//! or the waker sees the waiter count; and a bump between the sleeper's read and its
//! `FUTEX_WAIT` makes the kernel return at once (the value no longer matches). No wake-up is
//! lost, and a waker with nobody asleep pays one load and no system call.
//!
//! The readers' doorbell, rung by every publish, splits the pair unevenly (`barrier.rs`):
//! its wakers in a registered process replace their fence with a compiler barrier, and its
//! sleepers add `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` after theirs, or, where that is
//! not available, mark the waiter word [`layout::WAITERS_FENCED`] so that every waker fences.

use std::time::{Duration, Instant};

use crate::barrier::FALLBACK_NAP;
use crate::error::{Error, ErrorCode, Result};
use crate::filecheck::FILE_CHECK_SLICE;
use crate::layout;
use crate::segment::Segment;
use crate::sync::{Ordering, compiler_fence, fence};

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

/// Rings the readers' doorbell (`data_seq`): makes the caller's change (a commit, a repair,
/// a range given back) visible to readers and wakes those asleep.
#[inline]
pub(crate) fn ring_data_doorbell(seg: &Segment) {
    let waiters = seg.u32_at(layout::DATA_WAITERS_OFFSET);
    let fenced = light_or_full_barrier(seg);
    // Relaxed: ordered after our change by the barrier above (see `sleep_until`).
    let mut w = waiters.load(Ordering::Relaxed);
    if w & layout::WAITERS_FENCED != 0 && !fenced {
        // A reader that cannot issue the membarrier joined: the classic pair, a fence here.
        // SYNC POINT: as in `ring_doorbell`; the load again, after it.
        fence(Ordering::SeqCst);
        w = waiters.load(Ordering::Relaxed);
    }
    if w & !layout::WAITERS_FENCED != 0 {
        // Release: a sleeper whose Acquire read of the doorbell sees the bump sees our change.
        seg.u32_at(layout::DATA_SEQ_OFFSET)
            .fetch_add(1, Ordering::Release);
        seg.futex_wake_all(layout::DATA_SEQ_OFFSET);
    }
}

/// The waker's half of the readers' doorbell pair; true if it was a full (SeqCst) fence.
#[inline]
fn light_or_full_barrier(seg: &Segment) -> bool {
    if !seg.barrier.light_wakes {
        // SYNC POINT: the classic pair with the sleeper's SeqCst fence.
        fence(Ordering::SeqCst);
        return true;
    }
    if cfg!(loom) && seg.barrier.heavy_sleeps {
        // A model stands the kernel's barrier in for a fence here (it cannot run one).
        fence(Ordering::SeqCst);
        return true;
    }
    // SYNC POINT: only the compiler must keep our change before the waiter-count load; the
    // CPU is made to by the sleeper's membarrier, which runs a full barrier on every CPU
    // running a thread of ours (`barrier.rs`).
    compiler_fence(Ordering::SeqCst);
    false
}

/// Marks the readers' doorbell [`layout::WAITERS_FENCED`] if this process's readers cannot
/// issue the membarrier: called when a reader joins, so that producers see the mark well
/// before it first sleeps.
pub(crate) fn announce_reader(seg: &Segment) {
    if !seg.barrier.heavy_sleeps {
        mark_fenced(seg);
    }
}

fn mark_fenced(seg: &Segment) {
    let waiters = seg.u32_at(layout::DATA_WAITERS_OFFSET);
    // Relaxed load: an already-marked word needs no write. SeqCst RMW: part of the total
    // order the wakers' fence and our sleep's fence take part in.
    if waiters.load(Ordering::Relaxed) & layout::WAITERS_FENCED == 0 {
        waiters.fetch_or(layout::WAITERS_FENCED, Ordering::SeqCst);
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
    // The readers' doorbell: wakers in registered processes have no fence of their own; the
    // membarrier runs one on their CPUs (SYNC POINT, `barrier.rs`). Without it, the mark
    // makes them fence, and a nap is short while it reaches them.
    let mut cap = None;
    if waiters_off == layout::DATA_WAITERS_OFFSET && !seg.barrier.heavy() {
        mark_fenced(seg);
        if !cfg!(loom) {
            cap = Some(FALLBACK_NAP);
        }
    }
    // Acquire: a bump after this read makes FUTEX_WAIT return at once (value mismatch).
    let seen = bell.load(Ordering::Acquire);
    let mut ok = ready();
    if !ok {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let slice = match (slice, cap) {
            (Some(s), Some(c)) => Some(s.min(c)),
            (s, c) => s.or(c),
        };
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
