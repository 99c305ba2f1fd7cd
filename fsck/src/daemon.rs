//! How a tool reaches a running daemon: finding the control socket of
//! the daemon serving a mountpoint or an image, and asking it one JSON
//! request (fs-fuse's `control.rs` says what it answers).

use std::io::Write;
use std::path::{Path, PathBuf};

use pagelog_core::objects::Backing;

/// A failure, said to the user.
type Failure = String;

/// The control socket of the daemon serving `target` (a mountpoint, or an
/// image), if one answers.
pub fn daemon(target: &Path) -> Result<Option<PathBuf>, Failure> {
    let image = match mounted_image(target) {
        Some(image) => image,
        None if target.is_dir() => {
            return Err(format!(
                "{} is not the mountpoint of a pagelog filesystem",
                target.display()
            ))
        }
        None => target.to_path_buf(),
    };
    let dev = Backing::open(&image, false)?;
    let uuid = pagelog_core::info::uuid(&dev).map_err(|e| format!("{}: {e}", image.display()))?;
    let sock = pagelog_core::info::control_socket(&uuid);
    Ok(std::os::unix::net::UnixStream::connect(&sock)
        .is_ok()
        .then_some(sock))
}

/// The image mounted at `dir` (`fuse.pagelog` in /proc/self/mountinfo,
/// whose source is the image path unless `fsname=` changed it).
pub fn mounted_image(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        let mut rest = right.split(' ');
        let (fstype, source) = (rest.next()?, rest.next()?);
        let point = point.replace("\\040", " ");
        (fstype == "fuse.pagelog" && Path::new(&point) == dir)
            .then(|| PathBuf::from(source.replace("\\040", " ")))
    })
}

/// Sends one request to the daemon and returns its answer, or its error.
pub fn ask(sock: &Path, req: &serde_json::Value) -> Result<serde_json::Value, Failure> {
    ask_then(sock, req, |_, _| Ok(()))
}

/// Sends one request to the daemon; on success hands `rest` the answer
/// and the stream of what follows it, and returns the answer; else the
/// daemon's error.
pub fn ask_then(
    sock: &Path,
    req: &serde_json::Value,
    rest: impl FnOnce(&serde_json::Value, &mut dyn std::io::BufRead) -> Result<(), Failure>,
) -> Result<serde_json::Value, Failure> {
    use std::io::BufRead;
    let mut stream = std::os::unix::net::UnixStream::connect(sock)
        .map_err(|e| format!("cannot reach the daemon at {}: {e}", sock.display()))?;
    writeln!(stream, "{req}").map_err(|e| format!("{}: {e}", sock.display()))?;
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(&stream);
    reader
        .read_line(&mut line)
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("the daemon's answer: {e}"))?;
    if v["ok"].as_bool() == Some(true) {
        rest(&v, &mut reader)?;
        Ok(v)
    } else {
        Err(v["error"]
            .as_str()
            .unwrap_or("the daemon refused without a reason")
            .to_string())
    }
}
