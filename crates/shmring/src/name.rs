//! Channel names and where their segments live: the name rules, the path of a channel's
//! file in its directory (`<dir>/shmring.<name>`, see `dir.rs`), opening it, removing it only
//! while it still names a given file, and telling a segment file from anything else found at
//! a path.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};
use crate::fd::Fd;

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

/// `IncompatibleSegment` for a directory entry of `name` that is no file at all.
fn not_a_segment(name: &str, kind: &str) -> Error {
    Error::new(
        ErrorCode::IncompatibleSegment,
        format!(
            "channel {name:?} is {kind}, not a shmring segment (remove it with unlink or `shmring rm`)"
        ),
    )
}

/// The kind of the directory entry at `file` (not following a symbolic link), if any.
pub(crate) fn entry_kind(file: &std::ffi::CStr) -> Option<libc::mode_t> {
    // SAFETY: zeroed `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    (unsafe { libc::lstat(file.as_ptr(), &mut st) } == 0).then_some(st.st_mode)
}

/// The error of an open of `name` that failed with `err`: a symbolic link (`ELOOP`: the open
/// never follows one, as `shm_open` does not), a socket (`ENXIO`) or a directory (`EISDIR`)
/// is `IncompatibleSegment`.
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

/// Whether `b` may be in a name (of a channel or of a subscriber): `[A-Za-z0-9._-]`.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Checks a channel name: `[A-Za-z0-9._-]{1,200}`.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(is_name_byte) {
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

/// The file name of a channel's segment in its directory, with a leading slash:
/// `/shmring.<name>` (also the `shm_open` name of a channel in `/dev/shm`).
pub fn shm_path(name: &str) -> String {
    format!("/shmring.{name}")
}

/// The path of the segment file of channel `name` in `dir`: `<dir>/shmring.<name>`.
///
/// ```
/// let p = shmring::segment_path(std::path::Path::new("/var/lib/app"), "orders");
/// assert_eq!(p, std::path::Path::new("/var/lib/app/shmring.orders"));
/// ```
pub fn segment_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("shmring.{name}"))
}

/// The directory and the file path of a channel's segment. Every open, creation and removal
/// of a segment goes through here, with `O_NOFOLLOW` as `shm_open` does: the same files and
/// the same refusals of symbolic links, sockets, FIFOs and directories in any directory.
pub(crate) struct Paths {
    pub(crate) dir: PathBuf,
    pub(crate) file: CString,
}

impl Paths {
    /// The paths of `name` (validated) in `dir` (checked by `dir::resolve`).
    pub(crate) fn new(dir: &Path, name: &str) -> Paths {
        Paths {
            dir: dir.to_path_buf(),
            file: CString::new(segment_path(dir, name).as_os_str().as_bytes())
                .expect("validated names and directories have no NUL"),
        }
    }

    /// Opens the segment file read-write, never following a symbolic link.
    pub(crate) fn open(&self) -> std::io::Result<Fd> {
        self.open_with(libc::O_RDWR, 0)
    }

    /// Creates the segment file (`O_EXCL`) with `mode`, never following a symbolic link.
    pub(crate) fn create(&self, mode: libc::mode_t) -> std::io::Result<Fd> {
        self.open_with(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, mode)
    }

    fn open_with(&self, flags: libc::c_int, mode: libc::mode_t) -> std::io::Result<Fd> {
        // SAFETY: valid C string; flags and mode are plain integers.
        let fd = unsafe {
            libc::open(
                self.file.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Fd(fd))
    }

    /// Removes the directory entry (`unlink(2)`, which never follows a symbolic link).
    pub(crate) fn unlink(&self) -> std::io::Result<()> {
        // SAFETY: valid C string.
        if unsafe { libc::unlink(self.file.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
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
        if let Err(err) = self.unlink() {
            if err.raw_os_error() == Some(libc::ENOENT) {
                return Ok(true);
            }
            return Err(Error::os("unlink", err));
        }
        Ok(true)
    }
}
