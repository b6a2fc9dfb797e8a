//! f32 matrix multiplication on Apple Metal GPUs, with a fast multithreaded CPU
//! fallback on every platform.
//!
//! `C = A·B` for row-major matrices, A m×k, B k×n, through one [`Backend`] trait:
//!
//! - [`CpuBackend`]: every platform; multithreaded GEMM on a pool of its own, through
//!   faer and our own SIMD kernels (AVX-512F, AVX2+FMA) chosen by the CPU's features.
//! - [`MetalBackend`]: macOS builds with a Metal device, through the Objective-C bridge
//!   in `metal-matmul-sys` (simple, tiled, simdgroup and MPS methods). On other targets it is a
//!   stub whose constructor answers [`Error::Unavailable`].
//! - [`CudaBackend`]: non-macOS builds with an NVIDIA GPU, through `cudarc` with the
//!   driver, cuBLAS and NVRTC loaded at run time (cuBLAS FP32 and TF32, and simple,
//!   tiled and register-blocked kernels compiled by NVRTC). Nothing of CUDA is needed
//!   to build; without the libraries or a device its constructor answers
//!   [`Error::Unavailable`]. On macOS it is a stub.
//!
//! [`select`] opens one by [`BackendChoice`]: `auto` tries Metal, then CUDA, then
//! the CPU, logging why each GPU was skipped; `FXN_BACKEND` overrides `auto`.
//!
//! ```
//! use metal_matmul::{select, Backend, BackendChoice, Shape};
//!
//! let selected = select(BackendChoice::Auto)?;
//! let c = selected.backend.matmul(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], Shape::square(2))?;
//! assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
//! # Ok::<(), metal_matmul::Error>(())
//! ```
//!
//! # Safety
//! `unsafe` is confined to the Metal backend's calls into the bridge, the CUDA backend's
//! calls into the CUDA libraries (copies, launches, cuBLAS, NVRTC), reading CPU facts on
//! macOS, allocating zeroed host memory ([`HostBuffer::heap`]), and the CPU kernels' SIMD intrinsics (each behind a run-time feature check and
//! slice-length assertions); each block states why it is sound. Every argument is
//! validated in Rust before the bridge or a CUDA library sees it.

mod backend;
mod cpu;
mod cuda;
mod device;
mod error;
mod host;
mod metal;
mod method;
pub mod numeric;
mod random;
mod select;
mod shape;
pub mod verify;

pub use backend::{Backend, BackendChoice, BackendKind, MatmulOptions, MatmulReport};
pub use cpu::{CpuBackend, CpuInfo, SIMD_ENV, SimdLimit};
pub use cuda::{
    CUDA_DEVICE_TYPE, CUDA_MAX_DIM, CudaBackend, CudaFacts, CudaPolicy, CudaReport, CudaStaging,
    CudaStatus, MAX_LANES, cores_per_sm,
};
pub use device::{DeviceInfo, GpuDetails};
pub use error::{CudaLibrary, Error, NativeCode, Result};
pub use host::HostBuffer;
pub use metal::{MetalBackend, MetalReport, MetalStatus, PoolStats};
pub use method::{Method, MethodPolicy};
pub use random::random_matrix;
pub use select::{BACKEND_ENV, SelectOptions, Selected, effective_choice, select, select_with};
pub use shape::{BRIDGE_MAX_DIM, DEFAULT_MAX_DIM, Shape};
