//! Space accounting: no page used twice, every address inside the segment
//! area, the segment usage table equal to a recount of what is referenced,
//! and the checkpoint's counters equal to what the tables hold.

use std::collections::HashSet;

use super::finding::{Finding, Kind, Severity};
use super::scan::Scan;
use super::tree::{Tree, Use};
use crate::checkpoint::Checkpoint;
use crate::ids::{Nid, PageAddr, SegmentNo};
use crate::layout::Geometry;

/// Runs the space checks; returns every referenced page with its owner,
/// in address order (taking the data pages out of `tree`).
pub fn check(
    scan: &Scan,
    tree: &mut Tree,
    geo: &Geometry,
    cp: &Checkpoint,
    cp_addr: PageAddr,
    findings: &mut Vec<Finding>,
) -> Vec<(PageAddr, Use)> {
    // The data list is the largest list a check holds: it grows in place.
    let mut uses = std::mem::take(&mut tree.data);
    uses.reserve_exact(scan.nat.len() + scan.table_pages.len() + 1);
    uses.extend(scan.nat.iter().map(|(&nid, e)| (e.addr, Use::Node(nid))));
    uses.extend(scan.table_pages.iter().map(|&a| (a, Use::Table)));
    uses.push((cp_addr, Use::Checkpoint));
    uses.sort_unstable_by_key(|(a, _)| *a);
    let mut live = vec![0u64; geo.segment_count as usize];
    for (i, &(addr, owner)) in uses.iter().enumerate() {
        let Some(seg) = geo.segment_of(addr) else {
            if !matches!(owner, Use::Node(_)) {
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Kind::AddressOutOfRange,
                        format!("{} points outside the segment area", owner),
                    )
                    .addr(addr),
                );
            }
            continue;
        };
        if let Some(&(prev, other)) = i.checked_sub(1).and_then(|p| uses.get(p)) {
            if prev == addr {
                let msg = format!("used by {} and by {}", other, owner);
                findings.push(
                    Finding::new(Severity::Error, Kind::PageUsedTwice, msg)
                        .addr(addr)
                        .segment(seg),
                );
            }
        }
        if let Some(l) = live.get_mut(seg.0 as usize) {
            *l += 1;
        }
    }
    let mut empty = 0u64;
    let mut total = 0u64;
    for s in 0..geo.segment_count {
        let seg = SegmentNo(s);
        let counted = live.get(s as usize).copied().unwrap_or(0);
        let recorded = scan.usage.get(&seg).map_or(0, |u| u64::from(u.live));
        if counted != recorded {
            let msg = format!("usage table says {recorded} live pages, {counted} are referenced");
            findings.push(Finding::new(Severity::Error, Kind::SegmentUsageWrong, msg).segment(seg));
        }
        if recorded == 0 {
            empty += 1;
        }
        total += recorded;
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
            findings.push(Finding::new(Severity::Error, Kind::CounterWrong, msg));
        }
    }
    free_list(scan, cp, findings);
    uses
}

/// The free node ids form one list, covering every unused id below the
/// watermark.
fn free_list(scan: &Scan, cp: &Checkpoint, findings: &mut Vec<Finding>) {
    let mut seen = HashSet::new();
    let mut cur = cp.nat_free_head;
    while !cur.is_none() {
        if !seen.insert(cur) {
            findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::FreeListBroken,
                    "the free list of node ids loops",
                )
                .nid(cur),
            );
            return;
        }
        match scan.free.get(&cur) {
            Some(&next) => cur = next,
            // An all-zero entry: free, and the end of the list.
            None if cur < cp.nat_watermark && !scan.nat.contains_key(&cur) => cur = Nid::NONE,
            None => {
                let msg = if scan.nat.contains_key(&cur) {
                    "the free list names a node in use"
                } else {
                    "the free list names an id above the watermark"
                };
                findings.push(Finding::new(Severity::Error, Kind::FreeListBroken, msg).nid(cur));
                return;
            }
        }
    }
    let unlisted = (Nid::FIRST_FREE.0..cp.nat_watermark.0)
        .map(Nid)
        .filter(|n| !scan.nat.contains_key(n) && !seen.contains(n))
        .count();
    if unlisted > 0 {
        let msg =
            format!("{unlisted} unused node ids are on no free list (they will never be reused)");
        findings.push(Finding::new(Severity::Warning, Kind::FreeListBroken, msg));
    }
}
