// Connection generation for the rules whose every synapse draws its own
// source (fixed_total_number; fixed_indegree with multapses): the CUDA C
// twin of build-net/src/connect.rs, ProjPlan::for_each_synapse in
// SourceMode::PerSynapse, with quantize_weight and delay_to_steps of
// formats/src/model.rs. Checked bit for bit against them by
// tests/kernels_host.rs (root package).
//
// Synapse k of target t (index in its population) of projection p reads
// the stream Synapse(p, t, k) = snn_rng_new(seed, SNN_PURPOSE_SYNAPSE, p, t,
// k): first the source, below(n_src) (redrawn while it equals t when
// autapses are excluded), then the weight, then the delay (see draw_dist).
// Normal variates come from the ziggurat (ziggurat.cuh) with the tables the
// host computed (ZigguratTables::to_flat, uploaded as 770 doubles).
//
// This kernel writes each synapse's (source, weight, target | delay <<
// target_bits) in (target, k) order; grouping by source into the CSR rows
// (the scatter of build-net/src/rank.rs) stays on the host for now.
#ifndef SNN_CONNECT_CU
#define SNN_CONNECT_CU

#include "port.cuh"
#include "philox.cuh"
#include "detmath.cuh"
#include "ziggurat.cuh"

#define SNN_DIST_CONSTANT 0u
#define SNN_DIST_NORMAL 1u
#define SNN_DIST_UNIFORM 2u

// A resolved distribution (snn_formats::model::Dist). Mirrored by
// snn_kernels::device::DistParams.
struct SnnDist {
    uint32_t kind;  // SNN_DIST_*
    uint32_t clip;  // normal: clamp to [min, max] instead of redrawing
    double value;   // constant: the value; normal: the mean
    double std;     // normal: the standard deviation
    double min;     // normal and uniform: lower bound (-inf if none)
    double max;     // normal and uniform: upper bound (+inf if none)
};

// One projection, prepared (connect::ProjPlan). Mirrored by
// snn_kernels::device::ConnectParams.
struct SnnConnectParams {
    uint64_t seed;         // network seed
    uint64_t n_src;        // source population size (> 0)
    SnnDist weight;        // pA
    SnnDist delay;         // ms
    double dt_ms;          // time step
    uint32_t projection;   // projection index (< 2^24)
    uint32_t exclude_self; // redraw a source equal to the target
    uint32_t frac_bits;    // fixed-point fraction bits of the weights
    uint32_t target_bits;  // bits of the local target in a packed synapse
};

// f64::max and f64::min of Rust (NaN-ignoring): a NaN argument gives the
// other one. (Their choice between -0.0 and +0.0 may differ from this one;
// it does not matter here: quantize_weight and delay_to_steps map both zeros
// to the same result.)
SNN_HD double snn_max_num(double a, double b) {
    if (snn_isnan(a)) return b;
    if (snn_isnan(b)) return a;
    return a > b ? a : b;
}
SNN_HD double snn_min_num(double a, double b) {
    if (snn_isnan(a)) return b;
    if (snn_isnan(b)) return a;
    return a < b ? a : b;
}

// connect::draw: a value from `d`, normals redrawn until inside the bounds
// (or clamped), uniforms min + (max - min) * open01().
SNN_HD double snn_draw_dist(const SnnDist* d, const SnnZigTables* zig, SnnRng* rng) {
    if (d->kind == SNN_DIST_NORMAL) {
        for (;;) {
            double x = d->value + d->std * snn_normal_zig(zig, rng);
            if (d->clip) {
                return snn_min_num(snn_max_num(x, d->min), d->max);
            }
            if (x >= d->min && x <= d->max) {
                return x;
            }
        }
    }
    if (d->kind == SNN_DIST_UNIFORM) {
        return d->min + (d->max - d->min) * snn_rng_open01(rng);
    }
    return d->value;
}

// model::quantize_weight: round(weight * 2^frac_bits) half away from zero,
// saturating to i32 (NaN gives 0), as Rust's saturating `as` casts.
SNN_HD int32_t snn_quantize_weight(double weight_pa, uint32_t frac_bits) {
    double x = weight_pa * snn_bits_to_double(((1023ull + frac_bits) & 0x7ffull) << 52);
    if (x >= 0.0) {
        double y = x + 0.5;
        return y >= 2147483648.0 ? 2147483647 : (int32_t)y;
    }
    double y = 0.5 - x;  // > 0.5, or NaN
    int64_t q;
    if (snn_isnan(y)) {
        q = 0;
    } else if (y >= 2147483648.0) {
        q = 2147483648ll;  // min(1 << 31) of the saturated i64
    } else {
        q = (int64_t)y;
    }
    return (int32_t)(-q);
}

// model::delay_to_steps: round(delay / dt) half up, at least 1 (NaN gives
// 1), saturating to u32.
SNN_HD uint32_t snn_delay_to_steps(double delay_ms, double dt_ms) {
    double x = delay_ms * (1.0 / dt_ms) + 0.5;
    if (x < 1.0 || snn_isnan(x)) {
        return 1;
    }
    return x >= 4294967296.0 ? 0xffffffffu : (uint32_t)x;
}

// Synapse k of target t: writes its source (population index), quantised
// weight and delay in steps.
SNN_HD void snn_draw_synapse(const SnnConnectParams* p, const SnnZigTables* zig, uint32_t t,
                             uint32_t k, uint32_t* src, int32_t* w, uint32_t* d) {
    SnnRng rng = snn_rng_new(p->seed, SNN_PURPOSE_SYNAPSE, p->projection, t, k);
    uint64_t s;
    do {
        s = snn_rng_below(&rng, p->n_src);
    } while (p->exclude_self && s == (uint64_t)t);
    *src = (uint32_t)s;
    *w = snn_quantize_weight(snn_draw_dist(&p->weight, zig, &rng), p->frac_bits);
    *d = snn_delay_to_steps(snn_draw_dist(&p->delay, zig, &rng), p->dt_ms);
}

// The synapses of n_targets targets: target i (population index tgt_index[i],
// local index tgt_local[i]) has the synapses k = 0 .. syn_offset[i + 1] -
// syn_offset[i] - 1, written at j = syn_offset[i] + k (syn_offset[0] = 0,
// non-decreasing; the in-degrees' prefix sums). Writes out_src[j] (source
// population index; n_src <= 2^32), out_w[j] (fixed-point weight) and
// out_td[j] = tgt_local[i] | delay_steps << target_bits; counts in
// *n_bad_delay the synapses whose delay does not fit beside the target bits
// (the host must reject the network if it is not 0, as rank.rs does).
SNN_KERNEL snn_connect_per_synapse(SnnConnectParams p, const SnnZigTables* zig,
                                   const uint64_t* syn_offset, uint32_t n_targets,
                                   const uint32_t* tgt_index, const uint32_t* tgt_local,
                                   uint32_t* out_src, int32_t* out_w, uint32_t* out_td,
                                   uint32_t* n_bad_delay) {
    uint64_t n_syn = syn_offset[n_targets];
    uint64_t delay_limit = 1ull << (32 - p.target_bits);
    SNN_FOR_GRID(j, n_syn) {
        // The target: the last i with syn_offset[i] <= j.
        uint32_t lo = 0, hi = n_targets;  // syn_offset[lo] <= j < syn_offset[hi]
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (syn_offset[mid] <= j) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        uint32_t k = (uint32_t)(j - syn_offset[lo]);
        uint32_t src, d;
        int32_t w;
        snn_draw_synapse(&p, zig, tgt_index[lo], k, &src, &w, &d);
        if ((uint64_t)d >= delay_limit) {
            snn_atomic_add_u32(n_bad_delay, 1u);
        }
        out_src[j] = src;
        out_w[j] = w;
        out_td[j] = tgt_local[lo] | (d << p.target_bits);
    }
}

#endif  // SNN_CONNECT_CU
