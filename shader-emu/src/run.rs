//! Runs one kernel in the emulator's executable, a child process: a deadlock, crash or
//! sanitizer report ends the child, and comes back here as a [`RunError`].

use std::fmt;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::compile::{Emulator, Sanitizer};
use crate::geometry::Launch;

/// One bound argument: what the bridge passes at a buffer index.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A float buffer (`setBuffer:`), with its contents; written back after the run.
    F32(u32, Vec<f32>),
    /// A 32-bit value (`setBytes:` of a `uint32_t`).
    U32(u32, u32),
}

/// Why a run produced no result.
#[derive(Debug, Clone)]
pub enum RunError {
    /// The executable could not be started or talked to.
    Spawn(String),
    /// The launcher's watchdog found a threadgroup that stopped making progress.
    Deadlock(String),
    /// The launcher refused the bindings (the kernel and the bridge disagree).
    Binding(String),
    /// It exited otherwise unsuccessfully: a sanitizer report, a crash, a divergence.
    Failed {
        /// Exit code, if it exited (none when killed by a signal).
        code: Option<i32>,
        /// Everything it wrote to stderr.
        stderr: String,
    },
    /// It outlived the hard limit and was killed (the watchdog should come first).
    TimedOut(Duration),
}

impl RunError {
    /// What the child wrote to stderr, where there is any.
    pub fn stderr(&self) -> &str {
        match self {
            RunError::Deadlock(s) | RunError::Binding(s) | RunError::Failed { stderr: s, .. } => s,
            RunError::Spawn(_) | RunError::TimedOut(_) => "",
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "could not run the emulator: {e}"),
            RunError::Deadlock(s) => write!(f, "the kernel deadlocked:\n{s}"),
            RunError::Binding(s) => {
                write!(f, "the kernel's parameters do not match the bindings:\n{s}")
            }
            RunError::Failed { code, stderr } => match code {
                Some(code) => write!(f, "the emulator exited with code {code}:\n{stderr}"),
                None => write!(f, "the emulator was killed by a signal:\n{stderr}"),
            },
            RunError::TimedOut(limit) => {
                write!(f, "the emulator ran longer than {limit:?} and was killed")
            }
        }
    }
}

impl std::error::Error for RunError {}

/// Limits for one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A threadgroup with no thread passing a barrier or returning for this long is a
    /// deadlock (the launcher's watchdog).
    pub watchdog: Duration,
    /// The child is killed after this long, whatever it does.
    pub hard: Duration,
}

impl Limits {
    /// Limits suited to a build: sanitizers slow everything down several times.
    pub fn for_sanitizer(sanitizer: Sanitizer) -> Self {
        match sanitizer {
            Sanitizer::None => Self {
                watchdog: Duration::from_secs(3),
                hard: Duration::from_secs(120),
            },
            _ => Self {
                watchdog: Duration::from_secs(20),
                hard: Duration::from_secs(600),
            },
        }
    }
}

impl Emulator {
    /// Runs `kernel` with `launch` and `args`; returns the final contents of the float
    /// buffers, in the order of `args`.
    pub fn run(
        &self,
        kernel: &str,
        launch: &Launch,
        args: &[Arg],
    ) -> Result<Vec<Vec<f32>>, RunError> {
        self.run_with(
            kernel,
            launch,
            args,
            Limits::for_sanitizer(self.sanitizer()),
        )
    }

    /// [`Emulator::run`] with explicit limits.
    pub fn run_with(
        &self,
        kernel: &str,
        launch: &Launch,
        args: &[Arg],
        limits: Limits,
    ) -> Result<Vec<Vec<f32>>, RunError> {
        let mut cmd = Command::new(self.exe());
        cmd.arg(kernel).arg(launch.mode.arg());
        cmd.args(launch.grid.iter().chain(&launch.group).map(u32::to_string));
        cmd.arg(limits.watchdog.as_millis().max(1).to_string());
        let mut input = Vec::new();
        let mut sizes = Vec::new();
        for arg in args {
            match arg {
                Arg::F32(index, data) => {
                    cmd.arg(format!("{index}:f32:{}", data.len()));
                    input.extend(data.iter().flat_map(|v| v.to_le_bytes()));
                    sizes.push(data.len());
                }
                Arg::U32(index, value) => {
                    cmd.arg(format!("{index}:u32:{value}"));
                }
            }
        }
        cmd.env("TSAN_OPTIONS", "halt_on_error=1 exitcode=66")
            .env(
                "ASAN_OPTIONS",
                "detect_leaks=0:halt_on_error=1:abort_on_error=0",
            )
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
        let (stdout, stderr, status) = spawn_and_wait(cmd, input, limits.hard)?;
        if !status.success() {
            return Err(match status.code() {
                Some(3) => RunError::Deadlock(stderr),
                Some(4) => RunError::Binding(stderr),
                code => RunError::Failed {
                    code,
                    stderr: with_signal(&status, stderr),
                },
            });
        }
        let expected: usize = sizes.iter().sum::<usize>() * 4;
        if stdout.len() != expected {
            return Err(RunError::Failed {
                code: status.code(),
                stderr: format!(
                    "expected {expected} bytes of output, got {}\n{stderr}",
                    stdout.len()
                ),
            });
        }
        let mut floats = stdout
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        Ok(sizes
            .iter()
            .map(|&n| floats.by_ref().take(n).collect())
            .collect())
    }
}

/// `stderr`, preceded by the signal that ended the process, if one did.
fn with_signal(status: &std::process::ExitStatus, stderr: String) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!(
                "(signal {signal}{})\n{stderr}",
                if signal == 11 { ", SIGSEGV" } else { "" }
            );
        }
    }
    let _ = status;
    stderr
}

fn spawn_and_wait(
    mut cmd: Command,
    input: Vec<u8>,
    limit: Duration,
) -> Result<(Vec<u8>, String, std::process::ExitStatus), RunError> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn(e.to_string()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // Separate threads, so that no pipe fills up while another is waited on. A child that
    // exits early closes stdin: the write error is expected then and ignored.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::TimedOut(limit));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(RunError::Spawn(e.to_string())),
        }
    };
    let _ = writer.join();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok((stdout, stderr, status))
}
