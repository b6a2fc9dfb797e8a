//! The CUDA backend on macOS: not built (macOS has no CUDA driver); no context can
//! exist.

use crate::{DeviceInfo, Method, Result, Shape};

use super::policy::Plan;
use super::report::Timing;
use super::{CudaFacts, CudaStatus, unavailable};

/// Uninhabited: every method that needs a context is statically unreachable.
#[derive(Debug)]
pub(super) enum Context {}

fn reason() -> String {
    "this build has no CUDA backend: it targets macOS, which has no CUDA driver".to_owned()
}

pub(super) fn probe() -> CudaStatus {
    CudaStatus {
        compiled: false,
        libraries: false,
        device: false,
        reason: Some(reason()),
        facts: None,
    }
}

impl Context {
    pub(super) fn open() -> Result<Self> {
        Err(unavailable(reason()))
    }

    pub(super) fn facts(&self) -> &CudaFacts {
        match *self {}
    }

    pub(super) fn device_info(&self) -> DeviceInfo {
        match *self {}
    }

    pub(super) fn check_memory(&self, _bytes: u64) -> Result<()> {
        match *self {}
    }

    pub(super) fn drain_pool(&self) -> u64 {
        match *self {}
    }

    pub(super) fn lend(&self, _len: usize) -> Result<crate::HostBuffer> {
        match *self {}
    }

    pub(super) fn matmul(
        &self,
        _a: &[f32],
        _b: &[f32],
        _c: &mut [f32],
        _shape: Shape,
        _method: Method,
        _plan: Plan,
    ) -> Result<Timing> {
        match *self {}
    }
}
