//! `pagelog.stats` exists only on the mount's root. On any other file it
//! is absent (ENODATA, "No such attribute"), like every name in a namespace
//! pagelog does not store; setting such a name is "not supported".

use std::process::Command;

use pagelog_tests::{op, run, Scratch};

#[test]
fn stats_only_on_the_root_and_unknown_names_are_absent() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    std::fs::write(m.path("f"), b"x").expect("write");
    std::fs::create_dir(m.path("d")).expect("mkdir");
    let root = m.dir.to_string_lossy().into_owned();
    let out = run(Command::new("getfattr")
        .args(["--only-values", "-n", "pagelog.stats"])
        .arg(&m.dir));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("free_segments: "));
    for rel in ["f", "d"] {
        let out = run(Command::new("getfattr")
            .args(["-n", "pagelog.stats"])
            .arg(m.path(rel)));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No such attribute"), "{rel}: {err}");
        let path = m.path(rel).to_string_lossy().into_owned();
        for name in ["pagelog.stats", "pagelog.other", "bogus.name"] {
            assert_eq!(op(&["getxattr", &path, name]), "ENODATA", "{rel} {name}");
        }
        assert_eq!(
            op(&["setxattr", &path, "bogus.name", "v"]),
            "EOPNOTSUPP",
            "{rel}"
        );
    }
    assert_eq!(op(&["getxattr", &root, "pagelog.other"]), "ENODATA");
    let out = run(Command::new("setfattr")
        .args(["-n", "pagelog.stats", "-v", "1"])
        .arg(m.path("f")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not supported"));
    assert!(m.unmount().success());
}
