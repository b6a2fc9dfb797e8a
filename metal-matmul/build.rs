//! Turns the sys crate's `DEP_METAL_MATMUL_BRIDGE` metadata into one cfg,
//! `metal_bridge`: "the Objective-C bridge is compiled and linked into this build".

fn main() {
    println!("cargo::rustc-check-cfg=cfg(metal_bridge)");
    println!("cargo::rerun-if-env-changed=DEP_METAL_MATMUL_BRIDGE");
    if std::env::var("DEP_METAL_MATMUL_BRIDGE").is_ok_and(|v| v == "1") {
        println!("cargo::rustc-cfg=metal_bridge");
    }
}
