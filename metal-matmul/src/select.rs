//! Opening a backend by choice: `auto`, `cpu`, `metal`, `cuda` or `gpu`.

use crate::{
    Backend, BackendChoice, CpuBackend, CudaBackend, CudaPolicy, CudaStaging, DEFAULT_MAX_DIM,
    Error, MetalBackend, MethodPolicy, Result,
};

/// The environment variable that overrides [`BackendChoice::Auto`].
pub const BACKEND_ENV: &str = "FXN_BACKEND";

/// A backend opened by [`select`], with why it was chosen.
#[derive(Debug)]
pub struct Selected {
    /// The backend.
    pub backend: Box<dyn Backend>,
    /// Why `auto` (or `gpu`) did not give the first GPU it tried, when it did not:
    /// each skipped backend's reason, `; `-separated.
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
    /// The CUDA backend's automatic method policy; `None` for the default.
    pub cuda_policy: Option<CudaPolicy>,
    /// The CUDA backend's staging rules; `None` for the default.
    pub cuda_staging: Option<CudaStaging>,
}

/// Opens a backend with default options: see [`select_with`].
pub fn select(choice: BackendChoice) -> Result<Selected> {
    select_with(choice, &SelectOptions::default())
}

/// Opens a backend. `auto` tries Metal, then CUDA, then the CPU, logging at `info` why
/// each GPU was skipped; `gpu` tries Metal then CUDA and fails when neither opens;
/// `metal` or `cuda` with no device is [`Error::Unavailable`], never a silent fallback.
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
    let cuda = || -> Result<Box<dyn Backend>> {
        let backend = CudaBackend::new()?
            .with_max_dim(max_dim)
            .with_policy(options.cuda_policy.unwrap_or_default())
            .with_staging(options.cuda_staging.unwrap_or_default());
        Ok(Box::new(backend))
    };
    let direct = |backend: Box<dyn Backend>| Selected {
        backend,
        fallback_reason: None,
    };
    // The GPUs in the order the Go node tries them.
    let gpus = || -> std::result::Result<Selected, Vec<String>> {
        let mut reasons = Vec::new();
        for open in [&metal as &dyn Fn() -> Result<Box<dyn Backend>>, &cuda] {
            match open() {
                Ok(backend) => {
                    return Ok(Selected {
                        backend,
                        fallback_reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
                    });
                }
                Err(err) => {
                    log::info!("backend selection: skipping a GPU because {err}");
                    reasons.push(err.to_string());
                }
            }
        }
        Err(reasons)
    };
    match effective_choice(choice)? {
        BackendChoice::Cpu => Ok(direct(cpu()?)),
        BackendChoice::Metal => Ok(direct(metal()?)),
        BackendChoice::Cuda => Ok(direct(cuda()?)),
        BackendChoice::Gpu => gpus().map_err(|reasons| Error::Unavailable {
            backend: crate::BackendKind::Cuda,
            reason: format!("no GPU backend opened: {}", reasons.join("; ")),
        }),
        BackendChoice::Auto => match gpus() {
            Ok(selected) => Ok(selected),
            Err(reasons) => {
                let reason = reasons.join("; ");
                log::info!("auto backend: using the CPU because {reason}");
                Ok(Selected {
                    backend: cpu()?,
                    fallback_reason: Some(reason),
                })
            }
        },
    }
}
