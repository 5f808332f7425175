//! The resolved model: a validated [`Config`] with scaling applied, in the
//! units the builder and the simulator use.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{
    Bounds, Config, Distribution, NeuronParamsRaw, PlacementScheme, PlacementSection,
    ProjectionRaw, RandomDistribution, Rounding, RuleName,
};
use crate::error::ConfigError;

/// Declares [`NeuronModel`] from the list of neuron models
/// (`kernels/src/models/list.rs`, which snn-kernels reads too, for the
/// models' arithmetic): the config's names of the models, the NEST
/// parameters each takes, and the charge a unit of weight carries.
macro_rules! neuron_models {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal in $module:ident,
            params [$($param:ident),* $(,)?],
            charge $charge:expr;
    )+) => {
        /// Neuron models: those of the list of models, and the
        /// `spike_generator` device.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum NeuronModel {
            $($(#[doc = $doc])* $variant,)+
            /// A device emitting given spike times (NEST `spike_generator`).
            SpikeGenerator,
        }

        impl NeuronModel {
            /// Every model, the neuron models in the list's order, then
            /// `spike_generator`.
            pub const ALL: &'static [NeuronModel] =
                &[$(NeuronModel::$variant,)+ NeuronModel::SpikeGenerator];

            /// NEST's name of the model.
            pub fn name(self) -> &'static str {
                match self {
                    $(NeuronModel::$variant => $name,)+
                    NeuronModel::SpikeGenerator => "spike_generator",
                }
            }

            /// The NEST parameters a config may set for the model
            /// (`spike_times` for `spike_generator`).
            pub fn params(self) -> &'static [&'static str] {
                match self {
                    $(NeuronModel::$variant => &[$(stringify!($param)),*],)+
                    NeuronModel::SpikeGenerator => &["spike_times"],
                }
            }

            /// The charge (pA ms) that a synapse of weight 1 (pA for current
            /// synapses, mV for `iaf_psc_delta`) brings into a neuron of
            /// this model with parameters `p`: the integral of its
            /// postsynaptic current (`tau_syn` for exponential currents, `e
            /// tau_syn` for alpha currents, `C_m` for a jump of the membrane
            /// potential). The compensating DC of downscaled in-degrees and
            /// the DC that replaces a Poisson drive use it; 0 for
            /// `spike_generator`.
            pub fn charge_per_weight(self, p: &NeuronParams, excitatory: bool) -> f64 {
                match self {
                    $(NeuronModel::$variant => {
                        let f: fn(&NeuronParams, bool) -> f64 = $charge;
                        f(p, excitatory)
                    })+
                    NeuronModel::SpikeGenerator => 0.0,
                }
            }
        }
    };
}

include!("../../kernels/src/models/list.rs");

impl NeuronModel {
    fn parse(name: &str) -> Option<Self> {
        NeuronModel::ALL.iter().copied().find(|m| m.name() == name)
    }
}

/// Resolved neuron parameters (NEST names and units).
#[allow(non_snake_case)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronParams {
    /// The model.
    pub model: NeuronModel,
    /// Membrane capacitance, pF.
    pub C_m: f64,
    /// Membrane time constant, ms.
    pub tau_m: f64,
    /// Excitatory synaptic time constant, ms.
    pub tau_syn_ex: f64,
    /// Inhibitory synaptic time constant, ms.
    pub tau_syn_in: f64,
    /// Refractory period, ms.
    pub t_ref: f64,
    /// Resting potential, mV.
    pub E_L: f64,
    /// Threshold, mV.
    pub V_th: f64,
    /// Reset potential, mV.
    pub V_reset: f64,
    /// Constant current including any in-degree compensation, pA.
    pub I_e: f64,
    /// Spike times of a `spike_generator`, ms.
    pub spike_times: Vec<f64>,
}

impl NeuronParams {
    /// The model's NEST parameters ([`NeuronModel::params`], in that order)
    /// with their resolved values, as the simulator uses them (`I_e` with
    /// any compensating DC); `spike_times` of a generator is not among them.
    pub fn values(&self) -> Vec<(&'static str, f64)> {
        self.model
            .params()
            .iter()
            .filter_map(|&name| {
                let v = match name {
                    "C_m" => self.C_m,
                    "tau_m" => self.tau_m,
                    "tau_syn_ex" => self.tau_syn_ex,
                    "tau_syn_in" => self.tau_syn_in,
                    "t_ref" => self.t_ref,
                    "E_L" => self.E_L,
                    "V_th" => self.V_th,
                    "V_reset" => self.V_reset,
                    "I_e" => self.I_e,
                    _ => return None,
                };
                Some((name, v))
            })
            .collect()
    }
}

/// A resolved distribution (bounds are +-inf when absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Dist {
    /// A constant.
    Constant(f64),
    /// Normal; `clip` clamps instead of redrawing.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Clamp instead of redraw.
        clip: bool,
    },
    /// Uniform on `[min, max)`.
    Uniform {
        /// Lower end.
        min: f64,
        /// Upper end.
        max: f64,
    },
}

impl Dist {
    /// The config's form of the distribution (resolving it gives it back).
    pub fn to_config(&self) -> Distribution {
        let bound = |x: f64| x.is_finite().then_some(x);
        match *self {
            Dist::Constant(v) => Distribution::Constant(v),
            Dist::Normal {
                mean,
                std,
                min,
                max,
                clip,
            } => Distribution::Random(RandomDistribution::Normal {
                mean,
                std,
                min: bound(min),
                max: bound(max),
                bounds: if clip { Bounds::Clip } else { Bounds::Redraw },
            }),
            Dist::Uniform { min, max } => {
                Distribution::Random(RandomDistribution::Uniform { min, max })
            }
        }
    }
}

/// A source of the variates a [`Dist`] is drawn from: standard normals and
/// uniforms on (0, 1). The builder (weights, delays) and the simulator
/// (initial potentials) each bring their own (ziggurat or polar normals from
/// counter-based streams).
pub trait Variates {
    /// A standard normal variate.
    fn normal(&mut self) -> f64;
    /// A uniform variate on (0, 1).
    fn open01(&mut self) -> f64;
}

impl Dist {
    /// A draw: a normal is redrawn until it lies in `[min, max]`, or clamped
    /// into it with `clip`; a uniform is `min + (max - min) * open01()`. The
    /// GPU builder draws the same way (`SnnDist` in `kernels/cuda/connect.cu`).
    #[inline]
    pub fn draw(&self, v: &mut impl Variates) -> f64 {
        match *self {
            Dist::Constant(x) => x,
            Dist::Normal {
                mean,
                std,
                min,
                max,
                clip,
            } => loop {
                let x = mean + std * v.normal();
                if clip {
                    return x.max(min).min(max);
                }
                if x >= min && x <= max {
                    return x;
                }
            },
            Dist::Uniform { min, max } => min + (max - min) * v.open01(),
        }
    }

    /// The mean parameter (of the unbounded distribution).
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Constant(v) => v,
            Dist::Normal { mean, .. } => mean,
            Dist::Uniform { min, max } => 0.5 * (min + max),
        }
    }
    /// A bound on the absolute value of draws (10 sd for unbounded normals;
    /// rarer draws saturate when quantised).
    pub fn abs_bound(&self) -> f64 {
        match *self {
            Dist::Constant(v) => v.abs(),
            Dist::Normal {
                mean,
                std,
                min,
                max,
                ..
            } => {
                let hi = if max.is_finite() {
                    max
                } else {
                    mean + 10.0 * std
                };
                let lo = if min.is_finite() {
                    min
                } else {
                    mean - 10.0 * std
                };
                hi.abs().max(lo.abs())
            }
            Dist::Uniform { min, max } => min.abs().max(max.abs()),
        }
    }
    /// The largest value draws reach in practice: the upper end of a
    /// constant or uniform, and of a normal its `max` or `mean + sds * std`,
    /// whichever is lower (a draw beyond 8 sd has a probability of 6e-16).
    pub fn upper_reach(&self, sds: f64) -> f64 {
        match *self {
            Dist::Constant(v) => v,
            Dist::Normal { mean, std, max, .. } => max.min(mean + sds * std),
            Dist::Uniform { max, .. } => max,
        }
    }
    /// The typical magnitude of draws, which the stored fixed point must
    /// resolve finely: `|v|` of a constant, `max(|mean|, std)` of a normal
    /// (no more than its bounds reach), the larger end of a uniform.
    pub fn typical_abs(&self) -> f64 {
        match *self {
            Dist::Constant(v) => v.abs(),
            Dist::Normal {
                mean,
                std,
                min,
                max,
                ..
            } => mean.abs().max(std).min(min.abs().max(max.abs())),
            Dist::Uniform { min, max } => min.abs().max(max.abs()),
        }
    }
    /// Multiply by a positive factor (bounds too; a normal's standard
    /// deviation only when `scale_std`).
    fn scaled(&self, f: f64, scale_std: bool) -> Dist {
        match *self {
            Dist::Constant(v) => Dist::Constant(v * f),
            Dist::Normal {
                mean,
                std,
                min,
                max,
                clip,
            } => Dist::Normal {
                mean: mean * f,
                std: if scale_std { std * f } else { std },
                min: min * f,
                max: max * f,
                clip,
            },
            Dist::Uniform { min, max } => Dist::Uniform {
                min: min * f,
                max: max * f,
            },
        }
    }
}

/// A population after scaling.
#[allow(non_snake_case)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Population {
    /// Name.
    pub name: String,
    /// Its area: an index into [`Model::areas`].
    pub area: usize,
    /// Number of neurons.
    pub size: u64,
    /// Global id of the first neuron.
    pub first_id: u64,
    /// Neuron parameters.
    pub params: NeuronParams,
    /// Initial membrane potential, mV.
    pub v_m_init: Dist,
    /// Poisson background inputs per neuron (scaled).
    pub k_ext: f64,
    /// Rate of the Poisson drive of each neuron, Hz (`rate_Hz * k_ext`).
    pub poisson_rate_hz: f64,
    /// The population's rate in the full-scale model, Hz, if the config
    /// gives it (`mean_rate_Hz`).
    pub mean_rate_hz: Option<f64>,
}

/// A resolved connection rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    /// Each target draws `k` sources.
    FixedIndegree {
        /// In-degree.
        k: u64,
    },
    /// Exactly `n` synapses in total.
    FixedTotalNumber {
        /// Total number.
        n: u64,
    },
    /// Each pair with probability `p`.
    PairwiseBernoulli {
        /// Probability.
        p: f64,
    },
    /// i to i.
    OneToOne,
    /// All pairs.
    AllToAll,
    /// The `n` synapses listed in a SONATA edge population
    /// ([`Projection::edges`]).
    SonataEdges {
        /// Number of synapses.
        n: u64,
    },
}

impl Rule {
    /// NEST's name of the rule.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::FixedIndegree { .. } => "fixed_indegree",
            Rule::FixedTotalNumber { .. } => "fixed_total_number",
            Rule::PairwiseBernoulli { .. } => "pairwise_bernoulli",
            Rule::OneToOne => "one_to_one",
            Rule::AllToAll => "all_to_all",
            Rule::SonataEdges { .. } => "sonata_edges",
        }
    }
}

impl Projection {
    /// Whether autapses must be left out (same population, not allowed).
    pub fn excludes_self(&self) -> bool {
        !self.allow_autapses && self.source == self.target
    }

    /// Expected in-degree of a target neuron (what load balancing uses).
    pub fn expected_indegree(&self, model: &Model) -> f64 {
        let n_src = model.populations[self.source].size;
        let n_tgt = model.populations[self.target].size;
        match self.rule {
            Rule::FixedIndegree { k } => k as f64,
            Rule::FixedTotalNumber { n } => n as f64 / n_tgt.max(1) as f64,
            Rule::PairwiseBernoulli { p } => p * n_src as f64,
            Rule::OneToOne => 1.0,
            Rule::AllToAll => n_src as f64,
            Rule::SonataEdges { n } => n as f64 / n_tgt.max(1) as f64,
        }
    }

    /// The number of synapses the projection creates, when the rule fixes it
    /// (every rule but `pairwise_bernoulli`).
    pub fn exact_synapses(&self, model: &Model) -> Option<u64> {
        let n_src = model.populations[self.source].size;
        let n_tgt = model.populations[self.target].size;
        let own = u64::from(self.excludes_self());
        match self.rule {
            Rule::FixedIndegree { k } => Some(if n_src > own { k * n_tgt } else { 0 }),
            Rule::FixedTotalNumber { n } => Some(n),
            Rule::PairwiseBernoulli { .. } => None,
            Rule::OneToOne => Some(if own == 1 { 0 } else { n_tgt }),
            Rule::AllToAll => Some(n_tgt * n_src.saturating_sub(own)),
            Rule::SonataEdges { n } => Some(n),
        }
    }
}

/// A resolved projection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// Position in the config (part of every random stream key).
    pub index: u32,
    /// Name (`source->target` unless given).
    pub name: String,
    /// Source population index.
    pub source: usize,
    /// Target population index.
    pub target: usize,
    /// Rule.
    pub rule: Rule,
    /// Autapses allowed.
    pub allow_autapses: bool,
    /// Multapses allowed.
    pub allow_multapses: bool,
    /// Weight, pA (after in-degree compensation). For rule `sonata_edges`
    /// with the file's per-edge weights: `Uniform` over the range of those
    /// weights, which are read, not drawn.
    pub weight_pa: Dist,
    /// Delay, ms. For rule `sonata_edges` with the file's per-edge delays:
    /// `Uniform` over their range, as `weight_pa`.
    pub delay_ms: Dist,
    /// Rule `sonata_edges`: where the synapses are read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<EdgeSource>,
}

/// The edges of a `sonata_edges` projection, as the builder reads them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeSource {
    /// The SONATA edges file.
    pub file: PathBuf,
    /// The edge population in it.
    pub population: String,
    /// Only edges of this type, if given.
    pub edge_type_id: Option<i64>,
    /// Number of edges selected.
    pub n: u64,
    /// xxh3-64 of the selected edges ([`crate::sonata_edges`]).
    pub checksum: u64,
    /// Weights from the file's `syn_weight` (else the projection's constant
    /// or distribution).
    pub weight_per_edge: bool,
    /// Delays from the file's `delay` (else the projection's).
    pub delay_per_edge: bool,
    /// The weight of edges without `syn_weight`
    /// ([`crate::config::EdgesRaw::syn_weight`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_weight: Option<f64>,
    /// Synapses per edge without `nsyns`
    /// ([`crate::config::EdgesRaw::nsyns`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsyns: Option<f64>,
}

/// Resolved Poisson background.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoissonInput {
    /// Rate of one input, Hz.
    pub rate_hz: f64,
    /// Weight (after compensation), pA.
    pub weight_pa: f64,
    /// Delay, ms.
    pub delay_ms: f64,
    /// Delay in steps.
    pub delay_steps: u32,
}

/// Resolved recording selection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// Populations whose spikes are recorded.
    pub spike_populations: Vec<usize>,
    /// (population, neuron index within it) whose V_m is recorded.
    pub v_m: Vec<(usize, u64)>,
}

/// The resolved model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Model name.
    pub name: String,
    /// Time step, ms.
    pub dt_ms: f64,
    /// Network seed.
    pub seed: u64,
    /// Populations in global-id order.
    pub populations: Vec<Population>,
    /// Names of the areas, in order of their first population (a
    /// population without `area` is an area of its own, named after it).
    pub areas: Vec<String>,
    /// Projections in config order.
    pub projections: Vec<Projection>,
    /// Poisson background, if any.
    pub poisson: Option<PoissonInput>,
    /// Recording.
    pub recording: Recording,
    /// Placement.
    pub placement: PlacementSection,
    /// Total neurons.
    pub n_neurons: u64,
    /// Fixed-point fraction bits of stored weights: a weight `w` pA is stored
    /// as `round(w * 2^weight_frac_bits)` in an `i32`.
    pub weight_frac_bits: u32,
}

/// NEST's tic, the grid of spike times: 1 µs (`tics_per_ms` = 1000).
pub const TIC_MS: f64 = 0.001;

/// The largest delay in steps a config may give (`delay_to_steps` of every
/// delay must fit in 31 bits, the most a synapse word can hold next to its
/// target); a network's ranks may allow fewer (see
/// [`max_delay_steps_for_targets`]).
pub const MAX_DELAY_STEPS: u64 = (1 << 31) - 1;

/// Weights are stored as `i32` fixed point with at least one bit of headroom
/// above the largest weight: at most 2^29 pA (with no fraction bits).
pub const MAX_WEIGHT_PA: f64 = (1u64 << 29) as f64;

/// Each projection's weights must be stored to within 2^-10 (about 0.1 %)
/// of their typical magnitude ([`Dist::typical_abs`]): the fixed-point step
/// `2^-weight_frac_bits` pA, set by the largest weight of the network, must
/// not exceed `typical / 2^WEIGHT_PRECISION_BITS`.
pub const WEIGHT_PRECISION_BITS: u32 = 10;

/// The largest delay in steps that fits next to `target_bits` bits of
/// local target in a synapse word.
pub fn max_delay_steps_for_targets(target_bits: u32) -> u64 {
    (1u64 << (32 - target_bits.clamp(1, 31))) - 1
}

/// Whether `dt_ms` is a whole positive multiple of [`TIC_MS`] (to within
/// floating-point rounding of the decimal it was written as).
pub fn on_tic_grid(dt_ms: f64) -> bool {
    let tics = dt_ms / TIC_MS;
    let whole = tics.round();
    tics.is_finite() && whole >= 1.0 && (tics - whole).abs() <= 1e-9 * whole
}

/// A population or area name must be usable as an HDF5 group name, a file
/// name, a CSV field and a `--set` key: non-empty, at most 255 bytes,
/// without control characters, white space, or any of `/ \ . , " '`.
fn check_name(ctx: &Ctx, field: &str, name: &str) -> Result<(), ConfigError> {
    let bad = name
        .chars()
        .find(|&c| c.is_control() || c.is_whitespace() || "/\\.,\"'".contains(c));
    if name.is_empty() || name.len() > 255 || bad.is_some() {
        return Err(ctx.err(
            field,
            format!(
                "'{}' is not a valid name (1 to 255 bytes, no control characters, spaces, '/', '\\', '.', ',' or quotes)",
                name.escape_default()
            ),
        ));
    }
    Ok(())
}

/// Convert a delay in ms to steps as NEST does (round half up, at least 1).
#[inline]
pub fn delay_to_steps(delay_ms: f64, dt_ms: f64) -> u32 {
    // For x >= 1, truncation of x is floor(x); `as` saturates.
    let x = delay_ms * (1.0 / dt_ms) + 0.5;
    if x < 1.0 || x.is_nan() {
        1
    } else {
        x as u32
    }
}

/// Quantise a weight to the stored fixed point (saturating).
///
/// Rounds half away from zero: `trunc(|x| + 1/2)` with the sign of `x`, where
/// `x = weight * 2^frac_bits` (exact); `as` truncates and saturates.
#[inline]
pub fn quantize_weight(weight_pa: f64, frac_bits: u32) -> i32 {
    let x = weight_pa * f64::from_bits(((1023 + frac_bits as u64) & 0x7ff) << 52);
    if x >= 0.0 {
        (x + 0.5) as i32
    } else {
        -((0.5 - x) as i64).min(1 << 31) as i32
    }
}

/// The weight in pA of a stored fixed-point weight.
pub fn dequantize_weight(w: i32, frac_bits: u32) -> f64 {
    w as f64 / (2f64).powi(frac_bits as i32)
}

/// NEST defaults of a model (NEST 3.10 documentation of each model).
/// The models of the list share them; a model ignores those it does not
/// take (`NeuronModel::params`).
fn nest_defaults(model: NeuronModel) -> NeuronParams {
    NeuronParams {
        model,
        C_m: 250.0,
        tau_m: 10.0,
        tau_syn_ex: 2.0,
        tau_syn_in: 2.0,
        t_ref: 2.0,
        E_L: -70.0,
        V_th: -55.0,
        V_reset: -70.0,
        I_e: 0.0,
        spike_times: Vec::new(),
    }
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            file: self.file.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

fn resolve_dist(ctx: &Ctx, field: &str, d: &Distribution) -> Result<Dist, ConfigError> {
    let finite = |name: &str, v: f64| -> Result<f64, ConfigError> {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(ctx.err(format!("{field}.{name}"), "must be a finite number"))
        }
    };
    Ok(match d {
        Distribution::Constant(v) => {
            if !v.is_finite() {
                return Err(ctx.err(field, "must be a finite number"));
            }
            Dist::Constant(*v)
        }
        Distribution::Random(RandomDistribution::Normal {
            mean,
            std,
            min,
            max,
            bounds,
        }) => {
            let mean = finite("mean", *mean)?;
            let std = finite("std", *std)?;
            if std < 0.0 {
                return Err(ctx.err(format!("{field}.std"), format!("must be >= 0, got {std}")));
            }
            let lo = min.unwrap_or(f64::NEG_INFINITY);
            let hi = max.unwrap_or(f64::INFINITY);
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(ctx.err(field, format!("min ({lo}) must be <= max ({hi})")));
            }
            if *bounds == Bounds::Redraw {
                // Redrawing must terminate quickly: the interval has to reach
                // within 5 sd of the mean.
                let reach = 5.0 * std;
                if hi < mean - reach
                    || lo > mean + reach
                    || (std == 0.0 && (mean < lo || mean > hi))
                {
                    return Err(ctx.err(
                        field,
                        format!(
                            "bounds [{lo}, {hi}] are too far from mean {mean} (sd {std}) to redraw; use bounds = \"clip\""
                        ),
                    ));
                }
            }
            Dist::Normal {
                mean,
                std,
                min: lo,
                max: hi,
                clip: *bounds == Bounds::Clip,
            }
        }
        Distribution::Random(RandomDistribution::Uniform { min, max }) => {
            let min = finite("min", *min)?;
            let max = finite("max", *max)?;
            if min > max {
                return Err(ctx.err(field, format!("min ({min}) must be <= max ({max})")));
            }
            Dist::Uniform { min, max }
        }
    })
}

fn merge_params(
    ctx: &Ctx,
    field: &str,
    defaults: &NeuronParamsRaw,
    own: &NeuronParamsRaw,
    dt_ms: f64,
) -> Result<NeuronParams, ConfigError> {
    let model_name = own
        .model
        .as_deref()
        .or(defaults.model.as_deref())
        .unwrap_or("iaf_psc_exp");
    // Where a parameter was set, for error messages: the population's own
    // `params`, or `[neuron_defaults]` when only that sets it.
    let at = |name: &str| -> String {
        if !own.set_params().contains(&name) && defaults.set_params().contains(&name) {
            format!("neuron_defaults.{name}")
        } else {
            format!("{field}.{name}")
        }
    };
    let model = NeuronModel::parse(model_name).ok_or_else(|| {
        let known: Vec<&str> = NeuronModel::ALL.iter().map(|m| m.name()).collect();
        ctx.err(
            at("model"),
            format!(
                "unknown neuron model '{model_name}' (known: {})",
                known.join(", ")
            ),
        )
    })?;
    // A parameter the model does not have is an error where the population
    // sets it; `[neuron_defaults]` holds the defaults of every model a
    // config uses, so there it applies only where it fits.
    for name in own.set_params() {
        if name != "model" && !model.params().contains(&name) {
            return Err(ctx.err(
                format!("{field}.{name}"),
                format!(
                    "{} has no parameter {name} (it takes {})",
                    model.name(),
                    model.params().join(", ")
                ),
            ));
        }
    }
    let mut p = nest_defaults(model);
    for src in [defaults, own] {
        macro_rules! take {
            ($f:ident) => {
                if let Some(v) = src.$f {
                    p.$f = v;
                }
            };
        }
        take!(C_m);
        take!(tau_m);
        take!(tau_syn_ex);
        take!(tau_syn_in);
        take!(t_ref);
        take!(E_L);
        take!(V_th);
        take!(V_reset);
        take!(I_e);
        if let Some(t) = &src.spike_times {
            p.spike_times = t.clone();
        }
    }
    let pos = |name: &str, v: f64| -> Result<(), ConfigError> {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(ctx.err(at(name), format!("must be > 0, got {v}")))
        }
    };
    if model != NeuronModel::SpikeGenerator {
        pos("C_m", p.C_m)?;
        pos("tau_m", p.tau_m)?;
        for (name, v) in [("tau_syn_ex", p.tau_syn_ex), ("tau_syn_in", p.tau_syn_in)] {
            if model.params().contains(&name) {
                pos(name, v)?;
            }
        }
        if !(p.t_ref.is_finite() && p.t_ref >= 0.0) {
            return Err(ctx.err(at("t_ref"), format!("must be >= 0, got {}", p.t_ref)));
        }
        for (n, v) in [
            ("E_L", p.E_L),
            ("V_th", p.V_th),
            ("V_reset", p.V_reset),
            ("I_e", p.I_e),
        ] {
            if !v.is_finite() {
                return Err(ctx.err(at(n), "must be a finite number"));
            }
        }
        if p.V_reset >= p.V_th {
            return Err(ctx.err(
                at("V_reset"),
                format!("must be below V_th ({} >= {})", p.V_reset, p.V_th),
            ));
        }
        if !p.spike_times.is_empty() {
            return Err(ctx.err(
                format!("{field}.spike_times"),
                "only a spike_generator has spike_times",
            ));
        }
    } else {
        for (i, w) in p.spike_times.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(ctx.err(
                    format!("{field}.spike_times[{}]", i + 1),
                    "spike times must be sorted in increasing order",
                ));
            }
        }
        if let Some(t) = p.spike_times.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
            return Err(ctx.err(
                format!("{field}.spike_times"),
                format!("spike times must be > 0 ms, got {t}"),
            ));
        }
        if let Some(t) = p
            .spike_times
            .iter()
            .find(|&&t| ((t / dt_ms).round() * dt_ms - t).abs() > 1e-9 * t.max(1.0))
        {
            return Err(ctx.err(
                format!("{field}.spike_times"),
                format!("spike time {t} ms is not a multiple of dt = {dt_ms} ms (as in NEST, off-grid times are refused)"),
            ));
        }
    }
    Ok(p)
}

impl Model {
    /// Validate and resolve a config. `file` names the config in errors.
    pub fn resolve(cfg: &Config, file: &str) -> Result<Model, ConfigError> {
        let ctx = Ctx { file };
        let net = &cfg.network;
        if !(net.dt_ms.is_finite() && net.dt_ms > 0.0) {
            return Err(ctx.err("network.dt_ms", format!("must be > 0, got {}", net.dt_ms)));
        }
        if !on_tic_grid(net.dt_ms) {
            return Err(ctx.err(
                "network.dt_ms",
                format!(
                    "{} ms is not a whole multiple of the time grid of {TIC_MS} ms (NEST's tic): spike times are stamped on that grid",
                    net.dt_ms
                ),
            ));
        }
        let sc = &cfg.scale;
        for (n, v) in [
            ("scale.neurons", sc.neurons),
            ("scale.indegree", sc.indegree),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ctx.err(n, format!("must be > 0, got {v}")));
            }
        }
        if cfg.mam.is_some() {
            return Err(ctx.err(
                "mam",
                "a [mam] table is expanded when its config file is loaded (snn_formats::load_config); it cannot be resolved from a tree",
            ));
        }
        if cfg.populations.is_empty() {
            return Err(ctx.err("populations", "at least one population is needed"));
        }
        let truncate = sc.rounding == Rounding::Truncate;
        let mut areas: Vec<String> = Vec::new();
        // Populations.
        let mut pops = Vec::with_capacity(cfg.populations.len());
        let mut first_id = 0u64;
        for (i, p) in cfg.populations.iter().enumerate() {
            let field = format!("populations[{i}]");
            check_name(&ctx, &format!("{field}.name"), &p.name)?;
            if cfg.populations[..i].iter().any(|q| q.name == p.name) {
                return Err(ctx.err(
                    format!("{field}.name"),
                    format!("duplicate population '{}'", p.name),
                ));
            }
            if !(p.size.is_finite() && p.size >= 0.0) {
                return Err(ctx.err(
                    format!("{field}.size"),
                    format!("must be >= 0, got {}", p.size),
                ));
            }
            if p.size > u32::MAX as f64 {
                return Err(ctx.err(
                    format!("{field}.size"),
                    "a population may hold at most 2^32-1 neurons",
                ));
            }
            let size = if !p.scalable {
                if p.size.fract() != 0.0 {
                    return Err(ctx.err(
                        format!("{field}.size"),
                        format!("{} is not a whole number (scalable = false)", p.size),
                    ));
                }
                p.size as u64
            } else if truncate {
                (p.size * sc.neurons).trunc() as u64
            } else {
                (p.size * sc.neurons).round_ties_even() as u64
            };
            if size > u32::MAX as u64 {
                return Err(ctx.err(
                    format!("{field}.size"),
                    "a population may hold at most 2^32-1 neurons",
                ));
            }
            let params = merge_params(
                &ctx,
                &format!("{field}.params"),
                &cfg.neuron_defaults,
                &p.params,
                net.dt_ms,
            )?;
            let v_m_init = match &p.V_m_init {
                Some(d) => resolve_dist(&ctx, &format!("{field}.V_m_init"), d)?,
                None => Dist::Constant(params.E_L),
            };
            let k_ext_full = p.K_ext.unwrap_or(0.0);
            if !(k_ext_full.is_finite() && k_ext_full >= 0.0) {
                return Err(ctx.err(
                    format!("{field}.K_ext"),
                    format!("must be >= 0, got {k_ext_full}"),
                ));
            }
            if k_ext_full > 0.0 && cfg.poisson_background.is_none() {
                return Err(ctx.err(
                    format!("{field}.K_ext"),
                    "needs a [poisson_background] section",
                ));
            }
            if let Some(r) = p.mean_rate_Hz {
                if !(r.is_finite() && r >= 0.0) {
                    return Err(ctx.err(
                        format!("{field}.mean_rate_Hz"),
                        format!("must be >= 0, got {r}"),
                    ));
                }
            }
            let k_ext = k_ext_full * sc.indegree;
            let poisson_rate_hz = cfg
                .poisson_background
                .as_ref()
                .filter(|b| b.poisson_input)
                .map(|b| b.rate_Hz * k_ext)
                .unwrap_or(0.0);
            let area_name = p.area.as_deref().unwrap_or(&p.name);
            check_name(&ctx, &format!("{field}.area"), area_name)?;
            let area = match areas.iter().position(|a| a == area_name) {
                Some(a) => a,
                None => {
                    areas.push(area_name.to_string());
                    areas.len() - 1
                }
            };
            pops.push(Population {
                name: p.name.clone(),
                area,
                size,
                first_id,
                params,
                v_m_init,
                k_ext,
                poisson_rate_hz,
                mean_rate_hz: p.mean_rate_Hz,
            });
            first_id += size;
        }
        let names: Vec<String> = pops.iter().map(|p| p.name.clone()).collect();
        let pop_index = |field: String, name: &str| -> Result<usize, ConfigError> {
            names.iter().position(|p| p == name).ok_or_else(|| {
                ctx.err(
                    field,
                    format!("unknown population '{name}' (known: {})", names.join(", ")),
                )
            })
        };
        let compensate = sc.compensate_indegree && sc.indegree < 1.0;
        let w_factor = if compensate {
            1.0 / sc.indegree.sqrt()
        } else {
            1.0
        };
        // Mean input at full scale per target population, pA*ms/ms, for the
        // DC compensation (Potjans & Diesmann 2014, NEST example).
        let mut full_input = vec![0.0f64; pops.len()];

        let mut projections = Vec::with_capacity(cfg.projections.len());
        if cfg.projections.len() >= (1 << 24) {
            return Err(ctx.err("projections", "at most 2^24-1 projections"));
        }
        for (i, pr) in cfg.projections.iter().enumerate() {
            let field = format!("projections[{i}]");
            let s = pop_index(format!("{field}.source"), &pr.source)?;
            let t = pop_index(format!("{field}.target"), &pr.target)?;
            if pops[t].params.model == NeuronModel::SpikeGenerator {
                return Err(ctx.err(
                    format!("{field}.target"),
                    "a spike_generator cannot receive synapses",
                ));
            }
            let n_s = pops[s].size;
            let n_t = pops[t].size;
            let full_size = |idx: usize| -> f64 { cfg.populations[idx].size };
            let need = |name: &str, v: Option<f64>| -> Result<f64, ConfigError> {
                let v = v.ok_or_else(|| {
                    ctx.err(
                        format!("{field}.{name}"),
                        format!("rule '{}' needs '{name}'", rule_name(pr.rule)),
                    )
                })?;
                if !(v.is_finite() && v >= 0.0) {
                    return Err(
                        ctx.err(format!("{field}.{name}"), format!("must be >= 0, got {v}"))
                    );
                }
                Ok(v)
            };
            let forbid = |name: &str, v: Option<f64>| -> Result<(), ConfigError> {
                if v.is_some() {
                    Err(ctx.err(
                        format!("{field}.{name}"),
                        format!("not used by rule '{}'", rule_name(pr.rule)),
                    ))
                } else {
                    Ok(())
                }
            };
            if pr.rule != RuleName::SonataEdges && pr.edges.is_some() {
                return Err(ctx.err(
                    format!("{field}.edges"),
                    format!("not used by rule '{}'", rule_name(pr.rule)),
                ));
            }
            let mut sonata: Option<SonataResolved> = None;
            // Full-scale mean in-degree, for the compensation.
            let (rule, k_full) = match pr.rule {
                RuleName::FixedIndegree => {
                    forbid("N", pr.N)?;
                    forbid("p", pr.p)?;
                    forbid("connection_probability", pr.connection_probability)?;
                    let k = need("indegree", pr.indegree)?;
                    let k_scaled = if truncate {
                        (k * sc.indegree).trunc()
                    } else {
                        (k * sc.indegree).round_ties_even()
                    } as u64;
                    if k_scaled > 0 && n_s == 0 && n_t > 0 {
                        return Err(ctx.err(
                            format!("{field}.source"),
                            format!("fixed_indegree draws {k_scaled} sources per target from population '{}', which is empty", pops[s].name),
                        ));
                    }
                    if !pr.allow_multapses {
                        let avail = n_s - u64::from(!pr.allow_autapses && s == t && n_s > 0);
                        if k_scaled > avail {
                            return Err(ctx.err(
                                format!("{field}.indegree"),
                                format!("{k_scaled} distinct sources requested but the source has only {avail} (allow_multapses = false)"),
                            ));
                        }
                    }
                    if !pr.allow_autapses && s == t && n_s == 1 && k_scaled > 0 {
                        return Err(ctx.err(
                            format!("{field}.allow_autapses"),
                            "a population of one neuron without autapses has no sources",
                        ));
                    }
                    (Rule::FixedIndegree { k: k_scaled }, k)
                }
                RuleName::FixedTotalNumber => {
                    forbid("indegree", pr.indegree)?;
                    forbid("p", pr.p)?;
                    if !pr.allow_multapses {
                        return Err(ctx.err(
                            format!("{field}.allow_multapses"),
                            "fixed_total_number draws with replacement; allow_multapses = false is not supported (as in NEST)",
                        ));
                    }
                    let n_full =
                        match (pr.N, pr.connection_probability) {
                            (Some(_), Some(_)) => {
                                return Err(ctx.err(
                                    field.clone(),
                                    "give either N or connection_probability, not both",
                                ))
                            }
                            (Some(n), None) => need("N", Some(n))?,
                            (None, Some(p)) => {
                                if !(0.0..1.0).contains(&p) {
                                    return Err(ctx.err(
                                        format!("{field}.connection_probability"),
                                        format!("must be in [0, 1), got {p}"),
                                    ));
                                }
                                let nn = full_size(s) * full_size(t);
                                if p == 0.0 || nn <= 1.0 {
                                    0.0
                                } else {
                                    (1.0 - p).ln() / ((nn - 1.0) / nn).ln()
                                }
                            }
                            (None, None) => return Err(ctx.err(
                                format!("{field}.N"),
                                "rule 'fixed_total_number' needs 'N' or 'connection_probability'",
                            )),
                        };
                    let n = if truncate {
                        (n_full * (sc.indegree * sc.neurons)).trunc()
                    } else {
                        (n_full * sc.neurons * sc.indegree).round_ties_even()
                    } as u64;
                    if n > 0 && (n_s == 0 || n_t == 0) {
                        let (role, empty) = if n_s == 0 {
                            ("source", s)
                        } else {
                            ("target", t)
                        };
                        return Err(ctx.err(
                            format!(
                                "{field}.{}",
                                if pr.N.is_some() {
                                    "N"
                                } else {
                                    "connection_probability"
                                }
                            ),
                            format!(
                                "{n} synapses requested but the {role} population '{}' is empty",
                                pops[empty].name
                            ),
                        ));
                    }
                    if !pr.allow_autapses && s == t && n_s == 1 && n > 0 {
                        return Err(ctx.err(
                            format!("{field}.allow_autapses"),
                            "a population of one neuron without autapses has no sources",
                        ));
                    }
                    let full_t = full_size(t);
                    (
                        Rule::FixedTotalNumber { n },
                        if full_t > 0.0 { n_full / full_t } else { 0.0 },
                    )
                }
                RuleName::PairwiseBernoulli => {
                    forbid("indegree", pr.indegree)?;
                    forbid("N", pr.N)?;
                    forbid("connection_probability", pr.connection_probability)?;
                    let p = need("p", pr.p)?;
                    if p > 1.0 {
                        return Err(
                            ctx.err(format!("{field}.p"), format!("must be in [0, 1], got {p}"))
                        );
                    }
                    (Rule::PairwiseBernoulli { p }, p * full_size(s))
                }
                RuleName::OneToOne => {
                    forbid("indegree", pr.indegree)?;
                    forbid("N", pr.N)?;
                    forbid("p", pr.p)?;
                    forbid("connection_probability", pr.connection_probability)?;
                    if n_s != n_t {
                        return Err(ctx.err(
                            field.clone(),
                            format!("one_to_one needs populations of equal size ({n_s} != {n_t})"),
                        ));
                    }
                    (Rule::OneToOne, 1.0)
                }
                RuleName::AllToAll => {
                    forbid("indegree", pr.indegree)?;
                    forbid("N", pr.N)?;
                    forbid("p", pr.p)?;
                    forbid("connection_probability", pr.connection_probability)?;
                    (Rule::AllToAll, full_size(s))
                }
                RuleName::SonataEdges => {
                    forbid("indegree", pr.indegree)?;
                    forbid("N", pr.N)?;
                    forbid("p", pr.p)?;
                    forbid("connection_probability", pr.connection_probability)?;
                    let e = sonata_edges_of(&ctx, &field, pr, (n_s, n_t), net.dt_ms)?;
                    if sc.neurons != 1.0 || sc.indegree != 1.0 {
                        return Err(ctx.err(
                            format!("{field}.rule"),
                            format!(
                                "the synapses of rule 'sonata_edges' cannot be scaled (scale.neurons = {}, scale.indegree = {}: both must be 1)",
                                sc.neurons, sc.indegree
                            ),
                        ));
                    }
                    let n = e.n;
                    sonata = Some(e);
                    (Rule::SonataEdges { n }, n as f64 / full_size(t).max(1.0))
                }
            };
            // Guard against typos such as N = 1e15: a projection may hold at
            // most 2^40 synapses (about 1.1e12, far beyond one network
            // shard) and a target at most 2^32 - 1.
            let total = match rule {
                Rule::FixedIndegree { k } => (k as f64) * n_t as f64,
                Rule::FixedTotalNumber { n } => n as f64,
                Rule::PairwiseBernoulli { p } => p * n_s as f64 * n_t as f64,
                Rule::OneToOne => n_t as f64,
                Rule::AllToAll => n_s as f64 * n_t as f64,
                Rule::SonataEdges { n } => n as f64,
            };
            let per_target = match rule {
                Rule::FixedIndegree { k } => k as f64,
                _ => 0.0,
            };
            if total > (1u64 << 40) as f64 || per_target > u32::MAX as f64 {
                return Err(ctx.err(
                    field.clone(),
                    format!("{total:.3e} synapses requested; at most 2^40 per projection and 2^32-1 per target"),
                ));
            }
            let weight_full = match (&pr.weight, &sonata) {
                (Some(w), _) => resolve_dist(&ctx, &format!("{field}.weight"), w)?,
                (None, Some(e)) => e.weight_range.clone(),
                (None, None) => return Err(ctx.err(format!("{field}.weight"), "missing")),
            };
            let delay_ms = match (&pr.delay, &sonata) {
                (Some(d), _) => resolve_dist(&ctx, &format!("{field}.delay"), d)?,
                (None, Some(e)) => e.delay_range.clone(),
                (None, None) => return Err(ctx.err(format!("{field}.delay"), "missing")),
            };
            check_delay(&ctx, &format!("{field}.delay"), &delay_ms, net.dt_ms)?;
            if compensate {
                let w = weight_full.mean();
                let tau = pops[t]
                    .params
                    .model
                    .charge_per_weight(&pops[t].params, w >= 0.0);
                let rate = cfg.populations[s].mean_rate_Hz.ok_or_else(|| {
                    ctx.err(
                        format!("populations[{s}].mean_rate_Hz"),
                        "needed by scale.compensate_indegree when scale.indegree < 1",
                    )
                })?;
                full_input[t] += tau * w * k_full * rate;
            }
            let name = pr
                .name
                .clone()
                .unwrap_or_else(|| format!("{}->{}", pr.source, pr.target));
            projections.push(Projection {
                index: i as u32,
                name,
                source: s,
                target: t,
                rule,
                allow_autapses: pr.allow_autapses,
                allow_multapses: pr.allow_multapses,
                weight_pa: weight_full.scaled(w_factor, sc.scale_weight_std),
                delay_ms,
                edges: sonata.map(|e| EdgeSource {
                    weight_per_edge: pr.weight.is_none(),
                    delay_per_edge: pr.delay.is_none(),
                    ..e.source
                }),
            });
        }
        let poisson = match &cfg.poisson_background {
            None => None,
            Some(b) => {
                let f = "poisson_background";
                if !(b.rate_Hz.is_finite() && b.rate_Hz >= 0.0) {
                    return Err(ctx.err(
                        format!("{f}.rate_Hz"),
                        format!("must be >= 0, got {}", b.rate_Hz),
                    ));
                }
                if !b.weight.is_finite() {
                    return Err(ctx.err(format!("{f}.weight"), "must be a finite number"));
                }
                check_delay(
                    &ctx,
                    &format!("{f}.delay"),
                    &Dist::Constant(b.delay),
                    net.dt_ms,
                )?;
                // Compensated as recurrent input is, unless it is a DC
                // already (`poisson_input = false`: the full drive's mean).
                if compensate && b.poisson_input {
                    for (i, p) in pops.iter().enumerate() {
                        full_input[i] +=
                            p.params.model.charge_per_weight(&p.params, b.weight >= 0.0)
                                * b.weight
                                * cfg.populations[i].K_ext.unwrap_or(0.0)
                                * b.rate_Hz;
                    }
                }
                Some(PoissonInput {
                    rate_hz: b.rate_Hz,
                    weight_pa: b.weight * w_factor,
                    delay_ms: b.delay,
                    delay_steps: delay_to_steps(b.delay, net.dt_ms),
                })
            }
        };
        if compensate {
            let f = 1.0 - sc.indegree.sqrt();
            for (p, input) in pops.iter_mut().zip(&full_input) {
                if p.params.model != NeuronModel::SpikeGenerator {
                    p.params.I_e += 0.001 * f * input;
                }
            }
        }
        // The Poisson drive as the mean current of the full-scale drive
        // (`poisson_input = false`, NEST's microcircuit example).
        if let Some(b) = cfg.poisson_background.as_ref().filter(|b| !b.poisson_input) {
            for (p, raw) in pops.iter_mut().zip(&cfg.populations) {
                if p.params.model == NeuronModel::SpikeGenerator {
                    continue;
                }
                let integral_ms = p.params.model.charge_per_weight(&p.params, b.weight >= 0.0);
                p.params.I_e +=
                    b.rate_Hz * raw.K_ext.unwrap_or(0.0) * b.weight * integral_ms * 0.001;
            }
        }
        // Recording.
        let spike_populations = match &cfg.recording.spikes {
            None => (0..pops.len()).collect(),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| pop_index(format!("recording.spikes[{i}]"), n))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let mut v_m = Vec::new();
        for (i, r) in cfg.recording.V_m.iter().enumerate() {
            let p = pop_index(format!("recording.V_m[{i}].population"), &r.population)?;
            for &n in &r.neurons {
                if n >= pops[p].size {
                    return Err(ctx.err(
                        format!("recording.V_m[{i}].neurons"),
                        format!(
                            "neuron {n} is outside population '{}' of size {}",
                            pops[p].name, pops[p].size
                        ),
                    ));
                }
                v_m.push((p, n));
            }
        }
        // Placement.
        if cfg.placement.scheme == PlacementScheme::Population {
            for name in cfg.placement.population_ranks.keys() {
                pop_index(format!("placement.population_ranks.{name}"), name)?;
            }
            if let Some(p) = pops
                .iter()
                .find(|p| !cfg.placement.population_ranks.contains_key(&p.name))
            {
                return Err(ctx.err(
                    "placement.population_ranks",
                    format!(
                        "population '{}' has no rank (scheme = \"population\")",
                        p.name
                    ),
                ));
            }
        } else if !cfg.placement.population_ranks.is_empty() {
            return Err(ctx.err(
                "placement.population_ranks",
                "only used with scheme = \"population\"",
            ));
        }
        // Weight quantisation: the largest weight must fit in 2^30.
        let mut max_abs = 0.0f64;
        for p in &projections {
            max_abs = max_abs.max(p.weight_pa.abs_bound());
        }
        if let Some(p) = &poisson {
            max_abs = max_abs.max(p.weight_pa.abs());
        }
        let mut frac_bits = 0u32;
        while frac_bits < 40 && max_abs * (2f64).powi(frac_bits as i32 + 1) <= (1u64 << 30) as f64 {
            frac_bits += 1;
        }
        if let Some(given) = net.weight_frac_bits {
            if given > frac_bits {
                return Err(ctx.err(
                    "network.weight_frac_bits",
                    format!(
                        "{given} fraction bits leave no room for weights up to {max_abs:e} pA: at most {frac_bits}"
                    ),
                ));
            }
            frac_bits = given;
        }
        check_weights(&ctx, &projections, poisson.as_ref(), max_abs, frac_bits)?;
        Ok(Model {
            name: net.name.clone(),
            dt_ms: net.dt_ms,
            seed: net.seed,
            n_neurons: first_id,
            populations: pops,
            areas,
            projections,
            poisson,
            recording: Recording {
                spike_populations,
                v_m,
            },
            placement: cfg.placement.clone(),
            weight_frac_bits: frac_bits,
        })
    }

    /// The population holding a global neuron id.
    pub fn population_of(&self, global: u64) -> usize {
        self.populations
            .partition_point(|p| p.first_id + p.size <= global)
            .min(self.populations.len() - 1)
    }
}

fn rule_name(r: RuleName) -> &'static str {
    match r {
        RuleName::FixedIndegree => "fixed_indegree",
        RuleName::FixedTotalNumber => "fixed_total_number",
        RuleName::PairwiseBernoulli => "pairwise_bernoulli",
        RuleName::OneToOne => "one_to_one",
        RuleName::AllToAll => "all_to_all",
        RuleName::SonataEdges => "sonata_edges",
    }
}

/// Refuse weights the stored fixed point cannot hold: beyond
/// [`MAX_WEIGHT_PA`], or (set by a much larger weight elsewhere) stored in
/// steps coarser than [`WEIGHT_PRECISION_BITS`] allow.
/// A `sonata_edges` projection's edges as loading the config found them.
struct SonataResolved {
    n: u64,
    source: EdgeSource,
    /// `Uniform` over the file's weights (constant 0 without edges).
    weight_range: Dist,
    /// `Uniform` over the file's delays (one step without edges).
    delay_range: Dist,
}

/// The `edges` table of `sonata_edges` projection `pr` (`field`), checked
/// against the sizes of its source and target populations.
fn sonata_edges_of(
    ctx: &Ctx,
    field: &str,
    pr: &ProjectionRaw,
    (n_s, n_t): (u64, u64),
    dt_ms: f64,
) -> Result<SonataResolved, ConfigError> {
    let e = pr.edges.as_ref().ok_or_else(|| {
        ctx.err(
            format!("{field}.edges"),
            "rule 'sonata_edges' needs an edges table { file, population }",
        )
    })?;
    let (Some(n), Some(sum)) = (e.N, e.checksum.as_deref()) else {
        return Err(ctx.err(
            format!("{field}.edges"),
            "the edges have not been read (N and checksum are filled in when the config is loaded)",
        ));
    };
    if !e.scanned() {
        return Err(ctx.err(
            format!("{field}.edges"),
            "weight_range, delay_range and max_node_ids are missing",
        ));
    }
    let checksum = u64::from_str_radix(sum, 16).map_err(|_| {
        ctx.err(
            format!("{field}.edges.checksum"),
            format!("'{sum}' is not a hexadecimal checksum"),
        )
    })?;
    if let Some([s, t]) = e.max_node_ids {
        for (id, size, role, pop) in [
            (s, n_s, "source", &pr.source),
            (t, n_t, "target", &pr.target),
        ] {
            if n > 0 && id >= size {
                return Err(ctx.err(
                    format!("{field}.edges"),
                    format!(
                        "{}: edge population '{}' has {role} node id {id}, beyond population '{pop}' of {size} neurons",
                        e.file, e.population
                    ),
                ));
            }
        }
    }
    let range = |name: &str, r: Option<[f64; 2]>| -> Result<Dist, ConfigError> {
        match r {
            None => Ok(Dist::Constant(0.0)),
            Some([lo, hi]) if lo.is_finite() && hi.is_finite() && lo <= hi => Ok(if lo == hi {
                Dist::Constant(lo)
            } else {
                Dist::Uniform { min: lo, max: hi }
            }),
            Some([lo, hi]) => Err(ctx.err(
                format!("{field}.edges.{name}"),
                format!("[{lo}, {hi}] is not a range of finite numbers"),
            )),
        }
    };
    for (name, given, r) in [
        ("weight_range", pr.weight.is_some(), e.weight_range),
        ("delay_range", pr.delay.is_some(), e.delay_range),
    ] {
        if n > 0 && !given && r.is_none() {
            return Err(ctx.err(format!("{field}.edges.{name}"), "missing"));
        }
    }
    let weight_range = range("weight_range", e.weight_range)?;
    let delay_range = match e.delay_range {
        None => Dist::Constant(dt_ms),
        r => range("delay_range", r)?,
    };
    Ok(SonataResolved {
        n,
        source: EdgeSource {
            file: PathBuf::from(&e.file),
            population: e.population.clone(),
            edge_type_id: e.edge_type_id,
            n,
            checksum,
            weight_per_edge: true,
            delay_per_edge: true,
            syn_weight: e.syn_weight,
            nsyns: e.nsyns,
        },
        weight_range,
        delay_range,
    })
}

fn check_weights(
    ctx: &Ctx,
    projections: &[Projection],
    poisson: Option<&PoissonInput>,
    max_abs: f64,
    frac_bits: u32,
) -> Result<(), ConfigError> {
    // (field, largest magnitude, typical magnitude)
    let mut all: Vec<(String, f64, f64)> = projections
        .iter()
        .map(|p| {
            (
                format!("projections[{}].weight", p.index),
                p.weight_pa.abs_bound(),
                p.weight_pa.typical_abs(),
            )
        })
        .collect();
    if let Some(p) = poisson {
        all.push((
            "poisson_background.weight".into(),
            p.weight_pa.abs(),
            p.weight_pa.abs(),
        ));
    }
    let Some((big_field, big, _)) = all.iter().max_by(|a, b| a.1.total_cmp(&b.1)).cloned() else {
        return Ok(());
    };
    if big.is_nan() || big > MAX_WEIGHT_PA {
        return Err(ctx.err(
            big_field,
            format!(
                "weights reaching {big:e} pA (after in-degree scaling; mean + 10 sd for unbounded normals) do not fit the stored fixed point: at most 2^29 pA = {MAX_WEIGHT_PA} pA"
            ),
        ));
    }
    let step = 1.0 / (2f64).powi(frac_bits as i32);
    let need = 1.0 / (1u64 << WEIGHT_PRECISION_BITS) as f64;
    for (field, _, typical) in &all {
        if *typical > 0.0 && step > typical * need {
            return Err(ctx.err(
                field.clone(),
                format!(
                    "weights of about {typical:e} pA would be stored in steps of {step:e} pA (set by the largest weight, {max_abs:e} pA at {big_field}), coarser than 2^-{WEIGHT_PRECISION_BITS} of the weight; keep every weight within a factor of about 2^{} of the largest",
                    29 - WEIGHT_PRECISION_BITS - 1
                ),
            ));
        }
    }
    Ok(())
}

fn check_delay(ctx: &Ctx, field: &str, d: &Dist, dt_ms: f64) -> Result<(), ConfigError> {
    // The smallest delay that can occur must round to at least one step.
    let half = 0.5 * dt_ms;
    let lowest = match *d {
        Dist::Constant(v) => v,
        Dist::Normal {
            min,
            clip,
            mean,
            std,
            ..
        } => {
            if min.is_finite() {
                min
            } else if clip {
                f64::NEG_INFINITY
            } else {
                mean - 10.0 * std
            }
        }
        Dist::Uniform { min, .. } => min,
    };
    let highest = d.upper_reach(8.0);
    let steps = highest / dt_ms;
    if steps.is_nan() || steps >= MAX_DELAY_STEPS as f64 {
        let what = match d {
            Dist::Constant(_) => format!("delay {highest} ms"),
            _ => format!("the distribution reaches delays of {highest} ms, which"),
        };
        return Err(ctx.err(
            field,
            format!(
                "{what} is {steps:.3e} steps of {dt_ms} ms; at most 2^31-1 steps ({} ms)",
                MAX_DELAY_STEPS as f64 * dt_ms
            ),
        ));
    }
    if lowest < half {
        let what = match d {
            Dist::Constant(_) => format!("delay {lowest} ms"),
            _ => "the distribution reaches delays".to_string(),
        };
        return Err(ctx.err(
            field,
            format!(
                "{what} below dt/2 = {half} ms (delays are rounded to steps of {dt_ms} ms and must be at least one step; set min >= {half})"
            ),
        ));
    }
    Ok(())
}
