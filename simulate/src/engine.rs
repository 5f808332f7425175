//! One rank's network in memory and the time-driven step loop (CPU backend).
//!
//! Epoch structure: time advances in *intervals* of `D` steps, `D` = the
//! smallest delay of the network (the communication interval). Within an
//! interval every neuron is updated step by step; the spikes of the interval
//! are delivered at its end. A spike emitted in step `s` with delay `d`
//! steps arrives in the update of step `s + d >= interval end`, so delivering
//! late never changes what a neuron sees.
//!
//! Synaptic input is accumulated in integer fixed point (the weights stored
//! in the shard, `i64` sums), so the sum does not depend on the order in
//! which spikes are delivered: threads and ranks cannot change it. Floating
//! point is used only inside the neuron update.
//!
//! # Workers
//!
//! The rank's local neurons are split into contiguous ranges, one per member
//! of a persistent `Team` of threads (the calling thread and `threads - 1`
//! others), balanced by expected work (neuron updates, per-chunk set-up,
//! synaptic events) at population-chunk granularity. A worker owns
//! everything of its range (the neuron states and its input queues) but
//! the Poisson words, which any member of the team may compute ahead while
//! it would otherwise wait (see `pool`). One job per interval, one wake-up
//! of the team (for a rank alone in its run, one job for many intervals:
//! see [`Engine::run_alone`]):
//!
//! * [`Engine::deliver`] only records the interval's spikes (own and
//!   received); the next [`Engine::update`] job has every worker first go
//!   through all of them and queue the part of each spike's row that
//!   targets its own neurons, into memory no other thread touches (no
//!   atomics, no locks). A row is sorted by target (the shard's canonical
//!   order), so that part is one contiguous run; its bounds are found once,
//!   at start, for every row and worker;
//! * then each worker advances its neurons through the interval's steps on
//!   its own (nothing a neuron reads within an interval is written by
//!   another worker), collecting spikes per step; the engine concatenates
//!   them in worker order, which is local-index order.
//!
//! Input queues (the ring buffer): `slots = max_delay + 1` queues per
//! worker; queue `t % slots` holds the `(target, weight)` of the synaptic
//! events arriving in step `t`, appended in delivery order. The update of
//! step `t` sums them per neuron into the excitatory (weight >= 0) and
//! inhibitory (weight < 0) input (`i64`, so the order of addition cannot
//! matter) and empties the queue. Appending is sequential and the sums stay
//! in cache, where a dense ring of `slots x neurons` cells would be written
//! at random and read row by row from memory; the checkpoint still holds the
//! dense ring (each cell the sum of its queued events), so the saved state
//! is the same for every backend and worker count. Where the delays (nearly)
//! all agree (the balanced network: one delay), a worker keeps a dense ring
//! of `slots` rows of its neurons' sums instead (a row: the excitatory sums,
//! then the inhibitory ones): each spike's run of synapses then adds, in
//! target order, into one or two rows that stay in cache, which beats
//! queueing the events (balanced network at 11,250 neurons: 2.7 s per
//! biological second against 4.2 on dev-2c).
//!
//! A step goes through a worker's chunks in pieces of `PIECE` neurons: the
//! Poisson counts of the piece, its input sums converted to pA (and zeroed),
//! then its neuron updates, so that what one stage writes is still in L1
//! when the next reads it. The excitatory and inhibitory sums lie in
//! separate runs so that each conversion is one vector loop (AVX-512 DQ
//! converts 8 `i64` at once; AVX2 has no such instruction).
//!
//! # Checkpoints
//!
//! [`Engine::save_state`] and [`Engine::restore_state`] capture everything the
//! future of a rank depends on, and are only called at the end of an
//! interval, after [`Engine::deliver`]: every spike emitted so far has then
//! been delivered into the ring buffers (on this rank and, through the
//! exchange, on every other), so **no spike is in flight** and none needs to
//! be saved. The state is the step counter, the neuron state (per
//! population, in local order) and the ring buffers (the queued input as
//! dense rows in order of arrival step, starting with the current step, so
//! the layout does not depend on where the ring's start happens to be, nor
//! on the number of workers). The Poisson drive and spike generators are pure functions of
//! (seed, neuron, step) and hold no state; the Poisson words computed ahead
//! are dropped on restore.
//!
//! Interval boundaries need not be multiples of the interval: any split of
//! the steps into pieces of at most `D` steps gives the same results, since
//! a spike emitted in step `s` of a piece that ends at `e` arrives at
//! `s + d >= s + D >= e` and input sums do not depend on delivery order.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use snn_formats::checkpoint::Section;
use snn_formats::model::Model;
use snn_formats::shard::ArchivedShardData;
use snn_formats::Shard;

use crate::input::{generator_steps, initial_v_m};
use crate::layout::{self, PoissonDrive};
use crate::neuron::{self, Block};
use crate::pool::PoissonPool;
use crate::team::{Idle, StepBarrier, Team};
use crate::{state, SimError};

/// Neurons per chunk (a chunk is a piece of one population within one
/// worker's range: the unit of neuron state and Poisson words).
const CHUNK: usize = 1024;
/// Neurons whose input is converted and updated at once (the scratch
/// vectors of a step hold one piece).
const PIECE: usize = 256;
/// Neurons per unit of the Poisson pool (a divisor of `PIECE`): an idle
/// member's unit of work, about 0.7 us on dev-2c. Units of 64 (a member
/// busy with one then starts the next job sooner) measured slower on the
/// 10 % microcircuit: 0.139 s per biological second against 0.132 (median
/// of 8 alternating runs).
const UNIT: usize = 256;

enum Dynamics {
    Neurons(Box<Block>),
    Generator(Vec<u64>),
}

struct Chunk {
    pop: usize,
    /// First local index.
    start: usize,
    len: usize,
    dynamics: Dynamics,
    /// The pool unit of the chunk's first `UNIT` neurons (neurons
    /// `k UNIT..(k + 1) UNIT`: unit `unit0 + k`), if the population has a
    /// Poisson drive.
    unit0: usize,
}

/// What one worker owns: a contiguous range of local neurons.
struct Worker {
    /// Index (= team member).
    index: usize,
    /// First local index.
    start: usize,
    /// Neurons.
    len: usize,
    chunks: Vec<Chunk>,
    /// The delivered input waiting for its arrival step.
    input: Input,
    /// Input of the current step, pA, and Poisson counts (scratch of one
    /// piece of a chunk, `PIECE` neurons).
    in_ex: Vec<f64>,
    in_in: Vec<f64>,
    counts: Vec<u32>,
    /// Spikes (local indices, increasing) of each step of the current
    /// update, and scratch for one chunk's.
    spikes: Vec<Vec<u32>>,
    chunk_spikes: Vec<u32>,
    /// Synapses met by a delivery whose target is not this worker's
    /// (a row out of canonical order: a damaged shard).
    misrouted: u64,
    /// [`Engine::run_alone`]: the worker's spikes `(step, local index)` of
    /// the call, and the synaptic events it delivered (counted ones).
    history: Vec<(u64, u32)>,
    events: u64,
}

/// A worker's spikes `(step, local index)` of one interval, posted for
/// the others by [`Engine::run_alone`]: interval `i` of a call in list
/// `i % 2`.
///
/// Protocol: list `i % 2` of worker `v` is written only by `v`'s member, in
/// interval `i`, before it arrives at the interval's barrier (round `i +
/// 1`); every member reads it after passing that barrier and before it
/// arrives at the next one; `v` writes the list again only in interval
/// `i + 2`, after passing the next barrier, which every reader has
/// reached by then. After the job the caller reads the last interval's
/// lists (`Team::run` has returned: every member is done).
#[repr(align(64))]
struct Posted([UnsafeCell<Vec<(u64, u32)>>; 2]);

// SAFETY: the lists are written and read only as the protocol above says:
// a write never overlaps a read or another write of the same list, and the
// barrier's release/acquire ordering (or `Team::run`'s) makes each write
// visible to the reads after it.
unsafe impl Sync for Posted {}

/// A worker's delivered input, waiting for its arrival step (targets
/// relative to the worker's first neuron; weights >= 0 excitatory, < 0
/// inhibitory; see the module documentation for when each is used).
enum Input {
    /// `queue[t % slots]` holds the `(target, weight)` of the events
    /// arriving in step `t`; `acc` sums those of the current step, the
    /// `len` excitatory sums, then the `len` inhibitory ones; zero between
    /// steps.
    Queue {
        queue: Vec<Vec<(u32, i32)>>,
        acc: Vec<i64>,
    },
    /// `slots` rows of `2 len` sums (the `len` excitatory ones, then the
    /// `len` inhibitory ones): row `t % slots` is the input arriving in
    /// step `t`.
    Ring(Vec<i64>),
}

/// The read-only parts of a step that every worker shares.
struct StepCtx<'a> {
    d: &'a ArchivedShardData,
    poisson: &'a [Option<PoissonDrive>],
    pool: &'a PoissonPool,
    slots: u64,
    weight_scale: f64,
    /// Per worker, for [`Engine::run_alone`].
    posted: &'a [Posted],
    barrier: &'a StepBarrier,
}

impl Worker {
    /// Advance this worker's neurons through steps `t0..t0 + n`, leaving
    /// the spikes of step `t0 + k` in `spikes[k]`: with AVX-512 or AVX2
    /// where the CPU has them (the neuron updates, Poisson counts and input
    /// conversions then run 8 or 4 neurons per instruction; the same IEEE
    /// operations in the same order, so the same bits).
    fn steps(&mut self, cx: &StepCtx, t0: u64, n: usize) {
        if self.spikes.len() < n {
            self.spikes.resize_with(n, Vec::new);
        }
        #[cfg(target_arch = "x86_64")]
        {
            use snn_kernels::models::{simd, Simd};
            match simd() {
                // SAFETY: `simd` reports AVX-512 only where the CPU has
                // these features, the only requirement of `steps_avx512`.
                Simd::Avx512 => unsafe { self.steps_avx512(cx, t0, n) },
                // SAFETY: `simd` reports AVX2 only where the CPU has it, the
                // only requirement of `steps_avx2`.
                Simd::Avx2 => unsafe { self.steps_avx2(cx, t0, n) },
                Simd::Scalar => {
                    for k in 0..n {
                        self.step(cx, t0 + k as u64, k);
                    }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        for k in 0..n {
            self.step(cx, t0 + k as u64, k);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx2")]
    fn steps_avx512(&mut self, cx: &StepCtx, t0: u64, n: usize) {
        for k in 0..n {
            self.step(cx, t0 + k as u64, k);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn steps_avx2(&mut self, cx: &StepCtx, t0: u64, n: usize) {
        for k in 0..n {
            self.step(cx, t0 + k as u64, k);
        }
    }

    /// Advance this worker's neurons by one step `t`, leaving its spikes in
    /// `spikes[k]`.
    #[inline(always)]
    fn step(&mut self, cx: &StepCtx, t: u64, k: usize) {
        let slot = (t % cx.slots) as usize;
        cx.pool.set_progress(self.index, t);
        let Worker {
            start,
            len,
            chunks,
            input,
            in_ex,
            in_in,
            counts,
            spikes,
            chunk_spikes,
            ..
        } = self;
        let len = *len;
        // The input arriving now, per neuron: excitatory sums, then
        // inhibitory ones.
        let row = match input {
            Input::Queue { queue, acc } => {
                // Summed from the events (`acc` stays in cache).
                let arriving = &mut queue[slot];
                for &(target, w) in arriving.iter() {
                    acc[usize::from(w < 0) * len + target as usize] += w as i64;
                }
                arriving.clear();
                &mut acc[..]
            }
            Input::Ring(ring) => &mut ring[2 * slot * len..2 * (slot + 1) * len],
        };
        let (row_ex, row_in) = row.split_at_mut(len);
        let out = &mut spikes[k];
        out.clear();
        let scale = cx.weight_scale;
        for c in chunks.iter_mut() {
            let drive = cx.poisson[c.pop].as_ref();
            // The block and word of the emission step whose input arrives
            // now.
            let word = drive.filter(|p| t >= p.delay_steps).map(|p| {
                (
                    p,
                    (t - p.delay_steps) >> 2,
                    ((t - p.delay_steps) & 3) as usize,
                )
            });
            chunk_spikes.clear();
            let first = c.start - *start;
            // Piece by piece, so that the counts and converted inputs are
            // still in L1 when the update reads them.
            for a in (0..c.len).step_by(PIECE) {
                let m = PIECE.min(c.len - a);
                let ex = &mut row_ex[first + a..first + a + m];
                let inh = &mut row_in[first + a..first + a + m];
                let (ie, ii) = (&mut in_ex[..m], &mut in_in[..m]);
                // The Poisson input is added as the receptor's sums are
                // converted; the drive's receptor is fixed by the sign of
                // its weight.
                let mut drive = None;
                if let Some((p, block, w)) = word {
                    let counts = &mut counts[..m];
                    for (j, part) in counts.chunks_mut(UNIT).enumerate() {
                        let unit = c.unit0 + a / UNIT + j;
                        // SAFETY: this worker owns the unit (of its
                        // chunk), has published step `t` (whose block
                        // this is) and drops the words right here.
                        let words = unsafe { cx.pool.words(unit, block, w) };
                        p.table.sample_all(words, part);
                    }
                    drive = Some((&*counts, p.weight_fixed));
                }
                let convert = |cells: &mut [i64], x: &mut [f64], add: Option<(&[u32], i32)>| {
                    match add {
                        Some((counts, wf)) => {
                            for ((cell, x), &k) in cells.iter_mut().zip(x.iter_mut()).zip(counts) {
                                // A count is below 2^31 (the table's
                                // length), so both factors are 32-bit.
                                *x = (*cell + i64::from(k as i32) * i64::from(wf)) as f64 * scale;
                                *cell = 0;
                            }
                        }
                        None => {
                            for (cell, x) in cells.iter_mut().zip(x.iter_mut()) {
                                *x = *cell as f64 * scale;
                                *cell = 0;
                            }
                        }
                    }
                };
                let inhibitory_drive = drive.is_some_and(|(_, wf)| wf < 0);
                convert(ex, ie, drive.filter(|_| !inhibitory_drive));
                convert(inh, ii, drive.filter(|_| inhibitory_drive));
                match &mut c.dynamics {
                    Dynamics::Neurons(b) => b.step(a..a + m, ie, ii, chunk_spikes),
                    Dynamics::Generator(steps) => {
                        if a == 0 && steps.binary_search(&t).is_ok() {
                            chunk_spikes.extend(0..c.len as u32);
                        }
                    }
                }
            }
            out.extend(chunk_spikes.iter().map(|&i| c.start as u32 + i));
        }
    }

    /// Add this worker's part of the pending deliveries to its input;
    /// returns how many synapses that part holds (the worker's share of the
    /// synaptic events).
    fn deliver(&mut self, cx: &StepCtx, pending: &Pending) -> u64 {
        let (start, n, slots) = (self.start as u32, self.len as u32, cx.slots);
        let (events, misrouted) = match &mut self.input {
            Input::Queue { queue, .. } => {
                for_each_event(cx.d, pending, start, n, slots, |slot, target, w| {
                    queue[slot].push((target, w))
                })
            }
            Input::Ring(ring) => {
                let n = n as usize;
                for_each_event(cx.d, pending, start, n as u32, slots, |slot, target, w| {
                    ring[(2 * slot + usize::from(w < 0)) * n + target as usize] += w as i64
                })
            }
        };
        self.misrouted += misrouted;
        events
    }
}

/// Call `add(slot, target, weight)` for every synapse of the pending spikes
/// that targets the worker with neurons `start..start + n` (target relative
/// to `start`, slot of the arrival step); returns how many synapses the
/// worker's parts of the rows hold, and how many of them were out of place
/// (another worker's in a row's run, or a delay beyond the ring: a damaged
/// shard).
#[inline(always)]
fn for_each_event(
    d: &ArchivedShardData,
    pending: &Pending,
    start: u32,
    n: u32,
    slots: u64,
    mut add: impl FnMut(usize, u32, i32),
) -> (u64, u64) {
    let tb = d.target_bits.to_native();
    let mask = (1u32 << tb) - 1;
    let td_all = &d.syn_target_delay[..];
    let w_all = &d.syn_weight[..];
    let (mut events, mut misrouted) = (0u64, 0u64);
    // The synapses of a spike lie somewhere in a shard far larger than the
    // caches: ask for the start of each spike's part, of the first spikes
    // at once, so that their misses overlap, and of each later one a few
    // spikes ahead. Only short parts: the hardware's prefetcher follows a
    // long one, whose first miss matters little (the balanced network's
    // parts of ~5,600 synapses measured 4 % slower with the hint).
    let head = |r: Range<usize>| {
        let n = if r.len() < PREFETCH_SHORT {
            PREFETCH_HEAD
        } else {
            0
        };
        r.start..r.end.min(r.start + n)
    };
    let ahead = pending.spikes.len().min(PREFETCH_SPIKES);
    for &(_, row) in &pending.spikes[..ahead] {
        let r = head(pending.part(row as usize));
        prefetch(&td_all[r.clone()]);
        prefetch(&w_all[r]);
    }
    for (j, &(s, row)) in pending.spikes.iter().enumerate() {
        let base = s % slots;
        if let Some(&(_, next)) = pending.spikes.get(j + ahead) {
            let r = head(pending.part(next as usize));
            prefetch(&td_all[r.clone()]);
            prefetch(&w_all[r]);
        }
        let r = pending.part(row as usize);
        events += r.len() as u64;
        for (td, w) in td_all[r.clone()].iter().zip(&w_all[r]) {
            let td = td.to_native();
            let target = (td & mask).wrapping_sub(start);
            let mut slot = base + (td >> tb) as u64;
            if slot >= slots {
                slot -= slots;
            }
            if target >= n || slot >= slots {
                misrouted += 1;
                continue;
            }
            add(slot as usize, target, w.to_native());
        }
    }
    (events, misrouted)
}

/// A delivery asks for the first `PREFETCH_HEAD` synapses (two cache lines
/// of each array) of the parts of `PREFETCH_SPIKES` spikes ahead (see
/// `for_each_event`) ...
const PREFETCH_HEAD: usize = 32;
/// ... if the part is shorter than this.
const PREFETCH_SHORT: usize = 2048;
const PREFETCH_SPIKES: usize = 8;

/// Ask for the cache lines of `x` (a hint: no effect on results).
#[inline(always)]
fn prefetch<T>(x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = std::mem::size_of_val(x);
        let p = x.as_ptr() as *const i8;
        for off in (0..bytes).step_by(64) {
            // SAFETY: `p + off` lies inside `x`; a prefetch reads nothing
            // and cannot fault.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.add(off))
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Deliveries waiting for the next wake-up of the workers, and where each
/// worker's part of a row is.
struct Pending<'a> {
    d: &'a ArchivedShardData,
    /// `(step, row)`.
    spikes: &'a [(u64, u32)],
    /// See [`Engine::splits`].
    splits: &'a [u32],
    n_workers: usize,
    worker: usize,
}

impl Pending<'_> {
    /// The synapses of `row` that target this worker's neurons (the row is
    /// sorted by target).
    #[inline]
    fn part(&self, row: usize) -> Range<usize> {
        let a = self.d.row_ptr[row].to_native() as usize;
        let b = self.d.row_ptr[row + 1].to_native() as usize;
        let nw = self.n_workers;
        let at = |j: usize| match j {
            0 => a,
            j if j == nw => b,
            j => a + self.splits[row * (nw - 1) + j - 1] as usize,
        };
        at(self.worker)..at(self.worker + 1)
    }
}

/// One rank's simulation state.
pub struct Engine {
    model: Model,
    shard: Shard,
    n_local: usize,
    workers: Vec<Mutex<Worker>>,
    /// Per row, the offsets (from the row's start) where the synapses of
    /// workers `1..n_workers` begin: `n_workers - 1` entries per row.
    splits: Vec<u32>,
    /// Deliveries not made yet: `(step, row)` (see [`Engine::deliver`]).
    pending: Vec<(u64, u32)>,
    team: Team,
    slots: u64,
    weight_scale: f64,
    step: u64,
    interval: u64,
    poisson: Vec<Option<PoissonDrive>>,
    /// The Poisson words, computed ahead by idle members of the team.
    pool: Arc<PoissonPool>,
    /// See [`Engine::run_alone`].
    posted: Vec<Posted>,
    barrier: StepBarrier,
    /// Population of each local neuron's chunk range (by population).
    pop_first_local: Vec<usize>,
    /// Per local neuron: range into `send_entries`.
    send_ptr: Vec<u32>,
    /// (destination rank, position in that rank's send table).
    send_entries: Vec<(u32, u32)>,
    /// Per source rank: the source-local indices of this rank's images of
    /// it, increasing (= that rank's send table to this one); used to decode
    /// collective exchanges, which carry source-local indices.
    needs_local: Vec<Vec<u32>>,
}

/// Spikes of one step: local neuron indices in increasing order.
#[derive(Clone, Debug, Default)]
pub struct StepSpikes {
    /// The step.
    pub step: u64,
    /// Local indices.
    pub local: Vec<u32>,
}

/// Lock a worker (a poisoned lock only means a panic in an earlier job,
/// which was propagated then).
fn lock(w: &Mutex<Worker>) -> MutexGuard<'_, Worker> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Set up rank state from a shard: neuron state with initial potentials
    /// drawn from `seed`, empty ring buffers, step 0. The work is split
    /// over `rayon::current_num_threads()` workers (at most one per 64
    /// neurons).
    pub fn new(
        model: Model,
        shard: Shard,
        min_delay_steps: u32,
        max_delay_steps: u32,
        seed: u64,
    ) -> Result<Engine, SimError> {
        let d = shard.data();
        let n_local = d.local_to_global.len();
        let dt = model.dt_ms;
        let slots = max_delay_steps.max(1) as u64 + 1;
        if d.max_delay_steps.to_native() >= slots as u32 {
            return Err(SimError::Internal(format!(
                "the shard's delays reach {} steps, beyond the network's {max_delay_steps}",
                d.max_delay_steps.to_native()
            )));
        }
        let ranges = layout::population_ranges(&model, d)?;
        let pop_first_local = ranges.iter().map(|r| r.start).collect();
        let n_workers = rayon::current_num_threads()
            .min(n_local.div_ceil(64))
            .max(1);
        let cuts = worker_cuts(&model, &ranges, n_workers);
        let poisson: Vec<Option<PoissonDrive>> = model
            .populations
            .iter()
            .map(|p| layout::poisson_drive(&model, p))
            .collect();
        let mut pool = PoissonPool::new(seed, cuts.len() - 1, 0);
        // A dense ring where the delays (nearly) all agree: each spike's
        // run of synapses then adds into one or two rows, in target order.
        let widest = cuts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as u64;
        let dense = d
            .max_delay_steps
            .to_native()
            .saturating_sub(d.min_delay_steps.to_native())
            < DENSE_RING_DELAY_SPREAD
            && 16 * slots * widest <= DENSE_RING_MAX_BYTES;
        let mut workers = Vec::with_capacity(cuts.len() - 1);
        for (index, wr) in cuts.windows(2).enumerate() {
            let (ws, we) = (wr[0], wr[1]);
            let mut chunks = Vec::new();
            for ((pi, p), r) in model.populations.iter().enumerate().zip(&ranges) {
                let (a, l) = (r.start.max(ws), r.end.min(we));
                let mut s = a;
                while s < l {
                    let len = CHUNK.min(l - s);
                    let gid0 = |i: usize| d.local_to_global[s + i].to_native() - p.first_id;
                    let v0 = |i: usize| initial_v_m(seed, pi, gid0(i), &p.v_m_init);
                    let dynamics = match neuron::block(&p.params, dt, len, v0) {
                        Some(b) => Dynamics::Neurons(Box::new(b)),
                        None => Dynamics::Generator(generator_steps(&p.params.spike_times, dt)),
                    };
                    let mut unit0 = usize::MAX;
                    if let Some(drive) = &poisson[pi] {
                        for a in (s..s + len).step_by(UNIT) {
                            let gids: Vec<u64> = (a..(a + UNIT).min(s + len))
                                .map(|l| d.local_to_global[l].to_native())
                                .collect();
                            let u = pool.add_unit(index, drive.delay_steps, &gids);
                            unit0 = unit0.min(u);
                        }
                    }
                    chunks.push(Chunk {
                        pop: pi,
                        start: s,
                        len,
                        dynamics,
                        unit0,
                    });
                    s += len;
                }
            }
            let len = we - ws;
            let input = if dense {
                Input::Ring(vec![0; 2 * slots as usize * len])
            } else {
                Input::Queue {
                    queue: vec![Vec::new(); slots as usize],
                    acc: vec![0; 2 * len],
                }
            };
            workers.push(Mutex::new(Worker {
                index,
                start: ws,
                len,
                chunks,
                input,
                in_ex: vec![0.0; PIECE],
                in_in: vec![0.0; PIECE],
                counts: vec![0; PIECE],
                spikes: Vec::new(),
                chunk_spikes: Vec::with_capacity(CHUNK),
                misrouted: 0,
                history: Vec::new(),
                events: 0,
            }));
        }
        let starts: Vec<u32> = workers.iter().map(|w| lock(w).start as u32).collect();
        let splits = row_splits(d, &starts[1..]);
        let pool = Arc::new(pool);
        let idle: Idle = {
            let pool = pool.clone();
            Arc::new(move |member, stop| pool.idle(member, stop))
        };
        let n_workers = workers.len();
        let team = Team::new(n_workers, Some(idle)).map_err(|e| {
            SimError::Invalid(format!(
                "cannot start {} worker threads: {e}",
                workers.len()
            ))
        })?;
        let frac = model.weight_frac_bits;
        let weight_scale = 1.0 / (2f64).powi(frac as i32);
        let layout::Routing {
            send_ptr,
            send_entries,
            needs_local,
        } = layout::Routing::new(&model, d)?;
        Ok(Engine {
            model,
            shard,
            n_local,
            workers,
            splits,
            pending: Vec::new(),
            team,
            slots,
            weight_scale,
            step: 0,
            interval: min_delay_steps.max(1) as u64,
            poisson,
            pool,
            posted: (0..n_workers)
                .map(|_| Posted([UnsafeCell::new(Vec::new()), UnsafeCell::new(Vec::new())]))
                .collect(),
            barrier: StepBarrier::new(n_workers),
            pop_first_local,
            send_ptr,
            send_entries,
            needs_local,
        })
    }

    /// Collective variant of [`Engine::route`]: local deliveries, and one
    /// list for all ranks with `offset << 32 | local index` of every spike
    /// that some other rank needs.
    pub fn route_collective(
        &self,
        spikes: &[StepSpikes],
        interval_start: u64,
    ) -> (Vec<(u64, u32)>, Vec<u64>) {
        let mut local = Vec::new();
        let mut out = Vec::new();
        for s in spikes {
            let off = (s.step - interval_start) << 32;
            for &l in &s.local {
                local.push((s.step, l));
                if self.send_ptr[l as usize] != self.send_ptr[l as usize + 1] {
                    out.push(off | l as u64);
                }
            }
        }
        (local, out)
    }

    /// Decode a collective list from rank `from`: keep the spikes of neurons
    /// this rank has images of.
    pub fn receive_collective(
        &self,
        from: u32,
        packed: &[u64],
        interval_start: u64,
        out: &mut Vec<(u64, u32)>,
    ) -> Result<(), SimError> {
        let d = self.shard.data();
        let q = from as usize;
        let Some(needs) = self.needs_local.get(q) else {
            return Err(SimError::Internal(format!(
                "spikes from unknown rank {from}"
            )));
        };
        if needs.is_empty() {
            return Ok(());
        }
        let base = self.n_local as u64 + d.image_offsets[q].to_native();
        for &w in packed {
            let (off, l) = (w >> 32, (w & 0xffff_ffff) as u32);
            if off >= self.interval {
                return Err(SimError::Internal(format!(
                    "malformed spike entry from rank {from}"
                )));
            }
            if let Ok(pos) = needs.binary_search(&l) {
                out.push((interval_start + off, (base + pos as u64) as u32));
            }
        }
        Ok(())
    }

    /// Split an interval's spikes into local deliveries `(step, row)` and,
    /// per destination rank, packed wire entries `offset << 32 | position`
    /// (`offset` = step - `interval_start`, `position` in the send table).
    pub fn route(
        &self,
        spikes: &[StepSpikes],
        interval_start: u64,
        n_ranks: usize,
    ) -> (Vec<(u64, u32)>, Vec<Vec<u64>>) {
        let mut local = Vec::new();
        let mut out = vec![Vec::new(); n_ranks];
        for s in spikes {
            let off = (s.step - interval_start) << 32;
            for &l in &s.local {
                local.push((s.step, l));
                let (a, b) = (
                    self.send_ptr[l as usize] as usize,
                    self.send_ptr[l as usize + 1] as usize,
                );
                for &(q, pos) in &self.send_entries[a..b] {
                    out[q as usize].push(off | pos as u64);
                }
            }
        }
        (local, out)
    }

    /// Turn wire entries received from rank `from` into deliveries. Entries
    /// that do not fit the routing tables are an error (a peer bug or a
    /// network mismatch), never an out-of-bounds access.
    pub fn receive(
        &self,
        from: u32,
        packed: &[u64],
        interval_start: u64,
        out: &mut Vec<(u64, u32)>,
    ) -> Result<(), SimError> {
        let d = self.shard.data();
        let q = from as usize;
        if q + 1 >= d.image_offsets.len() {
            return Err(SimError::Internal(format!(
                "spikes from unknown rank {from}"
            )));
        }
        let (a, b) = (
            d.image_offsets[q].to_native(),
            d.image_offsets[q + 1].to_native(),
        );
        for &w in packed {
            let (off, pos) = (w >> 32, w & 0xffff_ffff);
            if off >= self.interval || a + pos >= b {
                return Err(SimError::Internal(format!(
                    "malformed spike entry from rank {from}"
                )));
            }
            out.push((interval_start + off, (self.n_local as u64 + a + pos) as u32));
        }
        Ok(())
    }

    /// The current step (number of steps done).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The communication interval, steps.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The shard data.
    pub fn data(&self) -> &ArchivedShardData {
        self.shard.data()
    }

    /// Local neurons.
    pub fn n_local(&self) -> usize {
        self.n_local
    }

    /// The worker owning local neuron `l`.
    fn worker_of(&self, l: usize) -> MutexGuard<'_, Worker> {
        let w = self
            .workers
            .partition_point(|w| {
                let w = lock(w);
                w.start + w.len <= l
            })
            .min(self.workers.len() - 1);
        lock(&self.workers[w])
    }

    /// Membrane potential of local neuron `l` (NaN for generators).
    pub fn v_m(&self, l: usize) -> f64 {
        let w = self.worker_of(l);
        let c = &w.chunks[w.chunks.partition_point(|c| c.start + c.len <= l)];
        match &c.dynamics {
            Dynamics::Neurons(b) => b.v_m(l - c.start),
            Dynamics::Generator(_) => f64::NAN,
        }
    }

    fn step_ctx(&self) -> StepCtx<'_> {
        StepCtx {
            d: self.shard.data(),
            poisson: &self.poisson,
            pool: &self.pool,
            slots: self.slots,
            weight_scale: self.weight_scale,
            posted: &self.posted,
            barrier: &self.barrier,
        }
    }

    /// Update `n_steps` steps (at most one interval) and return the spikes of
    /// each step. Call [`Engine::deliver`] with them (and the spikes received
    /// from other ranks) before the next interval. The deliveries pending
    /// from that call are made first, in the same wake-up of the workers
    /// (each worker adds its part of them, then updates its neurons).
    pub fn update(&mut self, n_steps: u64) -> Result<Vec<StepSpikes>, SimError> {
        debug_assert!(n_steps <= self.interval);
        let t0 = self.step;
        let k = n_steps as usize;
        let mut out: Vec<StepSpikes> = (0..k)
            .map(|i| StepSpikes {
                step: t0 + i as u64,
                local: Vec::new(),
            })
            .collect();
        self.run_workers(
            |w, cx, parts| {
                w.deliver(cx, parts);
                w.steps(cx, t0, k);
            },
            |w| {
                for (o, s) in out.iter_mut().zip(&w.spikes) {
                    o.local.extend_from_slice(s);
                }
            },
        )?;
        self.step += n_steps;
        Ok(out)
    }

    /// Run `n_steps` steps for a rank alone in its run (nothing to exchange
    /// with other ranks): the interval-by-interval work of
    /// [`Engine::update`] and [`Engine::deliver`] (with the same results,
    /// bit for bit), in one job of the team. After each interval the
    /// workers post their spikes, meet at a barrier and each delivers its
    /// part of everyone's, instead of returning to the caller, which
    /// collected, bookkept and handed them back one interval at a time
    /// (about 1 us per step on dev-2c, ~8 % of a step of the 10 %
    /// microcircuit, while the other member waited). Returns the spikes
    /// `(step, local index)` in step, then index order, and the synaptic
    /// events of their deliveries (0 unless `count_events`). The last
    /// interval's spikes are delivered by the next call, as after
    /// [`Engine::deliver`].
    pub fn run_alone(
        &mut self,
        n_steps: u64,
        count_events: bool,
    ) -> Result<(Vec<(u64, u32)>, u64), SimError> {
        let t0 = self.step;
        let iv = self.interval;
        let n_iv = n_steps.div_ceil(iv);
        if n_iv == 0 {
            return Ok((Vec::new(), 0));
        }
        self.barrier.reset();
        let mut spikes = Vec::new();
        let mut events = 0;
        self.run_workers(
            |w, cx, pending| {
                let _guard = cx.barrier.guard();
                w.deliver(cx, pending);
                w.history.clear();
                w.events = 0;
                for i in 0..n_iv {
                    let t = t0 + i * iv;
                    let k = iv.min(n_steps - i * iv) as usize;
                    w.steps(cx, t, k);
                    // SAFETY: this member writes its own list of interval
                    // `i` before arriving at the interval's barrier (the
                    // protocol of `Posted`).
                    let mine = unsafe { &mut *cx.posted[w.index].0[(i % 2) as usize].get() };
                    mine.clear();
                    for (s, local) in w.spikes[..k].iter().enumerate() {
                        mine.extend(local.iter().map(|&l| (t + s as u64, l)));
                    }
                    w.history.extend_from_slice(mine);
                    if !cx.barrier.wait(i + 1, &|stop| cx.pool.idle(w.index, stop)) {
                        // Another member panicked: `Team::run` says so.
                        return;
                    }
                    if i + 1 == n_iv {
                        break;
                    }
                    for p in cx.posted {
                        // SAFETY: read after the barrier of interval `i`
                        // and before this member arrives at the next one
                        // (the protocol of `Posted`).
                        let list = unsafe { &*p.0[(i % 2) as usize].get() };
                        let part = Pending {
                            spikes: list,
                            ..*pending
                        };
                        let events = w.deliver(cx, &part);
                        if count_events {
                            w.events += events;
                        }
                    }
                }
            },
            |w| {
                spikes.extend_from_slice(&w.history);
                events += w.events;
            },
        )?;
        self.step += n_steps;
        // Each worker's spikes are in step order; the pairs are unique, so
        // sorting them gives step, then local-index order.
        spikes.sort_unstable();
        // The last interval's spikes, delivered by the next call.
        let last = (n_iv - 1) % 2;
        let mut tail = Vec::new();
        for p in &self.posted {
            // SAFETY: `Team::run` has returned: no member touches the
            // lists now.
            tail.extend_from_slice(unsafe { &*p.0[last as usize].get() });
        }
        let tail_events = self.deliver(&tail)?;
        if count_events {
            events += tail_events;
        }
        Ok((spikes, events))
    }

    /// Deliver spikes: `(step, row)` pairs, `row` being a local neuron index
    /// or `n_local + image index` for spikes of remote neurons. Returns the
    /// number of synaptic events. The additions into the ring buffers are
    /// made by the next [`Engine::update`] (or before anything reads the
    /// ring); a row whose synapses are not in target order (a damaged shard
    /// that passed its checks) is an error then.
    pub fn deliver(&mut self, spikes: &[(u64, u32)]) -> Result<u64, SimError> {
        let d = self.shard.data();
        let n_rows = d.row_ptr.len() - 1;
        if let Some(&(_, row)) = spikes.iter().find(|&&(_, r)| r as usize >= n_rows) {
            return Err(SimError::Internal(format!(
                "delivery of row {row} of {n_rows}"
            )));
        }
        let events = spikes
            .iter()
            .map(|&(_, row)| {
                d.row_ptr[row as usize + 1].to_native() - d.row_ptr[row as usize].to_native()
            })
            .sum();
        self.pending.extend_from_slice(spikes);
        Ok(events)
    }

    /// Make the pending deliveries (before the ring is read from outside
    /// an update).
    fn flush(&mut self) -> Result<(), SimError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // (Their events were counted when they were handed in.)
        self.run_workers(
            |w, cx, parts| {
                w.deliver(cx, parts);
            },
            |_| {},
        )
    }

    /// Run `job(worker, context, pending deliveries)` on every worker at
    /// once, then `after(worker)` on each in order (one lock of each: they
    /// were last held by other cores); the pending deliveries are done
    /// afterwards.
    fn run_workers(
        &mut self,
        job: impl Fn(&mut Worker, &StepCtx, &Pending) + Sync,
        mut after: impl FnMut(&Worker),
    ) -> Result<(), SimError> {
        {
            let d = self.shard.data();
            let cx = self.step_ctx();
            let workers = &self.workers;
            let (nw, splits) = (workers.len(), &self.splits[..]);
            let spikes = &self.pending[..];
            self.team.run(&|m| {
                if let Some(w) = workers.get(m) {
                    let pending = Pending {
                        d,
                        spikes,
                        splits,
                        n_workers: nw,
                        worker: m,
                    };
                    job(&mut lock(w), &cx, &pending);
                }
            });
        }
        self.pending.clear();
        let mut misrouted = 0;
        for w in &self.workers {
            let w = lock(w);
            misrouted += w.misrouted;
            after(&w);
        }
        if misrouted > 0 {
            return Err(SimError::Format(snn_formats::FormatError::corrupt(
                self.shard.path(),
                format!(
                    "{misrouted} synapses out of target order in their rows (the shard is damaged)"
                ),
            )));
        }
        Ok(())
    }

    /// First local index of each population.
    pub fn pop_first_local(&self) -> &[usize] {
        &self.pop_first_local
    }

    /// Size of [`Engine::save_state`]'s sections, roughly, bytes.
    pub fn state_bytes(&self) -> u64 {
        let n = self.n_local as u64;
        n * (2 * 8 * self.slots + 48)
    }

    /// Ring cell `i` (`slot * n_local + local index`) of receptor `r` (0
    /// excitatory, 1 inhibitory), as the checkpoint layout numbers it: the
    /// sum of the queued input of that slot, neuron and receptor.
    fn ring_cells(&self, r: usize) -> Vec<i64> {
        let n = self.n_local;
        let mut out = vec![0i64; self.slots as usize * n];
        for w in &self.workers {
            let w = lock(w);
            match &w.input {
                Input::Queue { queue, .. } => {
                    for (slot, q) in queue.iter().enumerate() {
                        for &(target, x) in q {
                            if usize::from(x < 0) == r {
                                out[slot * n + w.start + target as usize] += x as i64;
                            }
                        }
                    }
                }
                Input::Ring(ring) => {
                    for slot in 0..self.slots as usize {
                        for j in 0..w.len {
                            out[slot * n + w.start + j] = ring[(2 * slot + r) * w.len + j];
                        }
                    }
                }
            }
        }
        out
    }

    /// The rank's dynamic state as checkpoint sections (see the module
    /// documentation): `engine/step`, `engine/layout` (`n_local`, ring
    /// slots), `engine/neurons/<population>` for each population with local
    /// neurons of a neuron model (the `to_bytes` form of the models' states,
    /// all local neurons of the population in local order), `engine/ring_ex`
    /// and `engine/ring_in` (`slots` rows of `n_local` little-endian `i64`,
    /// row `k` holding the input that arrives in step `step + k`).
    ///
    /// Call it only at the end of an interval, after [`Engine::deliver`].
    pub fn save_state(&mut self) -> Result<Vec<Section>, SimError> {
        self.flush()?;
        let mut out = state::header_sections(self.step, self.n_local, self.slots);
        let guards: Vec<MutexGuard<'_, Worker>> = self.workers.iter().map(lock).collect();
        for (pi, p) in self.model.populations.iter().enumerate() {
            let mut blocks =
                guards
                    .iter()
                    .flat_map(|w| w.chunks.iter())
                    .filter_map(|c| match &c.dynamics {
                        Dynamics::Neurons(b) if c.pop == pi => Some(b),
                        _ => None,
                    });
            let Some(mut all) = blocks.next().map(|b| (**b).clone()) else {
                continue;
            };
            for b in blocks {
                all.append(b);
            }
            let bytes = all.state_to_bytes();
            out.push(Section::new(format!("engine/neurons/{}", p.name), bytes));
        }
        drop(guards);
        for (r, name) in state::RING_SECTIONS.into_iter().enumerate() {
            let cells = self.ring_cells(r);
            out.push(state::ring_section(
                name,
                self.step,
                self.slots,
                self.n_local,
                |i| cells[i],
            ));
        }
        Ok(out)
    }

    /// Replace the dynamic state by one saved with [`Engine::save_state`]
    /// (by any backend, from the same shard); `get` returns a section by
    /// name. Errors if a section is missing or does not fit this rank (the
    /// engine may then be partly overwritten and must be discarded).
    pub fn restore_state<'s>(
        &mut self,
        get: &dyn Fn(&str) -> Option<&'s [u8]>,
    ) -> Result<(), SimError> {
        let bad = |what: &str| state::bad_state(what);
        let (step, rings) = state::read_header(get, self.n_local, self.slots)?;
        // The restored state replaces everything, deliveries not made yet
        // included.
        self.pending.clear();
        let mut guards: Vec<MutexGuard<'_, Worker>> = self.workers.iter().map(lock).collect();
        for (pi, p) in self.model.populations.iter().enumerate() {
            let name = format!("engine/neurons/{}", p.name);
            let idx: Vec<(usize, usize)> = guards
                .iter()
                .enumerate()
                .flat_map(|(w, g)| {
                    g.chunks
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.pop == pi)
                        .map(move |(i, _)| (w, i))
                })
                .collect();
            let total: usize = idx.iter().map(|&(w, i)| guards[w].chunks[i].len).sum();
            let Some(&(w0, i0)) = idx.first() else {
                continue;
            };
            let Dynamics::Neurons(first) = &guards[w0].chunks[i0].dynamics else {
                continue;
            };
            let b = get(&name).ok_or_else(|| bad(&format!("section {name} missing")))?;
            let all = first.with_state_bytes(b, total).ok_or_else(|| {
                bad(&format!(
                    "section {name} is not a state of {total} {:?} neurons",
                    p.params.model
                ))
            })?;
            let mut at = 0;
            for &(w, i) in &idx {
                let c = &mut guards[w].chunks[i];
                c.dynamics = Dynamics::Neurons(Box::new(all.range(at..at + c.len)));
                at += c.len;
            }
        }
        let n = self.n_local;
        for g in guards.iter_mut() {
            match &mut g.input {
                Input::Queue { queue, acc } => {
                    queue.iter_mut().for_each(Vec::clear);
                    acc.fill(0);
                }
                Input::Ring(ring) => ring.fill(0),
            }
        }
        let mut wrong_sign = false;
        for (r, b) in rings.into_iter().enumerate() {
            state::unpack_ring(b, step, self.slots, n, |i, v| {
                if v == 0 {
                    return;
                }
                // Excitatory sums are >= 0, inhibitory ones < 0: anything
                // else is no state this network can be in.
                if (v < 0) != (r == 1) {
                    wrong_sign = true;
                    return;
                }
                let (slot, l) = (i / n.max(1), i % n.max(1));
                if let Some(g) = guards
                    .iter_mut()
                    .find(|g| l >= g.start && l < g.start + g.len)
                {
                    let target = (l - g.start) as u32;
                    let len = g.len;
                    match &mut g.input {
                        Input::Queue { queue, .. } => {
                            // A sum beyond i32 as several entries of its sign.
                            let mut rest = v;
                            while rest != 0 {
                                let part = rest.clamp(i32::MIN as i64, i32::MAX as i64);
                                queue[slot].push((target, part as i32));
                                rest -= part;
                            }
                        }
                        Input::Ring(ring) => {
                            ring[(2 * slot + r) * len + target as usize] = v;
                        }
                    }
                }
            });
        }
        if wrong_sign {
            return Err(bad(
                "engine/ring_ex holds a negative or engine/ring_in a positive input",
            ));
        }
        drop(guards);
        self.pool.reset(step);
        self.step = step;
        Ok(())
    }
}

/// A dense ring is used when the shard's longest and shortest delays are
/// less than this many steps apart ...
const DENSE_RING_DELAY_SPREAD: u32 = 4;
/// ... and a worker's ring takes at most this many bytes.
const DENSE_RING_MAX_BYTES: u64 = 256 << 20;

/// Work of a population chunk, in neuron updates: this much per chunk
/// besides its neurons (Poisson words, input sums and the update are set up
/// per chunk).
const CHUNK_COST: f64 = 48.0;
/// Work of a synaptic event, in neuron updates (queued, then summed
/// into its target's input, against a vectorised update).
const EVENT_COST: f64 = 2.0;
/// Rate assumed for sources without `mean_rate_Hz`, Hz.
const DEFAULT_RATE_HZ: f64 = 5.0;

/// The first local index of each worker's range, and `n_local` last:
/// contiguous ranges of about equal expected work (updates, chunk set-up
/// and synaptic events at the sources' `mean_rate_Hz`), cut at multiples
/// of 32 neurons within a population (whole groups of vectorised Poisson
/// words) or between populations.
fn worker_cuts(model: &Model, ranges: &[Range<usize>], n_workers: usize) -> Vec<usize> {
    let n_local = ranges.iter().map(|r| r.end).max().unwrap_or(0);
    let step_s = model.dt_ms * 1e-3;
    let mut per_neuron = vec![1.0f64; model.populations.len()];
    for pr in &model.projections {
        let rate = model.populations[pr.source]
            .mean_rate_hz
            .unwrap_or(DEFAULT_RATE_HZ);
        per_neuron[pr.target] += EVENT_COST * pr.expected_indegree(model) * rate * step_s;
    }
    // (local index, work before it) at every allowed cut.
    let mut points = Vec::new();
    let mut work = 0.0;
    for (p, r) in ranges.iter().enumerate() {
        let mut at = r.start;
        while at < r.end {
            points.push((at, work));
            let next = (at + 32).min(r.end);
            work += per_neuron[p] * (next - at) as f64;
            if (at - r.start) % CHUNK == 0 {
                work += CHUNK_COST;
            }
            at = next;
        }
    }
    points.push((n_local, work));
    let mut cuts: Vec<usize> = (0..n_workers)
        .map(|w| {
            let want = work * w as f64 / n_workers as f64;
            points[points
                .partition_point(|&(_, x)| x < want)
                .min(points.len() - 1)]
            .0
        })
        .collect();
    cuts[0] = 0;
    cuts.push(n_local);
    cuts.dedup();
    if cuts.len() < 2 {
        // No local neurons: one worker with nothing to do.
        cuts = vec![0, n_local];
    }
    cuts
}

/// For every row of the shard, where (offset from the row start) the
/// synapses targeting each of `starts` (the first local index of workers
/// `1..`) begin: the row's synapses are sorted by target.
fn row_splits(d: &ArchivedShardData, starts: &[u32]) -> Vec<u32> {
    if starts.is_empty() {
        return Vec::new();
    }
    let tb = d.target_bits.to_native();
    let mask = (1u32 << tb) - 1;
    let n_rows = d.row_ptr.len() - 1;
    let mut out = Vec::with_capacity(n_rows * starts.len());
    for row in 0..n_rows {
        let a = d.row_ptr[row].to_native() as usize;
        let b = d.row_ptr[row + 1].to_native() as usize;
        let syn = &d.syn_target_delay[a..b];
        for &s in starts {
            out.push(syn.partition_point(|td| (td.to_native() & mask) < s) as u32);
        }
    }
    out
}
