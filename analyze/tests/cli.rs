//! End-to-end tests of the `snn-analyze` binary on synthetic run directories
//! (spike files written with `SpikeWriter`, a `summary.json`): the values in
//! `stats.json`/`stats.csv`, valid PNGs, `--force`, `compare` of a run with
//! itself, bad input (one-line error naming the file, exit status 2), and the
//! per-area outputs of runs with areas (numbers recomputed here from the
//! spikes written; none for runs without areas).
//!
//! The binary belongs to the root package; it is used from the target
//! directory when it is newer than the sources it is built from, and built
//! with `cargo build -p snn --bin snn-analyze` otherwise.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
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
            let _files = file_lock();
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

/// Held while a test writes spike files and while it starts a process: a
/// process started meanwhile would inherit the open file (HDF5 does not
/// open it close-on-exec) with its lock, and another test's `snn-analyze`
/// could not open the file ("unable to lock file") until it ended.
fn file_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn analyze(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(bin());
    for a in args {
        c.arg(a);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = {
        let _files = file_lock();
        c.spawn().unwrap()
    };
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status 2 and exactly one line `snn-analyze: error: ...` containing
/// every string of `needles`.
fn assert_error(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
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
    let _files = file_lock();
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
                w.push(p, i, t).unwrap();
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
    // Every I neuron has 16 spikes: no spread over neurons. Per 50 ms cycle
    // the five 10 ms bins from 200 ms hold 9 (neurons 0-8, at +1..+9 ms),
    // 1 (neuron 9, at +10 ms), 0, 0, 0 spikes: mean 2, var 82/5 - 4 = 12.4,
    // population Fano factor 6.2.
    assert_eq!(i["fano_factor"], 0.0);
    let fp = i["fano_population"].as_f64().unwrap();
    assert!((fp - 6.2).abs() < 1e-12, "{fp}");
    // Every sampled pair with a defined correlation is listed.
    let pairs = std::fs::read_to_string(report.join("correlations.csv")).unwrap();
    let mut rows = pairs.lines();
    assert_eq!(
        rows.next(),
        Some("population,neuron_a,neuron_b,correlation")
    );
    let rows: Vec<&str> = rows.collect();
    let listed = |pop: &str| {
        rows.iter()
            .filter(|r| r.starts_with(&format!("{pop},")))
            .count()
    };
    assert_eq!(listed("E") as u64, e["correlation_pairs"].as_u64().unwrap());
    assert_eq!(listed("I") as u64, i["correlation_pairs"].as_u64().unwrap());

    let csv = std::fs::read_to_string(report.join("stats.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("population,neurons,spikes,"));
    assert!(
        lines[2].starts_with(&format!("I,{I_SIZE},{},0,20,0,0,{I_SIZE},", 16 * I_SIZE)),
        "{}",
        lines[2]
    );
    for png in [
        "raster.png",
        "rates.png",
        "rates_boxplot.png",
        "cv.png",
        "correlations.png",
        "psth.png",
        "spectrum.png",
    ] {
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
/// where the first difference is; it exits with status 1 when they differ
/// (0 with `--report-only`), like `cmp`.
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
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["identical"], false);
    let d = c["first_difference"].as_str().unwrap();
    assert!(d.starts_with("E neuron 7: spike "), "{d}");
    let o = analyze(&[&"compare", &a, &b]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("spikes: differ; first difference: E neuron 7"),
        "{t}"
    );
    // --report-only: the same report, status 0.
    let r = analyze(&[&"compare", &a, &b, &"--report-only"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(r.stdout, o.stdout);
}

/// With tolerances (`--rate-rtol` ...), `compare`'s verdict is whether the
/// statistics agree within them: runs whose rates differ by a factor of 2
/// (the same spikes over a window twice as long; I: 20 Hz against 10 Hz)
/// pass `--rate-rtol 0.5` and fail `--rate-rtol 0.4`, which names each
/// population beyond it; EMD limits likewise; a bad tolerance is a usage
/// error.
#[test]
fn compare_with_tolerances() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    make_run(&a);
    make_run(&b);
    let summary = b.join("summary.json");
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    s["t_stop_ms"] = serde_json::json!(2000.0);
    std::fs::write(&summary, s.to_string()).unwrap();
    let o = analyze(&[&"compare", &a, &b, &"--rate-rtol", &"0.5", &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["beyond_tolerance"], serde_json::json!([]), "{c}");
    let o = analyze(&[&"compare", &a, &b, &"--rate-rtol", &"0.4"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    for pop in ["E", "I"] {
        assert!(
            t.contains(&format!(
                "beyond tolerance: {pop}: mean rate (Hz) differs by"
            )),
            "{t}"
        );
    }
    assert!(
        t.contains("(A 20.000000, B 10.000000; allowed 8.000000)"),
        "{t}"
    );
    // The EMD of I's rates is 10 Hz.
    let o = analyze(&[&"compare", &a, &b, &"--emd-rate-max", &"10"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = analyze(&[&"compare", &a, &b, &"--emd-rate-max", &"9.99", &"--json"]);
    assert_eq!(o.status.code(), Some(1));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let v = c["beyond_tolerance"].as_array().unwrap();
    assert!(
        v.iter().any(|l| l
            .as_str()
            .unwrap()
            .starts_with("I: EMD of rates (Hz) is 10.000000")),
        "{c}"
    );
    // --report-only: reported, status 0.
    let o = analyze(&[&"compare", &a, &b, &"--rate-rtol", &"0.4", &"--report-only"]);
    assert!(o.status.success());
    // Without tolerances the verdict is spike identity (identical here).
    let o = analyze(&[&"compare", &a, &b]);
    assert!(o.status.success());
    let o = analyze(&[&"compare", &a, &b, &"--cv-atol", &"-1"]);
    assert_error(&o, &["--cv-atol", ">= 0"]);
}

/// Writes `trains` (per population, per neuron) as NEST 3.10 spike
/// recorder ASCII output into `dir` (two files, as two virtual processes
/// write them; NEST node ids from 1) with the `summary.json` a NEST user
/// writes (populations with `first_id`, the window).
fn make_nest_run(dir: &Path, trains: &[Vec<Vec<f64>>], first_ids: [u64; 2]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut files = [String::new(), String::new()];
    for f in &mut files {
        *f += "# NEST version: 3.10.0\n# RecordingBackendASCII version: 2\nsender\ttime_ms\n";
    }
    for (p, pop) in trains.iter().enumerate() {
        for (i, tr) in pop.iter().enumerate() {
            for t in tr {
                files[i % 2] += &format!("{}\t{t:.3}\n", first_ids[p] + i as u64);
            }
        }
    }
    for (k, text) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("spike_recorder-20-{k}.dat")), text).unwrap();
    }
    let summary = serde_json::json!({
        "populations": [
            {"name": "E", "size": E_SIZE, "first_id": first_ids[0]},
            {"name": "I", "size": I_SIZE, "first_id": first_ids[1]},
        ],
        "t_start_ms": 0.0,
        "t_stop_ms": T_STOP,
    });
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
}

/// NEST's ASCII spike recorder output, with a `summary.json` that maps its
/// node ids to populations, is a run `snn-analyze` reads: analysed, and
/// compared with the snn run of the same spikes (identical, every
/// statistic equal); a missing `first_id` or a sender outside the map is
/// a one-line error naming the file.
#[test]
fn nest_ascii_output_is_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (snn, nest) = (tmp.path().join("snn"), tmp.path().join("nest"));
    let trains = make_run(&snn);
    make_nest_run(&nest, &trains, [1, 1 + E_SIZE]);
    let o = analyze(&[&"compare", &snn, &nest, &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["identical"], true, "{c}");
    for p in c["populations"].as_array().unwrap() {
        assert_eq!(p["rate_mean_diff"], 0.0);
        assert_eq!(p["emd_rate"], 0.0);
    }
    let report = tmp.path().join("report");
    let o = analyze(&[&nest, &"-o", &report]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(report.join("stats.json").is_file());
    // A map that leaves a sender out.
    let bad = tmp.path().join("bad");
    make_nest_run(&bad, &trains, [1, 1 + E_SIZE]);
    let s = bad.join("summary.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s).unwrap()).unwrap();
    v["populations"][1]["first_id"] = serde_json::json!(2 + E_SIZE);
    std::fs::write(&s, v.to_string()).unwrap();
    let o = analyze(&[&"compare", &snn, &bad]);
    assert_error(
        &o,
        &["spike_recorder-20-", ".dat", "sender in no population"],
    );
    // No first_id.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s).unwrap()).unwrap();
    v["populations"][1]
        .as_object_mut()
        .unwrap()
        .remove("first_id");
    std::fs::write(&s, v.to_string()).unwrap();
    let o = analyze(&[&bad, &"-o", &tmp.path().join("r2")]);
    assert_error(&o, &["summary.json", "populations[1].first_id"]);

    // The recorder's events saved by numpy.savez: the same run.
    let npz = tmp.path().join("npz");
    make_nest_run(&npz, &trains, [1, 1 + E_SIZE]);
    let (mut senders, mut times) = (Vec::new(), Vec::new());
    for (p, pop) in trains.iter().enumerate() {
        for (i, tr) in pop.iter().enumerate() {
            for &t in tr {
                senders.push(1 + p as u64 * E_SIZE + i as u64);
                times.push(t);
            }
        }
    }
    for k in 0..2 {
        std::fs::remove_file(npz.join(format!("spike_recorder-20-{k}.dat"))).unwrap();
    }
    write_npz(&npz.join("events.npz"), &senders, &times);
    let o = analyze(&[&"compare", &snn, &npz, &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["identical"], true, "{c}");
    // An archive without `times`.
    let broken = tmp.path().join("broken");
    make_nest_run(&broken, &trains, [1, 1 + E_SIZE]);
    for k in 0..2 {
        std::fs::remove_file(broken.join(format!("spike_recorder-20-{k}.dat"))).unwrap();
    }
    let f = std::fs::File::create(broken.join("events.npz")).unwrap();
    let mut z = zip::ZipWriter::new(f);
    z.start_file("senders.npy", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(
        &mut z,
        &npy(
            "<i8",
            &senders
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect::<Vec<u8>>(),
            senders.len(),
        ),
    )
    .unwrap();
    z.finish().unwrap();
    let o = analyze(&[&broken, &"-o", &tmp.path().join("r3")]);
    assert_error(&o, &["events.npz", "no array times"]);
}

/// A `.npy` file (version 1.0) of a 1-D array.
fn npy(descr: &str, data: &[u8], n: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({n},), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// An `.npz` as `numpy.savez(path, senders=..., times=...)` writes it
/// (deflated here, as `savez_compressed`).
fn write_npz(path: &Path, senders: &[u64], times: &[f64]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    z.start_file("senders.npy", opts).unwrap();
    let s: Vec<u8> = senders
        .iter()
        .flat_map(|v| (*v as i64).to_le_bytes())
        .collect();
    std::io::Write::write_all(&mut z, &npy("<i8", &s, senders.len())).unwrap();
    z.start_file("times.npy", opts).unwrap();
    let t: Vec<u8> = times.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::io::Write::write_all(&mut z, &npy("<f8", &t, times.len())).unwrap();
    z.finish().unwrap();
}

/// `--svg`: every plot of the report also as SVG, with its text (title
/// naming the run, axis labels with units) as SVG text.
#[test]
fn plots_as_svg_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("myrun");
    make_run(&run);
    let report = tmp.path().join("report");
    let o = analyze(&[&run, &"-o", &report, &"--svg"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Text needs a font (CI installs DejaVu; without one plots have none).
    let text = snn_analysis::plots::init_font().is_some();
    for name in [
        "raster",
        "rates",
        "rates_boxplot",
        "cv",
        "correlations",
        "psth",
        "spectrum",
    ] {
        assert!(is_png(&report.join(format!("{name}.png"))), "{name}.png");
        let svg = std::fs::read_to_string(report.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}.svg"
        );
        assert!(
            !text || svg.contains("myrun"),
            "{name}.svg: no title naming the run"
        );
    }
    if text {
        let raster = std::fs::read_to_string(report.join("raster.svg")).unwrap();
        assert!(raster.contains("time (ms)") && raster.contains("neuron id"));
        let spectrum = std::fs::read_to_string(report.join("spectrum.svg")).unwrap();
        assert!(spectrum.contains("frequency (Hz)"));
    }
    // Without --svg, PNG only.
    let png_only = tmp.path().join("png");
    let o = analyze(&[&run, &"-o", &png_only]);
    assert!(o.status.success());
    assert!(!png_only.join("raster.svg").exists());
}

/// `--svg` on a run with areas: the area plots as SVG too.
#[test]
fn area_plots_as_svg_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let areas: [(&str, &[&str]); 2] = [("V1", &["23E", "23I"]), ("TH", &["23E"])];
    make_area_run(&run, &areas);
    let report = tmp.path().join("report");
    let o = analyze(&[&run, &"-o", &report, &"--svg"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in [
        "rates_by_area",
        "raster_areas",
        "rasters/V1",
        "rasters/TH",
        "raster",
    ] {
        let svg = std::fs::read_to_string(report.join(format!("{name}.svg")))
            .unwrap_or_else(|e| panic!("{name}.svg: {e}"));
        assert!(svg.contains("<svg"), "{name}.svg");
        assert!(is_png(&report.join(format!("{name}.png"))), "{name}.png");
    }
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("rasters/*.png (2 files)") && out.contains("rasters/*.svg (2 files)"),
        "{out}"
    );
}

/// A SONATA spike file written by another tool (BMTK's layout: one group
/// per population under `/spikes` with `node_ids` and `timestamps`, a
/// string `sorting` attribute, no `magic`), listed in a `summary.json` that
/// gives the populations' sizes, is a run: its statistics are those of the
/// same spikes in snn's own files.
#[test]
fn spike_files_of_other_tools_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (snn, bmtk) = (tmp.path().join("snn"), tmp.path().join("bmtk"));
    let trains = make_run(&snn);
    std::fs::create_dir_all(&bmtk).unwrap();
    {
        let _files = file_lock();
        let f = hdf5::File::create(bmtk.join("spikes.h5")).unwrap();
        for (p, name) in ["E", "I"].iter().enumerate() {
            let g = f.create_group(&format!("spikes/{name}")).unwrap();
            let v: hdf5::types::VarLenUnicode = "by_time".parse().unwrap();
            g.new_attr::<hdf5::types::VarLenUnicode>()
                .shape(())
                .create("sorting")
                .unwrap()
                .write_scalar(&v)
                .unwrap();
            let mut spikes: Vec<(f64, u64)> = trains[p]
                .iter()
                .enumerate()
                .flat_map(|(i, tr)| tr.iter().map(move |&t| (t, i as u64)))
                .collect();
            spikes.sort_by(|a, b| a.0.total_cmp(&b.0));
            let ids: Vec<u64> = spikes.iter().map(|s| s.1).collect();
            let ts: Vec<f64> = spikes.iter().map(|s| s.0).collect();
            g.new_dataset_builder()
                .with_data(&ids)
                .create("node_ids")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&ts)
                .create("timestamps")
                .unwrap();
        }
    }
    let summary = serde_json::json!({
        "populations": [{"name": "E", "size": E_SIZE}, {"name": "I", "size": I_SIZE}],
        "t_start_ms": 0.0,
        "t_stop_ms": T_STOP,
        "spike_files": ["spikes.h5"],
    });
    std::fs::write(bmtk.join("summary.json"), summary.to_string()).unwrap();
    let o = analyze(&[&"compare", &snn, &bmtk, &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["identical"], true, "{c}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
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
    // A negative node id in signed ids (as BMTK writes them): refused, not
    // clipped to 0 by HDF5's conversion.
    let neg = tmp.path().join("neg");
    std::fs::create_dir_all(&neg).unwrap();
    {
        let _files = file_lock();
        let f = hdf5::File::create(neg.join("spikes.h5")).unwrap();
        let g = f.create_group("spikes/E").unwrap();
        g.new_dataset_builder()
            .with_data(&[2i64, -1, 0][..])
            .create("node_ids")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&[1.0f64, 2.0, 3.0][..])
            .create("timestamps")
            .unwrap();
    }
    std::fs::write(
        neg.join("summary.json"),
        r#"{"populations": [{"name": "E", "size": 3}], "t_stop_ms": 10, "spike_files": ["spikes.h5"]}"#,
    )
    .unwrap();
    let o = analyze(&[&neg, &"-o", &out]);
    assert_error(
        &o,
        &["spikes.h5", "/spikes/E/node_ids", "negative node id -1"],
    );

    // Nothing was created for any of these.
    assert!(!out.exists());
}

/// A population of [`make_area_run`]: its name, area and spike trains.
struct AreaPop {
    name: String,
    area: String,
    trains: Vec<Vec<f64>>,
}

const AREA_T_STOP: f64 = 500.0;

/// A run (one rank, [0, 500) ms) of a model with areas: population `k`
/// (counted over all areas) is `AREA_POP` with `3 + 2 (k % 7)` neurons,
/// Poisson at `4 + 6 (k % 5)` Hz on the 0.1 ms grid.
fn make_area_run(dir: &Path, areas: &[(&str, &[&str])]) -> Vec<AreaPop> {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = SplitMix64::new(2026);
    let mut pops = Vec::new();
    for (area, names) in areas {
        for pop in *names {
            let k = pops.len();
            let (size, rate_hz) = (3 + 2 * (k % 7), 4.0 + 6.0 * (k % 5) as f64);
            let trains = (0..size)
                .map(|_| {
                    let (mut t, mut tr) = (0.0, Vec::new());
                    loop {
                        t += -(1.0 - rng.next_f64()).ln() * 1000.0 / rate_hz;
                        let tg = (t * 10.0f64).round() / 10.0;
                        if tg >= AREA_T_STOP {
                            return tr;
                        }
                        if tr.last() != Some(&tg) {
                            tr.push(tg);
                        }
                    }
                })
                .collect();
            pops.push(AreaPop {
                name: format!("{area}_{pop}"),
                area: area.to_string(),
                trains,
            });
        }
    }
    let names: Vec<String> = pops.iter().map(|p| p.name.clone()).collect();
    let path = dir.join("spikes-rank-00000.h5");
    let _files = file_lock();
    let mut w = SpikeWriter::create(&path, &names).unwrap();
    for (p, pop) in pops.iter().enumerate() {
        let mut spikes: Vec<(f64, u64)> = pop
            .trains
            .iter()
            .enumerate()
            .flat_map(|(i, tr)| tr.iter().map(move |&t| (t, i as u64)))
            .collect();
        spikes.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (t, i) in spikes {
            w.push(p, i, t).unwrap();
        }
    }
    w.close().unwrap();
    let entries: Vec<serde_json::Value> = pops
        .iter()
        .map(|p| serde_json::json!({"name": p.name, "area": p.area, "size": p.trains.len()}))
        .collect();
    let summary = serde_json::json!({
        "populations": entries,
        "t_start_ms": 0.0,
        "t_stop_ms": AREA_T_STOP,
        "dt_ms": 0.1,
        "n_ranks": 1,
    });
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    pops
}

/// Width and height of a PNG (from its IHDR chunk).
fn png_size(p: &Path) -> (u32, u32) {
    assert!(is_png(p), "{} is not a PNG", p.display());
    let b = std::fs::read(p).unwrap();
    let be = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Spikes in `[t_start, t_stop)` and neurons of the populations whose name
/// ends with `kind` (all of them if `kind` is empty).
fn count(pops: &[&AreaPop], kind: &str, t_start: f64) -> (u64, u64) {
    let sel = pops.iter().filter(|p| p.name.ends_with(kind));
    sel.fold((0, 0), |(s, n), p| {
        let spikes = p
            .trains
            .iter()
            .flatten()
            .filter(|&&t| t >= t_start && t < AREA_T_STOP)
            .count();
        (s + spikes as u64, n + p.trains.len() as u64)
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

/// Four areas (model order V1, 7a, TH, MT; TH lacks 4E and 4I, MT has no
/// E population): the area table in `stats.json`, `areas.csv` and on
/// stdout, the rate matrix and the rasters.
#[test]
fn areas_get_a_table_a_rate_matrix_and_rasters() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    const LAYERS: &[&str] = &["23E", "23I", "4E", "4I"];
    let areas: [(&str, &[&str]); 4] = [
        ("V1", LAYERS),
        ("7a", LAYERS),
        ("TH", &["23E", "23I", "5E"]),
        ("MT", &["4I"]),
    ];
    let pops = make_area_run(&run, &areas);
    let report = tmp.path().join("report");
    let o = analyze(&[&run, &"-o", &report, &"--t-start", &"100"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let t_s = (AREA_T_STOP - 100.0) / 1000.0;
    let rate = |(spikes, n): (u64, u64)| (n > 0).then(|| spikes as f64 / (n as f64 * t_s));
    let s = read_json(&report.join("stats.json"));
    assert_eq!(s["populations"].as_array().unwrap().len(), 12);
    let json_areas = s["areas"].as_array().unwrap();
    let csv = std::fs::read_to_string(report.join("areas.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "area,populations,n_neurons,spikes,rate_hz,rate_e_hz,rate_i_hz"
    );
    assert_eq!(json_areas.len(), 4);
    assert_eq!(lines.len(), 5);
    for (k, (area, names)) in areas.iter().enumerate() {
        let members: Vec<&AreaPop> = pops.iter().filter(|p| p.area == *area).collect();
        let (spikes, n) = count(&members, "", 100.0);
        let (all, e, i) = (
            rate((spikes, n)),
            rate(count(&members, "E", 100.0)),
            rate(count(&members, "I", 100.0)),
        );
        assert!(all.is_some() && i.is_some() && e.is_some() == (*area != "MT"));
        let a = &json_areas[k];
        assert_eq!(a["area"], *area);
        assert_eq!(a["populations"], names.len());
        assert_eq!(a["n_neurons"], n);
        assert_eq!(a["spikes"], spikes);
        for (key, want) in [("rate_hz", all), ("rate_e_hz", e), ("rate_i_hz", i)] {
            match want {
                Some(want) => {
                    let got = a[key].as_f64().unwrap();
                    assert!(close(got, want), "{area} {key}: {got} != {want}");
                }
                None => assert!(a[key].is_null(), "{area} {key}: {}", a[key]),
            }
        }
        let cells: Vec<&str> = lines[k + 1].split(',').collect();
        assert_eq!(
            cells[..4],
            [
                *area,
                &names.len().to_string(),
                &n.to_string(),
                &spikes.to_string()
            ]
        );
        assert_eq!(cells.len(), 7);
        for (cell, want) in cells[4..].iter().zip([all, e, i]) {
            match want {
                Some(want) => {
                    let got: f64 = cell.parse().unwrap();
                    assert!(close(got, want), "{area} csv {cell} != {want}");
                }
                None => assert_eq!(*cell, "", "{area}"),
            }
        }
    }
    // The area rate weighs populations by size: not the mean of their rates.
    let pop_rates: Vec<f64> = s["populations"].as_array().unwrap()[..4]
        .iter()
        .map(|p| p["rate_mean_hz"].as_f64().unwrap())
        .collect();
    let unweighted = pop_rates.iter().sum::<f64>() / 4.0;
    assert!((json_areas[0]["rate_hz"].as_f64().unwrap() - unweighted).abs() > 1e-6);

    let (w, h) = png_size(&report.join("rates_by_area.png"));
    assert!(
        (600..=3000).contains(&w) && (200..=3000).contains(&h),
        "{w}x{h}"
    );
    let (w, h) = png_size(&report.join("raster_areas.png"));
    assert!(
        (1000..=3000).contains(&w) && (500..=4000).contains(&h),
        "{w}x{h}"
    );
    let mut rasters: Vec<String> = std::fs::read_dir(report.join("rasters"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    rasters.sort();
    assert_eq!(rasters, ["7a.png", "MT.png", "TH.png", "V1.png"]);
    for r in &rasters {
        let (w, h) = png_size(&report.join("rasters").join(r));
        assert!(w >= 800 && h >= 600, "{r}: {w}x{h}");
    }

    // stdout: the area table (areas in model order), then (10 populations)
    // the population table.
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("area "))
        .expect(&out);
    let rows: Vec<Vec<&str>> = lines[head + 1..head + 5]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(names, ["V1", "7a", "TH", "MT"], "{out}");
    // TH: 3 populations; MT: no E population.
    assert_eq!(rows[2][1], "3", "{out}");
    assert_eq!(rows[3][5], "-", "{out}");
    assert!(
        out.contains("\npopulation ") && out.contains("\nTH_23I "),
        "{out}"
    );
    assert!(out.contains("rasters/*.png (4 files)"), "{out}");
}

/// More than 40 populations with areas: stdout has the area table and a
/// pointer to stats.csv instead of the population table (which stays
/// whole in stats.json and stats.csv).
#[test]
fn many_populations_print_the_area_table_only() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    const LAYERS: &[&str] = &["23E", "23I", "4E", "4I", "5E", "5I", "6E", "6I"];
    let areas: Vec<(&str, &[&str])> = ["V1", "V2", "V4", "MT", "46", "FEF"]
        .iter()
        .map(|a| (*a, LAYERS))
        .collect();
    make_area_run(&run, &areas);
    let report = tmp.path().join("report");
    let o = analyze(&[&run, &"-o", &report]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().any(|l| l.starts_with("FEF ")), "{out}");
    assert!(!out.contains("V1_23E"), "{out}");
    let pointer = format!(
        "48 populations: per-population statistics in {}",
        report.join("stats.csv").display()
    );
    assert!(out.contains(&pointer), "{out}");
    let csv = std::fs::read_to_string(report.join("stats.csv")).unwrap();
    assert_eq!(csv.lines().count(), 49);
    assert_eq!(
        read_json(&report.join("stats.json"))["areas"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        std::fs::read_dir(report.join("rasters")).unwrap().count(),
        6
    );
}

/// Runs without areas (no `area` field, or every population its own area)
/// get none of the area outputs and the same stdout.
#[test]
fn runs_without_areas_have_no_area_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    make_run(&run);
    let o = analyze(&[&run, &"-o", &tmp.path().join("a")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same populations, each its own area (as snn-sim writes them now).
    let summary = run.join("summary.json");
    let mut s = read_json(&summary);
    for p in s["populations"].as_array_mut().unwrap() {
        p["area"] = p["name"].clone();
    }
    std::fs::write(&summary, s.to_string()).unwrap();
    let o2 = analyze(&[&run, &"-o", &tmp.path().join("b")]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    let strip = |o: &Output, d: &str| {
        String::from_utf8_lossy(&o.stdout).replace(&tmp.path().join(d).display().to_string(), "R")
    };
    assert_eq!(strip(&o, "a"), strip(&o2, "b"));
    for d in ["a", "b"] {
        let report = tmp.path().join(d);
        let mut names: Vec<String> = std::fs::read_dir(&report)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "correlations.csv",
                "correlations.png",
                "cv.png",
                "psth.png",
                "raster.png",
                "rates.png",
                "rates_boxplot.png",
                "spectrum.png",
                "stats.csv",
                "stats.json"
            ]
        );
        assert!(read_json(&report.join("stats.json")).get("areas").is_none());
    }
    let out = strip(&o, "a");
    assert!(!out.lines().any(|l| l.starts_with("area ")), "{out}");
}

// ---------------------------------------------------------------------------
// Hostile spike files: forged sizes, compression, damaged metadata.
// ---------------------------------------------------------------------------

/// Extend both datasets of population `pop` in spike file `path` to `n`
/// entries without writing data (the file stays small: HDF5 reads the
/// unwritten chunks as fill values).
fn resize_population(path: &Path, pop: &str, n: usize) {
    let _files = file_lock();
    let f = hdf5::File::open_rw(path).unwrap();
    for d in ["node_ids", "timestamps"] {
        let ds = f.dataset(&format!("spikes/{pop}/{d}")).unwrap();
        assert!(ds.is_chunked() && ds.is_resizable());
        ds.resize(n).unwrap();
    }
}

/// Rewrite spike file `path` with deflate-compressed datasets (same
/// spikes, same layout), as other SONATA writers may produce.
fn compress_spike_file(path: &Path) {
    let pops = snn_formats::sonata::read_spikes(path).unwrap();
    let _files = file_lock();
    std::fs::remove_file(path).unwrap();
    let f = hdf5::File::create(path).unwrap();
    let spikes = f.create_group("spikes").unwrap();
    for p in &pops {
        let g = spikes.create_group(&p.name).unwrap();
        let chunk = p.node_ids.len().clamp(1, 1024);
        g.new_dataset::<u64>()
            .chunk(chunk)
            .deflate(6)
            .shape(p.node_ids.len()..)
            .create("node_ids")
            .unwrap()
            .write_raw(&p.node_ids)
            .unwrap();
        g.new_dataset::<f64>()
            .chunk(chunk)
            .deflate(6)
            .shape(p.timestamps_ms.len()..)
            .create("timestamps")
            .unwrap()
            .write_raw(&p.timestamps_ms)
            .unwrap();
    }
}

/// A spike dataset resized to 10^11 entries in a small file is refused,
/// with one line naming the file and the dataset, before any buffer is
/// allocated for it (it would take 800 GB).
#[test]
fn forged_spike_dataset_size_is_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    make_run(&run);
    let file = run.join("spikes-rank-00000.h5");
    resize_population(&file, "E", 100_000_000_000);
    assert!(std::fs::metadata(&file).unwrap().len() < 10_000_000);
    let out = tmp.path().join("report");
    let o = analyze(&[&run, &"-o", &out]);
    assert_error(
        &o,
        &[
            "spikes-rank-00000.h5",
            "/spikes/E/node_ids",
            "100000000000 entries",
            "extended without data",
        ],
    );
    assert!(!out.exists());
    let good = tmp.path().join("good");
    make_run(&good);
    let o = analyze(&[&"compare", &good, &run]);
    assert_error(&o, &["spikes-rank-00000.h5", "/spikes/E/node_ids"]);
}

/// Compressed spike datasets are read (the size check allows real
/// compression), and a compressed dataset resized far beyond what its data
/// can hold is refused.
#[test]
fn compressed_spike_files_are_read_and_forged_ones_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, packed) = (tmp.path().join("plain"), tmp.path().join("packed"));
    make_run(&plain);
    make_run(&packed);
    for r in 0..2 {
        compress_spike_file(&packed.join(format!("spikes-rank-{r:05}.h5")));
    }
    let o = analyze(&[&"compare", &plain, &packed, &"--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["identical"], true, "{c}");

    resize_population(&packed.join("spikes-rank-00001.h5"), "I", 1 << 40);
    let o = analyze(&[&packed, &"-o", &tmp.path().join("report")]);
    assert_error(
        &o,
        &["spikes-rank-00001.h5", "/spikes/I/node_ids", "compressed"],
    );
}

/// The reader refuses a file with more spikes than the caller can hold
/// (the memory available, in `snn-analyze`) before reading them.
#[test]
fn spike_reader_respects_a_spike_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    make_run(&run);
    let file = run.join("spikes-rank-00000.h5");
    let all = snn_formats::sonata::read_spikes(&file).unwrap();
    let n: u64 = all.iter().map(|p| p.node_ids.len() as u64).sum();
    assert!(n > 10);
    let same = snn_formats::sonata::read_spikes_limited(&file, n).unwrap();
    assert_eq!(same, all);
    let e = snn_formats::sonata::read_spikes_limited(&file, n - 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spikes-rank-00000.h5") && e.contains("memory"),
        "{e}"
    );
}

/// Damaged HDF5 metadata: one short line naming the file (the innermost
/// HDF5 reason, not the library's whole error stack), and nothing from the
/// library's own error printing.
#[test]
fn damaged_hdf5_metadata_is_one_short_line() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    make_run(&run);
    let file = run.join("spikes-rank-00001.h5");
    let mut bytes = std::fs::read(&file).unwrap();
    // The chunk indexes of the datasets are version 1 B-tree nodes of type
    // 1 ("TREE", 1, level, entries, 2 sibling addresses, then per chunk a
    // 24-byte key of a 1-D dataset and the chunk's address): point each
    // one's first chunk far beyond the end of the file.
    let at: Vec<usize> = bytes
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"TREE\x01")
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty(), "no chunk index in the spike file");
    for i in at {
        let addr = i + 4 + 1 + 1 + 2 + 8 + 8 + 24;
        bytes[addr..addr + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    }
    std::fs::write(&file, &bytes).unwrap();
    let o = analyze(&[&run, &"-o", &tmp.path().join("report")]);
    assert_error(&o, &["spikes-rank-00001.h5", "unreadable", "addr"]);
    let line = stderr(&o);
    assert!(line.len() < 300, "{} characters: {line}", line.len());
}

/// The report reader (membrane potentials) checks its data's size against
/// the file in the same way: a report extended to 10^10 steps without data
/// is refused before a buffer is allocated for it.
#[test]
fn forged_report_size_is_refused_before_allocating() {
    use snn_formats::sonata::{read_report, ReportWriter};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vm.h5");
    {
        let _files = file_lock();
        let pops = vec![("E".to_string(), vec![0u64, 1, 2])];
        let mut w = ReportWriter::create(&path, &pops, 0.0, 0.1).unwrap();
        for k in 0..10 {
            w.push_step(&[k as f64, 1.0, 2.0]).unwrap();
        }
        w.close().unwrap();
    }
    assert_eq!(read_report(&path).unwrap()[0].n_steps, 10);
    {
        let _files = file_lock();
        let f = hdf5::File::open_rw(&path).unwrap();
        f.dataset("report/E/data")
            .unwrap()
            .resize((10_000_000_000usize, 3))
            .unwrap();
    }
    let e = read_report(&path).unwrap_err().to_string();
    assert!(
        e.contains("vm.h5") && e.contains("/report/E/data") && e.contains("30000000000 entries"),
        "{e}"
    );
}
