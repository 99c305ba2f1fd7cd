//! The one place where a filesystem error becomes an errno.

use fuser::Errno;
use pagelog_core::Error;

/// The errno the kernel should see for `e`.
pub fn errno(e: &Error) -> Errno {
    let code = match e {
        Error::Io(_)
        | Error::Corrupt { .. }
        | Error::NotPagelog(_)
        | Error::BadGeometry(_)
        | Error::Store(_)
        | Error::NotStored(_) => libc::EIO,
        Error::Unsupported(_) | Error::NotSupported => libc::EOPNOTSUPP,
        Error::NotFound => libc::ENOENT,
        Error::Exists => libc::EEXIST,
        Error::NotDir => libc::ENOTDIR,
        Error::IsDir => libc::EISDIR,
        Error::NotEmpty => libc::ENOTEMPTY,
        Error::Invalid | Error::Refused(_) => libc::EINVAL,
        Error::NameTooLong => libc::ENAMETOOLONG,
        Error::TooManyLinks => libc::EMLINK,
        Error::Access | Error::WrongPassphrase => libc::EACCES,
        Error::Perm => libc::EPERM,
        Error::NoSpace => libc::ENOSPC,
        Error::NoAttr => libc::ENODATA,
        Error::Range => libc::ERANGE,
        Error::TooBig => libc::E2BIG,
        Error::FileTooBig => libc::EFBIG,
        Error::ReadOnly => libc::EROFS,
        Error::Busy => libc::EBUSY,
        Error::NoSuchAddress => libc::ENXIO,
        Error::BadHandle => libc::EBADF,
        Error::QuotaExceeded => libc::EDQUOT,
        Error::CrossDevice => libc::EXDEV,
    };
    if code == libc::EIO {
        log::error!("{e}");
    }
    Errno::from_i32(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagelog_core::PageAddr;

    #[test]
    fn media_errors_are_eio_and_kinds_map_one_to_one() {
        assert_eq!(
            errno(&Error::corrupt("x", PageAddr(1), "y")).code(),
            libc::EIO
        );
        assert_eq!(errno(&Error::NameTooLong).code(), libc::ENAMETOOLONG);
        assert_eq!(errno(&Error::NoAttr).code(), libc::ENODATA);
        assert_eq!(errno(&Error::NotEmpty).code(), libc::ENOTEMPTY);
    }
}
