//! The CUDA backend's device context: opened once, shared by every caller.

use std::sync::Arc;

use cudarc::driver::{CudaContext, sys};

use super::compile::{self, Kernels};
use super::host::HostPool;
use super::lane::Lanes;
use super::policy::Plan;
use super::report::cores_per_sm;
use super::{
    CUDA_DEVICE_TYPE, CudaFacts, CudaStatus, MAX_LANES, errors, probe, schedule, unavailable,
};
use crate::{DeviceInfo, Method, Result, Shape};

use super::report::Timing;

/// An open device: its context, compiled kernels, facts and lanes.
#[derive(Debug)]
pub(super) struct Context {
    ctx: Arc<CudaContext>,
    kernels: Kernels,
    facts: CudaFacts,
    lanes: Lanes,
    host: Arc<HostPool>,
}

pub(super) fn probe() -> CudaStatus {
    if let Err(reason) = probe::libraries() {
        return CudaStatus {
            compiled: true,
            libraries: false,
            device: false,
            reason: Some(reason),
            facts: None,
        };
    }
    match Context::open() {
        Ok(context) => CudaStatus {
            compiled: true,
            libraries: true,
            device: true,
            reason: None,
            facts: Some(context.facts),
        },
        Err(e) => CudaStatus {
            compiled: true,
            libraries: true,
            device: false,
            reason: Some(e.to_string()),
            facts: None,
        },
    }
}

impl Context {
    pub(super) fn open() -> Result<Self> {
        probe::libraries().map_err(unavailable)?;
        let count = CudaContext::device_count().map_err(|e| {
            unavailable(format!(
                "the driver found no device: {}",
                errors::driver("cuDeviceGetCount", e)
            ))
        })?;
        if count < 1 {
            return Err(unavailable("the driver reports no CUDA device"));
        }
        let ctx = CudaContext::new(0).map_err(|e| {
            unavailable(format!(
                "device 0 did not open: {}",
                errors::driver("cuDevicePrimaryCtxRetain", e)
            ))
        })?;
        let facts = read_facts(&ctx)?;
        let kernels = Kernels::load(&ctx, &facts.arch)?;
        Ok(Self {
            host: HostPool::new(&ctx),
            ctx,
            kernels,
            facts,
            lanes: Lanes::new(MAX_LANES),
        })
    }

    pub(super) fn facts(&self) -> &CudaFacts {
        &self.facts
    }

    pub(super) fn device_info(&self) -> DeviceInfo {
        let (free, total) = self
            .ctx
            .mem_get_info()
            .map(|(f, t)| (f as u64, t as u64))
            .unwrap_or((0, self.facts.memory_total));
        DeviceInfo {
            device_type: CUDA_DEVICE_TYPE.to_owned(),
            name: self.facts.name.clone(),
            compute_capability: self.facts.capability_string(),
            memory_total: total,
            memory_free: free,
            max_threads_per_group: 1024,
            unified_memory: false,
            gpu: None,
        }
    }

    pub(super) fn check_memory(&self, bytes: u64) -> Result<()> {
        super::lane::check_free(&self.ctx, bytes, 0)
    }

    pub(super) fn drain_pool(&self) -> u64 {
        self.host.drain();
        self.lanes.drain()
    }

    pub(super) fn lend(&self, len: usize) -> Result<crate::HostBuffer> {
        self.host.lend(len).map(crate::HostBuffer::pinned)
    }

    pub(super) fn matmul(
        &self,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        shape: Shape,
        method: Method,
        plan: Plan,
    ) -> Result<Timing> {
        let in_place = [self.host.holds(a), self.host.holds(b), self.host.holds(c)];
        let mut taken = self.lanes.take(&self.ctx)?;
        let job = schedule::Job {
            a,
            b,
            c,
            shape,
            method,
            plan,
            in_place,
        };
        let timing = schedule::run(&self.ctx, taken.lane(), &self.kernels, job)?;
        taken.keep();
        Ok(timing)
    }
}

fn read_facts(ctx: &Arc<CudaContext>) -> Result<CudaFacts> {
    use sys::CUdevice_attribute as A;
    let attr = |a: A, what: &str| {
        ctx.attribute(a)
            .map(|v| v.max(0) as u32)
            .map_err(|e| errors::driver(&format!("reading the device's {what}"), e))
    };
    let major = attr(
        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
        "compute capability",
    )?;
    let minor = attr(
        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
        "compute capability",
    )?;
    let mut driver_version = 0;
    // SAFETY: the pointer is valid for a write; the symbol was probed.
    unsafe { sys::cuDriverGetVersion(&mut driver_version) }
        .result()
        .map_err(|e| errors::driver("reading the driver's version", e))?;
    Ok(CudaFacts {
        name: ctx
            .name()
            .map_err(|e| errors::driver("reading the device's name", e))?,
        compute_capability: (major, minor),
        arch: format!("sm_{major}{minor}"),
        sm_count: attr(
            A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            "multiprocessor count",
        )?,
        cores_per_sm: cores_per_sm(major, minor),
        memory_total: ctx
            .total_mem()
            .map_err(|e| errors::driver("reading the device's memory", e))?
            as u64,
        shared_memory_per_block: u64::from(attr(
            A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            "shared memory",
        )?),
        l2_bytes: u64::from(attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, "L2 size")?),
        driver_version: driver_version.max(0) as u32,
        nvrtc_version: compile::nvrtc_version()?,
        cublas_version: cublas_version(ctx)?,
    })
}

fn cublas_version(ctx: &Arc<CudaContext>) -> Result<u32> {
    let blas = cudarc::cublas::CudaBlas::new(ctx.default_stream())
        .map_err(|e| errors::cublas("creating a cuBLAS handle", e))?;
    let mut version = 0;
    // SAFETY: the handle is live; the pointer is valid for a write.
    unsafe { cudarc::cublas::sys::cublasGetVersion_v2(*blas.handle(), &mut version) }
        .result()
        .map_err(|e| errors::cublas("reading cuBLAS's version", e))?;
    Ok(version.max(0) as u32)
}
