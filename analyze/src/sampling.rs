//! Deterministic sampling of neurons and neuron pairs.
//!
//! A SplitMix64 generator seeded from (`--seed`, population name): the
//! samples of a population depend only on the seed, its name and its size,
//! never on the spikes, so two runs of one model are analysed on the same
//! neurons and pairs.

use std::collections::HashSet;

/// The SplitMix64 generator (Steele, Lea & Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given state.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` (53 bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`), unbiased (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = self.next_u64() as u128 * n as u128;
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// The generator for a named stream (e.g. a population) under a seed.
pub fn stream_rng(seed: u64, name: &str) -> SplitMix64 {
    // FNV-1a of the name, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut g = SplitMix64::new(seed ^ h.rotate_left(17));
    g.next_u64();
    g
}

/// `k` distinct indices from `0..n`, sorted (all of them if `n <= k`).
pub fn sample_indices(n: u64, k: usize, rng: &mut SplitMix64) -> Vec<u64> {
    if n <= k as u64 {
        return (0..n).collect();
    }
    // Floyd's algorithm: exactly k draws.
    let mut chosen = HashSet::with_capacity(k);
    for j in (n - k as u64)..n {
        let t = rng.below(j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    let mut v: Vec<u64> = chosen.into_iter().collect();
    v.sort_unstable();
    v
}

/// The `p`-th unordered pair `(i, j)`, `i < j`, of `0..n` in row order.
fn pair_at(n: u64, mut p: u128) -> (u64, u64) {
    let mut i = 0u64;
    loop {
        let row = (n - 1 - i) as u128;
        if p < row {
            return (i, i + 1 + p as u64);
        }
        p -= row;
        i += 1;
    }
}

/// Up to `k` distinct unordered pairs `(i, j)`, `i < j`, of neurons
/// `0..n`, drawn uniformly without replacement (all pairs if there are at
/// most `k`), in drawing order.
pub fn sample_pairs(n: u64, k: usize, rng: &mut SplitMix64) -> Vec<(u64, u64)> {
    if n < 2 || k == 0 {
        return Vec::new();
    }
    let total = n as u128 * (n as u128 - 1) / 2;
    if total <= k as u128 {
        return (0..total).map(|p| pair_at(n, p)).collect();
    }
    if total <= 4 * k as u128 {
        // Partial Fisher-Yates over the enumerated pairs.
        let mut all: Vec<(u64, u64)> = (0..total).map(|p| pair_at(n, p)).collect();
        for s in 0..k {
            let r = s + rng.below((all.len() - s) as u64) as usize;
            all.swap(s, r);
        }
        all.truncate(k);
        return all;
    }
    // Rejection: fewer than 1 in 4 draws is a repeat.
    let mut seen = HashSet::with_capacity(k);
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let a = rng.below(n);
        let b = rng.below(n - 1);
        let b = if b >= a { b + 1 } else { b };
        let pair = (a.min(b), a.max(b));
        if seen.insert(pair) {
            out.push(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_distinct_and_deterministic() {
        for n in [2u64, 3, 10, 30, 1000, 5_000_000_000] {
            let a = sample_pairs(n, 200, &mut stream_rng(7, "E"));
            let b = sample_pairs(n, 200, &mut stream_rng(7, "E"));
            assert_eq!(a, b);
            let total = (n as u128 * (n as u128 - 1) / 2).min(200) as usize;
            assert_eq!(a.len(), total, "n = {n}");
            let set: HashSet<_> = a.iter().collect();
            assert_eq!(set.len(), a.len());
            assert!(a.iter().all(|&(i, j)| i < j && j < n));
        }
        assert_ne!(
            sample_pairs(1000, 50, &mut stream_rng(7, "E")),
            sample_pairs(1000, 50, &mut stream_rng(8, "E"))
        );
        assert!(sample_pairs(1, 10, &mut stream_rng(0, "x")).is_empty());
    }

    #[test]
    fn indices_are_distinct_sorted() {
        let v = sample_indices(100, 30, &mut stream_rng(1, "a"));
        assert_eq!(v.len(), 30);
        assert!(v.windows(2).all(|w| w[0] < w[1]) && v[29] < 100);
        assert_eq!(
            sample_indices(5, 30, &mut stream_rng(1, "a")),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut g = SplitMix64::new(3);
        let mut c = [0u32; 7];
        for _ in 0..70_000 {
            c[g.below(7) as usize] += 1;
        }
        assert!(c.iter().all(|&x| (9_000..11_000).contains(&x)), "{c:?}");
    }
}
