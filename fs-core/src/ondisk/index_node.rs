//! File map nodes: direct nodes hold block pointers, indirect nodes hold the
//! node ids of the level below.

use crate::block_ptr::{self, BlockPtr};
use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::Nid;
use crate::layout::PAGE_SIZE;
use crate::node::HEADER_SIZE;

/// Block pointers in a direct node.
pub const PTRS_PER_DIRECT: usize = (PAGE_SIZE - HEADER_SIZE) / block_ptr::SIZE;
/// Node ids in an indirect node.
pub const NIDS_PER_INDIRECT: usize = (PAGE_SIZE - HEADER_SIZE) / 8;

/// A page of block pointers (trailing holes trimmed in memory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectNode {
    /// Pointers, index 0 first.
    pub ptrs: Vec<BlockPtr>,
}

impl DirectNode {
    /// Pointer `i` (a hole past the end).
    pub fn get(&self, i: usize) -> BlockPtr {
        self.ptrs.get(i).copied().unwrap_or(BlockPtr::HOLE)
    }

    /// Sets pointer `i`, returning the old one.
    pub fn set(&mut self, i: usize, p: BlockPtr) -> BlockPtr {
        if i >= self.ptrs.len() {
            if p.is_hole() {
                return BlockPtr::HOLE;
            }
            self.ptrs.resize(i + 1, BlockPtr::HOLE);
        }
        let old = std::mem::replace(&mut self.ptrs[i], p);
        while self.ptrs.last().is_some_and(|p| p.is_hole()) {
            self.ptrs.pop();
        }
        old
    }

    /// No pointer left?
    pub fn is_empty(&self) -> bool {
        self.ptrs.is_empty()
    }

    /// Encodes after the node header.
    pub fn encode(&self, w: &mut Writer<'_>) {
        for (i, p) in self.ptrs.iter().take(PTRS_PER_DIRECT).enumerate() {
            p.encode(w, HEADER_SIZE + i * block_ptr::SIZE);
        }
    }

    /// Decodes after the node header.
    pub fn decode(r: &Reader<'_>) -> Result<DirectNode> {
        Ok(DirectNode {
            ptrs: block_ptr::decode_array(r, HEADER_SIZE, PTRS_PER_DIRECT)?,
        })
    }
}

/// A page of child node ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndirectNode {
    /// Children, index 0 first (trailing zeros trimmed in memory).
    pub nids: Vec<Nid>,
}

impl IndirectNode {
    /// Child `i` (0 past the end).
    pub fn get(&self, i: usize) -> Nid {
        self.nids.get(i).copied().unwrap_or(Nid::NONE)
    }

    /// Sets child `i`.
    pub fn set(&mut self, i: usize, nid: Nid) {
        if i >= self.nids.len() {
            if nid.is_none() {
                return;
            }
            self.nids.resize(i + 1, Nid::NONE);
        }
        self.nids[i] = nid;
        while self.nids.last().is_some_and(|n| n.is_none()) {
            self.nids.pop();
        }
    }

    /// No child left?
    pub fn is_empty(&self) -> bool {
        self.nids.is_empty()
    }

    /// Encodes after the node header.
    pub fn encode(&self, w: &mut Writer<'_>) {
        for (i, n) in self.nids.iter().take(NIDS_PER_INDIRECT).enumerate() {
            w.u64(HEADER_SIZE + i * 8, n.0);
        }
    }

    /// Decodes after the node header.
    pub fn decode(r: &Reader<'_>) -> Result<IndirectNode> {
        let area = r.bytes(HEADER_SIZE, NIDS_PER_INDIRECT * 8)?;
        let used = area.iter().rposition(|&b| b != 0).map_or(0, |p| p / 8 + 1);
        let mut nids = Vec::with_capacity(used);
        for i in 0..used {
            nids.push(Nid(r.u64(HEADER_SIZE + i * 8)?));
        }
        while nids.last().is_some_and(|n| n.is_none()) {
            nids.pop();
        }
        Ok(IndirectNode { nids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CheckpointNo, Ino, PageAddr};
    use crate::node::{Node, NodeBody};

    #[test]
    fn capacities() {
        assert_eq!(PTRS_PER_DIRECT, 254);
        assert_eq!(NIDS_PER_INDIRECT, 508);
    }

    #[test]
    fn direct_round_trip_and_golden() {
        let mut d = DirectNode::default();
        d.set(253, BlockPtr::stored(crate::ids::Vpn(9), 3));
        d.set(0, BlockPtr::UNWRITTEN);
        let node = Node {
            nid: Nid(8),
            ino: Ino(4),
            level: 0,
            body: NodeBody::Direct(Box::new(d.clone())),
        };
        let page = node.encode(CheckpointNo(1));
        let last = 32 + 253 * 16;
        assert_eq!(&page[last..last + 8], &9u64.to_le_bytes());
        assert_eq!(
            Node::decode(&page[..], PageAddr(1), Nid(8)).expect("decode"),
            node
        );
        assert_eq!(
            d.set(253, BlockPtr::HOLE),
            BlockPtr::stored(crate::ids::Vpn(9), 3)
        );
        assert_eq!(d.ptrs.len(), 1);
    }

    #[test]
    fn indirect_round_trip() {
        let mut ind = IndirectNode::default();
        ind.set(507, Nid(77));
        let node = Node {
            nid: Nid(8),
            ino: Ino(4),
            level: 1,
            body: NodeBody::Indirect(Box::new(ind)),
        };
        let page = node.encode(CheckpointNo(1));
        assert_eq!(&page[4088..4096], &77u64.to_le_bytes());
        assert_eq!(
            Node::decode(&page[..], PageAddr(1), Nid(8)).expect("decode"),
            node
        );
    }
}
