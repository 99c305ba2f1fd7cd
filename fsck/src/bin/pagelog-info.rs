//! pagelog-info: what a pagelog filesystem is (label, UUID, format,
//! geometry, state, last checkpoint, usage), as `dumpe2fs -h` says it of
//! ext4; `--set-label` to change its label, and `--change-passphrase` to
//! rewrap a sealed filesystem's key. Reading takes no lock and writes
//! nothing, so it also works on a mounted image. The work is in
//! `pagelog_core::info` and `pagelog_core::label`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pagelog_core::chain_table::chain_spec;
use pagelog_core::info::{self, Info};
use pagelog_core::label::{change_passphrase, set_label};
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::objects::Backing;
use pagelog_core::superblock::features::{INCOMPAT_SEALED, INCOMPAT_TRANSFORMS, RO_COMPAT_QUOTA};
use pagelog_core::superblock::{State, LABEL_MAX};
use pagelog_tools::{print_and_exit, say, Failure, PassphraseArgs};
use serde::Serialize;

const EXIT_OK: u8 = 0;
const EXIT_FAILED: u8 = 1;

const AFTER_HELP: &str = "\
Examples:
  pagelog-info /srv/web.img                       label, UUID, geometry, state, usage
  pagelog-info /srv/web.img --json                the same for scripts
  pagelog-info /srv/web.img --set-label mail      change the label (not while mounted)
  pagelog-info /srv/vault.img --change-passphrase asks the old passphrase, then the new
                                                  one twice (not while mounted)

Usage is as of the newest checkpoint on the device: on a mounted filesystem, as of its
last commit (at most commit= seconds ago). Reading takes no lock and writes nothing.
--set-label needs the image unmounted; it rewrites only the two superblock copies, one
after the other, so that a crash leaves the old label or the new one.
--change-passphrase (unmounted only) rewraps the master key under the new passphrase: only
the two superblock copies are written, one after the other with a flush between, so a
crash leaves the old passphrase or the new one working; no data is re-encrypted.

A sealed filesystem is read with its passphrase (asked on the terminal, or given by
--passphrase-file / --passphrase-cmd).

Exit status: 0 done, 1 the image cannot be read (or the label or passphrase cannot be
set), 2 bad usage, 77 wrong passphrase.";

/// Show what a pagelog filesystem is, or change its label.
#[derive(Parser, Debug)]
#[command(name = "pagelog-info", version, after_help = AFTER_HELP)]
struct Args {
    /// Image file or block device
    image: PathBuf,
    /// Print as JSON
    #[arg(long)]
    json: bool,
    /// Set the label (at most 64 bytes; an empty one clears it)
    #[arg(long, value_name = "LABEL", conflicts_with = "change_passphrase")]
    set_label: Option<OsString>,
    /// Change a sealed filesystem's passphrase (the master key is rewrapped)
    #[arg(long)]
    change_passphrase: bool,
    /// With --change-passphrase: the new passphrase is the first line of FILE
    #[arg(long, value_name = "FILE", requires = "change_passphrase")]
    new_passphrase_file: Option<PathBuf>,
    /// With --change-passphrase: the new passphrase is the first line CMD prints
    #[arg(
        long,
        value_name = "CMD",
        requires = "change_passphrase",
        conflicts_with = "new_passphrase_file"
    )]
    new_passphrase_cmd: Option<String>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

fn mib(pages: u64) -> String {
    let bytes = pages * PAGE_SIZE as u64;
    format!(
        "{:.1} MiB ({pages} pages)",
        bytes as f64 / f64::from(1 << 20)
    )
}

/// A time on disk (ns since the epoch), in UTC.
fn when(ns: i64) -> String {
    jiff::Timestamp::from_second(ns.div_euclid(1_000_000_000))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ns} ns after the epoch"))
}

fn state(info: &Info) -> &'static str {
    match info.sb.state {
        State::Clean => "clean (cleanly unmounted)",
        State::InUse => "in use (mounted, or not cleanly unmounted)",
    }
}

fn text(image: &Path, info: &Info) -> String {
    let sb = &info.sb;
    let g = sb.geometry;
    let cp = &info.checkpoint;
    let live = cp.live_pages;
    let rows = [
        ("Filesystem", image.display().to_string()),
        ("Label", sb.label_text()),
        ("UUID", sb.uuid_text()),
        (
            "Format",
            format!("version {}", pagelog_core::layout::FORMAT_VERSION),
        ),
        (
            "Features",
            format!(
                "compat {:#x}, ro_compat {:#x}, incompat {:#x}{}",
                sb.compat,
                sb.ro_compat,
                sb.incompat,
                feature_names(sb.ro_compat, sb.incompat)
            ),
        ),
        ("Compression", compression(sb)),
        ("Sealing", sealing(sb)),
        ("Page size", format!("{PAGE_SIZE} bytes")),
        ("Segment size", mib(u64::from(g.pages_per_segment))),
        (
            "Segments",
            format!("{}, from page {}", g.segment_count, g.first_segment_page),
        ),
        ("Device size", mib(sb.device_pages)),
        ("Created", when(sb.created_ns)),
        ("State", state(info).to_string()),
        (
            "Superblock",
            format!(
                "generation {}, written {}",
                sb.generation,
                when(sb.written_ns)
            ),
        ),
        (
            "Last checkpoint",
            format!(
                "{} at page {}, {} ({} log records after the superblock's)",
                cp.no,
                info.checkpoint_addr,
                when(cp.time_ns),
                info.records_walked
            ),
        ),
        ("Capacity", mib(info.capacity_pages)),
        ("Live", mib(live)),
        ("Free", mib(info.free_pages)),
        ("Inodes", cp.inode_count.to_string()),
    ];
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{:<16} {v}", format!("{k}:"));
    }
    for n in &info.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

#[derive(Serialize)]
struct JsonInfo {
    image: String,
    label: String,
    uuid: String,
    version: u32,
    features: JsonFeatures,
    /// The chains the image numbers, chain 1 first.
    chains: Vec<String>,
    /// Bytes of a compression cluster.
    cluster_bytes: usize,
    /// How a sealed filesystem's key is wrapped (absent: not sealed).
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed: Option<JsonSealing>,
    page_size: usize,
    pages_per_segment: u32,
    segment_count: u64,
    first_segment_page: u64,
    device_pages: u64,
    created_ns: i64,
    created: String,
    cleanly_unmounted: bool,
    superblock_generation: u64,
    last_checkpoint: JsonCheckpoint,
    usage: JsonUsage,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct JsonSealing {
    cipher: &'static str,
    kdf: &'static str,
    kdf_memory_kib: u32,
    kdf_passes: u32,
    kdf_lanes: u32,
    seal_lease: u64,
}

#[derive(Serialize)]
struct JsonFeatures {
    compat: u64,
    ro_compat: u64,
    incompat: u64,
}

#[derive(Serialize)]
struct JsonCheckpoint {
    number: u64,
    page: u64,
    time_ns: i64,
    time: String,
    log_records_after_superblock: u64,
}

/// Usage in pages of `page_size` bytes.
#[derive(Serialize)]
struct JsonUsage {
    capacity_pages: u64,
    live_pages: u64,
    free_pages: u64,
    inodes: u64,
}

/// The chains the image numbers, its cluster size, and the root's chain.
fn compression(sb: &pagelog_core::superblock::Superblock) -> String {
    let t = &sb.chains;
    if t.chains.is_empty() {
        return "none".into();
    }
    let chains: Vec<String> = t
        .chains
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} {}", i + 1, chain_spec(c)))
        .collect();
    let root = t.get(sb.default_transform).map_or("?".into(), chain_spec);
    format!(
        "chains {}; clusters of {} KiB; at mkfs, new data: {root}",
        chains.join(", "),
        usize::from(t.cluster_pages) * PAGE_SIZE / 1024
    )
}

/// The names of the read-only-compatible and incompatible features set,
/// in parentheses.
fn feature_names(ro_compat: u64, incompat: u64) -> String {
    let ro = [(RO_COMPAT_QUOTA, "quota")]
        .into_iter()
        .filter(|(bit, _)| ro_compat & bit != 0);
    let inc = [
        (INCOMPAT_TRANSFORMS, "transforms"),
        (INCOMPAT_SEALED, "sealed"),
    ]
    .into_iter()
    .filter(|(bit, _)| incompat & bit != 0);
    let names: Vec<&str> = ro.chain(inc).map(|(_, name)| name).collect();
    match names.is_empty() {
        true => String::new(),
        false => format!(" ({})", names.join(", ")),
    }
}

/// Whether the filesystem is sealed, and how its key is wrapped.
fn sealing(sb: &pagelog_core::superblock::Superblock) -> String {
    match &sb.sealing {
        None => "none".into(),
        Some(s) => {
            let k = &s.slot.kdf;
            format!(
                "XChaCha20-Poly1305 over everything but the superblock; key wrapped with Argon2id ({} MiB, {} passes, {} lanes); seal lease {}",
                k.mem_kib / 1024,
                k.passes,
                k.lanes,
                s.lease
            )
        }
    }
}

fn json(image: &Path, info: &Info) -> String {
    let sb = &info.sb;
    let cp = &info.checkpoint;
    let out = JsonInfo {
        image: image.display().to_string(),
        label: sb.label_text(),
        uuid: sb.uuid_text(),
        version: pagelog_core::layout::FORMAT_VERSION,
        features: JsonFeatures {
            compat: sb.compat,
            ro_compat: sb.ro_compat,
            incompat: sb.incompat,
        },
        chains: sb.chains.chains.iter().map(|c| chain_spec(c)).collect(),
        cluster_bytes: usize::from(sb.chains.cluster_pages) * PAGE_SIZE,
        sealed: sb.sealing.as_ref().map(|s| JsonSealing {
            cipher: "xchacha20poly1305",
            kdf: "argon2id",
            kdf_memory_kib: s.slot.kdf.mem_kib,
            kdf_passes: s.slot.kdf.passes,
            kdf_lanes: s.slot.kdf.lanes,
            seal_lease: s.lease,
        }),
        page_size: PAGE_SIZE,
        pages_per_segment: sb.geometry.pages_per_segment,
        segment_count: sb.geometry.segment_count,
        first_segment_page: sb.geometry.first_segment_page,
        device_pages: sb.device_pages,
        created_ns: sb.created_ns,
        created: when(sb.created_ns),
        cleanly_unmounted: sb.state == State::Clean,
        superblock_generation: sb.generation,
        last_checkpoint: JsonCheckpoint {
            number: cp.no.0,
            page: info.checkpoint_addr.0,
            time_ns: cp.time_ns,
            time: when(cp.time_ns),
            log_records_after_superblock: info.records_walked,
        },
        usage: JsonUsage {
            capacity_pages: info.capacity_pages,
            live_pages: cp.live_pages,
            free_pages: info.free_pages,
            inodes: cp.inode_count,
        },
        notes: info.notes.clone(),
    };
    serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")) + "\n"
}

fn show(args: &Args) -> Result<String, Failure> {
    let dev = Backing::open(&args.image, false).map_err(|e| (EXIT_FAILED, e))?;
    let key = args.passphrase.unlock(&dev, &args.image, EXIT_FAILED)?;
    let info = info::read(Arc::new(dev), key.as_ref())
        .map_err(|e| (EXIT_FAILED, format!("{}: {e}", args.image.display())))?;
    Ok(if args.json {
        json(&args.image, &info)
    } else {
        text(&args.image, &info)
    })
}

/// The image opened for a change of its superblocks, locked: the daemon
/// holds this lock (shared when read-only) while mounted, and rewrites the
/// superblocks from its own copy, so a change made under it would be lost.
fn open_unmounted(image: &Path, what: &str) -> Result<Backing, Failure> {
    let dev = Backing::open(image, true).map_err(|e| (EXIT_FAILED, e))?;
    dev.lock(true).map_err(|e| {
        let msg = match e.kind() {
            std::io::ErrorKind::WouldBlock => format!(
                "{} is mounted or in use by another process: unmount it to change {what}",
                image.display()
            ),
            _ => format!("cannot lock {}: {e}", image.display()),
        };
        (EXIT_FAILED, msg)
    })?;
    Ok(dev)
}

fn relabel(args: &Args, label: &[u8]) -> Result<String, Failure> {
    let image = &args.image;
    if label.len() > LABEL_MAX {
        return Err((
            EXIT_FAILED,
            format!(
                "a label holds at most {LABEL_MAX} bytes; this one has {}",
                label.len()
            ),
        ));
    }
    let dev = open_unmounted(image, "the label")?;
    let key = args.passphrase.unlock(&dev, image, EXIT_FAILED)?;
    let sb = set_label(&dev, key.as_ref(), label)
        .map_err(|e| (EXIT_FAILED, format!("{}: {e}", image.display())))?;
    Ok(format!(
        "{}: label set to \"{}\"\n",
        image.display(),
        sb.label_text()
    ))
}

fn rewrap(args: &Args) -> Result<String, Failure> {
    use pagelog_core::seal::passphrase::Source;
    let image = &args.image;
    let failed = |e: pagelog_core::Error| (EXIT_FAILED, format!("{}: {e}", image.display()));
    let dev = open_unmounted(image, "the passphrase")?;
    let key = args
        .passphrase
        .unlock(&dev, image, EXIT_FAILED)?
        .ok_or_else(|| {
            (
                EXIT_FAILED,
                format!("{}: not sealed: it has no passphrase", image.display()),
            )
        })?;
    let new = Source::from_options(
        args.new_passphrase_file.clone(),
        args.new_passphrase_cmd.clone(),
    )
    .read("New passphrase: ", true)
    .map_err(failed)?;
    change_passphrase(&dev, &key, &new).map_err(failed)?;
    Ok(format!("{}: passphrase changed\n", image.display()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.set_label {
        Some(label) => relabel(&args, label.as_bytes()),
        None if args.change_passphrase => rewrap(&args),
        None => show(&args),
    };
    match result {
        Ok(out) => print_and_exit(&out, EXIT_OK, EXIT_FAILED),
        Err((code, msg)) => {
            say(&format!("pagelog-info: {msg}"));
            ExitCode::from(code)
        }
    }
}
