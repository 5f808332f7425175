//! Spike-train statistics.
//!
//! Definitions (the conventions of NEST's and NEST GPU's validation
//! analyses, i.e. of the `elephant` package with numpy defaults):
//!
//! * **Window**: spikes with `t_start <= t < t_stop`; a time within
//!   [`TIME_EPS_MS`] below a boundary counts as on it (spike times are
//!   multiples of dt and carry rounding error). `T = t_stop - t_start`.
//! * **Rate** of a neuron: spikes in the window / T, in Hz. Mean and standard
//!   deviation (population sd, ddof = 0) over *all* neurons of the
//!   population, silent ones included.
//! * **CV of ISI** of a neuron: sd / mean (ddof = 0) of its inter-spike
//!   intervals in the window; defined for neurons with at least 2 ISIs
//!   (3 spikes). The population value is the mean over those neurons.
//! * **Bins**: `floor(T / bin)` bins `[t_start + k bin, t_start + (k+1) bin)`;
//!   spikes after the last full bin are not binned.
//! * **Fano factor** (`fano_factor`, Elephant's `fanofactor`): var / mean
//!   (ddof = 0) of the neurons' spike counts in the window, over all neurons
//!   of the population (silent ones included). Undefined without neurons or
//!   spikes.
//! * **Population Fano factor** (`fano_population`, a synchrony measure):
//!   var / mean (ddof = 0) of the population's spike count (all neurons
//!   together) per bin: about 1 for independent Poisson neurons, large when
//!   they fire together. Undefined with fewer than 2 bins or no spikes.
//! * **Correlation**: Pearson's correlation coefficient of the binned spike
//!   counts of two distinct neurons, over randomly sampled pairs (see
//!   [`crate::sampling`]); a pair where either count vector is constant
//!   (e.g. a silent neuron) has no correlation and is left out of the mean.
//! * **EMD**: the earth mover's (Wasserstein-1) distance between two
//!   empirical distributions: the integral of `|F_a(x) - F_b(x)|`.

use serde::Serialize;

use crate::run::SpikeTrains;
use crate::sampling::{sample_pairs, stream_rng};

/// Tolerance (ms) for spike times on window and bin boundaries.
pub const TIME_EPS_MS: f64 = 1e-6;

/// The analysis window `[t_start, t_stop)` in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Start (ms, inclusive).
    pub t_start: f64,
    /// Stop (ms, exclusive).
    pub t_stop: f64,
}

impl Window {
    /// The duration in ms.
    pub fn duration_ms(&self) -> f64 {
        self.t_stop - self.t_start
    }

    /// The part of a sorted spike train inside the window.
    pub fn slice<'a>(&self, train: &'a [f64]) -> &'a [f64] {
        let lo = train.partition_point(|&t| t < self.t_start - TIME_EPS_MS);
        let hi = train.partition_point(|&t| t < self.t_stop - TIME_EPS_MS);
        &train[lo..hi.max(lo)]
    }

    /// The number of full bins of width `bin_ms`.
    pub fn n_bins(&self, bin_ms: f64) -> usize {
        let n = (self.duration_ms() / bin_ms + 1e-9).floor();
        if n.is_finite() && n > 0.0 {
            n as usize
        } else {
            0
        }
    }
}

/// Firing rate (Hz) of a train in the window.
pub fn rate_hz(train: &[f64], w: Window) -> f64 {
    w.slice(train).len() as f64 / (w.duration_ms() / 1000.0)
}

/// Mean and population standard deviation (ddof = 0); `None` if empty.
pub fn mean_sd(x: &[f64]) -> Option<(f64, f64)> {
    if x.is_empty() {
        return None;
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// CV of the inter-spike intervals of a sorted train (already windowed);
/// `None` with fewer than 2 ISIs or a zero mean ISI.
pub fn cv_isi(train: &[f64]) -> Option<f64> {
    if train.len() < 3 {
        return None;
    }
    let isi: Vec<f64> = train.windows(2).map(|p| p[1] - p[0]).collect();
    let (mean, sd) = mean_sd(&isi)?;
    (mean > 0.0).then(|| sd / mean)
}

/// Spike counts of a sorted train in the window's full bins of `bin_ms`.
pub fn bin_counts(train: &[f64], w: Window, bin_ms: f64) -> Vec<u32> {
    let n = w.n_bins(bin_ms);
    let mut c = vec![0u32; n];
    add_bin_counts(&mut c, train, w, bin_ms);
    c
}

/// Set `counts` (one entry per full bin) to the bin counts of a train.
pub fn fill_bin_counts(counts: &mut [u32], train: &[f64], w: Window, bin_ms: f64) {
    counts.fill(0);
    add_bin_counts(counts, train, w, bin_ms);
}

/// Add the bin counts of a train to `counts` (one entry per full bin).
pub fn add_bin_counts(counts: &mut [u32], train: &[f64], w: Window, bin_ms: f64) {
    for &t in w.slice(train) {
        let k = ((t - w.t_start) / bin_ms + TIME_EPS_MS / bin_ms).floor();
        if k >= 0.0 && (k as usize) < counts.len() {
            counts[k as usize] += 1;
        }
    }
}

/// Fano factor var / mean (ddof = 0) of counts; `None` when empty or with a
/// zero mean (one count gives 0, as Elephant's `fanofactor`). (The
/// arithmetic of [`mean_sd`], without a copy of the counts.)
pub fn fano_factor(counts: &[u32]) -> Option<f64> {
    if counts.is_empty() {
        return None;
    }
    let n = counts.len() as f64;
    let mean = counts.iter().map(|&c| c as f64).sum::<f64>() / n;
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean) * (c as f64 - mean))
        .sum::<f64>()
        / n;
    let sd = var.sqrt();
    (mean > 0.0).then(|| sd * sd / mean)
}

/// Pearson's correlation coefficient; `None` if the lengths differ, are
/// below 2, or either vector is constant.
pub fn pearson(a: &[u32], b: &[u32]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    Some((sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0))
}

/// Earth mover's (Wasserstein-1) distance between the empirical
/// distributions of `a` and `b` (non-finite values ignored); `None` if
/// either is empty.
pub fn emd(a: &[f64], b: &[f64]) -> Option<f64> {
    let mut a: Vec<f64> = a.iter().copied().filter(|v| v.is_finite()).collect();
    let mut b: Vec<f64> = b.iter().copied().filter(|v| v.is_finite()).collect();
    if a.is_empty() || b.is_empty() {
        return None;
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut x = a[0].min(b[0]);
    let mut d = 0.0;
    // Walk the merged support; between consecutive points the CDFs are flat.
    loop {
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(&p), Some(&q)) => p.min(q),
            (Some(&p), None) => p,
            (None, Some(&q)) => q,
            (None, None) => break,
        };
        d += (i as f64 / na - j as f64 / nb).abs() * (next - x);
        x = next;
    }
    Some(d)
}

/// Options of the population statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsOptions {
    /// Bin width (ms) for the population Fano factor and the correlations.
    pub bin_ms: f64,
    /// Number of neuron pairs sampled for the correlation.
    pub pairs: usize,
    /// Seed of the pair sampling.
    pub seed: u64,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            bin_ms: 10.0,
            pairs: 200,
            seed: 1,
        }
    }
}

/// The statistics of one population (the row of `stats.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PopulationSummary {
    /// Population name.
    pub name: String,
    /// Number of neurons.
    pub neurons: u64,
    /// Spikes in the window.
    pub spikes: u64,
    /// Neurons without a spike in the window.
    pub silent_neurons: u64,
    /// Mean firing rate over all neurons (Hz).
    pub rate_mean_hz: Option<f64>,
    /// Standard deviation of the firing rate over all neurons (Hz, ddof = 0).
    pub rate_sd_hz: Option<f64>,
    /// Mean CV of ISI over neurons with at least 2 ISIs.
    pub cv_isi_mean: Option<f64>,
    /// Number of neurons with at least 2 ISIs.
    pub cv_isi_neurons: u64,
    /// Fano factor of the neurons' spike counts in the window (Elephant's
    /// `fanofactor`).
    pub fano_factor: Option<f64>,
    /// Fano factor of the population's spike count per bin (a synchrony
    /// measure).
    pub fano_population: Option<f64>,
    /// Mean pairwise spike-count correlation over the valid sampled pairs.
    pub correlation_mean: Option<f64>,
    /// Number of sampled pairs with a defined correlation.
    pub correlation_pairs: u64,
    /// Number of pairs sampled.
    pub pairs_sampled: u64,
}

/// Statistics of one population with the per-neuron and per-pair values
/// behind them (for distributions, plots and comparisons).
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationStats {
    /// The summary numbers.
    pub summary: PopulationSummary,
    /// Rate of every neuron (Hz).
    pub rates: Vec<f64>,
    /// CV of ISI of every neuron with at least 2 ISIs.
    pub cvs: Vec<f64>,
    /// Correlation of every valid sampled pair.
    pub correlations: Vec<f64>,
    /// The valid sampled pairs (population-local neuron indices), in the
    /// order of `correlations`.
    pub correlation_pairs: Vec<(u64, u64)>,
}

/// Compute a population's statistics in a window. The pair sample depends
/// only on (`opts.seed`, `name`, population size), so two runs of the same
/// model are compared on the same pairs. Memory: three count vectors of
/// `w.n_bins(opts.bin_ms)` entries (the caller checks the bin count, see
/// [`crate::report::check_bins`]).
pub fn population_stats(
    name: &str,
    trains: &SpikeTrains,
    w: Window,
    opts: &StatsOptions,
) -> PopulationStats {
    let n = trains.n_neurons();
    let mut rates = Vec::with_capacity(n);
    let mut cvs = Vec::new();
    let mut spikes = 0u64;
    let mut silent = 0u64;
    let n_bins = w.n_bins(opts.bin_ms);
    let mut pop_counts = vec![0u32; n_bins];
    let mut neuron_counts = Vec::with_capacity(n);
    for i in 0..n {
        let tr = w.slice(trains.train(i));
        spikes += tr.len() as u64;
        neuron_counts.push(u32::try_from(tr.len()).unwrap_or(u32::MAX));
        if tr.is_empty() {
            silent += 1;
        }
        rates.push(tr.len() as f64 / (w.duration_ms() / 1000.0));
        if let Some(cv) = cv_isi(tr) {
            cvs.push(cv);
        }
        add_bin_counts(&mut pop_counts, tr, w, opts.bin_ms);
    }
    let rate = mean_sd(&rates);
    let mut rng = stream_rng(opts.seed, name);
    let pairs = sample_pairs(n as u64, opts.pairs, &mut rng);
    let mut correlations = Vec::with_capacity(pairs.len());
    let mut correlation_pairs = Vec::with_capacity(pairs.len());
    // Two neurons' counts at a time (not one vector per sampled neuron):
    // memory stays three count vectors whatever the number of pairs.
    let (mut ca, mut cb) = (vec![0u32; n_bins], vec![0u32; n_bins]);
    for &(a, b) in &pairs {
        fill_bin_counts(&mut ca, trains.train(a as usize), w, opts.bin_ms);
        fill_bin_counts(&mut cb, trains.train(b as usize), w, opts.bin_ms);
        if let Some(r) = pearson(&ca, &cb) {
            correlations.push(r);
            correlation_pairs.push((a, b));
        }
    }
    let summary = PopulationSummary {
        name: name.to_string(),
        neurons: n as u64,
        spikes,
        silent_neurons: silent,
        rate_mean_hz: rate.map(|r| r.0),
        rate_sd_hz: rate.map(|r| r.1),
        cv_isi_mean: mean_sd(&cvs).map(|m| m.0),
        cv_isi_neurons: cvs.len() as u64,
        fano_factor: fano_factor(&neuron_counts),
        fano_population: if n_bins >= 2 {
            fano_factor(&pop_counts)
        } else {
            None
        },
        correlation_mean: mean_sd(&correlations).map(|m| m.0),
        correlation_pairs: correlations.len() as u64,
        pairs_sampled: pairs.len() as u64,
    };
    PopulationStats {
        summary,
        rates,
        cvs,
        correlations,
        correlation_pairs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emd_small_cases() {
        assert_eq!(emd(&[0.0, 1.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(emd(&[0.0], &[5.0]), Some(5.0));
        assert_eq!(emd(&[3.0, 1.0, 2.0], &[2.0, 3.0, 1.0]), Some(0.0));
        assert_eq!(emd(&[], &[1.0]), None);
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5
        assert!((emd(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]).unwrap() - 5.0).abs() < 1e-12);
        // scipy.stats.wasserstein_distance([0, 1], [0, 0, 0, 1]) == 0.25
        assert!((emd(&[0.0, 1.0], &[0.0, 0.0, 0.0, 1.0]).unwrap() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn window_boundaries() {
        let w = Window {
            t_start: 10.0,
            t_stop: 20.0,
        };
        let tr = [9.0, 10.0 - 1e-9, 10.0, 15.0, 20.0 - 1e-9, 20.0, 25.0];
        assert_eq!(w.slice(&tr), &[10.0 - 1e-9, 10.0, 15.0]);
        assert_eq!(w.n_bins(3.0), 3);
        assert_eq!(w.n_bins(0.1), 100);
        assert_eq!(
            bin_counts(&[10.0, 12.999_999_999, 13.0, 19.5], w, 3.0),
            vec![1, 2, 0]
        );
    }
}
