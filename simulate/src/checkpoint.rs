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

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::SimError;

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

/// Pass a value computed on the root to every process (as JSON through
/// [`Cluster::share_path`]). The root's error is returned on the root; the
/// other processes get an error pointing to it.
pub(crate) fn share<T: Serialize + DeserializeOwned>(
    cluster: &dyn Cluster,
    root_value: Option<Result<T, SimError>>,
) -> Result<T, SimError> {
    let (text, err) = match root_value {
        Some(Ok(v)) => match serde_json::to_string(&v) {
            Ok(t) => (Some(PathBuf::from(t)), None),
            Err(e) => (None, Some(SimError::Internal(e.to_string()))),
        },
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let shared = cluster.share_path(text);
    if let Some(e) = err {
        return Err(e);
    }
    let shared = shared.map_err(|_| {
        SimError::Invalid("rank 0 could not prepare the run (see its error)".into())
    })?;
    serde_json::from_str(&shared.to_string_lossy())
        .map_err(|e| SimError::Internal(format!("shared plan: {e}")))
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
