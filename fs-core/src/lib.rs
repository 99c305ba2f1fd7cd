//! pagelog: a page-granular log-structured filesystem, as a library.
//!
//! Everything is an append to a log of 4 KiB pages; a checkpoint names a
//! consistent root. See `docs/DESIGN.md` for the why and `docs/FORMAT.md`
//! for every byte. The FUSE daemon (`fs-fuse`) is a thin adapter over
//! [`Filesystem`]; the tools drive this library directly.

#![deny(unsafe_code)]

pub mod block_ptr;
pub mod checkpoint;
pub mod cleaner;
pub mod codec;
pub mod device;
pub mod dir_index;
pub mod dir_node;
pub mod error;
pub mod file_map;
pub mod format;
pub mod fs;
pub mod fsck;
pub mod ids;
pub mod index_node;
pub mod info;
pub mod inode;
pub mod inode_pack;
pub mod label;
pub mod layout;
pub mod meta_table;
pub mod node;
pub mod node_cache;
pub mod node_table;
pub mod page_cache;
pub(crate) mod parallel;
pub mod perm;
pub mod recovery;
pub mod room;
pub mod segment_summary;
pub mod segment_usage;
pub mod segment_writer;
pub mod size;
pub mod store;
pub mod superblock;
#[cfg(feature = "testing")]
pub mod testing;
pub mod xattr;

pub use device::{BlockDevice, FileDevice, MemDevice};
pub use error::{Error, Result};
pub use format::{format, FormatOptions};
pub use fs::{
    AtimeMode, Attr, DirItem, Filesystem, MountOptions, RenameFlags, SetAttr, StatFs, TimeSet,
    Whence,
};
pub use ids::{Ino, Nid, PageAddr};
pub use perm::Cred;
