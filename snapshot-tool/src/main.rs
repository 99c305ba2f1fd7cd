//! pagelog-snapshot: the retained checkpoints and snapshots of a pagelog
//! image: list them, mark one as a snapshot, delete one, read a file as it
//! was, mount one read-only. One verb each; the work is in `pagelog_core`
//! (`checkpoints.rs`, `fs/snapshots.rs`).
//!
//! On a running mount (named by its mountpoint or its image), every verb
//! goes to the daemon through its control socket (`/run/pagelog/UUID.sock`,
//! see fs-fuse's `control.rs`): `mount` then serves the checkpoint beside
//! the live mount from the same daemon. On an image that is not mounted,
//! the tool opens it itself.

use pagelog_core::seal::passphrase::Source;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use pagelog_core::checkpoints::At;
use pagelog_core::ids::CheckpointNo;
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::objects::Backing;
use pagelog_core::{BlockDevice, CheckpointInfo, Cred, Filesystem, Ino, MountOptions};
use pagelog_tools::daemon::{ask, ask_then, daemon};
use serde::Serialize;

const EXIT_OK: u8 = 0;
const EXIT_FAILED: u8 = 1;

const AFTER_HELP: &str = "\
Every commit of a pagelog filesystem can stay mountable: a commit is retained when
checkpoint_interval (5s) has passed since the last retained one, and plain checkpoints
younger than the protection window (protect=, 1h by default) are kept. They are given
back when the filesystem is short of room: a plain checkpoint is a
convenience. A snapshot is a promise: it stays until you delete it, and when snapshots
hold the space, writes get ENOSPC (pagelog.stats says how much they hold).

Examples:
  pagelog-snapshot list /srv/web.img                  checkpoints and snapshots, oldest first
  pagelog-snapshot create /srv/web.img before-upgrade the current state, as a snapshot
  pagelog-snapshot create /srv/web.img at-nine --at '2026-12-02 09:00'
  pagelog-snapshot cat /srv/web.img before-upgrade etc/app.conf > app.conf.old
  pagelog-snapshot mount /srv/web.img before-upgrade /mnt/old   (read-only)
  pagelog-snapshot delete /srv/web.img before-upgrade  gives back what only it held
  pagelog-snapshot clone /srv/web.img at=10m retry          a branch from 10 minutes ago
  pagelog-snapshot mount /srv/web retry /mnt/retry --rw       beside the live mount
  pagelog-snapshot rollback /srv/web.img before-upgrade   the live tree as it was then;
                                                       the present is kept as a snapshot
  pagelog-snapshot send /srv/web.img nightly --to s3://backups/web
                                        a read-only copy in another bucket; sending the next
                                        night's snapshot there uploads only what changed

A branch is a read-write root made from a snapshot or checkpoint: it shares every unchanged
page with it and leaves the live tree untouched; its origin is kept while it lives.

NAME in cat and mount (and SOURCE in clone) may also be a checkpoint number (cp=N) or a
time (at=TIME).
TIME: @SECONDS, 2026-12-02T10:00:00Z, '2026-12-02 10:00' (local), or back from now: 10m,
'2 hours ago'.

IMAGE is an image, or the mountpoint of a running mount: every verb then goes to the
daemon (root or the user who mounted), and mount serves the checkpoint read-only beside
the live mount (umount DIR ends it; a mounted snapshot cannot be deleted).
A sealed (encrypted) image opened offline needs its passphrase: asked on the terminal, or
given by --passphrase-file or --passphrase-cmd (a running mount needs none).
Exit status: 0 done, 1 failed (the message says why), 2 bad usage, 77 wrong passphrase.";

/// List, create, delete and read snapshots and retained checkpoints.
#[derive(Parser, Debug)]
#[command(name = "pagelog-snapshot", version, after_help = AFTER_HELP)]
struct Args {
    #[command(subcommand)]
    verb: Verb,
    /// Print as JSON
    #[arg(long, global = true)]
    json: bool,
    /// A sealed image's passphrase: the first line of FILE
    #[arg(long, value_name = "FILE", global = true)]
    passphrase_file: Option<PathBuf>,
    /// A sealed image's passphrase: the first line CMD prints (run by /bin/sh)
    #[arg(
        long,
        value_name = "CMD",
        global = true,
        conflicts_with = "passphrase_file"
    )]
    passphrase_cmd: Option<String>,
}

/// Where the passphrase of a sealed image comes from, as the command line
/// says: set once in `main`, read when an image is opened offline.
static PASSPHRASE: std::sync::OnceLock<Source> = std::sync::OnceLock::new();

#[derive(Subcommand, Debug)]
enum Verb {
    /// Retained checkpoints and snapshots, oldest first, with what each holds
    List {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
    },
    /// Mark the current state, or a retained checkpoint, as snapshot NAME
    Create {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        /// The snapshot's name (1 to 127 bytes, no '/')
        name: OsString,
        /// Mark retained checkpoint N instead of the current state
        #[arg(long, value_name = "N", conflicts_with = "at")]
        cp: Option<u64>,
        /// Mark the newest checkpoint taken at or before TIME
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Make read-write branch NAME from a snapshot or checkpoint (shares
    /// every unchanged page with it; the live tree is not touched)
    Clone {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        /// Snapshot name, cp=N or at=TIME
        source: OsString,
        /// The branch's name (1 to 127 bytes, no '/')
        name: OsString,
    },
    /// Make a snapshot, checkpoint or branch the live tree; the present is
    /// kept as a snapshot first, and no snapshot is destroyed (needs the
    /// image unmounted)
    Rollback {
        /// Image file or block device
        image: PathBuf,
        /// Snapshot name, cp=N, at=TIME, or a branch's name
        name: OsString,
        /// Keep the present as this snapshot (default pre-rollback-DATE)
        #[arg(long, value_name = "NAME")]
        keep_as: Option<OsString>,
    },
    /// What changed from OLDER to NEWER: + created, - deleted, M modified,
    /// R renamed (as zfs diff shows it)
    Diff {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        /// Snapshot name, cp=N, at=TIME, or a branch's name
        older: OsString,
        /// Snapshot name, cp=N, at=TIME, or a branch's name
        newer: OsString,
    },
    /// Delete snapshot or branch NAME; what only it held comes back
    Delete {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        /// The snapshot's name
        name: OsString,
    },
    /// Write one file as it was in a snapshot or checkpoint to standard output
    Cat {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        /// Snapshot name, cp=N or at=TIME
        name: OsString,
        /// Path of the file inside the filesystem
        path: OsString,
    },
    /// Send a snapshot or checkpoint to an object store as a read-only
    /// copy of the filesystem as it holds it; a later send to the same
    /// place uploads only what the copy lacks
    Send {
        /// Image file, block device or store (s3://BUCKET/PREFIX, dir:/PATH)
        image: PathBuf,
        /// Snapshot name, cp=N or at=TIME
        name: OsString,
        /// Where the copy goes: s3://BUCKET/PREFIX or dir:/PATH
        #[arg(long, value_name = "URL")]
        to: String,
        /// Replace a copy of another filesystem, or one that cannot be read
        #[arg(long)]
        force: bool,
    },
    /// Mount a snapshot or checkpoint read-only (beside a running mount, or
    /// by running pagelog-mount)
    Mount {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        /// Snapshot name, cp=N or at=TIME
        name: OsString,
        /// Mount point
        dir: PathBuf,
        /// NAME is a branch: mount it read-write
        #[arg(long)]
        rw: bool,
    },
}

/// A failure, said on standard error.
type Failure = String;

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    let source = Source::from_options(args.passphrase_file.clone(), args.passphrase_cmd.clone());
    let _ = PASSPHRASE.set(source);
    match run(args) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&out).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::from(EXIT_OK),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_OK),
                Err(e) => fail(&format!("cannot write the output: {e}"), json),
            }
        }
        Err(msg) => fail(&msg, json),
    }
}

fn fail(msg: &str, json: bool) -> ExitCode {
    let line = match json {
        true => serde_json::json!({ "error": msg }).to_string(),
        false => format!("pagelog-snapshot: {msg}"),
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    ExitCode::from(EXIT_FAILED)
}

fn run(args: Args) -> Result<Vec<u8>, Failure> {
    let json = args.json;
    match args.verb {
        Verb::List { image } => match daemon(&image)? {
            Some(sock) => {
                let v = ask(&sock, &serde_json::json!({ "verb": "list" }))?;
                show_listing(listing_of(&v)?, json)
            }
            None => list(&image, json),
        },
        Verb::Create {
            image,
            name,
            cp,
            at,
        } => {
            let at = match (cp, at) {
                (Some(n), _) => Some(At::Checkpoint(CheckpointNo(n))),
                (None, Some(t)) => Some(At::Time(time(&t)?)),
                (None, None) => None,
            };
            match daemon(&image)? {
                Some(sock) => create_online(&sock, name.as_bytes(), at, json),
                None => create(&image, name.as_bytes(), at, json),
            }
        }
        Verb::Delete { image, name } => match daemon(&image)? {
            Some(sock) => {
                let name = String::from_utf8_lossy(name.as_bytes()).into_owned();
                let v = ask(
                    &sock,
                    &serde_json::json!({ "verb": "delete", "name": name }),
                )?;
                let no = CheckpointNo(v["checkpoint"].as_u64().unwrap_or(0));
                Ok(report(json, "deleted", name.as_bytes(), no))
            }
            None => delete(&image, name.as_bytes(), json),
        },
        Verb::Cat { image, name, path } => {
            let at = selector(name.as_bytes())?;
            match daemon(&image)? {
                Some(sock) => {
                    let mut req = request("cat", selecting(&at));
                    req["path"] = String::from_utf8_lossy(path.as_bytes()).into();
                    cat_online(&sock, &req)?;
                    Ok(Vec::new())
                }
                None => cat(&image, &at, path.as_bytes()),
            }
        }
        Verb::Clone {
            image,
            source,
            name,
        } => {
            let at = selector(source.as_bytes())?;
            match daemon(&image)? {
                Some(sock) => {
                    let mut req = request("clone", selecting(&at));
                    req["name"] = String::from_utf8_lossy(name.as_bytes()).into();
                    let v = ask(&sock, &req)?;
                    let no = CheckpointNo(v["checkpoint"].as_u64().unwrap_or(0));
                    Ok(report_branch(json, name.as_bytes(), no))
                }
                None => clone(&image, &at, name.as_bytes(), json),
            }
        }
        Verb::Diff {
            image,
            older,
            newer,
        } => match daemon(&image)? {
            Some(sock) => {
                let (o, n) = (selector(older.as_bytes())?, selector(newer.as_bytes())?);
                let req = serde_json::json!({
                    "verb": "diff", "older": selecting(&o), "newer": selecting(&n)
                });
                let v = ask(&sock, &req)?;
                let changes = v["changes"].as_array().cloned().unwrap_or_default();
                show_changes(
                    changes
                        .iter()
                        .map(|c| Shown {
                            mark: c["mark"].as_str().unwrap_or("?").to_string(),
                            path: c["path"].as_str().unwrap_or("").to_string(),
                            to: c["to"].as_str().map(str::to_string),
                            dir: c["dir"].as_bool().unwrap_or(false),
                        })
                        .collect(),
                    json,
                )
            }
            None => diff(&image, older.as_bytes(), newer.as_bytes(), json),
        },
        Verb::Rollback {
            image,
            name,
            keep_as,
        } => {
            if daemon(&image)?.is_some() {
                return Err(format!(
                    "{} is mounted: a rollback changes the live tree under the kernel's caches,                      so it needs the filesystem unmounted (to work on the past beside the live                      tree, clone it into a branch and mount that)",
                    image.display()
                ));
            }
            rollback(
                &image,
                name.as_bytes(),
                keep_as.as_ref().map(|k| k.as_bytes()),
                json,
            )
        }
        Verb::Send {
            image,
            name,
            to,
            force,
        } => send(&image, name.as_bytes(), &to, force, json),
        Verb::Mount {
            image,
            name,
            dir,
            rw,
        } => match daemon(&image)? {
            Some(sock) => {
                let named = match rw {
                    true => {
                        serde_json::json!({ "branch": String::from_utf8_lossy(name.as_bytes()) })
                    }
                    false => selecting(&selector(name.as_bytes())?),
                };
                let mut req = request("mount", named);
                let dir = dir
                    .canonicalize()
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                req["dir"] = dir.to_string_lossy().into();
                let v = ask(&sock, &req)?;
                let no = v["checkpoint"].as_u64().unwrap_or(0);
                Ok(match (json, rw) {
                    (true, _) => format!("{v}\n"),
                    (false, true) => format!(
                        "mounted branch '{}' read-write at {}\n",
                        String::from_utf8_lossy(name.as_bytes()),
                        dir.display()
                    ),
                    (false, false) => {
                        format!("mounted checkpoint {no} read-only at {}\n", dir.display())
                    }
                }
                .into_bytes())
            }
            None => mount(&image, name.as_bytes(), &dir, rw),
        },
    }
}

fn time(s: &str) -> Result<i64, Failure> {
    pagelog_core::when::parse_time(s, pagelog_core::store::now_ns())
}

/// A snapshot name, `cp=N` or `at=TIME`.
fn selector(name: &[u8]) -> Result<At, Failure> {
    let text = String::from_utf8_lossy(name);
    if let Some(n) = text.strip_prefix("cp=") {
        let n = n
            .parse()
            .map_err(|_| format!("cp={n}: not a checkpoint number"))?;
        return Ok(At::Checkpoint(CheckpointNo(n)));
    }
    if let Some(t) = text.strip_prefix("at=") {
        return Ok(At::Time(time(t)?));
    }
    Ok(At::Snapshot(name.to_vec()))
}

/// `fields` as a control request for `verb`.
fn request(verb: &str, mut fields: serde_json::Value) -> serde_json::Value {
    fields["verb"] = verb.into();
    fields
}

/// The fields of a control request that name `at`.
fn selecting(at: &At) -> serde_json::Value {
    match at {
        At::Snapshot(n) => serde_json::json!({ "snapshot": String::from_utf8_lossy(n) }),
        At::Checkpoint(n) => serde_json::json!({ "cp": n.0 }),
        At::Time(t) => serde_json::json!({ "at_ns": t }),
    }
}

/// Opens and mounts the image; writable ones are locked, and a mounted
/// image says so.
fn open(image: &Path, opts: MountOptions) -> Result<Filesystem, Failure> {
    let writable = !opts.read_only;
    let (dev, key) = device(image, writable, true)?;
    let opts = MountOptions { key, ..opts };
    Filesystem::mount(dev, opts).map_err(|e| format!("{}: {e}", image.display()))
}

/// The image or store `image`, opened for writing or not, locked if
/// `lock`, and its key if it is sealed.
fn device(
    image: &Path,
    writable: bool,
    lock: bool,
) -> Result<(Arc<dyn BlockDevice>, Option<pagelog_core::seal::MasterKey>), Failure> {
    let dev = Backing::open(image, writable)?;
    let locked = match lock {
        true => dev.lock(writable),
        false => Ok(()),
    };
    locked.map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => format!(
            "{} is mounted or in use, and no daemon answers on its control socket: list, \
             create and delete reach a running mount only through it; cat and mount need the \
             image unmounted",
            image.display()
        ),
        _ => format!("cannot lock {}: {e}", image.display()),
    })?;
    let source = PASSPHRASE.get().cloned().unwrap_or_default();
    let key = match pagelog_core::seal::unlock(&dev, &source) {
        Ok(k) => k,
        Err(e @ pagelog_core::Error::WrongPassphrase) => {
            // Its own status, so that a script can ask again.
            let _ = writeln!(
                std::io::stderr().lock(),
                "pagelog-snapshot: {}: {e}",
                image.display()
            );
            std::process::exit(i32::from(pagelog_core::seal::EXIT_WRONG_PASSPHRASE));
        }
        Err(e) => return Err(format!("{}: {e}", image.display())),
    };
    Ok((Arc::new(dev), key))
}

fn read_only(at: Option<At>) -> MountOptions {
    MountOptions {
        read_only: true,
        at,
        ..MountOptions::default()
    }
}

#[derive(Serialize)]
struct Listed {
    checkpoint: u64,
    time: String,
    time_ns: i64,
    kind: &'static str,
    name: Option<String>,
    exclusive_bytes: u64,
    held_bytes: u64,
    protected: bool,
    /// Where a running daemon serves it beside the live mount.
    mounted_at: Option<String>,
}

#[derive(Serialize)]
struct ListedBranch {
    name: String,
    /// The checkpoint it was made from.
    origin: u64,
    time: String,
    time_ns: i64,
    /// What deleting it gives back.
    exclusive_bytes: u64,
    mounted_at: Option<String>,
}

#[derive(Serialize)]
struct Listing {
    protect_secs: u64,
    checkpoints: Vec<Listed>,
    branches: Vec<ListedBranch>,
}

fn listed_branch(b: &pagelog_core::BranchInfo) -> ListedBranch {
    ListedBranch {
        name: String::from_utf8_lossy(&b.name).into_owned(),
        origin: b.origin.0,
        time: utc(b.time_ns),
        time_ns: b.time_ns,
        exclusive_bytes: b.exclusive_pages * PAGE_SIZE as u64,
        mounted_at: None,
    }
}

fn utc(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| format!("{ns} ns"))
}

fn listed(c: &CheckpointInfo) -> Listed {
    Listed {
        checkpoint: c.no.0,
        time: utc(c.time_ns),
        time_ns: c.time_ns,
        kind: if c.snapshot.is_some() {
            "snapshot"
        } else {
            "checkpoint"
        },
        name: c
            .snapshot
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned()),
        exclusive_bytes: c.exclusive_pages * PAGE_SIZE as u64,
        held_bytes: c.held_pages * PAGE_SIZE as u64,
        protected: c.protected,
        mounted_at: None,
    }
}

fn list(image: &Path, json: bool) -> Result<Vec<u8>, Failure> {
    let fs = open(image, read_only(None))?;
    let listing = Listing {
        protect_secs: fs.protect_secs(),
        checkpoints: fs.checkpoints().iter().map(listed).collect(),
        branches: fs.branches().iter().map(listed_branch).collect(),
    };
    show_listing(listing, json)
}

/// A listing as the daemon sends it.
fn listing_of(v: &serde_json::Value) -> Result<Listing, Failure> {
    let bad = || format!("the daemon's listing makes no sense: {v}");
    let cps = v["checkpoints"].as_array().ok_or_else(bad)?;
    let checkpoints = cps
        .iter()
        .map(|c| {
            let no = c["checkpoint"].as_u64().ok_or_else(bad)?;
            let time_ns = c["time_ns"].as_i64().ok_or_else(bad)?;
            let mut l = listed(&CheckpointInfo {
                no: CheckpointNo(no),
                time_ns,
                snapshot: c["snapshot"].as_str().map(|n| n.as_bytes().to_vec()),
                exclusive_pages: c["exclusive_pages"].as_u64().unwrap_or(0),
                held_pages: c["held_pages"].as_u64().unwrap_or(0),
                protected: c["protected"].as_bool().unwrap_or(false),
                mounted: false,
            });
            l.mounted_at = c["mounted_at"].as_str().map(str::to_string);
            Ok(l)
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let branches = v["branches"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|b| ListedBranch {
            name: b["name"].as_str().unwrap_or_default().to_string(),
            origin: b["origin"].as_u64().unwrap_or(0),
            time: utc(b["time_ns"].as_i64().unwrap_or(0)),
            time_ns: b["time_ns"].as_i64().unwrap_or(0),
            exclusive_bytes: b["exclusive_pages"].as_u64().unwrap_or(0) * PAGE_SIZE as u64,
            mounted_at: b["mounted_at"].as_str().map(str::to_string),
        })
        .collect();
    Ok(Listing {
        protect_secs: v["protect_secs"].as_u64().unwrap_or(0),
        checkpoints,
        branches,
    })
}

fn show_listing(listing: Listing, json: bool) -> Result<Vec<u8>, Failure> {
    if json {
        let mut out = serde_json::to_vec_pretty(&listing).map_err(|e| e.to_string())?;
        out.push(b'\n');
        return Ok(out);
    }
    let mut out = format!(
        "{:>8}  {:<19}  {:<10}  {:>10}  {:>10}  NAME\n",
        "CP", "TIME (UTC)", "KIND", "EXCLUSIVE", "HELD"
    );
    let mib = |b: u64| format!("{:.1}M", b as f64 / f64::from(1 << 20));
    for c in &listing.checkpoints {
        out += &format!(
            "{:>8}  {:<19}  {:<10}  {:>10}  {:>10}  {}{}\n",
            c.checkpoint,
            c.time,
            c.kind,
            mib(c.exclusive_bytes),
            mib(c.held_bytes),
            c.name.as_deref().unwrap_or(""),
            c.mounted_at
                .as_ref()
                .map_or(String::new(), |d| format!(" (mounted at {d})")),
        );
    }
    for b in &listing.branches {
        out += &format!(
            "{:>8}  {:<19}  {:<10}  {:>10}  {:>10}  {}{}\n",
            b.origin,
            b.time,
            "branch",
            mib(b.exclusive_bytes),
            "-",
            b.name,
            b.mounted_at
                .as_ref()
                .map_or(String::new(), |d| format!(" (mounted at {d})")),
        );
    }
    let oldest = listing
        .checkpoints
        .iter()
        .find(|c| c.kind == "checkpoint" && c.protected);
    out += &format!(
        "protection window: {}s; plain checkpoints reach back to {}\n",
        listing.protect_secs,
        oldest.map_or("(none retained)".to_string(), |c| format!("{} UTC", c.time))
    );
    Ok(out.into_bytes())
}

/// `cat` through the daemon: the file's bytes follow the answer, copied
/// to standard output as they come.
fn cat_online(sock: &Path, req: &serde_json::Value) -> Result<(), Failure> {
    ask_then(sock, req, |v, rest| {
        let size = v["size"].as_u64().unwrap_or(0);
        let mut out = std::io::stdout().lock();
        let copied = std::io::copy(&mut std::io::Read::take(rest, size), &mut out)
            .map_err(|e| format!("cannot write the output: {e}"))?;
        out.flush()
            .map_err(|e| format!("cannot write the output: {e}"))?;
        match copied == size {
            true => Ok(()),
            false => Err(format!(
                "the daemon sent {copied} bytes of {size} (its log says why)"
            )),
        }
    })
    .map(|_| ())
}

fn create_online(sock: &Path, name: &[u8], at: Option<At>, json: bool) -> Result<Vec<u8>, Failure> {
    let cp = match at {
        None => None,
        Some(At::Checkpoint(n)) => Some(n.0),
        Some(at) => {
            let v = ask(sock, &serde_json::json!({ "verb": "list" }))?;
            let At::Time(t) = at else {
                return Err("a snapshot name is not a time".into());
            };
            let found = listing_of(&v)?
                .checkpoints
                .iter()
                .rev()
                .find(|c| c.time_ns <= t)
                .map(|c| c.checkpoint);
            Some(
                found
                    .ok_or("no retained checkpoint matches; `pagelog-snapshot list` shows them")?,
            )
        }
    };
    let name_s = String::from_utf8_lossy(name).into_owned();
    let mut req = serde_json::json!({ "verb": "create", "name": name_s });
    if let Some(n) = cp {
        req["cp"] = serde_json::json!(n);
    }
    let v = ask(sock, &req)?;
    let no = CheckpointNo(v["checkpoint"].as_u64().unwrap_or(0));
    Ok(report(json, "created", name, no))
}

fn create(image: &Path, name: &[u8], at: Option<At>, json: bool) -> Result<Vec<u8>, Failure> {
    let mut fs = open(image, MountOptions::default())?;
    let cp = match at {
        None => None,
        Some(at) => Some(
            fs.checkpoints()
                .iter()
                .rev()
                .find(|c| match &at {
                    At::Checkpoint(n) => c.no == *n,
                    At::Time(t) => c.time_ns <= *t,
                    At::Snapshot(_) => false,
                })
                .map(|c| c.no)
                .ok_or("no retained checkpoint matches; `pagelog-snapshot list` shows them")?,
        ),
    };
    let no = fs
        .create_snapshot(name, cp)
        .map_err(|e| format!("cannot create snapshot: {e}"))?;
    fs.unmount().map_err(|e| format!("unmount: {e}"))?;
    Ok(report(json, "created", name, no))
}

fn delete(image: &Path, name: &[u8], json: bool) -> Result<Vec<u8>, Failure> {
    let mut fs = open(image, MountOptions::default())?;
    if let Some(b) = fs.branches().into_iter().find(|b| b.name == name) {
        fs.delete_branch(name)
            .map_err(|e| format!("cannot delete branch: {e}"))?;
        fs.unmount().map_err(|e| format!("unmount: {e}"))?;
        let shown = String::from_utf8_lossy(name);
        let line = match json {
            true => {
                serde_json::json!({ "deleted": shown, "branch": true, "checkpoint": b.origin.0 })
                    .to_string()
            }
            false => format!(
                "deleted branch '{shown}' (made from checkpoint {})",
                b.origin
            ),
        };
        return Ok(format!("{line}\n").into_bytes());
    }
    let no = fs
        .checkpoints()
        .iter()
        .find(|c| c.snapshot.as_deref() == Some(name))
        .map(|c| c.no);
    fs.delete_snapshot(name)
        .map_err(|e| format!("cannot delete snapshot: {e}"))?;
    fs.unmount().map_err(|e| format!("unmount: {e}"))?;
    Ok(report(json, "deleted", name, no.unwrap_or_default()))
}

/// A change as printed.
#[derive(Serialize)]
struct Shown {
    mark: String,
    path: String,
    to: Option<String>,
    dir: bool,
}

fn show_changes(changes: Vec<Shown>, json: bool) -> Result<Vec<u8>, Failure> {
    if json {
        let mut out = serde_json::to_vec_pretty(&changes).map_err(|e| e.to_string())?;
        out.push(b'\n');
        return Ok(out);
    }
    let mut out = String::new();
    for c in changes {
        match c.to {
            Some(to) => out += &format!("{}\t{} -> {}\n", c.mark, c.path, to),
            None => out += &format!("{}\t{}\n", c.mark, c.path),
        }
    }
    Ok(out.into_bytes())
}

/// The root `name` names in `fs`: a branch's name, else a checkpoint.
fn root_name(fs: &Filesystem, name: &[u8]) -> Result<pagelog_core::roots::RootName, Failure> {
    use pagelog_core::roots::RootName;
    Ok(match fs.branches().iter().any(|b| b.name == name) {
        true => RootName::Branch(name.to_vec()),
        false => RootName::Past(selector(name)?),
    })
}

fn diff(image: &Path, older: &[u8], newer: &[u8], json: bool) -> Result<Vec<u8>, Failure> {
    let mut fs = open(image, read_only(None))?;
    let (o, n) = (root_name(&fs, older)?, root_name(&fs, newer)?);
    let changes = fs.diff(&o, &n).map_err(|e| format!("cannot diff: {e}"))?;
    let text = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let shown = changes
        .iter()
        .map(|c| Shown {
            mark: c.kind.mark().to_string(),
            path: text(&c.path),
            to: c.to.as_deref().map(text),
            dir: c.is_dir,
        })
        .collect();
    show_changes(shown, json)
}

fn rollback(
    image: &Path,
    name: &[u8],
    keep_as: Option<&[u8]>,
    json: bool,
) -> Result<Vec<u8>, Failure> {
    use pagelog_core::roots::RootName as Source;
    let mut fs = open(image, MountOptions::default())?;
    let source: Source = root_name(&fs, name)?;
    let (from, keep, kept) = fs
        .rollback(&source, keep_as)
        .map_err(|e| format!("cannot roll back: {e}"))?;
    fs.unmount().map_err(|e| format!("unmount: {e}"))?;
    let (shown, keep) = (
        String::from_utf8_lossy(name),
        String::from_utf8_lossy(&keep),
    );
    let line = match json {
        true => serde_json::json!({
            "rolled_back_to": shown, "checkpoint": from.0, "kept_as": keep, "kept_checkpoint": kept.0
        })
        .to_string(),
        false => format!(
            "rolled back to '{shown}' (checkpoint {from}); the present is kept as snapshot \
             '{keep}' (checkpoint {kept})"
        ),
    };
    Ok(format!("{line}\n").into_bytes())
}

/// `pagelog-snapshot send`: the work is in `pagelog_core::objects::send`.
/// The source is read, never written, and not locked: a mounted one is
/// read as its newest commit, and the send stops, publishing nothing, if
/// a segment it ships changes while it reads.
fn send(image: &Path, name: &[u8], to: &str, force: bool, json: bool) -> Result<Vec<u8>, Failure> {
    use pagelog_core::objects::send::{send, SendOptions};
    use pagelog_core::objects::{Location, StoreSettings};
    let at = selector(name)?;
    let loc = match Location::parse(to) {
        Some(loc) => loc?,
        None => {
            return Err(format!(
                "--to {to}: not a store (s3://BUCKET/PREFIX or dir:/PATH)"
            ))
        }
    };
    // The source first: nothing is made at the target for a send that
    // cannot start.
    let (dev, key) = device(image, false, false)?;
    let settings = StoreSettings::load(None)?;
    let target = loc.backend(&settings).map_err(|e| format!("{loc}: {e}"))?;
    let label = String::from_utf8_lossy(name).into_owned();
    let opts = SendOptions {
        force,
        ..SendOptions::default()
    };
    let sent = send(dev, key.as_ref(), &at, &label, target, &opts)
        .map_err(|e| format!("cannot send '{label}' to {loc}: {e}"))?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let line = match json {
        true => serde_json::json!({
            "sent": label, "checkpoint": sent.checkpoint, "to": loc.to_string(),
            "segments": sent.segments, "bytes": sent.bytes, "uploaded": sent.uploaded,
            "uploaded_bytes": sent.uploaded_bytes, "kept": sent.kept, "deleted": sent.deleted,
            "leftover": sent.leftover,
            "generation": sent.generation, "replaced": sent.replaced,
        })
        .to_string(),
        false => format!(
            "sent '{label}' (checkpoint {}) to {loc}: {} segments, {:.1} MiB; uploaded {} \
             objects ({:.1} MiB), {} already there, {} no longer needed deleted{}\n\
             mount it with: pagelog-mount -o ro {loc} DIR",
            sent.checkpoint,
            sent.segments,
            mib(sent.bytes),
            sent.uploaded,
            mib(sent.uploaded_bytes),
            sent.kept,
            sent.deleted,
            match &sent.replaced {
                Some(old) => format!("; it replaces the copy of '{old}'"),
                None => String::new(),
            }
        ),
    };
    Ok(format!("{line}\n").into_bytes())
}

fn clone(image: &Path, at: &At, name: &[u8], json: bool) -> Result<Vec<u8>, Failure> {
    let mut fs = open(image, MountOptions::default())?;
    let no = fs
        .create_branch(name, at)
        .map_err(|e| format!("cannot make branch: {e}"))?;
    fs.unmount().map_err(|e| format!("unmount: {e}"))?;
    Ok(report_branch(json, name, no))
}

fn report_branch(json: bool, name: &[u8], origin: CheckpointNo) -> Vec<u8> {
    let name = String::from_utf8_lossy(name);
    let line = match json {
        true => serde_json::json!({ "branch": name, "checkpoint": origin.0 }).to_string(),
        false => format!("made branch '{name}' from checkpoint {origin}"),
    };
    format!("{line}\n").into_bytes()
}

fn report(json: bool, what: &str, name: &[u8], no: CheckpointNo) -> Vec<u8> {
    let name = String::from_utf8_lossy(name);
    let line = match json {
        true => serde_json::json!({ what: name, "checkpoint": no.0 }).to_string(),
        false => format!("{what} snapshot '{name}' (checkpoint {no})"),
    };
    format!("{line}\n").into_bytes()
}

fn cat(image: &Path, at: &At, path: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut fs = open(image, read_only(Some(at.clone())))?;
    let shown = String::from_utf8_lossy(path).into_owned();
    let root = Cred::root();
    let mut ino = Ino::ROOT;
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        ino = fs
            .lookup(&root, ino, part)
            .map_err(|e| format!("{shown}: {e}"))?
            .ino;
    }
    let size = fs.getattr(ino).map_err(|e| format!("{shown}: {e}"))?.size;
    let mut out = Vec::new();
    let mut off = 0u64;
    while off < size {
        let chunk = fs
            .read(ino, off, 1 << 20)
            .map_err(|e| format!("{shown}: {e}"))?;
        if chunk.is_empty() {
            break;
        }
        off += chunk.len() as u64;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn mount(image: &Path, name: &[u8], dir: &Path, rw: bool) -> Result<Vec<u8>, Failure> {
    let opt = match selector(name)? {
        _ if rw => format!("rw,branch={}", String::from_utf8_lossy(name)),
        At::Snapshot(n) => format!("ro,snapshot={}", String::from_utf8_lossy(&n)),
        At::Checkpoint(n) => format!("ro,cp={n}"),
        At::Time(t) => format!("ro,at=@{}", t.div_euclid(1_000_000_000)),
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mounter = exe.with_file_name("pagelog-mount");
    let mounter = if mounter.exists() {
        mounter
    } else {
        PathBuf::from("pagelog-mount")
    };
    let mut cmd = std::process::Command::new(&mounter);
    match PASSPHRASE.get() {
        Some(Source::File(f)) => {
            cmd.arg("--passphrase-file").arg(f);
        }
        Some(Source::Command(c)) => {
            cmd.arg("--passphrase-cmd").arg(c);
        }
        _ => {}
    }
    let status = cmd
        .arg("-o")
        .arg(opt)
        .arg(image)
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", mounter.display()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", mounter.display()));
    }
    Ok(Vec::new())
}
