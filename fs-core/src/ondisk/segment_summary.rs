//! The segment summary: the first page of every log record (partial
//! segment), naming the owner of every payload page and chaining records by
//! sequence number so that recovery can tell a valid tail from garbage.

use crate::codec::{crc32_skipping, Reader, Writer};
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, PageAddr, SegmentNo, TransformId, Vpn};
use crate::layout::{zero_page, Page, PAGE_SIZE};

/// "PGLOG-LR" in ASCII.
pub const MAGIC: [u8; 8] = *b"PGLOG-LR";
/// Bytes of the header at the start of the summary page.
pub const HEADER_SIZE: usize = 64;
/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 40;
/// Payload pages one summary page can describe.
pub const MAX_ENTRIES: usize = (PAGE_SIZE - HEADER_SIZE) / ENTRY_SIZE;
/// On a sealed volume the first entry's place holds the seal (32 bytes,
/// then 8 reserved), and the entries after it are sealed.
pub const SEAL_AT: usize = HEADER_SIZE;
/// Where a sealed summary's entries start.
pub const SEALED_ENTRIES_AT: usize = HEADER_SIZE + ENTRY_SIZE;
/// Payload units one summary page of a sealed volume can describe.
pub const MAX_SEALED_ENTRIES: usize = MAX_ENTRIES - 1;

/// Entries a summary page holds on a volume sealed or not.
pub fn max_entries(sealed: bool) -> usize {
    if sealed {
        MAX_SEALED_ENTRIES
    } else {
        MAX_ENTRIES
    }
}

/// How a sealed volume seals a summary: its entries; the header stays in
/// the clear (recovery reads it to walk the log) and is bound to them.
fn sealing() -> crate::seal::PageSeal {
    crate::seal::PageSeal {
        domain: crate::seal::Domain::Summary,
        region: SEALED_ENTRIES_AT..PAGE_SIZE,
        at: SEAL_AT,
    }
}

/// Pages one stored unit may take: a compressed cluster of at most 16
/// pages is never stored in more.
pub const MAX_UNIT_PAGES: u64 = 16;

/// Byte offsets of the header fields.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const SEQ: usize = 8;
    pub const CHECKPOINT_NO: usize = 16;
    pub const NEXT_SEGMENT: usize = 24;
    pub const TIME_NS: usize = 32;
    pub const SUMMARY_PAGES: usize = 40;
    pub const TAG_PAGES: usize = 42;
    pub const ENTRY_COUNT: usize = 44;
    pub const FLAGS: usize = 46;
    pub const FS_ID: usize = 48;
    pub const RESERVED: usize = 56;
    pub const CRC: usize = 60;
}

/// Byte offsets inside one entry.
pub mod entry_off {
    pub const KIND: usize = 0;
    pub const FLAGS: usize = 1;
    pub const TRANSFORM: usize = 2;
    pub const STORED_LEN: usize = 4;
    pub const OWNER: usize = 8;
    pub const INDEX: usize = 16;
    pub const CRC: usize = 24;
    pub const RESERVED: usize = 28;
    pub const VPN: usize = 32;
}

/// Record flag: the last payload page is a checkpoint.
pub const FLAG_CHECKPOINT: u16 = 1;

/// What a payload page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageKind {
    /// File data: owner = inode, index = page index in the file.
    Data,
    /// A node: owner = inode it belongs to, index = node id.
    Node,
    /// A page of a metadata table: owner = table id, index = level << 56 | page index.
    Table,
    /// A checkpoint page: owner = 0, index = checkpoint number.
    Checkpoint,
    /// A page of a deadlist: owner = the retained checkpoint it belongs
    /// to when written, index = 0.
    Deadlist,
    /// A roll-forward page (an fsync's table changes): owner = its part
    /// in its set, index = the checkpoint being built.
    RollForward,
}

impl PageKind {
    /// The kind's code in a summary entry.
    pub fn code(self) -> u8 {
        match self {
            PageKind::Data => 1,
            PageKind::Node => 2,
            PageKind::Table => 3,
            PageKind::Checkpoint => 4,
            PageKind::Deadlist => 5,
            PageKind::RollForward => 6,
        }
    }

    fn from_code(code: u8) -> Option<PageKind> {
        Some(match code {
            1 => PageKind::Data,
            2 => PageKind::Node,
            3 => PageKind::Table,
            4 => PageKind::Checkpoint,
            5 => PageKind::Deadlist,
            6 => PageKind::RollForward,
            _ => return None,
        })
    }
}

/// One payload page as the summary describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What the page is.
    pub kind: PageKind,
    /// Entry flags (none defined in version 2).
    pub flags: u8,
    /// Transform chain that produced the stored bytes.
    pub transform: TransformId,
    /// Stored bytes (4096 for a raw page): the unit takes as many whole
    /// pages as they need, and the rest of its last page is zero.
    pub stored_len: u32,
    /// Owner (inode, table id), see [`PageKind`].
    pub owner: u64,
    /// Index within the owner, see [`PageKind`].
    pub index: u64,
    /// CRC-32 of the stored page.
    pub crc: u32,
    /// The unit's virtual page number (data, nodes and node address table
    /// pages); 0 for pages addressed physically (the current-only tables,
    /// the checkpoint).
    pub vpn: Vpn,
}

impl Entry {
    /// Pages the unit takes.
    pub fn pages(&self) -> u64 {
        unit_pages(self.stored_len as usize)
    }

    /// A raw (untransformed) page.
    pub fn raw(kind: PageKind, owner: u64, index: u64) -> Entry {
        Entry {
            kind,
            flags: 0,
            transform: TransformId(0),
            stored_len: PAGE_SIZE as u32,
            owner,
            index,
            crc: 0,
            vpn: Vpn::NONE,
        }
    }

    /// A raw page of unit `vpn`.
    pub fn unit(kind: PageKind, owner: u64, index: u64, vpn: Vpn) -> Entry {
        Entry {
            vpn,
            ..Entry::raw(kind, owner, index)
        }
    }
}

/// Pages a unit of `len` stored bytes takes.
pub fn unit_pages(len: usize) -> u64 {
    (len.div_ceil(PAGE_SIZE) as u64).max(1)
}

/// The decoded summary of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Sequence number: the previous record's plus one.
    pub seq: u64,
    /// The checkpoint this record belongs to (the next one to be written).
    pub checkpoint_no: CheckpointNo,
    /// Where the log continues when the current segment is full.
    pub next_segment: SegmentNo,
    /// When the record was written (ns since the epoch).
    pub time_ns: i64,
    /// Pages of AEAD tags after the summary (0 in version 2).
    pub tag_pages: u16,
    /// Record flags.
    pub flags: u16,
    /// The filesystem's identity (the superblock's hash seed): a record
    /// left by an earlier filesystem on the same device never matches.
    pub fs_id: u64,
    /// One entry per payload page.
    pub entries: Vec<Entry>,
}

impl Summary {
    /// Pages the record occupies: summary, tag pages and payload.
    pub fn record_pages(&self) -> u64 {
        1 + u64::from(self.tag_pages) + self.payload_pages()
    }

    /// Payload pages: every unit's, in entry order.
    pub fn payload_pages(&self) -> u64 {
        self.entries.iter().map(Entry::pages).sum()
    }

    /// Each entry with the offset of its unit's first page from the start
    /// of the record (the summary page is offset 0). The one place that
    /// says where a unit is in its record: recovery, the cleaner and the
    /// checker all read records through it.
    pub fn units(&self) -> impl Iterator<Item = (u64, &Entry)> {
        let mut at = 1 + u64::from(self.tag_pages);
        self.entries.iter().map(move |e| {
            let off = at;
            at += e.pages();
            (off, e)
        })
    }

    /// True when the record ends with a checkpoint page.
    pub fn is_checkpoint(&self) -> bool {
        self.flags & FLAG_CHECKPOINT != 0
    }

    /// The header fields a sealed summary of `count` entries binds them to.
    fn bound(&self, count: usize) -> [u64; 8] {
        [
            self.seq,
            self.checkpoint_no.0,
            self.next_segment.0,
            self.time_ns as u64,
            u64::from(self.tag_pages),
            count as u64,
            u64::from(self.flags),
            self.fs_id,
        ]
    }

    /// Encodes the summary page, sealed with `sealer` on a sealed volume.
    pub fn encode_sealed(&self, sealer: Option<&crate::seal::Sealer>) -> Result<Box<Page>> {
        let Some(s) = sealer else {
            return Ok(self.encode());
        };
        let mut page = self.encode_at(SEALED_ENTRIES_AT);
        s.seal_page(&sealing(), &self.bound(self.entries.len()), &mut page[..])?;
        let crc = crc32_skipping(&page[..], off::CRC);
        Writer::new(&mut page[..]).u32(off::CRC, crc);
        Ok(page)
    }

    /// Decodes a summary page as [`Summary::decode`] does, opening it with
    /// `sealer` on a sealed volume. A page that does not authenticate is
    /// "no valid record here" too: after a crash the log's tail may hold
    /// anything, and only a record that opens is one of ours.
    pub fn decode_sealed(
        page: &[u8],
        addr: PageAddr,
        sealer: Option<&crate::seal::Sealer>,
    ) -> Result<Option<Summary>> {
        let Some(s) = sealer else {
            return Summary::decode(page, addr);
        };
        let Some(mut head) = Summary::decode_at(page, addr, 0)? else {
            return Ok(None);
        };
        let count = usize::from(Reader::new(page, "segment summary", addr).u16(off::ENTRY_COUNT)?);
        if count > MAX_SEALED_ENTRIES {
            return Err(Error::corrupt(
                "segment summary",
                addr,
                format!("{count} entries, at most {MAX_SEALED_ENTRIES} fit a sealed summary"),
            ));
        }
        let bound = head.bound(count);
        let mut open = zero_page();
        open.copy_from_slice(page);
        let what = || format!("segment summary (record {})", head.seq);
        if s.open_page(&sealing(), &bound, &mut open[..], (&what, addr))
            .is_err()
        {
            return Ok(None);
        }
        head.entries = Summary::entries_at(
            &Reader::new(&open[..], "segment summary", addr),
            SEALED_ENTRIES_AT,
            count,
        )?;
        Ok(Some(head))
    }

    /// Encodes the summary page (in the clear).
    pub fn encode(&self) -> Box<Page> {
        self.encode_at(HEADER_SIZE)
    }

    fn encode_at(&self, first: usize) -> Box<Page> {
        let mut page = zero_page();
        let mut w = Writer::new(&mut page[..]);
        w.bytes(off::MAGIC, &MAGIC);
        w.u64(off::SEQ, self.seq);
        w.u64(off::CHECKPOINT_NO, self.checkpoint_no.0);
        w.u64(off::NEXT_SEGMENT, self.next_segment.0);
        w.i64(off::TIME_NS, self.time_ns);
        w.u16(off::SUMMARY_PAGES, 1);
        w.u16(off::TAG_PAGES, self.tag_pages);
        w.u16(off::ENTRY_COUNT, self.entries.len() as u16);
        w.u16(off::FLAGS, self.flags);
        w.u64(off::FS_ID, self.fs_id);
        for (i, e) in self.entries.iter().enumerate() {
            let base = first + i * ENTRY_SIZE;
            w.u8(base + entry_off::KIND, e.kind.code());
            w.u8(base + entry_off::FLAGS, e.flags);
            w.u16(base + entry_off::TRANSFORM, e.transform.0);
            w.u32(base + entry_off::STORED_LEN, e.stored_len);
            w.u64(base + entry_off::OWNER, e.owner);
            w.u64(base + entry_off::INDEX, e.index);
            w.u32(base + entry_off::CRC, e.crc);
            w.u64(base + entry_off::VPN, e.vpn.0);
        }
        let crc = crc32_skipping(&page[..], off::CRC);
        Writer::new(&mut page[..]).u32(off::CRC, crc);
        page
    }

    /// Decodes a summary page read at `addr`. `Ok(None)` means "no valid
    /// record here" (wrong magic or checksum: the end of the log, or a torn
    /// write); `Err` is a record with a valid checksum that makes no sense.
    pub fn decode(page: &[u8], addr: PageAddr) -> Result<Option<Summary>> {
        let count = usize::from(Reader::new(page, "segment summary", addr).u16(off::ENTRY_COUNT)?);
        Summary::decode_at(page, addr, count)
    }

    /// The header, and the first `count` entries (from [`HEADER_SIZE`]).
    fn decode_at(page: &[u8], addr: PageAddr, count: usize) -> Result<Option<Summary>> {
        let r = Reader::new(page, "segment summary", addr);
        if r.bytes(off::MAGIC, 8)? != MAGIC || r.u32(off::CRC)? != crc32_skipping(page, off::CRC) {
            return Ok(None);
        }
        let summary_pages = r.u16(off::SUMMARY_PAGES)?;
        r.check(summary_pages == 1, || {
            format!("{summary_pages} summary pages (version 2 has 1)")
        })?;
        let all = usize::from(r.u16(off::ENTRY_COUNT)?);
        r.check(all <= MAX_ENTRIES, || {
            format!("{all} entries, at most {MAX_ENTRIES} fit")
        })?;
        let entries = Summary::entries_at(&r, HEADER_SIZE, count)?;
        Ok(Some(Summary {
            seq: r.u64(off::SEQ)?,
            checkpoint_no: CheckpointNo(r.u64(off::CHECKPOINT_NO)?),
            next_segment: SegmentNo(r.u64(off::NEXT_SEGMENT)?),
            time_ns: r.i64(off::TIME_NS)?,
            tag_pages: r.u16(off::TAG_PAGES)?,
            flags: r.u16(off::FLAGS)?,
            fs_id: r.u64(off::FS_ID)?,
            entries,
        }))
    }

    /// The `count` entries from offset `first`.
    fn entries_at(r: &Reader<'_>, first: usize, count: usize) -> Result<Vec<Entry>> {
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let base = first + i * ENTRY_SIZE;
            let code = r.u8(base + entry_off::KIND)?;
            let kind = PageKind::from_code(code)
                .ok_or_else(|| r.corrupt(format!("entry {i} has unknown page kind {code}")))?;
            entries.push(Entry {
                kind,
                flags: r.u8(base + entry_off::FLAGS)?,
                transform: TransformId(r.u16(base + entry_off::TRANSFORM)?),
                stored_len: {
                    let len = r.u32(base + entry_off::STORED_LEN)?;
                    r.check(
                        len > 0 && unit_pages(len as usize) <= MAX_UNIT_PAGES,
                        || format!("entry {i} stores {len} bytes (1 to {MAX_UNIT_PAGES} pages)"),
                    )?;
                    len
                },
                owner: r.u64(base + entry_off::OWNER)?,
                index: r.u64(base + entry_off::INDEX)?,
                crc: r.u32(base + entry_off::CRC)?,
                vpn: Vpn(r.u64(base + entry_off::VPN)?),
            });
        }
        Ok(entries)
    }
}

/// Walks the record chain of one segment of `pps` pages from its first page:
/// `summary_at(offset)` reads the page at a record start and says what
/// summary, if any, it holds; `each(offset, entry)` sees every unit (at its first page)
/// described. The chain ends at the first page that is not a valid summary
/// of this filesystem (`fs_id`), at a record that would overrun the
/// segment, or where sequence numbers stop growing or checkpoint numbers
/// go back: a record left by an earlier use of the segment, whose pages
/// nothing references any more. (The checkpoint rule catches what the
/// sequence rule cannot: records of the cleaner's head, numbered from 2^62,
/// left in a segment the main log reuses.)
pub fn walk_segment(
    pps: u32,
    fs_id: u64,
    summary_at: &mut dyn FnMut(u64) -> Option<Summary>,
    each: &mut dyn FnMut(u64, &Entry),
) {
    let mut off = 0u64;
    let mut last: Option<(u64, CheckpointNo)> = None;
    while crate::segment_writer::record_fits(off, pps) {
        let Some(s) = summary_at(off) else { break };
        let stale = last.is_some_and(|(seq, cp)| s.seq <= seq || s.checkpoint_no < cp);
        if s.fs_id != fs_id || stale {
            break;
        }
        let next = off + s.record_pages();
        if next > u64::from(pps) {
            break;
        }
        for (at, e) in s.units() {
            each(off + at, e);
        }
        last = Some((s.seq, s.checkpoint_no));
        off = next;
    }
}

/// Reads the record chain of segment `seg` from `dev`, one summary page at
/// a time (payload pages are not read), and walks it as [`walk_segment`]
/// does. Returns the summary pages read, and the read that failed and so
/// ended the chain early, if one did.
pub fn read_chain(
    dev: &dyn crate::device::BlockDevice,
    geo: &crate::layout::Geometry,
    (fs_id, sealer): (u64, Option<&crate::seal::Sealer>),
    seg: SegmentNo,
    each: &mut dyn FnMut(u64, &Entry),
) -> (u64, Option<(PageAddr, std::io::Error)>) {
    let start = geo.segment_start(seg);
    let mut page = zero_page();
    let (mut pages, mut failed) = (0, None);
    let mut summary_at = |off: u64| {
        let addr = start.offset(off);
        if let Err(e) = dev.read(addr, &mut page[..]) {
            failed = Some((addr, e));
            return None;
        }
        pages += 1;
        Summary::decode_sealed(&page[..], addr, sealer)
            .ok()
            .flatten()
    };
    walk_segment(geo.pages_per_segment, fs_id, &mut summary_at, each);
    (pages, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::crc32;

    fn sample() -> Summary {
        let mut e = Entry::unit(PageKind::Data, 42, 7, Vpn(0xABCD));
        e.crc = 0x1234_5678;
        Summary {
            seq: 99,
            checkpoint_no: CheckpointNo(3),
            next_segment: SegmentNo(17),
            time_ns: 123,
            tag_pages: 0,
            flags: FLAG_CHECKPOINT,
            fs_id: 0x5EED,
            entries: vec![
                e,
                Entry::raw(PageKind::Node, 42, 42),
                Entry::raw(PageKind::Checkpoint, 0, 3),
            ],
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let page = s.encode();
        assert_eq!(
            Summary::decode(&page[..], PageAddr(9)).expect("decode"),
            Some(s)
        );
    }

    #[test]
    fn golden_offsets() {
        let page = sample().encode();
        assert_eq!(&page[0..8], b"PGLOG-LR");
        assert_eq!(&page[8..16], &99u64.to_le_bytes());
        assert_eq!(&page[16..24], &3u64.to_le_bytes());
        assert_eq!(&page[24..32], &17u64.to_le_bytes());
        assert_eq!(&page[40..42], &1u16.to_le_bytes());
        assert_eq!(&page[44..46], &3u16.to_le_bytes());
        assert_eq!(&page[46..48], &1u16.to_le_bytes());
        assert_eq!(&page[48..56], &0x5EEDu64.to_le_bytes());
        // first entry
        assert_eq!(page[64], 1);
        assert_eq!(&page[68..72], &4096u32.to_le_bytes());
        assert_eq!(&page[72..80], &42u64.to_le_bytes());
        assert_eq!(&page[80..88], &7u64.to_le_bytes());
        assert_eq!(&page[88..92], &0x1234_5678u32.to_le_bytes());
        assert_eq!(&page[96..104], &0xABCDu64.to_le_bytes());
        // second entry starts 40 bytes on
        assert_eq!(page[104], 2);
        let mut zeroed = page.clone();
        zeroed[60..64].fill(0);
        assert_eq!(&page[60..64], &crc32(&zeroed[..]).to_le_bytes());
        assert_eq!(MAX_ENTRIES, 100);
    }

    #[test]
    fn every_byte_flip_is_not_a_record() {
        let page = sample().encode();
        for i in 0..PAGE_SIZE {
            let mut bad = page.clone();
            bad[i] ^= 1;
            let got = Summary::decode(&bad[..], PageAddr(0));
            assert!(matches!(got, Ok(None)), "flip at {i} accepted");
        }
    }

    #[test]
    fn zero_page_is_not_a_record() {
        assert!(matches!(
            Summary::decode(&[0u8; PAGE_SIZE], PageAddr(0)),
            Ok(None)
        ));
    }

    /// Records at offsets 0, 4 and 8 (three payload pages each): what the
    /// walk describes when the third is `third`.
    fn walked_with_third(third: Summary) -> Vec<u64> {
        let mut first = sample();
        first.seq = 10;
        let mut second = sample();
        second.seq = 11;
        let mut summary_at = |off: u64| match off {
            0 => Some(first.clone()),
            4 => Some(second.clone()),
            8 => Some(third.clone()),
            _ => None,
        };
        let mut seen = Vec::new();
        walk_segment(64, 0x5EED, &mut summary_at, &mut |off, _| seen.push(off));
        seen
    }

    #[test]
    fn chain_stops_at_records_of_an_earlier_use() {
        let mut next = sample();
        next.seq = 12;
        assert_eq!(walked_with_third(next.clone()).len(), 9);
        // A stale record: sequence not growing.
        let mut stale = next.clone();
        stale.seq = 5;
        assert_eq!(walked_with_third(stale).len(), 6);
        // A stale record of the cleaner's head: a larger sequence number
        // (from 2^62), but an older checkpoint.
        let mut cold = next;
        cold.seq = 1 << 62;
        cold.checkpoint_no = CheckpointNo(2);
        assert_eq!(walked_with_third(cold).len(), 6);
    }
}
