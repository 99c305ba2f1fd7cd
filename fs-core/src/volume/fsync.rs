//! fsync without a checkpoint: the roll-forward record (F2FS's model,
//! kept to pagelog's commit points; `docs/FORMAT.md`, "Roll-forward").
//!
//! A commit writes the dirty data and nodes, then the tables that find
//! them (node address, page address and segment usage tables, the
//! checkpoint list), a checkpoint page, a flush and a superblock. An fsync
//! that rolls forward writes the same data and nodes, then instead of the
//! tables only the table *entries* set since the last such record (the
//! tables record them as they are set), the deadlist entries added and
//! the checkpoint's counters, as roll-forward pages; then one flush. The
//! state it makes durable is exactly the state a commit at that instant
//! would have named, so each journaling mode's crash guarantee is the
//! commit's.
//!
//! Recovery walks the log past the newest checkpoint (it always did, to
//! find it), collects the complete sets of roll-forward pages, applies
//! them in log order to the tables that checkpoint names, and the mount
//! commits. A set whose last page is missing, or that a torn record
//! before it hides, is ignored: its fsync had not returned.
//!
//! Why the pages the sets name are still there: everything after the
//! checkpoint was written to segments that were free in it, and a segment
//! emptied since it is not reused before the next checkpoint is durable
//! (the pre-free rule); recovery holds the segments it walked, and those
//! the sets emptied, the same way until the commit that makes the
//! rolled-forward state a checkpoint is durable.

use std::collections::BTreeMap;

use super::store::{now_ns, DataScope, Store};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, Nid, PageAddr, SegmentNo, Vpn};
use crate::meta_table::MAX_RECORDED;
use crate::meta_table::{RawEntry, ZERO_ENTRY};
use crate::page_life::life;
use crate::roll_forward::{Change, Counters, RollForwardPage, Target, CAPACITY};
use crate::room::{Demand, Tier};
use crate::segment_summary::{Entry, PageKind};

/// What recovery found after the newest checkpoint for the mount to roll
/// forward.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    /// Complete sets of roll-forward pages, in log order.
    pub sets: Vec<Vec<RollForwardPage>>,
    /// Segments the walk went through from the checkpoint to the last
    /// set's record.
    pub segments: Vec<SegmentNo>,
}

impl Pending {
    /// Nothing to roll forward?
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

/// Table entries an fsync may set besides two per data page and node it
/// writes (the quota file's pages, the record's own pages).
const RECORD_SLACK: usize = 256;

/// Roll-forward pages a set of `changes` changes takes.
fn pages_for(changes: usize) -> usize {
    changes.div_ceil(CAPACITY).max(1)
}

impl Store {
    /// Turns the recording of table changes on (a writable mount of the
    /// live root) or off.
    pub(crate) fn record_changes(&mut self, on: bool) {
        self.root.cache.nat.table().record_changes(on);
        self.pat.lock().table().record_changes(on);
        self.sut.table().record_changes(on);
        self.rolled_dead.clear();
    }

    /// Can the next sync be a roll-forward record? Not on a sealed volume
    /// (its page address entries do not fit the record's), not while
    /// anything but the live root is open or a snapshot is asked for (their
    /// records live in the checkpoint list, written only by a commit), and
    /// not when a table recorded more changes than a record should carry,
    /// nor before the live root's node address table records its changes
    /// (a root put in place by a rollback does from its first commit on).
    fn can_roll_forward(&mut self) -> bool {
        // Writing a data page or a node sets at most two page address
        // entries (its new vpn, the one it frees), one node address entry
        // and one segment's usage; the quota file's pages and the record's
        // own add a few. Each table must have room for that within its
        // bound, so that the record written next can carry it all (past
        // it, a commit writes the tables as pages, the cheaper form).
        let units = self.root.dirty.count() + self.root.cache.dirty_count();
        let room = |recorded: usize| recorded + 2 * units + RECORD_SLACK <= MAX_RECORDED;
        let quiet = self.sealer.is_none()
            && self.serving.0 == crate::roots::LIVE
            && self.parked.is_empty()
            && self.retain_as.is_none()
            && self.at.is_none()
            && self.cplist.table().dirty_count() == 0;
        quiet
            && self.root.cache.nat.table().is_recording()
            && room(self.root.cache.nat.table().changes_recorded())
            && room(self.pat.lock().table().changes_recorded())
            && room(self.sut.table().changes_recorded())
            && self.dead_waiting().is_some()
    }

    /// An fsync: the dirty data of `scope` and every dirty node made
    /// durable as a roll-forward record, or by a commit when one cannot be
    /// written (see [`Store::can_roll_forward`]) or would not fit.
    pub fn sync_rolling_forward(&mut self, scope: DataScope) -> Result<()> {
        self.check_health()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if !self.needs_commit() {
            // Nothing since the last commit; a superblock it wrote still
            // becomes durable, which lets emptied segments be reused.
            return self.settle();
        }
        if !self.can_roll_forward() {
            return self.commit_scope(scope, false);
        }
        let idle = self.root.dirty.count() == 0
            && self.root.cache.dirty_count() == 0
            && self.root.cache.usage.deltas().is_empty()
            && self.changes_waiting() == 0;
        if idle {
            // Nothing since the last record (whose flush may still run).
            return self.flush_owed(false);
        }
        let extra = Demand {
            pages: pages_for(self.changes_waiting()) as u64 + 2,
            nodes: 0,
        };
        if !self.fits(extra, Tier::Commit) {
            return self.commit_scope(scope, false);
        }
        let r = self.write_roll_forward(scope);
        self.poison_on(r)
    }

    /// Table changes waiting for a record, with the deadlist's.
    fn changes_waiting(&mut self) -> usize {
        let dead = self.dead_waiting().unwrap_or(0);
        self.root.cache.nat.table().changes_recorded()
            + self.pat.lock().table().changes_recorded()
            + self.sut.table().changes_recorded()
            + dead
    }

    fn write_roll_forward(&mut self, scope: DataScope) -> Result<()> {
        let dev_arc = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev_arc;
        let building = self.building();
        self.log.set_time(now_ns());
        if self.cold_unflushed {
            // Data the cleaner moved must be durable before a record
            // points at it (it went through the cleaner's own log head,
            // which recovery does not walk).
            self.flush_now()?;
            self.cold_unflushed = false;
        }
        self.write_data(dev, building, scope)?;
        self.fold_quota(dev, building)?;
        self.root
            .cache
            .write_dirty(dev, &mut life!(self, dev, building), &mut self.log)?;
        // The record's own pages change segment usage as they are handed
        // out: hand out enough for every change, those included.
        let mut slots: Vec<PageAddr> = Vec::new();
        while slots.len() < pages_for(self.changes_waiting()) {
            let a = self.log.alloc(dev, &mut self.sut, 1, None)?;
            // Dead at once: nothing points at it.
            life!(self, dev, building).died_at(a)?;
            slots.push(a);
        }
        let Some(changes) = self.take_changes() else {
            // A table went past its bound while the record was written
            // (the room `can_roll_forward` asks for should prevent it):
            // what is written so far is ordinary log, and a commit makes
            // it durable.
            for (i, a) in slots.iter().enumerate() {
                let filler = RollForwardPage::set_of(CheckpointNo(0), Counters::default(), &[]);
                let e = Entry::raw(PageKind::RollForward, i as u64, 0);
                self.log.fill(*a, e, &filler[0].encode()[..])?;
            }
            return self.commit_inner(scope, crate::roots::LIVE, false);
        };
        let pages = RollForwardPage::set_of(building, self.counters(), &changes);
        debug_assert_eq!(pages.len(), slots.len());
        for (a, p) in slots.iter().zip(&pages) {
            let e = Entry::raw(PageKind::RollForward, u64::from(p.part), building.0);
            self.log.fill(*a, e, &p.encode()[..])?;
        }
        self.log.finish(dev)?;
        self.stats.roll_forwards += 1;
        self.flush_writes()
    }

    /// How many deadlist entries were added since the last record, or
    /// `None` if the waiting lists shrank (only a commit does that: then a
    /// commit).
    fn dead_waiting(&self) -> Option<usize> {
        let mut n = 0;
        for (no, units) in &self.root.history.pending {
            let from = self.rolled_dead.get(no).copied().unwrap_or(0);
            n += units.len().checked_sub(from)?;
        }
        Some(n)
    }

    /// The deadlist entries added since the last record (see
    /// [`Store::dead_waiting`]).
    fn new_dead(&self) -> Option<Vec<Change>> {
        let mut out = Vec::new();
        for (no, units) in &self.root.history.pending {
            let from = self.rolled_dead.get(no).copied().unwrap_or(0);
            for &(vpn, birth) in units.get(from..)? {
                let mut entry = ZERO_ENTRY;
                entry[..8].copy_from_slice(&vpn.0.to_le_bytes());
                entry[8..16].copy_from_slice(&birth.0.to_le_bytes());
                out.push(Change {
                    target: Target::Deadlist,
                    index: no.0,
                    entry,
                });
            }
        }
        Some(out)
    }

    /// Every change since the last record, in table order; `None` if a
    /// table recorded too many.
    fn take_changes(&mut self) -> Option<Vec<Change>> {
        let dead = self.new_dead()?;
        let tagged = |target: Target, c: Option<Vec<(u64, RawEntry)>>| {
            c.map(|c| {
                c.into_iter()
                    .map(|(index, entry)| Change {
                        target,
                        index,
                        entry,
                    })
                    .collect::<Vec<_>>()
            })
        };
        let nat = tagged(
            Target::NodeAddress,
            self.root.cache.nat.table().take_changes(),
        );
        let pat = tagged(Target::PageAddress, self.pat.lock().table().take_changes());
        let sut = tagged(Target::SegmentUsage, self.sut.table().take_changes());
        for (no, units) in &self.root.history.pending {
            self.rolled_dead.insert(*no, units.len());
        }
        let mut all = nat?;
        all.extend(pat?);
        all.extend(sut?);
        all.extend(dead);
        Some(all)
    }

    /// The counters a checkpoint would record now.
    fn counters(&self) -> Counters {
        let pat = self.pat.state();
        Counters {
            nat_free_head: self.root.cache.nat.free_head().0,
            nat_watermark: self.root.cache.nat.watermark().0,
            pat_free_head: pat.free_head,
            pat_watermark: pat.watermark,
            next_generation: self.root.next_generation,
            inode_count: self.root.inode_count,
            reserved_pages: self.root.reserved_pages,
            live_pages: self.sut.live_pages,
            empty_segments: self.sut.empty_segments(),
        }
    }

    /// Applies what recovery found after the checkpoint this store opened
    /// (before anything else reads the tables).
    pub(crate) fn roll_forward(&mut self, pending: &Pending) -> Result<()> {
        let Some(last) = pending.sets.last().and_then(|s| s.last()) else {
            return Ok(());
        };
        let dev_arc = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev_arc;
        let building = self.building();
        for page in pending.sets.iter().flatten() {
            for c in &page.changes {
                self.apply(dev, c, building)?;
            }
        }
        let c = last.counters;
        self.root
            .cache
            .nat
            .set_counters(Nid(c.nat_free_head), Nid(c.nat_watermark));
        {
            let mut pat = self.pat.lock();
            pat.free_head = c.pat_free_head;
            pat.watermark = c.pat_watermark;
        }
        self.root.next_generation = c.next_generation;
        self.root.inode_count = c.inode_count;
        self.root.reserved_pages = c.reserved_pages;
        self.sut.live_pages = c.live_pages;
        self.sut.set_empty_segments(c.empty_segments);
        for &seg in &pending.segments {
            if self.sut.get(dev, seg)?.live == 0 {
                self.sut.hold(seg, building);
            }
        }
        self.root.changed = true;
        log::info!(
            "recovery: rolled forward {} fsync records after checkpoint {}",
            pending.sets.len(),
            self.cp.no
        );
        Ok(())
    }

    /// Applies one change, after checking it names an entry that can be.
    fn apply(&mut self, dev: &dyn BlockDevice, c: &Change, building: CheckpointNo) -> Result<()> {
        let geo = self.sb.geometry;
        let limit = match c.target {
            Target::NodeAddress => crate::node_table::id_limit(&geo).0,
            Target::PageAddress => crate::page_table::vpn_limit(&geo).0,
            Target::SegmentUsage => geo.segment_count,
            Target::Deadlist => u64::MAX,
        };
        if c.index >= limit {
            return Err(Error::corrupt(
                "roll-forward page",
                PageAddr::NONE,
                format!("{:?} entry {} is past the table's end", c.target, c.index),
            ));
        }
        match c.target {
            Target::NodeAddress => self.root.cache.nat.table().set(dev, c.index, &c.entry),
            Target::PageAddress => self.pat.lock().table().set(dev, c.index, &c.entry),
            Target::SegmentUsage => self.sut.replay(dev, SegmentNo(c.index), &c.entry, building),
            Target::Deadlist => {
                let no = CheckpointNo(c.index);
                if self.cplist.get(no).is_none() {
                    return Err(Error::corrupt(
                        "roll-forward page",
                        PageAddr::NONE,
                        format!("deadlist entries for checkpoint {no}, which is not retained"),
                    ));
                }
                let word = |at: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&c.entry[at..at + 8]);
                    u64::from_le_bytes(b)
                };
                let unit = (Vpn(word(0)), CheckpointNo(word(8)));
                self.root.history.pending.entry(no).or_default().push(unit);
                Ok(())
            }
        }
    }
}

/// Collects roll-forward sets during recovery's walk.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    found: Pending,
    open: Vec<RollForwardPage>,
    walked: Vec<SegmentNo>,
}

impl Collector {
    /// A checkpoint was found: what came before it is in it.
    pub(crate) fn restart(&mut self) {
        *self = Collector::default();
    }

    /// The walk reads a record in `seg`.
    pub(crate) fn enter(&mut self, seg: SegmentNo) {
        if self.walked.last() != Some(&seg) {
            self.walked.push(seg);
        }
    }

    /// A roll-forward page of the checkpoint being built after `newest`.
    pub(crate) fn page(&mut self, page: RollForwardPage, newest: CheckpointNo) {
        if page.checkpoint.0 != newest.0 + 1 {
            // Not this interval's (a filler, or stale).
            self.open.clear();
            return;
        }
        if page.part as usize != self.open.len() {
            // Out of order: the open set cannot complete; this page may
            // start the next one.
            self.open.clear();
            if page.part != 0 {
                return;
            }
        }
        let last = page.is_last();
        self.open.push(page);
        if last {
            self.found.sets.push(std::mem::take(&mut self.open));
            self.found.segments.clone_from(&self.walked);
        }
    }

    /// What the walk found.
    pub(crate) fn finish(self) -> Pending {
        self.found
    }
}

/// How many of each retained checkpoint's waiting deadlist entries
/// records already carry.
pub(crate) type RolledDead = BTreeMap<CheckpointNo, usize>;
