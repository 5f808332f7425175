// iaf_psc_alpha: one neuron's step (kernels/src/models/iaf_psc_alpha.rs,
// State::step, for one neuron, with the same operations in the same order).
#ifndef SNN_IAF_PSC_ALPHA_CUH
#define SNN_IAF_PSC_ALPHA_CUH

#include "port.cuh"

// The constants (potentials relative to E_L). Mirrored by
// snn_kernels::models::iaf_psc_alpha::Consts.
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

// Neuron i: vars rows V_m - E_L, I_syn_ex, dI_syn_ex, I_syn_in,
// dI_syn_in, each `stride` long; returns whether it fires.
SNN_HD bool snn_iaf_psc_alpha_neuron(const SnnIafPscAlphaConsts* c, double* vars,
                                     uint64_t stride, uint32_t* refractory, uint64_t i,
                                     double in_ex, double in_in) {
    double* v_rel = vars;
    double* i_syn_ex = vars + stride;
    double* di_syn_ex = vars + 2 * stride;
    double* i_syn_in = vars + 3 * stride;
    double* di_syn_in = vars + 4 * stride;
    double v = v_rel[i];
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
    v_rel[i] = v;
    i_syn_ex[i] = ie;
    di_syn_ex[i] = die;
    i_syn_in[i] = ii;
    di_syn_in[i] = dii;
    refractory[i] = r;
    return spike;
}

#endif  // SNN_IAF_PSC_ALPHA_CUH
