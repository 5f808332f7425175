//! End-to-end tests of the `snn-sim` command line on a small network
//! (`tests/fixtures/sim_small.toml`, 300 neurons with Poisson drive): the
//! run directory (`summary.json`, SONATA spike files consistent with the
//! summary), `--json`, quiet operation without a terminal, and clean
//! one-line errors that lose nothing on disk for everything a user can get
//! wrong.

mod support;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{bin, fixture, run, snapshot, snn_build, Out};

/// Run `snn-sim` with `args` (stdin/stdout/stderr are pipes: no terminal).
fn snn_sim<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(bin("snn-sim")).args(args))
}

/// Arguments as OS strings.
fn args(list: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    list.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// Build the small network with `extra` arguments into `dir`.
fn build(dir: &Path, extra: &[&str]) {
    let mut a: Vec<OsString> = vec![fixture("sim_small.toml").into(), "-o".into(), dir.into()];
    a.extend(extra.iter().map(OsString::from));
    snn_build(a).expect_ok("snn-build of sim_small.toml");
}

/// Check a failed run: non-zero exit, one stderr line starting with
/// `snn-sim: error:` and containing every string of `must_contain`, no panic.
#[track_caller]
fn expect_error(out: &Out, what: &str, must_contain: &[&str]) -> String {
    let line = out.expect_clean_error(what, must_contain);
    assert!(line.starts_with("snn-sim: error:"), "{what}: {line:?}");
    assert!(out.stdout.is_empty(), "{what}: stdout {:?}", out.stdout);
    // A cause is not repeated (an I/O error printed by its wrapper and again
    // as the wrapper's source).
    assert!(
        line.matches("(os error").count() <= 1,
        "{what}: cause repeated: {line:?}"
    );
    line
}

#[track_caller]
fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// All spikes of a run directory: (population, node id, time bits), sorted,
/// from every `spikes-rank-*.h5`; also checks that the files are named in
/// the summary.
fn run_spikes(run: &Path) -> Vec<(String, u64, u64)> {
    let summary = read_json(&run.join("summary.json"));
    let mut files: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("spikes-rank-"))
        .collect();
    files.sort();
    let listed: Vec<String> = summary["spike_files"]
        .as_array()
        .expect("spike_files")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, listed, "spike files on disk vs summary");
    let mut out = Vec::new();
    for f in files {
        for pop in snn_formats::sonata::read_spikes(&run.join(f)).expect("read_spikes") {
            for (id, t) in pop.node_ids.iter().zip(&pop.timestamps_ms) {
                out.push((pop.name.clone(), *id, t.to_bits()));
            }
        }
    }
    out.sort();
    out
}

/// A successful run: summary.json, spike file consistent with it, quiet
/// stderr, and `--json` printing the same summary.
#[test]
fn run_writes_summary_and_spikes() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&net, &[]);
    let run = tmp.path().join("run");
    let out = snn_sim(args(&[
        &net,
        &"-o",
        &run,
        &"--t-presim",
        &"50",
        &"--t-sim",
        &"200",
        &"--seed",
        &"3",
        &"--threads",
        &"2",
    ]));
    let out = out.expect_ok("snn-sim");
    // Not a terminal: no progress output, nothing on stderr.
    assert!(out.stderr.is_empty(), "stderr on success: {:?}", out.stderr);
    assert!(!out.stdout.is_empty(), "a human-readable summary on stdout");

    let s = read_json(&run.join("summary.json"));
    assert_eq!(s["steps"].as_u64(), Some(2500), "50 + 200 ms at 0.1 ms");
    assert_eq!(s["seed"].as_u64(), Some(3));
    assert_eq!(s["threads"].as_u64(), Some(2));
    assert_eq!(s["n_ranks"].as_u64(), Some(1));
    assert_eq!(s["t_start_ms"].as_f64(), Some(50.0));
    assert_eq!(s["t_stop_ms"].as_f64(), Some(250.0));
    for k in [
        "wall_load_s",
        "wall_presim_s",
        "wall_sim_s",
        "real_time_factor",
    ] {
        let v = s[k]
            .as_f64()
            .unwrap_or_else(|| panic!("summary.{k} missing"));
        assert!(v.is_finite() && v >= 0.0, "summary.{k} = {v}");
    }
    assert!(s["wall_sim_s"].as_f64().unwrap() > 0.0);
    let rtf = s["real_time_factor"].as_f64().unwrap();
    let expect_rtf = s["wall_sim_s"].as_f64().unwrap() / 0.2;
    assert!(
        (rtf - expect_rtf).abs() <= 1e-9 * expect_rtf.max(1.0),
        "rtf {rtf} vs {expect_rtf}"
    );

    // The spike file: readable, counts as in the summary, times in the
    // recorded window on the grid, ids inside the populations.
    let spikes =
        snn_formats::sonata::read_spikes(&run.join("spikes-rank-00000.h5")).expect("read_spikes");
    let pops = s["populations"].as_array().expect("populations");
    assert_eq!(pops.len(), 2);
    let mut total = 0;
    for ps in pops {
        let name = ps["name"].as_str().unwrap();
        let size = ps["size"].as_u64().unwrap();
        let n = ps["spikes"].as_u64().unwrap();
        assert_eq!(ps["recorded"].as_bool(), Some(true));
        let f = spikes
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("{name} not in the spike file"));
        assert_eq!(
            f.node_ids.len() as u64,
            n,
            "{name}: spikes in file vs summary"
        );
        assert_eq!(f.timestamps_ms.len(), f.node_ids.len());
        assert!(n > 0, "{name}: the network should spike");
        let rate = n as f64 / size as f64 / 0.2;
        assert!(
            (ps["rate_hz"].as_f64().unwrap() - rate).abs() < 1e-9,
            "{name}: rate_hz"
        );
        for (&id, &t) in f.node_ids.iter().zip(&f.timestamps_ms) {
            assert!(id < size, "{name}: node id {id} >= size {size}");
            assert!(
                t > 50.0 && t <= 250.0 + 1e-9,
                "{name}: spike at {t} ms outside (50, 250]"
            );
            let steps = t / 0.1;
            assert!(
                (steps - steps.round()).abs() < 1e-6,
                "{name}: spike at {t} ms off the grid"
            );
        }
        total += n;
    }
    println!(
        "sim_small: {total} spikes in 200 ms ({:?})",
        pops.iter()
            .map(|p| p["rate_hz"].as_f64().unwrap())
            .collect::<Vec<_>>()
    );
    // V_m of the configured neurons: 2000 samples each.
    let vm = snn_formats::sonata::read_report(&run.join("vm-rank-00000.h5")).expect("read_report");
    let by: BTreeMap<&str, &snn_formats::sonata::PopulationReport> =
        vm.iter().map(|r| (r.name.as_str(), r)).collect();
    assert_eq!(by["E"].node_ids, vec![0, 1]);
    assert_eq!(by["I"].node_ids, vec![5]);
    for r in by.values() {
        assert_eq!(r.n_steps, 2000);
        assert!(
            (r.t_start_ms - 50.1).abs() < 1e-9,
            "first sample at {}",
            r.t_start_ms
        );
        assert!(r.data.iter().all(|v| v.is_finite() && *v < -50.0 + 1e-9));
    }

    // --json: the summary on stdout, parsable, the same as summary.json
    // apart from wall times.
    let run2 = tmp.path().join("run2");
    let out = snn_sim(args(&[
        &net,
        &"-o",
        &run2,
        &"--t-presim",
        &"50",
        &"--t-sim",
        &"200",
        &"--seed",
        &"3",
        &"--threads",
        &"1",
        &"--json",
    ]))
    .expect_ok("snn-sim --json");
    assert!(out.stderr.is_empty(), "stderr on success: {:?}", out.stderr);
    let printed: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {}", out.stdout));
    let mut file = read_json(&run2.join("summary.json"));
    let mut printed2 = printed.clone();
    for v in [&mut file, &mut printed2] {
        for k in [
            "wall_load_s",
            "wall_presim_s",
            "wall_sim_s",
            "real_time_factor",
        ] {
            v.as_object_mut().unwrap().remove(k);
        }
    }
    assert_eq!(printed2, file, "--json prints summary.json");
    assert_eq!(printed["steps"].as_u64(), Some(2500));
    // One thread and two threads: the same spikes, bit for bit.
    assert!(run_spikes(&run2) == run_spikes(&run), "--threads 1 vs 2");
}

/// A vector level (`SNN_SIMD`) that is not one: one clean line naming the
/// variable and the levels, refused before anything is read or written.
#[test]
fn bad_simd_level() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&net, &[]);
    let out_dir = tmp.path().join("run");
    let out = run(Command::new(bin("snn-sim"))
        .env("SNN_SIMD", "avx")
        .args(args(&[&net, &"-o", &out_dir, &"--t-sim", &"10"])));
    expect_error(&out, "SNN_SIMD=avx", &["SNN_SIMD", "'avx'", "avx512"]);
    assert!(!out_dir.exists(), "no run directory after a failure");
}

/// Missing, corrupt and non-network directories: one clean line naming the
/// path, and no run directory created.
#[test]
fn bad_network_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");

    let missing = tmp.path().join("no-such-net");
    let out = snn_sim(args(&[&missing, &"-o", &run, &"--t-sim", &"10"]));
    expect_error(&out, "missing network", &["no-such-net"]);
    assert!(!run.exists(), "no run directory after a failure");

    let plain = tmp.path().join("not-a-network");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("notes.txt"), "hello").unwrap();
    let out = snn_sim(args(&[&plain, &"-o", &run, &"--t-sim", &"10"]));
    expect_error(&out, "non-network directory", &["not-a-network"]);
    assert!(!run.exists());

    let empty = tmp.path().join("empty-dir");
    std::fs::create_dir(&empty).unwrap();
    let out = snn_sim(args(&[&empty, &"-o", &run, &"--t-sim", &"10"]));
    expect_error(&out, "empty directory", &["empty-dir"]);

    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = snn_sim(args(&[&file, &"-o", &run, &"--t-sim", &"10"]));
    expect_error(&out, "a file as the network", &["a-file"]);
    assert!(!run.exists());

    // A corrupt shard (one byte flipped in the middle: synapse data that
    // only the checksum sees) is found before anything runs.
    let net = tmp.path().join("net");
    build(&net, &[]);
    let shard = net.join("rank-00000.shard");
    let mut bytes = std::fs::read(&shard).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&shard, &bytes).unwrap();
    let out = snn_sim(args(&[&net, &"-o", &run, &"--t-sim", &"10"]));
    expect_error(&out, "corrupt shard", &["rank-00000.shard"]);
    assert!(!run.exists());
    // ... even with --force over an existing run: the old run is kept.
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("summary.json"), "{\"old\": true}").unwrap();
    let before = snapshot(&run);
    let out = snn_sim(args(&[&net, &"-o", &run, &"--t-sim", &"10", &"--force"]));
    expect_error(&out, "corrupt shard, --force", &["rank-00000.shard"]);
    assert!(
        snapshot(&run) == before,
        "a failed --force run changed the old run directory"
    );
    // No staging directories left behind.
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// An existing run directory: refused without --force (untouched), replaced
/// with it. Bad times, threads and backends: clean errors, nothing touched.
#[test]
fn existing_run_directory_and_bad_options() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&net, &[]);
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("precious.txt"), "results of last week").unwrap();
    std::fs::create_dir(run.join("sub")).unwrap();
    std::fs::write(run.join("sub/data.bin"), [1u8, 2, 3, 255]).unwrap();
    let before = snapshot(&run);

    let out = snn_sim(args(&[&net, &"-o", &run, &"--t-sim", &"10"]));
    let line = expect_error(&out, "existing run directory", &["run"]);
    assert!(
        line.contains("--force") || line.contains("exists"),
        "{line}"
    );
    assert!(
        snapshot(&run) == before,
        "the refused run changed the existing directory"
    );

    // Bad options, with the existing directory as output (and --force):
    // nothing may be touched.
    let cases: Vec<(Vec<OsString>, &str, Vec<&str>)> = vec![
        (args(&[&"--t-sim=-5"]), "negative --t-sim", vec!["--t-sim"]),
        (
            args(&[&"--t-sim", &"-5"]),
            "negative --t-sim (separate)",
            vec!["-5"],
        ),
        (
            args(&[&"--t-sim", &"10", &"--t-presim=-1"]),
            "negative --t-presim",
            vec!["--t-presim"],
        ),
        (
            args(&[&"--t-sim", &"0.05"]),
            "--t-sim not a multiple of dt",
            vec!["--t-sim", "0.05", "0.1"],
        ),
        (
            args(&[&"--t-sim", &"10", &"--t-presim", &"0.33"]),
            "--t-presim not a multiple of dt",
            vec!["--t-presim", "0.33"],
        ),
        (args(&[&"--t-sim", &"nan"]), "--t-sim NaN", vec!["--t-sim"]),
        (
            args(&[&"--t-sim", &"10", &"--threads", &"0"]),
            "--threads 0",
            vec!["--threads"],
        ),
        (
            args(&[&"--t-sim", &"10", &"--backend", &"cuda"]),
            "--backend cuda",
            // Without the feature: "built without the `cuda` feature";
            // with it and no GPU: the existing directory (without --force)
            // or the missing device (with it). What matters here is that the
            // existing run is left alone (checked below).
            if cfg!(feature = "cuda") {
                vec!["error"]
            } else {
                vec!["cuda"]
            },
        ),
    ];
    for (extra, what, must) in cases {
        for force in [false, true] {
            let mut a = args(&[&net, &"-o", &run]);
            a.extend(extra.iter().cloned());
            if force {
                a.push("--force".into());
            }
            let out = snn_sim(a);
            expect_error(&out, &format!("{what} (force {force})"), &must);
            assert!(
                snapshot(&run) == before,
                "{what}: the failed run changed the existing directory"
            );
        }
    }

    // --force replaces it.
    let out =
        snn_sim(args(&[&net, &"-o", &run, &"--t-sim", &"10", &"--force"])).expect_ok("--force");
    assert!(out.stderr.is_empty(), "stderr: {:?}", out.stderr);
    assert!(run.join("summary.json").is_file());
    assert!(
        !run.join("precious.txt").exists() && !run.join("sub").exists(),
        "--force replaces the directory"
    );
    assert_eq!(
        read_json(&run.join("summary.json"))["steps"].as_u64(),
        Some(100)
    );
    // An empty existing directory needs no --force.
    let empty = tmp.path().join("empty-run");
    std::fs::create_dir(&empty).unwrap();
    snn_sim(args(&[&net, &"-o", &empty, &"--t-sim", &"10"]))
        .expect_ok("empty existing run directory");
    assert!(empty.join("summary.json").is_file());
}

/// A recording selection naming an unknown population is rejected at build
/// time, naming the file and the field.
#[test]
fn unknown_recording_population_is_rejected_at_build() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("sim_small.toml")).unwrap();
    let bad = text.replace("spikes = [\"E\", \"I\"]", "spikes = [\"E\", \"L23Q\"]");
    assert_ne!(bad, text);
    let cfg = tmp.path().join("bad_recording.toml");
    std::fs::write(&cfg, bad).unwrap();
    let net = tmp.path().join("net");
    let out = snn_build(args(&[&cfg, &"-o", &net]));
    out.expect_clean_error(
        "unknown recording population",
        &["bad_recording.toml", "recording.spikes", "L23Q"],
    );
    assert!(!net.exists());
    // The same for V_m recording.
    let bad = text.replace(
        "{ population = \"I\", neurons = [5] }",
        "{ population = \"X9\", neurons = [5] }",
    );
    assert_ne!(bad, text);
    std::fs::write(&cfg, bad).unwrap();
    let out = snn_build(args(&[&cfg, &"-o", &net]));
    out.expect_clean_error(
        "unknown V_m population",
        &["bad_recording.toml", "recording.V_m", "X9"],
    );
    // A neuron index outside the population.
    let bad = text.replace("neurons = [5]", "neurons = [60]");
    std::fs::write(&cfg, bad).unwrap();
    let out = snn_build(args(&[&cfg, &"-o", &net]));
    out.expect_clean_error(
        "V_m neuron out of range",
        &["bad_recording.toml", "recording.V_m", "60"],
    );
    assert!(!net.exists());
}

/// A multi-rank network needs mpirun, or --emulate-ranks; emulated, it gives
/// the spikes of the single-rank network.
#[test]
fn multi_rank_network_needs_mpirun_or_emulation() {
    let tmp = tempfile::tempdir().unwrap();
    let net1 = tmp.path().join("net1");
    let net3 = tmp.path().join("net3");
    build(&net1, &[]);
    build(&net3, &["--ranks", "3"]);
    let run = tmp.path().join("run");
    let out = snn_sim(args(&[&net3, &"-o", &run, &"--t-sim", &"100"]));
    let line = expect_error(&out, "3-rank network without MPI", &["mpirun", "3"]);
    assert!(
        line.contains("--emulate-ranks"),
        "the error should mention --emulate-ranks: {line}"
    );
    assert!(!run.exists());

    let out = snn_sim(args(&[
        &net3,
        &"-o",
        &run,
        &"--t-sim",
        &"100",
        &"--emulate-ranks",
        &"--threads",
        &"2",
    ]))
    .expect_ok("--emulate-ranks");
    assert!(out.stderr.is_empty(), "stderr: {:?}", out.stderr);
    let s = read_json(&run.join("summary.json"));
    assert_eq!(s["n_ranks"].as_u64(), Some(3));
    assert_eq!(s["steps"].as_u64(), Some(1000));
    let spikes3 = run_spikes(&run);
    let total: u64 = s["populations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["spikes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        spikes3.len() as u64,
        total,
        "spikes in the files vs summary"
    );
    let run1 = tmp.path().join("run1");
    snn_sim(args(&[
        &net1,
        &"-o",
        &run1,
        &"--t-sim",
        &"100",
        &"--threads",
        &"1",
    ]))
    .expect_ok("1 rank");
    assert!(!spikes3.is_empty());
    assert!(run_spikes(&run1) == spikes3, "3 emulated ranks vs 1 rank");
}

/// Paths given relative to the working directory work, and the summary
/// names the network.
#[test]
fn relative_paths() {
    let tmp = tempfile::tempdir().unwrap();
    build(&tmp.path().join("net"), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_snn-sim"))
        .current_dir(tmp.path())
        .args(["net", "-o", "out/run", "--t-sim", "20", "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    let run: PathBuf = tmp.path().join("out/run");
    assert!(run.join("summary.json").is_file());
    assert!(run.join("spikes-rank-00000.h5").is_file());
}

/// On a terminal (a pseudo-terminal from util-linux `script`, where
/// available), a progress bar with biological time, real-time factor and ETA
/// goes to stderr, and the summary is written as always.
#[test]
fn progress_bar_on_a_terminal() {
    let script = Path::new("/usr/bin/script");
    if !script.exists() {
        println!("skipped: no /usr/bin/script to provide a terminal");
        return;
    }
    let probe = Command::new(script)
        .args(["-qec", "[ -t 2 ] && echo is-a-terminal", "/dev/null"])
        .output();
    if !probe.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("is-a-terminal")) {
        println!("skipped: `script` does not provide a terminal here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&net, &[]);
    let run = tmp.path().join("run");
    // Long enough for several redraws (the bar updates every 100 ms).
    let cmd = format!(
        "'{}' '{}' -o '{}' --t-sim 10000 --threads 1 > /dev/null",
        env!("CARGO_BIN_EXE_snn-sim"),
        net.display(),
        run.display()
    );
    let out = Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("run script");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "snn-sim on a terminal failed: {tty}");
    assert!(run.join("summary.json").is_file(), "summary written");
    assert!(
        tty.contains("/10000.0 ms biological"),
        "no progress bar on the terminal: {tty:?}"
    );
    assert!(
        tty.contains("real-time factor") && tty.contains("eta"),
        "{tty:?}"
    );
    assert!(!tty.contains("error"), "{tty:?}");
}

/// `--backend cuda`: built without the `cuda` feature (CI's build), a
/// one-line error saying so; with the feature but no GPU driver, a one-line
/// error naming the missing device. No run directory is left either way.
/// An unknown backend is a usage error.
#[test]
fn backend_cuda_without_feature_or_device() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    build(&net, &[]);
    let run = tmp.path().join("run");
    let out = snn_sim(args(&[
        &net,
        &"-o",
        &run,
        &"--t-sim",
        &"1",
        &"--backend",
        &"cuda",
    ]));
    if cfg!(feature = "cuda") {
        if !out.ok() {
            expect_error(&out, "--backend cuda without a GPU", &["CUDA"]);
            assert!(!run.exists(), "a failed run left {}", run.display());
        }
    } else {
        expect_error(
            &out,
            "--backend cuda without the feature",
            &["built without the `cuda` feature"],
        );
        assert!(!run.exists(), "a failed run left {}", run.display());
    }
    let out = snn_sim(args(&[
        &net,
        &"-o",
        &run,
        &"--t-sim",
        &"1",
        &"--backend",
        &"opencl",
    ]));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("cpu") && out.stderr.contains("cuda"),
        "{}",
        out.stderr
    );
}
