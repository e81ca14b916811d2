//! The registry of native objects: a per-thread table per kind ([`Table`]) that the
//! fast-path calls look a *handle* up in. A handle is a JS number: a slot index and a serial
//! unique in the process (across threads and both kinds of table), so a stale or foreign
//! handle (another thread's, the other kind's, a closed object's) finds nothing, never
//! another object. The tables are thread-local and Rust-owned.
//!
//! What lives here: a channel's producer side ([`Publisher`], taken on its first publish)
//! and each subscription's [`Reader`].

use std::cell::RefCell;
use std::rc::Rc;

use crate::error::{Fail, closed, invalid};

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
        if !(handle >= 0.0 && handle < 2f64.powi(53)) {
            return None;
        }
        let h = handle as u64;
        // Whole: converting back gives it again (`fract()` is a libm call per publish here).
        if h as f64 != handle {
            return None;
        }
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

/// Registers a channel's producer side, with its producer if it has one already (an
/// exclusive producer, taken at open); returns its handle.
pub(crate) fn add_publisher(
    ch: shmring::Channel,
    producer: Option<shmring::Producer>,
) -> Result<f64, Fail> {
    PUBLISHERS.with(|t| {
        t.borrow_mut().insert(Publisher {
            ch,
            producer: RefCell::new(producer),
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

/// Runs `f` with the producer of the channel `handle` names (taking its producer slot on
/// first use), inside the table's borrow: no `Rc` is cloned and dropped per call. `f` is an
/// engine call (no napi, no JS), so nothing can reach the table meanwhile; `Closed` if the
/// handle names nothing.
pub(crate) fn with_publisher<R>(
    handle: f64,
    f: impl FnOnce(&mut shmring::Producer) -> shmring::Result<R>,
) -> Result<R, Fail> {
    PUBLISHERS.with(|t| {
        let t = t.borrow();
        let (index, serial) = t.slot(handle).ok_or_else(|| closed("channel"))?;
        match t.slots.get(index) {
            Some((g, Some(p))) if *g == serial => p.with(f),
            _ => Err(closed("channel")),
        }
    })
}

/// The subscription `handle` names, or `Closed`.
pub(crate) fn reader_or_closed(handle: f64) -> Result<Rc<Reader>, Fail> {
    reader(handle).ok_or_else(|| closed("subscription"))
}

impl Publisher {
    /// Runs `f` with the producer, taking a producer slot on first use.
    pub(crate) fn with<R>(
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
