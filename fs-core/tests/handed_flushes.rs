//! Flushes handed out (`volume/flushes.rs`): an fsync or a commit issues
//! its writes and leaves the flush to a caller that runs it without the
//! filesystem's lock. Until it is handed back nothing relies on it: a
//! second fsync does not return early, a commit's superblock waits, and a
//! failed flush makes the filesystem read-only. (Every crash state of
//! workloads with flushes handed out is checked by `crash_states.rs`.)

use std::sync::Arc;

use pagelog_core::fsck::Level;
use pagelog_core::testing::{Event, FaultyDevice, RecordingDevice};
use pagelog_core::{BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions};

mod support;

fn flushes(dev: &RecordingDevice) -> usize {
    dev.events()
        .iter()
        .filter(|e| matches!(e, Event::Flush))
        .count()
}

fn recording() -> Arc<RecordingDevice> {
    let image = support::formatted(8192, 64).snapshot();
    Arc::new(RecordingDevice::new(&image))
}

fn mount(dev: Arc<dyn BlockDevice>) -> Filesystem {
    Filesystem::mount(dev, MountOptions::default()).expect("mount")
}

/// An fsync hands its flush out without flushing; a second fsync with
/// nothing new to write still owes a flush while the first is out (its
/// data went with the first one's record); once one is handed back,
/// nothing is owed.
#[test]
fn an_fsync_hands_its_flush_out_and_the_next_one_waits_for_it_too() {
    let dev = recording();
    let mut fs = mount(dev.clone());
    let root = Cred::root();
    let a = fs.mknod(&root, Ino::ROOT, b"a", 0o644, 0).expect("create");
    fs.write(&root, a.ino, 0, b"first").expect("write");
    let (before, commits) = (flushes(&dev), fs.stats().commits);
    let first = fs
        .fsync_deferred(a.ino)
        .expect("fsync")
        .expect("a flush owed");
    assert_eq!(flushes(&dev), before, "the fsync flushed by itself");
    // Readers and writers go on meanwhile.
    assert_eq!(fs.read(a.ino, 0, 5).expect("read"), b"first");
    let b = fs.mknod(&root, Ino::ROOT, b"b", 0o644, 0).expect("create");
    fs.write(&root, b.ino, 0, b"second").expect("write");
    let second = fs
        .fsync_deferred(b.ino)
        .expect("fsync")
        .expect("a flush owed");
    let third = fs.fsync_deferred(b.ino).expect("fsync");
    assert!(third.is_some(), "returned before the record was flushed");
    second.run().expect("flush");
    fs.flushed(&second, Ok(())).expect("handed back");
    assert!(
        fs.fsync_deferred(a.ino).expect("fsync").is_none(),
        "everything was flushed"
    );
    // Handed back late, in any order: nothing goes wrong.
    fs.flushed(&first, Ok(())).expect("handed back");
    if let Some(t) = third {
        fs.flushed(&t, Ok(())).expect("handed back");
    }
    assert_eq!(fs.stats().commits, commits, "an fsync committed");
}

/// A commit hands its flush out: the superblock keeps naming the
/// checkpoint before until it is handed back; operations in between stay
/// in memory for the next commit; a second commit completes the first
/// before its own writes.
#[test]
fn a_commit_writes_its_superblock_once_its_flush_is_handed_back() {
    let mem = support::formatted(8192, 64);
    let mut fs = support::mount(&mem);
    let root = Cred::root();
    let a = fs.mknod(&root, Ino::ROOT, b"a", 0o644, 0).expect("create");
    fs.write(&root, a.ino, 0, b"committed").expect("write");
    let named = fs.superblock().checkpoint_no;
    let flush = fs
        .periodic_commit_deferred()
        .expect("commit")
        .expect("a flush owed");
    assert_eq!(
        fs.superblock().checkpoint_no,
        named,
        "superblock written before the flush"
    );
    fs.mknod(&root, Ino::ROOT, b"later", 0o644, 0)
        .expect("create");
    flush.run().expect("flush");
    fs.flushed(&flush, Ok(())).expect("handed back");
    let first = fs.superblock().checkpoint_no.0;
    assert!(first > named.0, "no superblock after the flush");

    // Two commits, the first still owed when the second runs.
    fs.write(&root, a.ino, 0, b"again").expect("write");
    let owed = fs
        .periodic_commit_deferred()
        .expect("commit")
        .expect("owed");
    fs.mknod(&root, Ino::ROOT, b"last", 0o644, 0)
        .expect("create");
    fs.sync().expect("second commit");
    assert!(
        fs.superblock().checkpoint_no.0 > first + 1,
        "the first was not completed"
    );
    fs.flushed(&owed, Ok(())).expect("handed back late");
    drop(fs);

    let crashed = Arc::new(MemDevice::from_bytes(&mem.snapshot()));
    let report = support::fsck(&crashed, Level::Full);
    assert_eq!(report.problems(), 0, "{:?}", report.findings);
    let mut fs = support::mount(&crashed);
    for name in [&b"a"[..], b"later", b"last"] {
        fs.lookup(&root, Ino::ROOT, name).expect("committed");
    }
}

/// A flush handed out that fails is reported, and the filesystem goes on
/// read-only from its last commit, as after any failed write.
#[test]
fn a_failed_flush_handed_back_makes_the_filesystem_read_only() {
    let image = support::formatted(8192, 64).snapshot();
    let dev = Arc::new(FaultyDevice::new(&image, u64::MAX));
    let mut fs = mount(dev.clone());
    let root = Cred::root();
    let a = fs.mknod(&root, Ino::ROOT, b"a", 0o644, 0).expect("create");
    fs.write(&root, a.ino, 0, b"lost").expect("write");
    let flush = fs.fsync_deferred(a.ino).expect("fsync").expect("owed");
    // A second fsync owes the same writes a flush of its own.
    let second = fs.fsync_deferred(a.ino).expect("fsync").expect("owed");
    dev.fail_at(dev.count());
    let outcome = flush.run();
    assert!(outcome.is_err(), "the device did not fail");
    let r = fs.flushed(&flush, outcome);
    assert!(r.is_err(), "a failed flush was not reported");
    // The kernel reports a failed writeback to one flush only: the other,
    // though it succeeds, proves nothing, and is reported as failed too.
    dev.fail_at(u64::MAX);
    assert!(second.run().is_ok());
    assert!(
        fs.flushed(&second, Ok(())).is_err(),
        "a flush after a failed one counted as durable"
    );
    assert!(
        fs.degraded().is_some(),
        "the filesystem did not go read-only"
    );
    assert!(matches!(
        fs.mknod(&root, Ino::ROOT, b"b", 0o644, 0),
        Err(Error::ReadOnly)
    ));
}

/// Dirty data written back in steps of at most `WRITEBACK_STEP` pages
/// ahead of a commit (as the daemon does, taking its lock per step): each
/// step leaves the rest dirty, the data reads back the same throughout,
/// and the commit after it holds it all.
#[test]
fn dirty_data_is_written_back_in_steps() {
    use pagelog_core::fs::WRITEBACK_STEP;
    let mem = support::formatted(16384, 64);
    let mut fs = support::mount(&mem);
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"big", 0o644, 0)
        .expect("create");
    let pages = 3 * WRITEBACK_STEP + 10;
    let bytes: Vec<u8> = (0..pages * 4096).map(|i| (i % 251) as u8).collect();
    fs.write(&root, f.ino, 0, &bytes).expect("write");
    let mut steps = 0;
    let before = fs.device_pages_written();
    while fs.write_back_step().expect("step") {
        steps += 1;
        assert_eq!(fs.read(f.ino, 0, bytes.len() as u32).expect("read"), bytes);
    }
    assert_eq!(steps, 3, "steps of {WRITEBACK_STEP} pages");
    let written = fs.device_pages_written() - before;
    assert!(written >= pages as u64, "only {written} pages written");
    assert!(!fs.write_back_step().expect("step"), "dirty data left");
    fs.sync().expect("commit");
    drop(fs);
    let mut fs = support::mount(&mem);
    assert_eq!(fs.read(f.ino, 0, bytes.len() as u32).expect("read"), bytes);
}

/// Left to the caller, the commit `log_limit` asks for is not run by a
/// write; the caller runs it with its flush handed out, then its
/// superblock's.
#[test]
fn the_log_limit_commit_can_be_left_to_the_caller() {
    let mem = support::formatted(16384, 64);
    let opts = MountOptions {
        log_limit: 1 << 20,
        dirty_limit: 1 << 20,
        ..MountOptions::default()
    };
    let mut fs = Filesystem::mount(mem.clone() as Arc<dyn BlockDevice>, opts).expect("mount");
    fs.leave_log_limit_to_caller();
    let root = Cred::root();
    let f = fs
        .mknod(&root, Ino::ROOT, b"log", 0o644, 0)
        .expect("create");
    let commits = fs.stats().commits;
    for i in 0..16u64 {
        fs.write(&root, f.ino, i << 18, &[i as u8; 1 << 18])
            .expect("write");
    }
    assert_eq!(fs.stats().commits, commits, "a write committed");
    assert!(fs.log_limit_due());
    let flush = fs
        .log_limit_commit_deferred()
        .expect("commit")
        .expect("owed");
    flush.run().expect("flush");
    fs.flushed(&flush, Ok(())).expect("handed back");
    assert!(!fs.log_limit_due());
    let named = fs.superblock().checkpoint_no;
    let sb = fs.settle_deferred().expect("settle").expect("owed");
    sb.run().expect("flush");
    fs.flushed(&sb, Ok(())).expect("handed back");
    assert!(
        fs.settle_deferred().expect("settle").is_none(),
        "still owed"
    );
    assert_eq!(fs.stats().commits, commits + 1);
    assert_eq!(fs.superblock().checkpoint_no, named);
}
