//! A daemon killed with SIGKILL (a crash, as far as the image knows) in
//! each journaling mode: the image mounts with no repair and checks clean;
//! fsync'd data is there; `full` lost nothing that returned; `ordered`
//! never leaves an empty or partial file when a new version was written
//! and renamed over the old one, even without fsync.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use pagelog_tests::{bin, run, Mount, Scratch};

fn stat_of(m: &Mount, key: &str) -> String {
    let text = pagelog_tests::sh(&format!(
        "getfattr --only-values -n pagelog.stats '{}'",
        m.dir.display()
    ));
    pagelog_tests::parse_stats(&text)
        .remove(key)
        .unwrap_or_else(|| panic!("pagelog.stats has no {key}: {text}"))
}

fn fsck_clean(img: &std::path::Path) {
    let out = run(Command::new(bin("pagelog-fsck")).arg(img));
    assert_eq!(
        out.status.code(),
        Some(0),
        "fsck after a crash: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ordered_fsync_survives_and_rename_replace_is_whole() {
    let s = Scratch::new();
    let mut m = s.mounted("128M", "journal=ordered,commit=1");
    let v1 = "version one\n".repeat(5000);
    let v2 = "version two!\n".repeat(7000);
    fs::write(m.path("config"), &v1).expect("write");
    File::open(m.path("config"))
        .expect("open")
        .sync_all()
        .expect("fsync");
    let mut synced = File::create(m.path("synced")).expect("create");
    synced.write_all(&vec![42u8; 300_000]).expect("write");
    synced.sync_all().expect("fsync");
    // The pattern that bit ext4: new version, rename over, no fsync; then
    // crash at some point (the commit timer runs every second).
    for round in 0..6 {
        let mut t = File::create(m.path("config.tmp")).expect("create");
        t.write_all(if round % 2 == 0 {
            v2.as_bytes()
        } else {
            v1.as_bytes()
        })
        .expect("write");
        drop(t);
        fs::rename(m.path("config.tmp"), m.path("config")).expect("rename");
        sleep(Duration::from_millis(300));
    }
    let (img, dir) = (m.image.clone(), m.dir.clone());
    m.kill9();
    fsck_clean(&img);
    let m = Mount::start(&img, &dir, "").expect("mount after a crash");
    let config = fs::read_to_string(m.path("config")).expect("read");
    assert!(
        config == v1 || config == v2,
        "config is neither version ({} bytes)",
        config.len()
    );
    assert_eq!(
        fs::read(m.path("synced")).expect("read"),
        vec![42u8; 300_000]
    );
    assert!(m.unmount().success());
    fsck_clean(&img);
}

#[test]
fn full_mode_loses_nothing_that_returned() {
    let s = Scratch::new();
    let mut m = s.mounted("128M", "journal=full");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(m.path("log"))
        .expect("open");
    for i in 0..50 {
        f.write_all(format!("line {i}\n").as_bytes())
            .expect("write");
    }
    fs::create_dir(m.path("made")).expect("mkdir");
    fs::rename(m.path("made"), m.path("renamed")).expect("rename");
    let (img, dir) = (m.image.clone(), m.dir.clone());
    m.kill9();
    fsck_clean(&img);
    let m = Mount::start(&img, &dir, "").expect("mount after a crash");
    let log = fs::read_to_string(m.path("log")).expect("read");
    assert_eq!(log.lines().count(), 50, "{log}");
    assert!(m.path("renamed").is_dir());
    assert!(m.unmount().success());
}

#[test]
fn writeback_mode_keeps_fsynced_data_and_never_shows_foreign_bytes() {
    let s = Scratch::new();
    let mut m = s.mounted("128M", "journal=writeback,commit=1");
    let mut keep = File::create(m.path("keep")).expect("create");
    keep.write_all(&vec![7u8; 200_000]).expect("write");
    keep.sync_all().expect("fsync");
    fs::write(m.path("other"), vec![9u8; 100_000]).expect("write");
    fs::write(m.path("maybe"), vec![5u8; 100_000]).expect("write");
    sleep(Duration::from_millis(1500));
    let (img, dir) = (m.image.clone(), m.dir.clone());
    m.kill9();
    fsck_clean(&img);
    let m = Mount::start(&img, &dir, "").expect("mount after a crash");
    assert_eq!(fs::read(m.path("keep")).expect("read"), vec![7u8; 200_000]);
    if let Ok(maybe) = fs::read(m.path("maybe")) {
        assert!(
            maybe.iter().all(|&b| b == 5 || b == 0),
            "foreign bytes in a file after a crash"
        );
    }
    assert!(m.unmount().success());
}

/// fsync through the kernel is a roll-forward record, not a commit: with
/// the commit timer out of the way (an hour), a mail spool's pattern (new
/// file, write, fsync it, fsync its directory) and an fdatasync'd append
/// survive a SIGKILL that no commit preceded.
#[test]
fn fsync_records_survive_a_crash_with_no_commit_after_them() {
    let s = Scratch::new();
    let mut m = s.mounted("128M", "commit=3600");
    fs::create_dir(m.path("spool")).expect("mkdir");
    let stats = |m: &Mount| {
        pagelog_tests::parse_stats(&pagelog_tests::sh(&format!(
            "getfattr --only-values -n pagelog.stats '{}'",
            m.dir.display()
        )))
    };
    let count = |m: &Mount, key: &str| -> u64 {
        stats(m)
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("pagelog.stats has no {key}"))
    };
    let commits = count(&m, "commits");
    for i in 0..10 {
        let mut f = File::create(m.path(&format!("spool/msg{i}"))).expect("create");
        f.write_all(format!("message {i}\n").repeat(100 * (i + 1)).as_bytes())
            .expect("write");
        f.sync_all().expect("fsync");
        File::open(m.path("spool"))
            .expect("open dir")
            .sync_all()
            .expect("fsync dir");
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(m.path("log"))
        .expect("open");
    for i in 0..20 {
        log.write_all(format!("line {i}\n").as_bytes())
            .expect("append");
        log.sync_data().expect("fdatasync");
    }
    assert_eq!(count(&m, "commits"), commits, "an fsync committed");
    assert!(count(&m, "fsync_records") >= 30, "{:?}", stats(&m));
    let (img, dir) = (m.image.clone(), m.dir.clone());
    m.kill9();
    fsck_clean(&img);
    let m = Mount::start(&img, &dir, "").expect("mount after a crash");
    for i in 0..10 {
        assert_eq!(
            fs::read_to_string(m.path(&format!("spool/msg{i}"))).expect("read"),
            format!("message {i}\n").repeat(100 * (i + 1))
        );
    }
    let want: String = (0..20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(fs::read_to_string(m.path("log")).expect("read"), want);
    assert!(m.unmount().success());
    fsck_clean(&img);
}

/// The default `ordered` mode runs with the kernel's writeback cache, which
/// holds written data back from the daemon. A file renamed while still
/// open for writing is laundered first, so the fsync of an unrelated file
/// right after the rename (which makes the rename durable) carries the
/// renamed file's data too; with the timer out of the way (an hour), only
/// that fsync can have made anything durable.
#[test]
fn ordered_rename_before_close_carries_the_cached_data() {
    rename_then_fsync_another_file(false);
}

/// The same with the file closed before the rename: the kernel writes a
/// file's cached pages back on close (even though pagelog answers FLUSH
/// with ENOSYS), before the rename can reach the daemon.
#[test]
fn ordered_close_pushes_the_cached_data_before_a_rename() {
    rename_then_fsync_another_file(true);
}

fn rename_then_fsync_another_file(close_first: bool) {
    let s = Scratch::new();
    let mut m = s.mounted("128M", "commit=3600");
    assert_eq!(stat_of(&m, "kernel_write_cache"), "on");
    let v1 = "version one\n".repeat(3000);
    let v2 = "version two!\n".repeat(9000);
    fs::write(m.path("config"), &v1).expect("write");
    File::open(m.path("config"))
        .expect("open")
        .sync_all()
        .expect("fsync");
    let mut tmp = File::create(m.path("config.tmp")).expect("create");
    tmp.write_all(v2.as_bytes()).expect("write");
    let t = (!close_first).then_some(tmp);
    fs::rename(m.path("config.tmp"), m.path("config")).expect("rename");
    let mut other = File::create(m.path("other")).expect("create");
    other.write_all(b"unrelated").expect("write");
    other.sync_all().expect("fsync");
    let (img, dir) = (m.image.clone(), m.dir.clone());
    m.kill9();
    drop(t);
    fsck_clean(&img);
    let m = Mount::start(&img, &dir, "").expect("mount after a crash");
    let config = fs::read_to_string(m.path("config")).expect("read");
    assert!(
        config == v2,
        "the renamed file lost its data ({} bytes)",
        config.len()
    );
    assert!(m.unmount().success());
}

/// A periodic commit in the `ordered` mode holds what was written before
/// it even while the kernel's writeback cache still had it (the file stays
/// open, so no close pushed it): the daemon runs syncfs first.
#[test]
fn ordered_periodic_commit_holds_the_kernels_cached_writes() {
    let s = Scratch::new();
    let mut m = s.mounted("128M", "commit=1");
    assert_eq!(stat_of(&m, "kernel_write_cache"), "on");
    let data = vec![0x5au8; 20_000];
    let mut f = File::create(m.path("open")).expect("create");
    f.write_all(&data).expect("write");
    sleep(Duration::from_millis(2500));
    let (img, dir) = (m.image.clone(), m.dir.clone());
    m.kill9();
    drop(f);
    fsck_clean(&img);
    let m = Mount::start(&img, &dir, "").expect("mount after a crash");
    assert_eq!(fs::read(m.path("open")).expect("read"), data);
    assert!(m.unmount().success());
}
