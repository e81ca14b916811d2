//! Timeouts from JS: one checked conversion for every call that waits.

use std::time::{Duration, Instant};

use crate::error::{Fail, invalid};

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
