//! `snn-sim`'s library: the simulation engine.
//!
//! * [`neuron`]: neuron models (exact integration, NEST semantics);
//! * [`input`]: Poisson drive and spike generators;
//! * [`engine`]: one rank's network in memory and the step loop (CPU);
//! * [`gpu`]: the GPU engine, the same loop resident on a device;
//! * [`rank`]: the interface of a rank's simulation, either backend;
//! * [`run`]: a whole run: load, simulate, record, summarise;
//! * [`checkpoint`]: checkpoints, resume and wall-time limits of a run.

pub mod checkpoint;
pub mod cluster;
pub mod engine;
pub mod gpu;
pub mod input;
mod layout;
pub mod neuron;
pub mod rank;
pub mod run;
mod state;
mod team;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// File problem.
    #[error(transparent)]
    Format(#[from] snn_formats::FormatError),
    /// Invalid request (times, options).
    #[error("{0}")]
    Invalid(String),
    /// A bug.
    #[error("internal error (please report): {0}")]
    Internal(String),
    /// The GPU device failed (no device, driver error, out of memory).
    #[error(transparent)]
    Gpu(#[from] snn_kernels::gpu::GpuError),
}
