//! fsync by roll-forward record (`volume/fsync.rs`): what an fsync makes
//! durable survives a crash without a checkpoint, costs a few pages and one
//! flush instead of a commit, and falls back to a commit where a record
//! cannot be written. (Every crash state of fsync-heavy workloads is
//! checked by `crash_states.rs`.)

use std::sync::Arc;

use pagelog_core::fsck::Level;
use pagelog_core::superblock::features::INCOMPAT_ROLL_FORWARD;
use pagelog_core::{BlockDevice, Cred, Filesystem, Ino, MemDevice, MountOptions};

mod support;

fn fresh() -> Arc<MemDevice> {
    support::formatted(32768, 64)
}

fn crash_copy(dev: &MemDevice) -> Arc<MemDevice> {
    Arc::new(MemDevice::from_bytes(&dev.snapshot()))
}

fn mount_with(dev: &Arc<MemDevice>, roll_forward: bool) -> Filesystem {
    let opts = MountOptions {
        roll_forward,
        ..MountOptions::default()
    };
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount")
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn assert_clean(dev: &Arc<MemDevice>) {
    let report = support::fsck(dev, Level::Full);
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
}

/// What an fsync made durable is there after a crash, though no commit
/// came after it; the mount rolls it forward and commits, and the result
/// checks clean, after the crash and after the mount.
#[test]
fn fsynced_files_survive_a_crash_without_a_commit() {
    let dev = fresh();
    let root = Cred::root();
    let mut fs = mount_with(&dev, true);
    let commits = fs.stats().commits;
    let d = fs.mkdir(&root, Ino::ROOT, b"spool", 0o755).expect("mkdir");
    let mut files = Vec::new();
    for i in 0..20u8 {
        let name = format!("msg{i}");
        let f = fs
            .mknod(&root, d.ino, name.as_bytes(), 0o644, 0)
            .expect("create");
        fs.write(&root, f.ino, 0, &data(5000 + usize::from(i) * 300, i))
            .expect("write");
        fs.fsync(f.ino).expect("fsync");
        files.push((name, f.ino, i));
    }
    // One file overwritten in place, one removed: both fsync'd.
    fs.write(&root, files[3].1, 100, &data(4096, 99))
        .expect("overwrite");
    fs.fsync(files[3].1).expect("fsync");
    fs.unlink(&root, d.ino, b"msg7").expect("unlink");
    fs.fsync(d.ino).expect("fsync dir");
    assert_eq!(fs.stats().commits, commits, "an fsync committed");
    assert_eq!(fs.stats().roll_forwards, 22);
    // Written after the last fsync: a crash may lose it.
    let late = fs.mknod(&root, d.ino, b"late", 0o644, 0).expect("late");
    fs.write(&root, late.ino, 0, b"late").expect("write");

    let crashed = crash_copy(&dev);
    drop(fs);
    assert_clean(&crashed);
    let mut fs = support::mount(&crashed);
    for (name, _, i) in &files {
        let found = fs.lookup(&root, d.ino, name.as_bytes());
        if name == "msg7" {
            assert!(found.is_err(), "the fsync'd unlink was lost");
            continue;
        }
        let a = found.unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut want = data(5000 + usize::from(*i) * 300, *i);
        if *i == 3 {
            want[100..100 + 4096].copy_from_slice(&data(4096, 99));
        }
        assert_eq!(fs.read(a.ino, 0, 1 << 20).expect("read"), want, "{name}");
    }
    fs.unmount().expect("unmount");
    assert_clean(&crashed);
}

/// A read-only mount of a crashed image serves the rolled-forward state
/// without writing; the image's superblock says it needs a build that
/// rolls forward, until a clean unmount.
#[test]
fn read_only_mounts_roll_forward_in_memory() {
    let dev = fresh();
    let root = Cred::root();
    let mut fs = mount_with(&dev, true);
    let f = fs.mknod(&root, Ino::ROOT, b"f", 0o644, 0).expect("create");
    fs.write(&root, f.ino, 0, &data(12345, 1)).expect("write");
    fs.fsync(f.ino).expect("fsync");
    assert!(fs.superblock().incompat & INCOMPAT_ROLL_FORWARD != 0);
    let crashed = crash_copy(&dev);
    drop(fs);
    let before = crashed.snapshot();
    let opts = MountOptions {
        read_only: true,
        ..MountOptions::default()
    };
    let mut ro = Filesystem::mount(crashed.clone() as Arc<dyn BlockDevice>, opts).expect("ro");
    let a = ro.lookup(&root, Ino::ROOT, b"f").expect("lookup");
    assert_eq!(ro.read(a.ino, 0, 20000).expect("read"), data(12345, 1));
    drop(ro);
    assert!(crashed.snapshot() == before, "a read-only mount wrote");
    let fs = support::mount(&crashed);
    fs.unmount().expect("unmount");
    let (copies, _) = pagelog_core::recovery::read_superblocks(&*crashed).expect("superblocks");
    for sb in copies {
        assert_eq!(
            sb.incompat & INCOMPAT_ROLL_FORWARD,
            0,
            "generation {}",
            sb.generation
        );
    }
}

/// A small fsync'd write costs a few pages (the data, its nodes, one
/// roll-forward page) where a commit writes the tables and a checkpoint
/// too.
#[test]
fn an_fsync_writes_fewer_pages_than_a_commit() {
    let per_fsync = |roll_forward: bool| {
        let dev = fresh();
        let root = Cred::root();
        let mut fs = mount_with(&dev, roll_forward);
        let f = fs.mknod(&root, Ino::ROOT, b"db", 0o644, 0).expect("create");
        fs.write(&root, f.ino, 0, &data(1 << 20, 0)).expect("write");
        fs.sync().expect("sync");
        let before = fs.device_pages_written();
        for i in 0..50u64 {
            let at = (i * 7919 % 256) * 4096;
            fs.write(&root, f.ino, at, &data(4096, i as u8))
                .expect("write");
            fs.fsync(f.ino).expect("fsync");
        }
        (fs.device_pages_written() - before) / 50
    };
    let (rolled, committed) = (per_fsync(true), per_fsync(false));
    assert!(
        rolled * 2 <= committed,
        "roll-forward {rolled} pages a fsync, commit {committed}"
    );
}

/// Where a record cannot be written (a snapshot is asked for), fsync
/// commits; either way what it covered is durable.
#[test]
fn fsync_commits_when_a_record_cannot_carry_the_change() {
    let dev = fresh();
    let root = Cred::root();
    let mut fs = mount_with(&dev, true);
    let f = fs.mknod(&root, Ino::ROOT, b"f", 0o644, 0).expect("create");
    fs.write(&root, f.ino, 0, &data(100_000, 5)).expect("write");
    fs.fsync(f.ino).expect("fsync");
    // A large write: more changes than a record should carry.
    fs.write(&root, f.ino, 0, &data(20 << 20, 6))
        .expect("big write");
    let commits = fs.stats().commits;
    fs.fsync(f.ino).expect("fsync");
    assert!(fs.stats().commits > commits, "a large fsync did not commit");
    let crashed = crash_copy(&dev);
    drop(fs);
    let mut fs = support::mount(&crashed);
    let a = fs.lookup(&root, Ino::ROOT, b"f").expect("lookup");
    assert_eq!(a.size, 20 << 20);
    assert_eq!(
        fs.read(a.ino, (20 << 20) - 4096, 4096).expect("read"),
        data(20 << 20, 6)[(20 << 20) - 4096..]
    );
    fs.unmount().expect("unmount");
    assert_clean(&crashed);
}

/// After a rollback puts another root in place, an fsync still makes what
/// it covers durable (the proptest model found this: the new root's node
/// address table did not record its changes, so the record missed them).
#[test]
fn fsync_after_a_rollback_survives_a_crash() {
    use pagelog_core::checkpoints::At;
    use pagelog_core::roots::RootName;
    let dev = fresh();
    let root = Cred::root();
    let mut fs = mount_with(&dev, true);
    fs.mknod(&root, Ino::ROOT, b"a", 0o644, 0).expect("create");
    fs.create_snapshot(b"before", None).expect("snapshot");
    fs.create_snapshot(b"kept", None).expect("keep the present");
    let source = RootName::Past(At::Snapshot(b"before".to_vec()));
    fs.rollback_onto(&source, b"kept").expect("rollback");
    let a = fs.lookup(&root, Ino::ROOT, b"a").expect("lookup");
    fs.write(&root, a.ino, 0, b"x").expect("write");
    fs.fsync(a.ino).expect("fsync");
    let crashed = crash_copy(&dev);
    drop(fs);
    let mut fs = support::mount(&crashed);
    let a = fs.lookup(&root, Ino::ROOT, b"a").expect("lookup");
    assert_eq!(fs.read(a.ino, 0, 10).expect("read"), b"x");
    fs.unmount().expect("unmount");
    assert_clean(&crashed);
}
