//! Where a passphrase comes from: a terminal prompt without echo, a file,
//! or the output of a program. Never the command line (other users see a
//! process's arguments).

use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A passphrase, zeroed when dropped.
pub type Passphrase = Zeroizing<Vec<u8>>;

/// Where to get a passphrase.
#[derive(Clone, Debug, Default)]
pub enum Source {
    /// Ask on the controlling terminal, without echo.
    #[default]
    Prompt,
    /// The first line of this file (`--passphrase-file`).
    File(PathBuf),
    /// The first line this shell command prints (`--passphrase-cmd`).
    Command(String),
}

impl Source {
    /// The source the two options name (at most one of them; neither
    /// means the prompt).
    pub fn from_options(file: Option<PathBuf>, cmd: Option<String>) -> Source {
        match (file, cmd) {
            (Some(f), _) => Source::File(f),
            (None, Some(c)) => Source::Command(c),
            (None, None) => Source::Prompt,
        }
    }

    /// Reads the passphrase; `prompt` is what the terminal shows, and with
    /// `confirm` the terminal asks twice and refuses a mismatch.
    pub fn read(&self, prompt: &str, confirm: bool) -> Result<Passphrase> {
        let pass = match self {
            Source::Prompt => {
                let first = ask(prompt)?;
                if confirm && ask("Again, to confirm: ")? != first {
                    return Err(Error::Refused("the passphrases did not match".into()));
                }
                first
            }
            Source::File(path) => {
                let raw = Zeroizing::new(std::fs::read(path).map_err(|e| {
                    Error::Refused(format!(
                        "cannot read the passphrase file {}: {e}",
                        path.display()
                    ))
                })?);
                first_line(&raw)
            }
            Source::Command(cmd) => {
                let out = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(std::process::Stdio::inherit())
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| {
                        Error::Refused(format!("cannot run the passphrase command: {e}"))
                    })?;
                let raw = Zeroizing::new(out.stdout);
                if !out.status.success() {
                    return Err(Error::Refused(format!(
                        "the passphrase command failed ({})",
                        out.status
                    )));
                }
                first_line(&raw)
            }
        };
        if pass.is_empty() {
            return Err(Error::Refused("the passphrase is empty".into()));
        }
        Ok(pass)
    }
}

fn ask(prompt: &str) -> Result<Passphrase> {
    let s = Zeroizing::new(rpassword::prompt_password(prompt).map_err(|e| {
        Error::Refused(format!(
            "cannot ask for the passphrase on a terminal ({e}); use --passphrase-file or --passphrase-cmd"
        ))
    })?);
    Ok(Zeroizing::new(s.as_bytes().to_vec()))
}

/// The bytes up to the first newline (a trailing `\r` dropped too).
fn first_line(raw: &[u8]) -> Passphrase {
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Zeroizing::new(line.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_line_of_a_file_or_a_command() {
        let dir = tempfile::tempdir().expect("dir");
        let f = dir.path().join("pass");
        std::fs::write(&f, b"s3cret phrase\nignored\n").expect("write");
        assert_eq!(
            &Source::File(f).read("", false).expect("file")[..],
            b"s3cret phrase"
        );
        let c = Source::Command("printf 'from a program\\r\\n'".into());
        assert_eq!(&c.read("", false).expect("cmd")[..], b"from a program");
        assert!(Source::Command("exit 3".into()).read("", false).is_err());
        assert!(
            Source::Command("true".into()).read("", false).is_err(),
            "empty is refused"
        );
        assert!(Source::File(dir.path().join("none"))
            .read("", false)
            .is_err());
    }
}
