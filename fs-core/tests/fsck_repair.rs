//! Repair mends what the check finds: one test per finding type, each
//! breaking exactly that thing, repairing, checking clean and verifying
//! that every file readable before the repair reads the same after it.

use std::collections::BTreeMap;
use std::sync::Arc;

use pagelog_core::fsck::repair::{self, Mode, Outcome};
use pagelog_core::fsck::{self, Fix, Kind, Level, Numbers, Severity};
use pagelog_core::ids::CheckpointNo;
use pagelog_core::rewind;
use pagelog_core::{BlockDevice, Cred, Filesystem, Ino, MemDevice, MountOptions, PageAddr};

mod support;
use support::mount;

struct Image {
    dev: Arc<MemDevice>,
    file: Ino,
    other: Ino,
    dir: Ino,
    sub: Ino,
}

/// The tree of `fsck_findings.rs`: a directory with a subdirectory, files
/// (one of several pages, one with a hard link), a symlink, an attribute.
fn image() -> Image {
    let dev = support::formatted(4096, 32);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let dir = fs
        .mkdir(&root, Ino::ROOT, b"dir", 0o755)
        .expect("mkdir")
        .ino;
    let sub = fs.mkdir(&root, dir, b"sub", 0o700).expect("mkdir").ino;
    let file = fs.mknod(&root, dir, b"file", 0o644, 0).expect("create").ino;
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    fs.write(&root, file, 0, &data).expect("write");
    let other = fs
        .mknod(&root, Ino::ROOT, b"other", 0o644, 0)
        .expect("create")
        .ino;
    fs.write(&root, other, 0, b"other data").expect("write");
    fs.link(&root, other, dir, b"other-link").expect("link");
    fs.symlink(&root, dir, b"link", b"file").expect("symlink");
    fs.setxattr(&root, file, b"user.k", b"v", 0).expect("xattr");
    fs.unmount().expect("unmount");
    Image {
        dev,
        file,
        other,
        dir,
        sub,
    }
}

/// Breaks the filesystem through `f` and commits.
fn tamper(img: &Image, f: impl FnOnce(&mut Filesystem)) {
    let mut fs = mount(&img.dev);
    f(&mut fs);
    fs.sync().expect("commit the damage");
    fs.unmount().expect("unmount");
}

/// Every regular file that reads, by path, with its bytes.
fn readable(dev: &Arc<MemDevice>) -> BTreeMap<String, Vec<u8>> {
    let ro = MountOptions {
        read_only: true,
        ..MountOptions::default()
    };
    let mut out = BTreeMap::new();
    let Ok(mut fs) = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, ro) else {
        return out;
    };
    walk(&mut fs, Ino::ROOT, String::new(), &mut out, 0);
    out
}

fn walk(
    fs: &mut Filesystem,
    dir: Ino,
    path: String,
    out: &mut BTreeMap<String, Vec<u8>>,
    depth: u32,
) {
    let mut items = Vec::new();
    let _ = fs.readdir(dir, 0, &mut |e| {
        items.push(e);
        true
    });
    for e in items {
        if e.name == b"." || e.name == b".." || depth > 8 {
            continue;
        }
        let p = format!("{path}/{}", String::from_utf8_lossy(&e.name));
        let Ok(a) = fs.getattr(e.ino) else { continue };
        if a.mode & 0o170000 == 0o040000 {
            walk(fs, e.ino, p, out, depth + 1);
        } else if a.mode & 0o170000 == 0o100000 {
            if let Ok(bytes) = fs.read(e.ino, 0, a.size as u32 + 1) {
                out.insert(p, bytes);
            }
        }
    }
}

fn run_repair(dev: &Arc<MemDevice>, level: Level, mode: Mode) -> Outcome {
    repair::repair(
        dev.clone() as Arc<dyn BlockDevice>,
        None,
        level,
        mode,
        &mut |_, _, _| {},
    )
}

/// Repairs with `-y` after the first check finds `kind`; asserts a clean
/// second check, every file readable before read the same after, and
/// returns the outcome.
fn repaired(img: &Image, kind: Kind) -> Outcome {
    repaired_at(&img.dev, kind, Level::Full)
}

fn repaired_at(dev: &Arc<MemDevice>, kind: Kind, level: Level) -> Outcome {
    let before = readable(dev);
    let out = run_repair(dev, level, Mode::All);
    assert!(
        out.before.findings.iter().any(|f| f.kind == kind),
        "expected {kind:?} first: {:?}",
        out.before.findings
    );
    assert!(out.changed(), "nothing written: {:?}", out.actions);
    assert_eq!(
        out.after.problems(),
        0,
        "left: {:?}\nactions: {:?}",
        out.after.findings,
        out.actions
    );
    let again = support::fsck(dev, Level::VerifyData);
    assert!(
        again
            .findings
            .iter()
            .all(|f| f.severity < Severity::Warning),
        "{:?}",
        again.findings
    );
    assert_eq!(again.cleanly_unmounted, Some(true));
    let after = readable(dev);
    for (path, bytes) in &before {
        let now = after.get(path).or_else(|| {
            after
                .iter()
                .find(|(p, b)| p.starts_with("/lost+found/") && *b == bytes)
                .map(|(_, b)| b)
        });
        assert_eq!(now, Some(bytes), "{path} reads otherwise after the repair");
    }
    out
}

fn did(out: &Outcome, f: impl Fn(&Fix) -> bool) -> bool {
    out.actions.iter().any(|a| f(&a.fix) && a.outcome.is_ok())
}

#[test]
fn wrong_link_count_is_set_right() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper()
            .inode(img.other, |i| i.nlink = 5)
            .expect("tamper");
    });
    let out = repaired(&img, Kind::LinkCountWrong);
    assert!(did(&out, |f| *f
        == Fix::Links {
            ino: img.other,
            links: 2
        }));
    let mut fs = mount(&img.dev);
    assert_eq!(fs.getattr(img.other).expect("stat").nlink, 2);
}

#[test]
fn wrong_directory_link_count_is_set_right() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper().inode(img.dir, |i| i.nlink = 9).expect("tamper");
    });
    repaired(&img, Kind::LinkCountWrong);
    assert_eq!(mount(&img.dev).getattr(img.dir).expect("stat").nlink, 3);
}

#[test]
fn lost_inode_is_reconnected_in_lost_found() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper().drop_entry(img.dir, b"file").expect("tamper")
    });
    let out = repaired(&img, Kind::InodeLost);
    assert!(did(&out, |f| *f == Fix::Reconnect { ino: img.file }));
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let lf = fs
        .lookup(&root, Ino::ROOT, b"lost+found")
        .expect("lost+found");
    let name = format!("#{}", img.file.0);
    let a = fs
        .lookup(&root, lf.ino, name.as_bytes())
        .expect("reconnected");
    assert_eq!((a.ino, a.nlink, a.size), (img.file, 1, 20_000));
    assert_eq!(fs.getxattr(&root, a.ino, b"user.k").expect("xattr"), b"v");
}

#[test]
fn lost_directory_is_reconnected_with_its_contents() {
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        t.drop_entry(Ino::ROOT, b"dir").expect("tamper");
        t.inode(Ino::ROOT, |i| i.nlink -= 1).expect("tamper");
    });
    repaired(&img, Kind::InodeLost);
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let lf = fs
        .lookup(&root, Ino::ROOT, b"lost+found")
        .expect("lost+found");
    let name = format!("#{}", img.dir.0);
    let d = fs
        .lookup(&root, lf.ino, name.as_bytes())
        .expect("reconnected");
    assert_eq!(
        fs.lookup(&root, d.ino, b"file").expect("file").ino,
        img.file
    );
    assert_eq!(fs.lookup(&root, d.ino, b"sub").expect("sub").ino, img.sub);
}

#[test]
fn dangling_entry_is_removed() {
    let img = image();
    tamper(&img, |fs| {
        let nowhere = Ino::new(img.file.pack(), 30);
        fs.tamper()
            .raw_entry(img.dir, b"ghost", nowhere, 8)
            .expect("tamper");
    });
    let out = repaired(&img, Kind::DanglingEntry);
    assert!(did(
        &out,
        |f| matches!(f, Fix::RemoveEntry { name, .. } if name == b"ghost")
    ));
    let mut fs = mount(&img.dev);
    assert!(fs.lookup(&Cred::root(), img.dir, b"ghost").is_err());
}

#[test]
fn directory_reached_twice_keeps_one_name() {
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        t.raw_entry(Ino::ROOT, b"again", img.sub, 4)
            .expect("tamper");
        t.inode(Ino::ROOT, |i| i.nlink += 1).expect("tamper");
    });
    repaired(&img, Kind::DirectoryCycle);
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let by_dir = fs.lookup(&root, img.dir, b"sub").is_ok();
    let by_root = fs.lookup(&root, Ino::ROOT, b"again").is_ok();
    assert!(by_dir ^ by_root, "one name left: {by_dir} {by_root}");
}

#[test]
fn doubly_used_page_is_unshared() {
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        let a = t.get_pointer(img.file, 0).expect("pointer");
        t.pointer(img.other, 0, a).expect("tamper");
    });
    let out = repaired(&img, Kind::PageUsedTwice);
    assert!(did(&out, |f| matches!(f, Fix::Unshare { .. })));
    let mut fs = mount(&img.dev);
    let mut t = fs.tamper();
    let a = t.data_addr(img.file, 0).expect("ptr");
    let b = t.data_addr(img.other, 0).expect("ptr");
    assert!(a.is_some() && b.is_some() && a != b, "{a:?} {b:?}");
}

#[test]
fn wrong_segment_usage_is_recounted() {
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        let a = t.data_addr(img.file, 0).expect("pointer").expect("stored");
        t.phantom_live(a).expect("tamper");
    });
    let out = repaired(&img, Kind::SegmentUsageWrong);
    assert!(did(&out, |f| *f == Fix::Recount));
}

#[test]
fn leaked_node_is_freed() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper().leak_node(img.file).expect("tamper");
    });
    let out = repaired(&img, Kind::NodeLeaked);
    assert!(did(&out, |f| matches!(f, Fix::FreeNode { .. })));
}

#[test]
fn empty_attribute_node_is_freed() {
    let img = image();
    tamper(&img, |fs| {
        let nid = fs.tamper().leak_node(img.other).expect("tamper");
        fs.tamper()
            .inode(img.other, |i| i.xattr_nid = nid)
            .expect("tamper");
    });
    let out = repaired(&img, Kind::NodeLeaked);
    assert!(did(&out, |f| *f == Fix::DropXattrNode { ino: img.other }));
}

#[test]
fn leaked_unit_is_freed() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper().leak_unit(img.file).expect("tamper");
    });
    let out = repaired(&img, Kind::UnitLeaked);
    assert!(did(&out, |f| matches!(f, Fix::FreeUnit { .. })));
}

#[test]
fn pointer_to_a_free_unit_becomes_a_hole() {
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        let mut p = t.get_pointer(img.file, 1).expect("pointer");
        p.vpn = pagelog_core::Vpn(p.vpn.0 + 5000);
        t.pointer(img.file, 1, p).expect("tamper");
    });
    let out = repaired(&img, Kind::UnitMissing);
    assert!(did(&out, |f| matches!(
        f,
        Fix::DropPages {
            first: 1,
            count: 1,
            ..
        }
    )));
    let mut fs = mount(&img.dev);
    let page = fs.read(img.file, 4096, 4096).expect("read");
    assert!(page.iter().all(|&b| b == 0), "a hole reads as zeros");
}

#[test]
fn wrong_parent_is_set_right() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper()
            .inode(img.sub, |i| i.parent = Ino(99))
            .expect("tamper");
    });
    repaired(&img, Kind::ParentWrong);
    assert_eq!(
        mount(&img.dev)
            .lookup(&Cred::root(), img.sub, b"..")
            .expect("..")
            .ino,
        img.dir
    );
}

#[test]
fn wrong_block_count_and_its_quota_are_set_right() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper()
            .inode(img.file, |i| i.blocks += 3)
            .expect("tamper");
    });
    let out = repaired(&img, Kind::BlockCountWrong);
    assert!(did(&out, |f| matches!(f, Fix::Blocks { blocks: 5, .. })));
}

#[test]
fn quota_usage_is_recounted_in_the_live_root_and_in_branches() {
    use pagelog_core::checkpoints::At;
    let img = image();
    tamper(&img, |fs| {
        fs.tamper().miscount_usage(img.file, 5).expect("tamper");
        fs.sync().expect("commit");
        let no = fs.checkpoints().last().expect("a checkpoint").no;
        fs.create_branch(b"b", &At::Checkpoint(no)).expect("branch");
        let view = fs.open_branch(b"b").expect("open");
        fs.in_view(view, |v| v.tamper().miscount_usage(img.file, 7))
            .expect("tamper");
        fs.close_view(view).expect("close");
    });
    let out = repaired(&img, Kind::QuotaWrong);
    assert!(did(&out, |f| *f == Fix::Quota { branch: None }));
    assert!(did(&out, |f| *f
        == Fix::Quota {
            branch: Some(b"b".to_vec())
        }));
}

#[test]
fn a_snapshot_s_quota_file_is_left_as_it_was_taken() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper().miscount_usage(img.file, 5).expect("tamper");
        fs.sync().expect("commit");
        fs.create_snapshot(b"s", None).expect("snapshot");
        fs.tamper().miscount_usage(img.file, -5).expect("tamper");
    });
    let snap = img.dev.snapshot();
    let out = run_repair(&img.dev, Level::Full, Mode::All);
    assert!(!out.changed(), "{:?}", out.actions);
    assert_eq!(img.dev.snapshot(), snap, "nothing written");
    assert!(out
        .after
        .findings
        .iter()
        .all(|f| f.kind == Kind::QuotaWrong && f.fix.is_none()));
}

#[test]
fn invalid_access_control_lists_are_removed() {
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        t.raw_xattr(img.file, b"system.posix_acl_access", &[2, 0, 0, 0, 1])
            .expect("tamper");
        let minimal = pagelog_core::acl::Acl::from_mode(0o644).encode();
        t.raw_xattr(img.file, b"system.posix_acl_default", &minimal)
            .expect("tamper");
    });
    repaired(&img, Kind::AclInvalid);
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    assert_eq!(fs.getxattr(&root, img.file, b"user.k").expect("kept"), b"v");
    assert!(fs
        .getxattr(&root, img.file, b"system.posix_acl_default")
        .is_err());
}

#[test]
fn wrong_counter_is_recounted() {
    let img = image();
    tamper(&img, |fs| fs.tamper().miscount_inodes(1));
    repaired(&img, Kind::CounterWrong);
}

#[test]
fn damaged_data_page_is_dropped_and_named() {
    let img = image();
    let mut fs = mount(&img.dev);
    let addr = fs
        .tamper()
        .data_addr(img.file, 2)
        .expect("pointer")
        .expect("stored");
    fs.unmount().expect("unmount");
    let mut page = vec![0u8; 4096];
    img.dev.read(addr, &mut page).expect("read");
    page[10] ^= 0x20;
    img.dev.write(addr, &page).expect("write");
    let out = repaired_at(&img.dev, Kind::DataDamaged, Level::VerifyData);
    let said = out
        .actions
        .iter()
        .find(|a| matches!(a.fix, Fix::DropPages { .. }))
        .and_then(|a| a.outcome.clone().ok())
        .expect("dropped");
    assert!(said.contains("8192..12288"), "{said}");
    let mut fs = mount(&img.dev);
    let bytes = fs.read(img.file, 0, 20_000).expect("reads now");
    assert!(bytes[8192..12288].iter().all(|&b| b == 0));
    assert_eq!(
        bytes[..8192],
        (0..8192u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()[..]
    );
}

#[test]
fn damaged_superblock_copy_is_rewritten() {
    let img = image();
    let mut page = vec![0u8; 4096];
    img.dev.read(PageAddr(1), &mut page).expect("read");
    page[100] ^= 0x20;
    img.dev.write(PageAddr(1), &page).expect("write");
    repaired(&img, Kind::SuperblockCopyDamaged);
}

#[test]
fn preen_mends_counts_and_leaves_what_loses_names() {
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        t.inode(img.other, |i| i.nlink = 5).expect("tamper");
        t.drop_entry(img.dir, b"file").expect("tamper");
    });
    let out = run_repair(&img.dev, Level::Full, Mode::Preen);
    assert!(out.changed());
    assert_eq!(out.left_for_yes, 1, "{:?}", out.after.findings);
    let kinds: Vec<Kind> = out.after.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![Kind::InodeLost]);
    // And -y mends the rest.
    repaired(&img, Kind::InodeLost);
}

#[test]
fn a_crash_leaves_nothing_to_repair_and_nothing_is_written() {
    let img = image();
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"open-unlinked", 0o644, 0)
        .expect("create");
    fs.open(&root, f.ino, 2).expect("open");
    fs.unlink(&root, Ino::ROOT, b"open-unlinked")
        .expect("unlink");
    fs.sync().expect("sync");
    drop(fs);
    let snap = img.dev.snapshot();
    let out = run_repair(&img.dev, Level::Full, Mode::Preen);
    assert!(
        !out.changed() && out.actions.is_empty(),
        "{:?}",
        out.actions
    );
    assert_eq!(img.dev.snapshot(), snap);
}

#[test]
fn a_healthy_image_is_not_written() {
    let img = image();
    let snap = img.dev.snapshot();
    let out = run_repair(&img.dev, Level::VerifyData, Mode::All);
    assert!(!out.changed() && out.before.findings.is_empty());
    assert_eq!(img.dev.snapshot(), snap);
}

#[test]
fn pages_a_damaged_record_summary_no_longer_describes_are_written_again() {
    let img = image();
    let (_, summary, _) = support::first_page_and_its_summary(&img.dev, img.file);
    let mut page = vec![0u8; 4096];
    img.dev.read(summary, &mut page).expect("read");
    page[70] ^= 0x20;
    img.dev.write(summary, &page).expect("write");
    let out = repaired(&img, Kind::SummaryWrong);
    assert!(did(&out, |f| matches!(f, Fix::Relog { .. })));
}

#[test]
fn a_page_its_summary_misdescribes_is_written_again() {
    let img = image();
    let (page, at, mut summary) = support::first_page_and_its_summary(&img.dev, img.file);
    summary.entries[(page.0 - at.0 - 1) as usize].index = 7;
    img.dev.write(at, &summary.encode()[..]).expect("write");
    let out = repaired(&img, Kind::SummaryWrong);
    assert!(did(&out, |f| *f
        == Fix::Relog {
            ino: img.file,
            idx: 0
        }));
}

/// A repair is commits: a power cut anywhere in it leaves an image that
/// mounts, whose files that read before still read the same, and that a
/// second repair mends. (Every prefix of the recorded writes, with none,
/// all, or each one of the writes in flight landing, and the first of
/// them torn.)
#[test]
fn every_crash_state_of_a_repair_mounts_keeps_files_and_repairs_clean() {
    use pagelog_core::testing::RecordingDevice;
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        t.inode(img.other, |i| i.nlink = 5).expect("tamper");
        t.drop_entry(img.dir, b"file").expect("tamper");
        t.leak_node(img.other).expect("tamper");
        let a = t.data_addr(img.other, 0).expect("pointer").expect("stored");
        t.phantom_live(a).expect("tamper");
    });
    let before = readable(&img.dev);
    let dev = Arc::new(RecordingDevice::new(&img.dev.snapshot()));
    let out = repair::repair(dev.clone(), None, Level::Full, Mode::All, &mut |_, _, _| {});
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
    let states = each_crash_state(&dev, &mut |what, image| {
        let now = readable(&image);
        for (path, bytes) in &before {
            let found = now.get(path).or_else(|| {
                now.iter()
                    .find(|(p, b)| p.starts_with("/lost+found/") && *b == bytes)
                    .map(|(_, b)| b)
            });
            assert_eq!(found, Some(bytes), "{what}: {path}");
        }
        let again = run_repair(&image, Level::Full, Mode::All);
        assert_eq!(
            again.after.problems(),
            0,
            "{what}: {:?}",
            again.after.findings
        );
    });
    assert!(states > 30, "{states} states");
}

/// Calls `f` with every crash state of what `dev` recorded (every prefix
/// of its writes, with none, all or each one of the writes in flight
/// landing, and the first of them torn), named; returns how many.
fn each_crash_state(
    dev: &pagelog_core::testing::RecordingDevice,
    f: &mut dyn FnMut(String, Arc<MemDevice>),
) -> usize {
    use pagelog_core::testing::CrashState;
    let events = dev.events().len();
    let mut states = 0;
    for prefix in 0..=events {
        let in_flight = dev.in_flight(prefix);
        let mut choices: Vec<Vec<usize>> = vec![Vec::new(), in_flight.clone()];
        choices.extend(in_flight.iter().map(|&w| vec![w]));
        let mut crash = choices
            .into_iter()
            .map(|extra| CrashState {
                prefix,
                extra,
                torn: None,
                // Also as a store of segment objects would leave it.
                as_objects: prefix % 2 == 1,
            })
            .collect::<Vec<_>>();
        if let Some(&w) = in_flight.first() {
            let half = (0..dev.sectors(w)).map(|s| s % 2 == 0).collect();
            crash.push(CrashState {
                prefix,
                extra: Vec::new(),
                torn: Some((w, half)),
                as_objects: false,
            });
        }
        for state in crash {
            let what = format!("{state:?} of {events}");
            f(
                what,
                Arc::new(MemDevice::from_bytes(&dev.crash_image(&state))),
            );
            states += 1;
        }
    }
    states
}

#[test]
fn a_lost_cycle_of_directories_is_reconnected() {
    let img = image();
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        // dir holds sub; sub now holds dir too, and nothing else does.
        t.drop_entry(Ino::ROOT, b"dir").expect("tamper");
        t.inode(Ino::ROOT, |i| i.nlink -= 1).expect("tamper");
        t.raw_entry(img.sub, b"up", img.dir, 4).expect("tamper");
        t.inode(img.dir, |i| i.parent = img.sub).expect("tamper");
        t.inode(img.sub, |i| i.nlink += 1).expect("tamper");
    });
    repaired(&img, Kind::InodeLost);
    let mut fs = mount(&img.dev);
    let lf = fs
        .lookup(&Cred::root(), Ino::ROOT, b"lost+found")
        .expect("lost+found");
    let mut names = 0;
    fs.readdir(lf.ino, 0, &mut |_| {
        names += 1;
        true
    })
    .expect("readdir");
    assert!(names > 2, "something reconnected");
}

/// On an image not cleanly unmounted, the first pass only recovers (the
/// mount rolls fsyncs forward past the checkpoint the check read), and
/// the fixes are found again on what it committed: an fsync'd file is
/// kept.
#[test]
fn fsyncs_after_the_last_checkpoint_are_recovered_before_anything_is_mended() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper()
            .inode(img.other, |i| i.nlink = 5)
            .expect("tamper");
    });
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"late", 0o644, 0)
        .expect("create")
        .ino;
    fs.write(&root, f, 0, b"fsync'd after the checkpoint")
        .expect("write");
    fs.fsync(f).expect("fsync");
    drop(fs);
    let out = repaired(&img, Kind::LinkCountWrong);
    assert!(did(&out, |f| *f == Fix::Commit));
    let mut fs = mount(&img.dev);
    let a = fs.lookup(&root, Ino::ROOT, b"late").expect("kept");
    assert_eq!(
        fs.read(a.ino, 0, 100).expect("read"),
        b"fsync'd after the checkpoint"
    );
}

#[test]
fn a_wrong_entry_count_has_the_directory_index_built_again() {
    let img = image();
    tamper(&img, |fs| {
        fs.tamper()
            .inode(img.dir, |i| i.dir_entries += 2)
            .expect("tamper");
    });
    let out = repaired(&img, Kind::DirIndexBroken);
    assert!(did(&out, |f| *f == Fix::RebuildDir { dir: img.dir }));
    let mut fs = mount(&img.dev);
    for name in [&b"file"[..], b"sub", b"other-link", b"link"] {
        assert!(fs.lookup(&Cred::root(), img.dir, name).is_ok(), "{name:?}");
    }
}

/// Flips a byte of node `nid`'s page.
fn damage_node(dev: &Arc<MemDevice>, nid: pagelog_core::Nid) {
    let mut fs = mount(dev);
    let addr = fs
        .tamper()
        .node_addr(nid)
        .expect("lookup")
        .expect("on disk");
    fs.unmount().expect("unmount");
    let mut page = vec![0u8; 4096];
    dev.read(addr, &mut page).expect("read");
    page[200] ^= 0x20;
    dev.write(addr, &page).expect("write");
}

/// A 400-page file `/big` (bytes 3) whose first map node is then
/// damaged: the file and the node.
fn file_with_damaged_map_node(img: &Image) -> (Ino, pagelog_core::Nid) {
    let (big, map) = file_with_map_node(img);
    damage_node(&img.dev, map);
    (big, map)
}

#[test]
fn a_damaged_map_node_is_dropped_and_its_pages_become_holes() {
    let img = image();
    let (big, map) = file_with_damaged_map_node(&img);
    let out = repaired(&img, Kind::NodeDamaged);
    assert!(did(&out, |f| *f == Fix::Detach { ino: big, nid: map }));
    assert!(did(&out, |f| *f == Fix::FreeDamaged { nid: map }));
    let mut fs = mount(&img.dev);
    let bytes = fs
        .read(big, 0, 400 * 4096)
        .expect("reads: holes where the node mapped");
    assert!(bytes.iter().all(|&b| b == 3 || b == 0));
}

#[test]
fn a_damaged_inode_pack_loses_its_inodes_and_nothing_else() {
    let img = image();
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let d = fs
        .mkdir(&root, Ino::ROOT, b"many", 0o755)
        .expect("mkdir")
        .ino;
    let mut inos = Vec::new();
    for i in 0..40u32 {
        let name = format!("f{i}");
        let a = fs
            .mknod(&root, d, name.as_bytes(), 0o644, 0)
            .expect("create");
        fs.write(&root, a.ino, 0, name.as_bytes()).expect("write");
        inos.push(a.ino);
    }
    fs.unmount().expect("unmount");
    let pack = inos[39].pack();
    assert!(
        pack != Ino::ROOT.pack() && pack != img.file.pack(),
        "a pack of its own"
    );
    damage_node(&img.dev, pack);
    let out = repaired(&img, Kind::NodeDamaged);
    assert!(did(&out, |f| *f == Fix::FreeDamaged { nid: pack }));
    let mut fs = mount(&img.dev);
    for (i, ino) in inos.iter().enumerate() {
        let name = format!("f{i}");
        let found = fs.lookup(&root, d, name.as_bytes());
        assert_eq!(found.is_ok(), ino.pack() != pack, "{name}");
    }
}

#[test]
fn preen_leaves_a_damaged_node_for_yes() {
    let img = image();
    file_with_damaged_map_node(&img);
    let out = run_repair(&img.dev, Level::Full, Mode::Preen);
    // Neither the node nor the units it names (leaked now) are freed.
    assert!(
        out.actions
            .iter()
            .all(|a| !matches!(a.fix, Fix::FreeDamaged { .. } | Fix::FreeUnit { .. })),
        "{:?}",
        out.actions
    );
    assert!(out.left_for_yes >= 2, "{}", out.left_for_yes);
    assert!(out
        .after
        .findings
        .iter()
        .any(|f| f.kind == Kind::NodeDamaged));
    // And -y mends it all.
    let out = run_repair(&img.dev, Level::Full, Mode::All);
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
}

/// The checkpoint the superblocks name, and its page.
fn named_checkpoint(dev: &Arc<MemDevice>) -> (CheckpointNo, PageAddr) {
    let (good, _) = pagelog_core::recovery::read_superblocks(&**dev).expect("superblocks");
    (good[0].checkpoint_no, good[0].checkpoint_addr)
}

/// Writes `/late` after `img` (committed, then written again and
/// unmounted); returns the checkpoint before it.
fn with_late_file(img: &Image) -> CheckpointNo {
    let (before, _) = named_checkpoint(&img.dev);
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"late", 0o644, 0)
        .expect("create")
        .ino;
    fs.write(&root, f, 0, b"written after").expect("write");
    fs.sync().expect("commit");
    fs.write(&root, f, 13, b" and again").expect("write");
    fs.unmount().expect("unmount");
    before
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_newest_one_before_it() {
    let img = image();
    let kept = readable(&img.dev);
    with_late_file(&img);
    let (named, addr) = named_checkpoint(&img.dev);
    damage_page(&img.dev, addr);
    let check = support::fsck(&img.dev, Level::Full);
    let fatal = check
        .findings
        .iter()
        .find(|f| f.severity == Severity::Fatal);
    let fatal = fatal.expect("the check cannot go on");
    assert_eq!(fatal.kind, Kind::CheckpointDamaged);
    let Some(Fix::Rewind { to }) = fatal.fix else {
        panic!("no fall back named: {fatal:?}")
    };
    assert!(to < named, "{to} {named}");
    let says = format!("starts from checkpoint {to}");
    assert!(fatal.message.contains(&says), "{}", fatal.message);
    // Falling back loses commits: not a preen's to do.
    let bytes = img.dev.snapshot();
    assert!(!run_repair(&img.dev, Level::Full, Mode::Preen).changed());
    assert!(img.dev.snapshot() == bytes, "a preen wrote");
    let out = run_repair(&img.dev, Level::Full, Mode::All);
    assert!(out.changed(), "{:?}", out.actions);
    let rewind = out.actions.iter().find(|a| a.fix == Fix::Rewind { to });
    let said = rewind.expect("rewound").outcome.as_ref().expect("rewound");
    assert!(
        said.contains(&format!("instead of checkpoint {named}")),
        "{said}"
    );
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
    assert_eq!(support::fsck(&img.dev, Level::VerifyData).problems(), 0);
    let now = readable(&img.dev);
    for (path, bytes) in &kept {
        assert_eq!(now.get(path), Some(bytes), "{path}");
    }
    // The file written last is as a commit before the damaged one held
    // it: never other bytes.
    let late = now.get("/late").map(Vec::as_slice);
    assert!(
        matches!(
            late,
            None | Some(b"written after") | Some(b"written after and again")
        ),
        "{late:?}"
    );
    let (after, _) = named_checkpoint(&img.dev);
    assert!(after > to, "a new checkpoint is named: {after}");
}

#[test]
fn checkpoint_n_is_checked_and_repaired_from_exactly() {
    let img = image();
    let kept = readable(&img.dev);
    let k = with_late_file(&img);
    let (named, _) = named_checkpoint(&img.dev);
    assert!(named > k);
    assert_ne!(readable(&img.dev), kept, "the late file is there");
    // Checked as asked, and nothing written.
    let bytes = img.dev.snapshot();
    let dev = img.dev.clone() as Arc<dyn BlockDevice>;
    let r = rewind::rewind(dev.clone(), None, k, true).expect("in the log");
    let report = fsck::check(r.device.clone(), None, Level::Full, &mut |_, _, _| {});
    assert_eq!(report.checkpoint, Some(k));
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
    assert!(r
        .describe()
        .contains(&format!("instead of checkpoint {named}")));
    assert!(img.dev.snapshot() == bytes, "a check wrote");
    // A checkpoint the log does not hold: refused, nothing written.
    let out = repair::repair_from(
        dev.clone(),
        None,
        Level::Full,
        Mode::All,
        Some(CheckpointNo(named.0 + 100)),
        &mut |_, _, _| {},
    );
    assert!(!out.changed());
    assert!(out.actions[0].outcome.is_err(), "{:?}", out.actions);
    assert!(img.dev.snapshot() == bytes, "a refused rewind wrote");
    // Repaired from it: what came after is gone, for good (recovery does
    // not walk on into the newer commits).
    let out = repair::repair_from(
        dev,
        None,
        Level::Full,
        Mode::All,
        Some(k),
        &mut |_, _, _| {},
    );
    assert!(out.changed(), "{:?}", out.actions);
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
    assert_eq!(readable(&img.dev), kept);
    let fs = mount(&img.dev);
    fs.unmount().expect("unmount");
    assert_eq!(readable(&img.dev), kept);
    assert_eq!(support::fsck(&img.dev, Level::VerifyData).problems(), 0);
}

/// A rewind is a commit like any other repair's: a power cut anywhere in
/// it leaves the state before it or the state after it.
#[test]
fn every_crash_state_of_a_rewind_is_the_state_before_or_after_it() {
    use pagelog_core::testing::RecordingDevice;
    let img = image();
    let kept = readable(&img.dev);
    let k = with_late_file(&img);
    let newest = readable(&img.dev);
    let dev = Arc::new(RecordingDevice::new(&img.dev.snapshot()));
    let out = repair::repair_from(
        dev.clone(),
        None,
        Level::Full,
        Mode::All,
        Some(k),
        &mut |_, _, _| {},
    );
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
    let states = each_crash_state(&dev, &mut |what, image| {
        let now = readable(&image);
        assert!(now == kept || now == newest, "{what}: {now:?}");
        let report = support::fsck(&image, Level::Full);
        assert_eq!(report.problems(), 0, "{what}: {:?}", report.findings);
    });
    assert!(states > 10, "{states} states");
}

/// Falling back past a damaged checkpoint, cut short anywhere: the image
/// is still the damaged one (and a repair falls back again) or the state
/// fallen back to, whole.
#[test]
fn every_crash_state_of_a_fall_back_is_the_damage_or_its_repair() {
    use pagelog_core::testing::RecordingDevice;
    let img = image();
    let kept = readable(&img.dev);
    with_late_file(&img);
    let (_, addr) = named_checkpoint(&img.dev);
    damage_page(&img.dev, addr);
    let dev = Arc::new(RecordingDevice::new(&img.dev.snapshot()));
    let out = repair::repair(dev.clone(), None, Level::Full, Mode::All, &mut |_, _, _| {});
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
    let (mut damaged, mut mended) = (0, 0);
    each_crash_state(&dev, &mut |what, image| {
        let report = support::fsck(&image, Level::Full);
        if report.worst() == Some(Severity::Fatal) {
            assert!(
                report
                    .findings
                    .iter()
                    .any(|f| matches!(f.fix, Some(Fix::Rewind { .. }))),
                "{what}: {:?}",
                report.findings
            );
            damaged += 1;
            let again = run_repair(&image, Level::Full, Mode::All);
            assert_eq!(
                again.after.problems(),
                0,
                "{what}: {:?}",
                again.after.findings
            );
        } else {
            assert_eq!(report.problems(), 0, "{what}: {:?}", report.findings);
            mended += 1;
        }
        let now = readable(&image);
        for (path, bytes) in &kept {
            assert_eq!(now.get(path), Some(bytes), "{what}: {path}");
        }
    });
    assert!(damaged > 0 && mended > 0, "{damaged} {mended}");
}

/// `img` with a file made and removed, so that node ids are free below
/// the watermark: (the free list's head, the watermark).
fn with_free_node_ids(img: &Image) -> (pagelog_core::Nid, pagelog_core::Nid) {
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"gone", 0o644, 0)
        .expect("create")
        .ino;
    fs.setxattr(&root, f, b"user.x", &[7; 3000], 0)
        .expect("xattr");
    fs.write(&root, f, 0, &vec![1u8; 3 << 20]).expect("write");
    fs.unlink(&root, Ino::ROOT, b"gone").expect("unlink");
    fs.unmount().expect("unmount");
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    let cp = rec.checkpoint;
    assert!(!cp.nat_free_head.is_none(), "ids freed");
    (cp.nat_free_head, cp.nat_watermark)
}

/// After a repair of the node id free list: new files take ids from it
/// and the filesystem still checks clean (no id handed out twice).
fn ids_hand_out_cleanly(img: &Image) {
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    for i in 0..40 {
        let name = format!("new{i}");
        let f = fs.mknod(&root, img.dir, name.as_bytes(), 0o644, 0);
        let f = f.expect("create").ino;
        fs.setxattr(&root, f, b"user.y", &[3; 2000], 0)
            .expect("xattr");
    }
    fs.unmount().expect("unmount");
    let report = support::fsck(&img.dev, Level::Full);
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
}

#[test]
fn a_free_list_naming_a_node_in_use_is_threaded_again() {
    let img = image();
    let (_, watermark) = with_free_node_ids(&img);
    let used = pagelog_core::Nid(2);
    tamper(&img, |fs| {
        let mut t = fs.tamper();
        assert!(
            t.node_addr(used).expect("lookup").is_some(),
            "node 2 in use"
        );
        t.nat_counters(used, watermark);
    });
    let out = repaired(&img, Kind::FreeListBroken);
    assert!(did(&out, |f| matches!(f, Fix::FreeList { .. })));
    ids_hand_out_cleanly(&img);
}

#[test]
fn a_free_list_that_loops_is_threaded_again() {
    let img = image();
    let (head, _) = with_free_node_ids(&img);
    tamper(&img, |fs| {
        fs.tamper().nat_free_entry(head, head).expect("tamper");
    });
    repaired(&img, Kind::FreeListBroken);
    ids_hand_out_cleanly(&img);
}

#[test]
fn a_watermark_below_a_node_in_use_is_raised() {
    let img = image();
    let (_, watermark) = with_free_node_ids(&img);
    let low = pagelog_core::Nid(3);
    tamper(&img, |fs| {
        fs.tamper().nat_counters(pagelog_core::Nid::NONE, low);
    });
    let out = repaired(&img, Kind::CounterWrong);
    let raised = |f: &Fix| matches!(f, Fix::FreeList { watermark: w, .. } if low.0 < *w && *w <= watermark.0);
    assert!(did(&out, raised), "{:?}", out.actions);
    ids_hand_out_cleanly(&img);
}

/// Free ids on no list only waste ids: a preen threads them again.
#[test]
fn unlisted_free_ids_are_listed_again_by_a_preen() {
    let img = image();
    let (_, watermark) = with_free_node_ids(&img);
    tamper(&img, |fs| {
        fs.tamper().nat_counters(pagelog_core::Nid::NONE, watermark);
    });
    let before = support::fsck(&img.dev, Level::Full);
    assert!(
        before
            .findings
            .iter()
            .any(|f| f.kind == Kind::FreeListBroken),
        "{:?}",
        before.findings
    );
    let out = run_repair(&img.dev, Level::Full, Mode::Preen);
    assert!(out.changed(), "{:?}", out.actions);
    let after = support::fsck(&img.dev, Level::Full);
    assert!(
        after
            .findings
            .iter()
            .all(|f| f.kind != Kind::FreeListBroken),
        "{:?}",
        after.findings
    );
    ids_hand_out_cleanly(&img);
}

/// Rewrites the checkpoint the superblocks name through `f`.
fn rewrite_checkpoint(
    dev: &Arc<MemDevice>,
    f: impl FnOnce(&mut pagelog_core::checkpoint::Checkpoint),
) {
    let rec = pagelog_core::recovery::recover(&**dev, false, None).expect("recover");
    let mut cp = rec.checkpoint;
    f(&mut cp);
    dev.write(rec.checkpoint_addr, &cp.encode()[..])
        .expect("write");
}

#[test]
fn a_unit_free_list_that_loops_is_threaded_again() {
    let img = image();
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    // A unit far above the watermark (past what the tampering commit
    // takes), listed free and naming itself.
    let w = pagelog_core::Vpn(rec.checkpoint.pat_watermark.0 + 50);
    tamper(&img, |fs| {
        fs.tamper().pat_free_entry(w, w).expect("tamper");
    });
    rewrite_checkpoint(&img.dev, |cp| {
        assert!(cp.pat_watermark < w);
        cp.pat_free_head = w;
        cp.pat_watermark = pagelog_core::Vpn(w.0 + 2);
    });
    let out = repaired(&img, Kind::FreeListBroken);
    let units = |f: &Fix| {
        matches!(
            f,
            Fix::FreeList {
                of: Numbers::Units,
                ..
            }
        )
    };
    assert!(did(&out, units), "{:?}", out.actions);
    ids_hand_out_cleanly(&img);
}

#[test]
fn a_unit_watermark_below_a_unit_in_use_is_raised() {
    let img = image();
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    let cp = rec.checkpoint;
    let watermark = cp.pat_watermark;
    // Below units in use, above those the checkpoint names itself (a
    // checkpoint naming a unit at or above its watermark is refused).
    let named = [
        cp.nat_root.addr.0,
        cp.quota_root.addr.0,
        cp.snapshot_root.addr.0,
    ];
    let low = pagelog_core::Vpn(named.iter().max().expect("roots") + 1);
    assert!(low < watermark, "{low} {watermark}");
    rewrite_checkpoint(&img.dev, |cp| {
        cp.pat_watermark = low;
        cp.pat_free_head = pagelog_core::Vpn::NONE;
    });
    let out = repaired(&img, Kind::CounterWrong);
    let raised = |f: &Fix| matches!(f, Fix::FreeList { of: Numbers::Units, watermark: w } if low.0 < *w && *w <= watermark.0);
    assert!(did(&out, raised), "{:?}", out.actions);
    ids_hand_out_cleanly(&img);
}

/// Flips a byte of the page at `addr`.
fn damage_page(dev: &Arc<MemDevice>, addr: PageAddr) {
    let mut page = vec![0u8; 4096];
    dev.read(addr, &mut page).expect("read");
    page[1000] ^= 0x20;
    dev.write(addr, &page).expect("write");
}

/// The page the live node address table's root (here its one leaf) is on.
fn node_table_leaf(img: &Image) -> PageAddr {
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    assert_eq!(rec.checkpoint.nat_root.depth, 0, "one leaf");
    let vpn = pagelog_core::Vpn(rec.checkpoint.nat_root.addr.0);
    let mut fs = mount(&img.dev);
    let addr = fs.tamper().unit_addr(vpn).expect("lookup").expect("in use");
    fs.unmount().expect("unmount");
    addr
}

fn did_rebuild_nodes(out: &Outcome) -> usize {
    out.actions
        .iter()
        .filter(|a| a.outcome.is_ok())
        .find_map(|a| match &a.fix {
            Fix::RebuildNodeTable { nodes, .. } => Some(nodes.len()),
            _ => None,
        })
        .expect("the node table page built again")
}

/// The node address table's leaf (every node id of this small image) is
/// damaged: the nodes are found again in their units and nothing is lost.
#[test]
fn a_damaged_node_table_page_is_built_again_from_the_nodes() {
    let img = image();
    // A commit after the last one rewrote a file's nodes: some are found
    // unreached, others through an older checkpoint's leaf.
    tamper(&img, |fs| {
        fs.write(&Cred::root(), img.other, 0, b"OTHER")
            .expect("write");
    });
    let before = readable(&img.dev);
    damage_page(&img.dev, node_table_leaf(&img));
    let out = run_repair(&img.dev, Level::Full, Mode::All);
    assert!(
        out.before
            .findings
            .iter()
            .any(|f| f.kind == Kind::TableDamaged),
        "{:?}",
        out.before.findings
    );
    assert!(did_rebuild_nodes(&out) > 3, "{:?}", out.actions);
    assert_eq!(
        out.after.problems(),
        0,
        "{:?}\n{:?}",
        out.after.findings,
        out.actions
    );
    assert_eq!(readable(&img.dev), before, "every file as it was");
    assert!(!did(&out, Fix::loses_anything), "{:?}", out.actions);
    ids_hand_out_cleanly(&img);
}

/// Nodes a snapshot shares with the live root are reached through the
/// snapshot: its own leaf names them.
#[test]
fn a_damaged_node_table_page_finds_what_a_snapshot_shares() {
    let img = image();
    tamper(&img, |fs| {
        fs.create_snapshot(b"s", None).expect("snapshot");
    });
    tamper(&img, |fs| {
        fs.write(&Cred::root(), img.other, 0, b"OTHER")
            .expect("write");
    });
    let before = readable(&img.dev);
    damage_page(&img.dev, node_table_leaf(&img));
    let out = run_repair(&img.dev, Level::Full, Mode::All);
    did_rebuild_nodes(&out);
    assert_eq!(
        out.after.problems(),
        0,
        "{:?}\n{:?}",
        out.after.findings,
        out.actions
    );
    assert_eq!(readable(&img.dev), before, "every file as it was");
    assert!(!did(&out, Fix::loses_anything), "{:?}", out.actions);
}

#[test]
fn a_damaged_segment_usage_page_is_built_again_from_the_recount() {
    let img = image();
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    assert_eq!(rec.checkpoint.sut_root.depth, 0, "one leaf");
    damage_page(&img.dev, rec.checkpoint.sut_root.addr);
    let out = repaired(&img, Kind::TableDamaged);
    assert!(did(&out, |f| matches!(f, Fix::RebuildUsage { index: 0 })));
    ids_hand_out_cleanly(&img);
}

/// The page address table's leaf (every unit of this small image) is
/// damaged: the units are found again in the record summaries, and
/// nothing is lost; until they are, a pass drops and frees nothing.
#[test]
fn a_damaged_page_address_table_page_is_built_again_from_the_summaries() {
    let img = image();
    // Units the cleaner's log moved, and units a later commit rewrote.
    tamper(&img, |fs| {
        fs.write(&Cred::root(), img.other, 0, b"OTHER")
            .expect("write");
    });
    let before = readable(&img.dev);
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    assert_eq!(rec.checkpoint.pat_root.depth, 0, "one leaf");
    damage_page(&img.dev, rec.checkpoint.pat_root.addr);
    let out = run_repair(&img.dev, Level::Full, Mode::All);
    assert!(
        out.before
            .findings
            .iter()
            .any(|f| f.kind == Kind::TableDamaged),
        "{:?}",
        out.before.findings
    );
    let rebuilt = out.actions.iter().find_map(|a| match &a.fix {
        Fix::RebuildUnitTable { units, .. } if a.outcome.is_ok() => Some(units.len()),
        _ => None,
    });
    assert!(rebuilt.expect("built again") > 10, "{:?}", out.actions);
    assert_eq!(
        out.after.problems(),
        0,
        "{:?}\n{:?}",
        out.after.findings,
        out.actions
    );
    assert_eq!(readable(&img.dev), before, "every file as it was");
    let dropped = |f: &Fix| {
        f.loses_anything()
            || matches!(
                f,
                Fix::FreeNode { .. } | Fix::FreeUnit { .. } | Fix::DropXattrNode { .. }
            )
    };
    assert!(!did(&out, dropped), "{:?}", out.actions);
    assert_eq!(support::fsck(&img.dev, Level::VerifyData).problems(), 0);
    ids_hand_out_cleanly(&img);
}

/// Building a damaged table page again, cut short anywhere: the image is
/// still the damaged one or the one built again, and a repair of either
/// ends with every file as it was.
#[test]
fn every_crash_state_of_a_table_rebuild_repairs_to_the_same_files() {
    use pagelog_core::testing::RecordingDevice;
    let img = image();
    let before = readable(&img.dev);
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    damage_page(&img.dev, rec.checkpoint.pat_root.addr);
    let dev = Arc::new(RecordingDevice::new(&img.dev.snapshot()));
    let out = repair::repair(dev.clone(), None, Level::Full, Mode::All, &mut |_, _, _| {});
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
    let (mut damaged, mut mended) = (0, 0);
    let states = each_crash_state(&dev, &mut |what, image| {
        let report = support::fsck(&image, Level::Full);
        match report.findings.iter().any(|f| f.kind == Kind::TableDamaged) {
            true => damaged += 1,
            false => mended += 1,
        }
        let again = run_repair(&image, Level::Full, Mode::All);
        assert_eq!(
            again.after.problems(),
            0,
            "{what}: {:?}",
            again.after.findings
        );
        assert_eq!(readable(&image), before, "{what}");
    });
    assert!(damaged > 0 && mended > 0, "{damaged} {mended} of {states}");
}

/// A 400-page file `/big` and the id of its first map node.
fn file_with_map_node(img: &Image) -> (Ino, pagelog_core::Nid) {
    let mut fs = mount(&img.dev);
    let root = Cred::root();
    let big = fs
        .mknod(&root, Ino::ROOT, b"big", 0o644, 0)
        .expect("create")
        .ino;
    fs.write(&root, big, 0, &vec![3u8; 400 * 4096])
        .expect("write");
    fs.unmount().expect("unmount");
    let mut nid = pagelog_core::Nid::NONE;
    tamper(img, |fs| {
        fs.tamper()
            .inode(big, |i| nid = i.map_nids[0])
            .expect("inode");
    });
    assert!(!nid.is_none(), "a map node");
    (big, nid)
}

/// A node whose unit is free: it is taken out of the table (its unit left
/// alone), then its file is detached from it: its pages become holes.
#[test]
fn a_node_whose_unit_is_free_is_forgotten_and_its_pages_become_holes() {
    let img = image();
    let (big, nid) = file_with_map_node(&img);
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    let free = pagelog_core::Vpn(rec.checkpoint.pat_watermark.0 + 100);
    tamper(&img, |fs| fs.tamper().nat_entry(nid, free).expect("tamper"));
    let out = repaired(&img, Kind::UnitMissing);
    assert!(
        did(&out, |f| *f == Fix::ForgetNode { nid }),
        "{:?}",
        out.actions
    );
    let mut fs = mount(&img.dev);
    let a = fs.getattr(big).expect("the file stays");
    assert_eq!(a.size, 400 * 4096);
    let bytes = fs.read(big, 0, 4096).expect("reads");
    assert!(
        bytes.iter().all(|&b| b == 0 || b == 3),
        "holes or its bytes"
    );
}

#[test]
fn a_quota_file_of_the_wrong_mode_or_links_is_set_right() {
    let img = image();
    let quota = pagelog_core::quota_file::QUOTA_INO;
    tamper(&img, |fs| {
        fs.tamper()
            .internal_inode(quota, |i| i.nlink = 3)
            .expect("tamper");
    });
    let out = repaired(&img, Kind::LinkCountWrong);
    assert!(did(&out, |f| *f == Fix::QuotaInode { ino: quota }));
}

/// A damaged page of a retained checkpoint's deadlist: the checkpoint (a
/// plain one, not a snapshot) is pruned; nothing of the live tree goes.
#[test]
fn a_damaged_deadlist_page_has_its_checkpoint_pruned() {
    let img = image();
    // Units killed while checkpoints are retained go on deadlists.
    tamper(&img, |fs| {
        let root = Cred::root();
        fs.write(&root, img.file, 0, &[9u8; 20_000]).expect("write");
        fs.unlink(&root, Ino::ROOT, b"other").expect("unlink");
    });
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    let cp = rec.checkpoint;
    let list = pagelog_core::checkpoint_list::CheckpointList::open_sealed(
        &*img.dev,
        cp.checkpoint_list_root,
        cp.list_next_slot,
        None,
    )
    .expect("list");
    // The newest with a deadlist: older retained checkpoints go with it.
    let rec = list
        .records()
        .rfind(|r| !r.dead_head.is_none())
        .expect("a deadlist")
        .clone();
    assert!(list.records().any(|r| r.no < rec.no), "an older one too");
    let mut fs = mount(&img.dev);
    let addr = fs.tamper().unit_addr(rec.dead_head).expect("lookup");
    fs.unmount().expect("unmount");
    damage_page(&img.dev, addr.expect("in use"));
    let out = repaired(&img, Kind::DeadlistDamaged);
    assert!(
        did(&out, |f| *f == Fix::PruneBack { no: rec.no }),
        "{:?}",
        out.actions
    );
}

/// Two pointers into one compressed cluster that disagree on its shape:
/// the odd one takes the first's, and every page reads as written.
#[test]
fn a_compressed_cluster_whose_pointers_disagree_is_reshaped() {
    let dev = support::formatted_storing(4096, 32, "zstd:1");
    let root = Cred::root();
    let mut fs = mount(&dev);
    let f = fs
        .mknod(&root, Ino::ROOT, b"packed", 0o644, 0)
        .expect("create")
        .ino;
    let data: Vec<u8> = (0..16 * 4096u32).map(|i| (i / 4096) as u8).collect();
    fs.write(&root, f, 0, &data).expect("write");
    fs.unmount().expect("unmount");
    let mut fs = mount(&dev);
    let mut p = fs.tamper().get_pointer(f, 3).expect("pointer");
    assert!(p.count > 1, "a compressed cluster: {p:?}");
    p.count -= 1;
    fs.tamper().pointer(f, 3, p).expect("tamper");
    fs.sync().expect("commit");
    fs.unmount().expect("unmount");
    let out = repaired_at(&dev, Kind::UnitMisshapen, Level::VerifyData);
    let reshaped = |x: &Fix| matches!(x, Fix::Reshape { ino, idx: 3, base: 0, .. } if *ino == f);
    assert!(did(&out, reshaped), "{:?}", out.actions);
    let mut fs = mount(&dev);
    assert_eq!(fs.read(f, 0, 16 * 4096).expect("reads"), data);
}

#[test]
fn a_wrong_deadlist_count_is_counted_again() {
    let img = image();
    tamper(&img, |fs| {
        let root = Cred::root();
        fs.write(&root, img.file, 0, &[9u8; 20_000]).expect("write");
    });
    let mut fs = mount(&img.dev);
    let no = fs.checkpoints().first().expect("retained").no;
    fs.tamper()
        .checkpoint_record(no, |r| r.dead_entries += 5)
        .expect("tamper");
    fs.sync().expect("commit");
    fs.unmount().expect("unmount");
    let out = repaired(&img, Kind::CounterWrong);
    assert!(
        did(&out, |f| *f == Fix::DeadlistCount { no }),
        "{:?}",
        out.actions
    );
}

/// One file's map holds the same node twice: the second reference gets a
/// copy of its own, the pages both then map are copied, and the file
/// reads as it did.
#[test]
fn a_node_a_file_references_twice_is_cloned() {
    let img = image();
    let (big, map) = file_with_map_node(&img);
    tamper(&img, |fs| {
        fs.tamper()
            .inode(big, |i| i.map_nids[1] = i.map_nids[0])
            .expect("tamper");
    });
    let out = repaired(&img, Kind::NodeSharedTwice);
    assert!(
        did(&out, |f| *f == Fix::CloneNode { ino: big, nid: map }),
        "{:?}",
        out.actions
    );
}

/// A table page its record summary misdescribes (which table's, the
/// summary cannot be trusted to say): every live table page is written
/// again.
#[test]
fn a_table_page_its_summary_misdescribes_has_the_tables_written_again() {
    let img = image();
    let rec = pagelog_core::recovery::recover(&*img.dev, false, None).expect("recover");
    let page = rec.checkpoint.sut_root.addr;
    let (at, mut summary) = support::summary_of(&img.dev, page);
    let i = summary
        .units()
        .position(|(off, _)| at.0 + off == page.0)
        .expect("described");
    summary.entries[i].kind = pagelog_core::segment_summary::PageKind::Deadlist;
    img.dev.write(at, &summary.encode()[..]).expect("write");
    let out = repaired(&img, Kind::SummaryWrong);
    assert!(did(&out, |f| *f == Fix::RelogTables), "{:?}", out.actions);
}

/// A device whose given pages cannot be read (bad sectors).
#[derive(Debug)]
struct BadPages {
    dev: Arc<MemDevice>,
    bad: Vec<PageAddr>,
}

impl BlockDevice for BadPages {
    fn len_pages(&self) -> u64 {
        self.dev.len_pages()
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> std::io::Result<()> {
        let pages = addr.0..addr.0 + buf.len().div_ceil(4096) as u64;
        if self.bad.iter().any(|b| pages.contains(&b.0)) {
            return Err(std::io::Error::other("bad sector"));
        }
        self.dev.read(addr, buf)
    }

    fn write(&self, addr: PageAddr, buf: &[u8]) -> std::io::Result<()> {
        self.dev.write(addr, buf)
    }

    fn flush(&self) -> std::io::Result<()> {
        self.dev.flush()
    }
}

/// Pages the device cannot read: the check names each with its file (a
/// run that fails is read again page by page), the repair makes them
/// holes, and every other page reads as it did.
#[test]
fn pages_that_cannot_be_read_are_named_and_dropped() {
    let img = image();
    let (big, _) = file_with_map_node(&img);
    let mut fs = mount(&img.dev);
    let bad = fs
        .tamper()
        .data_addr(big, 7)
        .expect("pointer")
        .expect("stored");
    fs.unmount().expect("unmount");
    let dev = Arc::new(BadPages {
        dev: img.dev.clone(),
        bad: vec![bad],
    });
    let out = repair::repair(
        dev.clone(),
        None,
        Level::VerifyData,
        Mode::All,
        &mut |_, _, _| {},
    );
    let named = out.before.findings.iter().any(|f| {
        f.kind == Kind::DataDamaged && f.ino == Some(big) && f.message.contains("cannot be read")
    });
    assert!(named, "{:?}", out.before.findings);
    let dropped = Fix::DropPages {
        ino: big,
        first: 7,
        count: 1,
    };
    assert!(did(&out, |f| *f == dropped), "{:?}", out.actions);
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
    let mut fs =
        Filesystem::mount(dev as Arc<dyn BlockDevice>, MountOptions::default()).expect("mount");
    // Page by page: a read spanning the bad sector still fails, as on a
    // disk.
    for i in 0..400u64 {
        let page = fs.read(big, i * 4096, 4096).expect("reads");
        let want = if i == 7 { 0 } else { 3 };
        assert!(page.iter().all(|&b| b == want), "page {i}");
    }
}

/// A node the device cannot read: named, freed, its file detached from
/// it (its pages under it become holes).
#[test]
fn a_node_that_cannot_be_read_is_named_and_dropped() {
    let img = image();
    let (_, map) = file_with_map_node(&img);
    let mut fs = mount(&img.dev);
    let bad = fs
        .tamper()
        .node_addr(map)
        .expect("lookup")
        .expect("on disk");
    fs.unmount().expect("unmount");
    let dev = Arc::new(BadPages {
        dev: img.dev.clone(),
        bad: vec![bad],
    });
    let out = repair::repair(dev.clone(), None, Level::Full, Mode::All, &mut |_, _, _| {});
    let named = out.before.findings.iter().any(|f| {
        f.kind == Kind::NodeDamaged && f.nid == Some(map) && f.message.contains("cannot read")
    });
    assert!(named, "{:?}", out.before.findings);
    assert!(
        did(&out, |f| *f == Fix::FreeDamaged { nid: map }),
        "{:?}",
        out.actions
    );
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
}

/// A unit whose page address table entry says an impossible size takes
/// the size its record summary says.
#[test]
fn a_unit_of_an_impossible_size_is_reshaped_from_its_summary() {
    let img = image();
    let before = readable(&img.dev);
    let mut fs = mount(&img.dev);
    let vpn = fs.tamper().get_pointer(img.file, 1).expect("pointer").vpn;
    fs.tamper()
        .unit_entry(vpn, |e| e.pages = 0)
        .expect("tamper");
    fs.sync().expect("commit");
    fs.unmount().expect("unmount");
    let out = run_repair(&img.dev, Level::VerifyData, Mode::All);
    assert!(
        out.before
            .findings
            .iter()
            .any(|f| f.kind == Kind::AddressOutOfRange),
        "{:?}",
        out.before.findings
    );
    assert!(
        did(&out, |f| *f == Fix::ReshapeUnit { vpn }),
        "{:?}",
        out.actions
    );
    assert_eq!(out.after.problems(), 0, "{:?}", out.after.findings);
    assert_eq!(readable(&img.dev), before);
}

/// The root page of the page address table (interior: the table has
/// more than one leaf) is damaged: the pages below it are found again in
/// the log, and nothing is lost. (The segment usage table's interior pages
/// are built again by the same code; a test image does not reach 255
/// segments in use.)
#[test]
fn damaged_interior_table_pages_are_built_again_from_the_log() {
    let dev = support::formatted(16_384, 32);
    let root = Cred::root();
    let mut fs = mount(&dev);
    let f = fs
        .mknod(&root, Ino::ROOT, b"many", 0o644, 0)
        .expect("create")
        .ino;
    let data: Vec<u8> = (0..700 * 4096u32).map(|i| (i / 4096) as u8).collect();
    fs.write(&root, f, 0, &data).expect("write");
    fs.unmount().expect("unmount");
    let before = readable(&dev);
    let rec = pagelog_core::recovery::recover(&*dev, false, None).expect("recover");
    let cp = rec.checkpoint;
    assert!(cp.pat_root.depth > 0, "{cp:?}");
    damage_page(&dev, cp.pat_root.addr);
    let out = run_repair(&dev, Level::VerifyData, Mode::All);
    let rebuilt =
        |f: &Fix| matches!(f, Fix::RebuildInterior { children, .. } if !children.is_empty());
    assert_eq!(
        out.actions
            .iter()
            .filter(|a| a.outcome.is_ok() && rebuilt(&a.fix))
            .count(),
        1,
        "{:?}",
        out.actions
    );
    assert_eq!(
        out.after.problems(),
        0,
        "{:?}\n{:?}",
        out.after.findings,
        out.actions
    );
    assert_eq!(readable(&dev), before, "every file as it was");
}

/// The page address and segment usage tables both damaged: the usage
/// leaf, built while the tree is hidden, counts every segment full (so
/// that nothing hidden is written over); a later pass counts it.
#[test]
fn damaged_unit_and_usage_tables_together_are_built_again() {
    let dev = support::formatted(16_384, 32);
    let root = Cred::root();
    let mut fs = mount(&dev);
    let f = fs
        .mknod(&root, Ino::ROOT, b"f", 0o644, 0)
        .expect("create")
        .ino;
    fs.write(&root, f, 0, &vec![5u8; 40 * 4096]).expect("write");
    fs.unmount().expect("unmount");
    let before = readable(&dev);
    let rec = pagelog_core::recovery::recover(&*dev, false, None).expect("recover");
    damage_page(&dev, rec.checkpoint.pat_root.addr);
    damage_page(&dev, rec.checkpoint.sut_root.addr);
    let out = run_repair(&dev, Level::VerifyData, Mode::All);
    assert!(
        did(&out, |x| matches!(x, Fix::RebuildUsage { .. })),
        "{:?}",
        out.actions
    );
    assert_eq!(
        out.after.problems(),
        0,
        "{:?}\n{:?}",
        out.after.findings,
        out.actions
    );
    assert_eq!(readable(&dev), before);
}
