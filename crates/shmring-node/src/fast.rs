//! The hot calls — `publish`, `publishMany`, `drain`, `recv` — as plain Node-API callbacks,
//! registered by hand on the module's exports (typed in `src/native.ts`, not in the generated
//! `binding.d.ts`).
//!
//! Why not `#[napi]` methods: in napi-rs 3 a call of a class method costs ~360 ns, of which the
//! ring's claim-copy-commit is ~6%. perf puts the rest in what the generated glue does around
//! every call: a borrow scope (an `Arc<Mutex<..>>` and `Vec`s allocated and freed per call),
//! the receiver's borrow registered in a process-wide `Mutex<HashMap>` and removed again, and
//! `napi_unwrap` plus `napi_check_object_type_tag` on `this` (each a private-symbol property
//! lookup in V8). The `Buffer` argument itself is cheap: one `napi_get_buffer_info`.
//!
//! So here a call names its producer or subscription by a *handle*, a number that indexes a
//! per-thread table ([`Table`]) with a serial check, and reads its `Buffer` arguments with
//! `napi_get_buffer_info` for the duration of the call. No unwrap, no type tag, no borrow
//! registry, no allocation. A stale or foreign handle finds nothing (`Closed`), never another
//! object: the tables are thread-local and Rust-owned, and every handle carries a serial
//! unique in the process (across threads and both kinds of table), so a handle of another
//! thread, of the other kind (a subscription's passed to `publish`) or of a closed object
//! matches no slot.
//!
//! Each callback converts its arguments, looks the handle up, runs the engine call, and only
//! then creates its return value or throws, so no napi call (which could run a finalizer)
//! happens while a table entry is borrowed.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{JsValue, Object};
use napi::{Env, sys};

/// An error to throw: the stable shmring code (becomes the JS error's `code`) and a message.
pub(crate) struct Fail {
    code: &'static str,
    message: String,
}

impl From<shmring::Error> for Fail {
    fn from(e: shmring::Error) -> Self {
        Fail {
            code: e.code().as_str(),
            message: e.message().to_owned(),
        }
    }
}

impl Fail {
    /// The code and the message, for the `#[napi]` methods' error type.
    pub(crate) fn into_parts(self) -> (&'static str, String) {
        (self.code, self.message)
    }
}

fn invalid(message: String) -> Fail {
    Fail {
        code: shmring::ErrorCode::InvalidArgument.as_str(),
        message,
    }
}

fn closed(what: &str) -> Fail {
    Fail {
        code: shmring::ErrorCode::Closed.as_str(),
        message: format!("{what} is closed"),
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts.

/// Timeouts from this many milliseconds up (about 100 years) mean "wait forever": no clock
/// needs a deadline that far, and `Instant + Duration` could overflow (a panic) past it.
const FOREVER_MS: f64 = 100.0 * 365.25 * 24.0 * 3600.0 * 1000.0;

/// A JS timeout in milliseconds as a wait: `None` (forever) for `undefined`, `Infinity` or
/// anything from [`FOREVER_MS`] up; `InvalidArgument` for `NaN` or a negative number. Never
/// panics (unlike `Duration::from_secs_f64`, which panics on values it cannot hold).
pub(crate) fn timeout_of(what: &str, ms: Option<f64>) -> Result<Option<Duration>, Fail> {
    match ms {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(invalid(format!(
            "{what} must be a number >= 0 (milliseconds), not {t}"
        ))),
        Some(t) if t >= FOREVER_MS => Ok(None),
        Some(t) => Ok(Duration::try_from_secs_f64(t / 1000.0).ok()),
    }
}

/// The instant `timeout` from now, or `None` (forever) if there is none or the clock cannot
/// hold it.
pub(crate) fn deadline_of(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

// ---------------------------------------------------------------------------------------------
// Handles.

/// Bits of a handle that hold the slot index; the serial sits above them. A handle is a JS
/// number, exact below 2^53: 21 bits of index and 32 of serial fit.
const INDEX_BITS: u32 = 21;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// The next handle serial, shared by every table of every thread: no two live handles of the
/// process have the same serial (until 2^32 handles were made, when it wraps), so a slot
/// matches only the handle it was filled for.
static NEXT_SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// A slot table: what a handle names, per JS thread. Each filling of a slot takes a fresh
/// serial, so a handle kept after `remove`, or made by another table, finds nothing rather
/// than the slot's occupant.
pub(crate) struct Table<T> {
    slots: Vec<(u32, Option<Rc<T>>)>,
    free: Vec<u32>,
}

impl<T> Table<T> {
    const fn new() -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    fn insert(&mut self, value: T) -> Result<f64, Fail> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.slots.len() as u64;
                if i > INDEX_MASK {
                    return Err(invalid(format!(
                        "more than {INDEX_MASK} subscriptions and channels open on one thread"
                    )));
                }
                self.slots.push((0, None));
                i as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        // Relaxed: only uniqueness matters (the RMW gives every caller its own value); no
        // other memory is published through the counter.
        let mut serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if serial == 0 {
            // 0 marks a free slot.
            serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        slot.0 = serial;
        slot.1 = Some(Rc::new(value));
        Ok(((u64::from(slot.0) << INDEX_BITS) | u64::from(index)) as f64)
    }

    /// The slot a handle names and its serial, if the handle is well formed.
    fn slot(&self, handle: f64) -> Option<(usize, u32)> {
        if !(handle >= 0.0 && handle < 2f64.powi(53) && handle.fract() == 0.0) {
            return None;
        }
        let h = handle as u64;
        Some(((h & INDEX_MASK) as usize, (h >> INDEX_BITS) as u32))
    }

    fn get(&self, handle: f64) -> Option<Rc<T>> {
        let (index, serial) = self.slot(handle)?;
        match self.slots.get(index) {
            Some((g, Some(v))) if *g == serial => Some(v.clone()),
            _ => None,
        }
    }

    /// Removes what `handle` names (nothing if it is stale); returns it.
    fn remove(&mut self, handle: f64) -> Option<Rc<T>> {
        let (index, serial) = self.slot(handle)?;
        let slot = self.slots.get_mut(index)?;
        if slot.0 != serial || slot.1.is_none() {
            return None;
        }
        slot.0 = 0; // no serial is 0 until the counter wraps: matches no handle meanwhile
        self.free.push(index as u32);
        slot.1.take()
    }
}

/// A channel handle's producer side: the channel, and its producer slot once it published.
pub(crate) struct Publisher {
    ch: shmring::Channel,
    producer: RefCell<Option<shmring::Producer>>,
}

/// A subscription, read with `drain` (waiter-thread subscriptions) or `recv` (synchronous
/// ones).
pub(crate) struct Reader {
    pub(crate) sub: RefCell<shmring::Subscriber>,
}

thread_local! {
    static PUBLISHERS: RefCell<Table<Publisher>> = const { RefCell::new(Table::new()) };
    static READERS: RefCell<Table<Reader>> = const { RefCell::new(Table::new()) };
}

/// Registers a channel's producer side; returns its handle.
pub(crate) fn add_publisher(ch: shmring::Channel) -> Result<f64, Fail> {
    PUBLISHERS.with(|t| {
        t.borrow_mut().insert(Publisher {
            ch,
            producer: RefCell::new(None),
        })
    })
}

/// Registers a subscription; returns its handle.
pub(crate) fn add_reader(sub: shmring::Subscriber) -> Result<f64, Fail> {
    READERS.with(|t| {
        t.borrow_mut().insert(Reader {
            sub: RefCell::new(sub),
        })
    })
}

/// Releases a channel's producer slot (if it took one). Idempotent; a no-op once this
/// thread's tables are gone (process exit).
pub(crate) fn remove_publisher(handle: f64) {
    let gone = PUBLISHERS.try_with(|t| t.borrow_mut().remove(handle));
    drop(gone); // the producer (and its slot) are released here, outside the table borrow
}

/// Releases a subscription's participant slot. Idempotent, as `remove_publisher`.
pub(crate) fn remove_reader(handle: f64) {
    let gone = READERS.try_with(|t| t.borrow_mut().remove(handle));
    drop(gone);
}

/// The subscription `handle` names.
pub(crate) fn reader(handle: f64) -> Option<Rc<Reader>> {
    READERS.with(|t| t.borrow().get(handle))
}

fn publisher(handle: f64) -> Result<Rc<Publisher>, Fail> {
    PUBLISHERS
        .with(|t| t.borrow().get(handle))
        .ok_or_else(|| closed("channel"))
}

fn reader_or_closed(handle: f64) -> Result<Rc<Reader>, Fail> {
    reader(handle).ok_or_else(|| closed("subscription"))
}

impl Publisher {
    /// Runs `f` with the producer, taking a producer slot on first use.
    fn with<R>(
        &self,
        f: impl FnOnce(&mut shmring::Producer) -> shmring::Result<R>,
    ) -> Result<R, Fail> {
        let mut p = self
            .producer
            .try_borrow_mut()
            .map_err(|_| invalid("producer is busy".into()))?;
        if p.is_none() {
            *p = Some(self.ch.producer()?);
        }
        Ok(f(p.as_mut().expect("set above"))?)
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments and results.

/// `Ok` for `napi_ok`; else an `InvalidArgument` saying "`what` `problem`" (formatted only
/// then: this runs on every call).
fn status(s: sys::napi_status, what: &str, problem: &str) -> Result<(), Fail> {
    if s == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(invalid(format!("{what} {problem} (napi status {s})")))
    }
}

/// The arguments of one call. The `napi_value`s stay valid until the callback returns (the
/// callback's handle scope holds them), and so do the slices borrowed from them: every slice
/// is tied to `&self`, which lives inside the callback.
struct Call {
    env: sys::napi_env,
    args: [sys::napi_value; 4],
}

impl Call {
    /// # Safety
    /// `env` and `info` are those of the running callback.
    unsafe fn new(env: sys::napi_env, info: sys::napi_callback_info) -> Result<Call, Fail> {
        let mut argc = 4usize;
        let mut args = [ptr::null_mut(); 4];
        // SAFETY: `env`/`info` belong to this callback (caller's contract); `args` has room for
        // `argc` values; missing arguments are filled with `undefined`.
        let s = unsafe {
            sys::napi_get_cb_info(
                env,
                info,
                &mut argc,
                args.as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        status(s, "arguments", "cannot be read")?;
        Ok(Call { env, args })
    }

    fn number(&self, i: usize, what: &str) -> Result<f64, Fail> {
        let mut v = 0f64;
        // SAFETY: a live value of this callback; `v` is a valid out pointer.
        let s = unsafe { sys::napi_get_value_double(self.env, self.args[i], &mut v) };
        status(s, what, "must be a number")?;
        Ok(v)
    }

    /// A number argument, or `None` for `undefined`/`null`.
    fn optional_number(&self, i: usize, what: &str) -> Result<Option<f64>, Fail> {
        let mut t = 0;
        // SAFETY: a live value of this callback; `t` is a valid out pointer.
        let s = unsafe { sys::napi_typeof(self.env, self.args[i], &mut t) };
        status(s, what, "has no readable type")?;
        match t {
            sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(None),
            _ => self.number(i, what).map(Some),
        }
    }

    fn u32(&self, i: usize, what: &str) -> Result<u32, Fail> {
        let mut v = 0u32;
        // SAFETY: a live value of this callback; `v` is a valid out pointer.
        let s = unsafe { sys::napi_get_value_uint32(self.env, self.args[i], &mut v) };
        status(s, what, "must be a number")?;
        Ok(v)
    }

    /// The data of a `Buffer` (any `ArrayBufferView`) argument: start and length.
    fn buffer_raw(&self, i: usize, what: &str) -> Result<(*mut u8, usize), Fail> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: a live value of this callback; out pointers are valid. A non-Buffer is
        // refused with a status, not read.
        let s = unsafe { sys::napi_get_buffer_info(self.env, self.args[i], &mut data, &mut len) };
        status(s, what, "must be a Buffer")?;
        Ok((data.cast(), len))
    }

    /// Whether argument `i`, a typed array of length 0, views a detached ArrayBuffer (whose
    /// bytes are gone: not an empty message). Anything else is taken as not detached.
    fn detached(&self, i: usize) -> bool {
        let mut ab = ptr::null_mut();
        // SAFETY: a live value of this callback; the out pointers we do not want may be null,
        // and a value that is not a typed array is refused with a status.
        let s = unsafe {
            sys::napi_get_typedarray_info(
                self.env,
                self.args[i],
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                &mut ab,
                ptr::null_mut(),
            )
        };
        let mut detached = false;
        // SAFETY: `ab` is the array's live ArrayBuffer; `detached` a valid out pointer.
        s == sys::Status::napi_ok
            && !ab.is_null()
            && unsafe { sys::napi_is_detached_arraybuffer(self.env, ab, &mut detached) }
                == sys::Status::napi_ok
            && detached
    }

    /// A `Buffer` argument's bytes, read-only, for this call. A view of a detached buffer is
    /// refused (`InvalidArgument`): it would otherwise pass for an empty message.
    fn bytes(&self, i: usize, what: &str) -> Result<&[u8], Fail> {
        let (data, len) = self.buffer_raw(i, what)?;
        if len == 0 || data.is_null() {
            if len == 0 && self.detached(i) {
                return Err(invalid(format!(
                    "{what} is a view of a detached (transferred) ArrayBuffer: its bytes are gone"
                )));
            }
            return Ok(&[]);
        }
        // SAFETY: `data..data+len` is the Buffer's memory, which V8 keeps alive and in place
        // while the callback's handle scope holds the Buffer (until we return), and which no
        // JS can resize, detach or write while this callback runs (we call no JS). The slice
        // is tied to `&self` and so cannot outlive the call. Other arguments may view the same
        // memory only through shared slices (`bytes`) or copies (`u32s`). As with napi-rs's
        // `BufferSlice`, a SharedArrayBuffer written by another thread meanwhile is the
        // caller's race, as it is for Node's own Buffer methods.
        Ok(unsafe { std::slice::from_raw_parts(data, len) })
    }

    /// A `Buffer` argument's bytes, writable, for this call. Only one argument of a call is
    /// ever taken this way, and no other argument is read as a slice alongside it.
    fn bytes_mut(&mut self, i: usize, what: &str) -> Result<&mut [u8], Fail> {
        let (data, len) = self.buffer_raw(i, what)?;
        if len == 0 || data.is_null() {
            return Ok(&mut []);
        }
        // SAFETY: as in `bytes`; and this is the call's only slice (the `&mut self` borrow
        // keeps any other from being taken while it lives), so nothing in Rust aliases it.
        Ok(unsafe { std::slice::from_raw_parts_mut(data, len) })
    }

    /// A copy of a `Uint32Array` argument's elements. Copied, not borrowed: the array may be
    /// a view of a `SharedArrayBuffer` that another thread writes while we run, and a `&[u32]`
    /// over memory written meanwhile would be undefined behaviour (and a value checked once
    /// could differ when used). Each element is read once, with a relaxed atomic load.
    fn u32s(&self, i: usize, what: &str) -> Result<Vec<u32>, Fail> {
        let mut kind = 0;
        let mut len = 0usize;
        let mut data: *mut c_void = ptr::null_mut();
        let mut offset = 0usize;
        // SAFETY: a live value of this callback; out pointers are valid (the ArrayBuffer one
        // may be null: not wanted). A non-TypedArray is refused with a status.
        let s = unsafe {
            sys::napi_get_typedarray_info(
                self.env,
                self.args[i],
                &mut kind,
                &mut len,
                &mut data,
                ptr::null_mut(),
                &mut offset,
            )
        };
        status(s, what, "must be a Uint32Array")?;
        if kind != sys::TypedarrayType::uint32_array {
            return Err(invalid(format!("{what} must be a Uint32Array")));
        }
        if len == 0 || data.is_null() {
            return Ok(Vec::new());
        }
        let first = data.cast::<u32>();
        debug_assert!(first.is_aligned());
        Ok((0..len)
            .map(|k| {
                // SAFETY: `first` points at the array's first element (`len` of them): a
                // Uint32Array's offset is a multiple of 4 in a suitably aligned backing store,
                // so element `k < len` is an aligned u32, kept alive for the call as in `bytes`.
                // Another thread may write it (a SharedArrayBuffer), so it is read atomically;
                // JS writes to shared memory are themselves atomic at element size.
                let cell = unsafe { std::sync::atomic::AtomicU32::from_ptr(first.add(k)) };
                // Relaxed: one value of the element is all we need; nothing is published
                // through it.
                cell.load(std::sync::atomic::Ordering::Relaxed)
            })
            .collect())
    }

    /// What tells, later in the call, whether the calling thread is ending.
    fn ending_probe(&self) -> EndingProbe {
        EndingProbe {
            env: self.env,
            value: self.args[0],
        }
    }

    fn boolean(&self, v: bool) -> Result<sys::napi_value, Fail> {
        let mut out = ptr::null_mut();
        // SAFETY: the callback's env; `out` is a valid out pointer.
        let s = unsafe { sys::napi_get_boolean(self.env, v, &mut out) };
        status(s, "a boolean", "cannot be made")?;
        Ok(out)
    }

    fn number_value(&self, v: f64) -> Result<sys::napi_value, Fail> {
        let mut out = ptr::null_mut();
        // SAFETY: the callback's env; `out` is a valid out pointer.
        let s = unsafe { sys::napi_create_double(self.env, v, &mut out) };
        status(s, "a number", "cannot be made")?;
        Ok(out)
    }
}

/// Asks whether Node is ending the calling thread's environment, from inside a callback.
#[derive(Clone, Copy)]
struct EndingProbe {
    env: sys::napi_env,
    /// A live value of the callback (its first argument).
    value: sys::napi_value,
}

impl EndingProbe {
    /// Whether Node is ending this thread's environment (`worker.terminate()`, or
    /// `process.exit()`, which terminates every worker): Node then refuses to run JS on it,
    /// and every Node-API call that could (here `napi_strict_equals`) fails with
    /// `napi_pending_exception` or `napi_cannot_run_js` instead of `napi_ok`. A few tens of
    /// nanoseconds; it runs no JS and changes nothing.
    fn thread_is_ending(self) -> bool {
        let mut same = false;
        // SAFETY: used only inside the callback it came from (`Call::ending_probe`), so `env`
        // is the running callback's env and `value` is held by its handle scope; `same` is a
        // valid out pointer.
        let s = unsafe { sys::napi_strict_equals(self.env, self.value, self.value, &mut same) };
        s != sys::Status::napi_ok
    }
}

/// Runs a callback body: its error (or panic) becomes a thrown JS error with a `code`.
///
/// # Safety
/// `env` and `info` are those of the running callback.
unsafe fn run(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    body: impl FnOnce(Call) -> Result<sys::napi_value, Fail>,
) -> sys::napi_value {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: passed through from the callback (this function's contract).
        let call = unsafe { Call::new(env, info) }?;
        body(call)
    }))
    .unwrap_or_else(|_| {
        Err(Fail {
            code: "Io",
            message: "shmring: internal panic (a bug; please report it)".into(),
        })
    });
    match result {
        Ok(v) => v,
        Err(f) => {
            let code = CString::new(f.code).unwrap_or_default();
            let msg = CString::new(f.message.replace('\0', " ")).unwrap_or_default();
            // SAFETY: the callback's env; both strings are NUL-terminated and outlive the call.
            unsafe { sys::napi_throw_error(env, code.as_ptr(), msg.as_ptr()) };
            ptr::null_mut()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The callbacks.

/// `publish(handle, payload: Buffer): boolean` — one encoded message; false when the ring is
/// full (policy `block`).
unsafe extern "C" fn publish(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let p = publisher(c.number(0, "handle")?)?;
            let payload = c.bytes(1, "payload")?;
            let ok = p.with(|p| p.try_publish(payload))?;
            c.boolean(ok)
        })
    }
}

/// `publishMany(handle, buf: Buffer, ends: Uint32Array): number` — messages packed back to
/// back in `buf`, message `i` ending at `ends[i]`; returns how many went in before the ring
/// filled.
unsafe extern "C" fn publish_many(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node-API as this function's callback, with its own env and info.
    unsafe {
        run(env, info, |c| {
            let p = publisher(c.number(0, "handle")?)?;
            let buf = c.bytes(1, "buf")?;
            // A copy: validated and used as the same values.
            let ends = c.u32s(2, "ends")?;
            let mut start = 0usize;
            // Checked before anything is published: a bad `ends` publishes nothing.
            for &end in &ends {
                let end = end as usize;
                if end < start || end > buf.len() {
                    return Err(invalid(format!(
                        "frame end {end} is outside {start}..={}",
                        buf.len()
                    )));
                }
                start = end;
            }
            let frames = ends.iter().scan(0usize, |at, &end| {
                let frame = &buf[*at..end as usize];
                *at = end as usize;
                Some(frame)
            });
            let n = p.with(|p| p.try_publish_many(frames))?;
            c.number_value(n as f64)
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
            let mut sub = r
                .sub
                .try_borrow_mut()
                .map_err(|_| invalid("subscription is busy".into()))?;
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
/// calling thread may still run JS ([`Call::thread_is_ending`]). Once its worker is being
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
            let mut sub = r
                .sub
                .try_borrow_mut()
                .map_err(|_| invalid("subscription is busy".into()))?;
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

/// The longest `recv` waits before it looks whether its thread is ending.
const RECV_SLICE: Duration = Duration::from_millis(50);

/// What `recv` throws when its thread is ending (Node will not run it, but it ends the call).
fn ending() -> Fail {
    Fail {
        code: shmring::ErrorCode::Closed.as_str(),
        message: "receiveSync ended: its thread is ending (worker terminated or process exiting)"
            .into(),
    }
}

/// Puts the callbacks on the module's exports.
#[napi_derive::napi(module_exports)]
pub fn register_fast_path(exports: Object, env: Env) -> napi::Result<()> {
    type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
    let fns: [(&std::ffi::CStr, Callback); 4] = [
        (c"publish", publish),
        (c"publishMany", publish_many),
        (c"drain", drain),
        (c"recv", recv),
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
