//! The two kinds of subscription. `NativeSubscription` has a waiter thread that rings JS
//! when data arrives (JS then drains with the fast-path `drain`); `NativeSyncSubscription`
//! has none and is read with the blocking `recv`. Each one's `Subscriber` lives in
//! [`crate::handles`]'s table under its handle. Why the waiter thread is built as it is: see
//! the crate docs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::convert::parse_wait;
use crate::error::{Code, closed, invalid};
use crate::handles;

/// State shared between a subscription and its waiter thread.
struct Doorbell {
    /// True while JS wants to be told about new data.
    armed: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

/// A live subscription: its cursor (in [`crate::handles`]'s table under `handle`, read by
/// `drain`),
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
    pub(crate) fn start(
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
        let handle = match handles::add_reader(sub) {
            Ok(h) => h,
            Err(f) => {
                let mut stopping = NativeSubscription {
                    handle: -1.0,
                    bell,
                    waiter: Some(waiter),
                };
                stopping.stop();
                return Err(f.into());
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
        handles::remove_reader(self.handle);
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

/// A subscription read synchronously: `recv` blocks the calling JS thread (meant for worker
/// threads). No waiter thread, nothing that keeps the process alive. The subscriber lives in
/// [`crate::handles`]'s table under `handle` (read by `recv`).
#[napi]
pub struct NativeSyncSubscription {
    pub(crate) handle: f64,
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
        let reader = handles::reader(self.handle).ok_or_else(|| closed("subscription"))?;
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
        handles::remove_reader(self.handle);
    }
}

impl Drop for NativeSyncSubscription {
    fn drop(&mut self) {
        handles::remove_reader(self.handle);
    }
}

/// A counter of the subscription `handle` names (0 once it is closed).
fn counter(handle: f64, read: fn(&shmring::Subscriber) -> u64) -> f64 {
    handles::reader(handle)
        .and_then(|r| r.sub.try_borrow().ok().map(|s| read(&s) as f64))
        .unwrap_or(0.0)
}
