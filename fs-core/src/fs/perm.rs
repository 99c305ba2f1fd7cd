//! Credentials and POSIX permission checks, with access control lists.

use crate::acl::{Acl, Tag};
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

/// Linux capability bits that bend a rule here.
pub mod cap {
    /// CAP_FSETID: keep the set-group-id bit whatever one's groups.
    pub const FSETID: u64 = 1 << 4;
    /// CAP_SYS_RESOURCE: exceed quota limits.
    pub const SYS_RESOURCE: u64 = 1 << 24;
    /// Every capability.
    pub const ALL: u64 = u64::MAX;
}

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
    /// The caller's effective capabilities ([`cap`] bits), where a rule
    /// depends on them. A FUSE daemon reads them from /proc only for the
    /// calls that need them, so a credential may under-state them.
    pub caps: u64,
    /// The caller's umask, applied to a new inode whose directory has no
    /// default access control list (under FUSE's `dont_mask` the kernel
    /// leaves that to the filesystem, which alone knows the directory's
    /// list).
    pub umask: u32,
}

impl Cred {
    /// The superuser.
    pub fn root() -> Cred {
        Cred {
            caps: cap::ALL,
            ..Cred::default()
        }
    }

    /// A user with no supplementary groups.
    pub fn user(uid: u32, gid: u32) -> Cred {
        Cred {
            uid,
            gid,
            groups: Vec::new(),
            checked: false,
            protected_hardlinks: false,
            caps: 0,
            umask: 0,
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
            caps: 0,
            umask: 0,
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

    /// Has the caller capability `bit` ([`cap`])?
    pub fn capable(&self, bit: u64) -> bool {
        self.caps & bit == bit
    }

    /// Should a mode adjustment that depends on group membership apply?
    /// (Not when the kernel already made it, and never for root.)
    pub fn lacks_group(&self, gid: u32) -> bool {
        !self.checked && !self.is_root() && !self.in_group(gid)
    }
}

/// Checks `mask` (MAY_* bits) against `inode`'s mode for `cred`.
pub fn check(inode: &Inode, cred: &Cred, mask: u32) -> Result<()> {
    check_acl(inode, None, cred, mask)
}

/// Checks `mask` against `inode`'s access control list `acl` (if it has
/// one) or its mode, as Linux's `generic_permission` does: the owner class
/// by the mode, everyone else by the list when there is one.
pub fn check_acl(inode: &Inode, acl: Option<&Acl>, cred: &Cred, mask: u32) -> Result<()> {
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
    } else if let Some(acl) = acl {
        acl_bits(acl, inode, cred, mask)
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

/// What `acl` grants a caller who does not own the inode (Linux
/// `posix_acl_permission`): a named user entry, else the owning group and
/// the named groups (the first of the caller's that grants all of `mask`,
/// or nothing if the caller is in one of them but none grants it), else
/// other; the mask limits all but other.
fn acl_bits(acl: &Acl, inode: &Inode, cred: &Cred, mask: u32) -> u32 {
    let limit = acl.find(Tag::Mask).map_or(7, |m| u32::from(m.perm));
    if let Some(e) = acl
        .entries
        .iter()
        .find(|e| e.tag == Tag::User && e.id == cred.uid)
    {
        return u32::from(e.perm) & limit;
    }
    let mut in_a_group = false;
    for e in &acl.entries {
        let member = match e.tag {
            Tag::GroupObj => cred.in_group(inode.gid),
            Tag::Group => cred.in_group(e.id),
            _ => false,
        };
        if member {
            in_a_group = true;
            if u32::from(e.perm) & mask == mask {
                return u32::from(e.perm) & limit;
            }
        }
    }
    if in_a_group {
        0
    } else {
        acl.find(Tag::Other).map_or(0, |e| u32::from(e.perm))
    }
}

/// May `cred` remove or rename `victim` out of directory `dir`? (Write and
/// search permission on `dir`, checked by the caller with the directory's
/// list, and the sticky-bit rule.)
pub fn check_sticky(dir: &Inode, victim: &Inode, cred: &Cred) -> Result<()> {
    if cred.checked {
        return Ok(());
    }
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
pub fn check_hardlink(inode: &Inode, acl: Option<&Acl>, cred: &Cred) -> Result<()> {
    if !cred.protected_hardlinks || cred.owns(inode) {
        return Ok(());
    }
    let setgid_exec = S_ISGID | S_IXGRP;
    let safe_source = inode.is_reg()
        && inode.mode & S_ISUID == 0
        && inode.mode & setgid_exec != setgid_exec
        && check_acl(inode, acl, cred, MAY_READ | MAY_WRITE).is_ok();
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
        let linkable = |inode: &Inode, cred: &Cred| check_hardlink(inode, None, cred).is_ok();
        // Another user's private file: refused; the owner and root may.
        let secret = file(0o600, 0, 0);
        assert!(matches!(
            check_hardlink(&secret, None, &user),
            Err(Error::Perm)
        ));
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
    fn an_acl_decides_for_everyone_but_the_owner() {
        use crate::acl::{Entry, NO_ID};
        // u::rw- u:7:rwx g::r-- g:30:rw- m::rw- o::---
        let e = |tag, perm, id| Entry { tag, perm, id };
        let acl = Acl {
            entries: vec![
                e(Tag::UserObj, 6, NO_ID),
                e(Tag::User, 7, 7),
                e(Tag::GroupObj, 4, NO_ID),
                e(Tag::Group, 6, 30),
                e(Tag::Mask, 6, NO_ID),
                e(Tag::Other, 0, NO_ID),
            ],
        };
        let f = file(0o660, 10, 20);
        let ok = |c: &Cred, m| check_acl(&f, Some(&acl), c, m).is_ok();
        // The owner goes by the mode's owner bits.
        assert!(ok(&Cred::user(10, 1), MAY_READ | MAY_WRITE));
        assert!(!ok(&Cred::user(10, 1), MAY_EXEC));
        // A named user gets their entry, limited by the mask.
        assert!(ok(&Cred::user(7, 1), MAY_READ | MAY_WRITE));
        assert!(!ok(&Cred::user(7, 1), MAY_EXEC), "masked");
        // Groups: the first matching entry that grants all of the mask.
        assert!(ok(&Cred::user(8, 20), MAY_READ));
        assert!(!ok(&Cred::user(8, 20), MAY_WRITE), "owning group: r only");
        let mut both = Cred::user(8, 20);
        both.groups.push(30);
        assert!(ok(&both, MAY_WRITE), "g:30 grants write");
        // In a listed group that grants nothing asked: no fall back to other.
        assert!(!ok(&Cred::user(8, 30), MAY_EXEC));
        // Nobody in particular: other.
        assert!(!ok(&Cred::user(9, 9), MAY_READ));
        // The mode alone would have let the owning group write.
        assert!(check(&f, &Cred::user(8, 20), MAY_WRITE).is_ok());
    }

    #[test]
    fn sticky_directory() {
        let dir = Inode {
            mode: S_IFDIR | 0o1777,
            uid: 1,
            ..Inode::default()
        };
        let victim = file(0o644, 2, 2);
        assert!(check_sticky(&dir, &victim, &Cred::user(2, 2)).is_ok());
        assert!(check_sticky(&dir, &victim, &Cred::user(1, 1)).is_ok());
        assert!(matches!(
            check_sticky(&dir, &victim, &Cred::user(3, 3)),
            Err(Error::Perm)
        ));
        assert!(check_sticky(&dir, &victim, &Cred::root()).is_ok());
    }
}
