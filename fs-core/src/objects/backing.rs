//! What backs a filesystem, as the tools' IMAGE argument names it: an
//! image file or block device, or a store (`s3://BUCKET/PREFIX`,
//! `dir:/PATH`; FORMAT.md "Segments as objects"), opened alike.

use std::io;
use std::path::Path;

use super::device::ObjectDevice;
use super::location::{Location, StoreSettings};
use crate::device::{BlockDevice, FileDevice};
use crate::ids::{PageAddr, SegmentNo};

/// An opened image file, block device or store.
#[derive(Debug)]
pub enum Backing {
    /// An image file or a block device.
    Image(FileDevice),
    /// A store.
    Store {
        /// The store.
        dev: ObjectDevice,
        /// Where it is.
        loc: Location,
        /// When opened read-only, the private cache directory it reads
        /// through (removed when it closes).
        private: Option<tempfile::TempDir>,
    },
}

impl Backing {
    /// Opens what `arg` names, for writing when `writable`. A store opened
    /// for writing uses its cache directory (the config's, locked: one
    /// writer per machine); one opened read-only reads through a private,
    /// temporary cache, so that it can look at a mounted store as it can
    /// at a mounted image. Errors say what could not be opened.
    pub fn open(arg: &Path, writable: bool) -> Result<Backing, String> {
        let Some(loc) = arg.to_str().and_then(Location::parse) else {
            let dev = FileDevice::open(arg, writable)
                .map_err(|e| format!("cannot open {}: {e}", arg.display()))?;
            return Ok(Backing::Image(dev));
        };
        let loc = loc?;
        let settings = StoreSettings::load(None)?;
        let cant = |e: String| format!("cannot open {loc}: {e}");
        let opts = settings.options(!writable).map_err(cant)?;
        let backend = loc.backend(&settings).map_err(|e| cant(e.to_string()))?;
        if writable {
            let dir = settings.cache_dir(&loc);
            let dev = ObjectDevice::open(backend, &dir, opts).map_err(|e| cant(e.to_string()))?;
            return Ok(Backing::Store {
                dev,
                loc,
                private: None,
            });
        }
        let tmp = tempfile::Builder::new()
            .prefix("pagelog-cache-")
            .tempdir()
            .map_err(|e| cant(e.to_string()))?;
        let dev = ObjectDevice::open(backend, tmp.path(), opts).map_err(|e| cant(e.to_string()))?;
        Ok(Backing::Store {
            dev,
            loc,
            private: Some(tmp),
        })
    }

    /// Is this a store?
    pub fn is_store(&self) -> bool {
        matches!(self, Backing::Store { .. })
    }

    /// As [`FileDevice::lock`]. A store opened for writing holds its
    /// cache's lock already; one opened read-only is "locked" unless a
    /// writer on this machine holds the store's cache.
    pub fn lock(&self, exclusive: bool) -> io::Result<()> {
        match self {
            Backing::Image(d) => d.lock(exclusive),
            Backing::Store { private: None, .. } => Ok(()),
            Backing::Store { loc, .. } => {
                let settings = StoreSettings::load(None).map_err(io::Error::other)?;
                let cache = settings.cache_dir(loc).join(super::device::CACHE_FILE);
                match std::fs::File::open(&cache) {
                    Ok(f) => f.try_lock_shared().map_err(crate::device::lock_error),
                    Err(_) => Ok(()),
                }
            }
        }
    }

    /// As [`FileDevice::advise_random`]; a store has nothing to advise.
    pub fn advise_random(&self) -> io::Result<()> {
        match self {
            Backing::Image(d) => d.advise_random(),
            Backing::Store { .. } => Ok(()),
        }
    }

    fn dev(&self) -> &dyn BlockDevice {
        match self {
            Backing::Image(d) => d,
            Backing::Store { dev, .. } => dev,
        }
    }
}

impl BlockDevice for Backing {
    fn len_pages(&self) -> u64 {
        self.dev().len_pages()
    }
    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        self.dev().read(addr, buf)
    }
    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        self.dev().write(addr, buf)
    }
    fn flush(&self) -> io::Result<()> {
        self.dev().flush()
    }
    fn open_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.dev().open_segment(seg)
    }
    fn seal_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.dev().seal_segment(seg)
    }
    fn free_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.dev().free_segment(seg)
    }
    fn keeps_unflushed(&self) -> bool {
        self.dev().keeps_unflushed()
    }
    fn store_stats(&self) -> Option<super::StoreStats> {
        self.dev().store_stats()
    }
}
