//! pagelog-info as an administrator uses it: the label and UUID given to
//! mkfs are shown, `--set-label` changes the label (and refuses while the
//! image is mounted), a mount and unmount keep it, the tool reads a
//! mounted image without disturbing it, and `--json` parses.

use std::process::Command;

use pagelog_tests::{bin, run, Mount, Scratch};

const UUID: &str = "0123abcd-4567-89ef-0123-456789abcdef";

fn info(args: &[&str]) -> (i32, String, String) {
    let out = run(Command::new(bin("pagelog-info")).args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of `Key:` in the text output.
fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .trim()
        .to_string()
}

fn json(img: &str) -> serde_json::Value {
    let (code, out, err) = info(&[img, "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn label_and_uuid_are_shown_set_and_kept() {
    let s = Scratch::new();
    let img = s.mkfs("fs.img", "64M", &["--label", "web", "-U", UUID]);
    let img_s = img.to_string_lossy().into_owned();
    let (code, out, err) = info(&[&img_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&out, "Label"), "web");
    assert_eq!(field(&out, "UUID"), UUID);
    assert!(field(&out, "State").starts_with("clean"), "{out}");
    assert!(
        field(&out, "Segment size").starts_with("2.0 MiB (512 pages)"),
        "{out}"
    );
    let v = json(&img_s);
    assert_eq!(v["label"], "web");
    assert_eq!(v["uuid"], UUID);
    assert_eq!(v["cleanly_unmounted"], true);
    assert_eq!(v["page_size"], 4096);
    assert!(
        v["usage"]["capacity_pages"].as_u64().is_some_and(|c| c > 0),
        "{v}"
    );
    // The root directory, the graveyard and the quota file.
    assert_eq!(v["usage"]["inodes"], 3);

    let (code, out, err) = info(&[&img_s, "--set-label", "mail"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("label set to \"mail\""), "{out}");
    assert_eq!(json(&img_s)["label"], "mail");

    std::fs::create_dir(s.path("mnt")).expect("mkdir");
    let m = Mount::start(&img, &s.path("mnt"), "").expect("mount");
    std::fs::write(m.path("f"), b"data").expect("write");
    // Read while mounted: no lock taken, the daemon is undisturbed.
    let v = json(&img_s);
    assert_eq!(v["label"], "mail");
    assert_eq!(v["cleanly_unmounted"], false);
    let (code, _, err) = info(&[&img_s, "--set-label", "other"]);
    assert_eq!(code, 1);
    assert!(err.contains("mounted"), "{err}");
    assert_eq!(std::fs::read(m.path("f")).expect("read"), b"data");
    assert!(m.unmount().success());

    // The daemon rewrote the superblocks at mount and unmount: the label
    // it was given is the one it kept.
    let v = json(&img_s);
    assert_eq!(v["label"], "mail");
    assert_eq!(v["uuid"], UUID);
    assert_eq!(v["cleanly_unmounted"], true);
    assert_eq!(v["usage"]["inodes"], 4, "and the file written");
    let fsck = run(Command::new(bin("pagelog-fsck")).arg(&img));
    assert_eq!(fsck.status.code(), Some(0));
}

#[test]
fn bad_labels_and_images_are_refused_clearly() {
    let s = Scratch::new();
    let img = s.mkfs("fs.img", "64M", &["--label", "keep"]);
    let img_s = img.to_string_lossy().into_owned();
    let long = "x".repeat(65);
    let (code, _, err) = info(&[&img_s, "--set-label", &long]);
    assert_eq!(code, 1);
    assert!(err.contains("at most 64 bytes"), "{err}");
    let (code, _, err) = info(&[&img_s, "--set-label", &long[..64]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&img_s)["label"], long[..64]);
    let (code, _, err) = info(&[&img_s, "--set-label", ""]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&img_s)["label"], "");

    let zeros = s.path("zeros.img");
    std::fs::write(&zeros, vec![0u8; 1 << 20]).expect("write");
    let (code, out, err) = info(&[&zeros.to_string_lossy()]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("not a pagelog filesystem"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (code, _, err) = info(&[&s.path("missing.img").to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot open"), "{err}");
}
