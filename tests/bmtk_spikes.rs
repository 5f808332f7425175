//! Spike files written by BMTK itself are runs for `snn-analyze`.
//!
//! An snn run (2 emulated ranks) is read with BMTK's own spike reader and
//! written back with BMTK's own writer (`SpikeTrains.to_sonata`, what BMTK's
//! simulators call: int64 node ids, gzip, a `sorting` attribute) in each of
//! its sort orders, by `tests/reference/bmtk_spikes.py` (BMTK from PyPI, in
//! `.venv-sonata`). Each BMTK file, with a `summary.json` giving the
//! populations' sizes, must compare identical with the snn run, spike for
//! spike; BMTK must have read as many spikes as snn wrote; and a file in
//! which BMTK wrote a population without spikes (its node ids then float64)
//! is read with that population silent and the others unchanged.
//!
//! Skipped with a note where BMTK is missing, except in CI (or with
//! `SNN_REQUIRE_SONATA=1`), where that is a failure.

mod support;

use std::path::Path;
use std::process::Command;

use support::{bin, fixture, json, p, repo, run, snn_build};

#[test]
fn spike_files_written_by_bmtk_compare_identical() {
    let Some(py) = support::python_with(
        ".venv-sonata",
        "bmtk.utils.reports.spike_trains",
        "SNN_REQUIRE_SONATA",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (net, snn_run, bmtk) = (
        tmp.path().join("net"),
        tmp.path().join("run"),
        tmp.path().join("bmtk"),
    );
    snn_build([
        p(&fixture("sim_small.toml")),
        p(Path::new("-o")),
        p(&net),
        p(Path::new("--ranks")),
        p(Path::new("2")),
    ])
    .expect_ok("snn-build");
    run(Command::new(bin("snn-sim"))
        .arg(&net)
        .arg("-o")
        .arg(&snn_run)
        .args(["--t-sim", "400", "--seed", "3", "--emulate-ranks"]))
    .expect_ok("snn-sim");
    let written = json(
        &run(Command::new(&py)
            .arg(repo().join("tests/reference/bmtk_spikes.py"))
            .arg(&snn_run)
            .arg(&bmtk)
            .arg("I"))
        .expect_ok("bmtk_spikes.py"),
    );

    // BMTK read every spike snn wrote.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(snn_run.join("summary.json")).expect("summary.json"))
            .expect("summary JSON");
    for pop in summary["populations"].as_array().expect("populations") {
        let name = pop["name"].as_str().expect("name");
        let spikes = pop["spikes"].as_u64().expect("spikes");
        assert!(spikes > 100, "{name}: only {spikes} spikes");
        assert_eq!(written["counts"][name].as_u64(), Some(spikes), "{name}");
    }

    // Exit 0 for identical runs, 1 for runs that differ.
    let compare = |b: &Path, code: i32| {
        let out = run(Command::new(bin("snn-analyze"))
            .arg("compare")
            .arg(&snn_run)
            .arg(b)
            .arg("--json"));
        assert_eq!(out.code, Some(code), "{out:?}");
        json(&out)
    };
    for order in ["by_id", "by_time", "none"] {
        let layout = &written["layout"][order]["E"];
        assert_eq!(layout["node_ids"], "int64", "{order}: {layout}");
        assert_eq!(layout["compression"], "gzip", "{order}: {layout}");
        assert_eq!(layout["sorting"], order, "{order}: {layout}");
        let c = compare(&bmtk.join(order), 0);
        assert_eq!(c["identical"], true, "{order}: {c}");
        assert_eq!(c["only_in_a"], serde_json::json!([]), "{order}: {c}");
        assert_eq!(c["only_in_b"], serde_json::json!([]), "{order}: {c}");
    }

    // A population BMTK wrote without spikes.
    assert_eq!(written["layout"]["silent"]["I"]["node_ids"], "float64");
    let c = compare(&bmtk.join("silent"), 1);
    assert_eq!(c["identical"], false, "{c}");
    let pops = c["populations"].as_array().expect("populations");
    let by_name = |n: &str| {
        pops.iter()
            .find(|q| q["name"] == n)
            .unwrap_or_else(|| panic!("{n} missing: {c}"))
    };
    assert_eq!(by_name("E")["rate_mean_diff"].as_f64(), Some(0.0), "{c}");
    assert_eq!(by_name("I")["rate_mean_b"].as_f64(), Some(0.0), "{c}");
    assert!(
        by_name("I")["rate_mean_a"].as_f64().unwrap_or(0.0) > 1.0,
        "{c}"
    );
}
