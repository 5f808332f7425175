//! The multi-area model of macaque visual cortex (Schmidt et al. 2018) from
//! its data files: a config's `[mam]` table becomes ordinary populations and
//! projections when the config is loaded, so everything after loading (the
//! resolved model, the builder, the simulator, manifests) knows nothing of
//! the MAM in particular.
//!
//! The data (`configs/mam/`, CC BY-NC-SA 4.0, see its README) are
//! `mam_spec.json` (areas, populations, neuron numbers per population `N`,
//! in-degrees `K` target by source, external in-degrees `K_ext`, weights of
//! the ground state, delays) and `fullscale_rates.json` (area -> population
//! -> Hz). What the expansion writes, for `n` populations in the spec's
//! `population_index` order:
//!
//! * population `AREA_POP` (`V1_23E`, ...) with `size = N[area][pop]` (a
//!   float: the model creates `int(N * scale.neurons)`, which
//!   `scale.rounding = "truncate"` gives), `area = AREA`, `K_ext`, the
//!   full-scale rate as `mean_rate_Hz`, and initial potentials
//!   normal(`V0.mean_mV`, `V0.sd_mV`), unbounded;
//! * for every pair with `K[i][j] > 0`, target `i` and source `j`: a
//!   `fixed_total_number` projection with `N = K[i][j] * N_i` (the float
//!   full-scale synapse number; `int(N * (indegree * neurons))` are
//!   created), multapses and autapses allowed;
//! * weights normal(mean, sd), redrawn outside `[0, inf)` for a positive
//!   mean (excitatory sources, and every pair between areas) and outside
//!   `(-inf, 0]` for a negative one (inhibitory sources within an area). The
//!   mean and sd are the ground state's; between areas both are multiplied
//!   by `cc_weights_factor` (chi) and then, onto populations whose name ends
//!   in `I`, by `cc_weights_I_factor` (chi_I), in that order (which gives
//!   the spec's metastable matrices bit for bit);
//! * delays normal(`delay_mean`, `delay_sd`) redrawn below one time step
//!   (then rounded to steps as every delay is);
//! * `neuron_defaults` from the spec's `neuron` (fields the config sets
//!   win), `poisson_background` from `external_input` (10 Hz per input,
//!   weight `W_ext_pA`, delay 1 ms) unless the config has one.
//!
//! The config itself says how to downscale (`[scale]`: the MAM's rules are
//! `rounding = "truncate"`, `compensate_indegree = true`,
//! `scale_weight_std = false`; see `configs/mam.toml`). Every value read is
//! checked: a wrong shape, a non-finite number, a negative in-degree, size,
//! rate or sd, an unknown area or population is a one-line error naming the
//! data file and the field.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::config::{
    Config, Distribution, NeuronParamsRaw, PoissonBackground, PopulationRaw, ProjectionRaw,
    RandomDistribution, RuleName,
};
use crate::error::ConfigError;

/// The fields of `mam_spec.json` the model is built from (others are
/// ignored).
#[allow(non_snake_case)]
#[derive(Deserialize)]
struct Spec {
    areas: Vec<String>,
    populations: Vec<String>,
    population_index: Vec<(String, String)>,
    N: Vec<Vec<f64>>,
    K: Vec<Vec<f64>>,
    K_ext: Vec<f64>,
    W_ext_pA: f64,
    W_mean_ground: Vec<Vec<f64>>,
    W_sd_ground: Vec<Vec<f64>>,
    delay_mean: Vec<Vec<f64>>,
    delay_sd: Vec<Vec<f64>>,
    neuron: SpecNeuron,
    external_input: SpecExternal,
    delays: SpecDelays,
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct SpecNeuron {
    model: String,
    params: NeuronParamsRaw,
    V0: SpecV0,
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct SpecV0 {
    mean_mV: f64,
    sd_mV: f64,
}

#[allow(non_snake_case)]
#[derive(Deserialize)]
struct SpecExternal {
    rate_per_input_Hz: f64,
}

#[derive(Deserialize)]
struct SpecDelays {
    poisson_input_delay_ms: f64,
}

/// Rates: area -> population -> Hz.
type Rates = BTreeMap<String, BTreeMap<String, f64>>;

/// Errors about one data file.
struct DataFile {
    file: String,
}

impl DataFile {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            file: self.file.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Read and deserialise the file; a type or syntax error names the
    /// field it is in.
    fn read<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            file: self.file.clone(),
            message: e.to_string(),
        })?;
        // The common case, a valid file, without tracking the path (about
        // twice as fast on the 7.6 MB spec); again with it for the error.
        if let Ok(value) = serde_json::from_str(&text) {
            return Ok(value);
        }
        let mut de = serde_json::Deserializer::from_str(&text);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." {
                "(top level)".to_string()
            } else {
                field
            };
            self.err(field, one_line(&e.into_inner().to_string()))
        })?;
        de.end()
            .map_err(|e| self.err("(end of file)", one_line(&e.to_string())))?;
        Ok(value)
    }

    /// A finite number, `>= 0` when `non_negative`.
    fn number(&self, field: &str, v: f64, non_negative: bool) -> Result<f64, ConfigError> {
        if !v.is_finite() {
            return Err(self.err(field, format!("must be a finite number, got {v}")));
        }
        if non_negative && v < 0.0 {
            return Err(self.err(field, format!("must be >= 0, got {v}")));
        }
        Ok(v)
    }

    /// A `rows x cols` matrix of finite numbers (`>= 0` when
    /// `non_negative`).
    fn matrix(
        &self,
        name: &str,
        m: &[Vec<f64>],
        rows: usize,
        cols: usize,
        non_negative: bool,
    ) -> Result<(), ConfigError> {
        if m.len() != rows {
            return Err(self.err(name, format!("has {} rows, expected {rows}", m.len())));
        }
        for (i, row) in m.iter().enumerate() {
            if row.len() != cols {
                return Err(self.err(
                    format!("{name}[{i}]"),
                    format!("has {} entries, expected {cols}", row.len()),
                ));
            }
            for (j, &v) in row.iter().enumerate() {
                // The field's name is made only for an error.
                if !v.is_finite() || (non_negative && v < 0.0) {
                    self.number(&format!("{name}[{i}][{j}]"), v, non_negative)?;
                }
            }
        }
        Ok(())
    }
}

/// Expand `cfg.mam` (if any) into populations, projections, neuron
/// defaults and Poisson background; data files are named relative to
/// `base`, `origin` names the config in errors.
pub fn expand(cfg: &mut Config, base: &Path, origin: &str) -> Result<(), ConfigError> {
    let Some(m) = cfg.mam.take() else {
        return Ok(());
    };
    let cfg_err = |field: &str, message: String| ConfigError::Field {
        file: origin.to_string(),
        field: field.to_string(),
        message,
    };
    if !cfg.populations.is_empty() || !cfg.projections.is_empty() {
        return Err(cfg_err(
            "mam",
            "the multi-area model brings its own populations and projections; remove [[populations]] and [[projections]]".into(),
        ));
    }
    for (name, v) in [
        ("mam.cc_weights_factor", m.cc_weights_factor),
        ("mam.cc_weights_I_factor", m.cc_weights_I_factor),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(cfg_err(
                name,
                format!("must be a finite number >= 0, got {v}"),
            ));
        }
    }
    let spec_path = base.join(&m.spec);
    let sf = DataFile {
        file: spec_path.display().to_string(),
    };
    let spec: Spec = sf.read(&spec_path)?;
    let rates_path = base.join(&m.rates);
    let rf = DataFile {
        file: rates_path.display().to_string(),
    };
    let rates: Rates = rf.read(&rates_path)?;

    // Areas, populations and the population index.
    let names_ok = |what: &str, list: &[String]| -> Result<(), ConfigError> {
        if list.is_empty() {
            return Err(sf.err(what, "is empty"));
        }
        let mut seen = HashSet::new();
        for (i, n) in list.iter().enumerate() {
            if n.is_empty() || n.chars().any(|c| c.is_control() || "/., ".contains(c)) {
                return Err(sf.err(
                    format!("{what}[{i}]"),
                    format!("'{}' is not a valid name (non-empty, no '/', '.', ',', spaces or control characters)", n.escape_default()),
                ));
            }
            if !seen.insert(n.as_str()) {
                return Err(sf.err(format!("{what}[{i}]"), format!("duplicate '{n}'")));
            }
        }
        Ok(())
    };
    names_ok("areas", &spec.areas)?;
    names_ok("populations", &spec.populations)?;
    let area_idx = |s: &str| spec.areas.iter().position(|a| a == s);
    let pop_idx = |s: &str| spec.populations.iter().position(|p| p == s);
    let mut index = Vec::with_capacity(spec.population_index.len());
    let mut seen = HashSet::new();
    for (i, (a, p)) in spec.population_index.iter().enumerate() {
        let field = format!("population_index[{i}]");
        let ai = area_idx(a).ok_or_else(|| {
            sf.err(
                &field,
                format!("unknown area '{}' (not in 'areas')", a.escape_default()),
            )
        })?;
        let pi = pop_idx(p).ok_or_else(|| {
            sf.err(
                &field,
                format!(
                    "unknown population '{}' (not in 'populations')",
                    p.escape_default()
                ),
            )
        })?;
        if !seen.insert((ai, pi)) {
            return Err(sf.err(&field, format!("duplicate population {a} {p}")));
        }
        index.push((ai, pi));
    }
    let n = index.len();
    if n == 0 {
        return Err(sf.err("population_index", "is empty"));
    }
    sf.matrix("N", &spec.N, spec.areas.len(), spec.populations.len(), true)?;
    sf.matrix("K", &spec.K, n, n, true)?;
    if spec.K_ext.len() != n {
        return Err(sf.err(
            "K_ext",
            format!("has {} entries, expected {n}", spec.K_ext.len()),
        ));
    }
    for (i, &v) in spec.K_ext.iter().enumerate() {
        sf.number(&format!("K_ext[{i}]"), v, true)?;
    }
    sf.matrix("W_mean_ground", &spec.W_mean_ground, n, n, false)?;
    sf.matrix("W_sd_ground", &spec.W_sd_ground, n, n, true)?;
    sf.matrix("delay_mean", &spec.delay_mean, n, n, true)?;
    sf.matrix("delay_sd", &spec.delay_sd, n, n, true)?;
    let w_ext = sf.number("W_ext_pA", spec.W_ext_pA, false)?;
    let nu_ext = sf.number(
        "external_input.rate_per_input_Hz",
        spec.external_input.rate_per_input_Hz,
        true,
    )?;
    let d_ext = sf.number(
        "delays.poisson_input_delay_ms",
        spec.delays.poisson_input_delay_ms,
        true,
    )?;
    let v0_mean = sf.number("neuron.V0.mean_mV", spec.neuron.V0.mean_mV, false)?;
    let v0_sd = sf.number("neuron.V0.sd_mV", spec.neuron.V0.sd_mV, true)?;

    // Rates: every population of the model has one; every area and
    // population named is known (the model's absent populations, like TH's
    // layer 4, may be listed).
    for (a, pops) in &rates {
        if area_idx(a).is_none() {
            return Err(rf.err(
                a.escape_default().to_string(),
                "unknown area (not in the spec's 'areas')",
            ));
        }
        for (p, &r) in pops {
            let field = format!("{}.{}", a.escape_default(), p.escape_default());
            if p == "total" {
                continue;
            }
            if pop_idx(p).is_none() {
                return Err(rf.err(
                    field,
                    "unknown population (not in the spec's 'populations')",
                ));
            }
            rf.number(&field, r, true)?;
        }
    }
    let mut rate = Vec::with_capacity(n);
    for &(ai, pi) in &index {
        let (a, p) = (&spec.areas[ai], &spec.populations[pi]);
        let r = rates.get(a).and_then(|m| m.get(p)).ok_or_else(|| {
            rf.err(
                format!("{a}.{p}"),
                "missing: every population of the model needs its full-scale rate",
            )
        })?;
        rate.push(*r);
    }

    // Neuron parameters: the spec's, unless the config sets them.
    let d = &mut cfg.neuron_defaults;
    let s = &spec.neuron.params;
    d.model = d.model.take().or(Some(spec.neuron.model.clone()));
    macro_rules! fill {
        ($($f:ident),*) => {$( if d.$f.is_none() { d.$f = s.$f; } )*};
    }
    fill!(C_m, tau_m, tau_syn_ex, tau_syn_in, t_ref, E_L, V_th, V_reset, I_e);
    if cfg.poisson_background.is_none() {
        cfg.poisson_background = Some(PoissonBackground {
            rate_Hz: nu_ext,
            weight: w_ext,
            delay: d_ext,
            poisson_input: true,
        });
    }

    let name = |i: usize| {
        format!(
            "{}_{}",
            spec.areas[index[i].0], spec.populations[index[i].1]
        )
    };
    let size = |i: usize| spec.N[index[i].0][index[i].1];
    cfg.populations = (0..n)
        .map(|i| PopulationRaw {
            name: name(i),
            size: size(i),
            area: Some(spec.areas[index[i].0].clone()),
            scalable: true,
            params: NeuronParamsRaw::default(),
            V_m_init: Some(Distribution::Random(RandomDistribution::Normal {
                mean: v0_mean,
                std: v0_sd,
                min: None,
                max: None,
                bounds: Default::default(),
            })),
            K_ext: Some(spec.K_ext[i]),
            mean_rate_Hz: Some(rate[i]),
        })
        .collect();

    let chi = m.cc_weights_factor;
    let chi_i = m.cc_weights_I_factor;
    let dt = cfg.network.dt_ms;
    let mut projections = Vec::new();
    for i in 0..n {
        let target_inhibitory = spec.populations[index[i].1].ends_with('I');
        for j in 0..n {
            let k = spec.K[i][j];
            if k <= 0.0 {
                continue;
            }
            let (mut mean, mut sd) = (spec.W_mean_ground[i][j], spec.W_sd_ground[i][j]);
            if index[i].0 != index[j].0 {
                mean *= chi;
                sd *= chi;
                if target_inhibitory {
                    mean *= chi_i;
                    sd *= chi_i;
                }
            }
            let (min, max) = if mean >= 0.0 {
                (Some(0.0), None)
            } else {
                (None, Some(0.0))
            };
            projections.push(ProjectionRaw {
                name: None,
                source: name(j),
                target: name(i),
                rule: RuleName::FixedTotalNumber,
                indegree: None,
                N: Some(k * size(i)),
                connection_probability: None,
                p: None,
                allow_autapses: true,
                allow_multapses: true,
                weight: Some(Distribution::Random(RandomDistribution::Normal {
                    mean,
                    std: sd,
                    min,
                    max,
                    bounds: Default::default(),
                })),
                delay: Some(Distribution::Random(RandomDistribution::Normal {
                    mean: spec.delay_mean[i][j],
                    std: spec.delay_sd[i][j],
                    min: Some(dt),
                    max: None,
                    bounds: Default::default(),
                })),
                edges: None,
            });
        }
    }
    cfg.projections = projections;
    Ok(())
}

/// A parser message on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
