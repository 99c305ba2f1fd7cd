//! Retained checkpoints mounted beside the live mount by the same daemon:
//! each is a FUSE session of its own, read-only, on a directory of its own,
//! serving a view of the one mounted filesystem (`pagelog_core`'s
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

/// One view mounted.
#[derive(Debug)]
struct Mounted {
    dir: PathBuf,
    id: ViewId,
    checkpoint: CheckpointNo,
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
    /// Which checkpoint.
    pub checkpoint: CheckpointNo,
}

impl ViewMounts {
    /// No views yet, for the live mount of `image` (mounted with `cfg`).
    pub fn new(shared: Arc<Shared>, image: &Path, cfg: &MountConfig) -> ViewMounts {
        let mut cfg = cfg.clone();
        cfg.read_only = true;
        cfg.at = None;
        ViewMounts {
            shared,
            image: image.canonicalize().unwrap_or_else(|_| image.to_path_buf()),
            cfg,
            mounted: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Mounts the retained checkpoint `at` names on `dir`, read-only.
    pub fn mount(&self, at: &At, dir: &Path) -> Result<CheckpointNo, String> {
        crate::daemon::check_mountpoint(dir)?;
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let (id, no) = self
            .shared
            .with(|fs| fs.open_view(at))
            .map_err(|e| e.to_string())?;
        let adapter = Adapter::for_view(self.shared.clone(), self.cfg.clone(), id);
        let (session, unmounter) = match kernel_mount::mount(adapter, &self.image, &dir, &self.cfg)
        {
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
            unmounter: unmounter.clone(),
        });
        log::info!("mounted checkpoint {no} read-only at {}", dir.display());
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
                fs.close_view(id);
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
            })
            .collect()
    }

    /// Unmounts every view (the live mount is ending); a busy one is
    /// detached, and its open files fail from then on.
    pub fn unmount_all(&self) {
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
            fs.close_view(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Mounted>> {
        self.mounted.lock().unwrap_or_else(|e| e.into_inner())
    }
}
