//! The segment writer: hands out room for stored units at the head of the
//! log and packs them into log records (a summary page, then up to 100
//! units of 1 to 16 pages each), written once every slot is filled. A
//! unit never spans a record or a segment: a record closes early instead.
//!
//! Addresses are handed out strictly in order, so a file written in one go
//! lands contiguously (delayed allocation chooses the order). Slots can be
//! reserved and filled later: the checkpoint needs the addresses of table
//! pages before their contents (which hold those very addresses) are final.

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, PageAddr, SegmentNo};
use crate::layout::{Geometry, PAGE_SIZE};
use crate::segment_summary::{
    unit_pages, Entry, Summary, FLAG_CHECKPOINT, MAX_ENTRIES, MAX_UNIT_PAGES,
};
use crate::segment_usage::SegmentUsage;

/// A record being assembled.
#[derive(Debug)]
struct Record {
    start: PageAddr,
    seq: u64,
    next_segment: SegmentNo,
    entries: Vec<Option<Entry>>,
    /// Each slot's first page (offset from `start`) and its pages.
    slots: Vec<(u64, u64)>,
    /// Summary page followed by the payload pages.
    buf: Vec<u8>,
    flags: u16,
}

impl Record {
    fn is_complete(&self) -> bool {
        self.entries.iter().all(Option::is_some)
    }

    /// The slot whose unit starts at `addr`.
    fn slot_at(&self, addr: PageAddr) -> Option<usize> {
        let off = addr.0.checked_sub(self.start.0)?;
        self.slots.binary_search_by_key(&off, |s| s.0).ok()
    }
}

/// Where the log stands; what a checkpoint records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPosition {
    /// Segment being written.
    pub segment: SegmentNo,
    /// Pages of it already used.
    pub offset: u64,
    /// Segment to continue in.
    pub next_segment: SegmentNo,
    /// Sequence number of the next record.
    pub next_seq: u64,
}

/// The head of the log.
#[derive(Debug)]
pub struct SegmentWriter {
    geo: Geometry,
    pos: LogPosition,
    building: CheckpointNo,
    open: Option<Record>,
    closed: Vec<Record>,
    /// Pages written to the device since creation (summaries included).
    pub pages_written: u64,
    /// Payload pages handed out since creation.
    pub allocated: u64,
    /// Free segments taken (to hold next) since creation.
    pub segments_taken: u64,
    time_ns: i64,
    /// Age (seconds since the epoch) given to pages in the usage table, if
    /// not now: the cleaner keeps the age of the data it moves.
    age: Option<i64>,
    fs_id: u64,
    /// On a sealed volume, what seals the summaries.
    sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
    /// Units a record's summary holds.
    max_entries: usize,
    /// Segments the head has left and the store has not been told are
    /// sealed: a record handed out before the head moved on may still be
    /// waiting for its slots to be filled.
    left: Vec<SegmentNo>,
}

/// Does a record starting at `offset` fit in a segment of `pps` pages? It
/// needs its summary page and at least one payload page.
pub fn record_fits(offset: u64, pps: u32) -> bool {
    offset + 2 <= u64::from(pps)
}

impl SegmentWriter {
    /// A writer continuing at `pos`; records belong to checkpoint `building`
    /// and carry the filesystem identity `fs_id`.
    pub fn new(
        geo: Geometry,
        pos: LogPosition,
        building: CheckpointNo,
        fs_id: u64,
    ) -> SegmentWriter {
        SegmentWriter {
            geo,
            pos,
            building,
            open: None,
            closed: Vec::new(),
            pages_written: 0,
            allocated: 0,
            segments_taken: 0,
            time_ns: 0,
            age: None,
            fs_id,
            sealer: None,
            max_entries: MAX_ENTRIES,
            left: Vec::new(),
        }
    }

    /// The same writer on a volume sealed with `sealer` (if any): its
    /// summaries sealed, and one entry fewer in each.
    pub fn sealed_by(self, sealer: Option<std::sync::Arc<crate::seal::Sealer>>) -> SegmentWriter {
        SegmentWriter {
            max_entries: crate::segment_summary::max_entries(sealer.is_some()),
            sealer,
            ..self
        }
    }

    /// Current position (after every record handed out so far).
    pub fn position(&self) -> LogPosition {
        self.pos
    }

    /// The checkpoint that records now being written lead to.
    pub fn building(&self) -> CheckpointNo {
        self.building
    }

    /// Starts the next checkpoint interval.
    pub fn set_building(&mut self, cp: CheckpointNo) {
        self.building = cp;
    }

    /// Time stamped into summaries from now on.
    pub fn set_time(&mut self, time_ns: i64) {
        self.time_ns = time_ns;
    }

    /// Age the usage table records for pages handed out from now on
    /// (`None`: the time of writing).
    pub fn set_age(&mut self, secs: Option<i64>) {
        self.age = secs;
    }

    /// Pages left in the current segment.
    pub fn remaining_in_segment(&self) -> u64 {
        u64::from(self.geo.pages_per_segment).saturating_sub(self.pos.offset)
    }

    /// Hands out room for the next unit, `pages` pages, and counts them
    /// live; returns its first page's address. The slot is filled now when
    /// `fill` is given, or later with [`SegmentWriter::fill`].
    pub fn alloc(
        &mut self,
        dev: &dyn BlockDevice,
        sut: &mut SegmentUsage,
        pages: u64,
        fill: Option<(Entry, &[u8])>,
    ) -> Result<PageAddr> {
        if !(1..=MAX_UNIT_PAGES).contains(&pages) {
            return Err(Error::corrupt(
                "log",
                PageAddr::NONE,
                format!("a unit of {pages} pages (1 to {MAX_UNIT_PAGES})"),
            ));
        }
        let pps = u64::from(self.geo.pages_per_segment);
        if self
            .open
            .as_ref()
            .is_some_and(|r| r.entries.len() >= self.max_entries || self.pos.offset + pages > pps)
        {
            self.close_open(dev)?;
        }
        if self.open.is_none() {
            self.open_record(dev, sut, pages)?;
        }
        let rec = self
            .open
            .as_mut()
            .ok_or_else(|| Error::corrupt("log", PageAddr::NONE, "no open record"))?;
        let off = (rec.buf.len() / PAGE_SIZE) as u64;
        let addr = rec.start.offset(off);
        rec.entries.push(None);
        rec.slots.push((off, pages));
        rec.buf.resize((off + pages) as usize * PAGE_SIZE, 0);
        self.pos.offset += pages;
        self.allocated += pages;
        let age = self.age.unwrap_or(self.time_ns / 1_000_000_000);
        for i in 0..pages {
            sut.add_live(dev, addr.offset(i), age)?;
        }
        if let Some((entry, bytes)) = fill {
            self.fill(addr, entry, bytes)?;
        }
        if self.pos.offset >= pps {
            // The segment is full: close so that the next alloc moves on.
            self.close_open(dev)?;
        }
        Ok(addr)
    }

    /// Fills a slot handed out by [`SegmentWriter::alloc`] with the unit's
    /// stored bytes (exactly as many pages as handed out; the rest of the
    /// last page stays zero), recording their length and checksum in
    /// `entry`; returns the checksum.
    pub fn fill(&mut self, addr: PageAddr, mut entry: Entry, bytes: &[u8]) -> Result<u32> {
        let rec = self
            .open
            .iter_mut()
            .chain(self.closed.iter_mut())
            .find(|r| addr > r.start && addr.0 < r.start.0 + (r.buf.len() / PAGE_SIZE) as u64)
            .ok_or_else(|| Error::corrupt("log", addr, "fill of a slot that was not handed out"))?;
        let slot = rec
            .slot_at(addr)
            .ok_or_else(|| Error::corrupt("log", addr, "fill inside a unit, not at its start"))?;
        let (off, pages) = rec.slots[slot];
        // The summary records only the stored length, from which every
        // reader works out the unit's pages: they must be the slot's.
        if bytes.is_empty() || unit_pages(bytes.len()) != pages {
            return Err(Error::corrupt(
                "log",
                addr,
                format!("{} bytes are not a unit of {pages} pages", bytes.len()),
            ));
        }
        entry.stored_len = bytes.len() as u32;
        entry.crc = crate::codec::crc32(bytes);
        if entry.kind == crate::segment_summary::PageKind::Checkpoint {
            rec.flags |= FLAG_CHECKPOINT;
        }
        rec.entries[slot] = Some(entry);
        let at = off as usize * PAGE_SIZE;
        rec.buf[at..at + bytes.len()].copy_from_slice(bytes);
        Ok(entry.crc)
    }

    /// Opens a record whose first unit takes `pages` pages, in the next
    /// segment if this one has no room for the summary and that unit.
    fn open_record(
        &mut self,
        dev: &dyn BlockDevice,
        sut: &mut SegmentUsage,
        pages: u64,
    ) -> Result<()> {
        let pps = u64::from(self.geo.pages_per_segment);
        if self.pos.offset + 1 + pages > pps {
            if 1 + pages > pps {
                return Err(Error::corrupt(
                    "log",
                    PageAddr::NONE,
                    format!("a unit of {pages} pages does not fit a segment of {pps}"),
                ));
            }
            self.advance_segment(dev, sut)?;
        }
        let start = self
            .geo
            .segment_start(self.pos.segment)
            .offset(self.pos.offset);
        self.open = Some(Record {
            start,
            seq: self.pos.next_seq,
            next_segment: self.pos.next_segment,
            entries: Vec::with_capacity(MAX_ENTRIES),
            slots: Vec::with_capacity(MAX_ENTRIES),
            // The summary page, encoded when the record is written.
            buf: vec![0u8; PAGE_SIZE],
            flags: 0,
        });
        self.pos.next_seq += 1;
        self.pos.offset += 1; // the summary page
        Ok(())
    }

    /// Moves the head to the next segment and picks the one after it.
    fn advance_segment(&mut self, dev: &dyn BlockDevice, sut: &mut SegmentUsage) -> Result<()> {
        let after = sut.take_free(dev)?;
        self.segments_taken += 1;
        sut.set_active(self.pos.segment, false);
        self.left.push(self.pos.segment);
        self.pos.segment = self.pos.next_segment;
        self.pos.next_segment = after;
        self.pos.offset = 0;
        Ok(())
    }

    /// Closes the open record; it is written once complete.
    fn close_open(&mut self, dev: &dyn BlockDevice) -> Result<()> {
        if let Some(rec) = self.open.take() {
            self.closed.push(rec);
        }
        self.write_complete(dev)
    }

    /// Writes every closed record whose slots are all filled, oldest first.
    fn write_complete(&mut self, dev: &dyn BlockDevice) -> Result<()> {
        while self.closed.first().is_some_and(Record::is_complete) {
            let mut rec = self.closed.remove(0);
            let summary = Summary {
                seq: rec.seq,
                checkpoint_no: self.building,
                next_segment: rec.next_segment,
                time_ns: self.time_ns,
                tag_pages: 0,
                flags: rec.flags,
                fs_id: self.fs_id,
                entries: rec.entries.iter().flatten().copied().collect(),
            };
            let page = summary.encode_sealed(self.sealer.as_deref())?;
            rec.buf[..PAGE_SIZE].copy_from_slice(&page[..]);
            dev.write(rec.start, &rec.buf)?;
            self.pages_written += rec.buf.len() as u64 / PAGE_SIZE as u64;
        }
        self.seal_left(dev)
    }

    /// Tells the store of each segment the head left whose records are all
    /// written.
    fn seal_left(&mut self, dev: &dyn BlockDevice) -> Result<()> {
        let geo = self.geo;
        let pending: Vec<SegmentNo> = self
            .open
            .iter()
            .chain(&self.closed)
            .filter_map(|r| geo.segment_of(r.start))
            .collect();
        let (waiting, done): (Vec<SegmentNo>, Vec<SegmentNo>) =
            self.left.iter().partition(|s| pending.contains(s));
        self.left = waiting;
        for seg in done {
            dev.seal_segment(seg)?;
        }
        Ok(())
    }

    /// Writes everything handed out and lets the head's two segments go:
    /// the one it was filling becomes an ordinary, partly written segment,
    /// sealed, and so does its successor (empty in this life, or written by
    /// a life before the mount).
    pub fn close(&mut self, dev: &dyn BlockDevice, sut: &mut SegmentUsage) -> Result<()> {
        self.finish(dev)?;
        for seg in [self.pos.segment, self.pos.next_segment] {
            sut.set_active(seg, false);
            self.left.push(seg);
        }
        self.seal_left(dev)
    }

    /// Closes and writes everything handed out; every slot must be filled.
    pub fn finish(&mut self, dev: &dyn BlockDevice) -> Result<()> {
        self.close_open(dev)?;
        if let Some(rec) = self.closed.first() {
            return Err(Error::corrupt(
                "log",
                rec.start,
                "record left with unfilled slots",
            ));
        }
        Ok(())
    }

    /// Starts writing in a fresh segment (at mount), leaving the old head
    /// and its successor untouched.
    pub fn restart(
        &mut self,
        dev: &dyn BlockDevice,
        sut: &mut SegmentUsage,
        seq: u64,
    ) -> Result<()> {
        self.close(dev, sut)?;
        // Each is held as taken, so the second is another.
        let first = sut.take_free(dev)?;
        let second = sut.take_free(dev)?;
        self.pos = LogPosition {
            segment: first,
            offset: 0,
            next_segment: second,
            next_seq: seq,
        };
        Ok(())
    }
}
