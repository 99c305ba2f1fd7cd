//! A checkpoint whose checksum is valid but whose counts are hostile (a
//! node id watermark of 2^32 or 2^62) is refused by the real tools in
//! bounded time, with a message naming the field: `pagelog-fsck` exits 8
//! and says why, `pagelog-mount` refuses read-write and read-only mounts.
//! (Before: fsck counted node ids up to the watermark for minutes or
//! forever, and a mount failed with "corrupt node 2^60", then ENOSPC.)

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pagelog_core::recovery::recover;
use pagelog_core::{BlockDevice, FileDevice, Nid};
use pagelog_tests::{bin, Mount, Scratch};

/// Runs `cmd` to completion or kills it after `limit`; returns (exit
/// code, stdout, stderr), or panics naming the hang.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (i32, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A cleanly unmounted image with a few files, whose checkpoint (the one
/// both superblock copies name) then gets `watermark`, CRC recomputed.
fn image_with_watermark(s: &Scratch, watermark: u64) -> std::path::PathBuf {
    let m = s.mounted("64M", "");
    for i in 0..10 {
        fs::write(m.path(&format!("f{i}")), vec![i as u8; 30_000]).expect("write");
    }
    let img = m.image.clone();
    assert!(m.unmount().success());
    let dev = FileDevice::open(&img, true).expect("open");
    let rec = recover(&dev, false, None).expect("recover");
    let mut cp = rec.checkpoint;
    cp.nat_watermark = Nid(watermark);
    dev.write(rec.checkpoint_addr, &cp.encode()[..])
        .expect("write checkpoint");
    img
}

fn assert_refused_by_tools(img: &Path, s: &Scratch) {
    let (code, out, err) = run_bounded(
        Command::new(bin("pagelog-fsck")).arg(img),
        Duration::from_secs(60),
    );
    eprintln!("pagelog-fsck: {out}{err}");
    assert_eq!(code, 8, "{out}{err}");
    assert!(out.contains("nat_watermark"), "field not named: {out}{err}");
    assert!(!err.contains("panicked"), "{err}");
    let mnt = s.path("mnt");
    for opts in ["", "ro"] {
        match Mount::start(img, &mnt, opts) {
            Ok(m) => panic!("mounted ({opts}) with a hostile watermark: {:?}", m.dir),
            Err(e) => {
                let msg = e.to_string();
                eprintln!("pagelog-mount -o '{opts}': {msg}");
                assert!(
                    msg.contains("nat_watermark") && msg.contains("checkpoint"),
                    "unclear refusal ({opts}): {msg}"
                );
                assert!(!msg.contains("panicked"), "{msg}");
            }
        }
    }
}

#[test]
fn watermark_of_2_pow_32_is_refused_in_bounded_time() {
    let s = Scratch::new();
    let img = image_with_watermark(&s, 1 << 32);
    assert_refused_by_tools(&img, &s);
}

#[test]
fn watermark_of_2_pow_62_is_refused_in_bounded_time() {
    let s = Scratch::new();
    let img = image_with_watermark(&s, 1 << 62);
    assert_refused_by_tools(&img, &s);
}
