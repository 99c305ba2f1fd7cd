//! The volume: the device, the log and its heads, segment usage, the
//! tables written at each commit, room for the next commit, the cleaner,
//! commits, fsync's roll-forward records and recovery, and the tools' operations on a whole image
//! (making one, reading its state, relabelling it).

pub mod cache_sizes;
pub mod checkpoint_list;
pub mod checkpoints;
pub mod cleaner;
pub mod device;
pub mod flushes;
pub mod format;
pub mod fsync;
pub mod id_table;
pub mod info;
pub mod label;
pub mod meta_table;
pub mod overlay;
pub mod page_life;
pub mod page_table;
pub(crate) mod parallel;
pub mod recovery;
pub mod rewind;
pub mod rollback;
pub mod room;
pub mod roots;
pub mod segment_usage;
pub mod segment_writer;
pub mod store;
pub(crate) mod writeback;
