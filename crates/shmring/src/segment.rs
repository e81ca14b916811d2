//! The shared-memory segment: create-or-attach, validation, typed access, unlink.
//!
//! A segment is `/dev/shm/shmring.<name>`, made with `shm_open` + `ftruncate` +
//! `posix_fallocate` (so a full `/dev/shm` is an error at creation, not a SIGBUS later) and
//! mapped whole with `mmap`. Creation is race-free: `O_CREAT | O_EXCL` picks one creator; every
//! other opener attaches and waits for the creator's `ready` word, written last.

use std::ffi::CString;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::layout::{self, Geometry};
use crate::memory::Memory;
use crate::options::{Kind, OpenOptions, Policy, SyncMode};
use crate::process;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// How long an attacher waits for a creator to finish sizing and initialising the segment.
const INIT_WAIT: Duration = Duration::from_millis(1000);

/// Longest channel name.
pub const MAX_NAME_LEN: usize = 200;

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

/// Removes the segment of `name`. Processes still attached keep their mapping.
pub fn unlink(name: &str) -> Result<()> {
    validate_name(name)?;
    let path = CString::new(shm_path(name)).expect("validated names have no NUL");
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::shm_unlink(path.as_ptr()) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::os(&format!("unlink channel {name:?}"), err));
    }
    Ok(())
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
    mem: Memory,
    name: String,
    created: bool,
    desc: Descriptor,
}

struct Fd(libc::c_int);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor; closing it once is sound.
        unsafe { libc::close(self.0) };
    }
}

fn last_os(what: &str) -> Error {
    Error::os(what, std::io::Error::last_os_error())
}

impl Segment {
    /// Creates or attaches the segment of `name` according to `opts`.
    pub fn open(name: &str, opts: &OpenOptions) -> Result<Segment> {
        validate_name(name)?;
        opts.validate()?;
        let path = CString::new(shm_path(name)).expect("validated names have no NUL");
        // Bounded retries: a segment can be unlinked between our failed O_EXCL and our attach.
        for _ in 0..16 {
            if opts.create {
                // SAFETY: valid C string; flags and mode are plain integers.
                let fd = unsafe {
                    libc::shm_open(
                        path.as_ptr(),
                        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                        opts.mode as libc::mode_t,
                    )
                };
                if fd >= 0 {
                    return Self::initialise(name, &path, Fd(fd), opts);
                }
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EEXIST) {
                    return Err(Error::os(&format!("create channel {name:?}"), err));
                }
                if opts.exclusive {
                    return Err(Error::new(
                        ErrorCode::AlreadyExists,
                        format!("channel {name:?} already exists (exclusive create)"),
                    ));
                }
            }
            // SAFETY: valid C string.
            let fd = unsafe { libc::shm_open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
            if fd >= 0 {
                return Self::attach(name, Fd(fd), opts);
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOENT) {
                if opts.create {
                    continue; // unlinked in between: try to create again
                }
                return Err(Error::new(
                    ErrorCode::NotFound,
                    format!("no channel named {name:?} (open it with create: true to make it)"),
                ));
            }
            return Err(Error::os(&format!("open channel {name:?}"), err));
        }
        Err(Error::new(
            ErrorCode::Io,
            format!("channel {name:?} kept appearing and vanishing while opening it"),
        ))
    }

    fn initialise(name: &str, path: &CString, fd: Fd, opts: &OpenOptions) -> Result<Segment> {
        let geometry = opts.geometry();
        let len = geometry.segment_len();
        let undo = |e: Error| {
            // SAFETY: valid C string; we created this name and nobody may use it half-made.
            unsafe { libc::shm_unlink(path.as_ptr()) };
            e
        };
        // SAFETY: fd is open; fchmod applies the exact mode regardless of the umask.
        if unsafe { libc::fchmod(fd.0, opts.mode as libc::mode_t) } != 0 {
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
        let seg = Segment {
            mem,
            name: name.to_owned(),
            created: true,
            desc,
        };
        seg.write_descriptor();
        if seg.desc.sync == SyncMode::Semaphore {
            crate::mutex::init(&seg).map_err(undo)?;
        }
        // SYNC POINT: Release pairs with the Acquire load in `attach`; every descriptor field
        // written above is visible to whoever sees READY.
        seg.u32_at(layout::READY_OFFSET)
            .store(layout::READY, Ordering::Release);
        Ok(seg)
    }

    /// A segment in a loom model instead of shared memory (see `memory.rs`).
    #[cfg(loom)]
    pub fn model(name: &str, opts: &OpenOptions) -> Result<Segment> {
        opts.validate()?;
        let geometry = opts.geometry();
        let seg = Segment {
            mem: Memory::new(geometry.segment_len(), geometry.data_offset()),
            name: name.to_owned(),
            created: true,
            desc: Descriptor {
                geometry,
                kind: opts.kind.unwrap_or_default(),
                sync: opts.sync.unwrap_or_default(),
                policy: opts.policy.unwrap_or_default(),
                mode: opts.mode,
                creator_pid: std::process::id(),
                creator_start_time: process::self_start_time(),
                created_at_ns: 0,
                seq_key: 0x5a5a_5a5a_5a5a_5a58,
            },
        };
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

    fn attach(name: &str, fd: Fd, opts: &OpenOptions) -> Result<Segment> {
        let corrupt = |msg: String| {
            Error::new(
                ErrorCode::CorruptSegment,
                format!("channel {name:?}: {msg}"),
            )
        };
        // The creator may still be between O_EXCL and ftruncate: give it a moment.
        let started = Instant::now();
        let size = loop {
            let size = file_size(&fd)?;
            if size >= layout::HEADER_LEN as u64 || started.elapsed() > INIT_WAIT {
                break size;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if size < layout::HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "segment is {size} bytes, shorter than the {}-byte header",
                layout::HEADER_LEN
            )));
        }
        let len = usize::try_from(size).map_err(|_| corrupt(format!("segment is {size} bytes")))?;
        let mem = map(&fd, len)?;
        // From here `seg` unmaps on every early return.
        let mut seg = Segment {
            mem,
            name: name.to_owned(),
            created: false,
            desc: Descriptor {
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
        };
        // A fresh segment is all zero until its creator writes the descriptor; anything else
        // without our magic is somebody else's file.
        let magic = seg.read_u64(layout::MAGIC_OFFSET);
        if magic != layout::MAGIC && magic != 0 {
            return Err(Error::new(
                ErrorCode::IncompatibleSegment,
                format!(
                    "channel {name:?} is not a shmring segment (magic {magic:#018x}, expected \
                     {:#018x})",
                    layout::MAGIC
                ),
            ));
        }
        seg.wait_ready(name)?;
        if seg.read_u64(layout::MAGIC_OFFSET) != layout::MAGIC {
            return Err(corrupt("ready flag set but the magic is missing".into()));
        }
        let version = seg.read_u32(layout::LAYOUT_VERSION_OFFSET);
        if version != layout::LAYOUT_VERSION {
            return Err(Error::new(
                ErrorCode::IncompatibleSegment,
                format!(
                    "channel {name:?} has layout version {version}, this build reads version {}",
                    layout::LAYOUT_VERSION
                ),
            ));
        }
        let header_len = seg.read_u32(layout::HEADER_LEN_OFFSET);
        if header_len as usize != layout::HEADER_LEN {
            return Err(corrupt(format!(
                "header length {header_len}, expected {}",
                layout::HEADER_LEN
            )));
        }
        let geometry = Geometry {
            capacity: seg.read_u64(layout::CAPACITY_OFFSET),
            max_message_size: seg.read_u32(layout::MAX_MESSAGE_SIZE_OFFSET),
            max_participants: seg.read_u32(layout::MAX_PARTICIPANTS_OFFSET),
        };
        geometry.validate().map_err(&corrupt)?;
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
                return Err(corrupt(format!("{what} is {got}, expected {want}")));
            }
        }
        if geometry.segment_len() != len {
            return Err(corrupt(format!(
                "header says {} bytes but the segment is {len} bytes",
                geometry.segment_len()
            )));
        }
        let kind = Kind::from_code(seg.read_u8(layout::KIND_OFFSET)).map_err(&corrupt)?;
        let sync = SyncMode::from_code(seg.read_u8(layout::SYNC_OFFSET)).map_err(&corrupt)?;
        let policy = Policy::from_code(seg.read_u8(layout::POLICY_OFFSET)).map_err(&corrupt)?;
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
        opts.check_against(name, &seg.desc)?;
        Ok(seg)
    }

    fn wait_ready(&self, name: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            // SYNC POINT: Acquire pairs with the creator's Release store of READY.
            if self.u32_at(layout::READY_OFFSET).load(Ordering::Acquire) == layout::READY {
                return Ok(());
            }
            if started.elapsed() > INIT_WAIT {
                return Err(Error::new(
                    ErrorCode::CorruptSegment,
                    format!(
                        "channel {name:?} never became ready (its creator may have died while \
                         creating it); remove it with unlink"
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
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

    /// Sleeps while the `u32` at `offset` holds `expected`, for at most `timeout`.
    pub(crate) fn futex_wait(&self, offset: usize, expected: u32, timeout: Option<Duration>) {
        self.mem.futex_wait(self.u32_at(offset), expected, timeout)
    }

    /// Wakes every sleeper on the `u32` at `offset`, in any process.
    pub(crate) fn futex_wake_all(&self, offset: usize) {
        self.mem.futex_wake_all(self.u32_at(offset))
    }
}

fn file_size(fd: &Fd) -> Result<u64> {
    // SAFETY: zeroed `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd.0, &mut st) } != 0 {
        return Err(last_os("fstat"));
    }
    Ok(st.st_size as u64)
}

fn map(fd: &Fd, len: usize) -> Result<Memory> {
    Memory::map(fd.0, len).map_err(|e| Error::os(&format!("mmap {len} bytes"), e))
}
