//! NEST `iaf_psc_exp`: leaky integrate-and-fire neuron with exponentially
//! decaying postsynaptic currents; CUDA twin `iaf_psc_exp.cuh`.
//!
//! Membrane potential `V` relative to `E_L`, synaptic currents `I_ex`,
//! `I_in` (weights in pA):
//!
//! ```text
//! dV/dt    = -V / tau_m + (I_ex + I_in + I_e) / C_m
//! dI_X/dt  = -I_X / tau_syn_X          + sum_k w_k delta(t - t_k)
//!
//! V(t+h)   = P22 V + P21ex I_ex + P21in I_in + P20 I_e
//! I_X(t+h) = P11X I_X
//! P22 = exp(-h/tau_m),  P11X = exp(-h/tau_syn_X),
//! P20 = tau_m/C_m (1 - P22),
//! P21X = tau_m tau_syn_X / (C_m (tau_m - tau_syn_X)) exp(-h/tau_syn_X) expm1(h (tau_m - tau_syn_X)/(tau_m tau_syn_X))
//!      = h/C_m exp(-h/tau_m)                                  (tau_syn_X == tau_m)
//! ```
//!
//! (NEST 3.10 `iaf_psc_exp::pre_run_hook`; the singular case as NEST's
//! `IAFPropagator`.) Input arriving in a step is added to the currents
//! after they are propagated, so it changes `V` from the next step on.
//! Potjans & Diesmann (2014)'s microcircuit uses this model.

use std::ops::Range;

use super::{check_step_args, iaf::iaf_propagators, push_flagged, refractory_steps, ModelParams};

/// The CUDA update, `snn_iaf_psc_exp_neuron`.
pub const CUDA: &str = include_str!("iaf_psc_exp.cuh");

device_struct! {
    /// `SnnIafPscExpConsts` (`iaf_psc_exp.cuh`): the per-population
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
        /// `exp(-h/tau_m)`: propagator of `V`.
        pub p22: f64,
        /// `exp(-h/tau_syn_ex)`: propagator of `I_ex`.
        pub p11_ex: f64,
        /// `exp(-h/tau_syn_in)`: propagator of `I_in`.
        pub p11_in: f64,
        /// `I_ex -> V` propagator, mV/pA.
        pub p21_ex: f64,
        /// `I_in -> V` propagator, mV/pA.
        pub p21_in: f64,
        /// `I_e -> V` propagator `tau_m/C_m (1 - P22)`, mV/pA.
        pub p20: f64,
        /// Refractory period, steps.
        pub refractory_steps: u32,
        /// Padding (0).
        pub pad: u32,
    }
}

/// [`Consts`] for parameters `p` and step `dt_ms` (NEST 3.10
/// `iaf_psc_exp::pre_run_hook`).
pub fn consts(p: &ModelParams, dt_ms: f64) -> Consts {
    let h = dt_ms;
    let p11_ex = (-h / p.tau_syn_ex).exp();
    let p11_in = (-h / p.tau_syn_in).exp();
    let p22 = (-h / p.tau_m).exp();
    let (_, p21_ex) = iaf_propagators(p.tau_syn_ex, p.tau_m, p.C_m, h);
    let (_, p21_in) = iaf_propagators(p.tau_syn_in, p.tau_m, p.C_m, h);
    let p20 = p.tau_m / p.C_m * (1.0 - p22);
    Consts {
        e_l: p.E_L,
        theta: p.V_th - p.E_L,
        v_reset: p.V_reset - p.E_L,
        i_e: p.I_e,
        p22,
        p11_ex,
        p11_in,
        p21_ex,
        p21_in,
        p20,
        refractory_steps: refractory_steps(p.t_ref, dt_ms),
        pad: 0,
    }
}

neuron_state! {
    /// State of `n` `iaf_psc_exp` neurons (structure of arrays).
    ///
    /// The membrane potential is held relative to `E_L`, as NEST's (`V_m =
    /// v_rel + E_L`).
    magic b"SNNEXP02" {
        /// Membrane potential relative to `E_L`, mV.
        v_rel,
        /// Excitatory synaptic current, pA.
        i_syn_ex,
        /// Inhibitory synaptic current (<= 0), pA.
        i_syn_in,
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
        let i_in = &mut self.i_syn_in[range.clone()];
        let r_ref = &mut self.refractory[range];
        let (in_ex, in_in) = (&in_ex_pa[..n], &in_in_pa[..n]);
        let (i_e, p22, p20) = (c.i_e, c.p22, c.p20);
        let (p11_ex, p11_in, p21_ex, p21_in) = (c.p11_ex, c.p11_in, c.p21_ex, c.p21_in);
        let (theta, v_reset) = (c.theta, c.v_reset);
        // Branch-free, so that the loop runs on vector units: the
        // propagation is computed for refractory neurons too and discarded
        // (the same IEEE operations in the same order either way); spikes
        // are flagged per block of 64 and collected after it.
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
            let i_in = &mut i_in[b..b + m];
            let r_ref = &mut r_ref[b..b + m];
            let (in_ex, in_in) = (&in_ex[b..b + m], &in_in[b..b + m]);
            for k in 0..m {
                let v0 = v_rel[k];
                let (ie0, ii0, r0) = (i_ex[k], i_in[k], r_ref[k]);
                let propagated = v0 * p22 + ie0 * p21_ex + ii0 * p21_in + i_e * p20;
                let free = r0 == 0;
                let v = if free { propagated } else { v0 };
                let r = if free { 0 } else { r0.wrapping_sub(1) };
                let ie = ie0 * p11_ex + in_ex[k];
                let ii = ii0 * p11_in + in_in[k];
                let spike = v >= theta;
                v_rel[k] = if spike { v_reset } else { v };
                r_ref[k] = if spike { c.refractory_steps } else { r };
                i_ex[k] = ie;
                i_in[k] = ii;
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
    fn dc_charges_to_asymptote_and_fires() {
        let mut p = ModelParams {
            I_e: 300.0, // asymptote -70 + 300 * 10 / 250 = -58 mV < -55
            ..ModelParams::default()
        };
        let c = consts(&p, 0.1);
        // At rest (E_L = -70 mV).
        let mut s = State::new(3, |_| 0.0);
        let mut spikes = Vec::new();
        let zero = [0.0; 3];
        for _ in 0..2000 {
            s.step(&c, 0..3, &zero, &zero, &mut spikes);
        }
        assert!(spikes.is_empty());
        assert!((s.v_rel(1) - 12.0).abs() < 1e-6, "{}", s.v_rel(1));
        // Above rheobase it fires, with at least t_ref between spikes.
        p.I_e = 1000.0;
        let c = consts(&p, 0.1);
        let mut s = State::new(1, |_| 0.0);
        let mut steps = Vec::new();
        for t in 0..1000u32 {
            spikes.clear();
            s.step(&c, 0..1, &zero, &zero, &mut spikes);
            if !spikes.is_empty() {
                steps.push(t);
                assert_eq!(s.v_rel(0), 0.0);
            }
            assert!(s.v_rel(0) < 15.0);
        }
        assert!(steps.len() > 5);
        for w in steps.windows(2) {
            assert!(w[1] - w[0] > 20);
        }
    }

    #[test]
    fn refractory_clamps_v_but_currents_evolve() {
        let c = consts(&ModelParams::default(), 0.1);
        let mut s = State::new(1, |_| 16.0); // above threshold (-54 mV)
        let mut spikes = Vec::new();
        s.step(&c, 0..1, &[0.0], &[0.0], &mut spikes);
        assert_eq!(spikes, vec![0]);
        assert_eq!(s.refractory[0], 20);
        // 20 clamped steps, input still enters the current.
        for k in 0..20 {
            let w = if k == 0 { 1000.0 } else { 0.0 };
            s.step(&c, 0..1, &[w], &[0.0], &mut spikes);
            assert_eq!(s.v_rel(0), 0.0, "step {k}");
        }
        assert!(s.i_syn_ex[0] > 0.0 && s.i_syn_ex[0] < 1000.0);
        s.step(&c, 0..1, &[0.0], &[0.0], &mut spikes);
        assert!(s.v_rel(0) > 0.0);
        let s2 = State::new(3, |i| i as f64);
        assert_eq!(State::from_bytes(&s2.to_bytes()), Some(s2));
    }
}
