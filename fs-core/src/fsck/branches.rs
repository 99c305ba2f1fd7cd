//! The read-write branches: each is checked as the live root is (its node
//! address table, its nodes, its namespace), and its findings name it. The
//! pages a branch shares with the live root or the past are counted
//! already; those only the branch reaches are counted here, so that none
//! is taken for leaked.

use super::finding::Finding;
use super::scan::{self, Scan};
use super::space::{self, Ledger, PageSink};
use super::summaries;
use super::tree::{self, Use};
use crate::device::BlockDevice;
use crate::ids::PageAddr;
use crate::layout::Geometry;

/// Counts the pages a branch reaches that nothing counted before.
struct Beside<'l, 'a> {
    ledger: &'l mut Ledger<'a>,
    branch: &'l Scan,
    geo: Geometry,
}

impl PageSink for Beside<'_, '_> {
    fn page(&mut self, addr: PageAddr, used: Use) {
        if matches!(used, Use::Checkpoint) || self.ledger.is_counted(addr) {
            return;
        }
        let digest = self
            .geo
            .segment_of(addr)
            .and_then(|_| summaries::expected(self.branch, self.geo.offset_in_segment(addr), used));
        self.ledger.count(addr, used, digest);
    }
}

/// Checks every branch `scan` lists; returns the bytes read.
pub fn check(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    seed: u64,
    scan: &Scan,
    ledger: &mut Ledger<'_>,
    findings: &mut Vec<Finding>,
) -> u64 {
    let mut bytes = 0;
    for rec in &scan.branches {
        let mut own = Vec::new();
        let mut branch = Scan {
            units: scan.units.clone(),
            ..Scan::default()
        };
        scan::node_table(dev, rec.nat_root, &mut branch, &mut own);
        scan::nodes(dev, geo, &mut branch, &mut own, &mut |_| {});
        let mut sink = Beside {
            ledger,
            branch: &branch,
            geo: *geo,
        };
        space::metadata_pages(&branch, PageAddr::NONE, &mut sink);
        tree::check(&branch, seed, &mut own, &mut sink);
        bytes += branch.bytes_read;
        let name = rec.shown_name();
        findings.extend(own.into_iter().map(|mut f| {
            f.message = format!("branch '{name}': {}", f.message);
            f
        }));
    }
    bytes
}
