// iaf_psc_exp: one neuron's step (kernels/src/models/iaf_psc_exp.rs, State::step,
// for one neuron, with the same operations in the same order).
#ifndef SNN_IAF_PSC_EXP_CUH
#define SNN_IAF_PSC_EXP_CUH

#include "port.cuh"

// The constants (potentials relative to E_L). Mirrored by
// snn_kernels::models::iaf_psc_exp::Consts.
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

// Neuron i: vars[i] = V_m - E_L, vars[stride + i] = I_syn_ex,
// vars[2 * stride + i] = I_syn_in; returns whether it fires.
SNN_HD bool snn_iaf_psc_exp_neuron(const SnnIafPscExpConsts* c, double* vars, uint64_t stride,
                                   uint32_t* refractory, uint64_t i, double in_ex, double in_in) {
    double* v_rel = vars;
    double* i_syn_ex = vars + stride;
    double* i_syn_in = vars + 2 * stride;
    double v = v_rel[i];
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
    v_rel[i] = v;
    i_syn_ex[i] = ie;
    i_syn_in[i] = ii;
    refractory[i] = r;
    return spike;
}

#endif  // SNN_IAF_PSC_EXP_CUH
