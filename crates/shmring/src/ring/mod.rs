//! The ring and its record protocol, for both sync modes and both kinds.
//!
//! **Lock-free producers** follow agrona's `ManyToOneRingBuffer` (Aeron): claim space with a
//! CAS on the shared 64-bit `tail`, write the record header as *claimed*, copy the payload,
//! then commit with a Release store of the header's sequence word. A record that would cross
//! the end of the data area is preceded by a padding record that runs to the end, claimed in
//! the same CAS. Before its CAS a producer publishes the tail it claims at in its participant
//! slot (`claim`), so no other producer reuses space a slow claim is still writing.
//!
//! **Semaphore-mode producers** do the same under the segment's robust mutex, recording the
//! claim in the header (`pending_*`) so that a successor can repair it if they die holding
//! the mutex. Free space and available messages are *counted from the ring's positions*
//! (tail, cursors, queue head) rather than kept in POSIX semaphores, so a process that dies
//! mid-operation can never leave a count wrong; waits are futex waits on the doorbells.
//!
//! **Readers** differ from Aeron's single consumer: a topic subscriber has its own cursor in
//! the participant table (fan-out); queue consumers share `queue_head` and take records with
//! a CAS on it (lock-free) or under the mutex (semaphore). Instead of zeroing consumed bytes,
//! each header carries its own position (XOR a per-segment key), so a header is accepted only
//! for the exact position a reader expects.
//!
//! ```text
//!  invariant: head_cache <= every live cursor/claim <= tail <= head_cache + capacity
//!
//!   producer (lock-free)                    topic subscriber
//!   --------------------                    ----------------
//!   t = tail; check t+len <= head+cap       s = seq[cursor]                  (Acquire)
//!   slot.claim = t               (Release)  if s == enc(cursor, MESSAGE):
//!   CAS tail t -> t+len           (AcqRel)    check len; copy payload out
//!   write len, producer                       cursor += record_len
//!   seq[t] = enc(t, CLAIMED)      (Release) store cursor (Release, once per batch)
//!   write payload                           fence(SeqCst); wake producers if any wait
//!   seq[t] = enc(t, MESSAGE)      (Release)
//!   slot.claim = NONE             (Release)
//!   fence(SeqCst); wake subscribers if any wait
//! ```
//!
//! Under the `overwrite` policy producers ignore subscribers (never wait for them) but still
//! never overwrite a claim in progress; a subscriber checks after each copy that `tail` has
//! not lapped the record (a seqlock-style validation) and, when lapped, resumes at `latest`,
//! counting what it lost from the producers' own message numbers.

use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::layout::{self, record, slot};
use crate::options::{Kind, Policy};
use crate::recovery;
use crate::registry::{self, slot_field};
use crate::ring_map::RingMap;
use crate::segment::Segment;
use crate::sync::{Ordering, fence};
use crate::wait::{WaitStrategy, ring_data_doorbell, ring_doorbell, sleep_until};

mod ack;
mod producer;
mod subscriber;
mod waiter;

pub use producer::Producer;
pub use subscriber::{Drained, FRAME_PREFIX, RECORD_FRAME_PREFIX, Subscriber};
pub use waiter::Waiter;

/// How often a waiting producer, or one that finds the ring full, re-checks the participant
/// table for dead owners.
const RECLAIM_EVERY: Duration = Duration::from_millis(50);

/// Most payloads `try_publish_many` takes from its iterator at a time (the records of one
/// claim are a prefix of them).
const BATCH: usize = 64;

/// How many times one drain under `overwrite` resumes at `latest` after being lapped.
const MAX_RESUMES: u32 = 1024;

/// The lowest position anyone still needs: the lowest live subscriber cursor (topic, unless
/// `overwrite`) or the queue head (queue), the lowest claim in progress, and `tail`.
///
/// Two rules make the scan safe against participants arriving while it runs:
/// - a producer stores its claim *before* its CAS on `tail` (Release): a scan whose `tail`
///   load (Acquire) sees that CAS, or any later one, also sees the claim;
/// - `Subscriber::new` activates its slot, issues a SeqCst fence and only then reads the
///   `tail` it starts from, while the scan reads `tail`, issues a SeqCst fence and then reads
///   the slots: either the scan sees the new slot, or the subscriber starts at a `tail` no
///   older than the scan's (the fences are totally ordered).
fn lowest_needed(seg: &Segment, geo: &RingMap) -> u64 {
    let mut low = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
    // SYNC POINT: pairs with the SeqCst fence in `Subscriber::new` (see above).
    fence(Ordering::SeqCst);
    if geo.kind == Kind::Queue {
        // SYNC POINT: pairs with the consumers' AcqRel CAS on queue_head, made after they
        // copied the records out.
        low = low.min(
            seg.u64_at(layout::QUEUE_HEAD_OFFSET)
                .load(Ordering::Acquire),
        );
    }
    let cursors = geo.kind == Kind::Topic && geo.policy != Policy::Overwrite;
    let held = geo.acks;
    for i in 0..geo.max_participants {
        let state = seg
            .u32_at(slot_field(seg, i, slot::STATE))
            .load(Ordering::Acquire);
        // Away named subscribers count as live ones: their cursor holds producers back.
        let s = state & slot::STATE_BITS;
        if s != slot::ACTIVE && s != slot::AWAY {
            continue;
        }
        match seg
            .u32_at(slot_field(seg, i, slot::ROLE))
            .load(Ordering::Relaxed)
        {
            // SYNC POINT: pairs with the subscriber's Release store of its cursor, made after
            // it copied the records out: our later writes there cannot race its reads.
            slot::ROLE_SUBSCRIBER if cursors => {
                low = low.min(
                    seg.u64_at(slot_field(seg, i, slot::CURSOR))
                        .load(Ordering::Acquire),
                )
            }
            // SYNC POINT: an at-least-once consumer's `held` (stored before its take moved
            // the queue head, which we read above with Acquire; then Release as it grows):
            // what it has not acknowledged is never reused.
            slot::ROLE_CONSUMER if held => {
                low = low.min(
                    seg.u64_at(slot_field(seg, i, slot::HELD))
                        .load(Ordering::Acquire),
                )
            }
            slot::ROLE_PRODUCER => {
                low = low.min(
                    seg.u64_at(slot_field(seg, i, slot::CLAIM))
                        .load(Ordering::Acquire),
                )
            }
            _ => {}
        }
    }
    low
}

/// Recomputes the lowest needed position and raises the shared `head_cache` to it.
fn refresh_head(seg: &Segment, geo: &RingMap) -> u64 {
    let low = lowest_needed(seg, geo);
    // fetch_max: the cache only ever rises; a slower producer's older value cannot lower it.
    let prev = seg
        .u64_at(layout::HEAD_CACHE_OFFSET)
        .fetch_max(low, Ordering::AcqRel);
    prev.max(low)
}

/// Waits until a record of `payload_len` bytes would fit, or `timeout` passes. Returns
/// whether it fits. Subscribers found dead while waiting are removed from the table, so a
/// crashed subscriber never holds publishers back for long.
pub(crate) fn wait_for_space(seg: &Segment, payload_len: usize, timeout: Option<Duration>) -> bool {
    let geo = RingMap::of(seg);
    let need = geo.need(payload_len);
    let fits = || {
        let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
        if seg.check_position("tail", tail).is_err() {
            return true; // damaged: the publish that follows reports it
        }
        let (_, total) = geo.claim_size(tail, need);
        tail + total <= refresh_head(seg, &geo).saturating_add(geo.capacity)
    };
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        if sleep_until(
            seg,
            layout::SPACE_SEQ_OFFSET,
            layout::SPACE_WAITERS_OFFSET,
            crate::futex::WAKE_ANY,
            deadline,
            Some(RECLAIM_EVERY),
            WaitStrategy::Block,
            fits,
        ) {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        registry::reclaim_dead(seg);
    }
}

/// Wakes producers waiting for room (after a cursor stopped counting).
pub(crate) fn wake_producers(seg: &Segment) {
    ring_doorbell(seg, layout::SPACE_SEQ_OFFSET, layout::SPACE_WAITERS_OFFSET);
}

/// The position of the first record at or after `from` that the ring still holds, given a
/// `tail` read before: the first 8-aligned word from there (or from `tail - capacity`, where
/// older bytes are gone) that decodes to its own position with a record state. Only a header
/// written for exactly that position does (see [`record`]): payload bytes and older laps'
/// headers do not. `tail` if there is none yet. Producers may be rewriting what is scanned:
/// the reader validates each record it then reads (`Subscriber::copy_from`).
pub(crate) fn first_record_from(seg: &Segment, geo: &RingMap, from: u64, tail: u64) -> u64 {
    let align = record::ALIGN as u64;
    let oldest = tail.saturating_sub(geo.capacity);
    let mut pos = from.max(oldest).next_multiple_of(align);
    while pos < tail {
        // Acquire: a header found is read with what its producer wrote before it.
        let seq = seg.u64_at(geo.at(pos)).load(Ordering::Acquire) ^ geo.key;
        if seq & !record::STATE_MASK == pos
            && (record::CLAIMED..=record::ABANDONED).contains(&(seq & record::STATE_MASK))
        {
            return pos;
        }
        pos += align;
    }
    tail
}

/// Semaphore mode: restores the ring after a producer died holding the mutex (called with
/// the mutex held, before it is marked consistent). A claim the dead producer had made but
/// not committed becomes padding plus an abandoned record, so readers skip it whole.
pub(crate) fn repair_pending(seg: &Segment) {
    let geo = RingMap::of(seg);
    let len = seg
        .u64_at(layout::PENDING_LEN_OFFSET)
        .load(Ordering::Acquire);
    if len == 0 {
        return;
    }
    let pos = seg
        .u64_at(layout::PENDING_POS_OFFSET)
        .load(Ordering::Acquire);
    let start = seg
        .u64_at(layout::PENDING_START_OFFSET)
        .load(Ordering::Acquire);
    let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
    // Checked: the pending words are shared memory; damaged ones are left alone.
    if pos.checked_add(len) == Some(tail)
        && (pos..tail).contains(&start)
        && seg.check_position("pending position", pos).is_ok()
        && seg.check_position("pending start", start).is_ok()
    {
        if start != pos {
            seg.u64_at(geo.at(pos)).store(
                record::encode_seq(pos, record::PADDING, geo.key),
                Ordering::Release,
            );
        }
        recovery::abandon(seg, &geo, start, tail - start);
    }
    // The dead holder may have published its claim in its slot too (before or after its
    // `tail` store): withdraw it, or it would hold back reuse of the space (`lowest_needed`)
    // until its slot is reclaimed, which under policy `fail` nothing may trigger. Only the
    // mutex holder claims in this mode, and we hold the mutex now: no live claim is `pos`.
    recovery::withdraw_claim_at(seg, &geo, pos);
    seg.u64_at(layout::PENDING_LEN_OFFSET)
        .store(0, Ordering::Release);
    ring_data_doorbell(seg);
}

/// What a reader found at a position.
enum Next {
    /// A committed message.
    Message {
        /// Offset in the segment of the record (its header).
        at: usize,
        /// Payload length in bytes.
        len: usize,
        /// The position after the record.
        next: u64,
    },
    /// Padding or an abandoned record: skip to this position.
    Skip(u64),
    /// Nothing committed yet.
    Empty,
}

/// Reads the record at `pos`, checking everything read from shared memory.
#[inline]
fn next_at(seg: &Segment, geo: &RingMap, pos: u64) -> Result<Next> {
    // Positions can come from shared memory (the queue head, `latest`, a waiter's cursor).
    seg.check_position("record position", pos)?;
    let at = geo.at(pos);
    // SYNC POINT: Acquire pairs with the producer's Release commit; the payload is visible.
    let seq = seg.u64_at(at + record::SEQ).load(Ordering::Acquire) ^ geo.key;
    if seq & !record::STATE_MASK != pos {
        return Ok(Next::Empty); // an older lap's bytes: not written yet
    }
    let state = seq & record::STATE_MASK;
    match state {
        record::MESSAGE | record::ABANDONED => {
            let mut len = [0u8; 4];
            seg.read_bytes(at + record::LEN, &mut len);
            let len = u32::from_le_bytes(len) as usize;
            let room = geo.capacity - (pos & geo.mask);
            // An abandoned record's `len` counts as a message's would (see `recovery::abandon`).
            let total = record::record_len(len);
            let limit = if state == record::MESSAGE {
                geo.max_message_size as usize
            } else {
                record::record_len(geo.max_message_size as usize) - record::HEADER_LEN
            };
            if len > limit || total as u64 > room {
                return Err(Error::new(
                    ErrorCode::CorruptSegment,
                    format!(
                        "channel {:?}: record at position {pos} claims {len} bytes (max {limit}, \
                         {room} bytes left before the end of the ring)",
                        seg.name(),
                    ),
                ));
            }
            let next = pos + total as u64;
            Ok(if state == record::MESSAGE {
                Next::Message { at, len, next }
            } else {
                Next::Skip(next)
            })
        }
        record::PADDING => Ok(Next::Skip(pos + geo.capacity - (pos & geo.mask))),
        record::CLAIMED => Ok(Next::Empty),
        other => Err(Error::new(
            ErrorCode::CorruptSegment,
            format!(
                "channel {:?}: record at position {pos} has unknown state {other}",
                seg.name()
            ),
        )),
    }
}
