//! `-o kernel_dirty=SIZE` bounds the written data the kernel's writeback
//! cache may hold for the mount (its backing device's `max_bytes`), which
//! is how long the queue of writebacks a reader may wait behind can grow;
//! a setting above the default is held to the default (the near-full
//! threshold keeps free only that much).

use pagelog_tests::{sh, Mount, Scratch};

/// The mount's `max_bytes`, as the kernel reports it (it keeps a ratio,
/// so the figure read back is rounded).
fn max_bytes(m: &Mount) -> u64 {
    let dev = sh(&format!("mountpoint -d '{}'", m.dir.display()));
    let v = sh(&format!("cat /sys/class/bdi/{}/max_bytes", dev.trim()));
    v.trim().parse().expect("a number of bytes")
}

#[test]
fn kernel_dirty_lowers_the_kernels_share_and_never_raises_it() {
    const MIB: u64 = 1 << 20;
    let s = Scratch::new();
    let m = s.mounted("1G", "");
    let default = max_bytes(&m);
    assert!(m.unmount().success());
    // A sixteenth of 1 GiB: 64 MiB (read back rounded).
    assert!(
        (48 * MIB..=80 * MIB).contains(&default),
        "default {default}"
    );
    let mnt = s.path("mnt");
    let m = Mount::start(&s.path("fs.img"), &mnt, "kernel_dirty=4M").expect("mount");
    let low = max_bytes(&m);
    assert!(m.unmount().success());
    assert!(low <= 6 * MIB && low > 0, "kernel_dirty=4M gave {low}");
    let m = Mount::start(&s.path("fs.img"), &mnt, "kernel_dirty=1G").expect("mount");
    let high = max_bytes(&m);
    assert!(m.unmount().success());
    assert!(
        high <= default + MIB,
        "kernel_dirty=1G gave {high}, above {default}"
    );
}
