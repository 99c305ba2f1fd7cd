//! Attributes: setattr (chmod, chown, truncate, utimes), access, open and
//! release bookkeeping.

use super::{Attr, Filesystem};
use crate::error::{Error, Result};
use crate::ids::Ino;
use crate::inode::{Inode, Timespec, S_IFMT};
use crate::perm::{Cred, MAY_READ, MAY_WRITE, S_ISGID, S_ISUID, S_IXGRP};
use crate::usage::QuotaId;

/// A time to set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    /// The current time (`UTIME_NOW`).
    Now,
    /// This time.
    At(Timespec),
}

/// What setattr changes; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// Permission bits (the file type is kept).
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Size (truncate or extend).
    pub size: Option<u64>,
    /// Access time.
    pub atime: Option<TimeSet>,
    /// Modification time.
    pub mtime: Option<TimeSet>,
    /// Change time, when the caller knows it (the kernel's cache does).
    pub ctime: Option<Timespec>,
    /// Through an open handle (ftruncate): the handle's access was checked
    /// at open, so no write permission check now.
    pub via_handle: bool,
}

/// `open` access mode mask and flags (Linux values).
const O_ACCMODE: i32 = 3;
const O_WRONLY: i32 = 1;
const O_RDWR: i32 = 2;
const O_TRUNC: i32 = 0o1000;

impl Filesystem {
    /// Checks that the owner and group a chown gives `inode` can take its
    /// pages and the inode within their limits (as ext4's quota transfer).
    fn admit_new_owner(
        &mut self,
        cred: &Cred,
        ino: Ino,
        inode: &Inode,
        set: &SetAttr,
    ) -> Result<()> {
        let (uid, gid) = (set.uid.unwrap_or(inode.uid), set.gid.unwrap_or(inode.gid));
        let new = QuotaId::ids(uid, gid, inode.project);
        let old = QuotaId::of(inode);
        let gained: Vec<QuotaId> = new.into_iter().filter(|id| !old.contains(id)).collect();
        let holds = self.holds(ino, inode);
        self.admit(cred, &gained, holds)
    }

    /// Changes attributes. Checks everything before changing anything.
    pub fn setattr(&mut self, cred: &Cred, ino: Ino, set: &SetAttr) -> Result<Attr> {
        self.writable()?;
        let inode = self.inode(ino)?.clone();
        // Anyone who may write a file may clear its set-id bits: that is
        // what the kernel asks (as a plain mode change) after such a write.
        let only_clears_setid = set.mode.is_some_and(|m| {
            let (old, new) = (inode.mode & 0o7777, m & 0o7777);
            new & !old == 0 && (old ^ new) & !(S_ISUID | S_ISGID) == 0
        });
        if set.mode.is_some() && !cred.owns(&inode) && !only_clears_setid {
            return Err(Error::Perm);
        }
        if (set.uid.is_some() || set.gid.is_some()) && !cred.is_root() && !cred.checked {
            let uid_change = set.uid.is_some_and(|u| u != inode.uid);
            let gid_bad = set.gid.is_some_and(|g| g != inode.gid && !cred.in_group(g));
            if cred.uid != inode.uid || uid_change || gid_bad {
                return Err(Error::Perm);
            }
        }
        if set.size.is_some() {
            if inode.is_dir() {
                return Err(Error::IsDir);
            }
            if !inode.is_reg() {
                return Err(Error::Invalid);
            }
            if !set.via_handle {
                self.permit(&inode, cred, MAY_WRITE)?;
            }
        }
        let explicit =
            matches!(set.atime, Some(TimeSet::At(_))) || matches!(set.mtime, Some(TimeSet::At(_)));
        let to_now =
            matches!(set.atime, Some(TimeSet::Now)) || matches!(set.mtime, Some(TimeSet::Now));
        if explicit && !cred.owns(&inode) {
            return Err(Error::Perm);
        }
        if to_now && !explicit && !cred.owns(&inode) {
            self.permit(&inode, cred, MAY_WRITE)?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            self.admit_new_owner(cred, ino, &inode, set)?;
        }
        let now = Timespec::now();
        if let Some(size) = set.size {
            self.set_size(ino, size)?;
            let i = self.inode_mut(ino)?;
            i.mtime = now;
            i.ctime = now;
        }
        if set.uid.is_some() || set.gid.is_some() {
            // Through the cache, which moves the usage to the new ids.
            let (uid, gid) = (set.uid.unwrap_or(inode.uid), set.gid.unwrap_or(inode.gid));
            self.inode_mut(ino)?;
            let dev = self.dev();
            self.store
                .root
                .cache
                .set_ids(&*dev, ino, uid, gid, inode.project)?;
        }
        let i = self.inode_mut(ino)?;
        if let Some(mode) = set.mode {
            i.mode = (i.mode & S_IFMT) | (mode & 0o7777);
            if cred.lacks_group(set.gid.unwrap_or(i.gid)) {
                i.mode &= !S_ISGID;
            }
        }
        if (set.uid.is_some() || set.gid.is_some()) && !i.is_dir() {
            i.mode &= !S_ISUID;
            if i.mode & S_IXGRP != 0 || cred.lacks_group(i.gid) {
                i.mode &= !S_ISGID;
            }
        }
        let pick = |t: TimeSet| match t {
            TimeSet::Now => now,
            TimeSet::At(t) => t,
        };
        if let Some(t) = set.atime {
            i.atime = pick(t);
        }
        if let Some(t) = set.mtime {
            i.mtime = pick(t);
        }
        i.ctime = set.ctime.unwrap_or(now);
        if set.mode.is_some() {
            self.chmod_acl(ino)?;
        }
        let a = self.getattr(ino)?;
        self.changed()?;
        Ok(a)
    }

    /// `access(2)`: `mask` of R_OK (4), W_OK (2), X_OK (1); 0 tests existence.
    pub fn access(&mut self, cred: &Cred, ino: Ino, mask: u32) -> Result<()> {
        let inode = self.inode(ino)?.clone();
        if mask == 0 {
            return Ok(());
        }
        if mask & MAY_WRITE != 0 && self.store.read_only {
            return Err(Error::ReadOnly);
        }
        self.permit(&inode, cred, mask & 7)
    }

    /// Opens `ino` with `open(2)` flags; counts the open.
    pub fn open(&mut self, cred: &Cred, ino: Ino, flags: i32) -> Result<()> {
        let inode = self.inode(ino)?.clone();
        let acc = flags & O_ACCMODE;
        let write = acc == O_WRONLY || acc == O_RDWR || flags & O_TRUNC != 0;
        let mut mask = 0;
        if acc != O_WRONLY {
            mask |= MAY_READ;
        }
        if write {
            mask |= MAY_WRITE;
            if inode.is_dir() {
                return Err(Error::IsDir);
            }
            self.read_write()?;
        }
        self.permit(&inode, cred, mask)?;
        *self.opens.entry(ino).or_default() += 1;
        Ok(())
    }

    /// Opens directory `ino` for reading; counts the open.
    pub fn opendir(&mut self, cred: &Cred, ino: Ino) -> Result<()> {
        let inode = self.dir(ino)?.clone();
        self.permit(&inode, cred, MAY_READ)?;
        *self.opens.entry(ino).or_default() += 1;
        Ok(())
    }

    /// Closes one open of `ino`; an unlinked inode is freed after its last.
    pub fn release(&mut self, ino: Ino) -> Result<()> {
        if let Some(c) = self.opens.get_mut(&ino) {
            *c -= 1;
            if *c == 0 {
                self.opens.remove(&ino);
            }
        }
        self.reap_orphan(ino)
    }

    /// Updates the access time after a read, as the atime policy says.
    pub(super) fn touch_atime(&mut self, ino: Ino) -> Result<()> {
        if self.store.read_only {
            return Ok(());
        }
        let policy = self.opts.atime;
        let inode = self.inode(ino)?;
        let now = Timespec::now();
        let due = match policy {
            super::AtimeMode::Never => false,
            super::AtimeMode::Always => true,
            super::AtimeMode::Relative => {
                inode.atime <= inode.mtime
                    || inode.atime <= inode.ctime
                    || now.sec - inode.atime.sec >= 24 * 3600
            }
        };
        // An access time is not worth cleaning for: with no room left for
        // one more node in the next commit, it is not updated.
        let room = crate::room::Demand { pages: 0, nodes: 1 };
        if due && self.store.fits(room, crate::room::Tier::Metadata) {
            self.inode_mut(ino)?.atime = now;
        }
        Ok(())
    }
}
