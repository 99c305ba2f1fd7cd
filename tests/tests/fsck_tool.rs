//! pagelog-fsck as administrators and fsck(8) call it: exit codes, text
//! and JSON reports that say what and where, refusal on a mounted image,
//! the fast check at boot on a clean filesystem.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::symlink;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};

use pagelog_core::id_table::IdState;
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::meta_table::{MetaTable, TableId};
use pagelog_core::page_table::PageTable;
use pagelog_core::recovery::recover;
use pagelog_core::{BlockDevice, FileDevice};
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
    // "Cleanly unmounted" is the superblock's state, named so: beside exit
    // code 4 nothing may read as "the filesystem is clean".
    assert!(out.contains("\"cleanly_unmounted\": true"), "{out}");
    assert!(out.contains("\"verdict\": \"problems found\""), "{out}");
    assert!(!out.contains("\"clean\""), "{out}");
    // -n and a preen change nothing: dropping the page loses bytes.
    let image_now = fs::read(&img).expect("read image");
    let (code, _, _) = fsck(&["-n", "--verify-data", &img_s]);
    assert_eq!(code, 4);
    let (code, out, _) = fsck(&["-p", "-f", "--verify-data", &img_s]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("run pagelog-fsck -y"), "{out}");
    assert!(
        fs::read(&img).expect("read image") == image_now,
        "nothing written"
    );
    // -y drops the page, names the file and the range, exits 1; a check
    // after it is clean, and the file reads with a hole where it was.
    let (code, out, _) = fsck(&["-y", "--verify-data", "--json", &img_s]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"verdict\": \"repaired\""), "{out}");
    assert!(out.contains("\"fix\": \"drop-pages\""), "{out}");
    assert!(out.contains("dropped (unreadable), a hole now"), "{out}");
    let (code, out, _) = fsck(&["--verify-data", &img_s]);
    assert_eq!(code, 0, "{out}");
    let m = Mount::start(&img, &s.path("mnt"), "").expect("mount");
    let got = fs::read(m.path("d/f7")).expect("reads after the repair");
    let want = "file 7 ".repeat(1000);
    assert_eq!(got.len(), want.len());
    let differ: Vec<usize> = (0..got.len())
        .filter(|&i| got[i] != want.as_bytes()[i])
        .collect();
    assert!(
        !differ.is_empty() && differ.iter().all(|&i| got[i] == 0),
        "a hole, the rest intact"
    );
    assert!(m.unmount().success());
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
    let (code, _, _) = fsck(&["--bogus"]);
    assert_eq!(code, 16);
}

/// A file that holds no pagelog filesystem gets one plain sentence and
/// exit 8: no fatal line followed by a "1 problems" summary, no "device
/// holds 0 bytes" for a file of a few KiB.
#[test]
fn a_file_that_is_not_pagelog_is_said_so_plainly() {
    let s = Scratch::new();
    let mut random = vec![0u8; 1 << 20];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    let cases = [
        ("zeros.img", vec![0u8; 1 << 20], "(no superblock magic)"),
        ("random.img", random, "(no superblock magic)"),
        (
            "empty.img",
            Vec::new(),
            "(too small for the two 4 KiB superblock pages)",
        ),
        (
            "small.img",
            vec![1u8; 5000],
            "(too small for the two 4 KiB superblock pages)",
        ),
    ];
    for (name, bytes, why) in cases {
        let img = s.path(name);
        fs::write(&img, bytes).expect("write");
        let img = img.to_string_lossy().into_owned();
        let (code, out, err) = fsck(&[&img]);
        assert_eq!(code, 8, "{name}: {out}{err}");
        assert_eq!(
            out,
            format!("{img} is not a pagelog filesystem {why}\n"),
            "{name}"
        );
        assert!(!err.contains("panicked"), "{err}");
        let (code, out, _) = fsck(&["--json", &img]);
        assert_eq!(code, 8);
        for want in [
            "\"verdict\": \"could not check\"",
            "\"checkpoint\": null",
            "\"cleanly_unmounted\": null",
            "\"stats\": null",
            "\"kind\": \"NotPagelog\"",
        ] {
            assert!(out.contains(want), "{name}: {want} missing from {out}");
        }
    }
}

/// With its reader gone (`pagelog-fsck -n IMG | head -1`), the check
/// still exits with its own status and prints no panic.
#[test]
fn a_closed_stdout_is_not_a_crash() {
    let s = Scratch::new();
    let img = populated(&s);
    let img = img.to_string_lossy().into_owned();
    for args in [vec!["-n", img.as_str()], vec!["--json", img.as_str()]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = run(Command::new(bin("pagelog-fsck"))
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped()));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// A damaged page of the node address table (not its root) is a finding
/// naming the page, exit 4, while the image still mounts: not "the check
/// could not run".
#[test]
fn a_damaged_table_page_is_a_finding_exit_four_and_built_again_by_yes() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    // Over 255 nodes, so that the table has more than one leaf page.
    for i in 0..300 {
        fs::write(m.path(&format!("f{i}")), vec![i as u8; 24 << 10]).expect("write");
    }
    let img = m.image.clone();
    assert!(m.unmount().success());
    let dev = FileDevice::open(&img, true).expect("open");
    let rec = recover(&dev, false, None).expect("recover");
    let cp = &rec.checkpoint;
    // The node address table's pages are units, found through the page
    // address table.
    let units = IdState {
        root: cp.pat_root,
        free_head: cp.pat_free_head.0,
        watermark: cp.pat_watermark.0,
    };
    let pat = PageTable::open(units, &rec.sb.geometry, 0);
    let mut leaf = None;
    MetaTable::new_virtual(TableId::NodeAddress, cp.nat_root, 0, pat, false)
        .walk(
            &dev,
            &mut |level, index, _, addr, _| {
                if level == 0 && index == 1 {
                    leaf = Some(addr);
                }
                Ok(())
            },
            &mut |_, _, vpn, e| panic!("unit {vpn}: {e}"),
        )
        .expect("walk");
    let leaf = leaf.expect("a second leaf page");
    let mut page = vec![0u8; PAGE_SIZE];
    dev.read(leaf, &mut page).expect("read");
    page[2000] ^= 0x40;
    dev.write(leaf, &page).expect("write");
    drop(dev);
    let img_s = img.to_string_lossy().into_owned();
    let (code, out, err) = fsck(&[&img_s]);
    assert_eq!(code, 4, "{out}{err}");
    let named = "node address table page (level 0, index 1";
    assert!(
        out.lines()
            .any(|l| l.contains(named) && l.contains(&format!("page {leaf}"))),
        "{out}"
    );
    assert!(
        out.contains("full check:") && out.contains("problems"),
        "{out}"
    );
    let (code, out, _) = fsck(&["--json", &img_s]);
    assert_eq!(code, 4);
    assert!(out.contains("\"verdict\": \"problems found\""), "{out}");
    // The leaf is built again from the nodes it named, found in their
    // units: every file is there.
    let (code, out, err) = fsck(&["-y", &img_s]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("node address table page 1 built again"),
        "{out}"
    );
    let (code, out, err) = fsck(&["--verify-data", &img_s]);
    assert_eq!(code, 0, "{out}{err}");
    let m = Mount::start(&img, &s.path("mnt"), "").expect("the image mounts");
    for i in 0..300 {
        let bytes = fs::read(m.path(&format!("f{i}"))).expect("read");
        assert_eq!(bytes, vec![i as u8; 24 << 10], "f{i}");
    }
    assert!(m.unmount().success());
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

/// The checkpoint both superblocks name after a clean unmount is damaged:
/// the check lists the others the log holds and stops (8); `-y` falls back
/// to the newest whose state reads and says what that loses (1); what
/// was there before the last mount is all there.
#[test]
fn a_damaged_newest_checkpoint_is_fallen_back_past() {
    let s = Scratch::new();
    let img = populated(&s);
    let m = Mount::start(&img, &s.path("mnt"), "").expect("mount");
    fs::write(m.path("late"), b"written in the last mount").expect("write");
    assert!(m.unmount().success());
    let dev = FileDevice::open(&img, true).expect("open");
    let rec = recover(&dev, false, None).expect("recover");
    let (named, addr) = (rec.checkpoint.no, rec.checkpoint_addr);
    let mut page = vec![0u8; PAGE_SIZE];
    dev.read(addr, &mut page).expect("read");
    page[300] ^= 0x08;
    dev.write(addr, &page).expect("write");
    drop(dev);
    let img_s = img.to_string_lossy().into_owned();
    let (code, out, err) = fsck(&["-n", &img_s]);
    assert_eq!(code, 8, "{out}{err}");
    assert!(
        out.contains("the log holds other checkpoints")
            && out.contains("a repair (-y) starts from"),
        "{out}"
    );
    // Asked for a checkpoint the log does not hold: said, nothing done.
    let (code, out, err) = fsck(&["-y", "--checkpoint", "99999", &img_s]);
    assert_eq!(code, 8, "{out}{err}");
    assert!(err.contains("checkpoint 99999 is not in the log"), "{err}");
    let (code, out, err) = fsck(&["-y", &img_s]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("fixed: starting from checkpoint")
            && out.contains(&format!("instead of checkpoint {named}")),
        "{out}"
    );
    let (code, out, err) = fsck(&["--verify-data", &img_s]);
    assert_eq!(code, 0, "{out}{err}");
    let m = Mount::start(&img, &s.path("mnt"), "").expect("mounts again");
    for i in 0..20 {
        let bytes = fs::read(m.path(&format!("d/f{i}"))).expect("read");
        assert_eq!(bytes, format!("file {i} ").repeat(1000).into_bytes());
    }
    if let Ok(late) = fs::read(m.path("late")) {
        assert_eq!(late, b"written in the last mount");
    }
    assert!(m.unmount().success());
}

/// `--checkpoint N -n` checks exactly that checkpoint and writes nothing;
/// `-y --checkpoint N` makes it the filesystem's.
#[test]
fn checkpoint_n_is_checked_and_repaired_from() {
    let s = Scratch::new();
    let img = populated(&s);
    let dev = FileDevice::open(&img, false).expect("open");
    let before = recover(&dev, false, None).expect("recover").checkpoint.no;
    drop(dev);
    let m = Mount::start(&img, &s.path("mnt"), "").expect("mount");
    fs::write(m.path("late"), b"written after").expect("write");
    assert!(m.unmount().success());
    let img_s = img.to_string_lossy().into_owned();
    let bytes = fs::read(&img).expect("image");
    let no = before.0.to_string();
    let (code, out, err) = fsck(&["-n", "--checkpoint", &no, &img_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("as asked (--checkpoint {no})"))
            && out.contains(&format!("checkpoint {no}:")),
        "{out}"
    );
    assert!(fs::read(&img).expect("image") == bytes, "-n wrote");
    let (code, out, err) = fsck(&["-y", "--checkpoint", &no, &img_s]);
    assert_eq!(code, 1, "{out}{err}");
    let m = Mount::start(&img, &s.path("mnt"), "").expect("mounts");
    assert!(!m.path("late").exists(), "what came after is gone");
    assert!(m.path("d/f3").exists());
    assert!(m.unmount().success());
    let (code, out, err) = fsck(&[&img_s]);
    assert_eq!(code, 0, "{out}{err}");
}
