//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
//! SC'11) and a small sequential reader over one counter stream.
//!
//! A stream is named by a 64-bit seed (the Philox key) and three 32-bit words
//! (the high words of the counter); the low counter word numbers the 128-bit
//! blocks of the stream. Streams used by snn put a [`Purpose`] tag in the top
//! byte of the first word so that different uses of the same seed never
//! overlap.

/// Multiplier of the first Philox4x32 lane.
const PHILOX_M0: u32 = 0xD251_1F53;
/// Multiplier of the second Philox4x32 lane.
const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Weyl increment of the first key word.
const PHILOX_W0: u32 = 0x9E37_79B9;
/// Weyl increment of the second key word.
const PHILOX_W1: u32 = 0xBB67_AE85;

/// One Philox4x32-10 block: four random 32-bit words as a pure function of a
/// 128-bit counter and a 64-bit key.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let p0 = (PHILOX_M0 as u64) * (c[0] as u64);
        let p1 = (PHILOX_M1 as u64) * (c[2] as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// One counter word of 32 lanes (see [`philox4x32_10_x32_to`]).
#[derive(Clone, Copy, Debug)]
pub enum Lanes<'a> {
    /// The same word in every lane.
    Same(u32),
    /// Word `j` in lane `j`.
    Each(&'a [u32; 32]),
    /// `base + j` (wrapping) in lane `j`.
    Iota(u32),
}

impl Lanes<'_> {
    /// The word of lane `j`.
    #[inline(always)]
    fn lane(&self, j: usize) -> u32 {
        match *self {
            Lanes::Same(x) => x,
            Lanes::Each(w) => w[j],
            Lanes::Iota(base) => base.wrapping_add(j as u32),
        }
    }
}

/// [`philox4x32_10`] of 32 counters at once, all with the same key: counter
/// word `i` of lane `j` is `counters[i][j]`, and so is output word `i`. See
/// [`philox4x32_10_x32_to`], which this calls.
pub fn philox4x32_10_x32(counters: &[[u32; 32]; 4], key: [u32; 2]) -> [[u32; 32]; 4] {
    let mut out = [[0u32; 32]; 4];
    let [a, b, c, d] = &mut out;
    philox4x32_10_x32_to(
        &[
            Lanes::Each(&counters[0]),
            Lanes::Each(&counters[1]),
            Lanes::Each(&counters[2]),
            Lanes::Each(&counters[3]),
        ],
        key,
        &mut [a, b, c, d],
    );
    out
}

/// [`philox4x32_10`] of 32 counters at once, all with the same key: counter
/// word `i` of lane `j` is `counters[i]`'s lane `j`, and output word `i` of
/// lane `j < m` goes to `out[i][j]` (`m`: the common length of the `out`
/// slices, at most 32; lanes from `m` on are computed and dropped).
///
/// With AVX-512 or AVX2 (as [`crate::models::simd`] reports) four groups of
/// eight lanes go through the rounds side by side; without, lane by lane.
/// The words are the same either way (integer arithmetic only). The
/// counters are made in registers from what [`Lanes`] says (a broadcast, a
/// load, a ramp) and the words stored straight into `out`: counters just
/// written to memory by narrower stores, or words copied out of a returned
/// array, stall the loads that read them (store forwarding fails for a load
/// that spans several stores), which had made the engine's Philox twice as
/// slow as the rounds themselves.
///
/// Everything is passed by reference and read field by field, for the same
/// reason (a by-value array of slices had been copied 16 bytes at a time
/// from its 8-byte fields).
///
/// # Panics
///
/// If the `out` slices differ in length or are longer than 32.
#[inline]
pub fn philox4x32_10_x32_to(counters: &[Lanes<'_>; 4], key: [u32; 2], out: &mut [&mut [u32]; 4]) {
    let m = out[0].len();
    assert!(
        m <= 32 && out.iter().all(|o| o.len() == m),
        "philox4x32_10_x32_to: output slices of different lengths or over 32"
    );
    #[cfg(target_arch = "x86_64")]
    {
        use crate::models::{simd, Simd};
        match simd() {
            // SAFETY: `simd` reports AVX-512 only where the CPU has it
            // (AVX-512F is the only requirement of `avx512::philox_x32`).
            Simd::Avx512 => return unsafe { avx512::philox_x32(counters, key, out) },
            // SAFETY: `simd` reports AVX2 only where the CPU has it, the
            // only requirement of `avx2::philox_x32`.
            Simd::Avx2 => return unsafe { avx2::philox_x32(counters, key, out) },
            Simd::Scalar => {}
        }
    }
    scalar_x32(counters, key, out);
}

/// Lane by lane (the plain variant of [`philox4x32_10_x32_to`]).
fn scalar_x32(counters: &[Lanes<'_>; 4], key: [u32; 2], out: &mut [&mut [u32]; 4]) {
    let [a, b, c, d] = out;
    for j in 0..a.len() {
        let w = philox4x32_10(
            [
                counters[0].lane(j),
                counters[1].lane(j),
                counters[2].lane(j),
                counters[3].lane(j),
            ],
            key,
        );
        (a[j], b[j], c[j], d[j]) = (w[0], w[1], w[2], w[3]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Lanes, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1};
    use std::arch::x86_64::*;

    /// Lanes `8 g..8 g + 8` of `w`, each in the low half of a 64-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn group(w: &Lanes<'_>, g: usize) -> __m512i {
        match *w {
            Lanes::Same(x) => _mm512_set1_epi64(i64::from(x)),
            Lanes::Each(w) => {
                // SAFETY: `w[8 g..8 g + 8]` is in bounds (g < 4) and an
                // unaligned load reads exactly those 32 bytes.
                let v = unsafe { _mm256_loadu_si256(w.as_ptr().add(8 * g) as *const __m256i) };
                _mm512_cvtepu32_epi64(v)
            }
            Lanes::Iota(base) => {
                let ramp = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
                let first = _mm512_set1_epi64(i64::from(base.wrapping_add(8 * g as u32)));
                // 32-bit additions: the low halves wrap as `u32` does, the
                // high halves stay zero.
                _mm512_add_epi32(first, ramp)
            }
        }
    }

    /// Philox4x32-10 of 32 lanes (see `philox4x32_10_x32_to`): four groups
    /// of eight lanes side by side, each 32-bit word held in the low half
    /// of a 64-bit lane. One `vpmuludq` then gives a lane's whole 64-bit
    /// product (low word in the low half, high word in the high half), a
    /// `vpshufd` swaps the high word down and one `vpternlogd` makes the
    /// three-way XOR: six instructions per round and eight lanes, against
    /// nine for sixteen 32-bit lanes, whose odd lanes need shifts and
    /// blends. The high halves carry leftovers that never reach a low half
    /// (`vpmuludq` reads only the low 32 bits, XOR is bitwise) and are
    /// dropped when the words are packed.
    #[target_feature(enable = "avx512f")]
    pub(super) fn philox_x32(counters: &[Lanes<'_>; 4], key: [u32; 2], out: &mut [&mut [u32]; 4]) {
        let mut c: [[__m512i; 4]; 4] =
            std::array::from_fn(|g| std::array::from_fn(|i| group(&counters[i], g)));
        let m0 = _mm512_set1_epi64(i64::from(PHILOX_M0));
        let m1 = _mm512_set1_epi64(i64::from(PHILOX_M1));
        let (mut k0, mut k1) = (key[0], key[1]);
        for round in 0..10 {
            if round > 0 {
                k0 = k0.wrapping_add(PHILOX_W0);
                k1 = k1.wrapping_add(PHILOX_W1);
            }
            let (kk0, kk1) = (_mm512_set1_epi32(k0 as i32), _mm512_set1_epi32(k1 as i32));
            for g in c.iter_mut() {
                let p0 = _mm512_mul_epu32(g[0], m0);
                let p1 = _mm512_mul_epu32(g[2], m1);
                // 0xB1 = (2, 3, 0, 1): the two 32-bit halves of each 64-bit
                // lane swapped, so the high word is in the low half.
                let hi0 = _mm512_shuffle_epi32::<0xB1>(p0);
                let hi1 = _mm512_shuffle_epi32::<0xB1>(p1);
                // 0x96: a ^ b ^ c.
                *g = [
                    _mm512_ternarylogic_epi32::<0x96>(hi1, g[1], kk0),
                    p1,
                    _mm512_ternarylogic_epi32::<0x96>(hi0, g[3], kk1),
                    p0,
                ];
            }
        }
        // The low halves of two groups' lanes, in lane order: 16 words,
        // stored (the first `m` lanes of them) straight into `out`.
        let pick = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (i, o) in out.iter_mut().enumerate() {
            for h in 0..2 {
                let v = _mm512_permutex2var_epi32(c[2 * h][i], pick, c[2 * h + 1][i]);
                let at = 16 * h;
                if o.len() >= at + 16 {
                    // SAFETY: `o[at..at + 16]` is in bounds (just checked)
                    // and an unaligned store writes exactly those 64 bytes.
                    unsafe { _mm512_storeu_si512(o.as_mut_ptr().add(at) as *mut __m512i, v) };
                } else if o.len() > at {
                    let mask = (1u16 << (o.len() - at)) - 1;
                    // SAFETY: `at` is inside `o`, and the masked store
                    // writes only lanes `at..o.len()` of it (the masked-off
                    // lanes are neither written nor faulted on).
                    unsafe {
                        _mm512_mask_storeu_epi32(o.as_mut_ptr().add(at) as *mut i32, mask, v)
                    };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Lanes, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1};
    use std::arch::x86_64::*;

    /// High and low 32-bit halves of `a * m`, lane by lane (8 lanes).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mulhilo(a: __m256i, m: __m256i) -> (__m256i, __m256i) {
        // Products of the even lanes, then of the odd ones (shifted down):
        // 64 bits each, low half in the even 32-bit position.
        let even = _mm256_mul_epu32(a, m);
        let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), m);
        let lo = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
        let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
        (hi, lo)
    }

    /// Lanes `8 g..8 g + 8` of `w`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn group(w: &Lanes<'_>, g: usize) -> __m256i {
        match *w {
            Lanes::Same(x) => _mm256_set1_epi32(x as i32),
            Lanes::Each(w) => {
                // SAFETY: `w[8 g..8 g + 8]` is in bounds (g < 4) and an
                // unaligned load reads exactly those 32 bytes.
                unsafe { _mm256_loadu_si256(w.as_ptr().add(8 * g) as *const __m256i) }
            }
            Lanes::Iota(base) => _mm256_add_epi32(
                _mm256_set1_epi32(base.wrapping_add(8 * g as u32) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            ),
        }
    }

    /// Philox4x32-10 of 32 lanes (see `philox4x32_10_x32_to`).
    #[target_feature(enable = "avx2")]
    pub(super) fn philox_x32(counters: &[Lanes<'_>; 4], key: [u32; 2], out: &mut [&mut [u32]; 4]) {
        let mut c: [[__m256i; 4]; 4] =
            std::array::from_fn(|g| std::array::from_fn(|i| group(&counters[i], g)));
        let m0 = _mm256_set1_epi32(PHILOX_M0 as i32);
        let m1 = _mm256_set1_epi32(PHILOX_M1 as i32);
        let (mut k0, mut k1) = (key[0], key[1]);
        for round in 0..10 {
            if round > 0 {
                k0 = k0.wrapping_add(PHILOX_W0);
                k1 = k1.wrapping_add(PHILOX_W1);
            }
            let (kk0, kk1) = (_mm256_set1_epi32(k0 as i32), _mm256_set1_epi32(k1 as i32));
            for g in c.iter_mut() {
                let (hi0, lo0) = mulhilo(g[0], m0);
                let (hi1, lo1) = mulhilo(g[2], m1);
                *g = [
                    _mm256_xor_si256(_mm256_xor_si256(hi1, g[1]), kk0),
                    lo1,
                    _mm256_xor_si256(_mm256_xor_si256(hi0, g[3]), kk1),
                    lo0,
                ];
            }
        }
        for (i, o) in out.iter_mut().enumerate() {
            for (g, group) in c.iter().enumerate() {
                let at = 8 * g;
                if o.len() >= at + 8 {
                    // SAFETY: `o[at..at + 8]` is in bounds (just checked)
                    // and an unaligned store writes exactly those 32 bytes.
                    unsafe {
                        _mm256_storeu_si256(o.as_mut_ptr().add(at) as *mut __m256i, group[i])
                    };
                } else if o.len() > at {
                    let mut lanes = [0u32; 8];
                    // SAFETY: `lanes` holds exactly the 32 bytes written.
                    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, group[i]) };
                    let n = o.len() - at;
                    o[at..].copy_from_slice(&lanes[..n]);
                }
            }
        }
    }
}

/// What a random stream is used for. Stored in the top byte of the first
/// stream word; the values are part of the network format (changing one
/// changes every network built with it), so never renumber them.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Source, weight and delay of one synapse: words (projection, target, k).
    Synapse = 1,
    /// Binomial split of a `fixed_total_number` projection: words (projection,
    /// node low, node high).
    TotalNumberSplit = 2,
    /// Gaps of a `pairwise_bernoulli` projection: words (projection, target, 0).
    Bernoulli = 3,
    /// Initial membrane potential: words (population, neuron, 0).
    InitialVm = 4,
    /// Poisson drive: words (neuron low, neuron high, step low) with the step
    /// high word in the block counter's upper half.
    PoissonDrive = 5,
    /// Sources of a `fixed_indegree` projection without multapses.
    NoMultapse = 6,
}

/// Sequential reader over one Philox stream. Cheap to create (no state beyond
/// the counter), so every synapse or every neuron-step gets its own.
#[derive(Clone, Debug)]
pub struct CounterRng {
    key: [u32; 2],
    words: [u32; 3],
    block: u32,
    buf: [u32; 4],
    used: usize,
}

impl CounterRng {
    /// The stream `(seed, purpose, w0, w1, w2)`. `w0` must fit in 24 bits
    /// (the purpose takes the top byte of that word).
    #[inline]
    pub fn new(seed: u64, purpose: Purpose, w0: u32, w1: u32, w2: u32) -> Self {
        debug_assert!(w0 < (1 << 24), "stream word 0 must fit in 24 bits");
        Self::from_raw(seed, [((purpose as u32) << 24) | w0, w1, w2], 0)
    }

    /// The stream with raw counter words and a starting block number.
    #[inline]
    pub fn from_raw(seed: u64, words: [u32; 3], first_block: u32) -> Self {
        CounterRng {
            key: [seed as u32, (seed >> 32) as u32],
            words,
            block: first_block,
            buf: [0; 4],
            used: 4,
        }
    }

    /// The stream `(seed, purpose, w0, w1, w2)` (as [`CounterRng::new`])
    /// whose first block is already known: `first` must be the words of
    /// block 0, e.g. from [`philox4x32_10_x32`] computing the first blocks
    /// of many streams at once.
    #[inline]
    pub fn with_first_block(
        seed: u64,
        purpose: Purpose,
        w0: u32,
        w1: u32,
        w2: u32,
        first: [u32; 4],
    ) -> Self {
        let mut r = Self::new(seed, purpose, w0, w1, w2);
        r.buf = first;
        r.block = 1;
        r.used = 0;
        r
    }

    /// The next 32 random bits of the stream.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.used == 4 {
            self.buf = philox4x32_10(
                [self.block, self.words[0], self.words[1], self.words[2]],
                self.key,
            );
            self.block = self.block.wrapping_add(1);
            self.used = 0;
        }
        // `used < 4` here; the mask lets the compiler drop the bounds check.
        let x = self.buf[self.used & 3];
        self.used += 1;
        x
    }

    /// The next 64 random bits (two words, the first one high).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        let lo = self.next_u32() as u64;
        (hi << 32) | lo
    }

    /// A uniform integer in `0..n` (`n > 0`) from 64 random bits by
    /// multiply-high; the bias is below `n / 2^64`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A uniform double in the open interval (0, 1): `(j + 1/2) / 2^52` with
    /// `j` the top 52 bits of [`next_u64`](Self::next_u64) (two words). Every
    /// step is exact, so the result is symmetric (`1 - u` has the same law)
    /// and lies in `[2^-53, 1 - 2^-53]`. (With 53 bits, `j + 1/2` would not
    /// be representable near 2^53 and could round up to exactly 1.)
    #[inline]
    pub fn open01(&mut self) -> f64 {
        let bits = self.next_u64() >> 12;
        (bits as f64 + 0.5) * (1.0 / 4_503_599_627_370_496.0)
    }

    /// A uniform double in the open interval (-1, 1) from 32 random bits.
    #[inline]
    pub fn open_pm1(&mut self) -> f64 {
        (self.next_u32() as i32 as f64 + 0.5) * (1.0 / 2_147_483_648.0)
    }

    /// Two independent standard normal variates from one accepted polar
    /// pair `(u f, v f)`, `f = sqrt(-2 ln s / s)`; same word consumption as
    /// [`normal`](Self::normal), which returns the first of them.
    #[inline]
    pub fn normal2(&mut self) -> (f64, f64) {
        loop {
            let u = self.open_pm1();
            let v = self.open_pm1();
            let s = u * u + v * v;
            if s < 1.0 && s > 0.0 {
                let f = (-2.0 * crate::detmath::ln(s) / s).sqrt();
                return (u * f, v * f);
            }
        }
    }

    /// A standard normal variate (Marsaglia's polar method with the
    /// deterministic logarithm); uses 64 random bits per attempt.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = self.open_pm1();
            let v = self.open_pm1();
            let s = u * u + v * v;
            if s < 1.0 && s > 0.0 {
                return u * (-2.0 * crate::detmath::ln(s) / s).sqrt();
            }
        }
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    /// Every lane of the 32-lane functions has the scalar function's words,
    /// for every kind of counter word and output length, on every
    /// implementation this CPU can run.
    #[test]
    fn lanes_equal_the_scalar_function() {
        type Imp = fn(&[Lanes<'_>; 4], [u32; 2], &mut [&mut [u32]; 4]);
        let mut imps: Vec<(&str, Imp)> = vec![
            ("scalar", scalar_x32),
            ("dispatched", |c, k, o| philox4x32_10_x32_to(c, k, o)),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is there (checked just above).
                imps.push(("avx2", |c, k, o| unsafe { avx2::philox_x32(c, k, o) }));
            }
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F is there (checked just above).
                imps.push(("avx512", |c, k, o| unsafe { avx512::philox_x32(c, k, o) }));
            }
        }
        let mut g = CounterRng::from_raw(99, [1, 2, 3], 0);
        for trial in 0..1000 {
            let key = [g.next_u32(), g.next_u32()];
            let mut each = [[0u32; 32]; 4];
            for word in each.iter_mut() {
                for lane in word.iter_mut() {
                    *lane = g.next_u32();
                }
            }
            // Word i: per lane, the same, or a ramp (crossing 2^32 now
            // and then), by trial.
            let counters: [Lanes; 4] = std::array::from_fn(|i| match (trial + i) % 3 {
                0 => Lanes::Each(&each[i]),
                1 => Lanes::Same(each[i][0]),
                _ => Lanes::Iota(u32::MAX - (each[i][1] & 63)),
            });
            let m = [32, 31, 17, 16, 9, 8, 1, 0][trial % 8];
            let want: Vec<[u32; 4]> = (0..32)
                .map(|j| philox4x32_10(std::array::from_fn(|i| counters[i].lane(j)), key))
                .collect();
            for (what, imp) in &imps {
                // Lanes past `m` must stay untouched.
                let mut out = [[0xdead_beefu32; 33]; 4];
                let [a, b, c, d] = &mut out;
                imp(
                    &counters,
                    key,
                    &mut [&mut a[..m], &mut b[..m], &mut c[..m], &mut d[..m]],
                );
                for j in 0..33 {
                    for i in 0..4 {
                        let expect = if j < m { want[j][i] } else { 0xdead_beef };
                        assert_eq!(out[i][j], expect, "{what}, m = {m}, word {i}, lane {j}");
                    }
                }
            }
            let whole = philox4x32_10_x32(&each, key);
            for j in 0..32 {
                let w = philox4x32_10(std::array::from_fn(|i| each[i][j]), key);
                for i in 0..4 {
                    assert_eq!(whole[i][j], w[i]);
                }
            }
        }
    }
}
