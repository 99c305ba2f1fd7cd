//! The control socket's quota verbs, root's only: `quota` (the report of
//! one kind of id, `pagelog_core::QuotaReport` as JSON: usage, limits and
//! grace ends, which `pagelog-quota report` prints), `setquota` (limits of
//! one id) and `setgrace` (grace periods of one kind). A change is
//! committed before the answer, so that it is on disk when the tool says
//! it is set.

use pagelog_core::usage::{IdKind, QuotaId};
use pagelog_core::{Error, Filesystem, Limits};
use serde_json::{json, Value};

use super::{refuse, Context};

/// Is `req` one of the quota verbs?
pub fn is_quota_verb(req: &Value) -> bool {
    matches!(
        req["verb"].as_str(),
        Some("quota" | "setquota" | "setgrace")
    )
}

/// The answer to a quota request from a peer with user id `peer`.
pub fn answer(req: &Value, ctx: &Context, peer: Option<u32>) -> Value {
    if peer != Some(0) {
        return refuse("only root may see or change quotas through the control socket");
    }
    // Usage counts what the kernel still caches (journal=writeback).
    (ctx.syncfs)();
    let result = kind_of(req).and_then(|kind| {
        let verb = |fs: &mut Filesystem| match req["verb"].as_str() {
            Some("quota") => encode(&fs.quota_report(kind)?),
            Some("setquota") => set_limits(fs, kind, req),
            _ => set_grace(fs, kind, req),
        };
        // The root the mount serves: its branch's quotas, if a branch.
        match ctx.branch_view {
            Some(view) => ctx.shared.with(|fs| fs.in_view(view, verb)),
            None => ctx.shared.with(verb),
        }
    });
    match result {
        Ok(v) => json!({ "ok": true, "answer": v }),
        Err(e) => refuse(&e.to_string()),
    }
}

fn kind_of(req: &Value) -> Result<IdKind, Error> {
    serde_json::from_value(req["kind"].clone())
        .map_err(|_| Error::Refused("\"kind\" must be \"user\", \"group\" or \"project\"".into()))
}

fn encode(v: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::Refused(e.to_string()))
}

fn set_limits(fs: &mut Filesystem, kind: IdKind, req: &Value) -> Result<Value, Error> {
    let id = req["id"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| Error::Refused("setquota needs an \"id\" (a number)".into()))?;
    let limits = Limits {
        page_soft: req["page_soft"].as_u64(),
        page_hard: req["page_hard"].as_u64(),
        inode_soft: req["inode_soft"].as_u64(),
        inode_hard: req["inode_hard"].as_u64(),
    };
    let line = fs.set_limits(QuotaId { kind, id }, limits)?;
    fs.sync()?;
    encode(&line)
}

fn set_grace(fs: &mut Filesystem, kind: IdKind, req: &Value) -> Result<Value, Error> {
    let (old_pages, old_inodes) = fs.grace(kind)?;
    let pages = req["pages"].as_u64().unwrap_or(old_pages);
    let inodes = req["inodes"].as_u64().unwrap_or(old_inodes);
    fs.set_grace(kind, pages, inodes)?;
    fs.sync()?;
    encode(&fs.grace(kind)?)
}
