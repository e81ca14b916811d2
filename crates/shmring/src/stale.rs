//! Whether a segment is dead (stale, never ready, or flagged unlinked) and who holds it: the
//! judgment `recover` and `unlink_if_stale` act on (see `lifecycle.rs`), and the holders
//! named in their messages.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};
use crate::fd::Fd;
use crate::layout;
use crate::process;
use crate::registry;
use crate::segment::{Invalid, Segment};

/// How long an attacher waits for a creator that has made the name but not yet locked and
/// sized the file (two system calls apart), judged by the file's change time.
pub(crate) const INIT_WAIT: Duration = Duration::from_millis(1000);

/// The mode bit that marks a segment under creation (see the module docs of `lifecycle.rs`).
pub(crate) const CREATING_MARK: libc::mode_t = libc::S_ISVTX;

/// How long ago the file's status last changed (creation, sizing, mode).
pub(crate) fn file_age(st: &libc::stat) -> Duration {
    let changed = Duration::new(
        st.st_ctime.max(0) as u64,
        st.st_ctime_nsec.clamp(0, 999_999_999) as u32,
    );
    Duration::from_nanos(process::now_ns()).saturating_sub(changed)
}

/// The pids, other than ours, holding a `flock` on the file `st` describes (from
/// `/proc/locks`; empty if it cannot be read).
pub(crate) fn lock_holders(st: &libc::stat) -> Vec<u32> {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let file = format!(
        "{:02x}:{:02x}:{}",
        libc::major(st.st_dev),
        libc::minor(st.st_dev),
        st.st_ino
    );
    let me = std::process::id();
    let mut pids: Vec<u32> = locks
        .lines()
        .filter_map(|line| {
            // "1: FLOCK  ADVISORY  READ 1234 00:1a:5678 0 EOF"; blocked requests have "->".
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.get(1) != Some(&"FLOCK") || f.get(5) != Some(&file.as_str()) {
                return None;
            }
            f.get(4)?.parse().ok()
        })
        .filter(|pid| *pid != me)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// What `is_dead` found.
pub(crate) enum Dead {
    Yes,
    No,
    /// Damaged or foreign: cannot be judged.
    Damaged(Error),
    /// Never ready and without the creation mark: not provably ours.
    Unmarked(Error),
}

impl Segment {
    /// Whether the segment open as `fd` (exclusively locked by us) is dead: flagged unlinked,
    /// stale (creator and every participant dead, by pid and start time), or never ready with
    /// its creator dead and the creation mark on it. A damaged or foreign segment, or a
    /// never-ready file without the mark (someone else's), is not judged dead. With
    /// `keep_durable`, a stale ready segment on a disk filesystem is not dead either.
    pub(crate) fn is_dead(
        name: &str,
        dir: &Path,
        fd: &Fd,
        st: &libc::stat,
        keep_durable: bool,
    ) -> Result<Dead> {
        let unmarked = || {
            // CorruptSegment, as attaching says of a file that never became ready.
            Dead::Unmarked(Error::new(
                ErrorCode::CorruptSegment,
                format!(
                    "channel {name:?} is a {}-byte file that never became a ready segment and \
                     lacks shmring's creation mark, so shmring did not make it (or an older \
                     version did): recover does not replace it; remove it with unlink if it \
                     is not needed",
                    st.st_size
                ),
            ))
        };
        if st.st_mode & CREATING_MARK == 0 && st.st_size < layout::HEADER_LEN as i64 {
            return Ok(unmarked());
        }
        if st.st_size == 0 {
            // Never sized, and no creator holds the lock: it died before sizing it, or it is
            // between its O_EXCL open and its lock. Give a young file the benefit of the
            // doubt (attaching waits for it). Replacing it anyway would still be safe (such a
            // creator finds its file unlinked once it has the lock, and starts over), but
            // concurrent recoverers would keep replacing each other's new files.
            return Ok(if file_age(st) >= INIT_WAIT {
                Dead::Yes
            } else {
                Dead::No
            });
        }
        let yes = |dead: bool| if dead { Dead::Yes } else { Dead::No };
        let kept = keep_durable && !crate::dir::in_memory(fd.0);
        Ok(match Self::validate(name, dir, fd.dup()?, st) {
            Ok(seg) => yes(seg.unlinked() || (seg.stale() && !kept)),
            Err(Invalid::NeverReady(..)) if st.st_mode & CREATING_MARK == 0 => unmarked(),
            Err(Invalid::NeverReady(_, pid, start)) => yes(!process::is_alive(pid, start)),
            Err(Invalid::Other(e)) => Dead::Damaged(e),
        })
    }

    /// Creator and every participant are dead (pid and start time).
    pub(crate) fn stale(&self) -> bool {
        !process::is_alive(self.desc.creator_pid, self.desc.creator_start_time)
            && registry::participants(self).iter().all(|p| !p.alive)
    }

    /// Whether processes other than this one hold a lock on the segment file (have it mapped,
    /// or are creating or recovering it).
    pub(crate) fn locked_by_others(&self) -> bool {
        match self.fd.as_ref().map(Fd::stat) {
            Some(Ok(st)) => !lock_holders(&st).is_empty(),
            _ => false,
        }
    }

    /// Who uses the segment, for messages: live participants (pid and role), a live creator,
    /// and other processes holding its lock.
    pub(crate) fn holders(&self) -> String {
        let mut named: Vec<u32> = Vec::new();
        let mut parts: Vec<String> = Vec::new();
        for p in registry::participants(self).iter().filter(|p| p.alive) {
            let role = match p.role {
                Some(registry::Role::Producer) => "producer",
                Some(registry::Role::Subscriber) => "subscriber",
                Some(registry::Role::Consumer) => "consumer",
                None => "joining",
            };
            parts.push(format!("pid {} ({role})", p.pid));
            named.push(p.pid);
        }
        let d = &self.desc;
        if process::is_alive(d.creator_pid, d.creator_start_time) && !named.contains(&d.creator_pid)
        {
            parts.push(format!("pid {} (creator)", d.creator_pid));
            named.push(d.creator_pid);
        }
        if let Some(Ok(st)) = self.fd.as_ref().map(Fd::stat) {
            for pid in lock_holders(&st) {
                if !named.contains(&pid) {
                    parts.push(format!("pid {pid} (attached)"));
                    named.push(pid);
                }
            }
        }
        if parts.is_empty() {
            "in use by this process".to_owned()
        } else {
            format!("in use by {}", parts.join(", "))
        }
    }
}
