//! Whether the CUDA libraries load, checked before cudarc is asked: cudarc panics when
//! a library or one of its symbols is missing, so every library and every symbol this
//! backend calls is looked up here first.

/// Driver API symbols the backend calls (through cudarc's safe and result layers).
const DRIVER_SYMBOLS: &[&str] = &[
    "cuInit",
    "cuDeviceGet",
    "cuDeviceGetCount",
    "cuDeviceGetName",
    "cuDeviceGetAttribute",
    "cuDeviceTotalMem_v2",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxSetCurrent",
    "cuCtxGetCurrent",
    "cuDriverGetVersion",
    "cuGetErrorName",
    "cuGetErrorString",
    "cuMemGetInfo_v2",
    "cuMemAllocAsync",
    "cuMemFreeAsync",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemHostAlloc",
    "cuMemFreeHost",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuStreamCreate",
    "cuStreamDestroy_v2",
    "cuStreamSynchronize",
    "cuStreamWaitEvent",
    "cuEventCreate",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventElapsedTime_v2",
    "cuEventDestroy_v2",
    "cuModuleLoadData",
    "cuModuleUnload",
    "cuModuleGetFunction",
    "cuLaunchKernel",
];

/// cuBLAS symbols the backend calls.
const CUBLAS_SYMBOLS: &[&str] = &[
    "cublasCreate_v2",
    "cublasDestroy_v2",
    "cublasSetStream_v2",
    "cublasSetMathMode",
    "cublasSgemm_v2",
    "cublasGetVersion_v2",
];

/// NVRTC symbols the backend calls.
const NVRTC_SYMBOLS: &[&str] = &[
    "nvrtcVersion",
    "nvrtcCreateProgram",
    "nvrtcCompileProgram",
    "nvrtcDestroyProgram",
    "nvrtcGetProgramLogSize",
    "nvrtcGetProgramLog",
    "nvrtcGetCUBINSize",
    "nvrtcGetCUBIN",
];

/// `Ok` when the driver, cuBLAS and NVRTC load and export every symbol used; else why
/// not, naming the library and where it is searched.
pub(super) fn libraries() -> Result<(), String> {
    // SAFETY: `is_culib_present` only tries `dlopen` on cudarc's candidate names; a
    // library's initialisers run as for any dlopen, which is what using it needs.
    let present = unsafe {
        [
            (
                "the driver library libcuda",
                cudarc::driver::sys::is_culib_present(),
            ),
            (
                "cuBLAS (libcublas)",
                cudarc::cublas::sys::is_culib_present(),
            ),
            ("NVRTC (libnvrtc)", cudarc::nvrtc::sys::is_culib_present()),
        ]
    };
    for (what, found) in present {
        if !found {
            return Err(format!(
                "{what} was not found by the dynamic loader (LD_LIBRARY_PATH, the ld.so cache, the system directories)"
            ));
        }
    }
    let check = |lib: &'static libloading::Library, what: &str, symbols: &[&str]| {
        for symbol in symbols {
            // SAFETY: the symbol is only looked up, never called through this type.
            let found = unsafe { lib.get::<unsafe extern "C" fn()>(symbol.as_bytes()) }.is_ok();
            if !found {
                return Err(format!(
                    "{what} has no symbol {symbol} (too old a version?)"
                ));
            }
        }
        Ok(())
    };
    // SAFETY: each `culib` loads its library once; `is_culib_present` returned true
    // above, so none of them takes its panicking branch.
    let (driver, cublas, nvrtc) = unsafe {
        (
            cudarc::driver::sys::culib(),
            cudarc::cublas::sys::culib(),
            cudarc::nvrtc::sys::culib(),
        )
    };
    check(driver, "the driver library", DRIVER_SYMBOLS)?;
    check(cublas, "cuBLAS", CUBLAS_SYMBOLS)?;
    check(nvrtc, "NVRTC", NVRTC_SYMBOLS)?;
    Ok(())
}
