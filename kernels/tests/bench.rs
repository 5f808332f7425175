//! Timing of the kernels (ignored by default). Run with
//! `cargo test -p snn-kernels --release --test bench -- --ignored --nocapture`.

use snn_kernels::rng::philox4x32_10;
use snn_kernels::ziggurat::{normal_zig, normal_zig_with, ZigguratTables};
use snn_kernels::{detmath, CounterRng, Purpose};
use std::hint::black_box;
use std::time::Instant;

/// Times `calls` calls of `f(i)` and prints ns/call.
fn time(name: &str, calls: u32, mut f: impl FnMut(u32) -> u64) {
    let start = Instant::now();
    let mut acc = 0u64;
    for i in 0..calls {
        acc = acc.wrapping_add(f(black_box(i)));
    }
    let ns = start.elapsed().as_nanos() as f64 / calls as f64;
    black_box(acc);
    println!("{name:<40} {ns:8.1} ns/call");
}

/// A fresh stream per call, as in the network builder.
fn stream(i: u32) -> CounterRng {
    CounterRng::new(42, Purpose::TotalNumberSplit, 1, i, 0)
}

#[test]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
fn bench_kernels() {
    let n = 2_000_000;
    time("philox4x32_10 block", n, |i| {
        philox4x32_10([i, 1, 2, 3], [5, 6])[0] as u64
    });
    let mut rng = stream(0);
    time("next_u32 (one stream)", n, |_| rng.next_u32() as u64);
    time("normal (one stream)", n, |_| rng.normal().to_bits());
    // Per call = one pair (two normals): halve for ns per normal.
    time("normal2 (one stream, per pair)", n, |_| {
        let (a, b) = rng.normal2();
        a.to_bits() ^ b.to_bits()
    });
    time("normal_zig (one stream)", n, |_| {
        normal_zig(&mut rng).to_bits()
    });
    let t = ZigguratTables::get();
    time("normal_zig_with (one stream)", n, |_| {
        normal_zig_with(t, &mut rng).to_bits()
    });
    // As in the network builder: a fresh stream per synapse, two normals.
    time("fresh stream + normal2 (2 normals)", n, |i| {
        let (a, b) = stream(i).normal2();
        a.to_bits() ^ b.to_bits()
    });
    time("fresh stream + 2 normal_zig_with", n, |i| {
        let mut r = stream(i);
        normal_zig_with(t, &mut r).to_bits() ^ normal_zig_with(t, &mut r).to_bits()
    });
    time("binomial(5e7, 0.5)", n, |i| {
        detmath::binomial(&mut stream(i), 50_000_000, 0.5)
    });
    time("binomial(2000, 0.5)", n, |i| {
        detmath::binomial(&mut stream(i), 2000, 0.5)
    });
    time("binomial(1e6, 1e-5) (inversion, mean 10)", n, |i| {
        detmath::binomial(&mut stream(i), 1_000_000, 1e-5)
    });
    time("poisson(1.28)", n, |i| {
        detmath::poisson(&mut stream(i), 1.28)
    });
    time("poisson(1e3)", n, |i| detmath::poisson(&mut stream(i), 1e3));
    let l = (-1.28f64).exp();
    time("poisson_small(exp(-1.28))", n, |i| {
        detmath::poisson_small(&mut stream(i), l)
    });
    let lq = detmath::ln_1p(-0.1);
    time("geometric_skip(p = 0.1)", n, |i| {
        detmath::geometric_skip(&mut stream(i), lq)
    });
    time("ln", n, |i| detmath::ln(i as f64 + 0.5).to_bits());
    time("exp", n, |i| detmath::exp(i as f64 * 1e-4).to_bits());
}
