//! NEST `iaf_psc_alpha`: leaky integrate-and-fire neuron with alpha-shaped
//! postsynaptic currents; CUDA twin `iaf_psc_alpha.cuh`.
//!
//! Each synapse type has two variables, the current `I_X` and its
//! derivative `dI_X` (`d(dI_X)/dt = -dI_X/tau_syn_X`, `d(I_X)/dt = dI_X -
//! I_X/tau_syn_X`); an incoming weight `w` (pA) adds `e/tau_syn_X * w` to
//! `dI_X`, so that the current `I_X(t) = w t/tau_syn_X exp(1 - t/tau_syn_X)`
//! peaks at `w`, `tau_syn_X` after the arrival:
//!
//! ```text
//! V(t+h)    = P30 I_e + P31ex dI_ex + P32ex I_ex + P31in dI_in + P32in I_in + expm1(-h/tau_m) V + V
//! I_X(t+h)  = P21X dI_X + P22X I_X,    dI_X(t+h) = P11X dI_X
//! P11X = P22X = exp(-h/tau_syn_X),  P21X = h P11X,  P30 = -tau_m/C_m expm1(-h/tau_m)
//! P32X = as P21X of iaf_psc_exp,
//! P31X = gamma_X exp(-h/tau_syn_X) (beta_X expm1(h/beta_X) - h),
//!        beta_X = tau_syn_X tau_m / (tau_m - tau_syn_X), gamma_X = beta_X / C_m
//!      = h^2/(2 C_m) exp(-h/tau_m)       (h <= 1e-7 tau_m^2 / |tau_m - tau_syn_X|)
//! ```
//!
//! (NEST 3.10 `iaf_psc_alpha::pre_run_hook` and `IAFPropagator`.) NEST's
//! balanced-network benchmark (Brunel 2000) uses this model.

use std::ops::Range;

use super::iaf::{iaf_propagators, nest_expm1};
use super::{check_step_args, push_flagged, refractory_steps, ModelParams};

/// The CUDA update, `snn_iaf_psc_alpha_neuron`.
pub const CUDA: &str = include_str!("iaf_psc_alpha.cuh");

device_struct! {
    /// `SnnIafPscAlphaConsts` (`iaf_psc_alpha.cuh`): the per-population
    /// constants, potentials relative to `E_L`. Made by [`consts`].
    pub struct Consts {
        /// `E_L`, mV.
        pub e_l: f64,
        /// `V_th - E_L`, mV.
        pub theta: f64,
        /// `V_reset - E_L`, mV.
        pub v_reset: f64,
        /// `I_e`, pA.
        pub i_e: f64,
        /// `expm1(-h/tau_m)`: `V(t+h) = ... + expm1_tau_m V + V`.
        pub expm1_tau_m: f64,
        /// `I_e -> V` propagator `-tau_m/C_m expm1(-h/tau_m)`, mV/pA.
        pub p30: f64,
        /// `exp(-h/tau_syn_ex)`.
        pub p11_ex: f64,
        /// `h exp(-h/tau_syn_ex)`.
        pub p21_ex: f64,
        /// `dI_ex -> V`.
        pub p31_ex: f64,
        /// `I_ex -> V`.
        pub p32_ex: f64,
        /// `exp(-h/tau_syn_in)`.
        pub p11_in: f64,
        /// `h exp(-h/tau_syn_in)`.
        pub p21_in: f64,
        /// `dI_in -> V`.
        pub p31_in: f64,
        /// `I_in -> V`.
        pub p32_in: f64,
        /// `e / tau_syn_ex`, 1/ms: a weight `w` adds `w e/tau_syn_ex` to
        /// `dI_ex`.
        pub epsc_initial: f64,
        /// `e / tau_syn_in`.
        pub ipsc_initial: f64,
        /// Refractory period, steps.
        pub refractory_steps: u32,
        /// Padding (0).
        pub pad: u32,
    }
}

/// [`Consts`] for parameters `p` and step `dt_ms` (NEST 3.10
/// `iaf_psc_alpha::pre_run_hook`).
pub fn consts(p: &ModelParams, dt_ms: f64) -> Consts {
    let h = dt_ms;
    let p11_ex = (-h / p.tau_syn_ex).exp();
    let p11_in = (-h / p.tau_syn_in).exp();
    let expm1_tau_m = nest_expm1(-h / p.tau_m);
    let p30 = -p.tau_m / p.C_m * nest_expm1(-h / p.tau_m);
    let (p31_ex, p32_ex) = iaf_propagators(p.tau_syn_ex, p.tau_m, p.C_m, h);
    let (p31_in, p32_in) = iaf_propagators(p.tau_syn_in, p.tau_m, p.C_m, h);
    Consts {
        e_l: p.E_L,
        theta: p.V_th - p.E_L,
        v_reset: p.V_reset - p.E_L,
        i_e: p.I_e,
        expm1_tau_m,
        p30,
        p11_ex,
        p21_ex: h * p11_ex,
        p31_ex,
        p32_ex,
        p11_in,
        p21_in: h * p11_in,
        p31_in,
        p32_in,
        epsc_initial: 1.0 * std::f64::consts::E / p.tau_syn_ex,
        ipsc_initial: 1.0 * std::f64::consts::E / p.tau_syn_in,
        refractory_steps: refractory_steps(p.t_ref, dt_ms),
        pad: 0,
    }
}

neuron_state! {
    /// State of `n` `iaf_psc_alpha` neurons (structure of arrays).
    magic b"SNNALP02" {
        /// Membrane potential relative to `E_L`, mV (NEST's `y3`).
        v_rel,
        /// Excitatory synaptic current `I_ex`, pA.
        i_syn_ex,
        /// Its derivative `dI_ex`, pA/ms.
        di_syn_ex,
        /// Inhibitory synaptic current `I_in`, pA.
        i_syn_in,
        /// Its derivative `dI_in`, pA/ms.
        di_syn_in,
    }
}

impl State {
    step_with_avx2!();

    #[inline(always)]
    fn step_body(
        &mut self,
        c: &Consts,
        range: Range<usize>,
        in_ex_pa: &[f64],
        in_in_pa: &[f64],
        spikes: &mut Vec<u32>,
    ) {
        let n = check_step_args(self.len(), &range, in_ex_pa, in_in_pa);
        let start = range.start;
        let v_rel = &mut self.v_rel[range.clone()];
        let i_ex = &mut self.i_syn_ex[range.clone()];
        let di_ex = &mut self.di_syn_ex[range.clone()];
        let i_in = &mut self.i_syn_in[range.clone()];
        let di_in = &mut self.di_syn_in[range.clone()];
        let r_ref = &mut self.refractory[range];
        let (in_ex, in_in) = (&in_ex_pa[..n], &in_in_pa[..n]);
        let (i_e, p30, expm1_tau_m) = (c.i_e, c.p30, c.expm1_tau_m);
        let (p11_ex, p21_ex, p31_ex, p32_ex) = (c.p11_ex, c.p21_ex, c.p31_ex, c.p32_ex);
        let (p11_in, p21_in, p31_in, p32_in) = (c.p11_in, c.p21_in, c.p31_in, c.p32_in);
        let (theta, v_reset) = (c.theta, c.v_reset);
        let (epsc, ipsc) = (c.epsc_initial, c.ipsc_initial);
        // Branch-free, as `iaf_psc_exp::State::step`.
        let mut flags = [0u32; 64];
        for b in (0..n).step_by(64) {
            let m = 64.min(n - b);
            let f = &mut flags[..m];
            // Whether any neuron of the block fired, accumulated in the
            // loop (in a register), so that blocks without a spike skip
            // the scan of their flags.
            let mut any = 0u32;
            let v_rel = &mut v_rel[b..b + m];
            let i_ex = &mut i_ex[b..b + m];
            let di_ex = &mut di_ex[b..b + m];
            let i_in = &mut i_in[b..b + m];
            let di_in = &mut di_in[b..b + m];
            let r_ref = &mut r_ref[b..b + m];
            let (in_ex, in_in) = (&in_ex[b..b + m], &in_in[b..b + m]);
            for k in 0..m {
                let v0 = v_rel[k];
                let (ie0, die0) = (i_ex[k], di_ex[k]);
                let (ii0, dii0) = (i_in[k], di_in[k]);
                let r0 = r_ref[k];
                let propagated = p30 * i_e
                    + p31_ex * die0
                    + p32_ex * ie0
                    + p31_in * dii0
                    + p32_in * ii0
                    + expm1_tau_m * v0
                    + v0;
                let free = r0 == 0;
                let v = if free { propagated } else { v0 };
                let r = if free { 0 } else { r0.wrapping_sub(1) };
                let ie = p21_ex * die0 + p11_ex * ie0;
                let die = die0 * p11_ex + epsc * in_ex[k];
                let ii = p21_in * dii0 + p11_in * ii0;
                let dii = dii0 * p11_in + ipsc * in_in[k];
                let spike = v >= theta;
                v_rel[k] = if spike { v_reset } else { v };
                r_ref[k] = if spike { c.refractory_steps } else { r };
                i_ex[k] = ie;
                di_ex[k] = die;
                i_in[k] = ii;
                di_in[k] = dii;
                f[k] = u32::from(spike);
                any |= u32::from(spike);
            }
            if any != 0 {
                push_flagged(f, start + b, spikes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psc_peaks_at_weight() {
        let c = consts(&ModelParams::default(), 0.1);
        let mut s = State::new(1, |_| 0.0);
        let mut spikes = Vec::new();
        s.step(&c, 0..1, &[100.0], &[0.0], &mut spikes);
        let mut peak: f64 = 0.0;
        for _ in 0..100 {
            s.step(&c, 0..1, &[0.0], &[0.0], &mut spikes);
            peak = peak.max(s.i_syn_ex[0]);
        }
        // Sampled on the grid, tau_syn = 2 ms = 20 steps: exact peak.
        assert!((peak - 100.0).abs() < 1e-9, "{peak}");
    }
}
