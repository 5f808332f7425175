//! The determinism contract of simulation: spike trains are bit-identical
//! for any thread count, for repeated runs, and for any rank count (ranks
//! emulated in one process exchange spikes exactly as MPI ranks do).

use snn_test_support::net as common;

use std::path::Path;

use common::{build, config, config_text};
use snn_simulate::cluster::CommMode;
use snn_simulate::run::{run_ranks, RunOptions};

fn sim(
    net: &Path,
    out: &Path,
    t_presim: f64,
    t_sim: f64,
    seed: u64,
    threads: usize,
) -> Vec<(u64, String, u64)> {
    sim_mode(net, out, t_presim, t_sim, seed, threads, CommMode::P2p)
}

#[allow(clippy::too_many_arguments)]
fn sim_mode(
    net: &Path,
    out: &Path,
    t_presim: f64,
    t_sim: f64,
    seed: u64,
    threads: usize,
    comm: CommMode,
) -> Vec<(u64, String, u64)> {
    sim_groups(net, out, t_presim, t_sim, seed, threads, comm, 0)
}

#[allow(clippy::too_many_arguments)]
fn sim_groups(
    net: &Path,
    out: &Path,
    t_presim: f64,
    t_sim: f64,
    seed: u64,
    threads: usize,
    comm: CommMode,
    comm_group_size: u32,
) -> Vec<(u64, String, u64)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let opts = RunOptions {
        network: net.to_path_buf(),
        output: out.to_path_buf(),
        t_presim_ms: t_presim,
        t_sim_ms: t_sim,
        seed,
        force: true,
        comm,
        comm_group_size,
        vm_from_start: false,
        backend: snn_simulate::run::Backend::Cpu,
    };
    pool.install(|| run_ranks(&opts, true, &mut |_| {}))
        .expect("run");
    common::spikes(out)
}

#[test]
fn microcircuit_spikes_identical_for_threads_ranks_and_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        "microcircuit.toml",
        &["scale.neurons=0.1", "scale.indegree=0.1"],
    );
    let net1 = tmp.path().join("net1");
    build(&cfg, &net1, 1, 2);
    let reference = sim(&net1, &tmp.path().join("a"), 50.0, 250.0, 1, 1);
    assert!(reference.len() > 1000, "only {} spikes", reference.len());
    assert!(
        sim(&net1, &tmp.path().join("b"), 50.0, 250.0, 1, 2) == reference,
        "threads 1 vs 2"
    );
    assert!(
        sim(&net1, &tmp.path().join("c"), 50.0, 250.0, 1, 2) == reference,
        "repeated run"
    );
    for ranks in [2u32, 3, 4] {
        let net = tmp.path().join(format!("net{ranks}"));
        build(&cfg, &net, ranks, 2);
        let got = sim(
            &net,
            &tmp.path().join(format!("r{ranks}")),
            50.0,
            250.0,
            1,
            2,
        );
        assert!(got == reference, "{ranks} ranks differ from 1 rank");
        let got = sim_mode(
            &net,
            &tmp.path().join(format!("c{ranks}")),
            50.0,
            250.0,
            1,
            2,
            CommMode::Collective,
        );
        assert!(
            got == reference,
            "{ranks} ranks, collective, differ from 1 rank"
        );
        if ranks == 4 {
            // Collective within groups of 2 ranks, p2p between the groups.
            let got = sim_groups(
                &net,
                &tmp.path().join("g4"),
                50.0,
                250.0,
                1,
                2,
                CommMode::Collective,
                2,
            );
            assert!(got == reference, "4 ranks in collective groups of 2 differ");
        }
    }
    // Another seed: other Poisson input and initial potentials, other spikes.
    let other = sim(&net1, &tmp.path().join("s2"), 50.0, 250.0, 2, 2);
    assert!(other != reference);
}

/// The microcircuit at 5 % of its neurons and 10 % of its in-degrees.
fn micro_small() -> snn_formats::Config {
    config(
        "microcircuit.toml",
        &["scale.neurons=0.05", "scale.indegree=0.1"],
    )
}

/// The balanced network at 20 % of its neurons and 10 % of its in-degrees.
/// In-degrees scaled by 0.1 scale the Poisson inputs too; a 10x rate per
/// input restores the full drive so that the network is active.
fn balanced_small() -> snn_formats::Config {
    config(
        "balanced.toml",
        &[
            "scale.neurons=0.2",
            "scale.indegree=0.1",
            "poisson_background.rate_Hz=23.173374667665403",
        ],
    )
}

#[test]
fn balanced_spikes_identical_for_ranks() {
    // Delay 1.5 ms: communication every 15 steps.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = balanced_small();
    let net1 = tmp.path().join("net1");
    build(&cfg, &net1, 1, 2);
    let reference = sim(&net1, &tmp.path().join("a"), 0.0, 150.0, 3, 2);
    assert!(reference.len() > 1000, "only {} spikes", reference.len());
    for ranks in [2u32, 3, 4] {
        let net = tmp.path().join(format!("net{ranks}"));
        build(&cfg, &net, ranks, 1);
        assert!(
            sim(
                &net,
                &tmp.path().join(format!("r{ranks}")),
                0.0,
                150.0,
                3,
                1
            ) == reference,
            "{ranks} ranks"
        );
        let c = sim_mode(
            &net,
            &tmp.path().join(format!("c{ranks}")),
            0.0,
            150.0,
            3,
            1,
            CommMode::Collective,
        );
        assert!(c == reference, "{ranks} ranks collective");
    }
}

#[test]
fn placement_does_not_change_spikes() {
    let text =
        std::fs::read_to_string(snn_test_support::repo().join("configs/balanced.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (i, ov) in [
        vec!["placement.scheme=\"round_robin\""],
        vec!["placement.scheme=\"block\""],
        vec![
            "placement.scheme=\"population\"",
            "placement.population_ranks.E=0",
            "placement.population_ranks.I=1",
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let mut o = vec![
            "scale.neurons=0.1",
            "scale.indegree=0.05",
            "poisson_background.rate_Hz=46.346749335330806",
        ];
        o.extend(ov);
        let cfg = config_text(&text, &o);
        let net = tmp.path().join(format!("n{i}"));
        build(&cfg, &net, 2, 1);
        runs.push(sim(
            &net,
            &tmp.path().join(format!("r{i}")),
            0.0,
            100.0,
            5,
            2,
        ));
    }
    assert!(!runs[0].is_empty());
    assert!(runs[1] == runs[0] && runs[2] == runs[0]);
}

/// The vector code the CPU engine runs (AVX-512, AVX2 or none, forced by
/// `SNN_SIMD` in a process of its own) does not change a spike: the
/// queued input of the microcircuit and the dense ring of the balanced
/// network, 2 threads.
#[test]
fn spikes_identical_for_every_vector_level() {
    let tmp = tempfile::tempdir().unwrap();
    let micro = micro_small();
    let balanced = balanced_small();
    // DC drive instead of Poisson: a quiet network whose synaptic currents
    // sit in the subnormal range, where the models' exact path runs.
    let dc = config(
        "microcircuit.toml",
        &[
            "scale.neurons=0.05",
            "scale.indegree=0.1",
            "poisson_background.poisson_input=false",
        ],
    );
    // (name, config, spikes at least, timed ms: the DC currents need
    // ~350 ms without input to decay into the subnormal range)
    for (name, cfg, min_spikes, t_sim) in [
        ("micro", micro, 500, "200"),
        ("balanced", balanced, 500, "200"),
        ("dc", dc, 20, "1000"),
    ] {
        let net = tmp.path().join(name);
        build(&cfg, &net, 1, 2);
        let mut runs = Vec::new();
        for level in ["scalar", "avx2", "avx512"] {
            let out = tmp.path().join(format!("{name}-{level}"));
            let status = std::process::Command::new(env!("CARGO_BIN_EXE_snn-sim"))
                .env("SNN_SIMD", level)
                .args(["--t-presim", "50", "--t-sim", t_sim, "--threads", "2", "-o"])
                .arg(&out)
                .arg(&net)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("snn-sim");
            assert!(status.success(), "{name} {level}");
            // The level ran (this machine kind has AVX-512; a CPU without
            // it runs the best it has).
            let summary: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
            let ran = summary["cpu_simd"].as_str().unwrap_or("").to_string();
            let best = snn_kernels::models::simd();
            let want = match (level, best) {
                ("scalar", _) => "scalar",
                ("avx2", snn_kernels::models::Simd::Scalar) => "scalar",
                ("avx2", _) => "avx2",
                (_, snn_kernels::models::Simd::Avx512) => "avx512",
                (_, snn_kernels::models::Simd::Avx2) => "avx2",
                _ => "scalar",
            };
            assert_eq!(ran, want, "{name} {level}");
            runs.push((level, common::spikes(&out)));
        }
        let (_, reference) = &runs[0];
        assert!(
            reference.len() > min_spikes,
            "{name}: only {} spikes",
            reference.len()
        );
        for (level, spikes) in &runs[1..] {
            assert!(spikes == reference, "{name}: {level} differs from scalar");
        }
    }
}

/// [`Engine::run_alone`] (the workers meet at a barrier after every
/// interval and deliver each other's spikes, for a rank alone in its run)
/// against [`Engine::update`] and [`Engine::deliver`] interval by interval:
/// the same spikes, synaptic events and saved state (checked after every
/// call, calls of odd lengths that split intervals), for 1 to 3 workers, on
/// a network with events queued (microcircuit, interval of one step) and
/// one with dense rings (balanced, one delay of 15 steps).
#[test]
fn run_alone_equals_interval_by_interval() {
    use snn_formats::{Check, NetworkDir};
    use snn_simulate::engine::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let micro = micro_small();
    let balanced = balanced_small();
    for (name, cfg) in [("micro", micro), ("balanced", balanced)] {
        let net = tmp.path().join(name);
        build(&cfg, &net, 1, 2);
        let dir = NetworkDir::open(&net).unwrap();
        let model = dir.manifest.model(&net).unwrap();
        for threads in [1usize, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let engine = || {
                pool.install(|| {
                    Engine::new(
                        model.clone(),
                        dir.open_shard(0, Check::Full).unwrap(),
                        dir.manifest.min_delay_steps,
                        dir.manifest.max_delay_steps,
                        7,
                    )
                    .unwrap()
                })
            };
            let (mut a, mut b) = (engine(), engine());
            let iv = a.interval();
            let (mut spikes_a, mut spikes_b) = (Vec::new(), Vec::new());
            let (mut events_a, mut events_b) = (0u64, 0u64);
            // Calls of odd lengths; events counted from the second on.
            for (call, n) in [1u64, 7, 33, 100, 3, 256, 45, 555].into_iter().enumerate() {
                let count = call > 0;
                let (spikes, events) = b.run_alone(n, count).unwrap();
                spikes_b.extend(spikes);
                events_b += events;
                let mut done = 0;
                while done < n {
                    let k = iv.min(n - done);
                    let out = a.update(k).unwrap();
                    let all: Vec<(u64, u32)> = out
                        .iter()
                        .flat_map(|s| s.local.iter().map(move |&l| (s.step, l)))
                        .collect();
                    let e = a.deliver(&all).unwrap();
                    if count {
                        events_a += e;
                    }
                    spikes_a.extend(all);
                    done += k;
                }
                assert_eq!(a.step(), b.step());
                let what = format!("{name}, {threads} threads, after call {call}");
                assert_eq!(spikes_a, spikes_b, "{what}: spikes");
                assert_eq!(events_a, events_b, "{what}: events");
                let (sa, sb) = (a.save_state().unwrap(), b.save_state().unwrap());
                assert_eq!(sa.len(), sb.len());
                for (x, y) in sa.iter().zip(&sb) {
                    assert!(x.name == y.name && x.data == y.data, "{what}: {}", x.name);
                }
            }
            assert!(
                spikes_a.len() > 200,
                "{name}: only {} spikes",
                spikes_a.len()
            );
            assert!(events_a > 0);
        }
    }
}
