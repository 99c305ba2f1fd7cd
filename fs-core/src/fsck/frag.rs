//! The fragmentation report: how the pages of files and the free space lie
//! on the device, read from a checkpoint by the checker's scan (the tables
//! and every node in large reads, no file data), so that it costs what a
//! full check's first phases cost.
//!
//! An extent is a run of a file's stored pages in logical order at
//! consecutive addresses; a gap of one page (a record's summary, which a
//! sequential read reads through) does not break it. A file's ideal is one
//! extent per segment it needs: the log writes a file contiguously within a
//! segment, and the segments it moves to need not be neighbours.

use std::collections::HashMap;
use std::sync::Arc;

use super::scan::{self, Held};
use super::space::PageSink;
use super::tree::{self, Use};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, Ino, PageAddr, SegmentNo};
use crate::layout::{Geometry, PAGE_SIZE};
use crate::recovery;

/// Extents past the ideal, as a share of all (xfs_db's fragmentation
/// factor).
pub fn factor(extents: u64, ideal: u64) -> f64 {
    if extents == 0 {
        return 0.0;
    }
    extents.saturating_sub(ideal) as f64 / extents as f64
}

/// Pages per MiB.
const PAGES_PER_MIB: f64 = (1 << 20) as f64 / PAGE_SIZE as f64;

/// One file's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct FileLayout {
    /// The inode.
    pub ino: Ino,
    /// Its path from the root (filled in for the files reported by name).
    pub path: Option<String>,
    /// Logical pages stored (holes aside).
    pub logical_pages: u64,
    /// Pages on the device (fewer when compressed).
    pub stored_pages: u64,
    /// Extents: runs of consecutive addresses, (first page, pages).
    pub extents: Vec<(PageAddr, u64)>,
    /// The extents it would have laid out as well as the log can.
    pub ideal: u64,
}

impl FileLayout {
    /// Extents past the ideal, as a share of all (xfs_db's fragmentation
    /// factor for one file).
    pub fn factor(&self) -> f64 {
        factor(self.extents.len() as u64, self.ideal)
    }

    /// Is it in more extents than its ideal?
    pub fn fragmented(&self) -> bool {
        self.extents.len() as u64 > self.ideal
    }

    /// Seeks a sequential read of it makes per MiB read (one per extent
    /// after the first).
    pub fn seeks_per_mib(&self) -> f64 {
        seeks_per_mib(
            self.extents.len().saturating_sub(1) as u64,
            self.logical_pages,
        )
    }
}

fn seeks_per_mib(seeks: u64, pages: u64) -> f64 {
    if pages == 0 {
        return 0.0;
    }
    seeks as f64 / (pages as f64 / PAGES_PER_MIB)
}

/// The whole filesystem's files, summed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileTotals {
    /// Regular files with stored pages.
    pub files: u64,
    /// Of them, in more extents than their ideal.
    pub fragmented: u64,
    /// Logical pages stored, in all and in fragmented files.
    pub pages: u64,
    /// Logical pages of the fragmented files.
    pub fragmented_pages: u64,
    /// Pages on the device (compressed clusters count what they take).
    pub stored_pages: u64,
    /// Extents, and ideal extents.
    pub extents: u64,
    /// The ideal number.
    pub ideal: u64,
    /// Files with compressed clusters, their logical and stored pages.
    pub compressed_files: u64,
    /// Logical pages of compressed files.
    pub compressed_logical: u64,
    /// Stored pages of compressed files.
    pub compressed_stored: u64,
}

impl FileTotals {
    /// xfs_db's fragmentation factor: extents past the ideal, as a share.
    pub fn factor(&self) -> f64 {
        factor(self.extents, self.ideal)
    }

    /// Seeks per MiB a sequential read of every file makes.
    pub fn seeks_per_mib(&self) -> f64 {
        seeks_per_mib(self.extents.saturating_sub(self.files), self.pages)
    }
}

/// One segment, as the usage table has it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Live pages.
    pub live: u32,
    /// Newest write, seconds since the epoch (0: never written).
    pub mtime: i64,
}

/// Free space: whole free segments in runs, and pages free inside partly
/// used segments (which only the cleaner gives back).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeSpace {
    /// Free segments.
    pub free_segments: u64,
    /// Runs of consecutive free segments, by length: (length, runs).
    pub runs: Vec<(u64, u64)>,
    /// The longest run.
    pub largest_run: u64,
    /// Segments partly used.
    pub partly_used: u64,
    /// Free pages inside them.
    pub free_in_partly: u64,
}

/// The report.
#[derive(Clone, Debug)]
pub struct Report {
    /// The checkpoint read.
    pub checkpoint: CheckpointNo,
    /// The geometry.
    pub geometry: Geometry,
    /// Every file summed.
    pub totals: FileTotals,
    /// The worst files, most extents past their ideal first, with paths.
    pub worst: Vec<FileLayout>,
    /// Every segment, by number.
    pub segments: Vec<SegmentLayout>,
    /// Free space.
    pub free: FreeSpace,
}

impl Report {
    /// Segments by utilisation: bucket 0 free, 1..=10 each a tenth of a
    /// segment ((0,10%], (10%,20%], ...), 11 full.
    pub fn histogram(&self) -> [u64; 12] {
        let mut h = [0u64; 12];
        let pps = f64::from(self.geometry.pages_per_segment);
        for s in &self.segments {
            let b = match s.live {
                0 => 0,
                l if l >= self.geometry.pages_per_segment => 11,
                l => ((f64::from(l) / pps * 10.0).ceil() as usize).clamp(1, 10),
            };
            h[b] += 1;
        }
        h
    }
}

/// Analyses the newest checkpoint on `dev` (a mounted filesystem's too:
/// see the module), reporting the `worst` files by name.
pub fn analyse(
    dev: Arc<dyn BlockDevice>,
    key: Option<&crate::seal::MasterKey>,
    worst: usize,
) -> Result<Report> {
    let dev: &dyn BlockDevice = &*dev;
    let rec = recovery::recover(dev, false, key)?;
    let geo = rec.sb.geometry;
    let mut findings = Vec::new();
    let mut scan = scan::tables(dev, &rec.checkpoint, rec.sealer.as_ref(), &mut findings);
    scan::nodes(dev, &geo, &mut scan, &mut findings, &mut |_| {});
    if let Some(f) = findings
        .iter()
        .find(|f| f.severity >= super::Severity::Error)
    {
        return Err(Error::corrupt(
            "filesystem",
            f.addr.unwrap_or(PageAddr::NONE),
            format!("{f} (run pagelog-fsck)"),
        ));
    }
    let mut sink = Units::default();
    tree::pages(&scan, rec.sb.hash_seed, &mut sink);
    // pagelog's own file is not the user's.
    if rec.sb.ro_compat & crate::superblock::features::RO_COMPAT_QUOTA != 0 {
        sink.by_file.remove(&crate::quota_file::QUOTA_INO);
    }
    let mut files: Vec<FileLayout> = sink
        .by_file
        .into_iter()
        .map(|(ino, units)| layout(ino, units, &geo))
        .collect();
    let totals = sum(&files);
    files.sort_by(|a, b| {
        let past = |f: &FileLayout| f.extents.len() as u64 - f.ideal.min(f.extents.len() as u64);
        past(b)
            .cmp(&past(a))
            .then(b.logical_pages.cmp(&a.logical_pages))
            .then(a.ino.cmp(&b.ino))
    });
    files.retain(FileLayout::fragmented);
    files.truncate(worst);
    name(&scan, &mut files);
    let segments: Vec<SegmentLayout> = (0..geo.segment_count)
        .map(|s| {
            let u = scan.usage.get(&SegmentNo(s)).copied().unwrap_or_default();
            SegmentLayout {
                live: u.live,
                mtime: u.mtime,
            }
        })
        .collect();
    let free = free_space(&segments, geo.pages_per_segment);
    Ok(Report {
        checkpoint: rec.checkpoint.no,
        geometry: geo,
        totals,
        worst: files,
        segments,
        free,
    })
}

/// Collects each file's stored units: (first logical page, address,
/// pages on the device, logical pages).
#[derive(Default)]
struct Units {
    by_file: HashMap<Ino, Vec<(u64, PageAddr, u64, u64)>>,
}

impl PageSink for Units {
    fn page(&mut self, addr: PageAddr, used: Use) {
        self.unit(addr, 1, used);
    }

    fn unit(&mut self, addr: PageAddr, pages: u64, used: Use) {
        let (ino, idx, logical) = match used {
            Use::Data(ino, idx, _) => (ino, idx, 1),
            Use::Packed(ino, base, count) => (ino, base, u64::from(count)),
            _ => return,
        };
        self.by_file
            .entry(ino)
            .or_default()
            .push((idx, addr, pages, logical));
    }
}

/// The layout of `ino` from its units.
fn layout(ino: Ino, mut units: Vec<(u64, PageAddr, u64, u64)>, geo: &Geometry) -> FileLayout {
    units.sort_unstable_by_key(|u| u.0);
    let mut extents: Vec<(PageAddr, u64)> = Vec::new();
    let (mut stored, mut logical) = (0u64, 0u64);
    for &(_, addr, pages, count) in &units {
        stored += pages;
        logical += count;
        extend(&mut extents, addr, pages);
    }
    FileLayout {
        ino,
        path: None,
        logical_pages: logical,
        stored_pages: stored,
        ideal: ideal(stored, extents.len() as u64, geo),
        extents,
    }
}

/// Adds the unit of `pages` pages at `addr` (the next in a file's page
/// order) to `extents`: it continues the last extent if it starts right
/// after it, or one page later (past a record's summary).
pub fn extend(extents: &mut Vec<(PageAddr, u64)>, addr: PageAddr, pages: u64) {
    match extents.last_mut() {
        Some((start, len)) if addr.0 >= start.0 + *len && addr.0 <= start.0 + *len + 1 => {
            *len = addr.0 + pages - start.0;
        }
        _ => extents.push((addr, pages)),
    }
}

/// The ideal extents of a file of `stored` pages now in `extents`: one per
/// segment it needs, and one more for a file of more than a page (the log
/// head it is written through may be anywhere in its segment, so even a
/// small file may straddle one segment's end), never more than it has.
pub fn ideal(stored: u64, extents: u64, geo: &Geometry) -> u64 {
    let pps = u64::from(geo.pages_per_segment);
    let straddle = u64::from(stored > 1);
    (stored.div_ceil(pps).max(1) + straddle).min(extents.max(1))
}

fn sum(files: &[FileLayout]) -> FileTotals {
    let mut t = FileTotals::default();
    for f in files {
        t.files += 1;
        t.pages += f.logical_pages;
        t.stored_pages += f.stored_pages;
        t.extents += f.extents.len() as u64;
        t.ideal += f.ideal;
        if f.fragmented() {
            t.fragmented += 1;
            t.fragmented_pages += f.logical_pages;
        }
        if f.stored_pages < f.logical_pages {
            t.compressed_files += 1;
            t.compressed_logical += f.logical_pages;
            t.compressed_stored += f.stored_pages;
        }
    }
    t
}

/// Fills in the paths of `files`: one pass over every directory leaf
/// collects the name and directory of each directory and of each file
/// asked for; the paths are then walked up to the root.
fn name(scan: &scan::Scan, files: &mut [FileLayout]) {
    let wanted: std::collections::HashSet<Ino> = files.iter().map(|f| f.ino).collect();
    let mut up: HashMap<Ino, (Ino, Vec<u8>)> = HashMap::new();
    for (_, held) in scan.nodes.iter() {
        let Held::Leaf { ino: dir, leaf, .. } = held else {
            continue;
        };
        for e in leaf.entries() {
            if e.dtype == 4 || wanted.contains(&e.ino) {
                up.entry(e.ino).or_insert((*dir, e.name.to_vec()));
            }
        }
    }
    for f in files {
        let mut parts = Vec::new();
        let mut cur = f.ino;
        while cur != Ino::ROOT && parts.len() < 4096 {
            let Some((dir, name)) = up.get(&cur) else {
                break;
            };
            parts.push(String::from_utf8_lossy(name).into_owned());
            cur = *dir;
        }
        if cur == Ino::ROOT {
            parts.reverse();
            f.path = Some(format!("/{}", parts.join("/")));
        }
    }
}

/// Runs of free segments and pages free in partly used ones.
fn free_space(segments: &[SegmentLayout], pps: u32) -> FreeSpace {
    let mut free = FreeSpace::default();
    let mut runs: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut end_run = |run: &mut u64, free: &mut FreeSpace| {
        if *run > 0 {
            *runs.entry(*run).or_default() += 1;
            free.largest_run = free.largest_run.max(*run);
            *run = 0;
        }
    };
    let mut run = 0u64;
    for s in segments {
        if s.live == 0 {
            run += 1;
            free.free_segments += 1;
            continue;
        }
        end_run(&mut run, &mut free);
        if s.live < pps {
            free.partly_used += 1;
            free.free_in_partly += u64::from(pps - s.live);
        }
    }
    end_run(&mut run, &mut free);
    free.runs = runs.into_iter().collect();
    free
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_page_gap_continues_an_extent_and_a_longer_one_does_not() {
        let mut e = Vec::new();
        extend(&mut e, PageAddr(100), 1);
        extend(&mut e, PageAddr(101), 1);
        extend(&mut e, PageAddr(103), 4); // past a summary page
        assert_eq!(e, vec![(PageAddr(100), 7)]);
        extend(&mut e, PageAddr(109), 1); // two pages further
        extend(&mut e, PageAddr(50), 1); // backwards
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn the_ideal_is_a_segment_an_extent_and_never_more_than_there_are() {
        let geo = Geometry {
            pages_per_segment: 512,
            segment_count: 64,
            first_segment_page: 2,
        };
        assert_eq!(ideal(1, 1, &geo), 1);
        assert_eq!(ideal(2, 2, &geo), 2);
        assert_eq!(ideal(512, 3, &geo), 2);
        assert_eq!(ideal(513, 3, &geo), 3);
        assert_eq!(ideal(5000, 3, &geo), 3);
        assert_eq!(ideal(5000, 40, &geo), 11);
    }

    #[test]
    fn free_space_is_counted_in_runs_and_inside_partly_used_segments() {
        let seg = |live| SegmentLayout { live, mtime: 0 };
        let segs = [
            seg(0),
            seg(0),
            seg(10),
            seg(0),
            seg(16),
            seg(0),
            seg(0),
            seg(0),
        ];
        let f = free_space(&segs, 16);
        assert_eq!(f.free_segments, 6);
        assert_eq!(f.runs, vec![(1, 1), (2, 1), (3, 1)]);
        assert_eq!(f.largest_run, 3);
        assert_eq!((f.partly_used, f.free_in_partly), (1, 6));
    }
}
