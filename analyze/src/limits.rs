//! What the analysis refuses before it allocates: every size or count that
//! comes from `summary.json`, a spike file or the command line is checked
//! here against fixed bounds and against the memory the machine has
//! available, so that a mistyped option or a damaged (or forged) input
//! ends with one clear error instead of an allocation failure.
//!
//! The memory estimates are per item and generous (they count the
//! temporary copies made while loading and the per-neuron values kept for
//! plots and comparisons).

/// Most bins the analysis window may be cut into (`(t_stop - t_start) /
/// --bin-ms`): 10^8 bins are 10^4 s at 0.1 ms, far beyond any run's
/// resolution needs; each costs [`BYTES_PER_BIN`] while a population is
/// analysed.
pub const MAX_BINS: u64 = 100_000_000;

/// Most neuron pairs `--pairs` may ask for per population.
pub const MAX_PAIRS: usize = 1_000_000;

/// Most (sampled pairs x bins) of one population: each pair's correlation
/// walks all bins, so this bounds the time spent (about 10^10 steps, tens
/// of seconds).
pub const MAX_PAIR_BINS: u64 = 20_000_000_000;

/// Most neurons `--raster-neurons` may ask for per population (a raster
/// has fewer pixel rows than this).
pub const MAX_RASTER_NEURONS: usize = 100_000;

/// Latest `t_stop_ms` (and `t_start_ms`) a run may have: 10^10 ms (about
/// 116 days of biological time) is beyond any simulation that can be run.
pub const MAX_RUN_MS: f64 = 1e10;

/// Most neurons a population may have (what `snn-build` allows).
pub const MAX_POPULATION_SIZE: u64 = u32::MAX as u64;

/// Largest `summary.json` read (one written by `snn-sim` is a few KiB, a
/// few hundred KiB for models with hundreds of populations).
pub const MAX_SUMMARY_BYTES: u64 = 64 << 20;

/// Memory per neuron of a loaded run: spike-train offsets and their
/// temporary copy, the per-neuron rates and their copy for plots.
pub const BYTES_PER_NEURON: u64 = 40;

/// Memory per spike while a run is loaded: the values read from the file,
/// the merged (id, time) list and the sorted trains.
pub const BYTES_PER_SPIKE: u64 = 48;

/// Memory per bin while a population is analysed: the population's counts
/// and two neurons' counts for a pair's correlation.
pub const BYTES_PER_BIN: u64 = 12;

pub use snn_formats::limits::{available_bytes, check_fits, human_bytes};

// The bounds fit one another: the most bins are allowed with the default
// 200 pairs, and their counts take little memory.
const _: () = assert!(200 * MAX_BINS <= MAX_PAIR_BINS);
const _: () = assert!(MAX_BINS * BYTES_PER_BIN <= 2 << 30);
