//! `snn-build`'s library: deterministic, sharded network construction.
//!
//! [`build_network`] resolves a config, builds every rank's shard (see
//! [`rank`] for the two-pass algorithm and [`connect`] for the rules and
//! their random streams) and writes a network directory atomically; with
//! [`BuildDevice::Gpu`] each rank is built on a device instead (see [`gpu`]),
//! with byte-identical shards.

pub mod connect;
pub mod gpu;
pub mod memory;
#[cfg(feature = "mpi")]
pub mod mpi_build;
pub mod network;
pub mod rank;
pub mod verify;

pub use gpu::DeviceFactory;
pub use network::{build_network, BuildDevice, BuildOptions, BuildSummary};

/// Errors of the builder.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Config problem.
    #[error(transparent)]
    Config(#[from] snn_formats::ConfigError),
    /// File problem.
    #[error(transparent)]
    Format(#[from] snn_formats::FormatError),
    /// Placement problem.
    #[error(transparent)]
    Placement(#[from] snn_formats::placement::PlacementError),
    /// A request that cannot be carried out (an option out of range).
    #[error("{0}")]
    Invalid(String),
    /// The network does not fit the shard layout.
    #[error("network too large: {0}")]
    TooLarge(String),
    /// A bug.
    #[error("internal error (please report): {0}")]
    Internal(String),
    /// The device of the GPU builder failed.
    #[error("GPU builder: {0}")]
    Gpu(#[from] snn_kernels::device::DeviceError),
    /// A rank of a distributed build failed.
    #[error("{0}")]
    Distributed(String),
}
