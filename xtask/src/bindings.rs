//! `cargo xtask bindgen [--check]`: regenerate or verify the committed FFI bindings.

use std::fs;
use std::path::Path;

include!("../../metal-matmul-sys/bindgen_config.rs");

/// Regenerates `metal-matmul-sys/src/bindings.rs`; with `--check`, fails when the
/// committed file differs from what bindgen generates now.
pub fn run(root: &Path, rest: &[String]) -> Result<(), String> {
    let check = rest.iter().any(|a| a == "--check");
    let header = root.join("native/metal_matmul.h");
    let dest = root.join("metal-matmul-sys/src/bindings.rs");
    let generated = metal_matmul_bindings(header.to_str().ok_or("non-UTF-8 path")?)
        .generate()
        .map_err(|e| {
            format!("bindgen failed (is libclang installed? apt-get install libclang-dev): {e}")
        })?
        .to_string();
    let current = fs::read_to_string(&dest).unwrap_or_default();
    if current == generated {
        println!("bindings are up to date: {}", dest.display());
        return Ok(());
    }
    if check {
        return Err(format!(
            "{} is stale: run `cargo xtask bindgen` and commit the result",
            dest.display()
        ));
    }
    fs::write(&dest, generated).map_err(|e| format!("writing {}: {e}", dest.display()))?;
    println!("wrote {}", dest.display());
    Ok(())
}
