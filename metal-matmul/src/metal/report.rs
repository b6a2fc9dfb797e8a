//! What the Metal backend reports beyond the common [`MatmulReport`]: zero-copy use per
//! call and the state of the buffer pool.

use crate::MatmulReport;

/// A [`MatmulReport`] with what only the Metal backend knows about one call.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MetalReport {
    /// The backend-independent report (method, total and GPU time).
    pub report: MatmulReport,
    /// A and B were wrapped without copying (`newBufferWithBytesNoCopy:`). That happens
    /// on unified memory when each slice's address and byte length are multiples of the
    /// page size (16 KiB on Apple silicon); otherwise they are copied into pooled buffers.
    pub zero_copy_inputs: bool,
    /// C was wrapped without copying: the GPU wrote the caller's slice directly.
    pub zero_copy_output: bool,
}

/// The state of a Metal backend's buffer pool (see [`MetalBackend::pool_stats`]).
///
/// [`MetalBackend::pool_stats`]: crate::MetalBackend::pool_stats
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PoolStats {
    /// Bytes held by idle cached buffers.
    pub cached_bytes: u64,
    /// Number of idle cached buffers.
    pub cached_buffers: u64,
    /// The most bytes the pool keeps.
    pub limit_bytes: u64,
    /// Buffer requests served from the pool.
    pub hits: u64,
    /// Buffer requests that allocated a new buffer.
    pub misses: u64,
    /// Operands wrapped without copying (never pooled).
    pub zero_copy_wraps: u64,
}
