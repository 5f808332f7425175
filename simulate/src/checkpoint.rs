//! Checkpoint/resume support of a run: wall-time limits, the exit code of a
//! suspended run, and the collective steps of writing, choosing and loading
//! checkpoints. The on-disk format is [`snn_formats::checkpoint`]; the step
//! loop that uses this is [`crate::run`].
//!
//! # What a checkpoint holds
//!
//! Per rank (`rank-NNNNN.ckpt`): the engine state
//! ([`Engine::save_state`](crate::engine::Engine::save_state):
//! step counter, neuron state, ring buffers; written only at the end of an
//! interval, when no spike is in flight), the recorder positions (spikes per
//! population in the rank's spike file, V_m samples in its report) and the
//! synaptic-event counter of the summary. In the manifest: the network's
//! model hash, the rank count, the run configuration (seed, dt, presim and
//! end steps) and cumulative wall times. The Poisson drive and spike
//! generators need no state (counter-based random numbers).
//!
//! # Writing (collective)
//!
//! Rank 0 creates `checkpoints/t-...ms/`; barrier; every rank flushes and
//! fsyncs its spike and V_m files (so they hold at least what the checkpoint
//! counts), writes its rank file to a temporary name, fsyncs and renames it;
//! the ranks' file sizes and checksums are summed to every process (a
//! barrier); rank 0 writes `manifest.json` (temporary name, fsync, rename),
//! updates `run-state.json`, and only then prunes checkpoints beyond
//! `--keep`.
//!
//! # Choosing on resume
//!
//! Rank 0 lists the checkpoints newest first: one without a manifest is
//! incomplete (the writer was killed) and is ignored, one whose manifest or
//! file sizes fail is corrupt and skipped with a note. Every process then
//! reads and verifies (checksums) its ranks' files of the newest candidate;
//! if any rank fails, all fall back to the previous candidate, with a note.
//! When checkpoints exist but none is valid, the resume fails naming them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use snn_formats::checkpoint::{
    checkpoint_dir_name, checkpoint_status, list_checkpoints, rank_file_name, read_rank_state,
    sync_file, test_pause, unix_now, write_rank_state, CheckpointManifest, CheckpointStatus,
    RankFileEntry, RankHeader, RankState, RunConfig, RunState, Section, WallTimes, CHECKPOINTS_DIR,
    CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION,
};
use snn_formats::{FormatError, Manifest};

use crate::cluster::{all_gather, Cluster};
use crate::plan::{check_compatible, same_run, Plan};
use crate::recorders::{record, RankRun};
use crate::{io_err, SimError};

/// Exit code of `snn-sim` when it stopped at a checkpoint before the end of
/// the run (wall time): "resumable, not finished" (`EX_TEMPFAIL` of
/// sysexits.h). Run it again with `--resume` to continue.
pub const EXIT_RESUMABLE: u8 = 75;

/// Parse a wall-time limit in SLURM's notation, `[D-]HH:MM:SS`, `MM:SS`,
/// `D-HH`, `D-HH:MM`, or a number with a unit, `90s`, `30m`, `2h` (fractions
/// allowed). A bare number (minutes to SLURM) is refused as ambiguous.
pub fn parse_walltime(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid wall time '{s}': expected [D-]HH:MM:SS, MM:SS, D-HH[:MM], or a number with a unit (90s, 30m, 2h)"
        )
    };
    let t = s.trim();
    let secs = if let Some(num) = t
        .strip_suffix('s')
        .map(|n| (n, 1.0))
        .or_else(|| t.strip_suffix('m').map(|n| (n, 60.0)))
        .or_else(|| t.strip_suffix('h').map(|n| (n, 3600.0)))
    {
        let (n, unit) = num;
        n.trim().parse::<f64>().map_err(|_| bad())? * unit
    } else {
        let (days, rest) = match t.split_once('-') {
            Some((d, r)) => (d.parse::<u64>().map_err(|_| bad())?, r),
            None => (0, t),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let nums: Vec<u64> = parts
            .iter()
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    Err(bad())
                } else {
                    p.parse::<u64>().map_err(|_| bad())
                }
            })
            .collect::<Result<_, _>>()?;
        let with_days = t.contains('-');
        let (h, m, sec) = match (with_days, &nums[..]) {
            (_, &[h, m, s]) => (h, m, s),
            (true, &[h, m]) => (h, m, 0),
            (true, &[h]) => (h, 0, 0),
            (false, &[m, s]) => (0, m, s),
            _ => return Err(bad()),
        };
        if m >= 60 || sec >= 60 {
            return Err(bad());
        }
        ((days * 24 + h) * 3600 + m * 60 + sec) as f64
    };
    if !secs.is_finite() {
        return Err(bad());
    }
    if secs <= 0.0 {
        return Err(format!(
            "wall time '{s}' leaves no time to simulate: give a positive limit"
        ));
    }
    // Beyond a year a limit is surely a typo (and Instant arithmetic must
    // not overflow).
    if secs > 366.0 * 86400.0 {
        return Err(format!("wall time '{s}' is over a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The job's end as SLURM announces it (`SLURM_JOB_END_TIME`, Unix seconds),
/// as an instant; `Ok(None)` when unset or empty. A value that is not a Unix
/// time is an error: a job that ignored its end would be killed without a
/// checkpoint.
pub fn slurm_deadline() -> Result<Option<Instant>, String> {
    let Ok(text) = std::env::var("SLURM_JOB_END_TIME") else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let end: f64 = match text.parse() {
        Ok(v) if f64::is_finite(v) && v >= 0.0 => v,
        _ => {
            return Err(format!(
                "SLURM_JOB_END_TIME='{}' is not a Unix time in seconds (unset it, or fix the job script)",
                snn_formats::error::one_line(text)
            ))
        }
    };
    let left = (end - snn_formats::checkpoint::unix_now()).clamp(0.0, 366.0 * 86400.0);
    Ok(Some(Instant::now() + Duration::from_secs_f64(left)))
}

/// The 16 bytes of a model hash written as hex.
pub(crate) fn hash_bytes(hex: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    out
}

/// A note for the user (printed by the caller's process on stderr).
pub(crate) fn note(msg: &str) {
    use std::io::Write;
    // One write per line, so that ranks sharing a stderr never interleave
    // within a line.
    let line = format!("snn-sim: note: {msg}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Little-endian `u64`s as bytes.
pub(crate) fn u64s_to_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Bytes as little-endian `u64`s (`None` if the length is not a multiple of
/// 8).
pub(crate) fn bytes_to_u64s(b: &[u8]) -> Option<Vec<u64>> {
    b.len().is_multiple_of(8).then(|| {
        b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    })
}

/// Remove checkpoints beyond the newest `keep` complete ones, and incomplete
/// ones older than `newest` (left by killed writers). Only complete
/// checkpoints count, so an older one goes only once a newer one is
/// complete. Errors are notes: pruning never fails a run.
pub(crate) fn prune(run_dir: &Path, keep: usize, newest_t_ms: f64) {
    use snn_formats::checkpoint::{checkpoint_status, list_checkpoints, CheckpointStatus};
    let Ok(list) = list_checkpoints(run_dir) else {
        return;
    };
    let mut complete = 0usize;
    for c in list.iter().rev() {
        let remove = match checkpoint_status(&c.path) {
            CheckpointStatus::Complete(_) => {
                complete += 1;
                complete > keep.max(1)
            }
            CheckpointStatus::Incomplete => c.t_ms < newest_t_ms,
            CheckpointStatus::Corrupt(_) => false,
        };
        if remove {
            if let Err(e) = std::fs::remove_dir_all(&c.path) {
                note(&format!(
                    "{}: cannot remove old checkpoint: {e}",
                    c.path.display()
                ));
            }
        }
    }
}

/// The checkpoint a piece starts from: its directory, manifest and this
/// process's rank files.
pub(crate) struct Loaded {
    pub(crate) path: PathBuf,
    pub(crate) manifest: CheckpointManifest,
    /// One per rank of this process, in the order of `Cluster::here`.
    pub(crate) states: Vec<RankState>,
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

/// Choose the checkpoint to start from among the plan's candidates (best
/// first; collective): every process reads and verifies its ranks' files;
/// if any process fails, all fall back to the next candidate, with a note.
/// `None` when the plan has none (a start at step 0).
pub(crate) fn choose_checkpoint(
    cluster: &dyn Cluster,
    plan: &Plan,
    m: &Manifest,
    network: &Path,
) -> Result<Option<Loaded>, SimError> {
    let here = cluster.here();
    let mut local_err = None;
    for (i, cand) in plan.candidates.iter().enumerate() {
        let result = load_candidate(
            cand,
            &here,
            m,
            network,
            plan.keep_counts.then_some(&plan.run),
        );
        let failed = cluster.any_failed(result.is_err());
        match result {
            Ok((manifest, states)) if !failed => {
                return Ok(Some(Loaded {
                    path: cand.clone(),
                    manifest,
                    states,
                }));
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
    if plan.candidates.is_empty() {
        return Ok(None);
    }
    if plan.candidates.len() == 1 {
        if let Some(e) = local_err {
            return Err(e);
        }
    }
    Err(SimError::Invalid(format!(
        "no valid checkpoint to resume from: {} (see the notes above)",
        plan.candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Root of a resume in place from the checkpoint at `start_step`: the
/// checkpoints newer than it are incomplete or unusable; incomplete ones
/// go, unusable ones are kept aside for inspection; then `--keep` holds
/// (a writer killed between its manifest and its pruning leaves one
/// checkpoint too many), even for a resume with no step left to run.
pub(crate) fn tidy_run_dir(
    dir: &Path,
    start_step: u64,
    dt: f64,
    keep: Option<usize>,
) -> Result<(), SimError> {
    let chosen_t = start_step as f64 * dt;
    for c in list_checkpoints(dir)? {
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
    if let Some(k) = keep {
        prune(dir, k, chosen_t);
    }
    Ok(())
}

/// The checkpoint a resume in place started from, as `(step, path)`.
pub(crate) fn start_step_dir(
    plan: &Plan,
    step: u64,
    dir: &Path,
    dt: f64,
) -> Option<(u64, PathBuf)> {
    (!plan.candidates.is_empty()).then(|| {
        (
            step,
            dir.join(CHECKPOINTS_DIR)
                .join(checkpoint_dir_name(step, dt)),
        )
    })
}

/// What [`write_checkpoint`] needs besides the ranks.
pub(crate) struct Ctx<'a> {
    /// Checkpoints written by this process.
    pub(crate) written: std::cell::Cell<u32>,
    pub(crate) dir: PathBuf,
    pub(crate) network: String,
    pub(crate) m: &'a Manifest,
    pub(crate) plan: &'a Plan,
    pub(crate) level: i32,
    /// Whether each population's spikes are recorded.
    pub(crate) recorded: &'a [bool],
    /// Global id of each population's first neuron.
    pub(crate) first_ids: Vec<u64>,
    /// [`crate::run::CheckpointOptions::suspend_after_checkpoints`].
    pub(crate) suspend_after_checkpoints: Option<u64>,
}

/// Write a checkpoint of every rank at `step` (collective; see
/// [`crate::checkpoint`] for the protocol). Returns its directory.
pub(crate) fn write_checkpoint(
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
    let mut mine = Vec::with_capacity(ranks.len());
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
        mine.push(write_rank_state(&cdir, &header, &sections, ctx.level)?);
    }
    // Every rank's file is in place (the gather is a barrier).
    let mut entries: Vec<RankFileEntry> = all_gather(cluster, &mine)?.concat();
    entries.sort_by_key(|e| e.rank);
    if !entries.iter().map(|e| e.rank as usize).eq(0..n) {
        return Err(SimError::Internal(format!(
            "checkpoint at step {step}: rank files of ranks {:?} gathered, expected 0..{n}",
            entries.iter().map(|e| e.rank).collect::<Vec<_>>()
        )));
    }
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
            ranks: entries,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walltime_formats() {
        let s = |t: &str| parse_walltime(t).map(|d| d.as_secs_f64());
        assert_eq!(s("01:55:00"), Ok(6900.0));
        assert_eq!(s("1-00:00:10"), Ok(86410.0));
        assert_eq!(s("05:30"), Ok(330.0));
        assert_eq!(s("1-05:30"), Ok(86400.0 + 5.0 * 3600.0 + 1800.0));
        assert_eq!(s("2-3"), Ok(2.0 * 86400.0 + 3.0 * 3600.0));
        assert_eq!(s("90s"), Ok(90.0));
        assert_eq!(s("1.5m"), Ok(90.0));
        assert_eq!(s("2h"), Ok(7200.0));
        assert_eq!(s("0.25s"), Ok(0.25));
        for bad in [
            "",
            "90",
            "1:2:3:4",
            "00:60",
            "1-",
            "x",
            "0s",
            "-1s",
            "1:-2:03",
            "nans",
            "9999h",
            "400-00:00:00",
        ] {
            assert!(s(bad).is_err(), "{bad:?} accepted");
        }
        // A zero limit is refused for what it is, not as a bad format.
        assert!(s("0s").unwrap_err().contains("positive"));
        assert!(s("00:00:00").unwrap_err().contains("positive"));
    }

    #[test]
    fn hash_hex_and_u64_bytes() {
        let h = hash_bytes("000102030405060708090a0b0c0d0eff");
        assert_eq!(h[1], 1);
        assert_eq!(h[15], 0xff);
        let v = [1u64, u64::MAX, 42];
        assert_eq!(bytes_to_u64s(&u64s_to_bytes(&v)), Some(v.to_vec()));
        assert_eq!(bytes_to_u64s(&[1, 2, 3]), None);
    }
}
