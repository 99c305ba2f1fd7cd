//! Project ids, as XFS and ext4 keep them: every inode has one (quotas
//! charge its pages and inode to it), and a directory with the
//! project-inherit flag hands its project, and the flag, down to what is
//! made in it. They are read and set with `FS_IOC_FSGETXATTR` and
//! `FS_IOC_FSSETXATTR` (`chattr -p`, `lsattr -p`, `xfs_io -c chproj`) and
//! the flag also with `FS_IOC_SETFLAGS` (`chattr +P`). Only root changes
//! a project id; a name for an inode of another project cannot be made
//! under a project-inheriting directory (EXDEV: `mv` then copies, charging
//! the new project).

use super::quota::QuotaLine;
use super::{Filesystem, StatFs};
use crate::error::{Error, Result};
use crate::ids::Ino;
use crate::inode::{Inode, FLAG_PROJINHERIT};
use crate::perm::Cred;
use crate::usage::{IdKind, QuotaId};

/// `FS_PROJINHERIT_FL` of `FS_IOC_GETFLAGS`/`SETFLAGS` (`chattr +P`).
pub const FS_PROJINHERIT_FL: u32 = 0x2000_0000;
/// `FS_XFLAG_PROJINHERIT` of `struct fsxattr`.
pub const FS_XFLAG_PROJINHERIT: u32 = 0x200;

/// `st` narrowed to a project's limits and usage (`line`).
fn project_statfs(mut st: StatFs, line: &QuotaLine) -> StatFs {
    let (r, used) = (line.record, line.used);
    if let Some(limit) = df_limit(r.page_soft, r.page_hard).filter(|&l| l < st.blocks) {
        st.blocks = limit;
        st.bfree = limit.saturating_sub(used.pages.max(0) as u64).min(st.bfree);
        st.bavail = st.bfree;
    }
    if let Some(limit) = df_limit(r.inode_soft, r.inode_hard).filter(|&l| l < st.files) {
        st.files = limit;
        let left = limit.saturating_sub(used.inodes.max(0) as u64);
        st.ffree = left.min(st.ffree);
    }
    st
}

/// The limit `df` shows: the soft one, or the hard one if lower or alone
/// (ext4's rule); `None` without either.
fn df_limit(soft: u64, hard: u64) -> Option<u64> {
    match (soft, hard) {
        (0, 0) => None,
        (0, h) => Some(h),
        (s, h) if h != 0 && h < s => Some(h),
        (s, _) => Some(s),
    }
}

/// What `struct fsxattr` holds that pagelog keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsXattr {
    /// `FS_XFLAG_*` bits (only [`FS_XFLAG_PROJINHERIT`] is kept).
    pub xflags: u32,
    /// The project id.
    pub projid: u32,
}

impl Filesystem {
    /// The extended attributes of `ino` (FS_IOC_FSGETXATTR).
    pub fn fsxattr(&mut self, ino: Ino) -> Result<FsXattr> {
        let inode = self.inode(ino)?;
        let xflags = match inode.flags & FLAG_PROJINHERIT {
            0 => 0,
            _ => FS_XFLAG_PROJINHERIT,
        };
        Ok(FsXattr {
            xflags,
            projid: inode.project,
        })
    }

    /// Sets the extended attributes of `ino` (FS_IOC_FSSETXATTR): the
    /// project-inherit flag (its owner or root; kept on directories only,
    /// as ext4 and XFS drop it elsewhere) and the project id (root only,
    /// and within the new project's limits, as a chown). Any other flag is
    /// "not supported", changing nothing.
    pub fn set_fsxattr(&mut self, cred: &Cred, ino: Ino, mut want: FsXattr) -> Result<()> {
        self.writable()?;
        if want.xflags & !FS_XFLAG_PROJINHERIT != 0 {
            return Err(Error::NotSupported);
        }
        let inode = self.inode(ino)?.clone();
        if !inode.is_dir() {
            want.xflags &= !FS_XFLAG_PROJINHERIT;
        }
        let now = self.fsxattr(ino)?;
        if want == now {
            return Ok(());
        }
        if want.projid != inode.project && !cred.is_root() {
            return Err(Error::Perm);
        }
        if !cred.owns(&inode) {
            return Err(Error::Perm);
        }
        if want.projid != inode.project {
            self.admit_project(cred, ino, &inode, want.projid)?;
            let dev = self.dev();
            self.store
                .root
                .cache
                .set_ids(&*dev, ino, inode.uid, inode.gid, want.projid)?;
        }
        self.set_project_inherit(ino, want.xflags & FS_XFLAG_PROJINHERIT != 0)
    }

    /// Sets or clears the project-inherit flag of `ino`.
    pub(super) fn set_project_inherit(&mut self, ino: Ino, on: bool) -> Result<()> {
        let i = self.inode_mut(ino)?;
        match on {
            true => i.flags |= FLAG_PROJINHERIT,
            false => i.flags &= !FLAG_PROJINHERIT,
        }
        i.ctime = crate::inode::Timespec::now();
        self.changed()
    }

    /// Checks that project `projid` can take what `inode` uses.
    fn admit_project(&mut self, cred: &Cred, ino: Ino, inode: &Inode, projid: u32) -> Result<()> {
        let id = QuotaId {
            kind: IdKind::Project,
            id: projid,
        };
        let holds = self.holds(ino, inode);
        self.admit(cred, &[id], holds)
    }

    /// Fails with `CrossDevice` when `inode` may not be given a name in
    /// directory `dir`: the directory hands its project down and `inode`
    /// is of another (XFS and ext4 answer EXDEV).
    pub(super) fn check_project(dir: &Inode, inode: &Inode) -> Result<()> {
        match dir.flags & FLAG_PROJINHERIT != 0 && dir.project != inode.project {
            true => Err(Error::CrossDevice),
            false => Ok(()),
        }
    }

    /// `statfs` asked of `ino`: on a directory that hands its project down
    /// and whose project has limits, the project's limits and usage (the
    /// soft limit, or the hard one if lower or alone), as XFS and ext4
    /// answer `df DIR`; the filesystem's otherwise (also when `ino` or its
    /// project's record cannot be read: `df` always answers).
    pub fn statfs_at(&mut self, ino: Ino) -> StatFs {
        let st = self.statfs();
        let Ok(inode) = self.inode(ino) else {
            return st;
        };
        let (flags, project) = (inode.flags, inode.project);
        if flags & FLAG_PROJINHERIT == 0 || !self.keeps_quota() {
            return st;
        }
        let id = QuotaId {
            kind: IdKind::Project,
            id: project,
        };
        match self.quota_line(id) {
            Ok(line) => project_statfs(st, &line),
            Err(_) => st,
        }
    }

    /// The project a new inode in directory `dir` gets, and whether it
    /// inherits the flag too (a new directory does): the directory's when
    /// it hands it down, else project 0.
    pub(super) fn project_for_child(dir: &Inode) -> (u32, bool) {
        match dir.flags & FLAG_PROJINHERIT != 0 {
            true => (dir.project, true),
            false => (0, false),
        }
    }
}
