//! `snn-analyze` cases that the hostile table (`tests/hostile/analyze.toml`)
//! cannot express, on real runs of `snn-sim`: the exit status of `compare`
//! (0 identical spikes, 1 spikes that differ, like `cmp`, 0 with
//! `--report-only`, 2 an error) and its one-line summary. The forged spike
//! files (datasets resized without data, compressed, damaged chunk
//! indexes) are in `analyze/tests/cli.rs`, which has the `hdf5` crate to
//! forge them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::{bin, build_k, run, Out};

/// Run the package's binary `name` with `args`.
fn run_bin(name: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Out {
    let mut cmd = Command::new(bin(name));
    for a in args {
        cmd.arg(a);
    }
    run(&mut cmd)
}

/// Runs of the 2,250-neuron balanced network at about 94 Hz, 100 ms: `a`
/// and `a2` with seed 7 (identical spikes), `b` with seed 8.
struct Runs {
    _dir: tempfile::TempDir,
    a: PathBuf,
    a2: PathBuf,
    b: PathBuf,
}

fn runs() -> &'static Runs {
    static R: OnceLock<Runs> = OnceLock::new();
    R.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = dir.path().join("K");
        build_k(&k);
        let sim = |name: &str, seed: &str| -> PathBuf {
            let out = dir.path().join(name);
            run_bin(
                "snn-sim",
                &[&k, &"-o", &out, &"--t-sim", &"100", &"--seed", &seed],
            )
            .expect_ok("snn-sim");
            out
        };
        Runs {
            a: sim("a", "7"),
            a2: sim("a2", "7"),
            b: sim("b", "8"),
            _dir: dir,
        }
    })
}

fn compare(a: &Path, b: &Path, extra: &[&str]) -> Out {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"compare", &a, &b];
    for e in extra {
        args.push(e);
    }
    run_bin("snn-analyze", &args)
}

/// The summary lines (`spikes: ...`) of a comparison's output.
fn spike_summary(o: &Out) -> Vec<&str> {
    o.stdout
        .lines()
        .filter(|l| l.starts_with("spikes: "))
        .collect()
}

/// Identical spikes: status 0, one summary line saying so.
#[test]
fn compare_identical_runs_exits_0() {
    let r = runs();
    let o = compare(&r.a, &r.a2, &[]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(o.stderr, "");
    let summary = spike_summary(&o);
    assert_eq!(
        summary,
        ["spikes: identical (every spike time equal bit for bit)"]
    );
}

/// Spikes that differ: status 1 (the comparison printed all the same,
/// nothing on stderr), 0 with `--report-only`; `--json` too.
#[test]
fn compare_differing_runs_exits_1() {
    let r = runs();
    let o = compare(&r.a, &r.b, &[]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert_eq!(o.stderr, "");
    let summary = spike_summary(&o);
    assert_eq!(summary.len(), 1, "{}", o.stdout);
    assert!(
        summary[0].starts_with("spikes: differ; first difference: "),
        "{}",
        summary[0]
    );
    assert!(
        o.stdout.lines().any(|l| l.starts_with("E ")),
        "{}",
        o.stdout
    );

    let j = compare(&r.a, &r.b, &["--json"]);
    assert_eq!(j.code, Some(1), "{j:?}");
    let v = support::json(&j);
    assert_eq!(v["identical"], false);
    assert!(v["first_difference"].is_string(), "{v}");

    let ro = compare(&r.a, &r.b, &["--report-only"]);
    assert_eq!(ro.code, Some(0), "{ro:?}");
    assert_eq!(ro.stdout, o.stdout);
}

/// An error is status 2 (distinct from "differ") with one line.
#[test]
fn compare_errors_exit_2() {
    let r = runs();
    let missing = r.a.with_file_name("no-such-run");
    let o = compare(&r.a, &missing, &[]);
    let line = o.expect_clean_error("compare with a missing run", &["no-such-run"]);
    assert!(line.starts_with("snn-analyze: error: "), "{line}");
    assert_eq!(o.code, Some(2), "{o:?}");
    let o = compare(&r.a, &r.b, &["--bin-ms", "1e-9"]);
    o.expect_clean_error("compare --bin-ms 1e-9", &["--bin-ms"]);
    assert_eq!(o.code, Some(2), "{o:?}");
}
