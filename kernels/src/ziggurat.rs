//! Ziggurat sampler for the standard normal distribution (Marsaglia & Tsang,
//! "The ziggurat method for generating random variables", JSS 2000), with
//! Doornik's fix ("An improved ziggurat method to generate normal random
//! samples", 2005): the bits that choose the layer are never reused for the
//! value. About 5x cheaper than the polar method
//! ([`CounterRng::normal2`](crate::rng::CounterRng::normal2)): ~99% of the
//! variates cost one 32-bit word, a few table reads and one multiplication.
//!
//! # Layers
//!
//! The area under `f(x) = exp(-x^2/2)`, `x >= 0`, is covered by 256 layers of
//! equal area `v`, numbered from the bottom:
//! * layer 0, the base strip: the rectangle `[0, r] x [0, f(r)]` plus the tail
//!   `x > r`, sampled as a rectangle of width `x_0 = v / f(r)` and height
//!   `f(r)`;
//! * layer `i` in 1..=255: the rectangle `[0, x_i] x [f_i, f_{i+1}]` with
//!   `x_1 = r`, `x_{i+1} = sqrt(-2 ln(v / x_i + f_i))` (so that
//!   `x_i (f_{i+1} - f_i) = v`), `x_256 = 0`, `f_i = exp(-x_i^2/2)`,
//!   `f_256 = 1`.
//!
//! The part of layer `i` left of `x_{i+1}` lies under the curve; the part
//! right of it (the wedge) partly above.
//!
//! # Random words
//!
//! Each attempt reads its stream `rng` as follows, and the sampler returns at
//! the first accepted attempt (attempts repeat from step 1):
//! 1. One word `w` ([`CounterRng::next_u32`]): layer `i = w & 0xff`, sign
//!    bit `s = (w >> 8) & 1`, position `u = ((w >> 9) + 1/2) 2^-23` (the top
//!    23 bits; `u` in (0, 1), exact), magnitude `x = u x_i`.
//! 2. If `u < r_i = x_{i+1} / x_i` (about 99% of attempts): accept `x`.
//!    Nothing more is read.
//! 3. Else, if `i == 0` (probability ~2.6e-4 per attempt): the tail beyond
//!    `r` by Marsaglia's method: a loop reading two uniforms per round
//!    ([`CounterRng::open01`], two words each), first `U1`, then `U2`;
//!    `a = -ln(U1) / r`, `b = -ln(U2)`; the round accepts `x = r + a` when
//!    `b + b > a a`, otherwise reads the next two uniforms (the tail loop
//!    never goes back to step 1; this is [`normal_tail`] with `r = x_1`).
//! 4. Else (a wedge, probability ~1% per attempt): one uniform `U`
//!    ([`CounterRng::open01`], two words): accept `x` if
//!    `f_i + U (f_{i+1} - f_i) < exp((-0.5 x) x)`, else start a new attempt
//!    at step 1.
//!
//! The result is `x` (always > 0) negated if `s = 1` (the sign bit of the
//! accepted attempt's word `w`).
//! `ln` and `exp` are [`detmath::ln`] and [`detmath::exp`], so the CUDA twin
//! (`kernels/cuda/ziggurat.cuh`, which takes the same tables as an argument)
//! gives the same bits.
//!
//! # Tables
//!
//! [`ZigguratTables::new`] derives the tables from the two constants
//! [`ZIG_R`] and [`ZIG_V`] with [`detmath`] functions and `+ - * / sqrt`
//! only, so they are the same bits on every machine; the host computes them
//! once ([`ZigguratTables::get`]) and uploads them to the device.

use std::sync::OnceLock;

use crate::detmath;
use crate::rng::CounterRng;

/// Number of layers of the ziggurat.
pub const ZIG_LAYERS: usize = 256;

/// Start of the tail, `x_1 = r = 3.6541528853610087716...`: the root of
/// "256 layers of equal area close exactly at the top"
/// (bits `0x400d3bb48209ad33`, computed in 60-digit arithmetic).
pub const ZIG_R: f64 = 3.654_152_885_361_009;

/// Area of each layer, `v = r f(r) + integral_r^inf f(x) dx =
/// 0.004928673233974655347...` for [`ZIG_R`] (bits `0x3f743016a5a43732`; the
/// 12-digit value 0.00492867323399 of Marsaglia & Tsang is 1.6e-12 high).
pub const ZIG_V: f64 = 0.004_928_673_233_974_655;

/// 2^-23: the spacing of the positions `u` within a layer.
const TWO_POW_M23: f64 = 1.0 / 8_388_608.0;

/// The ziggurat tables, in the layout of the CUDA struct `SnnZigTables`
/// (`kernels/cuda/ziggurat.cuh`): `x[257]`, then `r[256]`, then `f[257]`,
/// all `f64` (6160 bytes; see [`to_flat`](Self::to_flat)).
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub struct ZigguratTables {
    /// `x[0] = v / f(r)` (the base strip's width), `x[1] = r`, ...,
    /// `x[255]`, `x[256] = 0`; decreasing.
    x: [f64; ZIG_LAYERS + 1],
    /// `r[i] = x[i + 1] / x[i]`: positions `u < r[i]` of layer `i` lie
    /// under the curve.
    r: [f64; ZIG_LAYERS],
    /// `f[i] = exp(-x[i]^2 / 2)`, `f[256] = 1` (`f[0]` is not used by the
    /// sampler).
    f: [f64; ZIG_LAYERS + 1],
}

impl ZigguratTables {
    /// Number of `f64` values of [`to_flat`](Self::to_flat).
    pub const FLAT_LEN: usize = 3 * ZIG_LAYERS + 2;

    /// Computes the tables from [`ZIG_R`] and [`ZIG_V`] by the standard
    /// recursion (see the module documentation), in this order:
    /// `f_1 = exp(-0.5 r r)`, `x_0 = v / f_1`, `f_0 = exp(-0.5 x_0 x_0)`;
    /// for `i = 2..=255`: `x_i = sqrt(-2 ln(v / x_{i-1} + f_{i-1}))`,
    /// `f_i = exp(-0.5 x_i x_i)`; then `r_i = x_{i+1} / x_i`.
    pub fn new() -> Self {
        let mut x = [0.0; ZIG_LAYERS + 1];
        let mut f = [0.0; ZIG_LAYERS + 1];
        let mut r = [0.0; ZIG_LAYERS];
        x[1] = ZIG_R;
        f[1] = detmath::exp(-0.5 * ZIG_R * ZIG_R);
        x[0] = ZIG_V / f[1];
        f[0] = detmath::exp(-0.5 * x[0] * x[0]);
        for i in 2..ZIG_LAYERS {
            x[i] = (-2.0 * detmath::ln(ZIG_V / x[i - 1] + f[i - 1])).sqrt();
            f[i] = detmath::exp(-0.5 * x[i] * x[i]);
        }
        x[ZIG_LAYERS] = 0.0;
        f[ZIG_LAYERS] = 1.0;
        for i in 0..ZIG_LAYERS {
            r[i] = x[i + 1] / x[i];
        }
        ZigguratTables { x, r, f }
    }

    /// The process-wide tables, computed on first use.
    #[inline]
    pub fn get() -> &'static ZigguratTables {
        static TABLES: OnceLock<ZigguratTables> = OnceLock::new();
        TABLES.get_or_init(ZigguratTables::new)
    }

    /// Layer widths `x[0..=256]`.
    pub fn x(&self) -> &[f64; ZIG_LAYERS + 1] {
        &self.x
    }

    /// Ratios `r[i] = x[i + 1] / x[i]`.
    pub fn r(&self) -> &[f64; ZIG_LAYERS] {
        &self.r
    }

    /// Curve heights `f[i] = exp(-x[i]^2 / 2)`.
    pub fn f(&self) -> &[f64; ZIG_LAYERS + 1] {
        &self.f
    }

    /// The tables as one array in the memory layout of the CUDA struct
    /// `SnnZigTables`: `x[0..257]`, `r[0..256]`, `f[0..257]`
    /// ([`FLAT_LEN`](Self::FLAT_LEN) values), for the upload to the device.
    pub fn to_flat(&self) -> Vec<f64> {
        let mut v = Vec::with_capacity(Self::FLAT_LEN);
        v.extend_from_slice(&self.x);
        v.extend_from_slice(&self.r);
        v.extend_from_slice(&self.f);
        v
    }
}

impl Default for ZigguratTables {
    fn default() -> Self {
        Self::new()
    }
}

/// A standard normal variate by the ziggurat with the process-wide tables
/// ([`ZigguratTables::get`]); words read as in the
/// [module documentation](self).
#[inline]
pub fn normal_zig(rng: &mut CounterRng) -> f64 {
    normal_zig_with(ZigguratTables::get(), rng)
}

/// A standard normal variate by the ziggurat with the tables `t` (which must
/// be [`ZigguratTables::new`]'s for the distribution to be normal); words
/// read as in the [module documentation](self).
#[inline]
pub fn normal_zig_with(t: &ZigguratTables, rng: &mut CounterRng) -> f64 {
    loop {
        let w = rng.next_u32();
        let i = (w & 0xff) as usize;
        let sign = (((w >> 8) & 1) as u64) << 63;
        let u = ((w >> 9) as f64 + 0.5) * TWO_POW_M23;
        let x = if u < t.r[i] {
            u * t.x[i]
        } else {
            match zig_slow(t, rng, i, u) {
                Some(x) => x,
                None => continue,
            }
        };
        // Branch-free sign: the magnitude is positive, set its sign bit.
        return f64::from_bits(x.to_bits() | sign);
    }
}

/// Steps 3 and 4 of an attempt on layer `i` at position `u` (outside the
/// layer's rectangle under the curve): the magnitude, or `None` to start a
/// new attempt.
#[cold]
#[inline(never)]
fn zig_slow(t: &ZigguratTables, rng: &mut CounterRng, i: usize, u: f64) -> Option<f64> {
    if i == 0 {
        return Some(normal_tail(rng, t.x[1]));
    }
    let x = u * t.x[i];
    let y = t.f[i] + rng.open01() * (t.f[i + 1] - t.f[i]);
    if y < detmath::exp(-0.5 * x * x) {
        Some(x)
    } else {
        None
    }
}

/// A standard normal variate conditioned on being above `r > 0` (meant for
/// `r` of about 1 or more), by Marsaglia's tail method (1964): rounds of two
/// uniforms ([`CounterRng::open01`], two words each), first `U1`, then `U2`;
/// `a = -ln(U1) / r`, `b = -ln(U2)`; the round returns `r + a` when
/// `b + b > a a`, otherwise the next round reads two new uniforms. The tail
/// step of [`normal_zig`] (with `r = x[1]`).
#[inline]
pub fn normal_tail(rng: &mut CounterRng, r: f64) -> f64 {
    loop {
        let a = -detmath::ln(rng.open01()) / r;
        let b = -detmath::ln(rng.open01());
        if b + b > a * a {
            return r + a;
        }
    }
}
