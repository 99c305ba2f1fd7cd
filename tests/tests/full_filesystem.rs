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
