//! Building a whole network directory in one process (`--ranks N`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use snn_formats::manifest::{
    hex, model_hash, Manifest, PopulationEntry, ProjectionEntry, Provenance, ShardEntry,
    MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, PARTIAL_FILE,
};
use snn_formats::model::{delay_to_steps, max_delay_steps_for_targets, Model};
use snn_formats::output::Staging;
use snn_formats::shard::{shard_file_name, write_shard, ShardData, SHARD_FORMAT_VERSION};
use snn_formats::{Config, FormatError, Placement};

use crate::gpu::{send_tables, DeviceFactory, GpuRank};
use crate::memory;
use crate::rank::{bits_for, RankPlan};
use crate::BuildError;

/// Options of a build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Number of ranks (shards).
    pub n_ranks: u32,
    /// zstd level for compressed shards.
    pub compress: Option<i32>,
    /// Replace an existing output directory.
    pub force: bool,
    /// Synapses drawn so far (both passes), for a progress display.
    pub progress: Arc<AtomicU64>,
    /// The command line, for the manifest.
    pub command: Vec<String>,
    /// Where the ranks are built.
    pub device: BuildDevice,
    /// Build and write only these ranks of the `n_ranks`-rank network (what
    /// one process of an MPI build does): the output directory is a partial
    /// build ([`PARTIAL_FILE`], no manifest) that cannot be simulated; each
    /// shard is the very file a whole build writes for its rank.
    pub only_ranks: Option<Vec<u32>>,
    /// The files the build reads (its config and data files): the output
    /// may not replace them, `force` or not.
    pub inputs: Vec<std::path::PathBuf>,
}

/// Where a build runs.
#[derive(Clone, Debug, Default)]
pub enum BuildDevice {
    /// On the CPU threads ([`RankPlan`]).
    #[default]
    Cpu,
    /// On a device per rank ([`crate::gpu`]); the shards are the same bytes.
    Gpu(DeviceFactory),
}

impl BuildDevice {
    /// The name recorded in the manifest's provenance.
    pub fn name(&self) -> &str {
        match self {
            BuildDevice::Cpu => "cpu",
            BuildDevice::Gpu(f) => f.name(),
        }
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            n_ranks: 1,
            compress: None,
            force: false,
            progress: Arc::new(AtomicU64::new(0)),
            command: Vec::new(),
            device: BuildDevice::Cpu,
            only_ranks: None,
            inputs: Vec::new(),
        }
    }
}

/// What a build produced (also printed by `snn-build --json`).
#[derive(Clone, Debug, Serialize)]
pub struct BuildSummary {
    /// Output directory.
    pub network_dir: PathBuf,
    /// Model name.
    pub model: String,
    /// Ranks.
    pub n_ranks: u32,
    /// Threads.
    pub threads: usize,
    /// Neurons.
    pub n_neurons: u64,
    /// Synapses.
    pub total_synapses: u64,
    /// Synapses per projection.
    pub projections: Vec<ProjectionEntry>,
    /// Smallest delay, steps.
    pub min_delay_steps: u32,
    /// Largest delay, steps.
    pub max_delay_steps: u32,
    /// Bytes of all shards on disk.
    pub shard_bytes: u64,
    /// Bytes on disk per synapse.
    pub bytes_per_synapse: f64,
    /// Wall time of the whole build including writing, s.
    pub build_seconds: f64,
    /// Of which writing shards, s.
    pub write_seconds: f64,
    /// Synapses per second of wall time.
    pub synapses_per_second: f64,
    /// The ranks built, when only some were ([`BuildOptions::only_ranks`]);
    /// the counts above are then those of these ranks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub built_ranks: Option<Vec<u32>>,
    /// Of the build time, s: drawing the sources of the other ranks'
    /// synapses from the built ranks' neurons, for the send tables (a
    /// partial build's stand-in for the exchange an MPI build makes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_seconds: Option<f64>,
}

/// Expected number of synapses (for progress displays).
pub fn expected_synapses(model: &Model) -> f64 {
    model
        .projections
        .iter()
        .map(|p| p.expected_indegree(model) * model.populations[p.target].size as f64)
        .sum()
}

/// The placement of `model` on `n_ranks` ranks, refused before its tables
/// are allocated when they do not fit in memory.
pub fn new_placement(
    model: &Model,
    n_ranks: u32,
    job: memory::Job,
) -> Result<Placement, BuildError> {
    Placement::check_size(model, n_ranks)?;
    memory::check_fits(
        memory::structural_bytes(model, n_ranks, job),
        &format!("--ranks {n_ranks}: the placement and routing tables alone"),
    )?;
    Ok(Placement::new(model, n_ranks)?)
}

/// Refuse, before any synapse is drawn, a projection whose delays cannot
/// be stored next to the local targets of the ranks it reaches: a synapse
/// word holds the target in `bits_for(neurons on the rank)` bits and the
/// delay in steps above them. Delays of unbounded normals are taken to
/// reach 8 sd above the mean (rarer draws are still caught when stored).
pub fn check_delays(model: &Model, placement: &Placement, origin: &str) -> Result<(), BuildError> {
    let n_ranks = placement.n_ranks();
    let largest = (0..n_ranks)
        .map(|r| placement.n_local(r))
        .max()
        .unwrap_or(0);
    let limit_all = max_delay_steps_for_targets(bits_for(largest));
    for p in &model.projections {
        let reach_ms = p.delay_ms.upper_reach(8.0);
        let reach = delay_to_steps(reach_ms, model.dt_ms) as u64;
        if reach <= limit_all {
            continue;
        }
        // Only the ranks that hold targets of the projection matter.
        let Some((n, r)) = (0..n_ranks)
            .filter(|&r| placement.count_in(p.target, r) > 0)
            .map(|r| (placement.n_local(r), r))
            .max()
        else {
            continue;
        };
        let bits = bits_for(n);
        let limit = max_delay_steps_for_targets(bits);
        if reach > limit {
            return Err(snn_formats::ConfigError::Field {
                file: origin.to_string(),
                field: format!("projections[{}].delay", p.index),
                message: format!(
                    "delays reaching {reach_ms} ms ({reach} steps of {} ms) do not fit next to the {bits}-bit local targets of rank {r} ({n} neurons): at most {limit} steps ({} ms); use more ranks or shorter delays",
                    model.dt_ms,
                    limit as f64 * model.dt_ms
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Build the network of `cfg` into `dest`. `origin` names the config file in
/// errors.
pub fn build_network(
    cfg: &Config,
    origin: &str,
    dest: &Path,
    opts: &BuildOptions,
) -> Result<BuildSummary, BuildError> {
    let t0 = Instant::now();
    let model = Model::resolve(cfg, origin)?;
    let job = match &opts.only_ranks {
        Some(only) => memory::Job::SomeRanks(only),
        None => memory::Job::AllRanks,
    };
    let placement = new_placement(&model, opts.n_ranks, job)?;
    if let Some(only) = &opts.only_ranks {
        if let Some(r) = only.iter().find(|&&r| r >= opts.n_ranks) {
            return Err(BuildError::Invalid(format!(
                "--only-ranks: rank {r} is not below --ranks {}",
                opts.n_ranks
            )));
        }
        if matches!(opts.device, BuildDevice::Gpu(_)) {
            return Err(BuildError::Invalid(
                "--only-ranks builds on the CPU (--backend cpu)".into(),
            ));
        }
    }
    check_delays(&model, &placement, origin)?;
    {
        let threads = match opts.device {
            BuildDevice::Cpu => rayon::current_num_threads(),
            BuildDevice::Gpu(_) => 0,
        };
        let (need, r) = memory::estimate(&model, &placement, threads, job);
        memory::check_fits(
            need,
            &format!(
                "building {} neurons on {} rank{} (rank {r} the largest)",
                model.n_neurons,
                opts.n_ranks,
                if opts.n_ranks == 1 { "" } else { "s" }
            ),
        )?;
    }
    if let BuildDevice::Gpu(_) = &opts.device {
        crate::gpu::check_buildable(&model)?;
    }
    let inputs: Vec<&Path> = opts.inputs.iter().map(|p| p.as_path()).collect();
    let staging = Staging::new_guarded(dest, opts.force, &inputs)?;
    let hash = model_hash(cfg);
    let n_ranks = opts.n_ranks;
    let threads = rayon::current_num_threads();
    let progress = &*opts.progress;
    if let Some(only) = &opts.only_ranks {
        return build_some_ranks(&model, &placement, hash, staging, only, opts, t0);
    }
    if let BuildDevice::Gpu(factory) = &opts.device {
        let results = build_ranks_gpu(factory, &model, &placement, hash, &staging, opts)?;
        return finish_manifest(cfg, &model, hash, staging, results, opts, threads, t0);
    }

    // Routing needs: which neurons of rank q rank r needs (its images).
    let all_images: Vec<Vec<Vec<u64>>> = if n_ranks > 1 {
        (0..n_ranks)
            .map(|r| {
                let plan = RankPlan::new(&model, &placement, r, threads)?;
                let counts = plan.count(progress);
                Ok(plan.images(&counts))
            })
            .collect::<Result<_, BuildError>>()?
    } else {
        vec![vec![Vec::new()]]
    };

    let mut results = Vec::with_capacity(n_ranks as usize);
    for r in 0..n_ranks {
        let plan = RankPlan::new(&model, &placement, r, threads)?;
        let counts = plan.count(progress);
        let send: Vec<Vec<u32>> = (0..n_ranks as usize)
            .map(|d| {
                all_images[d]
                    .get(r as usize)
                    .map(|v| v.iter().map(|&g| placement.locate(g).1).collect())
                    .unwrap_or_default()
            })
            .collect();
        let shard = plan.fill(counts, &all_images[r as usize], &send, hash, progress)?;
        results.push(write_rank(&staging, &shard, opts)?);
    }
    finish_manifest(cfg, &model, hash, staging, results, opts, threads, t0)
}

/// The send table of rank `from` to every rank: the local indices on
/// `from` of the sources each other rank's synapses use, found by drawing
/// (again) the sources of the other ranks' synapses from `from`'s
/// populations. What the routing exchange of an MPI build delivers, made
/// here without the other ranks.
pub fn send_tables_of(
    model: &Model,
    placement: &Placement,
    from: u32,
) -> Result<Vec<Vec<u32>>, BuildError> {
    let threads = rayon::current_num_threads();
    (0..placement.n_ranks())
        .map(|d| {
            if d == from {
                return Ok(Vec::new());
            }
            Ok(
                RankPlan::with_projections(model, placement, d, threads, |p| {
                    placement.count_in(p.source, from) > 0
                })?
                .needs_of(from),
            )
        })
        .collect()
}

/// `--only-ranks`: build the chosen ranks' shards (the same bytes as in a
/// whole build) and describe them in [`PARTIAL_FILE`] instead of a
/// manifest.
fn build_some_ranks(
    model: &Model,
    placement: &Placement,
    hash: [u8; 16],
    staging: Staging,
    only: &[u32],
    opts: &BuildOptions,
    t0: Instant,
) -> Result<BuildSummary, BuildError> {
    let threads = rayon::current_num_threads();
    let progress = &*opts.progress;
    let mut ranks: Vec<u32> = only.to_vec();
    ranks.sort_unstable();
    ranks.dedup();
    let mut results = Vec::with_capacity(ranks.len());
    let mut routing_seconds = 0.0;
    for &r in &ranks {
        let plan = RankPlan::new(model, placement, r, threads)?;
        let counts = plan.count(progress);
        let images = plan.images(&counts);
        let tr = Instant::now();
        let send = if placement.n_ranks() > 1 {
            send_tables_of(model, placement, r)?
        } else {
            vec![Vec::new()]
        };
        routing_seconds += tr.elapsed().as_secs_f64();
        let shard = plan.fill(counts, &images, &send, hash, progress)?;
        results.push(write_rank(&staging, &shard, opts)?);
    }
    let total_synapses: u64 = results.iter().map(|r| r.entry.synapses).sum();
    let (min_delay_steps, max_delay_steps) = delay_range(&results);
    let shard_bytes: u64 = results.iter().map(|r| r.entry.bytes).sum();
    let write_seconds = results.iter().map(|r| r.write_seconds).sum();
    let partial = PartialBuild {
        format: PARTIAL_FORMAT.into(),
        model_hash: hex(&hash),
        model_name: model.name.clone(),
        n_ranks: placement.n_ranks(),
        ranks: ranks.clone(),
        shards: results.iter().map(|r| r.entry.clone()).collect(),
        command: opts.command.clone(),
    };
    let ppath = staging.path().join(PARTIAL_FILE);
    let text =
        serde_json::to_string_pretty(&partial).map_err(|e| BuildError::Internal(e.to_string()))?;
    std::fs::write(&ppath, text).map_err(|e| FormatError::io(&ppath, "write", e))?;
    let network_dir = staging.commit()?;
    let build_seconds = t0.elapsed().as_secs_f64();
    Ok(BuildSummary {
        network_dir,
        model: model.name.clone(),
        n_ranks: placement.n_ranks(),
        threads,
        n_neurons: ranks.iter().map(|&r| placement.n_local(r)).sum(),
        total_synapses,
        projections: Vec::new(),
        min_delay_steps,
        max_delay_steps,
        shard_bytes,
        bytes_per_synapse: if total_synapses > 0 {
            shard_bytes as f64 / total_synapses as f64
        } else {
            0.0
        },
        build_seconds,
        write_seconds,
        synapses_per_second: total_synapses as f64 / build_seconds.max(1e-9),
        built_ranks: Some(ranks),
        routing_seconds: Some(routing_seconds),
    })
}

/// What a partial build (`--only-ranks`) writes instead of a manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartialBuild {
    /// Always [`PARTIAL_FORMAT`].
    pub format: String,
    /// Model hash (hex).
    pub model_hash: String,
    /// Model name.
    pub model_name: String,
    /// Ranks of the whole network.
    pub n_ranks: u32,
    /// The ranks built here.
    pub ranks: Vec<u32>,
    /// Their shards, as a manifest lists them.
    pub shards: Vec<ShardEntry>,
    /// Command line.
    pub command: Vec<String>,
}

/// Value of [`PartialBuild::format`].
pub const PARTIAL_FORMAT: &str = "snn-network-partial";

/// Writes a rank's shard into the staging directory.
fn write_rank(
    staging: &Staging,
    shard: &ShardData,
    opts: &BuildOptions,
) -> Result<RankResult, BuildError> {
    write_rank_in(staging.path(), shard, opts)
}

/// Writes a rank's shard into `dir` (a staging directory) and describes it
/// for the manifest.
pub(crate) fn write_rank_in(
    dir: &Path,
    shard: &ShardData,
    opts: &BuildOptions,
) -> Result<RankResult, BuildError> {
    let tw = Instant::now();
    let file = shard_file_name(shard.rank);
    let written = write_shard(&dir.join(&file), shard, opts.compress)?;
    Ok(RankResult {
        entry: ShardEntry {
            file,
            rank: shard.rank,
            bytes: written.file_bytes,
            xxh3: format!("{:016x}", written.header_xxh3),
            synapses: shard.syn_weight.len() as u64,
            neurons: shard.local_to_global.len() as u64,
            images: shard.images.len() as u64,
        },
        per_projection: shard.projection_synapses.clone(),
        min_delay_steps: shard.min_delay_steps,
        max_delay_steps: shard.max_delay_steps,
        write_seconds: tw.elapsed().as_secs_f64(),
    })
}

/// The ranks built on devices, one after the other (a device each, opened by
/// `factory`). With several ranks, a first pass generates every rank up to
/// its images (for the send tables), as the CPU build's counting pass does.
fn build_ranks_gpu(
    factory: &DeviceFactory,
    model: &Model,
    placement: &Placement,
    hash: [u8; 16],
    staging: &Staging,
    opts: &BuildOptions,
) -> Result<Vec<RankResult>, BuildError> {
    use std::sync::atomic::Ordering;
    let n_ranks = placement.n_ranks();
    let mut all_images: Vec<Vec<Vec<u64>>> = Vec::new();
    if n_ranks > 1 {
        for r in 0..n_ranks {
            let mut dev = factory.open(r)?;
            let g = GpuRank::generate(&mut *dev, model, placement, r)?;
            opts.progress.fetch_add(g.n_synapses(), Ordering::Relaxed);
            all_images.push(g.images().to_vec());
            g.free(&mut *dev);
        }
    }
    let mut results = Vec::with_capacity(n_ranks as usize);
    for r in 0..n_ranks {
        let mut dev = factory.open(r)?;
        let g = GpuRank::generate(&mut *dev, model, placement, r)?;
        if n_ranks > 1 && g.images() != all_images[r as usize].as_slice() {
            return Err(BuildError::Internal(format!(
                "rank {r}: the device found other images the second time"
            )));
        }
        let n_syn = g.n_synapses();
        let send = send_tables(placement, r, &all_images);
        let shard = g.finish(&mut *dev, &send, hash)?;
        drop(dev);
        opts.progress.fetch_add(2 * n_syn, Ordering::Relaxed);
        results.push(write_rank(staging, &shard, opts)?);
    }
    Ok(results)
}

/// What one rank's build produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RankResult {
    /// Manifest entry of its shard.
    pub entry: ShardEntry,
    /// Synapses per projection.
    pub per_projection: Vec<u64>,
    /// Smallest delay (0 without synapses).
    pub min_delay_steps: u32,
    /// Largest delay.
    pub max_delay_steps: u32,
    /// Time spent writing, s.
    pub write_seconds: f64,
}

/// Smallest and largest delay over the ranks that have synapses ((0, 0)
/// when none has).
fn delay_range(results: &[RankResult]) -> (u32, u32) {
    results
        .iter()
        .filter(|r| r.entry.synapses > 0)
        .map(|r| (r.min_delay_steps, r.max_delay_steps))
        .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
        .unwrap_or((0, 0))
}

/// Write the manifest from the ranks' results and commit the directory.
#[allow(clippy::too_many_arguments)]
pub fn finish_manifest(
    cfg: &Config,
    model: &Model,
    hash: [u8; 16],
    staging: Staging,
    results: Vec<RankResult>,
    opts: &BuildOptions,
    threads: usize,
    t0: Instant,
) -> Result<BuildSummary, BuildError> {
    let n_ranks = results.len() as u32;
    let mut per_projection = vec![0u64; model.projections.len()];
    let (dmin, dmax) = delay_range(&results);
    let mut write_seconds = 0.0;
    let mut entries = Vec::with_capacity(results.len());
    for r in results {
        for (a, b) in per_projection.iter_mut().zip(&r.per_projection) {
            *a += b;
        }
        write_seconds += r.write_seconds;
        entries.push(r.entry);
    }
    let total_synapses: u64 = per_projection.iter().sum();
    let projections: Vec<ProjectionEntry> = model
        .projections
        .iter()
        .zip(&per_projection)
        .map(|(p, &n)| ProjectionEntry {
            name: p.name.clone(),
            source: model.populations[p.source].name.clone(),
            target: model.populations[p.target].name.clone(),
            rule: p.rule.name().to_string(),
            synapses: n,
        })
        .collect();
    let shard_bytes: u64 = entries.iter().map(|e| e.bytes).sum();
    let build_seconds = t0.elapsed().as_secs_f64();
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        format_version: MANIFEST_VERSION,
        shard_format_version: SHARD_FORMAT_VERSION,
        model_hash: hex(&hash),
        model_name: model.name.clone(),
        seed: model.seed,
        n_ranks,
        dt_ms: model.dt_ms,
        min_delay_steps: dmin,
        max_delay_steps: dmax,
        n_neurons: model.n_neurons,
        total_synapses,
        weight_frac_bits: model.weight_frac_bits,
        compressed: opts.compress.is_some(),
        populations: model
            .populations
            .iter()
            .map(|p| PopulationEntry {
                name: p.name.clone(),
                size: p.size,
                first_id: p.first_id,
                model: p.params.model.name().into(),
            })
            .collect(),
        projections: projections.clone(),
        shards: entries,
        config: cfg.clone(),
        provenance: Provenance {
            builder_version: env!("CARGO_PKG_VERSION").into(),
            command: opts.command.clone(),
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            host: hostname(),
            threads,
            device: opts.device.name().into(),
            build_seconds,
        },
        checksum: String::new(),
    };
    let mpath = staging.path().join(MANIFEST_FILE);
    let text = manifest.to_json();
    let mut f = std::fs::File::create(&mpath).map_err(|e| FormatError::io(&mpath, "create", e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| FormatError::io(&mpath, "write", e))?;
    f.sync_all()
        .map_err(|e| FormatError::io(&mpath, "fsync", e))?;
    let network_dir = staging.commit()?;
    let build_seconds = t0.elapsed().as_secs_f64();
    Ok(BuildSummary {
        network_dir,
        model: model.name.clone(),
        n_ranks,
        threads,
        n_neurons: model.n_neurons,
        total_synapses,
        projections,
        min_delay_steps: dmin,
        max_delay_steps: dmax,
        shard_bytes,
        bytes_per_synapse: if total_synapses > 0 {
            shard_bytes as f64 / total_synapses as f64
        } else {
            0.0
        },
        build_seconds,
        write_seconds,
        synapses_per_second: total_synapses as f64 / build_seconds.max(1e-9),
        built_ranks: None,
        routing_seconds: None,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Sizes of one rank's shard, computed without storing synapses.
#[derive(Clone, Debug, Serialize)]
pub struct RankEstimate {
    /// Rank.
    pub rank: u32,
    /// Own neurons.
    pub n_local: u64,
    /// Areas with neurons on this rank.
    pub areas: Vec<String>,
    /// Images of remote neurons (= spikes this rank can receive per
    /// remote spike event, summed over sources).
    pub n_images: u64,
    /// Ranks this rank receives spikes from (p2p partners).
    pub source_ranks: u32,
    /// Incoming synapses.
    pub synapses: u64,
    /// Shard bytes on disk and in memory (uncompressed): exact with
    /// `--routing`; without, the send tables are estimated as
    /// `4 * n_images` bytes (their average over ranks).
    pub shard_bytes: u64,
    /// Bytes per synapse.
    pub bytes_per_synapse: f64,
    /// Point-to-point bytes this rank receives per step (8 per spike of
    /// each neuron it has an image of), at the populations'
    /// `mean_rate_Hz` (absent when a population has none).
    pub received_bytes_per_step: Option<f64>,
    /// With `--routing`: ranks this rank sends spikes to.
    pub send_partners: Option<u32>,
    /// With `--routing`: entries of its send tables (own neurons counted
    /// once per rank that needs them).
    pub send_entries: Option<u64>,
    /// With `--routing`: point-to-point bytes it sends per step at the
    /// populations' `mean_rate_Hz`.
    pub sent_bytes_per_step: Option<f64>,
    /// Wall time of the dry run of this rank, s.
    pub seconds: f64,
}

/// What `snn-build --dry-run` reports.
#[derive(Clone, Debug, Serialize)]
pub struct DryRun {
    /// Model name.
    pub model: String,
    /// Ranks.
    pub n_ranks: u32,
    /// Placement scheme.
    pub placement: String,
    /// Neurons of the whole network.
    pub n_neurons: u64,
    /// Populations.
    pub n_populations: usize,
    /// Areas.
    pub n_areas: usize,
    /// Projections.
    pub n_projections: usize,
    /// Synapses of the whole network, when every rule fixes the number
    /// (all but `pairwise_bernoulli`).
    pub total_synapses: Option<u64>,
    /// Expected synapses of the whole network.
    pub expected_synapses: f64,
    /// The sampled ranks.
    pub ranks: Vec<RankEstimate>,
}

/// Dry run (`snn-build --dry-run`): the network's totals from the resolved
/// model, and for each rank in `sample` the sources of its synapses drawn
/// with the very code of a real build (first pass): the shard's size,
/// images and routing partners, without storing synapses or writing files.
/// With `routing`, also the rank's send tables ([`send_tables_of`]: the
/// other ranks' draws from its neurons, O(network) for round robin).
/// Memory: `4 * n_neurons` bytes per thread.
pub fn dry_run(
    cfg: &Config,
    origin: &str,
    n_ranks: u32,
    sample: &[u32],
    routing: bool,
) -> Result<DryRun, BuildError> {
    let model = Model::resolve(cfg, origin)?;
    let placement = new_placement(&model, n_ranks, memory::Job::DryRun(sample))?;
    if let Some(r) = sample.iter().find(|&&r| r >= n_ranks) {
        return Err(BuildError::Invalid(format!(
            "--sample-ranks: rank {r} is not below --ranks {n_ranks}"
        )));
    }
    check_delays(&model, &placement, origin)?;
    let threads = rayon::current_num_threads();
    let (need, r) = memory::estimate(&model, &placement, threads, memory::Job::DryRun(sample));
    memory::check_fits(need, &format!("the dry run of rank {r} of {n_ranks}"))?;
    let progress = AtomicU64::new(0);
    // Spike bytes per step of one neuron of each population.
    let step_s = model.dt_ms * 1e-3;
    let bytes_per_step: Option<Vec<f64>> = model
        .populations
        .iter()
        .map(|p| p.mean_rate_hz.map(|r| 8.0 * r * step_s))
        .collect();
    let mut ranks = Vec::with_capacity(sample.len());
    for &r in sample {
        let t = Instant::now();
        let plan = RankPlan::new(&model, &placement, r, threads)?;
        let counts = plan.count(&progress);
        let synapses: u64 = counts.per_projection.iter().sum();
        let images = plan.images(&counts);
        let n_images: u64 = images.iter().map(|v| v.len() as u64).sum();
        let n_local = plan.n_local() as u64;
        let received = bytes_per_step.as_ref().map(|b| {
            images
                .iter()
                .flatten()
                .map(|&g| b[model.population_of(g)])
                .sum::<f64>()
        });
        let (mut send_partners, mut send_entries, mut sent) = (None, None, None);
        if routing && n_ranks > 1 {
            let send = send_tables_of(&model, &placement, r)?;
            send_partners = Some(send.iter().filter(|v| !v.is_empty()).count() as u32);
            send_entries = Some(send.iter().map(|v| v.len() as u64).sum());
            let owned = placement.owned(r);
            sent = bytes_per_step.as_ref().map(|b| {
                send.iter()
                    .flatten()
                    .map(|&l| b[model.population_of(owned[l as usize])])
                    .sum::<f64>()
            });
        } else if routing {
            (send_partners, send_entries, sent) = (Some(0), Some(0), Some(0.0));
        }
        let rows = n_local + n_images;
        let shard_bytes = snn_formats::shard::HEADER_LEN as u64
            + 8 * synapses
            + 8 * (rows + 1)
            + 8 * n_local
            + 8 * n_images
            + 4 * send_entries.unwrap_or(n_images)
            + 16 * (n_ranks as u64 + 1)
            + 8 * model.projections.len() as u64
            + 256;
        let mut areas: Vec<usize> = (0..model.populations.len())
            .filter(|&p| placement.count_in(p, r) > 0)
            .map(|p| model.populations[p].area)
            .collect();
        areas.sort_unstable();
        areas.dedup();
        ranks.push(RankEstimate {
            rank: r,
            n_local,
            areas: areas.iter().map(|&a| model.areas[a].clone()).collect(),
            n_images,
            source_ranks: images.iter().filter(|v| !v.is_empty()).count() as u32,
            synapses,
            shard_bytes,
            bytes_per_synapse: if synapses > 0 {
                shard_bytes as f64 / synapses as f64
            } else {
                0.0
            },
            received_bytes_per_step: received,
            send_partners,
            send_entries,
            sent_bytes_per_step: sent,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let exact: Option<Vec<u64>> = model
        .projections
        .iter()
        .map(|p| p.exact_synapses(&model))
        .collect();
    Ok(DryRun {
        model: model.name.clone(),
        n_ranks,
        placement: serde_json::to_value(model.placement.scheme)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        n_neurons: model.n_neurons,
        n_populations: model.populations.len(),
        n_areas: model.areas.len(),
        n_projections: model.projections.len(),
        total_synapses: exact.map(|v| v.iter().sum()),
        expected_synapses: expected_synapses(&model),
        ranks,
    })
}
