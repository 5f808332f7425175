//! `snn-analyze`: offline analysis of spike output.
//!
//! * [`run`]: reading a run directory (`summary.json`, per-rank SONATA spike
//!   files, merged);
//! * [`stats`]: rates, CV of ISI, Fano factor, spike-count correlations,
//!   earth mover's distance (definitions in the module docs);
//! * [`sampling`]: deterministic neuron and pair sampling;
//! * [`report`]: `stats.json`, `stats.csv` and plots of one run;
//! * [`areas`]: per-area summaries, rate matrix and rasters of runs with
//!   areas (the multi-area model);
//! * [`compare`]: comparison of two runs;
//! * [`plots`]: PNG plots;
//! * [`limits`]: the bounds checked before anything is allocated;
//! * [`cli`]: the command line (the binary only parses and calls it).

pub mod areas;
pub mod cli;
pub mod compare;
pub mod error;
pub mod limits;
pub mod plots;
pub mod report;
pub mod run;
pub mod sampling;
pub mod spectrum;
pub mod stats;

pub use compare::{compare_runs, CompareOptions, Comparison};
pub use error::AnalyzeError;
pub use report::{analyze_run, AnalysisReport, AnalyzeOptions};
pub use run::{load_run, Run, RunSummary, SpikeTrains};
pub use stats::{PopulationStats, PopulationSummary, StatsOptions, Window};
