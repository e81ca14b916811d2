//! `RingMap`: where each position of a ring lies in its segment and how many bytes a record
//! takes, copied out of the validated descriptor once. The ring's producers and readers and
//! the recovery of dead claims all do their arithmetic with it.

use crate::layout::record;
use crate::options::{Delivery, Kind, Policy, SyncMode};
use crate::segment::Segment;

/// Fixed facts about one ring: its place in the segment, its sizes, its key and its options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingMap {
    /// Offset in the segment of the data area.
    pub data: usize,
    /// Bytes in the data area (a power of two).
    pub capacity: u64,
    /// `capacity - 1`: a position's offset in the data area is `position & mask`.
    pub mask: u64,
    /// Largest payload a record may carry.
    pub max_message_size: u32,
    /// The segment's sequence key (see [`record`]).
    pub key: u64,
    pub kind: Kind,
    pub sync: SyncMode,
    pub policy: Policy,
    /// At-least-once queue: consumers hold what they took until they acknowledge it.
    pub acks: bool,
    /// At-least-once: nanoseconds without an acknowledgement before a live consumer's range
    /// may be taken over (0: never).
    pub ack_timeout_ns: u64,
    /// Slots in the participant table.
    pub max_participants: u32,
}

impl RingMap {
    /// The map of `seg`'s ring.
    pub fn of(seg: &Segment) -> RingMap {
        let d = seg.descriptor();
        RingMap {
            data: d.geometry.data_offset(),
            capacity: d.geometry.capacity,
            mask: d.geometry.capacity - 1,
            max_message_size: d.geometry.max_message_size,
            key: d.seq_key,
            kind: d.kind,
            sync: d.sync,
            policy: d.policy,
            acks: d.delivery == Delivery::AtLeastOnce,
            ack_timeout_ns: d.ack_timeout_ms as u64 * 1_000_000,
            max_participants: d.geometry.max_participants,
        }
    }

    /// Whether producers overwrite what readers have not read (policy `overwrite`).
    #[inline]
    pub fn overwrite(&self) -> bool {
        self.policy == Policy::Overwrite
    }

    /// Offset in the segment of the record at `position`.
    #[inline]
    pub fn at(&self, position: u64) -> usize {
        self.data + (position & self.mask) as usize
    }

    /// Bytes a record with `payload_len` bytes of payload takes.
    #[inline]
    pub fn need(&self, payload_len: usize) -> u64 {
        record::record_len(payload_len) as u64
    }

    /// Bytes of the largest record (header and payload, aligned).
    #[inline]
    pub fn max_record(&self) -> u64 {
        self.need(self.max_message_size as usize)
    }

    /// The position where the lap of `pos` ends (the next multiple of the capacity).
    #[inline]
    pub fn lap_end(&self, pos: u64) -> u64 {
        pos + (self.capacity - (pos & self.mask))
    }

    /// Where a record of `need` bytes claimed at `tail` starts, and how many bytes the claim
    /// takes (the record, plus padding to the end of the data area if it would not fit there).
    #[inline]
    pub fn claim_size(&self, tail: u64, need: u64) -> (u64, u64) {
        // `tail` was validated by the caller (`check_position`); `need` is our own.
        debug_assert!(
            tail.is_multiple_of(record::ALIGN as u64) && need.is_multiple_of(record::ALIGN as u64),
            "positions and record lengths are multiples of {}",
            record::ALIGN
        );
        debug_assert!(need > 0, "an empty claim");
        let to_end = self.capacity - (tail & self.mask);
        if need <= to_end {
            (tail, need)
        } else {
            (tail + to_end, to_end + need)
        }
    }
}
