//! The Poisson words of the CPU engine, computed ahead by whichever member of
//! the team would otherwise wait.
//!
//! The Poisson drive of a neuron in a step needs one uniform word, a
//! quarter of a Philox block (see `input::poisson_words`): about a quarter
//! of the engine's work on the microcircuit, and a pure function of (seed,
//! neuron, emission-step block) that no spike changes. So it need not be
//! computed by the neuron's worker, nor in the step that reads it. The pool
//! holds the words in *units* (at most `UNIT` neurons of one population
//! chunk, read by one worker) for [`BLOCKS`] consecutive blocks
//! of four steps each. A member of the team that waits, for the others to
//! finish the interval or for the next one to start, fills units whose next
//! blocks are missing (the `Team`'s idle work); a worker that finds the block
//! it needs missing computes it itself. The words are the same whoever
//! computes them, so the spikes are too: what changes is that a member that
//! would wait at the end of a step does part of a slower member's work
//! instead (the two vCPUs of a small machine often run at different speeds,
//! and the steps of the microcircuit end every 0.1 ms).
//!
//! # Protocol
//!
//! * Each unit has a `busy` flag (held by whoever writes its words) and
//!   `done`, one past the last block written: block `b < done` is in slot
//!   `b % BLOCKS`, written before `done` was raised (`Release`, read with
//!   `Acquire`).
//! * Each worker publishes the step it is in (`progress`) before it reads
//!   anything of that step; it never goes back to an earlier block.
//! * Whoever writes (holding `busy`) writes only blocks
//!   `b <= floor + BLOCKS - 1`, `floor` the block of the owner's published
//!   step: the owner still reads only blocks `>= floor`, and none of those
//!   shares a slot with `b` but `b` itself, which the owner reads only once
//!   `done > b`. A writer never skips a block at or after `floor`, so when
//!   the owner finds `done > b` for the block `b` it needs, the slot holds
//!   `b`.
//! * [`PoissonPool::reset`] (a restored step, which may lie before the
//!   current one) takes every `busy` flag before it clears `done`, while no
//!   job runs.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::input::{poisson_gid_words, poisson_words_x32_to};
use crate::team::Padded;

/// Blocks held per unit: the one being read and two ahead (eight steps of
/// work to even out the members with).
pub(crate) const BLOCKS: u64 = 3;

/// [`Unit::partial`] when no block is partly written.
const NO_PARTIAL: (u64, usize) = (u64::MAX, 0);

/// A worker's current step, alone in its cache line.
type Progress = Padded<AtomicU64>;

/// One unit: a piece of one population chunk and its words.
#[repr(align(64))]
struct Unit {
    /// The worker that reads the unit.
    owner: usize,
    /// Delay of the drive, steps: step `t` reads the words of the emission
    /// step `t - delay_steps`, in block `(t - delay_steps) / 4`.
    delay_steps: u64,
    /// Neurons.
    len: usize,
    /// The Philox counter words of the neurons, in groups of 32 (the last
    /// padded, see `gid_words`).
    gid_words: Vec<[[u32; 32]; 2]>,
    /// Held by whoever writes `words`.
    busy: AtomicBool,
    /// One past the last block written (see the module documentation).
    done: AtomicU64,
    /// A block whose writing was broken off, and how many groups of 32
    /// neurons of it are in its slot: `(block, groups)`, `(u64::MAX, 0)`
    /// for none. Read and written only by the holder of `busy`; every write
    /// into `words` updates it, so it never claims groups another block
    /// has overwritten since.
    partial: UnsafeCell<(u64, usize)>,
    /// `BLOCKS` slots of four words per neuron: word `w` of neuron `i` of
    /// the block in slot `s` at `(4 s + w) len + i`.
    words: Box<[UnsafeCell<u32>]>,
}

// SAFETY: `words` and `partial` are the only fields not `Sync`. `words` is
// written only by the holder of `busy`, in a slot that its owner cannot be
// reading (the protocol in the module documentation), and read only after
// `done` (raised with `Release` after the writes, read with `Acquire`)
// shows the block there; `partial` is touched only by the holder of
// `busy`. `busy` is taken with `Acquire` and released with `Release`, so
// successive holders are ordered.
unsafe impl Sync for Unit {}

/// See the module documentation.
pub(crate) struct PoissonPool {
    seed: u64,
    units: Vec<Unit>,
    /// Per worker: the step it is in (or the next it will run).
    progress: Vec<Progress>,
    /// The sum of `progress` when an idle scan last found nothing to do
    /// (the scan is repeated only when a worker has moved on).
    idle_seen: AtomicU64,
    /// Per worker: the range of its units (they are added worker by
    /// worker).
    owned: Vec<Range<usize>>,
    /// Per worker: where its next idle scan of its own units, and of the
    /// others', starts (round robin).
    cursors: Vec<Cursors>,
}

/// A member's two idle-scan cursors, alone in their cache line.
type Cursors = Padded<[AtomicUsize; 2]>;

impl PoissonPool {
    /// An empty pool for `n_workers` workers starting at `step`, drive seed
    /// `seed`.
    pub(crate) fn new(seed: u64, n_workers: usize, step: u64) -> PoissonPool {
        PoissonPool {
            seed,
            units: Vec::new(),
            progress: (0..n_workers)
                .map(|_| Padded(AtomicU64::new(step)))
                .collect(),
            idle_seen: AtomicU64::new(u64::MAX),
            owned: vec![0..0; n_workers],
            cursors: (0..n_workers)
                .map(|_| Padded([AtomicUsize::new(0), AtomicUsize::new(0)]))
                .collect(),
        }
    }

    /// Add a unit read by worker `owner`, for the neurons with global ids
    /// `gids` (at most `UNIT`) and a drive delayed by `delay_steps`;
    /// returns its index. Units are added worker by worker (`owner` never
    /// decreases).
    pub(crate) fn add_unit(&mut self, owner: usize, delay_steps: u64, gids: &[u64]) -> usize {
        let len = gids.len();
        let at = self.units.len();
        assert!(self.owned[owner].end == at || self.owned[owner].is_empty());
        assert!(self.owned[owner + 1..].iter().all(|r| r.is_empty()));
        if self.owned[owner].is_empty() {
            self.owned[owner] = at..at;
        }
        self.owned[owner].end = at + 1;
        self.units.push(Unit {
            owner,
            delay_steps,
            len,
            gid_words: gid_words(gids),
            busy: AtomicBool::new(false),
            done: AtomicU64::new(0),
            partial: UnsafeCell::new(NO_PARTIAL),
            words: (0..BLOCKS as usize * 4 * len)
                .map(|_| UnsafeCell::new(0))
                .collect(),
        });
        self.units.len() - 1
    }

    /// Worker `w` is in step `t` (call before it reads that step's words).
    #[inline]
    pub(crate) fn set_progress(&self, w: usize, t: u64) {
        self.progress[w].0.store(t, Ordering::Release);
    }

    /// Every worker is at step `step`, and no words are held (after a
    /// restore). Call only while no job runs.
    pub(crate) fn reset(&self, step: u64) {
        for p in &self.progress {
            p.0.store(step, Ordering::Release);
        }
        for u in &self.units {
            // An idle member may be writing the unit: wait for it.
            while u
                .busy
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                std::hint::spin_loop();
            }
            u.done.store(0, Ordering::Relaxed);
            // SAFETY: `busy` is held.
            unsafe { *u.partial.get() = NO_PARTIAL };
            u.busy.store(false, Ordering::Release);
        }
        self.idle_seen.store(u64::MAX, Ordering::Relaxed);
    }

    /// Word `word` (0..4) of block `block` of unit `u`'s neurons, computed
    /// first if no one has.
    ///
    /// # Safety
    ///
    /// Only the unit's owner may call it, for the block of the step it has
    /// published ([`PoissonPool::set_progress`]), and it must drop the
    /// slice before it publishes a later step (after which the slot may be
    /// written again).
    // Inlined, so that the caller's use of the words runs with its vector
    // level.
    #[inline(always)]
    pub(crate) unsafe fn words(&self, u: usize, block: u64, word: usize) -> &[u32] {
        let unit = &self.units[u];
        if unit.done.load(Ordering::Acquire) <= block {
            self.make(unit, block);
        }
        let slot = (block % BLOCKS) as usize;
        let n = unit.len;
        assert!(word < 4 && (4 * slot + word + 1) * n <= unit.words.len());
        // SAFETY: in bounds (just checked). `done > block`, read with
        // `Acquire` here or in `make`, shows the block written in its slot,
        // and no writer touches that slot before the owner (the caller)
        // publishes a later block's step, by which time the slice is gone
        // (the caller's guarantee; the protocol in the module
        // documentation).
        unsafe {
            std::slice::from_raw_parts(
                UnsafeCell::raw_get(unit.words.as_ptr()).add((4 * slot + word) * n) as *const u32,
                n,
            )
        }
    }

    /// Make sure block `block` of `unit` is written: write it, or wait for
    /// the member that is writing it.
    #[cold]
    #[inline(never)]
    fn make(&self, unit: &Unit, block: u64) {
        loop {
            if unit
                .busy
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                if unit.done.load(Ordering::Relaxed) <= block {
                    // Blocks before `block` are not read any more.
                    // SAFETY: `busy` is held, and `block` is the owner's
                    // current block, the floor of the protocol.
                    unsafe { self.fill(unit, block, None) };
                }
                unit.busy.store(false, Ordering::Release);
                return;
            }
            if unit.done.load(Ordering::Acquire) > block {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Write block `b` of `unit` into its slot and raise `done` to `b + 1`;
    /// with `stop`, break off (returning false) once it says so, checked
    /// after each group of 32 neurons (about 60 ns of work): a member's
    /// idle work then delays the start of its next job, or the return of
    /// [`crate::team::Team::run`], by one group, not by a whole unit
    /// (measured: ~0.45 us each, per step of the 10 % microcircuit). A
    /// broken-off block is continued where it stopped by the next writer
    /// of the same block.
    ///
    /// # Safety
    ///
    /// The caller holds `unit.busy`, and `b` is at most `BLOCKS - 1` blocks
    /// after the owner's published block and not before it (the protocol
    /// in the module documentation).
    unsafe fn fill(&self, unit: &Unit, b: u64, stop: Option<&dyn Fn() -> bool>) -> bool {
        let n = unit.len;
        let slot = (b % BLOCKS) as usize;
        assert!((4 * slot + 4) * n <= unit.words.len());
        // SAFETY: in bounds (just checked); the caller holds `busy`, the
        // only licence to write, and the owner reads nothing of this slot
        // before `done` shows `b` (the caller's guarantee), so no other
        // reference to these cells exists while this one lives.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(
                UnsafeCell::raw_get(unit.words.as_ptr()).add(4 * slot * n),
                4 * n,
            )
        };
        let (w0, rest) = dst.split_at_mut(n);
        let (w1, rest) = rest.split_at_mut(n);
        let (w2, w3) = rest.split_at_mut(n);
        // SAFETY: the caller holds `busy`, the only licence to touch
        // `partial`.
        let partial = unsafe { &mut *unit.partial.get() };
        let first = if partial.0 == b { partial.1 } else { 0 };
        for (g, gw) in unit.gid_words.iter().enumerate().skip(first) {
            if g > first && stop.is_some_and(|f| f()) {
                *partial = (b, g);
                return false;
            }
            let at = 32 * g..(32 * g + 32).min(n);
            let mut out = [&mut *w0, &mut *w1, &mut *w2, &mut *w3].map(|w| &mut w[at.clone()]);
            poisson_words_x32_to(self.seed, gw, b, &mut out);
        }
        *partial = NO_PARTIAL;
        unit.done.store(b + 1, Ordering::Release);
        true
    }

    /// Idle work of team member (= worker) `member`: write one missing
    /// block of some unit, at most `BLOCKS - 1` ahead of its owner, or a
    /// part of it until `stop` says so (which also ends a scan for one);
    /// returns whether there was one. The member's own units come first
    /// (their words then stay in its core's cache), then the others', each
    /// in round robin.
    pub(crate) fn idle(&self, member: usize, stop: &dyn Fn() -> bool) -> bool {
        let n = self.units.len();
        if n == 0 {
            return false;
        }
        let stamp = self
            .progress
            .iter()
            .fold(0u64, |s, p| s.wrapping_add(p.0.load(Ordering::Relaxed)));
        if self.idle_seen.load(Ordering::Relaxed) == stamp {
            return false;
        }
        let Some(cursors) = self.cursors.get(member) else {
            return false;
        };
        let own = self.owned[member].clone();
        let others = n - own.len();
        for (pass, len) in [own.len(), others].into_iter().enumerate() {
            let start = cursors[pass].load(Ordering::Relaxed);
            for k in 0..len {
                let j = (start + k) % len;
                // A scan touches a cache line of each unit, most of the
                // others' in another core: a long one (the multi-area model
                // has hundreds of units) must not hold up the end of the
                // wait. The next scan goes on from here.
                if k % 4 == 3 && stop() {
                    cursors[pass].store(j, Ordering::Relaxed);
                    return false;
                }
                // The `j`th unit of the pass: of the member's own, or of
                // everyone else's (those before and after its own).
                let i = match pass {
                    0 => own.start + j,
                    _ if j < own.start => j,
                    _ => j + own.len(),
                };
                if self.try_fill(&self.units[i], stop) {
                    cursors[pass].store(j + 1, Ordering::Relaxed);
                    return true;
                }
            }
        }
        self.idle_seen.store(stamp, Ordering::Relaxed);
        false
    }

    /// Write the next block of `u` (or a part of it, until `stop` says so)
    /// if it is less than `BLOCKS` ahead of its owner and no one else is
    /// writing the unit; returns whether it wrote anything.
    fn try_fill(&self, u: &Unit, stop: &dyn Fn() -> bool) -> bool {
        let floor = |u: &Unit| {
            let t = self.progress[u.owner].0.load(Ordering::Acquire);
            t.saturating_sub(u.delay_steps) >> 2
        };
        let f = floor(u);
        if u.done.load(Ordering::Relaxed).max(f) >= f + BLOCKS
            || u.busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        // Again, under the flag (the owner may have moved on).
        let f = floor(u);
        let b = u.done.load(Ordering::Relaxed).max(f);
        let worked = b < f + BLOCKS;
        if worked {
            // SAFETY: `busy` is held, and `f <= b < f + BLOCKS` with `f`
            // the owner's published block.
            unsafe { self.fill(u, b, Some(stop)) };
        }
        u.busy.store(false, Ordering::Release);
        worked
    }
}

/// The [`poisson_gid_words`] of `gids` in groups of 32, the last padded
/// with copies of the last id (their words are computed and dropped, still
/// faster than one by one).
fn gid_words(gids: &[u64]) -> Vec<[[u32; 32]; 2]> {
    gids.chunks(32)
        .map(|g| {
            let last = g.last().copied().unwrap_or(0);
            let padded: [u64; 32] = std::array::from_fn(|j| *g.get(j).unwrap_or(&last));
            poisson_gid_words(&padded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::poisson_word;
    use std::sync::Arc;

    /// Words read by the owner equal `poisson_word`, whether an idle
    /// member (another thread, racing, breaking its fills off now and then)
    /// or the owner wrote them, and across a reset to an earlier step.
    #[test]
    fn owner_reads_the_right_words_while_others_fill() {
        let seed = 0x5eed;
        let gids: Vec<Vec<u64>> = vec![(100..137).collect(), (500..756).collect(), vec![9]];
        let delays = [0u64, 3, 15];
        let mut pool = PoissonPool::new(seed, 2, 0);
        let units: Vec<usize> = gids
            .iter()
            .zip(delays)
            .enumerate()
            .map(|(i, (g, d))| pool.add_unit(i / 2, d, g))
            .collect();
        let pool = Arc::new(pool);
        let stop = Arc::new(AtomicBool::new(false));
        let helper = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut made = 0u64;
                // Told to stop at every other check: scans end early, and
                // blocks are broken off after one or two groups and
                // continued later, by this thread or by the owner.
                let checks = AtomicUsize::new(0);
                let now_and_then = || checks.fetch_add(1, Ordering::Relaxed) % 2 == 1;
                while !stop.load(Ordering::Relaxed) {
                    made += u64::from(pool.idle(1, &now_and_then));
                }
                made
            })
        };
        // The helper fills every unit's three blocks ahead of step 0 (the
        // steps below then read words it wrote, whatever the scheduling).
        let t0 = std::time::Instant::now();
        while pool
            .units
            .iter()
            .any(|u| u.done.load(Ordering::Acquire) < BLOCKS)
        {
            assert!(t0.elapsed().as_secs() < 60, "the idle member wrote nothing");
            std::thread::yield_now();
        }
        let mut checked = 0u64;
        for pass in 0..2 {
            if pass == 1 {
                // Back to an earlier step, as a restore may.
                pool.reset(40);
            }
            let first = if pass == 0 { 0 } else { 40 };
            for t in first..first + 400u64 {
                for w in 0..2 {
                    pool.set_progress(w, t);
                }
                for (k, (&u, d)) in units.iter().zip(delays).enumerate() {
                    if t < d {
                        continue;
                    }
                    let e = t - d;
                    // SAFETY: this thread is every unit's owner here, at
                    // the step it published, and drops the slice before
                    // the next.
                    let words = unsafe { pool.words(u, e >> 2, (e & 3) as usize) };
                    for (i, &x) in words.iter().enumerate() {
                        assert_eq!(x, poisson_word(seed, gids[k][i], e), "t {t} unit {k}");
                        checked += 1;
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let made = helper.join().unwrap();
        assert!(checked > 200_000);
        assert!(made >= 3 * BLOCKS);
    }
}
