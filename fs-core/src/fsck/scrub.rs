//! --verify-data: every live data page read in address order, in large
//! reads, and checked against the checksum in its pointer.

use super::finding::{Finding, Kind, Severity};
use super::tree::Use;
use crate::codec::crc32;
use crate::device::BlockDevice;
use crate::ids::PageAddr;
use crate::layout::{Geometry, PAGE_SIZE};

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
