//! The participant table: one slot per producer or subscriber (grab / release / iterate, in
//! the spirit of Apache's `mod_slotmem_shm`). Recovery and `stats()` read it.

use std::sync::atomic::Ordering;

use crate::error::{Error, ErrorCode, Result};
use crate::layout::slot;
use crate::name::is_name_byte;
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
    /// A named subscriber's name.
    pub name: Option<String>,
    /// A named subscriber that is away (closed or dead; its cursor still counts).
    pub away: bool,
    /// An at-least-once consumer: deliveries it holds, not acknowledged yet.
    pub in_flight: u64,
    /// An at-least-once consumer: messages it received again (a dead or returning consumer
    /// had them before).
    pub redelivered: u64,
    /// An at-least-once consumer's slot that still holds a range of unacknowledged records.
    pub holds_range: bool,
}

pub(crate) fn slot_field(seg: &Segment, index: u32, field: usize) -> usize {
    seg.descriptor().geometry.slot_offset(index) + field
}

/// Grabs a slot for `role` and leaves it `JOINING`; the caller fills in its role-specific
/// fields and then calls [`activate`]. Free slots are tried first, then slots whose owner
/// died (at any point, a join included): see docs/LAYOUT.md, "Participant slots".
///
/// The slot's lock is taken *before* its state word changes and dropped only after it is
/// `FREE` again, so a slot that is not free and whose lock nobody holds belongs to a dead
/// process, whatever instant it died at.
pub(crate) fn grab(seg: &Segment, role: Role) -> Result<u32> {
    let n = seg.descriptor().geometry.max_participants;
    for free_pass in [true, false] {
        for i in 0..n {
            let state = seg.u32_at(slot_field(seg, i, slot::STATE));
            // Relaxed: only picks candidates; `take` re-reads under the lock.
            let word = state.load(Ordering::Relaxed);
            let free = word & slot::STATE_BITS == slot::FREE;
            // A named subscriber's slot is never taken: not even its lock for a moment, which
            // would make a join or a removal of that name see it as attached.
            if free != free_pass || (!free && is_named(seg, i, word)) || !seg.lock_slot(i)? {
                continue;
            }
            if take(seg, i, role) {
                return Ok(i);
            }
            seg.unlock_slot(i);
        }
    }
    Err(table_full(seg))
}

/// With slot `i`'s lock held: moves its state to `JOINING` of a new generation (from `FREE`,
/// or from a dead owner's `JOINING`/`ACTIVE`) and fills in our fields. Only a reclaimer
/// freeing a dead owner's slot can change the word meanwhile (nobody else owns it while we
/// hold its lock), so a few attempts always suffice.
fn take(seg: &Segment, i: u32, role: Role) -> bool {
    let state = seg.u32_at(slot_field(seg, i, slot::STATE));
    for _ in 0..4 {
        // AcqRel: Acquire takes over whatever the previous owner (or its reclaimer) released;
        // Release lets anyone who sees JOINING see the fields as they were before us.
        let seen = state.load(Ordering::Acquire);
        if is_named(seg, i, seen) {
            return false; // a named subscriber's slot outlives its owners (see `join_named`)
        }
        if state
            .compare_exchange(
                seen,
                slot::next_generation(seen) | slot::JOINING,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            continue;
        }
        let now = process::now_ns();
        // Relaxed: nobody reads these before `activate`'s SeqCst store of ACTIVE (and the
        // Release `fetch_or` of JOINED), which publish them.
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
        w64(slot::READ, 0);
        w64(slot::MESSAGES, 0);
        w64(slot::LOST, 0);
        w64(slot::CLAIM, slot::NO_CLAIM);
        return true;
    }
    false
}

/// The error of a table with no slot to take, naming what holds the slots.
fn table_full(seg: &Segment) -> Error {
    let n = seg.descriptor().geometry.max_participants;
    let mut counts = [0u32; 4]; // producers, subscribers, consumers, joining
    let mut others = 0;
    for p in participants(seg) {
        if !p.alive {
            others += 1; // died an instant ago; the next attempt takes it
            continue;
        }
        let k = match p.role {
            Some(Role::Producer) => 0,
            Some(Role::Subscriber) => 1,
            Some(Role::Consumer) => 2,
            None => 3,
        };
        counts[k] += 1;
    }
    let names = ["producer", "subscriber", "consumer", "joining"];
    let held: Vec<String> = counts
        .iter()
        .zip(names)
        .filter(|(c, _)| **c > 0)
        .map(|(c, name)| match (*c, name) {
            (1, _) | (_, "joining") => format!("{c} {name}"),
            _ => format!("{c} {name}s"),
        })
        .collect();
    let mut what = if held.is_empty() {
        "none held".to_owned()
    } else {
        format!("held by live processes: {}", held.join(", "))
    };
    if others > 0 {
        what.push_str(&format!("; {others} freed while we looked (try again)"));
    }
    Error::new(
        ErrorCode::Busy,
        format!(
            "channel {:?} has no free participant slot (all {n} {what}); close unused \
             handles or create the channel with a larger maxParticipants",
            seg.name()
        ),
    )
}

/// Publishes a grabbed slot. SeqCst: a producer scanning for the lowest cursor either sees
/// this slot or loaded its tail before we did (see `Subscriber::new` in `ring/subscriber.rs`).
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

/// Frees our own slot and drops its lock (only in the process that took it); a named
/// subscriber's slot goes `AWAY` instead, keeping its name and cursor. Release: everything
/// the owner wrote happens-before the next owner's grab. The word is read and swapped whole:
/// nobody else changes it while we hold the lock, so the CAS fails only on a damaged segment.
pub(crate) fn release(seg: &Segment, index: u32) {
    if !seg.holds_slot(index) {
        return; // a forked child's copy of its parent's participant: the slot is the parent's
    }
    let state = seg.u32_at(slot_field(seg, index, slot::STATE));
    let seen = state.load(Ordering::Relaxed);
    let leaves_as = if is_named(seg, index, seen) {
        slot::AWAY
    } else {
        slot::FREE
    };
    if seen & slot::STATE_BITS != leaves_as {
        let _ = state.compare_exchange(
            seen,
            (seen & !slot::STATE_BITS) | leaves_as,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
    seg.unlock_slot(index);
}

/// Whether slot `i` is active with role `role` (`slot::ROLE_*`; its state loaded with
/// Acquire: the role, written before the activation, comes with it).
pub(crate) fn is_active_as(seg: &Segment, i: u32, role: u32) -> bool {
    let state = seg
        .u32_at(slot_field(seg, i, slot::STATE))
        .load(Ordering::Acquire);
    // Relaxed: see above.
    state & slot::STATE_BITS == slot::ACTIVE
        && seg
            .u32_at(slot_field(seg, i, slot::ROLE))
            .load(Ordering::Relaxed)
            == role
}

/// Whether slot `i`, whose state word read `state`, belongs to a named subscriber (joined
/// as one, or away). Acquire: pairs with `mark_joined`'s Release `fetch_or`.
pub(crate) fn is_named(seg: &Segment, i: u32, state: u32) -> bool {
    let s = state & slot::STATE_BITS;
    s == slot::AWAY
        || (s == slot::ACTIVE
            && seg
                .u32_at(slot_field(seg, i, slot::FLAGS))
                .load(Ordering::Acquire)
                & slot::NAMED
                != 0)
}

/// Frees the slots (joining or active) whose owners are dead; returns how many. An owner is
/// alive while a process holds its slot's lock ([`Segment::slot_owner_alive`]): a dead
/// process's locks are dropped by the kernel, in any PID namespace.
pub(crate) fn reclaim_dead(seg: &Segment) -> u32 {
    let mut freed = 0;
    for p in participants(seg) {
        // The CAS on the whole word (generation included) fails if the slot changed hands
        // since `participants` read it, so a new owner is never evicted for an old one's
        // death: a new owner takes the lock before it changes the word.
        if !p.alive && !p.away && !holds_range(seg, p.slot) {
            let state = seg.u32_at(slot_field(seg, p.slot, slot::STATE));
            // A dead named subscriber goes away (keeping its name and cursor), others free.
            let leaves_as = if p.name.is_some() {
                slot::AWAY
            } else {
                slot::FREE
            };
            let free = (p.state & !slot::STATE_BITS) | leaves_as;
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

/// Whether slot `i` is an at-least-once consumer's that still describes a range (held by
/// whoever works on it now): such a slot is not freed, or its `held` would stop holding the
/// space, until the range is settled. Acquire: pairs with the Release store that settles it.
fn holds_range(seg: &Segment, i: u32) -> bool {
    seg.descriptor().delivery == crate::options::Delivery::AtLeastOnce
        && seg
            .u32_at(slot_field(seg, i, slot::ROLE))
            .load(Ordering::Relaxed)
            == slot::ROLE_CONSUMER
        && seg
            .u64_at(slot_field(seg, i, slot::HELD))
            .load(Ordering::Acquire)
            != slot::NO_HELD
}

/// A named subscriber's name, from slot `i` (zero padded; anything but the name's
/// characters ends it, so a damaged slot cannot produce a strange string).
pub(crate) fn read_name(seg: &Segment, i: u32) -> String {
    let mut bytes = [0u8; slot::NAME_LEN];
    seg.read_bytes(slot_field(seg, i, slot::NAME), &mut bytes);
    bytes
        .iter()
        .take_while(|&&b| is_name_byte(b))
        .map(|&b| b as char)
        .collect()
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
        let away = state & slot::STATE_BITS == slot::AWAY;
        let named = is_named(seg, i, state);
        let acks = seg.descriptor().delivery == crate::options::Delivery::AtLeastOnce
            && r32(slot::ROLE) == slot::ROLE_CONSUMER;
        out.push(ParticipantInfo {
            slot: i,
            state,
            role: if away
                || (state & slot::STATE_BITS == slot::ACTIVE
                    && r32(slot::FLAGS) & slot::JOINED != 0)
            {
                Role::from_code(r32(slot::ROLE))
            } else {
                None
            },
            pid,
            alive: !away && seg.slot_owner_alive(i),
            name: named.then(|| read_name(seg, i)),
            away,
            cursor: if acks { 0 } else { r64(slot::CURSOR) },
            messages: r64(slot::MESSAGES),
            lost: r64(slot::LOST),
            heartbeat_ns: r64(slot::HEARTBEAT),
            in_flight: if acks { r64(slot::IN_FLIGHT) } else { 0 },
            redelivered: if acks { r64(slot::REDELIVERED) } else { 0 },
            holds_range: acks && holds_range(seg, i),
        });
    }
    out
}
