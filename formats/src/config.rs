//! The model config: a TOML file describing populations, projections,
//! external input, recording and placement, with NEST's parameter names.
//!
//! Loading goes in three steps, each with errors that name the file and field:
//! 1. parse the TOML into a tree and apply `--set key=value` overrides
//!    ([`apply_override`]); array elements are addressed by index or, for
//!    tables with a `name` field, by that name (`populations.L23E.size`);
//! 2. deserialise the tree into [`Config`] (unknown keys are errors) and
//!    expand a `[mam]` table into populations and projections from the
//!    model's data files ([`crate::mam`]);
//! 3. validate and resolve it into a [`crate::model::Model`] (sizes after
//!    scaling, synapse counts, weights after in-degree compensation).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;

/// The whole model config, as written in the TOML file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Global settings: name, time step, network seed.
    pub network: NetworkSection,
    /// Scaling of population sizes and in-degrees.
    #[serde(default)]
    pub scale: ScaleSection,
    /// Distribution of neurons over ranks.
    #[serde(default)]
    pub placement: PlacementSection,
    /// Neuron parameters shared by all populations (a population's own
    /// `params` override them).
    #[serde(default)]
    pub neuron_defaults: NeuronParamsRaw,
    /// The populations, numbered globally in this order.
    #[serde(default)]
    pub populations: Vec<PopulationRaw>,
    /// Connections between populations.
    #[serde(default)]
    pub projections: Vec<ProjectionRaw>,
    /// Independent Poisson input to every neuron (rate x `K_ext`).
    #[serde(default)]
    pub poisson_background: Option<PoissonBackground>,
    /// What `snn-sim` records.
    #[serde(default)]
    pub recording: RecordingSection,
    /// The multi-area model of macaque visual cortex, read from its data
    /// files (see [`crate::mam`]). Expanded into `populations`,
    /// `projections`, `neuron_defaults` and `poisson_background` when the
    /// config is loaded, so a loaded config never holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mam: Option<MamSection>,
}

/// `[mam]`: the multi-area model (Schmidt et al. 2018) from its data files,
/// in the state chosen by the model's own two parameters.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MamSection {
    /// The model's specification (`mam_spec.json`), relative to the config
    /// file.
    pub spec: String,
    /// Full-scale rates, area -> population -> Hz (`fullscale_rates.json`),
    /// relative to the config file: the compensating DC of downscaled
    /// in-degrees uses them.
    pub rates: String,
    /// chi: factor on the mean and sd of every cortico-cortical weight (1.0
    /// ground state, 1.9 metastable state).
    #[serde(default = "default_chi")]
    pub cc_weights_factor: f64,
    /// chi_I: further factor on cortico-cortical weights onto inhibitory
    /// populations (1.0 ground state, 2.0 metastable state).
    #[serde(default = "default_chi_i")]
    pub cc_weights_I_factor: f64,
}

fn default_chi() -> f64 {
    1.9
}
fn default_chi_i() -> f64 {
    2.0
}

/// `[network]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// A short name of the model.
    pub name: String,
    /// Simulation time step (NEST's `resolution`), in ms.
    #[serde(default = "default_dt")]
    pub dt_ms: f64,
    /// Seed of the network's connectivity (simulation seeds are separate).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Fraction bits of the stored fixed-point weights (a weight is stored
    /// as a multiple of `2^-weight_frac_bits` pA). Default: the most that
    /// leave the largest weight one bit of headroom in an `i32`; given, at
    /// most that (e.g. to store the weights of an exported network exactly
    /// as its source did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_frac_bits: Option<u32>,
}

fn default_dt() -> f64 {
    0.1
}
pub(crate) fn default_seed() -> u64 {
    55
}
fn default_one() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

/// `[scale]`: downscaling as in Potjans & Diesmann (2014) and the HPC
/// benchmark.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScaleSection {
    /// Factor on population sizes (populations with `scalable = false` keep
    /// their size).
    #[serde(default = "default_one")]
    pub neurons: f64,
    /// Factor on in-degrees (`indegree`, `N`, `connection_probability`,
    /// `K_ext`).
    #[serde(default = "default_one")]
    pub indegree: f64,
    /// When `indegree < 1`: divide weights by sqrt(indegree) and add the DC
    /// input that keeps the mean input of the full-scale model (needs
    /// `mean_rate_Hz` on every source population).
    #[serde(default)]
    pub compensate_indegree: bool,
    /// How scaled population sizes and synapse numbers become whole
    /// numbers.
    #[serde(default, skip_serializing_if = "is_default")]
    pub rounding: Rounding,
    /// With `compensate_indegree`: whether the standard deviation of normal
    /// weights is divided by sqrt(indegree) like their mean (true, as in
    /// Potjans & Diesmann's example) or keeps its full-scale value (false,
    /// the multi-area model's rule).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub scale_weight_std: bool,
}

impl Default for ScaleSection {
    fn default() -> Self {
        ScaleSection {
            neurons: 1.0,
            indegree: 1.0,
            compensate_indegree: false,
            rounding: Rounding::Nearest,
            scale_weight_std: true,
        }
    }
}

/// `scale.rounding`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// To the nearest whole number, ties to even: `size * neurons` and
    /// `(N * neurons) * indegree`.
    #[default]
    Nearest,
    /// Truncated, as the multi-area model does: `int(size * neurons)` and
    /// `int(N * (indegree * neurons))`.
    Truncate,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_true(v: &bool) -> bool {
    *v
}

/// `[placement]`: which rank owns which neuron. Never changes the network or
/// the spikes, only where they are computed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PlacementSection {
    /// The scheme.
    #[serde(default)]
    pub scheme: PlacementScheme,
    /// For `scheme = "population"`: the rank of each population.
    #[serde(default)]
    pub population_ranks: BTreeMap<String, u32>,
    /// For `scheme = "area"`: how far (as a fraction of the mean load per
    /// rank) a rank boundary may move to fall between two areas instead of
    /// splitting one (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_balance_tolerance: Option<f64>,
}

/// How neurons are distributed over ranks.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlacementScheme {
    /// Global neuron id modulo the number of ranks.
    #[default]
    RoundRobin,
    /// Each population split into contiguous blocks, one per rank.
    Block,
    /// Whole populations on the rank given by `population_ranks` (modulo the
    /// number of ranks): one area per GPU in multi-area models.
    Population,
    /// Areas (the populations' `area`) kept on as few ranks as possible,
    /// ranks balanced by expected synapses: the areas, in order, are laid
    /// along a line of load (incoming synapses + 1 per neuron) that is cut
    /// into equal parts, cuts moved onto area boundaries when within
    /// `area_balance_tolerance`; an area on several ranks is split
    /// population by population in the same proportions.
    Area,
}

/// Neuron parameters with NEST's names and units; absent fields take the
/// model's NEST default.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct NeuronParamsRaw {
    /// Neuron model: a NEST name of the list of models (`iaf_psc_exp`,
    /// `iaf_psc_alpha`, `iaf_psc_delta`) or `spike_generator`.
    #[serde(default)]
    pub model: Option<String>,
    /// Membrane capacitance, pF.
    #[serde(default)]
    pub C_m: Option<f64>,
    /// Membrane time constant, ms.
    #[serde(default)]
    pub tau_m: Option<f64>,
    /// Excitatory synaptic time constant, ms.
    #[serde(default)]
    pub tau_syn_ex: Option<f64>,
    /// Inhibitory synaptic time constant, ms.
    #[serde(default)]
    pub tau_syn_in: Option<f64>,
    /// Absolute refractory period, ms.
    #[serde(default)]
    pub t_ref: Option<f64>,
    /// Resting potential, mV.
    #[serde(default)]
    pub E_L: Option<f64>,
    /// Spike threshold, mV.
    #[serde(default)]
    pub V_th: Option<f64>,
    /// Reset potential, mV.
    #[serde(default)]
    pub V_reset: Option<f64>,
    /// Constant input current, pA.
    #[serde(default)]
    pub I_e: Option<f64>,
    /// Spike times of a `spike_generator`, ms (every neuron of the
    /// population emits them).
    #[serde(default)]
    pub spike_times: Option<Vec<f64>>,
}

impl NeuronParamsRaw {
    /// The names of the fields that are set (NEST names; `model` too).
    pub fn set_params(&self) -> Vec<&'static str> {
        let fields = [
            ("model", self.model.is_some()),
            ("C_m", self.C_m.is_some()),
            ("tau_m", self.tau_m.is_some()),
            ("tau_syn_ex", self.tau_syn_ex.is_some()),
            ("tau_syn_in", self.tau_syn_in.is_some()),
            ("t_ref", self.t_ref.is_some()),
            ("E_L", self.E_L.is_some()),
            ("V_th", self.V_th.is_some()),
            ("V_reset", self.V_reset.is_some()),
            ("I_e", self.I_e.is_some()),
            ("spike_times", self.spike_times.is_some()),
        ];
        fields
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect()
    }
}

/// One `[[populations]]` entry.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PopulationRaw {
    /// Unique name.
    pub name: String,
    /// Number of neurons at scale 1 (>= 0; may have a fraction, as the
    /// multi-area model's densities do: the created number is rounded as
    /// `scale.rounding` says).
    #[serde(serialize_with = "whole_as_integer")]
    pub size: f64,
    /// The area (or any group) the population belongs to: placement
    /// `scheme = "area"` keeps an area together, analyses summarise by area.
    /// Default: the population is an area of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// Whether `scale.neurons` applies (false for stimulus devices).
    #[serde(default = "default_true")]
    pub scalable: bool,
    /// Neuron parameters (override `[neuron_defaults]`).
    #[serde(default)]
    pub params: NeuronParamsRaw,
    /// Initial membrane potential, mV (drawn per neuron at simulation start
    /// from the simulation seed). Default: `E_L`.
    #[serde(default)]
    pub V_m_init: Option<Distribution>,
    /// Number of Poisson background inputs at scale 1 (see
    /// `[poisson_background]`).
    #[serde(default)]
    pub K_ext: Option<f64>,
    /// Mean rate of this population in the full-scale model, Hz: used by the
    /// in-degree compensation.
    #[serde(default)]
    pub mean_rate_Hz: Option<f64>,
}

/// Serialise a float that is a whole number as an integer (sizes written by
/// hand stay `20683`, not `20683.0`, in manifests).
fn whole_as_integer<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// A number or a distribution of numbers (weights in pA, delays in ms,
/// potentials in mV).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Distribution {
    /// A constant.
    Constant(f64),
    /// A random distribution.
    Random(RandomDistribution),
}

/// How out-of-range draws are handled.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Bounds {
    /// Draw again until in `[min, max]` (NEST's `nest.math.redraw`).
    #[default]
    Redraw,
    /// Clamp to `[min, max]`.
    Clip,
}

/// A random distribution.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "distribution", rename_all = "snake_case", deny_unknown_fields)]
pub enum RandomDistribution {
    /// Normal with optional bounds.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation (>= 0).
        std: f64,
        /// Lower bound.
        #[serde(default)]
        min: Option<f64>,
        /// Upper bound.
        #[serde(default)]
        max: Option<f64>,
        /// What happens outside the bounds.
        #[serde(default)]
        bounds: Bounds,
    },
    /// Uniform on `[min, max)`.
    Uniform {
        /// Lower end.
        min: f64,
        /// Upper end.
        max: f64,
    },
}

/// Connection rules, with NEST's names.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleName {
    /// Each target draws `indegree` sources.
    FixedIndegree,
    /// Exactly `N` synapses, targets and sources drawn uniformly.
    FixedTotalNumber,
    /// Each pair connected with probability `p`.
    PairwiseBernoulli,
    /// Source i to target i.
    OneToOne,
    /// Every source to every target.
    AllToAll,
    /// The synapses listed in a SONATA edge population (`edges`): sources,
    /// targets, and per-edge `syn_weight` and `delay` unless `weight` and
    /// `delay` are given.
    SonataEdges,
}

/// One `[[projections]]` entry.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectionRaw {
    /// Optional name (default `source->target`).
    #[serde(default)]
    pub name: Option<String>,
    /// Source population.
    pub source: String,
    /// Target population.
    pub target: String,
    /// Connection rule.
    pub rule: RuleName,
    /// In-degree at scale 1 (`fixed_indegree`).
    #[serde(default)]
    pub indegree: Option<f64>,
    /// Total number at scale 1 (`fixed_total_number`).
    #[serde(default)]
    pub N: Option<f64>,
    /// `fixed_total_number` only: derive `N` from this connection probability
    /// with Potjans & Diesmann's formula `ln(1-p) / ln(1 - 1/(N_pre N_post))`
    /// at full population sizes, then scale.
    #[serde(default)]
    pub connection_probability: Option<f64>,
    /// Connection probability (`pairwise_bernoulli`), not scaled.
    #[serde(default)]
    pub p: Option<f64>,
    /// Allow a neuron to connect to itself.
    #[serde(default = "default_true")]
    pub allow_autapses: bool,
    /// Allow several synapses between the same pair.
    #[serde(default = "default_true")]
    pub allow_multapses: bool,
    /// Weight, pA (sign selects the excitatory or inhibitory receptor).
    /// Required, except by rule `sonata_edges`, where it replaces the
    /// file's per-edge `syn_weight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Distribution>,
    /// Delay, ms (rounded to steps, at least one step). Required, except by
    /// rule `sonata_edges`, where it replaces the file's per-edge `delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Distribution>,
    /// Rule `sonata_edges`: the edge population to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<EdgesRaw>,
}

/// `edges` of a `sonata_edges` projection: which edges of which SONATA
/// edge file, and what loading the config found in them (filled in by
/// [`load_config`] when absent, checked again by every build that reads
/// the file, so a network's config and model hash name its edges).
#[allow(non_snake_case)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgesRaw {
    /// The edges file (`edges.h5`), relative to the config file or absolute.
    pub file: String,
    /// The edge population (`/edges/<population>`).
    pub population: String,
    /// Only the edges of this `edge_type_id` (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_type_id: Option<i64>,
    /// The weight (pA) of the edges that have no `syn_weight` of their own
    /// (an edge type's `syn_weight`); unused when the projection gives a
    /// `weight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_weight: Option<f64>,
    /// Synapses per edge of the edges that have no `nsyns` of their own (an
    /// edge type's; default 1): an edge's weight is `nsyns * syn_weight`,
    /// as in BMTK's point networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsyns: Option<f64>,
    /// Number of edges selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub N: Option<u64>,
    /// xxh3-64 of the selected edges (source id, target id, weight and
    /// delay bits, in file order), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Smallest and largest weight read, pA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_range: Option<[f64; 2]>,
    /// Smallest and largest delay read, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_range: Option<[f64; 2]>,
    /// Largest source and target node id (population-local).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_node_ids: Option<[u64; 2]>,
}

impl EdgesRaw {
    /// Whether loading the config has filled in what the edges hold.
    pub fn scanned(&self) -> bool {
        self.N.is_some()
            && self.checksum.is_some()
            && (self.N == Some(0) || self.max_node_ids.is_some())
    }
}

/// `[poisson_background]`: every neuron of a population with `K_ext` gets an
/// independent Poisson train of rate `rate_Hz * K_ext`.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoissonBackground {
    /// Rate per input, Hz.
    pub rate_Hz: f64,
    /// Weight at scale 1, pA.
    pub weight: f64,
    /// Delay, ms.
    pub delay: f64,
    /// `false`: no Poisson trains; each neuron gets the mean current of the
    /// full-scale drive instead, added to `I_e` (`rate_Hz * K_ext * weight
    /// * tau_syn_ex * 0.001` pA with the full-scale `K_ext` and `weight`,
    /// times e for the alpha currents of `iaf_psc_alpha`), and the in-degree
    /// compensation leaves this input out: NEST's microcircuit example with
    /// `poisson_input = False`.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub poisson_input: bool,
}

/// `[recording]`.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RecordingSection {
    /// Populations whose spikes are recorded (default: all).
    #[serde(default)]
    pub spikes: Option<Vec<String>>,
    /// Membrane potential recordings.
    #[serde(default)]
    pub V_m: Vec<VmRecording>,
}

/// Record V_m of some neurons of a population at every step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmRecording {
    /// Population name.
    pub population: String,
    /// Indices within the population.
    pub neurons: Vec<u64>,
}

/// Parse TOML text, apply overrides and deserialise. `origin` names the file
/// in error messages; a `[mam]` table is expanded with its data files named
/// relative to `origin`'s directory.
pub fn parse_config(text: &str, origin: &str, overrides: &[String]) -> Result<Config, ConfigError> {
    let mut tree: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: origin.to_string(),
        message: one_line(e.message()),
        // 1 + the newlines before the error (byte-wise: never panics).
        line: e.span().map(|s| {
            1 + text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        }),
    })?;
    for ov in overrides {
        apply_override(&mut tree, ov).map_err(|message| ConfigError::Override {
            file: origin.to_string(),
            setting: ov.clone(),
            message,
        })?;
    }
    let mut cfg = config_from_tree(tree, origin)?;
    // Data files are named relative to the config file.
    let base = Path::new(origin).parent().unwrap_or(Path::new(""));
    if cfg.mam.is_some() {
        crate::mam::expand(&mut cfg, base, origin)?;
    }
    read_sonata_edges(&mut cfg, base, origin)?;
    Ok(cfg)
}

/// Fill in what the edges of each `sonata_edges` projection hold (number,
/// checksum, ranges, largest ids; see [`EdgesRaw`]) where the config does
/// not give it, reading each edge population once, with its file named by
/// an absolute path.
pub fn read_sonata_edges(cfg: &mut Config, base: &Path, origin: &str) -> Result<(), ConfigError> {
    for (i, pr) in cfg.projections.iter_mut().enumerate() {
        let Some(e) = pr.edges.as_mut() else {
            continue;
        };
        if pr.rule != RuleName::SonataEdges {
            continue;
        }
        let field = format!("projections[{i}].edges");
        let file = base.join(&e.file);
        let file = std::fs::canonicalize(&file).map_err(|err| ConfigError::Field {
            file: origin.to_string(),
            field: format!("{field}.file"),
            message: format!("{}: {err}", file.display()),
        })?;
        if e.scanned() {
            e.file = file.display().to_string();
            continue;
        }
        let sel = crate::sonata_edges::EdgeSelection {
            file: file.clone(),
            population: e.population.clone(),
            edge_type_id: e.edge_type_id,
            source_population: pr.source.clone(),
            target_population: pr.target.clone(),
            weight_per_edge: pr.weight.is_none(),
            delay_per_edge: pr.delay.is_none(),
            syn_weight: e.syn_weight,
            nsyns: e.nsyns,
        };
        let facts = crate::sonata_edges::scan(&sel).map_err(|err| ConfigError::Field {
            file: origin.to_string(),
            field: field.clone(),
            message: err.to_string(),
        })?;
        e.file = file.display().to_string();
        e.N = Some(facts.n);
        e.checksum = Some(format!("{:016x}", facts.checksum));
        e.weight_range = facts.weight_range;
        e.delay_range = facts.delay_range;
        e.max_node_ids = facts.max_node_ids;
    }
    Ok(())
}

/// Deserialise an already-parsed tree (e.g. a manifest's config copy).
pub fn config_from_tree(tree: toml::Value, origin: &str) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::Field {
            file: origin.to_string(),
            field: if path == "." {
                "(top level)".into()
            } else {
                path
            },
            message: one_line(e.into_inner().message()),
        }
    })
}

/// A parser message on one line (the TOML parser's may span several).
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join("; ")
}

/// Read and parse a config file.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    if path.extension().is_some_and(|e| e == "json") {
        // A SONATA circuit config.
        let cfg = crate::sonata_import::circuit_config(path)?;
        let mut tree = toml::Value::try_from(&cfg).map_err(|e| ConfigError::Field {
            file: origin.clone(),
            field: "(top level)".into(),
            message: e.to_string(),
        })?;
        for ov in overrides {
            apply_override(&mut tree, ov).map_err(|message| ConfigError::Override {
                file: origin.clone(),
                setting: ov.clone(),
                message,
            })?;
        }
        let mut cfg = config_from_tree(tree, &origin)?;
        read_sonata_edges(&mut cfg, Path::new(""), &origin)?;
        return Ok(cfg);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        file: origin.clone(),
        message: e.to_string(),
    })?;
    parse_config(&text, &origin, overrides)
}

/// The data files a config file reads besides itself (the `[mam]` table's
/// `spec` and `rates` and the edge files of `sonata_edges` projections,
/// relative to the config's directory; a SONATA circuit's files), with the
/// overrides applied; empty when it has none or does not parse (loading it
/// reports that). A build may not write over any of them.
pub fn data_files(path: &Path, overrides: &[String]) -> Vec<PathBuf> {
    if path.extension().is_some_and(|e| e == "json") {
        return crate::sonata_import::circuit_files(path);
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(mut tree) = toml::from_str::<toml::Value>(&text) else {
        return Vec::new();
    };
    for o in overrides {
        let _ = apply_override(&mut tree, o);
    }
    let base = path.parent().unwrap_or(Path::new(""));
    let edges = tree
        .get("projections")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("edges")?.get("file")?.as_str());
    ["spec", "rates"]
        .iter()
        .filter_map(|k| tree.get("mam")?.get(k)?.as_str())
        .chain(edges)
        .map(|f| base.join(f))
        .collect()
}

/// Apply one `key.path=value` override to a TOML tree. The value is parsed as
/// a TOML value (`0.1`, `true`, `"text"`, `[1, 2]`, `{ distribution = ... }`);
/// anything that does not parse is taken as a bare string.
pub fn apply_override(tree: &mut toml::Value, setting: &str) -> Result<(), String> {
    let (key, raw) = setting
        .split_once('=')
        .ok_or_else(|| "expected key=value".to_string())?;
    let key = key.trim();
    if key.is_empty() {
        return Err("empty key".into());
    }
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = tree;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        node = match node {
            toml::Value::Table(t) => {
                if last {
                    t.insert((*part).to_string(), value);
                    return Ok(());
                }
                t.entry((*part).to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let idx = match part.parse::<usize>() {
                    Ok(i) if i < a.len() => i,
                    Ok(i) => return Err(format!("index {i} out of range (array has {})", a.len())),
                    Err(_) => a
                        .iter()
                        .position(|el| el.get("name").and_then(|n| n.as_str()) == Some(part))
                        .ok_or_else(|| {
                            format!("no element named '{part}' in '{}'", parts[..i].join("."))
                        })?,
                };
                if last {
                    a[idx] = value;
                    return Ok(());
                }
                &mut a[idx]
            }
            _ => {
                return Err(format!(
                    "'{}' is not a table or array",
                    parts[..i].join(".")
                ))
            }
        };
    }
    Ok(())
}
