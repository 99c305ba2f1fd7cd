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
}

impl DirtyPages {
    /// Dirty pages in all files.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Dirty pages of `ino` that were holes: pages the file will gain.
    pub fn fresh(&self, ino: Ino) -> u64 {
        self.fresh.get(&ino).copied().unwrap_or(0)
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
            None => self.count += 1,
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
        gone
    }

    /// Takes the dirty pages of `ino`, in page order.
    pub fn take(&mut self, ino: Ino) -> BTreeMap<u64, Box<Page>> {
        let pages = self.files.remove(&ino).unwrap_or_default();
        self.count -= pages.len();
        self.fresh.remove(&ino);
        pages.into_iter().map(|(i, d)| (i, d.page)).collect()
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
    }
}
