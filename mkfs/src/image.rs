//! The target of mkfs, an image file or a block device: opened and locked
//! before a byte of it is read or written, so that an image another
//! process holds is never touched; a file that mkfs created is removed
//! again if mkfs then fails.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use pagelog_core::{BlockDevice, FileDevice, PageAddr};

use crate::error::{Error, Result};
use crate::signature;

/// Mode of a new image: its bytes are every file in it, so only the owner
/// may read them.
pub const NEW_IMAGE_MODE: u32 = 0o600;

/// What is at the target path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing: mkfs creates an image file.
    New,
    /// A regular file.
    File,
    /// A block device.
    Block,
}

impl Kind {
    /// Looks at `path` without opening it.
    pub fn of(path: &Path) -> Result<Kind> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Kind::File),
            Ok(m) if m.file_type().is_block_device() => Ok(Kind::Block),
            Ok(_) => Err(Error::Target(format!(
                "{} is neither a regular file nor a block device",
                path.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Kind::New),
            Err(source) => Err(Error::Io {
                action: "open",
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// The target, open and locked against every other pagelog process (a
/// mount, fsck, another mkfs) for as long as this value lives.
#[derive(Debug)]
pub struct Target {
    path: PathBuf,
    file: File,
    kind: Kind,
    /// Set while a file that mkfs created should be removed on drop.
    remove_on_drop: bool,
}

impl Target {
    /// Opens (or, for [`Kind::New`], creates with mode 0600) and locks the
    /// target. Fails with [`Error::InUse`] before reading a byte if another
    /// process holds it.
    pub fn open(path: &Path, kind: Kind) -> Result<Target> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if kind == Kind::New {
            // create_new: a file that appeared meanwhile is not ours to remove.
            opts.create_new(true).mode(NEW_IMAGE_MODE);
        }
        let file = opts.open(path).map_err(|source| Error::Io {
            action: "open for writing",
            path: path.to_path_buf(),
            source,
        })?;
        let target = Target {
            path: path.to_path_buf(),
            file,
            kind,
            remove_on_drop: kind == Kind::New,
        };
        // The same advisory lock pagelog-mount takes (FileDevice::lock): a
        // mount holds it, shared or exclusive, for as long as it runs.
        target.file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => Error::InUse(path.to_path_buf()),
            std::fs::TryLockError::Error(source) => Error::Io {
                action: "lock",
                path: path.to_path_buf(),
                source,
            },
        })?;
        Ok(target)
    }

    /// The signature of what the target holds now, if any.
    pub fn signature(&self) -> Result<Option<&'static str>> {
        let mut buf = Vec::with_capacity(signature::PROBE_BYTES);
        let mut file = &self.file;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| {
                file.take(signature::PROBE_BYTES as u64)
                    .read_to_end(&mut buf)
            })
            .map_err(|source| self.io("read", source))?;
        Ok(signature::detect(&buf))
    }

    /// Bytes the target holds now.
    pub fn len(&self) -> Result<u64> {
        // Block devices report 0 in their metadata; seeking works for both.
        (&self.file)
            .seek(SeekFrom::End(0))
            .map_err(|source| self.io("read the size of", source))
    }

    /// Is the target a block device?
    pub fn is_block(&self) -> bool {
        self.kind == Kind::Block
    }

    /// Gives an image file its size (the first write to the target) and
    /// returns the device to format, limited to `pages`.
    pub fn prepare(&self, size: Option<u64>, pages: u64) -> Result<Limited> {
        if let (Some(bytes), false) = (size, self.is_block()) {
            self.file.set_len(bytes).map_err(|source| Error::Resize {
                path: self.path.clone(),
                bytes,
                source,
            })?;
        }
        // Opened again through /proc/self/fd, so that it is the very file
        // checked and locked above even if the path was replaced meanwhile.
        // A block device is claimed exclusively here (O_EXCL), which fails
        // while the kernel has it mounted.
        let again = PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
        let inner = FileDevice::open(&again, true).map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => Error::InUse(self.path.clone()),
            _ => self.io("open for writing", e),
        })?;
        Ok(Limited { inner, pages })
    }

    /// Writes zeros over every hole of an image file, then makes them
    /// durable, so that the filesystem holding the image allocates nothing
    /// later.
    pub fn preallocate(&self) -> Result<()> {
        let end = self.len()?;
        let zeros = vec![0u8; 1 << 20];
        let mut at = 0;
        while let Some((from, to)) = self.next_hole(at, end)? {
            let mut pos = from;
            while pos < to {
                let n = (to - pos).min(zeros.len() as u64) as usize;
                self.file
                    .write_all_at(&zeros[..n], pos)
                    .map_err(|source| self.io("preallocate", source))?;
                pos += n as u64;
            }
            at = to;
        }
        self.file
            .sync_data()
            .map_err(|source| self.io("preallocate", source))
    }

    /// The next hole at or after `at` and before `end`, as (start, end).
    fn next_hole(&self, at: u64, end: u64) -> Result<Option<(u64, u64)>> {
        let fd = self.file.as_raw_fd();
        let seek = |from: u64, whence: libc::c_int| -> Option<u64> {
            let off = libc::off_t::try_from(from).ok()?;
            // SAFETY: lseek on a file descriptor this value owns.
            let r = unsafe { libc::lseek(fd, off, whence) };
            u64::try_from(r).ok()
        };
        if at >= end {
            return Ok(None);
        }
        // No SEEK_HOLE support (or an error): treat the rest as a hole.
        let Some(hole) = seek(at, libc::SEEK_HOLE) else {
            return Ok(Some((at, end)));
        };
        if hole >= end {
            return Ok(None);
        }
        let data = seek(hole, libc::SEEK_DATA).unwrap_or(end).min(end);
        Ok(Some((hole, data)))
    }

    /// Keeps the target: mkfs succeeded.
    pub fn keep(mut self) {
        self.remove_on_drop = false;
    }

    fn io(&self, action: &'static str, source: io::Error) -> Error {
        Error::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }

    /// Is `path` still the file this value holds open?
    fn path_is_ours(&self) -> bool {
        match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.remove_on_drop && self.path_is_ours() {
            // Best effort: mkfs is failing already, and says why.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A device seen through a size limit (mkfs on part of a block device).
#[derive(Debug)]
pub struct Limited {
    inner: FileDevice,
    pages: u64,
}

impl BlockDevice for Limited {
    fn len_pages(&self) -> u64 {
        self.pages.min(self.inner.len_pages())
    }
    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(addr, buf)
    }
    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        self.inner.write(addr, buf)
    }
    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }
}
