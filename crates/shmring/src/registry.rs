//! The participant table: one slot per producer or subscriber (grab / release / iterate, in
//! the spirit of Apache's `mod_slotmem_shm`). Recovery and `stats()` read it.

use std::sync::atomic::Ordering;

use crate::error::{Error, ErrorCode, Result};
use crate::layout::slot;
use crate::process;
use crate::segment::Segment;

/// Who holds a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Publishes.
    Producer,
    /// Subscribes to a topic.
    Subscriber,
    /// Consumes from a queue.
    Consumer,
}

impl Role {
    fn code(self) -> u32 {
        match self {
            Role::Producer => slot::ROLE_PRODUCER,
            Role::Subscriber => slot::ROLE_SUBSCRIBER,
            Role::Consumer => slot::ROLE_CONSUMER,
        }
    }
    fn from_code(c: u32) -> Option<Role> {
        match c {
            slot::ROLE_PRODUCER => Some(Role::Producer),
            slot::ROLE_SUBSCRIBER => Some(Role::Subscriber),
            slot::ROLE_CONSUMER => Some(Role::Consumer),
            _ => None,
        }
    }
}

/// A snapshot of one occupied slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantInfo {
    /// Slot index.
    pub slot: u32,
    /// The raw state word (generation and state) when read.
    pub state: u32,
    /// Producer or subscriber (`None`: unknown role code, or still joining).
    pub role: Option<Role>,
    /// Owner's pid.
    pub pid: u32,
    /// Whether the owner still runs.
    pub alive: bool,
    /// Subscriber's next position to read.
    pub cursor: u64,
    /// Messages published or received.
    pub messages: u64,
    /// Messages lost (overwrite policy).
    pub lost: u64,
    /// Last activity, nanoseconds since the Unix epoch.
    pub heartbeat_ns: u64,
}

pub(crate) fn slot_field(seg: &Segment, index: u32, field: usize) -> usize {
    seg.descriptor().geometry.slot_offset(index) + field
}

/// Grabs a free slot for `role` and leaves it `JOINING`; the caller fills in its role-specific
/// fields and then calls [`activate`]. A full table is first swept for slots of dead owners.
pub(crate) fn grab(seg: &Segment, role: Role) -> Result<u32> {
    let n = seg.descriptor().geometry.max_participants;
    for attempt in 0..2 {
        for i in 0..n {
            let state = seg.u32_at(slot_field(seg, i, slot::STATE));
            let seen = state.load(Ordering::Relaxed);
            if seen & slot::STATE_BITS != slot::FREE {
                continue;
            }
            // AcqRel: Acquire takes over whatever the previous owner released; Release lets a
            // reclaimer that sees JOINING see the fields as they were before us.
            if state
                .compare_exchange(
                    seen,
                    slot::next_generation(seen) | slot::JOINING,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                let now = process::now_ns();
                let w64 = |f: usize, v: u64| {
                    seg.u64_at(slot_field(seg, i, f))
                        .store(v, Ordering::Relaxed)
                };
                let w32 = |f: usize, v: u32| {
                    seg.u32_at(slot_field(seg, i, f))
                        .store(v, Ordering::Relaxed)
                };
                w32(slot::ROLE, role.code());
                w32(slot::PID, std::process::id());
                w32(slot::FLAGS, 0);
                w64(slot::START_TIME, process::self_start_time());
                w64(slot::JOINED_AT, now);
                w64(slot::HEARTBEAT, now);
                w64(slot::CURSOR, 0);
                w64(slot::MESSAGES, 0);
                w64(slot::LOST, 0);
                w64(slot::CLAIM, slot::NO_CLAIM);
                return Ok(i);
            }
        }
        if attempt == 0 && reclaim_dead(seg) == 0 {
            break;
        }
    }
    Err(Error::new(
        ErrorCode::InvalidArgument,
        format!(
            "channel {:?} has all {n} participant slots in use by live processes; close \
             unused handles or create the channel with a larger maxParticipants",
            seg.name()
        ),
    ))
}

/// Publishes a grabbed slot. SeqCst: a producer scanning for the lowest cursor either sees
/// this slot or loaded its tail before we did (see `ring::Subscriber::join`).
pub(crate) fn activate(seg: &Segment, index: u32) {
    let state = seg.u32_at(slot_field(seg, index, slot::STATE));
    let generation = state.load(Ordering::Relaxed) & !slot::STATE_BITS;
    state.store(generation | slot::ACTIVE, Ordering::SeqCst);
}

/// Marks an active slot as fully joined: from now on `participants` shows its role. A
/// subscriber does this after storing its starting cursor, so "a subscriber is listed" means
/// "it receives everything published from now on". Release: the cursor store is visible first.
pub(crate) fn mark_joined(seg: &Segment, index: u32) {
    seg.u32_at(slot_field(seg, index, slot::FLAGS))
        .fetch_or(slot::JOINED, Ordering::Release);
}

/// Frees our own slot, unless recovery already took it from us (then it may belong to
/// someone else by now and is left alone). Release: everything the owner wrote
/// happens-before the next owner's grab.
pub(crate) fn release(seg: &Segment, index: u32) {
    let state = seg.u32_at(slot_field(seg, index, slot::STATE));
    let seen = state.load(Ordering::Relaxed);
    if seen & slot::STATE_BITS == slot::ACTIVE && slot_is_ours(seg, index) {
        let _ = state.compare_exchange(
            seen,
            (seen & !slot::STATE_BITS) | slot::FREE,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
}

fn slot_is_ours(seg: &Segment, index: u32) -> bool {
    seg.u32_at(slot_field(seg, index, slot::PID))
        .load(Ordering::Relaxed)
        == std::process::id()
}

/// Frees the slots whose owners are dead; returns how many. A pid is judged together with
/// its start time, so a reused pid does not keep a dead owner's slot alive.
pub(crate) fn reclaim_dead(seg: &Segment) -> u32 {
    let mut freed = 0;
    for p in participants(seg) {
        // Only ACTIVE slots: a JOINING one may be mid-grab, its pid not yet written. The CAS
        // on the whole word (generation included) fails if the slot changed hands since
        // `participants` read it, so a new owner is never evicted for an old one's death.
        if !p.alive && p.state & slot::STATE_BITS == slot::ACTIVE {
            let state = seg.u32_at(slot_field(seg, p.slot, slot::STATE));
            let free = (p.state & !slot::STATE_BITS) | slot::FREE;
            if state
                .compare_exchange(p.state, free, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                freed += 1;
            }
        }
    }
    freed
}

/// Every occupied slot, with the owner's liveness.
pub fn participants(seg: &Segment) -> Vec<ParticipantInfo> {
    let n = seg.descriptor().geometry.max_participants;
    let mut out = Vec::new();
    for i in 0..n {
        let state = seg
            .u32_at(slot_field(seg, i, slot::STATE))
            .load(Ordering::Acquire);
        if state & slot::STATE_BITS == slot::FREE {
            continue;
        }
        let r64 = |f: usize| seg.u64_at(slot_field(seg, i, f)).load(Ordering::Acquire);
        let r32 = |f: usize| seg.u32_at(slot_field(seg, i, f)).load(Ordering::Acquire);
        let pid = r32(slot::PID);
        let start = r64(slot::START_TIME);
        out.push(ParticipantInfo {
            slot: i,
            state,
            role: if state & slot::STATE_BITS == slot::ACTIVE
                && r32(slot::FLAGS) & slot::JOINED != 0
            {
                Role::from_code(r32(slot::ROLE))
            } else {
                None
            },
            pid,
            alive: process::is_alive(pid, start),
            cursor: r64(slot::CURSOR),
            messages: r64(slot::MESSAGES),
            lost: r64(slot::LOST),
            heartbeat_ns: r64(slot::HEARTBEAT),
        });
    }
    out
}
