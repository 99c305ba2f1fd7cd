//! Segments as objects (`objects/`), on the local-directory store: what the
//! store holds after a flush is the whole filesystem (a lost cache, a
//! killed process, a second machine), freed segments' objects go, the
//! cache keeps to its limit, and an unanswering store blocks, then fails
//! with a clear error, losing nothing committed.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pagelog_core::cleaner::{Pass, Policy};
use pagelog_core::fsck::{self, Level};
use pagelog_core::objects::{DirBackend, ObjectBackend, ObjectDevice, StoreOptions};
use pagelog_core::{
    format, BlockDevice, Cred, Filesystem, FormatOptions, Ino, MountOptions, PageAddr,
};

mod support;

const PS: usize = 4096;
/// 32 MiB volumes of 64-page (256 KiB) segments.
const PAGES: u64 = 8192;
const PPS: u32 = 64;

/// A directory store that can be made to stop answering.
#[derive(Debug, Clone)]
struct Flaky {
    inner: Arc<DirBackend>,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> io::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "store down",
            ));
        }
        Ok(())
    }
}

impl ObjectBackend for Flaky {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.put(key, data)
    }
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.check()?;
        self.inner.get(key)
    }
    fn delete(&self, key: &str) -> io::Result<()> {
        self.check()?;
        self.inner.delete(key)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.check()?;
        self.inner.list(prefix)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn store(dir: &Path) -> Box<DirBackend> {
    Box::new(DirBackend::new(&dir.join("store")).expect("store"))
}

fn options(cache_bytes: u64) -> StoreOptions {
    StoreOptions {
        cache_bytes,
        timeout: Duration::from_secs(20),
        ..StoreOptions::default()
    }
}

/// A new filesystem in the store under `dir`, cached in `dir/<cache>`.
fn made(dir: &Path, cache: &str, cache_bytes: u64) -> Arc<ObjectDevice> {
    let dev = ObjectDevice::create(
        store(dir),
        &dir.join(cache),
        PAGES,
        PPS,
        false,
        options(cache_bytes),
    )
    .expect("create");
    let dev = Arc::new(dev);
    let opts = FormatOptions {
        pages_per_segment: PPS,
        ..FormatOptions::default()
    };
    format(dev.clone(), &opts).expect("format");
    dev
}

/// The store under `dir` opened on a new, empty cache (another machine).
fn elsewhere(dir: &Path, cache: &str) -> Arc<ObjectDevice> {
    Arc::new(ObjectDevice::open(store(dir), &dir.join(cache), options(1 << 30)).expect("open"))
}

/// The store under `dir` read by another machine while its writer lives
/// (a second writer would be refused: `lease.rs`).
fn elsewhere_ro(dir: &Path, cache: &str) -> Arc<ObjectDevice> {
    let opts = StoreOptions {
        read_only: true,
        ..options(1 << 30)
    };
    Arc::new(ObjectDevice::open(store(dir), &dir.join(cache), opts).expect("open"))
}

fn mount_ro(dev: &Arc<ObjectDevice>) -> Filesystem {
    let opts = MountOptions {
        read_only: true,
        ..MountOptions::default()
    };
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount read-only")
}

fn mount(dev: &Arc<ObjectDevice>) -> Filesystem {
    let opts = MountOptions {
        dirty_limit: 1 << 20,
        ..MountOptions::default()
    };
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount")
}

fn content(len: usize, seed: u64) -> Vec<u8> {
    support::noise(len, seed)
}

fn write_files(fs: &mut Filesystem, tag: &str, n: usize, len: usize) -> BTreeMap<String, Vec<u8>> {
    let root = Cred::root();
    let mut files = BTreeMap::new();
    for i in 0..n {
        let name = format!("{tag}-{i}");
        let data = content(len + i * 100, (i as u64 + 1) * 7919 + tag.len() as u64);
        let f = fs
            .mknod(&root, Ino::ROOT, name.as_bytes(), 0o644, 0)
            .expect("create");
        fs.write(&root, f.ino, 0, &data).expect("write");
        files.insert(name, data);
    }
    files
}

fn verify(fs: &mut Filesystem, files: &BTreeMap<String, Vec<u8>>) {
    support::verify_files(fs, files);
}

fn check_clean(dev: &Arc<ObjectDevice>) {
    let report = fsck::check(
        dev.clone() as Arc<dyn BlockDevice>,
        None,
        Level::VerifyData,
        &mut |_, _, _| {},
    );
    assert_eq!(report.problems(), 0, "checker finds {:?}", report.findings);
}

/// Every object of the store under `dir` and its bytes.
fn objects(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let s = store(dir);
    s.list("")
        .expect("list")
        .into_iter()
        .map(|k| {
            let bytes = s.get(&k).expect("get").unwrap_or_default();
            (k, bytes)
        })
        .collect()
}

fn segment_objects(dir: &Path) -> usize {
    store(dir).list("segments/").expect("list").len()
}

#[test]
fn a_flushed_filesystem_mounts_from_another_cache() {
    let dir = tempfile::tempdir().expect("tmp");
    let dev = made(dir.path(), "cache-a", 1 << 30);
    let mut fs = mount(&dev);
    let files = write_files(&mut fs, "f", 40, 30_000);
    fs.unmount().expect("unmount");
    let up = dev.stats();
    assert!(up.bytes_uploaded >= 40 * 30_000, "{up:?}");
    assert_eq!(up.pending_uploads, 0, "{up:?}");
    drop(dev);
    // The first cache is gone: everything comes from the store.
    std::fs::remove_dir_all(dir.path().join("cache-a")).expect("rm cache");
    let dev = elsewhere(dir.path(), "cache-b");
    check_clean(&dev);
    let mut fs = mount(&dev);
    verify(&mut fs, &files);
    fs.unmount().expect("unmount");
    let down = dev.stats();
    assert!(down.misses > 0 && down.bytes_downloaded > 0, "{down:?}");
}

/// A process killed after a sync: a mount elsewhere sees every synced
/// byte, and nothing written after it but what a roll-forward keeps.
#[test]
fn a_killed_writer_leaves_every_synced_byte_in_the_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let dev = made(dir.path(), "cache-a", 1 << 30);
    let mut fs = mount(&dev);
    let synced = write_files(&mut fs, "synced", 20, 50_000);
    fs.sync().expect("sync");
    let _later = write_files(&mut fs, "later", 20, 50_000);
    // The writer dies: no unmount, no flush; its device stays alive (as a
    // process that hangs would), its cache unread by the next machine.
    std::mem::forget(fs);
    let dev2 = elsewhere_ro(dir.path(), "cache-b");
    check_clean(&dev2);
    let mut fs = mount_ro(&dev2);
    verify(&mut fs, &synced);
    fs.unmount().expect("unmount");
    std::mem::forget(dev);
}

/// Cleaning frees segments; their objects are deleted, and what stays is
/// exactly what the filesystem needs (a mount elsewhere checks clean).
#[test]
fn cleaning_deletes_the_objects_of_freed_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let dev = made(dir.path(), "cache-a", 1 << 30);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let mut keep = BTreeMap::new();
    for round in 0..6 {
        let files = write_files(&mut fs, &format!("r{round}"), 30, 60_000);
        fs.sync().expect("sync");
        // Keep one file in three: the segments hold mostly dead pages.
        for (i, (name, data)) in files.into_iter().enumerate() {
            if i % 3 == 0 {
                keep.insert(name, data);
            } else {
                fs.unlink(&root, Ino::ROOT, name.as_bytes())
                    .expect("unlink");
            }
        }
        fs.sync().expect("sync");
        let pass = Pass {
            policy: Policy::Greedy,
            batch: 8,
            max_live_percent: 80,
            commit: true,
            urgent: false,
        };
        while fs.clean(pass).expect("clean") > 0 {}
        fs.sync().expect("sync");
    }
    let report = fs.cleaner_report();
    assert!(report.stats.segments_cleaned > 0, "{report:?}");
    fs.unmount().expect("unmount");
    let stats = dev.stats();
    assert!(stats.deletes > 0, "no object deleted: {stats:?}");
    let objects = segment_objects(dir.path());
    eprintln!("{objects} segment objects; {stats:?}; {report:?}");
    // Far fewer objects than segments ever written: 6 rounds of 30 files
    // of about 60 KiB are about 10 MiB, 40 segments.
    assert!(objects < 40, "{objects} segment objects remain");
    drop(dev);
    let dev = elsewhere(dir.path(), "cache-b");
    check_clean(&dev);
    let mut fs = mount(&dev);
    verify(&mut fs, &keep);
    fs.unmount().expect("unmount");
}

#[test]
fn the_cache_keeps_to_its_limit_and_reads_come_back_from_the_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let limit = 4 * u64::from(PPS) * PS as u64;
    let dev = made(dir.path(), "cache-a", limit);
    let mut fs = mount(&dev);
    let files = write_files(&mut fs, "big", 16, 400_000);
    fs.sync().expect("sync");
    let s = dev.stats();
    // The log heads' segments (two each for the main and the cleaner's
    // head) may stay beyond the limit.
    assert!(
        s.cached_bytes <= limit + 4 * u64::from(PPS) * PS as u64,
        "{s:?}"
    );
    fs.unmount().expect("unmount");
    let mut fs = mount(&dev);
    verify(&mut fs, &files);
    let after = dev.stats();
    assert!(after.misses > s.misses, "no read missed: {after:?}");
    assert!(after.cached_bytes <= limit + 4 * u64::from(PPS) * PS as u64);
    fs.unmount().expect("unmount");
}

#[test]
fn an_unanswering_store_blocks_then_fails_and_loses_nothing_committed() {
    let dir = tempfile::tempdir().expect("tmp");
    let inner = Arc::new(DirBackend::new(&dir.path().join("store")).expect("store"));
    let down = Arc::new(AtomicBool::new(false));
    let flaky = Flaky {
        inner,
        down: down.clone(),
    };
    let opts = StoreOptions {
        timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let dev = Arc::new(
        ObjectDevice::create(
            Box::new(flaky.clone()),
            &dir.path().join("cache"),
            PAGES,
            PPS,
            false,
            opts,
        )
        .expect("create"),
    );
    let fmt = FormatOptions {
        pages_per_segment: PPS,
        ..FormatOptions::default()
    };
    format(dev.clone(), &fmt).expect("format");
    let mut fs = mount(&dev);
    let committed = write_files(&mut fs, "a", 10, 20_000);
    fs.sync().expect("sync");

    // Down for less than the timeout: the sync waits, then succeeds.
    let more = write_files(&mut fs, "b", 10, 20_000);
    down.store(true, Ordering::SeqCst);
    let up = {
        let down = down.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            down.store(false, Ordering::SeqCst);
        })
    };
    fs.sync().expect("a sync outlasting a short outage");
    up.join().expect("join");

    // Down for longer: the sync fails with an error that names the store;
    // the filesystem stays writable, holding what it could not store.
    let late = write_files(&mut fs, "c", 10, 20_000);
    down.store(true, Ordering::SeqCst);
    let err = fs.sync().expect_err("sync with the store down");
    let msg = err.to_string();
    assert!(msg.contains("object store"), "{msg}");
    assert!(msg.contains("not stored"), "{msg}");
    assert_eq!(fs.cleaner_report().state, "read-write");
    // A mount elsewhere meanwhile has what the syncs that returned stored.
    let killed = {
        down.store(false, Ordering::SeqCst);
        let dev2 = elsewhere_ro(dir.path(), "cache-b");
        check_clean(&dev2);
        let mut fs2 = Filesystem::mount(
            dev2.clone() as Arc<dyn BlockDevice>,
            MountOptions {
                read_only: true,
                ..MountOptions::default()
            },
        )
        .expect("mount read-only elsewhere");
        verify(&mut fs2, &committed);
        verify(&mut fs2, &more);
        drop(fs2);
        dev2
    };
    drop(killed);
    // The store is back: the next sync stores everything, the late files
    // with it.
    let more_late = write_files(&mut fs, "d", 5, 20_000);
    fs.sync().expect("sync once the store is back");
    fs.unmount().expect("unmount");
    drop(dev);
    let dev3 = elsewhere(dir.path(), "cache-c");
    check_clean(&dev3);
    let mut fs = mount(&dev3);
    for files in [&committed, &more, &late, &more_late] {
        verify(&mut fs, files);
    }
    fs.unmount().expect("unmount");
}

#[test]
fn a_store_refuses_a_second_filesystem_and_reads_what_it_was_given() {
    let dir = tempfile::tempdir().expect("tmp");
    let dev = made(dir.path(), "cache-a", 1 << 30);
    // Raw pages: a superblock-area page and pages across two segments.
    let a = PageAddr(300);
    let data: Vec<u8> = (0..3 * PS).map(|i| (i % 251) as u8).collect();
    dev.write(a, &data).expect("write");
    dev.flush().expect("flush");
    drop(dev);
    let again = ObjectDevice::create(
        store(dir.path()),
        &dir.path().join("cache-c"),
        PAGES,
        PPS,
        false,
        options(1 << 30),
    );
    let err = again.expect_err("second mkfs");
    assert!(err.to_string().contains("already holds"), "{err}");
    let dev = elsewhere(dir.path(), "cache-b");
    let mut back = vec![0u8; 3 * PS];
    dev.read(a, &mut back).expect("read");
    assert!(back == data);
    // A store with no filesystem says so.
    let empty = tempfile::tempdir().expect("tmp");
    let err = ObjectDevice::open(
        store(empty.path()),
        &empty.path().join("c"),
        options(1 << 20),
    )
    .expect_err("open of an empty store");
    assert!(err.to_string().contains("no pagelog filesystem"), "{err}");
}

/// A cache of no size keeps nothing it can drop: every read of a sealed
/// segment fetches it, and still reads what was written (a fetched
/// segment is not evicted before its reader copies it).
#[test]
fn a_cache_of_no_size_still_reads_right() {
    let dir = tempfile::tempdir().expect("tmp");
    let dev = made(dir.path(), "cache-a", 0);
    let mut fs = mount(&dev);
    let files = write_files(&mut fs, "z", 12, 90_000);
    fs.unmount().expect("unmount");
    let mut fs = mount(&dev);
    verify(&mut fs, &files);
    fs.unmount().expect("unmount");
    let s = dev.stats();
    assert!(s.misses > 0, "{s:?}");
    drop(dev);
    check_clean(&elsewhere(dir.path(), "cache-b"));
}

/// With the store down and every worker retrying uploads, a sequential
/// read of what the cache does not hold fails after the timeout (its
/// read-ahead waiting in the queue is the reader's to do), and reads right
/// once the store is back.
#[test]
fn a_read_with_the_store_down_fails_instead_of_hanging() {
    let dir = tempfile::tempdir().expect("tmp");
    let dev = made(dir.path(), "cache-a", 1 << 30);
    let mut fs = mount(&dev);
    let old = write_files(&mut fs, "old", 1, 3 << 20);
    fs.unmount().expect("unmount");
    drop(dev);

    let down = Arc::new(AtomicBool::new(false));
    let flaky = Flaky {
        inner: Arc::new(DirBackend::new(&dir.path().join("store")).expect("store")),
        down: down.clone(),
    };
    let opts = StoreOptions {
        timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let dev = Arc::new(
        ObjectDevice::open(Box::new(flaky), &dir.path().join("cache-b"), opts).expect("open"),
    );
    let mut fs = mount(&dev);
    let root = Cred::root();
    let ino = fs.lookup(&root, Ino::ROOT, b"old-0").expect("lookup").ino;
    fs.read(ino, 0, 64 << 10).expect("first read, store up");
    down.store(true, Ordering::SeqCst);
    // Sealed segments to upload: the workers retry them while it is down.
    let _pending = write_files(&mut fs, "new", 4, 1 << 20);
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let r = (0..48).try_for_each(|i| fs.read(ino, i << 16, 64 << 10).map(drop));
        tx.send(r.is_err()).expect("send");
        fs
    });
    let failed = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a read with the store down hung");
    assert!(failed, "reads with the store down all succeeded");
    let mut fs = reader.join().expect("join");
    down.store(false, Ordering::SeqCst);
    verify(&mut fs, &old);
    fs.unmount().expect("unmount");
}

/// Small fsyncs put only what each appended: the segment being written is
/// stored as pieces, not again whole at every flush; a mount elsewhere
/// reads it from them.
#[test]
fn small_fsyncs_upload_what_they_wrote() {
    let dir = tempfile::tempdir().expect("tmp");
    let dev = made(dir.path(), "cache-a", 1 << 30);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"log", 0o644, 0)
        .expect("create");
    let before = dev.stats().bytes_uploaded;
    let mut all = Vec::new();
    for i in 0..50u64 {
        let page = content(PS, i + 1);
        fs.write(&root, f.ino, i * PS as u64, &page).expect("write");
        fs.fsync(f.ino).expect("fsync");
        all.extend_from_slice(&page);
    }
    let up = dev.stats().bytes_uploaded - before;
    eprintln!("50 fsyncs of 4 KiB uploaded {up} bytes");
    // Each fsync writes a data page, a node, a roll-forward page and their
    // record summaries: a few pages. Stored whole at every flush, the
    // segment so far would be about 128 KiB a flush on average here;
    // as pieces, each page goes up twice (its piece, then the segment
    // whole when sealed).
    assert!(
        up < 50 * 64 * 1024,
        "{up} bytes uploaded for 50 fsyncs of 4 KiB"
    );
    // Segments the log has left are stored whole, their pieces gone:
    // only the heads' segments stay in pieces.
    let in_pieces = || {
        let mut segs: Vec<String> = store(dir.path())
            .list("open/")
            .expect("list")
            .iter()
            .filter_map(|k| k.split('/').nth(1).map(str::to_string))
            .collect();
        segs.dedup();
        segs.len()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while in_pieces() > 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} segments still in pieces",
            in_pieces()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(segment_objects(dir.path()) > 0, "no segment stored whole");
    // The writer dies; another machine has every fsync'd byte.
    std::mem::forget(fs);
    let dev2 = elsewhere_ro(dir.path(), "cache-b");
    check_clean(&dev2);
    let mut fs = mount_ro(&dev2);
    let files = BTreeMap::from([("log".to_string(), all)]);
    verify(&mut fs, &files);
    fs.unmount().expect("unmount");
    std::mem::forget(dev);
}

/// One writer at a time: a second read-write open is refused while the
/// first renews its lease; a writer whose lease another took stops
/// writing (read-only at its last commit), and a lease nobody renews is
/// taken over.
#[test]
fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let quick = StoreOptions {
        lease: Duration::from_millis(200),
        ..options(1 << 30)
    };
    let dev = Arc::new(
        ObjectDevice::create(
            store(dir.path()),
            &dir.path().join("cache-a"),
            PAGES,
            PPS,
            false,
            quick.clone(),
        )
        .expect("create"),
    );
    let opts = FormatOptions {
        pages_per_segment: PPS,
        ..FormatOptions::default()
    };
    format(dev.clone(), &opts).expect("format");
    let mut fs = mount(&dev);
    let synced = write_files(&mut fs, "synced", 10, 30_000);
    fs.sync().expect("sync");
    let second = ObjectDevice::open(
        store(dir.path()),
        &dir.path().join("cache-b"),
        quick.clone(),
    );
    match second {
        Err(pagelog_core::Error::Refused(msg)) => {
            assert!(msg.contains("mounted read-write on"), "{msg}")
        }
        other => panic!("a second writer: {other:?}"),
    }
    // Another machine takes the store over (as one would from a writer
    // silent too long): the first writes nothing more.
    let other = serde_json::json!({
        "token": "0123", "host": "another-machine", "pid": 1, "since_ns": 0, "renewed": 0
    });
    store(dir.path())
        .put("writer.json", other.to_string().as_bytes())
        .expect("put");
    // Its next renewal finds it (a real taker waits four renewals).
    std::thread::sleep(Duration::from_millis(500));
    let untouched = objects(dir.path());
    write_files(&mut fs, "late", 5, 30_000);
    let err = fs
        .sync()
        .expect_err("a sync after the store was taken over");
    assert!(err.to_string().contains("another writer"), "{err}");
    assert!(
        objects(dir.path()) == untouched,
        "a writer taken over wrote to the store"
    );
    let state = fs.cleaner_report().state;
    assert!(state.starts_with("read-only"), "state: {state}");
    drop(fs);
    drop(dev);
    // That lease is never renewed: the next writer takes it over.
    let dev = ObjectDevice::open(store(dir.path()), &dir.path().join("cache-c"), quick)
        .expect("taking over a silent lease");
    let dev = Arc::new(dev);
    check_clean(&dev);
    let mut fs = mount(&dev);
    verify(&mut fs, &synced);
    fs.unmount().expect("unmount");
    drop(dev);
    assert!(
        store(dir.path()).get("writer.json").expect("get").is_none(),
        "a clean close gives the lease back"
    );
}
