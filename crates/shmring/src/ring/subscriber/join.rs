//! Joining: a new subscription's slot (a fresh one, or a named subscriber's, resumed), and
//! where it starts reading (the current tail, the oldest record the ring holds, or a
//! position).

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Subscriber, UNSEEN};
use crate::error::{Error, ErrorCode, Result};
use crate::layout::{self, slot};
use crate::named::{self, NamedJoin};
use crate::options::{Kind, Start, SubscribeOptions};
use crate::recovery::RECOVERY_POLL;
use crate::registry::{self, Role, slot_field};
use crate::ring::first_record_from;
use crate::ring_map::RingMap;
use crate::segment::Segment;
use crate::sync::{Ordering, fence};
use crate::wait::WaitStrategy;

impl Subscriber {
    pub(crate) fn new(seg: Arc<Segment>, opts: &SubscribeOptions) -> Result<Subscriber> {
        seg.check_file()?;
        let geo = RingMap::of(&seg);
        if geo.kind == Kind::Queue && (opts.name.is_some() || opts.from != Start::Latest) {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "channel {:?} is a queue: its consumers share one position, so `from` and \
                     named subscribers apply to topics only",
                    seg.name()
                ),
            ));
        }
        let role = match geo.kind {
            Kind::Topic => Role::Subscriber,
            Kind::Queue => Role::Consumer,
        };
        let new = |slot: u32| Subscriber {
            geo,
            seg: seg.clone(),
            slot,
            cursor: 0,
            received: 0,
            lost: 0,
            expected: Vec::new(),
            validate_below: 0,
            skip_below: 0,
            named: opts.name.is_some(),
            pending: VecDeque::new(),
            delivered: Vec::new(),
            last: None,
            record_frames: false,
            auto_commit: true,
            strategy: WaitStrategy::default(),
            stuck: None,
            scratch: Vec::new(),
            idle: 0,
            recovery_poll: RECOVERY_POLL,
            work: None,
            take_seq: 0,
            offers_seen: 0,
            next_scan_ns: 0,
            redelivered: 0,
            copy_end: u64::MAX,
            frame_flags: 0,
            slot_state: 0,
        };
        // A reader here may sleep on the readers' doorbell: if it cannot issue the
        // membarrier, producers must fence (`barrier.rs`).
        crate::wait::announce_reader(&seg);
        // From here on a `Subscriber` owns its slot: dropping it on an error releases it.
        let Some(name) = &opts.name else {
            let mut sub = new(registry::grab(&seg, role)?);
            sub.join(opts.from)?;
            sub.slot_state = sub.read_slot_state();
            registry::mark_joined(&seg, sub.slot);
            return Ok(sub);
        };
        let names = seg.lock_names()?;
        let sub = match named::join_named(&seg, name, &names)? {
            NamedJoin::Resumed { slot, cursor } => {
                let mut sub = new(slot);
                seg.check_position("named subscriber's cursor", cursor)?;
                // Our cursor counted for producers while away, but only from where their
                // cached head was: a name that consumed less than a replay had read may be
                // below it, and `overwrite` ignores cursors. So read as a replay does below
                // the tail seen now (validated, and counting what was overwritten).
                // SYNC POINT: as in `join`, after the SeqCst activation of our slot.
                fence(Ordering::SeqCst);
                let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
                seg.check_position("tail", tail)?;
                sub.cursor = cursor;
                sub.validate_below = tail;
                sub.expected = vec![UNSEEN; geo.max_participants as usize];
                sub.publish_read();
                sub
            }
            NamedJoin::New { slot } => {
                let mut sub = new(slot);
                sub.join(opts.from)?;
                named::mark_joined_named(&seg, slot);
                sub
            }
        };
        drop(names);
        Ok(sub)
    }

    /// Joins our grabbed slot at the position `from` says.
    fn join(&mut self, from: Start) -> Result<()> {
        let seg = self.seg.clone();
        let geo = self.geo;
        let tail = seg.u64_at(layout::TAIL_OFFSET);
        let cursor_word = seg.u64_at(slot_field(&seg, self.slot, slot::CURSOR));
        if geo.acks {
            // An at-least-once consumer: no cursor (the same word is its `held`, none yet).
            self.join_acked();
            registry::activate(&seg, self.slot);
            return Ok(());
        }
        // Join protocol (see `lowest_needed`): publish a cursor, activate, then start from a
        // tail read after activation. A producer that missed our slot read an earlier tail,
        // so it cannot have claimed beyond what our start position allows.
        cursor_word.store(tail.load(Ordering::Acquire), Ordering::Relaxed);
        registry::activate(&seg, self.slot);
        // SYNC POINT: pairs with the SeqCst fence in `lowest_needed` (see there).
        fence(Ordering::SeqCst);
        let joined_at = tail.load(Ordering::Acquire);
        seg.check_position("tail", joined_at)?;
        let start = match from {
            Start::Latest => joined_at,
            Start::Position(p) if p >= joined_at => {
                self.skip_below = p;
                joined_at
            }
            Start::Earliest | Start::Position(_) => {
                // Before the tail we joined at, producers that missed our slot may reuse
                // the space: validate every record read there, and count what we skip.
                self.validate_below = joined_at;
                self.expected = vec![UNSEEN; geo.max_participants as usize];
                let p = match from {
                    Start::Position(p) => {
                        self.skip_below = p;
                        p
                    }
                    _ => 0,
                };
                first_record_from(&seg, &geo, p, joined_at)
            }
        };
        if from == Start::Latest && geo.overwrite() {
            // Overwrite policy: what each producer publishes next is what we expect from it;
            // a message in flight at this very moment may later count as lost.
            self.expected = registry::participants(&seg)
                .iter()
                .filter(|p| p.role == Some(Role::Producer))
                .fold(vec![0; geo.max_participants as usize], |mut v, p| {
                    v[p.slot as usize] = p.messages;
                    v
                });
        }
        self.cursor = start;
        self.publish_read();
        // Release: as every cursor store (see `drain_topic`).
        cursor_word.store(start, Ordering::Release);
        Ok(())
    }

    /// Stores our read position where our waiters read it. Release: pairs with
    /// `Waiter::position`'s Acquire load.
    pub(super) fn publish_read(&self) {
        self.seg
            .u64_at(slot_field(&self.seg, self.slot, slot::READ))
            .store(self.cursor, Ordering::Release);
    }
}
