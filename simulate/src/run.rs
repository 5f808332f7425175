//! A whole run: open the network, simulate, record, checkpoint, write the
//! summary.
//!
//! # Run directory
//!
//! `spikes-rank-NNNNN.h5` (SONATA spikes), `vm-rank-NNNNN.h5` (SONATA report,
//! when V_m recording is configured), `summary.json`; with checkpointing also
//! `run-state.json` and `checkpoints/` (layout in
//! [`snn_formats::checkpoint`]).
//!
//! * **Without checkpointing** (none of [`CheckpointOptions`]'s triggers):
//!   everything is written into a staging directory renamed into place when
//!   the run is complete, so an interrupted run leaves nothing under the
//!   real name.
//! * **With checkpointing** (`--checkpoint-every`, `--walltime`, a SLURM end
//!   time, `--resume`, `--resume-from`): the run directory must outlive the
//!   job. It is set up in a staging directory (so a failure while loading
//!   leaves nothing) and renamed into place before the first step, with
//!   `run-state.json` saying `running`. Spike and V_m files grow across all
//!   pieces of the run, one dataset as if it had not been interrupted; a
//!   resume truncates them to the counts of the checkpoint it starts from
//!   (so nothing recorded after it is duplicated and nothing before it is
//!   lost). `summary.json` is written only when the run is finished, after a
//!   final checkpoint (which a later `--resume --t-sim <longer>` extends
//!   from). An existing directory is never replaced without `--force`, and
//!   `--resume` only continues a directory whose `run-state.json` belongs to
//!   the same network and rank count. While a process works on a persistent
//!   run directory, rank 0 holds a lock on it (`.snn-sim.lock`), so a job
//!   chain started twice cannot continue the same run twice.
//!
//! A run stopped by its wall time writes a checkpoint, sets `run-state.json`
//! to `suspended` and returns [`RunOutcome::Suspended`]; `snn-sim` then exits
//! with [`EXIT_RESUMABLE`] (75).
//!
//! # Backends
//!
//! [`RunOptions::backend`] picks the engine of every rank: the CPU
//! [`Engine`] or the GPU engine ([`GpuEngine`], on the device the
//! [`DeviceFactory`] opens for the rank). Both are driven through
//! [`RankEngine`], record the same files and write the same checkpoint
//! sections, so a run may be resumed on the other backend; `summary.json`
//! names the backend and the device. A rank whose engine cannot start (its
//! device does not open, its shard is unreadable) stops the run with an
//! error on every rank, under MPI too (no rank waits for it).
//!
//! Checkpoints are taken only at the end of an interval (after the spikes of
//! the interval are delivered), at absolute times that are multiples of the
//! checkpoint interval, so that a run's results never depend on where it
//! was checkpointed or interrupted (see [`crate::engine`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use snn_formats::checkpoint::{
    checkpoint_dir_name, checkpoint_status, list_checkpoints, rank_file_name, read_rank_state,
    sync_file, test_pause, unix_now, write_atomic, write_rank_state, CheckpointManifest,
    CheckpointStatus, RankFileEntry, RankHeader, RankState, RunConfig, RunState, RunStatus,
    Section, WallTimes, CHECKPOINTS_DIR, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION,
    RUN_STATE_FILE, RUN_STATE_FORMAT,
};
use snn_formats::output::Staging;
use snn_formats::sonata::{ReportWriter, SpikeWriter};
use snn_formats::{Check, FormatError, Manifest, NetworkDir};

pub use crate::checkpoint::EXIT_RESUMABLE;
use crate::checkpoint::{bytes_to_u64s, hash_bytes, note, prune, share, u64s_to_bytes};
use crate::cluster::{Cluster, CommMode, Emulated};
use crate::engine::Engine;
use crate::gpu::{GpuEngine, GpuOptions};
use crate::rank::{CpuRank, RankEngine};
use crate::SimError;

/// Opens the device of a rank (`rank` picks the GPU on a multi-GPU node).
pub type DeviceFactory = std::sync::Arc<
    dyn Fn(u32) -> Result<Box<dyn snn_kernels::gpu::Device>, snn_kernels::gpu::GpuError>
        + Send
        + Sync,
>;

/// The simulation backend.
#[derive(Clone, Default)]
pub enum Backend {
    /// The CPU engine ([`Engine`]), as many worker threads as the rayon
    /// pool in use has.
    #[default]
    Cpu,
    /// The GPU engine ([`GpuEngine`]) on the device `factory` opens for
    /// each rank (`snn-sim --backend cuda`: a CUDA GPU; the tests: the host
    /// stand-in device).
    Gpu {
        /// Opens a rank's device.
        factory: DeviceFactory,
        /// Buffer sizes.
        options: GpuOptions,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Cpu => f.write_str("Cpu"),
            Backend::Gpu { options, .. } => f
                .debug_struct("Gpu")
                .field("options", options)
                .finish_non_exhaustive(),
        }
    }
}

impl Backend {
    /// The GPU backend on the devices `factory` opens, default options.
    pub fn gpu(factory: DeviceFactory) -> Backend {
        Backend::Gpu {
            factory,
            options: GpuOptions::default(),
        }
    }
}

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
    /// Collective mode: groups of this many consecutive ranks exchange
    /// collectively, point-to-point between groups (0: one group of all).
    pub comm_group_size: u32,
    /// The simulation backend.
    pub backend: Backend,
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

/// How a run starts.
#[derive(Clone, Debug, Default)]
pub enum Start {
    /// A new run in a new directory ([`RunOptions::output`]).
    #[default]
    Fresh,
    /// Continue the run in [`RunOptions::output`] from its newest complete
    /// checkpoint; its configuration comes from its `run-state.json`. When
    /// the directory does not hold a run yet, start one from the
    /// [`RunOptions`] (a job chain can then run the same command every
    /// time). The overrides are those given explicitly: `t_sim_ms` moves the
    /// end of the run (e.g. extends a finished one); `t_presim_ms` and
    /// `seed` must equal the run's.
    Resume {
        /// New recorded simulation time, ms (from the end of the
        /// presimulation).
        t_sim_ms: Option<f64>,
        /// Presimulation time, ms, if given.
        t_presim_ms: Option<f64>,
        /// Seed, if given.
        seed: Option<u64>,
    },
    /// A new run (in a new directory) from the state of checkpoint `from`:
    /// [`RunOptions::t_presim_ms`] (unrecorded) and then
    /// [`RunOptions::t_sim_ms`] (recorded) more, with `seed` (default: the
    /// checkpoint's) for the Poisson drive from then on.
    Branch {
        /// A checkpoint directory (`run/checkpoints/t-...ms`).
        from: PathBuf,
        /// Seed of the new run.
        seed: Option<u64>,
    },
}

/// Checkpointing of a run. The default: none (the classic one-go run).
#[derive(Clone, Debug, Default)]
pub struct CheckpointOptions {
    /// Write a checkpoint whenever the biological time reaches a multiple of
    /// this many ms (a multiple of dt).
    pub every_ms: Option<f64>,
    /// Checkpoint and stop ([`RunOutcome::Suspended`]) before this instant
    /// (`--walltime`, SLURM's end time).
    pub deadline: Option<Instant>,
    /// Seconds to keep free before the deadline besides the estimated time
    /// of a checkpoint (default: 1 % of the time to the deadline, at most
    /// 60 s).
    pub margin_s: Option<f64>,
    /// Keep only the newest `keep` complete checkpoints (older ones are
    /// removed after a newer one is complete).
    pub keep: Option<usize>,
    /// How the run starts.
    pub start: Start,
    /// zstd level of checkpoints (default 1 when 0).
    pub zstd_level: i32,
}

impl CheckpointOptions {
    /// Whether these options need a persistent run directory.
    pub fn enabled(&self) -> bool {
        self.every_ms.is_some() || self.deadline.is_some() || !matches!(self.start, Start::Fresh)
    }
}

/// A run that stopped at a checkpoint before its end.
#[derive(Clone, Debug)]
pub struct Suspended {
    /// Biological time reached, ms.
    pub t_ms: f64,
    /// End of the run, ms.
    pub t_stop_ms: f64,
    /// The checkpoint to resume from.
    pub checkpoint: PathBuf,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub enum RunOutcome {
    /// Finished; the summary on the root process (`None` elsewhere).
    Finished(Option<Box<RunSummary>>),
    /// Stopped at a checkpoint before the end (wall time): resume it.
    Suspended(Suspended),
    /// `--resume` of a run that is already finished (nothing done).
    AlreadyFinished(PathBuf),
}

/// The last step a run may reach with time step `dt_ms`: spike times are
/// stamped on NEST's grid of whole microseconds held in a 64-bit float
/// ([`spike_time_ms`]), exact up to 2^53 microseconds (about 285 years of
/// biological time).
pub fn max_steps(dt_ms: f64) -> u64 {
    let tics_per_step = (dt_ms * 1000.0).round().max(1.0) as u64;
    (1u64 << 53) / tics_per_step - 1
}

/// The end step `a + b` of a run, refused when it overflows or passes
/// [`max_steps`] (`what` names the times that add up).
pub fn end_step(a: u64, b: u64, dt_ms: f64, what: &str) -> Result<u64, SimError> {
    match a.checked_add(b) {
        Some(t) if t <= max_steps(dt_ms) => Ok(t),
        _ => Err(SimError::Invalid(format!(
            "{what} end beyond the longest run that keeps exact spike times ({:.3e} ms with dt = {dt_ms} ms)",
            max_steps(dt_ms) as f64 * dt_ms
        ))),
    }
}

/// Convert a time in ms to steps, requiring a non-negative multiple of dt
/// within [`max_steps`].
pub fn ms_to_steps(name: &str, t_ms: f64, dt_ms: f64) -> Result<u64, SimError> {
    if !(t_ms.is_finite() && t_ms >= 0.0) {
        return Err(SimError::Invalid(format!(
            "{name} must be a non-negative number of ms, got {t_ms:?}"
        )));
    }
    let steps = (t_ms / dt_ms).round();
    if steps > max_steps(dt_ms) as f64 {
        return Err(SimError::Invalid(format!(
            "{name} = {t_ms:?} ms is beyond the longest run that keeps exact spike times ({:.3e} ms with dt = {dt_ms} ms)",
            max_steps(dt_ms) as f64 * dt_ms
        )));
    }
    if ((steps * dt_ms) - t_ms).abs() > 1e-9 * t_ms.max(1.0) {
        return Err(SimError::Invalid(format!(
            "{name} = {t_ms:?} ms is not a multiple of the time step dt = {dt_ms} ms"
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

/// V_m recording of one rank.
struct VmRec {
    writer: ReportWriter,
    locals: Vec<usize>,
    file: String,
}

/// One rank's engine with its recorders.
struct RankRun {
    rank: u32,
    engine: Box<dyn RankEngine>,
    writer: SpikeWriter,
    spike_file: String,
    vm: Option<VmRec>,
    counts: Vec<u64>,
}

/// Test hook: when set to `N`, a run stops after writing its `N`-th periodic
/// checkpoint as if its wall time had run out (exit status
/// [`EXIT_RESUMABLE`]), so tests can cut runs into pieces at chosen times.
pub const SUSPEND_AFTER_ENV: &str = "SNN_TEST_SUSPEND_AFTER_CHECKPOINTS";

/// What this piece of a run does, worked out by the root and shared.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Plan {
    /// Where outputs are written (a staging directory for new runs).
    dir: PathBuf,
    /// The run directory persists across jobs (checkpointing).
    persistent: bool,
    /// `dir` is a staging directory, renamed into place by the root.
    staged: bool,
    run: RunConfig,
    /// Checkpoints to try, best first; empty: start at step 0.
    candidates: Vec<PathBuf>,
    /// Create new output files (else reopen and truncate the existing ones
    /// to the checkpoint's counts).
    new_outputs: bool,
    /// The checkpoint's recorder counts carry over (resume in place).
    keep_counts: bool,
    every_steps: Option<u64>,
    keep: Option<usize>,
    pieces: u32,
    branched_from: Option<String>,
    already_finished: bool,
    remove_summary: bool,
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
    match run_ranks_checkpointed(opts, &CheckpointOptions::default(), emulate_ranks, progress)? {
        RunOutcome::Finished(Some(s)) => Ok(*s),
        _ => Err(SimError::Internal("no summary on the root".into())),
    }
}

/// [`run_ranks`] with checkpointing.
pub fn run_ranks_checkpointed(
    opts: &RunOptions,
    ck: &CheckpointOptions,
    emulate_ranks: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunOutcome, SimError> {
    let net = NetworkDir::open(&opts.network)?;
    let n = net.manifest.n_ranks;
    if n != 1 && !emulate_ranks {
        return Err(SimError::Invalid(format!(
            "{}: the network was built for {n} ranks; run it with `mpirun -n {n}` (or --emulate-ranks to run all ranks in this process)",
            opts.network.display(),
        )));
    }
    let mut cluster = Emulated::new(n, opts.comm).with_groups(opts.comm_group_size);
    run_checkpointed(opts, ck, &mut cluster, progress)
}

/// Run on the ranks of `cluster` that live in this process. The root
/// returns the summary; other processes return `None`.
pub fn run_on(
    opts: &RunOptions,
    cluster: &mut dyn Cluster,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<RunSummary>, SimError> {
    match run_checkpointed(opts, &CheckpointOptions::default(), cluster, progress)? {
        RunOutcome::Finished(s) => Ok(s.map(|s| *s)),
        _ => Err(SimError::Internal(
            "a run without checkpointing stopped early".into(),
        )),
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> SimError + 'a {
    move |e| SimError::Format(FormatError::io(path, op, e))
}

/// Whether `path` exists and is not an empty directory.
fn occupied(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut it) => it.next().is_some(),
        Err(_) => path.exists(),
    }
}

fn every_steps(every_ms: Option<f64>, dt: f64) -> Result<Option<u64>, SimError> {
    match every_ms {
        None => Ok(None),
        Some(ms) => {
            let s = ms_to_steps("--checkpoint-every", ms, dt)?;
            if s == 0 {
                return Err(SimError::Invalid(
                    "--checkpoint-every must be positive".into(),
                ));
            }
            Ok(Some(s))
        }
    }
}

/// The checkpoint `mf` (at `path`) must belong to network `m` run on
/// `n_ranks` ranks.
fn check_compatible(
    path: &Path,
    what_model: &str,
    what_ranks: u32,
    m: &Manifest,
    network: &Path,
) -> Result<(), SimError> {
    if what_model != m.model_hash {
        return Err(SimError::Invalid(format!(
            "{}: belongs to a different network (model hash {what_model}) than {} (model hash {}); resume with the network the run was started with",
            path.display(),
            network.display(),
            m.model_hash
        )));
    }
    if what_ranks != m.n_ranks {
        return Err(SimError::Invalid(format!(
            "{}: written by {what_ranks} ranks, but {} is built for {} ranks; a checkpoint resumes only on the rank count it was written with (use the network built with --ranks {what_ranks})",
            path.display(),
            network.display(),
            m.n_ranks
        )));
    }
    Ok(())
}

/// A checkpoint found in a run directory (at `path`, written with `ck`)
/// must belong to that run (`run`): same seed, time step and
/// presimulation. Its end may differ (a run can be extended). A checkpoint
/// copied in from another run would continue this one with another run's
/// state.
fn same_run(path: &Path, ck: &RunConfig, run: &RunConfig) -> Result<(), SimError> {
    let differs = |what: &str, theirs: String, ours: String| {
        Err(SimError::Invalid(format!(
            "{}: belongs to another run ({what} {theirs}, this run's is {ours}); remove it or resume the run it came from",
            path.display()
        )))
    };
    if ck.seed != run.seed {
        return differs("seed", ck.seed.to_string(), run.seed.to_string());
    }
    if ck.dt_ms != run.dt_ms {
        return differs(
            "dt",
            format!("{} ms", ck.dt_ms),
            format!("{} ms", run.dt_ms),
        );
    }
    if ck.presim_steps != run.presim_steps {
        return differs(
            "presimulation",
            format!("{} steps", ck.presim_steps),
            format!("{} steps", run.presim_steps),
        );
    }
    Ok(())
}

/// Root: work out what this piece of the run does.
fn make_plan(
    opts: &RunOptions,
    ck: &CheckpointOptions,
    m: &Manifest,
    comm: &str,
) -> Result<(Plan, Option<Staging>), SimError> {
    let dt = m.dt_ms;
    let persistent = ck.enabled();
    let fresh = |t_sim_ms: f64, t_presim_ms: f64, seed: u64, force: bool| {
        let presim_steps = ms_to_steps("--t-presim", t_presim_ms, dt)?;
        let sim_steps = ms_to_steps("--t-sim", t_sim_ms, dt)?;
        let every = every_steps(ck.every_ms, dt)?;
        let mut inputs = vec![opts.network.as_path()];
        if let Start::Branch { from, .. } = &ck.start {
            inputs.push(from.as_path());
        }
        let staging = Staging::new_guarded(&opts.output, force, &inputs)?;
        Ok::<_, SimError>((
            Plan {
                dir: staging.path().to_path_buf(),
                persistent,
                staged: true,
                run: RunConfig {
                    seed,
                    dt_ms: dt,
                    presim_steps,
                    total_steps: end_step(presim_steps, sim_steps, dt, "--t-presim + --t-sim")?,
                    comm: comm.into(),
                },
                candidates: Vec::new(),
                new_outputs: true,
                keep_counts: false,
                every_steps: every,
                keep: ck.keep,
                pieces: 1,
                branched_from: None,
                already_finished: false,
                remove_summary: false,
            },
            Some(staging),
        ))
    };
    match &ck.start {
        Start::Fresh => fresh(opts.t_sim_ms, opts.t_presim_ms, opts.seed, opts.force),
        Start::Resume {
            t_sim_ms,
            t_presim_ms,
            seed,
        } => {
            let dir = &opts.output;
            if !occupied(dir) {
                let Some(t_sim) = t_sim_ms else {
                    return Err(SimError::Invalid(format!(
                        "--resume: {} holds no run yet; give --t-sim to start one",
                        dir.display()
                    )));
                };
                note(&format!(
                    "{} holds no run yet: starting a new one",
                    dir.display()
                ));
                return fresh(
                    *t_sim,
                    t_presim_ms.unwrap_or(0.0),
                    seed.unwrap_or(opts.seed),
                    false,
                );
            }
            let state_path = dir.join(RUN_STATE_FILE);
            if !state_path.exists() {
                return Err(SimError::Invalid(format!(
                    "--resume: {} is not a resumable run directory (no {RUN_STATE_FILE}: it was written without checkpointing); use a new -o directory, or --force to replace it",
                    dir.display()
                )));
            }
            let state = RunState::read(dir)?;
            check_compatible(
                &state_path,
                &state.model_hash,
                state.n_ranks,
                m,
                &opts.network,
            )?;
            if state.run.dt_ms != dt {
                return Err(SimError::Invalid(format!(
                    "{}: the run has dt = {} ms but {} has dt = {dt} ms",
                    state_path.display(),
                    state.run.dt_ms,
                    opts.network.display()
                )));
            }
            if state.run.total_steps > max_steps(dt) {
                return Err(SimError::Invalid(format!(
                    "{}: the run's end (step {}) is beyond the longest run that keeps exact spike times",
                    state_path.display(),
                    state.run.total_steps
                )));
            }
            let mut run = state.run.clone();
            run.comm = comm.into();
            if let Some(s) = seed {
                if *s != run.seed {
                    return Err(SimError::Invalid(format!(
                        "--seed {s} differs from the seed {} of the run in {} (a run keeps its seed; branch with --resume-from to change it)",
                        run.seed,
                        dir.display()
                    )));
                }
            }
            if let Some(t) = t_presim_ms {
                if ms_to_steps("--t-presim", *t, dt)? != run.presim_steps {
                    return Err(SimError::Invalid(format!(
                        "--t-presim {t} differs from the presimulation of the run in {} ({} ms)",
                        dir.display(),
                        run.presim_steps as f64 * dt
                    )));
                }
            }
            if let Some(t) = t_sim_ms {
                run.total_steps = end_step(
                    run.presim_steps,
                    ms_to_steps("--t-sim", *t, dt)?,
                    dt,
                    "--t-sim",
                )?;
            }
            let finished = dir.join("summary.json").exists();
            let mut plan = Plan {
                dir: dir.clone(),
                persistent: true,
                staged: false,
                run,
                candidates: Vec::new(),
                new_outputs: false,
                keep_counts: true,
                every_steps: every_steps(ck.every_ms.or(state.checkpoint_every_ms), dt)?,
                keep: ck.keep.or(state.keep),
                pieces: state.pieces + 1,
                branched_from: state.branched_from.clone(),
                already_finished: false,
                remove_summary: false,
            };
            if finished {
                if plan.run.total_steps == state.run.total_steps {
                    plan.already_finished = true;
                    return Ok((plan, None));
                }
                if plan.run.total_steps < state.run.total_steps {
                    return Err(SimError::Invalid(format!(
                        "--resume: the run in {} is finished at {} ms; it cannot be shortened",
                        dir.display(),
                        state.run.total_steps as f64 * dt
                    )));
                }
                plan.remove_summary = true;
            }
            let mut corrupt = Vec::new();
            for c in list_checkpoints(dir)?.iter().rev() {
                match checkpoint_status(&c.path) {
                    CheckpointStatus::Complete(mf) => {
                        check_compatible(&c.path, &mf.model_hash, mf.n_ranks, m, &opts.network)?;
                        same_run(&c.path, &mf.run, &plan.run)?;
                        if mf.step > plan.run.total_steps {
                            return Err(SimError::Invalid(format!(
                                "--t-sim: the run in {} has a checkpoint at {} ms, after the requested end at {} ms",
                                dir.display(),
                                mf.t_ms,
                                plan.run.total_steps as f64 * dt
                            )));
                        }
                        plan.candidates.push(c.path.clone());
                    }
                    CheckpointStatus::Incomplete => note(&format!(
                        "{}: incomplete checkpoint (its writer was interrupted): ignored",
                        c.path.display()
                    )),
                    CheckpointStatus::Corrupt(e) => {
                        note(&format!("corrupt checkpoint skipped: {e}"));
                        corrupt.push(c.path.display().to_string());
                    }
                }
            }
            if plan.candidates.is_empty() {
                if !corrupt.is_empty() {
                    return Err(SimError::Invalid(format!(
                        "--resume: no valid checkpoint in {} ({} corrupt: {}); remove them to run it again from t = 0",
                        dir.display(),
                        corrupt.len(),
                        corrupt.join(", ")
                    )));
                }
                note(&format!(
                    "{}: no complete checkpoint yet: the run starts again from t = 0",
                    dir.display()
                ));
                plan.new_outputs = true;
                plan.keep_counts = false;
            }
            Ok((plan, None))
        }
        Start::Branch { from, seed } => {
            let mf = match checkpoint_status(from) {
                CheckpointStatus::Complete(mf) => mf,
                CheckpointStatus::Incomplete if !from.is_dir() => {
                    return Err(SimError::Invalid(format!(
                        "--resume-from {}: no such checkpoint directory",
                        from.display()
                    )))
                }
                CheckpointStatus::Incomplete
                    if from.join(RUN_STATE_FILE).exists() || from.join("summary.json").exists() =>
                {
                    let newest = list_checkpoints(from)
                        .ok()
                        .and_then(|l| l.last().map(|c| c.path.display().to_string()));
                    return Err(SimError::Invalid(match newest {
                        Some(c) => format!(
                            "--resume-from {}: a run directory, not a checkpoint; give one of its checkpoints (the newest is {c})",
                            from.display()
                        ),
                        None => format!(
                            "--resume-from {}: a run directory without checkpoints; --resume-from takes a checkpoint directory (RUN/checkpoints/t-...ms)",
                            from.display()
                        ),
                    }));
                }
                CheckpointStatus::Incomplete => {
                    return Err(SimError::Invalid(format!(
                    "--resume-from {}: incomplete checkpoint (no {}: its writer was interrupted)",
                    from.display(),
                    snn_formats::checkpoint::CHECKPOINT_MANIFEST
                )))
                }
                CheckpointStatus::Corrupt(e) => return Err(e.into()),
            };
            check_compatible(from, &mf.model_hash, mf.n_ranks, m, &opts.network)?;
            let (mut plan, staging) = fresh(
                opts.t_sim_ms,
                opts.t_presim_ms,
                seed.unwrap_or(mf.run.seed),
                opts.force,
            )?;
            plan.run.presim_steps = end_step(
                plan.run.presim_steps,
                mf.step,
                dt,
                "the checkpoint's time + --t-presim",
            )?;
            plan.run.total_steps = end_step(
                plan.run.total_steps,
                mf.step,
                dt,
                "the checkpoint's time + --t-presim + --t-sim",
            )?;
            plan.candidates = vec![from.clone()];
            plan.branched_from = Some(from.display().to_string());
            Ok((plan, staging))
        }
    }
}

/// Name of the lock file of a persistent run directory.
const LOCK_FILE: &str = snn_formats::output::RUN_LOCK_FILE;

/// Hold an exclusive lock on run directory `dir` (shown as `shown`) for the
/// life of the returned file, so that two processes never continue the same
/// run at once (e.g. a job chain started twice). The operating system
/// releases it when the process ends, however it ends.
fn lock_run_dir(dir: &Path, shown: &Path) -> Result<std::fs::File, SimError> {
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path, "create lock file"))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(SimError::Invalid(format!(
            "{}: another snn-sim is running in this run directory",
            shown.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path, "lock")(e)),
    }
}

/// Read and verify this process's rank files of checkpoint `cand`.
fn load_candidate(
    cand: &Path,
    ranks: &[u32],
    m: &Manifest,
    network: &Path,
    run: Option<&RunConfig>,
) -> Result<(CheckpointManifest, Vec<RankState>), SimError> {
    let mf = CheckpointManifest::read(cand)?;
    check_compatible(cand, &mf.model_hash, mf.n_ranks, m, network)?;
    if let Some(run) = run {
        same_run(cand, &mf.run, run)?;
    }
    let mut states = Vec::with_capacity(ranks.len());
    for &r in ranks {
        let path = cand.join(rank_file_name(r));
        let st = read_rank_state(&path, Some(&mf.ranks[r as usize]))?;
        let h = &st.header;
        if h.rank != r
            || h.n_ranks != mf.n_ranks
            || h.step != mf.step
            || h.model_hash != hash_bytes(&mf.model_hash)
        {
            return Err(SimError::Format(FormatError::corrupt(
                &path,
                "header does not match the checkpoint manifest",
            )));
        }
        states.push(st);
    }
    Ok((mf, states))
}

/// Called by every process once it has tried to start the engines of its
/// ranks (`start_err`: the first rank that failed, e.g. its device did not
/// open, its shard is unreadable, its device ran out of memory). A failure
/// on any rank becomes an error on every process, so that none goes on to
/// wait in an exchange for a rank that is gone. With all ranks in this
/// process, the rank's own error is returned. With other processes (MPI),
/// every process returns [`SimError::Invalid`] (all of them know of the
/// failure, as of a bad option, so `snn-sim` ends each rank cleanly rather
/// than aborting the job): the failing rank with its own message, the
/// others naming the failing ranks.
fn agree_started(
    cluster: &dyn Cluster,
    n_ranks: usize,
    start_err: Option<(u32, SimError)>,
) -> Result<(), SimError> {
    if cluster.here().len() >= n_ranks {
        return start_err.map_or(Ok(()), |(_, e)| Err(e));
    }
    let mut failed = vec![0u64; n_ranks];
    if let Some(f) = start_err
        .as_ref()
        .and_then(|(r, _)| failed.get_mut(*r as usize))
    {
        *f = 1;
    }
    cluster.sum(&mut failed);
    if let Some((_, e)) = start_err {
        return Err(SimError::Invalid(e.to_string()));
    }
    let bad: Vec<String> = (0..n_ranks)
        .filter(|&r| failed[r] != 0)
        .map(|r| r.to_string())
        .collect();
    match bad.len() {
        0 => Ok(()),
        1 => Err(SimError::Invalid(format!(
            "rank {} could not start (see its error); the run stops on every rank",
            bad[0]
        ))),
        _ => Err(SimError::Invalid(format!(
            "ranks {} could not start (see their errors); the run stops on every rank",
            bad.join(", ")
        ))),
    }
}

/// What the root holds of a persistent run directory while a piece runs.
#[derive(Default)]
struct Owned {
    /// The run directory whose `run-state.json` this process wrote.
    dir: Option<PathBuf>,
    /// Its lock (released when this is dropped).
    lock: Option<std::fs::File>,
}

/// Run with checkpointing on the ranks of `cluster` that live in this
/// process. See the [module documentation](self). When a piece of a
/// persistent run fails (a write error, a full disk, a dead peer), rank 0
/// records the error in `run-state.json` (status `failed`) while it still
/// holds the run's lock; the run resumes from its newest checkpoint.
pub fn run_checkpointed(
    opts: &RunOptions,
    ck: &CheckpointOptions,
    cluster: &mut dyn Cluster,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunOutcome, SimError> {
    let mut owned = Owned::default();
    let result = run_piece(opts, ck, cluster, progress, &mut owned);
    if let (Err(e), Some(dir)) = (&result, &owned.dir) {
        if let Ok(mut rs) = RunState::read(dir) {
            rs.status = RunStatus::Failed;
            rs.error = Some(e.to_string());
            rs.updated_unix_s = unix_now();
            if let Err(w) = rs.write_even_if_full(dir) {
                note(&format!("could not record the failure: {w}"));
            }
        }
    }
    drop(owned.lock);
    result
}

fn run_piece(
    opts: &RunOptions,
    ck: &CheckpointOptions,
    cluster: &mut dyn Cluster,
    progress: &mut dyn FnMut(Progress),
    owned: &mut Owned,
) -> Result<RunOutcome, SimError> {
    let t_start = Instant::now();
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
    let comm = match cluster.mode() {
        CommMode::P2p => "p2p",
        CommMode::Collective => "collective",
    };
    // The root works out the plan (and creates the staging directory of a
    // new run) and tells the others.
    let (root_plan, mut staging) = if cluster.is_root() {
        match make_plan(opts, ck, m, comm).and_then(|(p, s)| {
            if p.persistent && !p.already_finished {
                owned.lock = Some(lock_run_dir(&p.dir, &opts.output)?);
            }
            Ok((p, s))
        }) {
            Ok((p, s)) => (Some(Ok(p)), s),
            Err(e) => (Some(Err(e)), None),
        }
    } else {
        (None, None)
    };
    let plan: Plan = share(cluster, root_plan)?;
    if plan.already_finished {
        if cluster.is_root() {
            note(&format!(
                "the run in {} is already finished ({} ms); give a longer --t-sim to extend it",
                plan.dir.display(),
                plan.run.total_steps as f64 * dt
            ));
        }
        return Ok(RunOutcome::AlreadyFinished(plan.dir));
    }
    let mut dir = plan.dir.clone();
    let presim_steps = plan.run.presim_steps;
    let total_steps = plan.run.total_steps;
    let mpath = net.dir.join(snn_formats::manifest::MANIFEST_FILE);
    let model = m.model(&mpath)?;
    m.check_against_model(&model, &mpath)?;
    let pop_names: Vec<String> = model.populations.iter().map(|p| p.name.clone()).collect();
    let recorded: Vec<bool> = (0..model.populations.len())
        .map(|p| model.recording.spike_populations.contains(&p))
        .collect();
    let here = cluster.here();
    let mut engines: Vec<Box<dyn RankEngine>> = Vec::with_capacity(here.len());
    let mut start_err = None;
    for &r in &here {
        let engine = (|| -> Result<Box<dyn RankEngine>, SimError> {
            let shard = net.open_shard(r, Check::Full)?;
            Ok(match &opts.backend {
                Backend::Cpu => Box::new(CpuRank::new(Engine::new(
                    model.clone(),
                    shard,
                    m.min_delay_steps,
                    m.max_delay_steps,
                    plan.run.seed,
                )?)),
                Backend::Gpu { factory, options } => Box::new(GpuEngine::new(
                    factory(r)?,
                    model.clone(),
                    shard,
                    m.min_delay_steps,
                    m.max_delay_steps,
                    plan.run.seed,
                    options,
                )?),
            })
        })();
        match engine {
            Ok(e) => engines.push(e),
            Err(e) => {
                start_err = Some((r, e));
                break;
            }
        }
    }
    agree_started(cluster, n_ranks, start_err)?;

    // Choose the checkpoint: every process verifies its rank files; if any
    // fails, all fall back to the next candidate.
    let t_restore = Instant::now();
    let mut loaded: Option<(PathBuf, CheckpointManifest, Vec<RankState>)> = None;
    let mut local_err = None;
    for (i, cand) in plan.candidates.iter().enumerate() {
        let result = load_candidate(
            cand,
            &here,
            m,
            &opts.network,
            plan.keep_counts.then_some(&plan.run),
        );
        let mut failed = [result.is_err() as u64];
        cluster.sum(&mut failed);
        match result {
            Ok((mf, states)) if failed[0] == 0 => {
                loaded = Some((cand.clone(), mf, states));
                break;
            }
            Ok(_) => {}
            Err(e) => {
                // With a single candidate the error itself is reported.
                if plan.candidates.len() > 1 {
                    note(&format!("checkpoint unusable: {e}"));
                }
                local_err = Some(e);
            }
        }
        if cluster.is_root() && i + 1 < plan.candidates.len() {
            note(&format!(
                "{} is unusable (see above): using the previous checkpoint, {}",
                cand.display(),
                plan.candidates[i + 1].display()
            ));
        }
    }
    if loaded.is_none() && !plan.candidates.is_empty() {
        if plan.candidates.len() == 1 {
            if let Some(e) = local_err {
                return Err(e);
            }
        }
        return Err(SimError::Invalid(format!(
            "no valid checkpoint to resume from: {} (see the notes above)",
            plan.candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let start_step = loaded.as_ref().map(|l| l.1.step).unwrap_or(0);
    if start_step > total_steps {
        return Err(SimError::Invalid(format!(
            "the checkpoint is at {} ms, after the end of the run at {} ms",
            start_step as f64 * dt,
            total_steps as f64 * dt
        )));
    }
    if cluster.is_root() && plan.keep_counts {
        if let Some((path, mf, _)) = &loaded {
            note(&format!(
                "resuming from {} (t = {} ms)",
                path.display(),
                (mf.t_ms * 1e6).round() / 1e6
            ));
        }
    }
    let mut wall = match (&loaded, plan.keep_counts) {
        (Some((_, mf, _)), true) => mf.wall.clone(),
        _ => WallTimes::default(),
    };

    // The root tidies the run directory and records the piece.
    let mut run_state = None;
    if cluster.is_root() && plan.persistent {
        if plan.keep_counts {
            // Resume in place: checkpoints newer than the one chosen are
            // incomplete or unusable. Incomplete ones go; unusable ones are
            // kept aside for inspection.
            let chosen_t = start_step as f64 * dt;
            for c in list_checkpoints(&dir)? {
                if c.t_ms > chosen_t + 1e-9 {
                    if matches!(checkpoint_status(&c.path), CheckpointStatus::Incomplete) {
                        std::fs::remove_dir_all(&c.path)
                            .map_err(io_err(&c.path, "remove incomplete checkpoint"))?;
                    } else {
                        let mut aside = c.path.clone().into_os_string();
                        aside.push(format!(".invalid-{}", unix_now() as u64));
                        let aside = PathBuf::from(aside);
                        note(&format!(
                            "unusable checkpoint moved aside to {}",
                            aside.display()
                        ));
                        std::fs::rename(&c.path, &aside)
                            .map_err(io_err(&c.path, "move unusable checkpoint aside"))?;
                    }
                }
            }
            // A writer killed between its manifest and its pruning leaves
            // one checkpoint too many; --keep holds from the start, even
            // for a resume with no step left to run.
            if let Some(k) = plan.keep {
                prune(&dir, k, chosen_t);
            }
        }
        if plan.remove_summary {
            let p = dir.join("summary.json");
            std::fs::remove_file(&p).map_err(io_err(&p, "remove"))?;
        }
        let rs = RunState {
            format: RUN_STATE_FORMAT.into(),
            format_version: CHECKPOINT_FORMAT_VERSION,
            status: RunStatus::Running,
            network: opts.network.display().to_string(),
            model_hash: m.model_hash.clone(),
            n_ranks: m.n_ranks,
            run: plan.run.clone(),
            checkpoint_every_ms: plan.every_steps.map(|s| s as f64 * dt),
            keep: plan.keep,
            branched_from: plan.branched_from.clone(),
            pieces: plan.pieces,
            last_checkpoint: loaded
                .as_ref()
                .filter(|_| plan.keep_counts)
                .and_then(|l| l.0.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            step: start_step,
            updated_unix_s: unix_now(),
            error: None,
            checksum: String::new(),
        };
        rs.write(&dir)?;
        owned.dir = Some(dir.clone());
        run_state = Some(rs);
    }
    if plan.persistent && !plan.staged {
        // Nobody touches the outputs before the directory is tidy.
        cluster.barrier();
    }

    // Outputs and state.
    let mut ranks = Vec::with_capacity(here.len());
    let states = loaded.as_ref().map(|l| &l.2);
    for (k, (engine, &r)) in engines.into_iter().zip(&here).enumerate() {
        let state = states.map(|s| &s[k]);
        let recorder = |name: &str| -> Result<Vec<u64>, SimError> {
            state
                .and_then(|s| s.section(name))
                .and_then(bytes_to_u64s)
                .ok_or_else(|| {
                    SimError::Format(FormatError::corrupt(
                        loaded.as_ref().map(|l| l.0.as_path()).unwrap_or(&dir),
                        format!("rank {r}: section {name} missing or malformed"),
                    ))
                })
        };
        let spike_file = format!("spikes-rank-{r:05}.h5");
        let spath = dir.join(&spike_file);
        let (mut writer, counts) = if plan.new_outputs || !plan.keep_counts {
            if plan.persistent && spath.exists() {
                std::fs::remove_file(&spath).map_err(io_err(&spath, "remove"))?;
            }
            (
                SpikeWriter::create(&spath, &pop_names)?,
                vec![0; model.populations.len()],
            )
        } else {
            let counts = recorder("recorder/spike_counts")?;
            (
                SpikeWriter::reopen_truncated(&spath, &pop_names, &counts)?,
                counts,
            )
        };
        // Errors name the files where the user will look for them, not
        // the staging directory they are written in.
        if plan.staged {
            writer.show_as(opts.output.join(&spike_file));
        }
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
            let file = format!("vm-rank-{r:05}.h5");
            let vpath = dir.join(&file);
            // The first sample is taken after the first recorded step.
            let t0 = (presim_steps + 1) as f64 * dt;
            let mut writer = if plan.new_outputs || !plan.keep_counts {
                if plan.persistent && vpath.exists() {
                    std::fs::remove_file(&vpath).map_err(io_err(&vpath, "remove"))?;
                }
                ReportWriter::create(&vpath, &groups, t0, dt)?
            } else {
                let steps = recorder("recorder/vm_steps")?;
                ReportWriter::reopen_truncated(&vpath, &groups, t0, dt, steps[0] as usize)?
            };
            if plan.staged {
                writer.show_as(opts.output.join(&file));
            }
            Some(VmRec {
                writer,
                locals: locals.concat(),
                file,
            })
        };
        let events = if plan.keep_counts && state.is_some() {
            recorder("stats/events")?[0]
        } else {
            0
        };
        let mut engine = engine;
        if let Some(st) = state {
            engine.restore_state(&|name| st.section(name))?;
        }
        engine.set_events(events)?;
        engine.set_recording(
            presim_steps,
            vm.as_ref().map(|v| &v.locals[..]).unwrap_or(&[]),
        )?;
        ranks.push(RankRun {
            rank: r,
            engine,
            writer,
            spike_file,
            vm,
            counts,
        });
    }
    if loaded.is_some() {
        wall.restore_s += t_restore.elapsed().as_secs_f64();
    }
    drop(loaded);
    // A new persistent run goes into place now, before the first step.
    if plan.persistent && plan.staged {
        cluster.barrier();
        let (dest, err) = match staging.take() {
            Some(st) => match st.commit() {
                Ok(d) => (Some(d), None),
                Err(e) => (None, Some(e)),
            },
            None => (None, None),
        };
        let shared = cluster.share_path(dest);
        if let Some(e) = err {
            return Err(e.into());
        }
        dir = shared?;
        if owned.dir.is_some() {
            owned.dir = Some(dir.clone());
        }
    }
    let interval = ranks[0].engine.interval();
    wall.load_s += t_start.elapsed().as_secs_f64();

    let ctx = Ctx {
        written: std::cell::Cell::new(0),
        dir: dir.clone(),
        network: opts.network.display().to_string(),
        m,
        plan: &plan,
        level: if ck.zstd_level == 0 { 1 } else { ck.zstd_level },
        recorded: &recorded,
        first_ids: model.populations.iter().map(|p| p.first_id).collect(),
    };
    // Wall-time limit: the processes agree every `sync_every` intervals
    // (adapted to about 1/50 of the remaining time, at most 2 s).
    let margin = ck.deadline.map(|d| {
        ck.margin_s.unwrap_or_else(|| {
            (0.01 * d.saturating_duration_since(t_start).as_secs_f64()).min(60.0)
        })
    });
    let mut ckpt_estimate_s = ranks
        .iter()
        .map(|r| r.engine.state_bytes() as f64 / 200e6)
        .sum::<f64>()
        + 0.05;
    let mut sync_every = 1u64;
    let mut since_sync = 0u64;
    let mut sync_clock = Instant::now();
    let mut suspend = false;
    let mut intervals_here = 0u64;
    // Test hook: behave as if the wall time ran out after this many
    // periodic checkpoints of this process.
    let mut suspend_after = std::env::var(SUSPEND_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok());

    let mut last_ckpt: Option<(u64, PathBuf)> = if plan.keep_counts {
        start_step_dir(&plan, start_step, &dir, dt)
    } else {
        None
    };
    let first_ids: Vec<u64> = model.populations.iter().map(|p| p.first_id).collect();
    let mut step = start_step;
    while step < total_steps {
        if let (Some(deadline), Some(margin)) = (ck.deadline, margin) {
            since_sync += 1;
            if intervals_here > 0 && since_sync >= sync_every {
                let now = Instant::now();
                let per_interval = sync_clock.elapsed().as_secs_f64() / since_sync as f64;
                let remaining = deadline.saturating_duration_since(now).as_secs_f64();
                let need = margin + 2.0 * ckpt_estimate_s + 2.0 * per_interval * sync_every as f64;
                let proposal = if cluster.is_root() {
                    let target = (remaining / 50.0).clamp(0.01, 2.0);
                    ((target / per_interval.max(1e-9)) as u64).max(1)
                } else {
                    0
                };
                let mut v = [(remaining <= need) as u64, proposal];
                cluster.sum(&mut v);
                since_sync = 0;
                sync_clock = now;
                sync_every = v[1].max(1);
                if v[0] > 0 {
                    suspend = true;
                    break;
                }
            }
        }
        let t0 = step;
        let ti = Instant::now();
        // Intervals never straddle the presim/sim boundary (the phases are
        // timed separately) nor a checkpoint time.
        let mut end = if t0 < presim_steps {
            presim_steps
        } else {
            total_steps
        };
        if let Some(e) = plan.every_steps {
            end = end.min((t0 / e + 1) * e);
        }
        let n = interval.min(end - t0);
        for rr in ranks.iter_mut() {
            rr.engine.update(n)?;
        }
        {
            let mut engines: Vec<&mut dyn RankEngine> =
                ranks.iter_mut().map(|r| &mut *r.engine as _).collect();
            cluster.exchange(&mut engines)?;
        }
        for rr in ranks.iter_mut() {
            rr.engine.deliver(t0 >= presim_steps)?;
            record(rr, false, &recorded, &first_ids, dt)?;
        }
        step += n;
        intervals_here += 1;
        let spent = ti.elapsed().as_secs_f64();
        if t0 < presim_steps {
            wall.presim_s += spent;
        } else {
            wall.sim_s += spent;
        }
        if plan.every_steps.is_some_and(|e| step.is_multiple_of(e)) && step < total_steps {
            let tc = Instant::now();
            let path = write_checkpoint(
                &ctx,
                &mut ranks,
                cluster,
                step,
                &mut wall,
                run_state.as_mut(),
            )?;
            ckpt_estimate_s = ckpt_estimate_s.max(tc.elapsed().as_secs_f64());
            last_ckpt = Some((step, path));
            if let Some(k) = suspend_after.as_mut() {
                *k = k.saturating_sub(1);
                if *k == 0 {
                    suspend = true;
                    break;
                }
            }
        }
        progress(Progress {
            t_ms: step as f64 * dt,
            t_total_ms: total_steps as f64 * dt,
        });
    }
    if suspend {
        let path = match &last_ckpt {
            Some((s, p)) if *s == step => p.clone(),
            _ => write_checkpoint(
                &ctx,
                &mut ranks,
                cluster,
                step,
                &mut wall,
                run_state.as_mut(),
            )?,
        };
        for mut rr in ranks {
            record(&mut rr, true, &recorded, &first_ids, dt)?;
            rr.writer.close()?;
            if let Some(vm) = rr.vm {
                vm.writer.close()?;
            }
        }
        if let Some(rs) = run_state.as_mut() {
            rs.status = RunStatus::Suspended;
            rs.updated_unix_s = unix_now();
            rs.write(&dir)?;
        }
        return Ok(RunOutcome::Suspended(Suspended {
            t_ms: step as f64 * dt,
            t_stop_ms: total_steps as f64 * dt,
            checkpoint: path,
        }));
    }
    // A persistent run ends with a checkpoint of its final state (to extend
    // it or branch from it later).
    if plan.persistent && last_ckpt.as_ref().map(|l| l.0) != Some(step) {
        write_checkpoint(
            &ctx,
            &mut ranks,
            cluster,
            step,
            &mut wall,
            run_state.as_mut(),
        )?;
    }
    let mut counts = vec![0u64; model.populations.len()];
    let mut events = vec![0u64];
    let backend = ranks[0].engine.backend();
    let device = ranks[0].engine.device();
    let mut device_memory = vec![0u64];
    for mut rr in ranks {
        device_memory[0] += rr.engine.device_memory_bytes();
        record(&mut rr, true, &recorded, &first_ids, dt)?;
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
    let device_memory_bytes = device_memory[0];
    cluster.sum(&mut sent);
    let events = events[0];
    let piece_steps = step - start_step;
    let bytes_sent_per_rank_per_step = if piece_steps > 0 {
        sent[0] as f64 / n_ranks as f64 / piece_steps as f64
    } else {
        0.0
    };
    let spike_files: Vec<String> = (0..n_ranks)
        .map(|r| format!("spikes-rank-{r:05}.h5"))
        .collect();
    let vm_files: Vec<String> = (0..n_ranks)
        .map(|r| format!("vm-rank-{r:05}.h5"))
        .filter(|f| dir.join(f).exists())
        .collect();
    // Every rank's files are complete before the root publishes the run.
    cluster.barrier();
    if !cluster.is_root() {
        return Ok(RunOutcome::Finished(None));
    }
    let sim_steps = total_steps - presim_steps;
    let t_sim_s = sim_steps as f64 * dt * 1e-3;
    let populations = model
        .populations
        .iter()
        .enumerate()
        .map(|(p, pop)| PopulationSummary {
            name: pop.name.clone(),
            area: model.areas[pop.area].clone(),
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
        seed: plan.run.seed,
        n_ranks: n_ranks as u32,
        ranks_finished: (0..n_ranks as u32).collect(),
        backend,
        device_bytes_per_synapse: (device.is_some() && m.total_synapses > 0)
            .then(|| device_memory_bytes as f64 / m.total_synapses as f64),
        device,
        device_memory_bytes,
        comm: comm.into(),
        threads: rayon::current_num_threads(),
        dt_ms: dt,
        interval_steps: interval,
        steps: step,
        t_start_ms: presim_steps as f64 * dt,
        t_stop_ms: total_steps as f64 * dt,
        populations,
        spike_files,
        vm_files,
        wall_load_s: wall.load_s,
        wall_presim_s: wall.presim_s,
        wall_sim_s: wall.sim_s,
        real_time_factor: if t_sim_s > 0.0 {
            wall.sim_s / t_sim_s
        } else {
            0.0
        },
        synaptic_events: events,
        bytes_sent_per_rank_per_step,
        pieces: plan.pieces,
        wall_checkpoint_s: wall.checkpoint_s,
        wall_restore_s: wall.restore_s,
        checkpoints_written: ctx.written.get(),
        branched_from: plan.branched_from.clone(),
    };
    if plan.persistent {
        write_json_atomic(&dir.join("summary.json"), &summary)?;
        if let Some(rs) = run_state.as_mut() {
            rs.status = RunStatus::Finished;
            rs.step = step;
            rs.updated_unix_s = unix_now();
            rs.write(&dir)?;
        }
    } else if let Some(staging) = staging {
        write_json(&staging.path().join("summary.json"), &summary)?;
        staging.commit()?;
    }
    Ok(RunOutcome::Finished(Some(Box::new(summary))))
}

/// The checkpoint a resume in place started from, as `(step, path)`.
fn start_step_dir(plan: &Plan, step: u64, dir: &Path, dt: f64) -> Option<(u64, PathBuf)> {
    (!plan.candidates.is_empty()).then(|| {
        (
            step,
            dir.join(CHECKPOINTS_DIR)
                .join(checkpoint_dir_name(step, dt)),
        )
    })
}

/// What [`write_checkpoint`] needs besides the ranks.
struct Ctx<'a> {
    /// Checkpoints written by this process.
    written: std::cell::Cell<u32>,
    dir: PathBuf,
    network: String,
    m: &'a Manifest,
    plan: &'a Plan,
    level: i32,
    /// Whether each population's spikes are recorded.
    recorded: &'a [bool],
    /// Global id of each population's first neuron.
    first_ids: Vec<u64>,
}

/// Write a checkpoint of every rank at `step` (collective; see
/// [`crate::checkpoint`] for the protocol). Returns its directory.
fn write_checkpoint(
    ctx: &Ctx,
    ranks: &mut [RankRun],
    cluster: &dyn Cluster,
    step: u64,
    wall: &mut WallTimes,
    run_state: Option<&mut RunState>,
) -> Result<PathBuf, SimError> {
    let t0 = Instant::now();
    ctx.written.set(ctx.written.get() + 1);
    let before = wall.checkpoint_s;
    let dt = ctx.m.dt_ms;
    let name = checkpoint_dir_name(step, dt);
    let parent = ctx.dir.join(CHECKPOINTS_DIR);
    let cdir = parent.join(&name);
    if cluster.is_root() {
        if cdir.exists() {
            // Left over from an earlier timeline of this run directory.
            std::fs::remove_dir_all(&cdir).map_err(io_err(&cdir, "remove stale checkpoint"))?;
        }
        std::fs::create_dir_all(&cdir).map_err(io_err(&cdir, "create checkpoint directory"))?;
        snn_formats::checkpoint::sync_dir(&parent)?;
    }
    cluster.barrier();
    let n = ctx.m.n_ranks as usize;
    let mut table = vec![0u64; 3 * n];
    let model_hash = hash_bytes(&ctx.m.model_hash);
    for rr in ranks.iter_mut() {
        // The outputs hold at least what the checkpoint counts, on disk.
        record(rr, true, ctx.recorded, &ctx.first_ids, dt)?;
        rr.writer.flush()?;
        sync_file(&ctx.dir.join(&rr.spike_file))?;
        let mut vm_steps = 0u64;
        if let Some(vm) = rr.vm.as_mut() {
            vm.writer.flush()?;
            sync_file(&ctx.dir.join(&vm.file))?;
            vm_steps = vm.writer.steps() as u64;
        }
        let mut sections = rr.engine.save_state()?;
        sections.push(Section::new(
            "recorder/spike_counts",
            u64s_to_bytes(&rr.writer.counts()),
        ));
        sections.push(Section::new(
            "recorder/vm_steps",
            u64s_to_bytes(&[vm_steps]),
        ));
        sections.push(Section::new(
            "stats/events",
            u64s_to_bytes(&[rr.engine.events()?]),
        ));
        test_pause();
        let header = RankHeader {
            rank: rr.rank,
            n_ranks: n as u32,
            step,
            model_hash,
        };
        let e = write_rank_state(&cdir, &header, &sections, ctx.level)?;
        let r = rr.rank as usize;
        table[3 * r] = e.bytes;
        table[3 * r + 1] = e.payload_bytes;
        table[3 * r + 2] = u64::from_str_radix(&e.xxh3, 16).unwrap_or(0);
    }
    // Every rank's file is in place (the sum is a barrier).
    cluster.sum(&mut table);
    wall.checkpoint_s = before + t0.elapsed().as_secs_f64();
    if cluster.is_root() {
        test_pause();
        let mut mf = CheckpointManifest {
            format: CHECKPOINT_FORMAT.into(),
            format_version: CHECKPOINT_FORMAT_VERSION,
            model_hash: ctx.m.model_hash.clone(),
            network: ctx.network.clone(),
            n_ranks: n as u32,
            step,
            t_ms: step as f64 * dt,
            run: ctx.plan.run.clone(),
            wall: wall.clone(),
            pieces: ctx.plan.pieces,
            created_unix_s: unix_now(),
            ranks: (0..n)
                .map(|r| RankFileEntry {
                    file: rank_file_name(r as u32),
                    rank: r as u32,
                    bytes: table[3 * r],
                    payload_bytes: table[3 * r + 1],
                    xxh3: format!("{:016x}", table[3 * r + 2]),
                })
                .collect(),
            checksum: String::new(),
        };
        mf.write(&cdir)?;
        if let Some(rs) = run_state {
            rs.last_checkpoint = Some(name);
            rs.step = step;
            rs.updated_unix_s = unix_now();
            rs.write(&ctx.dir)?;
        }
        if let Some(k) = ctx.plan.keep {
            prune(&ctx.dir, k, step as f64 * dt);
        }
    }
    wall.checkpoint_s = before + t0.elapsed().as_secs_f64();
    Ok(cdir)
}

/// Hand the recorded spikes and V_m samples of `rr`'s engine to its writers
/// (all of them when `flush`; see [`RankEngine::take_recorded`]).
fn record(
    rr: &mut RankRun,
    flush: bool,
    recorded: &[bool],
    first_ids: &[u64],
    dt: f64,
) -> Result<(), SimError> {
    let rec = rr.engine.take_recorded(flush)?;
    if let Some(vm) = rr.vm.as_mut() {
        let width = vm.locals.len().max(1);
        for row in rec.vm.chunks(width) {
            vm.writer.push_step(row)?;
        }
    }
    // Disjoint field borrows: the engine is read while the writer and
    // counters are updated, so nothing needs copying.
    let first_local = rr.engine.pop_first_local();
    let d = rr.engine.data();
    for &(step, l) in &rec.spikes {
        let p = first_local.partition_point(|&f| f <= l as usize) - 1;
        if recorded[p] {
            let g = d.local_to_global[l as usize].to_native();
            rr.writer
                .push(p, g - first_ids[p], spike_time_ms(step, dt))?;
            rr.counts[p] += 1;
        }
    }
    Ok(())
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), SimError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| SimError::Internal(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| FormatError::io(path, "write", e))?;
    Ok(())
}

fn write_json_atomic(path: &Path, v: &impl Serialize) -> Result<(), SimError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| SimError::Internal(e.to_string()))?;
    write_atomic(path, (text + "\n").as_bytes())?;
    Ok(())
}
