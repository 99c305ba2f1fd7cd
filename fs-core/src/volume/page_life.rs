//! Where a page's life is decided. A page is born when the log writes it
//! (`SegmentWriter::alloc` counts it in the segment usage table) and dies
//! when the root being built stops using it: every death, whatever the
//! page (file data, a node, a table page, the checkpoint), goes through
//! [`PageLife::died`].
//!
//! With one root and no retained checkpoint (format version 2), a page
//! that dies is free once the commit that let it go is durable (the
//! segment usage table's pre-free rule). Snapshots will decide here, from
//! the page's birth and the retained checkpoints, whether one of them
//! still needs it (docs/design-v3.md, "Deadlists").

use crate::device::BlockDevice;
use crate::error::Result;
use crate::ids::{CheckpointNo, PageAddr};
use crate::segment_usage::SegmentUsage;

/// The deaths of pages during one change to the root being built.
#[derive(Debug)]
pub struct PageLife<'a> {
    sut: &'a mut SegmentUsage,
    dev: &'a dyn BlockDevice,
    building: CheckpointNo,
}

impl<'a> PageLife<'a> {
    /// Deaths counted in `sut`, for the checkpoint `building`.
    pub fn new(
        sut: &'a mut SegmentUsage,
        dev: &'a dyn BlockDevice,
        building: CheckpointNo,
    ) -> PageLife<'a> {
        PageLife { sut, dev, building }
    }

    /// The page at `addr` is no longer used by the root being built.
    pub fn died(&mut self, addr: PageAddr) -> Result<()> {
        self.sut.remove_live(self.dev, addr, self.building)
    }

    /// The usage table, for the log writer that gives pages their birth.
    pub fn usage(&mut self) -> &mut SegmentUsage {
        self.sut
    }
}
