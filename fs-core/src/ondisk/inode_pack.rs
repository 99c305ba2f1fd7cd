//! The inode pack: a node holding sixteen inode records. Inode `n` lives in
//! slot `(n - 1) % 16` of pack node `(n - 1) / 16 + 1` (see [`Ino::pack`]),
//! so the node address table moves all sixteen with one entry, and a full
//! check reads 256 bytes per file as e2fsck does, not a page.

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::{Ino, PACK_SLOTS};
use crate::inode::{self, Inode};
use crate::layout::PAGE_SIZE;
use crate::node::HEADER_SIZE;

/// Inode slots in a pack.
pub const SLOTS: usize = PACK_SLOTS as usize;

/// Byte offsets, from the start of the node page.
pub mod off {
    /// Bitmap of the slots in use (bit k: slot k).
    pub const USED: usize = 32;
    /// Zero.
    pub const RESERVED: usize = 34;
    /// The first slot; slot k starts at `SLOTS + k * inode::SIZE`.
    pub const SLOTS: usize = 64;
}

/// Where slot `k` starts in the page.
pub fn slot_offset(k: usize) -> usize {
    off::SLOTS + k * inode::SIZE
}

/// Sixteen inode slots, each free or holding an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InodePack {
    /// The slots.
    pub slots: [Option<Inode>; SLOTS],
}

impl Default for InodePack {
    fn default() -> Self {
        InodePack {
            slots: std::array::from_fn(|_| None),
        }
    }
}

impl InodePack {
    /// The inode in the slot of `ino`, if that slot is in use.
    pub fn get(&self, ino: Ino) -> Option<&Inode> {
        self.slots.get(ino.slot())?.as_ref()
    }

    /// The inode in the slot of `ino`, mutable.
    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Inode> {
        self.slots.get_mut(ino.slot())?.as_mut()
    }

    /// The first free slot.
    pub fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    /// Slots in use.
    pub fn used(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Encodes the slots after the node header.
    pub fn encode(&self, w: &mut Writer<'_>) {
        let mut used = 0u16;
        for (k, slot) in self.slots.iter().enumerate() {
            if let Some(inode) = slot {
                used |= 1 << k;
                inode.encode(&mut w.sub(slot_offset(k), inode::SIZE));
            }
        }
        w.u16(off::USED, used);
    }

    /// Decodes the slots after the node header. A free slot must be zero,
    /// so a stray bit in the bitmap or a half-freed slot is caught.
    pub fn decode(r: &Reader<'_>) -> Result<InodePack> {
        let used = r.u16(off::USED)?;
        let mut pack = InodePack::default();
        for (k, slot) in pack.slots.iter_mut().enumerate() {
            let rec = r.sub(slot_offset(k), inode::SIZE, "inode")?;
            if used & (1 << k) != 0 {
                *slot = Some(Inode::decode(&rec)?);
            } else {
                let zero = rec.bytes(0, inode::SIZE)?.iter().all(|&b| b == 0);
                r.check(zero, || format!("free inode slot {k} is not zero"))?;
            }
        }
        Ok(pack)
    }
}

const _: () = assert!(off::SLOTS + SLOTS * inode::SIZE == PAGE_SIZE);
const _: () = assert!(off::USED == HEADER_SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CheckpointNo, Nid, PageAddr};
    use crate::inode::{S_IFDIR, S_IFREG};
    use crate::node::{Node, NodeBody};

    fn node(pack: InodePack) -> Node {
        Node {
            nid: Nid(4),
            ino: Ino::NONE,
            level: 0,
            body: NodeBody::InodePack(Box::new(pack)),
        }
    }

    fn sample() -> InodePack {
        let mut pack = InodePack::default();
        pack.slots[0] = Some(Inode {
            mode: S_IFDIR | 0o755,
            nlink: 2,
            ..Inode::default()
        });
        pack.slots[15] = Some(Inode {
            mode: S_IFREG | 0o600,
            nlink: 1,
            size: 5,
            ..Inode::default()
        });
        pack
    }

    #[test]
    fn round_trip_and_golden() {
        let n = node(sample());
        let page = n.encode(CheckpointNo(3));
        assert_eq!(&page[32..34], &0x8001u16.to_le_bytes());
        assert_eq!(&page[64..68], &(S_IFDIR | 0o755).to_le_bytes());
        assert_eq!(
            &page[64 + 15 * 252..68 + 15 * 252],
            &(S_IFREG | 0o600).to_le_bytes()
        );
        assert_eq!(
            Node::decode(&page[..], PageAddr(9), Nid(4)).expect("decode"),
            n
        );
        let pack = sample();
        assert_eq!(pack.used(), 2);
        assert_eq!(pack.free_slot(), Some(1));
        assert!(pack.get(Ino::new(Nid(4), 15)).is_some());
        assert!(pack.get(Ino::new(Nid(4), 14)).is_none());
    }

    #[test]
    fn bitmap_and_slots_must_agree() {
        let page = node(sample()).encode(CheckpointNo(3));
        let mut bad = page.clone();
        bad[32] |= 2; // slot 1 claimed, but all zero: no file type
        assert!(Node::decode(&bad[..], PageAddr(9), Nid(4)).is_err());
        let mut bad = page.clone();
        bad[64 + 252 + 7] = 1; // garbage in free slot 1
        assert!(Node::decode(&bad[..], PageAddr(9), Nid(4)).is_err());
    }
}
