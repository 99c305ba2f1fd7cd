//! zstd compression (the `zstd` crate, one frame per unit).

use std::cell::RefCell;

use ::zstd::bulk::{Compressor, Decompressor};

use super::{StageId, Transform};
use crate::error::{Error, Result};
use crate::ids::PageAddr;

/// zstd at a level from 1 to 19.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zstd {
    level: i32,
}

impl Zstd {
    /// zstd's id.
    pub const ID: StageId = StageId(1);
    /// The level without one given: zstd's own default, a good balance of
    /// speed and ratio.
    pub const DEFAULT_LEVEL: i32 = 3;

    /// zstd at `level` (1 to 19).
    pub fn new(level: i32) -> Result<Zstd> {
        if !(1..=19).contains(&level) {
            return Err(Error::Refused(format!("zstd level {level}: from 1 to 19")));
        }
        Ok(Zstd { level })
    }

    /// From an option's argument: empty for the default level, or a level.
    pub fn from_arg(arg: &str) -> Result<Zstd> {
        if arg.is_empty() {
            return Zstd::new(Self::DEFAULT_LEVEL);
        }
        let level = arg.parse().map_err(|_| {
            Error::Refused(format!("zstd:{arg}: the level is a number from 1 to 19"))
        })?;
        Zstd::new(level)
    }

    /// From the parameter bytes an image records (one byte, the level).
    pub fn from_params(params: &[u8]) -> Result<Zstd> {
        match params {
            [level] => Zstd::new(i32::from(*level)),
            _ => Err(Error::corrupt(
                "zstd parameters",
                PageAddr::NONE,
                format!("{} bytes, 1 expected", params.len()),
            )),
        }
    }
}

thread_local! {
    /// Each thread's compression context, and the level it is set to:
    /// making one costs more than compressing a cluster.
    static COMPRESSOR: RefCell<Option<(i32, Compressor<'static>)>> = const { RefCell::new(None) };
    /// Each thread's context for [`looks_incompressible`] (level 1).
    static PROBE: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    /// Each thread's decompression context.
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Does `page` look like data no compressor will shrink by a page in its
/// cluster? zstd's fastest level, on its first kilobyte alone, saves less
/// than a sixteenth of it: what is already compressed or encrypted.
/// Costs a small part of compressing the cluster, so that a cluster that
/// saves no page is stored raw cheaply.
pub fn looks_incompressible(page: &[u8]) -> bool {
    let sample = &page[..page.len().min(1024)];
    let mut probe = Vec::with_capacity(::zstd::zstd_safe::compress_bound(sample.len()));
    let len = PROBE.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = match &mut *c {
            Some(ctx) => ctx,
            none => none.insert(Compressor::new(1)?),
        };
        ctx.compress_to_buffer(sample, &mut probe)
    });
    // A probe that fails says nothing: compress and see.
    len.is_ok_and(|n| n > sample.len() - sample.len() / 16)
}

/// `bytes` after what `out` holds (no copy when it holds nothing).
fn append(out: &mut Vec<u8>, bytes: Vec<u8>) {
    if out.is_empty() {
        *out = bytes;
    } else {
        out.extend_from_slice(&bytes);
    }
}

fn failed(what: &str, e: std::io::Error) -> Error {
    Error::corrupt("zstd frame", PageAddr::NONE, format!("{what}: {e}"))
}

impl Transform for Zstd {
    fn id(&self) -> StageId {
        Self::ID
    }

    fn name(&self) -> &str {
        "zstd"
    }

    fn spec(&self) -> String {
        format!("zstd:{}", self.level)
    }

    fn params(&self) -> Vec<u8> {
        // 1 to 19 fits a byte.
        vec![self.level as u8]
    }

    fn apply(&self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut frame = Vec::with_capacity(::zstd::zstd_safe::compress_bound(input.len()));
        COMPRESSOR
            .with(|c| {
                let mut c = c.borrow_mut();
                let (level, ctx) = match &mut *c {
                    Some(pair) => pair,
                    none => none.insert((self.level, Compressor::new(self.level)?)),
                };
                if *level != self.level {
                    ctx.set_compression_level(self.level)?;
                    *level = self.level;
                }
                ctx.compress_to_buffer(input, &mut frame)
            })
            .map_err(|e| failed("compress", e))?;
        append(out, frame);
        Ok(())
    }

    fn undo(&self, stored: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<()> {
        if stored.is_empty() {
            // Even the frame of nothing has a header.
            return Err(failed("decompress", std::io::Error::other("no frame")));
        }
        let mut data = Vec::with_capacity(max_len);
        DECOMPRESSOR
            .with(|d| {
                let mut d = d.borrow_mut();
                let ctx = match &mut *d {
                    Some(ctx) => ctx,
                    none => none.insert(Decompressor::new()?),
                };
                ctx.decompress_to_buffer(stored, &mut data)
            })
            .map_err(|e| failed("decompress", e))?;
        append(out, data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn noise_looks_incompressible_and_text_does_not() {
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(looks_incompressible(&noise));
        let text: Vec<u8> = b"a log of pages "
            .iter()
            .copied()
            .cycle()
            .take(4096)
            .collect();
        assert!(!looks_incompressible(&text));
    }

    #[test]
    fn levels_are_checked() {
        assert!(Zstd::from_arg("").is_ok());
        assert!(Zstd::from_arg("19").is_ok());
        assert!(Zstd::from_arg("0").is_err());
        assert!(Zstd::from_arg("20").is_err());
        assert!(Zstd::from_arg("x").is_err());
        assert!(Zstd::from_params(&[]).is_err());
        assert!(Zstd::from_params(&[3, 4]).is_err());
    }

    #[test]
    fn truncated_and_flipped_frames_are_errors() {
        let z = Zstd::new(3).expect("zstd");
        let data: Vec<u8> = (0..16384u32).map(|i| (i / 7) as u8).collect();
        let mut stored = Vec::new();
        z.apply(&data, &mut stored).expect("apply");
        for cut in [0, 1, stored.len() / 2, stored.len() - 1] {
            let mut out = Vec::new();
            assert!(
                z.undo(&stored[..cut], data.len(), &mut out).is_err(),
                "cut at {cut}"
            );
        }
        // A frame that inflates past what the reader expects is refused.
        let mut out = Vec::new();
        assert!(z.undo(&stored, data.len() - 1, &mut out).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(any::<u8>(), 0..20000), level in 1i32..6) {
            let z = Zstd::new(level).expect("zstd");
            let mut stored = Vec::new();
            z.apply(&data, &mut stored).expect("apply");
            let mut out = Vec::new();
            z.undo(&stored, data.len(), &mut out).expect("undo");
            prop_assert_eq!(out, data);
        }

        #[test]
        fn any_bytes_decode_to_an_error_or_at_most_the_bound(
            junk in proptest::collection::vec(any::<u8>(), 0..5000),
            flip in any::<usize>(),
        ) {
            let z = Zstd::new(3).expect("zstd");
            let mut stored = Vec::new();
            z.apply(&junk, &mut stored).expect("apply");
            let i = flip % stored.len();
            stored[i] ^= 0x5a;
            let mut out = Vec::new();
            if z.undo(&stored, 16384, &mut out).is_ok() {
                prop_assert!(out.len() <= 16384);
            }
            let mut out = Vec::new();
            if z.undo(&junk, 16384, &mut out).is_ok() {
                prop_assert!(out.len() <= 16384);
            }
        }
    }
}
