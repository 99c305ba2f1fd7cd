//! util-linux's mkfs(8) runs pagelog-mkfs as `mkfs.pagelog` found on the
//! PATH: every form it passes on makes a filesystem (options before the
//! device, a trailing size in 1 KiB blocks or with a unit), and the form it
//! garbles (an option after the device, which mkfs(8) drops) is refused
//! with the forms that work, leaving no file.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

use pagelog_tests::{bin, run, Scratch};

/// Runs the real mkfs(8) with `mkfs.pagelog` on the PATH (a link in
/// `linkdir`, as an installation makes it).
fn mkfs8(linkdir: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        linkdir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("mkfs").env("PATH", path).args(args))
}

/// Asserts `img` holds a clean pagelog filesystem of `bytes`.
fn assert_made(img: &Path, bytes: u64, out: &Output) {
    assert!(
        out.status.success(),
        "mkfs failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::metadata(img).expect("image").len(), bytes);
    let fsck = run(Command::new(bin("pagelog-fsck")).arg("-n").arg(img));
    assert!(
        fsck.status.success(),
        "fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn mkfs_t_pagelog_works_in_every_form_it_passes_on() {
    let s = Scratch::new();
    let linkdir = s.path("sbin");
    fs::create_dir(&linkdir).expect("mkdir");
    symlink(bin("pagelog-mkfs"), linkdir.join("mkfs.pagelog")).expect("link");
    let img = |n: &str| s.path(n);
    let arg = |n: &str| s.path(n).to_string_lossy().into_owned();

    let out = mkfs8(&linkdir, &["-t", "pagelog", &arg("a.img"), "64M"]);
    assert_made(&img("a.img"), 64 << 20, &out);
    // A bare count is 1 KiB blocks, as for mke2fs.
    let out = mkfs8(&linkdir, &["-t", "pagelog", &arg("b.img"), "40000"]);
    assert_made(&img("b.img"), 40000 << 10, &out);
    let out = mkfs8(
        &linkdir,
        &["-t", "pagelog", "--size", "64M", "-L", "web", &arg("c.img")],
    );
    assert_made(&img("c.img"), 64 << 20, &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("label 'web'"));
    let out = mkfs8(&linkdir, &["-t", "pagelog", "-q", &arg("d.img"), "48M"]);
    assert_made(&img("d.img"), 48 << 20, &out);
    assert!(out.stdout.is_empty(), "-q prints nothing");
    // Over an existing filesystem: -f before the device.
    let out = mkfs8(&linkdir, &["-t", "pagelog", "-f", &arg("a.img"), "40M"]);
    assert_made(&img("a.img"), 40 << 20, &out);

    // mkfs(8) runs `mkfs.pagelog --size 64M` for this: the device is lost.
    let out = mkfs8(&linkdir, &["-t", "pagelog", &arg("e.img"), "--size", "64M"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no image file or device given")
            && err.contains("mkfs -t pagelog --size 4G IMAGE")
            && err.contains("mkfs -t pagelog IMAGE 4G"),
        "{err}"
    );
    assert!(!img("e.img").exists());

    // Run directly, options may follow the device.
    let out = run(Command::new(linkdir.join("mkfs.pagelog"))
        .arg(arg("f.img"))
        .args(["--size", "64M"]));
    assert_made(&img("f.img"), 64 << 20, &out);
}
