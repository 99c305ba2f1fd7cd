//! Extended attributes: user, trusted and security namespaces, and the
//! POSIX access control lists (see [`super::acl`]); names in other
//! namespaces read as absent (ENODATA) and cannot be set (EOPNOTSUPP).

use super::acl::is_acl;
use super::compression::{COMPRESS_XATTR, REPORT_XATTR};
use super::Filesystem;
use crate::error::{Error, Result};
use crate::ids::{Ino, Nid};
use crate::inode::{Inode, Timespec};
use crate::node::NodeBody;
use crate::page_life::life;
use crate::perm::{Cred, MAY_READ, MAY_WRITE, S_ISGID, S_ISUID, S_ISVTX, S_IXGRP};
use crate::xattr::{Namespace, SetMode, XattrNode};

/// The name, in the `security.` namespace, of file capabilities.
const CAPABILITY: &[u8] = b"capability";

/// `setxattr` flags (Linux values).
const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

impl Filesystem {
    fn xattrs(&mut self, ino: Ino) -> Result<XattrNode> {
        let nid = self.inode(ino)?.xattr_nid;
        self.xattrs_at(nid)
    }

    pub(super) fn save_xattrs(&mut self, ino: Ino, x: XattrNode) -> Result<()> {
        let dev = self.dev();
        let nid = self.inode(ino)?.xattr_nid;
        if x.entries.is_empty() {
            if !nid.is_none() {
                let building = self.store.building();
                let s = &mut self.store;
                s.root
                    .cache
                    .remove(&*dev, &mut life!(s, &*dev, building), nid)?;
                self.inode_mut(ino)?.xattr_nid = Nid::NONE;
            }
            return Ok(());
        }
        if nid.is_none() {
            let nid = self
                .store
                .root
                .cache
                .create(&*dev, ino, 0, NodeBody::Xattr(Box::new(x)))?;
            self.inode_mut(ino)?.xattr_nid = nid;
        } else if let NodeBody::Xattr(old) = &mut self.store.root.cache.get_mut(&*dev, nid)?.body {
            **old = x;
        }
        self.store.root.changed = true;
        Ok(())
    }

    /// May `cred` read (`write == false`) or change the attribute class `ns` of `inode`?
    fn xattr_allowed(
        &mut self,
        inode: &Inode,
        cred: &Cred,
        ns: Namespace,
        write: bool,
    ) -> Result<()> {
        match ns {
            Namespace::PosixAclAccess | Namespace::PosixAclDefault => {
                Self::acl_allowed(inode, cred, ns, write)
            }
            Namespace::Trusted if !cred.is_root() => {
                Err(if write { Error::Perm } else { Error::NoAttr })
            }
            Namespace::Trusted => Ok(()),
            Namespace::Security if write && !cred.is_root() => Err(Error::Perm),
            Namespace::Security => Ok(()),
            Namespace::User => {
                if !inode.is_reg() && !inode.is_dir() {
                    return Err(if write { Error::Perm } else { Error::NoAttr });
                }
                if write && inode.is_dir() && inode.mode & S_ISVTX != 0 && !cred.owns(inode) {
                    return Err(Error::Perm);
                }
                self.permit(inode, cred, if write { MAY_WRITE } else { MAY_READ })
            }
        }
    }

    /// The value of attribute `name`. A name in a namespace pagelog does
    /// not store is simply absent (ENODATA, as ext4 answers for a name it
    /// does not have); only setting one is "not supported".
    pub fn getxattr(&mut self, cred: &Cred, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        match name {
            COMPRESS_XATTR => return self.compression(ino).map(String::into_bytes),
            REPORT_XATTR => return self.savings_report(ino),
            _ => {}
        }
        let inode = self.inode(ino)?.clone();
        let (ns, suffix) = match Namespace::parse(name) {
            Err(Error::NotSupported) => return Err(Error::NoAttr),
            parsed => parsed?,
        };
        self.xattr_allowed(&inode, cred, ns, false)?;
        self.xattrs(ino)?
            .get(ns, suffix)
            .map(<[u8]>::to_vec)
            .ok_or(Error::NoAttr)
    }

    /// Sets attribute `name` (`flags`: XATTR_CREATE, XATTR_REPLACE).
    pub fn setxattr(
        &mut self,
        cred: &Cred,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.writable()?;
        match name {
            COMPRESS_XATTR => {
                let spec = std::str::from_utf8(value).map_err(|_| Error::Invalid)?;
                return self.set_compression(cred, ino, spec);
            }
            REPORT_XATTR => return Err(Error::Perm),
            _ => {}
        }
        let (ns, suffix) = Namespace::parse(name)?;
        let inode = self.inode(ino)?.clone();
        self.xattr_allowed(&inode, cred, ns, true)?;
        let mode = match flags & (XATTR_CREATE | XATTR_REPLACE) {
            0 => SetMode::Any,
            XATTR_CREATE => SetMode::Create,
            XATTR_REPLACE => SetMode::Replace,
            _ => return Err(Error::Invalid),
        };
        if is_acl(ns) {
            return self.set_acl(cred, ino, ns, Some(value), mode);
        }
        let mut x = self.xattrs(ino)?;
        x.set(ns, suffix, value, mode)?;
        self.save_xattrs(ino, x)?;
        self.inode_mut(ino)?.ctime = Timespec::now();
        self.changed()?;
        Ok(())
    }

    /// Names of the attributes `cred` may see, each followed by a NUL.
    pub fn listxattr(&mut self, cred: &Cred, ino: Ino) -> Result<Vec<u8>> {
        self.inode(ino)?;
        let mut out = Vec::new();
        for x in self.xattrs(ino)?.entries {
            // Listing needs no read permission (as on Linux); trusted
            // attributes are invisible to everyone but root.
            if x.ns != Namespace::Trusted || cred.is_root() {
                out.extend_from_slice(&x.full_name());
                out.push(0);
            }
        }
        Ok(out)
    }

    /// What a write or truncation takes from a file, as Linux's
    /// `file_remove_privs` does (FUSE leaves it to the filesystem once it
    /// has told the kernel it handles it): its file capabilities
    /// (`security.capability`) always, and with `setid` (a caller without
    /// CAP_FSETID) the set-user-id bit and the set-group-id bit of a
    /// group-executable file. Changes nothing, and costs one inode lookup,
    /// for a file with neither. Returns whether anything changed.
    pub fn kill_privileges(&mut self, ino: Ino, setid: bool) -> Result<bool> {
        let inode = self.inode(ino)?;
        let mode = inode.mode;
        let kill_mode =
            setid && (mode & S_ISUID != 0 || mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP);
        let mut changed = false;
        if !inode.xattr_nid.is_none() {
            let mut x = self.xattrs(ino)?;
            if x.get(Namespace::Security, CAPABILITY).is_some() {
                x.remove(Namespace::Security, CAPABILITY)?;
                self.save_xattrs(ino, x)?;
                changed = true;
            }
        }
        if kill_mode {
            let i = self.inode_mut(ino)?;
            i.mode &= !S_ISUID;
            if i.mode & S_IXGRP != 0 {
                i.mode &= !S_ISGID;
            }
            changed = true;
        }
        if changed {
            self.inode_mut(ino)?.ctime = Timespec::now();
            self.changed()?;
        }
        Ok(changed)
    }

    /// Removes attribute `name`.
    pub fn removexattr(&mut self, cred: &Cred, ino: Ino, name: &[u8]) -> Result<()> {
        self.writable()?;
        match name {
            COMPRESS_XATTR => return self.set_compression(cred, ino, "none"),
            REPORT_XATTR => return Err(Error::Perm),
            _ => {}
        }
        let (ns, suffix) = Namespace::parse(name)?;
        let inode = self.inode(ino)?.clone();
        self.xattr_allowed(&inode, cred, ns, true)?;
        if is_acl(ns) {
            return self.set_acl(cred, ino, ns, None, SetMode::Any);
        }
        let mut x = self.xattrs(ino)?;
        x.remove(ns, suffix)?;
        self.save_xattrs(ino, x)?;
        self.inode_mut(ino)?.ctime = Timespec::now();
        self.changed()?;
        Ok(())
    }
}
