//! Making a new filesystem: geometry, the root directory, the graveyard, and
//! the first checkpoint, written through the same commit as every later one.

use std::sync::Arc;

use crate::chain_table::{ChainTable, MAX_CLUSTER_PAGES};
use crate::checkpoint::Checkpoint;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, Ino, Nid, PageAddr, SegmentNo, TransformId};
use crate::inode::{Inode, Timespec, S_IFDIR, S_IFREG};
use crate::inode_pack::InodePack;
use crate::layout::{zero_page, Geometry, PAGE_SIZE};
use crate::meta_table::TableRoot;
use crate::node::NodeBody;
use crate::quota_file::QUOTA_INO;
use crate::quotas::QuotaTable;
use crate::recovery::Recovery;
use crate::store::Store;
use crate::superblock::{State, Superblock, COPIES};
use crate::transform::Registry;
use crate::usage::QuotaId;

/// Fewest segments a filesystem may have.
pub const MIN_SEGMENTS: u64 = 16;
/// Default segment size in pages (2 MiB).
pub const DEFAULT_SEGMENT_PAGES: u32 = 512;
/// Page where segments start on a device large enough (1 MiB, aligned).
const SEGMENT_AREA_START: u64 = 256;

/// What to make.
#[derive(Clone, Debug)]
pub struct FormatOptions {
    /// Pages per segment: a power of two from 16 to 65536.
    pub pages_per_segment: u32,
    /// Label, up to 64 bytes.
    pub label: Vec<u8>,
    /// UUID.
    pub uuid: [u8; 16],
    /// Owner of the root directory.
    pub root_uid: u32,
    /// Group of the root directory.
    pub root_gid: u32,
    /// Permission bits of the root directory.
    pub root_mode: u32,
    /// Seed of the directory hash and identity of the log (random by default).
    pub hash_seed: u64,
    /// The protection window: plain checkpoints younger than this stay
    /// mountable while there is room (seconds).
    pub protect_secs: u64,
    /// How new data is stored unless a directory says otherwise: a chain
    /// (`zstd:3`) or `none`.
    pub compress: String,
    /// Logical pages in a compression cluster (1 to 16, at most a quarter
    /// of a segment); `None`: 16 (64 KiB), or a quarter of a smaller
    /// segment.
    pub cluster_pages: Option<u16>,
    /// Seal the volume (authenticated encryption) with this master key,
    /// wrapped as the slot says ([`crate::seal::keys::setup`]).
    pub seal: Option<crate::seal::keys::KeySetup>,
    /// Keep usage by user, group and project (the `quota` feature: inode 3
    /// holds the quota file).
    pub quota: bool,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            pages_per_segment: DEFAULT_SEGMENT_PAGES,
            label: Vec::new(),
            uuid: rand::random(),
            root_uid: 0,
            root_gid: 0,
            root_mode: 0o755,
            // Zero would make an all-zero page look like a record of ours.
            hash_seed: rand::random::<u64>() | 1,
            protect_secs: crate::checkpoints::DEFAULT_PROTECT_SECS,
            compress: "none".into(),
            cluster_pages: None,
            seal: None,
            quota: true,
        }
    }
}

/// The geometry for a device of `device_pages` pages.
pub fn geometry(device_pages: u64, pages_per_segment: u32) -> Result<Geometry> {
    if !pages_per_segment.is_power_of_two() || !(16..=65536).contains(&pages_per_segment) {
        return Err(Error::BadGeometry(format!(
            "segment size of {} KiB is not a power of two between 64 KiB and 256 MiB",
            u64::from(pages_per_segment) * PAGE_SIZE as u64 / 1024
        )));
    }
    let pps = u64::from(pages_per_segment);
    let start = if device_pages >= SEGMENT_AREA_START + MIN_SEGMENTS * pps {
        SEGMENT_AREA_START
    } else {
        2
    };
    let segment_count = device_pages.saturating_sub(start) / pps;
    if segment_count < MIN_SEGMENTS {
        let need = (start + MIN_SEGMENTS * pps) * PAGE_SIZE as u64;
        return Err(Error::BadGeometry(format!(
            "device of {} KiB is too small: with {} KiB segments it needs at least {} KiB",
            device_pages * PAGE_SIZE as u64 / 1024,
            pps * PAGE_SIZE as u64 / 1024,
            need / 1024
        )));
    }
    Ok(Geometry {
        pages_per_segment,
        segment_count,
        first_segment_page: start,
    })
}

fn directory(mode: u32, uid: u32, gid: u32, parent: Ino, now: Timespec) -> Inode {
    Inode {
        mode: S_IFDIR | mode,
        uid,
        gid,
        nlink: 2,
        atime: now,
        mtime: now,
        ctime: now,
        btime: now,
        generation: 1,
        parent,
        ..Inode::default()
    }
}

/// The chain table `opts` asks for, and the number of its default chain.
fn chain_table(opts: &FormatOptions) -> Result<(ChainTable, TransformId)> {
    // A compressed unit takes up to a cluster less one page, and may leave
    // that much unused at a segment's end: a quarter of a segment at most
    // keeps the log's room bound (room.rs) near the truth.
    let most = (opts.pages_per_segment / 4).clamp(1, u32::from(MAX_CLUSTER_PAGES)) as u16;
    let cluster_pages = opts.cluster_pages.unwrap_or(most);
    if !(1..=most).contains(&cluster_pages) {
        return Err(Error::Refused(format!(
            "a cluster of {} KiB: from 4 KiB to {} KiB (a quarter of a segment, at most 64 KiB)",
            usize::from(cluster_pages) * PAGE_SIZE / 1024,
            usize::from(most) * PAGE_SIZE / 1024
        )));
    }
    let mut table = ChainTable {
        cluster_pages,
        ..ChainTable::default()
    };
    let chain = Registry::global().parse_chain(&opts.compress)?;
    let id = table
        .number(&chain.records())
        .ok_or_else(|| Error::Refused(format!("chain {} does not fit the table", opts.compress)))?;
    Ok((table, id))
}

/// Writes a new, empty filesystem to `dev`.
pub fn format(dev: Arc<dyn BlockDevice>, opts: &FormatOptions) -> Result<Superblock> {
    if opts.label.len() > crate::superblock::LABEL_MAX {
        return Err(Error::BadGeometry(format!(
            "label of {} bytes is over 64",
            opts.label.len()
        )));
    }
    let device_pages = dev.len_pages();
    let geo = geometry(device_pages, opts.pages_per_segment)?;
    let (chains, default_transform) = chain_table(opts)?;
    // Invalidate any old superblock first: a half-made filesystem must not
    // mount as whatever was there before.
    for addr in COPIES {
        dev.write(addr, &zero_page()[..])?;
    }
    dev.flush()?;
    let now = Timespec::now();
    let sb = Superblock {
        compat: 0,
        ro_compat: if opts.quota {
            crate::superblock::features::RO_COMPAT_QUOTA
        } else {
            0
        },
        incompat: if chains.chains.is_empty() {
            0
        } else {
            crate::superblock::features::INCOMPAT_TRANSFORMS
        } | if opts.seal.is_some() {
            crate::superblock::features::INCOMPAT_SEALED
        } else {
            0
        },
        uuid: opts.uuid,
        label: opts.label.clone(),
        geometry: geo,
        device_pages,
        created_ns: now.as_nanos(),
        hash_seed: opts.hash_seed,
        generation: 0,
        checkpoint_addr: PageAddr::NONE,
        checkpoint_no: CheckpointNo(0),
        written_ns: now.as_nanos(),
        state: State::Clean,
        default_transform,
        chains,
        sealing: opts.seal.as_ref().map(|k| crate::superblock::Sealing {
            lease: 0,
            slot: k.slot.clone(),
        }),
    };
    let empty = Checkpoint {
        no: CheckpointNo(0),
        head: geo.segment_start(SegmentNo(0)),
        head_segment: SegmentNo(0),
        next_segment: SegmentNo(1),
        next_seq: 1,
        nat_root: TableRoot::default(),
        sut_root: TableRoot::default(),
        nat_free_head: Nid::NONE,
        nat_watermark: Nid::FIRST_FREE,
        pat_watermark: crate::ids::Vpn::FIRST,
        protect_secs: opts.protect_secs,
        next_generation: 2,
        empty_segments: geo.segment_count,
        fs_id: opts.hash_seed,
        ..Checkpoint::default()
    };
    let sealer = opts
        .seal
        .as_ref()
        .map(|k| Arc::new(crate::seal::Sealer::reader(&k.key, opts.uuid)));
    let rec = Recovery {
        sealer,
        sb,
        checkpoint: empty,
        checkpoint_addr: PageAddr::NONE,
        max_seq: 0,
        records_walked: 0,
        pages_walked: 0,
        notes: Vec::new(),
        rejected: Vec::new(),
        roll_forward: Default::default(),
        rebase: None,
    };
    let mut store = Store::open(dev.clone(), rec, false, Default::default())?;
    for seg in [SegmentNo(0), SegmentNo(1)] {
        store.sut.set_active(seg, true);
        dev.open_segment(seg)?;
    }
    let mut pack = InodePack::default();
    pack.slots[Ino::ROOT.slot()] = Some(Inode {
        transform: default_transform,
        ..directory(
            opts.root_mode & 0o7777,
            opts.root_uid,
            opts.root_gid,
            Ino::ROOT,
            now,
        )
    });
    pack.slots[Ino::GRAVEYARD.slot()] = Some(directory(0o700, 0, 0, Ino::GRAVEYARD, now));
    if opts.quota {
        // The quota file, counting the root directory (the graveyard and
        // the file itself are never counted); the commit writes its pages.
        pack.slots[QUOTA_INO.slot()] = Some(Inode {
            mode: S_IFREG | 0o600,
            nlink: 1,
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            generation: 1,
            ..Inode::default()
        });
        let root = pack.slots[Ino::ROOT.slot()].as_ref().expect("root");
        store.root.quota = Some(QuotaTable::new());
        store.root.cache.usage.skip = Some(QUOTA_INO);
        store
            .root
            .cache
            .usage
            .charge(Ino::ROOT, QuotaId::of(root), 0, 1);
    }
    store.root.cache.insert_at(
        Nid::FIRST_PACK,
        Ino::NONE,
        0,
        NodeBody::InodePack(Box::new(pack)),
    );
    store.root.inode_count = if opts.quota { 3 } else { 2 };
    store.commit(true)?;
    store.write_superblock(State::Clean, true)?;
    store.flush_superblock()?;
    Ok(store.sb.clone())
}
