//! The directory index: a B+tree of nodes keyed by a seeded 64-bit hash of
//! the name, so lookup, create and unlink stay logarithmic at any size.
//!
//! A key is the name's hash with the low 8 bits cleared (its *base*) plus a
//! collision counter in those bits. All entries sharing a base live in one
//! leaf, and separators between nodes are bases, so a lookup reads one leaf.
//! Keys double as readdir offsets: they never move while the entry exists.

use rustc_hash::FxHashSet;

use crate::device::BlockDevice;
use crate::dir_node::{DirEntry, DirInternal, DirLeaf, Name, MAX_CHILDREN, SPACE};
use crate::error::{Error, Result};
use crate::ids::{Ino, Nid, PageAddr};
use crate::node::NodeBody;
use crate::node_cache::NodeCache;
use crate::page_life::PageLife;

/// Readdir offsets 1 and 2 are "." and ".."; real keys start here.
pub const FIRST_KEY: u64 = 0x100;
/// Deepest index a directory can have (253^8 leaves is beyond any disk).
/// Most levels above the leaves a directory index may have.
pub const MAX_LEVEL: u8 = 8;

/// What a lookup needs of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntryRef {
    /// The inode named.
    pub ino: Ino,
    /// Its `DT_*` type.
    pub dtype: u8,
}

/// The base key of `name` in a directory hashed with `seed`.
pub fn base_key(name: &[u8], seed: u64) -> u64 {
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(name, seed);
    ((h >> 1) & !0xFF).max(FIRST_KEY)
}

fn base_of(key: u64) -> u64 {
    key & !0xFF
}

fn bad(nid: Nid, what: &str) -> Error {
    Error::corrupt(
        format!("directory index node {nid}"),
        PageAddr::NONE,
        what.to_string(),
    )
}

fn root_of(cache: &mut NodeCache, dev: &dyn BlockDevice, dir: Ino) -> Result<Nid> {
    Ok(cache.inode(dev, dir)?.dir_root)
}

/// Descends to the leaf for `key`, returning the path of (interior node,
/// child index) pairs and the leaf.
fn descend(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    root: Nid,
    key: u64,
) -> Result<(Vec<(Nid, usize)>, Nid)> {
    let mut path = Vec::new();
    let mut nid = root;
    loop {
        if path.len() > usize::from(MAX_LEVEL) {
            return Err(bad(nid, "index deeper than possible (a cycle?)"));
        }
        match &cache.get(dev, nid)?.body {
            NodeBody::DirLeaf(_) => return Ok((path, nid)),
            NodeBody::DirInternal(int) => {
                let i = int.child_for(key);
                path.push((nid, i));
                nid = int.children[i].1;
            }
            _ => return Err(bad(nid, "not a directory index node")),
        }
    }
}

fn leaf<'a>(cache: &'a mut NodeCache, dev: &dyn BlockDevice, nid: Nid) -> Result<&'a DirLeaf> {
    match &cache.get(dev, nid)?.body {
        NodeBody::DirLeaf(l) => Ok(l),
        _ => Err(bad(nid, "expected a leaf")),
    }
}

fn leaf_mut<'a>(
    cache: &'a mut NodeCache,
    dev: &dyn BlockDevice,
    nid: Nid,
) -> Result<&'a mut DirLeaf> {
    match &mut cache.get_mut(dev, nid)?.body {
        NodeBody::DirLeaf(l) => Ok(l),
        _ => Err(bad(nid, "expected a leaf")),
    }
}

fn internal_mut<'a>(
    cache: &'a mut NodeCache,
    dev: &dyn BlockDevice,
    nid: Nid,
) -> Result<&'a mut DirInternal> {
    match &mut cache.get_mut(dev, nid)?.body {
        NodeBody::DirInternal(i) => Ok(i),
        _ => Err(bad(nid, "expected an interior node")),
    }
}

/// The entry named `name` in directory `dir`.
pub fn lookup(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    dir: Ino,
    name: &[u8],
    seed: u64,
) -> Result<Option<DirEntry>> {
    let root = root_of(cache, dev, dir)?;
    if root.is_none() {
        return Ok(None);
    }
    let base = base_key(name, seed);
    let (_, leaf_nid) = descend(cache, dev, root, base)?;
    Ok(leaf(cache, dev, leaf_nid)?
        .entries
        .iter()
        .find(|e| base_of(e.key) == base && e.name[..] == *name)
        .cloned())
}

/// Adds `name` -> `ino` (the caller has checked it is absent). Returns the
/// entry's key.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    dir: Ino,
    name: &[u8],
    ino: Ino,
    dtype: u8,
    seed: u64,
) -> Result<u64> {
    let mut root = root_of(cache, dev, dir)?;
    if root.is_none() {
        root = cache.create(dev, dir, 0, NodeBody::DirLeaf(Box::default()))?;
        cache.inode_mut(dev, dir)?.dir_root = root;
        cache.add_blocks(dev, dir, 1)?;
    }
    let base = base_key(name, seed);
    let (path, leaf_nid) = descend(cache, dev, root, base)?;
    let l = leaf_mut(cache, dev, leaf_nid)?;
    let used: Vec<u64> = l
        .entries
        .iter()
        .filter(|e| base_of(e.key) == base)
        .map(|e| e.key & 0xFF)
        .collect();
    let idx = (0..=0xFFu64)
        .find(|i| !used.contains(i))
        .ok_or(Error::NoSpace)?;
    let key = base | idx;
    let pos = l.entries.partition_point(|e| e.key < key);
    l.entries.insert(
        pos,
        DirEntry {
            key,
            ino,
            dtype,
            name: Name::from_slice(name),
        },
    );
    let overfull = l.used() > SPACE;
    cache.inode_mut(dev, dir)?.dir_entries += 1;
    if overfull {
        split_leaf(cache, dev, dir, path, leaf_nid)?;
    }
    Ok(key)
}

/// Splits an overfull leaf at a base boundary near its middle and pushes
/// the separator up, splitting interior nodes as needed.
fn split_leaf(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    dir: Ino,
    path: Vec<(Nid, usize)>,
    leaf_nid: Nid,
) -> Result<()> {
    let l = leaf_mut(cache, dev, leaf_nid)?;
    let total = l.used();
    let mut acc = 0;
    let mut mid = 0;
    for (i, e) in l.entries.iter().enumerate() {
        if acc >= total / 2 {
            mid = i;
            break;
        }
        acc += e.encoded_len();
    }
    // Move the cut to a base boundary (search both ways from the middle).
    let boundary = |i: usize, es: &[DirEntry]| {
        i > 0 && i < es.len() && base_of(es[i - 1].key) != base_of(es[i].key)
    };
    let cut = (0..l.entries.len())
        .flat_map(|d| [mid.checked_add(d), mid.checked_sub(d)])
        .flatten()
        .find(|&i| boundary(i, &l.entries))
        .ok_or(Error::NoSpace)?;
    let right = l.entries.split_off(cut);
    let sep = base_of(right[0].key);
    let new_leaf = cache.create(
        dev,
        dir,
        0,
        NodeBody::DirLeaf(Box::new(DirLeaf { entries: right })),
    )?;
    cache.add_blocks(dev, dir, 1)?;
    push_up(cache, dev, dir, path, sep, new_leaf, 0)
}

/// Inserts (`sep`, `child`) after the path's last child; splits upward.
fn push_up(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    dir: Ino,
    mut path: Vec<(Nid, usize)>,
    sep: u64,
    child: Nid,
    child_level: u8,
) -> Result<()> {
    let Some((parent, idx)) = path.pop() else {
        // The root split: grow a new root above both halves.
        if child_level + 1 > MAX_LEVEL {
            return Err(Error::NoSpace);
        }
        let old_root = root_of(cache, dev, dir)?;
        let int = DirInternal {
            children: vec![(0, old_root), (sep, child)],
        };
        let new_root = cache.create(
            dev,
            dir,
            child_level + 1,
            NodeBody::DirInternal(Box::new(int)),
        )?;
        cache.inode_mut(dev, dir)?.dir_root = new_root;
        cache.add_blocks(dev, dir, 1)?;
        return Ok(());
    };
    let int = internal_mut(cache, dev, parent)?;
    int.children.insert(idx + 1, (sep, child));
    if int.children.len() <= MAX_CHILDREN {
        return Ok(());
    }
    let half = int.children.len() / 2;
    let right = int.children.split_off(half);
    let right_sep = right[0].0;
    let level = child_level + 1;
    let new_node = cache.create(
        dev,
        dir,
        level,
        NodeBody::DirInternal(Box::new(DirInternal { children: right })),
    )?;
    cache.add_blocks(dev, dir, 1)?;
    push_up(cache, dev, dir, path, right_sep, new_node, level)
}

/// Removes `name` from `dir`, freeing index nodes left empty.
pub fn remove(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    life: &mut PageLife<'_>,
    dir: Ino,
    name: &[u8],
    seed: u64,
) -> Result<DirEntry> {
    let root = root_of(cache, dev, dir)?;
    if root.is_none() {
        return Err(Error::NotFound);
    }
    let base = base_key(name, seed);
    let (mut path, leaf_nid) = descend(cache, dev, root, base)?;
    let l = leaf_mut(cache, dev, leaf_nid)?;
    let pos = l
        .entries
        .iter()
        .position(|e| base_of(e.key) == base && e.name[..] == *name)
        .ok_or(Error::NotFound)?;
    let removed = l.entries.remove(pos);
    let now_empty = l.entries.is_empty();
    {
        let inode = cache.inode_mut(dev, dir)?;
        inode.dir_entries = inode.dir_entries.saturating_sub(1);
    }
    if now_empty {
        let mut gone = leaf_nid;
        // Free empty nodes bottom-up.
        loop {
            cache.remove(dev, life, gone)?;
            cache.add_blocks(dev, dir, -1)?;
            let Some((parent, idx)) = path.pop() else {
                cache.inode_mut(dev, dir)?.dir_root = Nid::NONE;
                break;
            };
            let int = internal_mut(cache, dev, parent)?;
            let (lower, _) = int.children.remove(idx);
            if idx == 0 {
                if let Some(first) = int.children.first_mut() {
                    first.0 = lower;
                }
            }
            if !int.children.is_empty() {
                break;
            }
            gone = parent;
        }
        collapse_root(cache, dev, life, dir)?;
    }
    Ok(removed)
}

/// While the root is an interior node with one child, makes the child the root.
fn collapse_root(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    life: &mut PageLife<'_>,
    dir: Ino,
) -> Result<()> {
    loop {
        let root = root_of(cache, dev, dir)?;
        if root.is_none() {
            return Ok(());
        }
        let only = match &cache.get(dev, root)?.body {
            NodeBody::DirInternal(int) if int.children.len() == 1 => int.children[0].1,
            _ => return Ok(()),
        };
        cache.remove(dev, life, root)?;
        cache.inode_mut(dev, dir)?.dir_root = only;
        cache.add_blocks(dev, dir, -1)?;
    }
}

/// Points the existing entry `name` at `ino` (rename over an existing name).
pub fn retarget(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    dir: Ino,
    name: &[u8],
    ino: Ino,
    dtype: u8,
    seed: u64,
) -> Result<()> {
    let root = root_of(cache, dev, dir)?;
    if root.is_none() {
        return Err(Error::NotFound);
    }
    let base = base_key(name, seed);
    let (_, leaf_nid) = descend(cache, dev, root, base)?;
    let l = leaf_mut(cache, dev, leaf_nid)?;
    let e = l
        .entries
        .iter_mut()
        .find(|e| base_of(e.key) == base && e.name[..] == *name)
        .ok_or(Error::NotFound)?;
    e.ino = ino;
    e.dtype = dtype;
    Ok(())
}

/// Calls `f` on every entry with a key above `after`, in key order, until
/// `f` returns false.
pub fn for_each_after(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    dir: Ino,
    after: u64,
    f: &mut dyn FnMut(&DirEntry) -> bool,
) -> Result<()> {
    let root = root_of(cache, dev, dir)?;
    if root.is_none() {
        return Ok(());
    }
    let mut seen = FxHashSet::default();
    visit(cache, dev, root, after, 0, &mut seen, f).map(|_| ())
}

/// Fails on a node reached a second time: an index is a tree, and one
/// whose interior nodes share children (a damaged one) would otherwise
/// be walked once per path, exponentially in its depth.
fn first_visit(seen: &mut FxHashSet<Nid>, nid: Nid) -> Result<()> {
    if seen.insert(nid) {
        Ok(())
    } else {
        Err(bad(nid, "node reached twice (the index is not a tree)"))
    }
}

/// Returns false once `f` asked to stop.
fn visit(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    nid: Nid,
    after: u64,
    depth: u8,
    seen: &mut FxHashSet<Nid>,
    f: &mut dyn FnMut(&DirEntry) -> bool,
) -> Result<bool> {
    if depth > MAX_LEVEL {
        return Err(bad(nid, "index deeper than possible (a cycle?)"));
    }
    first_visit(seen, nid)?;
    let children = match &cache.get(dev, nid)?.body {
        NodeBody::DirLeaf(l) => {
            for e in l.entries.iter().filter(|e| e.key > after) {
                if !f(e) {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        NodeBody::DirInternal(int) => {
            let start = int.child_for(after.saturating_add(1));
            int.children[start..]
                .iter()
                .map(|(_, c)| *c)
                .collect::<Vec<_>>()
        }
        _ => return Err(bad(nid, "not a directory index node")),
    };
    for c in children {
        if !visit(cache, dev, c, after, depth + 1, seen, f)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every index node of `dir` (for checkers).
pub fn nodes(cache: &mut NodeCache, dev: &dyn BlockDevice, dir: Ino) -> Result<Vec<Nid>> {
    let mut out = Vec::new();
    let root = root_of(cache, dev, dir)?;
    if root.is_none() {
        return Ok(out);
    }
    let mut stack = vec![(root, 0u8)];
    let mut seen = FxHashSet::default();
    while let Some((nid, depth)) = stack.pop() {
        if depth > MAX_LEVEL {
            return Err(bad(nid, "index deeper than possible (a cycle?)"));
        }
        first_visit(&mut seen, nid)?;
        out.push(nid);
        if let NodeBody::DirInternal(int) = &cache.get(dev, nid)?.body {
            stack.extend(int.children.iter().map(|(_, c)| (*c, depth + 1)));
        }
    }
    Ok(out)
}
