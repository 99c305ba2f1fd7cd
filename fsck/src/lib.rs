//! What the tools of this crate (`pagelog-fsck`, `pagelog-info`, thin
//! binaries over `pagelog-core`) share: how they hand their output over.

use std::io::{self, Write};
use std::process::ExitCode;

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
