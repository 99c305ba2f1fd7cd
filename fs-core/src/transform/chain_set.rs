//! The chains a volume's table numbers, built: what a reader undoes a
//! unit's bytes with, by the chain number the unit records.

use std::sync::Arc;

use super::{Chain, Registry};
use crate::chain_table::ChainTable;
use crate::error::{Error, Result};
use crate::ids::{PageAddr, TransformId};

/// Every chain of one volume, by number (chain 0 is raw).
#[derive(Debug, Default)]
pub struct ChainSet {
    chains: Vec<Arc<Chain>>,
    cluster_pages: u16,
    /// On a sealed volume, what opens a unit before its chain is undone.
    sealer: Option<Arc<crate::seal::Sealer>>,
}

impl ChainSet {
    /// Builds every chain `table` numbers; refuses, by name, a table with
    /// a transform `reg` does not have.
    /// On a sealed volume, units are opened with `sealer` first.
    pub fn build(
        table: &ChainTable,
        reg: &Registry,
        sealer: Option<Arc<crate::seal::Sealer>>,
    ) -> Result<ChainSet> {
        let mut chains = vec![Arc::new(Chain::default())];
        for stages in &table.chains {
            chains.push(Arc::new(reg.build_chain(stages)?));
        }
        Ok(ChainSet {
            chains,
            cluster_pages: table.cluster_pages,
            sealer,
        })
    }

    /// What opens units, on a sealed volume.
    pub fn sealer(&self) -> Option<&Arc<crate::seal::Sealer>> {
        self.sealer.as_ref()
    }

    /// Chain `id`; damage when the table does not number it.
    pub fn get(&self, id: TransformId) -> Result<&Arc<Chain>> {
        self.chains.get(usize::from(id.0)).ok_or_else(|| {
            Error::corrupt(
                "chain table",
                PageAddr::NONE,
                format!(
                    "a unit records chain {}, which the table does not number",
                    id.0
                ),
            )
        })
    }

    /// Logical pages in a compression cluster.
    pub fn cluster_pages(&self) -> u64 {
        u64::from(self.cluster_pages.max(1))
    }
}

impl ChainSet {
    /// Reads the data unit `vpn`, which `e` describes, opens it (on a
    /// sealed volume) and undoes its chain: the `pages` logical pages it
    /// holds. `what` names it in errors (made only for one).
    pub fn read_unit(
        &self,
        dev: &dyn crate::device::BlockDevice,
        (vpn, e): (crate::ids::Vpn, &crate::page_table::PatEntry),
        pages: u64,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>> {
        let mut stored = vec![0u8; usize::from(e.pages) * crate::layout::PAGE_SIZE];
        dev.read(e.addr, &mut stored)?;
        stored.truncate(e.stored_len());
        self.undo((vpn, e), &stored, pages, what)
    }

    /// Opens (on a sealed volume) the `stored` bytes of data unit `vpn`,
    /// which `e` describes, and undoes its chain, giving `pages` logical
    /// pages.
    pub fn undo(
        &self,
        (vpn, e): (crate::ids::Vpn, &crate::page_table::PatEntry),
        stored: &[u8],
        pages: u64,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>> {
        let len = pages as usize * crate::layout::PAGE_SIZE;
        let Some(sealer) = self.sealer.as_deref() else {
            return self.undo_chain(e, stored, len, what);
        };
        let mut open = stored.to_vec();
        let kind = crate::segment_summary::PageKind::Data;
        crate::page_table::open_unit(Some(sealer), vpn, e, kind, &mut open, what)?;
        if e.transform.0 == 0 && open.len() == len {
            // Raw: what opened is the page (no copy more).
            return Ok(open);
        }
        self.undo_chain(e, &open, len, what)
    }

    /// Undoes the chain of unit `e` over `stored` (opened), giving `len`
    /// bytes; an error names the unit `what` and its place.
    fn undo_chain(
        &self,
        e: &crate::page_table::PatEntry,
        stored: &[u8],
        len: usize,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>> {
        self.get(e.transform)?
            .undo(stored, len, "")
            .map_err(|err| match err {
                Error::Corrupt { detail, .. } => Error::Corrupt {
                    what: what(),
                    addr: e.addr,
                    detail,
                },
                other => other,
            })
    }
}
