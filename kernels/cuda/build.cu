// The GPU builder's kernels besides connection generation (connect.cu):
// prefix sums, the image map, grouping the generated synapses by source into
// the CSR rows and the canonical order inside rows. Twins of
// build-net/src/rank.rs (RankPlan::images and RankPlan::fill); driven by
// build-net/src/gpu.rs, which documents the pipeline.
//
// Determinism: the only atomics are integer counters. The scatter into rows
// (snn_build_scatter) takes slots from an atomic cursor, so the order inside
// a row after it depends on thread timing; snn_build_sort_rows then sorts
// each row by the synapses' canonical indices, which are distinct, so the
// final order is unique.
#ifndef SNN_BUILD_CU
#define SNN_BUILD_CU

#include "port.cuh"
#include "sort.cuh"

// Row index of a source without a row on this rank.
#define SNN_NO_ROW 0xffffffffu

// ---- Exclusive prefix sums of u32 counts into u64 offsets ----------------
//
// out[i] = in[0] + ... + in[i - 1] for i in 0 ..= n (out[n] is the total),
// in three launches without shared memory: the sums of segments of `seg`
// items (one thread per segment), the exclusive scan of those sums by one
// thread (partial holds n_seg + 1 entries; n_seg = ceil(n / seg)), and each
// segment's items from its offset (one thread per segment).

// partial[s] = sum of in[s * seg .. min(n, (s + 1) * seg)].
SNN_KERNEL snn_build_scan_partials(const uint32_t* in, uint64_t n, uint64_t seg,
                                   uint64_t* partial) {
    uint64_t n_seg = (n + seg - 1) / seg;
    SNN_FOR_GRID(s, n_seg) {
        uint64_t a = s * seg;
        uint64_t b = a + seg < n ? a + seg : n;
        uint64_t acc = 0;
        for (uint64_t i = a; i < b; ++i) {
            acc += in[i];
        }
        partial[s] = acc;
    }
}

// partial[0 .. n_seg] becomes its exclusive scan, partial[n_seg] and out[n]
// the total (one thread).
SNN_KERNEL snn_build_scan_top(uint64_t* partial, uint64_t n_seg, uint64_t* out, uint64_t n) {
    SNN_FOR_GRID(unused, 1) {
        (void)unused;
        uint64_t acc = 0;
        for (uint64_t s = 0; s < n_seg; ++s) {
            uint64_t x = partial[s];
            partial[s] = acc;
            acc += x;
        }
        partial[n_seg] = acc;
        out[n] = acc;
    }
}

// out[i] for i < n, from the segments' offsets.
SNN_KERNEL snn_build_scan_finish(const uint32_t* in, uint64_t n, uint64_t seg,
                                 const uint64_t* partial, uint64_t* out) {
    uint64_t n_seg = (n + seg - 1) / seg;
    SNN_FOR_GRID(s, n_seg) {
        uint64_t a = s * seg;
        uint64_t b = a + seg < n ? a + seg : n;
        uint64_t acc = partial[s];
        for (uint64_t i = a; i < b; ++i) {
            out[i] = acc;
            acc += in[i];
        }
    }
}

// ---- Small helpers --------------------------------------------------------

// out[i] = src[idx[i]] for i < n.
SNN_KERNEL snn_build_gather_u64(const uint64_t* src, const uint64_t* idx, uint64_t n,
                                uint64_t* out) {
    SNN_FOR_GRID(i, n) {
        out[i] = src[idx[i]];
    }
}

// totals[pair_proj[p]] += pair_n[p]: synapses per projection slot (64-bit
// atomic adds, order-independent).
SNN_KERNEL snn_build_proj_totals(const uint32_t* pair_n, uint32_t n_pairs,
                                 const uint32_t* pair_proj, int64_t* totals) {
    SNN_FOR_GRID(p, n_pairs) {
        if (pair_n[p] != 0) {
            snn_atomic_add_i64(&totals[pair_proj[p]], (int64_t)pair_n[p]);
        }
    }
}

// ---- Images and rows ------------------------------------------------------
//
// perm lists every global neuron grouped by owner rank (ranks in order,
// increasing ids inside a group: Placement::owned of rank 0, 1, ...); this
// rank's neurons are perm[own_lo .. own_hi], in local index order.

// flags[i] = 1 if perm[i] is another rank's neuron with synapses here.
SNN_KERNEL snn_build_image_flags(const uint32_t* perm, uint64_t n_neurons, uint64_t own_lo,
                                 uint64_t own_hi, const uint32_t* src_count, uint32_t* flags) {
    SNN_FOR_GRID(i, n_neurons) {
        bool own = i >= own_lo && i < own_hi;
        flags[i] = (!own && src_count[perm[i]] > 0) ? 1u : 0u;
    }
}

// The row of every global neuron (row_of, SNN_NO_ROW if none): own neurons
// their local index, images n_local + their position (pos: the exclusive
// scan of the flags); images[pos[i]] = the image's global id.
SNN_KERNEL snn_build_rows(const uint32_t* perm, uint64_t n_neurons, uint64_t own_lo,
                          uint64_t own_hi, const uint32_t* flags, const uint64_t* pos,
                          uint32_t n_local, uint32_t* row_of, uint64_t* images) {
    SNN_FOR_GRID(i, n_neurons) {
        uint32_t g = perm[i];
        if (i >= own_lo && i < own_hi) {
            row_of[g] = (uint32_t)(i - own_lo);
        } else if (flags[i]) {
            row_of[g] = n_local + (uint32_t)pos[i];
            images[pos[i]] = g;
        } else {
            row_of[g] = SNN_NO_ROW;
        }
    }
}

// row_len[row_of[g]] = src_count[g] for every neuron with a row.
SNN_KERNEL snn_build_row_len(const uint32_t* src_count, uint64_t n_neurons,
                             const uint32_t* row_of, uint32_t* row_len) {
    SNN_FOR_GRID(g, n_neurons) {
        uint32_t r = row_of[g];
        if (r != SNN_NO_ROW) {
            row_len[r] = src_count[g];
        }
    }
}

// ---- The CSR --------------------------------------------------------------

// Synapse j (canonical index) into a free slot of its source's row: key[row
// start + slot] = j, the slot from the row's atomic cursor. Counts in
// *n_err the synapses without a row or beyond their row (a bug: pass 1 and
// the counts disagree).
SNN_KERNEL snn_build_scatter(const uint32_t* gen_src, uint64_t n_syn, const uint32_t* row_of,
                             const uint64_t* row_ptr, uint32_t* cursor, uint64_t* key,
                             uint32_t* n_err) {
    SNN_FOR_GRID(j, n_syn) {
        uint32_t r = row_of[gen_src[j]];
        if (r == SNN_NO_ROW) {
            snn_atomic_add_u32(n_err, 1u);
            continue;
        }
        uint64_t at = row_ptr[r] + snn_atomic_add_u32(&cursor[r], 1u);
        if (at >= row_ptr[r + 1]) {
            snn_atomic_add_u32(n_err, 1u);
            continue;
        }
        key[at] = j;
    }
}

// Each row's keys sorted (one thread per row): the canonical order (target,
// projection, synapse index) inside rows, whatever the scatter's order.
SNN_KERNEL snn_build_sort_rows(const uint64_t* row_ptr, uint64_t n_rows, uint64_t* key) {
    SNN_FOR_GRID(r, n_rows) {
        snn_heap_sort(key + row_ptr[r], row_ptr[r + 1] - row_ptr[r]);
    }
}

// The final synapse arrays: out_*[i] = gen_*[key[i]].
SNN_KERNEL snn_build_gather_synapses(const uint64_t* key, uint64_t n_syn, const uint32_t* gen_td,
                                     const int32_t* gen_w, uint32_t* out_td, int32_t* out_w) {
    SNN_FOR_GRID(i, n_syn) {
        uint64_t j = key[i];
        out_td[i] = gen_td[j];
        out_w[i] = gen_w[j];
    }
}

#endif  // SNN_BUILD_CU
