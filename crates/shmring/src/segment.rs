//! The shared-memory segment: create-or-attach, validation, typed access, unlink, recovery.
//!
//! A segment is `/dev/shm/shmring.<name>`, made with `shm_open` + `ftruncate` +
//! `posix_fallocate` (so a full `/dev/shm` is an error at creation, not a SIGBUS later) and
//! mapped whole with `mmap`. Creation is race-free: `O_CREAT | O_EXCL` picks one creator; every
//! other opener attaches.
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
//!   the same file (`fstat` of the descriptor against `stat` of the path) before `shm_unlink`,
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
//! **Removal while attached.** [`unlink`] sets [`layout::FLAG_UNLINKED`] in the header and
//! rings both doorbells before `shm_unlink`: participants still attached see it (one load per
//! publish and per drain) and report `Closed`, readers after draining what is left. A segment
//! removed from outside (`rm /dev/shm/shmring.x`: link count 0) or shrunk by `ftruncate` is
//! noticed with `fstat` on the kept descriptor at cheap points: before a wait sleeps in the
//! kernel and after every slice of its sleep (at least every [`FILE_CHECK_SLICE`]), at most
//! every [`FILE_CHECK_SLICE`] before a spin, on a producer's first publish, on every
//! [`FILE_CHECK_EVERY`]th publish and whenever its ring is full (both at most every
//! [`FILE_CHECK_BUSY`], so that a busy producer pays a clock read per 64 messages), on every
//! [`FILE_CHECK_EVERY`]th drain that finds nothing, and when a producer or subscriber is made.
//! A shrunk segment is never touched again: `CorruptSegment`.
//!
//! The window that remains: a process that is *busy* publishing or reading (or spinning)
//! while another process shrinks the file can touch a vanished page between two checks and
//! die of SIGBUS. Checking on every access would cost a system call per message. Only a process
//! with write access to the segment (its owner, given the default mode 0600) can shrink it,
//! and shmring never does.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64 as LocalU64};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::layout::{self, Geometry};
use crate::memory::Memory;
use crate::options::{Kind, OpenOptions, Policy, SyncMode};
use crate::process;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// How long an attacher waits for a creator that has made the name but not yet locked and
/// sized the file (two system calls apart), judged by the file's change time.
const INIT_WAIT: Duration = Duration::from_millis(1000);
/// How long an attacher waits for a creator (or a recoverer) holding the exclusive lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How many times `recover` judges a segment again that looks stale once attached (a look by
/// `shmring ls` holds the shared lock for a moment, and may have made it look in use).
const RECOVER_RETRIES: u32 = 3;
/// A waiting participant checks the segment file at least this often.
pub(crate) const FILE_CHECK_SLICE: Duration = Duration::from_millis(250);
/// Producers look at the clock on every this many publishes (and check the segment file if
/// [`FILE_CHECK_BUSY`] passed since the last check); readers check it on every this many
/// drains in a row that found nothing.
pub(crate) const FILE_CHECK_EVERY: u32 = 64;
/// A busy producer checks the segment file at most this often (its first publish always).
pub(crate) const FILE_CHECK_BUSY: Duration = Duration::from_millis(10);
/// How often `open` starts over when the name changes under it before it gives up.
const OPEN_ATTEMPTS: u32 = 64;
/// How long `open` waits for a remover that flagged a segment unlinked to remove its name,
/// before it removes the name itself (the remover died in between).
const UNLINK_GRACE: u32 = 50; // attempts, 1 ms apart

/// Process-local state of a [`Segment`]: the file shrank below our mapping.
const LOCAL_SHRUNK: u8 = 1;
/// Process-local state of a [`Segment`]: the file lost its name (link count 0).
const LOCAL_REMOVED: u8 = 2;

/// Longest channel name.
pub const MAX_NAME_LEN: usize = 200;

/// The mode bit that marks a segment under creation (see the module docs).
const CREATING_MARK: libc::mode_t = libc::S_ISVTX;

/// What kind of file `mode` says it is, for messages about entries that are not segments.
fn file_kind(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFIFO => "a FIFO (named pipe)",
        libc::S_IFSOCK => "a Unix socket",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFDIR => "a directory",
        libc::S_IFCHR | libc::S_IFBLK => "a device",
        _ => "not a regular file",
    }
}

/// `IncompatibleSegment` for a `/dev/shm` entry of `name` that is no file at all.
fn not_a_segment(name: &str, kind: &str) -> Error {
    Error::new(
        ErrorCode::IncompatibleSegment,
        format!(
            "channel {name:?} is {kind}, not a shmring segment (remove it with unlink or `shmring rm`)"
        ),
    )
}

/// The kind of the `/dev/shm` entry at `file` (not following a symbolic link), if any.
fn entry_kind(file: &std::ffi::CStr) -> Option<libc::mode_t> {
    // SAFETY: zeroed `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    (unsafe { libc::lstat(file.as_ptr(), &mut st) } == 0).then_some(st.st_mode)
}

/// The error of an `shm_open` of `name` that failed with `err`: a symbolic link (`ELOOP`:
/// shm_open never follows one), a socket (`ENXIO`) or a directory (`EISDIR`) is
/// `IncompatibleSegment`.
fn open_error(name: &str, paths: &Paths, what: &str, err: std::io::Error) -> Error {
    if matches!(
        err.raw_os_error(),
        Some(libc::ELOOP | libc::ENXIO | libc::EISDIR)
    ) && let Some(mode) = entry_kind(&paths.file)
        && mode & libc::S_IFMT != libc::S_IFREG
    {
        return not_a_segment(name, file_kind(mode));
    }
    Error::os(&format!("{what} channel {name:?}"), err)
}

/// `IncompatibleSegment` unless `st` is a regular file.
fn check_regular(name: &str, st: &libc::stat) -> Result<()> {
    if st.st_mode & libc::S_IFMT == libc::S_IFREG {
        Ok(())
    } else {
        Err(not_a_segment(name, file_kind(st.st_mode)))
    }
}

/// Checks a channel name: `[A-Za-z0-9._-]{1,200}`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars {
        let shown: String = name.chars().take(40).collect();
        return Err(Error::new(
            ErrorCode::InvalidName,
            format!(
                "channel name {shown:?} ({} bytes) must be 1 to {MAX_NAME_LEN} characters of \
                 A-Z a-z 0-9 . _ -",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// The `shm_open` name of a channel: `/shmring.<name>`.
pub fn shm_path(name: &str) -> String {
    format!("/shmring.{name}")
}

/// The `shm_open` name and the file path of a channel.
struct Paths {
    shm: CString,
    file: CString,
}

impl Paths {
    fn of(name: &str) -> Paths {
        Paths {
            shm: CString::new(shm_path(name)).expect("validated names have no NUL"),
            file: CString::new(format!("{}{}", crate::catalog::SHM_DIR, shm_path(name)))
                .expect("validated names have no NUL"),
        }
    }

    fn open(&self) -> std::io::Result<Fd> {
        // SAFETY: valid C string.
        let fd = unsafe { libc::shm_open(self.shm.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Fd(fd))
    }

    /// Whether the name still refers to the file `st` describes.
    fn names(&self, st: &libc::stat) -> bool {
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut now: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid C string and out-pointer.
        let rc = unsafe { libc::stat(self.file.as_ptr(), &mut now) };
        rc == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev
    }

    /// Removes the name if it still refers to the file `st` describes; returns whether the
    /// name no longer refers to that file (removed by us or by someone else just now).
    fn remove(&self, st: &libc::stat) -> Result<bool> {
        if !self.names(st) {
            return Ok(false);
        }
        // SAFETY: valid C string.
        if unsafe { libc::shm_unlink(self.shm.as_ptr()) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOENT) {
                return Ok(true);
            }
            return Err(Error::os("shm_unlink", err));
        }
        Ok(true)
    }
}

/// Removes the segment of `name`. Participants still attached to it notice: it is flagged
/// unlinked ([`layout::FLAG_UNLINKED`]) and its doorbells ring before the name goes, so their
/// publishes fail with `Closed` and their readers get `Closed` once they have drained what
/// is left. A new `open` with `create` makes a new segment under the name.
pub fn unlink(name: &str) -> Result<()> {
    validate_name(name)?;
    let paths = Paths::of(name);
    let unlink_name = |what: &str| {
        // SAFETY: valid C string.
        if unsafe { libc::shm_unlink(paths.shm.as_ptr()) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(Error::os(&format!("{what} channel {name:?}"), err));
        }
        Ok(())
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
                // SAFETY: valid C string.
                if unsafe { libc::unlink(paths.file.as_ptr()) } != 0 {
                    let err = std::io::Error::last_os_error();
                    return Err(Error::os(&format!("unlink channel {name:?}"), err));
                }
                return Ok(());
            }
            Err(e) => return Err(Error::os(&format!("unlink channel {name:?}"), e)),
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

/// A mapped segment. Unmapped on drop; the name stays until [`unlink`].
pub struct Segment {
    // Dropped in this order: the mapping goes before the descriptor (and its lock).
    mem: Memory,
    name: String,
    created: bool,
    desc: Descriptor,
    /// Our descriptor of the segment file (none in a loom model): it holds our shared lock
    /// for as long as the mapping lives, and answers the `fstat` checks.
    fd: Option<Fd>,
    /// What the file checks found (`LOCAL_*`); private to this process.
    local: AtomicU8,
    /// When the file was last checked (monotonic coarse clock, ms), for throttled checks.
    last_check_ms: LocalU64,
    /// Which participant slots this mapping's descriptor holds the lock of (see
    /// [`Segment::lock_slot`]); private to this process. A lock held through our own open
    /// file description is invisible to `F_OFD_GETLK` from it, so our own slots are told
    /// apart here; setting the flag first also keeps two participants of this process from
    /// taking one slot. In a loom model (no descriptor) these flags are the locks.
    held: Box<[AtomicBool]>,
}

struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor; closing it once is sound.
        unsafe { libc::close(self.0) };
    }
}

impl Fd {
    fn stat(&self) -> Result<libc::stat> {
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptor is open; `st` is a valid out-pointer.
        if unsafe { libc::fstat(self.0, &mut st) } != 0 {
            return Err(last_os("fstat"));
        }
        Ok(st)
    }

    /// `flock(op | LOCK_NB)`: whether the lock was granted.
    fn try_lock(&self, op: libc::c_int) -> Result<bool> {
        loop {
            // SAFETY: the descriptor is open.
            if unsafe { libc::flock(self.0, op | libc::LOCK_NB) } == 0 {
                return Ok(true);
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => return Ok(false),
                Some(libc::EINTR) => continue,
                _ => return Err(Error::os("flock", err)),
            }
        }
    }

    /// Tries for the lock until `wait` has passed; returns whether it was granted.
    fn lock_within(&self, op: libc::c_int, wait: Duration) -> Result<bool> {
        let started = Instant::now();
        let mut nap = Duration::from_micros(20);
        loop {
            if self.try_lock(op)? {
                return Ok(true);
            }
            if started.elapsed() >= wait {
                return Ok(false);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }

    fn unlock(&self) {
        // SAFETY: the descriptor is open; LOCK_UN cannot fail in a way we could act on.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }

    /// `fcntl(cmd, struct flock)` for an open-file-description lock on the one byte at
    /// `offset` (`F_OFD_SETLK` with `F_WRLCK` or `F_UNLCK`, or `F_OFD_GETLK`); returns the
    /// `flock` as the kernel left it. `Ok(None)`: `F_OFD_SETLK` found the byte locked by
    /// another open file description.
    fn ofd_lock(
        &self,
        cmd: libc::c_int,
        l_type: libc::c_int,
        offset: usize,
    ) -> Result<Option<libc::flock>> {
        // SAFETY: a zeroed `flock` is a valid value (l_pid must be 0 for OFD commands).
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = l_type as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = offset as libc::off_t;
        fl.l_len = 1;
        loop {
            // SAFETY: the descriptor is open; `fl` is a valid, writable `struct flock`.
            if unsafe { libc::fcntl(self.0, cmd, &mut fl) } == 0 {
                return Ok(Some(fl));
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EACCES) if cmd == libc::F_OFD_SETLK => return Ok(None),
                Some(libc::EINTR) => continue,
                _ => return Err(Error::os("fcntl(F_OFD_*)", err)),
            }
        }
    }

    /// A second descriptor of the same open file (and so of the same lock).
    fn dup(&self) -> Result<Fd> {
        // SAFETY: the descriptor is open; F_DUPFD_CLOEXEC returns a new one or -1.
        let fd = unsafe { libc::fcntl(self.0, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(last_os("dup"));
        }
        Ok(Fd(fd))
    }
}

/// One "we hold this slot's lock" flag per participant slot, all clear.
fn slot_flags(slots: u32) -> Box<[AtomicBool]> {
    (0..slots).map(|_| AtomicBool::new(false)).collect()
}

fn last_os(what: &str) -> Error {
    Error::os(what, std::io::Error::last_os_error())
}

/// How long ago the file's status last changed (creation, sizing, mode).
fn file_age(st: &libc::stat) -> Duration {
    let changed = Duration::new(
        st.st_ctime.max(0) as u64,
        st.st_ctime_nsec.clamp(0, 999_999_999) as u32,
    );
    Duration::from_nanos(process::now_ns()).saturating_sub(changed)
}

/// The monotonic coarse clock in milliseconds (no system call).
fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The pids, other than ours, holding a `flock` on the file `st` describes (from
/// `/proc/locks`; empty if it cannot be read).
fn lock_holders(st: &libc::stat) -> Vec<u32> {
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
    Yes(Segment),
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

/// What `is_dead` found.
enum Dead {
    Yes,
    No,
    /// Damaged or foreign: cannot be judged.
    Damaged(Error),
    /// Never ready and without the creation mark: not provably ours.
    Unmarked(Error),
}

/// Why a segment failed validation.
enum Invalid {
    /// It never became ready: its creator (pid and start time, if it wrote them) died while
    /// creating it.
    NeverReady(Error, u32, u64),
    /// Anything else.
    Other(Error),
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

impl Segment {
    /// Creates or attaches the segment of `name` according to `opts`.
    pub fn open(name: &str, opts: &OpenOptions) -> Result<Segment> {
        validate_name(name)?;
        opts.validate()?;
        let paths = Paths::of(name);
        let mut unlinked_seen = 0;
        let mut rejudged = 0;
        // Bounded: each round starts over only because the name changed meanwhile.
        for _ in 0..OPEN_ATTEMPTS {
            if opts.creates() {
                match Self::create(name, &paths, opts)? {
                    Created::Yes(seg) => return Ok(seg),
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
                        format!("no channel named {name:?} (open it with create: true to make it)"),
                    ));
                }
                Err(e) => return Err(open_error(name, &paths, "open", e)),
            };
            let st = fd.stat()?;
            check_regular(name, &st)?;
            check_owner(name, &st, opts)?;
            if opts.recover {
                match Self::replace_if_dead(name, &paths, &fd)? {
                    Judged::Replaced | Judged::Retry => continue,
                    Judged::InUse | Judged::Damaged(_) => {}
                    Judged::Unmarked(e) => return Err(e),
                }
            }
            match Self::attach(name, fd, opts) {
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
        // SAFETY: valid C string; flags and mode are plain integers.
        let fd = unsafe {
            libc::shm_open(
                paths.shm.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                opts.mode as libc::mode_t | CREATING_MARK,
            )
        };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EEXIST) {
                return Ok(Created::Exists);
            }
            return Err(Error::os(&format!("create channel {name:?}"), err));
        }
        let fd = Fd(fd);
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
        Self::initialise(name, paths, fd, &st, opts).map(Created::Yes)
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
                        "/dev/shm has no room for channel {name:?} ({len} bytes); free space \
                         there or choose a smaller capacity"
                    ),
                )
            } else {
                Error::os(&format!("reserve {len} bytes for channel {name:?}"), err)
            };
            return Err(undo(e));
        }
        let mem = map(&fd, len).map_err(undo)?;
        let desc = Descriptor {
            geometry,
            kind: opts.kind.unwrap_or_default(),
            sync: opts.sync.unwrap_or_default(),
            policy: opts.policy.unwrap_or_default(),
            mode: opts.mode,
            creator_pid: std::process::id(),
            creator_start_time: process::self_start_time(),
            created_at_ns: process::now_ns(),
            seq_key: process::random_u64() & !layout::record::STATE_MASK,
        };
        let seg = Segment::new(mem, name, true, desc, Some(fd));
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

    fn new(mem: Memory, name: &str, created: bool, desc: Descriptor, fd: Option<Fd>) -> Segment {
        Segment {
            mem,
            name: name.to_owned(),
            created,
            desc,
            fd,
            local: AtomicU8::new(0),
            last_check_ms: LocalU64::new(coarse_ms()),
            held: slot_flags(desc.geometry.max_participants),
        }
    }

    /// A segment in a loom model instead of shared memory (see `memory.rs`).
    #[cfg(loom)]
    pub fn model(name: &str, opts: &OpenOptions) -> Result<Segment> {
        opts.validate()?;
        let geometry = opts.geometry();
        let desc = Descriptor {
            geometry,
            kind: opts.kind.unwrap_or_default(),
            sync: opts.sync.unwrap_or_default(),
            policy: opts.policy.unwrap_or_default(),
            mode: opts.mode,
            creator_pid: std::process::id(),
            creator_start_time: process::self_start_time(),
            created_at_ns: 0,
            seq_key: 0x5a5a_5a5a_5a5a_5a58,
        };
        let mem = Memory::new(geometry.segment_len(), geometry.data_offset());
        let seg = Segment::new(mem, name, true, desc, None);
        seg.write_descriptor();
        seg.u32_at(layout::READY_OFFSET)
            .store(layout::READY, Ordering::Release);
        Ok(seg)
    }

    fn write_descriptor(&self) {
        let d = &self.desc;
        let g = &d.geometry;
        self.write_u64(layout::MAGIC_OFFSET, layout::MAGIC);
        self.write_u32(layout::LAYOUT_VERSION_OFFSET, layout::LAYOUT_VERSION);
        self.write_u32(layout::HEADER_LEN_OFFSET, layout::HEADER_LEN as u32);
        self.write_u32(layout::FLAGS_OFFSET, 0);
        self.write_u8(layout::KIND_OFFSET, d.kind as u8);
        self.write_u8(layout::SYNC_OFFSET, d.sync as u8);
        self.write_u8(layout::POLICY_OFFSET, d.policy as u8);
        self.write_u64(layout::CAPACITY_OFFSET, g.capacity);
        self.write_u32(layout::MAX_MESSAGE_SIZE_OFFSET, g.max_message_size);
        self.write_u32(layout::MAX_PARTICIPANTS_OFFSET, g.max_participants);
        self.write_u64(
            layout::PARTICIPANTS_OFFSET_OFFSET,
            g.participants_offset() as u64,
        );
        self.write_u64(layout::DATA_OFFSET_OFFSET, g.data_offset() as u64);
        self.write_u64(layout::SEGMENT_LEN_OFFSET, g.segment_len() as u64);
        self.write_u32(layout::CREATOR_PID_OFFSET, d.creator_pid);
        self.write_u32(layout::MODE_OFFSET, d.mode);
        self.write_u64(layout::CREATOR_START_TIME_OFFSET, d.creator_start_time);
        self.write_u64(layout::CREATED_AT_OFFSET, d.created_at_ns);
        self.write_u64(layout::SEQ_KEY_OFFSET, d.seq_key);
    }

    /// Attaches to the segment open as `fd`: waits (shared lock) while a creator initialises
    /// it, then validates it and checks the caller's options against it.
    fn attach(name: &str, fd: Fd, opts: &OpenOptions) -> Result<Attached> {
        let started = Instant::now();
        let st = loop {
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
        };
        let seg = match Self::validate(name, fd, &st) {
            Ok(seg) => seg,
            Err(Invalid::NeverReady(e, _, _)) => return Ok(Attached::NeverReady(e)),
            Err(Invalid::Other(e)) => return Err(e),
        };
        if seg.unlinked() {
            return Ok(Attached::Unlinked(st));
        }
        opts.check_against(name, &seg.desc)?;
        Ok(Attached::Yes(seg))
    }

    /// `recover`: replaces the segment open as `fd` if it is dead. Holding the exclusive lock
    /// (so no live process has it mapped and nobody is creating it), it re-checks that the
    /// name still refers to this file, judges it, flags it unlinked and removes its name.
    fn replace_if_dead(name: &str, paths: &Paths, fd: &Fd) -> Result<Judged> {
        if !fd.try_lock(libc::LOCK_EX)? {
            return Ok(Judged::InUse);
        }
        let judged = (|| {
            let st = fd.stat()?;
            if st.st_nlink == 0 || !paths.names(&st) {
                return Ok(Judged::Retry);
            }
            match Self::is_dead(name, fd, &st)? {
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

    /// Whether the segment open as `fd` (exclusively locked by us) is dead: flagged unlinked,
    /// stale (creator and every participant dead, by pid and start time), or never ready with
    /// its creator dead and the creation mark on it. A damaged or foreign segment, or a
    /// never-ready file without the mark (someone else's), is not judged dead.
    fn is_dead(name: &str, fd: &Fd, st: &libc::stat) -> Result<Dead> {
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
        Ok(match Self::validate(name, fd.dup()?, st) {
            Ok(seg) => yes(seg.unlinked() || seg.stale()),
            Err(Invalid::NeverReady(..)) if st.st_mode & CREATING_MARK == 0 => unmarked(),
            Err(Invalid::NeverReady(_, pid, start)) => yes(!process::is_alive(pid, start)),
            Err(Invalid::Other(e)) => Dead::Damaged(e),
        })
    }

    /// Removes `name` if it is dead (see [`OpenOptions::recover`]): stale, never ready, or
    /// flagged unlinked. Returns whether it did. A segment some process has mapped, or whose
    /// creator or a participant lives, is left alone (`false`); a damaged one is an error.
    pub(crate) fn unlink_if_dead(name: &str) -> Result<bool> {
        validate_name(name)?;
        let paths = Paths::of(name);
        for _ in 0..OPEN_ATTEMPTS {
            let fd = match paths.open() {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(Error::new(
                        ErrorCode::NotFound,
                        format!("no channel named {name:?}"),
                    ));
                }
                Err(e) => return Err(open_error(name, &paths, "open", e)),
            };
            let st = fd.stat()?;
            check_regular(name, &st)?;
            check_owner(name, &st, &OpenOptions::default())?;
            match Self::replace_if_dead(name, &paths, &fd)? {
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

    /// Creator and every participant are dead (pid and start time).
    pub(crate) fn stale(&self) -> bool {
        !process::is_alive(self.desc.creator_pid, self.desc.creator_start_time)
            && crate::registry::participants(self).iter().all(|p| !p.alive)
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
        for p in crate::registry::participants(self)
            .iter()
            .filter(|p| p.alive)
        {
            let role = match p.role {
                Some(crate::registry::Role::Producer) => "producer",
                Some(crate::registry::Role::Subscriber) => "subscriber",
                Some(crate::registry::Role::Consumer) => "consumer",
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

    /// Maps the segment open as `fd` (`st` its status) and validates everything in its header
    /// before any pointer into it is formed.
    fn validate(name: &str, fd: Fd, st: &libc::stat) -> std::result::Result<Segment, Invalid> {
        let corrupt = |msg: String| {
            Error::new(
                ErrorCode::CorruptSegment,
                format!("channel {name:?}: {msg}"),
            )
        };
        let size = st.st_size.max(0) as u64;
        if size < layout::HEADER_LEN as u64 {
            let e = corrupt(format!(
                "segment is {size} bytes, shorter than the {}-byte header{}",
                layout::HEADER_LEN,
                if size == 0 {
                    " (its creator died before sizing it: it never became ready)"
                } else {
                    ""
                }
            ));
            return Err(if size == 0 {
                Invalid::NeverReady(e, 0, 0)
            } else {
                Invalid::Other(e)
            });
        }
        let len = usize::try_from(size)
            .map_err(|_| Invalid::Other(corrupt(format!("segment is {size} bytes"))))?;
        let mem = map(&fd, len).map_err(Invalid::Other)?;
        // From here `seg` unmaps (and closes `fd`) on every early return.
        let mut seg = Segment::new(
            mem,
            name,
            false,
            Descriptor {
                geometry: Geometry {
                    capacity: 0,
                    max_message_size: 0,
                    max_participants: 0,
                },
                kind: Kind::Topic,
                sync: SyncMode::LockFree,
                policy: Policy::Block,
                mode: 0,
                creator_pid: 0,
                creator_start_time: 0,
                created_at_ns: 0,
                seq_key: 0,
            },
            Some(fd),
        );
        // A fresh segment is all zero until its creator writes the descriptor; anything else
        // without our magic is somebody else's file.
        let magic = seg.read_u64(layout::MAGIC_OFFSET);
        if magic != layout::MAGIC && magic != 0 {
            return Err(Invalid::Other(Error::new(
                ErrorCode::IncompatibleSegment,
                format!(
                    "channel {name:?} is not a shmring segment (magic {magic:#018x}, expected \
                     {:#018x})",
                    layout::MAGIC
                ),
            )));
        }
        // SYNC POINT: Acquire pairs with the creator's Release store of READY. Its creator
        // held the exclusive lock until then, and we hold the shared (or exclusive) lock: a
        // segment that is not ready now never will be.
        if seg.u32_at(layout::READY_OFFSET).load(Ordering::Acquire) != layout::READY {
            return Err(Invalid::NeverReady(
                corrupt(
                    "segment never became ready (its creator died while creating it); remove \
                     it with unlink, or open it with recover: true to replace it"
                        .into(),
                ),
                seg.read_u32(layout::CREATOR_PID_OFFSET),
                seg.read_u64(layout::CREATOR_START_TIME_OFFSET),
            ));
        }
        let other = |m: String| Invalid::Other(corrupt(m));
        if seg.read_u64(layout::MAGIC_OFFSET) != layout::MAGIC {
            return Err(other("ready flag set but the magic is missing".into()));
        }
        let version = seg.read_u32(layout::LAYOUT_VERSION_OFFSET);
        if version != layout::LAYOUT_VERSION {
            return Err(Invalid::Other(Error::new(
                ErrorCode::IncompatibleSegment,
                format!(
                    "channel {name:?} has layout version {version}, this build reads version {}",
                    layout::LAYOUT_VERSION
                ),
            )));
        }
        let header_len = seg.read_u32(layout::HEADER_LEN_OFFSET);
        if header_len as usize != layout::HEADER_LEN {
            return Err(other(format!(
                "header length {header_len}, expected {}",
                layout::HEADER_LEN
            )));
        }
        let geometry = Geometry {
            capacity: seg.read_u64(layout::CAPACITY_OFFSET),
            max_message_size: seg.read_u32(layout::MAX_MESSAGE_SIZE_OFFSET),
            max_participants: seg.read_u32(layout::MAX_PARTICIPANTS_OFFSET),
        };
        geometry.validate().map_err(other)?;
        let expect = [
            (
                "participants offset",
                layout::PARTICIPANTS_OFFSET_OFFSET,
                geometry.participants_offset(),
            ),
            (
                "data offset",
                layout::DATA_OFFSET_OFFSET,
                geometry.data_offset(),
            ),
            (
                "segment length",
                layout::SEGMENT_LEN_OFFSET,
                geometry.segment_len(),
            ),
        ];
        for (what, off, want) in expect {
            let got = seg.read_u64(off);
            if got != want as u64 {
                return Err(other(format!("{what} is {got}, expected {want}")));
            }
        }
        if geometry.segment_len() != len {
            return Err(other(format!(
                "header says {} bytes but the segment is {len} bytes",
                geometry.segment_len()
            )));
        }
        // Positions only grow, from 0, by multiples of 8, and never get near MAX_POSITION: a
        // larger or unaligned one is damage. Refusing it here keeps every position sum below
        // 2^63 and every record header aligned.
        let positions = [
            ("tail", layout::TAIL_OFFSET),
            ("head cache", layout::HEAD_CACHE_OFFSET),
            ("queue head", layout::QUEUE_HEAD_OFFSET),
            ("latest", layout::LATEST_OFFSET),
            ("pending position", layout::PENDING_POS_OFFSET),
            ("pending length", layout::PENDING_LEN_OFFSET),
            ("pending start", layout::PENDING_START_OFFSET),
        ];
        for (what, off) in positions {
            let v = seg.u64_at(off).load(Ordering::Acquire);
            if v >= layout::MAX_POSITION {
                return Err(other(format!(
                    "{what} {v} is beyond the largest position (2^62): the header is damaged"
                )));
            }
            if !v.is_multiple_of(layout::record::ALIGN as u64) {
                return Err(other(format!(
                    "{what} {v} is not a multiple of {}: the header is damaged",
                    layout::record::ALIGN
                )));
            }
        }
        let kind = Kind::from_code(seg.read_u8(layout::KIND_OFFSET)).map_err(other)?;
        let sync = SyncMode::from_code(seg.read_u8(layout::SYNC_OFFSET)).map_err(other)?;
        let policy = Policy::from_code(seg.read_u8(layout::POLICY_OFFSET)).map_err(other)?;
        if policy == Policy::Overwrite && kind == Kind::Queue {
            return Err(other("policy overwrite on a queue".into()));
        }
        seg.desc = Descriptor {
            geometry,
            kind,
            sync,
            policy,
            mode: seg.read_u32(layout::MODE_OFFSET),
            creator_pid: seg.read_u32(layout::CREATOR_PID_OFFSET),
            creator_start_time: seg.read_u64(layout::CREATOR_START_TIME_OFFSET),
            created_at_ns: seg.read_u64(layout::CREATED_AT_OFFSET),
            seq_key: seg.read_u64(layout::SEQ_KEY_OFFSET),
        };
        seg.held = slot_flags(geometry.max_participants);
        Ok(seg)
    }

    /// Takes the lock of participant slot `i` (see docs/LAYOUT.md, "Participant slots"):
    /// an open-file-description write lock on the slot's first byte of the segment file,
    /// which the kernel drops when the owner dies, whatever its PID namespace or user.
    /// `Ok(false)`: a live participant holds it (one of ours, or another process's).
    pub(crate) fn lock_slot(&self, i: u32) -> Result<bool> {
        let held = &self.held[i as usize];
        // Acquire/Release: orders our flag with the previous holder's unlock in this process.
        if held
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Ok(false);
        }
        let Some(fd) = &self.fd else {
            return Ok(true); // a loom model: the flag is the lock
        };
        let offset = self.desc.geometry.slot_offset(i);
        match fd.ofd_lock(libc::F_OFD_SETLK, libc::F_WRLCK, offset) {
            Ok(Some(_)) => Ok(true),
            other => {
                held.store(false, Ordering::Release);
                other.map(|_| false)
            }
        }
    }

    /// Drops the lock of participant slot `i`, taken with [`Segment::lock_slot`]. The slot's
    /// state must already be `FREE` (or someone else's) when this is called: a slot that is
    /// not free and not locked is a dead owner's.
    pub(crate) fn unlock_slot(&self, i: u32) {
        let held = &self.held[i as usize];
        if !held.load(Ordering::Acquire) {
            return;
        }
        if let Some(fd) = &self.fd {
            let offset = self.desc.geometry.slot_offset(i);
            // Unlocking a byte we hold cannot fail in a way we could act on; a failure leaves
            // the slot looking alive until this process exits (never taken from a live one).
            let _ = fd.ofd_lock(libc::F_OFD_SETLK, libc::F_UNLCK, offset);
        }
        // After the unlock: a participant of ours that grabs the slot next takes the lock anew.
        held.store(false, Ordering::Release);
    }

    /// Whether a live process holds the lock of participant slot `i` (this one included).
    /// If the lock cannot be asked about (never on tmpfs), the slot's pid and start time
    /// decide, as a fallback.
    pub(crate) fn slot_owner_alive(&self, i: u32) -> bool {
        if self.held[i as usize].load(Ordering::Acquire) {
            return true;
        }
        let Some(fd) = &self.fd else {
            return false; // a loom model: only the flags lock
        };
        let offset = self.desc.geometry.slot_offset(i);
        match fd.ofd_lock(libc::F_OFD_GETLK, libc::F_WRLCK, offset) {
            Ok(Some(fl)) => fl.l_type != libc::F_UNLCK as libc::c_short,
            _ => {
                let field = |f: usize| self.desc.geometry.slot_offset(i) + f;
                let pid = self
                    .u32_at(field(layout::slot::PID))
                    .load(Ordering::Relaxed);
                let start = self
                    .u64_at(field(layout::slot::START_TIME))
                    .load(Ordering::Relaxed);
                process::is_alive(pid, start)
            }
        }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this handle created the segment.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The settings stored in the header.
    pub fn descriptor(&self) -> &Descriptor {
        &self.desc
    }

    #[inline]
    fn check(&self, offset: usize, size: usize) {
        // Offsets come from layout constants or are masked into the data area; this holds
        // unless the code itself is wrong, so it is checked in every build.
        let len = self.mem.len();
        assert!(
            offset.is_multiple_of(size.min(8)) && offset + size <= len,
            "offset {offset} (+{size}) out of the {len}-byte segment"
        );
    }

    /// The `u64` atomic at `offset`.
    #[inline]
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8);
        // SAFETY: in bounds and 8-aligned (checked above).
        unsafe { self.mem.u64_at(offset) }
    }

    /// The `u32` atomic at `offset`.
    #[inline]
    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 4);
        // SAFETY: in bounds and 4-aligned (checked above).
        unsafe { self.mem.u32_at(offset) }
    }

    fn read_u64(&self, offset: usize) -> u64 {
        self.u64_at(offset).load(Ordering::Relaxed)
    }
    fn read_u32(&self, offset: usize) -> u32 {
        self.u32_at(offset).load(Ordering::Relaxed)
    }
    fn read_u8(&self, offset: usize) -> u8 {
        let mut b = [0u8];
        self.read_bytes(offset, &mut b);
        b[0]
    }
    fn write_u64(&self, offset: usize, v: u64) {
        self.u64_at(offset).store(v, Ordering::Relaxed)
    }
    fn write_u32(&self, offset: usize, v: u32) {
        self.u32_at(offset).store(v, Ordering::Relaxed)
    }
    fn write_u8(&self, offset: usize, v: u8) {
        self.write_bytes(offset, &[v]);
    }

    /// The semaphore mode's mutex.
    #[cfg(not(loom))]
    pub(crate) fn mutex_ptr(&self) -> *mut libc::pthread_mutex_t {
        self.check(layout::MUTEX_OFFSET, layout::MUTEX_LEN);
        // SAFETY: in bounds (checked above); the creator initialised a mutex there.
        unsafe { self.mem.ptr(layout::MUTEX_OFFSET).cast() }
    }

    /// Copies `src` into the segment at `offset`.
    #[inline]
    pub(crate) fn write_bytes(&self, offset: usize, src: &[u8]) {
        assert!(offset + src.len() <= self.mem.len(), "write out of bounds");
        // SAFETY: the range is inside the mapping (checked above); the ring protocol gives
        // this producer exclusive use of it until its commit store.
        unsafe { self.mem.write_bytes(offset, src) };
    }

    /// Copies `dst.len()` bytes at `offset` out of the segment.
    #[inline]
    pub(crate) fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        assert!(offset + dst.len() <= self.mem.len(), "read out of bounds");
        // SAFETY: the range is inside the mapping (checked above); see `Memory::read_bytes`.
        unsafe { self.mem.read_bytes(offset, dst) };
    }

    /// Checks a position read from shared memory (`tail`, a cursor, the queue head,
    /// `latest`): honest processes only ever write multiples of 8 below
    /// [`layout::MAX_POSITION`]; anything else was written by a damaged or hostile process
    /// (`CorruptSegment`), and would misalign a record header or overflow position sums.
    #[inline]
    pub(crate) fn check_position(&self, what: &str, pos: u64) -> Result<()> {
        if pos < layout::MAX_POSITION && pos.is_multiple_of(layout::record::ALIGN as u64) {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::CorruptSegment,
            format!(
                "channel {:?}: {what} {pos} is not a position (unaligned or beyond 2^62):                  another process damaged the segment",
                self.name
            ),
        ))
    }

    /// Whether the header's flags say the segment was unlinked.
    fn unlinked(&self) -> bool {
        // Not modelled under loom (nothing unlinks a model; the load would only add states).
        // Relaxed: a hint; `unlink` rings the doorbells after setting it, and the drain that
        // decides `Closed` runs after this load.
        !cfg!(loom)
            && self.u32_at(layout::FLAGS_OFFSET).load(Ordering::Acquire) & layout::FLAG_UNLINKED
                != 0
    }

    /// Checks the segment file with one `fstat` on our descriptor: shrunk below our mapping
    /// (`CorruptSegment`, and the mapping is never touched again), removed from `/dev/shm`
    /// (`Closed`), or flagged unlinked (`Closed`).
    pub(crate) fn check_file(&self) -> Result<()> {
        if let Some(fd) = &self.fd
            && self.local.load(Ordering::Relaxed) & LOCAL_SHRUNK == 0
            && let Ok(st) = fd.stat()
        {
            self.last_check_ms.store(coarse_ms(), Ordering::Relaxed);
            if (st.st_size.max(0) as u64) < self.mem.len() as u64 {
                self.local.fetch_or(LOCAL_SHRUNK, Ordering::Relaxed);
            } else if st.st_nlink == 0 {
                self.local.fetch_or(LOCAL_REMOVED, Ordering::Relaxed);
            }
        }
        self.check_flags()
    }

    /// What the file checks found so far, then the header's unlinked flag: no system call.
    pub(crate) fn check_flags(&self) -> Result<()> {
        let local = self.local.load(Ordering::Relaxed);
        if local & LOCAL_SHRUNK != 0 {
            return Err(Error::new(
                ErrorCode::CorruptSegment,
                format!(
                    "channel {:?}: its segment file shrank below the {} bytes mapped (another \
                     process truncated it); the channel cannot be used any more: unlink it and \
                     create it again",
                    self.name,
                    self.mem.len()
                ),
            ));
        }
        if local & LOCAL_REMOVED != 0 {
            return Err(Error::new(
                ErrorCode::Closed,
                format!(
                    "channel {:?} was removed from {} by another process; open it again to \
                     reach a new channel of that name",
                    self.name,
                    crate::catalog::SHM_DIR
                ),
            ));
        }
        if self.unlinked() {
            return Err(Error::new(
                ErrorCode::Closed,
                format!(
                    "channel {:?} was unlinked; open it again to reach a new channel of that name",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// As [`Segment::check_file`] if the file was not checked for [`FILE_CHECK_SLICE`], else
    /// as [`Segment::check_flags`] (a clock read, no system call).
    pub(crate) fn check_file_now_and_then(&self) -> Result<()> {
        self.check_file_after(FILE_CHECK_SLICE)
    }

    /// As [`Segment::check_file`] if the file was not checked for `gap`, else as
    /// [`Segment::check_flags`].
    fn check_file_after(&self, gap: Duration) -> Result<()> {
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if coarse_ms().saturating_sub(last) >= gap.as_millis() as u64 {
            self.check_file()
        } else {
            self.check_flags()
        }
    }

    /// A producer's check before each publish (`count` counts them): the file on its first
    /// publish; on every [`FILE_CHECK_EVERY`]th one, the file if it was not checked for
    /// [`FILE_CHECK_BUSY`]; else the flags (two loads).
    #[inline]
    pub(crate) fn check_publish(&self, count: &mut u32) -> Result<()> {
        let r = if *count == 0 {
            self.check_file()
        } else if count.is_multiple_of(FILE_CHECK_EVERY) {
            self.check_file_after(FILE_CHECK_BUSY)
        } else {
            self.check_flags()
        };
        *count = count.wrapping_add(1).max(1);
        r
    }

    /// A producer's check when its ring is full (it may poll a full ring in a loop): the file
    /// if it was not checked for [`FILE_CHECK_BUSY`].
    pub(crate) fn check_full(&self) -> Result<()> {
        self.check_file_after(FILE_CHECK_BUSY)
    }

    /// A reader's check before each drain: `CorruptSegment` if the file shrank (checked with
    /// `fstat` after every [`FILE_CHECK_EVERY`]th drain in a row that found nothing, `idle`
    /// counting them); otherwise whether the segment was unlinked or removed, in which case a
    /// drain that then finds nothing reports [`Segment::closed_error`].
    #[inline]
    pub(crate) fn check_drain(&self, idle: u32) -> Result<bool> {
        let r = if idle % FILE_CHECK_EVERY == FILE_CHECK_EVERY - 1 {
            self.check_file()
        } else {
            self.check_flags()
        };
        match r {
            Ok(()) => Ok(false),
            Err(e) if e.code() == ErrorCode::Closed => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The error of an unlinked or removed segment that has nothing left to read.
    pub(crate) fn closed_error(&self) -> Error {
        match self.check_flags() {
            Err(e) => e,
            Ok(()) => Error::new(
                ErrorCode::Closed,
                format!("channel {:?} is closed", self.name),
            ),
        }
    }

    /// Whether the segment is finished for this process (shrunk, removed or unlinked), so a
    /// waiter should stop waiting and let the caller meet the error.
    #[inline]
    pub(crate) fn finished(&self) -> bool {
        self.local.load(Ordering::Relaxed) != 0 || self.unlinked()
    }

    /// Whether the file shrank below our mapping: nothing in it may be touched any more.
    #[inline]
    pub(crate) fn shrunk(&self) -> bool {
        self.local.load(Ordering::Relaxed) & LOCAL_SHRUNK != 0
    }

    /// Sleeps while the `u32` at `offset` holds `expected`, for at most `timeout`. Wakes at
    /// least every [`FILE_CHECK_SLICE`] to check the segment file, and returns early if it
    /// shrank, lost its name or was flagged unlinked. Returns when woken, when the value
    /// differs, or at the timeout; callers re-check.
    /// `bits` are the sleeper's wake bits (see `futex::futex_wait_bits`): a
    /// [`Segment::futex_wake_bits`] wakes it only if they meet; every plain wake does.
    pub(crate) fn futex_wait_bits(
        &self,
        offset: usize,
        expected: u32,
        timeout: Option<Duration>,
        bits: u32,
    ) {
        if cfg!(loom) {
            return self
                .mem
                .futex_wait_bits(self.u32_at(offset), expected, timeout, bits);
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let nap = match deadline {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .min(FILE_CHECK_SLICE),
                None => FILE_CHECK_SLICE,
            };
            self.mem
                .futex_wait_bits(self.u32_at(offset), expected, Some(nap), bits);
            if self.check_file().is_err()
                || self.u32_at(offset).load(Ordering::Acquire) != expected
                || deadline.is_some_and(|d| Instant::now() >= d)
            {
                return;
            }
        }
    }

    /// Wakes every sleeper on the `u32` at `offset`, in any process.
    pub(crate) fn futex_wake_all(&self, offset: usize) {
        self.mem.futex_wake_all(self.u32_at(offset))
    }

    /// Wakes the sleepers on the `u32` at `offset` whose wake bits meet `bits`, in any process.
    pub(crate) fn futex_wake_bits(&self, offset: usize, bits: u32) {
        self.mem.futex_wake_bits(self.u32_at(offset), bits)
    }
}

/// "pid 1, pid 2".
fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| format!("pid {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn map(fd: &Fd, len: usize) -> Result<Memory> {
    Memory::map(fd.0, len).map_err(|e| Error::os(&format!("mmap {len} bytes"), e))
}
