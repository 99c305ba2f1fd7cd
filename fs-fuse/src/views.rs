//! Retained checkpoints (read-only) and read-write branches mounted beside
//! the live mount by the same daemon: each is a FUSE session of its own,
//! on a directory of its own, serving a view of the one mounted filesystem (`pagelog_core`'s
//! `fs/views.rs`). One image, one lock, one daemon: a second process could
//! not open the image while the daemon holds it, and must not read pages
//! the daemon's cleaner is moving.
//!
//! A view mount ends like any mount (`umount DIR`), and then lets go of
//! its checkpoint; when the live mount ends, the views are unmounted first
//! (detached if busy).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use pagelog_core::checkpoints::At;
use pagelog_core::ids::CheckpointNo;
use pagelog_core::ViewId;

use crate::adapter::{Adapter, Shared};
use crate::kernel_mount::{self, Unmounter};
use crate::options::MountConfig;

/// What to mount beside the live mount.
#[derive(Clone, Debug)]
pub enum Target {
    /// A retained checkpoint, read-only.
    Past(At),
    /// A branch, read-write unless the mount is read-only.
    Branch(String),
}

/// One view mounted.
#[derive(Debug)]
struct Mounted {
    dir: PathBuf,
    id: ViewId,
    checkpoint: CheckpointNo,
    branch: Option<String>,
    unmounter: Arc<Mutex<Unmounter>>,
}

/// The views a daemon has mounted.
#[derive(Debug)]
pub struct ViewMounts {
    shared: Arc<Shared>,
    image: PathBuf,
    cfg: MountConfig,
    mounted: Arc<Mutex<Vec<Mounted>>>,
}

/// A mounted view, as listings show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewMount {
    /// Where.
    pub dir: PathBuf,
    /// Which checkpoint (a branch's origin).
    pub checkpoint: CheckpointNo,
    /// The branch, if it is one.
    pub branch: Option<String>,
}

impl ViewMounts {
    /// No views yet, for the live mount of `image` (mounted with `cfg`).
    pub fn new(shared: Arc<Shared>, image: &Path, cfg: &MountConfig) -> ViewMounts {
        let mut cfg = cfg.clone();
        cfg.at = None;
        cfg.branch = None;
        ViewMounts {
            shared,
            image: image.canonicalize().unwrap_or_else(|_| image.to_path_buf()),
            cfg,
            mounted: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Mounts `target` on `dir`. Returns the checkpoint it serves (a
    /// branch's origin).
    pub fn mount(&self, target: &Target, dir: &Path) -> Result<CheckpointNo, String> {
        crate::daemon::check_mountpoint(dir)?;
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cfg = self.cfg.clone();
        let opened = self.shared.with(|fs| match target {
            Target::Past(at) => fs.open_view(at),
            Target::Branch(name) => {
                let id = fs.open_branch(name.as_bytes())?;
                let no = fs.view_checkpoint(id).unwrap_or_default();
                Ok((id, no))
            }
        });
        let (id, no) = opened.map_err(|e| e.to_string())?;
        let branch = match target {
            Target::Past(_) => {
                cfg.read_only = true;
                None
            }
            Target::Branch(name) => Some(name.clone()),
        };
        let adapter = Adapter::for_view(self.shared.clone(), cfg.clone(), id);
        let (session, unmounter) = match kernel_mount::mount(adapter, &self.image, &dir, &cfg) {
            Ok(s) => s,
            Err(e) => {
                self.close(id);
                return Err(format!("cannot mount at {}: {e}", dir.display()));
            }
        };
        let unmounter = Arc::new(Mutex::new(unmounter));
        self.lock().push(Mounted {
            dir: dir.clone(),
            id,
            checkpoint: no,
            branch: branch.clone(),
            unmounter: unmounter.clone(),
        });
        match &branch {
            Some(name) => log::info!("mounted branch '{name}' at {}", dir.display()),
            None => log::info!("mounted checkpoint {no} read-only at {}", dir.display()),
        }
        let (shared, mounted) = (self.shared.clone(), self.mounted.clone());
        thread::spawn(move || {
            if let Err(e) = session.run() {
                log::error!("view of checkpoint {no} at {}: {e}", dir.display());
            }
            unmounter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .detach_leftover();
            // The session's end closed the view; if it ended otherwise,
            // close it here (closing twice does nothing).
            if let Some(fs) = shared.lock().as_mut() {
                if let Err(e) = fs.close_view(id) {
                    log::error!("closing the view at {}: {e}", dir.display());
                }
            }
            let mut list = mounted.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|m| m.id != id);
            log::info!("unmounted checkpoint {no} from {}", dir.display());
        });
        Ok(no)
    }

    /// The views mounted now.
    pub fn list(&self) -> Vec<ViewMount> {
        self.lock()
            .iter()
            .map(|m| ViewMount {
                dir: m.dir.clone(),
                checkpoint: m.checkpoint,
                branch: m.branch.clone(),
            })
            .collect()
    }

    /// Pushes the kernel's cached writes of every view to the daemon
    /// (syncfs on each view's directory).
    pub fn sync_all(&self) {
        use std::os::fd::AsRawFd;
        let dirs: Vec<PathBuf> = self.lock().iter().map(|m| m.dir.clone()).collect();
        for dir in dirs {
            if let Ok(d) = std::fs::File::open(&dir) {
                // SAFETY: syncfs on a descriptor this function owns.
                unsafe { libc::syncfs(d.as_raw_fd()) };
            }
        }
    }

    /// Unmounts every view (the live mount is ending), its cached writes
    /// pushed first; a busy one is detached, and its open files fail from
    /// then on.
    pub fn unmount_all(&self) {
        self.sync_all();
        let all: Vec<(PathBuf, Arc<Mutex<Unmounter>>)> = self
            .lock()
            .iter()
            .map(|m| (m.dir.clone(), m.unmounter.clone()))
            .collect();
        for (dir, unmounter) in all {
            let mut u = unmounter.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = u.unmount() {
                log::warn!("view at {} ({e}): detaching it", dir.display());
                u.detach_leftover();
            }
        }
    }

    fn close(&self, id: ViewId) {
        if let Some(fs) = self.shared.lock().as_mut() {
            if let Err(e) = fs.close_view(id) {
                log::error!("closing a view: {e}");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Mounted>> {
        self.mounted.lock().unwrap_or_else(|e| e.into_inner())
    }
}
