//! The quota check: the usage the quota file records must be what the
//! tree holds, id by id. The file is read, and the tree recounted, through
//! a read-only mount of the image (the same code a mount trusts), so a
//! quota file a mount could not read is a finding here too.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::finding::{Finding, Kind, Severity};
use crate::device::BlockDevice;
use crate::fs::{Filesystem, MountOptions};
use crate::quota_file::QUOTA_INO;
use crate::usage::{IdKind, QuotaId, Usage};

/// Compares the recorded usage with a recount; each difference, or a
/// quota file that cannot be read, is a finding.
pub fn check(dev: Arc<dyn BlockDevice>, key: Option<&crate::seal::MasterKey>) -> Vec<Finding> {
    let opts = MountOptions {
        read_only: true,
        key: key.cloned(),
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
    let (recorded, counted) = match (fs.recorded_usage(), fs.recount_usage()) {
        (Ok(Some(r)), Ok(c)) => (r, c),
        (Ok(None), _) => return Vec::new(),
        (Err(e), _) | (_, Err(e)) => return unreadable(e),
    };
    let ids: BTreeSet<QuotaId> = recorded.keys().chain(counted.keys()).copied().collect();
    ids.into_iter()
        .filter_map(|id| {
            let r = recorded.get(&id).copied().unwrap_or_default();
            let c = counted.get(&id).copied().unwrap_or_default();
            (r != c).then(|| {
                let msg = format!(
                    "{} {}: the quota file says {}, the tree holds {}",
                    kind_name(id.kind),
                    id.id,
                    show(r),
                    show(c)
                );
                Finding::new(Severity::Error, Kind::QuotaWrong, msg).ino(QUOTA_INO)
            })
        })
        .collect()
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
