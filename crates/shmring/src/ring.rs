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

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::hooks::hook;
use crate::layout::{self, record, slot};
use crate::mutex;
use crate::options::{Kind, Policy, SyncMode};
use crate::process;
use crate::recovery::{self, RECOVERY_POLL, Verdict};
use crate::registry::{self, Role, slot_field};
use crate::segment::Segment;
use crate::sync::{Ordering, fence};
use crate::wait::{self, WaitStrategy};

/// How often a waiting producer, or one that finds the ring full, re-checks the participant
/// table for dead owners.
const RECLAIM_EVERY: Duration = Duration::from_millis(50);

/// Most payloads `try_publish_many` takes from its iterator at a time (the records of one
/// claim are a prefix of them).
const BATCH: usize = 64;

/// How many times one drain under `overwrite` resumes at `latest` after being lapped.
const MAX_RESUMES: u32 = 1024;

/// Fixed facts about a ring, copied out of the validated descriptor once.
#[derive(Clone, Copy)]
struct Geo {
    data: usize,
    capacity: u64,
    mask: u64,
    max_message_size: u32,
    key: u64,
    kind: Kind,
    sync: SyncMode,
    policy: Policy,
    /// Extra header bytes: the producer message number under `overwrite`.
    extra: usize,
    max_participants: u32,
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
            kind: d.kind,
            sync: d.sync,
            policy: d.policy,
            extra: if d.policy == Policy::Overwrite {
                record::OVERWRITE_EXTRA
            } else {
                0
            },
            max_participants: d.geometry.max_participants,
        }
    }

    /// The facts recovery needs.
    fn ring(&self) -> recovery::Ring {
        recovery::Ring {
            data: self.data,
            capacity: self.capacity,
            mask: self.mask,
            key: self.key,
            max_record: self.need(self.max_message_size as usize),
            extra: self.extra,
            max_participants: self.max_participants,
        }
    }

    /// Offset in the segment of the record at `position`.
    #[inline]
    fn at(&self, position: u64) -> usize {
        self.data + (position & self.mask) as usize
    }

    /// Bytes a record with `payload_len` bytes of payload takes.
    #[inline]
    fn need(&self, payload_len: usize) -> u64 {
        record::record_len(payload_len + self.extra) as u64
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
fn lowest_needed(seg: &Segment, geo: &Geo) -> u64 {
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
    for i in 0..geo.max_participants {
        let state = seg
            .u32_at(slot_field(seg, i, slot::STATE))
            .load(Ordering::Acquire);
        if state & slot::STATE_BITS != slot::ACTIVE {
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
fn refresh_head(seg: &Segment, geo: &Geo) -> u64 {
    let low = lowest_needed(seg, geo);
    // fetch_max: the cache only ever rises; a slower producer's older value cannot lower it.
    let prev = seg
        .u64_at(layout::HEAD_CACHE_OFFSET)
        .fetch_max(low, Ordering::AcqRel);
    prev.max(low)
}

fn ring_doorbell(seg: &Segment, seq_off: usize, waiters_off: usize) {
    // SYNC POINT: the SeqCst fence orders our commit (or cursor) store before the waiter-count
    // load; it pairs with the sleeper's SeqCst increment + re-check (see `sleep_until`).
    fence(Ordering::SeqCst);
    if seg.u32_at(waiters_off).load(Ordering::Relaxed) > 0 {
        seg.u32_at(seq_off).fetch_add(1, Ordering::Release);
        seg.futex_wake_all(seq_off);
    }
}

/// Sleeps on a doorbell until `ready()` holds or `deadline` passes, spinning first as
/// `strategy` says. Returns `ready()`. `bits` are the sleeper's wake bits: every ring of the
/// doorbell wakes it, and an interrupt (`futex_wake_bits`) only if the bits meet
/// ([`wait::WAKE_ANY`] for all).
#[allow(clippy::too_many_arguments)] // one doorbell's words, the wait's bounds, and the check
fn sleep_until(
    seg: &Segment,
    seq_off: usize,
    waiters_off: usize,
    bits: u32,
    deadline: Option<Instant>,
    slice: Option<Duration>,
    strategy: WaitStrategy,
    mut ready: impl FnMut() -> bool,
) -> bool {
    // A segment shrunk, removed or unlinked under us ends the wait: the caller's next
    // operation reports it (see `segment.rs`).
    if seg.check_file_now_and_then().is_err() {
        return true;
    }
    let mut ready = || seg.finished() || ready();
    if strategy.spin(deadline, &mut ready) {
        return true;
    }
    if strategy == WaitStrategy::Spin {
        return ready();
    }
    if seg.check_file().is_err() {
        return true;
    }
    let waiters = seg.u32_at(waiters_off);
    let bell = seg.u32_at(seq_off);
    waiters.fetch_add(1, Ordering::Relaxed);
    // SYNC POINT: pairs with the waker's SeqCst fence in `ring_doorbell` (a Dekker pair):
    // either our re-check below sees its change, or it sees our waiter count and rings.
    fence(Ordering::SeqCst);
    // Acquire: a bump after this read makes FUTEX_WAIT return at once (value mismatch).
    let seen = bell.load(Ordering::Acquire);
    let mut ok = ready();
    if !ok {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let nap = match (left, slice) {
            (Some(l), Some(s)) => Some(l.min(s)),
            (l, s) => l.or(s),
        };
        if nap != Some(Duration::ZERO) {
            seg.futex_wait_bits(seq_off, seen, nap, bits);
            // The file may have shrunk while we slept: look (one fstat, next to the futex
            // system call) before `ready` touches the mapping again.
            let _ = seg.check_file();
        }
        if seg.shrunk() {
            return true; // the mapping must not be touched any more
        }
        ok = ready();
    }
    // Relaxed: a late decrement only costs a waker one unneeded FUTEX_WAKE.
    waiters.fetch_sub(1, Ordering::Relaxed);
    ok
}

/// Waits until a record of `payload_len` bytes would fit, or `timeout` passes. Returns
/// whether it fits. Subscribers found dead while waiting are removed from the table, so a
/// crashed subscriber never holds publishers back for long.
pub(crate) fn wait_for_space(seg: &Segment, payload_len: usize, timeout: Option<Duration>) -> bool {
    let geo = Geo::of(seg);
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
            wait::WAKE_ANY,
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

/// Semaphore mode: restores the ring after a producer died holding the mutex (called with
/// the mutex held, before it is marked consistent). A claim the dead producer had made but
/// not committed becomes padding plus an abandoned record, so readers skip it whole.
fn repair_pending(seg: &Segment) {
    let geo = Geo::of(seg);
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
        recovery::abandon(seg, &geo.ring(), start, tail - start);
    }
    // The dead holder may have published its claim in its slot too (before or after its
    // `tail` store): withdraw it, or it would hold back reuse of the space (`lowest_needed`)
    // until its slot is reclaimed, which under policy `fail` nothing may trigger. Only the
    // mutex holder claims in this mode, and we hold the mutex now: no live claim is `pos`.
    recovery::withdraw_claim_at(seg, &geo.ring(), pos);
    seg.u64_at(layout::PENDING_LEN_OFFSET)
        .store(0, Ordering::Release);
    ring_doorbell(seg, layout::DATA_SEQ_OFFSET, layout::DATA_WAITERS_OFFSET);
}

/// Publishes into a channel. One per thread; it holds a producer slot until dropped.
pub struct Producer {
    seg: Arc<Segment>,
    geo: Geo,
    slot: u32,
    /// Our copy of `head_cache`: a lower bound of every position still needed.
    head: u64,
    published: u64,
    /// Publishes so far, for the segment file checks (`Segment::check_publish`).
    checks: u32,
    /// When this producer may next sweep the participant table for dead owners on finding
    /// the ring full (CLOCK_MONOTONIC_COARSE, ns; see [`room_after_refresh`]).
    next_reclaim: u64,
}

impl Producer {
    pub(crate) fn new(seg: Arc<Segment>) -> Result<Producer> {
        seg.check_file()?;
        let slot = registry::grab(&seg, Role::Producer)?;
        registry::activate(&seg, slot);
        registry::mark_joined(&seg, slot);
        Ok(Producer {
            geo: Geo::of(&seg),
            head: seg
                .u64_at(layout::HEAD_CACHE_OFFSET)
                .load(Ordering::Acquire),
            slot,
            seg,
            published: 0,
            checks: 0,
            next_reclaim: 0,
        })
    }

    /// Largest payload this channel takes.
    pub fn max_message_size(&self) -> usize {
        self.geo.max_message_size as usize
    }

    /// Publishes one message if there is room now. `Ok(false)`: the ring is full (policy
    /// `block`); policy `fail` reports a full ring as `RingFull` instead; policy `overwrite`
    /// never finds it full. Subscribers are woken.
    pub fn try_publish(&mut self, payload: &[u8]) -> Result<bool> {
        let ok = self.write(payload)?;
        if ok {
            self.count_published();
            self.wake_subscribers();
        }
        Ok(ok)
    }

    /// Publishes messages in order until one does not fit; returns how many went in. Wakes
    /// subscribers once for the whole batch.
    ///
    /// Lock-free channels without the `overwrite` policy claim room for several records with
    /// one CAS (see [`Producer::write_batch`]); the others claim each record on its own.
    pub fn try_publish_many<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize> {
        let mut n = 0;
        let mut result = Ok(());
        if self.geo.sync == SyncMode::LockFree && self.geo.policy != Policy::Overwrite {
            result = self.write_batches(payloads.into_iter(), &mut n);
        } else {
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
        }
        if n > 0 {
            self.count_published();
            self.wake_subscribers();
        }
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
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
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

    fn full(&self) -> Result<bool> {
        self.seg.check_full()?;
        if self.geo.policy == Policy::Fail {
            return Err(Error::new(
                ErrorCode::RingFull,
                format!("channel {:?} is full", self.seg.name()),
            ));
        }
        Ok(false)
    }

    /// Claims, writes and commits one record; `Ok(false)` if it does not fit.
    #[inline]
    fn write(&mut self, payload: &[u8]) -> Result<bool> {
        self.seg.check_publish(&mut self.checks)?;
        let geo = self.geo;
        if payload.len() > geo.max_message_size as usize {
            return Err(self.too_large(payload.len()));
        }
        let need = geo.need(payload.len());
        match geo.sync {
            SyncMode::LockFree => self.write_lockfree(payload, need),
            SyncMode::Semaphore => self.write_locked(payload, need),
        }
    }

    fn too_large(&self, len: usize) -> Error {
        Error::new(
            ErrorCode::MessageTooLarge,
            format!(
                "message of {len} bytes exceeds maxMessageSize {} of channel {:?}",
                self.geo.max_message_size,
                self.seg.name()
            ),
        )
    }

    /// `try_publish_many` for lock-free channels without `overwrite`: takes up to
    /// [`BATCH`] payloads at a time from `payloads` and publishes them with as few claims as
    /// fit ([`Producer::write_batch`]), counting them in `n`. Stops when the ring is full
    /// (`Ok`), or with the error of an oversize payload once every payload before it went in.
    fn write_batches<'a>(
        &mut self,
        mut payloads: impl Iterator<Item = &'a [u8]>,
        n: &mut usize,
    ) -> Result<()> {
        let max = self.geo.max_message_size as usize;
        let mut pending: [&[u8]; BATCH] = [&[]; BATCH];
        // `pending[from..to]` are taken from `payloads` and not yet published.
        let (mut from, mut to) = (0, 0);
        let mut oversize = None;
        let mut exhausted = false;
        loop {
            pending.copy_within(from..to, 0);
            to -= from;
            from = 0;
            while to < BATCH && !exhausted && oversize.is_none() {
                match payloads.next() {
                    None => exhausted = true,
                    Some(p) if p.len() > max => oversize = Some(self.too_large(p.len())),
                    Some(p) => {
                        pending[to] = p;
                        to += 1;
                    }
                }
            }
            if from == to {
                break;
            }
            let k = self.write_batch(&pending[from..to])?;
            if k == 0 {
                return Ok(()); // full: the oversize payload, if any, was not reached
            }
            from += k;
            *n += k;
        }
        oversize.map_or(Ok(()), Err)
    }

    /// Claims room for the first records of `batch` with one CAS (as many as fit before the
    /// end of the data area, within the room producers may use, and in at most as many bytes
    /// as the largest record takes, so that a dead claim stays within the extent recovery
    /// scans), writes every record's header (CLAIMED) and then each payload and commit.
    /// Returns how many records went in; 0 if not even the first fits (policy `block`).
    ///
    /// Writing all the headers first is what lets recovery tell a live batch from a dead one:
    /// a reader waits only at the first uncommitted record of a claim, and finds it CLAIMED by
    /// this producer's slot, whose `claim` (the claim's start) is at or before it (see
    /// `recovery::claim_is_live`).
    fn write_batch(&mut self, batch: &[&[u8]]) -> Result<usize> {
        self.seg.check_publish(&mut self.checks)?;
        let geo = self.geo;
        let seg = &*self.seg;
        let tail_word = seg.u64_at(layout::TAIL_OFFSET);
        let claim = seg.u64_at(slot_field(seg, self.slot, slot::CLAIM));
        let limit = geo.need(geo.max_message_size as usize);
        // Relaxed: the CAS below validates the value; nothing is read through it before.
        let mut tail = tail_word.load(Ordering::Relaxed);
        let (tail, start, count) = loop {
            if let Err(e) = seg.check_position("tail", tail) {
                claim.store(slot::NO_CLAIM, Ordering::Release);
                return Err(e);
            }
            let first = geo.need(batch[0].len());
            let (start, _) = geo.claim_size(tail, first);
            // Bytes left in this lap from `start`: records never cross the end of the data
            // area (a padding record runs to it first).
            let lap = geo.capacity - (start & geo.mask);
            let room = |head: u64| head.saturating_add(geo.capacity).saturating_sub(start);
            if first > room(self.head) {
                // As in `write_lockfree`: withdraw a claim left from a failed CAS first.
                claim.store(slot::NO_CLAIM, Ordering::Release);
                if !room_after_refresh(seg, &geo, &mut self.head, &mut self.next_reclaim, |h| {
                    first <= room(h)
                }) {
                    return self.full().map(|_| 0);
                }
            }
            let most = lap.min(room(self.head)).min(limit);
            let (mut count, mut bytes) = (1, first);
            while let Some(p) = batch.get(count) {
                let need = geo.need(p.len());
                if bytes + need > most {
                    break;
                }
                bytes += need;
                count += 1;
            }
            // Published before the CAS, which releases it (see `lowest_needed`). Release: a
            // reader that sees this claim (`recovery::claim_is_live` loads it with Acquire)
            // also sees the commit of our previous claim, so it never takes that for dead.
            claim.store(tail, Ordering::Release);
            // SYNC POINT: AcqRel, as in `write_lockfree`.
            match tail_word.compare_exchange_weak(
                tail,
                start + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (tail, start, count),
                Err(now) => tail = now,
            }
        };
        hook!("after_claim");
        pad(seg, &geo, tail, start);
        let batch = &batch[..count];
        let mut pos = start;
        for p in batch {
            write_header(seg, &geo, self.slot, pos, p.len());
            pos += geo.need(p.len());
        }
        let mut pos = start;
        for p in batch {
            write_body_and_commit(seg, &geo, pos, p);
            pos += geo.need(p.len());
        }
        self.published += count as u64;
        // Release: the claim is over; the space may be reused once readers are past it.
        claim.store(slot::NO_CLAIM, Ordering::Release);
        Ok(count)
    }

    #[inline]
    fn write_lockfree(&mut self, payload: &[u8], need: u64) -> Result<bool> {
        let Some((tail, start)) = self.claim_lockfree(need)? else {
            return Ok(false);
        };
        let geo = self.geo;
        let seg = &*self.seg;
        fill_claim(
            seg,
            &geo,
            self.slot,
            &mut self.published,
            tail,
            start,
            payload,
        );
        // Release: the claim is over; the space may be reused once readers are past it.
        seg.u64_at(slot_field(seg, self.slot, slot::CLAIM))
            .store(slot::NO_CLAIM, Ordering::Release);
        Ok(true)
    }

    /// Claims `need` bytes for one record (lock-free): returns the tail claimed at and where
    /// the record starts (after padding to the end of the data area, if any); `None` if it
    /// does not fit (policy `block`; `fail` reports `RingFull`). Our slot's `claim` is set.
    #[inline]
    fn claim_lockfree(&mut self, need: u64) -> Result<Option<(u64, u64)>> {
        let geo = self.geo;
        let seg = &*self.seg;
        let tail_word = seg.u64_at(layout::TAIL_OFFSET);
        let claim = seg.u64_at(slot_field(seg, self.slot, slot::CLAIM));
        // Relaxed: the CAS below validates the value; nothing is read through it before.
        let mut tail = tail_word.load(Ordering::Relaxed);
        loop {
            if let Err(e) = seg.check_position("tail", tail) {
                claim.store(slot::NO_CLAIM, Ordering::Release);
                return Err(e);
            }
            let (start, total) = geo.claim_size(tail, need);
            if tail + total > self.head.saturating_add(geo.capacity) {
                // A claim left from a failed CAS would hold back the head we are about to
                // compute, and with it ourselves: withdraw it first.
                claim.store(slot::NO_CLAIM, Ordering::Release);
                if !room_after_refresh(seg, &geo, &mut self.head, &mut self.next_reclaim, |h| {
                    tail + total <= h.saturating_add(geo.capacity)
                }) {
                    return self.full().map(|_| None);
                }
            }
            // Published before the CAS, which releases it (see `lowest_needed`). Release: a
            // reader that sees this claim (`recovery::claim_is_live` loads it with Acquire)
            // also sees the commit of our previous claim, so it never takes that for dead.
            claim.store(tail, Ordering::Release);
            // SYNC POINT: AcqRel. Acquire: the cursor stores we saw via `head` happen-before
            // our writes into the freed space. Release: a scanner whose Acquire load of
            // `tail` sees this CAS (or a later RMW in its release sequence) sees our claim.
            match tail_word.compare_exchange_weak(
                tail,
                tail + total,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Some((tail, start))),
                Err(now) => tail = now,
            }
        }
    }

    /// A loom model's dead producer: claims room for a `payload_len`-byte record exactly as a
    /// publish does, writes nothing, and "dies" there: its slot stays `ACTIVE` with the claim
    /// in it and its lock dropped (its owner is not alive), as after a SIGKILL at
    /// `after_claim`.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn claim_and_die(mut self, payload_len: usize) -> bool {
        let need = self.geo.need(payload_len);
        let claimed = matches!(self.claim_lockfree(need), Ok(Some(_)));
        // The kernel drops a dead owner's slot lock; nothing releases its slot but recovery.
        self.seg.unlock_slot(self.slot);
        // Skip `Drop` (it would release the slot) but not the segment's reference count: a
        // model runs millions of executions, each with a segment of its own.
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, so moving its `Arc` out drops it once.
        drop(unsafe { std::ptr::read(&me.seg) });
        claimed
    }

    fn write_locked(&mut self, payload: &[u8], need: u64) -> Result<bool> {
        let geo = self.geo;
        let seg = &*self.seg;
        let _guard = mutex::lock(seg, repair_pending)?;
        hook!("holding_mutex");
        let tail_word = seg.u64_at(layout::TAIL_OFFSET);
        // Relaxed: only the mutex holder changes `tail`; the mutex orders us after the last.
        let tail = tail_word.load(Ordering::Relaxed);
        seg.check_position("tail", tail)?;
        let (start, total) = geo.claim_size(tail, need);
        if tail + total > self.head.saturating_add(geo.capacity)
            && !room_after_refresh(seg, &geo, &mut self.head, &mut self.next_reclaim, |h| {
                tail + total <= h.saturating_add(geo.capacity)
            })
        {
            return self.full();
        }
        // Record the claim for `repair_pending` before making it: a successor repairs exactly
        // what we claimed if we die before committing.
        seg.u64_at(layout::PENDING_POS_OFFSET)
            .store(tail, Ordering::Relaxed);
        seg.u64_at(layout::PENDING_START_OFFSET)
            .store(start, Ordering::Relaxed);
        seg.u64_at(layout::PENDING_LEN_OFFSET)
            .store(total, Ordering::Release);
        // Our claim in our slot too, as lock-free producers do, so that a topic subscriber
        // (which reads without the mutex) stuck at it can tell we are alive
        // (`recovery::claim_is_live`) instead of taking a claim that is merely slow. Published
        // by the Release store of `tail` below, which readers load with Acquire. Release: as in
        // `write_lockfree`, whoever sees this claim sees our previous commit too.
        let claim = seg.u64_at(slot_field(seg, self.slot, slot::CLAIM));
        claim.store(tail, Ordering::Release);
        // Release: producers that reuse space hold the mutex after us or load it with Acquire.
        tail_word.store(tail + total, Ordering::Release);
        fill_claim(
            seg,
            &geo,
            self.slot,
            &mut self.published,
            tail,
            start,
            payload,
        );
        // Release: the claim is over (as in `write_lockfree`).
        claim.store(slot::NO_CLAIM, Ordering::Release);
        seg.u64_at(layout::PENDING_LEN_OFFSET)
            .store(0, Ordering::Release);
        Ok(true)
    }

    fn count_published(&self) {
        // Relaxed: a statistic, read by `stats()` only.
        self.seg
            .u64_at(slot_field(&self.seg, self.slot, slot::MESSAGES))
            .store(self.published, Ordering::Relaxed);
    }
}

/// Writes and commits a record claimed in either mode, and counts it.
#[inline]
fn fill_claim(
    seg: &Segment,
    geo: &Geo,
    slot: u32,
    published: &mut u64,
    tail: u64,
    start: u64,
    payload: &[u8],
) {
    hook!("after_claim");
    if geo.policy == Policy::Overwrite {
        // Lapped subscribers resume here. Then a Release fence: our payload stores below are
        // ordered after the claim for a subscriber's seqlock-style validation.
        seg.u64_at(layout::LATEST_OFFSET)
            .fetch_max(start, Ordering::AcqRel);
        fence(Ordering::Release);
    }
    fill(seg, geo, slot, *published, tail, start, payload);
    *published += 1;
}

/// The cached `*head` (a producer's lowest needed position) says a claim does not fit:
/// refreshes it, and if `fits(head)` still fails, sweeps the participant table for dead
/// owners (at most every [`RECLAIM_EVERY`] per producer, tracked in `*next_reclaim`) and, if
/// it freed any, refreshes once more. Returns `fits(head)`.
///
/// The sweep is here, on the ring-full path itself, because a dead subscriber's cursor or a
/// dead producer's claim can hold the ring full for ever, and under policy `fail`, or for a
/// caller that only ever calls `try_publish`, nobody waits (the other sweep is in
/// [`wait_for_space`]).
#[cold]
fn room_after_refresh(
    seg: &Segment,
    geo: &Geo,
    head: &mut u64,
    next_reclaim: &mut u64,
    fits: impl Fn(u64) -> bool,
) -> bool {
    *head = refresh_head(seg, geo);
    if fits(*head) {
        return true;
    }
    let now = process::monotonic_ns(true);
    if now < *next_reclaim {
        return false;
    }
    *next_reclaim = now.saturating_add(RECLAIM_EVERY.as_nanos() as u64);
    if registry::reclaim_dead(seg) == 0 {
        return false;
    }
    *head = refresh_head(seg, geo);
    fits(*head)
}

/// Writes a claimed record (and the padding before it, if any) and commits it. `pseq` is the
/// producer's message number (stored under `overwrite`).
#[inline]
fn fill(seg: &Segment, geo: &Geo, producer: u32, pseq: u64, tail: u64, start: u64, payload: &[u8]) {
    pad(seg, geo, tail, start);
    write_header(seg, geo, producer, start, payload.len());
    if geo.extra > 0 {
        seg.write_bytes(geo.at(start) + record::PSEQ, &pseq.to_le_bytes());
    }
    write_body_and_commit(seg, geo, start, payload);
}

/// A claim made at `tail` whose record starts at `start`: if they differ, writes the padding
/// record that runs from `tail` to the end of the data area.
#[inline]
fn pad(seg: &Segment, geo: &Geo, tail: u64, start: u64) {
    if start != tail {
        // Padding to the end of the data area; it carries nothing, so commit it at once.
        // SYNC POINT: Release pairs with the reader's Acquire load of `seq`.
        seg.u64_at(geo.at(tail)).store(
            record::encode_seq(tail, record::PADDING, geo.key),
            Ordering::Release,
        );
    }
}

/// Writes the header of the claimed record at `start`: length, producer, and `seq` CLAIMED.
#[inline]
fn write_header(seg: &Segment, geo: &Geo, producer: u32, start: u64, len: usize) {
    let at = geo.at(start);
    let mut head = [0u8; 8];
    head[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    head[4..6].copy_from_slice(&(producer as u16).to_le_bytes());
    seg.write_bytes(at + record::LEN, &head);
    // Claimed: recovery can tell whose record this is if we die before committing.
    // Release: the length and producer written above are visible with it.
    seg.u64_at(at + record::SEQ).store(
        record::encode_seq(start, record::CLAIMED, geo.key),
        Ordering::Release,
    );
}

/// Copies the payload of the record at `start` (its header written) and commits it.
#[inline]
fn write_body_and_commit(seg: &Segment, geo: &Geo, start: u64, payload: &[u8]) {
    let at = geo.at(start);
    let body = at + record::HEADER_LEN + geo.extra;
    #[cfg(feature = "test-hooks")]
    {
        let half = payload.len() / 2;
        seg.write_bytes(body, &payload[..half]);
        hook!("mid_payload");
        seg.write_bytes(body + half, &payload[half..]);
    }
    #[cfg(not(feature = "test-hooks"))]
    seg.write_bytes(body, payload);
    hook!("before_commit");
    // SYNC POINT (commit): Release pairs with the reader's Acquire load of `seq`; the
    // payload copied above is visible to whoever sees MESSAGE.
    seg.u64_at(at + record::SEQ).store(
        record::encode_seq(start, record::MESSAGE, geo.key),
        Ordering::Release,
    );
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.seg.shrunk() {
            return; // the mapping must not be touched any more
        }
        registry::release(&self.seg, self.slot);
    }
}

/// What a reader found at a position.
enum Next {
    /// A committed message: offset of the record, payload length, the next position.
    Message(usize, usize, u64),
    /// Padding or an abandoned record: skip to this position.
    Skip(u64),
    /// Nothing committed yet.
    Empty,
}

/// Reads the record at `pos`, checking everything read from shared memory.
#[inline]
fn next_at(seg: &Segment, geo: &Geo, pos: u64) -> Result<Next> {
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
            let total = record::record_len(len + geo.extra);
            let limit = if state == record::MESSAGE {
                geo.max_message_size as usize
            } else {
                record::record_len(geo.max_message_size as usize + geo.extra) - record::HEADER_LEN
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
                Next::Message(at, len, next)
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

/// Result of [`Subscriber::drain_into`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Drained {
    /// Messages copied.
    pub count: usize,
    /// Bytes of the buffer used.
    pub bytes: usize,
}

/// A reader: a topic subscription (its own cursor; every message published after it joined)
/// or a queue consumer (competing for each message with the other consumers). Dropping it
/// releases its participant slot.
pub struct Subscriber {
    seg: Arc<Segment>,
    geo: Geo,
    slot: u32,
    /// Topic: our next position. Queue: unused (the shared queue head is the position).
    cursor: u64,
    received: u64,
    lost: u64,
    /// Overwrite policy: the next message number expected from each producer slot.
    expected: Vec<u64>,
    strategy: WaitStrategy,
    /// A position we found nothing committed at: the position, and when we next check for a
    /// dead claim there (CLOCK_MONOTONIC, ns).
    stuck: Option<(u64, u64)>,
    /// `try_recv`'s frame buffer (empty until the first call).
    scratch: Vec<u8>,
    /// How long a claim in progress is waited for before its owner is checked, and how often
    /// after that: the recovery bound after a producer's death.
    recovery_poll: Duration,
    /// Drains in a row that found nothing, for the segment file checks.
    idle: u32,
}

impl Subscriber {
    pub(crate) fn new(seg: Arc<Segment>) -> Result<Subscriber> {
        seg.check_file()?;
        let geo = Geo::of(&seg);
        let role = match geo.kind {
            Kind::Topic => Role::Subscriber,
            Kind::Queue => Role::Consumer,
        };
        let slot = registry::grab(&seg, role)?;
        let tail = seg.u64_at(layout::TAIL_OFFSET);
        let cursor_word = seg.u64_at(slot_field(&seg, slot, slot::CURSOR));
        // Join protocol (see `lowest_needed`): publish a cursor, activate, then start from a
        // tail read after activation. A producer that missed our slot read an earlier tail,
        // so it cannot have claimed beyond what our start position allows.
        cursor_word.store(tail.load(Ordering::Acquire), Ordering::Relaxed);
        registry::activate(&seg, slot);
        // SYNC POINT: pairs with the SeqCst fence in `lowest_needed` (see there).
        fence(Ordering::SeqCst);
        let cursor = tail.load(Ordering::Acquire);
        cursor_word.store(cursor, Ordering::Release);
        registry::mark_joined(&seg, slot);
        // Overwrite policy: what each producer publishes next is what we expect from it; a
        // message in flight at this very moment may later count as lost.
        let expected = if geo.extra > 0 {
            registry::participants(&seg)
                .iter()
                .filter(|p| p.role == Some(Role::Producer))
                .fold(vec![0; geo.max_participants as usize], |mut v, p| {
                    v[p.slot as usize] = p.messages;
                    v
                })
        } else {
            Vec::new()
        };
        Ok(Subscriber {
            geo,
            seg,
            slot,
            cursor,
            received: 0,
            lost: 0,
            expected,
            strategy: WaitStrategy::default(),
            stuck: None,
            scratch: Vec::new(),
            idle: 0,
            recovery_poll: RECOVERY_POLL,
        })
    }

    /// How long to wait at a claim in progress before checking whether its producer is dead,
    /// and how often to check again: about the time to recover from a producer killed between
    /// claim and commit (default [`RECOVERY_POLL`], 5 ms). Shorter costs more `/proc` reads
    /// while a live producer is slow; the check never takes a live producer's claim.
    pub fn set_recovery_poll(&mut self, every: Duration) {
        // A loom model may judge at once (its clock stands still, see `process::monotonic_ns`).
        let least = if cfg!(loom) {
            Duration::ZERO
        } else {
            Duration::from_micros(100)
        };
        self.recovery_poll = every.max(least);
    }

    /// How [`Subscriber::recv_timeout`] and [`Subscriber::wait`] wait.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.strategy = strategy;
    }

    /// Receives one message into `out` (replacing its contents) if one is committed.
    pub fn try_recv(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        // One frame-sized scratch buffer per subscription, zeroed once: a receive copies the
        // message twice (ring → scratch → `out`) rather than zero-filling the largest message
        // size on every call.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(self.geo.max_message_size as usize + 4, 0);
        let result = self.drain_into(&mut scratch, 1).map(|d| {
            out.clear();
            if d.count == 1 {
                out.extend_from_slice(&scratch[4..d.bytes]);
            }
            d.count == 1
        });
        self.scratch = scratch;
        result
    }

    /// Receives one message, waiting up to `timeout` (`None`: forever). `Ok(false)` on timeout.
    pub fn recv_timeout(&mut self, out: &mut Vec<u8>, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if self.try_recv(out)? {
                return Ok(true);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(false);
            }
            self.wait(left);
        }
    }

    /// Copies committed messages into `buf` as frames `[len: u32 LE][payload]`, at most
    /// `max_count` of them, as many as fit. One cursor store (or queue-head CAS) and at most
    /// one wake-up per call. `InvalidArgument` if the next message cannot fit even in an empty
    /// `buf`.
    ///
    /// Once the channel was unlinked or removed, the messages still in the ring are drained as
    /// usual and then `Closed` is reported. A segment file shrunk under us is `CorruptSegment`.
    pub fn drain_into(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        let closing = self.seg.check_drain(self.idle)?;
        let d = match (self.geo.kind, self.geo.sync) {
            (Kind::Topic, _) => self.drain_topic(buf, max_count),
            (Kind::Queue, SyncMode::LockFree) => self.drain_queue_lockfree(buf, max_count),
            (Kind::Queue, SyncMode::Semaphore) => self.drain_queue_locked(buf, max_count),
        }?;
        if d.count > 0 {
            self.idle = 0;
        } else if closing {
            return Err(self.seg.closed_error());
        } else {
            self.idle = self.idle.wrapping_add(1);
        }
        Ok(d)
    }

    /// Copies records from `pos` into `buf`; returns the frames and the position after them.
    /// Under `overwrite`, each copy is validated against `tail` and a lapped cursor resumes
    /// at `latest`.
    fn copy_from(
        &mut self,
        mut pos: u64,
        buf: &mut [u8],
        max_count: usize,
    ) -> Result<(Drained, u64)> {
        let geo = self.geo;
        let seg_arc = self.seg.clone();
        let seg = &*seg_arc;
        let overwrite = geo.extra > 0;
        let mut d = Drained::default();
        // Resumes after being lapped, bounded: a damaged `tail` or `latest` could otherwise
        // keep us lapped forever. The next call goes on from where this one stopped.
        let mut resumes = 0u32;
        while d.count < max_count {
            if overwrite {
                let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
                if tail > pos.saturating_add(geo.capacity) {
                    resumes += 1;
                    if resumes > MAX_RESUMES {
                        break;
                    }
                    // Lapped: what was at `pos` is gone. Resume at the newest record.
                    pos = seg.u64_at(layout::LATEST_OFFSET).load(Ordering::Acquire);
                    continue;
                }
            }
            let found = next_at(seg, &geo, pos);
            if overwrite && self.lapped(pos) {
                continue; // the header we read may be torn; re-check from the top
            }
            match found? {
                Next::Message(at, len, next) => {
                    if d.bytes + 4 + len > buf.len() {
                        if d.count == 0 {
                            return Err(Error::new(
                                ErrorCode::InvalidArgument,
                                format!(
                                    "a {len}-byte message does not fit a {}-byte buffer",
                                    buf.len()
                                ),
                            ));
                        }
                        break;
                    }
                    let frame = &mut buf[d.bytes..d.bytes + 4 + len];
                    frame[..4].copy_from_slice(&(len as u32).to_le_bytes());
                    seg.read_bytes(at + record::HEADER_LEN + geo.extra, &mut frame[4..]);
                    if overwrite {
                        let mut pseq = [0u8; 8];
                        seg.read_bytes(at + record::PSEQ, &mut pseq);
                        let mut producer = [0u8; 2];
                        seg.read_bytes(at + record::PRODUCER, &mut producer);
                        if self.lapped(pos) {
                            continue; // overwritten while we copied: discard it
                        }
                        self.count_lost(u16::from_le_bytes(producer), u64::from_le_bytes(pseq));
                    }
                    d.bytes += 4 + len;
                    d.count += 1;
                    pos = next;
                }
                Next::Skip(next) => pos = next,
                Next::Empty => match self.recover_at(pos, d.count > 0) {
                    // Under `overwrite` the claim may have been judged from bytes producers
                    // were rewriting (a header that now reads as nonsense, an extent that
                    // ends anywhere): lapped, the verdict and any error are discarded and we
                    // resume at the newest record.
                    Ok(Verdict::Wait) => break,
                    _ if overwrite && self.lapped(pos) => continue,
                    Err(e) => return Err(e),
                    Ok(Verdict::Reread) => continue,
                    Ok(Verdict::SkipTo(next)) => {
                        debug_assert!(next > pos, "a dead extent ends beyond its start");
                        pos = next;
                    }
                },
            }
        }
        Ok((d, pos))
    }

    /// At `pos` nothing is committed. If a claim there has been in progress for a while,
    /// checks its owner and, if dead, says where to go on (see `recovery`); the caller moves
    /// only its own position. `progressed`: this drain copied records before it reached `pos`.
    ///
    /// Cheap when a reader merely caught up with its producers (the end of nearly every busy
    /// drain): one coarse clock read, and `tail` is not loaded (that line is the producers';
    /// loading it at the end of each drain made it bounce between the cores) until `pos` has
    /// been waited at for a recovery poll interval.
    fn recover_at(&mut self, pos: u64, progressed: bool) -> Result<Verdict> {
        let poll = self.recovery_poll.as_nanos() as u64;
        match self.stuck {
            Some((at, check)) if at == pos => {
                if progressed {
                    return Ok(Verdict::Wait);
                }
                let now = process::monotonic_ns(false);
                if now < check {
                    return Ok(Verdict::Wait);
                }
                self.stuck = Some((pos, now + poll));
                if self.seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire) <= pos {
                    return Ok(Verdict::Wait); // simply nothing published yet
                }
                recovery::judge_claim(&self.seg, &self.geo.ring(), pos)
            }
            _ => {
                // The coarse clock is never ahead of the precise one, so the check can only
                // come early (by a tick at most), which is harmless: the owner's liveness
                // decides, and a live producer's claim is never taken.
                let now = process::monotonic_ns(progressed);
                self.stuck = Some((pos, now + poll));
                Ok(Verdict::Wait)
            }
        }
    }

    /// Overwrite policy: whether producers have lapped `pos` (its bytes may be rewritten).
    /// The Acquire fence pairs with the producers' Release fence after their tail CAS: if
    /// any byte we copied came from a newer claim, the `tail` we load shows that claim.
    fn lapped(&self, pos: u64) -> bool {
        fence(Ordering::Acquire);
        self.seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Relaxed)
            > pos.saturating_add(self.geo.capacity)
    }

    fn count_lost(&mut self, producer: u16, pseq: u64) {
        let Some(e) = self.expected.get_mut(producer as usize) else {
            return;
        };
        if pseq > *e {
            // Saturating: `pseq` comes from the ring, where a damaged one could be anything.
            self.lost = self.lost.saturating_add(pseq - *e);
        }
        // A smaller number means a new producer took over that slot: start again from it.
        *e = pseq.wrapping_add(1);
    }

    fn drain_topic(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        let (d, pos) = self.copy_from(self.cursor, buf, max_count)?;
        if pos != self.cursor {
            hook!("mid_read");
            self.cursor = pos;
            self.received += d.count as u64;
            self.publish_progress();
            // SYNC POINT: Release pairs with the producers' Acquire cursor loads in
            // `lowest_needed`: our copies out of the ring are done before they reuse it.
            self.seg
                .u64_at(slot_field(&self.seg, self.slot, slot::CURSOR))
                .store(pos, Ordering::Release);
            ring_doorbell(
                &self.seg,
                layout::SPACE_SEQ_OFFSET,
                layout::SPACE_WAITERS_OFFSET,
            );
        }
        Ok(d)
    }

    fn drain_queue_lockfree(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        let seg = self.seg.clone();
        let head_word = seg.u64_at(layout::QUEUE_HEAD_OFFSET);
        loop {
            // Acquire: pairs with the previous taker's CAS; we see the head it left.
            let head = head_word.load(Ordering::Acquire);
            // Copy first, then take with a CAS. The records cannot be reused while the head
            // is still `head`; if the CAS fails another consumer took them and our copies
            // (possibly of reused bytes) are thrown away. So each message goes to one taker.
            let found = self.copy_from(head, buf, max_count);
            let (d, pos) = match found {
                Ok(r) => r,
                // A stale view can read a header being rewritten; only a current one counts.
                Err(_) if head_word.load(Ordering::Acquire) != head => continue,
                Err(e) => return Err(e),
            };
            if pos != head {
                hook!("mid_read");
            }
            if pos == head {
                if head_word.load(Ordering::Acquire) != head {
                    continue;
                }
                return Ok(d);
            }
            // SYNC POINT: AcqRel. Release: our copies are done before producers, which read
            // the head with SeqCst, reuse the space. Acquire: orders us after the last taker.
            if head_word
                .compare_exchange(head, pos, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.took(d);
                return Ok(d);
            }
        }
    }

    fn drain_queue_locked(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        let seg = self.seg.clone();
        let _guard = mutex::lock(&seg, repair_pending)?;
        let head_word = seg.u64_at(layout::QUEUE_HEAD_OFFSET);
        // Relaxed: only the mutex holder moves the queue head in semaphore mode.
        let head = head_word.load(Ordering::Relaxed);
        let (d, pos) = self.copy_from(head, buf, max_count)?;
        if pos != head {
            hook!("mid_read");
        }
        if pos != head {
            // Release: our copies are done before producers reuse the space.
            head_word.store(pos, Ordering::Release);
            self.took(d);
        }
        Ok(d)
    }

    /// Book-keeping after a queue take: counters, and wake producers waiting for room.
    fn took(&mut self, d: Drained) {
        self.received += d.count as u64;
        self.publish_progress();
        ring_doorbell(
            &self.seg,
            layout::SPACE_SEQ_OFFSET,
            layout::SPACE_WAITERS_OFFSET,
        );
    }

    fn publish_progress(&self) {
        let seg = &self.seg;
        // Relaxed: statistics, read by `stats()` only.
        seg.u64_at(slot_field(seg, self.slot, slot::MESSAGES))
            .store(self.received, Ordering::Relaxed);
        seg.u64_at(slot_field(seg, self.slot, slot::LOST))
            .store(self.lost, Ordering::Relaxed);
        seg.u64_at(slot_field(seg, self.slot, slot::HEARTBEAT))
            .store(process::now_coarse_ns(), Ordering::Relaxed);
    }

    /// Whether a message (or padding) is committed at our position.
    pub fn has_data(&self) -> bool {
        self.waiter().has_data()
    }

    /// Sleeps until data may be there or `timeout` passes; returns whether data is there.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.waiter().wait(timeout)
    }

    /// A handle another thread can wait with, for this subscription's position.
    pub fn waiter(&self) -> Waiter {
        Waiter {
            seg: self.seg.clone(),
            geo: self.geo,
            slot: self.slot,
            strategy: self.strategy,
            recovery_poll: self.recovery_poll,
        }
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Messages this subscription lost to being lapped (`overwrite` policy; else 0).
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.seg.shrunk() {
            return; // the mapping must not be touched any more
        }
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
/// subscription's position from shared memory, so it never races the subscriber's copies.
#[derive(Clone)]
pub struct Waiter {
    seg: Arc<Segment>,
    geo: Geo,
    slot: u32,
    strategy: WaitStrategy,
    recovery_poll: Duration,
}

impl Waiter {
    fn position(&self) -> u64 {
        let off = match self.geo.kind {
            // Acquire: pairs with the subscriber's Release cursor store.
            Kind::Topic => slot_field(&self.seg, self.slot, slot::CURSOR),
            Kind::Queue => layout::QUEUE_HEAD_OFFSET,
        };
        self.seg.u64_at(off).load(Ordering::Acquire)
    }

    /// Whether a record is committed at the subscription's position (or, under `overwrite`,
    /// the subscription was lapped and has newer records to resume at).
    pub fn has_data(&self) -> bool {
        if self.seg.finished() {
            return true; // shrunk, removed or unlinked: the next drain reports it
        }
        let pos = self.position();
        if self.geo.extra > 0
            && self.seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire)
                > pos.saturating_add(self.geo.capacity)
        {
            return true;
        }
        !matches!(next_at(&self.seg, &self.geo, pos), Ok(Next::Empty))
    }

    /// Sleeps until data may be there or `timeout` passes; returns whether data is there.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.wait_with(self.strategy, timeout)
    }

    /// As [`Waiter::wait`], with an explicit strategy. While a claim is in progress at the
    /// subscription's position it wakes every recovery poll interval (see
    /// [`Subscriber::set_recovery_poll`]) to check the claim's owner,
    /// and reports data once that owner is dead (the subscriber then recovers the claim).
    pub fn wait_with(&self, strategy: WaitStrategy, timeout: Option<Duration>) -> bool {
        self.wait_inner(strategy, timeout, &|| false)
    }

    /// As [`Waiter::wait`], but also ends as soon as `cancelled()` holds; returns whether
    /// data is there (false once cancelled). `cancelled` is checked wherever the wait checks
    /// for data: between spins, and before and after each futex sleep.
    ///
    /// A thread that sets what `cancelled` reads and then calls [`Waiter::interrupt`] never
    /// leaves this wait asleep: the sleeper reads the doorbell, then checks `cancelled`, then
    /// sleeps only if the doorbell still holds the value it read. If the interrupt's bump
    /// came before that read, the Acquire read of the doorbell makes the cancellation
    /// (written before the bump) visible to the check; if after, the futex sleep returns at
    /// once. So a cancelling thread need not wait for the waiting one: it signals and goes.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// # fn demo(sub: &shmring::Subscriber) {
    /// let stop = Arc::new(AtomicBool::new(false));
    /// let (waiter, flag) = (sub.waiter(), stop.clone());
    /// let t = std::thread::spawn(move || waiter.wait_unless(None, || flag.load(Ordering::Acquire)));
    /// stop.store(true, Ordering::Release); // the bump in `interrupt` publishes it
    /// sub.waiter().interrupt();
    /// assert!(!t.join().unwrap());
    /// # }
    /// ```
    pub fn wait_unless(&self, timeout: Option<Duration>, cancelled: impl Fn() -> bool) -> bool {
        self.wait_inner(self.strategy, timeout, &cancelled)
    }

    fn wait_inner(
        &self,
        strategy: WaitStrategy,
        timeout: Option<Duration>,
        cancelled: &dyn Fn() -> bool,
    ) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if cancelled() {
                return false;
            }
            let pos = self.position();
            let pending = self.seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire) > pos;
            if sleep_until(
                &self.seg,
                layout::DATA_SEQ_OFFSET,
                layout::DATA_WAITERS_OFFSET,
                self.wake_bits(),
                deadline,
                pending.then_some(self.recovery_poll),
                strategy,
                || cancelled() || self.has_data(),
            ) {
                return !cancelled();
            }
            if pending
                && !cancelled()
                && self.position() == pos
                && !recovery::claim_is_live(&self.seg, &self.geo.ring(), pos)
                && !self.has_data()
            {
                return true;
            }
            if !pending || deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
        }
    }

    /// Wakes every thread sleeping in [`Waiter::wait`] for this subscription, to stop it
    /// (see [`Waiter::wait_unless`]).
    ///
    /// Only those sleepers, give or take: each wait sleeps with the wake bit of its
    /// subscription's slot (slot mod 32, [`Waiter::wake_bits`]), and this wakes that bit
    /// alone (`FUTEX_WAKE_BITSET`); sleepers of the other 31 bits, in any process, stay
    /// asleep, so stopping one of many subscriptions is one cheap system call, not a
    /// thundering herd. Data still wakes every sleeper (a plain `FUTEX_WAKE` meets all bits).
    /// It also bumps the doorbell, so a waiter about to sleep does not (the few others in
    /// that window re-check and sleep again).
    pub fn interrupt(&self) {
        // Release: a waiter that reads the bumped value sees what we wrote before (the
        // cancellation `wait_unless` checks).
        self.seg
            .u32_at(layout::DATA_SEQ_OFFSET)
            .fetch_add(1, Ordering::Release);
        self.seg
            .futex_wake_bits(layout::DATA_SEQ_OFFSET, self.wake_bits());
    }

    /// The wake bit this subscription's waits sleep with: `1 << (slot % 32)`.
    pub fn wake_bits(&self) -> u32 {
        1 << (self.slot % 32)
    }
}
