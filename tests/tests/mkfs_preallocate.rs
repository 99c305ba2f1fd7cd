//! `pagelog-mkfs --preallocate` leaves no hole in an image file (the
//! filesystem under it then allocates nothing while pagelog writes), keeps
//! what it zeroes a working filesystem, and refuses a block device before
//! writing anything.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use pagelog_tests::{bin, run, Mount, Scratch};

/// Bytes the image takes on the filesystem holding it.
fn allocated(path: &std::path::Path) -> u64 {
    fs::metadata(path).expect("stat").blocks() * 512
}

#[test]
fn a_preallocated_image_has_no_holes_and_mounts() {
    let s = Scratch::new();
    let sparse = s.mkfs("sparse.img", "64M", &[]);
    let full = s.mkfs("full.img", "64M", &["--preallocate"]);
    assert!(
        allocated(&sparse) < 16 << 20,
        "a plain image is sparse: {} bytes allocated",
        allocated(&sparse)
    );
    assert!(
        allocated(&full) >= 64 << 20,
        "--preallocate left holes: {} of {} bytes allocated",
        allocated(&full),
        64 << 20
    );
    // An existing image made again with --preallocate: its holes filled too.
    let out = run(Command::new(bin("pagelog-mkfs")).arg(&sparse).args([
        "--force",
        "-q",
        "--preallocate",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(allocated(&sparse) >= 64 << 20);
    let dir = s.path("mnt");
    fs::create_dir_all(&dir).expect("mkdir");
    let m = Mount::start(&full, &dir, "").expect("mount");
    fs::write(m.path("f"), vec![7u8; 1 << 20]).expect("write");
    assert!(m.unmount().success());
    let m = Mount::start(&full, &dir, "").expect("mount");
    assert_eq!(fs::read(m.path("f")).expect("read"), vec![7u8; 1 << 20]);
    assert!(m.unmount().success());
    pagelog_tests::assert_checks_clean(&full);
}

#[test]
fn preallocate_refuses_a_block_device() {
    let s = Scratch::new();
    let backing = s.path("loop.img");
    fs::write(&backing, vec![0u8; 64 << 20]).expect("backing file");
    let device = pagelog_tests::LoopDevice::attach(&backing);
    let loopdev = device.0.clone();
    let before = fs::read(&backing).expect("read");
    let out = run(Command::new(bin("pagelog-mkfs")).args([&loopdev, "--preallocate", "-q"]));
    drop(device);
    assert_eq!(
        out.status.code(),
        Some(1),
        "mkfs --preallocate on {loopdev}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("for image files"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::read(&backing).expect("read") == before,
        "something was written"
    );
}
