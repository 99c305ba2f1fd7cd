//! pagelog-fsck as administrators and fsck(8) call it: exit codes, text
//! and JSON reports that say what and where, refusal on a mounted image,
//! the fast check at boot on a clean filesystem.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::symlink;
use std::os::unix::fs::FileExt;
use std::process::Command;

use pagelog_tests::{bin, run, Mount, Scratch};

fn fsck(args: &[&str]) -> (i32, String, String) {
    let out = run(Command::new(bin("pagelog-fsck")).args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An image with some files, cleanly unmounted.
fn populated(s: &Scratch) -> std::path::PathBuf {
    let m = s.mounted("128M", "");
    fs::create_dir(m.path("d")).expect("mkdir");
    for i in 0..20 {
        fs::write(
            m.path(&format!("d/f{i}")),
            format!("file {i} ").repeat(1000),
        )
        .expect("write");
    }
    let img = m.image.clone();
    assert!(m.unmount().success());
    img
}

#[test]
fn clean_image_exits_zero_at_every_depth() {
    let s = Scratch::new();
    let img = populated(&s);
    let img = img.to_string_lossy().into_owned();
    for args in [
        vec![img.as_str()],
        vec!["--fast", &img],
        vec!["--verify-data", &img],
        vec!["-n", &img],
        vec!["-p", &img],
    ] {
        let (code, out, err) = fsck(&args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert!(out.contains("clean"), "{args:?}: {out}");
    }
    let (_, out, _) = fsck(&["-a", &img]);
    assert!(
        out.contains("fast check"),
        "boot-time check of a clean filesystem is the fast one: {out}"
    );
    let (_, out, _) = fsck(&["-a", "-f", &img]);
    assert!(
        out.contains("full check"),
        "-f forces the full check: {out}"
    );
    let (code, _, err) = fsck(&["-t", "--verify-data", &img]);
    assert_eq!(code, 0, "{err}");
    for phase in ["metadata pages", "record summaries", "data pages", "total"] {
        assert!(
            err.contains(&format!("{phase}: ")),
            "-t times {phase}: {err}"
        );
    }
}

#[test]
fn damaged_data_is_reported_with_its_place_and_exit_four() {
    let s = Scratch::new();
    let img = populated(&s);
    let bytes = fs::read(&img).expect("read image");
    let needle = "file 7 ".repeat(100);
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("data on disk");
    let f = OpenOptions::new().write(true).open(&img).expect("open");
    f.write_all_at(&[bytes[pos] ^ 1], pos as u64).expect("flip");
    drop(f);
    let img_s = img.to_string_lossy().into_owned();
    let (code, _, _) = fsck(&[&img_s]);
    assert_eq!(code, 0, "metadata is intact");
    let (code, out, _) = fsck(&["--verify-data", &img_s]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("fails its checksum") && out.contains("inode") && out.contains("page"),
        "{out}"
    );
    let (code, out, _) = fsck(&["--verify-data", "--json", &img_s]);
    assert_eq!(code, 4);
    assert!(
        out.contains("\"kind\": \"DataDamaged\"") && out.contains("\"exit_code\": 4"),
        "{out}"
    );
    let (code, out, _) = fsck(&["-y", "--verify-data", &img_s]);
    assert_eq!(code, 4);
    assert!(out.contains("repair is not available yet"), "{out}");
}

#[test]
fn operational_errors_exit_eight_and_usage_sixteen() {
    let s = Scratch::new();
    let img = populated(&s);
    let mnt = s.path("mnt");
    let m = Mount::start(&img, &mnt, "").expect("mount");
    let (code, _, err) = fsck(&[&img.to_string_lossy()]);
    assert_eq!(code, 8);
    assert!(err.contains("mounted"), "{err}");
    assert!(m.unmount().success());
    let (code, _, err) = fsck(&[&s.path("missing.img").to_string_lossy()]);
    assert_eq!(code, 8);
    assert!(err.contains("cannot open"), "{err}");
    let zeros = s.path("zeros.img");
    fs::write(&zeros, vec![0u8; 1 << 20]).expect("write");
    let (code, out, _) = fsck(&[&zeros.to_string_lossy()]);
    assert_eq!(code, 8);
    assert!(out.contains("not a pagelog filesystem"), "{out}");
    let (code, _, _) = fsck(&["--bogus"]);
    assert_eq!(code, 16);
}

#[test]
fn fsck_helper_name_works() {
    let s = Scratch::new();
    let img = populated(&s);
    let helper = s.path("fsck.pagelog");
    symlink(bin("pagelog-fsck"), &helper).expect("symlink");
    let out = run(Command::new(&helper).arg("-p").arg(&img));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
