//! Deterministic transcendental functions and random variates.
//!
//! Built from `+ - * /`, `sqrt`, `floor`, `abs` and bit manipulation only,
//! evaluated in a fixed order, so the CUDA C twin (`kernels/cuda/detmath.cuh`,
//! compiled with `--fmad=false`) gives the same bits. [`ln`] and [`exp`] are
//! within 1 ulp of the correctly rounded result on the tested inputs; the
//! point is bit-identity across platforms, not the last half ulp.
//!
//! # Random words
//!
//! The samplers read their stream `rng` only through [`CounterRng::open01`]
//! (one uniform = the next two 32-bit words), in the order written in each
//! function's documentation. The CUDA twin consumes words in the same order,
//! so a stream gives the same variate on both sides.

use crate::rng::CounterRng;

/// High part of ln 2 (`0x3fe62e42fee00000`): its low 32 bits are zero, so
/// `k * LN2_HI` is exact for `|k| < 2^20`.
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
/// ln 2 - [`LN2_HI`] (`0x3dea39ef35793c76`).
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// sqrt(2), rounded.
const SQRT_2: f64 = std::f64::consts::SQRT_2;
/// 2^54, to scale subnormals into the normal range.
const TWO_POW_54: f64 = 18_014_398_509_481_984.0;
/// ln(2 pi) / 2.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Natural logarithm. `ln(±0) = -inf`, `ln(x < 0) = NaN`, `ln(NaN) = NaN`,
/// `ln(inf) = inf`, `ln(1) = 0` exactly.
///
/// `x = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))`, `f = m - 1` (exact),
/// `s = f / (2 + f)`, `ln(m) = f - (f^2/2 - s (f^2/2 + R(s^2)))` with the
/// Taylor series of `2 atanh(s) / s - 2` for `R`.
#[inline]
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e: i64 = 0;
    if bits >> 52 == 0 {
        // Subnormal: scale up by 2^54 (exact).
        bits = (x * TWO_POW_54).to_bits();
        e -= 54;
    }
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    // Mantissa in [1, 2), then in [sqrt(1/2), sqrt(2)).
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    // R = sum_{k=1..11} 2 z^k / (2k + 1); |z| <= 0.0295, the first omitted
    // term is below 2^-60 relative to the result.
    let mut r = 2.0 / 23.0;
    r = r * z + 2.0 / 21.0;
    r = r * z + 2.0 / 19.0;
    r = r * z + 2.0 / 17.0;
    r = r * z + 2.0 / 15.0;
    r = r * z + 2.0 / 13.0;
    r = r * z + 2.0 / 11.0;
    r = r * z + 2.0 / 9.0;
    r = r * z + 2.0 / 7.0;
    r = r * z + 2.0 / 5.0;
    r = r * z + 2.0 / 3.0;
    r *= z;
    let hfsq = 0.5 * f * f;
    let ef = e as f64;
    ef * LN2_HI - ((hfsq - (s * (hfsq + r) + ef * LN2_LO)) - f)
}

/// `ln(1 + x)`, accurate also for tiny `x` (where `ln(1.0 + x)` would lose
/// the low bits of `x`). `ln_1p(-1) = -inf`, `ln_1p(x < -1) = NaN`.
///
/// Useful to precompute `ln(1 - p) = ln_1p(-p)` for [`geometric_skip`].
#[inline]
pub fn ln_1p(x: f64) -> f64 {
    let u = 1.0 + x;
    if u == 1.0 {
        // |x| < 2^-53: ln(1 + x) = x to within rounding.
        return x;
    }
    if u == f64::INFINITY || u <= 0.0 || u.is_nan() {
        return ln(u);
    }
    // u = 1 + x + c with the rounding error c = (u - 1) - x (exact here);
    // ln(1 + x) = ln(u) - c / u to first order.
    ln(u) - ((u - 1.0) - x) / u
}

/// Exponential function. Overflows to `inf` above ~709.78, underflows to 0
/// (through subnormals) below ~-745.13; `exp(0) = 1` exactly,
/// `exp(-inf) = 0`, `exp(NaN) = NaN`.
#[inline]
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.782_712_893_384 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    let k = (x * std::f64::consts::LOG2_E + 0.5).floor();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // exp(r) for |r| <= 0.35, Taylor series to degree 14 (Horner).
    let mut p = 1.0 / 87_178_291_200.0; // 1/14!
    p = p * r + 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let k = k as i64;
    // Scale by 2^k in at most two exact steps (k in about -1075..=1024).
    if k > 1000 {
        p * pow2(1000) * pow2(k - 1000)
    } else if k < -1000 {
        p * pow2(-1000) * pow2(k + 1000)
    } else {
        p * pow2(k)
    }
}

/// 2^k for -1022 <= k <= 1023, built from bits.
#[inline]
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `fc(k) = ln(k!) - ((k + 1/2) ln(k + 1) - (k + 1) + ln(2 pi) / 2)` for
/// `k = 0..16`, to double precision.
const STIRLING_TAIL: [f64; 16] = [
    0.081_061_466_795_327_26,
    0.041_340_695_955_409_3,
    0.027_677_925_684_998_34,
    0.020_790_672_103_765_093,
    0.016_644_691_189_821_193,
    0.013_876_128_823_070_748,
    0.011_896_709_945_891_77,
    0.010_411_265_261_972_096,
    0.009_255_462_182_712_733,
    0.008_330_563_433_362_87,
    0.007_573_675_487_951_841,
    0.006_942_840_107_209_53,
    0.006_408_994_188_004_207,
    0.005_951_370_112_758_847_5,
    0.005_554_733_551_962_801,
    0.005_207_655_919_609_640_4,
];

/// The Stirling correction `fc(k)` (see [`STIRLING_TAIL`]) for an integral
/// `k >= 0` given as a double: the table below 16, the asymptotic series
/// `1/12 - 1/(360 K^2) + 1/(1260 K^4) - 1/(1680 K^6)` over `K = k + 1`
/// above (truncation error below 1e-14).
#[inline]
fn stirling_tail(k: f64) -> f64 {
    if k < 16.0 {
        return STIRLING_TAIL[k as usize];
    }
    let k1 = k + 1.0;
    let z = 1.0 / (k1 * k1);
    (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - z / 1680.0) * z) * z) / k1
}

/// `ln(k!)` for an integral `k >= 0` given as a double (exact integers up to
/// 2^53), by Stirling's formula with the correction term `stirling_tail`:
/// `(k + 1/2) ln(k + 1) - (k + 1) + ln(2 pi)/2 + fc(k)`.
#[inline]
pub fn ln_factorial(k: f64) -> f64 {
    (k + 0.5) * ln(k + 1.0) - (k + 1.0) + HALF_LN_2PI + stirling_tail(k)
}

/// Below this mean `n * min(p, 1 - p)` [`binomial`] uses inversion, above
/// it BTRD.
const BINOMIAL_INVERSION_MAX_MEAN: f64 = 14.0;
/// Inversion gives up (and starts over with a new uniform) past this many
/// steps: only reachable through rounding (the mass beyond it is < 1e-50).
const BINOMIAL_INVERSION_MAX_STEPS: u64 = 110;

/// A binomial variate `Binomial(n, p)`, exact in distribution up to
/// floating-point rounding, for `n <= 2^53` and `p` in `[0, 1]` (`p <= 0`
/// or NaN gives 0, `p >= 1` gives `n`, both without reading the stream).
///
/// For `p > 1/2` the result is `n - binomial(rng, n, 1 - p)`. Then, with
/// `p <= 1/2`:
/// * mean `n p < 14`: inversion by sequential search of the CDF from 0:
///   one uniform per attempt (a second attempt only after round-off leaves
///   the first unresolved after 110 steps, with probability of order 1e-15);
/// * otherwise Hörmann's BTRD (transformed rejection with decomposition,
///   1993), O(1) expected time: each round reads one uniform `V`; if it
///   lands in the central box it is the only one, otherwise a second uniform
///   is read (`U` if `V >= v_r`, else a new `V`), then the round accepts or
///   starts over.
pub fn binomial(rng: &mut CounterRng, n: u64, p: f64) -> u64 {
    if n == 0 || p.is_nan() || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if p > 0.5 {
        return n - binomial(rng, n, 1.0 - p);
    }
    let nf = n as f64;
    if nf * p < BINOMIAL_INVERSION_MAX_MEAN {
        binomial_inversion(rng, n, p)
    } else {
        binomial_btrd(rng, n, p)
    }
}

/// Inversion for `Binomial(n, p)` with `p <= 1/2`, `n p < 14`: walk the pmf
/// `f(0) = (1-p)^n`, `f(x) = f(x-1) ((n+1)/x - 1) p/(1-p)` subtracting it from
/// one uniform until the uniform falls below it.
fn binomial_inversion(rng: &mut CounterRng, n: u64, p: f64) -> u64 {
    let nf = n as f64;
    let s = p / (1.0 - p);
    let a = (nf + 1.0) * s;
    let f0 = exp(nf * ln_1p(-p));
    let max_x = if n < BINOMIAL_INVERSION_MAX_STEPS {
        n
    } else {
        BINOMIAL_INVERSION_MAX_STEPS
    };
    loop {
        let mut u = rng.open01();
        let mut f = f0;
        let mut x: u64 = 0;
        loop {
            if u < f {
                return x;
            }
            u -= f;
            x += 1;
            if x > max_x {
                break;
            }
            f *= a / x as f64 - s;
        }
    }
}

/// BTRD (Hörmann 1993) for `Binomial(n, p)` with `p <= 1/2`, `n p >= 14`.
fn binomial_btrd(rng: &mut CounterRng, n: u64, p: f64) -> u64 {
    let nf = n as f64;
    let q = 1.0 - p;
    let np = nf * p;
    let npq = np * q;
    let spq = npq.sqrt();
    let b = 1.15 + 2.53 * spq;
    let a = -0.0873 + 0.0248 * b + 0.01 * p;
    let c = np + 0.5;
    let alpha = (2.83 + 5.1 / b) * spq;
    let v_r = 0.92 - 4.2 / b;
    let u_rv_r = 0.86 * v_r;
    // Mode, and the ratio f(k)/f(k-1) = nr/k - r.
    let m = ((nf + 1.0) * p).floor();
    let r = p / q;
    let nr = (nf + 1.0) * r;
    loop {
        // Step 1: the central box, where the hat is below the pmf.
        let mut v = rng.open01();
        if v <= u_rv_r {
            let u = v / v_r - 0.43;
            let kf = ((2.0 * a / (0.5 - u.abs()) + b) * u + c).floor();
            // Always in range for n p >= 14; checked for robustness.
            if kf >= 0.0 && kf <= nf {
                return kf as u64;
            }
            continue;
        }
        // Step 2: a point (u, v) uniform under the hat outside the box.
        let u;
        if v >= v_r {
            u = rng.open01() - 0.5;
        } else {
            let t = v / v_r - 0.93;
            u = if t < 0.0 { -0.5 - t } else { 0.5 - t };
            v = v_r * rng.open01();
        }
        // Step 3.0: transform, then compare v with f(k) / f(m).
        let us = 0.5 - u.abs();
        let kf = ((2.0 * a / us + b) * u + c).floor();
        // NaN when us == 0.
        if kf.is_nan() || kf < 0.0 || kf > nf {
            continue;
        }
        v = v * alpha / (a / (us * us) + b);
        let km = (kf - m).abs();
        if km <= 15.0 {
            // Step 3.1: f(k) / f(m) by the recursion of pmf ratios.
            let mut f = 1.0;
            if m < kf {
                let mut i = m;
                while i < kf {
                    i += 1.0;
                    f *= nr / i - r;
                }
            } else if m > kf {
                let mut i = kf;
                while i < m {
                    i += 1.0;
                    v *= nr / i - r;
                }
            }
            if v <= f {
                return kf as u64;
            }
            continue;
        }
        // Step 3.2: squeeze on ln(f(k) / f(m)) ~ -km^2 / (2 npq).
        v = ln(v);
        let rho = (km / npq) * (((km / 3.0 + 0.625) * km + 1.0 / 6.0) / npq + 0.5);
        let t = -km * km / (2.0 * npq);
        if v < t - rho {
            return kf as u64;
        }
        if v > t + rho {
            continue;
        }
        // Steps 3.3 and 3.4: the exact ln(f(k) / f(m)) with Stirling terms.
        let nm = nf - m + 1.0;
        let h = (m + 0.5) * ln((m + 1.0) / (r * nm)) + stirling_tail(m) + stirling_tail(nf - m);
        let nk = nf - kf + 1.0;
        let bound = h + (nf + 1.0) * ln(nm / nk) + (kf + 0.5) * ln(nk * r / (kf + 1.0))
            - stirling_tail(kf)
            - stirling_tail(nf - kf);
        if v <= bound {
            return kf as u64;
        }
    }
}

/// Below this mean [`poisson`] uses inversion, above it PTRS.
const POISSON_INVERSION_MAX_MEAN: f64 = 10.0;
/// Poisson inversion gives up (and starts over with a new uniform) past
/// this many steps: only reachable through rounding (the mass beyond it is
/// < 1e-60 for a mean below 10).
const POISSON_INVERSION_MAX_STEPS: u64 = 100;

/// A Poisson variate with mean `lambda`, exact in distribution up to
/// floating-point rounding (`lambda <= 0` or NaN gives 0 without reading the
/// stream; meant for `lambda` up to ~1e15).
///
/// * `lambda < 10`: inversion by sequential search from 0 with
///   `f(0) = exp(-lambda)`: one uniform per attempt (a second attempt only
///   after round-off leaves the first unresolved after 100 steps);
/// * otherwise Hörmann's PTRS (transformed rejection with squeeze, 1993):
///   each round reads two uniforms, first `U` then `V`, and accepts or
///   starts over (expected rounds < 1.2).
pub fn poisson(rng: &mut CounterRng, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    if lambda < POISSON_INVERSION_MAX_MEAN {
        poisson_inversion(rng, lambda)
    } else {
        poisson_ptrs(rng, lambda)
    }
}

/// Inversion for Poisson(lambda), `0 < lambda < 10`.
fn poisson_inversion(rng: &mut CounterRng, lambda: f64) -> u64 {
    let f0 = exp(-lambda);
    loop {
        let mut u = rng.open01();
        let mut f = f0;
        let mut x: u64 = 0;
        loop {
            if u < f {
                return x;
            }
            u -= f;
            x += 1;
            if x > POISSON_INVERSION_MAX_STEPS {
                break;
            }
            f *= lambda / x as f64;
        }
    }
}

/// PTRS (Hörmann 1993) for Poisson(lambda), `lambda >= 10`.
fn poisson_ptrs(rng: &mut CounterRng, lambda: f64) -> u64 {
    let slam = lambda.sqrt();
    let loglam = ln(lambda);
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let v_r = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.open01() - 0.5;
        let v = rng.open01();
        let us = 0.5 - u.abs();
        let kf = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
        // NaN when us == 0; k >= 0 always holds in the box below.
        if kf.is_nan() || kf < 0.0 {
            continue;
        }
        if us >= 0.07 && v <= v_r {
            return kf as u64;
        }
        if us < 0.013 && v > us {
            continue;
        }
        let lhs = ln(v * inv_alpha / (a / (us * us) + b));
        let rhs = -lambda + kf * loglam - ln_factorial(kf);
        if lhs <= rhs {
            return kf as u64;
        }
    }
}

/// A Poisson variate with mean `lambda` given `exp_neg_lambda =
/// exp(-lambda)` (precomputed once on the host), by multiplying uniforms
/// until the product falls to `exp_neg_lambda` or below: the count of
/// factors before that. For small means (per-neuron drive, `lambda` ~0.1 to
/// ~3; the cost is `lambda + 1` uniforms).
///
/// Reads the uniforms `u1, u2, ...` in order, `k + 1` of them for the result
/// `k`; `exp_neg_lambda >= 1` (`lambda <= 0`) or NaN gives 0 reading nothing.
#[inline]
pub fn poisson_small(rng: &mut CounterRng, exp_neg_lambda: f64) -> u64 {
    if exp_neg_lambda.is_nan() || exp_neg_lambda >= 1.0 {
        return 0;
    }
    let mut k: u64 = 0;
    let mut prod = rng.open01();
    while prod > exp_neg_lambda {
        k += 1;
        prod *= rng.open01();
    }
    k
}

/// The value [`geometric_skip`] saturates at (`u64::MAX / 2`).
pub const GEOMETRIC_SKIP_MAX: u64 = u64::MAX / 2;

/// The number of failures before the next success in Bernoulli(p) trials,
/// given `ln_1_minus_p = ln(1 - p)` (e.g. [`ln_1p`]`(-p)`, precomputed):
/// `floor(ln(U) / ln(1 - p))` with one uniform `U` (always read, whatever
/// `p`). `p == 1` (`ln_1_minus_p = -inf`) gives 0; `p == 0`
/// (`ln_1_minus_p = 0`, or any non-negative or NaN value) and results beyond
/// it give [`GEOMETRIC_SKIP_MAX`].
#[inline]
pub fn geometric_skip(rng: &mut CounterRng, ln_1_minus_p: f64) -> u64 {
    let u = rng.open01();
    if ln_1_minus_p.is_nan() || ln_1_minus_p >= 0.0 {
        return GEOMETRIC_SKIP_MAX;
    }
    // ln(u) < 0, so the quotient is >= 0 (-0.0 when ln_1_minus_p = -inf).
    let x = (ln(u) / ln_1_minus_p).floor();
    // 2^63 as a double; every double below it converts exactly.
    if x < 9_223_372_036_854_775_808.0 {
        x as u64
    } else {
        GEOMETRIC_SKIP_MAX
    }
}
