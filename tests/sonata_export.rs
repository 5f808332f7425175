//! `snn-build export`: a built network as a SONATA circuit, read back by
//! independent readers (libsonata and bluepysnap, in `.venv-sonata`, see
//! `tests/reference/sonata_check.py`) and compared with `snn-build dump`
//! and `info`: every synapse (source, target, exact weight and delay) of a
//! 3-rank network with every connection rule, node counts and types, the
//! neuron parameters as simulated, both indices (checked by the script
//! against the edges), and bluepysnap's validator without a fatal error.
//! Skipped with a note where the readers are missing, except in CI (or with
//! `SNN_REQUIRE_SONATA=1`), where that is a failure.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use support::{build_small, json, p, repo, run, snn_build};

type Edge = (String, u64, String, u64, u64, u64);

#[test]
fn export_reads_back_in_libsonata_and_bluepysnap() {
    let Some(py) = support::python_with(
        ".venv-sonata",
        "libsonata, bluepysnap",
        "SNN_REQUIRE_SONATA",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    build_small(&net, &["--ranks", "3"]).expect_ok("build");
    let circ = tmp.path().join("circuit");
    let ex = json(
        &snn_build([
            p(Path::new("export")),
            p(&net),
            p(Path::new("-o")),
            p(&circ),
            p(Path::new("--json")),
        ])
        .expect_ok("export"),
    );
    let info =
        json(&snn_build([p(Path::new("info")), p(&net), p(Path::new("--json"))]).expect_ok("info"));
    let total = info["total_synapses"].as_u64().expect("total");
    assert_eq!(ex["edges"].as_u64(), Some(total));

    let out = run(Command::new(&py)
        .arg(repo().join("tests/reference/sonata_check.py"))
        .arg(circ.join("circuit_config.json"))
        .arg("--edges"))
    .expect_ok("sonata_check.py");
    let seen: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");

    // Nodes: every population, its size and type.
    let pops = info["populations"].as_array().expect("populations");
    let mut first_ids = Vec::new();
    for pj in pops {
        let name = pj["name"].as_str().expect("name");
        assert_eq!(seen["nodes"][name].as_u64(), pj["size"].as_u64(), "{name}");
        let kind = if pj["model"] == "spike_generator" {
            "virtual"
        } else {
            "point_neuron"
        };
        assert_eq!(
            seen["node_types"][name],
            serde_json::json!([kind]),
            "{name}"
        );
        first_ids.push((pj["first_id"].as_u64().expect("first_id"), name.to_string()));
        // The parameter file holds the parameters as simulated.
        let file = circ.join(format!("components/point_neuron_models/{name}.json"));
        let params: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("params")).expect("JSON");
        if pj["model"] != "spike_generator" {
            assert_eq!(params, pj["params"], "{name}");
        } else {
            assert_eq!(params["spike_times"], pj["params"]["spike_times"], "{name}");
        }
    }
    let locate = |g: u64| -> (String, u64) {
        let k = first_ids.partition_point(|(f, _)| *f <= g) - 1;
        (first_ids[k].1.clone(), g - first_ids[k].0)
    };

    // Edges: the same multiset as dump's, weights bit for bit, delays as
    // whole steps times dt.
    let dt = info["dt_ms"].as_f64().expect("dt");
    let dump = snn_build([p(Path::new("dump")), p(&net)]).expect_ok("dump");
    let mut want: Vec<Edge> = dump
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let (sp, si) = locate(f[0].parse().expect("source"));
            let (tp, ti) = locate(f[1].parse().expect("target"));
            let w: f64 = f[2].parse().expect("weight");
            let steps = (f[3].parse::<f64>().expect("delay") / dt).round();
            (sp, si, tp, ti, w.to_bits(), (steps * dt).to_bits())
        })
        .collect();
    let mut got: Vec<Edge> = seen["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            let num = |k: usize| -> f64 { e[k].as_str().expect("repr").parse().expect("float") };
            (
                e[0].as_str().expect("pop").to_string(),
                e[1].as_u64().expect("id"),
                e[2].as_str().expect("pop").to_string(),
                e[3].as_u64().expect("id"),
                num(4).to_bits(),
                num(5).to_bits(),
            )
        })
        .collect();
    assert_eq!(got.len() as u64, total);
    want.sort();
    got.sort();
    assert!(got == want, "the export's edges differ from dump's");
    // One edge population per connected pair of populations.
    let counts: HashMap<String, u64> = seen["edge_counts"]
        .as_object()
        .expect("edge_counts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
        .collect();
    assert_eq!(
        counts.len() as u64,
        ex["edge_populations"].as_u64().expect("n")
    );
    assert_eq!(counts.values().sum::<u64>(), total);

    // The validator: no fatal error. Its warnings are the two known ones:
    // delays stored as float64 (SONATA suggests float32; float64 keeps the
    // exact values) and the node type `point_neuron` (NEST's and the
    // spec's), which bluepysnap compares with its own type names.
    for v in seen["validator"].as_array().expect("validator") {
        let (level, msg) = (v[0].as_str().unwrap_or(""), v[1].as_str().unwrap_or(""));
        assert_ne!(level, "FATAL", "validator: {msg}");
        let lines: Vec<&str> = msg.lines().collect();
        let float64_delays = lines.len() > 1
            && lines[1..]
                .iter()
                .all(|l| l.contains("incorrect datatype 'float64'") && l.contains("/0/delay'"));
        let known = float64_delays || msg.contains("type mismatch: 'point_neuron' (nodes_file)");
        assert!(known, "validator: {level}: {msg}");
    }

    // An existing directory is not overwritten without --force, nor one
    // that is not a circuit even with it.
    snn_build([
        p(Path::new("export")),
        p(&net),
        p(Path::new("-o")),
        p(&circ),
    ])
    .expect_clean_error("existing circuit", &["exists", "--force"]);
    snn_build([
        p(Path::new("export")),
        p(&net),
        p(Path::new("-o")),
        p(&circ),
        p(Path::new("--force")),
    ])
    .expect_ok("--force");
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).expect("dir");
    snn_build([
        p(Path::new("export")),
        p(&net),
        p(Path::new("-o")),
        p(&other),
        p(Path::new("--force")),
    ])
    .expect_clean_error("not a circuit", &["circuit_config.json", "not replaced"]);
}
