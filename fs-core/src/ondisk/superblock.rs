//! The superblock: two copies at pages 0 and 1 that say what the device holds
//! and name the checkpoint to start from.

use crate::chain_table::ChainTable;
use crate::checkpoint::MAX_COUNTER;
use crate::codec::{crc32_skipping, Reader, Writer};
use crate::error::{Error, Result};
use crate::format::MIN_SEGMENTS;
use crate::ids::{CheckpointNo, PageAddr, TransformId};
use crate::key_slot::KeySlot;
use crate::layout::{zero_page, Geometry, Page, FORMAT_VERSION, PAGE_SIZE};

/// "PGLOG-SB" in ASCII.
pub const MAGIC: [u8; 8] = *b"PGLOG-SB";
/// The two copies live at these page addresses.
pub const COPIES: [PageAddr; 2] = [PageAddr(0), PageAddr(1)];
/// Longest label, in bytes.
pub const LABEL_MAX: usize = 64;

/// Byte offsets of the fields (see `docs/FORMAT.md`).
pub mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const PAGE_SIZE: usize = 12;
    pub const COMPAT: usize = 16;
    pub const RO_COMPAT: usize = 24;
    pub const INCOMPAT: usize = 32;
    pub const UUID: usize = 40;
    pub const LABEL: usize = 56;
    pub const PAGES_PER_SEGMENT: usize = 120;
    pub const SEGMENT_COUNT: usize = 128;
    pub const FIRST_SEGMENT_PAGE: usize = 136;
    pub const DEVICE_PAGES: usize = 144;
    pub const CREATED_NS: usize = 152;
    pub const HASH_SEED: usize = 160;
    pub const GENERATION: usize = 168;
    pub const CHECKPOINT_ADDR: usize = 176;
    pub const CHECKPOINT_NO: usize = 184;
    pub const WRITTEN_NS: usize = 192;
    pub const STATE: usize = 200;
    pub const COPY: usize = 204;
    pub const DEFAULT_TRANSFORM: usize = 208;
    pub const SEAL_LEASE: usize = 3072;
    pub const KEY_SLOT: usize = 3080;
    pub const CRC: usize = 4092;
}

/// Feature bits. An unknown `incompat` bit refuses the mount; an unknown
/// `ro_compat` bit allows a read-only mount only; `compat` bits are advisory.
pub mod features {
    /// Compatible features this build knows (none yet in version 3).
    pub const COMPAT_KNOWN: u64 = 0;
    /// Usage by user, group and project is kept in the quota file (inode
    /// 3): a build that does not know it could not keep usage in step, so
    /// it may only read.
    pub const RO_COMPAT_QUOTA: u64 = 1;
    /// Read-only-compatible features this build knows.
    pub const RO_COMPAT_KNOWN: u64 = RO_COMPAT_QUOTA;
    /// Units may be stored through a chain of transforms (compression):
    /// the chain table numbers at least one chain.
    pub const INCOMPAT_TRANSFORMS: u64 = 1;
    /// Everything but the superblock is sealed (authenticated encryption):
    /// the seal lease and key slot are in use, page address table entries
    /// are 48 bytes and table pages have a 64-byte head.
    pub const INCOMPAT_SEALED: u64 = 2;
    /// The log after the checkpoint named may hold roll-forward records
    /// (fsyncs since it) that recovery must apply: set by a read-write
    /// mount, cleared by a clean unmount, so that a build that would stop
    /// at the checkpoint, losing fsync'd data, refuses the image instead.
    pub const INCOMPAT_ROLL_FORWARD: u64 = 4;
    /// Incompatible features this build knows.
    pub const INCOMPAT_KNOWN: u64 = INCOMPAT_TRANSFORMS | INCOMPAT_SEALED | INCOMPAT_ROLL_FORWARD;

    /// Names for bits, for error messages.
    pub fn name(kind: &str, bit: u32) -> String {
        match (kind, 1u64 << bit) {
            ("incompatible", INCOMPAT_TRANSFORMS) => "transforms".into(),
            ("incompatible", INCOMPAT_SEALED) => "sealed".into(),
            ("incompatible", INCOMPAT_ROLL_FORWARD) => "roll-forward".into(),
            ("read-only-compatible", RO_COMPAT_QUOTA) => "quota".into(),
            _ => format!("bit {bit}"),
        }
    }
}

/// Whether the filesystem was cleanly unmounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Mounted read-write, or not unmounted cleanly.
    InUse,
    /// Cleanly unmounted: the named checkpoint is the end of the log.
    Clean,
}

/// The decoded superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Compatible feature bits.
    pub compat: u64,
    /// Read-only-compatible feature bits.
    pub ro_compat: u64,
    /// Incompatible feature bits.
    pub incompat: u64,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// Label, up to 64 bytes.
    pub label: Vec<u8>,
    /// Segment layout.
    pub geometry: Geometry,
    /// Device size in pages when the filesystem was made.
    pub device_pages: u64,
    /// When the filesystem was made (ns since the epoch).
    pub created_ns: i64,
    /// Seed of the directory name hash.
    pub hash_seed: u64,
    /// Write counter: the copy with the larger value is newer.
    pub generation: u64,
    /// Page of the checkpoint to start recovery from.
    pub checkpoint_addr: PageAddr,
    /// Number of that checkpoint.
    pub checkpoint_no: CheckpointNo,
    /// When this copy was written (ns since the epoch).
    pub written_ns: i64,
    /// Clean or in use.
    pub state: State,
    /// Transform chain for new data when nothing else says (0 = raw).
    pub default_transform: TransformId,
    /// The chains units may record, and the compression cluster size.
    pub chains: ChainTable,
    /// A sealed volume's seal lease and key slot (`None`: not sealed).
    pub sealing: Option<Sealing>,
}

/// What the superblock of a sealed volume holds besides the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealing {
    /// Seal numbers below this may have been used: a read-write mount
    /// starts here and raises it by its lease, durably, before it seals.
    pub lease: u64,
    /// The wrapped master key.
    pub slot: KeySlot,
}

/// Why an image of another format version is refused, and what to do.
fn version_refused(version: u32) -> String {
    let what = match version {
        1 => " (one inode per page, never released)",
        2 => " (physical block pointers, before the page address table)",
        v if v > FORMAT_VERSION => " (made by a newer pagelog)",
        _ => "",
    };
    format!(
        "format version {version}{what}: this build reads version {FORMAT_VERSION} only; \
         mount it with a pagelog that reads version {version} and copy the files to a new filesystem"
    )
}

impl Superblock {
    /// Encodes this superblock as copy `copy` (0 or 1).
    pub fn encode(&self, copy: u32) -> Box<Page> {
        let mut page = zero_page();
        let mut w = Writer::new(&mut page[..]);
        w.bytes(off::MAGIC, &MAGIC);
        w.u32(off::VERSION, FORMAT_VERSION);
        w.u32(off::PAGE_SIZE, PAGE_SIZE as u32);
        w.u64(off::COMPAT, self.compat);
        w.u64(off::RO_COMPAT, self.ro_compat);
        w.u64(off::INCOMPAT, self.incompat);
        w.bytes(off::UUID, &self.uuid);
        let label_len = self.label.len().min(LABEL_MAX);
        w.bytes(off::LABEL, &self.label[..label_len]);
        w.u32(off::PAGES_PER_SEGMENT, self.geometry.pages_per_segment);
        w.u64(off::SEGMENT_COUNT, self.geometry.segment_count);
        w.u64(off::FIRST_SEGMENT_PAGE, self.geometry.first_segment_page);
        w.u64(off::DEVICE_PAGES, self.device_pages);
        w.i64(off::CREATED_NS, self.created_ns);
        w.u64(off::HASH_SEED, self.hash_seed);
        w.u64(off::GENERATION, self.generation);
        w.addr(off::CHECKPOINT_ADDR, self.checkpoint_addr);
        w.u64(off::CHECKPOINT_NO, self.checkpoint_no.0);
        w.i64(off::WRITTEN_NS, self.written_ns);
        w.u32(off::STATE, matches!(self.state, State::Clean) as u32);
        w.u32(off::COPY, copy);
        w.u16(off::DEFAULT_TRANSFORM, self.default_transform.0);
        self.chains.encode(&mut w);
        if let Some(sealing) = &self.sealing {
            w.u64(off::SEAL_LEASE, sealing.lease);
            sealing.slot.encode(&mut w, off::KEY_SLOT);
        }
        let crc = crc32_skipping(&page[..], off::CRC);
        Writer::new(&mut page[..]).u32(off::CRC, crc);
        page
    }

    /// Decodes a superblock copy read at `addr`. Checks magic, CRC, version
    /// and geometry; feature checks are [`Superblock::check_features`].
    pub fn decode(page: &[u8], addr: PageAddr) -> Result<Superblock> {
        let r = Reader::new(page, "superblock", addr);
        if r.bytes(off::MAGIC, 8)? != MAGIC {
            return Err(Error::NotPagelog(format!(
                "no pagelog magic at page {addr}"
            )));
        }
        let stored = r.u32(off::CRC)?;
        let computed = crc32_skipping(page, off::CRC);
        r.check(stored == computed, || {
            format!("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
        })?;
        let version = r.u32(off::VERSION)?;
        if version != FORMAT_VERSION {
            return Err(Error::Unsupported(version_refused(version)));
        }
        let page_size = r.u32(off::PAGE_SIZE)?;
        r.check(page_size as usize == PAGE_SIZE, || {
            format!("page size {page_size}, expected {PAGE_SIZE}")
        })?;
        let label_raw = r.bytes(off::LABEL, LABEL_MAX)?;
        let label_len = label_raw.iter().position(|&b| b == 0).unwrap_or(LABEL_MAX);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(r.bytes(off::UUID, 16)?);
        let geometry = Geometry {
            pages_per_segment: r.u32(off::PAGES_PER_SEGMENT)?,
            segment_count: r.u64(off::SEGMENT_COUNT)?,
            first_segment_page: r.u64(off::FIRST_SEGMENT_PAGE)?,
        };
        let device_pages = r.u64(off::DEVICE_PAGES)?;
        let pps = geometry.pages_per_segment;
        r.check(pps.is_power_of_two() && (16..=65536).contains(&pps), || {
            format!("pages_per_segment {pps} is not a power of two from 16 to 65536")
        })?;
        r.check(geometry.segment_count >= MIN_SEGMENTS, || {
            format!(
                "segment_count {} is below {MIN_SEGMENTS}",
                geometry.segment_count
            )
        })?;
        r.check(geometry.first_segment_page >= 2, || {
            "segments overlap the superblocks".into()
        })?;
        let end = geometry
            .segment_count
            .checked_mul(u64::from(geometry.pages_per_segment))
            .and_then(|p| p.checked_add(geometry.first_segment_page));
        r.check(end.is_some_and(|e| e <= device_pages), || {
            format!(
                "{} segments of {} pages from page {} do not fit in {} pages",
                geometry.segment_count,
                geometry.pages_per_segment,
                geometry.first_segment_page,
                device_pages
            )
        })?;
        let checkpoint_addr = r.addr(off::CHECKPOINT_ADDR)?;
        r.check(geometry.contains(checkpoint_addr), || {
            format!("checkpoint_addr {checkpoint_addr} is outside the segment area")
        })?;
        let (generation, checkpoint_no) = (r.u64(off::GENERATION)?, r.u64(off::CHECKPOINT_NO)?);
        for (field, v) in [("generation", generation), ("checkpoint_no", checkpoint_no)] {
            r.check(v <= MAX_COUNTER, || format!("{field} {v} is over 2^63"))?;
        }
        let chains = ChainTable::decode(&r)?;
        let default_transform = TransformId(r.u16(off::DEFAULT_TRANSFORM)?);
        r.check(chains.get(default_transform).is_some(), || {
            format!(
                "default chain {} is not in the chain table",
                default_transform.0
            )
        })?;
        let incompat = r.u64(off::INCOMPAT)?;
        let sealing = if incompat & features::INCOMPAT_SEALED != 0 {
            Some(Sealing {
                lease: r.u64(off::SEAL_LEASE)?,
                slot: KeySlot::decode(&r, off::KEY_SLOT)?,
            })
        } else {
            None
        };
        Ok(Superblock {
            compat: r.u64(off::COMPAT)?,
            ro_compat: r.u64(off::RO_COMPAT)?,
            incompat,
            uuid,
            label: label_raw[..label_len].to_vec(),
            geometry,
            device_pages,
            created_ns: r.i64(off::CREATED_NS)?,
            hash_seed: r.u64(off::HASH_SEED)?,
            generation,
            checkpoint_addr,
            checkpoint_no: CheckpointNo(checkpoint_no),
            written_ns: r.i64(off::WRITTEN_NS)?,
            state: if r.u32(off::STATE)? == 1 {
                State::Clean
            } else {
                State::InUse
            },
            default_transform,
            chains,
            sealing,
        })
    }

    /// Refuses images that need features this build lacks: any unknown
    /// incompatible bit, or an unknown read-only-compatible bit when
    /// `writable`.
    pub fn check_features(&self, writable: bool) -> Result<()> {
        let unknown = self.incompat & !features::INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(Error::Unsupported(describe_bits("incompatible", unknown)));
        }
        let unknown_ro = self.ro_compat & !features::RO_COMPAT_KNOWN;
        if writable && unknown_ro != 0 {
            return Err(Error::Unsupported(format!(
                "{} (a read-only mount is possible)",
                describe_bits("read-only-compatible", unknown_ro)
            )));
        }
        Ok(())
    }

    /// The label as text (lossy for display).
    pub fn label_text(&self) -> String {
        String::from_utf8_lossy(&self.label).into_owned()
    }

    /// The UUID in the usual 8-4-4-4-12 form.
    pub fn uuid_text(&self) -> String {
        format_uuid(&self.uuid)
    }
}

fn describe_bits(kind: &str, bits: u64) -> String {
    let names: Vec<String> = (0..64)
        .filter(|b| bits & (1u64 << b) != 0)
        .map(|b| features::name(kind, b))
        .collect();
    format!("unknown {kind} features: {}", names.join(", "))
}

/// Formats a UUID as 8-4-4-4-12 hex digits.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// Parses a UUID written as 32 hex digits, with or without dashes.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Superblock {
        Superblock {
            compat: 0,
            ro_compat: 0,
            incompat: 0,
            uuid: [0x11; 16],
            label: b"web01".to_vec(),
            geometry: Geometry {
                pages_per_segment: 512,
                segment_count: 100,
                first_segment_page: 256,
            },
            device_pages: 256 + 51200,
            created_ns: 1_700_000_000_000_000_000,
            hash_seed: 0xDEAD_BEEF,
            generation: 7,
            checkpoint_addr: PageAddr(300),
            checkpoint_no: CheckpointNo(5),
            written_ns: 1_700_000_000_500_000_000,
            state: State::Clean,
            default_transform: TransformId(0),
            chains: ChainTable::default(),
            sealing: None,
        }
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        let page = sb.encode(1);
        let back = Superblock::decode(&page[..], PageAddr(1)).expect("decode");
        assert_eq!(back, sb);
    }

    #[test]
    fn golden_offsets() {
        let page = sample().encode(1);
        assert_eq!(&page[0..8], b"PGLOG-SB");
        assert_eq!(&page[8..12], &3u32.to_le_bytes());
        assert_eq!(&page[12..16], &4096u32.to_le_bytes());
        assert_eq!(&page[40..56], &[0x11; 16]);
        assert_eq!(&page[56..61], b"web01");
        assert_eq!(&page[120..124], &512u32.to_le_bytes());
        assert_eq!(&page[128..136], &100u64.to_le_bytes());
        assert_eq!(&page[136..144], &256u64.to_le_bytes());
        assert_eq!(&page[160..168], &0xDEAD_BEEFu64.to_le_bytes());
        assert_eq!(&page[168..176], &7u64.to_le_bytes());
        assert_eq!(&page[176..184], &300u64.to_le_bytes());
        assert_eq!(&page[184..192], &5u64.to_le_bytes());
        assert_eq!(&page[200..204], &1u32.to_le_bytes());
        assert_eq!(&page[204..208], &1u32.to_le_bytes());
        let crc = crc32_skipping(&page[..], 4092);
        assert_eq!(&page[4092..4096], &crc.to_le_bytes());
    }

    #[test]
    fn every_byte_flip_is_detected() {
        let page = sample().encode(0);
        for i in 0..PAGE_SIZE {
            let mut bad = page.clone();
            bad[i] ^= 0x40;
            assert!(
                Superblock::decode(&bad[..], PageAddr(0)).is_err(),
                "flip at byte {i} not detected"
            );
        }
    }

    #[test]
    fn unknown_features_refused_by_name() {
        let mut sb = sample();
        sb.incompat = 1 << 5;
        let err = sb.check_features(false).unwrap_err();
        assert!(matches!(err, Error::Unsupported(ref m) if m.contains("bit 5")));
        let mut sb = sample();
        sb.ro_compat = 1 << 3;
        assert!(sb.check_features(false).is_ok());
        assert!(sb.check_features(true).is_err());
    }

    #[test]
    fn uuid_text_round_trip() {
        let u = [0xab; 16];
        let s = format_uuid(&u);
        assert_eq!(s.len(), 36);
        assert_eq!(parse_uuid(&s), Some(u));
        assert_eq!(parse_uuid("xyz"), None);
    }
}
