//! Quotas, as far as they are built: the usage ledger of the root being
//! served, and a recount of usage from the tree (what the ledger must
//! agree with, and what fsck and enabling quotas will use). The plan for
//! the rest is docs/design-quota.md.

use std::collections::{BTreeMap, HashMap};

use super::Filesystem;
use crate::error::Result;
use crate::ids::{Ino, Nid, PACK_SLOTS};
use crate::node::NodeBody;
use crate::usage::{QuotaId, Usage};

impl Filesystem {
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
                if ino == Ino::GRAVEYARD {
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
