//! Running the daemon: checks, mount, readiness report to the parent
//! process, signal handling, the commit timer, and the final writeback.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use fuser::{Config, MountOption, Session, SessionACL};
use pagelog_core::{BlockDevice, FileDevice, Filesystem, MountOptions};

use crate::adapter::{Adapter, Shared};
use crate::options::MountConfig;

/// mount(8) helper exit code for a failed mount.
pub const EXIT_MOUNT_FAILED: u8 = 32;

/// The `major:minor` of the filesystem mounted at `path`, from
/// /proc/self/mountinfo (asking the mount itself would wait for this very
/// daemon).
fn mounted_device(path: &Path) -> Option<String> {
    let want = path
        .canonicalize()
        .ok()?
        .to_string_lossy()
        .replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .and_then(|l| l.split(' ').nth(2).map(str::to_string))
}

/// Sets the kernel's readahead window for the mount: the default of 128
/// KiB makes sequential reads cost a round trip per 128 KiB.
fn set_readahead(mountpoint: &Path, bytes: u64) {
    let Some(dev) = mounted_device(mountpoint) else {
        return;
    };
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, (bytes / 1024).to_string()) {
        log::warn!("cannot set readahead ({path}): {e}");
    }
}

/// Is `path` already a mount point? (Mounting over a mount hides it.)
fn is_mount_point(path: &Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn check_mountpoint(path: &Path) -> Result<(), String> {
    let md = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("mount point {} does not exist", path.display()),
        _ => format!("mount point {}: {e}", path.display()),
    })?;
    if !md.is_dir() {
        return Err(format!("mount point {} is not a directory", path.display()));
    }
    if is_mount_point(path) {
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

fn open_image(image: &Path, cfg: &MountConfig) -> Result<Filesystem, String> {
    let dev = FileDevice::open(image, !cfg.read_only)
        .map_err(|e| format!("cannot open {}: {e}", image.display()))?;
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
        atime: cfg.atime,
        commit_interval: cfg.commit,
        cleaner: cfg.cleaner,
        ..MountOptions::default()
    };
    let dev: Arc<dyn BlockDevice> = Arc::new(dev);
    Filesystem::mount(dev, opts).map_err(|e| format!("{}: {e}", image.display()))
}

fn fuse_config(image: &Path, cfg: &MountConfig) -> Config {
    let mut c = Config::default();
    let name = cfg
        .fsname
        .clone()
        .unwrap_or_else(|| image.display().to_string());
    c.mount_options.push(MountOption::FSName(name));
    c.mount_options.push(MountOption::Subtype("pagelog".into()));
    if cfg.default_permissions {
        c.mount_options.push(MountOption::DefaultPermissions);
    }
    c.mount_options.push(if cfg.read_only {
        MountOption::RO
    } else {
        MountOption::RW
    });
    for f in &cfg.kernel_flags {
        c.mount_options.push(match f.as_str() {
            "suid" => MountOption::Suid,
            "nosuid" => MountOption::NoSuid,
            "dev" => MountOption::Dev,
            "nodev" => MountOption::NoDev,
            "exec" => MountOption::Exec,
            "noexec" => MountOption::NoExec,
            "sync" => MountOption::Sync,
            "async" => MountOption::Async,
            _ => MountOption::DirSync,
        });
    }
    c.acl = if cfg.allow_other {
        SessionACL::All
    } else if cfg.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    // Two threads (this machine class has two cores): one can serve
    // requests while the other waits on the disk for a read.
    c.n_threads = Some(2);
    c
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

/// Mounts and serves until unmounted. `ready` is the pipe to the parent
/// when running in the background.
pub fn serve(image: &Path, mountpoint: &Path, cfg: &MountConfig, ready: Option<OwnedFd>) -> u8 {
    let background = ready.is_some();
    let mut report = Reporter {
        pipe: ready.map(File::from),
    };
    if let Err(m) = check_mountpoint(mountpoint) {
        return report.fail(&m);
    }
    let fs = match open_image(image, cfg) {
        Ok(fs) => fs,
        Err(m) => return report.fail(&m),
    };
    let shared = Arc::new(Shared {
        fs: Mutex::new(Some(fs)),
        final_error: Mutex::new(None),
        requests: std::sync::atomic::AtomicU64::new(0),
    });
    let adapter = Adapter::new(shared.clone(), cfg.clone());
    let mut session = match Session::new(adapter, mountpoint, &fuse_config(image, cfg)) {
        Ok(s) => s,
        Err(e) => {
            shared.shut_down();
            return report.fail(&format!("cannot mount at {}: {e}", mountpoint.display()));
        }
    };
    if let Some(bytes) = cfg.readahead {
        set_readahead(mountpoint, bytes);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let unmounter = session.unmount_callable();
    spawn_signal_thread(unmounter, mountpoint.to_path_buf());
    let committer = spawn_commit_thread(shared.clone(), stop.clone());
    report.ready();
    if background {
        detach_stdio();
    }
    log::info!("mounted {} at {}", image.display(), mountpoint.display());
    let run = session.run();
    stop.store(true, Ordering::SeqCst);
    shared.shut_down();
    let _ = committer.join();
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

fn spawn_signal_thread(mut unmounter: fuser::SessionUnmounter, mountpoint: PathBuf) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) else {
        log::warn!("cannot install signal handlers; use umount to stop");
        return;
    };
    thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: unmounting {}", mountpoint.display());
            if let Err(e) = unmounter.unmount() {
                log::error!("unmount of {} failed: {e}", mountpoint.display());
            }
        }
    });
}

/// How long without a request before the filesystem counts as idle and
/// the background cleaner may run.
const IDLE: Duration = Duration::from_secs(1);

/// The housekeeping thread: periodic commits, and background cleaning
/// while no request has come for [`IDLE`] (one pass a tick, so a request
/// waits for at most one pass).
fn spawn_commit_thread(shared: Arc<Shared>, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut seen = shared.requests.load(Ordering::Relaxed);
        let mut quiet_since = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(250));
            let now = shared.requests.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                quiet_since = std::time::Instant::now();
            }
            let mut guard = shared.lock();
            let Some(fs) = guard.as_mut() else { continue };
            if let Err(e) = fs.sync_if_due() {
                log::error!("periodic commit failed: {e}");
            }
            if quiet_since.elapsed() >= IDLE {
                if let Err(e) = fs.clean_in_background() {
                    log::error!("background cleaning failed: {e}");
                }
            }
        }
    })
}

/// Points stdin, stdout and stderr at /dev/null (logging goes to syslog).
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
pub fn run_in_background(image: &Path, mountpoint: &Path, cfg: &MountConfig) -> ExitCode {
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
                eprintln!("pagelog-mount: the daemon exited before the mount was ready (see the system log)");
                ExitCode::from(EXIT_MOUNT_FAILED)
            }
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(read_end);
            let _ = nix::unistd::setsid();
            crate::syslog::Syslog::install(log::LevelFilter::Info);
            let code = serve(image, mountpoint, cfg, Some(write_end));
            std::process::exit(i32::from(code));
        }
    }
}
