//! Defragmentation of a file: its units are moved, in page order, to the
//! cleaner's log head, as the cleaner moves what it keeps
//! (`Store::relocate`). A unit keeps its vpn, so every root that shares it
//! (a snapshot, a branch) follows it to its new place, and nothing is
//! copied: defragmenting a file a snapshot shares uses no more space,
//! where rewriting it (btrfs's defragment) would double it.

use super::Filesystem;
use crate::block_ptr::BlockPtr;
use crate::error::{Error, Result};
use crate::file_map;
use crate::fsck::frag;
use crate::ids::Ino;
use crate::layout::PAGE_SIZE;

const PS: u64 = PAGE_SIZE as u64;

/// Pages one step of a defragmentation moves (8 MiB): a caller that holds
/// a lock for each step (the daemon) lets other requests in between.
pub const DEFRAG_STEP: u64 = 2048;

/// How a file lies on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Pages it takes on the device.
    pub pages: u64,
    /// Runs of consecutive addresses (see `fsck/frag.rs`).
    pub extents: u64,
    /// The extents it would take laid out as well as the log can.
    pub ideal: u64,
}

impl Layout {
    /// Extents past the ideal, as a share of all.
    pub fn factor(&self) -> f64 {
        frag::factor(self.extents, self.ideal)
    }
}

/// What a defragmentation of one file did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Defragged {
    /// The layout before.
    pub before: Layout,
    /// The layout after; none when the file was left as it was (within
    /// the threshold, or a dry run).
    pub after: Option<Layout>,
}

impl Filesystem {
    /// The stored units of regular file `ino` in page order from page
    /// `from`, each once (a compressed cluster at its first page), holes
    /// skipped, until they hold `max` pages or the file ends.
    fn units_of(&mut self, ino: Ino, from: u64, max: u64) -> Result<Vec<(u64, BlockPtr)>> {
        use super::Whence;
        let size = self.inode(ino)?.size;
        let dev = self.dev();
        let mut units: Vec<(u64, BlockPtr)> = Vec::new();
        let mut pages = 0u64;
        let mut off = from * PS;
        while off < size && pages < max {
            let data = match self.seek(ino, off, Whence::Data) {
                Ok(d) => d,
                Err(Error::NoSuchAddress) => break,
                Err(e) => return Err(e),
            };
            let hole = self.seek(ino, data, Whence::Hole)?.max(data + 1);
            for idx in data / PS..hole.div_ceil(PS) {
                if pages >= max {
                    break;
                }
                let p = file_map::get(&mut self.store.root.cache, &*dev, ino, idx)?;
                let seen = units
                    .last()
                    .is_some_and(|(_, q)| q.is_packed() && q.vpn == p.vpn);
                if p.is_stored() && !seen {
                    units.push((idx, p));
                    pages += u64::from(p.count.max(1));
                }
            }
            off = hole;
        }
        Ok(units)
    }

    /// How regular file `ino` lies on the device (its written pages: dirty
    /// ones are not placed yet).
    pub fn layout(&mut self, ino: Ino) -> Result<Layout> {
        if !self.inode(ino)?.is_reg() {
            return Err(Error::Invalid);
        }
        let dev = self.dev();
        let mut extents = Vec::new();
        let mut pages = 0;
        for (_, p) in self.units_of(ino, 0, u64::MAX)? {
            if let Some(e) = self.store.pat.lookup(&*dev, p.vpn)? {
                frag::extend(&mut extents, e.addr, u64::from(e.pages));
                pages += u64::from(e.pages);
            }
        }
        let n = extents.len() as u64;
        Ok(Layout {
            pages,
            extents: n,
            ideal: frag::ideal(pages, n, &self.store.sb.geometry),
        })
    }

    /// Lays regular file `ino` out again, contiguously, if it is in more
    /// extents than its ideal and extents past the ideal are at least
    /// `threshold` of them (0: any fragmented file); `dry_run` only says
    /// so. Its dirty pages are written first (a commit).
    pub fn defrag(&mut self, ino: Ino, threshold: f64, dry_run: bool) -> Result<Defragged> {
        let (before, wanted) = self.defrag_begin(ino, threshold, dry_run)?;
        if !wanted || dry_run {
            return Ok(Defragged {
                before,
                after: None,
            });
        }
        let mut next = Some(0);
        while let Some(from) = next {
            next = self.defrag_step(ino, from)?;
        }
        let after = self.defrag_finish(ino)?;
        Ok(Defragged {
            before,
            after: Some(after),
        })
    }

    /// The first part of [`Filesystem::defrag`]: returns the file's
    /// layout and whether it is to be moved (with `dry_run`: would be);
    /// [`Filesystem::defrag_step`] from page 0 then moves it. A file to
    /// move has its dirty pages written first (a commit); one left is not
    /// committed for.
    pub fn defrag_begin(
        &mut self,
        ino: Ino,
        threshold: f64,
        dry_run: bool,
    ) -> Result<(Layout, bool)> {
        let wanted = |l: &Layout| l.extents > l.ideal && l.factor() >= threshold;
        let before = self.layout(ino)?;
        if !wanted(&before) || dry_run {
            return Ok((before, wanted(&before)));
        }
        self.writable()?;
        self.sync()?;
        let before = self.layout(ino)?;
        Ok((before, wanted(&before)))
    }

    /// The last part of a defragmentation: the file's map nodes are
    /// written again too (a commit writes a file's dirty nodes together),
    /// and the commit writes them with the page address table's pages the
    /// moves changed: a sequential read of the file then finds its map and
    /// its units' addresses together, as for a file written in one go,
    /// not scattered over the commits that overwrote it. Returns the
    /// layout after.
    pub fn defrag_finish(&mut self, ino: Ino) -> Result<Layout> {
        let dev = self.dev();
        let mut nodes = Vec::new();
        let mut stack: Vec<crate::ids::Nid> = self
            .inode(ino)?
            .map_nids
            .iter()
            .copied()
            .filter(|n| !n.is_none())
            .collect();
        while let Some(nid) = stack.pop() {
            nodes.push(nid);
            if let crate::node::NodeBody::Indirect(ind) =
                &self.store.root.cache.get(&*dev, nid)?.body
            {
                stack.extend(ind.nids.iter().copied().filter(|c| !c.is_none()));
            }
        }
        // Only with room for them in the commit (they are an optimisation).
        let need = crate::room::Demand {
            pages: 0,
            nodes: nodes.len() as u64,
        };
        if self.store.fits(need, crate::room::Tier::Data) {
            for nid in nodes {
                self.store.root.cache.get_mut(&*dev, nid)?;
            }
        }
        // The page address table's pages that place its units too, even
        // those a periodic commit wrote between the steps.
        for (_, p) in self.units_of(ino, 0, u64::MAX)? {
            if let Some(e) = self.store.pat.lookup(&*dev, p.vpn)? {
                self.store.pat.set(&*dev, p.vpn, e)?;
            }
        }
        self.store.root.changed = true;
        self.sync()?;
        self.layout(ino)
    }

    /// Moves the units of `ino` from page `from` on, [`DEFRAG_STEP`] pages
    /// of them, to the cleaner's log head; returns the page to go on from,
    /// or none at the file's end. The caller commits after the last step
    /// (`sync`); a periodic commit may come between steps. Fails with `NoSpace`,
    /// changing nothing, when the free space cannot take them (their old
    /// pages are freed only after).
    pub fn defrag_step(&mut self, ino: Ino, from: u64) -> Result<Option<u64>> {
        self.writable()?;
        let units = self.units_of(ino, from, DEFRAG_STEP)?;
        let Some(&(last, p)) = units.last() else {
            return Ok(None);
        };
        // A compressed or sealed unit is undone and its pages checked
        // before it moves (a raw page is checked by the move itself):
        // damage is never carried to a place where it looks whole.
        for &(idx, q) in &units {
            if q.is_packed() || self.store.sealer.is_some() {
                self.read_stored(ino, idx, q)?;
            }
        }
        self.store.relocate(ino, &units)?;
        Ok(Some(p.unit_base(last) + u64::from(p.count.max(1))))
    }
}
