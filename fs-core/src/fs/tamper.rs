//! Deliberate damage for tests (behind the `testing` feature): changes
//! that bypass the filesystem's rules but go through a normal commit, so
//! that each checker finding can be provoked by exactly one fault.

use super::Filesystem;
use crate::block_ptr::BlockPtr;
use crate::dir_index;
use crate::error::Result;
use crate::file_map;
use crate::ids::{Ino, Nid, PageAddr, Vpn};
use crate::inode::Inode;
use crate::node::NodeBody;
use crate::page_life::life;

/// A handle for breaking things on purpose.
#[derive(Debug)]
pub struct Tamper<'a> {
    fs: &'a mut Filesystem,
}

impl Filesystem {
    /// Deliberate damage, committed by the next sync.
    pub fn tamper(&mut self) -> Tamper<'_> {
        Tamper { fs: self }
    }
}

impl Tamper<'_> {
    /// Changes an inode's fields directly.
    pub fn inode(&mut self, ino: Ino, f: impl FnOnce(&mut Inode)) -> Result<()> {
        f(self.fs.inode_mut(ino)?);
        Ok(())
    }

    /// Changes an internal inode's fields (the quota file's, say).
    pub fn internal_inode(&mut self, ino: Ino, f: impl FnOnce(&mut Inode)) -> Result<()> {
        let dev = self.fs.dev();
        self.fs.store.root.changed = true;
        f(self.fs.store.root.cache.inode_mut(&*dev, ino)?);
        Ok(())
    }

    /// Stores attribute `name` of `ino` as `value`, past every check (an
    /// access control list that does not decode, a default list on a file).
    pub fn raw_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
        let (ns, suffix) = crate::xattr::Namespace::parse(name)?;
        let nid = self.fs.inode(ino)?.xattr_nid;
        let mut x = self.fs.xattrs_at(nid)?;
        x.set(ns, suffix, value, crate::xattr::SetMode::Any)?;
        self.fs.save_xattrs(ino, x)
    }

    /// Charges `pages` to the ids of `ino` without changing the inode: the
    /// quota file then records usage the tree does not hold.
    pub fn miscount_usage(&mut self, ino: Ino, pages: i64) -> Result<()> {
        let ids = crate::usage::QuotaId::of(self.fs.inode(ino)?);
        self.fs.store.root.cache.usage.charge(ino, ids, pages, 0);
        self.fs.store.root.changed = true;
        Ok(())
    }

    /// Removes a directory entry without touching the inode it names.
    pub fn drop_entry(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        let dev = self.fs.dev();
        let s = &mut self.fs.store;
        let (seed, building) = (s.sb.hash_seed, s.building());
        dir_index::remove(
            &mut s.root.cache,
            &*dev,
            &mut life!(s, &*dev, building),
            dir,
            name,
            seed,
        )?;
        s.root.changed = true;
        Ok(())
    }

    /// Adds entry `name` in `dir` naming `ino` (which need not exist),
    /// touching nothing else.
    pub fn raw_entry(&mut self, dir: Ino, name: &[u8], ino: Ino, dtype: u8) -> Result<()> {
        let dev = self.fs.dev();
        let s = &mut self.fs.store;
        let seed = s.sb.hash_seed;
        dir_index::insert(&mut s.root.cache, &*dev, dir, name, ino, dtype, seed)?;
        s.root.changed = true;
        Ok(())
    }

    /// Writes a unit that nothing points at.
    pub fn leak_unit(&mut self, owner: Ino) -> Result<crate::ids::Vpn> {
        let dev = self.fs.dev();
        let s = &mut self.fs.store;
        let building = s.building();
        s.root.changed = true;
        let mut life = life!(s, &*dev, building);
        let id = (crate::segment_summary::PageKind::Data, owner.0, 999);
        Ok(life.write_unit(&mut s.log, id, &[0x5a; 4096])?.0)
    }

    /// Sets a file pointer without any accounting.
    pub fn pointer(&mut self, ino: Ino, idx: u64, ptr: BlockPtr) -> Result<BlockPtr> {
        self.fs.store.root.changed = true;
        self.fs.put_pointer(ino, idx, ptr)
    }

    /// The pointer of page `idx` of `ino`.
    pub fn get_pointer(&mut self, ino: Ino, idx: u64) -> Result<BlockPtr> {
        let dev = self.fs.dev();
        file_map::get(&mut self.fs.store.root.cache, &*dev, ino, idx)
    }

    /// Where the tables say node `nid` is.
    pub fn node_addr(&mut self, nid: Nid) -> Result<Option<PageAddr>> {
        let dev = self.fs.dev();
        let found = self.fs.store.root.cache.nat.locate(&*dev, nid)?;
        Ok(found.map(|(addr, _)| addr))
    }

    /// Where page `idx` of `ino` is stored, if it is.
    pub fn data_addr(&mut self, ino: Ino, idx: u64) -> Result<Option<PageAddr>> {
        self.fs.stored_at(ino, idx)
    }

    /// Where the page address table says unit `vpn` is.
    pub fn unit_addr(&mut self, vpn: crate::ids::Vpn) -> Result<Option<PageAddr>> {
        let dev = self.fs.dev();
        Ok(self.fs.store.pat.lookup(&*dev, vpn)?.map(|e| e.addr))
    }

    /// Changes the page address table's entry of unit `vpn` through `f`.
    pub fn unit_entry(
        &mut self,
        vpn: crate::ids::Vpn,
        f: impl FnOnce(&mut crate::page_table::PatEntry),
    ) -> Result<()> {
        let dev = self.fs.dev();
        let pat = &self.fs.store.pat;
        let mut e = pat.resolve(&*dev, vpn)?;
        f(&mut e);
        self.fs.store.root.changed = true;
        pat.set(&*dev, vpn, e)
    }

    /// Counts one more live page in `addr`'s segment than there is.
    pub fn phantom_live(&mut self, addr: PageAddr) -> Result<()> {
        let dev = self.fs.dev();
        let now = crate::store::now_ns() / 1_000_000_000;
        self.fs.store.root.changed = true;
        self.fs.store.sut.add_live(&*dev, addr, now)
    }

    /// Shifts the inode counter the checkpoint records.
    pub fn miscount_inodes(&mut self, delta: i64) {
        let s = &mut self.fs.store;
        s.root.inode_count = s.root.inode_count.saturating_add_signed(delta);
        s.root.changed = true;
    }

    /// Changes retained checkpoint `no`'s record.
    pub fn checkpoint_record(
        &mut self,
        no: crate::ids::CheckpointNo,
        f: impl FnOnce(&mut crate::checkpoint_record::Record),
    ) -> Result<()> {
        let dev = self.fs.dev();
        let s = &mut self.fs.store;
        let mut rec = s
            .cplist
            .get(no)
            .cloned()
            .ok_or(crate::error::Error::NotFound)?;
        f(&mut rec);
        s.root.changed = true;
        s.cplist.update(&*dev, rec)
    }

    /// Sets the node id free list's head and the watermark.
    pub fn nat_counters(&mut self, free_head: Nid, watermark: Nid) {
        self.fs.store.root.changed = true;
        let nat = &mut self.fs.store.root.cache.nat;
        nat.set_counters(free_head, watermark);
    }

    /// Points node `nid`'s table entry at unit `vpn`.
    pub fn nat_entry(&mut self, nid: Nid, vpn: Vpn) -> Result<()> {
        let dev = self.fs.dev();
        self.fs.store.root.changed = true;
        let e = crate::node_table::NatEntry { vpn, crc: 0 };
        self.fs.store.root.cache.nat.set(&*dev, nid, e)
    }

    /// Makes node id `nid`'s entry a free one naming `next`.
    pub fn nat_free_entry(&mut self, nid: Nid, next: Nid) -> Result<()> {
        let dev = self.fs.dev();
        self.fs.store.root.changed = true;
        let free = crate::node_table::encode_free(next);
        let nat = &mut self.fs.store.root.cache.nat;
        nat.table().set(&*dev, nid.0, &free)
    }

    /// Sets the unit free list's head and the watermark.
    pub fn pat_counters(&mut self, free_head: Vpn, watermark: Vpn) {
        self.fs.store.root.changed = true;
        let mut pat = self.fs.store.pat.lock();
        pat.free_head = free_head.0;
        pat.watermark = watermark.0;
    }

    /// Makes unit `vpn`'s entry a free one naming `next`.
    pub fn pat_free_entry(&mut self, vpn: Vpn, next: Vpn) -> Result<()> {
        let dev = self.fs.dev();
        self.fs.store.root.changed = true;
        let free = crate::id_table::encode_free(next.0);
        self.fs.store.pat.lock().table().set(&*dev, vpn.0, &free)
    }

    /// Allocates a node that nothing refers to.
    pub fn leak_node(&mut self, owner: Ino) -> Result<Nid> {
        let dev = self.fs.dev();
        self.fs.store.root.changed = true;
        self.fs
            .store
            .root
            .cache
            .create(&*dev, owner, 0, NodeBody::Xattr(Box::default()))
    }
}
