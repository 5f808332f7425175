//! `snn-sim --initial-state`: the initial membrane potential of every
//! neuron, written without simulating, is what every engine starts from.
//!
//! The file's value of each neuron is the drawn `V_m_init` (what NEST would
//! be given as `V_m`); the engines hold `V_m - E_L`. Checked against the CPU
//! engines of 3 ranks, neuron by neuron, bit for bit, for every neuron model
//! and a generator population (not in the file), and through the binary:
//! the file, its refusal to be overwritten without `--force`, and the
//! options it cannot be combined with.

mod support;

use std::path::Path;

use snn_formats::sonata::read_report;
use snn_formats::{Check, NetworkDir};
use snn_simulate::engine::Engine;
use support::{bin, p, run, snn_build};

const CONFIG: &str = r#"
[network]
name = "init"
dt_ms = 0.1
seed = 5

[[populations]]
name = "E"
size = 70
V_m_init = { distribution = "normal", mean = -62.3, std = 4.1 }
params = { model = "iaf_psc_exp", E_L = -65.3 }

[[populations]]
name = "G"
size = 3
params = { model = "spike_generator", spike_times = [1.0] }

[[populations]]
name = "A"
size = 40
V_m_init = { distribution = "uniform", min = -70.0, max = -56.1 }
params = { model = "iaf_psc_alpha", E_L = -69.7 }

[[populations]]
name = "D"
size = 33
V_m_init = -61.3
params = { model = "iaf_psc_delta", E_L = -70.1 }

[[projections]]
source = "E"
target = "A"
rule = "fixed_indegree"
indegree = 5
weight = 10.0
delay = 1.0
"#;

#[test]
fn initial_state_is_what_the_engines_start_from() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg_path = tmp.path().join("init.toml");
    std::fs::write(&cfg_path, CONFIG).expect("config");
    let net = tmp.path().join("net");
    snn_build([
        p(&cfg_path),
        p(Path::new("-o")),
        p(&net),
        p(Path::new("--ranks")),
        p(Path::new("3")),
    ])
    .expect_ok("build");
    let out = tmp.path().join("run");
    let sim = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(bin("snn-sim"));
        cmd.arg(&net).arg("-o").arg(&out).args(extra);
        run(&mut cmd)
    };
    sim(&["--initial-state", "--seed", "9"]).expect_ok("--initial-state");
    let file = out.join("initial_state.h5");
    let report = read_report(&file).expect("report");
    // Neuron populations only, every neuron, one sample at t = 0.
    let names: Vec<&str> = report.iter().map(|r| r.name.as_str()).collect();
    // (read back in name order)
    assert_eq!(names, ["A", "D", "E"]);
    let dirn = NetworkDir::open(&net).expect("network");
    let model = dirn.manifest.model(&net).expect("model");
    let mut by_gid = std::collections::HashMap::new();
    for r in &report {
        assert_eq!((r.t_start_ms, r.n_steps), (0.0, 1), "{}", r.name);
        let pop = model
            .populations
            .iter()
            .find(|q| q.name == r.name)
            .expect("population");
        assert_eq!(r.node_ids, (0..pop.size).collect::<Vec<_>>());
        for (i, &id) in r.node_ids.iter().enumerate() {
            by_gid.insert(pop.first_id + id, (r.data[i], pop.params.E_L));
        }
    }
    assert_eq!(by_gid.len(), 70 + 40 + 33);
    assert!(by_gid.values().all(|(v, _)| (-80.0..-50.0).contains(v)));
    // The engines of the same seed start from exactly these values (held
    // as V_m - E_L, reported as that + E_L).
    let mut compared = 0;
    for r in 0..3 {
        let shard = dirn.open_shard(r, Check::Full).expect("shard");
        let e = Engine::new(
            model.clone(),
            shard,
            dirn.manifest.min_delay_steps,
            dirn.manifest.max_delay_steps,
            9,
        )
        .expect("engine");
        let d = e.data();
        for l in 0..d.local_to_global.len() {
            let g = d.local_to_global[l].to_native();
            match by_gid.get(&g) {
                Some(&(v, e_l)) => {
                    assert_eq!(
                        e.v_m(l).to_bits(),
                        ((v - e_l) + e_l).to_bits(),
                        "neuron {g}"
                    );
                    compared += 1;
                }
                None => assert!(e.v_m(l).is_nan(), "generator {g}"),
            }
        }
    }
    assert_eq!(compared, by_gid.len());
    // Another seed, other values; no overwrite without --force.
    sim(&["--initial-state", "--seed", "9"])
        .expect_clean_error("existing file", &["initial_state.h5", "exists", "--force"]);
    sim(&["--initial-state", "--seed", "10", "--force"]).expect_ok("--force");
    let other = read_report(&file).expect("report");
    assert_ne!(other[0].data, report[0].data);
    sim(&["--initial-state", "--t-sim", "5"])
        .expect_clean_error("with --t-sim", &["--initial-state", "--t-sim"]);
}
