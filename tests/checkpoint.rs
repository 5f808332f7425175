//! Checkpoint, resume and job chains, through the `snn-sim`
//! binary:
//!
//! * a run cut into pieces (checkpoint, exit 75, `--resume`) gives spike
//!   files, V_m reports and a final state identical to one run in one go:
//!   microcircuit (10 %) and balanced network, 1 rank and 3 emulated ranks;
//! * `kill -9` at random moments (mostly while checkpoints are written,
//!   slowed down by a test hook), many times, then `--resume`: identical;
//! * the local job chain (`examples/local/chain.sh`) with a tiny wall time;
//! * a corrupt newest checkpoint: the previous one is used (with a note);
//!   none valid: an error naming them;
//! * resume onto another network or rank count: refused;
//! * `--keep N`, `--resume-from` (branch), extending a finished run, and the
//!   rules for existing run directories.
//!
//! The MPI variants (`mpirun -n 2`, p2p and collective) are in
//! `tests/checkpoint_mpi.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use snn_formats::checkpoint::{list_checkpoints, read_rank_state, CheckpointManifest, Section};

use snn::sim_cli::SLOW_CHECKPOINT_ENV as SLOW;
use snn::sim_cli::SUSPEND_AFTER_ENV as SUSPEND;
const RESUMABLE: i32 = 75;

const MICRO: &[&str] = &["scale.neurons=0.1", "scale.indegree=0.1"];
const BALANCED: &[&str] = &[
    "scale.neurons=0.2",
    "scale.indegree=0.1",
    "poisson_background.rate_Hz=23.173374667665403",
];

fn build(cfg: &Path, sets: &[&str], out: &Path, ranks: u32) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snn-build"));
    c.arg(cfg).arg("-o").arg(out).args([
        "--force",
        "--threads",
        "2",
        "--ranks",
        &ranks.to_string(),
    ]);
    for s in sets {
        c.arg("--set").arg(s);
    }
    let o = c.output().expect("snn-build");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn config(name: &str) -> PathBuf {
    snn_test_support::repo().join("configs").join(name)
}

fn fixture(name: &str) -> PathBuf {
    snn_test_support::repo().join("tests/fixtures").join(name)
}

fn sim_cmd(net: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snn-sim"));
    c.arg(net)
        .arg("-o")
        .arg(out)
        .args(["--threads", "2"])
        .args(args)
        .env_remove("SLURM_JOB_END_TIME")
        .env_remove(SUSPEND)
        .env_remove(SLOW);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn sim(net: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    sim_cmd(net, out, args, env).output().expect("snn-sim")
}

#[track_caller]
fn expect_code(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: stdout {} stderr {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Per spike file (in name order): per population, node ids and time bits,
/// in file order (not sorted: the files must be identical, not only the
/// spike sets).
type Spikes = Vec<(String, Vec<(String, Vec<u64>, Vec<u64>)>)>;

fn spikes(run: &Path) -> Spikes {
    let mut files: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("spikes-rank-"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let pops = snn_formats::sonata::read_spikes(&run.join(&f))
                .unwrap()
                .into_iter()
                .map(|p| {
                    let t = p.timestamps_ms.iter().map(|x| x.to_bits()).collect();
                    (p.name, p.node_ids, t)
                })
                .collect();
            (f, pops)
        })
        .collect()
}

fn n_spikes(s: &Spikes) -> usize {
    s.iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1.len()))
        .sum()
}

/// V_m reports: per file, per population, node ids, grid and value bits.
type Vm = Vec<(String, Vec<(String, Vec<u64>, [u64; 3], Vec<u64>)>)>;

fn vm(run: &Path) -> Vm {
    let mut files: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vm-rank-"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let pops = snn_formats::sonata::read_report(&run.join(&f))
                .unwrap()
                .into_iter()
                .map(|p| {
                    let grid = [
                        p.t_start_ms.to_bits(),
                        p.t_stop_ms.to_bits(),
                        p.dt_ms.to_bits(),
                    ];
                    let d = p.data.iter().map(|x| x.to_bits()).collect();
                    (p.name, p.node_ids, grid, d)
                })
                .collect();
            (f, pops)
        })
        .collect()
}

/// The sections of every rank of the newest checkpoint of a run.
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

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// Run `args` with `--resume` appended, `SNN_TEST_SUSPEND_AFTER_CHECKPOINTS=1`
/// (each piece stops after one checkpoint with status 75) until it
/// finishes; returns the number of pieces.
fn run_in_pieces(net: &Path, out: &Path, args: &[&str]) -> u32 {
    let mut pieces = 0;
    loop {
        pieces += 1;
        let mut a = args.to_vec();
        a.push("--resume");
        let o = sim(net, out, &a, &[(SUSPEND, "1")]);
        match o.status.code() {
            Some(0) => return pieces,
            Some(RESUMABLE) => {
                let e = stderr(&o);
                assert!(e.contains("--resume"), "the exit says how to go on: {e}");
            }
            _ => panic!("piece {pieces}: {o:?}"),
        }
        assert!(pieces < 100, "no end");
    }
}

/// One go vs pieces: identical spike files (content, per file), V_m
/// reports, summary counts and final state.
fn pieces_equal_one_go(net: &Path, tmp: &Path, tag: &str, base: &[&str], every: &str) {
    let one = tmp.join(format!("{tag}-one"));
    let o = sim(net, &one, base, &[]);
    expect_code(&o, 0, "one go");
    let reference = spikes(&one);
    assert!(
        n_spikes(&reference) > 300,
        "{tag}: only {} spikes",
        n_spikes(&reference)
    );
    // In one go with checkpointing: only a final checkpoint, same spikes;
    // its state is the reference final state.
    let ck = tmp.join(format!("{tag}-ck"));
    let mut a = base.to_vec();
    a.extend(["--checkpoint-every", "100000"]);
    expect_code(&sim(net, &ck, &a, &[]), 0, "one go with a final checkpoint");
    assert!(
        spikes(&ck) == reference,
        "{tag}: checkpointing changed the spikes"
    );
    let state = final_state(&ck);
    // Three (or more) pieces.
    let pieces = tmp.join(format!("{tag}-pieces"));
    let mut a = base.to_vec();
    a.extend(["--checkpoint-every", every]);
    let n = run_in_pieces(net, &pieces, &a);
    assert!(n >= 3, "{tag}: {n} pieces");
    assert!(
        spikes(&pieces) == reference,
        "{tag}: pieces differ from one go"
    );
    assert!(vm(&pieces) == vm(&one), "{tag}: V_m differs");
    assert!(final_state(&pieces) == state, "{tag}: final state differs");
    let (s1, sp) = (summary(&one), summary(&pieces));
    for k in [
        "steps",
        "t_start_ms",
        "t_stop_ms",
        "synaptic_events",
        "seed",
    ] {
        assert_eq!(s1[k], sp[k], "{tag}: summary.{k}");
    }
    for (a, b) in s1["populations"]
        .as_array()
        .unwrap()
        .iter()
        .zip(sp["populations"].as_array().unwrap())
    {
        assert_eq!(a["spikes"], b["spikes"], "{tag}: summary spikes");
    }
    assert_eq!(sp["pieces"].as_u64(), Some(n as u64));
    // snn-analyze reads the pieces as one run.
    let stats = |run: &Path| {
        let rep = tmp.join(format!(
            "{tag}-report-{}",
            run.file_name().unwrap().to_string_lossy()
        ));
        let o = Command::new(env!("CARGO_BIN_EXE_snn-analyze"))
            .arg(run)
            .arg("-o")
            .arg(&rep)
            .output()
            .unwrap();
        expect_code(&o, 0, "snn-analyze");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(rep.join("stats.json")).unwrap())
                .unwrap();
        v.as_object_mut().unwrap().remove("run_dir");
        v
    };
    assert_eq!(stats(&one), stats(&pieces), "{tag}: snn-analyze differs");
    let state = std::fs::read_to_string(pieces.join("run-state.json")).unwrap();
    assert!(state.contains("\"finished\""), "{state}");
}

#[test]
fn pieces_are_bit_identical_to_one_go() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Microcircuit, 1 rank and 3 emulated ranks (communication every step).
    let net1 = t.join("mc1");
    build(&config("microcircuit.toml"), MICRO, &net1, 1);
    let base = ["--t-presim", "10", "--t-sim", "50", "--seed", "2"];
    pieces_equal_one_go(&net1, t, "mc1", &base, "15");
    let net3 = t.join("mc3");
    build(&config("microcircuit.toml"), MICRO, &net3, 3);
    let mut b3 = base.to_vec();
    b3.push("--emulate-ranks");
    pieces_equal_one_go(&net3, t, "mc3", &b3, "20");
    assert!(spikes(&t.join("mc3-one")).len() == 3);
    // Balanced (communication every 15 steps; checkpoints at other steps
    // cut intervals short), 1 rank and 3 emulated ranks, collective too.
    let net1 = t.join("bal1");
    build(&config("balanced.toml"), BALANCED, &net1, 1);
    let base = ["--t-sim", "80", "--seed", "3"];
    pieces_equal_one_go(&net1, t, "bal1", &base, "23.3");
    let net3 = t.join("bal3");
    build(&config("balanced.toml"), BALANCED, &net3, 3);
    let b3 = [
        "--t-sim",
        "80",
        "--seed",
        "3",
        "--emulate-ranks",
        "--comm",
        "collective",
    ];
    pieces_equal_one_go(&net3, t, "bal3", &b3, "25");
    // Spikes of 3 ranks (merged) equal those of 1 rank.
    let merge = |s: Spikes| {
        let mut v: Vec<(String, u64, u64)> = s
            .into_iter()
            .flat_map(|(_, p)| p)
            .flat_map(|(n, ids, ts)| ids.into_iter().zip(ts).map(move |(i, t)| (n.clone(), i, t)))
            .collect();
        v.sort();
        v
    };
    assert!(merge(spikes(&t.join("bal3-pieces"))) == merge(spikes(&t.join("bal1-one"))));
    // A small network with V_m recording on 3 emulated ranks.
    let small = t.join("small3");
    build(&fixture("sim_small.toml"), &[], &small, 3);
    let b = ["--t-presim", "20", "--t-sim", "60", "--emulate-ranks"];
    pieces_equal_one_go(&small, t, "small3", &b, "13");
    assert!(!vm(&t.join("small3-pieces")).is_empty());
}

/// Copy a directory of plain files (a checkpoint).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Minimal deterministic generator for the kill delays (reproducible).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn kill_9_at_random_moments_then_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let net = t.join("net");
    build(&config("balanced.toml"), BALANCED, &net, 3);
    let args = [
        "--t-sim",
        "60",
        "--seed",
        "7",
        "--emulate-ranks",
        "--checkpoint-every",
        "5",
        "--keep",
        "2",
    ];
    let one = t.join("one");
    expect_code(&sim(&net, &one, &args[..5], &[]), 0, "one go");
    let reference = spikes(&one);
    let run = t.join("run");
    let mut rng = Lcg(0x5eed_0005);
    let mut a = args.to_vec();
    a.push("--resume");
    let mut killed = 0;
    let mut finished_early = 0;
    let mut mid_checkpoint = 0u32;
    let start = Instant::now();
    // Each checkpoint takes at least 7 x 25 ms (a pause before and after
    // each of the 3 rank files, one before the manifest and its rename),
    // so most kills land while one is being written.
    for i in 0..24 {
        let mut child = sim_cmd(&net, &run, &a, &[(SLOW, "25")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let delay = Duration::from_millis(50 + rng.next() % 700);
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(status) => {
                // Finished before the kill: start over for more kills.
                assert!(status.success(), "iteration {i}: {status:?}");
                finished_early += 1;
                std::fs::remove_dir_all(&run).unwrap();
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
                // Killed while writing a checkpoint: one without manifest,
                // or temporary files.
                let partial = list_checkpoints(&run).unwrap_or_default().iter().any(|c| {
                    !c.path.join("manifest.json").exists()
                        || std::fs::read_dir(&c.path)
                            .unwrap()
                            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
                });
                mid_checkpoint += partial as u32;
            }
        }
    }
    eprintln!(
        "kill test: {killed} kills ({mid_checkpoint} while a checkpoint was being written), {finished_early} runs finished first, {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(killed >= 20, "only {killed} kills");
    assert!(
        mid_checkpoint >= 10,
        "only {mid_checkpoint} kills hit a checkpoint write"
    );
    // Finish (the notes may mention an incomplete checkpoint).
    let o = sim(&net, &run, &a, &[]);
    expect_code(&o, 0, "final resume");
    let got = spikes(&run);
    assert!(got == reference, "spikes after kills differ from one go");
    // --keep 2: two complete checkpoints at most, no temporary files.
    let list = list_checkpoints(&run).unwrap();
    assert!(list.len() <= 2, "{list:?}");
    for c in &list {
        for e in std::fs::read_dir(&c.path).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!n.ends_with(".tmp"), "{n} left in {}", c.path.display());
        }
    }
}

#[test]
fn local_chain_with_tiny_walltime() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let net = t.join("net");
    build(&config("balanced.toml"), BALANCED, &net, 1);
    let base = ["--t-sim", "300", "--seed", "5"];
    let one = t.join("one");
    let started = Instant::now();
    expect_code(&sim(&net, &one, &base, &[]), 0, "one go");
    // A wall time of a quarter of the whole run: several pieces on any
    // machine.
    let walltime = format!("{:.3}s", (started.elapsed().as_secs_f64() / 4.0).max(0.05));
    let run = t.join("run");
    let o = Command::new("bash")
        .arg(snn_test_support::repo().join("examples/local/chain.sh"))
        .arg(&net)
        .arg("-o")
        .arg(&run)
        .args(base)
        .args([
            "--threads",
            "2",
            "--checkpoint-every",
            "20",
            "--walltime",
            &walltime,
        ])
        .env("SNN_SIM", env!("CARGO_BIN_EXE_snn-sim"))
        .env_remove(SUSPEND)
        .env_remove(SLOW)
        .output()
        .expect("chain.sh");
    expect_code(&o, 0, "chain.sh");
    let s = summary(&run);
    let pieces = s["pieces"].as_u64().unwrap();
    eprintln!(
        "chain: --walltime {walltime}, {pieces} pieces; {}",
        stderr(&o)
    );
    assert!(
        pieces >= 2,
        "the wall time should have cut the run: {pieces} pieces"
    );
    assert!(spikes(&run) == spikes(&one), "chain differs from one go");
    // Resuming a finished run does nothing and says so.
    let o = sim(&net, &run, &["--resume"], &[]);
    expect_code(&o, 0, "resume of a finished run");
    assert!(stderr(&o).contains("already finished"), "{}", stderr(&o));
}

#[test]
fn walltime_exit_code_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let net = t.join("net");
    build(&config("balanced.toml"), BALANCED, &net, 1);
    let run = t.join("run");
    let a = [
        "--t-sim",
        "20000",
        "--walltime",
        "0:01",
        "--walltime-margin",
        "0.5",
    ];
    let started = Instant::now();
    let o = sim(&net, &run, &a, &[]);
    let took = started.elapsed().as_secs_f64();
    expect_code(&o, RESUMABLE, "walltime");
    // 20 s of biological time take far longer than 1 s: the run stopped at
    // its limit (with some slack for a loaded machine).
    assert!(took < 3.0, "took {took} s with a 1 s wall time");
    assert!(stderr(&o).contains("--resume"));
    let state = std::fs::read_to_string(run.join("run-state.json")).unwrap();
    assert!(state.contains("\"suspended\""), "{state}");
    assert!(
        !run.join("summary.json").exists(),
        "no summary before the end"
    );
    assert_eq!(list_checkpoints(&run).unwrap().len(), 1);
    // SLURM's end time counts too.
    let run2 = t.join("run2");
    let end = (snn_formats::checkpoint::unix_now() + 1.0).to_string();
    let o = sim(
        &net,
        &run2,
        &["--t-sim", "20000"],
        &[("SLURM_JOB_END_TIME", &end)],
    );
    expect_code(&o, RESUMABLE, "SLURM_JOB_END_TIME");
    // Bad wall times.
    for w in ["1:2:3:4", "90", "0s", "0:61", "x"] {
        let o = sim(&net, &t.join("x"), &["--t-sim", "1", "--walltime", w], &[]);
        assert_eq!(o.status.code(), Some(1), "{w}");
        assert!(stderr(&o).contains("--walltime"), "{w}: {}", stderr(&o));
    }
}

/// Run in pieces with checkpoints at 10, 20, 30 ms, stopping after the
/// third, and return the run directory.
fn run_three_checkpoints(net: &Path, run: &Path, extra: &[&str]) {
    let mut a = vec!["--t-sim", "50", "--seed", "9", "--checkpoint-every", "10"];
    a.extend(extra);
    expect_code(
        &sim(net, run, &a, &[(SUSPEND, "3")]),
        RESUMABLE,
        "first piece",
    );
    assert_eq!(list_checkpoints(run).unwrap().len(), 3);
}

#[test]
fn corrupt_newest_checkpoint_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let net = t.join("net");
    build(&config("balanced.toml"), BALANCED, &net, 2);
    let one = t.join("one");
    let args = ["--t-sim", "50", "--seed", "9", "--emulate-ranks"];
    expect_code(&sim(&net, &one, &args, &[]), 0, "one go");
    let reference = spikes(&one);
    // A flipped byte in rank 1's file of the newest checkpoint.
    let run = t.join("run");
    run_three_checkpoints(&net, &run, &["--emulate-ranks"]);
    let list = list_checkpoints(&run).unwrap();
    let f = list[2].path.join("rank-00001.ckpt");
    let mut b = std::fs::read(&f).unwrap();
    let k = b.len() / 2;
    b[k] ^= 1;
    std::fs::write(&f, b).unwrap();
    let o = sim(&net, &run, &["--resume", "--emulate-ranks"], &[]);
    expect_code(&o, 0, "resume past a corrupt checkpoint");
    let e = stderr(&o);
    assert!(
        e.contains("rank-00001.ckpt") && e.contains("corrupt") && e.contains("t-000000020.0ms"),
        "the note names the corrupt file and the checkpoint used: {e}"
    );
    assert!(spikes(&run) == reference, "fallback run differs");
    // The unusable checkpoint was set aside, not deleted.
    let aside = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("invalid")
        })
        .count();
    assert_eq!(aside, 1);

    // A damaged (truncated) manifest and a missing rank file: both skipped.
    let run = t.join("run2");
    run_three_checkpoints(&net, &run, &["--emulate-ranks"]);
    let list = list_checkpoints(&run).unwrap();
    let m = list[2].path.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, &text[..text.len() / 2]).unwrap();
    std::fs::remove_file(list[1].path.join("rank-00000.ckpt")).unwrap();
    let o = sim(&net, &run, &["--resume", "--emulate-ranks"], &[]);
    expect_code(&o, 0, "resume past two bad checkpoints");
    assert!(stderr(&o).contains("t-000000010.0ms"), "{}", stderr(&o));
    assert!(spikes(&run) == reference);

    // None valid: an error naming them, nothing changed.
    let run = t.join("run3");
    run_three_checkpoints(&net, &run, &["--emulate-ranks"]);
    for c in list_checkpoints(&run).unwrap() {
        let f = c.path.join("rank-00000.ckpt");
        let mut b = std::fs::read(&f).unwrap();
        let n = b.len();
        b[n - 1] ^= 0xff;
        std::fs::write(&f, b).unwrap();
    }
    let before = spikes(&run);
    let o = sim(&net, &run, &["--resume", "--emulate-ranks"], &[]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = stderr(&o);
    assert!(
        e.contains("no valid checkpoint")
            && e.contains("t-000000010.0ms")
            && e.contains("t-000000030.0ms"),
        "{e}"
    );
    assert!(spikes(&run) == before, "a failed resume changed the spikes");
}

#[test]
fn resume_refuses_other_network_or_rank_count() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let net = t.join("net");
    build(&config("balanced.toml"), BALANCED, &net, 1);
    let run = t.join("run");
    run_three_checkpoints(&net, &run, &[]);
    // Another network (other network seed: other model hash).
    let other = t.join("other");
    let mut sets = BALANCED.to_vec();
    sets.push("network.seed=777");
    build(&config("balanced.toml"), &sets, &other, 1);
    let o = sim(&other, &run, &["--resume"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("different network"), "{}", stderr(&o));
    let cp = list_checkpoints(&run).unwrap()[1].path.clone();
    let o = sim(
        &other,
        &t.join("b"),
        &["--resume-from", cp.to_str().unwrap(), "--t-sim", "5"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("different network"), "{}", stderr(&o));
    assert!(!t.join("b").exists());
    // The same model built for 2 ranks.
    let two = t.join("two");
    build(&config("balanced.toml"), BALANCED, &two, 2);
    let o = sim(&two, &run, &["--resume", "--emulate-ranks"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("rank") && e.contains('2') && e.contains('1'),
        "{e}"
    );
    let o = sim(
        &two,
        &t.join("c"),
        &[
            "--resume-from",
            cp.to_str().unwrap(),
            "--t-sim",
            "5",
            "--emulate-ranks",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ranks"), "{}", stderr(&o));
    // A different seed on resume.
    let o = sim(&net, &run, &["--resume", "--seed", "10"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--seed"), "{}", stderr(&o));
    // The run is untouched and still resumes.
    expect_code(&sim(&net, &run, &["--resume"], &[]), 0, "resume");
}

#[test]
fn keep_prunes_old_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let net = t.join("net");
    build(&fixture("sim_small.toml"), &[], &net, 1);
    let run = t.join("run");
    let a = ["--t-sim", "50", "--checkpoint-every", "5", "--keep", "3"];
    expect_code(&sim(&net, &run, &a, &[(SUSPEND, "4")]), RESUMABLE, "piece");
    let names = |r: &Path| -> Vec<f64> {
        list_checkpoints(r)
            .unwrap()
            .iter()
            .map(|c| c.t_ms)
            .collect()
    };
    assert_eq!(names(&run), vec![10.0, 15.0, 20.0]);
    // --keep is remembered by --resume.
    expect_code(&sim(&net, &run, &["--resume"], &[]), 0, "resume");
    assert_eq!(names(&run), vec![40.0, 45.0, 50.0]);
    // Without --keep everything stays.
    let all = t.join("all");
    expect_code(&sim(&net, &all, &a[..4], &[]), 0, "no keep");
    assert_eq!(names(&all).len(), 10);
    // An incomplete (newer) checkpoint does not count as one to keep: the
    // complete ones stay.
    let run2 = t.join("run2");
    expect_code(&sim(&net, &run2, &a, &[(SUSPEND, "3")]), RESUMABLE, "piece");
    let newest = list_checkpoints(&run2).unwrap().pop().unwrap().path;
    std::fs::remove_file(newest.join("manifest.json")).unwrap();
    let o = sim(&net, &run2, &["--resume"], &[(SUSPEND, "1")]);
    expect_code(&o, RESUMABLE, "resume");
    assert!(stderr(&o).contains("incomplete"), "{}", stderr(&o));
    assert_eq!(names(&run2), vec![5.0, 10.0, 15.0]);
    // A writer killed after the last checkpoint's manifest but before its
    // pruning leaves one too many, and the resume has no step left to run:
    // --keep still holds. (Made here by copying the final checkpoint and
    // outputs of the finished run without --keep, which are the same.)
    let run3 = t.join("run3");
    expect_code(&sim(&net, &run3, &a, &[(SUSPEND, "9")]), RESUMABLE, "piece");
    assert_eq!(names(&run3), vec![35.0, 40.0, 45.0]);
    let last = list_checkpoints(&all).unwrap().pop().unwrap().path;
    copy_dir(
        &last,
        &run3.join("checkpoints").join(last.file_name().unwrap()),
    );
    for f in ["spikes-rank-00000.h5", "vm-rank-00000.h5"] {
        std::fs::copy(all.join(f), run3.join(f)).unwrap();
    }
    expect_code(
        &sim(&net, &run3, &["--resume"], &[]),
        0,
        "resume at the end",
    );
    assert_eq!(names(&run3), vec![40.0, 45.0, 50.0]);
    assert!(spikes(&run3) == spikes(&all));
}

#[test]
fn branch_extend_and_run_directory_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let net = t.join("net");
    build(&fixture("sim_small.toml"), &[], &net, 1);
    let one = t.join("one");
    expect_code(
        &sim(&net, &one, &["--t-sim", "60", "--seed", "4"], &[]),
        0,
        "one go",
    );
    let reference = spikes(&one);
    // A run to 20 ms, extended to 40 and then to 60: identical.
    let run = t.join("run");
    let a = ["--t-sim", "20", "--seed", "4", "--checkpoint-every", "10"];
    expect_code(&sim(&net, &run, &a, &[]), 0, "to 20");
    assert!(run.join("summary.json").exists());
    let o = sim(&net, &run, &["--resume", "--t-sim", "40"], &[]);
    expect_code(&o, 0, "to 40");
    let o = sim(&net, &run, &["--resume", "--t-sim", "60"], &[]);
    expect_code(&o, 0, "to 60");
    assert!(spikes(&run) == reference, "extended run differs");
    assert_eq!(summary(&run)["t_stop_ms"].as_f64(), Some(60.0));
    let o = sim(&net, &run, &["--resume", "--t-sim", "30"], &[]);
    assert_eq!(o.status.code(), Some(1), "a finished run is not shortened");
    // A branch from the checkpoint at 30 ms, 30 ms more: the spikes after
    // 30 ms of the one-go run, with its own summary.
    let cp = run.join("checkpoints/t-000000030.0ms");
    let br = t.join("branch");
    let o = sim(
        &net,
        &br,
        &["--resume-from", cp.to_str().unwrap(), "--t-sim", "30"],
        &[],
    );
    expect_code(&o, 0, "branch");
    let s = summary(&br);
    assert_eq!(s["t_start_ms"].as_f64(), Some(30.0));
    assert_eq!(s["t_stop_ms"].as_f64(), Some(60.0));
    assert!(s["branched_from"]
        .as_str()
        .unwrap()
        .contains("t-000000030.0ms"));
    let after: Spikes = reference
        .iter()
        .map(|(f, pops)| {
            let pops = pops
                .iter()
                .map(|(n, ids, ts)| {
                    let keep: Vec<usize> = (0..ids.len())
                        .filter(|&i| f64::from_bits(ts[i]) > 30.0 + 1e-9)
                        .collect();
                    (
                        n.clone(),
                        keep.iter().map(|&i| ids[i]).collect(),
                        keep.iter().map(|&i| ts[i]).collect(),
                    )
                })
                .collect();
            (f.clone(), pops)
        })
        .collect();
    assert!(spikes(&br) == after, "branch differs from the continuation");
    // The branch with another seed: other spikes.
    let br2 = t.join("branch2");
    let o = sim(
        &net,
        &br2,
        &[
            "--resume-from",
            cp.to_str().unwrap(),
            "--t-sim",
            "30",
            "--seed",
            "5",
        ],
        &[],
    );
    expect_code(&o, 0, "branch, seed 5");
    assert!(spikes(&br2) != after);
    // Existing directories: refused without --force/--resume.
    let o = sim(
        &net,
        &run,
        &["--t-sim", "10", "--checkpoint-every", "5"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(spikes(&run) == reference, "nothing overwritten");
    let o = sim(
        &net,
        &br,
        &["--resume-from", cp.to_str().unwrap(), "--t-sim", "5"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "branch into an existing run");
    // --resume of a directory that is not a resumable run.
    let o = sim(&net, &one, &["--resume"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("run-state.json"), "{}", stderr(&o));
    // --resume of a missing directory without --t-sim.
    let o = sim(&net, &t.join("none"), &["--resume"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--t-sim"), "{}", stderr(&o));
    // --resume with --force: refused by the parser.
    let o = sim(&net, &run, &["--resume", "--force"], &[]);
    assert_eq!(o.status.code(), Some(2));
    // A run in progress is recognisable.
    let prog = t.join("prog");
    let o = sim(
        &net,
        &prog,
        &["--t-sim", "50", "--checkpoint-every", "10"],
        &[(SUSPEND, "2")],
    );
    expect_code(&o, RESUMABLE, "suspended");
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prog.join("run-state.json")).unwrap())
            .unwrap();
    assert_eq!(st["status"], "suspended");
    assert_eq!(st["last_checkpoint"], "t-000000020.0ms");
    assert!(!prog.join("summary.json").exists());
    // Two processes never continue the same run at once.
    let mut first = sim_cmd(&net, &prog, &["--resume"], &[(SLOW, "300")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(prog.join("run-state.json"))
        .unwrap()
        .contains("\"running\"")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "first resume did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = sim(&net, &prog, &["--resume"], &[]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("another snn-sim"), "{}", stderr(&o));
    expect_code(
        &sim(&net, &prog, &["--resume"], &[]),
        0,
        "resume after the kill",
    );
}

/// `examples/slurm/chain.sh` against a fake SLURM (sbatch queues jobs with
/// their environment and dependency, squeue reports a tiny time left,
/// scancel marks a job cancelled, srun runs the command) whose jobs a loop
/// runs in order: the chain resubmits while snn-sim exits 75, cancels the
/// spare successor when the run is finished, and the result equals one go.
#[test]
fn slurm_chain_with_fake_slurm() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let bin = t.join("bin");
    let q = t.join("q");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&q).unwrap();
    let shims = [
        (
            "sbatch",
            r#"dep=""
while [[ $# -gt 0 && "$1" == -* ]]; do
  case "$1" in --dependency=afterany:*) dep="${1#--dependency=afterany:}";; esac
  shift
done
n=$(( $(cat "$FAKE_Q/next" 2>/dev/null || echo 0) + 1 )); echo $n > "$FAKE_Q/next"
mkdir "$FAKE_Q/$n"; echo "$dep" > "$FAKE_Q/$n/dep"
env -0 > "$FAKE_Q/$n/env"
printf '%s\0' "$@" > "$FAKE_Q/$n/argv"
echo "$n""#,
        ),
        ("scancel", r#"touch "$FAKE_Q/$1/cancelled""#),
        ("squeue", r#"echo "10:00""#),
        ("srun", r#"exec "$@""#),
    ];
    for (name, body) in shims {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let net = t.join("net");
    build(&config("balanced.toml"), BALANCED, &net, 1);
    let one = t.join("one");
    let base = ["--t-sim", "300", "--seed", "6"];
    expect_code(&sim(&net, &one, &base, &[]), 0, "one go");
    let run = t.join("run");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = Command::new("bash")
        .arg(snn_test_support::repo().join("examples/slurm/chain.sh"))
        .arg(&net)
        .arg(&run)
        .args(base)
        .args(["--threads", "2", "--checkpoint-every", "25"])
        .env("PATH", &path)
        .env("FAKE_Q", &q)
        .env("SNN_SIM", env!("CARGO_BIN_EXE_snn-sim"))
        // Each job "runs out of time" after 4 checkpoints (100 ms).
        .env(SUSPEND, "4")
        .env_remove("SNN_CHAIN_IN_JOB")
        .output()
        .unwrap();
    expect_code(&o, 0, "submission");
    assert!(!run.exists(), "submitting runs nothing");
    // The "scheduler": run the jobs in order (each depends on the one before).
    let mut codes = Vec::new();
    let mut n = 1;
    while q.join(n.to_string()).is_dir() {
        let j = q.join(n.to_string());
        if j.join("cancelled").exists() {
            codes.push(None);
        } else {
            let dep = std::fs::read_to_string(j.join("dep")).unwrap();
            assert!(
                dep.trim().is_empty() || dep.trim() == (n - 1).to_string(),
                "job {n}: dependency {dep}"
            );
            let argv: Vec<String> = std::fs::read_to_string(j.join("argv"))
                .unwrap()
                .split('\0')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let mut c = Command::new("bash");
            c.args(&argv).env_clear();
            for kv in std::fs::read_to_string(j.join("env")).unwrap().split('\0') {
                if let Some((k, v)) = kv.split_once('=') {
                    c.env(k, v);
                }
            }
            let o = c.env("SLURM_JOB_ID", n.to_string()).output().unwrap();
            codes.push(o.status.code());
        }
        n += 1;
        assert!(n < 60, "chain does not end");
    }
    eprintln!("fake SLURM jobs: {codes:?}");
    let finished = codes
        .iter()
        .position(|c| *c == Some(0))
        .expect("a job finished the run");
    assert_eq!(finished, 2, "300 ms in pieces of 100 ms: {codes:?}");
    assert!(
        codes[..finished].iter().all(|c| *c == Some(RESUMABLE)),
        "{codes:?}"
    );
    assert_eq!(
        &codes[finished + 1..],
        &[None],
        "the spare successor is cancelled"
    );
    assert!(
        spikes(&run) == spikes(&one),
        "SLURM chain differs from one go"
    );
}
