//! Retained checkpoints and snapshots, driven through the library: a
//! snapshot reads as the filesystem was; a checkpoint never marked is
//! mountable while the window keeps it; deleting a snapshot gives its
//! space back; the window gives way when room is short; the checker
//! accounts for every unit the past holds.

mod support;

use std::sync::Arc;

use pagelog_core::checkpoints::{At, RetentionOptions};
use pagelog_core::fsck::Level;
use pagelog_core::{BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions};

/// Retains every commit (no interval), window one hour.
fn every_commit() -> MountOptions {
    MountOptions {
        retention: RetentionOptions {
            protect_secs: None,
            interval_ns: 0,
            ..RetentionOptions::default()
        },
        ..MountOptions::default()
    }
}

fn mount_with(dev: &Arc<MemDevice>, opts: MountOptions) -> Filesystem {
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount")
}

fn mount_at(dev: &Arc<MemDevice>, at: At) -> pagelog_core::Result<Filesystem> {
    let opts = MountOptions {
        read_only: true,
        at: Some(at),
        ..MountOptions::default()
    };
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts)
}

fn write_file(fs: &mut Filesystem, name: &[u8], data: &[u8]) -> Ino {
    let root = Cred::root();
    let ino = match fs.lookup(&root, Ino::ROOT, name) {
        Ok(a) => a.ino,
        Err(_) => {
            fs.mknod(&root, Ino::ROOT, name, 0o644, 0)
                .expect("create")
                .ino
        }
    };
    fs.setattr(
        &root,
        ino,
        &pagelog_core::SetAttr {
            size: Some(0),
            ..Default::default()
        },
    )
    .expect("truncate");
    fs.write(&root, ino, 0, data).expect("write");
    ino
}

fn read_file(fs: &mut Filesystem, name: &[u8]) -> Option<Vec<u8>> {
    let a = fs.lookup(&Cred::root(), Ino::ROOT, name).ok()?;
    Some(fs.read(a.ino, 0, 1 << 26).expect("read"))
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn assert_clean(dev: &Arc<MemDevice>) {
    let r = support::fsck(dev, Level::Full);
    assert!(r.problems() == 0, "{:?}", r.findings);
}

#[test]
fn snapshot_reads_as_it_was_while_the_live_root_moves_on() {
    let dev = support::formatted(8192, 64);
    let mut fs = mount_with(&dev, every_commit());
    write_file(&mut fs, b"a", &pattern(1, 100_000));
    write_file(&mut fs, b"b", &pattern(2, 5_000));
    let no = fs.create_snapshot(b"before", None).expect("snapshot");
    write_file(&mut fs, b"a", &pattern(3, 70_000));
    fs.unlink(&Cred::root(), Ino::ROOT, b"b").expect("unlink");
    write_file(&mut fs, b"c", &pattern(4, 9_000));
    fs.unmount().expect("unmount");
    assert_clean(&dev);

    let mut past = mount_at(&dev, At::Snapshot(b"before".to_vec())).expect("mount snapshot");
    assert_eq!(past.mounted_checkpoint(), Some(no));
    assert_eq!(read_file(&mut past, b"a"), Some(pattern(1, 100_000)));
    assert_eq!(read_file(&mut past, b"b"), Some(pattern(2, 5_000)));
    assert_eq!(read_file(&mut past, b"c"), None);
    assert!(matches!(
        past.mknod(&Cred::root(), Ino::ROOT, b"x", 0o644, 0),
        Err(Error::ReadOnly)
    ));
    drop(past);
    let mut live = support::mount(&dev);
    assert_eq!(read_file(&mut live, b"a"), Some(pattern(3, 70_000)));
    assert_eq!(read_file(&mut live, b"b"), None);
    assert_eq!(read_file(&mut live, b"c"), Some(pattern(4, 9_000)));
    live.unmount().expect("unmount");
}

#[test]
fn a_checkpoint_never_marked_mounts_by_number_and_by_time() {
    let dev = support::formatted(8192, 64);
    let mut fs = mount_with(&dev, every_commit());
    write_file(&mut fs, b"f", &pattern(1, 20_000));
    fs.sync().expect("sync");
    let listed = fs.checkpoints();
    let then = listed.last().expect("a retained checkpoint").clone();
    assert!(then.snapshot.is_none() && then.protected);
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_file(&mut fs, b"f", &pattern(2, 30_000));
    fs.sync().expect("sync");
    fs.unmount().expect("unmount");

    let mut by_no = mount_at(&dev, At::Checkpoint(then.no)).expect("by number");
    assert_eq!(read_file(&mut by_no, b"f"), Some(pattern(1, 20_000)));
    let mut by_time = mount_at(&dev, At::Time(then.time_ns + 1)).expect("by time");
    assert_eq!(read_file(&mut by_time, b"f"), Some(pattern(1, 20_000)));
    let err = mount_at(&dev, At::Snapshot(b"nope".to_vec())).expect_err("no such snapshot");
    assert!(
        err.to_string().contains("no snapshot is named 'nope'"),
        "{err}"
    );
    let opts = MountOptions {
        at: Some(At::Checkpoint(then.no)),
        ..MountOptions::default()
    };
    let err = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect_err("rw past");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_clean(&dev);
}

#[test]
fn snapshots_of_the_past_are_kept_and_deleting_them_gives_space_back() {
    let dev = support::formatted(16384, 64);
    let mut fs = mount_with(&dev, every_commit());
    let empty = fs.statfs().bfree;
    let data = pattern(7, 8 << 20);
    write_file(&mut fs, b"big", &data);
    fs.sync().expect("sync");
    let cp = fs.checkpoints().last().expect("retained").no;
    write_file(&mut fs, b"big", &pattern(8, 8 << 20));
    fs.sync().expect("sync");
    // Mark the past (not the present) and delete everything.
    fs.create_snapshot(b"old", Some(cp))
        .expect("snapshot of the past");
    assert!(matches!(
        fs.create_snapshot(b"old", None),
        Err(Error::Exists)
    ));
    fs.unlink(&Cred::root(), Ino::ROOT, b"big").expect("unlink");
    fs.sync().expect("sync");
    let held = fs.cleaner_report().snapshot_pages;
    assert!(
        held >= 2048,
        "the snapshot holds the old 8 MiB alone: {held} pages"
    );
    assert!(
        fs.statfs().bfree + 2048 <= empty,
        "df counts what the snapshot holds as used"
    );
    fs.unmount().expect("unmount");
    assert_clean(&dev);
    let mut past = mount_at(&dev, At::Snapshot(b"old".to_vec())).expect("mount");
    assert_eq!(read_file(&mut past, b"big"), Some(data));
    drop(past);

    let mut fs = mount_with(&dev, every_commit());
    fs.delete_snapshot(b"old").expect("delete");
    assert!(fs.checkpoints().iter().all(|c| c.snapshot.is_none()));
    assert!(matches!(fs.delete_snapshot(b"old"), Err(Error::Refused(_))));
    // Plain checkpoints still hold the rest, but they give way: df says so.
    assert!(
        fs.statfs().bfree + 64 >= empty,
        "{} pages free after deleting the snapshot, {empty} when new",
        fs.statfs().bfree
    );
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

#[test]
fn the_window_gives_way_when_room_is_short() {
    // 32 MiB: fill most of it, rewrite it all twice; every commit is
    // retained and the window is an hour, so only pruning inside the
    // window makes room.
    let dev = support::formatted(8192, 64);
    let mut fs = mount_with(&dev, every_commit());
    let bytes = fs.statfs().bavail * 4096 * 6 / 10;
    for round in 0..3u8 {
        write_file(&mut fs, b"f", &pattern(round, bytes as usize));
        fs.sync().expect("sync");
    }
    assert_eq!(read_file(&mut fs, b"f"), Some(pattern(2, bytes as usize)));
    // A snapshot is a promise: it stays; the next rewrite cannot fit
    // beside it and fails cleanly, naming no damage.
    fs.create_snapshot(b"keep", None).expect("snapshot");
    let r = fs.lookup(&Cred::root(), Ino::ROOT, b"f").expect("f");
    let err = fs
        .write(&Cred::root(), r.ino, 0, &pattern(9, bytes as usize))
        .and_then(|_| fs.sync());
    assert!(matches!(err, Err(Error::NoSpace)), "{err:?}");
    fs.delete_snapshot(b"keep").expect("delete");
    write_file(&mut fs, b"f", &pattern(5, bytes as usize));
    fs.unmount().expect("unmount");
    assert_clean(&dev);
    let mut fs = support::mount(&dev);
    assert_eq!(read_file(&mut fs, b"f"), Some(pattern(5, bytes as usize)));
    fs.unmount().expect("unmount");
}

/// Rewrites a 2 MiB file eight times on a 32 MiB filesystem that retains
/// every commit for an hour, plain checkpoints allowed `share`% of the free
/// room, a snapshot taken after the first write. Returns the plain
/// checkpoints left and the pages they hold, with the free pages.
fn churn_with_history_share(share: u8) -> (usize, u64, u64) {
    let dev = support::formatted(8192, 64);
    let mut opts = every_commit();
    opts.retention.history_percent = share;
    let mut fs = mount_with(&dev, opts);
    let len = 2 << 20;
    write_file(&mut fs, b"f", &pattern(0, len));
    fs.create_snapshot(b"first", None).expect("snapshot");
    for round in 1..=8u8 {
        write_file(&mut fs, b"f", &pattern(round, len));
        fs.sync().expect("sync");
    }
    let plain = fs
        .checkpoints()
        .iter()
        .filter(|c| c.snapshot.is_none())
        .count();
    let held = fs.cleaner_report().checkpoint_pages;
    let free = fs.statfs().bfree;
    fs.unmount().expect("unmount");
    assert_clean(&dev);
    // The snapshot is a promise whatever the share.
    let mut past = mount_at(&dev, At::Snapshot(b"first".to_vec())).expect("mount snapshot");
    assert_eq!(read_file(&mut past, b"f"), Some(pattern(0, len)));
    (plain, held, free)
}

#[test]
fn plain_checkpoints_keep_to_their_share_of_the_free_room() {
    // Each rewrite leaves 512 pages of history; the last commit's deaths
    // are not yet weighed (the share is applied as a commit starts).
    let one_rewrite = 512 + 64;
    let (none, held, _) = churn_with_history_share(0);
    assert!(none <= 2, "share 0 keeps at most the newest: {none} kept");
    assert!(held <= one_rewrite, "{held} pages held with share 0");

    let (some, held, free) = churn_with_history_share(25);
    assert!(some > none, "share 25 keeps more than share 0: {some}");
    assert!(
        held <= free / 4 + one_rewrite,
        "{held} pages held, {free} free"
    );

    let (all, _, _) = churn_with_history_share(100);
    assert!(all > some, "share 100 keeps more than 25: {all} vs {some}");
}

#[test]
fn snapshot_names_are_checked() {
    let dev = support::formatted(4096, 64);
    let mut fs = support::mount(&dev);
    for bad in [&b""[..], b"a/b", &[b'x'; 128][..], b"nul\0"] {
        assert!(matches!(
            fs.create_snapshot(bad, None),
            Err(Error::Refused(_))
        ));
    }
    fs.create_snapshot(&[b'x'; 127], None).expect("127 bytes");
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

/// Reads `name` in view `id` of `fs`.
fn read_in_view(fs: &mut Filesystem, id: pagelog_core::ViewId, name: &[u8]) -> Option<Vec<u8>> {
    fs.in_view(id, |v| Ok(read_file(v, name)))
        .expect("view open")
}

#[test]
fn a_view_serves_a_snapshot_beside_the_live_root_while_it_moves_on_and_is_cleaned() {
    let dev = support::formatted(8192, 64);
    let mut fs = mount_with(&dev, every_commit());
    write_file(&mut fs, b"a", &pattern(1, 300_000));
    write_file(&mut fs, b"b", &pattern(2, 5_000));
    let no = fs.create_snapshot(b"backup", None).expect("snapshot");
    let (id, at) = fs
        .open_view(&At::Snapshot(b"backup".to_vec()))
        .expect("view");
    assert_eq!(at, no);
    // The live root moves on: overwrites, an unlink, a new file, commits
    // and cleaning passes that move what the snapshot holds.
    for round in 0..6u8 {
        write_file(&mut fs, b"a", &pattern(10 + round, 200_000));
        write_file(&mut fs, b"c", &pattern(20 + round, 50_000));
        fs.sync().expect("sync");
        fs.clean(support::model::clean_pass(true, false))
            .expect("clean");
    }
    fs.unlink(&Cred::root(), Ino::ROOT, b"b").expect("unlink");
    fs.sync().expect("sync");
    let moved = fs.cleaner_report().stats.pages_moved;
    assert!(moved > 0, "the cleaner moved nothing");
    assert_eq!(read_in_view(&mut fs, id, b"a"), Some(pattern(1, 300_000)));
    assert_eq!(read_in_view(&mut fs, id, b"b"), Some(pattern(2, 5_000)));
    assert_eq!(read_in_view(&mut fs, id, b"c"), None);
    assert_eq!(read_file(&mut fs, b"a"), Some(pattern(15, 200_000)));
    assert_eq!(read_file(&mut fs, b"b"), None);
    // The view cannot write, and the live root still can.
    let denied = fs.in_view(id, |v| v.mknod(&Cred::root(), Ino::ROOT, b"x", 0o644, 0));
    assert!(matches!(denied, Err(Error::ReadOnly)), "{denied:?}");
    write_file(&mut fs, b"d", &pattern(30, 1000));
    assert!(fs.checkpoints().iter().any(|c| c.no == no && c.mounted));
    // A mounted snapshot is not deleted; closed, it is.
    let err = fs.delete_snapshot(b"backup").expect_err("mounted");
    assert!(err.to_string().contains("is mounted"), "{err}");
    fs.close_view(id).expect("close");
    assert!(fs.in_view(id, |_| Ok(())).is_err());
    fs.delete_snapshot(b"backup").expect("delete");
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

#[test]
fn a_view_keeps_a_plain_checkpoint_past_its_window() {
    // A window of 0 s: every plain checkpoint is pruned at the commit
    // after it, except the one a view serves.
    let dev = support::formatted(8192, 64);
    let opts = MountOptions {
        retention: RetentionOptions {
            protect_secs: Some(0),
            interval_ns: 0,
            ..RetentionOptions::default()
        },
        ..MountOptions::default()
    };
    let mut fs = mount_with(&dev, opts);
    write_file(&mut fs, b"f", &pattern(1, 40_000));
    fs.sync().expect("sync");
    let then = fs.checkpoints().last().expect("retained").no;
    let (id, _) = fs.open_view(&At::Checkpoint(then)).expect("view");
    for round in 2..6u8 {
        std::thread::sleep(std::time::Duration::from_millis(2));
        write_file(&mut fs, b"f", &pattern(round, 40_000));
        fs.sync().expect("sync");
    }
    let listed: Vec<_> = fs.checkpoints().iter().map(|c| c.no).collect();
    assert!(listed.contains(&then), "{listed:?}");
    assert_eq!(read_in_view(&mut fs, id, b"f"), Some(pattern(1, 40_000)));
    fs.close_view(id).expect("close");
    std::thread::sleep(std::time::Duration::from_millis(2));
    write_file(&mut fs, b"f", &pattern(9, 40_000));
    fs.sync().expect("sync");
    assert!(!fs.checkpoints().iter().any(|c| c.no == then));
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

#[test]
fn a_branch_from_a_checkpoint_never_marked_diverges_without_touching_the_live_root() {
    let dev = support::formatted(8192, 64);
    let mut fs = mount_with(&dev, every_commit());
    write_file(&mut fs, b"a", &pattern(1, 100_000));
    write_file(&mut fs, b"b", &pattern(2, 5_000));
    fs.sync().expect("sync");
    let then = fs.checkpoints().last().expect("retained").no;
    write_file(&mut fs, b"a", &pattern(3, 60_000));
    write_file(&mut fs, b"c", &pattern(4, 7_000));
    fs.sync().expect("sync");

    let origin = fs
        .create_branch(b"exp", &At::Checkpoint(then))
        .expect("branch");
    assert_eq!(origin, then);
    assert!(matches!(
        fs.create_branch(b"exp", &At::Checkpoint(then)),
        Err(Error::Exists)
    ));
    let id = fs.open_branch(b"exp").expect("open");
    assert_eq!(read_in_view(&mut fs, id, b"a"), Some(pattern(1, 100_000)));
    assert_eq!(read_in_view(&mut fs, id, b"c"), None);
    fs.in_view(id, |b| {
        write_file(b, b"a", &pattern(7, 200_000));
        write_file(b, b"d", &pattern(8, 30_000));
        b.unlink(&Cred::root(), Ino::ROOT, b"b")
    })
    .expect("diverge");
    // The live root did not move; commits and cleaning run with both.
    for round in 0..4u8 {
        write_file(&mut fs, b"c", &pattern(20 + round, 40_000));
        fs.sync().expect("sync");
        fs.clean(support::model::clean_pass(true, false))
            .expect("clean");
    }
    assert_eq!(read_file(&mut fs, b"a"), Some(pattern(3, 60_000)));
    assert_eq!(read_file(&mut fs, b"b"), Some(pattern(2, 5_000)));
    assert_eq!(read_file(&mut fs, b"d"), None);
    assert_eq!(read_in_view(&mut fs, id, b"a"), Some(pattern(7, 200_000)));
    assert!(fs.branches().iter().any(|b| b.name == b"exp" && b.mounted));
    let err = fs.delete_branch(b"exp").expect_err("mounted");
    assert!(err.to_string().contains("is mounted"), "{err}");
    fs.close_view(id).expect("close");
    fs.unmount().expect("unmount");
    assert_clean(&dev);

    // Mounted again later: the branch is as it was left; its origin is
    // kept for it whatever the window says.
    let mut fs = mount_with(&dev, every_commit());
    let id = fs.open_branch(b"exp").expect("reopen");
    assert_eq!(read_in_view(&mut fs, id, b"a"), Some(pattern(7, 200_000)));
    assert_eq!(read_in_view(&mut fs, id, b"d"), Some(pattern(8, 30_000)));
    assert_eq!(read_in_view(&mut fs, id, b"b"), None);
    let err = fs.open_branch(b"exp").expect_err("twice");
    assert!(err.to_string().contains("already mounted"), "{err}");
    fs.close_view(id).expect("close");
    assert!(fs.checkpoints().iter().any(|c| c.no == then));

    // Deleting it gives back what only it held, as listed.
    let own = fs.branches()[0].exclusive_pages;
    assert!(own >= 50 + 8, "its data and nodes: {own}");
    let before = fs.statfs().bfree;
    fs.delete_branch(b"exp").expect("delete");
    fs.sync().expect("sync");
    let after = fs.statfs().bfree;
    assert!(
        after >= before + own,
        "free pages {before} -> {after}: the branch's own {own} pages come back"
    );
    assert!(fs.branches().is_empty());
    assert_eq!(read_file(&mut fs, b"a"), Some(pattern(3, 60_000)));
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

#[test]
fn rollback_keeps_the_present_and_every_newer_snapshot() {
    use pagelog_core::roots::RootName as Source;
    let dev = support::formatted(8192, 64);
    let mut fs = mount_with(&dev, every_commit());
    write_file(&mut fs, b"a", &pattern(1, 50_000));
    fs.create_snapshot(b"s1", None).expect("s1");
    write_file(&mut fs, b"a", &pattern(2, 80_000));
    write_file(&mut fs, b"b", &pattern(3, 20_000));
    fs.create_snapshot(b"s2", None).expect("s2");
    write_file(&mut fs, b"a", &pattern(4, 30_000));
    write_file(&mut fs, b"c", &pattern(5, 10_000));

    let (from, kept, _) = fs
        .rollback(&Source::Past(At::Snapshot(b"s1".to_vec())), None)
        .expect("rollback");
    assert!(kept.starts_with(b"pre-rollback-"), "{kept:?}");
    assert_eq!(read_file(&mut fs, b"a"), Some(pattern(1, 50_000)));
    assert_eq!(read_file(&mut fs, b"b"), None);
    assert_eq!(read_file(&mut fs, b"c"), None);
    let names: Vec<Vec<u8>> = fs
        .checkpoints()
        .into_iter()
        .filter_map(|c| c.snapshot)
        .collect();
    assert_eq!(names, [b"s1".to_vec(), b"s2".to_vec(), kept.clone()]);
    assert!(fs.checkpoints().iter().any(|c| c.no == from));
    // The live root moves on from there; the past reads as it was.
    write_file(&mut fs, b"d", &pattern(6, 40_000));
    fs.unmount().expect("unmount");
    assert_clean(&dev);
    let mut s2 = mount_at(&dev, At::Snapshot(b"s2".to_vec())).expect("s2");
    assert_eq!(read_file(&mut s2, b"a"), Some(pattern(2, 80_000)));
    assert_eq!(read_file(&mut s2, b"b"), Some(pattern(3, 20_000)));
    drop(s2);
    let mut pre = mount_at(&dev, At::Snapshot(kept.clone())).expect("kept");
    assert_eq!(read_file(&mut pre, b"a"), Some(pattern(4, 30_000)));
    assert_eq!(read_file(&mut pre, b"c"), Some(pattern(5, 10_000)));
    drop(pre);

    // Back to the kept present through a branch of it, written first.
    let mut fs = mount_with(&dev, every_commit());
    fs.create_branch(b"fix", &At::Snapshot(kept.clone()))
        .expect("branch");
    let id = fs.open_branch(b"fix").expect("open");
    fs.in_view(id, |b| {
        write_file(b, b"c", &pattern(7, 12_000));
        Ok(())
    })
    .expect("write in branch");
    let err = fs
        .rollback(&Source::Branch(b"fix".to_vec()), Some(b"before-fix"))
        .expect_err("a view is open");
    assert!(matches!(err, Error::Refused(_)), "{err}");
    fs.close_view(id).expect("close");
    fs.rollback(&Source::Branch(b"fix".to_vec()), Some(b"before-fix"))
        .expect("rollback to a branch");
    assert!(fs.branches().is_empty(), "the branch became the live root");
    assert_eq!(read_file(&mut fs, b"a"), Some(pattern(4, 30_000)));
    assert_eq!(read_file(&mut fs, b"c"), Some(pattern(7, 12_000)));
    assert_eq!(read_file(&mut fs, b"d"), None);
    fs.unmount().expect("unmount");
    assert_clean(&dev);

    // Deleting every snapshot gives the space back, and what remains
    // checks clean.
    let mut fs = support::mount(&dev);
    let before = fs.statfs().bfree;
    for name in [&b"s1"[..], b"s2", &kept, b"before-fix"] {
        fs.delete_snapshot(name).expect("delete");
    }
    let after = fs.statfs().bfree;
    assert!(after > before + 40, "free pages {before} -> {after}");
    assert_eq!(read_file(&mut fs, b"c"), Some(pattern(7, 12_000)));
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

#[test]
fn diff_names_what_changed_between_two_snapshots() {
    use pagelog_core::diff::ChangeKind::{Created, Deleted, Modified, Renamed};
    use pagelog_core::roots::RootName;
    let dev = support::formatted(16384, 64);
    let mut fs = support::mount(&dev);
    let root = Cred::root();
    let d1 = fs.mkdir(&root, Ino::ROOT, b"d1", 0o755).expect("d1").ino;
    let d2 = fs.mkdir(&root, Ino::ROOT, b"d2", 0o755).expect("d2").ino;
    let mut files = Vec::new();
    for i in 0..300u32 {
        let dir = if i % 2 == 0 { d1 } else { d2 };
        let name = format!("f{i}");
        let ino = fs
            .mknod(&root, dir, name.as_bytes(), 0o644, 0)
            .expect("create")
            .ino;
        fs.write(&root, ino, 0, &pattern(i as u8, 3000))
            .expect("write");
        files.push((dir, name, ino));
    }
    fs.create_snapshot(b"a", None).expect("a");
    let (_, _, f4) = &files[4];
    fs.write(&root, *f4, 100, b"changed").expect("modify");
    let new = fs.mknod(&root, d2, b"new", 0o644, 0).expect("new").ino;
    fs.write(&root, new, 0, b"hello").expect("write");
    fs.unlink(&root, d1, b"f6").expect("unlink");
    fs.rename(&root, d1, b"f8", d2, b"moved", pagelog_core::RenameFlags(0))
        .expect("rename");
    fs.mkdir(&root, Ino::ROOT, b"d3", 0o755).expect("d3");
    let (_, _, f10) = &files[10];
    fs.setattr(
        &root,
        *f10,
        &pagelog_core::SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
    )
    .expect("chmod");
    let (_, _, f12) = &files[12];
    fs.link(&root, *f12, d2, b"link12").expect("link");
    fs.create_snapshot(b"b", None).expect("b");

    let a = RootName::Past(At::Snapshot(b"a".to_vec()));
    let b = RootName::Past(At::Snapshot(b"b".to_vec()));
    let changes = fs.diff(&a, &b).expect("diff");
    let got: Vec<(char, String, Option<String>)> = changes
        .iter()
        .map(|c| {
            (
                c.kind.mark(),
                String::from_utf8_lossy(&c.path).into_owned(),
                c.to.as_ref()
                    .map(|t| String::from_utf8_lossy(t).into_owned()),
            )
        })
        .collect();
    let want = |k: pagelog_core::diff::ChangeKind, p: &str, to: Option<&str>| {
        (k.mark(), p.to_string(), to.map(str::to_string))
    };
    for w in [
        want(Modified, "/", None),
        want(Modified, "/d1", None),
        want(Modified, "/d2", None),
        want(Modified, "/d1/f4", None),
        want(Modified, "/d1/f10", None),
        want(Created, "/d2/new", None),
        want(Created, "/d3", None),
        want(Created, "/d2/link12", None),
        want(Deleted, "/d1/f6", None),
        want(Renamed, "/d1/f8", Some("/d2/moved")),
    ] {
        assert!(got.contains(&w), "{w:?} missing from {got:?}");
    }
    assert_eq!(got.len(), 10, "nothing else changed: {got:?}");
    // The other way round: the opposite marks.
    let back = fs.diff(&b, &a).expect("diff back");
    assert!(back
        .iter()
        .any(|c| c.kind == Deleted && c.path == b"/d2/new"));
    assert!(back
        .iter()
        .any(|c| c.kind == Created && c.path == b"/d1/f6"));
    // Against itself: nothing.
    assert!(fs.diff(&a, &a).expect("same").is_empty());
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}
