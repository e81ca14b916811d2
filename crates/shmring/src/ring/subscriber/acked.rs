//! An at-least-once queue consumer: takes that leave a record, deliveries held until
//! acknowledged, `ack` / `nack`, and taking over what dead, returning or (with an ack
//! timeout) stalled consumers held. The shared protocol is in `ring/ack.rs`.

use std::collections::VecDeque;

use super::{Drained, Subscriber};
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::hook;
use crate::layout::{self, slot};
use crate::mutex;
use crate::options::SyncMode;
use crate::process;
use crate::registry::{self, slot_field};
use crate::ring::ack::{self, Range, field, owner_word};
use crate::ring::repair_pending;
use crate::sync::Ordering;
use crate::wait::ring_doorbell;

/// How often a busy consumer looks through the table for ranges to take over (dead or
/// stalled owners). Offers (`nack`, a consumer closing) are seen at once.
const SCAN_EVERY_NS: u64 = 10_000_000;

/// What became of one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mark {
    /// Handed out, not settled.
    Delivered,
    /// Acknowledged.
    Acked,
    /// Given back (`nack`, or after a `nack` before it): delivered again, to anyone.
    Returned,
}

/// Which deliveries `mark` settles.
#[derive(Clone, Copy, Debug)]
enum Which {
    /// The one at this position.
    One(u64),
    /// Those at or after this position.
    From(u64),
    /// Those at or before this position.
    Through(u64),
    /// All of them.
    All,
}

/// The range this consumer works on (its own take, or one taken over).
#[derive(Debug)]
pub(super) struct Work {
    /// The slot whose fields describe the range.
    slot: u32,
    /// Our `owner` word on it.
    owner: u64,
    /// How many times the range has been delivered (1: first delivery).
    deliveries: u64,
    /// The range's `held` as we last stored or read it.
    held: u64,
    /// The range's end.
    end: u64,
    /// Where the records not copied out yet start (`end` once all were).
    next_copy: u64,
    /// Copied records: (position, position after it, what became of it), in position order.
    recs: VecDeque<(u64, u64, Mark)>,
    /// How many of `recs` are `Mark::Delivered` (unsettled).
    unsettled: usize,
}

impl Subscriber {
    /// At-least-once: marks the delivery at `position` acknowledged; it is not delivered
    /// again. Returns false if it was not an unsettled delivery of this consumer (already
    /// settled, or taken over by another consumer after the channel's ack timeout).
    pub fn ack(&mut self, position: u64) -> bool {
        self.mark(Which::One(position), Mark::Acked)
    }

    /// At-least-once: gives the delivery at `position` back to the queue, with every
    /// delivery after it in the same batch that was not acknowledged yet: another consumer
    /// (or this one) receives them again, marked as redelivered, once every delivery before
    /// it was acknowledged. Returns false if `position` was not an unsettled delivery.
    pub fn nack(&mut self, position: u64) -> bool {
        self.mark(Which::From(position), Mark::Returned)
    }

    /// At-least-once: acknowledges every delivery up to and including `position`.
    pub fn ack_through(&mut self, position: u64) -> bool {
        self.mark(Which::Through(position), Mark::Acked)
    }

    /// At-least-once: how many deliveries this consumer holds, not acknowledged yet.
    pub fn in_flight(&self) -> usize {
        self.work.as_ref().map_or(0, |w| {
            debug_assert_eq!(
                w.unsettled,
                w.recs.iter().filter(|r| r.2 == Mark::Delivered).count()
            );
            w.unsettled
        })
    }

    /// At-least-once: messages this consumer received that had been delivered before.
    pub fn redelivered(&self) -> u64 {
        self.redelivered
    }

    /// How many times the last message received had been delivered, this time included (1
    /// outside at-least-once queues).
    pub fn last_deliveries(&self) -> u64 {
        self.frame_flags.max(1) as u64
    }

    fn mark(&mut self, which: Which, to: Mark) -> bool {
        let Some(w) = self.work.as_mut() else {
            return false;
        };
        // Acquire: as in `settle`. A range another consumer took over is not ours to settle.
        if field(&self.seg, w.slot, slot::OWNER).load(Ordering::Acquire) != w.owner {
            self.work = None;
            self.publish_in_flight();
            return false;
        }
        // `recs` is in position order: the records concerned are one run of it, found by
        // binary search (acknowledging a batch one by one stays linear).
        let run = match which {
            Which::One(p) => match w.recs.binary_search_by_key(&p, |r| r.0) {
                Ok(i) => i..i + 1,
                Err(_) => 0..0,
            },
            Which::From(p) => w.recs.partition_point(|r| r.0 < p)..w.recs.len(),
            Which::Through(p) => 0..w.recs.partition_point(|r| r.0 <= p),
            Which::All => 0..w.recs.len(),
        };
        let mut any = false;
        for r in w.recs.range_mut(run) {
            if r.2 == Mark::Delivered {
                r.2 = to;
                w.unsettled -= 1;
                any = true;
            }
        }
        if to == Mark::Returned && any {
            // Everything after a returned delivery goes back with it, so the range given
            // back is one piece.
            let first = w.recs.iter().position(|r| r.2 == Mark::Returned);
            if let Some(first) = first {
                for r in w.recs.iter_mut().skip(first) {
                    if r.2 == Mark::Delivered {
                        r.2 = Mark::Returned;
                        w.unsettled -= 1;
                    }
                }
            }
        }
        if any {
            self.settle();
        }
        any
    }

    /// Acknowledges every delivery not settled yet (each receive call does this first, unless
    /// [`Subscriber::set_auto_commit`] turned it off).
    pub(super) fn ack_all(&mut self) {
        self.mark(Which::All, Mark::Acked);
    }

    /// Gives back every delivery not acknowledged and every record not delivered yet.
    pub(super) fn return_all(&mut self) {
        if let Some(w) = self.work.as_mut()
            && w.unsettled == 0
            && w.next_copy < w.end
        {
            // Nothing handed out is unsettled, but records are left to copy: give them back
            // as they are (a returned "delivery" stands in front of them; no delivery
            // changes, so `mark` would not settle: settle here).
            w.recs.push_back((w.next_copy, w.next_copy, Mark::Returned));
            self.settle();
            return;
        }
        self.mark(Which::All, Mark::Returned);
    }

    /// Moves the range's shared `held` over what is settled, and settles the range once
    /// everything in it is acknowledged (or gives the rest back after a `nack`).
    fn settle(&mut self) {
        let seg = self.seg.clone();
        let Some(w) = self.work.as_mut() else {
            return;
        };
        while let Some(&(_, next, Mark::Acked)) = w.recs.front() {
            w.recs.pop_front();
            if w.recs.is_empty() {
                w.next_copy = w.next_copy.max(next);
            }
        }
        let owner = field(&seg, w.slot, slot::OWNER);
        let held = field(&seg, w.slot, slot::HELD);
        // Acquire: pairs with an adopter's CAS; if it took the range we leave it alone.
        if owner.load(Ordering::Acquire) != w.owner {
            self.work = None;
            self.publish_in_flight();
            return;
        }
        let to = match w.recs.front() {
            Some(&(pos, _, _)) => pos,
            None if w.next_copy >= w.end => slot::NO_HELD,
            None => w.next_copy,
        };
        let returned = matches!(w.recs.front(), Some((_, _, Mark::Returned)));
        let mut lost = false;
        if to != w.held {
            debug_assert!(to > w.held, "held moved back from {} to {to}", w.held);
            // SYNC POINT: Release pairs with the producers' Acquire load of `held` in
            // `lowest_needed`: our copies of what we acknowledged are done before they reuse
            // it. A CAS: a consumer that took the range over after the ack timeout moves it
            // too; the loser leaves the range to it.
            lost = held
                .compare_exchange(w.held, to, Ordering::Release, Ordering::Relaxed)
                .is_err();
            if !lost {
                hook!("mid_ack");
                w.held = to;
                field(&seg, w.slot, slot::TAKEN_AT)
                    .store(process::monotonic_ns(true), Ordering::Relaxed);
                ring_doorbell(&seg, layout::SPACE_SEQ_OFFSET, layout::SPACE_WAITERS_OFFSET);
            }
        }
        if !lost && returned {
            let (_, tag, _) = ack::owner_parts(w.owner);
            let offered = owner_word(slot::OWNER_OFFERED, tag, 0);
            // Release: whoever takes the range over sees `held` as we left it.
            let _ = owner.compare_exchange(w.owner, offered, Ordering::Release, Ordering::Relaxed);
            ack::announce_offer(&seg);
        }
        let freed_other = !lost && to == slot::NO_HELD && w.slot != self.slot;
        if lost || returned || to == slot::NO_HELD {
            self.work = None;
        }
        if freed_other {
            // A range taken over from a dead consumer is settled: its slot may go now.
            registry::reclaim_dead(&seg);
        }
        self.publish_in_flight();
    }

    fn publish_in_flight(&self) {
        let n = self.in_flight() as u64;
        // Relaxed: statistics, read by `stats()` only.
        field(&self.seg, self.slot, slot::IN_FLIGHT).store(n, Ordering::Relaxed);
        field(&self.seg, self.slot, slot::REDELIVERED).store(self.redelivered, Ordering::Relaxed);
    }

    /// `drain_into` of an at-least-once queue consumer.
    pub(super) fn drain_acked(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        if self.auto_commit {
            self.ack_all();
        }
        if let Some(w) = &self.work {
            let open = w.unsettled;
            if open > 0 {
                return Err(Error::new(
                    ErrorCode::Busy,
                    format!(
                        "channel {:?}: {open} deliveries are not acknowledged yet; ack or nack \
                         them before receiving more",
                        self.seg.name()
                    ),
                ));
            }
        }
        if self.work.is_none()
            && let Some(d) = self.try_adopt(buf, max_count)?
        {
            return Ok(d);
        }
        if self.work.is_some() {
            return self.copy_work(buf, max_count);
        }
        self.take_own(buf, max_count)
    }

    /// Copies the next records of our range (taken over, or too many for one buffer).
    fn copy_work(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        let Some(w) = self.work.as_ref() else {
            return Ok(Drained::default());
        };
        let (from, end, deliveries) = (w.next_copy, w.end, w.deliveries);
        // A consumer that lost the range to us (ack timeout) may still move its `held` and
        // let producers reuse what it acknowledged: each record is validated as under
        // `overwrite`, and one found lapped is left out (it was acknowledged).
        self.copy_end = end;
        self.validate_below = end;
        self.frame_flags = deliveries.min(u32::MAX as u64) as u32;
        self.delivered.clear();
        let found = self.copy_from(from, buf, max_count);
        self.copy_end = u64::MAX;
        self.validate_below = 0;
        let (d, pos) = found?;
        if deliveries > 1 {
            self.redelivered += d.count as u64;
        }
        let delivered = std::mem::take(&mut self.delivered);
        if let Some(w) = self.work.as_mut() {
            w.recs
                .extend(delivered.iter().map(|&(p, n)| (p, n, Mark::Delivered)));
            w.unsettled += delivered.len();
            w.next_copy = pos.min(w.end).max(w.next_copy);
            if pos >= w.end {
                w.next_copy = w.end;
            }
        }
        self.delivered = delivered;
        self.received += d.count as u64;
        self.publish_progress();
        if d.count == 0 {
            self.settle(); // nothing left but padding or records acknowledged meanwhile
        } else {
            self.publish_in_flight();
        }
        Ok(d)
    }

    /// Looks for a range to take over (now and then, or at once after an offer) and, if one
    /// is won, delivers from it.
    fn try_adopt(&mut self, buf: &mut [u8], max_count: usize) -> Result<Option<Drained>> {
        let seg = self.seg.clone();
        let now = process::monotonic_ns(true);
        // Acquire: pairs with `announce_offer`'s Release bump.
        let offers = seg.u32_at(layout::OFFERS_OFFSET).load(Ordering::Acquire);
        if !cfg!(loom) && offers == self.offers_seen && now < self.next_scan_ns {
            return Ok(None);
        }
        self.offers_seen = offers;
        self.next_scan_ns = now + SCAN_EVERY_NS;
        let me = (self.slot, self.slot_state);
        for i in 0..self.geo.max_participants {
            if !ack::is_consumer(&seg, i) {
                continue;
            }
            let Range::Adoptable(seen) = ack::inspect(&seg, &self.geo, i, me, now) else {
                continue;
            };
            let (_, tag, _) = ack::owner_parts(seen);
            let owner = owner_word(self.slot as u64, tag, self.slot_state);
            let Some((held, end, deliveries)) = ack::adopt(&seg, i, seen, owner) else {
                continue;
            };
            hook!("adopted");
            self.work = Some(Work {
                slot: i,
                owner,
                deliveries,
                held,
                end,
                next_copy: held,
                recs: VecDeque::new(),
                unsettled: 0,
            });
            let d = self.copy_work(buf, max_count)?;
            if d.count > 0 {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// Takes the next records from the queue head, leaving a record of the take (see
    /// `ring/ack.rs`), in either sync mode.
    fn take_own(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        let seg = self.seg.clone();
        let geo = self.geo;
        // Acquire: pairs with whoever settled our slot's last range.
        if field(&seg, self.slot, slot::HELD).load(Ordering::Acquire) != slot::NO_HELD {
            // Our slot still describes a range someone else works on (we lost it to the ack
            // timeout), or a failed take to clean up: `inspect` cleans the latter.
            let _ = ack::inspect(&seg, &geo, self.slot, (self.slot, self.slot_state), 0);
            if field(&seg, self.slot, slot::HELD).load(Ordering::Acquire) != slot::NO_HELD {
                return Ok(Drained::default());
            }
        }
        let _guard = match geo.sync {
            SyncMode::Semaphore => Some(mutex::lock(&seg, repair_pending)?),
            SyncMode::LockFree => None,
        };
        let head_word = seg.u64_at(layout::QUEUE_HEAD_OFFSET);
        loop {
            // Acquire: pairs with the last take's move of the head.
            let head = head_word.load(Ordering::Acquire);
            self.frame_flags = 1;
            self.delivered.clear();
            let found = self.copy_from(head, buf, max_count);
            let (d, pos) = match found {
                Ok(r) => r,
                // A stale view can read a header being rewritten; only a current one counts.
                Err(_) if head_word.load(Ordering::Acquire) != head => continue,
                Err(e) => return Err(e),
            };
            if pos == head {
                if head_word.load(Ordering::Acquire) != head {
                    continue;
                }
                return Ok(d);
            }
            hook!("mid_read");
            self.take_seq += 1;
            let seq = self.take_seq;
            let owner = owner_word(self.slot as u64, seq, self.slot_state);
            if !ack::take(&seg, &geo, self.slot, seq, head, pos, owner) {
                continue;
            }
            hook!("after_take");
            let delivered = std::mem::take(&mut self.delivered);
            self.work = Some(Work {
                slot: self.slot,
                owner,
                deliveries: 1,
                held: head,
                end: pos,
                next_copy: pos,
                recs: delivered
                    .iter()
                    .map(|&(p, n)| (p, n, Mark::Delivered))
                    .collect(),
                unsettled: delivered.len(),
            });
            self.delivered = delivered;
            self.took(d);
            if d.count == 0 {
                self.settle(); // only padding or abandoned records were passed
            } else {
                self.publish_in_flight();
            }
            return Ok(d);
        }
    }

    /// At join: our slot holds no range; takes continue the slot's sequence (a `taker`
    /// word of the slot's last owner may still be about).
    pub(super) fn join_acked(&mut self) {
        let seg = &self.seg;
        self.take_seq = field(seg, self.slot, slot::TAKE_OP).load(Ordering::Relaxed) >> 2;
        // Relaxed: published by the SeqCst activation of the slot that follows.
        field(seg, self.slot, slot::HELD).store(slot::NO_HELD, Ordering::Relaxed);
        field(seg, self.slot, slot::IN_FLIGHT).store(0, Ordering::Relaxed);
        field(seg, self.slot, slot::REDELIVERED).store(0, Ordering::Relaxed);
    }

    /// At drop: gives back what we hold; whether our slot must outlive us (it describes a
    /// range still held, which another consumer finishes; it is freed after that).
    pub(super) fn leave_acked(&mut self) -> bool {
        self.return_all();
        field(&self.seg, self.slot, slot::HELD).load(Ordering::Acquire) != slot::NO_HELD
    }

    /// The state word of our slot, for `owner` words.
    pub(super) fn read_slot_state(&self) -> u32 {
        self.seg
            .u32_at(slot_field(&self.seg, self.slot, slot::STATE))
            .load(Ordering::Relaxed)
    }
}

#[cfg(loom)]
impl Subscriber {
    /// A loom model's consumer that dies: its slot's lock goes (as the kernel drops a dead
    /// process's), nothing else is released.
    #[doc(hidden)]
    pub fn die(self) {
        self.seg.unlock_slot(self.slot);
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, so moving its `Arc` out drops it once.
        drop(unsafe { std::ptr::read(&me.seg) });
    }

    /// A loom model's consumer that copies what the queue head offers, publishes its take
    /// (and, with `acquire`, gets `taker` for it) and dies before completing it. Returns the
    /// number of records its take covered.
    #[doc(hidden)]
    pub fn take_and_die(mut self, acquire: bool) -> usize {
        let mut buf = vec![0u8; 256];
        let head = self
            .seg
            .u64_at(layout::QUEUE_HEAD_OFFSET)
            .load(Ordering::Acquire);
        let (d, pos) = self.copy_from(head, &mut buf, 8).unwrap();
        if pos != head {
            let seq = self.take_seq + 1;
            let owner = owner_word(self.slot as u64, seq, self.slot_state);
            ack::publish_take(
                &self.seg,
                &self.geo,
                self.slot,
                (seq, head, pos, owner),
                acquire,
            );
        }
        self.die();
        d.count
    }
}
