//! The multi-area model (`configs/mam.toml`, data in `configs/mam/`):
//! exact neuron and synapse counts at full scale and at N = K = 0.006
//! against the spec's own checks, the compensating DC and the weights of
//! both states against the spec, the distributions of weights and delays of
//! chosen pairs against their closed forms (an inter-area pair's delay from
//! the cortical distance), area-aware placement, and the network and spikes
//! identical for 1 to 4 ranks, placements and exchange modes. The dynamics
//! against NEST 3.10 are in `mam_dynamics_match_nest`.

use snn_test_support::net as common;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use snn_formats::model::{dequantize_weight, Model};
use snn_formats::{Config, NetworkDir, Placement};
use snn_simulate::cluster::CommMode;
use snn_simulate::run::{run_ranks, Backend, RunOptions};
use support::{json, p, snn_build};

const SMALL: [&str; 2] = ["scale.neurons=0.006", "scale.indegree=0.006"];
const GROUND: [&str; 2] = ["mam.cc_weights_factor=1.0", "mam.cc_weights_I_factor=1.0"];

fn spec() -> Value {
    let path = snn_test_support::repo().join("configs/mam/mam_spec.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn mam_config(extra: &[&str]) -> Config {
    common::config("mam.toml", extra)
}

fn resolve(cfg: &Config) -> Model {
    Model::resolve(cfg, "mam.toml").unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(f64s).collect()
}

#[test]
fn full_scale_counts_from_the_dry_run() {
    // Any rank count gives the totals; a large one keeps the sampled rank
    // small.
    for ranks in ["4096", "1000"] {
        let out = snn_build([
            p(&snn_test_support::repo().join("configs/mam.toml")),
            "--dry-run".as_ref(),
            "--json".as_ref(),
            "--ranks".as_ref(),
            ranks.as_ref(),
        ])
        .expect_ok("dry run");
        let v = json(&out);
        assert_eq!(v["n_neurons"], 4_129_924, "{ranks} ranks");
        assert_eq!(v["total_synapses"], 24_126_516_728u64, "{ranks} ranks");
        assert_eq!(v["n_populations"], 254);
        assert_eq!(v["n_areas"], 32);
        assert_eq!(v["n_projections"], 8411);
    }
    // The spec's own totals.
    let s = spec();
    let t = &s["checks"]["totals_fullscale"];
    assert_eq!(t["neurons_total_int_truncated_per_population"], 4_129_924);
    assert_eq!(
        t["synapses_total_int_sum_floor_K_times_N"],
        24_126_516_728u64
    );
}

#[test]
fn downscaled_counts_sizes_and_dry_run() {
    let s = spec();
    let checks = &s["checks"]["downscaled_N0.006_K0.006"];
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let mut args: Vec<std::ffi::OsString> = vec![
        snn_test_support::repo().join("configs/mam.toml").into(),
        "-o".into(),
        net.clone().into(),
        "--ranks".into(),
        "3".into(),
        "--threads".into(),
        "2".into(),
    ];
    for s in SMALL {
        args.extend(["--set".into(), s.into()]);
    }
    snn_build(&args).expect_ok("build");
    let info = json(&snn_build(["info".as_ref(), p(&net), "--json".as_ref()]));
    assert_eq!(info["n_neurons"], 24_655);
    assert_eq!(info["total_synapses"], 865_334);
    assert_eq!(checks["metastable"]["n_synapses_created_total"], 865_334);
    let sizes: Vec<u64> = info["populations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["size"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = checks["N_created_per_population"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(sizes, expected);
    let names: Vec<&str> = info["populations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let index = s["population_index"].as_array().unwrap();
    for (n, ap) in names.iter().zip(index) {
        assert_eq!(
            *n,
            format!("{}_{}", ap[0].as_str().unwrap(), ap[1].as_str().unwrap())
        );
    }
    assert_eq!(names[0], "V1_23E");
    assert_eq!(*names.last().unwrap(), "TH_6I");
    // The dry run: the same totals for any rank count, and per rank the
    // counts of the real build's shards.
    for ranks in [1u32, 3, 5] {
        let sample: Vec<String> = (0..ranks).map(|r| r.to_string()).collect();
        let mut a = args.clone();
        a.truncate(1);
        a.extend([
            "--dry-run".into(),
            "--routing".into(),
            "--ranks".into(),
            ranks.to_string().into(),
            "--sample-ranks".into(),
            sample.join(",").into(),
        ]);
        for s in SMALL {
            a.extend(["--set".into(), s.into()]);
        }
        let v = json(&snn_build(&a).expect_ok("dry run"));
        assert_eq!(v["n_neurons"], 24_655, "{ranks} ranks");
        assert_eq!(v["total_synapses"], 865_334, "{ranks} ranks");
        let per: Vec<&Value> = v["ranks"].as_array().unwrap().iter().collect();
        let sum = |k: &str| per.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("synapses"), 865_334);
        assert_eq!(sum("n_local"), 24_655);
        // Every image is some other rank's send entry.
        assert_eq!(sum("n_images"), sum("send_entries"));
        if ranks == 3 {
            for (r, shard) in per.iter().zip(info["shards"].as_array().unwrap()) {
                for (k, m) in [
                    ("synapses", "synapses"),
                    ("n_local", "neurons"),
                    ("n_images", "images"),
                ] {
                    assert_eq!(r[k], shard[m], "rank {}: {k}", r["rank"]);
                }
                // The size is computed from the array lengths, without the
                // archive's alignment padding.
                let (est, real) = (
                    r["shard_bytes"].as_i64().unwrap(),
                    shard["bytes"].as_i64().unwrap(),
                );
                assert!(
                    (est - real).abs() <= 64,
                    "rank {}: {est} vs {real} bytes",
                    r["rank"]
                );
            }
        }
    }
}

#[test]
fn dc_and_weights_of_both_states_match_the_spec() {
    let s = spec();
    let checks = &s["checks"]["downscaled_N0.006_K0.006"];
    for (state, extra, w_key, sd_key) in [
        ("ground", &GROUND[..], "W_mean_ground", "W_sd_ground"),
        (
            "metastable",
            &[][..],
            "W_mean_metastable",
            "W_sd_metastable",
        ),
    ] {
        // The config as loaded holds the full-scale weights of the state:
        // equal bit for bit to the spec's matrices.
        let cfg = mam_config(extra);
        let (w, sd) = (matrix(&s[w_key]), matrix(&s[sd_key]));
        let pops: Vec<&str> = cfg.populations.iter().map(|p| p.name.as_str()).collect();
        let k = matrix(&s["K"]);
        let mut n_pairs = 0;
        for pr in &cfg.projections {
            let i = pops.iter().position(|&n| n == pr.target).unwrap();
            let j = pops.iter().position(|&n| n == pr.source).unwrap();
            let Some(snn_formats::config::Distribution::Random(
                snn_formats::config::RandomDistribution::Normal { mean, std, .. },
            )) = &pr.weight
            else {
                panic!("weights are normal")
            };
            assert_eq!((*mean, *std), (w[i][j], sd[i][j]), "{state} {}", pr.source);
            assert!(k[i][j] > 0.0);
            n_pairs += 1;
        }
        assert_eq!(n_pairs, 8411);
        // The compensating DC at N = K = 0.006 (the spec computes it in
        // another order of operations: agreement to 1e-12).
        let mut small = extra.to_vec();
        small.extend(SMALL);
        let model = resolve(&mam_config(&small));
        let i_e = f64s(&checks[state]["I_e_pA"]);
        for (pop, want) in model.populations.iter().zip(&i_e) {
            let got = pop.params.I_e;
            assert!(
                (got - want).abs() <= 1e-12 * want.abs(),
                "{state} {}: I_e {got} vs {want}",
                pop.name
            );
        }
        // The scaled weight of V1_23E <- V1_23E (mean / sqrt(k), sd kept)
        // and the Poisson drive.
        let pr = &model.projections[0];
        assert_eq!(model.populations[pr.target].name, "V1_23E");
        assert_eq!(model.populations[pr.source].name, "V1_23E");
        let snn_formats::model::Dist::Normal { mean, std, min, .. } = pr.weight_pa else {
            panic!("normal")
        };
        let want_mean = checks[state]["W_mean_pA_V1_23E_from_V1_23E"]
            .as_f64()
            .unwrap();
        assert!((mean - want_mean).abs() <= 1e-12 * want_mean);
        assert_eq!(
            std,
            checks[state]["W_sd_pA_V1_23E_from_V1_23E"]
                .as_f64()
                .unwrap()
        );
        assert_eq!(min, 0.0);
        let poisson = model.poisson.as_ref().unwrap();
        let w_ext = checks[state]["W_ext_pA"].as_f64().unwrap();
        assert!((poisson.weight_pa - w_ext).abs() <= 1e-12 * w_ext);
        assert_eq!(poisson.delay_steps, 10);
        for (pop, want) in model.populations.iter().zip(f64s(
            &checks[state]["poisson_rate_per_population_Hz_first5"],
        )) {
            assert!((pop.poisson_rate_hz - want).abs() <= 1e-12 * want);
        }
    }
}

/// Phi(x) of the standard normal (Abramowitz & Stegun 7.1.26, error below
/// 1.5e-7: far below what the sample sizes here resolve).
fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = poly * (-z * z).exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// The chi-square statistic of `counts` (by delay step) against a normal
/// (`mu`, `sd`) redrawn below `lo` and rounded to steps of `dt`, with bins
/// of fewer than 5 expected merged into their neighbour; and the degrees of
/// freedom.
fn delay_chi_square(
    counts: &BTreeMap<u32, u64>,
    mu: f64,
    sd: f64,
    lo: f64,
    dt: f64,
) -> (f64, usize) {
    let n: u64 = counts.values().sum();
    let keep = 1.0 - phi((lo - mu) / sd);
    let max_step = ((mu + 8.0 * sd) / dt).ceil() as u32 + 1;
    let mut bins: Vec<(f64, f64)> = Vec::new(); // (expected, observed)
    let (mut e_acc, mut o_acc) = (0.0, 0.0);
    for k in 1..=max_step {
        let a = ((k as f64 - 0.5) * dt).max(lo);
        let b = (k as f64 + 0.5) * dt;
        let prob = if k == max_step {
            1.0 - phi((a - mu) / sd)
        } else {
            phi((b - mu) / sd) - phi((a - mu) / sd)
        } / keep;
        e_acc += prob * n as f64;
        o_acc += *counts.get(&k).unwrap_or(&0) as f64;
        if e_acc >= 5.0 {
            bins.push((e_acc, o_acc));
            (e_acc, o_acc) = (0.0, 0.0);
        }
    }
    if let Some(last) = bins.last_mut() {
        last.0 += e_acc;
        last.1 += o_acc;
    }
    let chi2 = bins.iter().map(|(e, o)| (o - e) * (o - e) / e).sum();
    (chi2, bins.len() - 1)
}

/// Upper 0.1 % point of chi-square with `df` degrees of freedom
/// (Wilson-Hilferty).
fn chi2_critical(df: usize) -> f64 {
    let d = df as f64;
    let z = 3.09;
    d * (1.0 - 2.0 / (9.0 * d) + z * (2.0 / (9.0 * d)).sqrt()).powi(3)
}

#[test]
fn weights_and_delays_follow_their_distributions() {
    let s = spec();
    let tmp = tempfile::tempdir().unwrap();
    let mut over = GROUND.to_vec();
    over.extend(SMALL);
    let cfg = mam_config(&over);
    let net = tmp.path().join("net");
    common::build(&cfg, &net, 1, 2);
    let model = resolve(&cfg);
    let frac = NetworkDir::open(&net).unwrap().manifest.weight_frac_bits;
    let pop_of = |g: u64| model.population_of(g);
    // Synapses per (target, source) population pair.
    let mut pairs: BTreeMap<(usize, usize), Vec<(f64, u32)>> = BTreeMap::new();
    for (src, tgt, w, d) in common::synapses(&net) {
        pairs
            .entry((pop_of(tgt), pop_of(src)))
            .or_default()
            .push((dequantize_weight(w, frac), d));
    }
    let k_scale: f64 = 0.006;
    let dt = 0.1;
    // The weights and delays from the model's scalars, derived here: PSC
    // per PSP of these neurons (spec README) and the rules.
    let (c_m, tau_m, tau_s) = (250.0f64, 10.0f64, 0.5f64);
    let psc_per_psp = 1.0
        / ((1.0 / c_m) * tau_m * tau_s / (tau_s - tau_m)
            * ((tau_m / tau_s).powf(-tau_m / (tau_m - tau_s))
                - (tau_m / tau_s).powf(-tau_s / (tau_m - tau_s))));
    let w_e = psc_per_psp * 0.15;
    let areas: Vec<&str> = s["areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let dist = matrix(&s["distances_mm"]);
    let name = |p: usize| model.populations[p].name.as_str();
    let area_of = |p: usize| name(p).split('_').next().unwrap();
    let pick = |pred: &dyn Fn(usize, usize) -> bool| -> (usize, usize) {
        *pairs
            .iter()
            .filter(|((t, s), _)| pred(*t, *s))
            .max_by_key(|(_, v)| v.len())
            .unwrap()
            .0
    };
    let same_area = |t: usize, s: usize| area_of(t) == area_of(s);
    let e_src = |s: usize| name(s).ends_with('E');
    let cases = [
        (
            "intra E",
            pick(&|t, s| same_area(t, s) && e_src(s) && !name(t).ends_with("23E")),
        ),
        ("intra I", pick(&|t, s| same_area(t, s) && !e_src(s))),
        (
            "L4E->L23E",
            pick(&|t, s| same_area(t, s) && name(s).ends_with("_4E") && name(t).ends_with("_23E")),
        ),
        ("inter-area", pick(&|t, s| !same_area(t, s))),
    ];
    for (what, (t, src)) in cases {
        let syn = &pairs[&(t, src)];
        let n = syn.len() as f64;
        assert!(syn.len() >= 2000, "{what}: only {} synapses", syn.len());
        // Weight: normal(mean / sqrt(k), sd) with the full-scale sd.
        let w_full = match what {
            "intra E" | "inter-area" => w_e,
            "intra I" => -11.0 * w_e,
            _ => 2.0 * w_e,
        };
        let (mu, sd) = (w_full / k_scale.sqrt(), 0.1 * w_full.abs());
        let ws: Vec<f64> = syn.iter().map(|x| x.0).collect();
        let mean = ws.iter().sum::<f64>() / n;
        let var = ws.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / n;
        assert!(
            (mean - mu).abs() < 5.0 * sd / n.sqrt(),
            "{what}: weight mean {mean} vs {mu}"
        );
        assert!(
            (var.sqrt() - sd).abs() < 5.0 * sd / (2.0 * n).sqrt(),
            "{what}: weight sd {} vs {sd} (not rescaled)",
            var.sqrt()
        );
        let mut sorted = ws.clone();
        sorted.sort_by(f64::total_cmp);
        let ks = sorted
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let f = phi((w - mu) / sd);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max);
        assert!(ks < 1.95 / n.sqrt(), "{what}: weights KS {ks}");
        // Delay: normal(mean, mean / 2) redrawn below dt, rounded to steps;
        // between areas the mean is the distance / 3.5 mm/ms.
        let d_mean = if what == "inter-area" {
            let (ta, sa) = (area_of(t), area_of(src));
            let (ti, si) = (
                areas.iter().position(|a| *a == ta).unwrap(),
                areas.iter().position(|a| *a == sa).unwrap(),
            );
            assert!(dist[ti][si] > 0.0);
            dist[ti][si] / 3.5
        } else if e_src(src) {
            1.5
        } else {
            0.75
        };
        let mut counts = BTreeMap::new();
        for &(_, d) in syn {
            assert!(d >= 1, "{what}: delay below one step");
            *counts.entry(d).or_insert(0u64) += 1;
        }
        let (chi2, df) = delay_chi_square(&counts, d_mean, 0.5 * d_mean, dt, dt);
        assert!(
            chi2 < chi2_critical(df),
            "{what} ({} <- {}): delay chi-square {chi2} with {df} df (mean {d_mean} ms)",
            name(t),
            name(src)
        );
        println!(
            "{what:>10}: {} <- {}: {} synapses, weight {mean:.3} +- {:.3} pA (KS {ks:.4}), delay chi2 {chi2:.1}/{df} df (mean {d_mean:.3} ms)",
            name(t),
            name(src),
            syn.len(),
            var.sqrt()
        );
    }
    // Signs: excitatory sources and every inter-area pair never negative,
    // inhibitory sources within an area never positive.
    for ((t, src), syn) in &pairs {
        let positive = e_src(*src) || !same_area(*t, *src);
        assert!(
            syn.iter()
                .all(|x| if positive { x.0 >= 0.0 } else { x.0 <= 0.0 }),
            "sign of {} <- {}",
            name(*t),
            name(*src)
        );
    }
}

#[test]
fn area_placement_keeps_areas_together_and_balances_synapses() {
    let model = resolve(&mam_config(&SMALL));
    let full = resolve(&mam_config(&[]));
    for m in [&model, &full] {
        let load_of_pop: Vec<f64> = (0..m.populations.len())
            .map(|p| {
                1.0 + m
                    .projections
                    .iter()
                    .filter(|pr| pr.target == p)
                    .map(|pr| pr.expected_indegree(m))
                    .sum::<f64>()
            })
            .collect();
        for ranks in [2u32, 3, 8, 32, 128] {
            let pl = Placement::new(m, ranks).unwrap();
            let mut load = vec![0.0f64; ranks as usize];
            let mut ranks_of_area = vec![std::collections::BTreeSet::new(); m.areas.len()];
            for (p, pop) in m.populations.iter().enumerate() {
                for g in pop.first_id..pop.first_id + pop.size {
                    let (r, _) = pl.locate(g);
                    load[r as usize] += load_of_pop[p];
                    ranks_of_area[pop.area].insert(r);
                }
            }
            let mean = load.iter().sum::<f64>() / ranks as f64;
            let max = load.iter().cloned().fold(0.0, f64::max);
            // Cuts move by at most 5 % of the mean load; rounding to whole
            // neurons adds less than a neuron's load per population.
            assert!(
                max <= 1.1 * mean + 1e4,
                "{ranks} ranks: max load {max} vs mean {mean}"
            );
            let pieces: usize = ranks_of_area.iter().map(|s| s.len()).sum();
            assert!(
                pieces < m.areas.len() + ranks as usize,
                "{ranks} ranks: {pieces} (area, rank) pieces"
            );
            // Owned lists agree with locate.
            for r in 0..ranks {
                let owned = pl.owned(r);
                assert!(owned.windows(2).all(|w| w[0] < w[1]));
                for (l, &g) in owned.iter().enumerate() {
                    assert_eq!(pl.locate(g), (r, l as u32));
                }
            }
        }
    }
}

fn simulate(net: &Path, out: &Path, comm: CommMode, t_presim_ms: f64, t_sim_ms: f64, seed: u64) {
    let emulate = NetworkDir::open(net).unwrap().manifest.n_ranks > 1;
    let opts = RunOptions {
        network: net.to_path_buf(),
        output: out.to_path_buf(),
        t_presim_ms,
        t_sim_ms,
        seed,
        force: true,
        comm,
        comm_group_size: 0,
        vm_from_start: false,
        backend: Backend::Cpu,
    };
    run_ranks(&opts, emulate, &mut |_| {}).unwrap();
}

#[test]
fn network_and_spikes_are_the_same_for_any_ranks_placement_and_exchange() {
    let tmp = tempfile::tempdir().unwrap();
    let base = ["scale.neurons=0.003", "scale.indegree=0.003"];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let reference_net = tmp.path().join("n1");
        common::build(&mam_config(&base), &reference_net, 1, 2);
        let syn = common::synapses(&reference_net);
        assert!(syn.len() > 100_000);
        let r1 = tmp.path().join("r1");
        simulate(&reference_net, &r1, CommMode::P2p, 0.0, 150.0, 2);
        let reference = common::spikes(&r1);
        assert!(reference.len() > 1000, "{} spikes", reference.len());
        for (ranks, scheme) in [(2u32, "area"), (3, "area"), (4, "area"), (3, "round_robin")] {
            let mut over = base.to_vec();
            let s = format!("placement.scheme=\"{scheme}\"");
            over.push(&s);
            let net: PathBuf = tmp.path().join(format!("n{ranks}{scheme}"));
            common::build(&mam_config(&over), &net, ranks, 2);
            assert!(
                common::synapses(&net) == syn,
                "{ranks} ranks {scheme}: network"
            );
            for comm in [CommMode::P2p, CommMode::Collective] {
                let run = tmp.path().join(format!("r{ranks}{scheme}{comm:?}"));
                simulate(&net, &run, comm, 0.0, 150.0, 2);
                assert!(
                    common::spikes(&run) == reference,
                    "{ranks} ranks {scheme} {comm:?}: spikes"
                );
            }
        }
    });
}

/// The dynamics at N = K = 0.006 against NEST 3.10 running the same model
/// (`tests/reference/mam_nest.py`, its results in
/// `tests/reference/data/mam_nest_stats.json`, seeds 1 to 10): both
/// states, our seeds 1, 2, 3 (each the network's and the simulation's seed,
/// as NEST's `rng_seed` is), 500 ms presimulation and 2000 ms recorded,
/// statistics of the recorded window by `snn-analyze`'s definitions (the
/// same as the script's). The network-mean rate (mean over our seeds) must
/// be within 5 % of NEST's, and at least 95 % of the populations' mean rates
/// and mean CVs of ISI within three of NEST's seed-to-seed standard
/// deviations of NEST's mean.
#[test]
fn mam_dynamics_match_nest() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(
            snn_test_support::repo().join("tests/reference/data/mam_nest_stats.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for (state, extra) in [("ground", &GROUND[..]), ("metastable", &[][..])] {
        let nest = &reference["states"][state];
        let mut rates: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut cvs: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut network_rates = Vec::new();
        for seed in [1u64, 2, 3] {
            // As in NEST, where the seed redraws the connectivity too: at
            // this size the network drawn moves population rates by more
            // than the input and initial state do.
            let mut over = extra.to_vec();
            over.extend(SMALL);
            let network_seed = format!("network.seed={seed}");
            over.push(&network_seed);
            let net = tmp.path().join(format!("net-{state}-{seed}"));
            common::build(&mam_config(&over), &net, 1, 2);
            let run = tmp.path().join(format!("run-{state}-{seed}"));
            pool.install(|| simulate(&net, &run, CommMode::P2p, 500.0, 2000.0, seed));
            let report = snn_analysis::report::analyze_run(&snn_analysis::report::AnalyzeOptions {
                run_dir: run,
                report_dir: tmp.path().join(format!("report-{state}-{seed}")),
                t_start: Some(500.0),
                t_stop: Some(2500.0),
                force: true,
                stats: Default::default(),
                raster_neurons: 5,
                svg: false,
                progress: false,
            })
            .unwrap();
            let (mut spikes, mut neurons) = (0.0, 0.0);
            for p in report.stats.populations {
                let (r, n) = (p.rate_mean_hz.unwrap(), p.neurons as f64);
                spikes += r * n;
                neurons += n;
                rates.entry(p.name.clone()).or_default().push(r);
                if let Some(cv) = p.cv_isi_mean {
                    cvs.entry(p.name.clone()).or_default().push(cv);
                }
            }
            network_rates.push(spikes / neurons);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let ours = mean(&network_rates);
        let theirs = nest["network_rate_hz"]["mean"].as_f64().unwrap();
        println!(
            "{state}: network rate {ours:.3} Hz (seeds {network_rates:.3?}), NEST {theirs:.3} Hz ({:+.1} %)",
            100.0 * (ours / theirs - 1.0)
        );
        // Seed-to-seed spread of population rates (sd / mean over our
        // seeds), for the record beside NEST's.
        let mut spread: Vec<f64> = rates
            .values()
            .filter(|v| mean(v) > 0.0)
            .map(|v| {
                let m = mean(v);
                let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
                var.sqrt() / m
            })
            .collect();
        spread.sort_by(f64::total_cmp);
        let q = |f: f64| spread[((spread.len() - 1) as f64 * f).round() as usize];
        println!(
            "{state}: seed-to-seed spread of population rates: median {:.3}, 90th percentile {:.3}",
            q(0.5),
            q(0.9)
        );
        if (ours / theirs - 1.0).abs() > 0.05 {
            failures.push(format!(
                "{state}: network rate {ours:.3} vs NEST {theirs:.3} Hz"
            ));
        }
        for (what, ours, key) in [("rate", &rates, "rate_hz"), ("CV ISI", &cvs, "cv_isi")] {
            let (mut inside, mut tested, mut worst) = (0, 0, Vec::new());
            for (name, v) in ours {
                let (Some(m), Some(sd)) = (
                    nest["mean_over_seeds"][name][key].as_f64(),
                    nest["sd_over_seeds"][name][key].as_f64(),
                ) else {
                    continue;
                };
                if v.len() < 3 {
                    continue;
                }
                tested += 1;
                let z = (mean(v) - m) / sd.max(1e-12);
                if z.abs() <= 3.0 {
                    inside += 1;
                } else {
                    worst.push(format!("{name} {:.3} vs {m:.3} ({z:+.1} sd)", mean(v)));
                }
            }
            println!(
                "{state}: {what}: {inside} of {tested} populations within 3 sd of NEST; outside: {worst:?}"
            );
            if tested < 200 || (inside as f64) < 0.95 * tested as f64 {
                failures.push(format!("{state}: {what}: {inside} of {tested} within 3 sd"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// A `[mam]` config over edited copies of the data files: every mistake is
/// one line naming the data file and the field, and no output is left.
#[test]
fn bad_data_files_are_one_line_errors_naming_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let spec_text =
        std::fs::read_to_string(snn_test_support::repo().join("configs/mam/mam_spec.json"))
            .unwrap();
    let rates_text =
        std::fs::read_to_string(snn_test_support::repo().join("configs/mam/fullscale_rates.json"))
            .unwrap();
    let config = tmp.path().join("mam.toml");
    std::fs::write(
        &config,
        "[network]\nname = \"mam\"\n\n[mam]\nspec = \"spec.json\"\nrates = \"rates.json\"\n\n[scale]\nneurons = 0.006\nindegree = 0.006\nrounding = \"truncate\"\ncompensate_indegree = true\nscale_weight_std = false\n",
    )
    .unwrap();
    type Edit = Box<dyn Fn(&mut Value, &mut Value) -> Option<(f64, &'static str)>>;
    // (what, edit of (spec, rates) returning a number to write as a bare
    // token instead, file named, field named)
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "row too short",
            Box::new(|s, _| {
                s["K"][3].as_array_mut().unwrap().pop();
                None
            }),
            "spec.json",
            "K[3]: has 253 entries, expected 254",
        ),
        (
            "too few rows",
            Box::new(|s, _| {
                s["N"].as_array_mut().unwrap().pop();
                None
            }),
            "spec.json",
            "N: has 31 rows, expected 32",
        ),
        (
            "NaN",
            Box::new(|s, _| {
                s["K"][0][5] = 12345.678.into();
                Some((12345.678, "NaN"))
            }),
            "spec.json",
            "K[0][5]",
        ),
        (
            "infinite",
            Box::new(|s, _| {
                s["delay_mean"][7][9] = 12345.678.into();
                Some((12345.678, "1e999"))
            }),
            "spec.json",
            "delay_mean[7][9]",
        ),
        (
            "negative in-degree",
            Box::new(|s, _| {
                s["K"][2][2] = (-1.0).into();
                None
            }),
            "spec.json",
            "K[2][2]: must be >= 0, got -1",
        ),
        (
            "negative size",
            Box::new(|s, _| {
                s["N"][4][1] = (-3.5).into();
                None
            }),
            "spec.json",
            "N[4][1]: must be >= 0",
        ),
        (
            "wrong type",
            Box::new(|s, _| {
                s["K_ext"][17] = "many".into();
                None
            }),
            "spec.json",
            "K_ext[17]: invalid type",
        ),
        (
            "unknown area",
            Box::new(|s, _| {
                s["population_index"][5][0] = "V9".into();
                None
            }),
            "spec.json",
            "population_index[5]: unknown area 'V9'",
        ),
        (
            "unknown population",
            Box::new(|s, _| {
                s["population_index"][6][1] = "7E".into();
                None
            }),
            "spec.json",
            "population_index[6]: unknown population '7E'",
        ),
        (
            "missing field",
            Box::new(|s, _| {
                s.as_object_mut().unwrap().remove("delay_sd");
                None
            }),
            "spec.json",
            "delay_sd",
        ),
        (
            "rates: unknown area",
            Box::new(|_, r| {
                r["V9"] = serde_json::json!({"23E": 1.0});
                None
            }),
            "rates.json",
            "V9: unknown area",
        ),
        (
            "rates: unknown population",
            Box::new(|_, r| {
                r["V2"]["7E"] = 1.0.into();
                None
            }),
            "rates.json",
            "V2.7E: unknown population",
        ),
        (
            "rates: missing",
            Box::new(|_, r| {
                r["MT"].as_object_mut().unwrap().remove("5I");
                None
            }),
            "rates.json",
            "MT.5I: missing",
        ),
        (
            "rates: negative",
            Box::new(|_, r| {
                r["V4"]["6E"] = (-0.5).into();
                None
            }),
            "rates.json",
            "V4.6E: must be >= 0",
        ),
    ];
    for (what, edit, file, field) in cases {
        let mut spec: Value = serde_json::from_str(&spec_text).unwrap();
        let mut rates: Value = serde_json::from_str(&rates_text).unwrap();
        let token = edit(&mut spec, &mut rates);
        let mut s = serde_json::to_string(&spec).unwrap();
        let mut r = serde_json::to_string(&rates).unwrap();
        if let Some((v, t)) = token {
            s = s.replace(&v.to_string(), t);
            r = r.replace(&v.to_string(), t);
        }
        std::fs::write(tmp.path().join("spec.json"), s).unwrap();
        std::fs::write(tmp.path().join("rates.json"), r).unwrap();
        let out_dir = tmp.path().join("out");
        let out = snn_build([p(&config), "-o".as_ref(), p(&out_dir)]);
        let line = out.expect_clean_error(what, &[file, field]);
        assert!(!out_dir.exists(), "{what}: output left");
        println!("{what}: {line}");
    }
    // A missing data file, and a [mam] beside populations of its own.
    std::fs::remove_file(tmp.path().join("rates.json")).unwrap();
    snn_build([p(&config), "-o".as_ref(), p(&tmp.path().join("o"))])
        .expect_clean_error("missing file", &["rates.json", "cannot read"]);
    std::fs::write(tmp.path().join("rates.json"), &rates_text).unwrap();
    std::fs::write(tmp.path().join("spec.json"), &spec_text).unwrap();
    let mixed = tmp.path().join("mixed.toml");
    std::fs::write(
        &mixed,
        format!(
            "{}\n[[populations]]\nname = \"X\"\nsize = 3\n",
            std::fs::read_to_string(&config).unwrap()
        ),
    )
    .unwrap();
    snn_build([p(&mixed), "-o".as_ref(), p(&tmp.path().join("o"))])
        .expect_clean_error("mixed", &["mixed.toml", "mam", "remove [[populations]]"]);
    // And the unedited copies build.
    snn_build([p(&config), "-o".as_ref(), p(&tmp.path().join("ok"))]).expect_ok("unedited data");
}

/// `--only-ranks`: the shards written are the very files of a whole build
/// (send tables included), for area and round-robin placement; the
/// directory is no network; a rank out of range is a one-line error.
#[test]
fn only_ranks_writes_the_shards_of_a_whole_build() {
    let tmp = tempfile::tempdir().unwrap();
    let config = snn_test_support::repo().join("configs/mam.toml");
    for (scheme, only) in [("area", "1,3"), ("round_robin", "2")] {
        let sets = [
            "--set",
            "scale.neurons=0.004",
            "--set",
            "scale.indegree=0.004",
            "--set",
        ];
        let placement = format!("placement.scheme=\"{scheme}\"");
        let whole = tmp.path().join(format!("whole-{scheme}"));
        let part = tmp.path().join(format!("part-{scheme}"));
        let mut a: Vec<std::ffi::OsString> = vec![config.clone().into(), "-o".into()];
        let mut b = a.clone();
        a.push(whole.clone().into());
        b.push(part.clone().into());
        for v in [&mut a, &mut b] {
            v.extend(sets.iter().map(|s| s.into()));
            v.extend([placement.clone().into(), "--ranks".into(), "4".into()]);
        }
        b.extend(["--only-ranks".into(), only.into(), "--json".into()]);
        snn_build(&a).expect_ok("whole build");
        let summary = json(&snn_build(&b).expect_ok("partial build"));
        let ranks: Vec<u32> = only.split(',').map(|r| r.parse().unwrap()).collect();
        assert_eq!(summary["built_ranks"], serde_json::json!(ranks));
        let mut synapses = 0;
        for &r in &ranks {
            let f = snn_formats::shard::shard_file_name(r);
            assert!(
                std::fs::read(whole.join(&f)).unwrap() == std::fs::read(part.join(&f)).unwrap(),
                "{scheme}: rank {r} differs from the whole build's"
            );
            synapses += NetworkDir::open(&whole).unwrap().manifest.shards[r as usize].synapses;
        }
        assert_eq!(summary["total_synapses"], synapses);
        for r in (0..4).filter(|r| !ranks.contains(r)) {
            assert!(!part.join(snn_formats::shard::shard_file_name(r)).exists());
        }
        // Not a network.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_snn-sim"))
            .arg(&part)
            .args([
                "-o",
                &tmp.path().join("run").to_string_lossy(),
                "--t-sim",
                "1",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("partial build"),
            "{err}"
        );
    }
    snn_build([
        p(&config),
        "-o".as_ref(),
        p(&tmp.path().join("x")),
        "--ranks".as_ref(),
        "4".as_ref(),
        "--only-ranks".as_ref(),
        "4".as_ref(),
    ])
    .expect_clean_error(
        "rank out of range",
        &["--only-ranks", "rank 4", "--ranks 4"],
    );
}
