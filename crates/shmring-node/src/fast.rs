//! The hot calls — `publish`, `publishRange`, `publishMany`, `drain`, `recv`, `sha1Frames` —
//! as plain Node-API callbacks, registered by hand on the module's exports (typed in
//! `src/native.ts`, not in the generated `binding.d.ts`).
//!
//! Why not `#[napi]` methods: in napi-rs 3 a call of a class method costs ~360 ns, of which the
//! ring's claim-copy-commit is ~6%. perf puts the rest in what the generated glue does around
//! every call: a borrow scope (an `Arc<Mutex<..>>` and `Vec`s allocated and freed per call),
//! the receiver's borrow registered in a process-wide `Mutex<HashMap>` and removed again, and
//! `napi_unwrap` plus `napi_check_object_type_tag` on `this` (each a private-symbol property
//! lookup in V8). The `Buffer` argument itself is cheap: one `napi_get_buffer_info`.
//!
//! So here a call names its producer or subscription by a *handle*, a number that indexes a
//! per-thread table ([`crate::handles`]) with a serial check, and reads its `Buffer`
//! arguments with `napi_get_buffer_info` for the duration of the call
//! ([`crate::callback::Call`]). No unwrap, no type tag, no borrow registry, no allocation. A
//! stale or foreign handle (another thread's, the other kind's: a subscription's passed to
//! `publish`, a closed object's) finds nothing (`Closed`), never another object.
//!
//! Each callback converts its arguments, looks the handle up, runs the engine call, and only
//! then creates its return value or throws, so no napi call (which could run a finalizer)
//! happens while a table entry is borrowed.

use std::cell::RefMut;
use std::ffi::c_char;
use std::ptr;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{JsValue, Object};
use napi::{Env, sys};

use crate::callback::run;
use crate::error::{Fail, invalid};
use crate::handles::{Reader, reader_or_closed, with_publisher};
use crate::timeout::{deadline_of, timeout_of};

/// `publish(handle, payload: Buffer): boolean` — one encoded message; false when the ring is
/// full (policy `block`).
unsafe extern "C" fn publish(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let handle = c.number(0, "handle")?;
            let payload = c.bytes(1, "payload")?;
            let ok = with_publisher(handle, |p| p.try_publish(payload))?;
            c.boolean(ok)
        })
    }
}

/// `publishRange(handle, buf: Buffer, start: number, end: number): boolean` — `publish` of the
/// message at `buf[start, end)`: an encoder that packs into one reused buffer hands it over
/// without making a view of each message (a `subarray` costs more than this call's two
/// extra arguments). A range outside `buf`, or bounds that are not whole numbers, is an
/// `InvalidArgument` and publishes nothing.
unsafe extern "C" fn publish_range(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let handle = c.number(0, "handle")?;
            let buf = c.bytes(1, "buf")?;
            let start = c.index(2, "start")?;
            let end = c.index(3, "end")?;
            if start > end || end > buf.len() {
                return Err(invalid(format!(
                    "range {start}..{end} is outside 0..={}",
                    buf.len()
                )));
            }
            let ok = with_publisher(handle, |p| p.try_publish(&buf[start..end]))?;
            c.boolean(ok)
        })
    }
}

/// `publishAt(handle, buf: ArrayBuffer, end: number): boolean` — `publish` of the message at
/// `buf[0, end)`. The codec's fast path encodes into one `ArrayBuffer` of its own from byte 0;
/// handing over the buffer itself, not a view of it, spares the call a `Buffer`'s
/// several V8 calls. An `end` past `buf`, or not a whole number, is an `InvalidArgument` and
/// publishes nothing.
unsafe extern "C" fn publish_at(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let handle = c.number(0, "handle")?;
            let buf = c.array_buffer(1, "buf")?;
            let end = c.index(2, "end")?;
            let Some(payload) = buf.get(..end) else {
                return Err(invalid(format!("end {end} is past 0..={}", buf.len())));
            };
            let ok = with_publisher(handle, |p| p.try_publish(payload))?;
            c.boolean(ok)
        })
    }
}

/// The messages packed in `buf`, message `i` ending at `ends[i]`: every end is checked first
/// (each at least the one before, none past `buf`), so a bad `ends` is an `InvalidArgument`
/// before any message is used.
fn frames<'a>(buf: &'a [u8], ends: &'a [u32]) -> Result<impl Iterator<Item = &'a [u8]>, Fail> {
    let mut start = 0usize;
    for &end in ends {
        let end = end as usize;
        if end < start || end > buf.len() {
            return Err(invalid(format!(
                "frame end {end} is outside {start}..={}",
                buf.len()
            )));
        }
        start = end;
    }
    Ok(ends.iter().scan(0usize, |at, &end| {
        let frame = &buf[*at..end as usize];
        *at = end as usize;
        Some(frame)
    }))
}

/// `publishMany(handle, buf: Buffer, ends: Uint32Array): number` — messages packed back to
/// back in `buf`, message `i` ending at `ends[i]`; returns how many went in before the ring
/// filled. An error of the engine's batch (policy `fail`: `RingFull`; `MessageTooLarge`) has
/// a number `published`: how many of the batch went in before it. The checks made here first
/// (the handle, `ends`) publish nothing and set none.
unsafe extern "C" fn publish_many(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let handle = c.number(0, "handle")?;
            let buf = c.bytes(1, "buf")?;
            // A copy: validated and used as the same values.
            let ends = c.u32s(2, "ends")?;
            // Checked before anything is published: a bad `ends` publishes nothing.
            let frames = frames(buf, &ends)?;
            let n = with_publisher(handle, |p| p.try_publish_many(frames))?;
            c.number_value(n as f64)
        })
    }
}

/// `sha1Frames(buf: Buffer, ends: Uint32Array): Buffer` — the SHA-1 digest (20 bytes) of each
/// message packed in `buf` as for `publishMany` (message `i` ends at `ends[i]`), back to back
/// in a new Buffer. The bridge's importer announces each message it publishes by this digest
/// (`src/bridge/loop.ts`); one call per batch instead of one `crypto.hash` per message.
unsafe extern "C" fn sha1_frames(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    use sha1::{Digest, Sha1};
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let buf = c.bytes(0, "buf")?;
            let ends = c.u32s(1, "ends")?;
            let mut out = Vec::with_capacity(ends.len() * 20);
            for frame in frames(buf, &ends)? {
                out.extend_from_slice(&Sha1::digest(frame));
            }
            c.buffer_value(&out)
        })
    }
}

/// `drain(handle, buf: Buffer, maxCount: number): number` — copies committed messages into
/// `buf` as `[len u32 LE][payload]` frames, at most `maxCount`; returns the bytes used.
unsafe extern "C" fn drain(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |mut c| {
            let r = reader_or_closed(c.number(0, "handle")?)?;
            let max = c.u32(2, "maxCount")?;
            let buf = c.bytes_mut(1, "buf")?;
            let mut sub = borrow(&r)?;
            let d = sub.drain_into(buf, max as usize)?;
            drop(sub);
            c.number_value(d.bytes as f64)
        })
    }
}

/// `recv(handle, buf: Buffer, timeoutMs?: number): number` — waits up to `timeoutMs`
/// (forever if absent) for the next message, with the subscription's wait strategy, and
/// copies it into `buf` as one frame `[len u32 LE][payload]`; returns the payload's length
/// (it starts at byte 4), or -1 if none came in time. `buf` must hold the channel's largest
/// message plus 4 bytes.
///
/// The wait goes in slices of at most [`RECV_SLICE`]; between them it asks Node whether the
/// calling thread may still run JS
/// ([`EndingProbe::thread_is_ending`](crate::callback::EndingProbe::thread_is_ending)). Once its worker is being
/// terminated, or the process exits, it throws `Closed` instead of waiting on: otherwise
/// `worker.terminate()` (and `process.exit()`, which terminates every worker and waits for
/// them) would wait for a message that may never come.
///
/// This is `Subscriber::recv_timeout` (try, then wait with the strategy until the deadline)
/// with `drain_into` as the try: it copies straight into `buf`, where `try_recv` would
/// zero-fill a scratch `Vec` of the largest message size on every call (64 KiB: ~0.5 µs,
/// 1 MiB: ~12 µs) and then need a second copy.
unsafe extern "C" fn recv(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |mut c| {
            let r = reader_or_closed(c.number(0, "handle")?)?;
            let deadline =
                deadline_of(timeout_of("timeoutMs", c.optional_number(2, "timeoutMs")?)?);
            let probe = c.ending_probe();
            let buf = c.bytes_mut(1, "buf")?;
            let mut sub = borrow(&r)?;
            let len = loop {
                if sub.drain_into(buf, 1)?.count == 1 {
                    let head: [u8; 4] = buf[..4].try_into().expect("a frame has a header");
                    break f64::from(u32::from_le_bytes(head));
                }
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left == Some(Duration::ZERO) {
                    break -1.0;
                }
                if probe.thread_is_ending() {
                    return Err(ending());
                }
                sub.wait(Some(left.map_or(RECV_SLICE, |l| l.min(RECV_SLICE))));
            };
            drop(sub);
            c.number_value(len)
        })
    }
}

/// `commit(handle, position: number): undefined` — a named subscription consumed every
/// message it received up to and including the one at `position` (see
/// `Subscriber::commit_through`); no effect on other subscriptions.
unsafe extern "C" fn commit(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let r = reader_or_closed(c.number(0, "handle")?)?;
            let position = c.number(1, "position")?;
            let mut sub = borrow(&r)?;
            // Saturating: positions come from our own frames, below 2^53.
            sub.commit_through(position as u64);
            drop(sub);
            c.undefined_value()
        })
    }
}

/// `settle(handle, position, how: number): boolean` — an at-least-once consumer settles its
/// deliveries (positions from record frames): `how` [`SETTLE_ACK`] acknowledges the one at
/// `position`, [`SETTLE_NACK`] gives it back with every unsettled delivery after it, and
/// [`SETTLE_ACK_THROUGH`] acknowledges every one up to and including it. Returns whether a
/// delivery was settled (false: none of this consumer's unsettled deliveries is concerned:
/// settled already, or taken over after the channel's ack timeout).
unsafe extern "C" fn settle(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let r = reader_or_closed(c.number(0, "handle")?)?;
            let position = c.number(1, "position")?;
            let how = c.u32(2, "how")?;
            let mut sub = borrow(&r)?;
            // Positions come from our own frames, below 2^53.
            let p = position as u64;
            let done = match how {
                SETTLE_ACK => sub.ack(p),
                SETTLE_NACK => sub.nack(p),
                SETTLE_ACK_THROUGH => sub.ack_through(p),
                other => {
                    drop(sub);
                    return Err(invalid(format!("settle how {other} is not 0, 1 or 2")));
                }
            };
            drop(sub);
            c.boolean(done)
        })
    }
}

/// `settle`'s `how`: acknowledge one delivery.
const SETTLE_ACK: u32 = 0;
/// `settle`'s `how`: give a delivery back, with every unsettled one after it.
const SETTLE_NACK: u32 = 1;
/// `settle`'s `how`: acknowledge every delivery up to and including one.
const SETTLE_ACK_THROUGH: u32 = 2;

/// The subscriber of `r`, borrowed for the engine call of one callback (released before any
/// napi call, see the module docs; busy only if a call on it were already running).
fn borrow(r: &Reader) -> Result<RefMut<'_, shmring::Subscriber>, Fail> {
    r.sub
        .try_borrow_mut()
        .map_err(|_| invalid("subscription is busy".into()))
}

/// The longest `recv` waits before it looks whether its thread is ending.
const RECV_SLICE: Duration = Duration::from_millis(50);

/// What `recv` throws when its thread is ending (Node will not run it, but it ends the call).
fn ending() -> Fail {
    Fail::new(
        shmring::ErrorCode::Closed,
        "receiveSync ended: its thread is ending (worker terminated or process exiting)".into(),
    )
}

/// Puts the callbacks on the module's exports.
#[napi_derive::napi(module_exports)]
pub fn register_fast_path(exports: Object, env: Env) -> napi::Result<()> {
    type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
    let fns: [(&std::ffi::CStr, Callback); 9] = [
        (c"publish", publish),
        (c"publishAt", publish_at),
        (c"publishRange", publish_range),
        (c"publishMany", publish_many),
        (c"drain", drain),
        (c"recv", recv),
        (c"commit", commit),
        (c"settle", settle),
        (c"sha1Frames", sha1_frames),
    ];
    for (name, cb) in fns {
        let mut f = ptr::null_mut();
        // SAFETY: the module's env during its initialisation; `name` is NUL-terminated
        // (length -1: up to the NUL); `cb` has the napi_callback signature; `f` is a valid out
        // pointer.
        let s = unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr() as *const c_char,
                -1,
                Some(cb),
                ptr::null_mut(),
                &mut f,
            )
        };
        napi::check_status!(s, "cannot create {:?}", name)?;
        // SAFETY: `exports` is the live exports object; `f` the function just created.
        let s = unsafe { sys::napi_set_named_property(env.raw(), exports.raw(), name.as_ptr(), f) };
        napi::check_status!(s, "cannot export {:?}", name)?;
    }
    Ok(())
}
