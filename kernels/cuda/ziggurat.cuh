// Ziggurat normal sampler: the CUDA C twin of kernels/src/ziggurat.rs
// (bit-identical; checked by kernels/tests/cuda_twin.rs). Read the Rust file
// for the algorithm and the exact order in which words are read.
//
// The tables are never computed here: the host computes them once
// (ZigguratTables::new in Rust, from detmath only) and uploads them, e.g. to
// __constant__ memory, in the layout of SnnZigTables (= ZigguratTables, as
// ZigguratTables::to_flat lists it: x[257], r[256], f[257], doubles).
#ifndef SNN_ZIGGURAT_CUH
#define SNN_ZIGGURAT_CUH

#include "port.cuh"
#include "philox.cuh"
#include "detmath.cuh"

#define SNN_ZIG_LAYERS 256

struct SnnZigTables {
    double x[SNN_ZIG_LAYERS + 1];  // x[0] = v / f(r), x[1] = r, ..., x[256] = 0
    double r[SNN_ZIG_LAYERS];      // r[i] = x[i + 1] / x[i]
    double f[SNN_ZIG_LAYERS + 1];  // f[i] = exp(-x[i]^2 / 2), f[256] = 1
};

// A standard normal variate conditioned on being above r > 0, by Marsaglia's
// tail method (ziggurat::normal_tail): rounds of two uniforms, U1 then U2.
SNN_HD double snn_normal_tail(SnnRng* rng, double r) {
    for (;;) {
        double a = -snn_ln(snn_rng_open01(rng)) / r;
        double b = -snn_ln(snn_rng_open01(rng));
        if (b + b > a * a) {
            return r + a;
        }
    }
}

// Steps 3 and 4 of an attempt on layer i at position u: writes the magnitude
// to *x and returns true, or returns false to start a new attempt.
SNN_HD bool snn_zig_slow(const SnnZigTables* t, SnnRng* rng, uint32_t i, double u, double* x) {
    if (i == 0) {
        *x = snn_normal_tail(rng, t->x[1]);
        return true;
    }
    double xi = u * t->x[i];
    double y = t->f[i] + snn_rng_open01(rng) * (t->f[i + 1] - t->f[i]);
    if (y < snn_exp(-0.5 * xi * xi)) {
        *x = xi;
        return true;
    }
    return false;
}

// A standard normal variate by the ziggurat (ziggurat::normal_zig_with).
SNN_HD double snn_normal_zig(const SnnZigTables* t, SnnRng* rng) {
    for (;;) {
        uint32_t w = snn_rng_next_u32(rng);
        uint32_t i = w & 0xffu;
        uint64_t sign = (uint64_t)((w >> 8) & 1u) << 63;
        double u = ((double)(w >> 9) + 0.5) * (1.0 / 8388608.0);
        double x;
        if (u < t->r[i]) {
            x = u * t->x[i];
        } else if (!snn_zig_slow(t, rng, i, u, &x)) {
            continue;
        }
        return snn_bits_to_double(snn_double_to_bits(x) | sign);
    }
}

#endif  // SNN_ZIGGURAT_CUH
