//! The extended attribute node: all of an inode's extended attributes in one
//! page, with the namespace stored as a code instead of a text prefix.

use crate::codec::{Reader, Writer};
use crate::dir_node::{COUNT, ENTRIES, SPACE};
use crate::error::{Error, Result};

/// Longest attribute name with its prefix (Linux XATTR_NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Largest value Linux passes (XATTR_SIZE_MAX).
pub const VALUE_MAX: usize = 65536;
/// Fixed bytes of an entry: namespace, name length, value length.
pub const ENTRY_FIXED: usize = 4;

/// Attribute namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// `user.`
    User = 1,
    /// `trusted.` (root only)
    Trusted = 2,
    /// `security.`
    Security = 3,
    /// `system.posix_acl_access` (the whole name; the suffix is empty)
    PosixAclAccess = 4,
    /// `system.posix_acl_default`
    PosixAclDefault = 5,
}

impl Namespace {
    fn from_code(c: u8) -> Option<Namespace> {
        Some(match c {
            1 => Namespace::User,
            2 => Namespace::Trusted,
            3 => Namespace::Security,
            4 => Namespace::PosixAclAccess,
            5 => Namespace::PosixAclDefault,
            _ => return None,
        })
    }

    fn prefix(self) -> &'static [u8] {
        match self {
            Namespace::User => b"user.",
            Namespace::Trusted => b"trusted.",
            Namespace::Security => b"security.",
            Namespace::PosixAclAccess => b"system.posix_acl_access",
            Namespace::PosixAclDefault => b"system.posix_acl_default",
        }
    }

    /// Splits a full attribute name into namespace and suffix.
    pub fn parse(full: &[u8]) -> Result<(Namespace, &[u8])> {
        if full.len() > NAME_MAX {
            return Err(Error::Range);
        }
        for ns in [Namespace::PosixAclAccess, Namespace::PosixAclDefault] {
            if full == ns.prefix() {
                return Ok((ns, &[]));
            }
        }
        for ns in [Namespace::User, Namespace::Trusted, Namespace::Security] {
            if let Some(rest) = full.strip_prefix(ns.prefix()) {
                if rest.is_empty() {
                    return Err(Error::Invalid);
                }
                return Ok((ns, rest));
            }
        }
        Err(Error::NotSupported)
    }
}

/// One attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    /// Namespace.
    pub ns: Namespace,
    /// Name without the namespace prefix.
    pub name: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
}

impl Xattr {
    /// The full name, with its prefix.
    pub fn full_name(&self) -> Vec<u8> {
        let mut out = self.ns.prefix().to_vec();
        out.extend_from_slice(&self.name);
        out
    }

    fn encoded_len(&self) -> usize {
        ENTRY_FIXED + self.name.len() + self.value.len()
    }
}

/// All attributes of an inode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XattrNode {
    /// In insertion order.
    pub entries: Vec<Xattr>,
}

/// How `set` treats an existing or missing attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// Create or replace.
    Any,
    /// Fail with `Exists` if present (XATTR_CREATE).
    Create,
    /// Fail with `NoAttr` if absent (XATTR_REPLACE).
    Replace,
}

impl XattrNode {
    /// The value of (`ns`, `name`).
    pub fn get(&self, ns: Namespace, name: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|x| x.ns == ns && x.name == name)
            .map(|x| x.value.as_slice())
    }

    /// Sets an attribute, keeping the node within one page.
    pub fn set(&mut self, ns: Namespace, name: &[u8], value: &[u8], mode: SetMode) -> Result<()> {
        if value.len() > VALUE_MAX {
            return Err(Error::TooBig);
        }
        let pos = self
            .entries
            .iter()
            .position(|x| x.ns == ns && x.name == name);
        match (pos, mode) {
            (Some(_), SetMode::Create) => return Err(Error::Exists),
            (None, SetMode::Replace) => return Err(Error::NoAttr),
            _ => {}
        }
        let new = Xattr {
            ns,
            name: name.to_vec(),
            value: value.to_vec(),
        };
        let others: usize = self
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != pos)
            .map(|(_, x)| x.encoded_len())
            .sum();
        if others + new.encoded_len() > SPACE {
            return Err(Error::NoSpace);
        }
        match pos {
            Some(i) => self.entries[i] = new,
            None => self.entries.push(new),
        }
        Ok(())
    }

    /// Removes an attribute.
    pub fn remove(&mut self, ns: Namespace, name: &[u8]) -> Result<()> {
        let pos = self
            .entries
            .iter()
            .position(|x| x.ns == ns && x.name == name)
            .ok_or(Error::NoAttr)?;
        self.entries.remove(pos);
        Ok(())
    }

    /// Encodes after the node header.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u16(COUNT, self.entries.len() as u16);
        let mut pos = ENTRIES;
        for x in &self.entries {
            w.u8(pos, x.ns as u8);
            w.u8(pos + 1, x.name.len() as u8);
            w.u16(pos + 2, x.value.len() as u16);
            w.bytes(pos + 4, &x.name);
            w.bytes(pos + 4 + x.name.len(), &x.value);
            pos += x.encoded_len();
        }
    }

    /// Decodes after the node header.
    pub fn decode(r: &Reader<'_>) -> Result<XattrNode> {
        let count = usize::from(r.u16(COUNT)?);
        let mut entries = Vec::with_capacity(count);
        let mut pos = ENTRIES;
        for i in 0..count {
            let code = r.u8(pos)?;
            let ns = Namespace::from_code(code)
                .ok_or_else(|| r.corrupt(format!("attribute {i}: namespace {code}")))?;
            let name_len = usize::from(r.u8(pos + 1)?);
            let value_len = usize::from(r.u16(pos + 2)?);
            let name = r.bytes(pos + 4, name_len)?.to_vec();
            let value = r.bytes(pos + 4 + name_len, value_len)?.to_vec();
            entries.push(Xattr { ns, name, value });
            pos += ENTRY_FIXED + name_len + value_len;
        }
        Ok(XattrNode { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CheckpointNo, Ino, Nid, PageAddr};
    use crate::node::{Node, NodeBody};

    #[test]
    fn parse_names() {
        assert_eq!(
            Namespace::parse(b"user.x").expect("user"),
            (Namespace::User, &b"x"[..])
        );
        assert_eq!(
            Namespace::parse(b"trusted.t").expect("trusted").0,
            Namespace::Trusted
        );
        assert_eq!(
            Namespace::parse(b"system.posix_acl_access").expect("acl").0,
            Namespace::PosixAclAccess
        );
        assert!(matches!(Namespace::parse(b"user."), Err(Error::Invalid)));
        assert!(matches!(
            Namespace::parse(b"bogus.x"),
            Err(Error::NotSupported)
        ));
        assert!(matches!(Namespace::parse(&[b'a'; 300]), Err(Error::Range)));
    }

    #[test]
    fn set_modes_and_space() {
        let mut x = XattrNode::default();
        x.set(Namespace::User, b"a", b"1", SetMode::Any)
            .expect("set");
        assert!(matches!(
            x.set(Namespace::User, b"a", b"2", SetMode::Create),
            Err(Error::Exists)
        ));
        assert!(matches!(
            x.set(Namespace::User, b"b", b"2", SetMode::Replace),
            Err(Error::NoAttr)
        ));
        x.set(Namespace::User, b"a", b"22", SetMode::Replace)
            .expect("replace");
        assert_eq!(x.get(Namespace::User, b"a"), Some(&b"22"[..]));
        assert!(matches!(
            x.set(Namespace::User, b"big", &vec![0; 5000], SetMode::Any),
            Err(Error::NoSpace)
        ));
        assert!(matches!(
            x.set(Namespace::User, b"huge", &vec![0; 70000], SetMode::Any),
            Err(Error::TooBig)
        ));
        x.remove(Namespace::User, b"a").expect("remove");
        assert!(matches!(
            x.remove(Namespace::User, b"a"),
            Err(Error::NoAttr)
        ));
    }

    #[test]
    fn round_trip_and_golden() {
        let mut x = XattrNode::default();
        x.set(Namespace::Trusted, b"k", b"vv", SetMode::Any)
            .expect("set");
        x.set(Namespace::PosixAclAccess, b"", &[2, 0, 0, 0], SetMode::Any)
            .expect("set");
        let node = Node {
            nid: Nid(9),
            ino: Ino(4),
            level: 0,
            body: NodeBody::Xattr(Box::new(x)),
        };
        let page = node.encode(CheckpointNo(1));
        assert_eq!(&page[32..34], &2u16.to_le_bytes());
        assert_eq!(&page[40..44], &[2, 1, 2, 0]);
        assert_eq!(&page[44..47], b"kvv");
        assert_eq!(
            Node::decode(&page[..], PageAddr(1), Nid(9)).expect("decode"),
            node
        );
        let mut bad = page.clone();
        bad[40] = 77;
        assert!(Node::decode(&bad[..], PageAddr(1), Nid(9)).is_err());
    }
}
