//! Metadata tables: arrays of fixed-size entries (the node address table, the
//! segment usage table) stored as a copy-on-write radix tree of pages with
//! physical addresses, rooted in the checkpoint.
//!
//! Tables are written only at checkpoints, all at once, so a changed leaf
//! costs its path to the root once per checkpoint, not once per change.
//!
//! A table's pages are named in their parents (and its root) either by
//! their physical address (current-only tables: segment usage, page
//! addresses) or by a virtual page number resolved through the page
//! address table (a root's node address table, which retained
//! checkpoints share and the cleaner moves without rewriting parents).

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::{crc32, Reader, Writer};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::PageAddr;
use crate::layout::{zero_page, Page, PAGE_SIZE};
use crate::segment_summary::{Entry, PageKind};

/// "PGTB" in ASCII: the magic of a table page.
pub const PAGE_MAGIC: [u8; 4] = *b"PGTB";
/// Header bytes at the start of a table page.
pub const PAGE_HEADER: usize = 16;
/// Bytes of one entry (leaf entries and child pointers alike) in every
/// table but a sealed volume's page address table (48).
pub const ENTRY_SIZE: usize = 16;
/// Entries per page of an unsealed volume.
pub const FANOUT: u64 = Shape::PLAIN.fanout();
/// Deepest tree: 255^6 leaf pages is far beyond any device (and 84^6
/// still is).
pub const MAX_DEPTH: u8 = 6;
/// Bytes of an encoded [`TableRoot`].
pub const ROOT_SIZE: usize = 32;
/// Bytes of the largest entry (a sealed volume's page address table entry).
pub const MAX_ENTRY: usize = 48;
/// Where a sealed table page keeps its seal (after the clear header).
pub const SEAL_AT: usize = PAGE_HEADER;

/// An entry's raw bytes: the table's entry size, then zeros.
pub type RawEntry = [u8; MAX_ENTRY];

/// An all-zero entry.
pub const ZERO_ENTRY: RawEntry = [0; MAX_ENTRY];

/// The shape of a table's pages: where the slots start and how large
/// they are (leaf entries and child pointers take the same slots, a child
/// pointer using the first 16 bytes of its slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Bytes before the first slot.
    pub head: usize,
    /// Bytes of a slot.
    pub entry: usize,
}

impl Shape {
    /// Every table of an unsealed volume: 255 slots of 16 bytes.
    pub const PLAIN: Shape = Shape {
        head: PAGE_HEADER,
        entry: ENTRY_SIZE,
    };
    /// A table of a sealed volume: the 16-byte header, the page's seal
    /// (32 bytes) and 16 reserved, then 252 slots of 16 bytes.
    pub const SEALED: Shape = Shape {
        head: 64,
        entry: ENTRY_SIZE,
    };
    /// The page address table of a sealed volume: 84 slots of 48 bytes.
    pub const SEALED_WIDE: Shape = Shape {
        head: 64,
        entry: MAX_ENTRY,
    };

    /// The shape of a volume's tables, sealed or not; `wide` for the page
    /// address table.
    pub fn of(sealed: bool, wide: bool) -> Shape {
        match (sealed, wide) {
            (false, _) => Shape::PLAIN,
            (true, false) => Shape::SEALED,
            (true, true) => Shape::SEALED_WIDE,
        }
    }

    /// Slots per page.
    pub const fn fanout(self) -> u64 {
        ((PAGE_SIZE - self.head) / self.entry) as u64
    }

    /// Offset of slot `k`.
    pub fn slot(self, k: u64) -> usize {
        self.head + k as usize * self.entry
    }

    /// Entries a tree of `depth` reaches.
    pub fn capacity(self, depth: u8) -> u64 {
        self.fanout().saturating_pow(u32::from(depth) + 1)
    }

    /// The depth a table holding entries `0..entries` has: the smallest
    /// whose leaves reach that far. (A table grows only when an entry past
    /// its reach is set, so a table's depth is exactly this for the
    /// largest entry it ever held.)
    pub fn depth_for(self, entries: u64) -> u8 {
        (0..MAX_DEPTH)
            .find(|&d| self.capacity(d) >= entries)
            .unwrap_or(MAX_DEPTH)
    }

    /// The entries a page at (`level`, `index`) covers.
    pub fn entries_under(self, level: u8, index: u64) -> std::ops::Range<u64> {
        let span = self.capacity(level);
        index.saturating_mul(span)..index.saturating_add(1).saturating_mul(span)
    }

    /// Entry `k` of `page`.
    fn get(self, page: &[u8], k: u64) -> RawEntry {
        let mut e = ZERO_ENTRY;
        let at = self.slot(k);
        if let Some(src) = page.get(at..at + self.entry) {
            e[..self.entry].copy_from_slice(src);
        }
        e
    }
}

/// How a sealed volume seals a page of a current-only table: everything
/// after its header and seal; the header stays in the clear and is bound.
fn page_sealing() -> crate::seal::PageSeal {
    crate::seal::PageSeal {
        domain: crate::seal::Domain::TablePage,
        region: Shape::SEALED.head..PAGE_SIZE,
        at: SEAL_AT,
    }
}

/// Which table a page belongs to (stored in every table page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableId {
    /// Node address table: node id -> page.
    NodeAddress = 1,
    /// Segment usage table: segment -> live pages, age.
    SegmentUsage = 2,
    /// Page address table: virtual page number -> stored unit.
    PageAddress = 3,
    /// Checkpoint list: retained checkpoints, sixteen entries each.
    CheckpointList = 4,
}

impl TableId {
    /// The table with this code, if any.
    pub fn from_code(code: u64) -> Option<TableId> {
        Some(match code {
            1 => TableId::NodeAddress,
            2 => TableId::SegmentUsage,
            3 => TableId::PageAddress,
            4 => TableId::CheckpointList,
            _ => return None,
        })
    }
}

/// Resolves the names a virtual table gives its pages (virtual page
/// numbers) to where those pages are now.
pub trait PageNames: Send + Sync + std::fmt::Debug {
    /// Reads the page named `name` into `page` (opened, on a sealed
    /// volume) and says where it is now.
    fn read_page(&self, dev: &dyn BlockDevice, name: u64, page: &mut Page) -> Result<PageAddr>;
}

/// What [`MetaTable::walk`] calls for each stored page: level, index,
/// name (address or vpn), address, and the page.
pub type VisitPage<'a> = dyn FnMut(u8, u64, u64, PageAddr, &Page) -> Result<()> + 'a;

/// A page to read: level, index, name, checksum.
type Wanted = (u8, u64, u64, u32);
/// A page read: where it was, and its bytes.
type Fetched = (PageAddr, Box<Page>);

/// Where a table's tree starts: kept in the checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableRoot {
    /// Root page; 0 for an empty table. For a table whose pages are named
    /// by virtual page numbers, the root's number (stored in the same 8
    /// bytes).
    pub addr: PageAddr,
    /// CRC-32 of the root page.
    pub crc: u32,
    /// Levels above the leaves (0: the root is a leaf).
    pub depth: u8,
}

impl TableRoot {
    /// Encodes at `off`.
    pub fn encode(&self, w: &mut Writer<'_>, off: usize) {
        w.addr(off, self.addr);
        w.u32(off + 8, self.crc);
        w.u8(off + 12, self.depth);
    }

    /// Decodes at `off`.
    pub fn decode(r: &Reader<'_>, off: usize) -> Result<TableRoot> {
        let root = TableRoot {
            addr: r.addr(off)?,
            crc: r.u32(off + 8)?,
            depth: r.u8(off + 12)?,
        };
        r.check(root.depth <= MAX_DEPTH, || {
            format!("table depth {} over {MAX_DEPTH}", root.depth)
        })?;
        Ok(root)
    }
}

#[derive(Debug)]
struct CachedPage {
    data: Box<Page>,
    /// The name of the page on disk now (0 if never written): its address,
    /// or its virtual page number in a virtual table.
    old: u64,
    dirty: bool,
    /// The old address has been reported dead by [`MetaTable::take_released`].
    released: bool,
}

/// A table of fixed-size entries with a page cache.
#[derive(Debug)]
pub struct MetaTable {
    id: TableId,
    shape: Shape,
    /// On a sealed volume, what seals and opens the pages of a table named
    /// by address (a virtual table's pages are units, sealed as such).
    sealer: Option<Arc<crate::seal::Sealer>>,
    root: TableRoot,
    depth: u8,
    pages: HashMap<(u8, u64), CachedPage>,
    max_clean: usize,
    /// How page names resolve: `None` for physical addresses.
    names: Option<Arc<dyn PageNames>>,
    /// Pages dropped from the tree (all their entries cleared), as
    /// (level, index, name), not yet reported by
    /// [`MetaTable::take_released`]: until then their old copies still
    /// count as stored (the usage table counts them until the commit).
    dropped: Vec<(u8, u64, u64)>,
    /// Entries set since [`MetaTable::take_changes`] last ran, the newest
    /// value of each (what a roll-forward record carries), while
    /// [`MetaTable::record_changes`] has it on; `None` once more than its
    /// bound were set (too many for a roll-forward record: the next sync
    /// is a full commit).
    changes: Option<std::collections::BTreeMap<u64, RawEntry>>,
    /// Record changes at all?
    recording: bool,
}

/// The most changes a table records between full commits; past it, the
/// next sync is a commit (a roll-forward record that large would cost more
/// than the tables' pages).
pub const MAX_RECORDED: usize = 8192;

/// A page as its parent names it: (name, checksum).
type Named = (u64, u32);

/// The entries of the leaf page at `index` that are not all zero, with
/// their numbers (for readers that walk a whole table).
pub fn leaf_entries(
    shape: Shape,
    page: &[u8],
    index: u64,
) -> impl Iterator<Item = (u64, RawEntry)> + '_ {
    let fanout = shape.fanout();
    (0..fanout).filter_map(move |slot| {
        let e = shape.get(page, slot);
        (e != ZERO_ENTRY).then_some((index * fanout + slot, e))
    })
}

impl MetaTable {
    /// A table starting at `root`, caching at most `max_clean` clean
    /// pages; on a sealed volume, its pages sealed and opened by `sealer`.
    pub fn new(
        id: TableId,
        root: TableRoot,
        max_clean: usize,
        sealer: Option<Arc<crate::seal::Sealer>>,
    ) -> MetaTable {
        MetaTable {
            id,
            shape: Shape::of(sealer.is_some(), id == TableId::PageAddress),
            sealer,
            root,
            depth: root.depth,
            pages: HashMap::new(),
            max_clean,
            names: None,
            dropped: Vec::new(),
            changes: Some(std::collections::BTreeMap::new()),
            recording: false,
        }
    }

    /// A table whose pages are named by virtual page numbers, resolved by
    /// `names` (which opens them, on a `sealed` volume: they are units).
    pub fn new_virtual(
        id: TableId,
        root: TableRoot,
        max_clean: usize,
        names: Arc<dyn PageNames>,
        sealed: bool,
    ) -> MetaTable {
        MetaTable {
            names: Some(names),
            shape: Shape::of(sealed, false),
            ..MetaTable::new(id, root, max_clean, None)
        }
    }

    /// The shape of its pages.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    fn fanout(&self) -> u64 {
        self.shape.fanout()
    }

    fn capacity(&self, depth: u8) -> u64 {
        self.shape.capacity(depth)
    }

    /// Which table this is.
    pub fn id(&self) -> TableId {
        self.id
    }

    /// Are this table's pages named by virtual page numbers?
    pub fn is_virtual(&self) -> bool {
        self.names.is_some()
    }

    /// Reads the page named `name` (opened, on a sealed volume), expected
    /// to be (`level`, `index`) with checksum `crc`; says where it was.
    fn fetch(
        &self,
        dev: &dyn BlockDevice,
        (name, crc): Named,
        level: u8,
        index: u64,
    ) -> Result<(PageAddr, Box<Page>)> {
        let mut data = zero_page();
        let addr = match &self.names {
            Some(n) => n.read_page(dev, name, &mut data)?,
            None => {
                let addr = PageAddr(name);
                self.read_physical(dev, addr, level, index, &mut data)?;
                addr
            }
        };
        self.check_page(&data, addr, crc, level, index)?;
        Ok((addr, data))
    }

    /// Reads the page at `addr` of a table named by address, and opens it
    /// on a sealed volume.
    fn read_physical(
        &self,
        dev: &dyn BlockDevice,
        addr: PageAddr,
        level: u8,
        index: u64,
        data: &mut Page,
    ) -> Result<()> {
        if addr.0 < 2 || addr.0 >= dev.len_pages() {
            // A pointer read from disk: damage, not an I/O failure.
            let msg = format!(
                "level {level} index {index} is said to be at page {addr}, outside the device"
            );
            return Err(Error::corrupt(self.what(), addr, msg));
        }
        dev.read(addr, &mut data[..])?;
        self.open_physical(addr, level, index, data)
    }

    /// Opens a page read at `addr` of a table named by address, on a
    /// sealed volume (nothing to do otherwise).
    fn open_physical(&self, addr: PageAddr, level: u8, index: u64, data: &mut Page) -> Result<()> {
        if let Some(s) = &self.sealer {
            let what = || format!("{} (level {level}, index {index})", self.what());
            s.open_page(
                &page_sealing(),
                &self.bound(level, index),
                &mut data[..],
                (&what, addr),
            )?;
        }
        Ok(())
    }

    /// Reads the pages of `batch` (one level's): a table named by address
    /// in runs of consecutive pages, one device read a run, several runs
    /// at once; a table named by vpn page by page, several at once.
    /// Results in the order of `batch`.
    fn fetch_batch(&self, dev: &dyn BlockDevice, batch: &[Wanted]) -> Vec<Result<Fetched>> {
        let one = |&(lv, index, name, crc): &Wanted| self.fetch(dev, (name, crc), lv, index);
        if self.names.is_some() {
            return crate::parallel::map(batch, one);
        }
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&i| batch[i].2);
        let inside = |name: u64| name >= 2 && name < dev.len_pages();
        let mut runs: Vec<&[usize]> = Vec::new();
        let mut rest = &order[..];
        while let Some(&first) = rest.first() {
            let start = batch[first].2;
            let mut n = 1;
            while inside(start)
                && n < rest.len()
                && n < 256
                && batch[rest[n]].2 == start + n as u64
                && inside(start + n as u64)
            {
                n += 1;
            }
            let (run, after) = rest.split_at(n);
            runs.push(run);
            rest = after;
        }
        let read = crate::parallel::map(&runs, |run| -> Vec<(usize, Result<Fetched>)> {
            let singly = || run.iter().map(|&i| (i, one(&batch[i]))).collect();
            if run.len() == 1 {
                return singly();
            }
            let mut buf = vec![0u8; run.len() * PAGE_SIZE];
            if dev.read(PageAddr(batch[run[0]].2), &mut buf).is_err() {
                // Page by page, so that each failure names its page.
                return singly();
            }
            let pages = run.iter().zip(buf.chunks_exact(PAGE_SIZE));
            pages
                .map(|(&i, bytes)| {
                    let (lv, index, name, crc) = batch[i];
                    let (addr, mut data) = (PageAddr(name), zero_page());
                    data.copy_from_slice(bytes);
                    let ok = self
                        .open_physical(addr, lv, index, &mut data)
                        .and_then(|()| self.check_page(&data, addr, crc, lv, index));
                    (i, ok.map(|()| (addr, data)))
                })
                .collect()
        });
        let mut out: Vec<Option<Result<Fetched>>> = batch.iter().map(|_| None).collect();
        for (i, r) in read.into_iter().flatten() {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.expect("every page of the batch is in one run"))
            .collect()
    }

    /// What a sealed page of this table is bound to.
    fn bound(&self, level: u8, index: u64) -> [u64; 3] {
        [self.id as u64, u64::from(level), index]
    }

    /// Levels above the leaves now (a table grows a level when an entry
    /// beyond its reach is set).
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// The root as of the last [`MetaTable::write_dirty`] (or load).
    pub fn root(&self) -> TableRoot {
        self.root
    }

    fn what(&self) -> &'static str {
        match self.id {
            TableId::NodeAddress => "node address table page",
            TableId::SegmentUsage => "segment usage table page",
            TableId::PageAddress => "page address table page",
            TableId::CheckpointList => "checkpoint list page",
        }
    }

    /// Checks the page read from `addr` (opened), expected to be
    /// (`level`, `index`) with checksum `crc`.
    fn check_page(
        &self,
        data: &Page,
        addr: PageAddr,
        crc: u32,
        level: u8,
        index: u64,
    ) -> Result<()> {
        let r = Reader::new(&data[..], self.what(), addr);
        let actual = crc32(&data[..]);
        r.check(actual == crc, || {
            format!("checksum mismatch (expected {crc:#010x}, found {actual:#010x})")
        })?;
        r.check(r.bytes(0, 4)? == PAGE_MAGIC, || "bad magic".into())?;
        let (id, lvl, idx) = (r.u8(4)?, r.u8(5)?, r.u64(8)?);
        r.check(id == self.id as u8 && lvl == level && idx == index, || {
            format!("page says table {id} level {lvl} index {idx}, expected table {} level {level} index {index}", self.id as u8)
        })?;
        Ok(())
    }

    fn fresh_page(&self, level: u8, index: u64) -> Box<Page> {
        let mut data = zero_page();
        let mut w = Writer::new(&mut data[..]);
        w.bytes(0, &PAGE_MAGIC);
        w.u8(4, self.id as u8);
        w.u8(5, level);
        w.u64(8, index);
        data
    }

    /// Makes sure page (`level`, `index`) is cached.
    fn load(&mut self, dev: &dyn BlockDevice, level: u8, index: u64) -> Result<()> {
        if self.pages.contains_key(&(level, index)) {
            return Ok(());
        }
        let (addr, crc) = if level == self.depth {
            if index != 0 {
                return Err(Error::corrupt(
                    self.what(),
                    PageAddr(0),
                    "root index out of range",
                ));
            }
            if self.depth == self.root.depth {
                (self.root.addr, self.root.crc)
            } else {
                (PageAddr::NONE, 0)
            }
        } else {
            let f = self.fanout();
            self.load(dev, level + 1, index / f)?;
            let parent = &self.pages[&(level + 1, index / f)].data;
            let slot = self.shape.slot(index % f);
            let r = Reader::new(&parent[..], self.what(), PageAddr::NONE);
            (r.addr(slot)?, r.u32(slot + 8)?)
        };
        let data = if addr.is_none() {
            self.fresh_page(level, index)
        } else {
            self.fetch(dev, (addr.0, crc), level, index)?.1
        };
        self.evict_clean();
        self.pages.insert(
            (level, index),
            CachedPage {
                data,
                old: addr.0,
                dirty: false,
                released: false,
            },
        );
        Ok(())
    }

    fn evict_clean(&mut self) {
        if self.pages.len() < self.max_clean {
            return;
        }
        // Interior pages are cheap to keep and expensive to lose; drop leaves first.
        let victims: Vec<(u8, u64)> = self
            .pages
            .iter()
            .filter(|(k, p)| !p.dirty && k.0 == 0)
            .map(|(k, _)| *k)
            .take(self.max_clean / 4 + 1)
            .collect();
        for k in victims {
            self.pages.remove(&k);
        }
    }

    /// Reads entry `idx` (all zeros if never set).
    pub fn get(&mut self, dev: &dyn BlockDevice, idx: u64) -> Result<RawEntry> {
        if idx >= self.capacity(self.depth) {
            return Ok(ZERO_ENTRY);
        }
        let page_index = idx / self.fanout();
        self.load(dev, 0, page_index)?;
        let data = &self.pages[&(0, page_index)].data;
        Ok(self.shape.get(&data[..], idx % self.fanout()))
    }

    /// Writes entry `idx`, growing the tree if needed.
    pub fn set(&mut self, dev: &dyn BlockDevice, idx: u64, entry: &RawEntry) -> Result<()> {
        while idx >= self.capacity(self.depth) {
            self.grow(dev)?;
        }
        let page_index = idx / self.fanout();
        self.load(dev, 0, page_index)?;
        let page = self
            .pages
            .get_mut(&(0, page_index))
            .ok_or_else(|| Error::corrupt("table", PageAddr::NONE, "page vanished from cache"))?;
        let (slot, size) = (self.shape.slot(idx % self.shape.fanout()), self.shape.entry);
        page.data[slot..slot + size].copy_from_slice(&entry[..size]);
        page.dirty = true;
        if self.recording {
            self.record(idx, entry);
        }
        Ok(())
    }

    /// Puts a fresh, empty leaf in place of leaf `index`, which fails its
    /// checks (a repair's: it sets the entries, found elsewhere, next).
    pub fn replace_leaf(&mut self, dev: &dyn BlockDevice, index: u64) -> Result<()> {
        self.replace_page(dev, (0, index), &[])
    }

    /// `name` if the page it names still says it is page (`level`,
    /// `index`) of this table (its checksum may fail): then it is released
    /// when the page built in its place is written. A name a fault left
    /// free, or gave to another page or unit, is not this table's to
    /// release (0): at worst its place leaks, which a later check names.
    fn releasable(&self, dev: &dyn BlockDevice, name: u64, (level, index): (u8, u64)) -> u64 {
        if name == 0 {
            return 0;
        }
        let mut data = zero_page();
        let read = match &self.names {
            Some(n) => n.read_page(dev, name, &mut data).is_ok(),
            None => self
                .read_physical(dev, PageAddr(name), level, index, &mut data)
                .is_ok(),
        };
        let r = Reader::new(&data[..], self.what(), PageAddr(name));
        let ours = read
            && r.bytes(0, 4).is_ok_and(|m| m == PAGE_MAGIC)
            && r.u8(4).is_ok_and(|id| id == self.id as u8)
            && r.u8(5).is_ok_and(|l| l == level)
            && r.u64(8).is_ok_and(|i| i == index);
        if ours {
            name
        } else {
            0
        }
    }

    /// Puts a fresh interior page at (`level`, `index`) in place of one
    /// that fails its checks, naming `children` (index below, address,
    /// checksum) as the pages below it (a repair's, of a table named by
    /// address).
    pub fn replace_interior(
        &mut self,
        dev: &dyn BlockDevice,
        (level, index): (u8, u64),
        children: &[(u64, PageAddr, u32)],
    ) -> Result<()> {
        if level == 0 || self.names.is_some() {
            let msg = format!("no interior page at level {level} to build again");
            return Err(Error::corrupt(self.what(), PageAddr::NONE, msg));
        }
        self.replace_page(dev, (level, index), children)
    }

    /// Puts a fresh page, naming `children` if it is above the leaves, in
    /// place of page (`level`, `index`). The damaged page is released when
    /// the table is next written, as any page a write replaces, if it still
    /// says it is that page (see `releasable`); the page above it, if any,
    /// must read.
    fn replace_page(
        &mut self,
        dev: &dyn BlockDevice,
        (level, index): (u8, u64),
        children: &[(u64, PageAddr, u32)],
    ) -> Result<()> {
        let f = self.fanout();
        if level > self.depth || (level == self.depth && index != 0) {
            let msg = format!(
                "no page {index} at level {level} of a table {} deep",
                self.depth
            );
            return Err(Error::corrupt(self.what(), PageAddr::NONE, msg));
        }
        let old = if level == self.depth {
            match self.depth == self.root.depth {
                true => self.root.addr.0,
                false => 0,
            }
        } else {
            self.load(dev, level + 1, index / f)?;
            let parent = &self.pages[&(level + 1, index / f)].data;
            let r = Reader::new(&parent[..], self.what(), PageAddr::NONE);
            r.addr(self.shape.slot(index % f))?.0
        };
        let old = self.releasable(dev, old, (level, index));
        let mut data = self.fresh_page(level, index);
        let mut w = Writer::new(&mut data[..]);
        for &(child, addr, crc) in children {
            if child / f == index {
                let slot = self.shape.slot(child % f);
                w.u64(slot, addr.0);
                w.u32(slot + 8, crc);
            }
        }
        self.pages.insert(
            (level, index),
            CachedPage {
                data,
                old,
                dirty: true,
                released: false,
            },
        );
        Ok(())
    }

    fn record(&mut self, idx: u64, entry: &RawEntry) {
        if let Some(c) = &mut self.changes {
            c.insert(idx, *entry);
            if c.len() > MAX_RECORDED {
                self.changes = None;
            }
        }
    }

    /// Starts (or stops) recording the entries set, for roll-forward
    /// records.
    pub fn record_changes(&mut self, on: bool) {
        self.recording = on;
        self.forget_changes();
    }

    /// The entries set since the last call (or since
    /// [`MetaTable::forget_changes`]), by index, each with its newest value;
    /// `None` if there were more than [`MAX_RECORDED`].
    pub fn take_changes(&mut self) -> Option<Vec<(u64, RawEntry)>> {
        let taken = self.changes.replace(std::collections::BTreeMap::new());
        taken.map(|c| c.into_iter().collect())
    }

    /// Are changes being recorded?
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Entries recorded and not taken (past [`MAX_RECORDED`] once more
    /// were set than it allows).
    pub fn changes_recorded(&self) -> usize {
        self.changes.as_ref().map_or(MAX_RECORDED + 1, |c| c.len())
    }

    /// Drops the recorded changes (a full commit wrote the tables).
    pub fn forget_changes(&mut self) {
        self.changes = Some(std::collections::BTreeMap::new());
    }

    /// Adds a level on top: the old root becomes child 0 of a new root.
    fn grow(&mut self, dev: &dyn BlockDevice) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(Error::NoSpace);
        }
        // The old root becomes child 0. It is marked dirty so that the write
        // fills the new root's slot with its (possibly unchanged) address and
        // checksum; its old copy is released like any rewritten page.
        self.load(dev, self.depth, 0)?;
        if let Some(child) = self.pages.get_mut(&(self.depth, 0)) {
            child.dirty = true;
        }
        let data = self.fresh_page(self.depth + 1, 0);
        self.depth += 1;
        self.pages.insert(
            (self.depth, 0),
            CachedPage {
                data,
                old: 0,
                dirty: true,
                released: true,
            },
        );
        Ok(())
    }

    /// Does the tree as it stands keep page (`level`, `index`) at `addr`?
    /// (The cleaner asks this of every page of a physical table in a
    /// segment it empties.)
    pub fn stored_at(
        &mut self,
        dev: &dyn BlockDevice,
        level: u8,
        index: u64,
        addr: PageAddr,
    ) -> Result<bool> {
        Ok(!self.is_virtual() && self.holds(dev, level, index, addr.0)?)
    }

    /// Does the tree as it stands name page (`level`, `index`) `name` (its
    /// address, or its vpn in a virtual table)?
    pub fn holds(
        &mut self,
        dev: &dyn BlockDevice,
        level: u8,
        index: u64,
        name: u64,
    ) -> Result<bool> {
        if self.dropped.contains(&(level, index, name)) {
            return Ok(true);
        }
        let levels_above = u32::from(self.depth.saturating_sub(level));
        if level > self.depth || index >= self.fanout().saturating_pow(levels_above) {
            return Ok(false);
        }
        self.load(dev, level, index)?;
        Ok(self
            .pages
            .get(&(level, index))
            .is_some_and(|p| p.old == name))
    }

    /// Drops the leaf holding entry `idx` from the tree if every entry it
    /// holds is zero (and then its parent, if that leaves the parent
    /// empty): a table whose entries are cleared in order (the checkpoint
    /// list, pruned oldest first) does not keep pages of nothing. The root
    /// is never dropped.
    pub fn drop_if_empty(&mut self, dev: &dyn BlockDevice, idx: u64) -> Result<()> {
        if idx >= self.capacity(self.depth) {
            return Ok(());
        }
        let f = self.fanout();
        let (mut level, mut index) = (0u8, idx / f);
        while level < self.depth {
            self.load(dev, level, index)?;
            let empty = self.pages[&(level, index)].data[self.shape.head..]
                .iter()
                .all(|&b| b == 0);
            if !empty {
                return Ok(());
            }
            if let Some(p) = self.pages.remove(&(level, index)) {
                if p.old != 0 && !p.released {
                    self.dropped.push((level, index, p.old));
                }
            }
            let parent = (level + 1, index / f);
            self.load(dev, parent.0, parent.1)?;
            let slot = self.shape.slot(index % f);
            if let Some(p) = self.pages.get_mut(&parent) {
                p.data[slot..slot + self.shape.entry].fill(0);
                p.dirty = true;
            }
            (level, index) = parent;
        }
        Ok(())
    }

    /// Marks page (`level`, `index`) dirty, so that the next write moves it
    /// (and releases its old copy).
    pub fn mark_dirty(&mut self, dev: &dyn BlockDevice, level: u8, index: u64) -> Result<()> {
        if self.dropped.iter().any(|d| (d.0, d.1) == (level, index)) {
            // Dropped: it dies with the next write, nothing to move.
            return Ok(());
        }
        self.load(dev, level, index)?;
        if let Some(p) = self.pages.get_mut(&(level, index)) {
            p.dirty = true;
        }
        Ok(())
    }

    /// Marks every page of the tree dirty, so that the next write puts
    /// all of them in the log again, each with a summary entry of its own
    /// (a repair's, for pages a record summary misdescribes).
    pub fn mark_all_dirty(&mut self, dev: &dyn BlockDevice) -> Result<usize> {
        let mut pages = Vec::new();
        self.walk(
            dev,
            &mut |level, index, _, _, _| {
                pages.push((level, index));
                Ok(())
            },
            &mut |_, _, _, _| {},
        )?;
        for &(level, index) in &pages {
            self.mark_dirty(dev, level, index)?;
        }
        Ok(pages.len())
    }

    /// Marks the ancestors of every dirty page dirty (loading them), so that
    /// [`MetaTable::dirty_count`] is the number of pages the next write needs.
    pub fn close_dirty(&mut self, dev: &dyn BlockDevice) -> Result<()> {
        for level in 0..self.depth {
            let dirty: Vec<u64> = self
                .pages
                .iter()
                .filter(|(k, p)| k.0 == level && p.dirty)
                .map(|(k, _)| k.1)
                .collect();
            for index in dirty {
                let parent = (level + 1, index / self.fanout());
                self.load(dev, parent.0, parent.1)?;
                if let Some(p) = self.pages.get_mut(&parent) {
                    p.dirty = true;
                }
            }
        }
        Ok(())
    }

    /// Pages the next write needs.
    pub fn dirty_count(&self) -> usize {
        self.pages.values().filter(|p| p.dirty).count()
    }

    /// Old names (addresses, or virtual page numbers) of dirty pages that
    /// have not been reported yet: those pages die when the table is
    /// written.
    pub fn take_released(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        for p in self.pages.values_mut().filter(|p| p.dirty && !p.released) {
            p.released = true;
            if p.old != 0 {
                out.push(p.old);
            }
        }
        // A replaced root that is no longer cached as dirty (after a grow)
        // was released when it was marked dirty above.
        out.extend(self.dropped.drain(..).map(|(_, _, name)| name));
        out
    }

    /// Writes every dirty page, children before parents, by handing each
    /// encoded page and its summary entry to `place`, which stores it and
    /// returns the name the parent records (its address, or its virtual
    /// page number). Updates the root.
    pub fn write_dirty(
        &mut self,
        place: &mut dyn FnMut(&Page, Entry) -> Result<u64>,
    ) -> Result<()> {
        let mut keys: Vec<(u8, u64)> = self
            .pages
            .iter()
            .filter(|(_, p)| p.dirty)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        for key in keys {
            let page = self
                .pages
                .get_mut(&key)
                .ok_or_else(|| Error::corrupt("table", PageAddr::NONE, "page vanished"))?;
            let crc = crc32(&page.data[..]);
            let mut entry = Entry::raw(
                PageKind::Table,
                self.id as u64,
                (u64::from(key.0) << 56) | key.1,
            );
            entry.crc = crc;
            let name = match (&self.sealer, &self.names) {
                (Some(s), None) => {
                    let mut stored = page.data.clone();
                    s.seal_page(
                        &page_sealing(),
                        &[self.id as u64, u64::from(key.0), key.1],
                        &mut stored[..],
                    )?;
                    place(&stored, entry)?
                }
                _ => place(&page.data, entry)?,
            };
            page.old = name;
            page.dirty = false;
            page.released = false;
            if key.0 == self.depth {
                self.root = TableRoot {
                    addr: PageAddr(name),
                    crc,
                    depth: self.depth,
                };
            } else {
                let f = self.shape.fanout();
                let parent_key = (key.0 + 1, key.1 / f);
                let slot = self.shape.slot(key.1 % f);
                let parent = self.pages.get_mut(&parent_key).ok_or_else(|| {
                    Error::corrupt("table", PageAddr(name), "parent of a dirty page not loaded")
                })?;
                let mut w = Writer::new(&mut parent.data[..]);
                w.u64(slot, name);
                w.u32(slot + 8, crc);
            }
        }
        Ok(())
    }

    /// Every page of the tree as of the root, for checkers: calls
    /// `visit(level, index, name, addr, page)` for each stored page (its
    /// name is its address in a physical table, its virtual page number in
    /// a virtual one), and `damaged(level, index, name, error)` for each
    /// page that cannot be found, read or checked (whose subtree is then
    /// not walked: the rest of the table still is). A level at a time:
    /// each level's pages are read together, in batches of 1,024 (4 MiB),
    /// in runs of consecutive pages several at once (a commit writes a
    /// table's pages side by side), rather than one dependent read a page
    /// (a full check's table reads). Pages are visited level by level,
    /// each level in index order.
    pub fn walk(
        &self,
        dev: &dyn BlockDevice,
        visit: &mut VisitPage<'_>,
        damaged: &mut dyn FnMut(u8, u64, u64, Error),
    ) -> Result<()> {
        if self.root.addr.is_none() {
            return Ok(());
        }
        let f = self.fanout();
        let mut level = vec![(self.root.depth, 0, self.root.addr.0, self.root.crc)];
        while !level.is_empty() {
            let mut below = Vec::new();
            for batch in level.chunks(1024) {
                let fetched = self.fetch_batch(dev, batch);
                for (&(lv, index, name, _), got) in batch.iter().zip(fetched) {
                    let (addr, data) = match got {
                        Ok(d) => d,
                        Err(e) => {
                            damaged(lv, index, name, e);
                            continue;
                        }
                    };
                    visit(lv, index, name, addr, &data)?;
                    if lv == 0 {
                        continue;
                    }
                    let r = Reader::new(&data[..], self.what(), addr);
                    for slot in 0..f {
                        let off = self.shape.slot(slot);
                        let child = r.u64(off)?;
                        if child != 0 {
                            below.push((lv - 1, index * f + slot, child, r.u32(off + 8)?));
                        }
                    }
                }
            }
            level = below;
        }
        Ok(())
    }

    /// Calls `differ(entry, here, there)` for every entry in which this
    /// table's stored tree and `other`'s differ (`None`: all zero). Only
    /// pages whose names differ are read: two tables naming the same page
    /// share it and everything below it (unchanged subtrees are skipped
    /// by identity, as `diff` of two snapshots needs). In-memory changes
    /// not yet written are not seen.
    pub fn diff(
        &self,
        other: &MetaTable,
        dev: &dyn BlockDevice,
        differ: &mut dyn FnMut(u64, Option<RawEntry>, Option<RawEntry>),
    ) -> Result<()> {
        if self.root.depth != other.root.depth {
            // Grown in between: compare every entry.
            let mut all = std::collections::BTreeMap::new();
            for (side, t) in [(0usize, self), (1, other)] {
                t.walk(
                    dev,
                    &mut |level, index, _, _, page| {
                        if level == 0 {
                            for (i, e) in leaf_entries(t.shape, page, index) {
                                all.entry(i).or_insert([None, None])[side] = Some(e);
                            }
                        }
                        Ok(())
                    },
                    &mut |_, _, name, e| {
                        log::warn!("diff: page {name} unreadable: {e}");
                    },
                )?;
            }
            for (i, [a, b]) in all {
                if a != b {
                    differ(i, a, b);
                }
            }
            return Ok(());
        }
        let named = |r: &TableRoot| (!r.addr.is_none()).then_some((r.addr.0, r.crc));
        let start = (named(&self.root), named(&other.root));
        self.diff_page(other, dev, (self.root.depth, 0), start, differ)
    }

    fn diff_page(
        &self,
        other: &MetaTable,
        dev: &dyn BlockDevice,
        (level, index): (u8, u64),
        (a, b): (Option<Named>, Option<Named>),
        differ: &mut dyn FnMut(u64, Option<RawEntry>, Option<RawEntry>),
    ) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let read = |t: &MetaTable, n: Option<Named>| -> Result<Option<Box<Page>>> {
            n.map(|named| Ok(t.fetch(dev, named, level, index)?.1))
                .transpose()
        };
        let (pa, pb) = (read(self, a)?, read(other, b)?);
        let shape = self.shape;
        let slot = |p: &Option<Box<Page>>, k: u64| -> RawEntry {
            p.as_ref().map_or(ZERO_ENTRY, |p| shape.get(&p[..], k))
        };
        let f = shape.fanout();
        for k in 0..f {
            let (ea, eb) = (slot(&pa, k), slot(&pb, k));
            if ea == eb {
                continue;
            }
            let some = |e: RawEntry| (e != ZERO_ENTRY).then_some(e);
            if level == 0 {
                differ(index * f + k, some(ea), some(eb));
                continue;
            }
            let child = |e: RawEntry| {
                let name = u64::from_le_bytes(e[..8].try_into().unwrap_or_default());
                let crc = u32::from_le_bytes(e[8..12].try_into().unwrap_or_default());
                (name != 0).then_some((name, crc))
            };
            let at = (level - 1, index * f + k);
            self.diff_page(other, dev, at, (child(ea), child(eb)), differ)?;
        }
        Ok(())
    }

    /// The entries a page at (`level`, `index`) covers.
    pub fn entries_under(&self, level: u8, index: u64) -> std::ops::Range<u64> {
        self.shape.entries_under(level, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    /// Writes a table's dirty pages to consecutive addresses from `next`.
    fn flush(t: &mut MetaTable, dev: &MemDevice, next: &mut u64) -> Vec<u64> {
        t.close_dirty(dev).expect("close");
        let released = t.take_released();
        t.write_dirty(&mut |p, _| {
            let a = PageAddr(*next);
            *next += 1;
            dev.write(a, &p[..]).expect("write");
            Ok(a.0)
        })
        .expect("write_dirty");
        released
    }

    #[test]
    fn entries_survive_flush_and_reload_across_growth() {
        let dev = MemDevice::new(4096);
        let mut t = MetaTable::new(TableId::NodeAddress, TableRoot::default(), 4, None);
        let mut next = 10;
        let idxs = [0u64, 1, 254, 255, 300, 70_000, 65_025 * 3];
        for &i in &idxs {
            let mut e = ZERO_ENTRY;
            e[..8].copy_from_slice(&(i + 1).to_le_bytes());
            t.set(&dev, i, &e).expect("set");
        }
        flush(&mut t, &dev, &mut next);
        let root = t.root();
        assert_eq!(root.depth, 2);
        let mut again = MetaTable::new(TableId::NodeAddress, root, 4, None);
        for &i in &idxs {
            let e = again.get(&dev, i).expect("get");
            assert_eq!(
                u64::from_le_bytes(e[..8].try_into().expect("8")),
                i + 1,
                "entry {i}"
            );
        }
        assert_eq!(again.get(&dev, 5).expect("get"), ZERO_ENTRY);
        // Change one entry: only its path is rewritten, and the old path dies.
        let mut e = ZERO_ENTRY;
        e[0] = 0xEE;
        again.set(&dev, 300, &e).expect("set");
        let released = flush(&mut again, &dev, &mut next);
        assert_eq!(released.len(), 3, "leaf, interior and root are replaced");
        let mut third = MetaTable::new(TableId::NodeAddress, again.root(), 4, None);
        assert_eq!(third.get(&dev, 300).expect("get")[0], 0xEE);
        assert_eq!(
            u64::from_le_bytes(
                third.get(&dev, 70_000).expect("get")[..8]
                    .try_into()
                    .expect("8")
            ),
            70_001
        );
        let mut seen = 0;
        third
            .walk(
                &dev,
                &mut |_, _, _, _, _| {
                    seen += 1;
                    Ok(())
                },
                &mut |_, _, a, e| panic!("page {a} damaged: {e}"),
            )
            .expect("walk");
        assert!(seen >= 5);
    }

    #[test]
    fn corrupt_page_is_an_error_not_a_panic() {
        let dev = MemDevice::new(64);
        let mut t = MetaTable::new(TableId::SegmentUsage, TableRoot::default(), 8, None);
        t.set(&dev, 3, &[7u8; MAX_ENTRY]).expect("set");
        let mut next = 5;
        flush(&mut t, &dev, &mut next);
        let root = t.root();
        let mut page = vec![0u8; PAGE_SIZE];
        dev.read(root.addr, &mut page).expect("read");
        page[100] ^= 1;
        dev.write(root.addr, &page).expect("write");
        let mut t2 = MetaTable::new(TableId::SegmentUsage, root, 8, None);
        assert!(matches!(t2.get(&dev, 3), Err(Error::Corrupt { .. })));
    }
}
