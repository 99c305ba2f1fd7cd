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
}

impl ChainSet {
    /// Builds every chain `table` numbers; refuses, by name, a table with
    /// a transform `reg` does not have.
    pub fn build(table: &ChainTable, reg: &Registry) -> Result<ChainSet> {
        let mut chains = vec![Arc::new(Chain::default())];
        for stages in &table.chains {
            chains.push(Arc::new(reg.build_chain(stages)?));
        }
        Ok(ChainSet {
            chains,
            cluster_pages: table.cluster_pages,
        })
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
    /// Reads the unit `e` describes and undoes its chain: the `pages`
    /// logical pages it holds. `what` names it in errors.
    pub fn read_unit(
        &self,
        dev: &dyn crate::device::BlockDevice,
        e: &crate::page_table::PatEntry,
        pages: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        let mut stored = vec![0u8; usize::from(e.pages) * crate::layout::PAGE_SIZE];
        dev.read(e.addr, &mut stored)?;
        stored.truncate(e.stored_len());
        self.undo(e, &stored, pages, what)
    }

    /// Undoes the chain of unit `e` over its `stored` bytes, giving `pages`
    /// logical pages.
    pub fn undo(
        &self,
        e: &crate::page_table::PatEntry,
        stored: &[u8],
        pages: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        let len = pages as usize * crate::layout::PAGE_SIZE;
        self.get(e.transform)?
            .undo(stored, len, what)
            .map_err(|err| match err {
                Error::Corrupt { what, detail, .. } => Error::Corrupt {
                    what,
                    addr: e.addr,
                    detail,
                },
                other => other,
            })
    }
}
