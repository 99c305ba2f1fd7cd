//! The file map: logical page index -> block pointer, through the inode's
//! own pointers, then direct, indirect, double and triple indirect nodes.
//!
//! | pages from | held by                                |
//! |------------|----------------------------------------|
//! | 0          | 5 pointers in the inode                |
//! | 5          | direct node (map slot 0), 254 pages    |
//! | 259        | indirect node (slot 1), 508 x 254      |
//! | 129,291    | double indirect (slot 2), 508² x 254   |
//! | ...        | triple indirect (slot 3): about 124 TiB in all |
//!
//! Missing nodes are holes; nodes that become empty are freed.

use crate::block_ptr::BlockPtr;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{Ino, Nid, PageAddr};
use crate::index_node::{IndirectNode, NIDS_PER_INDIRECT, PTRS_PER_DIRECT};
use crate::inode::INLINE_PTRS;
use crate::node::NodeBody;
use crate::node_cache::NodeCache;
use crate::page_life::PageLife;

const D: u64 = PTRS_PER_DIRECT as u64;
const I: u64 = NIDS_PER_INDIRECT as u64;

/// Pages covered by a node at `level` (0 = direct).
pub fn span(level: u8) -> u64 {
    D.saturating_mul(I.saturating_pow(u32::from(level)))
}

/// The level of the node in each map slot of the inode.
pub const SLOT_LEVELS: [u8; crate::inode::MAP_NIDS] = [0, 1, 2, 3];

/// First page index of map slot `slot`.
pub fn slot_base(slot: usize) -> u64 {
    let mut base = INLINE_PTRS as u64;
    for &lvl in SLOT_LEVELS.iter().take(slot) {
        base += span(lvl);
    }
    base
}

/// One past the largest page index a file map can hold.
pub fn max_pages() -> u64 {
    slot_base(SLOT_LEVELS.len())
}

/// Where page `idx` lives: `None` for the inode's own pointers, else
/// (map slot, page index relative to the slot's subtree).
fn locate(idx: u64) -> Result<Option<(usize, u64)>> {
    if idx < INLINE_PTRS as u64 {
        return Ok(None);
    }
    for (slot, &level) in SLOT_LEVELS.iter().enumerate() {
        let base = slot_base(slot);
        if idx < base + span(level) {
            return Ok(Some((slot, idx - base)));
        }
    }
    Err(Error::FileTooBig)
}

fn not_a(nid: Nid, what: &str) -> Error {
    Error::corrupt(
        format!("node {nid}"),
        PageAddr::NONE,
        format!("file map expected {what}"),
    )
}

/// The pointer of page `idx` of inode `ino`.
pub fn get(cache: &mut NodeCache, dev: &dyn BlockDevice, ino: Ino, idx: u64) -> Result<BlockPtr> {
    let inode = cache.inode(dev, ino)?;
    let Some((slot, mut rel)) = locate(idx)? else {
        return Ok(inode
            .ptrs
            .get(idx as usize)
            .copied()
            .unwrap_or(BlockPtr::HOLE));
    };
    let mut nid = inode.map_nids[slot];
    let mut level = SLOT_LEVELS[slot];
    loop {
        if nid.is_none() {
            return Ok(BlockPtr::HOLE);
        }
        match (&cache.get(dev, nid)?.body, level) {
            (NodeBody::Direct(d), 0) => return Ok(d.get(rel as usize)),
            (NodeBody::Indirect(ind), l) if l > 0 => {
                let child = rel / span(l - 1);
                rel %= span(l - 1);
                nid = ind.get(child as usize);
                level -= 1;
            }
            _ => return Err(not_a(nid, "a node of the right level")),
        }
    }
}

/// Sets the pointer of page `idx`, creating nodes on the way (unless
/// setting a hole) and freeing nodes left empty. Returns the old pointer.
pub fn set(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    life: &mut PageLife<'_>,
    ino: Ino,
    idx: u64,
    ptr: BlockPtr,
) -> Result<BlockPtr> {
    let Some((slot, rel)) = locate(idx)? else {
        let inode = cache.inode_mut(dev, ino)?;
        let i = idx as usize;
        if i >= inode.ptrs.len() {
            if ptr.is_hole() {
                return Ok(BlockPtr::HOLE);
            }
            inode.ptrs.resize(i + 1, BlockPtr::HOLE);
        }
        let old = std::mem::replace(&mut inode.ptrs[i], ptr);
        while inode.ptrs.last().is_some_and(BlockPtr::is_hole) {
            inode.ptrs.pop();
        }
        return Ok(old);
    };
    let top = cache.inode(dev, ino)?.map_nids[slot];
    let level = SLOT_LEVELS[slot];
    if top.is_none() && ptr.is_hole() {
        return Ok(BlockPtr::HOLE);
    }
    let top = match top {
        t if t.is_none() => {
            let nid = new_map_node(cache, dev, ino, level)?;
            cache.inode_mut(dev, ino)?.map_nids[slot] = nid;
            nid
        }
        t => t,
    };
    let (old, empty) = set_in(cache, dev, life, ino, top, level, rel, ptr)?;
    if empty {
        cache.remove(dev, life, top)?;
        cache.inode_mut(dev, ino)?.map_nids[slot] = Nid::NONE;
    }
    Ok(old)
}

fn new_map_node(cache: &mut NodeCache, dev: &dyn BlockDevice, ino: Ino, level: u8) -> Result<Nid> {
    let body = if level == 0 {
        NodeBody::Direct(Box::default())
    } else {
        NodeBody::Indirect(Box::default())
    };
    cache.create(dev, ino, level, body)
}

/// Sets `rel` under node `nid`; returns the old pointer and whether the
/// node is now empty (the caller frees it).
#[allow(clippy::too_many_arguments)]
fn set_in(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    life: &mut PageLife<'_>,
    ino: Ino,
    nid: Nid,
    level: u8,
    rel: u64,
    ptr: BlockPtr,
) -> Result<(BlockPtr, bool)> {
    if level == 0 {
        let NodeBody::Direct(d) = &mut cache.get_mut(dev, nid)?.body else {
            return Err(not_a(nid, "a direct node"));
        };
        let old = d.set(rel as usize, ptr);
        return Ok((old, d.is_empty()));
    }
    let child_idx = (rel / span(level - 1)) as usize;
    let child_rel = rel % span(level - 1);
    let child = match &cache.get(dev, nid)?.body {
        NodeBody::Indirect(ind) => ind.get(child_idx),
        _ => return Err(not_a(nid, "an indirect node")),
    };
    if child.is_none() && ptr.is_hole() {
        return Ok((BlockPtr::HOLE, false));
    }
    let child = if child.is_none() {
        let c = new_map_node(cache, dev, ino, level - 1)?;
        indirect_mut(cache, dev, nid)?.set(child_idx, c);
        c
    } else {
        child
    };
    let (old, child_empty) = set_in(cache, dev, life, ino, child, level - 1, child_rel, ptr)?;
    if child_empty {
        cache.remove(dev, life, child)?;
        let ind = indirect_mut(cache, dev, nid)?;
        ind.set(child_idx, Nid::NONE);
        return Ok((old, ind.is_empty()));
    }
    Ok((old, false))
}

fn indirect_mut<'a>(
    cache: &'a mut NodeCache,
    dev: &dyn BlockDevice,
    nid: Nid,
) -> Result<&'a mut IndirectNode> {
    match &mut cache.get_mut(dev, nid)?.body {
        NodeBody::Indirect(ind) => Ok(ind),
        _ => Err(not_a(nid, "an indirect node")),
    }
}

/// Removes every pointer at index `from` or later, handing each allocated
/// one to `freed`, and frees the nodes left empty.
pub fn truncate(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    life: &mut PageLife<'_>,
    ino: Ino,
    from: u64,
    freed: &mut dyn FnMut(u64, BlockPtr),
) -> Result<()> {
    {
        let inode = cache.inode(dev, ino)?;
        let keep = (from.min(INLINE_PTRS as u64)) as usize;
        if inode.ptrs.len() > keep {
            let inode = cache.inode_mut(dev, ino)?;
            for (i, p) in inode.ptrs.drain(keep..).enumerate() {
                if p.is_allocated() {
                    freed((keep + i) as u64, p);
                }
            }
        }
    }
    for (slot, &level) in SLOT_LEVELS.iter().enumerate() {
        let base = slot_base(slot);
        if base + span(level) <= from {
            continue;
        }
        let top = cache.inode(dev, ino)?.map_nids[slot];
        if top.is_none() {
            continue;
        }
        let rel_from = from.saturating_sub(base);
        if truncate_in(cache, dev, life, top, level, base, rel_from, freed)? {
            cache.remove(dev, life, top)?;
            cache.inode_mut(dev, ino)?.map_nids[slot] = Nid::NONE;
        }
    }
    Ok(())
}

/// Truncates under `nid` (covering pages from `base`); true when empty.
#[allow(clippy::too_many_arguments)]
fn truncate_in(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    life: &mut PageLife<'_>,
    nid: Nid,
    level: u8,
    base: u64,
    rel_from: u64,
    freed: &mut dyn FnMut(u64, BlockPtr),
) -> Result<bool> {
    if level == 0 {
        let NodeBody::Direct(d) = &cache.get(dev, nid)?.body else {
            return Err(not_a(nid, "a direct node"));
        };
        let keep = rel_from as usize;
        if d.ptrs.len() <= keep {
            return Ok(d.is_empty());
        }
        let NodeBody::Direct(d) = &mut cache.get_mut(dev, nid)?.body else {
            return Err(not_a(nid, "a direct node"));
        };
        for (i, p) in d.ptrs.drain(keep..).enumerate() {
            if p.is_allocated() {
                freed(base + (keep + i) as u64, p);
            }
        }
        while d.ptrs.last().is_some_and(BlockPtr::is_hole) {
            d.ptrs.pop();
        }
        return Ok(d.is_empty());
    }
    let child_span = span(level - 1);
    let children: Vec<(usize, Nid)> = match &cache.get(dev, nid)?.body {
        NodeBody::Indirect(ind) => ind
            .nids
            .iter()
            .enumerate()
            .filter(|(i, n)| !n.is_none() && (*i as u64 + 1) * child_span > rel_from)
            .map(|(i, n)| (i, *n))
            .collect(),
        _ => return Err(not_a(nid, "an indirect node")),
    };
    for (i, child) in children {
        let child_base = i as u64 * child_span;
        let child_from = rel_from.saturating_sub(child_base);
        if truncate_in(
            cache,
            dev,
            life,
            child,
            level - 1,
            base + child_base,
            child_from,
            freed,
        )? {
            cache.remove(dev, life, child)?;
            indirect_mut(cache, dev, nid)?.set(i, Nid::NONE);
        }
    }
    match &cache.get(dev, nid)?.body {
        NodeBody::Indirect(ind) => Ok(ind.is_empty()),
        _ => Err(not_a(nid, "an indirect node")),
    }
}

/// The first page index at or after `from` (and below `end`) whose pointer
/// has a stored page (`want_data`) or not (`!want_data`; unwritten pages
/// count as holes, as on ext4).
pub fn find(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    ino: Ino,
    from: u64,
    end: u64,
    want_data: bool,
) -> Result<Option<u64>> {
    let mut idx = from;
    while idx < end {
        match locate(idx)? {
            None => {
                let p = cache
                    .inode(dev, ino)?
                    .ptrs
                    .get(idx as usize)
                    .copied()
                    .unwrap_or(BlockPtr::HOLE);
                if p.is_stored() == want_data {
                    return Ok(Some(idx));
                }
                idx += 1;
            }
            Some((slot, rel)) => {
                let top = cache.inode(dev, ino)?.map_nids[slot];
                let level = SLOT_LEVELS[slot];
                let base = slot_base(slot);
                match find_in(cache, dev, top, level, base, rel, want_data)? {
                    Some(found) => return Ok((found < end).then_some(found)),
                    None => idx = base + span(level),
                }
            }
        }
    }
    Ok(None)
}

/// Searches under `nid` (covering pages from `base`) from relative `rel`.
fn find_in(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    nid: Nid,
    level: u8,
    base: u64,
    rel: u64,
    want_data: bool,
) -> Result<Option<u64>> {
    if nid.is_none() {
        return Ok((!want_data).then_some(base + rel));
    }
    if level == 0 {
        let NodeBody::Direct(d) = &cache.get(dev, nid)?.body else {
            return Err(not_a(nid, "a direct node"));
        };
        let hit = (rel..D).find(|&i| d.get(i as usize).is_stored() == want_data);
        return Ok(hit.map(|i| base + i));
    }
    let child_span = span(level - 1);
    let nids: Vec<Nid> = match &cache.get(dev, nid)?.body {
        NodeBody::Indirect(ind) => (0..I as usize).map(|i| ind.get(i)).collect(),
        _ => return Err(not_a(nid, "an indirect node")),
    };
    let first = rel / child_span;
    for i in first..I {
        let child_rel = if i == first { rel % child_span } else { 0 };
        if let Some(found) = find_in(
            cache,
            dev,
            nids[i as usize],
            level - 1,
            base + i * child_span,
            child_rel,
            want_data,
        )? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Calls `visit` for every allocated pointer and `node` for every map node
/// of inode `ino` (for checkers and for freeing a whole file).
pub fn walk(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    ino: Ino,
    visit: &mut dyn FnMut(u64, BlockPtr),
    node: &mut dyn FnMut(Nid),
) -> Result<()> {
    let inode = cache.inode(dev, ino)?;
    let inline = inode.ptrs.clone();
    let tops = inode.map_nids;
    for (i, p) in inline.iter().enumerate() {
        if p.is_allocated() {
            visit(i as u64, *p);
        }
    }
    for (slot, top) in tops.iter().enumerate() {
        walk_in(
            cache,
            dev,
            *top,
            SLOT_LEVELS[slot],
            slot_base(slot),
            0,
            visit,
            node,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn walk_in(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    nid: Nid,
    level: u8,
    base: u64,
    depth: u8,
    visit: &mut dyn FnMut(u64, BlockPtr),
    node: &mut dyn FnMut(Nid),
) -> Result<()> {
    if nid.is_none() {
        return Ok(());
    }
    if depth > 4 {
        return Err(not_a(nid, "a bounded tree"));
    }
    node(nid);
    match (&cache.get(dev, nid)?.body, level) {
        (NodeBody::Direct(d), 0) => {
            for (i, p) in d.ptrs.iter().enumerate() {
                if p.is_allocated() {
                    visit(base + i as u64, *p);
                }
            }
            Ok(())
        }
        (NodeBody::Indirect(ind), l) if l > 0 => {
            let children = ind.nids.clone();
            for (i, c) in children.iter().enumerate() {
                walk_in(
                    cache,
                    dev,
                    *c,
                    l - 1,
                    base + i as u64 * span(l - 1),
                    depth + 1,
                    visit,
                    node,
                )?;
            }
            Ok(())
        }
        _ => Err(not_a(nid, "a node of the right level")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_reaches_past_one_tebibyte() {
        assert_eq!(slot_base(0), 5);
        assert_eq!(slot_base(1), 5 + 254);
        assert_eq!(slot_base(2), 5 + 254 + 508 * 254);
        assert!(max_pages() * 4096 > (1u64 << 40) * 100, "at least 100 TiB");
        assert!(locate(max_pages()).is_err());
        assert_eq!(locate(4).expect("loc"), None);
        assert_eq!(locate(5).expect("loc"), Some((0, 0)));
        assert_eq!(locate(5 + 254).expect("loc"), Some((1, 0)));
        assert_eq!(locate(5 + 254 + 508 * 254).expect("loc"), Some((2, 0)));
    }
}
