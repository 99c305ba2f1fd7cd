//! The reference model shared by the model-based and crash-state tests:
//! one operation enum, an in-memory model of the tree, and a comparison of
//! a mounted filesystem against the model.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::mem::discriminant;

use pagelog_core::acl::{Acl, Entry, Tag, NO_ID};
use pagelog_core::fs::RenameFlags;
use pagelog_core::inode::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use pagelog_core::{Cred, Error, Filesystem, Ino};
use proptest::prelude::*;

pub const NAMES: [&[u8]; 6] = [
    b"a",
    b"b",
    b"c",
    b"dir",
    b"long-name-with-some-bytes",
    b"\xff\xfe",
];
pub const MAX_OFFSET: u32 = 1 << 20;

#[derive(Clone, Debug)]
pub enum Op {
    Create {
        dir: u8,
        name: u8,
    },
    Mkdir {
        dir: u8,
        name: u8,
    },
    Symlink {
        dir: u8,
        name: u8,
        len: u16,
    },
    Write {
        file: u8,
        offset: u32,
        len: u16,
        seed: u8,
    },
    Truncate {
        file: u8,
        size: u32,
    },
    Unlink {
        dir: u8,
        name: u8,
    },
    Rmdir {
        dir: u8,
        name: u8,
    },
    Rename {
        fdir: u8,
        fname: u8,
        tdir: u8,
        tname: u8,
    },
    Link {
        file: u8,
        dir: u8,
        name: u8,
    },
    SetXattr {
        node: u8,
        name: u8,
        len: u16,
    },
    RemoveXattr {
        node: u8,
        name: u8,
    },
    /// Gives `node` an access control list (or, `default`, a directory a
    /// default one) naming user `1000 + uid`.
    SetAcl {
        node: u8,
        uid: u8,
        default: bool,
    },
    Punch {
        file: u8,
        offset: u32,
        len: u32,
    },
    Fallocate {
        file: u8,
        offset: u32,
        len: u32,
        keep: bool,
    },
    /// fsync(2) of `node` (a file or a directory): in the `ordered` and
    /// `full` modes everything so far is durable when it returns.
    Fsync {
        node: u8,
    },
    Sync,
    Remount,
    CrashCut,
    /// A forced cleaning pass (greedy), with a commit or without one
    /// (data moved now, the victims freed by the next commit), urgent
    /// (moving data through the main log head) or not (through the
    /// cleaner's own head).
    Clean {
        commit: bool,
        urgent: bool,
    },
    /// Lays a regular file out again (`Filesystem::defrag`: its units
    /// moved to the cleaner's log head, committed); its bytes stay.
    Defrag {
        file: u8,
    },
    /// Snapshot `snapshot_name(slot)` of the present (handled by the
    /// harness: it records the model at that point).
    Snapshot {
        slot: u8,
    },
    /// Deletes snapshot `snapshot_name(slot)`.
    DeleteSnapshot {
        slot: u8,
    },
    /// Makes branch `branch_name(slot)` from snapshot `snapshot_name(from)`.
    Clone {
        slot: u8,
        from: u8,
    },
    /// Runs `op` (a namespace or data operation) in branch
    /// `branch_name(slot)`.
    InBranch {
        slot: u8,
        op: Box<Op>,
    },
    /// Deletes branch `branch_name(slot)`.
    DeleteBranch {
        slot: u8,
    },
    /// Rolls the live root back to snapshot `snapshot_name(slot)`, keeping
    /// the present as snapshot `snapshot_name(keep)`.
    Rollback {
        slot: u8,
        keep: u8,
    },
}

/// The name of branch `slot` (two slots).
pub fn branch_name(slot: u8) -> Vec<u8> {
    format!("branch{}", slot % 2).into_bytes()
}

/// Operations run inside a branch.
fn branch_op_strategy() -> impl Strategy<Value = Op> {
    let n = 0u8..6;
    prop_oneof![
        2 => (any::<u8>(), n.clone()).prop_map(|(dir, name)| Op::Create { dir, name }),
        1 => (any::<u8>(), n.clone()).prop_map(|(dir, name)| Op::Mkdir { dir, name }),
        3 => (any::<u8>(), 0..MAX_OFFSET, 1u16..20000, any::<u8>()).prop_map(|(file, offset, len, seed)| Op::Write { file, offset, len, seed }),
        1 => (any::<u8>(), 0..MAX_OFFSET + 100_000).prop_map(|(file, size)| Op::Truncate { file, size }),
        2 => (any::<u8>(), n.clone()).prop_map(|(dir, name)| Op::Unlink { dir, name }),
        1 => (any::<u8>(), n.clone(), any::<u8>(), n).prop_map(|(fdir, fname, tdir, tname)| Op::Rename { fdir, fname, tdir, tname }),
    ]
}

/// The name of snapshot `slot` (four slots).
pub fn snapshot_name(slot: u8) -> Vec<u8> {
    format!("snap{}", slot % 4).into_bytes()
}

/// The cleaning pass `Op::Clean` stands for.
pub fn clean_pass(commit: bool, urgent: bool) -> pagelog_core::cleaner::Pass {
    pagelog_core::cleaner::Pass {
        policy: pagelog_core::cleaner::Policy::Greedy,
        batch: 8,
        max_live_percent: 100,
        commit,
        urgent,
    }
}

pub fn op_strategy() -> impl Strategy<Value = Op> {
    let n = 0u8..6;
    prop_oneof![
        4 => (any::<u8>(), n.clone()).prop_map(|(dir, name)| Op::Create { dir, name }),
        2 => (any::<u8>(), n.clone()).prop_map(|(dir, name)| Op::Mkdir { dir, name }),
        1 => (any::<u8>(), n.clone(), 1u16..4095).prop_map(|(dir, name, len)| Op::Symlink { dir, name, len }),
        6 => (any::<u8>(), 0..MAX_OFFSET, 1u16..20000, any::<u8>()).prop_map(|(file, offset, len, seed)| Op::Write { file, offset, len, seed }),
        2 => (any::<u8>(), 0..MAX_OFFSET + 100_000).prop_map(|(file, size)| Op::Truncate { file, size }),
        3 => (any::<u8>(), n.clone()).prop_map(|(dir, name)| Op::Unlink { dir, name }),
        2 => (any::<u8>(), n.clone()).prop_map(|(dir, name)| Op::Rmdir { dir, name }),
        3 => (any::<u8>(), n.clone(), any::<u8>(), n.clone()).prop_map(|(fdir, fname, tdir, tname)| Op::Rename { fdir, fname, tdir, tname }),
        2 => (any::<u8>(), any::<u8>(), n.clone()).prop_map(|(file, dir, name)| Op::Link { file, dir, name }),
        2 => (any::<u8>(), 0u8..8, 0u16..1500).prop_map(|(node, name, len)| Op::SetXattr { node, name, len }),
        1 => (any::<u8>(), 0u8..8).prop_map(|(node, name)| Op::RemoveXattr { node, name }),
        1 => (any::<u8>(), 0u8..4, any::<bool>()).prop_map(|(node, uid, default)| Op::SetAcl { node, uid, default }),
        1 => (any::<u8>(), 0..MAX_OFFSET, 1..100_000u32).prop_map(|(file, offset, len)| Op::Punch { file, offset, len }),
        1 => (any::<u8>(), 0..MAX_OFFSET, 1..100_000u32, any::<bool>()).prop_map(|(file, offset, len, keep)| Op::Fallocate { file, offset, len, keep }),
        2 => any::<u8>().prop_map(|node| Op::Fsync { node }),
        1 => Just(Op::Sync),
        1 => Just(Op::Remount),
        1 => Just(Op::CrashCut),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(commit, urgent)| Op::Clean { commit, urgent }),
        1 => any::<u8>().prop_map(|file| Op::Defrag { file }),
        1 => (0u8..4).prop_map(|slot| Op::Snapshot { slot }),
        1 => (0u8..4).prop_map(|slot| Op::DeleteSnapshot { slot }),
        1 => (0u8..2, 0u8..4).prop_map(|(slot, from)| Op::Clone { slot, from }),
        3 => (0u8..2, branch_op_strategy()).prop_map(|(slot, op)| Op::InBranch { slot, op: Box::new(op) }),
        1 => (0u8..2).prop_map(|slot| Op::DeleteBranch { slot }),
        1 => (0u8..4, 0u8..4).prop_map(|(slot, keep)| Op::Rollback { slot, keep }),
    ]
}

/// Runs `Op::Rollback` on `fs` (no view open) and on the models: the live
/// model and the snapshots. Returns whether it committed.
pub fn rollback(
    fs: &mut Filesystem,
    model: &mut Model,
    snapshots: &mut BTreeMap<Vec<u8>, Model>,
    slot: u8,
    keep: u8,
) -> bool {
    let (from, keep) = (snapshot_name(slot), snapshot_name(keep));
    let source =
        pagelog_core::roots::RootName::Past(pagelog_core::checkpoints::At::Snapshot(from.clone()));
    match fs.rollback(&source, Some(&keep)) {
        Ok(_) => {
            let then = snapshots
                .get(&from)
                .expect("rolled back to a snapshot")
                .clone();
            assert!(!snapshots.contains_key(&keep), "kept under a taken name");
            snapshots.insert(keep, std::mem::replace(model, then));
            true
        }
        Err(Error::Refused(_)) => {
            assert!(!snapshots.contains_key(&from));
            false
        }
        Err(Error::Exists) => {
            assert!(snapshots.contains_key(&keep));
            false
        }
        Err(e) => panic!("rollback: {e}"),
    }
}

/// The branches of a harness: each with the model of its tree and, while
/// it is open, its view.
#[derive(Default)]
pub struct Branches {
    /// Each branch that exists: its tree, and the snapshot it was made from.
    pub models: BTreeMap<Vec<u8>, (Model, Vec<u8>)>,
    /// The open ones.
    pub open: BTreeMap<Vec<u8>, pagelog_core::ViewId>,
}

impl Branches {
    /// Runs a branch operation (`Clone`, `InBranch`, `DeleteBranch`) on
    /// `fs`, whose snapshots are `snapshots`, and on the models. Returns
    /// whether it committed.
    pub fn apply(
        &mut self,
        fs: &mut Filesystem,
        snapshots: &BTreeMap<Vec<u8>, Model>,
        op: &Op,
    ) -> bool {
        match op {
            Op::Clone { slot, from } => {
                let (name, src) = (branch_name(*slot), snapshot_name(*from));
                let at = pagelog_core::checkpoints::At::Snapshot(src.clone());
                match fs.create_branch(&name, &at) {
                    Ok(_) => {
                        assert!(!self.models.contains_key(&name), "made twice");
                        let model = snapshots.get(&src).expect("made from a snapshot").clone();
                        self.models.insert(name, (model, src));
                        true
                    }
                    Err(Error::Exists) => {
                        assert!(self.models.contains_key(&name));
                        false
                    }
                    Err(Error::Refused(_)) => {
                        assert!(!snapshots.contains_key(&src));
                        false
                    }
                    Err(e) => panic!("clone: {e}"),
                }
            }
            Op::InBranch { slot, op } => {
                let name = branch_name(*slot);
                let Some((model, _)) = self.models.get_mut(&name) else {
                    return false;
                };
                let id = match self.open.get(&name) {
                    Some(id) => *id,
                    None => {
                        let id = fs.open_branch(&name).expect("open branch");
                        self.open.insert(name.clone(), id);
                        id
                    }
                };
                fs.in_view(id, |b| {
                    apply_op(b, model, op);
                    Ok(())
                })
                .expect("in branch");
                false
            }
            Op::DeleteBranch { slot } => {
                let name = branch_name(*slot);
                if let Some(id) = self.open.remove(&name) {
                    fs.close_view(id).expect("close branch");
                }
                match fs.delete_branch(&name) {
                    Ok(()) => {
                        assert!(self.models.remove(&name).is_some(), "deleted a ghost");
                        true
                    }
                    Err(Error::Refused(_)) => {
                        assert!(!self.models.contains_key(&name));
                        false
                    }
                    Err(e) => panic!("delete branch: {e}"),
                }
            }
            _ => false,
        }
    }

    /// Is snapshot `name` the origin of a branch?
    pub fn made_from(&self, name: &[u8]) -> bool {
        self.models.values().any(|(_, src)| src == name)
    }

    /// The mount is gone: no branch is open.
    pub fn forget_open(&mut self) {
        self.open.clear();
    }

    /// Closes every open branch (before a rollback).
    pub fn close_all(&mut self, fs: &mut Filesystem) {
        for (_, id) in std::mem::take(&mut self.open) {
            fs.close_view(id).expect("close branch");
        }
    }

    /// Each branch of `fs` reads as its model (opened for the check if it
    /// is not open).
    pub fn check(&self, fs: &mut Filesystem, relaxed: bool) -> Result<(), String> {
        let names: Vec<Vec<u8>> = fs.branches().into_iter().map(|b| b.name).collect();
        let expected: Vec<Vec<u8>> = self.models.keys().cloned().collect();
        if names != expected {
            return Err(format!("branches {names:?}, expected {expected:?}"));
        }
        for (name, (model, _)) in &self.models {
            let (id, opened) = match self.open.get(name) {
                Some(id) => (*id, false),
                None => (fs.open_branch(name).map_err(|e| e.to_string())?, true),
            };
            let r = fs
                .in_view(id, |b| Ok(diff_data(b, model, relaxed)))
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            if opened {
                fs.close_view(id).map_err(|e| e.to_string())?;
            }
            r.map_err(|e| format!("branch {:?}: {e}", String::from_utf8_lossy(name)))?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    File(Vec<u8>),
    Dir(BTreeMap<Vec<u8>, usize>),
    Symlink(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct MInode {
    pub kind: Kind,
    pub nlink: u32,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub ino: Ino,
    pub parent: usize,
}

/// The reference model: inodes by model id; id 0 is the root.
#[derive(Clone, Debug)]
pub struct Model {
    pub inodes: BTreeMap<usize, MInode>,
    pub next: usize,
    /// Every version each page of each file has had (for the checks of
    /// the `writeback` mode, where a crash may show older data).
    pub history: BTreeMap<(usize, u64), Vec<Vec<u8>>>,
}

impl Model {
    pub fn new() -> Model {
        let root = MInode {
            kind: Kind::Dir(BTreeMap::new()),
            nlink: 2,
            xattrs: BTreeMap::new(),
            ino: Ino::ROOT,
            parent: 0,
        };
        Model {
            inodes: BTreeMap::from([(0, root)]),
            next: 1,
            history: BTreeMap::new(),
        }
    }

    /// Records the current pages of file `id` in the history.
    pub fn remember(&mut self, id: usize) {
        let Some(MInode {
            kind: Kind::File(data),
            ..
        }) = self.inodes.get(&id)
        else {
            return;
        };
        let pages: Vec<(u64, Vec<u8>)> = data
            .chunks(4096)
            .enumerate()
            .map(|(i, c)| (i as u64, c.to_vec()))
            .collect();
        for (i, mut page) in pages {
            page.resize(4096, 0);
            let h = self.history.entry((id, i)).or_default();
            if !h.contains(&page) {
                h.push(page);
            }
        }
    }

    pub fn ids(&self, pred: impl Fn(&Kind) -> bool) -> Vec<usize> {
        self.inodes
            .iter()
            .filter(|(_, i)| pred(&i.kind))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn pick(&self, sel: u8, pred: impl Fn(&Kind) -> bool) -> Option<usize> {
        let ids = self.ids(pred);
        (!ids.is_empty()).then(|| ids[sel as usize % ids.len()])
    }

    pub fn entries(&self, dir: usize) -> &BTreeMap<Vec<u8>, usize> {
        match &self.inodes[&dir].kind {
            Kind::Dir(e) => e,
            _ => panic!("not a dir"),
        }
    }

    pub fn entries_mut(&mut self, dir: usize) -> &mut BTreeMap<Vec<u8>, usize> {
        match &mut self.inodes.get_mut(&dir).expect("dir").kind {
            Kind::Dir(e) => e,
            _ => panic!("not a dir"),
        }
    }

    pub fn data_mut(&mut self, id: usize) -> &mut Vec<u8> {
        match &mut self.inodes.get_mut(&id).expect("file").kind {
            Kind::File(d) => d,
            _ => panic!("not a file"),
        }
    }

    pub fn is_dir(&self, id: usize) -> bool {
        matches!(self.inodes[&id].kind, Kind::Dir(_))
    }

    pub fn add(&mut self, dir: usize, name: &[u8], kind: Kind, ino: Ino) -> usize {
        let id = self.next;
        self.next += 1;
        let is_dir = matches!(kind, Kind::Dir(_));
        self.inodes.insert(
            id,
            MInode {
                kind,
                nlink: if is_dir { 2 } else { 1 },
                xattrs: BTreeMap::new(),
                ino,
                parent: dir,
            },
        );
        self.entries_mut(dir).insert(name.to_vec(), id);
        if is_dir {
            self.inodes.get_mut(&dir).expect("dir").nlink += 1;
        }
        id
    }

    /// Drops one link of `id`, forgetting it when none is left.
    pub fn drop_link(&mut self, id: usize) {
        let i = self.inodes.get_mut(&id).expect("inode");
        if matches!(i.kind, Kind::Dir(_)) {
            let parent = i.parent;
            self.inodes.remove(&id);
            self.inodes.get_mut(&parent).expect("parent").nlink -= 1;
            return;
        }
        i.nlink -= 1;
        if i.nlink == 0 {
            self.inodes.remove(&id);
        }
    }

    pub fn within(&self, mut dir: usize, ancestor: usize) -> bool {
        loop {
            if dir == ancestor {
                return true;
            }
            if dir == 0 {
                return false;
            }
            dir = self.inodes[&dir].parent;
        }
    }
}

/// Bytes written by the model: a short repeating pattern (compresses
/// well) for even seeds, noise that does not compress for odd ones.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    if seed % 2 == 1 {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
        return (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
    }
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Bytes the attributes take in their node: an access control list's
/// name is its namespace code alone, other names lose "user.".
pub fn xattr_size(x: &BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
    x.iter()
        .map(|(k, v)| {
            let name = if k.starts_with(ACL_PREFIX) {
                0
            } else {
                k.len() - 5
            };
            4 + name + v.len()
        })
        .sum()
}

const ACL_PREFIX: &[u8] = b"system.posix_acl_";
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// u::rwx u:UID:r-x g::r-x m::r-x o::r-x
fn acl_naming(uid: u32) -> Acl {
    let e = |tag, perm, id| Entry { tag, perm, id };
    Acl {
        entries: vec![
            e(Tag::UserObj, 7, NO_ID),
            e(Tag::User, 5, uid),
            e(Tag::GroupObj, 5, NO_ID),
            e(Tag::Mask, 5, NO_ID),
            e(Tag::Other, 5, NO_ID),
        ],
    }
}

/// The lists an inode of `mode` made in a directory with attributes
/// `parent` gets (the rule of `posix_acl_create`).
fn inherited(parent: &BTreeMap<Vec<u8>, Vec<u8>>, mode: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Some(default) = parent.get(ACL_DEFAULT) else {
        return out;
    };
    if mode & S_IFMT == S_IFLNK {
        return out;
    }
    if mode & S_IFMT == S_IFDIR {
        out.insert(ACL_DEFAULT.to_vec(), default.clone());
    }
    let mut access = Acl::decode(default).expect("valid").expect("not empty");
    access.create_masq(mode);
    if !access.is_minimal() {
        out.insert(ACL_ACCESS.to_vec(), access.encode());
    }
    out
}

pub fn same_outcome(op: &Op, expect: &Result<(), Error>, real: &Result<(), Error>) {
    match (expect, real) {
        (Ok(()), Ok(())) => {}
        (Err(a), Err(b)) if discriminant(a) == discriminant(b) => {}
        _ => panic!("{op:?}: model says {expect:?}, filesystem says {real:?}"),
    }
}

/// Fails with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

/// Walks the real tree against the model; the first difference is an error.
pub fn diff(fs: &mut Filesystem, model: &Model) -> Result<(), String> {
    diff_data(fs, model, false)
}

/// As `diff`, but with `relaxed` file contents may show, page by page,
/// zeros or any older version of the page (the `writeback` guarantee).
pub fn diff_data(fs: &mut Filesystem, model: &Model, relaxed: bool) -> Result<(), String> {
    let root = Cred::root();
    let mut inos: BTreeMap<usize, Ino> = BTreeMap::new();
    let mut stack = vec![(0usize, Ino::ROOT, b"/".to_vec())];
    while let Some((id, ino, path)) = stack.pop() {
        let p = String::from_utf8_lossy(&path).into_owned();
        let mi = &model.inodes[&id];
        let a = fs.getattr(ino).map_err(|e| format!("getattr {p}: {e}"))?;
        if let Some(prev) = inos.insert(id, ino) {
            ensure!(prev == ino, "hard links of {p} show different numbers");
        }
        ensure!(
            a.nlink == mi.nlink,
            "nlink of {p}: {} (model {})",
            a.nlink,
            mi.nlink
        );
        let list = fs
            .listxattr(&root, ino)
            .map_err(|e| format!("listxattr {p}: {e}"))?;
        let mut xnames: Vec<Vec<u8>> = list
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        xnames.sort();
        ensure!(
            xnames == mi.xattrs.keys().cloned().collect::<Vec<_>>(),
            "xattrs of {p}"
        );
        for (k, v) in &mi.xattrs {
            ensure!(
                &fs.getxattr(&root, ino, k)
                    .map_err(|e| format!("getxattr {p}: {e}"))?
                    == v,
                "xattr value of {p}"
            );
        }
        match &mi.kind {
            Kind::File(data) => {
                ensure!(a.mode & S_IFMT == S_IFREG, "{p} is not a file");
                ensure!(
                    a.size == data.len() as u64,
                    "size of {p}: {} (model {})",
                    a.size,
                    data.len()
                );
                let got = fs
                    .read(ino, 0, data.len() as u32 + 10)
                    .map_err(|e| format!("read {p}: {e}"))?;
                if relaxed {
                    for (i, page) in got.chunks(4096).enumerate() {
                        // Only the bytes below the size count: an older
                        // version cut by a later truncation reads as its
                        // prefix, zeros after.
                        let valid = (data.len() - (i * 4096).min(data.len())).min(4096);
                        let page = &page[..valid.min(page.len())];
                        let same = |v: &[u8]| v.get(..page.len()) == Some(page);
                        let want = data.chunks(4096).nth(i);
                        let old = model.history.get(&(id, i as u64));
                        let ok = page.iter().all(|&b| b == 0)
                            || want.is_some_and(same)
                            || old.is_some_and(|h| h.iter().any(|v| same(v)));
                        ensure!(
                            ok,
                            "page {i} of {p} is neither zeros nor a version this file had"
                        );
                    }
                } else {
                    ensure!(got == *data, "contents of {p} differ");
                }
            }
            Kind::Symlink(t) => {
                ensure!(a.mode & S_IFMT == S_IFLNK, "{p} is not a symlink");
                ensure!(
                    &fs.readlink(ino).map_err(|e| format!("readlink {p}: {e}"))? == t,
                    "target of {p}"
                );
            }
            Kind::Dir(entries) => {
                ensure!(a.mode & S_IFMT == S_IFDIR, "{p} is not a directory");
                let mut names = BTreeMap::new();
                fs.readdir(ino, 2, &mut |e| {
                    names.insert(e.name.clone(), e.ino);
                    true
                })
                .map_err(|e| format!("readdir {p}: {e}"))?;
                ensure!(
                    names.keys().collect::<Vec<_>>() == entries.keys().collect::<Vec<_>>(),
                    "entries of {p}"
                );
                for (name, child) in entries {
                    let mut q = path.clone();
                    q.extend_from_slice(name);
                    q.push(b'/');
                    stack.push((*child, names[name], q));
                }
            }
        }
    }
    Ok(())
}

/// Asserts that the filesystem matches the model.
pub fn compare(fs: &mut Filesystem, model: &Model) {
    if let Err(e) = diff(fs, model) {
        panic!("filesystem differs from the model: {e}");
    }
}

/// The inode `Op::Fsync { node }` syncs, if the model has one to pick.
pub fn fsync_target(m: &Model, node: u8) -> Option<Ino> {
    let n = m.pick(node, |k| !matches!(k, Kind::Symlink(_)))?;
    Some(m.inodes[&n].ino)
}

/// Runs a filesystem operation (not Sync, Remount or CrashCut, which the
/// harnesses own) on `fs` and on `model`, checking that they agree.
pub fn apply_op(fs: &mut Filesystem, model: &mut Model, op: &Op) {
    let root = Cred::root();
    let m = &*model;
    match *op {
        Op::Create { dir, name } | Op::Mkdir { dir, name } | Op::Symlink { dir, name, .. } => {
            let d = m
                .pick(dir, |k| matches!(k, Kind::Dir(_)))
                .expect("root exists");
            let nm = NAMES[name as usize];
            let exists = m.entries(d).contains_key(nm);
            let dino = m.inodes[&d].ino;
            let (real, kind) = match *op {
                Op::Create { .. } => (
                    fs.mknod(&root, dino, nm, S_IFREG | 0o644, 0),
                    Kind::File(Vec::new()),
                ),
                Op::Mkdir { .. } => (fs.mkdir(&root, dino, nm, 0o755), Kind::Dir(BTreeMap::new())),
                Op::Symlink { len, .. } => {
                    let target = pattern(len as usize, 1)
                        .iter()
                        .map(|b| b'a' + b % 26)
                        .collect::<Vec<u8>>();
                    (fs.symlink(&root, dino, nm, &target), Kind::Symlink(target))
                }
                _ => unreachable!(),
            };
            if exists {
                assert!(
                    matches!(real, Err(Error::Exists)),
                    "{op:?}: expected EEXIST, got {real:?}"
                );
            } else {
                let a = real.unwrap_or_else(|e| panic!("{op:?}: {e}"));
                let lists = inherited(&model.inodes[&d].xattrs, a.mode);
                let id = model.add(d, nm, kind, a.ino);
                model.inodes.get_mut(&id).expect("new").xattrs = lists;
            }
        }
        Op::SetAcl { node, uid, default } => {
            let Some(n) = m.pick(node, |k| !matches!(k, Kind::Symlink(_))) else {
                return;
            };
            let ino = m.inodes[&n].ino;
            let is_dir = matches!(m.inodes[&n].kind, Kind::Dir(_));
            let (key, value) = (
                if default { ACL_DEFAULT } else { ACL_ACCESS },
                acl_naming(1000 + u32::from(uid)).encode(),
            );
            let real = fs.setxattr(&root, ino, key, &value, 0);
            if default && !is_dir {
                assert!(matches!(real, Err(Error::Access)), "{op:?}: {real:?}");
                return;
            }
            let mut after = m.inodes[&n].xattrs.clone();
            after.insert(key.to_vec(), value);
            if xattr_size(&after) <= 4056 {
                real.unwrap_or_else(|e| panic!("{op:?}: {e}"));
                model.inodes.get_mut(&n).expect("n").xattrs = after;
            } else {
                assert!(matches!(real, Err(Error::NoSpace)), "{op:?}: {real:?}");
            }
        }
        Op::Write {
            file,
            offset,
            len,
            seed,
        } => {
            let Some(f) = m.pick(file, |k| matches!(k, Kind::File(_))) else {
                return;
            };
            let ino = m.inodes[&f].ino;
            let data = pattern(len as usize, seed);
            assert_eq!(
                fs.write(&root, ino, u64::from(offset), &data)
                    .expect("write"),
                data.len()
            );
            let d = model.data_mut(f);
            let end = offset as usize + data.len();
            if d.len() < end {
                d.resize(end, 0);
            }
            d[offset as usize..end].copy_from_slice(&data);
            model.remember(f);
        }
        Op::Truncate { file, size } => {
            let Some(f) = m.pick(file, |k| matches!(k, Kind::File(_))) else {
                return;
            };
            let ino = m.inodes[&f].ino;
            let set = pagelog_core::SetAttr {
                size: Some(u64::from(size)),
                ..Default::default()
            };
            fs.setattr(&root, ino, &set).expect("truncate");
            model.data_mut(f).resize(size as usize, 0);
            model.remember(f);
        }
        Op::Punch { file, offset, len } => {
            let Some(f) = m.pick(file, |k| matches!(k, Kind::File(_))) else {
                return;
            };
            let ino = m.inodes[&f].ino;
            fs.fallocate(&root, ino, u64::from(offset), u64::from(len), 3)
                .expect("punch");
            let d = model.data_mut(f);
            let end = (offset as usize + len as usize).min(d.len());
            if (offset as usize) < end {
                d[offset as usize..end].fill(0);
            }
            model.remember(f);
        }
        Op::Fallocate {
            file,
            offset,
            len,
            keep,
        } => {
            let Some(f) = m.pick(file, |k| matches!(k, Kind::File(_))) else {
                return;
            };
            let ino = m.inodes[&f].ino;
            fs.fallocate(
                &root,
                ino,
                u64::from(offset),
                u64::from(len),
                u32::from(keep),
            )
            .expect("fallocate");
            let d = model.data_mut(f);
            let end = offset as usize + len as usize;
            if !keep && d.len() < end {
                d.resize(end, 0);
            }
            model.remember(f);
        }
        Op::Unlink { dir, name } | Op::Rmdir { dir, name } => {
            let d = m.pick(dir, |k| matches!(k, Kind::Dir(_))).expect("root");
            let nm = NAMES[name as usize];
            let dino = m.inodes[&d].ino;
            let target = m.entries(d).get(nm).copied();
            let is_unlink = matches!(op, Op::Unlink { .. });
            let expect: Result<(), Error> = match target {
                None => Err(Error::NotFound),
                Some(t) if is_unlink && m.is_dir(t) => Err(Error::IsDir),
                Some(t) if !is_unlink && !m.is_dir(t) => Err(Error::NotDir),
                Some(t) if !is_unlink && !m.entries(t).is_empty() => Err(Error::NotEmpty),
                Some(_) => Ok(()),
            };
            let real = if is_unlink {
                fs.unlink(&root, dino, nm)
            } else {
                fs.rmdir(&root, dino, nm)
            };
            same_outcome(op, &expect, &real);
            if let (Ok(()), Some(t)) = (expect, target) {
                model.entries_mut(d).remove(nm);
                model.drop_link(t);
            }
        }
        Op::Rename {
            fdir,
            fname,
            tdir,
            tname,
        } => {
            let fd = m.pick(fdir, |k| matches!(k, Kind::Dir(_))).expect("root");
            let td = m.pick(tdir, |k| matches!(k, Kind::Dir(_))).expect("root");
            let (fnm, tnm) = (NAMES[fname as usize], NAMES[tname as usize]);
            let src = m.entries(fd).get(fnm).copied();
            let dst = m.entries(td).get(tnm).copied();
            let expect: Result<(), Error> = match (src, dst) {
                (None, _) => Err(Error::NotFound),
                (Some(s), Some(d)) if s == d => Ok(()),
                (Some(s), _) if m.is_dir(s) && m.within(td, s) => Err(Error::Invalid),
                (Some(s), Some(d)) if m.is_dir(s) && !m.is_dir(d) => Err(Error::NotDir),
                (Some(s), Some(d)) if !m.is_dir(s) && m.is_dir(d) => Err(Error::IsDir),
                (Some(_), Some(d)) if m.is_dir(d) && !m.entries(d).is_empty() => {
                    Err(Error::NotEmpty)
                }
                _ => Ok(()),
            };
            let (fino, tino) = (m.inodes[&fd].ino, m.inodes[&td].ino);
            let real = fs.rename(&root, fino, fnm, tino, tnm, RenameFlags::default());
            same_outcome(op, &expect, &real);
            if let (Ok(()), Some(s)) = (expect, src) {
                if dst != Some(s) {
                    model.entries_mut(fd).remove(fnm);
                    if let Some(d) = model.entries_mut(td).insert(tnm.to_vec(), s) {
                        model.drop_link(d);
                    }
                    if model.is_dir(s) && fd != td {
                        model.inodes.get_mut(&s).expect("s").parent = td;
                        model.inodes.get_mut(&fd).expect("fd").nlink -= 1;
                        model.inodes.get_mut(&td).expect("td").nlink += 1;
                    }
                }
            }
        }
        Op::Link { file, dir, name } => {
            let Some(f) = m.pick(file, |k| matches!(k, Kind::File(_))) else {
                return;
            };
            let d = m.pick(dir, |k| matches!(k, Kind::Dir(_))).expect("root");
            let nm = NAMES[name as usize];
            let exists = m.entries(d).contains_key(nm);
            let (fino, dino) = (m.inodes[&f].ino, m.inodes[&d].ino);
            let real = fs.link(&root, fino, dino, nm);
            if exists {
                assert!(matches!(real, Err(Error::Exists)), "{op:?}: {real:?}");
            } else {
                real.unwrap_or_else(|e| panic!("{op:?}: {e}"));
                model.entries_mut(d).insert(nm.to_vec(), f);
                model.inodes.get_mut(&f).expect("f").nlink += 1;
            }
        }
        Op::SetXattr { node, name, len } => {
            let Some(n) = m.pick(node, |k| !matches!(k, Kind::Symlink(_))) else {
                return;
            };
            let key = format!("user.x{name}").into_bytes();
            let value = pattern(len as usize, name);
            let mut after = m.inodes[&n].xattrs.clone();
            after.insert(key.clone(), value.clone());
            let fits = xattr_size(&after) <= 4056;
            let ino = m.inodes[&n].ino;
            let real = fs.setxattr(&root, ino, &key, &value, 0);
            if fits {
                real.unwrap_or_else(|e| panic!("{op:?}: {e}"));
                model.inodes.get_mut(&n).expect("n").xattrs = after;
            } else {
                assert!(matches!(real, Err(Error::NoSpace)), "{op:?}: {real:?}");
            }
        }
        Op::RemoveXattr { node, name } => {
            let Some(n) = m.pick(node, |k| !matches!(k, Kind::Symlink(_))) else {
                return;
            };
            let key = format!("user.x{name}").into_bytes();
            let present = m.inodes[&n].xattrs.contains_key(&key);
            let ino = m.inodes[&n].ino;
            let real = fs.removexattr(&root, ino, &key);
            if present {
                real.unwrap_or_else(|e| panic!("{op:?}: {e}"));
                model.inodes.get_mut(&n).expect("n").xattrs.remove(&key);
            } else {
                assert!(matches!(real, Err(Error::NoAttr)), "{op:?}: {real:?}");
            }
        }
        Op::Fsync { node } => {
            let Some(ino) = fsync_target(m, node) else {
                return;
            };
            fs.fsync(ino).unwrap_or_else(|e| panic!("{op:?}: {e}"));
        }
        Op::Defrag { file } => {
            let Some(n) = m.pick(file, |k| matches!(k, Kind::File(_))) else {
                return;
            };
            match fs.defrag(m.inodes[&n].ino, 0.0, false) {
                Ok(_) | Err(Error::NoSpace) => {}
                Err(e) => panic!("{op:?}: {e}"),
            }
        }
        Op::Sync
        | Op::Remount
        | Op::CrashCut
        | Op::Clean { .. }
        | Op::Snapshot { .. }
        | Op::DeleteSnapshot { .. }
        | Op::Clone { .. }
        | Op::InBranch { .. }
        | Op::DeleteBranch { .. }
        | Op::Rollback { .. } => {}
    }
}
