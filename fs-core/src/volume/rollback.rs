//! Rollback: the live root takes the tree of a retained checkpoint or a
//! branch, and the present is kept as a snapshot first, so nothing is
//! lost and no newer snapshot goes (unlike ZFS's `rollback`, which
//! destroys the snapshots taken since).
//!
//! The live root's retained past is a line: a unit is held by the
//! checkpoints from its birth to its death, and when it dies it goes on
//! the deadlist of the newest retained checkpoint (`page_life.rs`). A
//! rollback brings units back to life: those the source's tree reaches
//! that the present's does not were killed since, and sit on deadlists.
//! They are taken off every deadlist (rewritten through the pending
//! entries, as a commit writes them), so that no pruning frees a unit the
//! live root uses again; the units only the present reaches die now, on
//! the deadlist of the snapshot that keeps the present. A unit brought
//! back and killed again later goes on a later checkpoint's deadlist and
//! passes down through the retained checkpoints as any other; at worst it
//! waits on one that does not hold it, which delays its freeing but can
//! never free it early (docs/DESIGN.md, "Rollback").
//!
//! It is one commit: a crash before it leaves the present (and its
//! snapshot, if that commit landed), a crash after, the rolled-back tree.

use std::collections::HashSet;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::history::History;
use crate::ids::{CheckpointNo, Vpn};
use crate::page_life::life;
use crate::roots::RootName as Source;
use crate::store::{DataScope, Store};

impl Store {
    /// Rolls the live root back to `source`, keeping the present as
    /// snapshot `keep_as` first; durable on return. Returns the
    /// checkpoints of the source (a branch's origin) and of the snapshot.
    pub fn rollback(
        &mut self,
        source: &Source,
        keep_as: &[u8],
    ) -> Result<(CheckpointNo, CheckpointNo)> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if !self.parked.is_empty() || self.serving.0 != crate::roots::LIVE {
            return Err(Error::Refused(
                "a rollback needs every snapshot and branch view closed".into(),
            ));
        }
        self.record_of(source)?;
        let kept = self.create_snapshot(keep_as, None)?;
        let from = self.rollback_onto(source, keep_as)?;
        Ok((from, kept))
    }

    /// Rolls the live root back to `source`, the present having just been
    /// kept as snapshot `kept_as` (the newest retained checkpoint, with
    /// nothing changed since); durable on return. Returns the source's
    /// checkpoint.
    pub fn rollback_onto(&mut self, source: &Source, kept_as: &[u8]) -> Result<CheckpointNo> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let kept = match self.cplist.newest() {
            Some(r) if r.is_snapshot() && r.name == kept_as && !self.needs_commit() => r.no,
            _ => {
                return Err(Error::Refused(format!(
                    "the present must be kept as the newest snapshot ('{}') just before a rollback",
                    String::from_utf8_lossy(kept_as)
                )))
            }
        };
        if !self.parked.is_empty() || self.serving.0 != crate::roots::LIVE {
            return Err(Error::Refused(
                "a rollback needs every snapshot and branch view closed".into(),
            ));
        }
        let rec = self.record_of(source)?;
        let dev = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev;
        // It becomes the live root: caches of the live root's size.
        let mut source_root = self.root_sized(&rec, self.caches);
        let reached = |root: &mut crate::root::Root| -> Result<HashSet<Vpn>> {
            let mut set = HashSet::new();
            crate::units::for_each(&mut root.cache, dev, &mut |vpn| {
                set.insert(vpn);
                Ok(())
            })?;
            Ok(set)
        };
        let from = reached(&mut source_root)?;
        let now = reached(&mut self.root)?;
        let revived: HashSet<Vpn> = from.difference(&now).copied().collect();
        // Every deadlist is read before anything changes.
        let mut affected = Vec::new();
        for r in self.cplist.records() {
            let (units, pages) = self.read_deadlist(r.dead_head, r.dead_crc)?;
            if units.iter().any(|(v, _)| revived.contains(v)) {
                affected.push((r.clone(), units, pages));
            }
        }
        if let Source::Branch(name) = source {
            self.find_branch(name)?;
        }
        let mut pending = std::collections::BTreeMap::new();
        let building = self.building();
        for (mut r, units, pages) in affected {
            for vpn in pages {
                life!(self, dev, building).free(vpn)?;
            }
            let keep: Vec<_> = units
                .into_iter()
                .filter(|(v, _)| !revived.contains(v))
                .collect();
            (r.dead_head, r.dead_crc) = (Vpn::NONE, 0);
            (r.dead_entries, r.dead_pages, r.exclusive) = (0, 0, 0);
            let no = r.no;
            self.cplist.update(dev, r)?;
            if !keep.is_empty() {
                pending.insert(no, keep);
            }
        }
        let next_generation = self.root.next_generation.max(rec.next_generation);
        source_root.next_generation = next_generation;
        source_root.history = History {
            last: kept,
            pending,
            origin_held: false,
            own: 0,
        };
        self.root = source_root;
        for vpn in now.difference(&from) {
            life!(self, dev, building).died(*vpn)?;
        }
        if let Source::Branch(name) = source {
            self.cplist.remove_branch(dev, name)?;
        }
        self.root.changed = true;
        self.commit_scope(DataScope::All, true)?;
        Ok(rec.no)
    }
}
