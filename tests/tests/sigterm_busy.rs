//! SIGTERM while a file is open: the daemon commits everything before it
//! tries to unmount, and the busy mount keeps serving. So a SIGKILL that
//! follows (as at shutdown) loses nothing written before the SIGTERM.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pagelog_tests::{sh, Mount, Scratch};

/// Waits until `path` contains `needle` and returns its text.
fn wait_for_log(path: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no '{needle}' in the log:\n{text}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_with_a_file_open_commits_and_keeps_serving() {
    let s = Scratch::new();
    let log = s.path("daemon.log");
    // No periodic commit in the test's time: only the SIGTERM can commit.
    let mut m = s.mounted("64M", &format!("commit=3600,log={}", log.display()));
    let (img, mnt) = (m.image.clone(), m.dir.clone());
    fs::write(m.path("before"), b"written before, never synced").expect("write");
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 3>\"$0\"; printf 'held open' >&3; echo ready; exec sleep 600")
        .arg(m.path("held"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("holder");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    assert_eq!(line, "ready\n");

    let daemon = Pid::from_raw(m.pid() as i32);
    kill(daemon, Signal::SIGTERM).expect("SIGTERM");
    let text = wait_for_log(&log, "is busy");
    assert!(text.contains("committed"), "{text}");
    // Still serving.
    assert_eq!(
        fs::read(m.path("before")).expect("read"),
        b"written before, never synced"
    );
    kill(daemon, Signal::SIGKILL).expect("SIGKILL");
    let _ = m.wait();
    let _ = holder.kill();
    let _ = holder.wait();
    sh(&format!("umount -l '{}'", mnt.display()));

    let m = Mount::start(&img, &mnt, "").expect("mount after SIGKILL");
    assert_eq!(
        fs::read(m.path("before")).expect("read"),
        b"written before, never synced"
    );
    assert_eq!(fs::read(m.path("held")).expect("read"), b"held open");
    assert!(m.unmount().success());
}
