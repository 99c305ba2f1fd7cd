//! Model-based test: random sequences of namespace, data and attribute
//! operations run against the real filesystem (on a memory device) and an
//! in-memory reference model; every result must agree, the whole tree must
//! match after every commit and remount, and an image cut at any point
//! (as a crash would leave it) must mount and show the last committed state.

use std::collections::BTreeMap;
use std::sync::Arc;

use pagelog_core::checkpoints::At;
use pagelog_core::{
    format, BlockDevice, Error, Filesystem, FormatOptions, MemDevice, MountOptions,
};
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
}

fn opts() -> MountOptions {
    MountOptions {
        dirty_limit: 256 << 10,
        log_limit: 1 << 20,
        ..MountOptions::default()
    }
}

impl Harness {
    fn new() -> Harness {
        let dev = Arc::new(MemDevice::new(8192));
        format(
            dev.clone(),
            &FormatOptions {
                pages_per_segment: 64,
                ..FormatOptions::default()
            },
        )
        .expect("format");
        let fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts()).expect("mount");
        Harness {
            dev,
            fs: Some(fs),
            model: Model::new(),
            committed: Model::new(),
            snapshots: BTreeMap::new(),
        }
    }

    fn fs(&mut self) -> &mut Filesystem {
        self.fs.as_mut().expect("mounted")
    }

    /// Runs `op` on both sides and checks that they agree.
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Sync => {
                self.fs().sync().expect("sync");
                self.committed = self.model.clone();
                self.check(&self.model.clone());
            }
            Op::Clean { commit, urgent } => {
                // A cleaning pass moves what it finds (and may commit the
                // user's dirty state with it); the sync makes the commit
                // point certain.
                self.fs().clean(clean_pass(commit, urgent)).expect("clean");
                self.fs().sync().expect("sync");
                self.committed = self.model.clone();
                self.check(&self.model.clone());
            }
            Op::Remount => {
                self.fs.take().expect("fs").unmount().expect("unmount");
                self.fs = Some(
                    Filesystem::mount(self.dev.clone() as Arc<dyn BlockDevice>, opts())
                        .expect("remount"),
                );
                self.committed = self.model.clone();
                self.check(&self.model.clone());
            }
            Op::CrashCut => {
                // The device as a power cut now would leave it (the memory
                // device applies writes in order, so this is the state
                // after the last completed write).
                let copy = Arc::new(MemDevice::from_bytes(&self.dev.snapshot()));
                let mut fs = Filesystem::mount(copy as Arc<dyn BlockDevice>, opts())
                    .expect("mount after a crash");
                let committed = self.committed.clone();
                compare(&mut fs, &committed);
                fs.unmount().expect("unmount the crash copy");
            }
            Op::Snapshot { slot } => {
                let name = snapshot_name(slot);
                match self.fs().create_snapshot(&name, None) {
                    // A snapshot of the present is a commit.
                    Ok(_) => {
                        assert!(!self.snapshots.contains_key(&name), "created twice");
                        self.snapshots.insert(name, self.model.clone());
                        self.committed = self.model.clone();
                        self.check(&self.model.clone());
                    }
                    Err(Error::Exists) => assert!(self.snapshots.contains_key(&name)),
                    Err(e) => panic!("snapshot: {e}"),
                }
            }
            Op::DeleteSnapshot { slot } => {
                let name = snapshot_name(slot);
                match self.fs().delete_snapshot(&name) {
                    Ok(()) => {
                        assert!(self.snapshots.remove(&name).is_some(), "deleted a ghost");
                        self.committed = self.model.clone();
                        self.check(&self.model.clone());
                    }
                    Err(Error::Refused(_)) => assert!(!self.snapshots.contains_key(&name)),
                    Err(e) => panic!("delete snapshot: {e}"),
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
                ..opts()
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
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn filesystem_matches_model(ops in proptest::collection::vec(op_strategy(), 1..80)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
        h.apply(&Op::Sync);
        h.apply(&Op::CrashCut);
        h.apply(&Op::Remount);
        h.fs.take().expect("fs").unmount().expect("unmount");
    }
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
