//! A root's quota file in memory: every record, an index by id, and which
//! pages changed since the last commit. The commit folds the usage ledger
//! into it and writes the changed pages (see docs/design-quota.md).

use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::ids::PageAddr;
use crate::index_node::PTRS_PER_DIRECT;
use crate::inode::INLINE_PTRS;
use crate::layout::{zero_page, Page, PAGE_SIZE};
use crate::quota_file::{decode_record, encode_record, Header, Record, PER_PAGE, QUOTA_INO};
use crate::usage::{QuotaId, Usage};

/// The records of one root.
#[derive(Clone, Debug, Default)]
pub struct QuotaTable {
    /// Grace periods.
    pub header: Header,
    /// Record slots in file order (slot `s` is in page `1 + s / 32`).
    slots: Vec<Option<(QuotaId, Record)>>,
    index: HashMap<QuotaId, usize>,
    /// File pages changed since the last commit.
    dirty: BTreeSet<u64>,
}

impl QuotaTable {
    /// A table with no record (a new file: its header page is dirty).
    pub fn new() -> QuotaTable {
        QuotaTable {
            dirty: BTreeSet::from([0]),
            ..QuotaTable::default()
        }
    }

    /// The table of the file whose pages are `pages` (page 0 first).
    pub fn load(pages: &[Box<Page>]) -> Result<QuotaTable> {
        let first = pages
            .first()
            .ok_or_else(|| bad("the quota file has no header page"))?;
        let mut t = QuotaTable {
            header: Header::decode(&first[..], PageAddr::NONE)?,
            ..QuotaTable::default()
        };
        for (p, page) in pages.iter().enumerate().skip(1) {
            for s in 0..PER_PAGE {
                let rec = decode_record(&page[..], s, PageAddr::NONE)?;
                let slot = (p - 1) * PER_PAGE + s;
                if let Some((id, _)) = rec {
                    if t.index.insert(id, slot).is_some() {
                        return Err(bad(format!("the quota file holds {id:?} twice")));
                    }
                }
                t.slots.push(rec);
            }
        }
        Ok(t)
    }

    /// The record of `id`, if it has one.
    pub fn get(&self, id: QuotaId) -> Option<&Record> {
        self.index
            .get(&id)
            .and_then(|&s| self.slots[s].as_ref())
            .map(|(_, r)| r)
    }

    /// Every record, by id.
    pub fn records(&self) -> impl Iterator<Item = (QuotaId, &Record)> {
        self.slots.iter().flatten().map(|(id, r)| (*id, r))
    }

    /// The record of `id` to change (made, in a free slot or a new one,
    /// if it has none); its page will be written by the next commit.
    pub fn record_mut(&mut self, id: QuotaId) -> &mut Record {
        let slot = match self.index.get(&id) {
            Some(&s) => s,
            None => {
                let s = self
                    .slots
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or_else(|| {
                        self.slots.extend((0..PER_PAGE).map(|_| None));
                        self.slots.len() - PER_PAGE
                    });
                self.slots[s] = Some((id, Record::default()));
                self.index.insert(id, s);
                s
            }
        };
        self.dirty.insert(1 + (slot / PER_PAGE) as u64);
        &mut self.slots[slot].as_mut().expect("present").1
    }

    /// Marks the header page changed.
    pub fn header_changed(&mut self) {
        self.dirty.insert(0);
    }

    /// Adds the ledger's changes to the records; a record left with
    /// nothing used and no limit gives its slot back.
    pub fn apply(&mut self, deltas: &HashMap<QuotaId, Usage>) {
        for (id, d) in deltas {
            if *d == Usage::default() {
                continue;
            }
            let r = self.record_mut(*id);
            r.pages = r.pages.saturating_add_signed(d.pages);
            r.inodes = r.inodes.saturating_add_signed(d.inodes);
            if r.is_empty() {
                let slot = self.index.remove(id).expect("just made");
                self.slots[slot] = None;
            }
        }
    }

    /// Pages in the file.
    pub fn file_pages(&self) -> u64 {
        1 + self.slots.len().div_ceil(PER_PAGE) as u64
    }

    /// The most pages a commit that folds changes for `ids` ids into the
    /// table writes (those already changed, one per id, and none past the
    /// file's end plus what the new ids may add), and the most nodes that
    /// dirties: the inode pack, and while the file is past its inline
    /// pointers, each direct map node with up to three above it.
    pub fn pages_to_write(&self, ids: usize) -> (u64, u64) {
        let end = self.file_pages() + ids.div_ceil(PER_PAGE) as u64;
        let pages = ((self.dirty.len() + ids) as u64).min(end);
        let map = if end <= INLINE_PTRS as u64 {
            0
        } else {
            4 * pages.min(end.div_ceil(PTRS_PER_DIRECT as u64))
        };
        (pages, 1 + map)
    }

    /// Encodes the changed pages and forgets they changed.
    pub fn take_dirty(&mut self) -> Vec<(u64, Box<Page>)> {
        let pages = std::mem::take(&mut self.dirty);
        pages
            .into_iter()
            .map(|p| (p, self.encode_page(p)))
            .collect()
    }

    fn encode_page(&self, p: u64) -> Box<Page> {
        let mut page = zero_page();
        if p == 0 {
            self.header.encode(&mut page[..]);
            return page;
        }
        let first = (p as usize - 1) * PER_PAGE;
        for s in 0..PER_PAGE {
            let rec = self.slots.get(first + s).and_then(|r| r.as_ref());
            encode_record(&mut page[..], s, rec.map(|(id, r)| (*id, r)));
        }
        page
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_pages() * PAGE_SIZE as u64
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::corrupt(format!("inode {QUOTA_INO}"), PageAddr::NONE, msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::IdKind;

    fn user(id: u32) -> QuotaId {
        QuotaId {
            kind: IdKind::User,
            id,
        }
    }

    #[test]
    fn records_persist_through_their_pages() {
        let mut t = QuotaTable::new();
        let deltas = (0..40)
            .map(|i| {
                (
                    user(i),
                    Usage {
                        pages: 3,
                        inodes: 1,
                    },
                )
            })
            .collect::<HashMap<_, _>>();
        t.apply(&deltas);
        t.record_mut(user(7)).page_hard = 99;
        assert_eq!(t.file_pages(), 3);
        let mut pages: Vec<Box<Page>> = (0..3).map(|_| zero_page()).collect();
        for (p, page) in t.take_dirty() {
            pages[p as usize] = page;
        }
        assert!(t.take_dirty().is_empty(), "nothing changed since");
        let back = QuotaTable::load(&pages).expect("load");
        assert_eq!(
            back.get(user(7)).map(|r| (r.pages, r.page_hard)),
            Some((3, 99))
        );
        assert_eq!(back.records().count(), 40);
        // A change touches one page; a new id reuses no slot while all are
        // taken, and adds a page.
        let mut back = back;
        back.record_mut(user(1)).inodes += 1;
        assert_eq!(back.take_dirty().len(), 1);
        // Nothing used and no limit: the record goes, its slot is free.
        let gone = HashMap::from([(
            user(3),
            Usage {
                pages: -3,
                inodes: -1,
            },
        )]);
        assert_eq!(
            back.pages_to_write(1),
            (1, 1),
            "inline pointers: no map node"
        );
        back.apply(&gone);
        assert_eq!(back.get(user(3)), None);
        assert_eq!(back.records().count(), 39);
    }
}
