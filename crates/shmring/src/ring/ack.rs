//! At-least-once queues: the shared side of takes, ranges and their hand-over.
//!
//! A consumer of an at-least-once queue *holds* what it took until it acknowledges it. Its
//! participant slot describes one range: `held` (the first position not acknowledged),
//! `held_end`, and `owner` (who works on it now, and how often it was delivered). Producers
//! never reuse space at or after any `held` (`lowest_needed`), so a range's records stay in
//! the ring until they are acknowledged, whoever dies meanwhile.
//!
//! **Takes.** A take must move `queue_head` *and* leave a record of who took what, even if
//! its consumer dies between the two. So a take is published first and completed by anyone:
//!
//! ```text
//!  consumer C (own range settled)          anyone who finds taker = C's take ("evaluate")
//!  ------------------------------          ---------------------------------------------
//!  h = queue_head; copy records [h, p)     op = C.take_op
//!  C.held_end = p; C.owner = C; C.held = h  if op is (seq, PENDING):
//!  C.take_op = (seq, PENDING)   (Release)     decide: queue_head == C.held ? DONE : FAILED
//!  CAS taker 0 -> (C, seq)       (AcqRel)     CAS C.take_op (seq, PENDING) -> (seq, decision)
//!     (taker busy: evaluate it, retry)      if op is (seq, DONE) and taker is still (C, seq):
//!  evaluate (C, seq)                           CAS queue_head C.held -> C.held_end
//!  DONE: deliver; FAILED: held = NONE, retry CAS taker (C, seq) -> 0
//! ```
//!
//! While `taker` names a take, nobody else moves `queue_head`, so the decision read there is
//! the queue head the take was published against, and "DONE" means exactly "this consumer's
//! copies are of the records it now holds". A take is decided before `taker` is released, so
//! `taker` never names a take whose decision is still open once it changed.
//!
//! **Hand-over.** A range goes to another consumer when its owner died (its slot's lock is
//! gone, or the slot changed hands), when its owner gave it back (`nack`, or closing with
//! deliveries not acknowledged: owner index [`slot::OWNER_OFFERED`]), or, with an ack
//! timeout, when nothing of it was acknowledged for that long. The new owner wins a CAS on
//! the range's `owner` word (the range stays in the old slot; its `held` keeps holding the
//! space) and delivers what is left of it again. A consumer works on one range at a time.

use crate::layout::{self, slot};
use crate::process;
use crate::registry::slot_field;
use crate::ring_map::RingMap;
use crate::segment::Segment;
use crate::sync::{Ordering, fence};

/// Low bits of a take's sequence kept in the `taker` word.
const SEQ_BITS: u32 = 48;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// The `taker` word of slot `index`'s take `seq`.
pub(super) fn taker_word(index: u32, seq: u64) -> u64 {
    (index as u64 + 1) << SEQ_BITS | (seq & SEQ_MASK)
}

/// An `owner` word: the consumer at slot `index` (state word `state`) works on the range of
/// take `seq` (its low 20 bits tell one range of a slot from its next).
pub(super) fn owner_word(index: u64, seq: u64, state: u32) -> u64 {
    index << 52 | (seq & 0xf_ffff) << 32 | state as u64
}

/// The parts of an `owner` word: (index, take tag, state).
pub(super) fn owner_parts(word: u64) -> (u64, u64, u32) {
    (word >> 52, (word >> 32) & 0xf_ffff, word as u32)
}

/// A slot's field, as an atomic.
pub(super) fn field(seg: &Segment, index: u32, f: usize) -> &crate::sync::AtomicU64 {
    seg.u64_at(slot_field(seg, index, f))
}

/// Completes the take `taker` names (ours or anyone's): decides it if nobody has, moves the
/// queue head if it succeeded, and releases `taker`. Safe to run any number of times, by any
/// number of processes, at any moment: every step is a CAS from the value the take expects.
pub(super) fn evaluate(seg: &Segment, geo: &RingMap, taker: u64) {
    let taker_word_ = seg.u64_at(layout::TAKER_OFFSET);
    let index = (taker >> SEQ_BITS).wrapping_sub(1);
    let seq = taker & SEQ_MASK;
    if index < geo.max_participants as u64 {
        let index = index as u32;
        let op_word = field(seg, index, slot::TAKE_OP);
        // Acquire: pairs with the taker's Release store of the op (its fields are visible).
        let mut op = op_word.load(Ordering::Acquire);
        if op & SEQ_MASK << 2 == seq << 2 && op & 3 == slot::OP_PENDING {
            // While `taker` names this take, only its completion moves the queue head: what
            // we read is the queue head it was published against (see the module docs).
            let held = field(seg, index, slot::HELD).load(Ordering::Acquire);
            let head = seg
                .u64_at(layout::QUEUE_HEAD_OFFSET)
                .load(Ordering::Acquire);
            let decision = if head == held {
                slot::OP_DONE
            } else {
                slot::OP_FAILED
            };
            // AcqRel: decided once; whoever loses the race reads the decision made.
            let _ = op_word.compare_exchange(
                op,
                (op & !3) | decision,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            op = op_word.load(Ordering::Acquire);
        }
        if op & SEQ_MASK << 2 == seq << 2 && op & 3 == slot::OP_DONE {
            let from = field(seg, index, slot::HELD).load(Ordering::Acquire);
            let to = field(seg, index, slot::HELD_END).load(Ordering::Acquire);
            // Acquire fence, then `taker` again: if it still names the take, the owner has
            // not begun acknowledging (it does only after its own evaluation released
            // `taker`), so `from` is the take's start.
            fence(Ordering::Acquire);
            if taker_word_.load(Ordering::Relaxed) == taker && from < to {
                // SYNC POINT: AcqRel. Release: whoever reads the new head (the producers'
                // scan) sees the taker's `held` published before its take. Fails harmlessly
                // once someone moved it.
                let _ = seg.u64_at(layout::QUEUE_HEAD_OFFSET).compare_exchange(
                    from,
                    to,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
    }
    // AcqRel: the next taker is ordered after this take's completion.
    let _ = taker_word_.compare_exchange(taker, 0, Ordering::AcqRel, Ordering::Relaxed);
}

/// Publishes slot `index`'s take `seq` of `[from, to)` and completes it (ours). Returns
/// whether it succeeded: the range is then the slot's.
pub(super) fn take(
    seg: &Segment,
    geo: &RingMap,
    index: u32,
    seq: u64,
    from: u64,
    to: u64,
    owner: u64,
) -> bool {
    debug_assert!(from < to, "a take covers at least one record");
    // The op first, `held` last: a consumer looking for ranges to take over reads `held`
    // (Acquire) before the op, so it never pairs our new `held` with our previous, done op.
    // Relaxed: published by the Release store of `held` (to those looking), and by our
    // Release CAS of `taker` (to evaluators) and the queue head move (to producers).
    field(seg, index, slot::TAKE_OP).store(seq << 2 | slot::OP_PENDING, Ordering::Relaxed);
    field(seg, index, slot::HELD_END).store(to, Ordering::Relaxed);
    field(seg, index, slot::OWNER).store(owner, Ordering::Relaxed);
    field(seg, index, slot::DELIVERIES).store(1, Ordering::Relaxed);
    field(seg, index, slot::TAKEN_AT).store(process::monotonic_ns(true), Ordering::Relaxed);
    // Release: see above.
    field(seg, index, slot::HELD).store(from, Ordering::Release);
    crate::hooks::hook!("take_published");
    let me = acquire_taker(seg, geo, index, seq);
    crate::hooks::hook!("take_acquired");
    evaluate(seg, geo, me);
    let op = field(seg, index, slot::TAKE_OP).load(Ordering::Acquire);
    debug_assert!(
        op >> 2 == seq && op & 3 != slot::OP_PENDING,
        "a take is decided"
    );
    if op & 3 == slot::OP_DONE {
        return true;
    }
    // Release: as every store of `held` (producers may reuse the space at once).
    field(seg, index, slot::HELD).store(slot::NO_HELD, Ordering::Release);
    false
}

/// Makes slot `index`'s published take `seq` the one in `taker`, completing the takes found
/// there first. Returns our `taker` word.
pub(super) fn acquire_taker(seg: &Segment, geo: &RingMap, index: u32, seq: u64) -> u64 {
    let me = taker_word(index, seq);
    let taker = seg.u64_at(layout::TAKER_OFFSET);
    loop {
        // AcqRel: Acquire orders us after the previous take's completion (the queue head it
        // left is what our evaluation compares with); Release publishes our op to helpers.
        match taker.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return me,
            Err(other) => evaluate(seg, geo, other),
        }
    }
}

/// A loom model's consumer that dies in the middle of a take: publishes it and, with
/// `acquire`, also gets `taker` for it, but never completes it.
#[cfg(loom)]
pub(super) fn publish_take(
    seg: &Segment,
    geo: &RingMap,
    index: u32,
    (seq, from, to, owner): (u64, u64, u64, u64),
    acquire: bool,
) {
    field(seg, index, slot::TAKE_OP).store(seq << 2 | slot::OP_PENDING, Ordering::Relaxed);
    field(seg, index, slot::HELD_END).store(to, Ordering::Relaxed);
    field(seg, index, slot::OWNER).store(owner, Ordering::Relaxed);
    field(seg, index, slot::DELIVERIES).store(1, Ordering::Relaxed);
    field(seg, index, slot::HELD).store(from, Ordering::Release);
    if acquire {
        acquire_taker(seg, geo, index, seq);
    }
}

/// What a consumer found about slot `index`'s range, looking for one to take over.
pub(super) enum Range {
    /// No range, or one that is not ours to take.
    None,
    /// Free to take over: the `owner` word seen.
    Adoptable(u64),
}

/// Looks at slot `index` (a consumer's) for a range to take over, for the consumer at slot
/// `me` (state word `me_state`). Cleans up what a dead consumer left half done on the way: a
/// take it published but never completed is failed, a failed take's `held` cleared.
pub(super) fn inspect(
    seg: &Segment,
    geo: &RingMap,
    index: u32,
    (me, me_state): (u32, u32),
    now: u64,
) -> Range {
    let held = field(seg, index, slot::HELD).load(Ordering::Acquire);
    if held == slot::NO_HELD {
        return Range::None;
    }
    let op_word = field(seg, index, slot::TAKE_OP);
    let mut op = op_word.load(Ordering::Acquire);
    if op & 3 != slot::OP_DONE {
        let taker = seg.u64_at(layout::TAKER_OFFSET).load(Ordering::Acquire);
        if op & 3 == slot::OP_PENDING && taker == taker_word(index, op >> 2) {
            evaluate(seg, geo, taker);
            op = op_word.load(Ordering::Acquire);
        }
    }
    let slot_alive = || index == me || seg.slot_owner_alive(index);
    match op & 3 {
        slot::OP_DONE => {}
        slot::OP_PENDING | slot::OP_FAILED | 0 if !slot_alive() => {
            // Its consumer is dead: a take it published but never got `taker` for never
            // will; fail it (a CAS: a helper may be deciding it right now), then free `held`.
            if op & 3 == slot::OP_PENDING {
                let _ = op_word.compare_exchange(
                    op,
                    (op & !3) | slot::OP_FAILED,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                op = op_word.load(Ordering::Acquire);
            }
            if op & 3 != slot::OP_DONE {
                // Release: as every store of `held`.
                let _ = field(seg, index, slot::HELD).compare_exchange(
                    held,
                    slot::NO_HELD,
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                return Range::None;
            }
        }
        _ => return Range::None, // a live consumer's take in progress, or a damaged word
    }
    // Acquire: pairs with the Release CAS of the last owner; its stores are visible.
    let owner = field(seg, index, slot::OWNER).load(Ordering::Acquire);
    let (who, _, state) = owner_parts(owner);
    // Given back, or (a damaged word) an owner outside the table: better delivered again
    // than held for ever.
    let adoptable = if who == slot::OWNER_OFFERED || who >= geo.max_participants as u64 {
        true
    } else if who as u32 == me && state == me_state {
        false
    } else {
        let w = who as u32;
        let now_state = seg
            .u32_at(slot_field(seg, w, slot::STATE))
            .load(Ordering::Acquire);
        let timed_out = geo.ack_timeout_ns > 0
            && now.saturating_sub(field(seg, index, slot::TAKEN_AT).load(Ordering::Relaxed))
                > geo.ack_timeout_ns;
        now_state != state || timed_out || !seg.slot_owner_alive(w)
    };
    if adoptable {
        Range::Adoptable(owner)
    } else {
        Range::None
    }
}

/// Takes over slot `index`'s range, seen owned by `seen`, for `owner` (same take tag).
/// Returns the range `[held, held_end)` and how many times it has now been delivered, if we
/// won it.
pub(super) fn adopt(seg: &Segment, index: u32, seen: u64, owner: u64) -> Option<(u64, u64, u64)> {
    // Before the CAS: whoever sees us as the owner (Acquire) sees a fresh time, so a range
    // just taken over never looks timed out.
    field(seg, index, slot::TAKEN_AT).store(process::monotonic_ns(true), Ordering::Relaxed);
    // AcqRel: Acquire takes over what the last owner acknowledged; Release publishes the
    // time above.
    field(seg, index, slot::OWNER)
        .compare_exchange(seen, owner, Ordering::AcqRel, Ordering::Relaxed)
        .ok()?;
    let held = field(seg, index, slot::HELD).load(Ordering::Acquire);
    let end = field(seg, index, slot::HELD_END).load(Ordering::Acquire);
    if held == slot::NO_HELD || held >= end {
        return None; // settled meanwhile by a consumer that had lost it (timeout)
    }
    // Relaxed: only the range's owner writes it; statistics and our own frames read it.
    let deliveries = field(seg, index, slot::DELIVERIES).fetch_add(1, Ordering::Relaxed) + 1;
    Some((held, end, deliveries))
}

/// Whether any consumer's range may be taken over by the consumer at slot `me` (for its
/// waits: an idle consumer looks every now and then for what a dead one left).
pub(super) fn adoptable_exists(seg: &Segment, geo: &RingMap, me: u32) -> bool {
    let now = process::monotonic_ns(true);
    let me_state = seg
        .u32_at(slot_field(seg, me, slot::STATE))
        .load(Ordering::Relaxed);
    (0..geo.max_participants).any(|i| {
        is_consumer(seg, i)
            && matches!(
                inspect(seg, geo, i, (me, me_state), now),
                Range::Adoptable(_)
            )
    })
}

/// Whether slot `i` is an active queue consumer's.
pub(super) fn is_consumer(seg: &Segment, i: u32) -> bool {
    crate::registry::is_active_as(seg, i, slot::ROLE_CONSUMER)
}

/// Tells idle consumers that deliveries went back to the queue.
pub(super) fn announce_offer(seg: &Segment) {
    // Release: a consumer that sees the bump sees the offer made before it.
    seg.u32_at(layout::OFFERS_OFFSET)
        .fetch_add(1, Ordering::Release);
    crate::wait::ring_data_doorbell(seg);
}
