//! The POSIX access control list: the value of the `system.posix_acl_access`
//! and `system.posix_acl_default` attributes, kept in Linux's own binary
//! encoding so that what `getfacl` reads is byte for byte what `setfacl`
//! wrote. A 4-byte version (2), then 8-byte entries: tag (u16), permission
//! bits (u16), id (u32; 0xFFFFFFFF for the entries without one), all
//! little-endian, in the order the kernel requires (owner, named users,
//! owning group, named groups, mask, other).

use crate::error::{Error, Result};

/// The encoding's version (Linux `POSIX_ACL_XATTR_VERSION`).
pub const VERSION: u32 = 2;
/// Bytes of the header.
pub const HEADER: usize = 4;
/// Bytes of one entry.
pub const ENTRY: usize = 8;
/// The id of entries that name no user or group.
pub const NO_ID: u32 = u32::MAX;
/// Read, write and execute: the only permission bits an entry may have.
const RWX: u16 = 7;

/// Entry tags (Linux `ACL_USER_OBJ` ...), in the order entries must come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tag {
    /// The owner (`user::`).
    UserObj = 0x01,
    /// A named user (`user:ID:`).
    User = 0x02,
    /// The owning group (`group::`).
    GroupObj = 0x04,
    /// A named group (`group:ID:`).
    Group = 0x08,
    /// The most any named entry or the owning group grants (`mask::`).
    Mask = 0x10,
    /// Everyone else (`other::`).
    Other = 0x20,
}

impl Tag {
    fn from_code(c: u16) -> Option<Tag> {
        Some(match c {
            0x01 => Tag::UserObj,
            0x02 => Tag::User,
            0x04 => Tag::GroupObj,
            0x08 => Tag::Group,
            0x10 => Tag::Mask,
            0x20 => Tag::Other,
            _ => return None,
        })
    }

    fn has_id(self) -> bool {
        matches!(self, Tag::User | Tag::Group)
    }
}

/// One entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What the entry applies to.
    pub tag: Tag,
    /// Read (4), write (2), execute (1).
    pub perm: u16,
    /// The user or group id of a named entry ([`NO_ID`] otherwise).
    pub id: u32,
}

/// A valid access control list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    /// In the required order.
    pub entries: Vec<Entry>,
}

impl Acl {
    /// Decodes and validates an attribute value. `Ok(None)` is the empty
    /// list (a header alone), which Linux treats as "remove". Anything
    /// malformed or inconsistent is `Invalid` (EINVAL), as the kernel
    /// answers: an unknown version or tag, permission bits beyond rwx,
    /// entries out of order, a repeated named id, a missing owner, owning
    /// group or other entry, or named entries without a mask.
    pub fn decode(value: &[u8]) -> Result<Option<Acl>> {
        if value.len() < HEADER || !(value.len() - HEADER).is_multiple_of(ENTRY) {
            return Err(Error::Invalid);
        }
        let version = u32::from_le_bytes(value[..HEADER].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(Error::Invalid);
        }
        let entries = value[HEADER..]
            .chunks_exact(ENTRY)
            .map(|e| {
                let tag = Tag::from_code(u16::from_le_bytes([e[0], e[1]])).ok_or(Error::Invalid)?;
                let perm = u16::from_le_bytes([e[2], e[3]]);
                let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
                Ok(Entry {
                    tag,
                    perm,
                    id: if tag.has_id() { id } else { NO_ID },
                })
            })
            .collect::<Result<Vec<Entry>>>()?;
        if entries.is_empty() {
            return Ok(None);
        }
        let mut acl = Acl { entries };
        acl.validate()?;
        Ok(Some(acl))
    }

    /// Checks the rules [`Acl::decode`] lists. Named entries of one kind
    /// may come in any order of id (the kernel accepts that too); they are
    /// put in order here, so that the stored list is canonical.
    fn validate(&mut self) -> Result<()> {
        if !self.entries.windows(2).all(|w| w[0].tag <= w[1].tag) {
            return Err(Error::Invalid);
        }
        self.entries.sort_by_key(|e| (e.tag, e.id));
        let ok = self.entries.iter().all(|e| e.perm & !RWX == 0)
            && self.entries.windows(2).all(|w| {
                let (a, b) = (w[0], w[1]);
                a.tag < b.tag || (a.tag == b.tag && a.tag.has_id() && a.id < b.id)
            })
            && [Tag::UserObj, Tag::GroupObj, Tag::Other]
                .iter()
                .all(|t| self.find(*t).is_some())
            && (self.find(Tag::Mask).is_some() || !self.has_named());
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid)
        }
    }

    /// The encoded attribute value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + ENTRY * self.entries.len());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&(e.tag as u16).to_le_bytes());
            out.extend_from_slice(&e.perm.to_le_bytes());
            out.extend_from_slice(&e.id.to_le_bytes());
        }
        out
    }

    /// The minimal list that says what permission bits `mode` say.
    pub fn from_mode(mode: u32) -> Acl {
        let entry = |tag, shift: u32| Entry {
            tag,
            perm: ((mode >> shift) & 7) as u16,
            id: NO_ID,
        };
        Acl {
            entries: vec![
                entry(Tag::UserObj, 6),
                entry(Tag::GroupObj, 3),
                entry(Tag::Other, 0),
            ],
        }
    }

    /// The first entry with `tag`.
    pub fn find(&self, tag: Tag) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    fn find_mut(&mut self, tag: Tag) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.tag == tag)
    }

    /// Are there named user or group entries?
    fn has_named(&self) -> bool {
        self.entries.iter().any(|e| e.tag.has_id())
    }

    /// Does the list say no more than permission bits can (owner, owning
    /// group and other entries only)? Such a list is not stored: the mode
    /// says it (as ext4 does).
    pub fn is_minimal(&self) -> bool {
        !self.has_named() && self.find(Tag::Mask).is_none()
    }

    /// The entry that stands for the group class in the mode: the mask if
    /// there is one, else the owning group.
    fn group_class_mut(&mut self) -> &mut Entry {
        let tag = if self.find(Tag::Mask).is_some() {
            Tag::Mask
        } else {
            Tag::GroupObj
        };
        self.find_mut(tag).expect("validated: owning group present")
    }

    /// The permission bits (0o777) this list sets in the mode: owner, group
    /// class (mask or owning group) and other (Linux `posix_acl_equiv_mode`).
    pub fn mode_bits(&self) -> u32 {
        let get = |tag| u32::from(self.find(tag).map_or(0, |e| e.perm));
        let group = self.find(Tag::Mask).or(self.find(Tag::GroupObj));
        let group = u32::from(group.map_or(0, |e| e.perm));
        (get(Tag::UserObj) << 6) | (group << 3) | get(Tag::Other)
    }

    /// Makes the list agree with a new mode's permission bits (`chmod`):
    /// the owner, group class and other entries take the mode's bits
    /// (Linux `posix_acl_chmod`).
    pub fn chmod(&mut self, mode: u32) {
        let bits = |shift: u32| ((mode >> shift) & 7) as u16;
        if let Some(e) = self.find_mut(Tag::UserObj) {
            e.perm = bits(6);
        }
        if let Some(e) = self.find_mut(Tag::Other) {
            e.perm = bits(0);
        }
        self.group_class_mut().perm = bits(3);
    }

    /// Narrows an inherited default list by the mode asked for at creation,
    /// and the mode by the list (Linux `posix_acl_create_masq`): each class
    /// gets what both allow. Returns the new mode (other bits kept).
    pub fn create_masq(&mut self, mode: u32) -> u32 {
        let mut bits = mode & 0o777;
        for (tag, shift) in [(Tag::UserObj, 6), (Tag::Other, 0)] {
            if let Some(e) = self.find_mut(tag) {
                e.perm &= ((bits >> shift) & 7) as u16;
                bits = (bits & !(7 << shift)) | (u32::from(e.perm) << shift);
            }
        }
        let g = self.group_class_mut();
        g.perm &= ((bits >> 3) & 7) as u16;
        bits = (bits & !0o070) | (u32::from(g.perm) << 3);
        (mode & !0o777) | bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tag: Tag, perm: u16, id: u32) -> Entry {
        Entry { tag, perm, id }
    }

    fn named() -> Acl {
        Acl {
            entries: vec![
                e(Tag::UserObj, 6, NO_ID),
                e(Tag::User, 4, 1000),
                e(Tag::User, 7, 1001),
                e(Tag::GroupObj, 4, NO_ID),
                e(Tag::Group, 5, 50),
                e(Tag::Mask, 5, NO_ID),
                e(Tag::Other, 0, NO_ID),
            ],
        }
    }

    #[test]
    fn round_trip_and_golden_bytes() {
        let acl = named();
        let bytes = acl.encode();
        assert_eq!(bytes.len(), HEADER + 7 * ENTRY);
        assert_eq!(&bytes[..4], &2u32.to_le_bytes());
        assert_eq!(&bytes[4..12], &[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&bytes[12..20], &[2, 0, 4, 0, 0xe8, 0x03, 0, 0]);
        assert_eq!(Acl::decode(&bytes).expect("valid"), Some(acl));
        assert_eq!(Acl::decode(&2u32.to_le_bytes()).expect("empty"), None);
    }

    #[test]
    fn malformed_and_inconsistent_lists_are_invalid() {
        let bad = |acl: &Acl| matches!(Acl::decode(&acl.encode()), Err(Error::Invalid));
        let mut swapped = named();
        swapped.entries.swap(1, 2);
        let sorted = Acl::decode(&swapped.encode()).expect("ids in any order");
        assert_eq!(sorted, Some(named()), "named users put in order");
        let mut swapped = named();
        swapped.entries.swap(2, 3);
        assert!(bad(&swapped), "a named user after the owning group");
        let mut dup = named();
        dup.entries[2].id = 1000;
        assert!(bad(&dup), "a repeated id");
        let mut no_mask = named();
        no_mask.entries.remove(5);
        assert!(bad(&no_mask), "named entries need a mask");
        let mut no_other = named();
        no_other.entries.pop();
        assert!(bad(&no_other));
        let mut wide = named();
        wide.entries[0].perm = 8;
        assert!(bad(&wide), "bits beyond rwx");
        let mut bytes = named().encode();
        bytes[0] = 1;
        assert!(
            matches!(Acl::decode(&bytes), Err(Error::Invalid)),
            "version"
        );
        let mut bytes = named().encode();
        bytes[4] = 0x40;
        assert!(matches!(Acl::decode(&bytes), Err(Error::Invalid)), "tag");
        assert!(matches!(Acl::decode(&[2, 0, 0]), Err(Error::Invalid)));
        assert!(matches!(Acl::decode(&bytes[..9]), Err(Error::Invalid)));
        // A mask alone with the three base entries is fine.
        let mut masked = Acl::from_mode(0o640);
        masked.entries.insert(2, e(Tag::Mask, 4, NO_ID));
        assert!(Acl::decode(&masked.encode()).is_ok());
    }

    #[test]
    fn mode_bits_follow_the_mask() {
        let acl = named();
        assert_eq!(acl.mode_bits(), 0o650);
        let min = Acl::from_mode(0o754);
        assert!(min.is_minimal());
        assert_eq!(min.mode_bits(), 0o754);
        assert!(!named().is_minimal());
    }

    #[test]
    fn chmod_sets_the_mask_not_the_owning_group() {
        let mut acl = named();
        acl.chmod(0o701);
        assert_eq!(acl.find(Tag::UserObj).map(|e| e.perm), Some(7));
        assert_eq!(acl.find(Tag::Mask).map(|e| e.perm), Some(0));
        assert_eq!(acl.find(Tag::GroupObj).map(|e| e.perm), Some(4));
        assert_eq!(acl.find(Tag::Other).map(|e| e.perm), Some(1));
        let mut min = Acl::from_mode(0o644);
        min.chmod(0o750);
        assert_eq!(min, Acl::from_mode(0o750));
    }

    #[test]
    fn create_masq_takes_what_both_allow() {
        // A default list of u::rwx u:1000:r g::r-x g:50:r-x m::r-x o::---
        // meets open(..., 0o644): the file gets rw-, r--, ---.
        let mut acl = named();
        acl.entries[0].perm = 7;
        let mode = acl.create_masq(0o100644);
        assert_eq!(mode, 0o100640);
        assert_eq!(acl.find(Tag::UserObj).map(|e| e.perm), Some(6));
        assert_eq!(acl.find(Tag::Mask).map(|e| e.perm), Some(4));
        assert_eq!(acl.find(Tag::GroupObj).map(|e| e.perm), Some(4), "kept");
        let mut min = Acl::from_mode(0o750);
        assert_eq!(min.create_masq(0o2777), 0o2750);
        assert_eq!(min, Acl::from_mode(0o750));
    }
}
