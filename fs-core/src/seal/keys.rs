//! Keys of a sealed volume: a random master key, wrapped in the superblock
//! under a key derived from the passphrase with Argon2id, and the sealing
//! key derived from the master key with HKDF-SHA256. Every secret lives
//! in a buffer that is zeroed when dropped.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRngCore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key_slot::{KdfParams, KeySlot, WRAPPED};

/// Bytes of every key.
pub const KEY_BYTES: usize = 32;

/// Argon2id costs used when nothing else is asked: 256 MiB, 4 passes, 2
/// lanes, about one second on the 2-core machine this was tuned on
/// (README, "Encryption", gives the measurement and how to redo it).
pub const DEFAULT_KDF: (u32, u32, u32) = (256 * 1024, 4, 2);

/// The volume's master key.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_BYTES]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    rand::rngs::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::Io(std::io::Error::other(format!("random source: {e}"))))
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<MasterKey> {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        random_bytes(&mut key[..])?;
        Ok(MasterKey(key))
    }

    /// The key from raw bytes (tests).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A subkey for `purpose`, bound to the filesystem `uuid`
    /// (HKDF-SHA256: the master key never seals anything itself).
    pub fn derive(&self, uuid: &[u8; 16], purpose: &str) -> Zeroizing<[u8; KEY_BYTES]> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(uuid), &self.0[..]);
        let mut out = Zeroizing::new([0u8; KEY_BYTES]);
        // 32 bytes is far below HKDF-SHA256's limit of 8160: cannot fail.
        let _ = hk.expand(purpose.as_bytes(), &mut out[..]);
        out
    }
}

/// New Argon2id parameters with a fresh salt: `cost` is (memory KiB,
/// passes, lanes), [`DEFAULT_KDF`] unless asked otherwise.
pub fn kdf_params(cost: (u32, u32, u32)) -> Result<KdfParams> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let p = KdfParams {
        mem_kib: cost.0,
        passes: cost.1,
        lanes: cost.2,
        salt,
    };
    if !crate::key_slot::params_sane(&p) {
        return Err(Error::Refused(format!(
            "Argon2id costs out of range: memory {} KiB (8 MiB to 4 GiB), {} passes (1 to 64), {} lanes (1 to 16)",
            p.mem_kib, p.passes, p.lanes
        )));
    }
    Ok(p)
}

/// The key that wraps the master key: Argon2id of the passphrase.
fn wrapping_key(passphrase: &[u8], p: &KdfParams) -> Result<Zeroizing<[u8; KEY_BYTES]>> {
    let params = argon2::Params::new(p.mem_kib, p.passes, p.lanes, Some(KEY_BYTES))
        .map_err(|e| Error::Refused(format!("Argon2id parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; KEY_BYTES]);
    argon
        .hash_password_into(passphrase, &p.salt, &mut out[..])
        .map_err(|e| Error::Refused(format!("Argon2id: {e}")))?;
    Ok(out)
}

/// What the wrapping binds the slot to: the filesystem and the costs (a
/// slot copied to another filesystem, or given cheaper costs, does not
/// open).
fn slot_binding(uuid: &[u8; 16], p: &KdfParams) -> Vec<u8> {
    let mut ad = b"pagelog key slot v1".to_vec();
    ad.extend_from_slice(uuid);
    for v in [p.mem_kib, p.passes, p.lanes] {
        ad.extend_from_slice(&v.to_le_bytes());
    }
    ad.extend_from_slice(&p.salt);
    ad
}

/// Wraps `key` under `passphrase` with the costs `kdf`, for filesystem
/// `uuid`.
pub fn wrap(
    key: &MasterKey,
    passphrase: &[u8],
    kdf: KdfParams,
    uuid: &[u8; 16],
) -> Result<KeySlot> {
    let wk = wrapping_key(passphrase, &kdf)?;
    let mut nonce = [0u8; 24];
    random_bytes(&mut nonce)?;
    let mut wrapped = Zeroizing::new([0u8; WRAPPED]);
    wrapped[..KEY_BYTES].copy_from_slice(&key.0[..]);
    let cipher = XChaCha20Poly1305::new((&*wk).into());
    let tag = cipher
        .encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            &slot_binding(uuid, &kdf),
            &mut wrapped[..KEY_BYTES],
        )
        .map_err(|_| Error::Refused("wrapping the master key failed".into()))?;
    wrapped[KEY_BYTES..].copy_from_slice(&tag);
    Ok(KeySlot {
        kdf,
        nonce,
        wrapped: *wrapped,
    })
}

/// A new master key and its slot: what mkfs needs to seal a volume.
#[derive(Clone, Debug)]
pub struct KeySetup {
    /// The key.
    pub key: MasterKey,
    /// The key wrapped under the passphrase.
    pub slot: KeySlot,
}

/// Draws a master key for filesystem `uuid` and wraps it under
/// `passphrase` with Argon2id costs `cost` (memory KiB, passes, lanes).
pub fn setup(passphrase: &[u8], cost: (u32, u32, u32), uuid: &[u8; 16]) -> Result<KeySetup> {
    let key = MasterKey::generate()?;
    let slot = wrap(&key, passphrase, kdf_params(cost)?, uuid)?;
    Ok(KeySetup { key, slot })
}

/// Unwraps the master key from `slot` with `passphrase`: a wrong
/// passphrase (or a damaged slot) fails the tag, and is
/// [`Error::WrongPassphrase`].
pub fn unwrap(slot: &KeySlot, passphrase: &[u8], uuid: &[u8; 16]) -> Result<MasterKey> {
    let wk = wrapping_key(passphrase, &slot.kdf)?;
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    key.copy_from_slice(&slot.wrapped[..KEY_BYTES]);
    let tag = chacha20poly1305::Tag::from_slice(&slot.wrapped[KEY_BYTES..]);
    XChaCha20Poly1305::new((&*wk).into())
        .decrypt_in_place_detached(
            XNonce::from_slice(&slot.nonce),
            &slot_binding(uuid, &slot.kdf),
            &mut key[..],
            tag,
        )
        .map_err(|_| Error::WrongPassphrase)?;
    Ok(MasterKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        kdf_params((8 * 1024, 1, 1)).expect("params")
    }

    #[test]
    fn wraps_and_unwraps_only_with_the_passphrase_and_filesystem() {
        let key = MasterKey::generate().expect("key");
        let uuid = [5u8; 16];
        let slot = wrap(&key, b"correct horse", cheap(), &uuid).expect("wrap");
        let back = unwrap(&slot, b"correct horse", &uuid).expect("unwrap");
        assert_eq!(&back.0[..], &key.0[..]);
        assert!(matches!(
            unwrap(&slot, b"wrong", &uuid),
            Err(Error::WrongPassphrase)
        ));
        assert!(matches!(
            unwrap(&slot, b"correct horse", &[6u8; 16]),
            Err(Error::WrongPassphrase)
        ));
        let mut cheaper = slot.clone();
        cheaper.kdf.passes += 1;
        assert!(matches!(
            unwrap(&cheaper, b"correct horse", &uuid),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn subkeys_differ_by_purpose_and_filesystem() {
        let key = MasterKey::from_bytes([1; 32]);
        let a = key.derive(&[0; 16], "a");
        assert_ne!(*a, *key.derive(&[0; 16], "b"));
        assert_ne!(*a, *key.derive(&[1; 16], "a"));
        assert_eq!(*a, *key.derive(&[0; 16], "a"));
    }
}
