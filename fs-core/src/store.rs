//! The store: everything on the device below the POSIX layer (node cache,
//! tables, log head, dirty pages) and the commit that turns it into a
//! checkpoint.

use std::sync::Arc;

use crate::block_ptr::BlockPtr;
use crate::checkpoint::Checkpoint;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::file_map;
use crate::ids::{CheckpointNo, PageAddr};
use crate::inode::Timespec;
use crate::meta_table::MetaTable;
use crate::node_cache::NodeCache;
use crate::node_table::NodeTable;
use crate::page_cache::DirtyPages;
use crate::recovery::Recovery;
use crate::segment_summary::{Entry, PageKind};
use crate::segment_usage::SegmentUsage;
use crate::segment_writer::{LogPosition, SegmentWriter};
use crate::superblock::{State, Superblock, COPIES};

/// Clean node address table pages kept in memory.
const NAT_CACHE_PAGES: usize = 4096;
/// Clean nodes kept in memory.
const NODE_CACHE: usize = 16384;

/// Which dirty file data a commit writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataScope {
    /// All of it (the `ordered` and `full` modes, syncfs, unmount).
    All,
    /// None: metadata only (the `writeback` mode's periodic commit).
    None,
    /// One inode's (fsync in the `writeback` mode).
    Inode(crate::ids::Ino),
}

/// Counters an administrator can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commits (checkpoints) written since mount.
    pub commits: u64,
    /// File data pages written since mount.
    pub data_pages_written: u64,
}

/// Everything below the POSIX layer.
#[derive(Debug)]
pub struct Store {
    /// The device.
    pub dev: Arc<dyn BlockDevice>,
    /// The superblock as last written.
    pub sb: Superblock,
    /// Nodes.
    pub cache: NodeCache,
    /// Segment usage.
    pub sut: SegmentUsage,
    /// Log head.
    pub log: SegmentWriter,
    /// The cleaner's log head: moved (cold) data is written apart from new
    /// (hot) data. Opened on first use in each mount; see `cleaner.rs`.
    pub cold: Option<SegmentWriter>,
    /// The cleaner's head wrote pages not yet flushed.
    pub cold_unflushed: bool,
    /// Dirty file pages.
    pub dirty: DirtyPages,
    /// Inodes whose dirty data is metadata (long symbolic link targets):
    /// written even by metadata-only commits.
    pub data_is_metadata: std::collections::HashSet<crate::ids::Ino>,
    /// The last checkpoint written (or recovered).
    pub cp: Checkpoint,
    /// Its page.
    pub cp_addr: PageAddr,
    /// Generation for the next inode.
    pub next_generation: u64,
    /// Inodes in use.
    pub inode_count: u64,
    /// Pages promised by fallocate and not yet written.
    pub reserved_pages: u64,
    /// Mounted read-only: nothing is ever written.
    pub read_only: bool,
    /// Something changed since the last commit.
    pub changed: bool,
    /// Counters.
    pub stats: Stats,
    /// The segment cleaner's state.
    pub cleaner: crate::cleaner::Cleaner,
    /// The cleaner's tunables.
    pub cleaner_options: crate::cleaner::CleanerOptions,
    sb_pending: Option<CheckpointNo>,
    durable_sb: CheckpointNo,
    failed: Option<String>,
    /// The main head's `pages_written` at the last commit.
    logged_at_commit: u64,
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    Timespec::now().as_nanos()
}

impl Store {
    /// A store continuing from a recovered checkpoint.
    pub fn open(dev: Arc<dyn BlockDevice>, rec: Recovery, read_only: bool) -> Store {
        let cp = rec.checkpoint;
        let geo = rec.sb.geometry;
        let nat = NodeTable::new(
            cp.nat_root,
            cp.nat_free_head,
            cp.nat_watermark,
            &geo,
            NAT_CACHE_PAGES,
        );
        let sut = SegmentUsage::new(cp.sut_root, geo, cp.live_pages, cp.empty_segments);
        let pos = LogPosition {
            segment: cp.head_segment,
            offset: cp
                .head
                .0
                .saturating_sub(geo.segment_start(cp.head_segment).0),
            next_segment: cp.next_segment,
            next_seq: cp.next_seq,
        };
        let log = SegmentWriter::new(geo, pos, CheckpointNo(cp.no.0 + 1), rec.sb.hash_seed);
        Store {
            dev,
            sb: rec.sb,
            cache: NodeCache::new(nat, NODE_CACHE),
            sut,
            log,
            cold: None,
            cold_unflushed: false,
            logged_at_commit: 0,
            dirty: DirtyPages::default(),
            data_is_metadata: std::collections::HashSet::new(),
            next_generation: cp.next_generation,
            inode_count: cp.inode_count,
            reserved_pages: cp.reserved_pages,
            durable_sb: cp.no,
            cp,
            cp_addr: rec.checkpoint_addr,
            read_only,
            changed: false,
            stats: Stats::default(),
            cleaner: crate::cleaner::Cleaner::default(),
            cleaner_options: crate::cleaner::CleanerOptions::default(),
            sb_pending: None,
            failed: None,
        }
    }

    /// The checkpoint being built.
    pub fn building(&self) -> CheckpointNo {
        self.log.building()
    }

    /// Any metadata to commit (data aside)?
    pub fn needs_metadata_commit(&self) -> bool {
        self.changed || self.cache.dirty_count() > 0
    }

    /// Pages the main log head wrote since the last commit: what a
    /// recovery would walk.
    pub fn logged_since_commit(&self) -> u64 {
        self.log.pages_written - self.logged_at_commit
    }

    /// Anything to commit?
    pub fn needs_commit(&self) -> bool {
        self.changed || self.dirty.count() > 0 || self.cache.dirty_count() > 0
    }

    /// Writes all dirty state and a checkpoint naming it, then flushes.
    /// With `sync_superblock`, the superblock naming it is flushed too (at
    /// mount and unmount); otherwise it becomes durable with the next flush.
    pub fn commit(&mut self, sync_superblock: bool) -> Result<()> {
        self.commit_scope(DataScope::All, sync_superblock)
    }

    /// A commit writing the dirty data of `scope` and all metadata.
    pub fn commit_scope(&mut self, scope: DataScope, sync_superblock: bool) -> Result<()> {
        self.check_health()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.make_room(0)?;
        let r = self.commit_inner(scope, sync_superblock);
        self.poison_on(r)
    }

    /// Fails if an earlier write failed: the state in memory can no longer
    /// be trusted to match what a commit would write, so nothing is served
    /// until the filesystem is mounted again (from its last commit).
    pub fn check_health(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(Error::Io(std::io::Error::other(format!(
                "an earlier write failed ({why}); unmount and mount again to continue from the last commit"
            )))),
        }
    }

    pub(crate) fn poison_on<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            log::error!("writing to the device failed, refusing further operations: {e}");
            self.failed = Some(e.to_string());
        }
        r
    }

    pub(crate) fn commit_inner(&mut self, scope: DataScope, sync_superblock: bool) -> Result<()> {
        let dev_arc = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev_arc;
        let building = self.building();
        let time_ns = now_ns();
        self.log.set_time(time_ns);
        if self.cold_unflushed {
            // Moved data must be durable before a checkpoint can name it.
            dev.flush()?;
            self.cold_unflushed = false;
        }
        self.write_data(dev, building, scope)?;
        self.cache.write_dirty(dev, &mut self.sut, &mut self.log)?;
        let nat = self.cache.nat.table();
        write_table(dev, nat, &mut self.sut, &mut self.log, building)?;
        if !self.cp_addr.is_none() {
            self.sut.remove_live(dev, self.cp_addr, building)?;
        }
        let cp_slot = self.write_usage_table(dev, building)?;
        let pos = self.log.position();
        let geo = self.sb.geometry;
        let cp = Checkpoint {
            no: building,
            time_ns,
            record_seq: pos.next_seq - 1,
            head: geo.segment_start(pos.segment).offset(pos.offset),
            head_segment: pos.segment,
            next_segment: pos.next_segment,
            next_seq: pos.next_seq,
            nat_root: self.cache.nat.root(),
            sut_root: self.sut.table().root(),
            nat_free_head: self.cache.nat.free_head,
            nat_watermark: self.cache.nat.watermark,
            next_generation: self.next_generation,
            inode_count: self.inode_count,
            live_pages: self.sut.live_pages,
            empty_segments: self.sut.empty_segments(),
            previous: self.cp_addr,
            reserved_pages: self.reserved_pages,
            fs_id: self.sb.hash_seed,
            ..Checkpoint::default()
        };
        self.log.fill(
            cp_slot,
            Entry::raw(PageKind::Checkpoint, 0, building.0),
            &cp.encode(),
        )?;
        self.log.finish(dev)?;
        dev.flush()?;
        self.cleaner.emptying.clear();
        if let Some(p) = self.sb_pending.take() {
            self.durable_sb = p;
        }
        self.sut.release_prefree(self.durable_sb);
        self.cp = cp;
        self.cp_addr = cp_slot;
        self.log.set_building(CheckpointNo(building.0 + 1));
        self.stats.commits += 1;
        self.changed = false;
        self.logged_at_commit = self.log.pages_written;
        self.write_superblock(State::InUse, false)?;
        if sync_superblock {
            self.flush_superblock()?;
        }
        Ok(())
    }

    /// Removes the pointers of pages `from..` of `ino`: stored pages die,
    /// reservations are returned. Returns how many allocated pages went.
    pub fn drop_file_pages(&mut self, ino: crate::ids::Ino, from: u64) -> Result<u64> {
        let dev_arc = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev_arc;
        let building = self.building();
        let (mut dead, mut unwritten, mut freed) = (Vec::new(), 0u64, 0u64);
        file_map::truncate(
            &mut self.cache,
            dev,
            &mut self.sut,
            building,
            ino,
            from,
            &mut |_, p| {
                freed += 1;
                if p.is_stored() {
                    dead.push(p.addr);
                } else {
                    unwritten += 1;
                }
            },
        )?;
        for a in dead {
            self.sut.remove_live(dev, a, building)?;
        }
        self.reserved_pages = self.reserved_pages.saturating_sub(unwritten);
        Ok(freed)
    }

    /// Writes dirty file data to the log without a checkpoint (memory
    /// pressure): the pages get addresses in file order now, the nodes that
    /// point at them stay dirty until the next commit, and nothing waits for
    /// the device. A crash before that commit loses these pages, never
    /// anything older (the pages they replace stay until a durable commit).
    pub fn write_back_data(&mut self) -> Result<()> {
        self.check_health()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.make_room(0)?;
        let dev = self.dev.clone();
        let building = self.building();
        self.log.set_time(now_ns());
        let r = self
            .write_data(&*dev, building, DataScope::All)
            .and_then(|()| self.log.finish(&*dev));
        self.poison_on(r)
    }

    /// Writes the dirty file pages of `scope` to the log, in inode then
    /// page order, and points the file maps at them.
    fn write_data(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
        scope: DataScope,
    ) -> Result<()> {
        let mut batches = match scope {
            DataScope::All => self.dirty.take_all(),
            DataScope::None => Vec::new(),
            DataScope::Inode(ino) => vec![(ino, self.dirty.take(ino))],
        };
        let mut pinned: Vec<_> = self.data_is_metadata.drain().collect();
        pinned.sort_unstable();
        batches.extend(pinned.into_iter().map(|ino| (ino, self.dirty.take(ino))));
        for (ino, pages) in batches {
            for (idx, page) in pages {
                let entry = Entry::raw(PageKind::Data, ino.0, idx);
                let addr = self.log.alloc(dev, &mut self.sut, None)?;
                let crc = self.log.fill(addr, entry, &page)?;
                let old = file_map::set(
                    &mut self.cache,
                    dev,
                    &mut self.sut,
                    building,
                    ino,
                    idx,
                    BlockPtr::stored(addr, crc),
                )?;
                if old.is_stored() {
                    self.sut.remove_live(dev, old.addr, building)?;
                } else if old.is_unwritten() {
                    self.reserved_pages = self.reserved_pages.saturating_sub(1);
                } else {
                    self.cache.inode_mut(dev, ino)?.blocks += 1;
                }
                self.stats.data_pages_written += 1;
            }
        }
        Ok(())
    }

    /// Writes the segment usage table and reserves the checkpoint page last.
    /// Writing the table changes the table (the pages it lands in gain live
    /// pages, the pages it replaces lose them), so the reservation repeats
    /// until it covers every dirty page. Returns the checkpoint slot.
    fn write_usage_table(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
    ) -> Result<PageAddr> {
        let mut slots: Vec<PageAddr> = Vec::new();
        loop {
            self.sut.table().close_dirty(dev)?;
            let released = self.sut.table().take_released();
            let had_release = !released.is_empty();
            for a in released {
                self.sut.remove_live(dev, a, building)?;
            }
            let need = self.sut.table().dirty_count() + 1;
            if !had_release && slots.len() == need {
                break;
            }
            while slots.len() < need {
                slots.push(self.log.alloc(dev, &mut self.sut, None)?);
            }
        }
        let cp_slot = slots
            .pop()
            .ok_or_else(|| Error::corrupt("log", PageAddr::NONE, "no checkpoint slot"))?;
        let log = &mut self.log;
        let mut result = Ok(0);
        self.sut.table().write_dirty(&slots, &mut |a, p, e| {
            if result.is_ok() {
                result = log.fill(a, e, p);
            }
        })?;
        result?;
        Ok(cp_slot)
    }

    /// Writes one superblock copy (alternating) naming the last checkpoint.
    pub fn write_superblock(&mut self, state: State, both: bool) -> Result<()> {
        self.sb.generation += 1;
        self.sb.checkpoint_addr = self.cp_addr;
        self.sb.checkpoint_no = self.cp.no;
        self.sb.written_ns = now_ns();
        self.sb.state = state;
        let copies: Vec<usize> = if both {
            vec![0, 1]
        } else {
            vec![(self.sb.generation % 2) as usize]
        };
        for c in copies {
            self.dev.write(COPIES[c], &self.sb.encode(c as u32)[..])?;
        }
        self.sb_pending = Some(self.cp.no);
        Ok(())
    }

    /// Makes a superblock write still waiting for a flush durable, so that
    /// the segments the last commit emptied can be written again.
    pub fn settle(&mut self) -> Result<()> {
        if self.read_only || self.sb_pending.is_none() {
            return Ok(());
        }
        self.flush_superblock()
    }

    /// Flushes a pending superblock write.
    pub fn flush_superblock(&mut self) -> Result<()> {
        self.check_health()?;
        let r = self.dev.flush();
        self.poison_on(r.map_err(Error::from))?;
        if let Some(p) = self.sb_pending.take() {
            self.durable_sb = p;
        }
        self.sut.release_prefree(self.durable_sb);
        Ok(())
    }

    /// Prepares a read-write mount: makes both superblocks name the
    /// recovered checkpoint, then starts the log in a fresh segment with a
    /// sequence number past anything an earlier, crashed mount may have left.
    pub fn start_writing(&mut self, max_seq: u64) -> Result<()> {
        self.write_superblock(State::InUse, true)?;
        self.flush_superblock()?;
        let dev = self.dev.clone();
        self.log
            .restart(&*dev, &mut self.sut, max_seq.saturating_add(1 << 32))?;
        Ok(())
    }

    /// Final commit and a clean superblock.
    pub fn close(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        if self.needs_commit() {
            self.commit(false)?;
        }
        self.write_superblock(State::Clean, true)?;
        self.flush_superblock()
    }

    /// Pages the user can still write: the capacity less what is live,
    /// dirty (plus a share for the nodes it will need) and promised by
    /// fallocate. Dead pages count as free: the cleaner brings them back.
    pub fn free_pages(&self) -> u64 {
        let dirty = self.dirty.count() as u64;
        self.capacity_pages()
            .saturating_sub(self.sut.live_pages)
            .saturating_sub(dirty + dirty / 100)
            .saturating_sub(self.reserved_pages)
    }

    /// Pages a user can fill in all: the segment area less the reserve.
    pub fn capacity_pages(&self) -> u64 {
        self.sb
            .geometry
            .segment_area_pages()
            .saturating_sub(self.reserve_pages())
    }

    /// Pages held back from users: room for the cleaner to work in when
    /// the filesystem is full (so that deleting, and cleaning, always make
    /// progress), record summaries, and the segments the log holds.
    /// The larger the share of dead space the cleaner is guaranteed, the
    /// less it copies to free a segment when users have filled the rest.
    pub fn reserve_pages(&self) -> u64 {
        let pps = u64::from(self.sb.geometry.pages_per_segment);
        let area = self.sb.geometry.segment_area_pages();
        (8 * pps).max(area / 20).min(area / 4)
    }
}

/// Writes a metadata table's dirty pages into the log.
fn write_table(
    dev: &dyn BlockDevice,
    table: &mut MetaTable,
    sut: &mut SegmentUsage,
    log: &mut SegmentWriter,
    building: CheckpointNo,
) -> Result<()> {
    table.close_dirty(dev)?;
    for a in table.take_released() {
        sut.remove_live(dev, a, building)?;
    }
    let n = table.dirty_count();
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        addrs.push(log.alloc(dev, sut, None)?);
    }
    let mut result = Ok(0);
    table.write_dirty(&addrs, &mut |a, p, e| {
        if result.is_ok() {
            result = log.fill(a, e, p);
        }
    })?;
    result.map(|_| ())
}
