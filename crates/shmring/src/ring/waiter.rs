//! `Waiter`: waits for a subscription's data from another thread (the binding's waiter
//! threads), and interrupts such waits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Next, ack, next_at};
use crate::layout::{self, slot};
use crate::options::Kind;
use crate::recovery;
use crate::registry::slot_field;
use crate::ring_map::RingMap;
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::wait::{WaitStrategy, sleep_until};

/// How often an idle at-least-once consumer's wait looks for what a dead consumer held.
const ADOPT_POLL: Duration = Duration::from_millis(25);

/// Waits for data on behalf of a [`Subscriber`](crate::Subscriber), from another thread. It reads the
/// subscription's position from shared memory, so it never races the subscriber's copies.
#[derive(Clone)]
pub struct Waiter {
    pub(super) seg: Arc<Segment>,
    pub(super) geo: RingMap,
    pub(super) slot: u32,
    pub(super) strategy: WaitStrategy,
    pub(super) recovery_poll: Duration,
}

impl Waiter {
    fn position(&self) -> u64 {
        let off = match self.geo.kind {
            // Acquire: pairs with the subscriber's Release store of its read position.
            Kind::Topic => slot_field(&self.seg, self.slot, slot::READ),
            Kind::Queue => layout::QUEUE_HEAD_OFFSET,
        };
        self.seg.u64_at(off).load(Ordering::Acquire)
    }

    /// Whether a record is committed at the subscription's position (or the subscription was
    /// lapped, under `overwrite` or in a replay, and has newer records to resume at).
    pub fn has_data(&self) -> bool {
        if self.seg.finished() {
            return true; // shrunk, removed or unlinked: the next drain reports it
        }
        let pos = self.position();
        if self.seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire)
            > pos.saturating_add(self.geo.capacity)
        {
            return true;
        }
        !matches!(next_at(&self.seg, &self.geo, pos), Ok(Next::Empty))
    }

    /// Sleeps until data may be there or `timeout` passes; returns whether data is there.
    /// It may also return `false` early (a spurious wake-up; and every 50 ms or so in a
    /// process that cannot issue the doorbell's membarrier, see `barrier.rs`): callers loop.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.wait_with(self.strategy, timeout)
    }

    /// As [`Waiter::wait`], with an explicit strategy. While a claim is in progress at the
    /// subscription's position it wakes every recovery poll interval (see
    /// [`Subscriber::set_recovery_poll`](crate::Subscriber::set_recovery_poll)) to check the claim's owner,
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
        // At-least-once: deliveries given back bump `offers` (Acquire: pairs with its
        // Release bump); what a dead consumer held is looked for every `ADOPT_POLL`.
        let offers = self.seg.u32_at(layout::OFFERS_OFFSET);
        let offers_at = offers.load(Ordering::Acquire);
        if self.geo.acks && ack::adoptable_exists(&self.seg, &self.geo, self.slot) {
            return !cancelled();
        }
        loop {
            if cancelled() {
                return false;
            }
            let pos = self.position();
            let pending = self.seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire) > pos;
            let poll = match (pending, self.geo.acks) {
                (true, true) => Some(self.recovery_poll.min(ADOPT_POLL)),
                (true, false) => Some(self.recovery_poll),
                (false, true) => Some(ADOPT_POLL),
                (false, false) => None,
            };
            if sleep_until(
                &self.seg,
                layout::DATA_SEQ_OFFSET,
                layout::DATA_WAITERS_OFFSET,
                self.wake_bits(),
                deadline,
                poll,
                strategy,
                || {
                    cancelled()
                        || self.has_data()
                        || (self.geo.acks && offers.load(Ordering::Acquire) != offers_at)
                },
            ) {
                return !cancelled();
            }
            if self.geo.acks
                && !cancelled()
                && ack::adoptable_exists(&self.seg, &self.geo, self.slot)
            {
                return true;
            }
            if pending
                && !cancelled()
                && self.position() == pos
                && !recovery::claim_is_live(&self.seg, &self.geo, pos)
                && !self.has_data()
            {
                return true;
            }
            if (!pending && !self.geo.acks) || deadline.is_some_and(|d| Instant::now() >= d) {
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
