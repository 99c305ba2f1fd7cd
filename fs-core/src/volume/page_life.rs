//! Where a unit's life is decided. A unit (file data, a node, a page of a
//! root's node address table) is born when the log writes it and it takes
//! a virtual page number ([`PageLife::write_unit`]); it dies when the root
//! being built stops using it ([`PageLife::died`]); in between the cleaner
//! may move it ([`PageLife::moved`]). Pages addressed physically (the
//! current-only tables, the checkpoint) are born when the log writes them
//! and die through [`PageLife::died_at`].
//!
//! With one root and no retained checkpoint, a unit that dies is freed at
//! once: its vpn is free again and its page is free once the commit that
//! let it go is durable (the segment usage table's pre-free rule; the last
//! durable checkpoint's own page address table still names the page, so a
//! crash finds it intact). Snapshots will decide here, from the unit's
//! birth and the retained checkpoints, whether one of them still needs it
//! (docs/design-v3.md, "Deadlists").

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, PageAddr, Vpn};
use crate::layout::Page;
use crate::page_table::{PageTable, PatEntry};
use crate::segment_summary::{Entry, PageKind};
use crate::segment_usage::SegmentUsage;
use crate::segment_writer::SegmentWriter;

/// The births, moves and deaths of units during one change to the root
/// being built.
#[derive(Debug)]
pub struct PageLife<'a> {
    sut: &'a mut SegmentUsage,
    pat: &'a PageTable,
    dev: &'a dyn BlockDevice,
    building: CheckpointNo,
}

impl<'a> PageLife<'a> {
    /// Lives counted in `sut` and `pat`, for the checkpoint `building`.
    pub fn new(
        sut: &'a mut SegmentUsage,
        pat: &'a PageTable,
        dev: &'a dyn BlockDevice,
        building: CheckpointNo,
    ) -> PageLife<'a> {
        PageLife {
            sut,
            pat,
            dev,
            building,
        }
    }

    /// Writes `page` as a new unit through `log`, described by (`kind`,
    /// `owner`, `index`) in its record's summary: the unit takes a vpn,
    /// born now. Returns the vpn and the page's checksum.
    pub fn write_unit(
        &mut self,
        log: &mut SegmentWriter,
        (kind, owner, index): (PageKind, u64, u64),
        page: &Page,
    ) -> Result<(Vpn, u32)> {
        let vpn = self.pat.alloc(self.dev)?;
        let addr = log.alloc(self.dev, self.sut, None)?;
        let crc = log.fill(addr, Entry::unit(kind, owner, index, vpn), page)?;
        self.pat
            .set(self.dev, vpn, PatEntry::raw(addr, self.building))?;
        Ok((vpn, crc))
    }

    /// The unit `vpn` is no longer used by the root being built.
    pub fn died(&mut self, vpn: Vpn) -> Result<()> {
        let e = self.pat.lookup(self.dev, vpn)?.ok_or_else(|| {
            Error::corrupt(
                format!("unit {vpn}"),
                PageAddr::NONE,
                "freed twice: already free in the page address table",
            )
        })?;
        self.pat.release(self.dev, vpn)?;
        self.sut.remove_live(self.dev, e.addr, self.building)
    }

    /// The cleaner copied unit `vpn` from `from` to `to` (a page the log
    /// writer has counted): the unit keeps its vpn and birth.
    pub fn moved(&mut self, vpn: Vpn, from: PatEntry, to: PageAddr) -> Result<()> {
        self.pat.set(self.dev, vpn, PatEntry { addr: to, ..from })?;
        self.sut.remove_live(self.dev, from.addr, self.building)
    }

    /// The physically addressed page at `addr` (a page of a current-only
    /// table, a checkpoint) is replaced.
    pub fn died_at(&mut self, addr: PageAddr) -> Result<()> {
        self.sut.remove_live(self.dev, addr, self.building)
    }

    /// The device.
    pub fn dev(&self) -> &'a dyn BlockDevice {
        self.dev
    }

    /// The usage table, for the log writer that counts pages as written.
    pub fn usage(&mut self) -> &mut SegmentUsage {
        self.sut
    }

    /// The page address table.
    pub fn pat(&self) -> &PageTable {
        self.pat
    }
}
