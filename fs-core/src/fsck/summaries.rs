//! The log's own description of itself: every page the tables refer to
//! must be described, correctly, by the summary of the record holding it
//! (the cleaner will trust those summaries to find each page's owner).

use std::collections::HashMap;

use super::finding::{Finding, Kind, Severity};
use super::scan::Scan;
use super::tree::{Tree, Use};
use crate::device::BlockDevice;
use crate::ids::{PageAddr, SegmentNo};
use crate::layout::{zero_page, Geometry};
use crate::segment_summary::{Entry, PageKind, Summary};
use crate::segment_writer::record_fits;

/// Reads the summaries of every segment holding live pages; returns the
/// entries by page address and the bytes read.
fn read_all(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    scan: &Scan,
    findings: &mut Vec<Finding>,
) -> (HashMap<PageAddr, Entry>, u64) {
    let mut by_addr = HashMap::new();
    let mut read = 0u64;
    let pps = u64::from(geo.pages_per_segment);
    for (&seg, _) in scan.usage.iter().filter(|(_, u)| u.live > 0) {
        let start = geo.segment_start(seg);
        let mut off = 0u64;
        let mut page = zero_page();
        while record_fits(off, geo.pages_per_segment) {
            let addr = start.offset(off);
            if dev.read(addr, &mut page[..]).is_err() {
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Kind::SummaryWrong,
                        "cannot read a summary page",
                    )
                    .addr(addr)
                    .segment(seg),
                );
                break;
            }
            read += page.len() as u64;
            let Ok(Some(s)) = Summary::decode(&page[..], addr) else {
                break;
            };
            let n = s.entries.len() as u64 + u64::from(s.tag_pages);
            if off + 1 + n > pps {
                break;
            }
            let first = addr.offset(1 + u64::from(s.tag_pages));
            for (i, e) in s.entries.iter().enumerate() {
                by_addr.insert(first.offset(i as u64), *e);
            }
            off += 1 + n;
        }
    }
    (by_addr, read)
}

fn wrong(addr: PageAddr, seg: Option<SegmentNo>, msg: String) -> Finding {
    let f = Finding::new(Severity::Error, Kind::SummaryWrong, msg).addr(addr);
    match seg {
        Some(s) => f.segment(s),
        None => f,
    }
}

/// Checks that every referenced page is described right; returns bytes read.
pub fn check(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    scan: &Scan,
    tree: &Tree,
    findings: &mut Vec<Finding>,
) -> u64 {
    let (entries, read) = read_all(dev, geo, scan, findings);
    let seg = |a: PageAddr| geo.segment_of(a);
    for &(addr, used) in &tree.data {
        let Use::Data(ino, idx, crc) = used else {
            continue;
        };
        match entries.get(&addr) {
            Some(e)
                if e.kind == PageKind::Data
                    && e.owner == ino.0
                    && e.index == idx
                    && e.crc == crc => {}
            Some(e) => findings.push(wrong(
                addr,
                seg(addr),
                format!(
                    "page {idx} of inode {ino} is described as {:?} of {} index {}",
                    e.kind, e.owner, e.index
                ),
            )),
            None => findings.push(wrong(
                addr,
                seg(addr),
                format!("page {idx} of inode {ino} is in no record summary"),
            )),
        }
    }
    for (&nid, nat) in &scan.nat {
        let owner = scan.nodes.get(&nid).map(|n| n.ino.0);
        match entries.get(&nat.addr) {
            Some(e)
                if e.kind == PageKind::Node
                    && e.index == nid.0
                    && owner.is_none_or(|o| o == e.owner)
                    && e.crc == nat.crc => {}
            Some(e) => findings.push(
                wrong(
                    nat.addr,
                    seg(nat.addr),
                    format!(
                        "node {nid} is described as {:?} of {} index {}",
                        e.kind, e.owner, e.index
                    ),
                )
                .nid(nid),
            ),
            None => findings.push(
                wrong(
                    nat.addr,
                    seg(nat.addr),
                    format!("node {nid} is in no record summary"),
                )
                .nid(nid),
            ),
        }
    }
    for &addr in &scan.table_pages {
        match entries.get(&addr) {
            Some(e) if e.kind == PageKind::Table => {}
            Some(e) => findings.push(wrong(
                addr,
                seg(addr),
                format!("a table page is described as {:?}", e.kind),
            )),
            None => findings.push(wrong(
                addr,
                seg(addr),
                "a table page is in no record summary".into(),
            )),
        }
    }
    read
}
