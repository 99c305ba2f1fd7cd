//! The segment cleaner: turns segments full of dead pages back into free
//! segments by moving their live pages to the head of the log.
//!
//! A unit (file data, a node, a page of a node address table) is live
//! exactly when the page address table still points at it: the cleaner
//! reads a victim's record summaries, which name each unit's vpn, and
//! keeps what the table points at. It never asks who owns a unit, so a
//! unit that only a retained checkpoint needs is moved like any other,
//! and moving it changes one table entry, never the trees that point at
//! it. Pages of the current-only tables (page addresses, segment usage)
//! and the checkpoint are live when the table or store still keeps them
//! there; they are marked dirty, and the next commit moves them.
//!
//! Live units are copied (in owner order, keeping their age) to the
//! cleaner's own log head, apart from the user's new (hot) data. The
//! victim then holds no live unit; it becomes free once a durable
//! superblock names the commit that records the moves, exactly like a
//! segment emptied by deletes (see "segment reuse" in DESIGN.md), so a
//! crash at any moment of cleaning finds either the old copies or the new
//! ones, both whole.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use crate::block_ptr::BlockPtr;
use crate::codec::crc32;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, Ino, Nid, PageAddr, SegmentNo, Vpn};
use crate::layout::PAGE_SIZE;
use crate::meta_table::TableId;
use crate::page_life::life;
use crate::page_table::PatEntry;
use crate::room::{self, Demand, Tier};
use crate::segment_summary::{Entry, PageKind};
use crate::segment_usage::Usage;
use crate::store::Store;

/// How victims are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Sprite LFS's cost-benefit: free space gained times age, over the
    /// cost of reading the segment and writing its live pages back. Cold
    /// segments are cleaned at a higher utilisation than hot ones, which
    /// are left to die on their own.
    CostBenefit,
    /// The segment with the fewest live pages: the most space for the
    /// least copying right now (under pressure).
    Greedy,
}

/// One cleaning pass's orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// How victims are chosen.
    pub policy: Policy,
    /// Segments emptied at most.
    pub batch: usize,
    /// Segments with more live pages than this percentage are left alone.
    pub max_live_percent: u8,
    /// Commit (and make durable) at once, so the victims are free now.
    pub commit: bool,
    /// The filesystem is short of room: the pass may use the cleaner's
    /// reserve, and writes the data it moves through the main log head,
    /// which holds no segments of its own (see `room.rs`).
    pub urgent: bool,
}

/// Tunables (mount options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanerOptions {
    /// Clean in the background while the filesystem is idle.
    pub background: bool,
    /// Background cleaning starts when fewer than this percentage of all
    /// segments are free.
    pub start_percent: u8,
    /// ... and stops once this percentage is free.
    pub stop_percent: u8,
    /// Background cleaning leaves alone segments with more than this
    /// percentage of live pages (copying them gains too little).
    pub max_live_percent: u8,
    /// Segments one cleaning pass empties at most.
    pub batch: usize,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            background: true,
            start_percent: 10,
            stop_percent: 20,
            max_live_percent: 90,
            batch: 8,
        }
    }
}

/// What the cleaner did since mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanerStats {
    /// Cleaning passes.
    pub passes: u64,
    /// Of those, passes run by a writer (running low, or short of space)
    /// rather than in the background.
    pub foreground_passes: u64,
    /// Segments emptied.
    pub segments_cleaned: u64,
    /// Live pages copied (units) or rewritten (table pages).
    pub pages_moved: u64,
    /// Segments that did not empty (a page the summaries do not explain;
    /// left alone for the rest of the mount, and logged).
    pub segments_refused: u64,
}

/// A unit on its way to the cleaner's log head.
#[derive(Debug)]
struct Move {
    vpn: Vpn,
    /// Where it is now.
    from: PatEntry,
    /// Its summary entry (kind, owner, index, transform, stored length).
    entry: Entry,
    /// Its stored bytes, as they are (the cleaner never undoes a
    /// transform).
    bytes: Vec<u8>,
    /// Age of the segment it comes from (seconds since the epoch).
    age: i64,
}

/// What a live page is, and so what moving it takes.
enum LiveUse {
    /// A unit the page address table points at: copied.
    Unit(Vpn, PatEntry, Entry),
    /// A node of the live root that no retained checkpoint needs: marked
    /// dirty, and the next commit writes it elsewhere (its old copy is
    /// then freed), as any change to it would. Copying it would open the
    /// cleaner's head for a page the commit may rewrite anyway.
    Node(Nid),
    /// A page of the live root's node address table, likewise.
    NatPage(u8, u64),
    /// A page of a current-only table: rewritten by the next commit.
    Table(TableId, u8, u64),
    /// The last checkpoint: replaced by the next commit.
    Checkpoint,
}

/// Cleaner state kept by the store.
#[derive(Debug, Default)]
pub struct Cleaner {
    /// Counters.
    pub stats: CleanerStats,
    /// Segments that would not empty this mount.
    refused: HashSet<SegmentNo>,
    /// Segments whose live pages a pass without a commit has moved or
    /// marked dirty: the next commit empties them.
    pub(crate) emptying: HashSet<SegmentNo>,
    /// Pages the cleaner's heads closed this mount had written.
    closed_cold_pages: u64,
    /// The last admission that found no room: the state it left, and the
    /// free segments it needed. An operation needing as much in the same
    /// state fails at once rather than commit and clean in vain again (the
    /// kernel's writeback cache sends a refused file's pages one request
    /// after another).
    full_at: Option<(SpaceState, u64)>,
}

/// What can change whether an operation fits: the live pages, the retained
/// checkpoints, the free and emptied segments, and whether a commit would
/// give anything back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpaceState {
    live_pages: u64,
    checkpoints: usize,
    writable: u64,
    pending: u64,
    needs_commit: bool,
}

/// A score ordered by `total_cmp` (for a heap of the best few).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A victim's score: higher is cleaned first.
fn score(policy: Policy, live: u32, pps: u32, age: i64) -> f64 {
    let u = f64::from(live) / f64::from(pps);
    match policy {
        Policy::Greedy => 1.0 - u,
        // (1 - u) * age / (1 + u): reading the segment costs 1, writing
        // the live part back costs u.
        Policy::CostBenefit => (1.0 - u) * (age.max(1) as f64) / (1.0 + u),
    }
}

/// The `batch` best candidates of `partly` by score, best first, as
/// (score, segment, live, mtime), for `policy` over segments of `pps`
/// pages at time `now`, the oldest candidate's age being `oldest`.
///
/// Candidates come least live first. Once `batch` are held, a later one
/// (as live or more) beats the weakest held only by being older, and no
/// score passes that of its live count at the oldest age: when that bound
/// cannot beat the weakest, none after can, and the walk stops (greedy:
/// after `batch + 1`; cost-benefit: when age no longer makes up for live
/// pages). So a pass does not walk every segment.
fn best(
    partly: impl Iterator<Item = (SegmentNo, Usage)>,
    (policy, pps): (Policy, u32),
    batch: usize,
    now: i64,
    oldest: i64,
) -> Vec<(f64, SegmentNo, u32, i64)> {
    let batch = batch.max(1);
    let oldest_age = now.saturating_sub(oldest);
    let mut weakest = BinaryHeap::new();
    let mut candidates = Vec::new();
    for (seg, u) in partly {
        if weakest.len() >= batch {
            let bound = score(policy, u.live, pps, oldest_age);
            if weakest
                .peek()
                .is_some_and(|Reverse(Score(floor))| bound <= *floor)
            {
                break;
            }
        }
        let s = score(policy, u.live, pps, now.saturating_sub(u.mtime));
        weakest.push(Reverse(Score(s)));
        if weakest.len() > batch {
            weakest.pop();
        }
        candidates.push((s, seg, u.live, u.mtime));
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    candidates.truncate(batch);
    candidates
}

impl Store {
    /// Free segments below which writers start sharing the cleaning work
    /// (one cost-benefit pass each, moving data without a commit), before
    /// any of them has to wait for an urgent pass: 3% of the segments, at
    /// least four.
    pub fn low_water(&self) -> u64 {
        (self.sb.geometry.segment_count * 3 / 100).max(4)
    }

    /// Makes sure an operation that may add `need` to the next commit can
    /// run with the reserves of its `tier` left over (see `room.rs`):
    /// fails with `NoSpace`, having changed nothing the next commit needs,
    /// when even committing and cleaning cannot make that room. Running
    /// low, the caller first does one cost-benefit pass that moves data
    /// without a commit; short, it commits (which always fits), so that
    /// the segments that commit empties come back, then runs urgent greedy
    /// passes, each with a commit, until the operation fits.
    pub fn admit(&mut self, need: Demand, tier: Tier) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.with_live(|s| s.admit_live(need, tier))
    }

    /// [`Store::admit`] with the live root in place.
    fn admit_live(&mut self, need: Demand, tier: Tier) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        if self.fits_with(need, tier, self.low_water()) {
            return Ok(());
        }
        if let Some((state, n)) = self.cleaner.full_at {
            if state == self.space_state() && self.segments_needed(need, tier) >= n {
                return Err(Error::NoSpace);
            }
        }
        // Segments emptied by the last commit come back with its
        // superblock (flushed now, even in an fsync handing its flush out).
        self.settle_now()?;
        if self.fits(need, tier) {
            if tier == Tier::Data && self.pending_segments() < self.low_water() {
                self.foreground_pass(Policy::CostBenefit, false)?;
            }
            return Ok(());
        }
        // Short: commit, then clean a little past the need (four segments,
        // or the low-water mark if smaller), so that the next writes do
        // not each wait for a pass.
        let margin = self.low_water().min(4);
        for _ in 0..64 {
            if self.fits_with(need, tier, margin) {
                return Ok(());
            }
            let before = self.sut.writable_segments();
            if self.needs_commit() || self.pending_segments() > 0 {
                self.root.changed = true;
                self.commit_checked(crate::store::DataScope::All, true)?;
                continue;
            }
            let freed = self.foreground_pass(Policy::Greedy, true)?;
            if self.sut.writable_segments() > before {
                continue;
            }
            // Cleaning gained nothing. First the segment the cleaner's
            // head holds next comes back (it costs nothing kept).
            if freed == 0 && self.cold.is_some() {
                self.close_cold()?;
                continue;
            }
            // Then what is not live is held by retained checkpoints: the
            // protection window gives way, and the oldest plain
            // checkpoint's pages come back with the next commit.
            let r = self.give_way();
            if self.poison_on(r)? {
                continue;
            }
            if freed == 0 {
                break;
            }
        }
        if self.fits(need, tier) {
            Ok(())
        } else {
            let held = self.held_by_snapshots();
            if held > 0 {
                log::warn!(
                    "no space left: snapshots hold {} MiB that nothing else does; `pagelog-snapshot list` shows them, `pagelog-snapshot delete NAME` gives one back",
                    (held * crate::layout::PAGE_SIZE as u64) >> 20
                );
            }
            log::debug!(
                "no room for {need:?} ({tier:?}): {} segments needed, {} writable",
                self.segments_needed(need, tier),
                self.sut.writable_segments()
            );
            // Also after 64 rounds that still gained a little: a filesystem
            // that 64 passes could not make room in is full for this
            // operation until something changes the state (in the FUSE
            // tests that is how refusals end, each costing seconds).
            let needed = self.segments_needed(need, tier);
            self.cleaner.full_at = Some((self.space_state(), needed));
            Err(Error::NoSpace)
        }
    }

    fn space_state(&self) -> SpaceState {
        SpaceState {
            live_pages: self.sut.live_pages,
            checkpoints: self.cplist.len(),
            writable: self.sut.writable_segments(),
            pending: self.pending_segments(),
            needs_commit: self.needs_commit(),
        }
    }

    /// A pass run by a writer: cost-benefit without a commit when running
    /// low, or urgent greedy with a commit when short. Returns the
    /// segments it freed.
    fn foreground_pass(&mut self, policy: Policy, urgent: bool) -> Result<usize> {
        let passes = self.cleaner.stats.passes;
        let freed = self.clean(Pass {
            policy,
            batch: self.cleaner_options.batch,
            max_live_percent: 100,
            commit: urgent,
            urgent,
        })?;
        if self.cleaner.stats.passes > passes {
            self.cleaner.stats.foreground_passes += 1;
        }
        Ok(freed)
    }

    /// Segments already emptied that the next durable commit makes
    /// writable.
    pub fn pending_segments(&self) -> u64 {
        self.sut.prefree_segments() + self.cleaner.emptying.len() as u64
    }

    /// One cleaning pass: picks up to `pass.batch` victims by
    /// `pass.policy`, and moves their live pages. With `pass.commit`, a
    /// commit (made durable) frees them at once; without, their data
    /// moves now and the next commit frees them (writers running low share
    /// the work this way without a commit each). Returns the segments
    /// emptied.
    pub fn clean(&mut self, pass: Pass) -> Result<usize> {
        self.with_live(|s| s.clean_live(pass))
    }

    /// [`Store::clean`] with the live root in place.
    fn clean_live(&mut self, pass: Pass) -> Result<usize> {
        self.check_health()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let victims = self.choose_victims(&pass)?;
        if victims.is_empty() {
            return Ok(0);
        }
        // Reads go side by side (the writer waiting for this pass waits
        // for one read, not one after another), and only what is needed:
        // the summary pages, then the runs of live data pages.
        let dev = self.dev.clone();
        let geo = self.sb.geometry;
        let log = (self.sb.hash_seed, self.sealer.as_deref());
        let chains = crate::parallel::map(&victims, |(seg, _)| read_chain(&*dev, &geo, log, *seg));
        let mut found = Vec::new();
        for ((seg, age), chain) in victims.into_iter().zip(chains) {
            match chain
                .map_err(Error::from)
                .and_then(|c| self.find_live(seg, age, &c))
            {
                Ok(f) => found.push(f),
                Err(e) => self.refuse(seg, &e.to_string()),
            }
        }
        let runs = data_runs(&found);
        let bufs = crate::parallel::map(&runs, |r| {
            let mut buf = vec![0u8; r.len as usize * PAGE_SIZE];
            dev.read(
                geo.segment_start(found[r.victim].seg).offset(r.off),
                &mut buf,
            )
            .map(|()| buf)
        });
        let mut pages: Vec<Vec<RunRead<'_>>> = found.iter().map(|_| Vec::new()).collect();
        for (r, b) in runs.iter().zip(bufs) {
            pages[r.victim].push((r, b));
        }
        let (mut taken, mut moves) = (Vec::new(), Vec::new());
        for (f, runs) in found.into_iter().zip(pages) {
            let (seg, live) = (f.seg, f.pages);
            match self.take(f, &runs) {
                Ok(m) => {
                    self.cleaner.stats.pages_moved += live;
                    moves.extend(m);
                    taken.push(seg);
                }
                Err(e) => self.refuse(seg, &e.to_string()),
            }
        }
        self.root.changed = true;
        let building = self.building();
        let r = self.write_moves(&*dev, building, moves, pass.urgent);
        self.poison_on(r)?;
        if pass.commit {
            self.commit_checked(crate::store::DataScope::All, true)?;
        }
        let (mut freed, mut emptying) = (0, 0);
        for seg in taken {
            let live = self.sut.get(&*dev, seg)?.live;
            if live == 0 {
                freed += 1;
            } else if !pass.commit {
                // Its nodes and table pages move with the next commit.
                self.cleaner.emptying.insert(seg);
                emptying += 1;
            } else {
                let why = format!("{live} pages are live that its summaries do not explain");
                self.refuse(seg, &why);
            }
        }
        self.cleaner.stats.passes += 1;
        self.cleaner.stats.segments_cleaned += (freed + emptying) as u64;
        Ok(freed)
    }

    fn refuse(&mut self, seg: SegmentNo, why: &str) {
        log::error!("cleaner: segment {seg} cannot be emptied ({why}); leaving it alone until the next mount; run pagelog-fsck");
        self.cleaner.refused.insert(seg);
        self.cleaner.stats.segments_refused += 1;
    }

    /// Victims, best first, with the age of their data, as many as the
    /// room in the log lets the pass move (see [`Store::pass_fits`]).
    fn choose_victims(&mut self, pass: &Pass) -> Result<Vec<(SegmentNo, i64)>> {
        let (policy, batch, max_live_percent) = (pass.policy, pass.batch, pass.max_live_percent);
        let dev = self.dev.clone();
        let geo = self.sb.geometry;
        let pps = geo.pages_per_segment;
        let max_live = u64::from(pps) * u64::from(max_live_percent.min(100)) / 100;
        let now = crate::store::now_ns() / 1_000_000_000;
        let oldest = self.sut.oldest_partly_live(&*dev)?.unwrap_or(now);
        let (refused, emptying) = (&self.cleaner.refused, &self.cleaner.emptying);
        let partly = self
            .sut
            .partly_live(&*dev)?
            .take_while(|(_, u)| u64::from(u.live) <= max_live)
            .filter(|(seg, _)| !refused.contains(seg) && !emptying.contains(seg));
        let candidates = best(partly, (policy, pps), batch, now, oldest);
        let mut out = Vec::new();
        let mut used = 0u64;
        for (_, seg, live, mtime) in candidates {
            if out.len() >= batch || !self.pass_fits(used + u64::from(live), pass.urgent) {
                break;
            }
            used += u64::from(live);
            out.push((seg, mtime));
        }
        Ok(out)
    }

    /// Can a pass move `live` live pages, and then commit? Each may be a
    /// unit, copied, or a node or node address table page of the live
    /// root, written again by the commit: at most one page and one node
    /// each. An urgent pass writes through the main head and may use the
    /// cleaner's reserve; any other writes through the cleaner's head
    /// (opening it takes two free segments) and leaves every reserve an
    /// operation that takes space must leave.
    fn pass_fits(&self, live: u64, urgent: bool) -> bool {
        if urgent {
            let need = Demand {
                pages: live,
                nodes: live,
            };
            return self.fits(need, Tier::Cleaner);
        }
        let pps = self.sb.geometry.pages_per_segment;
        let unit = self.largest_unit();
        let cold = match &self.cold {
            Some(c) => room::segments_for(live, c.remaining_in_segment(), pps, unit),
            None => 2 + room::segments_for(live, u64::from(pps), pps, unit),
        };
        let need = Demand {
            pages: 0,
            nodes: live,
        };
        cold + self.segments_needed(need, Tier::Data) <= self.sut.writable_segments()
    }

    /// Lets the cleaner's head go: its current segment becomes an ordinary
    /// partly written one, and the segment it held next is free again. A
    /// filesystem short of room cleans through the main head instead.
    pub(crate) fn close_cold(&mut self) -> Result<()> {
        let Some(mut cold) = self.cold.take() else {
            return Ok(());
        };
        let dev = self.dev.clone();
        let r = cold.close(&*dev, &mut self.sut);
        self.poison_on(r)?;
        self.cleaner.closed_cold_pages += cold.pages_written;
        Ok(())
    }

    /// The live pages of segment `seg`, from its summaries (`chain`) and
    /// their owners. Fails when they are fewer than the usage table counts
    /// (a summary is wrong: moving the rest would not empty the segment).
    fn find_live(&mut self, seg: SegmentNo, age: i64, chain: &[(u64, Entry)]) -> Result<Found> {
        let dev = self.dev.clone();
        let start = self.sb.geometry.segment_start(seg);
        let (mut uses, mut explained) = (Vec::new(), 0);
        for (off, e) in chain {
            if let Some(u) = self.live_use(&*dev, start.offset(*off), e)? {
                uses.push((*off, u));
                explained += e.pages();
            }
        }
        let live = u64::from(self.sut.get(&*dev, seg)?.live);
        if explained != live {
            return Err(Error::corrupt(
                format!("segment {seg}"),
                start,
                format!("usage table counts {live} live pages, its summaries explain {explained}"),
            ));
        }
        Ok(Found {
            seg,
            age,
            uses,
            pages: live,
        })
    }

    /// Arranges for every live page of a victim to move: marks its table
    /// pages dirty, and returns copies of its units (`runs`: them as read).
    /// Fails, moving nothing, when a unit cannot be read or fails its
    /// checksum: a copy would carry the damage to a place where the
    /// pointer's checksum no longer flags it.
    fn take(&mut self, f: Found, runs: &[RunRead<'_>]) -> Result<Vec<Move>> {
        let dev = self.dev.clone();
        let mut moves = Vec::new();
        for (off, u) in &f.uses {
            let LiveUse::Unit(vpn, from, entry) = *u else {
                continue;
            };
            let what = || {
                format!(
                    "unit {vpn} ({:?} {} {})",
                    entry.kind, entry.owner, entry.index
                )
            };
            // Runs are in offset order.
            let (run, buf) = runs
                .get(runs.partition_point(|(r, _)| r.off + r.len <= *off))
                .filter(|(r, _)| r.off <= *off)
                .ok_or_else(|| Error::corrupt(what(), from.addr, "live page not read"))?;
            let buf = buf
                .as_ref()
                .map_err(|e| Error::corrupt(what(), from.addr, e.to_string()))?;
            let at = (off - run.off) as usize * PAGE_SIZE;
            let bytes = buf
                .get(at..at + entry.stored_len as usize)
                .ok_or_else(|| Error::corrupt(what(), from.addr, "unit not read whole"))?;
            if crc32(bytes) != entry.crc {
                return Err(Error::corrupt(
                    what(),
                    from.addr,
                    "checksum mismatch; the unit is not moved",
                ));
            }
            moves.push(Move {
                vpn,
                from,
                entry,
                bytes: bytes.to_vec(),
                age: f.age,
            });
        }
        for (_, u) in &f.uses {
            match *u {
                LiveUse::Node(nid) => {
                    self.root.cache.get_mut(&*dev, nid)?;
                }
                LiveUse::NatPage(level, index) => {
                    self.root
                        .cache
                        .nat
                        .table()
                        .mark_dirty(&*dev, level, index)?;
                }
                LiveUse::Table(TableId::SegmentUsage, level, index) => {
                    self.sut.table().mark_dirty(&*dev, level, index)?;
                }
                LiveUse::Table(TableId::PageAddress, level, index) => {
                    self.pat.lock().table().mark_dirty(&*dev, level, index)?;
                }
                LiveUse::Table(TableId::CheckpointList, level, index) => {
                    self.cplist.table().mark_dirty(&*dev, level, index)?;
                }
                // The commit writes a new checkpoint and lets this one go;
                // units were collected above (a node address table page
                // is a unit, never a `Table` use).
                LiveUse::Table(TableId::NodeAddress, ..)
                | LiveUse::Checkpoint
                | LiveUse::Unit(..) => {}
            }
        }
        Ok(moves)
    }

    /// Is the page at `addr`, which the summary describes as `e`, live?
    /// Says what it is.
    fn live_use(
        &mut self,
        dev: &dyn BlockDevice,
        addr: PageAddr,
        e: &Entry,
    ) -> Result<Option<LiveUse>> {
        if !e.vpn.is_none() {
            let Some(here) = self.pat.lookup(dev, e.vpn)?.filter(|p| p.addr == addr) else {
                return Ok(None);
            };
            if here.stored_len() != e.stored_len as usize || here.transform != e.transform {
                // Moving it would copy one length and free another.
                return Err(Error::corrupt(
                    format!("unit {}", e.vpn),
                    addr,
                    format!(
                        "the page address table gives it {} bytes of chain {}, its summary {} of chain {}",
                        here.stored_len(),
                        here.transform.0,
                        e.stored_len,
                        e.transform.0
                    ),
                ));
            }
            if here.birth > self.root.history.last {
                if let Some(u) = self.rewritable(dev, e)? {
                    return Ok(Some(u));
                }
            }
            return Ok(Some(LiveUse::Unit(e.vpn, here, *e)));
        }
        Ok(match e.kind {
            PageKind::Table => {
                let (level, index) = ((e.index >> 56) as u8, e.index & ((1 << 56) - 1));
                let live = match TableId::from_code(e.owner) {
                    Some(TableId::SegmentUsage) => {
                        self.sut.table().stored_at(dev, level, index, addr)?
                    }
                    Some(TableId::PageAddress) => {
                        self.pat.lock().table().stored_at(dev, level, index, addr)?
                    }
                    Some(TableId::CheckpointList) => {
                        self.cplist.table().stored_at(dev, level, index, addr)?
                    }
                    _ => false,
                };
                let id = TableId::from_code(e.owner).unwrap_or(TableId::SegmentUsage);
                live.then_some(LiveUse::Table(id, level, index))
            }
            PageKind::Checkpoint => (addr == self.cp_addr).then_some(LiveUse::Checkpoint),
            // A roll-forward page is dead once written: nothing points at
            // it, and the segment it is in is not reused before the next
            // checkpoint is durable (the pre-free rule; `volume/fsync.rs`).
            PageKind::Data | PageKind::Node | PageKind::Deadlist | PageKind::RollForward => None,
        })
    }

    /// Is unit `e` a node, or a page of the node address table, that the
    /// live root still uses at this vpn?
    fn rewritable(&mut self, dev: &dyn BlockDevice, e: &Entry) -> Result<Option<LiveUse>> {
        let nat = &mut self.root.cache.nat;
        Ok(match e.kind {
            PageKind::Node => {
                let nid = Nid(e.index);
                nat.lookup(dev, nid)?
                    .is_some_and(|n| n.vpn == e.vpn)
                    .then_some(LiveUse::Node(nid))
            }
            PageKind::Table if e.owner == TableId::NodeAddress as u64 => {
                let (level, index) = ((e.index >> 56) as u8, e.index & ((1 << 56) - 1));
                nat.table()
                    .holds(dev, level, index, e.vpn.0)?
                    .then_some(LiveUse::NatPage(level, index))
            }
            _ => None,
        })
    }

    /// Writes the units a pass gathered, in owner order, to the cleaner's
    /// own log head, so that moved (cold) data fills segments of its own,
    /// apart from the user's new (hot) data; each keeps its vpn, its birth
    /// and the age of the segment it came from, and the page address table
    /// points at the new copy.
    ///
    /// Recovery's walk checks the main log's records, not these, so they
    /// are made durable (flushed) before the commit that points at them
    /// writes anything else (see `Store::commit_inner`): no checkpoint can
    /// outlive the pages it names.
    fn write_moves(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
        mut moves: Vec<Move>,
        main_head: bool,
    ) -> Result<()> {
        if moves.is_empty() {
            return Ok(());
        }
        moves.sort_unstable_by_key(|m| {
            (m.entry.kind == PageKind::Data, m.entry.owner, m.entry.index)
        });
        // Only file data is cold enough to deserve segments of its own:
        // the few nodes and table pages retained checkpoints hold go
        // through the main head, as the commit would write them.
        let cold_data = !main_head && moves.iter().any(|m| m.entry.kind == PageKind::Data);
        if cold_data {
            self.open_cold(dev)?;
        }
        let now = crate::store::now_ns();
        let (mut cold_written, mut main_written) = (0, 0);
        for m in moves {
            if self.pat.lookup(dev, m.vpn)? != Some(m.from) {
                continue;
            }
            let to_cold = cold_data && m.entry.kind == PageKind::Data;
            let head = match (to_cold, self.cold.as_mut()) {
                (false, _) => &mut self.log,
                (true, Some(cold)) => cold,
                (true, None) => continue,
            };
            head.set_building(building);
            head.set_time(now);
            head.set_age(Some(m.age));
            let addr = head.alloc(dev, &mut self.sut, m.entry.pages(), None)?;
            head.fill(addr, m.entry, &m.bytes)?;
            life!(self, dev, building).moved(m.vpn, m.from, addr)?;
            match to_cold {
                true => cold_written += m.entry.pages(),
                false => main_written += m.entry.pages(),
            }
        }
        self.log.set_age(None);
        if main_written > 0 {
            // The commit that follows writes the rest of its records;
            // recovery walks these like any other.
            self.log.finish(dev)?;
        }
        if cold_written > 0 {
            if let Some(cold) = self.cold.as_mut() {
                cold.finish(dev)?;
            }
            self.cold_unflushed = true;
        }
        Ok(())
    }

    /// Moves `units` (data units of file `ino`: page index, vpn) to the
    /// cleaner's log head one after another, in page order: defragmentation
    /// by the cleaner's own move, committed by the next commit (as a
    /// cleaning pass that does not commit: `Store::commit_inner` flushes
    /// the cleaner's head first). A caller moving a file in steps commits
    /// once at the end, so that the page address table's pages the moves
    /// changed are written together, in order, not scattered over a
    /// commit a step (a sequential read looks each unit up in them). Each unit keeps its vpn
    /// (and so every root that shares it, a snapshot's too, follows it)
    /// and its stored bytes as they are; its old pages die. Raw pages are
    /// checked against `crc` (the pointer's) before they move, so damage
    /// is never carried along. Returns the pages moved.
    /// Fails with `NoSpace`, having changed nothing, unless the free
    /// segments take the units beside the next commit (as a cleaning pass
    /// checks: the cleaner's head may need two segments of its own).
    pub(crate) fn relocate(&mut self, ino: Ino, units: &[(u64, BlockPtr)]) -> Result<u64> {
        self.check_health()?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let dev = self.dev.clone();
        let dev_ref: &dyn BlockDevice = &*dev;
        let mut need = 0u64;
        for &(_, ptr) in units {
            if let Some(e) = self.pat.lookup(dev_ref, ptr.vpn)? {
                need += u64::from(e.pages);
            }
        }
        if !self.pass_fits(need, false) {
            return Err(Error::NoSpace);
        }
        let dev: &dyn BlockDevice = &*dev;
        let mut moves = Vec::with_capacity(units.len());
        let mut pages = 0;
        for &(idx, ptr) in units {
            let Some(from) = self.pat.lookup(dev, ptr.vpn)? else {
                continue;
            };
            let mut buf = vec![0u8; from.pages as usize * PAGE_SIZE];
            dev.read(from.addr, &mut buf)?;
            buf.truncate(from.stored_len());
            let raw = !ptr.is_packed() && self.sealer.is_none();
            if raw && crc32(&buf) != ptr.crc {
                return Err(Error::corrupt(
                    format!("page {idx} of inode {ino}"),
                    from.addr,
                    "checksum mismatch; the file is not moved (run pagelog-fsck)",
                ));
            }
            let age = match self.sb.geometry.segment_of(from.addr) {
                Some(seg) => self.sut.get(dev, seg)?.mtime,
                None => crate::store::now_ns() / 1_000_000_000,
            };
            let entry = Entry {
                transform: from.transform,
                stored_len: from.stored_len() as u32,
                ..Entry::unit(PageKind::Data, ino.0, ptr.unit_base(idx), ptr.vpn)
            };
            pages += u64::from(from.pages);
            moves.push(Move {
                vpn: ptr.vpn,
                from,
                entry,
                bytes: buf,
                age,
            });
        }
        self.with_live(|s| {
            s.root.changed = true;
            let building = s.building();
            let r = s.write_moves(dev, building, moves, false);
            s.poison_on(r)
        })?;
        Ok(pages)
    }

    /// Opens the cleaner's log head in two free segments, if not open yet.
    /// Its records carry sequence numbers of their own (from 2^62 up, past
    /// the main log's), growing within each segment as every record's do.
    fn open_cold(&mut self, dev: &dyn BlockDevice) -> Result<()> {
        if self.cold.is_some() {
            return Ok(());
        }
        let first = self.sut.take_free(dev)?;
        let second = self.sut.take_free(dev)?;
        let pos = crate::segment_writer::LogPosition {
            segment: first,
            offset: 0,
            next_segment: second,
            next_seq: COLD_SEQ + self.log.position().next_seq,
        };
        let w = crate::segment_writer::SegmentWriter::new(
            self.sb.geometry,
            pos,
            self.building(),
            self.sb.hash_seed,
        )
        .sealed_by(self.sealer.clone());
        self.cold = Some(w);
        Ok(())
    }

    /// Pages written to the device by both log heads since mount.
    pub fn pages_written(&self) -> u64 {
        let cold = self.cold.as_ref().map_or(0, |c| c.pages_written);
        self.log.pages_written + cold + self.cleaner.closed_cold_pages
    }
}

/// Where the sequence numbers of the cleaner's records start.
const COLD_SEQ: u64 = 1 << 62;

/// Dead pages between two live data pages that are read through rather
/// than read around (one larger read costs less than two).
const MAX_GAP: u64 = 16;

/// A victim's live pages.
struct Found {
    seg: SegmentNo,
    age: i64,
    uses: Vec<(u64, LiveUse)>,
    /// Live pages in all (a unit may take several).
    pages: u64,
}

/// Pages `off..off + len` of victim number `victim`, to be read.
struct Run {
    victim: usize,
    off: u64,
    len: u64,
}

/// A run and what reading it gave.
type RunRead<'a> = (&'a Run, std::io::Result<Vec<u8>>);

/// The reads that fetch every live unit of the victims: one run per
/// stretch of live pages, through gaps of up to [`MAX_GAP`] dead pages.
fn data_runs(found: &[Found]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (victim, f) in found.iter().enumerate() {
        let mut units: Vec<(u64, u64)> = f
            .uses
            .iter()
            .filter_map(|(off, u)| match u {
                LiveUse::Unit(_, _, e) => Some((*off, e.pages())),
                _ => None,
            })
            .collect();
        units.sort_unstable();
        for (off, pages) in units {
            match runs.last_mut() {
                Some(r) if r.victim == victim && off <= r.off + r.len + MAX_GAP => {
                    r.len = r.len.max(off + pages - r.off);
                }
                _ => runs.push(Run {
                    victim,
                    off,
                    len: pages,
                }),
            }
        }
    }
    runs
}

/// The summary entries of segment `seg`'s record chain, by offset.
fn read_chain(
    dev: &dyn BlockDevice,
    geo: &crate::layout::Geometry,
    log: (u64, Option<&crate::seal::Sealer>),
    seg: SegmentNo,
) -> std::io::Result<Vec<(u64, Entry)>> {
    let mut entries = Vec::new();
    let each = &mut |off, e: &Entry| entries.push((off, *e));
    match crate::segment_summary::read_chain(dev, geo, log, seg, each) {
        (_, Some((_, e))) => Err(e),
        (_, None) => Ok(entries),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::device::MemDevice;
    use crate::format::{format, FormatOptions};

    proptest::proptest! {
        /// The pruned walk picks what scoring every candidate would: the
        /// same scores, best first.
        #[test]
        fn the_best_victims_need_no_full_walk(
            usages in proptest::collection::vec((1u32..512, 0i64..10_000), 0..300),
            batch in 0usize..20,
            greedy: bool,
        ) {
            let policy = if greedy { Policy::Greedy } else { Policy::CostBenefit };
            let now = 10_000;
            let mut partly: Vec<(SegmentNo, Usage)> = usages
                .iter()
                .enumerate()
                .map(|(k, &(live, mtime))| (SegmentNo(k as u64), Usage { live, flags: 0, mtime }))
                .collect();
            partly.sort_by_key(|(seg, u)| (u.live, *seg));
            let oldest = partly.iter().map(|(_, u)| u.mtime).min().unwrap_or(now);
            let got = best(partly.iter().copied(), (policy, 512), batch, now, oldest);
            let mut all: Vec<f64> = partly
                .iter()
                .map(|(_, u)| score(policy, u.live, 512, now - u.mtime))
                .collect();
            all.sort_by(|a, b| b.total_cmp(a));
            all.truncate(batch.max(1));
            let scores: Vec<f64> = got.iter().map(|c| c.0).collect();
            proptest::prop_assert_eq!(scores, all);
        }
    }

    fn open(dev: &Arc<MemDevice>) -> crate::Filesystem {
        let dev: Arc<dyn BlockDevice> = dev.clone();
        crate::Filesystem::mount(dev, crate::MountOptions::default()).expect("mount")
    }

    /// Each unit reads back whole through the page address table.
    fn check(s: &Store, units: &[(Vpn, u32, Vec<u8>)]) -> Vec<PageAddr> {
        let mut at = Vec::new();
        for (vpn, crc, bytes) in units {
            let e = s
                .pat
                .lookup(&*s.dev, *vpn)
                .expect("lookup")
                .expect("in use");
            assert_eq!(u64::from(e.pages), bytes.len().div_ceil(PAGE_SIZE) as u64);
            let mut buf = vec![0u8; usize::from(e.pages) * PAGE_SIZE];
            s.dev.read(e.addr, &mut buf).expect("read");
            assert_eq!(crc32(&buf[..bytes.len()]), *crc, "unit {vpn}");
            assert!(buf[..bytes.len()] == bytes[..], "unit {vpn} reads back");
            assert!(
                buf[bytes.len()..].iter().all(|&b| b == 0),
                "padding is zero"
            );
            at.push(e.addr);
        }
        at
    }

    /// Writes a unit of `n` pages (its last page partly used when `n` is not
    /// a multiple of 3) for each `n` in `sizes`, born in `building`.
    fn write_units(
        s: &mut Store,
        sizes: &[usize],
        building: CheckpointNo,
    ) -> Vec<(Vpn, u32, Vec<u8>)> {
        let d = s.dev.clone();
        let mut units = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let len = n * PAGE_SIZE - 100 * (n % 3);
            let bytes: Vec<u8> = (0..len).map(|b| (b * 7 + n + i) as u8).collect();
            let mut life = life!(s, &*d, building);
            let (vpn, crc) = life
                .write_unit(&mut s.log, (PageKind::Deadlist, 0, n as u64), &bytes)
                .expect("write");
            units.push((vpn, crc, bytes));
        }
        units
    }

    /// Units of 1 to 16 pages (a last page partly used, or whole): written
    /// in one go, then held by a snapshot alone (so that nothing but the
    /// deadlist reaches them), found again by recovery after a crash, and
    /// moved whole by the cleaner, their bytes and checksums unchanged;
    /// the checker counts every page of each and finds nothing wrong.
    #[test]
    fn units_of_several_pages_are_recovered_and_moved_whole() {
        let dev = Arc::new(MemDevice::new(4096));
        let opts = FormatOptions {
            pages_per_segment: 64,
            ..FormatOptions::default()
        };
        format(dev.clone(), &opts).expect("format");
        let mut fs = open(&dev);
        let s = &mut fs.store;
        let building = s.building();
        let d = s.dev.clone();
        let sizes: Vec<usize> = (1..=16).collect();
        let units = write_units(s, &sizes, building);
        s.create_snapshot(b"held", None).expect("snapshot");
        let building = s.building();
        for (vpn, _, _) in &units {
            life!(s, &*d, building).died(*vpn).expect("died");
        }
        // After the checkpoint the superblocks name: units of 16 pages,
        // which leave pages unwritten at segment ends (a record closes
        // early when the next unit does not fit), then a commit. The crash
        // (forgetting the mount) comes before the superblocks naming that
        // commit are durable (they are put back as they were): only
        // recovery's walk over those records and gaps finds the commit.
        let mut superblocks = vec![0u8; 2 * PAGE_SIZE];
        d.read(PageAddr(0), &mut superblocks)
            .expect("read superblocks");
        let late = write_units(s, &[16; 12], building);
        s.root.changed = true;
        s.commit(false).expect("commit");
        let committed = s.cp.no;
        std::mem::forget(fs);
        d.write(PageAddr(0), &superblocks)
            .expect("put superblocks back");
        let mut fs = open(&dev);
        assert!(fs.store.cp.no > committed, "recovery found the commit");
        let s = &mut fs.store;
        check(s, &late);
        let building = s.building();
        for (vpn, _, _) in &late {
            life!(s, &*d, building).died(*vpn).expect("died");
        }
        let before = check(s, &units);
        let freed = s
            .clean(Pass {
                policy: Policy::Greedy,
                batch: 64,
                max_live_percent: 100,
                commit: true,
                urgent: false,
            })
            .expect("clean");
        assert!(freed > 0, "the cleaner emptied segments");
        assert_eq!(s.cleaner.stats.segments_refused, 0);
        let after = check(s, &units);
        assert!(before != after, "units moved");
        s.commit(true).expect("commit");
        fs.unmount().expect("unmount");
        let fs = open(&dev);
        check(&fs.store, &units);
        fs.unmount().expect("unmount");
        let dev: Arc<dyn BlockDevice> = dev;
        let report = crate::fsck::check(dev, None, crate::fsck::Level::Full, &mut |_, _, _| {});
        assert_eq!(report.problems(), 0, "{:?}", report.findings);
    }
}
