//! The filesystem: POSIX semantics over the store. Every operation takes
//! the caller's credentials, checks them, changes nodes in the cache and
//! leaves the writing to the next commit.

mod acl;
mod attr;
mod cleaning;
mod compression;
mod data;
pub use data::WRITEBACK_STEP;
mod defrag;
mod mend;
mod namespace;
pub mod perm;
mod project;
mod quota;
mod read;
mod snapshots;
#[cfg(feature = "testing")]
mod tamper;
mod views;
mod xattr_ops;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::store::DataScope;
pub use attr::{SetAttr, TimeSet};
pub use cleaning::CleanerReport;
pub use compression::{Savings, COMPRESS_XATTR, FS_COMPR_FL, REPORT_XATTR};
pub use data::Whence;
pub use defrag::{Defragged, Layout, DEFRAG_STEP};
pub use mend::LOST_FOUND;
pub use namespace::{DirItem, RenameFlags};
pub use project::{FsXattr, FS_PROJINHERIT_FL, FS_XFLAG_PROJINHERIT};
pub use quota::{Limits, QuotaLine, QuotaReport};
pub use read::ReadPlan;
pub use snapshots::{BranchInfo, CheckpointInfo};
#[cfg(feature = "testing")]
pub use tamper::Tamper;
pub use views::ViewId;

use crate::cache_sizes::CacheSizes;
use crate::device::BlockDevice;
use crate::dir_index;
use crate::error::{Error, Result};
use crate::flushes::Flush;
use crate::ids::{Ino, PACK_SLOTS};
use crate::inode::{
    Inode, Timespec, FLAG_PROJINHERIT, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT,
    S_IFREG, S_IFSOCK,
};
use crate::layout::{NAME_MAX, PAGE_SIZE};
use crate::page_life::life;
use crate::perm::{Cred, S_ISGID, S_IXGRP};
use crate::recovery;
use crate::room::{Demand, Tier};
use crate::store::{Stats, Store};
use crate::usage::{QuotaId, Usage};

/// Most hard links to one inode (and subdirectories of one directory).
pub const LINK_MAX: u32 = 65000;
/// Inode flag: the inode is in the graveyard (unlinked, still open).
pub const FLAG_ORPHAN: u32 = 2;

/// When reads update the access time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtimeMode {
    /// Only when older than the modification or change time, or a day old.
    Relative,
    /// Never.
    Never,
    /// On every read.
    Always,
}

/// What a crash may lose (mount option `journal=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalMode {
    /// Every operation is durable when it returns (a commit after each).
    Full,
    /// The state after a crash is the state at some commit: a prefix of
    /// the operations, every file's data as complete as its metadata says.
    Ordered,
    /// Periodic commits write metadata only: after a crash a file may read
    /// zeros (or its own older data) where newer data was not yet written.
    Writeback,
}

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Crash guarantee.
    pub journal: JournalMode,
    /// Never write to the device.
    pub read_only: bool,
    /// Dirty data (bytes) that triggers writeback.
    pub dirty_limit: u64,
    /// Log written since the last checkpoint (bytes) beyond which a write
    /// that wrote data back also commits, flushing its superblock. Recovery
    /// reads, and checks the CRC of, every page written since the last
    /// checkpoint, so a crash in the middle of a long stream of writes
    /// leaves at most this plus `dirty_limit` to walk: with the defaults,
    /// 320 MiB, 0.2-0.6 s on the disks measured here.
    pub log_limit: u64,
    /// Access time policy.
    pub atime: AtimeMode,
    /// Commit at most this long after a change.
    pub commit_interval: Duration,
    /// The segment cleaner's tunables.
    pub cleaner: crate::cleaner::CleanerOptions,
    /// How long checkpoints are kept.
    pub retention: crate::checkpoints::RetentionOptions,
    /// Serve this retained checkpoint (read-only) instead of the live root.
    pub at: Option<crate::checkpoints::At>,
    /// The master key of a sealed volume ([`crate::seal::unlock`]).
    pub key: Option<crate::seal::MasterKey>,
    /// fsync and fdatasync write a roll-forward record (data, nodes and
    /// the table entries they changed, one flush) instead of a commit
    /// (`volume/fsync.rs`); off: every fsync commits.
    pub roll_forward: bool,
    /// Bytes the caches of decoded nodes and of the address tables may
    /// hold in all (see [`CacheSizes::of`]).
    pub cache: u64,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            journal: JournalMode::Ordered,
            read_only: false,
            dirty_limit: 64 << 20,
            log_limit: 256 << 20,
            atime: AtimeMode::Relative,
            commit_interval: Duration::from_secs(5),
            cleaner: crate::cleaner::CleanerOptions::default(),
            retention: crate::checkpoints::RetentionOptions::default(),
            at: None,
            key: None,
            roll_forward: true,
            cache: crate::cache_sizes::DEFAULT_CACHE,
        }
    }
}

/// Attributes of an inode, as `stat` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: Ino,
    /// Generation (tells apart inodes that reused a number).
    pub generation: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number of a device node.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Allocated space in 512-byte units.
    pub blocks: u64,
    /// Access time.
    pub atime: Timespec,
    /// Modification time.
    pub mtime: Timespec,
    /// Change time.
    pub ctime: Timespec,
    /// Creation time.
    pub btime: Timespec,
    /// Preferred I/O size.
    pub blksize: u32,
}

/// Space and inode counts, as `statfs` shows them (in pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    /// Page size.
    pub bsize: u32,
    /// Pages a user can hold in all.
    pub blocks: u64,
    /// Pages free.
    pub bfree: u64,
    /// Pages free for unprivileged users.
    pub bavail: u64,
    /// Inodes possible.
    pub files: u64,
    /// Inodes free.
    pub ffree: u64,
    /// Longest name.
    pub namelen: u32,
}

/// A mounted filesystem.
#[derive(Debug)]
pub struct Filesystem {
    pub(crate) store: Store,
    opts: MountOptions,
    opens: HashMap<Ino, u32>,
    lookups: HashMap<Ino, u64>,
    last_commit: Instant,
    kernel_owns_cmtime: bool,
    /// The commit `log_limit` asks for is left to the caller (the daemon,
    /// which runs it with its flushes outside its lock): see
    /// [`Filesystem::leave_log_limit_to_caller`].
    log_limit_by_caller: bool,
    /// Background cleaning has started and not yet reached its stop mark.
    cleaning: bool,
    /// The commit count when a background pass last found nothing to move.
    nothing_to_clean_at: Option<u64>,
    /// Retained checkpoints served beside the live root.
    views: std::collections::BTreeMap<ViewId, views::View>,
}

/// Linux `DT_*` type of a mode.
pub fn dtype_of(mode: u32) -> u8 {
    match mode & S_IFMT {
        S_IFIFO => 1,
        S_IFCHR => 2,
        S_IFDIR => 4,
        S_IFBLK => 6,
        S_IFREG => 8,
        S_IFLNK => 10,
        S_IFSOCK => 12,
        _ => 0,
    }
}

/// Checks a name for a new or looked-up directory entry.
fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(Error::Invalid);
    }
    Ok(())
}

impl Filesystem {
    /// Mounts the filesystem on `dev`: recovers the newest consistent state
    /// and, read-write, frees what the graveyard holds and commits.
    pub fn mount(dev: Arc<dyn BlockDevice>, opts: MountOptions) -> Result<Filesystem> {
        let rec = recovery::recover(&*dev, !opts.read_only, opts.key.as_ref())?;
        Filesystem::mount_recovered(dev, opts, rec)
    }

    /// Mounts from what [`recovery::recover`] found (a repair adds its
    /// recount to it first: [`recovery::Rebase`]).
    pub fn mount_recovered(
        dev: Arc<dyn BlockDevice>,
        opts: MountOptions,
        rec: recovery::Recovery,
    ) -> Result<Filesystem> {
        for note in &rec.notes {
            log::warn!("recovery: {note}");
        }
        let max_seq = rec.max_seq;
        let mut store = Store::open(dev, rec, opts.read_only, CacheSizes::of(opts.cache))?;
        store.cleaner_options = opts.cleaner;
        store.retention = opts.retention;
        if let Some(at) = &opts.at {
            let no = store.view_past(at)?;
            log::info!("serving retained checkpoint {no}, read-only");
        }
        let mut fs = Filesystem {
            store,
            opts,
            opens: HashMap::new(),
            lookups: HashMap::new(),
            last_commit: Instant::now(),
            kernel_owns_cmtime: false,
            log_limit_by_caller: false,
            cleaning: false,
            nothing_to_clean_at: None,
            views: std::collections::BTreeMap::new(),
        };
        fs.load_quota()?;
        if !fs.opts.read_only {
            fs.store.start_writing(max_seq)?;
            fs.purge_graveyard()?;
            fs.store.root.changed = true;
            fs.store.commit(true)?;
        }
        Ok(fs)
    }

    /// After a write to the device failed, what is in memory may be half
    /// a commit: it is dropped, and the filesystem serves what the device
    /// holds (its last commit), read-only, as ext4 does with
    /// `errors=remount-ro`. The operation that met the failure got its
    /// error (`NoSpace` when the device was full); every later one finds
    /// the filesystem read-only. Called at the start of every operation.
    pub(super) fn degrade_if_failed(&mut self) -> Result<()> {
        let Some(why) = self.store.failure().map(str::to_string) else {
            return Ok(());
        };
        let dev = self.dev();
        let rec = recovery::recover(&*dev, false, self.opts.key.as_ref())?;
        let mut store = Store::open(dev, rec, true, CacheSizes::of(self.opts.cache))?;
        store.cleaner_options = self.opts.cleaner;
        store.degraded = Some(why);
        store.adopt_roots(&self.store);
        self.store = store;
        self.opts.read_only = true;
        self.opens.clear();
        Ok(())
    }

    /// Why the filesystem went read-only, if a write to the device failed.
    pub fn degraded(&self) -> Option<&str> {
        self.store.failure().or(self.store.degraded.as_deref())
    }

    /// Writes everything back and marks the filesystem clean.
    pub fn unmount(mut self) -> Result<()> {
        if self.store.read_only {
            return Ok(());
        }
        self.opens.clear();
        self.lookups.clear();
        self.purge_graveyard()?;
        self.store.close()
    }

    /// Commits if anything changed (fsync, syncfs).
    pub fn sync(&mut self) -> Result<()> {
        self.degrade_if_failed()?;
        if self.store.read_only {
            return Ok(());
        }
        if !self.store.needs_commit() {
            // Nothing new; a superblock written by the last commit still
            // becomes durable, which lets emptied segments be reused.
            return self.store.settle();
        }
        self.store.commit(false)?;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Commits if the commit interval has passed since the last one.
    pub fn sync_if_due(&mut self) -> Result<()> {
        if self.commit_due() {
            self.periodic_commit()?;
        }
        Ok(())
    }

    /// Has the commit interval passed since the last commit?
    pub fn commit_due(&self) -> bool {
        self.last_commit.elapsed() >= self.opts.commit_interval
    }

    /// The commit the interval asks for: everything, or in the `writeback`
    /// mode metadata only (data follows under memory pressure, on fsync, at
    /// unmount).
    pub fn periodic_commit(&mut self) -> Result<()> {
        self.degrade_if_failed()?;
        if self.opts.journal != JournalMode::Writeback {
            return self.sync();
        }
        if self.store.read_only || !self.store.needs_metadata_commit() {
            return Ok(());
        }
        self.store
            .commit_scope(crate::store::DataScope::None, false)?;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// The commit that keeps the log a recovery must walk short (see
    /// [`MountOptions::log_limit`]): what the interval's commit writes, and
    /// its superblock flushed too, so that even after a power loss recovery
    /// starts from this checkpoint, not from the one before it.
    pub(super) fn log_limit_commit(&mut self) -> Result<()> {
        if self.log_limit_by_caller {
            return Ok(());
        }
        self.log_limit_commit_synced(true)
    }

    fn log_limit_commit_synced(&mut self, sync_superblock: bool) -> Result<()> {
        let scope = if self.opts.journal == JournalMode::Writeback {
            crate::store::DataScope::None
        } else {
            crate::store::DataScope::All
        };
        self.store.commit_scope(scope, sync_superblock)?;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Leaves the commit that `log_limit` asks for to the caller: writes
    /// no longer run it; the caller asks [`Filesystem::log_limit_due`]
    /// after a write and runs [`Filesystem::log_limit_commit_deferred`],
    /// then [`Filesystem::settle_deferred`] (its superblock), each flush
    /// without holding the filesystem.
    pub fn leave_log_limit_to_caller(&mut self) {
        self.log_limit_by_caller = true;
    }

    /// Has the log grown past `log_limit` since the last commit?
    pub fn log_limit_due(&self) -> bool {
        !self.store.read_only
            && self.store.logged_since_commit() * PAGE_SIZE as u64 > self.opts.log_limit
    }

    /// The commit `log_limit` asks for, with its flush handed out (see
    /// [`Filesystem::fsync_deferred`]); its superblock is made durable by
    /// [`Filesystem::settle_deferred`] next.
    pub fn log_limit_commit_deferred(&mut self) -> Result<Option<Flush>> {
        // Another thread's may have run first.
        if !self.log_limit_due() {
            return Ok(None);
        }
        self.deferring(|fs| fs.log_limit_commit_synced(false))
    }

    /// Makes everything written durable, the last superblock included,
    /// with the flush handed out (`None` when nothing waits for one).
    pub fn settle_deferred(&mut self) -> Result<Option<Flush>> {
        self.deferring(|fs| fs.store.settle())
    }

    /// `fsync(2)` of `ino`: its data and all metadata are durable when this
    /// returns. (In the `ordered` and `full` modes all dirty data goes with
    /// it, which keeps every crash state a prefix.) Written as a
    /// roll-forward record unless the mount says otherwise or one cannot
    /// be (`volume/fsync.rs`); the commit interval is left running, since a
    /// record is not a checkpoint.
    pub fn fsync(&mut self, ino: Ino) -> Result<()> {
        self.degrade_if_failed()?;
        if self.store.read_only {
            return Ok(());
        }
        let scope = match self.opts.journal {
            JournalMode::Writeback => crate::store::DataScope::Inode(ino),
            _ => crate::store::DataScope::All,
        };
        if self.opts.roll_forward {
            return self.store.sync_rolling_forward(scope);
        }
        if self.opts.journal != JournalMode::Writeback {
            return self.sync();
        }
        self.store.commit_scope(scope, false)?;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// [`Filesystem::fsync`] with its flush handed out, to be run without
    /// holding the filesystem (so that readers and writers go on while the
    /// device works) and handed back with [`Filesystem::flushed`]; `None`
    /// when nothing is owed. See `volume/flushes.rs`.
    pub fn fsync_deferred(&mut self, ino: Ino) -> Result<Option<Flush>> {
        self.deferring(|fs| fs.fsync(ino))
    }

    /// [`Filesystem::periodic_commit`] with its flush handed out (see
    /// [`Filesystem::fsync_deferred`]).
    pub fn periodic_commit_deferred(&mut self) -> Result<Option<Flush>> {
        self.deferring(Filesystem::periodic_commit)
    }

    fn deferring(
        &mut self,
        f: impl FnOnce(&mut Filesystem) -> Result<()>,
    ) -> Result<Option<Flush>> {
        self.store.start_deferring();
        // A panic must not leave flushes handed out for later callers
        // that run none (the daemon goes on past a panicked request).
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        let r = match r {
            Ok(r) => r,
            Err(panic) => {
                let _ = self.store.stop_deferring(Ok(()));
                std::panic::resume_unwind(panic)
            }
        };
        Ok(self.store.stop_deferring(r)?.1)
    }

    /// Takes the outcome of a flush handed out: when it succeeded, what it
    /// covers is durable and what waited for it is done (a commit's
    /// superblock); a failure makes the filesystem read-only, as any failed
    /// write does, unless the device kept what it could not make durable
    /// (`BlockDevice::keeps_unflushed`: the next flush covers it).
    pub fn flushed(&mut self, flush: &Flush, outcome: std::io::Result<()>) -> Result<()> {
        let r = self.store.flushed(flush, outcome);
        self.degrade_if_failed()?;
        r
    }

    /// Called by every operation that changed something: in the `full`
    /// mode, makes it durable before the operation returns (a roll-forward
    /// record, as an fsync, unless the mount says every fsync commits).
    fn changed(&mut self) -> Result<()> {
        match self.opts.journal {
            JournalMode::Full if self.opts.roll_forward => self.fsync(Ino::ROOT),
            JournalMode::Full => self.sync(),
            _ => Ok(()),
        }
    }

    /// Is a write-back cache in front (FUSE's, in the kernel)? See
    /// [`Filesystem::set_kernel_owns_cmtime`].
    pub fn kernel_owns_cmtime(&self) -> bool {
        self.kernel_owns_cmtime
    }

    /// Says that a write-back cache in front (FUSE's, in the kernel)
    /// keeps the modification and change times of written files and sends
    /// them with setattr: writes then leave those times alone, so that the
    /// stored times are the ones the kernel showed.
    pub fn set_kernel_owns_cmtime(&mut self, yes: bool) {
        self.kernel_owns_cmtime = yes;
    }

    /// The mount options.
    pub fn options(&self) -> &MountOptions {
        &self.opts
    }

    /// The superblock as last written.
    pub fn superblock(&self) -> &crate::superblock::Superblock {
        &self.store.sb
    }

    /// Counters since mount.
    pub fn stats(&self) -> Stats {
        self.store.stats
    }

    /// Pages written to the device since mount (summaries included).
    pub fn device_pages_written(&self) -> u64 {
        self.store.pages_written()
    }

    fn dev(&self) -> Arc<dyn BlockDevice> {
        self.store.dev.clone()
    }

    /// Checks, before a change to metadata, that the mount is writable and
    /// that the next commit will still fit with the change in it, leaving
    /// the cleaner's reserve (see `room.rs`): every operation that changes
    /// anything starts here or in `ensure_space`.
    fn writable(&mut self) -> Result<()> {
        self.read_write()?;
        self.store.admit(self.store.metadata_op(), Tier::Metadata)
    }

    /// Fails on a read-only mount.
    fn read_write(&self) -> Result<()> {
        if self.store.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Does inode `ino` exist (and is it a user-visible inode)?
    fn exists(&mut self, ino: Ino) -> Result<bool> {
        self.degrade_if_failed()?;
        if self.is_internal(ino) || ino.is_none() {
            return Ok(false);
        }
        let dev = self.dev();
        self.store.root.cache.inode_exists(&*dev, ino)
    }

    fn inode(&mut self, ino: Ino) -> Result<&Inode> {
        if !self.exists(ino)? {
            return Err(Error::NotFound);
        }
        let dev = self.dev();
        self.store.root.cache.inode(&*dev, ino)
    }

    fn inode_mut(&mut self, ino: Ino) -> Result<&mut Inode> {
        if !self.exists(ino)? {
            return Err(Error::NotFound);
        }
        let dev = self.dev();
        self.store.root.changed = true;
        self.store.root.cache.inode_mut(&*dev, ino)
    }

    /// Changes `ino`'s page count by `delta`, charging its ids.
    fn add_blocks(&mut self, ino: Ino, delta: i64) -> Result<()> {
        self.inode_mut(ino)?;
        let dev = self.dev();
        self.store.root.cache.add_blocks(&*dev, ino, delta)
    }

    /// A directory inode, or `NotDir`.
    fn dir(&mut self, ino: Ino) -> Result<&Inode> {
        let inode = self.inode(ino)?;
        if inode.is_dir() {
            Ok(inode)
        } else {
            Err(Error::NotDir)
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&mut self, ino: Ino) -> Result<Attr> {
        let inode = self.inode(ino)?.clone();
        let mut a = attr_of(ino, &inode);
        // Pages written but not yet given an address count already.
        a.blocks += self.store.root.dirty.fresh(ino) * 8;
        Ok(a)
    }

    /// Pages users can fill in all (`statfs`'s `blocks`).
    pub fn capacity_pages(&self) -> u64 {
        self.store.capacity_pages()
    }

    /// Are at least `pages` available (`statfs`'s `bavail`)? Cheap while
    /// room is plentiful (see [`crate::store::Store::free_at_least`]).
    pub fn available_at_least(&self, pages: u64) -> bool {
        self.store.free_at_least(pages)
    }

    /// Space and inode counts.
    pub fn statfs(&mut self) -> StatFs {
        if let Err(e) = self.degrade_if_failed() {
            log::error!("cannot read the device back after a failed write: {e}");
        }
        let total = self.store.capacity_pages();
        let free = self.store.free_pages().min(total);
        StatFs {
            bsize: PAGE_SIZE as u32,
            blocks: total,
            bfree: free,
            bavail: free,
            // Every free page can take an inode pack of sixteen inodes.
            files: self.store.root.inode_count.saturating_sub(1) + free * PACK_SLOTS,
            ffree: free * PACK_SLOTS,
            namelen: NAME_MAX as u32,
        }
    }

    /// Makes a new inode for a child of `parent` (not yet linked).
    fn new_inode(
        &mut self,
        cred: &Cred,
        parent: Ino,
        mode: u32,
        rdev: u64,
        data_pages: u64,
    ) -> Result<Ino> {
        let p = self.inode(parent)?.clone();
        let (p_mode, p_gid, transform) = (p.mode, p.gid, p.transform);
        let is_dir = mode & S_IFMT == S_IFDIR;
        let (mut mode, acls) = self.inherit_acls(&p, mode, cred)?;
        let gid = if p_mode & S_ISGID != 0 {
            if is_dir {
                mode |= S_ISGID;
            }
            p_gid
        } else {
            cred.gid
        };
        if !is_dir && mode & S_ISGID != 0 && mode & S_IXGRP != 0 && cred.lacks_group(gid) {
            mode &= !S_ISGID;
        }
        let (project, inherit) = Self::project_for_child(&p);
        let add = Usage {
            pages: data_pages as i64,
            inodes: 1,
        };
        self.admit(cred, &QuotaId::ids(cred.uid, gid, project), add)?;
        // The inode, its directory entry and any inherited access control
        // lists' attribute node.
        self.ensure_space(Demand {
            pages: if acls.entries.is_empty() { 2 } else { 3 },
            ..self.store.metadata_op()
        })?;
        let now = Timespec::now();
        let generation = self.store.root.next_generation;
        self.store.root.next_generation += 1;
        let inode = Inode {
            mode,
            uid: cred.uid,
            gid,
            nlink: if is_dir { 2 } else { 1 },
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            generation,
            rdev,
            // A directory's `..`; for other inodes a hint of where they
            // are (the directory of their latest name), for `diff`.
            parent,
            // New files and directories store their data as their
            // directory does (`pagelog.compress`).
            transform,
            project,
            flags: if inherit && is_dir {
                FLAG_PROJINHERIT
            } else {
                0
            },
            ..Inode::default()
        };
        let dev = self.dev();
        let ino = self.store.root.cache.create_inode(&*dev, parent, inode)?;
        self.store.root.inode_count += 1;
        self.store.root.changed = true;
        if !acls.entries.is_empty() {
            self.save_xattrs(ino, acls)?;
        }
        Ok(ino)
    }

    /// Counts a reference the kernel holds on `ino` (FUSE lookup count).
    pub fn remember(&mut self, ino: Ino) {
        *self.lookups.entry(ino).or_default() += 1;
    }

    /// Drops `n` kernel references to `ino`; frees it if it was unlinked
    /// and nothing else holds it.
    pub fn forget(&mut self, ino: Ino, n: u64) -> Result<()> {
        if let Some(c) = self.lookups.get_mut(&ino) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.lookups.remove(&ino);
            }
        }
        self.reap_orphan(ino)
    }

    /// Frees `ino` if it was unlinked while held and nothing holds it now.
    /// Without room in the log for that change, it stays in the graveyard,
    /// whose every inode a later unmount or mount frees: giving an inode
    /// back must never be what fails.
    fn reap_orphan(&mut self, ino: Ino) -> Result<()> {
        if self.store.read_only || !self.exists(ino)? || self.held(ino) {
            return Ok(());
        }
        match self.store.admit(self.store.metadata_op(), Tier::Metadata) {
            Ok(()) => self.reap(ino),
            Err(Error::NoSpace) => {
                log::warn!("inode {ino} stays in the graveyard until the filesystem has room");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn held(&self, ino: Ino) -> bool {
        self.opens.contains_key(&ino) || self.lookups.contains_key(&ino)
    }

    /// Called when the last name of `ino` is gone or a holder let go: frees
    /// the inode, or parks it in the graveyard while it is still held.
    fn reap(&mut self, ino: Ino) -> Result<()> {
        if self.store.read_only || !self.exists(ino)? {
            return Ok(());
        }
        let inode = self.inode(ino)?;
        if inode.nlink > 0 {
            return Ok(());
        }
        let orphan = inode.flags & FLAG_ORPHAN != 0;
        let held = self.held(ino);
        match (held, orphan) {
            (true, true) => Ok(()),
            (true, false) => {
                let name = graveyard_name(ino);
                let dev = self.dev();
                let seed = self.store.sb.hash_seed;
                dir_index::insert(
                    &mut self.store.root.cache,
                    &*dev,
                    Ino::GRAVEYARD,
                    &name,
                    ino,
                    0,
                    seed,
                )?;
                self.inode_mut(ino)?.flags |= FLAG_ORPHAN;
                Ok(())
            }
            (false, orphan) => {
                if orphan {
                    self.drop_name(Ino::GRAVEYARD, &graveyard_name(ino))?;
                }
                self.free_inode(ino)
            }
        }
    }

    /// Takes `name` out of directory `dir`'s index (nothing else: times
    /// and link counts are the caller's).
    fn drop_name(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        let dev = self.dev();
        let (seed, building) = (self.store.sb.hash_seed, self.store.building());
        let s = &mut self.store;
        let mut life = life!(s, &*dev, building);
        dir_index::remove(&mut s.root.cache, &*dev, &mut life, dir, name, seed).map(|_| ())
    }

    /// Frees an inode and everything it owns.
    fn free_inode(&mut self, ino: Ino) -> Result<()> {
        let dev = self.dev();
        let dev = &*dev;
        let building = self.store.building();
        let s = &mut self.store;
        s.drop_file_pages(ino, 0)?;
        s.root.dirty.remove_range(ino, 0, u64::MAX);
        let inode = s.root.cache.inode(dev, ino)?;
        let xattr = inode.xattr_nid;
        let is_dir = inode.is_dir();
        if !xattr.is_none() {
            s.root
                .cache
                .remove(dev, &mut life!(s, dev, building), xattr)?;
        }
        if is_dir {
            for nid in dir_index::nodes(&mut s.root.cache, dev, ino)? {
                s.root
                    .cache
                    .remove(dev, &mut life!(s, dev, building), nid)?;
            }
        }
        s.root
            .cache
            .remove_inode(dev, &mut life!(s, dev, building), ino)?;
        s.root.inode_count = s.root.inode_count.saturating_sub(1);
        s.root.changed = true;
        self.opens.remove(&ino);
        self.lookups.remove(&ino);
        Ok(())
    }

    /// Frees every inode parked in the graveyard that nothing holds.
    fn purge_graveyard(&mut self) -> Result<()> {
        let dev = self.dev();
        let mut parked = Vec::new();
        dir_index::for_each_after(
            &mut self.store.root.cache,
            &*dev,
            Ino::GRAVEYARD,
            0,
            &mut |e| {
                parked.push(e.ino);
                true
            },
        )?;
        for ino in parked {
            self.reap_orphan(ino)?;
        }
        Ok(())
    }
}

fn graveyard_name(ino: Ino) -> Vec<u8> {
    format!("{:016x}", ino.0).into_bytes()
}

/// Attributes of `inode`.
pub fn attr_of(ino: Ino, inode: &Inode) -> Attr {
    let (size, blocks) = if inode.is_dir() {
        // A size of whole pages, at least one, as tools expect of a
        // directory; blocks are what it uses (none while its entries fit
        // in its inode), as quotas count them, so `du` agrees with them.
        let pages = inode.blocks.max(1);
        (pages * PAGE_SIZE as u64, inode.blocks * 8)
    } else if inode.is_symlink() && inode.has_inline() {
        (inode.size, 0)
    } else {
        (inode.size, inode.blocks * 8)
    };
    Attr {
        ino,
        generation: inode.generation,
        mode: inode.mode,
        nlink: inode.nlink,
        uid: inode.uid,
        gid: inode.gid,
        rdev: inode.rdev,
        size,
        blocks,
        atime: inode.atime,
        mtime: inode.mtime,
        ctime: inode.ctime,
        btime: inode.btime,
        blksize: PAGE_SIZE as u32,
    }
}
