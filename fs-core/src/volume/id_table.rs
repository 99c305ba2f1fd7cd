//! An allocating table: a [`MetaTable`] whose entries are handed out as
//! numbers (node ids in a node address table, virtual page numbers in the
//! page address table) and given back.
//!
//! An entry whose first eight bytes are zero is free; a free entry keeps
//! the next free number in bytes 8..16, so the free numbers form a list
//! threaded through the table and allocation never scans. Numbers at or
//! above the watermark were never handed out.

use crate::codec::{Reader, Writer};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::PageAddr;
use crate::meta_table::{MetaTable, RawEntry, TableRoot, ZERO_ENTRY};

/// Is this raw entry in use?
pub fn is_used(raw: &RawEntry) -> bool {
    raw[..8] != [0u8; 8]
}

/// The next free number a free entry names (0 ends the list).
pub fn next_free(raw: &RawEntry) -> u64 {
    Reader::new(raw, "table entry", PageAddr::NONE)
        .u64(8)
        .unwrap_or(0)
}

/// Encodes a free entry naming `next` as the next free number.
pub fn encode_free(next: u64) -> RawEntry {
    let mut raw = ZERO_ENTRY;
    Writer::new(&mut raw).u64(8, next);
    raw
}

/// Where an allocating table stands: kept in the checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdState {
    /// The table's tree.
    pub root: TableRoot,
    /// First free number below the watermark (0 = none).
    pub free_head: u64,
    /// Numbers at or above this were never used.
    pub watermark: u64,
}

/// A table of numbered entries with a free list.
#[derive(Debug)]
pub struct IdTable {
    table: MetaTable,
    /// What the numbers name, for messages ("node address table").
    what: &'static str,
    /// First free number below the watermark (0 = none).
    pub free_head: u64,
    /// Numbers at or above this were never used.
    pub watermark: u64,
    /// The watermark never passes this.
    limit: u64,
}

impl IdTable {
    /// A table over `table`, continuing from `state`, handing out numbers
    /// below `limit`.
    pub fn new(table: MetaTable, what: &'static str, state: IdState, limit: u64) -> IdTable {
        IdTable {
            table,
            what,
            free_head: state.free_head,
            watermark: state.watermark,
            limit,
        }
    }

    /// The underlying table, for commits and checkers.
    pub fn table(&mut self) -> &mut MetaTable {
        &mut self.table
    }

    /// The underlying table, read-only.
    pub fn table_ref(&self) -> &MetaTable {
        &self.table
    }

    /// The state to record in a checkpoint (the root as last written).
    pub fn state(&self) -> IdState {
        IdState {
            root: self.table.root(),
            free_head: self.free_head,
            watermark: self.watermark,
        }
    }

    /// Entry `n` if it is in use.
    pub fn get(&mut self, dev: &dyn BlockDevice, n: u64) -> Result<Option<RawEntry>> {
        if n == 0 || n >= self.watermark {
            return Ok(None);
        }
        let raw = self.table.get(dev, n)?;
        Ok(is_used(&raw).then_some(raw))
    }

    /// Stores `raw` (an entry in use) at `n`.
    pub fn set(&mut self, dev: &dyn BlockDevice, n: u64, raw: &RawEntry) -> Result<()> {
        debug_assert!(is_used(raw), "a used entry must not look free");
        self.table.set(dev, n, raw)
    }

    /// Takes a free number: the last one given back, or the watermark.
    pub fn alloc(&mut self, dev: &dyn BlockDevice) -> Result<u64> {
        if self.free_head == 0 {
            return self.raise_watermark(dev);
        }
        let n = self.free_head;
        let raw = self.table.get(dev, n)?;
        if is_used(&raw) {
            return Err(Error::corrupt(
                self.what,
                PageAddr::NONE,
                format!("free list names {n}, which is in use"),
            ));
        }
        self.free_head = next_free(&raw);
        Ok(n)
    }

    /// Takes the number at the watermark: a number never used has an
    /// all-zero entry (one that is not means the watermark is wrong, and
    /// handing the number out would overwrite what it names).
    fn raise_watermark(&mut self, dev: &dyn BlockDevice) -> Result<u64> {
        let n = self.watermark;
        if n >= self.limit {
            return Err(Error::NoSpace);
        }
        if self.table.get(dev, n)? != ZERO_ENTRY {
            return Err(Error::corrupt(
                self.what,
                PageAddr::NONE,
                format!("{n}, at the watermark, is already in use or listed free"),
            ));
        }
        self.watermark = n + 1;
        Ok(n)
    }

    /// Threads every unused number from `first` below `watermark` onto the
    /// free list again, in order, and makes `watermark` the table's: a
    /// repair's, for a list that loops, names a number in use or leaves
    /// numbers out, or a watermark below a number in use. A number
    /// `taken` says is handed out (its entry not written yet) stays off
    /// the list. Returns how many numbers are listed.
    pub fn rebuild_free_list(
        &mut self,
        dev: &dyn BlockDevice,
        (first, watermark): (u64, u64),
        taken: &dyn Fn(u64) -> bool,
    ) -> Result<u64> {
        let (mut head, mut listed) = (0, 0);
        for n in (first..watermark).rev() {
            let raw = self.table.get(dev, n)?;
            if is_used(&raw) || taken(n) {
                continue;
            }
            let free = encode_free(head);
            if raw != free {
                self.table.set(dev, n, &free)?;
            }
            head = n;
            listed += 1;
        }
        self.free_head = head;
        self.watermark = watermark;
        Ok(listed)
    }

    /// Gives `n` back: it heads the free list.
    pub fn release(&mut self, dev: &dyn BlockDevice, n: u64) -> Result<()> {
        self.table.set(dev, n, &encode_free(self.free_head))?;
        self.free_head = n;
        Ok(())
    }
}
