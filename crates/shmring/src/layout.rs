//! The segment layout: every offset of every shared field, in one place.
//!
//! `docs/LAYOUT.md` mirrors this module for readers in other languages; the test
//! `layout_doc_matches_code` (in `tests/layout_doc.rs`) parses that file and checks every
//! offset against the constants below, so the two cannot drift apart.
//!
//! ```text
//!  0                     1024          1024 + P*128   data_offset (4 KiB aligned)    segment_len
//!  +----------------------+-------------+--------------+--------------------------------+
//!  | header (1024 bytes)  | participant table (P slots) | pad | data area (capacity B)   |
//!  +----------------------+-----------------------------+-----+--------------------------+
//! ```
//!
//! The header is split into 128-byte lines so that fields written by different processes
//! never share a cache line (128, not 64: adjacent-line prefetch on x86 pairs lines).
//!
//! ```text
//!  header line 0 (bytes 0..128): the descriptor, written once by the creator before `ready`
//!    0 magic u64 | 8 layout_version u32 | 12 header_len u32 | 16 flags u32 (atomic) | 20 kind u8
//!   21 sync u8 | 22 policy u8 | 23 delivery u8 | 24 capacity u64 | 32 max_message_size u32
//!   36 max_participants u32 | 40 participants_offset u64 | 48 data_offset u64
//!   56 segment_len u64 | 64 creator_pid u32 | 68 mode u32 | 72 creator_start_time u64
//!   80 created_at_ns u64 | 88 ready u32 (atomic) | 92 ack_timeout_ms u32 | 96 seq_key u64
//!  104..128 reserved (zero; file bytes 104 and 105 are OFD lock bytes: names, exclusive producer)
//!  line 1 (128..256): tail u64 (atomic)        - producers' CAS target (an exclusive one's store)
//!  line 2 (256..384): head_cache u64 (atomic)  - lowest live subscriber cursor, cached
//!  line 3 (384..512): data_seq u32, data_waiters u32 (atomics; the consumers' doorbell)
//!  line 4 (512..640): space_seq u32, space_waiters u32 (atomics; the producers' doorbell)
//!  line 5 (640..768): queue_head u64 (atomic)  - queue kind: next position to hand out
//!                     648 taker u64 | 656 offers u32 (atomics; at-least-once queues)
//!  line 6 (768..896): mutex (pthread_mutex_t, robust, process-shared; 64 bytes reserved)
//!                     832 pending_pos u64 | 840 pending_len u64 | 848 pending_start u64
//!                     (semaphore mode: the claim the mutex holder is writing)
//!  line 7 (896..1024): latest u64 (atomic) - overwrite policy: start of the newest record
//! ```

/// `"SHMRING\0"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMRING\0");
/// Version of this layout. Any change to an offset or a protocol rule bumps it.
pub const LAYOUT_VERSION: u32 = 6;

/// Size of one cache line as used for padding hot fields apart.
pub const CACHE_LINE: usize = 128;
/// The whole header, in bytes.
pub const HEADER_LEN: usize = 1024;

// ---- header line 0: descriptor -------------------------------------------------------------
/// `u64` — [`MAGIC`].
pub const MAGIC_OFFSET: usize = 0;
/// `u32` — [`LAYOUT_VERSION`] of the creator.
pub const LAYOUT_VERSION_OFFSET: usize = 8;
/// `u32` — [`HEADER_LEN`] of the creator.
pub const HEADER_LEN_OFFSET: usize = 12;
/// `u32` atomic — flag bits: [`FLAG_UNLINKED`]; the other bits are zero (reserved for durable
/// channels and loans).
pub const FLAGS_OFFSET: usize = 16;
/// `u8` — [`crate::Kind`] code.
pub const KIND_OFFSET: usize = 20;
/// `u8` — [`crate::SyncMode`] code.
pub const SYNC_OFFSET: usize = 21;
/// `u8` — [`crate::Policy`] code.
pub const POLICY_OFFSET: usize = 22;
/// `u8` — [`crate::Delivery`] code (queues: 0 at-most-once, 1 at-least-once; topics: 0).
pub const DELIVERY_OFFSET: usize = 23;
/// `u32` — at-least-once queues: milliseconds without an acknowledgement after which a live
/// consumer's deliveries go to another consumer (0: never).
pub const ACK_TIMEOUT_OFFSET: usize = 92;
/// `u64` — bytes in the data area; a power of two.
pub const CAPACITY_OFFSET: usize = 24;
/// `u32` — largest payload a record may carry.
pub const MAX_MESSAGE_SIZE_OFFSET: usize = 32;
/// `u32` — number of slots in the participant table.
pub const MAX_PARTICIPANTS_OFFSET: usize = 36;
/// `u64` — where the participant table starts (always [`HEADER_LEN`]).
pub const PARTICIPANTS_OFFSET_OFFSET: usize = 40;
/// `u64` — where the data area starts.
pub const DATA_OFFSET_OFFSET: usize = 48;
/// `u64` — total length of the segment.
pub const SEGMENT_LEN_OFFSET: usize = 56;
/// `u32` — pid of the creating process.
pub const CREATOR_PID_OFFSET: usize = 64;
/// `u32` — permission bits the creator asked for.
pub const MODE_OFFSET: usize = 68;
/// `u64` — start time of the creating process (clock ticks since boot, `/proc/<pid>/stat` 22).
pub const CREATOR_START_TIME_OFFSET: usize = 72;
/// `u64` — creation time, nanoseconds since the Unix epoch.
pub const CREATED_AT_OFFSET: usize = 80;
/// `u32` atomic — [`READY`] once the creator has written everything else.
pub const READY_OFFSET: usize = 88;
/// `u64` — random key XORed into every record's sequence word (see [`record`]).
pub const SEQ_KEY_OFFSET: usize = 96;

// ---- header lines 1..4: hot, written by many processes -------------------------------------
/// `u64` atomic — next free position; producers claim space with a CAS on it.
///
/// Invariants (checked with `debug_assert!` where this process moves it, and validated with
/// `Segment::check_position` where it is read, since other processes may be hostile): a
/// multiple of [`record::ALIGN`], below [`MAX_POSITION`], only ever grows, and every byte
/// below it belongs to a claimed record or padding.
pub const TAIL_OFFSET: usize = CACHE_LINE;
/// `u64` atomic — a lower bound of every live subscriber's cursor (only ever raised, with
/// `fetch_max`). Invariant: `head_cache <= tail`, a multiple of [`record::ALIGN`].
pub const HEAD_CACHE_OFFSET: usize = 2 * CACHE_LINE;
/// `u32` atomic — bumped by producers to wake sleeping consumers (a futex word).
pub const DATA_SEQ_OFFSET: usize = 3 * CACHE_LINE;
/// `u32` atomic — number of consumers asleep (or about to sleep) on [`DATA_SEQ_OFFSET`]
/// (bits 0..30), and [`WAITERS_FENCED`] (bit 31).
pub const DATA_WAITERS_OFFSET: usize = 3 * CACHE_LINE + 4;
/// Bit 31 of the word at [`DATA_WAITERS_OFFSET`], never cleared: a reader that cannot issue
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` joined, so every waker of the readers'
/// doorbell issues a SeqCst fence before it loads the waiter count (see docs/LAYOUT.md,
/// Doorbells).
pub const WAITERS_FENCED: u32 = 1 << 31;
/// `u32` atomic — bumped by consumers to wake producers waiting for room (a futex word).
pub const SPACE_SEQ_OFFSET: usize = 4 * CACHE_LINE;
/// `u32` atomic — number of producers asleep on [`SPACE_SEQ_OFFSET`].
pub const SPACE_WAITERS_OFFSET: usize = 4 * CACHE_LINE + 4;

/// `u64` atomic — queue kind: the next position to hand to a consumer (consumers CAS it).
/// Invariants: `queue_head <= tail`, a multiple of [`record::ALIGN`], only ever grows (each
/// CAS moves it past whole records, padding and dead extents).
pub const QUEUE_HEAD_OFFSET: usize = 5 * CACHE_LINE;
/// `u64` atomic — at-least-once queues: the take in progress, `(slot + 1) << 48 | op` (the
/// low 48 bits of that consumer slot's [`slot::TAKE_OP`] sequence), or 0. A consumer moves
/// `queue_head` only through a take published here; anyone who finds one completes it
/// (see docs/LAYOUT.md, "Acknowledged queues").
pub const TAKER_OFFSET: usize = QUEUE_HEAD_OFFSET + 8;
/// `u32` atomic — at-least-once queues: bumped whenever deliveries go back to the queue (a
/// `nack`, a consumer closing with deliveries unacknowledged), so idle consumers look.
pub const OFFERS_OFFSET: usize = QUEUE_HEAD_OFFSET + 16;
/// `pthread_mutex_t` (40 bytes on x86_64 glibc; 64 reserved) — semaphore mode: a robust,
/// process-shared mutex around the ring's bookkeeping.
pub const MUTEX_OFFSET: usize = 6 * CACHE_LINE;
/// Bytes reserved for the mutex.
pub const MUTEX_LEN: usize = 64;
/// `u64` atomic — semaphore mode: position of the claim the mutex holder is writing.
pub const PENDING_POS_OFFSET: usize = MUTEX_OFFSET + MUTEX_LEN;
/// `u64` atomic — semaphore mode: bytes of that claim (0: no claim in progress).
pub const PENDING_LEN_OFFSET: usize = PENDING_POS_OFFSET + 8;
/// `u64` atomic — semaphore mode: where that claim's record starts (after any padding).
pub const PENDING_START_OFFSET: usize = PENDING_LEN_OFFSET + 8;
/// `u64` atomic — overwrite policy: start position of the newest claimed record (raised with
/// fetch_max); a lapped subscriber resumes there.
pub const LATEST_OFFSET: usize = 7 * CACHE_LINE;

/// A byte of the segment file (inside the reserved end of line 0) that is never read or
/// written: named subscribers join, leave and are removed holding an OFD write lock on it,
/// so one name never gets two slots.
pub const NAMES_LOCK_OFFSET: usize = 104;
/// A byte of the segment file next to [`NAMES_LOCK_OFFSET`], never read or written: an
/// exclusive producer holds an OFD write lock on it (through an open file description of its
/// own) for as long as it lives, and every other producer, once its slot is active, refuses
/// to join while anyone holds it.
pub const PRODUCER_LOCK_OFFSET: usize = 105;

/// Value of the `ready` word once the segment is initialised.
pub const READY: u32 = 1;

/// Bit of the `flags` word: the segment's name was removed (`shmring::unlink`, or `recover`
/// replacing a dead segment). Set with a SeqCst `fetch_or` before `shm_unlink`, then both
/// doorbells ring: participants still attached stop publishing (`Closed`) and readers get
/// `Closed` once they have drained what is left. Never cleared.
pub const FLAG_UNLINKED: u32 = 1;

/// Positions (`tail`, cursors, `queue_head`, ...) stay below this (2^62 bytes: over a century
/// at 1 TB/s). A header holding a larger one is damaged (`CorruptSegment` on attach), and
/// position arithmetic can never overflow.
pub const MAX_POSITION: u64 = 1 << 62;

const _: () = assert!(SEQ_KEY_OFFSET + 8 <= CACHE_LINE);
const _: () = assert!(SPACE_WAITERS_OFFSET + 4 <= QUEUE_HEAD_OFFSET);
const _: () = assert!(OFFERS_OFFSET + 4 <= MUTEX_OFFSET);
const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_LEN);
const _: () = assert!(PENDING_START_OFFSET + 8 <= LATEST_OFFSET);
const _: () = assert!(LATEST_OFFSET + 8 <= HEADER_LEN);
const _: () = assert!(HEADER_LEN.is_multiple_of(CACHE_LINE));

/// The participant table: one 128-byte slot per producer or consumer.
///
/// ```text
///   0 state u32 (atomic: generation << 2 | 0 free, 1 joining, 2 active, 3 away)
///   4 role u32 | 8 pid u32 | 12 flags u32 (atomic: 1 joined)
///  16 start_time u64 | 24 joined_at_ns u64 | 32 heartbeat_ns u64 (atomic)
///  40 claim u64 (atomic; producers: position of the claim being written, u64::MAX if none)
///  48 read u64 (atomic; topic subscribers: next position to read) | 56..64 reserved
///  64 cursor u64 (atomic; topic subscribers: next position not yet consumed)
///  72 messages u64 (atomic; published or received) | 80 lost u64 (atomic) | 88..96 reserved
///  96 name [u8; 32] (named subscribers: the name, zero padded)
///
///  at-least-once queue consumers use the topic-only words for their range instead:
///  48 held_end u64 | 56 take_op u64 | 64 held u64 | 88 owner u64 | 96 in_flight u64
///  104 taken_at u64 | 112 redelivered u64 | 120 deliveries u64 (all atomic)
/// ```
/// Everything in a slot is written by its owner only (and by recovery once the owner is dead),
/// so one slot never false-shares with another's writer.
pub mod slot {
    /// Bytes per slot.
    pub const SLOT_LEN: usize = 128;
    /// `u32` atomic — `generation << 2 | s`, `s` one of [`FREE`], [`JOINING`], [`ACTIVE`]. The
    /// generation grows on every grab, so a CAS made on a stale reading fails (no ABA).
    pub const STATE: usize = 0;
    /// `u32` — [`ROLE_PRODUCER`] or [`ROLE_SUBSCRIBER`].
    pub const ROLE: usize = 4;
    /// `u32` — pid of the owner, in its own PID namespace: information only (the slot's lock
    /// tells whether the owner lives; see `Segment::slot_owner_alive`).
    pub const PID: usize = 8;
    /// `u32` atomic — flag bits; [`JOINED`] once a participant is fully joined.
    pub const FLAGS: usize = 12;
    /// `u64` — start time of the owner (clock ticks since boot), so a reused pid is told apart.
    pub const START_TIME: usize = 16;
    /// `u64` — when the owner joined, nanoseconds since the Unix epoch.
    pub const JOINED_AT: usize = 24;
    /// `u64` atomic — last activity of the owner, nanoseconds since the Unix epoch.
    pub const HEARTBEAT: usize = 32;
    /// `u64` atomic — a lock-free producer's claim in progress: the tail it is claiming at
    /// (set before its CAS), or [`NO_CLAIM`]. Producers never reuse space at or after it.
    pub const CLAIM: usize = 40;
    /// [`CLAIM`] value when no claim is in progress.
    pub const NO_CLAIM: u64 = u64::MAX;
    /// `u64` atomic — a subscriber's next position to read. Invariants: a multiple of
    /// [`record::ALIGN`](super::record::ALIGN); `cursor <= tail`; only ever grows, except
    /// that a lapped `overwrite` subscriber jumps to `latest`, which is ahead of it.
    pub const CURSOR: usize = 64;
    /// `u64` atomic — messages published (producer) or received (subscriber).
    pub const MESSAGES: usize = 72;
    /// `u64` atomic — messages a subscriber lost (overwrite policy or a replay; 0 otherwise).
    pub const LOST: usize = 80;
    /// `u64` atomic — a topic subscriber's next position to read: its own copy of where it
    /// is, for the threads that wait on its behalf. Equal to [`CURSOR`] but for a named
    /// subscriber, which reads ahead of what it has consumed. Invariants: as [`CURSOR`], and
    /// `cursor <= read`.
    pub const READ: usize = 48;
    /// `[u8; NAME_LEN]` — a named subscriber's name (`[A-Za-z0-9._-]`, zero padded), written
    /// while the slot is JOINING, read by whoever looks for the name.
    pub const NAME: usize = 96;
    /// Longest subscriber name, in bytes.
    pub const NAME_LEN: usize = 32;

    /// `u64` atomic — an at-least-once consumer's range (the records its last take moved the
    /// queue head over): the first position not yet acknowledged, or [`NO_HELD`]. Producers
    /// never reuse space at or after it (`lowest_needed`). Set to the take's start before
    /// the take is published; only grows while the range is held; back to [`NO_HELD`] once
    /// the range is settled (or its take failed). Same word as [`CURSOR`] (topics only).
    pub const HELD: usize = 64;
    /// [`HELD`] when the slot holds no range.
    pub const NO_HELD: u64 = u64::MAX;
    /// `u64` atomic — the end of the range (the queue head the take moved to). Same word as
    /// [`READ`] (topics only).
    pub const HELD_END: usize = 48;
    /// `u64` atomic — the slot's latest take: `sequence << 2 | state`, state
    /// [`OP_PENDING`], [`OP_DONE`] or [`OP_FAILED`] (0: none yet). Decided once, by a CAS
    /// from pending, by whoever completes the take.
    pub const TAKE_OP: usize = 56;
    /// Take state: published, not decided.
    pub const OP_PENDING: u64 = 1;
    /// Take state: the queue head was where the take started; the range is the slot's.
    pub const OP_DONE: u64 = 2;
    /// Take state: another take came first; the range is void.
    pub const OP_FAILED: u64 = 3;
    /// `u64` atomic — who works on the slot's range: `index << 52 | tag << 32 | state` with
    /// the consumer's slot `index`, its slot `state` word when it took the range over
    /// (generation included), and `tag` the low 20 bits of the range's take sequence (so
    /// that one range's owner word never equals the next range's). `index`
    /// [`OWNER_OFFERED`]: given back, for any consumer to take.
    pub const OWNER: usize = 88;
    /// [`OWNER`] index of a range given back (nacked, or its consumer closed).
    pub const OWNER_OFFERED: u64 = 0xfff;
    /// `u64` atomic — an at-least-once consumer's deliveries not acknowledged yet
    /// (statistics).
    pub const IN_FLIGHT: usize = 96;
    /// `u64` atomic — `CLOCK_MONOTONIC` nanoseconds when the range last changed hands or was
    /// acknowledged in part: the ack timeout counts from there.
    pub const TAKEN_AT: usize = 104;
    /// `u64` atomic — messages an at-least-once consumer received again (statistics).
    pub const REDELIVERED: usize = 112;
    /// `u64` atomic — how many times the slot's range has been delivered (1 after the take,
    /// one more each time another consumer takes it over).
    pub const DELIVERIES: usize = 120;

    /// Slot state: nobody owns it.
    pub const FREE: u32 = 0;
    /// Slot state: grabbed, the owner is filling it in.
    pub const JOINING: u32 = 1;
    /// Slot state: owned and valid.
    pub const ACTIVE: u32 = 2;
    /// Slot state: a named subscriber that is away (closed or dead). Nobody owns it or holds
    /// its lock; its name and cursor stay, and its cursor holds producers back as a live
    /// subscriber's would, until the name joins again or is removed.
    pub const AWAY: u32 = 3;
    /// Mask of the state bits in the state word.
    pub const STATE_BITS: u32 = 3;
    /// The state word's generation bits after one more grab.
    pub const fn next_generation(state: u32) -> u32 {
        (state & !STATE_BITS).wrapping_add(STATE_BITS + 1)
    }
    /// Flag: a named subscriber (its slot goes [`AWAY`], not [`FREE`], when its owner leaves).
    pub const NAMED: u32 = 2;
    /// Flag: the participant finished joining (a subscriber has its starting cursor); until
    /// then it counts for the ring's safety but is not yet shown as a producer/subscriber.
    pub const JOINED: u32 = 1;
    /// Role: a producer.
    pub const ROLE_PRODUCER: u32 = 1;
    /// Role: a subscriber of a topic.
    pub const ROLE_SUBSCRIBER: u32 = 2;
    /// Role: a consumer of a queue.
    pub const ROLE_CONSUMER: u32 = 3;

    const _: () =
        assert!(CURSOR.is_multiple_of(64) && LOST + 8 <= NAME && NAME + NAME_LEN <= SLOT_LEN);
}

/// A record in the data area: a 24-byte header, then the payload, padded to 8 bytes.
///
/// ```text
///   0                  8           12        14         16                 24
///   +------------------+-----------+---------+----------+------------------+-----------
///   | seq u64 (atomic) | len u32   | prod u16| flags u16| pseq u64         | payload ...
///   +------------------+-----------+---------+----------+------------------+-----------
///   seq = (position | state) XOR seq_key
///   state: 1 claimed, 2 message, 3 padding, 4 abandoned
/// ```
///
/// `pseq` is the producer's own message number (its slot's `messages` count before this
/// record): a reader that was lapped (policy `overwrite`, or a replay racing the producers)
/// counts exactly how many messages of each producer it skipped from the gaps in them.
///
/// An *abandoned* record is a claim whose producer died before committing it: recovery
/// rewrites it so that readers skip `len` bytes of payload (`record_len(len)` in all).
///
/// A record's `position` is its absolute 64-bit byte position in the stream (offset in the
/// data area = `position & (capacity - 1)`). Because every position is a multiple of 8, the
/// low three bits carry the state. XORing with the segment's random `seq_key` means stale
/// bytes left from an earlier lap (old payloads) cannot pass for a committed header by
/// accident: a reader accepts a header only when `seq` decodes to exactly its own position.
/// That also lets a replaying reader find the first record at or after any position: the
/// first 8-aligned word from there that decodes to its own position is a record's header.
///
/// A padding record is only its `seq` word (8 bytes) and always runs to the end of the data
/// area, so it needs no length. Positions and the capacity are multiples of 8, so at least
/// one word always remains before the end for it.
pub mod record {
    /// Bytes in a record header (the payload starts here).
    pub const HEADER_LEN: usize = 24;
    /// Records start at multiples of this.
    pub const ALIGN: usize = 8;
    /// `u64` atomic — encoded position and state, written last (commit).
    pub const SEQ: usize = 0;
    /// `u32` — payload length in bytes.
    pub const LEN: usize = 8;
    /// `u16` — participant slot of the producer that claimed the record.
    pub const PRODUCER: usize = 12;
    /// `u16` — reserved, zero.
    pub const FLAGS: usize = 14;

    /// State: claimed by a producer that is still writing.
    pub const CLAIMED: u64 = 1;
    /// State: a committed message.
    pub const MESSAGE: u64 = 2;
    /// State: padding to the end of the data area.
    pub const PADDING: u64 = 3;
    /// State: a claim given up by recovery; skipped by readers, never delivered.
    pub const ABANDONED: u64 = 4;
    /// `u64` — the producer's message number.
    pub const PSEQ: usize = 16;
    /// Mask of the state bits.
    pub const STATE_MASK: u64 = 7;

    /// Total bytes one record with `payload_len` bytes of payload occupies.
    #[inline]
    pub const fn record_len(payload_len: usize) -> usize {
        (HEADER_LEN + payload_len + ALIGN - 1) & !(ALIGN - 1)
    }

    /// The sequence word for `position` in `state` under `key`.
    #[inline]
    pub const fn encode_seq(position: u64, state: u64, key: u64) -> u64 {
        (position | state) ^ key
    }
}

/// Smallest data area accepted (tiny under loom, so a model wraps in a few messages).
pub const MIN_CAPACITY: u64 = if cfg!(loom) { 64 } else { 4096 };
/// Largest data area accepted (64 GiB).
pub const MAX_CAPACITY: u64 = 1 << 36;
/// Largest participant table accepted.
pub const MAX_PARTICIPANTS: u32 = 4096;
/// Page size used to align the data area.
pub const PAGE: usize = 4096;

/// Sizes of a segment, derived from the creator's options and checked on every attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes in the data area.
    pub capacity: u64,
    /// Largest payload.
    pub max_message_size: u32,
    /// Slots in the participant table.
    pub max_participants: u32,
}

impl Geometry {
    /// Checks the sizes; errors carry the offending values.
    pub fn validate(&self) -> Result<(), String> {
        check_capacity(self.capacity)?;
        if self.max_participants == 0 || self.max_participants > MAX_PARTICIPANTS {
            return Err(format!(
                "maxParticipants {} is outside 1..={MAX_PARTICIPANTS}",
                self.max_participants
            ));
        }
        let largest = max_message_size_for(self.capacity);
        if self.max_message_size as u64 > largest {
            return Err(format!(
                "maxMessageSize {} is too large for capacity {} (at most {largest}: one record \
                 must fit in half the ring)",
                self.max_message_size, self.capacity
            ));
        }
        Ok(())
    }

    /// Where the participant table starts.
    pub const fn participants_offset(&self) -> usize {
        HEADER_LEN
    }

    /// Where slot `index` starts.
    pub const fn slot_offset(&self, index: u32) -> usize {
        HEADER_LEN + index as usize * slot::SLOT_LEN
    }

    /// Where the data area starts (page aligned).
    pub const fn data_offset(&self) -> usize {
        let end = HEADER_LEN + self.max_participants as usize * slot::SLOT_LEN;
        (end + PAGE - 1) & !(PAGE - 1)
    }

    /// Total segment length.
    pub const fn segment_len(&self) -> usize {
        self.data_offset() + self.capacity as usize
    }
}

/// Checks that `capacity` is a power of two within [`MIN_CAPACITY`]..=[`MAX_CAPACITY`].
pub fn check_capacity(capacity: u64) -> Result<(), String> {
    if !capacity.is_power_of_two() {
        return Err(format!("capacity {capacity} is not a power of two"));
    }
    if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(format!(
            "capacity {capacity} is outside {MIN_CAPACITY}..={MAX_CAPACITY}"
        ));
    }
    Ok(())
}

/// The largest `maxMessageSize` a ring of `capacity` bytes accepts: a record (header and
/// payload, aligned) may take at most half the ring, so that a claim that
/// needs padding to the end of the ring always fits in an empty ring.
pub const fn max_message_size_for(capacity: u64) -> u64 {
    let half = capacity / 2 - record::HEADER_LEN as u64;
    if half > u32::MAX as u64 {
        u32::MAX as u64 & !7
    } else {
        half
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_len_is_aligned() {
        assert_eq!(record::record_len(0), 24);
        assert_eq!(record::record_len(1), 32);
        assert_eq!(record::record_len(8), 32);
        assert_eq!(record::record_len(9), 40);
    }

    #[test]
    fn capacity_errors_carry_values() {
        assert_eq!(
            check_capacity(1000).unwrap_err(),
            "capacity 1000 is not a power of two"
        );
        assert!(check_capacity(2048).unwrap_err().contains("2048"));
        assert!(check_capacity(1 << 20).is_ok());
    }

    #[test]
    fn geometry_offsets() {
        let g = Geometry {
            capacity: 1 << 16,
            max_message_size: 1024,
            max_participants: 64,
        };
        assert_eq!(g.data_offset(), 12288);
        assert_eq!(g.segment_len(), 12288 + 65536);
        assert_eq!(g.slot_offset(1), 1024 + 128);
        let too_big = Geometry {
            max_message_size: 40_000,
            ..g
        };
        assert!(too_big.validate().unwrap_err().contains("40000"));
    }
}
