//! Connection rules and distributions against closed-form expectations.

use snn_test_support::net as common;

use std::collections::{HashMap, HashSet};

use common::{build, config_text, synapses, weight_pa, Syn};

fn net(body: &str) -> (tempfile::TempDir, Vec<Syn>, std::path::PathBuf) {
    let text = format!(
        r#"
[network]
name = "t"
seed = 99
[[populations]]
name = "S"
size = 400
[[populations]]
name = "T"
size = 600
{body}
"#
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("net");
    build(&config_text(&text, &[]), &d, 2, 2);
    let syn = synapses(&d);
    (tmp, syn, d)
}

/// Standard normal CDF (Abramowitz & Stegun 26.2.17, |error| < 7.5e-8).
fn phi_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.2316419 * x.abs());
    let poly = t
        * (0.319381530
            + t * (-0.356563782 + t * (1.781477937 + t * (-1.821255978 + t * 1.330274429))));
    let tail = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt() * poly;
    if x >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

fn phi_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (
        m,
        x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0),
    )
}

const S0: u64 = 0; // first id of S
const T0: u64 = 400; // first id of T

#[test]
fn fixed_indegree_without_multapses_or_autapses() {
    let (_t, syn, _) = net(r#"[[projections]]
source = "T"
target = "T"
rule = "fixed_indegree"
indegree = 50
allow_autapses = false
allow_multapses = false
weight = 1.0
delay = 1.0"#);
    let mut per_target: HashMap<u64, Vec<u64>> = HashMap::new();
    for &(s, t, _, _) in &syn {
        per_target.entry(t).or_default().push(s);
    }
    assert_eq!(per_target.len(), 600);
    for (t, srcs) in per_target {
        assert_eq!(srcs.len(), 50, "target {t}");
        let distinct: HashSet<_> = srcs.iter().collect();
        assert_eq!(distinct.len(), 50, "multapse at target {t}");
        assert!(!srcs.contains(&t), "autapse at {t}");
        assert!(srcs.iter().all(|&s| (T0..T0 + 600).contains(&s)));
    }
}

#[test]
fn fixed_indegree_with_multapses_is_uniform() {
    let (_t, syn, _) = net(r#"[[projections]]
source = "S"
target = "T"
rule = "fixed_indegree"
indegree = 200
weight = 1.0
delay = 1.0"#);
    assert_eq!(syn.len(), 600 * 200);
    let mut per_target: HashMap<u64, usize> = HashMap::new();
    let mut out_deg = vec![0f64; 400];
    for &(s, t, _, _) in &syn {
        *per_target.entry(t).or_default() += 1;
        out_deg[(s - S0) as usize] += 1.0;
    }
    assert!(per_target.values().all(|&k| k == 200));
    // Out-degrees ~ Binomial(120000, 1/400): mean 300, var ~299.25.
    let (m, v) = mean_var(&out_deg);
    assert!((m - 300.0).abs() < 1e-9);
    assert!(
        (v - 299.25).abs() < 5.0 * 299.25 * (2.0f64 / 399.0).sqrt(),
        "variance {v}"
    );
    // Multapses happen at the expected rate: per target, expected duplicate
    // pairs C(200,2)/400 = 49.75.
    let mut dup = 0usize;
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    for &(s, t, _, _) in &syn {
        let c = seen.entry((s, t)).or_default();
        dup += *c;
        *c += 1;
    }
    let expected = 600.0 * 49.75;
    assert!(
        (dup as f64 - expected).abs() < 5.0 * expected.sqrt(),
        "duplicate pairs {dup}"
    );
}

#[test]
fn fixed_total_number_is_exact_and_multinomial() {
    let (_t, syn, _) = net(r#"[[projections]]
source = "T"
target = "T"
rule = "fixed_total_number"
N = 60000
allow_autapses = false
weight = 1.0
delay = 1.0"#);
    assert_eq!(syn.len(), 60000);
    assert!(syn.iter().all(|&(s, t, _, _)| s != t));
    let mut indeg = vec![0f64; 600];
    let mut outdeg = vec![0f64; 600];
    for &(s, t, _, _) in &syn {
        indeg[(t - T0) as usize] += 1.0;
        outdeg[(s - T0) as usize] += 1.0;
    }
    // Multinomial in-degrees: mean 100, variance N p (1-p) = 99.833.
    let var_expected = 60000.0 / 600.0 * (1.0 - 1.0 / 600.0);
    let se = var_expected * (2.0f64 / 599.0).sqrt();
    for (name, x) in [("in", &indeg), ("out", &outdeg)] {
        let (m, v) = mean_var(x);
        assert!((m - 100.0).abs() < 1e-9);
        assert!(
            (v - var_expected).abs() < 5.0 * se,
            "{name}-degree variance {v}"
        );
    }
    // Neighbouring targets are not correlated by the split tree.
    let n = 599.0;
    let (m, v) = mean_var(&indeg);
    let cov: f64 = indeg
        .windows(2)
        .map(|w| (w[0] - m) * (w[1] - m))
        .sum::<f64>()
        / n;
    assert!(
        (cov / v).abs() < 5.0 / n.sqrt(),
        "lag-1 correlation {}",
        cov / v
    );
}

#[test]
fn pairwise_bernoulli_count_and_no_duplicates() {
    let (_t, syn, _) = net(r#"[[projections]]
source = "T"
target = "T"
rule = "pairwise_bernoulli"
p = 0.05
allow_autapses = false
weight = 1.0
delay = 1.0"#);
    let trials = 600.0 * 599.0;
    let mean = trials * 0.05;
    let sd = (trials * 0.05 * 0.95f64).sqrt();
    assert!(
        (syn.len() as f64 - mean).abs() < 5.0 * sd,
        "{} synapses",
        syn.len()
    );
    let set: HashSet<(u64, u64)> = syn.iter().map(|&(s, t, _, _)| (s, t)).collect();
    assert_eq!(set.len(), syn.len(), "pairwise_bernoulli made a multapse");
    assert!(syn.iter().all(|&(s, t, _, _)| s != t));
    // Sources uniform: chi-square over 600 sources.
    let mut out = vec![0f64; 600];
    for &(s, _, _, _) in &syn {
        out[(s - T0) as usize] += 1.0;
    }
    let e = syn.len() as f64 / 600.0;
    let chi2: f64 = out.iter().map(|o| (o - e) * (o - e) / e).sum();
    // df = 599: mean 599, sd ~34.6.
    assert!((chi2 - 599.0).abs() < 6.0 * 34.6, "chi2 {chi2}");
}

#[test]
fn one_to_one_and_all_to_all_are_exact() {
    let (_t, syn, _) = net(r#"[[populations]]
name = "U"
size = 400
[[projections]]
source = "S"
target = "U"
rule = "one_to_one"
weight = 1.0
delay = 1.0
[[projections]]
source = "S"
target = "S"
rule = "all_to_all"
allow_autapses = false
weight = 2.0
delay = 1.0"#);
    let u0 = 1000u64;
    let one: Vec<_> = syn.iter().filter(|x| x.1 >= u0).collect();
    assert_eq!(one.len(), 400);
    assert!(one.iter().all(|&&(s, t, _, _)| t - u0 == s - S0));
    let all: HashSet<(u64, u64)> = syn
        .iter()
        .filter(|x| x.1 < T0)
        .map(|x| (x.0, x.1))
        .collect();
    assert_eq!(all.len(), 400 * 399);
    assert_eq!(syn.len(), 400 + 400 * 399);
}

#[test]
fn weight_and_delay_distributions() {
    let (_t, syn, d) = net(r#"[[projections]]
source = "S"
target = "T"
rule = "fixed_indegree"
indegree = 100
weight = { distribution = "normal", mean = 20.0, std = 20.0, min = 0.0 }
delay = { distribution = "normal", mean = 1.5, std = 0.75, min = 0.05 }
[[projections]]
source = "T"
target = "T"
rule = "fixed_indegree"
indegree = 100
weight = { distribution = "normal", mean = -10.0, std = 10.0, max = -5.0, bounds = "clip" }
delay = { distribution = "uniform", min = 0.1, max = 4.0 }"#);
    let (a, b): (Vec<Syn>, Vec<Syn>) = syn.into_iter().partition(|x| x.0 < T0);
    // Redrawn normal truncated below at 0: mean mu + sigma phi(alpha) / (1 - Phi(alpha)).
    let w: Vec<f64> = a.iter().map(|x| weight_pa(&d, x.2)).collect();
    assert!(w.iter().all(|&x| x >= 0.0));
    let alpha = -1.0;
    let m_exp = 20.0 + 20.0 * phi_pdf(alpha) / (1.0 - phi_cdf(alpha));
    let (m, v) = mean_var(&w);
    assert!(
        (m - m_exp).abs() < 5.0 * (v / w.len() as f64).sqrt(),
        "truncated mean {m} vs {m_exp}"
    );
    // Delays: normal(1.5, 0.75) redrawn below 0.05 ms, rounded to 0.1 ms
    // steps: P(steps == 15) = P(1.45 <= x < 1.55) / P(x >= 0.05).
    let p15 = (phi_cdf(0.05 / 0.75) - phi_cdf(-0.05 / 0.75)) / (1.0 - phi_cdf(-1.45 / 0.75));
    let n15 = a.iter().filter(|x| x.3 == 15).count() as f64;
    let n = a.len() as f64;
    assert!(
        (n15 / n - p15).abs() < 5.0 * (p15 * (1.0 - p15) / n).sqrt(),
        "P(15 steps) {}",
        n15 / n
    );
    assert!(a.iter().all(|x| x.3 >= 1));
    // Clipped normal: mass at the bound -5 is 1 - Phi(0.5).
    let w2: Vec<f64> = b.iter().map(|x| weight_pa(&d, x.2)).collect();
    assert!(w2.iter().all(|&x| x <= -5.0));
    let at = w2.iter().filter(|&&x| x == -5.0).count() as f64 / w2.len() as f64;
    let p_at = 1.0 - phi_cdf(0.5);
    assert!(
        (at - p_at).abs() < 5.0 * (p_at * (1.0 - p_at) / w2.len() as f64).sqrt(),
        "clip mass {at}"
    );
    // Uniform delays on [0.1, 4.0) ms round to 1..=40 steps; 2..=39 equally likely.
    assert!(b.iter().all(|x| (1..=40).contains(&x.3)));
    let n20 = b.iter().filter(|x| x.3 == 20).count() as f64 / b.len() as f64;
    let p20 = 0.1 / 3.9;
    assert!((n20 - p20).abs() < 5.0 * (p20 * (1.0 - p20) / b.len() as f64).sqrt());
}
