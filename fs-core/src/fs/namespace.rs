//! Names: lookup, create, link, unlink, rename, readdir, symbolic links.

use super::{check_name, dtype_of, Attr, Filesystem, LINK_MAX};
use crate::dir_index;
use crate::error::{Error, Result};
use crate::ids::Ino;
use crate::inode::{
    Inode, Timespec, FLAG_INLINE, INLINE_MAX, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT,
    S_IFREG, S_IFSOCK,
};
use crate::layout::{zero_page, SYMLINK_MAX};
use crate::perm::{self, Cred, MAY_EXEC, MAY_WRITE};

/// One directory entry as readdir hands it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirItem {
    /// Inode named.
    pub ino: Ino,
    /// Offset to pass back to continue after this entry.
    pub offset: u64,
    /// Linux `DT_*` type.
    pub dtype: u8,
    /// Name.
    pub name: Vec<u8>,
}

/// `renameat2` flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenameFlags(pub u32);

impl RenameFlags {
    /// Fail if the target exists.
    pub const NOREPLACE: u32 = 1;
    /// Swap source and target.
    pub const EXCHANGE: u32 = 2;
    /// Leave a whiteout (not supported).
    pub const WHITEOUT: u32 = 4;
}

impl Filesystem {
    pub(super) fn find(&mut self, dir: Ino, name: &[u8]) -> Result<Option<dir_index::DirEntryRef>> {
        let dev = self.dev();
        let seed = self.store.sb.hash_seed;
        Ok(
            dir_index::lookup(&mut self.store.root.cache, &*dev, dir, name, seed)?.map(|e| {
                dir_index::DirEntryRef {
                    ino: e.ino,
                    dtype: e.dtype,
                }
            }),
        )
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&mut self, cred: &Cred, parent: Ino, name: &[u8]) -> Result<Attr> {
        let dir = self.dir(parent)?.clone();
        self.permit(&dir, cred, MAY_EXEC)?;
        if name.len() > crate::layout::NAME_MAX {
            return Err(Error::NameTooLong);
        }
        let ino = match name {
            b"." => parent,
            b".." => {
                if parent == Ino::ROOT || dir.parent.is_none() {
                    Ino::ROOT
                } else {
                    dir.parent
                }
            }
            _ => {
                check_name(name)?;
                self.find(parent, name)?.ok_or(Error::NotFound)?.ino
            }
        };
        self.getattr(ino)
    }

    /// Checks that a new entry `name` may be made in `parent`.
    fn prepare_create(&mut self, cred: &Cred, parent: Ino, name: &[u8]) -> Result<Inode> {
        self.writable()?;
        check_name(name)?;
        let dir = self.dir(parent)?.clone();
        if dir.nlink == 0 {
            return Err(Error::NotFound);
        }
        self.permit(&dir, cred, MAY_WRITE | MAY_EXEC)?;
        if name == b"." || name == b".." || self.find(parent, name)?.is_some() {
            return Err(Error::Exists);
        }
        self.admit_name(cred, &dir)?;
        Ok(dir)
    }

    /// Links new inode `ino` as `name` in `parent` and updates the parent.
    pub(super) fn link_new(&mut self, parent: Ino, name: &[u8], ino: Ino, mode: u32) -> Result<()> {
        let dev = self.dev();
        let seed = self.store.sb.hash_seed;
        dir_index::insert(
            &mut self.store.root.cache,
            &*dev,
            parent,
            name,
            ino,
            dtype_of(mode),
            seed,
        )?;
        let now = Timespec::now();
        let p = self.inode_mut(parent)?;
        p.mtime = now;
        p.ctime = now;
        if mode & S_IFMT == S_IFDIR {
            p.nlink += 1;
        }
        Ok(())
    }

    /// Makes a file, device node, fifo or socket (`mode` holds the type;
    /// none means a regular file).
    pub fn mknod(
        &mut self,
        cred: &Cred,
        parent: Ino,
        name: &[u8],
        mode: u32,
        rdev: u64,
    ) -> Result<Attr> {
        let mode = if mode & S_IFMT == 0 {
            mode | S_IFREG
        } else {
            mode
        };
        match mode & S_IFMT {
            S_IFREG | S_IFIFO | S_IFSOCK => {}
            S_IFCHR | S_IFBLK if cred.is_root() => {}
            S_IFCHR | S_IFBLK => return Err(Error::Perm),
            _ => return Err(Error::Invalid),
        }
        self.prepare_create(cred, parent, name)?;
        let rdev = if matches!(mode & S_IFMT, S_IFCHR | S_IFBLK) {
            rdev
        } else {
            0
        };
        let ino = self.new_inode(cred, parent, mode, rdev, 0)?;
        self.link_new(parent, name, ino, mode)?;
        let a = self.getattr(ino)?;
        self.changed()?;
        Ok(a)
    }

    /// Creates and opens a regular file (`open` with `O_CREAT`): the new
    /// file's own permissions do not apply to this first open.
    pub fn create(
        &mut self,
        cred: &Cred,
        parent: Ino,
        name: &[u8],
        mode: u32,
        _flags: i32,
    ) -> Result<Attr> {
        let a = self.mknod(cred, parent, name, S_IFREG | (mode & 0o7777), 0)?;
        *self.opens.entry(a.ino).or_default() += 1;
        self.changed()?;
        Ok(a)
    }

    /// Makes a directory.
    pub fn mkdir(&mut self, cred: &Cred, parent: Ino, name: &[u8], mode: u32) -> Result<Attr> {
        let dir = self.prepare_create(cred, parent, name)?;
        if dir.nlink >= LINK_MAX {
            return Err(Error::TooManyLinks);
        }
        // As on Linux, mkdir keeps only the permission and sticky bits; the
        // setgid bit comes from the parent.
        let ino = self.new_inode(cred, parent, S_IFDIR | (mode & 0o1777), 0, 0)?;
        self.link_new(parent, name, ino, S_IFDIR)?;
        let a = self.getattr(ino)?;
        self.changed()?;
        Ok(a)
    }

    /// Makes a symbolic link to `target`.
    pub fn symlink(
        &mut self,
        cred: &Cred,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Attr> {
        if target.is_empty() {
            return Err(Error::NotFound);
        }
        if target.len() > SYMLINK_MAX {
            return Err(Error::NameTooLong);
        }
        self.prepare_create(cred, parent, name)?;
        let pages = u64::from(target.len() > INLINE_MAX);
        let ino = self.new_inode(cred, parent, S_IFLNK | 0o777, 0, pages)?;
        let inode = self.inode_mut(ino)?;
        inode.size = target.len() as u64;
        if target.len() <= INLINE_MAX {
            inode.flags |= FLAG_INLINE;
            inode.inline = target.to_vec();
        } else {
            let mut page = zero_page();
            page[..target.len()].copy_from_slice(target);
            self.store.root.dirty.insert(ino, 0, page, true);
            self.store.root.data_is_metadata.insert(ino);
        }
        self.link_new(parent, name, ino, S_IFLNK)?;
        let a = self.getattr(ino)?;
        self.changed()?;
        Ok(a)
    }

    /// The target of a symbolic link.
    pub fn readlink(&mut self, ino: Ino) -> Result<Vec<u8>> {
        let inode = self.inode(ino)?.clone();
        if !inode.is_symlink() {
            return Err(Error::Invalid);
        }
        if inode.has_inline() {
            return Ok(inode.inline);
        }
        let page = self.read_page(ino, 0)?;
        let n = (inode.size as usize).min(page.len());
        Ok(page[..n].to_vec())
    }

    /// Adds the name `newname` in `newparent` for `ino` (under protected
    /// hard links, only if [`perm::check_hardlink`] allows it).
    pub fn link(&mut self, cred: &Cred, ino: Ino, newparent: Ino, newname: &[u8]) -> Result<Attr> {
        let inode = self.inode(ino)?.clone();
        if inode.is_dir() {
            return Err(Error::Perm);
        }
        let dir = self.prepare_create(cred, newparent, newname)?;
        Self::check_project(&dir, &inode)?;
        self.permit_hardlink(&inode, cred)?;
        if inode.nlink == 0 {
            return Err(Error::NotFound);
        }
        if inode.nlink >= LINK_MAX {
            return Err(Error::TooManyLinks);
        }
        self.link_new(newparent, newname, ino, inode.mode)?;
        let i = self.inode_mut(ino)?;
        i.nlink += 1;
        i.ctime = Timespec::now();
        i.parent = newparent;
        let a = self.getattr(ino)?;
        self.changed()?;
        Ok(a)
    }

    /// Finds `name` in `parent` for removal, checking permissions.
    fn prepare_remove(&mut self, cred: &Cred, parent: Ino, name: &[u8]) -> Result<(Ino, Inode)> {
        self.writable()?;
        if name.len() > crate::layout::NAME_MAX {
            return Err(Error::NameTooLong);
        }
        let dir = self.dir(parent)?.clone();
        self.permit(&dir, cred, MAY_EXEC)?;
        let entry = self.find(parent, name)?.ok_or(Error::NotFound)?;
        let victim = self.inode(entry.ino)?.clone();
        self.permit(&dir, cred, MAY_WRITE | MAY_EXEC)?;
        perm::check_sticky(&dir, &victim, cred)?;
        Ok((entry.ino, victim))
    }

    /// Removes the entry and touches the parent.
    fn remove_entry(&mut self, parent: Ino, name: &[u8], was_dir: bool) -> Result<()> {
        self.drop_name(parent, name)?;
        let now = Timespec::now();
        let p = self.inode_mut(parent)?;
        p.mtime = now;
        p.ctime = now;
        if was_dir {
            p.nlink = p.nlink.saturating_sub(1);
        }
        Ok(())
    }

    /// Removes a name of a non-directory.
    pub fn unlink(&mut self, cred: &Cred, parent: Ino, name: &[u8]) -> Result<()> {
        if name == b"." || name == b".." {
            return Err(if name == b"." {
                Error::Invalid
            } else {
                Error::NotEmpty
            });
        }
        let (ino, victim) = self.prepare_remove(cred, parent, name)?;
        if victim.is_dir() {
            return Err(Error::IsDir);
        }
        self.remove_entry(parent, name, false)?;
        let v = self.inode_mut(ino)?;
        v.nlink = v.nlink.saturating_sub(1);
        v.ctime = Timespec::now();
        self.reap(ino)?;
        self.changed()
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, cred: &Cred, parent: Ino, name: &[u8]) -> Result<()> {
        match name {
            b"." => return Err(Error::Invalid),
            b".." => return Err(Error::NotEmpty),
            _ => {}
        }
        let (ino, victim) = self.prepare_remove(cred, parent, name)?;
        if !victim.is_dir() {
            return Err(Error::NotDir);
        }
        if victim.dir_entries > 0 {
            return Err(Error::NotEmpty);
        }
        self.remove_entry(parent, name, true)?;
        let v = self.inode_mut(ino)?;
        v.nlink = 0;
        v.ctime = Timespec::now();
        self.reap(ino)?;
        self.changed()
    }

    /// Is `dir` the same as, or below, `ancestor`?
    fn is_within(&mut self, dir: Ino, ancestor: Ino) -> Result<bool> {
        let mut cur = dir;
        for _ in 0..100_000 {
            if cur == ancestor {
                return Ok(true);
            }
            if cur == Ino::ROOT {
                return Ok(false);
            }
            let parent = self.inode(cur)?.parent;
            if parent.is_none() {
                return Ok(false);
            }
            cur = parent;
        }
        Err(Error::corrupt(
            "directory tree",
            crate::ids::PageAddr::NONE,
            format!("cycle above directory {dir}"),
        ))
    }

    /// Renames (`renameat2` semantics, with NOREPLACE and EXCHANGE).
    #[allow(clippy::too_many_arguments)]
    pub fn rename(
        &mut self,
        cred: &Cred,
        p1: Ino,
        n1: &[u8],
        p2: Ino,
        n2: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        self.writable()?;
        let f = flags.0;
        let exchange = f & RenameFlags::EXCHANGE != 0;
        let noreplace = f & RenameFlags::NOREPLACE != 0;
        if f & !(RenameFlags::EXCHANGE | RenameFlags::NOREPLACE) != 0 || (exchange && noreplace) {
            return Err(Error::Invalid);
        }
        for n in [n1, n2] {
            if n.len() > crate::layout::NAME_MAX {
                return Err(Error::NameTooLong);
            }
            if n == b"." || n == b".." {
                return Err(Error::Busy);
            }
        }
        check_name(n2)?;
        let d1 = self.dir(p1)?.clone();
        let d2 = self.dir(p2)?.clone();
        self.permit(&d1, cred, MAY_WRITE | MAY_EXEC)?;
        self.permit(&d2, cred, MAY_WRITE | MAY_EXEC)?;
        let src = self.find(p1, n1)?.ok_or(Error::NotFound)?;
        let dst = self.find(p2, n2)?;
        if exchange && dst.is_none() {
            return Err(Error::NotFound);
        }
        if noreplace && dst.is_some() {
            return Err(Error::Exists);
        }
        if dst.is_some_and(|d| d.ino == src.ino) {
            return Ok(());
        }
        let s_inode = self.inode(src.ino)?.clone();
        if p1 != p2 {
            Self::check_project(&d2, &s_inode)?;
        }
        perm::check_sticky(&d1, &s_inode, cred)?;
        let d_inode = match dst {
            Some(d) => {
                let i = self.inode(d.ino)?.clone();
                perm::check_sticky(&d2, &i, cred)?;
                if exchange && p1 != p2 {
                    Self::check_project(&d1, &i)?;
                }
                Some(i)
            }
            None => None,
        };
        if s_inode.is_dir() {
            if p1 != p2 {
                self.permit(&s_inode, cred, MAY_WRITE)?;
            }
            if self.is_within(p2, src.ino)? {
                return Err(Error::Invalid);
            }
        }
        if let (Some(d), Some(di)) = (dst, &d_inode) {
            if exchange {
                if di.is_dir() {
                    if p1 != p2 {
                        self.permit(di, cred, MAY_WRITE)?;
                    }
                    if self.is_within(p1, d.ino)? {
                        return Err(Error::Invalid);
                    }
                }
            } else if s_inode.is_dir() {
                if !di.is_dir() {
                    return Err(Error::NotDir);
                }
                if di.dir_entries > 0 {
                    return Err(Error::NotEmpty);
                }
            } else if di.is_dir() {
                return Err(Error::IsDir);
            }
        }
        if !exchange && dst.is_none() && s_inode.is_dir() && p1 != p2 && d2.nlink >= LINK_MAX {
            return Err(Error::TooManyLinks);
        }
        let dev = self.dev();
        let seed = self.store.sb.hash_seed;
        let now = Timespec::now();
        match (dst, exchange) {
            (Some(d), true) => {
                dir_index::retarget(
                    &mut self.store.root.cache,
                    &*dev,
                    p1,
                    n1,
                    d.ino,
                    d.dtype,
                    seed,
                )?;
                dir_index::retarget(
                    &mut self.store.root.cache,
                    &*dev,
                    p2,
                    n2,
                    src.ino,
                    src.dtype,
                    seed,
                )?;
                let d_is_dir = d_inode.as_ref().is_some_and(Inode::is_dir);
                if p1 != p2 {
                    self.move_dir(src.ino, s_inode.is_dir(), p1, p2)?;
                    self.move_dir(d.ino, d_is_dir, p2, p1)?;
                }
                self.inode_mut(d.ino)?.ctime = now;
            }
            (Some(d), false) => {
                dir_index::retarget(
                    &mut self.store.root.cache,
                    &*dev,
                    p2,
                    n2,
                    src.ino,
                    src.dtype,
                    seed,
                )?;
                self.drop_name(p1, n1)?;
                let was_dir = d_inode.as_ref().is_some_and(Inode::is_dir);
                let victim = self.inode_mut(d.ino)?;
                victim.nlink = if was_dir {
                    0
                } else {
                    victim.nlink.saturating_sub(1)
                };
                victim.ctime = now;
                if was_dir {
                    let p = self.inode_mut(p2)?;
                    p.nlink = p.nlink.saturating_sub(1);
                }
                self.move_dir(src.ino, s_inode.is_dir(), p1, p2)?;
            }
            (None, _) => {
                dir_index::insert(
                    &mut self.store.root.cache,
                    &*dev,
                    p2,
                    n2,
                    src.ino,
                    src.dtype,
                    seed,
                )?;
                self.drop_name(p1, n1)?;
                self.move_dir(src.ino, s_inode.is_dir(), p1, p2)?;
            }
        }
        self.inode_mut(src.ino)?.ctime = now;
        for p in [p1, p2] {
            let pi = self.inode_mut(p)?;
            pi.mtime = now;
            pi.ctime = now;
        }
        if let Some(d) = dst {
            if !exchange {
                self.reap(d.ino)?;
            }
        }
        self.changed()?;
        Ok(())
    }

    /// Moves `ino` from parent `from` to `to`: a directory's `..` and both
    /// parents' link counts; another inode's parent hint.
    fn move_dir(&mut self, ino: Ino, is_dir: bool, from: Ino, to: Ino) -> Result<()> {
        if from == to {
            return Ok(());
        }
        if !is_dir {
            self.inode_mut(ino)?.parent = to;
            return Ok(());
        }
        self.inode_mut(ino)?.parent = to;
        let f = self.inode_mut(from)?;
        f.nlink = f.nlink.saturating_sub(1);
        self.inode_mut(to)?.nlink += 1;
        Ok(())
    }

    /// Lists `dir` after `offset` ("." is offset 1, ".." offset 2, then hash
    /// keys), calling `f` until it returns false.
    pub fn readdir(
        &mut self,
        dir: Ino,
        offset: u64,
        f: &mut dyn FnMut(DirItem) -> bool,
    ) -> Result<()> {
        let d = self.dir(dir)?.clone();
        if offset == 0 {
            self.touch_atime(dir)?;
        }
        if offset < 1
            && !f(DirItem {
                ino: dir,
                offset: 1,
                dtype: 4,
                name: b".".to_vec(),
            })
        {
            return Ok(());
        }
        let parent = if dir == Ino::ROOT || d.parent.is_none() {
            Ino::ROOT
        } else {
            d.parent
        };
        if offset < 2
            && !f(DirItem {
                ino: parent,
                offset: 2,
                dtype: 4,
                name: b"..".to_vec(),
            })
        {
            return Ok(());
        }
        let dev = self.dev();
        dir_index::for_each_after(
            &mut self.store.root.cache,
            &*dev,
            dir,
            offset.max(2),
            &mut |e| {
                f(DirItem {
                    ino: e.ino,
                    offset: e.key,
                    dtype: e.dtype,
                    name: e.name.to_vec(),
                })
            },
        )
    }

    /// Attributes of a directory entry's inode (for readdirplus).
    pub fn entry_attr(&mut self, ino: Ino) -> Result<Attr> {
        self.getattr(ino)
    }
}
