//! What a root's past still holds: the newest retained checkpoint of the
//! root, and the units its changes killed that a retained checkpoint still
//! needs, waiting to be appended to that checkpoint's deadlist at the next
//! commit (docs/DESIGN.md, "Retained checkpoints").

use std::collections::BTreeMap;

use crate::deadlist_page::DeadUnit;
use crate::ids::CheckpointNo;

/// A root's retained past, as the root's changes see it.
#[derive(Debug, Default)]
pub struct History {
    /// The newest retained checkpoint (0: none). A unit born after it is
    /// needed by no retained checkpoint: it is freed when it dies.
    pub last: CheckpointNo,
    /// Units to append to a retained checkpoint's deadlist at the next
    /// commit: those killed since `last` (under `last`), and those a
    /// pruned checkpoint passed on to the one before it.
    pub pending: BTreeMap<CheckpointNo, Vec<DeadUnit>>,
    /// The root is a branch and `last` its origin: a unit born at or
    /// before it belongs to the origin's line (the live root's retained
    /// checkpoints), which frees it in its own time, so the branch letting
    /// go of it changes nothing.
    pub origin_held: bool,
}

impl History {
    /// The history of a branch made from retained checkpoint `origin`.
    pub fn branch(origin: CheckpointNo) -> History {
        History {
            last: origin,
            pending: BTreeMap::new(),
            origin_held: true,
        }
    }

    /// Deadlist entries waiting for the next commit.
    pub fn pending_count(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}
