//! `Subscriber`: topic subscriptions and queue consumers: reading, batch drains, recovery of
//! dead claims, the `overwrite` lapping check.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::waiter::Waiter;

mod acked;
mod consume;
mod join;
use super::{MAX_RESUMES, Next, first_record_from, next_at, repair_pending};
use crate::error::{Error, ErrorCode, Result};
use crate::hooks::hook;
use crate::layout::{self, record, slot};
use crate::mutex;
use crate::options::{Kind, SyncMode};
use crate::process;
use crate::recovery::{self, Verdict};
use crate::registry::{self, slot_field};
use crate::ring_map::RingMap;
use crate::segment::Segment;
use crate::sync::{Ordering, fence};
use crate::wait::{WaitStrategy, ring_doorbell};

/// Result of [`Subscriber::drain_into`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Drained {
    /// Messages copied.
    pub count: usize,
    /// Bytes of the buffer used.
    pub bytes: usize,
}

/// Bytes before the payload in a frame of [`Subscriber::drain_into`]: `len u32`.
pub const FRAME_PREFIX: usize = 4;
/// Bytes before the payload in a frame once [`Subscriber::set_record_frames`] is on:
/// `len u32 | flags u32 (zero) | position u64`.
pub const RECORD_FRAME_PREFIX: usize = 16;

/// `expected` entry of a producer not seen yet (replays count gaps from the first message
/// they get from each producer).
const UNSEEN: u64 = u64::MAX;

/// Where a reader found nothing committed ([`Subscriber::recover_at`]).
#[derive(Clone, Copy)]
struct Stuck {
    /// The position.
    at: u64,
    /// When to check next for a dead claim there (CLOCK_MONOTONIC, ns).
    check: u64,
}

/// A reader: a topic subscription (its own cursor; every message published after it joined)
/// or a queue consumer (competing for each message with the other consumers). Dropping it
/// releases its participant slot.
pub struct Subscriber {
    seg: Arc<Segment>,
    geo: RingMap,
    slot: u32,
    /// Topic: our next position to read. Queue: unused (the shared queue head is the
    /// position).
    cursor: u64,
    received: u64,
    lost: u64,
    /// Overwrite policy, or a replay: the next message number expected from each producer
    /// slot ([`UNSEEN`] until the first one), to count what was skipped. Empty otherwise.
    expected: Vec<u64>,
    /// Records below this position may be rewritten by producers while we copy them (a
    /// replay started before the tail it joined at): each is validated as under `overwrite`.
    validate_below: u64,
    /// Messages before this position are passed over without delivery (`Start::Position`).
    skip_below: u64,
    /// A named subscriber: the slot's cursor is what we consumed; we read ahead of it.
    named: bool,
    /// Named: the delivered records not yet consumed, as (position, position after it).
    pending: VecDeque<(u64, u64)>,
    /// The records of the last drain, as (position, position after it).
    delivered: Vec<(u64, u64)>,
    /// The position of the last message delivered (for `last_position`).
    last: Option<u64>,
    /// Frames carry `RECORD_FRAME_PREFIX` bytes (with the position) instead of `FRAME_PREFIX`.
    record_frames: bool,
    /// Named: each receive call first consumes everything received before (else only
    /// `commit_through` does).
    auto_commit: bool,
    strategy: WaitStrategy,
    /// A position we found nothing committed at, and when we next check for a dead claim
    /// there.
    stuck: Option<Stuck>,
    /// `try_recv`'s frame buffer (empty until the first call).
    scratch: Vec<u8>,
    /// How long a claim in progress is waited for before its owner is checked, and how often
    /// after that: the recovery bound after a producer's death.
    recovery_poll: Duration,
    /// Drains in a row that found nothing, for the segment file checks.
    idle: u32,
    /// At-least-once: the range we work on, if any.
    work: Option<acked::Work>,
    /// At-least-once: the sequence of our slot's last take.
    take_seq: u64,
    /// At-least-once: the `offers` count when we last looked for ranges to take over.
    offers_seen: u32,
    /// At-least-once: when to look again anyway (CLOCK_MONOTONIC_COARSE, ns).
    next_scan_ns: u64,
    /// At-least-once: messages received again.
    redelivered: u64,
    /// `copy_from` stops at this position (the end of a range taken over).
    copy_end: u64,
    /// The `flags` word of record frames: the delivery count in at-least-once queues.
    frame_flags: u32,
    /// Our slot's state word once active (at-least-once `owner` words carry it).
    slot_state: u32,
}

impl Subscriber {
    /// How long to wait at a claim in progress before checking whether its producer is dead,
    /// and how often to check again: about the time to recover from a producer killed between
    /// claim and commit (default [`RECOVERY_POLL`](crate::RECOVERY_POLL), 5 ms). Shorter costs more `/proc` reads
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
        scratch.resize(self.geo.max_message_size as usize + FRAME_PREFIX, 0);
        let record_frames = std::mem::replace(&mut self.record_frames, false);
        let result = self.drain_into(&mut scratch, 1).map(|d| {
            out.clear();
            if d.count == 1 {
                out.extend_from_slice(&scratch[FRAME_PREFIX..d.bytes]);
            }
            d.count == 1
        });
        self.record_frames = record_frames;
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

    /// Copies committed messages into `buf` as frames `[len: u32 LE][payload]` (or with
    /// their positions, see [`Subscriber::set_record_frames`]), at most `max_count` of them,
    /// as many as fit. One cursor store (or queue-head CAS) and at most one wake-up per call.
    /// `InvalidArgument` if the next message cannot fit even in an empty `buf`. A named
    /// subscriber first consumes everything received before (see
    /// [`Subscriber::commit_through`]).
    ///
    /// Once the channel was unlinked or removed, the messages still in the ring are drained as
    /// usual and then `Closed` is reported. A segment file shrunk under us is `CorruptSegment`.
    pub fn drain_into(&mut self, buf: &mut [u8], max_count: usize) -> Result<Drained> {
        let closing = self.seg.check_file_when_idle(self.idle)?;
        if self.auto_commit {
            self.commit_all();
        }
        self.delivered.clear();
        let d = match (self.geo.kind, self.geo.sync) {
            (Kind::Queue, _) if self.geo.acks => self.drain_acked(buf, max_count),
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
    /// Where producers may rewrite what we read (`overwrite`, or a replay before the tail it
    /// joined at), each copy is validated against `tail`; lapped, we resume at `latest`
    /// (`overwrite`) or at the oldest record left (a replay), and count what we lost.
    fn copy_from(
        &mut self,
        mut pos: u64,
        buf: &mut [u8],
        max_count: usize,
    ) -> Result<(Drained, u64)> {
        let geo = self.geo;
        let seg_arc = self.seg.clone();
        let seg = &*seg_arc;
        let overwrite = geo.overwrite();
        let prefix = if self.record_frames {
            RECORD_FRAME_PREFIX
        } else {
            FRAME_PREFIX
        };
        let counting = !self.expected.is_empty();
        let mut d = Drained::default();
        // Resumes after being lapped, bounded: a damaged `tail` or `latest` could otherwise
        // keep us lapped forever. The next call goes on from where this one stopped.
        let mut resumes = 0u32;
        while d.count < max_count && pos < self.copy_end {
            let validate = overwrite || pos < self.validate_below;
            if validate {
                let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
                if tail > pos.saturating_add(geo.capacity) {
                    resumes += 1;
                    if resumes > MAX_RESUMES {
                        break;
                    }
                    // Lapped: what was at `pos` is gone. Resume at the newest record, or, in
                    // a replay, at the oldest one left (the producers' gaps count the loss).
                    pos = if overwrite {
                        seg.u64_at(layout::LATEST_OFFSET).load(Ordering::Acquire)
                    } else {
                        first_record_from(seg, &geo, pos, tail)
                    };
                    continue;
                }
            }
            let found = next_at(seg, &geo, pos);
            if validate && self.lapped(pos) {
                continue; // the header we read may be torn; re-check from the top
            }
            match found? {
                Next::Message { at, len, next } => {
                    let skip = pos < self.skip_below;
                    if !skip && d.bytes + prefix + len > buf.len() {
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
                    if !skip {
                        let frame = &mut buf[d.bytes..d.bytes + prefix + len];
                        frame[..4].copy_from_slice(&(len as u32).to_le_bytes());
                        if prefix == RECORD_FRAME_PREFIX {
                            frame[4..8].copy_from_slice(&self.frame_flags.to_le_bytes());
                            frame[8..16].copy_from_slice(&pos.to_le_bytes());
                        }
                        seg.read_bytes(at + record::HEADER_LEN, &mut frame[prefix..]);
                    }
                    if counting {
                        let mut pseq = [0u8; 8];
                        seg.read_bytes(at + record::PSEQ, &mut pseq);
                        let mut producer = [0u8; 2];
                        seg.read_bytes(at + record::PRODUCER, &mut producer);
                        if validate && self.lapped(pos) {
                            continue; // overwritten while we copied: discard it
                        }
                        self.count_lost(u16::from_le_bytes(producer), u64::from_le_bytes(pseq));
                    } else if validate && self.lapped(pos) {
                        continue;
                    }
                    if !skip {
                        d.bytes += prefix + len;
                        d.count += 1;
                        self.last = Some(pos);
                        // Only a named subscriber or an at-least-once consumer needs each
                        // one (to consume or acknowledge it later).
                        if self.named || geo.acks {
                            self.delivered.push((pos, next));
                        }
                    }
                    debug_assert!(next > pos, "a record ends beyond its start");
                    pos = next;
                }
                Next::Skip(next) => {
                    debug_assert!(next > pos, "a skipped record ends beyond its start");
                    pos = next;
                }
                Next::Empty => match self.recover_at(pos, d.count > 0) {
                    // Where producers may rewrite what we read, the claim may have been
                    // judged from bytes being rewritten (a header that now reads as
                    // nonsense, an extent that ends anywhere): lapped, the verdict and any
                    // error are discarded and we resume as above.
                    Ok(Verdict::Wait) => break,
                    _ if validate && self.lapped(pos) => continue,
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
            Some(Stuck { at, check }) if at == pos => {
                if progressed {
                    return Ok(Verdict::Wait);
                }
                let now = process::monotonic_ns(false);
                if now < check {
                    return Ok(Verdict::Wait);
                }
                self.stuck = Some(Stuck {
                    at: pos,
                    check: now + poll,
                });
                if self.seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire) <= pos {
                    return Ok(Verdict::Wait); // simply nothing published yet
                }
                recovery::judge_claim(&self.seg, &self.geo, pos)
            }
            _ => {
                // The coarse clock is never ahead of the precise one, so the check can only
                // come early (by a tick at most), which is harmless: the owner's liveness
                // decides, and a live producer's claim is never taken.
                let now = process::monotonic_ns(progressed);
                self.stuck = Some(Stuck {
                    at: pos,
                    check: now + poll,
                });
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
        if *e != UNSEEN && pseq > *e {
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
            // The cursor only grows, but for a lapped `overwrite` subscriber's jump to `latest`
            // (read from shared memory, which another process could have damaged).
            debug_assert!(
                self.geo.overwrite() || pos > self.cursor,
                "cursor moved back from {} to {pos}",
                self.cursor
            );
            self.cursor = pos;
            self.received += d.count as u64;
            self.publish_progress();
            self.publish_read();
            if self.named {
                // What we read is consumed only once the next receive call (or a commit)
                // says so: until then our cursor holds producers back from it.
                self.pending.extend(self.delivered.iter().copied());
                if self.pending.is_empty() {
                    self.store_cursor(pos); // only padding or skipped records were passed
                }
            } else {
                self.store_cursor(pos);
            }
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
            // The queue head only grows: a take moves it past what it copied or skipped.
            debug_assert!(pos > head, "queue head moved back from {head} to {pos}");
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
            debug_assert!(pos > head, "queue head moved back from {head} to {pos}");
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
        if self.geo.acks && self.leave_acked() {
            // Our slot describes a range another consumer will finish: it stays, unowned,
            // until that is done (then it is reclaimed as a dead owner's).
            self.seg.unlock_slot(self.slot);
            return;
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
