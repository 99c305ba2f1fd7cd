//! A block pointer: which unit holds one page of file data (its virtual
//! page number, resolved through the page address table), where in the
//! unit, and how to check it.
//!
//! A raw page is a unit of its own (`count` 0). A compressed cluster is
//! one unit that `count` consecutive pages of the file point at, page
//! `slot` of what undoing the unit's chain gives; the checksum is always
//! of the logical page, so it also catches a transform that lies.

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::Vpn;

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
    /// CRC-32 of the logical page, checked on every read.
    pub crc: u32,
    /// Which of the unit's logical pages this is (0 for a raw page).
    pub slot: u8,
    /// Logical pages the unit holds: 0 for a raw page (a unit of its own,
    /// stored as it is), 1 to 16 for a unit a chain made.
    pub count: u8,
    /// Pointer flags.
    pub flags: u16,
}

impl BlockPtr {
    /// A hole.
    pub const HOLE: BlockPtr = BlockPtr {
        vpn: Vpn(0),
        crc: 0,
        slot: 0,
        count: 0,
        flags: 0,
    };

    /// An allocated page that reads as zeros.
    pub const UNWRITTEN: BlockPtr = BlockPtr {
        vpn: Vpn(0),
        crc: 0,
        slot: 0,
        count: 0,
        flags: FLAG_UNWRITTEN,
    };

    /// A raw stored page.
    pub fn stored(vpn: Vpn, crc: u32) -> BlockPtr {
        BlockPtr {
            vpn,
            crc,
            slot: 0,
            count: 0,
            flags: 0,
        }
    }

    /// Page `slot` of the `count` pages unit `vpn` holds.
    pub fn packed(vpn: Vpn, crc: u32, slot: u8, count: u8) -> BlockPtr {
        BlockPtr {
            vpn,
            crc,
            slot,
            count,
            flags: 0,
        }
    }

    /// Shares its unit with other pages (a compressed cluster): the unit
    /// dies when the last pointer to it goes.
    pub fn is_packed(&self) -> bool {
        self.count != 0
    }

    /// The file page the unit's first logical page is, for this pointer
    /// at page `idx`.
    pub fn unit_base(&self, idx: u64) -> u64 {
        idx.saturating_sub(u64::from(self.slot))
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
        w.u8(off + 12, self.slot);
        w.u8(off + 13, self.count);
        w.u16(off + 14, self.flags);
    }

    /// Decodes at `off`.
    pub fn decode(r: &Reader<'_>, off: usize) -> Result<BlockPtr> {
        BlockPtr {
            vpn: Vpn(r.u64(off)?),
            crc: r.u32(off + 8)?,
            slot: r.u8(off + 12)?,
            count: r.u8(off + 13)?,
            flags: r.u16(off + 14)?,
        }
        .checked(r)
    }

    /// Refuses a unit number no table has (the page address table's
    /// entries hold 6-byte addresses; no volume has more units), and a
    /// slot outside its unit.
    fn checked(self, r: &Reader<'_>) -> Result<BlockPtr> {
        r.check(self.vpn.0 <= crate::page_table::MAX_ADDR, || {
            format!("block pointer to unit {}, past any table", self.vpn)
        })?;
        let max = crate::segment_summary::MAX_UNIT_PAGES as u8;
        let fits = match self.count {
            0 => self.slot == 0,
            n => n <= max && self.slot < n && !self.vpn.is_none(),
        };
        r.check(fits, || {
            format!(
                "block pointer to page {} of a unit of {} pages",
                self.slot, self.count
            )
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
        let [a0, a1, a2, a3, a4, a5, a6, a7, c0, c1, c2, c3, slot, count, f0, f1] = *s;
        BlockPtr {
            vpn: Vpn(u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7])),
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            slot,
            count,
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
            slot: 2,
            count: 3,
            flags: FLAG_UNWRITTEN,
        };
        let mut buf = [0u8; 32];
        p.encode(&mut Writer::new(&mut buf), 16);
        assert_eq!(&buf[16..24], &0x0102_0304u64.to_le_bytes());
        assert_eq!(&buf[24..28], &0xAABB_CCDDu32.to_le_bytes());
        assert_eq!(&buf[28..30], &[2, 3]);
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
        assert!(!BlockPtr::stored(Vpn(5), 1).is_packed());
        assert!(BlockPtr::packed(Vpn(5), 1, 2, 4).is_packed());
        assert_eq!(BlockPtr::packed(Vpn(5), 1, 2, 4).unit_base(10), 8);
    }

    #[test]
    fn a_slot_outside_its_unit_is_damage() {
        for (slot, count) in [(1, 0), (4, 4), (0, 17)] {
            let mut buf = [0u8; 16];
            BlockPtr::packed(Vpn(7), 0, slot, count).encode(&mut Writer::new(&mut buf), 0);
            let r = Reader::new(&buf, "test", crate::ids::PageAddr(0));
            assert!(BlockPtr::decode(&r, 0).is_err(), "slot {slot} of {count}");
        }
    }
}
