//! `net/manifest.json`: what the network is and where its shards are.
//!
//! The manifest carries its own checksum: `checksum` is the xxh3-64 (hex) of
//! the manifest serialised with `checksum` set to the empty string. Loading
//! recomputes it, so an edited or damaged manifest is detected.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::{config_from_tree, Config};
use crate::error::FormatError;
use crate::model::Model;
use crate::shard::{shard_file_name, Check, Shard};

/// Name of the manifest file in a network directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// What a partial build (`snn-build --only-ranks`) writes instead of a
/// manifest: such a directory holds some ranks' shards and is no network.
pub const PARTIAL_FILE: &str = "partial-build.json";
/// Value of the `format` field.
pub const MANIFEST_FORMAT: &str = "snn-network";
/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 1;

/// Per-shard entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardEntry {
    /// File name inside the network directory.
    pub file: String,
    /// Rank.
    pub rank: u32,
    /// Bytes on disk.
    pub bytes: u64,
    /// xxh3-64 (hex) of the shard's 256-byte header, which holds the
    /// payload's checksum: together they pin every byte of the file.
    pub xxh3: String,
    /// Synapses stored.
    pub synapses: u64,
    /// Own neurons.
    pub neurons: u64,
    /// Images of remote neurons.
    pub images: u64,
}

/// Per-population entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PopulationEntry {
    /// Name.
    pub name: String,
    /// Neurons.
    pub size: u64,
    /// Global id of the first neuron.
    pub first_id: u64,
    /// Neuron model.
    pub model: String,
}

/// Per-projection entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProjectionEntry {
    /// Name.
    pub name: String,
    /// Source population.
    pub source: String,
    /// Target population.
    pub target: String,
    /// Rule.
    pub rule: String,
    /// Synapses in the whole network.
    pub synapses: u64,
}

/// How the network was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// snn version.
    pub builder_version: String,
    /// Command line.
    pub command: Vec<String>,
    /// UTC time, seconds since the Unix epoch.
    pub created_unix_s: u64,
    /// Host name.
    pub host: String,
    /// Threads used.
    pub threads: usize,
    /// Build device (`cpu`).
    pub device: String,
    /// Wall time of the build, s.
    pub build_seconds: f64,
}

/// The manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Always [`MANIFEST_VERSION`].
    pub format_version: u32,
    /// Shard layout version.
    pub shard_format_version: u32,
    /// Model hash (hex of 16 bytes).
    pub model_hash: String,
    /// Model name.
    pub model_name: String,
    /// Network seed.
    pub seed: u64,
    /// Ranks.
    pub n_ranks: u32,
    /// Time step, ms.
    pub dt_ms: f64,
    /// Smallest delay in the network, steps.
    pub min_delay_steps: u32,
    /// Largest delay in the network, steps.
    pub max_delay_steps: u32,
    /// Neurons.
    pub n_neurons: u64,
    /// Synapses.
    pub total_synapses: u64,
    /// Fixed-point fraction bits of weights.
    pub weight_frac_bits: u32,
    /// Shards are zstd-compressed.
    pub compressed: bool,
    /// Populations.
    pub populations: Vec<PopulationEntry>,
    /// Projections.
    pub projections: Vec<ProjectionEntry>,
    /// Shards, by rank.
    pub shards: Vec<ShardEntry>,
    /// The config the network was built from, after `--set` overrides.
    pub config: Config,
    /// Provenance.
    pub provenance: Provenance,
    /// xxh3-64 (hex) of this manifest with `checksum` empty.
    pub checksum: String,
}

/// Hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The model hash: xxh3-128 of the canonical JSON of the config after
/// overrides, with the shard format version.
pub fn model_hash(cfg: &Config) -> [u8; 16] {
    let mut text = serde_json::to_string(cfg).unwrap_or_default();
    text.push_str(&format!(
        "|shard-format-{}",
        crate::shard::SHARD_FORMAT_VERSION
    ));
    xxhash_rust::xxh3::xxh3_128(text.as_bytes()).to_le_bytes()
}

impl Manifest {
    /// The checksum of the manifest: xxh3-64 of its compact JSON with an
    /// empty `checksum` (the field is emptied for it and put back, not
    /// copied with the rest: a manifest holds its whole config).
    fn compute_checksum(&mut self) -> String {
        let kept = std::mem::take(&mut self.checksum);
        let text = serde_json::to_string(&*self).unwrap_or_default();
        self.checksum = kept;
        format!("{:016x}", xxh3_64(text.as_bytes()))
    }

    /// Set `checksum` and serialise.
    pub fn to_json(&mut self) -> String {
        self.checksum = self.compute_checksum();
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parse and verify a manifest's text.
    pub fn from_json(path: &Path, text: &str) -> Result<Manifest, FormatError> {
        let mut m: Manifest = serde_json::from_str(text).map_err(|e| {
            FormatError::corrupt(path, format!("not a valid network manifest: {e}"))
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(FormatError::corrupt(
                path,
                format!("format is '{}', expected '{MANIFEST_FORMAT}'", m.format),
            ));
        }
        if m.format_version != MANIFEST_VERSION {
            return Err(FormatError::corrupt(
                path,
                format!(
                    "manifest version {}, this build reads {MANIFEST_VERSION}",
                    m.format_version
                ),
            ));
        }
        if m.compute_checksum() != m.checksum {
            return Err(FormatError::corrupt(
                path,
                "manifest checksum mismatch (edited or corrupt)",
            ));
        }
        if m.n_ranks == 0 {
            return Err(FormatError::corrupt(path, "n_ranks is 0"));
        }
        if m.shards.len() != m.n_ranks as usize
            || m.shards.iter().enumerate().any(|(i, s)| s.rank != i as u32)
        {
            return Err(FormatError::corrupt(
                path,
                "shard list does not match n_ranks",
            ));
        }
        Ok(m)
    }

    /// Check the manifest's own fields against the model of its embedded
    /// config (`model`, from [`Manifest::model`]; `path` names the manifest
    /// in errors): the model hash is that of the config (so an edited
    /// parameter, say `tau_m`, is caught), and the time step, seed, neuron
    /// count, weight scale, populations and projections are the config's.
    /// Cheap; `snn-sim` runs it on every load, `snn-build verify` too.
    pub fn check_against_model(&self, model: &Model, path: &Path) -> Result<(), FormatError> {
        let differs = |what: &str| {
            FormatError::corrupt(path, format!("{what} differs from the embedded config"))
        };
        if hex(&model_hash(&self.config)) != self.model_hash {
            return Err(differs("model_hash"));
        }
        if self.dt_ms != model.dt_ms {
            return Err(differs("dt_ms"));
        }
        if self.seed != model.seed {
            return Err(differs("seed"));
        }
        if self.n_neurons != model.n_neurons {
            return Err(differs("n_neurons"));
        }
        if self.weight_frac_bits != model.weight_frac_bits {
            return Err(differs("weight_frac_bits"));
        }
        if self.populations.len() != model.populations.len()
            || self
                .populations
                .iter()
                .zip(&model.populations)
                .any(|(e, p)| {
                    e.name != p.name
                        || e.size != p.size
                        || e.first_id != p.first_id
                        || e.model != p.params.model.name()
                })
        {
            return Err(differs("populations"));
        }
        let pop_name = |i: usize| model.populations[i].name.as_str();
        if self.projections.len() != model.projections.len()
            || self
                .projections
                .iter()
                .zip(&model.projections)
                .any(|(e, p)| {
                    e.name != p.name
                        || e.source != pop_name(p.source)
                        || e.target != pop_name(p.target)
                        || e.rule != p.rule.name()
                })
        {
            return Err(differs("projections"));
        }
        if self.min_delay_steps == 0 && self.total_synapses > 0
            || self.min_delay_steps > self.max_delay_steps
        {
            return Err(FormatError::corrupt(
                path,
                format!(
                    "delay range {}..={} steps invalid",
                    self.min_delay_steps, self.max_delay_steps
                ),
            ));
        }
        Ok(())
    }

    /// The resolved model of the embedded config.
    pub fn model(&self, path: &Path) -> Result<Model, FormatError> {
        let origin = format!("{} (embedded config)", path.display());
        // Round-trip through TOML so the same deserialiser checks it.
        let tree = toml::Value::try_from(&self.config)
            .map_err(|e| FormatError::corrupt(path, format!("embedded config: {e}")))?;
        let cfg = config_from_tree(tree, &origin)?;
        Ok(Model::resolve(&cfg, &origin)?)
    }
}

/// An opened network directory.
#[derive(Debug)]
pub struct NetworkDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl NetworkDir {
    /// Open a network directory: read and verify the manifest, check that
    /// every shard file exists with the recorded size.
    pub fn open(dir: &Path) -> Result<NetworkDir, FormatError> {
        let mpath = dir.join(MANIFEST_FILE);
        if !dir.is_dir() {
            return Err(FormatError::Mismatch {
                path: dir.to_path_buf(),
                message: "not a directory (expected a network directory made by snn-build)".into(),
            });
        }
        if !mpath.exists() && dir.join(PARTIAL_FILE).exists() {
            return Err(FormatError::Mismatch {
                path: dir.to_path_buf(),
                message: format!(
                    "a partial build (snn-build --only-ranks; see {PARTIAL_FILE}): it holds some ranks' shards only and cannot be opened as a network"
                ),
            });
        }
        if !mpath.exists() {
            return Err(FormatError::Mismatch {
                path: dir.to_path_buf(),
                message:
                    "not a network directory (no manifest.json; networks are made by snn-build)"
                        .into(),
            });
        }
        let text =
            std::fs::read_to_string(&mpath).map_err(|e| FormatError::io(&mpath, "read", e))?;
        let manifest = Manifest::from_json(&mpath, &text)?;
        for s in &manifest.shards {
            let p = dir.join(&s.file);
            if s.file != shard_file_name(s.rank) {
                return Err(FormatError::corrupt(
                    &mpath,
                    format!("unexpected shard file name '{}'", s.file),
                ));
            }
            let len = std::fs::metadata(&p)
                .map_err(|e| FormatError::io(&p, "stat", e))?
                .len();
            if len != s.bytes {
                return Err(FormatError::corrupt(
                    &p,
                    format!(
                        "{len} bytes but the manifest records {} (truncated or replaced)",
                        s.bytes
                    ),
                ));
            }
        }
        Ok(NetworkDir {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Path of rank `rank`'s shard.
    pub fn shard_path(&self, rank: u32) -> PathBuf {
        self.dir.join(shard_file_name(rank))
    }

    /// Open rank `rank`'s shard and check it belongs to this network.
    pub fn open_shard(&self, rank: u32, check: Check) -> Result<Shard, FormatError> {
        let path = self.shard_path(rank);
        if rank >= self.manifest.n_ranks {
            return Err(FormatError::Mismatch {
                path,
                message: format!(
                    "rank {rank} out of range: the network has {} ranks",
                    self.manifest.n_ranks
                ),
            });
        }
        let shard = Shard::open(&path, check)?;
        let h = shard.header();
        if check >= Check::Checksum
            && format!("{:016x}", h.header_xxh3) != self.manifest.shards[rank as usize].xxh3
        {
            return Err(FormatError::corrupt(
                &path,
                "shard header differs from the manifest's record (replaced or corrupt shard)",
            ));
        }
        if hex(&h.model_hash) != self.manifest.model_hash
            || h.rank != rank
            || h.n_ranks != self.manifest.n_ranks
        {
            return Err(FormatError::Mismatch {
                path,
                message: "shard belongs to a different network or rank than the manifest".into(),
            });
        }
        // What the simulator sizes its buffers by must agree with the
        // shard (an edited manifest with its checksum recomputed).
        let m = &self.manifest;
        let d = shard.data();
        let (lo, hi) = (d.min_delay_steps.to_native(), d.max_delay_steps.to_native());
        let has_synapses = !d.syn_target_delay.is_empty();
        if d.n_neurons.to_native() != m.n_neurons
            || d.weight_frac_bits.to_native() != m.weight_frac_bits
            || (has_synapses && (lo < m.min_delay_steps || hi > m.max_delay_steps))
        {
            return Err(FormatError::corrupt(
                self.dir.join(MANIFEST_FILE),
                format!(
                    "neuron count, weight scale or delay range differs from shard {} (edited manifest?)",
                    path.display()
                ),
            ));
        }
        Ok(shard)
    }
}
