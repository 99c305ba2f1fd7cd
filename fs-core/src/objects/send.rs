//! Sending a snapshot to an object store (`pagelog-snapshot send`): the
//! target becomes a read-only copy of the filesystem as the snapshot
//! holds it, mountable anywhere (`pagelog-mount -o ro s3://...`), and a
//! later send ships only the segments the copy lacks.
//!
//! What is shipped is a volume of its own, not the source's history: the
//! source is mounted through an [`Overlay`] (nothing is written to it),
//! the live tree is rolled back to the snapshot and every other snapshot,
//! branch and retained checkpoint is let go, in one clean unmount. The
//! segments that state references (a full check's recount), whole, and
//! the superblock pages are the copy; every other segment reads as zeros
//! there. Before anything is put, that exact view is checked with every
//! data page read: a copy that would not check clean is never published.
//!
//! Objects are named by content (`manifest.rs`), so the copy a send
//! replaces stays whole until its descriptor is replaced (one PUT).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::backend::ObjectBackend;
use super::descriptor::{Descriptor, Key};
use super::lease::Leased;
use super::manifest::Manifest;
use crate::checkpoints::{At, RetentionOptions};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::fs::{Filesystem, MountOptions};
use crate::fsck::{self, Level};
use crate::ids::{PageAddr, SegmentNo};
use crate::layout::{Geometry, PAGE_SIZE};
use crate::overlay::Overlay;
use crate::rewind::newest_superblock;
use crate::roots::RootName;
use crate::seal::MasterKey;
use crate::superblock::{format_uuid, Superblock};

/// What a send did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The checkpoint sent (the source's).
    pub checkpoint: u64,
    /// Segments the copy holds.
    pub segments: u64,
    /// Objects put (segments and pages the target lacked).
    pub uploaded: u64,
    /// Their bytes.
    pub uploaded_bytes: u64,
    /// Objects the target had already.
    pub kept: u64,
    /// Objects no longer needed, deleted.
    pub deleted: u64,
    /// Objects no longer needed that could not be deleted (the next send
    /// deletes them).
    pub leftover: u64,
    /// Bytes of the whole copy.
    pub bytes: u64,
    /// The manifest's number.
    pub generation: u64,
    /// The snapshot the target held before, if any.
    pub replaced: Option<String>,
}

/// How a send treats its target.
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// Replace the copy of another filesystem, or one that cannot be read.
    pub force: bool,
    /// The period of the lease the send holds on the target (`lease.rs`):
    /// two sends to one place never run at once.
    pub lease: std::time::Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            force: false,
            lease: std::time::Duration::from_secs(5),
        }
    }
}

/// Sends the snapshot (or retained checkpoint) `at` of the filesystem on
/// `source` to `target`. `label` names it in the manifest. Refuses a
/// target holding a filesystem, or the copy of another filesystem unless
/// forced.
pub fn send(
    source: Arc<dyn BlockDevice>,
    key: Option<&MasterKey>,
    at: &At,
    label: &str,
    target: Box<dyn ObjectBackend>,
    opts: &SendOptions,
) -> Result<Sent> {
    let sb = newest_superblock(&*source)?;
    // Only the descriptor is read before the lease: a store holding a
    // filesystem is refused without touching its writer's lease.
    target_copy(&*target, &sb, opts.force)?;
    let target = Leased::take(target, opts.lease)?;
    let before = target_copy(&target, &sb, opts.force)?;
    let (view, checkpoint) = materialise(source, &sb, key, at)?;
    let keep = needed(view.clone(), key, &sb)?;
    let only = Arc::new(Only {
        inner: view,
        geo: sb.geometry,
        keep: keep.clone(),
        seen: Mutex::new(HashMap::new()),
    });
    verify(only.clone(), key)?;
    let mut sent = Sent {
        checkpoint: checkpoint.0,
        segments: keep.len() as u64,
        uploaded: 0,
        uploaded_bytes: 0,
        kept: 0,
        deleted: 0,
        leftover: 0,
        bytes: 0,
        generation: 0,
        replaced: before.as_ref().map(|(_, m)| m.snapshot.clone()),
    };
    let there: HashSet<String> = target.list("")?.into_iter().collect();
    let objects = put_missing(&only, &sb.geometry, &keep, &target, &there, &mut sent)?;
    let generation = there
        .iter()
        .filter_map(|n| Manifest::generation(n))
        .max()
        .unwrap_or(0)
        + 1;
    let manifest = Manifest {
        format: Manifest::FORMAT.into(),
        source: format_uuid(&sb.uuid),
        snapshot: label.to_string(),
        checkpoint: checkpoint.0,
        sent_ns: crate::store::now_ns(),
        bytes: sent.bytes,
        objects,
    };
    let name = Manifest::key(generation);
    target.put(&name, &manifest.encode())?;
    let descriptor = Descriptor::new(sb.device_pages, sb.geometry).copy_of(&name);
    // The switch: before it the earlier copy, after it this one.
    target.put(Descriptor::KEY, &descriptor.encode())?;
    sent.generation = generation;
    let outcome = drop_unnamed(&target, &there, (&name, &manifest), before.as_ref());
    (sent.deleted, sent.leftover) = outcome;
    Ok(sent)
}

/// Deletes what neither this copy nor the one it replaced names (the one
/// before that, and what sends cut short left): a mount of the replaced
/// copy reads on until the next send. Failures are left for the next
/// send, which deletes them: the copy is published already. Returns what
/// was deleted and what was left.
fn drop_unnamed(
    target: &dyn ObjectBackend,
    there: &HashSet<String>,
    (name, manifest): (&str, &Manifest),
    before: Option<&(String, Manifest)>,
) -> (u64, u64) {
    let mut named: HashSet<&str> = manifest.objects.values().map(String::as_str).collect();
    named.insert(name);
    if let Some((before_name, m)) = before {
        named.insert(before_name);
        named.extend(m.objects.values().map(String::as_str));
    }
    let (mut deleted, mut left) = (0, 0);
    for old in there.iter().filter(|n| Manifest::is_copy_object(n)) {
        if named.contains(old.as_str()) {
            continue;
        }
        match target.delete(old) {
            Ok(()) => deleted += 1,
            Err(e) => {
                log::warn!(
                    "{}: {old} is no longer needed, and left: {e}",
                    target.describe()
                );
                left += 1;
            }
        }
    }
    (deleted, left)
}

/// The copy `target` holds now, if any, and its manifest's name; refuses
/// a target that holds a filesystem, something unreadable, or (unless
/// `force`) the copy of another filesystem.
fn target_copy(
    target: &dyn ObjectBackend,
    sb: &Superblock,
    force: bool,
) -> Result<Option<(String, Manifest)>> {
    let Some(bytes) = target.get(Descriptor::KEY)? else {
        return Ok(None);
    };
    let where_ = target.describe();
    let refuse = |why: String| Error::Refused(format!("{where_}: {why}"));
    let descriptor = match Descriptor::decode(&bytes, &where_) {
        Ok(d) => d,
        Err(e) if is_volume(&bytes) => {
            return Err(refuse(format!(
                "holds a filesystem ({e}), not a snapshot copy: a send never writes over one"
            )))
        }
        Err(e) if force => {
            log::warn!("{where_}: replacing what cannot be read ({e})");
            return Ok(None);
        }
        Err(e) => return Err(refuse(format!("{e}; --force replaces it"))),
    };
    let Some(name) = descriptor.copy else {
        return Err(refuse(
            "holds a filesystem, not a snapshot copy: a send never writes over one".into(),
        ));
    };
    let manifest = match target.get(&name)? {
        Some(b) => Manifest::decode(&b, &format!("{where_}/{name}")),
        None => Err(Error::NotPagelog(format!("{where_}/{name}: missing"))),
    };
    let manifest = match manifest {
        Ok(m) => m,
        Err(_) if force => return Ok(None),
        Err(e) => return Err(refuse(format!("{e}; --force replaces it"))),
    };
    if manifest.source != format_uuid(&sb.uuid) && !force {
        return Err(refuse(format!(
            "holds a copy of another filesystem (UUID {}, snapshot '{}'); --force replaces it",
            manifest.source, manifest.snapshot
        )));
    }
    Ok(Some((name, manifest)))
}

/// Do these descriptor bytes say "a volume" (of a layout this build may
/// not read), not a copy?
fn is_volume(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| {
        v.get("format").and_then(|f| f.as_str()) == Some(Descriptor::FORMAT)
            && v.get("copy").is_none()
    })
}

/// The source as a volume holding only `at`: rolled back to it, with
/// every other snapshot, branch and checkpoint let go, cleanly unmounted,
/// all on an overlay. Returns the view and `at`'s checkpoint.
fn materialise(
    source: Arc<dyn BlockDevice>,
    sb: &Superblock,
    key: Option<&MasterKey>,
    at: &At,
) -> Result<(Arc<Overlay>, crate::ids::CheckpointNo)> {
    let view = Arc::new(Overlay::new(source, sb.geometry));
    let opts = MountOptions {
        key: key.cloned(),
        cleaner: crate::cleaner::CleanerOptions {
            background: false,
            ..Default::default()
        },
        // Plain checkpoints go at the next commit, and none is retained.
        retention: RetentionOptions {
            protect_secs: Some(0),
            interval_ns: i64::MAX,
            ..Default::default()
        },
        ..MountOptions::default()
    };
    let mut fs = Filesystem::mount(view.clone(), opts)?;
    let checkpoint = fs.find_checkpoint(at)?;
    let keep_as = unused_name(&fs);
    fs.rollback(&RootName::Past(at.clone()), Some(&keep_as))?;
    let keep = match at {
        At::Snapshot(name) => Some(name.clone()),
        _ => None,
    };
    // Branches first: a branch keeps the snapshot it was made from.
    for b in fs.branches() {
        fs.delete_branch(&b.name)?;
    }
    for cp in fs.checkpoints() {
        match cp.snapshot {
            // The present kept by the rollback goes too.
            Some(name) if Some(&name) != keep.as_ref() => fs.delete_snapshot(&name)?,
            _ => {}
        }
    }
    // What the pruning at each commit left (a checkpoint stamped later
    // than now, by a clock elsewhere) goes by number.
    let plain: Vec<_> = fs
        .checkpoints()
        .into_iter()
        .filter(|c| c.snapshot.is_none())
        .map(|c| c.no)
        .collect();
    for no in plain {
        fs.store.prune(no)?;
    }
    fs.sync()?;
    let left: Vec<Option<Vec<u8>>> = fs.checkpoints().into_iter().map(|c| c.snapshot).collect();
    if left != keep.iter().cloned().map(Some).collect::<Vec<_>>() || !fs.branches().is_empty() {
        return Err(Error::Refused(format!(
            "the copy would keep {} retained checkpoints and {} branches besides the snapshot; \
             nothing was sent",
            left.len(),
            fs.branches().len()
        )));
    }
    fs.unmount()?;
    Ok((view, checkpoint))
}

/// A snapshot name the filesystem does not use, for the present kept
/// during the rollback (deleted before the unmount).
fn unused_name(fs: &Filesystem) -> Vec<u8> {
    let taken: HashSet<Vec<u8>> = fs
        .checkpoints()
        .into_iter()
        .filter_map(|c| c.snapshot)
        .collect();
    (0u64..)
        .map(|i| format!(".pagelog-send-{i}").into_bytes())
        .find(|n| !taken.contains(n))
        .unwrap_or_default()
}

/// The segments the state on `view` references (a full check's recount),
/// and the one its checkpoint page is in. Refuses a state that does not
/// check clean.
fn needed(view: Arc<Overlay>, key: Option<&MasterKey>, sb: &Superblock) -> Result<BTreeSet<u64>> {
    let dev: Arc<dyn BlockDevice> = view;
    let report = fsck::check(dev.clone(), key, Level::Full, &mut |_, _, _| {});
    refuse_findings(&report, "the snapshot, made a volume of its own,")?;
    let Some(recount) = report.recount else {
        return Err(Error::Refused(
            "the check of the snapshot, made a volume of its own, stopped before it counted \
             the pages in use; nothing was sent"
                .into(),
        ));
    };
    let mut keep: BTreeSet<u64> = recount
        .live
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(s, _)| s as u64)
        .collect();
    let now = newest_superblock(&*dev)?;
    keep.extend(sb.geometry.segment_of(now.checkpoint_addr).map(|s| s.0));
    Ok(keep)
}

/// Checks the copy as it will be read, every data page included.
fn verify(only: Arc<Only>, key: Option<&MasterKey>) -> Result<()> {
    let report = fsck::check(only, key, Level::VerifyData, &mut |_, _, _| {});
    refuse_findings(&report, "the copy")?;
    if report.cleanly_unmounted != Some(true) {
        return Err(Error::Refused(
            "the copy would not be cleanly unmounted".into(),
        ));
    }
    Ok(())
}

fn refuse_findings(report: &fsck::Report, what: &str) -> Result<()> {
    match report
        .findings
        .iter()
        .find(|f| f.severity >= fsck::Severity::Warning)
    {
        Some(f) => Err(Error::Refused(format!(
            "{what} does not check clean ({f}); nothing was sent (a source mounted and busy: \
             send again; otherwise check the source with pagelog-fsck)"
        ))),
        None => Ok(()),
    }
}

/// Objects put at once (as the store device's workers).
const PUTS_AT_ONCE: usize = 4;

/// Puts every page and segment of the copy the target lacks, several at
/// once; returns the manifest's map.
fn put_missing(
    only: &Only,
    geo: &Geometry,
    keep: &BTreeSet<u64>,
    target: &dyn ObjectBackend,
    there: &HashSet<String>,
    sent: &mut Sent,
) -> Result<BTreeMap<String, String>> {
    let fixed = (0..geo.first_segment_page).map(|p| (Key::Fixed(p), PageAddr(p), 1u64));
    let segments = keep.iter().map(|&s| {
        let start = geo.segment_start(SegmentNo(s));
        (Key::Segment(s), start, u64::from(geo.pages_per_segment))
    });
    let todo: Vec<(Key, PageAddr, u64)> = fixed.chain(segments).collect();
    let next = AtomicUsize::new(0);
    let done = Mutex::new((BTreeMap::new(), sent.clone()));
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let work = || {
        while failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            let Some(&(k, addr, pages)) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                return;
            };
            let outcome = put_one(only, (k, addr, pages), target, there);
            let mut d = done.lock().unwrap_or_else(PoisonError::into_inner);
            match outcome {
                Ok(None) => {}
                Ok(Some((name, len, put))) => {
                    d.1.bytes += len;
                    match put {
                        true => {
                            (d.1.uploaded, d.1.uploaded_bytes) =
                                (d.1.uploaded + 1, d.1.uploaded_bytes + len)
                        }
                        false => d.1.kept += 1,
                    }
                    d.0.insert(k.name(), name);
                }
                Err(e) => {
                    failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(e);
                }
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..PUTS_AT_ONCE {
            scope.spawn(work);
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    let (objects, counted) = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    *sent = counted;
    Ok(objects)
}

/// Reads one page or segment of the copy and puts it unless the target
/// has it: its object's name, bytes, and whether it was put; `None` if
/// it is all zeros (no object).
fn put_one(
    only: &Only,
    (k, addr, pages): (Key, PageAddr, u64),
    target: &dyn ObjectBackend,
    there: &HashSet<String>,
) -> Result<Option<(String, u64, bool)>> {
    let data = object_bytes(&*only.inner, addr, pages)?;
    if data.is_empty() {
        return Ok(None);
    }
    let hash = digest(&data);
    if let Key::Segment(seg) = k {
        match only.lock().get(&seg) {
            Some(&h) if h == hash => {}
            Some(_) => {
                return Err(Error::Refused(format!(
                    "segment {seg} of the source changed while it was read (the filesystem \
                     is mounted and its log used the segment again); nothing was published: \
                     send again"
                )))
            }
            None => {
                return Err(Error::Refused(format!(
                    "segment {seg} is needed by the copy but its check never read it; nothing \
                     was published"
                )))
            }
        }
    }
    let name = Manifest::object_name(k, hash);
    let put = !there.contains(&name);
    if put {
        target.put(&name, &data)?;
    }
    Ok(Some((name, data.len() as u64, put)))
}

/// The view with every segment outside `keep` reading as zeros: what the
/// copy will show.
#[derive(Debug)]
struct Only {
    inner: Arc<Overlay>,
    geo: Geometry,
    keep: BTreeSet<u64>,
    /// The digest of each segment kept as the check first read it: one
    /// read again to be put must match it (a writer elsewhere could have
    /// given the segment to new data since).
    seen: Mutex<HashMap<u64, u128>>,
}

impl Only {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, u128>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Segment `seg` as `dev` holds it, without its trailing zero pages
    /// (an object reads as zeros past its end).
    fn segment(&self, dev: &dyn BlockDevice, seg: SegmentNo) -> io::Result<Vec<u8>> {
        let pages = u64::from(self.geo.pages_per_segment);
        object_bytes(dev, self.geo.segment_start(seg), pages)
    }
}

/// `pages` pages from `addr` on `dev`, without the trailing zero pages.
fn object_bytes(dev: &dyn BlockDevice, addr: PageAddr, pages: u64) -> io::Result<Vec<u8>> {
    let mut data = vec![0u8; pages as usize * PAGE_SIZE];
    dev.read(addr, &mut data)?;
    let used = data
        .chunks(PAGE_SIZE)
        .rposition(|p| p.iter().any(|&b| b != 0))
        .map_or(0, |i| i + 1);
    data.truncate(used * PAGE_SIZE);
    Ok(data)
}

fn digest(data: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(data)
}

impl BlockDevice for Only {
    fn len_pages(&self) -> u64 {
        self.inner.len_pages()
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(addr, buf)?;
        let mut first: Vec<SegmentNo> = Vec::new();
        for (i, chunk) in buf.chunks_mut(PAGE_SIZE).enumerate() {
            let Some(seg) = self.geo.segment_of(addr.offset(i as u64)) else {
                continue;
            };
            if !self.keep.contains(&seg.0) {
                chunk.fill(0);
            } else if !first.contains(&seg) && !self.lock().contains_key(&seg.0) {
                first.push(seg);
            }
        }
        // A segment read for the first time is read whole: its digest, and
        // the pages asked for, come from those same bytes.
        for seg in first {
            let whole = self.segment(&*self.inner, seg)?;
            self.lock().entry(seg.0).or_insert(digest(&whole));
            let start = self.geo.segment_start(seg).0;
            for (i, chunk) in buf.chunks_mut(PAGE_SIZE).enumerate() {
                let page = addr.0 + i as u64;
                if self.geo.segment_of(PageAddr(page)) != Some(seg) {
                    continue;
                }
                let from = (page - start) as usize * PAGE_SIZE;
                let have = whole.len().saturating_sub(from).min(chunk.len());
                chunk[..have].copy_from_slice(&whole[from..from + have]);
                chunk[have..].fill(0);
            }
        }
        Ok(())
    }

    fn write(&self, _addr: PageAddr, _buf: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the copy being sent is read-only",
        ))
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}
