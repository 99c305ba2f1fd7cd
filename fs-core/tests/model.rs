//! Model-based test: random sequences of namespace, data and attribute
//! operations run against the real filesystem (on a memory device) and an
//! in-memory reference model; every result must agree, the whole tree must
//! match after every commit and remount, and an image cut at any point
//! (as a crash would leave it) must mount and show the last committed state.

use std::collections::BTreeMap;
use std::mem::discriminant;
use std::sync::Arc;

use pagelog_core::fs::RenameFlags;
use pagelog_core::inode::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use pagelog_core::{
    format, BlockDevice, Cred, Error, Filesystem, FormatOptions, Ino, MemDevice, MountOptions, Nid,
};
use proptest::prelude::*;

const NAMES: [&[u8]; 6] = [
    b"a",
    b"b",
    b"c",
    b"dir",
    b"long-name-with-some-bytes",
    b"\xff\xfe",
];
const MAX_OFFSET: u32 = 1 << 20;

#[derive(Clone, Debug)]
enum Op {
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
    Sync,
    Remount,
    CrashCut,
}

fn op_strategy() -> impl Strategy<Value = Op> {
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
        1 => (any::<u8>(), 0..MAX_OFFSET, 1..100_000u32).prop_map(|(file, offset, len)| Op::Punch { file, offset, len }),
        1 => (any::<u8>(), 0..MAX_OFFSET, 1..100_000u32, any::<bool>()).prop_map(|(file, offset, len, keep)| Op::Fallocate { file, offset, len, keep }),
        1 => Just(Op::Sync),
        1 => Just(Op::Remount),
        1 => Just(Op::CrashCut),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    File(Vec<u8>),
    Dir(BTreeMap<Vec<u8>, usize>),
    Symlink(Vec<u8>),
}

#[derive(Clone, Debug)]
struct MInode {
    kind: Kind,
    nlink: u32,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    ino: Ino,
    parent: usize,
}

/// The reference model: inodes by model id; id 0 is the root.
#[derive(Clone, Debug)]
struct Model {
    inodes: BTreeMap<usize, MInode>,
    next: usize,
}

impl Model {
    fn new() -> Model {
        let root = MInode {
            kind: Kind::Dir(BTreeMap::new()),
            nlink: 2,
            xattrs: BTreeMap::new(),
            ino: Nid::ROOT,
            parent: 0,
        };
        Model {
            inodes: BTreeMap::from([(0, root)]),
            next: 1,
        }
    }

    fn ids(&self, pred: impl Fn(&Kind) -> bool) -> Vec<usize> {
        self.inodes
            .iter()
            .filter(|(_, i)| pred(&i.kind))
            .map(|(id, _)| *id)
            .collect()
    }

    fn pick(&self, sel: u8, pred: impl Fn(&Kind) -> bool) -> Option<usize> {
        let ids = self.ids(pred);
        (!ids.is_empty()).then(|| ids[sel as usize % ids.len()])
    }

    fn entries(&self, dir: usize) -> &BTreeMap<Vec<u8>, usize> {
        match &self.inodes[&dir].kind {
            Kind::Dir(e) => e,
            _ => panic!("not a dir"),
        }
    }

    fn entries_mut(&mut self, dir: usize) -> &mut BTreeMap<Vec<u8>, usize> {
        match &mut self.inodes.get_mut(&dir).expect("dir").kind {
            Kind::Dir(e) => e,
            _ => panic!("not a dir"),
        }
    }

    fn data_mut(&mut self, id: usize) -> &mut Vec<u8> {
        match &mut self.inodes.get_mut(&id).expect("file").kind {
            Kind::File(d) => d,
            _ => panic!("not a file"),
        }
    }

    fn is_dir(&self, id: usize) -> bool {
        matches!(self.inodes[&id].kind, Kind::Dir(_))
    }

    fn add(&mut self, dir: usize, name: &[u8], kind: Kind, ino: Ino) -> usize {
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
    fn drop_link(&mut self, id: usize) {
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

    fn within(&self, mut dir: usize, ancestor: usize) -> bool {
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

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn xattr_size(x: &BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
    x.iter().map(|(k, v)| 4 + k.len() - 5 + v.len()).sum()
}

struct Harness {
    dev: Arc<MemDevice>,
    fs: Option<Filesystem>,
    model: Model,
    committed: Model,
}

fn opts() -> MountOptions {
    MountOptions {
        dirty_limit: 256 << 10,
        ..MountOptions::default()
    }
}

impl Harness {
    fn new() -> Harness {
        let dev = Arc::new(MemDevice::new(32768));
        format(
            dev.clone(),
            &FormatOptions {
                pages_per_segment: 64,
                ..FormatOptions::default()
            },
        )
        .expect("format");
        let fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts()).expect("mount");
        Harness {
            dev,
            fs: Some(fs),
            model: Model::new(),
            committed: Model::new(),
        }
    }

    fn fs(&mut self) -> &mut Filesystem {
        self.fs.as_mut().expect("mounted")
    }

    /// Runs `op` on both sides and checks that they agree.
    fn apply(&mut self, op: &Op) {
        let root = Cred::root();
        let m = &self.model;
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
                        self.fs().mknod(&root, dino, nm, S_IFREG | 0o644, 0),
                        Kind::File(Vec::new()),
                    ),
                    Op::Mkdir { .. } => (
                        self.fs().mkdir(&root, dino, nm, 0o755),
                        Kind::Dir(BTreeMap::new()),
                    ),
                    Op::Symlink { len, .. } => {
                        let target = pattern(len as usize, 1)
                            .iter()
                            .map(|b| b'a' + b % 26)
                            .collect::<Vec<u8>>();
                        (
                            self.fs().symlink(&root, dino, nm, &target),
                            Kind::Symlink(target),
                        )
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
                    self.model.add(d, nm, kind, a.ino);
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
                    self.fs()
                        .write(&root, ino, u64::from(offset), &data)
                        .expect("write"),
                    data.len()
                );
                let d = self.model.data_mut(f);
                let end = offset as usize + data.len();
                if d.len() < end {
                    d.resize(end, 0);
                }
                d[offset as usize..end].copy_from_slice(&data);
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
                self.fs().setattr(&root, ino, &set).expect("truncate");
                self.model.data_mut(f).resize(size as usize, 0);
            }
            Op::Punch { file, offset, len } => {
                let Some(f) = m.pick(file, |k| matches!(k, Kind::File(_))) else {
                    return;
                };
                let ino = m.inodes[&f].ino;
                self.fs()
                    .fallocate(ino, u64::from(offset), u64::from(len), 3)
                    .expect("punch");
                let d = self.model.data_mut(f);
                let end = (offset as usize + len as usize).min(d.len());
                if (offset as usize) < end {
                    d[offset as usize..end].fill(0);
                }
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
                self.fs()
                    .fallocate(ino, u64::from(offset), u64::from(len), u32::from(keep))
                    .expect("fallocate");
                let d = self.model.data_mut(f);
                let end = offset as usize + len as usize;
                if !keep && d.len() < end {
                    d.resize(end, 0);
                }
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
                    self.fs().unlink(&root, dino, nm)
                } else {
                    self.fs().rmdir(&root, dino, nm)
                };
                same_outcome(op, &expect, &real);
                if let (Ok(()), Some(t)) = (expect, target) {
                    self.model.entries_mut(d).remove(nm);
                    self.model.drop_link(t);
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
                let real = self
                    .fs()
                    .rename(&root, fino, fnm, tino, tnm, RenameFlags::default());
                same_outcome(op, &expect, &real);
                if let (Ok(()), Some(s)) = (expect, src) {
                    if dst != Some(s) {
                        self.model.entries_mut(fd).remove(fnm);
                        if let Some(d) = self.model.entries_mut(td).insert(tnm.to_vec(), s) {
                            self.model.drop_link(d);
                        }
                        if self.model.is_dir(s) && fd != td {
                            self.model.inodes.get_mut(&s).expect("s").parent = td;
                            self.model.inodes.get_mut(&fd).expect("fd").nlink -= 1;
                            self.model.inodes.get_mut(&td).expect("td").nlink += 1;
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
                let real = self.fs().link(&root, fino, dino, nm);
                if exists {
                    assert!(matches!(real, Err(Error::Exists)), "{op:?}: {real:?}");
                } else {
                    real.unwrap_or_else(|e| panic!("{op:?}: {e}"));
                    self.model.entries_mut(d).insert(nm.to_vec(), f);
                    self.model.inodes.get_mut(&f).expect("f").nlink += 1;
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
                let real = self.fs().setxattr(&root, ino, &key, &value, 0);
                if fits {
                    real.unwrap_or_else(|e| panic!("{op:?}: {e}"));
                    self.model.inodes.get_mut(&n).expect("n").xattrs = after;
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
                let real = self.fs().removexattr(&root, ino, &key);
                if present {
                    real.unwrap_or_else(|e| panic!("{op:?}: {e}"));
                    self.model
                        .inodes
                        .get_mut(&n)
                        .expect("n")
                        .xattrs
                        .remove(&key);
                } else {
                    assert!(matches!(real, Err(Error::NoAttr)), "{op:?}: {real:?}");
                }
            }
            Op::Sync => {
                self.fs().sync().expect("sync");
                self.committed = self.model.clone();
                self.check(&self.model.clone());
            }
            Op::Remount => {
                self.fs.take().expect("fs").unmount().expect("unmount");
                self.fs = Some(
                    Filesystem::mount(self.dev.clone() as Arc<dyn BlockDevice>, opts())
                        .expect("remount"),
                );
                self.committed = self.model.clone();
                self.check(&self.model.clone());
            }
            Op::CrashCut => {
                // The device as a power cut now would leave it (the memory
                // device applies writes in order, so this is the state
                // after the last completed write).
                let copy = Arc::new(MemDevice::from_bytes(&self.dev.snapshot()));
                let mut fs = Filesystem::mount(copy as Arc<dyn BlockDevice>, opts())
                    .expect("mount after a crash");
                let committed = self.committed.clone();
                compare(&mut fs, &committed);
                fs.unmount().expect("unmount the crash copy");
            }
        }
    }

    fn check(&mut self, model: &Model) {
        let fs = self.fs.as_mut().expect("fs");
        compare(fs, model);
    }
}

fn same_outcome(op: &Op, expect: &Result<(), Error>, real: &Result<(), Error>) {
    match (expect, real) {
        (Ok(()), Ok(())) => {}
        (Err(a), Err(b)) if discriminant(a) == discriminant(b) => {}
        _ => panic!("{op:?}: model says {expect:?}, filesystem says {real:?}"),
    }
}

/// Walks the real tree against the model.
fn compare(fs: &mut Filesystem, model: &Model) {
    let root = Cred::root();
    let mut inos: BTreeMap<usize, Ino> = BTreeMap::new();
    let mut stack = vec![(0usize, Nid::ROOT, b"/".to_vec())];
    while let Some((id, ino, path)) = stack.pop() {
        let mi = &model.inodes[&id];
        let a = fs
            .getattr(ino)
            .unwrap_or_else(|e| panic!("getattr {}: {e}", String::from_utf8_lossy(&path)));
        if let Some(prev) = inos.insert(id, ino) {
            assert_eq!(prev, ino, "hard links of one inode show different numbers");
        }
        assert_eq!(
            a.nlink,
            mi.nlink,
            "nlink of {}",
            String::from_utf8_lossy(&path)
        );
        let mut xnames: Vec<Vec<u8>> = fs
            .listxattr(&root, ino)
            .expect("listxattr")
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        xnames.sort();
        assert_eq!(
            xnames,
            mi.xattrs.keys().cloned().collect::<Vec<_>>(),
            "xattrs of {}",
            String::from_utf8_lossy(&path)
        );
        for (k, v) in &mi.xattrs {
            assert_eq!(&fs.getxattr(&root, ino, k).expect("getxattr"), v);
        }
        match &mi.kind {
            Kind::File(data) => {
                assert_eq!(a.mode & S_IFMT, S_IFREG);
                assert_eq!(
                    a.size,
                    data.len() as u64,
                    "size of {}",
                    String::from_utf8_lossy(&path)
                );
                let got = fs.read(ino, 0, data.len() as u32 + 10).expect("read");
                assert!(
                    got == *data,
                    "contents of {} differ",
                    String::from_utf8_lossy(&path)
                );
            }
            Kind::Symlink(t) => {
                assert_eq!(a.mode & S_IFMT, S_IFLNK);
                assert_eq!(&fs.readlink(ino).expect("readlink"), t);
            }
            Kind::Dir(entries) => {
                assert_eq!(a.mode & S_IFMT, S_IFDIR);
                let mut names = BTreeMap::new();
                fs.readdir(ino, 2, &mut |e| {
                    names.insert(e.name.clone(), e.ino);
                    true
                })
                .expect("readdir");
                assert_eq!(
                    names.keys().collect::<Vec<_>>(),
                    entries.keys().collect::<Vec<_>>(),
                    "entries of {}",
                    String::from_utf8_lossy(&path)
                );
                for (name, child) in entries {
                    let mut p = path.clone();
                    p.extend_from_slice(name);
                    p.push(b'/');
                    stack.push((*child, names[name], p));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn filesystem_matches_model(ops in proptest::collection::vec(op_strategy(), 1..80)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
        }
        h.apply(&Op::Sync);
        h.apply(&Op::CrashCut);
        h.apply(&Op::Remount);
        h.fs.take().expect("fs").unmount().expect("unmount");
    }
}

/// Regression: a directory moved into a sibling, then the old parent
/// removed, keeps its `..` and link counts right across a remount.
#[test]
fn moved_directory_keeps_parent_links() {
    let mut h = Harness::new();
    for op in [
        Op::Mkdir { dir: 0, name: 0 },
        Op::Mkdir { dir: 0, name: 1 },
        Op::Mkdir { dir: 1, name: 2 },
        Op::Rename {
            fdir: 1,
            fname: 2,
            tdir: 2,
            tname: 3,
        },
        Op::Remount,
        Op::Rmdir { dir: 0, name: 0 },
        Op::Remount,
    ] {
        h.apply(&op);
    }
}
