//! The catalog of channels in a directory (by default [`default_dir`](crate::default_dir):
//! `/dev/shm` or `$SHMRING_DIR`): every `shmring.*` segment there, each read
//! through the same validation as [`Channel::open`](crate::Channel::open) (so a damaged or foreign file is reported,
//! never trusted), for `shmring ls`, `shmring stat` and `shmring rm --stale`.
//!
//! Reading a channel here attaches to its segment but takes no participant slot, so looking
//! at a channel never changes what its producers and subscribers see.
//!
//! ```no_run
//! # fn main() -> shmring::Result<()> {
//! for listing in shmring::list_in(std::path::Path::new("/var/lib/myapp/channels"))? {
//!     match listing.summary {
//!         Ok(s) => println!("{} {} bytes used, stale: {}", s.name, s.bytes_used, s.stale),
//!         Err(e) => println!("{}: {e}", listing.name),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::{Error, ErrorCode, Result};
use crate::layout;
use crate::options::Descriptor;
use crate::options::{Kind, OpenOptions};
use crate::process;
use crate::registry::{self, ParticipantInfo, Role};
use crate::segment::Segment;

/// The state of one channel, as `shmring ls` and `stat` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The channel's name.
    pub name: String,
    /// The settings stored in its header.
    pub descriptor: Descriptor,
    /// The next position producers will claim (bytes since creation).
    pub tail: u64,
    /// Bytes of the ring still held for the slowest subscriber (`tail` minus the lowest
    /// subscriber cursor, or minus the queue head for a queue; 0 without subscribers).
    pub bytes_used: u64,
    /// The occupied participant slots.
    pub participants: Vec<ParticipantInfo>,
    /// Whether the creating process (pid and start time) still runs.
    pub creator_alive: bool,
    /// Creator and every participant are dead (pid and start time), and no other process
    /// has the segment mapped: nobody can be using the channel any more.
    pub stale: bool,
}

/// One `shmring.*` file found in a directory: its summary, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The channel name (the file name without `shmring.`).
    pub name: String,
    /// The channel's state, or the error attaching gave (`IncompatibleSegment`,
    /// `CorruptSegment`, `PermissionDenied`, `InvalidName`, ...).
    pub summary: Result<Summary>,
}

/// The state of an open segment ([`crate::summarize`]).
pub(crate) fn summary_of(seg: &Segment) -> Summary {
    // Participants first, then the tail: every cursor read is then <= the tail read.
    let participants = registry::participants(seg);
    // Acquire: pairs with the producers' claim CAS; only a statistic here.
    let tail = seg.u64_at(layout::TAIL_OFFSET).load(Ordering::Acquire);
    let d = *seg.descriptor();
    let lowest = match d.kind {
        // Consumers share one position: the next record to hand out.
        Kind::Queue => seg
            .u64_at(layout::QUEUE_HEAD_OFFSET)
            .load(Ordering::Acquire),
        Kind::Topic => participants
            .iter()
            .filter(|p| p.role == Some(Role::Subscriber))
            .map(|p| p.cursor)
            .min()
            .unwrap_or(tail),
    };
    let creator_alive = process::is_alive(d.creator_pid, d.creator_start_time);
    // Every process with the segment mapped holds a lock on it: a process that opened the
    // channel without taking a slot counts too. Only asked once the pids say "stale".
    let stale = !creator_alive && participants.iter().all(|p| !p.alive) && !seg.locked_by_others();
    Summary {
        name: seg.name().to_owned(),
        descriptor: d,
        tail,
        // Under `overwrite` a lapped subscriber's cursor may trail by more than the ring.
        bytes_used: tail.saturating_sub(lowest).min(d.geometry.capacity),
        participants,
        creator_alive,
        stale,
    }
}

/// Attaches to `name` in the default directory without creating it and without taking a
/// slot, and summarizes it (see [`inspect_in`]).
pub fn inspect(name: &str) -> Result<Summary> {
    summarize_in(None, name)
}

/// Attaches to `name` in `dir` without creating it and without taking a slot, and
/// summarizes it. A bad `dir` is refused as [`OpenOptions::dir`] says.
///
/// ```no_run
/// # fn main() -> shmring::Result<()> {
/// let s = shmring::inspect_in(std::path::Path::new("/var/lib/myapp/channels"), "orders")?;
/// println!("{} bytes used", s.bytes_used);
/// # Ok(()) }
/// ```
pub fn inspect_in(dir: &Path, name: &str) -> Result<Summary> {
    summarize_in(Some(dir), name)
}

fn summarize_in(dir: Option<&Path>, name: &str) -> Result<Summary> {
    let opts = OpenOptions {
        dir: dir.map(Path::to_path_buf),
        ..OpenOptions::default()
    };
    Ok(summary_of(&Segment::open(name, &opts)?))
}

/// Every `shmring.*` segment in the default directory (see [`list_in`]).
pub fn list() -> Result<Vec<Listing>> {
    list_dir(None)
}

/// Every `shmring.*` segment in `dir`, sorted by name. A file that vanishes while we look is
/// left out; one that cannot be read is listed with its error. A bad `dir` is refused as
/// [`OpenOptions::dir`] says.
pub fn list_in(dir: &Path) -> Result<Vec<Listing>> {
    list_dir(Some(dir))
}

fn list_dir(dir: Option<&Path>) -> Result<Vec<Listing>> {
    let dir = crate::dir::resolve(dir)?;
    let read_err = |e| Error::os(&format!("read {:?}", dir.display().to_string()), e);
    let entries = std::fs::read_dir(&dir).map_err(read_err)?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_prefix("shmring.")) else {
            continue;
        };
        let summary =
            crate::name::validate_name(name).and_then(|()| summarize_in(Some(&dir), name));
        if matches!(&summary, Err(e) if e.code() == ErrorCode::NotFound) {
            continue; // unlinked between readdir and open
        }
        out.push(Listing {
            name: name.to_owned(),
            summary,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes `name` in the default directory if it is stale (see [`unlink_if_stale_in`]).
pub fn unlink_if_stale(name: &str) -> Result<bool> {
    Segment::unlink_if_dead(name, None)
}

/// Removes `name` in `dir` if it is stale (creator and every participant dead, and no process has it
/// mapped) or never became ready (its creator died creating it); returns whether it did. A
/// live channel is left alone; a damaged one is an error (as [`inspect`] reports it).
///
/// Race-free: the judgment is made holding the segment's exclusive lock, which no process
/// can get while another has the segment mapped, and a process that opened the name just
/// before it was removed opens it again (see `OpenOptions::recover`, which does the same and
/// then creates a new segment). A stale channel in a directory on a disk filesystem (a
/// durable one whose processes have all exited) is removed too: asking for it is asking to
/// drop its messages.
pub fn unlink_if_stale_in(dir: &Path, name: &str) -> Result<bool> {
    Segment::unlink_if_dead(name, Some(dir))
}
