//! The binding's errors: [`Fail`] (a stable shmring code, a message, and for a batch publish
//! how many of its messages went in), what the `#[napi]` methods return it as, and how a
//! fast-path callback throws it ([`Fail::throw`]).

use std::ffi::CString;
use std::ptr;

use napi::sys;

/// The status of our errors: the stable shmring code (`NotFound`, `RingFull`, ...), which
/// napi puts on the JS error as `code`.
pub(crate) type Code = &'static str;

/// An error to throw: the stable shmring code (becomes the JS error's `code`), a message, and
/// (an error of a batch publish) how many of the batch's messages went in before it (becomes
/// the JS error's `published`).
pub(crate) struct Fail {
    code: Code,
    message: String,
    published: Option<usize>,
}

impl From<shmring::Error> for Fail {
    fn from(e: shmring::Error) -> Self {
        Fail {
            code: e.code().as_str(),
            message: e.message().to_owned(),
            published: e.published(),
        }
    }
}

/// For the `#[napi]` methods, whose errors carry a code and a message only (none of them
/// publishes a batch).
impl From<Fail> for napi::Error<Code> {
    fn from(f: Fail) -> Self {
        napi::Error::new(f.code, f.message)
    }
}

/// A `shmring::Error` as the `#[napi]` methods' error.
pub(crate) fn js_err(e: shmring::Error) -> napi::Error<Code> {
    Fail::from(e).into()
}

/// `InvalidArgument` with `message`.
pub(crate) fn invalid(message: String) -> Fail {
    Fail::new(shmring::ErrorCode::InvalidArgument, message)
}

/// `Closed`: "`what` is closed".
pub(crate) fn closed(what: &str) -> Fail {
    Fail::new(shmring::ErrorCode::Closed, format!("{what} is closed"))
}

impl Fail {
    /// An error of `code` with `message`.
    pub(crate) fn new(code: shmring::ErrorCode, message: String) -> Fail {
        Fail {
            code: code.as_str(),
            message,
            published: None,
        }
    }

    /// What a panic in a callback throws.
    pub(crate) fn panicked() -> Fail {
        Fail {
            code: "Io",
            message: "shmring: internal panic (a bug; please report it)".into(),
            published: None,
        }
    }

    /// Throws this error in `env`: a JS `Error` with the message, its `code`, and
    /// `published` (a number) when the error says how many messages of a batch went in.
    /// Made with `napi_create_error` and thrown with `napi_throw`; should any of those calls
    /// fail, the error goes with `napi_throw_error` (code and message only).
    ///
    /// # Safety
    /// `env` is the running callback's.
    pub(crate) unsafe fn throw(self, env: sys::napi_env) {
        let code = CString::new(self.code).unwrap_or_default();
        let msg = CString::new(self.message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the callback's env (this function's contract); both strings are
        // NUL-terminated and outlive the calls.
        if unsafe { throw_with_count(env, &code, &msg, self.published) }.is_err() {
            // SAFETY: as above.
            unsafe { sys::napi_throw_error(env, code.as_ptr(), msg.as_ptr()) };
        }
    }
}

/// The body of [`Fail::throw`]: `Err` if a Node-API call failed before `napi_throw` did.
///
/// # Safety
/// As [`Fail::throw`].
unsafe fn throw_with_count(
    env: sys::napi_env,
    code: &CString,
    msg: &CString,
    published: Option<usize>,
) -> Result<(), sys::napi_status> {
    let ok = |s: sys::napi_status| {
        if s == sys::Status::napi_ok {
            Ok(())
        } else {
            Err(s)
        }
    };
    let (mut code_v, mut msg_v, mut err) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: (every call below) the callback's env (the caller's contract); the strings are
    // NUL-terminated (length -1: up to the NUL) and live for the calls; the out pointers are
    // valid; the values passed in were made by the calls before, in this callback's scope.
    unsafe {
        ok(sys::napi_create_string_utf8(
            env,
            code.as_ptr(),
            -1,
            &mut code_v,
        ))?;
        ok(sys::napi_create_string_utf8(
            env,
            msg.as_ptr(),
            -1,
            &mut msg_v,
        ))?;
        // Sets `code` on the error, as `napi_throw_error` does.
        ok(sys::napi_create_error(env, code_v, msg_v, &mut err))?;
        if let Some(n) = published {
            let mut n_v = ptr::null_mut();
            ok(sys::napi_create_double(env, n as f64, &mut n_v))?;
            ok(sys::napi_set_named_property(
                env,
                err,
                c"published".as_ptr(),
                n_v,
            ))?;
        }
        ok(sys::napi_throw(env, err))
    }
}
