//! The seal of one sealed thing (a unit, a table page, a record summary, a
//! checkpoint): the seal number and mount salt its nonce is built from, and
//! its Poly1305 tag. 32 bytes, kept beside the address of what it seals (a
//! unit's page address table entry) or in the clear head of the page
//! itself (table pages, summaries, checkpoints).

use crate::codec::{Reader, Writer};
use crate::error::Result;

/// Bytes of an encoded seal.
pub const SIZE: usize = 32;

/// Byte offsets of the fields.
pub mod off {
    pub const SEAL: usize = 0;
    pub const SALT: usize = 8;
    pub const TAG: usize = 16;
}

/// Nonce inputs and tag of one sealed thing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealInfo {
    /// The volume-wide seal number (never repeats: see the seal lease).
    pub seal: u64,
    /// The mount salt of the mount that sealed it.
    pub salt: [u8; 8],
    /// The Poly1305 tag over the sealed bytes and their binding.
    pub tag: [u8; 16],
}

impl SealInfo {
    /// Writes the seal at `at`.
    pub fn encode(&self, w: &mut Writer<'_>, at: usize) {
        w.u64(at + off::SEAL, self.seal);
        w.bytes(at + off::SALT, &self.salt);
        w.bytes(at + off::TAG, &self.tag);
    }

    /// Reads the seal at `at`.
    pub fn decode(r: &Reader<'_>, at: usize) -> Result<SealInfo> {
        let mut salt = [0u8; 8];
        salt.copy_from_slice(r.bytes(at + off::SALT, 8)?);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(r.bytes(at + off::TAG, 16)?);
        Ok(SealInfo {
            seal: r.u64(at + off::SEAL)?,
            salt,
            tag,
        })
    }

    /// The seal as bytes.
    pub fn to_bytes(&self) -> [u8; SIZE] {
        let mut out = [0u8; SIZE];
        self.encode(&mut Writer::new(&mut out), 0);
        out
    }

    /// The seal in `bytes` (at least [`SIZE`] long).
    pub fn from_bytes(bytes: &[u8]) -> Result<SealInfo> {
        SealInfo::decode(&Reader::new(bytes, "seal", crate::ids::PageAddr::NONE), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = SealInfo {
            seal: 0x0102_0304_0506_0708,
            salt: [9; 8],
            tag: [7; 16],
        };
        assert_eq!(SealInfo::from_bytes(&s.to_bytes()).expect("decode"), s);
        assert!(SealInfo::from_bytes(&[0u8; 8]).is_err());
    }
}
