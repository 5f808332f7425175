//! End to end: building the 10 % microcircuit gives exactly the synapse count
//! per projection of NEST's Potjans_2014 example
//! (`tests/data/microcircuit_params.json`, `derived_N0.1_K0.1`).

use snn_netbuild::{build_network, BuildOptions};

#[test]
fn microcircuit_0_1_synapse_counts_match_nest() {
    let text = std::fs::read_to_string(
        snn_test_support::repo().join("tests/data/microcircuit_params.json"),
    )
    .expect("reference");
    let r: serde_json::Value = serde_json::from_str(&text).expect("reference parses");
    let b = &r["derived_N0.1_K0.1"];
    let names: Vec<&str> = r["populations"]
        .as_array()
        .expect("populations")
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    let table: Vec<Vec<u64>> = b["num_synapses_total_target_by_source"]
        .as_array()
        .expect("table")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_u64().expect("count"))
                .collect()
        })
        .collect();

    let ov = vec![
        "scale.neurons=0.1".to_string(),
        "scale.indegree=0.1".to_string(),
    ];
    let cfg = snn_formats::load_config(
        &snn_test_support::repo().join("configs/microcircuit.toml"),
        &ov,
    )
    .expect("config");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("net");
    let opts = BuildOptions {
        n_ranks: 2,
        ..Default::default()
    };
    let summary = build_network(&cfg, "configs/microcircuit.toml", &dest, &opts).expect("build");

    let mut seen = vec![vec![false; names.len()]; names.len()];
    for p in &summary.projections {
        let s = names
            .iter()
            .position(|&n| n == p.source)
            .expect("source population");
        let t = names
            .iter()
            .position(|&n| n == p.target)
            .expect("target population");
        assert!(!seen[t][s], "{} twice", p.name);
        seen[t][s] = true;
        assert_eq!(p.synapses, table[t][s], "{}: synapses built", p.name);
    }
    for (t, row) in table.iter().enumerate() {
        for (s, &n) in row.iter().enumerate() {
            assert!(
                seen[t][s] || n == 0,
                "{} -> {}: not built, reference {n}",
                names[s],
                names[t]
            );
        }
    }
    let total: u64 = summary.projections.iter().map(|p| p.synapses).sum();
    assert_eq!(total, 2_988_807);
    assert_eq!(summary.total_synapses, 2_988_807);
    assert_eq!(total, b["num_synapses_sum"].as_u64().expect("sum"));
    let sizes: Vec<u64> = b["N"]
        .as_array()
        .expect("N")
        .iter()
        .map(|v| v.as_u64().expect("N"))
        .collect();
    assert_eq!(summary.n_neurons, sizes.iter().sum::<u64>());

    // The shards hold exactly what the summary says.
    let net = snn_formats::NetworkDir::open(&dest).expect("open");
    let stored: u64 = (0..net.manifest.n_ranks)
        .map(|r| {
            let s = net
                .open_shard(r, snn_formats::Check::Structure)
                .expect("shard");
            s.data().syn_weight.len() as u64
        })
        .sum();
    assert_eq!(stored, 2_988_807);
}
