//! SONATA circuits as `snn-build`'s input (`snn-build circuit_config.json
//! -o NET --ranks R`), and rule `sonata_edges` in a config.
//!
//! * Export then import: the synapse multiset of the imported network
//!   (`snn-build dump`, every source, target, weight and delay) equals the
//!   original's for 1 and 3 ranks in one process and 2 MPI processes; the resolved parameters, initial
//!   potentials and Poisson drive (`info --json`) are the same; and the
//!   imported network, Poisson-driven, fires the very same spikes as the
//!   original for the same simulation seed (`snn-analyze compare`).
//! * A config's `sonata_edges` projection reads an edge population, with a
//!   weight of its own replacing the file's; the loaded config (in the
//!   manifest) names the edges' number and checksum, and a build from it
//!   refuses an edge file changed since.
//! * `nsyns` multiplies an edge's weight (BMTK's point networks), and a
//!   network built by BMTK's own builder imports edge for edge.
//! * Unsupported SONATA features and bad files: one line naming the file
//!   and field, a non-zero exit, nothing written.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{bin, fixture, json, p, run, snn_build};

/// Build `config` into `net` with `ranks` ranks.
fn build(config: &Path, net: &Path, ranks: u32, extra: &[&str]) {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        p(config),
        p(Path::new("-o")),
        p(net),
        p(Path::new("--ranks")),
    ];
    let r = ranks.to_string();
    args.push(std::ffi::OsStr::new(&r));
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    snn_build(args).expect_ok("snn-build");
}

/// `snn-build dump`'s synapses, sorted (the multiset).
fn synapses(net: &Path) -> Vec<String> {
    let out = snn_build([p(Path::new("dump")), p(net)]).expect_ok("dump");
    let mut v: Vec<String> = out.stdout.lines().skip(1).map(str::to_string).collect();
    v.sort();
    v
}

/// Export `net` as a SONATA circuit into `dir`; the circuit config's path.
fn export(net: &Path, dir: &Path) -> PathBuf {
    snn_build([p(Path::new("export")), p(net), p(Path::new("-o")), p(dir)]).expect_ok("export");
    dir.join("circuit_config.json")
}

fn info(net: &Path) -> serde_json::Value {
    json(&snn_build([p(Path::new("info")), p(net), p(Path::new("--json"))]).expect_ok("info"))
}

/// Whether `mpirun` runs (MPICH); the MPI part is skipped with a note
/// otherwise.
fn mpirun_works() -> bool {
    let ok = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("NOTE: no mpirun: MPI import skipped");
    }
    ok
}

#[test]
fn export_then_import_is_the_same_network_and_spikes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    // Every connection rule, a generator, Poisson drive; then an active
    // Poisson-driven network for the spikes.
    for (fixture_name, sim) in [("small_all_rules.toml", false), ("sim_small.toml", true)] {
        let dir = t.join(fixture_name);
        let orig = dir.join("orig");
        build(&fixture(fixture_name), &orig, 2, &[]);
        let circuit = export(&orig, &dir.join("circuit"));
        let want = synapses(&orig);
        assert!(want.len() > 5000, "{fixture_name}: {} synapses", want.len());
        let orig_info = info(&orig);
        for ranks in [1, 3] {
            let imported = dir.join(format!("imported-{ranks}"));
            build(&circuit, &imported, ranks, &[]);
            assert!(
                synapses(&imported) == want,
                "{fixture_name}: imported on {ranks} ranks: other synapses"
            );
            let i = info(&imported);
            assert_eq!(i["total_synapses"], orig_info["total_synapses"]);
            for (a, b) in orig_info["populations"]
                .as_array()
                .expect("populations")
                .iter()
                .zip(i["populations"].as_array().expect("populations"))
            {
                for key in ["name", "size", "model", "params", "V_m_init"] {
                    assert_eq!(a[key], b[key], "{fixture_name}: {key} of {}", a["name"]);
                }
                // The Poisson drive as simulated (the export gives its
                // weight as stored, so the import's weight is that).
                let (pa, pb) = (&a["poisson"], &b["poisson"]);
                for key in ["rate_hz", "delay_ms", "weight_simulated"] {
                    assert_eq!(pa[key], pb[key], "{fixture_name}: poisson {key}");
                }
                assert_eq!(pa["weight_simulated"], pb["weight"], "{fixture_name}");
            }
            for proj in i["projections"].as_array().expect("projections") {
                assert_eq!(proj["rule"], "sonata_edges", "{proj}");
            }
            if sim && ranks == 3 && mpirun_works() {
                // One process per rank, each reading the edges of its own
                // targets.
                let mpi = dir.join("imported-mpi");
                run(Command::new("timeout")
                    .args(["120", "mpirun", "-n", "2"])
                    .arg(bin("snn-build"))
                    .arg(&circuit)
                    .arg("-o")
                    .arg(&mpi)
                    .args(["--ranks", "2"]))
                .expect_ok("mpirun snn-build");
                assert!(synapses(&mpi) == want, "{fixture_name}: MPI import");
            }
            if sim && ranks == 3 {
                let (ra, rb) = (dir.join("run-orig"), dir.join("run-imported"));
                for (net, out) in [(&orig, &ra), (&imported, &rb)] {
                    run(Command::new(bin("snn-sim"))
                        .arg(net)
                        .arg("-o")
                        .arg(out)
                        .args(["--t-sim", "300", "--seed", "7", "--emulate-ranks"]))
                    .expect_ok("snn-sim");
                }
                let c = run(Command::new(bin("snn-analyze"))
                    .arg("compare")
                    .arg(&ra)
                    .arg(&rb)
                    .arg("--json"));
                assert_eq!(c.code, Some(0), "spikes differ: {c:?}");
                let c = json(&c);
                assert_eq!(c["identical"], true, "{c}");
                let summary: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(ra.join("summary.json")).expect("summary"),
                )
                .expect("summary JSON");
                let n: u64 = summary["populations"]
                    .as_array()
                    .expect("populations")
                    .iter()
                    .map(|p| p["spikes"].as_u64().unwrap_or(0))
                    .sum();
                assert!(n > 1000, "only {n} spikes");
            }
        }
    }
}

/// The synapses of `dump` from global ids `src` onto `tgt` (ranges), as
/// (source, target, weight, delay) strings.
fn between(
    all: &[String],
    src: std::ops::Range<u64>,
    tgt: std::ops::Range<u64>,
) -> Vec<(u64, u64, String, String)> {
    let mut v: Vec<(u64, u64, String, String)> = all
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let (s, t) = (f[0].parse().ok()?, f[1].parse().ok()?);
            (src.contains(&s) && tgt.contains(&t)).then(|| (s, t, f[2].into(), f[3].into()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sonata_edges_in_a_config_and_changed_edges_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let orig = t.join("orig");
    build(&fixture("sim_small.toml"), &orig, 1, &[]);
    export(&orig, &t.join("circuit"));
    // sim_small: E = global 0..240, I = 240..300.
    let cfg = t.join("mixed.toml");
    std::fs::write(
        &cfg,
        r#"
[network]
name = "mixed"
seed = 3

[[populations]]
name = "E"
size = 240

[[populations]]
name = "I"
size = 60

[[projections]]
source = "E"
target = "I"
rule = "sonata_edges"
weight = 5.0
edges = { file = "circuit/network/edges.h5", population = "E_to_I" }

[[projections]]
source = "I"
target = "E"
rule = "fixed_indegree"
indegree = 10
weight = -20.0
delay = 1.0
"#,
    )
    .expect("write config");
    let net = t.join("net");
    build(&cfg, &net, 2, &[]);
    let (want, got) = (synapses(&orig), synapses(&net));
    let (e, i) = (0..240u64, 240..300u64);
    let (want_ei, got_ei) = (
        between(&want, e.clone(), i.clone()),
        between(&got, e.clone(), i.clone()),
    );
    assert!(want_ei.len() > 1000, "{} E->I synapses", want_ei.len());
    assert_eq!(want_ei.len(), got_ei.len());
    for (a, b) in want_ei.iter().zip(&got_ei) {
        // Sources, targets and delays from the file, the config's weight.
        assert_eq!((a.0, a.1, &a.3), (b.0, b.1, &b.3));
        assert_eq!(b.2.parse::<f64>().ok(), Some(5.0), "{b:?}");
    }
    assert_eq!(between(&got, i.clone(), e.clone()).len(), 240 * 10);

    // The loaded config, in the manifest, names the edges.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let edges = &manifest["config"]["projections"][0]["edges"];
    assert_eq!(edges["N"].as_u64(), Some(want_ei.len() as u64), "{edges}");
    assert_eq!(
        edges["checksum"].as_str().map(str::len),
        Some(16),
        "{edges}"
    );
    assert!(
        Path::new(edges["file"].as_str().expect("file")).is_absolute(),
        "{edges}"
    );

    // That config builds again; after a delay in the file changes, it is
    // refused.
    fn drop_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(drop_nulls);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    let mut config = manifest["config"].clone();
    drop_nulls(&mut config);
    let loaded: toml::Value = serde_json::from_value(config).expect("config as TOML");
    let frozen = t.join("frozen.toml");
    std::fs::write(&frozen, toml::to_string(&loaded).expect("TOML")).expect("write");
    build(&frozen, &t.join("again"), 1, &[]);
    // A config whose recorded delay range is narrower than the file's is
    // refused (the range decides what the build assumes of the delays).
    let mut narrow = loaded.clone();
    narrow["projections"][0]["edges"]["delay_range"] =
        toml::Value::try_from([0.1, 0.2]).expect("range");
    let narrowed = t.join("narrow.toml");
    std::fs::write(&narrowed, toml::to_string(&narrow).expect("TOML")).expect("write");
    snn_build([p(&narrowed), p(Path::new("-o")), p(&t.join("narrow"))]).expect_clean_error(
        "narrowed delay range",
        &["edges.h5", "E_to_I", "delay_range"],
    );
    {
        let f = hdf5::File::open_rw(t.join("circuit/network/edges.h5")).expect("open edges");
        let d = f.dataset("edges/E_to_I/0/delay").expect("delay");
        let mut v = d.read_raw::<f64>().expect("read");
        v[7] += 0.1;
        d.write_raw(&v).expect("write");
    }
    let refused = t.join("refused");
    snn_build([p(&frozen), p(Path::new("-o")), p(&refused)]).expect_clean_error(
        "changed edges",
        &["edges.h5", "E_to_I", "changed since the config was loaded"],
    );
    assert!(!refused.exists());
}

/// An exported circuit, damaged by `damage`, is refused with one line
/// naming `must` (the file and the field), and nothing is written.
fn refused(t: &Path, name: &str, damage: impl FnOnce(&Path), must: &[&str], extra: &[&str]) {
    let circuit = t.join(name);
    export(&t.join("orig"), &circuit);
    damage(&circuit);
    let out = t.join(format!("{name}-net"));
    let mut args = vec![
        p(&circuit.join("circuit_config.json")).to_owned(),
        "-o".into(),
        p(&out).to_owned(),
    ];
    args.extend(extra.iter().map(Into::into));
    snn_build(args).expect_clean_error(name, must);
    assert!(!out.exists(), "{name}: output written");
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{}: no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn unsupported_sonata_is_one_line_naming_file_and_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    build(&fixture("sim_small.toml"), &t.join("orig"), 1, &[]);
    let types = |c: &Path| c.join("network/node_types.csv");
    refused(
        t,
        "model",
        |c| edit(&types(c), "nest:iaf_psc_exp", "nest:aeif_cond_exp"),
        &["node_types.csv", "model_template", "aeif_cond_exp"],
        &[],
    );
    refused(
        t,
        "multicomp",
        |c| edit(&types(c), "point_neuron", "biophysical"),
        &["node_types.csv", "model_type", "biophysical"],
        &[],
    );
    refused(
        t,
        "param",
        |c| {
            edit(
                &c.join("components/point_neuron_models/E.json"),
                "{",
                "{\n  \"tau_minus\": 20.0,",
            )
        },
        &["E.json", "dynamics_params", "tau_minus"],
        &[],
    );
    refused(
        t,
        "types",
        |c| {
            let f = hdf5::File::open_rw(c.join("network/nodes.h5")).expect("nodes");
            let d = f.dataset("nodes/E/node_type_id").expect("node_type_id");
            let mut v = d.read_raw::<i64>().expect("read");
            v[3] = 1;
            d.write_raw(&v).expect("write");
        },
        &["nodes.h5", "/nodes/E/node_type_id", "node types"],
        &[],
    );
    refused(
        t,
        "noweight",
        |c| {
            let f = hdf5::File::open_rw(c.join("network/edges.h5")).expect("edges");
            f.group("edges/I_to_E/0")
                .expect("group")
                .unlink("syn_weight")
                .expect("unlink");
        },
        &["edges.h5", "/edges/I_to_E/0/syn_weight", "missing"],
        &[],
    );
    refused(
        t,
        "groups",
        |c| {
            let f = hdf5::File::open_rw(c.join("network/edges.h5")).expect("edges");
            f.group("edges/E_to_E")
                .expect("group")
                .create_group("1")
                .expect("group 1");
        },
        &["edges.h5", "/edges/E_to_E", "edge groups"],
        &[],
    );
    refused(
        t,
        "lengths",
        |c| {
            let f = hdf5::File::open_rw(c.join("network/edges.h5")).expect("edges");
            let d = f.dataset("edges/I_to_I/target_node_id").expect("targets");
            d.resize(d.size() - 1).expect("resize");
        },
        &["edges.h5", "/edges/I_to_I/target_node_id", "entries"],
        &[],
    );
    refused(
        t,
        "forged",
        |c| {
            // A size no data backs (HDF5 would read fill values).
            let f = hdf5::File::open_rw(c.join("network/edges.h5")).expect("edges");
            let d = f.dataset("edges/E_to_E/edge_type_id").expect("types");
            d.resize(1usize << 31).expect("resize");
        },
        &["edges.h5", "/edges/E_to_E/edge_type_id", "claims"],
        &[],
    );
    refused(
        t,
        "notsonata",
        |c| std::fs::write(c.join("network/edges.h5"), b"not HDF5").expect("write"),
        &["edges.h5"],
        &[],
    );
    refused(
        t,
        "notjson",
        |c| std::fs::write(c.join("circuit_config.json"), b"{ nodes").expect("write"),
        &["circuit_config.json", "not JSON"],
        &[],
    );
    // The output may not replace the circuit it reads, --force or not.
    let circuit = export(&t.join("orig"), &t.join("kept"));
    let edges = t.join("kept/network/edges.h5");
    let before = std::fs::read(&edges).expect("edges");
    snn_build([
        p(&circuit),
        p(Path::new("-o")),
        p(&t.join("kept/network")),
        p(Path::new("--force")),
    ])
    .expect_clean_error("output over the input", &["would replace the input"]);
    assert!(std::fs::read(&edges).expect("edges") == before);
    refused(
        t,
        "scaled",
        |_| {},
        &["circuit_config.json", "sonata_edges", "cannot be scaled"],
        &["--set", "scale.neurons=0.5"],
    );
}

/// `nsyns`, the synapses an edge stands for, multiplies its weight (BMTK's
/// point networks: one connection of weight `nsyns * syn_weight`).
#[test]
fn nsyns_multiplies_the_weight() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let orig = t.join("orig");
    build(&fixture("sim_small.toml"), &orig, 1, &[]);
    let circuit = export(&orig, &t.join("circuit"));
    let nsyns = |e: usize| (e % 3) as u8 + 1;
    let n = {
        let f = hdf5::File::open_rw(t.join("circuit/network/edges.h5")).expect("edges");
        let g = f.group("edges/E_to_I/0").expect("group");
        let n = g.dataset("syn_weight").expect("w").size();
        let v: Vec<u8> = (0..n).map(nsyns).collect();
        g.new_dataset_builder()
            .with_data(&v[..])
            .create("nsyns")
            .expect("nsyns");
        n
    };
    let net = t.join("net");
    build(&circuit, &net, 2, &[]);
    // Edge e of E_to_I, in the file: its source, target, weight, nsyns.
    let f = hdf5::File::open(t.join("circuit/network/edges.h5")).expect("edges");
    let read = |d: &str| {
        f.dataset(&format!("edges/E_to_I/{d}"))
            .expect(d)
            .read_raw::<f64>()
            .expect(d)
    };
    let (src, tgt, w) = (
        read("source_node_id"),
        read("target_node_id"),
        read("0/syn_weight"),
    );
    // Stored in fixed point: a multiple of 2^-frac pA, rounded.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let frac = manifest["weight_frac_bits"].as_i64().expect("frac bits") as i32;
    let scale = 2f64.powi(frac);
    let mut want: Vec<(u64, u64, u64)> = (0..n)
        .map(|e| {
            let weight = (w[e] * nsyns(e) as f64 * scale).round() / scale;
            (src[e] as u64, 240 + tgt[e] as u64, weight.to_bits())
        })
        .collect();
    want.sort();
    let mut got: Vec<(u64, u64, u64)> = between(&synapses(&net), 0..240, 240..300)
        .into_iter()
        .map(|(s, t, w, _)| (s, t, w.parse::<f64>().expect("w").to_bits()))
        .collect();
    got.sort();
    assert_eq!(want.len(), got.len());
    assert!(want == got, "weights are not nsyns * syn_weight");
}

/// A network built by BMTK's own `NetworkBuilder`
/// (`tests/reference/bmtk_network.py`, BMTK 1.2 in `.venv-sonata`): its
/// files, edge types with `syn_weight` and `delay`, per-edge `nsyns` and
/// `V_m` in the dynamics parameters, imported on 2 ranks: every synapse as
/// BMTK's PointNet would connect it (read back by the script with h5py and
/// pandas), and the neurons' parameters and initial V_m. Skipped with a
/// note where BMTK is missing, except in CI (or with
/// `SNN_REQUIRE_SONATA=1`).
#[test]
fn bmtk_built_network_imports() {
    let Some(py) = support::python_with(".venv-sonata", "bmtk.builder", "SNN_REQUIRE_SONATA")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let circuit = tmp.path().join("bmtk");
    run(Command::new(&py)
        .arg(support::repo().join("tests/reference/bmtk_network.py"))
        .arg(&circuit))
    .expect_ok("bmtk_network.py");
    let net = tmp.path().join("net");
    build(&circuit.join("circuit_config.json"), &net, 2, &[]);
    let key = |s: &str, t: &str, w: &str, d: &str| -> (u64, u64, u64, i64) {
        (
            s.parse().expect("source"),
            t.parse().expect("target"),
            w.parse::<f64>().expect("weight").to_bits(),
            (d.parse::<f64>().expect("delay") / 0.1).round() as i64,
        )
    };
    let parse = |lines: Vec<String>| {
        let mut v: Vec<_> = lines
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                key(f[0], f[1], f[2], f[3])
            })
            .collect();
        v.sort();
        v
    };
    let expected = std::fs::read_to_string(circuit.join("expected.csv")).expect("expected.csv");
    let want = parse(expected.lines().skip(1).map(str::to_string).collect());
    let got = parse(synapses(&net));
    assert!(want.len() > 4000, "{} edges", want.len());
    assert_eq!(want.len(), got.len());
    assert!(want == got, "the synapses differ from BMTK's edges");
    // Weights nsyns * syn_weight: some edges stand for 2 synapses.
    assert!(got.iter().any(|e| f64::from_bits(e.2) == 40.0));

    let i = info(&net);
    let pops = i["populations"].as_array().expect("populations");
    assert_eq!(pops[0]["name"], "cortex");
    assert_eq!(pops[0]["model"], "iaf_psc_exp");
    assert_eq!(pops[0]["V_m_init"], -60.0);
    assert_eq!(pops[0]["params"]["I_e"], 380.0);
    assert_eq!(pops[0]["params"]["tau_syn_ex"], 0.5);
    assert_eq!(pops[1]["name"], "inh");
    assert_eq!(pops[1]["model"], "iaf_psc_alpha");
    assert_eq!(pops[1]["V_m_init"], -65.0);
    assert_eq!(pops[1]["params"]["I_e"], 390.0);
}
