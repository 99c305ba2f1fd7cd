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
use crate::ids::{Ino, PageAddr, Vpn};
use crate::layout::{zero_page, Page, PAGE_SIZE};
use crate::page_table::PatEntry;
use crate::transform::ChainSet;

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

/// A unit a chain made (a compressed cluster), read whole and undone
/// once for every page of it the read wants.
#[derive(Debug)]
struct Packed {
    vpn: Vpn,
    entry: PatEntry,
    /// Logical pages the unit holds.
    count: u8,
    /// (file page index, slot in the unit, checksum).
    pages: Vec<(u64, u8, u32)>,
}

/// A read, planned: what is already known (dirty pages, holes) is in the
/// buffer; the runs and packed units say what to fetch from the device.
#[derive(Debug)]
pub struct ReadPlan {
    ino: Ino,
    offset: u64,
    end: u64,
    out: Vec<u8>,
    runs: Vec<Run>,
    packed: Vec<Packed>,
    chains: Arc<ChainSet>,
}

fn corrupt_data(ino: Ino, idx: u64, addr: PageAddr, expected: u32, found: u32) -> Error {
    Error::corrupt(
        format!("data page {idx} of inode {ino}"),
        addr,
        format!("checksum mismatch (expected {expected:#010x}, found {found:#010x})"),
    )
}

fn check_page(ino: Ino, idx: u64, addr: PageAddr, crc: u32, page: &[u8]) -> Result<()> {
    let found = crc32(page);
    if found != crc {
        return Err(corrupt_data(ino, idx, addr, crc, found));
    }
    Ok(())
}

/// Page `idx` of `ino`, which `ptr` says is in the undone cluster `pages`
/// (its unit at `addr`), checked.
pub(super) fn cluster_page(
    ino: Ino,
    idx: u64,
    addr: PageAddr,
    ptr: &BlockPtr,
    pages: &[u8],
) -> Result<Box<Page>> {
    let at = usize::from(ptr.slot) * PAGE_SIZE;
    let mut page = zero_page();
    page.copy_from_slice(&pages[at..at + PAGE_SIZE]);
    check_page(ino, idx, addr, ptr.crc, &page[..])?;
    Ok(page)
}

/// The name a packed unit goes by in errors.
fn unit_name(ino: Ino, base: u64, vpn: Vpn) -> String {
    format!("data unit {vpn} (pages from {base} of inode {ino})")
}

impl ReadPlan {
    fn copy(&mut self, idx: u64, page: &[u8]) {
        let lo = (idx * PS).max(self.offset);
        let hi = (idx * PS + PS).min(self.end);
        let src = &page[(lo - idx * PS) as usize..(hi - idx * PS) as usize];
        self.out[(lo - self.offset) as usize..(hi - self.offset) as usize].copy_from_slice(src);
    }

    /// Where in the reply run `r` lands, when it can be read there as it
    /// is: its pages consecutive on the device (no gap) and in the file,
    /// each wholly inside the read.
    fn in_place(&self, r: &Run) -> Option<usize> {
        let &(first, ..) = r.pages.first()?;
        let n = r.pages.len() as u64;
        let consecutive = r.span() == n
            && r.pages
                .iter()
                .enumerate()
                .all(|(k, p)| p.0 == first + k as u64);
        let inside = first * PS >= self.offset && (first + n) * PS <= self.end;
        (consecutive && inside).then(|| (first * PS - self.offset) as usize)
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

    /// A page of a unit that must be undone (a compressed cluster), or
    /// opened (every unit of a sealed volume: a raw page is a unit of one).
    fn add_packed(&mut self, idx: u64, vpn: Vpn, entry: PatEntry, ptr: &BlockPtr) {
        let page = (idx, ptr.slot, ptr.crc);
        match self.packed.last_mut() {
            Some(p) if p.vpn == vpn => p.pages.push(page),
            _ => self.packed.push(Packed {
                vpn,
                entry,
                count: ptr.count.max(1),
                pages: vec![page],
            }),
        }
    }

    /// Undoes (opens, on a sealed volume) packed unit `p`'s `stored`
    /// bytes: its logical pages.
    fn undo(&self, p: &Packed, stored: &[u8]) -> Result<Vec<u8>> {
        let base = p.pages[0].0 - u64::from(p.pages[0].1);
        let what = || unit_name(self.ino, base, p.vpn);
        self.chains
            .undo((p.vpn, &p.entry), stored, p.count.into(), &what)
    }

    /// Copies out the pages of packed unit `p` (undone: `pages`) that the
    /// read wants, each checked.
    fn unpack(&mut self, p: &Packed, pages: &[u8]) -> Result<()> {
        for &(idx, slot, crc) in &p.pages {
            let at = usize::from(slot) * PAGE_SIZE;
            let page = &pages[at..at + PAGE_SIZE];
            check_page(self.ino, idx, p.entry.addr, crc, page)?;
            self.copy(idx, page);
        }
        Ok(())
    }

    /// Reads the runs and packed units and checks every page. A checksum
    /// mismatch is a `Corrupt` error (the caller may retry with the
    /// filesystem locked: a page moved after planning also fails the
    /// check).
    pub fn execute(mut self, dev: &dyn BlockDevice) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let runs = std::mem::take(&mut self.runs);
        for r in runs {
            if let Some(at) = self.in_place(&r) {
                // Straight into the reply, checked where it landed: a
                // sequential read copies each byte once less.
                let ino = self.ino;
                let dst = &mut self.out[at..at + r.pages.len() * PAGE_SIZE];
                dev.read(r.start, dst)?;
                for (&(idx, k, crc), page) in r.pages.iter().zip(dst.chunks_exact(PAGE_SIZE)) {
                    check_page(ino, idx, r.start.offset(k), crc, page)?;
                }
                continue;
            }
            buf.resize(r.span() as usize * PAGE_SIZE, 0);
            dev.read(r.start, &mut buf)?;
            for &(idx, at, crc) in &r.pages {
                let page = &buf[at as usize * PAGE_SIZE..(at as usize + 1) * PAGE_SIZE];
                check_page(self.ino, idx, r.start.offset(at), crc, page)?;
                self.copy(idx, page);
            }
        }
        let packed = std::mem::take(&mut self.packed);
        // Units next to each other on the device (a file written in one
        // go) are read in one go, as raw pages are.
        let mut reads = Vec::new();
        let mut i = 0;
        while i < packed.len() {
            let start = packed[i].entry.addr;
            let mut end = start.0 + u64::from(packed[i].entry.pages);
            let mut j = i + 1;
            while let Some(p) = packed.get(j) {
                let next = p.entry.addr.0;
                if next < end || next > end + 1 || next - start.0 >= 1024 {
                    break;
                }
                end = next + u64::from(p.entry.pages);
                j += 1;
            }
            let mut buf = vec![0u8; (end - start.0) as usize * PAGE_SIZE];
            dev.read(start, &mut buf)?;
            reads.push((i..j, start, buf));
            i = j;
        }
        let units: Vec<(&Packed, &[u8])> = reads
            .iter()
            .flat_map(|(range, start, buf)| {
                packed[range.clone()].iter().map(move |p| {
                    let at = (p.entry.addr.0 - start.0) as usize * PAGE_SIZE;
                    (p, &buf[at..at + p.entry.stored_len()])
                })
            })
            .collect();
        // (Undoing on several threads per read was tried, and lost: the
        // kernel already keeps both FUSE threads busy with readahead, and
        // thread starts per request cost more than they saved.)
        for (p, stored) in units {
            let pages = self.undo(p, stored)?;
            self.unpack(p, &pages)?;
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
            packed: Vec::new(),
            chains: self.store.chains.clone(),
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
            if ptr.is_packed() || (ptr.is_stored() && self.store.sealer.is_some()) {
                let entry = self.store.pat.resolve(&*dev, ptr.vpn)?;
                plan.add_packed(idx, ptr.vpn, entry, &ptr);
            } else if ptr.is_stored() {
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
        if ptr.is_packed() || self.store.sealer.is_some() {
            let (addr, pages) = self.read_cluster(ino, idx, ptr)?;
            return cluster_page(ino, idx, addr, &ptr, &pages);
        }
        let dev = &*self.store.dev;
        let mut page = zero_page();
        let addr = self.store.pat.resolve_unit(dev, ptr.vpn)?;
        dev.read(addr, &mut page[..])?;
        check_page(ino, idx, addr, ptr.crc, &page[..])?;
        Ok(page)
    }

    /// The logical pages of the compressed cluster `ptr` (pointed at from
    /// page `idx` of `ino`) points into, and where its unit is.
    pub(super) fn read_cluster(
        &self,
        ino: Ino,
        idx: u64,
        ptr: BlockPtr,
    ) -> Result<(PageAddr, Vec<u8>)> {
        let dev = &*self.store.dev;
        let entry = self.store.pat.resolve(dev, ptr.vpn)?;
        let what = || unit_name(ino, ptr.unit_base(idx), ptr.vpn);
        let pages =
            self.store
                .chains
                .read_unit(dev, (ptr.vpn, &entry), ptr.count.max(1).into(), &what)?;
        Ok((entry.addr, pages))
    }

    /// Where page `idx` of `ino` is stored now (the first page of its
    /// unit), if it is: for tools that show layout, and tests that damage
    /// a page on purpose.
    pub fn stored_at(&mut self, ino: Ino, idx: u64) -> Result<Option<PageAddr>> {
        let dev = self.dev();
        let ptr = file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?;
        if !ptr.is_stored() {
            return Ok(None);
        }
        Ok(self.store.pat.lookup(&*dev, ptr.vpn)?.map(|e| e.addr))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::device::MemDevice;
    use crate::format::{format, FormatOptions};
    use crate::perm::Cred;
    use crate::MountOptions;

    /// A sequential read of stored pages lands in the reply as read (one
    /// copy less), is checked there (a damaged page fails), and a read
    /// that does not start on a page takes the copying path, with the
    /// same bytes.
    #[test]
    fn a_sequential_read_lands_in_place_and_is_checked() {
        let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(16 * 1024));
        format(dev.clone(), &FormatOptions::default()).expect("format");
        let mut fs = Filesystem::mount(dev.clone(), MountOptions::default()).expect("mount");
        let root = Cred::root();
        let ino = fs
            .create(&root, Ino::ROOT, b"f", 0o644, 0)
            .expect("create")
            .ino;
        let data: Vec<u8> = (0..16 * PAGE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
        fs.write(&root, ino, 0, &data).expect("write");
        fs.sync().expect("sync");

        let plan = fs.plan_read(ino, 0, data.len() as u32).expect("plan");
        assert!(plan.runs.iter().all(|r| plan.in_place(r).is_some()));
        let start = plan.runs[0].start;
        assert!(plan.execute(&*dev).expect("read") == data);
        let plan = fs.plan_read(ino, 100, 5000).expect("plan");
        assert!(plan.runs.iter().all(|r| plan.in_place(r).is_none()));
        assert!(plan.execute(&*dev).expect("read") == data[100..5100]);

        dev.write(start.offset(3), &[0xAA; PAGE_SIZE])
            .expect("damage");
        let plan = fs.plan_read(ino, 0, data.len() as u32).expect("plan");
        assert!(matches!(plan.execute(&*dev), Err(Error::Corrupt { .. })));
    }
}
