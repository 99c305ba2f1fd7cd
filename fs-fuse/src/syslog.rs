//! A `log` backend writing to syslog (the journal on systemd machines), for
//! the daemon once it has left the terminal.

use std::ffi::CString;

/// Logs through `syslog(3)` under the identity `pagelog-mount`.
#[derive(Debug)]
pub struct Syslog {
    level: log::LevelFilter,
}

static IDENT: &[u8] = b"pagelog-mount\0";

impl Syslog {
    /// Installs the logger.
    pub fn install(level: log::LevelFilter) {
        // SAFETY: IDENT is a NUL-terminated static that outlives every
        // syslog call; openlog keeps the pointer, which stays valid.
        unsafe { libc::openlog(IDENT.as_ptr().cast(), libc::LOG_PID, libc::LOG_DAEMON) };
        if log::set_boxed_logger(Box::new(Syslog { level })).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for Syslog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prio = match record.level() {
            log::Level::Error => libc::LOG_ERR,
            log::Level::Warn => libc::LOG_WARNING,
            log::Level::Info => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        };
        let text = format!("{}", record.args()).replace('\0', " ");
        if let Ok(msg) = CString::new(text) {
            // SAFETY: both pointers are valid NUL-terminated strings for the
            // duration of the call, and "%s" consumes exactly one argument.
            unsafe { libc::syslog(prio, c"%s".as_ptr(), msg.as_ptr()) };
        }
    }

    fn flush(&self) {}
}
