//! A full filesystem never poisons its mount: whatever users did before,
//! a write that does not fit fails with ENOSPC and changes nothing, and
//! unlink, rmdir, truncate, rename, fsync and unmount always work. (The
//! bound that makes this hold is checked by every commit in debug builds:
//! see `room.rs` and DESIGN.md, "Room for the next commit".)

use std::collections::BTreeMap;
use std::sync::Arc;

use pagelog_core::fs::RenameFlags;
use pagelog_core::fsck::Level;
use pagelog_core::{BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions, SetAttr};
use proptest::prelude::*;
use proptest::strategy::Strategy;

mod support;

const MIB: usize = 1 << 20;

fn mount(dev: &Arc<MemDevice>) -> Filesystem {
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, MountOptions::default()).expect("mount")
}

fn check_clean(dev: &Arc<MemDevice>) {
    let report = support::fsck(dev, Level::Full);
    assert_eq!(report.problems(), 0, "checker finds {:?}", report.findings);
}

/// Writes 4 MiB files in 1 MiB appends, each followed by fsync, until
/// `target` bytes are written or the filesystem is full; returns the names
/// and whether it ended on ENOSPC. Any other error fails the test.
fn fill(fs: &mut Filesystem, tag: &str, target: u64) -> (Vec<String>, bool) {
    let root = Cred::root();
    let chunk = vec![0x5au8; MIB];
    let (mut names, mut written) = (Vec::new(), 0u64);
    for n in 0.. {
        let name = format!("{tag}-{n}");
        let a = match fs.create(&root, Ino::ROOT, name.as_bytes(), 0o644, 0) {
            Ok(a) => a,
            Err(Error::NoSpace) => return (names, true),
            Err(e) => panic!("create {name}: {e}"),
        };
        names.push(name.clone());
        for i in 0..4u64 {
            let r = fs
                .write(&root, a.ino, i * MIB as u64, &chunk)
                .and_then(|_| fs.fsync(a.ino));
            match r {
                Ok(()) => written += MIB as u64,
                Err(Error::NoSpace) => {
                    fs.release(a.ino).expect("release");
                    return (names, true);
                }
                Err(e) => panic!("write or fsync of {name}: {e}"),
            }
            if written >= target {
                fs.release(a.ino).expect("release");
                return (names, false);
            }
        }
        fs.release(a.ino).expect("release");
    }
    unreachable!()
}

fn delete_all(fs: &mut Filesystem, names: &[String]) {
    for name in names {
        fs.unlink(&Cred::root(), Ino::ROOT, name.as_bytes())
            .unwrap_or_else(|e| panic!("unlink {name}: {e}"));
    }
    fs.sync().expect("sync after deleting");
}

/// The pattern that poisoned mounts: on a 256 MiB image, six cycles of
/// filling 70% of the free space (1 MiB appends with fsync into 4 MiB
/// files) and deleting everything; then filling to ENOSPC; then deleting
/// everything. Every delete works, nothing fails but with ENOSPC, and the
/// space comes back whole.
#[test]
fn six_fill_delete_cycles_then_full_then_delete_all() {
    let dev = support::formatted(65536, 512);
    let mut fs = mount(&dev);
    let empty = fs.statfs().bfree;
    for cycle in 0..6 {
        let target = fs.statfs().bavail * 4096 * 7 / 10;
        let (names, full) = fill(&mut fs, &format!("c{cycle}"), target);
        assert!(!full, "cycle {cycle}: ENOSPC at 70% of the free space");
        delete_all(&mut fs, &names);
    }
    let (names, full) = fill(&mut fs, "full", u64::MAX);
    assert!(full, "the last fill ends on ENOSPC");
    let at_full = fs.statfs().bfree;
    assert!(
        at_full < empty / 50,
        "ENOSPC with {at_full} of {empty} pages free"
    );
    delete_all(&mut fs, &names);
    assert!(
        fs.statfs().bfree + 16 >= empty,
        "{} pages free after deleting everything, {empty} when new",
        fs.statfs().bfree
    );
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

/// `available_at_least`, which settles most answers from the free segments
/// alone, agrees with `statfs` from empty to full and back.
#[test]
fn available_at_least_agrees_with_statfs() {
    let dev = support::formatted(16384, 256);
    let mut fs = mount(&dev);
    let agree = |fs: &mut Filesystem| {
        let avail = fs.statfs().bavail;
        for n in [
            0,
            1,
            avail / 2,
            avail.saturating_sub(1),
            avail,
            avail + 1,
            2 * avail + 8,
        ] {
            assert_eq!(
                fs.available_at_least(n),
                avail >= n,
                "{n} pages, {avail} available"
            );
        }
    };
    agree(&mut fs);
    let mut names = Vec::new();
    for step in 0..8 {
        let (more, full) = fill(&mut fs, &format!("s{step}"), 6 * MIB as u64);
        names.extend(more);
        agree(&mut fs);
        if full {
            break;
        }
    }
    delete_all(&mut fs, &names);
    agree(&mut fs);
    fs.unmount().expect("unmount");
}

/// Once a write found no room, writes that need as much find none again
/// at once, without committing or cleaning (the kernel's writeback cache
/// sends a refused file's pages one request after another); a delete
/// makes the next write try in earnest again, and it fits.
#[test]
fn a_refused_write_is_refused_again_without_work_until_something_changes() {
    let dev = support::formatted(16384, 256);
    let mut fs = mount(&dev);
    let (names, full) = fill(&mut fs, "f", u64::MAX);
    assert!(full, "the fill ends on ENOSPC");
    let root = Cred::root();
    let a = fs
        .create(&root, Ino::ROOT, b"late", 0o644, 0)
        .or_else(|_| {
            fs.unlink(&root, Ino::ROOT, names[0].as_bytes())?;
            fs.create(&root, Ino::ROOT, b"late", 0o644, 0)
        })
        .expect("a name");
    // Small writes, as writeback sends them: each fits what `df` shows,
    // so only the segments' room refuses them.
    let chunk = vec![7u8; 16 * 1024];
    let mut at = 0u64;
    let refused = loop {
        match fs.write(&root, a.ino, at, &chunk) {
            Ok(n) => at += n as u64,
            Err(e) => break e,
        }
        assert!(at < 64 * MIB as u64, "never refused");
    };
    assert!(matches!(refused, Error::NoSpace), "{refused}");
    let before = fs.cleaner_report();
    for i in 0..20u64 {
        let r = fs.write(&root, a.ino, at + i * chunk.len() as u64, &chunk);
        assert!(matches!(r, Err(Error::NoSpace)), "{r:?}");
    }
    let after = fs.cleaner_report();
    assert_eq!(after.commits, before.commits, "refusals committed");
    assert_eq!(after.stats.passes, before.stats.passes, "refusals cleaned");
    // Room made: the next write tries again and fits.
    for n in &names[1..4] {
        fs.unlink(&root, Ino::ROOT, n.as_bytes()).expect("unlink");
    }
    fs.write(&root, a.ino, at, &chunk)
        .expect("a write after deletes");
    fs.release(a.ino).expect("release");
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

/// Fills a small filesystem to ENOSPC with a tree of files, then runs
/// every operation that must work on a full filesystem: truncate, rename,
/// unlink, rmdir, chmod, fsync and unmount.
#[test]
fn every_freeing_operation_works_when_full() {
    let dev = support::formatted(4096, 32);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let d = fs.mkdir(&root, Ino::ROOT, b"d", 0o755).expect("mkdir");
    let sub = fs.mkdir(&root, d.ino, b"sub", 0o755).expect("mkdir");
    let data = vec![7u8; 64 * 1024];
    let mut files = Vec::new();
    'fill: for n in 0.. {
        let name = format!("f{n}");
        let a = match fs.mknod(&root, d.ino, name.as_bytes(), 0o100644, 0) {
            Ok(a) => a,
            Err(Error::NoSpace) => break,
            Err(e) => panic!("create: {e}"),
        };
        files.push((name, a.ino));
        for off in (0..1 << 20).step_by(data.len()) {
            match fs.write(&root, a.ino, off, &data) {
                Ok(_) => {}
                Err(Error::NoSpace) => break 'fill,
                Err(e) => panic!("write: {e}"),
            }
        }
    }
    assert!(files.len() > 4, "the filesystem held {} files", files.len());
    let (first, first_ino) = files[0].clone();
    let truncate = SetAttr {
        size: Some(1000),
        ..SetAttr::default()
    };
    fs.setattr(&root, first_ino, &truncate).expect("truncate");
    let chmod = SetAttr {
        mode: Some(0o600),
        ..SetAttr::default()
    };
    fs.setattr(&root, first_ino, &chmod).expect("chmod");
    fs.rename(
        &root,
        d.ino,
        first.as_bytes(),
        sub.ino,
        b"moved",
        RenameFlags::default(),
    )
    .expect("rename");
    let (second, _) = &files[1];
    fs.rename(
        &root,
        d.ino,
        second.as_bytes(),
        d.ino,
        files[2].0.as_bytes(),
        RenameFlags::default(),
    )
    .expect("rename over an existing file");
    fs.fsync(first_ino).expect("fsync");
    fs.unlink(&root, sub.ino, b"moved").expect("unlink");
    fs.rmdir(&root, d.ino, b"sub").expect("rmdir");
    for (name, _) in &files[3..] {
        fs.unlink(&root, d.ino, name.as_bytes()).expect("unlink");
    }
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

/// One step of the random workload near full.
#[derive(Clone, Debug)]
enum Op {
    /// Write `pages` pages at page `at` of file `file` (creating it).
    Write {
        file: u8,
        at: u16,
        pages: u16,
    },
    Delete {
        file: u8,
    },
    Truncate {
        file: u8,
        pages: u16,
    },
    Rename {
        from: u8,
        to: u8,
    },
    Fsync {
        file: u8,
    },
    Sync,
    Remount,
}

fn op() -> impl Strategy<Value = Op> {
    let file = 0u8..12;
    prop_oneof![
        8 => (file.clone(), 0u16..256, 1u16..160).prop_map(|(file, at, pages)| Op::Write { file, at, pages }),
        3 => file.clone().prop_map(|file| Op::Delete { file }),
        2 => (file.clone(), 0u16..200).prop_map(|(file, pages)| Op::Truncate { file, pages }),
        2 => (file.clone(), file.clone()).prop_map(|(from, to)| Op::Rename { from, to }),
        2 => file.prop_map(|file| Op::Fsync { file }),
        1 => Just(Op::Sync),
        1 => Just(Op::Remount),
    ]
}

/// The model: each file's contents.
type Model = BTreeMap<u8, Vec<u8>>;

fn name(file: u8) -> Vec<u8> {
    format!("file{file}").into_bytes()
}

fn lookup(fs: &mut Filesystem, file: u8) -> Option<Ino> {
    match fs.lookup(&Cred::root(), Ino::ROOT, &name(file)) {
        Ok(a) => Some(a.ino),
        Err(Error::NotFound) => None,
        Err(e) => panic!("lookup: {e}"),
    }
}

/// Applies `op`; returns whether it was refused for want of space (only
/// writes may be).
fn apply(fs: &mut Filesystem, model: &mut Model, op: &Op, seed: u8) -> bool {
    let root = Cred::root();
    match *op {
        Op::Write { file, at, pages } => {
            let ino = match lookup(fs, file) {
                Some(ino) => ino,
                None => match fs.mknod(&root, Ino::ROOT, &name(file), 0o100644, 0) {
                    Ok(a) => {
                        model.insert(file, Vec::new());
                        a.ino
                    }
                    Err(Error::NoSpace) => return true,
                    Err(e) => panic!("create: {e}"),
                },
            };
            let off = usize::from(at) * 4096;
            let bytes = vec![seed | 1; usize::from(pages) * 4096];
            match fs.write(&root, ino, off as u64, &bytes) {
                Ok(_) => {
                    let m = model.entry(file).or_default();
                    if m.len() < off + bytes.len() {
                        m.resize(off + bytes.len(), 0);
                    }
                    m[off..off + bytes.len()].copy_from_slice(&bytes);
                    false
                }
                Err(Error::NoSpace) => true,
                Err(e) => panic!("write: {e}"),
            }
        }
        Op::Delete { file } => {
            if model.remove(&file).is_some() {
                fs.unlink(&root, Ino::ROOT, &name(file))
                    .expect("unlink near full");
            }
            false
        }
        Op::Truncate { file, pages } => {
            if let (Some(ino), Some(m)) = (lookup(fs, file), model.get_mut(&file)) {
                let size = usize::from(pages) * 4096 / 3;
                if size <= m.len() {
                    let set = SetAttr {
                        size: Some(size as u64),
                        ..SetAttr::default()
                    };
                    fs.setattr(&root, ino, &set).expect("truncate near full");
                    m.truncate(size);
                }
            }
            false
        }
        Op::Rename { from, to } => {
            if from != to && model.contains_key(&from) {
                fs.rename(
                    &root,
                    Ino::ROOT,
                    &name(from),
                    Ino::ROOT,
                    &name(to),
                    RenameFlags::default(),
                )
                .expect("rename near full");
                let data = model.remove(&from).expect("model");
                model.insert(to, data);
            }
            false
        }
        Op::Fsync { file } => {
            if let Some(ino) = lookup(fs, file) {
                fs.fsync(ino).expect("fsync near full");
            }
            false
        }
        Op::Sync => {
            fs.sync().expect("sync near full");
            false
        }
        Op::Remount => unreachable!("handled by the caller"),
    }
}

fn verify(fs: &mut Filesystem, model: &Model) {
    for (file, data) in model {
        let ino = lookup(fs, *file).expect("file in the model exists");
        let got = fs.read(ino, 0, data.len() as u32 + 1).expect("read");
        assert!(got == *data, "file{file}: contents differ");
    }
}

/// Fills the filesystem with a ballast file (not touched by the workload)
/// up to `left` free pages. `df` may show a little room that a write
/// cannot take (the next commit's worst case is kept back, and it depends
/// on what is committed yet), so the ballast may meet ENOSPC early: but
/// never with more than three segments shown free.
fn ballast(fs: &mut Filesystem, left: u64, pps: u32) {
    let root = Cred::root();
    let a = fs
        .mknod(&root, Ino::ROOT, b"ballast", 0o100644, 0)
        .expect("create ballast");
    let free = fs.statfs().bfree;
    let bytes = vec![0xb1u8; 64 * 4096];
    let mut off = 0u64;
    while fs.statfs().bfree > left + 64 && off < free * 4096 {
        match fs.write(&root, a.ino, off, &bytes) {
            Err(Error::NoSpace) => {
                let shown = fs.statfs().bfree;
                assert!(
                    shown <= left + 64 + 3 * u64::from(pps),
                    "ENOSPC with {shown} pages shown free"
                );
                break;
            }
            r => {
                r.expect("write ballast");
            }
        }
        off += bytes.len() as u64;
    }
    fs.sync().expect("sync");
}

/// One random case: the ballast, then `ops`. Returns the writes refused.
fn near_full_case(ops: &[Op], pps: u32, left: u64) -> u64 {
    let dev = support::formatted(2048, pps);
    let mut fs = mount(&dev);
    ballast(&mut fs, left, pps);
    let mut model = Model::new();
    let mut refused = 0;
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, Op::Remount) {
            fs.unmount().expect("unmount near full");
            check_clean(&dev);
            fs = mount(&dev);
            continue;
        }
        if apply(&mut fs, &mut model, op, i as u8) {
            refused += 1;
        }
    }
    verify(&mut fs, &model);
    fs.unmount().expect("unmount near full");
    check_clean(&dev);
    let mut fs = mount(&dev);
    verify(&mut fs, &model);
    fs.unmount().expect("unmount");
    refused
}

/// Random writes, overwrites, deletes, truncations and renames on a small
/// filesystem kept near full (a ballast file fills all but a few hundred
/// pages): only writes ever fail, and only with ENOSPC; the filesystem
/// never refuses service (no EIO, no poisoned mount), every unmount works,
/// the image checks clean and every file reads back as the model says.
/// Segments of 16, 32 and 64 pages: the smaller, the larger the share of
/// each commit's worst case.
#[test]
fn near_full_never_poisons() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(op(), 40..120),
        prop::sample::select(vec![16u32, 32, 64]),
        0u64..400,
    );
    let refused = std::cell::Cell::new(0);
    runner
        .run(&strategy, |(ops, pps, left)| {
            refused.set(refused.get() + near_full_case(&ops, pps, left));
            Ok(())
        })
        .expect("near full workload");
    // The workload does reach full (otherwise the test proves nothing).
    assert!(refused.get() > 24, "only {} writes refused", refused.get());
}

/// Regression (found by `near_full_never_poisons` once checkpoints were
/// retained): a rename over an existing file near full must not fail.
#[test]
fn rename_near_full_with_retained_checkpoints() {
    use Op::*;
    let ops = [
        Write {
            file: 8,
            at: 17,
            pages: 74,
        },
        Write {
            file: 2,
            at: 29,
            pages: 96,
        },
        Write {
            file: 10,
            at: 145,
            pages: 158,
        },
        Remount,
        Write {
            file: 11,
            at: 41,
            pages: 84,
        },
        Write {
            file: 8,
            at: 192,
            pages: 23,
        },
        Write {
            file: 2,
            at: 187,
            pages: 33,
        },
        Truncate {
            file: 2,
            pages: 109,
        },
        Truncate {
            file: 11,
            pages: 21,
        },
        Write {
            file: 8,
            at: 60,
            pages: 151,
        },
        Write {
            file: 2,
            at: 235,
            pages: 42,
        },
        Sync,
        Write {
            file: 1,
            at: 137,
            pages: 123,
        },
        Remount,
        Write {
            file: 10,
            at: 255,
            pages: 129,
        },
        Rename { from: 10, to: 2 },
        Fsync { file: 0 },
        Write {
            file: 8,
            at: 179,
            pages: 124,
        },
        Sync,
        Write {
            file: 8,
            at: 29,
            pages: 3,
        },
        Write {
            file: 2,
            at: 176,
            pages: 125,
        },
        Delete { file: 8 },
        Delete { file: 0 },
        Write {
            file: 0,
            at: 4,
            pages: 29,
        },
        Truncate { file: 5, pages: 19 },
        Write {
            file: 5,
            at: 35,
            pages: 75,
        },
        Delete { file: 11 },
        Write {
            file: 1,
            at: 76,
            pages: 27,
        },
        Write {
            file: 3,
            at: 102,
            pages: 46,
        },
        Delete { file: 11 },
        Rename { from: 1, to: 6 },
        Write {
            file: 11,
            at: 226,
            pages: 73,
        },
        Write {
            file: 11,
            at: 67,
            pages: 140,
        },
        Write {
            file: 7,
            at: 10,
            pages: 3,
        },
        Delete { file: 10 },
        Rename { from: 6, to: 1 },
        Write {
            file: 8,
            at: 100,
            pages: 145,
        },
        Delete { file: 9 },
        Delete { file: 6 },
        Sync,
    ];
    near_full_case(&ops, 64, 325);
}

/// A big file a snapshot holds, unlinked on a full filesystem: each of its
/// units goes on a deadlist, which the next commit must write (a page per
/// 254 units: 155 pages here, ten 16-page segments, more than the
/// reserves). The commit still fits: what is live, held units included,
/// stays below 95% of the area, so the cleaning a commit does first to
/// restore its reserves always finds the dead pages it needs. Deleting the
/// snapshot then gives the space back.
#[test]
fn unlinking_a_big_file_a_snapshot_holds_when_full() {
    let dev = support::formatted(65536, 16);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let big = fs.statfs().bavail * 4096 * 7 / 10;
    let a = fs
        .create(&root, Ino::ROOT, b"big", 0o644, 0)
        .expect("create");
    let chunk = vec![0xa5u8; MIB];
    for i in 0..big / MIB as u64 {
        fs.write(&root, a.ino, i * MIB as u64, &chunk)
            .expect("write");
    }
    fs.fsync(a.ino).expect("fsync");
    fs.release(a.ino).expect("release");
    let names = vec!["big".to_string()];
    fs.create_snapshot(b"held", None).expect("snapshot");
    let (rest, full) = fill(&mut fs, "rest", u64::MAX);
    assert!(full, "the second fill ends on ENOSPC");
    for name in &names {
        match fs.unlink(&root, Ino::ROOT, name.as_bytes()) {
            Ok(()) | Err(Error::NoSpace) => {}
            Err(e) => panic!("unlink {name}: {e}"),
        }
        fs.sync()
            .unwrap_or_else(|e| panic!("sync after unlinking {name}: {e}"));
    }
    fs.delete_snapshot(b"held").expect("delete the snapshot");
    let after = fs.statfs().bavail;
    delete_all(&mut fs, &rest);
    for name in &names {
        match fs.unlink(&root, Ino::ROOT, name.as_bytes()) {
            Ok(()) | Err(Error::NotFound) => {}
            Err(e) => panic!("unlink {name} after deleting the snapshot: {e}"),
        }
    }
    fs.sync().expect("sync");
    assert!(fs.statfs().bavail > after, "deleting gives space back");
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

/// Regression (found by `near_full_never_poisons` when a segment a log
/// head held stayed pre-free until the next durable superblock, one
/// writable segment fewer than the room for the next commit counts on): a
/// truncate near full must not fail.
#[test]
fn truncate_near_full_with_the_cleaners_head_emptied() {
    use Op::*;
    let ops = [
        Write {
            file: 0,
            at: 35,
            pages: 18,
        },
        Write {
            file: 8,
            at: 125,
            pages: 17,
        },
        Remount,
        Write {
            file: 4,
            at: 175,
            pages: 35,
        },
        Remount,
        Write {
            file: 3,
            at: 252,
            pages: 85,
        },
        Truncate {
            file: 8,
            pages: 151,
        },
        Write {
            file: 8,
            at: 200,
            pages: 22,
        },
        Rename { from: 3, to: 6 },
        Write {
            file: 9,
            at: 10,
            pages: 56,
        },
        Delete { file: 6 },
        Truncate {
            file: 1,
            pages: 101,
        },
        Truncate { file: 9, pages: 97 },
        Delete { file: 6 },
        Delete { file: 7 },
        Write {
            file: 3,
            at: 125,
            pages: 40,
        },
        Write {
            file: 5,
            at: 184,
            pages: 85,
        },
        Fsync { file: 11 },
        Delete { file: 7 },
        Write {
            file: 11,
            at: 44,
            pages: 143,
        },
        Write {
            file: 8,
            at: 0,
            pages: 83,
        },
        Truncate {
            file: 8,
            pages: 105,
        },
        Truncate {
            file: 3,
            pages: 108,
        },
        Write {
            file: 11,
            at: 67,
            pages: 118,
        },
        Write {
            file: 8,
            at: 135,
            pages: 99,
        },
        Write {
            file: 1,
            at: 244,
            pages: 45,
        },
        Write {
            file: 4,
            at: 240,
            pages: 12,
        },
        Rename { from: 4, to: 7 },
        Write {
            file: 1,
            at: 162,
            pages: 12,
        },
        Write {
            file: 5,
            at: 85,
            pages: 86,
        },
        Rename { from: 3, to: 9 },
        Write {
            file: 9,
            at: 8,
            pages: 138,
        },
        Delete { file: 0 },
        Sync,
        Write {
            file: 10,
            at: 172,
            pages: 54,
        },
        Write {
            file: 1,
            at: 179,
            pages: 102,
        },
        Write {
            file: 9,
            at: 111,
            pages: 52,
        },
        Delete { file: 5 },
        Write {
            file: 10,
            at: 242,
            pages: 24,
        },
        Truncate {
            file: 8,
            pages: 185,
        },
    ];
    near_full_case(&ops, 32, 95);
}
