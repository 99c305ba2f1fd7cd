//! A transform built outside the workspace (`modules/example-rle`, its own
//! crate) and loaded at run time: mkfs stores data through it, a mount
//! with `-o modules=DIR` reads and writes through it, fsck verifies
//! through it, and a mount without it is refused by the transform's name
//! and told how to load it. An untrusted module file is not loaded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pagelog_tests::{bin, run, sh, Mount, Scratch};

/// Builds the example module (once per run; offline: it has no
/// dependencies) and returns the library.
fn build_module() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Beside the workspace's own build: target/<profile>/deps/<test>.
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the target directory")
        .join("modules");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run(Command::new(cargo)
        .args([
            "build",
            "--release",
            "--offline",
            "--quiet",
            "--manifest-path",
        ])
        .arg(root.join("modules/example-rle/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target));
    assert!(
        out.status.success(),
        "building the example module: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("release/libpagelog_transform_rle.so")
}

/// A directory holding the module, as the daemon trusts it (root's, not
/// writable by others).
fn module_dir(s: &Scratch) -> PathBuf {
    let dir = s.path("modules");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let so = dir.join("rle.so");
    std::fs::copy(build_module(), &so).expect("copy the module");
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Runs pagelog-mount (in the background) expecting it to fail; returns
/// what it said.
fn mount_fails(image: &Path, dir: &Path, opts: &str) -> String {
    let mut cmd = Command::new(bin("pagelog-mount"));
    cmd.arg(image).arg(dir);
    if !opts.is_empty() {
        cmd.arg("-o").arg(opts);
    }
    let out = run(&mut cmd);
    assert!(!out.status.success(), "mounted without what it needs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_outside_module_stores_reads_checks_and_is_asked_for_by_name() {
    let s = Scratch::new();
    let modules = module_dir(&s);
    let dir_opt = format!("--modules={}", modules.display());
    let img = s.mkfs("fs.img", "128M", &[&dir_opt, "--compress", "rle"]);
    let mnt = s.path("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let opts = format!("modules={}", modules.display());
    let m = Mount::start(&img, &mnt, &opts).expect("mount with the module");
    // Runs of equal bytes: what run-length encoding shrinks.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i / 1000) as u8).collect();
    std::fs::write(m.path("runs"), &data).expect("write");
    sh(&format!("sync {}", m.path("runs").display()));
    let chain = sh(&format!(
        "getfattr --only-values -n pagelog.compress {}",
        m.path("runs").display()
    ));
    assert!(chain.starts_with("rle"), "{chain}");
    let du = sh(&format!("du -k {}", m.path("runs").display()));
    let kib: u64 = du
        .split_whitespace()
        .next()
        .and_then(|k| k.parse().ok())
        .expect("du");
    assert!(kib * 1024 * 3 < data.len() as u64, "du {kib} KiB");
    let m = m.remount(&opts);
    assert_eq!(std::fs::read(m.path("runs")).expect("read"), data);
    assert!(m.unmount().success());
    let out = run(Command::new(bin("pagelog-fsck"))
        .arg("--verify-data")
        .arg(&dir_opt)
        .arg(&img));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Without the module: refused by name, and told how to load it.
    let err = mount_fails(&img, &mnt, "");
    assert!(err.contains("needs transform 'rle' (id 200)"), "{err}");
    assert!(err.contains("modules=DIR"), "{err}");
    // pagelog-info reads the tables alone, and names the chain.
    let out = run(Command::new(bin("pagelog-info")).arg(&img));
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && info.contains("chains 1 rle#03"),
        "{info}"
    );

    // A module others may write is not loaded.
    let so = modules.join("rle.so");
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = mount_fails(&img, &mnt, &opts);
    assert!(err.contains("writable by no one else"), "{err}");
}
