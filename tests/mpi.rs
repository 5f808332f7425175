//! Runs under `mpirun` (MPICH; oversubscribed on small machines): distributed
//! construction gives the same shards as the single-process build, and the
//! spike trains of 1 to 4 ranks, point-to-point or collective, are
//! identical, the multi-area model included. Skipped (with a note) where
//! `mpirun` is not installed.

use snn_test_support::net as common;

use std::path::Path;
use std::process::Command;

fn mpirun() -> Option<&'static str> {
    let ok = Command::new("mpirun")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Some("mpirun")
    } else {
        eprintln!("note: mpirun not found, MPI tests skipped");
        None
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().expect("spawn")
}

fn build_local(cfg: &str, sets: &[&str], out: &Path, ranks: u32) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snn-build"));
    c.arg(snn_test_support::repo().join("configs").join(cfg))
        .arg("-o")
        .arg(out)
        .arg("--force")
        .arg("--ranks")
        .arg(ranks.to_string());
    for s in sets {
        c.arg("--set").arg(s);
    }
    let o = run(&mut c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn sim(mpi: Option<u32>, net: &Path, out: &Path, t_sim: &str, comm: &str) -> std::process::Output {
    sim_args(mpi, net, out, t_sim, comm, &[])
}

fn sim_args(
    mpi: Option<u32>,
    net: &Path,
    out: &Path,
    t_sim: &str,
    comm: &str,
    extra: &[&str],
) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_snn-sim");
    let mut c = match mpi {
        Some(n) => {
            let mut c = Command::new("timeout");
            c.args(["300", "mpirun", "-n", &n.to_string(), bin]);
            c
        }
        None => Command::new(bin),
    };
    c.arg(net).arg("-o").arg(out).args([
        "--force",
        "--t-sim",
        t_sim,
        "--threads",
        "1",
        "--comm",
        comm,
        "--seed",
        "4",
    ]);
    c.args(extra);
    run(&mut c)
}

/// Build `cfg` with `n` MPI processes into `dist` and check that every
/// shard is the one the single-process build wrote into `local`.
fn build_distributed_like(
    mpirun: &str,
    cfg: &str,
    sets: &[&str],
    local: &Path,
    dist: &Path,
    n: u32,
) {
    let mut c = Command::new("timeout");
    c.args([
        "300",
        mpirun,
        "-n",
        &n.to_string(),
        env!("CARGO_BIN_EXE_snn-build"),
    ])
    .arg(snn_test_support::repo().join("configs").join(cfg))
    .arg("-o")
    .arg(dist);
    for s in sets {
        c.arg("--set").arg(s);
    }
    let o = run(&mut c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for r in 0..n {
        let f = snn_formats::shard::shard_file_name(r);
        assert!(
            std::fs::read(local.join(&f)).unwrap() == std::fs::read(dist.join(&f)).unwrap(),
            "{cfg}: rank {r} of {n}: distributed shard differs"
        );
    }
}

#[test]
fn distributed_build_writes_the_same_shards() {
    let Some(mpirun) = mpirun() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let sets = ["scale.neurons=0.2", "scale.indegree=0.1"];
    for n in [2u32, 3] {
        let local = tmp.path().join(format!("local{n}"));
        build_local("balanced.toml", &sets, &local, n);
        let dist = tmp.path().join(format!("dist{n}"));
        build_distributed_like(mpirun, "balanced.toml", &sets, &local, &dist, n);
        let v = run(Command::new(env!("CARGO_BIN_EXE_snn-build"))
            .arg("verify")
            .arg(&dist));
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }
}

#[test]
fn spikes_identical_for_1_to_4_ranks_p2p_and_collective() {
    if mpirun().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (cfg, sets, t_sim) in [
        (
            "microcircuit.toml",
            vec!["scale.neurons=0.1", "scale.indegree=0.1"],
            "40",
        ),
        (
            "balanced.toml",
            vec![
                "scale.neurons=0.2",
                "scale.indegree=0.1",
                "poisson_background.rate_Hz=23.173374667665403",
            ],
            "100",
        ),
    ] {
        let net1 = tmp.path().join("net1");
        build_local(cfg, &sets, &net1, 1);
        let o = sim(None, &net1, &tmp.path().join("ref"), t_sim, "p2p");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let reference = common::spikes(&tmp.path().join("ref"));
        assert!(
            reference.len() > 100,
            "{cfg}: only {} spikes",
            reference.len()
        );
        for n in [2u32, 3, 4] {
            let net = tmp.path().join(format!("net{n}"));
            build_local(cfg, &sets, &net, n);
            if n == 4 {
                // Collective within groups of 2, p2p between them.
                let out = tmp.path().join("run4groups");
                let o = sim_args(
                    Some(4),
                    &net,
                    &out,
                    t_sim,
                    "collective",
                    &["--comm-group-size", "2"],
                );
                assert!(
                    o.status.success(),
                    "{cfg} groups: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                assert!(
                    common::spikes(&out) == reference,
                    "{cfg}: 4 ranks in collective groups of 2 differ"
                );
            }
            for comm in ["p2p", "collective"] {
                let out = tmp.path().join(format!("run{n}{comm}"));
                let o = sim(Some(n), &net, &out, t_sim, comm);
                assert!(
                    o.status.success(),
                    "{cfg} {n} {comm}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                assert!(
                    common::spikes(&out) == reference,
                    "{cfg}: {n} ranks {comm} differ from 1 rank"
                );
                let summary: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(out.join("summary.json")).unwrap(),
                )
                .unwrap();
                assert_eq!(
                    summary["ranks_finished"].as_array().unwrap().len(),
                    n as usize
                );
            }
        }
    }
}

#[test]
fn rank_count_mismatch_and_bad_shard_end_the_job() {
    if mpirun().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net3");
    build_local(
        "balanced.toml",
        &["scale.neurons=0.1", "scale.indegree=0.05"],
        &net,
        3,
    );
    // Wrong number of processes: a clear error from every rank, no hang.
    let o = sim(Some(2), &net, &tmp.path().join("r"), "10", "p2p");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("built for 3 ranks"), "{err}");
    assert!(!err.contains("panicked"));
    // One line per rank, never two ranks' messages in one line.
    assert_eq!(err.lines().count(), 2, "{err}");
    for line in err.lines() {
        assert!(
            line.starts_with("snn-sim: error: rank ") && line.matches("snn-sim:").count() == 1,
            "{err}"
        );
    }
    assert!(!tmp.path().join("r").exists(), "no output for a failed run");
    // A corrupt shard on one rank aborts the whole job with that rank's error.
    let f = net.join(snn_formats::shard::shard_file_name(1));
    let mut bytes = std::fs::read(&f).unwrap();
    let k = bytes.len() / 2;
    bytes[k] ^= 0x40;
    std::fs::write(&f, bytes).unwrap();
    let o = sim(Some(3), &net, &tmp.path().join("r2"), "10", "p2p");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rank 1") && err.contains("rank-00001.shard"),
        "{err}"
    );
    assert!(
        !tmp.path().join("r2").exists(),
        "no output presented as complete"
    );
}

/// The multi-area model with area-aware placement under mpirun: the
/// distributed build writes the shards of the single-process build, and
/// 1, 2 and 3 ranks give the same spikes point to point and collectively.
#[test]
fn multi_area_model_under_mpirun() {
    let Some(mpirun) = mpirun() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let sets = ["scale.neurons=0.003", "scale.indegree=0.003"];
    let net1 = tmp.path().join("net1");
    build_local("mam.toml", &sets, &net1, 1);
    let o = sim(None, &net1, &tmp.path().join("ref"), "150", "p2p");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = common::spikes(&tmp.path().join("ref"));
    assert!(reference.len() > 1000, "only {} spikes", reference.len());
    for n in [2u32, 3] {
        let local = tmp.path().join(format!("local{n}"));
        build_local("mam.toml", &sets, &local, n);
        let dist = tmp.path().join(format!("dist{n}"));
        build_distributed_like(mpirun, "mam.toml", &sets, &local, &dist, n);
        for comm in ["p2p", "collective"] {
            let out = tmp.path().join(format!("run{n}{comm}"));
            let o = sim(Some(n), &dist, &out, "150", comm);
            assert!(
                o.status.success(),
                "{n} {comm}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                common::spikes(&out) == reference,
                "{n} ranks {comm} differ from 1 rank"
            );
        }
    }
}
