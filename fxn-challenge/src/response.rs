//! The answer to a challenge and its JSON, key for key as the Go node writes it.

use std::io;
use std::time::Duration;

use metal_matmul::verify::FreivaldsReport;
use metal_matmul::{BackendKind, CudaFacts, DeviceInfo, HostBuffer, Shape};
use serde::Serialize;
use serde::ser::Serializer;

use crate::merkle::merkle_root;

/// `C` is included in the response up to this `matrixSize` (upstream's rule).
pub const MAX_SIZE_WITH_C: usize = 100;

/// A computed challenge.
#[derive(Debug)]
pub struct Outcome {
    /// The product's shape.
    pub shape: Shape,
    /// `matrixSize`: `size`, or the rows of A.
    pub matrix_size: usize,
    /// C, m×n row-major, in memory the computing backend lent (pinned on CUDA).
    pub c: HostBuffer,
    /// The backend that computed C.
    pub backend: BackendKind,
    /// Its device.
    pub device: DeviceInfo,
    /// The CUDA device's facts, when the CUDA backend computed C.
    pub cuda: Option<CudaFacts>,
    /// Wall time of the multiplication alone (no parsing, no generation, no device
    /// start-up).
    pub computation_time: Duration,
    /// The self-check, when it ran.
    pub self_check: Option<FreivaldsReport>,
    /// The seed of a `size` challenge's matrices.
    pub seed: Option<u64>,
    /// Why a GPU request ran on the CPU, when it did.
    pub gpu_fallback: Option<String>,
}

impl Outcome {
    /// `flops`: 2·m·k·n.
    pub fn flops(&self) -> u64 {
        let Shape { m, k, n } = self.shape;
        2u64.saturating_mul(m as u64)
            .saturating_mul(k as u64)
            .saturating_mul(n as u64)
    }

    /// `gflops`: `flops` / 1e9 / seconds (0 when the time is too short to measure).
    pub fn gflops(&self) -> f64 {
        let seconds = self.computation_time.as_secs_f64();
        if seconds > 0.0 {
            self.flops() as f64 / 1e9 / seconds
        } else {
            0.0
        }
    }

    /// `merkleRoot` (see [`merkle_root`]).
    pub fn merkle_root(&self) -> String {
        merkle_root(&self.c)
    }

    /// The element at (`row`, `col`) of C.
    pub fn value(&self, row: usize, col: usize) -> f32 {
        self.c[row * self.shape.n + col]
    }

    /// The response JSON (compact, no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        // About 12 bytes per value of C when it is included, plus the fixed keys.
        let c_len = if self.matrix_size <= MAX_SIZE_WITH_C {
            self.c.len() * 12
        } else {
            0
        };
        let mut out = Vec::with_capacity(1024 + c_len);
        // Writing to a Vec cannot fail, and every value here serializes.
        if let Err(e) = self.write_json(&mut out) {
            log::error!("cannot write a response: {e}");
        }
        out
    }

    /// Writes the response JSON to `out`, streaming C without building a tree.
    pub fn write_json(&self, out: impl io::Write) -> io::Result<()> {
        let Shape { m, n, .. } = self.shape;
        let root = self.merkle_root();
        let sample = |row: usize, col: usize| Sample {
            row,
            col,
            value: self.value(row, col),
        };
        let capability = if self.device.unified_memory {
            format!("{} (Unified Memory)", self.device.compute_capability)
        } else {
            self.device.compute_capability.clone()
        };
        let memory_gb = self.device.memory_total as f64 / f64::from(1u32 << 30);
        let device_info = if self.backend == BackendKind::Metal {
            WireDeviceInfo {
                name: &self.device.name,
                compute_capability: &capability,
                memory_gb,
                cuda_cores: 0,
                cuda_version: None,
                driver_version: None,
            }
        } else if let (BackendKind::Cuda, Some(facts)) = (self.backend, &self.cuda) {
            // As the Go node's CUDA backend: "9.0", GiB of device memory, and the FP32
            // cores (multiprocessors × cores per multiprocessor; 0 when the
            // capability is not in the table rather than a guess).
            WireDeviceInfo {
                name: &facts.name,
                compute_capability: &capability,
                memory_gb: facts.memory_total as f64 / f64::from(1u32 << 30),
                cuda_cores: facts.cuda_cores().unwrap_or(0),
                cuda_version: Some(facts.cuda_version_string()),
                driver_version: Some(facts.driver_version_string()),
            }
        } else {
            // Upstream's CPU answer, word for word; the CPU's real name is in
            // `device_info.device_name`.
            WireDeviceInfo {
                name: "CPU",
                compute_capability: "N/A",
                memory_gb: 0.0,
                cuda_cores: 0,
                cuda_version: None,
                driver_version: None,
            }
        };
        let wire = Wire {
            computation_time_ms: self.computation_time.as_secs_f64() * 1e3,
            gflops: self.gflops(),
            backend: self.backend.name(),
            device: device_info.name,
            device_info,
            matrix_size: self.matrix_size,
            merkle_root: &root,
            result_samples: [sample(0, 0), sample(m / 2, n / 2)],
            flops: self.flops(),
            c: (self.matrix_size <= MAX_SIZE_WITH_C).then_some(Rows {
                data: &self.c,
                cols: n,
            }),
            device_info_plan: PlanDeviceInfo {
                device_type: &self.device.device_type,
                device_name: &self.device.name,
            },
            self_check: self.self_check.map(|r| SelfCheck {
                method: "freivalds",
                rounds: r.rounds,
                passed: r.passed,
                worst_ratio: r.worst_ratio,
            }),
            seed: self.seed,
        };
        serde_json::to_writer(out, &wire).map_err(io::Error::from)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    computation_time_ms: f64,
    gflops: f64,
    backend: &'static str,
    device: &'a str,
    device_info: WireDeviceInfo<'a>,
    matrix_size: usize,
    merkle_root: &'a str,
    result_samples: [Sample; 2],
    flops: u64,
    #[serde(rename = "C", skip_serializing_if = "Option::is_none")]
    c: Option<Rows<'a>>,
    /// The implementation plan's `device_info` (ours, beside upstream's keys).
    #[serde(rename = "device_info")]
    device_info_plan: PlanDeviceInfo<'a>,
    /// Ours: the self-check, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    self_check: Option<SelfCheck>,
    /// Ours: the seed of a `size` challenge, to reproduce its matrices.
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireDeviceInfo<'a> {
    name: &'a str,
    compute_capability: &'a str,
    #[serde(rename = "memoryGB")]
    memory_gb: f64,
    cuda_cores: u32,
    /// CUDA only: the toolkit (NVRTC) version, e.g. "13.0".
    #[serde(skip_serializing_if = "Option::is_none")]
    cuda_version: Option<String>,
    /// CUDA only: the CUDA version the driver supports, e.g. "13.0".
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_version: Option<String>,
}

#[derive(Serialize)]
struct PlanDeviceInfo<'a> {
    device_type: &'a str,
    device_name: &'a str,
}

#[derive(Serialize)]
struct Sample {
    row: usize,
    col: usize,
    value: f32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SelfCheck {
    method: &'static str,
    rounds: u32,
    passed: bool,
    /// The largest residual over its tolerance (≤ 1 passes).
    worst_ratio: f64,
}

/// C as an array of row arrays, serialized straight from the flat slice.
struct Rows<'a> {
    data: &'a [f32],
    cols: usize,
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.data.chunks_exact(self.cols.max(1)))
    }
}
