//! pagelog-mkfs: makes a pagelog filesystem in an image file or on a block
//! device.

mod signature;

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pagelog_core::format::{format, FormatOptions, DEFAULT_SEGMENT_PAGES};
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::size::parse_size;
use pagelog_core::superblock::{format_uuid, parse_uuid};
use pagelog_core::{BlockDevice, FileDevice};

const AFTER_HELP: &str = "\
Examples:
  pagelog-mkfs /srv/web.img --size 4G              a sparse 4 GiB image file
  pagelog-mkfs /dev/vdb --label mail                a whole block device
  pagelog-mkfs /srv/web.img --size 4G --force       overwrite an existing filesystem

Installed as mkfs.pagelog, it also serves `mkfs -t pagelog DEVICE [SIZE]`,
where a bare SIZE counts 1 KiB blocks, as mkfs(8) does.";

/// Make a pagelog filesystem.
///
/// Refuses to overwrite a device or image that already holds a filesystem
/// (pagelog's or another's) unless --force is given.
#[derive(Parser, Debug)]
#[command(name = "pagelog-mkfs", version, after_help = AFTER_HELP)]
struct Args {
    /// Image file (created if missing, sparse) or block device
    image: PathBuf,
    /// Size for mkfs(8) compatibility: 1 KiB blocks, or with a unit (K, M, G, T)
    #[arg(value_name = "SIZE")]
    blocks: Option<String>,
    /// Size of the image, like 512M or 4G (default: the device's or file's size)
    #[arg(short = 's', long)]
    size: Option<String>,
    /// Segment size, a power of two from 64K to 256M (default 2M)
    #[arg(long, value_name = "SIZE")]
    segment_size: Option<String>,
    /// Volume label (up to 64 bytes)
    #[arg(short = 'L', long)]
    label: Option<String>,
    /// UUID (default: random)
    #[arg(short = 'U', long)]
    uuid: Option<String>,
    /// Overwrite an existing filesystem or signature
    #[arg(short = 'f', long, visible_short_alias = 'F')]
    force: bool,
    /// Print nothing but errors
    #[arg(short = 'q', long)]
    quiet: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("pagelog-mkfs: {msg}");
    ExitCode::from(1)
}

/// What is at `path` now, for the overwrite check.
fn existing_signature(path: &Path) -> std::io::Result<Option<&'static str>> {
    let mut f = match OpenOptions::new().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::with_capacity(signature::PROBE_BYTES);
    f.by_ref()
        .take(signature::PROBE_BYTES as u64)
        .read_to_end(&mut buf)?;
    Ok(signature::detect(&buf))
}

fn run(args: &Args) -> Result<String, String> {
    let size = match (&args.size, &args.blocks) {
        (Some(s), _) => Some(
            parse_size(s, 1).ok_or_else(|| format!("--size {s}: not a size (like 512M or 4G)"))?,
        ),
        (None, Some(b)) => {
            Some(parse_size(b, 1024).ok_or_else(|| format!("size {b}: not a size"))?)
        }
        (None, None) => None,
    };
    let pps = match &args.segment_size {
        Some(s) => {
            let bytes =
                parse_size(s, 1).ok_or_else(|| format!("--segment-size {s}: not a size"))?;
            u32::try_from(bytes / PAGE_SIZE as u64)
                .map_err(|_| format!("--segment-size {s}: too large"))?
        }
        None => DEFAULT_SEGMENT_PAGES,
    };
    let uuid = match &args.uuid {
        Some(u) => {
            parse_uuid(u).ok_or_else(|| format!("--uuid {u}: not a UUID (32 hex digits)"))?
        }
        None => FormatOptions::default().uuid,
    };
    let label = args.label.clone().unwrap_or_default().into_bytes();
    if label.len() > 64 {
        return Err(format!("label of {} bytes is longer than 64", label.len()));
    }
    let path = &args.image;
    if !args.force {
        if let Some(sig) =
            existing_signature(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        {
            return Err(format!(
                "{} already holds a {sig} signature; use --force to overwrite it",
                path.display()
            ));
        }
    }
    let is_block = std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    // O_EXCL on a block device fails while anything has it mounted; the
    // handle is kept open until mkfs is done.
    let exclusive = if is_block { libc::O_EXCL } else { 0 };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(!is_block)
        .truncate(false)
        .custom_flags(exclusive)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => format!(
                "{} is in use (mounted, or held by another program)",
                path.display()
            ),
            _ => format!("cannot open {} for writing: {e}", path.display()),
        })?;
    if !is_block {
        match size {
            Some(s) => file
                .set_len(s)
                .map_err(|e| format!("cannot size {} to {s} bytes: {e}", path.display()))?,
            None if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 => {
                return Err(format!(
                    "{} is a new file: give its size with --size (like 4G)",
                    path.display()
                ));
            }
            None => {}
        }
    }
    drop(file);
    let dev = FileDevice::open(path, true).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => format!(
            "{} is in use (mounted, or held by another program)",
            path.display()
        ),
        _ => format!("cannot open {}: {e}", path.display()),
    })?;
    dev.lock(true)
        .map_err(|_| format!("{} is in use (mounted?)", path.display()))?;
    let mut pages = dev.len_pages();
    if let (true, Some(s)) = (is_block, size) {
        if s / PAGE_SIZE as u64 > pages {
            return Err(format!(
                "{} holds {} bytes, less than the {s} asked",
                path.display(),
                pages * PAGE_SIZE as u64
            ));
        }
        pages = s / PAGE_SIZE as u64;
    }
    let dev: Arc<dyn BlockDevice> = Arc::new(Limited { inner: dev, pages });
    let opts = FormatOptions {
        pages_per_segment: pps,
        label,
        uuid,
        ..FormatOptions::default()
    };
    let sb = format(dev, &opts).map_err(|e| format!("{}: {e}", path.display()))?;
    let geo = sb.geometry;
    let seg_bytes = u64::from(geo.pages_per_segment) * PAGE_SIZE as u64;
    Ok(format!(
        "{}: pagelog filesystem of {} MiB: {} segments of {} KiB, label '{}', UUID {}",
        path.display(),
        (pages * PAGE_SIZE as u64) >> 20,
        geo.segment_count,
        seg_bytes >> 10,
        sb.label_text(),
        format_uuid(&sb.uuid)
    ))
}

/// A device seen through a size limit (mkfs on part of a block device).
#[derive(Debug)]
struct Limited {
    inner: FileDevice,
    pages: u64,
}

impl BlockDevice for Limited {
    fn len_pages(&self) -> u64 {
        self.pages.min(self.inner.len_pages())
    }
    fn read(&self, addr: pagelog_core::PageAddr, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(addr, buf)
    }
    fn write(&self, addr: pagelog_core::PageAddr, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write(addr, buf)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(summary) => {
            if !args.quiet {
                println!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(m) => fail(m),
    }
}
