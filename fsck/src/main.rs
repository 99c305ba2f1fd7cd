//! pagelog-fsck: checks a pagelog filesystem image or device and, when
//! asked (`-y`, `-p`, `-a`), repairs it. The checking and repairing are
//! `pagelog_core::fsck`; this binary parses arguments, draws progress,
//! prints (text or JSON) and maps the result to fsck(8) exit codes.

mod output;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use pagelog_core::fsck::repair::{self, Mode, Outcome};
use pagelog_core::fsck::{self, Finding, Fix, Kind, Level, Phase, Report, Severity};
use pagelog_core::ids::CheckpointNo;
use pagelog_core::objects::Backing;
use pagelog_core::rewind;
use pagelog_core::BlockDevice;
use pagelog_tools::{print_and_exit, say, Failure, PassphraseArgs};

/// fsck(8) exit codes.
const EXIT_OK: u8 = 0;
const EXIT_CORRECTED: u8 = 1;
const EXIT_UNCORRECTED: u8 = 4;
const EXIT_OPERATIONAL: u8 = 8;
const EXIT_USAGE: u8 = 16;

const AFTER_HELP: &str = "\
Depths:
  --fast          superblocks, the newest checkpoint and the log after it, table roots:
                  well under a second, whatever the size
  (default)       every metadata page and checksum, the directory tree (no cycles, no
                  orphans, '..' right), link counts, segment usage against the pages really
                  referenced, no page used twice, free-space accounting
  --verify-data   the full check plus every live data page read and its checksum verified

Repair:
  -n              never write (the default without -y, -p or -a)
  -y              repair everything the check finds: counts, space accounting and quota
                  usage recounted, leaked nodes and units freed, lost inodes reconnected in
                  /lost+found (as #INODE), entries naming nothing removed, invalid access
                  control lists removed, a page two files share copied, unreadable pages
                  (with --verify-data) dropped as holes, each file and byte range named,
                  damaged leaves of the page address, node address and segment usage
                  tables built again from the log, free lists threaded again
  -p, -a          preen: repair only what loses nothing (counts, leaks, space and quota
                  accounting, a damaged superblock copy); what would drop bytes, names or
                  permissions is reported and left for -y
  --checkpoint N  with -n, check exactly checkpoint N of the log (as zpool import -T);
                  with -y, repair from it: what was committed after it is lost
When the checkpoint the superblocks name is damaged, the check lists the other checkpoints
the log holds, and -y falls back to the newest whose state reads, with the fsyncs logged
after it, naming what that loses.
A repair writes each pass as one commit (a crash leaves the state before the pass or after
it) and checks again after it; it runs the full check at least.

Exit status (as fsck(8), summed): 0 no problems, 1 problems corrected, 4 problems left
uncorrected, 8 the check could not run (unreadable device, no filesystem, mounted), 16 bad
usage; and 77 for a sealed filesystem's wrong passphrase (nothing was checked).

A sealed (encrypted) filesystem is checked with its passphrase: asked on the terminal,
or given by --passphrase-file or --passphrase-cmd. The check opens every sealed page it
reads, and names each one that does not authenticate.

Installed as fsck.pagelog, it serves `fsck -t pagelog` and boot-time checks: with -a or -p
and without -f, a cleanly unmounted filesystem gets the fast check only.";

/// Check a pagelog filesystem.
#[derive(Parser, Debug)]
#[command(name = "pagelog-fsck", version, after_help = AFTER_HELP)]
struct Args {
    /// Image file or block device
    image: PathBuf,
    /// Check only the superblocks, the newest checkpoint and the log after it
    #[arg(long, conflicts_with = "verify_data")]
    fast: bool,
    /// Also read every live data page and verify its checksum
    #[arg(long)]
    verify_data: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Check even a cleanly unmounted filesystem fully (with -a/-p)
    #[arg(short = 'f', long)]
    force: bool,
    /// Never write: check only
    #[arg(short = 'n', conflicts_with_all = ["yes", "auto", "preen"])]
    no_change: bool,
    /// Repair everything the check finds
    #[arg(short = 'y')]
    yes: bool,
    /// Repair what loses nothing (as -p)
    #[arg(short = 'a')]
    auto: bool,
    /// Preen: repair what loses nothing, leave the rest for -y
    #[arg(short = 'p')]
    preen: bool,
    /// Check (or, with -y, repair from) exactly checkpoint N of the log instead of the one
    /// the superblocks name: what was committed after it is lost once repaired
    #[arg(long, value_name = "N", conflicts_with_all = ["auto", "preen"])]
    checkpoint: Option<u64>,
    /// fsck(8) progress descriptor (a progress bar is drawn on a terminal instead)
    #[arg(short = 'C', value_name = "FD", hide = true)]
    progress_fd: Option<i32>,
    /// Print only problems
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Print the time each phase took (as e2fsck -t)
    #[arg(short = 't', long)]
    timings: bool,
    /// Load the transform modules (*.so) in DIR, to verify data stored
    /// through them (besides /usr/lib/pagelog/transforms)
    #[arg(long, value_name = "DIR")]
    modules: Option<PathBuf>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Log => "log",
        Phase::Tables => "tables",
        Phase::Nodes => "metadata pages",
        Phase::Tree => "directory tree",
        Phase::Space => "space",
        Phase::Summaries => "record summaries",
        Phase::Data => "data pages",
    }
}

/// Time spent per phase, in the order the phases ran.
#[derive(Debug, Default)]
struct Timings {
    phases: Vec<(Phase, Duration)>,
    since: Option<(Phase, Instant)>,
}

impl Timings {
    fn enter(&mut self, phase: Phase) {
        match self.since {
            Some((p, _)) if p == phase => {}
            _ => {
                self.finish();
                self.since = Some((phase, Instant::now()));
            }
        }
    }

    fn finish(&mut self) {
        if let Some((p, t)) = self.since.take() {
            self.phases.push((p, t.elapsed()));
        }
    }

    fn print(&self, total: Duration) {
        for (p, d) in &self.phases {
            say(&format!("{:>18}: {:.3} s", phase_name(*p), d.as_secs_f64()));
        }
        say(&format!("{:>18}: {:.3} s", "total", total.as_secs_f64()));
    }
}

fn level_for(args: &Args, clean: bool) -> Level {
    if args.fast || ((args.auto || args.preen) && !args.force && clean) {
        Level::Fast
    } else if args.verify_data {
        Level::VerifyData
    } else {
        Level::Full
    }
}

/// Is the filesystem marked clean? (A quick look, for -a/-p.)
fn looks_clean(dev: &dyn BlockDevice) -> bool {
    pagelog_core::recovery::read_superblocks(dev)
        .ok()
        .and_then(|(good, _)| good.into_iter().next())
        .is_some_and(|sb| sb.state == pagelog_core::superblock::State::Clean)
}

fn progress_bar(enabled: bool) -> Option<ProgressBar> {
    if !enabled {
        return None;
    }
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// How far `args` let a repair go (none: check only).
fn repair_mode(args: &Args) -> Option<Mode> {
    match (args.yes, args.auto || args.preen) {
        _ if args.no_change => None,
        (true, _) => Some(Mode::All),
        (false, true) => Some(Mode::Preen),
        (false, false) => None,
    }
}

/// What a run did: checked, or repaired.
enum Done {
    Checked(Box<Report>),
    Repaired(Box<Outcome>),
}

impl Done {
    /// The report of the state the image is left in.
    fn last(&self) -> &Report {
        match self {
            Done::Checked(r) => r,
            Done::Repaired(o) => &o.after,
        }
    }

    /// fsck(8)'s status: corrected, plus left uncorrected.
    fn exit_code(&self) -> u8 {
        let last = self.last();
        let changed = matches!(self, Done::Repaired(o) if o.changed());
        match last.worst() {
            Some(Severity::Fatal) if changed => EXIT_UNCORRECTED + EXIT_CORRECTED,
            Some(Severity::Fatal) => EXIT_OPERATIONAL,
            _ if last.problems() > 0 => EXIT_UNCORRECTED + u8::from(changed),
            _ if changed => EXIT_CORRECTED,
            _ => EXIT_OK,
        }
    }
}

fn run(args: &Args) -> Result<(Done, Level), Failure> {
    let failed = |m: String| (EXIT_OPERATIONAL, m);
    if let Some(dir) = &args.modules {
        pagelog_core::transform::Registry::load(dir).map_err(|e| failed(e.to_string()))?;
    }
    let mode = repair_mode(args);
    let dev = Backing::open(&args.image, mode.is_some()).map_err(failed)?;
    dev.lock(mode.is_some()).map_err(|_| {
        let how = if mode.is_some() {
            "mounted"
        } else {
            "mounted read-write"
        };
        failed(format!(
            "{} is {how} (unmount it first)",
            args.image.display()
        ))
    })?;
    let key = args
        .passphrase
        .unlock(&dev, &args.image, EXIT_OPERATIONAL)?;
    let level = level_for(args, looks_clean(&dev));
    // A preen of a cleanly unmounted filesystem is its fast check, which
    // recounts nothing: there is nothing to repair from.
    let mode = mode.filter(|_| level != Level::Fast || args.fast);
    // The full check reads exactly the pages it needs, many of them single
    // summary pages: readahead would multiply the bytes read. `--fast`
    // (the log after the checkpoint) and a scrub stream the log, where
    // readahead keeps the disk busy. (Advice only: a device that ignores
    // it is checked as well.)
    if level == Level::Full {
        let _ = dev.advise_random();
    }
    let bar = progress_bar(!args.json && !args.quiet && std::io::stderr().is_terminal());
    let start = Instant::now();
    let mut timings = Timings::default();
    let mut progress = |phase: Phase, done: u64, total: u64| {
        timings.enter(phase);
        if let Some(b) = &bar {
            b.set_message(phase_name(phase));
            b.set_length(total.max(1));
            b.set_position(done);
        }
    };
    let dev: Arc<dyn BlockDevice> = Arc::new(dev);
    let to = args.checkpoint.map(CheckpointNo);
    let done = match (mode, to) {
        (None, None) => Done::Checked(Box::new(fsck::check(
            dev,
            key.as_ref(),
            level,
            &mut progress,
        ))),
        (None, Some(no)) => {
            let r =
                rewind::rewind(dev, key.as_ref(), no, true).map_err(|e| failed(e.to_string()))?;
            let mut report = fsck::check(r.device.clone(), key.as_ref(), level, &mut progress);
            let msg = format!(
                "as asked (--checkpoint {no}), {}; nothing is written (-y --checkpoint {no} \
                 makes it the filesystem's)",
                r.describe()
            );
            let note = Finding::new(Severity::Info, Kind::Rewound, msg);
            report.findings.insert(0, note);
            Done::Checked(Box::new(report))
        }
        (Some(mode), _) => {
            let out = repair::repair_from(dev, key.as_ref(), level, mode, to, &mut progress);
            // A checkpoint the log does not hold: nothing was done.
            if let (Some(_), false, Some(a)) = (to, out.changed(), out.actions.first()) {
                if let (Fix::Rewind { .. }, Err(e)) = (&a.fix, &a.outcome) {
                    if let Some(b) = &bar {
                        b.finish_and_clear();
                    }
                    return Err(failed(e.clone()));
                }
            }
            Done::Repaired(Box::new(out))
        }
    };
    timings.finish();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.timings {
        timings.print(start.elapsed());
    }
    Ok((done, level))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let (done, level) = match run(&args) {
        Ok(r) => r,
        Err((code, msg)) if args.json => {
            let out = output::json_error(&args.image, &msg) + "\n";
            return print_and_exit(&out, code, EXIT_OPERATIONAL);
        }
        Err((code, msg)) => {
            say(&format!("pagelog-fsck: {msg}"));
            return ExitCode::from(code);
        }
    };
    let code = done.exit_code();
    let out = match (&done, args.json) {
        (Done::Checked(r), true) => output::json(&args.image, level, r, None, code) + "\n",
        (Done::Checked(r), false) => output::text(&args.image, level, r, args.quiet),
        (Done::Repaired(o), true) => {
            output::json(&args.image, level, &o.before, Some(o), code) + "\n"
        }
        (Done::Repaired(o), false) => output::repaired(&args.image, level, o, args.quiet),
    };
    print_and_exit(&out, code, EXIT_OPERATIONAL)
}
