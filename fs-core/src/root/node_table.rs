//! The node address table (NAT): node id -> page address and checksum.
//!
//! Nodes never point at each other's pages, only at node ids, so moving a node
//! (a rewrite, or the cleaner) changes one NAT entry and nothing above it.
//! Free entries form a list threaded through the table, so allocation never
//! scans.

use crate::codec::{Reader, Writer};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{Nid, PageAddr};
use crate::layout::Geometry;
use crate::meta_table::{MetaTable, RawEntry, TableId, TableRoot, ENTRY_SIZE};

/// One past the largest node id a filesystem of `geo` can use. Every node
/// in use takes a page of the segment area when it is committed, and a
/// freed id is reused before a new one is taken, so the ids ever handed
/// out never outnumber those pages: the allocator refuses to pass this,
/// and a checkpoint whose watermark does is corrupt.
pub fn id_limit(geo: &Geometry) -> Nid {
    Nid(geo.segment_area_pages().saturating_add(Nid::FIRST_FREE.0))
}

/// Where a node is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatEntry {
    /// Page of the node.
    pub addr: PageAddr,
    /// CRC-32 of that page.
    pub crc: u32,
}

/// Encodes a used entry: address, then checksum.
pub fn encode_used(e: NatEntry) -> RawEntry {
    let mut raw = [0u8; ENTRY_SIZE];
    let mut w = Writer::new(&mut raw);
    w.addr(0, e.addr);
    w.u32(8, e.crc);
    raw
}

/// Encodes a free entry: address 0, then the next free node id (0 ends the list).
pub fn encode_free(next: Nid) -> RawEntry {
    let mut raw = [0u8; ENTRY_SIZE];
    Writer::new(&mut raw).u64(8, next.0);
    raw
}

/// Decodes an entry: `Ok(Used)` or `Ok(Free(next))`.
pub fn decode(raw: &RawEntry, nid: Nid) -> Result<Slot> {
    let r = Reader::new(raw, "node address table entry", PageAddr(nid.0));
    let addr = r.addr(0)?;
    if addr.is_none() {
        Ok(Slot::Free(Nid(r.u64(8)?)))
    } else {
        Ok(Slot::Used(NatEntry {
            addr,
            crc: r.u32(8)?,
        }))
    }
}

/// A decoded table slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The node is stored here.
    Used(NatEntry),
    /// Free; the next free node id (0 = end of list).
    Free(Nid),
}

/// The node address table with its free list.
#[derive(Debug)]
pub struct NodeTable {
    table: MetaTable,
    /// First free node id below the watermark (0 = none).
    pub free_head: Nid,
    /// Node ids at or above this were never used.
    pub watermark: Nid,
    /// Where the segments are: every node lies inside them.
    geo: Geometry,
    /// The watermark never passes this ([`id_limit`]).
    limit: Nid,
}

impl NodeTable {
    /// Opens the table at `root`, for a filesystem of `geo`.
    pub fn new(
        root: TableRoot,
        free_head: Nid,
        watermark: Nid,
        geo: &Geometry,
        cache_pages: usize,
    ) -> NodeTable {
        NodeTable {
            table: MetaTable::new(TableId::NodeAddress, root, cache_pages),
            free_head,
            watermark,
            geo: *geo,
            limit: id_limit(geo),
        }
    }

    /// The underlying table, for checkpoint writes and checkers.
    pub fn table(&mut self) -> &mut MetaTable {
        &mut self.table
    }

    /// Levels of the table above its leaves now.
    pub fn depth(&self) -> u8 {
        self.table.depth()
    }

    /// Where `nid` is stored, or `None` if it is free.
    pub fn lookup(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<Option<NatEntry>> {
        if nid.is_none() || nid >= self.watermark {
            return Ok(None);
        }
        match decode(&self.table.get(dev, nid.0)?, nid)? {
            Slot::Used(e) if !self.geo.contains(e.addr) => Err(Error::corrupt(
                format!("node {nid}"),
                e.addr,
                "the node address table puts it outside the segment area",
            )),
            Slot::Used(e) => Ok(Some(e)),
            Slot::Free(_) => Ok(None),
        }
    }

    /// Records that `nid` is now stored at `e`.
    pub fn set(&mut self, dev: &dyn BlockDevice, nid: Nid, e: NatEntry) -> Result<()> {
        self.table.set(dev, nid.0, &encode_used(e))
    }

    /// Takes a free node id.
    pub fn alloc(&mut self, dev: &dyn BlockDevice) -> Result<Nid> {
        if self.free_head.is_none() {
            return self.raise_watermark(dev);
        }
        let nid = self.free_head;
        match decode(&self.table.get(dev, nid.0)?, nid)? {
            Slot::Free(next) => {
                self.free_head = next;
                Ok(nid)
            }
            Slot::Used(_) => Err(Error::corrupt(
                "node address table",
                PageAddr::NONE,
                format!("free list names node {nid}, which is in use"),
            )),
        }
    }

    /// Takes the id at the watermark: ids are never more than pages, and
    /// an id never used has an all-zero entry (one that is not means the
    /// watermark is wrong, and handing the id out would overwrite a node).
    fn raise_watermark(&mut self, dev: &dyn BlockDevice) -> Result<Nid> {
        let nid = self.watermark;
        if nid >= self.limit {
            return Err(Error::NoSpace);
        }
        if self.table.get(dev, nid.0)? != [0; ENTRY_SIZE] {
            return Err(Error::corrupt(
                "node address table",
                PageAddr::NONE,
                format!("node id {nid}, at the watermark, is already in use or listed free"),
            ));
        }
        self.watermark = Nid(nid.0 + 1);
        Ok(nid)
    }

    /// Returns `nid` to the free list. Its old page is dead from now on.
    pub fn release(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<()> {
        self.table.set(dev, nid.0, &encode_free(self.free_head))?;
        self.free_head = nid;
        Ok(())
    }

    /// The root as last written.
    pub fn root(&self) -> TableRoot {
        self.table.root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    fn geo() -> Geometry {
        Geometry {
            pages_per_segment: 16,
            segment_count: 16,
            first_segment_page: 2,
        }
    }

    #[test]
    fn entry_codec() {
        let e = NatEntry {
            addr: PageAddr(77),
            crc: 0xABCD,
        };
        let raw = encode_used(e);
        assert_eq!(&raw[0..8], &77u64.to_le_bytes());
        assert_eq!(&raw[8..12], &0xABCDu32.to_le_bytes());
        assert_eq!(decode(&raw, Nid(1)).expect("decode"), Slot::Used(e));
        let raw = encode_free(Nid(9));
        assert_eq!(&raw[0..8], &[0u8; 8]);
        assert_eq!(decode(&raw, Nid(1)).expect("decode"), Slot::Free(Nid(9)));
    }

    #[test]
    fn alloc_reuses_released_ids_last_in_first_out() {
        let dev = MemDevice::new(16);
        let mut nat = NodeTable::new(TableRoot::default(), Nid::NONE, Nid::FIRST_FREE, &geo(), 16);
        let a = nat.alloc(&dev).expect("a");
        let b = nat.alloc(&dev).expect("b");
        assert_eq!((a, b), (Nid(2), Nid(3)));
        nat.set(
            &dev,
            a,
            NatEntry {
                addr: PageAddr(100),
                crc: 1,
            },
        )
        .expect("set");
        nat.set(
            &dev,
            b,
            NatEntry {
                addr: PageAddr(101),
                crc: 2,
            },
        )
        .expect("set");
        nat.release(&dev, a).expect("rel a");
        nat.release(&dev, b).expect("rel b");
        assert_eq!(nat.lookup(&dev, a).expect("lookup"), None);
        assert_eq!(nat.alloc(&dev).expect("c"), b);
        assert_eq!(nat.alloc(&dev).expect("d"), a);
        assert_eq!(nat.alloc(&dev).expect("e"), Nid(4));
    }

    #[test]
    fn ids_never_outnumber_the_pages_of_the_segment_area() {
        let dev = MemDevice::new(16);
        let limit = id_limit(&geo());
        assert_eq!(limit, Nid(16 * 16 + 2));
        let mut nat = NodeTable::new(
            TableRoot::default(),
            Nid::NONE,
            Nid(limit.0 - 1),
            &geo(),
            16,
        );
        assert_eq!(nat.alloc(&dev).expect("last id"), Nid(limit.0 - 1));
        assert!(matches!(nat.alloc(&dev), Err(Error::NoSpace)));
    }

    #[test]
    fn watermark_below_a_used_id_is_corruption_not_an_overwrite() {
        let dev = MemDevice::new(16);
        let mut nat = NodeTable::new(TableRoot::default(), Nid::NONE, Nid(10), &geo(), 16);
        let e = NatEntry {
            addr: PageAddr(9),
            crc: 0,
        };
        nat.set(&dev, Nid(10), e).expect("set");
        assert!(matches!(nat.alloc(&dev), Err(Error::Corrupt { .. })));
        assert_eq!(nat.watermark, Nid(10), "nothing handed out");
    }

    #[test]
    fn free_list_pointing_at_used_entry_is_corruption() {
        let dev = MemDevice::new(16);
        let mut nat = NodeTable::new(TableRoot::default(), Nid::NONE, Nid(10), &geo(), 16);
        nat.set(
            &dev,
            Nid(4),
            NatEntry {
                addr: PageAddr(9),
                crc: 0,
            },
        )
        .expect("set");
        nat.free_head = Nid(4);
        assert!(matches!(nat.alloc(&dev), Err(Error::Corrupt { .. })));
    }
}
