//! The key slot of a sealed volume, in the superblock: the master key
//! wrapped (XChaCha20-Poly1305) under a key derived from the passphrase
//! with Argon2id, and the parameters that derivation needs.

use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::ids::PageAddr;

/// Bytes of an encoded key slot.
pub const SIZE: usize = 104;
/// Key derivation code: Argon2id, version 0x13.
pub const KDF_ARGON2ID: u8 = 1;
/// Bytes of a wrapped master key: 32 key bytes and a 16-byte tag.
pub const WRAPPED: usize = 48;

/// Byte offsets of the fields, from the slot's start.
pub mod off {
    pub const KDF: usize = 0;
    pub const KDF_VERSION: usize = 1;
    pub const MEM_KIB: usize = 4;
    pub const PASSES: usize = 8;
    pub const LANES: usize = 12;
    pub const SALT: usize = 16;
    pub const NONCE: usize = 32;
    pub const WRAPPED: usize = 56;
}

/// Argon2id's cost and salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, KiB.
    pub mem_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes (parallelism).
    pub lanes: u32,
    /// Random salt drawn when the slot is written.
    pub salt: [u8; 16],
}

/// A master key, wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySlot {
    /// How the wrapping key is derived from the passphrase.
    pub kdf: KdfParams,
    /// Nonce of the wrapping.
    pub nonce: [u8; 24],
    /// The master key sealed under the wrapping key, with its tag.
    pub wrapped: [u8; WRAPPED],
}

impl KeySlot {
    /// Writes the slot at `at`.
    pub fn encode(&self, w: &mut Writer<'_>, at: usize) {
        w.u8(at + off::KDF, KDF_ARGON2ID);
        w.u8(at + off::KDF_VERSION, 0x13);
        w.u32(at + off::MEM_KIB, self.kdf.mem_kib);
        w.u32(at + off::PASSES, self.kdf.passes);
        w.u32(at + off::LANES, self.kdf.lanes);
        w.bytes(at + off::SALT, &self.kdf.salt);
        w.bytes(at + off::NONCE, &self.nonce);
        w.bytes(at + off::WRAPPED, &self.wrapped);
    }

    /// Reads the slot at `at`, checking that its derivation is one this
    /// build knows and its costs are sane (so that a damaged slot cannot
    /// ask for terabytes of memory).
    pub fn decode(r: &Reader<'_>, at: usize) -> Result<KeySlot> {
        let (kdf, version) = (r.u8(at + off::KDF)?, r.u8(at + off::KDF_VERSION)?);
        r.check(kdf == KDF_ARGON2ID && version == 0x13, || {
            format!("key slot: unknown key derivation {kdf} version {version:#x}")
        })?;
        let params = KdfParams {
            mem_kib: r.u32(at + off::MEM_KIB)?,
            passes: r.u32(at + off::PASSES)?,
            lanes: r.u32(at + off::LANES)?,
            salt: r.bytes(at + off::SALT, 16)?.try_into().unwrap_or_default(),
        };
        r.check(params_sane(&params), || {
            format!(
                "key slot: Argon2id costs out of range (memory {} KiB, {} passes, {} lanes)",
                params.mem_kib, params.passes, params.lanes
            )
        })?;
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(r.bytes(at + off::NONCE, 24)?);
        let mut wrapped = [0u8; WRAPPED];
        wrapped.copy_from_slice(r.bytes(at + off::WRAPPED, WRAPPED)?);
        Ok(KeySlot {
            kdf: params,
            nonce,
            wrapped,
        })
    }
}

/// Costs a slot may ask for: 8 MiB to 4 GiB of memory, 1 to 64 passes, 1
/// to 16 lanes.
pub fn params_sane(p: &KdfParams) -> bool {
    (8 * 1024..=4 * 1024 * 1024).contains(&p.mem_kib)
        && (1..=64).contains(&p.passes)
        && (1..=16).contains(&p.lanes)
        && p.mem_kib >= 8 * p.lanes
}

/// Decodes a slot from a standalone buffer (tests, fuzzing).
pub fn from_bytes(bytes: &[u8]) -> Result<KeySlot> {
    KeySlot::decode(&Reader::new(bytes, "key slot", PageAddr::NONE), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_wild_costs() {
        let slot = KeySlot {
            kdf: KdfParams {
                mem_kib: 65536,
                passes: 3,
                lanes: 2,
                salt: [1; 16],
            },
            nonce: [2; 24],
            wrapped: [3; WRAPPED],
        };
        let mut buf = [0u8; SIZE];
        slot.encode(&mut Writer::new(&mut buf), 0);
        assert_eq!(from_bytes(&buf).expect("decode"), slot);
        let mut wild = buf;
        wild[off::MEM_KIB..off::MEM_KIB + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(from_bytes(&wild).is_err());
        let mut unknown = buf;
        unknown[off::KDF] = 9;
        assert!(from_bytes(&unknown).is_err());
    }
}
