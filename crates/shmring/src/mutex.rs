//! The semaphore mode's robust, process-shared mutex (`PTHREAD_MUTEX_ROBUST`).
//!
//! A process that dies holding it does not wedge the channel: the next locker gets
//! `EOWNERDEAD`, restores the ring's invariants (see `ring::repair_pending`), marks the mutex
//! consistent and goes on. A robust mutex must be unlocked by the thread that locked it, so
//! the guard never leaves the function that took it (and never crosses the napi boundary).
//!
//! A damaged mutex is an error, not a hang: its type word must be what `init` wrote (else
//! `CorruptSegment` at once), and a locker that has waited [`HELD_BOUND`] for it looks at the
//! owner the lock word names: a thread that does not exist (in this PID namespace) means the
//! word is garbage (a dying owner's robust list would have marked it owner-dead), so the lock
//! is `CorruptSegment`; a live owner (say a stopped process) is waited for, and checked again
//! every bound.

use crate::error::{Error, ErrorCode, Result};
use crate::layout;
use crate::segment::Segment;

/// The semaphore mode is not modelled under loom (a pthread mutex is invisible to it).
#[cfg(loom)]
pub(crate) fn init(seg: &Segment) -> Result<()> {
    Err(Error::new(
        ErrorCode::Io,
        format!("{}: semaphore mode is not modelled", seg.name()),
    ))
}

/// Holds the mutex (never, under loom).
#[cfg(loom)]
pub(crate) struct Guard;

/// The semaphore mode is not modelled under loom.
#[cfg(loom)]
pub(crate) fn lock(seg: &Segment, _repair: impl FnOnce(&Segment)) -> Result<Guard> {
    Err(Error::new(
        ErrorCode::Io,
        format!("{}: semaphore mode is not modelled", seg.name()),
    ))
}

/// Initialises the mutex of a new segment (creator only, before `ready`).
#[cfg(not(loom))]
pub(crate) fn init(seg: &Segment) -> Result<()> {
    let m = seg.mutex_ptr();
    // SAFETY: a zeroed attribute object is valid storage for pthread_mutexattr_init.
    let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is valid, writable storage; `m` points to MUTEX_LEN bytes of the mapping
    // that nobody else uses before `ready` is set.
    let rc = unsafe {
        let mut rc = libc::pthread_mutexattr_init(&mut attr);
        if rc == 0 {
            rc = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        }
        if rc == 0 {
            rc = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        }
        if rc == 0 {
            rc = libc::pthread_mutex_init(m, &attr);
        }
        libc::pthread_mutexattr_destroy(&mut attr);
        rc
    };
    if rc != 0 {
        return Err(Error::os(
            "initialise the robust mutex",
            std::io::Error::from_raw_os_error(rc),
        ));
    }
    Ok(())
}

/// Holds the mutex; unlocks on drop.
#[cfg(not(loom))]
pub(crate) struct Guard<'a> {
    seg: &'a Segment,
}

#[cfg(not(loom))]
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // SAFETY: we locked it on this thread (the guard is neither Send nor leaked).
        unsafe { libc::pthread_mutex_unlock(self.seg.mutex_ptr()) };
    }
}

#[cfg(not(loom))]
/// Locks the mutex. If its previous holder died, runs `repair` (with the mutex held) before
/// marking the mutex consistent.
pub(crate) fn lock<'a>(seg: &'a Segment, repair: impl FnOnce(&Segment)) -> Result<Guard<'a>> {
    let m = seg.mutex_ptr();
    check_kind(seg)?;
    let mut waited = std::time::Duration::ZERO;
    let rc = loop {
        // In slices, never an untimed wait: a wake-up can be lost when processes die around
        // an unlock (a holder killed inside `pthread_mutex_unlock` after it released the word;
        // the one sleeper it or the kernel's robust-list cleanup wakes killed before it takes
        // the mutex), leaving the other sleepers asleep on a free mutex for good. A sleeper
        // that times out tries again, and takes the free mutex. (The deadline is on
        // CLOCK_REALTIME, as timedlock wants: a clock stepped back stretches one slice.)
        let deadline = realtime_after(LOCK_SLICE);
        // SAFETY: `m` points to a mutex initialised by the creator before `ready`; the
        // deadline is a valid timespec.
        let rc = unsafe { libc::pthread_mutex_timedlock(m, &deadline) };
        if rc != libc::ETIMEDOUT {
            break rc;
        }
        waited += LOCK_SLICE;
        if waited >= HELD_BOUND {
            waited = std::time::Duration::ZERO;
            check_kind(seg)?;
            check_owner(seg)?;
        }
    };
    match rc {
        0 => Ok(Guard { seg }),
        libc::EOWNERDEAD => {
            let guard = Guard { seg };
            repair(seg);
            // SAFETY: we hold the mutex (EOWNERDEAD means locked by us, inconsistent).
            unsafe { libc::pthread_mutex_consistent(m) };
            Ok(guard)
        }
        libc::ENOTRECOVERABLE => Err(Error::new(
            ErrorCode::CorruptSegment,
            format!(
                "channel {:?}: its mutex is unrecoverable (a holder died and nobody repaired \
                 it); remove the channel with unlink",
                seg.name()
            ),
        )),
        other => Err(Error::os(
            "lock the channel mutex",
            std::io::Error::from_raw_os_error(other),
        )),
    }
}

/// How long a locker sleeps on the mutex before it tries again (see [`lock`]).
#[cfg(not(loom))]
const LOCK_SLICE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a locker waits for the mutex before it checks that the owner the lock word names
/// exists (a holder keeps it for one claim or take: microseconds, unless it is stopped).
#[cfg(not(loom))]
pub(crate) const HELD_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Offset of glibc's `__kind` (the mutex type and flags) in an x86-64 `pthread_mutex_t`
/// (`__lock`, `__count`, `__owner`, `__nusers`, then `__kind`).
#[cfg(not(loom))]
const KIND_OFFSET: usize = 16;

/// The owner thread id bits of a robust mutex's lock word (`FUTEX_TID_MASK`).
#[cfg(not(loom))]
const TID_MASK: u32 = 0x3fff_ffff;

/// The `__kind` word `init` writes (read back from a mutex initialised here the same way).
#[cfg(not(loom))]
fn expected_kind() -> i32 {
    static KIND: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *KIND.get_or_init(|| {
        // SAFETY: zeroed storage is a valid place to initialise a mutex and its attributes;
        // both are destroyed before they go out of scope, and the mutex is never locked.
        unsafe {
            let mut m: libc::pthread_mutex_t = std::mem::zeroed();
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            libc::pthread_mutex_init(&mut m, &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
            let kind = std::ptr::read((&raw const m).cast::<u8>().add(KIND_OFFSET).cast::<i32>());
            libc::pthread_mutex_destroy(&mut m);
            kind
        }
    })
}

/// `CorruptSegment` unless the mutex's type word is the one `init` writes.
#[cfg(not(loom))]
fn check_kind(seg: &Segment) -> Result<()> {
    // Relaxed: written once by the creator before `ready` (published with Release), and
    // never written by a locker.
    let kind = seg
        .u32_at(layout::MUTEX_OFFSET + KIND_OFFSET)
        .load(crate::sync::Ordering::Relaxed) as i32;
    if kind == expected_kind() {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::CorruptSegment,
        format!(
            "channel {:?}: its mutex is damaged (type word {kind:#x}, not {:#x}); remove the \
             channel with unlink",
            seg.name(),
            expected_kind()
        ),
    ))
}

/// After [`HELD_BOUND`] of waiting: `CorruptSegment` if the owner the lock word names is no
/// thread at all here (a dead owner's robust list would have marked the word owner-dead).
#[cfg(not(loom))]
fn check_owner(seg: &Segment) -> Result<()> {
    // Relaxed: only looked at; the kernel and glibc own the word's protocol.
    let word = seg
        .u32_at(layout::MUTEX_OFFSET)
        .load(crate::sync::Ordering::Relaxed);
    let tid = word & TID_MASK;
    if tid == 0 {
        return Ok(()); // released meanwhile: the next slice takes it
    }
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the thread's process
    // exists (EPERM: it does, as another user's).
    let exists = unsafe { libc::kill(tid as libc::pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if exists {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::CorruptSegment,
        format!(
            "channel {:?}: its mutex has been held for over {} s by thread {tid}, which does not \
             exist (the lock word is damaged); remove the channel with unlink",
            seg.name(),
            HELD_BOUND.as_secs()
        ),
    ))
}

/// CLOCK_REALTIME (the clock `pthread_mutex_timedlock` measures by) `d` from now.
#[cfg(not(loom))]
fn realtime_after(d: std::time::Duration) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let nanos = ts.tv_nsec as u64 + d.subsec_nanos() as u64;
    libc::timespec {
        tv_sec: ts.tv_sec + d.as_secs() as libc::time_t + (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}

const _: () = assert!(layout::MUTEX_OFFSET.is_multiple_of(8));
