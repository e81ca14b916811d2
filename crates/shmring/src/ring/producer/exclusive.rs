//! Exclusive producers: a producer that is the only one of its channel for as long as it
//! lives claims space with a plain Release store of `tail` instead of a CAS, so a publish has
//! no locked instruction at all (the CAS waited, on every publish, for the previous record's
//! stores to reach a cache line the reader was polling).
//!
//! Exclusion, across processes and within one:
//! - the exclusive producer opens the segment file once more and takes an OFD write lock on
//!   [`layout::PRODUCER_LOCK_OFFSET`] through that new open file description (so that
//!   `F_OFD_GETLK` through any other description sees it: this handle's, a forked child's
//!   copy of it, another process's), *then* activates its slot, fences and looks for any
//!   other active producer slot with a live owner: if there is one, it gives everything back
//!   (`Busy`);
//! - every other producer activates its slot, fences, *then* asks whether anyone holds the
//!   lock: if so, it gives its slot back (`Busy`).
//!
//! Either the plain producer's query comes late enough to see the lock, or its slot was
//! active before the exclusive producer looked (SeqCst fences on both sides; the kernel's
//! lock calls order them too): two racing joiners may both be refused, never both admitted.
//! `Segment::exclusive_producer` (the taker's pid) refuses a second exclusive producer of one
//! handle early, and is the lock itself in a loom model (no file). A dead exclusive
//! producer's lock goes with its process; its slot, still `ACTIVE`, is a dead owner's like any
//! other (its claim is judged and skipped by readers, its slot reclaimed).

use std::sync::Arc;

use crate::error::{Error, ErrorCode, Result};
use crate::fd::Fd;
use crate::layout::{self, slot};
use crate::options::SyncMode;
use crate::registry;
use crate::segment::Segment;
use crate::sync::{Ordering, fence};

fn busy(seg: &Segment, why: &str) -> Error {
    Error::new(ErrorCode::Busy, format!("channel {:?} {why}", seg.name()))
}

/// Takes the exclusive producer's lock for `seg` (before its slot is grabbed); returns the
/// open file description that holds it (none in a loom model), to be closed by [`unlock`].
pub(super) fn lock(seg: &Arc<Segment>) -> Result<Option<Fd>> {
    if seg.descriptor().sync != SyncMode::LockFree {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "channel {:?}: an exclusive producer needs sync \"lockfree\" (semaphore mode \
                 serialises producers with its mutex already)",
                seg.name()
            ),
        ));
    }
    let me = std::process::id();
    // SeqCst: the same-handle half of a Dekker pair with `refuse_if_exclusive` (a plain
    // producer activates its slot, fences, then loads this word; we store it, fence in
    // `refuse_if_others`, then load the slots). Failure Relaxed: we only report Busy.
    if seg
        .exclusive_producer
        .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
        .is_err()
    {
        return Err(busy(
            seg,
            "has an exclusive producer already (on this handle)",
        ));
    }
    let Some(fd) = &seg.fd else {
        return Ok(None); // a loom model: the handle's word is the lock
    };
    let taken = fd.reopen().and_then(|own| {
        let got = own.ofd_lock(
            libc::F_OFD_SETLK,
            libc::F_WRLCK,
            layout::PRODUCER_LOCK_OFFSET,
        )?;
        Ok(got.map(|_| own))
    });
    match taken {
        Ok(Some(own)) => Ok(Some(own)),
        other => {
            // Release: pairs with the next taker's CAS (nothing of ours to see, but ordered).
            seg.exclusive_producer.store(0, Ordering::Release);
            other?;
            Err(busy(seg, "has an exclusive producer already"))
        }
    }
}

/// Gives the exclusive producer's lock back (after its slot was released, so that the next
/// exclusive producer does not find it still active): closes the description that holds it,
/// which drops the lock (a forked child's copy keeps it while the child runs; an `F_UNLCK`
/// would drop it for both). The handle's word is cleared only by the process that set it.
pub(super) fn unlock(seg: &Segment, own: Option<Fd>) {
    drop(own);
    let me = std::process::id();
    // Release: a later exclusive producer of this handle (its CAS) sees our slot released.
    // Failure Relaxed: another process's word (a forked child's copy) is left as it is.
    let _ = seg
        .exclusive_producer
        .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed);
}

/// The exclusive producer's check once its slot `me` is active: no other producer lives.
pub(super) fn refuse_if_others(seg: &Segment, me: u32) -> Result<()> {
    let n = seg.descriptor().geometry.max_participants;
    // SYNC POINT: between our claim of the handle's word (in `lock`) and the loads of the
    // slots; pairs with the fence in `refuse_if_exclusive` (a Dekker pair within a handle).
    fence(Ordering::SeqCst);
    for i in (0..n).filter(|&i| i != me) {
        let producer = registry::is_active_as(seg, i, slot::ROLE_PRODUCER);
        if producer && seg.slot_owner_alive(i) {
            return Err(busy(
                seg,
                "has another live producer; an exclusive producer must be the only one",
            ));
        }
    }
    Ok(())
}

/// A plain producer's check once its slot is active: no exclusive producer lives.
pub(super) fn refuse_if_exclusive(seg: &Segment) -> Result<()> {
    // SYNC POINT: between our slot's activation and the load of the handle's word; pairs
    // with the fence in `refuse_if_others`.
    fence(Ordering::SeqCst);
    if seg.exclusive_producer.load(Ordering::SeqCst) != 0 {
        return Err(busy(seg, "has an exclusive producer (on this handle)"));
    }
    let Some(fd) = &seg.fd else {
        return Ok(());
    };
    let fl = fd.ofd_lock(
        libc::F_OFD_GETLK,
        libc::F_WRLCK,
        layout::PRODUCER_LOCK_OFFSET,
    )?;
    if fl.is_some_and(|fl| fl.l_type != libc::F_UNLCK as libc::c_short) {
        return Err(busy(seg, "has an exclusive producer"));
    }
    Ok(())
}
