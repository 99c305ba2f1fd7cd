//! Reading what a full check needs: both metadata tables and every node,
//! in address order, in large reads.

use std::collections::{BTreeMap, HashMap};

use super::finding::{Finding, Kind, Severity};
use crate::codec::crc32;
use crate::device::BlockDevice;
use crate::ids::{Nid, PageAddr, SegmentNo};
use crate::layout::{Geometry, PAGE_SIZE};
use crate::meta_table::{MetaTable, TableId, TableRoot, ENTRY_SIZE, FANOUT, PAGE_HEADER};
use crate::node::Node;
use crate::node_table::{decode as decode_nat, NatEntry, Slot};
use crate::segment_usage::Usage;

/// Everything read from the tables and nodes.
#[derive(Debug, Default)]
pub struct Scan {
    /// Used node ids and where they are.
    pub nat: BTreeMap<Nid, NatEntry>,
    /// Free entries: node id -> next free.
    pub free: HashMap<Nid, Nid>,
    /// Usage per segment, as the table says.
    pub usage: BTreeMap<SegmentNo, Usage>,
    /// Pages of both tables.
    pub table_pages: Vec<PageAddr>,
    /// Decoded nodes.
    pub nodes: HashMap<Nid, Node>,
    /// Bytes read.
    pub bytes_read: u64,
}

fn leaf_entries(page: &[u8], index: u64) -> impl Iterator<Item = (u64, [u8; ENTRY_SIZE])> + '_ {
    (0..FANOUT).filter_map(move |slot| {
        let off = PAGE_HEADER + slot as usize * ENTRY_SIZE;
        let mut e = [0u8; ENTRY_SIZE];
        e.copy_from_slice(page.get(off..off + ENTRY_SIZE)?);
        (e != [0u8; ENTRY_SIZE]).then_some((index * FANOUT + slot, e))
    })
}

/// Walks a table, calling `leaf` on every non-zero entry.
fn walk_table(
    dev: &dyn BlockDevice,
    id: TableId,
    root: TableRoot,
    scan: &mut Scan,
    findings: &mut Vec<Finding>,
    leaf: &mut dyn FnMut(u64, [u8; ENTRY_SIZE]),
) -> bool {
    let table = MetaTable::new(id, root, 0);
    let mut pages = Vec::new();
    let r = table.walk(dev, &mut |level, index, addr, page| {
        pages.push(addr);
        if level == 0 {
            for (i, e) in leaf_entries(&page[..], index) {
                leaf(i, e);
            }
        }
        Ok(())
    });
    scan.bytes_read += pages.len() as u64 * PAGE_SIZE as u64;
    scan.table_pages.extend(pages);
    match r {
        Ok(()) => true,
        Err(e) => {
            findings.push(Finding::new(
                Severity::Fatal,
                Kind::TableDamaged,
                format!("{id:?} table: {e}"),
            ));
            false
        }
    }
}

/// Reads both tables.
pub fn tables(
    dev: &dyn BlockDevice,
    nat_root: TableRoot,
    sut_root: TableRoot,
    findings: &mut Vec<Finding>,
) -> Option<Scan> {
    let mut scan = Scan::default();
    let mut nat = BTreeMap::new();
    let mut free = HashMap::new();
    let mut bad = Vec::new();
    let ok = walk_table(
        dev,
        TableId::NodeAddress,
        nat_root,
        &mut scan,
        findings,
        &mut |i, e| match decode_nat(&e, Nid(i)) {
            Ok(Slot::Used(entry)) => {
                nat.insert(Nid(i), entry);
            }
            Ok(Slot::Free(next)) => {
                free.insert(Nid(i), next);
            }
            Err(err) => bad.push(err.to_string()),
        },
    );
    if !ok {
        return None;
    }
    for b in bad {
        findings.push(Finding::new(
            Severity::Error,
            Kind::TableDamaged,
            format!("node address table entry: {b}"),
        ));
    }
    scan.nat = nat;
    scan.free = free;
    let mut usage = BTreeMap::new();
    let ok = walk_table(
        dev,
        TableId::SegmentUsage,
        sut_root,
        &mut scan,
        findings,
        &mut |i, e| {
            if let Ok(u) = Usage::decode(&e, SegmentNo(i)) {
                usage.insert(SegmentNo(i), u);
            }
        },
    );
    if !ok {
        return None;
    }
    scan.usage = usage;
    Some(scan)
}

/// Reads every used node, in address order and in runs of consecutive
/// pages, checking each against its table checksum.
pub fn nodes(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    scan: &mut Scan,
    findings: &mut Vec<Finding>,
    progress: &mut dyn FnMut(u64),
) {
    let mut by_addr: Vec<(PageAddr, Nid, u32)> = Vec::with_capacity(scan.nat.len());
    for (&nid, e) in &scan.nat {
        if geo.contains(e.addr) {
            by_addr.push((e.addr, nid, e.crc));
        } else {
            findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::AddressOutOfRange,
                    "node address outside the segment area",
                )
                .nid(nid)
                .addr(e.addr),
            );
        }
    }
    by_addr.sort_unstable();
    let mut buf = Vec::new();
    let mut i = 0;
    while i < by_addr.len() {
        let start = by_addr[i].0;
        let mut j = i + 1;
        while j < by_addr.len() && by_addr[j].0 .0 == start.0 + (j - i) as u64 && j - i < 256 {
            j += 1;
        }
        buf.resize((j - i) * PAGE_SIZE, 0);
        if let Err(e) = dev.read(start, &mut buf) {
            findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::NodeDamaged,
                    format!("cannot read: {e}"),
                )
                .addr(start),
            );
            i = j;
            continue;
        }
        scan.bytes_read += buf.len() as u64;
        for (k, &(addr, nid, crc)) in by_addr[i..j].iter().enumerate() {
            let page = &buf[k * PAGE_SIZE..(k + 1) * PAGE_SIZE];
            let found = crc32(page);
            if found != crc {
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Kind::NodeDamaged,
                        format!("checksum mismatch (expected {crc:#010x}, found {found:#010x})"),
                    )
                    .nid(nid)
                    .addr(addr),
                );
                continue;
            }
            match Node::decode(page, addr, nid) {
                Ok(node) => {
                    scan.nodes.insert(nid, node);
                }
                Err(e) => findings.push(
                    Finding::new(Severity::Error, Kind::NodeDamaged, e.to_string())
                        .nid(nid)
                        .addr(addr),
                ),
            }
        }
        progress((j - i) as u64);
        i = j;
    }
}
