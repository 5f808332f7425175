//! `snn-sim`'s library: the simulation engine.
//!
//! * [`neuron`]: neuron models (exact integration, NEST semantics);
//! * [`input`]: Poisson drive and spike generators;
//! * [`engine`]: one rank's network in memory and the step loop;
//! * [`run`]: a whole run: load, simulate, record, summarise;
//! * [`checkpoint`]: checkpoints, resume and wall-time limits of a run.

pub mod checkpoint;
pub mod cluster;
pub mod engine;
pub mod input;
pub mod neuron;
pub mod run;

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
}
