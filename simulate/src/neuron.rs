//! Neuron models: leaky integrate-and-fire neurons with current-based
//! synapses, integrated exactly on the time grid with NEST 3.10 semantics.
//!
//! Two models, with NEST's names, parameters and units:
//!
//! * [`IafPscExpConsts`] / [`IafPscExpState`]: NEST `iaf_psc_exp`,
//!   exponentially decaying postsynaptic currents (PSCs);
//! * [`IafPscAlphaConsts`] / [`IafPscAlphaState`]: NEST `iaf_psc_alpha`,
//!   alpha-function shaped PSCs;
//!
//! and [`Block`], either of them behind one `step` signature.
//!
//! # Layout
//!
//! A *block* is the state of `n` neurons of one population in
//! structure-of-arrays layout (one `Vec` per state variable), so that an
//! engine can update a contiguous range of local neurons in parallel (one
//! block per work item, or disjoint ranges of one block). The constants
//! (propagators) are computed once per population on the host, in `f64`
//! with the standard library's `exp`/`exp_m1` (the C library's, as NEST's
//! `std::exp`/`std::expm1`), in the order NEST computes them, and are then
//! only read: the update itself uses `+ - *` on `f64` in a fixed order (no
//! fused multiply-add, no division), so the same constants give the same bits
//! on any backend that performs the same IEEE operations.
//!
//! # Exact integration
//!
//! Between grid points the subthreshold dynamics is linear and time
//! invariant, so the state is propagated from `t` to `t + h` by the matrix
//! exponential of the system (Rotter & Diesmann 1999). For `iaf_psc_exp`
//! (membrane potential `V` relative to `E_L`, synaptic currents `I_ex`,
//! `I_in`):
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
//! For `iaf_psc_alpha` each synapse type has two variables, the current
//! `I_X` and its derivative `dI_X` (`d(dI_X)/dt = -dI_X/tau_syn_X`,
//! `d(I_X)/dt = dI_X - I_X/tau_syn_X`); an incoming weight `w` (pA) adds
//! `e/tau_syn_X * w` to `dI_X`, so that the current
//! `I_X(t) = w t/tau_syn_X exp(1 - t/tau_syn_X)` peaks at `w`, `tau_syn_X`
//! after the arrival:
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
//! The singular cases follow NEST's `IAFPropagator` (NEST >= 3.0,
//! `libnestutil/iaf_propagator.cpp`, successor of `propagator_31` /
//! `propagator_32`): the regular `P32` formula is used when its result is a
//! normal positive number and `h/C_m exp(-h/tau_m)` otherwise (this catches
//! `tau_syn == tau_m`, where the formula gives `inf * 0 = NaN`); the regular
//! `P31` formula is used when `h > 1e-7 tau_m^2 / |tau_m - tau_syn|` and
//! `h^2/(2 C_m) exp(-h/tau_m)` otherwise.
//!
//! # Update order within one step (NEST's `update()`)
//!
//! For each neuron, the update of step `s` (from `t = s h` to `(s+1) h`):
//!
//! 1. if the refractory counter is 0, propagate `V` with the currents of the
//!    start of the step (above); otherwise decrement the counter and leave
//!    `V` clamped (at `V_reset`);
//! 2. propagate the synaptic currents (they evolve during refractoriness);
//! 3. add the input arriving in this step: `I_ex += w_ex`, `I_in += w_in`
//!    (`iaf_psc_exp`) or `dI_X += e/tau_syn_X * w_X` (`iaf_psc_alpha`). Input
//!    thus affects `V` from the next step on: "spikes arriving at T+1 have an
//!    immediate effect on the state of the neuron" (in the currents);
//! 4. threshold: if `V >= V_th`, set `V = V_reset`, the refractory counter
//!    to `t_ref` in steps, and emit a spike with time stamp `(s+1) h`.
//!
//! The membrane potential observed after step `s` (a multimeter sample with
//! time stamp `(s+1) h`) is never above threshold.
//!
//! The refractory period in steps is NEST's `Time(Time::ms(t_ref)).get_steps()`:
//! `t_ref` is rounded to the nearest tic (1 tic = 1 µs, NEST's default
//! `tics_per_ms` = 1000), then rounded *up* to whole steps. For `t_ref` on
//! the grid (the usual case) this is `t_ref / h`; for example 2.0 ms at
//! h = 0.1 ms gives 20 steps, 0.5 ms gives 5. After a spike in step `s`, the
//! steps `s+1 ..= s+20` are refractory and `V` evolves again from step
//! `s+21` on.
//!
//! # Event timing (the convention engines must follow)
//!
//! * A neuron that fires in the update of step `s` emits a spike with time
//!   stamp `(s+1) h` (this is what NEST's `spike_recorder` reports).
//! * A spike emitted in the update of step `s` through a connection with a
//!   delay of `D` steps (`D = round(delay / h)`, at least 1, see
//!   [`snn_formats::model::delay_to_steps`]) arrives in the update of step
//!   `s + D`: its weight is part of `in_ex_pa`/`in_in_pa` passed to the
//!   `step` call of step `s + D`, and it therefore first changes `V` in step
//!   `s + D + 1` (the sample stamped `(s + D + 2) h`).
//! * A `spike_generator` spike at time `t` ms (on the grid) is emitted in
//!   the update of step `round(t/h) - 1`, so with delay `D` it arrives in
//!   step `round(t/h) - 1 + D`.
//! * Weights `>= 0` go to the excitatory input, weights `< 0` (inhibitory,
//!   negative as in NEST) to the inhibitory input; the engine sums all
//!   weights arriving in a step per type.
//!
//! This is verified against NEST 3.10 traces by `tests/nest_exactness.rs`
//! (scenarios generated by `tests/reference/nest_traces.py`).
//!
//! # Parameters
//!
//! Both models take [`snn_formats::model::NeuronParams`] (NEST names and
//! units):
//!
//! | name         | unit | NEST default | meaning |
//! |--------------|------|--------------|---------|
//! | `C_m`        | pF   | 250.0        | membrane capacitance |
//! | `tau_m`      | ms   | 10.0         | membrane time constant |
//! | `tau_syn_ex` | ms   | 2.0          | excitatory synaptic time constant (decay time of the exponential PSC; rise = peak time of the alpha PSC) |
//! | `tau_syn_in` | ms   | 2.0          | inhibitory synaptic time constant |
//! | `t_ref`      | ms   | 2.0          | absolute refractory period (`V` clamped at `V_reset`, no spikes) |
//! | `E_L`        | mV   | -70.0        | resting potential |
//! | `V_th`       | mV   | -55.0        | spike threshold (absolute) |
//! | `V_reset`    | mV   | -70.0        | reset potential (absolute) |
//! | `I_e`        | pA   | 0.0          | constant external input current (DC) |
//!
//! State variables:
//!
//! | name              | unit | initial | meaning |
//! |-------------------|------|---------|---------|
//! | `V_m`             | mV   | given (NEST: `E_L`) | membrane potential (stored absolute, updated relative to `E_L` as NEST) |
//! | `I_syn_ex/in`     | pA   | 0       | synaptic currents |
//! | `dI_syn_ex/in`    | pA/ms| 0       | their derivatives (`iaf_psc_alpha` only) |
//! | refractory count  | steps| 0       | remaining refractory steps |
//!
//! Not supported (NEST features with these defaults): `V_min` of
//! `iaf_psc_alpha` (lower bound of `V_m`, default `-inf`); the stochastic
//! threshold of `iaf_psc_exp` (`delta` = 0: deterministic); current inputs
//! through `CurrentEvent`s (`i_0`, `i_1`, e.g. `dc_generator`: a DC is given
//! as `I_e` instead).
//!
//! # References
//!
//! * Rotter S, Diesmann M (1999). Exact digital simulation of time-invariant
//!   linear systems with applications to neuronal modeling. Biological
//!   Cybernetics 81:381-402. doi:10.1007/s004220050570
//! * Diesmann M, Gewaltig M-O, Rotter S, Aertsen A (2001). State space
//!   analysis of synchronous spiking in cortical neural networks.
//!   Neurocomputing 38-40:565-571. doi:10.1016/S0925-2312(01)00409-X
//! * Morrison A, Straube S, Plesser HE, Diesmann M (2007). Exact
//!   subthreshold integration with continuous spike times in discrete time
//!   neural network simulations. Neural Computation 19(1):47-79.
//!   doi:10.1162/neco.2007.19.1.47
//! * NEST 3.10 model documentation: `iaf_psc_exp` and `iaf_psc_alpha`
//!   (<https://nest-simulator.readthedocs.io/en/stable/models/iaf_psc_exp.html>,
//!   <https://nest-simulator.readthedocs.io/en/stable/models/iaf_psc_alpha.html>),
//!   and the notebook `IAF_neurons_singularity` on the singular propagators.
//! * Potjans TC, Diesmann M (2014). The cell-type specific cortical
//!   microcircuit. Cerebral Cortex 24(3):785-806 (parameters of the
//!   microcircuit, `iaf_psc_exp`); Brunel N (2000). Dynamics of sparsely
//!   connected networks of excitatory and inhibitory spiking neurons. J
//!   Comput Neurosci 8:183-208 (balanced network, `iaf_psc_alpha` in NEST's
//!   benchmark).

use std::ops::Range;

use serde::{Deserialize, Serialize};
use snn_formats::model::{NeuronModel, NeuronParams};

/// NEST's default number of tics per ms (`tics_per_ms`).
const TICS_PER_MS: f64 = 1000.0;

/// NEST's `IAFPropagator`: the scale factor of the singularity test of P31.
const NUMERICAL_STABILITY_FACTOR: f64 = 1e-7;

/// The refractory period in steps as NEST computes it:
/// `Time(Time::ms(t_ref)).get_steps()` with the default 1000 tics per ms.
///
/// `t_ref` is rounded to the nearest tic (half up), then rounded up to
/// whole steps (`(tics + tics_per_step - 1) * (1 / tics_per_step)`,
/// truncated, in `f64` as NEST does). A negative or NaN `t_ref` gives 0.
pub fn refractory_steps(t_ref_ms: f64, dt_ms: f64) -> u32 {
    // `as` truncates and saturates (NaN -> 0), as NEST's static_cast for the
    // values that occur.
    let tics = (t_ref_ms * TICS_PER_MS + 0.5) as i64;
    let tics_per_step = (dt_ms * TICS_PER_MS + 0.5) as i64;
    if tics <= 0 || tics_per_step <= 0 {
        return 0;
    }
    let inv = 1.0 / tics_per_step as f64;
    let steps = ((tics + tics_per_step - 1) as f64 * inv) as i64;
    steps.clamp(0, u32::MAX as i64) as u32
}

/// NEST's `IAFPropagator` for one synapse type: returns
/// `(P31, P32)` for step `h` (P32 is the `I -> V` propagator of
/// `iaf_psc_exp`, called P21 there; P31 the `dI -> V` one of
/// `iaf_psc_alpha`).
fn iaf_propagators(tau_syn: f64, tau_m: f64, c_m: f64, h: f64) -> (f64, f64) {
    let h_min_regular = NUMERICAL_STABILITY_FACTOR * tau_m * tau_m / (tau_m - tau_syn).abs();
    // inf if tau_m == tau_syn
    let beta = tau_syn * tau_m / (tau_m - tau_syn);
    let gamma = beta / c_m;
    let inv_tau_syn = 1.0 / tau_syn;
    let inv_tau_m = 1.0 / tau_m;
    let inv_c_m = 1.0 / c_m;
    // explicit, so that it is 0 (not NaN) if tau_m == tau_syn
    let inv_beta = (tau_m - tau_syn) / (tau_syn * tau_m);

    let exp_h_tau_syn = (-h * inv_tau_syn).exp();
    let expm1_h_tau = (h * inv_beta).exp_m1();
    let p32_regular = gamma * exp_h_tau_syn * expm1_h_tau;
    let exp_h_tau_m = (-h * inv_tau_m).exp();
    let p32 = if p32_regular.is_normal() && p32_regular > 0.0 {
        p32_regular
    } else {
        h * inv_c_m * exp_h_tau_m
    };
    let p31 = if h > h_min_regular {
        gamma * exp_h_tau_syn * (beta * expm1_h_tau - h)
    } else {
        0.5 * h * h * inv_c_m * exp_h_tau_m
    };
    (p31, p32)
}

/// Precomputed per-population constants of `iaf_psc_exp` (NEST 3.10
/// `iaf_psc_exp::pre_run_hook`), potentials relative to `E_L`: the struct the
/// GPU kernels take too (`SnnIafPscExpConsts` of `kernels/cuda/neuron.cu`),
/// so both backends read one set of constants. Made by
/// [`iaf_psc_exp_consts`].
pub type IafPscExpConsts = snn_kernels::registry::ExpConsts;

/// Precomputed per-population constants of `iaf_psc_alpha` (NEST 3.10
/// `iaf_psc_alpha::pre_run_hook`), potentials relative to `E_L`: the struct
/// the GPU kernels take too (`SnnIafPscAlphaConsts`). Made by
/// [`iaf_psc_alpha_consts`].
pub type IafPscAlphaConsts = snn_kernels::registry::AlphaConsts;

/// [`IafPscExpConsts`] for parameters `p` (NEST names and units) and step
/// `dt_ms`.
///
/// `p.model` is not checked; parameters are assumed valid (`C_m`, the
/// time constants and `dt_ms` positive, `t_ref >= 0`), as
/// `snn_formats` validates them.
pub fn iaf_psc_exp_consts(p: &NeuronParams, dt_ms: f64) -> IafPscExpConsts {
    let h = dt_ms;
    let p11_ex = (-h / p.tau_syn_ex).exp();
    let p11_in = (-h / p.tau_syn_in).exp();
    let p22 = (-h / p.tau_m).exp();
    let (_, p21_ex) = iaf_propagators(p.tau_syn_ex, p.tau_m, p.C_m, h);
    let (_, p21_in) = iaf_propagators(p.tau_syn_in, p.tau_m, p.C_m, h);
    let p20 = p.tau_m / p.C_m * (1.0 - p22);
    IafPscExpConsts {
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

/// [`IafPscAlphaConsts`] for parameters `p` (NEST names and units) and step
/// `dt_ms`; `p.model` is not checked, parameters are assumed valid (see
/// [`iaf_psc_exp_consts`]).
pub fn iaf_psc_alpha_consts(p: &NeuronParams, dt_ms: f64) -> IafPscAlphaConsts {
    let h = dt_ms;
    let p11_ex = (-h / p.tau_syn_ex).exp();
    let p11_in = (-h / p.tau_syn_in).exp();
    let expm1_tau_m = (-h / p.tau_m).exp_m1();
    let p30 = -p.tau_m / p.C_m * (-h / p.tau_m).exp_m1();
    let (p31_ex, p32_ex) = iaf_propagators(p.tau_syn_ex, p.tau_m, p.C_m, h);
    let (p31_in, p32_in) = iaf_propagators(p.tau_syn_in, p.tau_m, p.C_m, h);
    IafPscAlphaConsts {
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

/// `step`, run compiled for AVX2 where the CPU has it (four neurons per
/// instruction; the same operations in the same order, so the same bits),
/// and `step_avx2`, for a state whose update is its `step_body`.
macro_rules! step_with_avx2 {
    ($(#[$doc:meta])* $consts:ty) => {
        $(#[$doc])*
        pub fn step(
            &mut self,
            c: &$consts,
            range: Range<usize>,
            in_ex_pa: &[f64],
            in_in_pa: &[f64],
            spikes: &mut Vec<u32>,
        ) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above),
                    // the only requirement of `step_avx2`.
                    unsafe { self.step_avx2(c, range, in_ex_pa, in_in_pa, spikes) };
                    return;
                }
            }
            self.step_body(c, range, in_ex_pa, in_in_pa, spikes);
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn step_avx2(
            &mut self,
            c: &$consts,
            range: Range<usize>,
            in_ex_pa: &[f64],
            in_in_pa: &[f64],
            spikes: &mut Vec<u32>,
        ) {
            self.step_body(c, range, in_ex_pa, in_in_pa, spikes);
        }
    };
}

/// Checks the slices of a `step` call (panics on misuse: a bug).
#[inline]
fn check_step_args(len: usize, range: &Range<usize>, in_ex_pa: &[f64], in_in_pa: &[f64]) -> usize {
    assert!(
        range.start <= range.end && range.end <= len,
        "neuron range {range:?} outside block of {len}"
    );
    let n = range.end - range.start;
    assert!(
        in_ex_pa.len() >= n && in_in_pa.len() >= n,
        "input slices shorter than the range"
    );
    n
}

/// Little-endian (de)serialisation helpers of the `to_bytes`/`from_bytes`
/// methods.
mod bytes {
    pub(super) fn put_f64s(out: &mut Vec<u8>, v: &[f64]) {
        for x in v {
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
    pub(super) fn put_u32s(out: &mut Vec<u8>, v: &[u32]) {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub(super) struct Reader<'a>(pub(super) &'a [u8]);
    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        pub(super) fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }
        pub(super) fn f64s(&mut self, n: usize) -> Option<Vec<f64>> {
            let b = self.take(n.checked_mul(8)?)?;
            Some(
                b.chunks_exact(8)
                    .map(|c| f64::from_bits(u64::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
            )
        }
        pub(super) fn u32s(&mut self, n: usize) -> Option<Vec<u32>> {
            let b = self.take(n.checked_mul(4)?)?;
            Some(
                b.chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        }
        pub(super) fn done(&self) -> bool {
            self.0.is_empty()
        }
    }
}

/// Magic of [`IafPscExpState::to_bytes`].
const EXP_MAGIC: u64 = u64::from_le_bytes(*b"SNNEXP01");
/// Magic of [`IafPscAlphaState::to_bytes`].
const ALPHA_MAGIC: u64 = u64::from_le_bytes(*b"SNNALP01");

/// Declares the state of `n` neurons of a model (structure of arrays): the
/// membrane potential `v_m`, the model's other `f64` variables, and the
/// remaining refractory steps, with what does not depend on the model:
/// `new`, `len`, `append`/`range` (checkpoints store one state per
/// population, the engine holds it in chunks) and `to_bytes`/`from_bytes`
/// (magic, `n`, each `f64` array in declaration order as little-endian
/// bits, then `refractory` as `u32`).
macro_rules! neuron_state {
    ($(#[$m:meta])* pub struct $name:ident, magic $magic:ident {
        $(#[$vm:meta])* v_m,
        $($(#[$fm:meta])* $f:ident,)*
    }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $(#[$vm])*
            pub v_m: Vec<f64>,
            $($(#[$fm])* pub $f: Vec<f64>,)*
            /// Remaining refractory steps.
            pub refractory: Vec<u32>,
        }

        impl $name {
            /// Append the neurons of `other` after these (checkpoints
            /// store one state per population; the engine holds it in
            /// chunks).
            pub fn append(&mut self, other: &Self) {
                self.v_m.extend_from_slice(&other.v_m);
                $(self.$f.extend_from_slice(&other.$f);)*
                self.refractory.extend_from_slice(&other.refractory);
            }

            /// A copy of neurons `r` of this state.
            pub fn range(&self, r: Range<usize>) -> Self {
                Self {
                    v_m: self.v_m[r.clone()].to_vec(),
                    $($f: self.$f[r.clone()].to_vec(),)*
                    refractory: self.refractory[r].to_vec(),
                }
            }

            /// `n` neurons at rest (no synaptic current, not refractory)
            /// with membrane potentials `v_m_init(i)` (absolute, mV).
            pub fn new(n: usize, v_m_init: impl Fn(usize) -> f64) -> Self {
                Self {
                    v_m: (0..n).map(v_m_init).collect(),
                    $($f: vec![0.0; n],)*
                    refractory: vec![0; n],
                }
            }

            /// Number of neurons.
            pub fn len(&self) -> usize {
                self.v_m.len()
            }

            /// True when the block holds no neurons.
            pub fn is_empty(&self) -> bool {
                self.v_m.is_empty()
            }

            /// Membrane potential of neuron `i`, mV (absolute).
            pub fn v_m(&self, i: usize) -> f64 {
                self.v_m[i]
            }

            /// The state as little-endian bytes (for checkpoints): magic,
            /// `n`, then `v_m` and the other variables in declaration
            /// order (f64 bits) and `refractory` (u32).
            pub fn to_bytes(&self) -> Vec<u8> {
                let n = self.len();
                let vars = 1 + [$(stringify!($f)),*].len();
                let mut out = Vec::with_capacity(16 + n * (8 * vars + 4));
                out.extend_from_slice(&$magic.to_le_bytes());
                out.extend_from_slice(&(n as u64).to_le_bytes());
                bytes::put_f64s(&mut out, &self.v_m);
                $(bytes::put_f64s(&mut out, &self.$f);)*
                bytes::put_u32s(&mut out, &self.refractory);
                out
            }

            /// Inverse of [`to_bytes`](Self::to_bytes); `None` if `b` is
            /// not such a state (wrong magic, truncated, trailing bytes).
            pub fn from_bytes(b: &[u8]) -> Option<Self> {
                let mut r = bytes::Reader(b);
                if r.u64()? != $magic {
                    return None;
                }
                let n = usize::try_from(r.u64()?).ok()?;
                let s = Self {
                    v_m: r.f64s(n)?,
                    $($f: r.f64s(n)?,)*
                    refractory: r.u32s(n)?,
                };
                r.done().then_some(s)
            }
        }
    };
}

neuron_state! {
    /// State of `n` `iaf_psc_exp` neurons (structure of arrays).
    ///
    /// The membrane potential is stored in absolute mV; the update works, as
    /// NEST's, on `V_m - E_L` (so the result differs from NEST's only by the
    /// rounding of that shift, below 1e-13 mV in practice, and not at all when
    /// `E_L == 0`).
    pub struct IafPscExpState, magic EXP_MAGIC {
        /// Membrane potential, mV (absolute).
        v_m,
        /// Excitatory synaptic current, pA.
        i_syn_ex,
        /// Inhibitory synaptic current (<= 0), pA.
        i_syn_in,
    }
}

neuron_state! {
    /// State of `n` `iaf_psc_alpha` neurons (structure of arrays). The
    /// membrane potential is stored as in [`IafPscExpState`].
    pub struct IafPscAlphaState, magic ALPHA_MAGIC {
        /// Membrane potential, mV (absolute; NEST's `y3 + E_L`).
        v_m,
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

impl IafPscExpState {
    step_with_avx2! {
        /// Advance neurons `range` of this block by one step (NEST's update
        /// order, see the module documentation).
        ///
        /// `in_ex_pa[k]` and `in_in_pa[k]` are the summed weights (pA; >= 0 and
        /// <= 0) of the spikes arriving at neuron `range.start + k` in this step
        /// (indices relative to `range.start`). The indices (in the block, i.e.
        /// absolute) of the neurons that fire in this step are pushed onto
        /// `spikes` in increasing order. Allocates nothing (`spikes` grows only
        /// if its capacity is short: reserve the block size once).
        ///
        /// Panics if `range` is outside the block or an input slice is shorter
        /// than `range`.
        IafPscExpConsts
    }

    #[inline(always)]
    fn step_body(
        &mut self,
        c: &IafPscExpConsts,
        range: Range<usize>,
        in_ex_pa: &[f64],
        in_in_pa: &[f64],
        spikes: &mut Vec<u32>,
    ) {
        let n = check_step_args(self.len(), &range, in_ex_pa, in_in_pa);
        let start = range.start;
        let v_m = &mut self.v_m[range.clone()];
        let i_ex = &mut self.i_syn_ex[range.clone()];
        let i_in = &mut self.i_syn_in[range.clone()];
        let r_ref = &mut self.refractory[range];
        let (in_ex, in_in) = (&in_ex_pa[..n], &in_in_pa[..n]);
        let (i_e, p22, p20) = (c.i_e, c.p22, c.p20);
        let (p11_ex, p11_in, p21_ex, p21_in) = (c.p11_ex, c.p11_in, c.p21_ex, c.p21_in);
        let (e_l, theta, v_reset) = (c.e_l, c.theta, c.v_reset);
        // Branch-free, so that the loop runs on vector units: the
        // propagation is computed for refractory neurons too and discarded
        // (the same IEEE operations in the same order either way); spikes
        // are flagged per block of 64 and collected after it.
        let mut flags = [0u32; 64];
        for b in (0..n).step_by(64) {
            let m = 64.min(n - b);
            let f = &mut flags[..m];
            let v_m = &mut v_m[b..b + m];
            let i_ex = &mut i_ex[b..b + m];
            let i_in = &mut i_in[b..b + m];
            let r_ref = &mut r_ref[b..b + m];
            let (in_ex, in_in) = (&in_ex[b..b + m], &in_in[b..b + m]);
            for k in 0..m {
                // relative to E_L, as NEST's state
                let v0 = v_m[k] - e_l;
                let (ie0, ii0, r0) = (i_ex[k], i_in[k], r_ref[k]);
                let propagated = v0 * p22 + ie0 * p21_ex + ii0 * p21_in + i_e * p20;
                let free = r0 == 0;
                let v = if free { propagated } else { v0 };
                let r = if free { 0 } else { r0.wrapping_sub(1) };
                let ie = ie0 * p11_ex + in_ex[k];
                let ii = ii0 * p11_in + in_in[k];
                let spike = v >= theta;
                v_m[k] = if spike { v_reset } else { v } + e_l;
                r_ref[k] = if spike { c.refractory_steps } else { r };
                i_ex[k] = ie;
                i_in[k] = ii;
                f[k] = u32::from(spike);
            }
            push_flagged(f, start + b, spikes);
        }
    }
}

impl IafPscAlphaState {
    step_with_avx2! {
        /// Advance neurons `range` of this block by one step; the arguments are
        /// as for [`IafPscExpState::step`]. Incoming weights enter `dI` scaled by
        /// `e/tau_syn` (a PSC of weight `w` peaks at `w` pA, `tau_syn` after
        /// arrival).
        IafPscAlphaConsts
    }

    #[inline(always)]
    fn step_body(
        &mut self,
        c: &IafPscAlphaConsts,
        range: Range<usize>,
        in_ex_pa: &[f64],
        in_in_pa: &[f64],
        spikes: &mut Vec<u32>,
    ) {
        let n = check_step_args(self.len(), &range, in_ex_pa, in_in_pa);
        let start = range.start;
        let v_m = &mut self.v_m[range.clone()];
        let i_ex = &mut self.i_syn_ex[range.clone()];
        let di_ex = &mut self.di_syn_ex[range.clone()];
        let i_in = &mut self.i_syn_in[range.clone()];
        let di_in = &mut self.di_syn_in[range.clone()];
        let r_ref = &mut self.refractory[range];
        let (in_ex, in_in) = (&in_ex_pa[..n], &in_in_pa[..n]);
        let (i_e, p30, expm1_tau_m) = (c.i_e, c.p30, c.expm1_tau_m);
        let (p11_ex, p21_ex, p31_ex, p32_ex) = (c.p11_ex, c.p21_ex, c.p31_ex, c.p32_ex);
        let (p11_in, p21_in, p31_in, p32_in) = (c.p11_in, c.p21_in, c.p31_in, c.p32_in);
        let (e_l, theta, v_reset) = (c.e_l, c.theta, c.v_reset);
        let (epsc, ipsc) = (c.epsc_initial, c.ipsc_initial);
        // Branch-free, as `IafPscExpState::step`.
        let mut flags = [0u32; 64];
        for b in (0..n).step_by(64) {
            let m = 64.min(n - b);
            let f = &mut flags[..m];
            let v_m = &mut v_m[b..b + m];
            let i_ex = &mut i_ex[b..b + m];
            let di_ex = &mut di_ex[b..b + m];
            let i_in = &mut i_in[b..b + m];
            let di_in = &mut di_in[b..b + m];
            let r_ref = &mut r_ref[b..b + m];
            let (in_ex, in_in) = (&in_ex[b..b + m], &in_in[b..b + m]);
            for k in 0..m {
                // relative to E_L, as NEST's state
                let v0 = v_m[k] - e_l;
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
                v_m[k] = if spike { v_reset } else { v } + e_l;
                r_ref[k] = if spike { c.refractory_steps } else { r };
                i_ex[k] = ie;
                di_ex[k] = die;
                i_in[k] = ii;
                di_in[k] = dii;
                f[k] = u32::from(spike);
            }
            push_flagged(f, start + b, spikes);
        }
    }
}

/// Append `first + k` for every `flags[k] != 0` to `spikes`.
#[inline(always)]
fn push_flagged(flags: &[u32], first: usize, spikes: &mut Vec<u32>) {
    for (k, &f) in flags.iter().enumerate() {
        if f != 0 {
            spikes.push((first + k) as u32);
        }
    }
}

/// A block of neurons of either model with its constants.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// `iaf_psc_exp` neurons.
    Exp(IafPscExpConsts, IafPscExpState),
    /// `iaf_psc_alpha` neurons.
    Alpha(IafPscAlphaConsts, IafPscAlphaState),
}

impl Block {
    /// A block of `n` neurons of `p.model` with initial potentials
    /// `v_m_init(i)` (mV); `None` for a model that is not a neuron
    /// (`spike_generator`).
    pub fn new(
        p: &NeuronParams,
        dt_ms: f64,
        n: usize,
        v_m_init: impl Fn(usize) -> f64,
    ) -> Option<Block> {
        match p.model {
            NeuronModel::IafPscExp => Some(Block::Exp(
                iaf_psc_exp_consts(p, dt_ms),
                IafPscExpState::new(n, v_m_init),
            )),
            NeuronModel::IafPscAlpha => Some(Block::Alpha(
                iaf_psc_alpha_consts(p, dt_ms),
                IafPscAlphaState::new(n, v_m_init),
            )),
            NeuronModel::SpikeGenerator => None,
        }
    }

    /// Advance neurons `range` by one step (see [`IafPscExpState::step`]).
    pub fn step(
        &mut self,
        range: Range<usize>,
        in_ex_pa: &[f64],
        in_in_pa: &[f64],
        spikes: &mut Vec<u32>,
    ) {
        match self {
            Block::Exp(c, s) => s.step(c, range, in_ex_pa, in_in_pa, spikes),
            Block::Alpha(c, s) => s.step(c, range, in_ex_pa, in_in_pa, spikes),
        }
    }

    /// Membrane potential of neuron `i`, mV (absolute).
    pub fn v_m(&self, i: usize) -> f64 {
        match self {
            Block::Exp(_, s) => s.v_m(i),
            Block::Alpha(_, s) => s.v_m(i),
        }
    }

    /// Number of neurons.
    pub fn len(&self) -> usize {
        match self {
            Block::Exp(_, s) => s.len(),
            Block::Alpha(_, s) => s.len(),
        }
    }

    /// True when the block holds no neurons.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state (not the constants, which are recomputed from the
    /// parameters) as bytes; see the states' `to_bytes`.
    pub fn state_to_bytes(&self) -> Vec<u8> {
        match self {
            Block::Exp(_, s) => s.to_bytes(),
            Block::Alpha(_, s) => s.to_bytes(),
        }
    }

    /// Replace the state by one read with [`Block::state_to_bytes`]; false
    /// (and nothing changed) if the bytes are not a state of this model and
    /// size.
    pub fn restore_state(&mut self, b: &[u8]) -> bool {
        match self.with_state_bytes(b, self.len()) {
            Some(x) => {
                *self = x;
                true
            }
            None => false,
        }
    }

    /// A block with these constants and the state read from `b` (see
    /// [`Block::state_to_bytes`]), if `b` is a state of `n` neurons of this
    /// model.
    pub fn with_state_bytes(&self, b: &[u8], n: usize) -> Option<Block> {
        match self {
            Block::Exp(c, _) => IafPscExpState::from_bytes(b)
                .filter(|s| s.len() == n)
                .map(|s| Block::Exp(*c, s)),
            Block::Alpha(c, _) => IafPscAlphaState::from_bytes(b)
                .filter(|s| s.len() == n)
                .map(|s| Block::Alpha(*c, s)),
        }
    }

    /// Append the neurons of `other`, a block of the same model, after
    /// these (a population's chunks into one state); `other` of another
    /// model is a bug and panics.
    pub fn append(&mut self, other: &Block) {
        match (self, other) {
            (Block::Exp(_, s), Block::Exp(_, o)) => s.append(o),
            (Block::Alpha(_, s), Block::Alpha(_, o)) => s.append(o),
            _ => panic!("Block::append of blocks of different models"),
        }
    }

    /// A block of neurons `r` of this one, with the same constants.
    pub fn range(&self, r: Range<usize>) -> Block {
        match self {
            Block::Exp(c, s) => Block::Exp(*c, s.range(r)),
            Block::Alpha(c, s) => Block::Alpha(*c, s.range(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(model: NeuronModel) -> NeuronParams {
        NeuronParams {
            model,
            C_m: 250.0,
            tau_m: 10.0,
            tau_syn_ex: 2.0,
            tau_syn_in: 2.0,
            t_ref: 2.0,
            E_L: -70.0,
            V_th: -55.0,
            V_reset: -70.0,
            I_e: 0.0,
            spike_times: vec![],
        }
    }

    #[test]
    fn refractory_steps_as_nest() {
        assert_eq!(refractory_steps(2.0, 0.1), 20);
        assert_eq!(refractory_steps(0.5, 0.1), 5);
        assert_eq!(refractory_steps(0.0, 0.1), 0);
        assert_eq!(refractory_steps(0.1, 0.1), 1);
        // Off grid: rounded up to whole steps (after rounding to tics).
        assert_eq!(refractory_steps(0.22, 0.1), 3);
        assert_eq!(refractory_steps(0.2000001, 0.1), 2);
        assert_eq!(refractory_steps(1.5, 0.25), 6);
        assert_eq!(refractory_steps(-1.0, 0.1), 0);
    }

    #[test]
    fn propagators_regular_and_singular() {
        let h = 0.1;
        // Regular case: the closed form.
        let (tau_s, tau_m, c) = (2.0f64, 10.0f64, 250.0f64);
        let (p31, p32) = iaf_propagators(tau_s, tau_m, c, h);
        let want32 =
            tau_s * tau_m / (c * (tau_m - tau_s)) * ((-h / tau_m).exp() - (-h / tau_s).exp());
        assert!((p32 - want32).abs() < 1e-15, "{p32} {want32}");
        assert!(p31 > 0.0 && p31 < 0.5 * h * h / c);
        // tau_syn == tau_m: h/C exp(-h/tau), h^2/(2C) exp(-h/tau).
        let (p31, p32) = iaf_propagators(10.0, 10.0, 250.0, h);
        assert_eq!(p32, h * (1.0 / 250.0) * (-h * (1.0 / 10.0)).exp());
        assert_eq!(p31, 0.5 * h * h * (1.0 / 250.0) * (-h * (1.0 / 10.0)).exp());
        // Nearly equal: continuous.
        let (q31, q32) = iaf_propagators(10.0 + 1e-9, 10.0, 250.0, h);
        assert!((q32 - p32).abs() < 1e-12 * p32);
        assert!((q31 - p31).abs() < 1e-9 * p31);
    }

    #[test]
    fn exp_dc_charges_to_asymptote_and_fires() {
        let mut p = params(NeuronModel::IafPscExp);
        p.I_e = 300.0; // asymptote -70 + 300 * 10 / 250 = -58 mV < -55
        let c = iaf_psc_exp_consts(&p, 0.1);
        let mut s = IafPscExpState::new(3, |_| -70.0);
        let mut spikes = Vec::new();
        let zero = [0.0; 3];
        for _ in 0..2000 {
            s.step(&c, 0..3, &zero, &zero, &mut spikes);
        }
        assert!(spikes.is_empty());
        assert!((s.v_m(1) - -58.0).abs() < 1e-6, "{}", s.v_m(1));
        // Above rheobase it fires, with at least t_ref between spikes.
        p.I_e = 1000.0;
        let c = iaf_psc_exp_consts(&p, 0.1);
        let mut s = IafPscExpState::new(1, |_| -70.0);
        let mut steps = Vec::new();
        for t in 0..1000u32 {
            spikes.clear();
            s.step(&c, 0..1, &zero, &zero, &mut spikes);
            if !spikes.is_empty() {
                steps.push(t);
                assert_eq!(s.v_m(0), -70.0);
            }
            assert!(s.v_m(0) < -55.0);
        }
        assert!(steps.len() > 5);
        for w in steps.windows(2) {
            assert!(w[1] - w[0] > 20);
        }
    }

    #[test]
    fn refractory_clamps_v_but_currents_evolve() {
        let p = params(NeuronModel::IafPscExp);
        let c = iaf_psc_exp_consts(&p, 0.1);
        let mut s = IafPscExpState::new(1, |_| -54.0); // above threshold
        let mut spikes = Vec::new();
        s.step(&c, 0..1, &[0.0], &[0.0], &mut spikes);
        assert_eq!(spikes, vec![0]);
        assert_eq!(s.refractory[0], 20);
        // 20 clamped steps, input still enters the current.
        for k in 0..20 {
            let w = if k == 0 { 1000.0 } else { 0.0 };
            s.step(&c, 0..1, &[w], &[0.0], &mut spikes);
            assert_eq!(s.v_m(0), -70.0, "step {k}");
        }
        assert!(s.i_syn_ex[0] > 0.0 && s.i_syn_ex[0] < 1000.0);
        s.step(&c, 0..1, &[0.0], &[0.0], &mut spikes);
        assert!(s.v_m(0) > -70.0);
    }

    #[test]
    fn alpha_psc_peaks_at_weight() {
        let p = params(NeuronModel::IafPscAlpha);
        let c = iaf_psc_alpha_consts(&p, 0.1);
        let mut s = IafPscAlphaState::new(1, |_| -70.0);
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

    #[test]
    fn ranges_and_blocks_agree() {
        let mut p = params(NeuronModel::IafPscAlpha);
        p.I_e = 500.0;
        let n = 10;
        let v0 = |i: usize| -70.0 + i as f64;
        let mut whole = Block::new(&p, 0.1, n, v0).unwrap();
        let mut parts = Block::new(&p, 0.1, n, v0).unwrap();
        let ex: Vec<f64> = (0..n).map(|i| 10.0 * i as f64).collect();
        let inh: Vec<f64> = (0..n).map(|i| -5.0 * i as f64).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..500 {
            a.clear();
            b.clear();
            whole.step(0..n, &ex, &inh, &mut a);
            parts.step(0..4, &ex[..4], &inh[..4], &mut b);
            parts.step(4..n, &ex[4..], &inh[4..], &mut b);
            assert_eq!(a, b);
        }
        assert_eq!(whole, parts);
        // Checkpoint round trip, then identical continuation.
        let bytes = whole.state_to_bytes();
        let mut restored = Block::new(&p, 0.1, n, |_| 0.0).unwrap();
        assert!(restored.restore_state(&bytes));
        assert_eq!(restored, whole);
        assert!(!restored.restore_state(&bytes[..bytes.len() - 1]));
        assert!(!Block::new(&params(NeuronModel::IafPscExp), 0.1, n, v0)
            .unwrap()
            .restore_state(&bytes));
        let s = IafPscExpState::new(3, |i| i as f64);
        assert_eq!(IafPscExpState::from_bytes(&s.to_bytes()), Some(s));
        assert!(Block::new(&params(NeuronModel::SpikeGenerator), 0.1, 1, |_| 0.0).is_none());
    }
}
