//! Space accounting: no page used twice, every address inside the segment
//! area, the segment usage table equal to a recount of what is referenced,
//! and the checkpoint's counters equal to what the tables hold.
//!
//! The walks hand every referenced page to a [`Ledger`]: one bit per page
//! of the segment area (e2fsck's block bitmap), and per segment a count of
//! pages and a sum of the digests its record summaries must hold for them.
//! No list of pages is kept and nothing is sorted, so a check costs a few
//! operations per page. Only where a bit or a sum disagrees does the check
//! walk again and collect the pages of the segments concerned, to name
//! them ([`Collect`], [`twice`]).

use std::collections::HashSet;
use std::ops::Range;

use super::finding::{Finding, Fix, Kind, Numbers, Severity};
use super::scan::Scan;
use super::summaries;
use super::tree::{Tree, Use};
use crate::checkpoint::Checkpoint;
use crate::ids::{Nid, PageAddr, SegmentNo, Vpn};
use crate::layout::Geometry;

/// Where the walks send every page they find referenced.
pub trait PageSink {
    /// `addr` is used for `used`.
    fn page(&mut self, addr: PageAddr, used: Use);

    /// The unit of `pages` pages at `addr` is used for `used`: its first
    /// page, and each page after it as part of it.
    fn unit(&mut self, addr: PageAddr, pages: u64, used: Use) {
        self.page(addr, used);
        for i in 1..pages {
            self.page(
                addr.offset(i),
                Use::Rest {
                    first: addr,
                    nth: i,
                },
            );
        }
    }
}

/// What one segment holds, as the references say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Pages referenced (a page used twice counts twice).
    pub pages: u64,
    /// Wrapping sum of the summary digests of those pages.
    pub sum: u64,
    /// Some page's digest cannot be known (its node failed to decode):
    /// the sum is incomplete and the segment is compared page by page.
    pub opaque: bool,
}

/// The bitmap and the per-segment tallies.
pub struct Ledger<'a> {
    scan: &'a Scan,
    geo: Geometry,
    used: Vec<u64>,
    tallies: Vec<Tally>,
    twice: Vec<PageAddr>,
    findings: Vec<Finding>,
}

impl<'a> Ledger<'a> {
    /// An empty ledger for the segment area of `geo`.
    pub fn new(scan: &'a Scan, geo: Geometry) -> Self {
        let pages = geo.segment_area_pages();
        Ledger {
            scan,
            geo,
            used: vec![0; pages.div_ceil(64) as usize],
            tallies: vec![Tally::default(); geo.segment_count as usize],
            twice: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// The tally of `seg`.
    pub fn tally(&self, seg: SegmentNo) -> Tally {
        self.tallies
            .get(seg.0 as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Segments with referenced pages, in order.
    pub fn segments_used(&self) -> impl Iterator<Item = SegmentNo> + '_ {
        self.tallies
            .iter()
            .enumerate()
            .filter(|(_, t)| t.pages > 0)
            .map(|(s, _)| SegmentNo(s as u64))
    }

    /// Is the page at `off` of `seg` referenced?
    pub fn is_used(&self, seg: SegmentNo, off: u64) -> bool {
        let rel = seg.0 * u64::from(self.geo.pages_per_segment) + off;
        self.used
            .get((rel / 64) as usize)
            .is_some_and(|w| w & (1 << (rel % 64)) != 0)
    }

    /// Addresses referenced more than once (each repeat listed).
    pub fn twice(&self) -> &[PageAddr] {
        &self.twice
    }

    /// Findings made while pages came in (addresses out of range).
    pub fn take_findings(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.findings)
    }
}

impl Ledger<'_> {
    /// Is the page at `addr` counted already?
    pub fn is_counted(&self, addr: PageAddr) -> bool {
        self.geo
            .segment_of(addr)
            .is_some_and(|seg| self.is_used(seg, self.geo.offset_in_segment(addr)))
    }

    /// Counts the page at `addr`, used for `used`, whose summary entry
    /// should have `digest` (`None`: not known).
    pub fn count(&mut self, addr: PageAddr, used: Use, digest: Option<u64>) {
        let Some(seg) = self.geo.segment_of(addr) else {
            // A node out of range was reported when the nodes were read.
            if !matches!(used, Use::Node(_)) {
                let f = Finding::new(
                    Severity::Error,
                    Kind::AddressOutOfRange,
                    format!("{used} points outside the segment area"),
                )
                .addr(addr);
                // A file's page there is gone: a hole, its unit forgotten.
                let fix = match used {
                    Use::Data(ino, first, _) => Some(Fix::DropPages {
                        ino,
                        first,
                        count: 1,
                    }),
                    Use::Packed(ino, first, count) => Some(Fix::DropPages {
                        ino,
                        first,
                        count: count.into(),
                    }),
                    _ => None,
                };
                self.findings.push(Finding { fix, ..f });
            }
            return;
        };
        let rel = addr.0 - self.geo.first_segment_page;
        let (word, bit) = ((rel / 64) as usize, 1u64 << (rel % 64));
        if let Some(w) = self.used.get_mut(word) {
            if *w & bit != 0 {
                self.twice.push(addr);
            }
            *w |= bit;
        }
        if let Some(t) = self.tallies.get_mut(seg.0 as usize) {
            t.pages += 1;
            match digest {
                Some(d) => t.sum = t.sum.wrapping_add(d),
                None => t.opaque = true,
            }
        }
    }
}

impl PageSink for Ledger<'_> {
    fn page(&mut self, addr: PageAddr, used: Use) {
        let digest = self
            .geo
            .segment_of(addr)
            .and_then(|_| summaries::expected(self.scan, self.geo.offset_in_segment(addr), used));
        self.count(addr, used, digest);
    }
}

/// Collects the pages `want` selects, to name them in findings.
pub struct Collect<F> {
    /// Which addresses to keep.
    pub want: F,
    /// What was kept, in the order found.
    pub pages: Vec<(PageAddr, Use)>,
}

impl<F: FnMut(PageAddr) -> bool> PageSink for Collect<F> {
    fn page(&mut self, addr: PageAddr, used: Use) {
        if (self.want)(addr) {
            self.pages.push((addr, used));
        }
    }
}

/// Hands the pages of nodes, the tables and the checkpoint to `sink`
/// (the tree walk hands it the data pages). A node whose unit is free was
/// reported when the nodes were read.
pub fn metadata_pages(scan: &Scan, cp_addr: PageAddr, sink: &mut dyn PageSink) {
    for (&nid, e) in &scan.nat {
        if let Some(addr) = scan.units.get(e.vpn) {
            sink.page(addr, Use::Node(nid));
        }
    }
    for &a in &scan.table_pages {
        sink.page(a, Use::Table);
    }
    for &vpn in &scan.held {
        if let Some((addr, pages)) = scan.units.unit(vpn) {
            sink.unit(addr, pages, Use::Held(vpn));
        }
    }
    for &(a, no) in &scan.deadlist_pages {
        sink.page(a, Use::Deadlist(no));
    }
    sink.page(cp_addr, Use::Checkpoint);
}

/// Units in use that no walk reached.
pub fn unreached<'s>(
    scan: &'s Scan,
    ledger: &'s Ledger<'_>,
) -> impl Iterator<Item = (Vpn, PageAddr)> + 's {
    let geo = ledger.geo;
    scan.units.iter().filter(move |&(_, addr)| {
        !geo.segment_of(addr)
            .is_some_and(|seg| ledger.is_used(seg, geo.offset_in_segment(addr)))
    })
}

/// Names every unit in use that no walk reached (its page is counted live
/// by the usage table, but nothing can ever free it), but for the nodes
/// found for a damaged leaf of the node address table (`found`).
pub fn leaked_units(
    scan: &Scan,
    ledger: &Ledger<'_>,
    found: &HashSet<Vpn>,
    findings: &mut Vec<Finding>,
) {
    for (vpn, addr) in unreached(scan, ledger) {
        if !found.contains(&vpn) {
            let msg = format!("unit {vpn} is in use but nothing points at it");
            let f = Finding::new(Severity::Error, Kind::UnitLeaked, msg).addr(addr);
            findings.push(f.fix(Fix::FreeUnit { vpn }));
        }
    }
}

/// Compares the recount with the usage table and the checkpoint's
/// counters, and checks the free list of node ids.
pub fn check(
    scan: &Scan,
    ledger: &Ledger<'_>,
    tree: &Tree,
    cp: &Checkpoint,
    findings: &mut Vec<Finding>,
) {
    let mut empty = 0u64;
    let mut total = 0u64;
    for s in 0..ledger.geo.segment_count {
        let seg = SegmentNo(s);
        let counted = ledger.tally(seg).pages;
        let recorded = scan.usage.get(&seg).map_or(0, |u| u64::from(u.live));
        if counted != recorded {
            let msg = format!("usage table says {recorded} live pages, {counted} are referenced");
            let f = Finding::new(Severity::Error, Kind::SegmentUsageWrong, msg).segment(seg);
            findings.push(f.fix(Fix::Recount));
        }
        if recorded == 0 {
            empty += 1;
        }
        total += recorded;
    }
    let past = SegmentNo(ledger.geo.segment_count);
    for (&seg, u) in scan.usage.range(past..).filter(|(_, u)| u.live > 0) {
        let msg = format!(
            "usage table counts {} live pages past the last segment",
            u.live
        );
        let f = Finding::new(Severity::Error, Kind::SegmentUsageWrong, msg).segment(seg);
        findings.push(f.fix(Fix::Recount));
    }
    let counters = [
        ("live pages", cp.live_pages, total),
        ("empty segments", cp.empty_segments, empty),
        ("inodes", cp.inode_count, tree.inodes),
        ("reserved pages", cp.reserved_pages, tree.unwritten),
    ];
    for (what, recorded, counted) in counters {
        if recorded != counted {
            let msg = format!("checkpoint says {recorded} {what}, the tables hold {counted}");
            findings.push(Finding::new(Severity::Error, Kind::CounterWrong, msg).fix(Fix::Recount));
        }
    }
    free_lists(scan, cp, findings);
}

/// What the walks counted, as a repair's mount takes it.
pub fn recount(ledger: &Ledger<'_>, tree: &Tree) -> crate::recovery::Rebase {
    let pps = u64::from(ledger.geo.pages_per_segment);
    crate::recovery::Rebase {
        live: ledger
            .tallies
            .iter()
            .map(|t| t.pages.min(pps) as u32)
            .collect(),
        lower: false,
        inodes: tree.inodes,
        reserved: tree.unwritten,
        ..Default::default()
    }
}

/// Names the owners of every page used twice, from the collected pages
/// (in address order). Where every owner is a file's page, a repair gives
/// each its own (see [`Fix::Unshare`]).
pub fn twice(geo: &Geometry, pages: &[(PageAddr, Use)], findings: &mut Vec<Finding>) {
    for (i, w) in pages.windows(2).enumerate() {
        let ((prev, other), (addr, owner)) = (w[0], w[1]);
        if prev == addr {
            let msg = format!("used by {other} and by {owner}");
            let mut f = Finding::new(Severity::Error, Kind::PageUsedTwice, msg).addr(addr);
            if let Some(seg) = geo.segment_of(addr) {
                f = f.segment(seg);
            }
            // One fix per page, on its first repeat, naming every owner.
            let first_repeat = i == 0 || pages[i - 1].0 != addr;
            let owners: Option<Vec<(crate::ids::Ino, u64)>> = pages[i..]
                .iter()
                .take_while(|(a, _)| *a == addr)
                .map(|(_, u)| match u {
                    Use::Data(ino, idx, _) => Some((*ino, *idx)),
                    _ => None,
                })
                .collect();
            if let (true, Some(owners)) = (first_repeat, owners) {
                f = f.fix(Fix::Unshare { addr, owners });
            }
            findings.push(f);
        }
    }
}

/// The free numbers of both allocating tables (node ids, units) form one
/// list each, covering every unused number below the watermark; no number
/// at or above the watermark is in use. (Counted, not enumerated: the
/// watermark is bounded by the geometry, but a check should cost what the
/// table holds, not what its counters say.) A list found wrong is mended
/// by threading it again, with the watermark past every number in use;
/// not while a damaged table page hides entries.
fn free_lists(scan: &Scan, cp: &Checkpoint, findings: &mut Vec<Finding>) {
    let used_nids: Vec<u64> = scan.nat.keys().map(|n| n.0).collect();
    let nodes = Numbered {
        of: Numbers::NodeIds,
        counter: "nat_watermark",
        head: cp.nat_free_head.0,
        watermark: cp.nat_watermark.0,
        first: Nid::FIRST_FREE.0,
        used: &used_nids,
        next: &|n| scan.free.get(&Nid(n)).map(|x| x.0),
        last_free: scan.free.keys().map(|n| n.0).max(),
        lost: &scan.lost_nids,
    };
    let used_units: Vec<u64> = scan.units.iter().map(|(v, _)| v.0).collect();
    let units = Numbered {
        of: Numbers::Units,
        counter: "pat_watermark",
        head: cp.pat_free_head.0,
        watermark: cp.pat_watermark.0,
        first: crate::ids::Vpn::FIRST.0,
        used: &used_units,
        next: &|v| scan.unit_free.get(&v).copied(),
        last_free: scan.unit_free.keys().copied().max(),
        lost: &scan.lost_units,
    };
    for table in [nodes, units] {
        let from = findings.len();
        table.check(findings);
        if !table.lost.is_empty() {
            continue;
        }
        // Past every number in use, and every entry that is not all zero
        // (one the watermark would hand out must be).
        let last = table.used.last().map_or(0, |n| n + 1);
        let listed = table.last_free.map_or(0, |n| n + 1);
        let fix = Fix::FreeList {
            of: table.of,
            watermark: table.watermark.max(last).max(listed),
        };
        for f in &mut findings[from..] {
            f.fix.get_or_insert(fix.clone());
        }
    }
}

/// One allocating table's numbers, as the check read them.
struct Numbered<'a> {
    of: Numbers,
    /// The checkpoint's name for the watermark.
    counter: &'static str,
    head: u64,
    watermark: u64,
    /// The first number ever handed out.
    first: u64,
    /// Numbers in use, ascending.
    used: &'a [u64],
    /// The next number a free entry names (none: not a free entry with a
    /// successor; an all-zero entry ends the list).
    next: &'a dyn Fn(u64) -> Option<u64>,
    /// The highest number whose entry is free but not all zero.
    last_free: Option<u64>,
    /// Numbers whose entries are on damaged pages.
    lost: &'a [Range<u64>],
}

impl Numbered<'_> {
    fn what(&self) -> &'static str {
        match self.of {
            Numbers::NodeIds => "node ids",
            Numbers::Units => "units",
        }
    }

    fn is_used(&self, n: u64) -> bool {
        self.used.binary_search(&n).is_ok()
    }

    fn is_lost(&self, n: u64) -> bool {
        self.lost.iter().any(|r| r.contains(&n))
    }

    /// A finding about number `n` (a node id is named as such).
    fn finding(&self, severity: Severity, kind: Kind, msg: String, n: u64) -> Finding {
        match self.of {
            Numbers::NodeIds => Finding::new(severity, kind, msg).nid(Nid(n)),
            Numbers::Units => Finding::new(severity, kind, format!("{msg} (unit {n})")),
        }
    }

    fn check(&self, findings: &mut Vec<Finding>) {
        let (w, first) = (self.watermark, self.first);
        let what = self.what();
        if let Some(&n) = self.used.iter().find(|&&n| n >= w) {
            let msg = format!(
                "checkpoint says {what} from {w} were never used ({}), but this one is",
                self.counter
            );
            findings.push(self.finding(Severity::Error, Kind::CounterWrong, msg, n));
        }
        if let Some(n) = self.last_free.filter(|&n| n >= w) {
            let msg = format!(
                "entries of {what} at or above the watermark {w} are not empty, so the watermark \
                 cannot hand them out"
            );
            findings.push(self.finding(Severity::Error, Kind::FreeListBroken, msg, n));
        }
        let Some(seen) = self.follow(findings) else {
            return;
        };
        let lost: u64 = self
            .lost
            .iter()
            .map(|r| w.min(r.end).saturating_sub(first.max(r.start)))
            .sum();
        let ids = w.saturating_sub(first).saturating_sub(lost);
        let used = self.used.iter().filter(|&&n| first <= n && n < w).count() as u64;
        let below = |n: &&u64| first <= **n && **n < w && !self.is_lost(**n);
        let listed = seen.iter().filter(below).count() as u64;
        let unlisted = ids.saturating_sub(used + listed);
        if unlisted > 0 {
            let msg = format!("{unlisted} unused {what} are on no free list (never reused)");
            findings.push(Finding::new(Severity::Warning, Kind::FreeListBroken, msg));
        }
    }

    /// Follows the free list from its head; returns the numbers on it, or
    /// `None` when it is broken (reported).
    fn follow(&self, findings: &mut Vec<Finding>) -> Option<HashSet<u64>> {
        let what = self.what();
        let mut seen = HashSet::new();
        let mut cur = self.head;
        while cur != 0 {
            if self.is_lost(cur) {
                // Its entry is on a damaged page (reported): the rest of
                // the list cannot be known.
                return None;
            }
            if !seen.insert(cur) {
                let msg = format!("the free list of {what} loops");
                findings.push(self.finding(Severity::Error, Kind::FreeListBroken, msg, cur));
                return None;
            }
            let used = self.is_used(cur);
            match (self.next)(cur) {
                Some(next) if !used => cur = next,
                // An all-zero entry: free, and the end of the list.
                None if cur < self.watermark && !used => cur = 0,
                _ => {
                    let msg = match used {
                        true => format!("the free list of {what} names one in use"),
                        false => format!("the free list of {what} names one above the watermark"),
                    };
                    findings.push(self.finding(Severity::Error, Kind::FreeListBroken, msg, cur));
                    return None;
                }
            }
        }
        Some(seen)
    }
}
