//! The CLI's error type and exit codes.

use std::fmt;

use metal_matmul::Error;

/// Exit codes: 0 success (or a closed stdout), 1 a failure while working, 2 bad usage
/// or input, 3 the requested backend is unavailable, 4 a result failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// stdout was closed by its reader (`fxn-cli ... | head`): end quietly, with 0.
    BrokenPipe = 0,
    /// A failure while working (I/O, a native error).
    Failure = 1,
    /// Bad usage or invalid input.
    Usage = 2,
    /// The requested backend is unavailable here.
    Unavailable = 3,
    /// A result failed its check against the reference.
    Verification = 4,
}

/// An error that ends the command: printed to stderr with the `fxn-cli:` prefix.
#[derive(Debug)]
pub struct CliError {
    /// The exit code it maps to.
    pub kind: ExitKind,
    /// The message.
    pub message: String,
}

impl CliError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Bad usage or input.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Usage, message)
    }

    /// A failure while working.
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Failure, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for CliError {
    fn from(err: Error) -> Self {
        let kind = match &err {
            Error::Unavailable { .. } => ExitKind::Unavailable,
            Error::InvalidArgument(_) | Error::NonFinite { .. } => ExitKind::Usage,
            _ => ExitKind::Failure,
        };
        Self::new(kind, err.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::BrokenPipe {
            ExitKind::BrokenPipe
        } else {
            ExitKind::Failure
        };
        Self::new(kind, err.to_string())
    }
}

impl From<serde_json::Error> for CliError {
    fn from(err: serde_json::Error) -> Self {
        Self::failure(err.to_string())
    }
}

/// A command's result.
pub type CliResult<T = ()> = Result<T, CliError>;
