//! Fuzz past the checksums: a real image gets one hostile value (a count,
//! bound, address, node id or inode number out of its range, or a value
//! that contradicts the rest) in its checkpoint, superblocks, a table
//! entry or a node, with every checksum above it recomputed, so that only
//! the value is wrong. Then the checker finishes in bounded time without
//! panicking and reports a problem, and a mount (read-only and read-write)
//! either refuses with a clear error or mounts, and every operation
//! answers an error or the right data: never a panic, never a hang (each
//! case runs in a child process with a time limit).

use std::sync::{Arc, OnceLock};

use pagelog_core::checkpoint::off as cp_off;
use pagelog_core::dir_node::{self, INTERNAL_ENTRY, LEAF_ENTRY_FIXED};
use pagelog_core::fsck::{Level, Severity};
use pagelog_core::inode::{off as ino_off, S_IFMT, S_IFREG};
use pagelog_core::inode_pack::{slot_offset, SLOTS};
use pagelog_core::node::{self, Node, NodeBody};
use pagelog_core::recovery::recover;
use pagelog_core::superblock::off as sb_off;
use pagelog_core::{
    BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions, Nid, PageAddr,
};
use proptest::prelude::*;

mod support;
use support::edit::{node_page, used_nids, Edit, Editor, Place};

/// (name, contents) of a file in the root directory.
type Expected = (Vec<u8>, Vec<u8>);

/// Entries in the big directory: more than one index leaf holds.
const BIG_DIR: u32 = 400;

/// The base image: files of several sizes (some with a direct map node)
/// and attributes in the root, a directory whose index has an interior
/// node, a subdirectory and a symbolic link; cleanly unmounted.
fn base() -> &'static (Vec<u8>, Vec<Expected>) {
    static BASE: OnceLock<(Vec<u8>, Vec<Expected>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let dev = support::formatted(4096, 32);
        let mut fs = support::mount(&dev);
        let root = Cred::root();
        let mut files = Vec::new();
        for (i, len) in [0usize, 100, 5000, 30_000, 70_000].into_iter().enumerate() {
            let name = format!("f{i}").into_bytes();
            let data: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
            let a = fs
                .mknod(&root, Ino::ROOT, &name, S_IFREG | 0o644, 0)
                .expect("create");
            fs.write(&root, a.ino, 0, &data).expect("write");
            fs.setxattr(&root, a.ino, b"user.i", &[i as u8; 3], 0)
                .expect("xattr");
            files.push((name, data));
        }
        let d = fs.mkdir(&root, Ino::ROOT, b"d", 0o755).expect("mkdir").ino;
        for i in 0..BIG_DIR {
            let name = format!("entry-number-{i}");
            fs.mknod(&root, d, name.as_bytes(), S_IFREG | 0o600, 0)
                .expect("create");
        }
        fs.mkdir(&root, d, b"sub", 0o700).expect("mkdir");
        fs.symlink(&root, Ino::ROOT, b"link", b"f1")
            .expect("symlink");
        fs.unmount().expect("unmount");
        (dev.snapshot(), files)
    })
}

/// What makes a value hostile for a field.
#[derive(Clone, Debug)]
enum Rule {
    /// Anything but this value.
    Not(u64),
    /// This bound or more.
    AtLeast(u64),
    /// From `lo` up to, not including, `hi`.
    Within(u64, u64),
    /// One of these.
    OneOf(Vec<u64>),
}

impl Rule {
    fn hostile(&self, v: u64) -> bool {
        match self {
            Rule::Not(c) => v != *c,
            Rule::AtLeast(b) => v >= *b,
            Rule::Within(lo, hi) => *lo <= v && v < *hi,
            Rule::OneOf(set) => set.contains(&v),
        }
    }

    /// A hostile value of `width` bytes, chosen by `pick` among the large
    /// constants and values at the edge of the rule.
    fn value(&self, width: usize, pick: u64) -> u64 {
        let mask = if width == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * width)) - 1
        };
        let mut candidates = vec![0, 1, 1 << 32, 1 << 62, u64::MAX, pick];
        match self {
            Rule::Not(c) => candidates.extend([c ^ 1, c.wrapping_add(1 + pick % 64)]),
            Rule::AtLeast(b) => candidates.extend([*b, b + 1, b.saturating_add(pick % 4096)]),
            Rule::Within(lo, hi) => candidates.extend([*lo, hi - 1, lo + pick % (hi - lo)]),
            Rule::OneOf(set) => candidates.extend(set),
        }
        let ok: Vec<u64> = candidates
            .into_iter()
            .map(|v| v & mask)
            .filter(|&v| self.hostile(v))
            .collect();
        assert!(
            !ok.is_empty(),
            "no hostile value of {width} bytes for {self:?}"
        );
        ok[(pick % ok.len() as u64) as usize]
    }
}

/// A field to make hostile: where, how wide, by which rule, and its name.
#[derive(Clone, Debug)]
struct Target {
    name: String,
    place: Place,
    offset: usize,
    width: usize,
    rule: Rule,
}

fn target(
    name: impl Into<String>,
    place: Place,
    offset: usize,
    width: usize,
    rule: Rule,
) -> Target {
    Target {
        name: name.into(),
        place,
        offset,
        width,
        rule,
    }
}

fn u64_at(page: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(page[off..off + 8].try_into().expect("8"))
}

/// Every checkpoint field a checksum cannot vouch for.
fn checkpoint_targets(ed: &Editor, out: &mut Vec<Target>) {
    let geo = ed.geo;
    let cp = &ed.cp;
    let area_end = geo.first_segment_page + geo.segment_area_pages();
    let seg = geo.segment_start(cp.head_segment).0;
    let limit = geo.segment_area_pages() + 2;
    let mut page = vec![0u8; 4096];
    ed.dev.read(ed.cp_addr, &mut page).expect("read");
    let c = Place::Checkpoint;
    let max_used = *used_nids(ed).last().expect("nodes");
    let fields = [
        ("no", cp_off::CHECKPOINT_NO, 8, Rule::Not(cp.no.0)),
        (
            "record_seq",
            cp_off::RECORD_SEQ,
            8,
            Rule::Not(cp.record_seq),
        ),
        ("next_seq", cp_off::NEXT_SEQ, 8, Rule::Not(cp.next_seq)),
        (
            "head",
            cp_off::HEAD,
            8,
            Rule::OneOf(vec![0, seg - 1, seg + 33, area_end, u64::MAX]),
        ),
        (
            "head_segment",
            cp_off::HEAD_SEGMENT,
            8,
            Rule::AtLeast(geo.segment_count),
        ),
        (
            "next_segment",
            cp_off::NEXT_SEGMENT,
            8,
            Rule::AtLeast(geo.segment_count),
        ),
        (
            "nat_root.addr",
            cp_off::NAT_ROOT,
            8,
            Rule::Not(cp.nat_root.addr.0),
        ),
        (
            "nat_root.crc",
            cp_off::NAT_ROOT + 8,
            4,
            Rule::Not(u64::from(cp.nat_root.crc)),
        ),
        (
            "nat_root.depth",
            cp_off::NAT_ROOT + 12,
            1,
            Rule::Not(u64::from(cp.nat_root.depth)),
        ),
        (
            "sut_root.addr",
            cp_off::SUT_ROOT,
            8,
            Rule::Not(cp.sut_root.addr.0),
        ),
        (
            "sut_root.crc",
            cp_off::SUT_ROOT + 8,
            4,
            Rule::Not(u64::from(cp.sut_root.crc)),
        ),
        (
            "sut_root.depth",
            cp_off::SUT_ROOT + 12,
            1,
            Rule::Not(u64::from(cp.sut_root.depth)),
        ),
        (
            "nat_free_head",
            cp_off::NAT_FREE_HEAD,
            8,
            Rule::AtLeast(cp.nat_watermark.0),
        ),
        (
            "nat_watermark (out of range)",
            cp_off::NAT_WATERMARK,
            8,
            Rule::OneOf(vec![0, 1, limit + 1, 1 << 32, 1 << 62, u64::MAX]),
        ),
        (
            "nat_watermark (below a node in use)",
            cp_off::NAT_WATERMARK,
            8,
            Rule::Within(2, max_used + 1),
        ),
        (
            "next_generation",
            cp_off::NEXT_GENERATION,
            8,
            Rule::AtLeast((1 << 63) + 1),
        ),
        (
            "inode_count",
            cp_off::INODE_COUNT,
            8,
            Rule::Not(cp.inode_count),
        ),
        (
            "live_pages",
            cp_off::LIVE_PAGES,
            8,
            Rule::Not(cp.live_pages),
        ),
        (
            "empty_segments",
            cp_off::EMPTY_SEGMENTS,
            8,
            Rule::Not(cp.empty_segments),
        ),
        ("previous", cp_off::PREVIOUS, 8, Rule::AtLeast(area_end)),
        (
            "reserved_pages",
            cp_off::RESERVED_PAGES,
            8,
            Rule::Not(cp.reserved_pages),
        ),
        ("fs_id", cp_off::FS_ID, 8, Rule::Not(cp.fs_id)),
    ];
    for (name, off, width, rule) in fields {
        out.push(target(format!("checkpoint {name}"), c, off, width, rule));
    }
    assert_eq!(u64_at(&page, cp_off::NAT_WATERMARK), cp.nat_watermark.0);
}

/// Superblock fields, changed in both copies.
fn superblock_targets(ed: &Editor, out: &mut Vec<Target>) {
    let geo = ed.geo;
    let mut page = vec![0u8; 4096];
    ed.dev.read(PageAddr(0), &mut page).expect("read");
    let device_pages = u64_at(&page, sb_off::DEVICE_PAGES);
    let pps = u64::from(geo.pages_per_segment);
    let fits = (device_pages - geo.first_segment_page) / pps;
    let end = geo.first_segment_page + geo.segment_area_pages();
    let s = Place::Superblocks;
    let fields = [
        (
            "version",
            sb_off::VERSION,
            4,
            Rule::Not(u64::from(pagelog_core::layout::FORMAT_VERSION)),
        ),
        ("page_size", sb_off::PAGE_SIZE, 4, Rule::Not(4096)),
        // Bit 0 (transforms) is known; any value with another bit is not.
        ("incompat", sb_off::INCOMPAT, 8, Rule::AtLeast(2)),
        (
            "pages_per_segment",
            sb_off::PAGES_PER_SEGMENT,
            4,
            Rule::OneOf(vec![
                0,
                8,
                17,
                48,
                100,
                1 << 17,
                1 << 31,
                u64::from(u32::MAX),
            ]),
        ),
        (
            "segment_count (too few)",
            sb_off::SEGMENT_COUNT,
            8,
            Rule::Within(0, 16),
        ),
        (
            "segment_count (too many)",
            sb_off::SEGMENT_COUNT,
            8,
            Rule::AtLeast(fits + 1),
        ),
        (
            "first_segment_page (over the superblocks)",
            sb_off::FIRST_SEGMENT_PAGE,
            8,
            Rule::Within(0, 2),
        ),
        (
            "first_segment_page (past the end)",
            sb_off::FIRST_SEGMENT_PAGE,
            8,
            Rule::AtLeast(device_pages - geo.segment_area_pages() + 1),
        ),
        (
            "device_pages (too few)",
            sb_off::DEVICE_PAGES,
            8,
            Rule::Within(0, end),
        ),
        (
            "device_pages (more than the device)",
            sb_off::DEVICE_PAGES,
            8,
            Rule::AtLeast(ed.dev.len_pages() + 1),
        ),
        ("hash_seed", sb_off::HASH_SEED, 8, Rule::Not(ed.fs_id)),
        (
            "generation",
            sb_off::GENERATION,
            8,
            Rule::AtLeast((1 << 63) + 1),
        ),
        (
            "checkpoint_addr",
            sb_off::CHECKPOINT_ADDR,
            8,
            Rule::Not(ed.cp_addr.0),
        ),
        (
            "checkpoint_no",
            sb_off::CHECKPOINT_NO,
            8,
            Rule::Not(ed.cp.no.0),
        ),
    ];
    for (name, off, width, rule) in fields {
        out.push(target(format!("superblock {name}"), s, off, width, rule));
    }
}

/// Node address table entries of nodes in use, and usage table entries.
fn table_targets(ed: &Editor, out: &mut Vec<Target>) {
    for nid in used_nids(ed) {
        let addr = ed.node_addr(nid).0;
        let stored = pagelog_core::codec::crc32(&node_page(ed, nid));
        out.push(target(
            format!("node {nid} address"),
            Place::NatEntry(nid),
            0,
            8,
            Rule::Not(addr),
        ));
        out.push(target(
            format!("node {nid} checksum"),
            Place::NatEntry(nid),
            8,
            4,
            Rule::Not(u64::from(stored)),
        ));
    }
    let report = support::fsck(&ed.dev, Level::Full);
    assert_eq!(report.problems(), 0, "base image: {:?}", report.findings);
    for seg in 0..ed.geo.segment_count.min(12) {
        // The live count the table holds now is whatever a recount says.
        let live = live_of(ed, seg);
        out.push(target(
            format!("segment {seg} live pages"),
            Place::SutEntry(seg),
            0,
            4,
            Rule::Not(live),
        ));
    }
    // An entry past the last segment (the table page holds 255).
    let past = ed.geo.segment_count + 5;
    out.push(target(
        format!("segment {past} (past the last) live pages"),
        Place::SutEntry(past),
        0,
        4,
        Rule::AtLeast(1),
    ));
}

fn live_of(ed: &Editor, seg: u64) -> u64 {
    let dev = ed.dev.clone() as Arc<dyn BlockDevice>;
    let rec = recover(&*dev, false, None).expect("recover");
    let mut sut = pagelog_core::segment_usage::SegmentUsage::new(
        rec.checkpoint.sut_root,
        rec.sb.geometry,
        0,
        0,
    );
    u64::from(
        sut.get(&*dev, pagelog_core::ids::SegmentNo(seg))
            .expect("usage")
            .live,
    )
}

/// Fields of the inodes in a pack: the ones every check can see.
fn inode_targets(
    nid: u64,
    page: &[u8],
    pack: &pagelog_core::inode_pack::InodePack,
    w: u64,
    other: u64,
    out: &mut Vec<Target>,
) {
    let place = Place::Node(nid);
    // The first inodes of each pack: the others are alike.
    let used = pack.slots.iter().enumerate().take(SLOTS);
    for (k, inode) in used.filter_map(|(k, i)| Some((k, i.as_ref()?))).take(4) {
        let ino = Ino::new(Nid(nid), k).0;
        let base = slot_offset(k);
        let name = |f: &str| format!("inode {ino} {f}");
        // Past the watermark, far past, or a node of another kind (never
        // the one already there).
        let hostile_nid = |now: u64| {
            let ids = [w, w + 1, 1 << 32, 1 << 62, u64::MAX, other];
            Rule::OneOf(ids.into_iter().filter(|&n| n != now).collect())
        };
        out.push(target(
            name("blocks"),
            place,
            base + ino_off::BLOCKS,
            8,
            Rule::Not(inode.blocks),
        ));
        out.push(target(
            name("xattr_nid"),
            place,
            base + ino_off::XATTR_NID,
            8,
            hostile_nid(inode.xattr_nid.0),
        ));
        if inode.is_dir() {
            let entries = u64_at(page, base + ino_off::DIR_ENTRIES);
            out.push(target(
                name("dir_entries"),
                place,
                base + ino_off::DIR_ENTRIES,
                8,
                Rule::Not(entries),
            ));
            out.push(target(
                name("dir_root"),
                place,
                base + ino_off::DIR_ROOT,
                8,
                hostile_nid(inode.dir_root.0),
            ));
            if ino > 2 {
                out.push(target(
                    name("parent"),
                    place,
                    base + ino_off::PARENT,
                    8,
                    Rule::Not(inode.parent.0),
                ));
            }
        }
        if ino > 2 {
            out.push(target(
                name("nlink"),
                place,
                base + ino_off::NLINK,
                4,
                Rule::Not(u64::from(inode.nlink)),
            ));
        }
        if inode.mode & S_IFMT == S_IFREG {
            for slot in 0..4 {
                let off = base + ino_off::MAP_NIDS + 8 * slot;
                let now = inode.map_nids[slot].0;
                out.push(target(
                    name(&format!("map node {slot}")),
                    place,
                    off,
                    8,
                    hostile_nid(now),
                ));
            }
        }
    }
}

/// Node ids, inode numbers, counts and addresses inside every node.
fn node_targets(ed: &Editor, out: &mut Vec<Target>) {
    let w = ed.cp.nat_watermark.0;
    let nids = used_nids(ed);
    for &nid in &nids {
        let page = node_page(ed, nid);
        let node = Node::decode(&page, ed.node_addr(nid), Nid(nid)).expect("decode");
        let place = Place::Node(nid);
        // A node of another kind, to point at where this one is expected.
        let other = *nids.iter().find(|&&n| n != nid).expect("two nodes");
        out.push(target(
            format!("node {nid} header nid"),
            place,
            node::off::NID,
            8,
            Rule::Not(nid),
        ));
        if !matches!(node.body, NodeBody::InodePack(_)) {
            out.push(target(
                format!("node {nid} header inode"),
                place,
                node::off::INO,
                8,
                Rule::Not(node.ino.0),
            ));
        }
        let count = || {
            u64::from(u16::from_le_bytes(
                page[dir_node::COUNT..dir_node::COUNT + 2]
                    .try_into()
                    .expect("2"),
            ))
        };
        match &node.body {
            NodeBody::InodePack(p) => inode_targets(nid, &page, p, w, other, out),
            NodeBody::DirLeaf(l) => {
                out.push(target(
                    format!("leaf {nid} count"),
                    place,
                    dir_node::COUNT,
                    2,
                    Rule::Not(count()),
                ));
                let mut pos = dir_node::ENTRIES;
                for (i, e) in l.entries.iter().enumerate().take(8) {
                    let far = Rule::AtLeast(w * 16);
                    out.push(target(
                        format!("leaf {nid} entry {i} inode"),
                        place,
                        pos + 8,
                        8,
                        far,
                    ));
                    pos += LEAF_ENTRY_FIXED + e.name.len();
                }
            }
            NodeBody::DirInternal(int) => {
                out.push(target(
                    format!("interior {nid} count"),
                    place,
                    dir_node::COUNT,
                    2,
                    Rule::Not(count()),
                ));
                let kids: Vec<u64> = int.children.iter().map(|(_, c)| c.0).collect();
                for i in 0..kids.len() {
                    let off = dir_node::ENTRIES + i * INTERNAL_ENTRY + 8;
                    let mut set: Vec<u64> =
                        kids.iter().copied().filter(|&k| k != kids[i]).collect();
                    set.extend([w, 1 << 62, u64::MAX, other]);
                    set.retain(|&k| k != kids[i]);
                    out.push(target(
                        format!("interior {nid} child {i}"),
                        place,
                        off,
                        8,
                        Rule::OneOf(set),
                    ));
                }
            }
            NodeBody::Direct(d) => {
                let area_end = ed.geo.first_segment_page + ed.geo.segment_area_pages();
                for (i, p) in d
                    .ptrs
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.is_stored())
                    .take(4)
                {
                    let off = node::HEADER_SIZE + 16 * i;
                    let rule = Rule::OneOf(vec![
                        1,
                        ed.geo.first_segment_page - 1,
                        area_end,
                        1 << 40,
                        u64::MAX,
                    ]);
                    out.push(target(
                        format!("direct {nid} pointer {i} address"),
                        place,
                        off,
                        8,
                        rule,
                    ));
                    out.push(target(
                        format!("direct {nid} pointer {i} checksum"),
                        place,
                        off + 8,
                        4,
                        Rule::Not(u64::from(p.crc)),
                    ));
                }
            }
            NodeBody::Xattr(_) => {
                out.push(target(
                    format!("attributes {nid} count"),
                    place,
                    dir_node::COUNT,
                    2,
                    Rule::Not(count()),
                ));
            }
            NodeBody::Indirect(_) => {}
        }
    }
}

/// Every hostile edit the base image offers.
fn targets() -> &'static Vec<Target> {
    static TARGETS: OnceLock<Vec<Target>> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let ed = Editor::new(&base().0);
        let mut out = Vec::new();
        checkpoint_targets(&ed, &mut out);
        superblock_targets(&ed, &mut out);
        table_targets(&ed, &mut out);
        node_targets(&ed, &mut out);
        out
    })
}

/// A refusal that says what is wrong with the image.
fn clear_refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupt { .. }
            | Error::BadGeometry(_)
            | Error::NotPagelog(_)
            | Error::Unsupported(_)
    ) && !e.to_string().is_empty()
}

/// Every operation answers an error or the right data.
fn exercise(fs: &mut Filesystem, files: &[Expected], writable: bool) -> Result<(), TestCaseError> {
    let root = Cred::root();
    for (name, data) in files {
        let Ok(a) = fs.lookup(&root, Ino::ROOT, name) else {
            continue;
        };
        if let Ok(got) = fs.read(a.ino, 0, data.len() as u32 + 1) {
            prop_assert!(
                &got == data,
                "wrong bytes returned for {}",
                String::from_utf8_lossy(name)
            );
        }
        let _ = fs.getxattr(&root, a.ino, b"user.i");
        let _ = fs.getattr(a.ino);
    }
    let _ = fs.readdir(Ino::ROOT, 0, &mut |_| true);
    if let Ok(d) = fs.lookup(&root, Ino::ROOT, b"d") {
        let mut n = 0;
        let _ = fs.readdir(d.ino, 0, &mut |_| {
            n += 1;
            true
        });
        prop_assert!(n <= BIG_DIR as usize + 3, "readdir listed {n} entries");
        let _ = fs.lookup(&root, d.ino, b"entry-number-7");
    }
    let _ = fs.readlink(Ino(0)).ok();
    let _ = fs.statfs();
    if writable {
        if let Ok(a) = fs.mknod(&root, Ino::ROOT, b"new", S_IFREG | 0o644, 0) {
            let _ = fs.write(&root, a.ino, 0, &[5u8; 9000]);
        }
        let _ = fs.unlink(&root, Ino::ROOT, b"f3");
        if let Ok(d) = fs.lookup(&root, Ino::ROOT, b"d") {
            let _ = fs.unlink(&root, d.ino, b"entry-number-3");
            let _ = fs.mkdir(&root, d.ino, b"more", 0o755);
        }
        let _ = fs.sync();
    }
    Ok(())
}

/// The edited image, mounted read-only and read-write.
fn mounts(image: &[u8], files: &[Expected]) -> Result<(), TestCaseError> {
    for writable in [false, true] {
        let dev = Arc::new(MemDevice::from_bytes(image)) as Arc<dyn BlockDevice>;
        let opts = MountOptions {
            read_only: !writable,
            ..MountOptions::default()
        };
        match Filesystem::mount(dev, opts) {
            Err(e) => prop_assert!(clear_refusal(&e), "refused with {e:?}"),
            Ok(mut fs) => {
                exercise(&mut fs, files, writable)?;
                if writable {
                    let _ = fs.unmount();
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        // Each case in a child process that is killed after this long:
        // a hang is a failure, not a stuck test run.
        timeout: 60_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_values_behind_valid_checksums_fail_cleanly(
        which in any::<prop::sample::Index>(),
        pick in any::<u64>(),
    ) {
        let all = targets();
        let t = which.get(all);
        let value = t.rule.value(t.width, pick);
        let (image, files) = base();
        let mut ed = Editor::new(image);
        ed.apply(Edit { place: t.place, offset: t.offset, width: t.width, value });
        let edited = ed.dev.snapshot();
        let report = support::fsck(&Arc::new(MemDevice::from_bytes(&edited)), Level::VerifyData);
        prop_assert!(
            report.problems() > 0,
            "{} = {value:#x}: the checker finds no problem ({:?})", t.name, report.findings
        );
        if report.worst() == Some(Severity::Fatal) {
            prop_assert!(report.checkpoint.is_none() || report.findings.iter().any(|f| f.severity == Severity::Fatal));
        }
        mounts(&edited, files)?;
    }
}

/// Every target, with one hostile value each, is found by the full
/// check (the property test above draws targets and values at random;
/// this makes sure none is skipped), and the base image offers every kind
/// of place.
#[test]
fn the_checker_finds_every_target() {
    let all = targets();
    for want in [
        "checkpoint nat_watermark",
        "superblock segment_count",
        "address",
        "live pages",
        "dir_entries",
        "map node",
        "leaf",
        "interior",
        "direct",
        "attributes",
    ] {
        assert!(
            all.iter().any(|t| t.name.contains(want)),
            "no target for {want}"
        );
    }
    let (image, _) = base();
    for t in all {
        let value = t.rule.value(t.width, 0x5EED);
        let mut ed = Editor::new(image);
        ed.apply(Edit {
            place: t.place,
            offset: t.offset,
            width: t.width,
            value,
        });
        let report = support::fsck(&ed.dev, Level::VerifyData);
        assert!(
            report.problems() > 0,
            "{} = {value:#x}: no problem found ({:?})",
            t.name,
            report.findings
        );
    }
}

/// A crashed mount whose last two commits each added a file: the newer
/// superblock copy names the checkpoint with `second`, the older the one
/// with `first`. Returns the image and the editor on it.
fn two_commits_then_a_crash() -> Editor {
    let dev = support::formatted(4096, 32);
    let mut fs = support::mount(&dev);
    let root = Cred::root();
    for name in [&b"first"[..], b"second"] {
        let a = fs
            .mknod(&root, Ino::ROOT, name, S_IFREG | 0o644, 0)
            .expect("create");
        fs.write(&root, a.ino, 0, name).expect("write");
        fs.sync().expect("sync");
    }
    drop(fs);
    Editor::new(&dev.snapshot())
}

/// The watermark of the newest checkpoint set to 2^32, every checksum
/// (its own, its record's summary) right.
fn poison_newest(ed: &mut Editor) {
    let edit = Edit {
        place: Place::Checkpoint,
        offset: cp_off::NAT_WATERMARK,
        width: 8,
        value: 1 << 32,
    };
    ed.apply(edit);
}

fn names(fs: &mut Filesystem) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    fs.readdir(Ino::ROOT, 2, &mut |e| {
        out.push(e.name);
        true
    })
    .expect("readdir");
    out
}

/// Named by the newer superblock: recovery falls back to the older copy's
/// checkpoint, walks the log to the hostile one and stops before it; the
/// mount shows the state before the last commit, and fsck reports both
/// refusals as errors (exit 4), naming the field.
#[test]
fn hostile_checkpoint_named_by_a_superblock_falls_back() {
    let mut ed = two_commits_then_a_crash();
    let newest = ed.cp.no;
    poison_newest(&mut ed);
    let rec = recover(&*ed.dev, false, None).expect("recovery falls back");
    assert_eq!(rec.checkpoint.no.0, newest.0 - 1);
    assert_eq!(rec.rejected.len(), 2, "{:?}", rec.rejected);
    assert!(
        rec.rejected.iter().all(|r| r.contains("nat_watermark")),
        "{:?}",
        rec.rejected
    );
    let report = support::fsck(&ed.dev, Level::Full);
    assert_eq!(
        report.worst(),
        Some(Severity::Error),
        "{:?}",
        report.findings
    );
    assert!(report
        .findings
        .iter()
        .any(|f| f.kind == pagelog_core::fsck::Kind::CheckpointDamaged
            && f.message.contains("nat_watermark")));
    let mut fs = support::mount(&ed.dev);
    assert_eq!(names(&mut fs), vec![b"first".to_vec()]);
    fs.unmount().expect("unmount");
    assert_eq!(
        support::fsck(&ed.dev, Level::Full).problems(),
        0,
        "the mount wrote a whole new state"
    );
}

/// Met only in the log (the superblock naming it is lost): the walk stops
/// before it, as before a torn commit; fsck reports it.
#[test]
fn hostile_checkpoint_in_the_log_ends_the_walk() {
    let mut ed = two_commits_then_a_crash();
    let newest = ed.cp.no;
    poison_newest(&mut ed);
    // Recovery used the older copy; copies alternate by generation.
    let older = recover(&*ed.dev, false, None)
        .expect("recover")
        .sb
        .generation
        % 2;
    ed.dev
        .write(PageAddr(older ^ 1), &[0u8; 4096])
        .expect("lose the newer copy");
    let rec = recover(&*ed.dev, false, None).expect("recover");
    assert_eq!(rec.checkpoint.no.0, newest.0 - 1);
    assert_eq!(rec.rejected.len(), 1, "{:?}", rec.rejected);
    assert!(
        rec.rejected[0].contains("nat_watermark") && rec.rejected[0].contains("stops"),
        "{:?}",
        rec.rejected
    );
    let report = support::fsck(&ed.dev, Level::Full);
    assert_eq!(report.problems(), 1, "{:?}", report.findings);
    let mut fs = support::mount(&ed.dev);
    assert_eq!(names(&mut fs), vec![b"first".to_vec()]);
}
