//! Directory index nodes: leaves hold entries sorted by hash key; interior
//! nodes hold (smallest key, child) pairs. See `dir_index` for the tree.

use smallvec::SmallVec;

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::{Ino, Nid};
use crate::layout::{NAME_MAX, PAGE_SIZE};
use crate::node::HEADER_SIZE;

/// Offset of the entry count.
pub const COUNT: usize = HEADER_SIZE;
/// Offset of the first entry.
pub const ENTRIES: usize = HEADER_SIZE + 8;
/// Bytes available for entries in one node.
pub const SPACE: usize = PAGE_SIZE - ENTRIES;
/// Fixed bytes of a leaf entry before its name: key, inode, type, name length.
pub const LEAF_ENTRY_FIXED: usize = 18;
/// Bytes of an interior entry.
pub const INTERNAL_ENTRY: usize = 16;
/// Children of an interior node.
pub const MAX_CHILDREN: usize = SPACE / INTERNAL_ENTRY;

/// A name as stored in an entry. Names up to 32 bytes (nearly all) are
/// held inline: decoding a directory of 100,000 entries, as a check does,
/// then costs no allocation per name.
pub type Name = SmallVec<[u8; 32]>;

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Hash key: stable position for readdir offsets.
    pub key: u64,
    /// The inode named.
    pub ino: Ino,
    /// File type, as Linux `DT_*`.
    pub dtype: u8,
    /// The name (bytes, no `/` or NUL).
    pub name: Name,
}

impl DirEntry {
    /// Bytes this entry takes in a leaf.
    pub fn encoded_len(&self) -> usize {
        LEAF_ENTRY_FIXED + self.name.len()
    }
}

/// A leaf: entries in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirLeaf {
    /// Sorted by key.
    pub entries: Vec<DirEntry>,
}

impl DirLeaf {
    /// Bytes used by the entries.
    pub fn used(&self) -> usize {
        self.entries.iter().map(DirEntry::encoded_len).sum()
    }

    /// Encodes after the node header.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u16(COUNT, self.entries.len() as u16);
        let mut pos = ENTRIES;
        for e in &self.entries {
            w.u64(pos, e.key);
            w.u64(pos + 8, e.ino.0);
            w.u8(pos + 16, e.dtype);
            w.u8(pos + 17, e.name.len() as u8);
            w.bytes(pos + 18, &e.name);
            pos += e.encoded_len();
        }
    }

    /// Decodes after the node header, checking order and names.
    pub fn decode(r: &Reader<'_>) -> Result<DirLeaf> {
        let count = usize::from(r.u16(COUNT)?);
        let mut entries = Vec::with_capacity(count);
        let mut pos = ENTRIES;
        for i in 0..count {
            let key = r.u64(pos)?;
            let ino = Ino(r.u64(pos + 8)?);
            let dtype = r.u8(pos + 16)?;
            let len = usize::from(r.u8(pos + 17)?);
            let name = Name::from_slice(r.bytes(pos + 18, len)?);
            r.check(len > 0 && len <= NAME_MAX, || {
                format!("entry {i}: name length {len}")
            })?;
            r.check(!name.contains(&b'/') && !name.contains(&0), || {
                format!("entry {i}: name contains '/' or NUL")
            })?;
            r.check(!ino.is_none(), || format!("entry {i}: inode 0"))?;
            if let Some(prev) = entries.last() {
                let prev: &DirEntry = prev;
                r.check(prev.key < key, || format!("entry {i}: keys out of order"))?;
            }
            entries.push(DirEntry {
                key,
                ino,
                dtype,
                name,
            });
            pos += LEAF_ENTRY_FIXED + len;
        }
        Ok(DirLeaf { entries })
    }
}

/// An interior node: (smallest key under the child, child) in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirInternal {
    /// Sorted by key; the first key is a lower bound for the whole subtree.
    pub children: Vec<(u64, Nid)>,
}

impl DirInternal {
    /// Index of the child whose range holds `key`.
    pub fn child_for(&self, key: u64) -> usize {
        match self.children.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        }
    }

    /// Encodes after the node header.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u16(COUNT, self.children.len() as u16);
        for (i, (key, nid)) in self.children.iter().enumerate() {
            w.u64(ENTRIES + i * INTERNAL_ENTRY, *key);
            w.u64(ENTRIES + i * INTERNAL_ENTRY + 8, nid.0);
        }
    }

    /// Decodes after the node header.
    pub fn decode(r: &Reader<'_>) -> Result<DirInternal> {
        let count = usize::from(r.u16(COUNT)?);
        r.check(count > 0 && count <= MAX_CHILDREN, || {
            format!("{count} children")
        })?;
        let mut children: Vec<(u64, Nid)> = Vec::with_capacity(count);
        for i in 0..count {
            let key = r.u64(ENTRIES + i * INTERNAL_ENTRY)?;
            let nid = Nid(r.u64(ENTRIES + i * INTERNAL_ENTRY + 8)?);
            r.check(!nid.is_none(), || format!("child {i} is node 0"))?;
            if let Some((prev, _)) = children.last() {
                r.check(*prev < key, || format!("child {i}: keys out of order"))?;
            }
            children.push((key, nid));
        }
        Ok(DirInternal { children })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CheckpointNo, PageAddr};
    use crate::node::{Node, NodeBody};

    fn leaf() -> DirLeaf {
        DirLeaf {
            entries: vec![
                DirEntry {
                    key: 0x100,
                    ino: Ino(5),
                    dtype: 8,
                    name: Name::from_slice(b"a"),
                },
                DirEntry {
                    key: 0x200,
                    ino: Ino(6),
                    dtype: 4,
                    name: Name::from_slice(&[0xff; 255]),
                },
            ],
        }
    }

    #[test]
    fn leaf_round_trip_and_golden() {
        let node = Node {
            nid: Nid(3),
            ino: Ino(1),
            level: 0,
            body: NodeBody::DirLeaf(Box::new(leaf())),
        };
        let page = node.encode(CheckpointNo(1));
        assert_eq!(&page[32..34], &2u16.to_le_bytes());
        assert_eq!(&page[40..48], &0x100u64.to_le_bytes());
        assert_eq!(&page[48..56], &5u64.to_le_bytes());
        assert_eq!(page[56], 8);
        assert_eq!(page[57], 1);
        assert_eq!(page[58], b'a');
        assert_eq!(&page[59..67], &0x200u64.to_le_bytes());
        assert_eq!(
            Node::decode(&page[..], PageAddr(1), Nid(3)).expect("decode"),
            node
        );
    }

    #[test]
    fn leaf_rejects_bad_names_and_order() {
        let mut l = leaf();
        l.entries[0].name = Name::from_slice(b"a/b");
        let page = Node {
            nid: Nid(3),
            ino: Ino(1),
            level: 0,
            body: NodeBody::DirLeaf(Box::new(l)),
        }
        .encode(CheckpointNo(1));
        assert!(Node::decode(&page[..], PageAddr(1), Nid(3)).is_err());
        let mut l = leaf();
        l.entries.swap(0, 1);
        let page = Node {
            nid: Nid(3),
            ino: Ino(1),
            level: 0,
            body: NodeBody::DirLeaf(Box::new(l)),
        }
        .encode(CheckpointNo(1));
        assert!(Node::decode(&page[..], PageAddr(1), Nid(3)).is_err());
        let mut page = Node {
            nid: Nid(3),
            ino: Ino(1),
            level: 0,
            body: NodeBody::DirLeaf(Box::new(leaf())),
        }
        .encode(CheckpointNo(1));
        page[32..34].copy_from_slice(&4000u16.to_le_bytes());
        assert!(Node::decode(&page[..], PageAddr(1), Nid(3)).is_err());
    }

    #[test]
    fn internal_round_trip_and_search() {
        let int = DirInternal {
            children: vec![(0, Nid(10)), (500, Nid(11)), (900, Nid(12))],
        };
        assert_eq!(int.child_for(3), 0);
        assert_eq!(int.child_for(500), 1);
        assert_eq!(int.child_for(899), 1);
        assert_eq!(int.child_for(u64::MAX), 2);
        let node = Node {
            nid: Nid(3),
            ino: Ino(1),
            level: 1,
            body: NodeBody::DirInternal(Box::new(int)),
        };
        let page = node.encode(CheckpointNo(1));
        assert_eq!(
            Node::decode(&page[..], PageAddr(1), Nid(3)).expect("decode"),
            node
        );
        assert_eq!(MAX_CHILDREN, 253);
    }
}
