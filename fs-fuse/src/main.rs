//! pagelog-mount: mounts a pagelog image through FUSE.

mod adapter;
mod autodefrag;
mod control;
mod daemon;
mod errno;
mod kernel_mount;
mod logging;
mod mountinfo;
mod options;
mod syslog;
mod views;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

const AFTER_HELP: &str = "\
Mount options (-o, comma-separated; mount(8) and /etc/fstab pass them the same way):
  ro | rw                 read-only or read-write (default rw)
  journal=MODE            what a crash may lose (default ordered):
                            full       every operation is durable when it returns (slow)
                            ordered    the state at some commit; fsync makes a file durable
                            writeback  periodic commits leave data behind: a file may read
                                       zeros (or its older data) where newer data was lost
  commit=SECONDS          write back and commit at least this often (default 5; 0 means 5)
  dirty_limit=SIZE        write back when this much data is dirty (default 64M)
  cache=SIZE              memory for cached metadata: inodes, file maps, directories and
                          the address tables (default 128M, at least 8M)
  allow_other|allow_root  let other users (or root) use the mount
  default_permissions     the kernel checks permissions from the mode bits (default)
  no_default_permissions  pagelog checks permissions itself instead (slower; fifos and
                          device nodes are then opened without a permission check)
  relatime|noatime|strictatime   access time policy (default relatime)
  no_writeback_cache      no kernel writeback cache (used by default with ordered, from
                          Linux 6.14, and writeback; never with full, quota limits or
                          no_default_permissions)
  attr_timeout=SECONDS    how long the kernel caches names and attributes (default 10)
  readahead=SIZE          kernel readahead window for sequential reads (default: the kernel's)
  kernel_dirty=SIZE       written data the kernel may cache for the mount before writers wait
                          (default: a sixteenth of the filesystem, 16M to 1G; lower it, say
                          to 8M or 16M, to let reads through beside a streaming writer)
  autodefrag[=PCT]        lay out again, in the background, a file read in sequence whose
                          extents past its ideal are at least PCT% of them (default 50)
  bgclean | nobgclean     clean segments in the background while idle (default bgclean);
                          writers that run short of free segments always clean first
  clean_start=PCT         background cleaning starts below PCT% free segments (default 10)
  clean_stop=PCT          ... and stops at PCT% (default 20)
  clean_max_live=PCT      background cleaning skips segments more than PCT% live (default 90)
  clean_batch=N           segments one cleaning pass empties at most (default 8)
  protect=SPAN            keep every checkpoint younger than SPAN mountable (1h, 90m, 0;
                          default: what mkfs recorded, 1h); older ones are pruned, and
                          younger ones too when the filesystem is short of room
  history=PCT             plain checkpoints may hold at most PCT% of the free room; past
                          it the oldest are pruned, inside the window too (default 25)
  checkpoint_interval=SPAN  retain a commit when SPAN has passed since the last retained
                          one (default 5s; 0 retains every commit)
  snapshot=NAME | cp=N | at=TIME   serve that snapshot, retained checkpoint, or the newest
                          checkpoint taken at or before TIME (@SECONDS, 2026-12-02T10:00Z,
                          '2026-12-02 10:00' local, or back from now: 10m, '2 hours ago'):
                          with ro, as it was; read-write, through a new branch made from it
                          (named by branch=, else cpN-DATE), leaving the live tree untouched
  branch=NAME             serve read-write branch NAME (made from snapshot=, cp= or at= if
                          given); pagelog-snapshot list shows branches
  nosuid,nodev,noexec,... passed to the kernel
  fsname=NAME             source name shown in /proc/mounts (default: the image's full path)
  modules=DIR             load the transform modules (*.so) in DIR, besides /usr/lib/pagelog/transforms
  passphrase_file=PATH    a sealed (encrypted) filesystem's passphrase: the first line of PATH
                          (else --passphrase-file, --passphrase-cmd, or asked on the terminal)
  log=PATH                append the daemon's messages to PATH. Default: with -f, stderr;
                          in the background, syslog (the journal) if it listens on /dev/log,
                          else /var/log/pagelog/IMAGE-FILE-NAME.log

Examples:
  pagelog-mount /srv/web.img /srv/web
  pagelog-mount -o ro,noatime /srv/web.img /mnt/inspect
  pagelog-mount -o ro,at=10m /srv/web.img /mnt/ten-minutes-ago
  pagelog-mount -o at=10m,branch=retry /srv/web.img /mnt/retry   (read-write, from 10 min ago)
  umount /srv/web          (writes everything back and closes the image)
  findmnt -t fuse.pagelog  (every pagelog mount, with its image)

Stopping: umount, or SIGTERM, SIGINT or SIGHUP to the daemon, which commits everything
first; if files are still open on the mount it stays mounted (and committed) and says so
in its log. Changing options needs an unmount: `mount -o remount,...` is refused.

The cleaner's state: getfattr --only-values -n pagelog.stats MOUNTPOINT

Installed as mount.pagelog, it also serves `mount -t pagelog IMAGE DIR -o OPTS`
and /etc/fstab lines such as:
  /srv/web.img  /srv/web  pagelog  defaults,commit=10  0  0
Installed also as mount.fuse.pagelog (what mount(8) runs for a mount of type
fuse.pagelog), it answers `mount -o remount` with a clear refusal.";

/// Mount a pagelog filesystem image (or block device) through FUSE.
///
/// By default the daemon goes to the background and this command returns
/// once the mount is ready; errors are reported here and in the exit status
/// (0 mounted, 1 bad usage, 32 mount failed, 77 wrong passphrase).
#[derive(Parser, Debug)]
#[command(name = "pagelog-mount", version, after_help = AFTER_HELP)]
struct Args {
    /// Image file or block device holding the filesystem
    image: PathBuf,
    /// Directory to mount it on
    mountpoint: PathBuf,
    /// Mount options, comma-separated (may be given more than once)
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// Stay in the foreground, logging to stderr (as mount.pagelog: "fake", do nothing)
    #[arg(short = 'f', long = "foreground")]
    foreground: bool,
    /// Log debugging detail (with -f)
    #[arg(short = 'd', long)]
    debug: bool,
    /// A sealed filesystem's passphrase: the first line of FILE (else asked
    /// on the terminal, without echo)
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// A sealed filesystem's passphrase: the first line CMD prints (run by /bin/sh)
    #[arg(long, value_name = "CMD", conflicts_with = "passphrase_file")]
    passphrase_cmd: Option<String>,
    /// Accepted from mount(8): sloppy options
    #[arg(short = 's', hide = true)]
    sloppy: bool,
    /// Accepted from mount(8): do not write /etc/mtab
    #[arg(short = 'n', hide = true)]
    no_mtab: bool,
    /// Accepted from mount(8): verbose
    #[arg(short = 'v', hide = true)]
    verbose: bool,
    /// Accepted from mount(8): filesystem type
    #[arg(short = 't', hide = true)]
    fstype: Option<String>,
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let as_helper = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "mount.pagelog" || n == "mount.fuse.pagelog");
    let args = match Args::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let mut cfg = options::MountConfig::default();
    for list in &args.options {
        if let Err(m) = options::apply(&mut cfg, list) {
            eprintln!("pagelog-mount: {m}");
            return ExitCode::from(1);
        }
    }
    if as_helper && args.foreground {
        // mount -f: "fake" the mount; nothing to do.
        return ExitCode::SUCCESS;
    }
    // A passphrase is asked here, on the terminal, before the daemon
    // leaves it; a wrong one ends the mount before anything is written.
    let key = match unlock(&args, &cfg) {
        Ok(k) => k,
        Err((code, m)) => {
            eprintln!("pagelog-mount: {m}");
            return ExitCode::from(code);
        }
    };
    if args.foreground {
        let level = if args.debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        };
        ExitCode::from(daemon::serve(
            (&args.image, &args.mountpoint),
            &cfg,
            key,
            None,
            level,
        ))
    } else {
        daemon::run_in_background(&args.image, &args.mountpoint, &cfg, key)
    }
}

/// The master key, if the image is sealed: the passphrase from the
/// options, or asked. An error carries the exit status.
fn unlock(
    args: &Args,
    cfg: &options::MountConfig,
) -> Result<Option<pagelog_core::seal::MasterKey>, (u8, String)> {
    use pagelog_core::seal::passphrase::Source;
    let dev = pagelog_core::objects::Backing::open(&args.image, false)
        .map_err(|e| (daemon::EXIT_MOUNT_FAILED, e))?;
    let file = args.passphrase_file.clone().or(cfg.passphrase_file.clone());
    let source = Source::from_options(file, args.passphrase_cmd.clone());
    pagelog_core::seal::unlock(&dev, &source).map_err(|e| {
        let code = match e {
            pagelog_core::Error::WrongPassphrase => pagelog_core::seal::EXIT_WRONG_PASSPHRASE,
            _ => daemon::EXIT_MOUNT_FAILED,
        };
        (code, format!("{}: {e}", args.image.display()))
    })
}
