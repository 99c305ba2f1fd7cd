//! The control socket's `defrag` verb: lays the files it names (by inode
//! number, as `stat` gives them on the mount) out again contiguously, a
//! step of pages per hold of the filesystem's lock, so that other
//! requests go on in between. Root's or the mounting user's, as every verb.
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
            match defrag(ctx, Ino(ino), threshold, dry_run) {
                Ok((before, after, would_move)) => json!({
                    "ino": ino,
                    "before": layout(&before),
                    "after": after.as_ref().map(layout),
                    "would_move": would_move,
                }),
                Err(e) => json!({ "ino": ino, "error": e.to_string() }),
            }
        })
        .collect();
    json!({ "ok": true, "files": files })
}

/// Defragments `ino` a step per hold of the lock; returns its layout
/// before, after if it moved, and whether it was to move (a dry run's
/// answer).
fn defrag(
    ctx: &Context,
    ino: Ino,
    threshold: f64,
    dry_run: bool,
) -> pagelog_core::Result<(Layout, Option<Layout>, bool)> {
    let shared = &ctx.shared;
    let (before, wanted) =
        shared.with(|fs: &mut Filesystem| fs.defrag_begin(ino, threshold, dry_run))?;
    if !wanted || dry_run {
        return Ok((before, None, wanted));
    }
    let mut next = Some(0);
    while let Some(from) = next {
        next = shared.with(|fs| fs.defrag_step(ino, from))?;
    }
    let after = shared.with(|fs| fs.defrag_finish(ino))?;
    Ok((before, Some(after), true))
}
