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
//! anything wrong                          {"ok":false,"error":"why"}
//! ```
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

use pagelog_core::ids::CheckpointNo;
use pagelog_core::Filesystem;
use serde_json::{json, Value};

use crate::adapter::Shared;

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

/// Binds the control socket of `uuid` and serves it on a thread.
/// `syncfs` flushes the kernel's cached writes to the daemon first (run
/// before a snapshot of the present).
pub fn start(
    uuid: &[u8; 16],
    shared: Arc<Shared>,
    syncfs: Arc<dyn Fn() + Send + Sync>,
) -> std::io::Result<Control> {
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
                Ok(stream) => serve(stream, owner, &shared, &*syncfs),
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

fn serve(stream: UnixStream, owner: u32, shared: &Shared, syncfs: &dyn Fn()) {
    let allowed = peer_uid(&stream).is_some_and(|uid| uid == 0 || uid == owner);
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    let answer = if !allowed {
        refuse("only root or the user who mounted may use the control socket")
    } else {
        match reader.read_line(&mut line) {
            Ok(_) => match serde_json::from_str::<Value>(&line) {
                Ok(req) => answer(&req, shared, syncfs),
                Err(e) => refuse(&format!("not a JSON request: {e}")),
            },
            Err(e) => refuse(&format!("cannot read the request: {e}")),
        }
    };
    let mut out = &stream;
    let _ = writeln!(out, "{answer}");
}

fn refuse(why: &str) -> Value {
    json!({ "ok": false, "error": why })
}

fn answer(req: &Value, shared: &Shared, syncfs: &dyn Fn()) -> Value {
    let verb = req["verb"].as_str().unwrap_or("");
    let name = req["name"].as_str().map(|n| n.as_bytes().to_vec());
    let result = match (verb, name) {
        ("list", _) => shared.with(|fs| Ok(list(fs))),
        ("stats", _) => shared.with(|fs| Ok(json!({ "stats": fs.cleaner_report().to_text() }))),
        ("create", Some(name)) => {
            let at = req["cp"].as_u64().map(CheckpointNo);
            if at.is_none() {
                // A snapshot of the present holds what was written before
                // the command, the kernel's cached writes included.
                syncfs();
            }
            shared.with(|fs| {
                let no = fs.create_snapshot(&name, at)?;
                Ok(json!({ "checkpoint": no.0 }))
            })
        }
        ("delete", Some(name)) => shared.with(|fs| {
            let no = fs
                .checkpoints()
                .iter()
                .find(|c| c.snapshot.as_deref() == Some(&name[..]))
                .map_or(0, |c| c.no.0);
            fs.delete_snapshot(&name)?;
            Ok(json!({ "checkpoint": no }))
        }),
        ("create" | "delete", None) => return refuse("this verb needs a \"name\""),
        _ => {
            return refuse(&format!(
                "unknown verb '{verb}' (list, create, delete, stats)"
            ))
        }
    };
    match result {
        Ok(mut v) => {
            v["ok"] = json!(true);
            v
        }
        Err(e) => refuse(&e.to_string()),
    }
}

fn list(fs: &Filesystem) -> Value {
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
            })
        })
        .collect();
    json!({ "protect_secs": fs.protect_secs(), "checkpoints": cps })
}
