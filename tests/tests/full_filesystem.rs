//! Full filesystems through FUSE, with ordinary system calls: filling
//! pagelog itself never poisons the mount (deletes always work), and the
//! host disk filling under the image fails the writes that met it with
//! ENOSPC, leaves committed data readable (the mount goes on read-only),
//! and loses nothing that was fsync'd once the host has room again.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::process::Command;

use pagelog_tests::{bin, parse_stats, run, sh, Mount, Scratch, Tmpfs};

const MIB: usize = 1 << 20;

/// `df`'s available bytes on the mount.
fn available(m: &Mount) -> u64 {
    let out = sh(&format!("df -P -B1 '{}' | tail -1", m.dir.display()));
    out.split_whitespace()
        .nth(3)
        .and_then(|c| c.parse().ok())
        .expect("df available")
}

fn stats(m: &Mount) -> std::collections::BTreeMap<String, String> {
    parse_stats(&sh(&format!(
        "getfattr --only-values -n pagelog.stats '{}'",
        m.dir.display()
    )))
}

/// Writes 4 MiB files in 1 MiB appends, each followed by fsync, until
/// `target` bytes are written or a write or fsync fails with ENOSPC.
/// Returns the files and whether it ended on ENOSPC.
fn fill(m: &Mount, tag: &str, target: u64) -> (Vec<std::path::PathBuf>, bool) {
    let chunk = vec![0xa5u8; MIB];
    let (mut files, mut written) = (Vec::new(), 0u64);
    for n in 0.. {
        let path = m.path(&format!("{tag}-{n}"));
        let mut f = match File::create(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::StorageFull => return (files, true),
            Err(e) => panic!("create {}: {e}", path.display()),
        };
        files.push(path.clone());
        for _ in 0..4 {
            match f.write_all(&chunk).and_then(|()| f.sync_all()) {
                Ok(()) => written += MIB as u64,
                Err(e) if e.kind() == ErrorKind::StorageFull => return (files, true),
                Err(e) => panic!("write or fsync {}: {e}", path.display()),
            }
            if written >= target {
                return (files, false);
            }
        }
    }
    unreachable!()
}

fn delete_all(files: &[std::path::PathBuf]) {
    for f in files {
        fs::remove_file(f).unwrap_or_else(|e| panic!("unlink {}: {e}", f.display()));
    }
}

/// The pattern that poisoned the mount: on a 256 MiB image, six cycles of
/// filling 70% of `df`'s free space and deleting everything, then filling
/// to ENOSPC, then deleting everything.
#[test]
fn six_cycles_then_full_then_delete_everything() {
    let s = Scratch::new();
    let m = s.mounted("256M", "");
    let empty = available(&m);
    for cycle in 0..6 {
        let target = available(&m) * 7 / 10;
        let (files, full) = fill(&m, &format!("c{cycle}"), target);
        assert!(!full, "cycle {cycle}: ENOSPC at 70% of the free space");
        delete_all(&files);
    }
    let (files, full) = fill(&m, "full", u64::MAX);
    assert!(full, "the last fill ends on ENOSPC");
    delete_all(&files);
    sh(&format!(
        "sync -f '{}'; ls -la '{}'",
        m.dir.display(),
        m.dir.display()
    ));
    let st = stats(&m);
    assert_eq!(
        st.get("state").map(String::as_str),
        Some("read-write"),
        "{st:?}"
    );
    let back = available(&m);
    assert!(
        back + 8 * MIB as u64 >= empty,
        "{back} bytes available after deleting everything, {empty} when new"
    );
    let image = m.image.clone();
    assert!(m.unmount().success());
    pagelog_tests::assert_checks_clean(&image);
}

/// The host filesystem under the image fills up: the writes and fsyncs
/// that meet it fail with ENOSPC; the mount goes on read-only, serving
/// what was committed (ls, stat, df, reads, the stats attribute); once the
/// host has room again, a new mount has every fsync'd byte.
#[test]
fn host_disk_full_degrades_to_read_only_and_loses_nothing_synced() {
    let s = Scratch::new();
    let host = Tmpfs::mount(&s.path("host"), "48m");
    let image = host.dir.join("fs.img");
    let out = run(Command::new(bin("pagelog-mkfs"))
        .arg(&image)
        .args(["--size", "512M", "-q"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mnt = s.path("mnt");
    fs::create_dir_all(&mnt).expect("mkdir");
    let m = Mount::start(&image, &mnt, "").expect("mount");
    let kept: Vec<u8> = (0..8 * MIB).map(|i| (i % 251) as u8).collect();
    let mut f = File::create(m.path("kept")).expect("create");
    f.write_all(&kept)
        .and_then(|()| f.sync_all())
        .expect("write kept");
    drop(f);
    // Fill until the host refuses.
    let (_, full) = fill(&m, "big", u64::MAX);
    assert!(full, "the host disk never filled");
    // Committed data is still served, read-only.
    assert!(fs::read(m.path("kept")).expect("read kept") == kept);
    fs::metadata(m.path("kept")).expect("stat");
    sh(&format!("ls -la '{}' >/dev/null", m.dir.display()));
    assert!(available(&m) > 0);
    let st = stats(&m);
    let state = st.get("state").cloned().unwrap_or_default();
    assert!(state.starts_with("read-only after a write error"), "{st:?}");
    let e = OpenOptions::new()
        .append(true)
        .open(m.path("kept"))
        .and_then(|mut f| f.write_all(b"more").and_then(|()| f.sync_all()))
        .expect_err("writes after the failure");
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    assert!(
        m.unmount().success(),
        "the daemon of a read-only mount exits cleanly"
    );
    // The host has room again.
    host.resize("600m");
    pagelog_tests::assert_checks_clean(&image);
    let m = Mount::start(&image, &mnt, "").expect("mount again");
    assert!(fs::read(m.path("kept")).expect("read kept") == kept);
    assert!(m.unmount().success());
}

/// With the kernel's writeback cache (the default `ordered` mode), a file
/// opened for writing on a nearly full filesystem is served with direct
/// I/O, so a write(2) that does not fit fails with ENOSPC at once. A file
/// opened while there was room keeps the cache: what it writes past the
/// end of the room fails at writeback and is reported by fsync, and the
/// daemon has the kernel drop its copy of what was refused (right after
/// answering the refused write): once fsync has returned, reads no longer
/// show refused data (the kernel keeps the size it gave the file, and what
/// lies past the stored end reads as zeros until it forgets the inode).
#[test]
fn near_full_writes_fail_at_write_and_refused_writeback_is_not_shown() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    assert_eq!(
        stats(&m).get("kernel_write_cache").map(String::as_str),
        Some("on")
    );
    // Opened with room: cached.
    let mut early = File::create(m.path("early")).expect("create");
    let (_, full) = fill(&m, "fill", u64::MAX);
    assert!(full, "the filesystem never filled");
    // Opened now, nearly full: each write(2) reaches the daemon.
    let mut late = File::create(m.path("late"))
        .or_else(|_| {
            fs::remove_file(m.path("fill-0")).expect("make room for a name");
            File::create(m.path("late"))
        })
        .expect("a file created once there is room");
    let e = (0..64)
        .try_for_each(|_| late.write_all(&[0x11u8; MIB]))
        .expect_err("64 MiB fit in a full filesystem");
    assert_eq!(e.kind(), ErrorKind::StorageFull, "{e}");
    drop(late);
    // The early file: the kernel accepts the writes, the filesystem
    // refuses them at writeback, fsync says so.
    let chunk = vec![0x77u8; MIB];
    for _ in 0..16 {
        if early.write_all(&chunk).is_err() {
            break;
        }
    }
    let e = early.sync_all().expect_err("fsync of refused writes");
    assert_eq!(e.kind(), ErrorKind::StorageFull, "{e}");
    drop(early);
    // The daemon drops the kernel's copy right after it answers each
    // refused write, from a thread of its own: give those a moment.
    let mut shown = fs::read(m.path("early")).expect("read");
    for _ in 0..100 {
        if !shown.contains(&0x77) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        shown = fs::read(m.path("early")).expect("read");
    }
    let (img, dir) = (m.image.clone(), m.dir.clone());
    assert!(m.unmount().success());
    pagelog_tests::assert_checks_clean(&img);
    let m = Mount::start(&img, &dir, "ro").expect("mount again");
    let stored = fs::read(m.path("early")).expect("read");
    let kept = stored.len().min(shown.len());
    assert!(
        shown[..kept] == stored[..kept] && shown[kept..].iter().all(|&b| b == 0),
        "the mount showed data the filesystem did not keep ({} bytes shown, {} stored)",
        shown.len(),
        stored.len()
    );
    assert!(stored.len() <= shown.len());
    assert!(m.unmount().success());
}
