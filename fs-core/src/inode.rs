//! The inode node: attributes, and either the first block pointers of the
//! file map or an inline symbolic link target.

use crate::block_ptr::{self, BlockPtr};
use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::{Nid, TransformId};
use crate::layout::PAGE_SIZE;
use crate::node::HEADER_SIZE;

/// Byte offsets of the inode fields, from the start of the node page.
pub mod off {
    pub const MODE: usize = 32;
    pub const UID: usize = 36;
    pub const GID: usize = 40;
    pub const NLINK: usize = 44;
    pub const SIZE: usize = 48;
    pub const BLOCKS: usize = 56;
    pub const ATIME: usize = 64;
    pub const MTIME: usize = 76;
    pub const CTIME: usize = 88;
    pub const BTIME: usize = 100;
    pub const GENERATION: usize = 112;
    pub const FLAGS: usize = 120;
    pub const PROJECT: usize = 124;
    pub const RDEV: usize = 128;
    pub const XATTR_NID: usize = 136;
    pub const PARENT: usize = 144;
    pub const TRANSFORM: usize = 152;
    pub const INLINE_LEN: usize = 154;
    pub const DIR_ROOT: usize = 160;
    pub const DIR_ENTRIES: usize = 168;
    /// Start of the data area: block pointers, or inline bytes.
    pub const DATA: usize = 224;
    /// The six map node ids at the end of the data area.
    pub const MAP_NIDS: usize = DATA + super::INLINE_PTRS * super::block_ptr::SIZE;
}

/// Block pointers held in the inode itself.
pub const INLINE_PTRS: usize = 239;
/// Map node ids held in the inode: 2 direct, 2 indirect, 1 double, 1 triple.
pub const MAP_NIDS: usize = 6;
/// Bytes of inline data (a symbolic link target).
pub const INLINE_MAX: usize = PAGE_SIZE - off::DATA;

/// Inode flag: the data area holds inline bytes, not a file map.
pub const FLAG_INLINE: u32 = 1;

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
    pub parent: Nid,
    /// Transform chain for new data of this file (0: the filesystem default).
    pub transform: TransformId,
    /// Root of the directory index (directories only; 0: empty).
    pub dir_root: Nid,
    /// Entries in the directory (directories only).
    pub dir_entries: u64,
    /// The first block pointers (trailing holes trimmed).
    pub ptrs: Vec<BlockPtr>,
    /// Map node ids: direct, direct, indirect, indirect, double, triple.
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

    /// Encodes the fields after the node header.
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
        w.u64(off::DIR_ROOT, self.dir_root.0);
        w.u64(off::DIR_ENTRIES, self.dir_entries);
        if self.has_inline() {
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

    /// Decodes the fields after the node header.
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
            parent: Nid(r.u64(off::PARENT)?),
            transform: TransformId(r.u16(off::TRANSFORM)?),
            dir_root: Nid(r.u64(off::DIR_ROOT)?),
            dir_entries: r.u64(off::DIR_ENTRIES)?,
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
        if inode.has_inline() {
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

const _: () = assert!(off::MAP_NIDS + MAP_NIDS * 8 == PAGE_SIZE);
const _: () = assert!(off::MODE == HEADER_SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CheckpointNo, PageAddr};
    use crate::node::{Node, NodeBody};

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
            ptrs: vec![
                BlockPtr::stored(PageAddr(600), 1),
                BlockPtr::HOLE,
                BlockPtr::UNWRITTEN,
            ],
            map_nids: [Nid(10), Nid(0), Nid(0), Nid(0), Nid(0), Nid(11)],
            ..Inode::default()
        }
    }

    fn wrap(inode: Inode) -> Node {
        Node {
            nid: Nid(5),
            ino: Nid(5),
            level: 0,
            body: NodeBody::Inode(Box::new(inode)),
        }
    }

    #[test]
    fn round_trip_file_and_symlink() {
        let node = wrap(sample());
        let page = node.encode(CheckpointNo(1));
        assert_eq!(
            Node::decode(&page[..], PageAddr(1), Nid(5)).expect("decode"),
            node
        );
        let link = Inode {
            mode: S_IFLNK | 0o777,
            flags: FLAG_INLINE,
            inline: b"/some/target".to_vec(),
            size: 12,
            ..Inode::default()
        };
        let node = wrap(link);
        let page = node.encode(CheckpointNo(1));
        assert_eq!(
            Node::decode(&page[..], PageAddr(1), Nid(5)).expect("decode"),
            node
        );
    }

    #[test]
    fn golden_offsets() {
        let page = wrap(sample()).encode(CheckpointNo(1));
        assert_eq!(&page[32..36], &(S_IFREG | 0o644).to_le_bytes());
        assert_eq!(&page[36..40], &1000u32.to_le_bytes());
        assert_eq!(&page[48..56], &12345u64.to_le_bytes());
        assert_eq!(&page[64..72], &1i64.to_le_bytes());
        assert_eq!(&page[72..76], &2u32.to_le_bytes());
        assert_eq!(&page[112..120], &99u64.to_le_bytes());
        assert_eq!(&page[124..128], &3u32.to_le_bytes());
        assert_eq!(&page[136..144], &50u64.to_le_bytes());
        assert_eq!(&page[224..232], &600u64.to_le_bytes());
        assert_eq!(&page[4048..4056], &10u64.to_le_bytes());
        assert_eq!(&page[4088..4096], &11u64.to_le_bytes());
    }

    #[test]
    fn bad_fields_are_rejected() {
        let page = wrap(sample()).encode(CheckpointNo(1));
        let mut bad = page.clone();
        bad[32..36].copy_from_slice(&0o777u32.to_le_bytes()); // no file type
        assert!(Node::decode(&bad[..], PageAddr(1), Nid(5)).is_err());
        let mut bad = page.clone();
        bad[72..76].copy_from_slice(&2_000_000_000u32.to_le_bytes());
        assert!(Node::decode(&bad[..], PageAddr(1), Nid(5)).is_err());
        let mut bad = page.clone();
        bad[120] = FLAG_INLINE as u8;
        bad[154..156].copy_from_slice(&5000u16.to_le_bytes());
        assert!(Node::decode(&bad[..], PageAddr(1), Nid(5)).is_err());
    }
}
