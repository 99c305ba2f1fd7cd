//! An image holds every file in it, so it is its owner's alone: mkfs makes
//! new images mode 0600 whatever the umask allows, and the mount warns
//! (on stderr and in its log) when other users may read or write the
//! image, naming it, its mode and the fix.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pagelog_tests::{bin, is_mounted, run, sh, Scratch};

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// Waits until no process holds `img` (the daemon has exited).
fn wait_released(img: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let f = fs::File::open(img).expect("open image");
    while f.try_lock().is_err() {
        assert!(Instant::now() < deadline, "the daemon kept the image");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Mounts in the background form (as an administrator does), unmounts, and
/// returns what pagelog-mount printed on stderr.
fn mount_stderr(img: &Path, mnt: &Path) -> String {
    let out = run(Command::new(bin("pagelog-mount")).arg(img).arg(mnt));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mount failed: {err}");
    pagelog_tests::umount(mnt);
    wait_released(img);
    err
}

/// Mounts in the foreground (logging to stderr), unmounts, and returns the
/// log.
fn foreground_log(img: &Path, mnt: &Path) -> String {
    let mut child = Command::new(bin("pagelog-mount"))
        .arg(img)
        .arg(mnt)
        .arg("-f")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pagelog-mount -f");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(mnt) {
        assert!(Instant::now() < deadline, "no mount in 20 s");
        thread::sleep(Duration::from_millis(20));
    }
    pagelog_tests::umount(mnt);
    let mut log = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut log).expect("read log");
    }
    assert!(child.wait().expect("wait").success(), "{log}");
    log
}

#[test]
fn new_images_are_the_owners_alone() {
    let s = Scratch::new();
    let img = s.path("a.img");
    sh(&format!(
        "umask 000; '{}' '{}' --size 64M -q",
        bin("pagelog-mkfs").display(),
        img.display()
    ));
    assert_eq!(mode_of(&img), 0o600, "a new image must be 0600");
    // A tighter umask still applies.
    let img = s.path("b.img");
    sh(&format!(
        "umask 077; '{}' '{}' --size 64M -q",
        bin("pagelog-mkfs").display(),
        img.display()
    ));
    assert_eq!(mode_of(&img), 0o600);
}

#[test]
fn the_mount_warns_about_an_image_others_can_read() {
    let s = Scratch::new();
    let img = s.mkfs("a.img", "64M", &[]);
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    for mode in [0o644, 0o640, 0o602] {
        fs::set_permissions(&img, fs::Permissions::from_mode(mode)).expect("chmod");
        let err = mount_stderr(&img, &mnt);
        let shown = format!("{mode:04o}");
        assert!(
            err.contains("warning")
                && err.contains(&img.display().to_string())
                && err.contains(&shown)
                && err.contains("chmod 600"),
            "no warning for a {shown} image: {err:?}"
        );
    }
    fs::set_permissions(&img, fs::Permissions::from_mode(0o644)).expect("chmod");
    let log = foreground_log(&img, &mnt);
    assert!(
        log.contains("WARN") && log.contains("0644") && log.contains("chmod 600"),
        "no warning in the log: {log:?}"
    );
    fs::set_permissions(&img, fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = mount_stderr(&img, &mnt);
    assert!(
        !err.contains("warning"),
        "a 0600 image needs no warning: {err:?}"
    );
    let log = foreground_log(&img, &mnt);
    assert!(
        !log.contains("chmod"),
        "a 0600 image needs no warning: {log:?}"
    );
}
