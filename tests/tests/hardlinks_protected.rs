//! `fs.protected_hardlinks` holds through the mount as the kernel applies
//! it elsewhere: another user's private or setuid file cannot be pinned by
//! a hard link, with the kernel checking permissions (default_permissions)
//! and with pagelog checking them (no_default_permissions), where the
//! kernel's own check is blind.

use pagelog_tests::{op, op_as, Mount, Scratch};

const ALICE: u32 = 1001;

fn p(m: &Mount, rel: &str) -> String {
    m.path(rel).to_string_lossy().into_owned()
}

fn protected() -> bool {
    std::fs::read_to_string("/proc/sys/fs/protected_hardlinks").map_or(true, |v| v.trim() != "0")
}

fn scenario(m: &Mount) {
    // Refused exactly when the sysctl is on (it is on by default).
    let refused = if protected() { "EPERM" } else { "0" };
    assert_eq!(op(&["mkdir", &p(m, "tmp"), "1777"]), "0");
    for (name, mode) in [("secret", "600"), ("setuid", "4777"), ("shared", "666")] {
        assert_eq!(op(&["open", &p(m, name), "O_CREAT,O_WRONLY", "600"]), "0");
        assert_eq!(op(&["chmod", &p(m, name), mode]), "0");
    }
    let alice = |args: &[&str]| op_as(ALICE, ALICE, &[], args);
    assert_eq!(alice(&["link", &p(m, "secret"), &p(m, "tmp/s")]), refused);
    assert_eq!(alice(&["link", &p(m, "setuid"), &p(m, "tmp/u")]), refused);
    if protected() {
        assert_eq!(op(&["stat", &p(m, "secret"), "nlink"]), "1");
    }
    // Read and write access, or ownership, is enough; root may link anything.
    assert_eq!(alice(&["link", &p(m, "shared"), &p(m, "tmp/o")]), "0");
    assert_eq!(
        alice(&["openwrite", &p(m, "tmp/mine"), "O_CREAT,O_WRONLY", "x"]),
        "0"
    );
    assert_eq!(op(&["chmod", &p(m, "tmp/mine"), "400"]), "0");
    assert_eq!(alice(&["link", &p(m, "tmp/mine"), &p(m, "tmp/mine2")]), "0");
    assert_eq!(op(&["link", &p(m, "secret"), &p(m, "tmp/r")]), "0");
}

#[test]
fn hard_links_with_kernel_and_with_pagelog_permission_checks() {
    for opts in ["allow_other", "allow_other,no_default_permissions"] {
        let s = Scratch::new();
        let m = s.mounted("64M", opts);
        scenario(&m);
        assert!(m.unmount().success(), "{opts}");
    }
}
