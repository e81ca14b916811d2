//! The readers' doorbell's asymmetric barrier: publishes pay no fence, sleepers pay a
//! `membarrier(2)`.
//!
//! A doorbell is a Dekker pair (see `wait.rs`): the waker stores its change and loads the
//! waiter count, the sleeper stores its count and loads the condition, and each side needs a
//! full barrier between its store and its load. The readers' doorbell is rung by every
//! publish and slept on only by idle readers, so the barrier is split unevenly:
//!
//! - a process that registered for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` wakes with a compiler
//!   barrier alone (no fence instruction);
//! - a sleeper, after its count and its own SeqCst fence, issues
//!   `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`: the kernel runs a full barrier on every
//!   CPU running a thread of a registered process (a thread not running passed one when it
//!   was switched out). So every registered waker's commit that came before that barrier in
//!   its program order is visible to the sleeper's re-check, and every waiter-count load
//!   after it sees the count: the pair holds with one side's fence replaced by the kernel's.
//!
//! Where the kernel has no such command, or a sandbox refuses it (or `SHMRING_MEMBARRIER=off`
//! says not to use it), this process does not register, so it wakes with the SeqCst fence as
//! before; its readers set [`layout::WAITERS_FENCED`](crate::layout::WAITERS_FENCED) in the
//! waiter word when they join, which makes every waker fence (see
//! `wait::ring_data_doorbell`), and their naps last at most [`FALLBACK_NAP`] (the bit takes
//! an instant to reach producers that were publishing as it was set).

#[cfg(not(loom))]
use std::sync::OnceLock;
use std::time::Duration;

/// How long a reader that cannot issue the barrier sleeps at most before it looks again.
pub(crate) const FALLBACK_NAP: Duration = Duration::from_millis(50);

/// What this process can do with `membarrier(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Barrier {
    /// Registered for the global expedited barrier: this process's wakers skip the fence.
    pub(crate) light_wakes: bool,
    /// The global expedited barrier works here: this process's sleepers issue it.
    pub(crate) heavy_sleeps: bool,
}

impl Barrier {
    /// Neither: the classic Dekker pair (a fence on both sides).
    #[cfg(not(loom))]
    pub(crate) const FENCED: Barrier = Barrier {
        light_wakes: false,
        heavy_sleeps: false,
    };

    /// The barrier of this process, found (and registered for) once, at the first open.
    #[cfg(not(loom))]
    pub(crate) fn for_process() -> Barrier {
        static ONCE: OnceLock<Barrier> = OnceLock::new();
        *ONCE.get_or_init(|| {
            let off = std::env::var("SHMRING_MEMBARRIER").is_ok_and(|v| v == "off" || v == "0");
            if off {
                return Barrier::FENCED;
            }
            let supported = membarrier(MEMBARRIER_CMD_QUERY);
            // Listed is not allowed: a seccomp filter may refuse the command itself, so try it.
            let heavy_sleeps = supported > 0
                && supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED != 0
                && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
            let light_wakes = heavy_sleeps
                && supported & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED != 0
                && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
            Barrier {
                light_wakes,
                heavy_sleeps,
            }
        })
    }

    /// A loom model: the light and heavy barriers are modelled as the fences they stand for
    /// (see `wait.rs`), so the default is the membarrier pair.
    #[cfg(loom)]
    pub(crate) fn for_process() -> Barrier {
        Barrier {
            light_wakes: true,
            heavy_sleeps: true,
        }
    }

    /// The sleeper's half: the global expedited barrier. False if it is not available (or
    /// failed): the caller then relies on [`layout::WAITERS_FENCED`](crate::layout) instead.
    #[cfg(not(loom))]
    pub(crate) fn heavy(self) -> bool {
        self.heavy_sleeps && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0
    }

    /// A model's heavy barrier: a SeqCst fence, which with the wakers' modelled fence forms
    /// the pair the kernel's barrier gives.
    #[cfg(loom)]
    pub(crate) fn heavy(self) -> bool {
        if self.heavy_sleeps {
            crate::sync::fence(crate::sync::Ordering::SeqCst);
        }
        self.heavy_sleeps
    }
}

#[cfg(not(loom))]
const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
#[cfg(not(loom))]
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
#[cfg(not(loom))]
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// `membarrier(cmd, 0, 0)`: its result, or -1.
#[cfg(not(loom))]
fn membarrier(cmd: libc::c_int) -> libc::c_int {
    // SAFETY: membarrier takes two integers and a CPU id (unused without the CPU flag); it
    // touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    };
    r as libc::c_int
}
