//! The node cache: decoded nodes, read through the node address table on
//! demand, kept dirty in memory until the next checkpoint writes them.

use std::collections::{BTreeSet, HashMap};

use crate::codec::crc32;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{Ino, Nid, PageAddr};
use crate::inode::Inode;
use crate::inode_pack::InodePack;
use crate::node::{Node, NodeBody};
use crate::node_table::{NatEntry, NodeTable};
use crate::page_life::PageLife;
use crate::segment_summary::PageKind;
use crate::segment_writer::SegmentWriter;
use crate::usage::{Ledger, QuotaId};

#[derive(Debug)]
struct Cached {
    node: Node,
    dirty: bool,
    /// Created since the last commit: it has never been written, so
    /// writing it adds a live page (rewriting a node only moves one).
    fresh: bool,
    last_use: u64,
    /// Its footprint while it counts as clean (0 while dirty).
    bytes: usize,
}

/// Decoded nodes by id.
#[derive(Debug)]
pub struct NodeCache {
    nodes: HashMap<Nid, Cached>,
    /// Where nodes are stored.
    pub nat: NodeTable,
    /// Bytes of clean nodes beyond which the oldest are dropped.
    max_clean: usize,
    /// Bytes of clean nodes held ([`Node::footprint`]).
    clean_bytes: usize,
    dirty: usize,
    fresh: usize,
    clock: u64,
    /// Packs known to have a free slot (learnt during this mount).
    partial: BTreeSet<Nid>,
    /// The pack new inodes went into last.
    current: Nid,
    /// Usage changes by user, group and project: every change of an
    /// inode's page count, existence or ids goes through this cache's
    /// methods ([`NodeCache::add_blocks`], [`NodeCache::set_ids`], inode
    /// creation and removal), which charge it here.
    pub usage: Ledger,
}

fn unallocated(ino: Ino) -> Error {
    Error::corrupt(
        format!("inode {ino}"),
        PageAddr::NONE,
        "referenced but not allocated",
    )
}

fn wrong_kind(nid: Nid, want: &str) -> Error {
    Error::corrupt(
        format!("node {nid}"),
        PageAddr::NONE,
        format!("expected {want}"),
    )
}

impl NodeCache {
    /// A cache over `nat` keeping at most about `max_clean` bytes of
    /// clean nodes. Dirty nodes are not bounded here: commits bound them.
    pub fn new(nat: NodeTable, max_clean: usize) -> NodeCache {
        NodeCache {
            nodes: HashMap::new(),
            nat,
            max_clean,
            clean_bytes: 0,
            dirty: 0,
            fresh: 0,
            clock: 0,
            partial: BTreeSet::new(),
            current: Nid::NONE,
            usage: Ledger::default(),
        }
    }

    /// Changes inode `ino`'s page count by `delta` (never below zero),
    /// charging the change to its ids.
    pub fn add_blocks(&mut self, dev: &dyn BlockDevice, ino: Ino, delta: i64) -> Result<()> {
        let inode = self.inode_mut(dev, ino)?;
        let old = inode.blocks;
        inode.blocks = old.saturating_add_signed(delta);
        let (change, ids) = (inode.blocks as i64 - old as i64, QuotaId::of(inode));
        self.usage.charge(ino, ids, change, 0);
        Ok(())
    }

    /// Gives inode `ino` new owner, group and project ids, moving its
    /// usage from the old ids to the new.
    pub fn set_ids(
        &mut self,
        dev: &dyn BlockDevice,
        ino: Ino,
        uid: u32,
        gid: u32,
        project: u32,
    ) -> Result<()> {
        let inode = self.inode_mut(dev, ino)?;
        let (old, pages) = (QuotaId::of(inode), inode.blocks as i64);
        inode.uid = uid;
        inode.gid = gid;
        inode.project = project;
        let new = QuotaId::of(inode);
        self.usage.charge(ino, old, -pages, -1);
        self.usage.charge(ino, new, pages, 1);
        Ok(())
    }

    /// Nodes waiting to be written.
    pub fn dirty_count(&self) -> usize {
        self.dirty
    }

    /// Nodes created since the last commit: pages the next commit adds to
    /// what is live.
    pub fn fresh_count(&self) -> usize {
        self.fresh
    }

    fn load(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<()> {
        self.clock += 1;
        if let Some(c) = self.nodes.get_mut(&nid) {
            c.last_use = self.clock;
            return Ok(());
        }
        let node = self.nat.read_node(dev, nid)?;
        // Free slots in packs written by earlier mounts are found as their
        // packs are read (a parent's pack always is, before a create).
        if matches!(&node.body, NodeBody::InodePack(p) if p.free_slot().is_some()) {
            self.partial.insert(nid);
        }
        self.evict();
        let bytes = node.footprint();
        self.clean_bytes += bytes;
        self.nodes.insert(
            nid,
            Cached {
                node,
                dirty: false,
                fresh: false,
                last_use: self.clock,
                bytes,
            },
        );
        Ok(())
    }

    /// Past the bound, drops the least recently used clean nodes down to
    /// three quarters of it: one sort pays for a quarter of the cache, so
    /// a node read costs a logarithmic share of it.
    fn evict(&mut self) {
        if self.clean_bytes < self.max_clean {
            return;
        }
        let mut ages: Vec<(u64, Nid)> = self
            .nodes
            .iter()
            .filter(|(_, c)| !c.dirty)
            .map(|(n, c)| (c.last_use, *n))
            .collect();
        ages.sort_unstable();
        let keep = self.max_clean / 4 * 3;
        for (_, nid) in ages {
            if self.clean_bytes <= keep {
                break;
            }
            if let Some(c) = self.nodes.remove(&nid) {
                self.clean_bytes -= c.bytes;
            }
        }
    }

    /// Bytes of clean nodes held.
    pub fn clean_bytes(&self) -> usize {
        self.clean_bytes
    }

    /// Is `nid` an allocated node (written, or created since the last commit)?
    pub fn contains(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<bool> {
        Ok(self.nodes.contains_key(&nid) || self.nat.lookup(dev, nid)?.is_some())
    }

    /// Threads every unused node id below `watermark` onto the free list
    /// again (a repair's); a node created since the last commit keeps
    /// its id. Returns how many ids are listed.
    pub fn rebuild_free_list(&mut self, dev: &dyn BlockDevice, watermark: Nid) -> Result<u64> {
        let nodes = &self.nodes;
        self.nat
            .rebuild_free_list(dev, watermark, &|n| nodes.contains_key(&Nid(n)))
    }

    /// The node `nid`.
    pub fn get(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<&Node> {
        self.load(dev, nid)?;
        self.nodes
            .get(&nid)
            .map(|c| &c.node)
            .ok_or_else(|| Error::corrupt("node cache", PageAddr::NONE, "node vanished"))
    }

    /// The node `nid`, marked dirty.
    pub fn get_mut(&mut self, dev: &dyn BlockDevice, nid: Nid) -> Result<&mut Node> {
        self.load(dev, nid)?;
        let c = self
            .nodes
            .get_mut(&nid)
            .ok_or_else(|| Error::corrupt("node cache", PageAddr::NONE, "node vanished"))?;
        if !c.dirty {
            c.dirty = true;
            self.dirty += 1;
            self.clean_bytes -= std::mem::take(&mut c.bytes);
        }
        Ok(&mut c.node)
    }

    /// The pack holding inode `ino`.
    fn pack(&mut self, dev: &dyn BlockDevice, ino: Ino) -> Result<&InodePack> {
        match &self.get(dev, ino.pack())?.body {
            NodeBody::InodePack(p) => Ok(p),
            _ => Err(wrong_kind(ino.pack(), "an inode pack")),
        }
    }

    /// The pack holding inode `ino`, marked dirty.
    fn pack_mut(&mut self, dev: &dyn BlockDevice, ino: Ino) -> Result<&mut InodePack> {
        match &mut self.get_mut(dev, ino.pack())?.body {
            NodeBody::InodePack(p) => Ok(p),
            _ => Err(wrong_kind(ino.pack(), "an inode pack")),
        }
    }

    /// The inode `ino`.
    pub fn inode(&mut self, dev: &dyn BlockDevice, ino: Ino) -> Result<&Inode> {
        self.pack(dev, ino)?
            .get(ino)
            .ok_or_else(|| unallocated(ino))
    }

    /// The inode `ino`, marked dirty.
    pub fn inode_mut(&mut self, dev: &dyn BlockDevice, ino: Ino) -> Result<&mut Inode> {
        self.pack_mut(dev, ino)?
            .get_mut(ino)
            .ok_or_else(|| unallocated(ino))
    }

    /// Is `ino` an allocated inode? (False for numbers never handed out or
    /// freed, for example a stale handle.)
    pub fn inode_exists(&mut self, dev: &dyn BlockDevice, ino: Ino) -> Result<bool> {
        if ino.is_none() || !self.contains(dev, ino.pack())? {
            return Ok(false);
        }
        Ok(matches!(&self.get(dev, ino.pack())?.body,
            NodeBody::InodePack(p) if p.get(ino).is_some()))
    }

    /// Stores a new inode and returns its number. It goes into the pack of
    /// `near` (its parent directory) when that has room, so that a
    /// directory's files share pages; else into the pack used last, or a
    /// pack with a slot freed during this mount, or a new pack.
    pub fn create_inode(&mut self, dev: &dyn BlockDevice, near: Ino, inode: Inode) -> Result<Ino> {
        let mut candidates = Vec::with_capacity(3);
        if !near.is_none() {
            candidates.push(near.pack());
        }
        candidates.push(self.current);
        candidates.extend(self.partial.first().copied());
        let mut chosen = None;
        for pack in candidates.into_iter().filter(|p| !p.is_none()) {
            let slot = match &self.get(dev, pack)?.body {
                NodeBody::InodePack(p) => p.free_slot(),
                _ => return Err(wrong_kind(pack, "an inode pack")),
            };
            match slot {
                Some(slot) => {
                    chosen = Some((pack, slot));
                    break;
                }
                None => {
                    self.partial.remove(&pack);
                }
            }
        }
        let (pack, slot) = match chosen {
            Some(c) => c,
            None => {
                let nid = self.nat.alloc(dev)?;
                self.insert_at(nid, Ino::NONE, 0, NodeBody::InodePack(Box::default()));
                (nid, 0)
            }
        };
        let ino = Ino::new(pack, slot);
        self.usage
            .charge(ino, QuotaId::of(&inode), inode.blocks as i64, 1);
        let p = self.pack_mut(dev, ino)?;
        p.slots[slot] = Some(inode);
        let full = p.free_slot().is_none();
        if full {
            self.partial.remove(&pack);
        } else {
            self.partial.insert(pack);
        }
        self.current = pack;
        Ok(ino)
    }

    /// Frees inode `ino`'s slot; a pack left empty is deleted.
    pub fn remove_inode(
        &mut self,
        dev: &dyn BlockDevice,
        life: &mut PageLife<'_>,
        ino: Ino,
    ) -> Result<()> {
        let p = self.pack_mut(dev, ino)?;
        let slot = p
            .slots
            .get_mut(ino.slot())
            .ok_or_else(|| unallocated(ino))?;
        let Some(gone) = slot.take() else {
            return Err(unallocated(ino));
        };
        let empty = p.used() == 0;
        self.usage
            .charge(ino, QuotaId::of(&gone), -(gone.blocks as i64), -1);
        let pack = ino.pack();
        if empty {
            self.partial.remove(&pack);
            if self.current == pack {
                self.current = Nid::NONE;
            }
            self.remove(dev, life, pack)
        } else {
            self.partial.insert(pack);
            Ok(())
        }
    }

    /// Adds a new node (dirty) belonging to inode `ino` and returns its id.
    pub fn create(
        &mut self,
        dev: &dyn BlockDevice,
        ino: Ino,
        level: u8,
        body: NodeBody,
    ) -> Result<Nid> {
        let nid = self.nat.alloc(dev)?;
        self.insert_at(nid, ino, level, body);
        Ok(nid)
    }

    /// Adds a node with a chosen id (mkfs: the first inode pack).
    pub fn insert_at(&mut self, nid: Nid, ino: Ino, level: u8, body: NodeBody) {
        self.clock += 1;
        let old = self.nodes.insert(
            nid,
            Cached {
                node: Node {
                    nid,
                    ino,
                    level,
                    body,
                },
                dirty: true,
                fresh: true,
                last_use: self.clock,
                bytes: 0,
            },
        );
        if !old.as_ref().is_some_and(|c| c.dirty) {
            self.dirty += 1;
        }
        self.clean_bytes -= old.as_ref().map_or(0, |c| c.bytes);
        if !old.is_some_and(|c| c.fresh) {
            self.fresh += 1;
        }
    }

    /// Deletes node `nid`: its page dies and its id is free again.
    pub fn remove(
        &mut self,
        dev: &dyn BlockDevice,
        life: &mut PageLife<'_>,
        nid: Nid,
    ) -> Result<()> {
        if let Some(c) = self.nodes.remove(&nid) {
            self.clean_bytes -= c.bytes;
            if c.dirty {
                self.dirty -= 1;
            }
            if c.fresh {
                self.fresh -= 1;
            }
        }
        if let Some(e) = self.nat.lookup(dev, nid)? {
            life.died(e.vpn)?;
        }
        self.nat.release(dev, nid)
    }

    /// Writes every dirty node to the log, grouped by inode, and points the
    /// node address table at the new copies.
    pub fn write_dirty(
        &mut self,
        dev: &dyn BlockDevice,
        life: &mut PageLife<'_>,
        log: &mut SegmentWriter,
    ) -> Result<()> {
        let mut dirty: Vec<(Ino, Nid)> = self
            .nodes
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(n, c)| (c.node.ino, *n))
            .collect();
        dirty.sort_unstable();
        let building = log.building();
        for (ino, nid) in dirty {
            let Some(c) = self.nodes.get_mut(&nid) else {
                continue;
            };
            let page = c.node.encode(building);
            let (vpn, crc) = life.write_unit(log, (PageKind::Node, ino.0, nid.0), &page[..])?;
            c.dirty = false;
            self.dirty -= 1;
            c.bytes = c.node.footprint();
            self.clean_bytes += c.bytes;
            if std::mem::take(&mut c.fresh) {
                self.fresh -= 1;
            }
            let old = self.nat.lookup(dev, nid)?;
            self.nat.set(dev, nid, NatEntry { vpn, crc })?;
            if let Some(old) = old {
                life.died(old.vpn)?;
            }
        }
        self.evict();
        Ok(())
    }
}

/// Reads node `nid` from `addr`, where the tables say it is, checking the
/// checksum its entry `e` records.
/// Checks node `nid`'s `page`, read (and opened) from `addr`, against its
/// table entry `e`, and decodes it.
pub fn check_node(page: &[u8], nid: Nid, addr: PageAddr, e: NatEntry) -> Result<Node> {
    let actual = crc32(page);
    if actual != e.crc {
        return Err(Error::corrupt(
            format!("node {nid}"),
            addr,
            format!(
                "checksum mismatch (expected {:#010x}, found {actual:#010x})",
                e.crc
            ),
        ));
    }
    Node::decode(page, addr, nid)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::cache_sizes::{CacheSizes, MIN_CACHE};
    use crate::device::{BlockDevice, MemDevice};
    use crate::format::{format, FormatOptions};
    use crate::ids::Ino;
    use crate::perm::Cred;
    use crate::{Filesystem, MountOptions};

    /// Mounts a fresh image with `cache` bytes, makes `files` files in
    /// one directory, commits, remounts and stats every file: returns the
    /// bytes of clean nodes held afterwards.
    fn walk_with(cache: u64, files: u32) -> usize {
        let dev: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(64 * 1024));
        format(dev.clone(), &FormatOptions::default()).expect("format");
        let opts = MountOptions {
            cache,
            ..MountOptions::default()
        };
        let mut fs = Filesystem::mount(dev.clone(), opts.clone()).expect("mount");
        let root = Cred::root();
        for k in 0..files {
            let name = format!("f{k}");
            let a = fs
                .create(&root, Ino::ROOT, name.as_bytes(), 0o644, 0)
                .expect("create");
            fs.release(a.ino).expect("release");
        }
        fs.sync().expect("sync");
        drop(fs);
        let mut fs = Filesystem::mount(dev, opts).expect("mount");
        for k in 0..files {
            let name = format!("f{k}");
            fs.lookup(&root, Ino::ROOT, name.as_bytes())
                .expect("lookup");
        }
        fs.store.root.cache.clean_bytes()
    }

    /// The clean nodes a walk of 20,000 inodes (1,250 packs, about 6 MiB
    /// decoded) leaves stay within the least cache's node share, and a
    /// large cache keeps them all: the bound is what `cache=` sets.
    #[test]
    fn clean_nodes_stay_within_the_cache_option() {
        let small = CacheSizes::of(MIN_CACHE).node_bytes;
        let held = walk_with(MIN_CACHE, 20_000);
        assert!(held <= small, "{held} bytes held, bound {small}");
        assert!(held > small / 2, "the cache is used: {held} bytes");
        let large = walk_with(256 << 20, 20_000);
        assert!(large > small, "a larger cache keeps more: {large} bytes");
    }
}
