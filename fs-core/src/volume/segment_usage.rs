//! The segment usage table (SUT): live pages and newest write time per
//! segment. It says which segments are free, what `df` reports, and (for the
//! cleaner) which segments are worth cleaning.

use std::collections::{BTreeSet, HashMap};

use crate::codec::{Reader, Writer};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, PageAddr, SegmentNo};
use crate::layout::Geometry;
use crate::meta_table::{MetaTable, RawEntry, TableId, TableRoot};

/// One segment's usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Pages in the segment referenced by the current root.
    pub live: u32,
    /// Flags (none defined in version 2).
    pub flags: u32,
    /// Age of the segment's data, seconds since the epoch: its newest
    /// write, where data the cleaner moved keeps the age of the segment it
    /// came from; reset when an emptied segment is written again.
    pub mtime: i64,
}

impl Usage {
    /// Encodes the 16-byte entry.
    pub fn encode(&self) -> RawEntry {
        let mut raw = crate::meta_table::ZERO_ENTRY;
        let mut w = Writer::new(&mut raw);
        w.u32(0, self.live);
        w.u32(4, self.flags);
        w.i64(8, self.mtime);
        raw
    }

    /// Decodes the 16-byte entry of `seg`.
    pub fn decode(raw: &RawEntry, seg: SegmentNo) -> Result<Usage> {
        let r = Reader::new(raw, "segment usage entry", PageAddr(seg.0));
        Ok(Usage {
            live: r.u32(0)?,
            flags: r.u32(4)?,
            mtime: r.i64(8)?,
        })
    }
}

/// The segment usage table and the allocation state built on it.
#[derive(Debug)]
pub struct SegmentUsage {
    table: MetaTable,
    geometry: Geometry,
    /// Sum of live pages over all segments.
    pub live_pages: u64,
    /// Segments with no live page (free, prefree or active).
    pub empty_segments: u64,
    /// Segments emptied since they were last known durable-free: reusable
    /// only once the checkpoint that emptied them is durable and named by a
    /// superblock (see `docs/DESIGN.md`, "segment reuse").
    prefree: HashMap<SegmentNo, CheckpointNo>,
    /// Segments the log writer holds (current and next).
    active: Vec<SegmentNo>,
    cursor: u64,
    /// What the allocator and the cleaner look up (None until first used).
    index: Option<Index>,
}

/// What the allocator and the cleaner look up, kept beside the table so
/// that neither walks it per call: built by one walk when first needed,
/// then kept in step by every change of a count (about 60 bytes a
/// segment: 240 KiB for the 4,096 segments of an 8 GiB image).
#[derive(Debug, Default)]
struct Index {
    /// Each segment's live count and age, as the table has them.
    live: Vec<u32>,
    mtime: Vec<i64>,
    /// Segments with no live page.
    empty: BTreeSet<SegmentNo>,
    /// Segments partly live, not held by the log writer (the cleaner's
    /// candidates), least live first ...
    by_live: BTreeSet<(u32, SegmentNo)>,
    /// ... and oldest first.
    by_age: BTreeSet<(i64, SegmentNo)>,
}

impl Index {
    /// Files `seg` under its usage `u` (`active`: held by the log writer,
    /// so no candidate).
    fn file(&mut self, seg: SegmentNo, u: Usage, pps: u32, active: bool) {
        let k = seg.0 as usize;
        self.live[k] = u.live;
        self.mtime[k] = u.mtime;
        if u.live == 0 {
            self.empty.insert(seg);
        } else if u.live < pps && !active {
            self.by_live.insert((u.live, seg));
            self.by_age.insert((u.mtime, seg));
        }
    }

    /// Files `seg` again under its new usage `u`. The sets are touched
    /// only when its place in them changes: a page written into a segment
    /// the log writer holds (every page written) changes only the copy.
    fn refile(&mut self, seg: SegmentNo, u: Usage, pps: u32, active: bool) {
        let k = seg.0 as usize;
        let placed = |live: u32| match live {
            0 => 1,
            l if l < pps && !active => 2,
            _ => 0,
        };
        let (before, after) = (placed(self.live[k]), placed(u.live));
        if before == after && before != 2 {
            self.live[k] = u.live;
            self.mtime[k] = u.mtime;
            return;
        }
        self.unfile(seg);
        self.file(seg, u, pps, active);
    }

    /// Takes `seg` out of every set.
    fn unfile(&mut self, seg: SegmentNo) {
        let k = seg.0 as usize;
        self.empty.remove(&seg);
        self.by_live.remove(&(self.live[k], seg));
        self.by_age.remove(&(self.mtime[k], seg));
    }
}

impl SegmentUsage {
    /// Opens the table at `root`.
    pub fn new(
        root: TableRoot,
        geometry: Geometry,
        live_pages: u64,
        empty_segments: u64,
    ) -> SegmentUsage {
        SegmentUsage::open(root, geometry, (live_pages, empty_segments), None)
    }

    /// Opens the table at `root` of a volume sealed with `sealer` (if
    /// any), with the checkpoint's counts (live pages, empty segments).
    pub fn open(
        root: TableRoot,
        geometry: Geometry,
        (live_pages, empty_segments): (u64, u64),
        sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
    ) -> SegmentUsage {
        SegmentUsage {
            // The table is small (16 bytes a segment): keep it all cached.
            table: MetaTable::new(TableId::SegmentUsage, root, usize::MAX, sealer),
            geometry,
            live_pages,
            empty_segments,
            prefree: HashMap::new(),
            active: Vec::new(),
            cursor: 0,
            index: None,
        }
    }

    /// The index, built by one walk of the table the first time.
    fn index(&mut self, dev: &dyn BlockDevice) -> Result<&mut Index> {
        if self.index.is_none() {
            let n = self.geometry.segment_count as usize;
            let mut index = Index {
                live: vec![0; n],
                mtime: vec![0; n],
                ..Index::default()
            };
            let pps = self.geometry.pages_per_segment;
            for s in 0..n as u64 {
                let seg = SegmentNo(s);
                // A damaged entry fails the build, and with it every
                // allocation, with an error naming the segment: the space
                // accounting cannot be trusted past it.
                let u = self.get(dev, seg)?;
                index.file(seg, u, pps, self.active.contains(&seg));
            }
            self.index = Some(index);
        }
        Ok(self.index.as_mut().expect("built above"))
    }

    /// Records `seg`'s new usage `u` in the table and the index.
    fn put(&mut self, dev: &dyn BlockDevice, seg: SegmentNo, u: Usage) -> Result<()> {
        self.table.set(dev, seg.0, &u.encode())?;
        let (pps, active) = (self.geometry.pages_per_segment, self.active.contains(&seg));
        if let Some(index) = self.index.as_mut() {
            index.refile(seg, u, pps, active);
        }
        Ok(())
    }

    /// Sets `seg`'s entry to `raw` (a roll-forward record's), holding it
    /// from reuse until checkpoint `building` is durable if that empties
    /// it.
    pub(crate) fn replay(
        &mut self,
        dev: &dyn BlockDevice,
        seg: SegmentNo,
        raw: &RawEntry,
        building: CheckpointNo,
    ) -> Result<()> {
        let was = self.get(dev, seg)?.live;
        let now = Usage::decode(raw, seg)?;
        self.put(dev, seg, now)?;
        if was > 0 && now.live == 0 {
            self.hold(seg, building);
        }
        Ok(())
    }

    /// Sets every segment's live count to `counted` (a repair's recount;
    /// past its end, none), or to the larger of the two unless `lower`;
    /// a segment live again is aged `now`. The totals follow.
    /// Counts every segment leaf `index` of the table covers full (a
    /// repair's, for a leaf built again while the recount is not whole).
    pub(crate) fn fill_leaf(&mut self, dev: &dyn BlockDevice, index: u64, now: i64) -> Result<()> {
        let pps = self.geometry.pages_per_segment;
        let segments = self.table.entries_under(0, index);
        for s in segments.start..segments.end.min(self.geometry.segment_count) {
            let full = Usage {
                live: pps,
                flags: 0,
                mtime: now,
            };
            self.table.set(dev, s, &full.encode())?;
        }
        Ok(())
    }

    pub(crate) fn rebase(
        &mut self,
        dev: &dyn BlockDevice,
        counted: &[u32],
        lower: bool,
        now: i64,
    ) -> Result<()> {
        let (mut live, mut empty) = (0u64, 0u64);
        let pps = self.geometry.pages_per_segment;
        for s in 0..self.geometry.segment_count {
            let seg = SegmentNo(s);
            // Read past the bound `get` puts on a count: a count larger
            // than its segment is what a recount mends.
            let mut u = Usage::decode(&self.table.get(dev, s)?, seg)?;
            let c = counted.get(s as usize).copied().unwrap_or(0);
            let want = if lower { c } else { c.max(u.live.min(pps)) };
            if want != u.live {
                if u.live == 0 {
                    u.mtime = now;
                }
                u.live = want;
                self.table.set(dev, s, &u.encode())?;
            }
            live += u64::from(u.live);
            empty += u64::from(u.live == 0);
        }
        self.live_pages = live;
        self.empty_segments = empty;
        self.prefree.clear();
        // Built again from the table when first needed.
        self.index = None;
        Ok(())
    }

    /// Segments partly live that the log writer does not hold, least live
    /// first, with their usage: the cleaner's candidates.
    pub fn partly_live(
        &mut self,
        dev: &dyn BlockDevice,
    ) -> Result<impl Iterator<Item = (SegmentNo, Usage)> + '_> {
        let index = self.index(dev)?;
        let (live, mtime) = (&index.live, &index.mtime);
        Ok(index.by_live.iter().map(move |&(_, seg)| {
            let k = seg.0 as usize;
            let u = Usage {
                live: live[k],
                flags: 0,
                mtime: mtime[k],
            };
            (seg, u)
        }))
    }

    /// The oldest age among [`SegmentUsage::partly_live`] (None: there
    /// are none).
    pub fn oldest_partly_live(&mut self, dev: &dyn BlockDevice) -> Result<Option<i64>> {
        Ok(self.index(dev)?.by_age.first().map(|(mtime, _)| *mtime))
    }

    /// The underlying table, for checkpoint writes and checkers.
    pub fn table(&mut self) -> &mut MetaTable {
        &mut self.table
    }

    /// Levels of the table above its leaves now.
    pub fn depth(&self) -> u8 {
        self.table.depth()
    }

    /// Usage of `seg`.
    pub fn get(&mut self, dev: &dyn BlockDevice, seg: SegmentNo) -> Result<Usage> {
        let u = Usage::decode(&self.table.get(dev, seg.0)?, seg)?;
        // A count read from disk bounds every later add and subtract.
        if u.live > self.geometry.pages_per_segment {
            let msg = format!(
                "segment {seg} counts {} live pages, more than it has",
                u.live
            );
            return Err(Error::corrupt("segment usage table", PageAddr::NONE, msg));
        }
        Ok(u)
    }

    /// Counts `addr` as referenced (a page written at time `now`).
    pub(crate) fn add_live(
        &mut self,
        dev: &dyn BlockDevice,
        addr: PageAddr,
        now: i64,
    ) -> Result<()> {
        let seg = self.segment(addr)?;
        let mut u = self.get(dev, seg)?;
        if u.live == 0 {
            self.empty_segments = self.empty_segments.saturating_sub(1);
            self.prefree.remove(&seg);
            // A reused segment's age starts again: what it held before is gone.
            u.mtime = now;
        }
        u.live += 1;
        u.mtime = u.mtime.max(now);
        self.live_pages += 1;
        self.put(dev, seg, u)
    }

    /// Counts `addr` as no longer referenced by the root being built
    /// (checkpoint `building`).
    pub(crate) fn remove_live(
        &mut self,
        dev: &dyn BlockDevice,
        addr: PageAddr,
        building: CheckpointNo,
    ) -> Result<()> {
        let seg = self.segment(addr)?;
        let mut u = self.get(dev, seg)?;
        if u.live == 0 {
            return Err(Error::corrupt(
                "segment usage table",
                addr,
                format!("page freed twice: segment {seg} already has no live page"),
            ));
        }
        u.live -= 1;
        self.live_pages = self.live_pages.saturating_sub(1);
        if u.live == 0 {
            self.empty_segments += 1;
            self.prefree.insert(seg, building);
        }
        self.put(dev, seg, u)
    }

    fn segment(&self, addr: PageAddr) -> Result<SegmentNo> {
        self.geometry.segment_of(addr).ok_or_else(|| {
            Error::corrupt("block pointer", addr, "address outside the segment area")
        })
    }

    /// Keeps empty `seg` from reuse until checkpoint `building` is durable
    /// (recovery: it holds records the roll-forward came from).
    pub(crate) fn hold(&mut self, seg: SegmentNo, building: CheckpointNo) {
        self.prefree.insert(seg, building);
    }

    /// Sets the count of empty segments (recovery, from a roll-forward
    /// record).
    pub(crate) fn set_empty_segments(&mut self, n: u64) {
        self.empty_segments = n;
    }

    /// Makes segments emptied by checkpoints up to `durable` reusable.
    /// Returns those no log head holds, in order: the store may drop what
    /// they hold. One a head still holds (every page the cleaner's head
    /// moved into it died) is reusable as before but not returned: it is
    /// still being written, and its next life replaces what the store has.
    pub fn release_prefree(&mut self, durable: CheckpointNo) -> Vec<SegmentNo> {
        let active = &self.active;
        let mut released: Vec<SegmentNo> = self
            .prefree
            .iter()
            .filter(|(s, cp)| **cp <= durable && !active.contains(s))
            .map(|(s, _)| *s)
            .collect();
        self.prefree.retain(|_, cp| *cp > durable);
        released.sort_unstable();
        released
    }

    /// Marks `seg` as held by the log writer (or no longer, with `false`).
    pub fn set_active(&mut self, seg: SegmentNo, active: bool) {
        self.active.retain(|s| *s != seg);
        if active {
            self.active.push(seg);
        }
        let pps = self.geometry.pages_per_segment;
        if let Some(index) = self.index.as_mut() {
            let k = seg.0 as usize;
            let u = Usage {
                live: index.live[k],
                flags: 0,
                mtime: index.mtime[k],
            };
            index.unfile(seg);
            index.file(seg, u, pps, active);
        }
    }

    /// Finds a segment that may be written: empty, not prefree, not active.
    /// Next fit: the first after the one handed out last, so that the
    /// log sweeps the device rather than refilling its start.
    pub fn find_free(&mut self, dev: &dyn BlockDevice) -> Result<Option<SegmentNo>> {
        let from = SegmentNo(self.cursor);
        self.index(dev)?;
        let (index, active, prefree) = (self.index.as_ref(), &self.active, &self.prefree);
        let empty = &index.expect("built above").empty;
        let found = empty
            .range(from..)
            .chain(empty.range(..from))
            .find(|s| !active.contains(s) && !prefree.contains_key(s))
            .copied();
        if let Some(seg) = found {
            self.cursor = (seg.0 + 1) % self.geometry.segment_count;
        }
        Ok(found)
    }

    /// Takes a segment for a log head: a free one (see
    /// [`SegmentUsage::find_free`]), marked held, and opened in the store
    /// (a new life begins: what it held before is void).
    pub fn take_free(&mut self, dev: &dyn BlockDevice) -> Result<SegmentNo> {
        let seg = self.find_free(dev)?.ok_or(Error::NoSpace)?;
        self.set_active(seg, true);
        dev.open_segment(seg)?;
        Ok(seg)
    }

    /// Is `seg` held by the log writer?
    pub fn is_active(&self, seg: SegmentNo) -> bool {
        self.active.contains(&seg)
    }

    /// Segments emptied but waiting for a durable commit before reuse.
    pub fn prefree_segments(&self) -> u64 {
        self.prefree.len() as u64
    }

    /// Empty segments that can be written now.
    pub fn writable_segments(&self) -> u64 {
        let held = self.prefree.len() as u64 + self.active.len() as u64;
        self.empty_segments.saturating_sub(held)
    }

    /// Empty segments including those waiting for a durable checkpoint.
    pub fn empty_segments(&self) -> u64 {
        self.empty_segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    fn geo() -> Geometry {
        Geometry {
            pages_per_segment: 16,
            segment_count: 8,
            first_segment_page: 2,
        }
    }

    #[test]
    fn usage_codec_golden() {
        let u = Usage {
            live: 5,
            flags: 0,
            mtime: 1000,
        };
        let raw = u.encode();
        assert_eq!(&raw[0..4], &5u32.to_le_bytes());
        assert_eq!(&raw[8..16], &1000i64.to_le_bytes());
        assert_eq!(Usage::decode(&raw, SegmentNo(0)).expect("decode"), u);
    }

    #[test]
    fn emptied_segment_waits_for_durable_checkpoint() {
        let dev = MemDevice::new(200);
        let g = geo();
        let mut sut = SegmentUsage::new(TableRoot::default(), g, 0, 8);
        let a = g.segment_start(SegmentNo(0));
        sut.add_live(&dev, a, 10).expect("add");
        assert_eq!(sut.empty_segments(), 7);
        sut.set_active(SegmentNo(1), true);
        assert_eq!(sut.find_free(&dev).expect("find"), Some(SegmentNo(2)));
        sut.remove_live(&dev, a, CheckpointNo(4)).expect("remove");
        assert_eq!(sut.empty_segments(), 8);
        // Segment 0 is prefree until checkpoint 4 is durable.
        for _ in 0..8 {
            assert_ne!(sut.find_free(&dev).expect("find"), Some(SegmentNo(0)));
        }
        sut.release_prefree(CheckpointNo(3));
        for _ in 0..8 {
            assert_ne!(sut.find_free(&dev).expect("find"), Some(SegmentNo(0)));
        }
        sut.release_prefree(CheckpointNo(4));
        let found: Vec<_> = (0..8)
            .filter_map(|_| sut.find_free(&dev).expect("find"))
            .collect();
        assert!(found.contains(&SegmentNo(0)));
        assert!(!found.contains(&SegmentNo(1)), "active segment handed out");
    }

    /// What the index answers, found by walking the table (the way
    /// both were found before the index).
    fn walked(
        sut: &mut SegmentUsage,
        dev: &MemDevice,
    ) -> (Vec<SegmentNo>, Vec<(SegmentNo, Usage)>) {
        let g = sut.geometry;
        let mut empty = Vec::new();
        let mut partly = Vec::new();
        for s in 0..g.segment_count {
            let seg = SegmentNo(s);
            let u = sut.get(dev, seg).expect("get");
            if u.live == 0 && !sut.is_active(seg) && !sut.prefree.contains_key(&seg) {
                empty.push(seg);
            }
            if u.live > 0 && u.live < g.pages_per_segment && !sut.is_active(seg) {
                partly.push((seg, u));
            }
        }
        partly.sort_by_key(|(seg, u)| (u.live, *seg));
        (empty, partly)
    }

    proptest::proptest! {
        /// After any sequence of page births and deaths, activations and
        /// releases, the index agrees with a walk of the table.
        #[test]
        fn the_index_agrees_with_a_walk(
            ops in proptest::collection::vec((0u8..4, 0u64..8, 0u32..16, 0i64..100), 1..200)
        ) {
            let dev = MemDevice::new(200);
            let g = geo();
            let mut sut = SegmentUsage::new(TableRoot::default(), g, 0, 8);
            for (step, (op, s, page, t)) in ops.into_iter().enumerate() {
                let seg = SegmentNo(s);
                let addr = PageAddr(g.segment_start(seg).0 + u64::from(page));
                match op {
                    0 => {
                        if sut.get(&dev, seg).expect("get").live < g.pages_per_segment {
                            sut.add_live(&dev, addr, t).expect("add");
                        }
                    }
                    1 => {
                        if sut.get(&dev, seg).expect("get").live > 0 {
                            sut.remove_live(&dev, addr, CheckpointNo(step as u64)).expect("remove");
                        }
                    }
                    2 => sut.set_active(seg, t % 2 == 0),
                    _ => {
                        sut.release_prefree(CheckpointNo(step as u64));
                    }
                }
                let (empty, partly) = walked(&mut sut, &dev);
                let indexed: Vec<_> = sut.partly_live(&dev).expect("index").collect();
                proptest::prop_assert_eq!(&indexed, &partly);
                let oldest = partly.iter().map(|(_, u)| u.mtime).min();
                proptest::prop_assert_eq!(sut.oldest_partly_live(&dev).expect("index"), oldest);
                let cursor = sut.cursor;
                let want = empty.iter().find(|x| x.0 >= cursor).or(empty.first()).copied();
                proptest::prop_assert_eq!(sut.find_free(&dev).expect("find"), want);
            }
        }
    }

    #[test]
    fn double_free_is_corruption() {
        let dev = MemDevice::new(200);
        let g = geo();
        let mut sut = SegmentUsage::new(TableRoot::default(), g, 0, 8);
        let a = g.segment_start(SegmentNo(3));
        assert!(matches!(
            sut.remove_live(&dev, a, CheckpointNo(1)),
            Err(Error::Corrupt { .. })
        ));
        assert!(sut.add_live(&dev, PageAddr(1), 0).is_err());
    }
}
