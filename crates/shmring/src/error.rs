//! Typed errors. Every variant has a stable [`ErrorCode`] that the Node binding passes on
//! as the JavaScript error's `code`.

use std::fmt;

/// Stable error codes, shared with the TypeScript layer (`src/errors.ts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A channel name outside `[A-Za-z0-9._-]{1,200}`.
    InvalidName,
    /// An option or argument out of range.
    InvalidArgument,
    /// The ring has no room and the policy says fail.
    RingFull,
    /// A payload larger than the channel's `max_message_size`.
    MessageTooLarge,
    /// The segment exists but is not one this build can use (magic, version, or a size that
    /// differs from an option the caller stated).
    IncompatibleSegment,
    /// The segment is damaged: lengths, offsets or records that cannot be right.
    CorruptSegment,
    /// No segment under that name, and `create` was not asked for.
    NotFound,
    /// `exclusive` creation of a name that exists.
    AlreadyExists,
    /// The operating system refused access.
    PermissionDenied,
    /// `/dev/shm` has no room for the segment.
    NoSpace,
    /// A wait ran out of time.
    Timeout,
    /// The handle was closed.
    Closed,
    /// Held by others: no free participant slot, or a named subscriber already attached.
    Busy,
    /// Any other operating system error.
    Io,
}

impl ErrorCode {
    /// The code as a string, as seen from JavaScript.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidName => "InvalidName",
            Self::InvalidArgument => "InvalidArgument",
            Self::RingFull => "RingFull",
            Self::MessageTooLarge => "MessageTooLarge",
            Self::IncompatibleSegment => "IncompatibleSegment",
            Self::CorruptSegment => "CorruptSegment",
            Self::NotFound => "NotFound",
            Self::AlreadyExists => "AlreadyExists",
            Self::PermissionDenied => "PermissionDenied",
            Self::NoSpace => "NoSpace",
            Self::Timeout => "Timeout",
            Self::Closed => "Closed",
            Self::Busy => "Busy",
            Self::Io => "Io",
        }
    }
}

/// An error with its code and a message that says what happened and what to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
    /// How many messages of a batch went in before this error (see [`Error::published`]).
    published: Option<usize>,
}

impl Error {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            published: None,
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// On an error of [`Producer::try_publish_many`](crate::Producer::try_publish_many): how
    /// many messages of the batch went in before it (they are in the ring, so a retry starts
    /// after them). `None` on every other error.
    pub fn published(&self) -> Option<usize> {
        self.published
    }

    /// This error as the end of a batch that published `n` messages first: the count set,
    /// and said in the message when there are some.
    pub(crate) fn after_batch(self, n: usize) -> Self {
        let message = if n == 0 {
            self.message
        } else {
            format!(
                "{} (after {n} messages of the batch were published)",
                self.message
            )
        };
        Self {
            code: self.code,
            message,
            published: Some(n),
        }
    }

    /// Maps an OS error from `what` (a call and its target) to a typed error.
    pub(crate) fn os(what: &str, err: std::io::Error) -> Self {
        let code = match err.raw_os_error() {
            Some(libc::ENOENT) => ErrorCode::NotFound,
            Some(libc::EEXIST) => ErrorCode::AlreadyExists,
            Some(libc::EACCES | libc::EPERM) => ErrorCode::PermissionDenied,
            Some(libc::ENOSPC | libc::ENOMEM | libc::EFBIG) => ErrorCode::NoSpace,
            _ => ErrorCode::Io,
        };
        Self::new(code, format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
