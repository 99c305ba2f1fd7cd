//! POSIX access control lists: what the kernel leaves to a FUSE daemon.
//! The kernel enforces lists it has read (under `default_permissions`,
//! with FUSE_POSIX_ACL); the daemon stores them, keeps the mode and the
//! access list in step both ways, hands a directory's default list to
//! what is made in it, and checks lists itself when the kernel does not.

use super::Filesystem;
use crate::acl::Acl;
use crate::error::{Error, Result};
use crate::ids::{Ino, Nid};
use crate::inode::{Inode, Timespec, S_IFDIR, S_IFLNK, S_IFMT};
use crate::perm::{self, cap, Cred, S_ISGID};
use crate::xattr::{Namespace, SetMode, XattrNode};

fn not_attributes(nid: Nid) -> Error {
    Error::corrupt(
        format!("node {nid}"),
        crate::ids::PageAddr::NONE,
        "expected an attribute node",
    )
}

/// Is `ns` one of the two access control lists (access, default)?
pub(super) fn is_acl(ns: Namespace) -> bool {
    matches!(ns, Namespace::PosixAclAccess | Namespace::PosixAclDefault)
}

impl Filesystem {
    /// The attributes held in node `nid` (none for [`Nid::NONE`]).
    pub(super) fn xattrs_at(&mut self, nid: Nid) -> Result<XattrNode> {
        if nid.is_none() {
            return Ok(XattrNode::default());
        }
        let dev = self.dev();
        match &self.store.root.cache.get(&*dev, nid)?.body {
            crate::node::NodeBody::Xattr(x) => Ok((**x).clone()),
            _ => Err(not_attributes(nid)),
        }
    }

    /// `inode`'s list of kind `ns`, if it has one.
    fn acl_of(&mut self, inode: &Inode, ns: Namespace) -> Result<Option<Acl>> {
        if inode.xattr_nid.is_none() {
            return Ok(None);
        }
        let nid = inode.xattr_nid;
        let dev = self.dev();
        let crate::node::NodeBody::Xattr(x) = &self.store.root.cache.get(&*dev, nid)?.body else {
            return Err(not_attributes(nid));
        };
        let Some(value) = x.get(ns, b"") else {
            return Ok(None);
        };
        // Lists are validated when set: one that no longer decodes was
        // damaged on disk.
        Acl::decode(value).map_err(|_| {
            Error::corrupt(
                format!("node {nid}"),
                crate::ids::PageAddr::NONE,
                "an access control list that does not decode",
            )
        })
    }

    /// Checks `mask` (MAY_* bits) on `inode` for `cred`, with the inode's
    /// access control list when it has one and the kernel has not checked
    /// already. The list is read only for callers it can concern.
    pub(super) fn permit(&mut self, inode: &Inode, cred: &Cred, mask: u32) -> Result<()> {
        if cred.checked || cred.is_root() || cred.uid == inode.uid || inode.xattr_nid.is_none() {
            return perm::check(inode, cred, mask);
        }
        let acl = self.acl_of(inode, Namespace::PosixAclAccess)?;
        perm::check_acl(inode, acl.as_ref(), cred, mask)
    }

    /// The protected-hard-link rule, with the inode's list.
    pub(super) fn permit_hardlink(&mut self, inode: &Inode, cred: &Cred) -> Result<()> {
        let acl = if cred.checked || !cred.protected_hardlinks {
            None
        } else {
            self.acl_of(inode, Namespace::PosixAclAccess)?
        };
        perm::check_hardlink(inode, acl.as_ref(), cred)
    }

    /// May `cred` read or set list `ns` of `inode`? Anyone may read one;
    /// only the owner (or root) may set one, and only a directory has a
    /// default list.
    pub(super) fn acl_allowed(
        inode: &Inode,
        cred: &Cred,
        ns: Namespace,
        write: bool,
    ) -> Result<()> {
        if !write {
            return Ok(());
        }
        if !cred.owns(inode) {
            return Err(Error::Perm);
        }
        if ns == Namespace::PosixAclDefault && !inode.is_dir() {
            return Err(Error::Access);
        }
        Ok(())
    }

    /// Sets (`value` is a list) or removes (`None`, or an empty list) list
    /// `ns` of `ino`, after [`Filesystem::acl_allowed`]. An access list
    /// sets the mode's permission bits (its group bits from the mask), and
    /// one that says no more than the mode is not stored; a caller outside
    /// the owning group without CAP_FSETID loses the set-group-id bit (the
    /// kernel's rule for a list set through it).
    pub(super) fn set_acl(
        &mut self,
        cred: &Cred,
        ino: Ino,
        ns: Namespace,
        value: Option<&[u8]>,
        mode: SetMode,
    ) -> Result<()> {
        debug_assert!(is_acl(ns));
        let acl = match value {
            Some(v) => Acl::decode(v)?,
            None => None,
        };
        let inode = self.inode(ino)?.clone();
        let mut x = self.xattrs_at(inode.xattr_nid)?;
        if let (Some(_), SetMode::Create) = (x.get(ns, b""), mode) {
            return Err(Error::Exists);
        }
        // Removing a list that is not there succeeds, as on ext4 (`setfacl
        // -b` on a file without one).
        if x.get(ns, b"").is_none() && mode == SetMode::Replace {
            return Err(Error::NoAttr);
        }
        let mut new_mode = inode.mode;
        let stored = match acl {
            Some(acl) if ns == Namespace::PosixAclAccess => {
                new_mode = (new_mode & !0o777) | acl.mode_bits();
                if !cred.in_group(inode.gid) && !cred.capable(cap::FSETID) {
                    new_mode &= !S_ISGID;
                }
                (!acl.is_minimal()).then_some(acl)
            }
            other => other,
        };
        match stored {
            Some(acl) => x.set(ns, b"", &acl.encode(), SetMode::Any)?,
            None => {
                let _ = x.remove(ns, b"");
            }
        }
        self.save_xattrs(ino, x)?;
        let i = self.inode_mut(ino)?;
        i.mode = new_mode;
        i.ctime = Timespec::now();
        self.changed()
    }

    /// After `chmod`: the access list (if any) takes the new permission
    /// bits, its mask standing for the group class.
    pub(super) fn chmod_acl(&mut self, ino: Ino) -> Result<()> {
        let inode = self.inode(ino)?.clone();
        let Some(mut acl) = self.acl_of(&inode, Namespace::PosixAclAccess)? else {
            return Ok(());
        };
        acl.chmod(inode.mode);
        let mut x = self.xattrs_at(inode.xattr_nid)?;
        x.set(Namespace::PosixAclAccess, b"", &acl.encode(), SetMode::Any)?;
        self.save_xattrs(ino, x)
    }

    /// What a new inode of `mode` made in `parent` inherits: its mode and
    /// the lists to give it (Linux `posix_acl_create`). Without a default
    /// list on the parent, the umask applies and there are none; with one,
    /// the umask does not apply, a directory inherits the default list as
    /// its own default, and the access list is the default narrowed by
    /// the mode asked for (not stored when the mode says it all). A
    /// symbolic link has no lists and keeps its mode.
    pub(super) fn inherit_acls(
        &mut self,
        parent: &Inode,
        mode: u32,
        cred: &Cred,
    ) -> Result<(u32, XattrNode)> {
        let mut x = XattrNode::default();
        if mode & S_IFMT == S_IFLNK {
            return Ok((mode, x));
        }
        let Some(default) = self.acl_of(parent, Namespace::PosixAclDefault)? else {
            return Ok((mode & !(cred.umask & 0o777), x));
        };
        if mode & S_IFMT == S_IFDIR {
            x.set(
                Namespace::PosixAclDefault,
                b"",
                &default.encode(),
                SetMode::Any,
            )?;
        }
        let mut access = default;
        let mode = access.create_masq(mode);
        if !access.is_minimal() {
            x.set(
                Namespace::PosixAclAccess,
                b"",
                &access.encode(),
                SetMode::Any,
            )?;
        }
        Ok((mode, x))
    }
}
