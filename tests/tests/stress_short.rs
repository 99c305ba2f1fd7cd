//! A short run of pagelog-stress, as CI runs it: a multi-threaded mixed
//! workload that verifies every read, with the daemon killed at random
//! moments; every crash must leave a clean image holding everything
//! fsync'd (ordered and full modes), also on an image so small that the
//! log wraps around many times and the cleaner works under the kills.

use std::process::Command;

use pagelog_tests::{bin, run, Scratch};

fn stress(journal: &str, seed: &str) {
    stress_on(journal, seed, "512M", &[]);
}

fn stress_on(journal: &str, seed: &str, size: &str, mkfs: &[&str]) {
    let s = Scratch::new();
    let img = s.mkfs("stress.img", size, mkfs);
    let dir = s.path("mnt");
    std::fs::create_dir(&dir).expect("mkdir");
    let out = run(Command::new(bin("pagelog-stress"))
        .arg("--image")
        .arg(&img)
        .arg("--dir")
        .arg(&dir)
        .args([
            "--crashes",
            "3",
            "--seconds",
            "1.5",
            "--threads",
            "3",
            "--journal",
            journal,
            "--seed",
            seed,
        ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 crashes survived, 0 errors"), "{text}");
}

#[test]
fn stress_with_crashes_ordered() {
    stress("ordered", "7");
}

#[test]
fn stress_with_crashes_full() {
    stress("full", "11");
}

/// 48 MiB, while the workload writes hundreds: without the cleaner this
/// would end in ENOSPC (an error for the tool) within the first second.
#[test]
fn stress_with_crashes_while_cleaning() {
    stress_on("ordered", "13", "48M", &["--segment-size", "256K"]);
}
