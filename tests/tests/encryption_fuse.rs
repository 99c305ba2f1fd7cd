//! Sealed (encrypted) images through the real tools: `pagelog-mkfs
//! --encrypt` with a passphrase from a file or a program, mounted with it
//! and refused without it or with a wrong one (exit 77, the image
//! unchanged); with compression, `du` and `df` show the savings; no name,
//! content or size is in the clear in the image; the checker verifies it
//! with the passphrase; a passphrase change rewraps the key; and a page
//! changed, swapped or replayed on the device reads as EIO, never as other
//! bytes, and the checker names it.

use std::path::{Path, PathBuf};
use std::process::Command;

use pagelog_tests::{bin, run, Mount, Scratch};

/// Cheap Argon2id costs: the tests need the key, not the second.
const CHEAP: [&str; 4] = ["--kdf-memory", "8M", "--kdf-passes", "1"];
const WRONG_PASSPHRASE: i32 = 77;

fn passphrase_file(s: &Scratch, name: &str, pass: &str) -> PathBuf {
    let p = s.path(name);
    std::fs::write(&p, format!("{pass}\n")).expect("write passphrase");
    p
}

/// A sealed, compressed image with the passphrase in `pass`.
fn sealed_image(s: &Scratch, pass: &Path) -> PathBuf {
    let mut args = vec!["--encrypt", "--compress", "zstd", "--passphrase-file"];
    let p = pass.to_str().expect("utf-8");
    args.push(p);
    args.extend(CHEAP);
    s.mkfs("vault.img", "256M", &args)
}

fn mount(image: &Path, dir: &Path, pass: &Path) -> Mount {
    std::fs::create_dir_all(dir).expect("mkdir");
    Mount::start(image, dir, &format!("passphrase_file={}", pass.display())).expect("mount")
}

fn hash(image: &Path) -> Vec<u8> {
    std::fs::read(image).expect("read image")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Text that compresses: a numbered line repeated.
fn text(lines: usize) -> String {
    (0..lines)
        .map(|i| format!("The confidential quarterly figures, line {i:07}.\n"))
        .collect()
}

fn kib(cmd: &mut Command) -> u64 {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|k| k.parse().ok())
        .expect("a number")
}

#[test]
fn a_sealed_image_mounts_with_its_passphrase_only_and_hides_everything() {
    let s = Scratch::new();
    let pass = passphrase_file(&s, "pass", "correct horse battery staple");
    let image = sealed_image(&s, &pass);
    let mnt = s.path("mnt");
    let m = mount(&image, &mnt, &pass);
    let secret_dir = m.path("project-nightingale");
    std::fs::create_dir(&secret_dir).expect("mkdir");
    let body = text(40_000);
    let file = secret_dir.join("merger-terms.txt");
    std::fs::write(&file, &body).expect("write");
    run(Command::new("sync").arg(&file));
    // The savings show where administrators look.
    let allocated = kib(Command::new("du").arg("-sk").arg(&secret_dir));
    let apparent = body.len() as u64 / 1024;
    assert!(
        allocated * 2 < apparent,
        "du: {allocated} KiB for {apparent} KiB of text"
    );
    let df = kib(Command::new("df").args(["-k", "--output=used"]).arg(&mnt));
    assert!(
        df < apparent,
        "df: {df} KiB used for {apparent} KiB of text"
    );
    assert!(m.unmount().success());
    let bytes = hash(&image);
    let size = body.len() as u64;
    for (what, needle) in [
        ("a directory name", b"project-nightingale".as_slice()),
        ("a file name", b"merger-terms.txt"),
        ("content", &body.as_bytes()[..48]),
        ("content", &body.as_bytes()[1_000_000..1_000_048]),
        ("the size", &size.to_le_bytes()[..]),
    ] {
        assert!(
            !contains(&bytes, needle),
            "{what} is in the clear in the image"
        );
    }
    // A wrong passphrase: its own exit status, and not a byte written.
    let wrong = passphrase_file(&s, "wrong", "incorrect horse");
    for (tool, args) in [
        (
            "pagelog-mount",
            vec![
                "-f".to_string(),
                "-o".into(),
                format!("passphrase_file={}", wrong.display()),
            ],
        ),
        (
            "pagelog-fsck",
            vec!["--passphrase-file".into(), wrong.display().to_string()],
        ),
        (
            "pagelog-info",
            vec!["--passphrase-file".into(), wrong.display().to_string()],
        ),
    ] {
        let mut cmd = Command::new(bin(tool));
        cmd.arg(&image);
        if tool == "pagelog-mount" {
            cmd.arg(&mnt);
        }
        let out = run(cmd.args(&args));
        assert_eq!(
            out.status.code(),
            Some(WRONG_PASSPHRASE),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            hash(&image) == bytes,
            "{tool} with a wrong passphrase changed the image"
        );
    }
    // The passphrase from a program works as from a file.
    let cmd = format!("cat {}", pass.display());
    let out = run(Command::new(bin("pagelog-fsck")).arg(&image).args([
        "--verify-data",
        "--passphrase-cmd",
        &cmd,
    ]));
    assert!(
        out.status.success(),
        "fsck --verify-data: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let m = mount(&image, &mnt, &pass);
    assert_eq!(std::fs::read_to_string(&file).expect("read back"), body);
    assert!(m.unmount().success());
}

#[test]
fn changing_the_passphrase_rewraps_the_key_and_nothing_else() {
    let s = Scratch::new();
    let old = passphrase_file(&s, "old", "first passphrase");
    let new = passphrase_file(&s, "new", "second passphrase");
    let image = sealed_image(&s, &old);
    let mnt = s.path("mnt");
    let m = mount(&image, &mnt, &old);
    std::fs::write(m.path("kept"), text(1000)).expect("write");
    assert!(m.unmount().success());
    let before = hash(&image);
    let out = run(Command::new(bin("pagelog-info"))
        .arg(&image)
        .arg("--change-passphrase")
        .arg("--passphrase-file")
        .arg(&old)
        .arg("--new-passphrase-file")
        .arg(&new));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = hash(&image);
    assert_eq!(before.len(), after.len());
    let changed: Vec<usize> = (0..before.len() / 4096)
        .filter(|&p| before[p * 4096..(p + 1) * 4096] != after[p * 4096..(p + 1) * 4096])
        .collect();
    assert_eq!(changed, vec![0, 1], "only the two superblock copies change");
    let out = run(Command::new(bin("pagelog-fsck"))
        .arg(&image)
        .arg("--passphrase-file")
        .arg(&old));
    assert_eq!(
        out.status.code(),
        Some(WRONG_PASSPHRASE),
        "the old passphrase still opens it"
    );
    let m = mount(&image, &mnt, &new);
    assert_eq!(
        std::fs::read_to_string(m.path("kept")).expect("read"),
        text(1000)
    );
    assert!(m.unmount().success());
}

/// Finds where file `name` of the sealed image keeps its first page,
/// through the library (the test knows the key: it made the image).
fn data_page(image: &Path, pass: &[u8], name: &[u8]) -> (u64, pagelog_core::Ino) {
    use pagelog_core::seal::passphrase::Source;
    use pagelog_core::{BlockDevice, Cred, FileDevice, Filesystem, Ino, MountOptions};
    let dev = FileDevice::open(image, false).expect("open");
    let file = std::env::temp_dir().join(format!("pagelog-pass-{}", std::process::id()));
    std::fs::write(&file, pass).expect("write");
    let key = pagelog_core::seal::unlock(&dev, &Source::File(file.clone())).expect("unlock");
    let _ = std::fs::remove_file(&file);
    let opts = MountOptions {
        read_only: true,
        key,
        ..MountOptions::default()
    };
    let dev: std::sync::Arc<dyn BlockDevice> = std::sync::Arc::new(dev);
    let mut fs = Filesystem::mount(dev, opts).expect("mount");
    let a = fs.lookup(&Cred::root(), Ino::ROOT, name).expect("lookup");
    let addr = fs.stored_at(a.ino, 0).expect("addr").expect("stored");
    (addr.0, a.ino)
}

fn page(bytes: &[u8], p: u64) -> Vec<u8> {
    bytes[p as usize * 4096..(p as usize + 1) * 4096].to_vec()
}

fn put(image: &Path, p: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(image)
        .expect("open");
    f.write_all_at(data, p * 4096).expect("write");
}

#[test]
fn changed_swapped_or_replayed_pages_read_as_eio_and_the_checker_names_them() {
    let s = Scratch::new();
    let pass = passphrase_file(&s, "pass", "tamper test");
    // Raw storage, so that each file's page is one unit of one page.
    let image = s.mkfs(
        "vault.img",
        "64M",
        &[
            "--encrypt",
            "--passphrase-file",
            pass.to_str().expect("utf-8"),
            "--kdf-memory",
            "8M",
            "--kdf-passes",
            "1",
        ],
    );
    let mnt = s.path("mnt");
    let m = mount(&image, &mnt, &pass);
    std::fs::write(m.path("a"), vec![b'A'; 4096]).expect("a");
    std::fs::write(m.path("b"), vec![b'B'; 4096]).expect("b");
    assert!(m.unmount().success());
    let (old_a, _) = data_page(&image, b"tamper test", b"a");
    let old = page(&hash(&image), old_a);
    let m = mount(&image, &mnt, &pass);
    std::fs::write(m.path("a"), vec![b'C'; 4096]).expect("rewrite a");
    assert!(m.unmount().success());
    let (addr_a, ino_a) = data_page(&image, b"tamper test", b"a");
    let (addr_b, _) = data_page(&image, b"tamper test", b"b");
    let pristine = hash(&image);
    let mut flipped = page(&pristine, addr_a);
    flipped[7] ^= 0x10;
    for (what, bytes) in [
        ("a flipped bit", flipped),
        ("b's page in a's place", page(&pristine, addr_b)),
        ("a's old version replayed", old.clone()),
    ] {
        std::fs::write(&image, &pristine).expect("restore");
        put(&image, addr_a, &bytes);
        let m = mount(&image, &mnt, &pass);
        let err = std::fs::read(m.path("a")).expect_err(what);
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{what}: {err}");
        assert_eq!(
            std::fs::read(m.path("b")).expect("b"),
            vec![b'B'; 4096],
            "{what}"
        );
        assert!(m.unmount().success());
        let out = run(Command::new(bin("pagelog-fsck"))
            .arg(&image)
            .args(["--verify-data", "--json", "--passphrase-file"])
            .arg(&pass));
        assert_eq!(out.status.code(), Some(4), "{what}: the checker finds it");
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("fsck prints JSON");
        let named = report["findings"].as_array().is_some_and(|f| {
            f.iter().any(|f| {
                f["inode"] == ino_a.0
                    && f["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("authenticate"))
            })
        });
        assert!(named, "{what}: {report}");
    }
}
