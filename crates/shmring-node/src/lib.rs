//! Node.js binding of `shmring`: converts types and errors, and runs each subscription's
//! waiter thread. No ring logic lives here (see `crates/shmring`).
//!
//! A subscription's waiter thread sleeps on the channel's futex doorbell. When data is there
//! and JS is *armed*, it disarms and rings JS once through a thread-safe function; JS drains
//! the ring in batches (`drain`) and re-arms (`rearm`) when it finds it empty. So the event
//! loop never blocks or spins, and a burst of any size costs one cross-thread wake-up.
//!
//! Closing a subscription never waits for its thread either: it releases the participant
//! slot at once (the `Subscriber` lives in [`handles`]'s table, on the JS thread), signals the
//! thread (a stop flag and one futex interrupt, which `Waiter::wait_unless` cannot miss),
//! and lets it go. The thread, detached, ends within microseconds, dropping the last things
//! it holds: its `Waiter` (so the mapping and fd go once the channel is closed too) and the
//! thread-safe function (so the event loop may end).
//!
//! The per-message calls (`publish`, `publishMany`, `drain`, `recv`) are plain Node-API
//! functions in [`fast`], which name a channel's producer side or a subscription by the
//! handle its class hands out (`handle()`); see there for why.
//!
//! The rooms: [`channel`] and [`subscription`] (the `#[napi]` classes), [`convert`] (the plain
//! objects in and out), [`error`] (codes, messages, and how errors are thrown), [`handles`]
//! (the per-thread tables the handles index), [`fast`] (the hand-registered callbacks) and
//! [`callback`] (their arguments, results and `run`), [`timeout`] (JS timeouts as waits).
#![deny(clippy::undocumented_unsafe_blocks)]

mod callback;
mod channel;
mod convert;
mod error;
// napi-rs registers the callbacks only outside `cfg(test)`, so a test build sees them unused
// (and, through this allow, what only they use as used).
#[cfg_attr(test, allow(dead_code))]
mod fast;
mod handles;
mod subscription;
mod timeout;

use napi::Result;
use napi_derive::napi;

use crate::convert::{NativeListing, NativeSummary};
use crate::error::{Code, js_err};

/// `dir` as the engine takes it, or the default directory.
fn in_dir(dir: Option<String>) -> std::path::PathBuf {
    dir.map_or_else(shmring::default_dir, std::path::PathBuf::from)
}

/// Removes the channel `name` in `dir` (processes attached keep their mapping).
#[napi]
pub fn unlink(name: String, dir: Option<String>) -> Result<(), Code> {
    shmring::unlink_in(&in_dir(dir), &name).map_err(js_err)
}

/// Every `shmring.*` segment in `dir` (default `$SHMRING_DIR` or `/dev/shm`), sorted by name.
#[napi]
pub fn list(dir: Option<String>) -> Result<Vec<NativeListing>, Code> {
    Ok(shmring::list_in(&in_dir(dir))
        .map_err(js_err)?
        .into_iter()
        .map(NativeListing::from)
        .collect())
}

/// Attaches to `name` (never creating it, taking no slot) and summarizes it.
#[napi]
pub fn inspect(name: String, dir: Option<String>) -> Result<NativeSummary, Code> {
    Ok(shmring::inspect_in(&in_dir(dir), &name)
        .map_err(js_err)?
        .into())
}

/// Removes `name` if its creator and every participant are dead; returns whether it did.
#[napi]
pub fn unlink_if_stale(name: String, dir: Option<String>) -> Result<bool, Code> {
    shmring::unlink_if_stale_in(&in_dir(dir), &name).map_err(js_err)
}

/// Largest channel name.
#[napi]
pub const MAX_NAME_LEN: u32 = shmring::MAX_NAME_LEN as u32;
