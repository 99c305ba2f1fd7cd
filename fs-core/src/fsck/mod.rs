//! The checker, as a library: typed findings about an image, at three
//! depths. `--fast` reads the superblocks, the newest checkpoint and the
//! log after it; the full check reads every table page and every node and
//! checks every reference and count; `--verify-data` also reads every
//! live data page. The check never writes; [`repair`] carries out the
//! fixes the findings carry, through a mount.

mod branches;
mod facts;
pub mod finding;
pub mod frag;
mod quota;
mod rebuild;
pub mod repair;
mod scan;
mod scrub;
mod space;
mod summaries;
mod tree;

use std::sync::Arc;

pub use finding::{Finding, Fix, Kind, Numbers, Severity};

use crate::device::BlockDevice;
use crate::error::Error;
use crate::ids::{CheckpointNo, PageAddr, SegmentNo};
use crate::layout::Geometry;
use crate::meta_table::{MetaTable, TableId};
use crate::recovery::{self, read_superblocks};
use crate::superblock::State;
use crate::transform::{ChainSet, Registry};

/// How deep to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Superblocks, the newest checkpoint, the log after it, table roots.
    Fast,
    /// Everything but file data.
    Full,
    /// Everything, including every live data page.
    VerifyData,
}

/// Where a check is, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Superblocks, checkpoint and log.
    Log,
    /// Metadata tables.
    Tables,
    /// Nodes (done, total).
    Nodes,
    /// References and the namespace.
    Tree,
    /// Space accounting.
    Space,
    /// Record summaries against the tables.
    Summaries,
    /// Data pages (done, total).
    Data,
}

/// Counts of what was checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inodes.
    pub inodes: u64,
    /// Directories.
    pub directories: u64,
    /// Nodes read.
    pub nodes: u64,
    /// Live data pages.
    pub data_pages: u64,
    /// Log records walked after the superblock's checkpoint.
    pub records_walked: u64,
    /// Bytes read from the device.
    pub bytes_read: u64,
}

/// The result of a check.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// What was found.
    pub findings: Vec<Finding>,
    /// What was checked.
    pub stats: Stats,
    /// The checkpoint checked (the one a mount would use); none when the
    /// check could not get that far.
    pub checkpoint: Option<CheckpointNo>,
    /// Was the filesystem cleanly unmounted (and nothing logged since)?
    /// None when no superblock could be read. This says nothing about
    /// what the check found: see [`Report::problems`].
    pub cleanly_unmounted: Option<bool>,
    /// What the full check counted from the tree (pages referenced per
    /// segment, inodes, reserved pages), for a repair to rebuild the
    /// space accounting from; none after `--fast`.
    pub recount: Option<recovery::Rebase>,
    /// A damaged page of the node or page address table hid part of the
    /// tree from the check: what it found lost, leaked or miscounted may
    /// be behind it.
    pub tree_hidden: bool,
    /// Damage to what the retained checkpoints hold (a deadlist, the
    /// checkpoint list) hid units they hold: those look leaked.
    pub past_hidden: bool,
}

impl Report {
    /// The worst severity found.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Findings of severity Error or worse.
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity >= Severity::Error)
            .count()
    }
}

/// Checks the filesystem on `dev` to `level`, reporting progress as
/// (phase, done, total).
pub fn check(
    dev: Arc<dyn BlockDevice>,
    key: Option<&crate::seal::MasterKey>,
    level: Level,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Report {
    let mut report = Report::default();
    let dev_arc = dev.clone();
    let dev: &dyn BlockDevice = &*dev;
    progress(Phase::Log, 0, 1);
    let rec = match read_superblocks(dev).and_then(|(good, bad)| {
        for b in bad.into_iter().filter(|_| !good.is_empty()) {
            let f = Finding::new(
                Severity::Warning,
                Kind::SuperblockCopyDamaged,
                format!("superblock {b}"),
            )
            .fix(Fix::Commit);
            report.findings.push(f);
        }
        recovery::recover(dev, false, key)
    }) {
        Ok(r) => r,
        Err(e) => {
            report.findings.push(fatal(dev, key, &e));
            return report;
        }
    };
    report.checkpoint = Some(rec.checkpoint.no);
    report.cleanly_unmounted = Some(rec.sb.state == State::Clean && rec.records_walked == 0);
    report.stats.records_walked = rec.records_walked;
    report.stats.bytes_read = (rec.pages_walked + 3) * crate::layout::PAGE_SIZE as u64;
    for r in &rec.rejected {
        report.findings.push(
            Finding::new(Severity::Error, Kind::CheckpointDamaged, r.clone()).fix(Fix::Commit),
        );
    }
    if rec.sb.state != State::Clean {
        let mut msg = format!(
            "not cleanly unmounted; a mount recovers checkpoint {} after {} log records",
            rec.checkpoint.no, rec.records_walked
        );
        if !rec.roll_forward.is_empty() {
            // What this check reads is that checkpoint; the mount applies
            // the fsyncs after it (a state that is checked once committed).
            msg += &format!(
                " and rolls forward {} fsync records after it",
                rec.roll_forward.sets.len()
            );
        }
        report
            .findings
            .push(Finding::new(Severity::Info, Kind::NotClean, msg).fix(Fix::Commit));
    }
    let cp = rec.checkpoint.clone();
    let geo = rec.sb.geometry;
    if level == Level::Fast {
        let pat_state = crate::id_table::IdState {
            root: cp.pat_root,
            free_head: cp.pat_free_head.0,
            watermark: cp.pat_watermark.0,
        };
        let sealer = rec.sealer.clone();
        let pat = crate::page_table::PageTable::open_sealed(pat_state, &geo, 4, sealer.clone());
        let sealed = sealer.is_some();
        let tables = [
            MetaTable::new(TableId::PageAddress, cp.pat_root, 4, sealer.clone()),
            MetaTable::new(TableId::SegmentUsage, cp.sut_root, 4, sealer),
            MetaTable::new_virtual(TableId::NodeAddress, cp.nat_root, 4, pat, sealed),
        ];
        for mut table in tables {
            if let Err(e) = table.get(dev, 0) {
                let msg = format!("{} root: {e}", scan::table_name(table.id()));
                let f = Finding::new(Severity::Error, Kind::TableDamaged, msg);
                report.findings.push(match table.is_virtual() {
                    true => f,
                    false => f.addr(table.root().addr),
                });
            }
        }
        progress(Phase::Log, 1, 1);
        return report;
    }
    progress(Phase::Tables, 0, 1);
    let mut scan = scan::tables(dev, &cp, rec.sealer.as_ref(), &mut report.findings);
    report.tree_hidden = !scan.lost_nids.is_empty() || !scan.lost_units.is_empty();
    report.past_hidden = scan.past_hidden;
    let log = (&geo, rec.sb.hash_seed);
    rebuild::lost_units(dev, log, &cp, &scan, &mut report.findings);
    rebuild::lost_interiors(dev, log, &cp, &scan, &mut report.findings);
    let keeps_quota = rec.sb.ro_compat & crate::superblock::features::RO_COMPAT_QUOTA != 0;
    scan.quota_ino = keeps_quota.then_some(crate::quota_file::QUOTA_INO);
    unknown_chains(&scan, rec.sb.chains.chains.len(), &mut report.findings);
    let live: Vec<SegmentNo> = scan
        .usage
        .iter()
        .filter(|(s, u)| u.live > 0 && s.0 < geo.segment_count)
        .map(|(s, _)| *s)
        .collect();
    let segs = summaries::Segments {
        geo,
        fs_id: rec.sb.hash_seed,
        sealer: rec.sealer.clone(),
    };
    let seed = rec.sb.hash_seed;
    let (tree, chains, suspects, twice) = std::thread::scope(|scope| {
        // The summary chains are read while the nodes are read and the
        // tree and space checks compute: only the final comparison needs
        // them. (Their reads are single pages, in chains of dependent
        // reads: started last, they would be the tail of the check.)
        let chains = scope.spawn(|| summaries::read_chains(dev, &segs, &live));
        let total_nodes = scan.nat.len() as u64;
        progress(Phase::Nodes, 0, total_nodes);
        let mut done = 0;
        scan::nodes(dev, &geo, &mut scan, &mut report.findings, &mut |n| {
            done += n;
            progress(Phase::Nodes, done, total_nodes);
        });
        progress(Phase::Tree, 0, 1);
        let mut ledger = space::Ledger::new(&scan, geo);
        let tree = tree::check(&scan, seed, &mut report.findings, &mut ledger);
        report.stats.data_pages = tree.data_pages;
        progress(Phase::Space, 0, 1);
        space::metadata_pages(&scan, rec.checkpoint_addr, &mut ledger);
        report.stats.bytes_read +=
            branches::check(dev, &geo, seed, &scan, &mut ledger, &mut report.findings);
        report.findings.extend(ledger.take_findings());
        let found = rebuild::lost_nodes(dev, &scan, &ledger, &mut report.findings);
        space::leaked_units(&scan, &ledger, &found, &mut report.findings);
        space::check(&scan, &ledger, &tree, &cp, &mut report.findings);
        report.recount = Some(space::recount(&ledger, &tree));
        progress(Phase::Summaries, 0, 1);
        let mut chains = chains.join().unwrap_or_default();
        let (suspects, read) =
            summaries::compare(dev, &segs, &ledger, &mut chains, &mut report.findings);
        report.stats.bytes_read += read;
        (tree, chains, suspects, ledger.twice().to_vec())
    });
    // Where the ledger disagrees, or to scrub, walk again and list pages.
    let pages =
        (level == Level::VerifyData || !suspects.is_empty() || !twice.is_empty()).then(|| {
            collect(
                &scan,
                seed,
                &geo,
                rec.checkpoint_addr,
                level,
                &suspects,
                &twice,
            )
        });
    if let Some(pages) = &pages {
        let findings = &mut report.findings;
        name_wrong_pages(dev, &segs, &scan, pages, &suspects, &chains, findings);
    }
    if tree.orphans > 0 {
        let msg = format!(
            "{} unlinked inodes wait in the graveyard; the next read-write mount frees them",
            tree.orphans
        );
        report
            .findings
            .push(Finding::new(Severity::Info, Kind::OrphansPending, msg).fix(Fix::Commit));
    }
    report.stats.inodes = tree.inodes;
    report.stats.directories = tree.directories;
    report.stats.nodes = scan.nodes.len() as u64;
    report.stats.bytes_read += scan.bytes_read;
    if let (Level::VerifyData, Some(pages)) = (level, &pages) {
        let total = report.stats.data_pages;
        let mut done = 0;
        report.stats.bytes_read +=
            scrub::verify(dev, &geo, pages, &mut report.findings, &mut |n| {
                done += n;
                progress(Phase::Data, done, total);
            });
        match ChainSet::build(&rec.sb.chains, &Registry::global(), rec.sealer.clone()) {
            Ok(chains) => {
                report.stats.bytes_read += scrub::verify_packed(
                    dev,
                    &chains,
                    &tree.packed,
                    &mut report.findings,
                    &mut |n| {
                        done += n;
                        progress(Phase::Data, done, total);
                    },
                )
            }
            Err(e) if !tree.packed.is_empty() => report.findings.push(Finding::new(
                Severity::Warning,
                Kind::DataDamaged,
                format!("compressed clusters left unverified: {e}"),
            )),
            Err(_) => {}
        }
    }
    if keeps_quota && level != Level::Fast {
        // The recorded usage is read through a mount: what the scan holds
        // goes first, so that the two never add up in memory. The live
        // tree is counted from the scan's inodes, unless the mount rolls
        // fsyncs forward past the checkpoint the scan read, or the scan
        // met damage (packs it could not read are missing from its count,
        // where a mount's recount fails or reads them: the quota file is
        // then not what is wrong).
        let damaged = report
            .findings
            .iter()
            .any(|f| f.severity >= Severity::Error);
        let live = (rec.roll_forward.is_empty() && !damaged).then(|| quota::counted(&scan));
        drop((scan, pages, tree, chains));
        report.findings.extend(quota::check(dev_arc, key, live));
    }
    report
}

/// Units that record a chain the superblock's table does not number: no
/// reader can undo them.
fn unknown_chains(scan: &scan::Scan, chains: usize, findings: &mut Vec<Finding>) {
    let mut bad: Vec<_> = scan
        .units
        .shaped_units()
        .filter(|(_, e)| usize::from(e.transform.0) > chains)
        .collect();
    bad.sort_unstable_by_key(|(v, _)| *v);
    for (vpn, e) in bad {
        let msg = format!(
            "unit {vpn} records chain {}, which the superblock's table does not number ({chains} chains)",
            e.transform.0
        );
        findings.push(Finding::new(Severity::Error, Kind::UnitMisshapen, msg).addr(e.addr));
    }
}

/// The finding for what stopped the check before it started. A damaged
/// checkpoint names the older ones the log holds and the one a repair
/// falls back to.
fn fatal(dev: &dyn BlockDevice, key: Option<&crate::seal::MasterKey>, e: &Error) -> Finding {
    let kind = fatal_kind(e);
    let mut f = Finding::new(Severity::Fatal, kind, e.to_string());
    if kind != Kind::CheckpointDamaged {
        return f;
    }
    let older = crate::rewind::fallbacks(dev, key).unwrap_or_default();
    let Some(newest) = older.first() else {
        f.message += "; the log holds no other checkpoint to fall back to";
        return f;
    };
    let listed: Vec<String> = older
        .iter()
        .take(5)
        .map(|o| {
            let cp = &o.checkpoint;
            format!("{} ({})", cp.no, crate::when::readable(cp.time_ns))
        })
        .collect();
    f.message += &format!(
        "; the log holds other checkpoints: {}{}; a repair (-y) starts from checkpoint {} and \
         loses what was committed after it (--checkpoint N chooses another)",
        listed.join(", "),
        if older.len() > 5 { ", ..." } else { "" },
        newest.checkpoint.no
    );
    f.fix(Fix::Rewind {
        to: newest.checkpoint.no,
    })
}

/// The kind of a finding that stops the check before it starts.
fn fatal_kind(e: &Error) -> Kind {
    match e {
        Error::NotPagelog(_) => Kind::NotPagelog,
        Error::Corrupt { what, .. } if what == "superblock" => Kind::NoSuperblock,
        Error::Unsupported(_) | Error::BadGeometry(_) => Kind::NoSuperblock,
        _ => Kind::CheckpointDamaged,
    }
}

/// Names the owners of every page used twice, and each page of a suspect
/// segment (one whose summaries do not add up) that its summary describes
/// wrong, from the pages collected (in address order).
fn name_wrong_pages(
    dev: &dyn BlockDevice,
    segs: &summaries::Segments,
    scan: &scan::Scan,
    pages: &[(PageAddr, tree::Use)],
    suspects: &[SegmentNo],
    chains: &[(SegmentNo, summaries::Chain)],
    findings: &mut Vec<Finding>,
) {
    space::twice(&segs.geo, pages, findings);
    let in_suspects: Vec<(PageAddr, tree::Use)> = pages
        .iter()
        .copied()
        .filter(|(a, _)| {
            segs.geo
                .segment_of(*a)
                .is_some_and(|s| suspects.binary_search(&s).is_ok())
        })
        .collect();
    summaries::detail(dev, segs, scan, &in_suspects, chains, findings);
}

/// Every page the walks reference that a scrub needs (all of them) or that
/// a finding must name (those of `suspects`, and pages used `twice`), in
/// address order.
fn collect(
    scan: &scan::Scan,
    seed: u64,
    geo: &Geometry,
    cp_addr: PageAddr,
    level: Level,
    suspects: &[SegmentNo],
    twice: &[PageAddr],
) -> Vec<(PageAddr, tree::Use)> {
    let twice: rustc_hash::FxHashSet<PageAddr> = twice.iter().copied().collect();
    let want = |a: PageAddr| {
        level == Level::VerifyData
            || twice.contains(&a)
            || geo
                .segment_of(a)
                .is_some_and(|s| suspects.binary_search(&s).is_ok())
    };
    let mut sink = space::Collect {
        want,
        pages: Vec::new(),
    };
    tree::pages(scan, seed, &mut sink);
    space::metadata_pages(scan, cp_addr, &mut sink);
    let mut pages = sink.pages;
    pages.sort_by_key(|(a, _)| *a);
    pages
}
