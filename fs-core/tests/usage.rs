//! The usage ledger is exact: after any sequence of namespace, data,
//! attribute and ownership changes (writeback and cleaning included), what
//! it charged to each user, group and project is what a recount of the
//! tree says changed, and the quota file, before and after a remount,
//! records the recount. Quotas (docs/design-quota.md) are built on this.

use std::collections::BTreeMap;

use pagelog_core::fs::FsXattr;
use pagelog_core::usage::{QuotaId, Usage};
use pagelog_core::{Cred, Filesystem, MountOptions, SetAttr};
use proptest::prelude::*;

mod support;
use support::model::*;

#[derive(Clone, Debug)]
enum Step {
    Op(Op),
    Chown {
        node: u8,
        uid: Option<u8>,
        gid: Option<u8>,
    },
    /// `chattr -p` (and `+P` on directories) by root.
    Project {
        node: u8,
        id: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    // Operations that keep one root in place (no remount, rollback,
    // branches): the ledger belongs to the root it was opened with; and no
    // fsync or defragmentation, which fold the ledger into the quota file
    // as a commit does (the crash-state tests check usage against a
    // recount after them).
    let ops = op_strategy().prop_filter("one root", |o| {
        !matches!(
            o,
            Op::Remount
                | Op::Fsync { .. }
                | Op::Defrag { .. }
                | Op::CrashCut
                | Op::Snapshot { .. }
                | Op::DeleteSnapshot { .. }
                | Op::Clone { .. }
                | Op::InBranch { .. }
                | Op::DeleteBranch { .. }
                | Op::Rollback { .. }
        )
    });
    prop_oneof![
        8 => ops.prop_map(Step::Op),
        1 => (any::<u8>(), proptest::option::of(0u8..3), proptest::option::of(0u8..3))
            .prop_map(|(node, uid, gid)| Step::Chown { node, uid, gid }),
        1 => (any::<u8>(), 0u8..3).prop_map(|(node, id)| Step::Project { node, id }),
    ]
}

fn chown(fs: &mut Filesystem, model: &Model, node: u8, uid: Option<u8>, gid: Option<u8>) {
    let Some(n) = model.pick(node, |_| true) else {
        return;
    };
    let set = SetAttr {
        uid: uid.map(|u| 1000 + u32::from(u)),
        gid: gid.map(|g| 2000 + u32::from(g)),
        ..Default::default()
    };
    fs.setattr(&Cred::root(), model.inodes[&n].ino, &set)
        .expect("chown");
}

/// Puts a node in project `40 + id` (without handing it down, which
/// would make the model's renames across projects fail with EXDEV:
/// `quota_limits.rs` tests that).
fn set_project(fs: &mut Filesystem, model: &Model, node: u8, id: u8) {
    let Some(n) = model.pick(node, |_| true) else {
        return;
    };
    let x = FsXattr {
        xflags: 0,
        projid: 40 + u32::from(id),
    };
    fs.set_fsxattr(&Cred::root(), model.inodes[&n].ino, x)
        .expect("set project");
}

/// `after - before`, ids with no change left out.
fn difference(
    before: &BTreeMap<QuotaId, Usage>,
    after: &BTreeMap<QuotaId, Usage>,
) -> BTreeMap<QuotaId, Usage> {
    let mut out = BTreeMap::new();
    for id in before.keys().chain(after.keys()) {
        let (b, a) = (before.get(id).copied(), after.get(id).copied());
        let (b, a) = (b.unwrap_or_default(), a.unwrap_or_default());
        let d = Usage {
            pages: a.pages - b.pages,
            inodes: a.inodes - b.inodes,
        };
        if d != Usage::default() {
            out.insert(*id, d);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_matches_a_recount(steps in proptest::collection::vec(step(), 1..60)) {
        let dev = support::formatted(16384, 64);
        let opts = MountOptions {
            dirty_limit: 256 << 10,
            ..MountOptions::default()
        };
        let mut fs = Filesystem::mount(dev.clone(), opts).expect("mount");
        let mut model = Model::new();
        let before = fs.recount_usage().expect("recount");
        for s in &steps {
            match s {
                Step::Op(op) => apply_op(&mut fs, &mut model, op),
                Step::Chown { node, uid, gid } => chown(&mut fs, &model, *node, *uid, *gid),
                Step::Project { node, id } => set_project(&mut fs, &model, *node, *id),
            }
        }
        let after = fs.recount_usage().expect("recount");
        let charged: BTreeMap<QuotaId, Usage> = fs
            .usage_changes()
            .iter()
            .filter(|(_, u)| **u != Usage::default())
            .map(|(id, u)| (*id, *u))
            .collect();
        prop_assert_eq!(charged, difference(&before, &after));
        // What the quota file records, before and after a remount, is the
        // recount (ids at zero are left out of both).
        let nonzero = |m: BTreeMap<QuotaId, Usage>| -> BTreeMap<QuotaId, Usage> {
            m.into_iter().filter(|(_, u)| *u != Usage::default()).collect()
        };
        let recorded = fs.recorded_usage().expect("read").expect("quota");
        prop_assert_eq!(&recorded, &nonzero(after.clone()));
        fs.unmount().expect("unmount");
        let mut fs = Filesystem::mount(dev.clone(), MountOptions::default()).expect("mount");
        let recorded = fs.recorded_usage().expect("read").expect("quota");
        prop_assert_eq!(recorded, nonzero(fs.recount_usage().expect("recount")));
        fs.unmount().expect("unmount");
    }
}
