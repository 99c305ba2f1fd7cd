//! The checker finds every fault the tests plant (one test per finding,
//! each breaking exactly one thing) and nothing on a healthy image.

use std::sync::Arc;

use pagelog_core::fsck::{Kind, Level, Report, Severity};
use pagelog_core::recovery::recover;
use pagelog_core::{BlockDevice, Cred, Filesystem, Ino, MemDevice, PageAddr};

struct Image {
    dev: Arc<MemDevice>,
    file: Ino,
    other: Ino,
    dir: Ino,
}

mod support;
use support::mount;

/// A small tree: a directory with files (one with several pages, one with
/// hard links), a symlink and attributes.
fn image() -> Image {
    let dev = support::formatted(4096, 32);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let dir = fs
        .mkdir(&root, Ino::ROOT, b"dir", 0o755)
        .expect("mkdir")
        .ino;
    fs.mkdir(&root, dir, b"sub", 0o700).expect("mkdir");
    let file = fs.mknod(&root, dir, b"file", 0o644, 0).expect("create").ino;
    fs.write(&root, file, 0, &vec![7u8; 20_000]).expect("write");
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
    }
}

fn run(dev: &Arc<MemDevice>, level: Level) -> Report {
    support::fsck(dev, level)
}

fn kinds(r: &Report, at_least: Severity) -> Vec<Kind> {
    r.findings
        .iter()
        .filter(|f| f.severity >= at_least)
        .map(|f| f.kind)
        .collect()
}

fn assert_finds(r: &Report, kind: Kind) {
    assert!(
        r.findings.iter().any(|f| f.kind == kind),
        "expected {kind:?}, found {:?}",
        r.findings
    );
}

/// Flips one byte of page `addr` at `off`.
fn flip(dev: &Arc<MemDevice>, addr: PageAddr, off: usize) {
    let mut page = vec![0u8; 4096];
    dev.read(addr, &mut page).expect("read");
    page[off] ^= 0x20;
    dev.write(addr, &page).expect("write");
}

/// Breaks the filesystem through `f`, commits, unmounts, checks.
fn tampered(img: &Image, level: Level, f: impl FnOnce(&mut Filesystem)) -> Report {
    let mut fs = mount(&img.dev);
    f(&mut fs);
    fs.sync().expect("commit the damage");
    fs.unmount().expect("unmount");
    run(&img.dev, level)
}

#[test]
fn healthy_image_has_no_findings_at_any_level() {
    let img = image();
    for level in [Level::Fast, Level::Full, Level::VerifyData] {
        let r = run(&img.dev, level);
        assert!(
            kinds(&r, Severity::Warning).is_empty(),
            "{level:?}: {:?}",
            r.findings
        );
        assert_eq!(r.cleanly_unmounted, Some(true));
    }
    let r = run(&img.dev, Level::VerifyData);
    // The test's five, the root, the graveyard and the quota file.
    assert_eq!(
        (r.stats.inodes, r.stats.directories),
        (8, 4),
        "{:?}",
        r.stats
    );
    assert!(r.stats.data_pages >= 6);
}

#[test]
fn damaged_superblock_copy_is_a_warning() {
    let img = image();
    flip(&img.dev, PageAddr(1), 100);
    let r = run(&img.dev, Level::Full);
    assert_eq!(
        kinds(&r, Severity::Warning),
        vec![Kind::SuperblockCopyDamaged]
    );
}

#[test]
fn no_superblock_is_fatal() {
    let img = image();
    flip(&img.dev, PageAddr(0), 100);
    flip(&img.dev, PageAddr(1), 100);
    let r = run(&img.dev, Level::Fast);
    assert_eq!(r.worst(), Some(Severity::Fatal));
    assert_finds(&r, Kind::NoSuperblock);
    assert_eq!(r.checkpoint, None);
    assert_eq!(r.cleanly_unmounted, None);
}

#[test]
fn no_magic_is_not_pagelog() {
    let img = image();
    flip(&img.dev, PageAddr(0), 0);
    flip(&img.dev, PageAddr(1), 0);
    let r = run(&img.dev, Level::Full);
    assert_eq!(kinds(&r, Severity::Info), vec![Kind::NotPagelog]);
    assert_eq!(r.worst(), Some(Severity::Fatal));
    let small = Arc::new(MemDevice::new(1));
    assert_eq!(
        kinds(&run(&small, Level::Full), Severity::Info),
        vec![Kind::NotPagelog]
    );
}

#[test]
fn damaged_checkpoint_is_fatal() {
    let img = image();
    let cp = recover(&*img.dev, false, None)
        .expect("recover")
        .checkpoint_addr;
    flip(&img.dev, cp, 300);
    let r = run(&img.dev, Level::Fast);
    assert_finds(&r, Kind::CheckpointDamaged);
}

#[test]
fn damaged_table_page_is_found_even_by_fast() {
    // The root of the page address table (addressed physically) and of
    // the node address table (a unit, found through the first).
    for table in ["page address", "node address"] {
        let img = image();
        let rec = recover(&*img.dev, false, None).expect("recover");
        let cp = rec.checkpoint;
        let root = match table {
            "page address" => cp.pat_root.addr,
            _ => {
                let state = pagelog_core::id_table::IdState {
                    root: cp.pat_root,
                    free_head: cp.pat_free_head.0,
                    watermark: cp.pat_watermark.0,
                };
                let pat = pagelog_core::page_table::PageTable::open(state, &rec.sb.geometry, 4);
                let vpn = pagelog_core::Vpn(cp.nat_root.addr.0);
                let unit = pat.lookup(&*img.dev, vpn).expect("lookup");
                unit.expect("the root is a unit in use").addr
            }
        };
        flip(&img.dev, root, 200);
        assert_finds(&run(&img.dev, Level::Fast), Kind::TableDamaged);
        // A finding naming the page, not the end of the check: the rest is
        // still checked, and nothing is fatal.
        let full = run(&img.dev, Level::Full);
        assert_eq!(
            full.worst(),
            Some(Severity::Error),
            "{table}: {:?}",
            full.findings
        );
        assert!(
            full.findings
                .iter()
                .any(|f| f.kind == Kind::TableDamaged && f.addr == Some(root)),
            "{table}: {:?}",
            full.findings
        );
    }
}

#[test]
fn damaged_node_is_found() {
    let img = image();
    let mut fs = mount(&img.dev);
    // The inode pack holding the file's inode.
    let pack = fs
        .tamper()
        .node_addr(img.file.pack())
        .expect("lookup")
        .expect("pack on disk");
    fs.unmount().expect("unmount");
    flip(&img.dev, pack, 64 + 252 * img.file.slot() + 20);
    assert_finds(&run(&img.dev, Level::Full), Kind::NodeDamaged);
}

#[test]
fn wrong_link_count_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        fs.tamper()
            .inode(img.other, |i| i.nlink = 5)
            .expect("tamper")
    });
    assert_eq!(kinds(&r, Severity::Error), vec![Kind::LinkCountWrong]);
}

#[test]
fn lost_directory_entry_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        fs.tamper().drop_entry(img.dir, b"file").expect("tamper")
    });
    assert_eq!(kinds(&r, Severity::Error), vec![Kind::InodeLost]);
}

#[test]
fn doubly_used_page_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        let mut t = fs.tamper();
        let a = t.get_pointer(img.file, 0).expect("pointer");
        t.pointer(img.other, 0, a).expect("tamper");
    });
    assert_finds(&r, Kind::PageUsedTwice);
}

#[test]
fn wrong_segment_usage_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        let mut t = fs.tamper();
        let a = t.data_addr(img.file, 0).expect("pointer").expect("stored");
        t.phantom_live(a).expect("tamper");
    });
    assert_eq!(kinds(&r, Severity::Error), vec![Kind::SegmentUsageWrong]);
}

#[test]
fn leaked_node_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        fs.tamper().leak_node(img.file).expect("tamper");
    });
    assert!(
        kinds(&r, Severity::Error).contains(&Kind::NodeLeaked),
        "{:?}",
        r.findings
    );
}

#[test]
fn wrong_parent_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        fs.tamper()
            .inode(img.dir, |i| i.parent = Ino(99))
            .expect("tamper")
    });
    assert_eq!(kinds(&r, Severity::Error), vec![Kind::ParentWrong]);
}

#[test]
fn wrong_block_count_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        fs.tamper()
            .inode(img.file, |i| i.blocks += 3)
            .expect("tamper")
    });
    // The usage of the file's user, group and project counts what the
    // inode says: three more pages than the quota file recorded.
    let mut found = kinds(&r, Severity::Error);
    found.dedup();
    assert_eq!(found, vec![Kind::BlockCountWrong, Kind::QuotaWrong]);
    assert_eq!(r.findings.len(), 4, "{:?}", r.findings);
}

#[test]
fn usage_the_quota_file_miscounts_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        fs.tamper().miscount_usage(img.file, 5).expect("tamper")
    });
    assert_miscounted(&r, "");
    assert!(
        run(&img.dev, Level::Fast).findings.is_empty(),
        "--fast does not recount"
    );
}

#[test]
fn usage_a_branch_s_quota_file_miscounts_is_found() {
    use pagelog_core::checkpoints::At;
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        fs.sync().expect("commit");
        let no = fs.checkpoints().last().expect("a checkpoint").no;
        fs.create_branch(b"b", &At::Checkpoint(no)).expect("branch");
        let view = fs.open_branch(b"b").expect("open");
        fs.in_view(view, |v| v.tamper().miscount_usage(img.file, 5))
            .expect("tamper");
        fs.close_view(view).expect("close");
    });
    assert_miscounted(&r, "in branch 'b': ");
}

#[test]
fn usage_a_snapshot_s_quota_file_miscounts_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        fs.tamper().miscount_usage(img.file, 5).expect("tamper");
        fs.sync().expect("commit");
        fs.create_snapshot(b"s", None).expect("snapshot");
        // The live root counted right again; the snapshot keeps the error.
        fs.tamper().miscount_usage(img.file, -5).expect("tamper");
    });
    assert_miscounted(&r, "in snapshot 's': ");
}

/// Asserts that `r` finds the usage of the test file's user, group and
/// project miscounted, in the root `within` names (each message begins
/// with it; "" for the live root) and with both counts.
fn assert_miscounted(r: &Report, within: &str) {
    assert_eq!(
        kinds(r, Severity::Error),
        vec![Kind::QuotaWrong; 3],
        "{:?}",
        r.findings
    );
    for f in &r.findings {
        let m = &f.message;
        assert!(m.starts_with(within) && m.contains("the tree holds"), "{m}");
    }
}

#[test]
fn bad_access_control_lists_are_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| {
        let mut t = fs.tamper();
        t.raw_xattr(img.file, b"system.posix_acl_access", &[2, 0, 0, 0, 1])
            .expect("tamper");
        let minimal = pagelog_core::acl::Acl::from_mode(0o644).encode();
        t.raw_xattr(img.file, b"system.posix_acl_default", &minimal)
            .expect("tamper");
    });
    assert_eq!(
        kinds(&r, Severity::Error),
        vec![Kind::AclInvalid, Kind::AclInvalid],
        "{:?}",
        r.findings
    );
}

#[test]
fn wrong_counter_is_found() {
    let img = image();
    let r = tampered(&img, Level::Full, |fs| fs.tamper().miscount_inodes(1));
    assert_eq!(kinds(&r, Severity::Error), vec![Kind::CounterWrong]);
}

#[test]
fn damaged_data_page_is_found_by_verify_data_only() {
    let img = image();
    let mut fs = mount(&img.dev);
    let addr = fs.tamper().data_addr(img.file, 2).expect("pointer");
    let addr = addr.expect("stored");
    fs.unmount().expect("unmount");
    flip(&img.dev, addr, 10);
    assert!(kinds(&run(&img.dev, Level::Full), Severity::Error).is_empty());
    let r = run(&img.dev, Level::VerifyData);
    assert_eq!(kinds(&r, Severity::Error), vec![Kind::DataDamaged]);
    let f = &r.findings[0];
    assert_eq!((f.ino, f.addr), (Some(img.file), Some(addr)));
}

#[test]
fn crash_leaves_info_only() {
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
    drop(fs); // a crash: no unmount
    let r = run(&img.dev, Level::Full);
    assert!(kinds(&r, Severity::Warning).is_empty(), "{:?}", r.findings);
    assert_finds(&r, Kind::NotClean);
    assert_finds(&r, Kind::OrphansPending);
    // And a mount frees the orphan; the next check is spotless.
    mount(&img.dev).unmount().expect("unmount");
    let r = run(&img.dev, Level::Full);
    assert!(r.findings.is_empty(), "{:?}", r.findings);
}

/// The file's first page, and the summary of the record holding it: the
/// nearest summary page before it.
#[test]
fn damaged_record_summary_is_found() {
    let img = image();
    let (_, summary, _) = support::first_page_and_its_summary(&img.dev, img.file);
    flip(&img.dev, summary, 70);
    let r = run(&img.dev, Level::Full);
    assert_finds(&r, Kind::SummaryWrong);
    assert!(
        r.findings
            .iter()
            .all(|f| f.kind == Kind::SummaryWrong || f.severity < Severity::Error),
        "{:?}",
        r.findings
    );
}

#[test]
fn summary_entry_that_lies_is_named() {
    let img = image();
    // A well-formed summary (its checksum right) that describes the file's
    // first page as page 7: only the comparison of contents can tell.
    let (page, at, mut summary) = support::first_page_and_its_summary(&img.dev, img.file);
    let e = &mut summary.entries[(page.0 - at.0 - 1) as usize];
    assert_eq!((e.owner, e.index), (img.file.0, 0), "the entry of the page");
    e.index = 7;
    img.dev.write(at, &summary.encode()[..]).expect("write");
    let r = run(&img.dev, Level::Full);
    assert_eq!(kinds(&r, Severity::Error), vec![Kind::SummaryWrong]);
    let f = &r.findings[0];
    assert_eq!(f.addr, Some(page));
    assert!(f.message.contains("index 7"), "{}", f.message);
}

/// A node only a snapshot still reaches is damaged: the check walks the
/// snapshot's tree too and names it.
#[test]
fn damage_only_a_snapshot_holds_is_found_and_named() {
    let dev = support::formatted(4096, 32);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let gone = fs
        .mkdir(&root, Ino::ROOT, b"gone", 0o755)
        .expect("mkdir")
        .ino;
    for i in 0..20u32 {
        fs.mknod(&root, gone, format!("f{i}").as_bytes(), 0o644, 0)
            .expect("create");
    }
    let no = fs.create_snapshot(b"kept", None).expect("snapshot");
    for i in 0..20u32 {
        fs.unlink(&root, gone, format!("f{i}").as_bytes())
            .expect("unlink");
    }
    fs.rmdir(&root, Ino::ROOT, b"gone").expect("rmdir");
    fs.sync().expect("sync");
    let at = pagelog_core::checkpoints::At::Snapshot(b"kept".to_vec());
    let (id, _) = fs.open_view(&at).expect("view");
    let addr = fs
        .in_view(id, |v| v.tamper().node_addr(gone.pack()))
        .expect("node address")
        .expect("stored");
    fs.close_view(id).expect("close");
    fs.unmount().expect("unmount");
    assert_eq!(
        support::fsck(&dev, Level::Full).problems(),
        0,
        "healthy first"
    );
    dev.write(addr, &[0xA5; 4096]).expect("damage");
    let report = support::fsck(&dev, Level::Full);
    let named = format!("snapshot 'kept' (checkpoint {no}):");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.severity >= Severity::Error && f.message.starts_with(&named)),
        "{:?}",
        report.findings
    );
}

/// A file of 16 compressible pages on an image that compresses: one
/// cluster (64-page segments: clusters of 16 pages).
fn compressed_image() -> (Arc<MemDevice>, Ino) {
    let dev = support::formatted_storing(4096, 64, "zstd:1");
    let mut fs = mount(&dev);
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"c", 0o644, 0)
        .expect("create")
        .ino;
    let text: Vec<u8> = b"compressed cluster "
        .iter()
        .copied()
        .cycle()
        .take(16 * 4096)
        .collect();
    fs.write(&root, f, 0, &text).expect("write");
    fs.unmount().expect("unmount");
    assert!(run(&dev, Level::VerifyData).problems() == 0);
    (dev, f)
}

#[test]
fn cluster_pointers_that_disagree_are_found() {
    let (dev, f) = compressed_image();
    let mut fs = mount(&dev);
    let mut p = fs.tamper().get_pointer(f, 3).expect("pointer");
    assert!(p.is_packed(), "{p:?}");
    p.count -= 1;
    fs.tamper().pointer(f, 3, p).expect("tamper");
    fs.sync().expect("commit");
    fs.unmount().expect("unmount");
    let r = run(&dev, Level::Full);
    assert_finds(&r, Kind::UnitMisshapen);
}

#[test]
fn a_damaged_cluster_is_found_by_verify_data_only() {
    let (dev, f) = compressed_image();
    let mut fs = mount(&dev);
    let addr = fs
        .tamper()
        .data_addr(f, 0)
        .expect("pointer")
        .expect("stored");
    fs.unmount().expect("unmount");
    // (Inside the stored bytes: the frame of a very regular cluster is short.)
    flip(&dev, addr, 12);
    assert!(kinds(&run(&dev, Level::Full), Severity::Error).is_empty());
    let r = run(&dev, Level::VerifyData);
    assert_eq!(kinds(&r, Severity::Error), vec![Kind::DataDamaged]);
    assert_eq!(
        (r.findings[0].ino, r.findings[0].addr),
        (Some(f), Some(addr))
    );
}

#[test]
fn a_unit_of_a_chain_the_table_does_not_number_is_found() {
    let (dev, f) = compressed_image();
    let mut fs = mount(&dev);
    let vpn = fs.tamper().get_pointer(f, 0).expect("pointer").vpn;
    fs.tamper()
        .unit_entry(vpn, |e| e.transform.0 = 9)
        .expect("tamper");
    fs.sync().expect("commit");
    fs.unmount().expect("unmount");
    let r = run(&dev, Level::Full);
    assert!(
        r.findings
            .iter()
            .any(|x| x.kind == Kind::UnitMisshapen && x.message.contains("chain 9")),
        "{:?}",
        r.findings
    );
}
