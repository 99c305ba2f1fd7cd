//! --verify-data: every live data page read in address order, in large
//! reads, and checked against the checksum in its pointer; every
//! compressed cluster read, its chain undone, and each of its logical
//! pages checked the same way.

use super::finding::{Finding, Kind, Severity};
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
        if let Err(e) = dev.read(start, &mut buf) {
            findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::DataDamaged,
                    format!("cannot read: {e}"),
                )
                .addr(start),
            );
            i = j;
            continue;
        }
        read += buf.len() as u64;
        for &(addr, owner) in &pages[i..j] {
            let Use::Data(ino, idx, crc) = owner else {
                continue;
            };
            let at = (addr.0 - start.0) as usize * PAGE_SIZE;
            let found = crc32(&buf[at..at + PAGE_SIZE]);
            if found != crc {
                let msg = format!("data page {idx} fails its checksum (expected {crc:#010x}, found {found:#010x})");
                findings.push(
                    Finding::new(Severity::Error, Kind::DataDamaged, msg)
                        .ino(ino)
                        .addr(addr),
                );
            }
        }
        progress((j - i) as u64);
        i = j;
    }
    read
}

/// Reads every compressed cluster of `packed` (in address order), undoes
/// its chain with `chains` and checks the logical pages its pointers name;
/// returns bytes read.
pub fn verify_packed(
    dev: &dyn BlockDevice,
    chains: &ChainSet,
    packed: &[PackedUnit],
    findings: &mut Vec<Finding>,
    progress: &mut dyn FnMut(u64),
) -> u64 {
    let mut order: Vec<&PackedUnit> = packed.iter().collect();
    order.sort_unstable_by_key(|u| u.entry.addr);
    let mut read = 0;
    for u in order {
        let what = format!("the cluster at page {} of inode {}", u.base, u.ino);
        read += u64::from(u.entry.pages) * PAGE_SIZE as u64;
        progress(u64::from(u.entry.pages));
        let pages = match chains.read_unit(dev, (u.vpn, &u.entry), u.count.into(), &what) {
            Ok(p) => p,
            Err(e) => {
                findings.push(
                    Finding::new(Severity::Error, Kind::DataDamaged, format!("{e}"))
                        .ino(u.ino)
                        .addr(u.entry.addr),
                );
                continue;
            }
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
        if !bad.is_empty() {
            // One finding per cluster: its pages fail together.
            let msg = format!(
                "data pages {} fail their checksums once {what} is undone",
                bad.join(", ")
            );
            findings.push(
                Finding::new(Severity::Error, Kind::DataDamaged, msg)
                    .ino(u.ino)
                    .addr(u.entry.addr),
            );
        }
    }
    read
}
