//! Retained checkpoints and snapshots as the filesystem offers them: list,
//! mark, delete (the work is in `volume/checkpoints.rs`).

use super::Filesystem;
use crate::checkpoint_record::Record;
use crate::checkpoints::At;
use crate::error::{Error, Result};
use crate::ids::CheckpointNo;
use crate::store::now_ns;

/// A retained checkpoint as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its number.
    pub no: CheckpointNo,
    /// When it was taken (ns since the epoch).
    pub time_ns: i64,
    /// The snapshot's name, if it is one.
    pub snapshot: Option<Vec<u8>>,
    /// Pages only it holds: what deleting it frees.
    pub exclusive_pages: u64,
    /// Pages its deadlist names (held by it and possibly older ones).
    pub held_pages: u64,
    /// Inside the protection window (a plain checkpoint outside it is
    /// pruned at the next commit).
    pub protected: bool,
    /// This checkpoint is mounted (the mount serves it, or a view of it is
    /// open).
    pub mounted: bool,
}

/// A read-write branch as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchInfo {
    /// Its name.
    pub name: Vec<u8>,
    /// The retained checkpoint it started from (kept while it lives).
    pub origin: CheckpointNo,
    /// When it was made (ns since the epoch).
    pub time_ns: i64,
    /// Open now (mounted).
    pub mounted: bool,
    /// Pages only it reaches (written since its origin): what deleting it
    /// gives back.
    pub exclusive_pages: u64,
}

impl Filesystem {
    /// The retained checkpoints, oldest first.
    pub fn checkpoints(&self) -> Vec<CheckpointInfo> {
        let s = &self.store;
        let window = i64::try_from(s.protect_secs())
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000);
        let now = now_ns();
        s.cplist
            .records()
            .map(|r: &Record| CheckpointInfo {
                no: r.no,
                time_ns: r.time_ns,
                snapshot: r.is_snapshot().then(|| r.name.clone()),
                exclusive_pages: r.exclusive,
                held_pages: r.dead_entries,
                protected: now.saturating_sub(r.time_ns) <= window,
                mounted: s.mount_at == Some(r.no) || s.pinned.contains_key(&r.no),
            })
            .collect()
    }

    /// The protection window in force (seconds).
    pub fn protect_secs(&self) -> u64 {
        self.store.protect_secs()
    }

    /// Marks the current state (`at` None) or retained checkpoint `at` as
    /// snapshot `name`; durable on return. Returns the checkpoint.
    pub fn create_snapshot(
        &mut self,
        name: &[u8],
        at: Option<CheckpointNo>,
    ) -> Result<CheckpointNo> {
        self.degrade_if_failed()?;
        self.writable()?;
        self.store.create_snapshot(name, at)
    }

    /// Deletes snapshot `name`, giving back what only it held (once the
    /// cleaner has run); durable on return. A snapshot this mount serves
    /// cannot be deleted.
    pub fn delete_snapshot(&mut self, name: &[u8]) -> Result<()> {
        self.degrade_if_failed()?;
        if self.store.at.is_some() {
            return Err(Error::ReadOnly);
        }
        self.writable()?;
        self.store.delete_snapshot(name)
    }

    /// The retained checkpoint `at` names.
    pub fn find_checkpoint(&self, at: &At) -> Result<CheckpointNo> {
        self.store.find_checkpoint(at).map(|r| r.no)
    }

    /// The read-write branches, by name.
    pub fn branches(&self) -> Vec<BranchInfo> {
        let s = &self.store;
        // An open branch's count is in memory, ahead of its record.
        let open = |name: &[u8]| s.open_branch_root(name).map(|r| r.history.own);
        s.cplist
            .branches()
            .map(|r| BranchInfo {
                name: r.name.clone(),
                origin: r.no,
                time_ns: r.time_ns,
                mounted: open(&r.name).is_some(),
                exclusive_pages: open(&r.name).unwrap_or(r.exclusive),
            })
            .collect()
    }

    /// Makes branch `name`, a writable root that starts as the retained
    /// checkpoint `at` names and shares every unchanged page with it;
    /// durable on return. Returns its origin.
    pub fn create_branch(&mut self, name: &[u8], at: &At) -> Result<CheckpointNo> {
        self.degrade_if_failed()?;
        self.writable()?;
        self.store.create_branch(name, at)
    }

    /// Deletes branch `name` (not mounted), giving back what only it held
    /// (once the cleaner has run); durable on return.
    pub fn delete_branch(&mut self, name: &[u8]) -> Result<()> {
        self.degrade_if_failed()?;
        self.writable()?;
        self.store.delete_branch(name)
    }

    /// Rolls the live root back to `source` (a retained checkpoint, a
    /// snapshot or a branch), keeping the present as snapshot `keep_as`
    /// (default `pre-rollback-DATE`); no snapshot is destroyed. Durable
    /// on return. Needs no file of the live root in use (the kernel's
    /// caches would outlive the tree they came from). Returns the source's
    /// checkpoint (a branch's origin), and the snapshot's name and
    /// checkpoint.
    pub fn rollback(
        &mut self,
        source: &crate::roots::RootName,
        keep_as: Option<&[u8]>,
    ) -> Result<(CheckpointNo, Vec<u8>, CheckpointNo)> {
        self.degrade_if_failed()?;
        self.check_rollback()?;
        self.writable()?;
        let keep = match keep_as {
            Some(k) => k.to_vec(),
            None => format!("pre-rollback-{}", crate::when::stamp(now_ns())).into_bytes(),
        };
        let (from, kept) = self.store.rollback(source, &keep)?;
        self.after_rollback()?;
        Ok((from, keep, kept))
    }

    /// [`Filesystem::rollback`] when the present was just kept as
    /// snapshot `kept_as` (the newest, with nothing changed since) by the
    /// caller. Returns the source's checkpoint.
    pub fn rollback_onto(
        &mut self,
        source: &crate::roots::RootName,
        kept_as: &[u8],
    ) -> Result<CheckpointNo> {
        self.degrade_if_failed()?;
        self.check_rollback()?;
        self.writable()?;
        let from = self.store.rollback_onto(source, kept_as)?;
        self.after_rollback()?;
        Ok(from)
    }

    fn check_rollback(&self) -> Result<()> {
        if !self.opens.is_empty() || !self.lookups.is_empty() || !self.views.is_empty() {
            return Err(Error::Refused(
                "a rollback needs the live tree unmounted (files in use) and no view open".into(),
            ));
        }
        Ok(())
    }

    /// Files the source left unlinked but open are freed, as a mount
    /// frees them.
    fn after_rollback(&mut self) -> Result<()> {
        self.load_quota()?;
        self.purge_graveyard()?;
        self.sync()
    }

    /// What changed from root `older` to root `newer` (retained
    /// checkpoints, snapshots or branches, as committed), sorted by path.
    pub fn diff(
        &mut self,
        older: &crate::roots::RootName,
        newer: &crate::roots::RootName,
    ) -> Result<Vec<crate::diff::Change>> {
        self.degrade_if_failed()?;
        self.store.diff(older, newer)
    }

    /// The retained checkpoint this mount serves, if not the live root.
    pub fn mounted_checkpoint(&self) -> Option<CheckpointNo> {
        self.store.at
    }
}
