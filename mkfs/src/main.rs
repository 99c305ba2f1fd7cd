//! pagelog-mkfs: makes a pagelog filesystem in an image file or on a block
//! device.
//!
//! Order of work, so that a failure destroys nothing: every argument is
//! checked first; then the target is opened and locked (an image that a
//! mount holds is refused before a byte is read); then its signature and
//! size are checked; only then is anything written. A file that mkfs
//! created is removed if it fails.

mod error;
mod image;
mod request;
mod signature;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pagelog_core::format::format;
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::objects::{Location, ObjectDevice, StoreSettings};
use pagelog_core::superblock::format_uuid;
use pagelog_core::BlockDevice;

use error::{Error, Result};
use image::{Kind, Target};
use request::{show_size, Request};

const AFTER_HELP: &str = "\
Examples:
  pagelog-mkfs /srv/web.img --size 4G              a sparse 4 GiB image file (mode 0600)
  pagelog-mkfs /dev/vdb --label mail                a whole block device
  pagelog-mkfs /srv/logs.img --size 4G --compress zstd   new data compressed (zstd level 3)
  pagelog-mkfs /srv/web.img --size 4G --force       overwrite an existing filesystem
  pagelog-mkfs --store s3://backup/web --size 100G   in an S3 bucket, under a prefix
                                                    (settings: /etc/pagelog/store.toml)
  pagelog-mkfs /srv/vault.img --size 4G --encrypt   sealed: authenticated encryption of
                                                    everything but the superblock (asks for
                                                    a passphrase twice, without echo)

Installed as mkfs.pagelog, it also serves mkfs(8): `mkfs -t pagelog [OPTIONS]
DEVICE [SIZE]`, where a SIZE without a unit counts 1 KiB blocks, as mke2fs
reads it (`65536` is 64 MiB). Give the options before the device: mkfs(8)
drops the device when an option follows it.

mkfs refuses an image that a mount (or fsck) is using, even with --force, and
changes nothing then; a file it created is removed again if it fails.
Exit status: 0 made, 1 not made.";

/// What mkfs says when the device is missing: mkfs(8) loses it when an
/// option follows it (`mkfs -t pagelog IMG --size 1G` runs `mkfs.pagelog
/// --size 1G`: its getopt stops at the first option it does not know and
/// writes the helper's name over the argument before it).
const NO_DEVICE: &str = "\
no image file or device given.
If you ran `mkfs -t pagelog IMAGE --size 4G`: mkfs(8) drops the device (and
anything else before the first option) when an option follows it. Give the
options before the device, or the size after it:
  mkfs -t pagelog --size 4G IMAGE
  mkfs -t pagelog IMAGE 4G";

/// Make a pagelog filesystem.
///
/// Refuses to overwrite a device or image that already holds a filesystem
/// (pagelog's or another's) unless --force is given.
#[derive(Parser, Debug)]
#[command(name = "pagelog-mkfs", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Image file (created sparse, mode 0600, if missing) or block device
    /// (or a store, as --store names one)
    #[arg(required_unless_present = "store")]
    pub image: Option<PathBuf>,
    /// Keep the filesystem in an object store instead: s3://BUCKET/PREFIX
    /// or dir:/PATH. Endpoint, region and credentials come from
    /// /etc/pagelog/store.toml ($PAGELOG_STORE_CONFIG) or the environment
    /// (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY); --size is the filesystem's size
    #[arg(long, value_name = "URL", conflicts_with = "image")]
    pub store: Option<String>,
    /// Size for mkfs(8): a count of 1 KiB blocks, or with a unit (K, M, G, T)
    #[arg(value_name = "SIZE")]
    pub blocks: Option<String>,
    /// Size of the image, like 512M or 4G (default: the device's or file's size)
    #[arg(short = 's', long)]
    pub size: Option<String>,
    /// Segment size, a power of two from 64K to 256M (default 2M)
    #[arg(long, value_name = "SIZE")]
    pub segment_size: Option<String>,
    /// Volume label (up to 64 bytes)
    #[arg(short = 'L', long)]
    pub label: Option<OsString>,
    /// UUID (default: random)
    #[arg(short = 'U', long)]
    pub uuid: Option<String>,
    /// Store new data compressed: `zstd`, `zstd:LEVEL` (1 to 19), or `none`
    /// (default). Directories can choose their own later (`pagelog.compress`).
    #[arg(long, value_name = "CHAIN")]
    pub compress: Option<String>,
    /// Compression cluster: the logical size compressed as one unit, 4K to
    /// 64K in whole pages, at most a quarter of a segment (default 64K)
    #[arg(long, value_name = "SIZE")]
    pub cluster: Option<String>,
    /// Load the transform modules (*.so) in DIR, so that --compress may
    /// name them (besides /usr/lib/pagelog/transforms)
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Seal the filesystem: XChaCha20-Poly1305 over every stored byte but
    /// the superblock, under a random key wrapped by the passphrase (asked
    /// twice on the terminal unless --passphrase-file or --passphrase-cmd)
    #[arg(long)]
    pub encrypt: bool,
    /// With --encrypt: the passphrase is the first line of FILE
    #[arg(long, value_name = "FILE", requires = "encrypt")]
    pub passphrase_file: Option<PathBuf>,
    /// With --encrypt: the passphrase is the first line CMD prints (run by /bin/sh)
    #[arg(
        long,
        value_name = "CMD",
        requires = "encrypt",
        conflicts_with = "passphrase_file"
    )]
    pub passphrase_cmd: Option<String>,
    /// With --encrypt: Argon2id memory, 8M to 4G (default 256M)
    #[arg(long, value_name = "SIZE", requires = "encrypt")]
    pub kdf_memory: Option<String>,
    /// With --encrypt: Argon2id passes, 1 to 64 (default 4)
    #[arg(long, value_name = "N", requires = "encrypt")]
    pub kdf_passes: Option<u32>,
    /// Keep no usage by user, group and project (the `quota` feature, on by
    /// default: a hidden file of a few pages, rewritten by each commit
    /// that changes usage)
    #[arg(long)]
    pub no_quota: bool,
    /// Image files: write zeros over every hole first, so that the
    /// filesystem the image lives on allocates nothing while pagelog writes
    /// (an fsync on a sparse image also waits for that allocation: 1.6×
    /// the fsync'd random writes here). Takes as long as writing the image.
    #[arg(long)]
    pub preallocate: bool,
    /// Overwrite an existing filesystem or signature (never one in use)
    #[arg(short = 'f', long, visible_short_alias = 'F')]
    pub force: bool,
    /// Print nothing but errors
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Makes the filesystem and returns the summary line.
fn run(args: &Args) -> Result<String> {
    let mut req = Request::new(args)?;
    if args.encrypt {
        // Asked before the target is touched: a mistyped confirmation
        // leaves it as it was.
        req.seal(args)?;
    }
    if let Some(loc) = store_named(args) {
        return run_store(args, &req, &loc?);
    }
    let Some(path) = &args.image else {
        return Err(Error::Argument(NO_DEVICE.into()));
    };
    let what = path.display().to_string();
    let kind = Kind::of(path)?;
    if kind == Kind::New && req.size.is_none() {
        return Err(Error::Target(format!(
            "{what} is a new file: give its size with --size (like 4G)"
        )));
    }
    let target = Target::open(path, kind)?;
    if !args.force {
        if let Some(sig) = target.signature()? {
            return Err(Error::Occupied {
                path: path.clone(),
                sig,
            });
        }
    }
    let device_bytes = if kind == Kind::New { 0 } else { target.len()? };
    let pages = req.pages(device_bytes, target.is_block(), &what)?;
    if args.preallocate && target.is_block() {
        return Err(Error::Argument(
            "--preallocate is for image files; a block device has nothing to allocate".into(),
        ));
    }
    // Nothing has been written up to here.
    let dev = target.prepare(req.size.as_ref().map(|s| s.bytes), pages)?;
    if args.preallocate {
        target.preallocate()?;
    }
    let dev: Arc<dyn BlockDevice> = Arc::new(dev);
    let sb = format(dev, &req.format).map_err(|source| Error::Format {
        path: path.clone(),
        source,
    })?;
    target.keep();
    Ok(summary(&what, pages, &sb, &req))
}

/// The store --store (or the image argument) names, if any.
fn store_named(args: &Args) -> Option<std::result::Result<Location, Error>> {
    let arg = args
        .store
        .clone()
        .or_else(|| args.image.as_ref()?.to_str().map(String::from))?;
    Location::parse(&arg).map(|r| r.map_err(Error::Argument))
}

/// Makes the filesystem in a store: its descriptor, then the format, each
/// object stored before mkfs says it is made.
fn run_store(args: &Args, req: &Request, loc: &Location) -> Result<String> {
    let what = loc.to_string();
    if args.preallocate {
        return Err(Error::Argument(
            "--preallocate is for image files; a store has nothing to allocate".into(),
        ));
    }
    let Some(size) = &req.size else {
        return Err(Error::Argument(format!(
            "{what}: give the filesystem's size with --size (like 100G)"
        )));
    };
    let pages = size.bytes / PAGE_SIZE as u64;
    let failed = |e: String| Error::Target(format!("{what}: {e}"));
    let settings = StoreSettings::load(None).map_err(Error::Argument)?;
    let backend = loc.backend(&settings).map_err(|e| failed(e.to_string()))?;
    let opts = settings.options(false).map_err(Error::Argument)?;
    let dev = ObjectDevice::create(
        backend,
        &settings.cache_dir(loc),
        pages,
        req.format.pages_per_segment,
        args.force,
        opts,
    )
    .map_err(|e| failed(e.to_string()))?;
    let dev: Arc<dyn BlockDevice> = Arc::new(dev);
    let sb = format(dev, &req.format).map_err(|e| failed(e.to_string()))?;
    Ok(summary(&what, pages, &sb, req))
}

/// The line mkfs prints when done.
fn summary(
    what: &str,
    pages: u64,
    sb: &pagelog_core::superblock::Superblock,
    req: &Request,
) -> String {
    let geo = sb.geometry;
    let compress = match req.format.compress.as_str() {
        "none" => String::new(),
        chain => format!(
            ", compressed with {chain} in clusters of {}",
            show_size(u64::from(sb.chains.cluster_pages) * PAGE_SIZE as u64)
        ),
    };
    let sealed = if sb.sealing.is_some() {
        ", sealed (XChaCha20-Poly1305)"
    } else {
        ""
    };
    format!(
        "{what}: pagelog filesystem of {}: {} segments of {}, label '{}', UUID {}{compress}{sealed}",
        show_size(pages * PAGE_SIZE as u64),
        geo.segment_count,
        show_size(u64::from(geo.pages_per_segment) * PAGE_SIZE as u64),
        sb.label_text(),
        format_uuid(&sb.uuid)
    )
}

/// Prints a usage error (or --help, --version) and returns mkfs(8)'s exit
/// status: 1 for failure, 0 for help.
fn usage(e: &clap::Error) -> ExitCode {
    if e.kind() == clap::error::ErrorKind::MissingRequiredArgument {
        eprintln!("pagelog-mkfs: {NO_DEVICE}");
        return ExitCode::from(1);
    }
    let _ = e.print();
    ExitCode::from(if e.use_stderr() { 1 } else { 0 })
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    match run(&args) {
        Ok(summary) => {
            if !args.quiet {
                println!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pagelog-mkfs: {e}");
            ExitCode::from(1)
        }
    }
}
