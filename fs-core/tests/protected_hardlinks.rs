//! Under protected hard links (`fs.protected_hardlinks`, which the daemon
//! reads and passes in the credentials), `link` refuses what Linux's
//! may_linkat refuses, and only then.

use pagelog_core::{Cred, Error, Ino};

mod support;
use support::mount;

#[test]
fn only_owners_or_readers_and_writers_may_link() {
    let dev = support::formatted(4096, 64);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let tmp = fs.mkdir(&root, Ino::ROOT, b"tmp", 0o1777).expect("mkdir");
    let secret = fs
        .mknod(&root, Ino::ROOT, b"secret", 0o600, 0)
        .expect("mknod");
    let open = fs
        .mknod(&root, Ino::ROOT, b"open", 0o666, 0)
        .expect("mknod");
    let suid = fs
        .mknod(&root, Ino::ROOT, b"suid", 0o4777, 0)
        .expect("mknod");
    let alice = Cred {
        protected_hardlinks: true,
        ..Cred::user(1001, 1001)
    };
    let own = fs.mknod(&alice, tmp.ino, b"own", 0o600, 0).expect("mknod");

    for (ino, name) in [(secret.ino, &b"s"[..]), (suid.ino, b"u")] {
        assert!(matches!(
            fs.link(&alice, ino, tmp.ino, name),
            Err(Error::Perm)
        ));
        assert!(matches!(
            fs.lookup(&root, tmp.ino, name),
            Err(Error::NotFound)
        ));
    }
    fs.link(&alice, own.ino, tmp.ino, b"own2")
        .expect("her own file");
    fs.link(&alice, open.ino, tmp.ino, b"o")
        .expect("read and write access");
    let root_protected = Cred {
        protected_hardlinks: true,
        ..Cred::root()
    };
    fs.link(&root_protected, secret.ino, tmp.ino, b"r")
        .expect("root");
    // With the sysctl off, the old rule (write access to the directory).
    fs.link(&Cred::user(1001, 1001), secret.ino, tmp.ino, b"s")
        .expect("unprotected");
    assert_eq!(fs.getattr(secret.ino).expect("getattr").nlink, 3);
    fs.unmount().expect("unmount");
}
