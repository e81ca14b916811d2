//! The checks of the file under a mapping, throttled so that a busy participant pays a clock
//! read per 64 messages; and forcing what a publish call wrote out to the file (`flush:
//! 'publish'`, see `flush.rs`).
//!
//! **Removal while attached.** [`unlink`](crate::unlink) sets [`layout::FLAG_UNLINKED`] in the header and
//! rings both doorbells before `shm_unlink`: participants still attached see it (one load per
//! publish and per drain) and report `Closed`, readers after draining what is left. A segment
//! removed from outside (`rm /dev/shm/shmring.x`, or the file in any directory: link count 0) or shrunk by `ftruncate` is
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

use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::flush::Flush;
use crate::layout;
use crate::process;
use crate::segment::Segment;
use crate::sync::Ordering;

/// A waiting participant checks the segment file at least this often.
pub(crate) const FILE_CHECK_SLICE: Duration = Duration::from_millis(250);

/// Producers look at the clock on every this many publishes (and check the segment file if
/// [`FILE_CHECK_BUSY`] passed since the last check); readers check it on every this many
/// drains in a row that found nothing.
pub(crate) const FILE_CHECK_EVERY: u32 = 64;

/// A busy producer checks the segment file at most this often (its first publish always).
pub(crate) const FILE_CHECK_BUSY: Duration = Duration::from_millis(10);

/// Process-local state of a [`Segment`]: the file shrank below our mapping.
const LOCAL_SHRUNK: u8 = 1;

/// Process-local state of a [`Segment`]: the file lost its name (link count 0).
const LOCAL_REMOVED: u8 = 2;

impl Segment {
    /// Whether the header's flags say the segment was unlinked.
    pub(crate) fn unlinked(&self) -> bool {
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
            self.last_check_ms
                .store(process::coarse_ms(), Ordering::Relaxed);
            if (st.st_size.max(0) as u64) < self.mem.len() as u64 {
                self.local.fetch_or(LOCAL_SHRUNK, Ordering::Relaxed);
            } else if st.st_nlink == 0 {
                self.local.fetch_or(LOCAL_REMOVED, Ordering::Relaxed);
            }
        }
        self.check_cached()
    }

    /// The cached state: what the file checks found so far, then the header's unlinked flag
    /// (no system call).
    pub(crate) fn check_cached(&self) -> Result<()> {
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
                    self.dir.display()
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

    /// As [`Segment::check_file`] if the file was not checked for `gap`, else as
    /// [`Segment::check_cached`] (a clock read, no system call).
    pub(crate) fn check_file_if_older(&self, gap: Duration) -> Result<()> {
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if process::coarse_ms().saturating_sub(last) >= gap.as_millis() as u64 {
            self.check_file()
        } else {
            self.check_cached()
        }
    }

    /// The check a producer makes before each publish (`count` counts them), throttled: the
    /// file on the first; on every [`FILE_CHECK_EVERY`]th, the file if it was not checked for
    /// [`FILE_CHECK_BUSY`]; else the cached state (two loads).
    #[inline]
    pub(crate) fn check_file_throttled(&self, count: &mut u32) -> Result<()> {
        let r = if *count == 0 {
            self.check_file()
        } else if count.is_multiple_of(FILE_CHECK_EVERY) {
            self.check_file_if_older(FILE_CHECK_BUSY)
        } else {
            self.check_cached()
        };
        *count = count.wrapping_add(1).max(1);
        r
    }

    /// The check a reader makes before each drain, once it has been idle: `CorruptSegment` if
    /// the file shrank (checked with `fstat` after every [`FILE_CHECK_EVERY`]th drain in a row
    /// that found nothing, `idle` counting them); otherwise whether the segment was unlinked
    /// or removed, in which case a drain that then finds nothing reports
    /// [`Segment::closed_error`].
    #[inline]
    pub(crate) fn check_file_when_idle(&self, idle: u32) -> Result<bool> {
        let r = if idle % FILE_CHECK_EVERY == FILE_CHECK_EVERY - 1 {
            self.check_file()
        } else {
            self.check_cached()
        };
        match r {
            Ok(()) => Ok(false),
            Err(e) if e.code() == ErrorCode::Closed => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The error of an unlinked or removed segment that has nothing left to read.
    pub(crate) fn closed_error(&self) -> Error {
        match self.check_cached() {
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

/// The page size, for aligning `msync` ranges.
#[cfg(not(loom))]
fn page() -> usize {
    // SAFETY: sysconf cannot fail for _SC_PAGESIZE.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as usize
}

impl Segment {
    /// `flush: 'publish'`: forces the positions `from..to` a publish call wrote (padding and
    /// records; at most one lap), then the header page with `tail`, out to the file. Data
    /// first, so that a `tail` on disk never points past records that are not.
    pub(crate) fn flush_written(&self, from: u64, to: u64) -> Result<()> {
        if self.flush != Flush::Publish || to <= from || self.shrunk() {
            return Ok(());
        }
        let g = &self.desc.geometry;
        let mask = g.capacity - 1;
        let data = g.data_offset();
        let len = (to - from).min(g.capacity);
        let start = (from & mask) as usize;
        let first = len.min(g.capacity - start as u64) as usize;
        self.msync(data + start, first)?;
        if (first as u64) < len {
            self.msync(data, (len - first as u64) as usize)?;
        }
        self.msync(layout::TAIL_OFFSET, 8)
    }

    /// A loom model has no file to write back to.
    #[cfg(loom)]
    fn msync(&self, _offset: usize, _len: usize) -> Result<()> {
        Ok(())
    }

    /// `msync(MS_SYNC)` of the pages holding `len` bytes at `offset`.
    #[cfg(not(loom))]
    fn msync(&self, offset: usize, len: usize) -> Result<()> {
        let p = page();
        let begin = offset / p * p;
        let end = (offset + len).min(self.mem.len());
        // SAFETY: `begin..end` is inside our mapping (page-aligned start, clamped end); msync
        // only writes back pages, it changes no memory.
        let rc = unsafe {
            libc::msync(
                self.mem.ptr(begin).cast(),
                end.saturating_sub(begin),
                libc::MS_SYNC,
            )
        };
        if rc != 0 {
            return Err(Error::os(
                &format!("msync channel {:?}", self.name()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}
