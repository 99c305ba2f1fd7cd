//! Every failure answers the errno that POSIX and Linux give (checked
//! through the mount with ordinary system calls), and names are bytes.

use pagelog_tests::{op, Scratch};

fn p(m: &pagelog_tests::Mount, rel: &str) -> String {
    m.path(rel).to_string_lossy().into_owned()
}

#[test]
fn namespace_errnos() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    let (d, f, l) = (p(&m, "d"), p(&m, "f"), p(&m, "l"));
    assert_eq!(op(&["mkdir", &d, "755"]), "0");
    assert_eq!(op(&["mkdir", &d, "755"]), "EEXIST");
    assert_eq!(op(&["open", &f, "O_CREAT,O_WRONLY", "644"]), "0");
    assert_eq!(
        op(&["open", &f, "O_CREAT,O_EXCL,O_WRONLY", "644"]),
        "EEXIST"
    );
    assert_eq!(op(&["open", &p(&m, "missing"), "O_RDONLY"]), "ENOENT");
    assert_eq!(op(&["unlink", &p(&m, "missing")]), "ENOENT");
    assert_eq!(op(&["rmdir", &p(&m, "missing")]), "ENOENT");
    assert_eq!(op(&["mkdir", &p(&m, "missing/x"), "755"]), "ENOENT");
    assert_eq!(op(&["open", &p(&m, "f/x"), "O_CREAT,O_WRONLY"]), "ENOTDIR");
    assert_eq!(op(&["rmdir", &f]), "ENOTDIR");
    assert_eq!(op(&["unlink", &d]), "EISDIR");
    assert_eq!(op(&["open", &d, "O_WRONLY"]), "EISDIR");
    assert_eq!(op(&["link", &d, &p(&m, "dlink")]), "EPERM");
    assert_eq!(op(&["link", &f, &d]), "EEXIST");
    assert_eq!(op(&["symlink", "x", &f]), "EEXIST");
    assert_eq!(op(&["mknod", &f, "fifo", "644"]), "EEXIST");
    assert_eq!(op(&["open", &p(&m, "d/inner"), "O_CREAT,O_WRONLY"]), "0");
    assert_eq!(op(&["rmdir", &d]), "ENOTEMPTY");
    assert_eq!(op(&["rmdir", &p(&m, "d/.")]), "EINVAL");
    assert_eq!(op(&["symlink", &l, &l]), "0");
    assert_eq!(op(&["open", &l, "O_RDONLY"]), "ELOOP");
}

#[test]
fn name_length_limits() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    let ok = p(&m, &"a".repeat(255));
    let long = p(&m, &"a".repeat(256));
    assert_eq!(op(&["open", &ok, "O_CREAT,O_WRONLY"]), "0");
    assert_eq!(op(&["stat", &ok, "size"]), "0");
    assert_eq!(op(&["open", &long, "O_CREAT,O_WRONLY"]), "ENAMETOOLONG");
    assert_eq!(op(&["mkdir", &long, "755"]), "ENAMETOOLONG");
    assert_eq!(op(&["stat", &long, "size"]), "ENAMETOOLONG");
    assert_eq!(op(&["link", &ok, &long]), "ENAMETOOLONG");
    assert_eq!(op(&["rename", &ok, &long]), "ENAMETOOLONG");
    assert_eq!(op(&["symlink", "t", &long]), "ENAMETOOLONG");
    assert_eq!(op(&["unlink", &long]), "ENAMETOOLONG");
    // A target may hold long components, up to PATH_MAX - 1 bytes in all.
    let target = format!("{}/{}", "b".repeat(300), "c".repeat(3794));
    assert_eq!(target.len(), 4095);
    assert_eq!(op(&["symlink", &target, &p(&m, "long")]), "0");
    assert_eq!(op(&["readlink", &p(&m, "long")]), target);
    let too_long = "c".repeat(4096);
    assert_eq!(
        op(&["symlink", &too_long, &p(&m, "toolong")]),
        "ENAMETOOLONG"
    );
}

#[test]
fn rename_semantics() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    for d in ["a", "a/sub", "b", "full", "empty"] {
        assert_eq!(op(&["mkdir", &p(&m, d), "755"]), "0");
    }
    assert_eq!(
        op(&["openwrite", &p(&m, "full/x"), "O_CREAT,O_WRONLY", "x"]),
        "0"
    );
    assert_eq!(
        op(&["openwrite", &p(&m, "f1"), "O_CREAT,O_WRONLY", "one"]),
        "0"
    );
    assert_eq!(
        op(&["openwrite", &p(&m, "f2"), "O_CREAT,O_WRONLY", "two"]),
        "0"
    );
    // A directory cannot move below itself.
    assert_eq!(op(&["rename", &p(&m, "a"), &p(&m, "a/sub/a")]), "EINVAL");
    // Over a non-empty directory / a file / a directory.
    assert_eq!(op(&["rename", &p(&m, "b"), &p(&m, "full")]), "ENOTEMPTY");
    assert_eq!(op(&["rename", &p(&m, "b"), &p(&m, "f1")]), "ENOTDIR");
    assert_eq!(op(&["rename", &p(&m, "f1"), &p(&m, "b")]), "EISDIR");
    // Over an empty directory: allowed, and link counts follow.
    assert_eq!(op(&["stat", &m.dir.to_string_lossy(), "nlink"]), "6");
    assert_eq!(op(&["rename", &p(&m, "b"), &p(&m, "empty")]), "0");
    assert_eq!(op(&["stat", &m.dir.to_string_lossy(), "nlink"]), "5");
    // Across directories: the parents' link counts move with it.
    assert_eq!(op(&["rename", &p(&m, "empty"), &p(&m, "a/moved")]), "0");
    assert_eq!(op(&["stat", &p(&m, "a"), "nlink"]), "4");
    assert_eq!(
        op(&["stat", &p(&m, "a/moved/.."), "ino"]),
        op(&["stat", &p(&m, "a"), "ino"])
    );
    // Flags.
    assert_eq!(
        op(&["rename_noreplace", &p(&m, "f1"), &p(&m, "f2")]),
        "EEXIST"
    );
    assert_eq!(op(&["rename_exchange", &p(&m, "f1"), &p(&m, "f2")]), "0");
    assert_eq!(std::fs::read(m.path("f1")).expect("read"), b"two");
    assert_eq!(std::fs::read(m.path("f2")).expect("read"), b"one");
    assert_eq!(
        op(&["rename_exchange", &p(&m, "f1"), &p(&m, "nothing")]),
        "ENOENT"
    );
    assert_eq!(op(&["rename_exchange", &p(&m, "f1"), &p(&m, "full")]), "0");
    assert_eq!(op(&["stat", &p(&m, "f1"), "type"]), "40000");
    assert_eq!(op(&["stat", &p(&m, "full"), "type"]), "100000");
    // Rename over a hard link of the same file does nothing.
    assert_eq!(op(&["link", &p(&m, "f2"), &p(&m, "f2b")]), "0");
    assert_eq!(op(&["rename", &p(&m, "f2"), &p(&m, "f2b")]), "0");
    assert_eq!(op(&["stat", &p(&m, "f2"), "nlink"]), "2");
    // Replacing a file with links drops one link and keeps the rest.
    assert_eq!(op(&["rename", &p(&m, "full"), &p(&m, "f2b")]), "0");
    assert_eq!(op(&["stat", &p(&m, "f2"), "nlink"]), "1");
}

#[test]
fn xattr_errnos() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    let f = p(&m, "f");
    assert_eq!(op(&["open", &f, "O_CREAT,O_WRONLY"]), "0");
    assert_eq!(op(&["getxattr", &f, "user.none"]), "ENODATA");
    assert_eq!(op(&["setxattr", &f, "user.a", "v1", "replace"]), "ENODATA");
    assert_eq!(op(&["setxattr", &f, "user.a", "v1", "create"]), "0");
    assert_eq!(op(&["setxattr", &f, "user.a", "v2", "create"]), "EEXIST");
    assert_eq!(op(&["setxattr", &f, "user.a", "v3", "replace"]), "0");
    assert_eq!(op(&["getxattr", &f, "user.a"]), "v3");
    assert_eq!(op(&["getxattr", &f, "user.a", "1"]), "ERANGE");
    assert_eq!(op(&["setxattr", &f, "trusted.t", "root"]), "0");
    assert_eq!(op(&["getxattr", &f, "trusted.t"]), "root");
    assert_eq!(op(&["setxattr", &f, "bogus.x", "v"]), "EOPNOTSUPP");
    assert_eq!(op(&["removexattr", &f, "user.a"]), "0");
    assert_eq!(op(&["removexattr", &f, "user.a"]), "ENODATA");
    let big = "v".repeat(5000);
    assert_eq!(op(&["setxattr", &f, "user.big", &big]), "ENOSPC");
}

#[test]
fn link_counts_and_blocks() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    let f = p(&m, "f");
    assert_eq!(op(&["open", &f, "O_CREAT,O_WRONLY"]), "0");
    assert_eq!(op(&["stat", &f, "nlink"]), "1");
    assert_eq!(op(&["stat", &f, "blocks"]), "0");
    assert_eq!(op(&["link", &f, &p(&m, "g")]), "0");
    assert_eq!(op(&["stat", &f, "nlink"]), "2");
    assert_eq!(op(&["unlink", &p(&m, "g")]), "0");
    assert_eq!(op(&["stat", &f, "nlink"]), "1");
    assert_eq!(op(&["openwrite", &f, "O_WRONLY", "x"]), "0");
    assert_eq!(op(&["stat", &f, "blocks"]), "8");
    assert_eq!(op(&["truncate", &f, "1000000"]), "0");
    assert_eq!(op(&["stat", &f, "blocks"]), "8", "extending leaves a hole");
    assert_eq!(op(&["truncate", &f, "0"]), "0");
    assert_eq!(op(&["stat", &f, "blocks"]), "0");
    assert_eq!(op(&["stat", &m.dir.to_string_lossy(), "nlink"]), "2");
    assert_eq!(op(&["mkdir", &p(&m, "d"), "755"]), "0");
    assert_eq!(op(&["stat", &m.dir.to_string_lossy(), "nlink"]), "3");
    assert_eq!(op(&["stat", &p(&m, "d"), "nlink"]), "2");
    assert_eq!(op(&["rmdir", &p(&m, "d")]), "0");
    assert_eq!(op(&["stat", &m.dir.to_string_lossy(), "nlink"]), "2");
}
