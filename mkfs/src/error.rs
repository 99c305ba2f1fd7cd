//! The one error type of pagelog-mkfs: what went wrong and where, worded
//! for the person at the terminal.

use std::io;
use std::path::PathBuf;

use crate::request::show_size;

/// Why mkfs did not make a filesystem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument that makes no sense (checked before any file is touched).
    #[error("{0}")]
    Argument(String),
    /// The target cannot take a filesystem as asked (nothing was written).
    #[error("{0}")]
    Target(String),
    /// Another process holds the image: a pagelog mount's advisory lock, or
    /// the kernel's exclusive claim on a mounted block device.
    #[error("{} is in use (mounted, or held by another program); nothing was written", .0.display())]
    InUse(PathBuf),
    /// The target holds a filesystem or another signature, and no --force.
    #[error("{} already holds a {sig} signature; use --force to overwrite it", .path.display())]
    Occupied {
        /// The target.
        path: PathBuf,
        /// What it holds.
        sig: &'static str,
    },
    /// A system call on the target failed.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// What mkfs was doing, as a verb phrase ("open", "lock", ...).
        action: &'static str,
        /// The target.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The image file could not be given its size.
    #[error("cannot make {} {} long: {source}", .path.display(), show_size(*.bytes))]
    Resize {
        /// The image.
        path: PathBuf,
        /// The size asked for.
        bytes: u64,
        /// The cause.
        source: io::Error,
    },
    /// Writing the new filesystem failed.
    #[error("{}: {source}", .path.display())]
    Format {
        /// The target.
        path: PathBuf,
        /// The cause.
        source: pagelog_core::Error,
    },
}

/// The result of an mkfs step.
pub type Result<T> = std::result::Result<T, Error>;
