// Neuron update kernels: one step of a block of iaf_psc_exp or
// iaf_psc_alpha neurons, with the synaptic input of the step taken from the
// fixed-point ring buffer and the Poisson drive added, as the CPU engine
// does (simulate/src/engine.rs, Engine::update_step, and
// simulate/src/neuron.rs, IafPsc{Exp,Alpha}State::step). Checked bit for
// bit against them by tests/kernels_host.rs (root package).
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

// iaf_psc_exp constants (neuron::IafPscExpConsts; potentials relative to
// E_L). Mirrored by snn_kernels::device::ExpConsts.
struct SnnIafPscExpConsts {
    double e_l;
    double theta;
    double v_reset;
    double i_e;
    double p22;
    double p11_ex;
    double p11_in;
    double p21_ex;
    double p21_in;
    double p20;
    uint32_t refractory_steps;
    uint32_t pad;
};

// iaf_psc_alpha constants (neuron::IafPscAlphaConsts). Mirrored by
// snn_kernels::device::AlphaConsts.
struct SnnIafPscAlphaConsts {
    double e_l;
    double theta;
    double v_reset;
    double i_e;
    double expm1_tau_m;
    double p30;
    double p11_ex;
    double p21_ex;
    double p31_ex;
    double p32_ex;
    double p11_in;
    double p21_in;
    double p31_in;
    double p32_in;
    double epsc_initial;
    double ipsc_initial;
    uint32_t refractory_steps;
    uint32_t pad;
};

// What one step of one block of neurons (a contiguous range of local
// indices in one population) reads besides the state. Mirrored by
// snn_kernels::device::StepInput.
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

// One step of iaf_psc_exp neuron `i` of a block (IafPscExpState::step, for
// one neuron); returns whether it fires.
SNN_HD bool snn_iaf_psc_exp_neuron(const SnnIafPscExpConsts* c, double* v_m, double* i_syn_ex,
                                   double* i_syn_in, uint32_t* refractory, uint64_t i,
                                   double in_ex, double in_in) {
    double v = v_m[i] - c->e_l;
    double ie = i_syn_ex[i];
    double ii = i_syn_in[i];
    uint32_t r = refractory[i];
    if (r == 0) {
        v = v * c->p22 + ie * c->p21_ex + ii * c->p21_in + c->i_e * c->p20;
    } else {
        r -= 1;
    }
    ie *= c->p11_ex;
    ii *= c->p11_in;
    ie += in_ex;
    ii += in_in;
    bool spike = false;
    if (v >= c->theta) {
        r = c->refractory_steps;
        v = c->v_reset;
        spike = true;
    }
    v_m[i] = v + c->e_l;
    i_syn_ex[i] = ie;
    i_syn_in[i] = ii;
    refractory[i] = r;
    return spike;
}

// One step of iaf_psc_alpha neuron `i` of a block (IafPscAlphaState::step).
SNN_HD bool snn_iaf_psc_alpha_neuron(const SnnIafPscAlphaConsts* c, double* v_m,
                                     double* i_syn_ex, double* di_syn_ex, double* i_syn_in,
                                     double* di_syn_in, uint32_t* refractory, uint64_t i,
                                     double in_ex, double in_in) {
    double v = v_m[i] - c->e_l;
    double ie = i_syn_ex[i];
    double die = di_syn_ex[i];
    double ii = i_syn_in[i];
    double dii = di_syn_in[i];
    uint32_t r = refractory[i];
    if (r == 0) {
        v = c->p30 * c->i_e + c->p31_ex * die + c->p32_ex * ie + c->p31_in * dii +
            c->p32_in * ii + c->expm1_tau_m * v + v;
    } else {
        r -= 1;
    }
    ie = c->p21_ex * die + c->p11_ex * ie;
    die *= c->p11_ex;
    die += c->epsc_initial * in_ex;
    ii = c->p21_in * dii + c->p11_in * ii;
    dii *= c->p11_in;
    dii += c->ipsc_initial * in_in;
    bool spike = false;
    if (v >= c->theta) {
        r = c->refractory_steps;
        v = c->v_reset;
        spike = true;
    }
    v_m[i] = v + c->e_l;
    i_syn_ex[i] = ie;
    di_syn_ex[i] = die;
    i_syn_in[i] = ii;
    di_syn_in[i] = dii;
    refractory[i] = r;
    return spike;
}

// One step of a block of in.n iaf_psc_exp neurons. State arrays and `gid`
// (global ids, for the Poisson words) are indexed by the neuron's index in
// the block; the ring rows of the step (`ring + (step % slots) * n_local`)
// and the spike entries by local index (in.first_local + i). `table`: the
// Poisson thresholds (in.poisson_len of them; unused when 0).
SNN_KERNEL snn_iaf_psc_exp_update(SnnIafPscExpConsts c, SnnStepInput in, double* v_m,
                                  double* i_syn_ex, double* i_syn_in, uint32_t* refractory,
                                  int64_t* row_ex, int64_t* row_in, const uint64_t* gid,
                                  const uint64_t* table, uint64_t* spikes, uint32_t* n_spikes) {
    SNN_FOR_GRID(i, in.n) {
        uint32_t l = in.first_local + (uint32_t)i;
        double in_ex, in_in;
        snn_take_input(&in, row_ex, row_in, l, gid[i], table, &in_ex, &in_in);
        if (snn_iaf_psc_exp_neuron(&c, v_m, i_syn_ex, i_syn_in, refractory, i, in_ex, in_in)) {
            snn_emit_spike(&in, l, spikes, n_spikes);
        }
    }
}

// One step of a block of in.n iaf_psc_alpha neurons (arguments as for
// snn_iaf_psc_exp_update, with the current derivatives dI).
SNN_KERNEL snn_iaf_psc_alpha_update(SnnIafPscAlphaConsts c, SnnStepInput in, double* v_m,
                                    double* i_syn_ex, double* di_syn_ex, double* i_syn_in,
                                    double* di_syn_in, uint32_t* refractory, int64_t* row_ex,
                                    int64_t* row_in, const uint64_t* gid, const uint64_t* table,
                                    uint64_t* spikes, uint32_t* n_spikes) {
    SNN_FOR_GRID(i, in.n) {
        uint32_t l = in.first_local + (uint32_t)i;
        double in_ex, in_in;
        snn_take_input(&in, row_ex, row_in, l, gid[i], table, &in_ex, &in_in);
        if (snn_iaf_psc_alpha_neuron(&c, v_m, i_syn_ex, di_syn_ex, i_syn_in, di_syn_in, refractory,
                                     i, in_ex, in_in)) {
            snn_emit_spike(&in, l, spikes, n_spikes);
        }
    }
}

#endif  // SNN_NEURON_CU
