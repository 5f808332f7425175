//! The CUDA kernels (`kernels/cuda/*.cu`), run on the CPU as host C++
//! (`test-support/src/host/`: the kernel sources compiled through `port.cuh`,
//! launches emulated block by block and thread by thread, in several
//! orders), compared bit for bit with the CPU backend:
//!
//! * neuron updates (with ring-buffer input and Poisson drive) against
//!   `snn_simulate::neuron` on random parameters, states and inputs;
//! * whole simulations: the neuron and delivery kernels driven by host code
//!   shaped like a GPU backend's (device buffers, one launch per population
//!   block and step, one delivery launch per interval) against
//!   `snn_simulate::engine::Engine` on networks built by `snn_netbuild`,
//!   on one rank and on two (remote spikes delivered through image rows);
//! * connection generation against `ProjPlan::for_each_synapse`.
//!
//! This checks the kernels' logic; it does not replace runs on a GPU.

use snn_test_support::host;

use host::{Arg, Buf, HostDevice, Shape, SHAPES};
use snn_formats::model::{
    quantize_weight, Dist, Model, NeuronModel, NeuronParams, Projection, Rule,
};
use snn_formats::{Check, NetworkDir};
use snn_kernels::registry::{ConnectParams, KernelId, StepInput};
use snn_kernels::rng::CounterRng;
use snn_kernels::ziggurat::ZigguratTables;
use snn_netbuild::connect::{split_total_number, ProjPlan, SourceMode};
use snn_simulate::engine::Engine;
use snn_simulate::input::{initial_v_m, poisson_word, PoissonTable};
use snn_simulate::neuron::{self, ModelId};

// ---- conversions (what a GPU backend does on the host) ----------------------

/// The thresholds of a Poisson table (for the upload), recovered from its
/// public `sample`: threshold `k` is the smallest word whose count exceeds
/// `k`; the last one is 2^32.
fn thresholds(t: &PoissonTable) -> Vec<u64> {
    if t.is_empty() {
        return Vec::new();
    }
    let len = t.sample(u32::MAX) as usize + 1;
    let mut out = Vec::with_capacity(len);
    for k in 0..len - 1 {
        let (mut lo, mut hi) = (0u64, u32::MAX as u64); // sample(hi) > k
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if t.sample(mid as u32) as usize > k {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        out.push(lo);
    }
    out.push(1 << 32);
    out
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

// ---- neuron kernels vs neuron.rs ---------------------------------------------

/// Random parameters of `model`; `kind` picks a family (microcircuit-like,
/// balanced-like, singular tau_syn == tau_m, wide random).
fn random_params(g: &mut CounterRng, model: NeuronModel, kind: u32) -> NeuronParams {
    let mut p = NeuronParams {
        model,
        C_m: 250.0,
        tau_m: 10.0,
        tau_syn_ex: 0.5,
        tau_syn_in: 0.5,
        t_ref: 2.0,
        E_L: -65.0,
        V_th: -50.0,
        V_reset: -65.0,
        I_e: 0.0,
        spike_times: vec![],
    };
    match kind % 4 {
        0 => p.I_e = 300.0 * g.open01(),
        1 => {
            (p.E_L, p.V_th, p.V_reset, p.t_ref) = (0.0, 20.0, 0.0, 0.5);
            p.tau_syn_ex = 0.325_827_224_037_228_4;
            p.tau_syn_in = p.tau_syn_ex;
        }
        2 => {
            p.tau_syn_ex = p.tau_m;
            p.tau_syn_in = p.tau_m * (1.0 + 1e-12);
            p.I_e = 500.0;
        }
        _ => {
            p.C_m = 50.0 + 500.0 * g.open01();
            p.tau_m = 2.0 + 30.0 * g.open01();
            p.tau_syn_ex = 0.1 + 10.0 * g.open01();
            p.tau_syn_in = 0.1 + 10.0 * g.open01();
            p.t_ref = 0.1 * g.below(40) as f64;
            p.E_L = -80.0 + 20.0 * g.open01();
            p.V_th = p.E_L + 5.0 + 20.0 * g.open01();
            p.V_reset = p.E_L - 5.0 + 10.0 * g.open01();
            p.I_e = -200.0 + 1200.0 * g.open01();
        }
    }
    p
}

/// Random per-step fixed-point input (most cells small, some zero, a few
/// large).
fn random_row(g: &mut CounterRng, n: usize, sign: i64) -> Vec<i64> {
    (0..n)
        .map(|_| match g.below(6) {
            0 => 0,
            1 => sign * (g.next_u64() >> 14) as i64,
            _ => sign * (g.next_u64() >> (40 + g.below(20))) as i64,
        })
        .collect()
}

/// The Rust reference's input of one step (Engine::update_step's arithmetic,
/// with `snn_simulate::input`'s table and words).
struct Drive<'a> {
    seed: u64,
    table: &'a PoissonTable,
    weight: i64,
    delay: u64,
}

fn reference_input(
    ex: &[i64],
    inh: &[i64],
    gid: &[u64],
    drive: Option<&Drive>,
    t: u64,
    scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut a = Vec::with_capacity(ex.len());
    let mut b = Vec::with_capacity(ex.len());
    for i in 0..ex.len() {
        let (mut x, mut y) = (ex[i], inh[i]);
        if let Some(d) = drive {
            if t >= d.delay {
                let k = d.table.sample(poisson_word(d.seed, gid[i], t - d.delay)) as i64;
                if d.weight >= 0 {
                    x += k * d.weight;
                } else {
                    y += k * d.weight;
                }
            }
        }
        a.push(x as f64 * scale);
        b.push(y as f64 * scale);
    }
    (a, b)
}

/// The neuron kernel (`snn_model_update`, every model of the list) against
/// the models' `State::step`: random
/// parameter sets, states (some neurons above threshold, some refractory),
/// ring-buffer input and Poisson drive (tables of several means, both
/// signs of weight, steps before and after the drive's delay), every launch
/// shape; the whole state and the spike list compared after every step.
#[test]
fn neuron_kernels_match_neuron_rs() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let mut g = CounterRng::from_raw(21, [0, 0, 1], 0);
    let mut compared = 0u64;
    let mut fired = 0u64;
    let n_models = ModelId::ALL.len() as u32;
    for set in 0..8 * n_models {
        let id = ModelId::ALL[(set % n_models) as usize];
        let model = NeuronModel::ALL[(set % n_models) as usize];
        assert_eq!(neuron::model_id(model), Some(id));
        let p = random_params(&mut g, model, set / n_models);
        let dt = [0.1, 0.05, 0.25, 0.1][(set / 4 % 4) as usize];
        let n = 200 + g.below(300) as usize;
        let first_local = g.below(50) as u32;
        let n_local = first_local as usize + n + g.below(20) as usize;
        let frac = [8u32, 12, 16, 20][(set % 4) as usize];
        let scale = 1.0 / 2f64.powi(frac as i32);
        let seed = g.next_u64();
        let gid: Vec<u64> = (0..n)
            .map(|i| match set % 3 {
                0 => 1000 + i as u64,
                1 => g.next_u64() >> 8,
                _ => g.next_u64(), // top bits beyond the stream's 24
            })
            .collect();
        let lambda = [0.0, 0.16, 1.6, 2.07, 15.0, 0.003][(set % 6) as usize];
        let table = PoissonTable::new(lambda);
        let th = thresholds(&table);
        let w_pa = if set % 5 == 3 { -351.2 } else { 87.8 };
        let drive = Drive {
            seed,
            table: &table,
            weight: quantize_weight(w_pa, frac) as i64,
            delay: 15,
        };
        let drive_ref = (!table.is_empty()).then_some(&drive);
        let t0 = if set % 3 == 0 { 0 } else { g.below(1 << 40) };
        let refr = snn_simulate::neuron::refractory_steps(p.t_ref, dt);
        let v0: Vec<f64> = (0..n)
            .map(|_| p.E_L + (p.V_th - p.E_L) * (-0.5 + 1.6 * g.open01()))
            .collect();
        let cur = |g: &mut CounterRng| -1000.0 + 2000.0 * g.open01();
        let refr0: Vec<u32> = (0..n)
            .map(|_| {
                if g.below(2) == 0 {
                    0
                } else {
                    g.below(refr as u64 + 1) as u32
                }
            })
            .collect();

        // The Rust state and the device state (rows of n: V_m first).
        let mut r = neuron::block(&p, dt, n, |i| v0[i]).expect("a neuron model");
        for row in r.vars_mut().into_iter().skip(1) {
            for x in row.iter_mut() {
                *x = cur(&mut g);
            }
        }
        r.refractory_mut().copy_from_slice(&refr0);
        let n_vars = r.vars().len();
        let flat = |r: &neuron::Block| -> Vec<f64> { r.vars().concat() };
        let b_vars = dev.upload(&flat(&r));
        let b_refr = dev.upload(&refr0);
        let b_gid = dev.upload(&gid);
        let b_table = dev.upload(if th.is_empty() { &[0u64][..] } else { &th });
        let row_ex = dev.zeros::<i64>(n_local);
        let row_in = dev.zeros::<i64>(n_local);
        let spikes = dev.zeros::<u64>(n);
        let n_spikes = dev.zeros::<u32>(1);

        for step in 0..30u64 {
            let t = t0 + step;
            let ex = random_row(&mut g, n_local, 1);
            let inh = random_row(&mut g, n_local, -1);
            let fl = first_local as usize;
            let (in_ex, in_in) =
                reference_input(&ex[fl..fl + n], &inh[fl..fl + n], &gid, drive_ref, t, scale);
            let mut want_spikes = Vec::new();
            r.step(0..n, &in_ex, &in_in, &mut want_spikes);
            dev.write(&row_ex, &ex);
            dev.write(&row_in, &inh);
            dev.write(&n_spikes, &[0]);
            let input = StepInput {
                step: t,
                interval_start: t - step % 3,
                seed,
                weight_scale: scale,
                poisson_weight: drive.weight,
                poisson_delay: drive.delay,
                poisson_len: th.len() as u32,
                first_local,
                n: n as u32,
                spike_capacity: n as u32,
            };
            let shape = SHAPES[(step % SHAPES.len() as u64) as usize];
            let args = [
                Arg::u32(id.kind()),
                Arg::Struct(r.device_consts().to_le_bytes()),
                Arg::Struct(input.to_le_bytes()),
                b_vars.arg(),
                Arg::u64(n as u64),
                b_refr.arg(),
                row_ex.arg(),
                row_in.arg(),
                b_gid.arg(),
                b_table.arg(),
                spikes.arg(),
                n_spikes.arg(),
            ];
            dev.launch(KernelId::ModelUpdate, shape, &args);

            // Compare everything.
            let what = format!("set {set} ({model:?}, lambda {lambda}) step {step} {shape:?}");
            let got_all = dev.download(&b_vars);
            let got: Vec<Vec<u64>> = got_all.chunks(n).map(bits).collect();
            let want: Vec<Vec<u64>> = r.vars().into_iter().map(bits).collect();
            let want_refr = r.refractory();
            assert_eq!(got.len(), n_vars);
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                if let Some(i) = (0..n).find(|&i| a[i] != b[i]) {
                    panic!(
                        "{what}: state variable {k} of neuron {i}: kernel {} Rust {}",
                        f64::from_bits(a[i]),
                        f64::from_bits(b[i])
                    );
                }
            }
            assert_eq!(&dev.download(&b_refr), want_refr, "{what}: refractory");
            let count = dev.download(&n_spikes)[0] as usize;
            let mut got_spikes: Vec<u64> = dev.download(&spikes)[..count].to_vec();
            got_spikes.sort_unstable();
            let want_entries: Vec<u64> = want_spikes
                .iter()
                .map(|&i| ((step % 3) << 32) | (first_local as u64 + i as u64))
                .collect();
            assert_eq!(got_spikes, want_entries, "{what}: spikes");
            // The rows of the block were consumed, the others left alone.
            let (rex, rin) = (dev.download(&row_ex), dev.download(&row_in));
            for l in 0..n_local {
                let inside = l >= fl && l < fl + n;
                assert_eq!(
                    rex[l],
                    if inside { 0 } else { ex[l] },
                    "{what}: row_ex[{l}]"
                );
                assert_eq!(
                    rin[l],
                    if inside { 0 } else { inh[l] },
                    "{what}: row_in[{l}]"
                );
            }
            compared += n as u64;
            fired += count as u64;
        }
    }
    assert!(fired > 1000, "too few spikes to be a test: {fired}");
    println!(
        "{compared} neuron updates identical ({fired} spikes), {} launches",
        dev.launches
    );
}

/// The Poisson helpers of the neuron kernels against `snn_simulate::input`:
/// counts for words at, just below and just above every threshold of
/// tables of many means (a random word almost never hits a threshold), and
/// the drive's words for extreme neuron ids and steps.
#[test]
fn poisson_helpers_match_input_rs() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let mut g = CounterRng::from_raw(41, [0, 0, 2], 0);
    let mut cases = 0;
    for lambda in [1e-9, 0.003, 0.16, 1.0, 1.6, 2.07, 7.5, 15.0, 40.0, 200.0] {
        let table = PoissonTable::new(lambda);
        let th = thresholds(&table);
        let mut words = vec![0u32, 1, u32::MAX, u32::MAX - 1];
        for &t in &th {
            for d in [-1i64, 0, 1] {
                words.push((t as i64 + d).clamp(0, u32::MAX as i64) as u32);
            }
        }
        words.extend((0..200).map(|_| g.next_u32()));
        let got = dev.poisson_counts(&th, &words);
        for (u, k) in words.iter().zip(&got) {
            assert_eq!(*k, table.sample(*u), "lambda {lambda}, word {u:#x}");
        }
        cases += words.len();
    }
    for i in 0..200u64 {
        let seed = g.next_u64();
        let gid = match i % 4 {
            0 => i,
            1 => g.next_u64() >> 20,
            2 => g.next_u64(),
            _ => u64::MAX - i,
        };
        let steps: Vec<u64> = (0..20)
            .map(|j| match j % 4 {
                0 => j,
                1 => g.next_u64() >> 30,
                2 => g.next_u64(),
                _ => u64::MAX - j,
            })
            .collect();
        let got = dev.poisson_words(seed, gid, &steps);
        for (s, w) in steps.iter().zip(&got) {
            assert_eq!(
                *w,
                poisson_word(seed, gid, *s),
                "seed {seed:#x} gid {gid:#x} step {s:#x}"
            );
        }
        cases += steps.len();
    }
    println!("{cases} Poisson counts and words identical");
}

// ---- whole simulations vs the CPU engine -----------------------------------

/// One block of neurons on the device: a population's local range.
struct GpuBlock {
    kind: u32,
    consts: Arg,
    first_local: u32,
    n: u32,
    /// The state rows, `n` each (V_m - E_L first).
    vars: Buf<f64>,
    /// E_L, mV.
    e_l: f64,
    refractory: Buf<u32>,
    gid: Buf<u64>,
    table: Buf<u64>,
    poisson_len: u32,
    poisson_weight: i64,
    poisson_delay: u64,
}

/// One rank's device state.
struct GpuRank {
    n_local: usize,
    slots: u64,
    target_bits: u32,
    ring_ex: Buf<i64>,
    ring_in: Buf<i64>,
    row_ptr: Buf<u64>,
    syn_td: Buf<u32>,
    syn_w: Buf<i32>,
    blocks: Vec<GpuBlock>,
    spikes: Buf<u64>,
    n_spikes: Buf<u32>,
    capacity: u32,
}

/// Loads rank `rank` of `net` to the device as a GPU backend would (with
/// the same initial potentials and Poisson tables as `Engine::new`).
fn load_rank(
    dev: &mut HostDevice,
    engine: &Engine,
    model: &Model,
    seed: u64,
    max_delay_steps: u32,
    interval: u64,
) -> GpuRank {
    let d = engine.data();
    let n_local = d.local_to_global.len();
    let l2g: Vec<u64> = d.local_to_global.iter().map(|x| x.to_native()).collect();
    let row_ptr: Vec<u64> = d.row_ptr.iter().map(|x| x.to_native()).collect();
    let td: Vec<u32> = d.syn_target_delay.iter().map(|x| x.to_native()).collect();
    let w: Vec<i32> = d.syn_weight.iter().map(|x| x.to_native()).collect();
    let slots = max_delay_steps.max(1) as u64 + 1;
    let dt = model.dt_ms;
    let frac = model.weight_frac_bits;
    let mut blocks = Vec::new();
    for (pi, p) in model.populations.iter().enumerate() {
        let a = l2g.partition_point(|&g| g < p.first_id);
        let b = l2g.partition_point(|&g| g < p.first_id + p.size);
        if a == b {
            continue;
        }
        let block = neuron::block(&p.params, dt, b - a, |i| {
            initial_v_m(seed, pi, l2g[a + i] - p.first_id, &p.v_m_init)
        })
        .expect("spike generators are not on the device yet");
        let (table, weight, delay) = match &model.poisson {
            Some(pi) if p.poisson_rate_hz > 0.0 => (
                thresholds(&PoissonTable::new(p.poisson_rate_hz * dt * 1e-3)),
                quantize_weight(pi.weight_pa, frac) as i64,
                pi.delay_steps as u64,
            ),
            _ => (Vec::new(), 0, 0),
        };
        blocks.push(GpuBlock {
            kind: block.model().kind(),
            consts: Arg::Struct(block.device_consts().to_le_bytes()),
            first_local: a as u32,
            n: (b - a) as u32,
            vars: dev.upload(&block.vars().concat()),
            e_l: block.e_l(),
            refractory: dev.zeros(b - a),
            gid: dev.upload(&l2g[a..b]),
            table: dev.upload(if table.is_empty() {
                &[0u64][..]
            } else {
                &table
            }),
            poisson_len: table.len() as u32,
            poisson_weight: weight,
            poisson_delay: delay,
        });
    }
    let capacity = (n_local as u64 * interval) as u32;
    GpuRank {
        n_local,
        slots,
        target_bits: d.target_bits.to_native(),
        ring_ex: dev.zeros(slots as usize * n_local),
        ring_in: dev.zeros(slots as usize * n_local),
        row_ptr: dev.upload(&row_ptr),
        syn_td: dev.upload(&td),
        syn_w: dev.upload(&w),
        blocks,
        spikes: dev.zeros(capacity.max(1) as usize),
        n_spikes: dev.zeros(1),
        capacity,
    }
}

impl GpuRank {
    /// Updates steps `start .. start + n` (one interval); returns the
    /// interval's spike entries, sorted.
    fn update(
        &self,
        dev: &mut HostDevice,
        start: u64,
        n: u64,
        seed: u64,
        scale: f64,
        shape: Shape,
    ) -> Vec<u64> {
        dev.write(&self.n_spikes, &[0]);
        for t in start..start + n {
            let row = (t % self.slots) as usize * self.n_local;
            for b in &self.blocks {
                let input = StepInput {
                    step: t,
                    interval_start: start,
                    seed,
                    weight_scale: scale,
                    poisson_weight: b.poisson_weight,
                    poisson_delay: b.poisson_delay,
                    poisson_len: b.poisson_len,
                    first_local: b.first_local,
                    n: b.n,
                    spike_capacity: self.capacity,
                };
                let args = [
                    Arg::u32(b.kind),
                    b.consts.clone(),
                    Arg::Struct(input.to_le_bytes()),
                    b.vars.arg(),
                    Arg::u64(b.n as u64),
                    b.refractory.arg(),
                    self.ring_ex.at(row),
                    self.ring_in.at(row),
                    b.gid.arg(),
                    b.table.arg(),
                    self.spikes.arg(),
                    self.n_spikes.arg(),
                ];
                dev.launch(KernelId::ModelUpdate, shape, &args);
            }
        }
        let count = dev.download(&self.n_spikes)[0];
        assert!(count <= self.capacity, "spike list overflow");
        let mut s = dev.download(&self.spikes)[..count as usize].to_vec();
        s.sort_unstable();
        s
    }

    /// Delivers `n` entries of `spikes` (in device memory).
    fn deliver(&self, dev: &mut HostDevice, spikes: &Buf<u64>, n: u32, start: u64, shape: Shape) {
        dev.launch(
            KernelId::Deliver,
            shape,
            &[
                spikes.arg(),
                Arg::u32(n),
                Arg::u64(start),
                self.row_ptr.arg(),
                self.syn_td.arg(),
                self.syn_w.arg(),
                Arg::u32(self.target_bits),
                Arg::u64(self.slots),
                Arg::u32(self.n_local as u32),
                self.ring_ex.arg(),
                self.ring_in.arg(),
            ],
        );
    }

    /// Membrane potentials by local index.
    fn v_m(&self, dev: &mut HostDevice) -> Vec<f64> {
        let mut v = vec![f64::NAN; self.n_local];
        for b in &self.blocks {
            let x = dev.download(&b.vars);
            for (i, rel) in x[..b.n as usize].iter().enumerate() {
                v[b.first_local as usize + i] = rel + b.e_l;
            }
        }
        v
    }
}

/// Builds `cfg` on `ranks` ranks and simulates `steps` steps with the CPU
/// engines and with the kernels; spikes compared every interval, every
/// membrane potential at every interval's end. Returns (spikes, synaptic
/// events).
fn simulate_both(
    dev: &mut HostDevice,
    cfg_text: &str,
    overrides: &[&str],
    ranks: u32,
    steps: u64,
) -> (u64, u64) {
    let ov: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let cfg = snn_formats::parse_config(cfg_text, "test.toml", &ov).expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = snn_netbuild::BuildOptions {
        n_ranks: ranks,
        force: true,
        ..Default::default()
    };
    snn_netbuild::build_network(&cfg, "test.toml", dir.path(), &opts).expect("build");
    let net = NetworkDir::open(dir.path()).expect("open");
    let m = &net.manifest;
    let model = m
        .model(&dir.path().join(snn_formats::manifest::MANIFEST_FILE))
        .expect("model");
    let seed = 777;
    let mut engines = Vec::new();
    for r in 0..ranks {
        let shard = net.open_shard(r, Check::Full).expect("shard");
        engines.push(
            Engine::new(
                model.clone(),
                shard,
                m.min_delay_steps,
                m.max_delay_steps,
                seed,
            )
            .expect("engine"),
        );
    }
    let interval = engines[0].interval();
    let gpu: Vec<GpuRank> = engines
        .iter()
        .map(|e| load_rank(dev, e, &model, seed, m.max_delay_steps, interval))
        .collect();
    let scale = 1.0 / 2f64.powi(model.weight_frac_bits as i32);
    let (mut n_spikes, mut events) = (0u64, 0u64);
    let mut start = 0;
    let mut k = 0usize;
    while start < steps {
        let n = interval.min(steps - start);
        let shape = SHAPES[k % SHAPES.len()];
        k += 1;
        // CPU: update, route, deliver.
        let cpu: Vec<_> = engines.iter_mut().map(|e| e.update(n).unwrap()).collect();
        let mut deliveries = Vec::new();
        let mut outgoing = Vec::new();
        for (e, s) in engines.iter().zip(&cpu) {
            let (local, out) = e.route(s, start, ranks as usize);
            deliveries.push(local);
            outgoing.push(out);
        }
        let mut received = vec![Vec::new(); ranks as usize];
        for (r, e) in engines.iter().enumerate() {
            for (q, out) in outgoing.iter().enumerate() {
                if q != r {
                    e.receive(q as u32, &out[r], start, &mut received[r])
                        .expect("receive");
                }
            }
        }
        for (r, e) in engines.iter_mut().enumerate() {
            let mut all = deliveries[r].clone();
            all.extend(&received[r]);
            events += e.deliver(&all).unwrap();
        }
        // Device: update, compare, deliver own spikes from device memory
        // (unsorted), then the received ones.
        for (r, g) in gpu.iter().enumerate() {
            let got = g.update(dev, start, n, seed, scale, shape);
            let want: Vec<u64> = cpu[r]
                .iter()
                .flat_map(|s| {
                    s.local
                        .iter()
                        .map(move |&l| ((s.step - start) << 32) | l as u64)
                })
                .collect();
            assert_eq!(
                got, want,
                "rank {r}: spikes of the interval at step {start}"
            );
            n_spikes += got.len() as u64;
            g.deliver(dev, &g.spikes, got.len() as u32, start, shape);
            if !received[r].is_empty() {
                let entries: Vec<u64> = received[r]
                    .iter()
                    .map(|&(s, row)| ((s - start) << 32) | row as u64)
                    .collect();
                let b = dev.upload(&entries);
                g.deliver(dev, &b, entries.len() as u32, start, shape);
                dev.free(b);
            }
            let v = g.v_m(dev);
            for (l, x) in v.iter().enumerate() {
                let want = engines[r].v_m(l);
                assert_eq!(
                    x.to_bits(),
                    want.to_bits(),
                    "rank {r}: V_m of local neuron {l} after step {}: kernel {x} CPU {want}",
                    start + n - 1
                );
            }
        }
        start += n;
    }
    (n_spikes, events)
}

/// The 300-neuron iaf_psc_exp network of the CLI tests (Poisson drive,
/// normal and uniform delays from one step up: intervals of one step), on
/// one rank and on two.
#[test]
fn engine_small_exp_network_one_and_two_ranks() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sim_small.toml"),
    )
    .expect("fixture");
    for ranks in [1, 2] {
        let (spikes, events) = simulate_both(&mut dev, &text, &[], ranks, 1500);
        assert!(spikes > 200, "{ranks} ranks: only {spikes} spikes");
        println!("sim_small, {ranks} rank(s), 1500 steps: {spikes} spikes and {events} synaptic events identical");
    }
}

/// The balanced network (iaf_psc_alpha, E_L = 0, delay 1.5 ms: intervals of
/// 15 steps), scaled down, on one rank and on three.
#[test]
fn engine_balanced_alpha_network() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/balanced.toml"),
    )
    .expect("config");
    // The external rate is raised as the in-degree is lowered (rate_Hz /
    // 0.04), as in tests/checkpoint.rs.
    let sets = [
        "scale.neurons=0.04",
        "scale.indegree=0.04",
        "poisson_background.rate_Hz=57.93343666916351",
    ];
    for ranks in [1, 3] {
        let (spikes, events) = simulate_both(&mut dev, &text, &sets, ranks, 2000);
        assert!(spikes > 1000, "{ranks} ranks: only {spikes} spikes");
        println!("balanced (4%), {ranks} rank(s), 2000 steps: {spikes} spikes and {events} synaptic events identical");
    }
}

/// The microcircuit (8 populations, fixed_total_number, DC compensation),
/// scaled down, on two ranks.
#[test]
fn engine_microcircuit_two_ranks() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/microcircuit.toml"),
    )
    .expect("config");
    let (spikes, events) = simulate_both(
        &mut dev,
        &text,
        &["scale.neurons=0.02", "scale.indegree=0.05"],
        2,
        2000,
    );
    assert!(spikes > 300, "only {spikes} spikes");
    println!("microcircuit (2%), 2 ranks, 2000 steps: {spikes} spikes and {events} synaptic events identical");
}

// ---- connection generation vs ProjPlan -----------------------------------

/// Runs the connect kernel for targets `targets` (population indices) with
/// in-degrees `indeg` of plan `pp`, and compares with `for_each_synapse`.
fn compare_connect(
    dev: &mut HostDevice,
    pp: &ProjPlan,
    targets: &[u32],
    indeg: &[u64],
    shape: Shape,
) -> u64 {
    assert_eq!(pp.mode, SourceMode::PerSynapse);
    let target_bits = snn_netbuild::rank::bits_for(pp.n_tgt).max(1);
    let mut offset = vec![0u64];
    for &k in indeg {
        offset.push(offset.last().copied().unwrap_or(0) + k);
    }
    let n = *offset.last().unwrap_or(&0) as usize;
    let local: Vec<u32> = (0..targets.len() as u32)
        .map(|i| i * 7 % (1 << target_bits.min(31)))
        .collect();
    let p = ConnectParams {
        seed: pp.seed,
        n_src: pp.n_src,
        weight: snn_netbuild::connect::device_dist(&pp.proj.weight_pa),
        delay: snn_netbuild::connect::device_dist(&pp.proj.delay_ms),
        dt_ms: pp.dt_ms,
        projection: pp.proj.index,
        exclude_self: u32::from(pp.exclude_self),
        frac_bits: pp.frac_bits,
        target_bits,
    };
    let zig = dev.upload(&ZigguratTables::get().to_flat());
    let b_off = dev.upload(&offset);
    let b_tgt = dev.upload(targets);
    let b_local = dev.upload(&local);
    let (src, w, td, bad) = (
        dev.zeros::<u32>(n.max(1)),
        dev.zeros::<i32>(n.max(1)),
        dev.zeros::<u32>(n.max(1)),
        dev.zeros::<u32>(1),
    );
    dev.launch(
        KernelId::ConnectPerSynapse,
        shape,
        &[
            Arg::Struct(p.to_le_bytes()),
            zig.arg(),
            b_off.arg(),
            Arg::u32(targets.len() as u32),
            b_tgt.arg(),
            b_local.arg(),
            src.arg(),
            w.arg(),
            td.arg(),
            bad.arg(),
        ],
    );
    let (gs, gw, gtd) = (dev.download(&src), dev.download(&w), dev.download(&td));
    let mut scratch = Vec::new();
    let mut j = 0usize;
    let mut bad_want = 0u32;
    for (i, (&t, &k)) in targets.iter().zip(indeg).enumerate() {
        pp.for_each_synapse(t as u64, k, &mut scratch, |s, wq, d| {
            let what = format!(
                "projection {} target {t} synapse {}",
                pp.proj.index,
                j as u64 - offset[i]
            );
            assert_eq!(gs[j] as u64, s, "{what}: source");
            assert_eq!(gw[j], wq, "{what}: weight");
            assert_eq!(
                gtd[j],
                local[i] | (d << target_bits),
                "{what}: target and delay"
            );
            bad_want += u32::from(d as u64 >= 1u64 << (32 - target_bits));
            j += 1;
        });
    }
    assert_eq!(j, n);
    assert_eq!(dev.download(&bad)[0], bad_want, "delay overflow count");
    dev.free(zig);
    dev.free(b_off);
    dev.free(b_tgt);
    dev.free(b_local);
    dev.free(src);
    dev.free(w);
    dev.free(td);
    dev.free(bad);
    n as u64
}

/// The microcircuit's fixed_total_number projections (in-degrees from the
/// binomial split) and random fixed_indegree-with-multapses projections
/// (normal weights and delays with redraw and clip bounds, uniform and
/// constant ones, autapses excluded from tiny populations so that sources
/// are redrawn), against `ProjPlan::for_each_synapse`.
#[test]
fn connect_kernel_matches_for_each_synapse() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let mut total = 0u64;
    // Microcircuit projections.
    let cfg = snn_formats::load_config(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/microcircuit.toml"),
        &["scale.neurons=0.03".into(), "scale.indegree=0.03".into()],
    )
    .expect("config");
    let model = Model::resolve(&cfg, "microcircuit.toml").expect("model");
    for (i, proj) in model.projections.iter().enumerate() {
        let pp = ProjPlan::new(&model, proj);
        let Rule::FixedTotalNumber { n } = proj.rule else {
            continue;
        };
        let mut indeg32 = vec![0u32; pp.n_tgt as usize];
        split_total_number(pp.seed, proj.index, n, pp.n_tgt, &|_, _| true, &mut indeg32);
        let indeg: Vec<u64> = indeg32.iter().map(|&x| x as u64).collect();
        let targets: Vec<u32> = (0..pp.n_tgt as u32).collect();
        total += compare_connect(&mut dev, &pp, &targets, &indeg, SHAPES[i % SHAPES.len()]);
    }
    // Random plans.
    let mut g = CounterRng::from_raw(31, [3, 1, 4], 0);
    let base = model.projections[0].clone();
    let dists = |g: &mut CounterRng, delay: bool| -> Dist {
        let (m, s) = if delay { (1.5, 0.75) } else { (87.8, 8.78) };
        match g.below(6) {
            0 => Dist::Constant(m),
            1 => Dist::Uniform {
                min: 0.5 * m,
                max: 1.5 * m,
            },
            2 => Dist::Normal {
                mean: m,
                std: s,
                min: f64::NEG_INFINITY,
                max: f64::INFINITY,
                clip: false,
            },
            // Narrow bounds: many redraws.
            3 => Dist::Normal {
                mean: m,
                std: s,
                min: m - 0.2 * s,
                max: m + 0.1 * s,
                clip: false,
            },
            4 => Dist::Normal {
                mean: m,
                std: 5.0 * s,
                min: 0.1,
                max: 2.0 * m,
                clip: true,
            },
            _ => Dist::Normal {
                mean: -m,
                std: s,
                min: f64::NEG_INFINITY,
                max: 0.0,
                clip: true,
            },
        }
    };
    for c in 0..40u32 {
        let n_src = match c % 4 {
            0 => 1 + g.below(3),
            1 => 1000 + g.below(100_000),
            2 => g.next_u32() as u64 + 1,
            _ => 2 + g.below(50),
        };
        // Same population, autapses excluded: sources equal to the target
        // are redrawn (often, in tiny populations).
        let exclude_self = c % 4 == 0 || c % 4 == 3;
        let n_src = if exclude_self { n_src.max(2) } else { n_src };
        let n_tgt = if exclude_self {
            n_src
        } else {
            1 + g.below(400)
        };
        let proj = Projection {
            index: g.below(1 << 24) as u32,
            rule: Rule::FixedIndegree { k: 5 },
            allow_autapses: !exclude_self,
            allow_multapses: true,
            weight_pa: dists(&mut g, false),
            delay_ms: dists(&mut g, true),
            ..base.clone()
        };
        let pp = ProjPlan {
            proj,
            n_src,
            src_first: 0,
            n_tgt,
            tgt_first: 0,
            mode: SourceMode::PerSynapse,
            exclude_self,
            ln_1mp: 0.0,
            seed: g.next_u64(),
            frac_bits: [0, 8, 16, 20][(c % 4) as usize],
            dt_ms: [0.1, 0.05, 0.25][(c % 3) as usize],
            explicit: None,
        };
        let targets: Vec<u32> = (0..n_tgt as u32).filter(|_| g.below(4) != 0).collect();
        let indeg: Vec<u64> = targets.iter().map(|_| g.below(60)).collect();
        total += compare_connect(&mut dev, &pp, &targets, &indeg, SHAPES[(c % 5) as usize]);
    }
    println!("{total} synapses identical, {} launches", dev.launches);
}

/// The unpack kernels on their own, each launch unpacking several senders
/// (an empty one among them): good entries become delivery rows of their
/// sender, malformed ones (an offset past the interval; for point-to-point
/// entries a position past the sender's images) are counted in the error
/// counters and written nowhere, and a full delivery list counts an
/// overflow instead of writing past its end. (The GPU engine checks
/// received entries on the host first, so this device check is its second
/// line.)
#[test]
fn unpack_kernels_flag_malformed_entries() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    const MALFORMED: usize = 1;
    const RECV_OVERFLOW: usize = 4;
    let (interval, n_local) = (3u64, 100u32);
    for (k, &shape) in SHAPES.iter().enumerate() {
        // Point to point: sender A's images are rows 10..14 after the local
        // ones, sender B's 20..22; an empty sender between them.
        let a = [0u64, 2 << 32 | 3, 3 << 32, 1 << 32 | 4, 1 << 32 | 1];
        let b = [1u64, 2, 2 << 32];
        let recv = dev.upload(&[&a[..], &b[..]].concat());
        let seg = dev.upload(&[0u64, 5, 5, 8]);
        let images = dev.upload(&[10u64, 14, 0, 0, 20, 22]);
        for cap in [8u32, 4] {
            let deliv = dev.zeros::<u64>(8);
            let n_deliv = dev.zeros::<u32>(1);
            let err = dev.zeros::<u32>(8);
            dev.launch(
                KernelId::UnpackP2p,
                shape,
                &[
                    recv.arg(),
                    seg.arg(),
                    Arg::u32(3),
                    images.arg(),
                    Arg::u64(interval),
                    Arg::u32(n_local),
                    deliv.arg(),
                    n_deliv.arg(),
                    Arg::u32(cap),
                    err.arg(),
                ],
            );
            let e = dev.download(&err);
            let n = dev.download(&n_deliv)[0];
            assert_eq!(e[MALFORMED], 3, "shape {k}, capacity {cap}");
            assert_eq!(n, 5, "shape {k}: the good entries are counted");
            let mut got = dev.download(&deliv);
            got.truncate(n.min(cap) as usize);
            got.sort_unstable();
            if cap == 8 {
                assert_eq!(
                    got,
                    [110, 121, 1 << 32 | 111, 2 << 32 | 113, 2 << 32 | 120],
                    "shape {k}"
                );
                assert_eq!(e[RECV_OVERFLOW], 0);
            } else {
                assert_eq!(e[RECV_OVERFLOW], 1, "shape {k}: overflow not counted");
                assert_eq!(dev.download(&deliv)[4..], [0; 4], "written past the end");
            }
        }
        // Collective: this rank's images of sender X are its neurons 2, 5
        // and 9 (rows 200..), of sender Y its neurons 1 and 4 (rows 300..).
        let x = [5u64, 1 << 32 | 3, 3 << 32 | 2, 2 << 32 | 9, 9 << 32 | 5];
        let y = [4u64, 1 << 32 | 1, 1 << 32 | 2];
        let recv = dev.upload(&[&x[..], &y[..]].concat());
        let seg = dev.upload(&[0u64, 5, 8]);
        let params = dev.upload(&[0u64, 3, 200, 3, 2, 300]);
        let needs = dev.upload(&[2u32, 5, 9, 1, 4]);
        let deliv = dev.zeros::<u64>(8);
        let n_deliv = dev.zeros::<u32>(1);
        let err = dev.zeros::<u32>(8);
        dev.launch(
            KernelId::UnpackCollective,
            shape,
            &[
                recv.arg(),
                seg.arg(),
                Arg::u32(2),
                params.arg(),
                Arg::u64(interval),
                needs.arg(),
                deliv.arg(),
                n_deliv.arg(),
                Arg::u32(8),
                err.arg(),
            ],
        );
        let e = dev.download(&err);
        assert_eq!(e[MALFORMED], 2, "shape {k}: collective");
        let n = dev.download(&n_deliv)[0] as usize;
        let mut got = dev.download(&deliv)[..n].to_vec();
        got.sort_unstable();
        assert_eq!(
            got,
            [201, 301, 1 << 32 | 300, 2 << 32 | 202],
            "shape {k}: collective"
        );
    }
}
