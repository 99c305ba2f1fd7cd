//! A device that fails the n-th write or flush with EIO (and every one
//! after it, as a dead disk would), or with ENOSPC (as the filesystem
//! under a sparse image does once it is full), counting I/Os so tests can
//! try every n.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::device::{BlockDevice, MemDevice};
use crate::ids::{PageAddr, SegmentNo};

/// Fails from the n-th write or flush on.
#[derive(Debug)]
pub struct FaultyDevice {
    inner: MemDevice,
    fail_at: AtomicU64,
    count: AtomicU64,
    kind: io::ErrorKind,
}

impl FaultyDevice {
    /// A device over `image` that fails from I/O number `fail_at` (0-based;
    /// `u64::MAX` never fails).
    pub fn new(image: &[u8], fail_at: u64) -> FaultyDevice {
        FaultyDevice {
            inner: MemDevice::from_bytes(image),
            fail_at: AtomicU64::new(fail_at),
            count: AtomicU64::new(0),
            kind: io::ErrorKind::Other,
        }
    }

    /// A device over `image` whose writes and flushes fail with "no space
    /// left on device" from I/O number `fail_at` on.
    pub fn full(image: &[u8], fail_at: u64) -> FaultyDevice {
        FaultyDevice {
            kind: io::ErrorKind::StorageFull,
            ..FaultyDevice::new(image, fail_at)
        }
    }

    /// Writes and flushes attempted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Moves the failure point.
    pub fn fail_at(&self, n: u64) {
        self.fail_at.store(n, Ordering::SeqCst);
    }

    /// The contents now.
    pub fn snapshot(&self) -> Vec<u8> {
        self.inner.snapshot()
    }

    fn tick(&self) -> io::Result<()> {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_at.load(Ordering::SeqCst) {
            Err(io::Error::new(
                self.kind,
                format!("injected failure at I/O {n}"),
            ))
        } else {
            Ok(())
        }
    }
}

impl BlockDevice for FaultyDevice {
    fn len_pages(&self) -> u64 {
        self.inner.len_pages()
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(addr, buf)
    }

    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        self.tick()?;
        self.inner.write(addr, buf)
    }

    fn flush(&self) -> io::Result<()> {
        self.tick()?;
        self.inner.flush()
    }

    fn open_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.inner.open_segment(seg)
    }

    fn seal_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.inner.seal_segment(seg)
    }

    fn free_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.inner.free_segment(seg)
    }
}
