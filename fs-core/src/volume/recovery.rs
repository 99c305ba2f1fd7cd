//! Recovery: pick the newest valid superblock, read the checkpoint it names,
//! then walk the log forward from there, record by record (sequence number
//! and every checksum checked), to the newest complete checkpoint. A torn or
//! stale tail ends the walk; nothing is repaired because nothing needs to be.
//! On the way it collects what fsyncs wrote after that checkpoint as
//! roll-forward records, for the mount to apply (`volume/fsync.rs`).

use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::codec::crc32;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{PageAddr, SegmentNo};
use crate::layout::{zero_page, Geometry, PAGE_SIZE};
use crate::roll_forward::RollForwardPage;
use crate::seal::{MasterKey, Sealer};
use crate::segment_summary::{Entry, PageKind, Summary, MAX_UNIT_PAGES};
use crate::segment_writer::record_fits;
use crate::superblock::{Superblock, COPIES};

/// What recovery found.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// On a sealed volume, what opens it (the mount makes a sealer that
    /// also seals from it).
    pub sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
    /// The superblock copy used.
    pub sb: Superblock,
    /// The newest complete checkpoint.
    pub checkpoint: Checkpoint,
    /// Its page.
    pub checkpoint_addr: PageAddr,
    /// Largest record sequence number seen.
    pub max_seq: u64,
    /// Records walked after the superblock's checkpoint.
    pub records_walked: u64,
    /// Pages read by the walk.
    pub pages_walked: u64,
    /// Problems met on the way that recovery worked around (a bad
    /// superblock copy, say): for the mount log and for fsck.
    pub notes: Vec<String>,
    /// Checkpoints recovery refused and fell back past: one a superblock
    /// names that fails its checks (the other copy's was used), or one in
    /// the log whose checksum is valid but whose counts do not fit the
    /// geometry (the walk ended before it). Each is damage a crash cannot
    /// leave, so fsck reports it as an error.
    pub rejected: Vec<String>,
    /// What fsyncs wrote after the newest checkpoint, for the mount to
    /// roll forward (see `volume/fsync.rs`).
    pub roll_forward: crate::fsync::Pending,
    /// A repair's recount, applied before the mount writes anything
    /// (none on an ordinary mount).
    pub rebase: Option<Rebase>,
}

/// What a repair recounted from the tree, for a mount to start from
/// instead of the checkpoint's segment usage and counters: with usage the
/// tree does not know of, the first commit could write over pages still
/// referenced (see `fsck/repair.rs`).
#[derive(Clone, Debug, Default)]
pub struct Rebase {
    /// Pages referenced in each segment, by segment number.
    pub live: Vec<u32>,
    /// Lower a count the table has higher (only when the walk that counted
    /// met no damage it could not mend: pages it could not reach may still
    /// be referenced). Otherwise each segment keeps the larger count.
    pub lower: bool,
    /// Inodes in use.
    pub inodes: u64,
    /// Pages reserved by fallocate.
    pub reserved: u64,
    /// Leaves of the segment usage table that fail their checks: fresh
    /// ones take their place, their entries from `live`.
    pub usage_pages: Vec<u64>,
    /// Interior pages of the page address or segment usage table that
    /// fail their checks: table, level, index, and the pages below found
    /// (index, address, checksum). Fresh ones take their place first.
    #[allow(clippy::type_complexity)]
    pub interior_pages: Vec<(
        crate::meta_table::TableId,
        u8,
        u64,
        Vec<(u64, PageAddr, u32)>,
    )>,
    /// Leaves of the page address table that fail their checks, by index,
    /// with the units found for them: fresh ones take their place first
    /// (everything else is reached through units).
    pub unit_pages: Vec<(u64, Vec<(crate::ids::Vpn, crate::page_table::PatEntry)>)>,
    /// Leaves of the live node address table that fail their checks, by
    /// index, with the nodes found for them (in units nothing else reached
    /// whose header names an id the leaf covered, and through retained
    /// checkpoints' own leaves): fresh ones take their place; the ids not
    /// found are free.
    pub node_pages: Vec<(u64, Vec<(crate::ids::Nid, crate::node_table::NatEntry)>)>,
}

/// Reads both superblock copies; returns the valid ones, newest first, and
/// a description of each invalid one. A device too small to hold them, or
/// with the pagelog magic in neither, is not a pagelog filesystem.
pub fn read_superblocks(dev: &dyn BlockDevice) -> Result<(Vec<Superblock>, Vec<String>)> {
    if dev.len_pages() < COPIES.len() as u64 {
        return Err(Error::NotPagelog(format!(
            "too small for the two {} KiB superblock pages",
            PAGE_SIZE / 1024
        )));
    }
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut magic = false;
    let mut unsupported = None;
    for addr in COPIES {
        let mut page = zero_page();
        dev.read(addr, &mut page[..])?;
        match Superblock::decode(&page[..], addr) {
            Ok(sb) => good.push(sb),
            Err(Error::Unsupported(why)) => {
                magic = true;
                bad.push(format!("copy at page {addr}: {why}"));
                unsupported = Some(why);
            }
            Err(Error::NotPagelog(detail)) => bad.push(format!("copy at page {addr}: {detail}")),
            Err(Error::Corrupt { detail, .. }) => {
                magic = true;
                bad.push(format!("copy at page {addr}: {detail}"))
            }
            Err(e) => {
                magic = true;
                bad.push(format!("copy at page {addr}: {e}"))
            }
        }
    }
    if good.is_empty() && !magic {
        return Err(Error::NotPagelog("no superblock magic".into()));
    }
    if let (true, Some(why)) = (good.is_empty(), unsupported) {
        // A whole superblock of another version: not damage, a refusal.
        return Err(Error::Unsupported(why));
    }
    good.sort_by_key(|sb| std::cmp::Reverse(sb.generation));
    Ok((good, bad))
}

/// Reads and checks the checkpoint page at `addr` (opening it with
/// `sealer` on a sealed volume).
pub fn read_checkpoint(
    dev: &dyn BlockDevice,
    addr: PageAddr,
    sealer: Option<&Sealer>,
) -> Result<Checkpoint> {
    let mut page = zero_page();
    dev.read(addr, &mut page[..])?;
    Checkpoint::decode_sealed(&page[..], addr, sealer)
}

/// What opens the volume `sb` describes: nothing if it is not sealed; if
/// it is, a sealer from `key`, which must then be given.
pub fn sealer_for(sb: &Superblock, key: Option<&MasterKey>) -> Result<Option<Arc<Sealer>>> {
    match (&sb.sealing, key) {
        (None, _) => Ok(None),
        (Some(_), Some(k)) => Ok(Some(Arc::new(Sealer::reader(k, sb.uuid)))),
        (Some(_), None) => Err(Error::Refused(format!(
            "filesystem {} is sealed (encrypted): it opens only with its passphrase \
             (at the prompt, or --passphrase-file / --passphrase-cmd)",
            sb.uuid_text()
        ))),
    }
}

/// The checkpoint `sb` names, if it is that checkpoint, of this
/// filesystem, and fits the geometry.
fn named_checkpoint(
    dev: &dyn BlockDevice,
    sb: &Superblock,
    sealer: Option<&Sealer>,
) -> Result<Checkpoint> {
    let addr = sb.checkpoint_addr;
    let cp = read_checkpoint(dev, addr, sealer)?;
    if cp.no != sb.checkpoint_no || cp.fs_id != sb.hash_seed {
        return Err(Error::corrupt(
            "checkpoint",
            addr,
            format!(
                "superblock generation {} names checkpoint {} but the page holds checkpoint {}{}",
                sb.generation,
                sb.checkpoint_no,
                cp.no,
                if cp.fs_id == sb.hash_seed {
                    ""
                } else {
                    " of another filesystem"
                }
            ),
        ));
    }
    cp.check_bounds(&sb.geometry, sealer.is_some(), addr)?;
    Ok(cp)
}

/// Finds the newest consistent state of the filesystem on `dev`.
///
/// A checkpoint that fails its checks (checksum, or counts that do not fit
/// the geometry) is treated alike wherever it is met: one a superblock
/// names gives way to the other copy's, as a torn superblock would; one
/// met in the log ends the walk, as a torn commit would. Either way the
/// state used is one a complete, checked checkpoint names, and the refusal
/// is kept in [`Recovery::rejected`]. With no usable checkpoint at all,
/// the error names what is wrong with the newest.
///
/// A sealed volume opens only with its master `key` (see
/// [`crate::seal::unlock`]).
pub fn recover(dev: &dyn BlockDevice, writable: bool, key: Option<&MasterKey>) -> Result<Recovery> {
    let (sbs, notes) = read_superblocks(dev)?;
    let Some(newest) = sbs.first() else {
        return Err(Error::corrupt(
            "superblock",
            PageAddr(0),
            format!("both copies are damaged ({})", notes.join("; ")),
        ));
    };
    for sb in &sbs {
        sb.check_features(writable)?;
        if sb.device_pages > dev.len_pages() {
            return Err(Error::BadGeometry(format!(
                "the filesystem needs {} pages but the device has {} (truncated image?)",
                sb.device_pages,
                dev.len_pages()
            )));
        }
    }
    let sealer = sealer_for(newest, key)?;
    let mut failed: Vec<(&Superblock, Error)> = Vec::new();
    for sb in &sbs {
        match named_checkpoint(dev, sb, sealer.as_deref()) {
            Ok(cp) => {
                let rejected = failed
                    .iter()
                    .map(|(bad, e)| {
                        format!(
                            "superblock generation {}: {e}; recovery starts from generation {} (checkpoint {}) instead",
                            bad.generation, sb.generation, sb.checkpoint_no
                        )
                    })
                    .collect();
                let found = walk(dev, sb.clone(), cp, sealer.as_deref(), (notes, rejected))?;
                return Ok(Recovery { sealer, ..found });
            }
            Err(e) => failed.push((sb, e)),
        }
    }
    // Both copies naming the same page (the usual case after a clean
    // unmount) failed the same way: that error says it all.
    if failed
        .iter()
        .all(|(sb, _)| sb.checkpoint_addr == newest.checkpoint_addr)
    {
        failed.truncate(1);
        if let Some((_, e)) = failed.pop() {
            return Err(e);
        }
    }
    let why: Vec<String> = failed
        .iter()
        .map(|(sb, e)| format!("superblock generation {}: {e}", sb.generation))
        .collect();
    Err(Error::corrupt(
        "checkpoint",
        newest.checkpoint_addr,
        why.join("; "),
    ))
}

/// Walks the log after `cp` and returns the newest complete checkpoint.
fn walk(
    dev: &dyn BlockDevice,
    sb: Superblock,
    cp: Checkpoint,
    sealer: Option<&Sealer>,
    (notes, mut rejected): (Vec<String>, Vec<String>),
) -> Result<Recovery> {
    let geo = sb.geometry;
    let pps = u64::from(geo.pages_per_segment);
    let mut best_addr = sb.checkpoint_addr;
    let mut best = cp.clone();
    let mut seg = cp.head_segment;
    let mut next = cp.next_segment;
    let mut off = cp
        .head
        .0
        .checked_sub(geo.segment_start(seg).0)
        .unwrap_or(u64::MAX);
    let mut expect = cp.next_seq;
    let mut max_seq = cp.record_seq;
    let (mut records, mut pages) = (0u64, 0u64);
    let mut buf = Vec::new();
    let mut rolls = crate::fsync::Collector::default();
    loop {
        if off > pps || seg.0 >= geo.segment_count {
            break;
        }
        if !record_fits(off, geo.pages_per_segment) {
            if next.0 >= geo.segment_count {
                break;
            }
            seg = next;
            off = 0;
        }
        let log = (sb.hash_seed, sealer);
        let found = match record_at(dev, &geo, log, seg, off, expect)? {
            // A record closed early for a unit that did not fit leaves up
            // to `MAX_UNIT_PAGES` pages unwritten at the end of a segment;
            // the log then goes on at the start of the next one. (A record
            // there with the expected sequence number can be nothing else:
            // each number is written once.)
            None if off + 1 + MAX_UNIT_PAGES > pps && next.0 < geo.segment_count => {
                let r = record_at(dev, &geo, log, next, 0, expect)?;
                if r.is_some() {
                    (seg, off) = (next, 0);
                }
                r
            }
            r => r,
        };
        let Some((addr, summary)) = found else {
            break;
        };
        let n = summary.record_pages() - 1;
        if n == 0 || off + 1 + n > pps || summary.next_segment.0 >= geo.segment_count {
            break;
        }
        buf.resize(n as usize * PAGE_SIZE, 0);
        let payload = &mut buf[..];
        dev.read(addr.offset(1), payload)?;
        pages += 1 + n;
        let intact = summary
            .units()
            .all(|(at, e)| crc32(stored(payload, at, e)) == e.crc);
        if !intact {
            break;
        }
        rolls.enter(seg);
        if summary.is_checkpoint() {
            match checkpoint_in(&summary, (payload, addr), &best, &geo, sealer)? {
                Found::Next(cp, at) => {
                    (best, best_addr) = (*cp, at);
                    rolls.restart();
                }
                Found::Refused(e) => {
                    rejected.push(format!(
                        "{e}; recovery stops at checkpoint {} before it",
                        best.no
                    ));
                    break;
                }
                Found::Nothing => {}
            }
        }
        for (at, e) in summary.units() {
            if e.kind == PageKind::RollForward && sealer.is_none() {
                if let Ok(page) = RollForwardPage::decode(stored(payload, at, e), addr.offset(at)) {
                    rolls.page(page, best.no);
                }
            }
        }
        records += 1;
        max_seq = summary.seq;
        expect += 1;
        off += 1 + n;
        next = summary.next_segment;
    }
    Ok(Recovery {
        sealer: None,
        sb,
        checkpoint: best,
        checkpoint_addr: best_addr,
        max_seq,
        records_walked: records,
        pages_walked: pages,
        notes,
        rejected,
        roll_forward: rolls.finish(),
        rebase: None,
    })
}

/// What a record's checkpoint page holds for the walk.
enum Found {
    /// No checkpoint, or not the successor of the walk's newest.
    Nothing,
    /// The successor, and the page it is on (boxed: a checkpoint is large,
    /// and most records carry none).
    Next(Box<Checkpoint>, PageAddr),
    /// The successor by number, with a valid checksum, but with counts
    /// that do not fit the geometry.
    Refused(Error),
}

/// The record at page `off` of segment `seg`, if it is the one the walk
/// expects: a valid summary of this filesystem (`fs_id`) with sequence
/// number `expect`.
fn record_at(
    dev: &dyn BlockDevice,
    geo: &Geometry,
    (fs_id, sealer): (u64, Option<&Sealer>),
    seg: SegmentNo,
    off: u64,
    expect: u64,
) -> Result<Option<(PageAddr, Summary)>> {
    let addr = geo.segment_start(seg).offset(off);
    let mut page = zero_page();
    dev.read(addr, &mut page[..])?;
    Ok(match Summary::decode_sealed(&page[..], addr, sealer) {
        Ok(Some(s)) if s.seq == expect && s.fs_id == fs_id => Some((addr, s)),
        _ => None,
    })
}

/// The stored bytes of the unit at offset `at` of a record whose pages
/// after the summary are `payload` (the caller read `record_pages() - 1`).
fn stored<'p>(payload: &'p [u8], at: u64, e: &Entry) -> &'p [u8] {
    let from = (at as usize - 1) * PAGE_SIZE;
    &payload[from..from + e.stored_len as usize]
}

/// The checkpoint carried by a record, if it is the successor of `best`.
fn checkpoint_in(
    summary: &Summary,
    (payload, rec): (&[u8], PageAddr),
    best: &Checkpoint,
    geo: &Geometry,
    sealer: Option<&Sealer>,
) -> Result<Found> {
    let Some((at, e)) = summary
        .units()
        .find(|(_, e)| e.kind == PageKind::Checkpoint)
    else {
        return Ok(Found::Nothing);
    };
    let addr = rec.offset(at);
    let Ok(cp) = Checkpoint::decode_sealed(stored(payload, at, e), addr, sealer) else {
        return Ok(Found::Nothing);
    };
    if cp.no.0 != best.no.0 + 1 || cp.record_seq != summary.seq || cp.fs_id != best.fs_id {
        return Ok(Found::Nothing);
    }
    Ok(match cp.check_bounds(geo, sealer.is_some(), addr) {
        Ok(()) => Found::Next(Box::new(cp), addr),
        Err(e) => Found::Refused(e),
    })
}

/// Segment helper for tools: the segment and offset of `addr`.
pub fn locate(sb: &Superblock, addr: PageAddr) -> Option<(SegmentNo, u64)> {
    let seg = sb.geometry.segment_of(addr)?;
    Some((seg, sb.geometry.offset_in_segment(addr)))
}
