//! An image editor for fuzzing past the checksums: it changes bytes of a
//! checkpoint, the superblocks, a table entry or a node, then recomputes
//! every checksum that covers them (the page's own, its record summary's
//! entry and the summary's own, the node address table entry, each table
//! page up to the root, the root's in the checkpoint), so that only the
//! hostile value itself is wrong. Units (nodes, node address table pages)
//! are found through the page address table, as the filesystem finds them.

use std::sync::Arc;

use pagelog_core::checkpoint::{self, Checkpoint};
use pagelog_core::codec::{crc32, crc32_skipping};
use pagelog_core::layout::{Geometry, PAGE_SIZE};
use pagelog_core::meta_table::{TableId, TableRoot, ENTRY_SIZE, FANOUT, PAGE_HEADER};
use pagelog_core::recovery::recover;
use pagelog_core::segment_summary::Summary;
use pagelog_core::superblock::{self, COPIES};
use pagelog_core::{BlockDevice, MemDevice, Nid, PageAddr};

/// Where an edit lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The checkpoint both superblocks name.
    Checkpoint,
    /// Both superblock copies.
    Superblocks,
    /// The node address table entry of a node id.
    NatEntry(u64),
    /// The segment usage table entry of a segment.
    SutEntry(u64),
    /// The page address table entry of a unit (vpn).
    PatEntry(u64),
    /// A node's page.
    Node(u64),
}

/// A little-endian integer of `width` bytes written at `offset` of a place.
#[derive(Clone, Copy, Debug)]
pub struct Edit {
    /// Where.
    pub place: Place,
    /// Byte offset in the page (or in the 16-byte table entry).
    pub offset: usize,
    /// 1, 2, 4 or 8 bytes.
    pub width: usize,
    /// The new value (truncated to the width).
    pub value: u64,
}

/// An image being edited, with what recovery found in it.
pub struct Editor {
    /// The device.
    pub dev: Arc<MemDevice>,
    /// Its geometry.
    pub geo: Geometry,
    /// The filesystem identity, carried by every summary.
    pub fs_id: u64,
    /// The checkpoint both superblocks name, and its page.
    pub cp: Checkpoint,
    /// Its page.
    pub cp_addr: PageAddr,
}

fn read(dev: &MemDevice, addr: PageAddr) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE];
    dev.read(addr, &mut page).expect("read");
    page
}

fn put(buf: &mut [u8], offset: usize, width: usize, value: u64) {
    buf[offset..offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

impl Editor {
    /// Opens the image in `bytes` (cleanly unmounted: both superblocks
    /// name the checkpoint recovery uses).
    pub fn new(bytes: &[u8]) -> Editor {
        let dev = Arc::new(MemDevice::from_bytes(bytes));
        let rec = recover(&*dev, false, None).expect("recover");
        Editor {
            geo: rec.sb.geometry,
            fs_id: rec.sb.hash_seed,
            cp: rec.checkpoint,
            cp_addr: rec.checkpoint_addr,
            dev,
        }
    }

    /// Applies `edit` and fixes every checksum above it.
    pub fn apply(&mut self, edit: Edit) {
        match edit.place {
            Place::Checkpoint => {
                let mut page = read(&self.dev, self.cp_addr);
                put(&mut page, edit.offset, edit.width, edit.value);
                self.write_checkpoint_page(page);
            }
            Place::Superblocks => {
                for addr in COPIES {
                    let mut page = read(&self.dev, addr);
                    put(&mut page, edit.offset, edit.width, edit.value);
                    let crc = crc32_skipping(&page, superblock::off::CRC);
                    put(&mut page, superblock::off::CRC, 4, u64::from(crc));
                    self.dev.write(addr, &page).expect("write");
                }
            }
            Place::NatEntry(nid) => self.table_entry(TableId::NodeAddress, nid, &mut |e| {
                put(e, edit.offset, edit.width, edit.value)
            }),
            Place::SutEntry(seg) => self.table_entry(TableId::SegmentUsage, seg, &mut |e| {
                put(e, edit.offset, edit.width, edit.value)
            }),
            Place::PatEntry(vpn) => self.table_entry(TableId::PageAddress, vpn, &mut |e| {
                put(e, edit.offset, edit.width, edit.value)
            }),
            Place::Node(nid) => {
                let addr = self.node_addr(nid);
                let mut page = read(&self.dev, addr);
                put(&mut page, edit.offset, edit.width, edit.value);
                self.dev.write(addr, &page).expect("write");
                let crc = crc32(&page);
                self.fix_summary(addr, crc);
                self.table_entry(TableId::NodeAddress, nid, &mut |e| {
                    put(e, 8, 4, u64::from(crc))
                });
            }
        }
    }

    /// Where node `nid` is stored.
    pub fn node_addr(&self, nid: u64) -> PageAddr {
        let vpn = self.entry(TableId::NodeAddress, nid);
        self.unit_addr(vpn)
    }

    /// Where unit `vpn` is stored, as the page address table says.
    pub fn unit_addr(&self, vpn: u64) -> PageAddr {
        let e = self.entry(TableId::PageAddress, vpn);
        PageAddr(e & ((1 << 48) - 1))
    }

    /// The first eight bytes of entry `idx` of table `id`.
    fn entry(&self, id: TableId, idx: u64) -> u64 {
        let (leaf, _) = *self.path(id, idx).last().expect("path");
        let page = read(&self.dev, leaf);
        let at = PAGE_HEADER + (idx % FANOUT) as usize * ENTRY_SIZE;
        u64::from_le_bytes(page[at..at + 8].try_into().expect("8"))
    }

    /// The root of table `id`.
    fn root(&self, id: TableId) -> TableRoot {
        match id {
            TableId::NodeAddress => self.cp.nat_root,
            TableId::SegmentUsage => self.cp.sut_root,
            TableId::PageAddress => self.cp.pat_root,
            TableId::CheckpointList => self.cp.checkpoint_list_root,
        }
    }

    /// Where the page named `name` in table `id` is (the node address
    /// table names its pages by vpn).
    fn page_at(&self, id: TableId, name: u64) -> PageAddr {
        match id {
            TableId::NodeAddress => self.unit_addr(name),
            _ => PageAddr(name),
        }
    }

    /// The pages from the root of table `id` down to the leaf holding
    /// entry `idx`, each with the slot of the next one in it (the leaf's
    /// is the entry's).
    fn path(&self, id: TableId, idx: u64) -> Vec<(PageAddr, usize)> {
        let root = self.root(id);
        let mut out = Vec::new();
        let mut addr = self.page_at(id, root.addr.0);
        for level in (0..=root.depth).rev() {
            let slot = ((idx / FANOUT.pow(u32::from(level))) % FANOUT) as usize;
            out.push((addr, slot));
            if level > 0 {
                let page = read(&self.dev, addr);
                let at = PAGE_HEADER + slot * ENTRY_SIZE;
                let name = u64::from_le_bytes(page[at..at + 8].try_into().expect("8"));
                addr = self.page_at(id, name);
            }
        }
        out
    }

    /// Changes entry `idx` of a table through `f`, then the checksum of
    /// each page up to the root and the root's in the checkpoint.
    fn table_entry(&mut self, id: TableId, idx: u64, f: &mut dyn FnMut(&mut [u8])) {
        let path = self.path(id, idx);
        let mut crc = 0;
        for (i, &(addr, slot)) in path.iter().enumerate().rev() {
            let mut page = read(&self.dev, addr);
            let at = PAGE_HEADER + slot * ENTRY_SIZE;
            if i + 1 == path.len() {
                f(&mut page[at..at + ENTRY_SIZE]);
            } else {
                put(&mut page, at + 8, 4, u64::from(crc));
            }
            self.dev.write(addr, &page).expect("write");
            crc = crc32(&page);
            self.fix_summary(addr, crc);
        }
        let mut page = read(&self.dev, self.cp_addr);
        let off = match id {
            TableId::NodeAddress => checkpoint::off::NAT_ROOT,
            TableId::SegmentUsage => checkpoint::off::SUT_ROOT,
            TableId::PageAddress => checkpoint::off::PAT_ROOT,
            TableId::CheckpointList => checkpoint::off::CHECKPOINT_LIST_ROOT,
        };
        put(&mut page, off + 8, 4, u64::from(crc));
        self.write_checkpoint_page(page);
    }

    fn write_checkpoint_page(&mut self, mut page: Vec<u8>) {
        let crc = crc32_skipping(&page, checkpoint::off::CRC);
        put(&mut page, checkpoint::off::CRC, 4, u64::from(crc));
        self.dev.write(self.cp_addr, &page).expect("write");
        self.fix_summary(self.cp_addr, crc32(&page));
        if let Ok(cp) = Checkpoint::decode(&page, self.cp_addr) {
            self.cp = cp;
        }
    }

    /// Sets the checksum the record summary holds for the page at `addr`.
    fn fix_summary(&self, addr: PageAddr, crc: u32) {
        let seg = self.geo.segment_of(addr).expect("page in a segment");
        let start = self.geo.segment_start(seg);
        for at in (start.0..addr.0).rev().map(PageAddr) {
            let Ok(Some(mut s)) = Summary::decode(&read(&self.dev, at), at) else {
                continue;
            };
            let first = at.0 + 1 + u64::from(s.tag_pages);
            let Some(e) = addr
                .0
                .checked_sub(first)
                .and_then(|i| s.entries.get_mut(i as usize))
            else {
                continue;
            };
            e.crc = crc;
            self.dev.write(at, &s.encode()[..]).expect("write");
            return;
        }
        panic!("no summary describes page {addr}");
    }
}

/// The ids of the nodes in use, from the node address table.
pub fn used_nids(ed: &Editor) -> Vec<u64> {
    (1..ed.cp.nat_watermark.0)
        .filter(|&n| ed.entry(TableId::NodeAddress, n) != 0)
        .collect()
}

/// A node's page, as stored.
pub fn node_page(ed: &Editor, nid: u64) -> Vec<u8> {
    read(&ed.dev, ed.node_addr(Nid(nid).0))
}
