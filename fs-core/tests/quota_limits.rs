//! Quota limits in the core, driven directly: a hard limit is met at the
//! exact page and inode, a write across it is cut short at the last page
//! that fits, fresh dirty pages count before writeback, a soft limit holds
//! once its grace time is over (on the filesystem's clock), a chown that
//! would take an owner or group over is refused, CAP_SYS_RESOURCE exceeds
//! limits, and limits and grace times survive a remount and check clean.

use std::sync::Arc;

use pagelog_core::fs::{FsXattr, FS_XFLAG_PROJINHERIT};
use pagelog_core::fsck::Level;
use pagelog_core::perm::cap;
use pagelog_core::usage::{IdKind, QuotaId, Usage};
use pagelog_core::{Cred, Error, Filesystem, Ino, Limits, MemDevice, QuotaLine, SetAttr};

mod support;
use support::{formatted, mount};

const PS: usize = 4096;

fn user(id: u32) -> QuotaId {
    QuotaId {
        kind: IdKind::User,
        id,
    }
}

fn group(id: u32) -> QuotaId {
    QuotaId {
        kind: IdKind::Group,
        id,
    }
}

/// A fresh filesystem whose root directory every user may write in.
fn setup() -> (Arc<MemDevice>, Filesystem) {
    let dev = formatted(16384, 512);
    let mut fs = mount(&dev);
    let set = SetAttr {
        mode: Some(0o777),
        ..Default::default()
    };
    fs.setattr(&Cred::root(), Ino::ROOT, &set).expect("chmod");
    (dev, fs)
}

fn limit(fs: &mut Filesystem, id: QuotaId, limits: Limits) {
    fs.set_limits(id, limits).expect("set limits");
}

/// The report's line of `id`, if it has one.
fn line_of(fs: &mut Filesystem, id: QuotaId) -> Option<QuotaLine> {
    let lines = fs.quota_report(id.kind).expect("report").lines;
    lines.into_iter().find(|l| l.id == id)
}

fn used(fs: &mut Filesystem, id: QuotaId) -> Usage {
    line_of(fs, id).map_or(Usage::default(), |l| l.used)
}

fn file(fs: &mut Filesystem, cred: &Cred, name: &str) -> Ino {
    fs.create(cred, Ino::ROOT, name.as_bytes(), 0o644, 0)
        .expect("create")
        .ino
}

fn check_clean(dev: &Arc<MemDevice>) {
    let report = support::fsck(dev, Level::Full);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn a_hard_page_limit_is_met_at_the_exact_page_and_a_write_across_it_is_cut_short() {
    let (dev, mut fs) = setup();
    let alice = Cred::user(1001, 1001);
    limit(
        &mut fs,
        user(1001),
        Limits {
            page_hard: Some(10),
            ..Limits::default()
        },
    );
    let f = file(&mut fs, &alice, "a");
    // Nine pages, then a write of three pages from page 8: page 8 is
    // dirty already and page 9 fits, page 10 does not.
    assert_eq!(fs.write(&alice, f, 0, &[1; 9 * PS]).expect("write"), 9 * PS);
    let n = fs
        .write(&alice, f, 8 * PS as u64 + 100, &[2; 3 * PS])
        .expect("short write");
    assert_eq!(n, 2 * PS - 100, "up to the end of page 9");
    assert_eq!(used(&mut fs, user(1001)).pages, 10, "fresh pages count");
    assert!(matches!(
        fs.write(&alice, f, 10 * PS as u64, b"x"),
        Err(Error::QuotaExceeded)
    ));
    // Overwriting what is there takes nothing new.
    fs.write(&alice, f, 0, &[3; 10 * PS]).expect("overwrite");
    // After writeback the pages are the inode's: still the limit.
    fs.sync().expect("sync");
    assert_eq!(used(&mut fs, user(1001)).pages, 10);
    assert!(matches!(
        fs.write(&alice, f, 20 * PS as u64, b"x"),
        Err(Error::QuotaExceeded)
    ));
    assert!(matches!(
        fs.fallocate(&alice, f, 10 * PS as u64, PS as u64, 0),
        Err(Error::QuotaExceeded)
    ));
    assert_eq!(
        fs.getattr(f).expect("stat").size,
        10 * PS as u64,
        "unchanged"
    );
    // At the limit an empty directory may still be made (it adds no
    // page), as on ext4.
    let d = fs.mkdir(&alice, Ino::ROOT, b"d", 0o755).expect("mkdir").ino;
    // CAP_SYS_RESOURCE exceeds limits.
    let mighty = Cred {
        caps: cap::SYS_RESOURCE,
        ..alice.clone()
    };
    fs.write(&mighty, f, 10 * PS as u64, b"y")
        .expect("with the capability");
    assert_eq!(used(&mut fs, user(1001)).pages, 11);
    // Over it, no name is added to a directory charged to alice.
    assert!(matches!(
        fs.link(&alice, f, d, b"g"),
        Err(Error::QuotaExceeded)
    ));
    fs.link(&alice, f, Ino::ROOT, b"g")
        .expect("root's directory");
    // Truncating gives room back.
    let cut = SetAttr {
        size: Some(PS as u64),
        ..Default::default()
    };
    fs.setattr(&alice, f, &cut).expect("truncate");
    fs.write(&alice, f, PS as u64, &[4; 9 * PS])
        .expect("room again");
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

#[test]
fn a_hard_inode_limit_is_met_at_the_exact_inode_whatever_makes_it() {
    let (dev, mut fs) = setup();
    let bob = Cred::user(1002, 1002);
    limit(
        &mut fs,
        user(1002),
        Limits {
            inode_hard: Some(4),
            ..Limits::default()
        },
    );
    file(&mut fs, &bob, "f");
    fs.mkdir(&bob, Ino::ROOT, b"d", 0o755).expect("mkdir");
    fs.symlink(&bob, Ino::ROOT, b"l", b"f").expect("symlink");
    fs.mknod(&bob, Ino::ROOT, b"p", 0o010644, 0).expect("fifo");
    assert_eq!(used(&mut fs, user(1002)).inodes, 4);
    for r in [
        fs.create(&bob, Ino::ROOT, b"g", 0o644, 0).map(|_| ()),
        fs.mkdir(&bob, Ino::ROOT, b"e", 0o755).map(|_| ()),
        fs.symlink(&bob, Ino::ROOT, b"m", b"f").map(|_| ()),
        fs.mknod(&bob, Ino::ROOT, b"q", 0o010644, 0).map(|_| ()),
    ] {
        assert!(matches!(r, Err(Error::QuotaExceeded)), "{r:?}");
    }
    assert!(matches!(
        fs.lookup(&bob, Ino::ROOT, b"g"),
        Err(Error::NotFound)
    ));
    // Another user is not limited by bob's quota.
    file(&mut fs, &Cred::user(1003, 1003), "carol");
    fs.unlink(&bob, Ino::ROOT, b"p").expect("unlink");
    file(&mut fs, &bob, "g");
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

#[test]
fn a_soft_limit_holds_once_its_grace_time_is_over() {
    let (dev, mut fs) = setup();
    let alice = Cred::user(1001, 1001);
    fs.set_grace(IdKind::User, 100, 100).expect("grace");
    limit(
        &mut fs,
        user(1001),
        Limits {
            page_soft: Some(4),
            page_hard: Some(100),
            ..Limits::default()
        },
    );
    fs.set_clock(Some(1_000_000));
    let f = file(&mut fs, &alice, "a");
    fs.write(&alice, f, 0, &[1; 6 * PS])
        .expect("over soft, in grace");
    let line = |fs: &mut Filesystem| line_of(fs, user(1001)).expect("line");
    assert_eq!(line(&mut fs).record.page_grace_end, 1_000_100);
    fs.set_clock(Some(1_000_099));
    fs.write(&alice, f, 6 * PS as u64, &[1; PS])
        .expect("still in grace");
    fs.sync().expect("sync");
    fs.set_clock(Some(1_000_100));
    assert!(matches!(
        fs.write(&alice, f, 7 * PS as u64, &[1; PS]),
        Err(Error::QuotaExceeded)
    ));
    assert!(
        fs.create(&alice, Ino::ROOT, b"b", 0o644, 0).is_ok(),
        "the inode count has no soft limit"
    );
    // Back within the soft limit, the grace time ends; past it again, a
    // new one starts.
    let cut = SetAttr {
        size: Some(2 * PS as u64),
        ..Default::default()
    };
    fs.setattr(&alice, f, &cut).expect("truncate");
    fs.sync().expect("sync");
    assert_eq!(line(&mut fs).record.page_grace_end, 0);
    fs.write(&alice, f, 2 * PS as u64, &[1; 4 * PS])
        .expect("grace anew");
    assert_eq!(line(&mut fs).record.page_grace_end, 1_000_200);
    // Back within, before any commit clears the grace end, and past its
    // end: passing the soft limit again starts a new grace time.
    fs.set_clock(Some(1_000_300));
    fs.setattr(&alice, f, &cut).expect("truncate");
    fs.write(&alice, f, 2 * PS as u64, &[1; 4 * PS])
        .expect("grace anew again");
    assert_eq!(line(&mut fs).record.page_grace_end, 1_000_400);
    // Limits and grace periods past what the records can count are
    // refused.
    let huge = Limits {
        page_hard: Some(u64::MAX),
        ..Limits::default()
    };
    assert!(matches!(
        fs.set_limits(user(1001), huge),
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        fs.set_grace(IdKind::User, u64::MAX, 1),
        Err(Error::Refused(_))
    ));
    fs.unmount().expect("unmount");
    let mut fs = mount(&dev);
    let l = line(&mut fs);
    assert_eq!(
        (
            l.record.page_soft,
            l.record.page_hard,
            l.record.page_grace_end
        ),
        (4, 100, 1_000_400),
        "limits and grace kept"
    );
    assert_eq!(fs.grace(IdKind::User).expect("grace"), (100, 100));
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

#[test]
fn a_chown_that_would_take_a_group_over_its_limit_is_refused() {
    let (dev, mut fs) = setup();
    let alice = Cred {
        groups: vec![2000],
        ..Cred::user(1001, 1001)
    };
    limit(
        &mut fs,
        group(2000),
        Limits {
            page_hard: Some(3),
            ..Limits::default()
        },
    );
    let f = file(&mut fs, &alice, "a");
    fs.write(&alice, f, 0, &[1; 5 * PS]).expect("write");
    let chgrp = SetAttr {
        gid: Some(2000),
        ..Default::default()
    };
    assert!(matches!(
        fs.setattr(&alice, f, &chgrp),
        Err(Error::QuotaExceeded)
    ));
    assert_eq!(fs.getattr(f).expect("stat").gid, 1001, "unchanged");
    // Root exceeds limits; then the group is over, and a write by anyone
    // to a file of the group is refused.
    fs.setattr(&Cred::root(), f, &chgrp).expect("root may");
    assert_eq!(used(&mut fs, group(2000)).pages, 5);
    assert!(matches!(
        fs.write(&alice, f, 5 * PS as u64, b"x"),
        Err(Error::QuotaExceeded)
    ));
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

fn project(id: u32) -> QuotaId {
    QuotaId {
        kind: IdKind::Project,
        id,
    }
}

#[test]
fn a_project_is_handed_down_kept_apart_and_limited() {
    let (dev, mut fs) = setup();
    let root = Cred::root();
    let alice = Cred::user(1001, 1001);
    let p = fs.mkdir(&alice, Ino::ROOT, b"p", 0o777).expect("mkdir").ino;
    let inherit = FsXattr {
        xflags: FS_XFLAG_PROJINHERIT,
        projid: 42,
    };
    assert!(
        matches!(fs.set_fsxattr(&alice, p, inherit), Err(Error::Perm)),
        "only root changes a project id"
    );
    fs.set_fsxattr(&root, p, inherit).expect("chattr +P -p 42");
    // Handed down through mkdir, with the flag.
    let sub = fs.mkdir(&alice, p, b"sub", 0o777).expect("mkdir").ino;
    let f = fs.create(&alice, sub, b"f", 0o644, 0).expect("create").ino;
    assert_eq!(fs.fsxattr(sub).expect("get"), inherit);
    assert_eq!(fs.fsxattr(f).expect("get").projid, 42);
    assert_eq!(
        fs.fsxattr(f).expect("get").xflags,
        0,
        "a file does not hand down"
    );
    // A name across the boundary is refused both ways in (EXDEV), not out.
    let out = fs
        .create(&alice, Ino::ROOT, b"out", 0o644, 0)
        .expect("create")
        .ino;
    let none = pagelog_core::RenameFlags(0);
    assert!(matches!(
        fs.rename(&alice, Ino::ROOT, b"out", sub, b"in", none),
        Err(Error::CrossDevice)
    ));
    assert!(matches!(
        fs.link(&alice, out, sub, b"in"),
        Err(Error::CrossDevice)
    ));
    fs.rename(&alice, sub, b"f", Ino::ROOT, b"f", none)
        .expect("out of the project is allowed");
    assert_eq!(fs.fsxattr(f).expect("get").projid, 42, "keeps its project");
    fs.rename(&alice, Ino::ROOT, b"f", sub, b"f", none)
        .expect("back into its own project");
    // The project's limit holds for everyone writing in it (its
    // directories' index pages count too).
    let g = fs.create(&root, sub, b"g", 0o644, 0).expect("create").ino;
    let base = used(&mut fs, project(42)).pages as u64;
    limit(
        &mut fs,
        project(42),
        Limits {
            page_hard: Some(base + 3),
            ..Limits::default()
        },
    );
    let n = fs.write(&alice, f, 0, &[1; 4 * PS]).expect("short write");
    assert_eq!(n, 3 * PS, "three pages fit");
    let bob = Cred::user(1002, 1002);
    let chown = SetAttr {
        uid: Some(1002),
        ..Default::default()
    };
    fs.setattr(&root, g, &chown).expect("chown");
    assert!(matches!(
        fs.write(&bob, g, 0, b"x"),
        Err(Error::QuotaExceeded)
    ));
    // df of the directory says the project's limit and usage.
    let st = fs.statfs_at(p);
    assert_eq!((st.blocks, st.bfree), (base + 3, 0));
    assert!(fs.statfs_at(Ino::ROOT).blocks > base + 3);
    assert_eq!(used(&mut fs, project(42)).inodes, 4, "p, sub, f, g");
    // Moving a file to another project moves its usage.
    let x = FsXattr {
        xflags: 0,
        projid: 7,
    };
    fs.set_fsxattr(&root, f, x).expect("chattr -p 7");
    assert_eq!(used(&mut fs, project(42)).pages as u64, base);
    assert_eq!(used(&mut fs, project(7)).pages, 3);
    fs.unmount().expect("unmount");
    check_clean(&dev);
}

#[test]
fn a_snapshot_keeps_its_usage_and_a_branch_has_its_own() {
    use pagelog_core::checkpoints::At;
    let (dev, mut fs) = setup();
    let alice = Cred::user(1001, 1001);
    let f = file(&mut fs, &alice, "a");
    fs.write(&alice, f, 0, &[1; 8 * PS]).expect("write");
    fs.release(f).expect("close");
    fs.create_snapshot(b"before", None).expect("snapshot");
    fs.unlink(&alice, Ino::ROOT, b"a").expect("unlink");
    fs.sync().expect("sync");
    assert_eq!(used(&mut fs, user(1001)), Usage::default(), "live");
    // The snapshot's usage is frozen with it.
    let (view, _) = fs
        .open_view(&At::Snapshot(b"before".to_vec()))
        .expect("view");
    let then = fs.in_view(view, |v| Ok(used(v, user(1001))));
    let eight = Usage {
        pages: 8,
        inodes: 1,
    };
    assert_eq!(then.expect("report"), eight);
    fs.close_view(view).expect("close");
    // A branch from it counts its own writes, not the live tree's.
    fs.create_branch(b"b", &At::Snapshot(b"before".to_vec()))
        .expect("branch");
    let b = fs.open_branch(b"b").expect("open branch");
    fs.in_view(b, |v| {
        let g = v.create(&alice, Ino::ROOT, b"g", 0o644, 0)?.ino;
        v.write(&alice, g, 0, &[2; 2 * PS]).map(|_| ())
    })
    .expect("write in the branch");
    let in_branch = fs.in_view(b, |v| Ok(used(v, user(1001))));
    let ten = Usage {
        pages: 10,
        inodes: 2,
    };
    assert_eq!(in_branch.expect("report"), ten);
    fs.close_view(b).expect("close");
    assert_eq!(
        used(&mut fs, user(1001)),
        Usage::default(),
        "live untouched"
    );
    // Deleting the branch and the snapshot changes no one's usage.
    fs.delete_branch(b"b").expect("delete branch");
    fs.delete_snapshot(b"before").expect("delete");
    assert_eq!(used(&mut fs, user(1001)), Usage::default());
    fs.unmount().expect("unmount");
    check_clean(&dev);
}
