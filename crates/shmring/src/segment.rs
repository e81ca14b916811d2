//! The shared-memory segment as mapped bytes: the mapping, validation of the header on attach
//! (before any pointer is formed), typed access to its words and bytes, the participant
//! slots' locks, and futex waits on its words. Opening, creating, attaching, recovering and
//! removing a segment are in `lifecycle.rs`; the checks of the file under a mapping in
//! `filecheck.rs`.

#[cfg(loom)]
use crate::sync::AtomicU32 as LocalU32;
use std::path::{Path, PathBuf};
#[cfg(not(loom))]
use std::sync::atomic::AtomicU32 as LocalU32;
use std::sync::atomic::{AtomicU8, AtomicU64 as LocalU64};

use crate::barrier::Barrier;
use crate::error::{Error, ErrorCode, Result};
use crate::fd::Fd;
use crate::flush::{Flush, Flusher};
use crate::layout::{self, Geometry};
use crate::memory::Memory;
#[cfg(loom)]
use crate::options::OpenOptions;
use crate::options::{Delivery, Descriptor, Kind, Policy, SyncMode};
use crate::process;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// A mapped segment. Unmapped on drop; the name stays until [`unlink`](crate::unlink).
pub struct Segment {
    // Dropped in this order: the flusher stops first (it has a descriptor of its own), the
    // mapping goes before our descriptor (and its lock).
    /// This handle's flusher thread (`flush: Flush::Every`), if any.
    pub(crate) flusher: Option<Flusher>,
    pub(crate) mem: Memory,
    pub(crate) name: String,
    pub(crate) created: bool,
    pub(crate) desc: Descriptor,
    /// Our descriptor of the segment file (none in a loom model): it holds our shared lock
    /// for as long as the mapping lives, and answers the `fstat` checks.
    pub(crate) fd: Option<Fd>,
    /// What the file checks found (`LOCAL_*`); private to this process.
    pub(crate) local: AtomicU8,
    /// When the file was last checked (monotonic coarse clock, ms), for throttled checks.
    pub(crate) last_check_ms: LocalU64,
    /// Which participant slots this mapping's descriptor holds the lock of (see
    /// [`Segment::lock_slot`]), as the pid of the process that took each (0: not held);
    /// private to this process. A lock held through our own open file description is
    /// invisible to `F_OFD_GETLK` from it, so our own slots are told apart here; taking the
    /// entry first also keeps two participants of this process from taking one slot. A child
    /// forked without `exec` inherits the entries and the locks (its slots stay alive while
    /// it runs) but, its pid differing, never releases its parent's. In a loom model (no
    /// descriptor) these entries are the locks: loom atomics there, so the model sees the
    /// ordering a real lock's system calls give (a dead owner's stores are visible to whoever
    /// finds its lock gone).
    pub(crate) held: Box<[LocalU32]>,
    /// The directory of the segment file (see `dir.rs`).
    pub(crate) dir: PathBuf,
    /// This handle's flush setting (see `flush.rs`); not stored in the segment.
    pub(crate) flush: Flush,
    /// Serialises this process's threads around the names lock ([`Segment::lock_names`]):
    /// an OFD lock is one per open file description, so it cannot tell our threads apart.
    pub(crate) names: std::sync::Mutex<()>,
    /// What this process's `membarrier(2)` allows, for the readers' doorbell (see
    /// `barrier.rs`).
    pub(crate) barrier: Barrier,
    /// The pid of the process whose producer of this handle is the channel's exclusive one,
    /// else 0 (see `ring/producer/exclusive.rs`): refuses a second one on this handle before
    /// any file is opened, and is the lock itself in a loom model.
    pub(crate) exclusive_producer: LocalU32,
}

/// One "who of us holds this slot's lock" entry per participant slot, all clear.
fn slot_flags(slots: u32) -> Box<[LocalU32]> {
    (0..slots).map(|_| LocalU32::new(0)).collect()
}

/// Why a segment failed validation.
pub(crate) enum Invalid {
    /// It never became ready: its creator (pid and start time, if it wrote them) died while
    /// creating it.
    NeverReady(Error, u32, u64),
    /// Anything else.
    Other(Error),
}

/// Maps `len` bytes of the segment file open as `fd`, in `dir` (named in the error).
pub(crate) fn map(fd: &Fd, len: usize, dir: &Path) -> Result<Memory> {
    Memory::map(fd.0, len).map_err(|e| crate::dir::map_error(dir, len, e))
}

/// The names lock, held until dropped ([`Segment::lock_names`]).
pub(crate) struct NamesGuard<'a> {
    seg: &'a Segment,
    _local: std::sync::MutexGuard<'a, ()>,
}

impl Drop for NamesGuard<'_> {
    fn drop(&mut self) {
        if let Some(fd) = &self.seg.fd {
            // Unlocking a byte we hold cannot fail in a way we could act on.
            let _ = fd.ofd_lock(libc::F_OFD_SETLK, libc::F_UNLCK, layout::NAMES_LOCK_OFFSET);
        }
    }
}

impl Segment {
    pub(crate) fn new(
        mem: Memory,
        name: &str,
        created: bool,
        desc: Descriptor,
        fd: Option<Fd>,
    ) -> Segment {
        Segment {
            flusher: None,
            mem,
            name: name.to_owned(),
            created,
            desc,
            fd,
            local: AtomicU8::new(0),
            last_check_ms: LocalU64::new(process::coarse_ms()),
            held: slot_flags(desc.geometry.max_participants),
            dir: PathBuf::new(),
            flush: Flush::Os,
            names: std::sync::Mutex::new(()),
            barrier: Barrier::for_process(),
            exclusive_producer: LocalU32::new(0),
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
            delivery: opts.delivery.unwrap_or_default(),
            ack_timeout_ms: opts.ack_timeout_ms.unwrap_or(0),
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

    pub(crate) fn write_descriptor(&self) {
        let d = &self.desc;
        let g = &d.geometry;
        self.write_u64(layout::MAGIC_OFFSET, layout::MAGIC);
        self.write_u32(layout::LAYOUT_VERSION_OFFSET, layout::LAYOUT_VERSION);
        self.write_u32(layout::HEADER_LEN_OFFSET, layout::HEADER_LEN as u32);
        self.write_u32(layout::FLAGS_OFFSET, 0);
        self.write_u8(layout::KIND_OFFSET, d.kind as u8);
        self.write_u8(layout::SYNC_OFFSET, d.sync as u8);
        self.write_u8(layout::POLICY_OFFSET, d.policy as u8);
        self.write_u8(layout::DELIVERY_OFFSET, d.delivery as u8);
        self.write_u32(layout::ACK_TIMEOUT_OFFSET, d.ack_timeout_ms);
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

    /// Maps the segment open as `fd` (`st` its status, `dir` its directory) and validates
    /// everything in its header before any pointer into it is formed. The file's size is
    /// checked against the header's `segment_len` before anything past the header is read:
    /// a truncated file is `CorruptSegment`, never a SIGBUS.
    pub(crate) fn validate(
        name: &str,
        dir: &Path,
        fd: Fd,
        st: &libc::stat,
    ) -> std::result::Result<Segment, Invalid> {
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
        let mem = map(&fd, len, dir).map_err(Invalid::Other)?;
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
                delivery: Delivery::AtMostOnce,
                ack_timeout_ms: 0,
                mode: 0,
                creator_pid: 0,
                creator_start_time: 0,
                created_at_ns: 0,
                seq_key: 0,
            },
            Some(fd),
        );
        seg.dir = dir.to_path_buf();
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
        let delivery = Delivery::from_code(seg.read_u8(layout::DELIVERY_OFFSET)).map_err(other)?;
        if delivery == Delivery::AtLeastOnce && kind != Kind::Queue {
            return Err(other("delivery at-least-once on a topic".into()));
        }
        seg.desc = Descriptor {
            geometry,
            kind,
            sync,
            policy,
            delivery,
            ack_timeout_ms: seg.read_u32(layout::ACK_TIMEOUT_OFFSET),
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
        // Acquire/Release: orders our entry with the previous holder's unlock in this process.
        if held
            .compare_exchange(0, std::process::id(), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Ok(false);
        }
        let Some(fd) = &self.fd else {
            return Ok(true); // a loom model: the entry is the lock
        };
        let offset = self.desc.geometry.slot_offset(i);
        match fd.ofd_lock(libc::F_OFD_SETLK, libc::F_WRLCK, offset) {
            Ok(Some(_)) => Ok(true),
            other => {
                held.store(0, Ordering::Release);
                other.map(|_| false)
            }
        }
    }

    /// Takes the names lock (see [`layout::NAMES_LOCK_OFFSET`]), waiting for another process
    /// or thread holding it: named subscribers join, leave and are removed under it, which
    /// takes a few loads and stores, so nobody waits long. A holder that dies drops it.
    pub(crate) fn lock_names(&self) -> Result<NamesGuard<'_>> {
        // A panicking holder left nothing half done that the lock protects: ignore poison.
        let local = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fd) = &self.fd {
            fd.ofd_lock(libc::F_OFD_SETLKW, libc::F_WRLCK, layout::NAMES_LOCK_OFFSET)?;
        }
        Ok(NamesGuard {
            seg: self,
            _local: local,
        })
    }

    /// Whether this process took the lock of participant slot `i` (a forked child did not:
    /// it shares its parent's locks but must not release them).
    pub(crate) fn holds_slot(&self, i: u32) -> bool {
        // Acquire: pairs with `lock_slot`'s CAS, as `unlock_slot`'s store does after us.
        self.held[i as usize].load(Ordering::Acquire) == std::process::id()
    }

    /// Drops the lock of participant slot `i`, taken with [`Segment::lock_slot`] by this
    /// process (else nothing happens). The slot's state must already be `FREE` (or someone
    /// else's) when this is called: a slot that is not free and not locked is a dead owner's.
    pub(crate) fn unlock_slot(&self, i: u32) {
        if !self.holds_slot(i) {
            return;
        }
        if let Some(fd) = &self.fd {
            let offset = self.desc.geometry.slot_offset(i);
            // Unlocking a byte we hold cannot fail in a way we could act on; a failure leaves
            // the slot looking alive until this process exits (never taken from a live one).
            let _ = fd.ofd_lock(libc::F_OFD_SETLK, libc::F_UNLCK, offset);
        }
        // After the unlock: a participant of ours that grabs the slot next takes the lock anew.
        self.held[i as usize].store(0, Ordering::Release);
    }

    /// Whether a live process holds the lock of participant slot `i` (this one included).
    /// If the lock cannot be asked about (never on tmpfs), the slot's pid and start time
    /// decide, as a fallback.
    pub(crate) fn slot_owner_alive(&self, i: u32) -> bool {
        // Acquire: as in `holds_slot`; a thread of ours mid-grab counts as alive already.
        if self.held[i as usize].load(Ordering::Acquire) != 0 {
            return true; // ours (or, in a forked child, our parent's, which we share)
        }
        let Some(fd) = &self.fd else {
            return false; // a loom model: only the flags lock
        };
        let offset = self.desc.geometry.slot_offset(i);
        match fd.ofd_lock(libc::F_OFD_GETLK, libc::F_WRLCK, offset) {
            Ok(Some(fl)) => fl.l_type != libc::F_UNLCK as libc::c_short,
            _ => {
                // Relaxed: information only; a stale reading errs on "alive" or is re-asked.
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
                "channel {:?}: {what} {pos} is not a position (unaligned or beyond 2^62): another \
                 process damaged the segment",
                self.name
            ),
        ))
    }
}
