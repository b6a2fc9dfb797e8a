//! Opening a backend by choice: `auto`, `cpu` or `metal`.

use crate::{
    Backend, BackendChoice, CpuBackend, DEFAULT_MAX_DIM, Error, MetalBackend, MethodPolicy, Result,
};

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

/// How [`select_with`] sets up the backend it opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectOptions {
    /// CPU worker threads; `None` for the default ([`CpuBackend::new`]).
    pub threads: Option<usize>,
    /// The largest dimension accepted; `None` for [`DEFAULT_MAX_DIM`].
    pub max_dim: Option<usize>,
    /// The Metal backend's automatic method policy; `None` for the default.
    pub policy: Option<MethodPolicy>,
}

/// Opens a backend with default options: see [`select_with`].
pub fn select(choice: BackendChoice) -> Result<Selected> {
    select_with(choice, &SelectOptions::default())
}

/// Opens a backend. `auto` opens Metal when a device answers and the CPU otherwise,
/// logging the reason at `info`; `metal` with no device is [`Error::Unavailable`], never
/// a silent fallback.
pub fn select_with(choice: BackendChoice, options: &SelectOptions) -> Result<Selected> {
    let max_dim = options.max_dim.unwrap_or(DEFAULT_MAX_DIM);
    let cpu = || -> Result<Box<dyn Backend>> {
        let backend = match options.threads {
            Some(threads) => CpuBackend::with_threads(threads)?,
            None => CpuBackend::new()?,
        };
        Ok(Box::new(backend.with_max_dim(max_dim)))
    };
    let metal = || -> Result<Box<dyn Backend>> {
        let backend = MetalBackend::new()?
            .with_max_dim(max_dim)
            .with_policy(options.policy.unwrap_or_default());
        Ok(Box::new(backend))
    };
    match effective_choice(choice)? {
        BackendChoice::Cpu => Ok(Selected {
            backend: cpu()?,
            fallback_reason: None,
        }),
        BackendChoice::Metal => Ok(Selected {
            backend: metal()?,
            fallback_reason: None,
        }),
        BackendChoice::Auto => match metal() {
            Ok(backend) => Ok(Selected {
                backend,
                fallback_reason: None,
            }),
            Err(err) => {
                log::info!("auto backend: using the CPU because {err}");
                Ok(Selected {
                    backend: cpu()?,
                    fallback_reason: Some(err.to_string()),
                })
            }
        },
    }
}
