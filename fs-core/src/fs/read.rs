//! The read path, in two steps: a plan made with the filesystem locked
//! (dirty pages copied, stored pages located), then the device reads and
//! checksum checks, which need no lock, so that several reads can wait on
//! the disk at once.

use std::sync::Arc;

use super::Filesystem;
use crate::block_ptr::BlockPtr;
use crate::codec::crc32;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::file_map;
use crate::ids::{Ino, PageAddr};
use crate::layout::{zero_page, Page, PAGE_SIZE};

const PS: u64 = PAGE_SIZE as u64;

/// Pages read from the device in one go: consecutive addresses, possibly
/// over one-page gaps (the summary page between two records).
#[derive(Debug)]
struct Run {
    start: PageAddr,
    /// (file page index, offset of the page in the run, checksum).
    pages: Vec<(u64, u64, u32)>,
}

impl Run {
    fn span(&self) -> u64 {
        self.pages.last().map_or(0, |p| p.1 + 1)
    }
}

/// A read, planned: what is already known (dirty pages, holes) is in the
/// buffer; the runs say what to fetch from the device.
#[derive(Debug)]
pub struct ReadPlan {
    ino: Ino,
    offset: u64,
    end: u64,
    out: Vec<u8>,
    runs: Vec<Run>,
}

fn corrupt_data(ino: Ino, idx: u64, addr: PageAddr, expected: u32, found: u32) -> Error {
    Error::corrupt(
        format!("data page {idx} of inode {ino}"),
        addr,
        format!("checksum mismatch (expected {expected:#010x}, found {found:#010x})"),
    )
}

fn unsupported(ino: Ino, idx: u64, ptr: &BlockPtr) -> Error {
    Error::Unsupported(format!(
        "transform {} (page {idx} of inode {ino})",
        ptr.transform.0
    ))
}

impl ReadPlan {
    fn copy(&mut self, idx: u64, page: &[u8]) {
        let lo = (idx * PS).max(self.offset);
        let hi = (idx * PS + PS).min(self.end);
        let src = &page[(lo - idx * PS) as usize..(hi - idx * PS) as usize];
        self.out[(lo - self.offset) as usize..(hi - self.offset) as usize].copy_from_slice(src);
    }

    fn add_stored(&mut self, idx: u64, addr: PageAddr, crc: u32) {
        match self.runs.last_mut() {
            Some(r)
                if addr.0 >= r.start.0 + r.span()
                    && addr.0 <= r.start.0 + r.span() + 1
                    && r.span() < 1024 =>
            {
                r.pages.push((idx, addr.0 - r.start.0, crc));
            }
            _ => self.runs.push(Run {
                start: addr,
                pages: vec![(idx, 0, crc)],
            }),
        }
    }

    /// Reads the runs and checks every page. A checksum mismatch is a
    /// `Corrupt` error (the caller may retry with the filesystem locked:
    /// a page moved after planning also fails the check).
    pub fn execute(mut self, dev: &dyn BlockDevice) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let runs = std::mem::take(&mut self.runs);
        for r in runs {
            buf.resize(r.span() as usize * PAGE_SIZE, 0);
            dev.read(r.start, &mut buf)?;
            for &(idx, at, crc) in &r.pages {
                let page = &buf[at as usize * PAGE_SIZE..(at as usize + 1) * PAGE_SIZE];
                let found = crc32(page);
                if found != crc {
                    return Err(corrupt_data(self.ino, idx, r.start.offset(at), crc, found));
                }
                self.copy(idx, page);
            }
        }
        Ok(self.out)
    }
}

impl Filesystem {
    /// Plans a read of up to `size` bytes at `offset` (and updates the
    /// access time as a read does).
    pub fn plan_read(&mut self, ino: Ino, offset: u64, size: u32) -> Result<ReadPlan> {
        let inode = self.inode(ino)?;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        if !inode.is_reg() {
            return Err(Error::Invalid);
        }
        let end = offset.saturating_add(u64::from(size)).min(inode.size);
        let mut plan = ReadPlan {
            ino,
            offset,
            end,
            out: Vec::new(),
            runs: Vec::new(),
        };
        if offset >= end {
            return Ok(plan);
        }
        plan.out = vec![0u8; (end - offset) as usize];
        let dev = self.dev();
        for idx in offset / PS..=(end - 1) / PS {
            if let Some(p) = self.store.root.dirty.get(ino, idx) {
                plan.copy(idx, &p[..]);
                continue;
            }
            let ptr = file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?;
            if ptr.is_stored() {
                if ptr.transform.0 != 0 {
                    return Err(unsupported(ino, idx, &ptr));
                }
                let addr = self.store.pat.resolve_unit(&*dev, ptr.vpn)?;
                plan.add_stored(idx, addr, ptr.crc);
            }
        }
        self.touch_atime(ino)?;
        Ok(plan)
    }

    /// Reads up to `size` bytes at `offset`.
    pub fn read(&mut self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>> {
        let dev = self.dev();
        self.plan_read(ino, offset, size)?.execute(&*dev)
    }

    /// The device, for executing read plans without the filesystem lock.
    pub fn device(&self) -> Arc<dyn BlockDevice> {
        self.dev()
    }

    /// Reads one stored page and checks it.
    pub(super) fn read_stored(&self, ino: Ino, idx: u64, ptr: BlockPtr) -> Result<Box<Page>> {
        if ptr.transform.0 != 0 {
            return Err(unsupported(ino, idx, &ptr));
        }
        let addr = self.store.pat.resolve_unit(&*self.store.dev, ptr.vpn)?;
        let mut page = zero_page();
        self.store.dev.read(addr, &mut page[..])?;
        let found = crc32(&page[..]);
        if found != ptr.crc {
            return Err(corrupt_data(ino, idx, addr, ptr.crc, found));
        }
        Ok(page)
    }

    /// Page `idx` of `ino` as it reads now (dirty copy, stored copy or zeros).
    pub(super) fn read_page(&mut self, ino: Ino, idx: u64) -> Result<Box<Page>> {
        if let Some(p) = self.store.root.dirty.get(ino, idx) {
            return Ok(Box::new(*p));
        }
        let dev = self.dev();
        let ptr = file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?;
        if ptr.is_stored() {
            self.read_stored(ino, idx, ptr)
        } else {
            Ok(zero_page())
        }
    }
}
