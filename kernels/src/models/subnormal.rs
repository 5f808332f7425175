//! Products with subnormal operands or results, without the CPU's slow path.
//!
//! x86 cores multiply a subnormal operand, or make a subnormal product, in
//! microcode: about 40 ns a scalar instruction on dev-2c (0.6 ns
//! otherwise), and a vector instruction pays it if any lane needs it. A
//! synaptic current that no spike renews decays into the subnormal range
//! (`I P11^n`) and stays there: `2^-1074 P11` rounds back to `2^-1074` for
//! `P11 > 1/2`, so it never reaches zero. A quiet network (the
//! microcircuit with DC drive at 10 % of its neurons) spent 92 % of its
//! time in those multiplications.
//! Flushing subnormals to zero would change the bits, and the GPU engine
//! (whose doubles keep subnormals at full speed) must give the same ones:
//! instead, [`mul_exact`] computes the IEEE product (round to nearest,
//! ties to even) from normal numbers only, the same bits as the hardware,
//! and the models use it only for the pieces of neurons that a [`Hint`]
//! marks as holding tiny values (`iaf_psc_exp`; the other models still
//! take the slow path there, with the same bits).

/// Smallest positive normal `f64`, `2^-1022`.
const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
/// The sign bit of an `f64`.
const SIGN: u64 = 1 << 63;
/// 2^52 (the subnormals' integers are below it).
const TWO_52: f64 = 4_503_599_627_370_496.0;
/// The bits of 1.0.
const ONE: u64 = 0x3ff0_0000_0000_0000;

/// A propagator (a factor of [`mul_exact`]), with the smallest exponent
/// field a value needs for its product with it to be surely normal.
#[derive(Clone, Copy, Debug)]
pub struct Factor {
    /// The factor.
    pub p: f64,
    /// `x p` is normal when `x`'s exponent field is at least this
    /// (`field(x) + field(p) >= 1024`), and `x` is normal (>= 1).
    min_field: u64,
}

impl Factor {
    /// `p` as a factor of [`mul_exact`]; `None` where the exact path does
    /// not apply (`p` zero, not finite, or below `2^-971`: `x 2^1074` would
    /// leave the range for the tiny `x` of such a factor).
    pub fn new(p: f64) -> Option<Factor> {
        let field = (p.to_bits() >> 52) & 0x7ff;
        if !p.is_finite() || field < 52 {
            return None;
        }
        Some(Factor {
            p,
            min_field: 1024u64.saturating_sub(field).max(1),
        })
    }
}

/// `x * f.p` with the bits of IEEE 754 binary64 multiplication (round to
/// nearest, ties to even), without the microcode path: branch-free, so
/// that it runs on vector units. A value whose product may be subnormal
/// (or that is itself subnormal) is scaled exactly by `2^1074` (the
/// integer of a subnormal, an exponent raised by 1074), multiplied there,
/// where everything is normal, and the product rounded to the integers
/// (the subnormals' grid, `2^-1074`), ties decided by the exact remainder
/// of the product (`mul_add`); the rest is multiplied by the hardware.
#[inline(always)]
pub fn mul_exact(x: f64, f: &Factor) -> f64 {
    let bx = x.to_bits();
    let ax = bx & !SIGN;
    let tiny = ax >> 52 < f.min_field && ax != 0;
    // All-ones where tiny.
    let mask = 0u64.wrapping_sub(u64::from(tiny));
    // The hardware for the others. A tiny one gets the exponent field of
    // 1 (`| 0x3ff`: it is below that) so that the multiplication is a fast
    // one; a constant stand-in would let the compiler fold `(tiny ? 1 : x)
    // * p` into `tiny ? p : x * p`, the slow `x * p` this avoids.
    let hw = f64::from_bits(bx | (mask & ONE)) * f.p;
    // |x| 2^1074, exactly (1 stands in for the others): a subnormal's
    // integer (`m + 2^52 - 2^52`, exact as `m < 2^52`), a normal's
    // exponent raised by 1074.
    let xs = (ax & mask) | (1 & !mask);
    let big = if xs >> 52 == 0 {
        f64::from_bits(xs | TWO_52.to_bits()) - TWO_52
    } else {
        f64::from_bits(xs + (1074 << 52))
    };
    let pa = f.p.abs();
    let y = big * pa;
    let rem = big.mul_add(pa, -y);
    let r = y.round_ties_even();
    // A tie of `y` rounded to even is decided by the remainder.
    let d = y - r;
    let r = if d == 0.5 && rem > 0.0 {
        r + 1.0
    } else if d == -0.5 && rem < 0.0 {
        r - 1.0
    } else {
        r
    };
    // Up to 2^52 units of 2^-1074: a subnormal (2^52: the smallest normal),
    // whose bits are that integer (`r + 2^52`'s fraction, or 2^52 for
    // `r = 2^52`); beyond, the normal y 2^-1074.
    let bits = if r <= TWO_52 {
        (r + TWO_52).to_bits() - TWO_52.to_bits()
    } else {
        y.to_bits() - (1074 << 52)
    };
    let emu = bits | ((bx ^ f.p.to_bits()) & SIGN);
    f64::from_bits((hw.to_bits() & !mask) | (emu & mask))
}

/// The magnitude below which a value's product with one of the factors `ps`
/// may be subnormal, or the value itself is: `2^-1022 / min(1, |p|)` over
/// the nonzero factors (zero factors make zeros, which are fast), infinite
/// if a factor is itself subnormal.
pub fn threshold(ps: &[f64]) -> f64 {
    let mut t = MIN_NORMAL;
    for &p in ps {
        let a = p.abs();
        if a == 0.0 {
            continue;
        }
        if a < MIN_NORMAL {
            return f64::INFINITY;
        }
        if a < 1.0 {
            t = t.max(MIN_NORMAL / a);
        }
    }
    t
}

/// Updates between two checks of a piece's values (see [`Hint`]).
pub const CHECK_EVERY: u32 = 32;

/// Per piece of neurons (a model's `step` call, kept by the piece's first
/// block of 64), whether its state may hold values whose products are
/// subnormal: checked every [`CHECK_EVERY`] updates of the piece, after
/// the update, against thresholds raised by the decay of those updates
/// ([`margin`]), so that the updates in between take the exact path
/// ([`mul_exact`]) where needed. (A check in every update would cost an
/// eighth of it: the loop is bound by the vector ports.) Only a hint about
/// speed: both paths give the same bits, so it is no part of a state's
/// value (it compares equal always, and starts with a check due).
#[derive(Clone, Debug, Default)]
pub struct Hint(Vec<u8>);

/// [`Hint`]'s flag of a block that may hold tiny values (the low bits
/// count the updates to the next check).
const TINY: u8 = 0x80;

impl PartialEq for Hint {
    fn eq(&self, _: &Hint) -> bool {
        true
    }
}

impl Hint {
    /// The hints of blocks `0..n` (grown as needed), for [`visit`] and
    /// [`settle`].
    #[inline]
    pub fn blocks(&mut self, n: usize) -> &mut [u8] {
        if self.0.len() < n {
            self.0.resize(n, 0);
        }
        &mut self.0[..n]
    }
}

/// For an update of the block with hint `h`: (whether it may hold tiny
/// values, whether this update must check them and [`settle`] the answer).
#[inline(always)]
pub fn visit(h: &mut u8) -> (bool, bool) {
    let tiny = *h & TINY != 0;
    if *h & !TINY == 0 {
        (tiny, true)
    } else {
        *h -= 1;
        (tiny, false)
    }
}

/// The answer of a block's check: the next check is due in
/// [`CHECK_EVERY`] updates.
#[inline(always)]
pub fn settle(h: &mut u8, tiny: bool) {
    *h = (CHECK_EVERY - 1) as u8 | if tiny { TINY } else { 0 };
}

/// The factor by which a threshold is raised so that a value above it now
/// stays above the plain one for [`CHECK_EVERY`] updates while it decays
/// by `p` per update: `p^-CHECK_EVERY` (1 if `p` does not decay).
pub fn margin(p: f64) -> f64 {
    let a = p.abs();
    if a >= 1.0 {
        1.0
    } else {
        a.powi(-(CHECK_EVERY as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of 64-bit words (splitmix64).
    fn words(seed: u64) -> impl Iterator<Item = u64> {
        let mut s = seed;
        std::iter::repeat_with(move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    /// The bits of the hardware's multiplication (the reference: exact
    /// IEEE, only slow for these operands) for subnormal operands, normal
    /// ones near the bottom of the range, products that round across the
    /// subnormal boundary or to zero, and ties.
    #[test]
    fn same_bits_as_the_hardware() {
        let mut w = words(7);
        let check = |x: f64, p: f64| {
            let f = Factor::new(p).unwrap();
            let (a, b) = (mul_exact(x, &f), x * p);
            assert_eq!(a.to_bits(), b.to_bits(), "{x:e} * {p:e}: {a:e} vs {b:e}");
        };
        let props = [
            0.818_730_753_077_981_8,
            0.990_049_833_749_168,
            3.9e-4,
            2.5e-10,
            1e-290,
            0.5,
            1.0,
            1.5,
            -0.75,
            3.0e5,
        ];
        for _ in 0..200_000 {
            let r = w.next().unwrap();
            let s = w.next().unwrap();
            // Subnormal (any fraction), near-normal (exponent field 1..60)
            // and ordinary operands, either sign.
            let sign = r & (1 << 63);
            let frac = r & ((1 << 52) - 1);
            let x = match s % 4 {
                0 => f64::from_bits(sign | frac),
                1 => f64::from_bits(sign | ((1 + s % 60) << 52) | frac),
                2 => f64::from_bits(sign | (frac >> (s % 53))),
                _ => f64::from_bits(sign | ((900 + s % 300) << 52) | frac),
            };
            check(x, props[(s >> 8) as usize % props.len()]);
            // A random factor as well, from 2^-971 to 4.
            let p = f64::from_bits(((52 + (s >> 16) % 973) << 52) | (s & ((1 << 52) - 1)));
            check(x, p);
        }
        // Ties on the subnormal grid (1.5 and 2.5 units round to 2), and
        // rounding across into the normals.
        for m in [1u64, 2, 3, 5, 7, (1 << 52) - 1, 1 << 51, 1 << 52] {
            for p in [
                0.5,
                0.25,
                1.0 + f64::EPSILON,
                1.5,
                0.75,
                0.818_730_753_077_981_8,
            ] {
                check(f64::from_bits(m), p);
                check(-f64::from_bits(m), p);
            }
        }
        for (x, p) in [
            (0.0, 0.5),
            (-0.0, 0.5),
            (f64::MIN_POSITIVE, 0.5),
            (f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0),
            (1e-300, 1e-30),
            (f64::from_bits(1), 1e300),
            (f64::INFINITY, 0.5),
            (f64::MAX, 1.5),
        ] {
            check(x, p);
        }
        let f = Factor::new(0.5).unwrap();
        assert!(mul_exact(f64::NAN, &f).is_nan());
        assert!(Factor::new(0.0).is_none() && Factor::new(1e-300).is_none());
        assert!(Factor::new(f64::NAN).is_none() && Factor::new(2f64.powi(-971)).is_some());
    }

    #[test]
    fn threshold_and_hint() {
        assert_eq!(threshold(&[0.5, 2.0]), 2.0 * f64::MIN_POSITIVE);
        assert_eq!(threshold(&[0.0, 1.5]), f64::MIN_POSITIVE);
        assert_eq!(threshold(&[1e-310]), f64::INFINITY);
        let mut h = Hint::default();
        // A check is due at once, then every CHECK_EVERY visits.
        let b = &mut h.blocks(4)[3];
        assert_eq!(visit(b), (false, true));
        settle(b, true);
        for _ in 1..CHECK_EVERY {
            assert_eq!(visit(b), (true, false));
        }
        assert_eq!(visit(b), (true, true));
        settle(b, false);
        assert_eq!(visit(b), (false, false));
        assert_eq!(visit(&mut h.blocks(4)[2]), (false, true));
        assert_eq!(h.blocks(2).len(), 2);
        assert_eq!(h, Hint::default());
        assert_eq!(margin(2.0), 1.0);
        assert_eq!(margin(0.5), 2f64.powi(CHECK_EVERY as i32));
    }
}
