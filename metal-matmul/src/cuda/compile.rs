//! Our kernels, compiled by NVRTC to a CUBIN for the device's exact architecture once
//! per process, then loaded as a module.
//!
//! CUBIN rather than PTX: a driver refuses PTX from an NVRTC newer than itself
//! (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`), while a CUBIN for `sm_XY` runs on any
//! driver that knows the device.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::{Ptx, result, sys};

use super::errors;
use crate::{Error, Result};

/// The kernels' CUDA C source.
pub const KERNEL_SOURCE: &str = include_str!("kernels.cu");

/// Our compiled kernels, loaded in one context.
#[derive(Debug, Clone)]
pub(super) struct Kernels {
    pub simple: CudaFunction,
    pub tiled: CudaFunction,
    pub register_blocked: CudaFunction,
}

impl Kernels {
    /// Compiles (first use of `arch` in this process) and loads the kernels.
    pub(super) fn load(ctx: &Arc<CudaContext>, arch: &str) -> Result<Self> {
        let cubin = cubin(arch)?;
        let module = ctx
            .load_module(Ptx::from_binary(cubin.as_ref().clone()))
            .map_err(|e| errors::driver("loading the compiled kernels", e))?;
        let function = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| errors::driver(&format!("finding kernel {name}"), e))
        };
        Ok(Self {
            simple: function("matmul_simple")?,
            tiled: function("matmul_tiled")?,
            register_blocked: function("matmul_register_blocked")?,
        })
    }
}

/// The CUBIN for `arch` (e.g. `sm_90`), compiled once per process and architecture.
fn cubin(arch: &str) -> Result<Arc<Vec<u8>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(arch) {
        return Ok(found.clone());
    }
    let compiled = Arc::new(compile(KERNEL_SOURCE, arch)?);
    cache.insert(arch.to_owned(), compiled.clone());
    Ok(compiled)
}

/// Compiles `source` to a CUBIN for `arch`; a failure carries NVRTC's log.
pub(super) fn compile(source: &str, arch: &str) -> Result<Vec<u8>> {
    let src = CString::new(source).map_err(|_| Error::invalid("the kernel source holds a NUL"))?;
    let name = c"metal_matmul_kernels.cu";
    let prog = result::create_program(&src, Some(name))
        .map_err(|e| errors::nvrtc("creating the NVRTC program", e, None))?;
    let program = Program(prog);
    let options = [
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_owned(),
    ];
    // SAFETY: `program.0` is a live program (destroyed only in Program's drop); `src`
    // and `name` outlive it.
    if let Err(e) = unsafe { result::compile_program(program.0, &options) } {
        let log = program.log();
        return Err(errors::nvrtc(
            &format!("compiling the kernels for {arch}"),
            e,
            Some(&log),
        ));
    }
    let mut size = 0usize;
    // SAFETY: the program compiled; `size` is valid for a write.
    unsafe { sys::nvrtcGetCUBINSize(program.0, &mut size) }
        .result()
        .map_err(|e| errors::nvrtc("reading the CUBIN size", e, None))?;
    let mut cubin = vec![0u8; size];
    // SAFETY: `cubin` holds exactly the `size` bytes NVRTC asked for.
    unsafe { sys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr().cast()) }
        .result()
        .map_err(|e| errors::nvrtc("reading the CUBIN", e, None))?;
    Ok(cubin)
}

/// NVRTC's version, (major, minor).
pub(super) fn nvrtc_version() -> Result<(u32, u32)> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both pointers are valid for writes.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| errors::nvrtc("reading NVRTC's version", e, None))?;
    Ok((major.max(0) as u32, minor.max(0) as u32))
}

/// An NVRTC program, destroyed on drop.
struct Program(sys::nvrtcProgram);

impl Program {
    /// The compiler's log, empty when it cannot be read.
    fn log(&self) -> String {
        // SAFETY: `self.0` is a live program.
        match unsafe { result::get_program_log(self.0) } {
            Ok(raw) => {
                let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).collect();
                CStr::from_bytes_until_nul(&bytes)
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
            }
            Err(_) => String::new(),
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `create_program` and is destroyed once. A failure
        // to destroy leaks the program and is not worth a panic.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}
