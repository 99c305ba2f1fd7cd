//! Inodes live sixteen to a node page: a directory's files share pages,
//! freed slots are reused (also after a remount), and a pack whose last
//! inode goes is freed, leaving the image as it was.

use std::collections::BTreeSet;
use std::sync::Arc;

use pagelog_core::fsck::{Level, Report};
use pagelog_core::{Cred, Filesystem, Ino, MemDevice, Nid};

mod support;
use support::mount;

fn fresh() -> Arc<MemDevice> {
    support::formatted(8192, 64)
}

/// The full check, which must be clean; returns its report.
fn clean(dev: &Arc<MemDevice>) -> Report {
    let r = support::fsck(dev, Level::Full);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    r
}

fn name(i: usize) -> Vec<u8> {
    format!("file{i:03}").into_bytes()
}

fn create(fs: &mut Filesystem, dir: Ino, range: std::ops::Range<usize>) -> Vec<Ino> {
    range
        .map(|i| {
            fs.mknod(&Cred::root(), dir, &name(i), 0o644, 0)
                .expect("create")
                .ino
        })
        .collect()
}

fn packs(inos: &[Ino]) -> BTreeSet<Nid> {
    inos.iter().map(|i| i.pack()).collect()
}

#[test]
fn files_of_a_directory_fill_packs_and_empty_packs_are_freed() {
    let dev = fresh();
    let root = Cred::root();
    let before = clean(&dev).stats;
    let mut fs = mount(&dev);
    let d = fs.mkdir(&root, Ino::ROOT, b"d", 0o755).expect("mkdir");
    let files = create(&mut fs, d.ino, 0..100);
    // 101 inodes (the directory too) in the pack of the root and the
    // directory plus as few new ones as hold them.
    assert!(packs(&files).len() <= 7, "{:?}", packs(&files));
    assert!(files.iter().all(|i| i.slot() < 16));
    // Packs are filled: only the first (shared with the root and the
    // directory) and the last may have free slots.
    let mut per_pack = std::collections::BTreeMap::new();
    for f in &files {
        *per_pack.entry(f.pack()).or_insert(0) += 1;
    }
    let partial = per_pack.values().filter(|&&n| n < 16).count();
    assert!(partial <= 2, "{per_pack:?}");
    fs.unmount().expect("unmount");
    let full = clean(&dev).stats;
    assert_eq!(full.inodes, before.inodes + 101);
    assert!(
        full.nodes <= before.nodes + 8,
        "{} -> {}",
        before.nodes,
        full.nodes
    );

    let mut fs = mount(&dev);
    for i in 0..100 {
        fs.unlink(&root, d.ino, &name(i)).expect("unlink");
    }
    fs.rmdir(&root, Ino::ROOT, b"d").expect("rmdir");
    fs.unmount().expect("unmount");
    let after = clean(&dev).stats;
    assert_eq!((after.inodes, after.nodes), (before.inodes, before.nodes));
}

#[test]
fn freed_slots_are_reused_after_a_remount() {
    let dev = fresh();
    let root = Cred::root();
    let mut fs = mount(&dev);
    let d = fs.mkdir(&root, Ino::ROOT, b"d", 0o755).expect("mkdir");
    let files = create(&mut fs, d.ino, 0..64);
    fs.unmount().expect("unmount");
    let mut fs = mount(&dev);
    for i in (0..64).step_by(2) {
        fs.unlink(&root, d.ino, &name(i)).expect("unlink");
    }
    fs.unmount().expect("unmount");
    let half = clean(&dev).stats;

    // A new mount knows nothing of the holes until it reads their packs;
    // listing the directory (as `ls -l` does) reads them all.
    let mut fs = mount(&dev);
    for i in (1..64).step_by(2) {
        fs.lookup(&root, d.ino, &name(i)).expect("lookup");
    }
    let again = create(&mut fs, d.ino, 100..132);
    assert!(
        packs(&again).is_subset(&packs(&files)),
        "new inodes went to new packs: {:?} vs {:?}",
        packs(&again),
        packs(&files)
    );
    fs.unmount().expect("unmount");
    let refilled = clean(&dev).stats;
    assert_eq!(refilled.nodes, half.nodes);
    assert_eq!(refilled.inodes, half.inodes + 32);
}
