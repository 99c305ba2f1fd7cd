//! A daemon's messages land where an administrator looks: the `log=` file
//! (or, in the background with no syslog listening, the default file under
//! /var/log/pagelog), including why a mount stopped accepting writes; and
//! routine events (a terminal query on a file, an unmount) put no warnings
//! there.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use pagelog_tests::{bin, is_mounted, run, Mount, Scratch, Tmpfs};

fn log_option(path: &Path) -> String {
    format!("log={}", path.display())
}

#[test]
fn terminal_queries_and_unmounts_leave_no_warnings() {
    let s = Scratch::new();
    let log = s.path("daemon.log");
    let m = s.mounted("64M", &log_option(&log));
    fs::write(m.path("f"), b"not a terminal").expect("write");
    let f = File::open(m.path("f")).expect("open");
    // SAFETY: TCGETS writes one termios into the zeroed buffer it is given.
    let rc = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::ioctl(f.as_raw_fd(), libc::TCGETS, &mut t)
    };
    let err = std::io::Error::last_os_error().raw_os_error();
    assert_eq!((rc, err), (-1, Some(libc::ENOTTY)));
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(format!("stty -a < '{}'", m.path("f").display())));
    assert!(!out.status.success());
    drop(f);
    assert!(m.unmount().success());
    let text = fs::read_to_string(&log).expect("log file");
    assert!(text.contains("INFO") && text.contains("cleanly"), "{text}");
    for noise in ["WARN", "ioctl", "Not Implemented", "umount"] {
        assert!(!text.contains(noise), "'{noise}' in the log:\n{text}");
    }
}

#[test]
fn the_reason_writes_fail_is_in_the_log() {
    let s = Scratch::new();
    let _host = Tmpfs::mount(&s.path("host"), "24m");
    // A 64 MiB (sparse) image on a 24 MiB host filesystem.
    let img = s.mkfs("host/fs.img", "64M", &[]);
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let log = s.path("daemon.log");
    let m = Mount::start(&img, &mnt, &log_option(&log)).expect("mount");
    let chunk = vec![0x5a_u8; 1 << 20];
    let failed = (0..40).any(|i| {
        let r = File::create(m.path(&format!("f{i}")))
            .and_then(|mut f| f.write_all(&chunk).and_then(|()| f.sync_all()));
        r.is_err()
    });
    assert!(failed, "40 MiB fit on a 24 MiB host");
    let text = fs::read_to_string(&log).expect("log file");
    assert!(
        text.lines()
            .any(|l| (l.contains("ERROR") || l.contains("WARN"))
                && l.to_lowercase().contains("no space left on device")),
        "the host's ENOSPC is not in the log:\n{text}"
    );
    drop(m);
}

#[test]
fn in_the_background_without_syslog_the_log_is_under_var_log_pagelog() {
    let syslog = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect("/dev/log"))
        .is_ok();
    let s = Scratch::new();
    let name = format!("logtest-{}.img", std::process::id());
    let img = s.mkfs(&name, "64M", &[]);
    let mnt = s.path("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let log = Path::new("/var/log/pagelog").join(format!("{name}.log"));
    let _ = fs::remove_file(&log);
    let out = run(Command::new(bin("pagelog-mount")).arg(&img).arg(&mnt));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&mnt));
    pagelog_tests::umount(&mnt);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if syslog || text.contains("cleanly") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = fs::remove_file(&log);
    if syslog {
        assert_eq!(
            text,
            "",
            "syslog listens, yet {} was written",
            log.display()
        );
    } else {
        let image = img.canonicalize().expect("image");
        assert!(
            text.contains(&format!("mounted {}", image.display())),
            "{text}"
        );
        assert!(text.contains("cleanly"), "{text}");
    }
}
