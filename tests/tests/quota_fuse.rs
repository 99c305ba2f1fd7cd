//! Quotas through the mount, as other users (setpriv) with ordinary tools:
//! limits set with `pagelog-quota` through the daemon hold at the exact
//! byte and file, a soft limit holds once its grace time is over, root
//! (CAP_SYS_RESOURCE) exceeds limits, many writers against one limit stop
//! exactly at it, the report matches `du`, and usage after a SIGKILL of
//! the daemon checks clean and still matches.

use std::path::Path;
use std::process::Command;

use pagelog_tests::{assert_checks_clean, bin, run, sh, sh_as, Mount, Scratch};

const ALICE: u32 = 1001;
const PS: u64 = 4096;

/// Runs `pagelog-quota ARGS` and returns its output, asserting success.
fn quota(args: &[&str]) -> String {
    let out = run(Command::new(bin("pagelog-quota")).args(args));
    assert!(
        out.status.success(),
        "pagelog-quota {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The report's line of user `uid`, split into columns.
fn report_line(target: &Path, uid: u32) -> Vec<String> {
    kind_line(target, "user", uid)
}

/// The report's line of user or group (`kind`) `id`, split into columns.
fn kind_line(target: &Path, kind: &str, id: u32) -> Vec<String> {
    // The name repquota would print: the user's or group's, or #ID.
    let db = if kind == "user" { "passwd" } else { "group" };
    let who = sh(&format!("getent {db} {id} | cut -d: -f1"));
    let who = match who.trim() {
        "" => format!("#{id}"),
        name => name.to_string(),
    };
    let flag = format!("--{kind}");
    let text = quota(&["report", &flag, &target.to_string_lossy()]);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{who} ")))
        .unwrap_or_else(|| panic!("no line for {who} in\n{text}"));
    line.split_whitespace().map(str::to_string).collect()
}

/// KiB in use by files of `uid` under `dir`, as du counts them
/// (st_blocks).
fn du_kib_of(dir: &Path, uid: u32) -> u64 {
    du_kib_where(dir, &format!("-user {uid}"))
}

/// KiB in use by the files `find` selects with `test` under `dir`.
fn du_kib_where(dir: &Path, test: &str) -> u64 {
    let out = sh(&format!(
        "find '{}' {test} -printf '%b\\n' | awk '{{s += $1}} END {{print s / 2}}'",
        dir.display()
    ));
    out.trim().parse().expect("a number")
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// A fresh image mounted for every user (`allow_other`, its root
/// directory open to all), and its mount point as a string.
fn open_mount(s: &Scratch) -> (Mount, String) {
    let m = s.mounted("256M", "allow_other");
    open_to_all(&m);
    let mnt = m.dir.to_string_lossy().into_owned();
    (m, mnt)
}

fn open_to_all(m: &Mount) {
    sh(&format!("chmod 777 '{}'", m.dir.display()));
}

/// Unmounts `m` and asserts that its image checks clean.
fn finish(m: Mount) {
    let image = m.image.clone();
    assert!(m.unmount().success());
    assert_checks_clean(&image);
}

/// Runs a shell command line as alice: whether it succeeded, and what it
/// printed (standard output and error together).
fn alice(script: &str) -> (bool, String) {
    let out = sh_as(ALICE, ALICE, &[], &format!("{{ {script}; }} 2>&1"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), text)
}

/// `dd` of `count` blocks of `bs` zeros to `path`, as alice.
fn dd_as_alice(path: &str, bs: &str, count: u32) -> (bool, String) {
    alice(&format!("dd if=/dev/zero of={path} bs={bs} count={count}"))
}

fn assert_edquot(text: &str) {
    assert!(text.contains("Disk quota exceeded"), "{text}");
}

#[test]
fn hard_limits_hold_at_the_exact_byte_and_file_unless_the_caller_may_exceed_them() {
    let s = Scratch::new();
    let (m, mnt) = open_mount(&s);
    quota(&[
        "set",
        &mnt,
        "-u",
        "1001",
        "--block-hard",
        "400K",
        "--inode-hard",
        "4",
    ]);

    // 100 pages: dd stops at exactly 409,600 bytes, whatever its block size.
    for (name, bs) in [("a", "4096"), ("b", "1M"), ("c", "1000")] {
        let (ok, text) = dd_as_alice(&format!("{mnt}/{name}"), bs, 1000);
        assert!(!ok, "dd {bs} went through: {text}");
        assert_edquot(&text);
        assert_eq!(size_of(&m.path(name)), 100 * PS, "bs={bs}");
        sh(&format!("rm {mnt}/{name}"));
    }
    // Four files, then no fifth (a directory, a link or a fifo either).
    let (ok, text) = alice(&format!("cd {mnt} && touch f1 f2 && mkdir d && ln -s f1 l"));
    assert!(ok, "{text}");
    for cmd in ["touch f5", "mkdir d2", "ln -s f1 l2", "mkfifo p"] {
        let (ok, text) = alice(&format!("cd {mnt} && {cmd}"));
        assert!(!ok, "{cmd} went through");
        assert_edquot(&text);
    }
    // A caller with CAP_SYS_RESOURCE (root, unless the machine dropped it,
    // as some containers do) writes alice's file past her limit; one
    // without meets the limit like anyone (as on ext4).
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let capeff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|c| u64::from_str_radix(c.trim(), 16).ok())
        .expect("CapEff");
    let resourceful = capeff & (1 << 24) != 0;
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "dd if=/dev/zero of={mnt}/f1 bs=4096 count=150 2>&1"
    )));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let pages = match resourceful {
        true => {
            assert!(out.status.success(), "{text}");
            150
        }
        false => {
            assert_edquot(&text);
            100
        }
    };
    assert_eq!(size_of(&m.path("f1")), pages * PS);
    let cols = report_line(&m.dir, ALICE);
    let over = if resourceful { "+-" } else { "--" };
    assert_eq!(cols[1], over, "{cols:?}");
    assert_eq!(cols[2], du_kib_of(&m.dir, ALICE).to_string(), "{cols:?}");
    assert_eq!(cols[2], (pages * 4).to_string(), "{cols:?}");
    // Only root may use the quota verbs of the daemon.
    let (ok, _) = alice(&format!("{} report {mnt}", bin("pagelog-quota").display()));
    assert!(!ok, "a user read the report through the daemon");

    let image = m.image.clone();
    finish(m);
    // Offline, the same report.
    let cols = report_line(&image, ALICE);
    assert_eq!(cols[2], (pages * 4).to_string(), "{cols:?}");
    assert_eq!(cols[4], "400", "{cols:?}");
}

#[test]
fn a_soft_limit_holds_once_its_grace_time_is_over() {
    let s = Scratch::new();
    let (m, mnt) = open_mount(&s);
    quota(&["grace", &mnt, "-u", "--blocks", "2"]);
    quota(&[
        "set",
        &mnt,
        "-u",
        "1001",
        "--block-soft",
        "40K",
        "--block-hard",
        "4M",
    ]);
    let write = |name: &str, pages| dd_as_alice(&format!("{mnt}/{name}"), "4096", pages);
    assert!(write("a", 20).0, "over the soft limit, in grace");
    let cols = report_line(&m.dir, ALICE);
    assert_eq!(cols[1], "+-", "{cols:?}");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (ok, text) = write("b", 1);
    assert!(!ok, "grace is over");
    assert_edquot(&text);
    let cols = report_line(&m.dir, ALICE);
    assert_eq!(cols[5], "none", "{cols:?}");
    // Back under the soft limit, alice writes again.
    sh(&format!("rm {mnt}/a"));
    assert!(write("c", 5).0);
    finish(m);
}

#[test]
fn many_writers_against_one_limit_stop_exactly_at_it() {
    let s = Scratch::new();
    let (m, mnt) = open_mount(&s);
    quota(&["set", &mnt, "-u", "1001", "--block-hard", "8000K"]);
    // Eight writers of 1,000 pages each against 2,000 pages.
    alice(&format!(
        "for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of={mnt}/w$i bs=4096 count=1000 & done; wait"
    ));
    let total: u64 = (1..=8).map(|i| size_of(&m.path(&format!("w{i}")))).sum();
    assert_eq!(total, 2000 * PS);
    let cols = report_line(&m.dir, ALICE);
    assert_eq!(cols[2], "8000", "{cols:?}");
    assert_eq!(du_kib_of(&m.dir, ALICE), 8000);
    // By group too: the report agrees with du.
    let cols = kind_line(&m.dir, "group", ALICE);
    assert_eq!(
        cols[2],
        du_kib_where(&m.dir, &format!("-group {ALICE}")).to_string()
    );
    finish(m);
}

#[test]
fn usage_and_limits_after_a_sigkill_of_the_daemon_check_clean_and_hold() {
    let s = Scratch::new();
    let (m, mnt) = open_mount(&s);
    quota(&["set", &mnt, "-u", "1001", "--block-hard", "2M"]);
    // Files of many sizes, a commit, deletions and a write that meets the
    // limit, none of it committed when the daemon dies.
    let (_, text) = alice(&format!(
        "cd {mnt} && mkdir t && for i in $(seq 1 50); do head -c $((i * 300)) /dev/zero > t/f$i; done && sync -f t/f1 && rm t/f1* && dd if=/dev/zero of=big bs=64K count=40"
    ));
    assert_edquot(&text);
    let (image, dir) = (m.image.clone(), m.dir.clone());
    sh(&format!("kill -9 {}", m.pid()));
    let mut m = m;
    m.wait();
    let _ = Command::new("umount").arg("-l").arg(&dir).output();
    assert_checks_clean(&image);
    let m = Mount::start(&image, &dir, "allow_other").expect("mount again");
    let cols = report_line(&m.dir, ALICE);
    assert_eq!(cols[2], du_kib_of(&m.dir, ALICE).to_string(), "{cols:?}");
    assert_eq!(cols[4], "2048", "the limit survived: {cols:?}");
    // And holds: alice fills exactly what the crash gave back.
    assert_edquot(&dd_as_alice(&format!("{mnt}/after"), "4096", 1000).1);
    let cols = report_line(&m.dir, ALICE);
    assert_eq!(cols[2], "2048", "{cols:?}");
    assert_eq!(du_kib_of(&m.dir, ALICE), 2048);
    finish(m);
}

#[test]
fn projects_with_chattr_lsattr_and_df() {
    let s = Scratch::new();
    let (m, mnt) = open_mount(&s);
    sh(&format!(
        "cd {mnt} && mkdir proj && chmod 777 proj && chattr +P -p 42 proj && touch outside"
    ));
    let attrs = sh(&format!("lsattr -pd {mnt}/proj"));
    assert!(attrs.trim_start().starts_with("42 "), "{attrs}");
    assert!(attrs.contains('P'), "{attrs}");
    quota(&[
        "set",
        &mnt,
        "-p",
        "42",
        "--block-hard",
        "1M",
        "--inode-hard",
        "10",
    ]);
    // Handed down through mkdir; the limit holds for alice in it.
    let (_, text) = alice(&format!(
        "mkdir {mnt}/proj/sub && dd if=/dev/zero of={mnt}/proj/sub/f bs=64K count=32"
    ));
    assert_edquot(&text);
    // The project's pages are the file's and its directories' index
    // pages: all of the limit, to the page.
    let du = sh(&format!("du -sk {mnt}/proj | cut -f1"));
    assert_eq!(du.trim(), "1024");
    let size = size_of(&m.path("proj/sub/f"));
    assert!(
        size.is_multiple_of(PS) && size > (1 << 20) - 4 * PS,
        "{size}"
    );
    let attrs = sh(&format!("lsattr -p {mnt}/proj/sub/f"));
    assert!(attrs.trim_start().starts_with("42 "), "{attrs}");
    // df of the directory: the project's limit, all used.
    let df = sh(&format!("df -k --output=size,avail {mnt}/proj | tail -1"));
    let cols: Vec<&str> = df.split_whitespace().collect();
    assert_eq!(cols, ["1024", "0"], "{df}");
    // Across the boundary: ln refuses (EXDEV), mv copies into the project.
    let out = run(Command::new("ln")
        .arg(m.path("outside"))
        .arg(m.path("proj/l")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid cross-device link"));
    sh(&format!("mv {mnt}/outside {mnt}/proj/moved"));
    let attrs = sh(&format!("lsattr -p {mnt}/proj/moved"));
    assert!(attrs.trim_start().starts_with("42 "), "{attrs}");
    // Only root changes a project id.
    let (ok, _) = alice(&format!("chattr -p 7 {mnt}/proj/sub/f"));
    assert!(!ok, "alice changed a project id");
    // The report agrees with du.
    let text = quota(&["report", "-p", &mnt]);
    let line = text
        .lines()
        .find(|l| l.starts_with("#42 "))
        .unwrap_or_else(|| panic!("no project 42 in\n{text}"));
    let du = sh(&format!("du -sk {mnt}/proj | cut -f1"));
    assert_eq!(line.split_whitespace().nth(2), Some(du.trim()), "{text}");
    finish(m);
}

#[test]
fn the_quota_tool_refuses_what_it_cannot_do_with_a_clear_message() {
    let s = Scratch::new();
    let plain = s.mkfs("plain.img", "64M", &["--no-quota"]);
    let image = s.mkfs("q.img", "64M", &[]);
    let tool = |args: &[&str]| run(Command::new(bin("pagelog-quota")).args(args));
    for (args, says) in [
        (
            vec!["report", plain.to_str().expect("utf-8")],
            "keeps no quotas",
        ),
        (
            vec![
                "set",
                image.to_str().expect("utf-8"),
                "-u",
                "no-such-user-here",
                "--block-hard",
                "1M",
            ],
            "no user named 'no-such-user-here'",
        ),
        (
            vec![
                "set",
                image.to_str().expect("utf-8"),
                "-u",
                "7",
                "--block-hard",
                "lots",
            ],
            "'lots' is not a size",
        ),
        (
            vec![
                "grace",
                image.to_str().expect("utf-8"),
                "-g",
                "--blocks",
                "soon",
            ],
            "'soon' is not a length of time",
        ),
    ] {
        let out = tool(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Offline changes are committed: a second run sees them.
    let img = image.to_str().expect("utf-8");
    quota(&[
        "set",
        img,
        "-g",
        "7",
        "--inode-soft",
        "5",
        "--inode-hard",
        "9",
    ]);
    quota(&["grace", img, "-g", "--inodes", "2days"]);
    let text = quota(&["report", "-g", img]);
    assert!(text.contains("Inode grace time: 2days"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(" 5 ") && l.contains(" 9"))
        .unwrap_or_default();
    assert!(!line.is_empty(), "{text}");
    assert_checks_clean(&image);
}

#[test]
fn a_branch_mount_reports_and_limits_its_own_usage() {
    let s = Scratch::new();
    let (m, mnt) = open_mount(&s);
    quota(&["set", &mnt, "-u", "1001", "--block-hard", "1M"]);
    let write = |dir: &str, name: &str, pages| dd_as_alice(&format!("{dir}/{name}"), "4096", pages);
    assert!(write(&mnt, "a", 100).0);
    let image = m.image.clone();
    assert!(m.unmount().success());
    let img = image.to_string_lossy().into_owned();
    let snap = run(Command::new(bin("pagelog-snapshot")).args(["create", &img, "s"]));
    assert!(
        snap.status.success(),
        "{}",
        String::from_utf8_lossy(&snap.stderr)
    );

    // The branch counts its own writes, and its limits are its own.
    let brdir = s.path("branch");
    std::fs::create_dir_all(&brdir).expect("mkdir");
    let br = Mount::start(&image, &brdir, "allow_other,snapshot=s,branch=b").expect("branch");
    let bdir = br.dir.to_string_lossy().into_owned();
    assert!(write(&bdir, "b", 50).0);
    assert_eq!(report_line(&br.dir, ALICE)[2], "600");
    quota(&["set", &bdir, "-u", "1001", "--block-hard", "700K"]);
    assert_edquot(&write(&bdir, "c", 100).1);
    assert_eq!(report_line(&br.dir, ALICE)[2], "700");
    assert!(br.unmount().success());

    // The live tree: its own usage and limit, untouched.
    let m = Mount::start(&image, &s.path("mnt"), "allow_other").expect("mount");
    let cols = report_line(&m.dir, ALICE);
    assert_eq!(
        (cols[2].as_str(), cols[4].as_str()),
        ("400", "1024"),
        "{cols:?}"
    );
    finish(m);
}

#[test]
fn under_journal_writeback_limits_still_hold_at_write() {
    // The kernel's writeback cache would hide write(2) from the daemon: a
    // mount of an image with limits goes without it.
    let s = Scratch::new();
    let image = s.mkfs("fs.img", "256M", &[]);
    let img = image.to_string_lossy().into_owned();
    quota(&["set", &img, "-u", "1001", "--block-hard", "400K"]);
    let dir = s.path("mnt");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let m = Mount::start(&image, &dir, "allow_other,journal=writeback").expect("mount");
    open_to_all(&m);
    let mnt = m.dir.to_string_lossy().into_owned();
    assert_edquot(&dd_as_alice(&format!("{mnt}/a"), "4096", 200).1);
    assert_eq!(size_of(&m.path("a")), 100 * PS);
    finish(m);
}
