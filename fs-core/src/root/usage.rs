//! The usage ledger: how many pages and inodes each user, group and
//! project gained or lost in a root since it was opened. Every change of
//! an inode's page count (`blocks`), every inode made or freed and every
//! change of an inode's owner, group or project is charged here, by the
//! node cache that owns the inodes, so that usage can be kept exactly (see
//! docs/design-quota.md). The graveyard directory is not charged.

use std::collections::HashMap;

use crate::ids::Ino;
use crate::inode::Inode;

/// What an id names.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    /// A user (the inode's owner).
    User = 1,
    /// A group (the inode's group).
    Group = 2,
    /// A project (the inode's project id).
    Project = 3,
}

/// A user, group or project id.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct QuotaId {
    /// What it names.
    pub kind: IdKind,
    /// The number.
    pub id: u32,
}

impl QuotaId {
    /// The three ids `inode` is charged to.
    pub fn of(inode: &Inode) -> [QuotaId; 3] {
        QuotaId::ids(inode.uid, inode.gid, inode.project)
    }

    /// The ids an inode of owner `uid`, group `gid` and `project` is
    /// charged to.
    pub fn ids(uid: u32, gid: u32, project: u32) -> [QuotaId; 3] {
        [
            QuotaId {
                kind: IdKind::User,
                id: uid,
            },
            QuotaId {
                kind: IdKind::Group,
                id: gid,
            },
            QuotaId {
                kind: IdKind::Project,
                id: project,
            },
        ]
    }
}

/// Pages and inodes (or changes of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Pages, as an inode's `blocks` counts them.
    pub pages: i64,
    /// Inodes.
    pub inodes: i64,
}

/// Usage changes by id.
#[derive(Debug, Default)]
pub struct Ledger {
    deltas: HashMap<QuotaId, Usage>,
    /// An inode never charged besides the graveyard: the quota file, on a
    /// root that has one.
    pub skip: Option<Ino>,
}

impl Ledger {
    /// Charges `pages` and `inodes` (either may be negative) to `ids`, the
    /// ids of inode `ino` ([`QuotaId::of`]).
    pub fn charge(&mut self, ino: Ino, ids: [QuotaId; 3], pages: i64, inodes: i64) {
        if ino == Ino::GRAVEYARD || Some(ino) == self.skip || (pages == 0 && inodes == 0) {
            return;
        }
        for id in ids {
            let u = self.deltas.entry(id).or_default();
            u.pages += pages;
            u.inodes += inodes;
        }
    }

    /// Changes the usage of `id` alone by `delta` (a repair's recount).
    pub fn adjust(&mut self, id: QuotaId, delta: Usage) {
        let u = self.deltas.entry(id).or_default();
        u.pages += delta.pages;
        u.inodes += delta.inodes;
    }

    /// The changes so far, by id (ids whose changes cancelled out may be
    /// present with zeros).
    pub fn deltas(&self) -> &HashMap<QuotaId, Usage> {
        &self.deltas
    }

    /// The changes so far, leaving none.
    pub fn take(&mut self) -> HashMap<QuotaId, Usage> {
        std::mem::take(&mut self.deltas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_go_to_all_three_ids_and_never_to_the_graveyard() {
        let inode = Inode {
            uid: 5,
            gid: 6,
            project: 7,
            ..Inode::default()
        };
        let ids = QuotaId::of(&inode);
        let mut l = Ledger::default();
        l.charge(Ino(9), ids, 3, 1);
        l.charge(Ino(9), ids, -1, 0);
        l.charge(Ino::GRAVEYARD, ids, 100, 1);
        for (kind, id) in [(IdKind::User, 5), (IdKind::Group, 6), (IdKind::Project, 7)] {
            let u = l.deltas()[&QuotaId { kind, id }];
            assert_eq!((u.pages, u.inodes), (2, 1), "{kind:?}");
        }
        assert_eq!(l.deltas().len(), 3);
    }
}
