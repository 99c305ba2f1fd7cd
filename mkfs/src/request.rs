//! What was asked, checked in full before any file is created or opened:
//! the size (from `--size` or mkfs(8)'s trailing SIZE), the segment size,
//! the label and the UUID.

use std::os::unix::ffi::OsStrExt;

use pagelog_core::chain_table::MAX_CLUSTER_PAGES;
use pagelog_core::format::{geometry, FormatOptions, DEFAULT_SEGMENT_PAGES};
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::size::parse_size;
use pagelog_core::superblock::{parse_uuid, LABEL_MAX};
use pagelog_core::transform::Registry;

use crate::error::{Error, Result};
use crate::Args;

/// A size asked for, with the words it was given in (for messages).
#[derive(Debug, Clone)]
pub struct Size {
    /// Bytes.
    pub bytes: u64,
    /// The argument as given, like `--size 1K` or `size 4G`.
    pub given: String,
}

/// Every argument, checked.
#[derive(Debug)]
pub struct Request {
    /// The size asked for, if any (otherwise the file's or device's).
    pub size: Option<Size>,
    /// What to write.
    pub format: FormatOptions,
}

impl Request {
    /// Checks every argument; touches no file.
    pub fn new(args: &Args) -> Result<Request> {
        let size = size(args.size.as_deref(), args.blocks.as_deref())?;
        let pages_per_segment = pages_per_segment(args.segment_size.as_deref())?;
        if let Some(s) = &size {
            check_fits(s.bytes, pages_per_segment, &s.given)?;
        }
        let label = args
            .label
            .as_deref()
            .map(|l| l.as_bytes().to_vec())
            .unwrap_or_default();
        if label.len() > LABEL_MAX {
            return Err(Error::Argument(format!(
                "label of {} bytes is longer than {LABEL_MAX}",
                label.len()
            )));
        }
        let mut format = FormatOptions {
            pages_per_segment,
            label,
            quota: !args.no_quota,
            ..FormatOptions::default()
        };
        if let Some(dir) = &args.modules {
            Registry::load(dir)
                .map_err(|e| Error::Argument(format!("--modules: {}", reason(e))))?;
        }
        if let Some(c) = &args.compress {
            // Refused here, by name, before any file is touched.
            let chain = Registry::global()
                .parse_chain(c)
                .map_err(|e| Error::Argument(format!("--compress {c}: {}", reason(e))))?;
            format.compress = chain.spec();
        }
        if let Some(c) = &args.cluster {
            format.cluster_pages = Some(cluster_pages(c)?);
        }
        if let Some(u) = &args.uuid {
            format.uuid = parse_uuid(u).ok_or_else(|| {
                Error::Argument(format!("--uuid {u}: not a UUID (32 hex digits)"))
            })?;
        }
        Ok(Request { size, format })
    }

    /// Reads the passphrase `args` name (asking twice on a terminal) and
    /// makes the master key and its slot (Argon2id: about a second).
    pub fn seal(&mut self, args: &Args) -> Result<()> {
        use pagelog_core::seal::{keys, passphrase::Source};
        let (mem, passes, lanes) = keys::DEFAULT_KDF;
        let mem = match &args.kdf_memory {
            Some(s) => {
                let size = given_size(s, 1, "--kdf-memory ", "like 256M")?;
                u32::try_from(size.bytes / 1024).unwrap_or(u32::MAX)
            }
            None => mem,
        };
        let cost = (mem, args.kdf_passes.unwrap_or(passes), lanes);
        let source =
            Source::from_options(args.passphrase_file.clone(), args.passphrase_cmd.clone());
        let pass = source
            .read("Passphrase for the new filesystem: ", true)
            .map_err(|e| Error::Argument(reason(e)))?;
        let setup =
            keys::setup(&pass, cost, &self.format.uuid).map_err(|e| Error::Argument(reason(e)))?;
        self.format.seal = Some(setup);
        Ok(())
    }

    /// The number of pages to format on a target of `device_bytes` (0 for
    /// a new or empty file); `what` names the target in messages.
    pub fn pages(&self, device_bytes: u64, is_block: bool, what: &str) -> Result<u64> {
        let bytes = match &self.size {
            Some(s) if is_block && s.bytes > device_bytes => {
                return Err(Error::Target(format!(
                    "{what} holds {}, less than the {} asked",
                    show_size(device_bytes),
                    show_size(s.bytes)
                )));
            }
            Some(s) => s.bytes,
            None if device_bytes == 0 => {
                return Err(Error::Target(format!(
                    "{what} is a new or empty file: give its size with --size (like 4G)"
                )));
            }
            None => {
                check_fits(device_bytes, self.format.pages_per_segment, what)?;
                device_bytes
            }
        };
        Ok(bytes / PAGE_SIZE as u64)
    }
}

/// What a library error says, without its kind.
fn reason(e: pagelog_core::Error) -> String {
    match e {
        pagelog_core::Error::Refused(m) => m,
        other => other.to_string(),
    }
}

/// `--cluster SIZE` in pages: a whole number of pages from 4K to 64K.
fn cluster_pages(s: &str) -> Result<u16> {
    let hint = "a size from 4K to 64K in whole pages, like 16K";
    let size = given_size(s, 1, "--cluster ", hint)?;
    let max = u64::from(MAX_CLUSTER_PAGES) * PAGE_SIZE as u64;
    if size.bytes == 0 || size.bytes % PAGE_SIZE as u64 != 0 || size.bytes > max {
        return Err(Error::Argument(format!("--cluster {s}: {hint}")));
    }
    Ok((size.bytes / PAGE_SIZE as u64) as u16)
}

/// The size from `--size` (bare numbers are bytes) or from the trailing
/// SIZE of mkfs(8) (bare numbers count 1 KiB blocks, as mke2fs reads them).
fn size(option: Option<&str>, trailing: Option<&str>) -> Result<Option<Size>> {
    let option = option
        .map(|s| given_size(s, 1, "--size ", "like 512M or 4G"))
        .transpose()?;
    let trailing = trailing
        .map(|s| {
            given_size(
                s,
                1024,
                "size ",
                "a count of 1 KiB blocks, or like 512M or 4G",
            )
        })
        .transpose()?;
    match (option, trailing) {
        (Some(a), Some(b)) if a.bytes != b.bytes => Err(Error::Argument(format!(
            "two sizes given ({} and {}): give one",
            a.given, b.given
        ))),
        (a, b) => Ok(a.or(b)),
    }
}

/// `s` as a size whose bare numbers count `unit` bytes, remembered as
/// given (`label` then `s`) for messages; `hint` says what a size looks
/// like.
fn given_size(s: &str, unit: u64, label: &str, hint: &str) -> Result<Size> {
    let bytes = parse_size(s, unit)
        .ok_or_else(|| Error::Argument(format!("{label}{s}: not a size ({hint})")))?;
    Ok(Size {
        bytes,
        given: format!("{label}{s}"),
    })
}

/// Pages per segment from `--segment-size`; fs-core's geometry rule
/// decides what is allowed.
fn pages_per_segment(arg: Option<&str>) -> Result<u32> {
    let Some(s) = arg else {
        return Ok(DEFAULT_SEGMENT_PAGES);
    };
    let bytes = parse_size(s, 1)
        .ok_or_else(|| Error::Argument(format!("--segment-size {s}: not a size (like 2M)")))?;
    let whole_pages = bytes.is_multiple_of(PAGE_SIZE as u64);
    let pages = u32::try_from(bytes / PAGE_SIZE as u64)
        .ok()
        .filter(|_| whole_pages);
    let Some(pages) = pages else {
        return Err(Error::Argument(format!(
            "--segment-size {s}: not a power of two between 64 KiB and 256 MiB"
        )));
    };
    // On a device this large only the segment size can be wrong.
    geometry(u64::MAX / 2, pages)
        .map_err(|e| Error::Argument(format!("--segment-size {s}: {e}")))?;
    Ok(pages)
}

/// Fails unless `bytes` take a filesystem with segments of `pps` pages;
/// `what` is the argument or target the size came from.
fn check_fits(bytes: u64, pps: u32, what: &str) -> Result<()> {
    if geometry(bytes / PAGE_SIZE as u64, pps).is_ok() {
        return Ok(());
    }
    Err(Error::Argument(format!(
        "{what}: {} is too small: with {} segments a pagelog filesystem needs at least {}",
        show_size(bytes),
        show_size(u64::from(pps) * PAGE_SIZE as u64),
        show_size(min_pages(pps) * PAGE_SIZE as u64)
    )))
}

/// The smallest device, in pages, that takes segments of `pps` pages:
/// found by bisection over fs-core's `geometry`, so that the layout rule
/// is written in one place only.
fn min_pages(pps: u32) -> u64 {
    // Invariant: `lo` pages are too few, `hi` pages are enough.
    let (mut lo, mut hi) = (0u64, u64::MAX / 2);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if geometry(mid, pps).is_ok() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// A size for people: in the largest binary unit that divides it exactly.
pub fn show_size(bytes: u64) -> String {
    let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in units {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_as_given() {
        assert_eq!(show_size(1024), "1 KiB");
        assert_eq!(show_size(0), "0 bytes");
        assert_eq!(show_size(3 << 20), "3 MiB");
        assert_eq!(show_size((1 << 20) + 4096), "1028 KiB");
        assert_eq!(show_size(1000), "1000 bytes");
    }

    #[test]
    fn the_smallest_device_is_the_first_that_fits() {
        let pages = min_pages(DEFAULT_SEGMENT_PAGES);
        assert!(geometry(pages, DEFAULT_SEGMENT_PAGES).is_ok());
        assert!(geometry(pages - 1, DEFAULT_SEGMENT_PAGES).is_err());
    }

    #[test]
    fn trailing_size_counts_kib_blocks_and_must_agree_with_size() {
        let s = size(None, Some("65536")).expect("blocks");
        assert_eq!(s.map(|s| s.bytes), Some(64 << 20));
        let s = size(Some("64M"), Some("64M")).expect("the same twice");
        assert_eq!(s.map(|s| s.bytes), Some(64 << 20));
        let e = size(Some("64M"), Some("1G")).expect_err("two sizes");
        assert!(e.to_string().contains("two sizes"), "{e}");
    }

    #[test]
    fn segment_sizes_are_checked_by_the_geometry() {
        assert_eq!(pages_per_segment(Some("64K")).ok(), Some(16));
        for bad in ["3M", "32K", "512M", "100000", "1T"] {
            let e = pages_per_segment(Some(bad)).expect_err(bad);
            assert!(e.to_string().contains("power of two"), "{bad}: {e}");
        }
    }
}
