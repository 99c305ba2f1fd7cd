//! Ordinary tools on a mounted image: cp -a of a real tree and diff,
//! setfattr/getfattr, df, stat; unlinked-but-open files; fallocate, punch
//! holes and SEEK_DATA/SEEK_HOLE; a directory of 20,000 entries with
//! readdir offsets that stay valid while it changes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};

use pagelog_tests::{sh, Scratch};

#[test]
fn cp_a_and_diff_and_xattr_tools() {
    let s = Scratch::new();
    let m = s.mounted("256M", "");
    let dst = m.path("usr-share-doc");
    sh(&format!(
        "cp -a /usr/share/doc/coreutils '{}' && cp -a /etc '{}/etc' 2>/dev/null || true",
        dst.display(),
        m.dir.display()
    ));
    sh(&format!(
        "diff -r /usr/share/doc/coreutils '{}'",
        dst.display()
    ));
    sh(&format!(
        "setfattr -n user.note -v hello '{}'",
        dst.display()
    ));
    let got = sh(&format!(
        "getfattr --only-values -n user.note '{}'",
        dst.display()
    ));
    assert_eq!(got, "hello");
    let df = sh(&format!("df -P '{}' | tail -1", m.dir.display()));
    let cols: Vec<&str> = df.split_whitespace().collect();
    let (total, used, avail): (u64, u64, u64) = (
        cols[1].parse().expect("n"),
        cols[2].parse().expect("n"),
        cols[3].parse().expect("n"),
    );
    assert!(
        total > 200_000 && total < 262_144,
        "df total {total} KiB for a 256 MiB image"
    );
    assert!(
        used > 0 && used + avail <= total,
        "df: used {used} avail {avail} total {total}"
    );
    let st = sh(&format!("stat -c '%s %h %F' '{}/copyright'", dst.display()));
    let orig = sh("stat -c '%s %h %F' /usr/share/doc/coreutils/copyright");
    assert_eq!(st, orig);
    let m = m.remount("");
    sh(&format!(
        "diff -r /usr/share/doc/coreutils '{}'",
        m.path("usr-share-doc").display()
    ));
}

#[test]
fn unlinked_open_file_lives_until_closed() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    let p = m.path("tmpfile");
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&p)
        .expect("open");
    f.write_all(&vec![7u8; 1 << 20]).expect("write");
    f.sync_all().expect("fsync");
    let used_inodes = |d: &std::path::Path| {
        let st = nix::sys::statvfs::statvfs(d).expect("statvfs");
        st.files() - st.files_free()
    };
    let avail = |d: &std::path::Path| {
        let st = nix::sys::statvfs::statvfs(d).expect("statvfs");
        st.blocks_available() * st.fragment_size()
    };
    let before = used_inodes(&m.dir);
    let avail_before = avail(&m.dir);
    fs::remove_file(&p).expect("unlink");
    assert!(fs::metadata(&p).is_err());
    f.write_all(b"more").expect("write after unlink");
    f.seek(SeekFrom::Start(0)).expect("seek");
    let mut back = Vec::new();
    f.read_to_end(&mut back).expect("read after unlink");
    assert_eq!(back.len(), (1 << 20) + 4);
    assert_eq!(f.metadata().expect("fstat").nlink(), 0);
    drop(f);
    // The inode and its pages are freed once the last holder lets go, and
    // df shows the space at once (the cleaner makes it writable again).
    // The kernel sends RELEASE and FORGET in the background: give them a
    // moment to arrive.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while used_inodes(&m.dir) != before - 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        used_inodes(&m.dir),
        before - 1,
        "the unlinked inode was not freed after its last close"
    );
    assert!(
        avail(&m.dir) >= avail_before + (1 << 20) - (64 << 10),
        "df did not grow by the freed MiB: {avail_before} -> {}",
        avail(&m.dir)
    );
    let m = m.remount("");
    assert_eq!(fs::read_dir(&m.dir).expect("readdir").count(), 0);
    assert_eq!(
        used_inodes(&m.dir),
        before - 1,
        "remount shows the same inode count"
    );
}

#[test]
fn fallocate_punch_and_seek_data_hole() {
    use nix::fcntl::{fallocate, FallocateFlags};
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    let p = m.path("f");
    let f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&p)
        .expect("open");
    let fd = f.as_raw_fd();
    fallocate(&f, FallocateFlags::empty(), 0, 1 << 20).expect("fallocate");
    assert_eq!(f.metadata().expect("stat").len(), 1 << 20);
    assert_eq!(f.metadata().expect("stat").blocks(), 2048);
    fallocate(&f, FallocateFlags::FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20).expect("keep size");
    assert_eq!(f.metadata().expect("stat").len(), 1 << 20);
    assert_eq!(f.metadata().expect("stat").blocks(), 4096);
    f.write_all_at(&[1u8; 8192], 65536).expect("write");
    f.write_all_at(&[2u8; 4096], 500_000).expect("write");
    // Punch a partial range: whole pages go, partial ones are zeroed.
    fallocate(
        &f,
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        65536 + 100,
        8000,
    )
    .expect("punch");
    let mut buf = vec![9u8; 8192];
    f.read_exact_at(&mut buf, 65536).expect("read");
    assert!(buf[..100].iter().all(|&b| b == 1));
    assert!(buf[100..8100].iter().all(|&b| b == 0));
    assert!(buf[8100..].iter().all(|&b| b == 1));
    f.sync_all().expect("fsync");
    // SEEK_DATA/SEEK_HOLE: unwritten (fallocated) pages count as holes, as on ext4.
    // SAFETY: lseek on a valid descriptor owned by `f`.
    let seek = |off: i64, whence: i32| unsafe { libc::lseek(fd, off, whence) };
    assert_eq!(seek(0, libc::SEEK_DATA), 65536);
    assert_eq!(seek(65536, libc::SEEK_HOLE), 65536 + 8192);
    assert_eq!(seek(65536 + 8192, libc::SEEK_DATA), 499_712);
    assert_eq!(seek(499_712 + 8192, libc::SEEK_DATA), -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENXIO)
    );
    assert_eq!(seek(600_000, libc::SEEK_HOLE), 600_000);
    assert_eq!(seek(1 << 21, libc::SEEK_HOLE), -1);
    let ops = fallocate(&f, FallocateFlags::FALLOC_FL_ZERO_RANGE, 0, 4096);
    assert_eq!(ops.err(), Some(nix::errno::Errno::EOPNOTSUPP));
}

#[test]
fn twenty_thousand_entries_and_stable_readdir_offsets() {
    let s = Scratch::new();
    let m = s.mounted("256M", "");
    let d = m.path("big");
    fs::create_dir(&d).expect("mkdir");
    for i in 0..20_000 {
        File::create(d.join(format!("entry-{i:05}"))).expect("create");
    }
    assert!(d.join("entry-12345").exists());
    // Read half the directory, change it, read the rest: every entry that
    // stayed is seen exactly once.
    let mut dir = nix::dir::Dir::open(
        &d,
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .expect("opendir");
    let mut seen = std::collections::HashSet::new();
    let mut it = dir.iter();
    for e in it.by_ref().take(10_000) {
        seen.insert(e.expect("entry").file_name().to_bytes().to_vec());
    }
    for i in (0..20_000).step_by(3) {
        let _ = fs::remove_file(d.join(format!("entry-{i:05}")));
    }
    for i in 0..100 {
        File::create(d.join(format!("new-{i}"))).expect("create");
    }
    let mut dupes = 0;
    for e in it {
        if !seen.insert(e.expect("entry").file_name().to_bytes().to_vec()) {
            dupes += 1;
        }
    }
    drop(dir);
    assert_eq!(dupes, 0, "readdir returned entries twice");
    for i in 0..20_000 {
        if i % 3 != 0 {
            assert!(
                seen.contains(format!("entry-{i:05}").as_bytes()),
                "entry {i} was never seen"
            );
        }
    }
    let m = m.remount("");
    assert_eq!(
        fs::read_dir(m.path("big")).expect("readdir").count(),
        20_000 - 6667 + 100
    );
}
