//! Recovery: pick the newest valid superblock, read the checkpoint it names,
//! then walk the log forward from there, record by record (sequence number
//! and every checksum checked), to the newest complete checkpoint. A torn or
//! stale tail ends the walk; nothing is repaired because nothing needs to be.

use crate::checkpoint::Checkpoint;
use crate::codec::crc32;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{PageAddr, SegmentNo};
use crate::layout::{zero_page, PAGE_SIZE};
use crate::segment_summary::{PageKind, Summary};
use crate::segment_writer::record_fits;
use crate::superblock::{Superblock, COPIES};

/// What recovery found.
#[derive(Clone, Debug)]
pub struct Recovery {
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
}

/// Reads both superblock copies; returns the valid ones, newest first, and
/// a description of each invalid one.
pub fn read_superblocks(dev: &dyn BlockDevice) -> Result<(Vec<Superblock>, Vec<String>)> {
    if dev.len_pages() < 2 {
        return Err(Error::NotPagelog(format!(
            "device holds {} bytes, too small for a superblock",
            dev.len_pages() * PAGE_SIZE as u64
        )));
    }
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for addr in COPIES {
        let mut page = zero_page();
        dev.read(addr, &mut page[..])?;
        match Superblock::decode(&page[..], addr) {
            Ok(sb) => good.push(sb),
            Err(Error::Corrupt { detail, .. }) => {
                bad.push(format!("copy at page {addr}: {detail}"))
            }
            Err(e) => bad.push(format!("copy at page {addr}: {e}")),
        }
    }
    good.sort_by_key(|sb| std::cmp::Reverse(sb.generation));
    Ok((good, bad))
}

/// Reads and checks the checkpoint page at `addr`.
pub fn read_checkpoint(dev: &dyn BlockDevice, addr: PageAddr) -> Result<Checkpoint> {
    let mut page = zero_page();
    dev.read(addr, &mut page[..])?;
    Checkpoint::decode(&page[..], addr)
}

/// Finds the newest consistent state of the filesystem on `dev`.
pub fn recover(dev: &dyn BlockDevice, writable: bool) -> Result<Recovery> {
    let (sbs, mut notes) = read_superblocks(dev)?;
    if sbs.is_empty() {
        let no_magic = notes.iter().all(|n| n.contains("no pagelog magic"));
        return Err(if no_magic {
            Error::NotPagelog(
                "neither superblock copy (pages 0 and 1) has the pagelog magic".into(),
            )
        } else {
            Error::corrupt(
                "superblock",
                PageAddr(0),
                format!("both copies are damaged ({})", notes.join("; ")),
            )
        });
    }
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
    for sb in &sbs {
        match read_checkpoint(dev, sb.checkpoint_addr) {
            Ok(cp) if cp.no == sb.checkpoint_no && cp.fs_id == sb.hash_seed => {
                return walk(dev, sb.clone(), cp, notes);
            }
            Ok(cp) => notes.push(format!(
                "superblock generation {} names checkpoint {} but page {} holds checkpoint {}",
                sb.generation, sb.checkpoint_no, sb.checkpoint_addr, cp.no
            )),
            Err(e) => notes.push(format!("superblock generation {}: {e}", sb.generation)),
        }
    }
    Err(Error::corrupt(
        "checkpoint",
        sbs[0].checkpoint_addr,
        notes.join("; "),
    ))
}

/// Walks the log after `cp` and returns the newest complete checkpoint.
fn walk(
    dev: &dyn BlockDevice,
    sb: Superblock,
    cp: Checkpoint,
    notes: Vec<String>,
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
    let mut buf = vec![0u8; PAGE_SIZE * pps as usize];
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
        let addr = geo.segment_start(seg).offset(off);
        let mut page = zero_page();
        dev.read(addr, &mut page[..])?;
        let Ok(Some(summary)) = Summary::decode(&page[..], addr) else {
            break;
        };
        if summary.seq != expect || summary.fs_id != sb.hash_seed {
            break;
        }
        let n = summary.entries.len() as u64 + u64::from(summary.tag_pages);
        if n == 0 || off + 1 + n > pps || summary.next_segment.0 >= geo.segment_count {
            break;
        }
        let payload = &mut buf[..n as usize * PAGE_SIZE];
        dev.read(addr.offset(1), payload)?;
        pages += 1 + n;
        let body = &payload[usize::from(summary.tag_pages) * PAGE_SIZE..];
        let intact = summary
            .entries
            .iter()
            .zip(body.chunks_exact(PAGE_SIZE))
            .all(|(e, p)| crc32(p) == e.crc);
        if !intact {
            break;
        }
        if summary.is_checkpoint() {
            if let Some(found) = checkpoint_in(&summary, body, addr, &best)? {
                best = found.0;
                best_addr = found.1;
            }
        }
        records += 1;
        max_seq = summary.seq;
        expect += 1;
        off += 1 + n;
        next = summary.next_segment;
    }
    Ok(Recovery {
        sb,
        checkpoint: best,
        checkpoint_addr: best_addr,
        max_seq,
        records_walked: records,
        pages_walked: pages,
        notes,
    })
}

/// The checkpoint carried by a record, if it is the successor of `best`.
fn checkpoint_in(
    summary: &Summary,
    body: &[u8],
    rec: PageAddr,
    best: &Checkpoint,
) -> Result<Option<(Checkpoint, PageAddr)>> {
    let Some(i) = summary
        .entries
        .iter()
        .position(|e| e.kind == PageKind::Checkpoint)
    else {
        return Ok(None);
    };
    let addr = rec.offset(1 + u64::from(summary.tag_pages) + i as u64);
    let page = body
        .get(i * PAGE_SIZE..(i + 1) * PAGE_SIZE)
        .ok_or_else(|| Error::corrupt("log record", rec, "short payload"))?;
    let Ok(cp) = Checkpoint::decode(page, addr) else {
        return Ok(None);
    };
    if cp.no.0 == best.no.0 + 1 && cp.record_seq == summary.seq && cp.fs_id == best.fs_id {
        Ok(Some((cp, addr)))
    } else {
        Ok(None)
    }
}

/// Segment helper for tools: the segment and offset of `addr`.
pub fn locate(sb: &Superblock, addr: PageAddr) -> Option<(SegmentNo, u64)> {
    let seg = sb.geometry.segment_of(addr)?;
    Some((seg, sb.geometry.offset_in_segment(addr)))
}
