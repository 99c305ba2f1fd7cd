//! Carrying out a repair's fixes ([`crate::fsck::Fix`]) on a mounted
//! filesystem. Each fix goes through the same tables, caches and page
//! accounting as any operation, and the repair commits them like any
//! change: a crash leaves the state before the repair or after it.
//!
//! The accounting a fix cannot keep exact on a damaged image (a pointer
//! naming a unit already free, a page two files point at) is left to the
//! repair's recount of the segment usage, which the mount started from and
//! the next pass rebuilds exactly (`fsck/repair.rs`).

use super::Filesystem;
use crate::error::{Error, Result};
use crate::file_map;
use crate::fsck::{Fix, Numbers};
use crate::ids::{Ino, Nid, Vpn};
use crate::inode::{Timespec, S_IFDIR, S_IFMT, S_IFREG};
use crate::layout::PAGE_SIZE;
use crate::node::NodeBody;
use crate::page_life::life;
use crate::perm::Cred;
use crate::usage::Usage;

const PS: u64 = PAGE_SIZE as u64;

/// The directory a repair gives lost inodes a name in, under the root.
pub const LOST_FOUND: &[u8] = b"lost+found";

impl Filesystem {
    /// Carries out `fix`; returns what was done, for the report.
    pub fn mend(&mut self, fix: &Fix) -> Result<String> {
        self.writable()?;
        let done = match fix {
            Fix::PruneBack { no } => {
                let gone = self.store.prune_back(*no)?;
                let gone: Vec<String> = gone.iter().map(|n| n.to_string()).collect();
                format!(
                    "retained checkpoints {} forgotten (checkpoint {no}'s deadlist is damaged)",
                    gone.join(", ")
                )
            }
            Fix::QuotaInode { ino } => {
                // An internal inode: not through `inode_mut`, which serves
                // only what a user may name.
                let dev = self.dev();
                self.store.root.changed = true;
                let inode = self.store.root.cache.inode_mut(&*dev, *ino)?;
                if !inode.dir_root.is_none() {
                    return Err(Error::Refused(format!(
                        "inode {ino}, the quota file, holds a directory's index: not made a file"
                    )));
                }
                inode.mode = S_IFREG | 0o600;
                inode.nlink = 1;
                format!("inode {ino}: the quota file made a regular file with one link")
            }
            Fix::Reshape {
                ino,
                idx,
                base,
                count,
            } => {
                self.reshape(*ino, *idx, *base, *count)?;
                format!("inode {ino}: page {idx}'s pointer says {count} pages from {base}, as the cluster's first does")
            }
            Fix::CloneNode { ino, nid } => self.clone_node(*ino, *nid)?,
            Fix::ReshapeUnit { vpn } => self.reshape_unit(*vpn)?,
            Fix::RelogTables => {
                let n = self.store.relog_tables()?;
                format!("{n} table pages written again")
            }
            Fix::DeadlistCount { no } => {
                let n = self.store.recount_deadlist(*no)?;
                format!("retained checkpoint {no}: {n} deadlist entries counted")
            }
            Fix::ForgetNode { nid } => {
                self.forget_node(*nid)?;
                format!("node {nid} forgotten (its unit is gone; what it held is lost)")
            }
            Fix::Links { ino, links } => {
                self.inode_mut(*ino)?.nlink = *links;
                format!("inode {ino}: link count set to {links}")
            }
            Fix::Blocks { ino, blocks } => {
                // Set, not charged: the quota file counted what the map
                // holds, or is recounted after (Fix::Quota).
                self.inode_mut(*ino)?.blocks = *blocks;
                format!("inode {ino}: page count set to {blocks}")
            }
            Fix::Parent { ino, parent } => {
                self.inode_mut(*ino)?.parent = *parent;
                format!("inode {ino}: '..' set to inode {parent}")
            }
            Fix::Reconnect { ino } => self.reconnect(*ino)?,
            Fix::RemoveEntry { dir, name } => self.remove_bad_entry(*dir, name)?,
            Fix::RemoveXattr { ino, name } => {
                let (ns, suffix) = crate::xattr::Namespace::parse(name)?;
                let nid = self.inode(*ino)?.xattr_nid;
                let mut x = self.xattrs_at(nid)?;
                x.remove(ns, suffix)?;
                self.save_xattrs(*ino, x)?;
                format!(
                    "inode {ino}: attribute {} removed",
                    String::from_utf8_lossy(name)
                )
            }
            Fix::DropXattrNode { ino } => {
                let nid = self.inode(*ino)?.xattr_nid;
                self.inode_mut(*ino)?.xattr_nid = Nid::NONE;
                self.free_node(nid)?;
                format!("inode {ino}: empty attribute node {nid} freed")
            }
            Fix::Detach { ino, nid } => self.detach(*ino, *nid)?,
            Fix::RebuildDir { dir } => self.rebuild_dir(*dir, None)?,
            Fix::FreeNode { nid } => {
                self.free_node(*nid)?;
                format!("node {nid} freed")
            }
            Fix::FreeDamaged { nid } => {
                self.free_node(*nid)?;
                format!("damaged node {nid} freed (what it held is lost)")
            }
            Fix::FreeUnit { vpn } => {
                // Its pages were counted by no walk: the recount already
                // left them out of the segment usage.
                let dev = self.dev();
                self.store.pat.release(&*dev, *vpn)?;
                format!("unit {vpn} freed")
            }
            Fix::DropPages { ino, first, count } => {
                self.drop_pages(*ino, *first, *count)?;
                let (from, to) = (first * PS, (first + count) * PS);
                format!("inode {ino}: bytes {from}..{to} dropped (unreadable), a hole now")
            }
            Fix::Unshare { addr, owners } => {
                self.unshare(owners).map(|s| format!("page {addr}: {s}"))?
            }
            Fix::Relog { ino, idx } => {
                let bytes = self.read_page(*ino, *idx)?;
                let page = self.dirty_page(*ino, *idx, *idx..*idx + 1)?;
                page.copy_from_slice(&bytes[..]);
                format!("inode {ino}: page {idx} written again")
            }
            Fix::RelogNode { nid } => {
                let dev = self.dev();
                self.store.root.cache.get_mut(&*dev, *nid)?;
                format!("node {nid} written again")
            }
            Fix::Prune { no } => {
                let snapshot = self
                    .checkpoints()
                    .into_iter()
                    .any(|c| c.no == *no && c.snapshot.is_some());
                if snapshot || self.store.kept_open(*no) {
                    return Err(Error::Refused(format!(
                        "checkpoint {no} is a snapshot or a branch's origin: not pruned by a repair"
                    )));
                }
                self.store.prune(*no)?;
                format!("retained checkpoint {no} forgotten (its own pages are damaged)")
            }
            Fix::Quota { branch: None } => self.recount_quota()?,
            Fix::Quota { branch: Some(name) } => {
                let view = self.open_branch(name)?;
                let done = self.in_view(view, |v| v.recount_quota());
                self.close_view(view)?;
                format!("in branch '{}': {}", String::from_utf8_lossy(name), done?)
            }
            Fix::Recount => "segment usage and counters recounted from the tree".into(),
            Fix::Commit => "a new checkpoint committed".into(),
            Fix::FreeList { of, watermark } => {
                let dev = self.dev();
                let (listed, what) = match of {
                    Numbers::NodeIds => {
                        let cache = &mut self.store.root.cache;
                        (cache.rebuild_free_list(&*dev, Nid(*watermark))?, "node ids")
                    }
                    // A unit's number is handed out and its entry set in
                    // one call (`PageLife::write_chained`): none pending.
                    Numbers::Units => {
                        let ids = (Vpn::FIRST.0, *watermark);
                        let mut pat = self.store.pat.lock();
                        (pat.rebuild_free_list(&*dev, ids, &|_| false)?, "units")
                    }
                };
                format!("free list of {what} threaded again: {listed} free, watermark {watermark}")
            }
            Fix::RebuildUsage { .. }
            | Fix::RebuildNodeTable { .. }
            | Fix::RebuildUnitTable { .. }
            | Fix::RebuildInterior { .. } => {
                return Err(Error::Refused(
                    "a table page is built again by the repair's mount, not by a fix".into(),
                ))
            }
            Fix::Rewind { .. } => {
                return Err(Error::Refused(
                    "a rewind is chosen before the mount (fsck::repair), not by it".into(),
                ))
            }
        };
        self.store.root.changed = true;
        Ok(done)
    }

    /// Names lost inode `ino` `#INO` in `lost+found` (made if missing): a
    /// file gets its one link, a directory `lost+found` as its parent.
    fn reconnect(&mut self, ino: Ino) -> Result<String> {
        let parent = self.inode(ino)?.parent;
        if self.inode(ino)?.is_dir() && self.lists(parent, ino)? && !self.in_lost_cycle(ino)? {
            // Lost with the directory holding it, which is reconnected
            // itself (it is the top of the lost tree, or lost too).
            return Ok(format!(
                "inode {ino}: found again with the directory holding it, inode {parent}"
            ));
        }
        let lf = self.lost_found()?;
        let name = format!("#{}", ino.0).into_bytes();
        let mode = self.inode(ino)?.mode;
        self.link_new(lf, &name, ino, mode)?;
        let i = self.inode_mut(ino)?;
        if mode & S_IFMT == S_IFDIR {
            i.parent = lf;
        } else {
            i.nlink = 1;
            i.parent = lf;
        }
        i.ctime = Timespec::now();
        Ok(format!(
            "inode {ino}: reconnected as /lost+found/#{}",
            ino.0
        ))
    }

    /// Do the directories holding `ino` (by `..` and entry) lead back to
    /// it? Then none is the top of the lost tree, and `ino` is named.
    fn in_lost_cycle(&mut self, ino: Ino) -> Result<bool> {
        let mut seen = std::collections::HashSet::from([ino]);
        let mut cur = ino;
        loop {
            let p = self.inode(cur)?.parent;
            if !self.lists(p, cur)? {
                return Ok(false);
            }
            if p == ino {
                return Ok(true);
            }
            if !seen.insert(p) {
                return Ok(false);
            }
            cur = p;
        }
    }

    /// Does directory `dir` (if it is one) hold an entry naming `ino`?
    fn lists(&mut self, dir: Ino, ino: Ino) -> Result<bool> {
        if dir == ino || !self.exists(dir)? || !self.inode(dir)?.is_dir() {
            return Ok(false);
        }
        let dev = self.dev();
        let mut found = false;
        crate::dir_index::for_each_after(&mut self.store.root.cache, &*dev, dir, 0, &mut |e| {
            found = e.ino == ino;
            !found
        })?;
        Ok(found)
    }

    /// The `lost+found` directory under the root, made (mode 0700, root's)
    /// if there is none.
    fn lost_found(&mut self) -> Result<Ino> {
        match self.find(Ino::ROOT, LOST_FOUND)? {
            Some(e) if self.inode(e.ino)?.is_dir() => Ok(e.ino),
            Some(_) => Err(Error::Exists),
            None => Ok(self.mkdir(&Cred::root(), Ino::ROOT, LOST_FOUND, 0o700)?.ino),
        }
    }

    /// Removes entry `name` of `dir`; a directory it named loses a link
    /// in `dir` (a directory reached twice keeps its first name).
    fn remove_bad_entry(&mut self, dir: Ino, name: &[u8]) -> Result<String> {
        let target = self.find(dir, name)?.map(|e| e.ino);
        self.drop_name(dir, name)?;
        // An entry naming an inode whose pack cannot be read names no
        // directory this repair knows of.
        let was_dir = target.is_some_and(|t| {
            matches!(self.exists(t), Ok(true)) && self.inode(t).is_ok_and(|i| i.is_dir())
        });
        if dir != Ino::GRAVEYARD {
            let now = Timespec::now();
            let d = self.inode_mut(dir)?;
            d.mtime = now;
            d.ctime = now;
            if was_dir {
                d.nlink = d.nlink.saturating_sub(1);
            }
        }
        Ok(format!(
            "inode {dir}: entry '{}' removed",
            String::from_utf8_lossy(name)
        ))
    }

    /// Takes the reference to node `nid` out of inode `ino`: a directory's
    /// index is built again without it; a file loses its attributes or
    /// the pages under a map node (holes now).
    fn detach(&mut self, ino: Ino, nid: Nid) -> Result<String> {
        let inode = self.inode(ino)?.clone();
        if inode.is_dir() && inode.xattr_nid != nid {
            return self.rebuild_dir(ino, Some(nid));
        }
        Ok(match self.repoint(ino, nid, Nid::NONE)? {
            Some(Place::Xattr) => format!("inode {ino}: its attributes (node {nid}) are gone"),
            Some(Place::Map) => {
                format!("inode {ino}: the pages under map node {nid} are gone (holes now)")
            }
            None => format!("inode {ino}: node {nid} is no longer referenced"),
        })
    }

    /// Gives the first of two references file `ino` holds to node `nid`
    /// a copy of its own (as e2fsck clones a block two owners claim): the
    /// file reads as before, and the pages both copies map are then
    /// shared, which the next pass copies too ([`Fix::Unshare`]).
    fn clone_node(&mut self, ino: Ino, nid: Nid) -> Result<String> {
        let dev = self.dev();
        let node = self.store.root.cache.get(&*dev, nid)?.clone();
        let copy = self
            .store
            .root
            .cache
            .create(&*dev, ino, node.level, node.body)?;
        match self.repoint(ino, nid, copy)? {
            Some(_) => Ok(format!(
                "inode {ino}: node {nid} copied as node {copy} for one of its two references"
            )),
            None => {
                self.free_node(copy)?;
                Err(Error::Refused(format!(
                    "inode {ino} does not reference node {nid}"
                )))
            }
        }
    }

    /// Points the first reference file `ino` holds to node `nid` (its
    /// attribute node, a map slot of the inode, a slot of an indirect map
    /// node of its) at `to`; says where it was.
    fn repoint(&mut self, ino: Ino, nid: Nid, to: Nid) -> Result<Option<Place>> {
        let inode = self.inode(ino)?.clone();
        if inode.xattr_nid == nid {
            self.inode_mut(ino)?.xattr_nid = to;
            return Ok(Some(Place::Xattr));
        }
        if let Some(slot) = inode.map_nids.iter().position(|n| *n == nid) {
            self.inode_mut(ino)?.map_nids[slot] = to;
            return Ok(Some(Place::Map));
        }
        let dev = self.dev();
        let mut stack: Vec<Nid> = inode
            .map_nids
            .iter()
            .copied()
            .filter(|n| !n.is_none())
            .collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            let cache = &mut self.store.root.cache;
            let Ok(node) = cache.get(&*dev, n) else {
                continue;
            };
            let NodeBody::Indirect(ind) = &node.body else {
                continue;
            };
            if node.ino != ino {
                continue;
            }
            if let Some(i) = ind.nids.iter().position(|c| *c == nid) {
                if let NodeBody::Indirect(ind) = &mut cache.get_mut(&*dev, n)?.body {
                    ind.nids[i] = to;
                }
                return Ok(Some(Place::Map));
            }
            stack.extend(ind.nids.iter().copied().filter(|c| !c.is_none()));
        }
        Ok(None)
    }

    /// Builds directory `dir`'s index again from the entries of the leaves
    /// of its that read (`skip`: a node not to use), each filed under its
    /// name's hash with its inode's type; frees its old index nodes.
    fn rebuild_dir(&mut self, dir: Ino, skip: Option<Nid>) -> Result<String> {
        let dev = self.dev();
        let dev = &*dev;
        let root = self.inode(dir)?.dir_root;
        let (mut entries, mut own, mut lost) = (Vec::new(), Vec::new(), 0);
        let mut stack = if root.is_none() { vec![] } else { vec![root] };
        let mut seen = std::collections::HashSet::new();
        while let Some(nid) = stack.pop() {
            if !seen.insert(nid) || Some(nid) == skip {
                lost += u64::from(Some(nid) == skip);
                continue;
            }
            let Ok(node) = self.store.root.cache.get(dev, nid) else {
                lost += 1;
                continue;
            };
            if node.ino != dir {
                continue;
            }
            own.push(nid);
            match &node.body {
                NodeBody::DirLeaf(l) => {
                    entries.extend(l.entries.iter().map(|e| (e.name.clone(), e.ino, e.dtype)));
                }
                NodeBody::DirInternal(int) => stack.extend(int.children.iter().map(|(_, c)| *c)),
                _ => {}
            }
        }
        let building = self.store.building();
        for nid in &own {
            let s = &mut self.store;
            s.root
                .cache
                .remove(dev, &mut life!(s, dev, building), *nid)?;
        }
        self.add_blocks(dir, -(own.len() as i64))?;
        let d = self.inode_mut(dir)?;
        d.dir_root = Nid::NONE;
        d.dir_entries = 0;
        let seed = self.store.sb.hash_seed;
        let mut names = std::collections::HashSet::new();
        let mut kept = 0;
        for (name, ino, dtype) in entries {
            if !names.insert(name.clone()) {
                continue;
            }
            // An inode whose pack cannot be read keeps the entry's type.
            let dtype = match self.exists(ino) {
                Ok(true) => self.inode(ino).map_or(dtype, |i| super::dtype_of(i.mode)),
                _ => dtype,
            };
            crate::dir_index::insert(
                &mut self.store.root.cache,
                dev,
                dir,
                &name,
                ino,
                dtype,
                seed,
            )?;
            kept += 1;
        }
        Ok(format!(
            "directory inode {dir}: index built again, {kept} entries ({lost} unreadable nodes left out)"
        ))
    }

    /// Deletes node `nid` (its page dies, its id is free again).
    fn free_node(&mut self, nid: Nid) -> Result<()> {
        let dev = self.dev();
        let dev = &*dev;
        let building = self.store.building();
        let s = &mut self.store;
        s.root.cache.remove(dev, &mut life!(s, dev, building), nid)
    }

    /// Makes page `idx`'s pointer into a compressed cluster say that the
    /// cluster starts at `base` and holds `count` pages (same unit, same
    /// checksum of its own page: nothing is written but the pointer).
    fn reshape(&mut self, ino: Ino, idx: u64, base: u64, count: u8) -> Result<()> {
        let dev = self.dev();
        let slot = u8::try_from(idx.wrapping_sub(base))
            .ok()
            .filter(|&s| s < count)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "page {idx} is not in a cluster of {count} from {base}"
                ))
            })?;
        let mut ptr = file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?;
        ptr.slot = slot;
        ptr.count = count;
        self.put_pointer(ino, idx, ptr)?;
        Ok(())
    }

    /// Gives unit `vpn` the size and chain the record summary describing
    /// its first page says (its page address table entry says an
    /// impossible size).
    fn reshape_unit(&mut self, vpn: Vpn) -> Result<String> {
        let dev = self.dev();
        let geo = self.store.sb.geometry;
        // The entry as stored: `lookup` refuses what it says.
        let raw = self.store.pat.lock().get(&*dev, vpn.0)?;
        let Some(e) = raw.map(|r| crate::page_table::PatEntry::decode(&r)) else {
            return Err(Error::Refused(format!("unit {vpn} is free")));
        };
        let seg = geo
            .segment_of(e.addr)
            .ok_or_else(|| Error::Refused(format!("unit {vpn} is outside the segment area")))?;
        let at = geo.offset_in_segment(e.addr);
        let log = (
            self.store.sb.hash_seed,
            self.store.pat.sealer().map(|s| &**s),
        );
        let mut found = None;
        crate::segment_summary::read_chain(&*dev, &geo, log, seg, &mut |off, entry| {
            if off == at && entry.vpn == vpn {
                found = Some(*entry);
            }
        });
        let entry = found.ok_or_else(|| {
            Error::Refused(format!(
                "no record summary describes unit {vpn} at {}",
                e.addr
            ))
        })?;
        let len = entry.stored_len as usize;
        let shaped = crate::page_table::PatEntry {
            pages: crate::segment_summary::unit_pages(len) as u8,
            tail: (len % PAGE_SIZE) as u16,
            transform: entry.transform,
            ..e
        };
        self.store.pat.set(&*dev, vpn, shaped)?;
        Ok(format!(
            "unit {vpn}: {} pages, {len} bytes stored, as its record summary says",
            shaped.pages
        ))
    }

    /// Takes node `nid` out of the node address table without letting its
    /// unit die: the unit is free already, or placed outside the segment
    /// area (then only the page address table entry goes: no segment
    /// counts its pages).
    fn forget_node(&mut self, nid: Nid) -> Result<()> {
        let dev = self.dev();
        let geo = self.store.sb.geometry;
        let nat = &mut self.store.root.cache.nat;
        // An entry that does not decode names no unit to look at.
        let e = match nat.lookup(&*dev, nid) {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(()),
            Err(_) => return nat.release(&*dev, nid),
        };
        if let Some(u) = self.store.pat.lookup(&*dev, e.vpn)? {
            if geo.segment_of(u.addr).is_some() {
                return Err(Error::Refused(format!(
                    "node {nid}: its unit {} is in use inside the segment area",
                    e.vpn
                )));
            }
            self.store.pat.release(&*dev, e.vpn)?;
        }
        self.store.root.cache.nat.release(&*dev, nid)
    }

    /// Makes pages `first..first + count` of `ino` holes. A pointer whose
    /// unit the page address table has free already is only forgotten; a
    /// unit placed outside the segment area is freed without its pages
    /// (which no segment counts).
    fn drop_pages(&mut self, ino: Ino, first: u64, count: u64) -> Result<()> {
        let dev = self.dev();
        let geo = self.store.sb.geometry;
        let mut punch = Vec::new();
        for idx in first..first + count {
            let ptr = file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?;
            let unit = match ptr.is_stored() {
                true => Some(self.store.pat.lookup(&*dev, ptr.vpn)?),
                false => None,
            };
            match unit {
                Some(None) => self.forget_pointer(ino, idx)?,
                Some(Some(e)) if geo.segment_of(e.addr).is_none() => {
                    self.forget_pointer(ino, idx)?;
                    if self.store.pat.lookup(&*dev, ptr.vpn)?.is_some() {
                        self.store.pat.release(&*dev, ptr.vpn)?;
                    }
                }
                _ => punch.push(idx),
            }
        }
        if let (Some(&lo), Some(&hi)) = (punch.first(), punch.last()) {
            self.punch(ino, lo * PS, (hi + 1) * PS)?;
        }
        Ok(())
    }

    /// Sets page `idx` of `ino` to a hole without letting its unit die
    /// (it is free already, or another file's).
    fn forget_pointer(&mut self, ino: Ino, idx: u64) -> Result<()> {
        let old = self.clear_pointer(ino, idx)?;
        // A compressed cluster whose unit is gone counted no page in the
        // check (nor in the page count the Blocks fix set).
        if old.is_allocated() && !old.is_packed() {
            self.add_blocks(ino, -1)?;
        }
        Ok(())
    }

    /// Gives every owner of a page but one its own copy: the first whose
    /// checksum matches keeps the page; another that matches is pointed at
    /// a fresh copy, one that does not gets a hole.
    fn unshare(&mut self, owners: &[(Ino, u64)]) -> Result<String> {
        let mut kept = false;
        let mut done = Vec::new();
        for &(ino, idx) in owners {
            let page = match self.read_page(ino, idx) {
                Ok(p) => Some(p),
                Err(Error::Corrupt { .. } | Error::Io(_)) => None,
                Err(e) => return Err(e),
            };
            if page.is_some() && !kept {
                kept = true;
                done.push(format!("inode {ino} page {idx} keeps it"));
                continue;
            }
            self.forget_pointer(ino, idx)?;
            match page {
                Some(bytes) => {
                    let copy = self.dirty_page(ino, idx, idx..idx + 1)?;
                    copy.copy_from_slice(&bytes[..]);
                    done.push(format!("inode {ino} page {idx} copied"));
                }
                None => done.push(format!(
                    "inode {ino} page {idx} fails its checksum: bytes {}..{} dropped, a hole now",
                    idx * PS,
                    idx * PS + PS
                )),
            }
        }
        Ok(done.join("; "))
    }

    /// Sets the usage the served root's quota file records to a recount of
    /// its inodes.
    fn recount_quota(&mut self) -> Result<String> {
        let Some(recorded) = self.recorded_usage()? else {
            return Ok("no quota file".into());
        };
        let counted = self.recount_usage()?;
        let ids: std::collections::BTreeSet<_> =
            recorded.keys().chain(counted.keys()).copied().collect();
        let mut fixed = 0;
        for id in ids {
            let r = recorded.get(&id).copied().unwrap_or_default();
            let c = counted.get(&id).copied().unwrap_or_default();
            if r != c {
                let delta = Usage {
                    pages: c.pages - r.pages,
                    inodes: c.inodes - r.inodes,
                };
                self.store.root.cache.usage.adjust(id, delta);
                fixed += 1;
            }
        }
        // (Inside a branch's view, the view's root is the one changed.)
        self.store.root.changed = true;
        Ok(format!("quota usage of {fixed} ids recounted"))
    }
}

/// Where an inode refers to a node.
enum Place {
    /// Its attribute node.
    Xattr,
    /// A node of its page map.
    Map,
}
