//! Credentials and POSIX permission checks.

use crate::error::{Error, Result};
use crate::inode::Inode;

/// Read permission.
pub const MAY_READ: u32 = 4;
/// Write permission.
pub const MAY_WRITE: u32 = 2;
/// Execute (search, for a directory) permission.
pub const MAY_EXEC: u32 = 1;

/// Set-user-id bit.
pub const S_ISUID: u32 = 0o4000;
/// Set-group-id bit.
pub const S_ISGID: u32 = 0o2000;
/// Sticky bit.
pub const S_ISVTX: u32 = 0o1000;
/// Group execute.
pub const S_IXGRP: u32 = 0o010;

/// Who is asking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cred {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The caller's access was already checked, by rules identical to
    /// these, by someone who knows the full credentials (the kernel, under
    /// FUSE's `default_permissions`): permission checks pass, and
    /// credential-dependent mode adjustments are left to that checker.
    pub checked: bool,
    /// The system protects hard links (Linux's `fs.protected_hardlinks`
    /// sysctl is 1): only the owner, or a user who may read and write a
    /// plain regular file, may link to it (see [`check_hardlink`]). The
    /// caller reads the sysctl, so that this crate never reads /proc.
    pub protected_hardlinks: bool,
}

impl Cred {
    /// The superuser.
    pub fn root() -> Cred {
        Cred::default()
    }

    /// A user with no supplementary groups.
    pub fn user(uid: u32, gid: u32) -> Cred {
        Cred {
            uid,
            gid,
            groups: Vec::new(),
            checked: false,
            protected_hardlinks: false,
        }
    }

    /// Credentials the kernel has already checked (see [`Cred::checked`]).
    pub fn kernel_checked(uid: u32, gid: u32) -> Cred {
        Cred {
            uid,
            gid,
            groups: Vec::new(),
            checked: true,
            protected_hardlinks: false,
        }
    }

    /// Is this the superuser?
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Is `gid` the primary or a supplementary group?
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Owner of `inode`, or root (or already checked)?
    pub fn owns(&self, inode: &Inode) -> bool {
        self.checked || self.is_root() || self.uid == inode.uid
    }

    /// Should a mode adjustment that depends on group membership apply?
    /// (Not when the kernel already made it, and never for root.)
    pub fn lacks_group(&self, gid: u32) -> bool {
        !self.checked && !self.is_root() && !self.in_group(gid)
    }
}

/// Checks `mask` (MAY_* bits) against `inode`'s mode for `cred`.
pub fn check(inode: &Inode, cred: &Cred, mask: u32) -> Result<()> {
    if cred.checked {
        return Ok(());
    }
    if cred.is_root() {
        // Root may read and write anything, and execute anything with at
        // least one execute bit (and search any directory).
        let exec_ok = mask & MAY_EXEC == 0 || inode.is_dir() || inode.mode & 0o111 != 0;
        return if exec_ok { Ok(()) } else { Err(Error::Access) };
    }
    let bits = if cred.uid == inode.uid {
        (inode.mode >> 6) & 7
    } else if cred.in_group(inode.gid) {
        (inode.mode >> 3) & 7
    } else {
        inode.mode & 7
    };
    if bits & mask == mask {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// May `cred` remove or rename `victim` out of directory `dir`? (Write and
/// search permission on `dir`, and the sticky-bit rule.)
pub fn check_delete(dir: &Inode, victim: &Inode, cred: &Cred) -> Result<()> {
    if cred.checked {
        return Ok(());
    }
    check(dir, cred, MAY_WRITE | MAY_EXEC)?;
    if dir.mode & S_ISVTX != 0 && !cred.is_root() && cred.uid != dir.uid && cred.uid != victim.uid {
        return Err(Error::Perm);
    }
    Ok(())
}

/// May `cred` make a new hard link to `inode`? With protected hard links,
/// Linux's `may_linkat` rule: the owner (or root, who has CAP_FOWNER) may
/// link anything; anyone else only a regular file that is neither setuid
/// nor setgid-and-group-executable and that they may both read and write.
/// This stops a user from pinning another user's setuid program or private
/// file in a directory they control.
pub fn check_hardlink(inode: &Inode, cred: &Cred) -> Result<()> {
    if !cred.protected_hardlinks || cred.owns(inode) {
        return Ok(());
    }
    let setgid_exec = S_ISGID | S_IXGRP;
    let safe_source = inode.is_reg()
        && inode.mode & S_ISUID == 0
        && inode.mode & setgid_exec != setgid_exec
        && check(inode, cred, MAY_READ | MAY_WRITE).is_ok();
    if safe_source {
        Ok(())
    } else {
        Err(Error::Perm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inode::{S_IFDIR, S_IFREG};

    fn file(mode: u32, uid: u32, gid: u32) -> Inode {
        Inode {
            mode: S_IFREG | mode,
            uid,
            gid,
            ..Inode::default()
        }
    }

    #[test]
    fn owner_group_other_bits() {
        let f = file(0o640, 10, 20);
        assert!(check(&f, &Cred::user(10, 1), MAY_READ | MAY_WRITE).is_ok());
        assert!(check(&f, &Cred::user(11, 20), MAY_READ).is_ok());
        assert!(matches!(
            check(&f, &Cred::user(11, 20), MAY_WRITE),
            Err(Error::Access)
        ));
        let mut c = Cred::user(11, 1);
        assert!(check(&f, &c, MAY_READ).is_err());
        c.groups.push(20);
        assert!(check(&f, &c, MAY_READ).is_ok());
        // The owner class is used even when it grants less than the others.
        let f = file(0o077, 10, 20);
        assert!(check(&f, &Cred::user(10, 20), MAY_READ).is_err());
    }

    #[test]
    fn root_needs_an_exec_bit_to_execute() {
        assert!(check(&file(0o600, 1, 1), &Cred::root(), MAY_READ | MAY_WRITE).is_ok());
        assert!(check(&file(0o600, 1, 1), &Cred::root(), MAY_EXEC).is_err());
        assert!(check(&file(0o001, 1, 1), &Cred::root(), MAY_EXEC).is_ok());
    }

    #[test]
    fn protected_hardlinks_follow_may_linkat() {
        let user = Cred {
            protected_hardlinks: true,
            ..Cred::user(5, 5)
        };
        let linkable = |inode: &Inode, cred: &Cred| check_hardlink(inode, cred).is_ok();
        // Another user's private file: refused; the owner and root may.
        let secret = file(0o600, 0, 0);
        assert!(matches!(check_hardlink(&secret, &user), Err(Error::Perm)));
        assert!(linkable(&file(0o600, 5, 0), &user));
        let root = Cred {
            protected_hardlinks: true,
            ..Cred::root()
        };
        assert!(linkable(&secret, &root));
        // Read and write access makes a plain file safe to link ...
        assert!(linkable(&file(0o666, 0, 0), &user));
        assert!(!linkable(&file(0o644, 0, 0), &user), "read only");
        assert!(!linkable(&file(0o622, 0, 0), &user), "write only");
        // ... unless it is setuid, or setgid and group-executable.
        assert!(!linkable(&file(0o4666, 0, 0), &user));
        assert!(!linkable(&file(0o2676, 0, 0), &user));
        assert!(linkable(&file(0o2666, 0, 0), &user), "setgid without g+x");
        // Only regular files: not another user's fifo, even if open to all.
        let fifo = Inode {
            mode: crate::inode::S_IFIFO | 0o666,
            ..Inode::default()
        };
        assert!(!linkable(&fifo, &user));
        // With the sysctl off (or the kernel checking), anything goes.
        assert!(linkable(&secret, &Cred::user(5, 5)));
        let checked = Cred {
            protected_hardlinks: true,
            ..Cred::kernel_checked(5, 5)
        };
        assert!(linkable(&secret, &checked));
    }

    #[test]
    fn sticky_directory() {
        let dir = Inode {
            mode: S_IFDIR | 0o1777,
            uid: 1,
            ..Inode::default()
        };
        let victim = file(0o644, 2, 2);
        assert!(check_delete(&dir, &victim, &Cred::user(2, 2)).is_ok());
        assert!(check_delete(&dir, &victim, &Cred::user(1, 1)).is_ok());
        assert!(matches!(
            check_delete(&dir, &victim, &Cred::user(3, 3)),
            Err(Error::Perm)
        ));
        assert!(check_delete(&dir, &victim, &Cred::root()).is_ok());
    }
}
