//! Where a unit's life is decided. A unit (file data, a node, a page of a
//! root's node address table) is born when the log writes it and it takes
//! a virtual page number ([`PageLife::write_unit`]); it dies when the root
//! being built stops using it ([`PageLife::died`]); in between the cleaner
//! may move it ([`PageLife::moved`]). Pages addressed physically (the
//! current-only tables, the checkpoint) are born when the log writes them
//! and die through [`PageLife::died_at`].
//!
//! When a unit dies, its birth decides (ZFS's rule): born after the
//! root's newest retained checkpoint, nothing retained can need it, and it
//! is freed at once (its vpn is free again, and its page once the commit
//! that let it go is durable: the usage table's pre-free rule; the last
//! durable checkpoint's own page address table still names the page, so a
//! crash finds it intact); born at or before it, that checkpoint still
//! needs it, and it goes on that checkpoint's deadlist, still allocated,
//! until the checkpoint is pruned (`checkpoints.rs`). A branch's history
//! starts at its origin, and a unit born at or before the origin belongs to
//! the origin's line, which frees it when its own retained checkpoints let
//! go: the branch letting go of it changes nothing (ZFS clones, likewise).

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::history::History;
use crate::ids::{CheckpointNo, PageAddr, TransformId, Vpn};
use crate::page_table::{seal_unit, PageTable, PatEntry};
use crate::segment_summary::{unit_pages, Entry, PageKind};
use crate::segment_usage::SegmentUsage;
use crate::segment_writer::SegmentWriter;

/// The [`PageLife`] of store `$s` (its usage table, page address table and
/// live root's history; the fields are named, so the root's node cache may
/// be borrowed beside it), on `$dev`, for checkpoint `$building`.
macro_rules! life {
    ($s:expr, $dev:expr, $building:expr) => {
        $crate::page_life::PageLife::new(
            &mut $s.sut,
            &$s.pat,
            &mut $s.root.history,
            $dev,
            $building,
        )
    };
}
pub(crate) use life;

/// The births, moves and deaths of units during one change to the root
/// being built.
#[derive(Debug)]
pub struct PageLife<'a> {
    sut: &'a mut SegmentUsage,
    pat: &'a PageTable,
    history: &'a mut History,
    dev: &'a dyn BlockDevice,
    building: CheckpointNo,
}

impl<'a> PageLife<'a> {
    /// Lives counted in `sut` and `pat`, deaths judged against a root's
    /// `history`, for the checkpoint `building`.
    pub fn new(
        sut: &'a mut SegmentUsage,
        pat: &'a PageTable,
        history: &'a mut History,
        dev: &'a dyn BlockDevice,
        building: CheckpointNo,
    ) -> PageLife<'a> {
        PageLife {
            sut,
            pat,
            history,
            dev,
            building,
        }
    }

    /// Writes `bytes` as a new unit through `log`, described by (`kind`,
    /// `owner`, `index`) in its record's summary: the unit takes a vpn,
    /// born now, and as many pages as the bytes need; on a sealed volume,
    /// sealed. Returns the vpn and the checksum of `bytes` (what a reader
    /// finds once it has opened the unit).
    pub fn write_unit(
        &mut self,
        log: &mut SegmentWriter,
        id: (PageKind, u64, u64),
        bytes: &[u8],
    ) -> Result<(Vpn, u32)> {
        self.write_chained(log, id, bytes, TransformId(0))
    }

    /// [`PageLife::write_unit`] for `bytes` that chain `chain` made.
    pub fn write_chained(
        &mut self,
        log: &mut SegmentWriter,
        (kind, owner, index): (PageKind, u64, u64),
        bytes: &[u8],
        chain: TransformId,
    ) -> Result<(Vpn, u32)> {
        let vpn = self.pat.alloc(self.dev)?;
        let pages = unit_pages(bytes.len());
        let addr = log.alloc(self.dev, self.sut, pages, None)?;
        let entry = Entry {
            transform: chain,
            ..Entry::unit(kind, owner, index, vpn)
        };
        let mut pat_entry = PatEntry::stored(addr, self.building, bytes.len(), chain);
        let crc = match self.pat.sealer() {
            Some(s) => {
                let mut sealed = bytes.to_vec();
                seal_unit(s, vpn, &mut pat_entry, kind, &mut sealed)?;
                log.fill(addr, entry, &sealed)?;
                crate::codec::crc32(bytes)
            }
            None => log.fill(addr, entry, bytes)?,
        };
        self.pat.set(self.dev, vpn, pat_entry)?;
        if self.history.origin_held {
            self.history.own += pages;
        }
        Ok((vpn, crc))
    }

    /// The unit `vpn` is no longer used by the root being built: freed,
    /// or kept for the newest retained checkpoint (see the module).
    pub fn died(&mut self, vpn: Vpn) -> Result<()> {
        let e = self.entry(vpn)?;
        let last = self.history.last;
        if e.birth > last {
            if self.history.origin_held {
                self.history.own = self.history.own.saturating_sub(u64::from(e.pages));
            }
            return self.free_entry(vpn, e);
        }
        if self.history.origin_held {
            return Ok(());
        }
        self.history
            .pending
            .entry(last)
            .or_default()
            .push((vpn, e.birth));
        Ok(())
    }

    /// Frees unit `vpn`, which nothing needs any more (a deadlist's entry
    /// when its checkpoint is pruned, or a deadlist's own page).
    pub fn free(&mut self, vpn: Vpn) -> Result<()> {
        let e = self.entry(vpn)?;
        self.free_entry(vpn, e)
    }

    fn entry(&self, vpn: Vpn) -> Result<PatEntry> {
        self.pat.lookup(self.dev, vpn)?.ok_or_else(|| {
            Error::corrupt(
                format!("unit {vpn}"),
                PageAddr::NONE,
                "freed twice: already free in the page address table",
            )
        })
    }

    fn free_entry(&mut self, vpn: Vpn, e: PatEntry) -> Result<()> {
        self.pat.release(self.dev, vpn)?;
        self.let_go(e)
    }

    /// Every page of the unit `e` describes is dead (where it was).
    fn let_go(&mut self, e: PatEntry) -> Result<()> {
        for i in 0..u64::from(e.pages) {
            self.sut
                .remove_live(self.dev, e.addr.offset(i), self.building)?;
        }
        Ok(())
    }

    /// The root's retained past.
    pub fn history(&mut self) -> &mut History {
        self.history
    }

    /// The cleaner copied unit `vpn` from `from` to `to` (pages the log
    /// writer has counted): the unit keeps its vpn, birth and everything
    /// else its entry says.
    pub fn moved(&mut self, vpn: Vpn, from: PatEntry, to: PageAddr) -> Result<()> {
        self.pat.set(self.dev, vpn, PatEntry { addr: to, ..from })?;
        self.let_go(from)
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
}
