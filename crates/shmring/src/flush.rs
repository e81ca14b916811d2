//! When a handle forces what it wrote into a channel out to the segment file
//! ([`OpenOptions::flush`](crate::OpenOptions::flush)): never itself (the kernel writes dirty
//! pages back on its own schedule), after each publish call (`msync(MS_SYNC)` of the records
//! it wrote and then of the header page holding `tail`), or every N milliseconds (a flusher
//! thread `fdatasync`s the file). The `msync` after a publish call is
//! `Segment::flush_written`, in `filecheck.rs`.
//!
//! It matters only for a channel in a directory on a disk filesystem (docs/LAYOUT.md, "Where
//! the segment lives"): whatever a producer committed survives the crash of any process
//! anyway (it is in the page cache), but only what was written back survives a power loss.
//! On tmpfs (`/dev/shm`) flushing is accepted and costs next to nothing.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use crate::fd::Fd;

/// When a handle's writes are forced to the segment file (a per-handle setting, not stored in
/// the segment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flush {
    /// Never forced: the kernel writes dirty pages back (on Linux within about 30 s).
    #[default]
    Os,
    /// `msync(MS_SYNC)` of what each publish call wrote, before it returns.
    Publish,
    /// A flusher thread forces the whole file out every interval while the handle is open.
    Every(Duration),
}

/// Longest flush interval: one hour.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);

impl Flush {
    /// `"os"`, `"publish"`, or the interval in whole milliseconds (`"10"`).
    ///
    /// ```
    /// use shmring::Flush;
    /// use std::time::Duration;
    /// assert_eq!(Flush::parse("publish").unwrap(), Flush::Publish);
    /// assert_eq!(Flush::parse("10").unwrap(), Flush::Every(Duration::from_millis(10)));
    /// assert!(Flush::parse("sometimes").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Flush> {
        let f = match s {
            "os" => Flush::Os,
            "publish" => Flush::Publish,
            ms => match ms.parse::<u64>() {
                Ok(ms) => Flush::Every(Duration::from_millis(ms)),
                Err(_) => {
                    return Err(Error::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "flush {s:?} is not one of \"os\", \"publish\" or a whole number \
                             of milliseconds"
                        ),
                    ));
                }
            },
        };
        f.validate()?;
        Ok(f)
    }

    /// Checks an interval: from 1 ms to [`MAX_FLUSH_INTERVAL`].
    pub fn validate(&self) -> Result<()> {
        if let Flush::Every(d) = self
            && (*d < Duration::from_millis(1) || *d > MAX_FLUSH_INTERVAL)
        {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "flush interval {} ms must be from 1 to {} ms",
                    d.as_millis(),
                    MAX_FLUSH_INTERVAL.as_millis()
                ),
            ));
        }
        Ok(())
    }
}

/// How long closing a handle waits for its flusher thread to end before leaving it to end
/// on its own (it may be inside an `fdatasync` on a slow disk; it owns its descriptor and
/// touches no mapping, so it can outlive the handle safely).
const JOIN_WAIT: Duration = Duration::from_millis(50);

/// A thread that `fdatasync`s a segment file every interval until dropped.
pub(crate) struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts flushing the file open as `fd` (a descriptor of its own) every `every`.
    pub(crate) fn start(fd: Fd, name: &str, every: Duration) -> Result<Flusher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let theirs = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("shmring-flush-{name}"))
            .spawn(move || {
                let (lock, cv) = &*theirs;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let (s, _) = cv
                        .wait_timeout_while(stopped, every, |s| !*s)
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = s;
                    if *stopped {
                        return;
                    }
                    drop(stopped);
                    // SAFETY: the descriptor is ours and open. A failure (EIO) is the OS's
                    // to report at the next sync; the flusher goes on.
                    unsafe { libc::fdatasync(fd.0) };
                    stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                }
            })
            .map_err(|e| Error::os("start the flusher thread", e))?;
        Ok(Flusher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Joined if it ends within JOIN_WAIT (it does unless an fdatasync is slow); else it
        // ends on its own after that sync.
        let started = Instant::now();
        while !thread.is_finished() && started.elapsed() < JOIN_WAIT {
            std::thread::sleep(Duration::from_micros(200));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}
