//! A block pointer: where one page of file data is stored and how to check it.

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::{PageAddr, TransformId};

/// Bytes of one encoded pointer.
pub const SIZE: usize = 16;

/// Pointer flag: the page is allocated (fallocate) but never written; it
/// reads as zeros and has no address.
pub const FLAG_UNWRITTEN: u16 = 1;

/// Where one logical page of a file lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockPtr {
    /// Page address; 0 for a hole or an unwritten page.
    pub addr: PageAddr,
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
        addr: PageAddr(0),
        crc: 0,
        transform: TransformId(0),
        flags: 0,
    };

    /// An allocated page that reads as zeros.
    pub const UNWRITTEN: BlockPtr = BlockPtr {
        addr: PageAddr(0),
        crc: 0,
        transform: TransformId(0),
        flags: FLAG_UNWRITTEN,
    };

    /// A raw stored page.
    pub fn stored(addr: PageAddr, crc: u32) -> BlockPtr {
        BlockPtr {
            addr,
            crc,
            transform: TransformId(0),
            flags: 0,
        }
    }

    /// Neither stored nor allocated.
    pub fn is_hole(&self) -> bool {
        self.addr.is_none() && self.flags & FLAG_UNWRITTEN == 0
    }

    /// Allocated but never written.
    pub fn is_unwritten(&self) -> bool {
        self.addr.is_none() && self.flags & FLAG_UNWRITTEN != 0
    }

    /// Has a stored page.
    pub fn is_stored(&self) -> bool {
        !self.addr.is_none()
    }

    /// Counts toward the file's allocated pages.
    pub fn is_allocated(&self) -> bool {
        !self.is_hole()
    }

    /// Encodes at `off`.
    pub fn encode(&self, w: &mut Writer<'_>, off: usize) {
        w.addr(off, self.addr);
        w.u32(off + 8, self.crc);
        w.u16(off + 12, self.transform.0);
        w.u16(off + 14, self.flags);
    }

    /// Decodes at `off`.
    pub fn decode(r: &Reader<'_>, off: usize) -> Result<BlockPtr> {
        BlockPtr {
            addr: r.addr(off)?,
            crc: r.u32(off + 8)?,
            transform: TransformId(r.u16(off + 12)?),
            flags: r.u16(off + 14)?,
        }
        .checked(r)
    }

    /// Refuses an address no device has (readers add run lengths to it).
    fn checked(self, r: &Reader<'_>) -> Result<BlockPtr> {
        r.check(self.addr <= PageAddr::MAX, || {
            format!("block pointer to page {}, past any device", self.addr)
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
            addr: PageAddr(u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7])),
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
            addr: PageAddr(0x0102_0304),
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
        let r = Reader::new(&buf, "test", PageAddr(0));
        assert_eq!(BlockPtr::decode(&r, 16).expect("decode"), p);
    }

    #[test]
    fn states() {
        assert!(BlockPtr::HOLE.is_hole());
        assert!(!BlockPtr::HOLE.is_allocated());
        assert!(BlockPtr::UNWRITTEN.is_unwritten());
        assert!(BlockPtr::UNWRITTEN.is_allocated());
        assert!(BlockPtr::stored(PageAddr(5), 1).is_stored());
    }
}
