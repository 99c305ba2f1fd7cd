//! Room in the log: the most pages the next commit can write, and the
//! reserves that every operation leaves, so that a commit always fits.
//!
//! A log-structured filesystem must never be unable to write its own next
//! checkpoint: the pages a commit writes can only go into segments that are
//! free now (emptied segments come back only once that very commit is
//! durable). So the store keeps, between any two operations, the invariant
//!
//! > segments the next commit needs, at most ≤ segments writable now
//!
//! and every operation checks, before it changes anything, that the
//! invariant still holds with its own worst case added (plus the reserves
//! of its tier, below). This module holds the arithmetic; the argument is
//! in DESIGN.md ("Room for the next commit").

use crate::meta_table::Shape;
use crate::segment_summary::MAX_SEALED_ENTRIES;

/// Free segments kept for the cleaner below every operation, on a
/// filesystem whose tables can have `table_pages` pages: room for an
/// urgent pass to empty one victim whatever it holds (fewer than a
/// segment of live pages, each of which may cost its owner node too) and
/// to commit (every table page, and the checkpoint).
pub fn cleaner_reserve(pps: u32, table_pages: u64, unit: u64) -> u64 {
    segments_for(2 * u64::from(pps) + table_pages + 1, 0, pps, unit)
}

/// Payload pages kept for metadata operations below operations that take
/// space, given the largest one (`op`): room for two, so that a
/// filesystem that refuses writes still unlinks, renames and truncates
/// (each of them commits first, if it must, to find room).
pub fn metadata_reserve(op: Demand) -> u64 {
    2 * op.nodes
}

/// How many levels a directory index can have on a segment area of
/// `area_pages` pages (never more than the index allows, `max`). A split
/// at the top level of a node needs 254 children under it at once, and a
/// tree grows a level only by splitting its root, so a tree of `l` levels
/// above its leaves has had at least 254 nodes on each of the levels
/// below its top but one, all at once: `l <= 1 + area / 254`.
pub fn dir_levels(area_pages: u64, max: u8) -> u64 {
    let per = crate::dir_node::MAX_CHILDREN as u64 + 1;
    (1 + area_pages / per).min(u64::from(max)) + 1
}

/// Who asks for room, from the most to the least privileged. Each tier
/// leaves the reserves of the tiers above it untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// The commit itself: it may use every writable segment.
    Commit,
    /// A cleaning pass that commits at once (the filesystem is short of
    /// room): it may use the cleaner's reserve.
    Cleaner,
    /// Operations that change metadata only or give space back (unlink,
    /// rmdir, rename, truncate, chmod, xattrs): they leave the cleaner's
    /// reserve, so that cleaning can always run after their commit.
    Metadata,
    /// Operations that take space (writes, creates, fallocate) and
    /// cleaning that is not urgent: they also leave the metadata reserve,
    /// so that a filesystem full of data still unlinks and renames.
    Data,
}

/// What an operation may add to the next commit, at most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Pages written as they are: file data, moved data.
    pub pages: u64,
    /// Nodes it may dirty or create (each is one page, and one node
    /// address table entry).
    pub nodes: u64,
}

impl Demand {
    /// Nodes a namespace or attribute operation dirties at most, when a
    /// directory index can be `levels` levels deep: the worst is a rename
    /// over an existing name whose inode is still open, which removes an
    /// entry (the path to its leaf), inserts one (the path, a new node per
    /// level from splits, a new root), and parks the replaced inode in the
    /// graveyard (another insert); plus the inode packs of the two inodes,
    /// both parents and a new pack, an attribute node, and a truncation's
    /// boundary path in a file map (four nodes).
    pub fn metadata_op(levels: u64) -> Demand {
        let remove = levels;
        let insert = 2 * levels + 1;
        Demand {
            pages: 0,
            nodes: remove + 2 * insert + 5 + 1 + 4,
        }
    }

    /// A data write of pages `first..=last` of one file (`fresh` of them
    /// newly dirty): each direct map node the range reaches, with up to
    /// three indirect nodes above it, plus the inode's pack.
    pub fn write(first: u64, last: u64, fresh: u64) -> Demand {
        let per = crate::index_node::PTRS_PER_DIRECT as u64;
        let direct = (last - first) / per + 2;
        Demand {
            pages: fresh,
            nodes: 4 * direct + 1,
        }
    }
}

/// Pages of a copy-on-write table tree of pages shaped `shape` holding
/// entries `0..entries` with at least `depth` levels above its leaves:
/// every page the tree can have, so at most what one commit writes of it.
pub fn table_pages(shape: Shape, entries: u64, depth: u8) -> u64 {
    let fanout = shape.fanout();
    let mut depth = depth;
    while fanout.saturating_pow(u32::from(depth) + 1) < entries {
        depth += 1;
    }
    let mut pages = 0;
    let mut reach = fanout;
    for _ in 0..depth {
        pages += entries.div_ceil(reach).max(1);
        reach = reach.saturating_mul(fanout);
    }
    pages + 1
}

/// Pages the log uses to write `payload` pages: one summary page per
/// record of at most [`MAX_SEALED_ENTRIES`] payload pages (the fewer a
/// summary holds, sealed or not, so that the bound holds for both), one
/// more because the previous record may have been closed early (a
/// writeback between two commits), and the checkpoint's own page is in
/// `payload`.
pub fn log_pages(payload: u64) -> u64 {
    payload + payload.div_ceil(MAX_SEALED_ENTRIES as u64) + 1
}

/// Segments the head must take from the free ones to write `payload`
/// pages, when `remaining` pages are left in its current segment, with
/// units of at most `unit` pages. A record and a unit never span two
/// segments, so each segment boundary may cost a summary page more and
/// leave up to `unit` pages unused at the end of the segment it left (the
/// room a unit did not fit in): each new segment is counted as
/// `pps - 1 - unit` pages. (The head already holds the segment after its
/// current one; each move on takes one free segment to hold next, so the
/// count of free segments taken equals the moves.)
pub fn segments_for(payload: u64, remaining: u64, pps: u32, unit: u64) -> u64 {
    let pages = log_pages(payload);
    let per = u64::from(pps).saturating_sub(1 + unit).max(1);
    pages.saturating_sub(remaining).div_ceil(per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pages_count_every_level() {
        assert_eq!(table_pages(Shape::PLAIN, 0, 0), 1);
        assert_eq!(table_pages(Shape::PLAIN, 255, 0), 1);
        // 256 entries need two leaves and a root.
        assert_eq!(table_pages(Shape::PLAIN, 256, 0), 3);
        // A deeper tree than needed still has its upper pages.
        assert_eq!(table_pages(Shape::PLAIN, 10, 2), 3);
        assert_eq!(table_pages(Shape::PLAIN, 255 * 255 + 1, 0), 256 + 2 + 1);
    }

    #[test]
    fn segments_for_counts_summaries_and_boundaries() {
        // Fits in what is left of the current segment.
        assert_eq!(segments_for(100, 200, 512, 1), 0);
        // 100 payload pages take two summaries (a sealed one holds 99
        // entries), and one page is kept for an early-closed record: 103
        // pages.
        assert_eq!(segments_for(100, 103, 512, 1), 0);
        assert_eq!(segments_for(100, 102, 512, 1), 1);
        // Nothing left: 1000 payload pages are 1000 + 11 + 1 = 1012 pages,
        // two segments of 510 usable pages.
        assert_eq!(segments_for(1000, 0, 512, 1), 2);
        assert_eq!(segments_for(0, 0, 16, 1), 1);
        // 40 payload pages are 42 pages: three 16-page segments of 14
        // usable pages; with units of up to 3 pages, which may leave 3
        // pages unused at each segment's end, four of 12.
        assert_eq!(segments_for(40, 0, 16, 1), 3);
        assert_eq!(segments_for(40, 0, 16, 3), 4);
    }

    #[test]
    fn directory_depth_follows_the_area() {
        // A leaf alone, or a root over leaves (one split away), is always
        // possible: two levels of nodes.
        assert_eq!(dir_levels(10, 8), 2);
        assert_eq!(dir_levels(256, 8), 3);
        assert_eq!(dir_levels(1 << 30, 8), 9);
    }

    #[test]
    fn demands_add_up() {
        let w = Demand::write(0, 0, 1);
        assert_eq!(w, Demand { pages: 1, nodes: 9 });
        let big = Demand::write(0, 253 * 10, 2531);
        assert_eq!(big.nodes, 4 * 11 + 1);
        assert_eq!(big.pages, 2531);
    }
}
