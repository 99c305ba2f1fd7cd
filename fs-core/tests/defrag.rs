//! Defragmentation moves a fragmented file's units together in page
//! order: its bytes are the same, it lies in as few extents as the log
//! allows, a snapshot that shares it reads the same and no space is
//! used for a copy of it; a dry run and a file within the threshold are
//! left alone.

use std::sync::Arc;

use pagelog_core::fsck::Level;
use pagelog_core::{Cred, Filesystem, Ino, MemDevice};

mod support;

const PAGES: u64 = 1024;

/// A 4 MiB file fragmented by 300 single-page overwrites, each committed
/// on its own.
fn fragmented() -> (Arc<MemDevice>, Filesystem, Ino, Vec<u8>) {
    fragmented_of(PAGES)
}

fn fragmented_of(pages: u64) -> (Arc<MemDevice>, Filesystem, Ino, Vec<u8>) {
    let dev = support::formatted(32 * 1024, 512);
    let mut fs = support::mount(&dev);
    let root = Cred::root();
    let ino = fs
        .mknod(&root, Ino::ROOT, b"f", 0o644, 0)
        .expect("create")
        .ino;
    let mut data: Vec<u8> = (0..pages * 4096).map(|i| (i % 253) as u8).collect();
    fs.write(&root, ino, 0, &data).expect("write");
    fs.sync().expect("sync");
    let mut x = 7u64;
    for n in 0..300u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let page = (x >> 33) % pages;
        let bytes = vec![(n % 251) as u8; 4096];
        fs.write(&root, ino, page * 4096, &bytes)
            .expect("overwrite");
        data[(page * 4096) as usize..(page * 4096 + 4096) as usize].copy_from_slice(&bytes);
        fs.sync().expect("sync");
    }
    (dev, fs, ino, data)
}

#[test]
fn a_fragmented_file_is_laid_out_again_with_the_same_bytes() {
    let (dev, mut fs, ino, data) = fragmented();
    let before = fs.layout(ino).expect("layout");
    assert!(before.extents > 100, "{before:?}");
    let done = fs.defrag(ino, 0.0, false).expect("defrag");
    let after = done.after.expect("moved");
    assert_eq!(done.before, before);
    assert!(
        after.extents <= 2 && after.extents <= before.extents / 50,
        "{after:?}"
    );
    assert_eq!(after.pages, before.pages);
    assert!(fs.read(ino, 0, data.len() as u32).expect("read") == data);
    fs.unmount().expect("unmount");
    assert_eq!(support::fsck(&dev, Level::VerifyData).problems(), 0);
    let mut fs = support::mount(&dev);
    assert!(fs.read(ino, 0, data.len() as u32).expect("read") == data);
    assert_eq!(fs.layout(ino).expect("layout"), after);
}

#[test]
fn a_file_a_snapshot_shares_is_moved_not_copied() {
    let (dev, mut fs, ino, data) = fragmented();
    fs.create_snapshot(b"s", None).expect("snapshot");
    let free_before = fs.statfs().bfree;
    let done = fs.defrag(ino, 0.0, false).expect("defrag");
    assert!(done.after.expect("moved").extents <= 2);
    let used = free_before.saturating_sub(fs.statfs().bfree);
    assert!(
        used < PAGES / 10,
        "{used} pages used by defragmenting a {PAGES}-page file a snapshot shares"
    );
    let at = pagelog_core::checkpoints::At::Snapshot(b"s".to_vec());
    let (view, _) = fs.open_view(&at).expect("view");
    let snap = fs
        .in_view(view, |v| v.read(ino, 0, data.len() as u32))
        .expect("snapshot reads");
    fs.close_view(view).expect("close");
    assert!(snap == data, "the snapshot reads the same");
    fs.unmount().expect("unmount");
    assert_eq!(support::fsck(&dev, Level::VerifyData).problems(), 0);
}

#[test]
fn a_dry_run_and_a_high_threshold_leave_the_file_alone() {
    let (_dev, mut fs, ino, _) = fragmented();
    let before = fs.layout(ino).expect("layout");
    let dry = fs.defrag(ino, 0.0, true).expect("dry run");
    assert_eq!((dry.before, dry.after), (before, None));
    assert_eq!(fs.layout(ino).expect("layout"), before);
    let high = fs.defrag(ino, 1.0, false).expect("threshold");
    assert_eq!(high.after, None, "factor {} is below 1.0", before.factor());
    assert_eq!(fs.layout(ino).expect("layout"), before);
}

#[test]
fn a_contiguous_file_is_left_alone() {
    let dev = support::formatted(16 * 1024, 512);
    let mut fs = support::mount(&dev);
    let root = Cred::root();
    let ino = fs
        .mknod(&root, Ino::ROOT, b"c", 0o644, 0)
        .expect("create")
        .ino;
    fs.write(&root, ino, 0, &vec![1u8; 1 << 20]).expect("write");
    fs.sync().expect("sync");
    let done = fs.defrag(ino, 0.0, false).expect("defrag");
    assert_eq!(done.before.extents, 1, "{:?}", done.before);
    assert_eq!(done.after, None);
}

#[test]
fn a_file_of_several_steps_is_moved_step_by_step_and_ends_contiguous() {
    let pages = pagelog_core::fs::DEFRAG_STEP * 2 + 300;
    let (dev, mut fs, ino, data) = fragmented_of(pages);
    let before = fs.layout(ino).expect("layout");
    let (_, wanted) = fs.defrag_begin(ino, 0.0, false).expect("begin");
    assert!(wanted);
    let mut steps = 0;
    let mut next = Some(0);
    while let Some(from) = next {
        next = fs.defrag_step(ino, from).expect("step");
        steps += 1;
    }
    assert_eq!(steps, 4, "three steps of pages, then the end");
    let after = fs.layout(ino).expect("layout");
    assert!(after.extents <= after.ideal + 1, "{before:?} -> {after:?}");
    assert!(fs.read(ino, 0, data.len() as u32).expect("read") == data);
    fs.unmount().expect("unmount");
    assert_eq!(support::fsck(&dev, Level::VerifyData).problems(), 0);
}
