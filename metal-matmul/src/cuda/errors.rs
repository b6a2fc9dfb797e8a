//! Every CUDA, cuBLAS and NVRTC failure as an [`Error::Cuda`] with its code, name and
//! message.

use cudarc::cublas::result::CublasError;
use cudarc::driver::DriverError;
use cudarc::nvrtc::result::NvrtcError;

use crate::{CudaLibrary, Error};

/// The driver's `CUDA_ERROR_OUT_OF_MEMORY`.
pub(super) const OUT_OF_MEMORY: i32 = 2;

/// A driver error, with the driver's own name and description (`cuGetErrorName`,
/// `cuGetErrorString`), and what we were doing.
pub(super) fn driver(context: &str, err: DriverError) -> Error {
    let name = err
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", err.0));
    let text = err
        .error_string()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "no description".to_owned());
    Error::Cuda {
        library: CudaLibrary::Driver,
        code: err.0 as i32,
        name,
        message: format!("{context}: {text}"),
    }
}

/// A cuBLAS status, named by its `cublasStatus_t` variant.
pub(super) fn cublas(context: &str, err: CublasError) -> Error {
    Error::Cuda {
        library: CudaLibrary::Cublas,
        code: err.0 as i32,
        name: format!("{:?}", err.0),
        message: context.to_owned(),
    }
}

/// An NVRTC status, with the compiler's log when there is one.
pub(super) fn nvrtc(context: &str, err: NvrtcError, log: Option<&str>) -> Error {
    let message = match log.map(str::trim).filter(|l| !l.is_empty()) {
        Some(log) => format!("{context}:\n{log}"),
        None => context.to_owned(),
    };
    Error::Cuda {
        library: CudaLibrary::Nvrtc,
        code: err.0 as i32,
        name: format!("{:?}", err.0),
        message,
    }
}

/// The request does not fit the device's free memory: refused before allocating.
pub(super) fn out_of_memory(needed: u64, free: u64) -> Error {
    Error::Cuda {
        library: CudaLibrary::Driver,
        code: OUT_OF_MEMORY,
        name: "CUDA_ERROR_OUT_OF_MEMORY".to_owned(),
        message: format!(
            "the product needs {needed} bytes of device memory and {free} are free (checked before allocating)"
        ),
    }
}
