//! snn and NEST 3.10 on the same network give the same spikes and the same
//! membrane potentials, bit for bit.
//!
//! The 10 % microcircuit with its background as DC (`poisson_input =
//! false`, at 9 Hz so that every population fires; no random numbers in
//! the dynamics) is built, exported as a SONATA circuit (`snn-build
//! export`), its initial state written (`snn-sim --initial-state`) and
//! simulated for 1 s with `snn-sim`; NEST (from PyPI, in `.venv`) builds
//! the same network from the export's arrays and the initial state
//! (`tests/reference/nest_identity.py`) and simulates it for 1 s. Every
//! spike of every population (node, time step) and every V_m sample of two
//! neurons per population must be the same, and `snn-analyze compare` of
//! the snn run with NEST's (its events saved as `.npz`) must find the
//! spikes identical. Skipped with a note where NEST
//! is missing, except in CI (or with `SNN_REQUIRE_NEST=1`).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use snn_formats::sonata::{read_report, read_spikes};
use support::{bin, p, repo, run, shipped_config, snn_build};

const T_SIM_MS: f64 = 1000.0;
const SEED: &str = "3";

#[test]
fn microcircuit_dc_identical_to_nest() {
    let Some(py) = support::python_with(".venv", "nest, h5py", "SNN_REQUIRE_NEST") else {
        return;
    };
    let pops = ["L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I"];
    let vm_neurons: Vec<(&str, u64)> = pops.iter().flat_map(|&p| [(p, 0), (p, 7)]).collect();
    let vm_set = format!(
        "recording.V_m=[{}]",
        pops.iter()
            .map(|p| format!("{{ population = \"{p}\", neurons = [0, 7] }}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let (net, circ, run_dir) = (
        tmp.path().join("net"),
        tmp.path().join("circuit"),
        tmp.path().join("run"),
    );
    let mut args = vec![
        shipped_config("microcircuit.toml").into_os_string(),
        "-o".into(),
        net.clone().into_os_string(),
    ];
    for s in [
        "scale.neurons=0.1",
        "scale.indegree=0.1",
        "poisson_background.poisson_input=false",
        "poisson_background.rate_Hz=9.0",
        vm_set.as_str(),
    ] {
        args.push("--set".into());
        args.push(s.into());
    }
    snn_build(&args).expect_ok("build");
    snn_build([
        p(Path::new("export")),
        p(&net),
        p(Path::new("-o")),
        p(&circ),
    ])
    .expect_ok("export");
    let sim = |extra: &[&str]| {
        let mut cmd = Command::new(bin("snn-sim"));
        cmd.arg(&net)
            .arg("-o")
            .arg(&run_dir)
            .args(["--seed", SEED, "--threads", "2"])
            .args(extra);
        run(&mut cmd)
    };
    sim(&["--initial-state"]).expect_ok("--initial-state");
    // The initial state lives beside the run's files; the run itself goes
    // into a directory of its own.
    let initial = tmp.path().join("initial_state.h5");
    let nest_run = tmp.path().join("nest_run");
    std::fs::rename(run_dir.join("initial_state.h5"), &initial).expect("move");
    std::fs::remove_dir_all(&run_dir).expect("remove");
    sim(&["--t-sim", &T_SIM_MS.to_string()]).expect_ok("snn-sim");

    let nest_out = run(Command::new(&py)
        .env("PYNEST_QUIET", "1")
        .arg(repo().join("tests/reference/nest_identity.py"))
        .arg(&circ)
        .arg(&initial)
        .arg(T_SIM_MS.to_string())
        .arg(serde_json::to_string(&vm_neurons).expect("JSON"))
        .arg(&nest_run))
    .expect_ok("nest_identity.py");
    // NEST's banner may precede the JSON on stdout.
    let text = &nest_out.stdout[nest_out.stdout.find("{\"spikes\"").expect("NEST's JSON")..];
    let nest: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let dt = 0.1;
    let step = |t: f64| (t / dt).round() as u64;

    // Spikes: (node, step) per population.
    let mut ours: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for entry in std::fs::read_dir(&run_dir).expect("run dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("spikes-rank-") {
            for ps in read_spikes(&path).expect("spikes") {
                let v = ours.entry(ps.name.clone()).or_default();
                v.extend(
                    ps.node_ids
                        .iter()
                        .zip(&ps.timestamps_ms)
                        .map(|(&n, &t)| (n, step(t))),
                );
            }
        }
    }
    let mut total = 0;
    for name in pops {
        let mut a = ours.remove(name).unwrap_or_default();
        let mut b: Vec<(u64, u64)> = nest["spikes"][name]
            .as_array()
            .expect("NEST spikes")
            .iter()
            .map(|s| {
                let t: f64 = s[1].as_str().expect("repr").parse().expect("time");
                (s[0].as_u64().expect("node"), step(t))
            })
            .collect();
        a.sort_unstable();
        b.sort_unstable();
        assert!(!a.is_empty(), "{name} does not fire: not a test of it");
        assert_eq!(
            a.len(),
            b.len(),
            "{name}: {} spikes here, {} in NEST",
            a.len(),
            b.len()
        );
        assert!(a == b, "{name}: the spike trains differ from NEST's");
        total += a.len();
    }
    assert!(total > 10_000, "only {total} spikes");

    // V_m: every sample of the recorded neurons, bit for bit.
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(&run_dir).expect("run dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("vm-rank-") {
            reports.extend(read_report(&path).expect("report"));
        }
    }
    let mut samples = 0;
    for v in nest["vm"].as_array().expect("NEST V_m") {
        let (name, id) = (v[0].as_str().expect("pop"), v[1].as_u64().expect("id"));
        let theirs: Vec<f64> = v[2]
            .as_array()
            .expect("values")
            .iter()
            .map(|x| x.as_str().expect("repr").parse().expect("float"))
            .collect();
        let r = reports.iter().find(|r| r.name == name).expect("our report");
        let col = r.node_ids.iter().position(|&n| n == id).expect("recorded");
        let w = r.node_ids.len();
        let mine: Vec<f64> = (0..r.n_steps).map(|k| r.data[k * w + col]).collect();
        assert_eq!(mine.len(), theirs.len(), "{name} {id}: samples");
        if let Some(k) = (0..mine.len()).find(|&k| mine[k].to_bits() != theirs[k].to_bits()) {
            panic!(
                "{name} {id}: V_m at sample {k} ({} ms) is {} here and {} in NEST",
                (k + 1) as f64 * dt,
                mine[k],
                theirs[k]
            );
        }
        samples += mine.len();
    }
    assert_eq!(samples, vm_neurons.len() * (T_SIM_MS / dt) as usize);

    // NEST's run as snn-analyze reads NEST output (the recorder's events as
    // .npz, a summary.json mapping node ids): the same spikes, bit for bit
    // (NEST and snn stamp a spike with the same double).
    let cmp = run(Command::new(bin("snn-analyze"))
        .arg("compare")
        .arg(&run_dir)
        .arg(&nest_run)
        .arg("--json"))
    .expect_ok("snn-analyze compare");
    let c: serde_json::Value = serde_json::from_str(&cmp.stdout).expect("JSON");
    assert_eq!(c["identical"], true, "{}", c["first_difference"]);
    println!("{total} spikes and {samples} V_m samples identical to NEST's");
}
