//! A root and its trees: the node cache over the node address table, file
//! maps, directory indexes, and the file pages waiting for writeback.

pub mod dir_index;
pub mod file_map;
pub mod node_cache;
pub mod node_table;
pub mod page_cache;
