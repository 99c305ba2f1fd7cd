//! The control socket's `defrag` verb: lays the files it names (by inode
//! number, as `stat` gives them on the mount) out again contiguously,
//! each under the filesystem's lock on its own, so that writers go on
//! between files. Root's or the mounting user's, as every verb.
//!
//! Request: `{"verb": "defrag", "inos": [N, ...], "threshold": 0.0,
//! "dry_run": false}`; answer: `{"ok": true, "files": [{"ino": N,
//! "before": LAYOUT, "after": LAYOUT or null}` or `{"ino": N, "error":
//! "..."}`, ...]}`, a layout being `{"pages", "extents", "ideal"}`.

use pagelog_core::{Filesystem, Ino, Layout};
use serde_json::{json, Value};

use super::{refuse, Context};

/// At most this many files a request (the tool sends more in several).
const MAX_FILES: usize = 4096;

fn layout(l: &Layout) -> Value {
    json!({ "pages": l.pages, "extents": l.extents, "ideal": l.ideal })
}

/// The answer to a `defrag` request.
pub fn answer(req: &Value, ctx: &Context) -> Value {
    if ctx.branch_view.is_some() {
        return refuse("this mount serves a branch: defragmentation works on the live root only");
    }
    let Some(inos) = req["inos"].as_array() else {
        return refuse("defrag needs \"inos\" (a list of inode numbers)");
    };
    if inos.len() > MAX_FILES {
        return refuse(&format!("at most {MAX_FILES} files a request"));
    }
    let threshold = req["threshold"].as_f64().unwrap_or(0.0);
    let dry_run = req["dry_run"].as_bool().unwrap_or(false);
    // What the kernel still caches is written out first: it is laid out
    // with the rest.
    if !dry_run {
        (ctx.syncfs)();
    }
    let files: Vec<Value> = inos
        .iter()
        .map(|v| {
            let Some(ino) = v.as_u64() else {
                return json!({ "ino": v, "error": "not an inode number" });
            };
            let done = ctx
                .shared
                .with(|fs: &mut Filesystem| fs.defrag(Ino(ino), threshold, dry_run));
            match done {
                Ok(d) => json!({
                    "ino": ino,
                    "before": layout(&d.before),
                    "after": d.after.as_ref().map(layout),
                }),
                Err(e) => json!({ "ino": ino, "error": e.to_string() }),
            }
        })
        .collect();
    json!({ "ok": true, "files": files })
}
