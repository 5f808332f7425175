// Neuron update kernels: one step of neurons of any model, with the
// synaptic input of the step taken from the fixed-point ring buffer and the
// Poisson drive added, as the CPU engine does (simulate/src/engine.rs,
// Engine::update_step). The models' own updates are in
// kernels/src/models/<model>.cuh, twins of their State::step in
// kernels/src/models/<model>.rs, reached through snn_model_neuron of the
// generated models.cuh. Checked bit for bit against the CPU engine by
// tests/kernels_host.rs (root package).
//
// Determinism: the update uses + - * on doubles only, in the order of the
// Rust code (compile with --fmad=false / -ffp-contract=off); the
// propagators are computed once on the host (std exp/expm1) and passed in.
//
// Spikes: a neuron that fires appends one entry to the spike list by an
// atomic counter (compaction), so the order of the entries follows the
// threads' timing and is NOT deterministic. An entry is
// `(step - interval_start) << 32 | local index`, the format of the delivery
// kernel (deliver.cu) and of the wire entries of Engine::route; sorting the
// entries of an interval as u64 gives the spikes by step, then by local
// index, the order of the CPU engine's StepSpikes (the host sorts them after
// copying them back; a device-side radix sort of the interval's list is the
// alternative when recording stays on the device). If more than `capacity`
// neurons fire, the counter still counts them all and the extra entries are
// dropped: the host must check `*n_spikes <= capacity`.
#ifndef SNN_NEURON_CU
#define SNN_NEURON_CU

#include "port.cuh"
#include "philox.cuh"
#include "poisson.cuh"

// The models: their constants (the union SnnModelConsts) and
// snn_model_neuron, generated from the list of models (snn_kernels::models).
#include "models.cuh"

// What one step of one block of neurons (a contiguous range of local
// indices in one population) reads besides the state. Mirrored by
// snn_kernels::registry::StepInput.
struct SnnStepInput {
    uint64_t step;            // the step being updated, t
    uint64_t interval_start;  // first step of the interval (spike entries)
    uint64_t seed;            // simulation seed (Poisson words)
    double weight_scale;      // 2^-weight_frac_bits
    int64_t poisson_weight;   // fixed point
    uint64_t poisson_delay;   // steps
    uint32_t poisson_len;     // thresholds in the table; 0: no Poisson drive
    uint32_t first_local;     // local index of the block's neuron 0
    uint32_t n;               // neurons in the block
    uint32_t spike_capacity;  // entries of the spike list
};

// The synaptic input of local neuron `l` in step in->step, in pA: the ring
// buffer cells of the step (cleared for reuse), plus the Poisson count times
// the Poisson weight on the side of its sign, converted from fixed point as
// `(double)sum * 2^-frac` (Engine::update_step).
SNN_HD void snn_take_input(const SnnStepInput* in, int64_t* row_ex, int64_t* row_in, uint32_t l,
                           uint64_t gid, const uint64_t* table, double* ex_pa, double* in_pa) {
    int64_t ex = row_ex[l];
    int64_t inh = row_in[l];
    row_ex[l] = 0;
    row_in[l] = 0;
    if (in->poisson_len != 0 && in->step >= in->poisson_delay) {
        uint32_t u = snn_poisson_word(in->seed, gid, in->step - in->poisson_delay);
        int64_t k = (int64_t)snn_poisson_count(table, in->poisson_len, u);
        int64_t add = snn_wrapping_mul_i64(k, in->poisson_weight);
        if (in->poisson_weight >= 0) {
            ex = snn_wrapping_add_i64(ex, add);
        } else {
            inh = snn_wrapping_add_i64(inh, add);
        }
    }
    *ex_pa = (double)ex * in->weight_scale;
    *in_pa = (double)inh * in->weight_scale;
}

// Appends the spike of local neuron `l` to the list (see the top).
SNN_HD void snn_emit_spike(const SnnStepInput* in, uint32_t l, uint64_t* spikes,
                           uint32_t* n_spikes) {
    uint32_t slot = snn_atomic_add_u32(n_spikes, 1u);
    if (slot < in->spike_capacity) {
        spikes[slot] = ((in->step - in->interval_start) << 32) | (uint64_t)l;
    }
}

#ifdef SNN_TEST_KERNELS
// The per-population update kernel is a test kernel (feature test-kernels
// of snn-kernels): the engine runs snn_update_step, which calls the same
// per-neuron functions; the tests check those against the CPU neurons.

// One step of a block of in.n neurons of model `kind` (ModelId::kind) with
// constants `c`. The state rows (`vars`, `stride` apart: V_m first, then the
// model's other variables), `refractory` and `gid` (global ids, for the
// Poisson words) are indexed by the neuron's index in the block; the ring
// rows of the step (`ring + (step % slots) * n_local`) and the spike
// entries by local index (in.first_local + i). `table`: the Poisson
// thresholds (in.poisson_len of them; unused when 0).
SNN_KERNEL snn_model_update(uint32_t kind, SnnModelConsts c, SnnStepInput in, double* vars,
                            uint64_t stride, uint32_t* refractory, int64_t* row_ex,
                            int64_t* row_in, const uint64_t* gid, const uint64_t* table,
                            uint64_t* spikes, uint32_t* n_spikes) {
    SNN_FOR_GRID(i, in.n) {
        uint32_t l = in.first_local + (uint32_t)i;
        double in_ex, in_in;
        snn_take_input(&in, row_ex, row_in, l, gid[i], table, &in_ex, &in_in);
        if (snn_model_neuron(kind, &c, vars, stride, refractory, i, in_ex, in_in)) {
            snn_emit_spike(&in, l, spikes, n_spikes);
        }
    }
}
#endif  // SNN_TEST_KERNELS

// ---------------------------------------------------------------------------
// The fused update: every local neuron of a rank in one launch per step.
//
// The per-model kernels above take one population per launch; the engine
// (simulate/src/gpu.rs) instead keeps the state of all local neurons in
// whole-rank arrays indexed by local index and launches snn_update_step once
// per step. Each thread finds its neuron's population in a small table of
// descriptors (binary search on first_local; the descriptors cover the
// local indices 0 .. n_local in order) and runs the same per-neuron
// functions as the per-population test kernel (snn_take_input,
// snn_model_neuron, snn_emit_spike), so the arithmetic is literally the same
// code.

// SNN_POP_SPIKE_GENERATOR (the kind of a generators' descriptor; models have
// the kinds 0, 1, ... of ModelId::kind) and SNN_NO_COLUMN, defined once in
// Rust (snn_kernels::registry).
#include "constants.cuh"

// One population's local neurons (local indices first_local .. first_local +
// n). Mirrored by snn_kernels::registry::PopDesc.
struct SnnPopDesc {
    SnnModelConsts c;            // the model's constants (kind)
    double e_l;                  // E_L, mV: V_m = row 0 of the state + e_l
    int64_t poisson_weight;      // fixed point
    uint64_t poisson_delay;      // steps
    uint64_t table_offset;       // first threshold in the concatenated table
    uint64_t gen_offset;         // generators: first step in gen_steps
    uint32_t gen_len;            // generators: steps in their (sorted) list
    uint32_t poisson_len;        // thresholds; 0: no Poisson drive
    uint32_t kind;               // ModelId::kind or SNN_POP_SPIKE_GENERATOR
    uint32_t first_local;
    uint32_t n;
    uint32_t pad;
};

// What one step of the fused update reads besides the tables and the
// state. Mirrored by snn_kernels::registry::UpdateStep.
struct SnnUpdateStep {
    uint64_t step;            // the step being updated, t
    uint64_t interval_start;  // first step of the interval (spike entries)
    uint64_t seed;            // simulation seed (Poisson words)
    double weight_scale;      // 2^-weight_frac_bits
    uint64_t rec_offset;      // t - first step of the recording chunk
    uint32_t n_local;         // local neurons (threads' work)
    uint32_t n_pops;          // descriptors
    uint32_t spike_capacity;  // entries of the spike list
    uint32_t record_spikes;   // 1: append the step's spikes to rec
    uint32_t rec_capacity;    // entries of rec
    uint32_t record_vm;       // 1: write the recorded V_m into vm_row
    uint32_t reset_next;      // 1: block 0 thread 0 sets *n_spikes_next = 0
    uint32_t pad;
};

// The descriptor of local neuron l (pops[0].first_local == 0, ascending).
SNN_HD const SnnPopDesc* snn_find_pop(const SnnPopDesc* pops, uint32_t n_pops, uint32_t l) {
    uint32_t lo = 0;
    uint32_t hi = n_pops;
    while (hi - lo > 1u) {
        uint32_t mid = lo + (hi - lo) / 2u;
        if (pops[mid].first_local <= l) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return &pops[lo];
}

// Whether `step` is in the sorted list steps[0 .. n].
SNN_HD bool snn_step_listed(const uint64_t* steps, uint32_t n, uint64_t step) {
    uint32_t lo = 0;
    uint32_t hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        uint64_t x = steps[mid];
        if (x == step) {
            return true;
        }
        if (x < step) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return false;
}

// One step of every local neuron (s.n_local of them). The state rows
// (`vars`: row k, variable k of every model that has one, is vars[k *
// n_local ..]; V_m - E_L is row 0), `refractory`, `gid` (global ids), `vm_col` and
// the ring rows of the step (`ring + (step % slots) * n_local`) are indexed
// by local index. `table`: the populations' Poisson thresholds, concatenated
// (descriptor: table_offset, poisson_len); `gen_steps`: the generators'
// sorted spike steps, concatenated (gen_offset, gen_len): a generator
// neuron fires in the steps of its list (Dynamics::Generator).
//
// Spikes are appended to `spikes` through *n_spikes (snn_emit_spike). With
// s.record_spikes, each is also appended to `rec` as `rec_offset << 32 |
// local` through *n_rec (at most rec_capacity; past it *err_record is
// incremented), so recording needs no launch of its own. With s.record_vm,
// the membrane potential after the update of each neuron with vm_col[l] !=
// SNN_NO_COLUMN is written to vm_row[vm_col[l]] (V_m recording; generators
// have no column). With s.reset_next, *n_spikes_next (the other interval
// parity's counter, which no thread of this launch touches) is set to 0.
SNN_KERNEL snn_update_step(SnnUpdateStep s, const SnnPopDesc* pops, double* vars,
                           uint32_t* refractory, int64_t* row_ex,
                           int64_t* row_in, const uint64_t* gid, const uint64_t* table,
                           const uint64_t* gen_steps, uint64_t* spikes, uint32_t* n_spikes,
                           uint32_t* n_spikes_next, uint64_t* rec, uint32_t* n_rec,
                           uint32_t* err_record, const uint32_t* vm_col, double* vm_row) {
    if (s.reset_next != 0u && SNN_BLOCK_IDX == 0 && SNN_THREAD_IDX == 0) {
        *n_spikes_next = 0u;
    }
    SNN_FOR_GRID(i, s.n_local) {
        uint32_t l = (uint32_t)i;
        const SnnPopDesc* d = snn_find_pop(pops, s.n_pops, l);
        SnnStepInput in;
        in.step = s.step;
        in.interval_start = s.interval_start;
        in.seed = s.seed;
        in.weight_scale = s.weight_scale;
        in.poisson_weight = d->poisson_weight;
        in.poisson_delay = d->poisson_delay;
        in.poisson_len = d->poisson_len;
        in.first_local = d->first_local;
        in.n = d->n;
        in.spike_capacity = s.spike_capacity;
        bool spike;
        if (d->kind == SNN_POP_SPIKE_GENERATOR) {
            spike = snn_step_listed(gen_steps + d->gen_offset, d->gen_len, s.step);
        } else {
            double in_ex, in_in;
            snn_take_input(&in, row_ex, row_in, l, gid[l], table + d->table_offset, &in_ex,
                           &in_in);
            spike = snn_model_neuron(d->kind, &d->c, vars, s.n_local, refractory, l, in_ex,
                                     in_in);
            if (s.record_vm != 0u) {
                uint32_t c = vm_col[l];
                if (c != SNN_NO_COLUMN) {
                    vm_row[c] = vars[l] + d->e_l;
                }
            }
        }
        if (spike) {
            snn_emit_spike(&in, l, spikes, n_spikes);
            if (s.record_spikes != 0u) {
                uint32_t slot = snn_atomic_add_u32(n_rec, 1u);
                if (slot < s.rec_capacity) {
                    rec[slot] = (s.rec_offset << 32) | (uint64_t)l;
                } else {
                    snn_atomic_add_u32(err_record, 1u);
                }
            }
        }
    }
}

#endif  // SNN_NEURON_CU
