//! [`ObjectDevice`]: a segment store whose segments are objects, with a
//! local cache file in front (`DESIGN.md`, "Segments as objects").
//!
//! - The cache file has the volume's size and is sparse: a segment is
//!   resident when the file holds its bytes. What the log writes goes into
//!   it; reads of a segment not resident fetch its object whole.
//! - A sealed segment is uploaded at once, whole, in the background;
//!   `flush` uploads everything written since the last one that is not
//!   (a segment a head holds as a piece: the pages appended since its last
//!   piece; the superblock copies) and returns when the store holds it
//!   all. So fsync means "in the object store"; the cache is never
//!   trusted across opens and its loss loses nothing that was flushed.
//! - An opened segment starts empty (never fetched); a freed segment's
//!   object is deleted. Jobs on one object never run at once, so a delete
//!   can never land after the upload of the segment's next life.
//! - Clean segments that no log head holds are evicted (least recently
//!   used first) when the resident bytes pass the cache's limit.
//! - A store that does not answer is retried in the background for as
//!   long as the device lives; a flush or a fetch that waits longer than
//!   the timeout fails with an error that names the store and what waits.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::backend::ObjectBackend;
use super::descriptor::{Descriptor, Key};
use super::lease::Leased;
use super::manifest::{Manifest, Mapped};
use crate::device::{check_range, BlockDevice};
use crate::ids::{PageAddr, SegmentNo};
use crate::layout::{Geometry, PAGE_SIZE};

/// How an [`ObjectDevice`] runs.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Most bytes of segments the cache file holds (segments a log head
    /// holds, or not yet uploaded, are kept beyond it).
    pub cache_bytes: u64,
    /// How long a flush or a fetch waits for an unanswering store before
    /// it fails (the uploads go on in the background).
    pub timeout: Duration,
    /// Objects moved at once.
    pub workers: usize,
    /// Writes refused (a read-only mount, fsck -n).
    pub read_only: bool,
    /// How often a writer renews its lease (`lease.rs`); another open
    /// takes over a lease silent for four times this.
    pub lease: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 1 << 30,
            timeout: Duration::from_secs(60),
            workers: 4,
            read_only: false,
            lease: Duration::from_secs(5),
        }
    }
}

/// What the device has done, for `pagelog.stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Reads served from the cache file.
    pub hits: u64,
    /// Reads that fetched an object.
    pub misses: u64,
    /// Bytes put.
    pub bytes_uploaded: u64,
    /// Bytes got.
    pub bytes_downloaded: u64,
    /// Objects put.
    pub uploads: u64,
    /// Objects deleted.
    pub deletes: u64,
    /// Objects written and not yet in the store.
    pub pending_uploads: u64,
    /// Bytes of segments the cache file holds.
    pub cached_bytes: u64,
    /// Failed requests (each retried).
    pub errors: u64,
}

/// One object's state in this process.
#[derive(Debug, Default, Clone)]
struct Slot {
    /// The cache file holds the object's bytes.
    resident: bool,
    /// Pages of the object (its length in this life).
    pages: u64,
    /// Held by a log head (opened, not sealed): never evicted.
    open: bool,
    /// Writes to it so far, and how many of them the store holds.
    written: u64,
    stored: u64,
    /// Last use, for eviction.
    used: u64,
    /// Reads copying from the cache file now, without the lock: the range
    /// is not evicted under them.
    readers: u32,
    /// Pages of this life the store holds as pieces (`open/N/FROM`): an
    /// open segment's flush puts only the pages after them.
    sent: u64,
    /// This life is stored whole (`segments/N`) from now on: it was
    /// written other than by appending (a rewind's zeroing).
    whole: bool,
    /// Pieces of this life are stored and the whole object not yet: once
    /// sealed, it is put whole (even if nothing was written since).
    pieces: bool,
    /// The end of the piece being put now: a write below it is not an
    /// append either.
    sending: u64,
    /// Counts the segment's lives (opens and frees) in this process: an
    /// upload of an earlier life finishing late changes nothing of this
    /// one's.
    life: u64,
}

impl Slot {
    fn dirty(&self) -> bool {
        self.written > self.stored
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Job {
    Upload,
    Delete,
    /// Read ahead: a segment fetched before it is asked for.
    Fetch,
}

/// Segments read ahead of a sequential reader.
const READ_AHEAD: u64 = 8;
/// A read of segment `s` counts as sequential when segment `s - 1` was
/// used within this many uses.
const SEQUENTIAL_WITHIN: u64 = 256;

#[derive(Debug, Default)]
struct State {
    slots: HashMap<Key, Slot>,
    queue: VecDeque<(Key, Job)>,
    /// Objects a worker is moving, and how.
    busy: HashMap<Key, Job>,
    tick: u64,
    stats: StoreStats,
    /// The last failure and since when the store fails.
    failing: Option<(Instant, String)>,
    shutdown: bool,
}

impl State {
    fn queue(&mut self, key: Key, job: Job) {
        self.queue.retain(|(k, _)| *k != key);
        self.queue.push_back((key, job));
    }

    fn cached_bytes(&self) -> u64 {
        self.slots
            .iter()
            .filter(|(k, s)| matches!(k, Key::Segment(_)) && s.resident)
            .map(|(_, s)| s.pages * PAGE_SIZE as u64)
            .sum()
    }
}

#[derive(Debug)]
struct Shared {
    backend: Box<dyn ObjectBackend>,
    cache: File,
    geo: Geometry,
    opts: StoreOptions,
    state: Mutex<State>,
    /// Signalled when a job is queued, done, or the state changes.
    changed: Condvar,
}

/// A segment store on an object store (see the module's comment).
#[derive(Debug)]
pub struct ObjectDevice {
    shared: Arc<Shared>,
    descriptor: Descriptor,
    workers: Vec<JoinHandle<()>>,
}

impl ObjectDevice {
    /// Makes a new, empty store for a volume of `device_pages` pages in
    /// segments of `pages_per_segment` pages. Refuses a store that holds a
    /// volume already unless `replace`, which deletes every object of it.
    pub fn create(
        backend: Box<dyn ObjectBackend>,
        cache_dir: &Path,
        device_pages: u64,
        pages_per_segment: u32,
        replace: bool,
        opts: StoreOptions,
    ) -> crate::Result<ObjectDevice> {
        let geo = crate::format::geometry(device_pages, pages_per_segment)?;
        let descriptor = Descriptor::new(device_pages, geo);
        if get_retrying(&*backend, Descriptor::KEY, opts.timeout)?.is_some() {
            if !replace {
                return Err(crate::Error::Store(format!(
                    "{} already holds a filesystem (give --force to replace it)",
                    backend.describe()
                )));
            }
            // Not under a writer's feet.
            let backend = Box::new(Leased::take(backend, opts.lease)?);
            // The descriptor last, so that a replacement cut short still
            // shows a store holding something.
            // Only this volume's objects (or a snapshot copy's): the prefix
            // may be shared with other things (volumes under longer prefixes).
            for key in backend.list("")? {
                if Key::parse(&key).is_some() || Manifest::is_copy_object(&key) {
                    backend.delete(&key)?;
                }
            }
            backend.put(Descriptor::KEY, &descriptor.encode())?;
            return Self::start(backend, cache_dir, descriptor, opts);
        }
        let backend = Box::new(Leased::take(backend, opts.lease)?);
        backend.put(Descriptor::KEY, &descriptor.encode())?;
        Self::start(backend, cache_dir, descriptor, opts)
    }

    /// Opens the store's volume, with an empty cache in `cache_dir`.
    pub fn open(
        backend: Box<dyn ObjectBackend>,
        cache_dir: &Path,
        opts: StoreOptions,
    ) -> crate::Result<ObjectDevice> {
        let Some(bytes) = get_retrying(&*backend, Descriptor::KEY, opts.timeout)? else {
            return Err(crate::Error::NotPagelog(format!(
                "{} holds no pagelog filesystem (no {} object)",
                backend.describe(),
                Descriptor::KEY
            )));
        };
        let descriptor = Descriptor::decode(&bytes, &backend.describe())?;
        let backend = match &descriptor.copy {
            None if opts.read_only => backend,
            None => Box::new(Leased::take(backend, opts.lease)?),
            Some(manifest) => Self::copy(backend, manifest, &opts)?,
        };
        Self::start(backend, cache_dir, descriptor, opts)
    }

    /// A snapshot copy's objects, read through its manifest; refused for
    /// writing (a copy is what was sent, and the next send replaces it).
    fn copy(
        backend: Box<dyn ObjectBackend>,
        manifest: &str,
        opts: &StoreOptions,
    ) -> crate::Result<Box<dyn ObjectBackend>> {
        let at = || format!("{}/{manifest}", backend.describe());
        if !opts.read_only {
            return Err(crate::Error::Refused(format!(
                "{} is a snapshot copy (made by pagelog-snapshot send): it opens only \
                 read-only (pagelog-mount -o ro, pagelog-fsck -n)",
                backend.describe()
            )));
        }
        let Some(bytes) = get_retrying(&*backend, manifest, opts.timeout)? else {
            return Err(crate::Error::NotPagelog(format!("{}: missing", at())));
        };
        let manifest = Manifest::decode(&bytes, &at())?;
        Ok(Box::new(Mapped::new(backend, manifest)))
    }

    fn start(
        backend: Box<dyn ObjectBackend>,
        cache_dir: &Path,
        descriptor: Descriptor,
        opts: StoreOptions,
    ) -> crate::Result<ObjectDevice> {
        let cache = open_cache(cache_dir, descriptor.device_pages)?;
        let shared = Arc::new(Shared {
            backend,
            cache,
            geo: descriptor.geometry(),
            opts,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let workers = (0..shared.opts.workers.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("pagelog-store-{i}"))
                    .spawn(move || shared.work())
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(ObjectDevice {
            shared,
            descriptor,
            workers,
        })
    }

    /// What the store holds the volume as.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// Where the objects are.
    pub fn describe(&self) -> String {
        self.shared.backend.describe()
    }

    /// Counters so far.
    pub fn stats(&self) -> StoreStats {
        let st = self.shared.lock();
        StoreStats {
            pending_uploads: st.slots.values().filter(|s| s.dirty()).count() as u64,
            cached_bytes: st.cached_bytes(),
            ..st.stats
        }
    }
}

impl Drop for ObjectDevice {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.changed.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Gets `key`, retrying a store that does not answer until `timeout`
/// (a mount right after a node restarts).
fn get_retrying(
    backend: &dyn ObjectBackend,
    key: &str,
    timeout: Duration,
) -> io::Result<Option<Vec<u8>>> {
    retry(&backend.describe(), key, timeout, || backend.get(key))
}

/// Runs `op` until it succeeds or `timeout` passes, pausing longer each
/// time; the error then names the store and what was asked.
fn retry<T>(
    store: &str,
    what: &str,
    timeout: Duration,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match op() {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() + pause > timeout => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "object store {store}: {what}: no answer for {} s: {e}",
                        start.elapsed().as_secs()
                    ),
                ))
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The cache file's name in its directory.
pub const CACHE_FILE: &str = "segments.cache";

/// The cache file, emptied: nothing in it is trusted across opens.
fn open_cache(dir: &Path, device_pages: u64) -> io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(CACHE_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    file.try_lock()
        .map_err(crate::device::lock_error)
        .map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("the cache {} is in use by another process", path.display()),
            ),
            _ => e,
        })?;
    file.set_len(0)?;
    file.set_len(device_pages * PAGE_SIZE as u64)?;
    Ok(file)
}

fn lock_state(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A worker that panicked left the counters as they were.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }

    /// The byte offset of `key`'s first page in the cache file.
    fn offset(&self, key: Key) -> u64 {
        let page = match key {
            Key::Fixed(p) => p,
            Key::Segment(s) => self.geo.segment_start(SegmentNo(s)).0,
        };
        page * PAGE_SIZE as u64
    }

    /// Pages an object of `key` can have.
    fn capacity(&self, key: Key) -> u64 {
        match key {
            Key::Fixed(_) => 1,
            Key::Segment(_) => u64::from(self.geo.pages_per_segment),
        }
    }

    /// Splits `pages` pages from `addr` into (key, first page in it, pages).
    fn pieces(&self, addr: PageAddr, pages: u64) -> Vec<(Key, u64, u64)> {
        let mut out = Vec::new();
        let (mut at, end) = (addr.0, addr.0 + pages);
        while at < end {
            let (key, off) = match self.geo.segment_of(PageAddr(at)) {
                Some(s) => (Key::Segment(s.0), self.geo.offset_in_segment(PageAddr(at))),
                None => (Key::Fixed(at), 0),
            };
            let n = (self.capacity(key) - off).min(end - at);
            out.push((key, off, n));
            at += n;
        }
        out
    }

    /// Empties `key`'s range of the cache file.
    fn punch(&self, key: Key) -> io::Result<()> {
        use nix::fcntl::{fallocate, FallocateFlags};
        let len = self.capacity(key) * PAGE_SIZE as u64;
        fallocate(
            &self.cache,
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            self.offset(key) as i64,
            len as i64,
        )
        .map_err(io::Error::from)
    }

    /// Makes `key` resident, fetching its object if it is not; a `read`
    /// counts as a cache hit or miss.
    fn ensure_resident<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        key: Key,
        read: bool,
    ) -> io::Result<MutexGuard<'a, State>> {
        st.tick += 1;
        let tick = st.tick;
        let slot = st.slots.entry(key).or_default();
        slot.used = tick;
        let resident = slot.resident;
        if read {
            let count = if resident {
                &mut st.stats.hits
            } else {
                &mut st.stats.misses
            };
            *count += 1;
            self.read_ahead(&mut st, key);
        }
        if resident {
            return Ok(st);
        }
        // A read-ahead of it not started yet is the reader's to do now (the
        // workers may all be retrying uploads to a store that is down); one
        // in flight is waited for (a single attempt) rather than repeated.
        st.queue.retain(|q| *q != (key, Job::Fetch));
        while st.busy.get(&key) == Some(&Job::Fetch) {
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if st.slots.get(&key).is_some_and(|s| s.resident) {
            return Ok(st);
        }
        drop(st);
        let data = self.fetch(key)?;
        let mut st = self.lock();
        self.install(&mut st, key, &data)?;
        Ok(st)
    }

    /// Puts a fetched object in the cache, unless a write made the slot
    /// resident meanwhile (it is newer than the object). Under the lock.
    fn install(&self, st: &mut State, key: Key, data: &[u8]) -> io::Result<()> {
        let slot = st.slots.entry(key).or_default();
        if slot.resident {
            return Ok(());
        }
        let cap = self.capacity(key) as usize * PAGE_SIZE;
        let data = &data[..data.len().min(cap)];
        self.punch(key)?;
        self.cache.write_all_at(data, self.offset(key))?;
        slot.resident = true;
        slot.pages = slot.pages.max(data.len().div_ceil(PAGE_SIZE) as u64);
        st.stats.bytes_downloaded += data.len() as u64;
        self.evict(st, Some(key))
    }

    /// A read of segment `s` right after one of `s - 1`: the segments after
    /// it are fetched in the background (the log lays a file written in
    /// one go out over consecutive segments).
    fn read_ahead(&self, st: &mut State, key: Key) {
        let Key::Segment(s) = key else { return };
        let sequential = s.checked_sub(1).is_some_and(|p| {
            st.slots
                .get(&Key::Segment(p))
                .is_some_and(|q| q.used + SEQUENTIAL_WITHIN >= st.tick)
        });
        if !sequential {
            return;
        }
        let last = (s + READ_AHEAD).min(self.geo.segment_count.saturating_sub(1));
        for n in s + 1..=last {
            let k = Key::Segment(n);
            let known = st.slots.get(&k).is_some_and(|q| q.resident || q.open);
            if !known && !st.busy.contains_key(&k) && !st.queue.iter().any(|(q, _)| *q == k) {
                st.queue.push_back((k, Job::Fetch));
            }
        }
        self.changed.notify_all();
    }

    /// The object of `key` (empty if there is none), retried until the
    /// timeout.
    fn fetch(&self, key: Key) -> io::Result<Vec<u8>> {
        self.retrying(&key.name(), || self.get_object(key))
    }

    /// `key`'s bytes as the store holds them: a segment's whole object,
    /// or, without one, the pieces of the life that was being written
    /// (each laid at its offset, in order); empty if there is nothing.
    fn get_object(&self, key: Key) -> io::Result<Vec<u8>> {
        if let Some(data) = self.backend.get(&key.name())? {
            return Ok(data);
        }
        let Key::Segment(seg) = key else {
            return Ok(Vec::new());
        };
        // A piece listed and gone was replaced by the whole object (a
        // writer elsewhere sealed the segment meanwhile): start again,
        // never return a segment with a hole.
        for _ in 0..3 {
            if let Some(out) = self.assemble(seg)? {
                return Ok(out);
            }
            if let Some(data) = self.backend.get(&key.name())? {
                return Ok(data);
            }
        }
        Err(io::Error::other(format!(
            "segment {seg}: its pieces keep changing while read"
        )))
    }

    /// Segment `seg` from its pieces (empty with none), or `None` if a
    /// piece listed is gone.
    fn assemble(&self, seg: u64) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        for name in self.backend.list(&Key::pieces(seg))? {
            let Some(from) = name
                .rsplit('/')
                .next()
                .and_then(|f| f.parse::<usize>().ok())
            else {
                continue;
            };
            let Some(piece) = self.backend.get(&name)? else {
                return Ok(None);
            };
            let at = from * PAGE_SIZE;
            if out.len() < at + piece.len() {
                out.resize(at + piece.len(), 0);
            }
            out[at..at + piece.len()].copy_from_slice(&piece);
        }
        Ok(Some(out))
    }

    /// Deletes every piece of segment `seg` (of any life).
    fn delete_pieces(&self, seg: u64) -> io::Result<()> {
        // The last first: a crash part way leaves a prefix of the life.
        for name in self.backend.list(&Key::pieces(seg))?.iter().rev() {
            self.backend.delete(name)?;
        }
        Ok(())
    }

    /// Runs `op` until it succeeds or the timeout passes, counting each
    /// failure.
    fn retrying<T>(&self, what: &str, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        retry(&self.backend.describe(), what, self.opts.timeout, || {
            op().inspect_err(|_| self.lock().stats.errors += 1)
        })
    }

    /// Evicts clean segments no log head holds and no read is copying
    /// from, least recently used first, until the cache is within its
    /// limit; never `keep` (the segment just fetched, for the caller).
    fn evict(&self, st: &mut State, keep: Option<Key>) -> io::Result<()> {
        let mut cached = st.cached_bytes();
        if cached <= self.opts.cache_bytes {
            return Ok(());
        }
        let mut victims: Vec<(u64, Key)> = st
            .slots
            .iter()
            .filter(|(k, s)| {
                matches!(k, Key::Segment(_))
                    && s.resident
                    && !s.open
                    && !s.dirty()
                    && s.readers == 0
                    && !s.pieces
                    && Some(**k) != keep
                    && !st.busy.contains_key(k)
            })
            .map(|(k, s)| (s.used, *k))
            .collect();
        victims.sort_unstable();
        for (_, key) in victims {
            if cached <= self.opts.cache_bytes {
                break;
            }
            self.punch(key)?;
            if let Some(s) = st.slots.get_mut(&key) {
                s.resident = false;
                cached -= s.pages * PAGE_SIZE as u64;
                s.pages = 0;
            }
        }
        Ok(())
    }

    /// A worker: runs queued jobs, one at a time per object.
    fn work(&self) {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                // What was flushed is stored; what was not, nothing
                // promised. Closing does not wait for a store that may
                // not answer.
                return;
            }
            let next = st.queue.iter().position(|(k, _)| !st.busy.contains_key(k));
            let Some(i) = next else {
                st = self
                    .changed
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let Some((key, job)) = st.queue.remove(i) else {
                continue;
            };
            st.busy.insert(key, job);
            drop(st);
            self.run(key, job);
            st = self.lock();
            st.busy.remove(&key);
            self.changed.notify_all();
        }
    }

    /// Runs one job, retrying until it succeeds or the device closes.
    fn run(&self, key: Key, job: Job) {
        let mut pause = Duration::from_millis(20);
        loop {
            let result = match job {
                Job::Upload => self.upload(key),
                Job::Delete => self.delete(key),
                Job::Fetch => self.read_ahead_one(key),
            };
            let mut st = self.lock();
            match result {
                Ok(()) => {
                    st.failing = None;
                    return;
                }
                Err(e) => {
                    st.stats.errors += 1;
                    let since = st.failing.as_ref().map_or_else(Instant::now, |f| f.0);
                    st.failing = Some((since, format!("{}: {e}", key.name())));
                    // A writer another took over never writes again.
                    if st.shutdown || self.backend.fenced().is_some() {
                        self.changed.notify_all();
                        return;
                    }
                }
            }
            drop(st);
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Fetches `key` ahead of a reader. One attempt: a reader that needs
    /// it and finds it missing fetches it itself, with its retries.
    fn read_ahead_one(&self, key: Key) -> io::Result<()> {
        if self
            .lock()
            .slots
            .get(&key)
            .is_some_and(|s| s.resident || s.open)
        {
            return Ok(());
        }
        if let Ok(data) = self.get_object(key) {
            let mut st = self.lock();
            self.install(&mut st, key, &data)?;
        }
        Ok(())
    }

    /// Puts `key`'s bytes as the cache holds them now.
    ///
    /// A segment a log head holds is stored as pieces, one a flush: the
    /// first (from page 0) after every object of earlier lives is gone,
    /// then only the pages appended since. Once sealed (or written in
    /// place), it is stored whole, and its pieces go.
    fn upload(&self, key: Key) -> io::Result<()> {
        let (written, from, data, piece, life) = {
            let st = self.lock();
            let Some(s) = st
                .slots
                .get(&key)
                .filter(|s| s.resident && (s.dirty() || (!s.open && s.pieces)))
            else {
                // Freed, or made clean by an upload queued before.
                return Ok(());
            };
            let piece = matches!(key, Key::Segment(_)) && s.open && !s.whole && s.pages > s.sent;
            let from = if piece { s.sent } else { 0 };
            // Read under the lock, which every write to the cache holds:
            // the object is the pages as of `written` writes, none torn.
            let mut data = vec![0u8; (s.pages - from) as usize * PAGE_SIZE];
            let at = self.offset(key) + from * PAGE_SIZE as u64;
            self.cache.read_exact_at(&mut data, at)?;
            (s.written, from, data, piece, s.life)
        };
        if piece {
            let mut st = self.lock();
            if let Some(s) = st.slots.get_mut(&key).filter(|s| s.life == life) {
                s.sending = s.sending.max(from + (data.len() / PAGE_SIZE) as u64);
            }
        }
        match key {
            Key::Segment(seg) if piece => {
                if from == 0 {
                    // This life's first piece: the last life's objects
                    // must not be read with it.
                    self.backend.delete(&key.name())?;
                    self.delete_pieces(seg)?;
                }
                self.backend.put(&Key::piece(seg, from), &data)?;
            }
            Key::Segment(seg) => {
                self.backend.put(&key.name(), &data)?;
                // Whole now (read first, so a crash between is harmless).
                self.delete_pieces(seg)?;
            }
            Key::Fixed(_) => self.backend.put(&key.name(), &data)?,
        }
        let mut st = self.lock();
        st.stats.uploads += 1;
        st.stats.bytes_uploaded += data.len() as u64;
        if let Some(s) = st.slots.get_mut(&key).filter(|s| s.life == life) {
            s.stored = s.stored.max(written);
            if piece {
                s.sent = s.sent.max(from + (data.len() / PAGE_SIZE) as u64);
                s.pieces = true;
            } else if s.open {
                // Stored whole while a head holds it: pieces after a whole
                // object would not be read.
                s.whole = true;
                s.pieces = false;
            } else {
                s.pieces = false;
            }
        }
        self.evict(&mut st, None)?;
        self.changed.notify_all();
        Ok(())
    }

    /// Deletes what the store holds of a freed segment: its object and
    /// any pieces.
    fn delete(&self, key: Key) -> io::Result<()> {
        self.backend.delete(&key.name())?;
        if let Key::Segment(seg) = key {
            self.delete_pieces(seg)?;
        }
        self.lock().stats.deletes += 1;
        Ok(())
    }

    /// Waits until the store holds every write made before the call.
    fn flush(&self) -> io::Result<()> {
        let mut st = self.lock();
        let targets: Vec<(Key, u64)> = st
            .slots
            .iter()
            .filter(|(_, s)| s.dirty())
            .map(|(k, s)| (*k, s.written))
            .collect();
        for &(key, _) in &targets {
            if !st.queue.iter().any(|(k, j)| *k == key && *j == Job::Upload) {
                st.queue(key, Job::Upload);
            }
        }
        self.changed.notify_all();
        let deadline = Instant::now() + self.opts.timeout;
        loop {
            if let Some(why) = self.backend.fenced() {
                return Err(super::lease::fenced(&why));
            }
            let waiting = targets
                .iter()
                .filter(|(k, w)| st.slots.get(k).is_some_and(|s| s.stored < *w && s.resident))
                .count();
            if waiting == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let why = st.failing.as_ref().map_or("no answer", |f| f.1.as_str());
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "object store {}: {waiting} objects not stored after {} s ({why}); \
                         they stay in the cache and are retried",
                        self.backend.describe(),
                        self.opts.timeout.as_secs()
                    ),
                ));
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn refuse_read_only(&self) -> io::Result<()> {
        if self.opts.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is open read-only", self.backend.describe()),
            ));
        }
        Ok(())
    }
}

impl BlockDevice for ObjectDevice {
    fn len_pages(&self) -> u64 {
        self.descriptor.device_pages
    }

    fn store_stats(&self) -> Option<StoreStats> {
        Some(self.stats())
    }

    /// Writes stay in the cache and are retried until the store has them.
    fn keeps_unflushed(&self) -> bool {
        true
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        let sh = &*self.shared;
        check_range(self.len_pages(), addr, buf.len())?;
        let pages = (buf.len() / PAGE_SIZE) as u64;
        let mut done = 0;
        for (key, off, n) in sh.pieces(addr, pages) {
            let mut st = sh.ensure_resident(sh.lock(), key, true)?;
            // Pinned, the range is copied without the lock, so that reads
            // run side by side: a write to it holds the lock, and a
            // segment being read is never being written (the log writes
            // only segments it opened, which reads do not ask for).
            st.slots.entry(key).or_default().readers += 1;
            drop(st);
            let len = n as usize * PAGE_SIZE;
            let at = sh.offset(key) + off * PAGE_SIZE as u64;
            let r = sh.cache.read_exact_at(&mut buf[done..done + len], at);
            if let Some(s) = sh.lock().slots.get_mut(&key) {
                s.readers = s.readers.saturating_sub(1);
            }
            r?;
            done += len;
        }
        Ok(())
    }

    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        let sh = &*self.shared;
        sh.refuse_read_only()?;
        check_range(self.len_pages(), addr, buf.len())?;
        let pages = (buf.len() / PAGE_SIZE) as u64;
        let mut done = 0;
        for (key, off, n) in sh.pieces(addr, pages) {
            // A segment no head holds is written in place (a rewind): the
            // rest of its object must come along.
            let mut st = sh.ensure_resident(sh.lock(), key, false)?;
            let len = n as usize * PAGE_SIZE;
            let at = sh.offset(key) + off * PAGE_SIZE as u64;
            sh.cache.write_all_at(&buf[done..done + len], at)?;
            let slot = st.slots.entry(key).or_default();
            // Pieces hold appended pages only: anything else (a rewind
            // zeroing a record, a write to a segment no head holds) is
            // stored whole.
            if !slot.open || off < slot.sent.max(slot.sending) {
                slot.whole = true;
            }
            slot.pages = slot.pages.max(off + n);
            slot.written += 1;
            done += len;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.shared.flush()
    }

    fn open_segment(&self, seg: SegmentNo) -> io::Result<()> {
        let sh = &*self.shared;
        sh.refuse_read_only()?;
        let key = Key::Segment(seg.0);
        let mut st = sh.lock();
        // A delete of the last life still running lands before this life's
        // first upload: jobs on one object run one at a time. A delete
        // still queued is dropped: this life's upload replaces the object.
        st.queue.retain(|(k, _)| *k != key);
        sh.punch(key)?;
        st.tick += 1;
        let tick = st.tick;
        let slot = st.slots.entry(key).or_default();
        *slot = Slot {
            resident: true,
            pages: 0,
            open: true,
            // The last life's object stays until this life's first
            // upload replaces it: nothing durable refers to it.
            written: slot.written,
            stored: slot.stored,
            used: tick,
            readers: slot.readers,
            sent: 0,
            whole: false,
            pieces: false,
            sending: 0,
            life: slot.life + 1,
        };
        Ok(())
    }

    fn seal_segment(&self, seg: SegmentNo) -> io::Result<()> {
        let sh = &*self.shared;
        let key = Key::Segment(seg.0);
        let mut st = sh.lock();
        if let Some(slot) = st.slots.get_mut(&key) {
            slot.open = false;
            // Stored as pieces: put whole now, even if nothing was written
            // since the last piece.
            if slot.dirty() || slot.pieces {
                st.queue(key, Job::Upload);
                sh.changed.notify_all();
            }
        }
        Ok(())
    }

    fn free_segment(&self, seg: SegmentNo) -> io::Result<()> {
        let sh = &*self.shared;
        sh.refuse_read_only()?;
        let key = Key::Segment(seg.0);
        let mut st = sh.lock();
        if st
            .slots
            .get(&key)
            .is_some_and(|s| s.resident && s.readers == 0 && !st.busy.contains_key(&key))
        {
            sh.punch(key)?;
        }
        let (written, readers, life) = st
            .slots
            .get(&key)
            .map_or((0, 0, 0), |s| (s.written, s.readers, s.life));
        st.slots.insert(
            key,
            Slot {
                written,
                stored: written,
                readers,
                life: life + 1,
                ..Slot::default()
            },
        );
        st.queue(key, Job::Delete);
        sh.changed.notify_all();
        Ok(())
    }
}
