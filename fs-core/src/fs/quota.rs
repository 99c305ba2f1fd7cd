//! Quotas, as far as they are built: the usage ledger of the root being
//! served, and a recount of usage from the tree (what the ledger must
//! agree with, and what fsck and enabling quotas will use). The plan for
//! the rest is docs/design-quota.md.

use std::collections::{BTreeMap, HashMap};

use super::Filesystem;
use crate::error::Result;
use crate::ids::{Ino, Nid, PACK_SLOTS};
use crate::layout::PAGE_SIZE;
use crate::node::NodeBody;
use crate::quota_file::QUOTA_INO;
use crate::quotas::QuotaTable;
use crate::usage::{QuotaId, Usage};

impl Filesystem {
    /// Does this image keep usage (the `quota` feature)?
    pub fn keeps_quota(&self) -> bool {
        self.store.quota_ino().is_some()
    }

    /// Is `ino` one of pagelog's own inodes, never seen by users: the
    /// graveyard, and the quota file on an image that keeps one?
    pub(super) fn is_internal(&self, ino: Ino) -> bool {
        ino == Ino::GRAVEYARD || (ino == QUOTA_INO && self.keeps_quota())
    }

    /// Reads the served root's quota file, if the image keeps usage and
    /// it is not read yet: before anything is charged to the root (at
    /// mount, when a view or a rolled-back root is entered).
    pub(super) fn load_quota(&mut self) -> Result<()> {
        if !self.keeps_quota() || self.store.root.quota.is_some() {
            return Ok(());
        }
        let dev = self.dev();
        let size = self.store.root.cache.inode(&*dev, QUOTA_INO)?.size;
        let pages = (0..size.div_ceil(PAGE_SIZE as u64))
            .map(|idx| self.read_page(QUOTA_INO, idx))
            .collect::<Result<Vec<_>>>()?;
        self.store.root.quota = Some(QuotaTable::load(&pages)?);
        self.store.root.cache.usage.skip = Some(QUOTA_INO);
        Ok(())
    }

    /// Usage by id as the served root records it (its quota file and what
    /// changed since the last commit), or `None` on an image without
    /// quotas.
    pub fn recorded_usage(&mut self) -> Result<Option<BTreeMap<QuotaId, Usage>>> {
        self.load_quota()?;
        let Some(q) = &self.store.root.quota else {
            return Ok(None);
        };
        let mut out: BTreeMap<QuotaId, Usage> = q
            .records()
            .map(|(id, r)| {
                let u = Usage {
                    pages: r.pages as i64,
                    inodes: r.inodes as i64,
                };
                (id, u)
            })
            .collect();
        for (id, d) in self.store.root.cache.usage.deltas() {
            let u = out.entry(*id).or_default();
            u.pages += d.pages;
            u.inodes += d.inodes;
        }
        out.retain(|_, u| *u != Usage::default());
        Ok(Some(out))
    }

    /// Usage changes by id since the served root was opened.
    pub fn usage_changes(&self) -> &HashMap<QuotaId, Usage> {
        self.store.root.cache.usage.deltas()
    }

    /// Usage by id, counted from every inode of the served root (the
    /// graveyard directory aside): pages as `blocks` holds them (stored,
    /// reserved by fallocate, a directory's index nodes) and inodes.
    pub fn recount_usage(&mut self) -> Result<BTreeMap<QuotaId, Usage>> {
        let dev = self.dev();
        let dev = &*dev;
        let mut out: BTreeMap<QuotaId, Usage> = BTreeMap::new();
        let quota = self.keeps_quota();
        let cache = &mut self.store.root.cache;
        for n in 1..cache.nat.watermark().0 {
            let nid = Nid(n);
            if !cache.contains(dev, nid)? {
                continue;
            }
            let NodeBody::InodePack(pack) = &cache.get(dev, nid)?.body else {
                continue;
            };
            for slot in 0..PACK_SLOTS as usize {
                let ino = Ino::new(nid, slot);
                let Some(inode) = pack.get(ino) else {
                    continue;
                };
                if ino == Ino::GRAVEYARD || (ino == QUOTA_INO && quota) {
                    continue;
                }
                for id in QuotaId::of(inode) {
                    let u = out.entry(id).or_default();
                    u.pages += inode.blocks as i64;
                    u.inodes += 1;
                }
            }
        }
        Ok(out)
    }
}
