//! Permission checks for non-root users, sticky and setgid directories,
//! and the clearing of set-id bits, through the mount as other users do
//! them. Every scenario runs twice: with the kernel checking permissions
//! (default_permissions, the default) and with pagelog checking them.

use pagelog_tests::{op, op_as, sh, Mount, Scratch};

const ALICE: u32 = 1001;
const BOB: u32 = 1002;
const STAFF: u32 = 2000;
const OTHER_GROUP: u32 = 2001;
/// A version 2 `security.capability` value granting CAP_NET_RAW.
const CAP_NET_RAW: &str = "0x0100000200200000000000000000000000000000";

fn p(m: &Mount, rel: &str) -> String {
    m.path(rel).to_string_lossy().into_owned()
}

fn scenarios(m: &Mount) {
    // A shared, world-writable sticky directory and a private one.
    assert_eq!(op(&["mkdir", &p(m, "tmp"), "1777"]), "0");
    assert_eq!(op(&["mkdir", &p(m, "private"), "700"]), "0");
    assert_eq!(
        op(&["open", &p(m, "private/secret"), "O_CREAT,O_WRONLY", "644"]),
        "0"
    );
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[],
            &["open", &p(m, "private/secret"), "O_RDONLY"]
        ),
        "EACCES"
    );
    assert_eq!(
        op_as(ALICE, ALICE, &[], &["mkdir", &p(m, "private/x"), "755"]),
        "EACCES"
    );
    assert_eq!(
        op_as(ALICE, ALICE, &[], &["mkdir", &p(m, "x"), "755"]),
        "EACCES",
        "root's 0755 directory"
    );

    // Files of Alice in the sticky directory: Bob may not remove or rename them.
    let a_file = p(m, "tmp/alice");
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[],
            &["openwrite", &a_file, "O_CREAT,O_WRONLY", "mine"]
        ),
        "0"
    );
    assert_eq!(op(&["stat", &a_file, "uid"]), ALICE.to_string());
    assert_eq!(op_as(BOB, BOB, &[], &["unlink", &a_file]), "EPERM");
    assert_eq!(
        op_as(BOB, BOB, &[], &["rename", &a_file, &p(m, "tmp/bob")]),
        "EPERM"
    );
    assert_eq!(
        op_as(BOB, BOB, &[], &["open", &a_file, "O_WRONLY"]),
        "EACCES"
    );
    assert_eq!(op_as(BOB, BOB, &[], &["chmod", &a_file, "777"]), "EPERM");
    assert_eq!(
        op_as(BOB, BOB, &[], &["chown", &a_file, &BOB.to_string(), "-1"]),
        "EPERM"
    );
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[],
            &["chown", &a_file, &BOB.to_string(), "-1"]
        ),
        "EPERM",
        "giving a file away"
    );
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[],
            &["chown", &a_file, "-1", &OTHER_GROUP.to_string()]
        ),
        "EPERM",
        "not a member"
    );

    // Times: "now" needs write access, explicit times need ownership.
    assert_eq!(
        op_as(BOB, BOB, &[], &["utimens", &a_file, "now", "now"]),
        "EACCES"
    );
    assert_eq!(op_as(ALICE, ALICE, &[], &["chmod", &a_file, "666"]), "0");
    assert_eq!(
        op_as(BOB, BOB, &[], &["utimens", &a_file, "now", "now"]),
        "0"
    );
    assert_eq!(
        op_as(BOB, BOB, &[], &["utimens", &a_file, "1.0", "1.0"]),
        "EPERM"
    );
    assert_eq!(
        op_as(ALICE, ALICE, &[], &["utimens", &a_file, "1.0", "1.0"]),
        "0"
    );
    assert_eq!(op(&["stat", &a_file, "mtime"]), "1.000000000");
    assert_eq!(op_as(ALICE, ALICE, &[], &["unlink", &a_file]), "0");

    // Setgid directories pass their group, and directories their bit.
    assert_eq!(op(&["mkdir", &p(m, "proj"), "2777"]), "0");
    assert_eq!(
        op(&["stat", &p(m, "proj"), "mode"]),
        "777",
        "mkdir ignores setgid in its mode"
    );
    assert_eq!(op(&["chown", &p(m, "proj"), "0", &STAFF.to_string()]), "0");
    assert_eq!(op(&["chmod", &p(m, "proj"), "2777"]), "0");
    assert_eq!(op(&["stat", &p(m, "proj"), "mode"]), "2777");
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[],
            &["open", &p(m, "proj/f"), "O_CREAT,O_WRONLY", "644"]
        ),
        "0"
    );
    assert_eq!(op(&["stat", &p(m, "proj/f"), "gid"]), STAFF.to_string());
    assert_eq!(
        op_as(ALICE, ALICE, &[], &["mkdir", &p(m, "proj/sub"), "755"]),
        "0"
    );
    assert_eq!(op(&["stat", &p(m, "proj/sub"), "gid"]), STAFF.to_string());
    assert_eq!(op(&["stat", &p(m, "proj/sub"), "mode"]), "2755");

    // Set-id bits: a non-member cannot set setgid; writes and chown clear them.
    let exe = p(m, "tmp/exe");
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[STAFF],
            &["open", &exe, "O_CREAT,O_WRONLY", "755"]
        ),
        "0"
    );
    assert_eq!(op_as(ALICE, ALICE, &[STAFF], &["chmod", &exe, "6755"]), "0");
    assert_eq!(op(&["stat", &exe, "mode"]), "6755");
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[STAFF],
            &["chown", &exe, "-1", &STAFF.to_string()]
        ),
        "0"
    );
    assert_eq!(
        op(&["stat", &exe, "mode"]),
        "755",
        "chown clears set-id bits"
    );
    assert_eq!(op_as(ALICE, ALICE, &[], &["chmod", &exe, "2755"]), "0");
    assert_eq!(
        op(&["stat", &exe, "mode"]),
        "755",
        "setgid silently dropped for a non-member"
    );
    assert_eq!(op_as(ALICE, ALICE, &[STAFF], &["chmod", &exe, "6777"]), "0");
    assert_eq!(
        op_as(BOB, BOB, &[], &["openwrite", &exe, "O_WRONLY", "x"]),
        "0"
    );
    assert_eq!(
        op(&["stat", &exe, "mode"]),
        "777",
        "a write by another user clears set-id bits"
    );
    assert_eq!(op_as(ALICE, ALICE, &[STAFF], &["chmod", &exe, "6777"]), "0");
    assert_eq!(op_as(BOB, BOB, &[], &["truncate", &exe, "1"]), "0");
    assert_eq!(
        op(&["stat", &exe, "mode"]),
        "777",
        "a truncation by another user clears set-id bits"
    );

    // File capabilities go with any write or truncation, root's too, and
    // stay through a chmod (as Linux's file_remove_privs has it).
    let caps = |f: &str| {
        sh(&format!(
            "getfattr -n security.capability '{f}' 2>&1 || true"
        ))
    };
    let with_caps = |f: &str| {
        sh(&format!(
            "echo data > '{f}'; setfattr -n security.capability -v {CAP_NET_RAW} '{f}'"
        ));
        assert!(caps(f).contains("security.capability="), "{}", caps(f));
    };
    let capped = p(m, "tmp/capped");
    with_caps(&capped);
    assert_eq!(op(&["chmod", &capped, "755"]), "0");
    assert!(
        caps(&capped).contains("security.capability="),
        "chmod kept them"
    );
    assert_eq!(op(&["openwrite", &capped, "O_WRONLY", "x"]), "0");
    assert!(
        caps(&capped).contains("No such attribute"),
        "write: {}",
        caps(&capped)
    );
    with_caps(&capped);
    assert_eq!(op(&["truncate", &capped, "1"]), "0");
    assert!(
        caps(&capped).contains("No such attribute"),
        "truncate: {}",
        caps(&capped)
    );

    // Devices need privilege; fifos do not.
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[],
            &["mknod", &p(m, "tmp/dev"), "chr", "600", "1", "3"]
        ),
        "EPERM"
    );
    assert_eq!(
        op_as(
            ALICE,
            ALICE,
            &[],
            &["mknod", &p(m, "tmp/fifo"), "fifo", "600"]
        ),
        "0"
    );

    // trusted.* is root's; user.* follows the mode bits.
    let t = p(m, "tmp/attrs");
    assert_eq!(
        op_as(ALICE, ALICE, &[], &["open", &t, "O_CREAT,O_WRONLY", "644"]),
        "0"
    );
    assert_eq!(
        op_as(ALICE, ALICE, &[], &["setxattr", &t, "trusted.x", "v"]),
        "EPERM"
    );
    assert_eq!(
        op_as(ALICE, ALICE, &[], &["setxattr", &t, "user.x", "v"]),
        "0"
    );
    assert_eq!(op_as(BOB, BOB, &[], &["getxattr", &t, "user.x"]), "v");
    assert_eq!(
        op_as(BOB, BOB, &[], &["setxattr", &t, "user.x", "w"]),
        "EACCES"
    );
}

#[test]
fn users_with_kernel_permission_checks() {
    let s = Scratch::new();
    let m = s.mounted("128M", "allow_other");
    scenarios(&m);
}

#[test]
fn users_with_pagelog_permission_checks() {
    let s = Scratch::new();
    let m = s.mounted("128M", "allow_other,no_default_permissions");
    scenarios(&m);
}
