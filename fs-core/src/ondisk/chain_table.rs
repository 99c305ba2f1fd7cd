//! The chain table, in the superblock: what each chain number a unit
//! records stands for (its stages: transform id, name and parameters), and
//! the size of a compression cluster.
//!
//! The table only grows: a chain, once numbered, keeps its number and
//! stages for the life of the filesystem, so every unit any checkpoint or
//! snapshot still holds can be undone. The stage names are kept beside the
//! ids so that a build without a transform refuses the image by name.

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::TransformId;

/// Byte offsets (inside the superblock page; see `docs/FORMAT.md`).
pub mod off {
    /// Logical pages in a compression cluster (u16; 0 in an image made
    /// before the table: the default).
    pub const CLUSTER_PAGES: usize = 210;
    /// Chains in use (u16).
    pub const COUNT: usize = 212;
    /// The first chain's entry.
    pub const CHAINS: usize = 1024;
    /// Bytes of one chain's entry.
    pub const CHAIN_SIZE: usize = 128;
    /// In a chain's entry: stage count (u8), then the stages from 8.
    pub const STAGES: usize = 8;
    /// Bytes of one stage: id (u16), name (16, NUL-padded), parameter
    /// length (u8), parameters (up to 21).
    pub const STAGE_SIZE: usize = 40;
    pub const STAGE_NAME: usize = 2;
    pub const STAGE_PARAMS_LEN: usize = 18;
    pub const STAGE_PARAMS: usize = 19;
}

/// Most chains an image may number (chain numbers 1 to 16).
pub const MAX_CHAINS: usize = 16;
/// Most stages in one chain.
pub const MAX_STAGES: usize = 3;
/// Longest stage name.
pub const NAME_MAX: usize = 16;
/// Most parameter bytes of one stage.
pub const PARAMS_MAX: usize = off::STAGE_SIZE - off::STAGE_PARAMS;
/// Largest compression cluster, in pages (a unit's most pages).
pub const MAX_CLUSTER_PAGES: u16 = crate::segment_summary::MAX_UNIT_PAGES as u16;
/// The cluster size of an image that does not record one (made before the
/// table, so numbering no chain until one is set on a directory).
pub const DEFAULT_CLUSTER_PAGES: u16 = 4;

/// One stage of a chain, as the image records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageRecord {
    /// The transform's stable id.
    pub id: u16,
    /// Its name, for messages (`zstd`).
    pub name: String,
    /// Its parameters.
    pub params: Vec<u8>,
}

impl StageRecord {
    /// How an option spells it: `zstd:3` for the built-in zstd (id 1,
    /// whose one byte is its level), `NAME#HEX` for any other.
    pub fn spec(&self) -> String {
        match (self.id, self.params.as_slice()) {
            (1, [level]) => format!("zstd:{level}"),
            (_, []) => self.name.clone(),
            (_, p) => {
                let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}#{hex}", self.name)
            }
        }
    }
}

/// A chain's stages as an option spells them, joined by `+`.
pub fn chain_spec(stages: &[StageRecord]) -> String {
    match stages.is_empty() {
        true => "none".into(),
        false => stages
            .iter()
            .map(StageRecord::spec)
            .collect::<Vec<_>>()
            .join("+"),
    }
}

/// The chains an image numbers, and its cluster size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTable {
    /// Logical pages in a compression cluster, 1 to 16.
    pub cluster_pages: u16,
    /// Chain `n` is `chains[n - 1]`; chain 0 is raw and not recorded.
    pub chains: Vec<Vec<StageRecord>>,
}

impl Default for ChainTable {
    fn default() -> ChainTable {
        ChainTable {
            cluster_pages: DEFAULT_CLUSTER_PAGES,
            chains: Vec::new(),
        }
    }
}

impl ChainTable {
    /// The stages of chain `id` (none for chain 0).
    pub fn get(&self, id: TransformId) -> Option<&[StageRecord]> {
        match id.0 {
            0 => Some(&[]),
            n => self.chains.get(usize::from(n) - 1).map(Vec::as_slice),
        }
    }

    /// The number of `stages`, numbering them if they are new; `None`
    /// when the table is full or a stage does not fit its entry.
    pub fn number(&mut self, stages: &[StageRecord]) -> Option<TransformId> {
        if stages.is_empty() {
            return Some(TransformId(0));
        }
        if let Some(i) = self.chains.iter().position(|c| c == stages) {
            return Some(TransformId(i as u16 + 1));
        }
        let fits = stages.len() <= MAX_STAGES
            && stages
                .iter()
                .all(|s| s.name.len() <= NAME_MAX && s.params.len() <= PARAMS_MAX);
        if !fits || self.chains.len() >= MAX_CHAINS {
            return None;
        }
        self.chains.push(stages.to_vec());
        Some(TransformId(self.chains.len() as u16))
    }

    /// Encodes into the superblock page `w` covers.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u16(off::CLUSTER_PAGES, self.cluster_pages);
        w.u16(off::COUNT, self.chains.len() as u16);
        for (i, chain) in self.chains.iter().enumerate() {
            let base = off::CHAINS + i * off::CHAIN_SIZE;
            w.u8(base, chain.len() as u8);
            for (j, s) in chain.iter().enumerate() {
                let at = base + off::STAGES + j * off::STAGE_SIZE;
                w.u16(at, s.id);
                w.bytes(at + off::STAGE_NAME, s.name.as_bytes());
                w.u8(at + off::STAGE_PARAMS_LEN, s.params.len() as u8);
                w.bytes(at + off::STAGE_PARAMS, &s.params);
            }
        }
    }

    /// Decodes from the superblock page `r` reads.
    pub fn decode(r: &Reader<'_>) -> Result<ChainTable> {
        // 0: an image made before the table, which numbers no chain.
        let cluster_pages = match r.u16(off::CLUSTER_PAGES)? {
            0 => DEFAULT_CLUSTER_PAGES,
            n => n,
        };
        r.check((1..=MAX_CLUSTER_PAGES).contains(&cluster_pages), || {
            format!("cluster of {cluster_pages} pages (1 to {MAX_CLUSTER_PAGES})")
        })?;
        let count = usize::from(r.u16(off::COUNT)?);
        r.check(count <= MAX_CHAINS, || {
            format!("{count} chains (at most {MAX_CHAINS})")
        })?;
        let chains = (0..count)
            .map(|i| decode_chain(r, off::CHAINS + i * off::CHAIN_SIZE, i + 1))
            .collect::<Result<_>>()?;
        Ok(ChainTable {
            cluster_pages,
            chains,
        })
    }
}

fn decode_chain(r: &Reader<'_>, base: usize, no: usize) -> Result<Vec<StageRecord>> {
    let stages = usize::from(r.u8(base)?);
    r.check((1..=MAX_STAGES).contains(&stages), || {
        format!("chain {no} has {stages} stages (1 to {MAX_STAGES})")
    })?;
    (0..stages)
        .map(|j| {
            let at = base + off::STAGES + j * off::STAGE_SIZE;
            let raw = r.bytes(at + off::STAGE_NAME, NAME_MAX)?;
            let name_len = raw.iter().position(|&b| b == 0).unwrap_or(NAME_MAX);
            let params_len = usize::from(r.u8(at + off::STAGE_PARAMS_LEN)?);
            r.check(params_len <= PARAMS_MAX, || {
                format!("chain {no}, stage {j}: {params_len} parameter bytes")
            })?;
            Ok(StageRecord {
                id: r.u16(at)?,
                name: String::from_utf8_lossy(&raw[..name_len]).into_owned(),
                params: r.bytes(at + off::STAGE_PARAMS, params_len)?.to_vec(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PageAddr;

    fn zstd(level: u8) -> Vec<StageRecord> {
        vec![StageRecord {
            id: 1,
            name: "zstd".into(),
            params: vec![level],
        }]
    }

    #[test]
    fn chains_are_numbered_once_and_round_trip() {
        let mut t = ChainTable::default();
        assert_eq!(t.number(&[]), Some(TransformId(0)));
        assert_eq!(t.number(&zstd(3)), Some(TransformId(1)));
        assert_eq!(t.number(&zstd(9)), Some(TransformId(2)));
        assert_eq!(t.number(&zstd(3)), Some(TransformId(1)));
        let mut page = vec![0u8; 4096];
        t.encode(&mut Writer::new(&mut page));
        assert_eq!(page[1024], 1, "one stage");
        assert_eq!(&page[1032..1034], &[1, 0], "id 1");
        assert_eq!(&page[1034..1038], b"zstd");
        assert_eq!(&page[1050..1052], &[1, 3], "one parameter: level 3");
        let r = Reader::new(&page, "superblock", PageAddr(0));
        assert_eq!(ChainTable::decode(&r).expect("decode"), t);
        assert_eq!(t.get(TransformId(2)), Some(&zstd(9)[..]));
        assert_eq!(chain_spec(&zstd(9)), "zstd:9");
        let module = StageRecord {
            id: 200,
            name: "rle".into(),
            params: vec![3, 255],
        };
        assert_eq!(chain_spec(&[module, zstd(1).remove(0)]), "rle#03ff+zstd:1");
        assert_eq!(chain_spec(&[]), "none");
        assert_eq!(t.get(TransformId(3)), None);
    }

    #[test]
    fn the_table_refuses_more_than_it_holds() {
        let mut t = ChainTable::default();
        for l in 1..=16 {
            assert!(t.number(&zstd(l)).is_some());
        }
        assert_eq!(t.number(&zstd(17)), None);
        let long = vec![StageRecord {
            id: 200,
            name: "x".repeat(17),
            params: Vec::new(),
        }];
        assert_eq!(ChainTable::default().number(&long), None);
    }

    #[test]
    fn damaged_tables_are_refused() {
        let mut page = vec![0u8; 4096];
        ChainTable::default().encode(&mut Writer::new(&mut page));
        for (at, v) in [
            (off::CLUSTER_PAGES, 17u8),
            (off::COUNT, 1),
            (off::COUNT, 17),
        ] {
            let mut bad = page.clone();
            bad[at] = v;
            let r = Reader::new(&bad, "superblock", PageAddr(0));
            assert!(ChainTable::decode(&r).is_err(), "byte {at} = {v}");
        }
    }
}
