//! Recovery from participants that died mid-operation (DESIGN §5).
//!
//! - **Dead producer** (either sync mode: semaphore-mode producers publish their claim in
//!   their slot too, since topic subscribers read without the mutex). A reader that finds no
//!   committed record at its position while `tail` is beyond it is looking at a claim in
//!   progress. If no *live* producer holds
//!   that claim (producers publish the tail they claim at in their slot before their CAS, and
//!   clear it after committing; liveness is pid + start time), the claim is dead: the reader
//!   rewrites it as padding and/or an *abandoned* record, which every reader skips, and
//!   goes on. Its extent comes from the claimed header if the producer got that far, else from
//!   the next header that decodes to its own position (a bounded scan: at most two records)
//!   or the lowest claim start a producer slot holds after it (a later claim with nothing
//!   written yet), else from `tail`.
//! - **Dead semaphore-mode producer holding the mutex**: `ring::repair_pending` on
//!   `EOWNERDEAD`.
//! - **Dead subscribers and producers' slots**: `registry::reclaim_dead`, called by producers
//!   that wait for room, so a dead cursor or a dead claim stops holding the ring.
//!
//! A process that is merely stopped (SIGSTOP) is alive: its claim is waited for, never
//! taken from it.

use crate::error::{Error, ErrorCode, Result};
use crate::layout::{self, record, slot};
use crate::process;
use crate::registry::slot_field;
use crate::segment::Segment;
use crate::sync::Ordering;

/// How long a reader waits at a claim in progress before it checks the claim's owner, and
/// how often it checks again while the owner lives. Recovery from a dead producer therefore
/// takes about this long after its death (plus the time to notice, at most one wait slice).
pub const RECOVERY_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// The facts about a ring recovery needs (a subset of `ring::Geo`).
#[derive(Clone, Copy)]
pub(crate) struct Ring {
    pub data: usize,
    pub capacity: u64,
    pub mask: u64,
    pub key: u64,
    /// Bytes of the largest record (header, overwrite word, payload; aligned).
    pub max_record: u64,
    /// Extra header bytes (the overwrite word).
    pub extra: usize,
    pub max_participants: u32,
}

impl Ring {
    fn at(&self, pos: u64) -> usize {
        self.data + (pos & self.mask) as usize
    }
    fn lap_end(&self, pos: u64) -> u64 {
        pos + (self.capacity - (pos & self.mask))
    }
}

/// The producer slot named by the record header at `pos`, if that header is CLAIMED for
/// exactly `pos`.
fn claimed_by(seg: &Segment, ring: &Ring, pos: u64) -> Option<u32> {
    // Acquire: pairs with the producer's Release store of CLAIMED, made after its claim store
    // and its CAS: whoever reads CLAIMED here also sees that producer's `claim`.
    let seq = seg.u64_at(ring.at(pos)).load(Ordering::Acquire) ^ ring.key;
    if seq != pos | record::CLAIMED {
        return None;
    }
    let mut producer = [0u8; 2];
    seg.read_bytes(ring.at(pos) + record::PRODUCER, &mut producer);
    Some(u16::from_le_bytes(producer) as u32)
}

/// Whether a live producer holds the claim that covers `pos`: a claim made at `pos`; (at
/// the start of a lap) one made earlier that padded to it; or one made earlier in a batch
/// (`Producer::try_publish_many` claims several records with one CAS and writes all their
/// headers before any commit), when the header at `pos` is CLAIMED by that producer's slot.
///
/// The last case cannot mistake an old claim for a live one: a producer's `claim` is
/// `NO_CLAIM` between its claims, and a new owner of a slot claims only at positions beyond
/// the `tail` it saw when it joined, so a slot whose `claim` is below `pos` while the header
/// at `pos` names it is in the middle of the very claim that wrote that header.
pub(crate) fn claim_is_live(seg: &Segment, ring: &Ring, pos: u64) -> bool {
    let owner = claimed_by(seg, ring, pos);
    for i in 0..ring.max_participants {
        let state = seg
            .u32_at(slot_field(seg, i, slot::STATE))
            .load(Ordering::Acquire);
        if state & slot::STATE_BITS != slot::ACTIVE
            || seg
                .u32_at(slot_field(seg, i, slot::ROLE))
                .load(Ordering::Relaxed)
                != slot::ROLE_PRODUCER
        {
            continue;
        }
        // Acquire: we saw `tail` beyond `pos` (Acquire), so the claim store that preceded the
        // CAS there is visible; a later value means that claim was committed.
        let c = seg
            .u64_at(slot_field(seg, i, slot::CLAIM))
            .load(Ordering::Acquire);
        let covers = c == pos
            || (pos & ring.mask == 0 && c < pos && ring.lap_end(c) == pos)
            || (c < pos && owner == Some(i));
        if covers {
            let pid = seg
                .u32_at(slot_field(seg, i, slot::PID))
                .load(Ordering::Relaxed);
            let start = seg
                .u64_at(slot_field(seg, i, slot::START_TIME))
                .load(Ordering::Relaxed);
            if process::is_alive(pid, start) {
                return true;
            }
        }
    }
    false
}

/// If the claim at `pos` is dead, rewrites it so readers skip it. Returns whether the
/// position is now readable (recovered, or committed meanwhile).
pub(crate) fn recover_dead_claim(seg: &Segment, ring: &Ring, pos: u64) -> Result<bool> {
    let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
    if tail <= pos || claim_is_live(seg, ring, pos) {
        return Ok(false);
    }
    let corrupt = |what: String| {
        Error::new(
            ErrorCode::CorruptSegment,
            format!("channel {:?}: {what}", seg.name()),
        )
    };
    let seq = seg.u64_at(ring.at(pos)).load(Ordering::Acquire) ^ ring.key;
    if seq & !record::STATE_MASK == pos {
        match seq & record::STATE_MASK {
            record::CLAIMED => {
                // The producer got as far as its header: the length is there.
                let mut len = [0u8; 4];
                seg.read_bytes(ring.at(pos) + record::LEN, &mut len);
                let need = record::record_len(u32::from_le_bytes(len) as usize + ring.extra) as u64;
                if need > ring.max_record || need > ring.lap_end(pos) - pos {
                    return Err(corrupt(format!("claimed record at {pos} of {need} bytes")));
                }
                abandon(seg, ring, pos, need);
                abandon_rest_of_batch(seg, ring, pos + need, tail);
                return Ok(true);
            }
            // Committed or recovered by someone else meanwhile.
            _ => return Ok(true),
        }
    }
    // Nothing written at `pos`: find where the next claim starts. A claim made after the dead
    // one may have nothing written yet either (its producer stalled between its CAS and its
    // headers): no header would mark it, and taking everything up to `tail` would abandon a
    // live producer's record. Its producer's slot `claim`, stored before that CAS (so visible
    // now that we have seen `tail` beyond it), marks where it starts: the dead claim ends
    // there at the latest.
    let bound = next_claim_after(seg, ring, pos).map_or(tail, |c| c.min(tail));
    let limit = bound.min(pos + 2 * ring.max_record);
    let mut next = None;
    let mut q = pos + record::HEADER_LEN as u64;
    while q < limit {
        let s = seg.u64_at(ring.at(q)).load(Ordering::Acquire) ^ ring.key;
        if s & !record::STATE_MASK == q && (1..=4).contains(&(s & record::STATE_MASK)) {
            next = Some(q);
            break;
        }
        q += record::ALIGN as u64;
    }
    let next = match next {
        Some(n) => n,
        None if bound <= pos + 2 * ring.max_record => bound,
        None => {
            return Err(corrupt(format!(
                "no record boundary within {} bytes after a dead claim at {pos}",
                2 * ring.max_record
            )));
        }
    };
    let lap_end = ring.lap_end(pos);
    if next > lap_end {
        // The dead claim padded to the end of the lap and put its record after it.
        if next - lap_end < (record::HEADER_LEN + ring.extra) as u64 {
            return Err(corrupt(format!("dead claim {pos}..{next} splits a header")));
        }
        seg.u64_at(ring.at(pos)).store(
            record::encode_seq(pos, record::PADDING, ring.key),
            Ordering::Release,
        );
        abandon(seg, ring, lap_end, next - lap_end);
    } else {
        // `next` may be `tail`, read from shared memory: no honest claim is under 16 bytes.
        if next - pos < (record::HEADER_LEN + ring.extra) as u64 {
            return Err(corrupt(format!("dead claim {pos}..{next} splits a header")));
        }
        abandon(seg, ring, pos, next - pos);
    }
    Ok(true)
}

/// The lowest claim start after `pos` that a producer's slot holds, if any: any claim made
/// after the one at `pos` starts at or after its end.
fn next_claim_after(seg: &Segment, ring: &Ring, pos: u64) -> Option<u64> {
    (0..ring.max_participants)
        .filter(|&i| {
            let state = seg
                .u32_at(slot_field(seg, i, slot::STATE))
                .load(Ordering::Acquire);
            state & slot::STATE_BITS == slot::ACTIVE
                && seg
                    .u32_at(slot_field(seg, i, slot::ROLE))
                    .load(Ordering::Relaxed)
                    == slot::ROLE_PRODUCER
        })
        // Acquire: as in `claim_is_live` (the claim was stored before the CAS we saw).
        .map(|i| {
            seg.u64_at(slot_field(seg, i, slot::CLAIM))
                .load(Ordering::Acquire)
        })
        .filter(|&c| c != slot::NO_CLAIM && c > pos)
        .min()
}

/// Clears any producer slot's `claim` that is exactly `pos` (a dead mutex holder's, see
/// `ring::repair_pending`).
pub(crate) fn withdraw_claim_at(seg: &Segment, ring: &Ring, pos: u64) {
    for i in 0..ring.max_participants {
        let claim = seg.u64_at(slot_field(seg, i, slot::CLAIM));
        // Release: as every claim store; AcqRel on success orders it after what we read.
        let _ = claim.compare_exchange(pos, slot::NO_CLAIM, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// After a dead claim's record was abandoned, the records after it that the same claim
/// covered (a batch: every header written, CLAIMED) are abandoned at once too, instead of one
/// recovery poll each. Stops at the first record that is not CLAIMED, that `claim_is_live`
/// says a live producer holds, or whose length does not check out (left to the usual path).
fn abandon_rest_of_batch(seg: &Segment, ring: &Ring, mut pos: u64, tail: u64) {
    while pos < tail && claimed_by(seg, ring, pos).is_some() && !claim_is_live(seg, ring, pos) {
        let mut len = [0u8; 4];
        seg.read_bytes(ring.at(pos) + record::LEN, &mut len);
        let need = record::record_len(u32::from_le_bytes(len) as usize + ring.extra) as u64;
        if need > ring.max_record || need > ring.lap_end(pos) - pos {
            return;
        }
        abandon(seg, ring, pos, need);
        pos += need;
    }
}

/// Turns the uncommitted record of `need` bytes at `start` into an abandoned one (readers
/// skip it), unless it was committed after all.
///
/// The `len` it writes counts as a message's (`record_len(len + extra)` is `need`), so that a
/// second reader recovering the same claim at the same time, which may read this `len` while
/// `seq` still says CLAIMED, computes the same extent from it as from the producer's.
pub(crate) fn abandon(seg: &Segment, ring: &Ring, start: u64, need: u64) {
    let seq = seg.u64_at(ring.at(start) + record::SEQ);
    if seq.load(Ordering::Acquire) == record::encode_seq(start, record::MESSAGE, ring.key) {
        return;
    }
    // A claim is at least a header (and the overwrite word); a smaller extent can only come
    // from damaged words.
    let Some(skip) = (need as usize).checked_sub(record::HEADER_LEN + ring.extra) else {
        return;
    };
    let skip = skip as u32;
    seg.write_bytes(ring.at(start) + record::LEN, &skip.to_le_bytes());
    // Release: the length written above is visible to whoever sees ABANDONED.
    seq.store(
        record::encode_seq(start, record::ABANDONED, ring.key),
        Ordering::Release,
    );
}
