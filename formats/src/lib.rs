//! snn's file formats and the model description they carry.
//!
//! * [`config`]: the model config (TOML) with `--set` overrides;
//! * [`mam`]: the multi-area model's data files expanded into a config;
//! * [`model`]: the validated, scaled model;
//! * [`placement`]: which rank owns which neuron;
//! * [`shard`]: the per-rank network shard (rkyv, memory-mapped, checksummed);
//! * [`direct`]: writing large files past the page cache;
//! * [`manifest`]: `manifest.json` and opening a network directory;
//! * [`output`]: staging directories renamed into place;
//! * [`checkpoint`]: checkpoints of a run and the run-state file;
//! * [`sonata`], [`sonata_edges`], [`circuit`]: SONATA spike files and
//!   reports, edge populations read as synapses, circuits written and read.

pub mod checkpoint;
pub mod circuit;
pub mod config;
pub mod direct;
pub mod error;
pub mod limits;
pub mod mam;
pub mod manifest;
pub mod model;
pub mod output;
pub mod placement;
pub mod shard;
pub mod sonata;
pub mod sonata_edges;
pub mod sonata_import;

pub use config::{load_config, parse_config, Config};
pub use error::{ConfigError, FormatError};
pub use manifest::{Manifest, NetworkDir};
pub use model::Model;
pub use placement::Placement;
pub use shard::{Check, Shard, ShardData};
