// iaf_psc_delta: one neuron's step (kernels/src/models/iaf_psc_delta.rs,
// State::step, for one neuron, with the same operations in the same order).
#ifndef SNN_IAF_PSC_DELTA_CUH
#define SNN_IAF_PSC_DELTA_CUH

#include "port.cuh"

// The constants (potentials relative to E_L). Mirrored by
// snn_kernels::models::iaf_psc_delta::Consts.
struct SnnIafPscDeltaConsts {
    double e_l;
    double theta;
    double v_reset;
    double i_e;
    double p33;
    double p30;
    uint32_t refractory_steps;
    uint32_t pad;
};

// Neuron i: vars[i] = V_m - E_L; the step's input (mV) is added to V in
// this step unless the neuron is refractory. Returns whether it fires.
SNN_HD bool snn_iaf_psc_delta_neuron(const SnnIafPscDeltaConsts* c, double* vars,
                                     uint64_t stride, uint32_t* refractory, uint64_t i,
                                     double in_ex, double in_in) {
    (void)stride;
    double* v_rel = vars;
    double v = v_rel[i];
    uint32_t r = refractory[i];
    if (r == 0) {
        v = c->p30 * c->i_e + c->p33 * v + (in_ex + in_in);
    } else {
        r -= 1;
    }
    bool spike = false;
    if (v >= c->theta) {
        r = c->refractory_steps;
        v = c->v_reset;
        spike = true;
    }
    v_rel[i] = v;
    refractory[i] = r;
    return spike;
}

#endif  // SNN_IAF_PSC_DELTA_CUH
