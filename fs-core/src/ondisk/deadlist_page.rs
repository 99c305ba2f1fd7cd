//! A deadlist page: part of the list of units a retained checkpoint holds
//! that the next retained checkpoint does not (ZFS's deadlists). Pages
//! are units (named by vpn, moved by the cleaner like any other) chained
//! newest first; each names the next by vpn and checksum.

use crate::codec::{crc32, Reader, Writer};
use crate::error::Result;
use crate::ids::{CheckpointNo, PageAddr, Vpn};
use crate::layout::{zero_page, Page, PAGE_SIZE};

/// "PGDL" in ASCII.
pub const MAGIC: [u8; 4] = *b"PGDL";
/// Header bytes.
pub const HEADER: usize = 32;
/// Bytes of one entry: vpn, birth.
pub const ENTRY_SIZE: usize = 16;
/// Entries one page holds.
pub const CAPACITY: usize = (PAGE_SIZE - HEADER) / ENTRY_SIZE;

/// Byte offsets of the header fields.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const COUNT: usize = 4;
    pub const NEXT: usize = 8;
    pub const NEXT_CRC: usize = 16;
    pub const CHECKPOINT_NO: usize = 24;
}

/// A dead unit: its vpn and the checkpoint that wrote it.
pub type DeadUnit = (Vpn, CheckpointNo);

/// One decoded deadlist page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadlistPage {
    /// The retained checkpoint the list belonged to when written.
    pub checkpoint: CheckpointNo,
    /// The next (older) page of the chain, and its checksum (0: none).
    pub next: (Vpn, u32),
    /// Its entries (at most [`CAPACITY`]).
    pub entries: Vec<DeadUnit>,
}

impl DeadlistPage {
    /// Encodes the page; returns it with its checksum.
    pub fn encode(&self) -> (Box<Page>, u32) {
        let mut page = zero_page();
        let mut w = Writer::new(&mut page[..]);
        w.bytes(off::MAGIC, &MAGIC);
        let n = self.entries.len().min(CAPACITY);
        w.u16(off::COUNT, n as u16);
        w.u64(off::NEXT, self.next.0 .0);
        w.u32(off::NEXT_CRC, self.next.1);
        w.u64(off::CHECKPOINT_NO, self.checkpoint.0);
        for (i, (vpn, birth)) in self.entries.iter().take(n).enumerate() {
            let at = HEADER + i * ENTRY_SIZE;
            w.u64(at, vpn.0);
            w.u64(at + 8, birth.0);
        }
        let crc = crc32(&page[..]);
        (page, crc)
    }

    /// Decodes a page read at `addr` whose pointer says `crc`.
    pub fn decode(page: &[u8], addr: PageAddr, crc: u32) -> Result<DeadlistPage> {
        let r = Reader::new(page, "deadlist page", addr);
        let found = crc32(page);
        r.check(found == crc, || {
            format!("checksum mismatch (expected {crc:#010x}, found {found:#010x})")
        })?;
        r.check(r.bytes(off::MAGIC, 4)? == MAGIC, || "bad magic".into())?;
        let n = usize::from(r.u16(off::COUNT)?);
        r.check(n <= CAPACITY, || format!("{n} entries, at most {CAPACITY}"))?;
        let mut entries = Vec::with_capacity(n);
        for i in 0..n {
            let at = HEADER + i * ENTRY_SIZE;
            entries.push((Vpn(r.u64(at)?), CheckpointNo(r.u64(at + 8)?)));
        }
        Ok(DeadlistPage {
            checkpoint: CheckpointNo(r.u64(off::CHECKPOINT_NO)?),
            next: (Vpn(r.u64(off::NEXT)?), r.u32(off::NEXT_CRC)?),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_full_page_and_damage() {
        let p = DeadlistPage {
            checkpoint: CheckpointNo(9),
            next: (Vpn(44), 0x1234),
            entries: (0..CAPACITY as u64)
                .map(|i| (Vpn(i + 1), CheckpointNo(i)))
                .collect(),
        };
        let (page, crc) = p.encode();
        assert_eq!(CAPACITY, 254);
        assert_eq!(
            DeadlistPage::decode(&page[..], PageAddr(5), crc).expect("decode"),
            p
        );
        let mut bad = page.clone();
        bad[100] ^= 1;
        assert!(DeadlistPage::decode(&bad[..], PageAddr(5), crc).is_err());
    }
}
