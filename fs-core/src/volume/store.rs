//! The store: everything on the device below the POSIX layer (node cache,
//! tables, log head, dirty pages) and the commit that turns it into a
//! checkpoint.

use std::sync::Arc;

use crate::block_ptr::BlockPtr;
use crate::cache_sizes::CacheSizes;
use crate::checkpoint::Checkpoint;
use crate::checkpoint_list::CheckpointList;
use crate::checkpoints::{At, RetentionOptions};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::file_map;
use crate::id_table::IdState;
use crate::ids::{CheckpointNo, PageAddr, TransformId};
use crate::inode::Timespec;
use crate::meta_table::MetaTable;
use crate::node_cache::NodeCache;
use crate::node_table::NodeTable;
use crate::page_life::{life, PageLife};
use crate::page_table::PageTable;
use crate::recovery::Recovery;
use crate::room::{self, Demand, Tier};
use crate::root::Root;
use crate::segment_summary::{Entry, PageKind};
use crate::segment_usage::SegmentUsage;
use crate::segment_writer::{LogPosition, SegmentWriter};
use crate::superblock::{State, Superblock, COPIES};
use crate::transform::{ChainSet, Registry};

/// Which dirty file data a commit writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataScope {
    /// All of it (the `ordered` and `full` modes, syncfs, unmount).
    All,
    /// None: metadata only (the `writeback` mode's periodic commit).
    None,
    /// One inode's (fsync in the `writeback` mode).
    Inode(crate::ids::Ino),
    /// At most this many dirty pages, in inode and page order (a step of a
    /// writeback that lets other requests in between: data only, never a
    /// commit's).
    First(usize),
}

/// Counters an administrator can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commits (checkpoints) written since mount.
    pub commits: u64,
    /// File data pages written since mount.
    pub data_pages_written: u64,
    /// Syncs made durable by a roll-forward record instead of a commit.
    pub roll_forwards: u64,
}

/// Everything below the POSIX layer.
#[derive(Debug)]
pub struct Store {
    /// The device.
    pub dev: Arc<dyn BlockDevice>,
    /// The superblock as last written.
    pub sb: Superblock,
    /// Files whose block count writeback changed from what was reported
    /// while their data was dirty (compressed clusters), for whoever caches
    /// attributes (the kernel, through FUSE).
    pub reshaped: Vec<crate::ids::Ino>,
    /// The chains its table numbers, built (replaced whole when one is
    /// added, so a read planned earlier keeps the set it started with).
    pub chains: Arc<ChainSet>,
    /// The root: its trees, dirty pages and counters.
    pub root: Root,
    /// How large the caches may grow (`cache=`).
    pub(crate) caches: CacheSizes,
    /// Segment usage.
    pub sut: SegmentUsage,
    /// Where every unit is (shared with the roots, which read through it).
    pub pat: Arc<PageTable>,
    /// The retained checkpoints.
    pub cplist: CheckpointList,
    /// How long checkpoints are kept.
    pub retention: RetentionOptions,
    /// Retain the next commit (as a snapshot of this name, if not empty).
    pub(crate) retain_as: Option<Vec<u8>>,
    /// When the last commit retained this mount was taken (0: none yet).
    pub(crate) last_retained_ns: i64,
    /// The root served is this retained checkpoint's (read-only), not the
    /// live one.
    pub at: Option<CheckpointNo>,
    /// Retained checkpoints served beside the live root (how many views of
    /// each): kept until the last view closes, whatever the window or room
    /// say, and refused to `delete`.
    pub(crate) pinned: std::collections::BTreeMap<CheckpointNo, usize>,
    /// The slot of the root in place, and what it is (`roots.rs`).
    pub(crate) serving: (u64, crate::roots::Serve),
    /// The other open roots, by slot.
    pub(crate) parked: std::collections::BTreeMap<u64, crate::roots::Parked>,
    /// The last slot handed out.
    pub(crate) next_root_slot: u64,
    /// Mounted read-only (`read_only` says whether the root served is).
    pub(crate) mount_read_only: bool,
    /// The retained checkpoint the mount serves as its live root, if any.
    pub(crate) mount_at: Option<CheckpointNo>,
    /// Log head.
    pub log: SegmentWriter,
    /// The cleaner's log head: moved (cold) data is written apart from new
    /// (hot) data. Opened on first use in each mount; see `cleaner.rs`.
    pub cold: Option<SegmentWriter>,
    /// The cleaner's head wrote pages not yet flushed.
    pub cold_unflushed: bool,
    /// The last checkpoint written (or recovered).
    pub cp: Checkpoint,
    /// Its page.
    pub cp_addr: PageAddr,
    /// Mounted read-only: nothing is ever written.
    pub read_only: bool,
    /// Read-only because a write to the device failed (why), rather than
    /// mounted so.
    pub degraded: Option<String>,
    /// Counters.
    pub stats: Stats,
    /// The segment cleaner's state.
    pub cleaner: crate::cleaner::Cleaner,
    /// The cleaner's tunables.
    pub cleaner_options: crate::cleaner::CleanerOptions,
    sb_pending: Option<CheckpointNo>,
    durable_sb: CheckpointNo,
    /// Flushes issued, handed out and completed (`volume/flushes.rs`).
    pub(crate) flushes: crate::flushes::Flushes,
    failed: Option<String>,
    /// On a sealed volume, what seals and opens (read-write: with this
    /// mount's lease and salt).
    pub sealer: Option<Arc<crate::seal::Sealer>>,
    /// The main head's `pages_written` at the last commit.
    logged_at_commit: u64,
    /// The time quota grace periods are measured by, when a test sets it
    /// (seconds since the epoch); the system clock otherwise.
    pub clock: Option<i64>,
    /// Deadlist entries roll-forward records already carry.
    pub(crate) rolled_dead: crate::fsync::RolledDead,
}

/// Is `e` a device (or the filesystem under an image file) out of space?
fn device_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    Timespec::now().as_nanos()
}

impl Store {
    /// A store continuing from a recovered checkpoint, its caches sized
    /// by `caches`.
    pub fn open(
        dev: Arc<dyn BlockDevice>,
        rec: Recovery,
        read_only: bool,
        caches: CacheSizes,
    ) -> Result<Store> {
        let chains = ChainSet::build(&rec.sb.chains, &Registry::global(), rec.sealer.clone())?;
        Store::open_with(dev, rec, (read_only, caches), chains)
    }

    /// A read-only store for reading the tables alone (`pagelog-info`):
    /// a chain whose transform is not loaded is no obstacle, since no
    /// data is read.
    pub fn open_tables(dev: Arc<dyn BlockDevice>, rec: Recovery) -> Result<Store> {
        let chains = ChainSet::build(&rec.sb.chains, &Registry::global(), rec.sealer.clone())
            .unwrap_or_default();
        Store::open_with(dev, rec, (true, CacheSizes::default()), chains)
    }

    /// What seals and opens for this mount: on a sealed volume read-write,
    /// a sealer with a new lease, which the superblock records (the mount
    /// writes and flushes it before anything is sealed).
    fn sealer_for(rec: &mut Recovery, read_only: bool) -> Result<Option<Arc<crate::seal::Sealer>>> {
        let (Some(opener), Some(sealing)) = (&rec.sealer, &mut rec.sb.sealing) else {
            return Ok(None);
        };
        if read_only {
            return Ok(Some(opener.clone()));
        }
        let writer = opener.for_writing(sealing.lease)?;
        sealing.lease = writer.lease_end();
        Ok(Some(Arc::new(writer)))
    }

    fn open_with(
        dev: Arc<dyn BlockDevice>,
        rec: Recovery,
        (read_only, caches): (bool, CacheSizes),
        chains: ChainSet,
    ) -> Result<Store> {
        let mut rec = rec;
        let pending = std::mem::take(&mut rec.roll_forward);
        let rebase = rec.rebase.take();
        let sealer = Store::sealer_for(&mut rec, read_only)?;
        let cp = rec.checkpoint;
        let geo = rec.sb.geometry;
        let pat_state = IdState {
            root: cp.pat_root,
            free_head: cp.pat_free_head.0,
            watermark: cp.pat_watermark.0,
        };
        let pat = PageTable::open_sealed(pat_state, &geo, caches.pat_pages, sealer.clone());
        let nat = NodeTable::new(
            cp.nat_root,
            cp.nat_free_head,
            cp.nat_watermark,
            &geo,
            caches.nat_pages,
            pat.clone(),
        );
        let counts = (cp.live_pages, cp.empty_segments);
        let sut = SegmentUsage::open(cp.sut_root, geo, counts, sealer.clone());
        let pos = LogPosition {
            segment: cp.head_segment,
            offset: cp
                .head
                .0
                .saturating_sub(geo.segment_start(cp.head_segment).0),
            next_segment: cp.next_segment,
            next_seq: cp.next_seq,
        };
        let log = SegmentWriter::new(geo, pos, CheckpointNo(cp.no.0 + 1), rec.sb.hash_seed)
            .sealed_by(sealer.clone());
        let cplist = CheckpointList::open_sealed(
            &*dev,
            cp.checkpoint_list_root,
            cp.list_next_slot,
            sealer.clone(),
        )?;
        let mut root = Root::open(&cp, NodeCache::new(nat, caches.node_bytes));
        root.history.last = cplist.newest().map_or(CheckpointNo(0), |r| r.no);
        let chains = Arc::new(chains);
        let mut store = Store {
            dev,
            chains,
            reshaped: Vec::new(),
            sb: rec.sb,
            root,
            caches,
            sut,
            pat,
            cplist,
            retention: RetentionOptions::default(),
            retain_as: None,
            last_retained_ns: 0,
            at: None,
            pinned: std::collections::BTreeMap::new(),
            serving: (crate::roots::LIVE, crate::roots::Serve::Live),
            parked: std::collections::BTreeMap::new(),
            next_root_slot: 0,
            mount_read_only: read_only,
            mount_at: None,
            log,
            cold: None,
            cold_unflushed: false,
            logged_at_commit: 0,
            durable_sb: cp.no,
            cp,
            cp_addr: rec.checkpoint_addr,
            read_only,
            degraded: None,
            stats: Stats::default(),
            cleaner: crate::cleaner::Cleaner::default(),
            cleaner_options: crate::cleaner::CleanerOptions::default(),
            sb_pending: None,
            flushes: Default::default(),
            failed: None,
            sealer,
            clock: None,
            rolled_dead: Default::default(),
        };
        // Damaged table pages a repair builds again go first: the
        // roll-forward reads and sets their entries.
        if let Some(r) = &rebase {
            store.rebuild_tables(r)?;
        }
        // After the roll-forward, which sets the entries of the segments its
        // records touched (what they say then, or the recount's larger one).
        store.roll_forward(&pending)?;
        if let Some(r) = &rebase {
            store.rebase(r)?;
        }
        store.record_changes(!read_only);
        Ok(store)
    }

    /// Marks every page of the live tables dirty (a repair's): the next
    /// commit writes them all again, each described right by its record's
    /// summary. Returns how many.
    pub fn relog_tables(&mut self) -> Result<usize> {
        let dev = self.dev.clone();
        let dev = &*dev;
        let mut n = self.pat.lock().table().mark_all_dirty(dev)?;
        n += self.sut.table().mark_all_dirty(dev)?;
        n += self.cplist.table().mark_all_dirty(dev)?;
        n += self.root.cache.nat.table().mark_all_dirty(dev)?;
        self.root.changed = true;
        Ok(n)
    }

    /// Puts fresh leaves, with the entries a repair found for them, in
    /// place of the damaged pages of the page address, segment usage and
    /// node address tables (the units first: the rest are reached
    /// through them).
    fn rebuild_tables(&mut self, r: &crate::recovery::Rebase) -> Result<()> {
        let dev = self.dev.clone();
        // Top down: a page below one built again is reached through it.
        let mut interiors: Vec<_> = r.interior_pages.iter().collect();
        interiors.sort_by_key(|(_, level, ..)| std::cmp::Reverse(*level));
        for (table, level, index, children) in interiors {
            let mut pat = self.pat.lock();
            let t = match table {
                crate::meta_table::TableId::PageAddress => pat.table(),
                crate::meta_table::TableId::SegmentUsage => self.sut.table(),
                other => {
                    return Err(Error::Refused(format!(
                        "{other:?} pages are not built again"
                    )))
                }
            };
            t.replace_interior(&*dev, (*level, *index), children)?;
        }
        for (index, units) in &r.unit_pages {
            self.pat.lock().table().replace_leaf(&*dev, *index)?;
            for &(vpn, e) in units {
                self.pat.set(&*dev, vpn, e)?;
            }
        }
        let now = self.now_secs();
        for &index in &r.usage_pages {
            self.sut.table().replace_leaf(&*dev, index)?;
            if !r.lower {
                // The recount may miss pages other damage hides: every
                // segment the leaf covers counts full (nothing is written
                // over) until a pass that sees the whole tree counts it.
                self.sut.fill_leaf(&*dev, index, now)?;
            }
        }
        for (index, nodes) in &r.node_pages {
            let nat = &mut self.root.cache.nat;
            nat.table().replace_leaf(&*dev, *index)?;
            for &(nid, e) in nodes {
                nat.set(&*dev, nid, e)?;
            }
        }
        Ok(())
    }

    /// Takes a repair's recount as the segment usage (and, when it may
    /// lower counts, as the counters), before anything is written.
    fn rebase(&mut self, r: &crate::recovery::Rebase) -> Result<()> {
        let now = self.now_secs();
        self.sut.rebase(&*self.dev, &r.live, r.lower, now)?;
        if r.lower {
            self.root.inode_count = r.inodes;
            self.root.reserved_pages = r.reserved;
        }
        self.root.changed = true;
        Ok(())
    }

    /// Seconds since the epoch by the filesystem's clock (see `clock`).
    pub fn now_secs(&self) -> i64 {
        self.clock
            .unwrap_or_else(|| now_ns().div_euclid(1_000_000_000))
    }

    /// Serves the root of the retained checkpoint `at` names instead of
    /// the live one (read-only: writing to the past makes a branch).
    pub fn view_past(&mut self, at: &At) -> Result<CheckpointNo> {
        if !self.read_only {
            return Err(Error::Refused(
                "a past checkpoint mounts read-only (read-write branches are not built yet)".into(),
            ));
        }
        let rec = self.find_checkpoint(at)?;
        let (no, root) = (rec.no, self.root_sized(rec, self.caches));
        self.root = root;
        self.at = Some(no);
        self.mount_at = Some(no);
        Ok(no)
    }

    /// The root of the retained checkpoint `at` names, over a node cache
    /// of its own (its units are reached through the shared page address
    /// table, so they are found wherever the cleaner moves them).
    pub fn past_root(&self, at: &At) -> Result<(CheckpointNo, Root)> {
        let rec = self.find_checkpoint(at)?;
        Ok((rec.no, self.root_of(rec)))
    }

    /// Holds retained checkpoint `no` while a view serves it.
    pub(crate) fn pin(&mut self, no: CheckpointNo) {
        *self.pinned.entry(no).or_default() += 1;
    }

    /// Lets go of one view's hold on `no`.
    pub(crate) fn unpin(&mut self, no: CheckpointNo) {
        if let std::collections::btree_map::Entry::Occupied(mut e) = self.pinned.entry(no) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// The checkpoint being built.
    pub fn building(&self) -> CheckpointNo {
        self.log.building()
    }

    /// Any metadata to commit (data aside)?
    pub fn needs_metadata_commit(&self) -> bool {
        self.roots().any(Root::needs_metadata_commit)
    }

    /// Every open root: the one in place, then the parked ones.
    fn roots(&self) -> impl Iterator<Item = &Root> {
        self.open_roots().map(|(_, _, r)| r)
    }

    /// Pages the main log head wrote since the last commit: what a
    /// recovery would walk.
    pub fn logged_since_commit(&self) -> u64 {
        self.log.pages_written - self.logged_at_commit
    }

    /// Anything to commit?
    pub fn needs_commit(&self) -> bool {
        self.roots().any(Root::needs_commit)
    }

    /// Writes all dirty state and a checkpoint naming it, then flushes.
    /// With `sync_superblock`, the superblock naming it is flushed too (at
    /// mount and unmount); otherwise it becomes durable with the next flush.
    pub fn commit(&mut self, sync_superblock: bool) -> Result<()> {
        self.commit_scope(DataScope::All, sync_superblock)
    }

    /// A commit writing the dirty data of `scope` and all metadata.
    /// Every open root's changes are written, the live root's last.
    pub fn commit_scope(&mut self, scope: DataScope, sync_superblock: bool) -> Result<()> {
        self.check_health()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let serving = self.serving.0;
        self.with_live(|s| {
            let r = s.expire(now_ns());
            s.poison_on(r)?;
            s.restore_reserves()?;
            s.commit_fitting(scope, serving, sync_superblock)
        })
    }

    /// Cleans, if needed and if it can, until the reserves below metadata
    /// operations are whole again, so that the operations after a commit
    /// need not wait. What follows fits regardless.
    fn restore_reserves(&mut self) -> Result<()> {
        match self.admit(Demand::default(), Tier::Metadata) {
            Ok(()) | Err(Error::NoSpace) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Commits if the commit fits in the writable segments (it always
    /// does while the invariant of `room.rs` holds); if it would not, fails
    /// with `NoSpace` before writing anything, leaving the mount usable.
    pub(crate) fn commit_checked(&mut self, scope: DataScope, sync_superblock: bool) -> Result<()> {
        let serving = self.serving.0;
        self.with_live(|s| s.commit_fitting(scope, serving, sync_superblock))
    }

    /// [`Store::commit_checked`] with the live root in place; `scope` is
    /// for the root in slot `serving`.
    fn commit_fitting(
        &mut self,
        scope: DataScope,
        serving: u64,
        sync_superblock: bool,
    ) -> Result<()> {
        if !self.fits(Demand::default(), Tier::Commit) {
            log::error!(
                "commit refused: it may need {} segments, {} are writable",
                self.segments_needed(Demand::default(), Tier::Commit),
                self.sut.writable_segments()
            );
            return Err(Error::NoSpace);
        }
        let r = self.commit_inner(scope, serving, sync_superblock);
        self.poison_on(r)
    }

    /// The quota file's inode, if this image keeps usage (the `quota`
    /// feature).
    pub fn quota_ino(&self) -> Option<crate::ids::Ino> {
        let keeps = self.sb.ro_compat & crate::superblock::features::RO_COMPAT_QUOTA != 0;
        keeps.then_some(crate::quota_file::QUOTA_INO)
    }

    /// The most payload pages (data, nodes, table pages, the checkpoint)
    /// the next commit writes, with `extra` added: every dirty data page;
    /// every dirty node; for each file with dirty data its inode pack and
    /// for each direct map node its dirty pages reach, that node and up to
    /// three indirect nodes above it (a new direct node may need new
    /// parents); every page the node address table can have once those
    /// nodes have ids; every page of the segment usage table; and the
    /// checkpoint.
    pub fn commit_payload(&self, extra: Demand) -> u64 {
        let (mut data, mut map, mut nodes) = (extra.pages, 0, extra.nodes);
        for r in self.roots() {
            data += r.dirty.count() as u64;
            map += r.dirty.files() as u64 + 4 * r.dirty.groups() as u64;
            nodes += r.cache.dirty_count() as u64;
            if let Some(q) = &r.quota {
                // The quota file's pages the fold may change: one per id
                // with a change, three per file whose writeback may
                // charge one; with its inode pack and map nodes.
                let ids = r.cache.usage.deltas().len() + 3 * r.dirty.files();
                let (pages, map_nodes) = q.pages_to_write(ids);
                data += pages;
                map += map_nodes;
            }
        }
        let nodes = nodes + map;
        let dead = self.deadlist_pages(data + nodes + self.table_pages(nodes, data));
        data + nodes + dead + self.table_pages(nodes, data + dead) + 1
    }

    /// Deadlist pages the next commit writes, at most, if `killing` more
    /// units die in it (each unit it writes may replace one): the entries
    /// waiting, and those, one page per 254 plus one per checkpoint whose
    /// list grows.
    fn deadlist_pages(&self, killing: u64) -> u64 {
        let h = &self.root.history;
        let entries = h.pending_count() as u64 + killing;
        entries / crate::deadlist_page::CAPACITY as u64 + h.pending.len() as u64 + 1
    }

    /// Every page the three tables can have once `new_nodes` more node
    /// ids and `new_nodes + new_data` more units are in use (each node,
    /// data page and node address table page written takes one): at most
    /// what one commit writes of them.
    fn table_pages(&self, new_nodes: u64, new_data: u64) -> u64 {
        let nat = self.nat_pages(new_nodes);
        let units = new_nodes + new_data + nat;
        let pat = room::table_pages(
            self.shape(true),
            self.pat.state().watermark.saturating_add(units),
            self.pat.depth(),
        );
        nat + pat + self.list_pages() + self.sut_pages()
    }

    /// The shape of this volume's table pages (`wide`: the page address
    /// table's).
    fn shape(&self, wide: bool) -> crate::meta_table::Shape {
        crate::meta_table::Shape::of(self.sealer.is_some(), wide)
    }

    /// Every page the segment usage table can have.
    fn sut_pages(&self) -> u64 {
        let segments = self.sb.geometry.segment_count;
        room::table_pages(self.shape(false), segments, self.sut.depth())
    }

    /// Every page the node address tables of the writable roots (the live
    /// one and the open branches; a commit writes each one's own) can have,
    /// with `new_nodes` more ids in all.
    fn nat_pages(&self, new_nodes: u64) -> u64 {
        let mut extra = new_nodes;
        self.open_roots()
            .filter(|(_, w, _)| !matches!(w, crate::roots::Serve::Past(_)))
            .map(|(_, _, r)| {
                let nat = &r.cache.nat;
                let ids = nat.watermark().0.saturating_add(std::mem::take(&mut extra));
                room::table_pages(self.shape(false), ids, nat.depth())
            })
            .sum()
    }

    /// Every page the checkpoint list can have once the next commit adds
    /// a record.
    fn list_pages(&self) -> u64 {
        let entries = (self.cplist.next_slot() + 1) * crate::checkpoint_record::ENTRIES;
        room::table_pages(self.shape(false), entries, 0)
    }

    /// Every page the tables can have on this filesystem, the page address
    /// table counted full (one entry per page of the segment area): the
    /// reserves are sized by this, so that what users can fill does not
    /// shrink as the table grows.
    fn table_pages_at_most(&self) -> u64 {
        let units = crate::page_table::vpn_limit(&self.sb.geometry).0;
        let pat = room::table_pages(self.shape(true), units, 0);
        let nat = self.nat_pages(0);
        nat + pat + self.list_pages() + self.sut_pages()
    }

    /// Free segments the next commit, with `extra` added, takes at most,
    /// plus the reserves `tier` must leave.
    pub fn segments_needed(&self, extra: Demand, tier: Tier) -> u64 {
        let pps = self.sb.geometry.pages_per_segment;
        let commit = room::segments_for(
            self.commit_payload(extra),
            self.log.remaining_in_segment(),
            pps,
            self.largest_unit(),
        );
        commit + self.reserve_segments(tier)
    }

    /// The most pages one unit of this volume takes: one, unless chains
    /// are numbered; then a compressed cluster, which is stored as one unit
    /// only when that saves a page, takes at most a cluster less one.
    pub fn largest_unit(&self) -> u64 {
        match self.sb.chains.chains.is_empty() {
            true => 1,
            false => (self.chains.cluster_pages() - 1).max(1),
        }
    }

    /// Segments `tier` leaves untouched: the cleaner's reserve (room to
    /// empty one segment, whatever it holds, and commit) below metadata
    /// operations, and the metadata reserve (room for a run of unlinks,
    /// renames and truncations) below operations that take space.
    pub fn reserve_segments(&self, tier: Tier) -> u64 {
        let pps = self.sb.geometry.pages_per_segment;
        let unit = self.largest_unit();
        let cleaner = room::cleaner_reserve(pps, self.table_pages_at_most(), unit);
        let metadata = room::segments_for(room::metadata_reserve(self.metadata_op()), 0, pps, unit);
        match tier {
            Tier::Commit | Tier::Cleaner => 0,
            Tier::Metadata => cleaner,
            Tier::Data => cleaner + metadata,
        }
    }

    /// What the largest namespace or attribute operation may add to the
    /// next commit, on this filesystem's geometry.
    pub fn metadata_op(&self) -> Demand {
        let area = self.sb.geometry.segment_area_pages();
        Demand::metadata_op(room::dir_levels(area, crate::dir_index::MAX_LEVEL))
    }

    /// Does an operation adding `extra` to the next commit fit, with the
    /// reserves of its `tier` left?
    pub fn fits(&self, extra: Demand, tier: Tier) -> bool {
        self.fits_with(extra, tier, 0)
    }

    /// ... with `spare` more free segments left as well?
    pub fn fits_with(&self, extra: Demand, tier: Tier, spare: u64) -> bool {
        self.segments_needed(extra, tier) + spare <= self.sut.writable_segments()
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

    /// Marks the store failed when `r` is an error of the device: what it
    /// holds in memory may then be half a commit, so nothing more is
    /// written (the filesystem goes on read-only from its last commit:
    /// `Filesystem::degrade_if_failed`). A device that is full (the disk
    /// under an image file) fails the operation with `NoSpace`.
    pub(crate) fn poison_on<T>(&mut self, r: Result<T>) -> Result<T> {
        let Err(e) = r else { return r };
        if matches!(e, Error::NotStored(_)) {
            // Nothing was lost (`Store::flush_failed`): no reason to stop.
            return Err(e);
        }
        log::error!(
            "writing to the device failed: {e}; the filesystem goes on read-only from its last commit"
        );
        self.failed = Some(e.to_string());
        Err(match e {
            Error::Io(io) if device_full(&io) => Error::NoSpace,
            e => e,
        })
    }

    /// Why the store stopped writing, if an earlier write failed.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Writes every root's changes: the data, nodes and node address
    /// table pages of the root in place.
    pub(crate) fn write_root(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
        scope: DataScope,
    ) -> Result<()> {
        self.write_data(dev, building, scope)?;
        self.fold_quota(dev, building)?;
        self.root
            .cache
            .write_dirty(dev, &mut life!(self, dev, building), &mut self.log)?;
        write_nat(
            self.root.cache.nat.table(),
            &mut life!(self, dev, building),
            &mut self.log,
        )
    }

    /// A commit, with the live root in place; `scope` is for the root in
    /// slot `serving`.
    pub(crate) fn commit_inner(
        &mut self,
        scope: DataScope,
        serving: u64,
        sync_superblock: bool,
    ) -> Result<()> {
        let dev_arc = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev_arc;
        let building = self.building();
        let time_ns = now_ns();
        self.log.set_time(time_ns);
        let bound = (
            self.commit_payload(Demand::default()),
            self.segments_needed(Demand::default(), Tier::Commit),
            self.log.allocated,
            self.log.segments_taken,
        );
        // A commit whose flush is still owed completes first: its
        // superblock goes before this commit's writes.
        self.settle_commit()?;
        if self.cold_unflushed {
            // Moved data must be durable before a checkpoint can name it.
            self.flush_now()?;
            self.cold_unflushed = false;
        }
        self.commit_branches(dev, building, scope, serving)?;
        let live_scope = crate::roots::scope_in(scope, crate::roots::LIVE, serving);
        self.write_root(dev, building, live_scope)?;
        self.flush_deadlists(dev, building)?;
        let retained = self.should_retain(time_ns);
        if retained {
            let rec = self.live_record(building, time_ns);
            self.cplist.append(dev, rec)?;
        }
        if !self.cp_addr.is_none() {
            life!(self, dev, building).died_at(self.cp_addr)?;
        }
        let cp_slot = self.write_current_tables(dev, building)?;
        let pos = self.log.position();
        let geo = self.sb.geometry;
        let pat = self.pat.state();
        let cp = Checkpoint {
            no: building,
            time_ns,
            record_seq: pos.next_seq - 1,
            head: geo.segment_start(pos.segment).offset(pos.offset),
            head_segment: pos.segment,
            next_segment: pos.next_segment,
            next_seq: pos.next_seq,
            nat_root: self.root.cache.nat.root(),
            sut_root: self.sut.table().root(),
            nat_free_head: self.root.cache.nat.free_head(),
            nat_watermark: self.root.cache.nat.watermark(),
            pat_root: pat.root,
            pat_free_head: crate::ids::Vpn(pat.free_head),
            pat_watermark: crate::ids::Vpn(pat.watermark),
            checkpoint_list_root: self.cplist.table().root(),
            list_next_slot: self.cplist.next_slot(),
            protect_secs: self.protect_secs(),
            next_generation: self.root.next_generation,
            inode_count: self.root.inode_count,
            live_pages: self.sut.live_pages,
            empty_segments: self.sut.empty_segments(),
            previous: self.cp_addr,
            reserved_pages: self.root.reserved_pages,
            fs_id: self.sb.hash_seed,
            ..Checkpoint::default()
        };
        self.log.fill(
            cp_slot,
            Entry::raw(PageKind::Checkpoint, 0, building.0),
            &cp.encode_sealed(self.sealer.as_deref())?[..],
        )?;
        self.log.finish(dev)?;
        // The bound of `room.rs` is what keeps every commit possible:
        // tests (debug builds) stop at once if a commit exceeds it.
        debug_assert!(
            self.log.allocated - bound.2 <= bound.0,
            "commit wrote {} payload pages, bound {}",
            self.log.allocated - bound.2,
            bound.0
        );
        debug_assert!(
            self.log.segments_taken - bound.3 <= bound.1,
            "commit took {} segments, bound {}",
            self.log.segments_taken - bound.3,
            bound.1
        );
        // The segments the cleaner emptied are pre-free now (their last
        // nodes and table pages moved in this commit).
        self.cleaner.emptying.clear();
        self.cp = cp;
        self.cp_addr = cp_slot;
        if retained {
            self.root.history.last = building;
            self.last_retained_ns = time_ns;
        }
        self.log.set_building(CheckpointNo(building.0 + 1));
        self.stats.commits += 1;
        self.root.changed = false;
        self.logged_at_commit = self.log.pages_written;
        // The tables are written: recording starts again from here, on
        // the live root in place now (a rollback may have replaced it).
        self.record_changes(true);
        if sync_superblock {
            self.flush_commit()?;
            return self.flush_superblock();
        }
        self.flush_commit()
    }

    /// What a commit does once its flush completed (`volume/flushes.rs`,
    /// which has by then made the superblock before durable): writes a
    /// superblock naming this commit's checkpoint, durable with the next
    /// flush.
    pub(crate) fn commit_durable(&mut self) -> Result<()> {
        self.write_superblock(State::InUse, false)
    }

    /// The last superblock written is durable: the segments emptied up
    /// to the checkpoint it names can be written again.
    pub(crate) fn superblock_durable(&mut self) {
        if let Some(p) = self.sb_pending.take() {
            self.durable_sb = p;
        }
        for seg in self.sut.release_prefree(self.durable_sb) {
            // A store that cannot drop a segment now keeps it: nothing
            // refers to it, and the next life of the segment replaces it.
            if let Err(e) = self.dev.free_segment(seg) {
                log::warn!("segment {seg}: the store did not drop it: {e}");
            }
        }
    }

    /// Is a superblock written and not yet flushed?
    pub(crate) fn superblock_waiting(&self) -> bool {
        self.sb_pending.is_some()
    }

    /// Removes the pointers of pages `from..` of `ino`: stored pages die,
    /// reservations are returned. Returns how many pages the file's block
    /// count loses.
    pub fn drop_file_pages(&mut self, ino: crate::ids::Ino, from: u64) -> Result<u64> {
        let dev_arc = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev_arc;
        let building = self.building();
        let mut removed = Vec::new();
        file_map::truncate(
            &mut self.root.cache,
            dev,
            &mut life!(self, dev, building),
            ino,
            from,
            &mut |idx, p| removed.push((idx, p)),
        )?;
        self.unpointed(ino, &removed)
    }

    /// The pointers `removed` (page index, old pointer) of `ino` were
    /// replaced or cleared: a raw page dies, a reservation is returned, and
    /// a packed unit dies when no pointer of its pages refers to it any
    /// more (so call this once every pointer of the change is set). Returns
    /// how many pages the file's block count loses.
    pub(crate) fn unpointed(
        &mut self,
        ino: crate::ids::Ino,
        removed: &[(u64, BlockPtr)],
    ) -> Result<u64> {
        let dev_arc = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev_arc;
        let building = self.building();
        let mut gone = 0u64;
        let mut packed: Vec<crate::ids::Vpn> = Vec::new();
        for &(idx, p) in removed {
            if p.is_packed() {
                if packed.contains(&p.vpn) || self.still_pointed(dev, ino, idx, p)? {
                    continue;
                }
                packed.push(p.vpn);
                let pages = self.pat.resolve(dev, p.vpn)?.pages;
                life!(self, dev, building).died(p.vpn)?;
                gone += u64::from(pages);
            } else if p.is_stored() {
                life!(self, dev, building).died(p.vpn)?;
                gone += 1;
            } else if p.is_unwritten() {
                self.root.reserved_pages = self.root.reserved_pages.saturating_sub(1);
                gone += 1;
            }
        }
        Ok(gone)
    }

    /// Does a page of the packed unit `p` (pointed at from page `idx`)
    /// still point at it? Its pages are the `count` from its base: a unit
    /// never reaches past them.
    fn still_pointed(
        &mut self,
        dev: &dyn BlockDevice,
        ino: crate::ids::Ino,
        idx: u64,
        p: BlockPtr,
    ) -> Result<bool> {
        let base = p.unit_base(idx);
        for i in base..base + u64::from(p.count) {
            if file_map::get(&mut self.root.cache, dev, ino, i)?.vpn == p.vpn {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes dirty file data to the log without a checkpoint (memory
    /// pressure): the pages get addresses in file order now, the nodes that
    /// point at them stay dirty until the next commit, and nothing waits for
    /// the device. A crash before that commit loses these pages, never
    /// anything older (the pages they replace stay until a durable commit).
    pub fn write_back_data(&mut self) -> Result<()> {
        self.write_back(DataScope::All)
    }

    /// [`Store::write_back_data`] of the dirty data of `scope` only.
    pub fn write_back(&mut self, scope: DataScope) -> Result<()> {
        self.check_health()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        // Writing part of what the next commit writes, then closing its
        // record early, costs the commit one summary page more: without
        // that page to spare, commit instead.
        self.restore_reserves()?;
        if !self.fits(Demand { pages: 1, nodes: 0 }, Tier::Commit) {
            return self.commit_checked(DataScope::All, false);
        }
        let dev = self.dev.clone();
        let building = self.building();
        self.log.set_time(now_ns());
        let r = self
            .write_data(&*dev, building, scope)
            .and_then(|()| self.log.finish(&*dev));
        self.poison_on(r)
    }

    /// Writes the current-only tables (page addresses, segment usage) and
    /// reserves the checkpoint page last. Writing them changes the usage
    /// table (the pages they land in gain live pages, the pages they
    /// replace lose them), so the reservation repeats until it covers
    /// every dirty page; nothing written here changes the page address
    /// table, which every unit of this commit has already updated. Returns
    /// the checkpoint slot.
    fn write_current_tables(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
    ) -> Result<PageAddr> {
        let mut slots: Vec<PageAddr> = Vec::new();
        loop {
            let (released, pat_dirty) = {
                let mut pat = self.pat.lock();
                pat.table().close_dirty(dev)?;
                (pat.table().take_released(), pat.table().dirty_count())
            };
            self.sut.table().close_dirty(dev)?;
            self.cplist.table().close_dirty(dev)?;
            let mut released = released;
            released.extend(self.sut.table().take_released());
            released.extend(self.cplist.table().take_released());
            let had_release = !released.is_empty();
            for a in released {
                life!(self, dev, building).died_at(PageAddr(a))?;
            }
            let need =
                pat_dirty + self.sut.table().dirty_count() + self.cplist.table().dirty_count() + 1;
            if !had_release && slots.len() == need {
                break;
            }
            while slots.len() < need {
                slots.push(self.log.alloc(dev, &mut self.sut, 1, None)?);
            }
        }
        let cp_slot = slots
            .pop()
            .ok_or_else(|| Error::corrupt("log", PageAddr::NONE, "no checkpoint slot"))?;
        let mut slots = slots.into_iter();
        let log = &mut self.log;
        let mut place = |p: &crate::layout::Page, e: Entry| -> Result<u64> {
            let a = slots
                .next()
                .ok_or_else(|| Error::corrupt("log", PageAddr::NONE, "too few table slots"))?;
            log.fill(a, e, p)?;
            Ok(a.0)
        };
        self.pat.lock().table().write_dirty(&mut place)?;
        self.sut.table().write_dirty(&mut place)?;
        self.cplist.table().write_dirty(&mut place)?;
        Ok(cp_slot)
    }

    /// The number of the chain `spec` names (`zstd:3`, `none`), numbering
    /// it in the superblock's table if it is new. A new chain is durable
    /// (both superblock copies written and flushed) before this returns, so
    /// no unit can record a chain a crash would forget.
    pub fn chain_for(&mut self, spec: &str) -> Result<TransformId> {
        let records = Registry::global().parse_chain(spec)?.records();
        let mut sb = self.sb.clone();
        let id = sb.chains.number(&records).ok_or_else(|| {
            Error::Refused(format!(
                "the chain table is full ({} chains): {spec} cannot be added",
                crate::chain_table::MAX_CHAINS
            ))
        })?;
        if sb.chains == self.sb.chains {
            // Numbered already (or the raw chain, which is not recorded).
            return Ok(id);
        }
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        sb.incompat |= crate::superblock::features::INCOMPAT_TRANSFORMS;
        let chains = Arc::new(ChainSet::build(
            &sb.chains,
            &Registry::global(),
            self.sealer.clone(),
        )?);
        self.sb = sb;
        self.chains = chains;
        self.write_superblock(State::InUse, true)?;
        self.flush_superblock()?;
        Ok(id)
    }

    /// Writes one superblock copy (alternating) naming the last checkpoint.
    pub fn write_superblock(&mut self, state: State, both: bool) -> Result<()> {
        // A commit in flight writes its superblock first (and, flushed,
        // this one can name what that one does).
        self.settle_commit()?;
        self.sb.generation += 1;
        self.sb.checkpoint_addr = self.cp_addr;
        self.sb.checkpoint_no = self.cp.no;
        self.sb.written_ns = now_ns();
        self.sb.state = state;
        // In use, the log may hold roll-forward records only this build
        // (or a later one) applies.
        let rf = crate::superblock::features::INCOMPAT_ROLL_FORWARD;
        match state {
            State::Clean => self.sb.incompat &= !rf,
            _ => self.sb.incompat |= rf,
        }
        let copies: Vec<usize> = if both {
            vec![0, 1]
        } else {
            vec![(self.sb.generation % 2) as usize]
        };
        for c in copies {
            self.dev.write(COPIES[c], &self.sb.encode(c as u32)[..])?;
        }
        self.sb_pending = Some(self.cp.no);
        self.flushes.superblock_written();
        Ok(())
    }

    /// Makes a superblock write still waiting for a flush durable, so that
    /// the segments the last commit emptied can be written again.
    /// Writes issued and not yet flushed (another caller's commit or
    /// record, whose flush runs outside the lock) are flushed too, now or
    /// handed out (`volume/flushes.rs`).
    pub fn settle(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.check_health()?;
        self.flush_owed(true)
    }

    /// [`Store::settle`], flushing now even in a call that hands its
    /// flushes out.
    pub(crate) fn settle_now(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.check_health()?;
        self.flush_all_now()
    }

    /// Flushes a pending superblock write (after completing a commit whose
    /// flush is owed: it writes one).
    pub fn flush_superblock(&mut self) -> Result<()> {
        self.check_health()?;
        self.settle_commit()?;
        self.flush_now()
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
        // The state at unmount is always retained (whatever the interval
        // since the last retained commit): it is the one an administrator
        // names "before I unmounted".
        let retained = self.cplist.newest().map(|r| r.no) == Some(self.cp.no);
        if self.needs_commit() || !retained {
            self.retain_as = Some(Vec::new());
            self.root.changed = true;
            let r = self.commit(false);
            self.retain_as = None;
            r?;
        }
        self.write_superblock(State::Clean, true)?;
        self.flush_superblock()
    }

    /// Pages the user can still write: the capacity less what is live,
    /// what the next commit adds to it, and what fallocate promised. Dead
    /// pages count as free: the cleaner brings them back.
    pub fn free_pages(&self) -> u64 {
        // The page address table's own pages are held back in full by the
        // reserve (it grows with what was ever stored, and does not shrink
        // when files are deleted), so they are not counted again here.
        let pat = self.pat.state();
        let pat_pages = room::table_pages(self.shape(true), pat.watermark, pat.root.depth);
        let counted = self
            .sut
            .live_pages
            .saturating_sub(pat_pages)
            .saturating_sub(self.held_by_plain());
        self.capacity_pages()
            .saturating_sub(counted)
            .saturating_sub(self.pending_live())
            .saturating_sub(self.roots().map(|r| r.reserved_pages).sum())
    }

    /// Pages the next commit will add to what is live, at most: the dirty
    /// data, the nodes created since the last commit, and a direct map
    /// node for each group of dirty pages that may not have one yet.
    pub fn pending_live(&self) -> u64 {
        self.roots()
            .map(|r| (r.dirty.count() + r.cache.fresh_count() + r.dirty.groups()) as u64)
            .sum()
    }

    /// Are at least `pages` free in the sense of [`Store::free_pages`]?
    /// Settled from the free segments when they hold that much beyond the
    /// reserve and what is pending (users' pages are never in a free
    /// segment, so those pages are surely free), and only otherwise by
    /// counting, which walks the retained checkpoints: a hot path (each
    /// open for writing) pays the walk only when room is short.
    pub fn free_at_least(&self, pages: u64) -> bool {
        let pps = u64::from(self.sb.geometry.pages_per_segment);
        let promised: u64 = self.roots().map(|r| r.reserved_pages).sum();
        let surely = (self.sut.writable_segments() * pps)
            .saturating_sub(self.reserve_pages() + self.pending_live() + promised);
        surely >= pages || self.free_pages().min(self.capacity_pages()) >= pages
    }

    /// Pages a user can fill in all: the segment area less the reserve.
    pub fn capacity_pages(&self) -> u64 {
        self.sb
            .geometry
            .segment_area_pages()
            .saturating_sub(self.reserve_pages())
    }

    /// Pages held back from users (see DESIGN.md, "Room for the next
    /// commit"): the record summaries and the page a record may leave
    /// unused at a segment's end; the two segments the log head holds; the
    /// cleaner's and the metadata reserves; the page address table, full;
    /// and a slack of 5% of the
    /// segment area, which is what guarantees the cleaner dead pages to
    /// reclaim (at least 5% of the best victim) once users have filled all
    /// they see. At most half the area (tiny filesystems).
    pub fn reserve_pages(&self) -> u64 {
        let geo = &self.sb.geometry;
        let pps = u64::from(geo.pages_per_segment);
        let area = geo.segment_area_pages();
        let per_record = crate::segment_summary::max_entries(self.sealer.is_some()) as u64;
        let overhead = area.div_ceil(per_record + 1) + geo.segment_count;
        let held = (2 + self.reserve_segments(Tier::Data)) * pps;
        let pat = room::table_pages(self.shape(true), crate::page_table::vpn_limit(geo).0, 0);
        (overhead + held + pat + area / 20).min(area / 2)
    }
}

/// Writes the dirty pages of a root's node address table into the log,
/// each a unit of its own; the pages they replace die.
fn write_nat(
    table: &mut MetaTable,
    life: &mut PageLife<'_>,
    log: &mut SegmentWriter,
) -> Result<()> {
    let dev = life.dev();
    table.close_dirty(dev)?;
    for vpn in table.take_released() {
        life.died(crate::ids::Vpn(vpn))?;
    }
    table.write_dirty(&mut |p, e| {
        let (vpn, _) = life.write_unit(log, (e.kind, e.owner, e.index), p)?;
        Ok(vpn.0)
    })
}
