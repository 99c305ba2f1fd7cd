//! The daemon as an administrator runs it: in the background by default
//! (returning once the mount is ready), stopped by umount or by SIGTERM
//! with everything written back, and called as `mount.pagelog` with the
//! mount(8) argument convention.

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use pagelog_tests::{bin, is_mounted, run, Mount, Scratch};

fn wait_unmounted(dir: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while is_mounted(dir) {
        assert!(Instant::now() < deadline, "still mounted");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no process holds the image lock (the daemon has exited).
fn wait_released(image: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let f = fs::File::open(image).expect("open image");
        if f.try_lock().is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "image still locked by a daemon");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn background_mount_returns_when_ready_and_umount_writes_back() {
    let s = Scratch::new();
    let img = s.mkfs("a.img", "64M", &[]);
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let out = run(Command::new(bin("pagelog-mount")).arg(&img).arg(&mnt));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&mnt), "mounted by the time the command returns");
    fs::write(mnt.join("kept"), b"written just before umount").expect("write");
    pagelog_tests::umount(&mnt);
    wait_released(&img);
    let m = Mount::start(&img, &mnt, "").expect("remount");
    assert_eq!(
        fs::read(m.path("kept")).expect("read"),
        b"written just before umount"
    );
    assert!(m.unmount().success());
}

#[test]
fn sigterm_unmounts_cleanly() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    fs::write(m.path("f"), b"survives SIGTERM").expect("write");
    let (img, dir) = (m.image.clone(), m.dir.clone());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(m.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let mut m = m;
    let status = m.wait();
    assert!(
        status.success(),
        "daemon exit status after SIGTERM: {status}"
    );
    wait_unmounted(&dir);
    let m = Mount::start(&img, &dir, "ro").expect("remount");
    assert_eq!(fs::read(m.path("f")).expect("read"), b"survives SIGTERM");
    assert_eq!(
        fs::write(m.path("g"), b"x")
            .expect_err("read-only")
            .raw_os_error(),
        Some(libc::EROFS)
    );
    assert!(m.unmount().success());
}

#[test]
fn mount_helper_convention() {
    let s = Scratch::new();
    let img = s.mkfs("a.img", "64M", &[]);
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let helper = s.path("mount.pagelog");
    symlink(bin("pagelog-mount"), &helper).expect("symlink");
    // mount(8) passes: spec dir [-sfnv] [-o options] [-t type]
    let out = run(Command::new(&helper)
        .arg(&img)
        .arg(&mnt)
        .arg("-n")
        .arg("-o")
        .arg("rw,noatime,defaults,commit=3")
        .arg("-t")
        .arg("pagelog"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&mnt));
    let mounts = fs::read_to_string("/proc/self/mounts").expect("mounts");
    let line = mounts
        .lines()
        .find(|l| l.contains(&*mnt.to_string_lossy()))
        .expect("mount line");
    assert!(line.contains("fuse"), "{line}");
    pagelog_tests::umount(&mnt);
    wait_released(&img);
    // -f from mount(8) means "fake": nothing is mounted.
    let out = run(Command::new(&helper)
        .arg(&img)
        .arg(&mnt)
        .arg("-f")
        .arg("-o")
        .arg("rw"));
    assert!(out.status.success());
    assert!(!is_mounted(&mnt));
}

#[test]
fn help_teaches_the_options() {
    let out = run(Command::new(bin("pagelog-mount")).arg("--help"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "commit=SECONDS",
        "allow_other",
        "ro | rw",
        "/etc/fstab",
        "umount",
    ] {
        assert!(text.contains(word), "--help lacks {word}");
    }
    let out = run(Command::new(bin("pagelog-mkfs")).arg("--help"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["--size", "--segment-size", "--label", "--uuid", "--force"] {
        assert!(text.contains(word), "mkfs --help lacks {word}");
    }
}
