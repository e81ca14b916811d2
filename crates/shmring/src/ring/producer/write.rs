//! Writing one claimed record: the padding before it, its header (CLAIMED), its payload and
//! the commit. Both sync modes and batches write with these.

use crate::hooks::hook;
use crate::layout::record;
use crate::ring_map::RingMap;
use crate::segment::Segment;
use crate::sync::Ordering;

/// Writes a claimed record (and the padding before it, if any) and commits it. `pseq` is the
/// producer's message number.
#[inline]
pub(super) fn fill(
    seg: &Segment,
    geo: &RingMap,
    producer: u32,
    pseq: u64,
    tail: u64,
    start: u64,
    payload: &[u8],
) {
    pad(seg, geo, tail, start);
    write_header(seg, geo, producer, pseq, start, payload.len());
    write_body_and_commit(seg, geo, start, payload);
}

/// A claim made at `tail` whose record starts at `start`: if they differ, writes the padding
/// record that runs from `tail` to the end of the data area.
#[inline]
pub(super) fn pad(seg: &Segment, geo: &RingMap, tail: u64, start: u64) {
    if start != tail {
        // Padding to the end of the data area; it carries nothing, so commit it at once.
        // SYNC POINT: Release pairs with the reader's Acquire load of `seq`.
        seg.u64_at(geo.at(tail)).store(
            record::encode_seq(tail, record::PADDING, geo.key),
            Ordering::Release,
        );
    }
}

/// Writes the header of the claimed record at `start`: length, producer, the producer's
/// message number `pseq`, and `seq` CLAIMED.
#[inline]
pub(super) fn write_header(
    seg: &Segment,
    geo: &RingMap,
    producer: u32,
    pseq: u64,
    start: u64,
    len: usize,
) {
    let at = geo.at(start);
    // len u32 | producer u16 | flags u16 (zero) | pseq u64: one copy.
    let mut head = [0u8; 16];
    head[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    head[4..6].copy_from_slice(&(producer as u16).to_le_bytes());
    head[8..16].copy_from_slice(&pseq.to_le_bytes());
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
pub(super) fn write_body_and_commit(seg: &Segment, geo: &RingMap, start: u64, payload: &[u8]) {
    let at = geo.at(start);
    let body = at + record::HEADER_LEN;
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
