//! pagelog-info: what a pagelog filesystem is (label, UUID, format,
//! geometry, state, last checkpoint, usage), as `dumpe2fs -h` says it of
//! ext4; and `--set-label` to change its label. Reading takes no lock and
//! writes nothing, so it also works on a mounted image. The work is in
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
use pagelog_core::label::set_label;
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::superblock::features::INCOMPAT_TRANSFORMS;
use pagelog_core::superblock::{State, LABEL_MAX};
use pagelog_core::FileDevice;
use pagelog_tools::{print_and_exit, say};
use serde::Serialize;

const EXIT_OK: u8 = 0;
const EXIT_FAILED: u8 = 1;

const AFTER_HELP: &str = "\
Examples:
  pagelog-info /srv/web.img                       label, UUID, geometry, state, usage
  pagelog-info /srv/web.img --json                the same for scripts
  pagelog-info /srv/web.img --set-label mail      change the label (not while mounted)

Usage is as of the newest checkpoint on the device: on a mounted filesystem, as of its
last commit (at most commit= seconds ago). Reading takes no lock and writes nothing.
--set-label needs the image unmounted; it rewrites only the two superblock copies, one
after the other, so that a crash leaves the old label or the new one.

Exit status: 0 done, 1 the image cannot be read (or the label cannot be set), 2 bad usage.";

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
    #[arg(long, value_name = "LABEL")]
    set_label: Option<OsString>,
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
                match sb.incompat & INCOMPAT_TRANSFORMS {
                    0 => "",
                    _ => " (transforms)",
                }
            ),
        ),
        ("Compression", compression(sb)),
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

fn show(args: &Args) -> Result<String, String> {
    let dev = FileDevice::open(&args.image, false)
        .map_err(|e| format!("cannot open {}: {e}", args.image.display()))?;
    let info = info::read(Arc::new(dev)).map_err(|e| format!("{}: {e}", args.image.display()))?;
    Ok(if args.json {
        json(&args.image, &info)
    } else {
        text(&args.image, &info)
    })
}

fn relabel(image: &Path, label: &[u8]) -> Result<String, String> {
    if label.len() > LABEL_MAX {
        return Err(format!(
            "a label holds at most {LABEL_MAX} bytes; this one has {}",
            label.len()
        ));
    }
    let dev = FileDevice::open(image, true)
        .map_err(|e| format!("cannot open {}: {e}", image.display()))?;
    // The daemon holds this lock (shared when read-only) while mounted, and
    // rewrites the superblocks from its own copy: a label set under it
    // would be lost.
    dev.lock(true).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => format!(
            "{} is mounted or in use by another process: unmount it to change the label",
            image.display()
        ),
        _ => format!("cannot lock {}: {e}", image.display()),
    })?;
    let sb = set_label(&dev, label).map_err(|e| format!("{}: {e}", image.display()))?;
    Ok(format!(
        "{}: label set to \"{}\"\n",
        image.display(),
        sb.label_text()
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.set_label {
        Some(label) => relabel(&args.image, label.as_bytes()),
        None => show(&args),
    };
    match result {
        Ok(out) => print_and_exit(&out, EXIT_OK, EXIT_FAILED),
        Err(msg) => {
            say(&format!("pagelog-info: {msg}"));
            ExitCode::from(EXIT_FAILED)
        }
    }
}
