//! Building damaged table pages again from what the log still holds, as
//! F2FS's fsck rebuilds its node address table from the nodes' footers.
//! The check finds what each damaged leaf named; the repair's mount puts
//! a fresh leaf in its place before anything is written
//! (`recovery::Rebase`, `MetaTable::replace_leaf`).
//!
//! - A leaf of the page address table (where each unit is): the record
//!   summaries name the unit (vpn) of every page they describe; the newest
//!   record naming a number (by time: after a rewind, abandoned records
//!   share numbers with the new history) is where that unit is now, if
//!   its stored bytes still match the checksum it recorded (a unit moves
//!   only by being written again, a page is overwritten only once its
//!   segment is free, and then its bytes no longer match); if they do not,
//!   the number is left free.
//! - A leaf of the live node address table (where each node is): a node's
//!   page names its id in its header; the units nothing reached that hold
//!   a node of an id the leaf covered, and, for nodes unchanged since a
//!   retained checkpoint, that checkpoint's own leaf, name them.
//! - A leaf of the segment usage table: the recount (`space::recount`).

use std::collections::{BTreeMap, HashSet};

use super::finding::{Finding, Fix};
use super::scan::{LostPage, Scan};
use super::space::{self, Ledger};
use crate::checkpoint::Checkpoint;
use crate::device::BlockDevice;
use crate::ids::{CheckpointNo, Nid, PageAddr, SegmentNo, Vpn};
use crate::layout::{Geometry, PAGE_SIZE};
use crate::meta_table::{MetaTable, TableId};
use crate::node::{self, Node};
use crate::page_table::PatEntry;
use crate::segment_summary::{walk_segment, Entry, PageKind, Summary};

/// When a record was written, the newest greatest: its time, the
/// checkpoint it belongs to, its sequence number. Time comes first: after
/// a rewind (`--checkpoint N`), the log still holds the abandoned records
/// numbered past N, and the new history numbers its own alike.
type Written = (i64, u64, u64);

/// The newest entry the record summaries of every segment hold for each
/// key `key` gives (none: not wanted), of records that belong to `cp` or
/// an earlier checkpoint (later ones are not its state), with where the
/// page is.
fn newest_in_log<K: Ord>(
    dev: &dyn BlockDevice,
    (geo, fs_id): (&Geometry, u64),
    cp: &Checkpoint,
    key: &dyn Fn(&Entry) -> Option<K>,
) -> BTreeMap<K, (Written, PageAddr, Entry)> {
    let mut newest: BTreeMap<K, (Written, PageAddr, Entry)> = BTreeMap::new();
    let mut page = crate::layout::zero_page();
    for s in 0..geo.segment_count {
        let start = geo.segment_start(SegmentNo(s));
        // The record whose entries `each` sees next.
        let at: std::cell::Cell<Option<Written>> = std::cell::Cell::new(None);
        let mut summary_at = |off: u64| -> Option<Summary> {
            let addr = start.offset(off);
            dev.read(addr, &mut page[..]).ok()?;
            let s = Summary::decode(&page[..], addr).ok().flatten()?;
            at.set(Some((s.time_ns, s.checkpoint_no.0, s.seq)));
            Some(s)
        };
        let mut each = |off: u64, e: &Entry| {
            let (Some(written), Some(k)) = (at.get(), key(e)) else {
                return;
            };
            // Written after the checkpoint: not its state.
            if written.1 > cp.no.0 {
                return;
            }
            if newest.get(&k).is_none_or(|(w, _, _)| *w < written) {
                newest.insert(k, (written, start.offset(off), *e));
            }
        };
        walk_segment(geo.pages_per_segment, fs_id, &mut summary_at, &mut each);
    }
    newest
}

/// The pages below damaged interior pages of the page address and segment
/// usage tables (named by address, current only: a page's newest copy in
/// the log is the one in use, and none is ever dropped), found again in
/// the record summaries: each table page's entry names its table, level
/// and index. A copy is used if its bytes still match their checksum and
/// say they are that page. Each interior page's finding gets the fix that
/// builds it again. Not on a sealed volume.
pub fn lost_interiors(
    dev: &dyn BlockDevice,
    log: (&Geometry, u64),
    cp: &Checkpoint,
    scan: &Scan,
    findings: &mut [Finding],
) {
    if scan.units.sealed() {
        return;
    }
    let fanout = crate::meta_table::Shape::PLAIN.fanout();
    let tables = [
        (TableId::PageAddress, &scan.lost_unit_pages),
        (TableId::SegmentUsage, &scan.lost_usage_pages),
    ];
    for (id, lost) in tables {
        let interiors: Vec<&LostPage> = lost.iter().filter(|l| l.level > 0).collect();
        if interiors.is_empty() {
            continue;
        }
        let wanted = |level: u8, index: u64| {
            interiors
                .iter()
                .any(|l| l.level == level + 1 && index / fanout == l.index)
        };
        let key = |e: &Entry| {
            let (level, index) = ((e.index >> 56) as u8, e.index & ((1 << 56) - 1));
            let ours = e.kind == PageKind::Table && e.owner == id as u64;
            (ours && wanted(level, index)).then_some((level, index))
        };
        let newest = newest_in_log(dev, log, cp, &key);
        for l in interiors {
            let below = (l.index * fanout)..((l.index + 1) * fanout);
            let children: Vec<(u64, PageAddr, u32)> = below
                .clone()
                .filter_map(|i| {
                    let (_, addr, e) = newest.get(&(l.level - 1, i))?;
                    table_page_at(dev, *addr, (id, l.level - 1, i), e.crc)
                        .map(|crc| (i, *addr, crc))
                })
                .collect();
            // A page below it not found would read as never written: its
            // entries would go unsaid. Every one holding a unit number in
            // use must be found; the segment usage table's may not (a
            // segment the recount finds in use is counted again anyway).
            let span = crate::meta_table::Shape::PLAIN.capacity(l.level - 1);
            let needed = below
                .filter(|i| i * span < cp.pat_watermark.0)
                .all(|i| children.iter().any(|c| c.0 == i));
            if id == TableId::PageAddress && !needed {
                continue;
            }
            findings[l.finding].fix = Some(Fix::RebuildInterior {
                table: id,
                level: l.level,
                index: l.index,
                children,
            });
        }
    }
}

/// Is the page at `addr` page (`level`, `index`) of table `id`, whole
/// (its checksum `crc`)? Its checksum then.
fn table_page_at(
    dev: &dyn BlockDevice,
    addr: PageAddr,
    (id, level, index): (TableId, u8, u64),
    crc: u32,
) -> Option<u32> {
    let mut page = crate::layout::zero_page();
    dev.read(addr, &mut page[..]).ok()?;
    let r = crate::codec::Reader::new(&page[..], "table page", addr);
    let whole = crate::codec::crc32(&page[..]) == crc
        && r.bytes(0, 4).ok()? == crate::meta_table::PAGE_MAGIC
        && r.u8(4).ok()? == id as u8
        && r.u8(5).ok()? == level
        && r.u64(8).ok()? == index;
    whole.then_some(crc)
}

/// The units a damaged leaf of the page address table named, found again
/// in the record summaries of every segment (see the module). Each leaf's
/// finding gets the fix that builds it again. Not on a sealed volume: a
/// sealed unit's entry holds its seal, which no summary keeps.
pub fn lost_units(
    dev: &dyn BlockDevice,
    (geo, fs_id): (&Geometry, u64),
    cp: &Checkpoint,
    scan: &Scan,
    findings: &mut [Finding],
) {
    let leaves: Vec<&LostPage> = scan
        .lost_unit_pages
        .iter()
        .filter(|l| l.level == 0)
        .collect();
    if leaves.is_empty() || scan.units.sealed() {
        return;
    }
    let covered = |vpn: Vpn| leaves.iter().any(|l| l.entries.contains(&vpn.0));
    let key = |e: &Entry| (!e.vpn.is_none() && covered(e.vpn)).then_some(e.vpn);
    let newest = newest_in_log(dev, (geo, fs_id), cp, &key);
    let mut found: BTreeMap<Vpn, PatEntry> = BTreeMap::new();
    for (vpn, (_, addr, e)) in newest {
        let len = e.stored_len as usize;
        let mut bytes = vec![0u8; (e.pages() as usize) * PAGE_SIZE];
        if len > bytes.len() || dev.read(addr, &mut bytes).is_err() {
            continue;
        }
        if crate::codec::crc32(&bytes[..len]) != e.crc {
            continue;
        }
        // A unit the cleaner moved keeps a birth no summary says (its
        // record is the move's): the oldest is assumed for every unit, so
        // that no retained checkpoint that may hold one lets it be freed
        // early (it waits on the newest retained checkpoint instead).
        let birth = CheckpointNo(0);
        found.insert(vpn, PatEntry::stored(addr, birth, len, e.transform));
    }
    for l in leaves {
        let units = found
            .range(Vpn(l.entries.start)..Vpn(l.entries.end))
            .map(|(&v, &e)| (v, e))
            .collect();
        findings[l.finding].fix = Some(Fix::RebuildUnitTable {
            index: l.index,
            units,
        });
    }
}

/// The nodes a damaged leaf of the node address table named, found again:
/// a unit nothing reached whose page is a node (it opens, decodes, and its
/// header names an id the leaf covered) is one, the newest by the
/// checkpoint it was written for where two name the same id (F2FS's fsck
/// rebuilds its NAT from node footers alike). Each leaf's finding gets the
/// fix that builds it again; the units found are returned, not leaks.
pub fn lost_nodes(
    dev: &dyn BlockDevice,
    scan: &Scan,
    ledger: &Ledger<'_>,
    findings: &mut [Finding],
) -> HashSet<Vpn> {
    let leaves: Vec<&LostPage> = scan
        .lost_node_pages
        .iter()
        .filter(|l| l.level == 0)
        .collect();
    // A page address table page damaged too hides units (the node
    // table's own pages among them): that one is built again first.
    if leaves.is_empty() || !scan.lost_units.is_empty() {
        return HashSet::new();
    }
    // id -> (written for, unit, checksum)
    let mut found: BTreeMap<Nid, (u64, Vpn, u32)> = BTreeMap::new();
    let covered = |nid: Nid| leaves.iter().any(|l| l.entries.contains(&nid.0));
    // Nodes rewritten since the last retained checkpoint: units nothing
    // reached, whose header names the id.
    for (vpn, _) in space::unreached(scan, ledger) {
        let Some((addr, page)) = unit_page(dev, scan, vpn) else {
            continue;
        };
        let r = crate::codec::Reader::new(&page[..], "node", addr);
        if let (Ok(magic), Ok(nid)) = (r.bytes(node::off::MAGIC, 4), r.u64(node::off::NID)) {
            if magic == node::MAGIC && covered(Nid(nid)) {
                keep(
                    &mut found,
                    (Nid(nid), vpn),
                    whole_node(&page, addr, Nid(nid)),
                );
            }
        }
    }
    // Nodes unchanged since a retained checkpoint: its own leaf (another
    // unit, unless the leaf too is unchanged) names them. Only units the
    // live root still holds (none a deadlist holds).
    let held: HashSet<Vpn> = scan.held.iter().copied().collect();
    for rec in &scan.past {
        let names: std::sync::Arc<dyn crate::meta_table::PageNames> =
            std::sync::Arc::new(scan.units.clone());
        let sealed = scan.units.sealed();
        let mut table =
            MetaTable::new_virtual(TableId::NodeAddress, rec.nat_root, 0, names, sealed);
        for l in &leaves {
            for n in l.entries.clone() {
                let Ok(raw) = table.get(dev, n) else { break };
                if let Ok(crate::node_table::Slot::Used(e)) =
                    crate::node_table::decode(&raw, Nid(n))
                {
                    if !held.contains(&e.vpn) {
                        let got = unit_page(dev, scan, e.vpn)
                            .and_then(|(addr, page)| whole_node(&page, addr, Nid(n)));
                        keep(&mut found, (Nid(n), e.vpn), got);
                    }
                }
            }
        }
    }
    for l in leaves {
        let nodes: Vec<(Nid, Vpn, u32)> = found
            .range(Nid(l.entries.start)..Nid(l.entries.end))
            .map(|(&nid, &(_, vpn, crc))| (nid, vpn, crc))
            .collect();
        findings[l.finding].fix = Some(Fix::RebuildNodeTable {
            index: l.index,
            nodes,
        });
    }
    found.values().map(|&(_, vpn, _)| vpn).collect()
}

/// Keeps node `nid` at unit `vpn` (`got`: the checkpoint it was written
/// for, the checksum of its page) unless a newer copy is kept already.
fn keep(
    found: &mut BTreeMap<Nid, (u64, Vpn, u32)>,
    (nid, vpn): (Nid, Vpn),
    got: Option<(u64, u32)>,
) {
    if let Some((written, crc)) = got {
        if found.get(&nid).is_none_or(|&(w, _, _)| w < written) {
            found.insert(nid, (written, vpn, crc));
        }
    }
}

/// The page of one-page unit `vpn`, read and opened, and where it is.
fn unit_page(
    dev: &dyn BlockDevice,
    scan: &Scan,
    vpn: Vpn,
) -> Option<(PageAddr, Box<crate::layout::Page>)> {
    let (addr, pages) = scan.units.unit(vpn)?;
    let mut page = crate::layout::zero_page();
    if pages != 1 || dev.read(addr, &mut page[..]).is_err() {
        return None;
    }
    scan.units.open(vpn, PageKind::Node, &mut page[..]).ok()?;
    Some((addr, page))
}

/// Is `page` (at `addr`) node `nid`, whole? Its header's checkpoint (the
/// one it was written for) and the checksum of the page.
fn whole_node(page: &crate::layout::Page, addr: PageAddr, nid: Nid) -> Option<(u64, u32)> {
    Node::decode(&page[..], addr, nid).ok()?;
    let r = crate::codec::Reader::new(&page[..], "node", addr);
    let written = r.u64(node::off::CHECKPOINT_NO).ok()?;
    Some((written, crate::codec::crc32(&page[..])))
}
