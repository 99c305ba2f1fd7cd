//! A name in a namespace pagelog does not store reads as absent (ENODATA),
//! as on ext4; setting or removing one is "not supported".

use pagelog_core::{Cred, Error, Ino};

mod support;
use support::mount;

#[test]
fn unknown_namespaces_read_as_absent_and_refuse_changes() {
    let dev = support::formatted(4096, 64);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let f = fs.mknod(&root, Ino::ROOT, b"f", 0o644, 0).expect("mknod");
    for name in [&b"pagelog.stats"[..], b"bogus.x", b"noprefix"] {
        for ino in [Ino::ROOT, f.ino] {
            assert!(
                matches!(fs.getxattr(&root, ino, name), Err(Error::NoAttr)),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        assert!(matches!(
            fs.setxattr(&root, f.ino, name, b"v", 0),
            Err(Error::NotSupported)
        ));
        assert!(matches!(
            fs.removexattr(&root, f.ino, name),
            Err(Error::NotSupported)
        ));
    }
    // Known namespaces: a missing name is ENODATA, an access control list
    // a file does not have too.
    assert!(matches!(
        fs.getxattr(&root, f.ino, b"user.none"),
        Err(Error::NoAttr)
    ));
    assert!(matches!(
        fs.getxattr(&root, f.ino, b"system.posix_acl_access"),
        Err(Error::NoAttr)
    ));
    fs.unmount().expect("unmount");
}
