//! A record of the checkpoint list: one retained checkpoint of the live
//! root (a consistent past state a user can list, mount or keep as a
//! snapshot), or one read-write branch, 256 bytes, stored as sixteen entries of the checkpoint list
//! table.

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::{CheckpointNo, Nid, PageAddr, Vpn};
use crate::meta_table::TableRoot;

/// Bytes of one record.
pub const SIZE: usize = 256;
/// Table entries one record takes.
pub const ENTRIES: u64 = (SIZE / crate::meta_table::ENTRY_SIZE) as u64;
/// Longest snapshot name, in bytes.
pub const NAME_MAX: usize = 127;

/// Record flag: the checkpoint is a snapshot (kept until deleted).
pub const FLAG_SNAPSHOT: u8 = 1;
/// Record flag: the record is a read-write branch, not a checkpoint: `no`
/// is its origin (the retained checkpoint it started from, kept while the
/// branch lives), the root fields are the branch's state at the last
/// commit, `time_ns` is when it was made, and the deadlist fields are 0.
pub const FLAG_BRANCH: u8 = 2;

/// Byte offsets of the fields.
pub mod off {
    pub const NO: usize = 0;
    pub const TIME_NS: usize = 8;
    pub const NAT_ROOT: usize = 16;
    pub const FLAGS: usize = 29;
    pub const NAT_FREE_HEAD: usize = 32;
    pub const NAT_WATERMARK: usize = 40;
    pub const INODE_COUNT: usize = 48;
    pub const NEXT_GENERATION: usize = 56;
    pub const DEAD_HEAD: usize = 64;
    pub const DEAD_CRC: usize = 72;
    pub const DEAD_ENTRIES: usize = 80;
    pub const EXCLUSIVE: usize = 88;
    pub const RESERVED_PAGES: usize = 96;
    pub const DEAD_PAGES: usize = 104;
    pub const NAME_LEN: usize = 128;
    pub const NAME: usize = 129;
}

/// A retained checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The checkpoint (never 0: a zero record is a free slot).
    pub no: CheckpointNo,
    /// When it was taken (ns since the epoch).
    pub time_ns: i64,
    /// The root's node address table at that checkpoint (its root's name
    /// is a vpn).
    pub nat_root: TableRoot,
    /// [`FLAG_SNAPSHOT`].
    pub flags: u8,
    /// The root's free node id list then.
    pub nat_free_head: Nid,
    /// The root's node id watermark then.
    pub nat_watermark: Nid,
    /// Inodes in use then.
    pub inode_count: u64,
    /// Generation for the next inode then.
    pub next_generation: u64,
    /// First page of its deadlist: the units it holds that the next
    /// retained checkpoint does not (0: none).
    pub dead_head: Vpn,
    /// Checksum of that page.
    pub dead_crc: u32,
    /// Entries on the deadlist.
    pub dead_entries: u64,
    /// Of those, units born after the previous retained checkpoint: what
    /// deleting this one frees.
    pub exclusive: u64,
    /// Pages promised by fallocate then.
    pub reserved_pages: u64,
    /// Pages of the deadlist itself.
    pub dead_pages: u64,
    /// The snapshot's name (empty for a plain checkpoint).
    pub name: Vec<u8>,
}

impl Record {
    /// Is this a snapshot?
    pub fn is_snapshot(&self) -> bool {
        self.flags & FLAG_SNAPSHOT != 0
    }

    /// Is this a branch?
    pub fn is_branch(&self) -> bool {
        self.flags & FLAG_BRANCH != 0
    }

    /// The name, for messages.
    pub fn shown_name(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// Encodes the record.
    pub fn encode(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        let mut w = Writer::new(&mut b);
        w.u64(off::NO, self.no.0);
        w.i64(off::TIME_NS, self.time_ns);
        self.nat_root.encode(&mut w, off::NAT_ROOT);
        w.u8(off::FLAGS, self.flags);
        w.u64(off::NAT_FREE_HEAD, self.nat_free_head.0);
        w.u64(off::NAT_WATERMARK, self.nat_watermark.0);
        w.u64(off::INODE_COUNT, self.inode_count);
        w.u64(off::NEXT_GENERATION, self.next_generation);
        w.u64(off::DEAD_HEAD, self.dead_head.0);
        w.u32(off::DEAD_CRC, self.dead_crc);
        w.u64(off::DEAD_ENTRIES, self.dead_entries);
        w.u64(off::EXCLUSIVE, self.exclusive);
        w.u64(off::RESERVED_PAGES, self.reserved_pages);
        w.u64(off::DEAD_PAGES, self.dead_pages);
        let name = &self.name[..self.name.len().min(NAME_MAX)];
        w.u8(off::NAME_LEN, name.len() as u8);
        w.bytes(off::NAME, name);
        b
    }

    /// Decodes a record read from slot `slot` (for messages); `None` for
    /// a free slot.
    pub fn decode(b: &[u8], slot: u64) -> Result<Option<Record>> {
        let r = Reader::new(b, "checkpoint list record", PageAddr(slot));
        let no = CheckpointNo(r.u64(off::NO)?);
        if no.0 == 0 {
            return Ok(None);
        }
        let name_len = usize::from(r.u8(off::NAME_LEN)?);
        r.check(name_len <= NAME_MAX, || format!("name of {name_len} bytes"))?;
        let nat_root = TableRoot::decode(&r, off::NAT_ROOT)?;
        Ok(Some(Record {
            no,
            time_ns: r.i64(off::TIME_NS)?,
            nat_root,
            flags: r.u8(off::FLAGS)?,
            nat_free_head: Nid(r.u64(off::NAT_FREE_HEAD)?),
            nat_watermark: Nid(r.u64(off::NAT_WATERMARK)?),
            inode_count: r.u64(off::INODE_COUNT)?,
            next_generation: r.u64(off::NEXT_GENERATION)?,
            dead_head: Vpn(r.u64(off::DEAD_HEAD)?),
            dead_crc: r.u32(off::DEAD_CRC)?,
            dead_entries: r.u64(off::DEAD_ENTRIES)?,
            exclusive: r.u64(off::EXCLUSIVE)?,
            reserved_pages: r.u64(off::RESERVED_PAGES)?,
            dead_pages: r.u64(off::DEAD_PAGES)?,
            name: r.bytes(off::NAME, name_len)?.to_vec(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_free_slot() {
        let rec = Record {
            no: CheckpointNo(77),
            time_ns: -5,
            nat_root: TableRoot {
                addr: PageAddr(12),
                crc: 0xAB,
                depth: 1,
            },
            flags: FLAG_SNAPSHOT,
            nat_free_head: Nid(3),
            nat_watermark: Nid(90),
            inode_count: 40,
            next_generation: 41,
            dead_head: Vpn(500),
            dead_crc: 0xCD,
            dead_entries: 600,
            exclusive: 10,
            reserved_pages: 2,
            dead_pages: 3,
            name: b"before-upgrade".to_vec(),
        };
        let b = rec.encode();
        assert_eq!(&b[0..8], &77u64.to_le_bytes());
        assert_eq!(&b[64..72], &500u64.to_le_bytes());
        assert_eq!(b[128], 14);
        assert_eq!(Record::decode(&b, 0).expect("decode"), Some(rec));
        assert_eq!(Record::decode(&[0u8; SIZE], 0).expect("free"), None);
        let mut bad = b;
        bad[128] = 200;
        assert!(Record::decode(&bad, 0).is_err());
    }
}
