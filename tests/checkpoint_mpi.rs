//! Checkpoint/resume under `mpirun` (MPICH, 2 ranks, oversubscribed on small
//! machines): a run cut into three pieces, point-to-point and collective,
//! gives the spikes of one uninterrupted 1-rank run and the final state of
//! one uninterrupted run of the same ranks; exit status 75 comes through
//! `mpirun`; a rank-count mismatch is refused. Skipped (with a note) where
//! `mpirun` is not installed.

use snn_test_support::net as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use snn_formats::checkpoint::{list_checkpoints, read_rank_state, CheckpointManifest, Section};

use snn::sim_cli::SUSPEND_AFTER_ENV as SUSPEND;

fn mpirun() -> bool {
    let ok = Command::new("mpirun")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("note: mpirun not found, MPI checkpoint tests skipped");
    }
    ok
}

fn build(cfg: &str, sets: &[&str], out: &Path, ranks: u32) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snn-build"));
    c.arg(snn_test_support::repo().join("configs").join(cfg))
        .arg("-o")
        .arg(out)
        .args(["--force", "--threads", "2", "--ranks", &ranks.to_string()]);
    for s in sets {
        c.arg("--set").arg(s);
    }
    let o = c.output().expect("snn-build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `snn-sim` on `mpi` processes (`None`: without mpirun).
fn sim(mpi: Option<u32>, net: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = env!("CARGO_BIN_EXE_snn-sim");
    let mut c = match mpi {
        Some(n) => {
            let mut c = Command::new("timeout");
            c.args(["300", "mpirun", "-n", &n.to_string(), bin]);
            c
        }
        None => Command::new(bin),
    };
    c.arg(net)
        .arg("-o")
        .arg(out)
        .args(["--threads", "1"])
        .args(args)
        .env_remove("SLURM_JOB_END_TIME")
        .env_remove(SUSPEND);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("spawn")
}

fn final_state(run: &Path) -> (u64, Vec<Vec<Section>>) {
    let list = list_checkpoints(run).unwrap();
    let newest = &list.last().expect("a checkpoint").path;
    let m = CheckpointManifest::read(newest).unwrap();
    let states = m
        .ranks
        .iter()
        .map(|e| {
            read_rank_state(&newest.join(&e.file), Some(e))
                .unwrap()
                .sections
        })
        .collect();
    (m.step, states)
}

#[test]
fn mpi_pieces_are_bit_identical_p2p_and_collective() {
    if !mpirun() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (cfg, sets, t_sim, every) in [
        (
            "microcircuit.toml",
            vec!["scale.neurons=0.1", "scale.indegree=0.1"],
            "30",
            "10",
        ),
        (
            "balanced.toml",
            vec![
                "scale.neurons=0.2",
                "scale.indegree=0.1",
                "poisson_background.rate_Hz=23.173374667665403",
            ],
            "60",
            "17",
        ),
    ] {
        let net1 = t.join("net1");
        build(cfg, &sets, &net1, 1);
        let o = sim(
            None,
            &net1,
            &t.join("ref"),
            &["--force", "--t-sim", t_sim, "--seed", "4"],
            &[],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let reference = common::spikes(&t.join("ref"));
        assert!(
            reference.len() > 100,
            "{cfg}: only {} spikes",
            reference.len()
        );
        let net2 = t.join("net2");
        build(cfg, &sets, &net2, 2);
        // The final state of an uninterrupted run of the same 2 ranks.
        let one = t.join("one2");
        let o = sim(
            None,
            &net2,
            &one,
            &[
                "--force",
                "--t-sim",
                t_sim,
                "--seed",
                "4",
                "--emulate-ranks",
                "--checkpoint-every",
                "100000",
            ],
            &[],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let state = final_state(&one);
        for comm in ["p2p", "collective"] {
            let run: PathBuf = t.join(format!("{cfg}-{comm}"));
            let args = [
                "--t-sim",
                t_sim,
                "--seed",
                "4",
                "--comm",
                comm,
                "--checkpoint-every",
                every,
                "--resume",
            ];
            let mut pieces = 0;
            loop {
                pieces += 1;
                let o = sim(Some(2), &net2, &run, &args, &[(SUSPEND, "1")]);
                match o.status.code() {
                    Some(0) => break,
                    Some(75) => {}
                    _ => panic!("{cfg} {comm} piece {pieces}: {o:?}"),
                }
                assert!(pieces < 20);
            }
            assert!(pieces >= 3, "{cfg} {comm}: {pieces} pieces");
            assert!(
                common::spikes(&run) == reference,
                "{cfg} {comm}: pieces under mpirun differ from one go"
            );
            assert!(
                final_state(&run) == state,
                "{cfg} {comm}: final state differs"
            );
        }
    }
}

#[test]
fn mpi_resume_refuses_other_rank_count() {
    if !mpirun() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let sets = ["scale.neurons=0.1", "scale.indegree=0.05"];
    let net2 = t.join("net2");
    build("balanced.toml", &sets, &net2, 2);
    let run = t.join("run");
    let o = sim(
        Some(2),
        &net2,
        &run,
        &["--t-sim", "20", "--checkpoint-every", "5"],
        &[(SUSPEND, "1")],
    );
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    let net3 = t.join("net3");
    build("balanced.toml", &sets, &net3, 3);
    let o = sim(Some(3), &net3, &run, &["--resume"], &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 ranks") || err.contains("by 2"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Still resumable with the right network.
    let o = sim(Some(2), &net2, &run, &["--resume"], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
