//! The checkpoint list (NILFS2's cpfile): the retained checkpoints of the
//! live root, each a record of sixteen entries in a current-only table
//! (addressed physically, rewritten at each commit like the usage table),
//! at a slot handed out in order. Every record is also kept in memory:
//! there are at most a few thousand (one per retention interval inside the
//! protection window, plus snapshots), and listing, choosing a prune
//! victim or finding a checkpoint's neighbours must not read the device.
//!
//! A pruned record's entries are cleared; a leaf left with no record is
//! dropped from the tree, so the table holds what is retained, not
//! everything ever retained.

use std::collections::BTreeMap;

use crate::checkpoint_record::{Record, ENTRIES, SIZE};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, PageAddr};
use crate::meta_table::{MetaTable, RawEntry, TableId, TableRoot, ENTRY_SIZE, ZERO_ENTRY};

/// Clean pages of the list kept in memory.
const CACHE_PAGES: usize = 64;

/// The retained checkpoints.
#[derive(Debug)]
pub struct CheckpointList {
    table: MetaTable,
    /// Every record of a retained checkpoint, by checkpoint, with its slot.
    records: BTreeMap<CheckpointNo, (u64, Record)>,
    /// Every branch record, by name, with its slot.
    branches: BTreeMap<Vec<u8>, (u64, Record)>,
    /// The slot the next record takes.
    next_slot: u64,
}

impl CheckpointList {
    /// The list rooted at `root`, read whole; `next_slot` from the
    /// checkpoint.
    pub fn open(dev: &dyn BlockDevice, root: TableRoot, next_slot: u64) -> Result<CheckpointList> {
        CheckpointList::open_sealed(dev, root, next_slot, None)
    }

    /// [`CheckpointList::open`] on a volume sealed with `sealer`.
    pub fn open_sealed(
        dev: &dyn BlockDevice,
        root: TableRoot,
        next_slot: u64,
        sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
    ) -> Result<CheckpointList> {
        let table = MetaTable::new(TableId::CheckpointList, root, CACHE_PAGES, sealer);
        let shape = table.shape();
        let mut entries: BTreeMap<u64, RawEntry> = BTreeMap::new();
        let mut damage = None;
        table.walk(
            dev,
            &mut |level, index, _, _, page| {
                if level == 0 {
                    for (i, e) in crate::meta_table::leaf_entries(shape, page, index) {
                        entries.insert(i, e);
                    }
                }
                Ok(())
            },
            &mut |_, _, name, e| {
                damage.get_or_insert((name, e));
            },
        )?;
        if let Some((name, e)) = damage {
            return Err(match e {
                Error::Corrupt { .. } => e,
                other => Error::corrupt("checkpoint list", PageAddr(name), other.to_string()),
            });
        }
        let mut records = BTreeMap::new();
        let mut branches = BTreeMap::new();
        let slots: std::collections::BTreeSet<u64> = entries.keys().map(|i| i / ENTRIES).collect();
        for slot in slots {
            let mut bytes = [0u8; SIZE];
            for k in 0..ENTRIES {
                if let Some(e) = entries.get(&(slot * ENTRIES + k)) {
                    let at = k as usize * ENTRY_SIZE;
                    bytes[at..at + ENTRY_SIZE].copy_from_slice(&e[..ENTRY_SIZE]);
                }
            }
            if slot >= next_slot {
                return Err(Error::corrupt(
                    "checkpoint list",
                    PageAddr::NONE,
                    format!("a record at slot {slot}, past the next slot {next_slot}"),
                ));
            }
            if let Some(rec) = Record::decode(&bytes, slot)? {
                if rec.is_branch() {
                    if branches
                        .insert(rec.name.clone(), (slot, rec.clone()))
                        .is_some()
                    {
                        return Err(Error::corrupt(
                            "checkpoint list",
                            PageAddr::NONE,
                            format!("branch '{}' is listed twice", rec.shown_name()),
                        ));
                    }
                    continue;
                }
                if records.insert(rec.no, (slot, rec.clone())).is_some() {
                    return Err(Error::corrupt(
                        "checkpoint list",
                        PageAddr::NONE,
                        format!("checkpoint {} is listed twice", rec.no),
                    ));
                }
            }
        }
        Ok(CheckpointList {
            table,
            records,
            branches,
            next_slot,
        })
    }

    /// The table, for commits.
    pub fn table(&mut self) -> &mut MetaTable {
        &mut self.table
    }

    /// The slot the next record takes.
    pub fn next_slot(&self) -> u64 {
        self.next_slot
    }

    /// Retained checkpoints, oldest first.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &Record> {
        self.records.values().map(|(_, r)| r)
    }

    /// How many are retained.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Is nothing retained?
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of checkpoint `no`.
    pub fn get(&self, no: CheckpointNo) -> Option<&Record> {
        self.records.get(&no).map(|(_, r)| r)
    }

    /// The newest retained checkpoint.
    pub fn newest(&self) -> Option<&Record> {
        self.records.values().next_back().map(|(_, r)| r)
    }

    /// The retained checkpoint just before `no`.
    pub fn before(&self, no: CheckpointNo) -> Option<&Record> {
        self.records.range(..no).next_back().map(|(_, (_, r))| r)
    }

    /// The retained checkpoint just after `no`.
    pub fn after(&self, no: CheckpointNo) -> Option<&Record> {
        let next = CheckpointNo(no.0.saturating_add(1));
        self.records.range(next..).next().map(|(_, (_, r))| r)
    }

    /// The snapshot named `name`.
    pub fn snapshot(&self, name: &[u8]) -> Option<&Record> {
        self.records().find(|r| r.is_snapshot() && r.name == name)
    }

    /// The branches, by name.
    pub fn branches(&self) -> impl Iterator<Item = &Record> {
        self.branches.values().map(|(_, r)| r)
    }

    /// The branch named `name`.
    pub fn branch(&self, name: &[u8]) -> Option<&Record> {
        self.branches.get(name).map(|(_, r)| r)
    }

    /// Is retained checkpoint `no` the origin of a branch?
    pub fn is_origin(&self, no: CheckpointNo) -> bool {
        self.branches().any(|b| b.no == no)
    }

    /// Adds a branch record, or replaces the one of the same name.
    pub fn put_branch(&mut self, dev: &dyn BlockDevice, rec: Record) -> Result<()> {
        let slot = match self.branches.get(&rec.name) {
            Some((slot, _)) => *slot,
            None => {
                self.next_slot += 1;
                self.next_slot - 1
            }
        };
        self.store(dev, slot, &rec)?;
        self.branches.insert(rec.name.clone(), (slot, rec));
        Ok(())
    }

    /// Removes the branch record `name`.
    pub fn remove_branch(&mut self, dev: &dyn BlockDevice, name: &[u8]) -> Result<Record> {
        let (slot, rec) = self.branches.remove(name).ok_or_else(|| {
            Error::corrupt(
                "checkpoint list",
                PageAddr::NONE,
                format!("branch '{}' is not listed", String::from_utf8_lossy(name)),
            )
        })?;
        self.clear_slot(dev, slot)?;
        Ok(rec)
    }

    /// Adds the record of a newly retained checkpoint (the newest).
    pub fn append(&mut self, dev: &dyn BlockDevice, rec: Record) -> Result<()> {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.store(dev, slot, &rec)?;
        self.records.insert(rec.no, (slot, rec));
        Ok(())
    }

    /// Replaces the record of `rec.no`.
    pub fn update(&mut self, dev: &dyn BlockDevice, rec: Record) -> Result<()> {
        let slot = self
            .records
            .get(&rec.no)
            .map(|(s, _)| *s)
            .ok_or_else(|| not_listed(rec.no))?;
        self.store(dev, slot, &rec)?;
        self.records.insert(rec.no, (slot, rec));
        Ok(())
    }

    /// Removes the record of `no`; a leaf left empty leaves the tree.
    pub fn remove(&mut self, dev: &dyn BlockDevice, no: CheckpointNo) -> Result<Record> {
        let (slot, rec) = self.records.remove(&no).ok_or_else(|| not_listed(no))?;
        self.clear_slot(dev, slot)?;
        Ok(rec)
    }

    /// Clears slot `slot`; a leaf left empty leaves the tree.
    fn clear_slot(&mut self, dev: &dyn BlockDevice, slot: u64) -> Result<()> {
        for k in 0..ENTRIES {
            self.table.set(dev, slot * ENTRIES + k, &ZERO_ENTRY)?;
        }
        self.table.drop_if_empty(dev, slot * ENTRIES)?;
        self.table
            .drop_if_empty(dev, slot * ENTRIES + ENTRIES - 1)?;
        Ok(())
    }

    fn store(&mut self, dev: &dyn BlockDevice, slot: u64, rec: &Record) -> Result<()> {
        let bytes = rec.encode();
        for k in 0..ENTRIES {
            let at = k as usize * ENTRY_SIZE;
            let mut e = ZERO_ENTRY;
            e[..ENTRY_SIZE].copy_from_slice(&bytes[at..at + ENTRY_SIZE]);
            self.table.set(dev, slot * ENTRIES + k, &e)?;
        }
        Ok(())
    }
}

fn not_listed(no: CheckpointNo) -> Error {
    Error::corrupt(
        "checkpoint list",
        PageAddr::NONE,
        format!("checkpoint {no} is not listed"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;
    use crate::layout::PAGE_SIZE;

    fn rec(no: u64) -> Record {
        Record {
            no: CheckpointNo(no),
            time_ns: no as i64,
            name: format!("cp{no}").into_bytes(),
            ..Record::default()
        }
    }

    /// Writes the table's dirty pages from page `next` on.
    fn flush(list: &mut CheckpointList, dev: &MemDevice, next: &mut u64) -> Vec<u64> {
        let t = list.table();
        t.close_dirty(dev).expect("close");
        let released = t.take_released();
        t.write_dirty(&mut |p, _| {
            let a = PageAddr(*next);
            *next += 1;
            dev.write(a, &p[..PAGE_SIZE]).expect("write");
            Ok(a.0)
        })
        .expect("write");
        released
    }

    #[test]
    fn records_survive_reopen_and_pruned_leaves_leave_the_tree() {
        let dev = MemDevice::new(4096);
        let mut list = CheckpointList::open(&dev, TableRoot::default(), 0).expect("open");
        for no in 1..=100 {
            list.append(&dev, rec(no)).expect("append");
        }
        let mut next = 10;
        flush(&mut list, &dev, &mut next);
        let root = list.table().root();
        let mut again = CheckpointList::open(&dev, root, list.next_slot()).expect("reopen");
        assert_eq!(again.len(), 100);
        assert_eq!(again.get(CheckpointNo(40)), Some(&rec(40)));
        assert_eq!(
            again.before(CheckpointNo(40)).map(|r| r.no),
            Some(CheckpointNo(39))
        );
        assert_eq!(again.after(CheckpointNo(100)), None);
        // A leaf holds 255 entries: about sixteen records. Pruning the
        // first forty empties at least two leaves, which leave the tree.
        for no in 1..=40 {
            again.remove(&dev, CheckpointNo(no)).expect("remove");
        }
        let released = flush(&mut again, &dev, &mut next);
        assert!(
            released.len() >= 3,
            "two empty leaves and the old path: {released:?}"
        );
        let third =
            CheckpointList::open(&dev, again.table().root(), again.next_slot()).expect("third");
        assert_eq!(third.len(), 60);
        assert_eq!(third.records().next().map(|r| r.no), Some(CheckpointNo(41)));
    }
}
