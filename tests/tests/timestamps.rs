//! Which of atime, mtime and ctime each call changes, on the file and on
//! its directories, as Linux ext4 does; and that nanosecond times survive a
//! remount exactly.

use std::thread::sleep;
use std::time::Duration;

use pagelog_tests::{op, Mount, Scratch};

#[derive(Clone, Debug, PartialEq)]
struct Times {
    a: String,
    m: String,
    c: String,
}

fn times(path: &str) -> Times {
    Times {
        a: op(&["lstat", path, "atime"]),
        m: op(&["lstat", path, "mtime"]),
        c: op(&["lstat", path, "ctime"]),
    }
}

fn p(m: &Mount, rel: &str) -> String {
    m.path(rel).to_string_lossy().into_owned()
}

/// Runs `f` after a pause, and returns the times of `paths` before and after.
fn around(paths: &[&str], f: impl FnOnce()) -> Vec<(Times, Times)> {
    let before: Vec<Times> = paths.iter().map(|q| times(q)).collect();
    sleep(Duration::from_millis(20));
    f();
    paths
        .iter()
        .zip(before)
        .map(|(q, b)| (b, times(q)))
        .collect()
}

/// (atime, mtime, ctime) changed?
fn changed(t: &(Times, Times)) -> (bool, bool, bool) {
    (t.0.a != t.1.a, t.0.m != t.1.m, t.0.c != t.1.c)
}

#[test]
fn each_call_updates_the_right_times() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    let (d, d2, f) = (p(&m, "d"), p(&m, "d2"), p(&m, "d/f"));
    assert_eq!(op(&["mkdir", &d, "755"]), "0");
    assert_eq!(op(&["mkdir", &d2, "755"]), "0");

    let r = around(&[&d], || {
        assert_eq!(op(&["open", &f, "O_CREAT,O_WRONLY", "644"]), "0")
    });
    assert_eq!(
        changed(&r[0]),
        (false, true, true),
        "create: parent mtime and ctime"
    );
    let r = around(&[&f, &d], || {
        assert_eq!(op(&["openwrite", &f, "O_WRONLY", "data"]), "0")
    });
    assert_eq!(
        changed(&r[0]),
        (false, true, true),
        "write: file mtime and ctime"
    );
    assert_eq!(
        changed(&r[1]),
        (false, false, false),
        "write: parent untouched"
    );
    let r = around(&[&f], || assert_eq!(op(&["chmod", &f, "600"]), "0"));
    assert_eq!(changed(&r[0]), (false, false, true), "chmod: ctime only");
    let r = around(&[&f], || assert_eq!(op(&["chown", &f, "7", "8"]), "0"));
    assert_eq!(changed(&r[0]), (false, false, true), "chown: ctime only");
    let r = around(&[&f], || {
        assert_eq!(op(&["setxattr", &f, "user.k", "v"]), "0")
    });
    assert_eq!(changed(&r[0]), (false, false, true), "setxattr: ctime only");
    let r = around(&[&f], || assert_eq!(op(&["truncate", &f, "100"]), "0"));
    assert_eq!(
        changed(&r[0]),
        (false, true, true),
        "truncate: mtime and ctime"
    );
    let r = around(&[&f, &d, &d2], || {
        assert_eq!(op(&["link", &f, &p(&m, "d2/g")]), "0")
    });
    assert_eq!(changed(&r[0]), (false, false, true), "link: file ctime");
    assert_eq!(
        changed(&r[1]),
        (false, false, false),
        "link: source directory untouched"
    );
    assert_eq!(
        changed(&r[2]),
        (false, true, true),
        "link: new parent mtime and ctime"
    );
    let r = around(&[&f, &d2], || {
        assert_eq!(op(&["unlink", &p(&m, "d2/g")]), "0")
    });
    assert_eq!(changed(&r[0]), (false, false, true), "unlink: file ctime");
    assert_eq!(
        changed(&r[1]),
        (false, true, true),
        "unlink: parent mtime and ctime"
    );
    let r = around(&[&f, &d, &d2], || {
        assert_eq!(op(&["rename", &f, &p(&m, "d2/f")]), "0")
    });
    assert!(changed(&r[0]).2, "rename: file ctime");
    let f = p(&m, "d2/f");
    assert_eq!(changed(&r[1]), (false, true, true), "rename: old parent");
    assert_eq!(changed(&r[2]), (false, true, true), "rename: new parent");
    let r = around(&[&f], || {
        assert_eq!(op(&["utimens", &f, "now", "omit"]), "0")
    });
    assert_eq!(
        changed(&r[0]),
        (true, false, true),
        "utimensat(now, omit): atime and ctime"
    );
    let r = around(&[&d], || {
        assert_eq!(op(&["mkdir", &p(&m, "d/sub"), "700"]), "0")
    });
    assert_eq!(changed(&r[0]), (false, true, true), "mkdir: parent");
    let r = around(&[&d], || assert_eq!(op(&["rmdir", &p(&m, "d/sub")]), "0"));
    assert_eq!(changed(&r[0]), (false, true, true), "rmdir: parent");
    let r = around(&[&d], || {
        assert_eq!(op(&["symlink", "target", &p(&m, "d/l")]), "0")
    });
    assert_eq!(changed(&r[0]), (false, true, true), "symlink: parent");
    let r = around(&[&d], || {
        assert_eq!(op(&["mknod", &p(&m, "d/fifo"), "fifo", "600"]), "0")
    });
    assert_eq!(changed(&r[0]), (false, true, true), "mknod: parent");

    // Explicit nanosecond times, including before 1970, survive remount.
    assert_eq!(
        op(&["utimens", &f, "1234567890.123456789", "-20.000000001"]),
        "0"
    );
    let before = times(&f);
    assert_eq!(before.a, "1234567890.123456789");
    assert_eq!(before.m, "-20.000000001");
    let m = m.remount("");
    assert_eq!(times(&p(&m, "d2/f")), before);
}
