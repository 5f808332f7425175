//! The statistics against closed forms on synthetic spike trains: a Poisson
//! process (rate, CV = 1, Fano factor = 1, correlation = 0), regular trains
//! (CV = 0, exact rate), identical trains (correlation = 1), windows and
//! silent neurons, and the earth mover's distance of known distributions.

use snn_analysis::sampling::SplitMix64;
use snn_analysis::stats::{self, emd, population_stats, StatsOptions, Window};
use snn_analysis::SpikeTrains;

/// A Poisson train of `rate_hz` on `[0, t_ms)`.
fn poisson(rng: &mut SplitMix64, rate_hz: f64, t_ms: f64) -> Vec<f64> {
    let mut t = 0.0;
    let mut out = Vec::new();
    loop {
        let u = 1.0 - rng.next_f64(); // (0, 1]
        t += -u.ln() / rate_hz * 1000.0;
        if t >= t_ms {
            return out;
        }
        out.push(t);
    }
}

fn window(t_start: f64, t_stop: f64) -> Window {
    Window { t_start, t_stop }
}

#[test]
fn poisson_population_matches_closed_forms() {
    let (n, rate, t_ms) = (200, 20.0, 10_000.0);
    let mut rng = SplitMix64::new(42);
    let trains: Vec<Vec<f64>> = (0..n).map(|_| poisson(&mut rng, rate, t_ms)).collect();
    let st = SpikeTrains::from_trains(&trains);
    let s = population_stats("E", &st, window(0.0, t_ms), &StatsOptions::default());
    let p = &s.summary;
    assert_eq!(p.neurons, n as u64);
    let total: usize = trains.iter().map(Vec::len).sum();
    assert_eq!(p.spikes, total as u64);
    // Mean rate: sd of the estimate is sqrt(N r T) / (N T) = 0.1 Hz.
    let m = p.rate_mean_hz.unwrap();
    assert!((m - rate).abs() < 0.5, "rate {m}");
    assert!((m - total as f64 / (n as f64 * 10.0)).abs() < 1e-9);
    // sd over neurons: sqrt(r / T) = sqrt(2) Hz.
    let sd = p.rate_sd_hz.unwrap();
    assert!((sd - 2f64.sqrt()).abs() < 0.2, "rate sd {sd}");
    // CV of exponential ISIs = 1.
    let cv = p.cv_isi_mean.unwrap();
    assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
    assert_eq!(p.cv_isi_neurons, n as u64);
    // Population counts per 10 ms bin are Poisson: population Fano factor
    // 1 (estimate sd ~ sqrt(2 / 1000) = 0.045).
    let ff = p.fano_population.unwrap();
    assert!((ff - 1.0).abs() < 0.2, "fano_population {ff}");
    // The neurons' counts in 10 s are Poisson(200) each: Fano factor 1
    // (estimate sd ~ sqrt(2 / 200) = 0.1).
    let ff = p.fano_factor.unwrap();
    assert!((ff - 1.0).abs() < 0.4, "fano {ff}");
    // Independent trains: correlation 0 (mean over 200 pairs of 1000 bins:
    // sd ~ 0.0022).
    assert_eq!(p.pairs_sampled, 200);
    assert_eq!(p.correlation_pairs, 200);
    let c = p.correlation_mean.unwrap();
    assert!(c.abs() < 0.012, "correlation {c}");
    assert_eq!(s.rates.len(), n);
    assert_eq!(s.cvs.len(), n);
    assert_eq!(s.correlations.len(), 200);
}

#[test]
fn synchronous_population_has_large_fano_and_correlation() {
    // Every neuron fires in the same randomly chosen bins.
    let mut rng = SplitMix64::new(5);
    let common = poisson(&mut rng, 5.0, 10_000.0);
    let trains: Vec<Vec<f64>> = (0..50).map(|_| common.clone()).collect();
    let st = SpikeTrains::from_trains(&trains);
    let s = population_stats("S", &st, window(0.0, 10_000.0), &StatsOptions::default());
    assert!(
        s.summary.fano_population.unwrap() > 10.0,
        "{:?}",
        s.summary.fano_population
    );
    // Every neuron has the same count: no spread over neurons.
    assert_eq!(s.summary.fano_factor, Some(0.0));
    assert!((s.summary.correlation_mean.unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn regular_trains_have_cv_zero_and_exact_rates() {
    // Neuron 0: every 50 ms from 5 ms (20 Hz); neuron 1: every 100 ms (10 Hz);
    // neuron 2: silent; neuron 3: two spikes (1 ISI: no CV).
    let trains = vec![
        (0..20).map(|k| 5.0 + 50.0 * k as f64).collect::<Vec<_>>(),
        (0..10).map(|k| 100.0 * k as f64).collect(),
        vec![],
        vec![10.0, 20.0],
    ];
    let st = SpikeTrains::from_trains(&trains);
    let opts = StatsOptions {
        bin_ms: 10.0,
        pairs: 10,
        seed: 3,
    };
    let s = population_stats("R", &st, window(0.0, 1000.0), &opts);
    assert_eq!(s.rates, vec![20.0, 10.0, 0.0, 2.0]);
    assert_eq!(s.cvs, vec![0.0, 0.0]);
    let p = &s.summary;
    assert_eq!(p.spikes, 32);
    assert_eq!(p.silent_neurons, 1);
    assert_eq!(p.cv_isi_mean, Some(0.0));
    assert_eq!(p.cv_isi_neurons, 2);
    assert!((p.rate_mean_hz.unwrap() - 8.0).abs() < 1e-12);
    // sd (ddof = 0) of [20, 10, 0, 2]: sqrt(((12^2 + 2^2 + 8^2 + 6^2) / 4)) = sqrt(62).
    assert!((p.rate_sd_hz.unwrap() - 62f64.sqrt()).abs() < 1e-12);
    // All 6 pairs are taken; those with the silent neuron have no correlation.
    assert_eq!(p.pairs_sampled, 6);
    assert_eq!(p.correlation_pairs, 3);

    // A window: [100, 600) holds 10 spikes of neuron 0 and 5 of neuron 1.
    let s = population_stats("R", &st, window(100.0, 600.0), &opts);
    assert_eq!(s.rates, vec![20.0, 10.0, 0.0, 0.0]);
    assert_eq!(s.summary.spikes, 15);
}

#[test]
fn identical_trains_correlate_perfectly() {
    let mut rng = SplitMix64::new(9);
    let t = poisson(&mut rng, 15.0, 5_000.0);
    let st = SpikeTrains::from_trains(&[t.clone(), t]);
    let s = population_stats("P", &st, window(0.0, 5_000.0), &StatsOptions::default());
    assert_eq!(s.summary.pairs_sampled, 1);
    assert_eq!(s.correlations.len(), 1);
    assert!(
        (s.correlations[0] - 1.0).abs() < 1e-12,
        "{:?}",
        s.correlations
    );
    // And anti-correlated counts give -1.
    let a = [1u32, 0, 1, 0, 1, 0];
    let b = [0u32, 1, 0, 1, 0, 1];
    assert!((stats::pearson(&a, &b).unwrap() + 1.0).abs() < 1e-12);
    assert_eq!(stats::pearson(&a, &[0; 6]), None);
}

#[test]
fn pair_sampling_is_deterministic_and_seeded() {
    let mut rng = SplitMix64::new(1);
    let trains: Vec<Vec<f64>> = (0..100).map(|_| poisson(&mut rng, 10.0, 2_000.0)).collect();
    let st = SpikeTrains::from_trains(&trains);
    let w = window(0.0, 2_000.0);
    let o1 = StatsOptions {
        seed: 11,
        ..StatsOptions::default()
    };
    let a = population_stats("E", &st, w, &o1);
    let b = population_stats("E", &st, w, &o1);
    assert_eq!(a, b);
    let c = population_stats(
        "E",
        &st,
        w,
        &StatsOptions {
            seed: 12,
            ..StatsOptions::default()
        },
    );
    assert_ne!(a.correlations, c.correlations);
}

#[test]
fn emd_of_known_distributions() {
    assert_eq!(emd(&[0.0, 1.0], &[1.0, 2.0]), Some(1.0));
    // A shift by d moves every unit of mass by d.
    let a: Vec<f64> = (0..100).map(|i| i as f64 * 0.37).collect();
    let b: Vec<f64> = a.iter().map(|x| x + 2.5).collect();
    assert!((emd(&a, &b).unwrap() - 2.5).abs() < 1e-9);
    assert_eq!(emd(&a, &a), Some(0.0));
    // Symmetric; uniform{0, 1} vs point mass at 0.5: 0.5.
    assert_eq!(emd(&[0.0, 1.0], &[0.5]), Some(0.5));
    assert_eq!(emd(&[0.5], &[0.0, 1.0]), Some(0.5));
    // Different sample sizes: {0, 0, 1} vs {0, 1, 1, 1}: |2/3 - 1/4| = 5/12.
    assert!((emd(&[0.0, 0.0, 1.0], &[0.0, 1.0, 1.0, 1.0]).unwrap() - 5.0 / 12.0).abs() < 1e-12);
    assert_eq!(emd(&[], &[]), None);
}

#[test]
fn fano_factor_closed_forms() {
    assert_eq!(stats::fano_factor(&[3, 3, 3, 3]), Some(0.0));
    // counts 0, 2: mean 1, var 1.
    assert_eq!(stats::fano_factor(&[0, 2]), Some(1.0));
    assert_eq!(stats::fano_factor(&[0, 0]), None);
    // One count: no spread (Elephant's fanofactor of one train), and none
    // without counts.
    assert_eq!(stats::fano_factor(&[5]), Some(0.0));
    assert_eq!(stats::fano_factor(&[]), None);
}
