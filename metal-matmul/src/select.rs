//! Opening a backend by choice: `auto`, `cpu` or `metal`.

use crate::{Backend, BackendChoice, CpuBackend, Error, MetalBackend, Result};

/// The environment variable that overrides [`BackendChoice::Auto`].
pub const BACKEND_ENV: &str = "FXN_BACKEND";

/// A backend opened by [`select`], with why it was chosen.
#[derive(Debug)]
pub struct Selected {
    /// The backend.
    pub backend: Box<dyn Backend>,
    /// Why `auto` did not give Metal, when it did not.
    pub fallback_reason: Option<String>,
}

/// The choice after applying [`BACKEND_ENV`]: it overrides `auto` only; an explicit
/// `cpu` or `metal` from the caller wins. An unparsable value is an error.
pub fn effective_choice(choice: BackendChoice) -> Result<BackendChoice> {
    if choice != BackendChoice::Auto {
        return Ok(choice);
    }
    match std::env::var(BACKEND_ENV) {
        Ok(value) if !value.trim().is_empty() => value
            .parse()
            .map_err(|e: Error| Error::invalid(format!("{BACKEND_ENV}: {e}"))),
        _ => Ok(BackendChoice::Auto),
    }
}

/// Opens a backend. `auto` opens Metal when a device answers and the CPU otherwise,
/// logging the reason at `info`; `metal` with no device is [`Error::Unavailable`], never
/// a silent fallback.
pub fn select(choice: BackendChoice) -> Result<Selected> {
    match effective_choice(choice)? {
        BackendChoice::Cpu => Ok(Selected {
            backend: Box::new(CpuBackend::new()?),
            fallback_reason: None,
        }),
        BackendChoice::Metal => Ok(Selected {
            backend: Box::new(MetalBackend::new()?),
            fallback_reason: None,
        }),
        BackendChoice::Auto => match MetalBackend::new() {
            Ok(metal) => Ok(Selected {
                backend: Box::new(metal),
                fallback_reason: None,
            }),
            Err(err) => {
                log::info!("auto backend: using the CPU because {err}");
                Ok(Selected {
                    backend: Box::new(CpuBackend::new()?),
                    fallback_reason: Some(err.to_string()),
                })
            }
        },
    }
}
