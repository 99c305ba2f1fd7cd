//! Writing dirty file data to the log: every dirty page gets its address
//! here, in inode then page order (delayed allocation). Data of a file
//! with a chain goes in compressed clusters: each run of consecutive
//! dirty pages inside one aligned cluster is put through the chain, on
//! every core at once, and stored as one unit when that saves a page;
//! every other page is stored raw, a unit of its own.

use std::collections::HashMap;
use std::sync::Arc;

use super::store::{DataScope, Store};
use crate::block_ptr::BlockPtr;
use crate::device::BlockDevice;
use crate::error::Result;
use crate::file_map;
use crate::ids::{CheckpointNo, Ino, TransformId};
use crate::layout::{Page, PAGE_SIZE};
use crate::page_life::life;
use crate::quota_file::QUOTA_INO;
use crate::segment_summary::{unit_pages, PageKind};
use crate::transform::Chain;
use crate::usage::QuotaId;

/// One file's dirty pages, in page order, cut into the runs written as
/// one unit each if compressed.
struct FileData {
    ino: Ino,
    chain_id: TransformId,
    chain: Arc<Chain>,
    pages: Vec<(u64, Box<Page>)>,
    /// (first, count) of each run, in `pages`.
    runs: Vec<(usize, usize)>,
}

/// Compressing less than this inline beats handing it to other threads.
const PARALLEL_BYTES: usize = 256 << 10;

impl Store {
    /// Writes the dirty file pages of `scope` to the log, in inode then
    /// page order, and points the file maps at them.
    pub(crate) fn write_data(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
        scope: DataScope,
    ) -> Result<()> {
        let mut batches = match scope {
            DataScope::All => self.root.dirty.take_all(),
            DataScope::None => Vec::new(),
            DataScope::Inode(ino) => vec![(ino, self.root.dirty.take(ino))],
            DataScope::First(pages) => {
                let cluster = self.chains.cluster_pages();
                self.root.dirty.take_first(pages, cluster)
            }
        };
        let mut pinned: Vec<_> = self.root.data_is_metadata.drain().collect();
        pinned.sort_unstable();
        batches.extend(
            pinned
                .into_iter()
                .map(|ino| (ino, self.root.dirty.take(ino))),
        );
        let mut files = Vec::with_capacity(batches.len());
        for (ino, pages) in batches {
            // (A pinned inode may have no pages, or be gone.)
            if !pages.is_empty() {
                files.push(self.file_data(dev, ino, pages.into_iter().collect())?);
            }
        }
        let mut packed = compress_runs(&files).into_iter();
        for f in &files {
            let results: Vec<_> = packed.by_ref().take(f.runs.len()).collect();
            self.write_file_data(dev, building, f, results)?;
        }
        Ok(())
    }

    /// Folds the usage ledger into the root's quota file and writes the
    /// file's changed pages: after the data (whose writeback changes
    /// usage) and before the nodes, so that usage and the inodes it sums
    /// are in one checkpoint. The pages are written whatever the data
    /// scope: they are metadata.
    pub(crate) fn fold_quota(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
    ) -> Result<()> {
        if self.root.quota.is_none() {
            return Ok(());
        }
        let now = self.now_secs();
        let fresh = self.fresh_by_id(dev)?;
        let deltas = self.root.cache.usage.take();
        let q = self.root.quota.as_mut().expect("checked above");
        q.apply(&deltas, &fresh, now);
        let pages = q.take_dirty();
        if pages.is_empty() {
            return Ok(());
        }
        let size = q.file_size();
        let inode = self.root.cache.inode_mut(dev, QUOTA_INO)?;
        let known = inode.size.div_ceil(PAGE_SIZE as u64);
        inode.size = size;
        for (idx, page) in pages {
            self.root.dirty.insert(QUOTA_INO, idx, page, idx >= known);
        }
        self.write_data(dev, building, DataScope::Inode(QUOTA_INO))
    }

    /// Fresh dirty pages (not yet in any inode's `blocks`) by the ids of
    /// their inodes; empty, at no cost, when there are none.
    pub(crate) fn fresh_by_id(&mut self, dev: &dyn BlockDevice) -> Result<HashMap<QuotaId, i64>> {
        let files: Vec<(Ino, u64)> = self.root.dirty.fresh_files().collect();
        let mut out: HashMap<QuotaId, i64> = HashMap::new();
        for (ino, n) in files {
            for id in QuotaId::of(self.root.cache.inode(dev, ino)?) {
                *out.entry(id).or_default() += n as i64;
            }
        }
        Ok(out)
    }

    /// `pages` of `ino`, cut into runs by its chain.
    fn file_data(
        &mut self,
        dev: &dyn BlockDevice,
        ino: Ino,
        pages: Vec<(u64, Box<Page>)>,
    ) -> Result<FileData> {
        let chain_id = self.root.cache.inode(dev, ino)?.transform;
        let chain = self.chains.get(chain_id)?.clone();
        let cluster = self.chains.cluster_pages();
        let mut runs = Vec::new();
        let mut i = 0;
        while i < pages.len() {
            let run = match chain.is_raw() {
                true => 1,
                false => cluster_run(&pages[i..], cluster),
            };
            runs.push((i, run));
            i += run;
        }
        Ok(FileData {
            ino,
            chain_id,
            chain,
            pages,
            runs,
        })
    }

    /// Writes the runs of `f`: as the compressed unit `packed` holds for
    /// it, or page by page, raw.
    fn write_file_data(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
        f: &FileData,
        packed: Vec<Option<Vec<u8>>>,
    ) -> Result<()> {
        let mut removed = Vec::new();
        for (&(first, count), stored) in f.runs.iter().zip(packed) {
            let run = &f.pages[first..first + count];
            match stored {
                Some(stored) => self.write_packed(dev, building, f, run, &stored, &mut removed)?,
                None => self.write_raw(dev, building, f.ino, run, &mut removed)?,
            }
        }
        let gone = self.unpointed(f.ino, &removed)?;
        self.root.cache.add_blocks(dev, f.ino, -(gone as i64))?;
        Ok(())
    }

    /// Writes `run` page by page, each a raw unit.
    fn write_raw(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
        ino: Ino,
        run: &[(u64, Box<Page>)],
        removed: &mut Vec<(u64, BlockPtr)>,
    ) -> Result<()> {
        for (idx, page) in run {
            let mut life = life!(self, dev, building);
            let (vpn, crc) =
                life.write_unit(&mut self.log, (PageKind::Data, ino.0, *idx), &page[..])?;
            let new = BlockPtr::stored(vpn, crc);
            let old = file_map::set(&mut self.root.cache, dev, &mut life, ino, *idx, new)?;
            removed.push((*idx, old));
            self.root.cache.add_blocks(dev, ino, 1)?;
            self.stats.data_pages_written += 1;
        }
        Ok(())
    }

    /// Writes `run` (consecutive pages of one cluster of `f`) as the one
    /// unit `stored`, which its chain made of them.
    fn write_packed(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
        f: &FileData,
        run: &[(u64, Box<Page>)],
        stored: &[u8],
        removed: &mut Vec<(u64, BlockPtr)>,
    ) -> Result<()> {
        let (ino, base) = (f.ino, run[0].0);
        let mut life = life!(self, dev, building);
        let (vpn, _) = life.write_chained(
            &mut self.log,
            (PageKind::Data, ino.0, base),
            stored,
            f.chain_id,
        )?;
        let count = run.len() as u8;
        for (slot, (idx, page)) in run.iter().enumerate() {
            let new = BlockPtr::packed(vpn, crate::codec::crc32(&page[..]), slot as u8, count);
            let old = file_map::set(&mut self.root.cache, dev, &mut life, ino, *idx, new)?;
            removed.push((*idx, old));
        }
        let pages = unit_pages(stored.len());
        self.root.cache.add_blocks(dev, ino, pages as i64)?;
        self.stats.data_pages_written += pages;
        if self.reshaped.last() != Some(&ino) {
            // (Bounded: without a reader, only a stale attribute is lost.)
            if self.reshaped.len() >= 1 << 16 {
                self.reshaped.clear();
            }
            self.reshaped.push(ino);
        }
        Ok(())
    }
}

/// What each run of `files` is stored as (in file then run order): the
/// bytes its chain makes of it when that saves a page, `None` when it is
/// stored raw. Runs are compressed on every core when there is enough.
fn compress_runs(files: &[FileData]) -> Vec<Option<Vec<u8>>> {
    let jobs: Vec<(&FileData, usize, usize)> = files
        .iter()
        .flat_map(|f| f.runs.iter().map(move |&(first, count)| (f, first, count)))
        .collect();
    let work = |&(f, first, count): &(&FileData, usize, usize)| {
        compress_run(&f.chain, &f.pages[first..first + count])
    };
    let bytes: usize = jobs
        .iter()
        .filter(|(_, _, count)| *count > 1)
        .map(|(_, _, count)| count * PAGE_SIZE)
        .sum();
    match bytes >= PARALLEL_BYTES {
        true => crate::parallel::map_cpu(&jobs, work),
        false => jobs.iter().map(work).collect(),
    }
}

/// What `chain` makes of `run`, if it takes fewer pages than the run. A
/// chain that fails (a module's) leaves the run raw: nothing is lost.
fn compress_run(chain: &Chain, run: &[(u64, Box<Page>)]) -> Option<Vec<u8>> {
    if chain.is_raw() || run.len() < 2 || crate::transform::looks_incompressible(&run[0].1[..]) {
        return None;
    }
    let mut logical = Vec::with_capacity(run.len() * PAGE_SIZE);
    for (_, page) in run {
        logical.extend_from_slice(&page[..]);
    }
    match chain.apply(&logical) {
        Ok(stored) => (unit_pages(stored.len()) < run.len() as u64).then_some(stored),
        Err(e) => {
            log::warn!("chain {} failed, stored raw: {e}", chain.spec());
            None
        }
    }
}

/// How many of `pages` (in page order) from the first are consecutive and
/// in the first one's cluster of `cluster` pages.
fn cluster_run(pages: &[(u64, Box<Page>)], cluster: u64) -> usize {
    let first = pages[0].0;
    let end = (first / cluster + 1) * cluster;
    pages
        .iter()
        .enumerate()
        .take_while(|(n, (idx, _))| *idx == first + *n as u64 && *idx < end)
        .count()
}
