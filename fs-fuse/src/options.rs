//! Mount options: the `-o` list, as `mount -o` and `/etc/fstab` give it.

use std::path::PathBuf;
use std::time::Duration;

use pagelog_core::checkpoints::At;
use pagelog_core::cleaner::CleanerOptions;
use pagelog_core::fs::{AtimeMode, JournalMode};

/// Everything `-o` can set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountConfig {
    /// Crash guarantee.
    pub journal: JournalMode,
    /// Mount read-only.
    pub read_only: bool,
    /// Let other users than the mounter in.
    pub allow_other: bool,
    /// Let root in besides the mounter.
    pub allow_root: bool,
    /// Let the kernel check permissions from the mode bits (on by default).
    pub default_permissions: bool,
    /// Commit interval.
    pub commit: Duration,
    /// Dirty data that triggers writeback, in bytes.
    pub dirty_limit: u64,
    /// Bytes the daemon's caches of metadata may hold (`cache=`).
    pub cache: u64,
    /// Access time policy.
    pub atime: AtimeMode,
    /// Kernel page cache holds writes until writeback (faster small writes).
    pub writeback_cache: bool,
    /// Attribute and entry cache time in the kernel.
    pub attr_timeout: Duration,
    /// Kernel mount flags passed through (nosuid, nodev, noexec, ...).
    pub kernel_flags: Vec<String>,
    /// Source name shown in /proc/mounts.
    pub fsname: Option<String>,
    /// A directory of transform modules to load (besides the system one).
    pub modules: Option<PathBuf>,
    /// A file whose first line is the passphrase of a sealed filesystem.
    pub passphrase_file: Option<PathBuf>,
    /// Kernel readahead window for the mount, in bytes (None: the
    /// kernel's default).
    pub readahead: Option<u64>,
    /// Written data the kernel's writeback cache may hold for the mount,
    /// in bytes (None: as much as the near-full threshold keeps free,
    /// `kernel_dirty_bytes`; a setting is held to at most that).
    pub kernel_dirty: Option<u64>,
    /// Defragment files read in sequence whose extents past their ideal
    /// are at least this percentage of them (`autodefrag`; None: off).
    pub autodefrag: Option<u8>,
    /// The segment cleaner's tunables.
    pub cleaner: CleanerOptions,
    /// Log file (None: stderr in the foreground, else syslog if present,
    /// else the default file; see `logging`).
    pub log: Option<PathBuf>,
    /// Serve a retained checkpoint or snapshot instead of the live root:
    /// read-only as it is, or (read-write) through a new branch made from
    /// it.
    pub at: Option<At>,
    /// Serve this read-write branch (made from `at` first, if given).
    pub branch: Option<String>,
    /// The protection window, in seconds (None: what the image records).
    pub protect_secs: Option<u64>,
    /// Retain a commit when this long has passed since the last retained
    /// one.
    pub checkpoint_interval: Duration,
    /// The share of the free room plain checkpoints may hold (percent).
    pub history_percent: u8,
    /// fsync by roll-forward record (`fsync=rollforward`, the default) or
    /// by commit (`fsync=commit`).
    pub roll_forward: bool,
}

impl Default for MountConfig {
    fn default() -> Self {
        MountConfig {
            journal: JournalMode::Ordered,
            read_only: false,
            allow_other: false,
            allow_root: false,
            default_permissions: true,
            commit: Duration::from_secs(5),
            dirty_limit: 64 << 20,
            cache: pagelog_core::cache_sizes::DEFAULT_CACHE,
            atime: AtimeMode::Relative,
            writeback_cache: true,
            attr_timeout: Duration::from_secs(10),
            kernel_flags: Vec::new(),
            fsname: None,
            modules: None,
            passphrase_file: None,
            readahead: None,
            kernel_dirty: None,
            autodefrag: None,
            cleaner: CleanerOptions::default(),
            log: None,
            at: None,
            branch: None,
            protect_secs: None,
            checkpoint_interval: Duration::from_secs(5),
            history_percent: pagelog_core::checkpoints::DEFAULT_HISTORY_PERCENT,
            roll_forward: true,
        }
    }
}

/// Parses a size like `512M`, `4G`, `65536` (bytes without a unit).
pub fn parse_size(s: &str) -> Option<u64> {
    pagelog_core::size::parse_size(s, 1)
}

/// Options that mount(8) and fstab use for their own purposes; a helper
/// may see them and must accept them.
fn is_userspace_only(opt: &str) -> bool {
    matches!(
        opt,
        "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "owner"
            | "group"
            | "nofail"
            | "_netdev"
    ) || opt.starts_with("x-")
        || opt.starts_with("comment=")
}

/// What a remount (`mount -o remount,...`, which mount(8) passes to
/// `mount.fuse.pagelog`) gets: the kernel's read-only flag alone would not
/// stop the daemon writing the image (commits, the cleaner), and a
/// read-only mount's image is open read-only, so neither direction can be
/// done in place.
pub const REMOUNT_REFUSED: &str =
    "remount is not supported; unmount and mount again with the options you want (-o ro or -o rw)";

/// Applies one comma-separated option list to `cfg`.
pub fn apply(cfg: &mut MountConfig, list: &str) -> Result<(), String> {
    let opts = || list.split(',').map(str::trim).filter(|o| !o.is_empty());
    if opts().any(|o| o == "remount") {
        return Err(REMOUNT_REFUSED.to_string());
    }
    for opt in opts() {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        match (key, value) {
            ("journal", Some(v)) => {
                cfg.journal = match v {
                    "full" => JournalMode::Full,
                    "ordered" => JournalMode::Ordered,
                    "writeback" => JournalMode::Writeback,
                    _ => return Err(format!("journal={v}: one of full, ordered, writeback")),
                }
            }
            ("fsync", Some(v)) => {
                cfg.roll_forward = match v {
                    "rollforward" => true,
                    "commit" => false,
                    _ => return Err(format!("fsync={v}: one of rollforward, commit")),
                }
            }
            ("ro", None) => cfg.read_only = true,
            ("rw", None) => cfg.read_only = false,
            ("allow_other", None) => cfg.allow_other = true,
            ("allow_root", None) => cfg.allow_root = true,
            ("default_permissions", None) => cfg.default_permissions = true,
            ("no_default_permissions", None) => cfg.default_permissions = false,
            ("commit", Some(v)) => {
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("commit={v}: not a number of seconds"))?;
                if secs > 3600 {
                    return Err(format!("commit={v}: at most 3600 seconds"));
                }
                cfg.commit = Duration::from_secs(if secs == 0 { 5 } else { secs });
            }
            ("dirty_limit", Some(v)) => {
                let bytes = parse_size(v)
                    .ok_or_else(|| format!("dirty_limit={v}: not a size (like 64M)"))?;
                if bytes < 1 << 20 {
                    return Err(format!("dirty_limit={v}: at least 1M"));
                }
                cfg.dirty_limit = bytes;
            }
            ("cache", Some(v)) => {
                let bytes =
                    parse_size(v).ok_or_else(|| format!("cache={v}: not a size (like 128M)"))?;
                if bytes < pagelog_core::cache_sizes::MIN_CACHE {
                    return Err(format!("cache={v}: at least 8M"));
                }
                cfg.cache = bytes;
            }
            ("atime" | "strictatime", None) => cfg.atime = AtimeMode::Always,
            ("relatime", None) => cfg.atime = AtimeMode::Relative,
            ("noatime" | "nodiratime", None) => cfg.atime = AtimeMode::Never,
            ("writeback_cache", None) => cfg.writeback_cache = true,
            ("no_writeback_cache", None) => cfg.writeback_cache = false,
            ("attr_timeout", Some(v)) => {
                let secs: f64 = v
                    .parse()
                    .map_err(|_| format!("attr_timeout={v}: not a number of seconds"))?;
                if !(0.0..=3600.0).contains(&secs) {
                    return Err(format!("attr_timeout={v}: between 0 and 3600 seconds"));
                }
                cfg.attr_timeout = Duration::from_secs_f64(secs);
            }
            (
                "suid" | "nosuid" | "dev" | "nodev" | "exec" | "noexec" | "sync" | "async"
                | "dirsync",
                None,
            ) => {
                cfg.kernel_flags.push(key.to_string());
            }
            ("fsname", Some(v)) => cfg.fsname = Some(v.to_string()),
            ("modules", Some(v)) => {
                let path = std::path::absolute(v)
                    .map_err(|e| format!("modules={v}: not a usable path ({e})"))?;
                cfg.modules = Some(path);
            }
            ("passphrase_file", Some(v)) => {
                let path = std::path::absolute(v)
                    .map_err(|e| format!("passphrase_file={v}: not a usable path ({e})"))?;
                cfg.passphrase_file = Some(path);
            }
            ("log", Some(v)) => {
                let path = std::path::absolute(v)
                    .map_err(|e| format!("log={v}: not a usable path ({e})"))?;
                cfg.log = Some(path);
            }
            ("bgclean", None) => cfg.cleaner.background = true,
            ("nobgclean", None) => cfg.cleaner.background = false,
            ("clean_start", Some(v)) => cfg.cleaner.start_percent = percent(key, v, 1, 99)?,
            ("clean_stop", Some(v)) => cfg.cleaner.stop_percent = percent(key, v, 1, 100)?,
            ("clean_max_live", Some(v)) => {
                cfg.cleaner.max_live_percent = percent(key, v, 1, 99)?;
            }
            ("clean_batch", Some(v)) => {
                cfg.cleaner.batch = usize::from(percent(key, v, 1, 64)?);
            }
            ("readahead", Some(v)) => {
                let bytes =
                    parse_size(v).ok_or_else(|| format!("readahead={v}: not a size (like 4M)"))?;
                if bytes > 1 << 30 {
                    return Err(format!("readahead={v}: at most 1G"));
                }
                cfg.readahead = Some(bytes);
            }
            ("autodefrag", None) => cfg.autodefrag = Some(50),
            ("autodefrag", Some(v)) => cfg.autodefrag = Some(percent(key, v, 0, 100)?),
            ("noautodefrag", None) => cfg.autodefrag = None,
            ("kernel_dirty", Some(v)) => {
                let bytes = parse_size(v)
                    .ok_or_else(|| format!("kernel_dirty={v}: not a size (like 16M)"))?;
                if bytes < 1 << 20 {
                    return Err(format!("kernel_dirty={v}: at least 1M"));
                }
                cfg.kernel_dirty = Some(bytes);
            }
            ("branch", Some(v)) if !v.is_empty() => cfg.branch = Some(v.to_string()),
            ("snapshot", Some(v)) => cfg.at = Some(At::Snapshot(v.as_bytes().to_vec())),
            ("cp", Some(v)) => {
                let no: u64 = v
                    .parse()
                    .map_err(|_| format!("cp={v}: not a checkpoint number"))?;
                cfg.at = Some(At::Checkpoint(pagelog_core::ids::CheckpointNo(no)));
            }
            ("at", Some(v)) => {
                let now = pagelog_core::store::now_ns();
                let t = pagelog_core::when::parse_time(v, now).map_err(|e| format!("at={e}"))?;
                cfg.at = Some(At::Time(t));
            }
            ("protect", Some(v)) => {
                let secs =
                    pagelog_core::when::parse_span_secs(v).map_err(|e| format!("protect={e}"))?;
                cfg.protect_secs = Some(secs);
            }
            ("history", Some(v)) => {
                cfg.history_percent = match v.strip_suffix('%').unwrap_or(v).parse::<u8>() {
                    Ok(p) if p <= 100 => p,
                    _ => return Err(format!("history={v}: a percentage from 0 to 100")),
                };
            }
            ("checkpoint_interval", Some(v)) => {
                let secs = pagelog_core::when::parse_span_secs(v)
                    .map_err(|e| format!("checkpoint_interval={e}"))?;
                cfg.checkpoint_interval = Duration::from_secs(secs);
            }
            _ if is_userspace_only(opt) => {}
            _ => {
                return Err(format!(
                    "unknown mount option '{opt}' (see pagelog-mount --help)"
                ))
            }
        }
    }
    if cfg.at.is_some() && cfg.branch.is_some() && cfg.read_only {
        return Err(
            "branch= with snapshot=, cp= or at= makes a read-write branch: drop -o ro".to_string(),
        );
    }
    let c = &cfg.cleaner;
    if c.stop_percent < c.start_percent {
        return Err(format!(
            "clean_stop={} is below clean_start={}",
            c.stop_percent, c.start_percent
        ));
    }
    Ok(())
}

/// A whole number in `lo..=hi` for option `key`.
fn percent(key: &str, v: &str, lo: u8, hi: u8) -> Result<u8, String> {
    v.parse::<u8>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| format!("{key}={v}: a whole number from {lo} to {hi}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaner_options() {
        let mut c = MountConfig::default();
        apply(
            &mut c,
            "nobgclean,clean_start=5,clean_stop=30,clean_max_live=80,clean_batch=4",
        )
        .expect("apply");
        assert!(!c.cleaner.background);
        assert_eq!((c.cleaner.start_percent, c.cleaner.stop_percent), (5, 30));
        assert_eq!((c.cleaner.max_live_percent, c.cleaner.batch), (80, 4));
        assert!(apply(&mut c, "clean_start=0").is_err());
        assert!(apply(&mut c, "clean_max_live=100").is_err());
        assert!(apply(&mut c, "clean_batch=x").is_err());
        let mut c = MountConfig::default();
        let err = apply(&mut c, "clean_start=50,clean_stop=20").expect_err("stop < start");
        assert!(err.contains("clean_stop"), "{err}");
    }

    #[test]
    fn history_share() {
        let mut c = MountConfig::default();
        assert_eq!(c.history_percent, 25);
        apply(&mut c, "history=10%").expect("apply");
        assert_eq!(c.history_percent, 10);
        apply(&mut c, "history=100").expect("apply");
        assert_eq!(c.history_percent, 100);
        let err = apply(&mut c, "history=101").expect_err("over 100");
        assert!(err.contains("history=101"), "{err}");
        assert!(apply(&mut c, "history=x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("4g"), Some(4 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn options_apply_and_reject() {
        let mut c = MountConfig::default();
        apply(
            &mut c,
            "ro,allow_other,commit=10,noatime,defaults,x-systemd.automount,nosuid",
        )
        .expect("apply");
        assert!(c.read_only && c.allow_other);
        assert_eq!(c.commit, Duration::from_secs(10));
        assert_eq!(c.atime, AtimeMode::Never);
        assert_eq!(c.kernel_flags, vec!["nosuid".to_string()]);
        assert!(apply(&mut c, "bogus").unwrap_err().contains("bogus"));
        assert_eq!(
            apply(&mut c, "rw,remount").unwrap_err(),
            REMOUNT_REFUSED,
            "refused before any option is applied"
        );
        assert!(c.read_only);
        assert!(apply(&mut c, "log=").is_err());
        apply(&mut c, "log=/var/tmp/p.log").expect("apply");
        assert_eq!(c.log, Some(PathBuf::from("/var/tmp/p.log")));
        assert!(apply(&mut c, "commit=abc").is_err());
        assert!(apply(&mut c, "commit=99999").is_err());
        assert!(apply(&mut c, "dirty_limit=10").is_err());
        assert!(apply(&mut c, "kernel_dirty=512K").is_err());
        assert!(apply(&mut c, "kernel_dirty=lots").is_err());
        apply(&mut c, "kernel_dirty=16M").expect("kernel_dirty");
        apply(&mut c, "autodefrag").expect("autodefrag");
        assert_eq!(c.autodefrag, Some(50));
        apply(&mut c, "autodefrag=20").expect("autodefrag=20");
        assert_eq!(c.autodefrag, Some(20));
        assert!(apply(&mut c, "autodefrag=200").is_err());
        apply(&mut c, "noautodefrag").expect("noautodefrag");
        assert_eq!(c.autodefrag, None);
        assert_eq!(c.kernel_dirty, Some(16 << 20));
        assert!(apply(&mut c, "cache=1M")
            .unwrap_err()
            .contains("at least 8M"));
        apply(&mut c, "cache=1G").expect("apply");
        assert_eq!(c.cache, 1 << 30);
        assert!(apply(&mut c, "journal=sometimes").is_err());
        assert!(apply(&mut c, "fsync=never").is_err());
        apply(&mut c, "fsync=commit").expect("apply");
        assert!(!c.roll_forward);
        apply(&mut c, "journal=full").expect("apply");
        assert_eq!(c.journal, JournalMode::Full);
        apply(&mut c, "rw,commit=0").expect("apply");
        assert!(!c.read_only);
        assert_eq!(c.commit, Duration::from_secs(5));
    }
}
