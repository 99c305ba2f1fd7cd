//! Rewinding: starting from a checkpoint older than the one the
//! superblocks name, as `zpool import -T` does for a pool's transaction
//! groups.
//!
//! Two cases need it. The checkpoint both superblock copies name is
//! damaged (after a clean unmount both name the same page, so recovery
//! has nothing to fall back on); or an administrator wants the state of an
//! older checkpoint back exactly (`pagelog-fsck --checkpoint N`). The log
//! still holds older checkpoint pages: every record that ends a commit
//! carries one, and a record stays until its segment is written again.
//! Which of them still describe an intact state is what a check says:
//! the pages a checkpoint's tables and nodes take are overwritten only
//! once a later commit has freed them and the log has come round to their
//! segment, so the checkpoint before the newest one is intact as long as
//! nothing but the newest commit and its superblock was written after it.
//!
//! Choosing writes nothing. [`Rewound`] shows the device with both
//! superblock copies naming the chosen checkpoint, so that recovery, the
//! check and a repair's mount use it unchanged; the first superblock a
//! mount writes makes the rewind the device's own. An exact rewind also
//! hides the record after the checkpoint (recovery would otherwise walk
//! forward into the newer commits), and zeroes it on the device, durably,
//! once that first superblock is durable and before anything else is
//! written: a crash in between leaves the superblock naming the
//! checkpoint with the log after it whole, and recovery walks on from it
//! as after a crash (to the newest commit, when the commits after it were
//! written in one session; otherwise as far as the log after it chains);
//! a crash after it, the checkpoint rewound to.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use crate::checkpoint::Checkpoint;
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, PageAddr, SegmentNo};
use crate::layout::{zero_page, Geometry, Page, PAGE_SIZE};
use crate::recovery::{read_checkpoint, read_superblocks, sealer_for};
use crate::seal::{MasterKey, Sealer};
use crate::segment_summary::{read_chain, PageKind, MAX_UNIT_PAGES};
use crate::segment_writer::record_fits;
use crate::superblock::{features, State, Superblock, COPIES};

/// A checkpoint page found in the log.
#[derive(Clone, Debug)]
pub struct Found {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Its page.
    pub addr: PageAddr,
}

/// Every checkpoint of this filesystem still in the log that passes its
/// checks (checksum, identity, counts that fit the geometry), newest
/// first. Reads each segment's record summaries and each checkpoint page.
pub fn checkpoints_in_log(
    dev: &dyn BlockDevice,
    sb: &Superblock,
    sealer: Option<&Sealer>,
) -> Vec<Found> {
    let geo = sb.geometry;
    let mut found = Vec::new();
    for s in 0..geo.segment_count {
        let seg = SegmentNo(s);
        let start = geo.segment_start(seg);
        let mut pages = Vec::new();
        read_chain(dev, &geo, (sb.hash_seed, sealer), seg, &mut |off, e| {
            if e.kind == PageKind::Checkpoint {
                pages.push(start.offset(off));
            }
        });
        for addr in pages {
            let Ok(cp) = read_checkpoint(dev, addr, sealer) else {
                continue;
            };
            if cp.fs_id == sb.hash_seed && cp.check_bounds(&geo, sealer.is_some(), addr).is_ok() {
                found.push(Found {
                    checkpoint: cp,
                    addr,
                });
            }
        }
    }
    // A number is written twice only by a commit a crash cut short and
    // the one after recovery: the later record is the one that counted.
    found.sort_by_key(|f| Reverse((f.checkpoint.no, f.checkpoint.record_seq)));
    found.dedup_by_key(|f| f.checkpoint.no);
    found
}

/// A rewind, ready to use: the device as it would be, and what it leaves
/// behind.
#[derive(Debug)]
pub struct Rewind {
    /// The device with the superblocks naming the checkpoint.
    pub device: Arc<Rewound>,
    /// The checkpoint started from.
    pub to: Found,
    /// The checkpoint the superblocks name.
    pub named: CheckpointNo,
    /// Checkpoints the log holds written after it, which are not used.
    pub newer: Vec<(CheckpointNo, i64)>,
    /// Exactly that checkpoint (the log after it hidden), or that
    /// checkpoint and the fsyncs logged after it (recovery's walk).
    pub exact: bool,
}

impl Rewind {
    /// What the rewind uses and what it loses, for a person.
    pub fn describe(&self) -> String {
        let cp = &self.to.checkpoint;
        let mut out = format!(
            "starting from checkpoint {} (written {})",
            cp.no,
            crate::when::readable(cp.time_ns)
        );
        if !self.exact {
            out += " and the fsyncs logged after it";
        }
        out += &format!(
            " instead of checkpoint {}, which the superblocks name",
            self.named
        );
        let newer: Vec<String> = self
            .newer
            .iter()
            .map(|(no, t)| format!("{no} ({})", crate::when::readable(*t)))
            .collect();
        match newer.as_slice() {
            [] => out += "; what was committed after that is lost",
            _ => {
                out += &format!(
                    "; lost: what was committed after it (the log's newer checkpoints: {})",
                    newer.join(", ")
                )
            }
        }
        out
    }
}

/// Prepares a rewind of `dev` to checkpoint `no`, found in the log.
pub fn rewind(
    dev: Arc<dyn BlockDevice>,
    key: Option<&MasterKey>,
    no: CheckpointNo,
    exact: bool,
) -> Result<Rewind> {
    let log = LogCheckpoints::read(&*dev, key)?;
    let Some(to) = log.found.iter().find(|f| f.checkpoint.no == no) else {
        let have: Vec<String> = log
            .found
            .iter()
            .map(|f| f.checkpoint.no.to_string())
            .collect();
        return Err(Error::Refused(format!(
            "checkpoint {no} is not in the log (it holds {}); a retained checkpoint or \
             snapshot is brought back with pagelog-snapshot rollback",
            match have.is_empty() {
                true => "none that passes its checks".to_string(),
                false => have.join(", "),
            }
        )));
    };
    Ok(log.rewind_to(dev.clone(), to, exact))
}

/// The checkpoints a repair may fall back to when the one the superblocks
/// name is damaged (see [`LogCheckpoints::fallbacks`]).
pub fn fallbacks(dev: &dyn BlockDevice, key: Option<&MasterKey>) -> Result<Vec<Found>> {
    Ok(LogCheckpoints::read(dev, key)?.fallbacks())
}

/// The checkpoints a device's log holds, read once (every segment's
/// summaries: a repair that tries several uses one reading).
#[derive(Debug)]
pub struct LogCheckpoints {
    /// The newest superblock.
    sb: Superblock,
    /// What [`checkpoints_in_log`] found.
    found: Vec<Found>,
}

impl LogCheckpoints {
    /// Reads the superblocks and the log of `dev`.
    pub fn read(dev: &dyn BlockDevice, key: Option<&MasterKey>) -> Result<LogCheckpoints> {
        let sb = newest_superblock(dev)?;
        let sealer = sealer_for(&sb, key)?;
        let found = checkpoints_in_log(dev, &sb, sealer.as_deref());
        Ok(LogCheckpoints { sb, found })
    }

    /// Those a repair may fall back to when the one the superblocks name is
    /// damaged: numbered below it, the newest written first (a check of
    /// each says whether its state is intact). By time, not number: after
    /// a rewind the log still holds the abandoned checkpoints, numbered as
    /// the new history numbers its own.
    pub fn fallbacks(&self) -> Vec<Found> {
        let sb = &self.sb;
        let mut found: Vec<Found> = self
            .found
            .iter()
            .filter(|f| f.checkpoint.no < sb.checkpoint_no && f.checkpoint.time_ns <= sb.written_ns)
            .cloned()
            .collect();
        found.sort_by_key(|f| Reverse(f.checkpoint.time_ns));
        found
    }

    /// The rewind of `dev` to `to`, one of these.
    pub fn rewind_to(&self, dev: Arc<dyn BlockDevice>, to: &Found, exact: bool) -> Rewind {
        let sb = &self.sb;
        let newer = self
            .found
            .iter()
            .filter(|f| f.checkpoint.time_ns > to.checkpoint.time_ns)
            .map(|f| (f.checkpoint.no, f.checkpoint.time_ns))
            .collect();
        let hide = match exact {
            true => after_checkpoint(&sb.geometry, &to.checkpoint),
            false => Vec::new(),
        };
        let device = Arc::new(Rewound::new(dev, sb, to, (exact, &hide)));
        Rewind {
            device,
            named: sb.checkpoint_no,
            to: to.clone(),
            newer,
            exact,
        }
    }
}

/// The newer of the two superblock copies that pass their checks.
pub(crate) fn newest_superblock(dev: &dyn BlockDevice) -> Result<Superblock> {
    let (good, bad) = read_superblocks(dev)?;
    good.into_iter().next().ok_or_else(|| {
        Error::corrupt(
            "superblock",
            PageAddr(0),
            format!("both copies are damaged ({})", bad.join("; ")),
        )
    })
}

/// The pages where recovery's walk would look for the record after `cp`
/// (`recovery::walk`): its head, or the start of the next segment when no
/// record fits there or one closed early could have gone on there.
fn after_checkpoint(geo: &Geometry, cp: &Checkpoint) -> Vec<PageAddr> {
    let pps = u64::from(geo.pages_per_segment);
    let mut pages = Vec::new();
    let Some(off) = cp.head.0.checked_sub(geo.segment_start(cp.head_segment).0) else {
        return pages;
    };
    let next = (cp.next_segment.0 < geo.segment_count).then(|| geo.segment_start(cp.next_segment));
    if record_fits(off, geo.pages_per_segment) {
        pages.push(cp.head);
        if off + 1 + MAX_UNIT_PAGES > pps {
            pages.extend(next);
        }
    } else {
        pages.extend(next);
    }
    pages
}

/// A device shown with both superblock copies naming another checkpoint
/// (and, for an exact rewind, the record after it hidden) until the first
/// superblock is written through it.
#[derive(Debug)]
pub struct Rewound {
    inner: Arc<dyn BlockDevice>,
    /// Pages shown instead of the device's, until written.
    shown: Mutex<BTreeMap<u64, Box<Page>>>,
    /// Pages to zero on the device before the first superblock write.
    hide: Mutex<Vec<PageAddr>>,
}

impl Rewound {
    fn new(
        inner: Arc<dyn BlockDevice>,
        sb: &Superblock,
        to: &Found,
        (exact, hide): (bool, &[PageAddr]),
    ) -> Rewound {
        let mut sb = sb.clone();
        // Newer than either copy on the device, so that a mount's first
        // superblock (one copy) outranks the other copy left there.
        sb.generation += 1;
        sb.checkpoint_addr = to.addr;
        sb.checkpoint_no = to.checkpoint.no;
        // Exactly that checkpoint is a clean state (the log after it is
        // hidden); with the log after it, recovery walks on and may roll
        // fsyncs forward, as after a crash.
        let rf = features::INCOMPAT_ROLL_FORWARD;
        if exact {
            sb.state = State::Clean;
            sb.incompat &= !rf;
        } else {
            sb.state = State::InUse;
            sb.incompat |= rf;
        }
        let mut shown = BTreeMap::new();
        for (copy, addr) in COPIES.iter().enumerate() {
            shown.insert(addr.0, sb.encode(copy as u32));
        }
        for a in hide {
            shown.insert(a.0, zero_page());
        }
        Rewound {
            inner,
            shown: Mutex::new(shown),
            hide: Mutex::new(hide.to_vec()),
        }
    }
}

fn pages_of(addr: PageAddr, bytes: usize) -> std::ops::Range<u64> {
    addr.0..addr.0 + bytes.div_ceil(PAGE_SIZE) as u64
}

impl BlockDevice for Rewound {
    fn len_pages(&self) -> u64 {
        self.inner.len_pages()
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(addr, buf)?;
        let shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        for (a, page) in shown.range(pages_of(addr, buf.len())) {
            let from = (a - addr.0) as usize * PAGE_SIZE;
            let to = (from + PAGE_SIZE).min(buf.len());
            buf[from..to].copy_from_slice(&page[..to - from]);
        }
        Ok(())
    }

    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        let pages = pages_of(addr, buf.len());
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        let mut hide = self.hide.lock().unwrap_or_else(PoisonError::into_inner);
        hide.retain(|a| !pages.contains(&a.0));
        self.inner.write(addr, buf)?;
        for a in pages.clone() {
            shown.remove(&a);
        }
        if COPIES.iter().any(|c| pages.contains(&c.0)) && !hide.is_empty() {
            // The rewind becomes the device's: once the superblock naming
            // the checkpoint is durable (recovery from it still walks on
            // to the newest commit, the state before the rewind), the log
            // after the checkpoint goes, durably (recovery now stops at
            // the checkpoint), before anything else is written. In the
            // other order, a crash would leave the newest commit named
            // with a record it needs zeroed.
            self.inner.flush()?;
            for a in hide.drain(..) {
                self.inner.write(a, &zero_page()[..])?;
            }
            self.inner.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    fn open_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.inner.open_segment(seg)
    }

    fn seal_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.inner.seal_segment(seg)
    }

    fn free_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.inner.free_segment(seg)
    }

    fn keeps_unflushed(&self) -> bool {
        self.inner.keeps_unflushed()
    }

    fn store_stats(&self) -> Option<crate::objects::StoreStats> {
        self.inner.store_stats()
    }
}
