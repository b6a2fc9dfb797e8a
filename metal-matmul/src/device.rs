//! What a backend reports about the device it runs on.

/// Facts about a backend's device, as the implementation plan lists them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeviceInfo {
    /// `"Apple Metal GPU"` or `"CPU"`.
    pub device_type: String,
    /// The device's name: the GPU's (e.g. `"Apple M2"`) or the CPU's model.
    pub name: String,
    /// The GPU family (e.g. `"Apple8"`), or the CPU's architecture and widest vector
    /// extension (e.g. `"x86_64 avx512f"`).
    pub compute_capability: String,
    /// Usable memory in bytes: Metal's recommended working set, or the machine's RAM.
    pub memory_total: u64,
    /// Of that, the bytes not allocated now.
    pub memory_free: u64,
    /// Largest threadgroup on the GPU; worker threads on the CPU.
    pub max_threads_per_group: u32,
    /// CPU and GPU share memory (always true for the CPU backend itself).
    pub unified_memory: bool,
    /// GPU-only details; `None` for the CPU.
    pub gpu: Option<GpuDetails>,
}

/// Details only a Metal device has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GpuDetails {
    /// The highest GPU family of each kind the device supports, space-separated, e.g.
    /// `"Apple8 Mac2 Metal3"` (probed up to Apple9, Mac2 and Metal3).
    pub families: String,
    /// Maximum threadgroup memory in bytes.
    pub max_threadgroup_memory: u64,
    /// The largest single buffer the device can allocate, in bytes.
    pub max_buffer_length: u64,
    /// Bytes the device had allocated when the info was read.
    pub current_allocated: u64,
    /// A low-power (integrated) GPU.
    pub low_power: bool,
    /// A removable (external) GPU.
    pub removable: bool,
    /// Metal Performance Shaders supports the device.
    pub supports_mps: bool,
    /// The device has simdgroup matrix operations (Apple7+ or Mac2).
    pub supports_simdgroup_matrix: bool,
    /// The device supports the Metal 3 family.
    pub supports_metal3: bool,
}

impl DeviceInfo {
    /// The device type reported by the Metal backend.
    pub const METAL_DEVICE_TYPE: &'static str = "Apple Metal GPU";
    /// The device type reported by the CPU backend.
    pub const CPU_DEVICE_TYPE: &'static str = "CPU";
}
