//! What an administrator asks of an image (`pagelog-info`): the superblock
//! recovery would use and the usage the newest checkpoint records. Read
//! only, and without the image lock, so that it answers for a mounted
//! filesystem too (as of its last commit).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::device::BlockDevice;
use crate::error::Result;
use crate::ids::PageAddr;
use crate::recovery::recover;
use crate::store::Store;
use crate::superblock::Superblock;

/// An image described.
#[derive(Clone, Debug)]
pub struct Info {
    /// The superblock copy recovery starts from.
    pub sb: Superblock,
    /// The newest complete checkpoint.
    pub checkpoint: Checkpoint,
    /// Its page.
    pub checkpoint_addr: PageAddr,
    /// Log records after the superblock's checkpoint (a mount would
    /// replay them; 0 after a clean unmount).
    pub records_walked: u64,
    /// Pages users can fill in all (as `df` shows the size).
    pub capacity_pages: u64,
    /// Pages still free (as `df` shows them).
    pub free_pages: u64,
    /// What recovery met and worked around.
    pub notes: Vec<String>,
}

/// Where control sockets live.
pub const CONTROL_DIR: &str = "/run/pagelog";

/// The control socket of the daemon serving the filesystem with `uuid`
/// (`pagelog-mount` binds it; `pagelog-snapshot` connects to it).
pub fn control_socket(uuid: &[u8; 16]) -> PathBuf {
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    Path::new(CONTROL_DIR).join(format!("{hex}.sock"))
}

/// The UUID of the filesystem on `dev`, from its newest valid superblock
/// (no lock, no recovery: it never changes).
pub fn uuid(dev: &dyn BlockDevice) -> Result<[u8; 16]> {
    let (good, bad) = crate::recovery::read_superblocks(dev)?;
    good.first()
        .map(|sb| sb.uuid)
        .ok_or_else(|| crate::error::Error::corrupt("superblock", PageAddr::NONE, bad.join("; ")))
}

/// Describes the filesystem on `dev`, writing nothing (a sealed volume
/// needs its `key`).
pub fn read(dev: Arc<dyn BlockDevice>, key: Option<&crate::seal::MasterKey>) -> Result<Info> {
    let rec = recover(&*dev, false, key)?;
    let mut notes = rec.notes.clone();
    notes.extend(rec.rejected.iter().cloned());
    let (sb, checkpoint) = (rec.sb.clone(), rec.checkpoint.clone());
    let (checkpoint_addr, records_walked) = (rec.checkpoint_addr, rec.records_walked);
    // The space as the daemon counts it, from the same code.
    let store = Store::open_tables(dev, rec)?;
    Ok(Info {
        sb,
        checkpoint,
        checkpoint_addr,
        records_walked,
        capacity_pages: store.capacity_pages(),
        free_pages: store.free_pages(),
        notes,
    })
}
