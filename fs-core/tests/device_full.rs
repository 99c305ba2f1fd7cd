//! When the device itself fails a write (the disk under an image file is
//! full), the operation that met it fails with ENOSPC, and the filesystem
//! goes on read-only from its last commit: committed files stay readable,
//! `statfs` and the stats keep answering, later changes are EROFS, and a
//! mount once the device has room again has everything that was synced.

use std::sync::Arc;

use pagelog_core::fsck::Level;
use pagelog_core::testing::FaultyDevice;
use pagelog_core::{BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions};

mod support;

fn kept() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_full_device_leaves_the_filesystem_read_only_with_its_data() {
    let base = support::formatted(16384, 64);
    let root = Cred::root();
    {
        let mut fs = support::mount(&base);
        let a = fs
            .mknod(&root, Ino::ROOT, b"kept", 0o100644, 0)
            .expect("create");
        fs.write(&root, a.ino, 0, &kept()).expect("write");
        fs.fsync(a.ino).expect("fsync");
        fs.unmount().expect("unmount");
    }
    let dev = Arc::new(FaultyDevice::full(&base.snapshot(), u64::MAX));
    let mut fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, MountOptions::default())
        .expect("mount");
    // From now on the device has no room for anything.
    dev.fail_at(dev.count());
    let b = fs
        .mknod(&root, Ino::ROOT, b"lost", 0o100644, 0)
        .expect("create (in memory)");
    fs.write(&root, b.ino, 0, &[9u8; 100_000])
        .expect("write (in memory)");
    assert!(
        matches!(fs.fsync(b.ino), Err(Error::NoSpace)),
        "fsync on a full device is ENOSPC"
    );
    // Read-only from the last commit: what was committed reads back.
    let a = fs.lookup(&root, Ino::ROOT, b"kept").expect("lookup");
    assert_eq!(fs.read(a.ino, 0, 400_000).expect("read"), kept());
    assert!(fs.statfs().blocks > 0);
    let state = fs.cleaner_report().state;
    assert!(
        state.starts_with("read-only after a write error"),
        "state: {state}"
    );
    assert!(matches!(
        fs.write(&root, a.ino, 0, b"x"),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        fs.mkdir(&root, Ino::ROOT, b"d", 0o755),
        Err(Error::ReadOnly)
    ));
    fs.unmount().expect("unmount a read-only filesystem");
    // The device has room again: everything synced is there.
    let image = Arc::new(MemDevice::from_bytes(&dev.snapshot()));
    let report = support::fsck(&image, Level::Full);
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
    let mut fs = support::mount(&image);
    let a = fs.lookup(&root, Ino::ROOT, b"kept").expect("lookup");
    assert_eq!(fs.read(a.ino, 0, 400_000).expect("read"), kept());
    fs.unmount().expect("unmount");
}
