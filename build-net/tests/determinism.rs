//! The determinism contract of construction (`ARCHITECTURE.md`): the
//! multiset of synapses (global source, global target, weight bits, delay)
//! does not depend on the number of ranks, the placement or the number of
//! threads, and each shard file is byte-identical across thread counts.

use snn_test_support::net as common;

use common::{build, config, config_text, synapses};

/// A small model that uses every rule, with and without autapses and
/// multapses, and every distribution.
const ALL_RULES: &str = r#"
[network]
name = "all_rules"
seed = 7

[placement]
scheme = "round_robin"

[[populations]]
name = "A"
size = 150

[[populations]]
name = "B"
size = 90
params = { model = "iaf_psc_alpha" }

[[populations]]
name = "C"
size = 90

[[projections]]
source = "A"
target = "A"
rule = "fixed_indegree"
indegree = 40
allow_autapses = false
allow_multapses = false
weight = { distribution = "normal", mean = 20.0, std = 5.0, min = 0.0 }
delay = { distribution = "normal", mean = 1.5, std = 0.75, min = 0.05 }

[[projections]]
source = "A"
target = "B"
rule = "fixed_indegree"
indegree = 60
weight = { distribution = "uniform", min = 1.0, max = 3.0 }
delay = { distribution = "uniform", min = 0.1, max = 4.0 }

[[projections]]
source = "B"
target = "A"
rule = "fixed_total_number"
N = 5000
allow_autapses = false
weight = { distribution = "normal", mean = -80.0, std = 20.0, max = 0.0, bounds = "clip" }
delay = 0.8

[[projections]]
source = "C"
target = "C"
rule = "pairwise_bernoulli"
p = 0.1
allow_autapses = false
weight = -5.5
delay = { distribution = "normal", mean = 2.0, std = 1.0, min = 0.1 }

[[projections]]
source = "B"
target = "C"
rule = "one_to_one"
weight = 100.0
delay = 0.1

[[projections]]
source = "C"
target = "B"
rule = "all_to_all"
weight = { distribution = "normal", mean = 3.0, std = 1.0 }
delay = 3.0

[[projections]]
source = "A"
target = "C"
rule = "fixed_total_number"
N = 20000
weight = 4.0
delay = { distribution = "normal", mean = 1.0, std = 0.5, min = 0.2, max = 2.0 }
"#;

#[test]
fn all_rules_same_network_for_any_ranks_threads_and_placement() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = {
        let cfg = config_text(ALL_RULES, &[]);
        let d = tmp.path().join("ref");
        build(&cfg, &d, 1, 1);
        synapses(&d)
    };
    assert!(reference.len() > 20_000);
    let placements: [&[&str]; 3] = [
        &["placement.scheme=\"round_robin\""],
        &["placement.scheme=\"block\""],
        &[
            "placement.scheme=\"population\"",
            "placement.population_ranks.A=0",
            "placement.population_ranks.B=1",
            "placement.population_ranks.C=1",
        ],
    ];
    for overrides in placements {
        let cfg = config_text(ALL_RULES, overrides);
        for ranks in [1u32, 2, 3, 7] {
            for threads in [1usize, 2, 3] {
                let d = tmp.path().join(format!("n{ranks}-{threads}"));
                build(&cfg, &d, ranks, threads);
                let got = synapses(&d);
                assert!(
                    got == reference,
                    "{overrides:?} ranks={ranks} threads={threads}: network differs"
                );
            }
        }
    }
}

#[test]
fn microcircuit_same_network_for_ranks_1_2_3_7() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        "microcircuit.toml",
        &["scale.neurons=0.1", "scale.indegree=0.1"],
    );
    let d1 = tmp.path().join("r1");
    let s1 = build(&cfg, &d1, 1, 2);
    assert_eq!(s1.total_synapses, 2_988_807);
    let reference = synapses(&d1);
    assert_eq!(reference.len() as u64, s1.total_synapses);
    for ranks in [2u32, 3, 7] {
        let d = tmp.path().join(format!("r{ranks}"));
        let s = build(&cfg, &d, ranks, 2);
        assert_eq!(s.total_synapses, s1.total_synapses);
        assert!(
            synapses(&d) == reference,
            "microcircuit with {ranks} ranks differs from 1 rank"
        );
    }
}

#[test]
fn balanced_same_network_for_ranks_1_and_3() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        "balanced.toml",
        &["scale.neurons=0.2", "scale.indegree=0.1"],
    );
    let d1 = tmp.path().join("r1");
    let s1 = build(&cfg, &d1, 1, 2);
    // 2250 neurons, in-degree 900 + 225.
    assert_eq!(s1.n_neurons, 2250);
    assert_eq!(s1.total_synapses, 2250 * 1125);
    let d3 = tmp.path().join("r3");
    build(&cfg, &d3, 3, 1);
    assert!(synapses(&d1) == synapses(&d3));
}

#[test]
fn shards_byte_identical_across_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in [("all_rules", Some(ALL_RULES)), ("microcircuit", None)] {
        let cfg = match text {
            Some(t) => config_text(t, &[]),
            None => config(
                "microcircuit.toml",
                &["scale.neurons=0.05", "scale.indegree=0.05"],
            ),
        };
        let mut first: Option<Vec<Vec<u8>>> = None;
        for threads in [1usize, 2, 3] {
            let d = tmp.path().join(format!("{name}-{threads}"));
            build(&cfg, &d, 3, threads);
            let files: Vec<Vec<u8>> = (0..3)
                .map(|r| std::fs::read(d.join(snn_formats::shard::shard_file_name(r))).unwrap())
                .collect();
            match &first {
                None => first = Some(files),
                Some(f) => assert!(
                    *f == files,
                    "{name}: shards differ between 1 and {threads} threads"
                ),
            }
        }
    }
}

#[test]
fn different_seed_gives_different_network() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    build(&config_text(ALL_RULES, &[]), &a, 1, 1);
    build(&config_text(ALL_RULES, &["network.seed=8"]), &b, 1, 1);
    assert!(synapses(&a) != synapses(&b));
}
