//! A segment's lifecycle: create-or-attach, recovery, unlink, staleness, who holds it.
//!
//! A segment is `<dir>/shmring.<name>` (`dir` is `/dev/shm` by default, see `dir.rs`), made
//! with `open(O_CREAT | O_EXCL | O_NOFOLLOW)` (what `shm_open` does in `/dev/shm`) +
//! `ftruncate` + `posix_fallocate` (so a full filesystem is an error at creation, not a SIGBUS
//! later) and mapped whole with `mmap`. Creation is race-free: `O_EXCL` picks one creator;
//! every other opener attaches.
//!
//! **Locks.** Every process that has a segment mapped holds a shared `flock` on its own
//! descriptor of the segment file for as long as the mapping lives (the descriptor is kept
//! open for that, and for the `fstat` checks below). A creator holds the exclusive lock from
//! right after its `O_EXCL` open, before it sizes the file, until the segment is ready. So:
//! - an attacher takes the shared lock (waiting while a creator initialises) and then finds
//!   the segment ready, or knows that its creator died before finishing;
//! - `recover` tries the exclusive lock for a moment: if it gets it, no live process has the
//!   segment mapped (the kernel drops a dead process's locks) and nobody is creating it, so a
//!   stale or never-ready segment can be replaced. Re-checking that the name still refers to
//!   the same file (`fstat` of the descriptor against `stat` of the path) before `unlink`,
//!   and creating the replacement with `O_EXCL`, makes concurrent recoverers agree on one new
//!   segment: the losers attach to it. A process that opened the old file just before it was
//!   replaced finds its link count 0 once it has the shared lock, and opens the name again.
//!
//! **The creation mark.** A creator makes the file with the sticky bit (`S_ISVTX`) in its mode
//! and clears it once the segment is ready; shmring never sets it otherwise. `recover` (and
//! `unlink_if_stale`) replace a segment that never became ready only if it carries the mark:
//! an empty or zero-filled file someone else made is not shmring's to replace, nor is a FIFO,
//! a socket or a symbolic link (those are refused by every `open`, `IncompatibleSegment`).
//!
//! **Alone on a file.** An attacher that finds nobody else holding any lock on a ready
//! segment (its exclusive `flock` try succeeds) knows that no live process has it mapped.
//! That is the normal state of a durable channel between runs, and after a reboot the
//! semaphore mode's robust mutex may still hold the thread id of a holder that no longer
//! exists (no kernel marks it owner-died then). So that opener repairs it before anyone else
//! can attach: a claim recorded as pending becomes an abandoned record (as on `EOWNERDEAD`)
//! and the mutex is initialised anew (see [`Segment::repair_alone`]).

use std::time::{Duration, Instant};

use std::path::Path;

use crate::dir;
use crate::error::{Error, ErrorCode, Result};
use crate::fd::{Fd, last_os};
use crate::flush::{Flush, Flusher};
use crate::layout;
use crate::memory::Memory;
use crate::name::{Paths, check_regular, entry_kind, open_error, validate_name};
use crate::options::{Descriptor, OpenOptions, SyncMode};
use crate::process;
use crate::segment::{Invalid, Segment, map};
use crate::stale::{CREATING_MARK, Dead, INIT_WAIT, file_age, lock_holders};
use crate::sync::Ordering;

/// How long an attacher waits for a creator (or a recoverer) holding the exclusive lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How many times `recover` judges a segment again that looks stale once attached (a look by
/// `shmring ls` holds the shared lock for a moment, and may have made it look in use).
const RECOVER_RETRIES: u32 = 3;

/// How often `open` starts over when the name changes under it before it gives up.
const OPEN_ATTEMPTS: u32 = 64;

/// How long `open` waits for a remover that flagged a segment unlinked to remove its name,
/// before it removes the name itself (the remover died in between).
const UNLINK_GRACE: u32 = 50; // attempts, 1 ms apart

/// Removes the segment of `name` in the default directory ([`crate::default_dir`]); see
/// [`unlink_in`].
pub fn unlink(name: &str) -> Result<()> {
    remove(name, None)
}

/// Removes the segment of `name` in `dir` (`<dir>/shmring.<name>`). Participants still
/// attached to it notice: it is flagged unlinked ([`layout::FLAG_UNLINKED`]) and its doorbells
/// ring before the name goes, so their publishes fail with `Closed` and their readers get
/// `Closed` once they have drained what is left. A new `open` with `create` makes a new
/// segment under the name. A bad `dir` is refused as [`OpenOptions::dir`] says.
///
/// ```no_run
/// # fn main() -> shmring::Result<()> {
/// shmring::unlink_in(std::path::Path::new("/var/lib/myapp/channels"), "orders")?;
/// # Ok(()) }
/// ```
pub fn unlink_in(dir: &Path, name: &str) -> Result<()> {
    remove(name, Some(dir))
}

fn remove(name: &str, dir: Option<&Path>) -> Result<()> {
    validate_name(name)?;
    let dir = dir::resolve(dir)?;
    let paths = Paths::new(&dir, name);
    let unlink_name = |what: &str| {
        paths
            .unlink()
            .map_err(|err| Error::os(&format!("{what} channel {name:?} in {dir:?}"), err))
    };
    for _ in 0..OPEN_ATTEMPTS {
        let fd = match paths.open() {
            Ok(fd) => fd,
            // Not ours to open (another user's, mode 0600): remove the name only; the OS
            // decides whether we may.
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => return unlink_name("unlink"),
            // A symbolic link or a socket (which shm_open cannot open) under the name: remove
            // the entry itself (unlink(2) never follows a link).
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO))
                    && entry_kind(&paths.file)
                        .is_some_and(|m| m & libc::S_IFMT != libc::S_IFREG) =>
            {
                return unlink_name("unlink");
            }
            Err(e) => return Err(Error::os(&format!("unlink channel {name:?} in {dir:?}"), e)),
        };
        let st = fd.stat()?;
        mark_unlinked(&fd, st.st_size as u64);
        if paths.remove(&st)? {
            return Ok(());
        }
        // The name was given to another segment after we opened it: remove that one.
    }
    unlink_name("unlink")
}

/// Flags the segment open as `fd` unlinked and rings both doorbells, if it is a segment of
/// ours (a foreign or damaged file is left as it is).
fn mark_unlinked(fd: &Fd, size: u64) {
    if size < layout::HEADER_LEN as u64 {
        return;
    }
    let Ok(mem) = Memory::map(fd.0, layout::HEADER_LEN) else {
        return;
    };
    // SAFETY: 0 is 8-aligned and inside the HEADER_LEN bytes mapped.
    if unsafe { mem.u64_at(layout::MAGIC_OFFSET) }.load(Ordering::Relaxed) != layout::MAGIC {
        return;
    }
    // SYNC POINT: SeqCst, before the doorbells ring: a participant woken by them, or that
    // loads the flags later, sees the flag.
    // SAFETY: FLAGS_OFFSET is 4-aligned and inside the mapping.
    unsafe { mem.u32_at(layout::FLAGS_OFFSET) }.fetch_or(layout::FLAG_UNLINKED, Ordering::SeqCst);
    for off in [layout::DATA_SEQ_OFFSET, layout::SPACE_SEQ_OFFSET] {
        // SAFETY: both doorbells are 4-aligned words of the header, inside the mapping.
        let bell = unsafe { mem.u32_at(off) };
        bell.fetch_add(1, Ordering::Release);
        mem.futex_wake_all(bell);
    }
}

/// Refuses a segment owned by another user, unless the caller allows it.
fn check_owner(name: &str, st: &libc::stat, opts: &OpenOptions) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if st.st_uid != me && !opts.allow_foreign_owner {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            format!(
                "channel {name:?} belongs to uid {}, not to this process's uid {me}: its owner \
                 could rewrite it under us. Open it with allowForeignOwner (Rust: \
                 allow_foreign_owner) to use it anyway",
                st.st_uid
            ),
        ));
    }
    Ok(())
}

/// What `create` found.
enum Created {
    Yes(Box<Segment>),
    /// The name exists: attach.
    Exists,
    /// Our new file was replaced before we locked it: start over.
    Retry,
}

/// What `attach` found.
enum Attached {
    Yes(Segment),
    /// The file lost its name while we waited for its lock: open the name again.
    Gone,
    /// The segment is flagged unlinked; its name is about to go (or its remover died).
    Unlinked(libc::stat),
    /// It never became ready: its creator died while creating it.
    NeverReady(Error),
}

/// What `replace_if_dead` did.
enum Judged {
    /// The dead segment's name is gone: create anew.
    Replaced,
    /// The name changed meanwhile: open it again.
    Retry,
    /// Someone lives on it: attach as usual.
    InUse,
    /// It is damaged or foreign, so it cannot be judged: left alone (attaching reports why).
    Damaged(Error),
    /// It never became ready and lacks the creation mark: not provably shmring's, left alone.
    Unmarked(Error),
}

/// Appends to `e` why `recover` left the segment alone.
fn not_recovered(e: Error, who: &str) -> Error {
    Error::new(
        e.code(),
        format!(
            "{} (recover left it alone: it is not stale; {who})",
            e.message()
        ),
    )
}

/// "pid 1, pid 2".
fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| format!("pid {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Segment {
    /// Creates or attaches the segment of `name` according to `opts`.
    pub fn open(name: &str, opts: &OpenOptions) -> Result<Segment> {
        let mut seg = Self::open_segment(name, opts)?;
        seg.flush = opts.flush;
        if let (Flush::Every(every), Some(fd)) = (opts.flush, &seg.fd) {
            seg.flusher = Some(Flusher::start(fd.dup()?, name, every)?);
        }
        Ok(seg)
    }

    fn open_segment(name: &str, opts: &OpenOptions) -> Result<Segment> {
        validate_name(name)?;
        opts.validate()?;
        let dir = dir::resolve(opts.dir.as_deref())?;
        let paths = Paths::new(&dir, name);
        let mut unlinked_seen = 0;
        let mut rejudged = 0;
        // Bounded: each round starts over only because the name changed meanwhile.
        for _ in 0..OPEN_ATTEMPTS {
            if opts.creates() {
                match Self::create(name, &paths, opts)? {
                    Created::Yes(seg) => return Ok(*seg),
                    Created::Retry => continue,
                    Created::Exists if opts.exclusive && !opts.recover => {
                        return Err(Error::new(
                            ErrorCode::AlreadyExists,
                            format!("channel {name:?} already exists (exclusive create)"),
                        ));
                    }
                    Created::Exists => {}
                }
            }
            let fd = match paths.open() {
                Ok(fd) => fd,
                // Unlinked in between: create it, if we may.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && opts.creates() => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(Error::new(
                        ErrorCode::NotFound,
                        format!(
                            "no channel named {name:?} in {dir:?} (open it with create: true to \
                             make it)"
                        ),
                    ));
                }
                Err(e) => return Err(open_error(name, &paths, "open", e)),
            };
            let st = fd.stat()?;
            check_regular(name, &st)?;
            check_owner(name, &st, opts)?;
            if opts.recover {
                match Self::replace_if_dead(name, &paths, &fd, true)? {
                    Judged::Replaced | Judged::Retry => continue,
                    Judged::InUse | Judged::Damaged(_) => {}
                    Judged::Unmarked(e) => return Err(e),
                }
            }
            match Self::attach(name, &dir, fd, opts) {
                Ok(Attached::Yes(seg)) if opts.exclusive => {
                    return Err(Error::new(
                        ErrorCode::AlreadyExists,
                        format!(
                            "channel {name:?} already exists and is not stale, so recover did not \
                             replace it: {}",
                            seg.holders()
                        ),
                    ));
                }
                // Taken for in use, but nobody else has it now and its processes are dead: the
                // lock was held only for a moment (by `shmring ls`, say). Judge it again.
                Ok(Attached::Yes(seg))
                    if opts.recover
                        && rejudged < RECOVER_RETRIES
                        && seg.stale()
                        && !seg.locked_by_others() =>
                {
                    rejudged += 1;
                }
                Ok(Attached::Yes(seg)) => return Ok(seg),
                Ok(Attached::Gone) => {}
                // We waited for a creator that then died: judge the segment again (once more:
                // a segment whose recorded creator lives but holds no lock stays as it is).
                Ok(Attached::NeverReady(_)) if opts.recover && rejudged < RECOVER_RETRIES => {
                    rejudged += 1;
                }
                Ok(Attached::NeverReady(e)) if opts.recover => {
                    return Err(not_recovered(e, "its recorded creator is alive"));
                }
                Ok(Attached::NeverReady(e)) => return Err(e),
                Ok(Attached::Unlinked(st)) => {
                    // Its remover sets the flag just before it removes the name. If the name
                    // stays, the remover died in between: finish its work.
                    unlinked_seen += 1;
                    if unlinked_seen >= UNLINK_GRACE {
                        paths.remove(&st)?;
                    } else {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                Err(e) if opts.recover && e.code() != ErrorCode::Timeout => {
                    let who = match lock_holders(&st).as_slice() {
                        [] => "remove it with unlink".to_owned(),
                        pids => format!("held by {}", pid_list(pids)),
                    };
                    return Err(not_recovered(e, &who));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorCode::Io,
            format!("channel {name:?} kept appearing and vanishing while opening it"),
        ))
    }

    /// Creates the segment with `O_EXCL`, or reports that the name exists.
    fn create(name: &str, paths: &Paths, opts: &OpenOptions) -> Result<Created> {
        let fd = match paths.create(opts.mode as libc::mode_t | CREATING_MARK) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => return Ok(Created::Exists),
            Err(err) => return Err(dir::create_error(name, &paths.dir, err)),
        };
        // The exclusive lock says "being created" until the segment is ready. Only an
        // attacher looking at the empty file holds a (shared) lock on it, for a moment.
        if !fd.lock_within(libc::LOCK_EX, LOCK_WAIT)? {
            let _ = paths.remove(&fd.stat()?);
            return Err(Error::new(
                ErrorCode::Timeout,
                format!("another process held a lock on the new segment of channel {name:?}"),
            ));
        }
        let st = fd.stat()?;
        if st.st_nlink == 0 {
            // A recoverer took our empty, unlocked file for a dead creator's and replaced it.
            return Ok(Created::Retry);
        }
        Self::initialise(name, paths, fd, &st, opts).map(|seg| Created::Yes(Box::new(seg)))
    }

    fn initialise(
        name: &str,
        paths: &Paths,
        fd: Fd,
        st: &libc::stat,
        opts: &OpenOptions,
    ) -> Result<Segment> {
        let geometry = opts.geometry();
        let len = geometry.segment_len();
        let undo = |e: Error| {
            // We hold the exclusive lock: nobody else uses this half-made segment.
            let _ = paths.remove(st);
            e
        };
        // The exact mode regardless of the umask, with the creation mark until ready.
        // SAFETY: fd is open.
        if unsafe { libc::fchmod(fd.0, opts.mode as libc::mode_t | CREATING_MARK) } != 0 {
            return Err(undo(last_os("fchmod")));
        }
        // SAFETY: fd is open and writable.
        if unsafe { libc::ftruncate(fd.0, len as libc::off_t) } != 0 {
            return Err(undo(last_os(&format!(
                "size channel {name:?} to {len} bytes"
            ))));
        }
        // Reserve every page now: on a full tmpfs this fails here, instead of a SIGBUS on the
        // first touch of a page much later.
        // SAFETY: fd is open; the range is the file's length.
        let rc = unsafe { libc::posix_fallocate(fd.0, 0, len as libc::off_t) };
        if rc != 0 {
            let err = std::io::Error::from_raw_os_error(rc);
            let e = if rc == libc::ENOSPC {
                Error::new(
                    ErrorCode::NoSpace,
                    format!(
                        "{} has no room for channel {name:?} ({len} bytes); free space there \
                         or choose a smaller capacity",
                        paths.dir.display()
                    ),
                )
            } else {
                Error::os(&format!("reserve {len} bytes for channel {name:?}"), err)
            };
            return Err(undo(e));
        }
        let mem = map(&fd, len, &paths.dir).map_err(undo)?;
        let desc = Descriptor {
            geometry,
            kind: opts.kind.unwrap_or_default(),
            sync: opts.sync.unwrap_or_default(),
            policy: opts.policy.unwrap_or_default(),
            delivery: opts.delivery.unwrap_or_default(),
            ack_timeout_ms: opts.ack_timeout_ms.unwrap_or(0),
            mode: opts.mode,
            creator_pid: std::process::id(),
            creator_start_time: process::self_start_time(),
            created_at_ns: process::now_ns(),
            seq_key: process::random_u64() & !layout::record::STATE_MASK,
        };
        let mut seg = Segment::new(mem, name, true, desc, Some(fd));
        seg.dir = paths.dir.clone();
        seg.write_descriptor();
        if seg.desc.sync == SyncMode::Semaphore {
            crate::mutex::init(&seg).map_err(undo)?;
        }
        // SYNC POINT: Release pairs with the Acquire load in `validate`; every descriptor
        // field written above is visible to whoever sees READY.
        seg.u32_at(layout::READY_OFFSET)
            .store(layout::READY, Ordering::Release);
        // Ready: the creation mark goes (a recoverer judges a ready segment by its header).
        if let Some(fd) = &seg.fd {
            // SAFETY: fd is open.
            if unsafe { libc::fchmod(fd.0, opts.mode as libc::mode_t) } != 0 {
                return Err(undo(last_os("fchmod")));
            }
        }
        // Ready: from "being created" to "in use". Not atomic (the lock is dropped, then
        // taken shared), but whoever gets the exclusive lock in between finds the segment
        // ready, its creator alive, and leaves it alone.
        if let Some(fd) = &seg.fd {
            let _ = fd.lock_within(libc::LOCK_SH, LOCK_WAIT);
        }
        Ok(seg)
    }

    /// Attaches to the segment open as `fd`: waits (shared lock) while a creator initialises
    /// it, then validates it and checks the caller's options against it.
    ///
    /// If nobody else holds a lock on the file (our exclusive try succeeds), the segment is
    /// validated holding the exclusive lock, repaired ([`Segment::repair_alone`]) and the lock
    /// is then made shared: nobody attaches before the repair is done.
    fn attach(name: &str, dir: &Path, fd: Fd, opts: &OpenOptions) -> Result<Attached> {
        let started = Instant::now();
        let mut alone = None;
        if fd.try_lock(libc::LOCK_EX)? {
            let st = fd.stat()?;
            if st.st_nlink == 0 {
                return Ok(Attached::Gone);
            }
            if st.st_size >= layout::HEADER_LEN as i64 {
                alone = Some(st);
            } else {
                // Empty: a creator may be about to lock it; wait for it as below.
                fd.unlock();
            }
        }
        let is_alone = alone.is_some();
        let st = if let Some(st) = alone {
            st
        } else {
            loop {
                if !fd.lock_within(libc::LOCK_SH, LOCK_WAIT)? {
                    return Err(Error::new(
                        ErrorCode::Timeout,
                        format!(
                            "channel {name:?} was locked by its creator or by a recovering process \
                         for more than {LOCK_WAIT:?}"
                        ),
                    ));
                }
                let st = fd.stat()?;
                if st.st_nlink == 0 {
                    return Ok(Attached::Gone); // replaced or unlinked while we waited
                }
                // An empty file nobody holds exclusively: its creator is between its O_EXCL open
                // and its lock (two system calls), or died there. Give it a moment.
                if st.st_size == 0 && file_age(&st) < INIT_WAIT && started.elapsed() < INIT_WAIT {
                    fd.unlock();
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                break st;
            }
        };
        let seg = match Self::validate(name, dir, fd, &st) {
            Ok(seg) => seg,
            Err(Invalid::NeverReady(e, _, _)) => return Ok(Attached::NeverReady(e)),
            Err(Invalid::Other(e)) => return Err(e),
        };
        if seg.unlinked() {
            return Ok(Attached::Unlinked(st));
        }
        opts.check_against(name, &seg.desc)?;
        if is_alone && let Some(fd) = &seg.fd {
            seg.repair_alone()?;
            // From "alone" to "in use": `flock` converts our lock in place (POSIX does not
            // promise that is atomic; if another process got the exclusive lock in between, it
            // found a ready segment, and a recoverer that removed its name leaves it with no
            // link: we open the name again).
            if !fd.lock_within(libc::LOCK_SH, LOCK_WAIT)? {
                return Err(Error::new(
                    ErrorCode::Timeout,
                    format!("channel {name:?} was locked by a recovering process"),
                ));
            }
            if fd.stat()?.st_nlink == 0 {
                return Ok(Attached::Gone);
            }
        }
        Ok(Attached::Yes(seg))
    }

    /// `recover`: replaces the segment open as `fd` if it is dead. Holding the exclusive lock
    /// (so no live process has it mapped and nobody is creating it), it re-checks that the
    /// name still refers to this file, judges it, flags it unlinked and removes its name.
    ///
    /// With `keep_durable` (an `open` with `recover`), a ready segment on a disk filesystem
    /// that is merely stale is not dead: that is how a durable channel waits between runs.
    fn replace_if_dead(name: &str, paths: &Paths, fd: &Fd, keep_durable: bool) -> Result<Judged> {
        if !fd.try_lock(libc::LOCK_EX)? {
            return Ok(Judged::InUse);
        }
        let judged = (|| {
            let st = fd.stat()?;
            if st.st_nlink == 0 || !paths.names(&st) {
                return Ok(Judged::Retry);
            }
            match Self::is_dead(name, &paths.dir, fd, &st, keep_durable)? {
                Dead::No => return Ok(Judged::InUse),
                Dead::Damaged(e) => return Ok(Judged::Damaged(e)),
                Dead::Unmarked(e) => return Ok(Judged::Unmarked(e)),
                Dead::Yes => {}
            }
            mark_unlinked(fd, st.st_size as u64);
            Ok(if paths.remove(&st)? {
                Judged::Replaced
            } else {
                Judged::Retry
            })
        })();
        fd.unlock();
        judged
    }

    /// Removes `name` if it is dead (see [`OpenOptions::recover`]): stale, never ready, or
    /// flagged unlinked. Returns whether it did. A segment some process has mapped, or whose
    /// creator or a participant lives, is left alone (`false`); a damaged one is an error.
    pub(crate) fn unlink_if_dead(name: &str, dir: Option<&Path>) -> Result<bool> {
        validate_name(name)?;
        let dir = dir::resolve(dir)?;
        let paths = Paths::new(&dir, name);
        for _ in 0..OPEN_ATTEMPTS {
            let fd = match paths.open() {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(Error::new(
                        ErrorCode::NotFound,
                        format!("no channel named {name:?} in {dir:?}"),
                    ));
                }
                Err(e) => return Err(open_error(name, &paths, "open", e)),
            };
            let st = fd.stat()?;
            check_regular(name, &st)?;
            check_owner(name, &st, &OpenOptions::default())?;
            match Self::replace_if_dead(name, &paths, &fd, false)? {
                Judged::Replaced => return Ok(true),
                Judged::Retry => {}
                Judged::InUse => return Ok(false),
                Judged::Damaged(e) | Judged::Unmarked(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorCode::Io,
            format!("channel {name:?} kept appearing and vanishing while judging it"),
        ))
    }

    /// For an opener alone on a ready segment (see "Alone on a file" above): in semaphore
    /// mode, the pending claim becomes an abandoned record as on `EOWNERDEAD`
    /// (`ring::repair_pending`) and the mutex is initialised anew, since after a reboot its
    /// word may name a thread no kernel will mark owner-died. Lock-free mode needs nothing.
    pub(crate) fn repair_alone(&self) -> Result<()> {
        if self.desc.sync != SyncMode::Semaphore || cfg!(loom) {
            return Ok(());
        }
        crate::ring::repair_pending(self);
        crate::mutex::init(self)
    }
}
