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
mod deadline;
pub mod engine;
pub mod gpu;
pub mod input;
mod layout;
pub mod neuron;
mod plan;
mod pool;
pub mod rank;
mod recorders;
pub mod run;
mod state;
mod summary;
mod team;

/// An I/O error on `path` while doing `op`, as a [`SimError`].
pub(crate) fn io_err<'a>(
    path: &'a std::path::Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> SimError + 'a {
    move |e| SimError::Format(snn_formats::FormatError::io(path, op, e))
}

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// File problem.
    #[error(transparent)]
    Format(#[from] snn_formats::FormatError),
    /// Invalid request (times, options).
    #[error("{0}")]
    Invalid(String),
    /// A failure every process knows of (a rank could not start, rank 0
    /// could not prepare the run): each process ends cleanly, none waits
    /// for another (under MPI: no abort of the job needed).
    #[error("{0}")]
    Stopped(String),
    /// A bug.
    #[error("internal error (please report): {0}")]
    Internal(String),
    /// The GPU device failed (no device, driver error, out of memory).
    #[error(transparent)]
    Gpu(#[from] snn_kernels::device::DeviceError),
}
