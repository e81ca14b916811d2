//! `NativeChannel`: an open channel as JS holds it, its settings and participants, the
//! subscriptions it starts, and `waitForSpace` (which waits on a libuv worker thread).

use std::cell::{Ref, RefCell};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;

use crate::convert::{
    NativeChannelInfo, NativeOpenOptions, NativeParticipant, NativeSubscribeOptions, NativeSummary,
    parse_wait,
};
use crate::error::{Code, closed, js_err};
use crate::handles;
use crate::subscription::{NativeSubscription, NativeSyncSubscription};
use crate::timeout::timeout_of;

/// An open channel handle.
///
/// Every method takes `&self` (state behind `RefCell`s): napi-rs keeps a shared borrow of
/// the object while a `waitForSpace` promise is pending, and a `&mut self` method (`close`)
/// would then fail with a borrow error. JS calls never re-enter, so the `RefCell` borrows
/// never overlap.
///
/// Its producer side (taken on the first publish) lives in [`crate::handles`]'s table under
/// `handle`, where `publish` and `publishMany` find it.
#[napi]
pub struct NativeChannel {
    ch: RefCell<Option<shmring::Channel>>,
    handle: f64,
}

impl NativeChannel {
    fn ch(&self) -> Result<Ref<'_, shmring::Channel>, Code> {
        Ref::filter_map(self.ch.borrow(), Option::as_ref).map_err(|_| closed("channel").into())
    }
}

impl Drop for NativeChannel {
    fn drop(&mut self) {
        handles::remove_publisher(self.handle);
    }
}

impl NativeChannel {
    /// A subscriber with the wait strategy and options of `subscribe`/`subscribe_sync`.
    fn subscriber(
        &self,
        wait: Option<String>,
        options: Option<NativeSubscribeOptions>,
    ) -> Result<shmring::Subscriber, Code> {
        let strategy = parse_wait(wait.as_deref())?;
        let (opts, records) = NativeSubscribeOptions::parse(options.as_ref())?;
        let mut sub = self.ch()?.subscribe_with(&opts).map_err(js_err)?;
        sub.set_wait_strategy(strategy);
        sub.set_record_frames(records);
        Ok(sub)
    }
}

#[napi]
impl NativeChannel {
    /// Creates or attaches the channel `name`.
    #[napi(factory)]
    pub fn open(name: String, options: Option<NativeOpenOptions>) -> Result<NativeChannel, Code> {
        let opts = match &options {
            Some(o) => o.to_rust()?,
            None => shmring::OpenOptions::default(),
        };
        let ch = shmring::Channel::open(&name, &opts).map_err(js_err)?;
        let exclusive = options.and_then(|o| o.exclusive_producer) == Some(true);
        let producer = if exclusive {
            Some(ch.exclusive_producer().map_err(js_err)?)
        } else {
            None
        };
        let handle = handles::add_publisher(ch.clone(), producer)?;
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
        Ok(NativeChannelInfo::from(&*self.ch()?))
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
        let timeout = timeout_of("timeoutMs", timeout_ms)?;
        Ok(AsyncTask::new(WaitForSpace {
            ch: self.ch()?.clone(),
            len: len as usize,
            timeout,
        }))
    }

    /// Starts a subscription. `on_ready` is called (with no arguments) whenever data arrives
    /// while the subscription is armed. `wait` (`adaptive`, `spin` or `block`; default
    /// `adaptive`) is how its waiter thread waits for data; `options` where it starts,
    /// whether it is named, and whether frames carry positions. A named one consumes only
    /// what JS commits (fast-path `commit`), never on a drain.
    #[napi(
        ts_args_type = "onReady: () => void, wait?: string | undefined | null, options?: NativeSubscribeOptions | undefined | null"
    )]
    pub fn subscribe(
        &self,
        on_ready: ThreadsafeFunction<(), Unknown<'static>, (), Status, false>,
        wait: Option<String>,
        options: Option<NativeSubscribeOptions>,
    ) -> Result<NativeSubscription, Code> {
        let mut sub = self.subscriber(wait, options)?;
        // JS commits what its handlers finished with (`commit`); a drain must not.
        sub.set_auto_commit(false);
        NativeSubscription::start(sub, on_ready)
    }

    /// Removes the named subscriber `name` (it must not be attached: `Busy`); returns
    /// whether the name existed.
    #[napi]
    pub fn remove_subscriber(&self, name: String) -> Result<bool, Code> {
        self.ch()?.remove_subscriber(&name).map_err(js_err)
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
    pub fn subscribe_sync(
        &self,
        wait: Option<String>,
        options: Option<NativeSubscribeOptions>,
    ) -> Result<NativeSyncSubscription, Code> {
        let sub = self.subscriber(wait, options)?;
        Ok(NativeSyncSubscription {
            handle: handles::add_reader(sub)?,
        })
    }

    /// Releases the producer slot and the mapping (once every subscription is closed too).
    #[napi]
    pub fn close(&self) {
        handles::remove_publisher(self.handle);
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
