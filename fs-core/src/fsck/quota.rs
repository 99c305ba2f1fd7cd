//! The quota check: the usage the quota file records must be what the
//! tree holds, id by id. The file is read through a read-only mount of the
//! image (the same code a mount trusts), so a quota file a mount could not
//! read is a finding here too. The live root's tree is recounted from the
//! inodes the full check already read (when the mount rolls nothing
//! forward, so that both see the same state); branches and snapshots are
//! recounted through the mount.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::finding::{Finding, Fix, Kind, Severity};
use crate::checkpoints::At;
use crate::device::BlockDevice;
use crate::fs::{Filesystem, MountOptions};
use crate::quota_file::QUOTA_INO;
use crate::usage::{IdKind, QuotaId, Usage};

/// What the scan's live tree holds, by id: the inodes it read, less
/// pagelog's own (the graveyard and the quota file), as a mount's recount
/// counts them.
pub fn counted(scan: &super::scan::Scan) -> BTreeMap<QuotaId, Usage> {
    // By owner, group and project together first: a hash probe an inode
    // (most share one triple), then three ordered inserts a triple.
    let mut by_ids: rustc_hash::FxHashMap<(u32, u32, u32), Usage> = Default::default();
    for (ino, f) in super::tree::all_inodes(scan) {
        if ino == crate::ids::Ino::GRAVEYARD || Some(ino) == scan.quota_ino {
            continue;
        }
        let u = by_ids.entry(f.ids).or_default();
        u.pages += f.blocks as i64;
        u.inodes += 1;
    }
    let mut out: BTreeMap<QuotaId, Usage> = BTreeMap::new();
    for ((uid, gid, project), u) in by_ids {
        for id in QuotaId::ids(uid, gid, project) {
            let t = out.entry(id).or_default();
            t.pages += u.pages;
            t.inodes += u.inodes;
        }
    }
    out
}

/// Compares the recorded usage with a recount (of the live root: `live`
/// when the caller counted it already); each difference, or a quota file
/// that cannot be read, is a finding.
pub fn check(
    dev: Arc<dyn BlockDevice>,
    key: Option<&crate::seal::MasterKey>,
    live: Option<BTreeMap<QuotaId, Usage>>,
) -> Vec<Finding> {
    let opts = MountOptions {
        read_only: true,
        key: key.cloned(),
        // The recount reads each inode once, in order: the least cache
        // does, and keeps the check's memory what the scan needs.
        cache: crate::cache_sizes::MIN_CACHE,
        ..MountOptions::default()
    };
    let unreadable = |e: crate::Error| {
        vec![Finding::new(
            Severity::Error,
            Kind::QuotaWrong,
            format!("the quota file cannot be read: {e}"),
        )
        .ino(QUOTA_INO)]
    };
    let mut fs = match Filesystem::mount(dev, opts) {
        Ok(fs) => fs,
        Err(e) => return unreadable(e),
    };
    // Each branch is a root written as the live one is, with its own
    // file; each named snapshot keeps the file it had. (Plain retained
    // checkpoints are not recounted: there are hundreds an hour, and each
    // was the live root, checked as such, when it was taken.)
    let mut roots = vec![Root::Live];
    roots.extend(fs.branches().into_iter().map(|b| Root::Branch(b.name)));
    roots.extend(
        fs.checkpoints()
            .into_iter()
            .filter_map(|c| c.snapshot.map(Root::Snapshot)),
    );
    let mut findings = Vec::new();
    let mut live = live;
    for root in roots {
        let within = root.within();
        match check_root(&mut fs, root, &within, &mut live) {
            Ok(f) => findings.extend(f),
            Err(e) => findings.extend(unreadable(e).into_iter().map(|f| Finding {
                message: format!("{within}{}", f.message),
                ..f
            })),
        }
    }
    findings
}

/// The differences in `root`, read through a view of it (the live root
/// is the one the mount serves).
fn check_root(
    fs: &mut Filesystem,
    root: Root,
    within: &str,
    live: &mut Option<BTreeMap<QuotaId, Usage>>,
) -> crate::Result<Vec<Finding>> {
    // A snapshot is read-only: its file stays as it was taken.
    let (view, fix) = match root {
        Root::Live => {
            let fix = Some(Fix::Quota { branch: None });
            return differences(fs, within, live.take(), fix);
        }
        Root::Snapshot(name) => (fs.open_view(&At::Snapshot(name))?.0, None),
        Root::Branch(name) => {
            let fix = Fix::Quota {
                branch: Some(name.clone()),
            };
            (fs.open_branch(&name)?, Some(fix))
        }
    };
    let found = fs.in_view(view, |v| differences(v, within, None, fix));
    fs.close_view(view)?;
    found
}

/// A root with a quota file of its own.
enum Root {
    Live,
    Branch(Vec<u8>),
    Snapshot(Vec<u8>),
}

impl Root {
    /// How a finding in it begins.
    fn within(&self) -> String {
        match self {
            Root::Live => String::new(),
            Root::Branch(n) => format!("in branch '{}': ", String::from_utf8_lossy(n)),
            Root::Snapshot(n) => format!("in snapshot '{}': ", String::from_utf8_lossy(n)),
        }
    }
}

/// Each id whose usage the served root's quota file records otherwise
/// than a recount of its tree (`counted`, or one through the mount)
/// finds, as a finding (`within` says where, `fix` how a repair mends it).
fn differences(
    fs: &mut Filesystem,
    within: &str,
    counted: Option<BTreeMap<QuotaId, Usage>>,
    fix: Option<Fix>,
) -> crate::Result<Vec<Finding>> {
    let Some(recorded) = fs.recorded_usage()? else {
        return Ok(Vec::new());
    };
    let counted = match counted {
        Some(c) => c,
        None => fs.recount_usage()?,
    };
    let ids: BTreeSet<QuotaId> = recorded.keys().chain(counted.keys()).copied().collect();
    Ok(ids
        .into_iter()
        .filter_map(|id| {
            let r = recorded.get(&id).copied().unwrap_or_default();
            let c = counted.get(&id).copied().unwrap_or_default();
            (r != c).then(|| {
                let msg = format!(
                    "{within}{} {}: the quota file says {}, the tree holds {}",
                    kind_name(id.kind),
                    id.id,
                    show(r),
                    show(c)
                );
                Finding {
                    fix: fix.clone(),
                    ..Finding::new(Severity::Error, Kind::QuotaWrong, msg).ino(QUOTA_INO)
                }
            })
        })
        .collect())
}

fn kind_name(k: IdKind) -> &'static str {
    match k {
        IdKind::User => "user",
        IdKind::Group => "group",
        IdKind::Project => "project",
    }
}

fn show(u: Usage) -> String {
    format!("{} pages and {} inodes", u.pages, u.inodes)
}
