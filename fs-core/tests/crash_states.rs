//! Crash states (in the spirit of CrashMonkey and dm-log-writes): random
//! workloads run on a device that records every write and flush barrier,
//! in each journaling mode; then every image a power cut could leave is
//! rebuilt (each prefix of the writes; random subsets and orders of the
//! writes in flight since the last barrier; a torn write) and mounted.
//! Each must mount with no repair, check clean, and show what the mode
//! promises: the state of a commit (`ordered`), of the last operation that
//! returned (`full`), or a commit's namespace with no foreign data
//! (`writeback`).
//!
//! Every other fsync and timer commit hands its flush out
//! (`volume/flushes.rs`), run after the next operation, as the daemon runs
//! it outside its lock.
//!
//! A second test fails the n-th write or flush for every n and checks the
//! same of the image left behind, and that the failure was reported.
//!
//! `PAGELOG_CRASH_DEBUG=1` prints each run's operations, device events and
//! commits (for a failing case reduced to a regression test).

use std::collections::BTreeMap;
use std::sync::Arc;

use pagelog_core::fs::JournalMode;
use pagelog_core::seal::MasterKey;
use pagelog_core::testing::{CrashState, FaultyDevice, RecordingDevice};
use pagelog_core::{format, BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

mod support;
use support::model::*;

const PAGES: u64 = 1024;

thread_local! {
    /// Segments the cleaning passes of this thread's workloads emptied.
    static CLEANED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// The key of this thread's workloads' filesystems, when they are sealed.
    static KEY: std::cell::RefCell<Option<MasterKey>> = const { std::cell::RefCell::new(None) };
}

fn key() -> Option<MasterKey> {
    KEY.with(|k| k.borrow().clone())
}

/// A fresh image whose files store their data as `chain` says (a chain,
/// `+sealed` to seal the volume; the key is this thread's from then on).
fn base_image(chain: &str) -> Vec<u8> {
    let dev = Arc::new(MemDevice::new(PAGES));
    let (fopts, key) = support::storing(chain, 16);
    KEY.with(|k| *k.borrow_mut() = key);
    format(dev.clone(), &fopts).expect("format");
    dev.snapshot()
}

fn opts(read_only: bool, journal: JournalMode) -> MountOptions {
    MountOptions {
        read_only,
        journal,
        dirty_limit: 16 << 10,
        // Small, so that workloads also commit because of the log's length.
        log_limit: 24 << 10,
        key: key(),
        ..MountOptions::default()
    }
}

/// A committed state: the event index of its flush, the tree, and whether
/// file data may lag behind it (a `writeback` metadata-only commit); and
/// the snapshots that exist once it is durable, with the tree each holds.
struct Commit {
    flush: usize,
    /// The event index at which the operation that made it began: none of
    /// its writes come before.
    start: usize,
    model: Model,
    relaxed: bool,
    snapshots: BTreeMap<Vec<u8>, Model>,
    branches: BTreeMap<Vec<u8>, Model>,
}

/// Flushes handed out by every other fsync and timer commit, run as the
/// daemon runs them: without the filesystem, here after the next
/// operation (which may change memory, write unflushed data, or flush on
/// its own meanwhile).
#[derive(Default)]
struct Deferred {
    handed: u64,
    owed: Option<pagelog_core::flushes::Flush>,
    /// States waiting for the first flush after their writes (event index
    /// in `flush` until then), whoever runs it.
    waiting: Vec<Commit>,
}

impl Deferred {
    /// Runs `op` with its flush handed out, if it is an fsync or a timer
    /// commit and its turn: the flush owed (`None` when nothing is).
    fn hand_out(
        &mut self,
        fs: &mut Filesystem,
        model: &Model,
        op: &Op,
    ) -> Option<Option<pagelog_core::flushes::Flush>> {
        let ino = match op {
            Op::Fsync { node } => Some(fsync_target(model, *node)?),
            Op::CrashCut => None,
            _ => return None,
        };
        self.handed += 1;
        if self.handed % 2 == 1 {
            return None;
        }
        // As the daemon does: the dirty data first, a step at a time.
        while fs.write_back_step().expect("write back") {}
        Some(match ino {
            Some(ino) => fs.fsync_deferred(ino).expect("fsync"),
            None => fs.periodic_commit_deferred().expect("periodic commit"),
        })
    }

    /// Runs a flush handed out, and hands it back.
    fn run(flush: Option<pagelog_core::flushes::Flush>, fs: &mut Filesystem) {
        if let Some(f) = flush {
            let outcome = f.run();
            fs.flushed(&f, outcome).expect("flushed");
        }
    }

    /// Moves the waiting states that a flush has made durable to
    /// `commits`, in order.
    fn resolve(&mut self, dev: &RecordingDevice, commits: &mut Vec<Commit>) {
        while let Some(f) = self
            .waiting
            .first()
            .and_then(|w| dev.first_flush_from(w.flush))
        {
            let w = self.waiting.remove(0);
            commits.push(Commit { flush: f, ..w });
        }
    }
}

/// Runs `ops` on a recording device in `mode`; returns the device and the
/// commits. `Op::Sync` is syncfs (a full commit); `Op::CrashCut` stands for
/// the commit timer (metadata only in the `writeback` mode); in the `full`
/// mode every operation commits by itself. Every other fsync and timer
/// commit hands its flush out, run after the next operation.
fn record(ops: &[Op], mode: JournalMode, chain: &str) -> (Arc<RecordingDevice>, Vec<Commit>) {
    let dev = Arc::new(RecordingDevice::new(&base_image(chain)));
    let mut fs =
        Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts(false, mode)).expect("mount");
    let mut model = Model::new();
    let mut snapshots: BTreeMap<Vec<u8>, Model> = BTreeMap::new();
    let mut branches = Branches::default();
    let trees = |b: &Branches| -> BTreeMap<Vec<u8>, Model> {
        b.models
            .iter()
            .map(|(k, (m, _))| (k.clone(), m.clone()))
            .collect()
    };
    let mut commits = vec![Commit {
        flush: 0,
        start: 0,
        model: model.clone(),
        relaxed: false,
        snapshots: snapshots.clone(),
        branches: BTreeMap::new(),
    }];
    let mut deferred = Deferred::default();
    for op in ops {
        let before = dev.len();
        // The flush the previous operation handed out runs after this one.
        let owed = deferred.owed.take();
        if std::env::var("PAGELOG_CRASH_DEBUG").is_ok() {
            eprintln!("op at {before}: {op:?}");
        }
        let handed = deferred.hand_out(&mut fs, &model, op);
        if let Some(Some(flush)) = handed {
            deferred.waiting.push(Commit {
                flush: dev.len(),
                start: before,
                model: model.clone(),
                relaxed: mode == JournalMode::Writeback,
                snapshots: snapshots.clone(),
                branches: trees(&branches),
            });
            deferred.owed = Some(flush);
            Deferred::run(owed, &mut fs);
            deferred.resolve(&dev, &mut commits);
            continue;
        }
        let relaxed = match op {
            // Handed out nothing: durable already, or by a flush it ran.
            _ if handed.is_some() => mode == JournalMode::Writeback,
            Op::Sync | Op::Remount => {
                fs.sync().expect("sync");
                false
            }
            Op::CrashCut => {
                fs.periodic_commit().expect("periodic commit");
                mode == JournalMode::Writeback
            }
            // Durable when it returns (a roll-forward record, or a commit);
            // in `writeback` only the file's own data goes with it.
            Op::Fsync { .. } => {
                apply_op(&mut fs, &mut model, op);
                mode == JournalMode::Writeback
            }
            // A cleaning pass moves live data to the cleaner's log head
            // (or, urgent, to the main one); with a commit it commits
            // everything, moved pages first.
            Op::Clean { commit, urgent } => {
                let freed = fs.clean(clean_pass(*commit, *urgent)).expect("clean");
                CLEANED.with(|c| c.set(c.get() + freed));
                false
            }
            // Acknowledged (durable) when it returns, like an fsync.
            Op::Snapshot { slot } => {
                let name = snapshot_name(*slot);
                match fs.create_snapshot(&name, None) {
                    Ok(_) => {
                        snapshots.insert(name, model.clone());
                    }
                    Err(Error::Exists) => assert!(snapshots.contains_key(&name)),
                    Err(e) => panic!("snapshot: {e}"),
                }
                false
            }
            Op::DeleteSnapshot { slot } => {
                let name = snapshot_name(*slot);
                match fs.delete_snapshot(&name) {
                    Err(Error::Refused(_)) if branches.made_from(&name) => {}
                    Ok(()) => assert!(snapshots.remove(&name).is_some()),
                    Err(Error::Refused(_)) => assert!(!snapshots.contains_key(&name)),
                    Err(e) => panic!("delete snapshot: {e}"),
                }
                false
            }
            Op::Clone { .. } | Op::InBranch { .. } | Op::DeleteBranch { .. } => {
                branches.apply(&mut fs, &snapshots, op);
                false
            }
            // Two commits: the present kept as a snapshot, then the
            // rollback; a crash between them shows the first.
            Op::Rollback { slot, keep } => {
                branches.close_all(&mut fs);
                let (from, keep) = (snapshot_name(*slot), snapshot_name(*keep));
                if snapshots.contains_key(&from) && !snapshots.contains_key(&keep) {
                    fs.create_snapshot(&keep, None).expect("keep the present");
                    snapshots.insert(keep.clone(), model.clone());
                    let f = dev.last_flush_before(dev.len()).expect("a flush");
                    deferred.resolve(&dev, &mut commits);
                    commits.push(Commit {
                        flush: f,
                        start: before,
                        model: model.clone(),
                        relaxed: false,
                        snapshots: snapshots.clone(),
                        branches: trees(&branches),
                    });
                    let source = pagelog_core::roots::RootName::Past(
                        pagelog_core::checkpoints::At::Snapshot(from.clone()),
                    );
                    fs.rollback_onto(&source, &keep).expect("rollback");
                    model = snapshots[&from].clone();
                }
                false
            }
            _ => {
                apply_op(&mut fs, &mut model, op);
                false
            }
        };
        deferred.resolve(&dev, &mut commits);
        if let Some(f) = dev.last_flush_before(dev.len()).filter(|&f| f >= before) {
            commits.push(Commit {
                flush: f,
                start: before,
                model: model.clone(),
                relaxed,
                snapshots: snapshots.clone(),
                branches: trees(&branches),
            });
        }
        Deferred::run(owed, &mut fs);
        deferred.resolve(&dev, &mut commits);
    }
    // The run ends in a crash: no unmount, and a flush still owed never
    // runs; its state may have landed all the same (never durable).
    drop(fs);
    if std::env::var("PAGELOG_CRASH_DEBUG").is_ok() {
        for (i, e) in dev.events().iter().enumerate() {
            match e {
                pagelog_core::testing::Event::Flush => eprintln!("{i}: flush"),
                pagelog_core::testing::Event::Write { addr, data } => {
                    eprintln!("{i}: write {} +{}", addr.0, data.len())
                }
            }
        }
        for c in &commits {
            eprintln!(
                "commit at {} {:?}",
                c.flush,
                c.model
                    .entries(0)
                    .keys()
                    .map(|k| String::from_utf8_lossy(k).to_string())
                    .collect::<Vec<_>>()
            );
        }
    }
    commits.extend(deferred.waiting.into_iter().map(|w| Commit {
        flush: usize::MAX,
        ..w
    }));
    (dev, commits)
}

/// The states a crash after the first `upto` events may show, when the
/// next flush is event `next_flush`: the last commit whose flush completed,
/// or a later one begun before that flush (all of whose writes may have
/// landed; more than one when flushes are handed out, as records and
/// commits then wait for a flush together).
fn allowed(commits: &[Commit], upto: usize, next_flush: usize) -> (usize, Vec<usize>) {
    let durable = commits
        .iter()
        .rposition(|c| c.flush < upto && c.flush > 0)
        .unwrap_or(0);
    let later = (durable + 1..commits.len())
        .filter(|&i| commits[i].start < next_flush)
        .collect();
    (durable, later)
}

/// Mounts the crash image and checks it against the allowed states.
fn check_state(
    dev: &RecordingDevice,
    commits: &[Commit],
    state: &CrashState,
    writable: bool,
) -> Result<(), String> {
    let image = dev.crash_image(state);
    let report = support::fsck_with(
        &Arc::new(MemDevice::from_bytes(&image)),
        key().as_ref(),
        pagelog_core::fsck::Level::Full,
    );
    if report.problems() > 0 {
        return Err(format!(
            "{state:?}: the checker finds {:?}",
            report.findings
        ));
    }
    let mem = Arc::new(MemDevice::from_bytes(&image));
    let device = mem.clone() as Arc<dyn BlockDevice>;
    let mut fs = Filesystem::mount(device, opts(!writable, JournalMode::Ordered))
        .map_err(|e| format!("{state:?}: does not mount: {e}"))?;
    let next_flush = dev.first_flush_from(state.prefix).unwrap_or(usize::MAX);
    let (a, later) = allowed(commits, state.prefix, next_flush);
    let first = diff_data(&mut fs, &commits[a].model, commits[a].relaxed);
    let mut seconds = Vec::new();
    let mut matching = Vec::new();
    for &l in &later {
        match diff_data(&mut fs, &commits[l].model, commits[l].relaxed) {
            Ok(()) => matching.push(Some(l)),
            Err(e) => seconds.push(e),
        }
    }
    if first.is_err() && matching.is_empty() {
        return Err(format!(
            "{state:?}: matches neither commit {a} nor any of {later:?} ({seconds:?}): {}",
            first.err().unwrap_or_default()
        ));
    }
    // The later commit that landed, among those the data matches (several
    // may hold the same files and differ in their snapshots or branches:
    // an fsync's and the snapshot deletion after it); or, when none
    // matches, the last that may have landed.
    if matching.is_empty() {
        matching.push(later.last().copied());
    }
    let mut errors = Vec::new();
    matching.retain(|&b| match check_branches(&mut fs, commits, a, b, state) {
        Ok(()) => true,
        Err(e) => {
            errors.push(e);
            false
        }
    });
    if matching.is_empty() {
        return Err(errors.join("; "));
    }
    fs.unmount()
        .map_err(|e| format!("{state:?}: unmount: {e}"))?;
    if writable {
        // What the mount recovered (rolled forward, then committed) checks
        // clean too.
        let report = support::fsck_with(&mem, key().as_ref(), pagelog_core::fsck::Level::Full);
        if report.problems() > 0 {
            return Err(format!(
                "{state:?}: after recovery the checker finds {:?}",
                report.findings
            ));
        }
    }
    let mut errors = Vec::new();
    for b in matching {
        match check_snapshots(&image, commits, a, b, state) {
            Ok(()) => return Ok(()),
            Err(e) => errors.push(e),
        }
    }
    Err(errors.join("; "))
}

/// What a crash state may hold of the named roots (snapshots or branches)
/// that the durable commit `a` holds (`at_a`) and the commit after it
/// (`later`, which may have landed) holds: each name, whether it must be
/// there (acknowledged by `a` and not deleted by the next commit), and the
/// states it may read as.
struct Expected<'c> {
    name: &'c Vec<u8>,
    must: bool,
    states: [Option<&'c Model>; 2],
}

fn expected<'c>(
    at_a: &'c BTreeMap<Vec<u8>, Model>,
    later: Option<&'c BTreeMap<Vec<u8>, Model>>,
) -> Vec<Expected<'c>> {
    let names: std::collections::BTreeSet<&Vec<u8>> = at_a
        .keys()
        .chain(later.into_iter().flat_map(|l| l.keys()))
        .collect();
    names
        .into_iter()
        .map(|name| Expected {
            name,
            must: at_a.contains_key(name) && later.is_none_or(|l| l.contains_key(name)),
            states: [at_a.get(name), later.and_then(|l| l.get(name))],
        })
        .collect()
}

/// Every branch that the durable commit `a` holds reads as it did then,
/// or as at commit `b`; one made or deleted since may or may not be there.
fn check_branches(
    fs: &mut Filesystem,
    commits: &[Commit],
    a: usize,
    b: Option<usize>,
    state: &CrashState,
) -> Result<(), String> {
    let later = b.map(|b| &commits[b].branches);
    for Expected { name, must, states } in expected(&commits[a].branches, later) {
        let id = match fs.open_branch(name) {
            Ok(id) => id,
            Err(e) if must => {
                return Err(format!(
                    "{state:?}: acknowledged branch {name:?} is gone: {e}"
                ))
            }
            Err(_) => continue,
        };
        let ok = states.iter().flatten().any(|m| {
            fs.in_view(id, |v| Ok(diff_data(v, m, false).is_ok()))
                .unwrap_or(false)
        });
        fs.close_view(id)
            .map_err(|e| format!("{state:?}: close branch: {e}"))?;
        if !ok {
            return Err(format!(
                "{state:?}: branch {name:?} does not read as it was"
            ));
        }
    }
    Ok(())
}

/// Every snapshot acknowledged by the durable commit `a` (and not deleted
/// by then) is intact; one created or deleted since may or may not be
/// there (commit `b` may have landed), but if it is, it is whole.
fn check_snapshots(
    image: &[u8],
    commits: &[Commit],
    a: usize,
    b: Option<usize>,
    state: &CrashState,
) -> Result<(), String> {
    let later = b.map(|b| &commits[b].snapshots);
    for Expected { name, must, states } in expected(&commits[a].snapshots, later) {
        let device = Arc::new(MemDevice::from_bytes(image)) as Arc<dyn BlockDevice>;
        let opts = MountOptions {
            at: Some(pagelog_core::checkpoints::At::Snapshot(name.clone())),
            ..opts(true, JournalMode::Ordered)
        };
        match Filesystem::mount(device, opts) {
            Ok(mut fs) => {
                if !states
                    .iter()
                    .flatten()
                    .any(|m| diff_data(&mut fs, m, false).is_ok())
                {
                    return Err(format!(
                        "{state:?}: snapshot {name:?} does not read as it was"
                    ));
                }
            }
            Err(e) if must => {
                return Err(format!(
                    "{state:?}: acknowledged snapshot {name:?} is gone: {e}"
                ))
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Every crash state of one recorded run; returns how many were checked.
/// What the log tells the segment store, against what it writes: a
/// segment is written only while open (taken by a head, not yet sealed);
/// it is sealed only once every write of the life is done; it is freed
/// only when sealed and not open again. (Whether a segment opened held
/// anything still needed is for the crash images: an open voids it.) (Crash images built as a store of
/// objects would leave them check that acting on the events is safe.)
fn check_segment_events(dev: &RecordingDevice) -> Result<(), String> {
    use pagelog_core::testing::{Event, SegmentEvent};
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Life {
        /// Open before the recording started (the format's), or unknown.
        Before,
        Open,
        Sealed,
        Free,
    }
    let base = dev.crash_image(&CrashState::default());
    let sb = pagelog_core::superblock::Superblock::decode(
        &base[..pagelog_core::layout::PAGE_SIZE],
        pagelog_core::PageAddr(0),
    )
    .map_err(|e| format!("base superblock: {e}"))?;
    let geo = sb.geometry;
    let mut life = vec![Life::Before; geo.segment_count as usize];
    let seg_events = dev.segment_events();
    let mut next = seg_events.iter().peekable();
    let events = dev.events();
    for i in 0..=events.len() {
        while let Some((_, e)) = next.next_if(|(at, _)| *at <= i) {
            let (seg, to, from): (_, _, &[Life]) = match *e {
                // A segment left empty (a head's successor at a mount)
                // is taken again without being freed: it held nothing.
                SegmentEvent::Open(s) => (s, Life::Open, &[Life::Before, Life::Sealed, Life::Free]),
                SegmentEvent::Seal(s) => (s, Life::Sealed, &[Life::Before, Life::Open]),
                SegmentEvent::Free(s) => (s, Life::Free, &[Life::Before, Life::Sealed]),
            };
            let now = &mut life[seg.0 as usize];
            if !from.contains(now) {
                return Err(format!("event {i}: {e:?} of a segment in state {now:?}"));
            }
            *now = to;
        }
        if let Some(Event::Write { addr, data }) = events.get(i) {
            let pages = (data.len() / pagelog_core::layout::PAGE_SIZE) as u64;
            for p in 0..pages {
                let Some(seg) = geo.segment_of(addr.offset(p)) else {
                    continue;
                };
                let now = life[seg.0 as usize];
                if now != Life::Open {
                    return Err(format!(
                        "event {i}: write into segment {seg} in state {now:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_run(ops: &[Op], seed: u64, mode: JournalMode, chain: &str) -> Result<usize, String> {
    let (dev, commits) = record(ops, mode, chain);
    check_segment_events(&dev)?;
    let n = dev.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut checked = 0;
    for prefix in 0..=n {
        // Every tenth state is mounted read-write, so recovery followed by
        // new writes is exercised too. Every other state is the one a
        // store of segment objects would leave (segments freed are
        // deleted, segments opened lose their earlier life at once): what
        // the log tells the store must be safe to act on at once.
        check_state(
            &dev,
            &commits,
            &CrashState {
                prefix,
                as_objects: prefix % 2 == 1,
                ..CrashState::default()
            },
            prefix % 10 == 0,
        )?;
        checked += 1;
        // At each barrier, the writes in flight until the next one may land
        // in any subset and order.
        let at_barrier = prefix == 0 || dev.last_flush_before(prefix) == Some(prefix - 1);
        let in_flight = dev.in_flight(prefix);
        if !at_barrier || in_flight.len() < 2 {
            continue;
        }
        // Reordered and dropped writes, and a torn one.
        for _ in 0..6 {
            let mut extra: Vec<usize> = in_flight
                .iter()
                .copied()
                .filter(|_| rng.random_bool(0.5))
                .collect();
            for i in (1..extra.len()).rev() {
                extra.swap(i, rng.random_range(0..=i));
            }
            let torn = in_flight
                .get(rng.random_range(0..in_flight.len()))
                .map(|&w| {
                    let sectors = (0..dev.sectors(w)).map(|_| rng.random_bool(0.5)).collect();
                    (w, sectors)
                });
            check_state(
                &dev,
                &commits,
                &CrashState {
                    prefix,
                    extra,
                    torn,
                    as_objects: false,
                },
                false,
            )?;
            checked += 1;
        }
    }
    Ok(checked)
}

/// Operations for crash workloads: mostly data and namespace changes,
/// with frequent commits (`Sync` is syncfs, `CrashCut` the commit timer).
fn crash_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => op_strategy().prop_filter("harness ops", |o| !matches!(o, Op::Remount | Op::CrashCut | Op::Sync)),
        1 => Just(Op::Sync),
        1 => Just(Op::CrashCut),
    ]
    .prop_map(|o| match o {
        Op::Write { file, offset, len, seed } => Op::Write { file, offset: offset % (64 << 10), len: len % 9000 + 1, seed },
        Op::Truncate { file, size } => Op::Truncate { file, size: size % (80 << 10) },
        Op::Fallocate { file, offset, len, keep } => Op::Fallocate { file, offset: offset % (64 << 10), len: len % 20000 + 1, keep },
        Op::Punch { file, offset, len } => Op::Punch { file, offset: offset % (64 << 10), len: len % 20000 + 1 },
        other => other,
    })
}

/// Random workloads in `mode` (reproducible: a fixed seed unless
/// PAGELOG_CRASH_SEED says otherwise), every crash state of each; failures
/// shrink to a minimal workload. PAGELOG_CRASH_SCALE multiplies the number
/// of workloads (the long run). Returns the states checked.
fn crash_states_in(mode: JournalMode, cases: u32) -> usize {
    crash_states_storing(mode, cases, "none")
}

/// [`crash_states_in`] on a filesystem whose files store their data
/// through `chain`.
fn crash_states_storing(mode: JournalMode, cases: u32, chain: &str) -> usize {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let scale: u32 = std::env::var("PAGELOG_CRASH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let seed: u64 = std::env::var("PAGELOG_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: cases * scale,
        max_shrink_iters: 300,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let states = std::sync::atomic::AtomicUsize::new(0);
    let strategy = (proptest::collection::vec(crash_op(), 10..60), any::<u64>());
    let result = runner.run(&strategy, |(ops, seed)| {
        let checked = check_run(&ops, seed, mode, chain).map_err(TestCaseError::fail)?;
        prop_assert!(checked > 10, "only {checked} crash states");
        states.fetch_add(checked, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{mode:?}: {e}");
    }
    let total = states.load(std::sync::atomic::Ordering::Relaxed);
    let cleaned = CLEANED.with(std::cell::Cell::get);
    eprintln!(
        "{mode:?}: {total} crash states checked in {} workloads; cleaning emptied {cleaned} segments",
        cases * scale
    );
    assert!(cleaned > 0, "no workload cleaned a segment");
    total
}

/// `ordered`: every crash state is the state of a commit.
#[test]
fn ordered_crash_states_are_commit_points() {
    assert!(crash_states_in(JournalMode::Ordered, 150) >= 4000);
}

/// `ordered` with every file compressed (zstd, clusters of 4 pages):
/// clusters rewritten whole, partly overwritten, truncated and punched,
/// moved by the cleaner, in every crash state.
#[test]
fn compressed_crash_states_are_commit_points() {
    assert!(crash_states_storing(JournalMode::Ordered, 60, "zstd:1") >= 1500);
}

/// `ordered` on a sealed volume with compression: every crash state
/// opens with the key (summaries, checkpoints, table pages and units
/// sealed), checks clean and is a commit point.
#[test]
fn sealed_crash_states_are_commit_points() {
    assert!(crash_states_storing(JournalMode::Ordered, 40, "zstd:1+sealed") >= 1000);
}

/// `full`: every crash state is the state after the last operation that
/// returned (or the one in flight).
#[test]
fn full_crash_states_lose_nothing_that_returned() {
    assert!(crash_states_in(JournalMode::Full, 40) >= 3000);
}

/// `writeback`: every crash state has a commit's namespace and sizes, and
/// file pages that read as the commit's data, zeros, or the file's own
/// older data, never anything else.
#[test]
fn writeback_crash_states_show_no_foreign_data() {
    assert!(crash_states_in(JournalMode::Writeback, 150) >= 4000);
}

/// The fault test's workload, as a clean run saw it: every committed
/// state (name -> bytes) in order, and how many writes committed (because
/// of the log limit) on their own.
struct Committed {
    states: Vec<BTreeMap<String, Vec<u8>>>,
    by_writes: usize,
}

/// A workload for the fault test: files written and committed in turn.
fn faulty_workload(fs: &mut Filesystem) -> Result<Committed, Error> {
    let root = Cred::root();
    let mut now = BTreeMap::new();
    let mut committed = vec![now.clone()];
    let mut by_writes = 0;
    for i in 0..12u32 {
        let name = format!("f{}", i % 5);
        let data: Vec<u8> = (0..(i * 3000 + 10)).map(|j| (j + i) as u8).collect();
        let ino = match fs.lookup(&root, Ino::ROOT, name.as_bytes()) {
            Ok(a) => a.ino,
            Err(Error::NotFound) => fs.mknod(&root, Ino::ROOT, name.as_bytes(), 0o644, 0)?.ino,
            Err(e) => return Err(e),
        };
        fs.setattr(
            &root,
            ino,
            &pagelog_core::SetAttr {
                size: Some(0),
                ..Default::default()
            },
        )?;
        let commits = fs.stats().commits;
        fs.write(&root, ino, 0, &data)?;
        now.insert(name, data);
        if fs.stats().commits != commits {
            // The write committed: the log since the last commit was long.
            committed.push(now.clone());
            by_writes += 1;
        }
        if i % 4 == 2 {
            // Cleaning moves data (and with a commit, commits): failures
            // there too must leave a commit point.
            let commits = fs.stats().commits;
            fs.clean(clean_pass(i % 8 == 2, i % 16 >= 8))?;
            if fs.stats().commits != commits {
                committed.push(now.clone());
            }
        }
        if i % 2 == 1 {
            fs.sync()?;
            committed.push(now.clone());
        }
    }
    Ok(Committed {
        states: committed,
        by_writes,
    })
}

fn contents(fs: &mut Filesystem) -> BTreeMap<String, Vec<u8>> {
    let root = Cred::root();
    let mut names = Vec::new();
    fs.readdir(Ino::ROOT, 2, &mut |e| {
        names.push(e.name.clone());
        true
    })
    .expect("readdir");
    names
        .into_iter()
        .map(|n| {
            let a = fs.lookup(&root, Ino::ROOT, &n).expect("lookup");
            (
                String::from_utf8_lossy(&n).into_owned(),
                fs.read(a.ino, 0, 1 << 20).expect("read"),
            )
        })
        .collect()
}

#[test]
fn failing_the_nth_io_is_reported_and_leaves_a_commit_point() {
    let base = base_image("none");
    // Count the I/Os of a clean run.
    let clean = Arc::new(FaultyDevice::new(&base, u64::MAX));
    let mut fs = Filesystem::mount(
        clean.clone() as Arc<dyn BlockDevice>,
        opts(false, JournalMode::Ordered),
    )
    .expect("mount");
    let run = faulty_workload(&mut fs).expect("clean run");
    fs.unmount().expect("unmount");
    let total = clean.count();
    assert!(total > 20, "only {total} I/Os");
    // Writes that committed because of the log limit: their failures are
    // tested too.
    assert!(run.by_writes > 0, "no write committed");
    let all = run.states;
    for n in 0..total {
        let dev = Arc::new(FaultyDevice::new(&base, n));
        let outcome = match Filesystem::mount(
            dev.clone() as Arc<dyn BlockDevice>,
            opts(false, JournalMode::Ordered),
        ) {
            Err(e) => {
                assert!(
                    matches!(e, Error::Io(_)),
                    "I/O {n}: mount failed with {e:?}"
                );
                None
            }
            Ok(mut fs) => {
                let r = faulty_workload(&mut fs);
                let r2 = r.and_then(|c| fs.unmount().map(|()| c));
                Some(r2)
            }
        };
        if let Some(Ok(_)) = outcome {
            panic!("I/O {n} failed but nothing reported it");
        }
        // The image left behind mounts, and holds a committed state.
        let image = dev.snapshot();
        let mut fs = Filesystem::mount(
            Arc::new(MemDevice::from_bytes(&image)) as Arc<dyn BlockDevice>,
            opts(true, JournalMode::Ordered),
        )
        .unwrap_or_else(|e| panic!("I/O {n}: the image does not mount: {e}"));
        let got = contents(&mut fs);
        assert!(
            all.contains(&got),
            "I/O {n}: state is no commit point: {:?}",
            got.keys().collect::<Vec<_>>()
        );
    }
}

/// Regression (found by the writeback workloads): a file truncated after
/// metadata-only commits may read, below its new size, a prefix of data
/// it had before (what the `writeback` mode allows), which the model must
/// accept.
#[test]
fn writeback_truncate_after_metadata_commits() {
    let ops = vec![
        Op::Create { dir: 0, name: 0 },
        Op::Write {
            file: 0,
            offset: 3165,
            len: 7368,
            seed: 0,
        },
        Op::Clean {
            commit: true,
            urgent: false,
        },
        Op::Create { dir: 0, name: 0 },
        Op::Write {
            file: 91,
            offset: 5516,
            len: 8890,
            seed: 237,
        },
        Op::Rmdir { dir: 58, name: 5 },
        Op::CrashCut,
        Op::CrashCut,
        Op::Truncate {
            file: 166,
            size: 10532,
        },
        Op::CrashCut,
    ];
    if let Err(e) = check_run(&ops, 3074032695928682627, JournalMode::Writeback, "none") {
        panic!("{e}");
    }
}

/// Regression (found by the `full` workloads once fsyncs handed their
/// flushes out): an fsync whose roll-forward record waits for its flush
/// while later operations make their own records durable.
#[test]
fn full_fsync_handed_out_beside_later_records() {
    let ops = vec![
        Op::Create { dir: 0, name: 0 },
        Op::CrashCut,
        Op::Create { dir: 0, name: 0 },
        Op::Clean {
            commit: false,
            urgent: false,
        },
        Op::Fsync { node: 0 },
        Op::Symlink {
            dir: 0,
            name: 1,
            len: 1,
        },
        Op::Create { dir: 0, name: 0 },
        Op::Link {
            file: 0,
            dir: 12,
            name: 5,
        },
        Op::Snapshot { slot: 2 },
        Op::Snapshot { slot: 0 },
    ];
    if let Err(e) = check_run(&ops, 2706726946830468567, JournalMode::Full, "none") {
        panic!("{e}");
    }
}

/// Regression (found by the `writeback` workloads once fsyncs handed their
/// flushes out).
#[test]
fn writeback_fsync_handed_out_then_overwritten() {
    let ops = vec![
        Op::Create { dir: 0, name: 0 },
        Op::Write {
            file: 0,
            offset: 63587,
            len: 6046,
            seed: 0,
        },
        Op::Create { dir: 0, name: 1 },
        Op::CrashCut,
        Op::Fsync { node: 32 },
        Op::Write {
            file: 0,
            offset: 0,
            len: 4097,
            seed: 0,
        },
        Op::Mkdir { dir: 0, name: 1 },
        Op::SetAcl {
            node: 83,
            uid: 0,
            default: true,
        },
        Op::Sync,
        Op::Rmdir { dir: 36, name: 3 },
    ];
    if let Err(e) = check_run(&ops, 12006145319512658417, JournalMode::Writeback, "none") {
        panic!("{e}");
    }
}

/// Regression of the harness (found once `Op::Defrag` joined the workloads
/// and shifted what they generate): a handed-out fsync's state and the
/// snapshot deletion after it hold the same files, and the deletion's
/// checkpoint landed without its flush; the state is the deletion's, not
/// a snapshot lost.
#[test]
fn ordered_snapshot_deleted_between_fsyncs() {
    let ops = vec![
        Op::CrashCut,
        Op::Fsync { node: 0 },
        Op::Snapshot { slot: 1 },
        Op::Create { dir: 0, name: 0 },
        Op::CrashCut,
        Op::Fsync { node: 0 },
        Op::DeleteSnapshot { slot: 1 },
        Op::Create { dir: 0, name: 0 },
        Op::Symlink {
            dir: 43,
            name: 4,
            len: 2541,
        },
        Op::Create { dir: 231, name: 0 },
    ];
    if let Err(e) = check_run(&ops, 16516184216782572577, JournalMode::Ordered, "none") {
        panic!("{e}");
    }
}
