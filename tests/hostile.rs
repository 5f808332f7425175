//! The hostile-user tables: every attack in `tests/hostile/*.toml` runs one
//! of the binaries the way a careless or hostile user would, and must end
//! with one clean error line (`snn-X: error: ...`, naming what is wrong), a
//! non-zero exit status, no panic, within its time limit, and without
//! touching what it must not touch. A new check gets a new row there.
//!
//! # Table format
//!
//! ```toml
//! [[case]]
//! name = "sim-threads-huge"          # unique
//! attack = "why this input is hostile"
//! bin = "snn-sim"                     # snn-build | snn-sim | snn-analyze
//! args = ["{K}", "-o", "{tmp}/run", "--t-sim", "10", "--threads", "100000"]
//! error = ["--threads", "100000"]     # the error line contains each
//! exit = 2                            # optional exact status (default: any non-zero)
//! env = { SLURM_JOB_END_TIME = "x" }  # optional
//! timeout_s = 60                      # optional (default 60)
//! files = { "cfg.toml" = "..." }      # optional: written under {tmp} first
//! copy = [["{run}", "{tmp}/run"]]     # optional: recursive copies first
//! json_set = [{ file = "{tmp}/run/summary.json", pointer = "/t_stop_ms", value = 1e15 }]
//! unchanged = ["{K}"]                 # optional: byte-identical afterwards
//! absent = ["{tmp}/run"]              # optional: must not exist afterwards
//! ```
//!
//! Placeholders: `{tmp}` a fresh directory of the case; `{repo}` the
//! repository; `{K}` a 2,250-neuron balanced network at about 94 Hz
//! (`support::K_SETS`: `configs/balanced.toml`, `scale.neurons=0.2`,
//! `scale.indegree=0.01`, `poisson_background.rate_Hz=240`); `{run}` a
//! finished run of it
//! (`--t-sim 100 --checkpoint-every 50 --seed 7`, so with checkpoints);
//! `{net1}` the microcircuit at `scale.neurons=0.02`,
//! `scale.indegree=0.05`. The shared fixtures are built once per table and
//! must not be written to: copy them (`copy`) to change them.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Deserialize;
use support::{bin, build_k, repo, run, Out};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default)]
    case: Vec<Case>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct JsonSet {
    file: String,
    pointer: String,
    value: serde_json::Value,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[allow(dead_code)]
    attack: String,
    bin: String,
    args: Vec<String>,
    error: Vec<String>,
    #[serde(default)]
    exit: Option<i32>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    timeout_s: Option<u64>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    copy: Vec<[String; 2]>,
    #[serde(default)]
    json_set: Vec<JsonSet>,
    #[serde(default)]
    unchanged: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
}

/// The shared fixtures, built on first use.
struct Fixtures {
    _dir: tempfile::TempDir,
    root: PathBuf,
    built: std::sync::Mutex<BTreeMap<&'static str, PathBuf>>,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        Fixtures {
            root: dir.path().to_path_buf(),
            _dir: dir,
            built: Default::default(),
        }
    })
}

fn run_ok(name: &str, args: &[&str]) {
    run(Command::new(bin(name)).args(args)).expect_ok(&format!("fixture {name} {args:?}"));
}

/// The path of fixture `name`, building it the first time.
fn fixture_path(name: &'static str) -> PathBuf {
    let f = fixtures();
    let mut built = f.built.lock().expect("fixture lock");
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let path = f.root.join(name);
    let s = |p: &Path| p.to_str().expect("utf-8 temp path").to_string();
    match name {
        "K" => build_k(&path),
        "run" => {
            drop(built);
            let k = fixture_path("K");
            run_ok(
                "snn-sim",
                &[
                    &s(&k),
                    "-o",
                    &s(&path),
                    "--t-sim",
                    "100",
                    "--checkpoint-every",
                    "50",
                    "--seed",
                    "7",
                ],
            );
            built = f.built.lock().expect("fixture lock");
        }
        "net1" => {
            let cfg = repo().join("configs/microcircuit.toml");
            run_ok(
                "snn-build",
                &[
                    &s(&cfg),
                    "-o",
                    &s(&path),
                    "--set",
                    "scale.neurons=0.02",
                    "--set",
                    "scale.indegree=0.05",
                ],
            );
        }
        other => panic!("unknown fixture {other}"),
    }
    built.insert(name, path.clone());
    path
}

/// Replace the placeholders of `text`.
fn expand(text: &str, tmp: &Path) -> String {
    let mut out = text
        .replace("{tmp}", &tmp.display().to_string())
        .replace("{repo}", &repo().display().to_string());
    for name in ["K", "run", "net1"] {
        let ph = format!("{{{name}}}");
        if out.contains(&ph) {
            out = out.replace(&ph, &fixture_path(name).display().to_string());
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir") {
            let e = e.expect("entry");
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {from:?}: {e}"));
    }
}

/// Every file under `path` with its bytes (a file: itself).
fn tree(path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    if path.is_dir() {
        support::snapshot(path)
    } else {
        BTreeMap::from([(PathBuf::new(), std::fs::read(path).unwrap_or_default())])
    }
}

/// Run `case`; `Err` says what went wrong.
fn run_case(case: &Case) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tmp = dir.path();
    for (rel, text) in &case.files {
        let p = tmp.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&p, expand(text, tmp)).map_err(|e| e.to_string())?;
    }
    for [from, to] in &case.copy {
        copy_tree(Path::new(&expand(from, tmp)), Path::new(&expand(to, tmp)));
    }
    for js in &case.json_set {
        let file = PathBuf::from(expand(&js.file, tmp));
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{file:?}: {e}"))?;
        let mut v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let slot = v
            .pointer_mut(&js.pointer)
            .ok_or_else(|| format!("{file:?} has no {}", js.pointer))?;
        *slot = js.value.clone();
        std::fs::write(
            &file,
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    }
    let unchanged: Vec<(PathBuf, BTreeMap<PathBuf, Vec<u8>>)> = case
        .unchanged
        .iter()
        .map(|u| {
            let p = PathBuf::from(expand(u, tmp));
            let t = tree(&p);
            (p, t)
        })
        .collect();
    let args: Vec<String> = case.args.iter().map(|a| expand(a, tmp)).collect();
    let mut cmd = Command::new(bin(&case.bin));
    cmd.args(&args)
        .current_dir(tmp)
        .env("RUST_BACKTRACE", "1")
        .env_remove("SLURM_JOB_END_TIME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &case.env {
        cmd.env(k, expand(v, tmp));
    }
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let limit = Duration::from_secs(case.timeout_s.unwrap_or(60));
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "still running after {} s: {} {}",
                limit.as_secs(),
                case.bin,
                args.join(" ")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let out = Out {
        code: status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let must: Vec<String> = case.error.iter().map(|e| expand(e, tmp)).collect();
    let must: Vec<&str> = must.iter().map(String::as_str).collect();
    let line =
        std::panic::catch_unwind(|| out.expect_clean_error(&case.name, &must)).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "check failed".into())
        })?;
    let prefix = format!("{}: error: ", case.bin);
    if !line.starts_with(&prefix) {
        return Err(format!(
            "the error line does not start with {prefix:?}: {line:?}"
        ));
    }
    if let Some(code) = case.exit {
        if out.code != Some(code) {
            return Err(format!(
                "exit status {:?}, expected {code}: {line}",
                out.code
            ));
        }
    }
    for (p, before) in unchanged {
        if tree(&p) != before {
            return Err(format!("{} was changed by the attack", p.display()));
        }
    }
    for a in &case.absent {
        let p = PathBuf::from(expand(a, tmp));
        if p.exists() {
            return Err(format!("{} exists after the attack", p.display()));
        }
    }
    Ok(())
}

/// Run every case of `tests/hostile/<file>`, report all failures at once.
fn run_table(file: &str) {
    let path = repo().join("tests/hostile").join(file);
    let text = std::fs::read_to_string(&path).expect("read table");
    let table: Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut names = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &table.case {
        assert!(
            names.insert(case.name.clone()),
            "{file}: duplicate case {}",
            case.name
        );
        let t = Instant::now();
        match run_case(case) {
            Ok(()) => eprintln!("ok   {} ({:.1} s)", case.name, t.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("FAIL {}: {e}", case.name);
                failures.push(format!("{}: {e}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases of {file} failed:\n{}",
        failures.len(),
        table.case.len(),
        failures.join("\n")
    );
}

#[test]
fn build_table() {
    run_table("build.toml");
}

#[test]
fn sim_table() {
    run_table("sim.toml");
}

#[test]
fn analyze_table() {
    run_table("analyze.toml");
}
