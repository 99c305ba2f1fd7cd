//! A block pointer: which unit holds one page of file data (its virtual
//! page number, resolved through the page address table) and how to check it.

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::{TransformId, Vpn};

/// Bytes of one encoded pointer.
pub const SIZE: usize = 16;

/// Pointer flag: the page is allocated (fallocate) but never written; it
/// reads as zeros and has no address.
pub const FLAG_UNWRITTEN: u16 = 1;

/// Where one logical page of a file lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockPtr {
    /// The unit holding the page; 0 for a hole or an unwritten page.
    pub vpn: Vpn,
    /// CRC-32 of the stored page, checked on every read.
    pub crc: u32,
    /// Transform chain of the stored bytes (0 = raw).
    pub transform: TransformId,
    /// Pointer flags.
    pub flags: u16,
}

impl BlockPtr {
    /// A hole.
    pub const HOLE: BlockPtr = BlockPtr {
        vpn: Vpn(0),
        crc: 0,
        transform: TransformId(0),
        flags: 0,
    };

    /// An allocated page that reads as zeros.
    pub const UNWRITTEN: BlockPtr = BlockPtr {
        vpn: Vpn(0),
        crc: 0,
        transform: TransformId(0),
        flags: FLAG_UNWRITTEN,
    };

    /// A raw stored page.
    pub fn stored(vpn: Vpn, crc: u32) -> BlockPtr {
        BlockPtr {
            vpn,
            crc,
            transform: TransformId(0),
            flags: 0,
        }
    }

    /// Neither stored nor allocated.
    pub fn is_hole(&self) -> bool {
        self.vpn.is_none() && self.flags & FLAG_UNWRITTEN == 0
    }

    /// Allocated but never written.
    pub fn is_unwritten(&self) -> bool {
        self.vpn.is_none() && self.flags & FLAG_UNWRITTEN != 0
    }

    /// Has a stored page.
    pub fn is_stored(&self) -> bool {
        !self.vpn.is_none()
    }

    /// Counts toward the file's allocated pages.
    pub fn is_allocated(&self) -> bool {
        !self.is_hole()
    }

    /// Encodes at `off`.
    pub fn encode(&self, w: &mut Writer<'_>, off: usize) {
        w.u64(off, self.vpn.0);
        w.u32(off + 8, self.crc);
        w.u16(off + 12, self.transform.0);
        w.u16(off + 14, self.flags);
    }

    /// Decodes at `off`.
    pub fn decode(r: &Reader<'_>, off: usize) -> Result<BlockPtr> {
        BlockPtr {
            vpn: Vpn(r.u64(off)?),
            crc: r.u32(off + 8)?,
            transform: TransformId(r.u16(off + 12)?),
            flags: r.u16(off + 14)?,
        }
        .checked(r)
    }

    /// Refuses a unit number no table has (the page address table's
    /// entries hold 6-byte addresses; no volume has more units).
    fn checked(self, r: &Reader<'_>) -> Result<BlockPtr> {
        r.check(self.vpn.0 <= crate::page_table::MAX_ADDR, || {
            format!("block pointer to unit {}, past any table", self.vpn)
        })?;
        Ok(self)
    }
}

/// Decodes the `count` pointers stored from `off`, trailing holes trimmed,
/// into any collection (a `Vec` for a map node, the inline array of an
/// inode). This is the hot loop of reading nodes: whole 16-byte slots are
/// compared as integers to find the last one in use, and only those are
/// decoded, straight from their bytes.
pub fn decode_array<C: FromIterator<BlockPtr>>(
    r: &Reader<'_>,
    off: usize,
    count: usize,
) -> Result<C> {
    let area = r.bytes(off, count * SIZE)?;
    let (slots, _) = area.as_chunks::<SIZE>();
    let used = slots
        .iter()
        .map(BlockPtr::from_slot)
        .rposition(|p| !p.is_hole())
        .map_or(0, |p| p + 1);
    slots[..used]
        .iter()
        .map(|s| BlockPtr::from_slot(s).checked(r))
        .collect()
}

impl BlockPtr {
    /// Decodes one 16-byte slot (the layout of [`BlockPtr::encode`]).
    fn from_slot(s: &[u8; SIZE]) -> BlockPtr {
        let [a0, a1, a2, a3, a4, a5, a6, a7, c0, c1, c2, c3, t0, t1, f0, f1] = *s;
        BlockPtr {
            vpn: Vpn(u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7])),
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            transform: TransformId(u16::from_le_bytes([t0, t1])),
            flags: u16::from_le_bytes([f0, f1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_golden() {
        let p = BlockPtr {
            vpn: Vpn(0x0102_0304),
            crc: 0xAABB_CCDD,
            transform: TransformId(3),
            flags: FLAG_UNWRITTEN,
        };
        let mut buf = [0u8; 32];
        p.encode(&mut Writer::new(&mut buf), 16);
        assert_eq!(&buf[16..24], &0x0102_0304u64.to_le_bytes());
        assert_eq!(&buf[24..28], &0xAABB_CCDDu32.to_le_bytes());
        assert_eq!(&buf[28..30], &3u16.to_le_bytes());
        assert_eq!(&buf[30..32], &1u16.to_le_bytes());
        let r = Reader::new(&buf, "test", crate::ids::PageAddr(0));
        assert_eq!(BlockPtr::decode(&r, 16).expect("decode"), p);
    }

    #[test]
    fn states() {
        assert!(BlockPtr::HOLE.is_hole());
        assert!(!BlockPtr::HOLE.is_allocated());
        assert!(BlockPtr::UNWRITTEN.is_unwritten());
        assert!(BlockPtr::UNWRITTEN.is_allocated());
        assert!(BlockPtr::stored(Vpn(5), 1).is_stored());
    }
}
