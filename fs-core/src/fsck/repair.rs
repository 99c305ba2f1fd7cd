//! Repair: the check's findings carry their fixes ([`Fix`]); a repair
//! mounts the image, carries them out ([`Filesystem::mend`]) and unmounts,
//! then checks again, pass after pass, until nothing it can mend is left
//! (as e2fsck restarts after a change that invalidates what it knew).
//!
//! Each pass is one mount and one unmount: its changes reach the device as
//! one commit, so a crash in a repair leaves the state before the pass or
//! after it, never half of it.
//!
//! The danger of writing to a damaged image is the segment usage: a
//! segment the table counts free while the tree still references pages in
//! it would be overwritten by the first commit. So a repair's mount does
//! not start from the table: it starts from the check's recount of every
//! page referenced ([`Rebase`]), taken before anything is written. A count
//! is lowered only when the image was cleanly unmounted and the check met
//! no damage it cannot mend (pages behind such damage may still be
//! referenced); otherwise a segment keeps the larger of the two counts, and
//! the space that leaks is recounted by a later pass or a later repair.

use std::sync::Arc;

use super::{check, Finding, Fix, Kind, Level, Phase, Report, Severity};
use crate::device::BlockDevice;
use crate::fs::{Filesystem, MountOptions};
use crate::ids::CheckpointNo;
use crate::recovery::{self, Rebase};

/// At most this many passes: each mends what the one before found; a
/// pass that changes nothing the check sees ends the repair.
const MAX_PASSES: usize = 6;

/// How far a repair may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything the check can mend (`-y`).
    All,
    /// Only what loses nothing: counts, leaks, space accounting, quota
    /// usage (`-p`, `-a`, as e2fsck's preen). What would drop bytes,
    /// names or permissions is left for `-y`.
    Preen,
}

/// One fix carried out, or tried.
#[derive(Clone, Debug)]
pub struct Action {
    /// The finding it mends.
    pub kind: Kind,
    /// The fix.
    pub fix: Fix,
    /// What was done, or why it could not be.
    pub outcome: Result<String, String>,
}

/// What a repair did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The first check's report.
    pub before: Report,
    /// The fixes, in the order carried out, over every pass.
    pub actions: Vec<Action>,
    /// The last check's report: what is left.
    pub after: Report,
    /// Passes that wrote to the device.
    pub passes: usize,
    /// Fixes a preen left for `-y`.
    pub left_for_yes: usize,
}

impl Outcome {
    /// Did the repair change the image?
    pub fn changed(&self) -> bool {
        self.passes > 0
    }
}

/// Checks `dev` to `level` (at least the full check: only it recounts)
/// and repairs what `mode` allows.
pub fn repair(
    dev: Arc<dyn BlockDevice>,
    key: Option<&crate::seal::MasterKey>,
    level: Level,
    mode: Mode,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Outcome {
    repair_from(dev, key, level, mode, None, progress)
}

/// [`repair`], starting from exactly checkpoint `to` of the log when one
/// is given (`--checkpoint N`), whatever the superblocks name. Without
/// it, a damaged checkpoint the superblocks name is fallen back past
/// ([`Fix::Rewind`]) by `-y`: to the newest other checkpoint in the log
/// whose state a check can read, and the fsyncs logged after it.
pub fn repair_from(
    dev: Arc<dyn BlockDevice>,
    key: Option<&crate::seal::MasterKey>,
    level: Level,
    mode: Mode,
    to: Option<CheckpointNo>,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> Outcome {
    let level = level.max(Level::Full);
    let (dev, mut out) = match to {
        Some(no) => exactly(dev, key, level, no, progress),
        None => fall_back(dev, key, level, mode, progress),
    };
    let rewound = out.actions.iter().any(|a| a.outcome.is_ok());
    if to.is_some() && !rewound {
        // The checkpoint asked for is not there: nothing else is done.
        return out;
    }
    let mut failed: Vec<Fix> = Vec::new();
    while out.passes < MAX_PASSES {
        let (mut fixes, left) = pick(&out.after, mode, &failed);
        out.left_for_yes = left;
        if fixes.is_empty() {
            if !rewound || out.passes > 0 {
                break;
            }
            // Nothing to mend in the state rewound to: a commit makes it
            // the device's.
            fixes.push((Kind::CheckpointDamaged, Fix::Commit));
        }
        // The check read the last checkpoint; a mount rolls fsyncs
        // forward past it. The fixes are found again on what the mount
        // serves once a first pass has only recovered and committed.
        // Damaged table pages are built again by the mount itself, which
        // cannot go far without them.
        let recovered = out.after.cleanly_unmounted == Some(true);
        let fixes = match recovered {
            true => fixes,
            false => fixes
                .into_iter()
                .filter(|(_, f)| f.by_the_mount())
                .collect(),
        };
        let Some(rebase) = rebase(&out.after, &fixes) else {
            break;
        };
        match pass(&dev, key, rebase, &fixes) {
            Ok(actions) => {
                out.actions.extend(actions);
                // What failed before may go now that the rest is mended.
                failed.clear();
            }
            Err(Stop::Fix(action)) => {
                // Only the mount's own commit reached the device: check
                // again (the next mount starts from what is there now) and
                // try again without the fix that failed.
                failed.push(action.fix.clone());
                out.actions.push(action);
            }
            Err(Stop::Mount(e)) => {
                out.actions.push(Action {
                    kind: Kind::CheckpointDamaged,
                    fix: Fix::Commit,
                    outcome: Err(format!("the repair cannot mount the image: {e}")),
                });
                break;
            }
        }
        out.passes += 1;
        let again = check(dev.clone(), key, level, progress);
        let same = same_findings(&again, &out.after);
        out.after = again;
        if same {
            break;
        }
    }
    // What a preen leaves, as the last check found it.
    out.left_for_yes = pick(&out.after, mode, &failed).1;
    out
}

/// Rewinds to exactly checkpoint `no`: the outcome so far (its first
/// check is of the state rewound to), and the device to repair.
fn exactly(
    dev: Arc<dyn BlockDevice>,
    key: Option<&crate::seal::MasterKey>,
    level: Level,
    no: CheckpointNo,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> (Arc<dyn BlockDevice>, Outcome) {
    let (dev, outcome): (Arc<dyn BlockDevice>, _) =
        match crate::rewind::rewind(dev.clone(), key, no, true) {
            Ok(r) => (r.device.clone(), Ok(r.describe())),
            Err(e) => (dev, Err(e.to_string())),
        };
    let before = check(dev.clone(), key, level, progress);
    let action = rewind_action(Fix::Rewind { to: no }, outcome);
    (dev, started(before, vec![action]))
}

/// Checks `dev`; if the checkpoint the superblocks name is damaged and
/// `mode` allows, rewinds to the newest other checkpoint in the log whose
/// check is not fatal (of the few newest).
fn fall_back(
    dev: Arc<dyn BlockDevice>,
    key: Option<&crate::seal::MasterKey>,
    level: Level,
    mode: Mode,
    progress: &mut dyn FnMut(Phase, u64, u64),
) -> (Arc<dyn BlockDevice>, Outcome) {
    let before = check(dev.clone(), key, level, progress);
    let damaged = before
        .findings
        .iter()
        .any(|f| f.severity == Severity::Fatal && matches!(f.fix, Some(Fix::Rewind { .. })));
    if !damaged || mode != Mode::All {
        return (dev, started(before, Vec::new()));
    }
    let log = crate::rewind::LogCheckpoints::read(&*dev, key);
    let older = log.as_ref().map(|l| l.fallbacks()).unwrap_or_default();
    let mut tried = Vec::new();
    // The newest whose check finds nothing wrong; else the newest that
    // the check can read at all.
    let mut readable: Option<(Arc<dyn BlockDevice>, Report)> = None;
    for found in older.iter().take(3) {
        let no = found.checkpoint.no;
        let fix = Fix::Rewind { to: no };
        let Ok(log) = &log else { break };
        let r = log.rewind_to(dev.clone(), found, false);
        let rewound: Arc<dyn BlockDevice> = r.device.clone();
        let after = check(rewound.clone(), key, level, progress);
        if after.worst() == Some(Severity::Fatal) {
            let why = after
                .findings
                .iter()
                .find(|f| f.severity == Severity::Fatal);
            let why = why.map_or_else(String::new, |f| f.message.clone());
            tried.push(rewind_action(fix, Err(format!("checkpoint {no}: {why}"))));
            continue;
        }
        let clean = after.problems() == 0;
        tried.push(rewind_action(fix, Ok(r.describe())));
        if clean {
            // Only the one used is said to be done.
            let keep = tried.len() - 1;
            for (i, a) in tried.iter_mut().enumerate() {
                if i != keep && a.outcome.is_ok() {
                    a.outcome = Err("its state has problems; an older one without was used".into());
                }
            }
            let mut out = started(before, tried);
            out.after = after;
            return (rewound, out);
        }
        if readable.is_none() {
            readable = Some((rewound, after));
        } else if let Some(a) = tried.last_mut() {
            a.outcome = Err(format!("checkpoint {no}: not used, a newer one reads"));
        }
    }
    match readable {
        Some((rewound, after)) => {
            let mut out = started(before, tried);
            out.after = after;
            (rewound, out)
        }
        None => (dev, started(before, tried)),
    }
}

fn rewind_action(fix: Fix, outcome: Result<String, String>) -> Action {
    Action {
        kind: Kind::CheckpointDamaged,
        fix,
        outcome,
    }
}

/// An outcome whose first check found `before`, after `actions`.
fn started(before: Report, actions: Vec<Action>) -> Outcome {
    Outcome {
        after: before.clone(),
        before,
        actions,
        ..Outcome::default()
    }
}

/// The fixes to carry out for `report` (findings of a warning or worse;
/// a mount mends what is only information), in the order they go, and how
/// many a preen leaves for `-y`.
fn pick(report: &Report, mode: Mode, failed: &[Fix]) -> (Vec<(Kind, Fix)>, usize) {
    if report.worst() == Some(Severity::Fatal) || report.recount.is_none() {
        return (Vec::new(), 0);
    }
    // Beside damage a preen leaves, what looks leaked may be what the
    // damage hides (a damaged node's pages): a preen frees nothing then.
    let damaged = report
        .findings
        .iter()
        .any(|f| f.severity >= Severity::Error && f.fix.as_ref().is_none_or(Fix::loses_anything));
    let frees = |fix: &Fix| {
        matches!(
            fix,
            Fix::FreeNode { .. } | Fix::FreeUnit { .. } | Fix::DropXattrNode { .. }
        )
    };
    let loses = |fix: &Fix| fix.loses_anything() || (damaged && frees(fix));
    // A damaged node or page address table page hides what its entries
    // named: counts, names, leaks and losses found beside it are unsure.
    // A pass that finds one only builds damaged pages again (and raises
    // counts, and commits); the next pass's check sees behind them. Damage
    // to what the retained checkpoints hold (a deadlist, the checkpoint
    // list) hides the units they hold: they look leaked, so nothing is
    // freed beside it.
    let allowed = |fix: &Fix| {
        let safe = fix.by_the_mount() || matches!(fix, Fix::Recount | Fix::Commit);
        (!report.tree_hidden || safe) && !(report.past_hidden && frees(fix))
    };
    let mut left = 0;
    let mut fixes: Vec<(Kind, Fix)> = Vec::new();
    for f in &report.findings {
        let Some(fix) = &f.fix else { continue };
        if f.severity < Severity::Warning || failed.contains(fix) {
            continue;
        }
        if fixes.iter().any(|(_, x)| x == fix) || !allowed(fix) {
            continue;
        }
        if mode == Mode::Preen && loses(fix) {
            left += 1;
        }
        fixes.push((f.kind, fix.clone()));
    }
    if mode == Mode::Preen {
        fixes.retain(|(_, fix)| !loses(fix));
    }
    fixes.sort_by_key(|(_, fix)| order(fix));
    (fixes, left)
}

/// Counts are set before names change (a count computed by the check
/// would undo what a reconnection adds), data goes before the quota
/// recount, which counts what the others left.
fn order(fix: &Fix) -> u8 {
    match fix {
        // With the counts, before anything that may take ids.
        Fix::FreeList { .. } => 0,
        Fix::Links { .. } | Fix::Blocks { .. } | Fix::Parent { .. } | Fix::QuotaInode { .. } => 0,
        Fix::ForgetNode { .. } => 1,
        Fix::RemoveEntry { .. }
        | Fix::Reconnect { .. }
        | Fix::Detach { .. }
        | Fix::RebuildDir { .. } => 1,
        Fix::FreeNode { .. }
        | Fix::FreeDamaged { .. }
        | Fix::DropXattrNode { .. }
        | Fix::RemoveXattr { .. }
        | Fix::FreeUnit { .. } => 2,
        Fix::DropPages { .. } | Fix::Unshare { .. } => 3,
        Fix::Relog { .. } | Fix::RelogNode { .. } | Fix::Prune { .. } | Fix::PruneBack { .. } => 3,
        Fix::Reshape { .. } | Fix::DeadlistCount { .. } | Fix::CloneNode { .. } => 3,
        Fix::RelogTables => 3,
        // Before anything reads the unit.
        Fix::ReshapeUnit { .. } => 0,
        Fix::Quota { .. } => 4,
        Fix::Recount | Fix::Commit | Fix::Rewind { .. } => 5,
        // Done by the mount, before everything else.
        Fix::RebuildUsage { .. }
        | Fix::RebuildNodeTable { .. }
        | Fix::RebuildUnitTable { .. }
        | Fix::RebuildInterior { .. } => 0,
    }
}

/// The recount a pass's mount starts from, with the table pages `fixes`
/// build again: lowered counts only when nothing hides pages (see the
/// module; a damaged node or page address table page hides what its
/// entries named).
fn rebase(report: &Report, fixes: &[(Kind, Fix)]) -> Option<Rebase> {
    let mut r = report.recount.clone()?;
    let unmendable = |f: &Finding| f.severity >= Severity::Error && f.fix.is_none();
    r.lower = report.cleanly_unmounted == Some(true)
        && !report.tree_hidden
        && !report.past_hidden
        && !report.findings.iter().any(unmendable);
    for (_, fix) in fixes {
        match fix {
            Fix::RebuildUsage { index } => r.usage_pages.push(*index),
            Fix::RebuildUnitTable { index, units } => r.unit_pages.push((*index, units.clone())),
            Fix::RebuildInterior {
                table,
                level,
                index,
                children,
            } => r
                .interior_pages
                .push((*table, *level, *index, children.clone())),
            Fix::RebuildNodeTable { index, nodes } => {
                let entries = nodes
                    .iter()
                    .map(|&(nid, vpn, crc)| (nid, crate::node_table::NatEntry { vpn, crc }))
                    .collect();
                r.node_pages.push((*index, entries));
            }
            _ => {}
        }
    }
    Some(r)
}

/// Why a pass stopped without committing.
enum Stop {
    /// A fix failed (the action says how).
    Fix(Action),
    /// The image did not mount.
    Mount(crate::Error),
}

/// One pass: mount from `rebase`, carry out `fixes`, unmount.
fn pass(
    dev: &Arc<dyn BlockDevice>,
    key: Option<&crate::seal::MasterKey>,
    rebase: Rebase,
    fixes: &[(Kind, Fix)],
) -> Result<Vec<Action>, Stop> {
    let mut rec = recovery::recover(&**dev, true, key).map_err(Stop::Mount)?;
    let lowered = rebase.lower;
    rec.rebase = Some(rebase);
    let opts = MountOptions {
        key: key.cloned(),
        ..MountOptions::default()
    };
    let mut fs = Filesystem::mount_recovered(dev.clone(), opts, rec).map_err(Stop::Mount)?;
    if fixes.is_empty() {
        // A recovery pass: the mount rolled forward and committed.
        fs.unmount().map_err(Stop::Mount)?;
        return Ok(vec![Action {
            kind: Kind::NotClean,
            fix: Fix::Commit,
            outcome: Ok("the log after the last checkpoint recovered and committed".into()),
        }]);
    }
    let mut actions = Vec::with_capacity(fixes.len());
    for (kind, fix) in fixes {
        let outcome = match fix {
            // The mount took the recount; only raised counts when damage
            // left hides pages (a later pass lowers them).
            Fix::Recount if !lowered => Ok("segment usage raised where it counted too few \
                 pages; counted too many stays until the damage left is mended"
                .into()),
            Fix::RebuildUsage { index } => Ok(format!(
                "segment usage table page {index} built again from the recount"
            )),
            Fix::RebuildNodeTable { index, nodes } => Ok(format!(
                "node address table page {index} built again: {} nodes found (in units \
                 nothing else reached, and through retained checkpoints' own pages), the \
                 other ids free",
                nodes.len()
            )),
            Fix::RebuildInterior {
                table,
                level,
                index,
                children,
            } => Ok(format!(
                "{} page (level {level}, index {index}) built again: {} pages below it found \
                 in the log",
                super::scan::table_name(*table),
                children.len()
            )),
            Fix::RebuildUnitTable { index, units } => Ok(format!(
                "page address table page {index} built again from the record summaries: \
                 {} units found, the other numbers free",
                units.len()
            )),
            _ => fs.mend(fix).map_err(|e| e.to_string()),
        };
        let action = Action {
            kind: *kind,
            fix: fix.clone(),
            outcome,
        };
        if action.outcome.is_err() {
            // Dropped, not unmounted: what the fixes before it changed
            // in memory is not committed.
            drop(fs);
            return Err(Stop::Fix(action));
        }
        actions.push(action);
    }
    fs.unmount().map_err(Stop::Mount)?;
    Ok(actions)
}

/// Do two reports hold the same findings (kinds, places, messages)?
fn same_findings(a: &Report, b: &Report) -> bool {
    let key = |f: &Finding| {
        (
            f.kind as u8,
            f.ino,
            f.nid,
            f.addr,
            f.segment,
            f.message.clone(),
        )
    };
    let mut x: Vec<_> = a.findings.iter().map(key).collect();
    let mut y: Vec<_> = b.findings.iter().map(key).collect();
    x.sort();
    y.sort();
    x == y
}
