//! The 10% microcircuit (scale.neurons = scale.indegree = 0.1, 500 ms
//! presimulation, 1000 ms recorded) against NEST 3.10 for the same model:
//! per-population mean rates within 15 % (or 0.15 Hz, whichever is larger)
//! and mean CV of ISI within 0.07, averaged over three seeds. The reference
//! statistics come from tests/reference/microcircuit_nest.py
//! (tests/reference/data/microcircuit_nest_stats.json).

use snn_test_support::net as common;

use common::{build, config};
use snn_analysis::report::{analyze_run, AnalyzeOptions};
use snn_simulate::cluster::CommMode;
use snn_simulate::run::{run_ranks, RunOptions};

#[test]
fn microcircuit_rates_and_cv_match_nest() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            snn_test_support::repo().join("tests/reference/data/microcircuit_nest_stats.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let nest = &reference["mean_over_seeds"];
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        "microcircuit.toml",
        &["scale.neurons=0.1", "scale.indegree=0.1"],
    );
    let net = tmp.path().join("net");
    build(&cfg, &net, 1, 2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let seeds = [1u64, 2, 3];
    let mut rates: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut cvs: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for seed in seeds {
        let run = tmp.path().join(format!("run{seed}"));
        let opts = RunOptions {
            network: net.clone(),
            output: run.clone(),
            t_presim_ms: 500.0,
            t_sim_ms: 1000.0,
            seed,
            force: true,
            comm: CommMode::P2p,
            comm_group_size: 0,
            vm_from_start: false,
            backend: snn_simulate::run::Backend::Cpu,
        };
        pool.install(|| run_ranks(&opts, false, &mut |_| {}))
            .unwrap();
        let report = analyze_run(&AnalyzeOptions {
            run_dir: run,
            report_dir: tmp.path().join(format!("report{seed}")),
            t_start: Some(500.0),
            t_stop: Some(1500.0),
            force: true,
            stats: Default::default(),
            raster_neurons: 10,
            svg: false,
            progress: false,
        })
        .unwrap();
        for p in report.stats.populations {
            rates
                .entry(p.name.clone())
                .or_default()
                .push(p.rate_mean_hz.unwrap());
            cvs.entry(p.name.clone())
                .or_default()
                .push(p.cv_isi_mean.unwrap());
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut failures = Vec::new();
    println!(
        "{:<6} {:>9} {:>9} {:>8} {:>8}",
        "pop", "rate", "NEST", "cv", "NEST"
    );
    for (name, r) in &rates {
        let (ours_rate, ours_cv) = (mean(r), mean(&cvs[name]));
        let (nest_rate, nest_cv) = (
            nest[name]["rate_hz"].as_f64().unwrap(),
            nest[name]["cv_isi"].as_f64().unwrap(),
        );
        println!("{name:<6} {ours_rate:>9.3} {nest_rate:>9.3} {ours_cv:>8.3} {nest_cv:>8.3}");
        let tol = (0.15 * nest_rate).max(0.15);
        if (ours_rate - nest_rate).abs() > tol {
            failures.push(format!(
                "{name}: rate {ours_rate:.3} Hz vs NEST {nest_rate:.3} Hz"
            ));
        }
        if (ours_cv - nest_cv).abs() > 0.07 {
            failures.push(format!("{name}: CV {ours_cv:.3} vs NEST {nest_cv:.3}"));
        }
    }
    assert_eq!(rates.len(), 8);
    assert!(failures.is_empty(), "{failures:?}");
}
