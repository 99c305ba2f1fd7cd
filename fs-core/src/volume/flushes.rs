//! Flushes taken outside the filesystem's lock.
//!
//! A commit or an fsync's roll-forward record ends with a device flush,
//! which on a real disk takes as long as all the writes before it. Under
//! the daemon's one lock, every reader and writer would wait for it. So
//! a caller that can let go of the filesystem while the device works
//! asks for the flush to be *handed out* (`Filesystem::fsync_deferred`,
//! `periodic_commit_deferred`, ...): the
//! writes are issued under the lock, the caller takes a [`Flush`], runs
//! it without the lock, and hands the outcome back with
//! [`Store::flushed`], which does what waited for it (a commit's
//! superblock, the release of the segments it emptied).
//!
//! Why the state between stays safe: each flush is numbered (a ticket)
//! when its writes have been issued; one that completes covers every
//! ticket issued before it started, whoever ran it. Until the commit's
//! flush completes, nothing relies on that commit being durable:
//! - its superblock is written only after the flush (so a crash recovers
//!   from the checkpoint before, and finds this one by walking the log,
//!   exactly as in a crash between a synchronous commit's flush and its
//!   superblock write);
//! - the segments it emptied stay pre-free (not reused) until then;
//! - a second commit, a superblock write, or anything else that flushes
//!   under the lock completes the owed commit first (its flush covers
//!   it);
//! - an fsync that finds nothing new to write but writes issued and not
//!   yet flushed (its data went out with someone else's record or commit)
//!   flushes too, rather than return before they are durable.
//!
//! Operations that only change memory (buffered writes, namespace
//! changes) and reads go on while the flush runs: that is the point.

use std::sync::Arc;

use super::store::Store;
use crate::device::BlockDevice;
use crate::error::{Error, Result};

/// A flush the caller owes the store: the writes it covers are issued.
/// Run it without holding the filesystem, then give the outcome to
/// `Store::flushed` (or `Filesystem::flushed`).
#[must_use = "the writes are not durable until the flush runs and is handed back"]
#[derive(Clone)]
pub struct Flush {
    dev: Arc<dyn BlockDevice>,
    ticket: u64,
    /// The store that handed it out ([`Flushes::store`]).
    store: u64,
}

impl std::fmt::Debug for Flush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flush")
            .field("ticket", &self.ticket)
            .finish()
    }
}

impl Flush {
    /// Flushes the device (the caller holds no lock of the filesystem).
    pub fn run(&self) -> std::io::Result<()> {
        self.dev.flush()
    }
}

/// Numbers the stores of this process, so that a flush handed out by one
/// is not taken back by another (a remount after a failed write replaces
/// the store).
static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The store's account of its flushes.
#[derive(Debug)]
pub(crate) struct Flushes {
    /// This store's number among the process's.
    store: u64,
    /// Hand flushes out rather than run them (set for one call by
    /// [`Store::start_deferring`]).
    defer: bool,
    /// Tickets issued: the number of the last point whose writes need a
    /// flush.
    issued: u64,
    /// Every ticket up to this one is durable.
    through: u64,
    /// The ticket handed out in the current deferring call.
    handed: Option<u64>,
    /// A commit whose flush is owed, by its ticket: its superblock waits
    /// for it.
    pub(crate) commit: Option<u64>,
    /// Tickets issued when the last superblock was written: a flush with
    /// a later ticket makes it durable (and with it, the reuse of the
    /// segments emptied up to the checkpoint it names).
    superblock_at: u64,
}

impl Default for Flushes {
    fn default() -> Flushes {
        Flushes {
            store: STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            defer: false,
            issued: 0,
            through: 0,
            handed: None,
            commit: None,
            superblock_at: 0,
        }
    }
}

impl Flushes {
    /// A superblock was written: the next flush issued makes it durable.
    pub(crate) fn superblock_written(&mut self) {
        self.superblock_at = self.issued;
    }
}

impl Store {
    /// From here on, hand flushes out rather than run them (for one call:
    /// `Filesystem::fsync_deferred` and its kind).
    pub(crate) fn start_deferring(&mut self) {
        self.flushes.defer = true;
    }

    /// Ends what [`Store::start_deferring`] began, with the outcome `r` of
    /// the call: its value and the flush owed. On an error the flush is run
    /// here, so that nothing issued is left waiting.
    pub(crate) fn stop_deferring<T>(&mut self, r: Result<T>) -> Result<(T, Option<Flush>)> {
        self.flushes.defer = false;
        let handed = self.flushes.handed.take();
        match (r, handed) {
            (Ok(v), h) => Ok((v, h.map(|ticket| self.flush_for(ticket)))),
            (Err(e), Some(_)) if self.check_health().is_ok() => {
                self.flush_now()?;
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    fn flush_for(&self, ticket: u64) -> Flush {
        Flush {
            dev: self.dev.clone(),
            ticket,
            store: self.flushes.store,
        }
    }

    /// Takes the outcome of a flush handed out: on success, everything
    /// issued before it is durable and what waited for it is done.
    pub fn flushed(&mut self, f: &Flush, outcome: std::io::Result<()>) -> Result<()> {
        // A flush that succeeds after another failed proves nothing: the
        // kernel reports a failed writeback to one flush of the file only.
        // And a store that replaced the one that handed it out (a remount
        // read-only after a failed write) went back to its last commit.
        self.check_health()?;
        if f.store != self.flushes.store {
            return Err(Error::Io(std::io::Error::other(
                "an earlier write failed; the filesystem went on read-only from its last commit",
            )));
        }
        if let Err(e) = outcome {
            return self.flush_failed(e);
        }
        self.flushed_through(f.ticket)
    }

    /// Ends writes that must be durable before the caller returns: flushes
    /// now, or hands the flush out when deferring.
    pub(crate) fn flush_writes(&mut self) -> Result<()> {
        self.flushes.issued += 1;
        if self.flushes.defer {
            self.flushes.handed = Some(self.flushes.issued);
            return Ok(());
        }
        self.flush_now()
    }

    /// A commit's writes are issued: ends them with [`Store::flush_writes`],
    /// and marks the commit's last steps as waiting for that flush.
    pub(crate) fn flush_commit(&mut self) -> Result<()> {
        self.flushes.commit = Some(self.flushes.issued + 1);
        self.flush_writes()
    }

    /// Flushes under the lock: everything written so far is durable.
    pub(crate) fn flush_now(&mut self) -> Result<()> {
        // After a failed write, a flush that succeeds proves nothing.
        self.check_health()?;
        self.flushes.issued += 1;
        let ticket = self.flushes.issued;
        if let Err(e) = self.dev.flush() {
            return self.flush_failed(e);
        }
        self.flushed_through(ticket)
    }

    /// A flush failed. On a disk, what it did not write may be gone: the
    /// filesystem goes on read-only from its last commit. A store that
    /// keeps every write until it is durable (`keeps_unflushed`) lost
    /// nothing: the caller gets the error, and the next flush that
    /// succeeds makes every write before it durable, the commits waiting
    /// for this one included.
    fn flush_failed(&mut self, e: std::io::Error) -> Result<()> {
        // Refused for good (a store another writer took over): as a
        // failed write, read-only from the last commit.
        if self.dev.keeps_unflushed() && !crate::objects::lease::is_fenced(&e) {
            log::warn!("flush failed, to be retried by the next: {e}");
            return Err(Error::NotStored(e.to_string()));
        }
        self.poison_on(Err(Error::Io(e)))
    }

    /// Nothing new to write, but the caller's data may be in writes issued
    /// and not yet flushed (another thread's record or commit): flushes
    /// them, now or handed out; with `superblock`, the last superblock too
    /// (so that the segments emptied up to it can be written again). A
    /// commit in flight writes its superblock once its flush completes:
    /// that one waits for nothing more.
    pub(crate) fn flush_owed(&mut self, superblock: bool) -> Result<()> {
        let superblock = superblock && self.superblock_waiting() && !self.commit_in_flight();
        if self.flushes.through >= self.flushes.issued && !superblock {
            return Ok(());
        }
        if self.flushes.defer {
            // Writes alone: the ticket issued last covers them. A
            // superblock needs a ticket numbered after it.
            if superblock {
                self.flushes.issued += 1;
            }
            self.flushes.handed = Some(self.flushes.issued);
            return Ok(());
        }
        self.flush_now()
    }

    /// [`Store::flush_owed`] of everything now, even in a call that hands
    /// flushes out:
    /// for a caller that needs what it frees at once (admission, which
    /// counts on the segments the last commit emptied).
    pub(crate) fn flush_all_now(&mut self) -> Result<()> {
        let defer = std::mem::replace(&mut self.flushes.defer, false);
        let r = self.flush_owed(true);
        self.flushes.defer = defer;
        r
    }

    /// Completes a commit whose flush is owed, flushing now: before a
    /// second commit or a superblock write, whose order on the device
    /// depends on it.
    pub(crate) fn settle_commit(&mut self) -> Result<()> {
        match self.flushes.commit {
            Some(_) => self.flush_now(),
            None => Ok(()),
        }
    }

    /// Is a commit's flush still owed?
    pub fn commit_in_flight(&self) -> bool {
        self.flushes.commit.is_some()
    }

    fn flushed_through(&mut self, ticket: u64) -> Result<()> {
        self.flushes.through = self.flushes.through.max(ticket);
        if ticket > self.flushes.superblock_at {
            self.superblock_durable();
        }
        match self.flushes.commit {
            Some(c) if c <= ticket => {
                self.flushes.commit = None;
                self.commit_durable()
            }
            _ => Ok(()),
        }
    }
}
