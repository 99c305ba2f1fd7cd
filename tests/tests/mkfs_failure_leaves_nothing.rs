//! A pagelog-mkfs that fails leaves nothing behind: no new file for bad
//! arguments (checked before any file is created) or for a failure after
//! it created one, and an existing file exactly as it was; each message
//! names the size as given.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use pagelog_tests::{bin, run, Scratch};

/// Runs mkfs on `img` with `args`; returns (exit code, stderr).
fn mkfs(img: &Path, args: &[&str]) -> (i32, String) {
    let out = run(Command::new(bin("pagelog-mkfs")).arg(img).args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Arguments that must fail, each with a word its message must hold.
fn failing() -> Vec<(Vec<String>, &'static str)> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (v(&["--size", "0"]), "0 bytes is too small"),
        (v(&["--size", "1K"]), "1 KiB is too small"),
        (v(&["--size", "100K"]), "100 KiB is too small"),
        (v(&["--size", "lots"]), "not a size"),
        (
            v(&["--size", "64M", "--segment-size", "3M"]),
            "power of two",
        ),
        (
            v(&["--size", "64M", "--segment-size", "1000K"]),
            "power of two",
        ),
        (v(&["--size", "64M", "--uuid", "zz"]), "not a UUID"),
        (
            v(&["--size", "64M", "-L", &"x".repeat(65)]),
            "longer than 64",
        ),
        (v(&["64M", "--size", "1G"]), "two sizes"),
        (v(&["1"]), "1 KiB is too small"),
        // Larger than any file can be: fails after mkfs created the file.
        (v(&["--size", "9000000T"]), "cannot make"),
    ]
}

#[test]
fn a_failed_mkfs_leaves_no_new_file() {
    let s = Scratch::new();
    let img = s.path("new.img");
    let (code, err) = mkfs(&img, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("give its size"), "{err}");
    assert!(!img.exists(), "mkfs without --size left {}", img.display());
    for (args, word) in failing() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = mkfs(&img, &args);
        assert_eq!(code, 1, "mkfs {args:?}: {err}");
        assert!(
            err.contains(word),
            "mkfs {args:?} should say {word:?}: {err}"
        );
        assert!(!err.contains(": 0 KiB"), "mkfs {args:?}: {err}");
        assert!(!img.exists(), "mkfs {args:?} left {}", img.display());
    }
}

#[test]
fn a_failed_mkfs_leaves_an_existing_file_as_it_was() {
    let s = Scratch::new();
    let img = s.path("old.img");
    let content: Vec<u8> = (0..(40u32 << 20) / 4)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    fs::write(&img, &content).expect("write");
    let meta = fs::metadata(&img).expect("stat");
    for (args, word) in failing() {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.push("--force");
        let (code, err) = mkfs(&img, &args);
        assert_eq!(code, 1, "mkfs {args:?}: {err}");
        assert!(
            err.contains(word),
            "mkfs {args:?} should say {word:?}: {err}"
        );
        let now = fs::metadata(&img).expect("mkfs removed an existing file");
        assert_eq!(now.len(), meta.len(), "mkfs {args:?} resized the file");
        assert_eq!(
            now.modified().ok(),
            meta.modified().ok(),
            "mkfs {args:?} wrote"
        );
        assert_eq!(now.mode(), meta.mode(), "mkfs {args:?} changed the mode");
    }
    assert!(fs::read(&img).expect("read") == content, "content changed");
    // An empty file: its size must be given, and it stays.
    let empty = s.path("empty.img");
    fs::write(&empty, b"").expect("write");
    let (code, err) = mkfs(&empty, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("give its size"), "{err}");
    assert!(empty.exists(), "mkfs removed a file it did not create");
    // Neither a file nor a block device.
    let dir = s.path("a-dir");
    fs::create_dir(&dir).expect("mkdir");
    let (code, err) = mkfs(&dir, &["--size", "64M", "--force"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("neither a regular file nor a block device"),
        "{err}"
    );
}
