//! The directory a channel's segment file lives in: the default (`/dev/shm`, or
//! `$SHMRING_DIR`), the checks of a directory given by the caller, and what its filesystem is
//! (tmpfs, where nothing survives a reboot, or a disk filesystem, where the channel is
//! durable). See docs/LAYOUT.md, "Where the segment lives".

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};

/// Where POSIX shared memory lives on Linux, and the default directory of channels.
pub const SHM_DIR: &str = "/dev/shm";

/// The environment variable that names the default directory of channels, when set and not
/// empty (an absolute path; checked like [`OpenOptions::dir`](crate::OpenOptions::dir)).
pub const DIR_ENV: &str = "SHMRING_DIR";

/// The directory channels live in when no directory is given: `$SHMRING_DIR` when it is set
/// and not empty, else [`SHM_DIR`]. Read on every call, so a change of the variable applies to
/// the next `open`, `list`, `inspect` or `unlink`.
///
/// ```
/// let dir = shmring::default_dir();
/// assert!(dir.is_absolute() || std::env::var_os("SHMRING_DIR").is_some());
/// ```
pub fn default_dir() -> PathBuf {
    match std::env::var_os(DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(SHM_DIR),
    }
}

/// The directory `dir` names, or the default one: checked to be an absolute path of an
/// existing directory this process can search.
///
/// Errors, each naming the path: `InvalidArgument` for a relative path, one with a NUL byte,
/// or one that is not a directory; `NotFound` for a directory that does not exist;
/// `PermissionDenied` for one this process may not search.
pub(crate) fn resolve(dir: Option<&Path>) -> Result<PathBuf> {
    let dir = dir.map_or_else(default_dir, Path::to_path_buf);
    let invalid = |what: &str| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("channel directory {:?} {what}", dir.display().to_string()),
        )
    };
    if !dir.is_absolute() {
        return Err(invalid(
            "is not an absolute path (give a path that starts with /)",
        ));
    }
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(|_| invalid("has a NUL byte"))?;
    // SAFETY: zeroed `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    if unsafe { libc::stat(c.as_ptr(), &mut st) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOENT) => Error::new(
                ErrorCode::NotFound,
                format!(
                    "channel directory {:?} does not exist (create it first)",
                    dir.display().to_string()
                ),
            ),
            Some(libc::ENOTDIR) => invalid("is not a directory (a part of the path is a file)"),
            _ => Error::os(
                &format!("channel directory {:?}", dir.display().to_string()),
                err,
            ),
        });
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(invalid("is not a directory"));
    }
    // SAFETY: valid C string.
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        return Err(Error::os(
            &format!(
                "channel directory {:?} cannot be searched",
                dir.display().to_string()
            ),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(dir)
}

/// The error of creating a segment file in `dir` that failed with `err`: a directory this
/// process may not write to (or on a read-only filesystem) is `PermissionDenied`.
pub(crate) fn create_error(name: &str, dir: &Path, err: std::io::Error) -> Error {
    match err.raw_os_error() {
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => Error::new(
            ErrorCode::PermissionDenied,
            format!(
                "cannot create channel {name:?}: directory {:?} is not writable by this process \
                 ({err})",
                dir.display().to_string()
            ),
        ),
        _ => Error::os(
            &format!("create channel {name:?} in {:?}", dir.display().to_string()),
            err,
        ),
    }
}

/// The error of a shared mapping of a segment file in `dir` that failed with `err`: a
/// filesystem that cannot map files shared (`ENODEV`; `EACCES` from a `noexec`-like
/// refusal is the OS's) is `InvalidArgument`, naming the directory.
pub(crate) fn map_error(dir: &Path, len: usize, err: std::io::Error) -> Error {
    if err.raw_os_error() == Some(libc::ENODEV) {
        return Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "the filesystem of channel directory {:?} cannot map files shared (mmap \
                 MAP_SHARED: {err}); put the channel on tmpfs (/dev/shm) or a disk filesystem",
                dir.display().to_string()
            ),
        );
    }
    Error::os(
        &format!(
            "mmap {len} bytes of a segment in {:?}",
            dir.display().to_string()
        ),
        err,
    )
}

/// Whether the filesystem of the file open as `fd` keeps its contents only in memory (tmpfs,
/// ramfs): a segment there is gone at a reboot. Anything else (a disk filesystem) makes the
/// channel durable. `false` if it cannot be told.
pub(crate) fn in_memory(fd: libc::c_int) -> bool {
    // SAFETY: zeroed `statfs` is a valid out-parameter.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open; `fs` is a valid out-pointer.
    if unsafe { libc::fstatfs(fd, &mut fs) } != 0 {
        return false;
    }
    /// ramfs (`linux/magic.h`; not in the libc crate).
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    matches!(fs.f_type, libc::TMPFS_MAGIC | RAMFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enodev_names_the_directory() {
        let e = map_error(
            Path::new("/some/dir"),
            4096,
            std::io::Error::from_raw_os_error(libc::ENODEV),
        );
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.message().contains("/some/dir"), "{e}");
        let e = map_error(
            Path::new("/d"),
            4096,
            std::io::Error::from_raw_os_error(libc::ENOMEM),
        );
        assert_eq!(e.code(), ErrorCode::NoSpace);
    }

    #[test]
    fn bad_directories() {
        let code = |d: &str| resolve(Some(Path::new(d))).unwrap_err().code();
        assert_eq!(code("relative/dir"), ErrorCode::InvalidArgument);
        assert_eq!(code("/no/such/dir/anywhere"), ErrorCode::NotFound);
        assert_eq!(code("/proc/self/status"), ErrorCode::InvalidArgument);
        assert_eq!(code("/proc/self/status/x"), ErrorCode::InvalidArgument);
        assert!(resolve(Some(Path::new("/dev/shm"))).is_ok());
    }
}
