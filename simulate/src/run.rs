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
//! # Structure
//!
//! A piece of a run reads as set-up -> step loop -> finish
//! ([`run_checkpointed`]): the root's plan (module `plan`: fresh, resume
//! in place, branch; staging and the run lock), the engines, the checkpoint
//! it starts from and the writing of checkpoints ([`crate::checkpoint`]),
//! the recorders (module `recorders`), the wall-time limit (module
//! `deadline`) and the summary (module `summary`).
//!
//! Checkpoints are taken only at the end of an interval (after the spikes of
//! the interval are delivered), at absolute times that are multiples of the
//! checkpoint interval, so that a run's results never depend on where it
//! was checkpointed or interrupted (see [`crate::engine`]).

use std::path::PathBuf;
use std::time::Instant;

use snn_formats::checkpoint::{
    unix_now, RunState, RunStatus, WallTimes, CHECKPOINT_FORMAT_VERSION, RUN_STATE_FORMAT,
};
use snn_formats::output::Staging;
use snn_formats::{Check, Manifest, Model, NetworkDir};

pub use crate::checkpoint::EXIT_RESUMABLE;
use crate::checkpoint::{
    choose_checkpoint, note, start_step_dir, tidy_run_dir, write_checkpoint, Ctx, Loaded,
};
use crate::cluster::{all_gather, broadcast, Cluster, CommMode, Emulated};
use crate::deadline::Deadline;
use crate::engine::Engine;
use crate::gpu::{GpuEngine, GpuOptions};
use crate::plan::{share_plan, Plan};
use crate::rank::{CpuRank, RankEngine};
use crate::recorders::{record, Outputs, RankRun};
use crate::summary::{Facts, Totals};
pub use crate::summary::{PopulationSummary, RunSummary};
use crate::SimError;

pub use snn_kernels::device::DeviceFactory;

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
    /// The V_m report starts at t = 0 with the initial state (a sample
    /// before the first step; needs recording from t = 0, no
    /// presimulation), as well as after every step.
    pub vm_from_start: bool,
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
    /// For tests: stop after writing this many periodic checkpoints in this
    /// process, as if the wall time had run out
    /// ([`RunOutcome::Suspended`]), so that a test can cut a run into
    /// pieces at chosen times.
    pub suspend_after_checkpoints: Option<u64>,
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

/// Called by every process once it has tried to start the engines of its
/// ranks (`start_err`: the first rank that failed, e.g. its device did not
/// open, its shard is unreadable, its device ran out of memory). A failure
/// on any rank becomes an error on every process, so that none goes on to
/// wait in an exchange for a rank that is gone. With all ranks in this
/// process, the rank's own error is returned. With other processes (MPI),
/// every process returns [`SimError::Stopped`] (all of them know of the
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
    // The ranks of this process that could not start, on every process.
    let mine: Vec<u32> = start_err.as_ref().map(|(r, _)| *r).into_iter().collect();
    let mut failed = all_gather(cluster, &mine)?.concat();
    if let Some((_, e)) = start_err {
        return Err(SimError::Stopped(e.to_string()));
    }
    failed.sort_unstable();
    let bad: Vec<String> = failed.iter().map(|r| r.to_string()).collect();
    match bad.len() {
        0 => Ok(()),
        1 => Err(SimError::Stopped(format!(
            "rank {} could not start (see its error); the run stops on every rank",
            bad[0]
        ))),
        _ => Err(SimError::Stopped(format!(
            "ranks {} could not start (see their errors); the run stops on every rank",
            bad.join(", ")
        ))),
    }
}

/// Open the engine of every rank of this process on its backend; a rank
/// that cannot start stops the run on every process ([`agree_started`]).
fn start_engines(
    opts: &RunOptions,
    net: &NetworkDir,
    model: &Model,
    seed: u64,
    cluster: &dyn Cluster,
) -> Result<Vec<Box<dyn RankEngine>>, SimError> {
    let m = &net.manifest;
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
                    seed,
                )?)),
                Backend::Gpu { factory, options } => Box::new(GpuEngine::new(
                    factory.open(r)?,
                    model.clone(),
                    shard,
                    m.min_delay_steps,
                    m.max_delay_steps,
                    seed,
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
    agree_started(cluster, m.n_ranks as usize, start_err)?;
    Ok(engines)
}

/// Root of a persistent run: tidy the run directory (a resume in place)
/// and record the piece in `run-state.json` (status `running`).
fn begin_piece(
    opts: &RunOptions,
    m: &Manifest,
    plan: &Plan,
    loaded: Option<&Loaded>,
    start_step: u64,
) -> Result<RunState, SimError> {
    let dir = &plan.dir;
    if plan.keep_counts {
        tidy_run_dir(dir, start_step, m.dt_ms, plan.keep)?;
    }
    if plan.remove_summary {
        let p = dir.join("summary.json");
        std::fs::remove_file(&p).map_err(crate::io_err(&p, "remove"))?;
    }
    let rs = RunState {
        format: RUN_STATE_FORMAT.into(),
        format_version: CHECKPOINT_FORMAT_VERSION,
        status: RunStatus::Running,
        network: opts.network.display().to_string(),
        model_hash: m.model_hash.clone(),
        n_ranks: m.n_ranks,
        run: plan.run.clone(),
        checkpoint_every_ms: plan.every_steps.map(|s| s as f64 * m.dt_ms),
        keep: plan.keep,
        branched_from: plan.branched_from.clone(),
        pieces: plan.pieces,
        last_checkpoint: loaded
            .filter(|_| plan.keep_counts)
            .and_then(|l| l.path.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        step: start_step,
        updated_unix_s: unix_now(),
        error: None,
        checksum: String::new(),
    };
    rs.write(dir)?;
    Ok(rs)
}

/// What changes while a piece runs.
struct Running {
    /// This process's ranks with their recorders.
    ranks: Vec<RankRun>,
    /// Steps done.
    step: u64,
    wall: WallTimes,
    /// The root's `run-state.json` of a persistent run.
    run_state: Option<RunState>,
    /// The newest checkpoint of this piece (or the one it started from).
    last_checkpoint: Option<(u64, PathBuf)>,
    /// A new run's staging directory (until it is in place).
    staging: Option<Staging>,
}

/// Intervals per call of [`RankEngine::run_alone`] (for a rank alone in its
/// run): the wall-time limit and the progress are looked at between calls,
/// every few milliseconds on the 10 % microcircuit and about every 0.1 s at
/// full scale.
const ALONE_INTERVALS: u64 = 256;

/// Run intervals until the end of the run, or until the wall-time limit
/// (or, in tests, [`CheckpointOptions::suspend_after_checkpoints`]) stops
/// it: then `Ok(true)`.
/// Intervals never straddle the presim/sim boundary (the phases are timed
/// separately) nor a checkpoint time.
fn step_loop(
    cluster: &mut dyn Cluster,
    ctx: &Ctx,
    st: &mut Running,
    mut deadline: Option<Deadline>,
    progress: &mut dyn FnMut(Progress),
) -> Result<bool, SimError> {
    let ranks = &mut st.ranks;
    let plan = ctx.plan;
    let (presim_steps, total_steps) = (plan.run.presim_steps, plan.run.total_steps);
    let dt = ctx.m.dt_ms;
    let interval = ranks[0].engine.interval();
    // The only rank of the run: nothing to exchange between intervals.
    let alone = ranks.len() == 1 && ctx.m.n_ranks == 1;
    // For tests: behave as if the wall time ran out after this many
    // periodic checkpoints of this process.
    let mut suspend_after = ctx.suspend_after_checkpoints;
    let mut intervals_here = 0u64;
    while st.step < total_steps {
        if let Some(d) = deadline.as_mut() {
            if d.must_stop(cluster, intervals_here) {
                return Ok(true);
            }
        }
        let t0 = st.step;
        let ti = Instant::now();
        let mut end = if t0 < presim_steps {
            presim_steps
        } else {
            total_steps
        };
        if let Some(e) = plan.every_steps {
            end = end.min((t0 / e + 1) * e);
        }
        if alone {
            // Many intervals in one call (see `RankEngine::run_alone`).
            let n = (interval * ALONE_INTERVALS).min(end - t0);
            let rr = &mut ranks[0];
            rr.engine.run_alone(n, t0 >= presim_steps)?;
            record(rr, false, ctx.recorded, &ctx.first_ids, dt)?;
            st.step += n;
        } else {
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
                record(rr, false, ctx.recorded, &ctx.first_ids, dt)?;
            }
            st.step += n;
        }
        intervals_here += 1;
        let spent = ti.elapsed().as_secs_f64();
        if t0 < presim_steps {
            st.wall.presim_s += spent;
        } else {
            st.wall.sim_s += spent;
        }
        if plan.every_steps.is_some_and(|e| st.step.is_multiple_of(e)) && st.step < total_steps {
            let tc = Instant::now();
            let path = write_checkpoint(
                ctx,
                ranks,
                cluster,
                st.step,
                &mut st.wall,
                st.run_state.as_mut(),
            )?;
            if let Some(d) = deadline.as_mut() {
                d.checkpoint_took(tc.elapsed().as_secs_f64());
            }
            st.last_checkpoint = Some((st.step, path));
            if let Some(k) = suspend_after.as_mut() {
                *k = k.saturating_sub(1);
                if *k == 0 {
                    return Ok(true);
                }
            }
        }
        progress(Progress {
            t_ms: st.step as f64 * dt,
            t_total_ms: total_steps as f64 * dt,
        });
    }
    Ok(false)
}

/// What a piece of a run is, fixed once it is set up.
struct Piece {
    net: NetworkDir,
    model: Model,
    plan: Plan,
    /// The run directory written into (after a persistent run's staging
    /// directory went into place: its real name).
    dir: PathBuf,
    /// Whether each population's spikes are recorded.
    recorded: Vec<bool>,
    start_step: u64,
    comm: &'static str,
    interval_steps: u64,
}

/// One piece of a run: set-up -> step loop -> finish (see
/// [`run_checkpointed`]).
fn run_piece(
    opts: &RunOptions,
    ck: &CheckpointOptions,
    cluster: &mut dyn Cluster,
    progress: &mut dyn FnMut(Progress),
    owned: &mut Owned,
) -> Result<RunOutcome, SimError> {
    let t_start = Instant::now();
    let (p, mut st) = match set_up(opts, ck, cluster, owned)? {
        Ok(ready) => *ready,
        Err(finished) => return Ok(RunOutcome::AlreadyFinished(finished)),
    };
    st.wall.load_s += t_start.elapsed().as_secs_f64();
    let ctx = Ctx {
        written: std::cell::Cell::new(0),
        dir: p.dir.clone(),
        network: opts.network.display().to_string(),
        m: &p.net.manifest,
        plan: &p.plan,
        level: if ck.zstd_level == 0 { 1 } else { ck.zstd_level },
        recorded: &p.recorded,
        first_ids: p.model.populations.iter().map(|q| q.first_id).collect(),
        suspend_after_checkpoints: ck.suspend_after_checkpoints,
    };
    let state_bytes: f64 = st.ranks.iter().map(|r| r.engine.state_bytes() as f64).sum();
    let deadline = Deadline::new(ck.deadline, ck.margin_s, t_start, state_bytes);
    let suspended = step_loop(cluster, &ctx, &mut st, deadline, progress)?;
    if suspended {
        stop_at_checkpoint(&ctx, st, cluster)
    } else {
        finish(opts, &ctx, &p, st, cluster).map(|s| RunOutcome::Finished(s.map(Box::new)))
    }
}

/// Set a piece up: the plan, the engines, the checkpoint it starts from,
/// `run-state.json`, the recorders; a new persistent run's directory goes
/// into place. `Err(dir)`: `--resume` of a run that is already finished.
fn set_up(
    opts: &RunOptions,
    ck: &CheckpointOptions,
    cluster: &mut dyn Cluster,
    owned: &mut Owned,
) -> Result<Result<Box<(Piece, Running)>, PathBuf>, SimError> {
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
    let dt = m.dt_ms;
    let comm = match cluster.mode() {
        CommMode::P2p => "p2p",
        CommMode::Collective => "collective",
    };
    let (plan, staging) = share_plan(opts, ck, m, comm, cluster, &mut owned.lock)?;
    if plan.already_finished {
        if cluster.is_root() {
            note(&format!(
                "the run in {} is already finished ({} ms); give a longer --t-sim to extend it",
                plan.dir.display(),
                plan.run.total_steps as f64 * dt
            ));
        }
        return Ok(Err(plan.dir));
    }
    let mpath = net.dir.join(snn_formats::manifest::MANIFEST_FILE);
    let model = m.model(&mpath)?;
    m.check_against_model(&model, &mpath)?;
    let recorded: Vec<bool> = (0..model.populations.len())
        .map(|p| model.recording.spike_populations.contains(&p))
        .collect();
    let engines = start_engines(opts, &net, &model, plan.run.seed, cluster)?;
    let t_restore = Instant::now();
    let loaded = choose_checkpoint(cluster, &plan, m, &opts.network)?;
    let start_step = loaded.as_ref().map_or(0, |l| l.manifest.step);
    if start_step > plan.run.total_steps {
        return Err(SimError::Invalid(format!(
            "the checkpoint is at {} ms, after the end of the run at {} ms",
            start_step as f64 * dt,
            plan.run.total_steps as f64 * dt
        )));
    }
    if cluster.is_root() && plan.keep_counts {
        if let Some(l) = &loaded {
            note(&format!(
                "resuming from {} (t = {} ms)",
                l.path.display(),
                (l.manifest.t_ms * 1e6).round() / 1e6
            ));
        }
    }
    let mut st = Running {
        ranks: Vec::with_capacity(engines.len()),
        staging,
        step: start_step,
        wall: match (&loaded, plan.keep_counts) {
            (Some(l), true) => l.manifest.wall.clone(),
            _ => WallTimes::default(),
        },
        run_state: None,
        last_checkpoint: if plan.keep_counts {
            start_step_dir(&plan, start_step, &plan.dir, dt)
        } else {
            None
        },
    };
    if cluster.is_root() && plan.persistent {
        st.run_state = Some(begin_piece(opts, m, &plan, loaded.as_ref(), start_step)?);
        owned.dir = Some(plan.dir.clone());
    }
    if plan.persistent && !plan.staged {
        // Nobody touches the outputs before the directory is tidy.
        cluster.barrier();
    }
    let outputs = Outputs {
        dir: &plan.dir,
        shown: &opts.output,
        plan: &plan,
        model: &model,
        checkpoint: loaded.as_ref().map(|l| l.path.as_path()),
    };
    for (k, (engine, r)) in engines.into_iter().zip(cluster.here()).enumerate() {
        let state = loaded.as_ref().map(|l| &l.states[k]);
        st.ranks.push(outputs.open_rank(engine, r, state)?);
    }
    if loaded.is_some() {
        st.wall.restore_s += t_restore.elapsed().as_secs_f64();
    }
    drop(loaded);
    // A new persistent run goes into place now, before the first step.
    let mut dir = plan.dir.clone();
    if plan.persistent && plan.staged {
        cluster.barrier();
        let committed = st
            .staging
            .take()
            .map(|s| s.commit().map_err(SimError::from));
        dir = broadcast(cluster, committed)?;
        if owned.dir.is_some() {
            owned.dir = Some(dir.clone());
        }
    }
    let interval_steps = st.ranks[0].engine.interval();
    let piece = Piece {
        net,
        model,
        plan,
        dir,
        recorded,
        start_step,
        comm,
        interval_steps,
    };
    Ok(Ok(Box::new((piece, st))))
}

/// A piece stopped before the end of the run (wall time): its state is
/// in a checkpoint (written now unless the last interval wrote one), the
/// recorders are closed and `run-state.json` says `suspended`.
fn stop_at_checkpoint(
    ctx: &Ctx,
    mut st: Running,
    cluster: &mut dyn Cluster,
) -> Result<RunOutcome, SimError> {
    let (step, dt) = (st.step, ctx.m.dt_ms);
    let path = match &st.last_checkpoint {
        Some((s, p)) if *s == step => p.clone(),
        _ => write_checkpoint(
            ctx,
            &mut st.ranks,
            cluster,
            step,
            &mut st.wall,
            st.run_state.as_mut(),
        )?,
    };
    for mut rr in st.ranks {
        record(&mut rr, true, ctx.recorded, &ctx.first_ids, dt)?;
        rr.writer.close()?;
        if let Some(vm) = rr.vm {
            vm.writer.close()?;
        }
    }
    if let Some(rs) = st.run_state.as_mut() {
        rs.status = RunStatus::Suspended;
        rs.updated_unix_s = unix_now();
        rs.write(&ctx.dir)?;
    }
    Ok(RunOutcome::Suspended(Suspended {
        t_ms: step as f64 * dt,
        t_stop_ms: ctx.plan.run.total_steps as f64 * dt,
        checkpoint: path,
    }))
}

/// The end of a run: a persistent run's final checkpoint, the recorders
/// closed and their counts added up, then (root) `summary.json` and
/// `run-state.json` (persistent) or the staging directory put in place.
/// The root returns the summary.
fn finish(
    opts: &RunOptions,
    ctx: &Ctx,
    p: &Piece,
    mut st: Running,
    cluster: &mut dyn Cluster,
) -> Result<Option<RunSummary>, SimError> {
    let (step, dt, dir) = (st.step, ctx.m.dt_ms, &p.dir);
    // A persistent run ends with a checkpoint of its final state (to extend
    // it or branch from it later).
    if p.plan.persistent && st.last_checkpoint.as_ref().map(|l| l.0) != Some(step) {
        write_checkpoint(
            ctx,
            &mut st.ranks,
            cluster,
            step,
            &mut st.wall,
            st.run_state.as_mut(),
        )?;
    }
    let totals = Totals::reduce(st.ranks, cluster, &p.recorded, &ctx.first_ids, dt)?;
    let vm_files: Vec<String> = (0..ctx.m.n_ranks)
        .map(|r| format!("vm-rank-{r:05}.h5"))
        .filter(|f| dir.join(f).exists())
        .collect();
    // Every rank's files are complete before the root publishes the run.
    cluster.barrier();
    if !cluster.is_root() {
        return Ok(None);
    }
    let summary = RunSummary::new(
        Facts {
            network: opts.network.clone(),
            m: ctx.m,
            model: &p.model,
            plan: &p.plan,
            recorded: &p.recorded,
            comm: p.comm,
            interval_steps: p.interval_steps,
            step,
            start_step: p.start_step,
            wall: &st.wall,
            checkpoints_written: ctx.written.get(),
            vm_files,
        },
        totals,
    );
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| SimError::Internal(e.to_string()))?
        + "\n";
    if p.plan.persistent {
        snn_formats::checkpoint::write_atomic(&dir.join("summary.json"), text.as_bytes())?;
        if let Some(rs) = st.run_state.as_mut() {
            rs.status = RunStatus::Finished;
            rs.step = step;
            rs.updated_unix_s = unix_now();
            rs.write(dir)?;
        }
    } else if let Some(staging) = st.staging.take() {
        let path = staging.path().join("summary.json");
        std::fs::write(&path, text).map_err(crate::io_err(&path, "write"))?;
        staging.commit()?;
    }
    Ok(Some(summary))
}

/// What [`write_initial_state`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct InitialState {
    /// The report file.
    pub path: PathBuf,
    /// Neurons in it (those of every population that is not a generator).
    pub neurons: u64,
}

/// Write the initial membrane potential of every neuron of `network` for
/// simulation seed `seed` (what the engines start from: `V_m_init` drawn
/// per neuron, see [`crate::input::initial_v_m`]) to `path`, without
/// simulating: a SONATA report (`/report/<population>/data`, one row,
/// stamped t = 0 ms; `mapping/node_ids` the population's node ids 0 ..
/// size) with every neuron of every population that is not a
/// `spike_generator`. Written to a temporary file beside `path` and renamed
/// into place, so `path` is either complete or absent; an existing `path`
/// is replaced only with `force`.
pub fn write_initial_state(
    network: &std::path::Path,
    seed: u64,
    path: &std::path::Path,
    force: bool,
) -> Result<InitialState, SimError> {
    use snn_formats::model::NeuronModel;
    use snn_formats::sonata::ReportWriter;
    let net = NetworkDir::open(network)?;
    let model = net
        .manifest
        .model(&network.join(snn_formats::manifest::MANIFEST_FILE))?;
    if path.exists() && !force {
        return Err(SimError::Invalid(format!(
            "{} exists (use --force to replace it)",
            path.display()
        )));
    }
    let neurons: Vec<(usize, &snn_formats::model::Population)> = model
        .populations
        .iter()
        .enumerate()
        .filter(|(_, p)| p.params.model != NeuronModel::SpikeGenerator)
        .collect();
    let n_total: u64 = neurons.iter().map(|(_, p)| p.size).sum();
    // One row of every neuron: check it fits in memory before drawing it.
    let bytes = n_total
        .checked_mul(16)
        .ok_or_else(|| SimError::Invalid("too many neurons".into()))?;
    snn_formats::limits::check_fits(bytes, "the initial state").map_err(SimError::Invalid)?;
    let groups: Vec<(String, Vec<u64>)> = neurons
        .iter()
        .map(|(_, p)| (p.name.clone(), (0..p.size).collect()))
        .collect();
    let mut row = Vec::with_capacity(n_total as usize);
    for (pi, p) in &neurons {
        row.extend((0..p.size).map(|i| crate::input::initial_v_m(seed, *pi, i, &p.v_m_init)));
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| SimError::Invalid(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.partial", file_name.to_string_lossy()));
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(crate::io_err(&tmp, "remove"))?;
    }
    let mut w = ReportWriter::create(&tmp, &groups, 0.0, model.dt_ms)?;
    w.show_as(path.to_path_buf());
    w.push_step(&row)?;
    w.close()?;
    std::fs::rename(&tmp, path).map_err(crate::io_err(path, "rename into place"))?;
    Ok(InitialState {
        path: path.to_path_buf(),
        neurons: n_total,
    })
}
