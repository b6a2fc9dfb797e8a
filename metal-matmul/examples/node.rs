//! The implementation plan's section 4.4 example, as a dependent crate would write it:
//! open the best backend, show its device, multiply two 1024×1024 matrices.
//!
//! ```text
//! cargo run --release -p metal-matmul --example node
//! FXN_BACKEND=cpu cargo run --release -p metal-matmul --example node
//! ```

use std::time::Instant;

use metal_matmul::{BackendChoice, MetalStatus, Shape, select};

fn main() -> Result<(), metal_matmul::Error> {
    let status = MetalStatus::probe();
    if !status.available() {
        println!(
            "Metal GPU not available ({}); using the CPU",
            status.reason.as_deref().unwrap_or("unknown")
        );
    }

    let selected = select(BackendChoice::Auto)?;
    let backend = selected.backend;
    let info = backend.device_info();
    println!("Using {}: {}", info.device_type, info.name);

    let size = 1024;
    let shape = Shape::square(size);
    // Deterministic, non-trivial inputs without a random-number dependency.
    let a: Vec<f32> = (0..size * size)
        .map(|i| ((i * 7 + 3) % 17) as f32 / 17.0)
        .collect();
    let b: Vec<f32> = (0..size * size)
        .map(|i| ((i * 5 + 1) % 13) as f32 / 13.0)
        .collect();

    let start = Instant::now();
    let c = backend.matmul(&a, &b, shape)?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "Matrix multiplication completed: C[0][0] = {}, {:.1} GFLOPS in {:.2} ms",
        c[0],
        shape.flops() / seconds / 1e9,
        seconds * 1e3
    );
    Ok(())
}
