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
}

impl History {
    /// Deadlist entries waiting for the next commit.
    pub fn pending_count(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}
