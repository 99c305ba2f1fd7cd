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

    /// Adds the ledger's changes to the records, starting or ending grace
    /// times (at `now`) where usage crossed a soft limit, counting the
    /// `fresh` pages by id that the commit leaves dirty (a metadata-only
    /// commit or an fsync's); a record left with nothing used and no limit
    /// gives its slot back.
    pub fn apply(
        &mut self,
        deltas: &HashMap<QuotaId, Usage>,
        fresh: &HashMap<QuotaId, i64>,
        now: i64,
    ) {
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
                continue;
            }
            let pending = fresh.get(id).copied().unwrap_or(0);
            let used = Usage {
                pages: as_count(r.pages).saturating_add(pending),
                inodes: as_count(r.inodes),
            };
            self.track_grace(*id, used, now);
        }
    }

    /// Starts the grace time of `id` for each count `used` takes past its
    /// soft limit (if not started), and ends it for each back within.
    pub fn track_grace(&mut self, id: QuotaId, used: Usage, now: i64) {
        let Some(r) = self.get(id) else {
            return;
        };
        let grace = self.header.grace[id.kind as usize - 1];
        let page_end = grace_end(r.page_soft, r.page_grace_end, used.pages, now, grace.0);
        let inode_end = grace_end(r.inode_soft, r.inode_grace_end, used.inodes, now, grace.1);
        if (page_end, inode_end) != (r.page_grace_end, r.inode_grace_end) {
            let r = self.record_mut(id);
            r.page_grace_end = page_end;
            r.inode_grace_end = inode_end;
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

/// How much more `r` lets its id add, using `used` at `now` (seconds):
/// up to the hard limit, and up to the soft limit once its grace time is
/// over; `i64::MAX` where no limit applies, negative when already over.
pub fn room(r: &Record, used: Usage, now: i64) -> Usage {
    Usage {
        pages: room_in(r.page_soft, r.page_hard, r.page_grace_end, used.pages, now),
        inodes: room_in(
            r.inode_soft,
            r.inode_hard,
            r.inode_grace_end,
            used.inodes,
            now,
        ),
    }
}

fn room_in(soft: u64, hard: u64, grace_end: i64, used: i64, now: i64) -> i64 {
    let mut room = i64::MAX;
    if hard != 0 {
        room = room.min(as_count(hard).saturating_sub(used));
    }
    // A grace end left from before usage fell back within the soft limit
    // (cleared only at the next commit) does not hold: passing the limit
    // again starts a new grace time.
    let over_soft = soft != 0 && used > as_count(soft);
    if over_soft && grace_end != 0 && now >= grace_end {
        room = room.min(as_count(soft).saturating_sub(used));
    }
    room
}

/// A limit or count as a signed count (limits are at most `i64::MAX`;
/// a larger one read from an image counts as that).
pub fn as_count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A count's grace end once it is `used`: unchanged while over the soft
/// limit (started now, `grace` long, if it was not), 0 when within.
fn grace_end(soft: u64, end: i64, used: i64, now: i64, grace: u64) -> i64 {
    match soft != 0 && used > as_count(soft) {
        false => 0,
        true if end != 0 => end,
        true => now.saturating_add(as_count(grace)),
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
        t.apply(&deltas, &HashMap::new(), 0);
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
        back.apply(&gone, &HashMap::new(), 0);
        assert_eq!(back.get(user(3)), None);
        assert_eq!(back.records().count(), 39);
    }

    #[test]
    fn room_is_up_to_the_hard_limit_and_the_soft_one_after_grace() {
        let used = |pages, inodes| Usage { pages, inodes };
        let r = Record {
            page_soft: 10,
            page_hard: 20,
            inode_hard: 3,
            ..Record::default()
        };
        assert_eq!(room(&r, used(12, 1), 100), used(8, 2), "grace not started");
        let over = Record {
            page_grace_end: 150,
            ..r
        };
        assert_eq!(room(&over, used(12, 3), 149).pages, 8, "in grace");
        assert_eq!(room(&over, used(12, 3), 150).pages, -2, "grace over");
        assert_eq!(room(&over, used(12, 3), 150).inodes, 0);
        assert_eq!(
            room(&Record::default(), used(5, 5), 0),
            used(i64::MAX, i64::MAX)
        );

        let mut t = QuotaTable::new();
        t.header.grace[0] = (60, 0);
        *t.record_mut(user(1)) = r;
        t.track_grace(user(1), used(11, 0), 1000);
        assert_eq!(t.get(user(1)).map(|r| r.page_grace_end), Some(1060));
        t.track_grace(user(1), used(15, 0), 2000);
        assert_eq!(t.get(user(1)).map(|r| r.page_grace_end), Some(1060), "kept");
        t.track_grace(user(1), used(10, 0), 3000);
        assert_eq!(
            t.get(user(1)).map(|r| r.page_grace_end),
            Some(0),
            "back within"
        );
    }
}
