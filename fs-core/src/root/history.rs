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
    /// For a branch: the units born after its origin that it reaches (what
    /// deleting it gives back), kept as they are written and die.
    pub own: u64,
}

impl History {
    /// The history of a branch made from retained checkpoint `origin`.
    pub fn branch(origin: CheckpointNo, own: u64) -> History {
        History {
            last: origin,
            pending: BTreeMap::new(),
            origin_held: true,
            own,
        }
    }

    /// Deadlist entries waiting for the next commit.
    pub fn pending_count(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}
