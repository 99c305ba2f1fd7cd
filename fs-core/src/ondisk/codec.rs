//! Little-endian field access over byte buffers.
//!
//! Every on-disk structure is decoded through [`Reader`], whose reads are
//! bounds-checked and return a corruption error naming the structure and the
//! page it came from; encoders write through [`Writer`] at named offsets.

use crate::error::{Error, Result};
use crate::ids::PageAddr;

/// Bounds-checked little-endian reads from a buffer that came from disk.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
    addr: PageAddr,
}

impl<'a> Reader<'a> {
    /// Reads from `buf`, which holds `what` read at `addr` (for error messages).
    pub fn new(buf: &'a [u8], what: &'static str, addr: PageAddr) -> Self {
        Reader { buf, what, addr }
    }

    /// The corruption error for this structure.
    pub fn corrupt(&self, detail: impl Into<String>) -> Error {
        Error::corrupt(self.what, self.addr, detail)
    }

    /// A reader over the `len` bytes at `off`, holding `what` (a record
    /// packed inside a page, read with offsets relative to its start).
    pub fn sub(&self, off: usize, len: usize, what: &'static str) -> Result<Reader<'a>> {
        Ok(Reader::new(self.bytes(off, len)?, what, self.addr))
    }

    /// `len` bytes at `off`.
    #[inline]
    pub fn bytes(&self, off: usize, len: usize) -> Result<&'a [u8]> {
        match off.checked_add(len).and_then(|end| self.buf.get(off..end)) {
            Some(b) => Ok(b),
            None => Err(self.out_of_bounds(off, len)),
        }
    }

    // Decoding is the hot loop of a check: the accessors inline, and the
    // error (which formats and allocates) stays out of line.
    #[cold]
    #[inline(never)]
    fn out_of_bounds(&self, off: usize, len: usize) -> Error {
        self.corrupt(format!("field at offset {off} (+{len}) out of bounds"))
    }

    #[inline]
    fn array<const N: usize>(&self, off: usize) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(off, N)?);
        Ok(out)
    }

    /// The byte at `off`.
    #[inline]
    pub fn u8(&self, off: usize) -> Result<u8> {
        Ok(self.array::<1>(off)?[0])
    }
    /// A little-endian u16 at `off`.
    #[inline]
    pub fn u16(&self, off: usize) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(off)?))
    }
    /// A little-endian u32 at `off`.
    #[inline]
    pub fn u32(&self, off: usize) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(off)?))
    }
    /// A little-endian u64 at `off`.
    #[inline]
    pub fn u64(&self, off: usize) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(off)?))
    }
    /// A little-endian i64 at `off`.
    #[inline]
    pub fn i64(&self, off: usize) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(off)?))
    }
    /// A page address at `off`.
    #[inline]
    pub fn addr(&self, off: usize) -> Result<PageAddr> {
        Ok(PageAddr(self.u64(off)?))
    }
    /// Fails with a corruption error unless `cond` holds.
    #[inline]
    pub fn check(&self, cond: bool, detail: impl FnOnce() -> String) -> Result<()> {
        if cond {
            Ok(())
        } else {
            Err(self.corrupt(detail()))
        }
    }
}

/// Little-endian writes at fixed offsets into a buffer being encoded.
///
/// Offsets come from this crate's layout constants, never from disk; an
/// out-of-range write is a bug, caught by the golden-bytes tests.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
}

impl<'a> Writer<'a> {
    /// Writes into `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf }
    }

    /// A writer over the `len` bytes at `off` (a record packed inside a
    /// page, written with offsets relative to its start).
    pub fn sub(&mut self, off: usize, len: usize) -> Writer<'_> {
        let end = (off + len).min(self.buf.len());
        debug_assert!(
            off + len <= self.buf.len(),
            "sub-writer out of bounds at {off}+{len}"
        );
        Writer::new(&mut self.buf[off.min(end)..end])
    }

    /// Copies `src` to `off`.
    pub fn bytes(&mut self, off: usize, src: &[u8]) {
        match self.buf.get_mut(off..off + src.len()) {
            Some(dst) => dst.copy_from_slice(src),
            None => debug_assert!(false, "encode out of bounds at {off}+{}", src.len()),
        }
    }
    /// A byte at `off`.
    pub fn u8(&mut self, off: usize, v: u8) {
        self.bytes(off, &[v]);
    }
    /// A little-endian u16 at `off`.
    pub fn u16(&mut self, off: usize, v: u16) {
        self.bytes(off, &v.to_le_bytes());
    }
    /// A little-endian u32 at `off`.
    pub fn u32(&mut self, off: usize, v: u32) {
        self.bytes(off, &v.to_le_bytes());
    }
    /// A little-endian u64 at `off`.
    pub fn u64(&mut self, off: usize, v: u64) {
        self.bytes(off, &v.to_le_bytes());
    }
    /// A little-endian i64 at `off`.
    pub fn i64(&mut self, off: usize, v: i64) {
        self.bytes(off, &v.to_le_bytes());
    }
    /// A page address at `off`.
    pub fn addr(&mut self, off: usize, v: PageAddr) {
        self.u64(off, v.0);
    }
}

/// CRC-32/IEEE (the `crc32fast` polynomial) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// CRC-32 of `data` computed as if the 4 bytes at `skip` were zero: the
/// checksum of a structure that stores its own checksum at `skip`.
pub fn crc32_skipping(data: &[u8], skip: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let (head, rest) = data.split_at(skip.min(data.len()));
    h.update(head);
    if rest.len() >= 4 {
        h.update(&[0u8; 4]);
        h.update(rest.get(4..).unwrap_or(&[]));
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_out_of_bounds() {
        let buf = [1u8, 2, 3];
        let r = Reader::new(&buf, "test", PageAddr(7));
        assert_eq!(r.u16(0).ok(), Some(0x0201));
        let err = r.u32(0).unwrap_err();
        assert!(matches!(
            err,
            Error::Corrupt {
                addr: PageAddr(7),
                ..
            }
        ));
        assert!(r.bytes(usize::MAX, 2).is_err());
    }

    #[test]
    fn crc_skipping_equals_crc_of_zeroed_field() {
        let mut buf = [7u8; 32];
        buf[8..12].copy_from_slice(&[9, 9, 9, 9]);
        let mut zeroed = buf;
        zeroed[8..12].fill(0);
        assert_eq!(crc32_skipping(&buf, 8), crc32(&zeroed));
    }
}
