//! The log's own description of itself: every page the tables refer to
//! must be described, correctly, by the summary of the record holding it
//! (the cleaner will trust those summaries to find each page's owner).
//!
//! Summary pages are one per record, scattered through the log, and each
//! names where the next record of its segment starts, so a segment's chain
//! is read in order, but segments are read several at once and beside the
//! rest of the check. What is kept of each entry is an 8-byte digest of
//! what the check compares (offset included). A segment is right when the
//! digests of its referenced pages add up to the sum the references gave
//! the ledger; a segment that is not is compared page by page, and a
//! mismatch re-reads its segment to say what the summary claims.

use xxhash_rust::xxh3::xxh3_64;

use super::finding::{Finding, Fix, Kind, Severity};
use super::scan::Scan;
use super::space::Ledger;
use super::tree::Use;
use crate::device::BlockDevice;
use crate::ids::{PageAddr, SegmentNo};
use crate::layout::{Geometry, PAGE_SIZE};
use crate::parallel;
use crate::segment_summary::{self, Entry, PageKind};

/// What walking a segment's record chain needs to know of the filesystem.
#[derive(Clone, Debug)]
pub struct Segments {
    /// Where the segments lie.
    pub geo: Geometry,
    /// The filesystem's identity, which its record summaries carry.
    pub fs_id: u64,
    /// On a sealed volume, what opens the summaries.
    pub sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
}

/// The digest of what the check compares of the page at `off` of a
/// segment: kind, and for data and node pages owner, index and checksum.
/// (Table and checkpoint pages are known to the check by address only.)
fn digest(off: u64, kind: PageKind, owner: u64, index: u64, crc: u32) -> u64 {
    let mut b = [0u8; 25];
    b[0] = kind as u8;
    if matches!(kind, PageKind::Data | PageKind::Node) {
        b[1..9].copy_from_slice(&owner.to_le_bytes());
        b[9..17].copy_from_slice(&index.to_le_bytes());
        b[17..21].copy_from_slice(&crc.to_le_bytes());
    }
    b[21..25].copy_from_slice(&(off as u32).to_le_bytes());
    // Never 0, which marks an offset no summary describes.
    xxh3_64(&b) | 1
}

fn entry_digest(off: u64, e: &Entry, sealed: bool) -> u64 {
    // A compressed cluster's pointers hold the checksums of its logical
    // pages, not of what is stored, and on a sealed volume every pointer
    // holds the checksum of what a unit opens to: the digest leaves the
    // checksum out (the unit's tag or chain checks the stored bytes).
    let crc = if (e.kind == PageKind::Data && e.transform.0 != 0) || sealed {
        0
    } else {
        e.crc
    };
    digest(off, e.kind, e.owner, e.index, crc)
}

/// The digest of the page at `off`, a later page of the unit whose first
/// page is at `first` (same segment).
fn rest_digest(off: u64, first: u64) -> u64 {
    let mut b = [0u8; 17];
    b[0] = 0xff;
    b[1..9].copy_from_slice(&off.to_le_bytes());
    b[9..17].copy_from_slice(&first.to_le_bytes());
    xxh3_64(&b) | 1
}

/// The digest a right entry for `used` at `off` has; `None` when it cannot
/// be known (a node that failed to decode, reported already).
pub fn expected(scan: &Scan, off: u64, used: Use) -> Option<u64> {
    Some(match used {
        Use::Data(ino, idx, crc) => digest(off, PageKind::Data, ino.0, idx, crc),
        Use::Packed(ino, base, _) => digest(off, PageKind::Data, ino.0, base, 0),
        Use::Node(nid) => {
            let ino = scan.nodes.held(nid)?.ino();
            let crc = match scan.units.sealer() {
                Some(_) => 0,
                None => scan.nat.get(&nid)?.crc,
            };
            digest(off, PageKind::Node, ino.0, nid.0, crc)
        }
        Use::Table => digest(off, PageKind::Table, 0, 0, 0),
        Use::Checkpoint => digest(off, PageKind::Checkpoint, 0, 0, 0),
        Use::Deadlist(_) => digest(off, PageKind::Deadlist, 0, 0, 0),
        Use::Rest { nth, .. } => rest_digest(off, off.checked_sub(nth)?),
        // What a held unit was (data, a node) is not known without walking
        // the checkpoint that holds it.
        Use::Held(_) => return None,
    })
}

/// One segment's summary chain: the entry digest of every offset in the
/// segment (0 where no summary describes the page).
#[derive(Debug, Default)]
pub struct Chain {
    digests: Vec<u64>,
    findings: Vec<Finding>,
    bytes: u64,
}

impl Chain {
    fn get(&self, off: u64) -> Option<u64> {
        self.digests.get(off as usize).copied().filter(|&d| d != 0)
    }
}

/// Walks the summary chain of a segment, calling `each` with the offset and
/// entry of every page described; fills in the chain's findings and bytes.
/// (The first page that is not a valid summary ends the chain; pages it
/// leaves undescribed are reported by the check.)
fn walk(
    dev: &dyn BlockDevice,
    log: &Segments,
    seg: SegmentNo,
    chain: &mut Chain,
    each: &mut dyn FnMut(u64, &Entry),
) {
    let (pages, failed) =
        segment_summary::read_chain(dev, &log.geo, (log.fs_id, log.sealer.as_deref()), seg, each);
    chain.bytes += pages * PAGE_SIZE as u64;
    if let Some((addr, e)) = failed {
        // Mended by writing again each page it no longer describes (each
        // a finding of its own, with that fix).
        let msg = format!("cannot read a summary page: {e}");
        chain.findings.push(wrong(addr, seg, msg).fix(Fix::Commit));
    }
}

fn read_chain(dev: &dyn BlockDevice, log: &Segments, seg: SegmentNo) -> Chain {
    let mut chain = Chain::default();
    let mut digests = vec![0; log.geo.pages_per_segment as usize];
    let sealed = log.sealer.is_some();
    walk(dev, log, seg, &mut chain, &mut |off, e| {
        if let Some(d) = digests.get_mut(off as usize) {
            *d = entry_digest(off, e, sealed);
        }
        for rest in off + 1..off + e.pages() {
            if let Some(d) = digests.get_mut(rest as usize) {
                *d = rest_digest(rest, off);
            }
        }
    });
    chain.digests = digests;
    chain
}

/// Reads the summary chains of `segments` (those the usage table says hold
/// live pages), several at once. Runs beside the rest of the check, so
/// that its reads overlap the checker's work.
pub fn read_chains(
    dev: &dyn BlockDevice,
    log: &Segments,
    segments: &[SegmentNo],
) -> Vec<(SegmentNo, Chain)> {
    let chains = parallel::map(segments, |&seg| read_chain(dev, log, seg));
    segments.iter().copied().zip(chains).collect()
}

fn wrong(addr: PageAddr, seg: SegmentNo, msg: String) -> Finding {
    Finding::new(Severity::Error, Kind::SummaryWrong, msg)
        .addr(addr)
        .segment(seg)
}

/// What the summary says of the page at `off` (re-reading the segment),
/// for a message.
fn what_summary_says(dev: &dyn BlockDevice, log: &Segments, seg: SegmentNo, off: u64) -> String {
    let mut found = None;
    walk(dev, log, seg, &mut Chain::default(), &mut |o, e| {
        if o == off {
            found = Some(*e);
        }
    });
    match found {
        Some(e) => format!(
            "described as {:?} of {} index {} (checksum {:#010x})",
            e.kind, e.owner, e.index, e.crc
        ),
        None => "in no record summary".into(),
    }
}

/// The chain of `seg`: read ahead, or read now when the usage table
/// wrongly called the segment empty (kept in `late`).
fn chain_of<'c>(
    dev: &dyn BlockDevice,
    log: &Segments,
    seg: SegmentNo,
    chains: &'c [(SegmentNo, Chain)],
    late: &'c mut Vec<(SegmentNo, Chain)>,
) -> &'c Chain {
    if let Ok(i) = chains.binary_search_by_key(&seg, |(s, _)| *s) {
        return &chains[i].1;
    }
    if late.last().is_none_or(|(s, _)| *s != seg) {
        late.push((seg, read_chain(dev, log, seg)));
    }
    &late[late.len() - 1].1
}

/// Compares, segment by segment, the digests the summaries hold for the
/// referenced pages with those the references expect; returns the
/// segments that disagree (to be named page by page by [`detail`]) and
/// the bytes read. The chains' own findings (unreadable pages) are
/// reported here.
pub fn compare(
    dev: &dyn BlockDevice,
    log: &Segments,
    ledger: &Ledger<'_>,
    chains: &mut Vec<(SegmentNo, Chain)>,
    findings: &mut Vec<Finding>,
) -> (Vec<SegmentNo>, u64) {
    let mut late = Vec::new();
    let mut suspects = Vec::new();
    for seg in ledger.segments_used() {
        let chain = chain_of(dev, log, seg, chains, &mut late);
        let tally = ledger.tally(seg);
        let sum = (0..chain.digests.len() as u64)
            .filter(|&off| ledger.is_used(seg, off))
            .filter_map(|off| chain.get(off))
            .fold(0u64, |s, d| s.wrapping_add(d));
        if tally.opaque || sum != tally.sum {
            suspects.push(seg);
        }
    }
    chains.append(&mut late);
    chains.sort_unstable_by_key(|(s, _)| *s);
    let mut read = 0;
    for (_, chain) in chains.iter() {
        read += chain.bytes;
        findings.extend(chain.findings.iter().cloned());
    }
    (suspects, read)
}

/// Names every page of `pages` (those of the segments [`compare`] found
/// wrong, in address order) that its record's summary describes wrong.
pub fn detail(
    dev: &dyn BlockDevice,
    log: &Segments,
    scan: &Scan,
    pages: &[(PageAddr, Use)],
    chains: &[(SegmentNo, Chain)],
    findings: &mut Vec<Finding>,
) {
    for &(addr, used) in pages {
        let Some(seg) = log.geo.segment_of(addr) else {
            continue; // reported by the space check
        };
        let Ok(i) = chains.binary_search_by_key(&seg, |(s, _)| *s) else {
            continue;
        };
        let off = log.geo.offset_in_segment(addr);
        let Some(want) = expected(scan, off, used) else {
            continue;
        };
        if chains[i].1.get(off) != Some(want) {
            let says = what_summary_says(dev, log, seg, off);
            let f = wrong(addr, seg, format!("{used} is {says}"));
            // A later page of a unit: what rewrites the unit's first page.
            let used = match used {
                Use::Rest { first, .. } => pages
                    .binary_search_by_key(&first, |(a, _)| *a)
                    .map_or(used, |i| pages[i].1),
                _ => used,
            };
            findings.push(match used {
                Use::Data(ino, idx, _) => f.fix(Fix::Relog { ino, idx }),
                Use::Packed(ino, base, _) => f.fix(Fix::Relog { ino, idx: base }),
                Use::Node(nid) => f.fix(Fix::RelogNode { nid }),
                Use::Deadlist(no) => f.fix(Fix::Prune { no }),
                Use::Table => f.fix(Fix::RelogTables),
                Use::Checkpoint => f.fix(Fix::Commit),
                _ => f,
            });
        }
    }
}
