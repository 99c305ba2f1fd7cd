//! A root and its trees: the node cache over the node address table, file
//! maps, directory indexes, and the file pages waiting for writeback.

pub mod diff;
pub mod dir_index;
pub mod file_map;
pub mod history;
pub mod node_cache;
pub mod node_table;
pub mod page_cache;
pub mod quotas;
pub mod units;
pub mod usage;

use std::collections::HashSet;

use crate::ids::Ino;
use crate::ondisk::checkpoint::Checkpoint;
use history::History;
use node_cache::NodeCache;
use page_cache::DirtyPages;

/// A root: the tree of one filesystem state (its nodes, reached through
/// its node address table), the changes to it not yet committed, and its
/// counters. The volume writes it at each commit; snapshots will add roots
/// beside it (docs/design-v3.md).
#[derive(Debug)]
pub struct Root {
    /// Nodes, through the node address table.
    pub cache: NodeCache,
    /// Dirty file pages.
    pub dirty: DirtyPages,
    /// Inodes whose dirty data is metadata (long symbolic link targets):
    /// written even by metadata-only commits.
    pub data_is_metadata: HashSet<Ino>,
    /// Generation for the next inode.
    pub next_generation: u64,
    /// Inodes in use.
    pub inode_count: u64,
    /// Pages promised by fallocate and not yet written.
    pub reserved_pages: u64,
    /// Something changed since the last commit.
    pub changed: bool,
    /// What its retained checkpoints still hold.
    pub history: History,
    /// Its quota file, once read (on an image with quotas).
    pub quota: Option<crate::quotas::QuotaTable>,
}

impl Root {
    /// The root a checkpoint names, over `cache`.
    pub fn open(cp: &Checkpoint, cache: NodeCache) -> Root {
        Root {
            cache,
            dirty: DirtyPages::default(),
            data_is_metadata: HashSet::new(),
            next_generation: cp.next_generation,
            inode_count: cp.inode_count,
            reserved_pages: cp.reserved_pages,
            changed: false,
            history: History::default(),
            quota: None,
        }
    }

    /// Any metadata to commit (data aside)?
    pub fn needs_metadata_commit(&self) -> bool {
        self.changed || self.cache.dirty_count() > 0 || !self.history.pending.is_empty()
    }

    /// Anything to commit?
    pub fn needs_commit(&self) -> bool {
        self.needs_metadata_commit() || self.dirty.count() > 0
    }
}
