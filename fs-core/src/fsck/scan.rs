//! Reading what a full check needs: the metadata tables and every node,
//! in address order, in large reads.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::facts::{LeafFacts, PackFacts};
use super::finding::{Finding, Fix, Kind, Severity};
use crate::checkpoint::Checkpoint;
use crate::checkpoint_list::CheckpointList;
use crate::codec::crc32;
use crate::deadlist_page::DeadlistPage;
use crate::device::BlockDevice;
use crate::error::Error;
use crate::ids::{Ino, Nid, PageAddr, SegmentNo, Vpn};
use crate::layout::{Geometry, PAGE_SIZE};
use crate::meta_table::{leaf_entries, MetaTable, PageNames, RawEntry, TableId};
use crate::node::{Node, NodeBody};
use crate::node_table::{decode as decode_nat, NatEntry, Slot};
use crate::page_table::PatEntry;
use crate::parallel;
use crate::segment_usage::Usage;

/// Everything read from the tables and nodes.
#[derive(Debug, Default)]
pub struct Scan {
    /// Used node ids and where they are.
    pub nat: BTreeMap<Nid, NatEntry>,
    /// Free entries: node id -> next free.
    pub free: FxHashMap<Nid, Nid>,
    /// Free entries of the page address table: vpn -> next free.
    pub unit_free: FxHashMap<u64, u64>,
    /// Units whose entries are on damaged pages.
    pub lost_units: Vec<Range<u64>>,
    /// Usage per segment, as the table says.
    pub usage: BTreeMap<SegmentNo, Usage>,
    /// Where each unit in use is, by vpn (0: free).
    pub units: Units,
    /// Pages of the tables.
    pub table_pages: Vec<PageAddr>,
    /// Units retained checkpoints hold that the live root does not (the
    /// deadlists' entries).
    pub held: Vec<Vpn>,
    /// Deadlist pages, with the checkpoint each belongs to.
    pub deadlist_pages: Vec<(PageAddr, crate::ids::CheckpointNo)>,
    /// Retained checkpoints.
    pub retained: u64,
    /// The records of the read-write branches.
    pub branches: Vec<crate::checkpoint_record::Record>,
    /// The records of the snapshots.
    pub snapshots: Vec<crate::checkpoint_record::Record>,
    /// Damage hid units the retained checkpoints hold (a deadlist, the
    /// checkpoint list, a unit of theirs found free).
    pub past_hidden: bool,
    /// The records of every retained checkpoint (snapshots included,
    /// branches not), newest first.
    pub past: Vec<crate::checkpoint_record::Record>,
    /// Node ids whose table entries are on damaged pages: unknown, so not
    /// reported again as missing.
    pub lost_nids: Vec<Range<u64>>,
    /// The damaged pages of the node address table.
    pub lost_node_pages: Vec<LostPage>,
    /// The damaged pages of the page address table.
    pub lost_unit_pages: Vec<LostPage>,
    /// The damaged pages of the segment usage table.
    pub lost_usage_pages: Vec<LostPage>,
    /// Decoded nodes.
    pub nodes: Nodes,
    /// The quota file, on an image that keeps usage: an inode in use that
    /// no directory names.
    pub quota_ino: Option<Ino>,
    /// Bytes read.
    pub bytes_read: u64,
}

/// Decoded nodes by id. Ids are dense (freed ones are reused), so a vector
/// indexed by id holds them: a lookup is one load rather than a hash probe,
/// and a walk goes in id order, which is roughly the order of creation. Ids
/// far beyond the number of nodes (only a damaged table holds such) go to
/// a map, so that they cannot make the vector huge.
#[derive(Debug, Default)]
pub struct Nodes {
    dense: Vec<Option<Held>>,
    sparse: FxHashMap<Nid, Held>,
}

/// A node as the check keeps it: inode packs and directory leaves, which
/// a million files fill by the tens of thousands, reduced to what the
/// check reads of them (see `facts.rs`), any other node decoded.
#[derive(Debug)]
pub enum Held {
    /// An inode pack (whose header names no inode).
    Pack(Box<PackFacts>),
    /// A leaf of inode `ino`'s directory index, at `level` (0 when right).
    Leaf {
        /// Its inode.
        ino: Ino,
        /// Its level.
        level: u8,
        /// Its entries.
        leaf: Box<LeafFacts>,
    },
    /// Any other node.
    Node(Node),
}

impl Held {
    fn of(node: Node) -> Held {
        match node.body {
            NodeBody::InodePack(p) => Held::Pack(Box::new(PackFacts::of(&p))),
            NodeBody::DirLeaf(l) => Held::Leaf {
                ino: node.ino,
                level: node.level,
                leaf: Box::new(LeafFacts::of(&l)),
            },
            _ => Held::Node(node),
        }
    }

    /// The inode the node belongs to (none for a pack).
    pub fn ino(&self) -> Ino {
        match self {
            Held::Pack(_) => Ino::NONE,
            Held::Leaf { ino, .. } => *ino,
            Held::Node(n) => n.ino,
        }
    }

    /// Its level inside its tree.
    pub fn level(&self) -> u8 {
        match self {
            Held::Pack(_) => 0,
            Held::Leaf { level, .. } => *level,
            Held::Node(n) => n.level,
        }
    }
}

/// Unit addresses by vpn, as the page address table holds them (vpns are
/// dense and bounded by the checkpoint's watermark, itself bounded by the
/// geometry).
#[derive(Debug, Default, Clone)]
pub struct Units {
    /// Shared: every root's scan reads units through the same table, so
    /// a clone (for a root's node table, or another root's scan) costs
    /// nothing.
    addrs: Arc<Vec<PageAddr>>,
    /// The entry of each unit that is not one raw page, by vpn (few:
    /// only compressed clusters are not), and of every unit on a sealed
    /// volume (the seal is needed to open it).
    long: Arc<FxHashMap<Vpn, PatEntry>>,
    /// On a sealed volume, what opens units.
    sealer: Option<Arc<crate::seal::Sealer>>,
}

impl Units {
    /// Where unit `vpn` is, if it is in use.
    pub fn get(&self, vpn: Vpn) -> Option<PageAddr> {
        self.addrs
            .get(vpn.0 as usize)
            .copied()
            .filter(|a| !a.is_none())
    }

    /// Where unit `vpn` is and how many pages it takes, if it is in use.
    pub fn unit(&self, vpn: Vpn) -> Option<(PageAddr, u64)> {
        let pages = self.long.get(&vpn).map_or(1, |e| u64::from(e.pages));
        self.get(vpn).map(|a| (a, pages))
    }

    /// The entry of unit `vpn` when it is not one raw page (a compressed
    /// cluster).
    pub fn shaped(&self, vpn: Vpn) -> Option<PatEntry> {
        self.long.get(&vpn).copied()
    }

    /// Every unit in use that is not one raw page, with its entry.
    pub fn shaped_units(&self) -> impl Iterator<Item = (Vpn, PatEntry)> + '_ {
        self.long
            .iter()
            .filter(|(_, e)| e.pages > 1 || e.transform.0 != 0 || e.tail != 0)
            .map(|(v, e)| (*v, *e))
    }

    /// The whole entry of unit `vpn`, if it is in use.
    pub fn entry(&self, vpn: Vpn) -> Option<PatEntry> {
        match self.long.get(&vpn) {
            Some(e) => Some(*e),
            None => self
                .get(vpn)
                .map(|a| PatEntry::raw(a, crate::ids::CheckpointNo(0))),
        }
    }

    /// What opens units, on a sealed volume.
    pub fn sealer(&self) -> Option<&Arc<crate::seal::Sealer>> {
        self.sealer.as_ref()
    }

    /// Opens the one-page unit `vpn` of `kind`, read into `page`, in
    /// place (nothing to do on a volume that is not sealed).
    pub fn open(
        &self,
        vpn: Vpn,
        kind: crate::segment_summary::PageKind,
        page: &mut [u8],
    ) -> crate::error::Result<()> {
        let Some(s) = self.sealer.as_deref() else {
            return Ok(());
        };
        let what = || format!("unit {vpn}");
        let e = self.entry(vpn).ok_or_else(|| {
            Error::corrupt(what(), PageAddr::NONE, "free in the page address table")
        })?;
        crate::page_table::open_unit(Some(s), vpn, &e, kind, page, &what)
    }

    /// Is the volume sealed?
    pub fn sealed(&self) -> bool {
        self.sealer.is_some()
    }

    /// Every unit in use, by vpn.
    pub fn iter(&self) -> impl Iterator<Item = (Vpn, PageAddr)> + '_ {
        self.addrs
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.is_none())
            .map(|(v, a)| (Vpn(v as u64), *a))
    }
}

impl PageNames for Units {
    fn read_page(
        &self,
        dev: &dyn BlockDevice,
        name: u64,
        page: &mut crate::layout::Page,
    ) -> crate::error::Result<PageAddr> {
        let addr = self.get(Vpn(name)).ok_or_else(|| {
            Error::corrupt(
                format!("unit {name}"),
                PageAddr::NONE,
                "free in the page address table",
            )
        })?;
        dev.read(addr, &mut page[..])?;
        self.open(
            Vpn(name),
            crate::segment_summary::PageKind::Table,
            &mut page[..],
        )?;
        Ok(addr)
    }
}

impl Scan {
    /// Is the table entry of `nid` on a damaged page?
    pub fn nid_lost(&self, nid: Nid) -> bool {
        self.lost_nids.iter().any(|r| r.contains(&nid.0))
    }
}

impl Nodes {
    /// Room for ids below `bound` in the vector.
    fn with_bound(bound: u64) -> Nodes {
        let mut dense = Vec::new();
        dense.resize_with(bound as usize, || None);
        Nodes {
            dense,
            sparse: FxHashMap::default(),
        }
    }

    fn insert(&mut self, nid: Nid, node: Held) {
        match self.dense.get_mut(nid.0 as usize) {
            Some(slot) => *slot = Some(node),
            None => {
                self.sparse.insert(nid, node);
            }
        }
    }

    /// The node `nid`, if it was read and decoded.
    pub fn held(&self, nid: Nid) -> Option<&Held> {
        match self.dense.get(nid.0 as usize) {
            Some(slot) => slot.as_ref(),
            None => self.sparse.get(&nid),
        }
    }

    /// One past the largest node id the vector holds (ids beyond are
    /// rare: a damaged table's).
    pub fn id_bound(&self) -> u64 {
        self.dense.len() as u64
    }

    /// The inode pack `nid`, if it was read and decoded.
    pub fn pack(&self, nid: Nid) -> Option<&PackFacts> {
        match self.held(nid)? {
            Held::Pack(p) => Some(p),
            _ => None,
        }
    }

    /// Decoded nodes.
    pub fn len(&self) -> usize {
        self.dense.iter().flatten().count() + self.sparse.len()
    }

    /// Every decoded node with its id.
    pub fn iter(&self) -> impl Iterator<Item = (Nid, &Held)> {
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((Nid(i as u64), n.as_ref()?)));
        dense.chain(self.sparse.iter().map(|(&nid, n)| (nid, n)))
    }
}

/// A table page that fails its checks.
#[derive(Clone, Debug)]
pub struct LostPage {
    /// Its level (0: a leaf).
    pub level: u8,
    /// Its index in its level.
    pub index: u64,
    /// The entries it covered.
    pub entries: Range<u64>,
    /// The finding naming it (its place in the findings).
    pub finding: usize,
}

/// Walks a table, calling `leaf` on every non-zero entry. A damaged page
/// is a finding naming it; the rest of the table is still walked, and the
/// damaged pages are returned.
fn walk_table(
    dev: &dyn BlockDevice,
    table: MetaTable,
    id: TableId,
    scan: &mut Scan,
    findings: &mut Vec<Finding>,
    leaf: &mut dyn FnMut(u64, RawEntry),
) -> Vec<LostPage> {
    let shape = table.shape();
    let mut pages = Vec::new();
    let mut broken = Vec::new();
    let r = table.walk(
        dev,
        &mut |level, index, _, addr, page| {
            pages.push(addr);
            if level == 0 {
                for (i, e) in leaf_entries(shape, &page[..], index) {
                    leaf(i, e);
                }
            }
            Ok(())
        },
        &mut |level, index, name, e| broken.push((level, index, name, e)),
    );
    let mut lost = Vec::new();
    for (level, index, name, e) in broken {
        // Referenced all the same: its place is counted as used.
        let addr = if table.is_virtual() {
            scan.units.get(Vpn(name)).unwrap_or(PageAddr::NONE)
        } else {
            PageAddr(name)
        };
        if !addr.is_none() {
            pages.push(addr);
        }
        let entries = table.entries_under(level, index);
        let msg = format!(
            "{} page (level {level}, index {index}, entries {} to {}) is damaged: {}",
            table_name(id),
            entries.start,
            entries.end - 1,
            what_failed(&e)
        );
        lost.push(LostPage {
            level,
            index,
            entries,
            finding: findings.len(),
        });
        findings.push(Finding::new(Severity::Error, Kind::TableDamaged, msg).addr(addr));
    }
    scan.bytes_read += pages.len() as u64 * PAGE_SIZE as u64;
    scan.table_pages.extend(pages);
    if let Err(e) = r {
        findings.push(Finding::new(
            Severity::Error,
            Kind::TableDamaged,
            format!("{}: {e}", table_name(id)),
        ));
    }
    lost
}

/// What a page failed (the place is named by the finding).
fn what_failed(e: &Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

/// The table's name, for findings.
pub fn table_name(id: TableId) -> &'static str {
    match id {
        TableId::NodeAddress => "node address table",
        TableId::SegmentUsage => "segment usage table",
        TableId::PageAddress => "page address table",
        TableId::CheckpointList => "checkpoint list",
    }
}

/// Reads the page address table: where each unit in use is.
fn units(
    dev: &dyn BlockDevice,
    (cp, sealer): (&Checkpoint, Option<&Arc<crate::seal::Sealer>>),
    scan: &mut Scan,
    findings: &mut Vec<Finding>,
) {
    let watermark = cp.pat_watermark.0;
    let mut addrs = vec![PageAddr::NONE; watermark as usize];
    let mut long = FxHashMap::default();
    let mut misshapen = Vec::new();
    let mut free = FxHashMap::default();
    // Units above the watermark are kept (found, they are referenced as
    // any other; the watermark is a finding of `space::free_lists`), as
    // many as the device has pages.
    let limit = dev.len_pages().saturating_add(Vpn::FIRST.0);
    let table = MetaTable::new(TableId::PageAddress, cp.pat_root, 0, sealer.cloned());
    let lost = walk_table(
        dev,
        table,
        TableId::PageAddress,
        scan,
        findings,
        &mut |i, e| {
            if !crate::id_table::is_used(&e) {
                free.insert(i, crate::id_table::next_free(&e));
                return;
            }
            let e = PatEntry::decode(&e);
            if i >= watermark && i < limit && addrs.len() <= i as usize {
                addrs.resize(i as usize + 1, PageAddr::NONE);
            }
            if let Some(a) = addrs.get_mut(i as usize) {
                *a = e.addr;
            }
            // (A unit past its segment's end is found by the recount: its
            // later pages land in another segment's tally.)
            if e.pages == 0
                || u64::from(e.pages) > crate::segment_summary::MAX_UNIT_PAGES
                || usize::from(e.tail) >= crate::layout::PAGE_SIZE
            {
                misshapen.push((Vpn(i), e));
            } else if e.pages > 1 || e.transform.0 != 0 || e.tail != 0 || sealer.is_some() {
                long.insert(Vpn(i), e);
            }
        },
    );
    for (vpn, e) in misshapen {
        let msg = format!(
            "unit {vpn} takes {} pages from {} (1 to 16), {} bytes in the last (0 to 4095)",
            e.pages, e.addr, e.tail
        );
        let f = Finding::new(Severity::Error, Kind::AddressOutOfRange, msg).addr(e.addr);
        findings.push(f.fix(Fix::ReshapeUnit { vpn }));
    }
    scan.lost_units = lost.iter().map(|l| l.entries.clone()).collect();
    scan.lost_unit_pages = lost;
    scan.unit_free = free;
    scan.units = Units {
        addrs: Arc::new(addrs),
        long: Arc::new(long),
        sealer: sealer.cloned(),
    };
}

/// Reads a root's node address table (rooted at `nat_root`, its pages
/// found through `scan.units`) into `scan`.
pub fn node_table(
    dev: &dyn BlockDevice,
    nat_root: crate::meta_table::TableRoot,
    scan: &mut Scan,
    findings: &mut Vec<Finding>,
) {
    let mut nat = BTreeMap::new();
    let mut free = FxHashMap::default();
    let mut bad = Vec::new();
    let sealed = scan.units.sealer.is_some();
    let names: Arc<dyn PageNames> = Arc::new(scan.units.clone());
    let table = MetaTable::new_virtual(TableId::NodeAddress, nat_root, 0, names, sealed);
    let lost = walk_table(
        dev,
        table,
        TableId::NodeAddress,
        scan,
        findings,
        &mut |i, e| match decode_nat(&e, Nid(i)) {
            Ok(Slot::Used(entry)) => {
                nat.insert(Nid(i), entry);
            }
            Ok(Slot::Free(next)) => {
                free.insert(Nid(i), next);
            }
            Err(err) => bad.push((Nid(i), err.to_string())),
        },
    );
    for (nid, b) in bad {
        let msg = format!("node address table entry: {b}");
        let f = Finding::new(Severity::Error, Kind::NodeMisplaced, msg).nid(nid);
        findings.push(f.fix(Fix::ForgetNode { nid }));
    }
    scan.lost_nids = lost.iter().map(|l| l.entries.clone()).collect();
    scan.lost_node_pages = lost;
    scan.nat = nat;
    scan.free = free;
}

/// Reads the tables: page addresses first (the node address table's pages
/// are found through it), then segment usage and node addresses.
///
/// A sealed volume's tables and units are opened with `sealer`.
pub fn tables(
    dev: &dyn BlockDevice,
    cp: &Checkpoint,
    sealer: Option<&Arc<crate::seal::Sealer>>,
    findings: &mut Vec<Finding>,
) -> Scan {
    let mut scan = Scan::default();
    units(dev, (cp, sealer), &mut scan, findings);
    node_table(dev, cp.nat_root, &mut scan, findings);
    let mut usage = BTreeMap::new();
    let table = MetaTable::new(TableId::SegmentUsage, cp.sut_root, 0, sealer.cloned());
    let lost = walk_table(
        dev,
        table,
        TableId::SegmentUsage,
        &mut scan,
        findings,
        &mut |i, e| {
            if let Ok(u) = Usage::decode(&e, SegmentNo(i)) {
                usage.insert(SegmentNo(i), u);
            }
        },
    );
    // A leaf is built again from the recount (the usage it held is what
    // the check counts anyway); a page above leaves is not mended.
    for l in lost.iter().filter(|l| l.level == 0) {
        let fix = Fix::RebuildUsage { index: l.index };
        findings[l.finding].fix = Some(fix);
    }
    scan.lost_usage_pages = lost;
    scan.usage = usage;
    let table = MetaTable::new(
        TableId::CheckpointList,
        cp.checkpoint_list_root,
        0,
        sealer.cloned(),
    );
    let lost = walk_table(
        dev,
        table,
        TableId::CheckpointList,
        &mut scan,
        findings,
        &mut |_, _| {},
    );
    scan.past_hidden |= !lost.is_empty();
    history(dev, cp, &mut scan, findings);
    scan
}

/// Reads the checkpoint list and every deadlist: the units retained
/// checkpoints hold that the live root does not, and the deadlists' own
/// pages. Damage is a finding naming the checkpoint; its list is then
/// not followed further.
fn history(dev: &dyn BlockDevice, cp: &Checkpoint, scan: &mut Scan, findings: &mut Vec<Finding>) {
    let root = cp.checkpoint_list_root;
    let sealer = scan.units.sealer.clone();
    let list = match CheckpointList::open_sealed(dev, root, cp.list_next_slot, sealer) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("checkpoint list: {e}");
            findings.push(Finding::new(Severity::Error, Kind::TableDamaged, msg));
            scan.past_hidden = true;
            return;
        }
    };
    for rec in list.records() {
        if scan.units.get(Vpn(rec.nat_root.addr.0)).is_none() {
            let msg = format!(
                "retained checkpoint {}: its node address table (unit {}) is free",
                rec.no, rec.nat_root.addr.0
            );
            let f = Finding::new(Severity::Error, Kind::UnitMissing, msg);
            findings.push(f.fix(Fix::Prune { no: rec.no }));
            scan.past_hidden = true;
        }
        let (mut head, mut crc) = (rec.dead_head, rec.dead_crc);
        let mut seen = 0u64;
        while !head.is_none() {
            let Some(addr) = scan.units.get(head) else {
                let msg = format!(
                    "retained checkpoint {}: its deadlist names unit {head}, which is free",
                    rec.no
                );
                // The rest of the list cannot be read: forgotten with it.
                let f = Finding::new(Severity::Error, Kind::UnitMissing, msg);
                findings.push(f.fix(Fix::PruneBack { no: rec.no }));
                scan.past_hidden = true;
                break;
            };
            let mut page = crate::layout::zero_page();
            let kind = crate::segment_summary::PageKind::Deadlist;
            let page = dev
                .read(addr, &mut page[..])
                .map_err(Error::from)
                .and_then(|()| scan.units.open(head, kind, &mut page[..]))
                .and_then(|()| DeadlistPage::decode(&page[..], addr, crc));
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let msg = format!("retained checkpoint {}: deadlist page: {e}", rec.no);
                    let f = Finding::new(Severity::Error, Kind::DeadlistDamaged, msg).addr(addr);
                    findings.push(f.fix(Fix::PruneBack { no: rec.no }));
                    scan.past_hidden = true;
                    break;
                }
            };
            scan.bytes_read += PAGE_SIZE as u64;
            scan.deadlist_pages.push((addr, rec.no));
            seen += page.entries.len() as u64;
            scan.held.extend(page.entries.iter().map(|(v, _)| *v));
            (head, crc) = page.next;
        }
        if head.is_none() && seen != rec.dead_entries {
            let msg = format!(
                "retained checkpoint {}: record counts {} deadlist entries, the list holds {seen}",
                rec.no, rec.dead_entries
            );
            let f = Finding::new(Severity::Error, Kind::CounterWrong, msg);
            findings.push(f.fix(Fix::DeadlistCount { no: rec.no }));
        }
    }
    scan.retained = list.len() as u64;
    scan.past = list.records().rev().cloned().collect();
    scan.branches = list.branches().cloned().collect();
    scan.snapshots = list
        .records()
        .filter(|r| r.is_snapshot())
        .cloned()
        .collect();
    for b in &scan.branches {
        if list.get(b.no).is_none() {
            let msg = format!(
                "branch '{}': its origin, checkpoint {}, is not retained",
                b.shown_name(),
                b.no
            );
            findings.push(Finding::new(Severity::Error, Kind::UnitMissing, msg));
        }
    }
}

/// Reads every used node, in address order and in runs of consecutive
/// pages (several runs at once), checking each against its table checksum.
pub fn nodes(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    scan: &mut Scan,
    findings: &mut Vec<Finding>,
    progress: &mut dyn FnMut(u64),
) {
    let mut by_addr: Vec<Located> = Vec::with_capacity(scan.nat.len());
    for (&nid, e) in &scan.nat {
        match scan.units.get(e.vpn) {
            Some(addr) if geo.contains(addr) => by_addr.push((addr, nid, e.crc, e.vpn)),
            Some(addr) => findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::AddressOutOfRange,
                    format!("node's unit {} is outside the segment area", e.vpn),
                )
                .nid(nid)
                .addr(addr)
                .fix(Fix::ForgetNode { nid }),
            ),
            None => findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::UnitMissing,
                    format!("node's unit {} is free in the page address table", e.vpn),
                )
                .nid(nid)
                .fix(Fix::ForgetNode { nid }),
            ),
        }
    }
    by_addr.sort_unstable();
    let max_nid = scan.nat.keys().next_back().map_or(0, |n| n.0);
    scan.nodes = Nodes::with_bound((max_nid + 1).min(16 * scan.nat.len() as u64 + 4096));
    let runs = runs(&by_addr);
    // In batches, so that progress moves and at most one batch of decoded
    // nodes waits to be merged.
    for batch in runs.chunks(256) {
        let units = &scan.units;
        let read = parallel::map(batch, |run| read_run(dev, units, run));
        for (nodes, found, bytes) in read {
            progress(nodes.len() as u64);
            scan.bytes_read += bytes;
            for (nid, node) in nodes {
                scan.nodes.insert(nid, node);
            }
            findings.extend(found);
        }
    }
}

/// A node to read: where, which, its checksum and its unit.
type Located = (PageAddr, Nid, u32, Vpn);

/// Splits address-ordered nodes into runs of consecutive pages.
fn runs(by_addr: &[Located]) -> Vec<&[Located]> {
    let mut out = Vec::new();
    let mut rest = by_addr;
    while let Some(&(start, ..)) = rest.first() {
        let mut n = 1;
        while n < rest.len() && n < 256 && rest[n].0 .0 == start.0 + n as u64 {
            n += 1;
        }
        let (run, after) = rest.split_at(n);
        out.push(run);
        rest = after;
    }
    out
}

/// Reads and decodes one run: the nodes, the findings, the bytes read.
fn read_run(
    dev: &dyn BlockDevice,
    units: &Units,
    run: &[Located],
) -> (Vec<(Nid, Held)>, Vec<Finding>, u64) {
    let mut nodes = Vec::with_capacity(run.len());
    let mut findings = Vec::new();
    let Some(&(start, ..)) = run.first() else {
        return (nodes, findings, 0);
    };
    let mut buf = vec![0u8; run.len() * PAGE_SIZE];
    // A run that does not read is read again node by node, so that each
    // node that does not read is named.
    let whole = dev.read(start, &mut buf).is_ok();
    for (&(addr, nid, crc, vpn), page) in run.iter().zip(buf.chunks_exact_mut(PAGE_SIZE)) {
        if !whole {
            if let Err(e) = dev.read(addr, page) {
                let f = Finding::new(
                    Severity::Error,
                    Kind::NodeDamaged,
                    format!("cannot read: {e}"),
                );
                findings.push(f.nid(nid).addr(addr).fix(Fix::FreeDamaged { nid }));
                continue;
            }
        }
        if let Err(e) = units.open(vpn, crate::segment_summary::PageKind::Node, page) {
            findings.push(
                Finding::new(Severity::Error, Kind::NodeDamaged, what_failed(&e))
                    .nid(nid)
                    .addr(addr)
                    .fix(Fix::FreeDamaged { nid }),
            );
            continue;
        }
        let found = crc32(page);
        if found != crc {
            findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::NodeDamaged,
                    format!("checksum mismatch (expected {crc:#010x}, found {found:#010x})"),
                )
                .nid(nid)
                .addr(addr)
                .fix(Fix::FreeDamaged { nid }),
            );
            continue;
        }
        match Node::decode(page, addr, nid) {
            // Reduced here, in the reading thread: a batch of decoded
            // packs never waits whole.
            Ok(node) => nodes.push((nid, Held::of(node))),
            Err(e) => findings.push(
                Finding::new(Severity::Error, Kind::NodeDamaged, e.to_string())
                    .nid(nid)
                    .addr(addr)
                    .fix(Fix::FreeDamaged { nid }),
            ),
        }
    }
    (nodes, findings, buf.len() as u64)
}
