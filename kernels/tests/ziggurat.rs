//! The ziggurat normal sampler: its tables, the words it reads (against an
//! independent re-implementation of the documented order), and goodness of
//! fit (moments, tail fractions, KS, chi-square on equiprobable bins and on
//! the layer boundaries, the rate and shape of the tail beyond `r`).

mod common;

use common::*;
use snn_kernels::ziggurat::{
    normal_tail, normal_zig, normal_zig_with, ZigguratTables, ZIG_LAYERS, ZIG_R, ZIG_V,
};
use snn_kernels::{detmath, CounterRng, Purpose};

/// Seed of all streams in this file.
const SEED: u64 = 0x5eed_2199_0a11_ce77;

/// `exp(-x^2/2)` in std floating point.
fn f(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

/// `integral_a^b exp(-x^2/2) dx` by composite Simpson on `n` (even) panels.
fn simpson(a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for k in 1..n {
        s += f(a + k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0
}

#[test]
fn constants_and_tables() {
    // v = r f(r) + tail area (the tail integral to 1e-15 by Simpson).
    let v = ZIG_R * f(ZIG_R) + simpson(ZIG_R, ZIG_R + 12.0, 20_000);
    assert!((v - ZIG_V).abs() < 1e-14, "v {v} vs {ZIG_V}");

    let t = ZigguratTables::new();
    assert_eq!(&t, ZigguratTables::get());
    let (x, r, fx) = (t.x(), t.r(), t.f());
    assert_eq!(x[1], ZIG_R);
    assert_eq!(x[ZIG_LAYERS], 0.0);
    assert_eq!(fx[ZIG_LAYERS], 1.0);
    assert!((x[0] * fx[1] - ZIG_V).abs() < 1e-17);
    for i in 0..ZIG_LAYERS {
        assert!(x[i + 1] < x[i], "x not decreasing at {i}");
        assert!(r[i] >= 0.0 && r[i] < 1.0 && r[i] == x[i + 1] / x[i]);
        // The tables agree with std exp to within a few ulps.
        assert!(
            (fx[i] - f(x[i])).abs() <= 4.0 * f64::EPSILON * fx[i],
            "f[{i}]"
        );
    }
    // Every layer above the base strip has area v; in particular the
    // recursion closes at the top (x_255 (1 - f_255) = v).
    for i in 1..ZIG_LAYERS {
        let area = x[i] * (fx[i + 1] - fx[i]);
        assert!(
            (area - ZIG_V).abs() < 1e-12 * ZIG_V,
            "layer {i}: area {area:e} vs v"
        );
    }
    assert_eq!(t.to_flat().len(), ZigguratTables::FLAT_LEN);
}

/// The documented word order, re-implemented from the module
/// documentation with the public tables and `CounterRng` readers.
fn reference(t: &ZigguratTables, rng: &mut CounterRng) -> f64 {
    let (x, r, fx) = (t.x(), t.r(), t.f());
    loop {
        let w = rng.next_u32();
        let i = (w & 0xff) as usize;
        let s = (w >> 8) & 1;
        let u = ((w >> 9) as f64 + 0.5) / 8_388_608.0;
        let sign = |v: f64| if s == 1 { -v } else { v };
        if u < r[i] {
            return sign(u * x[i]);
        }
        if i == 0 {
            loop {
                let u1 = rng.open01();
                let u2 = rng.open01();
                let a = -detmath::ln(u1) / ZIG_R;
                let b = -detmath::ln(u2);
                if b + b > a * a {
                    return sign(ZIG_R + a);
                }
            }
        }
        let xv = u * x[i];
        let uw = rng.open01();
        if fx[i] + uw * (fx[i + 1] - fx[i]) < detmath::exp(-0.5 * xv * xv) {
            return sign(xv);
        }
    }
}

#[test]
fn words_read_as_documented() {
    let t = ZigguratTables::get();
    let (mut tails, mut wedges, mut words) = (0u32, 0u32, 0u64);
    let n = 400_000u32;
    for k in 0..n {
        let start = CounterRng::new(SEED, Purpose::Synapse, 1, k, 0);
        let mut a = start.clone();
        let mut b = start.clone();
        // Three variates per stream: the paths interleave across blocks.
        for _ in 0..3 {
            let za = normal_zig(&mut a);
            let zb = reference(t, &mut b);
            assert_eq!(za.to_bits(), zb.to_bits(), "stream {k}");
        }
        assert_eq!(a.next_u32(), b.next_u32(), "stream {k}: words read");
        // Classify the first attempt, count the words of the first variate.
        let mut c = start.clone();
        let w = c.next_u32();
        let i = (w & 0xff) as usize;
        let u = ((w >> 9) as f64 + 0.5) / 8_388_608.0;
        if u >= t.r()[i] {
            if i == 0 {
                tails += 1;
            } else {
                wedges += 1;
            }
        }
        let mut d = start.clone();
        normal_zig(&mut d);
        let mut e = start;
        loop {
            let (mut d4, mut e4) = (d.clone(), e.clone());
            if (0..4).all(|_| d4.next_u32() == e4.next_u32()) {
                break;
            }
            e.next_u32();
            words += 1;
        }
    }
    // Both slow paths were exercised; ~1.02 words per variate.
    assert!(
        tails > 50 && wedges > 2000,
        "tails {tails}, wedges {wedges}"
    );
    let per = words as f64 / n as f64;
    println!("tails {tails}, wedges {wedges}, {per:.4} words per variate");
    assert!(per > 1.0 && per < 1.05, "words per variate {per}");
}

/// `z` with `normal_cdf(z) = p` (bisection; `0 < p < 1`).
fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0, 40.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The checks of `kernels/tests/rng.rs` for `normal`, tightened: mean,
/// variance, |x| beyond 1..4 sigma, sign, KS against the normal CDF and a
/// chi-square on 200 equiprobable bins.
fn check_normal(what: &str, mut xs: Vec<f64>) {
    let n = xs.len() as u64;
    let nf = n as f64;
    assert!(
        xs.iter().all(|x| x.is_finite() && *x != 0.0),
        "{what}: non-finite"
    );
    let mean = xs.iter().sum::<f64>() / nf;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (nf - 1.0);
    assert!(mean.abs() < 5.0 / nf.sqrt(), "{what}: mean {mean}");
    assert!(
        (var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(),
        "{what}: variance {var}"
    );
    for k in 1..=4 {
        let kf = k as f64;
        let beyond = xs.iter().filter(|x| x.abs() > kf).count() as u64;
        let p = erfc(kf / std::f64::consts::SQRT_2);
        check_proportion(&format!("{what}: |z| > {k}"), beyond, n, p);
    }
    let positive = xs.iter().filter(|&&x| x > 0.0).count() as u64;
    check_proportion(&format!("{what}: z > 0"), positive, n, 0.5);
    let bins = 200;
    let edges: Vec<f64> = (1..bins)
        .map(|k| normal_quantile(k as f64 / bins as f64))
        .collect();
    let mut counts = vec![0u64; bins];
    for &x in &xs {
        counts[edges.partition_point(|&e| e <= x)] += 1;
    }
    chi_square(
        &format!("{what}: 200 equiprobable bins"),
        &counts,
        &vec![1.0 / bins as f64; bins],
        5.0,
    );
    let ks = ks_scaled(&mut xs, normal_cdf);
    println!("{what}: KS sqrt(n) D = {ks:.3}");
    assert!(ks < ks_critical(), "{what}: KS sqrt(n) D = {ks}");
}

#[test]
fn one_stream_is_normal() {
    let mut rng = CounterRng::new(SEED, Purpose::Synapse, 2, 0, 0);
    let xs = (0..1_000_000).map(|_| normal_zig(&mut rng)).collect();
    check_normal("normal_zig, one stream", xs);
}

#[test]
fn fresh_streams_are_normal() {
    // As in the network builder: a fresh stream per synapse, the normals
    // after a 64-bit source draw (words 2 and 3 of the first block).
    let t = ZigguratTables::get();
    let mut first = Vec::with_capacity(1_000_000);
    let mut second = Vec::with_capacity(1_000_000);
    for k in 0..1_000_000u32 {
        let mut rng = CounterRng::new(SEED, Purpose::Synapse, 3, k >> 10, k & 1023);
        rng.below(1000);
        first.push(normal_zig_with(t, &mut rng));
        second.push(normal_zig_with(t, &mut rng));
    }
    let corr = first.iter().zip(&second).map(|(a, b)| a * b).sum::<f64>() / 1e6;
    assert!(
        corr.abs() < 5e-3,
        "correlation of consecutive variates {corr}"
    );
    check_normal("normal_zig, fresh streams, first", first);
    check_normal("normal_zig, fresh streams, second", second);
}

#[test]
fn layers_and_tail() {
    // 10^7 variates: chi-square on bins bounded by the layer edges +-x_i
    // (merged to >= 1000 expected), the rate of the tail |z| > r, and the
    // shape of the tail (KS against the conditional normal tail).
    let t = ZigguratTables::get();
    let n = 10_000_000u64;
    let mut rng = CounterRng::new(SEED, Purpose::Synapse, 4, 0, 0);
    let mut edges: Vec<f64> = t.x()[1..ZIG_LAYERS].to_vec();
    edges.extend(t.x()[1..ZIG_LAYERS].iter().map(|x| -x));
    edges.push(0.0);
    // Split the outer layers, where the density changes fastest.
    for i in 1..20 {
        let mid = 0.5 * (t.x()[i] + t.x()[i + 1]);
        edges.extend([mid, -mid]);
    }
    edges.sort_by(f64::total_cmp);
    let mut counts = vec![0u64; edges.len() + 1];
    let mut tail = Vec::new();
    for _ in 0..n {
        let z = normal_zig_with(t, &mut rng);
        counts[edges.partition_point(|&e| e <= z)] += 1;
        if z.abs() > ZIG_R {
            tail.push(z);
        }
    }
    let mut probs = Vec::with_capacity(counts.len());
    let mut prev = 0.0;
    for &e in &edges {
        let c = normal_cdf(e);
        probs.push(c - prev);
        prev = c;
    }
    probs.push(1.0 - prev);
    chi_square("normal_zig, layer bins", &counts, &probs, 1000.0);

    let p_tail = erfc(ZIG_R / std::f64::consts::SQRT_2);
    check_proportion("normal_zig, |z| > r", tail.len() as u64, n, p_tail);
    let positive = tail.iter().filter(|&&z| z > 0.0).count() as u64;
    check_proportion("normal_zig, tail sign", positive, tail.len() as u64, 0.5);
    let mut mags: Vec<f64> = tail.iter().map(|z| z.abs()).collect();
    let ks = ks_scaled(&mut mags, |x| {
        1.0 - erfc(x / std::f64::consts::SQRT_2) / p_tail
    });
    println!(
        "normal_zig: {} of {n} beyond r (expected {:.0}), tail KS sqrt(n) D = {ks:.3}",
        tail.len(),
        p_tail * n as f64
    );
    assert!(ks < ks_critical(), "tail KS sqrt(n) D = {ks}");
}

#[test]
fn tail_method_is_the_normal_tail() {
    // The tail step alone, 10^6 draws at the ziggurat's r and at r = 1:
    // KS against P(Z <= x | Z > r), and the mean overshoot against
    // E[Z - r | Z > r] = phi(r) / Q(r) - r.
    for (case, r) in [ZIG_R, 1.0].into_iter().enumerate() {
        let mut rng = CounterRng::new(SEED, Purpose::Synapse, 5, case as u32, 0);
        let q = erfc(r / std::f64::consts::SQRT_2);
        let n = 1_000_000;
        let mut xs: Vec<f64> = (0..n).map(|_| normal_tail(&mut rng, r)).collect();
        assert!(xs.iter().all(|&x| x > r && x.is_finite()));
        let over = xs.iter().map(|x| x - r).sum::<f64>() / n as f64;
        let want = 2.0 * f(r) / ((2.0 * std::f64::consts::PI).sqrt() * q) - r;
        // sd of the overshoot is below its mean for a normal tail.
        assert!(
            (over - want).abs() < 5.0 * want / (n as f64).sqrt(),
            "tail at {r}: mean overshoot {over} vs {want}"
        );
        let ks = ks_scaled(&mut xs, |x| 1.0 - erfc(x / std::f64::consts::SQRT_2) / q);
        println!("tail at {r}: KS sqrt(n) D = {ks:.3}");
        assert!(ks < ks_critical(), "tail at {r}: KS sqrt(n) D = {ks}");
    }
}
