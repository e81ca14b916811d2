//! What every fast-path callback is made of: its arguments read straight from Node-API
//! ([`Call`]: numbers, `Buffer` bytes borrowed for the call, a copied `Uint32Array`), the
//! values it returns, the probe that tells whether its thread is ending ([`EndingProbe`]),
//! and [`run`], which turns the body's error (or panic) into a thrown JS error.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use napi::sys;

use crate::error::{Fail, invalid};

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
pub(crate) struct Call {
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

    pub(crate) fn number(&self, i: usize, what: &str) -> Result<f64, Fail> {
        let mut v = 0f64;
        // SAFETY: a live value of this callback; `v` is a valid out pointer.
        let s = unsafe { sys::napi_get_value_double(self.env, self.args[i], &mut v) };
        status(s, what, "must be a number")?;
        Ok(v)
    }

    /// A number argument, or `None` for `undefined`/`null`.
    pub(crate) fn optional_number(&self, i: usize, what: &str) -> Result<Option<f64>, Fail> {
        let mut t = 0;
        // SAFETY: a live value of this callback; `t` is a valid out pointer.
        let s = unsafe { sys::napi_typeof(self.env, self.args[i], &mut t) };
        status(s, what, "has no readable type")?;
        match t {
            sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(None),
            _ => self.number(i, what).map(Some),
        }
    }

    /// A whole number from 0 to 2^32 - 1 (an offset into a buffer): anything else, which
    /// `napi_get_value_uint32` would wrap or truncate (2^32 + 5 to 5, 5.9 to 5, NaN to 0),
    /// is an `InvalidArgument`.
    pub(crate) fn index(&self, i: usize, what: &str) -> Result<usize, Fail> {
        let v = self.number(i, what)?;
        // Whole and in range: converting back gives it again (`as` saturates, NaN gives 0).
        let n = v as u32;
        if f64::from(n) != v {
            return Err(invalid(format!(
                "{what} must be a whole number from 0 to {}, not {v}",
                u32::MAX
            )));
        }
        Ok(n as usize)
    }

    pub(crate) fn u32(&self, i: usize, what: &str) -> Result<u32, Fail> {
        let mut v = 0u32;
        // SAFETY: a live value of this callback; `v` is a valid out pointer.
        let s = unsafe { sys::napi_get_value_uint32(self.env, self.args[i], &mut v) };
        status(s, what, "must be a number")?;
        Ok(v)
    }

    /// The bytes of an `ArrayBuffer` argument (not a view, not a `SharedArrayBuffer`), read-only,
    /// for this call: one `napi_get_arraybuffer_info`, where a `Buffer`'s info costs several
    /// V8 calls (its view's buffer, offset and length). A detached one is refused
    /// (`InvalidArgument`), as in [`Call::bytes`].
    pub(crate) fn array_buffer(&self, i: usize, what: &str) -> Result<&[u8], Fail> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: a live value of this callback; out pointers are valid. A value that is not
        // an ArrayBuffer is refused with a status, not read.
        let s =
            unsafe { sys::napi_get_arraybuffer_info(self.env, self.args[i], &mut data, &mut len) };
        status(s, what, "must be an ArrayBuffer")?;
        if len == 0 || data.is_null() {
            let mut detached = false;
            // SAFETY: a live ArrayBuffer of this callback; `detached` a valid out pointer.
            let s =
                unsafe { sys::napi_is_detached_arraybuffer(self.env, self.args[i], &mut detached) };
            if s == sys::Status::napi_ok && detached {
                return Err(invalid(format!(
                    "{what} is a detached (transferred) ArrayBuffer: its bytes are gone"
                )));
            }
            return Ok(&[]);
        }
        // SAFETY: as in `bytes`: the ArrayBuffer's memory stays alive and in place while the
        // callback's handle scope holds it and no JS runs (none can detach or resize it
        // meanwhile); the slice is tied to `&self`.
        Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
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
    pub(crate) fn bytes(&self, i: usize, what: &str) -> Result<&[u8], Fail> {
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
    pub(crate) fn bytes_mut(&mut self, i: usize, what: &str) -> Result<&mut [u8], Fail> {
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
    pub(crate) fn u32s(&self, i: usize, what: &str) -> Result<Vec<u32>, Fail> {
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
    pub(crate) fn ending_probe(&self) -> EndingProbe {
        EndingProbe {
            env: self.env,
            value: self.args[0],
        }
    }

    pub(crate) fn boolean(&self, v: bool) -> Result<sys::napi_value, Fail> {
        let mut out = ptr::null_mut();
        // SAFETY: the callback's env; `out` is a valid out pointer.
        let s = unsafe { sys::napi_get_boolean(self.env, v, &mut out) };
        status(s, "a boolean", "cannot be made")?;
        Ok(out)
    }

    pub(crate) fn undefined_value(&self) -> Result<sys::napi_value, Fail> {
        let mut out = ptr::null_mut();
        // SAFETY: the callback's env; `out` is a valid out pointer.
        let s = unsafe { sys::napi_get_undefined(self.env, &mut out) };
        status(s, "undefined", "cannot be had")?;
        Ok(out)
    }

    /// A new `Buffer` holding a copy of `bytes`.
    pub(crate) fn buffer_value(&self, bytes: &[u8]) -> Result<sys::napi_value, Fail> {
        let mut out = ptr::null_mut();
        // SAFETY: the callback's env; `bytes` is valid for its length (copied by the call, not
        // kept); the data out pointer may be null (not wanted); `out` is a valid out pointer.
        let s = unsafe {
            sys::napi_create_buffer_copy(
                self.env,
                bytes.len(),
                bytes.as_ptr().cast(),
                ptr::null_mut(),
                &mut out,
            )
        };
        status(s, "a Buffer", "cannot be made")?;
        Ok(out)
    }

    pub(crate) fn number_value(&self, v: f64) -> Result<sys::napi_value, Fail> {
        let mut out = ptr::null_mut();
        // SAFETY: the callback's env; `out` is a valid out pointer.
        let s = unsafe { sys::napi_create_double(self.env, v, &mut out) };
        status(s, "a number", "cannot be made")?;
        Ok(out)
    }
}

/// Asks whether Node is ending the calling thread's environment, from inside a callback.
#[derive(Clone, Copy)]
pub(crate) struct EndingProbe {
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
    pub(crate) fn thread_is_ending(self) -> bool {
        let mut same = false;
        // SAFETY: used only inside the callback it came from (`Call::ending_probe`), so `env`
        // is the running callback's env and `value` is held by its handle scope; `same` is a
        // valid out pointer.
        let s = unsafe { sys::napi_strict_equals(self.env, self.value, self.value, &mut same) };
        s != sys::Status::napi_ok
    }
}

/// Runs a callback body: its error (or panic) becomes a thrown JS error with a `code` (and,
/// from a batch publish, `published`: see [`Fail::throw`]).
///
/// # Safety
/// `env` and `info` are those of the running callback.
pub(crate) unsafe fn run(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    body: impl FnOnce(Call) -> Result<sys::napi_value, Fail>,
) -> sys::napi_value {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: passed through from the callback (this function's contract).
        let call = unsafe { Call::new(env, info) }?;
        body(call)
    }))
    .unwrap_or_else(|_| Err(Fail::panicked()));
    match result {
        Ok(v) => v,
        Err(f) => {
            // SAFETY: the running callback's env (this function's contract).
            unsafe { f.throw(env) };
            ptr::null_mut()
        }
    }
}
