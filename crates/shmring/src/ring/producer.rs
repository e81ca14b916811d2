//! `Producer`: claims space in the ring and commits records (lock-free, or under the mutex in
//! semaphore mode); batched claims; the record writing helpers.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod exclusive;
mod write;

use self::write::{fill, pad, write_body_and_commit, write_header};
use super::{BATCH, RECLAIM_EVERY, refresh_head, repair_pending, wait_for_space};
use crate::error::{Error, ErrorCode, Result};
use crate::filecheck::FILE_CHECK_BUSY;
use crate::hooks::hook;
use crate::layout::{self, slot};
use crate::mutex;
use crate::options::{Policy, SyncMode};
use crate::process;
use crate::registry::{self, Role, slot_field};
use crate::ring_map::RingMap;
use crate::segment::Segment;
use crate::sync::{Ordering, fence};
use crate::wait::ring_data_doorbell;

/// Publishes into a channel. One per thread; it holds a producer slot until dropped.
pub struct Producer {
    seg: Arc<Segment>,
    geo: RingMap,
    slot: u32,
    /// Our copy of `head_cache`: a lower bound of every position still needed.
    head: u64,
    published: u64,
    /// Publishes so far, for the segment file checks (`Segment::check_file_throttled`).
    checks: u32,
    /// When this producer may next sweep the participant table for dead owners on finding
    /// the ring full (CLOCK_MONOTONIC_COARSE, ns; see [`room_after_refresh`]).
    next_reclaim: u64,
    /// The positions this publish call wrote (`from..to`; empty: `from >= to`), for
    /// `flush: 'publish'` (see `flush.rs`).
    written: (u64, u64),
    /// The channel's only producer: claims with a store, not a CAS (`producer/exclusive.rs`).
    exclusive: bool,
    /// An exclusive producer's own description of the file, holding its lock.
    exclusive_fd: Option<crate::fd::Fd>,
}

impl Producer {
    pub(crate) fn new(seg: Arc<Segment>, exclusive: bool) -> Result<Producer> {
        seg.check_file()?;
        let mut exclusive_fd = if exclusive {
            exclusive::lock(&seg)?
        } else {
            None
        };
        let joined = registry::grab(&seg, Role::Producer).and_then(|slot| {
            registry::activate(&seg, slot);
            let admitted = if exclusive {
                exclusive::refuse_if_others(&seg, slot)
            } else {
                exclusive::refuse_if_exclusive(&seg)
            };
            admitted
                .map(|()| slot)
                .inspect_err(|_| registry::release(&seg, slot))
        });
        let slot = match joined {
            Ok(slot) => slot,
            Err(e) => {
                if exclusive {
                    exclusive::unlock(&seg, exclusive_fd.take());
                }
                return Err(e);
            }
        };
        registry::mark_joined(&seg, slot);
        Ok(Producer {
            exclusive,
            exclusive_fd,
            geo: RingMap::of(&seg),
            head: seg
                .u64_at(layout::HEAD_CACHE_OFFSET)
                .load(Ordering::Acquire),
            slot,
            seg,
            published: 0,
            checks: 0,
            next_reclaim: 0,
            written: (u64::MAX, 0),
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
            self.flush_written()?;
            self.count_published();
            self.wake_subscribers();
        }
        Ok(ok)
    }

    /// Publishes messages in order until one does not fit; returns how many went in. Wakes
    /// subscribers once for the whole batch. An error part-way says how many went in before
    /// it, in its message and in [`Error::published`].
    ///
    /// Lock-free channels without the `overwrite` policy claim room for several records with
    /// one CAS (`write_batch`); the others claim each record on its own.
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
            // A flush error is reported unless the batch failed already.
            if let Err(e) = self.flush_written()
                && result.is_ok()
            {
                result = Err(e);
            }
            self.count_published();
            self.wake_subscribers();
        }
        result.map(|()| n).map_err(|e| e.after_batch(n))
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

    /// Forces what this call wrote out to the file if the handle asked for it (`flush:
    /// 'publish'`), and forgets it.
    #[inline]
    fn flush_written(&mut self) -> Result<()> {
        let (from, to) = std::mem::replace(&mut self.written, (u64::MAX, 0));
        self.seg.flush_written(from, to)
    }

    fn wake_subscribers(&self) {
        ring_data_doorbell(&self.seg);
    }

    fn full(&self) -> Result<bool> {
        self.seg.check_file_if_older(FILE_CHECK_BUSY)?;
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
        self.seg.check_file_throttled(&mut self.checks)?;
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
        self.seg.check_file_throttled(&mut self.checks)?;
        let geo = self.geo;
        let seg = &*self.seg;
        let tail_word = seg.u64_at(layout::TAIL_OFFSET);
        let claim = seg.u64_at(slot_field(seg, self.slot, slot::CLAIM));
        let limit = geo.need(geo.max_message_size as usize);
        let mut tail = self.load_tail(tail_word);
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
            debug_assert!(start + bytes > tail, "tail only grows");
            if self.exclusive {
                // SYNC POINT: Release, as in `claim_lockfree`.
                tail_word.store(start + bytes, Ordering::Release);
                break (tail, start, count);
            }
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
        // SYNC POINT: as in `fill_claim`, for lapped readers' validation.
        fence(Ordering::Release);
        pad(seg, &geo, tail, start);
        let batch = &batch[..count];
        let mut pos = start;
        for (i, p) in batch.iter().enumerate() {
            write_header(
                seg,
                &geo,
                self.slot,
                self.published + i as u64,
                pos,
                p.len(),
            );
            pos += geo.need(p.len());
        }
        let mut pos = start;
        for p in batch {
            write_body_and_commit(seg, &geo, pos, p);
            pos += geo.need(p.len());
        }
        self.written = widen(self.written, tail, pos);
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
        self.written = widen(self.written, tail, start + need);
        Ok(true)
    }

    /// The `tail` a lock-free claim starts from: Relaxed for a shared producer (its CAS
    /// validates it), Acquire for an exclusive one (it stores instead, after the previous
    /// producer's claims).
    #[inline]
    fn load_tail(&self, tail_word: &crate::sync::AtomicU64) -> u64 {
        if self.exclusive {
            tail_word.load(Ordering::Acquire)
        } else {
            tail_word.load(Ordering::Relaxed)
        }
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
        let mut tail = self.load_tail(tail_word);
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
            debug_assert!(total >= need, "a claim holds its record");
            if self.exclusive {
                // SYNC POINT: Release, as the CAS's: a scanner that sees this tail sees our
                // claim. Nobody else moves `tail` while we live (`producer/exclusive.rs`).
                tail_word.store(tail + total, Ordering::Release);
                return Ok(Some((tail, start)));
            }
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
        debug_assert!(total >= need, "a claim holds its record");
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
        self.written = widen(self.written, tail, tail + total);
        Ok(true)
    }

    fn count_published(&self) {
        // Relaxed: a statistic, read by `stats()` only.
        self.seg
            .u64_at(slot_field(&self.seg, self.slot, slot::MESSAGES))
            .store(self.published, Ordering::Relaxed);
    }
}

/// The positions `span` and `from..to` cover (what a publish call wrote so far).
#[inline]
fn widen(span: (u64, u64), from: u64, to: u64) -> (u64, u64) {
    (span.0.min(from), span.1.max(to))
}

/// Writes and commits a record claimed in either mode, and counts it.
#[inline]
fn fill_claim(
    seg: &Segment,
    geo: &RingMap,
    slot: u32,
    published: &mut u64,
    tail: u64,
    start: u64,
    payload: &[u8],
) {
    hook!("after_claim");
    if geo.policy == Policy::Overwrite {
        // Lapped subscribers resume here.
        seg.u64_at(layout::LATEST_OFFSET)
            .fetch_max(start, Ordering::AcqRel);
    }
    // SYNC POINT: a Release fence orders our payload stores below after the claim, for the
    // seqlock-style validation of readers that may be lapped (`overwrite`, and replays):
    // one that copied any of them sees our claim in the `tail` it loads after an Acquire
    // fence (`Subscriber::lapped`). On x86 this only stops the compiler reordering.
    fence(Ordering::Release);
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
    geo: &RingMap,
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

impl Drop for Producer {
    fn drop(&mut self) {
        // A shrunk mapping must not be touched any more; the lock is no memory of it.
        if !self.seg.shrunk() {
            registry::release(&self.seg, self.slot);
        }
        if self.exclusive {
            exclusive::unlock(&self.seg, self.exclusive_fd.take());
        }
    }
}
