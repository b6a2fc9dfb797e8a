//! The Metal backend where the bridge is not built: no context can exist.

use std::ffi::CStr;

use crate::{BackendKind, DeviceInfo, Error, Method, Result};

use super::{MetalStatus, Outcome, PoolStats};

/// Uninhabited: without the bridge there is no Metal context, so every method that
/// needs one is statically unreachable (no panics, no `unreachable!`).
#[derive(Debug)]
pub(super) enum Context {}

fn reason() -> String {
    format!(
        "this build has no Metal bridge: it targets {} (Metal needs a macOS target)",
        std::env::consts::OS
    )
}

pub(super) fn probe() -> MetalStatus {
    MetalStatus {
        compiled: false,
        device: false,
        reason: Some(reason()),
    }
}

impl Context {
    pub(super) fn open() -> Result<Self> {
        Err(Error::Unavailable {
            backend: BackendKind::Metal,
            reason: reason(),
        })
    }

    pub(super) fn supports(&self, _method: Method) -> bool {
        match *self {}
    }

    pub(super) fn device_info(&self) -> DeviceInfo {
        match *self {}
    }

    pub(super) fn check_request(&self, _m: u32, _k: u32, _n: u32) -> Result<()> {
        match *self {}
    }

    pub(super) fn compile(&self, _source: &CStr) -> Result<()> {
        match *self {}
    }

    pub(super) fn set_pool_limit(&self, _bytes: u64) {
        match *self {}
    }

    pub(super) fn drain_pool(&self) -> u64 {
        match *self {}
    }

    pub(super) fn pool_stats(&self) -> PoolStats {
        match *self {}
    }

    #[cfg(feature = "fault-injection")]
    pub(super) fn inject_fault(&self, _code: crate::NativeCode) -> Result<()> {
        match *self {}
    }

    pub(super) fn matmul(
        &self,
        _a: &[f32],
        _b: &[f32],
        _c: &mut [f32],
        _dims: (u32, u32, u32),
        _method: Method,
    ) -> Result<Outcome> {
        match *self {}
    }
}
