//! On-disk codecs: one module per structure on the device, named after it,
//! each a pair of encode and decode functions over named offsets (FORMAT.md
//! says what every byte is; `tests/format_doc.rs` holds the two together).

pub mod acl;
pub mod block_ptr;
pub mod chain_table;
pub mod checkpoint;
pub mod checkpoint_record;
pub mod codec;
pub mod deadlist_page;
pub mod dir_node;
pub mod ids;
pub mod index_node;
pub mod inode;
pub mod inode_pack;
pub mod key_slot;
pub mod layout;
pub mod node;
pub mod quota_file;
pub mod roll_forward;
pub mod seal_info;
pub mod segment_summary;
pub mod superblock;
pub mod xattr;
