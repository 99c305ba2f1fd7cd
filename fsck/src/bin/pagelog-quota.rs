//! pagelog-quota: user, group and project quotas of a pagelog filesystem,
//! since `quota`, `repquota` and `setquota` need quotactl(2), which a FUSE
//! filesystem cannot serve. `report` is shaped like `repquota`, `set`
//! changes one id's limits, `grace` shows or changes the grace periods.
//! On a running mount (named by its mountpoint or its image) every verb
//! goes to the daemon through its control socket, root only; on an image
//! that is not mounted the tool opens it itself. The work is in
//! `pagelog_core` (`fs/quota.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgGroup, Args as ClapArgs, Parser, Subcommand};
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::usage::{IdKind, QuotaId};
use pagelog_core::{
    objects::Backing, BlockDevice, Filesystem, Limits, MountOptions, QuotaLine, QuotaReport,
};
use pagelog_tools::daemon::{ask, daemon};
use pagelog_tools::{print_and_exit, say, Failure, PassphraseArgs};

const EXIT_OK: u8 = 0;
const EXIT_FAILED: u8 = 1;
const KIB_PER_PAGE: u64 = PAGE_SIZE as u64 / 1024;

const AFTER_HELP: &str = "\
Examples:
  pagelog-quota report /srv/web                  users: used, soft, hard, grace (KiB, files)
  pagelog-quota report -ugp -h /srv/web.img      users, groups and projects, sizes readable
  pagelog-quota set /srv/web -u alice --block-soft 1G --block-hard 2G --inode-hard 100000
  pagelog-quota set /srv/web -p 42 --block-hard 10G    a project (chattr -p 42 -R DIR)
  pagelog-quota set /srv/web -g staff --block-hard 0   0 removes a limit
  pagelog-quota grace /srv/web -u --blocks 3days --inodes 1day
  pagelog-quota grace /srv/web -u                      show them

Blocks are KiB as repquota counts them (pages of 4 KiB, as du and st_blocks count): a bare
number in --block-soft/--block-hard is KiB, or give a unit (K, M, G, T); limits are rounded
up to whole pages. A soft limit may be passed for its grace period (7 days unless set);
after it, or over the hard limit, writes, creates, mkdir, symlink and link fail with EDQUOT
(\"Disk quota exceeded\"). A caller with CAP_SYS_RESOURCE (root) exceeds limits, as on ext4.
In a report, the flags after the name say which limits are passed (+) for blocks, then
files; grace is the time left, or none when it is over.

IMAGE is an image, or the mountpoint of a running mount (every verb then goes to the
daemon, root only). A sealed image opened offline needs its passphrase (asked on the
terminal, or --passphrase-file / --passphrase-cmd).

Exit status: 0 done, 1 failed (the message says why), 2 bad usage, 77 wrong passphrase.";

/// Report and set user, group and project quotas.
#[derive(Parser, Debug)]
#[command(name = "pagelog-quota", version, after_help = AFTER_HELP)]
struct Args {
    #[command(subcommand)]
    verb: Verb,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Usage, limits and grace of every id with usage or limits (repquota)
    #[command(disable_help_flag = true)]
    Report {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        /// Users (the default)
        #[arg(short = 'u', long = "user")]
        user: bool,
        /// Groups
        #[arg(short = 'g', long = "group")]
        group: bool,
        /// Projects
        #[arg(short = 'p', long = "project")]
        project: bool,
        /// Sizes and counts in readable units (K, M, G)
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        /// Print as JSON
        #[arg(long)]
        json: bool,
        /// Print help
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Set the limits of one user, group or project (0: no limit)
    Set {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        #[command(flatten)]
        who: Who,
        /// Soft block limit (KiB, or with a unit: 500M, 2G)
        #[arg(long, value_name = "SIZE")]
        block_soft: Option<String>,
        /// Hard block limit (KiB, or with a unit)
        #[arg(long, value_name = "SIZE")]
        block_hard: Option<String>,
        /// Soft limit of files (inodes)
        #[arg(long, value_name = "N")]
        inode_soft: Option<u64>,
        /// Hard limit of files (inodes)
        #[arg(long, value_name = "N")]
        inode_hard: Option<u64>,
    },
    /// Show or set the grace periods of users, groups or projects
    Grace {
        /// Image file, block device, or the mountpoint of a running mount
        image: PathBuf,
        #[command(flatten)]
        kind: OneKind,
        /// Grace period over the soft block limit (3600, 90m, 7days)
        #[arg(long, value_name = "SPAN")]
        blocks: Option<String>,
        /// Grace period over the soft file limit
        #[arg(long, value_name = "SPAN")]
        inodes: Option<String>,
    },
}

/// One user, group or project, by name or number.
#[derive(ClapArgs, Debug)]
#[command(group(ArgGroup::new("who").required(true).multiple(false)))]
struct Who {
    /// A user (name or number)
    #[arg(short = 'u', long = "user", value_name = "USER", group = "who")]
    user: Option<String>,
    /// A group (name or number)
    #[arg(short = 'g', long = "group", value_name = "GROUP", group = "who")]
    group: Option<String>,
    /// A project (number, or a name in /etc/projid)
    #[arg(short = 'p', long = "project", value_name = "PROJECT", group = "who")]
    project: Option<String>,
}

/// One kind of id.
#[derive(ClapArgs, Debug)]
#[command(group(ArgGroup::new("kind").required(true).multiple(false)))]
struct OneKind {
    /// Users
    #[arg(short = 'u', long = "user", group = "kind")]
    user: bool,
    /// Groups
    #[arg(short = 'g', long = "group", group = "kind")]
    group: bool,
    /// Projects
    #[arg(short = 'p', long = "project", group = "kind")]
    project: bool,
}

impl OneKind {
    fn kind(&self) -> IdKind {
        match (self.user, self.group) {
            (true, _) => IdKind::User,
            (_, true) => IdKind::Group,
            _ => IdKind::Project,
        }
    }
}

fn fail(msg: String) -> Failure {
    (EXIT_FAILED, msg)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(out) => print_and_exit(&out, EXIT_OK, EXIT_FAILED),
        Err((code, msg)) => {
            say(&format!("pagelog-quota: {msg}"));
            ExitCode::from(code)
        }
    }
}

fn run(args: &Args) -> Result<String, Failure> {
    match &args.verb {
        Verb::Report {
            image,
            user,
            group,
            project,
            human,
            json,
            ..
        } => {
            let mut kinds: Vec<IdKind> = [
                (*user, IdKind::User),
                (*group, IdKind::Group),
                (*project, IdKind::Project),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, k)| *k)
            .collect();
            if kinds.is_empty() {
                kinds.push(IdKind::User);
            }
            let mut target = Target::open(image, &args.passphrase, false)?;
            let reports = kinds
                .iter()
                .map(|k| target.report(*k))
                .collect::<Result<Vec<_>, _>>()?;
            target.close()?;
            match json {
                true => Ok(json_of(&reports)),
                false => Ok(reports
                    .iter()
                    .map(|r| text_of(r, image, *human))
                    .collect::<Vec<_>>()
                    .join("\n")),
            }
        }
        Verb::Set {
            image,
            who,
            block_soft,
            block_hard,
            inode_soft,
            inode_hard,
        } => {
            let id = id_of(who)?;
            let limits = Limits {
                page_soft: block_soft.as_deref().map(pages_of).transpose()?,
                page_hard: block_hard.as_deref().map(pages_of).transpose()?,
                inode_soft: *inode_soft,
                inode_hard: *inode_hard,
            };
            let mut target = Target::open(image, &args.passphrase, true)?;
            let line = target.set_limits(id, limits)?;
            let report = target.report(id.kind)?;
            target.close()?;
            let one = QuotaReport {
                lines: vec![line],
                ..report
            };
            Ok(text_of(&one, image, false))
        }
        Verb::Grace {
            image,
            kind,
            blocks,
            inodes,
        } => {
            let kind = kind.kind();
            let span = |s: &Option<String>| {
                s.as_deref()
                    .map(|s| pagelog_core::when::parse_span_secs(s).map_err(fail))
                    .transpose()
            };
            let (blocks, inodes) = (span(blocks)?, span(inodes)?);
            let change = blocks.is_some() || inodes.is_some();
            let mut target = Target::open(image, &args.passphrase, change)?;
            let grace = match change {
                true => target.set_grace(kind, blocks, inodes)?,
                false => target.report(kind)?.grace,
            };
            target.close()?;
            Ok(format!(
                "{} grace times on {}: blocks {}; files {}\n",
                kind_name(kind),
                image.display(),
                span_text(grace.0),
                span_text(grace.1)
            ))
        }
    }
}

/// Where the quotas are: a running daemon, or the image opened here.
enum Target {
    Daemon(PathBuf),
    Image(Box<Filesystem>),
}

impl Target {
    fn open(image: &Path, passphrase: &PassphraseArgs, write: bool) -> Result<Target, Failure> {
        if let Some(sock) = daemon(image).map_err(fail)? {
            return Ok(Target::Daemon(sock));
        }
        let dev = Backing::open(image, write).map_err(fail)?;
        dev.lock(write).map_err(|e| {
            fail(match e.kind() {
                std::io::ErrorKind::WouldBlock => format!(
                    "{} is mounted or in use, and no daemon answers on its control socket",
                    image.display()
                ),
                _ => format!("cannot lock {}: {e}", image.display()),
            })
        })?;
        let key = passphrase.unlock(&dev, image, EXIT_FAILED)?;
        let opts = MountOptions {
            key,
            read_only: !write,
            ..MountOptions::default()
        };
        let dev: Arc<dyn BlockDevice> = Arc::new(dev);
        let fs =
            Filesystem::mount(dev, opts).map_err(|e| fail(format!("{}: {e}", image.display())))?;
        if !fs.keeps_quota() {
            return Err(fail(format!(
                "{} keeps no quotas (made with --no-quota, or before quotas existed)",
                image.display()
            )));
        }
        Ok(Target::Image(Box::new(fs)))
    }

    fn report(&mut self, kind: IdKind) -> Result<QuotaReport, Failure> {
        match self {
            Target::Image(fs) => fs.quota_report(kind).map_err(core_failure),
            Target::Daemon(sock) => decode(
                sock,
                serde_json::json!({
                    "verb": "quota", "kind": kind,
                }),
            ),
        }
    }

    fn set_limits(&mut self, id: QuotaId, limits: Limits) -> Result<QuotaLine, Failure> {
        match self {
            Target::Image(fs) => fs.set_limits(id, limits).map_err(core_failure),
            Target::Daemon(sock) => decode(
                sock,
                serde_json::json!({
                    "verb": "setquota", "kind": id.kind, "id": id.id,
                    "page_soft": limits.page_soft, "page_hard": limits.page_hard,
                    "inode_soft": limits.inode_soft, "inode_hard": limits.inode_hard,
                }),
            ),
        }
    }

    fn set_grace(
        &mut self,
        kind: IdKind,
        pages: Option<u64>,
        inodes: Option<u64>,
    ) -> Result<(u64, u64), Failure> {
        match self {
            Target::Image(fs) => {
                let old = fs.grace(kind).map_err(core_failure)?;
                let new = (pages.unwrap_or(old.0), inodes.unwrap_or(old.1));
                fs.set_grace(kind, new.0, new.1).map_err(core_failure)?;
                Ok(new)
            }
            Target::Daemon(sock) => decode(
                sock,
                serde_json::json!({
                    "verb": "setgrace", "kind": kind, "pages": pages, "inodes": inodes,
                }),
            ),
        }
    }

    /// Commits what changed (an image opened here is unmounted).
    fn close(self) -> Result<(), Failure> {
        match self {
            Target::Image(fs) => fs.unmount().map_err(core_failure),
            Target::Daemon(_) => Ok(()),
        }
    }
}

fn core_failure(e: pagelog_core::Error) -> Failure {
    fail(e.to_string())
}

/// The daemon's answer to `req`, decoded.
fn decode<T: serde::de::DeserializeOwned>(
    sock: &Path,
    req: serde_json::Value,
) -> Result<T, Failure> {
    let v = ask(sock, &req).map_err(fail)?;
    serde_json::from_value(v["answer"].clone())
        .map_err(|e| fail(format!("the daemon's answer: {e}")))
}

/// Pages for a block limit: KiB when bare, rounded up to whole pages.
fn pages_of(s: &str) -> Result<u64, Failure> {
    let bytes = pagelog_core::size::parse_size(s, 1024)
        .ok_or_else(|| fail(format!("'{s}' is not a size (like 1048576, 512M, 2G)")))?;
    Ok(bytes.div_ceil(PAGE_SIZE as u64))
}

/// The id `who` names: a number, or a name from the user, group or
/// project database.
fn id_of(who: &Who) -> Result<QuotaId, Failure> {
    let (kind, name) = match (&who.user, &who.group, &who.project) {
        (Some(u), _, _) => (IdKind::User, u),
        (_, Some(g), _) => (IdKind::Group, g),
        (_, _, Some(p)) => (IdKind::Project, p),
        _ => unreachable!("clap requires one"),
    };
    let id = match name.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => match kind {
            IdKind::User => nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw()),
            IdKind::Group => nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw()),
            IdKind::Project => projects().into_iter().find(|(n, _)| n == name).map(|p| p.1),
        },
    };
    let id = id.ok_or_else(|| fail(format!("no {} named '{name}'", kind_name(kind))))?;
    Ok(QuotaId { kind, id })
}

/// Project names from /etc/projid (`name:id` lines), as XFS tools read.
fn projects() -> Vec<(String, u32)> {
    let text = std::fs::read_to_string("/etc/projid").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (name, id) = l.split_once(':')?;
            Some((name.to_string(), id.trim().parse().ok()?))
        })
        .collect()
}

/// The name of `id` as repquota prints it: the user, group or project
/// name, or `#ID`.
fn name_of(id: QuotaId) -> String {
    let name = match id.kind {
        IdKind::User => nix::unistd::User::from_uid(id.id.into())
            .ok()
            .flatten()
            .map(|u| u.name),
        IdKind::Group => nix::unistd::Group::from_gid(id.id.into())
            .ok()
            .flatten()
            .map(|g| g.name),
        IdKind::Project => projects().into_iter().find(|p| p.1 == id.id).map(|p| p.0),
    };
    name.unwrap_or_else(|| format!("#{}", id.id))
}

fn kind_name(kind: IdKind) -> &'static str {
    match kind {
        IdKind::User => "user",
        IdKind::Group => "group",
        IdKind::Project => "project",
    }
}

/// A grace period as repquota writes it: `7days`, `12:30` (hours and
/// minutes), `45s`.
fn span_text(secs: u64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}days", s / 86_400),
        s if s >= 60 => format!("{:02}:{:02}", s / 3600, s % 3600 / 60),
        s => format!("{s}s"),
    }
}

/// Time left until `end` at `now`, as repquota writes it: `6days`,
/// `05:59`, or `none` once it is over.
fn left_text(end: i64, now: i64) -> String {
    let left = end - now;
    match left {
        l if l <= 0 => "none".to_string(),
        l if l >= 86_400 => format!("{}days", (l + 86_399) / 86_400),
        l => {
            let minutes = (l + 59) / 60;
            format!("{:02}:{:02}", minutes / 60, minutes % 60)
        }
    }
}

/// A number of KiB (`human`: in K, M, G, T).
fn kib_text(kib: u64, human: bool) -> String {
    if !human {
        return kib.to_string();
    }
    let mut v = kib as f64;
    for unit in ["K", "M", "G", "T"] {
        if v < 1024.0 || unit == "T" {
            return match v.fract() == 0.0 {
                true => format!("{v}{unit}"),
                false => format!("{v:.1}{unit}"),
            };
        }
        v /= 1024.0;
    }
    unreachable!("T ends the loop")
}

/// A count of files (`human`: in k, m).
fn count_text(n: u64, human: bool) -> String {
    match (human, n) {
        (true, n) if n >= 1_000_000 => format!("{}m", n / 1_000_000),
        (true, n) if n >= 10_000 => format!("{}k", n / 1_000),
        (_, n) => n.to_string(),
    }
}

/// One kind's report as repquota prints it.
fn text_of(r: &QuotaReport, image: &Path, human: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "*** Report for {} quotas on {}",
        kind_name(r.kind),
        image.display()
    );
    let _ = writeln!(
        out,
        "Block grace time: {}; Inode grace time: {}",
        span_text(r.grace.0),
        span_text(r.grace.1)
    );
    let _ = writeln!(out, "{:<22}Block limits                  File limits", "");
    let title = match r.kind {
        IdKind::User => "User",
        IdKind::Group => "Group",
        IdKind::Project => "Project",
    };
    let _ = writeln!(
        out,
        "{title:<12}{:>10}{:>9}{:>9}{:>8}{:>9}{:>7}{:>7}{:>8}",
        "used", "soft", "hard", "grace", "used", "soft", "hard", "grace"
    );
    let _ = writeln!(out, "{}", "-".repeat(81));
    for l in &r.lines {
        let rec = &l.record;
        let (pages, inodes) = (l.used.pages.max(0) as u64, l.used.inodes.max(0) as u64);
        let over = |used: u64, soft: u64, hard: u64| {
            (soft != 0 && used > soft) || (hard != 0 && used > hard)
        };
        let bflag = if over(pages, rec.page_soft, rec.page_hard) {
            '+'
        } else {
            '-'
        };
        let iflag = if over(inodes, rec.inode_soft, rec.inode_hard) {
            '+'
        } else {
            '-'
        };
        let grace = |soft: u64, used: u64, end: i64| match soft != 0 && used > soft && end != 0 {
            true => left_text(end, r.now),
            false => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<10}{bflag}{iflag}{:>10}{:>9}{:>9}{:>8}{:>9}{:>7}{:>7}{:>8}",
            name_of(l.id),
            kib_text(pages.saturating_mul(KIB_PER_PAGE), human),
            kib_text(rec.page_soft.saturating_mul(KIB_PER_PAGE), human),
            kib_text(rec.page_hard.saturating_mul(KIB_PER_PAGE), human),
            grace(rec.page_soft, pages, rec.page_grace_end),
            count_text(inodes, human),
            count_text(rec.inode_soft, human),
            count_text(rec.inode_hard, human),
            grace(rec.inode_soft, inodes, rec.inode_grace_end),
        );
    }
    out
}

/// The reports for scripts: each line with its name, and bytes beside
/// pages.
fn json_of(reports: &[QuotaReport]) -> String {
    let reports: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(lines) = v["lines"].as_array_mut() {
                for (line, l) in lines.iter_mut().zip(&r.lines) {
                    line["name"] = name_of(l.id).into();
                    line["bytes"] = (l.used.pages.max(0) as u64 * PAGE_SIZE as u64).into();
                }
            }
            v
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "reports": reports }))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes_read_as_repquota_writes_them() {
        assert_eq!(span_text(7 * 86_400), "7days");
        assert_eq!(span_text(5400), "01:30");
        assert_eq!(left_text(100, 100), "none");
        assert_eq!(left_text(100 + 2 * 86_400, 100), "2days");
        assert_eq!(left_text(100 + 3600, 100), "01:00");
        assert_eq!(kib_text(2048, true), "2M");
        assert_eq!(kib_text(1536, true), "1.5M");
        assert_eq!(kib_text(1536, false), "1536");
        assert_eq!(pages_of("1").ok(), Some(1), "1 KiB is a page");
        assert_eq!(pages_of("1M").ok(), Some(256));
        assert!(pages_of("lots").is_err());
    }
}
