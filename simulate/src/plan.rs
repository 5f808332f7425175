//! What one piece of a run does, worked out by the root before anything is
//! loaded: start fresh, resume in place from a checkpoint (newest first), or
//! branch from a saved state; where the outputs go (a staging directory for
//! new runs); which checkpoints to try. The root holds the run directory's
//! lock for a persistent run and shares the plan with every process.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use snn_formats::checkpoint::{
    checkpoint_status, list_checkpoints, CheckpointStatus, RunConfig, RunState, RUN_STATE_FILE,
};
use snn_formats::output::{occupied, Staging};
use snn_formats::Manifest;

use crate::checkpoint::note;
use crate::cluster::{broadcast, Cluster};
use crate::run::{end_step, max_steps, ms_to_steps, CheckpointOptions, RunOptions, Start};
use crate::{io_err, SimError};

/// What this piece of a run does, worked out by the root and shared.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// Where outputs are written (a staging directory for new runs).
    pub(crate) dir: PathBuf,
    /// The run directory persists across jobs (checkpointing).
    pub(crate) persistent: bool,
    /// `dir` is a staging directory, renamed into place by the root.
    pub(crate) staged: bool,
    pub(crate) run: RunConfig,
    /// Checkpoints to try, best first; empty: start at step 0.
    pub(crate) candidates: Vec<PathBuf>,
    /// Create new output files (else reopen and truncate the existing ones
    /// to the checkpoint's counts).
    pub(crate) new_outputs: bool,
    /// The checkpoint's recorder counts carry over (resume in place).
    pub(crate) keep_counts: bool,
    pub(crate) every_steps: Option<u64>,
    pub(crate) keep: Option<usize>,
    pub(crate) pieces: u32,
    pub(crate) branched_from: Option<String>,
    pub(crate) already_finished: bool,
    pub(crate) remove_summary: bool,
}

/// The root works out the plan (creating the staging directory of a new
/// run and taking the run directory's lock into `lock`) and every process
/// gets it. `comm` names the exchange mode (recorded, not binding).
pub(crate) fn share_plan(
    opts: &RunOptions,
    ck: &CheckpointOptions,
    m: &Manifest,
    comm: &str,
    cluster: &dyn Cluster,
    lock: &mut Option<std::fs::File>,
) -> Result<(Plan, Option<Staging>), SimError> {
    let (root_plan, staging) = if cluster.is_root() {
        match make_plan(opts, ck, m, comm).and_then(|(p, s)| {
            if p.persistent && !p.already_finished {
                *lock = Some(lock_run_dir(&p.dir, &opts.output)?);
            }
            Ok((p, s))
        }) {
            Ok((p, s)) => (Some(Ok(p)), s),
            Err(e) => (Some(Err(e)), None),
        }
    } else {
        (None, None)
    };
    Ok((broadcast(cluster, root_plan)?, staging))
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
pub(crate) fn check_compatible(
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
pub(crate) fn same_run(path: &Path, ck: &RunConfig, run: &RunConfig) -> Result<(), SimError> {
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
        if opts.vm_from_start && presim_steps > 0 {
            return Err(SimError::Invalid(
                "--vm-from-start records V_m from t = 0: it cannot follow a presimulation (--t-presim)".into(),
            ));
        }
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
                    vm_from_start: opts.vm_from_start,
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
            if opts.vm_from_start {
                return Err(SimError::Invalid(
                    "--vm-from-start records V_m from t = 0: a run branched from a checkpoint starts later".into(),
                ));
            }
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
