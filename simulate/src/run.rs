//! A whole run: open the network, simulate, record, write the summary.
//!
//! Output directory (written into a staging directory and renamed into place
//! when the run is complete, so an interrupted run never looks finished):
//! `spikes-rank-NNNNN.h5` (SONATA spikes), `vm-rank-NNNNN.h5` (SONATA report,
//! when V_m recording is configured), `summary.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use snn_formats::output::Staging;
use snn_formats::sonata::{ReportWriter, SpikeWriter};
use snn_formats::{Check, FormatError, NetworkDir};

use crate::cluster::{Cluster, CommMode, Emulated};
use crate::engine::Engine;
use crate::SimError;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Network directory.
    pub network: PathBuf,
    /// Output run directory.
    pub output: PathBuf,
    /// Presimulation (not recorded), ms.
    pub t_presim_ms: f64,
    /// Recorded simulation, ms.
    pub t_sim_ms: f64,
    /// Simulation seed (Poisson input, initial potentials).
    pub seed: u64,
    /// Replace an existing output directory.
    pub force: bool,
    /// How spikes travel between ranks.
    pub comm: CommMode,
}

/// Progress report passed to the callback after each interval.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Biological time done, ms.
    pub t_ms: f64,
    /// Biological time in total, ms.
    pub t_total_ms: f64,
}

/// Per-population line of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct PopulationSummary {
    /// Name.
    pub name: String,
    /// Neurons.
    pub size: u64,
    /// Global id of the first neuron.
    pub first_id: u64,
    /// Spikes recorded (0 if not recorded).
    pub spikes: u64,
    /// Whether spikes were recorded.
    pub recorded: bool,
    /// Mean rate over the recorded time, Hz.
    pub rate_hz: f64,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Format tag.
    pub format: String,
    /// Network directory.
    pub network: PathBuf,
    /// Model hash of the network.
    pub model_hash: String,
    /// Simulation seed.
    pub seed: u64,
    /// Ranks.
    pub n_ranks: u32,
    /// Ranks that finished.
    pub ranks_finished: Vec<u32>,
    /// Backend.
    pub backend: String,
    /// Communication mode.
    pub comm: String,
    /// Threads.
    pub threads: usize,
    /// Time step, ms.
    pub dt_ms: f64,
    /// Communication interval, steps.
    pub interval_steps: u64,
    /// Steps simulated.
    pub steps: u64,
    /// Start of recording, ms.
    pub t_start_ms: f64,
    /// End of the run, ms.
    pub t_stop_ms: f64,
    /// Populations.
    pub populations: Vec<PopulationSummary>,
    /// Spike files, relative to the run directory.
    pub spike_files: Vec<String>,
    /// V_m report files.
    pub vm_files: Vec<String>,
    /// Wall time to load the network and set up, s.
    pub wall_load_s: f64,
    /// Wall time of the presimulation, s.
    pub wall_presim_s: f64,
    /// Wall time of the recorded simulation, s.
    pub wall_sim_s: f64,
    /// Wall time of the recorded simulation per biological second.
    pub real_time_factor: f64,
    /// Synaptic events delivered during the recorded simulation.
    pub synaptic_events: u64,
}

/// Convert a time in ms to steps, requiring a non-negative multiple of dt.
pub fn ms_to_steps(name: &str, t_ms: f64, dt_ms: f64) -> Result<u64, SimError> {
    if !(t_ms.is_finite() && t_ms >= 0.0) {
        return Err(SimError::Invalid(format!(
            "{name} must be a non-negative number of ms, got {t_ms}"
        )));
    }
    let steps = (t_ms / dt_ms).round();
    if ((steps * dt_ms) - t_ms).abs() > 1e-9 * t_ms.max(1.0) {
        return Err(SimError::Invalid(format!(
            "{name} = {t_ms} ms is not a multiple of the time step dt = {dt_ms} ms"
        )));
    }
    Ok(steps as u64)
}

/// Time of a spike emitted in step `s`, ms, as NEST stamps it: `(s + 1)`
/// steps on the integer tic grid (1 tic = 1 microsecond), converted as
/// NEST's `Time::get_ms()` does, `tics * (1.0 / 1000.0)` (not `tics / 1000`:
/// e.g. 59300 tics give 59.300000000000004, as in NEST's spike_recorder).
pub fn spike_time_ms(step: u64, dt_ms: f64) -> f64 {
    const MS_PER_TIC: f64 = 1.0 / 1000.0;
    let tics_per_step = (dt_ms * 1000.0).round();
    ((step + 1) as f64 * tics_per_step) * MS_PER_TIC
}

/// One rank's engine with its recorders.
struct RankRun {
    engine: Engine,
    writer: SpikeWriter,
    vm: Option<(ReportWriter, Vec<usize>, String)>,
    counts: Vec<u64>,
    events: u64,
}

/// Run a simulation. Without MPI the network must have one shard, unless
/// `emulate_ranks` is set: then all its ranks run in this process, one after
/// the other in every interval, exchanging spikes in memory exactly as MPI
/// ranks would (for testing and small networks).
pub fn run(opts: &RunOptions, progress: &mut dyn FnMut(Progress)) -> Result<RunSummary, SimError> {
    run_ranks(opts, false, progress)
}

/// [`run`] with the choice to emulate all ranks of a multi-rank network.
pub fn run_ranks(
    opts: &RunOptions,
    emulate_ranks: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunSummary, SimError> {
    let net = NetworkDir::open(&opts.network)?;
    let n = net.manifest.n_ranks;
    if n != 1 && !emulate_ranks {
        return Err(SimError::Invalid(format!(
            "{}: the network was built for {n} ranks; run it with `mpirun -n {n}` (or --emulate-ranks to run all ranks in this process)",
            opts.network.display(),
        )));
    }
    let mut cluster = Emulated {
        n_ranks: n,
        mode: opts.comm,
    };
    run_on(opts, &mut cluster, progress)?
        .ok_or_else(|| SimError::Internal("no summary on the root".into()))
}

/// Run on the ranks of `cluster` that live in this process. The root
/// returns the summary; other processes return `None`.
pub fn run_on(
    opts: &RunOptions,
    cluster: &mut dyn Cluster,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<RunSummary>, SimError> {
    let t_load = Instant::now();
    let net = NetworkDir::open(&opts.network)?;
    let m = &net.manifest;
    if cluster.n_ranks() != m.n_ranks {
        return Err(SimError::Invalid(format!(
            "{}: the network was built for {} ranks but this run has {} (build it again with --ranks {} or start {} processes)",
            opts.network.display(),
            m.n_ranks,
            cluster.n_ranks(),
            cluster.n_ranks(),
            m.n_ranks
        )));
    }
    let n_ranks = m.n_ranks as usize;
    let dt = m.dt_ms;
    let presim_steps = ms_to_steps("--t-presim", opts.t_presim_ms, dt)?;
    let sim_steps = ms_to_steps("--t-sim", opts.t_sim_ms, dt)?;
    // The root creates the staging directory and tells the others.
    let (staging, staging_err) = if cluster.is_root() {
        match Staging::new(&opts.output, opts.force) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let dir = cluster.share_path(staging.as_ref().map(|s| s.path().to_path_buf()));
    if let Some(e) = staging_err {
        return Err(e.into());
    }
    let dir = dir?;
    let mpath = net.dir.join(snn_formats::manifest::MANIFEST_FILE);
    let model = m.model(&mpath)?;
    let pop_names: Vec<String> = model.populations.iter().map(|p| p.name.clone()).collect();
    let recorded: Vec<bool> = (0..model.populations.len())
        .map(|p| model.recording.spike_populations.contains(&p))
        .collect();
    let mut ranks = Vec::new();
    for r in cluster.here() {
        let shard = net.open_shard(r, Check::Full)?;
        let engine = Engine::new(
            model.clone(),
            shard,
            m.min_delay_steps,
            m.max_delay_steps,
            opts.seed,
        )?;
        let spike_file = format!("spikes-rank-{r:05}.h5");
        let writer = SpikeWriter::create(&dir.join(&spike_file), &pop_names)?;
        // V_m recording of the configured neurons owned by this rank,
        // grouped by population in order of first appearance.
        let d = engine.data();
        let mut groups: Vec<(String, Vec<u64>)> = Vec::new();
        let mut locals: Vec<Vec<usize>> = Vec::new();
        for &(p, i) in &model.recording.v_m {
            let g = model.populations[p].first_id + i;
            if let Ok(l) = d
                .local_to_global
                .binary_search_by(|x| x.to_native().cmp(&g))
            {
                match groups.iter().position(|x| x.0 == pop_names[p]) {
                    Some(k) => {
                        groups[k].1.push(i);
                        locals[k].push(l);
                    }
                    None => {
                        groups.push((pop_names[p].clone(), vec![i]));
                        locals.push(vec![l]);
                    }
                }
            }
        }
        let vm = if groups.is_empty() {
            None
        } else {
            let f = format!("vm-rank-{r:05}.h5");
            // The first sample is taken after the first recorded step.
            let w =
                ReportWriter::create(&dir.join(&f), &groups, (presim_steps + 1) as f64 * dt, dt)?;
            Some((w, locals.concat(), f))
        };
        ranks.push(RankRun {
            engine,
            writer,
            vm,
            counts: vec![0; model.populations.len()],
            events: 0,
        });
    }
    let interval = ranks[0].engine.interval();
    let wall_load_s = t_load.elapsed().as_secs_f64();

    let total_steps = presim_steps + sim_steps;
    let mut wall_presim_s = 0.0;
    let t_run = Instant::now();
    let mut step = 0u64;
    while step < total_steps {
        let t0 = step;
        // Intervals never straddle the presim/sim boundary, so the phases
        // are timed separately.
        let end = if t0 < presim_steps {
            presim_steps
        } else {
            total_steps
        };
        let n = interval.min(end - t0);
        let mut all_spikes = Vec::with_capacity(ranks.len());
        for rr in ranks.iter_mut() {
            let spikes = match rr.vm.as_mut() {
                None => rr.engine.update(n),
                Some((w, locals, _)) => {
                    let mut all = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        all.extend(rr.engine.update(1));
                        if rr.engine.step() > presim_steps {
                            let values: Vec<f64> =
                                locals.iter().map(|&l| rr.engine.v_m(l)).collect();
                            w.push_step(&values)?;
                        }
                    }
                    all
                }
            };
            record(rr, &spikes, presim_steps, &recorded, &model, dt);
            all_spikes.push(spikes);
        }
        let engines: Vec<&Engine> = ranks.iter().map(|r| &r.engine).collect();
        let deliveries = cluster.exchange(&engines, &all_spikes, t0)?;
        for (rr, del) in ranks.iter_mut().zip(deliveries) {
            let delivered = rr.engine.deliver(&del);
            if t0 >= presim_steps {
                rr.events += delivered;
            }
        }
        step += n;
        if step == presim_steps && t0 < presim_steps {
            wall_presim_s = t_run.elapsed().as_secs_f64();
        }
        progress(Progress {
            t_ms: step as f64 * dt,
            t_total_ms: total_steps as f64 * dt,
        });
    }
    let wall_sim_s = t_run.elapsed().as_secs_f64() - wall_presim_s;
    let mut counts = vec![0u64; model.populations.len()];
    let mut events = vec![0u64];
    for rr in ranks {
        for (c, x) in counts.iter_mut().zip(&rr.counts) {
            *c += x;
        }
        events[0] += rr.events;
        rr.writer.close()?;
        if let Some((w, _, _)) = rr.vm {
            w.close()?;
        }
    }
    cluster.sum(&mut counts);
    cluster.sum(&mut events);
    let events = events[0];
    let spike_files: Vec<String> = (0..n_ranks)
        .map(|r| format!("spikes-rank-{r:05}.h5"))
        .collect();
    let vm_files: Vec<String> = (0..n_ranks)
        .map(|r| format!("vm-rank-{r:05}.h5"))
        .filter(|f| dir.join(f).exists())
        .collect();
    // Every rank's files are complete before the root publishes the run.
    cluster.barrier();
    let Some(staging) = staging else {
        return Ok(None);
    };
    let t_sim_s = sim_steps as f64 * dt * 1e-3;
    let populations = model
        .populations
        .iter()
        .enumerate()
        .map(|(p, pop)| PopulationSummary {
            name: pop.name.clone(),
            size: pop.size,
            first_id: pop.first_id,
            spikes: counts[p],
            recorded: recorded[p],
            rate_hz: if pop.size > 0 && t_sim_s > 0.0 {
                counts[p] as f64 / pop.size as f64 / t_sim_s
            } else {
                0.0
            },
        })
        .collect();
    let summary = RunSummary {
        format: "snn-run".into(),
        network: opts.network.clone(),
        model_hash: m.model_hash.clone(),
        seed: opts.seed,
        n_ranks: n_ranks as u32,
        ranks_finished: (0..n_ranks as u32).collect(),
        backend: "cpu".into(),
        comm: match cluster.mode() {
            CommMode::P2p => "p2p".into(),
            CommMode::Collective => "collective".into(),
        },
        threads: rayon::current_num_threads(),
        dt_ms: dt,
        interval_steps: interval,
        steps: step,
        t_start_ms: presim_steps as f64 * dt,
        t_stop_ms: total_steps as f64 * dt,
        populations,
        spike_files,
        vm_files,
        wall_load_s,
        wall_presim_s,
        wall_sim_s,
        real_time_factor: if t_sim_s > 0.0 {
            wall_sim_s / t_sim_s
        } else {
            0.0
        },
        synaptic_events: events,
    };
    write_json(&staging.path().join("summary.json"), &summary)?;
    staging.commit()?;
    Ok(Some(summary))
}

/// Record the spikes of an interval (those after the presimulation).
fn record(
    rr: &mut RankRun,
    spikes: &[crate::engine::StepSpikes],
    presim_steps: u64,
    recorded: &[bool],
    model: &snn_formats::Model,
    dt: f64,
) {
    let first_local = rr.engine.pop_first_local().to_vec();
    let d = rr.engine.data();
    for s in spikes {
        if s.step < presim_steps {
            continue;
        }
        let t_ms = spike_time_ms(s.step, dt);
        for &l in &s.local {
            let p = first_local.partition_point(|&f| f <= l as usize) - 1;
            if recorded[p] {
                let g = d.local_to_global[l as usize].to_native();
                rr.writer.push(p, g - model.populations[p].first_id, t_ms);
                rr.counts[p] += 1;
            }
        }
    }
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), SimError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| SimError::Internal(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| FormatError::io(path, "write", e))?;
    Ok(())
}
