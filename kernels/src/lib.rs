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
//! * [`models`]: the neuron models, each one module with its Rust update
//!   (the CPU backend's) and its CUDA update side by side, registered in one
//!   list;
//! * [`registry`]: the CUDA kernels (`kernels/cuda/*.cu`) by typed id
//!   ([`registry::KernelId`]), their modules' sources and the structs they
//!   take;
//! * [`nvrtc`]: finding `libnvrtc` and (feature `cuda`) compiling a module
//!   for a device, with the PTX disk cache;
//! * [`device`]: the [`device::Device`] trait the GPU builder and engine
//!   drive (buffers, copies, launches), with (feature `cuda`) its CUDA
//!   implementation `cuda::CudaDevice`;
//! * [`launch`]: the simulation engine's kernels as typed launches (one
//!   struct per kernel signature, the arguments by name).

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod detmath;
pub mod device;
pub mod launch;
pub mod nvrtc;
#[macro_use]
pub mod registry;
pub mod models;
pub mod rng;
pub mod ziggurat;

pub use rng::{CounterRng, Purpose};
