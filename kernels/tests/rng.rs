//! Philox4x32-10 known answers and statistical tests of the `CounterRng`
//! readers (`below`, `open01`, `open_pm1`, `normal`).

mod common;

use common::*;
use snn_kernels::rng::philox4x32_10;
use snn_kernels::{CounterRng, Purpose};

/// Random123 `tests/kat_vectors`, the three `philox4x32 10` lines (columns:
/// counter[4], key[2], expected[4]):
/// ```text
/// philox4x32 10 00000000 00000000 00000000 00000000 00000000 00000000   6627e8d5 e169c58d bc57ac4c 9b00dbd8
/// philox4x32 10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff   408f276d 41c83b0e a20bc7c6 6d5451fd
/// philox4x32 10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0   d16cfe09 94fdcceb 5001e420 24126ea1
/// ```
const PHILOX_KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
    (
        [0, 0, 0, 0],
        [0, 0],
        [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
    ),
    (
        [u32::MAX; 4],
        [u32::MAX; 2],
        [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
    ),
    (
        [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
        [0xa409_3822, 0x299f_31d0],
        [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
    ),
];

#[test]
fn philox_known_answers() {
    for (ctr, key, want) in PHILOX_KAT {
        assert_eq!(
            philox4x32_10(ctr, key),
            want,
            "ctr {ctr:08x?} key {key:08x?}"
        );
    }
}

#[test]
fn stream_layout() {
    // Seed low word is key[0]; the block number is counter word 0; the
    // stream words follow; words are read in block order.
    let seed = 0x299f_31d0_a409_3822u64;
    let mut rng = CounterRng::from_raw(seed, [0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], 0x243f_6a88);
    let want = PHILOX_KAT[2].2;
    for w in want {
        assert_eq!(rng.next_u32(), w);
    }
    let next = philox4x32_10(
        [0x243f_6a89, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
        [0xa409_3822, 0x299f_31d0],
    );
    assert_eq!(rng.next_u64(), ((next[0] as u64) << 32) | next[1] as u64);
    // The purpose tag lands in the top byte of stream word 0.
    let mut a = CounterRng::new(7, Purpose::Synapse, 5, 6, 8);
    let mut b = CounterRng::from_raw(7, [(1 << 24) | 5, 6, 8], 0);
    for _ in 0..9 {
        assert_eq!(a.next_u32(), b.next_u32());
    }
}

#[test]
fn open01_is_open_and_uniform() {
    let mut rng = CounterRng::new(11, Purpose::InitialVm, 0, 0, 0);
    let n = 200_000;
    let mut counts = vec![0u64; 64];
    let mut sum = 0.0;
    for _ in 0..n {
        let u = rng.open01();
        assert!(u > 0.0 && u < 1.0);
        sum += u;
        counts[(u * 64.0) as usize] += 1;
    }
    chi_square("open01 bins", &counts, &[1.0 / 64.0; 64], 5.0);
    let se = (1.0 / 12.0 / n as f64).sqrt();
    assert!((sum / n as f64 - 0.5).abs() < 5.0 * se);
    // The extreme words map strictly inside (0, 1), symmetrically.
    let lo = (0.5f64) * (1.0 / 4_503_599_627_370_496.0);
    let hi = ((1u64 << 52) as f64 - 0.5) * (1.0 / 4_503_599_627_370_496.0);
    assert!(lo > 0.0 && hi < 1.0 && 1.0 - hi == lo);
}

#[test]
fn open_pm1_is_open_and_uniform() {
    let mut rng = CounterRng::new(12, Purpose::InitialVm, 0, 0, 0);
    let mut counts = vec![0u64; 32];
    for _ in 0..100_000 {
        let u = rng.open_pm1();
        assert!(u > -1.0 && u < 1.0 && u != 0.0);
        counts[((u + 1.0) * 16.0) as usize] += 1;
    }
    chi_square("open_pm1 bins", &counts, &[1.0 / 32.0; 32], 5.0);
}

#[test]
fn below_is_uniform() {
    let mut rng = CounterRng::new(13, Purpose::NoMultapse, 1, 2, 3);
    for n in [1u64, 2, 7, 10, 1000] {
        let mut counts = vec![0u64; n as usize];
        for _ in 0..100_000 {
            let x = rng.below(n);
            assert!(x < n);
            counts[x as usize] += 1;
        }
        if n > 1 {
            chi_square(
                &format!("below({n})"),
                &counts,
                &vec![1.0 / n as f64; n as usize],
                5.0,
            );
        }
    }
    // A huge range: check its 40 equal slices and the low bits.
    let n = 3u64 << 62;
    let (mut slices, mut parity) = (vec![0u64; 40], [0u64; 2]);
    for _ in 0..100_000 {
        let x = rng.below(n);
        assert!(x < n);
        slices[(x as u128 * 40 / n as u128) as usize] += 1;
        parity[(x & 1) as usize] += 1;
    }
    chi_square("below(3*2^62) slices", &slices, &[1.0 / 40.0; 40], 5.0);
    chi_square("below(3*2^62) parity", &parity, &[0.5; 2], 5.0);
}

#[test]
fn normal_distribution() {
    let mut rng = CounterRng::new(14, Purpose::Synapse, 9, 9, 9);
    let n = 300_000u64;
    let mut xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let nf = n as f64;
    let mean = xs.iter().sum::<f64>() / nf;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (nf - 1.0);
    assert!(mean.abs() < 5.0 / nf.sqrt(), "normal mean {mean}");
    // Var of the sample variance of N(0,1): 2 / n.
    assert!(
        (var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(),
        "normal variance {var}"
    );
    for k in 1..=3 {
        let kf = k as f64;
        let beyond = xs.iter().filter(|x| x.abs() > kf).count() as u64;
        let p = erfc(kf / std::f64::consts::SQRT_2);
        check_proportion(&format!("|normal| > {k}"), beyond, n, p);
    }
    let positive = xs.iter().filter(|&&x| x > 0.0).count() as u64;
    check_proportion("normal > 0", positive, n, 0.5);
    let ks = ks_scaled(&mut xs, normal_cdf);
    assert!(ks < ks_critical(), "normal KS sqrt(n) D = {ks}");
}

#[test]
fn streams_are_independent_of_each_other() {
    // Neighbouring streams and seeds give different words.
    let a: Vec<u32> = {
        let mut r = CounterRng::new(1, Purpose::Synapse, 0, 0, 0);
        (0..8).map(|_| r.next_u32()).collect()
    };
    for (seed, w) in [
        (2u64, [0u32, 0, 0]),
        (1, [1, 0, 0]),
        (1, [0, 1, 0]),
        (1, [0, 0, 1]),
    ] {
        let mut r = CounterRng::new(seed, Purpose::Synapse, w[0], w[1], w[2]);
        let b: Vec<u32> = (0..8).map(|_| r.next_u32()).collect();
        assert_ne!(a, b);
    }
}
