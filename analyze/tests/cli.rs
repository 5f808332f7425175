//! End-to-end tests of the `snn-analyze` binary on synthetic run directories
//! (spike files written with `SpikeWriter`, a `summary.json`): the values in
//! `stats.json`/`stats.csv`, valid PNGs, `--force`, `compare` of a run with
//! itself, and bad input (one-line error naming the file, exit code 1).
//!
//! The binary belongs to the root package; it is used from the target
//! directory when it is newer than the sources it is built from, and built
//! with `cargo build -p snn --bin snn-analyze` otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

use snn_analysis::sampling::SplitMix64;
use snn_formats::sonata::SpikeWriter;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Newest modification time of the files under `p`.
fn newest(p: &Path) -> Option<SystemTime> {
    let md = std::fs::metadata(p).ok()?;
    if md.is_file() {
        return md.modified().ok();
    }
    let mut best = None;
    for e in std::fs::read_dir(p).ok()?.flatten() {
        if let Some(t) = newest(&e.path()) {
            best = best.max(Some(t));
        }
    }
    best
}

/// The `snn-analyze` binary of this build profile, rebuilt if stale.
fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap().to_path_buf();
        let profile = profile_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let bin = profile_dir.join(format!("snn-analyze{}", std::env::consts::EXE_SUFFIX));
        let root = workspace_root();
        let sources = [
            "analyze/src",
            "formats/src",
            "src/bin/snn-analyze.rs",
            "Cargo.toml",
            "Cargo.lock",
        ]
        .iter()
        .filter_map(|s| newest(&root.join(s)))
        .max();
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_none() || built < sources {
            let cargo = option_env!("CARGO").unwrap_or("cargo");
            let cargo_profile = if profile == "debug" {
                "dev".to_string()
            } else {
                profile
            };
            let out = Command::new(cargo)
                .args([
                    "build",
                    "-p",
                    "snn",
                    "--bin",
                    "snn-analyze",
                    "--profile",
                    &cargo_profile,
                ])
                .env("CARGO_TARGET_DIR", &target_dir)
                .current_dir(&root)
                .output()
                .expect("run cargo");
            assert!(
                out.status.success(),
                "building snn-analyze failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(bin.exists(), "{} missing", bin.display());
        bin
    })
}

fn analyze(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(bin());
    for a in args {
        c.arg(a);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 1 and exactly one line `snn-analyze: error: ...` containing
/// every string of `needles`.
fn assert_error(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {e}");
    assert_eq!(e.lines().count(), 1, "not one line: {e}");
    assert!(e.starts_with("snn-analyze: error: "), "{e}");
    for n in needles {
        assert!(e.contains(n), "{e:?} lacks {n:?}");
    }
    assert!(!e.contains("panicked"), "{e}");
}

const T_STOP: f64 = 1000.0;
const E_SIZE: u64 = 40;
const I_SIZE: u64 = 10;

/// A run with 2 ranks: population E (40 neurons, Poisson 10 Hz), I (10
/// neurons, regular 20 Hz), neurons dealt round-robin to the ranks. Returns
/// the spike times per population and neuron.
fn make_run(dir: &Path) -> Vec<Vec<Vec<f64>>> {
    make_run_shifted(dir, None)
}

/// [`make_run`], with the last spike of E neuron `shift` (if given) moved
/// 0.1 ms later.
fn make_run_shifted(dir: &Path, shift: Option<usize>) -> Vec<Vec<Vec<f64>>> {
    std::fs::create_dir_all(dir).unwrap();
    let pops = vec!["E".to_string(), "I".to_string()];
    let mut rng = SplitMix64::new(77);
    let mut e_trains = Vec::new();
    for _ in 0..E_SIZE {
        let mut t = 0.0;
        let mut tr = Vec::new();
        loop {
            t += -(1.0 - rng.next_f64()).ln() * 100.0;
            // On the 0.1 ms grid, like the simulator's output.
            let tg = (t * 10.0).round() / 10.0;
            if tg >= T_STOP {
                break;
            }
            if tr.last() != Some(&tg) {
                tr.push(tg);
            }
        }
        e_trains.push(tr);
    }
    if let Some(i) = shift {
        let last = e_trains[i].last_mut().expect("a spike");
        *last = ((*last * 10.0).round() + 1.0) / 10.0;
    }
    let i_trains: Vec<Vec<f64>> = (0..I_SIZE)
        .map(|i| (0..20).map(|k| 1.0 + i as f64 + 50.0 * k as f64).collect())
        .collect();
    let all = vec![e_trains, i_trains];
    for rank in 0..2u64 {
        let path = dir.join(format!("spikes-rank-{rank:05}.h5"));
        let mut w = SpikeWriter::create(&path, &pops).unwrap();
        // Time-sorted per population, as the simulator writes.
        for (p, trains) in all.iter().enumerate() {
            let mut spikes: Vec<(f64, u64)> = trains
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as u64 % 2 == rank)
                .flat_map(|(i, tr)| tr.iter().map(move |&t| (t, i as u64)))
                .collect();
            spikes.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (t, i) in spikes {
                w.push(p, i, t);
            }
        }
        w.close().unwrap();
    }
    let summary = serde_json::json!({
        "populations": [
            {"name": "E", "size": E_SIZE, "first_id": 0},
            {"name": "I", "size": I_SIZE, "first_id": E_SIZE},
        ],
        "t_start_ms": 0.0,
        "t_stop_ms": T_STOP,
        "dt_ms": 0.1,
        "n_ranks": 2,
        "spike_files": ["spikes-rank-00000.h5", "spikes-rank-00001.h5"],
        "steps": 10000,
        "wall_time_s": {"load": 0.1, "sim": 1.0},
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .unwrap();
    all
}

fn is_png(p: &Path) -> bool {
    let b = std::fs::read(p).unwrap_or_default();
    b.len() > 100 && b.starts_with(b"\x89PNG\r\n\x1a\n") && b[b.len() - 8..] == *b"IEND\xaeB`\x82"
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn analyze_writes_stats_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let trains = make_run(&run);
    let report = tmp.path().join("report");
    let o = analyze(&[&run, &"-o", &report, &"--t-start", &"200", &"--seed", &"5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("population") && stdout.contains("wrote"),
        "{stdout}"
    );

    let s = read_json(&report.join("stats.json"));
    assert_eq!(s["t_start_ms"], 200.0);
    assert_eq!(s["t_stop_ms"], T_STOP);
    assert_eq!(s["bin_ms"], 10.0);
    assert_eq!(s["spike_files"], 2);
    let pops = s["populations"].as_array().unwrap();
    assert_eq!(pops.len(), 2);
    let (e, i) = (&pops[0], &pops[1]);
    assert_eq!(e["name"], "E");
    assert_eq!(e["neurons"], E_SIZE);
    let e_spikes: usize = trains[0]
        .iter()
        .map(|t| t.iter().filter(|&&x| x >= 200.0).count())
        .sum();
    assert_eq!(e["spikes"], e_spikes as u64);
    let rate = e["rate_mean_hz"].as_f64().unwrap();
    assert!(
        (rate - e_spikes as f64 / (E_SIZE as f64 * 0.8)).abs() < 1e-9,
        "{rate}"
    );
    assert!((rate - 10.0).abs() < 2.0, "{rate}");
    let cv = e["cv_isi_mean"].as_f64().unwrap();
    assert!((cv - 1.0).abs() < 0.3, "{cv}");
    assert!(e["fano_factor"].as_f64().is_some());
    assert!(e["correlation_mean"].as_f64().unwrap().abs() < 0.05);
    assert_eq!(e["pairs_sampled"], 200);
    // I: regular 20 Hz, 16 spikes each in [200, 1000).
    assert_eq!(i["name"], "I");
    assert_eq!(i["spikes"], 16 * I_SIZE);
    assert_eq!(i["rate_mean_hz"], 20.0);
    assert_eq!(i["rate_sd_hz"], 0.0);
    assert_eq!(i["cv_isi_mean"], 0.0);
    assert_eq!(i["cv_isi_neurons"], I_SIZE);
    assert_eq!(i["pairs_sampled"], 45);

    let csv = std::fs::read_to_string(report.join("stats.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("population,neurons,spikes,"));
    assert!(
        lines[2].starts_with(&format!("I,{I_SIZE},{},0,20,0,0,{I_SIZE},", 16 * I_SIZE)),
        "{}",
        lines[2]
    );
    for png in ["raster.png", "rates.png", "cv.png"] {
        assert!(is_png(&report.join(png)), "{png} is not a PNG");
    }

    // Same seed, same numbers (deterministic sampling).
    let report2 = tmp.path().join("report2");
    let o = analyze(&[&run, &"-o", &report2, &"--t-start", &"200", &"--seed", &"5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_json(&report2.join("stats.json"))["populations"],
        s["populations"]
    );

    // An existing report directory is refused without --force, untouched.
    let before = std::fs::read(report.join("stats.json")).unwrap();
    let o = analyze(&[&run, &"-o", &report, &"--t-start", &"0"]);
    assert_error(&o, &["report", "--force"]);
    assert_eq!(std::fs::read(report.join("stats.json")).unwrap(), before);
    let o = analyze(&[&run, &"-o", &report, &"--t-start", &"0", &"--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_json(&report.join("stats.json"))["t_start_ms"], 0.0);
    // No staging leftovers.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("staging")), "{names:?}");

    // The run directory itself is never a report directory, even with --force.
    let o = analyze(&[&run, &"-o", &run, &"--force"]);
    assert_error(&o, &["run directory"]);
    assert!(run.join("summary.json").exists() && run.join("spikes-rank-00000.h5").exists());

    // Windows outside the run are refused.
    let o = analyze(&[&run, &"-o", &tmp.path().join("r3"), &"--t-stop", &"2000"]);
    assert_error(&o, &["--t-stop", "summary.json"]);
    let o = analyze(&[&run, &"-o", &tmp.path().join("r3"), &"--t-start", &"1000"]);
    assert_error(&o, &["empty analysis window"]);
    let o = analyze(&[&run, &"-o", &tmp.path().join("r3"), &"--bin-ms", &"0"]);
    assert_error(&o, &["--bin-ms"]);
    assert!(!tmp.path().join("r3").exists());
}

#[test]
fn compare_of_a_run_with_itself_is_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    make_run(&run);
    let o = analyze(&[&"compare", &run, &run, &"--json", &"--t-start", &"100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pops = c["populations"].as_array().unwrap();
    assert_eq!(pops.len(), 2);
    for p in pops {
        for k in [
            "rate_mean_diff",
            "cv_isi_mean_diff",
            "correlation_mean_diff",
            "emd_rate",
            "emd_cv_isi",
            "emd_correlation",
        ] {
            assert_eq!(p[k], 0.0, "{k} of {}", p["name"]);
        }
    }
    // The table form.
    let o = analyze(&[&"compare", &run, &run]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("emd_rate") && t.lines().any(|l| l.starts_with("E ")),
        "{t}"
    );

    // A different run: nonzero distance; A's order and B - A signs.
    let other = tmp.path().join("other");
    make_run(&other);
    let summary = other.join("summary.json");
    // Same spikes, but a window twice as long: rates halve.
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    s["t_stop_ms"] = serde_json::json!(2000.0);
    std::fs::write(&summary, s.to_string()).unwrap();
    let o = analyze(&[&"compare", &run, &other, &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let i = &c["populations"][1];
    assert_eq!(i["name"], "I");
    assert_eq!(i["rate_mean_a"], 20.0);
    assert_eq!(i["rate_mean_b"], 10.0);
    assert_eq!(i["rate_mean_diff"], -10.0);
    assert_eq!(i["emd_rate"], 10.0);
    // The same spikes (only the window differs): identical.
    assert_eq!(c["identical"], true, "{c}");
}

/// `compare` says whether two runs' spikes are identical bit for bit, and
/// where the first difference is.
#[test]
fn compare_reports_identity_and_the_first_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    make_run(&a);
    make_run_shifted(&b, Some(7));
    let o = analyze(&[&"compare", &a, &a, &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["identical"], true);
    assert!(c["first_difference"].is_null());
    let o = analyze(&[&"compare", &a, &b, &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["identical"], false);
    let d = c["first_difference"].as_str().unwrap();
    assert!(d.starts_with("E neuron 7: spike "), "{d}");
    let o = analyze(&[&"compare", &a, &b]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("spikes: differ; first difference: E neuron 7"),
        "{t}"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");

    let missing = tmp.path().join("no-such-run");
    let o = analyze(&[&missing, &"-o", &out]);
    assert_error(&o, &["no-such-run", "does not exist"]);

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = analyze(&[&empty, &"-o", &out]);
    assert_error(&o, &["summary.json", "missing"]);

    let run = tmp.path().join("run");
    make_run(&run);
    // Corrupt spike file.
    let bad = tmp.path().join("bad");
    make_run(&bad);
    std::fs::write(bad.join("spikes-rank-00001.h5"), b"this is not HDF5 at all").unwrap();
    let o = analyze(&[&bad, &"-o", &out]);
    assert_error(&o, &["spikes-rank-00001.h5", "not an HDF5 file"]);
    let o = analyze(&[&"compare", &run, &bad]);
    assert_error(&o, &["spikes-rank-00001.h5"]);

    // Truncated spike file.
    let trunc = tmp.path().join("trunc");
    make_run(&trunc);
    let f = trunc.join("spikes-rank-00000.h5");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 3]).unwrap();
    let o = analyze(&[&trunc, &"-o", &out]);
    assert_error(&o, &["spikes-rank-00000.h5"]);

    // A listed spike file is missing.
    let gone = tmp.path().join("gone");
    make_run(&gone);
    std::fs::remove_file(gone.join("spikes-rank-00001.h5")).unwrap();
    let o = analyze(&[&gone, &"-o", &out]);
    assert_error(&o, &["spikes-rank-00001.h5", "missing"]);

    // Malformed summary.json: bad JSON, wrong field type, unknown population.
    let js = tmp.path().join("js");
    make_run(&js);
    std::fs::write(js.join("summary.json"), "{\"populations\": [").unwrap();
    let o = analyze(&[&js, &"-o", &out]);
    assert_error(&o, &["summary.json"]);
    std::fs::write(
        js.join("summary.json"),
        r#"{"populations": [{"name": "E", "size": -3}], "t_stop_ms": 1000}"#,
    )
    .unwrap();
    let o = analyze(&[&js, &"-o", &out]);
    assert_error(&o, &["summary.json", "populations[0].size"]);
    std::fs::write(
        js.join("summary.json"),
        r#"{"populations": [{"name": "E", "size": 40}], "t_stop_ms": 1000, "n_ranks": 2}"#,
    )
    .unwrap();
    let o = analyze(&[&js, &"-o", &out]);
    assert_error(
        &o,
        &["spikes-rank-00000.h5", "/spikes/I", "not in summary.json"],
    );
    // Node id beyond the population size.
    std::fs::write(
        js.join("summary.json"),
        r#"{"populations": [{"name": "E", "size": 3}, {"name": "I", "size": 10}], "t_stop_ms": 1000}"#,
    )
    .unwrap();
    let o = analyze(&[&js, &"-o", &out]);
    assert_error(&o, &["/spikes/E/node_ids", "population size 3"]);

    // Nothing was created for any of these.
    assert!(!out.exists());
}
