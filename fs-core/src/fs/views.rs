//! Views: retained checkpoints served, read-only, beside the live root by
//! the same mounted filesystem (one image, one lock, one daemon; each view
//! is its own FUSE session).
//!
//! A view is a root of its own (node cache over the checkpoint's node
//! address table) with its own open and lookup counts. An operation on a
//! view runs with the view's root swapped in for the live one and the
//! store read-only, so every POSIX operation serves it unchanged and none
//! can write; the swap is two pointer moves, made under the filesystem's
//! lock like every operation. Commits and cleaning only ever run with the
//! live root in place (between operations). While a view is open its
//! checkpoint is pinned: the window and the cleaner's need for room do
//! not prune it, and `delete` refuses it. Its units stay where the page
//! address table says, which follows the cleaner's moves.

use std::collections::HashMap;

use super::Filesystem;
use crate::checkpoints::At;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, Ino};
use crate::root::Root;

/// Names an open view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId(pub u64);

/// A retained checkpoint being served.
#[derive(Debug)]
pub(super) struct View {
    at: CheckpointNo,
    root: Root,
    opens: HashMap<Ino, u32>,
    lookups: HashMap<Ino, u64>,
}

impl Filesystem {
    /// Opens a read-only view of the retained checkpoint `at` names.
    pub fn open_view(&mut self, at: &At) -> Result<(ViewId, CheckpointNo)> {
        self.degrade_if_failed()?;
        let (no, root) = self.store.past_root(at)?;
        self.store.pin(no);
        self.next_view += 1;
        let id = ViewId(self.next_view);
        let view = View {
            at: no,
            root,
            opens: HashMap::new(),
            lookups: HashMap::new(),
        };
        self.views.insert(id, view);
        Ok((id, no))
    }

    /// Closes a view; its checkpoint is no longer pinned by it.
    pub fn close_view(&mut self, id: ViewId) {
        if let Some(v) = self.views.remove(&id) {
            self.store.unpin(v.at);
        }
    }

    /// The checkpoint view `id` serves.
    pub fn view_checkpoint(&self, id: ViewId) -> Option<CheckpointNo> {
        self.views.get(&id).map(|v| v.at)
    }

    /// Runs `f` on view `id`: the filesystem as that checkpoint left it,
    /// read-only.
    pub fn in_view<T>(
        &mut self,
        id: ViewId,
        f: impl FnOnce(&mut Filesystem) -> Result<T>,
    ) -> Result<T> {
        // A failed write replaces the store (and rebuilds the views) here,
        // never while a view is swapped in.
        self.degrade_if_failed()?;
        let mut view = self.views.remove(&id).ok_or_else(|| {
            Error::Io(std::io::Error::other(
                "this view of a checkpoint has been closed",
            ))
        })?;
        let live = (self.store.at.replace(view.at), self.store.read_only);
        self.store.read_only = true;
        self.swap_view(&mut view);
        let result = f(self);
        self.swap_view(&mut view);
        (self.store.at, self.store.read_only) = live;
        self.views.insert(id, view);
        result
    }

    /// Exchanges the served root and its counts with those `view` keeps
    /// (twice restores them).
    fn swap_view(&mut self, view: &mut View) {
        std::mem::swap(&mut self.store.root, &mut view.root);
        std::mem::swap(&mut self.opens, &mut view.opens);
        std::mem::swap(&mut self.lookups, &mut view.lookups);
    }

    /// After the store was replaced (a failed write made it read-only):
    /// the views' roots are rebuilt over the new store, and pinned again.
    pub(super) fn reopen_views(&mut self) {
        let ids: Vec<ViewId> = self.views.keys().copied().collect();
        for id in ids {
            let Some(v) = self.views.get(&id) else {
                continue;
            };
            match self.store.past_root(&At::Checkpoint(v.at)) {
                Ok((no, root)) => {
                    self.store.pin(no);
                    if let Some(v) = self.views.get_mut(&id) {
                        v.root = root;
                    }
                }
                Err(e) => {
                    log::error!("view of checkpoint {} is lost: {e}", v.at);
                    self.views.remove(&id);
                }
            }
        }
    }
}
