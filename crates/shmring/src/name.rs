//! Channel names and where their segments live: the name rules, the `/dev/shm` directory and
//! paths, opening a name, removing it only while it still names a given file, and telling a
//! segment file from anything else found at a path.

use std::ffi::CString;

use crate::error::{Error, ErrorCode, Result};
use crate::fd::Fd;

/// Where POSIX shared memory lives on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// Longest channel name.
pub const MAX_NAME_LEN: usize = 200;

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
pub(crate) fn entry_kind(file: &std::ffi::CStr) -> Option<libc::mode_t> {
    // SAFETY: zeroed `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    (unsafe { libc::lstat(file.as_ptr(), &mut st) } == 0).then_some(st.st_mode)
}

/// The error of an `shm_open` of `name` that failed with `err`: a symbolic link (`ELOOP`:
/// shm_open never follows one), a socket (`ENXIO`) or a directory (`EISDIR`) is
/// `IncompatibleSegment`.
pub(crate) fn open_error(name: &str, paths: &Paths, what: &str, err: std::io::Error) -> Error {
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
pub(crate) fn check_regular(name: &str, st: &libc::stat) -> Result<()> {
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
pub(crate) struct Paths {
    pub(crate) shm: CString,
    pub(crate) file: CString,
}

impl Paths {
    pub(crate) fn of(name: &str) -> Paths {
        Paths {
            shm: CString::new(shm_path(name)).expect("validated names have no NUL"),
            file: CString::new(format!("{}{}", SHM_DIR, shm_path(name)))
                .expect("validated names have no NUL"),
        }
    }

    pub(crate) fn open(&self) -> std::io::Result<Fd> {
        // SAFETY: valid C string.
        let fd = unsafe { libc::shm_open(self.shm.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Fd(fd))
    }

    /// Whether the name still refers to the file `st` describes.
    pub(crate) fn names(&self, st: &libc::stat) -> bool {
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut now: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid C string and out-pointer.
        let rc = unsafe { libc::stat(self.file.as_ptr(), &mut now) };
        rc == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev
    }

    /// Removes the name if it still refers to the file `st` describes; returns whether the
    /// name no longer refers to that file (removed by us or by someone else just now).
    pub(crate) fn remove(&self, st: &libc::stat) -> Result<bool> {
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
