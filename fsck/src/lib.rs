//! What pagelog's tools (`pagelog-fsck`, `pagelog-info`, `pagelog-quota`,
//! `pagelog-snapshot`: thin binaries over `pagelog-core`) share: how they
//! hand their output over, ask for a passphrase and reach a running
//! daemon.

use std::io::{self, Write};
use std::process::ExitCode;

pub mod daemon;

/// Writes `text` to standard output and returns `code` as the exit
/// status. A reader that went away first (`pagelog-fsck IMG | head -1`)
/// is no error: the status still says what the tool found, and nothing
/// is printed about it. Any other failure to write is said on standard
/// error and answered with `failed`.
pub fn print_and_exit(text: &str, code: u8, failed: u8) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::from(code),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(code),
        Err(e) => {
            say(&format!("cannot write the output: {e}"));
            ExitCode::from(failed)
        }
    }
}

/// Writes one line to standard error; a closed standard error is
/// ignored (there is nowhere left to say anything).
pub fn say(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Where a sealed filesystem's passphrase comes from (the terminal, if
/// neither option is given).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PassphraseArgs {
    /// A sealed filesystem's passphrase: the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<std::path::PathBuf>,
    /// A sealed filesystem's passphrase: the first line CMD prints (run by /bin/sh)
    #[arg(long, value_name = "CMD", conflicts_with = "passphrase_file")]
    pub passphrase_cmd: Option<String>,
}

/// A failure and the exit status it gives.
pub type Failure = (u8, String);

impl PassphraseArgs {
    /// The source these options name.
    pub fn source(&self) -> pagelog_core::seal::passphrase::Source {
        pagelog_core::seal::passphrase::Source::from_options(
            self.passphrase_file.clone(),
            self.passphrase_cmd.clone(),
        )
    }

    /// The master key of the filesystem on `dev` if it is sealed (the
    /// passphrase asked for only then); a wrong passphrase exits with
    /// [`pagelog_core::seal::EXIT_WRONG_PASSPHRASE`], any other failure
    /// with `failed`. `what` names the image in messages.
    pub fn unlock(
        &self,
        dev: &dyn pagelog_core::BlockDevice,
        what: &std::path::Path,
        failed: u8,
    ) -> Result<Option<pagelog_core::seal::MasterKey>, Failure> {
        pagelog_core::seal::unlock(dev, &self.source()).map_err(|e| {
            let code = match e {
                pagelog_core::Error::WrongPassphrase => pagelog_core::seal::EXIT_WRONG_PASSPHRASE,
                _ => failed,
            };
            (code, format!("{}: {e}", what.display()))
        })
    }
}
