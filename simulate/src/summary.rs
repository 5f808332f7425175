//! The summary of a finished run (`summary.json`, and what `snn-sim`
//! prints): the totals of every rank, reduced over the processes, and the
//! run's configuration and wall times.

use std::path::PathBuf;

use serde::Serialize;
use snn_formats::checkpoint::WallTimes;
use snn_formats::{Manifest, Model};

use crate::cluster::Cluster;
use crate::plan::Plan;
use crate::recorders::{record, RankRun};
use crate::SimError;

/// Per-population line of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct PopulationSummary {
    /// Name.
    pub name: String,
    /// Its area (the population's own name unless the config groups
    /// populations into areas).
    pub area: String,
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
    /// Backend (`cpu`, `cuda`).
    pub backend: String,
    /// The device of rank 0 with a GPU backend (its description).
    pub device: Option<String>,
    /// GPU backend: the most device memory the ranks' buffers held, summed
    /// over ranks, bytes (the driver's own memory not included; 0 on the
    /// CPU).
    pub device_memory_bytes: u64,
    /// GPU backend: `device_memory_bytes` per synapse of the network.
    pub device_bytes_per_synapse: Option<f64>,
    /// Communication mode.
    pub comm: String,
    /// Threads.
    pub threads: usize,
    /// CPU backend: the vector instructions of its updates (`avx512`,
    /// `avx2` or `scalar`; see `snn_kernels::models::simd`).
    pub cpu_simd: Option<String>,
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
    /// Spike data sent between ranks, bytes per rank and step (8 bytes per
    /// wire entry; measured over the last job piece).
    pub bytes_sent_per_rank_per_step: f64,
    /// Job pieces the run took (1 without interruption).
    pub pieces: u32,
    /// Wall time spent writing checkpoints (all pieces), s.
    pub wall_checkpoint_s: f64,
    /// Wall time spent reading and restoring checkpoints (all pieces; part
    /// of `wall_load_s`), s.
    pub wall_restore_s: f64,
    /// Checkpoints written by the last piece.
    pub checkpoints_written: u32,
    /// The checkpoint the run was branched from (`--resume-from`), if any.
    pub branched_from: Option<String>,
}

/// What the processes add up at the end of a piece.
pub(crate) struct Totals {
    /// Spikes recorded per population.
    counts: Vec<u64>,
    events: u64,
    device_memory_bytes: u64,
    bytes_sent: u64,
    backend: String,
    device: Option<String>,
}

impl Totals {
    /// Flush and close the recorders of this process's `ranks` and add up
    /// their counts over all processes (collective).
    pub(crate) fn reduce(
        ranks: Vec<RankRun>,
        cluster: &dyn Cluster,
        recorded: &[bool],
        first_ids: &[u64],
        dt: f64,
    ) -> Result<Totals, SimError> {
        let mut counts = vec![0u64; first_ids.len()];
        let mut events = vec![0u64];
        let backend = ranks[0].engine.backend();
        let device = ranks[0].engine.device();
        let mut device_memory = vec![0u64];
        for mut rr in ranks {
            device_memory[0] += rr.engine.device_memory_bytes();
            record(&mut rr, true, recorded, first_ids, dt)?;
            for (c, x) in counts.iter_mut().zip(&rr.counts) {
                *c += x;
            }
            events[0] += rr.engine.events()?;
            rr.writer.close()?;
            if let Some(vm) = rr.vm {
                vm.writer.close()?;
            }
        }
        let mut sent = vec![cluster.bytes_sent()];
        cluster.sum(&mut counts);
        cluster.sum(&mut events);
        cluster.sum(&mut device_memory);
        cluster.sum(&mut sent);
        Ok(Totals {
            counts,
            events: events[0],
            device_memory_bytes: device_memory[0],
            bytes_sent: sent[0],
            backend,
            device,
        })
    }
}

/// Where the summary's facts come from besides the totals.
pub(crate) struct Facts<'a> {
    pub(crate) network: PathBuf,
    pub(crate) m: &'a Manifest,
    pub(crate) model: &'a Model,
    pub(crate) plan: &'a Plan,
    pub(crate) recorded: &'a [bool],
    pub(crate) comm: &'a str,
    pub(crate) interval_steps: u64,
    /// Steps done at the end, and at the start of this piece.
    pub(crate) step: u64,
    pub(crate) start_step: u64,
    pub(crate) wall: &'a WallTimes,
    pub(crate) checkpoints_written: u32,
    /// The V_m files that exist.
    pub(crate) vm_files: Vec<String>,
}

impl RunSummary {
    /// The summary of a finished run.
    pub(crate) fn new(f: Facts, t: Totals) -> RunSummary {
        let n_ranks = f.m.n_ranks as usize;
        let dt = f.m.dt_ms;
        let (presim_steps, total_steps) = (f.plan.run.presim_steps, f.plan.run.total_steps);
        let piece_steps = f.step - f.start_step;
        let bytes_sent_per_rank_per_step = if piece_steps > 0 {
            t.bytes_sent as f64 / n_ranks as f64 / piece_steps as f64
        } else {
            0.0
        };
        let t_sim_s = (total_steps - presim_steps) as f64 * dt * 1e-3;
        let populations = f
            .model
            .populations
            .iter()
            .enumerate()
            .map(|(p, pop)| PopulationSummary {
                name: pop.name.clone(),
                area: f.model.areas[pop.area].clone(),
                size: pop.size,
                first_id: pop.first_id,
                spikes: t.counts[p],
                recorded: f.recorded[p],
                rate_hz: if pop.size > 0 && t_sim_s > 0.0 {
                    t.counts[p] as f64 / pop.size as f64 / t_sim_s
                } else {
                    0.0
                },
            })
            .collect();
        let cpu_simd = (t.backend == "cpu").then(|| snn_kernels::models::simd().name().to_string());
        RunSummary {
            format: "snn-run".into(),
            network: f.network,
            model_hash: f.m.model_hash.clone(),
            seed: f.plan.run.seed,
            n_ranks: n_ranks as u32,
            ranks_finished: (0..n_ranks as u32).collect(),
            backend: t.backend,
            device_bytes_per_synapse: (t.device.is_some() && f.m.total_synapses > 0)
                .then(|| t.device_memory_bytes as f64 / f.m.total_synapses as f64),
            device: t.device,
            device_memory_bytes: t.device_memory_bytes,
            comm: f.comm.into(),
            threads: rayon::current_num_threads(),
            cpu_simd,
            dt_ms: dt,
            interval_steps: f.interval_steps,
            steps: f.step,
            t_start_ms: presim_steps as f64 * dt,
            t_stop_ms: total_steps as f64 * dt,
            populations,
            spike_files: (0..n_ranks)
                .map(|r| format!("spikes-rank-{r:05}.h5"))
                .collect(),
            vm_files: f.vm_files,
            wall_load_s: f.wall.load_s,
            wall_presim_s: f.wall.presim_s,
            wall_sim_s: f.wall.sim_s,
            real_time_factor: if t_sim_s > 0.0 {
                f.wall.sim_s / t_sim_s
            } else {
                0.0
            },
            synaptic_events: t.events,
            bytes_sent_per_rank_per_step,
            pieces: f.plan.pieces,
            wall_checkpoint_s: f.wall.checkpoint_s,
            wall_restore_s: f.wall.restore_s,
            checkpoints_written: f.checkpoints_written,
            branched_from: f.plan.branched_from.clone(),
        }
    }
}
