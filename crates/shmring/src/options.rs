//! Options of `open`: what to create, and what to check on attach.

use std::path::PathBuf;

use crate::error::{Error, ErrorCode, Result};
use crate::flush::Flush;
use crate::layout::{self, Geometry};

/// Default data area: 1 MiB.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;
/// Default largest payload: 64 KiB (or what the capacity allows, if smaller).
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 64 * 1024;
/// Default participant table size.
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 64;
/// Default permission bits: owner read/write only.
pub const DEFAULT_MODE: u32 = 0o600;

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $code:literal => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vm])* $var = $code),+
        }
        impl $name {
            /// Decodes the header byte.
            pub fn from_code(code: u8) -> std::result::Result<Self, String> {
                match code {
                    $($code => Ok(Self::$var),)+
                    other => Err(format!("unknown {} code {other}", stringify!($name))),
                }
            }
            /// The name used in options and messages.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$var => $s),+ }
            }
            /// Parses the name used in options.
            pub fn parse(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok(Self::$var),)+
                    other => Err(Error::new(
                        ErrorCode::InvalidArgument,
                        format!("{} {other:?} is not one of {}", stringify!($name), [$($s),+].join(", ")),
                    )),
                }
            }
        }
    };
}

code_enum! {
    /// How messages are delivered.
    Kind {
        /// Fan-out: every subscriber gets every message published after it joined.
        #[default]
        Topic = 0 => "topic",
        /// Competing consumers: each message goes to exactly one consumer.
        Queue = 1 => "queue",
    }
}

code_enum! {
    /// How producers and consumers coordinate.
    SyncMode {
        /// CAS on the shared tail, release-store commits; no lock is ever held.
        #[default]
        LockFree = 0 => "lockfree",
        /// Process-shared semaphores and a robust mutex.
        Semaphore = 1 => "semaphore",
    }
}

code_enum! {
    /// What a publisher does when the ring is full.
    Policy {
        /// Wait for the slowest live subscriber (`publish` returns false; `send` waits).
        #[default]
        Block = 0 => "block",
        /// Fail at once with `RingFull`.
        Fail = 1 => "fail",
        /// Overwrite the oldest messages; lapped subscribers count what they lost.
        Overwrite = 2 => "overwrite",
    }
}

code_enum! {
    /// What a queue promises about each message ([`OpenOptions::delivery`]).
    Delivery {
        /// A message is handed to one consumer once; if that consumer dies before handling
        /// it, it is gone.
        #[default]
        AtMostOnce = 0 => "at-most-once",
        /// A consumer's deliveries stay its own until it acknowledges them; what a dead
        /// consumer held, what it returned (`nack`) and (with an ack timeout) what it sat on
        /// too long goes to another consumer. Queues only.
        AtLeastOnce = 1 => "at-least-once",
    }
}

/// Longest [`OpenOptions::ack_timeout_ms`]: about 49 days (a `u32` of milliseconds).
pub const MAX_ACK_TIMEOUT_MS: u32 = u32::MAX;

/// Options of [`crate::Channel::open`]. `None` fields take the segment's value on attach (or
/// the default on create); `Some` fields are checked against an existing segment.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Create the segment if it does not exist.
    pub create: bool,
    /// With `create`: fail with `AlreadyExists` if it exists.
    pub exclusive: bool,
    /// Topic or queue.
    pub kind: Option<Kind>,
    /// Lock-free or semaphore.
    pub sync: Option<SyncMode>,
    /// What a full ring does to a publisher.
    pub policy: Option<Policy>,
    /// Queues: at-most-once (the default) or at-least-once delivery, stored in the header.
    pub delivery: Option<Delivery>,
    /// At-least-once queues: a consumer that acknowledges nothing of what it holds for this
    /// many milliseconds loses it to another consumer, even while it lives (`0` or `None`:
    /// only a consumer's death or `nack` returns its deliveries). Stored in the header.
    pub ack_timeout_ms: Option<u32>,
    /// Data area bytes (power of two).
    pub capacity: Option<u64>,
    /// Largest payload.
    pub max_message_size: Option<u32>,
    /// Participant table slots.
    pub max_participants: Option<u32>,
    /// Permission bits on create.
    pub mode: u32,
    /// Replace a dead segment under this name with a new one (implies `create`). A segment is
    /// dead when it is *stale* (its creator and every participant are dead, judged by pid and
    /// start time, and no process has it mapped) or *never became ready* (its creator died
    /// while creating it). A segment some live process uses is never replaced: it is attached
    /// as usual, or, if it cannot be used (damaged, or `exclusive` was asked for), `open`
    /// fails with an error that names the processes holding it. Concurrent recoverers agree
    /// on one new segment. A stale segment on a disk filesystem (a durable channel whose
    /// processes have all exited, see [`OpenOptions::dir`]) is not dead: it is attached, with
    /// its messages.
    pub recover: bool,
    /// Use a segment owned by another user. Off by default: a segment whose owner (`st_uid`)
    /// is not this process's effective uid is refused with `PermissionDenied`, since whoever
    /// owns it can rewrite it under us.
    pub allow_foreign_owner: bool,
    /// The directory of the segment file, `<dir>/shmring.<name>`: an absolute path of an
    /// existing directory. `None`: [`default_dir`](crate::default_dir) (`$SHMRING_DIR` when
    /// set, else `/dev/shm`). A directory on a disk filesystem makes the channel durable: its
    /// messages survive every process exiting and a reboot (see [`Flush`] for what survives a
    /// power loss). Bad directories are refused, naming the path: a relative path or one that
    /// is not a directory `InvalidArgument`, a missing one `NotFound`, one this process may
    /// not write to (when creating) `PermissionDenied`, a filesystem that cannot map files
    /// shared `InvalidArgument`.
    ///
    /// ```no_run
    /// # fn main() -> shmring::Result<()> {
    /// let opts = shmring::OpenOptions {
    ///     dir: Some("/var/lib/myapp/channels".into()),
    ///     flush: shmring::Flush::Every(std::time::Duration::from_millis(10)),
    ///     ..shmring::OpenOptions::create()
    /// };
    /// let ch = shmring::Channel::open("orders", &opts)?;
    /// # Ok(()) }
    /// ```
    pub dir: Option<PathBuf>,
    /// When this handle forces what it writes out to the file (see [`Flush`]); a setting of
    /// this handle, not of the channel. Default [`Flush::Os`].
    pub flush: Flush,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            create: false,
            exclusive: false,
            kind: None,
            sync: None,
            policy: None,
            delivery: None,
            ack_timeout_ms: None,
            capacity: None,
            max_message_size: None,
            max_participants: None,
            mode: DEFAULT_MODE,
            recover: false,
            allow_foreign_owner: false,
            dir: None,
            flush: Flush::Os,
        }
    }
}

impl OpenOptions {
    /// Options that create the channel if needed.
    pub fn create() -> Self {
        Self {
            create: true,
            ..Self::default()
        }
    }

    /// Whether `open` may create the segment: `create`, or `recover` (which implies it).
    pub fn creates(&self) -> bool {
        self.create || self.recover
    }

    /// The sizes a new segment gets.
    pub fn geometry(&self) -> Geometry {
        let capacity = self.capacity.unwrap_or(DEFAULT_CAPACITY);
        let max_message_size = self.max_message_size.unwrap_or_else(|| {
            DEFAULT_MAX_MESSAGE_SIZE.min(layout::max_message_size_for(capacity) as u32)
        });
        Geometry {
            capacity,
            max_message_size,
            max_participants: self.max_participants.unwrap_or(DEFAULT_MAX_PARTICIPANTS),
        }
    }

    /// Checks the options on their own.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Error::new(ErrorCode::InvalidArgument, m);
        self.flush.validate()?;
        if self.exclusive && !self.creates() {
            return Err(invalid("exclusive needs create: true".into()));
        }
        if self.mode & !0o777 != 0 {
            return Err(invalid(format!(
                "mode {:#o} has bits outside 0o777",
                self.mode
            )));
        }
        if self.mode & 0o600 != 0o600 {
            return Err(invalid(format!(
                "mode {:#o} must give the owner read and write (0o600)",
                self.mode
            )));
        }
        if self.policy == Some(Policy::Overwrite) && self.kind == Some(Kind::Queue) {
            return Err(invalid(
                "policy \"overwrite\" is for topics; a queue hands each message to one consumer"
                    .into(),
            ));
        }
        if self.creates()
            && self.policy == Some(Policy::Overwrite)
            && self.kind.unwrap_or_default() == Kind::Queue
        {
            return Err(invalid("policy \"overwrite\" needs kind \"topic\"".into()));
        }
        let kind = self.kind.unwrap_or_default();
        if self.delivery == Some(Delivery::AtLeastOnce) && kind != Kind::Queue {
            return Err(invalid(
                "delivery \"at-least-once\" is for queues (kind \"queue\"); a topic hands every \
                 message to every subscriber"
                    .into(),
            ));
        }
        if self.ack_timeout_ms.is_some_and(|t| t > 0)
            && self.delivery != Some(Delivery::AtLeastOnce)
            && self.creates()
        {
            return Err(invalid(
                "ackTimeoutMs needs delivery \"at-least-once\"".into(),
            ));
        }
        if self.creates() {
            self.geometry().validate().map_err(invalid)?;
        } else if let Some(c) = self.capacity {
            layout::check_capacity(c).map_err(invalid)?;
        }
        Ok(())
    }

    /// Checks the options the caller stated against an existing segment.
    pub(crate) fn check_against(&self, name: &str, d: &Descriptor) -> Result<()> {
        fn differ(
            name: &str,
            what: &str,
            ours: impl std::fmt::Display,
            theirs: impl std::fmt::Display,
        ) -> Error {
            Error::new(
                ErrorCode::IncompatibleSegment,
                format!("channel {name:?} has {what} {theirs}, but {ours} was asked for"),
            )
        }
        let g = &d.geometry;
        if let Some(c) = self.capacity.filter(|c| *c != g.capacity) {
            return Err(differ(name, "capacity", c, g.capacity));
        }
        if let Some(m) = self.max_message_size.filter(|m| *m != g.max_message_size) {
            return Err(differ(name, "maxMessageSize", m, g.max_message_size));
        }
        if let Some(p) = self.max_participants.filter(|p| *p != g.max_participants) {
            return Err(differ(name, "maxParticipants", p, g.max_participants));
        }
        if let Some(k) = self.kind.filter(|k| *k != d.kind) {
            return Err(differ(name, "kind", k.as_str(), d.kind.as_str()));
        }
        if let Some(s) = self.sync.filter(|s| *s != d.sync) {
            return Err(differ(name, "sync", s.as_str(), d.sync.as_str()));
        }
        if let Some(p) = self.policy.filter(|p| *p != d.policy) {
            return Err(differ(name, "policy", p.as_str(), d.policy.as_str()));
        }
        if let Some(v) = self.delivery.filter(|v| *v != d.delivery) {
            return Err(differ(name, "delivery", v.as_str(), d.delivery.as_str()));
        }
        if let Some(t) = self.ack_timeout_ms.filter(|t| *t != d.ack_timeout_ms) {
            return Err(differ(name, "ackTimeoutMs", t, d.ack_timeout_ms));
        }
        Ok(())
    }
}

/// The settings stored in a segment's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Sizes.
    pub geometry: Geometry,
    /// Topic or queue.
    pub kind: Kind,
    /// Lock-free or semaphore.
    pub sync: SyncMode,
    /// What a full ring does to a publisher.
    pub policy: Policy,
    /// At-most-once or at-least-once (queues).
    pub delivery: Delivery,
    /// At-least-once: milliseconds without an acknowledgement after which a live consumer's
    /// deliveries go to another consumer (0: never).
    pub ack_timeout_ms: u32,
    /// Permission bits the creator asked for.
    pub mode: u32,
    /// Pid of the creator.
    pub creator_pid: u32,
    /// Start time of the creator (clock ticks since boot).
    pub creator_start_time: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_at_ns: u64,
    /// Random key of the record sequence words.
    pub seq_key: u64,
}

/// Where a subscription starts reading ([`SubscribeOptions::from`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// Whatever is published from now on (the default).
    #[default]
    Latest,
    /// The oldest whole message the ring still holds.
    Earliest,
    /// The first message at or after this position (`record.position + 1` resumes right
    /// after a record). A position older than the ring holds starts at the oldest message; a
    /// position not reached yet waits for it.
    Position(u64),
}

/// Options of [`crate::Channel::subscribe_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Where a new subscription starts. A named subscription that resumes ignores it.
    pub from: Start,
    /// Join as the named subscriber of this name (`[A-Za-z0-9._-]{1,32}`, topics only): its
    /// cursor lives in the segment, survives its process, and the next subscription of this
    /// name resumes after the last message consumed.
    pub name: Option<String>,
}
