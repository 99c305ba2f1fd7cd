//! The FUSE adapter: each callback converts its arguments (names are
//! bytes), makes one call into `fs-core` and answers exactly once.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents, PollFlags,
    PollNotifier, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen, ReplyPoll,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use pagelog_core::flushes::Flush;
use pagelog_core::fs::WRITEBACK_STEP;
use pagelog_core::fs::{Attr, DirItem, FsXattr, JournalMode, SetAttr, TimeSet, Whence};
use pagelog_core::inode::{
    Timespec, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use pagelog_core::perm::cap;
use pagelog_core::{Cred, Error, Filesystem, Ino, Result, ViewId};

use crate::errno::errno;
use crate::options::MountConfig;

/// The read-only attribute of the root directory that holds the cleaner's
/// state and counters, as `key: value` lines (see the README).
pub const STATS_XATTR: &[u8] = b"pagelog.stats";

/// `FS_IOC_GETFLAGS`, `FS_IOC_SETFLAGS` and their 32-bit forms.
const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
const FS_IOC32_GETFLAGS: u32 = 0x8004_6601;
const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;
/// `FS_IOC_FSGETXATTR` and `FS_IOC_FSSETXATTR` (`struct fsxattr`).
const FS_IOC_FSGETXATTR: u32 = 0x801C_581F;
const FS_IOC_FSSETXATTR: u32 = 0x401C_5820;
const FSXATTR_SIZE: usize = 28;

/// An ioctl's integer as the kernel lays it out: in the host's byte order
/// (it is the caller's memory, copied).
#[allow(clippy::host_endian_bytes)]
fn kernel_int(v: u32) -> [u8; 4] {
    v.to_ne_bytes()
}

/// [`kernel_int`] read back.
#[allow(clippy::host_endian_bytes)]
fn from_kernel_int(b: [u8; 4]) -> u32 {
    u32::from_ne_bytes(b)
}

/// `struct fsxattr` of `x`: xflags, extsize, nextents, projid,
/// cowextsize, 8 bytes of padding.
fn encode_fsxattr(x: FsXattr) -> [u8; FSXATTR_SIZE] {
    let mut out = [0u8; FSXATTR_SIZE];
    out[0..4].copy_from_slice(&kernel_int(x.xflags));
    out[12..16].copy_from_slice(&kernel_int(x.projid));
    out
}

/// What a `struct fsxattr` sets, or `None` if it asks for what pagelog
/// does not keep (an extent size hint).
fn decode_fsxattr(b: &[u8]) -> Option<FsXattr> {
    let int = |at: usize| from_kernel_int([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    (int(4) == 0 && int(16) == 0).then(|| FsXattr {
        xflags: int(0),
        projid: int(12),
    })
}

/// Available pages under which a file opened for writing is served with
/// direct I/O rather than through the kernel's writeback cache: a
/// sixteenth of the filesystem, at least 16 MiB and at most 1 GiB. The
/// kernel may hold as much dirty data of the mount (see
/// [`kernel_dirty_bytes`]), so a burst written through a file opened
/// above it fits; a long-lived writer can still meet a full filesystem at
/// writeback (README, "Full filesystems").
fn direct_below(capacity_pages: u64) -> u64 {
    const MIB_PAGES: u64 = (1 << 20) / PAGE_SIZE;
    (capacity_pages / 16).clamp(16 * MIB_PAGES, 1024 * MIB_PAGES)
}

/// The dirty data the kernel's writeback cache may hold for a mount of
/// `capacity_pages`: as much as [`direct_below`] keeps free.
pub fn kernel_dirty_bytes(capacity_pages: u64) -> u64 {
    direct_below(capacity_pages) * PAGE_SIZE
}

const PAGE_SIZE: u64 = pagelog_core::ondisk::layout::PAGE_SIZE as u64;

/// Does this kernel wait for a FUSE write back until the daemon answered
/// it? From Linux 6.14; before, it wrote back through temporary pages, and
/// syncfs or an invalidation could return with writes still on their way,
/// which the `ordered` mode's use of the writeback cache relies on.
fn waits_for_writeback() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 14)
}

/// How long a rename waits for the kernel to write back the cached pages
/// of the file it moves (it writes them one by one: a gigabyte dirtied at
/// random takes long). Past it the rename goes on without them (FORMAT.md
/// says so), rather than hold a worker thread for ever.
const LAUNDER_WAIT: Duration = Duration::from_secs(30);

/// Run before the final writeback.
pub type ShutDownHook = Box<dyn FnOnce() + Send>;

/// Shared between the FUSE threads, the commit thread and `main`.
pub struct Shared {
    /// The filesystem; `None` once unmounted.
    pub fs: Mutex<Option<Filesystem>>,
    /// Why the final unmount failed, if it did.
    pub final_error: Mutex<Option<String>>,
    /// Requests served, so that housekeeping can tell when it is idle.
    pub requests: std::sync::atomic::AtomicU64,
    /// The kernel's writeback cache is on: written data may sit in the
    /// kernel until it writes it back (or a syncfs).
    pub kernel_caches_writes: std::sync::atomic::AtomicBool,
    /// Tells the kernel what changed behind its back (set once the
    /// session exists).
    pub notifier: std::sync::OnceLock<fuser::Notifier>,
    /// Run once before the final writeback (the daemon unmounts the
    /// views it serves beside the mount there, while they can still be
    /// served).
    pub before_shut_down: Mutex<Option<ShutDownHook>>,
    /// How files are read, for `autodefrag`.
    pub reads: crate::autodefrag::Reads,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("fs", &self.fs)
            .field("final_error", &self.final_error)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Shared state around a mounted filesystem.
    pub fn new(fs: Filesystem) -> Shared {
        Shared {
            fs: Mutex::new(Some(fs)),
            final_error: Mutex::new(None),
            requests: std::sync::atomic::AtomicU64::new(0),
            kernel_caches_writes: std::sync::atomic::AtomicBool::new(false),
            before_shut_down: Mutex::new(None),
            notifier: std::sync::OnceLock::new(),
            reads: Default::default(),
        }
    }

    /// Runs `f` on the mounted filesystem.
    pub fn with<T>(&self, f: impl FnOnce(&mut Filesystem) -> Result<T>) -> Result<T> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.with_uncounted(f)
    }

    /// [`Shared::with`] for the daemon's own work, which does not count as
    /// a request (it must not keep the filesystem from being idle).
    pub(crate) fn with_uncounted<T>(
        &self,
        f: impl FnOnce(&mut Filesystem) -> Result<T>,
    ) -> Result<T> {
        let mut guard = self.lock();
        let (r, reshaped) = match guard.as_mut() {
            Some(fs) => (f(fs), fs.take_reshaped()),
            None => (
                Err(Error::Io(std::io::Error::from(
                    std::io::ErrorKind::NotConnected,
                ))),
                Vec::new(),
            ),
        };
        drop(guard);
        self.reshaped(reshaped);
        r
    }

    /// The daemon's own `f` (the timer's commit), whose writes end with a
    /// flush handed out, which runs without the lock, so that requests go
    /// on while the device works (`volume/flushes.rs`).
    pub fn durably(&self, f: impl FnOnce(&mut Filesystem) -> Result<Option<Flush>>) -> Result<()> {
        self.write_back_in_steps()?;
        let flush = self.with_uncounted(f)?;
        self.run_flush(flush)
    }

    /// Runs the commit the log's limit asks for (after writes that found
    /// it due), its data written in steps and its flushes (the commit's,
    /// then its superblock's) outside the lock. A failure is logged: the
    /// write that found it due has taken effect, and the next write asks
    /// again.
    pub fn commit_log_if_due(&self) {
        let r = self
            .durably(Filesystem::log_limit_commit_deferred)
            .and_then(|()| self.durably(Filesystem::settle_deferred));
        if let Err(e) = r {
            log::warn!("the commit the log's limit asks for failed: {e}");
        }
    }

    /// Writes the dirty data a commit or an fsync is about to write in
    /// steps, the lock taken for each, so that readers wait for a step at
    /// most, not for the whole of it. A step's failure is the commit's or
    /// the fsync's (the host's disk full: ENOSPC, not the read-only state
    /// it leaves).
    fn write_back_in_steps(&self) -> Result<()> {
        // What is dirty now, no more: a writer adding data as fast as the
        // steps write it back must not keep the commit or fsync waiting.
        let dirty = self.with_uncounted(|fs| Ok(fs.dirty_pages()))?;
        for _ in 0..dirty.div_ceil(WRITEBACK_STEP) {
            if !self.with_uncounted(Filesystem::write_back_step)? {
                break;
            }
        }
        Ok(())
    }

    /// Runs a flush handed out, without the lock, and hands its outcome
    /// back.
    fn run_flush(&self, flush: Option<Flush>) -> Result<()> {
        let Some(flush) = flush else { return Ok(()) };
        let outcome = flush.run();
        self.with_uncounted(|fs| fs.flushed(&flush, outcome))
    }

    /// Tells the kernel to ask again for the attributes of `inos`, whose
    /// block counts writeback changed (compressed data takes fewer pages
    /// than the kernel was told while it was dirty), so that `du` sees
    /// what is stored without waiting out the attribute cache.
    pub fn reshaped(&self, inos: Vec<Ino>) {
        let Some(n) = self.notifier.get() else { return };
        for i in inos {
            // Offset -1: the attributes only, never cached pages.
            if let Err(e) = n.inval_inode(INodeNo(i.0), -1, 0) {
                log::debug!("attributes of inode {i} not invalidated: {e}");
            }
        }
    }

    /// The lock, even if a thread panicked while holding it: the
    /// filesystem state is only changed through `Result`-returning calls.
    pub fn lock(&self) -> MutexGuard<'_, Option<Filesystem>> {
        self.fs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes everything back and closes the image (once).
    pub fn shut_down(&self) {
        let hook = self
            .before_shut_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(hook) = hook {
            hook();
        }
        let fs = self.lock().take();
        if let Some(fs) = fs {
            if let Err(e) = fs.unmount() {
                log::error!("final writeback failed: {e}");
                *self.final_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
        }
    }
}

/// The FUSE filesystem.
#[derive(Debug)]
pub struct Adapter {
    shared: Arc<Shared>,
    cfg: MountConfig,
    /// The root this session serves, if not the live one: a retained
    /// checkpoint (read-only) or a branch.
    view: Option<ViewId>,
    /// This session is the mount's own (its end unmounts the filesystem),
    /// not one serving a view beside it.
    primary: bool,
    /// Open handles that may write, per inode: what the kernel's writeback
    /// cache may hold dirty pages of (files open for writing, and shared
    /// writable mappings, which keep their file open).
    writers: Mutex<HashMap<u64, u32>>,
}

fn to_system_time(t: Timespec) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::new(t.sec.unsigned_abs(), 0)
            + Duration::from_nanos(u64::from(t.nsec))
    }
}

/// A time from a request. fuser 0.18 turns a request's (seconds,
/// nanoseconds) before the epoch into `EPOCH - (|seconds| + nanoseconds)`
/// (its own TODO); this inverts exactly that, so times before 1970 keep
/// their nanoseconds.
fn request_time(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            Timespec {
                sec: -(d.as_secs() as i64),
                nsec: d.subsec_nanos(),
            }
        }
    }
}

fn kind(mode: u32) -> FileType {
    match mode & S_IFMT {
        S_IFDIR => FileType::Directory,
        S_IFLNK => FileType::Symlink,
        S_IFIFO => FileType::NamedPipe,
        S_IFSOCK => FileType::Socket,
        S_IFCHR => FileType::CharDevice,
        S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn kind_of_dtype(dtype: u8) -> FileType {
    match dtype {
        1 => FileType::NamedPipe,
        2 => FileType::CharDevice,
        4 => FileType::Directory,
        6 => FileType::BlockDevice,
        10 => FileType::Symlink,
        12 => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks,
        atime: to_system_time(a.atime),
        mtime: to_system_time(a.mtime),
        ctime: to_system_time(a.ctime),
        crtime: to_system_time(a.btime),
        kind: kind(a.mode),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: a.blksize,
        flags: 0,
    }
}

fn ino(i: INodeNo) -> Ino {
    Ino(i.0)
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(request_time(t)),
    }
}

/// The attribute that holds a file's access control list.
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";

/// Supplementary groups of process `pid`, from /proc (only needed when the
/// kernel does not check permissions for us).
fn groups_of(pid: u32) -> Vec<u32> {
    process_status(pid).0
}

/// The supplementary groups and effective capabilities of process `pid`
/// (none of either if it is gone).
fn process_status(pid: u32) -> (Vec<u32>, u64) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (Vec::new(), 0);
    };
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name));
    let groups = field("Groups:")
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let caps = field("CapEff:")
        .and_then(|c| u64::from_str_radix(c.trim(), 16).ok())
        .unwrap_or(0);
    (groups, caps)
}

/// Is Linux's `fs.protected_hardlinks` on? Read on every call, as the
/// kernel does; unreadable counts as on, the safer answer.
fn protected_hardlinks() -> bool {
    std::fs::read_to_string("/proc/sys/fs/protected_hardlinks").map_or(true, |v| v.trim() != "0")
}

impl Adapter {
    /// The mount's own adapter over `shared`, serving the live root or
    /// (`view`) a branch opened by the caller.
    pub fn new(shared: Arc<Shared>, cfg: MountConfig, view: Option<ViewId>) -> Adapter {
        Adapter {
            shared,
            cfg,
            view,
            primary: true,
            writers: Mutex::default(),
        }
    }

    /// An adapter serving view `id` of the filesystem in `shared` beside
    /// the mount's own session (opened by the caller; closed when the
    /// session ends).
    pub fn for_view(shared: Arc<Shared>, cfg: MountConfig, id: ViewId) -> Adapter {
        Adapter {
            shared,
            cfg,
            view: Some(id),
            primary: false,
            writers: Mutex::default(),
        }
    }

    /// Runs `f` on the root this session serves.
    fn with<T>(&self, f: impl FnOnce(&mut Filesystem) -> Result<T>) -> Result<T> {
        match self.view {
            None => self.shared.with(f),
            Some(id) => self.shared.with(|fs| fs.in_view(id, f)),
        }
    }

    /// [`Shared::durably`] on the root this session serves.
    fn durably(&self, f: impl FnOnce(&mut Filesystem) -> Result<Option<Flush>>) -> Result<()> {
        if self.view.is_none() {
            self.shared.write_back_in_steps()?;
        }
        let flush = self.with(f)?;
        self.shared.run_flush(flush)
    }

    /// Counts (`delta` 1) or uncounts (-1) a handle opened with `flags`
    /// if it may write.
    fn count_writer(&self, ino: u64, flags: i32, delta: i32) {
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return;
        }
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let n = writers.entry(ino).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            writers.remove(&ino);
        }
    }

    /// Under the kernel's writeback cache, makes the kernel hand over the
    /// dirty pages of a file that is renamed while open for writing (or
    /// mapped), before the rename reaches the filesystem, so that no
    /// commit or roll-forward set can hold the rename without the data
    /// written before it: "write a new file, rename it over the old one"
    /// then never leaves an empty or partial file, even when the program
    /// renames before it closes (close and fsync write back on their own;
    /// FORMAT.md, "What each journaling mode guarantees").
    fn launder_before_rename(
        &self,
        cred: &Cred,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: pagelog_core::RenameFlags,
    ) {
        if !self.kernel_caches_writes() || self.writers_empty() {
            return;
        }
        let mut moved = vec![(parent, name)];
        if flags.0 & libc::RENAME_EXCHANGE != 0 {
            moved.push((newparent, newname));
        }
        for (dir, name) in moved {
            let found = self.with(|fs| fs.lookup(cred, ino(dir), name.as_bytes()));
            let Ok(a) = found else { continue };
            let open = self
                .writers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&a.ino.0);
            if open && a.mode & S_IFMT == S_IFREG {
                self.launder(a.ino.0);
            }
        }
    }

    /// How a file opened with `flags` is served: through the kernel's
    /// page cache, except that a file opened for writing while the
    /// filesystem is nearly full (under [`direct_below`] available), or
    /// has quota limits (set since the mount negotiated the cache), is
    /// served with direct I/O, so that each write(2) reaches the daemon and
    /// one that does not fit fails with ENOSPC or EDQUOT, as it would
    /// without the kernel's writeback cache (whose writeback could only
    /// report it at close or fsync).
    fn open_flags(&self, flags: i32) -> FopenFlags {
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if writes && self.kernel_caches_writes() {
            let short = self
                .with(|fs| {
                    let room = fs.available_at_least(direct_below(fs.capacity_pages()));
                    Ok(!room || fs.has_quota_limits())
                })
                .unwrap_or(true);
            if short {
                return FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_DIRECT_IO;
            }
        }
        FopenFlags::FOPEN_KEEP_CACHE
    }

    /// After a write back from the kernel's cache failed (the filesystem
    /// filled up, or went read-only), drops the kernel's copy of what it
    /// tried to write, so that reads show what the filesystem holds, not
    /// data it never stored. Sent from a thread of its own: the kernel
    /// waits for the failed write to finish before it drops the pages.
    fn forget_cached(&self, ino: u64, offset: u64, len: usize) {
        let _ = self.invalidate_pages(ino, offset as i64, len as i64);
    }

    /// Has the kernel drop its cached pages of `ino` from `offset` (`len`
    /// bytes, 0 for all), writing dirty ones back first, from a thread of
    /// its own: the kernel answers only once the writes it makes (served by
    /// this session's other threads) or waits for are done. The receiver
    /// gets the outcome; `None` before the session exists.
    fn invalidate_pages(
        &self,
        ino: u64,
        offset: i64,
        len: i64,
    ) -> Option<std::sync::mpsc::Receiver<std::io::Result<()>>> {
        let n = self.shared.notifier.get().cloned()?;
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = n.inval_inode(INodeNo(ino), offset, len);
            if let Err(e) = &r {
                log::debug!("cached pages of inode {ino} not all dropped: {e}");
            }
            let _ = done.send(r);
        });
        Some(outcome)
    }

    fn writers_empty(&self) -> bool {
        self.writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn kernel_caches_writes(&self) -> bool {
        self.primary
            && self
                .shared
                .kernel_caches_writes
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Invalidates the kernel's cached pages of `ino`, which makes the
    /// kernel write its dirty ones back first (its `launder_folio`), and
    /// waits for that at most [`LAUNDER_WAIT`] (should every other thread
    /// be waiting too, the rename goes on rather than hang).
    fn launder(&self, ino: u64) {
        let Some(outcome) = self.invalidate_pages(ino, 0, 0) else {
            return;
        };
        if outcome.recv_timeout(LAUNDER_WAIT).is_err() {
            log::warn!(
                "inode {ino}: the kernel did not write its cached pages back within {LAUNDER_WAIT:?}; \
                 renaming without them"
            );
        }
    }

    fn cred(&self, req: &Request) -> Cred {
        if self.cfg.default_permissions {
            Cred::kernel_checked(req.uid(), req.gid())
        } else {
            Cred {
                uid: req.uid(),
                gid: req.gid(),
                groups: groups_of(req.pid()),
                checked: false,
                protected_hardlinks: false,
                caps: 0,
                umask: 0,
            }
        }
    }

    /// The credentials of a call that makes an inode: with the caller's
    /// umask, which the kernel leaves to us (FUSE_DONT_MASK) because only
    /// the directory's default access control list says whether it applies.
    fn creating(&self, req: &Request, umask: u32) -> Cred {
        Cred {
            umask,
            ..self.cred(req)
        }
    }

    /// The credentials with the caller's groups and capabilities read in
    /// full, for the rare call whose outcome depends on them even when the
    /// kernel has checked access (setting an access control list: the
    /// set-group-id rule).
    fn full_cred(&self, req: &Request) -> Cred {
        let (groups, caps) = process_status(req.pid());
        Cred {
            groups,
            caps,
            ..self.cred(req)
        }
    }

    /// `cred` with the caller's capabilities, if they include
    /// CAP_SYS_RESOURCE, which exceeds quota limits (as on ext4). Read from
    /// /proc only for a call that met a limit. A write the kernel sends on
    /// its own (pid 0 under its writeback cache, which a mount uses only
    /// when limits were set after it began) always may: the program was
    /// told it succeeded. Any other pid 0 (a caller the daemon cannot see)
    /// has no capability.
    fn resourceful(&self, req: &Request, cred: &Cred) -> Option<Cred> {
        let kernel_writeback = || self.with(|fs| Ok(fs.kernel_owns_cmtime())).unwrap_or(false);
        let caps = match req.pid() {
            0 if kernel_writeback() => cap::ALL,
            pid => process_status(pid).1,
        };
        (caps & cap::SYS_RESOURCE != 0).then(|| Cred {
            caps: cred.caps | caps,
            ..cred.clone()
        })
    }

    /// Runs `f` with `cred`, and once more with the caller's capabilities
    /// when it failed over a quota limit and they may exceed limits.
    fn over_quota<T>(
        &self,
        req: &Request,
        cred: &Cred,
        f: impl Fn(&mut Filesystem, &Cred) -> Result<T>,
    ) -> Result<T> {
        match self.with(|fs| f(fs, cred)) {
            Err(Error::QuotaExceeded) => match self.resourceful(req, cred) {
                Some(c) => self.with(|fs| f(fs, &c)),
                None => Err(Error::QuotaExceeded),
            },
            r => r,
        }
    }

    fn ttl(&self) -> Duration {
        // Without default_permissions nothing checks search permission on a
        // cached path walk; a zero timeout makes the kernel ask (lookup) on
        // every walk, where the check happens.
        if self.cfg.default_permissions {
            self.cfg.attr_timeout
        } else {
            Duration::ZERO
        }
    }

    /// Answers an entry reply for a call that made or found an inode,
    /// counting the kernel's new reference.
    fn entry(&self, reply: ReplyEntry, result: Result<Attr>) {
        let result = result.and_then(|a| {
            self.with(|fs| {
                fs.remember(a.ino);
                Ok(a)
            })
        });
        match result {
            Ok(a) => reply.entry(&self.ttl(), &file_attr(&a), Generation(a.generation)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn empty(reply: ReplyEmpty, result: Result<()>) {
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn attr(&self, reply: ReplyAttr, result: Result<Attr>) {
        match result {
            Ok(a) => reply.attr(&self.ttl(), &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn xattr(reply: ReplyXattr, size: u32, result: Result<Vec<u8>>) {
        match result {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

impl fuser::Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        // The umask is applied here, where the directory's default access
        // control list is known (FUSE_DONT_MASK); under the kernel's own
        // permission checks the kernel enforces access control lists too
        // (FUSE_POSIX_ACL, which implies those checks). FUSE_SETXATTR_EXT
        // stays off: fuser decodes the older setxattr request.
        let mut wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_EXPORT_SUPPORT
            | InitFlags::FUSE_DONT_MASK
            // The daemon clears set-id bits and file capabilities on write
            // and truncation itself (`kill_privileges`); the kernel then
            // marks the filesystem SB_NOSEC and stops asking for
            // security.capability before every write, a round trip each.
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2
            // Shared mappings of a file opened with direct I/O (see
            // `open_flags`) go through the page cache as usual.
            | InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP;
        if self.cfg.default_permissions {
            wanted |= InitFlags::FUSE_POSIX_ACL;
        }
        // The writeback cache makes the kernel send "now" as an explicit
        // mtime, which only a kernel-side permission check can tell apart.
        // The kernel's writeback cache holds writes back from the daemon
        // until close, fsync, syncfs or its own writeback. The `ordered`
        // mode keeps its promise with it because a rename of a file open
        // for writing launders the file first and each periodic commit
        // follows a syncfs (FORMAT.md argues every case); the `full` mode
        // cannot (write(2) must be durable when it returns). Branches
        // mounted beside the mount keep it only in the `writeback` mode,
        // which promises no order between data and metadata.
        // Nor with quota limits: the kernel's writeback cannot be refused
        // (the program was told its write succeeded), so limits are
        // checked at write(2), which the cache would hide.
        let limited = self.with(|fs| Ok(fs.has_quota_limits())).unwrap_or(false);
        let journal = self.cfg.journal;
        let cached = self.cfg.writeback_cache
            && self.cfg.default_permissions
            && !self.cfg.read_only
            && (journal == JournalMode::Writeback
                || (journal == JournalMode::Ordered && self.primary && waits_for_writeback()));
        if cached && limited {
            log::info!("kernel writeback cache off: this filesystem has quota limits");
        }
        if cached && !limited {
            wanted |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        let supported = config.capabilities();
        let _ = config.add_capabilities(wanted & supported);
        log::debug!("FUSE capabilities asked for: {:?}", wanted & supported);
        if !self.primary {
            // The kernel's write cache is the mount's own session's business.
            return Ok(());
        }
        let kernel_times = (wanted & supported).contains(InitFlags::FUSE_WRITEBACK_CACHE);
        self.shared
            .kernel_caches_writes
            .store(kernel_times, std::sync::atomic::Ordering::Relaxed);
        if let Some(fs) = self.shared.lock().as_mut() {
            fs.set_kernel_owns_cmtime(kernel_times);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        if let Some(id) = self.view {
            if let Some(fs) = self.shared.lock().as_mut() {
                if let Err(e) = fs.close_view(id) {
                    log::error!("closing the root this mount served: {e}");
                }
            }
        }
        if self.primary {
            self.shared.shut_down();
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let cred = self.cred(req);
        let r = self.with(|fs| fs.lookup(&cred, ino(parent), name.as_bytes()));
        self.entry(reply, r);
    }

    fn forget(&self, _req: &Request, i: INodeNo, nlookup: u64) {
        if let Err(e) = self.with(|fs| fs.forget(ino(i), nlookup)) {
            log::warn!("forget of inode {}: {e}", i.0);
        }
    }

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.with(|fs| fs.getattr(ino(i)));
        self.attr(reply, r);
    }

    fn setattr(
        &self,
        req: &Request,
        i: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let cred = self.cred(req);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            ctime: ctime.map(request_time),
            via_handle: fh.is_some(),
        };
        // A truncation clears privileges as a write does; fuser does not
        // pass on the kernel's FATTR_KILL_SUIDGID, so a caller other than
        // root stands for one without CAP_FSETID.
        let setid = req.uid() != 0;
        let r = self.over_quota(req, &cred, |fs, c| {
            let a = fs.setattr(c, ino(i), &set)?;
            if set.size.is_some() && fs.kill_privileges(ino(i), setid)? {
                return fs.getattr(ino(i));
            }
            Ok(a)
        });
        self.attr(reply, r);
    }

    fn readlink(&self, _req: &Request, i: INodeNo, reply: ReplyData) {
        match self.with(|fs| fs.readlink(ino(i))) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let cred = self.creating(req, umask);
        let r = self.over_quota(req, &cred, |fs, c| {
            fs.mknod(c, ino(parent), name.as_bytes(), mode, u64::from(rdev))
        });
        self.entry(reply, r);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let cred = self.creating(req, umask);
        let r = self.over_quota(req, &cred, |fs, c| {
            fs.mkdir(c, ino(parent), name.as_bytes(), mode)
        });
        self.entry(reply, r);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let cred = self.cred(req);
        Self::empty(
            reply,
            self.with(|fs| fs.unlink(&cred, ino(parent), name.as_bytes())),
        );
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let cred = self.cred(req);
        Self::empty(
            reply,
            self.with(|fs| fs.rmdir(&cred, ino(parent), name.as_bytes())),
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let cred = self.cred(req);
        let r = self.over_quota(req, &cred, |fs, c| {
            fs.symlink(
                c,
                ino(parent),
                link_name.as_bytes(),
                target.as_os_str().as_bytes(),
            )
        });
        self.entry(reply, r);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let cred = self.cred(req);
        let f = pagelog_core::RenameFlags(flags.bits());
        self.launder_before_rename(&cred, parent, name, newparent, newname, f);
        let r = self.with(|fs| {
            fs.rename(
                &cred,
                ino(parent),
                name.as_bytes(),
                ino(newparent),
                newname.as_bytes(),
                f,
            )
        });
        Self::empty(reply, r);
    }

    fn link(
        &self,
        req: &Request,
        i: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut cred = self.cred(req);
        // With default_permissions the kernel has applied the rule already
        // (its permission hook answers for real); without, it cannot.
        cred.protected_hardlinks = !cred.checked && protected_hardlinks();
        let r = self.over_quota(req, &cred, |fs, c| {
            fs.link(c, ino(i), ino(newparent), newname.as_bytes())
        });
        self.entry(reply, r);
    }

    fn open(&self, req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let cred = self.cred(req);
        match self.with(|fs| fs.open(&cred, ino(i), flags.0)) {
            Ok(()) => {
                self.count_writer(i.0, flags.0, 1);
                reply.opened(FileHandle(0), self.open_flags(flags.0));
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Plan under the lock, read the device without it, so that reads
        // (and other requests) overlap the disk. A page that moved in
        // between fails its checksum; the retry under the lock is exact.
        let planned = self.with(|fs| Ok((fs.plan_read(ino(i), offset, size)?, fs.device())));
        let result = planned.and_then(|(plan, dev)| match plan.execute(&*dev) {
            Err(Error::Corrupt { .. }) => self.with(|fs| fs.read(ino(i), offset, size)),
            other => other,
        });
        match result {
            Ok(d) => {
                if self.cfg.autodefrag.is_some() && self.view.is_none() {
                    self.shared.reads.note(ino(i), offset, size, d.len());
                }
                reply.data(&d)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let cred = self.cred(req);
        // The kernel leaves clearing privileges on write to the daemon
        // (FUSE_HANDLE_KILLPRIV_V2), and says when the set-id bits go. A
        // write back from its cache is not a write(2): the kernel dealt
        // with privileges when the data entered the cache, and capabilities
        // set since must stay.
        let setid = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        let from_cache = write_flags.contains(WriteFlags::FUSE_WRITE_CACHE);
        let write = |c: &Cred, n: usize| {
            let (written, killed, log_full) = self.with(|fs| {
                let written = fs.write(c, ino(i), offset + n as u64, &data[n..])?;
                let killed = !from_cache && fs.kill_privileges(ino(i), setid)?;
                Ok((written, killed, fs.log_limit_due()))
            })?;
            if killed {
                // The kernel keeps the attributes it had cached.
                self.shared.reshaped(vec![ino(i)]);
            }
            if log_full {
                self.shared.commit_log_if_due();
            }
            Ok(written)
        };
        // A write over a quota limit is cut short or refused; a caller
        // that may exceed limits writes the rest.
        let r = match write(&cred, 0) {
            Ok(n) if n < data.len() => match self.resourceful(req, &cred) {
                Some(c) => Ok(write(&c, n).map_or(n, |m| n + m)),
                None => Ok(n),
            },
            Err(Error::QuotaExceeded) => match self.resourceful(req, &cred) {
                Some(c) => write(&c, 0),
                None => Err(Error::QuotaExceeded),
            },
            r => r,
        };
        match r {
            Ok(n) => reply.written(n as u32),
            Err(e) => {
                reply.error(errno(&e));
                if from_cache {
                    self.forget_cached(i.0, offset, data.len());
                }
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to do on close (data is the kernel's until writeback, and
        // durability is fsync's): ENOSYS tells the kernel to stop sending
        // FLUSH, saving a round trip per close.
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn release(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.count_writer(i.0, flags.0, -1);
        Self::empty(reply, self.with(|fs| fs.release(ino(i))));
    }

    fn fsync(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Self::empty(reply, self.durably(|fs| fs.fsync_deferred(ino(i))));
    }

    fn opendir(&self, req: &Request, i: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let cred = self.cred(req);
        match self.with(|fs| fs.opendir(&cred, ino(i))) {
            Ok(()) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.with(|fs| {
            fs.readdir(ino(i), offset, &mut |e: DirItem| {
                !reply.add(
                    INodeNo(e.ino.0),
                    e.offset,
                    kind_of_dtype(e.dtype),
                    OsStr::from_bytes(&e.name),
                )
            })
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.ttl();
        let r = self.with(|fs| {
            // Collect a batch, then look up attributes (readdir holds the
            // directory while it walks).
            let mut items = Vec::new();
            fs.readdir(ino(i), offset, &mut |e| {
                items.push(e);
                items.len() < 256
            })?;
            for e in items {
                let dot = e.name == b"." || e.name == b"..";
                let a = fs.entry_attr(e.ino)?;
                if reply.add(
                    INodeNo(e.ino.0),
                    e.offset,
                    OsStr::from_bytes(&e.name),
                    &ttl,
                    &file_attr(&a),
                    Generation(a.generation),
                ) {
                    break;
                }
                if !dot {
                    fs.remember(e.ino);
                }
            }
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        Self::empty(reply, self.with(|fs| fs.release(ino(i))));
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // A directory's entries are nodes: fsync writes every dirty one.
        Self::empty(reply, self.durably(|fs| fs.fsync_deferred(ino(i))));
    }

    fn statfs(&self, _req: &Request, i: INodeNo, reply: ReplyStatfs) {
        match self.with(|fs| Ok(fs.statfs_at(ino(i)))) {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        i: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let cred = if name.as_bytes() == ACL_ACCESS {
            self.full_cred(req)
        } else {
            self.cred(req)
        };
        Self::empty(
            reply,
            self.with(|fs| fs.setxattr(&cred, ino(i), name.as_bytes(), value, flags)),
        );
    }

    fn getxattr(&self, req: &Request, i: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if ino(i) == Ino::ROOT && name.as_bytes() == STATS_XATTR {
            let text = self.with(|fs| Ok(fs.cleaner_report().to_text()));
            return Self::xattr(reply, size, text.map(String::into_bytes));
        }
        let cred = self.cred(req);
        Self::xattr(
            reply,
            size,
            self.with(|fs| fs.getxattr(&cred, ino(i), name.as_bytes())),
        );
    }

    fn listxattr(&self, req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        let cred = self.cred(req);
        Self::xattr(reply, size, self.with(|fs| fs.listxattr(&cred, ino(i))));
    }

    fn removexattr(&self, req: &Request, i: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let cred = self.cred(req);
        Self::empty(
            reply,
            self.with(|fs| fs.removexattr(&cred, ino(i), name.as_bytes())),
        );
    }

    fn access(&self, req: &Request, i: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let cred = self.cred(req);
        Self::empty(
            reply,
            self.with(|fs| fs.access(&cred, ino(i), mask.bits() as u32)),
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let cred = self.creating(req, umask);
        let r = self.over_quota(req, &cred, |fs, c| {
            let a = fs.create(c, ino(parent), name.as_bytes(), mode, flags)?;
            fs.remember(a.ino);
            Ok(a)
        });
        if let Ok(a) = &r {
            self.count_writer(a.ino.0, flags, 1);
        }
        match r {
            Ok(a) => reply.created(
                &self.ttl(),
                &file_attr(&a),
                Generation(a.generation),
                FileHandle(0),
                self.open_flags(flags),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let cred = self.cred(req);
        Self::empty(
            reply,
            self.over_quota(req, &cred, |fs, c| {
                fs.fallocate(c, ino(i), offset, length, mode as u32)
            }),
        );
    }

    fn ioctl(
        &self,
        req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        // `lsattr` and `chattr` (the kernel asks with the 4-byte form
        // whatever the caller's `long`); nothing else: what a terminal
        // query (TCGETS) on a file gets everywhere.
        match cmd {
            FS_IOC_GETFLAGS | FS_IOC32_GETFLAGS => match self.with(|fs| fs.file_flags(ino(i))) {
                Ok(f) => reply.ioctl(0, &kernel_int(f)),
                Err(e) => reply.error(errno(&e)),
            },
            FS_IOC_SETFLAGS | FS_IOC32_SETFLAGS => {
                let Some(bytes) = in_data.get(..4) else {
                    return reply.error(Errno::from_i32(libc::EINVAL));
                };
                let flags = from_kernel_int([bytes[0], bytes[1], bytes[2], bytes[3]]);
                let cred = self.cred(req);
                match self.with(|fs| fs.set_file_flags(&cred, ino(i), flags)) {
                    Ok(()) => reply.ioctl(0, &[]),
                    Err(e) => reply.error(errno(&e)),
                }
            }
            // The extended form (`chattr -p`, `lsattr -p`, `xfs_io`; the
            // kernel also reads it before it sets flags): the project id
            // and the project-inherit flag.
            FS_IOC_FSGETXATTR => match self.with(|fs| fs.fsxattr(ino(i))) {
                Ok(x) => reply.ioctl(0, &encode_fsxattr(x)),
                Err(e) => reply.error(errno(&e)),
            },
            FS_IOC_FSSETXATTR => {
                let Some(bytes) = in_data.get(..FSXATTR_SIZE) else {
                    return reply.error(Errno::from_i32(libc::EINVAL));
                };
                let Some(x) = decode_fsxattr(bytes) else {
                    return reply.error(Errno::from_i32(libc::EOPNOTSUPP));
                };
                let cred = self.cred(req);
                match self.over_quota(req, &cred, |fs, c| fs.set_fsxattr(c, ino(i), x)) {
                    Ok(()) => reply.ioctl(0, &[]),
                    Err(e) => reply.error(errno(&e)),
                }
            }
            _ => reply.error(Errno::from_i32(libc::ENOTTY)),
        }
    }

    fn poll(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        // ENOSYS: the kernel stops asking and treats files as always ready.
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // ENOSYS: the kernel stops asking and copies through read and write.
        reply.error(Errno::from_i32(libc::ENOSYS));
    }

    fn lseek(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let whence = match whence {
            libc::SEEK_DATA => Whence::Data,
            libc::SEEK_HOLE => Whence::Hole,
            _ => return reply.error(Errno::from_i32(libc::EINVAL)),
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::from_i32(libc::ENXIO));
        };
        match self.with(|fs| fs.seek(ino(i), offset, whence)) {
            Ok(o) => reply.offset(o as i64),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_times_before_the_epoch_keep_their_nanoseconds() {
        // What fuser hands us for a request carrying (sec, nsec).
        let fuser_request = |sec: i64, nsec: u32| {
            if sec >= 0 {
                UNIX_EPOCH + Duration::new(sec as u64, nsec)
            } else {
                UNIX_EPOCH - Duration::new((-sec) as u64, nsec)
            }
        };
        for (sec, nsec) in [(5, 7), (-1000, 5), (-1, 0), (0, 0), (-5, 999_999_999)] {
            assert_eq!(
                request_time(fuser_request(sec, nsec)),
                Timespec { sec, nsec }
            );
        }
        // Replies: fuser converts correctly, so ours must be exact too.
        let t = to_system_time(Timespec {
            sec: -1000,
            nsec: 5,
        });
        assert_eq!(
            UNIX_EPOCH.duration_since(t).expect("before"),
            Duration::new(999, 999_999_995)
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(kind(S_IFDIR | 0o755), FileType::Directory);
        assert_eq!(kind_of_dtype(10), FileType::Symlink);
    }
}
