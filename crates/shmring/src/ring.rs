//! The lock-free multi-producer ring and its record protocol.
//!
//! Producers follow agrona's `ManyToOneRingBuffer` (Aeron): claim space with a CAS on the
//! shared 64-bit `tail`, write the record header as *claimed*, copy the payload, then commit
//! with a Release store of the header's sequence word. A record that would cross the end of
//! the data area is preceded by a padding record that runs to the end, claimed in the same
//! CAS. Subscribers differ from Aeron's single consumer: each has its own cursor in the
//! participant table (fan-out), and instead of zeroing consumed bytes, headers carry their
//! own position (XOR a per-segment key), so a header is accepted only for the exact position
//! a reader expects.
//!
//! ```text
//!  positions:  head_cache <= every live cursor <= committed records <= tail <= head_cache + capacity
//!
//!   producer                               subscriber
//!   --------                               ----------
//!   t = tail; check t+len <= head+cap       s = seq[cursor]            (Acquire)
//!   CAS tail t -> t+len           (AcqRel)  if s == enc(cursor, MESSAGE):
//!   write len, producer                       check len; copy payload out
//!   seq[t] = enc(t, CLAIMED)      (Release)   cursor += record_len
//!   write payload                           store cursor (Release, once per batch)
//!   seq[t] = enc(t, MESSAGE)      (Release) fence(SeqCst); wake producers if any wait
//!   fence(SeqCst); wake subscribers if any wait
//! ```

use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::layout::{self, record, slot};
use crate::options::Policy;
use crate::process;
use crate::registry::{self, Role, slot_field};
use crate::segment::Segment;
use crate::wait::{futex_wait, futex_wake_all};

/// How often a waiting producer re-checks the participant table for dead subscribers.
const RECLAIM_EVERY: Duration = Duration::from_millis(50);

/// Fixed facts about a ring, copied out of the validated descriptor once.
#[derive(Clone, Copy)]
struct Geo {
    data: usize,
    capacity: u64,
    mask: u64,
    max_message_size: u32,
    key: u64,
}

impl Geo {
    fn of(seg: &Segment) -> Geo {
        let d = seg.descriptor();
        Geo {
            data: d.geometry.data_offset(),
            capacity: d.geometry.capacity,
            mask: d.geometry.capacity - 1,
            max_message_size: d.geometry.max_message_size,
            key: d.seq_key,
        }
    }

    /// Offset in the segment of the record at `position`.
    #[inline]
    fn at(&self, position: u64) -> usize {
        self.data + (position & self.mask) as usize
    }

    /// Where a record of `need` bytes claimed at `tail` starts, and how many bytes the claim
    /// takes (the record, plus padding to the end of the data area if it would not fit there).
    #[inline]
    fn claim_size(&self, tail: u64, need: u64) -> (u64, u64) {
        let to_end = self.capacity - (tail & self.mask);
        if need <= to_end {
            (tail, need)
        } else {
            (tail + to_end, to_end + need)
        }
    }
}

/// The lowest position any live subscriber still needs, or `tail` if there are none.
///
/// SeqCst loads: `Subscriber::join` activates its slot and then re-reads `tail` (both SeqCst),
/// so a scan that misses a joining subscriber loaded a `tail` no later than the one that
/// subscriber starts from.
fn lowest_cursor(seg: &Segment) -> u64 {
    let mut low = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::SeqCst);
    for i in 0..seg.descriptor().geometry.max_participants {
        let state = seg
            .u32_at(slot_field(seg, i, slot::STATE))
            .load(Ordering::SeqCst);
        if state & slot::STATE_BITS == slot::ACTIVE
            && seg
                .u32_at(slot_field(seg, i, slot::ROLE))
                .load(Ordering::Relaxed)
                == slot::ROLE_SUBSCRIBER
        {
            // SYNC POINT: pairs with the subscriber's Release store of its cursor, made after
            // it copied the records out: our later writes there cannot race its reads.
            low = low.min(
                seg.u64_at(slot_field(seg, i, slot::CURSOR))
                    .load(Ordering::SeqCst),
            );
        }
    }
    low
}

/// Recomputes the lowest cursor and raises the shared `head_cache` to it.
fn refresh_head(seg: &Segment) -> u64 {
    let low = lowest_cursor(seg);
    // fetch_max: the cache only ever rises; a slower producer's older value cannot lower it.
    let prev = seg
        .u64_at(layout::HEAD_CACHE_OFFSET)
        .fetch_max(low, Ordering::AcqRel);
    prev.max(low)
}

fn ring_doorbell(seg: &Segment, seq_off: usize, waiters_off: usize) {
    // SYNC POINT: the SeqCst fence orders our commit (or cursor) store before the waiter-count
    // load; it pairs with the sleeper's SeqCst increment + re-check (see `wait`).
    fence(Ordering::SeqCst);
    if seg.u32_at(waiters_off).load(Ordering::Relaxed) > 0 {
        let bell = seg.u32_at(seq_off);
        bell.fetch_add(1, Ordering::Release);
        futex_wake_all(bell);
    }
}

/// Sleeps on a doorbell until `ready()` holds or `deadline` passes. Returns `ready()`.
fn sleep_until(
    seg: &Segment,
    seq_off: usize,
    waiters_off: usize,
    deadline: Option<Instant>,
    slice: Option<Duration>,
    mut ready: impl FnMut() -> bool,
) -> bool {
    let waiters = seg.u32_at(waiters_off);
    let bell = seg.u32_at(seq_off);
    waiters.fetch_add(1, Ordering::SeqCst);
    let seen = bell.load(Ordering::SeqCst);
    let mut ok = ready();
    if !ok {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let nap = match (left, slice) {
            (Some(l), Some(s)) => Some(l.min(s)),
            (l, s) => l.or(s),
        };
        if nap != Some(Duration::ZERO) {
            futex_wait(bell, seen, nap);
        }
        ok = ready();
    }
    waiters.fetch_sub(1, Ordering::SeqCst);
    ok
}

/// Waits until a record of `payload_len` bytes would fit, or `timeout` passes. Returns
/// whether it fits. Subscribers found dead while waiting are removed from the table, so a
/// crashed subscriber never holds publishers back for long.
pub(crate) fn wait_for_space(seg: &Segment, payload_len: usize, timeout: Option<Duration>) -> bool {
    let geo = Geo::of(seg);
    let need = record::record_len(payload_len) as u64;
    let fits = || {
        let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::SeqCst);
        let (_, total) = geo.claim_size(tail, need);
        tail + total <= refresh_head(seg) + geo.capacity
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        if sleep_until(
            seg,
            layout::SPACE_SEQ_OFFSET,
            layout::SPACE_WAITERS_OFFSET,
            deadline,
            Some(RECLAIM_EVERY),
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

/// Publishes into a channel. One per thread; it holds a producer slot until dropped.
pub struct Producer {
    seg: Arc<Segment>,
    geo: Geo,
    slot: u32,
    /// Our copy of `head_cache`: a lower bound of every live cursor (cursors only rise).
    head: u64,
    policy: Policy,
    published: u64,
}

impl Producer {
    pub(crate) fn new(seg: Arc<Segment>) -> Result<Producer> {
        let slot = registry::grab(&seg, Role::Producer)?;
        registry::activate(&seg, slot);
        Ok(Producer {
            geo: Geo::of(&seg),
            head: seg
                .u64_at(layout::HEAD_CACHE_OFFSET)
                .load(Ordering::Acquire),
            policy: seg.descriptor().policy,
            slot,
            seg,
            published: 0,
        })
    }

    /// Largest payload this channel takes.
    pub fn max_message_size(&self) -> usize {
        self.geo.max_message_size as usize
    }

    /// Publishes one message if there is room now. `Ok(false)`: the ring is full (policy
    /// `block`); policy `fail` reports a full ring as `RingFull` instead. Subscribers are woken.
    pub fn try_publish(&mut self, payload: &[u8]) -> Result<bool> {
        let ok = self.write(payload)?;
        if ok {
            self.wake_subscribers();
        }
        Ok(ok)
    }

    /// Publishes messages in order until one does not fit; returns how many went in. Wakes
    /// subscribers once for the whole batch.
    pub fn try_publish_many<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize> {
        let mut n = 0;
        let mut result = Ok(());
        for p in payloads {
            match self.write(p) {
                Ok(true) => n += 1,
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if n > 0 {
            self.wake_subscribers();
        }
        // An error after some messages went in is still an error; the count is in the message.
        result.map(|()| n).map_err(|e| {
            if n == 0 {
                e
            } else {
                Error::new(
                    e.code(),
                    format!(
                        "{} (after {n} messages of the batch were published)",
                        e.message()
                    ),
                )
            }
        })
    }

    /// Publishes, waiting up to `timeout` (`None`: forever) for room. `Timeout` if none came.
    pub fn publish_timeout(&mut self, payload: &[u8], timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.try_publish(payload)? {
                return Ok(());
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) || !wait_for_space(&self.seg, payload.len(), left) {
                return Err(Error::new(
                    ErrorCode::Timeout,
                    format!(
                        "no room in channel {:?} within {:?}",
                        self.seg.name(),
                        timeout.unwrap_or_default()
                    ),
                ));
            }
        }
    }

    fn wake_subscribers(&self) {
        ring_doorbell(
            &self.seg,
            layout::DATA_SEQ_OFFSET,
            layout::DATA_WAITERS_OFFSET,
        );
    }

    /// Claims, writes and commits one record; `Ok(false)` if it does not fit.
    #[inline]
    fn write(&mut self, payload: &[u8]) -> Result<bool> {
        let geo = self.geo;
        if payload.len() > geo.max_message_size as usize {
            return Err(Error::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "message of {} bytes exceeds maxMessageSize {} of channel {:?}",
                    payload.len(),
                    geo.max_message_size,
                    self.seg.name()
                ),
            ));
        }
        let need = record::record_len(payload.len()) as u64;
        let tail_word = self.seg.u64_at(layout::TAIL_OFFSET);
        // Relaxed: the CAS below validates the value; nothing is read through it before.
        let mut tail = tail_word.load(Ordering::Relaxed);
        let (start, total) = loop {
            let (start, total) = geo.claim_size(tail, need);
            if tail + total > self.head + geo.capacity {
                self.head = refresh_head(&self.seg);
                if tail + total > self.head + geo.capacity {
                    if self.policy == Policy::Fail {
                        return Err(Error::new(
                            ErrorCode::RingFull,
                            format!("channel {:?} is full", self.seg.name()),
                        ));
                    }
                    return Ok(false);
                }
            }
            debug_assert!(
                tail + total - self.head <= geo.capacity,
                "claim beyond the ring"
            );
            // SYNC POINT: AcqRel. Acquire: the subscribers' cursor stores we saw via `head`
            // happen-before our writes into the freed space. Release: orders the claim for
            // the next producer, which may pad or write right behind us.
            match tail_word.compare_exchange_weak(
                tail,
                tail + total,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (start, total),
                Err(now) => tail = now,
            }
        };
        if start != tail {
            // Padding to the end of the data area; it carries nothing, so commit it at once.
            // SYNC POINT: Release pairs with the subscriber's Acquire load of `seq`.
            self.seg.u64_at(geo.at(tail)).store(
                record::encode_seq(tail, record::PADDING, geo.key),
                Ordering::Release,
            );
        }
        debug_assert_eq!(start + need, tail + total);
        let at = geo.at(start);
        let mut head = [0u8; 8];
        head[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        head[4..6].copy_from_slice(&(self.slot as u16).to_le_bytes());
        self.seg.write_bytes(at + record::LEN, &head);
        let seq = self.seg.u64_at(at + record::SEQ);
        // Claimed: recovery can tell whose record this is if we die before committing.
        // Release: the length and producer written above are visible with it.
        seq.store(
            record::encode_seq(start, record::CLAIMED, geo.key),
            Ordering::Release,
        );
        self.seg.write_bytes(at + record::HEADER_LEN, payload);
        // SYNC POINT (commit): Release pairs with the subscriber's Acquire load of `seq`;
        // the payload copied above is visible to whoever sees MESSAGE.
        seq.store(
            record::encode_seq(start, record::MESSAGE, geo.key),
            Ordering::Release,
        );
        self.published += 1;
        // Relaxed: a statistic, read by `stats()` only.
        self.seg
            .u64_at(slot_field(&self.seg, self.slot, slot::MESSAGES))
            .store(self.published, Ordering::Relaxed);
        Ok(true)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        registry::release(&self.seg, self.slot);
    }
}

/// What a subscriber found at its cursor.
enum Next {
    /// A committed message: payload offset in the segment, length, and the next position.
    Message(usize, usize, u64),
    /// Padding: skip to this position.
    Skip(u64),
    /// Nothing committed yet.
    Empty,
}

/// Reads the record at `cursor`, checking everything read from shared memory.
#[inline]
fn next_at(seg: &Segment, geo: &Geo, cursor: u64) -> Result<Next> {
    let at = geo.at(cursor);
    // SYNC POINT: Acquire pairs with the producer's Release commit; the payload is visible.
    let seq = seg.u64_at(at + record::SEQ).load(Ordering::Acquire) ^ geo.key;
    if seq & !record::STATE_MASK != cursor {
        return Ok(Next::Empty); // an older lap's bytes: not written yet
    }
    match seq & record::STATE_MASK {
        record::MESSAGE => {
            let mut len = [0u8; 4];
            seg.read_bytes(at + record::LEN, &mut len);
            let len = u32::from_le_bytes(len);
            let off = (cursor & geo.mask) + record::HEADER_LEN as u64;
            if len > geo.max_message_size || off + len as u64 > geo.capacity {
                return Err(Error::new(
                    ErrorCode::CorruptSegment,
                    format!(
                        "channel {:?}: record at position {cursor} claims {len} bytes (max {}, \
                         {} left before the end of the ring)",
                        seg.name(),
                        geo.max_message_size,
                        geo.capacity.saturating_sub(off)
                    ),
                ));
            }
            let next = cursor + record::record_len(len as usize) as u64;
            Ok(Next::Message(at + record::HEADER_LEN, len as usize, next))
        }
        record::PADDING => Ok(Next::Skip(cursor + geo.capacity - (cursor & geo.mask))),
        record::CLAIMED => Ok(Next::Empty),
        other => Err(Error::new(
            ErrorCode::CorruptSegment,
            format!(
                "channel {:?}: record at position {cursor} has unknown state {other}",
                seg.name()
            ),
        )),
    }
}

/// Whether a committed record (or padding) waits at `cursor`.
fn readable(seg: &Segment, geo: &Geo, cursor: u64) -> bool {
    !matches!(next_at(seg, geo, cursor), Ok(Next::Empty))
}

/// Result of [`Subscriber::drain_into`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Drained {
    /// Messages copied.
    pub count: usize,
    /// Bytes of the buffer used.
    pub bytes: usize,
}

/// A topic subscription: its own cursor in the participant table; receives every message
/// published after it joined. Dropping it releases the slot.
pub struct Subscriber {
    seg: Arc<Segment>,
    geo: Geo,
    slot: u32,
    cursor: u64,
    received: u64,
}

impl Subscriber {
    pub(crate) fn new(seg: Arc<Segment>) -> Result<Subscriber> {
        let slot = registry::grab(&seg, Role::Subscriber)?;
        let tail = seg.u64_at(layout::TAIL_OFFSET);
        let cursor_word = seg.u64_at(slot_field(&seg, slot, slot::CURSOR));
        // Join protocol (see `lowest_cursor`): publish a cursor, activate, then start from a
        // tail read after activation. A producer that missed our slot read an earlier tail,
        // so it cannot have claimed beyond what our start position allows.
        cursor_word.store(tail.load(Ordering::SeqCst), Ordering::SeqCst);
        registry::activate(&seg, slot);
        let cursor = tail.load(Ordering::SeqCst);
        cursor_word.store(cursor, Ordering::SeqCst);
        Ok(Subscriber {
            geo: Geo::of(&seg),
            seg,
            slot,
            cursor,
            received: 0,
        })
    }

    /// Receives one message into `out` (replacing its contents) if one is committed.
    pub fn try_recv(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        loop {
            match next_at(&self.seg, &self.geo, self.cursor)? {
                Next::Message(off, len, next) => {
                    out.clear();
                    out.resize(len, 0);
                    self.seg.read_bytes(off, out);
                    self.cursor = next;
                    self.received += 1;
                    self.publish_cursor();
                    return Ok(true);
                }
                Next::Skip(next) => self.cursor = next,
                Next::Empty => return Ok(false),
            }
        }
    }

    /// Receives one message, waiting up to `timeout` (`None`: forever). `Ok(false)` on timeout.
    pub fn recv_timeout(&mut self, out: &mut Vec<u8>, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.try_recv(out)? {
                return Ok(true);
            }
            if !self.wait(deadline.map(|d| d.saturating_duration_since(Instant::now())))
                && deadline.is_some_and(|d| Instant::now() >= d)
            {
                return Ok(false);
            }
        }
    }

    /// Copies committed messages into `buf` as frames `[len: u32 LE][payload]`, at most
    /// `max_count` of them, as many as fit. One cursor store and at most one wake-up per call.
    /// `InvalidArgument` if the next message cannot fit even in an empty `buf`.
    pub fn drain_into(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        let mut d = Drained::default();
        let mut cursor = self.cursor;
        let result = loop {
            if d.count >= max_count {
                break Ok(());
            }
            match next_at(&self.seg, &self.geo, cursor) {
                Ok(Next::Message(off, len, next)) => {
                    if d.bytes + 4 + len > buf.len() {
                        if d.count == 0 {
                            break Err(Error::new(
                                ErrorCode::InvalidArgument,
                                format!(
                                    "a {len}-byte message does not fit a {}-byte buffer",
                                    buf.len()
                                ),
                            ));
                        }
                        break Ok(());
                    }
                    buf[d.bytes..d.bytes + 4].copy_from_slice(&(len as u32).to_le_bytes());
                    self.seg
                        .read_bytes(off, &mut buf[d.bytes + 4..d.bytes + 4 + len]);
                    d.bytes += 4 + len;
                    d.count += 1;
                    cursor = next;
                }
                Ok(Next::Skip(next)) => cursor = next,
                Ok(Next::Empty) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if cursor != self.cursor {
            self.cursor = cursor;
            self.received += d.count as u64;
            self.publish_cursor();
        }
        result.map(|()| d)
    }

    fn publish_cursor(&self) {
        let seg = &self.seg;
        // SYNC POINT: Release pairs with the producers' Acquire/SeqCst cursor loads in
        // `lowest_cursor`: our copies out of the ring are done before they reuse the space.
        seg.u64_at(slot_field(seg, self.slot, slot::CURSOR))
            .store(self.cursor, Ordering::Release);
        // Relaxed: statistics, read by `stats()` only.
        seg.u64_at(slot_field(seg, self.slot, slot::MESSAGES))
            .store(self.received, Ordering::Relaxed);
        seg.u64_at(slot_field(seg, self.slot, slot::HEARTBEAT))
            .store(process::now_coarse_ns(), Ordering::Relaxed);
        ring_doorbell(seg, layout::SPACE_SEQ_OFFSET, layout::SPACE_WAITERS_OFFSET);
    }

    /// Whether a message (or padding) is committed at the cursor.
    pub fn has_data(&self) -> bool {
        readable(&self.seg, &self.geo, self.cursor)
    }

    /// Sleeps until data may be there or `timeout` passes; returns whether data is there.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.waiter().wait(timeout)
    }

    /// A handle another thread can wait with, for this subscription's cursor.
    pub fn waiter(&self) -> Waiter {
        Waiter {
            seg: self.seg.clone(),
            geo: self.geo,
            slot: self.slot,
        }
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        registry::release(&self.seg, self.slot);
        // Producers waiting for room may now go on: our cursor no longer counts.
        ring_doorbell(
            &self.seg,
            layout::SPACE_SEQ_OFFSET,
            layout::SPACE_WAITERS_OFFSET,
        );
    }
}

/// Waits for data on behalf of a [`Subscriber`], from another thread. It reads the
/// subscription's cursor from shared memory, so it never races the subscriber's copies.
#[derive(Clone)]
pub struct Waiter {
    seg: Arc<Segment>,
    geo: Geo,
    slot: u32,
}

impl Waiter {
    fn cursor(&self) -> u64 {
        // Acquire: pairs with the subscriber's Release store in `publish_cursor`.
        self.seg
            .u64_at(slot_field(&self.seg, self.slot, slot::CURSOR))
            .load(Ordering::Acquire)
    }

    /// Whether a record is committed at the subscription's cursor.
    pub fn has_data(&self) -> bool {
        readable(&self.seg, &self.geo, self.cursor())
    }

    /// Sleeps until data may be there or `timeout` passes; returns whether data is there.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        sleep_until(
            &self.seg,
            layout::DATA_SEQ_OFFSET,
            layout::DATA_WAITERS_OFFSET,
            deadline,
            None,
            || self.has_data(),
        )
    }

    /// Wakes every thread sleeping in [`Waiter::wait`] on this channel (in any process; the
    /// others find nothing new and sleep again). Used to stop a waiting thread.
    pub fn interrupt(&self) {
        let bell = self.seg.u32_at(layout::DATA_SEQ_OFFSET);
        bell.fetch_add(1, Ordering::Release);
        futex_wake_all(bell);
    }
}
