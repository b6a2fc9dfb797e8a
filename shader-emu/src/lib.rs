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
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<tmp>/shader-emu-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> Result<Self, String> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("shader-emu-{}-{n}-{label}", std::process::id()));
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
