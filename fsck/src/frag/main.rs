//! pagelog-frag: how fragmented a pagelog filesystem is. The analysis is
//! `pagelog_core::fsck::frag` (a read of the newest checkpoint's tables
//! and nodes); this binary finds the image (an image, a device, or the
//! mountpoint of a mounted filesystem), prints text or JSON and draws the
//! SVG picture.

mod defrag;
mod png;
mod svg;
mod text;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pagelog_core::fsck::frag::{self, Report};
use pagelog_core::objects::Backing;
use pagelog_tools::{print_and_exit, say, Failure, PassphraseArgs};

pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_FAILED: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;

/// Times the analysis of a mounted filesystem starts again when the
/// checkpoint it read was overwritten meanwhile.
const RETRIES: usize = 5;

const AFTER_HELP: &str = "\
What it reports, from the newest checkpoint (no file data is read):
  files      files with data, those in more extents than their ideal (one extent per
             segment a file needs, plus one: the log writes a file contiguously inside a
             segment, and the head it writes through may be anywhere in its segment)
             and the bytes they hold; the fragmentation factor (extents past the ideal,
             as a share of all extents, as xfs_db's frag); the seeks per MiB a
             sequential read of every file makes; with compression, logical and stored
             pages apart
  segments   a histogram of segment utilisation (the cleaner's view)
  free       runs of free segments (free-space fragmentation) and the pages free
             inside partly used segments, which only the cleaner gives back
  worst      the N most fragmented files, with their paths, extents and seeks per MiB

An extent is a run of a file's pages at consecutive addresses; a gap of one page (a
record's summary, which a sequential read reads through) does not break it.

On a mounted filesystem (give the mountpoint or the image) the report is of its newest
checkpoint, read while writers go on; the daemon is not stopped.

Defragmentation (--defrag PATH..., on a mounted filesystem): each fragmented file named
(or under a directory named, with -r) is laid out again contiguously by the running
daemon, one file at a time while writers go on: its pages move, in order, to the
cleaner's log head, each keeping its identity, so that a snapshot sharing the file
follows it and no space is used for a copy (where rewriting a file, as btrfs's
defragment does, doubles what a snapshot shares). --threshold PCT leaves files whose
extents past their ideal are fewer than PCT% of their extents; --dry-run only says what
would move.

Exit status: 0 the report was made, 1 it could not be (unreadable image, damage: run
pagelog-fsck), 2 bad usage.";

/// Report how fragmented a pagelog filesystem is.
#[derive(Parser, Debug)]
#[command(name = "pagelog-frag", version, after_help = AFTER_HELP)]
pub(crate) struct Args {
    /// Image file, block device, or the mountpoint of a mounted pagelog filesystem (with
    /// --defrag: files and directories on a mounted one)
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<PathBuf>,
    /// Lay the files named out again contiguously (a mounted filesystem)
    #[arg(long)]
    defrag: bool,
    /// With --defrag: the files under the directories named too
    #[arg(short = 'r', long, requires = "defrag")]
    recursive: bool,
    /// With --defrag: only files with at least PCT% of their extents past their ideal
    #[arg(long, value_name = "PCT", default_value_t = 0.0, requires = "defrag")]
    threshold: f64,
    /// With --defrag: say what would move, move nothing
    #[arg(long, requires = "defrag")]
    dry_run: bool,
    /// How many of the most fragmented files to name
    #[arg(long, value_name = "N", default_value_t = 10)]
    worst: usize,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Also draw the picture (segment maps by utilisation and age, the worst files'
    /// layouts) as SVG into FILE
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Also draw the picture (without its words) as PNG into FILE
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

/// The image behind `target`: a mountpoint's, or `target` itself.
fn image_of(target: &Path) -> Result<PathBuf, Failure> {
    match pagelog_tools::daemon::mounted_image(target) {
        Some(image) => Ok(image),
        None if target.is_dir() => Err((
            EXIT_FAILED,
            format!(
                "{} is not the mountpoint of a pagelog filesystem",
                target.display()
            ),
        )),
        None => Ok(target.to_path_buf()),
    }
}

fn run(args: &Args, target: &Path) -> Result<Report, Failure> {
    let image = image_of(target)?;
    let dev = Backing::open(&image, false).map_err(|e| (EXIT_FAILED, e))?;
    // Held read-write by a daemon: its checkpoints change under the read.
    let mounted = dev.lock(false).is_err();
    let key = args.passphrase.unlock(&dev, &image, EXIT_FAILED)?;
    let dev: Arc<dyn pagelog_core::BlockDevice> = Arc::new(dev);
    let mut tries = 0;
    loop {
        match frag::analyse(dev.clone(), key.as_ref(), args.worst) {
            Ok(r) => return Ok(r),
            // A segment the read needed was cleaned and written again
            // after a newer checkpoint: read the newest one.
            Err(_) if mounted && tries < RETRIES => tries += 1,
            Err(e) => return Err((EXIT_FAILED, format!("{}: {e}", image.display()))),
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    if args.defrag {
        return defrag::main(&args);
    }
    let [target] = &args.targets[..] else {
        say(
            "pagelog-frag: one image or mountpoint to report on (several paths only with --defrag)",
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let report = match run(&args, target) {
        Ok(r) => r,
        Err((code, msg)) => {
            say(&format!("pagelog-frag: {msg}"));
            return ExitCode::from(code);
        }
    };
    // A cell a segment: past this many, a picture is no longer worth its
    // size (the JSON still says everything).
    const MAX_DRAWN: usize = 1 << 18;
    if (args.svg.is_some() || args.png.is_some()) && report.segments.len() > MAX_DRAWN {
        say(&format!(
            "pagelog-frag: {} segments are too many to draw one cell each (at most {MAX_DRAWN}); use --json",
            report.segments.len()
        ));
        return ExitCode::from(EXIT_FAILED);
    }
    let pictures = [
        (&args.svg, Ok(svg::draw(&report).into_bytes())),
        (&args.png, png::draw(&report)),
    ];
    for (path, bytes) in pictures {
        let Some(path) = path else { continue };
        if let Err(e) = bytes.and_then(|b| std::fs::write(path, b).map_err(|e| e.to_string())) {
            say(&format!(
                "pagelog-frag: cannot write {}: {e}",
                path.display()
            ));
            return ExitCode::from(EXIT_FAILED);
        }
    }
    let out = if args.json {
        text::json(target, &report) + "\n"
    } else {
        text::text(target, &report)
    };
    print_and_exit(&out, EXIT_OK, EXIT_FAILED)
}
