//! Writing data to stdout: JSON documents and the broken-pipe rule.

use std::io::{self, Write};

use serde::Serialize;

use crate::error::{CliError, CliResult};

/// The version of every `--json` document's layout; bumped when a field changes meaning
/// or disappears (adding fields does not bump it).
pub const JSON_FORMAT_VERSION: u32 = 1;

/// Prints `value` as pretty JSON and a newline to stdout.
pub fn print_json<T: Serialize>(value: &T) -> CliResult {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| {
        if e.is_io() {
            CliError::from(io::Error::from(e))
        } else {
            CliError::failure(e.to_string())
        }
    })?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Writes `text` to stdout.
pub fn print_text(text: &str) -> CliResult {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
