//! Views: roots served beside the live one by the same mounted filesystem
//! (one image, one lock, one daemon; each view is its own FUSE session):
//! retained checkpoints, read-only, and read-write branches.
//!
//! The store keeps the roots (`volume/roots.rs`); a view adds the kernel's
//! open and lookup counts of its own. An operation on a view runs with the
//! view's root in place and its counts swapped in, so every POSIX
//! operation serves it unchanged, under the filesystem's lock like every
//! operation. Commits and cleaning always put the live root back in place
//! first. While a retained checkpoint is open it is pinned: the window
//! and the cleaner's need for room do not prune it, and `delete` refuses
//! it. Its units are found through the page address table, which follows
//! the cleaner's moves.

use std::collections::HashMap;

use super::Filesystem;
use crate::checkpoints::At;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, Ino};
use crate::roots::{Serve, LIVE};

/// Names an open view (its root's slot in the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId(pub u64);

/// A view's own counts.
#[derive(Debug, Default)]
pub(super) struct View {
    opens: HashMap<Ino, u32>,
    lookups: HashMap<Ino, u64>,
}

impl Filesystem {
    /// Opens a read-only view of the retained checkpoint `at` names.
    pub fn open_view(&mut self, at: &At) -> Result<(ViewId, CheckpointNo)> {
        self.degrade_if_failed()?;
        let (slot, no) = self.store.open_past(at)?;
        self.views.insert(ViewId(slot), View::default());
        Ok((ViewId(slot), no))
    }

    /// Opens branch `name` (read-write unless the mount is read-only).
    /// Files a crash left unlinked but open in it are freed first.
    pub fn open_branch(&mut self, name: &[u8]) -> Result<ViewId> {
        self.degrade_if_failed()?;
        let slot = self.store.open_branch(name)?;
        let id = ViewId(slot);
        self.views.insert(id, View::default());
        if !self.store.mount_read_only {
            let purged = self.in_view(id, |fs| fs.purge_graveyard());
            if let Err(e) = purged {
                self.close_view(id)?;
                return Err(e);
            }
        }
        Ok(id)
    }

    /// Closes a view: a branch's changes are committed, a checkpoint is
    /// no longer pinned by it.
    pub fn close_view(&mut self, id: ViewId) -> Result<()> {
        if self.views.remove(&id).is_none() {
            return Ok(());
        }
        let closed = self.store.close_root(id.0);
        // A store replaced after a failed write reopens the roots it had
        // open: this one goes from the new store too.
        let degraded = self.degrade_if_failed();
        if self.store.parked.contains_key(&id.0) {
            self.store.close_root(id.0)?;
        }
        closed.and(degraded)
    }

    /// The checkpoint view `id` serves (a branch's origin).
    pub fn view_checkpoint(&self, id: ViewId) -> Option<CheckpointNo> {
        match self.store.parked.get(&id.0).map(|p| &p.what) {
            Some(Serve::Past(no)) => Some(*no),
            Some(Serve::Branch(name)) => self.store.cplist.branch(name).map(|b| b.no),
            _ => None,
        }
    }

    /// The name of the branch view `id` serves, if it serves one.
    pub fn view_branch(&self, id: ViewId) -> Option<String> {
        match self.store.parked.get(&id.0).map(|p| &p.what) {
            Some(Serve::Branch(name)) => Some(String::from_utf8_lossy(name).into_owned()),
            _ => None,
        }
    }

    /// Runs `f` on view `id`: a retained checkpoint (read-only) or a
    /// branch.
    pub fn in_view<T>(
        &mut self,
        id: ViewId,
        f: impl FnOnce(&mut Filesystem) -> Result<T>,
    ) -> Result<T> {
        // A failed write replaces the store (and reopens the roots) here,
        // never while a view is in place.
        self.degrade_if_failed()?;
        let mut view = self.views.remove(&id).ok_or_else(|| {
            Error::Io(std::io::Error::other(
                "this view of a checkpoint or branch has been closed",
            ))
        })?;
        if let Err(e) = self.store.enter(id.0) {
            self.views.insert(id, view);
            return Err(e);
        }
        self.swap_counts(&mut view);
        let result = self.load_quota().and_then(|()| f(self));
        self.swap_counts(&mut view);
        // A failure inside `f` may have left the store to be replaced: the
        // live root goes back in place either way.
        let back = self.store.enter(LIVE);
        self.views.insert(id, view);
        match (result, back) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(v), Ok(())) => Ok(v),
        }
    }

    /// Exchanges the filesystem's open and lookup counts with `view`'s.
    fn swap_counts(&mut self, view: &mut View) {
        std::mem::swap(&mut self.opens, &mut view.opens);
        std::mem::swap(&mut self.lookups, &mut view.lookups);
    }
}
