//! Newtypes for the numbers that name things on disk, so that a page address
//! can never be passed where a segment or node number is meant.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A 4 KiB page on the device, counted from the start of the device.
    /// Page 0 is the first superblock, so 0 also means "no page" in pointers.
    PageAddr(u64)
);
id_type!(
    /// A segment: a fixed-size run of pages, written append-only.
    SegmentNo(u64)
);
id_type!(
    /// A node: a metadata page found through the node address table.
    Nid(u64)
);
id_type!(
    /// An inode number. Inodes live sixteen to a page in inode pack nodes;
    /// the number names the pack and the slot (see [`Ino::pack`]).
    Ino(u64)
);
id_type!(
    /// A checkpoint: a consistent root of the whole filesystem.
    CheckpointNo(u64)
);
id_type!(
    /// A virtual page number: the name of a stored unit (file data, a
    /// node, a page of a root's node address table) that stays the same
    /// when the cleaner moves the unit. The page address table says where
    /// it is now; 0 means "none".
    Vpn(u64)
);
id_type!(
    /// A transform chain (compression, encryption, ...); 0 is "stored raw".
    TransformId(u16)
);

impl PageAddr {
    /// The "no page" address (page 0 holds a superblock, never data).
    pub const NONE: PageAddr = PageAddr(0);
    /// Pages are counted in 64-bit byte offsets: no address read from
    /// disk is above this, so arithmetic on one near it cannot overflow.
    pub const MAX: PageAddr = PageAddr(u64::MAX / crate::layout::PAGE_SIZE as u64);

    /// True when this is the "no page" address.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The address `n` pages further on.
    pub fn offset(self, n: u64) -> PageAddr {
        PageAddr(self.0 + n)
    }
}

impl Vpn {
    /// "No unit".
    pub const NONE: Vpn = Vpn(0);
    /// First number handed out (0 is "none").
    pub const FIRST: Vpn = Vpn(1);

    /// True when this is the "no unit" number.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl Nid {
    /// "No node".
    pub const NONE: Nid = Nid(0);
    /// The inode pack made by mkfs, holding the root and the graveyard.
    pub const FIRST_PACK: Nid = Nid(1);
    /// First node id handed out at run time.
    pub const FIRST_FREE: Nid = Nid(2);

    /// True when this is the "no node" id.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// Inode slots in one inode pack.
pub const PACK_SLOTS: u64 = 16;

impl Ino {
    /// "No inode".
    pub const NONE: Ino = Ino(0);
    /// The root directory (FUSE requires inode 1 for the root).
    pub const ROOT: Ino = Ino(1);
    /// The graveyard: a hidden directory holding unlinked inodes that are
    /// still open, so that a crash cannot leak their space.
    pub const GRAVEYARD: Ino = Ino(2);

    /// The inode in `slot` of pack `pack`: numbers start at 1 (the first
    /// slot of the first pack), so the root is inode 1 as FUSE requires.
    pub fn new(pack: Nid, slot: usize) -> Ino {
        Ino((pack.0 - 1) * PACK_SLOTS + slot as u64 + 1)
    }

    /// The pack node holding this inode.
    pub fn pack(self) -> Nid {
        Nid(self.0.saturating_sub(1) / PACK_SLOTS + 1)
    }

    /// The slot inside the pack.
    pub fn slot(self) -> usize {
        (self.0.saturating_sub(1) % PACK_SLOTS) as usize
    }

    /// True when this is the "no inode" number.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_numbers_name_pack_and_slot() {
        assert_eq!(Ino::new(Nid::FIRST_PACK, 0), Ino::ROOT);
        assert_eq!(Ino::new(Nid::FIRST_PACK, 1), Ino::GRAVEYARD);
        for (pack, slot) in [(1, 15), (2, 0), (7, 9), (u64::MAX / 32, 3)] {
            let ino = Ino::new(Nid(pack), slot);
            assert_eq!((ino.pack(), ino.slot()), (Nid(pack), slot));
        }
        assert_eq!(Ino::new(Nid(2), 0).0, 17);
    }
}
