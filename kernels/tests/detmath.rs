//! Accuracy of the deterministic `ln`, `ln_1p`, `exp` and `ln_factorial`
//! against std (glibc's, nearly correctly rounded).

use snn_kernels::{detmath, CounterRng};

/// Allowed error in ulp.
const MAX_ULP: u64 = 2;

/// Position of a double on the integer line of doubles (monotone, -0 = +0).
fn ordinal(x: f64) -> i128 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        -((b & !(1u64 << 63)) as i128)
    } else {
        b as i128
    }
}

/// Distance in ulp between two finite doubles.
fn ulp_diff(a: f64, b: f64) -> u64 {
    (ordinal(a) - ordinal(b)).unsigned_abs() as u64
}

/// Tracks the worst error of one function.
struct Worst {
    name: &'static str,
    ulp: u64,
    at: f64,
    count: u64,
}

impl Worst {
    fn new(name: &'static str) -> Self {
        Worst {
            name,
            ulp: 0,
            at: f64::NAN,
            count: 0,
        }
    }
    fn check(&mut self, x: f64, got: f64, want: f64) {
        self.count += 1;
        if got.is_nan() || want.is_nan() || got.is_infinite() || want.is_infinite() {
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{}({x:e}) = {got:e}, want {want:e}",
                self.name
            );
            return;
        }
        let d = ulp_diff(got, want);
        if d > self.ulp {
            self.ulp = d;
            self.at = x;
        }
    }
    fn finish(&self) {
        println!(
            "{}: max error {} ulp at {:e} over {} inputs",
            self.name, self.ulp, self.at, self.count
        );
        assert!(
            self.ulp <= MAX_ULP,
            "{}: {} ulp at {:e}",
            self.name,
            self.ulp,
            self.at
        );
    }
}

#[test]
fn ln_accuracy() {
    let mut rng = CounterRng::from_raw(0x5eed, [1, 0, 0], 0);
    let mut w = Worst::new("ln");
    // Random bit patterns over all positive finite doubles (subnormals too).
    for _ in 0..1_500_000 {
        let x = f64::from_bits(rng.next_u64() >> 1);
        if x.is_finite() && x > 0.0 {
            w.check(x, detmath::ln(x), x.ln());
        }
    }
    // Subnormals specifically, and the neighbourhood of 1.
    for _ in 0..100_000 {
        let x = f64::from_bits(rng.next_u64() & 0x000f_ffff_ffff_ffff);
        if x > 0.0 {
            w.check(x, detmath::ln(x), x.ln());
        }
        let y = 1.0 + (rng.open01() - 0.5) * 0.8;
        w.check(y, detmath::ln(y), y.ln());
        let z = 1.0 + (rng.open01() - 0.5) * 1e-6;
        w.check(z, detmath::ln(z), z.ln());
    }
    // Powers of two, their neighbours and the mantissa split point.
    for e in 0..2046u64 {
        // 2^(e - 1074): subnormal powers of two first, then normal ones.
        let b = if e < 52 { 1u64 << e } else { (e - 51) << 52 };
        for y in [b - 1, b, b + 1].map(f64::from_bits) {
            if y > 0.0 && y.is_finite() {
                w.check(y, detmath::ln(y), y.ln());
            }
        }
    }
    for d in -3i64..=3 {
        let x = f64::from_bits((std::f64::consts::SQRT_2.to_bits() as i64 + d) as u64);
        w.check(x, detmath::ln(x), x.ln());
    }
    w.finish();
}

#[test]
fn ln_special_cases() {
    assert_eq!(detmath::ln(1.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(detmath::ln(0.0), f64::NEG_INFINITY);
    assert_eq!(detmath::ln(-0.0), f64::NEG_INFINITY);
    assert_eq!(detmath::ln(f64::INFINITY), f64::INFINITY);
    assert!(detmath::ln(-1.0).is_nan());
    assert!(detmath::ln(-f64::MIN_POSITIVE).is_nan());
    assert!(detmath::ln(f64::NEG_INFINITY).is_nan());
    assert!(detmath::ln(f64::NAN).is_nan());
    assert_eq!(detmath::ln(2.0), std::f64::consts::LN_2);
    assert_eq!(detmath::ln(f64::from_bits(1)), f64::from_bits(1).ln());
    assert_eq!(detmath::ln(f64::MAX), f64::MAX.ln());
}

#[test]
fn ln_1p_accuracy() {
    let mut rng = CounterRng::from_raw(0x5eed, [2, 0, 0], 0);
    let mut w = Worst::new("ln_1p");
    for _ in 0..200_000 {
        // Magnitudes from 2^-60 to 2^20, both signs (above -1).
        let mag = 2f64.powf(rng.open01() * 80.0 - 60.0);
        let x = if rng.next_u32() & 1 == 0 {
            mag
        } else {
            -mag.min(0.999_999)
        };
        w.check(x, detmath::ln_1p(x), x.ln_1p());
    }
    w.finish();
    assert_eq!(detmath::ln_1p(0.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(detmath::ln_1p(-1.0), f64::NEG_INFINITY);
    assert!(detmath::ln_1p(-2.0).is_nan());
    assert_eq!(detmath::ln_1p(f64::INFINITY), f64::INFINITY);
    assert_eq!(detmath::ln_1p(1e-300), 1e-300);
}

#[test]
fn exp_accuracy() {
    let mut rng = CounterRng::from_raw(0x5eed, [3, 0, 0], 0);
    let mut w = Worst::new("exp");
    for _ in 0..1_500_000 {
        let x = -745.0 + rng.open01() * (709.7 + 745.0);
        w.check(x, detmath::exp(x), x.exp());
    }
    for _ in 0..100_000 {
        // Small arguments, and the subnormal range.
        let x = (rng.open01() - 0.5) * 4.0;
        w.check(x, detmath::exp(x), x.exp());
        let y = -708.5 - rng.open01() * 36.5;
        w.check(y, detmath::exp(y), y.exp());
        let z = (rng.open01() - 0.5) * 1e-9;
        w.check(z, detmath::exp(z), z.exp());
    }
    for x in [
        709.78,
        709.782_712_893_383_9,
        -745.13,
        -745.133_219_101_941_1,
        -744.44,
        1e-300,
        -1e-300,
    ] {
        w.check(x, detmath::exp(x), x.exp());
    }
    w.finish();
}

#[test]
fn exp_special_cases() {
    assert_eq!(detmath::exp(0.0), 1.0);
    assert_eq!(detmath::exp(-0.0), 1.0);
    assert_eq!(detmath::exp(f64::INFINITY), f64::INFINITY);
    assert_eq!(detmath::exp(f64::NEG_INFINITY), 0.0);
    assert_eq!(detmath::exp(710.0), f64::INFINITY);
    assert_eq!(detmath::exp(-746.0), 0.0);
    assert!(detmath::exp(f64::NAN).is_nan());
    assert!(ulp_diff(detmath::exp(1.0), std::f64::consts::E) <= 1);
    assert!(detmath::exp(709.78) < f64::INFINITY);
    assert!(detmath::exp(-745.0) > 0.0);
}

#[test]
fn ln_factorial_accuracy() {
    // Against a compensated running sum of std ln.
    let (mut exact, mut carry) = (0.0f64, 0.0f64);
    let mut worst: f64 = 0.0;
    for k in 0..100_000u64 {
        if k > 0 {
            let y = (k as f64).ln() - carry;
            let t = exact + y;
            carry = (t - exact) - y;
            exact = t;
        }
        let got = detmath::ln_factorial(k as f64);
        let rel = (got - exact).abs() / exact.max(1.0);
        worst = worst.max(rel);
    }
    println!("ln_factorial: max relative error {worst:e} for k < 1e5");
    assert!(worst < 1e-13, "ln_factorial relative error {worst:e}");
}

#[test]
fn ln2_split_constants() {
    // The split of ln 2 the kernels use: the high part has 32 trailing zero
    // bits, and the low part is the rounded remainder.
    assert_eq!(6.931_471_803_691_238e-1f64.to_bits(), 0x3fe6_2e42_fee0_0000);
    assert_eq!(
        1.908_214_929_270_587_7e-10f64.to_bits(),
        0x3dea_39ef_3579_3c76
    );
}
