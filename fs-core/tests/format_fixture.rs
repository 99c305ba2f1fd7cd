//! An image made by format version 3 (committed as a fixture) still mounts
//! and reads back exactly: the on-disk format cannot change by accident.
//! An image of version 2 (the previous one, also committed) is refused by
//! name, with what to do, and nothing is written to it.
//!
//! To regenerate after a deliberate format change (with a version bump and
//! a FORMAT.md history line): `PAGELOG_WRITE_FIXTURE=1 cargo test -p
//! pagelog-core --test format_fixture`, and keep the previous version's
//! fixture for the refusal test.

use std::io::{Read, Write};
use std::sync::Arc;

use pagelog_core::inode::{S_IFLNK, S_IFMT};
use pagelog_core::{
    format, BlockDevice, Cred, Filesystem, FormatOptions, Ino, MemDevice, MountOptions, SetAttr,
    TimeSet,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v3.img.gz");
const PREVIOUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v2.img.gz");

/// `i * 1000 + 7` bytes: f40 (40 KiB) needs a direct map node.
fn contents(i: u32) -> Vec<u8> {
    (0..i * 1000 + 7).map(|j| (j * 7 + i) as u8).collect()
}

fn make() -> Vec<u8> {
    let dev = Arc::new(MemDevice::new(258));
    let opts = FormatOptions {
        pages_per_segment: 16,
        label: b"fixture-v3".to_vec(),
        ..FormatOptions::default()
    };
    format(dev.clone(), &opts).expect("format");
    let mut fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, MountOptions::default())
        .expect("mount");
    let root = Cred::root();
    let d = fs.mkdir(&root, Ino::ROOT, b"dir", 0o750).expect("mkdir");
    for i in 0..5 {
        let f = fs
            .mknod(&root, d.ino, format!("f{i}").as_bytes(), 0o640, 0)
            .expect("create");
        fs.write(&root, f.ino, 0, &contents(i)).expect("write");
    }
    let f0 = fs.lookup(&root, d.ino, b"f0").expect("lookup");
    fs.link(&root, f0.ino, Ino::ROOT, b"hardlink")
        .expect("link");
    fs.symlink(&root, Ino::ROOT, b"sym", b"dir/f1")
        .expect("symlink");
    fs.symlink(&root, Ino::ROOT, b"longsym", &long_target())
        .expect("long symlink");
    let big = fs.mknod(&root, d.ino, b"big", 0o600, 0).expect("create");
    fs.write(&root, big.ino, 0, &contents(40)).expect("write");
    fs.setxattr(&root, d.ino, b"user.k", b"value", 0)
        .expect("xattr");
    let t = pagelog_core::inode::Timespec {
        sec: 1_600_000_000,
        nsec: 123,
    };
    fs.setattr(
        &root,
        f0.ino,
        &SetAttr {
            mtime: Some(TimeSet::At(t)),
            uid: Some(42),
            ..SetAttr::default()
        },
    )
    .expect("setattr");
    // A snapshot, then a change after it: the checkpoint list, a record
    // and a deadlist are part of the fixture.
    fs.create_snapshot(b"fixture-snap", None).expect("snapshot");
    let f2 = fs.lookup(&root, d.ino, b"f2").expect("f2");
    fs.write(&root, f2.ino, 0, b"after the snapshot")
        .expect("write");
    fs.unmount().expect("unmount");
    dev.snapshot()
}

/// The snapshot in the fixture reads as the files were before the last
/// change.
fn check_snapshot(image: &[u8]) {
    let opts = MountOptions {
        read_only: true,
        at: Some(pagelog_core::checkpoints::At::Snapshot(
            b"fixture-snap".to_vec(),
        )),
        ..MountOptions::default()
    };
    let dev = Arc::new(MemDevice::from_bytes(image)) as Arc<dyn BlockDevice>;
    let mut fs = Filesystem::mount(dev, opts).expect("mount the snapshot");
    let root = Cred::root();
    let d = fs.lookup(&root, Ino::ROOT, b"dir").expect("dir");
    let f2 = fs.lookup(&root, d.ino, b"f2").expect("f2");
    assert_eq!(fs.read(f2.ino, 0, 1 << 20).expect("read"), contents(2));
}

/// `f2` of the live tree: its first bytes were rewritten after the
/// snapshot.
fn live_f2() -> Vec<u8> {
    let mut c = contents(2);
    c[..18].copy_from_slice(b"after the snapshot");
    c
}

fn check(fs: &mut Filesystem) {
    let root = Cred::root();
    assert_eq!(fs.superblock().label, b"fixture-v3");
    let d = fs.lookup(&root, Ino::ROOT, b"dir").expect("dir");
    assert_eq!(d.mode & 0o7777, 0o750);
    assert_eq!(
        fs.getxattr(&root, d.ino, b"user.k").expect("xattr"),
        b"value"
    );
    for i in 0..5 {
        let f = fs
            .lookup(&root, d.ino, format!("f{i}").as_bytes())
            .expect("file");
        let want = if i == 2 { live_f2() } else { contents(i) };
        assert_eq!(fs.read(f.ino, 0, 1 << 20).expect("read"), want, "f{i}");
    }
    let f0 = fs.lookup(&root, d.ino, b"f0").expect("f0");
    let h = fs.lookup(&root, Ino::ROOT, b"hardlink").expect("hardlink");
    assert_eq!(
        (f0.ino, f0.nlink, f0.uid, f0.mtime.sec, f0.mtime.nsec),
        (h.ino, 2, 42, 1_600_000_000, 123)
    );
    let s = fs.lookup(&root, Ino::ROOT, b"sym").expect("sym");
    assert_eq!(s.mode & S_IFMT, S_IFLNK);
    assert_eq!(fs.readlink(s.ino).expect("readlink"), b"dir/f1");
    let s = fs.lookup(&root, Ino::ROOT, b"longsym").expect("longsym");
    assert_eq!(fs.readlink(s.ino).expect("readlink"), long_target());
    let big = fs.lookup(&root, d.ino, b"big").expect("big");
    assert_eq!(fs.read(big.ino, 0, 1 << 20).expect("read"), contents(40));
}

/// A symbolic link target too long for the inode (stored in a data page).
fn long_target() -> Vec<u8> {
    (0..300).map(|i| b'a' + (i % 26) as u8).collect()
}

fn gunzip(path: &str) -> Vec<u8> {
    let mut image = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("fixture present"))
        .read_to_end(&mut image)
        .expect("gunzip");
    image
}

#[test]
fn version_2_image_is_refused_by_name_and_left_alone() {
    let image = gunzip(PREVIOUS);
    let dev = Arc::new(MemDevice::from_bytes(&image));
    for read_only in [true, false] {
        let opts = MountOptions {
            read_only,
            ..MountOptions::default()
        };
        let err = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts)
            .expect_err("version 2 must not mount");
        let msg = err.to_string();
        assert!(
            msg.contains("format version 2") && msg.contains("reads version 3"),
            "{msg}"
        );
    }
    assert!(dev.snapshot() == image, "a refused image is not written");
}

#[test]
fn version_3_fixture_mounts_and_reads_back() {
    if std::env::var_os("PAGELOG_WRITE_FIXTURE").is_some() {
        let image = make();
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(FIXTURE).expect("create"),
            flate2::Compression::best(),
        );
        gz.write_all(&image).expect("write");
        gz.finish().expect("finish");
    }
    let image = gunzip(FIXTURE);
    check_snapshot(&image);
    let ro = MountOptions {
        read_only: true,
        ..MountOptions::default()
    };
    let mut fs = Filesystem::mount(
        Arc::new(MemDevice::from_bytes(&image)) as Arc<dyn BlockDevice>,
        ro,
    )
    .expect("mount read-only");
    check(&mut fs);
    fs.unmount().expect("unmount");
    // Read-write: it keeps working, and what it writes reads back.
    let dev = Arc::new(MemDevice::from_bytes(&image));
    let mut fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, MountOptions::default())
        .expect("mount");
    check(&mut fs);
    fs.mknod(&Cred::root(), Ino::ROOT, b"new", 0o644, 0)
        .expect("create");
    fs.unmount().expect("unmount");
    let mut fs =
        Filesystem::mount(dev as Arc<dyn BlockDevice>, MountOptions::default()).expect("remount");
    check(&mut fs);
    assert!(fs.lookup(&Cred::root(), Ino::ROOT, b"new").is_ok());
    fs.unmount().expect("unmount");
}
