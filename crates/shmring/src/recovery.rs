//! Recovery from participants that died mid-operation (docs/ARCHITECTURE.md, "Crash safety";
//! the rules for other languages are in docs/LAYOUT.md, "Crash recovery").
//!
//! - **Dead producer** (either sync mode: semaphore-mode producers publish their claim in
//!   their slot too, since topic subscribers read without the mutex). A reader that finds no
//!   committed record at its position while `tail` is beyond it is looking at a claim in
//!   progress. If no *live* producer holds that claim (producers publish the tail they claim
//!   at in their slot before their CAS, and clear it after committing), the claim is dead and
//!   the reader **skips it on its own**: it moves its own position (its cursor, or the queue
//!   head with the CAS that takes records) past the claim's extent, and writes nothing into
//!   the ring. The extent comes from the claimed header if the producer got that far (and
//!   runs on over the rest of a dead batch), else it runs to the first header after it that
//!   decodes to its own position, or to the lowest claim start a producer slot holds after
//!   it (a later claim with nothing written yet), or to `tail`, whichever comes first.
//!   Several adjacent dead claims are skipped as one extent.
//!
//!   Writing nothing is what makes recovery safe with several recoverers, one of them
//!   paused: a reader's own position is the only thing it changes, and a queue consumer
//!   changes the shared head only with a CAS from the position it judged. A recoverer that
//!   wrote a record over the dead claim could write into space that producers already reuse
//!   (once another consumer moved the queue head past it, or under `overwrite`).
//!   The dead producer's `claim` is withdrawn (a CAS from the value judged dead to none), so
//!   that it stops holding back the reuse of space.
//! - **Dead semaphore-mode producer holding the mutex**: `ring::repair_pending` on
//!   `EOWNERDEAD` turns its claim into padding and an abandoned record; only the mutex holder
//!   writes that, and no producer can claim space while it holds the mutex.
//! - **Dead subscribers and producers' slots**: `registry::reclaim_dead`, called by producers
//!   that wait for room and (rate-limited) by every producer that finds the ring full, whatever
//!   the policy, so a dead cursor or a dead claim stops holding the ring even where nobody
//!   waits.
//!
//! A process that is merely stopped (SIGSTOP) is alive: its claim is waited for, never
//! taken from it.

use crate::error::{Error, ErrorCode, Result};
use crate::hooks::hook;
use crate::layout::{self, record, slot};
use crate::registry::{self, slot_field};
use crate::ring_map::RingMap;
use crate::segment::Segment;
use crate::sync::Ordering;

/// How long a reader waits at a claim in progress before it checks the claim's owner, and
/// how often it checks again while the owner lives. Recovery from a dead producer therefore
/// takes about this long after its death (plus the time to notice, at most one wait slice).
pub const RECOVERY_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// What a reader found out about a position where nothing is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing published there yet, or a live producer is still writing: wait.
    Wait,
    /// A record was committed there meanwhile: read the position again.
    Reread,
    /// The claim there is dead: the reader goes on at this position (the end of the dead
    /// extent), having skipped everything before it.
    SkipTo(u64),
}

/// The producer slot named by the record header at `pos`, if that header is CLAIMED for
/// exactly `pos`.
fn claimed_by(seg: &Segment, ring: &RingMap, pos: u64) -> Option<u32> {
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

/// Whether the owner of producer slot `i` is alive (holds the slot's lock).
fn owner_alive(seg: &Segment, i: u32) -> bool {
    seg.slot_owner_alive(i)
}

/// The active producer slots and the claim each holds (Acquire: as in `claim_is_live`).
fn producer_claims(seg: &Segment, ring: &RingMap) -> impl Iterator<Item = (u32, u64)> {
    (0..ring.max_participants).filter_map(move |i| {
        let producer = registry::is_active_as(seg, i, slot::ROLE_PRODUCER);
        // Acquire: we saw `tail` beyond `pos` (Acquire), so the claim store that preceded the
        // CAS there is visible; a later value means that claim was committed.
        producer.then(|| {
            let c = seg
                .u64_at(slot_field(seg, i, slot::CLAIM))
                .load(Ordering::Acquire);
            (i, c)
        })
    })
}

/// Whether claim `c` of slot `i` covers `pos`: a claim made at `pos`; (at the start of a
/// lap) one made earlier that padded to it; or one made earlier in a batch
/// (`Producer::try_publish_many` claims several records with one CAS and writes all their
/// headers before any commit), when the header at `pos` is CLAIMED by slot `i`.
///
/// The last case cannot mistake an old claim for a live one: a producer's `claim` is
/// `NO_CLAIM` between its claims, and a new owner of a slot claims only at positions beyond
/// the `tail` it saw when it joined, so a slot whose `claim` is below `pos` while the header
/// at `pos` names it is in the middle of the very claim that wrote that header.
fn covers(ring: &RingMap, owner: Option<u32>, i: u32, c: u64, pos: u64) -> bool {
    c == pos
        || (pos & ring.mask == 0 && c < pos && ring.lap_end(c) == pos)
        || (c < pos && owner == Some(i))
}

/// Whether a live producer holds the claim that covers `pos` (see [`covers`]).
pub(crate) fn claim_is_live(seg: &Segment, ring: &RingMap, pos: u64) -> bool {
    let owner = claimed_by(seg, ring, pos);
    producer_claims(seg, ring).any(|(i, c)| covers(ring, owner, i, c, pos) && owner_alive(seg, i))
}

/// Judges the claim at `pos`, where a reader found nothing committed: if it is dead, returns
/// where the reader goes on (see the module docs); writes nothing into the ring.
///
/// The dead producer's `claim` is withdrawn with a CAS from the value judged, so it no
/// longer holds back space (`ring::lowest_needed`): the readers' own positions protect the
/// bytes they have not passed yet.
pub(crate) fn judge_claim(seg: &Segment, ring: &RingMap, pos: u64) -> Result<Verdict> {
    let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
    if tail <= pos {
        return Ok(Verdict::Wait);
    }
    let owner = claimed_by(seg, ring, pos);
    let mut dead = Vec::new();
    for (i, c) in producer_claims(seg, ring) {
        if covers(ring, owner, i, c, pos) {
            if owner_alive(seg, i) {
                return Ok(Verdict::Wait);
            }
            dead.push((i, c));
        }
    }
    let corrupt = |what: String| {
        Error::new(
            ErrorCode::CorruptSegment,
            format!("channel {:?}: {what}", seg.name()),
        )
    };
    // Acquire: pairs with a producer's Release stores of its header; a committed record is
    // read again by the caller.
    let seq = seg.u64_at(ring.at(pos)).load(Ordering::Acquire) ^ ring.key;
    // A test point: a reader that judged the claim dead and has not acted on it (a paused
    // recoverer, while others recover the same claim and producers reuse the space).
    hook!("judged_dead");
    let end = if seq & !record::STATE_MASK == pos {
        if seq & record::STATE_MASK != record::CLAIMED {
            return Ok(Verdict::Reread); // committed (or padding) after all
        }
        // The producer got as far as its header: the length is there, and a batch's further
        // headers follow it.
        let mut end = pos
            + claimed_len(seg, ring, pos).ok_or_else(|| {
                corrupt(format!(
                    "claimed record at position {pos} is longer than any record"
                ))
            })?;
        while end < tail && claimed_by(seg, ring, end).is_some() && !claim_is_live(seg, ring, end) {
            match claimed_len(seg, ring, end) {
                Some(need) => end += need,
                None => break, // left to the next judgement, which reports it
            }
        }
        end
    } else {
        // Nothing written at `pos`. A claim made after the dead one may have nothing written
        // yet either (its producer stalled between its CAS and its headers): no header would
        // mark it, and skipping everything up to `tail` would swallow a live producer's record.
        // Its producer's slot `claim`, stored before that CAS (so visible now that we have seen
        // `tail` beyond it), marks where it starts: the dead extent ends there at the latest.
        // The slots are read before the scan: a claim cleared meanwhile was committed first,
        // and the scan then sees its header.
        // Only live producers' claims bound it: a dead producer's claim right after this one,
        // with nothing written either, is part of the same dead extent (and withdrawn below).
        let later: Vec<(u32, u64)> = producer_claims(seg, ring)
            .filter(|&(_, c)| c != slot::NO_CLAIM && c > pos)
            .collect();
        let mut bound = tail.min(pos + ring.capacity);
        for &(i, c) in &later {
            if c < bound && owner_alive(seg, i) {
                bound = c;
            }
        }
        // The first header after `pos` that decodes to its own position starts the next
        // record: bytes of an older lap decode to older positions. (Padding can leave as
        // little as 8 bytes before the end of a lap, so the scan starts 8 bytes on.)
        let mut q = pos + record::ALIGN as u64;
        while q < bound {
            let s = seg.u64_at(ring.at(q)).load(Ordering::Acquire) ^ ring.key;
            if s & !record::STATE_MASK == q
                && (record::CLAIMED..=record::ABANDONED).contains(&(s & record::STATE_MASK))
            {
                break;
            }
            q += record::ALIGN as u64;
        }
        let end = q.min(bound);
        dead.extend(later.into_iter().filter(|&(_, c)| c < end));
        end
    };
    for (i, c) in dead {
        // AcqRel: the withdrawal is ordered after what we judged; it fails if the slot made
        // another claim since (then it is not dead) or was withdrawn already.
        let _ = seg
            .u64_at(slot_field(seg, i, slot::CLAIM))
            .compare_exchange(c, slot::NO_CLAIM, Ordering::AcqRel, Ordering::Relaxed);
    }
    Ok(Verdict::SkipTo(end))
}

/// Bytes of the CLAIMED record at `pos` from its `len`, if that is a possible record there.
fn claimed_len(seg: &Segment, ring: &RingMap, pos: u64) -> Option<u64> {
    let mut len = [0u8; 4];
    seg.read_bytes(ring.at(pos) + record::LEN, &mut len);
    let need = record::record_len(u32::from_le_bytes(len) as usize) as u64;
    (need <= ring.max_record() && need <= ring.lap_end(pos) - pos).then_some(need)
}

/// Clears any producer slot's `claim` that is exactly `pos` (a dead mutex holder's, see
/// `ring::repair_pending`).
pub(crate) fn withdraw_claim_at(seg: &Segment, ring: &RingMap, pos: u64) {
    for i in 0..ring.max_participants {
        let claim = seg.u64_at(slot_field(seg, i, slot::CLAIM));
        // Release: as every claim store; AcqRel on success orders it after what we read.
        let _ = claim.compare_exchange(pos, slot::NO_CLAIM, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// Semaphore mode, with the mutex held (`ring::repair_pending`): turns the uncommitted record
/// of `need` bytes at `start` into an abandoned one, which every reader skips, unless it was
/// committed after all. Safe only under the mutex: no producer can claim (and so reuse) the
/// space meanwhile, and readers only read it.
///
/// The `len` it writes counts as a message's (`record_len(len)` is `need`).
pub(crate) fn abandon(seg: &Segment, ring: &RingMap, start: u64, need: u64) {
    let seq = seg.u64_at(ring.at(start) + record::SEQ);
    if seq.load(Ordering::Acquire) == record::encode_seq(start, record::MESSAGE, ring.key) {
        return;
    }
    // A claim is at least a header; a smaller extent can only come
    // from damaged words.
    let Some(skip) = (need as usize).checked_sub(record::HEADER_LEN) else {
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
