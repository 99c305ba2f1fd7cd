//! The one I/O seam: every byte pagelog reads or writes crosses
//! [`BlockDevice`], the segment store.
//!
//! Pages are named by address, and the log also tells the store what it
//! does with whole segments (`DESIGN.md`, "The segment store"): a segment
//! starts a new life ([`BlockDevice::open_segment`]), the log leaves it for
//! good ([`BlockDevice::seal_segment`]), and nothing durable needs it any
//! more ([`BlockDevice::free_segment`]). A disk needs none of this and
//! ignores it; a store that keeps each segment as an object
//! (`objects/`) uploads a sealed segment at once, never reads an
//! opened one back, and deletes a freed one.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use crate::ids::{PageAddr, SegmentNo};
use crate::layout::PAGE_SIZE;

/// A device of 4 KiB pages. Reads and writes are whole pages at a page
/// address; `flush` is a barrier: everything written before it is durable
/// when it returns. Nothing is promised about writes not yet flushed: they may
/// be lost, torn or reordered (the crash harness replays exactly that).
pub trait BlockDevice: Send + Sync + std::fmt::Debug {
    /// Size of the device in pages.
    fn len_pages(&self) -> u64;
    /// Reads `buf.len() / PAGE_SIZE` pages starting at `addr`.
    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `buf.len() / PAGE_SIZE` pages starting at `addr`.
    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&self) -> io::Result<()>;

    /// `seg` starts a new life: the log will write it from its first page,
    /// and whatever it held before is void (the durable checkpoint does not
    /// refer to it: it was free). Called when a log head takes the segment.
    fn open_segment(&self, seg: SegmentNo) -> io::Result<()> {
        let _ = seg;
        Ok(())
    }

    /// The log is done with `seg`: nothing more is written to it in this
    /// life (every record in it is written). Its pages become durable with
    /// the next flush, as every write does; a store may start making them
    /// durable now.
    fn seal_segment(&self, seg: SegmentNo) -> io::Result<()> {
        let _ = seg;
        Ok(())
    }

    /// Nothing durable needs `seg` any more: the checkpoint that emptied
    /// it is durable and named by a durable superblock, and no retained
    /// checkpoint or snapshot holds a page of it (the pre-free rule,
    /// FORMAT.md "The cleaner's log head"). A store may drop its contents.
    fn free_segment(&self, seg: SegmentNo) -> io::Result<()> {
        let _ = seg;
        Ok(())
    }

    /// Does a failed flush lose nothing? A store that keeps every write
    /// until it is durable elsewhere (and retries) says so: its flush
    /// failing means "not yet", and a later one that succeeds covers every
    /// write before it. A disk does not: after a failed `fdatasync` the
    /// kernel may have dropped the pages it could not write.
    fn keeps_unflushed(&self) -> bool {
        false
    }

    /// What a store that keeps segments elsewhere has moved (for
    /// `pagelog.stats`); a disk has nothing to say.
    fn store_stats(&self) -> Option<crate::objects::StoreStats> {
        None
    }
}

pub(crate) fn check_range(len_pages: u64, addr: PageAddr, bytes: usize) -> io::Result<u64> {
    if !bytes.is_multiple_of(PAGE_SIZE) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "I/O size is not a multiple of the page size",
        ));
    }
    let pages = (bytes / PAGE_SIZE) as u64;
    match addr.0.checked_add(pages) {
        Some(end) if end <= len_pages => Ok(addr.0 * PAGE_SIZE as u64),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "I/O at page {} (+{pages}) is beyond the end of the device ({len_pages} pages)",
                addr.0
            ),
        )),
    }
}

/// A refused `try_lock` as an I/O error (`WouldBlock`: another holds it).
pub(crate) fn lock_error(e: std::fs::TryLockError) -> io::Error {
    match e {
        std::fs::TryLockError::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
        std::fs::TryLockError::Error(e) => e,
    }
}

/// An image file or a block device.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    len_pages: u64,
    sync: bool,
}

impl FileDevice {
    /// Opens `path` for reading, and for writing when `writable`.
    pub fn open(path: &Path, writable: bool) -> io::Result<FileDevice> {
        // A block device opened for writing is claimed exclusively, so that
        // the kernel and other tools (mkfs.*, mount) see it as busy.
        let is_block = std::fs::metadata(path)
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false);
        let flags = if is_block && writable {
            libc::O_EXCL
        } else {
            0
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(writable)
            .custom_flags(flags)
            .open(path)?;
        // Block devices report 0 in metadata; seeking to the end works for both.
        let len = file.seek(SeekFrom::End(0))?;
        Ok(FileDevice {
            file,
            len_pages: len / PAGE_SIZE as u64,
            sync: true,
        })
    }

    /// Takes an advisory lock on the image so that it is used by one process at
    /// a time: exclusive for a read-write user, shared for a reader.
    /// Fails with `WouldBlock` when another process holds a conflicting lock.
    pub fn lock(&self, exclusive: bool) -> io::Result<()> {
        let res = if exclusive {
            self.file.try_lock()
        } else {
            self.file.try_lock_shared()
        };
        res.map_err(lock_error)
    }

    /// Tells the kernel not to read ahead: for a reader that asks for
    /// exactly the pages it needs, such as fsck following summary chains
    /// one page at a time, readahead multiplies the bytes read.
    pub fn advise_random(&self) -> io::Result<()> {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        posix_fadvise(&self.file, 0, 0, PosixFadviseAdvice::POSIX_FADV_RANDOM)
            .map_err(io::Error::from)
    }

    /// Skips `fdatasync` on flush: for benchmarks of the CPU path and for
    /// throw-away images only; a crash then loses anything.
    pub fn set_unsafe_no_sync(&mut self, no_sync: bool) {
        self.sync = !no_sync;
    }
}

impl BlockDevice for FileDevice {
    fn len_pages(&self) -> u64 {
        self.len_pages
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        let off = check_range(self.len_pages, addr, buf.len())?;
        self.file.read_exact_at(buf, off)
    }

    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        let off = check_range(self.len_pages, addr, buf.len())?;
        self.file.write_all_at(buf, off)
    }

    fn flush(&self) -> io::Result<()> {
        if self.sync {
            self.file.sync_data()
        } else {
            Ok(())
        }
    }
}

/// A device in memory: for tests and for tools that build images in memory.
#[derive(Debug)]
pub struct MemDevice {
    data: Mutex<Vec<u8>>,
    len_pages: u64,
}

impl MemDevice {
    /// A zero-filled device of `len_pages` pages.
    pub fn new(len_pages: u64) -> MemDevice {
        MemDevice {
            data: Mutex::new(vec![0u8; len_pages as usize * PAGE_SIZE]),
            len_pages,
        }
    }

    /// A device holding a copy of `bytes` (rounded down to whole pages).
    pub fn from_bytes(bytes: &[u8]) -> MemDevice {
        let len_pages = (bytes.len() / PAGE_SIZE) as u64;
        let mut data = bytes.to_vec();
        data.truncate(len_pages as usize * PAGE_SIZE);
        MemDevice {
            data: Mutex::new(data),
            len_pages,
        }
    }

    /// A copy of the whole device.
    pub fn snapshot(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A poisoned lock only means another test thread panicked; the bytes
        // are still the bytes.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlockDevice for MemDevice {
    fn len_pages(&self) -> u64 {
        self.len_pages
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        let off = check_range(self.len_pages, addr, buf.len())? as usize;
        let data = self.lock();
        let src = data
            .get(off..off + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        let off = check_range(self.len_pages, addr, buf.len())? as usize;
        let mut data = self.lock();
        let dst = data
            .get_mut(off..off + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for std::sync::Arc<D> {
    fn len_pages(&self) -> u64 {
        (**self).len_pages()
    }
    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        (**self).read(addr, buf)
    }
    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        (**self).write(addr, buf)
    }
    fn flush(&self) -> io::Result<()> {
        (**self).flush()
    }
    fn open_segment(&self, seg: SegmentNo) -> io::Result<()> {
        (**self).open_segment(seg)
    }
    fn seal_segment(&self, seg: SegmentNo) -> io::Result<()> {
        (**self).seal_segment(seg)
    }
    fn free_segment(&self, seg: SegmentNo) -> io::Result<()> {
        (**self).free_segment(seg)
    }
    fn keeps_unflushed(&self) -> bool {
        (**self).keeps_unflushed()
    }
    fn store_stats(&self) -> Option<crate::objects::StoreStats> {
        (**self).store_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_device_round_trip_and_bounds() {
        let dev = MemDevice::new(4);
        let page = vec![0xABu8; PAGE_SIZE];
        dev.write(PageAddr(3), &page).expect("write");
        let mut back = vec![0u8; PAGE_SIZE];
        dev.read(PageAddr(3), &mut back).expect("read");
        assert_eq!(back, page);
        assert!(dev.write(PageAddr(4), &page).is_err());
        assert!(dev
            .read(PageAddr(3), &mut vec![0u8; 2 * PAGE_SIZE])
            .is_err());
        assert!(dev.read(PageAddr(0), &mut [0u8; 100]).is_err());
    }

    #[test]
    fn file_device_round_trip_and_lock() {
        let tmp = tempfile::NamedTempFile::new().expect("tmp");
        tmp.as_file().set_len(8 * PAGE_SIZE as u64).expect("len");
        let dev = FileDevice::open(tmp.path(), true).expect("open");
        assert_eq!(dev.len_pages(), 8);
        dev.write(PageAddr(2), &vec![5u8; 2 * PAGE_SIZE])
            .expect("write");
        dev.flush().expect("flush");
        let mut back = vec![0u8; PAGE_SIZE];
        dev.read(PageAddr(3), &mut back).expect("read");
        assert!(back.iter().all(|&b| b == 5));
        dev.lock(true).expect("first lock");
        let other = FileDevice::open(tmp.path(), false).expect("open again");
        assert!(other.lock(true).is_err(), "second exclusive lock must fail");
    }
}
