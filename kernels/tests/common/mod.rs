//! Statistics helpers for the sampler tests, written independently of the
//! code under test (std `f64::ln`/`exp`, plain recursions).

#![allow(dead_code)]

/// Significance below which a goodness-of-fit test fails.
pub const ALPHA: f64 = 1e-6;

/// `ln Gamma(x)` for `x > 0`: shift to `x >= 15`, then the Stirling series.
pub fn ln_gamma(x: f64) -> f64 {
    let mut shift = 0.0;
    let mut x = x;
    while x < 15.0 {
        shift -= x.ln();
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    let series = (1.0 / 12.0 - z * (1.0 / 360.0 - z * (1.0 / 1260.0 - z / 1680.0))) / x;
    shift + (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + series
}

/// Regularised upper incomplete gamma `Q(a, x)`.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // Series for P(a, x).
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut ap = a;
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        1.0 - sum * front
    } else {
        // Continued fraction for Q(a, x) (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        front * h
    }
}

/// Upper tail probability of the chi-square distribution.
pub fn chi2_sf(stat: f64, df: f64) -> f64 {
    gamma_q(df / 2.0, stat / 2.0)
}

/// Chi-square goodness of fit of `counts[k]` (observations of value `k`)
/// against `probs[k]` (summing to ~1 over the support; values beyond the
/// slice must not have been observed). Neighbouring values are merged into
/// bins of expected count >= `min_expected`. Panics with `what` on failure;
/// returns the p-value.
pub fn chi_square(what: &str, counts: &[u64], probs: &[f64], min_expected: f64) -> f64 {
    assert_eq!(counts.len(), probs.len(), "{what}: slice lengths");
    let total: u64 = counts.iter().sum();
    let nf = total as f64;
    let mut bins: Vec<(f64, f64)> = Vec::new(); // (observed, expected)
    let (mut o, mut e) = (0.0, 0.0);
    for (&c, &p) in counts.iter().zip(probs) {
        o += c as f64;
        e += p * nf;
        if e >= min_expected {
            bins.push((o, e));
            o = 0.0;
            e = 0.0;
        }
    }
    if let Some(last) = bins.last_mut() {
        last.0 += o;
        last.1 += e;
    } else {
        bins.push((o, e));
    }
    assert!(bins.len() >= 2, "{what}: too few bins");
    let stat: f64 = bins.iter().map(|&(o, e)| (o - e) * (o - e) / e).sum();
    let df = (bins.len() - 1) as f64;
    let pv = chi2_sf(stat, df);
    println!("{what}: chi-square {stat:.1} with {df} df, p = {pv:.3}");
    assert!(
        pv > ALPHA,
        "{what}: chi-square {stat:.1} with {df} df, p = {pv:.3e}"
    );
    pv
}

/// Moments (mean, variance, fourth central moment) of a pmf on `0..len`.
pub fn pmf_moments(probs: &[f64]) -> (f64, f64, f64) {
    let mean: f64 = probs.iter().enumerate().map(|(k, p)| k as f64 * p).sum();
    let var: f64 = probs
        .iter()
        .enumerate()
        .map(|(k, p)| (k as f64 - mean).powi(2) * p)
        .sum();
    let m4: f64 = probs
        .iter()
        .enumerate()
        .map(|(k, p)| (k as f64 - mean).powi(4) * p)
        .sum();
    (mean, var, m4)
}

/// Checks sample mean and variance of integer samples against the exact
/// `(mean, var, m4)` within 5 standard errors.
pub fn check_moments(what: &str, samples: &[u64], exact: (f64, f64, f64)) {
    let (mean, var, m4) = exact;
    let n = samples.len() as f64;
    // Shift by the exact mean for numerical stability.
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let d = x as f64 - mean;
        s1 += d;
        s2 += d * d;
    }
    let smean = s1 / n;
    let svar = (s2 - s1 * s1 / n) / (n - 1.0);
    let se_mean = (var / n).sqrt();
    let se_var = ((m4 - var * var) / n).sqrt();
    assert!(
        smean.abs() <= 5.0 * se_mean,
        "{what}: mean {} vs {mean} (se {se_mean})",
        smean + mean
    );
    assert!(
        (svar - var).abs() <= 5.0 * se_var,
        "{what}: variance {svar} vs {var} (se {se_var})"
    );
}

/// The pmf of Binomial(n, p) on `lo..=hi` (a window wide enough that the
/// mass outside is negligible), by the ratio recursion out from the mode and
/// normalisation, in std floating point. Returns (lo, probs).
pub fn binomial_pmf(n: u64, p: f64) -> (u64, Vec<f64>) {
    let q = 1.0 - p;
    let nf = n as f64;
    let mode = (((nf + 1.0) * p).floor() as u64).min(n);
    let sd = (nf * p * q).sqrt();
    let half = (14.0 * sd + 40.0) as u64;
    let lo = mode.saturating_sub(half);
    let hi = (mode + half).min(n);
    let mut w = vec![0.0; (hi - lo + 1) as usize];
    let im = (mode - lo) as usize;
    w[im] = 1.0;
    for k in mode..hi {
        let i = (k - lo) as usize;
        w[i + 1] = w[i] * ((n - k) as f64 / (k + 1) as f64) * (p / q);
    }
    for k in (lo + 1..=mode).rev() {
        let i = (k - lo) as usize;
        w[i - 1] = w[i] * (k as f64 / (n - k + 1) as f64) * (q / p);
    }
    let sum: f64 = w.iter().sum();
    for x in &mut w {
        *x /= sum;
    }
    (lo, w)
}

/// The pmf of Poisson(lambda) on `lo..=hi`, as [`binomial_pmf`].
pub fn poisson_pmf(lambda: f64) -> (u64, Vec<f64>) {
    let mode = lambda.floor() as u64;
    let half = (14.0 * lambda.sqrt() + 40.0) as u64;
    let lo = mode.saturating_sub(half);
    let hi = mode + half;
    let mut w = vec![0.0; (hi - lo + 1) as usize];
    let im = (mode - lo) as usize;
    w[im] = 1.0;
    for k in mode..hi {
        let i = (k - lo) as usize;
        w[i + 1] = w[i] * lambda / (k + 1) as f64;
    }
    for k in (lo + 1..=mode).rev() {
        let i = (k - lo) as usize;
        w[i - 1] = w[i] * k as f64 / lambda;
    }
    let sum: f64 = w.iter().sum();
    for x in &mut w {
        *x /= sum;
    }
    (lo, w)
}

/// Full goodness-of-fit check of integer samples against a pmf window
/// `(lo, probs)`: every sample inside the window, chi-square on merged bins,
/// mean and variance within 5 standard errors.
pub fn check_discrete(what: &str, samples: &[u64], lo: u64, probs: &[f64]) {
    let mut counts = vec![0u64; probs.len()];
    for &x in samples {
        assert!(
            x >= lo && ((x - lo) as usize) < probs.len(),
            "{what}: sample {x} outside the window {lo}..{}",
            lo + probs.len() as u64
        );
        counts[(x - lo) as usize] += 1;
    }
    // Up to ~400 bins, at least 20 expected per bin.
    let min_expected = (samples.len() as f64 / 400.0).max(20.0);
    chi_square(what, &counts, probs, min_expected);
    let (mean, var, m4) = pmf_moments(probs);
    check_moments(what, samples, (mean + lo as f64, var, m4));
}

/// Complementary error function, |relative error| < 1.2e-7 (Chebyshev fit,
/// Numerical Recipes `erfcc`), enough for a KS test on <= 1e7 samples.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Standard normal CDF.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Kolmogorov-Smirnov statistic `sqrt(n) D` of samples (sorted in place)
/// against a continuous CDF.
pub fn ks_scaled(samples: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as f64;
    let mut d: f64 = 0.0;
    for (i, &x) in samples.iter().enumerate() {
        let f = cdf(x);
        d = d.max(f - i as f64 / n).max((i + 1) as f64 / n - f);
    }
    d * n.sqrt()
}

/// `sqrt(n) D` above which the KS test fails at [`ALPHA`]:
/// `P(K > x) ~ 2 exp(-2 x^2)`.
pub fn ks_critical() -> f64 {
    ((2.0 / ALPHA).ln() / 2.0).sqrt()
}

/// Checks that a binomial proportion `hits / n` matches `p` within 5
/// standard errors.
pub fn check_proportion(what: &str, hits: u64, n: u64, p: f64) {
    let nf = n as f64;
    let se = (p * (1.0 - p) / nf).sqrt();
    let ph = hits as f64 / nf;
    assert!(
        (ph - p).abs() <= 5.0 * se,
        "{what}: proportion {ph} vs {p} (se {se})"
    );
}
