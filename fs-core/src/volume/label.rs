//! Changing the label, or the key slot (a new passphrase), of an unmounted
//! filesystem, crash-safely. Only the superblocks change: the copy
//! recovery did not start from is rewritten
//! first, then the other, each with a higher generation than any before
//! and a flush after it. A crash before the first flush leaves the copy
//! recovery uses whole (the old label or slot); after it, the rewritten
//! copy is the newest (the new one); a torn write fails its checksum and
//! the other copy is used. Both copies name the checkpoint they named
//! before, so recovery afterwards is exactly what it would have been. (A
//! passphrase change cut short leaves one copy with each slot: unlocking
//! tries both, so either passphrase opens it until a mount rewrites both.)

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::layout::zero_page;
use crate::recovery::recover;
use crate::seal::MasterKey;
use crate::store::now_ns;
use crate::superblock::{Superblock, COPIES, LABEL_MAX};

/// Sets the label of the filesystem on `dev` (at most [`LABEL_MAX`]
/// bytes; empty clears it) and returns the superblock now on the device.
/// The caller makes sure nothing else uses the device (the image lock);
/// a sealed volume needs its `key` (recovery reads the checkpoint).
pub fn set_label(
    dev: &dyn BlockDevice,
    key: Option<&MasterKey>,
    label: &[u8],
) -> Result<Superblock> {
    if label.len() > LABEL_MAX {
        return Err(Error::BadGeometry(format!(
            "a label holds at most {LABEL_MAX} bytes, not {}",
            label.len()
        )));
    }
    rewrite(dev, key, |sb| sb.label = label.to_vec())
}

/// Wraps the master `key` of the sealed filesystem on `dev` under
/// `passphrase` (Argon2id with the costs the slot had, a new salt), and
/// writes the new slot in place of the old: O(1), nothing but the two
/// superblock copies is written. The caller makes sure nothing else uses
/// the device.
pub fn change_passphrase(
    dev: &dyn BlockDevice,
    key: &MasterKey,
    passphrase: &[u8],
) -> Result<Superblock> {
    let rec = recover(dev, true, Some(key))?;
    let Some(sealing) = &rec.sb.sealing else {
        return Err(Error::Refused(
            "the filesystem is not sealed: it has no passphrase".into(),
        ));
    };
    let k = &sealing.slot.kdf;
    let kdf = crate::seal::keys::kdf_params((k.mem_kib, k.passes, k.lanes))?;
    let slot = crate::seal::keys::wrap(key, passphrase, kdf, &rec.sb.uuid)?;
    rewrite(dev, Some(key), move |sb| {
        if let Some(s) = &mut sb.sealing {
            s.slot = slot;
        }
    })
}

/// Rewrites both superblock copies with `change` made, as the module says.
fn rewrite(
    dev: &dyn BlockDevice,
    key: Option<&MasterKey>,
    change: impl FnOnce(&mut Superblock),
) -> Result<Superblock> {
    // The state a mount would start from: its superblock is the one kept.
    let rec = recover(dev, true, key)?;
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
    change(&mut sb);
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
