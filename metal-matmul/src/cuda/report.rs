//! What the CUDA backend reports: whether CUDA is usable ([`CudaStatus`]), the device's
//! facts ([`CudaFacts`]) and one call's copy/kernel split ([`CudaReport`]).

use std::time::Duration;

use crate::MatmulReport;

/// Whether CUDA can be used here, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CudaStatus {
    /// The CUDA backend is compiled into this build (every target but macOS).
    pub compiled: bool,
    /// The driver, cuBLAS and NVRTC libraries loaded with every symbol used.
    pub libraries: bool,
    /// A device answered and the backend opened on it.
    pub device: bool,
    /// Why CUDA is unavailable; `None` when it is available.
    pub reason: Option<String>,
    /// The device's facts, when one answered.
    pub facts: Option<CudaFacts>,
}

impl CudaStatus {
    /// True when the backend is compiled, the libraries load and a device answered.
    pub fn available(&self) -> bool {
        self.compiled && self.libraries && self.device
    }
}

/// Facts about a CUDA device and the libraries driving it, read once when the backend
/// opens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CudaFacts {
    /// The device's name, e.g. `"NVIDIA H200"`.
    pub name: String,
    /// Compute capability (major, minor), e.g. (9, 0).
    pub compute_capability: (u32, u32),
    /// The architecture the kernels were compiled for, e.g. `"sm_90"`.
    pub arch: String,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// FP32 cores per multiprocessor for this compute capability, when known
    /// ([`cores_per_sm`]).
    pub cores_per_sm: Option<u32>,
    /// Device memory in bytes.
    pub memory_total: u64,
    /// Shared memory per block, in bytes (the opt-in maximum).
    pub shared_memory_per_block: u64,
    /// L2 cache in bytes.
    pub l2_bytes: u64,
    /// The CUDA version the driver supports, as `cuDriverGetVersion` gives it
    /// (e.g. 13000 for 13.0).
    pub driver_version: u32,
    /// The NVRTC (toolkit) version that compiled the kernels, as (major, minor).
    pub nvrtc_version: (u32, u32),
    /// cuBLAS's version number (e.g. 130001 for 13.0.1).
    pub cublas_version: u32,
}

impl CudaFacts {
    /// `"9.0"`: the compute capability as the Go node reports it.
    pub fn capability_string(&self) -> String {
        format!(
            "{}.{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }

    /// FP32 cores: multiprocessors × cores per multiprocessor; `None` when the
    /// capability is not in the table (never a guess).
    pub fn cuda_cores(&self) -> Option<u32> {
        self.cores_per_sm.map(|c| c.saturating_mul(self.sm_count))
    }

    /// The driver's CUDA version as `"13.0"`.
    pub fn driver_version_string(&self) -> String {
        format!(
            "{}.{}",
            self.driver_version / 1000,
            (self.driver_version % 1000) / 10
        )
    }

    /// The toolkit's (NVRTC's) version as `"13.0"`.
    pub fn cuda_version_string(&self) -> String {
        format!("{}.{}", self.nvrtc_version.0, self.nvrtc_version.1)
    }
}

/// FP32 cores per multiprocessor by compute capability, from NVIDIA's CUDA C
/// Programming Guide (arithmetic-instruction throughput table); `None` for a
/// capability not listed there.
pub fn cores_per_sm(major: u32, minor: u32) -> Option<u32> {
    Some(match (major, minor) {
        (3, _) => 192,
        (5, _) => 128,
        (6, 0) => 64,
        (6, 1 | 2) => 128,
        (7, _) => 64,
        (8, 0) => 64,
        (8, 6 | 7 | 9) => 128,
        (9, 0) => 128,
        (10, _) | (12, _) => 128,
        _ => return None,
    })
}

/// Where one call's time went, as the schedule measured it (CUDA events, summed over
/// the row blocks); [`CudaReport`] carries it to the caller.
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub(crate) struct Timing {
    pub to_device: Duration,
    pub kernel: Duration,
    pub to_host: Duration,
    pub pinned: bool,
    pub in_place: bool,
    pub blocks: u32,
}

/// A [`MatmulReport`] with what only CUDA reports: where one call's time went.
///
/// Times come from CUDA events around each operation, summed over the row blocks when
/// the product was cut into blocks (then copies and compute overlap, and their sum is
/// more than the wall time).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CudaReport {
    /// The backend-independent report; its `gpu` is the kernel time.
    pub report: MatmulReport,
    /// Host→device copies (A and B).
    pub to_device: Duration,
    /// The kernels or cuBLAS calls.
    pub kernel: Duration,
    /// Device→host copies (C).
    pub to_host: Duration,
    /// Operands were staged through pinned buffers (copied there by the CPU).
    pub pinned: bool,
    /// Some operand was copied straight from or into pinned memory the backend lent
    /// ([`CudaBackend::pinned_buffer`](crate::CudaBackend::pinned_buffer)), with no staging.
    pub in_place: bool,
    /// Row blocks the product was cut into (1: no overlap).
    pub blocks: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopper_has_128_cores_per_sm() {
        let facts = CudaFacts {
            name: "NVIDIA H200".into(),
            compute_capability: (9, 0),
            arch: "sm_90".into(),
            sm_count: 132,
            cores_per_sm: cores_per_sm(9, 0),
            memory_total: 150_000_000_000,
            shared_memory_per_block: 232_448,
            l2_bytes: 60 << 20,
            driver_version: 13000,
            nvrtc_version: (13, 0),
            cublas_version: 130_001,
        };
        assert_eq!(facts.cuda_cores(), Some(16_896));
        assert_eq!(facts.capability_string(), "9.0");
        assert_eq!(facts.driver_version_string(), "13.0");
        assert_eq!(facts.cuda_version_string(), "13.0");
        assert_eq!(cores_per_sm(8, 0), Some(64));
        assert_eq!(cores_per_sm(8, 6), Some(128));
        assert_eq!(cores_per_sm(2, 0), None);
    }
}
