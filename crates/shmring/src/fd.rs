//! A descriptor of a segment file: `fstat`, the whole-file `flock`s and the per-slot OFD
//! locks.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub(crate) struct Fd(pub(crate) libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor; closing it once is sound.
        unsafe { libc::close(self.0) };
    }
}

impl Fd {
    pub(crate) fn stat(&self) -> Result<libc::stat> {
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptor is open; `st` is a valid out-pointer.
        if unsafe { libc::fstat(self.0, &mut st) } != 0 {
            return Err(last_os("fstat"));
        }
        Ok(st)
    }

    /// `flock(op | LOCK_NB)`: whether the lock was granted.
    pub(crate) fn try_lock(&self, op: libc::c_int) -> Result<bool> {
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
    pub(crate) fn lock_within(&self, op: libc::c_int, wait: Duration) -> Result<bool> {
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

    pub(crate) fn unlock(&self) {
        // SAFETY: the descriptor is open; LOCK_UN cannot fail in a way we could act on.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }

    /// `fcntl(cmd, struct flock)` for an open-file-description lock on the one byte at
    /// `offset` (`F_OFD_SETLK` with `F_WRLCK` or `F_UNLCK`, or `F_OFD_GETLK`); returns the
    /// `flock` as the kernel left it. `Ok(None)`: `F_OFD_SETLK` found the byte locked by
    /// another open file description.
    pub(crate) fn ofd_lock(
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

    /// A new open file description of the same file (with OFD locks of its own), opened
    /// read-write through `/proc/self/fd` and checked to be the same inode.
    pub(crate) fn reopen(&self) -> Result<Fd> {
        let path = std::ffi::CString::new(format!("/proc/self/fd/{}", self.0))
            .expect("no NUL in a number");
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(last_os("open /proc/self/fd/<fd> again"));
        }
        let new = Fd(fd);
        let (a, b) = (self.stat()?, new.stat()?);
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
            return Err(Error::os(
                "open /proc/self/fd/<fd> again",
                std::io::Error::other("it named another file"),
            ));
        }
        Ok(new)
    }

    /// A second descriptor of the same open file (and so of the same lock).
    pub(crate) fn dup(&self) -> Result<Fd> {
        // SAFETY: the descriptor is open; F_DUPFD_CLOEXEC returns a new one or -1.
        let fd = unsafe { libc::fcntl(self.0, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(last_os("dup"));
        }
        Ok(Fd(fd))
    }
}

pub(crate) fn last_os(what: &str) -> Error {
    Error::os(what, std::io::Error::last_os_error())
}
