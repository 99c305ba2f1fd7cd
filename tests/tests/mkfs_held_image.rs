//! pagelog-mkfs never touches an image that a mount holds, not even with
//! `--force` and a new `--size`: the image stays byte for byte as it was,
//! mkfs says it is in use, and the mount's files are still there.

use std::fs;
use std::path::Path;
use std::process::Command;

use pagelog_tests::{bin, run, Mount, Scratch};

/// Runs mkfs on `img` with `args`; returns (exit code, stderr).
fn mkfs(img: &Path, args: &[&str]) -> (i32, String) {
    let out = run(Command::new(bin("pagelog-mkfs")).arg(img).args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every way of asking mkfs to overwrite `m`'s image fails and leaves it as
/// it was.
fn assert_refused(m: &Mount) {
    let before = fs::read(&m.image).expect("read image");
    for args in [
        &["--force", "--size", "40M"][..],
        &["--force", "--size", "128M"],
        &["--force"],
        &["--size", "40M"],
        &["-q", "--force", "--segment-size", "64K"],
    ] {
        let (code, err) = mkfs(&m.image, args);
        let after = fs::read(&m.image).expect("read image");
        assert_eq!(after.len(), before.len(), "mkfs {args:?} resized the image");
        assert!(after == before, "mkfs {args:?} changed the image");
        assert_eq!(code, 1, "mkfs {args:?} on a mounted image: {err}");
        assert!(
            err.contains("in use") && err.contains("nothing was written"),
            "mkfs {args:?} does not say why: {err}"
        );
    }
}

#[test]
fn mkfs_force_on_a_mounted_image_changes_nothing() {
    let s = Scratch::new();
    let m = s.mounted("64M", "nobgclean");
    let data = b"still here after mkfs --force".repeat(1000);
    fs::write(m.path("keep"), &data).expect("write");
    fs::File::open(m.path("keep"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    assert_refused(&m);
    // A read-only mount holds the image too (a shared lock).
    let m = m.remount("ro,nobgclean");
    assert_refused(&m);
    let m = m.remount("");
    assert_eq!(fs::read(m.path("keep")).expect("read"), data);
    assert!(m.unmount().success());
    // Once unmounted, --force does its job.
    let (code, err) = mkfs(&s.path("fs.img"), &["--force", "-q"]);
    assert_eq!(code, 0, "{err}");
}
