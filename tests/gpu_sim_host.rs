//! The GPU engine (`snn_simulate::gpu::GpuEngine`, `--backend cuda`) run on
//! the host stand-in device (`test-support/src/host/`: the CUDA kernels
//! compiled as host C++, launches emulated block by block in permuted
//! orders), through the whole run pipeline (`run_ranks_checkpointed`),
//! compared bit for bit with the CPU backend:
//!
//! * spike files (every population's node ids and times, in file order),
//!   V_m reports, synaptic event counts and bytes sent between ranks;
//! * the checkpoint sections (neuron states, ring buffers, recorder counts,
//!   events) at a checkpoint and at the end, and runs branched from a CPU
//!   checkpoint on the GPU engine and from a GPU checkpoint on the CPU;
//!
//! for the 10 % microcircuit (1 rank), the balanced network scaled down on 3
//! emulated ranks (point-to-point, collective, collective groups), and a
//! network with spike generators and DC input, over several launch orders
//! and launch shapes, with small recording buffers (chunked copies back).
//! Also: a malformed received entry is an error, not a crash.
//!
//! Skipped with a note when no C++ compiler is found (CI has one).

use snn_test_support::host;

use snn_test_support::net as common;

use std::path::Path;
use std::sync::Arc;

use host::HostDevice;
use snn_formats::checkpoint::{checkpoint_dir_name, list_checkpoints, rank_file_name};
use snn_formats::{Check, NetworkDir};
use snn_kernels::device::{Device, DeviceError};
use snn_simulate::cluster::CommMode;
use snn_simulate::gpu::{GpuEngine, GpuOptions};
use snn_simulate::rank::RankEngine;
use snn_simulate::run::{
    run_ranks_checkpointed, Backend, CheckpointOptions, DeviceFactory, RunOptions, RunOutcome,
    RunSummary, Start,
};

/// A launch setting of the stand-in device.
#[derive(Clone, Copy, Debug)]
struct Setup {
    order: u32,
    full_grid: u32,
    block_size: u32,
    record_entries: usize,
    vm_steps: usize,
}

const DEFAULT: Setup = Setup {
    order: 2,
    full_grid: 4,
    block_size: 8,
    record_entries: 1 << 16,
    vm_steps: 64,
};

fn have_cxx() -> bool {
    if host::find_cxx().is_none() {
        println!("NOTE: no C++ compiler: GPU engine host test skipped");
        return false;
    }
    true
}

fn stand_in(s: Setup) -> Result<HostDevice, DeviceError> {
    let mut d = HostDevice::start()
        .ok_or_else(|| DeviceError::NoDevice("no C++ compiler for the stand-in".into()))?;
    d.order = s.order;
    d.full_grid = s.full_grid;
    d.block_size = s.block_size;
    Ok(d)
}

fn gpu(s: Setup) -> Backend {
    let factory = DeviceFactory::new("host stand-in", move |rank| {
        // Each rank its own launch order.
        let mut s = s;
        s.order += 3 * rank;
        Ok(Box::new(stand_in(s)?) as Box<dyn Device>)
    });
    Backend::Gpu {
        factory,
        options: GpuOptions {
            record_entries: s.record_entries,
            vm_steps: s.vm_steps,
        },
    }
}

fn opts(net: &Path, out: &Path, comm: CommMode, group: u32, backend: Backend) -> RunOptions {
    RunOptions {
        network: net.to_path_buf(),
        output: out.to_path_buf(),
        t_presim_ms: 0.0,
        t_sim_ms: 0.0,
        seed: 5,
        force: true,
        comm,
        comm_group_size: group,
        vm_from_start: false,
        backend,
    }
}

fn finished(o: RunOutcome) -> RunSummary {
    match o {
        RunOutcome::Finished(Some(s)) => *s,
        other => panic!("run did not finish: {other:?}"),
    }
}

/// Runs `o` with presimulation and simulation times (ms) and checkpoints
/// every `every_ms`.
fn run(mut o: RunOptions, t_presim: f64, t_sim: f64, every_ms: Option<f64>) -> RunSummary {
    o.t_presim_ms = t_presim;
    o.t_sim_ms = t_sim;
    let ck = CheckpointOptions {
        every_ms,
        ..Default::default()
    };
    finished(run_ranks_checkpointed(&o, &ck, true, &mut |_| {}).expect("run"))
}

/// Everything a run wrote that must not depend on the backend: per spike
/// file, each population's (name, node ids, time bits) in file order; per
/// V_m file, each population's report.
type Outputs = (
    Vec<Vec<(String, Vec<u64>, Vec<u64>)>>,
    Vec<Vec<snn_formats::sonata::PopulationReport>>,
);

fn outputs(dir: &Path, s: &RunSummary) -> Outputs {
    let spikes = s
        .spike_files
        .iter()
        .map(|f| {
            snn_formats::sonata::read_spikes(&dir.join(f))
                .expect("spikes")
                .into_iter()
                .map(|p| {
                    (
                        p.name,
                        p.node_ids,
                        p.timestamps_ms.iter().map(|t| t.to_bits()).collect(),
                    )
                })
                .collect()
        })
        .collect();
    let vm = s
        .vm_files
        .iter()
        .map(|f| snn_formats::sonata::read_report(&dir.join(f)).expect("report"))
        .collect();
    (spikes, vm)
}

/// Asserts that two runs produced the same results (not the wall times).
fn same_results(what: &str, a_dir: &Path, a: &RunSummary, b_dir: &Path, b: &RunSummary) {
    same_results_but_traffic(what, a_dir, a, b_dir, b);
    assert_eq!(
        a.bytes_sent_per_rank_per_step.to_bits(),
        b.bytes_sent_per_rank_per_step.to_bits(),
        "{what}: bytes sent"
    );
}

/// [`same_results`] without the bytes sent (measured over the last piece
/// of a resumed run only).
fn same_results_but_traffic(
    what: &str,
    a_dir: &Path,
    a: &RunSummary,
    b_dir: &Path,
    b: &RunSummary,
) {
    let (sa, va) = outputs(a_dir, a);
    let (sb, vb) = outputs(b_dir, b);
    assert_eq!(sa, sb, "{what}: spike files");
    assert_eq!(
        va.len(),
        vb.len(),
        "{what}: V_m files {:?} {:?}",
        a.vm_files,
        b.vm_files
    );
    for (x, y) in va.iter().zip(&vb) {
        assert_eq!(x.len(), y.len(), "{what}: V_m populations");
        for (p, q) in x.iter().zip(y) {
            assert_eq!(p.name, q.name, "{what}");
            assert_eq!(p.node_ids, q.node_ids, "{what}: V_m of {}", p.name);
            assert_eq!(p.n_steps, q.n_steps, "{what}: V_m samples of {}", p.name);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&p.data), bits(&q.data), "{what}: V_m of {}", p.name);
        }
    }
    let counts = |s: &RunSummary| s.populations.iter().map(|p| p.spikes).collect::<Vec<_>>();
    assert_eq!(counts(a), counts(b), "{what}: spike counts");
    assert_eq!(a.synaptic_events, b.synaptic_events, "{what}: events");
    assert_eq!(a.steps, b.steps, "{what}: steps");
}

/// The sections of every rank file of the checkpoint at `step` of run `dir`.
fn checkpoint_sections(
    dir: &Path,
    step: u64,
    dt: f64,
    n_ranks: u32,
) -> Vec<Vec<(String, Vec<u8>)>> {
    let c = dir
        .join(snn_formats::checkpoint::CHECKPOINTS_DIR)
        .join(checkpoint_dir_name(step, dt));
    (0..n_ranks)
        .map(|r| {
            let st = snn_formats::checkpoint::read_rank_state(&c.join(rank_file_name(r)), None)
                .expect("rank state");
            st.sections.into_iter().map(|s| (s.name, s.data)).collect()
        })
        .collect()
}

fn build(cfg: &snn_formats::Config, dir: &Path, ranks: u32) {
    common::build(cfg, dir, ranks, 1);
}

/// The 10 % microcircuit on one rank, with V_m of a few neurons recorded
/// and a presimulation: spikes, V_m and events equal to the CPU's.
#[test]
fn microcircuit_one_rank_matches_cpu() {
    if !have_cxx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = common::config(
        "microcircuit.toml",
        &[
            "scale.neurons=0.1",
            "scale.indegree=0.1",
            r#"recording.V_m=[{ population = "L23E", neurons = [0, 3, 7] }, { population = "L4I", neurons = [2] }, { population = "L23E", neurons = [11] }]"#,
        ],
    );
    let net = tmp.path().join("net");
    build(&cfg, &net, 1);
    let t0 = std::time::Instant::now();
    let cpu_dir = tmp.path().join("cpu");
    let cpu = run(
        opts(&net, &cpu_dir, CommMode::P2p, 0, Backend::Cpu),
        10.0,
        40.0,
        None,
    );
    let t_cpu = t0.elapsed();
    let gpu_dir = tmp.path().join("gpu");
    let setup = Setup {
        order: 1,
        record_entries: 20_000,
        vm_steps: 7,
        ..DEFAULT
    };
    let g = run(
        opts(&net, &gpu_dir, CommMode::P2p, 0, gpu(setup)),
        10.0,
        40.0,
        None,
    );
    println!(
        "cpu {:.2} s, stand-in {:.2} s",
        t_cpu.as_secs_f64(),
        t0.elapsed().as_secs_f64() - t_cpu.as_secs_f64()
    );
    let total: u64 = cpu.populations.iter().map(|p| p.spikes).sum();
    assert!(total > 500, "only {total} spikes");
    assert_eq!(cpu.vm_files.len(), 1);
    assert_eq!(g.backend, "cuda");
    assert!(g.device.as_deref().is_some_and(|d| d.contains("stand-in")));
    assert_eq!(cpu.backend, "cpu");
    same_results("microcircuit", &cpu_dir, &cpu, &gpu_dir, &g);
    // Device memory: at least the synapses (8 bytes each), at most that
    // plus 1 KiB per neuron (ring buffers: 52 slots x 16 bytes; state,
    // routing, recording) and 1 MiB.
    let m = snn_formats::NetworkDir::open(&net).unwrap().manifest;
    let n_neurons: u64 = cpu.populations.iter().map(|p| p.size).sum();
    let syn = m.total_synapses;
    assert_eq!(cpu.device_memory_bytes, 0);
    assert!(cpu.device_bytes_per_synapse.is_none());
    assert!(
        g.device_memory_bytes >= 8 * syn
            && g.device_memory_bytes <= 8 * syn + 1024 * n_neurons + (1 << 20),
        "{} device bytes for {syn} synapses and {n_neurons} neurons",
        g.device_memory_bytes
    );
    let per_syn = g.device_bytes_per_synapse.unwrap();
    assert_eq!(per_syn, g.device_memory_bytes as f64 / syn as f64);
    println!(
        "device memory: {} bytes, {per_syn:.3} bytes/synapse",
        g.device_memory_bytes
    );
}

fn balanced_small() -> snn_formats::Config {
    common::config(
        "balanced.toml",
        &[
            "scale.neurons=0.04",
            "scale.indegree=0.1",
            "poisson_background.rate_Hz=23.173374667665403",
        ],
    )
}

/// The balanced network scaled down on 3 emulated ranks: point-to-point,
/// collective and collective in groups of 2, each with its own launch order
/// and shape, equal to the CPU's results (and bytes sent) in the same mode.
#[test]
fn balanced_three_ranks_all_modes_match_cpu() {
    if !have_cxx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&balanced_small(), &net, 3);
    let cases = [
        (
            CommMode::P2p,
            0,
            Setup {
                order: 0,
                full_grid: 1,
                block_size: 1,
                ..DEFAULT
            },
        ),
        (
            CommMode::Collective,
            0,
            Setup {
                order: 7,
                full_grid: 64,
                block_size: 32,
                record_entries: 1,
                ..DEFAULT
            },
        ),
        (
            CommMode::Collective,
            2,
            Setup {
                order: 1,
                full_grid: 3,
                block_size: 5,
                ..DEFAULT
            },
        ),
    ];
    for (k, (mode, group, setup)) in cases.into_iter().enumerate() {
        let cpu_dir = tmp.path().join(format!("cpu{k}"));
        let cpu = run(
            opts(&net, &cpu_dir, mode, group, Backend::Cpu),
            5.0,
            45.0,
            None,
        );
        let gpu_dir = tmp.path().join(format!("gpu{k}"));
        let g = run(
            opts(&net, &gpu_dir, mode, group, gpu(setup)),
            5.0,
            45.0,
            None,
        );
        let total: u64 = cpu.populations.iter().map(|p| p.spikes).sum();
        assert!(total > 100, "only {total} spikes");
        assert!(cpu.bytes_sent_per_rank_per_step > 0.0);
        same_results(
            &format!("{mode:?} groups {group}"),
            &cpu_dir,
            &cpu,
            &gpu_dir,
            &g,
        );
    }
}

/// Spike generators (one recorded for V_m: NaN), exp, alpha and delta
/// neurons with DC input, a neuron recorded twice.
fn gen_dc_config() -> snn_formats::Config {
    let text = r#"
[network]
name = "gen_dc"
dt_ms = 0.1
seed = 3

[[populations]]
name = "A"
size = 40
V_m_init = { distribution = "uniform", min = -70.0, max = -55.0 }
params = { model = "iaf_psc_exp", I_e = 380.0, tau_syn_ex = 0.5, tau_syn_in = 2.0 }

[[populations]]
name = "G"
size = 3
scalable = false
params = { model = "spike_generator", spike_times = [1.0, 1.5, 7.3, 7.4, 20.0, 33.3] }

[[populations]]
name = "B"
size = 25
V_m_init = { distribution = "normal", mean = -65.0, std = 3.0 }
params = { model = "iaf_psc_alpha", I_e = 200.0 }

[[populations]]
name = "D"
size = 30
V_m_init = { distribution = "uniform", min = -70.0, max = -56.0 }
params = { model = "iaf_psc_delta", I_e = 360.0, tau_m = 15.0, t_ref = 1.5 }

[[projections]]
source = "A"
target = "D"
rule = "fixed_indegree"
indegree = 8
weight = { distribution = "normal", mean = 1.5, std = 0.5 }
delay = { distribution = "uniform", min = 0.2, max = 1.5 }

[[projections]]
source = "D"
target = "A"
rule = "fixed_indegree"
indegree = 6
weight = -15.0
delay = 1.0

[[projections]]
source = "G"
target = "A"
rule = "all_to_all"
weight = 300.0
delay = 0.5

[[projections]]
source = "A"
target = "B"
rule = "fixed_indegree"
indegree = 10
weight = { distribution = "normal", mean = 150.0, std = 30.0 }
delay = { distribution = "uniform", min = 0.3, max = 2.0 }

[[projections]]
source = "B"
target = "A"
rule = "fixed_indegree"
indegree = 5
weight = -400.0
delay = 0.8

[recording]
spikes = ["A", "G", "B", "D"]
V_m = [{ population = "A", neurons = [0, 1, 39] }, { population = "G", neurons = [1] }, { population = "B", neurons = [4] }, { population = "A", neurons = [1] }, { population = "D", neurons = [0, 29] }]
"#;
    common::config_text(text, &[])
}

/// A network with spike generators (on their own population), DC input
/// (I_e) without Poisson drive, every neuron model, V_m recorded: 1 and 2
/// ranks.
#[test]
fn generators_and_dc_match_cpu() {
    if !have_cxx() {
        return;
    }
    let cfg = gen_dc_config();
    let tmp = tempfile::tempdir().unwrap();
    for ranks in [1, 2] {
        let net = tmp.path().join(format!("net{ranks}"));
        build(&cfg, &net, ranks);
        let cpu_dir = tmp.path().join(format!("cpu{ranks}"));
        let cpu = run(
            opts(&net, &cpu_dir, CommMode::P2p, 0, Backend::Cpu),
            2.0,
            48.0,
            None,
        );
        let gen: u64 = cpu.populations[1].spikes;
        assert!(gen >= 9, "generator spikes after the presimulation: {gen}");
        assert!(cpu.populations[0].spikes > 20 && cpu.populations[2].spikes > 5);
        assert!(
            cpu.populations[3].spikes > 20,
            "delta neurons: {}",
            cpu.populations[3].spikes
        );
        let gpu_dir = tmp.path().join(format!("gpu{ranks}"));
        let setup = Setup {
            order: 4 + ranks,
            full_grid: 2,
            block_size: 3,
            record_entries: 1,
            vm_steps: 3,
        };
        let g = run(
            opts(&net, &gpu_dir, CommMode::P2p, 0, gpu(setup)),
            2.0,
            48.0,
            None,
        );
        same_results(&format!("{ranks} ranks"), &cpu_dir, &cpu, &gpu_dir, &g);
    }
}

/// Checkpoints: the GPU engine writes the CPU engine's sections (at a
/// periodic checkpoint and at the end); a run branched from a CPU
/// checkpoint on the GPU engine and one branched from a GPU checkpoint on
/// the CPU continue exactly as the CPU does.
#[test]
fn checkpoints_cross_backends() {
    if !have_cxx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&balanced_small(), &net, 2);
    let dt = NetworkDir::open(&net).unwrap().manifest.dt_ms;
    let setup = Setup {
        order: 9,
        record_entries: 1000,
        ..DEFAULT
    };
    let cpu_dir = tmp.path().join("cpu");
    let cpu = run(
        opts(&net, &cpu_dir, CommMode::P2p, 0, Backend::Cpu),
        0.0,
        30.0,
        Some(15.0),
    );
    let gpu_dir = tmp.path().join("gpu");
    let g = run(
        opts(&net, &gpu_dir, CommMode::P2p, 0, gpu(setup)),
        0.0,
        30.0,
        Some(15.0),
    );
    same_results("checkpointed", &cpu_dir, &cpu, &gpu_dir, &g);
    for step in [150, 300] {
        assert_eq!(
            checkpoint_sections(&cpu_dir, step, dt, 2),
            checkpoint_sections(&gpu_dir, step, dt, 2),
            "checkpoint sections at step {step}"
        );
    }
    assert_eq!(list_checkpoints(&gpu_dir).unwrap().len(), 2);
    // Branches from the checkpoint at 15 ms: 15 ms more (5 unrecorded).
    let from_cpu = cpu_dir
        .join("checkpoints")
        .join(checkpoint_dir_name(150, dt));
    let from_gpu = gpu_dir
        .join("checkpoints")
        .join(checkpoint_dir_name(150, dt));
    let branch = |from: &Path, out: &str, backend: Backend| {
        let mut o = opts(&net, &tmp.path().join(out), CommMode::P2p, 0, backend);
        o.t_presim_ms = 5.0;
        o.t_sim_ms = 10.0;
        let ck = CheckpointOptions {
            start: Start::Branch {
                from: from.to_path_buf(),
                seed: None,
            },
            ..Default::default()
        };
        finished(run_ranks_checkpointed(&o, &ck, true, &mut |_| {}).expect("branch"))
    };
    let b_cpu = branch(&from_cpu, "b_cpu", Backend::Cpu);
    let b_gpu = branch(&from_cpu, "b_gpu", gpu(Setup { order: 0, ..setup }));
    let b_back = branch(&from_gpu, "b_back", Backend::Cpu);
    assert!(b_cpu.populations.iter().map(|p| p.spikes).sum::<u64>() > 10);
    same_results(
        "CPU checkpoint on the GPU engine",
        &tmp.path().join("b_cpu"),
        &b_cpu,
        &tmp.path().join("b_gpu"),
        &b_gpu,
    );
    same_results(
        "GPU checkpoint on the CPU",
        &tmp.path().join("b_cpu"),
        &b_cpu,
        &tmp.path().join("b_back"),
        &b_back,
    );
}

/// A received entry that does not fit the routing tables is an error (as
/// on the CPU), not an out-of-bounds access; so is one from an unknown
/// rank.
#[test]
fn malformed_received_entries_are_errors() {
    if !have_cxx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let net_dir = tmp.path().join("net");
    build(&balanced_small(), &net_dir, 2);
    let net = NetworkDir::open(&net_dir).unwrap();
    let m = &net.manifest;
    let model = m
        .model(&net_dir.join(snn_formats::manifest::MANIFEST_FILE))
        .unwrap();
    let engine = || {
        let shard = net.open_shard(0, Check::Full).unwrap();
        let dev = Box::new(stand_in(DEFAULT).unwrap());
        GpuEngine::new(
            dev,
            model.clone(),
            shard,
            m.min_delay_steps,
            m.max_delay_steps,
            1,
            &GpuOptions::default(),
        )
        .unwrap()
    };
    let interval = engine().interval();
    let n_images = {
        let d = net.open_shard(0, Check::Full).unwrap();
        let d = d.data();
        d.image_offsets[2].to_native() - d.image_offsets[1].to_native()
    };
    assert!(n_images > 0);
    let cases: [(bool, u64); 3] = [
        (false, interval << 32),      // offset past the interval
        (false, n_images),            // position past the images
        (true, (interval + 3) << 32), // collective: offset past the interval
    ];
    for (collective, bad) in cases {
        let mut e = engine();
        e.set_recording(0, &[]).unwrap();
        e.update(interval).unwrap();
        let good = 0u64; // offset 0, position 0
        if collective {
            e.receive_collective(1, &[good, bad]).unwrap();
        } else {
            e.receive(1, &[good, bad]).unwrap();
        }
        let err = e.deliver(true).expect_err("malformed entry accepted");
        assert!(
            err.to_string()
                .contains("malformed spike entry from rank 1"),
            "{err}"
        );
    }
    let mut e = engine();
    e.update(interval).unwrap();
    assert!(e.receive(7, &[0]).is_err(), "unknown rank accepted");
    // A good entry is accepted.
    e.receive(1, &[0]).unwrap();
    e.deliver(true).unwrap();
    assert!(e.events().unwrap() > 0);
}

/// A run suspended at a checkpoint on the CPU (spike file truncated and
/// reopened) and resumed in place on the GPU engine ends as the CPU run
/// in one go does; and the other way round.
#[test]
fn resume_in_place_across_backends() {
    if !have_cxx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&balanced_small(), &net, 2);
    let one_dir = tmp.path().join("one");
    let one = run(
        opts(&net, &one_dir, CommMode::Collective, 0, Backend::Cpu),
        3.0,
        27.0,
        None,
    );
    let setup = Setup {
        order: 11,
        record_entries: 500,
        vm_steps: 5,
        ..DEFAULT
    };
    for (k, (first, second)) in [(Backend::Cpu, gpu(setup)), (gpu(setup), Backend::Cpu)]
        .into_iter()
        .enumerate()
    {
        let dir = tmp.path().join(format!("pieces{k}"));
        let mut o = opts(&net, &dir, CommMode::Collective, 0, first);
        o.t_presim_ms = 3.0;
        o.t_sim_ms = 27.0;
        // The first piece stops after its first checkpoint (at 10 ms).
        let ck = CheckpointOptions {
            every_ms: Some(10.0),
            suspend_after_checkpoints: Some(1),
            ..Default::default()
        };
        let out = run_ranks_checkpointed(&o, &ck, true, &mut |_| {}).expect("first piece");
        assert!(matches!(out, RunOutcome::Suspended(_)), "{out:?}");
        o.backend = second;
        let ck = CheckpointOptions {
            start: Start::Resume {
                t_sim_ms: None,
                t_presim_ms: None,
                seed: None,
            },
            ..Default::default()
        };
        let done = finished(run_ranks_checkpointed(&o, &ck, true, &mut |_| {}).expect("resume"));
        assert_eq!(done.pieces, 2);
        same_results_but_traffic(&format!("pieces {k}"), &one_dir, &one, &dir, &done);
    }
}

/// What a [`Counting`] device saw: launches per kernel, memsets, reads.
#[derive(Default, Debug)]
struct Counts {
    launches: std::collections::BTreeMap<&'static str, u64>,
    memsets: u64,
    reads: u64,
    writes: u64,
}

/// The stand-in device, counting what the engine asks of it.
struct Counting {
    inner: HostDevice,
    counts: Arc<std::sync::Mutex<Counts>>,
}

impl Counting {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Device for Counting {
    fn describe(&self) -> String {
        Device::describe(&self.inner)
    }
    fn peak_allocated_bytes(&self) -> u64 {
        Device::peak_allocated_bytes(&self.inner)
    }
    fn alloc(&mut self, bytes: u64, what: &str) -> Result<snn_kernels::device::BufId, DeviceError> {
        Device::alloc(&mut self.inner, bytes, what)
    }
    fn free(&mut self, buf: snn_kernels::device::BufId) {
        Device::free(&mut self.inner, buf)
    }
    fn write(
        &mut self,
        buf: snn_kernels::device::BufId,
        offset_bytes: u64,
        data: &[u8],
    ) -> Result<(), DeviceError> {
        self.counts().writes += 1;
        Device::write(&mut self.inner, buf, offset_bytes, data)
    }
    fn read(
        &mut self,
        buf: snn_kernels::device::BufId,
        offset_bytes: u64,
        out: &mut [u8],
    ) -> Result<(), DeviceError> {
        self.counts().reads += 1;
        Device::read(&mut self.inner, buf, offset_bytes, out)
    }
    fn zero(
        &mut self,
        buf: snn_kernels::device::BufId,
        offset_bytes: u64,
        bytes: u64,
    ) -> Result<(), DeviceError> {
        self.counts().memsets += 1;
        Device::zero(&mut self.inner, buf, offset_bytes, bytes)
    }
    fn launch(
        &mut self,
        k: snn_kernels::registry::KernelId,
        shape: snn_kernels::device::Shape,
        args: &[snn_kernels::device::Arg],
    ) -> Result<(), DeviceError> {
        let before = self.inner.launches;
        Device::launch(&mut self.inner, k, shape, args)?;
        assert_eq!(self.inner.launches, before + 1, "the stand-in's own count");
        *self.counts().launches.entry(k.name()).or_default() += 1;
        Ok(())
    }
    fn synchronize(&mut self) -> Result<(), DeviceError> {
        Device::synchronize(&mut self.inner)
    }
    fn full_grid(&self) -> u32 {
        Device::full_grid(&self.inner)
    }
    fn block_size(&self) -> u32 {
        Device::block_size(&self.inner)
    }
}

/// Counts of every device the run opens (one per rank, in opening order).
type AllCounts = Arc<std::sync::Mutex<Vec<Arc<std::sync::Mutex<Counts>>>>>;

/// A GPU backend on stand-in devices that count what the engine asks of
/// them, and the counts.
fn counting_backend() -> (Backend, AllCounts) {
    let counts: AllCounts = Arc::default();
    let seen = counts.clone();
    let factory = DeviceFactory::new("host stand-in", move |_rank| {
        let c = Arc::new(std::sync::Mutex::new(Counts::default()));
        seen.lock().unwrap().push(c.clone());
        Ok(Box::new(Counting {
            inner: stand_in(DEFAULT)?,
            counts: c,
        }) as Box<dyn Device>)
    });
    let backend = Backend::Gpu {
        factory,
        options: GpuOptions::default(),
    };
    (backend, counts)
}

/// The launches the GPU engine promises (module documentation of
/// `simulate/src/gpu.rs`): on one rank, per interval of `D` steps exactly
/// `D` launches of the fused update (every population, spike generators,
/// spike and V_m recording included) and one delivery launch, no memset;
/// copies back only when the recording is flushed (here once, at the end:
/// its counter is the one memset). Counted for the 10 % microcircuit (8
/// populations, Poisson drive) and the generator network (3 populations,
/// one of spike generators), with V_m recorded; the results are also
/// compared with the CPU's.
#[test]
fn launches_per_step() {
    if !have_cxx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let micro = common::config(
        "microcircuit.toml",
        &[
            "scale.neurons=0.02",
            "scale.indegree=0.05",
            r#"recording.V_m=[{ population = "L23E", neurons = [0, 3] }, { population = "L5I", neurons = [1] }]"#,
        ],
    );
    for (name, cfg, presim_ms, sim_ms) in [
        ("microcircuit", micro, 1.0, 4.0),
        ("generators", gen_dc_config(), 0.9, 6.0),
    ] {
        let net = tmp.path().join(format!("net-{name}"));
        build(&cfg, &net, 1);
        let cpu_dir = tmp.path().join(format!("cpu-{name}"));
        let cpu = run(
            opts(&net, &cpu_dir, CommMode::P2p, 0, Backend::Cpu),
            presim_ms,
            sim_ms,
            None,
        );
        let (backend, counts) = counting_backend();
        let gpu_dir = tmp.path().join(format!("gpu-{name}"));
        let g = run(
            opts(&net, &gpu_dir, CommMode::P2p, 0, backend),
            presim_ms,
            sim_ms,
            None,
        );
        same_results(name, &cpu_dir, &cpu, &gpu_dir, &g);
        let all = counts.lock().unwrap();
        assert_eq!(all.len(), 1, "{name}: one device");
        let c = all[0].lock().unwrap();
        let d = g.interval_steps;
        let total = g.steps;
        let presim = (presim_ms / g.dt_ms).round() as u64;
        assert!(presim > 0 && presim < total);
        // Intervals never straddle the end of the presimulation.
        let intervals = presim.div_ceil(d) + (total - presim).div_ceil(d);
        println!("{name}: D = {d}, {total} steps, {intervals} intervals: {c:?}");
        assert!(
            d > 1 || name == "microcircuit",
            "{name}: an interval of several steps"
        );
        let expected: std::collections::BTreeMap<&'static str, u64> =
            [("snn_update_step", total), ("snn_deliver_list", intervals)]
                .into_iter()
                .collect();
        assert_eq!(c.launches, expected, "{name}: launches");
        assert_eq!(c.memsets, 1, "{name}: memsets");
        assert!(c.reads <= 8, "{name}: {} reads", c.reads);
    }
}

/// With several ranks, what makes the host wait for the device per
/// interval (copies back) is only what the exchange needs, two copies
/// whatever the number of ranks: point to point, the send counts (with the
/// error counters) and the send lists (gathered back to back on the device
/// from 3 ranks on; with 2 there is one list); collective, the count and
/// the list. Received entries are checked on the host, so no error
/// counters are read back after unpacking, and go to the device in one
/// copy for all senders, unpacked by one launch. Counted per rank over runs of the balanced
/// network on 2, 3 and 4 ranks, whose results are also compared with the
/// CPU's.
#[test]
fn copies_per_interval_do_not_grow_with_ranks() {
    if !have_cxx() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (2u32, CommMode::P2p),
        (3, CommMode::P2p),
        (4, CommMode::P2p),
        (3, CommMode::Collective),
    ];
    for (k, (n_ranks, mode)) in cases.into_iter().enumerate() {
        let net = tmp.path().join(format!("net{n_ranks}"));
        if !net.exists() {
            build(&balanced_small(), &net, n_ranks);
        }
        let cpu_dir = tmp.path().join(format!("cpu{k}"));
        let cpu = run(opts(&net, &cpu_dir, mode, 0, Backend::Cpu), 5.0, 45.0, None);
        let (backend, counts) = counting_backend();
        let gpu_dir = tmp.path().join(format!("gpu{k}"));
        let g = run(opts(&net, &gpu_dir, mode, 0, backend), 5.0, 45.0, None);
        same_results(
            &format!("{mode:?}, {n_ranks} ranks"),
            &cpu_dir,
            &cpu,
            &gpu_dir,
            &g,
        );
        let d = g.interval_steps;
        let intervals = (g.steps - 50).div_ceil(d) + 50u64.div_ceil(d);
        let per_interval = 2;
        let all = counts.lock().unwrap();
        assert_eq!(all.len(), n_ranks as usize);
        for (r, c) in all.iter().enumerate() {
            let c = c.lock().unwrap();
            println!("{mode:?}, {n_ranks} ranks, rank {r}: {intervals} intervals: {c:?}");
            // A few more for the start (initial state) and the end (the
            // recording, the event count).
            assert!(
                c.reads <= per_interval * intervals + 8,
                "{mode:?}, {n_ranks} ranks, rank {r}: {} reads in {intervals} intervals",
                c.reads
            );
            // One unpack launch per interval for all senders.
            let unpacks: u64 = ["snn_unpack_p2p", "snn_unpack_collective"]
                .iter()
                .map(|k| c.launches.get(k).copied().unwrap_or(0))
                .sum();
            assert!(
                unpacks <= intervals,
                "{mode:?}, {n_ranks} ranks, rank {r}: {unpacks} unpack launches"
            );
            // Copies to the device: the received entries of all senders
            // in one (plus the 19 or so of the set-up: shard, state, tables).
            assert!(
                c.writes <= intervals + 20,
                "{mode:?}, {n_ranks} ranks, rank {r}: {} writes in {intervals} intervals",
                c.writes
            );
        }
    }
}

/// `vm_from_start`: the V_m report starts at t = 0 with the initial state
/// (what `write_initial_state` writes, held as `V_m - E_L`), then has the
/// samples of a run without it; the GPU engine writes the same, also
/// through periodic checkpoints; it cannot follow a presimulation.
#[test]
fn vm_report_from_the_initial_state() {
    if !have_cxx() {
        return;
    }
    let cfg = gen_dc_config();
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&cfg, &net, 2);
    let with = |dir: &Path, backend: Backend| {
        let mut o = opts(&net, dir, CommMode::P2p, 0, backend);
        o.vm_from_start = true;
        o
    };
    let (cpu_dir, gpu_dir, plain_dir) = (
        tmp.path().join("cpu"),
        tmp.path().join("gpu"),
        tmp.path().join("plain"),
    );
    let cpu = run(with(&cpu_dir, Backend::Cpu), 0.0, 6.0, Some(2.0));
    let plain = run(
        opts(&net, &plain_dir, CommMode::P2p, 0, Backend::Cpu),
        0.0,
        6.0,
        None,
    );
    let setup = Setup {
        order: 3,
        full_grid: 2,
        block_size: 3,
        record_entries: 1,
        vm_steps: 3,
    };
    let g = run(with(&gpu_dir, gpu(setup)), 0.0, 6.0, Some(2.0));
    same_results("vm_from_start", &cpu_dir, &cpu, &gpu_dir, &g);

    // The initial state of every neuron for the run's seed.
    let init = tmp.path().join("init.h5");
    snn_simulate::run::write_initial_state(&net, 5, &init, false).expect("initial state");
    let initial: Vec<_> = snn_formats::sonata::read_report(&init).expect("report");
    let model = snn_formats::NetworkDir::open(&net)
        .expect("net")
        .manifest
        .model(&net)
        .expect("model");
    let (_, from_start) = outputs(&cpu_dir, &cpu);
    let (_, after_steps) = outputs(&plain_dir, &plain);
    let mut checked = 0;
    for (file, plain_file) in from_start.iter().zip(&after_steps) {
        for (r, q) in file.iter().zip(plain_file) {
            assert_eq!(
                (r.name.as_str(), &r.node_ids),
                (q.name.as_str(), &q.node_ids)
            );
            assert_eq!(
                (r.t_start_ms, r.n_steps),
                (0.0, q.n_steps + 1),
                "{}",
                r.name
            );
            let w = r.node_ids.len();
            // After the first row, the plain run's samples.
            for (a, b) in r.data[w..].iter().zip(&q.data) {
                assert_eq!(a.to_bits(), b.to_bits(), "{}", r.name);
            }
            // The first row: the initial state (generators: NaN).
            let pop = model
                .populations
                .iter()
                .find(|p| p.name == r.name)
                .expect("pop");
            for (k, &id) in r.node_ids.iter().enumerate() {
                let got = r.data[k];
                match initial.iter().find(|i| i.name == r.name) {
                    Some(i) => {
                        let col = i.node_ids.iter().position(|&n| n == id).expect("node");
                        let e_l = pop.params.E_L;
                        let want = (i.data[col] - e_l) + e_l;
                        assert_eq!(got.to_bits(), want.to_bits(), "{} {id}", r.name);
                    }
                    None => assert!(got.is_nan(), "generator {} {id}", r.name),
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "only {checked} neurons checked");
    // Not after a presimulation.
    let mut o = with(&tmp.path().join("presim"), Backend::Cpu);
    o.t_presim_ms = 1.0;
    o.t_sim_ms = 1.0;
    let e = run_ranks_checkpointed(&o, &CheckpointOptions::default(), true, &mut |_| {})
        .expect_err("presimulation");
    assert!(e.to_string().contains("--vm-from-start"), "{e}");
}
