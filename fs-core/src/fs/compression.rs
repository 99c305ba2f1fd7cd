//! Compression as a user sees it: the chain a file or directory stores new
//! data through (the attribute `pagelog.compress`, inherited by what is
//! created in a directory) and what it saves (the read-only attribute
//! `pagelog.compression`, for a file, a directory's whole tree, or, on the
//! root, the filesystem).

use std::collections::HashSet;

use super::project::{FS_PROJINHERIT_FL, FS_XFLAG_PROJINHERIT};
use super::Filesystem;
use crate::dir_index;
use crate::error::{Error, Result};
use crate::file_map;
use crate::ids::Ino;
use crate::inode::{Timespec, FLAG_PROJINHERIT};
use crate::layout::PAGE_SIZE;
use crate::perm::Cred;

/// The attribute that names the chain new data is stored through.
pub const COMPRESS_XATTR: &[u8] = b"pagelog.compress";
/// The read-only attribute that reports what compression saves.
pub const REPORT_XATTR: &[u8] = b"pagelog.compression";

/// `FS_COMPR_FL` of `chattr`/`lsattr` (`c`): new data is compressed.
pub const FS_COMPR_FL: u32 = 0x0000_0004;

/// What the data of a file, or of a tree, takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Savings {
    /// Regular files counted.
    pub files: u64,
    /// Bytes of their pages that hold data (holes excluded).
    pub logical: u64,
    /// Bytes of the pages that data takes on the device.
    pub stored: u64,
}

impl Savings {
    /// `key: value` lines, as the report attribute gives them.
    pub fn to_text(&self, chain: &str) -> String {
        let ratio = if self.stored == 0 {
            1.0
        } else {
            self.logical as f64 / self.stored as f64
        };
        format!(
            "chain: {chain}\nfiles: {}\nlogical_bytes: {}\nstored_bytes: {}\nratio: {ratio:.2}\n",
            self.files, self.logical, self.stored
        )
    }
}

impl Filesystem {
    /// The chain new data of `ino` is stored through (`zstd:3`, `none`).
    pub fn compression(&mut self, ino: Ino) -> Result<String> {
        let id = self.inode(ino)?.transform;
        Ok(self.store.chains.get(id)?.spec())
    }

    /// Stores new data of `ino` through the chain `spec` names (`zstd`,
    /// `zstd:9`, `none`); what is created in a directory takes the
    /// directory's. Data already written stays as it is until rewritten.
    /// Only the owner (or root) may, as for `chattr`.
    pub fn set_compression(&mut self, cred: &Cred, ino: Ino, spec: &str) -> Result<()> {
        self.writable()?;
        let inode = self.inode(ino)?;
        if !inode.is_reg() && !inode.is_dir() {
            return Err(Error::NotSupported);
        }
        if !cred.is_root() && !cred.owns(inode) {
            return Err(Error::Perm);
        }
        let id = self.store.chain_for(spec.trim())?;
        let i = self.inode_mut(ino)?;
        i.transform = id;
        i.ctime = Timespec::now();
        self.changed()
    }

    /// The `chattr` flags of `ino` (FS_IOC_GETFLAGS): `c` and `P` are
    /// kept.
    pub fn file_flags(&mut self, ino: Ino) -> Result<u32> {
        let inode = self.inode(ino)?;
        let compr = match inode.transform.0 {
            0 => 0,
            _ => FS_COMPR_FL,
        };
        let inherit = match inode.flags & FLAG_PROJINHERIT {
            0 => 0,
            _ => FS_PROJINHERIT_FL,
        };
        Ok(compr | inherit)
    }

    /// Sets the `chattr` flags of `ino` (FS_IOC_SETFLAGS): `c` stores new
    /// data through the filesystem's default chain (zstd at its default
    /// level if that is none), clearing it stores new data raw; `P` hands
    /// a directory's project down (see `project.rs`); asking for any other
    /// flag is "not supported", changing nothing.
    pub fn set_file_flags(&mut self, cred: &Cred, ino: Ino, flags: u32) -> Result<()> {
        if flags & !(FS_COMPR_FL | FS_PROJINHERIT_FL) != 0 {
            return Err(Error::NotSupported);
        }
        let now = self.file_flags(ino)?;
        // Compression first: it refuses more (file types, chains), and the
        // project flag after it cannot fail where it passed.
        if (now ^ flags) & FS_COMPR_FL != 0 {
            self.set_compressed(cred, ino, flags & FS_COMPR_FL != 0)?;
        }
        if (now ^ flags) & FS_PROJINHERIT_FL != 0 {
            let mut x = self.fsxattr(ino)?;
            x.xflags ^= FS_XFLAG_PROJINHERIT;
            self.set_fsxattr(cred, ino, x)?;
        }
        Ok(())
    }

    /// Stores new data of `ino` through the default chain (`on`) or raw.
    fn set_compressed(&mut self, cred: &Cred, ino: Ino, on: bool) -> Result<()> {
        let spec = if !on {
            "none".to_string()
        } else {
            match self.store.sb.default_transform.0 {
                0 => "zstd".to_string(),
                _ => self
                    .store
                    .chains
                    .get(self.store.sb.default_transform)?
                    .spec(),
            }
        };
        self.set_compression(cred, ino, &spec)
    }

    /// What the data of `ino` takes (for a directory, of every file in its
    /// tree, each counted once however many names it has). Dirty data is
    /// written back first, so the figures are what is stored.
    pub fn savings(&mut self, ino: Ino) -> Result<Savings> {
        if !self.store.read_only {
            self.store.write_back_data()?;
        }
        let mut total = Savings::default();
        let mut seen = HashSet::new();
        let mut dirs = vec![ino];
        while let Some(d) = dirs.pop() {
            let inode = self.inode(d)?;
            if inode.is_reg() {
                if seen.insert(d) {
                    self.add_file(d, &mut total)?;
                }
                continue;
            }
            if !inode.is_dir() {
                continue;
            }
            let dev = self.dev();
            let mut kids = Vec::new();
            dir_index::for_each_after(&mut self.store.root.cache, &*dev, d, 2, &mut |e| {
                kids.push(e.ino);
                true
            })?;
            dirs.extend(kids);
        }
        Ok(total)
    }

    fn add_file(&mut self, ino: Ino, total: &mut Savings) -> Result<()> {
        let dev = self.dev();
        let mut logical = 0u64;
        file_map::walk(
            &mut self.store.root.cache,
            &*dev,
            ino,
            &mut |_, p| {
                if p.is_stored() {
                    logical += 1;
                }
            },
            &mut |_| {},
        )?;
        let inode = self.inode(ino)?;
        total.files += 1;
        total.logical += logical * PAGE_SIZE as u64;
        total.stored += inode.blocks * PAGE_SIZE as u64;
        Ok(())
    }

    /// Files whose block count writeback changed from what `getattr` said
    /// while their data was dirty (compressed), since the last call.
    pub fn take_reshaped(&mut self) -> Vec<Ino> {
        let mut inos = std::mem::take(&mut self.store.reshaped);
        inos.sort_unstable();
        inos.dedup();
        inos
    }

    /// The report attribute's text for `ino`.
    pub(super) fn savings_report(&mut self, ino: Ino) -> Result<Vec<u8>> {
        let chain = self.compression(ino)?;
        Ok(self.savings(ino)?.to_text(&chain).into_bytes())
    }
}
