//! The node address table (NAT): node id -> the unit (vpn) holding the
//! node, and its checksum. One per root.
//!
//! Nodes never point at each other's pages, only at node ids, so
//! rewriting a node changes one NAT entry and nothing above it. The
//! table's own pages are named by vpns too, so a retained checkpoint's
//! table stays readable wherever the cleaner moves its pages.

use std::sync::Arc;

use crate::codec::{Reader, Writer};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::id_table::{IdState, IdTable};
use crate::ids::{Nid, PageAddr, Vpn};
use crate::layout::Geometry;
use crate::meta_table::{MetaTable, RawEntry, TableId, TableRoot};
use crate::page_table::PageTable;

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
    /// The unit holding the node.
    pub vpn: Vpn,
    /// CRC-32 of that page.
    pub crc: u32,
}

/// Encodes a used entry: vpn, then checksum.
pub fn encode_used(e: NatEntry) -> RawEntry {
    let mut raw = crate::meta_table::ZERO_ENTRY;
    let mut w = Writer::new(&mut raw);
    w.u64(0, e.vpn.0);
    w.u32(8, e.crc);
    raw
}

/// Encodes a free entry: vpn 0, then the next free node id (0 ends the list).
pub fn encode_free(next: Nid) -> RawEntry {
    crate::id_table::encode_free(next.0)
}

/// Decodes an entry: `Ok(Used)` or `Ok(Free(next))`.
pub fn decode(raw: &RawEntry, nid: Nid) -> Result<Slot> {
    let r = Reader::new(raw, "node address table entry", PageAddr(nid.0));
    let vpn = Vpn(r.u64(0)?);
    if vpn.is_none() {
        Ok(Slot::Free(Nid(r.u64(8)?)))
    } else {
        Ok(Slot::Used(NatEntry {
            vpn,
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
    ids: IdTable,
    /// Where its units are.
    pat: Arc<PageTable>,
}

impl NodeTable {
    /// Opens the table at `root`, for a filesystem of `geo`, its pages
    /// found through `pat`.
    pub fn new(
        root: TableRoot,
        free_head: Nid,
        watermark: Nid,
        geo: &Geometry,
        cache_pages: usize,
        pat: Arc<PageTable>,
    ) -> NodeTable {
        let sealed = pat.sealer().is_some();
        let table =
            MetaTable::new_virtual(TableId::NodeAddress, root, cache_pages, pat.clone(), sealed);
        let state = IdState {
            root,
            free_head: free_head.0,
            watermark: watermark.0,
        };
        NodeTable {
            ids: IdTable::new(table, "node address table", state, id_limit(geo).0),
            pat,
        }
    }

    /// The underlying table, for checkpoint writes and checkers.
    pub fn table(&mut self) -> &mut MetaTable {
        self.ids.table()
    }

    /// Levels of the table above its leaves now.
    pub fn depth(&self) -> u8 {
        self.ids.table_ref().depth()
    }

    /// First free node id below the watermark (0 = none).
    pub fn free_head(&self) -> Nid {
        Nid(self.ids.free_head)
    }

    /// Node ids at or above this were never used.
    pub fn watermark(&self) -> Nid {
        Nid(self.ids.watermark)
    }

    /// Sets the free list's head and the watermark (recovery, from a
    /// roll-forward record).
    pub(crate) fn set_counters(&mut self, free_head: Nid, watermark: Nid) {
        self.ids.free_head = free_head.0;
        self.ids.watermark = watermark.0;
    }

    /// Threads every unused node id below `watermark` onto the free list
    /// again and makes `watermark` the table's (see
    /// [`IdTable::rebuild_free_list`]); returns how many ids are listed.
    pub fn rebuild_free_list(
        &mut self,
        dev: &dyn BlockDevice,
        watermark: Nid,
        taken: &dyn Fn(u64) -> bool,
    ) -> Result<u64> {
        let ids = (Nid::FIRST_FREE.0, watermark.0);
        self.ids.rebuild_free_list(dev, ids, taken)
    }

    /// Where `nid` is stored, or `None` if it is free.
    pub fn lookup(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<Option<NatEntry>> {
        match self.ids.get(dev, nid.0)? {
            None => Ok(None),
            Some(raw) => match decode(&raw, nid)? {
                Slot::Used(e) => Ok(Some(e)),
                Slot::Free(_) => Ok(None),
            },
        }
    }

    /// Where the node `nid` is stored, resolved to a page, or `None` if
    /// the id is free.
    pub fn locate(
        &mut self,
        dev: &dyn BlockDevice,
        nid: Nid,
    ) -> Result<Option<(PageAddr, NatEntry)>> {
        let Some(e) = self.lookup(dev, nid)? else {
            return Ok(None);
        };
        let addr = self.pat.resolve_unit(dev, e.vpn).map_err(|err| match err {
            Error::Corrupt { .. } => Error::corrupt(
                format!("node {nid}"),
                PageAddr::NONE,
                format!("its unit {} is not in the page address table", e.vpn),
            ),
            other => other,
        })?;
        Ok(Some((addr, e)))
    }

    /// Reads node `nid` (opening it, on a sealed volume) and checks it.
    pub fn read_node(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<crate::node::Node> {
        let e = self.lookup(dev, nid)?.ok_or_else(|| {
            Error::corrupt(
                format!("node {nid}"),
                PageAddr::NONE,
                "referenced but not allocated",
            )
        })?;
        let what = || format!("node {nid}");
        let mut page = crate::layout::zero_page();
        let kind = crate::segment_summary::PageKind::Node;
        let addr = self
            .pat
            .read_page_unit(dev, e.vpn, kind, &mut page, &what)
            .map_err(|err| match err {
                Error::Corrupt { detail, addr, .. } if addr.is_none() => Error::corrupt(
                    format!("node {nid}"),
                    PageAddr::NONE,
                    format!("its unit {}: {detail}", e.vpn),
                ),
                other => other,
            })?;
        crate::node_cache::check_node(&page[..], nid, addr, e)
    }

    /// Records that `nid` is now stored at `e`.
    pub fn set(&mut self, dev: &dyn BlockDevice, nid: Nid, e: NatEntry) -> Result<()> {
        self.ids.set(dev, nid.0, &encode_used(e))
    }

    /// Takes a free node id.
    pub fn alloc(&mut self, dev: &dyn BlockDevice) -> Result<Nid> {
        self.ids.alloc(dev).map(Nid)
    }

    /// Returns `nid` to the free list.
    pub fn release(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<()> {
        self.ids.release(dev, nid.0)
    }

    /// The root as last written.
    pub fn root(&self) -> TableRoot {
        self.ids.table_ref().root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    fn pat() -> Arc<PageTable> {
        let state = IdState {
            root: TableRoot::default(),
            free_head: 0,
            watermark: Vpn::FIRST.0,
        };
        PageTable::open(state, &geo(), 8)
    }

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
            vpn: Vpn(77),
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
        let mut nat = NodeTable::new(
            TableRoot::default(),
            Nid::NONE,
            Nid::FIRST_FREE,
            &geo(),
            16,
            pat(),
        );
        let a = nat.alloc(&dev).expect("a");
        let b = nat.alloc(&dev).expect("b");
        assert_eq!((a, b), (Nid(2), Nid(3)));
        nat.set(
            &dev,
            a,
            NatEntry {
                vpn: Vpn(100),
                crc: 1,
            },
        )
        .expect("set");
        nat.set(
            &dev,
            b,
            NatEntry {
                vpn: Vpn(101),
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
            pat(),
        );
        assert_eq!(nat.alloc(&dev).expect("last id"), Nid(limit.0 - 1));
        assert!(matches!(nat.alloc(&dev), Err(Error::NoSpace)));
    }

    #[test]
    fn watermark_below_a_used_id_is_corruption_not_an_overwrite() {
        let dev = MemDevice::new(16);
        let mut nat = NodeTable::new(TableRoot::default(), Nid::NONE, Nid(10), &geo(), 16, pat());
        let e = NatEntry {
            vpn: Vpn(9),
            crc: 0,
        };
        nat.set(&dev, Nid(10), e).expect("set");
        assert!(matches!(nat.alloc(&dev), Err(Error::Corrupt { .. })));
        assert_eq!(nat.watermark(), Nid(10), "nothing handed out");
    }

    #[test]
    fn free_list_pointing_at_used_entry_is_corruption() {
        let dev = MemDevice::new(16);
        let mut nat = NodeTable::new(TableRoot::default(), Nid::NONE, Nid(10), &geo(), 16, pat());
        nat.set(
            &dev,
            Nid(4),
            NatEntry {
                vpn: Vpn(9),
                crc: 0,
            },
        )
        .expect("set");
        nat.ids.free_head = 4;
        assert!(matches!(nat.alloc(&dev), Err(Error::Corrupt { .. })));
    }
}
