//! File contents: read, write, truncate, fallocate, SEEK_DATA/SEEK_HOLE.

use std::ops::Range;

use super::{Filesystem, JournalMode};
use crate::block_ptr::BlockPtr;
use crate::error::{Error, Result};
use crate::file_map;
use crate::ids::{Ino, PageAddr};
use crate::inode::Timespec;
use crate::layout::{zero_page, Page, PAGE_SIZE};
use crate::page_life::life;
use crate::perm::{Cred, S_ISGID, S_ISUID, S_IXGRP};
use crate::room::{Demand, Tier};
use crate::store::DataScope;
use crate::usage::{QuotaId, Usage};

const PS: u64 = PAGE_SIZE as u64;

/// Pages one step of a writeback in steps writes (1 MiB): a few
/// milliseconds of the filesystem held at most (see
/// [`Filesystem::write_back_step`]).
pub const WRITEBACK_STEP: usize = 256;

/// What `lseek` looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    /// SEEK_DATA
    Data,
    /// SEEK_HOLE
    Hole,
}

/// fallocate mode bits (Linux values).
const FALLOC_FL_KEEP_SIZE: u32 = 1;
const FALLOC_FL_PUNCH_HOLE: u32 = 2;

/// Largest file size in bytes.
pub fn max_file_size() -> u64 {
    file_map::max_pages()
        .saturating_mul(PS)
        .min(i64::MAX as u64)
}

impl Filesystem {
    /// Makes room for an operation that takes space and adds `need` to
    /// the next commit: fails with `NoSpace` when the live data would not
    /// fit in what users may fill, or when the log cannot make room for
    /// `need` with every reserve left (see `room.rs`), having changed
    /// nothing.
    pub(crate) fn ensure_space(&mut self, need: Demand) -> Result<()> {
        if need.pages > 0 && self.store.free_pages() < need.pages {
            // Pages overwritten while dirty count twice until a commit
            // lets their old copies go.
            self.sync()?;
            if self.store.free_pages() < need.pages {
                return Err(Error::NoSpace);
            }
        }
        self.store.admit(need, Tier::Data)
    }

    /// Makes page `idx` dirty (reading its current contents unless the
    /// caller overwrites all of it: all the pages of `whole`), counting it
    /// in the inode's blocks if it was a hole.
    pub(super) fn dirty_page(
        &mut self,
        ino: Ino,
        idx: u64,
        whole: Range<u64>,
    ) -> Result<&mut Page> {
        if !self.store.root.dirty.contains(ino, idx) {
            let dev = self.dev();
            let ptr = file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?;
            let base = ptr.unit_base(idx);
            let unit = base..base + u64::from(ptr.count);
            // A compressed cluster the caller overwrites whole is not read.
            if ptr.is_packed() && !(whole.contains(&unit.start) && unit.end <= whole.end) {
                self.dirty_unit(ino, idx, ptr)?;
            } else {
                let whole = whole.contains(&idx);
                let page = if !whole && ptr.is_stored() {
                    self.read_stored(ino, idx, ptr)?
                } else {
                    zero_page()
                };
                // The inode's block count grows when the page is written
                // back; until then the page counts as fresh in the dirty
                // cache.
                self.store
                    .root
                    .dirty
                    .insert(ino, idx, page, !ptr.is_allocated());
            }
        }
        self.store
            .root
            .dirty
            .get_mut(ino, idx)
            .ok_or_else(|| Error::corrupt("page cache", PageAddr::NONE, "dirty page vanished"))
    }

    /// The pages a write covering pages `whole` entirely, and the `edges`
    /// in part, makes dirty besides its own: the other pages of a
    /// compressed cluster at either edge that it does not overwrite whole
    /// (read back, see [`Filesystem::dirty_unit`]). Clusters inside the
    /// write are overwritten whole and read from nowhere.
    fn read_back_pages(&mut self, ino: Ino, edges: [u64; 2], whole: Range<u64>) -> Result<u64> {
        let dev = self.dev();
        let mut extra = 0;
        let mut seen = None;
        for idx in edges {
            if self.store.root.dirty.contains(ino, idx) {
                continue;
            }
            let p = file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?;
            let base = p.unit_base(idx);
            let covered = whole.contains(&base) && base + u64::from(p.count) <= whole.end;
            if p.is_packed() && !covered && seen != Some(p.vpn) {
                seen = Some(p.vpn);
                extra += u64::from(p.count) - 1;
            }
        }
        Ok(extra)
    }

    /// Makes every page of the packed unit `ptr` (pointed at from page
    /// `idx`) dirty, reading the unit once: its cluster is written again
    /// whole at writeback, so the old unit dies in that commit, all at once
    /// (read-modify-write; delayed allocation makes it once per cluster per
    /// commit, however many writes change it).
    fn dirty_unit(&mut self, ino: Ino, idx: u64, ptr: BlockPtr) -> Result<()> {
        let (addr, pages) = self.read_cluster(ino, idx, ptr)?;
        let dev = self.dev();
        let base = ptr.unit_base(idx);
        for i in base..base + u64::from(ptr.count) {
            let p = file_map::get(&mut self.store.root.cache, &*dev, ino, i)?;
            if p.vpn != ptr.vpn || self.store.root.dirty.contains(ino, i) {
                continue;
            }
            let page = super::read::cluster_page(ino, i, addr, &p, &pages)?;
            self.store.root.dirty.insert(ino, i, page, false);
        }
        Ok(())
    }

    /// Writes `data` at `offset`; returns the bytes written.
    pub fn write(&mut self, cred: &Cred, ino: Ino, offset: u64, data: &[u8]) -> Result<usize> {
        self.writable()?;
        let inode = self.inode(ino)?;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        if !inode.is_reg() {
            return Err(Error::Invalid);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(Error::FileTooBig)?;
        if end > max_file_size() {
            return Err(Error::FileTooBig);
        }
        let data = self.within_quota(cred, ino, offset, data)?;
        let end = offset + data.len() as u64;
        let (first, last) = (offset / PS, (end - 1) / PS);
        let mut new_pages = (first..=last)
            .filter(|&i| !self.store.root.dirty.contains(ino, i))
            .count() as u64;
        new_pages += self.read_back_pages(ino, [first, last], offset.div_ceil(PS)..end / PS)?;
        self.ensure_space(Demand::write(first, last, new_pages))?;
        for idx in first..=last {
            let lo = (idx * PS).max(offset);
            let hi = (idx * PS + PS).min(end);
            let page = self.dirty_page(ino, idx, offset.div_ceil(PS)..end / PS)?;
            page[(lo - idx * PS) as usize..(hi - idx * PS) as usize]
                .copy_from_slice(&data[(lo - offset) as usize..(hi - offset) as usize]);
        }
        let now = Timespec::now();
        let kernel_times = self.kernel_owns_cmtime;
        let i = self.inode_mut(ino)?;
        i.size = i.size.max(end);
        if !kernel_times {
            i.mtime = now;
            i.ctime = now;
        }
        // Under FUSE's own permission checks the adapter clears these
        // (`kill_privileges`, on the kernel's word).
        if !cred.is_root() && !cred.checked && i.mode & (S_ISUID | S_ISGID) != 0 {
            i.mode &= !S_ISUID;
            if i.mode & S_IXGRP != 0 {
                i.mode &= !S_ISGID;
            }
        }
        self.write_back_if_due()?;
        self.changed()?;
        Ok(data.len())
    }

    /// What of `data`, to be written at `offset`, the quotas of `ino`'s
    /// ids let in: all of it, or the pages up to the first new page (a
    /// hole not dirty yet) past their room, as ext4 writes short at a
    /// limit; `QuotaExceeded` when not even one page fits.
    fn within_quota<'d>(
        &mut self,
        cred: &Cred,
        ino: Ino,
        offset: u64,
        data: &'d [u8],
    ) -> Result<&'d [u8]> {
        let ids = QuotaId::of(self.inode(ino)?);
        if !self.has_limits(&ids) {
            return Ok(data);
        }
        let end = offset + data.len() as u64;
        let dev = self.dev();
        let mut fresh = Vec::new();
        for idx in offset / PS..=(end - 1) / PS {
            if !self.store.root.dirty.contains(ino, idx)
                && !file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?.is_allocated()
            {
                fresh.push(idx);
            }
        }
        let want = Usage {
            pages: fresh.len() as i64,
            inodes: 0,
        };
        let Some(room) = self.quota_room(cred, &ids, want)? else {
            return Ok(data);
        };
        let fits = room.left.pages.clamp(0, want.pages) as usize;
        let add = Usage {
            pages: fits as i64,
            inodes: 0,
        };
        let cut = match fresh.get(fits) {
            None => data.len(),
            Some(&idx) => ((idx * PS).max(offset) - offset) as usize,
        };
        if cut == 0 {
            return Err(Error::QuotaExceeded);
        }
        self.start_grace(&room, add);
        Ok(&data[..cut])
    }

    /// Dirty data pages waiting for writeback.
    pub fn dirty_pages(&self) -> usize {
        self.store.root.dirty.count()
    }

    /// One step of writing dirty data back ahead of a commit or an fsync
    /// that would write it all (not in the `writeback` mode, whose commits
    /// and fsyncs leave other files' data): [`WRITEBACK_STEP`] pages at
    /// most, so that a caller taking a lock per step lets other requests
    /// in between, rather than hold them for the whole writeback. Returns
    /// whether dirty data is left.
    pub fn write_back_step(&mut self) -> Result<bool> {
        let wanted = self.opts.journal != JournalMode::Writeback;
        if !wanted || self.store.read_only || self.store.check_health().is_err() {
            return Ok(false);
        }
        let dirty = self.store.root.dirty.count();
        if dirty == 0 {
            return Ok(false);
        }
        self.store.write_back(DataScope::First(WRITEBACK_STEP))?;
        Ok(self.store.root.dirty.count() > 0 && self.store.root.dirty.count() < dirty)
    }

    /// Past `dirty_limit`, writes the dirty data back, and past
    /// `log_limit` also commits (see [`super::MountOptions::log_limit`]).
    /// The write that asks has taken effect by then, so only a failure that
    /// poisons the mount fails it; one that leaves it usable (no room yet)
    /// has changed nothing, and the next commit tries again.
    fn write_back_if_due(&mut self) -> Result<()> {
        let dirty = self.store.root.dirty.count() as u64;
        let limit = self.opts.dirty_limit / PS;
        if dirty <= limit {
            return Ok(());
        }
        // What is over the limit and a step more, not everything: the
        // write that asks holds the filesystem meanwhile, and so waits
        // every other request (`write_back_step`).
        let pages = (dirty - limit) as usize + WRITEBACK_STEP;
        let r = self
            .store
            .write_back(DataScope::First(pages))
            .and_then(|()| {
                if self.store.logged_since_commit() * PS > self.opts.log_limit {
                    self.log_limit_commit()
                } else {
                    Ok(())
                }
            });
        match r {
            Err(e) if self.store.check_health().is_ok() => {
                log::warn!("writing back dirty data put off: {e}");
                Ok(())
            }
            r => r,
        }
    }

    /// Drops file pages `from..` (pointers and dirty copies).
    fn drop_pages_from(&mut self, ino: Ino, from: u64) -> Result<()> {
        self.store.root.dirty.remove_range(ino, from, u64::MAX);
        let freed = self.store.drop_file_pages(ino, from)?;
        self.add_blocks(ino, -(freed as i64))
    }

    /// Zeroes bytes `lo..hi` of page `idx` if it holds data.
    fn zero_in_page(&mut self, ino: Ino, idx: u64, lo: usize, hi: usize) -> Result<()> {
        let dev = self.dev();
        let has_data = self.store.root.dirty.contains(ino, idx)
            || file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?.is_stored();
        if has_data && lo < hi {
            self.dirty_page(ino, idx, 0..0)?[lo..hi].fill(0);
        }
        Ok(())
    }

    /// Truncates or extends to `size` (times are the caller's business).
    pub(super) fn set_size(&mut self, ino: Ino, size: u64) -> Result<()> {
        if size > max_file_size() {
            return Err(Error::FileTooBig);
        }
        let old = self.inode(ino)?.size;
        if size < old {
            self.drop_pages_from(ino, size.div_ceil(PS))?;
            if !size.is_multiple_of(PS) {
                self.zero_in_page(ino, size / PS, (size % PS) as usize, PAGE_SIZE)?;
            }
        }
        self.inode_mut(ino)?.size = size;
        Ok(())
    }

    /// `fallocate(2)`: allocate (mode 0 or KEEP_SIZE) or punch a hole
    /// (PUNCH_HOLE | KEEP_SIZE).
    pub fn fallocate(
        &mut self,
        cred: &Cred,
        ino: Ino,
        offset: u64,
        len: u64,
        mode: u32,
    ) -> Result<()> {
        self.writable()?;
        if mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE) != 0 {
            return Err(Error::NotSupported);
        }
        if len == 0 {
            return Err(Error::Invalid);
        }
        let inode = self.inode(ino)?;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        if !inode.is_reg() {
            return Err(Error::Invalid);
        }
        let size = inode.size;
        let end = offset.checked_add(len).ok_or(Error::FileTooBig)?;
        if end > max_file_size() {
            return Err(Error::FileTooBig);
        }
        let now = Timespec::now();
        if mode & FALLOC_FL_PUNCH_HOLE != 0 {
            if mode & FALLOC_FL_KEEP_SIZE == 0 {
                return Err(Error::NotSupported);
            }
            self.punch(ino, offset, end.min(size))?;
            let i = self.inode_mut(ino)?;
            i.mtime = now;
            i.ctime = now;
            return self.changed();
        }
        self.preallocate(cred, ino, offset / PS, (end - 1) / PS)?;
        let i = self.inode_mut(ino)?;
        if mode & FALLOC_FL_KEEP_SIZE == 0 && end > i.size {
            i.size = end;
            i.mtime = now;
        }
        i.ctime = now;
        self.changed()?;
        Ok(())
    }

    /// Marks the holes in pages `first..=last` allocated (unwritten).
    fn preallocate(&mut self, cred: &Cred, ino: Ino, first: u64, last: u64) -> Result<()> {
        let dev = self.dev();
        let dev = &*dev;
        let mut holes = Vec::new();
        let mut idx = first;
        while idx <= last {
            // Skip stored runs quickly; look at each non-stored page.
            let Some(h) =
                file_map::find(&mut self.store.root.cache, dev, ino, idx, last + 1, false)?
            else {
                break;
            };
            if !self.store.root.dirty.contains(ino, h)
                && file_map::get(&mut self.store.root.cache, dev, ino, h)?.is_hole()
            {
                holes.push(h);
            }
            idx = h + 1;
        }
        let ids = QuotaId::of(self.inode(ino)?);
        let add = Usage {
            pages: holes.len() as i64,
            inodes: 0,
        };
        self.admit(cred, &ids, add)?;
        let need = match (holes.first(), holes.last()) {
            (Some(&a), Some(&b)) => Demand::write(a, b, holes.len() as u64),
            _ => Demand::default(),
        };
        self.ensure_space(need)?;
        let building = self.store.building();
        for &h in &holes {
            let s = &mut self.store;
            file_map::set(
                &mut s.root.cache,
                dev,
                &mut life!(s, dev, building),
                ino,
                h,
                BlockPtr::UNWRITTEN,
            )?;
        }
        self.store.root.reserved_pages += holes.len() as u64;
        self.add_blocks(ino, holes.len() as i64)
    }

    /// Deallocates `start..end`: whole pages become holes, partial ones are
    /// zeroed.
    pub(super) fn punch(&mut self, ino: Ino, start: u64, end: u64) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let mut removed = Vec::new();
        for idx in start / PS..=(end - 1) / PS {
            let lo = start.max(idx * PS) - idx * PS;
            let hi = end.min(idx * PS + PS) - idx * PS;
            if lo != 0 || hi != PS {
                self.zero_in_page(ino, idx, lo as usize, hi as usize)?;
                continue;
            }
            removed.push((idx, self.clear_pointer(ino, idx)?));
        }
        let gone = self.store.unpointed(ino, &removed)?;
        self.add_blocks(ino, -(gone as i64))
    }

    /// Makes page `idx` of `ino` a hole (its dirty copy dropped too) and
    /// returns the pointer it had; what that pointer held is the caller's
    /// to let go (`Store::unpointed`) or keep.
    pub(super) fn clear_pointer(&mut self, ino: Ino, idx: u64) -> Result<BlockPtr> {
        self.store.root.dirty.remove_range(ino, idx, idx + 1);
        self.put_pointer(ino, idx, BlockPtr::HOLE)
    }

    /// Sets page `idx` of `ino` to `ptr` in its map, as it is (no page or
    /// quota accounting); returns the pointer it replaced.
    pub(super) fn put_pointer(&mut self, ino: Ino, idx: u64, ptr: BlockPtr) -> Result<BlockPtr> {
        let dev = self.dev();
        let dev = &*dev;
        let s = &mut self.store;
        let building = s.building();
        file_map::set(
            &mut s.root.cache,
            dev,
            &mut life!(s, dev, building),
            ino,
            idx,
            ptr,
        )
    }

    /// `lseek(2)` with SEEK_DATA or SEEK_HOLE.
    pub fn seek(&mut self, ino: Ino, offset: u64, whence: Whence) -> Result<u64> {
        let size = self.inode(ino)?.size;
        if offset >= size {
            return Err(Error::NoSuchAddress);
        }
        let dev = self.dev();
        let dev = &*dev;
        let pages = size.div_ceil(PS);
        let idx0 = offset / PS;
        match whence {
            Whence::Data => {
                let stored =
                    file_map::find(&mut self.store.root.cache, dev, ino, idx0, pages, true)?;
                let dirty = self
                    .store
                    .root
                    .dirty
                    .next_dirty(ino, idx0)
                    .filter(|&i| i < pages);
                let idx = match (stored, dirty) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).ok_or(Error::NoSuchAddress)?,
                };
                Ok((idx * PS).max(offset))
            }
            Whence::Hole => {
                let mut j = idx0;
                let hole = loop {
                    match file_map::find(&mut self.store.root.cache, dev, ino, j, pages, false)? {
                        Some(h) if self.store.root.dirty.contains(ino, h) => j = h + 1,
                        Some(h) => break h * PS,
                        None => break size,
                    }
                };
                Ok(hole.max(offset).min(size))
            }
        }
    }
}
