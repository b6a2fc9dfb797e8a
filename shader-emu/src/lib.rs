//! Runs the Metal kernels of `shaders/` on the CPU, so that every `cargo test` checks their
//! logic on any machine, and checks them against the Objective-C bridge.
//!
//! - [`msl`] and [`bridge`] read the kernel signatures and what the bridge asks for;
//!   [`check`] compares them (kernel names, buffer indices, dispatch geometry).
//! - [`Emulator`] compiles the unmodified `.metal` files as C++20 against an emulation of
//!   the Metal Shading Language subset they use (`msl/metal_stdlib`), with a launcher
//!   (`harness/emu_runtime.hpp`) that runs every GPU thread as an OS thread, optionally
//!   under ThreadSanitizer or AddressSanitizer.
//! - [`geometry`] computes each kernel's dispatch from `native/matmul_geometry.h`, the
//!   header the bridge also reads; [`matmul`] runs a kernel as the bridge would.
//!
//! The kernels run in a child process: a deadlocked barrier or a sanitizer report ends
//! that process, never the test. See docs/SHADERS.md for what the emulation cannot check.
//!
//! Needs a C++20 compiler at test time (g++ ≥ 11 or clang ≥ 14): the one `cc` would use,
//! or `SHADER_EMU_CXX`.

use std::path::{Path, PathBuf};

pub mod bridge;
pub mod check;
mod compile;
pub mod geometry;
pub mod matmul;
pub mod msl;
mod run;
pub mod sanitize;
mod text;

pub use compile::{BuildOptions, Emulator, Sanitizer};
pub use run::{Arg, Limits, RunError};

/// Where the sources live: a workspace root holding `shaders/` and `native/` (the real one,
/// or a copy that a test mutates).
#[derive(Debug, Clone)]
pub struct Sources {
    root: PathBuf,
}

impl Sources {
    /// The workspace this crate belongs to.
    pub fn workspace() -> Self {
        Self::at(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the crate is in a workspace"),
        )
    }

    /// A tree rooted at `root` with `shaders/` and `native/` below it.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `shaders/`: the `.metal` files.
    pub fn shaders_dir(&self) -> PathBuf {
        self.root.join("shaders")
    }

    /// `native/`: the bridge and the geometry header.
    pub fn native_dir(&self) -> PathBuf {
        self.root.join("native")
    }

    /// `native/matmul_geometry.h`.
    pub fn geometry_header(&self) -> PathBuf {
        self.native_dir().join("matmul_geometry.h")
    }

    /// `native/metal_matmul.m`.
    pub fn bridge(&self) -> PathBuf {
        self.native_dir().join("metal_matmul.m")
    }

    /// Copies `shaders/` and `native/` (files only) under `dest`, for a test to mutate.
    pub fn copy_to(&self, dest: &Path) -> Result<Sources, String> {
        for dir in ["shaders", "native"] {
            let (from, to) = (self.root.join(dir), dest.join(dir));
            std::fs::create_dir_all(&to).map_err(|e| format!("creating {}: {e}", to.display()))?;
            let entries =
                std::fs::read_dir(&from).map_err(|e| format!("reading {}: {e}", from.display()))?;
            for entry in entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
            {
                std::fs::copy(entry.path(), to.join(entry.file_name()))
                    .map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
            }
        }
        Ok(Sources::at(dest))
    }
}

/// This crate's directory (the emulation headers live in `msl/` and `harness/` below it).
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty directory under the system's temporary directory, removed on drop.
///
/// An emulator held in a `static` (as the test binaries hold theirs) is never dropped,
/// so its directory outlives the process; [`ScratchDir::new`] removes such directories
/// left by processes that have exited (on Linux, where `/proc` tells), so runs do not
/// pile them up.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

/// The prefix of every scratch directory's name.
const SCRATCH_PREFIX: &str = "shader-emu-";

impl ScratchDir {
    /// Creates `<tmp>/shader-emu-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> Result<Self, String> {
        use std::sync::Once;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        static REAP: Once = Once::new();
        REAP.call_once(|| reap_exited(&std::env::temp_dir()));
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "{SCRATCH_PREFIX}{}-{n}-{label}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the scratch directories under `tmp` whose process has exited. Only on Linux,
/// where `/proc/<pid>` tells whether a process lives; a directory whose pid is alive
/// (even if reused by another program) is left alone, so a running emulator's never is.
fn reap_exited(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = scratch_pid(&name.to_string_lossy()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in a scratch directory's name, `shader-emu-<pid>-<n>-<label>`.
fn scratch_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    let (pid, rest) = rest.split_once('-')?;
    let (n, _label) = rest.split_once('-')?;
    n.parse::<usize>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_parse_and_only_exited_processes_are_reaped() {
        assert_eq!(scratch_pid("shader-emu-123-0-build"), Some(123));
        assert_eq!(scratch_pid("shader-emu-123-4-tidy-up"), Some(123));
        assert_eq!(scratch_pid("shader-emu-x-0-build"), None);
        assert_eq!(scratch_pid("shader-emu-123"), None);
        assert_eq!(scratch_pid("other-123-0-build"), None);

        let base = ScratchDir::new("reap").unwrap();
        // No process has this pid (above Linux's largest pid_max, 2^22).
        let exited = base.path().join("shader-emu-4294967000-0-build");
        let ours = base
            .path()
            .join(format!("shader-emu-{}-0-build", std::process::id()));
        let unrelated = base.path().join("shader-emu-notes");
        for d in [&exited, &ours, &unrelated] {
            std::fs::create_dir_all(d).unwrap();
        }
        reap_exited(base.path());
        if Path::new("/proc/self").exists() {
            assert!(!exited.exists());
        }
        assert!(ours.exists() && unrelated.exists());
    }
}
