//! What changed between two roots (zfs diff's `+ - M R`), found by node
//! identity rather than by walking both trees.
//!
//! Two roots that share a unit share everything below it, so the node
//! address tables are compared page by page and only pages whose names
//! differ are read ([`MetaTable::diff`]): the node ids whose entries
//! differ are the nodes that changed. Each changed inode pack says which
//! inodes were created, deleted or modified; each changed directory index
//! node says whose entries changed, and only those directories are
//! listed on both sides, which names renames (the same inode under a new
//! name). Paths come from parent pointers (a directory's `..`, another
//! inode's hint of the directory of its latest name), with one listing of
//! each directory on the way; a hint that went stale (a hard link removed
//! since) falls back to searching the tree. The work grows with what
//! changed and the depth of its paths, not with the size of the tree.
//!
//! [`MetaTable::diff`]: crate::meta_table::MetaTable::diff

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::device::BlockDevice;
use crate::dir_index;
use crate::error::Result;
use crate::ids::{Ino, Nid, PACK_SLOTS};
use crate::inode::Inode;
use crate::node::NodeBody;
use crate::root::Root;

/// How a path changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `+`: a name that appeared.
    Created,
    /// `-`: a name that went.
    Deleted,
    /// `M`: contents or attributes changed.
    Modified,
    /// `R`: the same inode under another name.
    Renamed,
}

impl ChangeKind {
    /// The mark zfs diff prints.
    pub fn mark(self) -> char {
        match self {
            ChangeKind::Created => '+',
            ChangeKind::Deleted => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::Renamed => 'R',
        }
    }
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Its path (in the older root for `-` and the old name of `R`, else
    /// in the newer), from the root, starting with `/`.
    pub path: Vec<u8>,
    /// What happened.
    pub kind: ChangeKind,
    /// The new name, for `R`.
    pub to: Option<Vec<u8>>,
    /// A directory?
    pub is_dir: bool,
}

/// One side of the comparison, with what has been listed of it.
struct Side<'r> {
    root: &'r mut Root,
    listings: HashMap<Ino, BTreeMap<Vec<u8>, Ino>>,
    paths: HashMap<Ino, Vec<u8>>,
}

impl Side<'_> {
    fn inode(&mut self, dev: &dyn BlockDevice, ino: Ino) -> Result<Option<Inode>> {
        if !self.root.cache.inode_exists(dev, ino)? {
            return Ok(None);
        }
        self.root.cache.inode(dev, ino).map(|i| Some(i.clone()))
    }

    /// The entries of directory `dir`, by name.
    fn list(&mut self, dev: &dyn BlockDevice, dir: Ino) -> Result<&BTreeMap<Vec<u8>, Ino>> {
        if !self.listings.contains_key(&dir) {
            let mut names = BTreeMap::new();
            if self.inode(dev, dir)?.is_some_and(|i| i.is_dir()) {
                dir_index::for_each_after(&mut self.root.cache, dev, dir, 0, &mut |e| {
                    names.insert(e.name.to_vec(), e.ino);
                    true
                })?;
            }
            self.listings.insert(dir, names);
        }
        Ok(&self.listings[&dir])
    }

    /// The path of directory `dir` (`/` for the root).
    fn dir_path(&mut self, dev: &dyn BlockDevice, dir: Ino) -> Result<Vec<u8>> {
        let mut chain = Vec::new();
        let mut cur = dir;
        while cur != Ino::ROOT && !self.paths.contains_key(&cur) && chain.len() < 4096 {
            let Some(parent) = self.inode(dev, cur)?.map(|i| i.parent) else {
                break;
            };
            let name = self.name_in(dev, parent, cur)?;
            chain.push((cur, parent, name));
            cur = parent;
        }
        let mut path = match cur {
            Ino::ROOT => Vec::new(),
            c => self.paths.get(&c).cloned().unwrap_or_default(),
        };
        for (ino, _, name) in chain.into_iter().rev() {
            path.push(b'/');
            path.extend_from_slice(&name.unwrap_or_else(|| format!("?{ino}").into_bytes()));
            self.paths.insert(ino, path.clone());
        }
        Ok(if path.is_empty() { b"/".to_vec() } else { path })
    }

    /// A name `ino` has in `dir`, if any.
    fn name_in(&mut self, dev: &dyn BlockDevice, dir: Ino, ino: Ino) -> Result<Option<Vec<u8>>> {
        if dir.is_none() {
            return Ok(None);
        }
        Ok(self
            .list(dev, dir)?
            .iter()
            .find(|(_, i)| **i == ino)
            .map(|(n, _)| n.clone()))
    }

    /// The path of `name` in `dir`.
    fn path_of(&mut self, dev: &dyn BlockDevice, dir: Ino, name: &[u8]) -> Result<Vec<u8>> {
        let mut p = self.dir_path(dev, dir)?;
        if p != b"/" {
            p.push(b'/');
        } else {
            p.clear();
            p.push(b'/');
        }
        p.extend_from_slice(name);
        Ok(p)
    }

    /// A path of inode `ino`: through its parent hint, else by searching.
    fn any_path(&mut self, dev: &dyn BlockDevice, ino: Ino) -> Result<Vec<u8>> {
        if ino == Ino::ROOT {
            return Ok(b"/".to_vec());
        }
        let Some(inode) = self.inode(dev, ino)? else {
            return Ok(format!("?{ino}").into_bytes());
        };
        if inode.is_dir() {
            return self.dir_path(dev, ino);
        }
        if let Some(name) = self.name_in(dev, inode.parent, ino)? {
            return self.path_of(dev, inode.parent, &name);
        }
        // The hint went stale: search the tree, directory by directory.
        let mut todo = vec![Ino::ROOT];
        while let Some(dir) = todo.pop() {
            let entries: Vec<(Vec<u8>, Ino)> = self
                .list(dev, dir)?
                .iter()
                .map(|(n, i)| (n.clone(), *i))
                .collect();
            for (name, i) in entries {
                if i == ino {
                    return self.path_of(dev, dir, &name);
                }
                if self.inode(dev, i)?.is_some_and(|x| x.is_dir()) {
                    todo.push(i);
                }
            }
        }
        Ok(format!("?{ino}").into_bytes())
    }
}

/// Did the contents or attributes a user sees change (not only the
/// change time, a link count or the access time)?
fn modified(a: &Inode, b: &Inode) -> bool {
    a.size != b.size
        || a.mtime != b.mtime
        || a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.rdev != b.rdev
        || a.flags != b.flags
        || a.ptrs != b.ptrs
        || a.map_nids != b.map_nids
}

/// What changed from `older` to `newer` (two committed roots: nodes not
/// yet written are not seen), sorted by path.
///
/// `quota_file`: the quota file's inode, on an image that keeps one
/// (pagelog's own, like the graveyard: never a change to report).
pub fn diff(
    older: &mut Root,
    newer: &mut Root,
    dev: &dyn BlockDevice,
    quota_file: Option<Ino>,
) -> Result<Vec<Change>> {
    let mut nids = Vec::new();
    older
        .cache
        .nat
        .table()
        .diff(newer.cache.nat.table(), dev, &mut |i, _, _| {
            nids.push(Nid(i))
        })?;
    let mut a = Side {
        root: older,
        listings: HashMap::new(),
        paths: HashMap::new(),
    };
    let mut b = Side {
        root: newer,
        listings: HashMap::new(),
        paths: HashMap::new(),
    };
    let (mut inodes, mut dirs, mut touched) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for nid in nids {
        for side in [&mut a, &mut b] {
            if side.root.cache.nat.lookup(dev, nid)?.is_none() {
                continue;
            }
            let node = side.root.cache.get(dev, nid)?;
            match &node.body {
                NodeBody::InodePack(_) => {
                    inodes.extend((0..PACK_SLOTS as usize).map(|s| Ino::new(nid, s)));
                }
                NodeBody::DirLeaf(_) | NodeBody::DirInternal(_) => {
                    dirs.insert(node.ino);
                }
                NodeBody::Direct(_) | NodeBody::Indirect(_) | NodeBody::Xattr(_) => {
                    touched.insert(node.ino);
                }
            }
        }
    }
    // Names that went and came, per inode, from the directories whose
    // entries changed.
    let mut gone: BTreeMap<Ino, Vec<(Ino, Vec<u8>)>> = BTreeMap::new();
    let mut came: BTreeMap<Ino, Vec<(Ino, Vec<u8>)>> = BTreeMap::new();
    for &dir in dirs.iter().filter(|d| **d != Ino::GRAVEYARD) {
        let before = a.list(dev, dir)?.clone();
        let after = b.list(dev, dir)?.clone();
        for (name, ino) in &before {
            if after.get(name) != Some(ino) {
                gone.entry(*ino).or_default().push((dir, name.clone()));
            }
        }
        for (name, ino) in &after {
            if before.get(name) != Some(ino) {
                came.entry(*ino).or_default().push((dir, name.clone()));
            }
        }
    }
    let mut out = Vec::new();
    let inos: BTreeSet<Ino> = inodes
        .iter()
        .chain(&dirs)
        .chain(&touched)
        .chain(gone.keys())
        .chain(came.keys())
        .copied()
        .filter(|i| *i != Ino::GRAVEYARD && Some(*i) != quota_file)
        .collect();
    for ino in inos {
        let (ia, ib) = (a.inode(dev, ino)?, b.inode(dev, ino)?);
        // The same inode: a branch and the line it came from hand out
        // numbers and generations alike, so the creation time tells
        // apart two inodes born apart.
        let same = matches!((&ia, &ib), (Some(x), Some(y))
            if x.generation == y.generation && x.btime == y.btime);
        let is_dir = ib.as_ref().or(ia.as_ref()).is_some_and(Inode::is_dir);
        let mut old_names = gone.remove(&ino).unwrap_or_default();
        let mut new_names = came.remove(&ino).unwrap_or_default();
        if same {
            while !old_names.is_empty() && !new_names.is_empty() {
                let (od, on) = old_names.remove(0);
                let (nd, nn) = new_names.remove(0);
                out.push(Change {
                    path: a.path_of(dev, od, &on)?,
                    kind: ChangeKind::Renamed,
                    to: Some(b.path_of(dev, nd, &nn)?),
                    is_dir,
                });
            }
        }
        let names = [
            (&mut a, old_names, ChangeKind::Deleted),
            (&mut b, new_names, ChangeKind::Created),
        ];
        for (side, list, kind) in names {
            for (d, n) in list {
                let path = side.path_of(dev, d, &n)?;
                out.push(Change {
                    path,
                    kind,
                    to: None,
                    is_dir,
                });
            }
        }
        if let (true, Some(x), Some(y)) = (same, &ia, &ib) {
            if modified(x, y) || touched.contains(&ino) {
                out.push(Change {
                    path: b.any_path(dev, ino)?,
                    kind: ChangeKind::Modified,
                    to: None,
                    is_dir,
                });
            }
        }
    }
    out.sort();
    Ok(out)
}
