//! A roll-forward page: what an fsync without a checkpoint changed in the
//! tables a checkpoint would have written (F2FS's roll-forward, recorded as
//! table entries rather than found by diffing nodes).
//!
//! An fsync writes the dirty data and nodes as a commit would, then these
//! pages: every table entry set since the previous such write (node
//! address table, page address table, segment usage table), the deadlist
//! entries added, and the counters a checkpoint keeps. Recovery applies
//! them, in log order, to the tables the newest checkpoint names, and
//! commits. A set of pages ends with one flagged `LAST`; a set without its
//! last page is ignored (its fsync did not return).
//!
//! Pages are physical (not units): nothing points at them, and they are
//! dead the moment they are written (the next checkpoint supersedes
//! them), so the cleaner never moves them.

use crate::codec::{crc32, Reader, Writer};
use crate::error::Result;
use crate::ids::{CheckpointNo, PageAddr};
use crate::layout::{zero_page, Page, PAGE_SIZE};
use crate::meta_table::{RawEntry, ENTRY_SIZE, ZERO_ENTRY};

/// "PGRF" in ASCII.
pub const MAGIC: [u8; 4] = *b"PGRF";
/// Header bytes.
pub const HEADER: usize = 128;
/// Bytes of one change: table, index, entry.
pub const CHANGE_SIZE: usize = 32;
/// Changes one page holds.
pub const CAPACITY: usize = (PAGE_SIZE - HEADER) / CHANGE_SIZE;
/// Flag: the last page of a set.
pub const LAST: u32 = 1;

/// Byte offsets of the header fields.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const CRC: usize = 4;
    pub const CHECKPOINT_NO: usize = 8;
    pub const PART: usize = 16;
    pub const FLAGS: usize = 20;
    pub const COUNT: usize = 24;
    pub const COUNTERS: usize = 32;
}

/// Byte offsets inside one change.
pub mod change_off {
    pub const TABLE: usize = 0;
    pub const INDEX: usize = 8;
    pub const ENTRY: usize = 16;
}

/// The table a change is to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// The live root's node address table: index = node id.
    NodeAddress,
    /// The page address table: index = vpn.
    PageAddress,
    /// The segment usage table: index = segment.
    SegmentUsage,
    /// A retained checkpoint's waiting deadlist entries: index = that
    /// checkpoint's number, entry = vpn then birth (u64 each).
    Deadlist,
}

impl Target {
    fn code(self) -> u8 {
        match self {
            Target::NodeAddress => 1,
            Target::PageAddress => 2,
            Target::SegmentUsage => 3,
            Target::Deadlist => 4,
        }
    }

    fn from_code(code: u8) -> Option<Target> {
        Some(match code {
            1 => Target::NodeAddress,
            2 => Target::PageAddress,
            3 => Target::SegmentUsage,
            4 => Target::Deadlist,
            _ => return None,
        })
    }
}

/// One change: entry `index` of `target` becomes `entry` (16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The table.
    pub target: Target,
    /// The entry's number in it.
    pub index: u64,
    /// Its new value (the first [`ENTRY_SIZE`] bytes).
    pub entry: RawEntry,
}

/// The counters a checkpoint records that change between checkpoints,
/// as they stood at the fsync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Node address table: first free id, ids never used from here.
    pub nat_free_head: u64,
    pub nat_watermark: u64,
    /// Page address table: first free vpn, vpns never used from here.
    pub pat_free_head: u64,
    pub pat_watermark: u64,
    /// The live root's next inode generation, inodes, reserved pages.
    pub next_generation: u64,
    pub inode_count: u64,
    pub reserved_pages: u64,
    /// Segment usage: live pages, empty segments.
    pub live_pages: u64,
    pub empty_segments: u64,
}

impl Counters {
    const FIELDS: usize = 9;

    fn as_array(&self) -> [u64; Counters::FIELDS] {
        [
            self.nat_free_head,
            self.nat_watermark,
            self.pat_free_head,
            self.pat_watermark,
            self.next_generation,
            self.inode_count,
            self.reserved_pages,
            self.live_pages,
            self.empty_segments,
        ]
    }

    fn from_array(a: [u64; Counters::FIELDS]) -> Counters {
        Counters {
            nat_free_head: a[0],
            nat_watermark: a[1],
            pat_free_head: a[2],
            pat_watermark: a[3],
            next_generation: a[4],
            inode_count: a[5],
            reserved_pages: a[6],
            live_pages: a[7],
            empty_segments: a[8],
        }
    }
}

/// One decoded roll-forward page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollForwardPage {
    /// The checkpoint being built when it was written (one after the
    /// newest durable one).
    pub checkpoint: CheckpointNo,
    /// Its place in its set, from 0.
    pub part: u32,
    /// [`LAST`] on the set's last page.
    pub flags: u32,
    /// The counters at the fsync (the same on every page of a set).
    pub counters: Counters,
    /// Its changes (at most [`CAPACITY`]).
    pub changes: Vec<Change>,
}

impl RollForwardPage {
    /// Is it the last page of its set?
    pub fn is_last(&self) -> bool {
        self.flags & LAST != 0
    }

    /// Cuts `changes` into the pages of one set (at least one page).
    pub fn set_of(
        checkpoint: CheckpointNo,
        counters: Counters,
        changes: &[Change],
    ) -> Vec<RollForwardPage> {
        let mut pages: Vec<RollForwardPage> = changes
            .chunks(CAPACITY)
            .enumerate()
            .map(|(i, chunk)| RollForwardPage {
                checkpoint,
                part: i as u32,
                flags: 0,
                counters,
                changes: chunk.to_vec(),
            })
            .collect();
        if pages.is_empty() {
            pages.push(RollForwardPage {
                checkpoint,
                counters,
                ..RollForwardPage::default()
            });
        }
        if let Some(last) = pages.last_mut() {
            last.flags |= LAST;
        }
        pages
    }

    /// Encodes the page.
    pub fn encode(&self) -> Box<Page> {
        let mut page = zero_page();
        let mut w = Writer::new(&mut page[..]);
        w.bytes(off::MAGIC, &MAGIC);
        w.u64(off::CHECKPOINT_NO, self.checkpoint.0);
        w.u32(off::PART, self.part);
        w.u32(off::FLAGS, self.flags);
        let n = self.changes.len().min(CAPACITY);
        w.u32(off::COUNT, n as u32);
        for (i, v) in self.counters.as_array().into_iter().enumerate() {
            w.u64(off::COUNTERS + 8 * i, v);
        }
        for (i, c) in self.changes.iter().take(n).enumerate() {
            let at = HEADER + i * CHANGE_SIZE;
            w.u8(at + change_off::TABLE, c.target.code());
            w.u64(at + change_off::INDEX, c.index);
            w.bytes(at + change_off::ENTRY, &c.entry[..ENTRY_SIZE]);
        }
        let crc = crc32(&page[off::CHECKPOINT_NO..]);
        Writer::new(&mut page[..]).u32(off::CRC, crc);
        page
    }

    /// Decodes a page read at `addr`.
    pub fn decode(page: &[u8], addr: PageAddr) -> Result<RollForwardPage> {
        let r = Reader::new(page, "roll-forward page", addr);
        r.check(r.bytes(off::MAGIC, 4)? == MAGIC, || "bad magic".into())?;
        let (want, found) = (r.u32(off::CRC)?, crc32(&page[off::CHECKPOINT_NO..]));
        r.check(want == found, || {
            format!("checksum mismatch (expected {want:#010x}, found {found:#010x})")
        })?;
        let n = r.u32(off::COUNT)? as usize;
        r.check(n <= CAPACITY, || format!("{n} changes, at most {CAPACITY}"))?;
        let mut counters = [0u64; Counters::FIELDS];
        for (i, v) in counters.iter_mut().enumerate() {
            *v = r.u64(off::COUNTERS + 8 * i)?;
        }
        let mut changes = Vec::with_capacity(n);
        for i in 0..n {
            let at = HEADER + i * CHANGE_SIZE;
            let code = r.u8(at + change_off::TABLE)?;
            let target = Target::from_code(code)
                .ok_or_else(|| r.corrupt(format!("unknown table {code}")))?;
            let mut entry = ZERO_ENTRY;
            entry[..ENTRY_SIZE].copy_from_slice(r.bytes(at + change_off::ENTRY, ENTRY_SIZE)?);
            changes.push(Change {
                target,
                index: r.u64(at + change_off::INDEX)?,
                entry,
            });
        }
        Ok(RollForwardPage {
            checkpoint: CheckpointNo(r.u64(off::CHECKPOINT_NO)?),
            part: r.u32(off::PART)?,
            flags: r.u32(off::FLAGS)?,
            counters: Counters::from_array(counters),
            changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(i: u64) -> Change {
        let mut entry = ZERO_ENTRY;
        entry[0] = i as u8;
        entry[15] = 0xAB;
        let target = [
            Target::NodeAddress,
            Target::PageAddress,
            Target::SegmentUsage,
        ][i as usize % 3];
        Change {
            target,
            index: i * 1000,
            entry,
        }
    }

    #[test]
    fn sets_round_trip_and_end_with_last() {
        let counters = Counters {
            nat_free_head: 1,
            nat_watermark: 2,
            pat_free_head: 3,
            pat_watermark: 4,
            next_generation: 5,
            inode_count: 6,
            reserved_pages: 7,
            live_pages: 8,
            empty_segments: 9,
        };
        let changes: Vec<Change> = (0..CAPACITY as u64 + 3).map(change).collect();
        let set = RollForwardPage::set_of(CheckpointNo(12), counters, &changes);
        assert_eq!(set.len(), 2);
        assert!(!set[0].is_last() && set[1].is_last());
        for p in &set {
            let back = RollForwardPage::decode(&p.encode()[..], PageAddr(3)).expect("decode");
            assert_eq!(&back, p);
        }
        let empty = RollForwardPage::set_of(CheckpointNo(1), counters, &[]);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].is_last());
    }

    #[test]
    fn every_byte_flip_is_refused() {
        let set = RollForwardPage::set_of(CheckpointNo(3), Counters::default(), &[change(1)]);
        let page = set[0].encode();
        for at in (0..HEADER + CHANGE_SIZE).chain([PAGE_SIZE - 1]) {
            let mut bad = page.clone();
            bad[at] ^= 0x10;
            assert!(
                RollForwardPage::decode(&bad[..], PageAddr(1)).is_err(),
                "flip at byte {at} went unnoticed"
            );
        }
    }
}
