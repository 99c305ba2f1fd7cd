//! The page address table (PAT): virtual page number -> where the stored
//! unit is now, the checkpoint that wrote it, and how it is stored.
//!
//! Everything a root reaches (file data, nodes, the pages of its node
//! address table) is named by a virtual page number (vpn), never by its
//! address. Moving a unit (the cleaner) changes its entry here and nothing
//! that points at it, in any root. A unit is live exactly when its entry
//! is in use and points at it: that is the cleaner's whole liveness test.
//!
//! The table is current-only, like the segment usage table: its pages are
//! named by their physical addresses and rewritten at each commit. It is
//! shared by every root of the volume, so it sits behind a lock and is
//! handed around as an `Arc`.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::id_table::{IdState, IdTable};
use crate::ids::{CheckpointNo, PageAddr, TransformId, Vpn};
use crate::layout::Geometry;
use crate::layout::{Page, PAGE_SIZE};
use crate::meta_table::{MetaTable, PageNames, RawEntry, TableId, ENTRY_SIZE, ZERO_ENTRY};
use crate::seal::{Domain, SealInfo, Sealer};
use crate::segment_summary::PageKind;

/// Byte offsets of an entry's fields (docs/FORMAT.md, `layout: pat_entry`).
pub mod off {
    pub const ADDR: usize = 0;
    pub const BIRTH: usize = 6;
    pub const PAGES: usize = 11;
    pub const TRANSFORM: usize = 12;
    pub const TAIL: usize = 14;
    /// On a sealed volume: the unit's seal (seal number, salt, tag).
    pub const SEAL: usize = 16;
}

/// Bytes of the address field.
const ADDR_BYTES: usize = off::BIRTH - off::ADDR;
/// Bytes of the birth field.
const BIRTH_BYTES: usize = off::PAGES - off::BIRTH;

/// Largest page address an entry can hold (6 bytes).
pub const MAX_ADDR: u64 = (1 << (8 * ADDR_BYTES)) - 1;
/// Largest birth an entry can hold (5 bytes).
pub const MAX_BIRTH: u64 = (1 << (8 * BIRTH_BYTES)) - 1;

/// One past the largest vpn a filesystem of `geo` can use: every vpn in
/// use names a stored page of the segment area, and a freed vpn is reused
/// before a new one is taken.
pub fn vpn_limit(geo: &Geometry) -> Vpn {
    Vpn(geo.segment_area_pages().saturating_add(Vpn::FIRST.0))
}

/// Where a stored unit is and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatEntry {
    /// First page of the unit.
    pub addr: PageAddr,
    /// The checkpoint that wrote it (moving it keeps its birth).
    pub birth: CheckpointNo,
    /// Pages the unit takes, 1 to 16.
    pub pages: u8,
    /// Transform chain of the stored bytes (0 = raw).
    pub transform: TransformId,
    /// Stored bytes in the unit's last page, 1 to 4095; 0 when the last
    /// page is full (every raw unit, and every entry version 3 wrote).
    pub tail: u16,
    /// On a sealed volume, the unit's seal.
    pub seal: Option<SealInfo>,
}

impl PatEntry {
    /// A raw one-page unit at `addr`, written by checkpoint `birth`.
    pub fn raw(addr: PageAddr, birth: CheckpointNo) -> PatEntry {
        PatEntry {
            addr,
            birth,
            pages: 1,
            transform: TransformId(0),
            tail: 0,
            seal: None,
        }
    }

    /// A unit of `len` stored bytes made by chain `transform`, at `addr`,
    /// written by checkpoint `birth`.
    pub fn stored(
        addr: PageAddr,
        birth: CheckpointNo,
        len: usize,
        transform: TransformId,
    ) -> PatEntry {
        PatEntry {
            addr,
            birth,
            pages: crate::segment_summary::unit_pages(len) as u8,
            transform,
            tail: (len % crate::layout::PAGE_SIZE) as u16,
            seal: None,
        }
    }

    /// The unit's stored bytes.
    pub fn stored_len(&self) -> usize {
        let full = usize::from(self.pages) * crate::layout::PAGE_SIZE;
        match self.tail {
            0 => full,
            t => full - crate::layout::PAGE_SIZE + usize::from(t),
        }
    }

    /// Encodes: address (6 bytes), birth (5), pages (1), transform (2),
    /// tail (2).
    pub fn encode(&self) -> RawEntry {
        let mut raw = ZERO_ENTRY;
        raw[off::ADDR..off::BIRTH].copy_from_slice(&self.addr.0.to_le_bytes()[..ADDR_BYTES]);
        raw[off::BIRTH..off::PAGES].copy_from_slice(&self.birth.0.to_le_bytes()[..BIRTH_BYTES]);
        raw[off::PAGES] = self.pages;
        raw[off::TRANSFORM..off::TAIL].copy_from_slice(&self.transform.0.to_le_bytes());
        raw[off::TAIL..ENTRY_SIZE].copy_from_slice(&self.tail.to_le_bytes());
        if let Some(seal) = &self.seal {
            raw[off::SEAL..off::SEAL + crate::seal_info::SIZE].copy_from_slice(&seal.to_bytes());
        }
        raw
    }

    /// Decodes an entry in use.
    pub fn decode(raw: &RawEntry) -> PatEntry {
        let mut addr = [0u8; 8];
        addr[..ADDR_BYTES].copy_from_slice(&raw[off::ADDR..off::BIRTH]);
        let mut birth = [0u8; 8];
        birth[..BIRTH_BYTES].copy_from_slice(&raw[off::BIRTH..off::PAGES]);
        let t = off::TRANSFORM;
        let f = off::TAIL;
        PatEntry {
            addr: PageAddr(u64::from_le_bytes(addr)),
            birth: CheckpointNo(u64::from_le_bytes(birth)),
            pages: raw[off::PAGES],
            transform: TransformId(u16::from_le_bytes([raw[t], raw[t + 1]])),
            tail: u16::from_le_bytes([raw[f], raw[f + 1]]),
            seal: {
                let bytes = &raw[off::SEAL..off::SEAL + crate::seal_info::SIZE];
                bytes
                    .iter()
                    .any(|&b| b != 0)
                    .then(|| SealInfo::from_bytes(bytes).ok())
                    .flatten()
            },
        }
    }
}

/// What a unit's seal binds it to: its vpn, birth, kind, chain and stored
/// length (a unit read as another vpn, an older version of the same vpn,
/// or as another kind fails its tag).
fn unit_bound(vpn: Vpn, e: &PatEntry, kind: PageKind) -> [u64; 5] {
    [
        vpn.0,
        e.birth.0,
        u64::from(kind.code()),
        u64::from(e.transform.0),
        e.stored_len() as u64,
    ]
}

/// Seals the `stored` bytes of unit `vpn`, of `kind`, whose entry is `e`
/// (without its seal yet), and records the seal in `e`.
pub fn seal_unit(
    sealer: &Sealer,
    vpn: Vpn,
    e: &mut PatEntry,
    kind: PageKind,
    stored: &mut [u8],
) -> Result<()> {
    e.seal = Some(sealer.seal(Domain::Unit, &unit_bound(vpn, e, kind), stored)?);
    Ok(())
}

/// Opens the `stored` bytes of unit `vpn` of `kind`, which `e` describes,
/// in place, on a sealed volume (`sealer`); `what` names it in errors. On
/// a volume that is not sealed, nothing to do.
pub fn open_unit(
    sealer: Option<&Sealer>,
    vpn: Vpn,
    e: &PatEntry,
    kind: PageKind,
    stored: &mut [u8],
    what: &dyn Fn() -> String,
) -> Result<()> {
    let Some(s) = sealer else { return Ok(()) };
    let info = e.seal.ok_or_else(|| {
        Error::corrupt(
            what(),
            e.addr,
            "its page address table entry has no seal, on a sealed volume",
        )
    })?;
    s.open(
        Domain::Unit,
        &unit_bound(vpn, e, kind),
        &info,
        stored,
        (what, e.addr),
    )
}

/// The page address table, shared by the volume and its roots.
#[derive(Debug)]
pub struct PageTable {
    inner: Mutex<IdTable>,
    geo: Geometry,
    sealer: Option<Arc<Sealer>>,
}

impl PageTable {
    /// The table of a filesystem of `geo`, continuing from `state`.
    pub fn open(state: IdState, geo: &Geometry, cache_pages: usize) -> Arc<PageTable> {
        PageTable::open_sealed(state, geo, cache_pages, None)
    }

    /// The table of a volume sealed with `sealer` (`None`: not sealed).
    pub fn open_sealed(
        state: IdState,
        geo: &Geometry,
        cache_pages: usize,
        sealer: Option<Arc<Sealer>>,
    ) -> Arc<PageTable> {
        let table = MetaTable::new(
            TableId::PageAddress,
            state.root,
            cache_pages,
            sealer.clone(),
        );
        let ids = IdTable::new(table, "page address table", state, vpn_limit(geo).0);
        Arc::new(PageTable {
            inner: Mutex::new(ids),
            geo: *geo,
            sealer,
        })
    }

    /// What seals and opens units, on a sealed volume.
    pub fn sealer(&self) -> Option<&Arc<Sealer>> {
        self.sealer.as_ref()
    }

    /// Reads unit `vpn`, of `kind`, and opens it (on a sealed volume):
    /// its entry and stored bytes. `what` names it in errors.
    pub fn read_unit(
        &self,
        dev: &dyn BlockDevice,
        vpn: Vpn,
        kind: PageKind,
        what: &dyn Fn() -> String,
    ) -> Result<(PatEntry, Vec<u8>)> {
        let e = self.resolve(dev, vpn)?;
        let mut stored = vec![0u8; usize::from(e.pages) * PAGE_SIZE];
        dev.read(e.addr, &mut stored)?;
        stored.truncate(e.stored_len());
        open_unit(self.sealer.as_deref(), vpn, &e, kind, &mut stored, what)?;
        Ok((e, stored))
    }

    /// Reads unit `vpn`, one page of `kind`, into `page`; says where it is.
    pub fn read_page_unit(
        &self,
        dev: &dyn BlockDevice,
        vpn: Vpn,
        kind: PageKind,
        page: &mut Page,
        what: &dyn Fn() -> String,
    ) -> Result<PageAddr> {
        let e = self.resolve(dev, vpn)?;
        if e.pages != 1 || e.tail != 0 {
            return Err(Error::corrupt(
                what(),
                e.addr,
                format!(
                    "a unit of {} stored bytes where one page was expected",
                    e.stored_len()
                ),
            ));
        }
        dev.read(e.addr, &mut page[..])?;
        open_unit(self.sealer.as_deref(), vpn, &e, kind, &mut page[..], what)?;
        Ok(e.addr)
    }

    /// The table, locked. (A panic while it was held cannot leave it half
    /// changed in a way a later reader would trust: every commit path
    /// poisons the store on error, so the lock's poison is ignored.)
    pub fn lock(&self) -> MutexGuard<'_, IdTable> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Levels above the leaves now.
    pub fn depth(&self) -> u8 {
        self.lock().table_ref().depth()
    }

    /// The state a checkpoint records.
    pub fn state(&self) -> IdState {
        self.lock().state()
    }

    /// The entry of `vpn`, if it is in use.
    pub fn lookup(&self, dev: &dyn BlockDevice, vpn: Vpn) -> Result<Option<PatEntry>> {
        let raw = self.lock().get(dev, vpn.0)?;
        let Some(raw) = raw else { return Ok(None) };
        let e = PatEntry::decode(&raw);
        let last = e.addr.offset(u64::from(e.pages).saturating_sub(1));
        if !self.geo.contains(e.addr) || !self.geo.contains(last) {
            return Err(Error::corrupt(
                format!("unit {vpn}"),
                e.addr,
                "the page address table puts it outside the segment area",
            ));
        }
        let max = crate::segment_summary::MAX_UNIT_PAGES;
        let split = self.geo.segment_of(e.addr) != self.geo.segment_of(last);
        if e.pages == 0
            || u64::from(e.pages) > max
            || split
            || usize::from(e.tail) >= crate::layout::PAGE_SIZE
        {
            return Err(Error::corrupt(
                format!("unit {vpn}"),
                e.addr,
                format!(
                    "the page address table gives it {} pages (1 to {max}, in one segment) \
                     and {} bytes in the last (0 to 4095)",
                    e.pages, e.tail
                ),
            ));
        }
        Ok(Some(e))
    }

    /// Where unit `vpn` is now; an error if it is not in use (a pointer
    /// to a freed unit is damage).
    pub fn resolve_unit(&self, dev: &dyn BlockDevice, vpn: Vpn) -> Result<PageAddr> {
        self.resolve(dev, vpn).map(|e| e.addr)
    }

    /// Unit `vpn`'s entry; an error if it is not in use.
    pub fn resolve(&self, dev: &dyn BlockDevice, vpn: Vpn) -> Result<PatEntry> {
        self.lookup(dev, vpn)?.ok_or_else(|| {
            Error::corrupt(
                format!("unit {vpn}"),
                PageAddr::NONE,
                "pointed at, but free in the page address table",
            )
        })
    }

    /// Takes a free vpn (its entry is set by [`PageTable::set`]).
    pub fn alloc(&self, dev: &dyn BlockDevice) -> Result<Vpn> {
        self.lock().alloc(dev).map(Vpn)
    }

    /// Records where unit `vpn` is.
    pub fn set(&self, dev: &dyn BlockDevice, vpn: Vpn, e: PatEntry) -> Result<()> {
        if e.addr.0 > MAX_ADDR || e.addr.is_none() || e.birth.0 > MAX_BIRTH {
            return Err(Error::corrupt(
                "page address table",
                e.addr,
                format!("unit {vpn}: address or birth {} out of range", e.birth),
            ));
        }
        self.lock().set(dev, vpn.0, &e.encode())
    }

    /// Frees `vpn`: the unit it named is gone.
    pub fn release(&self, dev: &dyn BlockDevice, vpn: Vpn) -> Result<()> {
        self.lock().release(dev, vpn.0)
    }
}

impl PageNames for PageTable {
    fn read_page(&self, dev: &dyn BlockDevice, name: u64, page: &mut Page) -> Result<PageAddr> {
        let what = || format!("node address table page (unit {name})");
        self.read_page_unit(dev, Vpn(name), PageKind::Table, page, &what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;
    use crate::meta_table::TableRoot;

    fn geo() -> Geometry {
        Geometry {
            pages_per_segment: 16,
            segment_count: 16,
            first_segment_page: 2,
        }
    }

    #[test]
    fn entry_codec_round_trips_at_field_limits() {
        let e = PatEntry {
            addr: PageAddr(MAX_ADDR),
            birth: CheckpointNo(MAX_BIRTH),
            pages: 16,
            transform: TransformId(0x1234),
            tail: 0xBEEF,
            seal: Some(SealInfo {
                seal: 7,
                salt: [1; 8],
                tag: [2; 16],
            }),
        };
        let raw = e.encode();
        assert_eq!(&raw[0..6], &[0xFF; 6]);
        assert_eq!(PatEntry::decode(&raw), e);
        assert!(crate::id_table::is_used(&raw));
    }

    #[test]
    fn units_are_found_moved_and_freed() {
        let dev = MemDevice::new(300);
        let state = IdState {
            root: TableRoot::default(),
            free_head: 0,
            watermark: Vpn::FIRST.0,
        };
        let pat = PageTable::open(state, &geo(), 8);
        let a = pat.alloc(&dev).expect("alloc");
        assert_eq!(a, Vpn::FIRST);
        pat.set(&dev, a, PatEntry::raw(PageAddr(40), CheckpointNo(3)))
            .expect("set");
        assert_eq!(pat.resolve_unit(&dev, a).expect("resolve"), PageAddr(40));
        pat.set(&dev, a, PatEntry::raw(PageAddr(41), CheckpointNo(3)))
            .expect("move");
        assert_eq!(
            pat.lookup(&dev, a).expect("lookup"),
            Some(PatEntry::raw(PageAddr(41), CheckpointNo(3)))
        );
        pat.release(&dev, a).expect("release");
        assert!(matches!(
            pat.resolve_unit(&dev, a),
            Err(Error::Corrupt { .. })
        ));
        assert_eq!(pat.alloc(&dev).expect("again"), a, "freed vpns are reused");
        pat.set(&dev, a, PatEntry::raw(PageAddr(1), CheckpointNo(3)))
            .expect("set");
        assert!(
            matches!(pat.lookup(&dev, a), Err(Error::Corrupt { .. })),
            "an address outside the segment area is damage"
        );
    }
}
