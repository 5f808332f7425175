//! What the leaky integrate-and-fire models with current synapses share:
//! NEST's `IAFPropagator`.

/// NEST's `IAFPropagator`: the scale factor of the singularity test of P31.
const NUMERICAL_STABILITY_FACTOR: f64 = 1e-7;

/// `exp(x) - 1` as NEST 3.10's `numerics::expm1` computes it where the build
/// did not find a C library `expm1` (`HAVE_EXPM1` unset, as in NEST's PyPI
/// wheels, the reference of the exactness tests): `exp(x) - 1` for `|x| >
/// ln 2`, else the Taylor series `x + x^2/2! + ...`, summed until a term is
/// below `epsilon` of the sum. Differs from the correctly rounded value by
/// an ulp for some `x` (e.g. -0.01), which NEST's propagators carry, so the
/// models use it to give NEST's bits.
pub(super) fn nest_expm1(x: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    if x.abs() > 2f64.ln() {
        return x.exp() - 1.0;
    }
    let mut sum = x;
    let mut term = x * x / 2.0;
    let mut n = 2i64;
    while term.abs() > sum.abs() * f64::EPSILON {
        sum += term;
        n += 1;
        term *= x / n as f64;
    }
    sum
}

/// NEST's `IAFPropagator` for one synapse type: returns `(P31, P32)` for
/// step `h` (P32 is the `I -> V` propagator of `iaf_psc_exp`, called P21
/// there; P31 the `dI -> V` one of `iaf_psc_alpha`).
///
/// The singular cases follow NEST (>= 3.0, `libnestutil/iaf_propagator.cpp`):
/// the regular `P32` formula is used when its result is a normal positive
/// number and `h/C_m exp(-h/tau_m)` otherwise (this catches `tau_syn ==
/// tau_m`, where the formula gives `inf * 0 = NaN`); the regular `P31`
/// formula is used when `h > 1e-7 tau_m^2 / |tau_m - tau_syn|` and
/// `h^2/(2 C_m) exp(-h/tau_m)` otherwise.
pub(super) fn iaf_propagators(tau_syn: f64, tau_m: f64, c_m: f64, h: f64) -> (f64, f64) {
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
    let expm1_h_tau = nest_expm1(h * inv_beta);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nest_expm1_is_close_to_expm1() {
        for &x in &[
            -0.7, -0.2, -0.05, -0.01, -1e-6, 1e-9, 0.04, 0.5, 0.69, 2.0, -30.0,
        ] {
            let (a, b) = (nest_expm1(x), f64::exp_m1(x));
            assert!(
                (a - b).abs() <= 4.0 * f64::EPSILON * b.abs(),
                "{x}: {a} {b}"
            );
        }
        assert_eq!(nest_expm1(0.0), 0.0);
        // The ulp NEST's series differs by at -h/tau_m = -0.01.
        let up = f64::from_bits((-0.01f64).exp_m1().to_bits() - 1);
        assert_eq!(nest_expm1(-0.01), up);
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
}
