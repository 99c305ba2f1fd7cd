//! pagelog-stress: a mixed, multi-threaded workload against a mounted
//! directory that checks every read against what it wrote; optionally it
//! crashes the daemon with SIGKILL at random moments, remounts, checks the
//! image with pagelog-fsck and verifies that everything fsync'd survived.
//!
//!   pagelog-stress --dir MNT [--threads 4] [--seconds 10] [--seed N]
//!   pagelog-stress --image IMG --dir MNT --crashes 5 [--journal ordered] ...
//!
//! Prints a summary (operations, bytes, crashes survived, errors) and exits
//! non-zero on any error.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
struct Opts {
    dir: PathBuf,
    image: Option<PathBuf>,
    threads: usize,
    seconds: f64,
    crashes: u32,
    journal: String,
    seed: u64,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        dir: PathBuf::new(),
        image: None,
        threads: 4,
        seconds: 10.0,
        crashes: 0,
        journal: "ordered".into(),
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => o.dir = PathBuf::from(val()?),
            "--image" => o.image = Some(PathBuf::from(val()?)),
            "--threads" => o.threads = val()?.parse().map_err(|_| "--threads: a number")?,
            "--seconds" => o.seconds = val()?.parse().map_err(|_| "--seconds: a number")?,
            "--crashes" => o.crashes = val()?.parse().map_err(|_| "--crashes: a number")?,
            "--journal" => o.journal = val()?,
            "--seed" => o.seed = val()?.parse().map_err(|_| "--seed: a number")?,
            "--help" | "-h" => {
                return Err(
                    "usage: pagelog-stress --dir MNT [--threads N] [--seconds S] [--seed N] \
                            [--image IMG --crashes N --journal MODE]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.dir.as_os_str().is_empty() {
        return Err("--dir is required".into());
    }
    if o.crashes > 0 && o.image.is_none() {
        return Err("--crashes needs --image".into());
    }
    if o.crashes > 0 && o.journal == "writeback" {
        return Err(
            "crash runs check journal=ordered or journal=full (writeback promises less)".into(),
        );
    }
    Ok(o)
}

/// Counters shared by the workers.
#[derive(Default)]
struct Totals {
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Totals {
    /// Records an error for the summary.
    fn error(&self, msg: String) {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
    }
}

/// One version of a file: its contents (`None`: no file), and the byte
/// range written by the write(2) that made it from the version before.
#[derive(Clone, Debug)]
struct Version {
    content: Option<Vec<u8>>,
    written: Option<(usize, usize)>,
}

/// What one worker knows of its files: current contents, and every version
/// since the last fsync (any of which a crash may leave).
#[derive(Default, Clone)]
struct Files {
    now: BTreeMap<String, Vec<u8>>,
    since_sync: BTreeMap<String, Vec<Version>>,
}

impl Files {
    /// `name` now holds `content`; `written` is the range a write(2) wrote
    /// to get there (None for other calls).
    fn changed(&mut self, name: &str, content: Option<Vec<u8>>, written: Option<(usize, usize)>) {
        // A name not seen since the start has its starting state (no file)
        // as the first version: a crash may come before its creation lands.
        let now = &self.now;
        self.since_sync
            .entry(name.to_string())
            .or_insert_with(|| {
                vec![Version {
                    content: now.get(name).cloned(),
                    written: None,
                }]
            })
            .push(Version {
                content: content.clone(),
                written,
            });
        match content {
            Some(c) => self.now.insert(name.to_string(), c),
            None => self.now.remove(name),
        };
    }

    fn synced(&mut self, name: &str) {
        let content = self.now.get(name).cloned();
        let v = Version {
            content,
            written: None,
        };
        self.since_sync.insert(name.to_string(), vec![v]);
    }
}

/// Could a crash leave `got` from `versions`? Either one of them whole, or
/// one write(2) half done: the kernel hands a long write to the daemon in
/// several requests, and a commit may fall between two of them (as on any
/// filesystem, a write(2) is not atomic across a crash). Half done means
/// the new bytes up to a page boundary, the old ones after it, and the size
/// grown to that boundary at most.
fn reachable(versions: &[Version], got: Option<&[u8]>) -> bool {
    if versions.iter().any(|v| v.content.as_deref() == got) {
        return true;
    }
    let Some(got) = got else { return false };
    versions.windows(2).any(|w| {
        let (Some(old), Some(new), Some((off, end))) = (
            w[0].content.as_deref(),
            w[1].content.as_deref(),
            w[1].written,
        ) else {
            return false;
        };
        let first = (off / PAGE + 1) * PAGE;
        (first..end)
            .step_by(PAGE)
            .any(|b| half_written(old, new, off, b, got))
    })
}

const PAGE: usize = 4096;

/// Is `got` the write from `old` to `new` of bytes `off..` done up to `b`?
fn half_written(old: &[u8], new: &[u8], off: usize, b: usize, got: &[u8]) -> bool {
    let len = old.len().max(b);
    let lo = off.min(old.len());
    got.len() == len
        && got[..lo] == old[..lo]
        && got[lo..b] == new[lo..b]
        && (b >= len || got[b..len] == old[b..len])
}

fn worker(
    dir: PathBuf,
    seed: u64,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
    files: Arc<Mutex<Files>>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    fs::create_dir_all(&dir).ok();
    let fail = |msg: String| totals.error(msg);
    while !stop.load(Ordering::Relaxed) {
        let name = format!("f{}", rng.random_range(0..8));
        let path = dir.join(&name);
        let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
        let current = f.now.get(&name).cloned();
        let op = rng.random_range(0..100);
        let result: std::io::Result<()> = (|| {
            match op {
                0..=29 => {
                    let len = rng.random_range(1..200_000);
                    let byte: u8 = rng.random();
                    let data = vec![byte; len];
                    // open(O_TRUNC) and write(2) are two steps: a commit
                    // may fall between them.
                    f.changed(&name, Some(Vec::new()), None);
                    f.changed(&name, Some(data.clone()), Some((0, len)));
                    fs::write(&path, &data)?;
                    totals.bytes.fetch_add(len as u64, Ordering::Relaxed);
                }
                30..=44 => {
                    let Some(mut data) = current.clone() else {
                        return Ok(());
                    };
                    let off = rng.random_range(0..=data.len());
                    let len = rng.random_range(1..50_000);
                    let byte: u8 = rng.random();
                    if data.len() < off + len {
                        data.resize(off + len, 0);
                    }
                    data[off..off + len].fill(byte);
                    f.changed(&name, Some(data), Some((off, off + len)));
                    let mut h = OpenOptions::new().write(true).open(&path)?;
                    h.seek(SeekFrom::Start(off as u64))?;
                    h.write_all(&vec![byte; len])?;
                    totals.bytes.fetch_add(len as u64, Ordering::Relaxed);
                }
                45..=54 => {
                    let Some(mut data) = current.clone() else {
                        return Ok(());
                    };
                    let size = rng.random_range(0..data.len() + 10_000);
                    data.resize(size, 0);
                    f.changed(&name, Some(data), None);
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(size as u64)?;
                }
                55..=64 => {
                    if current.is_some() {
                        f.changed(&name, None, None);
                        fs::remove_file(&path)?;
                    }
                }
                65..=79 => {
                    if let Some(want) = &current {
                        let mut got = Vec::new();
                        File::open(&path)?.read_to_end(&mut got)?;
                        if &got != want {
                            return Err(std::io::Error::other(format!(
                                "{}: read back {} bytes differing from what was written",
                                path.display(),
                                got.len()
                            )));
                        }
                    }
                }
                80..=89 => {
                    if current.is_some() {
                        File::open(&path)?.sync_all()?;
                        f.synced(&name);
                    }
                }
                _ => {
                    // Replace by rename.
                    let len = rng.random_range(1..100_000);
                    let byte: u8 = rng.random();
                    let data = vec![byte; len];
                    let tmp = dir.join(format!("{name}.tmp"));
                    fs::write(&tmp, &data)?;
                    f.changed(&name, Some(data), None);
                    fs::rename(&tmp, &path)?;
                }
            }
            Ok(())
        })();
        drop(f);
        match result {
            Ok(()) => {
                totals.ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if stop.load(Ordering::Relaxed) => {
                let _ = e; // the daemon is being killed
            }
            Err(e) => fail(format!("{}: {e}", path.display())),
        }
    }
}

/// Runs the workload for `seconds` (or until `stop` is set by the killer).
fn run_load(
    o: &Opts,
    round: u64,
    stop: Arc<AtomicBool>,
    totals: &Arc<Totals>,
    state: &[Arc<Mutex<Files>>],
) {
    let mut handles = Vec::new();
    for (t, files) in state.iter().enumerate() {
        let dir = o.dir.join(format!("t{t}"));
        let (stop, totals, files) = (stop.clone(), totals.clone(), files.clone());
        let seed = o.seed ^ (round << 16) ^ t as u64;
        handles.push(thread::spawn(move || {
            worker(dir, seed, stop, totals, files)
        }));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
}

fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .map(|p| p.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn mount(o: &Opts, image: &Path) -> Result<Child, String> {
    let child = Command::new(sibling("pagelog-mount"))
        .arg(image)
        .arg(&o.dir)
        .arg("-f")
        .arg("-o")
        .arg(format!("journal={},commit=1", o.journal))
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start pagelog-mount: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let canon = o
        .dir
        .canonicalize()
        .map_err(|e| e.to_string())?
        .to_string_lossy()
        .into_owned();
    loop {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if info
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(canon.as_str()))
        {
            return Ok(child);
        }
        if Instant::now() > deadline {
            return Err("the mount did not come up".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// After a crash: every file is at a state reachable since its last fsync.
fn verify(o: &Opts, state: &[Arc<Mutex<Files>>], totals: &Totals) {
    for (t, files) in state.iter().enumerate() {
        let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
        for (name, allowed) in std::mem::take(&mut f.since_sync) {
            let path = o.dir.join(format!("t{t}")).join(&name);
            let got = match fs::read(&path) {
                Ok(c) => Some(c),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    totals.error(format!(
                        "{}: cannot read after the crash: {e}",
                        path.display()
                    ));
                    f.since_sync.insert(name, allowed);
                    continue;
                }
            };
            if !reachable(&allowed, got.as_deref()) {
                totals.error(format!(
                    "{}: after the crash holds {}, no state since its last fsync \
                         (those were: {})",
                    path.display(),
                    describe(got.as_deref()),
                    allowed
                        .iter()
                        .map(|a| describe(a.content.as_deref()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            // Whatever survived is the new baseline.
            f.now.remove(&name);
            if let Some(c) = got.clone() {
                f.now.insert(name.clone(), c);
            }
            let baseline = Version {
                content: got,
                written: None,
            };
            f.since_sync.insert(name, vec![baseline]);
        }
    }
}

/// A file's contents in a few words: its length and the runs of bytes.
fn describe(c: Option<&[u8]>) -> String {
    let Some(c) = c else {
        return "no file".into();
    };
    let mut runs: Vec<(u8, usize)> = Vec::new();
    for &b in c {
        match runs.last_mut() {
            Some((v, n)) if *v == b => *n += 1,
            _ => runs.push((b, 1)),
        }
    }
    let shown: Vec<String> = runs
        .iter()
        .take(6)
        .map(|(v, n)| format!("{n}x{v:#04x}"))
        .collect();
    let more = if runs.len() > 6 { ", ..." } else { "" };
    format!("{} bytes [{}{more}]", c.len(), shown.join(" "))
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pagelog-stress: {e}");
            return ExitCode::from(2);
        }
    };
    let totals = Arc::new(Totals::default());
    let state: Vec<Arc<Mutex<Files>>> = (0..o.threads)
        .map(|_| Arc::new(Mutex::new(Files::default())))
        .collect();
    let started = Instant::now();
    let mut crashes = 0;
    if let Some(image) = o.image.clone() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(o.seed);
        for round in 0..=u64::from(o.crashes) {
            let mut child = match mount(&o, &image) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("pagelog-stress: {e}");
                    return ExitCode::from(1);
                }
            };
            if round > 0 {
                verify(&o, &state, &totals);
            }
            if round == u64::from(o.crashes) {
                let _ = Command::new("umount").arg(&o.dir).status();
                let _ = child.wait();
                break;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let killer = {
                let (stop, pid) = (stop.clone(), child.id());
                let after = Duration::from_secs_f64(rng.random_range(0.2..o.seconds.max(0.3)));
                thread::spawn(move || {
                    thread::sleep(after);
                    // Errors from here on are the crash's, not the filesystem's.
                    stop.store(true, Ordering::Relaxed);
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                })
            };
            run_load(&o, round, stop, &totals, &state);
            let _ = killer.join();
            let _ = child.wait();
            let _ = Command::new("umount").arg("-l").arg(&o.dir).status();
            let fsck = Command::new(sibling("pagelog-fsck"))
                .arg("-q")
                .arg(&image)
                .output();
            match fsck {
                Ok(out) if out.status.success() => crashes += 1,
                Ok(out) => totals.error(format!(
                    "pagelog-fsck after crash {round}: {}",
                    String::from_utf8_lossy(&out.stdout)
                )),
                Err(e) => totals.error(format!("pagelog-fsck: {e}")),
            }
        }
    } else {
        run_load(&o, 0, Arc::new(AtomicBool::new(false)), &totals, &state);
    }
    let errors = totals
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    println!(
        "pagelog-stress: {} operations, {} MiB written, {} crashes survived, {} errors, {:.1} s",
        totals.ops.load(Ordering::Relaxed),
        totals.bytes.load(Ordering::Relaxed) >> 20,
        crashes,
        errors.len(),
        started.elapsed().as_secs_f64()
    );
    for e in errors.iter().take(20) {
        println!("error: {e}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
