//! The roots a store serves: the live root, retained checkpoints opened
//! beside it (read-only views), and read-write branches.
//!
//! One root is in place at a time (`Store::root`): the one the operation
//! at hand serves. The others wait in `parked`, each under a slot number
//! (0 is the live root). Serving another is two pointer moves
//! ([`Store::enter`]). Whatever must see the live root (commits, the
//! cleaner, pruning) runs through [`Store::with_live`]; a commit writes
//! every open branch's changes too, each with its own root in place, and
//! updates the branch's record in the checkpoint list.
//!
//! A branch is a root of its own that started as a retained checkpoint
//! (its origin) and shares every unchanged unit with it. Its record holds
//! its state as of the last commit. The origin is kept while the branch
//! lives: the window and room pressure do not prune it, and deleting it
//! as a snapshot is refused. A unit born at or before the origin belongs
//! to the origin's line; a unit born after it and reached by the branch
//! is the branch's own, and deleting the branch frees exactly those.

use crate::cache_sizes::CacheSizes;
use crate::checkpoint_record::{Record, FLAG_BRANCH};
use crate::checkpoints::{check_name, At};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::history::History;
use crate::ids::CheckpointNo;
use crate::node_cache::NodeCache;
use crate::node_table::NodeTable;
use crate::page_life::life;
use crate::root::Root;
use crate::store::{now_ns, DataScope, Store};

/// The live root's slot.
pub const LIVE: u64 = 0;

/// What a root is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serve {
    /// The live root.
    Live,
    /// A retained checkpoint, read-only.
    Past(CheckpointNo),
    /// A read-write branch, by name.
    Branch(Vec<u8>),
}

/// A root by its name: a retained checkpoint (or snapshot), or a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootName {
    /// A retained checkpoint or snapshot.
    Past(At),
    /// A branch.
    Branch(Vec<u8>),
}

/// A root out of place.
#[derive(Debug)]
pub struct Parked {
    /// What it is.
    pub what: Serve,
    /// The root.
    pub root: Root,
}

/// The data scope root `slot` gets in a commit asked for `scope` on the
/// root in slot `serving`: all or none as asked, but one inode's data only
/// in the root it belongs to.
pub(crate) fn scope_in(scope: DataScope, slot: u64, serving: u64) -> DataScope {
    match scope {
        DataScope::Inode(_) if slot != serving => DataScope::None,
        s => s,
    }
}

fn closed(slot: u64) -> Error {
    Error::Io(std::io::Error::other(format!(
        "root {slot} is not open (its mount has ended)"
    )))
}

impl Store {
    /// The root the record names (a retained checkpoint or a branch),
    /// over a node cache of its own (a view's share of `cache=`).
    pub(crate) fn root_of(&self, rec: &Record) -> Root {
        self.root_sized(rec, self.caches.for_view())
    }

    /// [`Store::root_of`] with caches of `sizes` (the whole of `cache=`
    /// for a root that is to be served as the mount's own: a rollback's,
    /// a read-only mount of the past).
    pub(crate) fn root_sized(&self, rec: &Record, sizes: CacheSizes) -> Root {
        let nat = NodeTable::new(
            rec.nat_root,
            rec.nat_free_head,
            rec.nat_watermark,
            &self.sb.geometry,
            sizes.nat_pages,
            self.pat.clone(),
        );
        let mut root = Root::open(&self.cp, NodeCache::new(nat, sizes.node_bytes));
        root.inode_count = rec.inode_count;
        root.next_generation = rec.next_generation;
        root.reserved_pages = rec.reserved_pages;
        root
    }

    /// Serves root `slot` from now on.
    pub fn enter(&mut self, slot: u64) -> Result<()> {
        if slot == self.serving.0 {
            return Ok(());
        }
        let p = self.parked.remove(&slot).ok_or_else(|| closed(slot))?;
        let root = std::mem::replace(&mut self.root, p.root);
        let (was, what) = std::mem::replace(&mut self.serving, (slot, p.what));
        self.parked.insert(was, Parked { what, root });
        self.apply_serving();
        Ok(())
    }

    /// The slot served now, and what it is.
    pub fn serving(&self) -> (u64, &Serve) {
        (self.serving.0, &self.serving.1)
    }

    /// Sets `at` and `read_only` as the root served asks.
    fn apply_serving(&mut self) {
        (self.at, self.read_only) = match &self.serving.1 {
            Serve::Live => (self.mount_at, self.mount_read_only),
            Serve::Past(no) => (Some(*no), true),
            Serve::Branch(_) => (None, self.mount_read_only),
        };
    }

    /// Runs `f` with the live root in place, then serves again what was
    /// served before.
    pub(crate) fn with_live<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let slot = self.serving.0;
        self.enter(LIVE)?;
        let r = f(self);
        if self.parked.contains_key(&slot) {
            self.enter(slot)?;
        }
        r
    }

    fn park(&mut self, what: Serve, root: Root) -> u64 {
        self.next_root_slot += 1;
        let slot = self.next_root_slot;
        self.parked.insert(slot, Parked { what, root });
        slot
    }

    /// Opens the retained checkpoint `at` names, read-only, beside the
    /// live root (pinned while open). Returns its slot and checkpoint.
    pub fn open_past(&mut self, at: &At) -> Result<(u64, CheckpointNo)> {
        let (no, root) = self.past_root(at)?;
        self.pin(no);
        Ok((self.park(Serve::Past(no), root), no))
    }

    /// Every open root, the one in place first: slot, what it is, root.
    pub fn open_roots(&self) -> impl Iterator<Item = (u64, &Serve, &Root)> {
        let here = std::iter::once((self.serving.0, &self.serving.1, &self.root));
        here.chain(self.parked.iter().map(|(s, p)| (*s, &p.what, &p.root)))
    }

    /// The root of branch `name`, if it is open.
    pub fn open_branch_root(&self, name: &[u8]) -> Option<&Root> {
        self.open_roots()
            .find(|(_, w, _)| matches!(w, Serve::Branch(n) if n == name))
            .map(|(_, _, r)| r)
    }

    /// Is branch `name` open?
    fn branch_open(&self, name: &[u8]) -> bool {
        self.open_branch_root(name).is_some()
    }

    /// The root of branch record `rec`, with its history.
    fn branch_root(&self, rec: &Record) -> Root {
        let mut root = self.root_of(rec);
        root.history = History::branch(rec.no, rec.exclusive);
        root
    }

    /// Opens branch `name` beside the live root (read-write if the mount
    /// is). Returns its slot.
    pub fn open_branch(&mut self, name: &[u8]) -> Result<u64> {
        let rec = self.find_branch(name)?.clone();
        if self.branch_open(name) {
            return Err(Error::Refused(format!(
                "branch '{}' is already mounted",
                rec.shown_name()
            )));
        }
        let root = self.branch_root(&rec);
        Ok(self.park(Serve::Branch(name.to_vec()), root))
    }

    /// The branch named `name`.
    pub fn find_branch(&self, name: &[u8]) -> Result<&Record> {
        self.cplist.branch(name).ok_or_else(|| {
            Error::Refused(format!(
                "no branch is named '{}'; `pagelog-snapshot list` shows what is",
                String::from_utf8_lossy(name)
            ))
        })
    }

    /// Closes root `slot` (a view or a branch); a branch's changes are
    /// committed first.
    pub fn close_root(&mut self, slot: u64) -> Result<()> {
        if slot == LIVE {
            return Ok(());
        }
        self.enter(LIVE)?;
        let dirty = self
            .parked
            .get(&slot)
            .is_some_and(|p| matches!(p.what, Serve::Branch(_)) && p.root.needs_commit());
        let committed = match dirty && !self.read_only {
            true => self.commit(false),
            false => Ok(()),
        };
        // Closed whatever the commit did: a failed one degrades the store,
        // and what the branch had not committed is lost with it.
        if let Some(p) = self.parked.remove(&slot) {
            if let Serve::Past(no) = p.what {
                self.unpin(no);
            }
        }
        committed
    }

    /// The record `name` names.
    pub fn record_of(&self, name: &RootName) -> Result<Record> {
        Ok(match name {
            RootName::Past(at) => self.find_checkpoint(at)?.clone(),
            RootName::Branch(b) => self.find_branch(b)?.clone(),
        })
    }

    /// What changed from root `older` to root `newer` (as committed).
    pub fn diff(&self, older: &RootName, newer: &RootName) -> Result<Vec<crate::diff::Change>> {
        let mut a = self.root_of(&self.record_of(older)?);
        let mut b = self.root_of(&self.record_of(newer)?);
        crate::diff::diff(&mut a, &mut b, &*self.dev, self.quota_ino())
    }

    /// Reopens, in the same slots, the roots `old` had open besides the
    /// live one (a failed write replaced the store, which now serves the
    /// device's last commit, read-only), and serves the same slot.
    pub fn adopt_roots(&mut self, old: &Store) {
        let open = old
            .parked
            .iter()
            .map(|(slot, p)| (*slot, &p.what))
            .chain(std::iter::once((old.serving.0, &old.serving.1)));
        for (slot, what) in open {
            let root = match what {
                Serve::Live => continue,
                Serve::Past(no) => self.past_root(&At::Checkpoint(*no)).map(|(no, root)| {
                    self.pin(no);
                    root
                }),
                Serve::Branch(name) => self.find_branch(name).map(|rec| self.branch_root(rec)),
            };
            match root {
                Ok(root) => {
                    let what = what.clone();
                    self.parked.insert(slot, Parked { what, root });
                }
                Err(e) => log::error!("root {slot} cannot be reopened: {e}"),
            }
        }
        self.next_root_slot = old.next_root_slot;
        if self.enter(old.serving.0).is_err() {
            log::error!("root {} is gone; serving the live root", old.serving.0);
        }
    }

    /// Makes branch `name` from the retained checkpoint `at` names,
    /// durably. Returns its origin.
    pub fn create_branch(&mut self, name: &[u8], at: &At) -> Result<CheckpointNo> {
        check_name(name)?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.cplist.branch(name).is_some() || self.cplist.snapshot(name).is_some() {
            return Err(Error::Exists);
        }
        let origin = self.find_checkpoint(at)?.clone();
        let rec = Record {
            no: origin.no,
            time_ns: now_ns(),
            flags: FLAG_BRANCH,
            name: name.to_vec(),
            dead_head: crate::ids::Vpn::NONE,
            dead_crc: 0,
            dead_entries: 0,
            exclusive: 0,
            dead_pages: 0,
            ..origin
        };
        self.with_live(|s| {
            let dev = s.dev.clone();
            s.cplist.put_branch(&*dev, rec)?;
            s.root.changed = true;
            s.commit_scope(DataScope::All, true)
        })?;
        Ok(origin.no)
    }

    /// Deletes branch `name` (not open), durably: every unit only it
    /// reached (born after its origin) is freed, and its origin is no
    /// longer kept for it.
    pub fn delete_branch(&mut self, name: &[u8]) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let rec = self.find_branch(name)?.clone();
        if self.branch_open(name) {
            return Err(Error::Refused(format!(
                "branch '{}' is mounted; unmount it first",
                rec.shown_name()
            )));
        }
        self.with_live(|s| {
            let dev = s.dev.clone();
            let dev: &dyn BlockDevice = &*dev;
            let mut root = s.root_of(&rec);
            let mut own = Vec::new();
            crate::units::for_each(&mut root.cache, dev, &mut |vpn| {
                if s.pat.lookup(dev, vpn)?.is_some_and(|e| e.birth > rec.no) {
                    own.push(vpn);
                }
                Ok(())
            })?;
            let building = s.building();
            for vpn in own {
                life!(s, dev, building).free(vpn)?;
            }
            s.cplist.remove_branch(dev, name)?;
            s.root.changed = true;
            s.commit_scope(DataScope::All, true)
        })
    }

    /// Writes the changes of every open branch (the live root is in
    /// place; each branch is put in its place in turn) and updates their
    /// records.
    pub(crate) fn commit_branches(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
        scope: DataScope,
        serving: u64,
    ) -> Result<()> {
        let slots: Vec<u64> = self
            .parked
            .iter()
            .filter(|(_, p)| matches!(p.what, Serve::Branch(_)) && p.root.needs_commit())
            .map(|(s, _)| *s)
            .collect();
        for slot in slots {
            let Some(mut p) = self.parked.remove(&slot) else {
                continue;
            };
            std::mem::swap(&mut self.root, &mut p.root);
            let r = self.write_root(dev, building, scope_in(scope, slot, serving));
            std::mem::swap(&mut self.root, &mut p.root);
            // Back in its place whatever happened: a failed commit
            // degrades the store, which reopens every parked root.
            let r = r.and_then(|()| self.update_branch_record(dev, &p));
            if r.is_ok() {
                p.root.changed = false;
            }
            self.parked.insert(slot, p);
            r?;
        }
        Ok(())
    }

    /// Writes a parked branch's state into its record.
    fn update_branch_record(&mut self, dev: &dyn BlockDevice, p: &Parked) -> Result<()> {
        let Serve::Branch(name) = &p.what else {
            return Ok(());
        };
        let rec = self.find_branch(name)?.clone();
        let nat = &p.root.cache.nat;
        let rec = Record {
            nat_root: nat.root(),
            nat_free_head: nat.free_head(),
            nat_watermark: nat.watermark(),
            inode_count: p.root.inode_count,
            next_generation: p.root.next_generation,
            reserved_pages: p.root.reserved_pages,
            exclusive: p.root.history.own,
            ..rec
        };
        self.cplist.put_branch(dev, rec)
    }
}
