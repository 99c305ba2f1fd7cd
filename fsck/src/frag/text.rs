//! The fragmentation report for people (text) and for scripts (JSON).

use std::fmt::Write as _;
use std::path::Path;

use pagelog_core::fsck::frag::{FileLayout, Report};
use pagelog_core::layout::PAGE_SIZE;
use serde::Serialize;

/// The utilisation buckets of [`Report::histogram`], named.
const BUCKETS: [&str; 12] = [
    "free", "1-10%", "11-20%", "21-30%", "31-40%", "41-50%", "51-60%", "61-70%", "71-80%",
    "81-90%", "91-99%", "full",
];

fn mib(pages: u64) -> f64 {
    (pages * PAGE_SIZE as u64) as f64 / f64::from(1 << 20)
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The report as text.
pub fn text(target: &Path, r: &Report) -> String {
    let t = &r.totals;
    let geo = &r.geometry;
    let seg_mib = mib(u64::from(geo.pages_per_segment));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: checkpoint {}, {} segments of {seg_mib} MiB",
        target.display(),
        r.checkpoint,
        geo.segment_count
    );
    let _ = writeln!(
        out,
        "files:      {} with data, {} fragmented ({:.1}%), holding {:.1} MiB ({:.1}% of {:.1} MiB)",
        t.files,
        t.fragmented,
        pct(t.fragmented, t.files),
        mib(t.fragmented_pages),
        pct(t.fragmented_pages, t.pages),
        mib(t.pages)
    );
    let _ = writeln!(
        out,
        "extents:    {} (ideal {}): fragmentation factor {:.1}%",
        t.extents,
        t.ideal,
        100.0 * t.factor()
    );
    let _ = writeln!(
        out,
        "sequential read: {:.2} seeks per MiB",
        t.seeks_per_mib()
    );
    if t.compressed_files > 0 {
        let ratio = t.compressed_logical as f64 / t.compressed_stored.max(1) as f64;
        let _ = writeln!(
            out,
            "compressed: {} files, {:.1} MiB logical in {:.1} MiB stored ({ratio:.2}:1)",
            t.compressed_files,
            mib(t.compressed_logical),
            mib(t.compressed_stored)
        );
    }
    let hist = r.histogram();
    let most = hist.iter().copied().max().unwrap_or(1).max(1);
    let _ = writeln!(out, "segment utilisation:");
    for (name, n) in BUCKETS.iter().zip(hist) {
        let bar = "#".repeat(((n * 40).div_ceil(most)) as usize);
        let _ = writeln!(out, "  {name:>7} {n:>8} {bar}");
    }
    let f = &r.free;
    let runs: u64 = f.runs.iter().map(|(_, n)| n).sum();
    let _ = writeln!(
        out,
        "free space: {} free segments in {runs} runs (largest {}, {:.0} MiB); {} partly used segments hold {:.1} MiB free (the cleaner gives it back)",
        f.free_segments,
        f.largest_run,
        f.largest_run as f64 * seg_mib,
        f.partly_used,
        mib(f.free_in_partly)
    );
    if r.worst.is_empty() {
        let _ = writeln!(out, "no fragmented file");
        return out;
    }
    let _ = writeln!(out, "most fragmented files:");
    let _ = writeln!(
        out,
        "  {:>8} {:>6} {:>10} {:>9}  path",
        "extents", "ideal", "MiB", "seeks/MiB"
    );
    for w in &r.worst {
        let _ = writeln!(
            out,
            "  {:>8} {:>6} {:>10.1} {:>9.1}  {}",
            w.extents.len(),
            w.ideal,
            mib(w.logical_pages),
            w.seeks_per_mib(),
            path(w)
        );
    }
    out
}

/// The file's path, or its inode number where no path was found.
pub fn path(w: &FileLayout) -> String {
    w.path
        .clone()
        .unwrap_or_else(|| format!("(inode {})", w.ino))
}

#[derive(Serialize)]
struct Json {
    target: String,
    checkpoint: u64,
    segment_pages: u32,
    segments: u64,
    files: JsonFiles,
    segment_utilisation: Vec<JsonBucket>,
    free_space: JsonFree,
    worst: Vec<JsonFile>,
}

#[derive(Serialize)]
struct JsonFiles {
    with_data: u64,
    fragmented: u64,
    bytes: u64,
    fragmented_bytes: u64,
    stored_bytes: u64,
    extents: u64,
    ideal_extents: u64,
    fragmentation_factor: f64,
    seeks_per_mib: f64,
    compressed_files: u64,
    compressed_logical_bytes: u64,
    compressed_stored_bytes: u64,
}

#[derive(Serialize)]
struct JsonBucket {
    utilisation: &'static str,
    segments: u64,
}

#[derive(Serialize)]
struct JsonFree {
    free_segments: u64,
    runs: Vec<JsonRun>,
    largest_run: u64,
    partly_used_segments: u64,
    free_bytes_in_partly_used: u64,
}

#[derive(Serialize)]
struct JsonRun {
    length: u64,
    count: u64,
}

#[derive(Serialize)]
struct JsonFile {
    inode: u64,
    path: Option<String>,
    bytes: u64,
    stored_bytes: u64,
    extents: usize,
    ideal_extents: u64,
    fragmentation_factor: f64,
    seeks_per_mib: f64,
    /// (first page, pages) on the device.
    layout: Vec<(u64, u64)>,
}

fn bytes(pages: u64) -> u64 {
    pages * PAGE_SIZE as u64
}

/// The report as JSON.
pub fn json(target: &Path, r: &Report) -> String {
    let t = &r.totals;
    let out = Json {
        target: target.display().to_string(),
        checkpoint: r.checkpoint.0,
        segment_pages: r.geometry.pages_per_segment,
        segments: r.geometry.segment_count,
        files: JsonFiles {
            with_data: t.files,
            fragmented: t.fragmented,
            bytes: bytes(t.pages),
            fragmented_bytes: bytes(t.fragmented_pages),
            stored_bytes: bytes(t.stored_pages),
            extents: t.extents,
            ideal_extents: t.ideal,
            fragmentation_factor: t.factor(),
            seeks_per_mib: t.seeks_per_mib(),
            compressed_files: t.compressed_files,
            compressed_logical_bytes: bytes(t.compressed_logical),
            compressed_stored_bytes: bytes(t.compressed_stored),
        },
        segment_utilisation: BUCKETS
            .iter()
            .zip(r.histogram())
            .map(|(u, n)| JsonBucket {
                utilisation: u,
                segments: n,
            })
            .collect(),
        free_space: JsonFree {
            free_segments: r.free.free_segments,
            runs: r
                .free
                .runs
                .iter()
                .map(|&(length, count)| JsonRun { length, count })
                .collect(),
            largest_run: r.free.largest_run,
            partly_used_segments: r.free.partly_used,
            free_bytes_in_partly_used: bytes(r.free.free_in_partly),
        },
        worst: r
            .worst
            .iter()
            .map(|w| JsonFile {
                inode: w.ino.0,
                path: w.path.clone(),
                bytes: bytes(w.logical_pages),
                stored_bytes: bytes(w.stored_pages),
                extents: w.extents.len(),
                ideal_extents: w.ideal,
                fragmentation_factor: w.factor(),
                seeks_per_mib: w.seeks_per_mib(),
                layout: w.extents.iter().map(|(a, n)| (a.0, *n)).collect(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
