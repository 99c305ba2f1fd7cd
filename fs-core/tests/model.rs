//! Model-based test: random sequences of namespace, data and attribute
//! operations run against the real filesystem (on a memory device) and an
//! in-memory reference model; every result must agree, the whole tree must
//! match after every commit and remount, and an image cut at any point
//! (as a crash would leave it) must mount and show the last committed state.

use std::collections::BTreeMap;
use std::sync::Arc;

use pagelog_core::checkpoints::At;
use pagelog_core::fs::JournalMode;
use pagelog_core::{format, BlockDevice, Error, Filesystem, MemDevice, MountOptions};
use proptest::prelude::*;

mod support;
use support::model::*;

struct Harness {
    dev: Arc<MemDevice>,
    fs: Option<Filesystem>,
    model: Model,
    committed: Model,
    /// Each snapshot that exists, with the model at its point.
    snapshots: BTreeMap<Vec<u8>, Model>,
    /// The branches.
    branches: Branches,
    /// The branches as of the last commit.
    committed_branches: Branches,
    /// The master key, when the filesystem is sealed.
    key: Option<pagelog_core::seal::MasterKey>,
}

fn mount_opts(key: &Option<pagelog_core::seal::MasterKey>) -> MountOptions {
    MountOptions {
        dirty_limit: 256 << 10,
        log_limit: 1 << 20,
        key: key.clone(),
        ..MountOptions::default()
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::storing("none")
    }

    /// A harness whose filesystem stores new data as `spec` says (a
    /// chain, `+sealed` to seal it).
    fn storing(spec: &str) -> Harness {
        let dev = Arc::new(MemDevice::new(8192));
        let (fopts, key) = support::storing(spec, 64);
        format(dev.clone(), &fopts).expect("format");
        let fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, mount_opts(&key))
            .expect("mount");
        Harness {
            dev,
            fs: Some(fs),
            model: Model::new(),
            committed: Model::new(),
            snapshots: BTreeMap::new(),
            branches: Branches::default(),
            committed_branches: Branches::default(),
            key,
        }
    }

    fn opts(&self) -> MountOptions {
        mount_opts(&self.key)
    }

    /// What is in memory is committed now (every root's).
    fn mark_committed(&mut self) {
        self.committed = self.model.clone();
        self.committed_branches = Branches {
            models: self.branches.models.clone(),
            open: BTreeMap::new(),
        };
    }

    fn fs(&mut self) -> &mut Filesystem {
        self.fs.as_mut().expect("mounted")
    }

    /// Runs `op` on both sides and checks that they agree.
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Sync => {
                self.fs().sync().expect("sync");
                self.mark_committed();
                self.check(&self.model.clone());
            }
            Op::Clean { commit, urgent } => {
                // A cleaning pass moves what it finds (and may commit the
                // user's dirty state with it); the sync makes the commit
                // point certain.
                self.fs().clean(clean_pass(commit, urgent)).expect("clean");
                self.fs().sync().expect("sync");
                self.mark_committed();
                self.check(&self.model.clone());
            }
            Op::Defrag { .. } => {
                // A defragmentation commits (what was written before it
                // too); the sync makes the commit point certain.
                apply_op(self.fs.as_mut().expect("fs"), &mut self.model, op);
                self.fs().sync().expect("sync");
                self.mark_committed();
                self.check(&self.model.clone());
            }
            Op::Remount => {
                self.branches.forget_open();
                self.fs.take().expect("fs").unmount().expect("unmount");
                self.fs = Some(
                    Filesystem::mount(self.dev.clone() as Arc<dyn BlockDevice>, self.opts())
                        .expect("remount"),
                );
                self.mark_committed();
                self.check(&self.model.clone());
            }
            Op::Fsync { .. } => {
                apply_op(self.fs.as_mut().expect("fs"), &mut self.model, op);
                if self.opts().journal != JournalMode::Writeback {
                    self.mark_committed();
                }
            }
            Op::CrashCut => {
                // The device as a power cut now would leave it (the memory
                // device applies writes in order, so this is the state
                // after the last completed write).
                let copy = Arc::new(MemDevice::from_bytes(&self.dev.snapshot()));
                let mut fs = Filesystem::mount(copy as Arc<dyn BlockDevice>, self.opts())
                    .expect("mount after a crash");
                let committed = self.committed.clone();
                compare(&mut fs, &committed);
                if let Err(e) = self.committed_branches.check(&mut fs, false) {
                    panic!("after a crash: {e}");
                }
                fs.unmount().expect("unmount the crash copy");
            }
            Op::Snapshot { slot } => {
                let name = snapshot_name(slot);
                match self.fs().create_snapshot(&name, None) {
                    // A snapshot of the present is a commit.
                    Ok(_) => {
                        assert!(!self.snapshots.contains_key(&name), "created twice");
                        self.snapshots.insert(name, self.model.clone());
                        self.mark_committed();
                        self.check(&self.model.clone());
                    }
                    Err(Error::Exists) => assert!(self.snapshots.contains_key(&name)),
                    Err(e) => panic!("snapshot: {e}"),
                }
            }
            Op::DeleteSnapshot { slot } => {
                let name = snapshot_name(slot);
                let origin = self.branches.made_from(&name);
                match self.fs().delete_snapshot(&name) {
                    Err(Error::Refused(_)) if origin => {}
                    Ok(()) => {
                        assert!(!origin, "deleted a branch's origin");
                        assert!(self.snapshots.remove(&name).is_some(), "deleted a ghost");
                        self.mark_committed();
                        self.check(&self.model.clone());
                    }
                    Err(Error::Refused(_)) => assert!(!self.snapshots.contains_key(&name)),
                    Err(e) => panic!("delete snapshot: {e}"),
                }
            }
            Op::Rollback { slot, keep } => {
                let fs = self.fs.as_mut().expect("fs");
                // Closing a branch with changes commits them (and the
                // rest): the sync makes the commit point certain.
                self.branches.close_all(fs);
                fs.sync().expect("sync");
                self.mark_committed();
                let fs = self.fs.as_mut().expect("fs");
                if rollback(fs, &mut self.model, &mut self.snapshots, slot, keep) {
                    self.mark_committed();
                    self.check(&self.model.clone());
                }
            }
            Op::Clone { .. } | Op::InBranch { .. } | Op::DeleteBranch { .. } => {
                let fs = self.fs.as_mut().expect("fs");
                if self.branches.apply(fs, &self.snapshots, op) {
                    self.mark_committed();
                    self.check(&self.model.clone());
                }
            }
            _ => apply_op(self.fs.as_mut().expect("fs"), &mut self.model, op),
        }
    }

    /// Every snapshot reads as the model did at its point, and no other
    /// snapshot exists.
    fn check_snapshots(&self) {
        let image = self.dev.snapshot();
        for (name, model) in &self.snapshots {
            let copy = Arc::new(MemDevice::from_bytes(&image));
            let opts = MountOptions {
                read_only: true,
                at: Some(At::Snapshot(name.clone())),
                ..self.opts()
            };
            let mut fs = Filesystem::mount(copy as Arc<dyn BlockDevice>, opts)
                .unwrap_or_else(|e| panic!("mount snapshot {name:?}: {e}"));
            compare(&mut fs, model);
        }
        let mut listed: Vec<Vec<u8>> = self
            .fs
            .as_ref()
            .expect("fs")
            .checkpoints()
            .into_iter()
            .filter_map(|c| c.snapshot)
            .collect();
        listed.sort();
        let expected: Vec<Vec<u8>> = self.snapshots.keys().cloned().collect();
        assert_eq!(listed, expected, "the snapshots listed");
    }

    fn check(&mut self, model: &Model) {
        let fs = self.fs.as_mut().expect("fs");
        compare(fs, model);
        // What is on the device (the last commit) checks clean.
        let image = Arc::new(MemDevice::from_bytes(&self.dev.snapshot()));
        let report = pagelog_core::fsck::check(
            image as Arc<dyn BlockDevice>,
            self.key.as_ref(),
            pagelog_core::fsck::Level::VerifyData,
            &mut |_, _, _| {},
        );
        assert_eq!(
            report.problems(),
            0,
            "the checker finds {:?}",
            report.findings
        );
        self.check_snapshots();
        let fs = self.fs.as_mut().expect("fs");
        if let Err(e) = self.branches.check(fs, false) {
            panic!("{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn filesystem_matches_model(ops in proptest::collection::vec(op_strategy(), 1..80)) {
        run_workload(Harness::new(), &ops);
    }

    /// The same with every file compressed (zstd, clusters of 16 pages):
    /// partial overwrites of compressed clusters, truncation and holes
    /// inside them, cleaning, snapshots and crashes.
    #[test]
    fn compressed_filesystem_matches_model(ops in proptest::collection::vec(op_strategy(), 1..80)) {
        run_workload(Harness::storing("zstd:1"), &ops);
    }

    /// The same on a sealed volume with compression: every unit, table
    /// page, summary and checkpoint sealed; the checker opens them all.
    #[test]
    fn sealed_filesystem_matches_model(ops in proptest::collection::vec(op_strategy(), 1..80)) {
        run_workload(Harness::storing("zstd:1+sealed"), &ops);
    }
}

/// Runs `ops` on `h`, then commits, checks a crash copy and remounts
/// (each step checking the filesystem against the model).
fn run_workload(mut h: Harness, ops: &[Op]) {
    for op in ops {
        h.apply(op);
    }
    h.apply(&Op::Sync);
    h.apply(&Op::CrashCut);
    h.apply(&Op::Remount);
    h.fs.take().expect("fs").unmount().expect("unmount");
}

/// Regression: a directory moved into a sibling, then the old parent
/// removed, keeps its `..` and link counts right across a remount.
#[test]
fn moved_directory_keeps_parent_links() {
    let mut h = Harness::new();
    for op in [
        Op::Mkdir { dir: 0, name: 0 },
        Op::Mkdir { dir: 0, name: 1 },
        Op::Mkdir { dir: 1, name: 2 },
        Op::Rename {
            fdir: 1,
            fname: 2,
            tdir: 2,
            tname: 3,
        },
        Op::Remount,
        Op::Rmdir { dir: 0, name: 0 },
        Op::Remount,
    ] {
        h.apply(&op);
    }
}

/// A branch made from a snapshot diverges, survives a remount and a crash
/// cut, keeps its origin from deletion, and goes when deleted.
#[test]
fn branch_life() {
    let mut h = Harness::new();
    let write = |file, seed| Op::Write {
        file,
        offset: 0,
        len: 9000,
        seed,
    };
    let in_branch = |op: Op| Op::InBranch {
        slot: 0,
        op: Box::new(op),
    };
    for op in [
        Op::Create { dir: 0, name: 0 },
        write(0, 1),
        Op::Snapshot { slot: 0 },
        write(0, 2),
        Op::Clone { slot: 0, from: 0 },
        Op::Clone { slot: 0, from: 0 },
        in_branch(write(0, 3)),
        in_branch(Op::Create { dir: 0, name: 1 }),
        Op::Sync,
        Op::CrashCut,
        Op::Remount,
        in_branch(Op::Unlink { dir: 0, name: 0 }),
        Op::DeleteSnapshot { slot: 0 },
        Op::Clean {
            commit: true,
            urgent: false,
        },
        Op::DeleteBranch { slot: 0 },
        Op::Snapshot { slot: 1 },
        write(0, 5),
        Op::Snapshot { slot: 2 },
        Op::Create { dir: 0, name: 2 },
        // Back to snapshot 1; the present is kept as snapshot 3, and the
        // newer snapshot 2 stays.
        Op::Rollback { slot: 1, keep: 3 },
        Op::Rollback { slot: 1, keep: 3 },
        write(0, 6),
        Op::Clean {
            commit: true,
            urgent: true,
        },
        Op::Rollback { slot: 3, keep: 0 },
        Op::DeleteSnapshot { slot: 1 },
        Op::DeleteSnapshot { slot: 2 },
        Op::DeleteSnapshot { slot: 3 },
        Op::DeleteSnapshot { slot: 0 },
        Op::Remount,
    ] {
        h.apply(&op);
    }
    assert!(h.branches.models.is_empty() && h.snapshots.is_empty());
    assert!(h.fs().checkpoints().iter().all(|c| c.snapshot.is_none()));
}

/// Regression (of the harness): a branch's change, then a rollback that is
/// refused (no such snapshot), then a crash: closing the branch for the
/// rollback committed its change, and the crash state shows it.
#[test]
fn branch_change_survives_a_rollback_and_a_crash() {
    for chain in ["none", "zstd:1", "none+sealed"] {
        let mut h = Harness::storing(chain);
        for op in [
            Op::Snapshot { slot: 2 },
            Op::Clone { slot: 1, from: 2 },
            Op::InBranch {
                slot: 1,
                op: Box::new(Op::Create { dir: 0, name: 0 }),
            },
            Op::Rollback { slot: 0, keep: 0 },
            Op::CrashCut,
        ] {
            h.apply(&op);
        }
    }
}
