//! `snn-sim`: simulate a network built by `snn-build`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::BackendArg;
use anyhow::{bail, Context, Result};
use clap::Parser;
use snn_simulate::cluster::CommMode;
use snn_simulate::run::{
    run_ranks_checkpointed, Backend, CheckpointOptions, Progress, RunOptions, RunOutcome, Start,
    EXIT_RESUMABLE,
};

/// `--comm`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CommArg {
    /// Point to point, only to the ranks that need the spikes.
    P2p,
    /// Allgatherv over all ranks (or within groups, --comm-group-size).
    Collective,
}

/// Simulate a network directory and record spikes (SONATA HDF5) and a JSON
/// summary into a run directory.
#[derive(Parser, Debug)]
#[command(
    name = "snn-sim",
    version,
    after_help = "Exit status: 0 finished (or --resume of a finished run), 1 error, \
75 stopped at a checkpoint before the end (wall time): resumable, not finished; \
run the same command with --resume to continue.\n\n\
Job chains: snn-sim net/ -o run/ --t-sim 60000 --checkpoint-every 5000 --walltime 01:55:00 --resume \
in every job continues run/ (or starts it) until it exits with 0; see examples/slurm/chain.sh."
)]
struct Cli {
    /// Network directory made by snn-build.
    network: PathBuf,
    /// Output run directory.
    #[arg(short, long)]
    output: PathBuf,
    /// Presimulation before recording starts, ms (default 0; with
    /// --resume-from: after the checkpoint).
    #[arg(long, allow_negative_numbers = true)]
    t_presim: Option<f64>,
    /// Recorded simulation time, ms (with --resume: a new end of the run,
    /// e.g. to extend it; with --resume-from: after the checkpoint and the
    /// presimulation).
    #[arg(long, allow_negative_numbers = true)]
    t_sim: Option<f64>,
    /// Simulation seed: Poisson input and initial membrane potentials
    /// (default 1; with --resume-from: the checkpoint's).
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Worker threads (default: all cores; at most 8 per core).
    #[arg(long, allow_negative_numbers = true)]
    threads: Option<usize>,
    /// Simulation backend: cpu, or cuda (the GPU engine, one GPU per rank:
    /// under mpirun the node-local rank modulo the visible GPUs, with
    /// emulated ranks the rank modulo the visible GPUs). Spikes are the
    /// same either way.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Replace an existing run directory.
    #[arg(long)]
    force: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Spike exchange between ranks: p2p (only to ranks that need the
    /// spikes) or collective (Allgatherv over all ranks).
    #[arg(long, value_enum, default_value_t = CommArg::P2p)]
    comm: CommArg,
    /// With --comm collective: Allgatherv within groups of this many
    /// consecutive ranks (e.g. the ranks that share an area), point-to-point
    /// between groups; 0 = one group of all ranks.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    comm_group_size: u32,
    /// Run all ranks of a multi-rank network in this process (exchanging
    /// spikes in memory as MPI ranks would), e.g. to check results.
    #[arg(long)]
    emulate_ranks: bool,
    /// Write a checkpoint whenever the biological time reaches a multiple
    /// of this many ms (into OUTPUT/checkpoints/).
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    checkpoint_every: Option<f64>,
    /// Wall-time limit of this process: [D-]HH:MM:SS, MM:SS or e.g. 90s,
    /// 30m, 2h. Before it is reached, write a checkpoint and exit with
    /// status 75 (resumable). SLURM's job end time (SLURM_JOB_END_TIME) is
    /// honoured as well.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    walltime: Option<String>,
    /// Seconds kept free before the wall-time limit besides the estimated
    /// checkpoint time (default: 1% of the limit, at most 60).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    walltime_margin: Option<f64>,
    /// Continue the run in OUTPUT from its newest complete checkpoint
    /// (its settings come from OUTPUT/run-state.json); starts the run if
    /// OUTPUT holds none yet.
    #[arg(long, conflicts_with_all = ["force", "resume_from"])]
    resume: bool,
    /// Start a new run in OUTPUT from a saved state
    /// (RUN/checkpoints/t-...ms): --t-sim ms more.
    #[arg(long, value_name = "CHECKPOINT")]
    resume_from: Option<PathBuf>,
    /// Keep only the newest N complete checkpoints (older ones are removed
    /// once a newer one is complete).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep: Option<usize>,
    /// Start the V_m report at t = 0 with the initial state (a sample before
    /// the first step, then one after every step); needs recording from
    /// t = 0 (no --t-presim).
    #[arg(long)]
    vm_from_start: bool,
    /// Do not simulate: write the initial membrane potential of every
    /// neuron for --seed (what a run starts from) to
    /// OUTPUT/initial_state.h5, a SONATA report with one sample at t = 0 ms
    /// (replaced only with --force).
    #[arg(long, conflicts_with_all = [
        "resume", "resume_from", "t_sim", "t_presim", "checkpoint_every", "walltime", "keep",
    ])]
    initial_state: bool,
}

/// The binary's test hooks (environment variables, for the tests that run
/// `snn-sim` itself; the library takes them as options): stop after this
/// many periodic checkpoints as if the wall time had run out
/// ([`CheckpointOptions::suspend_after_checkpoints`]) ...
pub const SUSPEND_AFTER_ENV: &str = "SNN_TEST_SUSPEND_AFTER_CHECKPOINTS";
/// ... and sleep this many milliseconds between the steps of writing a
/// checkpoint ([`snn_formats::checkpoint::set_test_pause_ms`]), so that a
/// test can kill the process in the middle of one.
pub const SLOW_CHECKPOINT_ENV: &str = "SNN_TEST_SLOW_CHECKPOINT";

/// The number in test hook `var`, if set.
fn test_hook(var: &str) -> Option<u64> {
    std::env::var(var).ok().and_then(|v| v.parse().ok())
}

/// `snn-sim --initial-state`: the initial V_m of every neuron, no run.
fn initial_state(cli: &Cli) -> Result<ExitCode> {
    std::fs::create_dir_all(&cli.output)
        .with_context(|| format!("cannot create {}", cli.output.display()))?;
    let path = cli.output.join("initial_state.h5");
    let seed = cli.seed.unwrap_or(1);
    let w = snn_simulate::run::write_initial_state(&cli.network, seed, &path, cli.force)?;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let v = serde_json::json!({
            "initial_state": w.path,
            "neurons": w.neurons,
            "seed": seed,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            out,
            "wrote {}: initial V_m of {} neurons (seed {seed})",
            w.path.display(),
            w.neurons
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The `snn-sim` binary: parse the command line, run, report.
pub fn main() -> ExitCode {
    let started = Instant::now();
    crate::ignore_sigxfsz();
    let cli: Cli = crate::parse_args("snn-sim");
    match sim(cli, started) {
        Ok(code) => code,
        Err(e) => crate::report("snn-sim", &e),
    }
}

fn sim(cli: Cli, started: Instant) -> Result<ExitCode> {
    snn_kernels::models::simd_cap().map_err(anyhow::Error::msg)?;
    if cli.initial_state {
        return initial_state(&cli);
    }
    let backend = match cli.backend {
        BackendArg::Cpu => Backend::Cpu,
        BackendArg::Cuda => cuda_backend()?,
    };
    let threads = crate::threads_arg(cli.threads)?;
    if cli.keep == Some(0) {
        bail!("--keep must be at least 1");
    }
    if let Some(m) = cli.walltime_margin {
        if !(m.is_finite() && m >= 0.0) {
            bail!("--walltime-margin must be a non-negative number of seconds");
        }
    }
    // The step loop runs inside the pool so that the calling thread is one
    // of the workers (no hand-off to another thread at every step).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the thread pool")?;
    let t_sim = match (cli.t_sim, cli.resume) {
        (Some(t), _) => t,
        (None, true) => 0.0,
        (None, false) => bail!("--t-sim is required (except with --resume)"),
    };
    let opts = RunOptions {
        network: cli.network,
        output: cli.output,
        t_presim_ms: cli.t_presim.unwrap_or(0.0),
        t_sim_ms: t_sim,
        seed: cli.seed.unwrap_or(1),
        force: cli.force,
        comm: match cli.comm {
            CommArg::P2p => CommMode::P2p,
            CommArg::Collective => CommMode::Collective,
        },
        comm_group_size: cli.comm_group_size,
        vm_from_start: cli.vm_from_start,
        backend,
    };
    if opts.comm_group_size != 0 && opts.comm != CommMode::Collective {
        bail!("--comm-group-size needs --comm collective");
    }
    let walltime_deadline = match &cli.walltime {
        Some(w) => Some(
            started
                + snn_simulate::checkpoint::parse_walltime(w)
                    .map_err(|e| anyhow::anyhow!("--walltime: {e}"))?,
        ),
        None => None,
    };
    let deadline = match (
        walltime_deadline,
        snn_simulate::checkpoint::slurm_deadline().map_err(anyhow::Error::msg)?,
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let start = if cli.resume {
        Start::Resume {
            t_sim_ms: cli.t_sim,
            t_presim_ms: cli.t_presim,
            seed: cli.seed,
        }
    } else if let Some(from) = cli.resume_from {
        Start::Branch {
            from,
            seed: cli.seed,
        }
    } else {
        Start::Fresh
    };
    let ck = CheckpointOptions {
        every_ms: cli.checkpoint_every,
        deadline,
        margin_s: cli.walltime_margin,
        keep: cli.keep,
        start,
        zstd_level: 0,
        suspend_after_checkpoints: test_hook(SUSPEND_AFTER_ENV),
    };
    if let Some(ms) = test_hook(SLOW_CHECKPOINT_ENV) {
        snn_formats::checkpoint::set_test_pause_ms(ms);
    }
    let bar = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new(1000);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {bar:40} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(pb)
    } else {
        None
    };
    // Progress: a bar on a terminal; otherwise (batch jobs) a note on the
    // root after 10 s, 40 s, 160 s, ... (at most every 30 min), so a run
    // that would take far too long says so early.
    let root = crate::is_root();
    let mut last = Instant::now();
    let mut first = None::<(Instant, f64)>;
    let mut next_note_s = 10.0f64;
    let mut on_progress = |p: Progress| {
        let now = Instant::now();
        // Speed from the first report on (a resumed run starts at its
        // checkpoint's time; loading is not simulating).
        let (w0, t0) = *first.get_or_insert((now, p.t_ms));
        let wall = now.duration_since(w0).as_secs_f64();
        let rtf = if p.t_ms > t0 {
            wall / ((p.t_ms - t0) * 1e-3)
        } else {
            0.0
        };
        let eta_s = (p.t_total_ms - p.t_ms) * 1e-3 * rtf;
        if let Some(pb) = &bar {
            if last.elapsed().as_millis() < 100 && p.t_ms < p.t_total_ms {
                return;
            }
            last = now;
            pb.set_position((1000.0 * p.t_ms / p.t_total_ms.max(1e-9)) as u64);
            pb.set_message(format!(
                "{:.1}/{:.1} ms biological, real-time factor {:.2}, eta {}",
                p.t_ms,
                p.t_total_ms,
                rtf,
                human_duration(eta_s)
            ));
        } else if root && wall >= next_note_s && p.t_ms < p.t_total_ms {
            next_note_s = (next_note_s * 4.0).min(wall + 1800.0);
            let hint = if eta_s > 7.0 * 86400.0 {
                " (times are in ms: is --t-sim what you meant?)"
            } else {
                ""
            };
            crate::print_line(&format!(
                "snn-sim: note: {:.1} of {:.1} ms biological after {}, real-time factor {:.2}: about {} left{hint}",
                p.t_ms,
                p.t_total_ms,
                human_duration(wall),
                rtf,
                human_duration(eta_s)
            ));
        }
    };
    let emulate = cli.emulate_ranks;
    let result = match crate::world_size() {
        Some(n) if n > 1 => {
            if let Some(pb) = &bar {
                pb.finish_and_clear();
            }
            pool.install(|| mpi_launch::run(&opts, &ck, &mut on_progress))
        }
        _ => pool
            .install(|| run_ranks_checkpointed(&opts, &ck, emulate, &mut on_progress))
            .map_err(anyhow::Error::from),
    };
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let summary = match result? {
        RunOutcome::Finished(Some(s)) => s,
        RunOutcome::Finished(None) | RunOutcome::AlreadyFinished(_) => {
            return Ok(ExitCode::SUCCESS)
        }
        RunOutcome::Suspended(s) => {
            if crate::is_root() {
                crate::print_line(&format!(
                    "snn-sim: stopped at {} of {} ms before the wall-time limit; checkpoint {}; continue with --resume (exit status {EXIT_RESUMABLE})",
                    (s.t_ms * 1e6).round() / 1e6,
                    (s.t_stop_ms * 1e6).round() / 1e6,
                    s.checkpoint.display()
                ));
            }
            return Ok(ExitCode::from(EXIT_RESUMABLE));
        }
    };
    // A closed stdout (e.g. `| head`) must not turn a finished run into a
    // crash: write errors are ignored, the run directory is complete.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let _ = writeln!(
            out,
            "simulated {} ms ({} steps) in {:.2} s (load {:.2} s, presim {:.2} s, sim {:.2} s, real-time factor {:.3}) -> {}",
            summary.t_stop_ms,
            summary.steps,
            summary.wall_load_s + summary.wall_presim_s + summary.wall_sim_s,
            summary.wall_load_s,
            summary.wall_presim_s,
            summary.wall_sim_s,
            summary.real_time_factor,
            opts.output.display()
        );
        if let Some(d) = &summary.device {
            let _ = writeln!(
                out,
                "{d}; {:.0} MB of GPU memory in buffers ({:.2} bytes/synapse)",
                summary.device_memory_bytes as f64 / 1e6,
                summary.device_bytes_per_synapse.unwrap_or(f64::NAN)
            );
        }
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>10} {:>9}",
            "population", "neurons", "spikes", "rate Hz"
        );
        for p in &summary.populations {
            if p.recorded {
                let _ = writeln!(
                    out,
                    "{:<10} {:>8} {:>10} {:>9.3}",
                    p.name, p.size, p.spikes, p.rate_hz
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A duration in seconds for people: `42 s`, `12 min`, `3.5 h`, `12 days`.
fn human_duration(s: f64) -> String {
    if !s.is_finite() {
        "an unknown time".into()
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 2.0 * 86400.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s < 2.0 * 365.0 * 86400.0 {
        format!("{:.0} days", s / 86400.0)
    } else {
        format!("{:.0} years", s / (365.25 * 86400.0))
    }
}

/// The GPU backend on CUDA devices (feature `cuda`).
#[cfg(feature = "cuda")]
fn cuda_backend() -> Result<Backend> {
    Ok(Backend::gpu(crate::cuda_factory(
        &snn_kernels::registry::Module::SIMULATOR,
    )))
}

/// Without the `cuda` feature: an error.
#[cfg(not(feature = "cuda"))]
fn cuda_backend() -> Result<Backend> {
    bail!("snn-sim was built without the `cuda` feature (build with `cargo build --release --features cuda` for --backend cuda)")
}

/// Running under `mpirun`: one rank per process.
mod mpi_launch {
    use anyhow::Result;
    use snn_simulate::run::{CheckpointOptions, Progress, RunOptions, RunOutcome};

    /// Run this process's rank. An error on any rank aborts the whole job
    /// (after printing it), so no rank waits forever for a dead peer.
    #[cfg(feature = "mpi")]
    pub fn run(
        opts: &RunOptions,
        ck: &CheckpointOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RunOutcome> {
        use mpi::traits::Communicator;
        let Some(universe) = mpi::initialize() else {
            anyhow::bail!("MPI could not be initialised");
        };
        let world = universe.world();
        let mut cluster =
            snn_simulate::cluster::MpiCluster::new(&world, opts.comm, opts.comm_group_size);
        match snn_simulate::run::run_checkpointed(opts, ck, &mut cluster, progress) {
            Ok(s) => Ok(s),
            // Errors every rank detects alike before communicating (bad
            // options, rank-count mismatch, existing output) and failures
            // every rank has been told of (`Stopped`: rank 0 could not
            // prepare the run, a rank could not start: its shard or its
            // GPU) end cleanly; anything else may leave peers waiting, so
            // it aborts the job.
            Err(e @ snn_simulate::SimError::Invalid(_))
            | Err(e @ snn_simulate::SimError::Stopped(_))
            | Err(e @ snn_simulate::SimError::Format(snn_formats::FormatError::Exists { .. }))
            | Err(e @ snn_simulate::SimError::Format(snn_formats::FormatError::Refused { .. })) => {
                Err(anyhow::anyhow!("rank {}: {e}", world.rank()))
            }
            Err(e) => {
                // One write, then a moment for the launcher to forward it
                // before the abort tears the job down.
                use std::io::Write;
                let line = format!("snn-sim: error: rank {}: {e}\n", world.rank());
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(line.as_bytes());
                let _ = err.flush();
                drop(err);
                std::thread::sleep(std::time::Duration::from_millis(200));
                world.abort(1)
            }
        }
    }

    #[cfg(not(feature = "mpi"))]
    pub fn run(
        _: &RunOptions,
        _: &CheckpointOptions,
        _: &mut dyn FnMut(Progress),
    ) -> Result<RunOutcome> {
        anyhow::bail!("this snn-sim was compiled without MPI support (cargo feature `mpi`); build with it to run under mpirun, or use --emulate-ranks in one process")
    }
}
