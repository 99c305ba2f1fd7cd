//! The one memory option (`cache=`, default 128 MiB) and how it is shared
//! among the caches that grow with the filesystem: decoded nodes, the node
//! address table, the page address table. What does not grow with the
//! number of files is not counted: the segment usage table (16 bytes a
//! segment, kept whole), the checkpoint list's few pages, dirty data and
//! dirty nodes (bounded by `dirty_limit` and by commits).

use crate::layout::PAGE_SIZE;

/// The default of `cache=`.
pub const DEFAULT_CACHE: u64 = 128 << 20;
/// The least `cache=` accepted: below it the tables' working set (a few
/// hundred pages while a commit runs) would be read again and again.
pub const MIN_CACHE: u64 = 8 << 20;

/// Sizes of the caches, from one budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    /// Bytes of clean decoded nodes of the live root.
    pub node_bytes: usize,
    /// Clean node address table pages of the live root.
    pub nat_pages: usize,
    /// Clean page address table pages.
    pub pat_pages: usize,
}

impl CacheSizes {
    /// Shares `budget` bytes: half for nodes (inodes, file maps and
    /// directory indexes are what a walk of many files reads again), a
    /// quarter for the page address table (a page maps about a mebibyte
    /// of data), an eighth for the node address table (a page finds 256
    /// nodes, so 4,096 pages find every node of a million files), an
    /// eighth left for the allocator's overhead.
    pub fn of(budget: u64) -> CacheSizes {
        let budget = budget.max(MIN_CACHE) as usize;
        CacheSizes {
            node_bytes: budget / 2,
            nat_pages: budget / 8 / PAGE_SIZE,
            pat_pages: budget / 4 / PAGE_SIZE,
        }
    }

    /// The sizes for a root served beside the live one (a branch or a
    /// retained checkpoint): a quarter of the node and node address table
    /// shares each, so that views do not multiply the budget.
    pub fn for_view(&self) -> CacheSizes {
        CacheSizes {
            node_bytes: self.node_bytes / 4,
            nat_pages: self.nat_pages / 4,
            pat_pages: self.pat_pages,
        }
    }
}

impl Default for CacheSizes {
    fn default() -> Self {
        CacheSizes::of(DEFAULT_CACHE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_keeps_the_earlier_table_caches() {
        let c = CacheSizes::default();
        assert_eq!((c.nat_pages, c.pat_pages), (4096, 8192));
        assert_eq!(c.node_bytes, 64 << 20);
    }

    #[test]
    fn the_shares_never_pass_the_budget_nor_fall_below_the_floor() {
        for budget in [0, 1 << 20, MIN_CACHE, 100 << 20, 1 << 32] {
            let c = CacheSizes::of(budget);
            let total = c.node_bytes + (c.nat_pages + c.pat_pages) * PAGE_SIZE;
            assert!(total as u64 <= budget.max(MIN_CACHE), "{budget}: {c:?}");
            assert!(c.nat_pages >= 256 && c.pat_pages >= 512, "{budget}: {c:?}");
        }
    }
}
