//! `snn-build`: turn a model config into a sharded network directory, and
//! inspect, verify or dump one.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::BackendArg;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use snn_formats::model::dequantize_weight;
use snn_formats::{Check, NetworkDir};
use snn_netbuild::network::expected_synapses;
use snn_netbuild::{build_network, BuildDevice, BuildOptions};

/// Build a spiking network from a model config into a directory of
/// per-rank shards (or inspect one).
#[derive(Parser, Debug)]
#[command(
    name = "snn-build",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// Model config (TOML), e.g. configs/microcircuit.toml, or a SONATA
    /// circuit config (`circuit_config.json`: its network, any rank count).
    #[arg(required = true)]
    config: Option<PathBuf>,
    /// Output network directory.
    #[arg(short, long, required_unless_present = "dry_run")]
    output: Option<PathBuf>,
    /// Number of ranks (shards) to build in this process (default 1; under
    /// mpirun: the number of processes, one shard each).
    #[arg(long, allow_negative_numbers = true)]
    ranks: Option<u32>,
    /// Worker threads (default: all cores).
    #[arg(long, allow_negative_numbers = true)]
    threads: Option<usize>,
    /// Override a config field: --set scale.neurons=0.1 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
    /// Compress shards with zstd (optional level, default 3); loading them
    /// is then not zero-copy.
    #[arg(
        long,
        value_name = "LEVEL",
        num_args = 0..=1,
        default_missing_value = "3",
        allow_negative_numbers = true
    )]
    compress: Option<i32>,
    /// Compute shard sizes and routing needs of the sampled ranks without
    /// storing synapses or writing anything (JSON on stdout).
    #[arg(long)]
    dry_run: bool,
    /// Ranks to examine with --dry-run (default: 0).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "R,R,...",
        allow_negative_numbers = true
    )]
    sample_ranks: Vec<u32>,
    /// With --dry-run: also work out the sampled ranks' send tables (what
    /// they send to whom, bytes per step at the populations' mean_rate_Hz):
    /// draws the other ranks' synapses from their neurons, which for round
    /// robin placement costs as much as counting the whole network.
    #[arg(long, requires = "dry_run")]
    routing: bool,
    /// Build and write only these ranks of the --ranks N network, as one
    /// process of an MPI build would (its shard is the same file). The
    /// output is a partial build (no manifest), for measuring per-rank cost
    /// at scale; the send tables come from drawing the other ranks'
    /// synapses from these ranks' neurons.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "R,R,...",
        conflicts_with = "dry_run",
        allow_negative_numbers = true
    )]
    only_ranks: Vec<u32>,
    /// Where to build: `cpu` (threads) or `cuda` (a GPU per rank: under
    /// mpirun the node-local rank modulo the visible GPUs). The shards are
    /// the same bytes either way. (`--device` is an older name for it.)
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu, alias = "device")]
    backend: BackendArg,
}

/// The builder's device for `--backend`.
fn build_device(kind: BackendArg) -> Result<BuildDevice> {
    match kind {
        BackendArg::Cpu => Ok(BuildDevice::Cpu),
        BackendArg::Cuda => cuda_device(),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<BuildDevice> {
    Ok(BuildDevice::Gpu(crate::cuda_factory(
        &snn_kernels::registry::Module::BUILDER,
    )))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<BuildDevice> {
    bail!("snn-build was built without the `cuda` feature")
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Summarise a network: populations, synapses per projection,
    /// bytes/synapse, per-rank sizes.
    Info {
        /// Network directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify every shard: checksums, structure, synapses, routing tables.
    Verify {
        /// Network directory.
        dir: PathBuf,
    },
    /// Print synapses as CSV: source,target,weight_pA,delay_ms (global ids).
    Dump {
        /// Network directory.
        dir: PathBuf,
        /// Only this rank's shard.
        #[arg(long, allow_negative_numbers = true)]
        rank: Option<u32>,
    },
    /// Write the network as a SONATA circuit (nodes.h5, edges.h5 with
    /// both indices, node and edge types, the neuron parameters as
    /// simulated, circuit_config.json) for BMTK, NEST, libsonata and
    /// bluepysnap.
    Export {
        /// Network directory.
        dir: PathBuf,
        /// The circuit directory to create.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace an existing circuit directory (one that holds a
        /// circuit_config.json).
        #[arg(long)]
        force: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The `snn-build` binary: parse the command line, run, report.
pub fn main() -> ExitCode {
    crate::ignore_sigxfsz();
    let cli: Cli = crate::parse_args("snn-build");
    let result = match cli.cmd {
        Some(Cmd::Info { dir, json }) => info(&dir, json),
        Some(Cmd::Verify { dir }) => verify(&dir),
        Some(Cmd::Dump { dir, rank }) => dump(&dir, rank),
        Some(Cmd::Export {
            dir,
            output,
            force,
            json,
        }) => export(&dir, &output, force, json),
        None => build(cli.build),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (e.g. `dump | head`) is not an error.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            crate::report("snn-build", &e)
        }
    }
}

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn build(a: BuildArgs) -> Result<()> {
    if a.dry_run {
        return dry_run(a);
    }
    let (Some(config), Some(output)) = (a.config, a.output) else {
        bail!("a config file and -o DIR are required");
    };
    let ranks_given = a.ranks;
    let ranks = a.ranks.unwrap_or(1);
    if ranks == 0 {
        bail!("--ranks must be at least 1");
    }
    start_threads(a.threads)?;
    if let Some(l) = a.compress {
        if !(1..=22).contains(&l) {
            bail!("--compress level must be 1..=22, got {l}");
        }
    }
    let device = build_device(a.backend)?;
    let cfg = snn_formats::load_config(&config, &a.set)?;
    let origin = config.display().to_string();
    // The output may not replace what the build reads.
    let mut inputs = vec![config.clone()];
    inputs.extend(snn_formats::config::data_files(&config, &a.set));
    let opts = BuildOptions {
        n_ranks: ranks,
        compress: a.compress,
        force: a.force,
        progress: Arc::new(Default::default()),
        command: std::env::args().collect(),
        device,
        only_ranks: (!a.only_ranks.is_empty()).then(|| a.only_ranks.clone()),
        inputs,
    };
    // Progress bar on a terminal only.
    let bar = if std::io::stderr().is_terminal() {
        let model = snn_formats::Model::resolve(&cfg, &origin)?;
        let passes = if !a.only_ranks.is_empty() {
            2.0 * a.only_ranks.len() as f64 / ranks as f64
        } else if ranks > 1 {
            3.0
        } else {
            2.0
        };
        let total = (expected_synapses(&model) * passes).max(1.0) as u64;
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} building {bar:40} {percent:>3}% synapse draws, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let counter = opts.progress.clone();
        let pb2 = pb.clone();
        std::thread::spawn(move || loop {
            pb2.set_position(counter.load(Ordering::Relaxed));
            if pb2.is_finished() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        });
        Some(pb)
    } else {
        None
    };
    let summary = match crate::world_size() {
        Some(n) if n > 1 && !a.only_ranks.is_empty() => {
            bail!("--only-ranks builds in one process; under mpirun every process builds its own rank")
        }
        Some(n) if n > 1 => {
            if let Some(pb) = &bar {
                pb.finish_and_clear();
            }
            match mpi_launch::build(&cfg, &origin, &output, &opts, ranks_given)? {
                Some(s) => s,
                None => return Ok(()),
            }
        }
        _ => {
            let s = build_network(&cfg, &origin, &output, &opts);
            if let Some(pb) = &bar {
                pb.finish_and_clear();
            }
            s?
        }
    };
    if a.json {
        let mut v = serde_json::to_value(&summary)?;
        v["peak_rss_bytes"] = peak_rss_bytes().into();
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let ranks = match &summary.built_ranks {
            Some(b) => format!(
                "rank{} {} of {}",
                if b.len() == 1 { "" } else { "s" },
                b.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                summary.n_ranks
            ),
            None => format!("{} ranks", summary.n_ranks),
        };
        writeln!(
            std::io::stdout(),
            "built {} ({} neurons, {} synapses, {}) in {:.2} s: {:.1} M synapses/s, {:.2} bytes/synapse -> {}",
            summary.model,
            summary.n_neurons,
            summary.total_synapses,
            ranks,
            summary.build_seconds,
            summary.synapses_per_second / 1e6,
            summary.bytes_per_synapse,
            summary.network_dir.display()
        )?;
    }
    Ok(())
}

/// Start the global thread pool with `--threads`, checked.
fn start_threads(threads: Option<usize>) -> Result<()> {
    let Some(t) = threads else {
        return Ok(());
    };
    let t = crate::threads_arg(Some(t))?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(t)
        .build_global()
        .context("cannot start the thread pool")?;
    Ok(())
}

fn dry_run(a: BuildArgs) -> Result<()> {
    let Some(config) = a.config else {
        bail!("a config file is required");
    };
    let ranks = a.ranks.unwrap_or(1);
    if ranks == 0 {
        bail!("--ranks must be at least 1");
    }
    start_threads(a.threads)?;
    let cfg = snn_formats::load_config(&config, &a.set)?;
    let sample = if a.sample_ranks.is_empty() {
        vec![0]
    } else {
        a.sample_ranks.clone()
    };
    let est = snn_netbuild::network::dry_run(
        &cfg,
        &config.display().to_string(),
        ranks,
        &sample,
        a.routing,
    )?;
    writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&est)?)?;
    Ok(())
}

fn info(dir: &std::path::Path, json: bool) -> Result<()> {
    let net = NetworkDir::open(dir)?;
    let m = &net.manifest;
    // The resolved model of the embedded config: the parameters as the
    // simulator uses them.
    let model = m.model(&dir.join(snn_formats::manifest::MANIFEST_FILE))?;
    let resolved: Vec<Resolved> = model
        .populations
        .iter()
        .map(|p| Resolved::new(&model, p))
        .collect();
    let shard_bytes: u64 = m.shards.iter().map(|s| s.bytes).sum();
    let bps = if m.total_synapses > 0 {
        shard_bytes as f64 / m.total_synapses as f64
    } else {
        0.0
    };
    if json {
        let v = serde_json::json!({
            "network_dir": dir,
            "model": m.model_name,
            "model_hash": m.model_hash,
            "seed": m.seed,
            "n_ranks": m.n_ranks,
            "dt_ms": m.dt_ms,
            "min_delay_steps": m.min_delay_steps,
            "max_delay_steps": m.max_delay_steps,
            "n_neurons": m.n_neurons,
            "total_synapses": m.total_synapses,
            "shard_bytes": shard_bytes,
            "bytes_per_synapse": bps,
            "compressed": m.compressed,
            "populations": m
                .populations
                .iter()
                .zip(&resolved)
                .map(|(p, r)| {
                    let mut v = serde_json::to_value(p)?;
                    if let serde_json::Value::Object(o) = &mut v {
                        o.insert("params".into(), r.params_json());
                        o.insert("V_m_init".into(), dist_json(&r.v_m_init));
                        o.insert("poisson".into(), serde_json::to_value(&r.poisson)?);
                    }
                    Ok(v)
                })
                .collect::<Result<Vec<_>>>()?,
            "projections": m.projections,
            "shards": m.shards,
        });
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "network   {} ({})", dir.display(), m.model_name)?;
    writeln!(
        out,
        "model     hash {}  seed {}  dt {} ms",
        m.model_hash, m.seed, m.dt_ms
    )?;
    writeln!(
        out,
        "delays    {}..{} steps ({} .. {} ms)",
        m.min_delay_steps,
        m.max_delay_steps,
        fmt_ms(m.min_delay_steps as f64 * m.dt_ms),
        fmt_ms(m.max_delay_steps as f64 * m.dt_ms)
    )?;
    writeln!(
        out,
        "size      {} neurons, {} synapses, {} ranks, {} bytes of shards{} = {:.3} bytes/synapse",
        m.n_neurons,
        m.total_synapses,
        m.n_ranks,
        shard_bytes,
        if m.compressed { " (zstd)" } else { "" },
        bps
    )?;
    writeln!(out, "\npopulations")?;
    writeln!(
        out,
        "  {:<12} {:>12} {:>12}  model",
        "name", "neurons", "first id"
    )?;
    for p in &m.populations {
        writeln!(
            out,
            "  {:<12} {:>12} {:>12}  {}",
            p.name, p.size, p.first_id, p.model
        )?;
    }
    writeln!(
        out,
        "\nneurons (as simulated: NEST names and units; I_e with any compensating DC)"
    )?;
    for (p, r) in m.populations.iter().zip(&resolved) {
        writeln!(out, "  {:<12} {}", p.name, r.text())?;
    }
    writeln!(out, "\nprojections")?;
    writeln!(out, "  {:<20} {:<20} {:>14}", "name", "rule", "synapses")?;
    for p in &m.projections {
        writeln!(out, "  {:<20} {:<20} {:>14}", p.name, p.rule, p.synapses)?;
    }
    writeln!(out, "\nshards")?;
    writeln!(
        out,
        "  {:>5} {:>10} {:>10} {:>14} {:>14} {:>10}",
        "rank", "neurons", "images", "synapses", "bytes", "B/syn"
    )?;
    for s in &m.shards {
        writeln!(
            out,
            "  {:>5} {:>10} {:>10} {:>14} {:>14} {:>10.3}",
            s.rank,
            s.neurons,
            s.images,
            s.synapses,
            s.bytes,
            if s.synapses > 0 {
                s.bytes as f64 / s.synapses as f64
            } else {
                0.0
            }
        )?;
    }
    Ok(())
}

fn verify(dir: &std::path::Path) -> Result<()> {
    let net = NetworkDir::open(dir)?;
    let report = snn_netbuild::verify::verify_network(&net)?;
    writeln!(
        std::io::stdout(),
        "ok: {} shards, {} neurons, {} synapses verified (checksums, structure, synapses, routing tables)",
        report.shards, report.neurons, report.synapses
    )?;
    Ok(())
}

fn export(dir: &std::path::Path, out: &std::path::Path, force: bool, json: bool) -> Result<()> {
    let net = NetworkDir::open(dir)?;
    let model = net
        .manifest
        .model(&dir.join(snn_formats::manifest::MANIFEST_FILE))?;
    if out.exists() {
        if !force {
            bail!("{} exists (use --force to replace it)", out.display());
        }
        if !out.join("circuit_config.json").is_file() {
            bail!(
                "{} is not a SONATA circuit written by snn-build export (no circuit_config.json): not replaced",
                out.display()
            );
        }
        std::fs::remove_dir_all(out).with_context(|| format!("cannot remove {}", out.display()))?;
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new(net.manifest.total_synapses.max(1));
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} {bar:40} {pos}/{len} synapses",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let mut progress = |phase: u32, done: u64, _total: u64| {
        if let Some(pb) = &bar {
            pb.set_message(if phase == 0 { "edges" } else { "indices" });
            pb.set_position(done);
        }
    };
    let s = snn_formats::circuit::export_circuit(&net, &model, out, &mut progress)?;
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let mut stdout = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "circuit": s.dir,
            "circuit_config": s.dir.join("circuit_config.json"),
            "nodes": s.nodes,
            "edges": s.edges,
            "edge_populations": s.edge_populations,
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            stdout,
            "wrote {}: {} nodes, {} edges in {} edge populations",
            s.dir.join("circuit_config.json").display(),
            s.nodes,
            s.edges,
            s.edge_populations
        )?;
    }
    Ok(())
}

fn dump(dir: &std::path::Path, rank: Option<u32>) -> Result<()> {
    let net = NetworkDir::open(dir)?;
    let m = &net.manifest;
    let ranks: Vec<u32> = match rank {
        Some(r) if r >= m.n_ranks => bail!("--rank {r}: the network has {} ranks", m.n_ranks),
        Some(r) => vec![r],
        None => (0..m.n_ranks).collect(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    writeln!(out, "source,target,weight_pA,delay_ms")?;
    for r in ranks {
        let shard = net.open_shard(r, Check::Checksum)?;
        let d = shard.data();
        let tb = d.target_bits.to_native();
        let mask = (1u32 << tb) - 1;
        let frac = d.weight_frac_bits.to_native();
        for row in 0..d.row_ptr.len() - 1 {
            let src = d.row_source(row);
            for i in d.row_synapses(row) {
                let td = d.syn_target_delay[i].to_native();
                let t = (td & mask) as usize;
                let Some(tg) = d.local_to_global.get(t) else {
                    bail!(
                        "{}: synapse {i} has target {t} outside the shard",
                        shard.path().display()
                    );
                };
                let w = dequantize_weight(d.syn_weight[i].to_native(), frac);
                let delay_ms = (td >> tb) as f64 * m.dt_ms;
                writeln!(out, "{src},{},{w},{}", tg.to_native(), fmt_ms(delay_ms))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// Running under `mpirun`: one shard per process.
mod mpi_launch {
    use anyhow::{bail, Result};
    use snn_formats::Config;
    use snn_netbuild::{BuildOptions, BuildSummary};
    use std::path::Path;

    #[cfg(feature = "mpi")]
    pub fn build(
        cfg: &Config,
        origin: &str,
        out: &Path,
        opts: &BuildOptions,
        ranks_given: Option<u32>,
    ) -> Result<Option<BuildSummary>> {
        use mpi::traits::Communicator;
        let Some(universe) = mpi::initialize() else {
            bail!("MPI could not be initialised");
        };
        let world = universe.world();
        if let Some(r) = ranks_given {
            if r != world.size() as u32 {
                bail!(
                    "--ranks {r} differs from the {} MPI processes (omit --ranks under mpirun)",
                    world.size()
                );
            }
        }
        let mut opts = opts.clone();
        opts.n_ranks = world.size() as u32;
        Ok(snn_netbuild::mpi_build::build_network_mpi(
            &world, cfg, origin, out, &opts,
        )?)
    }

    #[cfg(not(feature = "mpi"))]
    pub fn build(
        _: &Config,
        _: &str,
        _: &Path,
        _: &BuildOptions,
        _: Option<u32>,
    ) -> Result<Option<BuildSummary>> {
        bail!("this snn-build was compiled without MPI support (cargo feature `mpi`); build with it to run under mpirun, or use --ranks N in one process")
    }
}

/// A distribution as a config writes it ([`Dist::to_config`]): a number,
/// or `{ distribution = "normal", mean, std, [min], [max], bounds }` /
/// `{ distribution = "uniform", min, max }` (absent bounds left out).
///
/// [`Dist::to_config`]: snn_formats::model::Dist::to_config
fn dist_json(d: &snn_formats::model::Dist) -> serde_json::Value {
    let mut v = serde_json::to_value(d.to_config()).unwrap_or_default();
    if let serde_json::Value::Object(o) = &mut v {
        o.retain(|_, x| !x.is_null());
    }
    v
}

/// A population's neuron parameters and drive as the simulator uses them
/// (`snn-build info`).
struct Resolved {
    /// The model's NEST parameters and their values.
    params: Vec<(&'static str, f64)>,
    /// Spike times of a generator, ms.
    spike_times: Vec<f64>,
    /// The initial membrane potential's distribution, mV.
    v_m_init: snn_formats::model::Dist,
    /// The Poisson drive, if the population has one.
    poisson: Option<PoissonDrive>,
}

/// A population's Poisson drive (`snn-build info --json`: `poisson`).
#[derive(serde::Serialize)]
struct PoissonDrive {
    /// Total rate of the drive per neuron (the rate of one input times the
    /// scaled external in-degree), Hz.
    rate_hz: f64,
    /// Weight after scaling, pA (mV for `iaf_psc_delta`).
    weight: f64,
    /// The weight in the network's fixed point, as it is simulated.
    weight_simulated: f64,
    /// Delay, ms.
    delay_ms: f64,
}

impl Resolved {
    fn new(model: &snn_formats::model::Model, p: &snn_formats::model::Population) -> Resolved {
        let poisson = model
            .poisson
            .as_ref()
            .filter(|_| {
                p.poisson_rate_hz > 0.0
                    && p.params.model != snn_formats::model::NeuronModel::SpikeGenerator
            })
            .map(|pi| PoissonDrive {
                rate_hz: p.poisson_rate_hz,
                weight: pi.weight_pa,
                weight_simulated: dequantize_weight(
                    snn_formats::model::quantize_weight(pi.weight_pa, model.weight_frac_bits),
                    model.weight_frac_bits,
                ),
                delay_ms: pi.delay_ms,
            });
        Resolved {
            params: p.params.values(),
            spike_times: p.params.spike_times.clone(),
            v_m_init: p.v_m_init.clone(),
            poisson,
        }
    }

    fn params_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        for (k, v) in &self.params {
            o.insert((*k).into(), (*v).into());
        }
        if !self.spike_times.is_empty() {
            o.insert("spike_times".into(), self.spike_times.clone().into());
        }
        o.into()
    }

    /// One line: the parameters (shortest round-trip decimals, so the
    /// values can be copied exactly), the initial V_m and the drive.
    fn text(&self) -> String {
        use snn_formats::model::Dist;
        let mut t: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !self.spike_times.is_empty() {
            t.push(format!("spike_times: {} spikes", self.spike_times.len()));
        } else {
            t.push(match &self.v_m_init {
                Dist::Constant(v) => format!("V_m(0)={v}"),
                Dist::Normal {
                    mean,
                    std,
                    min,
                    max,
                    clip,
                } => {
                    let bounds = if min.is_finite() || max.is_finite() {
                        let how = if *clip { "clipped" } else { "redrawn" };
                        format!(" {how} into [{min}, {max}]")
                    } else {
                        String::new()
                    };
                    format!("V_m(0)~normal(mean {mean}, sd {std}){bounds}")
                }
                Dist::Uniform { min, max } => format!("V_m(0)~uniform[{min}, {max})"),
            });
        }
        if let Some(d) = &self.poisson {
            t.push(format!(
                "poisson {} Hz x {} (simulated {}), delay {} ms",
                d.rate_hz, d.weight, d.weight_simulated, d.delay_ms
            ));
        }
        t.join("  ")
    }
}

/// A time in ms with the float noise of `steps * dt` removed.
fn fmt_ms(x: f64) -> String {
    let s = format!("{x:.9}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_string()
}
