//! Dirty file pages waiting for writeback. They have no disk address yet:
//! the allocator gives them one, in file order, when they are written back
//! (delayed allocation).

use std::collections::{BTreeMap, HashMap};

use crate::ids::Ino;
use crate::layout::Page;

/// Dirty pages by inode and page index.
#[derive(Debug, Default)]
pub struct DirtyPages {
    files: HashMap<Ino, BTreeMap<u64, Box<Page>>>,
    count: usize,
}

impl DirtyPages {
    /// Dirty pages in all files.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The dirty page `idx` of `ino`.
    pub fn get(&self, ino: Ino, idx: u64) -> Option<&Page> {
        self.files.get(&ino)?.get(&idx).map(|p| &**p)
    }

    /// Is page `idx` of `ino` dirty?
    pub fn contains(&self, ino: Ino, idx: u64) -> bool {
        self.files.get(&ino).is_some_and(|m| m.contains_key(&idx))
    }

    /// The dirty page `idx` of `ino`, for writing.
    pub fn get_mut(&mut self, ino: Ino, idx: u64) -> Option<&mut Page> {
        self.files.get_mut(&ino)?.get_mut(&idx).map(|p| &mut **p)
    }

    /// Makes `page` the dirty page `idx` of `ino`.
    pub fn insert(&mut self, ino: Ino, idx: u64, page: Box<Page>) {
        if self
            .files
            .entry(ino)
            .or_default()
            .insert(idx, page)
            .is_none()
        {
            self.count += 1;
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
        for i in &gone {
            m.remove(i);
        }
        self.count -= gone.len();
        if m.is_empty() {
            self.files.remove(&ino);
        }
        gone
    }

    /// Takes every dirty page, inodes and pages in ascending order.
    pub fn take_all(&mut self) -> Vec<(Ino, BTreeMap<u64, Box<Page>>)> {
        let mut all: Vec<_> = self.files.drain().collect();
        all.sort_unstable_by_key(|(ino, _)| *ino);
        self.count = 0;
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Nid;
    use crate::layout::zero_page;

    #[test]
    fn counts_and_ranges() {
        let mut d = DirtyPages::default();
        d.insert(Nid(5), 3, zero_page());
        d.insert(Nid(5), 1, zero_page());
        d.insert(Nid(5), 1, zero_page());
        d.insert(Nid(4), 9, zero_page());
        assert_eq!(d.count(), 3);
        assert_eq!(d.next_dirty(Nid(5), 2), Some(3));
        assert_eq!(d.remove_range(Nid(5), 2, 10), vec![3]);
        assert_eq!(d.count(), 2);
        let all = d.take_all();
        assert_eq!(
            all.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![Nid(4), Nid(5)]
        );
        assert_eq!(d.count(), 0);
    }
}
