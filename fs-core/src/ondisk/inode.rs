//! The inode: attributes, and either the first block pointers of the file
//! map, the root of a directory index, or an inline symbolic link target.
//! An inode is a 252-byte record; sixteen of them share one node page (see
//! [`crate::inode_pack`]), so a check of 100,000 files reads about 25 MB of
//! inodes rather than 400 MB.

use smallvec::SmallVec;

use crate::block_ptr::{self, BlockPtr};
use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::{Ino, Nid, TransformId};

/// Bytes of one encoded inode.
pub const SIZE: usize = 252;

/// Byte offsets of the inode fields, from the start of the inode record.
pub mod off {
    pub const MODE: usize = 0;
    pub const UID: usize = 4;
    pub const GID: usize = 8;
    pub const NLINK: usize = 12;
    pub const SIZE: usize = 16;
    pub const BLOCKS: usize = 24;
    pub const ATIME: usize = 32;
    pub const MTIME: usize = 44;
    pub const CTIME: usize = 56;
    pub const BTIME: usize = 68;
    pub const GENERATION: usize = 80;
    pub const FLAGS: usize = 88;
    pub const PROJECT: usize = 92;
    pub const RDEV: usize = 96;
    pub const XATTR_NID: usize = 104;
    pub const PARENT: usize = 112;
    pub const TRANSFORM: usize = 120;
    pub const INLINE_LEN: usize = 122;
    pub const RESERVED: usize = 124;
    /// Start of the data area: block pointers and map node ids (files and
    /// long symbolic links), index root and entry count (directories), or
    /// inline bytes (short symbolic links).
    pub const DATA: usize = 128;
    /// The map node ids, after the block pointers.
    pub const MAP_NIDS: usize = DATA + super::INLINE_PTRS * super::block_ptr::SIZE;
    /// Reserved tail of the data area of a file.
    pub const MAP_END: usize = MAP_NIDS + super::MAP_NIDS * 8;
    /// Directory: root of the index.
    pub const DIR_ROOT: usize = DATA;
    /// Directory: number of entries.
    pub const DIR_ENTRIES: usize = DATA + 8;
}

/// Block pointers held in the inode itself (files up to 20 KiB need no
/// map node).
pub const INLINE_PTRS: usize = 5;
/// Map node ids held in the inode: direct, indirect, double, triple.
pub const MAP_NIDS: usize = 4;
/// Bytes of inline data (a symbolic link target).
pub const INLINE_MAX: usize = SIZE - off::DATA;

/// Inode flag: the data area holds inline bytes, not a file map.
pub const FLAG_INLINE: u32 = 1;
/// Flag: a directory whose project id new inodes in it take, with the
/// flag itself for new directories (`chattr +P`). (Bit 1, value 2, is the
/// filesystem's orphan flag.)
pub const FLAG_PROJINHERIT: u32 = 4;

/// File type bits of `mode` (as Linux `S_IFMT`).
pub const S_IFMT: u32 = 0o170000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Named pipe.
pub const S_IFIFO: u32 = 0o010000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
/// Block device.
pub const S_IFBLK: u32 = 0o060000;

/// A time with nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds, below one billion.
    pub nsec: u32,
}

impl Timespec {
    /// The current time.
    pub fn now() -> Timespec {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timespec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(&self) -> i64 {
        self.sec
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(self.nsec))
    }

    fn encode(&self, w: &mut Writer<'_>, off: usize) {
        w.i64(off, self.sec);
        w.u32(off + 8, self.nsec);
    }

    fn decode(r: &Reader<'_>, off: usize) -> Result<Timespec> {
        let t = Timespec {
            sec: r.i64(off)?,
            nsec: r.u32(off + 8)?,
        };
        r.check(t.nsec < 1_000_000_000, || {
            format!("nanoseconds {} out of range", t.nsec)
        })?;
        Ok(t)
    }
}

/// The pointers an inode holds itself: a fixed few, so kept without an
/// allocation of their own (a check decodes every inode).
pub type InlinePtrs = SmallVec<[BlockPtr; INLINE_PTRS]>;

/// An inode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inode {
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links (for a directory: 2 + subdirectories).
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// Data pages stored or reserved for this inode.
    pub blocks: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last change of contents.
    pub mtime: Timespec,
    /// Last change of the inode.
    pub ctime: Timespec,
    /// Creation.
    pub btime: Timespec,
    /// Distinguishes successive inodes with the same number.
    pub generation: u64,
    /// Inode flags.
    pub flags: u32,
    /// Project id (for project quotas).
    pub project: u32,
    /// Device number of a device node.
    pub rdev: u64,
    /// Node holding the extended attributes (0: none).
    pub xattr_nid: Nid,
    /// Parent directory (directories only: the target of `..`).
    pub parent: Ino,
    /// Transform chain for new data of this file (0: the filesystem default).
    pub transform: TransformId,
    /// Root of the directory index (directories only; 0: empty).
    pub dir_root: Nid,
    /// Entries in the directory (directories only).
    pub dir_entries: u64,
    /// The first block pointers (trailing holes trimmed), held inline.
    pub ptrs: InlinePtrs,
    /// Map node ids: direct, indirect, double, triple.
    pub map_nids: [Nid; MAP_NIDS],
    /// Inline bytes (with [`FLAG_INLINE`]).
    pub inline: Vec<u8>,
}

impl Inode {
    /// The file type bits.
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
    /// A directory?
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    /// A regular file?
    pub fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }
    /// A symbolic link?
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    /// Does the data area hold inline bytes?
    pub fn has_inline(&self) -> bool {
        self.flags & FLAG_INLINE != 0
    }

    /// Encodes the inode into its record (`w` covers [`SIZE`] bytes).
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u32(off::MODE, self.mode);
        w.u32(off::UID, self.uid);
        w.u32(off::GID, self.gid);
        w.u32(off::NLINK, self.nlink);
        w.u64(off::SIZE, self.size);
        w.u64(off::BLOCKS, self.blocks);
        self.atime.encode(w, off::ATIME);
        self.mtime.encode(w, off::MTIME);
        self.ctime.encode(w, off::CTIME);
        self.btime.encode(w, off::BTIME);
        w.u64(off::GENERATION, self.generation);
        w.u32(off::FLAGS, self.flags);
        w.u32(off::PROJECT, self.project);
        w.u64(off::RDEV, self.rdev);
        w.u64(off::XATTR_NID, self.xattr_nid.0);
        w.u64(off::PARENT, self.parent.0);
        w.u16(off::TRANSFORM, self.transform.0);
        if self.is_dir() {
            w.u64(off::DIR_ROOT, self.dir_root.0);
            w.u64(off::DIR_ENTRIES, self.dir_entries);
        } else if self.has_inline() {
            let n = self.inline.len().min(INLINE_MAX);
            w.u16(off::INLINE_LEN, n as u16);
            w.bytes(off::DATA, &self.inline[..n]);
        } else {
            for (i, p) in self.ptrs.iter().take(INLINE_PTRS).enumerate() {
                p.encode(w, off::DATA + i * block_ptr::SIZE);
            }
            for (i, nid) in self.map_nids.iter().enumerate() {
                w.u64(off::MAP_NIDS + i * 8, nid.0);
            }
        }
    }

    /// Decodes an inode record (`r` covers [`SIZE`] bytes).
    pub fn decode(r: &Reader<'_>) -> Result<Inode> {
        let flags = r.u32(off::FLAGS)?;
        let mut inode = Inode {
            mode: r.u32(off::MODE)?,
            uid: r.u32(off::UID)?,
            gid: r.u32(off::GID)?,
            nlink: r.u32(off::NLINK)?,
            size: r.u64(off::SIZE)?,
            blocks: r.u64(off::BLOCKS)?,
            atime: Timespec::decode(r, off::ATIME)?,
            mtime: Timespec::decode(r, off::MTIME)?,
            ctime: Timespec::decode(r, off::CTIME)?,
            btime: Timespec::decode(r, off::BTIME)?,
            generation: r.u64(off::GENERATION)?,
            flags,
            project: r.u32(off::PROJECT)?,
            rdev: r.u64(off::RDEV)?,
            xattr_nid: Nid(r.u64(off::XATTR_NID)?),
            parent: Ino(r.u64(off::PARENT)?),
            transform: TransformId(r.u16(off::TRANSFORM)?),
            ..Inode::default()
        };
        let ft = inode.file_type();
        r.check(
            matches!(
                ft,
                S_IFDIR | S_IFREG | S_IFLNK | S_IFIFO | S_IFSOCK | S_IFCHR | S_IFBLK
            ),
            || format!("unknown file type {ft:o}"),
        )?;
        r.check(inode.size < (1u64 << 63), || {
            format!("size {} out of range", inode.size)
        })?;
        // No file holds more pages than its map reaches (a directory's
        // index, counted here too, holds far fewer): a bound that makes
        // every later count and multiple of it safe.
        r.check(inode.blocks <= crate::file_map::max_pages(), || {
            format!("blocks {} is more than a file map reaches", inode.blocks)
        })?;
        if inode.is_dir() {
            inode.dir_root = Nid(r.u64(off::DIR_ROOT)?);
            inode.dir_entries = r.u64(off::DIR_ENTRIES)?;
            r.check(inode.dir_entries <= crate::checkpoint::MAX_COUNTER, || {
                format!("dir_entries {} out of range", inode.dir_entries)
            })?;
        } else if inode.has_inline() {
            let n = usize::from(r.u16(off::INLINE_LEN)?);
            r.check(n <= INLINE_MAX, || {
                format!("inline length {n} over {INLINE_MAX}")
            })?;
            inode.inline = r.bytes(off::DATA, n)?.to_vec();
        } else {
            inode.ptrs = block_ptr::decode_array(r, off::DATA, INLINE_PTRS)?;
            for (i, nid) in inode.map_nids.iter_mut().enumerate() {
                *nid = Nid(r.u64(off::MAP_NIDS + i * 8)?);
            }
        }
        Ok(inode)
    }
}

const _: () = assert!(off::MAP_END <= SIZE);
const _: () = assert!(off::DIR_ENTRIES + 8 <= SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PageAddr;

    fn sample() -> Inode {
        Inode {
            mode: S_IFREG | 0o644,
            uid: 1000,
            gid: 100,
            nlink: 1,
            size: 12345,
            blocks: 4,
            atime: Timespec { sec: 1, nsec: 2 },
            mtime: Timespec { sec: 3, nsec: 4 },
            ctime: Timespec { sec: 5, nsec: 6 },
            btime: Timespec { sec: 7, nsec: 8 },
            generation: 99,
            project: 3,
            xattr_nid: Nid(50),
            ptrs: smallvec::smallvec![
                BlockPtr::stored(crate::ids::Vpn(600), 1),
                BlockPtr::HOLE,
                BlockPtr::UNWRITTEN,
            ],
            map_nids: [Nid(10), Nid(0), Nid(0), Nid(11)],
            ..Inode::default()
        }
    }

    fn encode(inode: &Inode) -> [u8; SIZE] {
        let mut buf = [0u8; SIZE];
        inode.encode(&mut Writer::new(&mut buf));
        buf
    }

    fn decode(buf: &[u8]) -> Result<Inode> {
        Inode::decode(&Reader::new(buf, "inode", PageAddr(1)))
    }

    #[test]
    fn round_trip_file_directory_and_symlink() {
        let file = sample();
        assert_eq!(decode(&encode(&file)).expect("decode"), file);
        let link = Inode {
            mode: S_IFLNK | 0o777,
            flags: FLAG_INLINE,
            inline: vec![b'x'; INLINE_MAX],
            size: INLINE_MAX as u64,
            ..Inode::default()
        };
        assert_eq!(decode(&encode(&link)).expect("decode"), link);
        let dir = Inode {
            mode: S_IFDIR | 0o755,
            nlink: 2,
            parent: Ino(7),
            dir_root: Nid(9),
            dir_entries: 3,
            ..Inode::default()
        };
        assert_eq!(decode(&encode(&dir)).expect("decode"), dir);
    }

    #[test]
    fn golden_offsets() {
        let rec = encode(&sample());
        assert_eq!(&rec[0..4], &(S_IFREG | 0o644).to_le_bytes());
        assert_eq!(&rec[4..8], &1000u32.to_le_bytes());
        assert_eq!(&rec[16..24], &12345u64.to_le_bytes());
        assert_eq!(&rec[32..40], &1i64.to_le_bytes());
        assert_eq!(&rec[40..44], &2u32.to_le_bytes());
        assert_eq!(&rec[80..88], &99u64.to_le_bytes());
        assert_eq!(&rec[92..96], &3u32.to_le_bytes());
        assert_eq!(&rec[104..112], &50u64.to_le_bytes());
        assert_eq!(&rec[128..136], &600u64.to_le_bytes());
        assert_eq!(&rec[208..216], &10u64.to_le_bytes());
        assert_eq!(&rec[232..240], &11u64.to_le_bytes());
        assert_eq!(&rec[240..252], &[0u8; 12]);
    }

    #[test]
    fn bad_fields_are_rejected() {
        let rec = encode(&sample());
        let mut bad = rec;
        bad[0..4].copy_from_slice(&0o777u32.to_le_bytes()); // no file type
        assert!(decode(&bad).is_err());
        let mut bad = rec;
        bad[40..44].copy_from_slice(&2_000_000_000u32.to_le_bytes());
        assert!(decode(&bad).is_err());
        let mut bad = rec;
        bad[88] = FLAG_INLINE as u8;
        bad[122..124].copy_from_slice(&200u16.to_le_bytes());
        assert!(decode(&bad).is_err());
    }
}
