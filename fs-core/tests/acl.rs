//! POSIX access control lists in the core, driven directly: stored in the
//! kernel's encoding and validated, in step with the mode both ways,
//! inherited from a directory's default list, checked by pagelog's own
//! permission check, and kept across a remount and a clean check.

use pagelog_core::acl::{Acl, Entry, Tag, NO_ID};
use pagelog_core::fsck::Level;
use pagelog_core::perm::cap;
use pagelog_core::{Cred, Error, Ino};

mod support;
use support::mount;

const ACCESS: &[u8] = b"system.posix_acl_access";
const DEFAULT: &[u8] = b"system.posix_acl_default";

fn e(tag: Tag, perm: u16, id: u32) -> Entry {
    Entry { tag, perm, id }
}

/// u::rw- u:1001:rw- g::r-- m::rw- o::---
fn alice_may_write() -> Acl {
    Acl {
        entries: vec![
            e(Tag::UserObj, 6, NO_ID),
            e(Tag::User, 6, 1001),
            e(Tag::GroupObj, 4, NO_ID),
            e(Tag::Mask, 6, NO_ID),
            e(Tag::Other, 0, NO_ID),
        ],
    }
}

fn acl_of(fs: &mut pagelog_core::Filesystem, ino: Ino, name: &[u8]) -> Option<Acl> {
    match fs.getxattr(&Cred::user(4242, 4242), ino, name) {
        Ok(v) => Acl::decode(&v).expect("stored list decodes"),
        Err(Error::NoAttr) => None,
        Err(e) => panic!("getxattr: {e}"),
    }
}

/// `chmod` as `cred`.
fn chmod(fs: &mut pagelog_core::Filesystem, cred: &Cred, ino: Ino, mode: u32) {
    let set = pagelog_core::SetAttr {
        mode: Some(mode),
        ..Default::default()
    };
    fs.setattr(cred, ino, &set).expect("chmod");
}

/// Lets every user make files in the root directory.
fn open_root(fs: &mut pagelog_core::Filesystem) {
    chmod(fs, &Cred::root(), Ino::ROOT, 0o777);
}

fn mode(fs: &mut pagelog_core::Filesystem, ino: Ino) -> u32 {
    fs.getattr(ino).expect("getattr").mode & 0o7777
}

#[test]
fn an_access_list_sets_the_mode_and_is_enforced() {
    let dev = support::formatted(4096, 64);
    let mut fs = mount(&dev);
    let (root, owner) = (Cred::root(), Cred::user(1000, 1000));
    let (alice, bob) = (Cred::user(1001, 1001), Cred::user(1002, 1000));
    open_root(&mut fs);
    let f = fs.mknod(&owner, Ino::ROOT, b"f", 0o640, 0).expect("mknod");
    assert!(matches!(fs.open(&alice, f.ino, 2), Err(Error::Access)));

    // Only the owner (or root) sets a list; anyone reads it.
    let value = alice_may_write().encode();
    assert!(matches!(
        fs.setxattr(&alice, f.ino, ACCESS, &value, 0),
        Err(Error::Perm)
    ));
    fs.setxattr(&owner, f.ino, ACCESS, &value, 0).expect("set");
    assert_eq!(acl_of(&mut fs, f.ino, ACCESS), Some(alice_may_write()));
    assert_eq!(mode(&mut fs, f.ino), 0o660, "group bits from the mask");
    let names = fs.listxattr(&alice, f.ino).expect("list");
    assert_eq!(names, b"system.posix_acl_access\0");

    // The named user may write; the owning group may only read, although
    // the mode's group bits say rw (they are the mask).
    fs.open(&alice, f.ino, 2).expect("alice writes");
    fs.open(&bob, f.ino, 0).expect("bob reads");
    assert!(matches!(fs.open(&bob, f.ino, 2), Err(Error::Access)));
    assert!(matches!(
        fs.open(&Cred::user(7, 7), f.ino, 0),
        Err(Error::Access)
    ));

    // chmod moves the mask: g-w takes write from alice too.
    chmod(&mut fs, &owner, f.ino, 0o640);
    let acl = acl_of(&mut fs, f.ino, ACCESS).expect("still a list");
    assert_eq!(acl.find(Tag::Mask).map(|e| e.perm), Some(4));
    assert_eq!(acl.find(Tag::User).map(|e| e.perm), Some(6), "entry kept");
    assert!(matches!(fs.open(&alice, f.ino, 2), Err(Error::Access)));
    fs.open(&alice, f.ino, 0).expect("alice still reads");

    // A list that says no more than the mode is the mode: not stored.
    let minimal = Acl::from_mode(0o604).encode();
    fs.setxattr(&root, f.ino, ACCESS, &minimal, 0).expect("set");
    assert_eq!(acl_of(&mut fs, f.ino, ACCESS), None);
    assert_eq!(mode(&mut fs, f.ino), 0o604);
    fs.setxattr(&owner, f.ino, ACCESS, &value, 0)
        .expect("again");
    fs.removexattr(&owner, f.ino, ACCESS).expect("remove");
    assert_eq!(acl_of(&mut fs, f.ino, ACCESS), None);
    fs.removexattr(&owner, f.ino, ACCESS)
        .expect("removing no list succeeds, as on ext4");
    fs.unmount().expect("unmount");
}

#[test]
fn bad_lists_are_refused_with_the_kernels_errors() {
    let dev = support::formatted(4096, 64);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let f = fs.mknod(&root, Ino::ROOT, b"f", 0o644, 0).expect("mknod");
    let mut no_mask = alice_may_write();
    no_mask.entries.remove(3);
    let mut truncated = alice_may_write().encode();
    truncated.pop();
    for bad in [no_mask.encode(), truncated, vec![1, 0, 0, 0]] {
        assert!(matches!(
            fs.setxattr(&root, f.ino, ACCESS, &bad, 0),
            Err(Error::Invalid)
        ));
    }
    // Only a directory has a default list.
    let def = alice_may_write().encode();
    assert!(matches!(
        fs.setxattr(&root, f.ino, DEFAULT, &def, 0),
        Err(Error::Access)
    ));
    // XATTR_CREATE and XATTR_REPLACE mean what they mean elsewhere.
    assert!(matches!(
        fs.setxattr(&root, f.ino, ACCESS, &def, 2),
        Err(Error::NoAttr)
    ));
    fs.setxattr(&root, f.ino, ACCESS, &def, 1).expect("create");
    assert!(matches!(
        fs.setxattr(&root, f.ino, ACCESS, &def, 1),
        Err(Error::Exists)
    ));
    assert_eq!(mode(&mut fs, f.ino), 0o660);
    fs.unmount().expect("unmount");
}

#[test]
fn new_inodes_inherit_the_default_list_and_skip_the_umask() {
    let dev = support::formatted(4096, 64);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let masked = Cred {
        umask: 0o077,
        ..Cred::user(1000, 1000)
    };
    let d = fs.mkdir(&root, Ino::ROOT, b"d", 0o777).expect("mkdir");
    // Without a default list the umask applies.
    let plain = fs.mknod(&masked, d.ino, b"plain", 0o666, 0).expect("mknod");
    assert_eq!(mode(&mut fs, plain.ino), 0o600);

    // d: default u::rwx u:1001:rwx g::r-x m::rwx o::r-x
    let default = Acl {
        entries: vec![
            e(Tag::UserObj, 7, NO_ID),
            e(Tag::User, 7, 1001),
            e(Tag::GroupObj, 5, NO_ID),
            e(Tag::Mask, 7, NO_ID),
            e(Tag::Other, 5, NO_ID),
        ],
    };
    fs.setxattr(&root, d.ino, DEFAULT, &default.encode(), 0)
        .expect("default list");
    assert_eq!(
        mode(&mut fs, d.ino),
        0o777,
        "a default list leaves the mode"
    );

    // A file made with 0666 under umask 077: the umask does not apply;
    // the list is narrowed by the mode asked for.
    let f = fs.mknod(&masked, d.ino, b"f", 0o666, 0).expect("mknod");
    assert_eq!(mode(&mut fs, f.ino), 0o664);
    let acl = acl_of(&mut fs, f.ino, ACCESS).expect("inherited");
    assert_eq!(acl.find(Tag::User).map(|e| (e.id, e.perm)), Some((1001, 7)));
    assert_eq!(acl.find(Tag::Mask).map(|e| e.perm), Some(6));
    assert_eq!(acl_of(&mut fs, f.ino, DEFAULT), None, "files have none");
    fs.open(&Cred::user(1001, 5), f.ino, 2)
        .expect("the inherited entry lets the named user write");

    // A subdirectory inherits the default list as its own default, and
    // passes it on.
    let sub = fs.mkdir(&masked, d.ino, b"sub", 0o750).expect("mkdir");
    assert_eq!(mode(&mut fs, sub.ino), 0o750);
    assert_eq!(acl_of(&mut fs, sub.ino, DEFAULT), Some(default.clone()));
    let deep = fs.mkdir(&masked, sub.ino, b"deep", 0o700).expect("mkdir");
    assert_eq!(acl_of(&mut fs, deep.ino, DEFAULT), Some(default));
    let acl = acl_of(&mut fs, deep.ino, ACCESS).expect("access list");
    assert_eq!(acl.find(Tag::Mask).map(|e| e.perm), Some(0));

    // A symbolic link has no lists.
    let l = fs.symlink(&masked, d.ino, b"l", b"f").expect("symlink");
    assert_eq!(acl_of(&mut fs, l.ino, ACCESS), None);
    assert_eq!(mode(&mut fs, l.ino), 0o777);
    fs.unmount().expect("unmount");

    // All of it is in the commit: a remount sees the same lists, and the
    // image checks clean.
    let mut fs = mount(&dev);
    let acl = acl_of(&mut fs, f.ino, ACCESS).expect("after remount");
    assert_eq!(acl.find(Tag::Mask).map(|e| e.perm), Some(6));
    fs.unmount().expect("unmount");
    let report = support::fsck(&dev, Level::Full);
    assert_eq!(report.problems(), 0, "{report:?}");
}

#[test]
fn setting_an_access_list_outside_the_group_drops_setgid() {
    let dev = support::formatted(4096, 64);
    let mut fs = mount(&dev);
    let owner = Cred::user(1000, 1000);
    open_root(&mut fs);
    let outsider = |caps| Cred {
        caps,
        ..Cred::user(1000, 2000)
    };
    let f = fs.mknod(&owner, Ino::ROOT, b"f", 0o2770, 0).expect("mknod");
    let value = alice_may_write().encode();
    fs.setxattr(&owner, f.ino, ACCESS, &value, 0)
        .expect("in group");
    assert_eq!(mode(&mut fs, f.ino), 0o2660, "the owning group keeps it");
    chmod(&mut fs, &owner, f.ino, 0o2770);
    fs.setxattr(&outsider(cap::FSETID), f.ino, ACCESS, &value, 0)
        .expect("CAP_FSETID keeps it");
    assert_eq!(mode(&mut fs, f.ino), 0o2660);
    fs.setxattr(&outsider(0), f.ino, ACCESS, &value, 0)
        .expect("outside the group");
    assert_eq!(mode(&mut fs, f.ino), 0o660, "set-group-id dropped");
    fs.unmount().expect("unmount");
}
