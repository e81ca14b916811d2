//! Named subscribers: a topic subscription whose cursor lives on in its participant slot
//! when its process closes or dies (the slot goes `AWAY`), so that a later subscription of
//! the same name resumes right after the last message it consumed. While away, its cursor
//! holds producers back as a live subscriber's would (policy `block`).
//!
//! Joining, leaving and removal of names happen under the segment's names lock
//! ([`Segment::lock_names`]), so one name never has two slots.

use crate::error::{Error, ErrorCode, Result};
use crate::layout::slot;
use crate::name::is_name_byte;
use crate::process;
use crate::registry::{self, Role, is_named, read_name, slot_field};
use crate::segment::{NamesGuard, Segment};
use crate::sync::Ordering;

/// Longest subscriber name.
pub const MAX_SUBSCRIBER_NAME_LEN: usize = slot::NAME_LEN;

/// How a named subscription got its slot.
pub(crate) enum NamedJoin {
    /// The name was away (or its owner dead): we own its slot again; go on from `cursor`.
    Resumed { slot: u32, cursor: u64 },
    /// A new name: a `JOINING` slot with the name written; the caller joins as a subscriber
    /// and marks the slot joined as a named one ([`mark_joined_named`]).
    New { slot: u32 },
}

/// Checks a subscriber name: `[A-Za-z0-9._-]{1,32}`.
pub fn validate_subscriber_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_SUBSCRIBER_NAME_LEN || !name.bytes().all(is_name_byte) {
        let shown: String = name.chars().take(40).collect();
        return Err(Error::new(
            ErrorCode::InvalidName,
            format!(
                "subscriber name {shown:?} is not 1 to {MAX_SUBSCRIBER_NAME_LEN} characters of \
                 [A-Za-z0-9._-]"
            ),
        ));
    }
    Ok(())
}

/// The slot of the named subscriber `name` (joined or away) and its state word.
fn find(seg: &Segment, name: &str) -> Option<(u32, u32)> {
    let n = seg.descriptor().geometry.max_participants;
    (0..n).find_map(|i| {
        // Acquire: pairs with the Release that published the slot (activation, going away).
        let state = seg
            .u32_at(slot_field(seg, i, slot::STATE))
            .load(Ordering::Acquire);
        (is_named(seg, i, state) && read_name(seg, i) == name).then_some((i, state))
    })
}

/// `Busy`: the named subscriber `name` is attached by a live process.
fn attached(seg: &Segment, name: &str, i: u32) -> Error {
    let pid = seg
        .u32_at(slot_field(seg, i, slot::PID))
        .load(Ordering::Relaxed);
    Error::new(
        ErrorCode::Busy,
        format!(
            "subscriber {name:?} of channel {:?} is attached (pid {pid}); a name has one \
             subscription at a time",
            seg.name()
        ),
    )
}

/// Joins as the named subscriber `name`, under the names lock (`_names`).
pub(crate) fn join_named(seg: &Segment, name: &str, _names: &NamesGuard<'_>) -> Result<NamedJoin> {
    validate_subscriber_name(name)?;
    let Some((i, state)) = find(seg, name) else {
        let i = registry::grab(seg, Role::Subscriber)?;
        let mut bytes = [0u8; slot::NAME_LEN];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        // Published by `activate`'s SeqCst store and `mark_joined_named`'s Release.
        seg.write_bytes(slot_field(seg, i, slot::NAME), &bytes);
        return Ok(NamedJoin::New { slot: i });
    };
    if state & slot::STATE_BITS == slot::ACTIVE && seg.slot_owner_alive(i) {
        return Err(attached(seg, name, i));
    }
    // Away, or its owner died: its lock is free (a live holder is attached after all).
    if !seg.lock_slot(i)? {
        return Err(attached(seg, name, i));
    }
    let word = seg.u32_at(slot_field(seg, i, slot::STATE));
    for _ in 0..4 {
        // Only a reclaimer turning the dead owner's ACTIVE into AWAY can change the word now
        // (we hold the names lock and the slot's lock), so a few attempts suffice.
        let seen = word.load(Ordering::Acquire);
        if !is_named(seg, i, seen) {
            break;
        }
        // Straight to ACTIVE of a new generation: the cursor counted for producers while
        // away and goes on counting, never through a state `lowest_needed` skips. AcqRel:
        // Acquire takes over what the previous owner released; Release as `activate`.
        if word
            .compare_exchange(
                seen,
                slot::next_generation(seen) | slot::ACTIVE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            let now = process::now_ns();
            // Relaxed: information for `participants`, which reads them after the state.
            let w64 = |f: usize, v: u64| {
                seg.u64_at(slot_field(seg, i, f))
                    .store(v, Ordering::Relaxed)
            };
            seg.u32_at(slot_field(seg, i, slot::PID))
                .store(std::process::id(), Ordering::Relaxed);
            w64(slot::START_TIME, process::self_start_time());
            w64(slot::JOINED_AT, now);
            w64(slot::HEARTBEAT, now);
            // Acquire: pairs with the previous owner's Release cursor stores.
            let cursor = seg
                .u64_at(slot_field(seg, i, slot::CURSOR))
                .load(Ordering::Acquire);
            return Ok(NamedJoin::Resumed { slot: i, cursor });
        }
    }
    seg.unlock_slot(i);
    Err(Error::new(
        ErrorCode::CorruptSegment,
        format!(
            "channel {:?}: the slot of subscriber {name:?} changed under the names lock",
            seg.name()
        ),
    ))
}

/// Marks a new named subscriber's slot joined: from now on it outlives its owner.
pub(crate) fn mark_joined_named(seg: &Segment, index: u32) {
    // Release: the name and the starting cursor are visible with the flags.
    seg.u32_at(slot_field(seg, index, slot::FLAGS))
        .fetch_or(slot::JOINED | slot::NAMED, Ordering::Release);
}

/// Removes the named subscriber `name`, which must be away (or dead): its slot is freed and
/// its cursor no longer holds producers back. `Ok(false)`: no subscriber has that name.
/// `Busy` if it is attached.
pub(crate) fn remove_named(seg: &Segment, name: &str) -> Result<bool> {
    validate_subscriber_name(name)?;
    let names = seg.lock_names()?;
    let Some((i, state)) = find(seg, name) else {
        return Ok(false);
    };
    if state & slot::STATE_BITS == slot::ACTIVE && seg.slot_owner_alive(i) {
        return Err(attached(seg, name, i));
    }
    if !seg.lock_slot(i)? {
        return Err(attached(seg, name, i));
    }
    let word = seg.u32_at(slot_field(seg, i, slot::STATE));
    let mut removed = false;
    for _ in 0..4 {
        let seen = word.load(Ordering::Acquire);
        if !is_named(seg, i, seen) {
            break;
        }
        seg.write_bytes(slot_field(seg, i, slot::NAME), &[0u8; slot::NAME_LEN]);
        // Release: the cleared name is visible to whoever takes the free slot.
        if word
            .compare_exchange(
                seen,
                (seen & !slot::STATE_BITS) | slot::FREE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            removed = true;
            break;
        }
    }
    seg.unlock_slot(i);
    drop(names);
    Ok(removed)
}
