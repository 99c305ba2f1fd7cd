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
    /// An inode number is the node id of the inode's node.
    Nid(u64)
);
id_type!(
    /// A checkpoint: a consistent root of the whole filesystem.
    CheckpointNo(u64)
);
id_type!(
    /// A transform chain (compression, encryption, ...); 0 is "stored raw".
    TransformId(u16)
);

/// Inode numbers are the node ids of inode nodes.
pub type Ino = Nid;

impl PageAddr {
    /// The "no page" address (page 0 holds a superblock, never data).
    pub const NONE: PageAddr = PageAddr(0);

    /// True when this is the "no page" address.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The address `n` pages further on.
    pub fn offset(self, n: u64) -> PageAddr {
        PageAddr(self.0 + n)
    }
}

impl Nid {
    /// "No node".
    pub const NONE: Nid = Nid(0);
    /// The root directory (FUSE requires inode 1 for the root).
    pub const ROOT: Nid = Nid(1);
    /// The graveyard: a hidden directory holding unlinked inodes that are
    /// still open, so that a crash cannot leak their space.
    pub const GRAVEYARD: Nid = Nid(2);
    /// First node id handed out to ordinary nodes.
    pub const FIRST_FREE: Nid = Nid(3);

    /// True when this is the "no node" id.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}
