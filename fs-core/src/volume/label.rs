//! Changing the label of an unmounted filesystem, crash-safely. Only the
//! superblocks change: the copy recovery did not start from is rewritten
//! first, then the other, each with a higher generation than any before
//! and a flush after it. A crash before the first flush leaves the copy
//! recovery uses whole (the old label); after it, the rewritten copy is the
//! newest (the new label); a torn write fails its checksum and the other
//! copy is used. Both copies name the checkpoint they named before, so
//! recovery afterwards is exactly what it would have been.

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::layout::zero_page;
use crate::recovery::recover;
use crate::store::now_ns;
use crate::superblock::{Superblock, COPIES, LABEL_MAX};

/// Sets the label of the filesystem on `dev` (at most [`LABEL_MAX`]
/// bytes; empty clears it) and returns the superblock now on the device.
/// The caller makes sure nothing else uses the device (the image lock).
pub fn set_label(dev: &dyn BlockDevice, label: &[u8]) -> Result<Superblock> {
    if label.len() > LABEL_MAX {
        return Err(Error::BadGeometry(format!(
            "a label holds at most {LABEL_MAX} bytes, not {}",
            label.len()
        )));
    }
    // The state a mount would start from: its superblock is the one kept.
    let rec = recover(dev, true, None)?;
    let copies = read_copies(dev)?;
    let keep = copies
        .iter()
        .position(|c| c.as_ref() == Some(&rec.sb))
        .unwrap_or(0);
    let newest = copies
        .iter()
        .flatten()
        .map(|sb| sb.generation)
        .max()
        .unwrap_or(rec.sb.generation);
    let mut sb = rec.sb;
    sb.label = label.to_vec();
    // Copy k is written with generations of parity k (FORMAT.md).
    let first = 1 - keep;
    let mut generation = newest + 1;
    if generation % 2 != first as u64 {
        generation += 1;
    }
    for copy in [first, keep] {
        sb.generation = generation;
        sb.written_ns = now_ns();
        dev.write(COPIES[copy], &sb.encode(copy as u32)[..])?;
        dev.flush()?;
        generation += 1;
    }
    Ok(sb)
}

/// Both copies, each if valid.
fn read_copies(dev: &dyn BlockDevice) -> Result<[Option<Superblock>; 2]> {
    let mut out = [None, None];
    for (slot, addr) in out.iter_mut().zip(COPIES) {
        let mut page = zero_page();
        dev.read(addr, &mut page[..])?;
        *slot = Superblock::decode(&page[..], addr).ok();
    }
    Ok(out)
}
