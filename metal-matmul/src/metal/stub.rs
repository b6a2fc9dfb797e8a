//! The Metal backend where the bridge is not built: no context can exist.

use crate::{BackendKind, DeviceInfo, Error, Method, Result, Shape};

use super::MetalStatus;

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

    pub(super) fn supports_mps(&self) -> bool {
        match *self {}
    }

    pub(super) fn device_info(&self) -> DeviceInfo {
        match *self {}
    }

    pub(super) fn matmul(
        &self,
        _a: &[f32],
        _b: &[f32],
        _c: &mut [f32],
        _shape: Shape,
        _method: Method,
    ) -> Result<f64> {
        match *self {}
    }
}
