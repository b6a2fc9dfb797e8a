//! The crate's error type.

use crate::BackendKind;

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a multiplication or in setting up a backend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend cannot be used on this machine or build.
    #[error("{backend} backend unavailable: {reason}")]
    Unavailable {
        /// The backend that was asked for.
        backend: BackendKind,
        /// Why it is unavailable.
        reason: String,
    },
    /// The caller passed something the API does not accept: a slice length other than
    /// the shape says, a size whose product overflows, a dimension over the limit, a
    /// method the backend does not have.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An input or the output holds NaN or infinity (only when finiteness checks are on).
    #[error("non-finite value in {operand} at index {index} (row {row}, column {col})")]
    NonFinite {
        /// `"A"`, `"B"` or `"C"`.
        operand: &'static str,
        /// The element's index in its row-major slice.
        index: usize,
        /// Its row.
        row: usize,
        /// Its column.
        col: usize,
    },
    /// A product failed a check of [`verify`](crate::verify): element (`row`, `col`) of C
    /// is further from what it should be than the tolerance allows.
    #[error(
        "result differs at row {row}, column {col}: got {got}, want {want} (scaled error {scaled_error:.3e} over the tolerance {tolerance:.1e})"
    )]
    Mismatch {
        /// The element's row in C.
        row: usize,
        /// Its column.
        col: usize,
        /// The value the product holds.
        got: f32,
        /// The value the check computed (in f64).
        want: f64,
        /// `|got - want|` relative to the check's scale ([`verify::scale`](crate::verify::scale));
        /// infinite for NaN.
        scaled_error: f64,
        /// The largest scaled error allowed.
        tolerance: f64,
    },
    /// A CUDA library returned an error, or a request does not fit the device (then
    /// `name` is `CUDA_ERROR_OUT_OF_MEMORY`, found before anything was allocated).
    #[error("CUDA {library} error {name} ({code}): {message}")]
    Cuda {
        /// The library that reported it.
        library: CudaLibrary,
        /// Its raw status code.
        code: i32,
        /// The code's name, e.g. `CUDA_ERROR_OUT_OF_MEMORY`, `CUBLAS_STATUS_NOT_SUPPORTED`.
        name: String,
        /// The library's description, with any detail (e.g. the NVRTC log).
        message: String,
    },
    /// The native Metal bridge reported an error.
    #[error("Metal error {code:?} ({}): {message}", code.raw())]
    Native {
        /// The bridge's status code.
        code: NativeCode,
        /// The bridge's message, with any detail it gave (e.g. the shader compiler's log).
        message: String,
    },
}

/// Which CUDA library reported an [`Error::Cuda`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CudaLibrary {
    /// The driver API (`libcuda`): `CUresult` codes.
    Driver,
    /// cuBLAS: `cublasStatus_t` codes.
    Cublas,
    /// NVRTC, the run-time compiler: `nvrtcResult` codes.
    Nvrtc,
}

impl std::fmt::Display for CudaLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Driver => "driver",
            Self::Cublas => "cuBLAS",
            Self::Nvrtc => "NVRTC",
        })
    }
}

/// The bridge's `METAL_ERROR_*` status codes. Unknown codes are kept, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NativeCode {
    /// `METAL_ERROR_NO_DEVICE`: no Metal device.
    NoDevice,
    /// `METAL_ERROR_SHADER_COMPILE`: the embedded shaders failed to compile.
    ShaderCompile,
    /// `METAL_ERROR_OUT_OF_MEMORY`: the buffers do not fit the device.
    OutOfMemory,
    /// `METAL_ERROR_INVALID_DIMENSIONS`: dimensions the bridge does not accept.
    InvalidDimensions,
    /// `METAL_ERROR_KERNEL_TIMEOUT`: the command buffer timed out (GPU watchdog).
    KernelTimeout,
    /// `METAL_ERROR_GPU_FAULT`: the command buffer completed with another error.
    GpuFault,
    /// `METAL_ERROR_INVALID_ARGUMENT`: a null pointer or unknown method reached the bridge.
    InvalidArgument,
    /// `METAL_ERROR_UNSUPPORTED`: the method is not supported on this device.
    Unsupported,
    /// A code this crate does not know.
    Unknown(i32),
}

impl NativeCode {
    /// Maps a raw status code (never `METAL_SUCCESS`) to its variant.
    pub fn from_raw(code: i32) -> Self {
        use metal_matmul_sys as sys;
        match code {
            sys::METAL_ERROR_NO_DEVICE => Self::NoDevice,
            sys::METAL_ERROR_SHADER_COMPILE => Self::ShaderCompile,
            sys::METAL_ERROR_OUT_OF_MEMORY => Self::OutOfMemory,
            sys::METAL_ERROR_INVALID_DIMENSIONS => Self::InvalidDimensions,
            sys::METAL_ERROR_KERNEL_TIMEOUT => Self::KernelTimeout,
            sys::METAL_ERROR_GPU_FAULT => Self::GpuFault,
            sys::METAL_ERROR_INVALID_ARGUMENT => Self::InvalidArgument,
            sys::METAL_ERROR_UNSUPPORTED => Self::Unsupported,
            other => Self::Unknown(other),
        }
    }

    /// The raw status code.
    pub fn raw(self) -> i32 {
        use metal_matmul_sys as sys;
        match self {
            Self::NoDevice => sys::METAL_ERROR_NO_DEVICE,
            Self::ShaderCompile => sys::METAL_ERROR_SHADER_COMPILE,
            Self::OutOfMemory => sys::METAL_ERROR_OUT_OF_MEMORY,
            Self::InvalidDimensions => sys::METAL_ERROR_INVALID_DIMENSIONS,
            Self::KernelTimeout => sys::METAL_ERROR_KERNEL_TIMEOUT,
            Self::GpuFault => sys::METAL_ERROR_GPU_FAULT,
            Self::InvalidArgument => sys::METAL_ERROR_INVALID_ARGUMENT,
            Self::Unsupported => sys::METAL_ERROR_UNSUPPORTED,
            Self::Unknown(code) => code,
        }
    }
}

impl Error {
    /// An [`Error::InvalidArgument`] from anything printable.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }
}
