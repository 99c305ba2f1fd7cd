//! What the full check keeps of each inode: the fields its reference and
//! namespace checks read, and nothing else. A pack is reduced to these as
//! it is read, so the check holds 64 bytes an inode (plus its inline
//! pointers, and the fields of directories and large files) instead of a
//! decoded inode's 304: a million files fit in well under 200 MiB.

use crate::block_ptr::BlockPtr;
use crate::dir_node::DirLeaf;
use crate::ids::{Ino, Nid};
use crate::inode::{Inode, FLAG_INLINE, MAP_NIDS, S_IFDIR, S_IFMT, S_IFREG};
use crate::inode_pack::{InodePack, SLOTS};

/// One inode, as the check sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Type and permission bits.
    pub mode: u32,
    /// Hard links.
    pub nlink: u32,
    /// Inode flags.
    pub flags: u32,
    /// Owner, group and project (what its usage is charged to).
    pub ids: (u32, u32, u32),
    /// Pages stored or reserved (a directory: index pages).
    pub blocks: u64,
    /// The block pointers held in the inode (none is no allocation).
    pub ptrs: Box<[BlockPtr]>,
    /// What few inodes have (none is no allocation).
    rare: Option<Box<Rare>>,
}

/// The fields that are zero for most inodes: those of directories, of
/// files beyond their inline pointers, of inodes with attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Rare {
    parent: Ino,
    xattr_nid: Nid,
    dir_root: Nid,
    dir_entries: u64,
    map_nids: [Nid; MAP_NIDS],
}

impl Facts {
    /// What the check keeps of `inode`.
    pub fn of(inode: &Inode) -> Facts {
        let rare = Rare {
            parent: inode.parent,
            xattr_nid: inode.xattr_nid,
            dir_root: inode.dir_root,
            dir_entries: inode.dir_entries,
            map_nids: inode.map_nids,
        };
        Facts {
            mode: inode.mode,
            nlink: inode.nlink,
            flags: inode.flags,
            ids: (inode.uid, inode.gid, inode.project),
            blocks: inode.blocks,
            ptrs: inode.ptrs.iter().copied().collect(),
            rare: (rare != Rare::default()).then(|| Box::new(rare)),
        }
    }

    fn rare(&self) -> &Rare {
        static NONE: Rare = Rare {
            parent: Ino::NONE,
            xattr_nid: Nid::NONE,
            dir_root: Nid::NONE,
            dir_entries: 0,
            map_nids: [Nid::NONE; MAP_NIDS],
        };
        self.rare.as_deref().unwrap_or(&NONE)
    }

    /// A directory's parent.
    pub fn parent(&self) -> Ino {
        self.rare().parent
    }

    /// Node holding the extended attributes (none: no attribute).
    pub fn xattr_nid(&self) -> Nid {
        self.rare().xattr_nid
    }

    /// Root of a directory's index (none: empty).
    pub fn dir_root(&self) -> Nid {
        self.rare().dir_root
    }

    /// Entries of a directory.
    pub fn dir_entries(&self) -> u64 {
        self.rare().dir_entries
    }

    /// The map node ids: direct, indirect, double, triple.
    pub fn map_nids(&self) -> [Nid; MAP_NIDS] {
        self.rare().map_nids
    }

    /// A directory?
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// A regular file?
    pub fn is_reg(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    /// Does the data area hold inline bytes rather than a file map?
    pub fn has_inline(&self) -> bool {
        self.flags & FLAG_INLINE != 0
    }
}

/// A pack's sixteen slots, as the check sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackFacts {
    /// The slots.
    pub slots: [Option<Facts>; SLOTS],
}

impl PackFacts {
    /// What the check keeps of `pack`.
    pub fn of(pack: &InodePack) -> PackFacts {
        PackFacts {
            slots: std::array::from_fn(|k| pack.slots[k].as_ref().map(Facts::of)),
        }
    }

    /// The inode in the slot of `ino`, if that slot is in use.
    pub fn get(&self, ino: Ino) -> Option<&Facts> {
        self.slots.get(ino.slot())?.as_ref()
    }

    /// Slots in use.
    pub fn used(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// A directory leaf, as the check sees it: its entries in 24 bytes each
/// and their names packed in one allocation (a decoded entry takes 64
/// bytes, its name inline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafFacts {
    entries: Box<[Packed]>,
    names: Box<[u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Packed {
    key: u64,
    ino: Ino,
    name_at: u32,
    name_len: u8,
    dtype: u8,
}

/// One entry of a [`LeafFacts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Hash key.
    pub key: u64,
    /// The inode named.
    pub ino: Ino,
    /// File type, as Linux `DT_*`.
    pub dtype: u8,
    /// The name.
    pub name: &'a [u8],
}

impl LeafFacts {
    /// What the check keeps of `leaf`.
    pub fn of(leaf: &DirLeaf) -> LeafFacts {
        let mut names = Vec::with_capacity(leaf.entries.iter().map(|e| e.name.len()).sum());
        let entries = leaf
            .entries
            .iter()
            .map(|e| {
                let name_at = names.len() as u32;
                names.extend_from_slice(&e.name);
                Packed {
                    key: e.key,
                    ino: e.ino,
                    name_at,
                    // A leaf holds names up to NAME_MAX (255) bytes.
                    name_len: e.name.len() as u8,
                    dtype: e.dtype,
                }
            })
            .collect();
        LeafFacts {
            entries,
            names: names.into_boxed_slice(),
        }
    }

    /// The entries, in the leaf's order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        self.entries.iter().map(|p| {
            let at = p.name_at as usize;
            Entry {
                key: p.key,
                ino: p.ino,
                dtype: p.dtype,
                name: &self.names[at..at + usize::from(p.name_len)],
            }
        })
    }

    /// Entries in the leaf.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Vpn;

    #[test]
    fn facts_keep_what_the_check_reads() {
        let mut inode = Inode {
            mode: S_IFREG | 0o644,
            nlink: 2,
            blocks: 7,
            xattr_nid: Nid(9),
            ..Inode::default()
        };
        inode.ptrs.push(BlockPtr {
            vpn: Vpn(5),
            crc: 3,
            ..BlockPtr::default()
        });
        let f = Facts::of(&inode);
        assert!(f.is_reg() && !f.is_dir() && !f.has_inline());
        assert_eq!((f.nlink, f.blocks, f.xattr_nid()), (2, 7, Nid(9)));
        assert_eq!(&f.ptrs[..], &inode.ptrs[..]);
        inode.xattr_nid = Nid::NONE;
        let plain = Facts::of(&inode);
        assert!(plain.rare.is_none(), "nothing rare: nothing allocated");
        assert_eq!(plain.map_nids(), [Nid::NONE; MAP_NIDS]);
        inode.map_nids[1] = Nid(12);
        inode.parent = Ino(3);
        let mapped = Facts::of(&inode);
        assert_eq!((mapped.map_nids()[1], mapped.parent()), (Nid(12), Ino(3)));
    }

    #[test]
    fn a_leaf_keeps_every_entry_and_name() {
        use crate::dir_node::DirEntry;
        let names: [&[u8]; 3] = [b"a", b"", &[b'x'; 255]];
        let leaf = DirLeaf {
            entries: names
                .iter()
                .enumerate()
                .map(|(k, n)| DirEntry {
                    key: k as u64 * 7,
                    ino: Ino(k as u64 + 10),
                    dtype: k as u8,
                    name: n.iter().copied().collect(),
                })
                .collect(),
        };
        let facts = LeafFacts::of(&leaf);
        assert_eq!(facts.len(), 3);
        for (e, d) in facts.entries().zip(&leaf.entries) {
            assert_eq!(
                (e.key, e.ino, e.dtype, e.name),
                (d.key, d.ino, d.dtype, &d.name[..])
            );
        }
    }

    #[test]
    fn a_facts_record_is_small() {
        // The memory bound at a million files rests on this.
        assert!(std::mem::size_of::<Option<Facts>>() <= 64);
    }
}
