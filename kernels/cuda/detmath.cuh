// Deterministic ln/exp and the random variates built on them: the CUDA C
// twin of kernels/src/detmath.rs (bit-identical; checked by
// kernels/tests/cuda_twin.rs). Read the Rust file for the algorithms'
// documentation; every expression here is written in the same order.
//
// Random words: the samplers read their stream only through
// snn_rng_open01 (two words per uniform), in the order documented in Rust.
#ifndef SNN_DETMATH_CUH
#define SNN_DETMATH_CUH

#include "port.cuh"
#include "philox.cuh"

#define SNN_LN2_HI 6.931471803691238e-1
#define SNN_LN2_LO 1.9082149292705877e-10
#define SNN_SQRT_2 1.4142135623730951
#define SNN_LOG2_E 1.4426950408889634
#define SNN_TWO_POW_54 18014398509481984.0
#define SNN_HALF_LN_2PI 0.9189385332046728
#define SNN_INFINITY snn_bits_to_double(0x7ff0000000000000ull)
#define SNN_GEOMETRIC_SKIP_MAX 0x7fffffffffffffffull

// Natural logarithm; ln(+-0) = -inf, ln(x < 0) = NaN, ln(inf) = inf.
SNN_HD double snn_ln(double x) {
    if (snn_isnan(x) || x < 0.0) {
        return snn_bits_to_double(0x7ff8000000000000ull);
    }
    if (x == 0.0) {
        return -SNN_INFINITY;
    }
    if (x == SNN_INFINITY) {
        return x;
    }
    uint64_t bits = snn_double_to_bits(x);
    int64_t e = 0;
    if ((bits >> 52) == 0) {
        bits = snn_double_to_bits(x * SNN_TWO_POW_54);
        e -= 54;
    }
    e += (int64_t)((bits >> 52) & 0x7ff) - 1023;
    double m = snn_bits_to_double((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
    if (m > SNN_SQRT_2) {
        m *= 0.5;
        e += 1;
    }
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double r = 2.0 / 23.0;
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
    double hfsq = 0.5 * f * f;
    double ef = (double)e;
    return ef * SNN_LN2_HI - ((hfsq - (s * (hfsq + r) + ef * SNN_LN2_LO)) - f);
}

// ln(1 + x), accurate for tiny x.
SNN_HD double snn_ln_1p(double x) {
    double u = 1.0 + x;
    if (u == 1.0) {
        return x;
    }
    if (u == SNN_INFINITY || u <= 0.0 || snn_isnan(u)) {
        return snn_ln(u);
    }
    return snn_ln(u) - ((u - 1.0) - x) / u;
}

// 2^k for -1022 <= k <= 1023.
SNN_HD double snn_pow2(int64_t k) {
    return snn_bits_to_double((uint64_t)(k + 1023) << 52);
}

// Exponential; exp(0) = 1 exactly.
SNN_HD double snn_exp(double x) {
    if (snn_isnan(x)) {
        return x;
    }
    if (x > 709.782712893384) {
        return SNN_INFINITY;
    }
    if (x < -745.2) {
        return 0.0;
    }
    double kf = snn_floor(x * SNN_LOG2_E + 0.5);
    double r = (x - kf * SNN_LN2_HI) - kf * SNN_LN2_LO;
    double p = 1.0 / 87178291200.0;
    p = p * r + 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t k = (int64_t)kf;
    if (k > 1000) {
        return p * snn_pow2(1000) * snn_pow2(k - 1000);
    } else if (k < -1000) {
        return p * snn_pow2(-1000) * snn_pow2(k + 1000);
    } else {
        return p * snn_pow2(k);
    }
}

// Stirling correction fc(k) for integral k >= 0.
SNN_HD double snn_stirling_tail(double k) {
    if (k < 16.0) {
        const double table[16] = {
            0.08106146679532726,  0.0413406959554093,    0.02767792568499834,
            0.020790672103765093, 0.016644691189821193,  0.013876128823070748,
            0.01189670994589177,  0.010411265261972096,  0.009255462182712733,
            0.00833056343336287,  0.007573675487951841,  0.00694284010720953,
            0.006408994188004207, 0.0059513701127588475, 0.005554733551962801,
            0.0052076559196096404,
        };
        return table[(int)k];
    }
    double k1 = k + 1.0;
    double z = 1.0 / (k1 * k1);
    return (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - z / 1680.0) * z) * z) / k1;
}

// ln(k!) for integral k >= 0.
SNN_HD double snn_ln_factorial(double k) {
    return (k + 0.5) * snn_ln(k + 1.0) - (k + 1.0) + SNN_HALF_LN_2PI + snn_stirling_tail(k);
}

// Binomial by inversion, p <= 1/2, n p < 14.
SNN_HD uint64_t snn_binomial_inversion(SnnRng* rng, uint64_t n, double p) {
    double nf = (double)n;
    double s = p / (1.0 - p);
    double a = (nf + 1.0) * s;
    double f0 = snn_exp(nf * snn_ln_1p(-p));
    uint64_t max_x = n < 110 ? n : 110;
    for (;;) {
        double u = snn_rng_open01(rng);
        double f = f0;
        uint64_t x = 0;
        for (;;) {
            if (u < f) {
                return x;
            }
            u -= f;
            x += 1;
            if (x > max_x) {
                break;
            }
            f *= a / (double)x - s;
        }
    }
}

// Binomial by BTRD (Hoermann 1993), p <= 1/2, n p >= 14.
SNN_HD uint64_t snn_binomial_btrd(SnnRng* rng, uint64_t n, double p) {
    double nf = (double)n;
    double q = 1.0 - p;
    double np = nf * p;
    double npq = np * q;
    double spq = snn_sqrt(npq);
    double b = 1.15 + 2.53 * spq;
    double a = -0.0873 + 0.0248 * b + 0.01 * p;
    double c = np + 0.5;
    double alpha = (2.83 + 5.1 / b) * spq;
    double v_r = 0.92 - 4.2 / b;
    double u_rv_r = 0.86 * v_r;
    double m = snn_floor((nf + 1.0) * p);
    double r = p / q;
    double nr = (nf + 1.0) * r;
    for (;;) {
        double v = snn_rng_open01(rng);
        if (v <= u_rv_r) {
            double u = v / v_r - 0.43;
            double kf = snn_floor((2.0 * a / (0.5 - snn_fabs(u)) + b) * u + c);
            if (kf >= 0.0 && kf <= nf) {
                return (uint64_t)kf;
            }
            continue;
        }
        double u;
        if (v >= v_r) {
            u = snn_rng_open01(rng) - 0.5;
        } else {
            double t = v / v_r - 0.93;
            u = t < 0.0 ? -0.5 - t : 0.5 - t;
            v = v_r * snn_rng_open01(rng);
        }
        double us = 0.5 - snn_fabs(u);
        double kf = snn_floor((2.0 * a / us + b) * u + c);
        if (snn_isnan(kf) || kf < 0.0 || kf > nf) {
            continue;
        }
        v = v * alpha / (a / (us * us) + b);
        double km = snn_fabs(kf - m);
        if (km <= 15.0) {
            double f = 1.0;
            if (m < kf) {
                double i = m;
                while (i < kf) {
                    i += 1.0;
                    f *= nr / i - r;
                }
            } else if (m > kf) {
                double i = kf;
                while (i < m) {
                    i += 1.0;
                    v *= nr / i - r;
                }
            }
            if (v <= f) {
                return (uint64_t)kf;
            }
            continue;
        }
        v = snn_ln(v);
        double rho = (km / npq) * (((km / 3.0 + 0.625) * km + 1.0 / 6.0) / npq + 0.5);
        double t = -km * km / (2.0 * npq);
        if (v < t - rho) {
            return (uint64_t)kf;
        }
        if (v > t + rho) {
            continue;
        }
        double nm = nf - m + 1.0;
        double h = (m + 0.5) * snn_ln((m + 1.0) / (r * nm)) + snn_stirling_tail(m) +
                   snn_stirling_tail(nf - m);
        double nk = nf - kf + 1.0;
        double bound = h + (nf + 1.0) * snn_ln(nm / nk) +
                       (kf + 0.5) * snn_ln(nk * r / (kf + 1.0)) - snn_stirling_tail(kf) -
                       snn_stirling_tail(nf - kf);
        if (v <= bound) {
            return (uint64_t)kf;
        }
    }
}

// Binomial(n, p), n <= 2^53 (detmath::binomial).
SNN_HD uint64_t snn_binomial(SnnRng* rng, uint64_t n, double p) {
    if (n == 0 || snn_isnan(p) || p <= 0.0) {
        return 0;
    }
    if (p >= 1.0) {
        return n;
    }
    if (p > 0.5) {
        return n - snn_binomial(rng, n, 1.0 - p);
    }
    double nf = (double)n;
    if (nf * p < 14.0) {
        return snn_binomial_inversion(rng, n, p);
    }
    return snn_binomial_btrd(rng, n, p);
}

// Poisson by inversion, 0 < lambda < 10.
SNN_HD uint64_t snn_poisson_inversion(SnnRng* rng, double lambda) {
    double f0 = snn_exp(-lambda);
    for (;;) {
        double u = snn_rng_open01(rng);
        double f = f0;
        uint64_t x = 0;
        for (;;) {
            if (u < f) {
                return x;
            }
            u -= f;
            x += 1;
            if (x > 100) {
                break;
            }
            f *= lambda / (double)x;
        }
    }
}

// Poisson by PTRS (Hoermann 1993), lambda >= 10.
SNN_HD uint64_t snn_poisson_ptrs(SnnRng* rng, double lambda) {
    double slam = snn_sqrt(lambda);
    double loglam = snn_ln(lambda);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    double v_r = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
        double u = snn_rng_open01(rng) - 0.5;
        double v = snn_rng_open01(rng);
        double us = 0.5 - snn_fabs(u);
        double kf = snn_floor((2.0 * a / us + b) * u + lambda + 0.43);
        if (snn_isnan(kf) || kf < 0.0) {
            continue;
        }
        if (us >= 0.07 && v <= v_r) {
            return (uint64_t)kf;
        }
        if (us < 0.013 && v > us) {
            continue;
        }
        double lhs = snn_ln(v * inv_alpha / (a / (us * us) + b));
        double rhs = -lambda + kf * loglam - snn_ln_factorial(kf);
        if (lhs <= rhs) {
            return (uint64_t)kf;
        }
    }
}

// Poisson(lambda) (detmath::poisson).
SNN_HD uint64_t snn_poisson(SnnRng* rng, double lambda) {
    if (snn_isnan(lambda) || lambda <= 0.0) {
        return 0;
    }
    if (lambda < 10.0) {
        return snn_poisson_inversion(rng, lambda);
    }
    return snn_poisson_ptrs(rng, lambda);
}

// Poisson with a precomputed exp(-lambda), by multiplying uniforms.
SNN_HD uint64_t snn_poisson_small(SnnRng* rng, double exp_neg_lambda) {
    if (snn_isnan(exp_neg_lambda) || exp_neg_lambda >= 1.0) {
        return 0;
    }
    uint64_t k = 0;
    double prod = snn_rng_open01(rng);
    while (prod > exp_neg_lambda) {
        k += 1;
        prod *= snn_rng_open01(rng);
    }
    return k;
}

// Failures before the next success of Bernoulli(p), given ln(1 - p).
SNN_HD uint64_t snn_geometric_skip(SnnRng* rng, double ln_1_minus_p) {
    double u = snn_rng_open01(rng);
    if (snn_isnan(ln_1_minus_p) || ln_1_minus_p >= 0.0) {
        return SNN_GEOMETRIC_SKIP_MAX;
    }
    double x = snn_floor(snn_ln(u) / ln_1_minus_p);
    if (x < 9223372036854775808.0) {
        return (uint64_t)x;
    }
    return SNN_GEOMETRIC_SKIP_MAX;
}

#endif  // SNN_DETMATH_CUH
