//! The CUDA implementation of [`crate::gpu::Device`] (feature `cuda`).
//! (Being written: opening a device returns an error until then.)

use crate::gpu::GpuError;

/// A CUDA GPU driven through cudarc.
pub struct CudaDevice {
    _private: (),
}

impl CudaDevice {
    /// Opens GPU `rank % (visible devices)`.
    pub fn open(rank: u32) -> Result<CudaDevice, GpuError> {
        Err(GpuError::NoDevice(format!(
            "rank {rank}: not implemented yet"
        )))
    }
}
