//! Networks for the tests: configs, builds through the library, the
//! synapses of a built network, the spikes of a run.

use std::path::Path;

use crate::repo;

use snn_formats::model::dequantize_weight;
use snn_formats::{Check, Config, NetworkDir};
use snn_netbuild::{build_network, BuildOptions, BuildSummary};

/// Load a config from the repo's configs/ with overrides.
pub fn config(name: &str, overrides: &[&str]) -> Config {
    let ov: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    snn_formats::load_config(&repo().join("configs").join(name), &ov).expect("config")
}

/// Parse a config from text with overrides.
pub fn config_text(text: &str, overrides: &[&str]) -> Config {
    let ov: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    snn_formats::parse_config(text, "test.toml", &ov).expect("config")
}

/// Build `cfg` with `ranks` shards on a pool of `threads` threads.
pub fn build(cfg: &Config, dir: &Path, ranks: u32, threads: usize) -> BuildSummary {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let opts = BuildOptions {
        n_ranks: ranks,
        force: true,
        ..Default::default()
    };
    pool.install(|| build_network(cfg, "test.toml", dir, &opts))
        .expect("build")
}

/// One synapse with global ids: (source, target, weight bits as stored,
/// delay steps).
pub type Syn = (u64, u64, i32, u32);

/// All synapses of a network, sorted (the multiset).
pub fn synapses(dir: &Path) -> Vec<Syn> {
    let net = NetworkDir::open(dir).expect("open");
    let mut out = Vec::new();
    for r in 0..net.manifest.n_ranks {
        let shard = net.open_shard(r, Check::Full).expect("shard");
        let d = shard.data();
        let tb = d.target_bits.to_native();
        let mask = (1u32 << tb) - 1;
        for row in 0..d.row_ptr.len() - 1 {
            let src = d.row_source(row);
            for i in d.row_synapses(row) {
                let td = d.syn_target_delay[i].to_native();
                out.push((
                    src,
                    d.local_to_global[(td & mask) as usize].to_native(),
                    d.syn_weight[i].to_native(),
                    td >> tb,
                ));
            }
        }
    }
    out.sort_unstable();
    out
}

/// Weight in pA of a stored weight of network `dir`.
pub fn weight_pa(dir: &Path, w: i32) -> f64 {
    let net = NetworkDir::open(dir).expect("open");
    dequantize_weight(w, net.manifest.weight_frac_bits)
}

/// Every spike of a run directory as (time bits, population, population-local
/// id), sorted: two runs' spikes are identical bit for bit when these lists
/// are equal.
pub fn spikes(run: &Path) -> Vec<(u64, String, u64)> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(run).expect("read run directory") {
        let path = f.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("spikes-rank-"))
        {
            for pop in snn_formats::sonata::read_spikes(&path).expect("read spikes") {
                for (t, id) in pop.timestamps_ms.iter().zip(&pop.node_ids) {
                    out.push((t.to_bits(), pop.name.clone(), *id));
                }
            }
        }
    }
    out.sort();
    out
}
