//! `pagelog-frag --defrag`: finds the regular files the paths name (the
//! trees under directories with `-r`, never leaving the filesystem), and
//! asks the daemon serving them to lay each out again (`defrag` on the
//! control socket), a batch of files a request.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pagelog_tools::{daemon, print_and_exit, say};
use serde_json::{json, Value};

use super::{Args, EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// Files a request names.
const BATCH: usize = 1024;

/// The mountpoint holding `path`: the nearest directory up from it that
/// a pagelog filesystem is mounted on.
fn mountpoint_of(path: &Path) -> Option<PathBuf> {
    let mut dir = path.canonicalize().ok()?;
    loop {
        if daemon::mounted_image(&dir).is_some() {
            return Some(dir);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// The regular files `path` names: itself, or (with `recursive`) the
/// files under it on the same filesystem, by inode number with a path.
fn files(path: &Path, recursive: bool, out: &mut Vec<(u64, PathBuf)>) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        out.push((meta.ino(), path.to_path_buf()));
        return Ok(());
    }
    if !meta.is_dir() {
        return Ok(());
    }
    if !recursive {
        return Err(format!(
            "{} is a directory (-r for the files under it)",
            path.display()
        ));
    }
    let dev = meta.dev();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                out.push((m.ino(), e.path()));
            }
        }
    }
    Ok(())
}

/// Runs `--defrag`.
pub fn main(args: &Args) -> ExitCode {
    let mut by_mount: Vec<(PathBuf, Vec<(u64, PathBuf)>)> = Vec::new();
    for path in &args.targets {
        // The file must be on the mount itself, not on one mounted under
        // it (whose inode numbers would name other files).
        let same_fs = |mnt: &Path| {
            let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
            dev(mnt).is_some() && dev(mnt) == dev(path)
        };
        let Some(mnt) = mountpoint_of(path).filter(|m| same_fs(m)) else {
            say(&format!(
                "pagelog-frag: {} is not on a mounted pagelog filesystem",
                path.display()
            ));
            return ExitCode::from(EXIT_USAGE);
        };
        let mut found = Vec::new();
        if let Err(e) = files(path, args.recursive, &mut found) {
            say(&format!("pagelog-frag: {e}"));
            return ExitCode::from(EXIT_USAGE);
        }
        match by_mount.iter_mut().find(|(m, _)| *m == mnt) {
            Some((_, list)) => list.extend(found),
            None => by_mount.push((mnt, found)),
        }
    }
    let mut results = Vec::new();
    let mut failed = false;
    for (mnt, mut list) in by_mount {
        let mut seen = BTreeSet::new();
        list.retain(|(ino, _)| seen.insert(*ino));
        let sock = match daemon::daemon(&mnt) {
            Ok(Some(s)) => s,
            Ok(None) => {
                say(&format!(
                    "pagelog-frag: the daemon of {} does not answer",
                    mnt.display()
                ));
                return ExitCode::from(EXIT_FAILED);
            }
            Err(e) => {
                say(&format!("pagelog-frag: {e}"));
                return ExitCode::from(EXIT_FAILED);
            }
        };
        for batch in list.chunks(BATCH) {
            let req = json!({
                "verb": "defrag",
                "inos": batch.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                "threshold": args.threshold / 100.0,
                "dry_run": args.dry_run,
            });
            let answer = match daemon::ask(&sock, &req) {
                Ok(a) => a,
                Err(e) => {
                    say(&format!("pagelog-frag: {e}"));
                    return ExitCode::from(EXIT_FAILED);
                }
            };
            let empty = Vec::new();
            let got = answer["files"].as_array().unwrap_or(&empty);
            for ((_, path), r) in batch.iter().zip(got) {
                failed |= r.get("error").is_some();
                results.push((path.clone(), r.clone()));
            }
        }
    }
    let out = if args.json {
        let files: Vec<Value> = results
            .iter()
            .map(|(p, r)| {
                let mut r = r.clone();
                r["path"] = json!(p.display().to_string());
                r
            })
            .collect();
        let v = json!({ "dry_run": args.dry_run, "files": files });
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    } else {
        text(&results, args.dry_run)
    };
    print_and_exit(
        &out,
        if failed { EXIT_FAILED } else { EXIT_OK },
        EXIT_FAILED,
    )
}

/// A line a file, and a summary.
fn text(results: &[(PathBuf, Value)], dry_run: bool) -> String {
    let mut out = String::new();
    let (mut moved, mut pages, mut left) = (0, 0, 0);
    for (path, r) in results {
        let p = path.display();
        if let Some(e) = r["error"].as_str() {
            out += &format!("{p}: not moved: {e}\n");
            continue;
        }
        let (b, a) = (&r["before"], &r["after"]);
        let extents = |l: &Value| l["extents"].as_u64().unwrap_or(0);
        if a.is_null() {
            left += 1;
            let why = if dry_run && r["would_move"].as_bool() == Some(true) {
                "would move"
            } else {
                "left"
            };
            out += &format!(
                "{p}: {} extents (ideal {}): {why}\n",
                extents(b),
                b["ideal"]
            );
        } else {
            moved += 1;
            pages += b["pages"].as_u64().unwrap_or(0);
            out += &format!(
                "{p}: {} extents -> {} (ideal {})\n",
                extents(b),
                extents(a),
                a["ideal"]
            );
        }
    }
    out += &format!(
        "{moved} files laid out again ({:.1} MiB moved), {left} left as they were\n",
        pages as f64 * 4096.0 / f64::from(1 << 20)
    );
    out
}
