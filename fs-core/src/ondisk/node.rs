//! Nodes: the metadata pages found through the node address table. Every
//! node starts with the same 32-byte header naming its kind, its id and the
//! inode it belongs to, so a misdirected read is caught.

use crate::codec::{Reader, Writer};
use crate::dir_node::{DirInternal, DirLeaf};
use crate::error::Result;
use crate::ids::{CheckpointNo, Ino, Nid, PageAddr};
use crate::index_node::{DirectNode, IndirectNode};
use crate::inode_pack::InodePack;
use crate::layout::{zero_page, Page};
use crate::xattr::XattrNode;

/// "PGND" in ASCII.
pub const MAGIC: [u8; 4] = *b"PGND";
/// Bytes of the common header.
pub const HEADER_SIZE: usize = 32;

/// Byte offsets of the header fields.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const KIND: usize = 4;
    pub const LEVEL: usize = 5;
    pub const NID: usize = 8;
    pub const INO: usize = 16;
    pub const CHECKPOINT_NO: usize = 24;
}

/// Kind codes stored at offset 4.
pub mod kind {
    pub const INODE_PACK: u8 = 1;
    pub const DIRECT: u8 = 2;
    pub const INDIRECT: u8 = 3;
    pub const DIR_LEAF: u8 = 4;
    pub const DIR_INTERNAL: u8 = 5;
    pub const XATTR: u8 = 6;
}

/// A decoded node body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeBody {
    /// Sixteen inode slots.
    InodePack(Box<InodePack>),
    /// A page of file block pointers.
    Direct(Box<DirectNode>),
    /// A page of node ids of the next level down of a file map.
    Indirect(Box<IndirectNode>),
    /// A leaf of a directory index.
    DirLeaf(Box<DirLeaf>),
    /// An interior page of a directory index.
    DirInternal(Box<DirInternal>),
    /// Extended attributes of an inode.
    Xattr(Box<XattrNode>),
}

/// A node: header fields plus body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its id.
    pub nid: Nid,
    /// The inode it belongs to (none for an inode pack).
    pub ino: Ino,
    /// Level inside its tree (indirect depth, directory index height).
    pub level: u8,
    /// The body.
    pub body: NodeBody,
}

impl Node {
    /// Bytes this node takes in memory, decoded: what a cache sized in
    /// bytes counts (an estimate: the allocator's own overhead is left out).
    pub fn footprint(&self) -> usize {
        use std::mem::size_of;
        fn vec<T>(v: &[T]) -> usize {
            std::mem::size_of_val(v)
        }
        size_of::<Node>()
            + match &self.body {
                NodeBody::InodePack(p) => {
                    let heap = p.slots.iter().flatten().map(|i| {
                        i.inline.capacity()
                            + if i.ptrs.spilled() {
                                vec(&i.ptrs[..])
                            } else {
                                0
                            }
                    });
                    size_of::<InodePack>() + heap.sum::<usize>()
                }
                NodeBody::Direct(d) => size_of::<DirectNode>() + vec(&d.ptrs),
                NodeBody::Indirect(i) => size_of::<IndirectNode>() + vec(&i.nids),
                NodeBody::DirLeaf(l) => {
                    let names = l.entries.iter().filter(|e| e.name.spilled());
                    size_of::<DirLeaf>()
                        + vec(&l.entries)
                        + names.map(|e| e.name.len()).sum::<usize>()
                }
                NodeBody::DirInternal(d) => size_of::<DirInternal>() + vec(&d.children),
                NodeBody::Xattr(x) => {
                    let heap = x.entries.iter().map(|a| a.name.len() + a.value.len());
                    size_of::<XattrNode>() + vec(&x.entries) + heap.sum::<usize>()
                }
            }
    }

    fn kind_code(&self) -> u8 {
        match self.body {
            NodeBody::InodePack(_) => kind::INODE_PACK,
            NodeBody::Direct(_) => kind::DIRECT,
            NodeBody::Indirect(_) => kind::INDIRECT,
            NodeBody::DirLeaf(_) => kind::DIR_LEAF,
            NodeBody::DirInternal(_) => kind::DIR_INTERNAL,
            NodeBody::Xattr(_) => kind::XATTR,
        }
    }

    /// Encodes the node as written in checkpoint `cp`.
    pub fn encode(&self, cp: CheckpointNo) -> Box<Page> {
        let mut page = zero_page();
        let mut w = Writer::new(&mut page[..]);
        w.bytes(off::MAGIC, &MAGIC);
        w.u8(off::KIND, self.kind_code());
        w.u8(off::LEVEL, self.level);
        w.u64(off::NID, self.nid.0);
        w.u64(off::INO, self.ino.0);
        w.u64(off::CHECKPOINT_NO, cp.0);
        match &self.body {
            NodeBody::InodePack(b) => b.encode(&mut w),
            NodeBody::Direct(b) => b.encode(&mut w),
            NodeBody::Indirect(b) => b.encode(&mut w),
            NodeBody::DirLeaf(b) => b.encode(&mut w),
            NodeBody::DirInternal(b) => b.encode(&mut w),
            NodeBody::Xattr(b) => b.encode(&mut w),
        }
        page
    }

    /// Decodes a node page read at `addr`, expected to be node `nid`.
    pub fn decode(page: &[u8], addr: PageAddr, nid: Nid) -> Result<Node> {
        let r = Reader::new(page, "node", addr);
        r.check(r.bytes(off::MAGIC, 4)? == MAGIC, || {
            format!("node {nid}: bad magic")
        })?;
        let stored_nid = Nid(r.u64(off::NID)?);
        r.check(stored_nid == nid, || {
            format!("expected node {nid}, found node {stored_nid}")
        })?;
        let ino = Ino(r.u64(off::INO)?);
        let level = r.u8(off::LEVEL)?;
        let code = r.u8(off::KIND)?;
        let body = match code {
            kind::INODE_PACK => {
                r.check(ino.is_none(), || {
                    format!("inode pack {nid} claims inode {ino}")
                })?;
                NodeBody::InodePack(Box::new(InodePack::decode(&r)?))
            }
            kind::DIRECT => NodeBody::Direct(Box::new(DirectNode::decode(&r)?)),
            kind::INDIRECT => NodeBody::Indirect(Box::new(IndirectNode::decode(&r)?)),
            kind::DIR_LEAF => NodeBody::DirLeaf(Box::new(DirLeaf::decode(&r)?)),
            kind::DIR_INTERNAL => NodeBody::DirInternal(Box::new(DirInternal::decode(&r)?)),
            kind::XATTR => NodeBody::Xattr(Box::new(XattrNode::decode(&r)?)),
            other => return Err(r.corrupt(format!("node {nid}: unknown kind {other}"))),
        };
        Ok(Node {
            nid,
            ino,
            level,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_golden_and_misdirected_read() {
        let node = Node {
            nid: Nid(42),
            ino: Ino(7),
            level: 2,
            body: NodeBody::Indirect(Box::default()),
        };
        let page = node.encode(CheckpointNo(9));
        assert_eq!(&page[0..4], b"PGND");
        assert_eq!(page[4], kind::INDIRECT);
        assert_eq!(page[5], 2);
        assert_eq!(&page[8..16], &42u64.to_le_bytes());
        assert_eq!(&page[16..24], &7u64.to_le_bytes());
        assert_eq!(&page[24..32], &9u64.to_le_bytes());
        assert_eq!(
            Node::decode(&page[..], PageAddr(5), Nid(42)).expect("decode"),
            node
        );
        assert!(Node::decode(&page[..], PageAddr(5), Nid(43)).is_err());
        let mut bad = page.clone();
        bad[4] = 99;
        assert!(Node::decode(&bad[..], PageAddr(5), Nid(42)).is_err());
    }
}
