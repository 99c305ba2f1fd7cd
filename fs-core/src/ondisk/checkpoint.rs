//! The checkpoint: one page naming a consistent root of the whole
//! filesystem: the tables, the log position to continue from, and the
//! counters. It is always the last page written by a commit.

use crate::codec::{crc32_skipping, Reader, Writer};
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, Nid, PageAddr, SegmentNo, Vpn, PACK_SLOTS};
use crate::layout::{zero_page, Geometry, Page};
use crate::meta_table::{Shape, TableRoot};
use crate::node_table::id_limit;
use crate::page_table::vpn_limit;

/// Largest value of a number that grows by one per event (checkpoint
/// numbers, record sequence numbers, inode generations): at a billion
/// events a second it takes 292 years to get there, and a reader that
/// accepts nothing larger can add to any of them without overflow.
pub const MAX_COUNTER: u64 = 1 << 63;

/// "PGLOG-CP" in ASCII.
pub const MAGIC: [u8; 8] = *b"PGLOG-CP";

/// How a sealed volume seals a checkpoint: everything after its magic and
/// number, up to its seal (the CRC covers the stored page).
pub fn sealing() -> crate::seal::PageSeal {
    crate::seal::PageSeal {
        domain: crate::seal::Domain::Checkpoint,
        region: off::TIME_NS..off::SEAL,
        at: off::SEAL,
    }
}

/// Byte offsets of the fields.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const CHECKPOINT_NO: usize = 8;
    pub const TIME_NS: usize = 16;
    pub const RECORD_SEQ: usize = 24;
    pub const HEAD: usize = 32;
    pub const HEAD_SEGMENT: usize = 40;
    pub const NEXT_SEGMENT: usize = 48;
    pub const NEXT_SEQ: usize = 56;
    pub const NAT_ROOT: usize = 64;
    pub const SUT_ROOT: usize = 96;
    pub const CHECKPOINT_LIST_ROOT: usize = 128;
    pub const SNAPSHOT_ROOT: usize = 160;
    pub const QUOTA_ROOT: usize = 192;
    pub const NAT_FREE_HEAD: usize = 224;
    pub const NAT_WATERMARK: usize = 232;
    pub const NEXT_GENERATION: usize = 240;
    pub const INODE_COUNT: usize = 248;
    /// On a sealed volume: the seal of bytes 16 to 4056.
    pub const SEAL: usize = 4056;
    pub const LIVE_PAGES: usize = 256;
    pub const EMPTY_SEGMENTS: usize = 264;
    pub const PREVIOUS: usize = 272;
    pub const RESERVED_PAGES: usize = 280;
    pub const FS_ID: usize = 288;
    pub const PAT_ROOT: usize = 296;
    pub const PAT_FREE_HEAD: usize = 328;
    pub const PAT_WATERMARK: usize = 336;
    pub const LIST_NEXT_SLOT: usize = 344;
    pub const PROTECT_SECS: usize = 352;
    pub const CRC: usize = 4092;
}

/// A decoded checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its number; each commit adds one.
    pub no: CheckpointNo,
    /// When it was taken (ns since the epoch).
    pub time_ns: i64,
    /// Sequence number of the log record holding this page.
    pub record_seq: u64,
    /// Where the next log record goes.
    pub head: PageAddr,
    /// Segment holding `head`.
    pub head_segment: SegmentNo,
    /// Segment the log moves to when the head segment is full.
    pub next_segment: SegmentNo,
    /// Sequence number of the next record.
    pub next_seq: u64,
    /// Node address table (its pages, and so its root, are named by
    /// virtual page numbers).
    pub nat_root: TableRoot,
    /// Segment usage table.
    pub sut_root: TableRoot,
    /// Checkpoint list: the retained checkpoints of the live root.
    pub checkpoint_list_root: TableRoot,
    /// Snapshot and clone roots (reserved; empty in version 2).
    pub snapshot_root: TableRoot,
    /// Quota tables (reserved; empty in version 2).
    pub quota_root: TableRoot,
    /// Head of the free node id list.
    pub nat_free_head: Nid,
    /// Node ids at or above this were never used.
    pub nat_watermark: Nid,
    /// Generation for the next inode created.
    pub next_generation: u64,
    /// Inodes in use.
    pub inode_count: u64,
    /// Live pages (sum over the segment usage table).
    pub live_pages: u64,
    /// Segments with no live page.
    pub empty_segments: u64,
    /// Page of the previous checkpoint (0 for the first).
    pub previous: PageAddr,
    /// Pages reserved by fallocate but not yet written.
    pub reserved_pages: u64,
    /// The filesystem's identity (the superblock's hash seed).
    pub fs_id: u64,
    /// Page address table.
    pub pat_root: TableRoot,
    /// Head of the free vpn list.
    pub pat_free_head: Vpn,
    /// Vpns at or above this were never used.
    pub pat_watermark: Vpn,
    /// The slot the checkpoint list's next record takes.
    pub list_next_slot: u64,
    /// The protection window: retained checkpoints younger than this are
    /// kept unless the filesystem is short of room (seconds).
    pub protect_secs: u64,
}

impl Checkpoint {
    /// Encodes the page, sealed with `sealer` on a sealed volume.
    pub fn encode_sealed(&self, sealer: Option<&crate::seal::Sealer>) -> Result<Box<Page>> {
        let mut page = self.encode();
        if let Some(s) = sealer {
            s.seal_page(&sealing(), &[self.no.0], &mut page[..])?;
            let crc = crc32_skipping(&page[..], off::CRC);
            Writer::new(&mut page[..]).u32(off::CRC, crc);
        }
        Ok(page)
    }

    /// Decodes the page read at `addr`, opening it with `sealer` on a
    /// sealed volume.
    pub fn decode_sealed(
        page: &[u8],
        addr: PageAddr,
        sealer: Option<&crate::seal::Sealer>,
    ) -> Result<Checkpoint> {
        let r = Checkpoint::checked(page, addr)?;
        let Some(s) = sealer else {
            return Checkpoint::fields(&r);
        };
        let no = r.u64(off::CHECKPOINT_NO)?;
        let mut open = zero_page();
        open.copy_from_slice(page);
        let what = || format!("checkpoint {no}");
        s.open_page(&sealing(), &[no], &mut open[..], (&what, addr))?;
        Checkpoint::fields(&Reader::new(&open[..], "checkpoint", addr))
    }

    /// Encodes the page (in the clear).
    pub fn encode(&self) -> Box<Page> {
        let mut page = zero_page();
        let mut w = Writer::new(&mut page[..]);
        w.bytes(off::MAGIC, &MAGIC);
        w.u64(off::CHECKPOINT_NO, self.no.0);
        w.i64(off::TIME_NS, self.time_ns);
        w.u64(off::RECORD_SEQ, self.record_seq);
        w.addr(off::HEAD, self.head);
        w.u64(off::HEAD_SEGMENT, self.head_segment.0);
        w.u64(off::NEXT_SEGMENT, self.next_segment.0);
        w.u64(off::NEXT_SEQ, self.next_seq);
        self.nat_root.encode(&mut w, off::NAT_ROOT);
        self.sut_root.encode(&mut w, off::SUT_ROOT);
        self.checkpoint_list_root
            .encode(&mut w, off::CHECKPOINT_LIST_ROOT);
        self.snapshot_root.encode(&mut w, off::SNAPSHOT_ROOT);
        self.quota_root.encode(&mut w, off::QUOTA_ROOT);
        w.u64(off::NAT_FREE_HEAD, self.nat_free_head.0);
        w.u64(off::NAT_WATERMARK, self.nat_watermark.0);
        w.u64(off::NEXT_GENERATION, self.next_generation);
        w.u64(off::INODE_COUNT, self.inode_count);
        w.u64(off::LIVE_PAGES, self.live_pages);
        w.u64(off::EMPTY_SEGMENTS, self.empty_segments);
        w.addr(off::PREVIOUS, self.previous);
        w.u64(off::RESERVED_PAGES, self.reserved_pages);
        w.u64(off::FS_ID, self.fs_id);
        self.pat_root.encode(&mut w, off::PAT_ROOT);
        w.u64(off::PAT_FREE_HEAD, self.pat_free_head.0);
        w.u64(off::PAT_WATERMARK, self.pat_watermark.0);
        w.u64(off::LIST_NEXT_SLOT, self.list_next_slot);
        w.u64(off::PROTECT_SECS, self.protect_secs);
        let crc = crc32_skipping(&page[..], off::CRC);
        Writer::new(&mut page[..]).u32(off::CRC, crc);
        page
    }

    /// Decodes the checkpoint page read at `addr`.
    pub fn decode(page: &[u8], addr: PageAddr) -> Result<Checkpoint> {
        Checkpoint::fields(&Checkpoint::checked(page, addr)?)
    }

    /// The page read at `addr`, its magic and checksum checked (the
    /// checksum is of the page as stored: sealed, on a sealed volume).
    fn checked(page: &[u8], addr: PageAddr) -> Result<Reader<'_>> {
        let r = Reader::new(page, "checkpoint", addr);
        r.check(r.bytes(off::MAGIC, 8)? == MAGIC, || "bad magic".into())?;
        let stored = r.u32(off::CRC)?;
        let computed = crc32_skipping(page, off::CRC);
        r.check(stored == computed, || {
            format!("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
        })?;
        Ok(r)
    }

    /// The fields of a checked (and opened) page.
    fn fields(r: &Reader<'_>) -> Result<Checkpoint> {
        Ok(Checkpoint {
            no: CheckpointNo(r.u64(off::CHECKPOINT_NO)?),
            time_ns: r.i64(off::TIME_NS)?,
            record_seq: r.u64(off::RECORD_SEQ)?,
            head: r.addr(off::HEAD)?,
            head_segment: SegmentNo(r.u64(off::HEAD_SEGMENT)?),
            next_segment: SegmentNo(r.u64(off::NEXT_SEGMENT)?),
            next_seq: r.u64(off::NEXT_SEQ)?,
            nat_root: TableRoot::decode(r, off::NAT_ROOT)?,
            sut_root: TableRoot::decode(r, off::SUT_ROOT)?,
            checkpoint_list_root: TableRoot::decode(r, off::CHECKPOINT_LIST_ROOT)?,
            snapshot_root: TableRoot::decode(r, off::SNAPSHOT_ROOT)?,
            quota_root: TableRoot::decode(r, off::QUOTA_ROOT)?,
            nat_free_head: Nid(r.u64(off::NAT_FREE_HEAD)?),
            nat_watermark: Nid(r.u64(off::NAT_WATERMARK)?),
            next_generation: r.u64(off::NEXT_GENERATION)?,
            inode_count: r.u64(off::INODE_COUNT)?,
            live_pages: r.u64(off::LIVE_PAGES)?,
            empty_segments: r.u64(off::EMPTY_SEGMENTS)?,
            previous: r.addr(off::PREVIOUS)?,
            reserved_pages: r.u64(off::RESERVED_PAGES)?,
            fs_id: r.u64(off::FS_ID)?,
            pat_root: TableRoot::decode(r, off::PAT_ROOT)?,
            pat_free_head: Vpn(r.u64(off::PAT_FREE_HEAD)?),
            pat_watermark: Vpn(r.u64(off::PAT_WATERMARK)?),
            list_next_slot: r.u64(off::LIST_NEXT_SLOT)?,
            protect_secs: r.u64(off::PROTECT_SECS)?,
        })
    }
}

impl Checkpoint {
    /// Checks every count and bound against the filesystem's geometry
    /// before anything sizes a loop or an allocation by it: a valid
    /// checksum proves the page is what was written, not that what was
    /// written makes sense. The error names the first field that does not
    /// fit. (`addr` is where the page was read, for the message; the
    /// tables of a `sealed` volume have their own fanouts.)
    pub fn check_bounds(&self, geo: &Geometry, sealed: bool, addr: PageAddr) -> Result<()> {
        self.bounds(geo, sealed)
            .map_err(|detail| Error::corrupt(format!("checkpoint {}", self.no), addr, detail))
    }

    fn bounds(&self, geo: &Geometry, sealed: bool) -> std::result::Result<(), String> {
        let area = geo.segment_area_pages();
        let segments = geo.segment_count;
        let limit = id_limit(geo).0;
        let w = self.nat_watermark.0;
        let counters = [
            ("no", self.no.0),
            ("next_seq", self.next_seq),
            ("next_generation", self.next_generation),
        ];
        for (field, v) in counters {
            at_most(field, v, MAX_COUNTER, "2^63")?;
        }
        if self.record_seq.checked_add(1) != Some(self.next_seq) {
            return Err(format!(
                "next_seq {} does not follow record_seq {}",
                self.next_seq, self.record_seq
            ));
        }
        below(
            "head_segment",
            self.head_segment.0,
            segments,
            "the segment count",
        )?;
        below(
            "next_segment",
            self.next_segment.0,
            segments,
            "the segment count",
        )?;
        let start = geo.segment_start(self.head_segment).0;
        let end = start + u64::from(geo.pages_per_segment);
        if self.head.0 < start || self.head.0 > end {
            return Err(format!(
                "head {} lies outside head_segment {} (pages {start} to {end})",
                self.head, self.head_segment
            ));
        }
        at_most("list_next_slot", self.list_next_slot, MAX_COUNTER, "2^63")?;
        for (field, a) in [
            ("sut_root", self.sut_root.addr),
            ("pat_root", self.pat_root.addr),
            ("checkpoint_list_root", self.checkpoint_list_root.addr),
            ("previous", self.previous),
        ] {
            if !a.is_none() && !geo.contains(a) {
                return Err(format!("{field} page {a} is outside the segment area"));
            }
        }
        let units = self.pat_watermark.0;
        let most_units = vpn_limit(geo).0;
        if units < Vpn::FIRST.0 || units > most_units {
            return Err(format!(
                "pat_watermark {units} is not between {} and {most_units} (one unit per page of the segment area)",
                Vpn::FIRST.0
            ));
        }
        below(
            "pat_free_head",
            self.pat_free_head.0,
            units,
            "pat_watermark",
        )?;
        below("nat_root", self.nat_root.addr.0, units, "pat_watermark")?;
        let need = Shape::of(sealed, true).depth_for(units);
        if self.pat_root.depth != need {
            return Err(format!(
                "page address table depth {} does not match pat_watermark {units} (which needs depth {need})",
                self.pat_root.depth
            ));
        }
        if w < Nid::FIRST_FREE.0 || w > limit {
            return Err(format!(
                "nat_watermark {w} is not between {} and {limit} (one node id per page of the segment area)",
                Nid::FIRST_FREE.0
            ));
        }
        below("nat_free_head", self.nat_free_head.0, w, "nat_watermark")?;
        let need = Shape::of(sealed, false).depth_for(w);
        if self.nat_root.depth != need {
            return Err(format!(
                "node address table depth {} does not match nat_watermark {w} (which needs depth {need})",
                self.nat_root.depth
            ));
        }
        let most = Shape::of(sealed, false).depth_for(segments);
        if self.sut_root.depth > most {
            return Err(format!(
                "segment usage table depth {} is deeper than {segments} segments need ({most})",
                self.sut_root.depth
            ));
        }
        let inodes = (w - 1).saturating_mul(PACK_SLOTS);
        at_most(
            "inode_count",
            self.inode_count,
            inodes,
            "16 per node id below nat_watermark",
        )?;
        at_most(
            "live_pages",
            self.live_pages,
            area,
            "the pages of the segment area",
        )?;
        at_most(
            "reserved_pages",
            self.reserved_pages,
            area,
            "the pages of the segment area",
        )?;
        at_most(
            "empty_segments",
            self.empty_segments,
            segments,
            "the segment count",
        )
    }
}

fn at_most(field: &str, v: u64, max: u64, what: &str) -> std::result::Result<(), String> {
    if v <= max {
        Ok(())
    } else {
        Err(format!("{field} {v} is over {what} ({max})"))
    }
}

fn below(field: &str, v: u64, bound: u64, what: &str) -> std::result::Result<(), String> {
    if v < bound {
        Ok(())
    } else {
        Err(format!("{field} {v} is not below {what} ({bound})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::PAGE_SIZE;

    fn sample() -> Checkpoint {
        Checkpoint {
            no: CheckpointNo(12),
            time_ns: 5,
            record_seq: 77,
            head: PageAddr(1000),
            head_segment: SegmentNo(1),
            next_segment: SegmentNo(2),
            next_seq: 78,
            nat_root: TableRoot {
                addr: PageAddr(9),
                crc: 0xAA,
                depth: 1,
            },
            sut_root: TableRoot {
                addr: PageAddr(901),
                crc: 0xBB,
                depth: 0,
            },
            nat_free_head: Nid(40),
            nat_watermark: Nid(50),
            next_generation: 9,
            inode_count: 33,
            live_pages: 800,
            empty_segments: 6,
            previous: PageAddr(700),
            reserved_pages: 3,
            fs_id: 0x5EED,
            pat_root: TableRoot {
                addr: PageAddr(902),
                crc: 0xCC,
                depth: 0,
            },
            pat_free_head: Vpn(60),
            pat_watermark: Vpn(70),
            ..Checkpoint::default()
        }
    }

    #[test]
    fn round_trip() {
        let cp = sample();
        assert_eq!(
            Checkpoint::decode(&cp.encode()[..], PageAddr(3)).expect("decode"),
            cp
        );
    }

    #[test]
    fn golden_offsets() {
        let p = sample().encode();
        assert_eq!(&p[0..8], b"PGLOG-CP");
        assert_eq!(&p[8..16], &12u64.to_le_bytes());
        assert_eq!(&p[24..32], &77u64.to_le_bytes());
        assert_eq!(&p[32..40], &1000u64.to_le_bytes());
        assert_eq!(&p[56..64], &78u64.to_le_bytes());
        assert_eq!(&p[64..72], &9u64.to_le_bytes());
        assert_eq!(&p[72..76], &0xAAu32.to_le_bytes());
        assert_eq!(p[76], 1);
        assert_eq!(&p[96..104], &901u64.to_le_bytes());
        assert_eq!(&p[224..232], &40u64.to_le_bytes());
        assert_eq!(&p[232..240], &50u64.to_le_bytes());
        assert_eq!(&p[264..272], &6u64.to_le_bytes());
        assert_eq!(&p[272..280], &700u64.to_le_bytes());
        assert_eq!(&p[280..288], &3u64.to_le_bytes());
        assert_eq!(&p[288..296], &0x5EEDu64.to_le_bytes());
        assert_eq!(&p[296..304], &902u64.to_le_bytes());
        assert_eq!(&p[328..336], &60u64.to_le_bytes());
        assert_eq!(&p[336..344], &70u64.to_le_bytes());
    }

    #[test]
    fn counts_out_of_the_geometry_are_refused_by_name() {
        let geo = Geometry {
            pages_per_segment: 512,
            segment_count: 100,
            first_segment_page: 256,
        };
        let mut cp = sample();
        cp.nat_root.depth = 0;
        cp.check_bounds(&geo, false, PageAddr(3))
            .expect("sample fits");
        let area = geo.segment_area_pages();
        type Break = fn(&mut Checkpoint, u64);
        let cases: [(&str, Break); 16] = [
            ("pat_watermark", |c, a| c.pat_watermark = Vpn(a + 2)),
            ("pat_free_head", |c, _| c.pat_free_head = c.pat_watermark),
            ("nat_root", |c, _| {
                c.nat_root.addr = PageAddr(c.pat_watermark.0)
            }),
            ("pat_root", |c, _| c.pat_root.addr = PageAddr(3)),
            ("nat_watermark", |c, _| c.nat_watermark = Nid(1 << 32)),
            ("nat_watermark", |c, a| c.nat_watermark = Nid(a + 3)),
            ("nat_free_head", |c, _| c.nat_free_head = c.nat_watermark),
            ("depth", |c, _| c.nat_root.depth = 1),
            ("inode_count", |c, _| c.inode_count = 16 * 49 + 1),
            ("live_pages", |c, a| c.live_pages = a + 1),
            ("empty_segments", |c, _| c.empty_segments = 101),
            ("reserved_pages", |c, _| c.reserved_pages = u64::MAX),
            ("head_segment", |c, _| c.head_segment = SegmentNo(100)),
            ("head", |c, _| c.head = PageAddr(256 + 512 * 2 + 1)),
            ("next_seq", |c, _| c.next_seq = c.record_seq + 2),
            ("no", |c, _| c.no = CheckpointNo(u64::MAX)),
        ];
        for (field, f) in cases {
            let mut bad = cp.clone();
            f(&mut bad, area);
            let err = bad.check_bounds(&geo, false, PageAddr(3)).expect_err(field);
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn every_byte_flip_is_detected() {
        let p = sample().encode();
        for i in 0..PAGE_SIZE {
            let mut bad = p.clone();
            bad[i] ^= 0x10;
            assert!(
                Checkpoint::decode(&bad[..], PageAddr(0)).is_err(),
                "flip at {i}"
            );
        }
    }
}
