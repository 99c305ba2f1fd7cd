//! The quota file: the data of inode 3 on an image with the `quota`
//! feature. Page 0 is a header (grace periods); pages 1.. hold 128-byte
//! records, 32 a page, one per user, group or project id: its usage and
//! its limits. Records never move, so a record's slot is its place for
//! good. It is a file of the root it is in: a snapshot freezes it with the
//! tree whose usage it records, a branch has its own (docs/design-quota.md).

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::{Ino, PageAddr};
use crate::layout::PAGE_SIZE;
use crate::usage::{IdKind, QuotaId};

/// The quota file's inode.
pub const QUOTA_INO: Ino = Ino(3);
/// Magic of the header page.
pub const MAGIC: &[u8; 8] = b"PGLOG-QF";
/// Version of the layout.
pub const VERSION: u32 = 1;
/// Bytes of a record.
pub const RECORD: usize = 128;
/// Records in a page.
pub const PER_PAGE: usize = PAGE_SIZE / RECORD;
/// Grace period given when none is set: 7 days, in seconds.
pub const DEFAULT_GRACE: u64 = 7 * 24 * 3600;

/// Byte offsets in the header page.
pub mod head {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    /// Six u64 grace periods in seconds: user pages, user inodes, group
    /// pages, group inodes, project pages, project inodes.
    pub const GRACE: usize = 16;
    pub const END: usize = 64;
}

/// Byte offsets in a record.
pub mod rec {
    pub const KIND: usize = 0;
    pub const ID: usize = 4;
    pub const PAGES: usize = 8;
    pub const INODES: usize = 16;
    pub const PAGE_SOFT: usize = 24;
    pub const PAGE_HARD: usize = 32;
    pub const INODE_SOFT: usize = 40;
    pub const INODE_HARD: usize = 48;
    pub const PAGE_GRACE_END: usize = 56;
    pub const INODE_GRACE_END: usize = 64;
    pub const END: usize = 72;
}

/// Grace periods, in seconds, by id kind: (pages, inodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Indexed by `IdKind as usize - 1`.
    pub grace: [(u64, u64); 3],
}

impl Default for Header {
    fn default() -> Header {
        Header {
            grace: [(DEFAULT_GRACE, DEFAULT_GRACE); 3],
        }
    }
}

impl Header {
    /// Encodes into page 0.
    pub fn encode(&self, page: &mut [u8]) {
        let mut w = Writer::new(page);
        w.bytes(head::MAGIC, MAGIC);
        w.u32(head::VERSION, VERSION);
        for (k, (pages, inodes)) in self.grace.iter().enumerate() {
            w.u64(head::GRACE + 16 * k, *pages);
            w.u64(head::GRACE + 16 * k + 8, *inodes);
        }
    }

    /// Decodes page 0.
    pub fn decode(page: &[u8], addr: PageAddr) -> Result<Header> {
        let r = Reader::new(page, "quota file header", addr);
        r.check(r.bytes(head::MAGIC, 8)? == MAGIC, || "bad magic".into())?;
        let version = r.u32(head::VERSION)?;
        r.check(version == VERSION, || format!("version {version}"))?;
        let mut h = Header::default();
        for (k, g) in h.grace.iter_mut().enumerate() {
            *g = (
                r.u64(head::GRACE + 16 * k)?,
                r.u64(head::GRACE + 16 * k + 8)?,
            );
        }
        Ok(h)
    }
}

/// One id's usage and limits. Pages are 4 KiB; a limit of 0 is none; a
/// grace end of 0 means "not over the soft limit".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Pages used.
    pub pages: u64,
    /// Inodes used.
    pub inodes: u64,
    /// Soft and hard page limits.
    pub page_soft: u64,
    /// Hard page limit.
    pub page_hard: u64,
    /// Soft inode limit.
    pub inode_soft: u64,
    /// Hard inode limit.
    pub inode_hard: u64,
    /// When the grace time over the soft page limit ends (seconds since
    /// the epoch).
    pub page_grace_end: i64,
    /// When the grace time over the soft inode limit ends.
    pub inode_grace_end: i64,
}

impl Record {
    /// Nothing used and no limit: the slot may be given to another id.
    pub fn is_empty(&self) -> bool {
        *self == Record::default()
    }

    /// Does any limit apply?
    pub fn has_limits(&self) -> bool {
        self.page_soft | self.page_hard | self.inode_soft | self.inode_hard != 0
    }
}

fn kind_code(k: IdKind) -> u8 {
    k as u8
}

fn kind_of(c: u8) -> Option<IdKind> {
    Some(match c {
        1 => IdKind::User,
        2 => IdKind::Group,
        3 => IdKind::Project,
        _ => return None,
    })
}

/// Encodes slot `slot` of a record page (`None`: a free slot, zeros).
pub fn encode_record(page: &mut [u8], slot: usize, rec: Option<(QuotaId, &Record)>) {
    let at = slot * RECORD;
    let bytes = &mut page[at..at + RECORD];
    bytes.fill(0);
    let Some((id, r)) = rec else {
        return;
    };
    let mut w = Writer::new(bytes);
    w.u8(rec::KIND, kind_code(id.kind));
    w.u32(rec::ID, id.id);
    w.u64(rec::PAGES, r.pages);
    w.u64(rec::INODES, r.inodes);
    w.u64(rec::PAGE_SOFT, r.page_soft);
    w.u64(rec::PAGE_HARD, r.page_hard);
    w.u64(rec::INODE_SOFT, r.inode_soft);
    w.u64(rec::INODE_HARD, r.inode_hard);
    w.i64(rec::PAGE_GRACE_END, r.page_grace_end);
    w.i64(rec::INODE_GRACE_END, r.inode_grace_end);
}

/// Decodes slot `slot` of a record page (`None`: a free slot).
pub fn decode_record(
    page: &[u8],
    slot: usize,
    addr: PageAddr,
) -> Result<Option<(QuotaId, Record)>> {
    let at = slot * RECORD;
    let r = Reader::new(&page[at..at + RECORD], "quota record", addr);
    let code = r.u8(rec::KIND)?;
    if code == 0 {
        return Ok(None);
    }
    let kind = kind_of(code).ok_or_else(|| r.corrupt(format!("slot {slot}: kind {code}")))?;
    let id = QuotaId {
        kind,
        id: r.u32(rec::ID)?,
    };
    let rec = Record {
        pages: r.u64(rec::PAGES)?,
        inodes: r.u64(rec::INODES)?,
        page_soft: r.u64(rec::PAGE_SOFT)?,
        page_hard: r.u64(rec::PAGE_HARD)?,
        inode_soft: r.u64(rec::INODE_SOFT)?,
        inode_hard: r.u64(rec::INODE_HARD)?,
        page_grace_end: r.i64(rec::PAGE_GRACE_END)?,
        inode_grace_end: r.i64(rec::INODE_GRACE_END)?,
    };
    Ok(Some((id, rec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records_round_trip() {
        let mut page = [0u8; PAGE_SIZE];
        let h = Header {
            grace: [(1, 2), (3, 4), (5, 6)],
        };
        h.encode(&mut page);
        assert_eq!(Header::decode(&page, PageAddr(1)).expect("header"), h);
        assert!(Header::decode(&[0u8; PAGE_SIZE], PageAddr(1)).is_err());
        let id = QuotaId {
            kind: IdKind::Group,
            id: 1234,
        };
        let r = Record {
            pages: 7,
            inodes: 3,
            page_hard: 100,
            page_grace_end: -5,
            ..Record::default()
        };
        let mut page = [0u8; PAGE_SIZE];
        encode_record(&mut page, 31, Some((id, &r)));
        assert_eq!(page[31 * RECORD], 2);
        let back = decode_record(&page, 31, PageAddr(1)).expect("decodes");
        assert_eq!(back, Some((id, r)));
        assert_eq!(decode_record(&page, 0, PageAddr(1)).expect("free"), None);
        page[0] = 9;
        assert!(decode_record(&page, 0, PageAddr(1)).is_err());
    }
}
