//! The one error type of `fs-core`: every failure is a kind, never a string.

use std::io;

use crate::ids::PageAddr;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the filesystem library.
///
/// POSIX-style kinds (`NotFound`, `Exists`, ...) are what the namespace
/// operations answer; `Corrupt` and `Io` come from the image itself. The FUSE
/// daemon maps each kind to exactly one errno.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device failed a read, write or flush.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A structure read from the image failed its checks.
    #[error("corrupt {what} at page {addr}: {detail}")]
    Corrupt {
        /// Which structure (e.g. "superblock", "node 42").
        what: String,
        /// Page address where it was read.
        addr: PageAddr,
        /// What check failed.
        detail: String,
    },
    /// The device holds no pagelog filesystem.
    #[error("not a pagelog filesystem ({0})")]
    NotPagelog(String),
    /// The image needs features this build does not know.
    #[error("image needs features this build does not support: {0}")]
    Unsupported(String),
    /// The image is valid but cannot be used as asked (e.g. too small).
    #[error("{0}")]
    BadGeometry(String),

    /// A flush failed on a store that keeps what it could not make durable
    /// and retries (`BlockDevice::keeps_unflushed`): nothing is lost, and
    /// the next flush that succeeds covers it. Not a reason to stop
    /// writing.
    #[error("not stored yet: {0}")]
    NotStored(String),

    /// The object store a volume lives in refused it (already in use, its
    /// descriptor unreadable).
    #[error("{0}")]
    Store(String),
    /// ENOENT
    #[error("no such file or directory")]
    NotFound,
    /// EEXIST
    #[error("file exists")]
    Exists,
    /// ENOTDIR
    #[error("not a directory")]
    NotDir,
    /// EISDIR
    #[error("is a directory")]
    IsDir,
    /// ENOTEMPTY
    #[error("directory not empty")]
    NotEmpty,
    /// EINVAL
    #[error("invalid argument")]
    Invalid,
    /// ENAMETOOLONG
    #[error("file name too long")]
    NameTooLong,
    /// EMLINK
    #[error("too many links")]
    TooManyLinks,
    /// EACCES
    #[error("permission denied")]
    Access,
    /// EPERM
    #[error("operation not permitted")]
    Perm,
    /// ENOSPC
    #[error("no space left on device")]
    NoSpace,
    /// ENODATA (no such extended attribute)
    #[error("no such attribute")]
    NoAttr,
    /// ERANGE (a caller's buffer is too small)
    #[error("result too large for the buffer")]
    Range,
    /// E2BIG (an attribute value over the Linux limit)
    #[error("argument list too long")]
    TooBig,
    /// EFBIG
    #[error("file too large")]
    FileTooBig,
    /// EROFS
    #[error("read-only filesystem")]
    ReadOnly,
    /// EOPNOTSUPP
    #[error("operation not supported")]
    NotSupported,
    /// EBUSY
    #[error("device or resource busy")]
    Busy,
    /// ENXIO (lseek past the end for SEEK_DATA/SEEK_HOLE)
    #[error("no such device or address")]
    NoSuchAddress,
    /// EBADF (a handle that is not open for the access asked)
    #[error("bad file descriptor")]
    BadHandle,
    /// EXDEV (a name across a project boundary)
    #[error("invalid cross-device link")]
    CrossDevice,
    /// EDQUOT (a user's, group's or project's limit would be passed)
    #[error("disk quota exceeded")]
    QuotaExceeded,
    /// The passphrase does not open the volume's key slot.
    #[error("wrong passphrase: it does not open this filesystem's key")]
    WrongPassphrase,
    /// A request refused, with why and what to do (EINVAL): a snapshot
    /// that does not exist, a bad snapshot name, a mount of the past that
    /// is not possible.
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// A corruption finding about `what` at `addr`.
    pub fn corrupt(what: impl Into<String>, addr: PageAddr, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            addr,
            detail: detail.into(),
        }
    }

    /// True for errors that mean the image itself is damaged or unreadable.
    pub fn is_media_error(&self) -> bool {
        matches!(self, Error::Io(_) | Error::Corrupt { .. })
    }
}
