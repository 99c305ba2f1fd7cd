//! Where the daemon's messages go: stderr in the foreground; once in the
//! background, syslog (the journal on systemd machines) when something
//! listens on /dev/log, otherwise a file (`log=PATH`, by default
//! /var/log/pagelog/IMAGE-NAME.log). A panic is logged before the process
//! goes down, so that the reason a daemon vanished is always written down.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Directory of the default log files when there is no syslog.
pub const LOG_DIR: &str = "/var/log/pagelog";

/// A destination for log records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// The terminal (foreground).
    Stderr,
    /// syslog(3).
    Syslog,
    /// Lines appended to a file.
    File(PathBuf),
}

/// Is a syslog daemon (or journald) listening on /dev/log?
fn syslog_listens() -> bool {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect("/dev/log"))
        .is_ok()
}

/// The default log file of `image` when there is no syslog.
pub fn default_file(image: &Path) -> PathBuf {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pagelog".to_string());
    Path::new(LOG_DIR).join(format!("{name}.log"))
}

/// Where a daemon for `image` logs: `log=` wins, then the terminal in the
/// foreground, then syslog, then the default file.
pub fn choose(foreground: bool, log_option: Option<&Path>, image: &Path) -> Sink {
    match log_option {
        Some(p) => Sink::File(p.to_path_buf()),
        None if foreground => Sink::Stderr,
        None if syslog_listens() => Sink::Syslog,
        None => Sink::File(default_file(image)),
    }
}

/// Opens `path` for appending (making the default directory if needed).
fn open_log(path: &Path) -> std::io::Result<File> {
    if path.parent() == Some(Path::new(LOG_DIR)) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(LOG_DIR)?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Installs the logger for `sink` at `level` (RUST_LOG overrides it for
/// stderr and files), and the panic hook. A log file that cannot be opened
/// is an error the caller reports while it still has a terminal.
pub fn install(sink: &Sink, level: log::LevelFilter) -> Result<(), String> {
    install_panic_hook();
    let env = env_logger::Env::default().default_filter_or(level.as_str());
    match sink {
        Sink::Stderr => {
            let _ = env_logger::Builder::from_env(env).try_init();
        }
        Sink::Syslog => crate::syslog::Syslog::install(level),
        Sink::File(path) => {
            let file = open_log(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            let pid = std::process::id();
            let _ = env_logger::Builder::from_env(env)
                .target(env_logger::Target::Pipe(Box::new(file)))
                .write_style(env_logger::WriteStyle::Never)
                .format(move |buf, r| {
                    let ts = buf.timestamp();
                    writeln!(
                        buf,
                        "{ts} pagelog-mount[{pid}] {} {}: {}",
                        r.level(),
                        r.target(),
                        r.args()
                    )
                })
                .try_init();
        }
    }
    Ok(())
}

/// The line a panic is logged as: thread, location and message.
fn panic_line(info: &std::panic::PanicHookInfo<'_>) -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unnamed");
    let payload = info.payload();
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    match info.location() {
        Some(l) => format!("panic in thread {name} at {}:{}: {msg}", l.file(), l.line()),
        None => format!("panic in thread {name}: {msg}"),
    }
}

/// Logs every panic (then does what Rust does by default).
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("{}", panic_line(info));
        log::logger().flush();
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps what is logged, for the test below.
    struct Capture(Mutex<Vec<String>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, r: &log::Record<'_>) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{} {}", r.level(), r.args()));
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

    #[test]
    fn a_panic_is_logged_with_its_message_and_location() {
        log::set_logger(&CAPTURE).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Info);
        install_panic_hook();
        let line = line!() + 1;
        let r = std::thread::spawn(|| panic!("the reason, {}", 42)).join();
        assert!(r.is_err());
        let logged = CAPTURE.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let want = format!("src/logging.rs:{line}: the reason, 42");
        assert!(
            logged
                .iter()
                .any(|l| l.starts_with("ERROR panic in thread") && l.ends_with(&want)),
            "{logged:?}"
        );
    }

    #[test]
    fn log_option_wins_and_the_default_file_is_named_after_the_image() {
        let img = Path::new("/srv/images/web.img");
        assert_eq!(
            choose(true, Some(Path::new("/tmp/x.log")), img),
            Sink::File(PathBuf::from("/tmp/x.log"))
        );
        assert_eq!(choose(true, None, img), Sink::Stderr);
        assert_eq!(
            default_file(img),
            PathBuf::from("/var/log/pagelog/web.img.log")
        );
    }
}
