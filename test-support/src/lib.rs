//! What snn's tests share, in one dev-only crate (never a dependency of the
//! libraries or the binaries):
//!
//! * [`host`]: a CPU stand-in for a CUDA device, the kernels of
//!   `kernels/cuda/*.cu` compiled as host C++, for the tests of the GPU
//!   backends (no GPU needed);
//! * [`net`]: configs, builds through the library, the synapses of a built
//!   network and the spikes of a run;
//! * [`traces`]: the NEST reference traces of `tests/reference/data`;
//! * [`repo`]: the repository root.
//!
//! The helpers that run the binaries (`snn-build`, `snn-sim`,
//! `snn-analyze`) stay in the root package's `tests/support/`, because only
//! its tests know where Cargo put the binaries.

use std::path::PathBuf;

pub mod host;
pub mod net;
pub mod traces;

/// The repository root (the workspace's).
pub fn repo() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), |p| p.to_path_buf())
}
