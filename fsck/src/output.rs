//! The report, for people (text) and for scripts (JSON).

use std::fmt::Write as _;
use std::path::Path;

use pagelog_core::fsck::repair::Outcome;
use pagelog_core::fsck::{Finding, Kind, Level, Report, Severity};
use serde::Serialize;

#[derive(Serialize)]
struct JsonFinding {
    severity: &'static str,
    kind: String,
    message: String,
    inode: Option<u64>,
    node: Option<u64>,
    page: Option<u64>,
    segment: Option<u64>,
}

/// The JSON report. Every field says one thing: `verdict` and `problems`
/// are what the check found (and `exit_code` the fsck(8) status for it);
/// `cleanly_unmounted` is only the superblock's state, whatever the check
/// found; `checkpoint`, `cleanly_unmounted` and `stats` are null when the
/// check could not get that far. After a repair (`repair`), `findings`
/// are what the first check found and every other field is about the
/// last check, the state the image is left in.
#[derive(Serialize)]
struct JsonReport<'a> {
    image: String,
    level: &'a str,
    verdict: &'static str,
    problems: usize,
    exit_code: u8,
    checkpoint: Option<u64>,
    cleanly_unmounted: Option<bool>,
    stats: Option<JsonStats>,
    findings: Vec<JsonFinding>,
    /// With -y, -p or -a: what the repair did and what is left (then
    /// `verdict`, `problems` and `exit_code` are about what is left).
    #[serde(skip_serializing_if = "Option::is_none")]
    repair: Option<JsonRepair>,
}

#[derive(Serialize)]
struct JsonRepair {
    passes: usize,
    actions: Vec<JsonAction>,
    left_for_yes: usize,
    remaining: Vec<JsonFinding>,
}

#[derive(Serialize)]
struct JsonAction {
    finding: String,
    fix: &'static str,
    done: Option<String>,
    error: Option<String>,
}

/// What the check found, in words (as `verdict` in JSON).
fn verdict(r: &Report) -> &'static str {
    match r.worst() {
        Some(Severity::Fatal) => "could not check",
        _ if r.problems() > 0 => "problems found",
        _ => "no problems",
    }
}

#[derive(Serialize)]
struct JsonStats {
    inodes: u64,
    directories: u64,
    nodes: u64,
    data_pages: u64,
    records_walked: u64,
    bytes_read: u64,
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
        Severity::Fatal => "fatal",
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Fast => "fast",
        Level::Full => "full",
        Level::VerifyData => "verify-data",
    }
}

fn finding(f: &Finding) -> JsonFinding {
    JsonFinding {
        severity: severity(f.severity),
        kind: format!("{:?}", f.kind),
        message: f.message.clone(),
        inode: f.ino.map(|i| i.0),
        node: f.nid.map(|n| n.0),
        page: f.addr.map(|a| a.0),
        segment: f.segment.map(|s| s.0),
    }
}

/// The report as JSON (`r`, the first check's; with `repair`, what it did).
pub fn json(
    image: &Path,
    level: Level,
    r: &Report,
    repair: Option<&Outcome>,
    exit_code: u8,
) -> String {
    let last = repair.map_or(r, |o| &o.after);
    let out = JsonReport {
        image: image.display().to_string(),
        level: level_name(level),
        verdict: match repair {
            Some(o) if o.changed() && last.problems() == 0 => "repaired",
            _ => verdict(last),
        },
        problems: last.problems(),
        exit_code,
        checkpoint: last.checkpoint.map(|c| c.0),
        cleanly_unmounted: last.cleanly_unmounted,
        // Nothing was counted when the check could not run.
        stats: last.checkpoint.map(|_| JsonStats {
            inodes: last.stats.inodes,
            directories: last.stats.directories,
            nodes: last.stats.nodes,
            data_pages: last.stats.data_pages,
            records_walked: last.stats.records_walked,
            bytes_read: last.stats.bytes_read,
        }),
        findings: r.findings.iter().map(finding).collect(),
        repair: repair.map(|o| JsonRepair {
            passes: o.passes,
            actions: o
                .actions
                .iter()
                .map(|a| JsonAction {
                    finding: format!("{:?}", a.kind),
                    fix: a.fix.name(),
                    done: a.outcome.as_ref().ok().cloned(),
                    error: a.outcome.as_ref().err().cloned(),
                })
                .collect(),
            left_for_yes: o.left_for_yes,
            remaining: o.after.findings.iter().map(finding).collect(),
        }),
    };
    serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// An operational error as JSON.
pub fn json_error(image: &Path, msg: &str) -> String {
    serde_json::json!({
        "image": image.display().to_string(),
        "verdict": "could not check",
        "exit_code": 8,
        "error": msg,
    })
    .to_string()
}

/// A finding that stopped the check, as one line naming the image.
fn fatal_line(image: &Path, f: &Finding) -> String {
    match f.kind {
        Kind::NotPagelog => format!("{} is {}", image.display(), f.message),
        _ => format!("{}: {f}", image.display()),
    }
}

/// The report as text: the findings, then one line with the verdict (or,
/// when the check could not run, the reason instead of a verdict).
pub fn text(image: &Path, level: Level, r: &Report, quiet: bool) -> String {
    let mut out = String::new();
    let shown = r
        .findings
        .iter()
        .filter(|f| !quiet || f.severity >= Severity::Warning);
    for f in shown {
        let line = match f.severity {
            Severity::Fatal => fatal_line(image, f),
            _ => f.to_string(),
        };
        let _ = writeln!(out, "{line}");
    }
    if r.worst() == Some(Severity::Fatal) || quiet {
        return out;
    }
    out + &verdict_line(image, level, r)
}

/// One line: the check, its verdict, what it read.
fn verdict_line(image: &Path, level: Level, r: &Report) -> String {
    let s = &r.stats;
    let cp = r.checkpoint.map_or(0, |c| c.0);
    let what = match level {
        Level::Fast => format!(
            "checkpoint {cp}, {} log records after the superblock's",
            s.records_walked
        ),
        _ => format!(
            "checkpoint {cp}: {} inodes ({} directories), {} metadata pages, {} data pages",
            s.inodes, s.directories, s.nodes, s.data_pages
        ),
    };
    let verdict = match r.problems() {
        0 => "clean".to_string(),
        n => format!("{n} problems"),
    };
    format!(
        "{}: {} check: {verdict}; {what}; {} MiB read\n",
        image.display(),
        level_name(level),
        s.bytes_read >> 20
    )
}

/// A repair as text: what the first check found, each fix carried out (or
/// why not), what is left, and the verdict line of the last check.
pub fn repaired(image: &Path, level: Level, o: &Outcome, quiet: bool) -> String {
    let mut out = String::new();
    if o.before.worst() == Some(Severity::Fatal) && o.actions.is_empty() {
        return text(image, level, &o.before, quiet);
    }
    for f in o
        .before
        .findings
        .iter()
        .filter(|f| !quiet || f.severity >= Severity::Warning)
    {
        let _ = writeln!(out, "{f}");
    }
    for a in &o.actions {
        let _ = match &a.outcome {
            Ok(done) => writeln!(out, "fixed: {done}"),
            Err(e) => writeln!(out, "not fixed ({}): {e}", a.fix.name()),
        };
    }
    let left: Vec<&Finding> = o
        .after
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Error)
        .collect();
    for f in &left {
        let _ = writeln!(out, "left: {f}");
    }
    if o.left_for_yes > 0 {
        let _ = writeln!(
            out,
            "note: {} fixes would drop bytes, names or permissions: run pagelog-fsck -y to make them",
            o.left_for_yes
        );
    }
    if o.changed() {
        let _ = writeln!(
            out,
            "{}: repaired in {} passes ({} fixes); checked again:",
            image.display(),
            o.passes,
            o.actions.iter().filter(|a| a.outcome.is_ok()).count()
        );
    }
    if quiet {
        return out;
    }
    out + &verdict_line(image, level.max(Level::Full), &o.after)
}
