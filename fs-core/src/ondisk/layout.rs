//! Sizes and geometry shared by every on-disk structure.
//!
//! All integers on disk are little-endian. Every structure is one 4 KiB page
//! (or a fixed-size record inside one); see `docs/FORMAT.md`.

use crate::ids::{PageAddr, SegmentNo};

/// The unit of everything.
pub const PAGE_SIZE: usize = 4096;
/// A page of bytes.
pub type Page = [u8; PAGE_SIZE];

/// A zeroed page on the heap.
pub fn zero_page() -> Box<Page> {
    Box::new([0u8; PAGE_SIZE])
}

/// Format version written by this build. Version 3 names every unit a
/// root reaches by a virtual page number, resolved through the page
/// address table (so that retained checkpoints survive cleaning); version
/// 2 (physical addresses in block pointers and the node address table)
/// and version 1 (one inode per page) are refused by name.
pub const FORMAT_VERSION: u32 = 3;

/// Longest file name, in bytes (as Linux's NAME_MAX).
pub const NAME_MAX: usize = 255;

/// Longest symbolic link target, in bytes (PATH_MAX - 1).
pub const SYMLINK_MAX: usize = 4095;

/// Where the filesystem's segments lie on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Pages in one segment.
    pub pages_per_segment: u32,
    /// Number of segments.
    pub segment_count: u64,
    /// Page address of the first page of segment 0.
    pub first_segment_page: u64,
}

impl Geometry {
    /// First page of `seg`.
    pub fn segment_start(&self, seg: SegmentNo) -> PageAddr {
        PageAddr(self.first_segment_page + seg.0 * u64::from(self.pages_per_segment))
    }

    /// The segment holding `addr`, if `addr` lies in the segment area.
    pub fn segment_of(&self, addr: PageAddr) -> Option<SegmentNo> {
        let rel = addr.0.checked_sub(self.first_segment_page)?;
        let seg = rel / u64::from(self.pages_per_segment);
        (seg < self.segment_count).then_some(SegmentNo(seg))
    }

    /// Offset of `addr` inside its segment.
    pub fn offset_in_segment(&self, addr: PageAddr) -> u64 {
        (addr.0 - self.first_segment_page) % u64::from(self.pages_per_segment)
    }

    /// Total pages in the segment area.
    pub fn segment_area_pages(&self) -> u64 {
        self.segment_count * u64::from(self.pages_per_segment)
    }

    /// True when `addr` lies inside the segment area.
    pub fn contains(&self, addr: PageAddr) -> bool {
        self.segment_of(addr).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_arithmetic() {
        let g = Geometry {
            pages_per_segment: 512,
            segment_count: 10,
            first_segment_page: 256,
        };
        assert_eq!(g.segment_start(SegmentNo(2)), PageAddr(256 + 1024));
        assert_eq!(g.segment_of(PageAddr(255)), None);
        assert_eq!(g.segment_of(PageAddr(256 + 511)), Some(SegmentNo(0)));
        assert_eq!(g.segment_of(PageAddr(256 + 512)), Some(SegmentNo(1)));
        assert_eq!(g.segment_of(PageAddr(256 + 5120)), None);
        assert_eq!(g.offset_in_segment(PageAddr(256 + 515)), 3);
    }
}
