//! The GPU engine (`snn-sim --backend cuda`) under `mpirun -n 3` (MPICH,
//! oversubscribed on small machines), each MPI process driving its own host
//! stand-in device (`test-support/src/host/`: the CUDA kernels compiled as host
//! C++, launches emulated in permuted orders; every rank its own launch order
//! and shape), through the run path `snn-sim` takes under `mpirun`
//! (`run_checkpointed` on an `MpiCluster`), compared bit for bit with the
//! CPU backend run on the same shards in one process (emulated ranks):
//!
//! * spike files (each file's populations, node ids and time bits, in file
//!   order), V_m reports, spike counts, synaptic events, steps and bytes sent
//!   between ranks, for the 10 % microcircuit (shortened; point-to-point and
//!   collective) and the balanced network scaled down (point-to-point,
//!   collective, collective in groups of 2);
//! * a run checkpointed and cut into three pieces under `mpirun` (each piece
//!   its own launch orders and communication mode) against the CPU run in one
//!   go: results and the checkpoint sections at both checkpoints;
//! * a rank whose device fails to open ends the run with an error on every
//!   rank (no rank waits for it), and leaves no output directory.
//!
//! The test starts its own executable under `mpirun` as the workers (with
//! [`WORKER`] set); a worker that fails aborts the MPI job, and the test
//! fails with the workers' output. Skipped with a note where `mpirun` or a
//! C++ compiler is missing (CI has both).
#![cfg(feature = "mpi")]

use snn_test_support::host;

use snn_test_support::net as common;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

use host::HostDevice;
use mpi::topology::SimpleCommunicator;
use mpi::traits::Communicator;
use serde_json::Value;
use snn_formats::checkpoint::{checkpoint_dir_name, rank_file_name, read_rank_state};
use snn_kernels::device::{Device, DeviceError};
use snn_simulate::cluster::{CommMode, MpiCluster};
use snn_simulate::gpu::GpuOptions;
use snn_simulate::run::{
    run_checkpointed, run_ranks_checkpointed, Backend, CheckpointOptions, DeviceFactory,
    RunOptions, RunOutcome, Start,
};
use snn_simulate::SimError;

/// Set (to the test's scratch directory) in the workers started under
/// `mpirun`.
const WORKER: &str = "SNN_TEST_GPU_SIM_MPI_WORKER";

/// MPI processes.
const RANKS: u32 = 3;

/// Seconds before a hung MPI job is killed (the test then fails).
const JOB_TIMEOUT_S: &str = "120";

/// A launch setting of the stand-in device: rank 0's; rank `r` adds `3 r`
/// to the order, `2 r` to the grid and `r` to the block size.
#[derive(Clone, Copy, Debug)]
struct Launch {
    order: u32,
    full_grid: u32,
    block_size: u32,
    record_entries: usize,
    vm_steps: usize,
}

const DEFAULT: Launch = Launch {
    order: 2,
    full_grid: 4,
    block_size: 8,
    record_entries: 1 << 16,
    vm_steps: 64,
};

/// A run of a test: its output directory (under the scratch directory),
/// communication, times and the launch setting of its GPU run.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    comm: CommMode,
    group: u32,
    t_presim_ms: f64,
    t_sim_ms: f64,
    launch: Launch,
}

/// The stand-in device of `rank` for launch setting `l`.
fn stand_in(l: Launch, rank: u32) -> Result<Box<dyn Device>, DeviceError> {
    let mut d = HostDevice::start()
        .ok_or_else(|| DeviceError::NoDevice("no C++ compiler for the stand-in".into()))?;
    d.order = l.order + 3 * rank;
    d.full_grid = l.full_grid + 2 * rank;
    d.block_size = l.block_size + rank;
    Ok(Box::new(d))
}

/// The GPU backend on stand-in devices.
fn gpu(l: Launch) -> Backend {
    let factory = DeviceFactory::new("host stand-in", move |rank| stand_in(l, rank));
    Backend::Gpu {
        factory,
        options: GpuOptions {
            record_entries: l.record_entries,
            vm_steps: l.vm_steps,
        },
    }
}

fn opts(net: &Path, out: &Path, c: &Case, backend: Backend) -> RunOptions {
    RunOptions {
        network: net.to_path_buf(),
        output: out.to_path_buf(),
        t_presim_ms: c.t_presim_ms,
        t_sim_ms: c.t_sim_ms,
        seed: 7,
        force: true,
        comm: c.comm,
        comm_group_size: c.group,
        vm_from_start: false,
        backend,
    }
}

/// Whether `mpirun` and a C++ compiler are there (else a note). Builds the
/// stand-in driver once, before the workers start.
fn have_tools() -> bool {
    let has_mpirun = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_mpirun || host::find_cxx().is_none() {
        println!("NOTE: mpirun or a C++ compiler missing: GPU engine MPI test skipped");
        return false;
    }
    drop(HostDevice::start());
    true
}

/// In a worker (started by [`launch`]): runs `body` on this process's rank
/// and returns true; a panic aborts the MPI job (after the panic message),
/// so no peer waits for this rank. Outside a worker: false.
fn as_worker(body: impl FnOnce(&SimpleCommunicator, &Path)) -> bool {
    let Some(dir) = std::env::var_os(WORKER) else {
        return false;
    };
    let universe = mpi::initialize().expect("MPI");
    let world = universe.world();
    if std::panic::catch_unwind(AssertUnwindSafe(|| body(&world, Path::new(&dir)))).is_err() {
        eprintln!(
            "worker rank {}: failed (see above): aborting the job",
            world.rank()
        );
        // A moment for the launcher to forward the output.
        std::thread::sleep(std::time::Duration::from_millis(200));
        world.abort(1);
    }
    true
}

/// A run on this process's rank as `snn-sim` does it under `mpirun`.
fn mpi_run(
    world: &SimpleCommunicator,
    o: &RunOptions,
    ck: &CheckpointOptions,
) -> Result<RunOutcome, SimError> {
    let mut cluster = MpiCluster::new(world, o.comm, o.comm_group_size);
    run_checkpointed(o, ck, &mut cluster, &mut |_| {})
}

/// Starts test `test` of this executable under `mpirun` as the workers, on
/// scratch directory `dir`; returns their output. Fails the test with the
/// output when a worker fails or the job hangs.
fn launch(test: &str, dir: &Path) -> String {
    let exe = std::env::current_exe().expect("test executable");
    let out = Command::new("timeout")
        .args([
            "-k",
            "10",
            JOB_TIMEOUT_S,
            "mpirun",
            "-n",
            &RANKS.to_string(),
        ])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(WORKER, dir)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("start timeout/mpirun");
    let text = format!(
        "--- workers' stdout\n{}\n--- workers' stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let hung = if out.status.code() == Some(124) || out.status.code() == Some(137) {
        format!(" (killed after {JOB_TIMEOUT_S} s: a rank hung)")
    } else {
        String::new()
    };
    assert!(
        out.status.success(),
        "the MPI workers failed: {}{hung}\n{text}",
        out.status
    );
    text
}

/// The CPU reference: the same shards, all ranks in this process.
fn cpu_run(net: &Path, out: &Path, c: &Case, ck: &CheckpointOptions) -> Value {
    let o = opts(net, out, c, Backend::Cpu);
    match run_ranks_checkpointed(&o, ck, true, &mut |_| {}).expect("CPU run") {
        RunOutcome::Finished(Some(s)) => serde_json::to_value(&*s).expect("summary"),
        other => panic!("CPU run did not finish: {other:?}"),
    }
}

/// The summary a run wrote.
fn summary(dir: &Path) -> Value {
    let p = dir.join("summary.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("summary.json")
}

/// One population of a spike file: (name, node ids, time bits).
type PopSpikes = (String, Vec<u64>, Vec<u64>);

/// Everything a run wrote that must not depend on the backend.
struct Results {
    /// Per spike file, per population, in file order.
    spikes: Vec<(String, Vec<PopSpikes>)>,
    /// Per V_m file, its populations.
    vm: Vec<(String, Vec<snn_formats::sonata::PopulationReport>)>,
    counts: Vec<u64>,
    events: u64,
    steps: u64,
    bytes_per_step_bits: u64,
}

fn names(s: &Value, key: &str) -> Vec<String> {
    s[key]
        .as_array()
        .unwrap_or_else(|| panic!("summary: no {key}"))
        .iter()
        .map(|v| v.as_str().expect("file name").to_owned())
        .collect()
}

fn results(dir: &Path, s: &Value) -> Results {
    let spikes = names(s, "spike_files")
        .into_iter()
        .map(|f| {
            let pops = snn_formats::sonata::read_spikes(&dir.join(&f))
                .expect("spikes")
                .into_iter()
                .map(|p| {
                    let t = p.timestamps_ms.iter().map(|t| t.to_bits()).collect();
                    (p.name, p.node_ids, t)
                })
                .collect();
            (f, pops)
        })
        .collect();
    let vm = names(s, "vm_files")
        .into_iter()
        .map(|f| {
            let r = snn_formats::sonata::read_report(&dir.join(&f)).expect("report");
            (f, r)
        })
        .collect();
    let u = |v: &Value| v.as_u64().expect("count");
    Results {
        spikes,
        vm,
        counts: s["populations"]
            .as_array()
            .expect("populations")
            .iter()
            .map(|p| u(&p["spikes"]))
            .collect(),
        events: u(&s["synaptic_events"]),
        steps: u(&s["steps"]),
        bytes_per_step_bits: s["bytes_sent_per_rank_per_step"]
            .as_f64()
            .expect("bytes sent")
            .to_bits(),
    }
}

/// Asserts that the GPU run in `gpu_dir` (summary `g`) produced what the
/// CPU run in `cpu_dir` did (also the bytes sent when `traffic`), naming
/// the first difference.
fn same_results(what: &str, cpu_dir: &Path, c: &Value, gpu_dir: &Path, g: &Value, traffic: bool) {
    assert_eq!(g["backend"], "cuda", "{what}: backend");
    assert!(
        g["device"].as_str().is_some_and(|d| d.contains("stand-in")),
        "{what}: device {}",
        g["device"]
    );
    assert_eq!(g["n_ranks"], RANKS, "{what}: ranks");
    let (a, b) = (results(cpu_dir, c), results(gpu_dir, g));
    assert_eq!(a.spikes.len(), RANKS as usize, "{what}: spike files");
    assert_eq!(a.spikes.len(), b.spikes.len(), "{what}: spike files");
    for ((fa, pa), (fb, pb)) in a.spikes.iter().zip(&b.spikes) {
        assert_eq!(fa, fb, "{what}: spike file names");
        assert_eq!(pa.len(), pb.len(), "{what}: {fa}: populations");
        for (x, y) in pa.iter().zip(pb) {
            assert_eq!(x.0, y.0, "{what}: {fa}: populations");
            if x != y {
                let first = (0..x.1.len().max(y.1.len()))
                    .find(|&i| x.1.get(i) != y.1.get(i) || x.2.get(i) != y.2.get(i))
                    .unwrap_or(0);
                let at = |p: &PopSpikes| {
                    p.1.get(first)
                        .zip(p.2.get(first))
                        .map(|(id, t)| format!("node {id} at {} ms", f64::from_bits(*t)))
                };
                panic!(
                    "{what}: {fa}, population {}: {} CPU spikes, {} GPU spikes; first difference at spike {first}: CPU {:?}, GPU {:?}",
                    x.0,
                    x.1.len(),
                    y.1.len(),
                    at(x),
                    at(y)
                );
            }
        }
    }
    assert_eq!(a.vm.len(), b.vm.len(), "{what}: V_m files");
    for ((fa, ra), (fb, rb)) in a.vm.iter().zip(&b.vm) {
        assert_eq!(fa, fb, "{what}: V_m file names");
        assert_eq!(ra.len(), rb.len(), "{what}: {fa}: populations");
        for (p, q) in ra.iter().zip(rb) {
            assert_eq!(
                (&p.name, &p.node_ids, p.n_steps),
                (&q.name, &q.node_ids, q.n_steps),
                "{what}: {fa}"
            );
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                [p.t_start_ms, p.t_stop_ms, p.dt_ms].map(f64::to_bits),
                [q.t_start_ms, q.t_stop_ms, q.dt_ms].map(f64::to_bits),
                "{what}: {fa}: {} times",
                p.name
            );
            assert!(
                bits(&p.data) == bits(&q.data),
                "{what}: {fa}: V_m of {} differs",
                p.name
            );
        }
    }
    assert_eq!(a.counts, b.counts, "{what}: spike counts");
    assert_eq!(a.events, b.events, "{what}: synaptic events");
    assert_eq!(a.steps, b.steps, "{what}: steps");
    if traffic {
        assert_eq!(
            a.bytes_per_step_bits, b.bytes_per_step_bits,
            "{what}: bytes sent per rank and step"
        );
    }
}

/// Runs the GPU cases under `mpirun` (test `test`, with the worker body
/// running them) and compares each with the CPU run of the same case.
fn compare_cases(test: &str, net: &Path, tmp: &Path, cases: &[Case]) {
    let mut cpu = Vec::new();
    for c in cases {
        let dir = tmp.join(format!("cpu-{}", c.name));
        let s = cpu_run(net, &dir, c, &CheckpointOptions::default());
        let total: u64 = s["populations"]
            .as_array()
            .expect("populations")
            .iter()
            .map(|p| p["spikes"].as_u64().unwrap_or(0))
            .sum();
        assert!(total > 100, "{}: only {total} spikes", c.name);
        assert!(s["bytes_sent_per_rank_per_step"].as_f64().unwrap_or(0.0) > 0.0);
        cpu.push((dir, s));
    }
    let out = launch(test, tmp);
    for (c, (cpu_dir, cs)) in cases.iter().zip(&cpu) {
        let gpu_dir = tmp.join(format!("gpu-{}", c.name));
        let g = summary(&gpu_dir);
        assert_eq!(g["comm"], cs["comm"], "{}", c.name);
        same_results(c.name, cpu_dir, cs, &gpu_dir, &g, true);
    }
    println!("{out}");
}

/// Worker: the GPU run of each case on this process's rank.
fn run_cases(world: &SimpleCommunicator, tmp: &Path, cases: &[Case]) {
    let net = tmp.join("net");
    for c in cases {
        let o = opts(&net, &tmp.join(format!("gpu-{}", c.name)), c, gpu(c.launch));
        let outcome = mpi_run(world, &o, &CheckpointOptions::default())
            .unwrap_or_else(|e| panic!("rank {}: {}: {e}", world.rank(), c.name));
        assert!(
            matches!(outcome, RunOutcome::Finished(ref s) if s.is_some() == (world.rank() == 0)),
            "{}: {outcome:?}",
            c.name
        );
        println!("rank {}: {} done", world.rank(), c.name);
    }
}

fn build(cfg: &snn_formats::Config, dir: &Path) {
    common::build(cfg, dir, RANKS, 1);
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

const MICROCIRCUIT_CASES: [Case; 2] = [
    Case {
        name: "p2p",
        comm: CommMode::P2p,
        group: 0,
        t_presim_ms: 5.0,
        t_sim_ms: 20.0,
        launch: Launch {
            order: 1,
            record_entries: 20_000,
            vm_steps: 7,
            ..DEFAULT
        },
    },
    Case {
        name: "collective",
        comm: CommMode::Collective,
        group: 0,
        t_presim_ms: 5.0,
        t_sim_ms: 20.0,
        launch: Launch {
            order: 5,
            full_grid: 16,
            block_size: 32,
            record_entries: 1,
            vm_steps: 3,
        },
    },
];

/// The 10 % microcircuit on 3 MPI processes (a spike exchange every step),
/// V_m of a few neurons recorded on every rank: point-to-point and
/// collective, equal to the CPU's results.
#[test]
fn microcircuit_mpi_matches_cpu() {
    if as_worker(|w, tmp| run_cases(w, tmp, &MICROCIRCUIT_CASES)) {
        return;
    }
    if !have_tools() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = common::config(
        "microcircuit.toml",
        &[
            "scale.neurons=0.1",
            "scale.indegree=0.1",
            r#"recording.V_m=[{ population = "L23E", neurons = [0, 1, 2, 3, 7] }, { population = "L4I", neurons = [2, 5] }, { population = "L6E", neurons = [11, 12, 13] }]"#,
        ],
    );
    let net = tmp.path().join("net");
    build(&cfg, &net);
    compare_cases(
        "microcircuit_mpi_matches_cpu",
        &net,
        tmp.path(),
        &MICROCIRCUIT_CASES,
    );
    let g = summary(&tmp.path().join("gpu-p2p"));
    assert_eq!(
        names(&g, "vm_files").len(),
        RANKS as usize,
        "V_m recorded on every rank"
    );
}

const BALANCED_CASES: [Case; 3] = [
    Case {
        name: "p2p",
        comm: CommMode::P2p,
        group: 0,
        t_presim_ms: 5.0,
        t_sim_ms: 35.0,
        launch: Launch {
            order: 0,
            full_grid: 1,
            block_size: 1,
            ..DEFAULT
        },
    },
    Case {
        name: "collective",
        comm: CommMode::Collective,
        group: 0,
        t_presim_ms: 5.0,
        t_sim_ms: 35.0,
        launch: Launch {
            order: 7,
            full_grid: 64,
            block_size: 32,
            record_entries: 1,
            ..DEFAULT
        },
    },
    Case {
        name: "groups2",
        comm: CommMode::Collective,
        group: 2,
        t_presim_ms: 5.0,
        t_sim_ms: 35.0,
        launch: Launch {
            order: 1,
            full_grid: 3,
            block_size: 5,
            ..DEFAULT
        },
    },
];

/// The balanced network scaled down on 3 MPI processes: point-to-point,
/// collective, and collective in groups of 2 (point-to-point between the
/// groups), equal to the CPU's results and bytes sent in the same mode.
#[test]
fn balanced_mpi_all_modes_match_cpu() {
    if as_worker(|w, tmp| run_cases(w, tmp, &BALANCED_CASES)) {
        return;
    }
    if !have_tools() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    build(&balanced_small(), &net);
    compare_cases(
        "balanced_mpi_all_modes_match_cpu",
        &net,
        tmp.path(),
        &BALANCED_CASES,
    );
}

/// The pieces of the checkpointed run: each stops after its first periodic
/// checkpoint (every 10 ms of 30), on its own launch setting and mode.
const PIECES: [Case; 3] = [
    Case {
        name: "pieces",
        comm: CommMode::P2p,
        group: 0,
        t_presim_ms: 3.0,
        t_sim_ms: 27.0,
        launch: Launch {
            order: 3,
            record_entries: 500,
            vm_steps: 5,
            ..DEFAULT
        },
    },
    Case {
        name: "pieces",
        comm: CommMode::Collective,
        group: 0,
        t_presim_ms: 3.0,
        t_sim_ms: 27.0,
        launch: Launch {
            order: 0,
            full_grid: 2,
            block_size: 3,
            ..DEFAULT
        },
    },
    Case {
        name: "pieces",
        comm: CommMode::Collective,
        group: 2,
        t_presim_ms: 3.0,
        t_sim_ms: 27.0,
        launch: Launch {
            order: 10,
            full_grid: 9,
            block_size: 16,
            record_entries: 1,
            vm_steps: 1,
        },
    },
];

const EVERY_MS: f64 = 10.0;

/// The sections of every rank file of the checkpoint at `step` of run `dir`.
fn checkpoint_sections(dir: &Path, step: u64, dt: f64) -> Vec<Vec<(String, Vec<u8>)>> {
    let c = dir
        .join(snn_formats::checkpoint::CHECKPOINTS_DIR)
        .join(checkpoint_dir_name(step, dt));
    (0..RANKS)
        .map(|r| {
            let st = read_rank_state(&c.join(rank_file_name(r)), None).expect("rank state");
            st.sections.into_iter().map(|s| (s.name, s.data)).collect()
        })
        .collect()
}

/// A GPU run under `mpirun`, checkpointed every 10 ms and cut into three
/// pieces (each resumed in place on new devices with other launch orders,
/// shapes and communication modes), ends as the CPU run in one go does;
/// the checkpoints of both hold the same sections.
#[test]
fn checkpoint_resume_mpi_matches_cpu_one_go() {
    if as_worker(|world, tmp| {
        let net = tmp.join("net");
        let dir = tmp.join("gpu-pieces");
        for (k, c) in PIECES.iter().enumerate() {
            let o = opts(&net, &dir, c, gpu(c.launch));
            let ck = CheckpointOptions {
                every_ms: Some(EVERY_MS),
                start: if k == 0 {
                    Start::Fresh
                } else {
                    Start::Resume {
                        t_sim_ms: None,
                        t_presim_ms: None,
                        seed: None,
                    }
                },
                suspend_after_checkpoints: Some(1),
                ..Default::default()
            };
            let outcome = mpi_run(world, &o, &ck);
            let outcome =
                outcome.unwrap_or_else(|e| panic!("rank {}: piece {k}: {e}", world.rank()));
            let last = k + 1 == PIECES.len();
            match outcome {
                RunOutcome::Suspended(s) if !last => {
                    assert_eq!(s.t_ms, EVERY_MS * (k + 1) as f64, "piece {k}");
                }
                RunOutcome::Finished(s) if last => {
                    assert_eq!(s.is_some(), world.rank() == 0);
                }
                other => panic!("rank {}: piece {k}: {other:?}", world.rank()),
            }
            println!("rank {}: piece {k} done", world.rank());
        }
    }) {
        return;
    }
    if !have_tools() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    build(&balanced_small(), &net);
    let dt = snn_formats::NetworkDir::open(&net)
        .expect("network")
        .manifest
        .dt_ms;
    let cpu_dir = tmp.path().join("cpu-one-go");
    let ck = CheckpointOptions {
        every_ms: Some(EVERY_MS),
        ..Default::default()
    };
    let c = cpu_run(&net, &cpu_dir, &PIECES[0], &ck);
    assert_eq!(c["pieces"], 1);
    let out = launch("checkpoint_resume_mpi_matches_cpu_one_go", tmp.path());
    let gpu_dir = tmp.path().join("gpu-pieces");
    let g = summary(&gpu_dir);
    assert_eq!(g["pieces"], 3, "{out}");
    same_results("three pieces", &cpu_dir, &c, &gpu_dir, &g, false);
    let steps = |t_ms: f64| (t_ms / dt).round() as u64;
    for t_ms in [EVERY_MS, 2.0 * EVERY_MS, 30.0] {
        assert!(
            checkpoint_sections(&cpu_dir, steps(t_ms), dt)
                == checkpoint_sections(&gpu_dir, steps(t_ms), dt),
            "checkpoint sections at {t_ms} ms differ"
        );
    }
}

/// The rank whose device fails to open in each case: (case, failing rank,
/// communication, checkpointing).
const FAILURES: [(&str, u32, CommMode, bool); 2] = [
    ("fail-p2p", 1, CommMode::P2p, false),
    (
        "fail-collective-checkpointed",
        0,
        CommMode::Collective,
        true,
    ),
];

/// A rank whose device does not open (its factory returns an error) ends
/// the run with an error on every rank, point-to-point and collective, with
/// and without checkpointing: the failing rank reports its device error,
/// the others name the failing rank; no rank waits for it and no output
/// directory is left.
#[test]
fn device_failure_is_an_error_on_every_rank() {
    if as_worker(|world, tmp| {
        let me = world.rank() as u32;
        for (name, bad, comm, checkpointed) in FAILURES {
            let factory = DeviceFactory::new("host stand-in", move |rank| {
                if rank == bad {
                    Err(DeviceError::NoDevice(format!("test: rank {rank} has none")))
                } else {
                    stand_in(DEFAULT, rank)
                }
            });
            let c = Case {
                name,
                comm,
                group: 0,
                t_presim_ms: 0.0,
                t_sim_ms: 20.0,
                launch: DEFAULT,
            };
            let o = opts(&tmp.join("net"), &tmp.join(name), &c, Backend::gpu(factory));
            let ck = CheckpointOptions {
                every_ms: checkpointed.then_some(EVERY_MS),
                ..Default::default()
            };
            let err = match mpi_run(world, &o, &ck) {
                Ok(out) => panic!("rank {me}: {name}: no error: {out:?}"),
                Err(e) => e.to_string(),
            };
            let expected = if me == bad {
                format!("test: rank {bad} has none")
            } else {
                format!("rank {bad}")
            };
            assert!(
                err.contains(&expected),
                "rank {me}: {name}: error without '{expected}': {err}"
            );
            println!("FAILED AS EXPECTED: rank {me}: {name}: {err}");
        }
    }) {
        return;
    }
    if !have_tools() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    build(&balanced_small(), &tmp.path().join("net"));
    let out = launch("device_failure_is_an_error_on_every_rank", tmp.path());
    for (name, _, _, _) in FAILURES {
        for r in 0..RANKS {
            assert!(
                out.contains(&format!("FAILED AS EXPECTED: rank {r}: {name}: ")),
                "rank {r}, {name}: no error reported\n{out}"
            );
        }
        let dir: PathBuf = tmp.path().join(name);
        assert!(!dir.exists(), "{name}: {} left behind", dir.display());
    }
    println!("{out}");
}
