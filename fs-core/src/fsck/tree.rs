//! The namespace and reference checks: every node reached from exactly one
//! owner, at the right kind and level; every directory index in key order
//! with hashes that match; the tree connected, without cycles, with `..`
//! and link counts right; nothing lost, nothing leaked.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};

use super::facts::{Entry, Facts, LeafFacts};
use super::finding::{Finding, Fix, Kind, Severity};
use super::scan::{Held, Scan};
use super::space::PageSink;
use crate::acl::Acl;
use crate::block_ptr::BlockPtr;
use crate::dir_index::base_key;
use crate::file_map::{slot_base, span, SLOT_LEVELS};
use crate::fs::{dtype_of, FLAG_ORPHAN};
use crate::ids::{CheckpointNo, Ino, Nid, PageAddr, Vpn};
use crate::node::{Node, NodeBody};
use crate::page_table::PatEntry;
use crate::xattr::{Namespace, XattrNode};

/// What a page is used for (for the space and summary checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Page `idx` of inode `ino`, with its checksum.
    Data(Ino, u64, u32),
    /// A node.
    Node(Nid),
    /// A page of a table.
    Table,
    /// The checkpoint.
    Checkpoint,
    /// A unit only retained checkpoints hold (on a deadlist).
    Held(Vpn),
    /// A deadlist page of a retained checkpoint.
    Deadlist(CheckpointNo),
    /// Page `nth` (from 1) of the unit whose first page is at `first`.
    Rest { first: PageAddr, nth: u64 },
    /// A compressed cluster (or a sealed page) of inode `ino`, its first
    /// page at `base`, holding `count` pages of the file.
    Packed(Ino, u64, u8),
}

impl std::fmt::Display for Use {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Use::Data(ino, idx, _) => write!(f, "page {idx} of inode {ino}"),
            Use::Node(nid) => write!(f, "node {nid}"),
            Use::Table => write!(f, "a table page"),
            Use::Checkpoint => write!(f, "the checkpoint"),
            Use::Held(vpn) => write!(f, "unit {vpn}, held by a retained checkpoint"),
            Use::Deadlist(no) => write!(f, "a deadlist page of checkpoint {no}"),
            Use::Rest { first, nth } => write!(f, "page {nth} of the unit at {first}"),
            Use::Packed(ino, base, _) => write!(f, "the cluster at page {base} of inode {ino}"),
        }
    }
}

/// A unit a chain made, as the pointers of its pages describe it.
#[derive(Debug)]
pub struct PackedUnit {
    /// Its file.
    pub ino: Ino,
    /// Its vpn.
    pub vpn: crate::ids::Vpn,
    /// The file page its first logical page is.
    pub base: u64,
    /// Its page address table entry.
    pub entry: PatEntry,
    /// Logical pages it holds.
    pub count: u8,
    /// (slot, checksum of the logical page) of every page pointing at it.
    pub slots: Vec<(u8, u32)>,
}

/// Results the later checks need.
#[derive(Debug, Default)]
pub struct Tree {
    /// Compressed clusters (each handed to the page sink once).
    pub packed: Vec<PackedUnit>,
    /// Stored data pages (each handed to the page sink).
    pub data_pages: u64,
    /// Unwritten (fallocated) pages.
    pub unwritten: u64,
    /// Inodes in use.
    pub inodes: u64,
    /// Directories.
    pub directories: u64,
    /// Inodes waiting in the graveyard.
    pub orphans: u64,
}

struct Walker<'a, 's> {
    scan: &'a Scan,
    seed: u64,
    findings: &'s mut Vec<Finding>,
    pages: &'s mut dyn PageSink,
    reached: FxHashSet<Nid>,
    tree: Tree,
    /// The walk met a node it could not read (reported): the counts of
    /// the inode being walked cannot be checked.
    unreadable: bool,
    /// The packed units of the file being walked, by vpn: where each is
    /// in `tree.packed`.
    file_units: FxHashMap<Vpn, usize>,
}

fn inode_of(scan: &Scan, ino: Ino) -> Option<&Facts> {
    scan.nodes.pack(ino.pack())?.get(ino)
}

/// Every inode in the decoded packs, by number.
pub(super) fn all_inodes(scan: &Scan) -> impl Iterator<Item = (Ino, &Facts)> {
    scan.nodes.iter().flat_map(|(nid, node)| {
        let slots = match node {
            Held::Pack(p) => p.slots.as_slice(),
            _ => &[],
        };
        slots
            .iter()
            .enumerate()
            .filter_map(move |(k, s)| Some((Ino::new(nid, k), s.as_ref()?)))
    })
}

impl<'a> Walker<'a, '_> {
    /// Marks `nid` reached from inode `ino`; returns the node if it may be
    /// walked further.
    fn reach(&mut self, ino: Ino, nid: Nid) -> Option<&'a Held> {
        let scan: &'a Scan = self.scan;
        let Some(held) = scan.nodes.held(nid) else {
            let msg = if scan.nat.contains_key(&nid) {
                "refers to a damaged node"
            } else if scan.nid_lost(nid) {
                "refers to a node whose table entry is on a damaged page"
            } else {
                "refers to a node that is not allocated"
            };
            self.unreadable |= scan.nat.contains_key(&nid) || scan.nid_lost(nid);
            self.findings.push(
                Finding::new(Severity::Error, Kind::NodeMisplaced, msg)
                    .ino(ino)
                    .nid(nid)
                    .fix(Fix::Detach { ino, nid }),
            );
            return None;
        };
        // A node of another inode: this reference is the wrong one (the
        // owner's, walked from the owner, keeps it). A pack reached here
        // (an empty one: the others are reached already) is named below
        // as the wrong kind of node.
        if held.ino() != ino && !matches!(held, Held::Pack(_)) {
            self.findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::NodeMisplaced,
                    format!("node belongs to inode {}", held.ino()),
                )
                .ino(ino)
                .nid(nid)
                .fix(Fix::Detach { ino, nid }),
            );
            return None;
        }
        if !self.reached.insert(nid) {
            // Twice from its own inode: which reference is right cannot be
            // known. A directory's index is built again from its leaves
            // (each read once); one of a file's two references (the first
            // found) gets a copy of the node, so that it reads as it does.
            let fix = match held {
                Held::Leaf { .. } => Fix::RebuildDir { dir: ino },
                Held::Node(n) if matches!(n.body, NodeBody::DirInternal(_)) => {
                    Fix::RebuildDir { dir: ino }
                }
                _ => Fix::CloneNode { ino, nid },
            };
            self.findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::NodeSharedTwice,
                    "node referenced twice",
                )
                .ino(ino)
                .nid(nid)
                .fix(fix),
            );
            return None;
        }
        Some(held)
    }

    fn pointer(&mut self, ino: Ino, idx: u64, p: &BlockPtr, count: &mut u64) {
        if p.is_packed() {
            return self.packed_pointer(ino, idx, p, count);
        }
        if p.is_stored() && self.scan.units.sealer().is_some() {
            // Sealed: every data unit is opened before it is checked, as a
            // compressed cluster is undone.
            *count += 1;
            return self.sealed_pointer(ino, idx, p);
        }
        if p.is_allocated() {
            *count += 1;
        }
        if p.is_unwritten() {
            self.tree.unwritten += 1;
        } else if p.is_stored() {
            self.tree.data_pages += 1;
            match self.scan.units.unit(p.vpn) {
                Some((addr, pages)) => self.pages.unit(addr, pages, Use::Data(ino, idx, p.crc)),
                None => self.unit_missing(ino, idx, p),
            }
        }
    }

    fn unit_missing(&mut self, ino: Ino, idx: u64, p: &BlockPtr) {
        self.findings.push(
            Finding::new(
                Severity::Error,
                Kind::UnitMissing,
                format!(
                    "page {idx} points at unit {}, free in the page address table",
                    p.vpn
                ),
            )
            .ino(ino)
            .fix(Fix::DropPages {
                ino,
                first: idx,
                count: 1,
            }),
        );
    }

    /// A page of a compressed cluster: the first pointer met to its unit
    /// counts the unit's stored pages; every one must agree on where the
    /// unit starts and how many pages it holds.
    fn packed_pointer(&mut self, ino: Ino, idx: u64, p: &BlockPtr, count: &mut u64) {
        let base = p.unit_base(idx);
        if let Some(&i) = self.file_units.get(&p.vpn) {
            let u = &mut self.tree.packed[i];
            if u.base == base && u.count == p.count {
                u.slots.push((p.slot, p.crc));
                return;
            }
            let msg = format!(
                "page {idx} says unit {} holds {} pages from {base}; an earlier page, {} from {}",
                p.vpn, p.count, u.count, u.base
            );
            // The earlier page's shape is the one the unit was read with;
            // this pointer takes it (its checksum, of its own page, tells
            // a --verify-data check whether that was right).
            let f = Finding::new(Severity::Error, Kind::UnitMisshapen, msg).ino(ino);
            self.findings.push(f.fix(Fix::Reshape {
                ino,
                idx,
                base: u.base,
                count: u.count,
            }));
            return;
        }
        let Some((addr, pages)) = self.scan.units.unit(p.vpn) else {
            return self.unit_missing(ino, idx, p);
        };
        let Some(entry) = self.scan.units.shaped(p.vpn).filter(|e| e.transform.0 != 0) else {
            let msg = format!(
                "page {idx} points into unit {} as a compressed cluster, but it is stored raw",
                p.vpn
            );
            let f = Finding::new(Severity::Error, Kind::UnitMisshapen, msg).ino(ino);
            self.findings.push(f.fix(Fix::DropPages {
                ino,
                first: idx,
                count: 1,
            }));
            return;
        };
        *count += pages;
        self.tree.data_pages += pages;
        self.pages
            .unit(addr, pages, Use::Packed(ino, base, p.count));
        self.file_units.insert(p.vpn, self.tree.packed.len());
        self.tree.packed.push(PackedUnit {
            ino,
            vpn: p.vpn,
            base,
            entry,
            count: p.count,
            slots: vec![(p.slot, p.crc)],
        });
    }

    /// A raw data page of a sealed volume: a unit of one page, verified
    /// (with --verify-data) by opening it.
    fn sealed_pointer(&mut self, ino: Ino, idx: u64, p: &BlockPtr) {
        self.tree.data_pages += 1;
        let Some(entry) = self.scan.units.entry(p.vpn) else {
            return self.unit_missing(ino, idx, p);
        };
        self.pages
            .unit(entry.addr, u64::from(entry.pages), Use::Packed(ino, idx, 1));
        self.tree.packed.push(PackedUnit {
            ino,
            vpn: p.vpn,
            base: idx,
            entry,
            count: 1,
            slots: vec![(0, p.crc)],
        });
    }

    /// Walks a file map node expected at `level`; counts allocated pages.
    fn map_node(&mut self, ino: Ino, nid: Nid, level: u8, base: u64, count: &mut u64) {
        let Some(held) = self.reach(ino, nid) else {
            return;
        };
        let body = match held {
            Held::Node(node) => Some(&node.body),
            _ => None,
        };
        match (body, level) {
            (Some(NodeBody::Direct(d)), 0) => {
                let ptrs = d.ptrs.clone();
                for (i, p) in ptrs.iter().enumerate() {
                    self.pointer(ino, base + i as u64, p, count);
                }
            }
            (Some(NodeBody::Indirect(ind)), l) if l > 0 && held.level() == l => {
                let kids = ind.nids.clone();
                for (i, c) in kids.iter().enumerate().filter(|(_, c)| !c.is_none()) {
                    self.map_node(ino, *c, l - 1, base + i as u64 * span(l - 1), count);
                }
            }
            _ => self.findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::NodeMisplaced,
                    format!("file map expects a node of level {level} here"),
                )
                .ino(ino)
                .nid(nid)
                .fix(Fix::Detach { ino, nid }),
            ),
        }
    }

    fn file_map(&mut self, ino: Ino, inode: &Facts) -> u64 {
        self.file_units.clear();
        let mut count = 0;
        for (i, p) in inode.ptrs.iter().enumerate() {
            self.pointer(ino, i as u64, p, &mut count);
        }
        for (slot, nid) in inode.map_nids().iter().enumerate() {
            if !nid.is_none() {
                let level = SLOT_LEVELS[slot];
                self.map_node(ino, *nid, level, slot_base(slot), &mut count);
            }
        }
        count
    }

    /// Walks a directory index; returns its leaves in key order and the
    /// number of index nodes.
    fn dir_index(&mut self, ino: Ino, root: Nid) -> (Listing<'a>, u64) {
        let mut leaves = Vec::new();
        let mut nodes = 0;
        let mut stack = vec![(root, None::<u8>)];
        while let Some((nid, want_level)) = stack.pop() {
            let Some(held) = self.reach(ino, nid) else {
                continue;
            };
            nodes += 1;
            if want_level.is_some_and(|l| l != held.level()) {
                self.findings.push(
                    Finding::new(
                        Severity::Error,
                        Kind::DirIndexBroken,
                        "index node at the wrong level",
                    )
                    .ino(ino)
                    .nid(nid)
                    .fix(Fix::RebuildDir { dir: ino }),
                );
            }
            match held {
                Held::Leaf { leaf, .. } => leaves.push(&**leaf),
                Held::Node(Node {
                    level,
                    body: NodeBody::DirInternal(int),
                    ..
                }) if *level > 0 => {
                    // Children go on the stack in reverse so leaves come out in key order.
                    for (_, c) in int.children.iter().rev() {
                        stack.push((*c, Some(level - 1)));
                    }
                }
                _ => self.findings.push(
                    Finding::new(
                        Severity::Error,
                        Kind::NodeMisplaced,
                        "not a directory index node",
                    )
                    .ino(ino)
                    .nid(nid)
                    .fix(Fix::Detach { ino, nid }),
                ),
            }
        }
        let listing = Listing(leaves);
        let mut last = None;
        for e in listing.entries() {
            if let Some(before) = last.filter(|&k| k >= e.key) {
                let msg = format!("entries out of key order ({before:#x} then {:#x})", e.key);
                let f = Finding::new(Severity::Error, Kind::DirIndexBroken, msg).ino(ino);
                self.findings.push(f.fix(Fix::RebuildDir { dir: ino }));
                break;
            }
            last = Some(e.key);
        }
        for e in listing.entries() {
            if base_key(e.name, self.seed) != e.key & !0xFF {
                let msg = format!(
                    "entry '{}' is filed under the wrong hash",
                    String::from_utf8_lossy(e.name)
                );
                let f = Finding::new(Severity::Error, Kind::DirIndexBroken, msg).ino(ino);
                self.findings.push(f.fix(Fix::RebuildDir { dir: ino }));
            }
        }
        (listing, nodes)
    }
}

/// Runs the reference and namespace checks, handing every data page
/// found to `pages`.
pub fn check(
    scan: &Scan,
    seed: u64,
    findings: &mut Vec<Finding>,
    pages: &mut dyn PageSink,
) -> Tree {
    let mut w = Walker::new(scan, seed, findings, pages);
    let entries_of = w.inodes();
    namespace(&mut w, &entries_of);
    for (nid, _) in scan.nodes.iter() {
        if !w.reached.contains(&nid) {
            w.findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::NodeLeaked,
                    "allocated node referenced by nothing",
                )
                .nid(nid)
                .fix(Fix::FreeNode { nid }),
            );
        }
    }
    w.tree
}

/// Hands `pages` the same data pages as [`check`], without checking (to
/// name the pages of a segment the check found wrong).
pub fn pages(scan: &Scan, seed: u64, pages: &mut dyn PageSink) {
    let mut ignored = Vec::new();
    Walker::new(scan, seed, &mut ignored, pages).inodes();
}

impl<'a, 's> Walker<'a, 's> {
    fn new(
        scan: &'a Scan,
        seed: u64,
        findings: &'s mut Vec<Finding>,
        pages: &'s mut dyn PageSink,
    ) -> Self {
        let mut reached = FxHashSet::default();
        for (nid, node) in scan.nodes.iter() {
            if let Held::Pack(p) = node {
                // An empty pack is freed at once; one left behind is a leak,
                // reported as an unreached node.
                if p.used() > 0 {
                    reached.insert(nid);
                }
            }
        }
        Walker {
            scan,
            seed,
            findings,
            pages,
            reached,
            tree: Tree::default(),
            unreadable: false,
            file_units: FxHashMap::default(),
        }
    }

    /// Walks every inode's attribute node, directory index or file map;
    /// returns each directory's entries.
    fn inodes(&mut self) -> FxHashMap<Ino, Listing<'a>> {
        let scan = self.scan;
        let mut entries_of = FxHashMap::default();
        for (ino, inode) in all_inodes(scan) {
            self.tree.inodes += 1;
            if !inode.xattr_nid().is_none() {
                self.xattr(ino, inode.xattr_nid(), inode.is_dir());
            }
            if inode.is_dir() {
                self.tree.directories += 1;
                entries_of.insert(ino, self.directory(ino, inode));
            } else {
                // An inode holding its bytes inline has no map, and no pages.
                self.unreadable = false;
                let count = if inode.has_inline() {
                    0
                } else {
                    self.file_map(ino, inode)
                };
                if count != inode.blocks && !self.unreadable {
                    let msg = format!("inode says {} pages, its map holds {count}", inode.blocks);
                    let fix = Fix::Blocks { ino, blocks: count };
                    self.findings.push(
                        Finding::new(Severity::Error, Kind::BlockCountWrong, msg)
                            .ino(ino)
                            .fix(fix),
                    );
                }
            }
        }
        entries_of
    }

    fn xattr(&mut self, ino: Ino, nid: Nid, is_dir: bool) {
        let Some(held) = self.reach(ino, nid) else {
            return;
        };
        let body = match held {
            Held::Node(node) => Some(&node.body),
            _ => None,
        };
        let found = match body {
            Some(NodeBody::Xattr(x)) if !x.entries.is_empty() => {
                self.acls(ino, nid, x, is_dir);
                return;
            }
            // The last attribute removed frees the node at once.
            Some(NodeBody::Xattr(_)) => Finding::new(
                Severity::Error,
                Kind::NodeLeaked,
                "attribute node holds no attribute",
            )
            .fix(Fix::DropXattrNode { ino }),
            _ => Finding::new(
                Severity::Error,
                Kind::NodeMisplaced,
                "not an attribute node",
            )
            .fix(Fix::Detach { ino, nid }),
        };
        self.findings.push(found.ino(ino).nid(nid));
    }

    /// Checks the access control lists among an inode's attributes: each
    /// decodes (lists are validated when set), and only a directory has a
    /// default one.
    fn acls(&mut self, ino: Ino, nid: Nid, x: &XattrNode, is_dir: bool) {
        for a in &x.entries {
            let problem = match a.ns {
                Namespace::PosixAclAccess | Namespace::PosixAclDefault
                    if Acl::decode(&a.value).is_err() =>
                {
                    "does not decode"
                }
                Namespace::PosixAclDefault if !is_dir => "is on a file that is not a directory",
                _ => continue,
            };
            let full = a.full_name();
            let msg = format!("{} {problem}", String::from_utf8_lossy(&full));
            self.findings.push(
                Finding::new(Severity::Error, Kind::AclInvalid, msg)
                    .ino(ino)
                    .nid(nid)
                    .fix(Fix::RemoveXattr { ino, name: full }),
            );
        }
    }

    /// Walks a directory's index and checks its counts; returns its
    /// entries in key order.
    fn directory(&mut self, ino: Ino, inode: &Facts) -> Listing<'a> {
        self.unreadable = false;
        let (entries, nodes) = if inode.dir_root().is_none() {
            (Listing::default(), 0)
        } else {
            self.dir_index(ino, inode.dir_root())
        };
        if self.unreadable {
            return entries;
        }
        if entries.len() != inode.dir_entries() {
            let msg = format!(
                "directory says {} entries, its index holds {}",
                inode.dir_entries(),
                entries.len()
            );
            let f = Finding::new(Severity::Error, Kind::DirIndexBroken, msg).ino(ino);
            self.findings.push(f.fix(Fix::RebuildDir { dir: ino }));
        }
        if nodes != inode.blocks {
            let msg = format!("directory says {} index pages, has {nodes}", inode.blocks);
            let fix = Fix::Blocks { ino, blocks: nodes };
            self.findings.push(
                Finding::new(Severity::Error, Kind::BlockCountWrong, msg)
                    .ino(ino)
                    .fix(fix),
            );
        }
        entries
    }
}

/// Names counted per inode: a vector by inode number (numbers are dense,
/// as pack ids are; 4 bytes an inode where a map took about 17), a map for
/// numbers past it (only a damaged directory names such).
struct LinkCounts {
    dense: Vec<u32>,
    sparse: FxHashMap<Ino, u32>,
}

impl LinkCounts {
    fn new(bound: u64) -> LinkCounts {
        LinkCounts {
            dense: vec![0; bound as usize],
            sparse: FxHashMap::default(),
        }
    }

    fn add(&mut self, ino: Ino) {
        match self.dense.get_mut(ino.0 as usize) {
            Some(n) => *n += 1,
            None => *self.sparse.entry(ino).or_default() += 1,
        }
    }

    fn get(&self, ino: Ino) -> u32 {
        match self.dense.get(ino.0 as usize) {
            Some(n) => *n,
            None => self.sparse.get(&ino).copied().unwrap_or(0),
        }
    }
}

/// A directory's leaves in key order (a pointer a leaf, where a list of
/// its entries took one an entry).
#[derive(Default)]
struct Listing<'a>(Vec<&'a LeafFacts>);

impl<'a> Listing<'a> {
    fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        self.0.iter().flat_map(|l| l.entries())
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|l| l.len() as u64).sum()
    }
}

/// Walks the tree from the root: entries, `..`, cycles, link counts,
/// the graveyard, lost inodes.
fn namespace(w: &mut Walker<'_, '_>, entries_of: &FxHashMap<Ino, Listing<'_>>) {
    let scan = w.scan;
    let mut links = LinkCounts::new(scan.nodes.id_bound() * crate::ids::PACK_SLOTS + 1);
    let mut seen_dirs: FxHashSet<Ino> = FxHashSet::from_iter([Ino::ROOT]);
    let mut queue = VecDeque::from([Ino::ROOT]);
    while let Some(dir) = queue.pop_front() {
        let mut subdirs = 0;
        // In inode order, so that the inodes named are looked up pack by
        // pack rather than in the hash order of the names.
        let mut entries: Vec<Entry> = entries_of
            .get(&dir)
            .map(|l| l.entries().collect())
            .unwrap_or_default();
        entries.sort_unstable_by_key(|e| e.ino);
        for e in entries {
            // Borrowed unless the name is not UTF-8: no allocation per entry.
            let name = String::from_utf8_lossy(e.name);
            let Some(target) = inode_of(scan, e.ino) else {
                w.findings.push(
                    Finding::new(
                        Severity::Error,
                        Kind::DanglingEntry,
                        format!("entry '{name}' names inode {}, which is not in use", e.ino),
                    )
                    .ino(dir)
                    .fix(Fix::RemoveEntry {
                        dir,
                        name: e.name.to_vec(),
                    }),
                );
                continue;
            };
            if dtype_of(target.mode) != e.dtype {
                w.findings.push(
                    Finding::new(
                        Severity::Error,
                        Kind::DirIndexBroken,
                        format!("entry '{name}' has the wrong type"),
                    )
                    .ino(dir)
                    .fix(Fix::RebuildDir { dir }),
                );
            }
            if target.is_dir() {
                subdirs += 1;
                if !seen_dirs.insert(e.ino) {
                    w.findings.push(
                        Finding::new(
                            Severity::Error,
                            Kind::DirectoryCycle,
                            format!("directory '{name}' reached twice"),
                        )
                        .ino(e.ino)
                        .fix(Fix::RemoveEntry {
                            dir,
                            name: e.name.to_vec(),
                        }),
                    );
                    continue;
                }
                if target.parent() != dir {
                    let msg = format!(
                        "'..' of '{name}' is inode {}, the directory holding it is {dir}",
                        target.parent()
                    );
                    let fix = Fix::Parent {
                        ino: e.ino,
                        parent: dir,
                    };
                    w.findings.push(
                        Finding::new(Severity::Error, Kind::ParentWrong, msg)
                            .ino(e.ino)
                            .fix(fix),
                    );
                }
                queue.push_back(e.ino);
            } else {
                links.add(e.ino);
            }
        }
        if let Some(d) = inode_of(scan, dir) {
            if d.nlink != 2 + subdirs {
                let msg = format!(
                    "directory link count {} but 2 + {subdirs} subdirectories",
                    d.nlink
                );
                let fix = Fix::Links {
                    ino: dir,
                    links: 2 + subdirs,
                };
                w.findings.push(
                    Finding::new(Severity::Error, Kind::LinkCountWrong, msg)
                        .ino(dir)
                        .fix(fix),
                );
            }
        }
    }
    let mut parked = FxHashSet::default();
    for e in entries_of
        .get(&Ino::GRAVEYARD)
        .into_iter()
        .flat_map(Listing::entries)
    {
        match inode_of(scan, e.ino) {
            Some(i) if i.flags & FLAG_ORPHAN != 0 && i.nlink == 0 => {
                parked.insert(e.ino);
                w.tree.orphans += 1;
            }
            _ => w.findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::DanglingEntry,
                    "graveyard entry is not an orphan inode",
                )
                .ino(e.ino)
                .fix(Fix::RemoveEntry {
                    dir: Ino::GRAVEYARD,
                    name: e.name.to_vec(),
                }),
            ),
        }
    }
    for (nid, inode) in all_inodes(scan) {
        if Some(nid) == scan.quota_ino {
            // Named by no directory: a regular file with its one link.
            if !inode.is_reg() || inode.nlink != 1 {
                let msg = format!(
                    "the quota file has mode {:o} and {} links (a regular file, one link)",
                    inode.mode, inode.nlink
                );
                let f = Finding::new(Severity::Error, Kind::LinkCountWrong, msg).ino(nid);
                w.findings.push(f.fix(Fix::QuotaInode { ino: nid }));
            }
            continue;
        }
        if inode.is_dir() || nid == Ino::ROOT || nid == Ino::GRAVEYARD {
            if inode.is_dir()
                && !seen_dirs.contains(&nid)
                && nid != Ino::GRAVEYARD
                && !parked.contains(&nid)
            {
                w.findings.push(
                    Finding::new(
                        Severity::Error,
                        Kind::InodeLost,
                        "directory reachable from nowhere",
                    )
                    .ino(nid)
                    .fix(Fix::Reconnect { ino: nid }),
                );
            }
            continue;
        }
        let counted = links.get(nid);
        if counted == 0 && !parked.contains(&nid) {
            w.findings.push(
                Finding::new(
                    Severity::Error,
                    Kind::InodeLost,
                    "inode in use but named nowhere",
                )
                .ino(nid)
                .fix(Fix::Reconnect { ino: nid }),
            );
        } else if counted != inode.nlink && !parked.contains(&nid) {
            let msg = format!("link count {} but {counted} names", inode.nlink);
            let fix = Fix::Links {
                ino: nid,
                links: counted,
            };
            w.findings.push(
                Finding::new(Severity::Error, Kind::LinkCountWrong, msg)
                    .ino(nid)
                    .fix(fix),
            );
        }
    }
}
