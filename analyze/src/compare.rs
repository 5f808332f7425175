//! `snn-analyze compare RUN_A RUN_B`: per-population differences of the
//! mean statistics and earth mover's distances between the distributions of
//! per-neuron rates, per-neuron CVs and pairwise correlations (the
//! statistics used to validate GPU simulators against NEST). The runs are
//! read one population at a time, as `snn-analyze` reads one run.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::AnalyzeError;
use crate::report::{check_bins, check_stats_options, resolve_window};
use crate::run::{open_run, read_summary, PopulationSpikeData, Run, RunFiles};
use crate::stats::Window;
use crate::stats::{emd, population_stats, PopulationStats, StatsOptions};

/// Options of [`compare_runs`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// The first (reference) run.
    pub run_a: PathBuf,
    /// The second run.
    pub run_b: PathBuf,
    /// Start of the analysis window (ms); default: each run's start.
    pub t_start: Option<f64>,
    /// End of the analysis window (ms); default: each run's end.
    pub t_stop: Option<f64>,
    /// Statistics options; the same pairs are sampled in both runs.
    pub stats: StatsOptions,
    /// Tolerances of the statistics; with any set, the verdict is whether
    /// the runs agree within them ([`Comparison::beyond_tolerance`]).
    pub tolerances: Tolerances,
}

/// How far two runs' statistics may differ (`compare --rate-rtol` ...);
/// each unset one is not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tolerances {
    /// |rate B - rate A| <= rtol * |rate A| (mean rates).
    pub rate_rtol: Option<f64>,
    /// |CV B - CV A| <= atol (mean CV ISI).
    pub cv_atol: Option<f64>,
    /// |corr B - corr A| <= atol (mean correlation).
    pub corr_atol: Option<f64>,
    /// EMD between the per-neuron rate distributions <= this (Hz).
    pub emd_rate_max: Option<f64>,
    /// EMD between the per-neuron CV distributions <= this.
    pub emd_cv_max: Option<f64>,
    /// EMD between the correlation distributions <= this.
    pub emd_corr_max: Option<f64>,
}

impl Tolerances {
    /// The tolerances with their option names.
    fn named(&self) -> [(&'static str, Option<f64>); 6] {
        [
            ("--rate-rtol", self.rate_rtol),
            ("--cv-atol", self.cv_atol),
            ("--corr-atol", self.corr_atol),
            ("--emd-rate-max", self.emd_rate_max),
            ("--emd-cv-max", self.emd_cv_max),
            ("--emd-corr-max", self.emd_corr_max),
        ]
    }

    /// Whether any tolerance is set.
    pub fn any(&self) -> bool {
        self.named().iter().any(|(_, v)| v.is_some())
    }

    /// Every set tolerance must be a finite number >= 0.
    pub fn check(&self) -> Result<(), AnalyzeError> {
        for (name, v) in self.named() {
            if let Some(x) = v {
                if !(x.is_finite() && x >= 0.0) {
                    return Err(AnalyzeError::Usage(format!(
                        "{name} must be a finite number >= 0, got {x}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The violations of these tolerances in `c`, one line each: a
    /// statistic beyond its tolerance, one that only one run has, or a
    /// population that only one run recorded.
    pub fn violations(&self, c: &Comparison) -> Vec<String> {
        let mut out = Vec::new();
        for n in &c.only_in_a {
            out.push(format!("{n}: recorded only in A"));
        }
        for n in &c.only_in_b {
            out.push(format!("{n}: recorded only in B"));
        }
        for p in &c.populations {
            let mut check = |what: &str,
                             a: Option<f64>,
                             b: Option<f64>,
                             limit: Option<f64>,
                             rel: bool| {
                let Some(limit) = limit else { return };
                match (a, b) {
                    (Some(a), Some(b)) => {
                        let d = (b - a).abs();
                        let bound = if rel { limit * a.abs() } else { limit };
                        if d > bound || d.is_nan() {
                            out.push(format!(
                                "{}: {what} differs by {d:.6} (A {a:.6}, B {b:.6}; allowed {bound:.6})",
                                p.name
                            ));
                        }
                    }
                    (None, None) => {}
                    _ => out.push(format!("{}: {what} exists in only one run", p.name)),
                }
            };
            check(
                "mean rate (Hz)",
                p.rate_mean_a,
                p.rate_mean_b,
                self.rate_rtol,
                true,
            );
            check(
                "mean CV ISI",
                p.cv_isi_mean_a,
                p.cv_isi_mean_b,
                self.cv_atol,
                false,
            );
            check(
                "mean correlation",
                p.correlation_mean_a,
                p.correlation_mean_b,
                self.corr_atol,
                false,
            );
            // An EMD exists where both runs have the distribution (the
            // means above tell when only one has it).
            for (what, emd, limit) in [
                ("EMD of rates (Hz)", p.emd_rate, self.emd_rate_max),
                ("EMD of CVs", p.emd_cv_isi, self.emd_cv_max),
                ("EMD of correlations", p.emd_correlation, self.emd_corr_max),
            ] {
                if let (Some(e), Some(l)) = (emd, limit) {
                    if e > l || e.is_nan() {
                        out.push(format!("{}: {what} is {e:.6} (allowed {l:.6})", p.name));
                    }
                }
            }
        }
        out
    }
}

/// The comparison of one population (differences are B - A).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PopulationComparison {
    /// Population name.
    pub name: String,
    /// Mean rate of run A (Hz).
    pub rate_mean_a: Option<f64>,
    /// Mean rate of run B (Hz).
    pub rate_mean_b: Option<f64>,
    /// B - A of the mean rate (Hz).
    pub rate_mean_diff: Option<f64>,
    /// Mean CV ISI of run A.
    pub cv_isi_mean_a: Option<f64>,
    /// Mean CV ISI of run B.
    pub cv_isi_mean_b: Option<f64>,
    /// B - A of the mean CV ISI.
    pub cv_isi_mean_diff: Option<f64>,
    /// Mean correlation of run A.
    pub correlation_mean_a: Option<f64>,
    /// Mean correlation of run B.
    pub correlation_mean_b: Option<f64>,
    /// B - A of the mean correlation.
    pub correlation_mean_diff: Option<f64>,
    /// EMD between the per-neuron rate distributions (Hz).
    pub emd_rate: Option<f64>,
    /// EMD between the per-neuron CV ISI distributions.
    pub emd_cv_isi: Option<f64>,
    /// EMD between the pairwise correlation distributions.
    pub emd_correlation: Option<f64>,
}

/// The result of [`compare_runs`] (also its `--json` output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Run A.
    pub run_a: String,
    /// Run B.
    pub run_b: String,
    /// Analysis window of run A (ms).
    pub window_a_ms: [f64; 2],
    /// Analysis window of run B (ms).
    pub window_b_ms: [f64; 2],
    /// Bin width (ms).
    pub bin_ms: f64,
    /// Pairs requested per population.
    pub pairs: usize,
    /// Sampling seed.
    pub seed: u64,
    /// Populations recorded in both runs, in run A's order.
    pub populations: Vec<PopulationComparison>,
    /// Populations recorded only in run A.
    pub only_in_a: Vec<String>,
    /// Populations recorded only in run B.
    pub only_in_b: Vec<String>,
    /// Whether the two runs recorded exactly the same spikes: the same
    /// populations, and every neuron's spike times equal bit for bit (the
    /// whole recording, not only the analysis window). What the determinism
    /// contract promises across rank counts, backends and resumes.
    pub identical: bool,
    /// The first difference found, when not identical.
    pub first_difference: Option<String>,
    /// With tolerances given: what lies beyond them (empty: the runs agree
    /// within them); `None` without tolerances.
    pub beyond_tolerance: Option<Vec<String>>,
}

/// The first difference between the recorded spikes of two runs, or `None`
/// when they are identical bit for bit (see [`Comparison::identical`]).
pub fn first_spike_difference(a: &Run, b: &Run) -> Option<String> {
    let names =
        |r: &Run| -> Vec<String> { r.populations.iter().map(|p| p.info.name.clone()).collect() };
    if names(a) != names(b) {
        return Some(format!(
            "recorded populations differ: {:?} vs {:?}",
            names(a),
            names(b)
        ));
    }
    a.populations
        .iter()
        .zip(&b.populations)
        .find_map(|(pa, pb)| trains_difference(pa, pb))
}

/// The first spike in which two runs' spikes of one population differ
/// (neuron by neuron, bit for bit), if any.
fn trains_difference(pa: &PopulationSpikeData, pb: &PopulationSpikeData) -> Option<String> {
    let (ta, tb) = (&pa.trains, &pb.trains);
    if ta.n_neurons() != tb.n_neurons() {
        return Some(format!(
            "{}: {} vs {} neurons",
            pa.info.name,
            ta.n_neurons(),
            tb.n_neurons()
        ));
    }
    for i in 0..ta.n_neurons() {
        let (x, y) = (ta.train(i), tb.train(i));
        let same = x.len() == y.len() && x.iter().zip(y).all(|(u, v)| u.to_bits() == v.to_bits());
        if !same {
            let k = x
                .iter()
                .zip(y)
                .position(|(u, v)| u.to_bits() != v.to_bits())
                .unwrap_or(x.len().min(y.len()));
            return Some(format!(
                "{} neuron {i}: spike {k} is {:?} ms vs {:?} ms ({} vs {} spikes)",
                pa.info.name,
                x.get(k),
                y.get(k),
                x.len(),
                y.len()
            ));
        }
    }
    None
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

/// Compare two populations' statistics.
pub fn compare_populations(a: &PopulationStats, b: &PopulationStats) -> PopulationComparison {
    let (sa, sb) = (&a.summary, &b.summary);
    PopulationComparison {
        name: sa.name.clone(),
        rate_mean_a: sa.rate_mean_hz,
        rate_mean_b: sb.rate_mean_hz,
        rate_mean_diff: diff(sa.rate_mean_hz, sb.rate_mean_hz),
        cv_isi_mean_a: sa.cv_isi_mean,
        cv_isi_mean_b: sb.cv_isi_mean,
        cv_isi_mean_diff: diff(sa.cv_isi_mean, sb.cv_isi_mean),
        correlation_mean_a: sa.correlation_mean,
        correlation_mean_b: sb.correlation_mean,
        correlation_mean_diff: diff(sa.correlation_mean, sb.correlation_mean),
        emd_rate: emd(&a.rates, &b.rates),
        emd_cv_isi: emd(&a.cvs, &b.cvs),
        emd_correlation: emd(&a.correlations, &b.correlations),
    }
}

/// The analysis window of run directory `dir` under `o`, checked (with
/// its bins) from its `summary.json` before any spike is read.
fn checked_window(dir: &std::path::Path, o: &CompareOptions) -> Result<Window, AnalyzeError> {
    let summary_path = dir.join("summary.json");
    let summary = read_summary(dir)?;
    let w = resolve_window(&summary, &summary_path, o.t_start, o.t_stop)?;
    let sizes: Vec<u64> = summary.populations.iter().map(|p| p.size).collect();
    let whole_run = o.t_start.is_none() && o.t_stop.is_none();
    check_bins(w, &o.stats, &sizes, &summary_path, whole_run)?;
    Ok(w)
}

/// Load and compare two runs.
pub fn compare_runs(o: &CompareOptions) -> Result<Comparison, AnalyzeError> {
    check_stats_options(&o.stats)?;
    o.tolerances.check()?;
    let wa = checked_window(&o.run_a, o)?;
    let wb = checked_window(&o.run_b, o)?;
    // One population of each run at a time (each with half the memory
    // available): read, compared, dropped.
    let (run_a, run_b) = (open_run(&o.run_a)?, open_run(&o.run_b)?);
    let recorded = |r: &RunFiles| -> Vec<(usize, String)> {
        (0..r.spikes.len())
            .filter(|&p| r.spikes[p].is_some())
            .map(|p| (p, r.summary.populations[p].name.clone()))
            .collect()
    };
    let (rec_a, rec_b) = (recorded(&run_a), recorded(&run_b));
    let names =
        |rec: &[(usize, String)]| -> Vec<String> { rec.iter().map(|(_, n)| n.clone()).collect() };
    let mut first_difference = (names(&rec_a) != names(&rec_b)).then(|| {
        format!(
            "recorded populations differ: {:?} vs {:?}",
            names(&rec_a),
            names(&rec_b)
        )
    });
    let mut populations = Vec::new();
    let mut only_in_a = Vec::new();
    for (pa, name) in &rec_a {
        let Some((pb, _)) = rec_b.iter().find(|(_, n)| n == name) else {
            only_in_a.push(name.clone());
            continue;
        };
        let (Some(a), Some(b)) = (
            run_a.population(*pa, run_a.max_spikes / 2)?,
            run_b.population(*pb, run_b.max_spikes / 2)?,
        ) else {
            continue;
        };
        if first_difference.is_none() {
            first_difference = trains_difference(&a, &b);
        }
        populations.push(compare_populations(
            &population_stats(name, &a.trains, wa, &o.stats),
            &population_stats(name, &b.trains, wb, &o.stats),
        ));
    }
    let only_in_b = rec_b
        .iter()
        .filter(|(_, n)| !rec_a.iter().any(|(_, m)| m == n))
        .map(|(_, n)| n.clone())
        .collect();
    if populations.is_empty() {
        return Err(AnalyzeError::Usage(format!(
            "{} and {} have no recorded population in common",
            o.run_a.display(),
            o.run_b.display()
        )));
    }
    Ok(Comparison {
        run_a: o.run_a.display().to_string(),
        run_b: o.run_b.display().to_string(),
        window_a_ms: [wa.t_start, wa.t_stop],
        window_b_ms: [wb.t_start, wb.t_stop],
        bin_ms: o.stats.bin_ms,
        pairs: o.stats.pairs,
        seed: o.stats.seed,
        populations,
        only_in_a,
        only_in_b,
        identical: first_difference.is_none(),
        first_difference,
        beyond_tolerance: None,
    })
    .map(|mut c| {
        if o.tolerances.any() {
            c.beyond_tolerance = Some(o.tolerances.violations(&c));
        }
        c
    })
}

fn f(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

fn signed(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:+.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// The comparison as a text table (differences are B - A).
pub fn format_comparison(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "A: {}  [{}, {}) ms",
        c.run_a, c.window_a_ms[0], c.window_a_ms[1]
    );
    let _ = writeln!(
        s,
        "B: {}  [{}, {}) ms",
        c.run_b, c.window_b_ms[0], c.window_b_ms[1]
    );
    let _ = writeln!(
        s,
        "{:<12} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "population",
        "rate_A",
        "rate_B",
        "d_rate",
        "cv_A",
        "cv_B",
        "d_cv",
        "corr_A",
        "corr_B",
        "d_corr",
        "emd_rate",
        "emd_cv",
        "emd_corr"
    );
    for p in &c.populations {
        let _ = writeln!(
            s,
            "{:<12} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}",
            p.name,
            f(p.rate_mean_a, 3),
            f(p.rate_mean_b, 3),
            signed(p.rate_mean_diff, 3),
            f(p.cv_isi_mean_a, 3),
            f(p.cv_isi_mean_b, 3),
            signed(p.cv_isi_mean_diff, 3),
            f(p.correlation_mean_a, 4),
            f(p.correlation_mean_b, 4),
            signed(p.correlation_mean_diff, 4),
            f(p.emd_rate, 4),
            f(p.emd_cv_isi, 4),
            f(p.emd_correlation, 4)
        );
    }
    for n in &c.only_in_a {
        let _ = writeln!(s, "note: population {n} is recorded only in A");
    }
    for n in &c.only_in_b {
        let _ = writeln!(s, "note: population {n} is recorded only in B");
    }
    match &c.first_difference {
        None => {
            let _ = writeln!(s, "spikes: identical (every spike time equal bit for bit)");
        }
        Some(d) => {
            let _ = writeln!(s, "spikes: differ; first difference: {d}");
        }
    }
    match &c.beyond_tolerance {
        None => {}
        Some(v) if v.is_empty() => {
            let _ = writeln!(s, "statistics: within the tolerances");
        }
        Some(v) => {
            for line in v {
                let _ = writeln!(s, "beyond tolerance: {line}");
            }
        }
    }
    s
}
