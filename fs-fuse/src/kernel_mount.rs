//! The kernel side of the mount: type `fuse.pagelog` with the image as its
//! source, and an unmount that touches only that mount.
//!
//! fuser 0.18 calls mount(2) itself with the type plain `fuse` (it hands
//! the `subtype=` option only to fusermount3), and mount(8) then takes the
//! source of a `fuse` mount for a program to run on `mount -o remount`.
//! Its unmount at the end of a session also cannot tell that umount(8)
//! already removed the mount, and fails with EINVAL after every normal
//! unmount (or removes whatever was mounted there since). So the daemon
//! makes the mount itself when it may call mount(2) (root), and hands
//! fuser the /dev/fuse descriptor; other users go through fusermount3,
//! which sets the type from `subtype=`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use nix::mount::{MntFlags, MsFlags};

use crate::adapter::Adapter;
use crate::mountinfo;
use crate::options::MountConfig;

/// The filesystem type the mount shows (`findmnt -t`, `df -T`).
pub const FSTYPE: &str = "fuse.pagelog";

/// How the mount is taken down again.
#[derive(Debug)]
pub enum Unmounter {
    /// Made by mount(2) here: the mount on `dir` with device `dev`.
    Direct {
        /// The mount point, canonical.
        dir: PathBuf,
        /// Its `major:minor`, so a later mount on `dir` is left alone.
        dev: String,
    },
    /// Made by fusermount3, which also unmounts it.
    Fusermount(SessionUnmounter),
}

impl Unmounter {
    /// Unmounts, if the mount is still there; fails with EBUSY while files
    /// on it are in use.
    pub fn unmount(&mut self) -> io::Result<()> {
        match self {
            Unmounter::Direct { dir, dev } => {
                if !still_ours(dir, dev) {
                    return Ok(());
                }
                nix::mount::umount2(dir.as_path(), MntFlags::empty()).map_err(io::Error::from)
            }
            Unmounter::Fusermount(u) => u.unmount(),
        }
    }

    /// After the session has ended: if the mount is still there (the
    /// session failed rather than being unmounted), detach it so that the
    /// directory does not stay a dead mount.
    pub fn detach_leftover(&self) {
        if let Unmounter::Direct { dir, dev } = self {
            if still_ours(dir, dev) {
                log::warn!("detaching the mount on {}", dir.display());
                if let Err(e) = nix::mount::umount2(dir.as_path(), MntFlags::MNT_DETACH) {
                    log::error!("cannot detach the mount on {}: {e}", dir.display());
                }
            }
        }
    }
}

fn still_ours(dir: &Path, dev: &str) -> bool {
    mountinfo::mount_at(dir).is_some_and(|e| e.dev == dev && e.fstype == FSTYPE)
}

/// Who may use the mount (fuser enforces "root and owner" itself; the
/// kernel only knows allow_other).
fn acl(cfg: &MountConfig) -> SessionACL {
    if cfg.allow_other {
        SessionACL::All
    } else if cfg.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    }
}

/// The source shown in /proc/mounts: `fsname=`, or the image's full path.
fn source(image: &Path, cfg: &MountConfig) -> PathBuf {
    match &cfg.fsname {
        Some(name) => PathBuf::from(name),
        None => image.canonicalize().unwrap_or_else(|_| image.to_path_buf()),
    }
}

/// mount(2) flags: nosuid and nodev unless asked otherwise, as fusermount3
/// does.
fn flags(cfg: &MountConfig) -> MsFlags {
    let mut f = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    f.set(MsFlags::MS_RDONLY, cfg.read_only);
    for flag in &cfg.kernel_flags {
        match flag.as_str() {
            "suid" => f.remove(MsFlags::MS_NOSUID),
            "nosuid" => f.insert(MsFlags::MS_NOSUID),
            "dev" => f.remove(MsFlags::MS_NODEV),
            "nodev" => f.insert(MsFlags::MS_NODEV),
            "exec" => f.remove(MsFlags::MS_NOEXEC),
            "noexec" => f.insert(MsFlags::MS_NOEXEC),
            "sync" => f.insert(MsFlags::MS_SYNCHRONOUS),
            "async" => f.remove(MsFlags::MS_SYNCHRONOUS),
            _ => f.insert(MsFlags::MS_DIRSYNC),
        }
    }
    f
}

/// Mounts with mount(2); `None` if this process may not (it may not open
/// /dev/fuse or call mount(2): fusermount3 can).
fn mount_direct(
    image: &Path,
    mountpoint: &Path,
    cfg: &MountConfig,
) -> io::Result<Option<(OwnedFd, PathBuf)>> {
    let dir = mountpoint.canonicalize()?;
    let root_mode = std::fs::metadata(&dir)?.permissions().mode();
    let dev_fuse = match File::options().read(true).write(true).open("/dev/fuse") {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut data = format!(
        "fd={},rootmode={root_mode:o},user_id={},group_id={}",
        dev_fuse.as_raw_fd(),
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    if cfg.default_permissions {
        data.push_str(",default_permissions");
    }
    if acl(cfg) != SessionACL::Owner {
        data.push_str(",allow_other");
    }
    let src = source(image, cfg);
    match nix::mount::mount(
        Some(src.as_path()),
        dir.as_path(),
        Some(FSTYPE),
        flags(cfg),
        Some(data.as_str()),
    ) {
        Ok(()) => Ok(Some((OwnedFd::from(dev_fuse), dir))),
        Err(nix::errno::Errno::EPERM) => Ok(None),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Threads serving FUSE requests: two a core, at least four. Reads do
/// their device I/O outside the filesystem's lock, so several can wait on
/// the disk at once while another request runs; and a rename that has the
/// kernel write a file's cached pages back waits for other threads to
/// serve those writes.
fn worker_threads() -> usize {
    let cores = thread::available_parallelism().map_or(2, usize::from);
    (2 * cores).max(4)
}

/// The FUSE session settings; with `fusermount`, also the mount options
/// fusermount3 needs.
fn session_config(image: &Path, cfg: &MountConfig, fusermount: bool) -> Config {
    let mut c = Config::default();
    c.acl = acl(cfg);
    c.n_threads = Some(worker_threads());
    if !fusermount {
        return c;
    }
    let opts = &mut c.mount_options;
    opts.push(MountOption::FSName(
        source(image, cfg).display().to_string(),
    ));
    opts.push(MountOption::Subtype("pagelog".into()));
    if cfg.default_permissions {
        opts.push(MountOption::DefaultPermissions);
    }
    opts.push(if cfg.read_only {
        MountOption::RO
    } else {
        MountOption::RW
    });
    for f in &cfg.kernel_flags {
        opts.push(match f.as_str() {
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
    c
}

/// Mounts `image` on `mountpoint` as `fuse.pagelog` and starts the FUSE
/// session for `adapter` (the kernel's INIT is answered before this
/// returns).
pub fn mount(
    adapter: Adapter,
    image: &Path,
    mountpoint: &Path,
    cfg: &MountConfig,
) -> io::Result<(Session<Adapter>, Unmounter)> {
    let Some((fd, dir)) = mount_direct(image, mountpoint, cfg)? else {
        let mut session = Session::new(adapter, mountpoint, &session_config(image, cfg, true))?;
        let unmounter = Unmounter::Fusermount(session.unmount_callable());
        return Ok((session, unmounter));
    };
    let dev = mountinfo::mount_at(&dir).map(|e| e.dev).unwrap_or_default();
    let unmounter = Unmounter::Direct { dir, dev };
    match Session::from_fd(adapter, fd, acl(cfg), session_config(image, cfg, false)) {
        Ok(session) => Ok((session, unmounter)),
        Err(e) => {
            unmounter.detach_leftover();
            Err(e)
        }
    }
}
