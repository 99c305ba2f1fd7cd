//! Compression through a real mount: `du` and `df` show what it saves,
//! `getfattr` reports it, `chattr +c`/`-c` and `setfattr` choose it per
//! directory (inherited by what is made inside), and every byte reads back
//! after a remount, with the checker verifying every compressed cluster.

use std::process::Command;

use pagelog_tests::{bin, run, sh, Scratch};

/// Writes `files` text files of about `size` bytes each under `dir`:
/// words drawn from a small vocabulary, so they compress several times.
fn corpus(dir: &std::path::Path, files: usize, size: usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let words = ["log ", "structured ", "filesystem ", "page ", "cluster\n"];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for f in 0..files {
        let mut text = String::with_capacity(size);
        while text.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(words[(x % 5) as usize]);
        }
        std::fs::write(dir.join(format!("f{f}.txt")), text).expect("write");
    }
}

/// Kilobytes `du` gives (`-k`, allocated; with `--apparent-size`, bytes
/// of content).
fn du(path: &std::path::Path, apparent: bool) -> u64 {
    let mut cmd = Command::new("du");
    cmd.arg("-sk");
    if apparent {
        cmd.arg("--apparent-size");
    }
    let out = run(cmd.arg(path));
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|k| k.parse().ok())
        .expect("du prints a number")
}

/// Used kilobytes `df` gives for the filesystem holding `path`.
fn df_used(path: &std::path::Path) -> u64 {
    let out = run(Command::new("df").args(["-k", "--output=used"]).arg(path));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints a number")
}

/// fsyncs every file under `dir` (`sync FILE...`).
fn fsync_all(dir: &std::path::Path) {
    sh(&format!("find {} -type f -exec sync {{}} +", dir.display()));
}

fn xattr(path: &std::path::Path, name: &str) -> String {
    let out = run(Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn du_df_and_the_report_show_the_savings_and_everything_reads_back() {
    let s = Scratch::new();
    let src = s.path("src");
    corpus(&src, 40, 200_000);
    let m = s.mounted_with("256M", &["--compress", "zstd"], "");
    let df_before = df_used(&m.dir);
    sh(&format!(
        "cp -a {} {}",
        src.display(),
        m.path("c").display()
    ));
    // fsync commits (syncfs never reaches a FUSE daemon); the daemon then
    // has the kernel drop the block counts it cached while data was dirty.
    fsync_all(&m.path("c"));
    let (stored, content) = (du(&m.path("c"), false), du(&m.path("c"), true));
    assert!(stored * 3 < content, "du: {stored} KiB for {content} KiB");
    let df_grew = df_used(&m.dir) - df_before;
    assert!(
        df_grew * 2 < content,
        "df grew by {df_grew} KiB for {content} KiB"
    );
    let report = xattr(&m.path("c"), "pagelog.compression");
    assert!(report.contains("chain: zstd:3"), "{report}");
    assert!(report.contains("files: 40"), "{report}");
    assert_eq!(xattr(&m.path("c/f0.txt"), "pagelog.compress"), "zstd:3");
    let m = m.remount("");
    sh(&format!(
        "diff -r {} {}",
        src.display(),
        m.path("c").display()
    ));
    let image = m.image.clone();
    assert!(m.unmount().success());
    let out = run(Command::new(bin("pagelog-fsck"))
        .arg("--verify-data")
        .arg(&image));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let info = String::from_utf8_lossy(&run(Command::new(bin("pagelog-info")).arg(&image)).stdout)
        .into_owned();
    assert!(
        info.contains("ro_compat 0x1, incompat 0x1 (quota, transforms)"),
        "{info}"
    );
    assert!(
        info.contains("chains 1 zstd:3; clusters of 64 KiB; at mkfs, new data: zstd:3"),
        "{info}"
    );
}

#[test]
fn chattr_and_setfattr_choose_compression_per_directory() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    let plain = m.path("plain");
    let packed = m.path("packed");
    std::fs::create_dir(&plain).expect("mkdir");
    std::fs::create_dir(&packed).expect("mkdir");
    sh(&format!("chattr +c {}", packed.display()));
    let attrs = sh(&format!(
        "lsattr -d {} {}",
        packed.display(),
        plain.display()
    ));
    let flags: Vec<&str> = attrs
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert!(flags[0].contains('c') && !flags[1].contains('c'), "{attrs}");
    assert_eq!(xattr(&packed, "pagelog.compress"), "zstd:3");
    // Made inside: inherited, at any depth.
    corpus(&packed.join("deep"), 4, 100_000);
    corpus(&plain, 4, 100_000);
    fsync_all(&m.dir);
    assert_eq!(
        xattr(&packed.join("deep/f1.txt"), "pagelog.compress"),
        "zstd:3"
    );
    assert!(du(&packed, false) * 3 < du(&plain, false));
    // A level of one's own, then none; other flags are refused.
    sh(&format!(
        "setfattr -n pagelog.compress -v zstd:9 {}",
        plain.display()
    ));
    assert_eq!(xattr(&plain, "pagelog.compress"), "zstd:9");
    sh(&format!("chattr -c {}", packed.display()));
    assert_eq!(xattr(&packed, "pagelog.compress"), "none");
    let out = run(Command::new("chattr").arg("+i").arg(&packed));
    assert!(!out.status.success());
    let out = run(Command::new("setfattr")
        .args(["-n", "pagelog.compress", "-v", "lz4"])
        .arg(&plain));
    assert!(!out.status.success());
    assert!(m.unmount().success());
}
