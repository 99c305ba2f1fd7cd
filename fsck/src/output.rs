//! The report, for people (text) and for scripts (JSON).

use std::path::Path;

use pagelog_core::fsck::{Finding, Level, Report, Severity};
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

#[derive(Serialize)]
struct JsonReport<'a> {
    image: String,
    level: &'a str,
    checkpoint: u64,
    clean: bool,
    exit_code: u8,
    stats: JsonStats,
    findings: Vec<JsonFinding>,
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

/// The report as JSON.
pub fn json(image: &Path, level: Level, r: &Report, exit_code: u8) -> String {
    let out = JsonReport {
        image: image.display().to_string(),
        level: level_name(level),
        checkpoint: r.checkpoint.0,
        clean: r.clean,
        exit_code,
        stats: JsonStats {
            inodes: r.stats.inodes,
            directories: r.stats.directories,
            nodes: r.stats.nodes,
            data_pages: r.stats.data_pages,
            records_walked: r.stats.records_walked,
            bytes_read: r.stats.bytes_read,
        },
        findings: r.findings.iter().map(finding).collect(),
    };
    serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// An operational error as JSON.
pub fn json_error(image: &Path, msg: &str) -> String {
    serde_json::json!({ "image": image.display().to_string(), "exit_code": 8, "error": msg })
        .to_string()
}

/// The report as text.
pub fn text(image: &Path, level: Level, r: &Report, quiet: bool, repair_asked: bool) {
    for f in r
        .findings
        .iter()
        .filter(|f| !quiet || f.severity >= Severity::Warning)
    {
        println!("{f}");
    }
    if repair_asked && r.problems() > 0 {
        println!("note: repair is not available yet; nothing was changed");
    }
    if quiet {
        return;
    }
    let s = &r.stats;
    let what = match level {
        Level::Fast => format!(
            "checkpoint {}, {} log records after the superblock's",
            r.checkpoint, s.records_walked
        ),
        _ => format!(
            "checkpoint {}: {} inodes ({} directories), {} metadata pages, {} data pages",
            r.checkpoint, s.inodes, s.directories, s.nodes, s.data_pages
        ),
    };
    let verdict = match r.problems() {
        0 => "clean".to_string(),
        n => format!("{n} problems"),
    };
    println!(
        "{}: {} check: {verdict}; {what}; {} MiB read",
        image.display(),
        level_name(level),
        s.bytes_read >> 20
    );
}
