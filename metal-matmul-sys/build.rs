//! Builds the Objective-C Metal bridge for macOS targets and links Apple's frameworks.
//!
//! The decision is made from `CARGO_CFG_TARGET_OS` (the target), never from
//! `cfg!(target_os)` (the host running this script). Dependents learn whether the bridge
//! was built from `DEP_METAL_MATMUL_BRIDGE` (`1` or `0`).
//!
//! The bridge (`native/`) and the kernels (`shaders/`) live at the workspace's top level;
//! this package reaches them through the symlinks `native` and `shaders` in its own
//! directory, which `cargo package` follows, so a published crate carries real copies.
//! Where a checkout has no symlinks (Git on Windows without `core.symlinks`), the
//! directories beside the package are used instead.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

#[cfg(feature = "buildtime-bindgen")]
include!("bindgen_config.rs");

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let native = source_dir(&manifest, "native");
    let shaders = source_dir(&manifest, "shaders");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    println!("cargo::rerun-if-changed={}", native.display());
    println!("cargo::rerun-if-changed={}", shaders.display());
    for file in list(&native, "").into_iter().chain(list(&shaders, "metal")) {
        println!("cargo::rerun-if-changed={}", file.display());
    }
    println!("cargo::rerun-if-env-changed=FXN_DISABLE_METAL_BRIDGE");

    #[cfg(feature = "buildtime-bindgen")]
    metal_matmul_bindings(native.join("metal_matmul.h").to_str().expect("UTF-8 path"))
        .generate()
        .expect("bindgen failed on native/metal_matmul.h")
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");

    // The kernels' source, with the geometry header inlined, for every target: the
    // bridge compiles it at run time and tests read it everywhere.
    write_shader_source(&shaders, &native, &out.join("shaders.metal"));

    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let disabled = env::var_os("FXN_DISABLE_METAL_BRIDGE").is_some_and(|v| v != "0");
    let build_bridge = target_os == "macos" && !disabled;
    println!("cargo::rustc-check-cfg=cfg(metal_bridge)");
    println!("cargo::metadata=bridge={}", u8::from(build_bridge));
    if !build_bridge {
        return;
    }
    println!("cargo::rustc-cfg=metal_bridge");

    let mut bridge = cc::Build::new();
    bridge
        .file(native.join("metal_matmul.m"))
        .include(&native)
        .flag("-fobjc-arc")
        .flag("-mmacosx-version-min=11.0")
        .warnings(true)
        .extra_warnings(true);
    if env::var_os("CARGO_FEATURE_FAULT_INJECTION").is_some() {
        bridge.define("METAL_MATMUL_FAULT_INJECTION", None);
    }
    bridge.compile("metal_matmul");
    for framework in [
        "Metal",
        "MetalPerformanceShaders",
        "Foundation",
        "CoreGraphics",
    ] {
        println!("cargo::rustc-link-lib=framework={framework}");
    }
}

/// The directory `name` in the package (a published crate, or the symlink in the
/// repository), else beside the package in the workspace.
fn source_dir(manifest: &Path, name: &str) -> PathBuf {
    let inside = manifest.join(name);
    if inside.is_dir() {
        return inside;
    }
    manifest
        .parent()
        .map(|root| root.join(name))
        .filter(|beside| beside.is_dir())
        .unwrap_or_else(|| panic!("no {name}/ in {} or beside it", manifest.display()))
}

/// The files in `dir` whose extension is `ext` (any extension when empty), sorted.
fn list(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file() && (ext.is_empty() || p.extension().is_some_and(|e| e == ext)));
    files.sort();
    files
}

/// Writes every `shaders/*.metal`, in name order, into one file, with each
/// `#include "X.h"` of a header from `native/` replaced by that header's text and a NUL
/// at the end: the source the bridge hands to `newLibraryWithSource:` at run time (the
/// Command Line Tools have no offline `metal` compiler).
fn write_shader_source(shaders: &Path, native: &Path, dest: &Path) {
    let mut source = String::new();
    for file in list(shaders, "metal") {
        let text = fs::read_to_string(&file).expect("reading a shader");
        writeln!(
            source,
            "// ---- {} ----",
            file.file_name().unwrap().to_string_lossy()
        )
        .unwrap();
        for line in text.lines() {
            let included = line
                .trim()
                .strip_prefix("#include \"")
                .and_then(|rest| rest.strip_suffix('"'))
                .map(|name| native.join(name))
                .filter(|path| path.is_file());
            match included {
                Some(path) => source.push_str(&fs::read_to_string(path).expect("reading a header")),
                None => source.push_str(line),
            }
            source.push('\n');
        }
    }
    assert!(!source.contains('\0'), "a shader contains a NUL byte");
    source.push('\0');
    fs::write(dest, source).expect("writing shaders.metal");
}
