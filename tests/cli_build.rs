//! End-to-end tests of the `snn-build` command line: build, `info`
//! (text and JSON), `verify`, `dump`, `--force`, `--compress`, and clean
//! one-line errors for everything a user can get wrong.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::{build_small, entries, fixture, json, p, shipped_config, snapshot, snn_build, Out};

/// One dumped synapse: (source, target, weight pA, delay ms).
type Row = (u64, u64, f64, f64);

#[track_caller]
fn parse_dump(out: &Out) -> Vec<Row> {
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("source,target,weight_pA,delay_ms"),
        "dump header"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "dump line {l:?}");
            (
                f[0].parse().expect("source"),
                f[1].parse().expect("target"),
                f[2].parse().expect("weight"),
                f[3].parse().expect("delay"),
            )
        })
        .collect()
}

fn sum_projections(v: &serde_json::Value) -> u64 {
    v["projections"]
        .as_array()
        .expect("projections")
        .iter()
        .map(|p| p["synapses"].as_u64().expect("synapses"))
        .sum()
}

#[test]
fn small_network_build_info_verify_dump() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    let built = build_small(&net, &["--ranks", "3", "--json"]).expect_ok("build");
    let b = json(&built);
    let total = b["total_synapses"].as_u64().expect("total_synapses");
    assert_eq!(
        total,
        sum_projections(&b),
        "build --json: total = sum over projections"
    );
    assert_eq!(b["n_neurons"].as_u64(), Some(200));
    assert_eq!(b["n_ranks"].as_u64(), Some(3));
    // Rules with a fixed count, from the fixture by hand.
    let by_name = |name: &str| -> u64 {
        b["projections"]
            .as_array()
            .expect("projections")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("projection {name}"))["synapses"]
            .as_u64()
            .expect("count")
    };
    assert_eq!(by_name("E->E"), 90 * 20);
    assert_eq!(by_name("E->I"), 50 * 30);
    assert_eq!(by_name("I->E"), 1500);
    assert_eq!(by_name("I->X"), 50);
    assert_eq!(by_name("X->X"), 50 * 49);
    assert_eq!(by_name("stim->E"), 10 * 90);
    let bern = by_name("I->I");
    assert!(
        (350..=630).contains(&bern),
        "pairwise_bernoulli p=0.2 of 50*49 pairs: {bern}"
    );

    // info (text)
    let info = snn_build([p(Path::new("info")), p(&net)]).expect_ok("info");
    for s in [
        "E",
        "I",
        "X",
        "stim",
        "E->E",
        "I->X",
        "X->X",
        "stim->E",
        "bytes/synapse",
    ] {
        assert!(
            info.stdout.contains(s),
            "info lacks {s:?}:\n{}",
            info.stdout
        );
    }
    for rule in [
        "fixed_indegree",
        "fixed_total_number",
        "pairwise_bernoulli",
        "one_to_one",
        "all_to_all",
    ] {
        assert!(info.stdout.contains(rule), "info lacks rule {rule}");
    }
    assert!(
        info.stdout.contains(&total.to_string()),
        "info lacks the total"
    );

    // info --json
    let ij = json(
        &snn_build([p(Path::new("info")), p(&net), p(Path::new("--json"))])
            .expect_ok("info --json"),
    );
    assert_eq!(ij["total_synapses"].as_u64(), Some(total));
    assert_eq!(sum_projections(&ij), total);
    assert_eq!(ij["n_ranks"].as_u64(), Some(3));
    let shards = ij["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3);
    let shard_syn: u64 = shards
        .iter()
        .map(|s| s["synapses"].as_u64().expect("synapses"))
        .sum();
    assert_eq!(shard_syn, total);
    let shard_bytes: u64 = shards
        .iter()
        .map(|s| s["bytes"].as_u64().expect("bytes"))
        .sum();
    let on_disk: u64 = (0..3)
        .map(|r| {
            std::fs::metadata(net.join(format!("rank-{r:05}.shard")))
                .expect("shard")
                .len()
        })
        .sum();
    assert_eq!(shard_bytes, on_disk);
    let bps = ij["bytes_per_synapse"].as_f64().expect("bytes_per_synapse");
    assert!((bps - on_disk as f64 / total as f64).abs() < 1e-9);

    // verify
    let v = snn_build([p(Path::new("verify")), p(&net)]).expect_ok("verify");
    assert!(v.stdout.starts_with("ok"), "{}", v.stdout);
    assert!(v.stdout.contains(&total.to_string()));

    // dump: header, one line per synapse, global ids
    let d = snn_build([p(Path::new("dump")), p(&net)]).expect_ok("dump");
    assert_eq!(d.stdout.lines().count() as u64, total + 1);
    let rows = parse_dump(&d);
    for &(s, t, w, delay) in &rows {
        assert!(s < 210 && t < 200, "ids out of range: {s} {t}");
        assert!(w.is_finite());
        let steps = delay / 0.1;
        assert!(
            delay >= 0.1 - 1e-12 && (steps - steps.round()).abs() < 1e-9,
            "delay {delay}"
        );
    }
    // Rules visible in the dump: no autapses in E->E and X->X, E->E without
    // multapses, one_to_one I[i] -> X[i] with its constant weight.
    let ee: Vec<(u64, u64)> = rows
        .iter()
        .filter(|r| r.0 < 90 && r.1 < 90)
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(ee.len(), 1800);
    assert!(ee.iter().all(|(s, t)| s != t), "autapse in E->E");
    assert_eq!(
        ee.iter().collect::<BTreeSet<_>>().len(),
        ee.len(),
        "multapse in E->E"
    );
    let ix: Vec<&Row> = rows
        .iter()
        .filter(|r| (90..140).contains(&r.0) && r.1 >= 140)
        .collect();
    assert_eq!(ix.len(), 50);
    assert!(
        ix.iter()
            .all(|r| r.1 == r.0 + 50 && r.2 == 55.5 && r.3 == 0.1),
        "one_to_one"
    );
    assert!(
        !rows.iter().any(|r| r.0 >= 140 && r.0 < 190 && r.0 == r.1),
        "autapse in X->X"
    );
}

#[test]
fn dump_rank_restricts_to_owned_targets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    build_small(&net, &["--ranks", "3"]).expect_ok("build");
    let ij =
        json(&snn_build([p(Path::new("info")), p(&net), p(Path::new("--json"))]).expect_ok("info"));
    let full = parse_dump(&snn_build([p(Path::new("dump")), p(&net)]).expect_ok("dump"));
    let mut union = Vec::new();
    for r in 0..3u64 {
        let out = snn_build([
            "dump".as_ref(),
            p(&net),
            "--rank".as_ref(),
            r.to_string().as_ref(),
        ]);
        let rows = parse_dump(&out.expect_ok("dump --rank"));
        assert_eq!(
            rows.len() as u64,
            ij["shards"][r as usize]["synapses"]
                .as_u64()
                .expect("synapses"),
            "rank {r}"
        );
        // The fixture places neurons round robin: rank r owns ids = r mod 3.
        assert!(
            rows.iter().all(|row| row.1 % 3 == r),
            "rank {r} dumped a target it does not own"
        );
        union.extend(rows);
    }
    let key = |r: &Row| (r.0, r.1, r.2.to_bits(), r.3.to_bits());
    let mut a: Vec<_> = union.iter().map(key).collect();
    let mut b: Vec<_> = full.iter().map(key).collect();
    a.sort_unstable();
    b.sort_unstable();
    assert!(a == b, "per-rank dumps do not add up to the full dump");

    let out = snn_build([
        p(Path::new("dump")),
        p(&net),
        "--rank".as_ref(),
        "3".as_ref(),
    ]);
    out.expect_clean_error("dump --rank 3", &["--rank 3", "3 ranks"]);
    assert!(out.stdout.is_empty(), "no CSV on error: {}", out.stdout);
}

#[test]
fn microcircuit_bytes_per_synapse_at_most_8_5() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for ranks in ["1", "4"] {
        let net = tmp.path().join(format!("mc{ranks}"));
        let out = snn_build([
            p(&shipped_config("microcircuit.toml")),
            "-o".as_ref(),
            p(&net),
            "--ranks".as_ref(),
            ranks.as_ref(),
            "--set".as_ref(),
            "scale.neurons=0.1".as_ref(),
            "--set".as_ref(),
            "scale.indegree=0.1".as_ref(),
            "--json".as_ref(),
        ])
        .expect_ok("build microcircuit");
        let b = json(&out);
        assert_eq!(b["total_synapses"].as_u64(), Some(2_988_807));
        assert_eq!(sum_projections(&b), 2_988_807);
        let bps = b["bytes_per_synapse"].as_f64().expect("bytes_per_synapse");
        assert!(bps <= 8.5, "--ranks {ranks}: {bps} bytes/synapse");
        let ij = json(
            &snn_build([p(Path::new("info")), p(&net), p(Path::new("--json"))]).expect_ok("info"),
        );
        let disk: u64 = std::fs::read_dir(&net)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".shard"))
            .map(|e| e.metadata().expect("meta").len())
            .sum();
        let disk_bps = disk as f64 / 2_988_807.0;
        assert!(
            disk_bps <= 8.5,
            "--ranks {ranks}: shards on disk {disk_bps} bytes/synapse"
        );
        assert!((ij["bytes_per_synapse"].as_f64().expect("bps") - disk_bps).abs() < 1e-9);
    }
}

#[test]
fn microcircuit_5_percent_info_verify_dump() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("mc");
    let b = json(
        &snn_build([
            p(&shipped_config("microcircuit.toml")),
            "-o".as_ref(),
            p(&net),
            "--ranks".as_ref(),
            "2".as_ref(),
            "--threads".as_ref(),
            "2".as_ref(),
            "--set".as_ref(),
            "scale.neurons=0.05".as_ref(),
            "--set".as_ref(),
            "scale.indegree=0.05".as_ref(),
            "--json".as_ref(),
        ])
        .expect_ok("build"),
    );
    let total = b["total_synapses"].as_u64().expect("total");
    assert_eq!(total, sum_projections(&b));
    let info = snn_build([p(Path::new("info")), p(&net)]).expect_ok("info");
    for s in [
        "L23E",
        "L6I",
        "L4E->L23E",
        "fixed_total_number",
        "bytes/synapse",
    ] {
        assert!(info.stdout.contains(s), "info lacks {s}");
    }
    snn_build([p(Path::new("verify")), p(&net)]).expect_ok("verify");
    let d = snn_build([p(Path::new("dump")), p(&net)]).expect_ok("dump");
    assert_eq!(d.stdout.lines().count() as u64, total + 1);
    assert_eq!(
        d.stdout.lines().next(),
        Some("source,target,weight_pA,delay_ms")
    );
}

#[test]
fn existing_output_refused_without_force_and_replaced_with_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let parent = tmp.path();

    // A directory with someone's data.
    let dir = parent.join("data");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("precious.txt"), b"do not lose me\n").expect("write");
    std::fs::create_dir(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("sub/more.bin"), [0u8, 1, 2, 255]).expect("write");
    let before = snapshot(&dir);
    let out = build_small(&dir, &[]);
    out.expect_clean_error(
        "build into a non-empty directory",
        &[&dir.display().to_string(), "--force"],
    );
    assert_eq!(snapshot(&dir), before, "existing directory was modified");
    assert_eq!(
        entries(parent),
        vec!["data"],
        "leftovers next to the output"
    );

    // An existing network is not overwritten either, even with another seed.
    let net = parent.join("net");
    build_small(&net, &[]).expect_ok("first build");
    let first = snapshot(&net);
    let out = build_small(&net, &["--set", "network.seed=1"]);
    out.expect_clean_error("rebuild without --force", &[&net.display().to_string()]);
    assert_eq!(snapshot(&net), first, "existing network was modified");

    // A plain file in the way is refused too.
    let file = parent.join("file");
    std::fs::write(&file, b"x").expect("write");
    build_small(&file, &[]).expect_clean_error("build onto a file", &[&file.display().to_string()]);
    assert_eq!(std::fs::read(&file).expect("read"), b"x");

    // An empty directory is fine.
    let empty = parent.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    build_small(&empty, &[]).expect_ok("build into an empty directory");
    snn_build([p(Path::new("verify")), p(&empty)]).expect_ok("verify");

    // --force replaces: the old files are gone, the new network verifies.
    build_small(&dir, &["--force", "--ranks", "2"]).expect_ok("build --force");
    let names = entries(&dir);
    assert_eq!(
        names,
        vec!["manifest.json", "rank-00000.shard", "rank-00001.shard"]
    );
    snn_build([p(Path::new("verify")), p(&dir)]).expect_ok("verify after --force");
    build_small(&net, &["--force", "--set", "network.seed=1"]).expect_ok("rebuild --force");
    let second = snapshot(&net);
    assert_ne!(
        second, first,
        "--force with another seed did not replace the network"
    );
    let ij =
        json(&snn_build([p(Path::new("info")), p(&net), p(Path::new("--json"))]).expect_ok("info"));
    assert_eq!(ij["seed"].as_u64(), Some(1));
    let mut names = entries(parent);
    names.sort();
    assert_eq!(
        names,
        vec!["data", "empty", "file", "net"],
        "staging leftovers"
    );
}

#[test]
fn compressed_shards_verify_and_dump_like_plain_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plain = tmp.path().join("plain");
    let zst = tmp.path().join("zst");
    build_small(&plain, &["--ranks", "2"]).expect_ok("plain build");
    build_small(&zst, &["--ranks", "2", "--compress"]).expect_ok("compressed build");
    snn_build([p(Path::new("verify")), p(&zst)]).expect_ok("verify compressed");
    let ij =
        json(&snn_build([p(Path::new("info")), p(&zst), p(Path::new("--json"))]).expect_ok("info"));
    assert_eq!(ij["compressed"].as_bool(), Some(true));
    let a = snn_build([p(Path::new("dump")), p(&plain)]).expect_ok("dump plain");
    let b = snn_build([p(Path::new("dump")), p(&zst)]).expect_ok("dump compressed");
    assert!(
        a.stdout == b.stdout,
        "compressed dump differs from the plain one"
    );
    for r in ["0", "1"] {
        let a = snn_build(["dump".as_ref(), p(&plain), "--rank".as_ref(), r.as_ref()])
            .expect_ok("dump");
        let b =
            snn_build(["dump".as_ref(), p(&zst), "--rank".as_ref(), r.as_ref()]).expect_ok("dump");
        assert!(a.stdout == b.stdout, "rank {r}: compressed dump differs");
    }
    // With an explicit level, and the stored bytes really are compressed.
    let z19 = tmp.path().join("z19");
    build_small(&z19, &["--ranks", "2", "--compress", "19"]).expect_ok("--compress 19");
    let c = snn_build([p(Path::new("dump")), p(&z19)]).expect_ok("dump");
    assert!(c.stdout == a.stdout || c.stdout == b.stdout);
    let size = |d: &Path| {
        std::fs::metadata(d.join("rank-00000.shard"))
            .expect("shard")
            .len()
    };
    assert!(size(&zst) < size(&plain), "compressed shard is not smaller");
    build_small(&tmp.path().join("z99"), &["--compress", "99"])
        .expect_clean_error("--compress 99", &["--compress"]);
}

fn write_config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn bad_configs_give_one_line_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(fixture("small_all_rules.toml")).expect("fixture");
    let out_dir = tmp.path().join("out");
    let cases: Vec<(&str, String, Vec<&str>, Vec<&str>)> = vec![
        (
            "unknown_population.toml",
            good.replacen("source = \"I\"", "source = \"Q\"", 1),
            vec![],
            vec![
                "unknown_population.toml",
                "projections[2].source",
                "unknown population 'Q'",
            ],
        ),
        (
            "negative_size.toml",
            good.replace("size = 50\nK_ext", "size = -50\nK_ext"),
            vec![],
            vec!["negative_size.toml", "populations[1].size", "-50"],
        ),
        (
            "syntax.toml",
            good.replace("name = \"X\"", "name = \"X"),
            vec![],
            vec!["syntax.toml:", "syntax error"],
        ),
        (
            "typo.toml",
            good.replace("size = 90", "sizee = 90"),
            vec![],
            vec!["typo.toml", "populations[0]", "sizee"],
        ),
        (
            "delay.toml",
            good.replace("delay = 0.1\n", "delay = 0.01\n"),
            vec![],
            vec!["delay.toml", "projections[4].delay", "dt/2"],
        ),
        (
            "set.toml",
            good.clone(),
            vec!["--set", "populations.L99E.size=1"],
            vec!["set.toml", "--set populations.L99E.size=1", "L99E"],
        ),
        (
            "set_noeq.toml",
            good.clone(),
            vec!["--set", "scale.neurons"],
            vec!["set_noeq.toml", "scale.neurons", "key=value"],
        ),
        (
            "multapses.toml",
            good.replace("indegree = 20", "indegree = 95"),
            vec![],
            vec!["multapses.toml", "projections[0].indegree", "95"],
        ),
    ];
    for (name, text, extra, must) in cases {
        let cfg = write_config(tmp.path(), name, &text);
        let mut args: Vec<std::ffi::OsString> =
            vec![cfg.into(), "-o".into(), out_dir.clone().into()];
        args.extend(extra.iter().map(std::ffi::OsString::from));
        let out = snn_build(args);
        out.expect_clean_error(name, &must);
        assert!(
            !out_dir.exists(),
            "{name}: output directory created for a bad config"
        );
    }
    let leftovers: Vec<String> = entries(tmp.path())
        .into_iter()
        .filter(|n| !n.ends_with(".toml"))
        .collect();
    assert!(leftovers.is_empty(), "staging leftovers: {leftovers:?}");
}

#[test]
fn bad_arguments_give_one_line_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("out");
    build_small(&out_dir, &["--ranks", "0"]).expect_clean_error("--ranks 0", &["--ranks"]);
    build_small(&out_dir, &["--threads", "0"]).expect_clean_error("--threads 0", &["--threads"]);
    assert!(!out_dir.exists());

    let missing = tmp.path().join("no-such-model.toml");
    snn_build([p(&missing), "-o".as_ref(), p(&out_dir)])
        .expect_clean_error("missing config", &["no-such-model.toml"]);
    assert!(!out_dir.exists());

    let nonet = tmp.path().join("no-such-net");
    for cmd in ["info", "verify", "dump"] {
        snn_build([p(Path::new(cmd)), p(&nonet)]).expect_clean_error(cmd, &["no-such-net"]);
    }
    // A directory that is not a network.
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    for cmd in ["info", "verify", "dump"] {
        let line =
            snn_build([p(Path::new(cmd)), p(&plain)]).expect_clean_error(cmd, &["manifest.json"]);
        assert!(line.contains("not a network directory"), "{line}");
    }
}

/// `--backend cuda` in a build without the `cuda` feature (as in CI) is a
/// one-line error and writes nothing; `--backend cpu` is the default build;
/// `--device` is the option's older name.
#[test]
fn device_option() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("out");
    let bad = build_small(&out_dir, &["--backend", "gpu"]);
    assert!(
        !bad.ok() && bad.stderr.contains("possible values: cpu, cuda"),
        "{bad:?}"
    );
    assert!(!out_dir.exists());
    let cuda = build_small(&out_dir, &["--backend", "cuda"]);
    if cfg!(feature = "cuda") {
        // With the feature: builds on a GPU machine, a clean error elsewhere.
        if !cuda.ok() {
            cuda.expect_clean_error("--backend cuda", &["GPU builder"]);
            assert!(!out_dir.exists());
        }
    } else {
        cuda.expect_clean_error(
            "--backend cuda",
            &["snn-build was built without the `cuda` feature"],
        );
        assert!(!out_dir.exists());
    }
    let cpu_dir = tmp.path().join("cpu");
    build_small(&cpu_dir, &["--device", "cpu"]).expect_ok("--device cpu");
    let net = snn_formats::NetworkDir::open(&cpu_dir).expect("open");
    assert_eq!(net.manifest.provenance.device, "cpu");
}

/// `info` reports every population's neuron parameters as simulated: the
/// resolved model's (the compensating DC in `I_e`), the initial V_m as the
/// config gives it, and the Poisson drive after scaling (rate `K_ext k
/// rate_Hz`, weight `w / sqrt(k)`, and the weight in the network's fixed
/// point), in text and JSON.
#[test]
fn info_reports_parameters_as_simulated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    let k = 0.05;
    snn_build([
        p(&shipped_config("microcircuit.toml")),
        p(Path::new("-o")),
        p(&net),
        p(Path::new("--set")),
        p(Path::new("scale.neurons=0.02")),
        p(Path::new("--set")),
        p(Path::new(&format!("scale.indegree={k}"))),
    ])
    .expect_ok("build");
    let ij =
        json(&snn_build([p(Path::new("info")), p(&net), p(Path::new("--json"))]).expect_ok("info"));
    let text = snn_build([p(Path::new("info")), p(&net)])
        .expect_ok("info")
        .stdout;
    let cfg_text = std::fs::read_to_string(shipped_config("microcircuit.toml")).expect("config");
    let cfg: toml::Value = toml::from_str(&cfg_text).expect("toml");
    let bg = &cfg["poisson_background"];
    let (rate_hz, w_pa) = (
        bg["rate_Hz"].as_float().expect("rate"),
        bg["weight"].as_float().expect("weight"),
    );
    let model = snn_formats::NetworkDir::open(&net)
        .expect("network")
        .manifest
        .model(&net)
        .expect("model");
    let pops = ij["populations"].as_array().expect("populations");
    assert_eq!(pops.len(), 8);
    for ((pj, pm), pc) in pops
        .iter()
        .zip(&model.populations)
        .zip(cfg["populations"].as_array().expect("config populations"))
    {
        let name = pm.name.as_str();
        assert_eq!(pj["name"], name);
        // Every parameter of the model, exactly as the simulator gets it.
        let params = pj["params"].as_object().expect("params");
        assert_eq!(params.len(), 9, "{name}: {params:?}");
        for (key, v) in pm.params.values() {
            assert_eq!(params[key].as_f64(), Some(v), "{name}.{key}");
        }
        // The compensating DC is in I_e (the config sets none).
        assert!(pm.params.I_e > 10.0, "{name}: I_e {}", pm.params.I_e);
        assert!(
            text.contains(&format!("I_e={}", pm.params.I_e)),
            "{name}: text lacks I_e"
        );
        // Initial V_m as the config writes it.
        let vi = &pc["V_m_init"];
        assert_eq!(pj["V_m_init"]["distribution"], "normal");
        assert_eq!(pj["V_m_init"]["mean"].as_f64(), vi["mean"].as_float());
        assert_eq!(pj["V_m_init"]["std"].as_f64(), vi["std"].as_float());
        // The drive after scaling.
        let k_ext = pc["K_ext"].as_integer().expect("K_ext") as f64;
        let d = &pj["poisson"];
        let rate = d["rate_hz"].as_f64().expect("rate");
        assert!(
            (rate - k_ext * k * rate_hz).abs() < 1e-9 * rate,
            "{name}: rate {rate}"
        );
        let w = d["weight"].as_f64().expect("weight");
        assert!((w - w_pa / k.sqrt()).abs() < 1e-9 * w, "{name}: weight {w}");
        let ws = d["weight_simulated"].as_f64().expect("weight_simulated");
        let unit = 1.0 / 2f64.powi(model.weight_frac_bits as i32);
        assert!(
            (ws - w).abs() <= 0.5 * unit && ws != w,
            "{name}: {ws} vs {w}"
        );
        assert_eq!(d["delay_ms"].as_f64(), bg["delay"].as_float());
    }
}
