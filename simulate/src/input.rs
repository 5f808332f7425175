//! External input: independent Poisson drive per neuron, spike generators,
//! initial membrane potentials. All random numbers are pure functions of
//! (simulation seed, neuron, step), so they do not depend on threads, ranks
//! or where a run was interrupted.

use snn_formats::model::{Dist, Variates};
use snn_kernels::detmath;
use snn_kernels::rng::{CounterRng, Purpose};

/// Inversion table for Poisson counts with a fixed mean: `thresholds[k]` is
/// `floor(P(X <= k) * 2^32)` (saturated); the count for a uniform 32-bit word
/// `u` is the smallest `k` with `u < thresholds[k]`, or the table length if
/// none (probability below 2^-32 per draw). Built on the host with the
/// deterministic `exp`, so the CPU and GPU use the very same table.
#[derive(Clone, Debug, PartialEq)]
pub struct PoissonTable {
    thresholds: Vec<u64>,
    /// How many thresholds [`PoissonTable::sample`] compares without
    /// branching: the counts below it hold all but under 1 % of the mass.
    lead: usize,
    /// The thresholds [`PoissonTable::sample_all`] counts on vector units,
    /// as `u32` (none of them is the saturated `2^32`): all but under
    /// 2^-12 of the mass lies below the last of them.
    wide: Vec<u32>,
    /// Mean count per step.
    pub lambda: f64,
}

impl PoissonTable {
    /// The table for mean `lambda` (>= 0) per step.
    pub fn new(lambda: f64) -> PoissonTable {
        let mut thresholds = Vec::new();
        if lambda > 0.0 {
            let scale = 4_294_967_296.0;
            let mut p = detmath::exp(-lambda);
            let mut cdf = p;
            let mut k = 0u64;
            loop {
                let t = (cdf * scale).floor();
                thresholds.push(if t >= scale { 1u64 << 32 } else { t as u64 });
                if t >= scale - 1.0 || k > 100_000 {
                    break;
                }
                k += 1;
                p = p * lambda / k as f64;
                cdf += p;
                // Past the mode, once the remaining mass no longer moves
                // the 32-bit threshold, the table is complete.
                if k as f64 > lambda && p * scale < 0.5 {
                    break;
                }
            }
            // The last count takes the remaining mass (below 2^-32).
            if thresholds.last() != Some(&(1u64 << 32)) {
                thresholds.push(1u64 << 32);
            }
        }
        // The first threshold at or above 99 % of the mass (never the last,
        // 2^32, which no word reaches).
        let lead = lead_count(&thresholds, 0.99);
        let wide = thresholds[..lead_count(&thresholds, 1.0 - 1.0 / 4096.0)]
            .iter()
            .map(|&t| t as u32)
            .collect();
        PoissonTable {
            thresholds,
            lead,
            wide,
            lambda,
        }
    }

    /// The count for the uniform word `u`.
    #[inline]
    pub fn sample(&self, u: u32) -> u32 {
        self.sampler().sample(u)
    }

    /// The counts of many words: `out[i]` is the count of `words[i]`.
    #[inline(always)]
    pub fn sample_all(&self, words: &[u32], out: &mut [u32]) {
        // As `sample`, threshold by threshold over all words (so that the
        // counting runs on vector units, 32-bit lanes), then the rare words
        // past those thresholds (under 2^-12 of them) one by one.
        let n = out.len().min(words.len());
        let (out, words) = (&mut out[..n], &words[..n]);
        // Groups of 32 words, their counts kept in registers over the
        // thresholds.
        const G: usize = 32;
        let mut ks = out.chunks_exact_mut(G);
        let mut us = words.chunks_exact(G);
        for (k, u) in (&mut ks).zip(&mut us) {
            let mut acc = [0u32; G];
            for &t in &self.wide {
                for (a, &u) in acc.iter_mut().zip(u) {
                    *a += u32::from(t <= u);
                }
            }
            k.copy_from_slice(&acc);
        }
        for (k, &u) in ks.into_remainder().iter_mut().zip(us.remainder()) {
            *k = self.wide.iter().map(|&t| u32::from(t <= u)).sum();
        }
        let wide = self.wide.len() as u32;
        // Whether any word needs the search: a reduction without early
        // exit, so that it too runs on vector units.
        if out.iter().fold(0u32, |m, &k| m.max(k)) == wide {
            let s = self.sampler();
            for (k, &u) in out.iter_mut().zip(words) {
                if *k == wide {
                    *k = s.sample(u);
                }
            }
        }
    }

    fn sampler(&self) -> Sampler<'_> {
        Sampler {
            lead: &self.thresholds[..self.lead],
            all: &self.thresholds,
        }
    }

    /// The thresholds (see the type's documentation), for a device copy of
    /// the table.
    pub fn thresholds(&self) -> &[u64] {
        &self.thresholds
    }

    /// True when the mean is zero.
    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }
}

/// How many leading thresholds hold at least `mass` of the distribution
/// (never the last, `2^32`, which no word reaches).
fn lead_count(thresholds: &[u64], mass: f64) -> usize {
    thresholds
        .iter()
        .position(|&t| t as f64 >= mass * 4_294_967_296.0)
        .map_or(0, |j| (j + 1).min(thresholds.len() - 1))
}

/// [`PoissonTable::sample`] with the table's parts in locals (kept in
/// registers over a loop).
struct Sampler<'a> {
    lead: &'a [u64],
    all: &'a [u64],
}

impl Sampler<'_> {
    #[inline(always)]
    fn sample(&self, u: u32) -> u32 {
        // The thresholds are sorted, so the count is the number of them
        // <= u: for the leading ones (99 % of the mass) counted without
        // branches (a search's exit mispredicts whenever the count is not
        // the usual one), past them, rarely, by a linear search.
        let u = u as u64;
        let mut k = self.lead.iter().map(|&t| u32::from(t <= u)).sum::<u32>() as usize;
        if k == self.lead.len() {
            while k < self.all.len() && self.all[k] <= u {
                k += 1;
            }
        }
        k as u32
    }
}

/// The uniform words of the Poisson drive of neuron `gid` for inputs emitted
/// in steps `4 b .. 4 b + 3`: the Philox block (seed; counter b_hi,
/// PoissonDrive | gid_hi, gid_lo, b_lo). Word `e % 4` serves emission step
/// `e`, so one block covers four steps.
#[inline]
pub fn poisson_words(seed: u64, gid: u64, block: u64) -> [u32; 4] {
    snn_kernels::rng::philox4x32_10(
        [
            (block >> 32) as u32,
            ((Purpose::PoissonDrive as u32) << 24) | ((gid >> 32) as u32 & 0x00ff_ffff),
            gid as u32,
            block as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// [`poisson_words`] of 32 neurons at once (vectorised Philox): word `w`
/// of neuron `gids[j]` is `out[w][j]`.
#[inline]
pub fn poisson_words_x32(seed: u64, gids: &[u64; 32], block: u64) -> [[u32; 32]; 4] {
    poisson_words_x32_of(seed, &poisson_gid_words(gids), block)
}

/// The Philox counter words of [`poisson_words_x32`] that depend only on the
/// neurons (words 1 and 2), to be reused for every block.
pub fn poisson_gid_words(gids: &[u64; 32]) -> [[u32; 32]; 2] {
    let tag = (Purpose::PoissonDrive as u32) << 24;
    let mut out = [[0u32; 32]; 2];
    for (j, &g) in gids.iter().enumerate() {
        out[0][j] = tag | ((g >> 32) as u32 & 0x00ff_ffff);
        out[1][j] = g as u32;
    }
    out
}

/// [`poisson_words_x32`] of the neurons whose [`poisson_gid_words`] are
/// `gid_words`.
#[inline]
pub fn poisson_words_x32_of(seed: u64, gid_words: &[[u32; 32]; 2], block: u64) -> [[u32; 32]; 4] {
    let mut out = [[0u32; 32]; 4];
    let [a, b, c, d] = &mut out;
    poisson_words_x32_to(seed, gid_words, block, &mut [a, b, c, d]);
    out
}

/// [`poisson_words_x32_of`] written straight into `out`: word `w` of lane
/// `j < m` into `out[w][j]` (`m`, the slices' common length, at most 32).
#[inline]
pub fn poisson_words_x32_to(
    seed: u64,
    gid_words: &[[u32; 32]; 2],
    block: u64,
    out: &mut [&mut [u32]; 4],
) {
    use snn_kernels::rng::Lanes;
    snn_kernels::rng::philox4x32_10_x32_to(
        &[
            Lanes::Same((block >> 32) as u32),
            Lanes::Each(&gid_words[0]),
            Lanes::Each(&gid_words[1]),
            Lanes::Same(block as u32),
        ],
        [seed as u32, (seed >> 32) as u32],
        out,
    )
}

/// The uniform word of the Poisson drive of neuron `gid` for inputs emitted
/// in step `emit_step` (see [`poisson_words`]).
#[inline]
pub fn poisson_word(seed: u64, gid: u64, emit_step: u64) -> u32 {
    poisson_words(seed, gid, emit_step >> 2)[(emit_step & 3) as usize]
}

/// Initial membrane potential of neuron `index` of population `pop`.
pub fn initial_v_m(seed: u64, pop: usize, index: u64, dist: &Dist) -> f64 {
    let mut rng = CounterRng::new(
        seed,
        Purpose::InitialVm,
        pop as u32 & 0x00ff_ffff,
        index as u32,
        (index >> 32) as u32,
    );
    dist.draw(&mut Polar(&mut rng))
}

/// Polar normals and uniforms of a counter-based stream, for [`Dist::draw`]
/// (the initial potentials; the builder draws its normals by ziggurat).
struct Polar<'a>(&'a mut CounterRng);

impl Variates for Polar<'_> {
    #[inline]
    fn normal(&mut self) -> f64 {
        self.0.normal()
    }
    #[inline]
    fn open01(&mut self) -> f64 {
        self.0.open01()
    }
}

/// Emission steps of a spike generator: a spike at `t` ms is emitted in the
/// update of step `round(t / dt) - 1` (its recorded time is then `t`).
pub fn generator_steps(spike_times_ms: &[f64], dt_ms: f64) -> Vec<u64> {
    let mut steps: Vec<u64> = spike_times_ms
        .iter()
        .map(|&t| (t / dt_ms).round() as u64)
        .filter(|&s| s >= 1)
        .map(|s| s - 1)
        .collect();
    steps.sort_unstable();
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_table_matches_pmf() {
        for &lambda in &[0.128, 1.28, 2.08, 7.5] {
            let t = PoissonTable::new(lambda);
            // Exact probabilities of each count from the thresholds.
            let mut prev = 0u64;
            let mut mean = 0.0;
            for (k, &th) in t.thresholds.iter().enumerate() {
                let p = (th - prev) as f64 / 4_294_967_296.0;
                let pmf = (-lambda).exp() * lambda.powi(k as i32)
                    / (1..=k).map(|x| x as f64).product::<f64>();
                assert!(
                    (p - pmf).abs() < 1e-9,
                    "lambda {lambda} k {k}: {p} vs {pmf}"
                );
                mean += k as f64 * p;
                prev = th;
            }
            assert_eq!(*t.thresholds.last().unwrap(), 1u64 << 32);
            assert!((mean - lambda).abs() < 1e-8);
            assert_eq!(t.sample(0), 0);
            assert_eq!(t.sample(u32::MAX) as usize, t.thresholds.len() - 1);
        }
        assert!(PoissonTable::new(0.0).is_empty());
    }

    /// `sample` is the smallest k with u < thresholds[k], on short and long
    /// tables, at every threshold, one below it and at random words.
    #[test]
    fn sample_is_the_inverse_cdf() {
        let mut g = CounterRng::from_raw(3, [4, 5, 6], 0);
        for &lambda in &[0.003, 0.16, 1.6, 2.07, 15.0, 40.0, 120.0] {
            let t = PoissonTable::new(lambda);
            let by_search = |u: u32| {
                t.thresholds
                    .iter()
                    .position(|&th| (u as u64) < th)
                    .unwrap_or(t.thresholds.len()) as u32
            };
            let mut words: Vec<u32> = vec![0, 1, u32::MAX];
            for &th in &t.thresholds {
                for d in [0u64, 1] {
                    if let Some(u) = th.checked_sub(d).and_then(|x| u32::try_from(x).ok()) {
                        words.push(u);
                    }
                }
            }
            words.extend((0..2000).map(|_| g.next_u32()));
            for &u in &words {
                assert_eq!(t.sample(u), by_search(u), "lambda {lambda}, u {u}");
            }
            // `sample_all` agrees, on every word, past the vectorised
            // thresholds too, in pieces of every length up to 70.
            let mut counts = vec![0u32; words.len()];
            let mut at = 0;
            for len in (0..71).cycle() {
                if at >= words.len() {
                    break;
                }
                let end = (at + len).min(words.len());
                t.sample_all(&words[at..end], &mut counts[at..end]);
                at = end;
            }
            for (&u, &k) in words.iter().zip(&counts) {
                assert_eq!(k, by_search(u), "sample_all: lambda {lambda}, u {u}");
            }
        }
    }

    #[test]
    fn poisson_words_x32_equal_the_single_neuron_words() {
        let mut g = CounterRng::from_raw(5, [6, 7, 8], 0);
        for _ in 0..200 {
            let seed = (g.next_u32() as u64) << 32 | g.next_u32() as u64;
            let block = (g.next_u32() as u64) << 20 | g.next_u32() as u64;
            let gids: [u64; 32] =
                std::array::from_fn(|_| ((g.next_u32() as u64) << 24 | g.next_u32() as u64) >> 8);
            let x32 = poisson_words_x32(seed, &gids, block);
            for (j, &gid) in gids.iter().enumerate() {
                let want = poisson_words(seed, gid, block);
                for w in 0..4 {
                    assert_eq!(x32[w][j], want[w]);
                }
            }
        }
    }

    #[test]
    fn generator_steps_follow_nest_timing() {
        assert_eq!(generator_steps(&[1.0, 0.1, 2.5], 0.1), vec![0, 9, 24]);
    }
}
