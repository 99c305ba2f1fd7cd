//! A filesystem made in memory keeps files, directories and attributes
//! across unmount and mount.

use std::sync::Arc;

use pagelog_core::{BlockDevice, Cred, Filesystem, Ino, MemDevice, MountOptions};

mod support;
use support::mount;

fn fresh(pages: u64) -> Arc<MemDevice> {
    support::formatted(pages, 64)
}

#[test]
fn files_survive_remount() {
    let dev = fresh(8192);
    let root = Cred::root();
    let mut fs = mount(&dev);
    let d = fs.mkdir(&root, Ino::ROOT, b"dir", 0o755).expect("mkdir");
    let f = fs.mknod(&root, d.ino, b"file", 0o644, 0).expect("mknod");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs.write(&root, f.ino, 0, &data).expect("write");
    assert_eq!(fs.read(f.ino, 0, 300_000).expect("read"), data);
    fs.sync().expect("sync");
    assert_eq!(fs.read(f.ino, 1000, 5000).expect("read"), data[1000..6000]);
    fs.symlink(&root, Ino::ROOT, b"link", b"dir/file")
        .expect("symlink");
    fs.unmount().expect("unmount");

    let mut fs = mount(&dev);
    let d2 = fs.lookup(&root, Ino::ROOT, b"dir").expect("lookup dir");
    assert_eq!(d2.ino, d.ino);
    let f2 = fs.lookup(&root, d2.ino, b"file").expect("lookup file");
    assert_eq!(f2.size, 300_000);
    assert_eq!(fs.read(f2.ino, 0, 400_000).expect("read"), data);
    let l = fs.lookup(&root, Ino::ROOT, b"link").expect("lookup link");
    assert_eq!(fs.readlink(l.ino).expect("readlink"), b"dir/file");
    let mut names = Vec::new();
    fs.readdir(Ino::ROOT, 0, &mut |e| {
        names.push(String::from_utf8_lossy(&e.name).into_owned());
        true
    })
    .expect("readdir");
    names.sort();
    assert_eq!(names, vec![".", "..", "dir", "link"]);
    fs.unmount().expect("unmount");
}

#[test]
fn many_entries_and_unlink() {
    let dev = fresh(16384);
    let root = Cred::root();
    let mut fs = mount(&dev);
    for i in 0..3000 {
        fs.mknod(&root, Ino::ROOT, format!("f{i}").as_bytes(), 0o644, 0)
            .expect("create");
    }
    fs.sync().expect("sync");
    for i in (0..3000).step_by(2) {
        fs.unlink(&root, Ino::ROOT, format!("f{i}").as_bytes())
            .expect("unlink");
    }
    fs.unmount().expect("unmount");
    let mut fs = mount(&dev);
    let mut count = 0;
    fs.readdir(Ino::ROOT, 2, &mut |_| {
        count += 1;
        true
    })
    .expect("readdir");
    assert_eq!(count, 1500);
    assert!(fs.lookup(&root, Ino::ROOT, b"f1").is_ok());
    assert!(fs.lookup(&root, Ino::ROOT, b"f2").is_err());
    fs.unmount().expect("unmount");
}

#[test]
fn reads_update_atime_as_the_policy_says() {
    use pagelog_core::fs::AtimeMode;
    use pagelog_core::inode::Timespec;
    use pagelog_core::{SetAttr, TimeSet};
    let dev = fresh(4096);
    let root = Cred::root();
    for (policy, old_atime_updates, fresh_atime_updates) in [
        (AtimeMode::Relative, true, false),
        (AtimeMode::Always, true, true),
        (AtimeMode::Never, false, false),
    ] {
        let opts = MountOptions {
            atime: policy,
            ..MountOptions::default()
        };
        let mut fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount");
        let name = format!("{policy:?}");
        let f = fs
            .mknod(&root, Ino::ROOT, name.as_bytes(), 0o644, 0)
            .expect("create");
        fs.write(&root, f.ino, 0, b"x").expect("write");
        // atime older than mtime: relatime updates it.
        let old = Timespec { sec: 1000, nsec: 0 };
        fs.setattr(
            &root,
            f.ino,
            &SetAttr {
                atime: Some(TimeSet::At(old)),
                ..SetAttr::default()
            },
        )
        .expect("setattr");
        fs.read(f.ino, 0, 1).expect("read");
        assert_eq!(
            fs.getattr(f.ino).expect("getattr").atime != old,
            old_atime_updates,
            "{policy:?}, old atime"
        );
        // atime newer than mtime and ctime, less than a day old: only strictatime updates it.
        let future = Timespec {
            sec: Timespec::now().sec + 3600,
            nsec: 0,
        };
        fs.setattr(
            &root,
            f.ino,
            &SetAttr {
                atime: Some(TimeSet::At(future)),
                ..SetAttr::default()
            },
        )
        .expect("setattr");
        let ctime = fs.getattr(f.ino).expect("getattr").ctime;
        assert!(ctime < future);
        fs.read(f.ino, 0, 1).expect("read");
        assert_eq!(
            fs.getattr(f.ino).expect("getattr").atime != future,
            fresh_atime_updates,
            "{policy:?}, recent atime"
        );
        fs.unmount().expect("unmount");
    }
}

/// A directory of 100,000 entries: every name found, half removed, the
/// rest intact after remount; the index stays shallow.
#[test]
fn hundred_thousand_entries() {
    let dev = fresh(65536);
    let root = Cred::root();
    let mut fs = mount(&dev);
    let d = fs.mkdir(&root, Ino::ROOT, b"big", 0o755).expect("mkdir");
    let n = 100_000u32;
    for i in 0..n {
        fs.mknod(&root, d.ino, format!("name-{i:06}").as_bytes(), 0o644, 0)
            .expect("create");
    }
    for i in (0..n).step_by(7) {
        assert!(
            fs.lookup(&root, d.ino, format!("name-{i:06}").as_bytes())
                .is_ok(),
            "name {i}"
        );
    }
    for i in (0..n).step_by(2) {
        fs.unlink(&root, d.ino, format!("name-{i:06}").as_bytes())
            .expect("unlink");
    }
    let a = fs.getattr(d.ino).expect("getattr");
    // Leaves are not merged on unlink (as ext4's htree), so the index keeps
    // the pages 100,000 names needed: about one page per 70 to 140 names.
    assert!(
        a.size / 4096 < 1600,
        "index of {} pages for 100,000 names",
        a.size / 4096
    );
    fs.unmount().expect("unmount");
    let mut fs = mount(&dev);
    let mut count = 0;
    fs.readdir(d.ino, 2, &mut |_| {
        count += 1;
        true
    })
    .expect("readdir");
    assert_eq!(count, n / 2);
    assert!(fs.lookup(&root, d.ino, b"name-000001").is_ok());
    assert!(matches!(
        fs.lookup(&root, d.ino, b"name-000002"),
        Err(pagelog_core::Error::NotFound)
    ));
    fs.unmount().expect("unmount");
}

#[test]
fn link_count_limit_is_emlink() {
    use pagelog_core::fs::LINK_MAX;
    let dev = fresh(16384);
    let root = Cred::root();
    let mut fs = mount(&dev);
    let f = fs.mknod(&root, Ino::ROOT, b"f", 0o644, 0).expect("create");
    let d = fs.mkdir(&root, Ino::ROOT, b"links", 0o755).expect("mkdir");
    for i in 1..LINK_MAX {
        fs.link(&root, f.ino, d.ino, format!("{i}").as_bytes())
            .expect("link");
    }
    assert_eq!(fs.getattr(f.ino).expect("getattr").nlink, LINK_MAX);
    assert!(matches!(
        fs.link(&root, f.ino, d.ino, b"one-more"),
        Err(pagelog_core::Error::TooManyLinks)
    ));
    fs.unmount().expect("unmount");
}

/// Filling the filesystem ends in ENOSPC, not a panic; everything written
/// before stays readable, the image still commits and mounts, and deleting
/// everything gives the space back.
#[test]
fn full_filesystem_is_enospc_and_recovers() {
    let dev = fresh(2048);
    let root = Cred::root();
    let mut fs = mount(&dev);
    let chunk: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let mut written = Vec::new();
    let err = loop {
        let name = format!("f{}", written.len());
        let f = match fs.mknod(&root, Ino::ROOT, name.as_bytes(), 0o644, 0) {
            Ok(f) => f,
            Err(e) => break e,
        };
        match fs.write(&root, f.ino, 0, &chunk) {
            Ok(_) => written.push(name),
            Err(e) => break e,
        }
        assert!(written.len() < 1000, "never ran out of space");
    };
    assert!(matches!(err, pagelog_core::Error::NoSpace), "got {err:?}");
    assert!(written.len() > 20, "only {} files fit", written.len());
    fs.sync().expect("commit on a full filesystem");
    fs.unmount().expect("unmount");
    let mut fs = mount(&dev);
    for name in &written {
        let a = fs
            .lookup(&root, Ino::ROOT, name.as_bytes())
            .expect("lookup");
        assert_eq!(fs.read(a.ino, 0, 200_000).expect("read"), chunk, "{name}");
    }
    let _ = fs.unlink(&root, Ino::ROOT, format!("f{}", written.len()).as_bytes());
    for name in &written {
        fs.unlink(&root, Ino::ROOT, name.as_bytes())
            .expect("unlink on a full filesystem");
    }
    fs.sync().expect("sync");
    fs.sync().expect("sync");
    let f = fs
        .mknod(&root, Ino::ROOT, b"again", 0o644, 0)
        .expect("create");
    for i in 0..written.len() / 2 {
        fs.write(&root, f.ino, (i * chunk.len()) as u64, &chunk)
            .expect("space came back");
    }
    fs.unmount().expect("unmount");
}

/// Pages a mount would walk after a crash now: `fs` is dropped without
/// unmounting, after a stream of writes with no fsync and no commit timer.
fn log_left_after_a_stream_of_writes(log_limit: u64) -> u64 {
    let dev = fresh(16384);
    let opts = MountOptions {
        dirty_limit: 64 << 10,
        log_limit,
        commit_interval: std::time::Duration::from_secs(3600),
        ..MountOptions::default()
    };
    let mut fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount");
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"stream", 0o644, 0)
        .expect("mknod");
    let chunk = vec![0x5Au8; 128 << 10];
    for i in 0..64u64 {
        fs.write(&root, f.ino, i * (128 << 10), &chunk)
            .expect("write");
    }
    drop(fs); // a crash
    let rec = pagelog_core::recovery::recover(&*dev, false, None).expect("recover");
    rec.pages_walked
}

#[test]
fn a_long_stream_of_writes_keeps_the_log_to_recover_short() {
    // 8 MiB written: with a 1 MiB limit, a crash leaves at most about the
    // limit plus one writeback (and summary pages) to walk; with no limit,
    // nearly all of it.
    let bounded = log_left_after_a_stream_of_writes(1 << 20);
    assert!(bounded * 4096 < (1 << 20) + (192 << 10), "{bounded} pages");
    let unbounded = log_left_after_a_stream_of_writes(u64::MAX);
    assert!(unbounded * 4096 > 7 << 20, "{unbounded} pages");
}
