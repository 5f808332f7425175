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
// snn_connect_per_synapse writes each synapse's (source, weight, target |
// delay << target_bits) in (target, k) order for one projection. The GPU
// builder (build-net/src/gpu.rs) uses the kernels at the end of this file
// instead, which generate every synapse of a rank at once in canonical order
// (see snn_build_synapses) for every rule; build.cu groups them into the CSR.
#ifndef SNN_CONNECT_CU
#define SNN_CONNECT_CU

#include "port.cuh"
#include "philox.cuh"
#include "detmath.cuh"
#include "ziggurat.cuh"
#include "sort.cuh"
// SNN_DIST_* and SNN_RULE_*, defined once in Rust (snn_kernels::registry).
#include "constants.cuh"

// A resolved distribution (snn_formats::model::Dist). Mirrored by
// snn_kernels::registry::DistParams.
struct SnnDist {
    uint32_t kind;  // SNN_DIST_*
    uint32_t clip;  // normal: clamp to [min, max] instead of redrawing
    double value;   // constant: the value; normal: the mean
    double std;     // normal: the standard deviation
    double min;     // normal and uniform: lower bound (-inf if none)
    double max;     // normal and uniform: upper bound (+inf if none)
};

// One projection, prepared (connect::ProjPlan). Mirrored by
// snn_kernels::registry::ConnectParams.
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

#ifdef SNN_TEST_KERNELS
// A test kernel (feature test-kernels of snn-kernels): the builder generates
// with snn_build_synapses, which draws each synapse as snn_draw_synapse does.

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
#endif  // SNN_TEST_KERNELS

// ---- The GPU builder's generation (build-net/src/gpu.rs) ------------------
//
// A rank's synapses are generated at once, in canonical order: target-major
// (local index), then the projections targeting the target's population in
// config order, then the synapse index k. A (target, projection) pair p has
// the synapses tp_off[p] .. tp_off[p + 1] (the in-degrees' prefix sums), so
// synapse j belongs to the last pair p with tp_off[p] <= j and has k = j -
// tp_off[p]. Every value is a pure function of (projection, target, k), so
// the result does not depend on the launch shape or thread order. Checked
// through whole builds (shards byte for byte against the CPU builder) by
// tests/gpu_build_host.rs (root package).

// How a projection's sources are found (connect::ProjPlan's modes, per rule):
// SNN_RULE_* of constants.cuh.

// One projection of the builder. Mirrored by
// snn_kernels::registry::BuildProjParams.
struct SnnBuildProj {
    SnnConnectParams c;  // c.target_bits: the rank's
    uint64_t src_first;  // global id of the first source neuron
    double ln_1mp;       // pairwise_bernoulli: ln(1 - p) (ProjPlan::ln_1mp)
    uint32_t rule;       // SNN_RULE_*
    uint32_t pad;        // 0
};

// The pair of synapse j: the last p < n_pairs with tp_off[p] <= j
// (tp_off[0] = 0 <= j < tp_off[n_pairs]).
SNN_HD uint32_t snn_build_pair_of(const uint64_t* tp_off, uint32_t n_pairs, uint64_t j) {
    uint32_t lo = 0, hi = n_pairs;  // tp_off[lo] <= j < tp_off[hi]
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tp_off[mid] <= j) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// ProjPlan::listed_sources for pairwise_bernoulli: the connected sources of
// target t walked by geometric gaps in the stream Bernoulli(p, t, 0). With
// out == 0 only counts them; otherwise also writes src_first + s to out[m].
SNN_HD uint32_t snn_build_bernoulli_walk(const SnnBuildProj* P, uint32_t t, uint32_t* out) {
    SnnRng rng = snn_rng_new(P->c.seed, SNN_PURPOSE_BERNOULLI, P->c.projection, t, 0);
    uint64_t s = 0;
    uint32_t m = 0;
    for (;;) {
        uint64_t skip = snn_geometric_skip(&rng, P->ln_1mp);
        s = skip > 0xffffffffffffffffull - s ? 0xffffffffffffffffull : s + skip;  // saturating
        if (s >= P->c.n_src) {
            break;
        }
        if (!(P->c.exclude_self && s == (uint64_t)t)) {
            if (out) {
                out[m] = (uint32_t)(P->src_first + s);
            }
            m += 1;
        }
        s += 1;
    }
    return m;
}

// In-degrees of the pairwise_bernoulli pairs: pair_n[p] for each pair whose
// projection (projs[pair_proj[p]]) has SNN_RULE_BERNOULLI; others untouched.
SNN_KERNEL snn_build_bernoulli_count(const SnnBuildProj* projs, uint32_t n_pairs,
                                     const uint32_t* pair_tgt_index, const uint32_t* pair_proj,
                                     uint32_t* pair_n) {
    SNN_FOR_GRID(p, n_pairs) {
        const SnnBuildProj* P = &projs[pair_proj[p]];
        if (P->rule == SNN_RULE_BERNOULLI) {
            pair_n[p] = snn_build_bernoulli_walk(P, pair_tgt_index[p], 0);
        }
    }
}

// Sources (global ids) of the pairwise_bernoulli pairs, at out_src[tp_off[p]
// ...] (in-degrees from snn_build_bernoulli_count).
SNN_KERNEL snn_build_bernoulli_sources(const SnnBuildProj* projs, uint32_t n_pairs,
                                       const uint32_t* pair_tgt_index, const uint32_t* pair_proj,
                                       const uint64_t* tp_off, uint32_t* out_src) {
    SNN_FOR_GRID(p, n_pairs) {
        const SnnBuildProj* P = &projs[pair_proj[p]];
        if (P->rule == SNN_RULE_BERNOULLI) {
            snn_build_bernoulli_walk(P, pair_tgt_index[p], out_src + tp_off[p]);
        }
    }
}

// Slot i of a hash table of 2k entries kept in two arrays of k (a, then b).
SNN_HD uint32_t* snn_build_slot(uint32_t* a, uint32_t* b, uint64_t k, uint64_t i) {
    return i < k ? &a[i] : &b[i - k];
}

// ProjPlan::listed_sources for fixed_indegree without multapses: Floyd's
// sampling of k distinct sources among avail = n_src - exclude_self in the
// stream NoMultapse(p, t, 0), sorted, shifted past the target when autapses
// are excluded. One thread per pair of such a projection (the in-degree k =
// min(indegree, avail) comes from tp_off); the set is an open-addressing
// hash table (value + 1, 0 = empty; load at most 1/2) in the pair's ranges
// of scratch_a and scratch_b (the generated weights and packed words, which
// snn_build_synapses overwrites afterwards). Writes src_first + s to
// out_src[tp_off[p] ...].
SNN_KERNEL snn_build_distinct_sources(const SnnBuildProj* projs, uint32_t n_pairs,
                                      const uint32_t* pair_tgt_index, const uint32_t* pair_proj,
                                      const uint64_t* tp_off, uint32_t* out_src,
                                      uint32_t* scratch_a, uint32_t* scratch_b) {
    SNN_FOR_GRID(p, n_pairs) {
        const SnnBuildProj* P = &projs[pair_proj[p]];
        if (P->rule != SNN_RULE_DISTINCT) {
            continue;
        }
        uint64_t base = tp_off[p];
        uint64_t k = tp_off[p + 1] - base;
        if (k == 0) {
            continue;
        }
        uint32_t t = pair_tgt_index[p];
        uint64_t avail = P->c.n_src - (P->c.exclude_self ? 1u : 0u);
        uint32_t* a = scratch_a + base;
        uint32_t* b = scratch_b + base;
        uint64_t size = 2 * k;
        for (uint64_t i = 0; i < size; ++i) {
            *snn_build_slot(a, b, k, i) = 0;
        }
        SnnRng rng = snn_rng_new(P->c.seed, SNN_PURPOSE_NO_MULTAPSE, P->c.projection, t, 0);
        for (uint64_t j = avail - k; j < avail; ++j) {
            uint64_t r = snn_rng_below(&rng, j + 1);
            // Insert r; if it is there already, insert j (never there: every
            // value so far is below j).
            for (int pass = 0; pass < 2; ++pass) {
                uint64_t v = pass == 0 ? r : j;
                uint64_t h = ((v * 0x9E3779B97F4A7C15ull) >> 32) % size;
                bool found = false;
                for (;;) {
                    uint32_t* s = snn_build_slot(a, b, k, h);
                    if (*s == 0) {
                        *s = (uint32_t)(v + 1);
                        break;
                    }
                    if (*s == (uint32_t)(v + 1)) {
                        found = true;
                        break;
                    }
                    h = h + 1 == size ? 0 : h + 1;
                }
                if (!found) {
                    break;
                }
            }
        }
        uint32_t* out = out_src + base;
        uint64_t m = 0;
        for (uint64_t i = 0; i < size; ++i) {
            uint32_t x = *snn_build_slot(a, b, k, i);
            if (x != 0) {
                out[m++] = x - 1;
            }
        }
        snn_heap_sort(out, m);
        for (uint64_t i = 0; i < m; ++i) {
            uint64_t s = out[i];
            if (P->c.exclude_self && s >= (uint64_t)t) {
                s += 1;
            }
            out[i] = (uint32_t)(P->src_first + s);
        }
    }
}

// Every synapse of the rank (ProjPlan::for_each_synapse): synapse j of pair
// p (target population index pair_tgt_index[p], local index
// pair_tgt_local[p], projection slot pair_proj[p]) reads the stream
// Synapse(projection, t, k): the source first for SNN_RULE_PER_SYNAPSE, then
// the weight and the delay. Writes out_src[j] (global source id; read there
// instead for SNN_RULE_BERNOULLI and SNN_RULE_DISTINCT, written before),
// out_w[j], out_td[j] = local target | delay_steps << target_bits; adds 1 to
// src_count[source] (synapses per global source) and, for a delay that does
// not fit beside the target bits, to n_bad_delay[slot].
SNN_KERNEL snn_build_synapses(const SnnBuildProj* projs, const SnnZigTables* zig,
                              const uint64_t* tp_off, uint32_t n_pairs,
                              const uint32_t* pair_tgt_index, const uint32_t* pair_tgt_local,
                              const uint32_t* pair_proj, uint32_t* out_src, int32_t* out_w,
                              uint32_t* out_td, uint32_t* src_count, uint32_t* n_bad_delay) {
    uint64_t n_syn = n_pairs == 0 ? 0 : tp_off[n_pairs];
    SNN_FOR_GRID(j, n_syn) {
        uint32_t p = snn_build_pair_of(tp_off, n_pairs, j);
        uint32_t slot = pair_proj[p];
        const SnnBuildProj* P = &projs[slot];
        uint32_t t = pair_tgt_index[p];
        uint64_t k = j - tp_off[p];
        SnnRng rng = snn_rng_new(P->c.seed, SNN_PURPOSE_SYNAPSE, P->c.projection, t, (uint32_t)k);
        uint64_t src;
        if (P->rule == SNN_RULE_PER_SYNAPSE) {
            uint64_t s;
            do {
                s = snn_rng_below(&rng, P->c.n_src);
            } while (P->c.exclude_self && s == (uint64_t)t);
            src = P->src_first + s;
        } else if (P->rule == SNN_RULE_ONE_TO_ONE) {
            src = P->src_first + t;
        } else if (P->rule == SNN_RULE_ALL_TO_ALL) {
            src = P->src_first + k + ((P->c.exclude_self && k >= (uint64_t)t) ? 1u : 0u);
        } else {
            src = out_src[j];
        }
        int32_t w = snn_quantize_weight(snn_draw_dist(&P->c.weight, zig, &rng), P->c.frac_bits);
        uint32_t d = snn_delay_to_steps(snn_draw_dist(&P->c.delay, zig, &rng), P->c.dt_ms);
        if ((uint64_t)d >= (1ull << (32 - P->c.target_bits))) {
            snn_atomic_add_u32(&n_bad_delay[slot], 1u);
        }
        out_src[j] = (uint32_t)src;
        out_w[j] = w;
        out_td[j] = pair_tgt_local[p] | (d << P->c.target_bits);
        snn_atomic_add_u32(&src_count[src], 1u);
    }
}

#endif  // SNN_CONNECT_CU
