//! pagelog-fsck: checks a pagelog filesystem image or device, never
//! writing to it. The checking itself is `pagelog_core::fsck`; this binary
//! parses arguments, draws progress, prints (text or JSON) and maps the
//! result to fsck(8) exit codes.

mod output;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use pagelog_core::fsck::{self, Level, Phase, Report, Severity};
use pagelog_core::{BlockDevice, FileDevice};
use pagelog_tools::{print_and_exit, say, Failure, PassphraseArgs};

/// fsck(8) exit codes.
const EXIT_OK: u8 = 0;
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

pagelog-fsck never writes. Repair (-y, -a, -p) is not available yet: the check runs and
the exit status says what it found.

Exit status (as fsck(8)): 0 no problems, 4 problems found and left, 8 the check could not
run (unreadable device, no filesystem, mounted), 16 bad usage; and 77 for a sealed
filesystem's wrong passphrase (nothing was checked).

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
    /// Never write (always the case; accepted for fsck(8))
    #[arg(short = 'n')]
    no_change: bool,
    /// Repair automatically (not available yet: checks only)
    #[arg(short = 'y')]
    yes: bool,
    /// Automatic repair at boot (not available yet: checks only)
    #[arg(short = 'a')]
    auto: bool,
    /// Preen at boot (not available yet: checks only)
    #[arg(short = 'p')]
    preen: bool,
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

fn run(args: &Args) -> Result<(Report, Level), Failure> {
    let failed = |m: String| (EXIT_OPERATIONAL, m);
    if let Some(dir) = &args.modules {
        pagelog_core::transform::Registry::load(dir).map_err(|e| failed(e.to_string()))?;
    }
    let dev = FileDevice::open(&args.image, false)
        .map_err(|e| failed(format!("cannot open {}: {e}", args.image.display())))?;
    dev.lock(false).map_err(|_| {
        failed(format!(
            "{} is mounted read-write (unmount it first)",
            args.image.display()
        ))
    })?;
    let key = args
        .passphrase
        .unlock(&dev, &args.image, EXIT_OPERATIONAL)?;
    let level = level_for(args, looks_clean(&dev));
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
    let report = fsck::check(
        Arc::new(dev),
        key.as_ref(),
        level,
        &mut |phase, done, total| {
            timings.enter(phase);
            if let Some(b) = &bar {
                b.set_message(phase_name(phase));
                b.set_length(total.max(1));
                b.set_position(done);
            }
        },
    );
    timings.finish();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.timings {
        timings.print(start.elapsed());
    }
    Ok((report, level))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let (report, level) = match run(&args) {
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
    let code = match report.worst() {
        Some(Severity::Fatal) => EXIT_OPERATIONAL,
        Some(Severity::Error) => EXIT_UNCORRECTED,
        _ => EXIT_OK,
    };
    let out = if args.json {
        output::json(&args.image, level, &report, code) + "\n"
    } else {
        let repair_asked = args.yes || args.auto || args.preen;
        output::text(&args.image, level, &report, args.quiet, repair_asked)
    };
    print_and_exit(&out, code, EXIT_OPERATIONAL)
}
