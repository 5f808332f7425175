//! The wall-time limit of a piece of a run (`--walltime`, SLURM's job end):
//! the processes agree every few intervals whether the time left still
//! covers the next intervals, a checkpoint and the margin; when it does not,
//! the run stops at a checkpoint (exit status 75, resumable).

use std::time::Instant;

use crate::cluster::Cluster;

/// The limit and the collective check of it.
pub(crate) struct Deadline {
    at: Instant,
    /// Seconds kept free before `at` besides the checkpoint.
    margin_s: f64,
    /// The longest a checkpoint of this process took (or its estimate).
    checkpoint_s: f64,
    /// Intervals between checks, agreed at each check (about 1/50 of the
    /// time left, at most 2 s).
    sync_every: u64,
    since_sync: u64,
    sync_clock: Instant,
}

impl Deadline {
    /// The limit `at` (none: `None`), with `margin_s` or by default 1 % of
    /// the time from `t_start` (at most 60 s); a checkpoint of
    /// `state_bytes` is first estimated at 200 MB/s.
    pub(crate) fn new(
        at: Option<Instant>,
        margin_s: Option<f64>,
        t_start: Instant,
        state_bytes: f64,
    ) -> Option<Deadline> {
        let at = at?;
        let margin_s = margin_s.unwrap_or_else(|| {
            (0.01 * at.saturating_duration_since(t_start).as_secs_f64()).min(60.0)
        });
        Some(Deadline {
            at,
            margin_s,
            checkpoint_s: state_bytes / 200e6 + 0.05,
            sync_every: 1,
            since_sync: 0,
            sync_clock: Instant::now(),
        })
    }

    /// A checkpoint took `s` seconds.
    pub(crate) fn checkpoint_took(&mut self, s: f64) {
        self.checkpoint_s = self.checkpoint_s.max(s);
    }

    /// Called before every interval, or every call of several intervals
    /// (`intervals_done`: such calls by this process so far); every
    /// `sync_every` of them all processes agree (a collective) whether the
    /// run must stop now to checkpoint before the limit.
    pub(crate) fn must_stop(&mut self, cluster: &dyn Cluster, intervals_done: u64) -> bool {
        self.since_sync += 1;
        if intervals_done == 0 || self.since_sync < self.sync_every {
            return false;
        }
        let now = Instant::now();
        let per_interval = self.sync_clock.elapsed().as_secs_f64() / self.since_sync as f64;
        let remaining = self.at.saturating_duration_since(now).as_secs_f64();
        let need =
            self.margin_s + 2.0 * self.checkpoint_s + 2.0 * per_interval * self.sync_every as f64;
        let proposal = if cluster.is_root() {
            let target = (remaining / 50.0).clamp(0.01, 2.0);
            ((target / per_interval.max(1e-9)) as u64).max(1)
        } else {
            0
        };
        let mut v = [(remaining <= need) as u64, proposal];
        cluster.sum(&mut v);
        self.since_sync = 0;
        self.sync_clock = now;
        self.sync_every = v[1].max(1);
        v[0] > 0
    }
}
