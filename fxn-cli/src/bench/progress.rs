//! Progress on stderr: one line rewritten in place on a terminal, plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Progress over a fixed number of cases.
pub struct Progress {
    total: usize,
    done: usize,
    terminal: bool,
    started: Instant,
}

impl Progress {
    /// Progress over `total` cases.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// A case starts.
    pub fn start(&mut self, what: &str) {
        let line = format!(
            "[{}/{}] {what} ({:.0} s so far)",
            self.done + 1,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not end the benchmark.
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "fxn-cli: bench {line}")
        };
        let _ = err.flush();
    }

    /// The current case ended.
    pub fn finish(&mut self) {
        self.done += 1;
    }

    /// All cases ended: clears the line on a terminal.
    pub fn done(&mut self) {
        if self.terminal {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
