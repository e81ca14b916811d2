//! # shmring
//!
//! A message bus between unrelated processes on one Linux host, built on ring buffers in
//! shared memory: a file `<dir>/shmring.<name>` mapped by every participant, where `dir` is
//! `/dev/shm` by default (POSIX shared memory) or any directory given with
//! [`OpenOptions::dir`] (on a disk filesystem the channel is durable).
//!
//! - A **channel** is one segment: a header, a participant table, and a data area used as a
//!   ring of variable-size records (see `docs/LAYOUT.md` and [`layout`]).
//! - Any number of [`Producer`]s, in any processes, publish with a CAS on the shared tail
//!   (lock-free; Aeron's `ManyToOneRingBuffer` protocol).
//! - Each [`Subscriber`] of a topic has its own cursor and receives every message published
//!   after it joined, in each producer's order; publishers wait for the slowest live one.
//!
//! ```no_run
//! use shmring::{Channel, OpenOptions};
//! # fn main() -> shmring::Result<()> {
//! let ch = Channel::open("prices", &OpenOptions::create())?;
//! let mut sub = ch.subscribe()?;
//! let mut producer = ch.producer()?;
//! producer.try_publish(b"hello")?;
//! let mut buf = Vec::new();
//! assert!(sub.recv_timeout(&mut buf, None)?);
//! assert_eq!(buf, b"hello");
//! shmring::unlink("prices")?;
//! # Ok(()) }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod barrier;
mod catalog;
mod dir;
mod error;
mod fd;
mod filecheck;
mod flush;
mod futex;
mod hooks;
pub mod layout;
mod lifecycle;
mod memory;
mod mutex;
mod name;
mod named;
mod options;
pub mod process;
mod recovery;
mod registry;
mod ring;
mod ring_map;
mod segment;
mod stale;
mod sync;
mod wait;

use std::sync::Arc;
use std::time::Duration;

pub use catalog::{
    Listing, Summary, inspect, inspect_in, list, list_in, unlink_if_stale, unlink_if_stale_in,
};
pub use dir::{DIR_ENV, SHM_DIR, default_dir};
pub use error::{Error, ErrorCode, Result};
pub use flush::{Flush, MAX_FLUSH_INTERVAL};
pub use lifecycle::{unlink, unlink_in};
pub use name::{MAX_NAME_LEN, segment_path, shm_path, validate_name};
pub use named::{MAX_SUBSCRIBER_NAME_LEN, validate_subscriber_name};
pub use options::{
    DEFAULT_CAPACITY, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_PARTICIPANTS, DEFAULT_MODE, Delivery,
    Descriptor, Kind, MAX_ACK_TIMEOUT_MS, OpenOptions, Policy, Start, SubscribeOptions, SyncMode,
};
pub use recovery::RECOVERY_POLL;
pub use registry::{ParticipantInfo, Role};
pub use ring::{Drained, FRAME_PREFIX, Producer, RECORD_FRAME_PREFIX, Subscriber, Waiter};
pub use wait::WaitStrategy;

/// An open channel. Cheap to clone; the mapping lives until the last handle, producer and
/// subscriber made from it are dropped.
#[derive(Clone)]
pub struct Channel {
    seg: Arc<segment::Segment>,
}

impl Channel {
    /// Creates or attaches the channel `name` (see [`OpenOptions`]).
    pub fn open(name: &str, opts: &OpenOptions) -> Result<Channel> {
        Ok(Channel {
            seg: Arc::new(segment::Segment::open(name, opts)?),
        })
    }

    /// A channel in a loom model rather than in shared memory (`--cfg loom` only).
    #[cfg(loom)]
    pub fn model(name: &str, opts: &OpenOptions) -> Result<Channel> {
        Ok(Channel {
            seg: Arc::new(segment::Segment::model(name, opts)?),
        })
    }

    /// As [`Channel::model`], with readers that cannot issue the membarrier (`--cfg loom`
    /// only): wakers skip their fence and rely on `layout::WAITERS_FENCED`.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn model_without_membarrier(name: &str, opts: &OpenOptions) -> Result<Channel> {
        let mut seg = segment::Segment::model(name, opts)?;
        seg.barrier.heavy_sleeps = false;
        Ok(Channel { seg: Arc::new(seg) })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Whether this handle created the segment (rather than attached to it).
    pub fn created(&self) -> bool {
        self.seg.created()
    }

    /// The settings stored in the segment's header.
    pub fn descriptor(&self) -> &Descriptor {
        self.seg.descriptor()
    }

    /// The directory of the segment file (`<dir>/shmring.<name>`), as resolved at open.
    pub fn dir(&self) -> &std::path::Path {
        &self.seg.dir
    }

    /// A new producer (takes a participant slot). `Busy` while the channel has an
    /// [exclusive producer](Channel::exclusive_producer).
    pub fn producer(&self) -> Result<Producer> {
        Producer::new(self.seg.clone(), false)
    }

    /// A new producer that is the channel's only one for as long as it lives: it claims
    /// space with a plain store instead of a CAS, so a publish runs no locked instruction
    /// (the fastest way to publish one message at a time). `Busy` if another live producer
    /// exists, in any process; while it lives, every other [`Channel::producer`] and
    /// `exclusive_producer` call is `Busy`. Lock-free channels only (`InvalidArgument` in
    /// semaphore mode). If its process dies, the next producer may join at once.
    ///
    /// ```no_run
    /// # fn main() -> shmring::Result<()> {
    /// let ch = shmring::Channel::open("ticks", &shmring::OpenOptions::create())?;
    /// let mut p = ch.exclusive_producer()?;
    /// for i in 0u64..1000 {
    ///     p.publish_timeout(&i.to_le_bytes(), None)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn exclusive_producer(&self) -> Result<Producer> {
        Producer::new(self.seg.clone(), true)
    }

    /// A new subscription starting at the current tail (takes a participant slot).
    pub fn subscribe(&self) -> Result<Subscriber> {
        Subscriber::new(self.seg.clone(), &SubscribeOptions::default())
    }

    /// A new subscription that starts where `opts` says, or joins as a named subscriber
    /// (takes a participant slot). `InvalidArgument` for a queue with `from` or `name`.
    ///
    /// ```no_run
    /// # fn main() -> shmring::Result<()> {
    /// use shmring::{Channel, OpenOptions, Start, SubscribeOptions};
    /// let ch = Channel::open("events", &OpenOptions::create())?;
    /// let opts = SubscribeOptions { from: Start::Earliest, name: None };
    /// let mut sub = ch.subscribe_with(&opts)?; // replays what the ring still holds
    /// let mut buf = Vec::new();
    /// while sub.try_recv(&mut buf)? {
    ///     println!("{} at {:?}", buf.len(), sub.last_position());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe_with(&self, opts: &SubscribeOptions) -> Result<Subscriber> {
        Subscriber::new(self.seg.clone(), opts)
    }

    /// Joins as the named subscriber `name` (see [`SubscribeOptions::name`]): resumes right
    /// after the last message a subscription of that name consumed, or, for a new name,
    /// starts at the current tail. A message counts as consumed once the next receive call
    /// is made (or [`Subscriber::commit_through`] says so); one in hand when the process
    /// dies is delivered again. `Busy` while another subscription of that name is attached.
    ///
    /// ```no_run
    /// # fn main() -> shmring::Result<()> {
    /// let ch = shmring::Channel::open("orders", &shmring::OpenOptions::create())?;
    /// let mut billing = ch.subscribe_named("billing")?;
    /// let mut buf = Vec::new();
    /// while billing.try_recv(&mut buf)? { /* handle it; the next call consumes it */ }
    /// # Ok(()) }
    /// ```
    pub fn subscribe_named(&self, name: &str) -> Result<Subscriber> {
        self.subscribe_with(&SubscribeOptions {
            from: Start::Latest,
            name: Some(name.to_owned()),
        })
    }

    /// Removes the named subscriber `name`, which must not be attached (`Busy` if it is):
    /// its cursor no longer holds producers back. Returns whether the name existed.
    pub fn remove_subscriber(&self, name: &str) -> Result<bool> {
        let removed = named::remove_named(&self.seg, name)?;
        if removed {
            ring::wake_producers(&self.seg);
        }
        Ok(removed)
    }

    /// The occupied participant slots.
    pub fn participants(&self) -> Vec<ParticipantInfo> {
        registry::participants(&self.seg)
    }

    /// Waits until a message of `payload_len` bytes would fit (or `timeout` passes) without
    /// holding a producer: lets an async caller wait on another thread. Returns whether it fits.
    pub fn wait_for_space(&self, payload_len: usize, timeout: Option<Duration>) -> bool {
        ring::wait_for_space(&self.seg, payload_len, timeout)
    }
}

/// The state of an open channel: settings, bytes used, participants, staleness (as
/// [`inspect`] reports it for a name).
///
/// ```no_run
/// # fn main() -> shmring::Result<()> {
/// let ch = shmring::Channel::open("prices", &shmring::OpenOptions::create())?;
/// let summary = shmring::summarize(&ch);
/// assert_eq!(summary.name, "prices");
/// # Ok(()) }
/// ```
pub fn summarize(ch: &Channel) -> Summary {
    catalog::summary_of(&ch.seg)
}
