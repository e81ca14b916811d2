//! The plain objects that cross the binding (`#[napi(object)]`: copied in or out, no
//! identity): the options of `open` (checked again here) and a subscription's wait strategy
//! in, a channel's settings, participants, summary and listings out.

use napi::Result;
use napi_derive::napi;

use crate::error::{Code, invalid, js_err};

/// A subscription's wait strategy from its TypeScript name (`adaptive` when absent).
pub(crate) fn parse_wait(wait: Option<&str>) -> Result<shmring::WaitStrategy, Code> {
    wait.map_or(Ok(shmring::WaitStrategy::default()), |w| {
        shmring::WaitStrategy::parse(w).map_err(js_err)
    })
}

/// Where a subscription starts and whether it is named, as they come from TypeScript
/// (validated again here and in the engine).
#[napi(object)]
pub struct NativeSubscribeOptions {
    /// `latest` (default) or `earliest`; ignored when `position` is given.
    pub from: Option<String>,
    /// Start at the first message at or after this position (an integer below 2^53).
    pub position: Option<f64>,
    /// Join as the named subscriber of this name.
    pub durable: Option<String>,
    /// Frames carry each record's position (`[len u32][flags u32][position u64][payload]`).
    pub records: Option<bool>,
}

impl NativeSubscribeOptions {
    /// The engine's options, and whether frames carry positions.
    pub(crate) fn parse(
        o: Option<&NativeSubscribeOptions>,
    ) -> Result<(shmring::SubscribeOptions, bool), Code> {
        let Some(o) = o else {
            return Ok((shmring::SubscribeOptions::default(), false));
        };
        let from = match (o.position, o.from.as_deref()) {
            (Some(p), _) => {
                if !(p.is_finite() && p >= 0.0 && p.fract() == 0.0 && p <= MAX_SAFE_INTEGER) {
                    return Err(invalid(format!(
                        "from position {p} is not an integer in 0..=2^53-1"
                    ))
                    .into());
                }
                shmring::Start::Position(p as u64)
            }
            (None, None | Some("latest")) => shmring::Start::Latest,
            (None, Some("earliest")) => shmring::Start::Earliest,
            (None, Some(other)) => {
                return Err(invalid(format!(
                    "from {other:?} is not 'latest', 'earliest' or a position"
                ))
                .into());
            }
        };
        Ok((
            shmring::SubscribeOptions {
                from,
                name: o.durable.clone(),
            },
            o.records.unwrap_or(false) || o.durable.is_some(),
        ))
    }
}

/// The largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

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
    /// Queues: `"at-most-once"` (default) or `"at-least-once"`.
    pub delivery: Option<String>,
    /// At-least-once queues: milliseconds after which a live consumer's unacknowledged
    /// deliveries go back to the queue (0 or absent: never).
    pub ack_timeout_ms: Option<f64>,
    /// Take the channel's exclusive producer at open, for this handle's producer side.
    pub exclusive_producer: Option<bool>,
}

fn whole(name: &str, v: Option<f64>, max: f64) -> Result<Option<f64>, Code> {
    match v {
        Some(x) if !(x.fract() == 0.0 && (1.0..=max).contains(&x)) => {
            Err(invalid(format!("{name} {x} must be a whole number from 1 to {max}")).into())
        }
        other => Ok(other),
    }
}

impl NativeOpenOptions {
    #[allow(clippy::needless_update)] // while TypeScript passes every engine option
    pub(crate) fn to_rust(&self) -> Result<shmring::OpenOptions, Code> {
        let capacity = whole("capacity", self.capacity, 2f64.powi(53))?;
        let max_msg = whole("maxMessageSize", self.max_message_size, u32::MAX as f64)?;
        let max_part = whole("maxParticipants", self.max_participants, u32::MAX as f64)?;
        let ack_timeout = match self.ack_timeout_ms {
            Some(0.0) => Some(0),
            v => whole("ackTimeoutMs", v, shmring::MAX_ACK_TIMEOUT_MS as f64)?.map(|t| t as u32),
        };
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
            delivery: self
                .delivery
                .as_deref()
                .map(shmring::Delivery::parse)
                .transpose()
                .map_err(js_err)?,
            ack_timeout_ms: ack_timeout,
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
    /// `at-most-once` or `at-least-once` (topics: `at-most-once`).
    pub delivery: String,
    /// At-least-once queues: the ack timeout in milliseconds (0: none).
    pub ack_timeout_ms: u32,
}

impl From<&shmring::Channel> for NativeChannelInfo {
    fn from(ch: &shmring::Channel) -> Self {
        let d = ch.descriptor();
        NativeChannelInfo {
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
            delivery: d.delivery.as_str().to_owned(),
            ack_timeout_ms: d.ack_timeout_ms,
        }
    }
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
    /// A named subscriber's name.
    pub name: Option<String>,
    /// A named subscriber that is away (its cursor still holds producers back).
    pub away: bool,
    /// At-least-once queue consumers: deliveries held, not acknowledged yet.
    pub in_flight: f64,
    /// At-least-once queue consumers: messages received that had been delivered before.
    pub redelivered: f64,
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
            name: p.name,
            away: p.away,
            in_flight: p.in_flight as f64,
            redelivered: p.redelivered as f64,
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
    /// `at-most-once` or `at-least-once`.
    pub delivery: String,
    /// At-least-once queues: the ack timeout in milliseconds (0: none).
    pub ack_timeout_ms: u32,
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
            delivery: d.delivery.as_str().to_owned(),
            ack_timeout_ms: d.ack_timeout_ms,
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

impl From<shmring::Listing> for NativeListing {
    fn from(l: shmring::Listing) -> Self {
        match l.summary {
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
        }
    }
}
