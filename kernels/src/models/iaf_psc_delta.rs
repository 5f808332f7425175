//! NEST `iaf_psc_delta`: leaky integrate-and-fire neuron with delta
//! synapses, an input spike makes the membrane potential jump by its weight
//! (mV); CUDA twin `iaf_psc_delta.cuh`.
//!
//! Membrane potential `V` relative to `E_L`:
//!
//! ```text
//! dV/dt  = -V / tau_m + I_e / C_m + sum_k w_k delta(t - t_k)
//!
//! V(t+h) = P30 I_e + P33 V + (sum of the weights arriving in the step)
//! P33 = exp(-h/tau_m),  P30 = 1/C_m (1 - P33) tau_m
//! ```
//!
//! (NEST 3.10 `iaf_psc_delta::pre_run_hook` and `update()`, in that
//! operation order: `P30` is computed from `1 - P33`, not with `expm1`, and
//! the sum is `(P30 I_e + P33 V) + input`.) Unlike the current models, the
//! input arriving in a step changes `V` in that step, before the threshold
//! is tested, so it can make the neuron fire in the step it arrives; while
//! the neuron is refractory its input is discarded (NEST's default
//! `refractory_input = false`) and `V` stays at `V_reset`. The excitatory
//! and inhibitory sums of the step are added as `in_ex + in_in` (NEST adds
//! every weight into one buffer; with the engine's fixed-point weights both
//! are exact sums, so the results agree).

use std::ops::Range;

use super::{check_step_args, push_flagged, refractory_steps, ModelParams};

/// The CUDA update, `snn_iaf_psc_delta_neuron`.
pub const CUDA: &str = include_str!("iaf_psc_delta.cuh");

device_struct! {
    /// `SnnIafPscDeltaConsts` (`iaf_psc_delta.cuh`): the per-population
    /// constants, potentials relative to `E_L`. Made by [`consts`].
    pub struct Consts {
        /// `E_L`, mV.
        pub e_l: f64,
        /// `V_th - E_L`, mV.
        pub theta: f64,
        /// `V_reset - E_L`, mV.
        pub v_reset: f64,
        /// `0 + I_e`, pA (NEST's `y0 + I_e` with no current input).
        pub i_e: f64,
        /// `exp(-h/tau_m)`: propagator of `V`.
        pub p33: f64,
        /// `I_e -> V` propagator `1/C_m (1 - P33) tau_m`, mV/pA.
        pub p30: f64,
        /// Refractory period, steps.
        pub refractory_steps: u32,
        /// Padding (0).
        pub pad: u32,
    }
}

/// [`Consts`] for parameters `p` and step `dt_ms` (NEST 3.10
/// `iaf_psc_delta::pre_run_hook`); `tau_syn_ex`/`tau_syn_in` are not used.
pub fn consts(p: &ModelParams, dt_ms: f64) -> Consts {
    let h = dt_ms;
    let p33 = (-h / p.tau_m).exp();
    let p30 = 1.0 / p.C_m * (1.0 - p33) * p.tau_m;
    Consts {
        e_l: p.E_L,
        theta: p.V_th - p.E_L,
        v_reset: p.V_reset - p.E_L,
        i_e: 0.0 + p.I_e,
        p33,
        p30,
        refractory_steps: refractory_steps(p.t_ref, dt_ms),
        pad: 0,
    }
}

neuron_state! {
    /// State of `n` `iaf_psc_delta` neurons (structure of arrays): the
    /// membrane potential only.
    magic b"SNNDEL02" {
        /// Membrane potential relative to `E_L`, mV (NEST's `y3`).
        v_rel,
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
        let r_ref = &mut self.refractory[range];
        let (in_ex, in_in) = (&in_ex_pa[..n], &in_in_pa[..n]);
        let (i_e, p33, p30) = (c.i_e, c.p33, c.p30);
        let (theta, v_reset) = (c.theta, c.v_reset);
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
            let r_ref = &mut r_ref[b..b + m];
            let (in_ex, in_in) = (&in_ex[b..b + m], &in_in[b..b + m]);
            for k in 0..m {
                let v0 = v_rel[k];
                let r0 = r_ref[k];
                let propagated = p30 * i_e + p33 * v0 + (in_ex[k] + in_in[k]);
                let free = r0 == 0;
                let v = if free { propagated } else { v0 };
                let r = if free { 0 } else { r0.wrapping_sub(1) };
                let spike = v >= theta;
                v_rel[k] = if spike { v_reset } else { v };
                r_ref[k] = if spike { c.refractory_steps } else { r };
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
    fn input_jumps_in_its_step_and_is_lost_while_refractory() {
        // Potentials relative to E_L = -70 mV (threshold 15 mV above).
        let c = consts(&ModelParams::default(), 0.1);
        let mut s = State::new(1, |_| 0.0);
        let mut spikes = Vec::new();
        // A jump of 5 mV in the step it arrives.
        s.step(&c, 0..1, &[5.0], &[0.0], &mut spikes);
        assert_eq!(s.v_rel(0), 5.0);
        // Decay with tau_m.
        s.step(&c, 0..1, &[0.0], &[-1.0], &mut spikes);
        assert!((s.v_rel(0) - (5.0 * (-0.1f64 / 10.0).exp() - 1.0)).abs() < 1e-12);
        assert!(spikes.is_empty());
        // A jump past threshold fires in the same step.
        s.step(&c, 0..1, &[20.0], &[0.0], &mut spikes);
        assert_eq!(spikes, [0]);
        assert_eq!(s.v_rel(0), 0.0);
        // 20 refractory steps: input discarded, V clamped.
        for _ in 0..20 {
            s.step(&c, 0..1, &[3.0], &[0.0], &mut spikes);
            assert_eq!(s.v_rel(0), 0.0);
        }
        s.step(&c, 0..1, &[3.0], &[0.0], &mut spikes);
        assert_eq!(s.v_rel(0), 3.0);
        // The DC asymptote: I_e tau_m / C_m above E_L.
        let c = consts(
            &ModelParams {
                I_e: 300.0,
                ..ModelParams::default()
            },
            0.1,
        );
        let mut s = State::new(1, |_| 0.0);
        for _ in 0..3000 {
            s.step(&c, 0..1, &[0.0], &[0.0], &mut spikes);
        }
        assert!((s.v_rel(0) - 12.0).abs() < 1e-6, "{}", s.v_rel(0));
    }
}
