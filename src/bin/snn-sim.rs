//! `snn-sim`: simulate a network built by `snn-build`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use snn_simulate::cluster::CommMode;
use snn_simulate::run::{run_ranks, Progress, RunOptions};

/// Simulate a network directory and record spikes (SONATA HDF5) and a JSON
/// summary into a run directory.
#[derive(Parser, Debug)]
#[command(name = "snn-sim", version)]
struct Cli {
    /// Network directory made by snn-build.
    network: PathBuf,
    /// Output run directory.
    #[arg(short, long)]
    output: PathBuf,
    /// Presimulation before recording starts, ms.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    t_presim: f64,
    /// Recorded simulation time, ms.
    #[arg(long, allow_negative_numbers = true)]
    t_sim: f64,
    /// Simulation seed: Poisson input and initial membrane potentials.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Backend.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Replace an existing run directory.
    #[arg(long)]
    force: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Spike exchange between ranks: p2p (only to ranks that need the
    /// spikes) or collective (Allgatherv over all ranks).
    #[arg(long, default_value = "p2p")]
    comm: String,
    /// Run all ranks of a multi-rank network in this process (exchanging
    /// spikes in memory as MPI ranks would), e.g. to check results.
    #[arg(long)]
    emulate_ranks: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match sim(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, skipping a cause that the
            // message before it already ends with (errors that print their
            // source, like `FormatError::Io`), as snn-build does.
            let mut line = String::new();
            for cause in e.chain().map(|c| c.to_string()) {
                if line.is_empty() {
                    line = cause;
                } else if !line.ends_with(&cause) {
                    line = format!("{line}: {cause}");
                }
            }
            eprintln!("snn-sim: error: {}", line.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn sim(cli: Cli) -> Result<()> {
    if cli.backend != "cpu" {
        bail!(
            "--backend {}: this build has only the cpu backend",
            cli.backend
        );
    }
    let threads = match cli.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    // The step loop runs inside the pool so that the calling thread is one
    // of the workers (no hand-off to another thread at every step).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the thread pool")?;
    let opts = RunOptions {
        network: cli.network,
        output: cli.output,
        t_presim_ms: cli.t_presim,
        t_sim_ms: cli.t_sim,
        seed: cli.seed,
        force: cli.force,
        comm: cli.comm.parse::<CommMode>().map_err(anyhow::Error::msg)?,
    };
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
    let start = Instant::now();
    let mut last = Instant::now();
    let mut on_progress = |p: Progress| {
        if let Some(pb) = &bar {
            if last.elapsed().as_millis() < 100 && p.t_ms < p.t_total_ms {
                return;
            }
            last = Instant::now();
            let wall = start.elapsed().as_secs_f64();
            let rtf = if p.t_ms > 0.0 {
                wall / (p.t_ms * 1e-3)
            } else {
                0.0
            };
            let eta = (p.t_total_ms - p.t_ms) * 1e-3 * rtf;
            pb.set_position((1000.0 * p.t_ms / p.t_total_ms.max(1e-9)) as u64);
            pb.set_message(format!(
                "{:.1}/{:.1} ms biological, real-time factor {:.2}, eta {:.0} s",
                p.t_ms, p.t_total_ms, rtf, eta
            ));
        }
    };
    let emulate = cli.emulate_ranks;
    let result = match mpi_launch::world_size() {
        Some(n) if n > 1 => {
            if let Some(pb) = &bar {
                pb.finish_and_clear();
            }
            let r = pool.install(|| mpi_launch::run(&opts, &mut on_progress));
            match r? {
                Some(s) => Ok(s),
                None => return Ok(()),
            }
        }
        _ => pool
            .install(|| run_ranks(&opts, emulate, &mut on_progress))
            .map_err(anyhow::Error::from),
    };
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let summary = result?;
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
    Ok(())
}

/// Running under `mpirun`: one rank per process.
mod mpi_launch {
    use anyhow::Result;
    use snn_simulate::run::{Progress, RunOptions, RunSummary};

    /// The world size announced by the MPI launcher, if any.
    pub fn world_size() -> Option<u32> {
        ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse().ok())
    }

    /// Run this process's rank. An error on any rank aborts the whole job
    /// (after printing it), so no rank waits forever for a dead peer.
    #[cfg(feature = "mpi")]
    pub fn run(
        opts: &RunOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Option<RunSummary>> {
        use mpi::traits::Communicator;
        let Some(universe) = mpi::initialize() else {
            anyhow::bail!("MPI could not be initialised");
        };
        let world = universe.world();
        let mut cluster = snn_simulate::cluster::MpiCluster {
            world: &world,
            mode: opts.comm,
        };
        match snn_simulate::run::run_on(opts, &mut cluster, progress) {
            Ok(s) => Ok(s),
            // Errors every rank detects alike before communicating (bad
            // options, rank-count mismatch, existing output) end cleanly;
            // anything else may leave peers waiting, so it aborts the job.
            Err(e @ snn_simulate::SimError::Invalid(_))
            | Err(e @ snn_simulate::SimError::Format(snn_formats::FormatError::Exists { .. })) => {
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
    pub fn run(_: &RunOptions, _: &mut dyn FnMut(Progress)) -> Result<Option<RunSummary>> {
        anyhow::bail!("this snn-sim was compiled without MPI support (cargo feature `mpi`); build with it to run under mpirun, or use --emulate-ranks in one process")
    }
}
