//! Bad input gets a clear message and a non-zero exit, never a panic:
//! corrupt or truncated images, another filesystem's image, missing or
//! busy mount points, an image mounted twice, mkfs over an existing
//! filesystem, sizes and options that make no sense.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::Command;

use pagelog_tests::{bin, run, Mount, Scratch};

/// Runs pagelog-mount in the background form and returns (exit code, stderr).
fn mount_bg(image: &std::path::Path, dir: &std::path::Path, opts: &[&str]) -> (i32, String) {
    let out = run(Command::new(bin("pagelog-mount"))
        .arg(image)
        .arg(dir)
        .args(opts));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A 32 MiB image file holding an ext4 filesystem.
fn ext4_image(s: &Scratch) -> std::path::PathBuf {
    let ext4 = s.path("ext4.img");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&ext4)
        .expect("create");
    f.set_len(32 << 20).expect("len");
    let out = run(Command::new("mkfs.ext4").arg("-q").arg("-F").arg(&ext4));
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ext4
}

fn assert_no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
}

#[test]
fn corrupt_superblocks_are_reported() {
    let s = Scratch::new();
    let img = s.mkfs("a.img", "64M", &[]);
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let f = OpenOptions::new().write(true).open(&img).expect("open");
    // Damage one copy: the other one still mounts.
    f.write_all_at(&[0xFF; 16], 100).expect("write");
    drop(f);
    let m = Mount::start(&img, &mnt, "").expect("one good superblock copy is enough");
    assert!(m.unmount().success());
    // After a clean unmount both copies are rewritten; damage both now.
    let f = OpenOptions::new().write(true).open(&img).expect("open");
    f.write_all_at(&[0xFF; 16], 100).expect("write");
    f.write_all_at(&[0xFF; 16], 4096 + 100).expect("write");
    drop(f);
    let (code, err) = mount_bg(&img, &mnt, &[]);
    assert_eq!(code, 32, "{err}");
    assert!(
        err.contains("corrupt superblock") && err.contains("checksum"),
        "unclear message: {err}"
    );
    assert_no_panic(&err);
}

#[test]
fn truncated_and_foreign_images_are_refused() {
    let s = Scratch::new();
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let img = s.mkfs("t.img", "64M", &[]);
    OpenOptions::new()
        .write(true)
        .open(&img)
        .expect("open")
        .set_len(16 << 20)
        .expect("truncate");
    let (code, err) = mount_bg(&img, &mnt, &[]);
    assert_eq!(code, 32, "{err}");
    assert!(err.contains("truncated"), "unclear message: {err}");

    let ext4 = ext4_image(&s);
    let (code, err) = mount_bg(&ext4, &mnt, &[]);
    assert_eq!(code, 32);
    assert!(
        err.contains("not a pagelog filesystem"),
        "unclear message: {err}"
    );

    let empty = s.path("zeros.img");
    fs::write(&empty, vec![0u8; 1 << 20]).expect("write");
    let (code, err) = mount_bg(&empty, &mnt, &[]);
    assert_eq!(code, 32);
    assert!(err.contains("not a pagelog filesystem"), "{err}");

    let (code, err) = mount_bg(&s.path("nonexistent.img"), &mnt, &[]);
    assert_eq!(code, 32);
    assert!(
        err.contains("cannot open") && err.contains("No such file"),
        "{err}"
    );
    assert!(!pagelog_tests::is_mounted(&mnt));
}

#[test]
fn mount_points_and_double_mounts() {
    let s = Scratch::new();
    let img = s.mkfs("a.img", "64M", &[]);
    let (code, err) = mount_bg(&img, &s.path("no-such-dir"), &[]);
    assert_eq!(code, 32);
    assert!(err.contains("does not exist"), "{err}");
    let file = s.path("plain-file");
    fs::write(&file, b"x").expect("write");
    let (code, err) = mount_bg(&img, &file, &[]);
    assert_eq!(code, 32);
    assert!(err.contains("not a directory"), "{err}");

    let mnt = s.path("mnt");
    let mnt2 = s.path("mnt2");
    fs::create_dir(&mnt).expect("mkdir");
    fs::create_dir(&mnt2).expect("mkdir");
    let m = Mount::start(&img, &mnt, "").expect("mount");
    let (code, err) = mount_bg(&img, &mnt2, &[]);
    assert_eq!(code, 32);
    assert!(err.contains("already mounted or in use"), "{err}");
    let other = s.mkfs("b.img", "64M", &[]);
    let (code, err) = mount_bg(&other, &mnt, &[]);
    assert_eq!(code, 32);
    assert!(err.contains("already a mount point"), "{err}");
    let (code, err) = mount_bg(&other, &mnt2, &["-o", "bogus_option"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown mount option 'bogus_option'"), "{err}");
    assert!(m.unmount().success());
}

#[test]
fn mkfs_refuses_what_it_should() {
    let s = Scratch::new();
    let mk = |args: &[&str]| {
        let out = run(Command::new(bin("pagelog-mkfs")).args(args));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let img = s.path("a.img");
    let img_s = img.to_string_lossy().into_owned();
    assert_eq!(mk(&[&img_s, "--size", "64M", "-q"]).0, 0);
    let (code, err) = mk(&[&img_s, "--size", "64M"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("already holds a pagelog signature") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(mk(&[&img_s, "--size", "64M", "--force", "-q"]).0, 0);

    let ext4 = ext4_image(&s);
    let (code, err) = mk(&[&ext4.to_string_lossy(), "-q"]);
    assert_eq!(code, 1);
    assert!(err.contains("ext2/ext3/ext4"), "{err}");

    let small = s.path("small.img").to_string_lossy().into_owned();
    let (code, err) = mk(&[&small, "--size", "100K"]);
    assert_eq!(code, 1);
    assert!(err.contains("too small"), "{err}");
    let (code, err) = mk(&[&s.path("n.img").to_string_lossy(), "--size", "lots"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a size"), "{err}");
    let (code, err) = mk(&[
        &s.path("seg.img").to_string_lossy(),
        "--size",
        "64M",
        "--segment-size",
        "3M",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("power of two"), "{err}");
    let (code, err) = mk(&["/proc/no/such/dir/x.img", "--size", "64M"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot open"), "{err}");
    let (code, err) = mk(&[&s.path("new.img").to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(err.contains("give its size"), "{err}");
    let (code, err) = mk(&[
        &s.path("l.img").to_string_lossy(),
        "--size",
        "64M",
        "--label",
        &"x".repeat(65),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("longer than 64"), "{err}");
}

#[test]
fn a_corrupt_data_page_reads_as_eio_not_wrong_bytes() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    let marker = b"PAGELOG-MARKER-".repeat(300);
    fs::write(m.path("victim"), &marker).expect("write");
    let img = m.image.clone();
    let m = m.remount("");
    let mnt = m.dir.clone();
    assert!(m.unmount().success());
    // Find the data page by its contents and flip one byte in it.
    let bytes = fs::read(&img).expect("read image");
    let pos = bytes
        .windows(marker.len().min(4000))
        .position(|w| w == &marker[..marker.len().min(4000)])
        .expect("data page on disk");
    let f = OpenOptions::new().write(true).open(&img).expect("open");
    f.write_all_at(&[bytes[pos + 10] ^ 0x01], (pos + 10) as u64)
        .expect("flip");
    drop(f);
    let m = Mount::start(&img, &mnt, "").expect("mount");
    let err = fs::read(m.path("victim")).expect_err("a corrupt page must not read");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    fs::write(m.path("other"), b"the rest still works").expect("write");
    assert!(m.unmount().success());
}

#[test]
fn block_devices_work_and_a_mounted_one_is_refused() {
    let s = Scratch::new();
    let backing = s.path("loop-backing");
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&backing)
        .expect("create")
        .set_len(64 << 20)
        .expect("len");
    let device = pagelog_tests::LoopDevice::attach(&backing);
    let loopdev = device.0.clone();
    let out = run(Command::new(bin("pagelog-mkfs"))
        .arg(&loopdev)
        .arg("--label")
        .arg("blockdev"));
    assert!(
        out.status.success(),
        "mkfs on {loopdev}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("label 'blockdev'"));
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let m = Mount::start(std::path::Path::new(&loopdev), &mnt, "").expect("mount the block device");
    fs::write(m.path("f"), b"on a block device").expect("write");
    let out = run(Command::new(bin("pagelog-mkfs"))
        .arg(&loopdev)
        .arg("--force"));
    assert!(
        !out.status.success(),
        "mkfs over a mounted device must fail"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = m.remount("");
    assert_eq!(fs::read(m.path("f")).expect("read"), b"on a block device");
    assert!(m.unmount().success());
}
