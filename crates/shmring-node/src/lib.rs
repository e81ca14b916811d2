//! Node.js binding of `shmring`: converts types and errors, and runs each subscription's
//! waiter thread. No ring logic lives here (see `crates/shmring`).
//!
//! A subscription's waiter thread sleeps on the channel's futex doorbell. When data is there
//! and JS is *armed*, it disarms and rings JS once through a thread-safe function; JS drains
//! the ring in batches (`drain`) and re-arms (`rearm`) when it finds it empty. So the event
//! loop never blocks or spins, and a burst of any size costs one cross-thread wake-up.
//!
//! Closing a subscription never waits for its thread either: it releases the participant
//! slot at once (the `Subscriber` lives in [`fast`]'s table, on the JS thread), signals the
//! thread (a stop flag and one futex interrupt, which `Waiter::wait_unless` cannot miss),
//! and lets it go. The thread, detached, ends within microseconds, dropping the last things
//! it holds: its `Waiter` (so the mapping and fd go once the channel is closed too) and the
//! thread-safe function (so the event loop may end).
//!
//! The per-message calls (`publish`, `publishMany`, `drain`, `recv`) are plain Node-API
//! functions in [`fast`], which name a channel's producer side or a subscription by the
//! handle its class here hands out (`handle()`); see there for why.
#![deny(clippy::undocumented_unsafe_blocks)]

// napi-rs registers the callbacks only outside `cfg(test)`, so a test build sees them unused.
#[cfg_attr(test, allow(dead_code))]
mod fast;

use std::cell::{Ref, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// The status of our errors: the stable shmring code (`NotFound`, `RingFull`, ...), which
/// napi puts on the JS error as `code`.
type Code = &'static str;

fn js_err(e: shmring::Error) -> napi::Error<&'static str> {
    napi::Error::new(e.code().as_str(), e.message().to_owned())
}

fn closed(what: &str) -> napi::Error<&'static str> {
    napi::Error::new(
        shmring::ErrorCode::Closed.as_str(),
        format!("{what} is closed"),
    )
}

fn invalid(msg: String) -> napi::Error<&'static str> {
    napi::Error::new(shmring::ErrorCode::InvalidArgument.as_str(), msg)
}

fn from_fast(f: fast::Fail) -> napi::Error<&'static str> {
    let (code, message) = f.into_parts();
    napi::Error::new(code, message)
}

/// A subscription's wait strategy from its TypeScript name (`adaptive` when absent).
fn parse_wait(wait: Option<&str>) -> Result<shmring::WaitStrategy, Code> {
    wait.map_or(Ok(shmring::WaitStrategy::default()), |w| {
        shmring::WaitStrategy::parse(w).map_err(js_err)
    })
}

/// Options of `open` as they come from TypeScript (validated again in Rust).
#[napi(object)]
pub struct NativeOpenOptions {
    pub create: Option<bool>,
    pub exclusive: Option<bool>,
    pub kind: Option<String>,
    pub sync: Option<String>,
    pub policy: Option<String>,
    pub capacity: Option<f64>,
    pub max_message_size: Option<f64>,
    pub max_participants: Option<f64>,
    pub mode: Option<u32>,
    pub recover: Option<bool>,
    pub allow_foreign_owner: Option<bool>,
    /// The directory of the segment file (absolute; default `$SHMRING_DIR` or `/dev/shm`).
    pub dir: Option<String>,
    /// `"os"`, `"publish"` or an interval in whole milliseconds (`"10"`).
    pub flush: Option<String>,
}

fn whole(name: &str, v: Option<f64>, max: f64) -> Result<Option<f64>, Code> {
    match v {
        Some(x) if !(x.fract() == 0.0 && (1.0..=max).contains(&x)) => Err(invalid(format!(
            "{name} {x} must be a whole number from 1 to {max}"
        ))),
        other => Ok(other),
    }
}

impl NativeOpenOptions {
    #[allow(clippy::needless_update)] // while TypeScript passes every engine option
    fn to_rust(&self) -> Result<shmring::OpenOptions, Code> {
        let capacity = whole("capacity", self.capacity, 2f64.powi(53))?;
        let max_msg = whole("maxMessageSize", self.max_message_size, u32::MAX as f64)?;
        let max_part = whole("maxParticipants", self.max_participants, u32::MAX as f64)?;
        Ok(shmring::OpenOptions {
            create: self.create.unwrap_or(false),
            exclusive: self.exclusive.unwrap_or(false),
            kind: self
                .kind
                .as_deref()
                .map(shmring::Kind::parse)
                .transpose()
                .map_err(js_err)?,
            sync: self
                .sync
                .as_deref()
                .map(shmring::SyncMode::parse)
                .transpose()
                .map_err(js_err)?,
            policy: self
                .policy
                .as_deref()
                .map(shmring::Policy::parse)
                .transpose()
                .map_err(js_err)?,
            capacity: capacity.map(|c| c as u64),
            max_message_size: max_msg.map(|m| m as u32),
            max_participants: max_part.map(|p| p as u32),
            mode: self.mode.unwrap_or(shmring::DEFAULT_MODE),
            recover: self.recover.unwrap_or(false),
            allow_foreign_owner: self.allow_foreign_owner.unwrap_or(false),
            dir: self.dir.as_ref().map(std::path::PathBuf::from),
            flush: self
                .flush
                .as_deref()
                .map(shmring::Flush::parse)
                .transpose()
                .map_err(js_err)?
                .unwrap_or_default(),
            // Options the engine has that TypeScript does not pass (yet) keep their defaults.
            ..shmring::OpenOptions::default()
        })
    }
}

/// The settings of an open channel.
#[napi(object)]
pub struct NativeChannelInfo {
    pub name: String,
    pub kind: String,
    pub sync: String,
    pub policy: String,
    pub capacity: f64,
    pub max_message_size: u32,
    pub max_participants: u32,
    pub mode: u32,
    pub created: bool,
    pub creator_pid: u32,
    pub created_at_ms: f64,
    /// The directory of the channel's file.
    pub dir: String,
}

/// One occupied participant slot.
#[napi(object)]
pub struct NativeParticipant {
    pub slot: u32,
    pub role: String,
    pub pid: u32,
    pub alive: bool,
    pub cursor: f64,
    pub messages: f64,
    pub lost: f64,
    pub heartbeat_ms: f64,
}

impl From<shmring::ParticipantInfo> for NativeParticipant {
    fn from(p: shmring::ParticipantInfo) -> Self {
        NativeParticipant {
            slot: p.slot,
            role: match p.role {
                Some(shmring::Role::Producer) => "producer",
                Some(shmring::Role::Subscriber) => "subscriber",
                Some(shmring::Role::Consumer) => "consumer",
                None => "joining",
            }
            .to_owned(),
            pid: p.pid,
            alive: p.alive,
            cursor: p.cursor as f64,
            messages: p.messages as f64,
            lost: p.lost as f64,
            heartbeat_ms: (p.heartbeat_ns / 1_000_000) as f64,
        }
    }
}

/// A channel's state as `shmring ls` / `stat` show it.
#[napi(object)]
pub struct NativeSummary {
    pub name: String,
    pub kind: String,
    pub sync: String,
    pub policy: String,
    pub capacity: f64,
    pub max_message_size: u32,
    pub max_participants: u32,
    pub mode: u32,
    pub creator_pid: u32,
    pub creator_alive: bool,
    pub created_at_ms: f64,
    pub tail: f64,
    pub bytes_used: f64,
    pub stale: bool,
    pub participants: Vec<NativeParticipant>,
}

impl From<shmring::Summary> for NativeSummary {
    fn from(s: shmring::Summary) -> Self {
        let d = s.descriptor;
        NativeSummary {
            name: s.name,
            kind: d.kind.as_str().to_owned(),
            sync: d.sync.as_str().to_owned(),
            policy: d.policy.as_str().to_owned(),
            capacity: d.geometry.capacity as f64,
            max_message_size: d.geometry.max_message_size,
            max_participants: d.geometry.max_participants,
            mode: d.mode,
            creator_pid: d.creator_pid,
            creator_alive: s.creator_alive,
            created_at_ms: (d.created_at_ns / 1_000_000) as f64,
            tail: s.tail as f64,
            bytes_used: s.bytes_used as f64,
            stale: s.stale,
            participants: s.participants.into_iter().map(Into::into).collect(),
        }
    }
}

/// One `shmring.*` segment in `/dev/shm`: its summary, or the code and message of the error
/// reading it gave.
#[napi(object)]
pub struct NativeListing {
    pub name: String,
    pub summary: Option<NativeSummary>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// An open channel handle.
///
/// Every method takes `&self` (state behind `RefCell`s): napi-rs keeps a shared borrow of
/// the object while a `waitForSpace` promise is pending, and a `&mut self` method (`close`)
/// would then fail with a borrow error. JS calls never re-enter, so the `RefCell` borrows
/// never overlap.
///
/// Its producer side (taken on the first publish) lives in [`fast`]'s table under `handle`,
/// where `publish` and `publishMany` find it.
#[napi]
pub struct NativeChannel {
    ch: RefCell<Option<shmring::Channel>>,
    handle: f64,
}

impl NativeChannel {
    fn ch(&self) -> Result<Ref<'_, shmring::Channel>, Code> {
        Ref::filter_map(self.ch.borrow(), Option::as_ref).map_err(|_| closed("channel"))
    }
}

impl Drop for NativeChannel {
    fn drop(&mut self) {
        fast::remove_publisher(self.handle);
    }
}

#[napi]
impl NativeChannel {
    /// Creates or attaches the channel `name`.
    #[napi(factory)]
    pub fn open(name: String, options: Option<NativeOpenOptions>) -> Result<NativeChannel, Code> {
        let opts = match options {
            Some(o) => o.to_rust()?,
            None => shmring::OpenOptions::default(),
        };
        let ch = shmring::Channel::open(&name, &opts).map_err(js_err)?;
        let handle = fast::add_publisher(ch.clone()).map_err(from_fast)?;
        Ok(NativeChannel {
            ch: RefCell::new(Some(ch)),
            handle,
        })
    }

    /// The handle naming this channel's producer side in `publish` and `publishMany`.
    #[napi]
    pub fn handle(&self) -> f64 {
        self.handle
    }

    /// The channel's settings.
    #[napi]
    pub fn info(&self) -> Result<NativeChannelInfo, Code> {
        let ch = self.ch()?;
        let d = ch.descriptor();
        Ok(NativeChannelInfo {
            name: ch.name().to_owned(),
            kind: d.kind.as_str().to_owned(),
            sync: d.sync.as_str().to_owned(),
            policy: d.policy.as_str().to_owned(),
            capacity: d.geometry.capacity as f64,
            max_message_size: d.geometry.max_message_size,
            max_participants: d.geometry.max_participants,
            mode: d.mode,
            created: ch.created(),
            creator_pid: d.creator_pid,
            created_at_ms: (d.created_at_ns / 1_000_000) as f64,
            dir: ch.dir().display().to_string(),
        })
    }

    /// Resolves `true` once a message of `len` bytes would fit, `false` at the timeout.
    /// Waits on a libuv worker thread, never on the event loop.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait_for_space(
        &self,
        len: u32,
        timeout_ms: Option<f64>,
    ) -> Result<AsyncTask<WaitForSpace>, Code> {
        // Checked here, on the JS thread: `compute` runs on a libuv thread, where a panic
        // would abort the process.
        let timeout = fast::timeout_of("timeoutMs", timeout_ms).map_err(from_fast)?;
        Ok(AsyncTask::new(WaitForSpace {
            ch: self.ch()?.clone(),
            len: len as usize,
            timeout,
        }))
    }

    /// Starts a subscription. `on_ready` is called (with no arguments) whenever data arrives
    /// while the subscription is armed. `wait` (`adaptive`, `spin` or `block`; default
    /// `adaptive`) is how its waiter thread waits for data.
    #[napi(ts_args_type = "onReady: () => void, wait?: string | undefined | null")]
    pub fn subscribe(
        &self,
        on_ready: ThreadsafeFunction<(), Unknown<'static>, (), Status, false>,
        wait: Option<String>,
    ) -> Result<NativeSubscription, Code> {
        let strategy = parse_wait(wait.as_deref())?;
        let mut sub = self.ch()?.subscribe().map_err(js_err)?;
        sub.set_wait_strategy(strategy);
        NativeSubscription::start(sub, on_ready)
    }

    /// The occupied participant slots.
    #[napi]
    pub fn participants(&self) -> Result<Vec<NativeParticipant>, Code> {
        Ok(self
            .ch()?
            .participants()
            .into_iter()
            .map(NativeParticipant::from)
            .collect())
    }

    /// The channel's settings, tail, bytes used, participants and staleness.
    #[napi]
    pub fn summary(&self) -> Result<NativeSummary, Code> {
        let ch = self.ch()?;
        Ok(shmring::summarize(&ch).into())
    }

    /// A subscription without a waiter thread, read with the blocking `recv` (for worker
    /// threads). It takes a participant slot like any subscriber. `wait` as in `subscribe`.
    #[napi]
    pub fn subscribe_sync(&self, wait: Option<String>) -> Result<NativeSyncSubscription, Code> {
        let strategy = parse_wait(wait.as_deref())?;
        let mut sub = self.ch()?.subscribe().map_err(js_err)?;
        sub.set_wait_strategy(strategy);
        Ok(NativeSyncSubscription {
            handle: fast::add_reader(sub).map_err(from_fast)?,
        })
    }

    /// Releases the producer slot and the mapping (once every subscription is closed too).
    #[napi]
    pub fn close(&self) {
        fast::remove_publisher(self.handle);
        self.ch.borrow_mut().take();
    }
}

/// Waits for room off the event loop.
pub struct WaitForSpace {
    ch: shmring::Channel,
    len: usize,
    timeout: Option<Duration>,
}

impl Task for WaitForSpace {
    type Output = bool;
    type JsValue = bool;

    fn compute(&mut self) -> Result<bool> {
        Ok(self.ch.wait_for_space(self.len, self.timeout))
    }

    fn resolve(&mut self, _env: Env, output: bool) -> Result<bool> {
        Ok(output)
    }
}

/// State shared between a subscription and its waiter thread.
struct Doorbell {
    /// True while JS wants to be told about new data.
    armed: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

/// A live subscription: its cursor (in [`fast`]'s table under `handle`, read by `drain`),
/// and the thread that wakes JS (detached: nothing waits for it to end).
#[napi]
pub struct NativeSubscription {
    handle: f64,
    bell: Arc<Doorbell>,
    /// What `stop` interrupts the thread's sleep with; `None` once stopped, so a closed
    /// subscription holds no reference to the mapping while it waits for the collector.
    waiter: Option<shmring::Waiter>,
}

impl NativeSubscription {
    fn start(
        sub: shmring::Subscriber,
        on_ready: ThreadsafeFunction<(), Unknown<'static>, (), Status, false>,
    ) -> Result<NativeSubscription, Code> {
        let bell = Arc::new(Doorbell {
            armed: Mutex::new(true),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let waiter = sub.waiter();
        {
            let bell = bell.clone();
            let waiter = waiter.clone();
            // Detached (the JoinHandle is dropped): `stop` signals the thread and never joins.
            std::thread::Builder::new()
                .name("shmring-waiter".into())
                .spawn(move || waiter_loop(&bell, waiter, on_ready))
                .map_err(|e| napi::Error::new("Io", format!("cannot start waiter thread: {e}")))?;
        }
        let handle = match fast::add_reader(sub) {
            Ok(h) => h,
            Err(f) => {
                let mut stopping = NativeSubscription {
                    handle: -1.0,
                    bell,
                    waiter: Some(waiter),
                };
                stopping.stop();
                return Err(from_fast(f));
            }
        };
        Ok(NativeSubscription {
            handle,
            bell,
            waiter: Some(waiter),
        })
    }

    /// Releases the participant slot and tells the thread to end; returns without waiting
    /// for it (a flag, a condvar notify, one futex wake: microseconds). Idempotent.
    fn stop(&mut self) {
        let Some(waiter) = self.waiter.take() else {
            return;
        };
        // SeqCst: the thread reads it with SeqCst, after the doorbell read that the interrupt
        // below bumps (see `Waiter::wait_unless`), so it cannot sleep past it.
        self.bell.stop.store(true, Ordering::SeqCst);
        {
            // Under the lock, so a thread between its `stopped()` check and its condvar wait
            // cannot miss the notify.
            let _g = self.bell.armed.lock().unwrap_or_else(|p| p.into_inner());
            self.bell.cv.notify_all();
        }
        waiter.interrupt();
        drop(waiter);
        // The slot is free now, on this thread; the waiter thread only reads the mapping
        // (its own `Waiter` keeps it alive) until it sees `stop`.
        fast::remove_reader(self.handle);
    }
}

/// Body of the waiter thread. Holding `on_ready` keeps the process alive while subscribed;
/// it is released when the thread ends, so a closed subscription lets the process exit.
/// `waiter` (owned: it goes when the thread ends) keeps the mapping alive meanwhile.
///
/// `waiter` waits with the subscription's strategy, and `wait_unless` ends the wait as soon
/// as `stop` is set: a spin checks it as it polls, and a futex sleep cannot miss the
/// `interrupt` that `stop()` sends after setting it. The slice is only a backstop.
fn waiter_loop(
    bell: &Doorbell,
    waiter: shmring::Waiter,
    on_ready: ThreadsafeFunction<(), Unknown<'static>, (), Status, false>,
) {
    let slice = Duration::from_secs(1);
    // SeqCst: pairs with the store in `stop` (see there).
    let stopped = || bell.stop.load(Ordering::SeqCst);
    loop {
        {
            let mut armed = bell.armed.lock().unwrap_or_else(|p| p.into_inner());
            while !*armed && !stopped() {
                armed = bell.cv.wait(armed).unwrap_or_else(|p| p.into_inner());
            }
        }
        // Wait until data is there or the subscription stops.
        while !stopped() && !waiter.wait_unless(Some(slice), stopped) {}
        if stopped() {
            return;
        }
        *bell.armed.lock().unwrap_or_else(|p| p.into_inner()) = false;
        if on_ready.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Closing {
            return;
        }
    }
}

#[napi]
impl NativeSubscription {
    /// The handle naming this subscription in `drain`.
    #[napi]
    pub fn handle(&self) -> f64 {
        self.handle
    }

    /// Tells the waiter thread to call `onReady` again when data arrives (or at once if some
    /// is already there).
    #[napi]
    pub fn rearm(&self) {
        *self.bell.armed.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.bell.cv.notify_all();
    }

    /// Messages received by this subscription.
    #[napi]
    pub fn received(&self) -> f64 {
        counter(self.handle, shmring::Subscriber::received)
    }

    /// Messages this subscription lost to being lapped (policy `overwrite`; else 0).
    #[napi]
    pub fn lost(&self) -> f64 {
        counter(self.handle, shmring::Subscriber::lost)
    }

    /// Releases the participant slot and tells the waiter thread to end, without waiting for
    /// it (it ends on its own, within microseconds). Idempotent.
    #[napi]
    pub fn close(&mut self) {
        self.stop();
    }
}

impl Drop for NativeSubscription {
    fn drop(&mut self) {
        self.stop();
    }
}

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
        .map(|l| match l.summary {
            Ok(s) => NativeListing {
                name: l.name,
                summary: Some(s.into()),
                error_code: None,
                error_message: None,
            },
            Err(e) => NativeListing {
                name: l.name,
                summary: None,
                error_code: Some(e.code().as_str().to_owned()),
                error_message: Some(e.message().to_owned()),
            },
        })
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

/// A subscription read synchronously: `recv` blocks the calling JS thread (meant for worker
/// threads). No waiter thread, nothing that keeps the process alive. The subscriber lives in
/// [`fast`]'s table under `handle` (read by `recv`).
#[napi]
pub struct NativeSyncSubscription {
    handle: f64,
}

#[napi]
impl NativeSyncSubscription {
    /// The handle naming this subscription in `recv`.
    #[napi]
    pub fn handle(&self) -> f64 {
        self.handle
    }

    /// Sets how `recv` waits: `adaptive`, `spin` or `block`.
    #[napi]
    pub fn set_wait(&self, wait: String) -> Result<(), Code> {
        let strategy = parse_wait(Some(&wait))?;
        let reader = fast::reader(self.handle).ok_or_else(|| closed("subscription"))?;
        let mut sub = reader
            .sub
            .try_borrow_mut()
            .map_err(|_| invalid("subscription is busy".into()))?;
        sub.set_wait_strategy(strategy);
        Ok(())
    }

    /// Messages this subscription lost to being lapped (policy `overwrite`; else 0).
    #[napi]
    pub fn lost(&self) -> f64 {
        counter(self.handle, shmring::Subscriber::lost)
    }

    /// Releases the participant slot. Idempotent.
    #[napi]
    pub fn close(&self) {
        fast::remove_reader(self.handle);
    }
}

impl Drop for NativeSyncSubscription {
    fn drop(&mut self) {
        fast::remove_reader(self.handle);
    }
}

/// A counter of the subscription `handle` names (0 once it is closed).
fn counter(handle: f64, read: fn(&shmring::Subscriber) -> u64) -> f64 {
    fast::reader(handle)
        .and_then(|r| r.sub.try_borrow().ok().map(|s| read(&s) as f64))
        .unwrap_or(0.0)
}

/// Largest channel name.
#[napi]
pub const MAX_NAME_LEN: u32 = shmring::MAX_NAME_LEN as u32;
