//! `fxn-cli gpu info`: Metal's and CUDA's status, the selected backend's device and the
//! CPU.

use std::fmt::Write as _;

use metal_matmul::{CpuInfo, CudaStatus, DeviceInfo, MetalStatus};
use serde::Serialize;

use crate::args::BackendArgs;
use crate::error::CliResult;
use crate::output::{JSON_FORMAT_VERSION, print_json, print_text};

/// `fxn-cli gpu ...`
#[derive(Debug, clap::Subcommand)]
pub enum GpuCommand {
    /// Whether Metal and CUDA are built in and answer, the selected backend's device,
    /// the CPU.
    Info(InfoArgs),
}

/// `fxn-cli gpu info` arguments.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Print one versioned JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// The `gpu info --json` document.
#[derive(Debug, Serialize)]
pub struct GpuInfoReport {
    /// The layout version of this document.
    pub format_version: u32,
    /// fxn-cli's version.
    pub version: &'static str,
    /// Whether the Metal bridge is compiled in, whether a device answered, and why not.
    pub metal: MetalStatus,
    /// Whether the CUDA backend is built in, its libraries load and a device answered,
    /// why not, and the device's facts.
    pub cuda: CudaStatus,
    /// The backend that `--backend` opened: `cpu`, `metal` or `cuda`.
    pub selected_backend: &'static str,
    /// Why `auto` skipped a GPU, when it did.
    pub fallback_reason: Option<String>,
    /// The selected backend's device.
    pub device: DeviceInfo,
    /// The machine's CPU.
    pub cpu: CpuInfo,
}

/// Runs a `gpu` subcommand.
pub fn run(cmd: &GpuCommand) -> CliResult {
    match cmd {
        GpuCommand::Info(args) => info(args),
    }
}

fn info(args: &InfoArgs) -> CliResult {
    let selected = args.backend.open()?;
    let report = GpuInfoReport {
        format_version: JSON_FORMAT_VERSION,
        version: env!("CARGO_PKG_VERSION"),
        metal: MetalStatus::probe(),
        cuda: CudaStatus::probe(),
        selected_backend: selected.backend.kind().name(),
        fallback_reason: selected.fallback_reason,
        device: selected.backend.device_info(),
        cpu: CpuInfo::detect(),
    };
    if args.json {
        print_json(&report)
    } else {
        print_text(&render(&report))
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// The text form of the report.
fn render(r: &GpuInfoReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Metal");
    let _ = writeln!(s, "  compiled in:     {}", yes_no(r.metal.compiled));
    let _ = writeln!(s, "  device answered: {}", yes_no(r.metal.device));
    if let Some(reason) = &r.metal.reason {
        let _ = writeln!(s, "  why not:         {reason}");
    }
    let c = &r.cuda;
    let _ = writeln!(s, "CUDA");
    let _ = writeln!(s, "  compiled in:     {}", yes_no(c.compiled));
    let _ = writeln!(s, "  libraries:       {}", yes_no(c.libraries));
    let _ = writeln!(s, "  device answered: {}", yes_no(c.device));
    if let Some(reason) = &c.reason {
        let _ = writeln!(s, "  why not:         {reason}");
    }
    if let Some(f) = &c.facts {
        let _ = writeln!(s, "  device:          {}", f.name);
        let _ = writeln!(
            s,
            "  capability:      {} (kernels built for {})",
            f.capability_string(),
            f.arch
        );
        let cores = f
            .cuda_cores()
            .map_or("unknown".to_owned(), |c| c.to_string());
        let _ = writeln!(s, "  SMs:             {} ({cores} FP32 cores)", f.sm_count);
        let _ = writeln!(s, "  memory:          {} total", gib(f.memory_total));
        let _ = writeln!(s, "  L2:              {} MiB", f.l2_bytes >> 20);
        let _ = writeln!(
            s,
            "  driver:          CUDA {} ({})",
            f.driver_version_string(),
            f.driver_version
        );
        let _ = writeln!(
            s,
            "  NVRTC / cuBLAS:  {} / {}",
            f.cuda_version_string(),
            f.cublas_version
        );
    }
    let _ = writeln!(s, "Selected backend:  {}", r.selected_backend);
    if let Some(reason) = &r.fallback_reason {
        let _ = writeln!(s, "  (skipped on the way: {reason})");
    }
    let d = &r.device;
    let _ = writeln!(s, "Device");
    let _ = writeln!(s, "  type:            {}", d.device_type);
    let _ = writeln!(s, "  name:            {}", d.name);
    let _ = writeln!(s, "  capability:      {}", d.compute_capability);
    let _ = writeln!(
        s,
        "  memory:          {} total, {} free",
        gib(d.memory_total),
        gib(d.memory_free)
    );
    let _ = writeln!(s, "  threads/group:   {}", d.max_threads_per_group);
    let _ = writeln!(s, "  unified memory:  {}", yes_no(d.unified_memory));
    if let Some(g) = &d.gpu {
        let _ = writeln!(s, "  families:        {}", g.families);
        let _ = writeln!(s, "  Metal 3:         {}", yes_no(g.supports_metal3));
        let _ = writeln!(s, "  threadgroup mem: {} bytes", g.max_threadgroup_memory);
        let _ = writeln!(s, "  max buffer:      {}", gib(g.max_buffer_length));
        let _ = writeln!(s, "  allocated now:   {}", gib(g.current_allocated));
        let _ = writeln!(s, "  low power:       {}", yes_no(g.low_power));
        let _ = writeln!(s, "  removable:       {}", yes_no(g.removable));
        let _ = writeln!(s, "  MPS:             {}", yes_no(g.supports_mps));
        let _ = writeln!(
            s,
            "  simdgroup mma:   {}",
            yes_no(g.supports_simdgroup_matrix)
        );
    }
    let c = &r.cpu;
    let _ = writeln!(s, "CPU");
    let _ = writeln!(s, "  model:           {}", c.model);
    let _ = writeln!(s, "  arch:            {} ({})", c.arch, c.simd);
    let _ = writeln!(s, "  cores:           {}", c.cores);
    for (label, bytes) in [
        ("L2:        ", c.l2_cache),
        ("last level:", c.last_level_cache),
    ] {
        if bytes > 0 {
            let mib = bytes as f64 / f64::from(1 << 20);
            let _ = writeln!(s, "  {label}      {mib} MiB of cache (CPUID)");
        }
    }
    let _ = writeln!(
        s,
        "  memory:          {} total, {} available",
        gib(c.memory_total),
        gib(c.memory_available)
    );
    s
}
