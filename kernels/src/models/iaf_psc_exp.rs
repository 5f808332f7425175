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

use super::subnormal::{margin, mul_exact, settle, threshold, visit, Factor};
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

/// The update of neurons `0..n` of the slices, NEST's order (see
/// `step_body`), `$mul(x, k)` being `x` times factor `k` of `[P22, P21ex,
/// P21in, P11ex, P11in]`. Branch-free, so that the loop runs on vector
/// units: the propagation is computed for refractory neurons too and
/// discarded (the same IEEE operations in the same order either way);
/// spikes are flagged per block of 64 and collected after it.
macro_rules! update {
    ($mul:expr, $n:expr, $start:expr, $c:expr, $e_term:expr,
     $v_rel:ident, $i_ex:ident, $i_in:ident, $r_ref:ident, $in_ex:ident, $in_in:ident,
     $spikes:ident) => {
        let mut flags = [0u32; 64];
        for b in (0..$n).step_by(64) {
            let m = 64.min($n - b);
            let f = &mut flags[..m];
            // Whether any neuron of the block fired, accumulated in the
            // loop (in a register), so that blocks without a spike skip
            // the scan of their flags.
            let mut any = 0u32;
            let v_rel = &mut $v_rel[b..b + m];
            let i_ex = &mut $i_ex[b..b + m];
            let i_in = &mut $i_in[b..b + m];
            let r_ref = &mut $r_ref[b..b + m];
            let (in_ex, in_in) = (&$in_ex[b..b + m], &$in_in[b..b + m]);
            for k in 0..m {
                let mul = $mul;
                let v0 = v_rel[k];
                let (ie0, ii0, r0) = (i_ex[k], i_in[k], r_ref[k]);
                let propagated = mul(v0, 0) + mul(ie0, 1) + mul(ii0, 2) + $e_term;
                let free = r0 == 0;
                let v = if free { propagated } else { v0 };
                let r = if free { 0 } else { r0.wrapping_sub(1) };
                let ie = mul(ie0, 3) + in_ex[k];
                let ii = mul(ii0, 4) + in_in[k];
                let spike = v >= $c.theta;
                v_rel[k] = if spike { $c.v_reset } else { v };
                r_ref[k] = if spike { $c.refractory_steps } else { r };
                i_ex[k] = ie;
                i_in[k] = ii;
                f[k] = u32::from(spike);
                any |= u32::from(spike);
            }
            if any != 0 {
                push_flagged(f, $start + b, $spikes);
            }
        }
    };
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
        let (p22, p11_ex, p11_in) = (c.p22, c.p11_ex, c.p11_in);
        let (p21_ex, p21_in) = (c.p21_ex, c.p21_in);
        // `I_e P20` once (the loop would compute the same product).
        let e_term = c.i_e * c.p20;
        // A call whose neurons may make subnormal products takes the exact
        // path for them (`subnormal::mul_exact`: the same bits, without the
        // microcode assists), in a function of its own (its constants
        // would crowd the registers of this loop). A check every
        // `CHECK_EVERY` calls: the smallest nonzero magnitudes' bits (less
        // one, so that a zero wraps to the largest) against thresholds
        // raised by the decay until the next check. One hint per call,
        // kept with its first block of 64 (the engine calls pieces of 256
        // that start at multiples of 256).
        let hint = &mut self.tiny.blocks(start / 64 + 1)[start / 64];
        let (tiny, check) = visit(hint);
        let exact = if tiny {
            match [p22, p21_ex, p21_in, p11_ex, p11_in].map(Factor::new) {
                [Some(a), Some(b), Some(c), Some(d), Some(e)] => Some([a, b, c, d, e]),
                _ => None,
            }
        } else {
            None
        };
        match exact {
            None => {
                let ps = [p22, p21_ex, p21_in, p11_ex, p11_in];
                update!(
                    |x: f64, k: usize| x * ps[k],
                    n,
                    start,
                    c,
                    e_term,
                    v_rel,
                    i_ex,
                    i_in,
                    r_ref,
                    in_ex,
                    in_in,
                    spikes
                );
            }
            Some(fs) => exact_update(Exact {
                c,
                e_term,
                fs,
                start,
                v_rel,
                i_ex,
                i_in,
                r_ref,
                in_ex,
                in_in,
                spikes,
            }),
        }
        if check {
            // The groups of 8 neurons (a vector) holding a value below
            // its threshold: the exact path is taken where more than
            // three in four would take the slow multiplications. (It
            // costs ~4 ns more per neuron than the fast path, as much as
            // the slow path of groups with a tiny value in one in two or
            // three of them; where they are fewer, the multi-area model
            // measured slower with it.)
            const ABS: u64 = !(1 << 63);
            let bits = |t: f64| t.to_bits().wrapping_sub(1);
            let (t_v, t_ex, t_in) = (
                bits(threshold(&[p22]) * margin(p22)),
                bits(threshold(&[p11_ex, p21_ex]) * margin(p11_ex)),
                bits(threshold(&[p11_in, p21_in]) * margin(p11_in)),
            );
            let low = |x: f64, t: u64| (x.to_bits() & ABS).wrapping_sub(1) < t;
            let mut groups = 0;
            for g in (0..n).step_by(8) {
                let e = (g + 8).min(n);
                let mut any = false;
                for k in g..e {
                    any |= low(v_rel[k], t_v) | low(i_ex[k], t_ex) | low(i_in[k], t_in);
                }
                groups += usize::from(any);
            }
            settle(hint, 4 * groups > 3 * n.div_ceil(8));
        }
    }
}

/// The operands of one exact update (see [`exact_update`]): the state
/// and input slices of the neurons from `start` on.
struct Exact<'a> {
    c: &'a Consts,
    e_term: f64,
    fs: [Factor; 5],
    start: usize,
    v_rel: &'a mut [f64],
    i_ex: &'a mut [f64],
    i_in: &'a mut [f64],
    r_ref: &'a mut [u32],
    in_ex: &'a [f64],
    in_in: &'a [f64],
    spikes: &'a mut Vec<u32>,
}

impl Exact<'_> {
    /// `update!` with `subnormal::mul_exact` for every product of a state
    /// variable.
    #[inline(always)]
    fn run(self) {
        let Exact {
            c,
            e_term,
            fs,
            start,
            v_rel,
            i_ex,
            i_in,
            r_ref,
            in_ex,
            in_in,
            spikes,
        } = self;
        let n = v_rel.len();
        let (i_ex, i_in, r_ref) = (&mut i_ex[..n], &mut i_in[..n], &mut r_ref[..n]);
        let (in_ex, in_in) = (&in_ex[..n], &in_in[..n]);
        update!(
            |x: f64, k: usize| mul_exact(x, &fs[k]),
            n,
            start,
            c,
            e_term,
            v_rel,
            i_ex,
            i_in,
            r_ref,
            in_ex,
            in_in,
            spikes
        );
    }
}

/// [`Exact::run`], compiled for the CPU's vector level.
#[inline(never)]
fn exact_update(x: Exact) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")]
        fn avx512(x: Exact) {
            x.run()
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(x: Exact) {
            x.run()
        }
        use super::{simd, Simd};
        match simd() {
            // SAFETY: `simd` reports AVX-512 only where the CPU has these
            // features and FMA, the only requirements of `avx512`.
            Simd::Avx512 => return unsafe { avx512(x) },
            // SAFETY: `simd` reports AVX2 only where the CPU has it and FMA,
            // the only requirements of `avx2`.
            Simd::Avx2 => return unsafe { avx2(x) },
            Simd::Scalar => {}
        }
    }
    x.run()
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

    /// One step of neuron `k` with the hardware's multiplications (exact
    /// IEEE, slow for subnormals): the reference for the exact path.
    fn reference_step(s: &mut State, c: &Consts, k: usize, in_ex: f64, in_in: f64) -> bool {
        let (v0, ie0, ii0, r0) = (s.v_rel[k], s.i_syn_ex[k], s.i_syn_in[k], s.refractory[k]);
        let propagated = v0 * c.p22 + ie0 * c.p21_ex + ii0 * c.p21_in + c.i_e * c.p20;
        let (v, r) = if r0 == 0 {
            (propagated, 0)
        } else {
            (v0, r0 - 1)
        };
        s.i_syn_ex[k] = ie0 * c.p11_ex + in_ex;
        s.i_syn_in[k] = ii0 * c.p11_in + in_in;
        let spike = v >= c.theta;
        s.v_rel[k] = if spike { c.v_reset } else { v };
        s.refractory[k] = if spike { c.refractory_steps } else { r };
        spike
    }

    /// Currents and potentials in and near the subnormal range (where the
    /// exact path takes over), stepped by `step` at every vector level
    /// and by the reference: the same bits every step, the same spikes.
    #[test]
    fn subnormal_state_same_bits_as_the_hardware() {
        let p = ModelParams {
            I_e: 0.0,
            ..ModelParams::default()
        };
        let c = consts(&p, 0.1);
        let n = 300;
        let tiny = |i: usize| match i % 5 {
            0 => f64::from_bits(1 + i as u64),
            1 => f64::from_bits((3 << 52) | (i as u64 * 7919)),
            2 => 1e-300,
            3 => 0.0,
            _ => 5.0,
        };
        let start = State {
            v_rel: (0..n)
                .map(|i| if i % 7 == 0 { 14.9 } else { tiny(i / 3) })
                .collect(),
            i_syn_ex: (0..n).map(tiny).collect(),
            i_syn_in: (0..n).map(|i| -tiny(i + 2)).collect(),
            refractory: (0..n).map(|i| (i % 3) as u32).collect(),
            tiny: Default::default(),
        };
        // Input to the first half only: the other half's currents decay
        // undisturbed.
        let input = |t: usize, k: usize| {
            if k >= n / 2 {
                (0.0, 0.0)
            } else if (t * 31 + k).is_multiple_of(97) {
                (87.8, 0.0)
            } else if (t * 17 + k).is_multiple_of(89) {
                (0.0, -351.2)
            } else {
                (0.0, 0.0)
            }
        };
        let mut want = start.clone();
        let mut want_spikes = Vec::new();
        for t in 0..400 {
            for k in 0..n {
                let (e, i) = input(t, k);
                if reference_step(&mut want, &c, k, e, i) {
                    want_spikes.push((t, k as u32));
                }
            }
        }
        let levels = [
            super::super::Simd::Scalar,
            super::super::Simd::Avx2,
            super::super::Simd::Avx512,
        ];
        for level in levels.into_iter().filter(|&l| l <= super::super::simd()) {
            let mut s = start.clone();
            let mut spikes_all = Vec::new();
            for t in 0..400 {
                let (ex, inh): (Vec<f64>, Vec<f64>) = (0..n).map(|k| input(t, k)).unzip();
                let mut spikes = Vec::new();
                // In pieces of 64 and 128, as the engine's 256.
                for r in [0..64, 64..192, 192..n] {
                    let (a, b) = (r.start, r.end);
                    match level {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `simd` reports this level (or a higher
                        // one) only where the CPU has its features.
                        super::super::Simd::Avx512 => unsafe {
                            s.step_avx512(&c, r, &ex[a..b], &inh[a..b], &mut spikes)
                        },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: as above.
                        super::super::Simd::Avx2 => unsafe {
                            s.step_avx2(&c, r, &ex[a..b], &inh[a..b], &mut spikes)
                        },
                        _ => s.step_body(&c, r, &ex[a..b], &inh[a..b], &mut spikes),
                    }
                }
                spikes_all.extend(spikes.into_iter().map(|k| (t, k)));
            }
            for (name, x, y) in [
                ("v_rel", &s.v_rel, &want.v_rel),
                ("i_syn_ex", &s.i_syn_ex, &want.i_syn_ex),
                ("i_syn_in", &s.i_syn_in, &want.i_syn_in),
            ] {
                for k in 0..n {
                    assert_eq!(x[k].to_bits(), y[k].to_bits(), "{level:?} {name}[{k}]");
                }
            }
            assert_eq!(s.refractory, want.refractory);
            assert_eq!(spikes_all, want_spikes, "{level:?}");
        }
        // Some currents are still subnormal at the end (stuck at the
        // smallest ones), so the exact path had work to do.
        assert!(want.i_syn_ex.iter().any(|x| x.is_subnormal()));
    }

    /// The exact path alone, on a block whose every current is tiny.
    #[test]
    fn exact_update_same_bits_as_the_hardware() {
        let c = consts(&ModelParams::default(), 0.1);
        let n = 100;
        let mut s = State::new(n, |i| i as f64 * 0.15);
        for k in 0..n {
            s.i_syn_ex[k] = f64::from_bits(1 + 1_000_003 * k as u64);
            s.i_syn_in[k] = -f64::from_bits((2 << 52) + 999_983 * k as u64);
        }
        let mut want = s.clone();
        let (ex, inh) = (vec![0.0; n], vec![0.0; n]);
        let fs = [c.p22, c.p21_ex, c.p21_in, c.p11_ex, c.p11_in].map(|p| Factor::new(p).unwrap());
        for _ in 0..50 {
            let mut spikes = Vec::new();
            exact_update(Exact {
                c: &c,
                e_term: c.i_e * c.p20,
                fs,
                start: 0,
                v_rel: &mut s.v_rel,
                i_ex: &mut s.i_syn_ex,
                i_in: &mut s.i_syn_in,
                r_ref: &mut s.refractory,
                in_ex: &ex,
                in_in: &inh,
                spikes: &mut spikes,
            });
            let mut want_spikes = Vec::new();
            for k in 0..n {
                if reference_step(&mut want, &c, k, 0.0, 0.0) {
                    want_spikes.push(k as u32);
                }
            }
            assert_eq!(spikes, want_spikes);
            for k in 0..n {
                assert_eq!(s.v_rel[k].to_bits(), want.v_rel[k].to_bits());
                assert_eq!(s.i_syn_ex[k].to_bits(), want.i_syn_ex[k].to_bits(), "{k}");
                assert_eq!(s.i_syn_in[k].to_bits(), want.i_syn_in[k].to_bits(), "{k}");
            }
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
