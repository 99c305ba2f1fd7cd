//! Compressed clusters through the library: what is written reads back
//! after every kind of change (partial overwrites inside a cluster,
//! truncation and holes inside one, remounts, snapshots), takes fewer
//! pages when it compresses and no more when it does not, and checks
//! clean with every page verified.

use std::sync::Arc;

use pagelog_core::checkpoints::At;
use pagelog_core::fsck::Level;
use pagelog_core::{
    format, BlockDevice, Cred, Error, Filesystem, FormatOptions, Ino, MemDevice, MountOptions,
    SetAttr, COMPRESS_XATTR, REPORT_XATTR,
};

mod support;
use support::{fsck, mount};

const PS: usize = 4096;

fn compressed(chain: &str) -> Arc<MemDevice> {
    let dev = Arc::new(MemDevice::new(16384));
    let opts = FormatOptions {
        pages_per_segment: 64,
        compress: chain.into(),
        ..FormatOptions::default()
    };
    format(dev.clone(), &opts).expect("format");
    dev
}

/// Text-like bytes: compresses several times over.
fn text(len: usize, seed: u32) -> Vec<u8> {
    let words = [
        b"pagelog ".as_slice(),
        b"cluster ",
        b"segment ",
        b"checkpoint\n",
    ];
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(words[(x % 4) as usize]);
    }
    out.truncate(len);
    out
}

/// Bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    support::noise(len, seed)
}

fn assert_clean(dev: &Arc<MemDevice>) {
    let report = fsck(dev, Level::VerifyData);
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
}

fn blocks(fs: &mut Filesystem, ino: Ino) -> u64 {
    fs.getattr(ino).expect("getattr").blocks
}

#[test]
fn compressible_data_takes_fewer_pages_and_reads_back() {
    let dev = compressed("zstd:3");
    let root = Cred::root();
    let mut fs = mount(&dev);
    let f = fs
        .mknod(&root, Ino::ROOT, b"text", 0o644, 0)
        .expect("create");
    let data = text(1 << 20, 1);
    fs.write(&root, f.ino, 0, &data).expect("write");
    fs.sync().expect("sync");
    let sectors = blocks(&mut fs, f.ino);
    assert!(
        sectors * 512 < data.len() as u64 / 2,
        "{sectors} sectors for {} bytes",
        data.len()
    );
    assert_eq!(fs.read(f.ino, 0, 1 << 21).expect("read"), data);
    fs.unmount().expect("unmount");
    assert_clean(&dev);
    let mut fs = mount(&dev);
    assert_eq!(fs.read(f.ino, 0, 1 << 21).expect("read"), data);
    assert_eq!(blocks(&mut fs, f.ino), sectors);
    fs.unmount().expect("unmount");
}

#[test]
fn incompressible_data_is_stored_raw_page_by_page() {
    let dev = compressed("zstd:3");
    let root = Cred::root();
    let mut fs = mount(&dev);
    let f = fs
        .mknod(&root, Ino::ROOT, b"noise", 0o644, 0)
        .expect("create");
    let data = noise(64 * PS, 7);
    fs.write(&root, f.ino, 0, &data).expect("write");
    fs.sync().expect("sync");
    assert_eq!(blocks(&mut fs, f.ino), 64 * 8, "one page per page");
    // A compressible cluster after the incompressible ones is compressed:
    // the file is never given up on.
    fs.write(&root, f.ino, 64 * PS as u64, &text(64 * PS, 2))
        .expect("write");
    fs.sync().expect("sync");
    assert!(blocks(&mut fs, f.ino) < 100 * 8);
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

/// Every change that touches part of a cluster keeps the rest of it.
#[test]
fn partial_changes_inside_clusters_keep_the_rest() {
    let dev = compressed("zstd:1");
    let root = Cred::root();
    let mut fs = mount(&dev);
    let f = fs.mknod(&root, Ino::ROOT, b"f", 0o644, 0).expect("create");
    let mut model = text(40 * PS, 3);
    fs.write(&root, f.ino, 0, &model).expect("write");
    fs.sync().expect("sync");
    let check = |fs: &mut Filesystem, model: &[u8]| {
        assert_eq!(fs.read(f.ino, 0, 1 << 20).expect("read"), model);
    };
    // One byte in the middle of a cluster, then one page of it.
    fs.write(&root, f.ino, 5 * PS as u64 + 17, b"X")
        .expect("write");
    model[5 * PS + 17] = b'X';
    check(&mut fs, &model);
    fs.sync().expect("sync");
    check(&mut fs, &model);
    let page = noise(PS, 9);
    fs.write(&root, f.ino, 9 * PS as u64, &page).expect("write");
    model[9 * PS..10 * PS].copy_from_slice(&page);
    fs.sync().expect("sync");
    check(&mut fs, &model);
    // One write over a whole cluster (pages 16 to 31) and part of the
    // next: the first is not read back, the second is.
    let over = text(20 * PS, 8);
    fs.write(&root, f.ino, 16 * PS as u64, &over)
        .expect("write");
    model[16 * PS..36 * PS].copy_from_slice(&over);
    check(&mut fs, &model);
    fs.sync().expect("sync");
    check(&mut fs, &model);
    // A hole punched in a cluster, and truncation into one.
    fs.fallocate(&root, f.ino, 13 * PS as u64, PS as u64, 3)
        .expect("punch");
    model[13 * PS..14 * PS].fill(0);
    fs.sync().expect("sync");
    check(&mut fs, &model);
    let cut = 30 * PS + 100;
    fs.setattr(
        &root,
        f.ino,
        &SetAttr {
            size: Some(cut as u64),
            ..SetAttr::default()
        },
    )
    .expect("truncate");
    model.truncate(cut);
    fs.sync().expect("sync");
    check(&mut fs, &model);
    fs.unmount().expect("unmount");
    assert_clean(&dev);
    let mut fs = mount(&dev);
    check(&mut fs, &model);
    // Deleting the file gives every unit back.
    fs.unlink(&root, Ino::ROOT, b"f").expect("unlink");
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

#[test]
fn a_snapshot_keeps_the_clusters_it_saw() {
    let dev = compressed("zstd:3");
    let root = Cred::root();
    let mut fs = mount(&dev);
    let f = fs.mknod(&root, Ino::ROOT, b"f", 0o644, 0).expect("create");
    let before = text(32 * PS, 4);
    fs.write(&root, f.ino, 0, &before).expect("write");
    fs.create_snapshot(b"before", None).expect("snapshot");
    let mut after = before.clone();
    after[3 * PS..3 * PS + 10].copy_from_slice(b"0123456789");
    fs.write(&root, f.ino, 3 * PS as u64, b"0123456789")
        .expect("write");
    fs.unmount().expect("unmount");
    assert_clean(&dev);
    let opts = MountOptions {
        read_only: true,
        at: Some(At::Snapshot(b"before".to_vec())),
        ..MountOptions::default()
    };
    let mut past = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount");
    assert_eq!(past.read(f.ino, 0, 1 << 20).expect("read"), before);
    past.unmount().expect("unmount");
    let mut fs = mount(&dev);
    assert_eq!(fs.read(f.ino, 0, 1 << 20).expect("read"), after);
    fs.delete_snapshot(b"before").expect("delete");
    fs.unmount().expect("unmount");
    assert_clean(&dev);
}

#[test]
fn directories_pass_their_chain_on_and_report_savings() {
    let dev = compressed("none");
    let root = Cred::root();
    let mut fs = mount(&dev);
    let get = |fs: &mut Filesystem, ino: Ino| {
        String::from_utf8(fs.getxattr(&root, ino, COMPRESS_XATTR).expect("get")).expect("utf-8")
    };
    assert_eq!(get(&mut fs, Ino::ROOT), "none");
    let d = fs.mkdir(&root, Ino::ROOT, b"logs", 0o755).expect("mkdir");
    fs.setxattr(&root, d.ino, COMPRESS_XATTR, b"zstd:5", 0)
        .expect("set");
    let sub = fs.mkdir(&root, d.ino, b"old", 0o755).expect("mkdir");
    let f = fs
        .mknod(&root, sub.ino, b"a.log", 0o644, 0)
        .expect("create");
    let plain = fs
        .mknod(&root, Ino::ROOT, b"b.log", 0o644, 0)
        .expect("create");
    assert_eq!(get(&mut fs, sub.ino), "zstd:5");
    assert_eq!(get(&mut fs, f.ino), "zstd:5");
    assert_eq!(get(&mut fs, plain.ino), "none");
    let data = text(256 * PS, 5);
    fs.write(&root, f.ino, 0, &data).expect("write");
    fs.write(&root, plain.ino, 0, &data).expect("write");
    let report =
        String::from_utf8(fs.getxattr(&root, d.ino, REPORT_XATTR).expect("report")).expect("utf-8");
    let field = |name: &str| -> u64 {
        report
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    assert_eq!(field("files:"), 1, "{report}");
    assert_eq!(field("logical_bytes:"), data.len() as u64, "{report}");
    assert!(field("stored_bytes:") * 3 < data.len() as u64, "{report}");
    assert!(blocks(&mut fs, f.ino) * 3 < blocks(&mut fs, plain.ino));
    // Only the owner or root changes it; a name it does not know is
    // refused; the report cannot be set.
    let user = Cred {
        uid: 1000,
        gid: 1000,
        ..Cred::root()
    };
    assert!(matches!(
        fs.setxattr(&user, f.ino, COMPRESS_XATTR, b"none", 0),
        Err(Error::Perm)
    ));
    assert!(fs
        .setxattr(&root, f.ino, COMPRESS_XATTR, b"lz4", 0)
        .is_err());
    assert!(fs.setxattr(&root, f.ino, REPORT_XATTR, b"1", 0).is_err());
    fs.setxattr(&root, f.ino, COMPRESS_XATTR, b"none", 0)
        .expect("none");
    assert_eq!(get(&mut fs, f.ino), "none");
    fs.unmount().expect("unmount");
    assert_clean(&dev);
    // The chain numbered while mounted survives the remount.
    let mut fs = mount(&dev);
    assert_eq!(get(&mut fs, d.ino), "zstd:5");
    assert_eq!(fs.read(f.ino, 0, 1 << 21).expect("read"), data);
    fs.unmount().expect("unmount");
}

#[test]
fn an_image_needing_a_transform_this_build_lacks_is_refused_by_name() {
    let dev = compressed("zstd:3");
    for copy in 0..2u32 {
        let mut page = vec![0u8; PS];
        dev.read(pagelog_core::PageAddr(u64::from(copy)), &mut page)
            .expect("read");
        let mut sb = pagelog_core::superblock::Superblock::decode(
            &page,
            pagelog_core::PageAddr(u64::from(copy)),
        )
        .expect("decode");
        sb.chains.chains[0][0].id = 7;
        sb.chains.chains[0][0].name = "lz4".into();
        dev.write(
            pagelog_core::PageAddr(u64::from(copy)),
            &sb.encode(copy)[..],
        )
        .expect("write");
    }
    let err = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, MountOptions::default())
        .expect_err("mount without lz4");
    assert!(
        err.to_string().contains("needs transform 'lz4' (id 7)"),
        "{err}"
    );
}
