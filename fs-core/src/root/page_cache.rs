//! Dirty file pages waiting for writeback. They have no disk address yet:
//! the allocator gives them one, in file order, when they are written back
//! (delayed allocation).

use std::collections::{BTreeMap, HashMap};

use crate::ids::Ino;
use crate::layout::Page;

/// A dirty page, and whether it was a hole when it was dirtied (so it will
/// add a page to the file when written).
#[derive(Debug)]
struct Dirty {
    page: Box<Page>,
    over_hole: bool,
}

/// Dirty pages by inode and page index.
#[derive(Debug, Default)]
pub struct DirtyPages {
    files: HashMap<Ino, BTreeMap<u64, Dirty>>,
    fresh: HashMap<Ino, u64>,
    count: usize,
    /// Dirty pages per direct map node (inode, node number): writing them
    /// back changes exactly these direct nodes, which bounds the map nodes
    /// a commit may have to write (see `room.rs`).
    groups: HashMap<(Ino, u64), u32>,
}

/// The direct map node that holds page `idx`'s pointer, numbered in file
/// order: every direct node covers 254 consecutive pages from page 5 on
/// (pages 0 to 4 are pointed at from the inode itself: `None`).
pub fn direct_group(idx: u64) -> Option<u64> {
    let inline = crate::inode::INLINE_PTRS as u64;
    let per = crate::index_node::PTRS_PER_DIRECT as u64;
    idx.checked_sub(inline).map(|i| i / per)
}

impl DirtyPages {
    /// Dirty pages in all files.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Inodes with dirty pages.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Direct map nodes that hold the pointers of dirty pages.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    fn group_add(&mut self, ino: Ino, idx: u64) {
        if let Some(g) = direct_group(idx) {
            *self.groups.entry((ino, g)).or_default() += 1;
        }
    }

    fn group_remove(&mut self, ino: Ino, idx: u64) {
        let Some(g) = direct_group(idx) else { return };
        if let std::collections::hash_map::Entry::Occupied(mut e) = self.groups.entry((ino, g)) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Dirty pages of `ino` that were holes: pages the file will gain.
    pub fn fresh(&self, ino: Ino) -> u64 {
        self.fresh.get(&ino).copied().unwrap_or(0)
    }

    /// The inodes with fresh pages, and how many each has.
    pub fn fresh_files(&self) -> impl Iterator<Item = (Ino, u64)> + '_ {
        self.fresh.iter().map(|(i, n)| (*i, *n))
    }

    /// The dirty page `idx` of `ino`.
    pub fn get(&self, ino: Ino, idx: u64) -> Option<&Page> {
        self.files.get(&ino)?.get(&idx).map(|d| &*d.page)
    }

    /// Is page `idx` of `ino` dirty?
    pub fn contains(&self, ino: Ino, idx: u64) -> bool {
        self.files.get(&ino).is_some_and(|m| m.contains_key(&idx))
    }

    /// The dirty page `idx` of `ino`, for writing.
    pub fn get_mut(&mut self, ino: Ino, idx: u64) -> Option<&mut Page> {
        self.files
            .get_mut(&ino)?
            .get_mut(&idx)
            .map(|d| &mut *d.page)
    }

    /// Makes `page` the dirty page `idx` of `ino` (`over_hole`: the file
    /// has no page there yet).
    pub fn insert(&mut self, ino: Ino, idx: u64, page: Box<Page>, over_hole: bool) {
        match self
            .files
            .entry(ino)
            .or_default()
            .insert(idx, Dirty { page, over_hole })
        {
            Some(old) if old.over_hole => self.unfresh(ino, 1),
            Some(_) => {}
            None => {
                self.count += 1;
                self.group_add(ino, idx);
            }
        }
        if over_hole {
            *self.fresh.entry(ino).or_default() += 1;
        }
    }

    fn unfresh(&mut self, ino: Ino, n: u64) {
        if let Some(f) = self.fresh.get_mut(&ino) {
            *f = f.saturating_sub(n);
            if *f == 0 {
                self.fresh.remove(&ino);
            }
        }
    }

    /// The first dirty page index of `ino` at or after `from`.
    pub fn next_dirty(&self, ino: Ino, from: u64) -> Option<u64> {
        self.files.get(&ino)?.range(from..).next().map(|(i, _)| *i)
    }

    /// Drops dirty pages of `ino` in `start..end`; returns their indexes.
    pub fn remove_range(&mut self, ino: Ino, start: u64, end: u64) -> Vec<u64> {
        let Some(m) = self.files.get_mut(&ino) else {
            return Vec::new();
        };
        let gone: Vec<u64> = m.range(start..end).map(|(i, _)| *i).collect();
        let mut fresh = 0;
        for i in &gone {
            if m.remove(i).is_some_and(|d| d.over_hole) {
                fresh += 1;
            }
        }
        if m.is_empty() {
            self.files.remove(&ino);
        }
        self.count -= gone.len();
        self.unfresh(ino, fresh);
        for &i in &gone {
            self.group_remove(ino, i);
        }
        gone
    }

    /// Takes the dirty pages of `ino`, in page order.
    pub fn take(&mut self, ino: Ino) -> BTreeMap<u64, Box<Page>> {
        let pages = self.files.remove(&ino).unwrap_or_default();
        self.count -= pages.len();
        self.fresh.remove(&ino);
        for &i in pages.keys() {
            self.group_remove(ino, i);
        }
        pages.into_iter().map(|(i, d)| (i, d.page)).collect()
    }

    /// Takes up to `max` dirty pages, inodes and pages in ascending order
    /// (of the last file taken, its first dirty pages): what one step of
    /// a writeback in steps writes. A file is cut at a multiple of `align`
    /// pages (the compressed cluster), so that a cluster's dirty pages go
    /// out together, unless the budget left ends before the first such
    /// point past the file's first dirty page (a split cluster is written
    /// twice, which is legal, only costlier).
    pub fn take_first(&mut self, max: usize, align: u64) -> Vec<(Ino, BTreeMap<u64, Box<Page>>)> {
        let mut inos: Vec<Ino> = self.files.keys().copied().collect();
        inos.sort_unstable();
        let mut out = Vec::new();
        let mut left = max;
        for ino in inos {
            if left == 0 {
                break;
            }
            let pages = &self.files[&ino];
            let Some(&cut) = pages.keys().nth(left) else {
                left -= pages.len();
                out.push((ino, self.take(ino)));
                continue;
            };
            let first = *pages
                .keys()
                .next()
                .expect("a file with dirty pages has some");
            let aligned = cut / align.max(1) * align.max(1);
            let cut = if aligned > first { aligned } else { cut };
            out.push((ino, self.take_below(ino, cut)));
            break;
        }
        out
    }

    /// Takes the dirty pages of `ino` below page `end`.
    fn take_below(&mut self, ino: Ino, end: u64) -> BTreeMap<u64, Box<Page>> {
        let Some(m) = self.files.get_mut(&ino) else {
            return BTreeMap::new();
        };
        let rest = m.split_off(&end);
        let head = std::mem::replace(m, rest);
        if m.is_empty() {
            self.files.remove(&ino);
        }
        self.count -= head.len();
        let fresh = head.values().filter(|d| d.over_hole).count() as u64;
        self.unfresh(ino, fresh);
        for &i in head.keys() {
            self.group_remove(ino, i);
        }
        head.into_iter().map(|(i, d)| (i, d.page)).collect()
    }

    /// Takes every dirty page, inodes and pages in ascending order.
    pub fn take_all(&mut self) -> Vec<(Ino, BTreeMap<u64, Box<Page>>)> {
        let mut inos: Vec<Ino> = self.files.keys().copied().collect();
        inos.sort_unstable();
        inos.into_iter().map(|ino| (ino, self.take(ino))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::zero_page;

    #[test]
    fn counts_and_ranges() {
        let mut d = DirtyPages::default();
        d.insert(Ino(5), 3, zero_page(), true);
        d.insert(Ino(5), 1, zero_page(), false);
        d.insert(Ino(5), 1, zero_page(), false);
        d.insert(Ino(4), 9, zero_page(), true);
        assert_eq!(d.count(), 3);
        assert_eq!((d.fresh(Ino(5)), d.fresh(Ino(4))), (1, 1));
        assert_eq!(d.next_dirty(Ino(5), 2), Some(3));
        assert_eq!(d.remove_range(Ino(5), 2, 10), vec![3]);
        assert_eq!((d.count(), d.fresh(Ino(5))), (2, 0));
        let all = d.take_all();
        assert_eq!(
            all.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![Ino(4), Ino(5)]
        );
        assert_eq!((d.count(), d.fresh(Ino(4))), (0, 0));
        assert_eq!((d.files(), d.groups()), (0, 0));
    }

    #[test]
    fn steps_take_whole_files_then_an_aligned_cut() {
        let mut d = DirtyPages::default();
        for i in 0..600 {
            d.insert(Ino(7), i, zero_page(), i % 2 == 0);
        }
        d.insert(Ino(6), 0, zero_page(), true);
        let step = d.take_first(400, 256);
        assert_eq!(step.len(), 2);
        assert_eq!((step[0].0, step[0].1.len()), (Ino(6), 1));
        assert_eq!((step[1].0, step[1].1.len()), (Ino(7), 256));
        assert_eq!((d.count(), d.fresh(Ino(7)), d.fresh(Ino(6))), (344, 172, 0));
        assert_eq!(d.next_dirty(Ino(7), 0), Some(256));
        let rest = d.take_first(1000, 256);
        assert_eq!(
            (rest.len(), rest[0].1.len(), d.count(), d.groups()),
            (1, 344, 0, 0)
        );
        // A file whose first dirty pages alone pass the step is cut there.
        for i in 10..20 {
            d.insert(Ino(8), i, zero_page(), false);
        }
        assert_eq!(d.take_first(4, 256)[0].1.len(), 4);
        assert_eq!(d.count(), 6);
        assert_eq!(d.take_all()[0].1.len(), 6);
    }

    #[test]
    fn groups_count_direct_nodes() {
        let mut d = DirtyPages::default();
        for idx in [0, 4, 5, 258, 259, 1000] {
            d.insert(Ino(7), idx, zero_page(), true);
        }
        d.insert(Ino(8), 5, zero_page(), true);
        // Pages 5 and 258 share the first direct node; 259 starts the next.
        assert_eq!(d.groups(), 4);
        assert_eq!(d.files(), 2);
        d.remove_range(Ino(7), 259, 260);
        assert_eq!(d.groups(), 3, "page 259 was alone in its node");
        d.remove_range(Ino(7), 258, 259);
        assert_eq!(d.groups(), 3, "page 5 still holds the first node");
        d.take(Ino(8));
        assert_eq!((d.groups(), d.files()), (2, 1));
    }
}
