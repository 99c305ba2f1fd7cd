//! pagelog: a page-granular log-structured filesystem, as a library.
//!
//! Everything is an append to a log of 4 KiB pages; a checkpoint names a
//! consistent root. See `docs/DESIGN.md` for the why and `docs/FORMAT.md`
//! for every byte. The FUSE daemon (`fs-fuse`) is a thin adapter over
//! [`Filesystem`]; the tools drive this library directly.

#![deny(unsafe_code)]

pub mod error;
pub mod fs;
pub mod fsck;
pub mod objects;
pub mod ondisk;
pub mod root;
pub mod seal;
pub mod size;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transform;
pub mod volume;
pub mod when;

// Each module also by its short name: the paths tools and tests use.
pub use fs::perm;
pub use ondisk::{
    acl, block_ptr, chain_table, checkpoint, checkpoint_record, codec, deadlist_page, dir_node,
    ids, index_node, inode, inode_pack, key_slot, layout, node, quota_file, roll_forward,
    seal_info, segment_summary, superblock, xattr,
};
pub use root::{
    diff, dir_index, file_map, history, node_cache, node_table, page_cache, quotas, units, usage,
};
pub(crate) use volume::parallel;
pub use volume::{
    cache_sizes, checkpoint_list, checkpoints, cleaner, device, flushes, format, fsync, id_table,
    info, label, meta_table, overlay, page_life, page_table, recovery, rewind, rollback, room,
    roots, segment_usage, segment_writer, store,
};

pub use device::{BlockDevice, FileDevice, MemDevice};
pub use error::{Error, Result};
pub use format::{format, FormatOptions};
pub use fs::{
    AtimeMode, Attr, BranchInfo, CheckpointInfo, Defragged, DirItem, Filesystem, Layout, Limits,
    MountOptions, QuotaLine, QuotaReport, RenameFlags, Savings, SetAttr, StatFs, TimeSet, ViewId,
    Whence, COMPRESS_XATTR, REPORT_XATTR,
};
pub use ids::{Ino, Nid, PageAddr, Vpn};
pub use perm::Cred;
