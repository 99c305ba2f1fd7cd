//! The control socket: how `pagelog-snapshot` (and other tools) reach a
//! running daemon. A Unix socket at `/run/pagelog/UUID.sock` (the
//! filesystem's UUID, which a tool reads from the image or finds through
//! the mountpoint's image), mode 0600; each connection's peer is checked
//! with SO_PEERCRED and must be root or the user who mounted. One JSON
//! request per line, one JSON answer per line:
//!
//! ```text
//! {"verb":"list"}                         {"ok":true,"protect_secs":3600,"checkpoints":[...]}
//! {"verb":"create","name":"n","cp":7}     {"ok":true,"checkpoint":7}
//! {"verb":"delete","name":"n"}            {"ok":true,"checkpoint":7}
//! {"verb":"stats"}                        {"ok":true,"stats":"state: ...\n..."}
//! {"verb":"mount","snapshot":"n","dir":D} {"ok":true,"checkpoint":7,"dir":D}
//! {"verb":"mount","branch":"b","dir":D}   {"ok":true,"checkpoint":7,"dir":D}
//! {"verb":"clone","cp":7,"name":"b"}      {"ok":true,"checkpoint":7}
//! {"verb":"diff","older":{"snapshot":"a"},"newer":{"branch":"b"}}
//!                                         {"ok":true,"changes":[{"mark":"M","path":"/x"}]}
//! {"verb":"mounts"}                       {"ok":true,"mounts":[{"dir":D,"checkpoint":7}]}
//! {"verb":"cat","cp":7,"path":"etc/x"}    {"ok":true,"size":N} then N raw bytes
//! {"verb":"quota","kind":"user"}          {"ok":true,"answer":{"kind":"user","now":S,
//!                                          "grace":[S,S],"lines":[{"id":{...},"used":{...},
//!                                          "record":{...}}]}}
//! {"verb":"setquota","kind":"user","id":1001,"page_hard":N,...}
//!                                         {"ok":true,"answer":{"id":{...},"used":...}}
//! {"verb":"setgrace","kind":"user","pages":S,"inodes":S}   {"ok":true,"answer":[S,S]}
//! anything wrong                          {"ok":false,"error":"why"}
//! ```
//!
//! `mount`, `clone` and `cat` name a retained checkpoint by `"snapshot"`
//! (a name), `"cp"` (a number) or `"at_ns"` (the newest taken at or before
//! that time, in ns since the epoch). `mount` serves it read-only on
//! `"dir"` beside the live mount, or a branch (`"branch"`) read-write (see
//! `views.rs`); `clone` makes branch `"name"` from it; `delete` deletes a
//! snapshot or a branch.
//!
//! The quota verbs (`quota.rs`) are root's only, and concern the root the
//! mount serves (the live tree, or its branch); `setquota` and `setgrace`
//! commit before they answer.
//!
//! A socket left by a daemon that died is found stale (nothing answers)
//! and replaced.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use pagelog_core::checkpoints::At;
use pagelog_core::ids::CheckpointNo;
use pagelog_core::roots::RootName;
use pagelog_core::{Cred, Filesystem, Ino, ViewId};
use serde_json::{json, Value};

use crate::adapter::Shared;
use crate::views::{Target, ViewMounts};

mod defrag;
mod quota;
use quota::is_quota_verb;

/// What the control socket serves.
pub struct Context {
    /// The mounted filesystem.
    pub shared: Arc<Shared>,
    /// Flushes the kernel's cached writes to the daemon (run before a
    /// snapshot of the present).
    pub syncfs: Box<dyn Fn() + Send + Sync>,
    /// Checkpoints mounted beside the live mount.
    pub views: ViewMounts,
    /// The view of the branch the mount itself serves, if not the live
    /// root: the verbs about the served root (quotas) reach it through it.
    pub branch_view: Option<ViewId>,
}

/// A bound control socket; the file goes when this is dropped.
#[derive(Debug)]
pub struct Control {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
        // Wake the accept loop so that it sees `stop`.
        let _ = UnixStream::connect(&self.path);
    }
}

/// Binds the control socket of `uuid` and serves `ctx` on a thread.
pub fn start(uuid: &[u8; 16], ctx: Arc<Context>) -> std::io::Result<Control> {
    std::fs::create_dir_all(pagelog_core::info::CONTROL_DIR)?;
    let path = pagelog_core::info::control_socket(uuid);
    if path.exists() {
        match UnixStream::connect(&path) {
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} answers: another daemon serves this filesystem",
                    path.display()
                )))
            }
            // Stale: left by a daemon that died.
            Err(_) => std::fs::remove_file(&path)?,
        }
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let stop = Arc::new(AtomicBool::new(false));
    let owner = nix::unistd::getuid().as_raw();
    let halt = stop.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            if halt.load(Ordering::SeqCst) {
                return;
            }
            match conn {
                // A connection each its own thread: a slow `cat` reader
                // must not hold up a `list` or a `create` (requests still
                // take the filesystem's lock one at a time).
                Ok(stream) => {
                    let ctx = ctx.clone();
                    thread::spawn(move || serve(stream, owner, &ctx));
                }
                Err(e) => log::warn!("control socket: {e}"),
            }
        }
    });
    Ok(Control { path, stop })
}

/// Who is calling, if the kernel says.
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .map(|c| c.uid())
}

fn serve(stream: UnixStream, owner: u32, ctx: &Context) {
    let peer = peer_uid(&stream);
    let allowed = peer.is_some_and(|uid| uid == 0 || uid == owner);
    // A client that connects and says nothing does not keep a thread.
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    // Nor does one that stops reading a `cat` keep its view (and so its
    // checkpoint) open.
    let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(30)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    let (answer, file) = if !allowed {
        (
            refuse("only root or the user who mounted may use the control socket"),
            None,
        )
    } else {
        match reader.read_line(&mut line) {
            Ok(_) => match serde_json::from_str::<Value>(&line) {
                Ok(req) if is_quota_verb(&req) => (quota::answer(&req, ctx, peer), None),
                Ok(req) if req["verb"] == "defrag" => (defrag::answer(&req, ctx), None),
                Ok(req) => answer(&req, ctx),
                Err(e) => (refuse(&format!("not a JSON request: {e}")), None),
            },
            Err(e) => (refuse(&format!("cannot read the request: {e}")), None),
        }
    };
    let mut out = &stream;
    // One write: a listing of thousands of checkpoints written through
    // `Display` straight into the socket would be a write per token.
    let sent = out.write_all(format!("{answer}\n").as_bytes());
    if let Some(file) = file {
        if sent.is_ok() {
            send_file(&mut out, &ctx.shared, &file);
        }
        if let Some(fs) = ctx.shared.lock().as_mut() {
            if let Err(e) = fs.close_view(file.view) {
                log::warn!("control socket: closing a view: {e}");
            }
        }
    }
}

/// A file of the past being sent (`cat`): the view it is read through
/// stays open until it is sent.
struct PastFile {
    view: ViewId,
    ino: Ino,
    size: u64,
}

/// Sends `file` a MiB at a time, the filesystem locked for each read only;
/// stops short (the tool sees fewer bytes than announced) on an error.
fn send_file(out: &mut &UnixStream, shared: &Shared, file: &PastFile) {
    let mut off = 0u64;
    while off < file.size {
        let chunk = shared.with(|fs| fs.in_view(file.view, |v| v.read(file.ino, off, 1 << 20)));
        let chunk = match chunk {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => return,
            Err(e) => {
                log::warn!("control socket: cat: {e}");
                return;
            }
        };
        if out.write_all(&chunk).is_err() {
            return;
        }
        off += chunk.len() as u64;
    }
}

pub(crate) fn refuse(why: &str) -> Value {
    json!({ "ok": false, "error": why })
}

/// The retained checkpoint a request names (see the module's comment).
fn selected(req: &Value) -> Result<At, pagelog_core::Error> {
    if let Some(name) = req["snapshot"].as_str() {
        return Ok(At::Snapshot(name.as_bytes().to_vec()));
    }
    if let Some(no) = req["cp"].as_u64() {
        return Ok(At::Checkpoint(CheckpointNo(no)));
    }
    if let Some(t) = req["at_ns"].as_i64() {
        return Ok(At::Time(t));
    }
    Err(pagelog_core::Error::Refused(
        "name a checkpoint: \"snapshot\", \"cp\" or \"at_ns\"".into(),
    ))
}

/// The answer to one request, and the file whose bytes follow it (`cat`).
fn answer(req: &Value, ctx: &Context) -> (Value, Option<PastFile>) {
    let verb = req["verb"].as_str().unwrap_or("");
    let name = req["name"].as_str().map(|n| n.as_bytes().to_vec());
    let shared = &ctx.shared;
    let mut payload = None;
    let result = match (verb, name) {
        ("list", _) => shared.with(|fs| Ok(list(fs, ctx))),
        ("stats", _) => shared.with(|fs| Ok(json!({ "stats": fs.cleaner_report().to_text() }))),
        ("create", Some(_)) if req["cp"].is_null() && ctx.branch_view.is_some() => {
            let branch = ctx
                .branch_view
                .and_then(|id| shared.with(|fs| Ok(fs.view_branch(id))).ok().flatten());
            return (
                refuse(&format!(
                    "this mount serves branch '{}', and a snapshot of a branch is not supported \
                     yet (a snapshot of the present is of the live tree)",
                    branch.unwrap_or_default()
                )),
                payload,
            );
        }
        ("create", Some(name)) => {
            let at = req["cp"].as_u64().map(CheckpointNo);
            if at.is_none() {
                // A snapshot of the present holds what was written before
                // the command, the kernel's cached writes included.
                (ctx.syncfs)();
            }
            shared.with(|fs| {
                let no = fs.create_snapshot(&name, at)?;
                Ok(json!({ "checkpoint": no.0 }))
            })
        }
        ("delete", Some(name)) => shared.with(|fs| delete(fs, &name)),
        ("clone", Some(name)) => selected(req).and_then(|at| {
            shared.with(|fs| {
                let no = fs.create_branch(&name, &at)?;
                Ok(json!({ "checkpoint": no.0 }))
            })
        }),
        ("create" | "delete" | "clone", None) => {
            return (refuse("this verb needs a \"name\""), payload)
        }
        ("mount", _) => {
            let Some(dir) = req["dir"].as_str() else {
                return (refuse("mount needs a \"dir\""), payload);
            };
            let target = match req["branch"].as_str() {
                Some(b) => Ok(Target::Branch(b.to_string())),
                None => selected(req).map(Target::Past),
            };
            target.and_then(|t| {
                let no = ctx
                    .views
                    .mount(&t, std::path::Path::new(dir))
                    .map_err(pagelog_core::Error::Refused)?;
                Ok(json!({ "checkpoint": no.0, "dir": dir }))
            })
        }
        ("mounts", _) => Ok(json!({ "mounts": mounts(ctx) })),
        ("diff", _) => shared.with(|fs| {
            let older = root_name(fs, &req["older"])?;
            let newer = root_name(fs, &req["newer"])?;
            let changes = fs.diff(&older, &newer)?;
            Ok(json!({ "changes": changes.iter().map(change).collect::<Vec<_>>() }))
        }),
        ("cat", _) => selected(req).and_then(|at| {
            let path = req["path"].as_str().unwrap_or("");
            let file = shared.with(|fs| open_past_file(fs, &at, path.as_bytes()))?;
            let size = file.size;
            payload = Some(file);
            Ok(json!({ "size": size }))
        }),
        _ => {
            return (
                refuse(&format!(
                    "unknown verb '{verb}' (list, create, clone, delete, mount, mounts, cat, diff, stats, quota, setquota, setgrace, defrag)"
                )),
                payload,
            )
        }
    };
    match result {
        Ok(mut v) => {
            v["ok"] = json!(true);
            (v, payload)
        }
        Err(e) => (refuse(&e.to_string()), payload),
    }
}

/// The root a request's object names: `"branch"`, or a checkpoint (a
/// `"snapshot"` name that is a branch's names the branch: snapshots and
/// branches share one namespace).
fn root_name(fs: &Filesystem, v: &Value) -> Result<RootName, pagelog_core::Error> {
    let branch = v["branch"].as_str().or_else(|| {
        v["snapshot"]
            .as_str()
            .filter(|n| fs.branches().iter().any(|b| b.name == n.as_bytes()))
    });
    match branch {
        Some(b) => Ok(RootName::Branch(b.as_bytes().to_vec())),
        None => selected(v).map(RootName::Past),
    }
}

/// A change as the socket sends it.
fn change(c: &pagelog_core::diff::Change) -> Value {
    let text = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    json!({
        "mark": c.kind.mark().to_string(),
        "path": text(&c.path),
        "to": c.to.as_deref().map(text),
        "dir": c.is_dir,
    })
}

/// Deletes snapshot or branch `name`; answers the checkpoint it was (a
/// branch's origin).
fn delete(fs: &mut Filesystem, name: &[u8]) -> pagelog_core::Result<Value> {
    if let Some(b) = fs.branches().into_iter().find(|b| b.name == name) {
        fs.delete_branch(name)?;
        return Ok(json!({ "checkpoint": b.origin.0, "branch": true }));
    }
    let no = fs
        .checkpoints()
        .iter()
        .find(|c| c.snapshot.as_deref() == Some(name))
        .map_or(0, |c| c.no.0);
    fs.delete_snapshot(name)?;
    Ok(json!({ "checkpoint": no }))
}

/// The views mounted now.
fn mounts(ctx: &Context) -> Vec<Value> {
    ctx.views
        .list()
        .iter()
        .map(|m| {
            json!({ "dir": m.dir.to_string_lossy(), "checkpoint": m.checkpoint.0, "branch": m.branch })
        })
        .collect()
}

/// File `path` as the retained checkpoint `at` holds it, through a view
/// opened for the purpose (closed once the file is sent).
fn open_past_file(fs: &mut Filesystem, at: &At, path: &[u8]) -> pagelog_core::Result<PastFile> {
    let (view, _) = fs.open_view(at)?;
    let found = fs.in_view(view, |fs| {
        let root = Cred::root();
        let mut ino = Ino::ROOT;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            ino = fs.lookup(&root, ino, part)?.ino;
        }
        let a = fs.getattr(ino)?;
        if a.mode & pagelog_core::inode::S_IFMT != pagelog_core::inode::S_IFREG {
            return Err(pagelog_core::Error::Invalid);
        }
        Ok((ino, a.size))
    });
    match found {
        Ok((ino, size)) => Ok(PastFile { view, ino, size }),
        Err(e) => {
            fs.close_view(view)?;
            Err(e)
        }
    }
}

fn list(fs: &Filesystem, ctx: &Context) -> Value {
    let views = ctx.views.list();
    let cps: Vec<Value> = fs
        .checkpoints()
        .iter()
        .map(|c| {
            json!({
                "checkpoint": c.no.0,
                "time_ns": c.time_ns,
                "snapshot": c.snapshot.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()),
                "exclusive_pages": c.exclusive_pages,
                "held_pages": c.held_pages,
                "protected": c.protected,
                "mounted_at": views.iter().find(|m| m.checkpoint == c.no && m.branch.is_none())
                    .map(|m| m.dir.to_string_lossy().into_owned()),
            })
        })
        .collect();
    let branches: Vec<Value> = fs
        .branches()
        .iter()
        .map(|b| {
            let name = String::from_utf8_lossy(&b.name).into_owned();
            json!({
                "name": name,
                "origin": b.origin.0,
                "time_ns": b.time_ns,
                "exclusive_pages": b.exclusive_pages,
                "mounted_at": views.iter().find(|m| m.branch.as_deref() == Some(name.as_str()))
                    .map(|m| m.dir.to_string_lossy().into_owned()),
            })
        })
        .collect();
    json!({ "protect_secs": fs.protect_secs(), "checkpoints": cps, "branches": branches })
}
