//! Goodness of fit of the discrete samplers in `detmath` against exact pmfs
//! computed independently here (fixed seeds: deterministic).

mod common;

use common::*;
use snn_kernels::detmath::{self, GEOMETRIC_SKIP_MAX};
use snn_kernels::{CounterRng, Purpose};

/// Seed of all streams in this file.
const SEED: u64 = 0x0123_4567_89ab_cdef;

/// `count` samples, sample `i` from its own stream `(case, i, 0)`, like the
/// network builder does.
fn sample(case: u32, count: u32, mut f: impl FnMut(&mut CounterRng) -> u64) -> Vec<u64> {
    (0..count)
        .map(|i| {
            f(&mut CounterRng::new(
                SEED,
                Purpose::TotalNumberSplit,
                case,
                i,
                0,
            ))
        })
        .collect()
}

#[test]
fn binomial_matches_pmf() {
    let cases: [(u64, f64, u32); 13] = [
        (10, 0.3, 200_000),
        (30, 0.45, 200_000),
        (1000, 0.01, 200_000),
        (100, 0.139, 200_000),          // mean 13.9: inversion
        (28, 0.5, 200_000),             // mean 14: BTRD at its smallest
        (1000, 0.5, 400_000),           // BTRD
        (1000, 0.7, 200_000),           // via symmetry
        (200, 0.93, 200_000),           // symmetry into inversion
        (1_000_000, 0.37, 400_000),     // BTRD
        (50_000_000, 0.5, 400_000),     // BTRD, large
        (1 << 50, 1e-14, 200_000),      // huge n, small mean: inversion
        (1 << 53, 0.25, 200_000),       // huge n and mean: BTRD
        (3_000_000_000, 2e-8, 200_000), // mean 60, tiny p
    ];
    for (case, &(n, p, count)) in cases.iter().enumerate() {
        let xs = sample(case as u32, count, |r| detmath::binomial(r, n, p));
        assert!(xs.iter().all(|&x| x <= n));
        let what = format!("binomial({n}, {p})");
        let (nf, q) = (n as f64, 1.0 - p);
        let sd = (nf * p * q).sqrt();
        if sd < 1e5 {
            let (lo, probs) = binomial_pmf(n, p);
            check_discrete(&what, &xs, lo, &probs);
        } else {
            // A pmf table would be too long; at this size the normal
            // approximation (error ~ skewness / sd < 1e-7) is far below what
            // a KS test on these samples resolves.
            let mean = nf * p;
            let mut z: Vec<f64> = xs.iter().map(|&x| (x as f64 + 0.5 - mean) / sd).collect();
            let ks = ks_scaled(&mut z, normal_cdf);
            assert!(ks < ks_critical(), "{what}: KS sqrt(n) D = {ks}");
            let var = nf * p * q;
            let m4 = var * (1.0 + 3.0 * p * q * (nf - 2.0));
            check_moments(&what, &xs, (mean, var, m4));
        }
    }
}

#[test]
fn binomial_edge_cases() {
    let mut r = CounterRng::new(SEED, Purpose::TotalNumberSplit, 99, 0, 0);
    let probe = r.clone();
    assert_eq!(detmath::binomial(&mut r, 0, 0.5), 0);
    assert_eq!(detmath::binomial(&mut r, 10, 0.0), 0);
    assert_eq!(detmath::binomial(&mut r, 10, -1.0), 0);
    assert_eq!(detmath::binomial(&mut r, 10, f64::NAN), 0);
    assert_eq!(detmath::binomial(&mut r, 10, 1.0), 10);
    assert_eq!(detmath::binomial(&mut r, u64::MAX, 1.0), u64::MAX);
    // None of these read the stream.
    assert_eq!(r.clone().next_u64(), probe.clone().next_u64());
    // Tiny and extreme probabilities.
    for i in 0..1000 {
        let mut r = CounterRng::new(SEED, Purpose::TotalNumberSplit, 98, i, 0);
        assert!(detmath::binomial(&mut r, 1, 0.5) <= 1);
        assert!(detmath::binomial(&mut r, 5, 1e-300) <= 5);
        assert!(detmath::binomial(&mut r, 5, 1.0 - 1e-16) <= 5);
        assert!(detmath::binomial(&mut r, 1 << 53, 0.5) <= 1 << 53);
    }
}

#[test]
fn binomial_is_a_pure_function_of_the_stream() {
    for (n, p) in [(10u64, 0.3), (1000, 0.5), (50_000_000, 0.2), (1000, 0.9)] {
        for i in 0..200 {
            let a = CounterRng::new(SEED, Purpose::TotalNumberSplit, 97, i, 0);
            let (mut r1, mut r2) = (a.clone(), a);
            assert_eq!(
                detmath::binomial(&mut r1, n, p),
                detmath::binomial(&mut r2, n, p)
            );
            assert_eq!(r1.next_u32(), r2.next_u32());
        }
    }
}

#[test]
fn poisson_matches_pmf() {
    let cases: [(f64, u32); 8] = [
        (0.5, 200_000),
        (3.0, 200_000),
        (9.9, 200_000),
        (10.0, 200_000),
        (10.1, 200_000),
        (50.0, 400_000),
        (1e4, 400_000),
        (1e7, 200_000),
    ];
    for (case, &(lambda, count)) in cases.iter().enumerate() {
        let xs = sample(100 + case as u32, count, |r| detmath::poisson(r, lambda));
        let (lo, probs) = poisson_pmf(lambda);
        check_discrete(&format!("poisson({lambda})"), &xs, lo, &probs);
    }
    let mut r = CounterRng::new(SEED, Purpose::PoissonDrive, 0, 0, 0);
    assert_eq!(detmath::poisson(&mut r, 0.0), 0);
    assert_eq!(detmath::poisson(&mut r, -1.0), 0);
    assert_eq!(detmath::poisson(&mut r, f64::NAN), 0);
}

#[test]
fn poisson_small_matches_pmf() {
    for (case, lambda) in [0.1f64, 1.28, 3.0, 12.0].into_iter().enumerate() {
        let l = (-lambda).exp();
        let xs = sample(200 + case as u32, 200_000, |r| detmath::poisson_small(r, l));
        let (lo, probs) = poisson_pmf(lambda);
        check_discrete(&format!("poisson_small({lambda})"), &xs, lo, &probs);
    }
}

#[test]
fn poisson_small_word_order() {
    // Result k reads exactly k + 1 uniforms (2 words each); lambda = 0 none.
    for i in 0..500 {
        let start = CounterRng::new(SEED, Purpose::PoissonDrive, 1, i, 0);
        let mut r = start.clone();
        let k = detmath::poisson_small(&mut r, (-2.0f64).exp());
        let mut reference = start.clone();
        let mut prod = 1.0;
        let mut used = 0;
        loop {
            prod *= reference.open01();
            used += 1;
            if prod <= (-2.0f64).exp() {
                break;
            }
        }
        assert_eq!(k + 1, used);
        assert_eq!(r.next_u32(), reference.next_u32());
        let mut r = start.clone();
        assert_eq!(detmath::poisson_small(&mut r, 1.0), 0);
        assert_eq!(r.next_u32(), start.clone().next_u32());
    }
}

#[test]
fn geometric_skip_matches_pmf() {
    for (case, p) in [0.5, 0.1, 1e-3, 1e-6, 0.999].into_iter().enumerate() {
        let ln_q = detmath::ln_1p(-p);
        let xs = sample(300 + case as u32, 200_000, |r| {
            detmath::geometric_skip(r, ln_q)
        });
        // Chi-square on ~50 bins of about equal probability from the exact
        // tail P(X >= k) = (1 - p)^k.
        let q: f64 = 1.0 - p;
        let tail = |k: u64| q.powf(k as f64);
        let mut edges: Vec<u64> = vec![0];
        for j in 1..50 {
            let k = ((1.0 - j as f64 / 50.0).ln() / q.ln()).ceil() as u64;
            if k > *edges.last().unwrap() {
                edges.push(k);
            }
        }
        let mut probs = Vec::new();
        for w in edges.windows(2) {
            probs.push(tail(w[0]) - tail(w[1]));
        }
        probs.push(tail(*edges.last().unwrap()));
        let mut counts = vec![0u64; probs.len()];
        for &x in &xs {
            let bin = edges.partition_point(|&e| e <= x) - 1;
            counts[bin] += 1;
        }
        let what = format!("geometric_skip(p = {p})");
        chi_square(&what, &counts, &probs, 20.0);
        // Mean (1-p)/p, variance (1-p)/p^2, fourth central moment
        // (1-p)(p^2 - 9p + 9)/p^4.
        let mean = q / p;
        let var = q / (p * p);
        let m4 = q * (p * p - 9.0 * p + 9.0) / p.powi(4);
        check_moments(&what, &xs, (mean, var, m4));
    }
}

#[test]
fn geometric_skip_edge_cases() {
    let start = CounterRng::new(SEED, Purpose::Bernoulli, 0, 0, 0);
    let mut r = start.clone();
    assert_eq!(detmath::geometric_skip(&mut r, f64::NEG_INFINITY), 0);
    assert_eq!(detmath::geometric_skip(&mut r, 0.0), GEOMETRIC_SKIP_MAX);
    assert_eq!(
        detmath::geometric_skip(&mut r, f64::NAN),
        GEOMETRIC_SKIP_MAX
    );
    assert_eq!(detmath::geometric_skip(&mut r, -1e-300), GEOMETRIC_SKIP_MAX);
    // One uniform (two words) per call, whatever p.
    let mut reference = start;
    for _ in 0..4 {
        reference.open01();
    }
    assert_eq!(r.next_u32(), reference.next_u32());
    // p = 1/2: floor(ln u / ln(1/2)) = number of leading halvings.
    let mut r = CounterRng::new(SEED, Purpose::Bernoulli, 1, 0, 0);
    let mut reference = r.clone();
    for _ in 0..100 {
        let k = detmath::geometric_skip(&mut r, -std::f64::consts::LN_2);
        let u = reference.open01();
        assert!(0.5f64.powi(k as i32 + 1) < u * (1.0 + 1e-12));
        assert!(u <= 0.5f64.powi(k as i32) * (1.0 + 1e-12));
    }
}
