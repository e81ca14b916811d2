//! What a subscription hands out: frames with or without positions, the position of the last
//! message, and a named subscriber's consumption (the cursor it stores once messages are
//! consumed, which is what producers may not overwrite).

use super::Subscriber;
use crate::layout;
use crate::layout::slot;
use crate::registry::slot_field;
use crate::sync::Ordering;
use crate::wait::ring_doorbell;

impl Subscriber {
    /// Frames of [`Subscriber::drain_into`] carry the record's position: `[len: u32 LE]
    /// [flags: u32, zero][position: u64 LE][payload]` ([`RECORD_FRAME_PREFIX`](crate::RECORD_FRAME_PREFIX) bytes before
    /// the payload) instead of `[len: u32 LE][payload]`.
    pub fn set_record_frames(&mut self, on: bool) {
        self.record_frames = on;
    }

    /// A named subscriber: whether each receive call first consumes everything received
    /// before it (the default), or only [`Subscriber::commit_through`] does (for callers that
    /// learn later whether a message was handled, such as an event loop's handlers).
    pub fn set_auto_commit(&mut self, on: bool) {
        self.auto_commit = on;
    }

    /// The position of the last message this subscription received, if any: unique in the
    /// channel's life and increasing.
    pub fn last_position(&self) -> Option<u64> {
        self.last
    }

    /// A named subscriber: marks every message received up to and including the one at
    /// `position` as consumed (they are not delivered again to this name). Each receive call
    /// first does this for everything received before it, unless
    /// [`Subscriber::set_auto_commit`] turned that off. No effect on other subscriptions.
    pub fn commit_through(&mut self, position: u64) {
        if !self.named {
            return;
        }
        let mut to = None;
        while let Some(&(pos, next)) = self.pending.front() {
            if pos > position {
                break;
            }
            to = Some(next);
            self.pending.pop_front();
        }
        if self.pending.is_empty() {
            to = Some(self.cursor); // and any padding read past after the last message
        }
        if let Some(to) = to {
            self.store_cursor(to);
        }
    }

    /// Named: marks everything received so far as consumed.
    pub(super) fn commit_all(&mut self) {
        if self.named && !self.pending.is_empty() {
            self.pending.clear();
            self.store_cursor(self.cursor);
        }
    }

    /// Stores our slot's cursor (what producers may not overwrite) and wakes producers.
    pub(super) fn store_cursor(&self, to: u64) {
        // SYNC POINT: Release pairs with the producers' Acquire cursor loads in
        // `lowest_needed`: our copies out of the ring are done before they reuse it.
        self.seg
            .u64_at(slot_field(&self.seg, self.slot, slot::CURSOR))
            .store(to, Ordering::Release);
        ring_doorbell(
            &self.seg,
            layout::SPACE_SEQ_OFFSET,
            layout::SPACE_WAITERS_OFFSET,
        );
    }
}
