//! The NEST reference traces in `tests/reference/data`, for the tests that
//! replay them (`simulate/tests/nest_exactness.rs` on the neuron code,
//! `tests/sim_nest_e2e.rs` through a whole run): both check with
//! [`assert_every_trace_tested`] that no trace is left out.

use std::path::Path;

/// The names (file stems) of the trace files in `dir`, sorted: the JSON
/// files with V_m samples (network-level statistics live beside them).
pub fn trace_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v.get("v_m").is_some()
        })
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Panics unless `tested` names exactly the traces in `dir`.
pub fn assert_every_trace_tested(dir: &Path, tested: &[&str]) {
    let names = trace_names(dir);
    for n in &names {
        assert!(
            tested.contains(&n.as_str()),
            "reference {n}.json is not tested"
        );
    }
    for t in tested {
        assert!(
            names.iter().any(|n| n == t),
            "reference {t}.json is missing"
        );
    }
}
