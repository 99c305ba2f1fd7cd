//! Running the daemon: checks, mount, readiness report to the parent
//! process, signal handling, the commit timer, and the final writeback.

use pagelog_core::seal::MasterKey;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use pagelog_core::objects::Backing;
use pagelog_core::{BlockDevice, Filesystem, MountOptions, ViewId};

use crate::adapter::{kernel_dirty_bytes, Adapter, Shared};
use crate::control::Context;
use crate::kernel_mount::{self, Unmounter};
use crate::logging;
use crate::mountinfo;
use crate::options::MountConfig;
use crate::views::ViewMounts;

/// mount(8) helper exit code for a failed mount.
pub const EXIT_MOUNT_FAILED: u8 = 32;

/// Sets the kernel's readahead window for the mount: the default of 128
/// KiB makes sequential reads cost a round trip per 128 KiB.
fn set_readahead(mountpoint: &Path, bytes: u64) {
    let Some(dev) = mountinfo::mount_at(mountpoint).map(|e| e.dev) else {
        return;
    };
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, (bytes / 1024).to_string()) {
        log::warn!("cannot set readahead ({path}): {e}");
    }
}

/// Lets the kernel's writeback cache hold up to `bytes` of this mount's
/// dirty pages (the mount's `max_bytes`; FUSE starts a mount at 1% of
/// the kernel's dirty limit, so a burst of small random writes would be
/// held to the rate at which they can be written back one by one).
fn set_kernel_dirty(mountpoint: &Path, bytes: u64) {
    let Some(dev) = mountinfo::mount_at(mountpoint).map(|e| e.dev) else {
        return;
    };
    let path = format!("/sys/class/bdi/{dev}/max_bytes");
    if let Err(e) = std::fs::write(&path, bytes.to_string()) {
        // More than the kernel's whole dirty limit (a small machine) is
        // refused: the whole limit, then.
        let ratio = format!("/sys/class/bdi/{dev}/max_ratio");
        if std::fs::write(&ratio, "100").is_err() {
            log::info!("cannot let the kernel cache more written data ({path}): {e}");
        }
    }
}

/// Refuses a mount point that is missing, not a directory, or already
/// mounted on.
pub(crate) fn check_mountpoint(path: &Path) -> Result<(), String> {
    let md = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("mount point {} does not exist", path.display()),
        _ => format!("mount point {}: {e}", path.display()),
    })?;
    if !md.is_dir() {
        return Err(format!("mount point {} is not a directory", path.display()));
    }
    if mountinfo::mount_at(path).is_some() {
        return Err(format!(
            "{} is already a mount point (unmount it first)",
            path.display()
        ));
    }
    Ok(())
}

/// Warns (on stderr, still the terminal here, and in the log) when users
/// other than its owner may read or write an image file: its bytes are
/// every file in it, whatever the files' own modes say.
fn warn_if_exposed(image: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(md) = std::fs::metadata(image) else {
        return;
    };
    let mode = md.permissions().mode() & 0o7777;
    let access = match (mode & 0o044 != 0, mode & 0o022 != 0) {
        _ if !md.is_file() => return,
        (true, true) => "read and change",
        (true, false) => "read",
        (false, true) => "change",
        (false, false) => return,
    };
    let msg = format!(
        "{} is mode {mode:04o}: users other than its owner can {access} every file in it; chmod 600 {}",
        image.display(),
        image.display()
    );
    eprintln!("pagelog-mount: warning: {msg}");
    log::warn!("{msg}");
}

fn open_image(
    image: &Path,
    cfg: &MountConfig,
    key: Option<MasterKey>,
) -> Result<Filesystem, String> {
    if let Some(dir) = &cfg.modules {
        let names = pagelog_core::transform::Registry::load(dir).map_err(|e| e.to_string())?;
        log::info!(
            "transform modules loaded from {}: {}",
            dir.display(),
            names.join(", ")
        );
    }
    let dev = Backing::open(image, !cfg.read_only)?;
    dev.lock(!cfg.read_only).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => format!(
            "{} is already mounted or in use by another process",
            image.display()
        ),
        _ => format!("cannot lock {}: {e}", image.display()),
    })?;
    warn_if_exposed(image);
    let opts = MountOptions {
        journal: cfg.journal,
        read_only: cfg.read_only,
        dirty_limit: cfg.dirty_limit,
        cache: cfg.cache,
        atime: cfg.atime,
        commit_interval: cfg.commit,
        cleaner: cfg.cleaner,
        retention: pagelog_core::checkpoints::RetentionOptions {
            protect_secs: cfg.protect_secs,
            interval_ns: i64::try_from(cfg.checkpoint_interval.as_nanos()).unwrap_or(i64::MAX),
            history_percent: cfg.history_percent,
        },
        // Read-write, the past is served through a branch (see `branch`).
        at: cfg.at.clone().filter(|_| cfg.read_only),
        key,
        roll_forward: cfg.roll_forward,
        ..MountOptions::default()
    };
    let dev: Arc<dyn BlockDevice> = Arc::new(dev);
    Filesystem::mount(dev, opts).map_err(|e| format!("{}: {e}", image.display()))
}

/// The branch the mount serves instead of the live root, if `cfg` asks
/// for one: `branch=NAME`, made first from `snapshot=`, `cp=` or `at=` if
/// given read-write (named `cpN-DATE` without `branch=`).
fn open_branch(fs: &mut Filesystem, cfg: &MountConfig) -> Result<Option<ViewId>, String> {
    let name = match (&cfg.at, &cfg.branch) {
        (Some(at), name) if !cfg.read_only => {
            let no = fs.find_checkpoint(at).map_err(|e| e.to_string())?;
            let name = name.clone().unwrap_or_else(|| {
                let now = pagelog_core::store::now_ns();
                format!("cp{no}-{}", pagelog_core::when::stamp(now))
            });
            fs.create_branch(name.as_bytes(), at)
                .map_err(|e| format!("cannot make branch '{name}': {e}"))?;
            log::info!("made branch '{name}' from checkpoint {no}");
            name
        }
        (None, Some(name)) => name.clone(),
        _ => return Ok(None),
    };
    let id = fs
        .open_branch(name.as_bytes())
        .map_err(|e| format!("branch '{name}': {e}"))?;
    log::info!("serving branch '{name}'");
    Ok(Some(id))
}

/// Reports to the waiting parent (or the terminal in the foreground).
struct Reporter {
    pipe: Option<File>,
}

impl Reporter {
    fn fail(&mut self, msg: &str) -> u8 {
        match self.pipe.take() {
            Some(mut p) => {
                let _ = p.write_all(format!("error: {msg}").as_bytes());
            }
            None => eprintln!("pagelog-mount: {msg}"),
        }
        EXIT_MOUNT_FAILED
    }

    fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"ready");
        }
    }
}

/// Sets up logging for this daemon (see `logging`). An explicit `log=`
/// file that cannot be opened fails the mount; a default one only warns.
fn start_logging(
    report: &mut Reporter,
    image: &Path,
    cfg: &MountConfig,
    level: log::LevelFilter,
) -> Result<(), u8> {
    let sink = logging::choose(report.pipe.is_none(), cfg.log.as_deref(), image);
    match logging::install(&sink, level) {
        Ok(()) => Ok(()),
        Err(m) if cfg.log.is_some() => Err(report.fail(&m)),
        Err(m) => {
            eprintln!("pagelog-mount: warning: {m}; the daemon's messages will be lost (choose a file with -o log=PATH)");
            Ok(())
        }
    }
}

/// Mounts and serves until unmounted. `ready` is the pipe to the parent
/// when running in the background.
pub fn serve(
    (image, mountpoint): (&Path, &Path),
    cfg: &MountConfig,
    key: Option<MasterKey>,
    ready: Option<OwnedFd>,
    level: log::LevelFilter,
) -> u8 {
    let background = ready.is_some();
    let mut report = Reporter {
        pipe: ready.map(File::from),
    };
    if let Err(code) = start_logging(&mut report, image, cfg, level) {
        return code;
    }
    if let Err(m) = check_mountpoint(mountpoint) {
        return report.fail(&m);
    }
    // Full paths from here on: the log outlives the shell that gave
    // relative ones.
    let mountpoint = &mountpoint
        .canonicalize()
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    let mut fs = match open_image(image, cfg, key) {
        Ok(fs) => fs,
        Err(m) => return report.fail(&m),
    };
    let branch = match open_branch(&mut fs, cfg) {
        Ok(b) => b,
        Err(m) => {
            let _ = fs.unmount();
            return report.fail(&m);
        }
    };
    // The requests' threads run the log's limit commit themselves, with
    // its flushes outside the lock (`Shared::commit_log_if_due`).
    fs.leave_log_limit_to_caller();
    let shared = Arc::new(Shared::new(fs));
    let adapter = Adapter::new(shared.clone(), cfg.clone(), branch);
    let (session, unmounter) = match kernel_mount::mount(adapter, image, mountpoint, cfg) {
        Ok(s) => s,
        Err(e) => {
            shared.shut_down();
            return report.fail(&format!("cannot mount at {}: {e}", mountpoint.display()));
        }
    };
    if let Some(bytes) = cfg.readahead {
        set_readahead(mountpoint, bytes);
    }
    if !cfg.read_only {
        let pages = shared.with(|fs| Ok(fs.statfs().blocks)).unwrap_or(0);
        // Lower, not higher: the near-full threshold keeps free what the
        // default lets the kernel hold.
        let most = kernel_dirty_bytes(pages);
        set_kernel_dirty(mountpoint, cfg.kernel_dirty.map_or(most, |b| b.min(most)));
    }
    let _ = shared.notifier.set(session.notifier());
    let uuid = shared
        .with(|fs| Ok(fs.superblock().uuid))
        .unwrap_or_default();
    let synced = shared.clone();
    let at = mountpoint.to_path_buf();
    let views = ViewMounts::new(shared.clone(), image, cfg);
    let ctx = Arc::new(Context {
        shared: shared.clone(),
        syncfs: Box::new(move || syncfs_mount(&synced, &at)),
        views,
        branch_view: branch,
    });
    // The views end before the filesystem does (the mount's own session
    // shuts it down when it ends).
    let ending = ctx.clone();
    *shared
        .before_shut_down
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(move || ending.views.unmount_all()));
    let _control = match crate::control::start(&uuid, ctx.clone()) {
        Ok(c) => Some(c),
        Err(e) => {
            log::warn!("no control socket ({e}): pagelog-snapshot cannot reach this mount");
            None
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let unmounter = Arc::new(Mutex::new(unmounter));
    spawn_signal_thread(ctx.clone(), unmounter.clone(), mountpoint.to_path_buf());
    // In the `ordered` mode a periodic commit holds everything written(2)
    // before it, as without the kernel's writeback cache: the kernel's
    // dirty pages are pushed first.
    let push_first = cfg.journal == pagelog_core::fs::JournalMode::Ordered;
    let committer = spawn_commit_thread(ctx.clone(), push_first, stop.clone());
    let defragger = cfg
        .autodefrag
        .filter(|_| !cfg.read_only)
        .map(|pct| crate::autodefrag::spawn(shared.clone(), f64::from(pct) / 100.0, stop.clone()));
    report.ready();
    if background {
        detach_stdio();
    }
    let image = &image.canonicalize().unwrap_or_else(|_| image.to_path_buf());
    log::info!("mounted {} at {}", image.display(), mountpoint.display());
    let run = session.run();
    unmounter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .detach_leftover();
    stop.store(true, Ordering::SeqCst);
    shared.shut_down();
    let _ = committer.join();
    if let Some(d) = defragger {
        let _ = d.join();
    }
    exit_status(run, &shared, image)
}

/// Logs how the daemon ends, and its exit status: 0 only when the session
/// ended normally and the final writeback succeeded.
fn exit_status(run: std::io::Result<()>, shared: &Shared, image: &Path) -> u8 {
    let final_error = shared
        .final_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match (run, final_error) {
        (_, Some(e)) => {
            log::error!("unmount of {} failed: {e}", image.display());
            1
        }
        (Err(e), None) => {
            log::error!("FUSE session ended with an error: {e}");
            1
        }
        (Ok(()), None) => {
            log::info!("unmounted {} cleanly", image.display());
            0
        }
    }
}

/// Writes everything back and commits, so that whatever follows a signal
/// (an unmount, or a SIGKILL after a busy unmount) loses nothing written
/// before it. With the kernel's writeback cache, syncfs first pushes the
/// kernel's dirty pages to this daemon.
fn commit_everything(ctx: &Context, mountpoint: &Path) {
    let shared = &*ctx.shared;
    ctx.views.sync_all();
    syncfs_mount(shared, mountpoint);
    match shared.with(Filesystem::sync) {
        Ok(()) => log::info!("everything written so far is committed"),
        Err(e) => log::error!("commit failed: {e}"),
    }
}

/// With the kernel's writeback cache, pushes the kernel's dirty pages of
/// the mount to this daemon (syncfs), so that what follows sees every
/// write made before it.
fn syncfs_mount(shared: &Shared, mountpoint: &Path) {
    if shared.kernel_caches_writes.load(Ordering::Relaxed) {
        use std::os::fd::AsRawFd;
        if let Ok(dir) = File::open(mountpoint) {
            // SAFETY: syncfs on a descriptor this function owns.
            unsafe { libc::syncfs(dir.as_raw_fd()) };
        }
    }
}

/// On SIGTERM, SIGINT or SIGHUP: commit, then unmount. If the mount is
/// busy (files open on it), keep serving, everything committed; the next
/// signal tries again.
fn spawn_signal_thread(ctx: Arc<Context>, unmounter: Arc<Mutex<Unmounter>>, mountpoint: PathBuf) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) else {
        log::warn!("cannot install signal handlers; use umount to stop");
        return;
    };
    thread::spawn(move || {
        for sig in signals.forever() {
            let name = nix::sys::signal::Signal::try_from(sig).map_or("signal", |s| s.as_str());
            let dir = mountpoint.display();
            log::info!("{name}: committing, then unmounting {dir}");
            commit_everything(&ctx, &mountpoint);
            let result = unmounter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unmount();
            match result {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => log::warn!(
                    "{dir} is busy (files are open on it), so it stays mounted and served; \
                     everything written before {name} is committed. Unmount it when it is free."
                ),
                Err(e) => log::error!("unmount of {dir} failed: {e}; still serving"),
            }
        }
    });
}

/// How long without a request before the filesystem counts as idle and
/// the background cleaner may run.
const IDLE: Duration = Duration::from_secs(1);

/// The housekeeping thread: periodic commits (after a syncfs that pushes
/// the kernel's cached writes to the daemon, with `push_first`), and
/// background cleaning while no request has come for [`IDLE`] (one pass a
/// tick, so a request waits for at most one pass).
fn spawn_commit_thread(
    ctx: Arc<Context>,
    push_first: bool,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let shared = &*ctx.shared;
        let mut seen = shared.requests.load(Ordering::Relaxed);
        let mut quiet_since = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(250));
            let now = shared.requests.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                quiet_since = std::time::Instant::now();
            }
            let due = shared.lock().as_ref().is_some_and(Filesystem::commit_due);
            if push_first && due {
                (ctx.syncfs)();
            }
            // `due` decides, not a second look at the clock: the syncfs
            // above belongs to this commit.
            if due {
                if let Err(e) = shared.durably(Filesystem::periodic_commit_deferred) {
                    log::error!("periodic commit failed: {e}");
                }
            }
            let mut guard = shared.lock();
            let Some(fs) = guard.as_mut() else { continue };
            if quiet_since.elapsed() >= IDLE {
                if let Err(e) = fs.clean_in_background() {
                    log::error!("background cleaning failed: {e}");
                }
            }
            let reshaped = fs.take_reshaped();
            drop(guard);
            shared.reshaped(reshaped);
        }
    })
}

/// Points stdin, stdout and stderr at /dev/null (logging goes to syslog
/// or the log file).
fn detach_stdio() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in [0, 1, 2] {
            // SAFETY: dup2 on two valid descriptors (ours and a standard
            // one this process owns) touches no Rust-owned memory.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Forks: the child mounts and serves; the parent waits until the mount is
/// ready (or failed) and returns the exit code for the caller.
pub fn run_in_background(
    image: &Path,
    mountpoint: &Path,
    cfg: &MountConfig,
    key: Option<MasterKey>,
) -> ExitCode {
    let (read_end, write_end) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pagelog-mount: cannot create a pipe: {e}");
            return ExitCode::from(EXIT_MOUNT_FAILED);
        }
    };
    // SAFETY: no thread has been started yet in this process, so the child
    // is a complete copy and may run arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            eprintln!("pagelog-mount: cannot fork: {e}");
            ExitCode::from(EXIT_MOUNT_FAILED)
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(write_end);
            let mut msg = String::new();
            let _ = File::from(read_end).read_to_string(&mut msg);
            if msg == "ready" {
                ExitCode::SUCCESS
            } else if let Some(err) = msg.strip_prefix("error: ") {
                eprintln!("pagelog-mount: {err}");
                ExitCode::from(EXIT_MOUNT_FAILED)
            } else {
                eprintln!("pagelog-mount: the daemon exited before the mount was ready (see its log: syslog, or the log= file)");
                ExitCode::from(EXIT_MOUNT_FAILED)
            }
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(read_end);
            let _ = nix::unistd::setsid();
            let code = serve(
                (image, mountpoint),
                cfg,
                key,
                Some(write_end),
                log::LevelFilter::Info,
            );
            std::process::exit(i32::from(code));
        }
    }
}
