//! Device-side algorithms of snn.
//!
//! Everything in this crate that produces a number the network or the spike
//! trains depend on exists twice: here, in Rust (the reference used by the CPU
//! backend and the CPU builder), and in `kernels/cuda/*.cuh` (CUDA C). Both are
//! written with the same IEEE operations in the same order (`+ - * /` and
//! `sqrt`, which are correctly rounded on both sides; never `exp`/`log` from a
//! math library, never fused multiply-add), so the results are bit-identical.
//!
//! * [`rng`]: Philox4x32-10, a counter-based generator: every random number is
//!   a pure function of (seed, stream key, counter), so no generator state
//!   needs to be stored, split or communicated.
//! * [`detmath`]: deterministic `ln`/`exp` and the random variates built on
//!   them (normal, binomial, Poisson, geometric).
//! * [`ziggurat`]: the fast normal sampler (one 32-bit word per variate in
//!   ~99% of cases) with its host-computed tables.
//! * [`device`]: the CUDA kernels (`kernels/cuda/*.cu`) by typed id, the
//!   structs they take, and (feature `cuda`) their compilation by NVRTC.
//! * [`gpu`]: the device interface the GPU builder and engine drive
//!   (buffers, copies, launches), with (feature `cuda`) its CUDA
//!   implementation `cuda::CudaDevice`.

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod detmath;
pub mod device;
pub mod gpu;
pub mod rng;
pub mod ziggurat;

pub use rng::{CounterRng, Purpose};
