//! docs/FORMAT.md and the code agree: every `layout:` table's offsets are
//! the offsets the codecs use, and every table tiles its structure with no
//! gap or overlap.

use std::collections::BTreeMap;

use pagelog_core::{
    chain_table, checkpoint, checkpoint_record, deadlist_page, inode, inode_pack, node,
    roll_forward, segment_summary as summary, superblock,
};

/// The text of docs/FORMAT.md.
fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/FORMAT.md"))
        .expect("read FORMAT.md")
}

/// (field, offset, size) rows of each `<!-- layout: NAME -->` table.
fn tables() -> BTreeMap<String, Vec<(String, usize, Option<usize>)>> {
    let text = doc();
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("<!-- layout: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            current = Some(name.to_string());
            out.insert(name.to_string(), Vec::new());
            continue;
        }
        let Some(name) = &current else { continue };
        if !line.starts_with('|') {
            if !line.trim().is_empty() {
                current = None;
            }
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(off), Some(size), Some(field)) = (cells.get(1), cells.get(2), cells.get(3))
        else {
            continue;
        };
        let Ok(off) = off.parse::<usize>() else {
            continue;
        };
        let size = size.parse::<usize>().ok();
        out.get_mut(name)
            .expect("table")
            .push((field.to_string(), off, size));
    }
    out
}

fn check(table: &str, expected: &[(&str, usize)], end: usize) {
    let t = tables();
    let rows = t
        .get(table)
        .unwrap_or_else(|| panic!("FORMAT.md has no layout table {table}"));
    for (field, off) in expected {
        let row = rows
            .iter()
            .find(|r| r.0 == *field)
            .unwrap_or_else(|| panic!("{table}: field {field} is not documented"));
        assert_eq!(
            row.1, *off,
            "{table}.{field}: FORMAT.md says offset {}, the code uses {off}",
            row.1
        );
    }
    // Rows tile the structure: each starts where the previous one ended.
    let mut pos = rows[0].1;
    for (field, off, size) in rows {
        assert_eq!(
            *off, pos,
            "{table}: {field} at {off}, expected {pos} (gap or overlap)"
        );
        match size {
            Some(s) => pos = off + s,
            None => return, // variable-length tail
        }
    }
    assert_eq!(
        pos, end,
        "{table}: rows end at {pos}, the structure ends at {end}"
    );
}

#[test]
fn version_and_record_size() {
    let version = pagelog_core::layout::FORMAT_VERSION;
    let title = format!("# pagelog on-disk format, version {version}");
    assert_eq!(
        doc().lines().next(),
        Some(title.as_str()),
        "FORMAT.md's title names another version than the code writes"
    );
    assert_eq!(
        summary::MAX_ENTRIES,
        100,
        "FORMAT.md: at most 100 payload pages per record"
    );
}

#[test]
fn superblock_layout() {
    use superblock::off::*;
    check(
        "superblock",
        &[
            ("magic", MAGIC),
            ("version", VERSION),
            ("page_size", PAGE_SIZE),
            ("compat", COMPAT),
            ("ro_compat", RO_COMPAT),
            ("incompat", INCOMPAT),
            ("uuid", UUID),
            ("label", LABEL),
            ("pages_per_segment", PAGES_PER_SEGMENT),
            ("segment_count", SEGMENT_COUNT),
            ("first_segment_page", FIRST_SEGMENT_PAGE),
            ("device_pages", DEVICE_PAGES),
            ("created_ns", CREATED_NS),
            ("hash_seed", HASH_SEED),
            ("generation", GENERATION),
            ("checkpoint_addr", CHECKPOINT_ADDR),
            ("checkpoint_no", CHECKPOINT_NO),
            ("written_ns", WRITTEN_NS),
            ("state", STATE),
            ("copy", COPY),
            ("default_transform", DEFAULT_TRANSFORM),
            ("cluster_pages", chain_table::off::CLUSTER_PAGES),
            ("chain_count", chain_table::off::COUNT),
            ("chains", chain_table::off::CHAINS),
            ("seal_lease", SEAL_LEASE),
            ("key_slot", KEY_SLOT),
            ("crc", CRC),
        ],
        4096,
    );
}

#[test]
fn chain_table_layout() {
    use chain_table::off::*;
    check(
        "chain_entry",
        &[("stages", 0), ("stage", STAGES)],
        CHAIN_SIZE,
    );
    check(
        "chain_stage",
        &[
            ("id", 0),
            ("name", STAGE_NAME),
            ("params_len", STAGE_PARAMS_LEN),
            ("params", STAGE_PARAMS),
        ],
        STAGE_SIZE,
    );
    assert_eq!(
        (
            chain_table::MAX_CHAINS * CHAIN_SIZE,
            chain_table::MAX_STAGES
        ),
        (2048, 3),
        "FORMAT.md: 16 entries of 128 bytes, 3 stages"
    );
}

#[test]
fn summary_layout() {
    use summary::off::*;
    check(
        "summary",
        &[
            ("magic", MAGIC),
            ("seq", SEQ),
            ("checkpoint_no", CHECKPOINT_NO),
            ("next_segment", NEXT_SEGMENT),
            ("time_ns", TIME_NS),
            ("summary_pages", SUMMARY_PAGES),
            ("tag_pages", TAG_PAGES),
            ("entry_count", ENTRY_COUNT),
            ("flags", FLAGS),
            ("fs_id", FS_ID),
            ("crc", CRC),
            ("entries", summary::HEADER_SIZE),
        ],
        4096,
    );
    use summary::entry_off as e;
    check(
        "summary_entry",
        &[
            ("kind", e::KIND),
            ("flags", e::FLAGS),
            ("transform", e::TRANSFORM),
            ("stored_len", e::STORED_LEN),
            ("owner", e::OWNER),
            ("index", e::INDEX),
            ("crc", e::CRC),
            ("vpn", e::VPN),
        ],
        summary::ENTRY_SIZE,
    );
}

#[test]
fn checkpoint_layout() {
    use checkpoint::off::*;
    check(
        "checkpoint",
        &[
            ("magic", MAGIC),
            ("no", CHECKPOINT_NO),
            ("time_ns", TIME_NS),
            ("record_seq", RECORD_SEQ),
            ("head", HEAD),
            ("head_segment", HEAD_SEGMENT),
            ("next_segment", NEXT_SEGMENT),
            ("next_seq", NEXT_SEQ),
            ("nat_root", NAT_ROOT),
            ("sut_root", SUT_ROOT),
            ("checkpoint_list_root", CHECKPOINT_LIST_ROOT),
            ("snapshot_root", SNAPSHOT_ROOT),
            ("quota_root", QUOTA_ROOT),
            ("nat_free_head", NAT_FREE_HEAD),
            ("nat_watermark", NAT_WATERMARK),
            ("next_generation", NEXT_GENERATION),
            ("inode_count", INODE_COUNT),
            ("live_pages", LIVE_PAGES),
            ("empty_segments", EMPTY_SEGMENTS),
            ("previous", PREVIOUS),
            ("reserved_pages", RESERVED_PAGES),
            ("fs_id", FS_ID),
            ("pat_root", PAT_ROOT),
            ("pat_free_head", PAT_FREE_HEAD),
            ("pat_watermark", PAT_WATERMARK),
            ("list_next_slot", LIST_NEXT_SLOT),
            ("protect_secs", PROTECT_SECS),
            ("seal", SEAL),
            ("crc", CRC),
        ],
        4096,
    );
}

#[test]
fn sealing_layouts() {
    use pagelog_core::key_slot::{off as k, SIZE};
    check(
        "key_slot",
        &[
            ("kdf", k::KDF),
            ("kdf_version", k::KDF_VERSION),
            ("mem_kib", k::MEM_KIB),
            ("passes", k::PASSES),
            ("lanes", k::LANES),
            ("salt", k::SALT),
            ("nonce", k::NONCE),
            ("wrapped", k::WRAPPED),
        ],
        SIZE,
    );
    use pagelog_core::seal_info::off as s;
    check(
        "seal",
        &[("seal", s::SEAL), ("salt", s::SALT), ("tag", s::TAG)],
        pagelog_core::seal_info::SIZE,
    );
}

#[test]
fn checkpoint_record_layout() {
    use checkpoint_record::off::*;
    check(
        "checkpoint_record",
        &[
            ("no", NO),
            ("time_ns", TIME_NS),
            ("nat_root", NAT_ROOT),
            ("flags", FLAGS),
            ("nat_free_head", NAT_FREE_HEAD),
            ("nat_watermark", NAT_WATERMARK),
            ("inode_count", INODE_COUNT),
            ("next_generation", NEXT_GENERATION),
            ("dead_head", DEAD_HEAD),
            ("dead_crc", DEAD_CRC),
            ("dead_entries", DEAD_ENTRIES),
            ("exclusive", EXCLUSIVE),
            ("reserved_pages", RESERVED_PAGES),
            ("dead_pages", DEAD_PAGES),
            ("name_len", NAME_LEN),
            ("name", NAME),
        ],
        checkpoint_record::SIZE,
    );
    // The table root in a record takes addr, crc and depth: 13 bytes.
    assert_eq!(FLAGS - NAT_ROOT, 13, "FORMAT.md: nat_root is 13 bytes");
    assert_eq!(
        checkpoint_record::NAME_MAX,
        checkpoint_record::SIZE - NAME,
        "FORMAT.md: the name fills the record's last 127 bytes"
    );
    assert_eq!(
        checkpoint_record::ENTRIES,
        16,
        "FORMAT.md: a record is sixteen table entries"
    );
    assert_eq!(
        checkpoint_record::FLAG_SNAPSHOT,
        1,
        "FORMAT.md: flag bit 0 marks a snapshot"
    );
}

#[test]
fn deadlist_page_layout() {
    use deadlist_page::off::*;
    check(
        "deadlist_page",
        &[
            ("magic", MAGIC),
            ("count", COUNT),
            ("next", NEXT),
            ("next_crc", NEXT_CRC),
            ("checkpoint_no", CHECKPOINT_NO),
            ("entries", deadlist_page::HEADER),
        ],
        4096,
    );
    assert_eq!(&deadlist_page::MAGIC, b"PGDL", "FORMAT.md: magic PGDL");
    assert_eq!(
        (deadlist_page::CAPACITY, deadlist_page::ENTRY_SIZE),
        (254, 16),
        "FORMAT.md: 254 entries of 16 bytes"
    );
    // The kind a summary entry stores for a deadlist page.
    let entry = summary::Entry::unit(summary::PageKind::Deadlist, 7, 0, pagelog_core::Vpn(9));
    let page = summary::Summary {
        seq: 1,
        checkpoint_no: pagelog_core::ids::CheckpointNo(7),
        next_segment: pagelog_core::ids::SegmentNo(0),
        time_ns: 0,
        tag_pages: 0,
        flags: 0,
        fs_id: 1,
        entries: vec![entry],
    }
    .encode();
    assert_eq!(
        page[summary::HEADER_SIZE + summary::entry_off::KIND],
        5,
        "FORMAT.md: a deadlist page's summary kind is 5"
    );
}

#[test]
fn roll_forward_page_layout() {
    use roll_forward::off::*;
    check(
        "roll_forward_page",
        &[
            ("magic", MAGIC),
            ("crc", CRC),
            ("checkpoint_no", CHECKPOINT_NO),
            ("part", PART),
            ("flags", FLAGS),
            ("count", COUNT),
            ("counters", COUNTERS),
            ("changes", roll_forward::HEADER),
        ],
        4096,
    );
    assert_eq!(&roll_forward::MAGIC, b"PGRF", "FORMAT.md: magic PGRF");
    assert_eq!(
        (roll_forward::CAPACITY, roll_forward::CHANGE_SIZE),
        (124, 32),
        "FORMAT.md: 124 changes of 32 bytes"
    );
    assert_eq!(
        summary::PageKind::RollForward.code(),
        6,
        "FORMAT.md: a roll-forward page's summary kind is 6"
    );
}

#[test]
fn table_layouts() {
    use pagelog_core::meta_table::{ENTRY_SIZE, PAGE_HEADER, ROOT_SIZE};
    check(
        "table_root",
        &[("addr", 0), ("crc", 8), ("depth", 12)],
        ROOT_SIZE,
    );
    check(
        "table_page",
        &[
            ("magic", 0),
            ("table", 4),
            ("level", 5),
            ("index", 8),
            ("entries", PAGE_HEADER),
        ],
        4096,
    );
    check("nat_entry", &[("vpn", 0), ("crc", 8)], ENTRY_SIZE);
    check(
        "sut_entry",
        &[("live", 0), ("flags", 4), ("mtime", 8)],
        ENTRY_SIZE,
    );
    use pagelog_core::page_table::off as p;
    check(
        "pat_entry",
        &[
            ("addr", p::ADDR),
            ("birth", p::BIRTH),
            ("pages", p::PAGES),
            ("transform", p::TRANSFORM),
            ("tail", p::TAIL),
            ("seal", p::SEAL),
        ],
        pagelog_core::meta_table::MAX_ENTRY,
    );
    use pagelog_core::meta_table::TableId;
    assert_eq!(
        [
            TableId::NodeAddress,
            TableId::SegmentUsage,
            TableId::PageAddress,
            TableId::CheckpointList,
        ]
        .map(|t| t as u8),
        [1, 2, 3, 4],
        "FORMAT.md: table ids 1 node address, 2 segment usage, 3 page address, 4 checkpoint list"
    );
}

#[test]
fn quota_file_layouts() {
    use pagelog_core::quota_file::{head, rec, PER_PAGE, RECORD};
    check(
        "quota_header",
        &[
            ("magic", head::MAGIC),
            ("version", head::VERSION),
            ("grace", head::GRACE),
        ],
        4096,
    );
    assert_eq!(head::GRACE + 48, head::END);
    check(
        "quota_record",
        &[
            ("kind", rec::KIND),
            ("id", rec::ID),
            ("pages", rec::PAGES),
            ("inodes", rec::INODES),
            ("page_soft", rec::PAGE_SOFT),
            ("page_hard", rec::PAGE_HARD),
            ("inode_soft", rec::INODE_SOFT),
            ("inode_hard", rec::INODE_HARD),
            ("page_grace_end", rec::PAGE_GRACE_END),
            ("inode_grace_end", rec::INODE_GRACE_END),
        ],
        RECORD,
    );
    assert_eq!(rec::INODE_GRACE_END + 8, rec::END);
    assert_eq!(PER_PAGE, 32);
    assert!(doc().contains("32 a page"));
}

#[test]
fn acl_layout() {
    use pagelog_core::acl::{Acl, Entry, Tag, ENTRY, HEADER, NO_ID};
    let acl = Acl {
        entries: vec![
            Entry {
                tag: Tag::UserObj,
                perm: 6,
                id: NO_ID,
            },
            Entry {
                tag: Tag::GroupObj,
                perm: 4,
                id: NO_ID,
            },
            Entry {
                tag: Tag::Other,
                perm: 0,
                id: NO_ID,
            },
        ],
    };
    let bytes = acl.encode();
    assert_eq!(&bytes[..4], &2u32.to_le_bytes(), "version");
    assert_eq!(bytes.len(), HEADER + 3 * ENTRY);
    check("acl", &[("version", 0), ("entries", HEADER)], HEADER);
    let doc = doc();
    let tags = [
        (Tag::UserObj, "the owner"),
        (Tag::User, "a named user"),
        (Tag::GroupObj, "the owning group"),
        (Tag::Group, "a named group"),
        (Tag::Mask, "the mask"),
        (Tag::Other, "other"),
    ];
    for (tag, entry) in tags {
        let row = format!("| {:#04x} | {entry} ", tag as u16);
        assert!(doc.contains(&row), "FORMAT.md has no row {row:?}");
    }
}

#[test]
fn node_layouts() {
    use node::off as n;
    check(
        "node_header",
        &[
            ("magic", n::MAGIC),
            ("kind", n::KIND),
            ("level", n::LEVEL),
            ("nid", n::NID),
            ("ino", n::INO),
            ("checkpoint_no", n::CHECKPOINT_NO),
        ],
        node::HEADER_SIZE,
    );
    check(
        "inode_pack",
        &[
            ("used", inode_pack::off::USED),
            ("slots", inode_pack::off::SLOTS),
        ],
        4096,
    );
    use inode::off as i;
    check(
        "inode",
        &[
            ("mode", i::MODE),
            ("uid", i::UID),
            ("gid", i::GID),
            ("nlink", i::NLINK),
            ("size", i::SIZE),
            ("blocks", i::BLOCKS),
            ("atime", i::ATIME),
            ("mtime", i::MTIME),
            ("ctime", i::CTIME),
            ("btime", i::BTIME),
            ("generation", i::GENERATION),
            ("flags", i::FLAGS),
            ("project", i::PROJECT),
            ("rdev", i::RDEV),
            ("xattr_nid", i::XATTR_NID),
            ("parent", i::PARENT),
            ("transform", i::TRANSFORM),
            ("inline_len", i::INLINE_LEN),
            ("data", i::DATA),
        ],
        inode::SIZE,
    );
    assert_eq!(i::MAP_NIDS, 208, "FORMAT.md: map node ids at 208");
    assert_eq!(i::MAP_END, 240, "FORMAT.md: reserved from 240");
    assert_eq!(
        (i::DIR_ROOT, i::DIR_ENTRIES),
        (128, 136),
        "FORMAT.md: directory fields"
    );
    assert_eq!(inode::INLINE_MAX, 124, "FORMAT.md: 124 inline bytes");
    assert_eq!(
        inode_pack::slot_offset(1),
        64 + 252,
        "FORMAT.md: slot k at 64 + 252k"
    );
    check(
        "block_ptr",
        &[
            ("vpn", 0),
            ("crc", 8),
            ("slot", 12),
            ("count", 13),
            ("flags", 14),
        ],
        pagelog_core::block_ptr::SIZE,
    );
    use pagelog_core::dir_node::{COUNT, ENTRIES};
    check("dir_leaf", &[("count", COUNT), ("entries", ENTRIES)], 4096);
    check(
        "dir_internal",
        &[("count", COUNT), ("children", ENTRIES)],
        4096,
    );
    check("xattr", &[("count", COUNT), ("entries", ENTRIES)], 4096);
}
