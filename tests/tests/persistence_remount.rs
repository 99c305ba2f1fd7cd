//! Everything written through the mount (data, holes, names, links, special
//! files, modes, owners, nanosecond times, xattrs) reads back byte for byte
//! and attribute for attribute after unmount and remount, read-write and
//! read-only.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use pagelog_tests::Scratch;
use rand::{Rng, SeedableRng};

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    blocks: u64,
    nlink: u64,
    rdev: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    content: Option<u64>,
    target: Option<Vec<u8>>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn manifest(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<Vec<u8>, Entry>) {
    let md = fs::symlink_metadata(p).expect("lstat");
    let ft = md.file_type();
    let mut xattrs = BTreeMap::new();
    if !ft.is_symlink() {
        for name in xattr::list(p).expect("listxattr") {
            let v = xattr::get(p, &name).expect("getxattr").unwrap_or_default();
            xattrs.insert(name.as_bytes().to_vec(), digest(&v).to_le_bytes().to_vec());
        }
    }
    let content = if ft.is_file() && md.size() < (64 << 20) {
        Some(digest(&fs::read(p).expect("read")))
    } else {
        None
    };
    let target = ft.is_symlink().then(|| {
        fs::read_link(p)
            .expect("readlink")
            .as_os_str()
            .as_bytes()
            .to_vec()
    });
    let rel = p
        .strip_prefix(root)
        .expect("prefix")
        .as_os_str()
        .as_bytes()
        .to_vec();
    out.insert(
        rel,
        Entry {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            size: if ft.is_dir() { 0 } else { md.size() },
            blocks: if ft.is_dir() { 0 } else { md.blocks() },
            nlink: md.nlink(),
            rdev: md.rdev(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            ino: md.ino(),
            content,
            target,
            xattrs,
        },
    );
    if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(p)
            .expect("readdir")
            .map(|e| e.expect("entry").path())
            .collect();
        names.sort();
        for n in names {
            walk(root, &n, out);
        }
    }
}

/// A 64-bit FNV-1a digest (keeps failure messages short).
fn digest(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random()).collect()
}

fn build_tree(m: &Path) {
    fs::create_dir_all(m.join("a/b/c/d/e")).expect("mkdir");
    fs::create_dir(m.join("sticky")).expect("mkdir");
    fs::set_permissions(m.join("sticky"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::create_dir(m.join("setgid")).expect("mkdir");
    fs::set_permissions(m.join("setgid"), fs::Permissions::from_mode(0o2775)).expect("chmod");
    for (i, size) in [0usize, 1, 4095, 4096, 4097, (1 << 20) + 3, 8 << 20]
        .iter()
        .enumerate()
    {
        fs::write(m.join(format!("a/file{i}")), random_bytes(*size, i as u64)).expect("write");
    }
    // Sparse files: a hole in the middle, data past the inode's own
    // pointers, and a 1 TiB file with its last page written.
    let mut f = File::create(m.join("sparse")).expect("create");
    f.write_all(b"head").expect("write");
    f.seek(SeekFrom::Start(3 << 30)).expect("seek");
    f.write_all(b"tail at 3 GiB").expect("write");
    let mut f = File::create(m.join("terabyte")).expect("create");
    f.set_len(1 << 40).expect("truncate");
    f.seek(SeekFrom::Start((1 << 40) - 4096)).expect("seek");
    f.write_all(&random_bytes(4096, 99)).expect("write");
    drop(f);
    symlink("a/file1", m.join("short-link")).expect("symlink");
    let long_target = "x/".repeat(2047) + "y";
    assert_eq!(long_target.len(), 4095);
    symlink(&long_target, m.join("long-link")).expect("symlink");
    symlink("a/b", m.join("dir-link")).expect("symlink");
    fs::write(m.join("linked"), b"three names").expect("write");
    fs::hard_link(m.join("linked"), m.join("a/linked2")).expect("link");
    fs::hard_link(m.join("linked"), m.join("a/b/linked3")).expect("link");
    mknod(
        &m.join("fifo"),
        SFlag::S_IFIFO,
        Mode::from_bits_truncate(0o640),
        0,
    )
    .expect("mkfifo");
    mknod(
        &m.join("sock"),
        SFlag::S_IFSOCK,
        Mode::from_bits_truncate(0o600),
        0,
    )
    .expect("mknod sock");
    mknod(
        &m.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod chr");
    mknod(
        &m.join("loop"),
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(7, 0),
    )
    .expect("mknod blk");
    let odd = OsStr::from_bytes(&[b'n', 0xff, 0xfe, b'!']);
    fs::write(m.join(odd), b"non-UTF-8 name").expect("write odd");
    fs::write(m.join("n".repeat(255)), b"longest name").expect("write long name");
    xattr::set(m.join("a/file1"), "user.colour", b"blue").expect("setxattr");
    xattr::set(m.join("a/file1"), "user.big", &random_bytes(2000, 7)).expect("setxattr");
    xattr::set(m.join("a"), "trusted.t", b"root only").expect("setxattr");
    let f = m.join("a/file2");
    nix::unistd::chown(&f, Some(1234.into()), Some(5678.into())).expect("chown");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o4755)).expect("chmod");
    let at = TimeSpec::new(1_000_000_000, 123_456_789);
    let before_epoch = TimeSpec::new(-1000, 5);
    utimensat(
        nix::fcntl::AT_FDCWD,
        &f,
        &at,
        &before_epoch,
        UtimensatFlags::NoFollowSymlink,
    )
    .expect("utimensat");
    utimensat(
        nix::fcntl::AT_FDCWD,
        &m.join("short-link"),
        &at,
        &at,
        UtimensatFlags::NoFollowSymlink,
    )
    .expect("utimensat link");
    let mut f = OpenOptions::new()
        .append(true)
        .open(m.join("a/file3"))
        .expect("open");
    f.write_all(b"appended").expect("append");
}

#[test]
fn tree_survives_unmount_and_remount() {
    let s = Scratch::new();
    let m = s.mounted("512M", "");
    build_tree(&m.dir);
    let before = manifest(&m.dir);
    assert!(before.len() >= 29, "tree too small: {}", before.len());
    let m = m.remount("");
    let after = manifest(&m.dir);
    for (k, v) in &before {
        assert_eq!(
            after.get(k),
            Some(v),
            "entry {} differs after remount",
            String::from_utf8_lossy(k)
        );
    }
    assert_eq!(before.len(), after.len());
    let m = m.remount("ro");
    let ro = manifest(&m.dir);
    assert!(ro == before, "read-only mount shows a different tree");
    let status = m.unmount();
    assert!(status.success());
}

#[test]
fn sparse_terabyte_file_reads_zeros_and_its_tail() {
    let s = Scratch::new();
    let m = s.mounted("256M", "");
    let p = m.path("tb");
    let mut f = File::create(&p).expect("create");
    f.set_len(1 << 40).expect("truncate");
    f.seek(SeekFrom::Start((1 << 40) - 10)).expect("seek");
    f.write_all(b"0123456789").expect("write");
    drop(f);
    let m = m.remount("");
    let p = m.path("tb");
    let md = fs::metadata(&p).expect("stat");
    assert_eq!(md.len(), 1 << 40);
    assert_eq!(md.blocks(), 8, "one page allocated");
    use std::os::unix::fs::FileExt;
    let f = File::open(&p).expect("open");
    let mut buf = vec![1u8; 4096];
    f.read_exact_at(&mut buf, 1 << 39).expect("read hole");
    assert!(buf.iter().all(|&b| b == 0));
    let mut tail = [0u8; 10];
    f.read_exact_at(&mut tail, (1 << 40) - 10)
        .expect("read tail");
    assert_eq!(&tail, b"0123456789");
}
