//! --verify-data: every live data page read in address order, in large
//! reads, and checked against the checksum in its pointer; every
//! compressed cluster read, its chain undone, and each of its logical
//! pages checked the same way.

use super::finding::{Finding, Fix, Kind, Severity};
use super::tree::{PackedUnit, Use};
use crate::codec::crc32;
use crate::device::BlockDevice;
use crate::ids::PageAddr;
use crate::layout::{Geometry, PAGE_SIZE};
use crate::transform::ChainSet;

/// Largest single read, in pages.
const MAX_RUN: u64 = 256;

/// Reads and checks every stored data page; returns bytes read.
pub fn verify(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    uses: &[(PageAddr, Use)],
    findings: &mut Vec<Finding>,
    progress: &mut dyn FnMut(u64),
) -> u64 {
    // `uses` is in address order already.
    let pages: Vec<(PageAddr, Use)> = uses
        .iter()
        .filter_map(|&(a, o)| match o {
            u @ Use::Data(..) if geo.contains(a) => Some((a, u)),
            _ => None,
        })
        .collect();
    let mut read = 0u64;
    let mut buf = Vec::new();
    let mut i = 0;
    while i < pages.len() {
        let start = pages[i].0;
        let mut j = i + 1;
        // Read through small gaps (summary pages) rather than split the run.
        while j < pages.len()
            && pages[j].0 .0 <= pages[j - 1].0 .0 + 2
            && pages[j].0 .0 - start.0 < MAX_RUN
        {
            j += 1;
        }
        let span = pages[j - 1].0 .0 - start.0 + 1;
        buf.resize(span as usize * PAGE_SIZE, 0);
        // A run that does not read is read again page by page, so that
        // each page that does not read is named with its file.
        let whole = dev.read(start, &mut buf).is_ok();
        read += buf.len() as u64;
        for &(addr, owner) in &pages[i..j] {
            let Use::Data(ino, idx, crc) = owner else {
                continue;
            };
            let at = (addr.0 - start.0) as usize * PAGE_SIZE;
            let page = &mut buf[at..at + PAGE_SIZE];
            let failed = match whole {
                true => None,
                false => dev.read(addr, page).err(),
            };
            let msg = match failed {
                Some(e) => format!("data page {idx} cannot be read: {e}"),
                None => match crc32(page) {
                    found if found != crc => format!(
                        "data page {idx} fails its checksum (expected {crc:#010x}, found {found:#010x})"
                    ),
                    _ => continue,
                },
            };
            let fix = Fix::DropPages {
                ino,
                first: idx,
                count: 1,
            };
            findings.push(
                Finding::new(Severity::Error, Kind::DataDamaged, msg)
                    .ino(ino)
                    .addr(addr)
                    .fix(fix),
            );
        }
        progress((j - i) as u64);
        i = j;
    }
    read
}

/// Reads every unit of `packed` (compressed clusters; on a sealed volume,
/// every data unit), undoes it with `chains` (opening it, on a sealed
/// volume: its tag is checked) and checks the logical pages its pointers
/// name; returns bytes read. Units next to each other are read together,
/// and runs are read and undone on several threads (undoing is the cost).
pub fn verify_packed(
    dev: &dyn BlockDevice,
    chains: &ChainSet,
    packed: &[PackedUnit],
    findings: &mut Vec<Finding>,
    progress: &mut dyn FnMut(u64),
) -> u64 {
    let mut order: Vec<&PackedUnit> = packed.iter().collect();
    order.sort_unstable_by_key(|u| u.entry.addr);
    let runs = unit_runs(&order);
    let mut read = 0;
    for batch in runs.chunks(64) {
        let done = crate::parallel::map(batch, |run| verify_run(dev, chains, run));
        for (found, bytes, pages) in done {
            findings.extend(found);
            read += bytes;
            progress(pages);
        }
    }
    read
}

/// Address-ordered units in runs read with one request: each unit at most
/// a page after the previous one's end, at most [`MAX_RUN`] pages.
fn unit_runs<'u>(order: &[&'u PackedUnit]) -> Vec<Vec<&'u PackedUnit>> {
    let mut runs: Vec<Vec<&PackedUnit>> = Vec::new();
    for &u in order {
        let joins = runs
            .last()
            .and_then(|r| Some((r.first()?, r.last()?)))
            .is_some_and(|(first, last)| {
                let end = last.entry.addr.0 + u64::from(last.entry.pages);
                let at = u.entry.addr.0;
                at >= end
                    && at <= end + 1
                    && at + u64::from(u.entry.pages) - first.entry.addr.0 <= MAX_RUN
            });
        match (joins, runs.last_mut()) {
            (true, Some(r)) => r.push(u),
            _ => runs.push(vec![u]),
        }
    }
    runs
}

/// Reads one run and checks its units: the findings, bytes read, pages.
fn verify_run(
    dev: &dyn BlockDevice,
    chains: &ChainSet,
    run: &[&PackedUnit],
) -> (Vec<Finding>, u64, u64) {
    let mut findings = Vec::new();
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return (findings, 0, 0);
    };
    let start = first.entry.addr;
    let span = last.entry.addr.0 + u64::from(last.entry.pages) - start.0;
    let mut buf = vec![0u8; span as usize * PAGE_SIZE];
    // A run that does not read is read again unit by unit, so that each
    // unit that does not read is named with its file.
    let whole = dev.read(start, &mut buf).is_ok();
    for u in run {
        let at = (u.entry.addr.0 - start.0) as usize * PAGE_SIZE;
        let end = at + usize::from(u.entry.pages) * PAGE_SIZE;
        if !whole {
            if let Err(e) = dev.read(u.entry.addr, &mut buf[at..end]) {
                findings.push(unit_finding(
                    u,
                    format!("{} cannot be read: {e}", unit_name(u)),
                ));
                continue;
            }
        }
        let stored = &buf[at..at + u.entry.stored_len()];
        if let Some(f) = verify_unit(chains, u, stored) {
            findings.push(f);
        }
    }
    (findings, buf.len() as u64, span)
}

/// What unit `u` holds, for a person.
fn unit_name(u: &PackedUnit) -> String {
    match u.count {
        1 => format!("data page {} of inode {}", u.base, u.ino),
        _ => format!("the cluster at page {} of inode {}", u.base, u.ino),
    }
}

/// A finding about unit `u`: its pages are lost (a repair makes them holes).
fn unit_finding(u: &PackedUnit, msg: String) -> Finding {
    Finding::new(Severity::Error, Kind::DataDamaged, msg)
        .ino(u.ino)
        .addr(u.entry.addr)
        .fix(Fix::DropPages {
            ino: u.ino,
            first: u.base,
            count: u.count.into(),
        })
}

/// Undoes unit `u` from its `stored` bytes and checks the pages its
/// pointers name: a finding if anything fails (one per unit: its pages
/// fail together).
fn verify_unit(chains: &ChainSet, u: &PackedUnit, stored: &[u8]) -> Option<Finding> {
    let what = || unit_name(u);
    let finding = |msg: String| unit_finding(u, msg);
    let pages = match chains.undo((u.vpn, &u.entry), stored, u.count.into(), &what) {
        Ok(p) => p,
        Err(e) => return Some(finding(e.to_string())),
    };
    let bad: Vec<String> = u
        .slots
        .iter()
        .filter(|&&(slot, crc)| {
            let at = usize::from(slot) * PAGE_SIZE;
            crc32(&pages[at..at + PAGE_SIZE]) != crc
        })
        .map(|&(slot, _)| (u.base + u64::from(slot)).to_string())
        .collect();
    (!bad.is_empty()).then(|| {
        finding(format!(
            "data pages {} fail their checksums once {} is undone",
            bad.join(", "),
            what()
        ))
    })
}
