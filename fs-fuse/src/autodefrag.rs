//! `-o autodefrag`: defragmentation through the read path, as the seed
//! proposed. Reads note how far each file has been read in sequence
//! ([`Reads::note`], a map lookup, nothing more: the read that triggers it
//! is not slowed); a file read in sequence past [`TRIGGER`] (or to its end
//! from its start) is queued once, and a thread of its own looks at its
//! layout and, if it is fragmented past the threshold, lays it out again
//! (`Filesystem::defrag_step`), a step per hold of the lock, and only
//! while no request has come for [`QUIET`]: the read that queued the file
//! (and any other work) goes first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use pagelog_core::Ino;

use crate::adapter::Shared;

/// Bytes read in sequence that make a file a candidate.
pub const TRIGGER: u64 = 1 << 20;

/// A read this far past the end of the run still continues it (the
/// kernel's readahead requests may arrive out of order).
const SLACK: u64 = 512 << 10;

/// A read this far behind the end of the run continues it too (one the
/// kernel sent before a later one that arrived first).
const BEHIND: u64 = 4 << 20;

/// How long without a request before a step runs.
const QUIET: Duration = Duration::from_millis(500);

/// Files remembered at most (per map): past it the maps start again.
const MAX_FILES: usize = 1 << 16;

/// How each file has been read, and what waits for a look.
#[derive(Debug, Default)]
pub struct Reads {
    state: Mutex<State>,
    /// Files laid out again by this mount.
    pub files_moved: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Per file: the end of its run of sequential reads, and the bytes
    /// the run holds.
    runs: HashMap<Ino, (u64, u64)>,
    queue: VecDeque<Ino>,
    /// Queued once this mount (a file is looked at once).
    seen: HashSet<Ino>,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reads {
    /// A read of `asked` bytes of `ino` at `offset` returned `got`.
    pub fn note(&self, ino: Ino, offset: u64, asked: u32, got: usize) {
        let mut s = lock(&self.state);
        if s.seen.contains(&ino) {
            return;
        }
        if s.runs.len() >= MAX_FILES {
            s.runs.clear();
        }
        let got = got as u64;
        let run = s.runs.entry(ino).or_insert((0, 0));
        if offset <= run.0 + SLACK && offset + got + BEHIND >= run.0 {
            run.1 += got;
        } else {
            *run = (0, 0);
            if offset != 0 {
                return;
            }
            run.1 = got;
        }
        run.0 = run.0.max(offset + got);
        let whole = got < u64::from(asked) && run.1 >= run.0;
        if run.1 >= TRIGGER || (whole && run.1 > 0) {
            s.runs.remove(&ino);
            if s.seen.len() >= MAX_FILES {
                s.seen.clear();
            }
            s.seen.insert(ino);
            s.queue.push_back(ino);
        }
    }

    fn next(&self) -> Option<Ino> {
        lock(&self.state).queue.pop_front()
    }
}

/// Starts the thread that lays out again what reads queued, for files
/// with at least `threshold` of their extents past their ideal.
pub fn spawn(shared: Arc<Shared>, threshold: f64, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let Some(ino) = shared.reads.next() else {
                thread::sleep(Duration::from_millis(100));
                continue;
            };
            match lay_out(&shared, ino, threshold, &stop) {
                Ok(true) => {
                    shared.reads.files_moved.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => log::warn!("autodefrag: inode {ino}: {e}"),
            }
        }
    })
}

/// Lays `ino` out again if it is fragmented past `threshold`: its layout
/// is looked at first (no commit), then a step of pages per hold of the
/// lock. Returns whether it moved.
fn lay_out(
    shared: &Shared,
    ino: Ino,
    threshold: f64,
    stop: &AtomicBool,
) -> pagelog_core::Result<bool> {
    let mut quiet = Quiet {
        seen: shared.requests.load(Ordering::Relaxed),
        since: std::time::Instant::now(),
    };
    if !quiet.wait(shared, stop) {
        return Ok(false);
    }
    let l = shared.with_uncounted(|fs| fs.layout(ino))?;
    if l.extents <= l.ideal || l.factor() < threshold {
        return Ok(false);
    }
    let (_, wanted) = shared.with_uncounted(|fs| fs.defrag_begin(ino, threshold, false))?;
    if !wanted {
        return Ok(false);
    }
    let mut next = Some(0);
    while let Some(from) = next {
        if !quiet.wait(shared, stop) {
            return Ok(false);
        }
        next = shared.with_uncounted(|fs| fs.defrag_step(ino, from))?;
    }
    shared.with_uncounted(|fs| fs.defrag_finish(ino))?;
    log::info!(
        "autodefrag: inode {ino} laid out again ({} extents before)",
        l.extents
    );
    Ok(true)
}

/// When requests last came, as the worker sees it.
struct Quiet {
    seen: u64,
    since: std::time::Instant,
}

impl Quiet {
    /// Waits until no request has come for [`QUIET`] (no wait if none has
    /// for that long already); false if the mount is stopping.
    fn wait(&mut self, shared: &Shared, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            let now = shared.requests.load(Ordering::Relaxed);
            if now != self.seen {
                (self.seen, self.since) = (now, std::time::Instant::now());
            }
            if self.since.elapsed() >= QUIET {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_read_in_sequence_is_queued_once() {
        let r = Reads::default();
        let ino = Ino(77);
        for i in 0..7u64 {
            r.note(ino, i * 131072, 131072, 131072);
        }
        assert_eq!(r.next(), None, "896 KiB is not enough");
        r.note(ino, 7 * 131072, 131072, 131072);
        assert_eq!(r.next(), Some(ino));
        for i in 0..16u64 {
            r.note(ino, i * 131072, 131072, 131072);
        }
        assert_eq!(r.next(), None, "once");
    }

    #[test]
    fn readahead_requests_out_of_order_still_count_as_sequence() {
        let r = Reads::default();
        for i in [0u64, 2, 1, 3, 5, 4, 6, 7] {
            r.note(Ino(9), i * 262144, 262144, 262144);
        }
        assert_eq!(r.next(), Some(Ino(9)));
    }

    #[test]
    fn random_reads_queue_nothing_and_a_small_file_read_whole_does() {
        let r = Reads::default();
        for i in 0..64u64 {
            r.note(Ino(5), (i * 7919 % 1000) * 65536 + 4096, 4096, 4096);
        }
        assert_eq!(r.next(), None);
        r.note(Ino(6), 0, 131072, 131072);
        r.note(Ino(6), 131072, 131072, 5000);
        assert_eq!(r.next(), Some(Ino(6)));
    }
}
