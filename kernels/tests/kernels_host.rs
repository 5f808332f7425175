//! The kernels of `kernels/cuda/*.cu` run as host C++ (see `host/mod.rs`)
//! on what this crate alone can check: the delivery kernel's sums against
//! plain sequential ones, for every launch shape and thread order; the
//! connect kernel's weight and delay rounding against
//! `snn_formats::model::{quantize_weight, delay_to_steps}`, and its delay
//! overflow count. The comparisons with the CPU backend itself (neuron
//! updates, a whole engine, connection generation) are in the root
//! package's `tests/kernels_host.rs`.

use snn_test_support::host;

use host::{Arg, HostDevice, SHAPES};
use snn_formats::model::{delay_to_steps, quantize_weight};
use snn_kernels::registry::{ConnectParams, DistParams, KernelId};
use snn_kernels::rng::CounterRng;
use snn_kernels::ziggurat::ZigguratTables;

/// Delivery of random spikes through a random CSR, with extreme weights
/// (the 64-bit sums wrap as two's complement, like `AtomicI64::fetch_add`),
/// equals the sequential sums, whatever the shape and order of the launch.
#[test]
fn deliver_equals_sequential_sums() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let mut g = CounterRng::from_raw(11, [1, 2, 3], 0);
    let mut cases = 0u64;
    for round in 0..6u32 {
        let n_local = 1 + g.below(300) as usize;
        let n_images = g.below(100) as usize;
        let n_rows = n_local + n_images;
        let target_bits = (usize::BITS - n_local.leading_zeros()).max(1);
        let max_delay = 1 + g.below(40) as u32;
        let slots = max_delay as u64 + 1;
        let mut row_ptr = vec![0u64];
        let (mut td, mut w) = (Vec::new(), Vec::new());
        for _ in 0..n_rows {
            let len = match g.below(4) {
                0 => 0,
                1 => g.below(5),
                _ => g.below(400),
            };
            for _ in 0..len {
                let t = g.below(n_local as u64) as u32;
                let d = 1 + g.below(max_delay as u64) as u32;
                td.push(t | (d << target_bits));
                w.push(match g.below(8) {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    2 => 0,
                    _ => g.next_u32() as i32 >> g.below(24),
                });
            }
            row_ptr.push(td.len() as u64);
        }
        let interval_start = g.below(1000);
        let interval = 1 + g.below(max_delay as u64);
        let spikes: Vec<u64> = (0..g.below(2000))
            .map(|_| (g.below(interval) << 32) | g.below(n_rows as u64))
            .collect();
        // Sequential reference (Engine::deliver's arithmetic).
        let mut want_ex = vec![0i64; slots as usize * n_local];
        let mut want_in = want_ex.clone();
        // Prior contents, so that the kernel adds rather than overwrites.
        for x in want_ex.iter_mut().chain(want_in.iter_mut()) {
            *x = g.next_u64() as i64 >> g.below(64);
        }
        let (ring_ex0, ring_in0) = (want_ex.clone(), want_in.clone());
        let mask = (1u32 << target_bits) - 1;
        for &e in &spikes {
            let (step, row) = (interval_start + (e >> 32), (e & 0xffff_ffff) as usize);
            for i in row_ptr[row] as usize..row_ptr[row + 1] as usize {
                let slot = ((step + (td[i] >> target_bits) as u64) % slots) as usize;
                let cell = slot * n_local + (td[i] & mask) as usize;
                let ring = if w[i] >= 0 {
                    &mut want_ex
                } else {
                    &mut want_in
                };
                ring[cell] = ring[cell].wrapping_add(w[i] as i64);
                cases += 1;
            }
        }
        let b_spikes = dev.upload(&spikes);
        let b_row_ptr = dev.upload(&row_ptr);
        let b_td = dev.upload(&td);
        let b_w = dev.upload(&w);
        for shape in SHAPES {
            let ring_ex = dev.upload(&ring_ex0);
            let ring_in = dev.upload(&ring_in0);
            dev.launch(
                KernelId::Deliver,
                shape,
                &[
                    b_spikes.arg(),
                    Arg::u32(spikes.len() as u32),
                    Arg::u64(interval_start),
                    b_row_ptr.arg(),
                    b_td.arg(),
                    b_w.arg(),
                    Arg::u32(target_bits),
                    Arg::u64(slots),
                    Arg::u32(n_local as u32),
                    ring_ex.arg(),
                    ring_in.arg(),
                ],
            );
            assert_eq!(
                dev.download(&ring_ex),
                want_ex,
                "round {round} {shape:?}: ring_ex"
            );
            assert_eq!(
                dev.download(&ring_in),
                want_in,
                "round {round} {shape:?}: ring_in"
            );
            dev.free(ring_ex);
            dev.free(ring_in);
        }
    }
    println!(
        "{cases} synaptic events delivered identically, {} launches",
        dev.launches
    );
}

/// The weights and delays of the connect kernel (constant distributions:
/// the value goes straight to the rounding) equal `quantize_weight` and
/// `delay_to_steps` on edge values: halves, saturation, infinities, NaN,
/// every fraction width.
#[test]
fn connect_rounding_equals_formats() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let mut g = CounterRng::from_raw(12, [1, 2, 3], 0);
    let mut weights = vec![
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        2147483647.0,
        2147483647.5,
        -2147483648.0,
        -2147483648.5,
        -2147483649.0,
        1e300,
        -1e300,
        f64::MIN_POSITIVE,
        87.8,
        -351.2,
    ];
    for _ in 0..300 {
        let mag = 10f64.powf(-6.0 + 16.0 * g.open01());
        weights.push(if g.below(2) == 0 { mag } else { -mag });
        // Exact halves at some scale.
        weights.push((g.below(1 << 20) as f64 + 0.5) / (1u64 << g.below(20)) as f64);
    }
    let mut delays = vec![
        0.0,
        -1.0,
        0.05,
        0.0499999,
        0.15,
        0.25,
        1.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1e12,
        429496729.5,
    ];
    for _ in 0..300 {
        delays.push(20.0 * g.open01());
        delays.push(g.below(200) as f64 * 0.05 + 0.025);
    }
    let zig = dev.upload(&ZigguratTables::get().to_flat());
    let offset = dev.upload(&[0u64, 1]);
    let tgt = dev.upload(&[0u32]);
    let (src, w, td, bad) = (
        dev.zeros::<u32>(1),
        dev.zeros::<i32>(1),
        dev.zeros::<u32>(1),
        dev.zeros::<u32>(1),
    );
    let run = |dev: &mut HostDevice, weight: f64, frac: u32, delay: f64, dt: f64| {
        let p = ConnectParams {
            seed: 5,
            n_src: 10,
            weight: DistParams::constant(weight),
            delay: DistParams::constant(delay),
            dt_ms: dt,
            projection: 0,
            exclude_self: 0,
            frac_bits: frac,
            target_bits: 1,
        };
        dev.launch(
            KernelId::ConnectPerSynapse,
            SHAPES[0],
            &[
                Arg::Struct(p.to_le_bytes()),
                zig.arg(),
                offset.arg(),
                Arg::u32(1),
                tgt.arg(),
                tgt.arg(),
                src.arg(),
                w.arg(),
                td.arg(),
                bad.arg(),
            ],
        );
        (dev.download(&w)[0], dev.download(&td)[0] >> 1)
    };
    let mut cases = 0;
    for (i, &x) in weights.iter().enumerate() {
        let frac = [0, 1, 10, 20, 31, 52, 60][i % 7];
        let (wq, _) = run(&mut dev, x, frac, 1.0, 0.1);
        assert_eq!(wq, quantize_weight(x, frac), "weight {x:e} frac {frac}");
        cases += 1;
    }
    for (i, &d) in delays.iter().enumerate() {
        let dt = [0.1, 0.05, 0.25, 1.0 / 3.0][i % 4];
        let (_, ds) = run(&mut dev, 1.0, 10, d, dt);
        // The packed field holds 31 bits beside a 1-bit target.
        assert_eq!(
            ds,
            delay_to_steps(d, dt) & 0x7fff_ffff,
            "delay {d:e} dt {dt}"
        );
        cases += 1;
    }
    println!("{cases} roundings identical");
}

/// A delay too long for the bits beside the target is counted (the host
/// then rejects the network, as the CPU builder does).
#[test]
fn connect_counts_delays_that_do_not_fit() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let zig = dev.upload(&ZigguratTables::get().to_flat());
    let n_targets = 40u32;
    let offset: Vec<u64> = (0..=n_targets as u64).map(|i| 3 * i).collect();
    let offset = dev.upload(&offset);
    let tgt: Vec<u32> = (0..n_targets).collect();
    let tgt = dev.upload(&tgt);
    let n = 3 * n_targets as usize;
    let (src, w, td, bad) = (
        dev.zeros::<u32>(n),
        dev.zeros::<i32>(n),
        dev.zeros::<u32>(n),
        dev.zeros::<u32>(1),
    );
    // Delays uniform in [0.1, 1.0) ms at dt 0.1: 1..=10 steps; with 29 target
    // bits, 3 bits remain: steps >= 8 do not fit.
    let p = ConnectParams {
        seed: 9,
        n_src: 100,
        weight: DistParams::constant(1.0),
        delay: DistParams::uniform(0.1, 1.0),
        dt_ms: 0.1,
        projection: 3,
        exclude_self: 1,
        frac_bits: 10,
        target_bits: 29,
    };
    dev.launch(
        KernelId::ConnectPerSynapse,
        SHAPES[2],
        &[
            Arg::Struct(p.to_le_bytes()),
            zig.arg(),
            offset.arg(),
            Arg::u32(n_targets),
            tgt.arg(),
            tgt.arg(),
            src.arg(),
            w.arg(),
            td.arg(),
            bad.arg(),
        ],
    );
    // The same streams in Rust: source (two words), then the delay uniform.
    let mut want = 0;
    for t in 0..n_targets {
        for k in 0..3 {
            let mut rng = CounterRng::new(9, snn_kernels::Purpose::Synapse, 3, t, k);
            while rng.below(100) == t as u64 {}
            let d = delay_to_steps(0.1 + (1.0 - 0.1) * rng.open01(), 0.1);
            want += u32::from(d >= 8);
        }
    }
    assert!(want > 0);
    assert_eq!(dev.download(&bad)[0], want);
}

/// The stand-in through the `Device` trait (what the GPU backends use):
/// byte-level writes and reads at odd offsets and lengths, zeroing, typed
/// buffers, and errors (not panics) for ranges past the end and for bad
/// kernel arguments.
#[test]
fn device_trait_copies_and_errors() {
    use snn_kernels::device::{Arg as GArg, DevVec, Device, DeviceError, Shape};
    let Some(mut host) = HostDevice::start() else {
        return;
    };
    let dev: &mut dyn Device = &mut host;
    let id = dev.alloc(37, "test").expect("alloc");
    let data: Vec<u8> = (0..29u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(5))
        .collect();
    dev.write(id, 3, &data).expect("write");
    let mut all = vec![0xffu8; 37];
    dev.read(id, 0, &mut all).expect("read");
    let mut want = vec![0u8; 37];
    want[3..32].copy_from_slice(&data);
    assert_eq!(all, want);
    dev.zero(id, 5, 10).expect("zero");
    want[5..15].fill(0);
    let mut part = vec![0u8; 30];
    dev.read(id, 7, &mut part).expect("read");
    assert_eq!(part, want[7..37]);
    assert!(matches!(
        dev.write(id, 30, &[0; 8]),
        Err(DeviceError::Driver { .. })
    ));
    let mut big = vec![0u8; 38];
    assert!(dev.read(id, 0, &mut big).is_err());
    dev.free(id);

    let v = DevVec::from_slice(dev, &[-3i64, 1 << 40, 7], "v").expect("upload");
    assert_eq!(v.to_vec(dev).expect("download"), [-3, 1 << 40, 7]);
    assert_eq!(v.read(dev, 1..3).expect("read"), [1 << 40, 7]);
    assert!(v.read(dev, 2..4).is_err());
    v.zero(dev).expect("zero");
    assert_eq!(v.to_vec(dev).expect("download"), [0, 0, 0]);
    // A launch with the wrong argument kinds is an error, not a crash.
    let e = dev.launch(
        KernelId::Deliver,
        Shape { grid: 1, block: 1 },
        &[GArg::U32(1), v.arg()],
    );
    assert!(matches!(e, Err(DeviceError::Driver { .. })), "{e:?}");
    v.free(dev);
}
