//! The other roots: each read-write branch and each snapshot is checked as
//! the live root is (its node address table, its nodes, its namespace),
//! and its findings name it. The pages a root shares with the live root or
//! the past are counted already; those only a branch reaches are counted
//! here, so that none is taken for leaked. (Plain checkpoints are not
//! walked: there can be thousands, and what they hold is accounted by
//! their deadlists.)

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

/// Checks every branch and snapshot `scan` lists; returns the bytes read.
pub fn check(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    seed: u64,
    scan: &Scan,
    ledger: &mut Ledger<'_>,
    findings: &mut Vec<Finding>,
) -> u64 {
    let mut bytes = 0;
    for rec in scan.branches.iter().chain(&scan.snapshots) {
        let mut own = Vec::new();
        let mut branch = Scan {
            units: scan.units.clone(),
            quota_ino: scan.quota_ino,
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
        let root = match rec.is_branch() {
            true => format!("branch '{}'", rec.shown_name()),
            false => format!("snapshot '{}' (checkpoint {})", rec.shown_name(), rec.no),
        };
        findings.extend(own.into_iter().map(|mut f| {
            f.message = format!("{root}: {}", f.message);
            f
        }));
    }
    bytes
}
