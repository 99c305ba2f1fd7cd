//! pagelog-hotcold: the cleaner's benchmark (Sprite LFS's hot-and-cold
//! pattern) against a mounted pagelog filesystem.
//!
//! 1. Baseline: random 4 KiB overwrites of one file on the empty
//!    filesystem, where the cleaner has nothing to do.
//! 2. Fill to `--fill` percent of the capacity `df` shows, with files.
//! 3. Random 4 KiB overwrites, `--hot-writes` percent of them into the
//!    first `--hot-data` percent of the files, the rest anywhere else,
//!    until `--multiple` times the filesystem's size has been written.
//!    Throughput is printed per interval next to the baseline; the longest
//!    single write is kept.
//! 4. Everything is read back and checked byte for byte.
//!
//! Write amplification is device pages written (data, metadata, record
//! summaries, cleaning: the `pagelog.stats` counters) over user pages.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};

const PAGE: u64 = 4096;

/// The cleaner's benchmark: hot-and-cold random overwrites on a full
/// pagelog mount, with write amplification, throughput over time and the
/// longest stall.
#[derive(Parser, Debug)]
#[command(name = "pagelog-hotcold")]
struct Args {
    /// Root of a mounted pagelog filesystem (empty)
    #[arg(long)]
    dir: PathBuf,
    /// Fill to this percentage of the capacity before overwriting
    #[arg(long, default_value_t = 80)]
    fill: u64,
    /// User writes, as a multiple of the filesystem's size
    #[arg(long, default_value_t = 3.0)]
    multiple: f64,
    /// Share of the data that is hot (percent)
    #[arg(long, default_value_t = 10)]
    hot_data: u64,
    /// Share of the writes that go to the hot data (percent)
    #[arg(long, default_value_t = 90)]
    hot_writes: u64,
    /// Size of each file, in MiB
    #[arg(long, default_value_t = 4)]
    file_mib: u64,
    /// Print throughput every this many MiB written
    #[arg(long, default_value_t = 512)]
    interval_mib: u64,
    /// Random seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Take a snapshot (pagelog-snapshot create, through the mount's
    /// control socket) every this many MiB overwritten (0: none)
    #[arg(long, default_value_t = 0)]
    snapshot_every_mib: u64,
    /// Keep this many snapshots, deleting the oldest beyond
    #[arg(long, default_value_t = 5)]
    keep_snapshots: usize,
}

/// Runs `pagelog-snapshot ARGS` (next to this binary).
fn snapshot_tool(args: &[&str]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let tool = exe.with_file_name("pagelog-snapshot");
    let out = std::process::Command::new(&tool)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "pagelog-snapshot {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The bytes of page `page` (global index) at version `v`.
fn contents(page: u64, v: u32) -> [u8; PAGE as usize] {
    let mut out = [0u8; PAGE as usize];
    let mut x = (page.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(v).wrapping_mul(0xD1B5_4A32_D192_ED03))
        | 1;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// The mount's counters (the root's `pagelog.stats` attribute), as numbers.
fn stats(dir: &Path) -> Result<std::collections::BTreeMap<String, f64>, String> {
    let raw = xattr::get(dir, "pagelog.stats")
        .ok()
        .flatten()
        .ok_or_else(|| {
            format!(
                "{}: no pagelog.stats attribute (is this a pagelog mount?)",
                dir.display()
            )
        })?;
    Ok(pagelog_tests::parse_stats(&String::from_utf8_lossy(&raw))
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect())
}

fn capacity(dir: &Path) -> Result<(u64, u64), String> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| format!("statvfs: {e}"))?;
    let bs = st.fragment_size();
    Ok((st.blocks() * bs, st.blocks_available() * bs))
}

/// Creates (or empties) `path` for reading and writing.
fn create(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The empty-filesystem figure: random 4 KiB overwrites, `bytes` in all,
/// of one file a quarter that size; returns MiB/s.
fn baseline(dir: &Path, rng: &mut impl Rng, bytes: u64) -> Result<f64, String> {
    let path = dir.join("baseline");
    let f = create(&path)?;
    let pages = (bytes / 4 / PAGE).max(1);
    f.set_len(pages * PAGE).map_err(|e| e.to_string())?;
    let start = Instant::now();
    for i in 0..bytes / PAGE {
        let p = rng.random_range(0..pages);
        f.write_all_at(&contents(p, i as u32), p * PAGE)
            .map_err(|e| format!("baseline write: {e}"))?;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    fs::remove_file(&path).map_err(|e| e.to_string())?;
    Ok(mib(bytes) / secs)
}

struct Data {
    files: Vec<File>,
    pages_per_file: u64,
    versions: Vec<u32>,
}

fn fill(dir: &Path, a: &Args) -> Result<Data, String> {
    let (total, _) = capacity(dir)?;
    let target = total * a.fill / 100;
    let file_bytes = a.file_mib << 20;
    let count = (target / file_bytes).max(10);
    let pages_per_file = file_bytes / PAGE;
    let mut files = Vec::new();
    let mut buf = Vec::with_capacity(file_bytes as usize);
    for n in 0..count {
        let path = dir.join(format!("data-{n:06}"));
        let f = create(&path)?;
        buf.clear();
        for p in 0..pages_per_file {
            buf.extend_from_slice(&contents(n * pages_per_file + p, 0));
        }
        f.write_all_at(&buf, 0)
            .map_err(|e| format!("fill {}: {e}", path.display()))?;
        files.push(f);
    }
    // One fsync commits the whole filesystem (a pagelog commit takes all
    // dirty data), so the first file's stands for all.
    if let Some(f) = files.first() {
        f.sync_all().map_err(|e| e.to_string())?;
    }
    let versions = vec![0; (count * pages_per_file) as usize];
    Ok(Data {
        files,
        pages_per_file,
        versions,
    })
}

fn verify(d: &Data) -> Result<(), String> {
    let mut page = [0u8; PAGE as usize];
    for (n, f) in d.files.iter().enumerate() {
        for p in 0..d.pages_per_file {
            let global = n as u64 * d.pages_per_file + p;
            f.read_exact_at(&mut page, p * PAGE)
                .map_err(|e| format!("read file {n} page {p}: {e}"))?;
            if page != contents(global, d.versions[global as usize]) {
                return Err(format!("file {n} page {p}: wrong contents"));
            }
        }
    }
    Ok(())
}

fn run(a: &Args) -> Result<(), String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let (total, _) = capacity(&a.dir)?;
    println!("capacity {:.0} MiB", mib(total));
    let base = baseline(&a.dir, &mut rng, (total / 4).min(1 << 30))?;
    println!("empty filesystem: random 4 KiB overwrites at {base:.1} MiB/s");
    let t = Instant::now();
    let mut d = fill(&a.dir, a)?;
    let (_, avail) = capacity(&a.dir)?;
    println!(
        "filled {} files ({:.0} MiB) in {:.1} s; {:.0} MiB left",
        d.files.len(),
        mib((d.files.len() as u64 * a.file_mib) << 20),
        t.elapsed().as_secs_f64(),
        mib(avail)
    );
    let before = stats(&a.dir)?;
    let files = d.files.len() as u64;
    // The hot files come first; the cold ones are the rest (the last file
    // if every file is hot).
    let hot_files = (files * a.hot_data / 100).clamp(1, files);
    let cold = hot_files.min(files - 1)..files;
    let writes = (a.multiple * total as f64) as u64 / PAGE;
    let interval = (a.interval_mib << 20) / PAGE;
    let snap_every = (a.snapshot_every_mib << 20) / PAGE;
    let mut snaps: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let dir = a.dir.to_string_lossy().into_owned();
    let (mut worst, mut worst_at) = (Duration::ZERO, 0u64);
    let (mut min_ratio, mut t_int) = (f64::MAX, Instant::now());
    let start = Instant::now();
    for i in 0..writes {
        let n = if rng.random_range(0..100) < a.hot_writes {
            rng.random_range(0..hot_files)
        } else {
            rng.random_range(cold.clone())
        };
        let p = rng.random_range(0..d.pages_per_file);
        let global = n * d.pages_per_file + p;
        let v = d.versions[global as usize] + 1;
        let bytes = contents(global, v);
        let w = Instant::now();
        d.files[n as usize]
            .write_all_at(&bytes, p * PAGE)
            .map_err(|e| format!("overwrite {i} (file {n} page {p}): {e}"))?;
        let took = w.elapsed();
        if took > worst {
            (worst, worst_at) = (took, i);
        }
        d.versions[global as usize] = v;
        if snap_every > 0 && (i + 1) % snap_every == 0 {
            let name = format!("hotcold-{}", (i + 1) / snap_every);
            snapshot_tool(&["create", &dir, &name])?;
            snaps.push_back(name);
            while snaps.len() > a.keep_snapshots {
                let old = snaps.pop_front().unwrap_or_default();
                snapshot_tool(&["delete", &dir, &old])?;
            }
        }
        if (i + 1) % interval == 0 {
            let rate = mib(interval * PAGE) / t_int.elapsed().as_secs_f64();
            min_ratio = min_ratio.min(rate / base);
            println!(
                "{:6.0} MiB written ({:4.2}x size): {rate:6.1} MiB/s = {:.2} of empty",
                mib((i + 1) * PAGE),
                (i + 1) as f64 * PAGE as f64 / total as f64,
                rate / base
            );
            t_int = Instant::now();
        }
    }
    // Commits everything (see `fill`).
    d.files[0].sync_all().map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let after = stats(&a.dir)?;
    let delta =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let user = mib(writes * PAGE);
    let device = delta("device_written_mib");
    let logged = delta("user_written_mib");
    println!(
        "overwrote {user:.0} MiB in {secs:.1} s ({:.1} MiB/s)",
        user / secs
    );
    println!(
        "write amplification: {:.2} (device {device:.0} MiB / user {user:.0} MiB); \
         {:.2} per data page reaching the log ({logged:.0} MiB; rewrites of a page \
         still in memory are absorbed)",
        device / user,
        device / logged.max(1.0)
    );
    println!(
        "cleaner: {} passes ({} run by writers), {} segments, {:.0} MiB moved",
        delta("cleaner_passes"),
        delta("cleaner_foreground_passes"),
        delta("cleaner_segments_cleaned"),
        delta("cleaner_pages_moved") * PAGE as f64 / (1 << 20) as f64
    );
    println!("slowest interval: {min_ratio:.2} of the empty-filesystem throughput");
    println!(
        "longest single write: {:.1} ms (write {worst_at})",
        worst.as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    verify(&d)?;
    println!(
        "verified {:.0} MiB byte for byte in {:.1} s",
        mib((files * a.file_mib) << 20),
        t.elapsed().as_secs_f64()
    );
    if !snaps.is_empty() {
        let held = stats(&a.dir)?
            .get("snapshot_held_mib")
            .copied()
            .unwrap_or(0.0);
        let (_, avail_before) = capacity(&a.dir)?;
        for name in snaps.drain(..) {
            snapshot_tool(&["delete", &dir, &name])?;
        }
        let (_, avail_after) = capacity(&a.dir)?;
        println!(
            "deleting the last {} snapshots (holding {held:.0} MiB alone) gave back {:.0} MiB: {:.0} MiB available before, {:.0} MiB after",
            a.keep_snapshots,
            mib(avail_after.saturating_sub(avail_before)),
            mib(avail_before),
            mib(avail_after)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pagelog-hotcold: {e}");
            ExitCode::FAILURE
        }
    }
}
