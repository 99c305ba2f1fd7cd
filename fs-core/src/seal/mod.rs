//! Sealing: authenticated encryption (XChaCha20-Poly1305) of everything a
//! sealed volume stores but its superblock.
//!
//! A sealed thing is encrypted in place (its length does not change) and
//! its tag is kept apart: in the page address table entry of a unit, in
//! the clear head of a table page, summary or checkpoint. The nonce is
//! the seal number (a volume-wide counter that never repeats, below the
//! superblock's seal lease), the mount salt and the domain; the binding
//! (associated data) says where the thing belongs, so a thing moved,
//! swapped or replayed elsewhere fails its tag. FORMAT.md, "Sealing",
//! gives the nonce-uniqueness argument.

pub mod keys;
pub mod passphrase;

use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};
use crate::ids::PageAddr;
pub use crate::seal_info::SealInfo;
pub use keys::MasterKey;

/// Exit status of every pagelog tool when the passphrase is wrong
/// (sysexits' EX_NOPERM): distinct from every other failure, so that a
/// script can ask again.
pub const EXIT_WRONG_PASSPHRASE: u8 = 77;

/// Seal numbers a read-write mount takes for itself: its lease. At one
/// seal per 4 KiB this is 4 PiB of writing per mount, and 2^24 read-write
/// mounts exhaust the 64-bit counter; a mount that uses its lease up
/// refuses further writes rather than repeat a number.
pub const LEASE: u64 = 1 << 40;

/// What a seal protects: part of the nonce, so that two kinds of thing
/// never share one even if their seal numbers met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A unit: file data, a node, a node address table page, a deadlist page.
    Unit = 1,
    /// A page of a current-only table (usage, page address, checkpoint list).
    TablePage = 2,
    /// The sealed part of a record summary.
    Summary = 3,
    /// The sealed part of a checkpoint.
    Checkpoint = 4,
}

/// Seals and opens with one volume's sealing key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    uuid: [u8; 16],
    salt: [u8; 8],
    next: AtomicU64,
    /// Seal numbers at or above this are not this mount's (0: a mount
    /// that only opens).
    end: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("next", &self.next.load(Ordering::Relaxed))
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for filesystem `uuid` that only opens (a read-only mount,
    /// a check).
    pub fn reader(key: &MasterKey, uuid: [u8; 16]) -> Sealer {
        let k = key.derive(&uuid, "pagelog sealing key v1");
        Sealer {
            cipher: XChaCha20Poly1305::new((&*k).into()),
            uuid,
            salt: [0; 8],
            next: AtomicU64::new(0),
            end: 0,
        }
    }

    /// A sealer that also seals, with seal numbers from `start` (the
    /// superblock's lease, which the caller has raised to `start + LEASE`
    /// durably before anything is sealed) and a fresh mount salt.
    pub fn writer(key: &MasterKey, uuid: [u8; 16], start: u64) -> Result<Sealer> {
        Sealer::reader(key, uuid).for_writing(start)
    }

    /// The lease end a writer needs durable before it seals.
    pub fn lease_end(&self) -> u64 {
        self.end
    }

    fn nonce(seal: u64, salt: &[u8; 8], domain: Domain) -> [u8; 24] {
        let mut n = [0u8; 24];
        n[..8].copy_from_slice(&seal.to_le_bytes());
        n[8..16].copy_from_slice(salt);
        n[16..].copy_from_slice(&(domain as u64).to_le_bytes());
        n
    }

    fn binding(&self, domain: Domain, parts: &[u64]) -> Vec<u8> {
        let mut ad = Vec::with_capacity(24 + 8 * parts.len());
        ad.extend_from_slice(&self.uuid);
        ad.extend_from_slice(&(domain as u64).to_le_bytes());
        for p in parts {
            ad.extend_from_slice(&p.to_le_bytes());
        }
        ad
    }

    /// Seals `buf` in place as a thing of `domain` that belongs where
    /// `bound` says (numbers the reader knows before opening it).
    pub fn seal(&self, domain: Domain, bound: &[u64], buf: &mut [u8]) -> Result<SealInfo> {
        let seal = self.next.fetch_add(1, Ordering::Relaxed);
        if seal >= self.end {
            return Err(Error::Refused(if self.end == 0 {
                "this mount cannot seal: it was opened to read only".into()
            } else {
                "this mount used up its seal lease; remount to continue writing".into()
            }));
        }
        let nonce = Sealer::nonce(seal, &self.salt, domain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &self.binding(domain, bound),
                buf,
            )
            .map_err(|_| Error::Refused("sealing failed: the buffer is too large".into()))?;
        Ok(SealInfo {
            seal,
            salt: self.salt,
            tag: tag.into(),
        })
    }

    /// Opens `buf` in place, sealed as `info` says for (`domain`,
    /// `bound`). A thing tampered with, or read from where it does not
    /// belong, is a `Corrupt` error naming `what` at `addr`; `buf` is then
    /// left as it was.
    pub fn open(
        &self,
        domain: Domain,
        bound: &[u64],
        info: &SealInfo,
        buf: &mut [u8],
        (what, addr): (&dyn Fn() -> String, PageAddr),
    ) -> Result<()> {
        let nonce = Sealer::nonce(info.seal, &info.salt, domain);
        self.cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &self.binding(domain, bound),
                buf,
                Tag::from_slice(&info.tag),
            )
            .map_err(|_| {
                Error::corrupt(
                    what(),
                    addr,
                    "does not authenticate: changed, moved or replayed from elsewhere (or the wrong key)",
                )
            })
    }
}

/// The master key of the filesystem on `dev`, if it is sealed: the
/// passphrase is read from `source` (only then), and unwraps the key slot
/// of the newest valid superblock copy (or, after a passphrase change cut
/// short by a crash, the other's). Nothing is written. A passphrase that
/// opens no slot is [`Error::WrongPassphrase`]. A device whose
/// superblocks cannot be read gives no key: what reads it next (recovery,
/// the checker) says what is wrong with it.
pub fn unlock(
    dev: &dyn crate::device::BlockDevice,
    source: &passphrase::Source,
) -> Result<Option<MasterKey>> {
    let copies = sealed_copies(dev);
    let sealed: Vec<_> = copies.iter().collect();
    let Some(newest) = sealed.first() else {
        return Ok(None);
    };
    let label = match newest.label_text() {
        l if l.is_empty() => newest.uuid_text(),
        l => format!("{l} ({})", newest.uuid_text()),
    };
    let pass = source.read(&format!("Passphrase for {label}: "), false)?;
    unwrap_any(&sealed, &pass).map(Some)
}

/// [`unlock`] with the passphrase given.
pub fn unlock_with(dev: &dyn crate::device::BlockDevice, pass: &[u8]) -> Result<Option<MasterKey>> {
    let copies = sealed_copies(dev);
    let sealed: Vec<_> = copies.iter().collect();
    if sealed.is_empty() {
        return Ok(None);
    }
    unwrap_any(&sealed, pass).map(Some)
}

/// The valid superblock copies of `dev` that are sealed, newest first
/// (none when they cannot be read).
fn sealed_copies(dev: &dyn crate::device::BlockDevice) -> Vec<crate::superblock::Superblock> {
    crate::recovery::read_superblocks(dev)
        .map(|(copies, _)| {
            copies
                .into_iter()
                .filter(|sb| sb.sealing.is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// The master key that `pass` unwraps from one of the slots of `copies`.
fn unwrap_any(copies: &[&crate::superblock::Superblock], pass: &[u8]) -> Result<MasterKey> {
    let mut tried = Vec::new();
    for sb in copies {
        let Some(sealing) = &sb.sealing else { continue };
        if tried.contains(&&sealing.slot) {
            continue;
        }
        tried.push(&sealing.slot);
        match keys::unwrap(&sealing.slot, pass, &sb.uuid) {
            Err(Error::WrongPassphrase) => continue,
            other => return other,
        }
    }
    Err(Error::WrongPassphrase)
}

/// Where a sealed page keeps what is sealed and its seal: the bytes of
/// `region` are sealed, the seal is at `at` (outside the region), and the
/// rest of the page stays in the clear (and is bound by the caller through
/// `bound` where it matters).
#[derive(Clone, Debug)]
pub struct PageSeal {
    /// What the seal protects (part of the nonce).
    pub domain: Domain,
    /// The sealed bytes.
    pub region: std::ops::Range<usize>,
    /// Offset of the 32-byte seal.
    pub at: usize,
}

impl Sealer {
    /// Seals `page` as `how` says, bound to `bound`.
    pub fn seal_page(&self, how: &PageSeal, bound: &[u64], page: &mut [u8]) -> Result<()> {
        let info = self.seal(how.domain, bound, &mut page[how.region.clone()])?;
        page[how.at..how.at + crate::seal_info::SIZE].copy_from_slice(&info.to_bytes());
        Ok(())
    }

    /// Opens `page`, sealed as `how` says and bound to `bound`; `what` and
    /// `addr` name it in the error when it does not authenticate.
    pub fn open_page(
        &self,
        how: &PageSeal,
        bound: &[u64],
        page: &mut [u8],
        (what, addr): (&dyn Fn() -> String, PageAddr),
    ) -> Result<()> {
        let info = SealInfo::from_bytes(&page[how.at..how.at + crate::seal_info::SIZE])?;
        self.open(
            how.domain,
            bound,
            &info,
            &mut page[how.region.clone()],
            (what, addr),
        )?;
        page[how.at..how.at + crate::seal_info::SIZE].fill(0);
        Ok(())
    }

    /// The same key for a read-write mount: seal numbers from `start`,
    /// and a fresh mount salt.
    pub fn for_writing(&self, start: u64) -> Result<Sealer> {
        let mut salt = [0u8; 8];
        keys::random_bytes(&mut salt)?;
        Ok(Sealer {
            cipher: self.cipher.clone(),
            uuid: self.uuid,
            salt,
            next: AtomicU64::new(start),
            end: start.saturating_add(LEASE),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Sealer {
        Sealer::writer(&MasterKey::from_bytes([3; 32]), [4; 16], 100).expect("sealer")
    }

    fn name() -> String {
        "thing".into()
    }

    #[test]
    fn opens_what_it_sealed_and_nothing_else() {
        let s = pair();
        let plain = b"hello, sealed world".to_vec();
        let mut buf = plain.clone();
        let info = s.seal(Domain::Unit, &[1, 2], &mut buf).expect("seal");
        assert_ne!(buf, plain);
        assert_eq!(info.seal, 100);
        let mut moved = buf.clone();
        let at = (&name as &dyn Fn() -> String, PageAddr(9));
        assert!(s
            .open(Domain::Unit, &[1, 3], &info, &mut moved, at)
            .is_err());
        assert!(s
            .open(Domain::TablePage, &[1, 2], &info, &mut moved, at)
            .is_err());
        let mut flipped = buf.clone();
        flipped[0] ^= 1;
        assert!(s
            .open(Domain::Unit, &[1, 2], &info, &mut flipped, at)
            .is_err());
        let mut truncated = buf[..buf.len() - 1].to_vec();
        assert!(s
            .open(Domain::Unit, &[1, 2], &info, &mut truncated, at)
            .is_err());
        let mut other_tag = buf.clone();
        let forged = SealInfo {
            tag: [0; 16],
            ..info
        };
        assert!(s
            .open(Domain::Unit, &[1, 2], &forged, &mut other_tag, at)
            .is_err());
        s.open(Domain::Unit, &[1, 2], &info, &mut buf, at)
            .expect("open");
        assert_eq!(buf, plain);
        let reader = Sealer::reader(&MasterKey::from_bytes([3; 32]), [4; 16]);
        let mut again = plain.clone();
        let info2 = s.seal(Domain::Unit, &[1, 2], &mut again).expect("seal");
        assert_eq!(info2.seal, 101, "every seal takes a new number");
        reader
            .open(Domain::Unit, &[1, 2], &info2, &mut again, at)
            .expect("open");
        assert!(
            reader.seal(Domain::Unit, &[], &mut [0u8; 4]).is_err(),
            "a reader never seals"
        );
    }

    #[test]
    fn another_key_does_not_open() {
        let s = pair();
        let mut buf = vec![7u8; 4096];
        let info = s.seal(Domain::Unit, &[5], &mut buf).expect("seal");
        let other = Sealer::reader(&MasterKey::from_bytes([9; 32]), [4; 16]);
        let at = (&name as &dyn Fn() -> String, PageAddr(1));
        assert!(other.open(Domain::Unit, &[5], &info, &mut buf, at).is_err());
    }
}
