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
//! in the shard, `i64` sums, atomic adds), so the sum does not depend on the
//! order in which spikes are delivered: threads and ranks cannot change it.
//! Floating point is used only inside the neuron update.
//!
//! Ring buffer: `slots = max_delay + 1` rows of `n_local` `i64` per receptor
//! (excitatory: weight >= 0, inhibitory: weight < 0); row `t % slots` holds
//! the input arriving in step `t` and is cleared when read.
//!
//! # Checkpoints
//!
//! [`Engine::save_state`] and [`Engine::restore_state`] capture everything the
//! future of a rank depends on, and are only called at the end of an
//! interval, after [`Engine::deliver`]: every spike emitted so far has then
//! been delivered into the ring buffers (on this rank and, through the
//! exchange, on every other), so **no spike is in flight** and none needs to
//! be saved. The state is the step counter, the neuron state (per
//! population, in local order) and the ring buffers (rows in order of
//! arrival step, starting with the current step, so the layout does not
//! depend on where the ring's start happens to be). The Poisson drive and
//! spike generators are pure functions of (seed, neuron, step) and hold no
//! state; the cache of Poisson words is simply invalidated on restore.
//!
//! Interval boundaries need not be multiples of the interval: any split of
//! the steps into pieces of at most `D` steps gives the same results, since
//! a spike emitted in step `s` of a piece that ends at `e` arrives at
//! `s + d >= s + D >= e` and input sums do not depend on delivery order.

use std::sync::atomic::{AtomicI64, Ordering};

use rayon::prelude::*;
use snn_formats::checkpoint::Section;
use snn_formats::model::Model;
use snn_formats::shard::ArchivedShardData;
use snn_formats::Shard;

use crate::input::{generator_steps, initial_v_m, poisson_words};
use crate::layout::{self, PoissonDrive};
use crate::neuron::Block;
use crate::{state, SimError};

/// Neurons per parallel work item.
const CHUNK: usize = 1024;

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
    in_ex: Vec<f64>,
    in_in: Vec<f64>,
    spikes: Vec<u32>,
    /// Poisson words of each neuron for the emission-step block
    /// `poisson_block` (see `input::poisson_words`).
    poisson_cache: Vec<[u32; 4]>,
    poisson_block: u64,
}

/// One rank's simulation state.
pub struct Engine {
    model: Model,
    shard: Shard,
    seed: u64,
    n_local: usize,
    chunks: Vec<Chunk>,
    ring_ex: Vec<AtomicI64>,
    ring_in: Vec<AtomicI64>,
    slots: u64,
    weight_scale: f64,
    step: u64,
    interval: u64,
    poisson: Vec<Option<PoissonDrive>>,
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

impl Engine {
    /// Set up rank state from a shard: neuron state with initial potentials
    /// drawn from `seed`, empty ring buffers, step 0.
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
        // Chunks: contiguous local ranges inside one population.
        let mut chunks = Vec::new();
        let ranges = layout::population_ranges(&model, d)?;
        let pop_first_local = ranges.iter().map(|r| r.start).collect();
        for ((pi, p), r) in model.populations.iter().enumerate().zip(&ranges) {
            let (a, l) = (r.start, r.end);
            let mut s = a;
            while s < l {
                let len = CHUNK.min(l - s);
                let gid0 = |i: usize| d.local_to_global[s + i].to_native() - p.first_id;
                let v0 = |i: usize| initial_v_m(seed, pi, gid0(i), &p.v_m_init);
                let dynamics = match Block::new(&p.params, dt, len, v0) {
                    Some(b) => Dynamics::Neurons(Box::new(b)),
                    None => Dynamics::Generator(generator_steps(&p.params.spike_times, dt)),
                };
                chunks.push(Chunk {
                    pop: pi,
                    start: s,
                    len,
                    dynamics,
                    in_ex: vec![0.0; len],
                    in_in: vec![0.0; len],
                    spikes: Vec::new(),
                    poisson_cache: Vec::new(),
                    poisson_block: u64::MAX,
                });
                s += len;
            }
        }
        let frac = model.weight_frac_bits;
        let weight_scale = 1.0 / (2f64).powi(frac as i32);
        let poisson = model
            .populations
            .iter()
            .map(|p| layout::poisson_drive(&model, p))
            .collect();
        let layout::Routing {
            send_ptr,
            send_entries,
            needs_local,
        } = layout::Routing::new(&model, d)?;
        let slots = max_delay_steps.max(1) as u64 + 1;
        let ring = |n: usize| (0..n).map(|_| AtomicI64::new(0)).collect::<Vec<_>>();
        Ok(Engine {
            ring_ex: ring(slots as usize * n_local),
            ring_in: ring(slots as usize * n_local),
            model,
            shard,
            seed,
            n_local,
            chunks,
            slots,
            weight_scale,
            step: 0,
            interval: min_delay_steps.max(1) as u64,
            poisson,
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

    /// Membrane potential of local neuron `l` (NaN for generators).
    pub fn v_m(&self, l: usize) -> f64 {
        let c = &self.chunks[self.chunks.partition_point(|c| c.start + c.len <= l)];
        match &c.dynamics {
            Dynamics::Neurons(b) => b.v_m(l - c.start),
            Dynamics::Generator(_) => f64::NAN,
        }
    }

    /// Advance one step; returns the local indices that spiked.
    fn update_step(&mut self) -> StepSpikes {
        let t = self.step;
        let n = self.n_local;
        let slot = (t % self.slots) as usize;
        let row_ex = &self.ring_ex[slot * n..(slot + 1) * n];
        let row_in = &self.ring_in[slot * n..(slot + 1) * n];
        let scale = self.weight_scale;
        let seed = self.seed;
        let poisson = &self.poisson;
        let d = self.shard.data();
        self.chunks.par_iter_mut().with_min_len(4).for_each(|c| {
            c.spikes.clear();
            let drive = poisson[c.pop].as_ref();
            // Refill the cache of Poisson words every fourth emission step.
            let mut word = 0usize;
            if let Some(p) = drive {
                if t >= p.delay_steps {
                    let e = t - p.delay_steps;
                    if c.poisson_block != e >> 2 {
                        c.poisson_block = e >> 2;
                        c.poisson_cache.clear();
                        c.poisson_cache.extend((0..c.len).map(|i| {
                            poisson_words(seed, d.local_to_global[c.start + i].to_native(), e >> 2)
                        }));
                    }
                    word = (e & 3) as usize;
                }
            }
            for i in 0..c.len {
                let l = c.start + i;
                // No delivery runs during the update phase, so a plain load
                // and store (no locked exchange) is enough.
                let mut ex = row_ex[l].load(Ordering::Relaxed);
                let mut inh = row_in[l].load(Ordering::Relaxed);
                row_ex[l].store(0, Ordering::Relaxed);
                row_in[l].store(0, Ordering::Relaxed);
                if let Some(p) = drive {
                    if t >= p.delay_steps {
                        let k = p.table.sample(c.poisson_cache[i][word]) as i64;
                        if p.weight_fixed >= 0 {
                            ex += k * p.weight_fixed;
                        } else {
                            inh += k * p.weight_fixed;
                        }
                    }
                }
                c.in_ex[i] = ex as f64 * scale;
                c.in_in[i] = inh as f64 * scale;
            }
            match &mut c.dynamics {
                Dynamics::Neurons(b) => b.step(0..c.len, &c.in_ex, &c.in_in, &mut c.spikes),
                Dynamics::Generator(steps) => {
                    if steps.binary_search(&t).is_ok() {
                        c.spikes.extend(0..c.len as u32);
                    }
                }
            }
        });
        let mut local = Vec::new();
        for c in &self.chunks {
            local.extend(c.spikes.iter().map(|&i| c.start as u32 + i));
        }
        self.step += 1;
        StepSpikes { step: t, local }
    }

    /// Update `n_steps` steps (at most one interval) and return the spikes of
    /// each step. Call [`Engine::deliver`] with them (and the spikes received
    /// from other ranks) before the next interval.
    pub fn update(&mut self, n_steps: u64) -> Vec<StepSpikes> {
        debug_assert!(n_steps <= self.interval);
        (0..n_steps).map(|_| self.update_step()).collect()
    }

    /// Deliver spikes: `(step, row)` pairs, `row` being a local neuron index
    /// or `n_local + image index` for spikes of remote neurons. Returns the
    /// number of synaptic events.
    pub fn deliver(&self, spikes: &[(u64, u32)]) -> u64 {
        let d = self.shard.data();
        let tb = d.target_bits.to_native();
        let mask = (1u32 << tb) - 1;
        let n = self.n_local;
        let slots = self.slots;
        let (ring_ex, ring_in) = (&self.ring_ex, &self.ring_in);
        let one = |&(s, row): &(u64, u32)| {
            let a = d.row_ptr[row as usize].to_native() as usize;
            let b = d.row_ptr[row as usize + 1].to_native() as usize;
            for i in a..b {
                let td = d.syn_target_delay[i].to_native();
                let target = (td & mask) as usize;
                let slot = ((s + (td >> tb) as u64) % slots) as usize;
                let w = d.syn_weight[i].to_native() as i64;
                let cell = if w >= 0 {
                    &ring_ex[slot * n + target]
                } else {
                    &ring_in[slot * n + target]
                };
                cell.fetch_add(w, Ordering::Relaxed);
            }
        };
        if spikes.len() < 64 {
            spikes.iter().for_each(one);
        } else {
            spikes.par_iter().with_min_len(16).for_each(one);
        }
        spikes
            .iter()
            .map(|&(_, row)| {
                d.row_ptr[row as usize + 1].to_native() - d.row_ptr[row as usize].to_native()
            })
            .sum()
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

    /// The rank's dynamic state as checkpoint sections (see the module
    /// documentation): `engine/step`, `engine/layout` (`n_local`, ring
    /// slots), `engine/neurons/<population>` for each population with local
    /// neurons of a neuron model (the `to_bytes` form of the models' states,
    /// all local neurons of the population in local order), `engine/ring_ex`
    /// and `engine/ring_in` (`slots` rows of `n_local` little-endian `i64`,
    /// row `k` holding the input that arrives in step `step + k`).
    ///
    /// Call it only at the end of an interval, after [`Engine::deliver`].
    pub fn save_state(&self) -> Vec<Section> {
        let mut out = state::header_sections(self.step, self.n_local, self.slots);
        for (pi, p) in self.model.populations.iter().enumerate() {
            let mut blocks = self.chunks.iter().filter_map(|c| match &c.dynamics {
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
        for (name, ring) in state::RING_SECTIONS
            .into_iter()
            .zip([&self.ring_ex, &self.ring_in])
        {
            out.push(state::ring_section(
                name,
                self.step,
                self.slots,
                self.n_local,
                |i| ring[i].load(Ordering::Relaxed),
            ));
        }
        out
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
        for (pi, p) in self.model.populations.iter().enumerate() {
            let name = format!("engine/neurons/{}", p.name);
            let idx: Vec<usize> = (0..self.chunks.len())
                .filter(|&i| self.chunks[i].pop == pi)
                .collect();
            let total: usize = idx.iter().map(|&i| self.chunks[i].len).sum();
            let Some(Dynamics::Neurons(first)) = idx.first().map(|&i| &self.chunks[i].dynamics)
            else {
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
            for &i in &idx {
                let c = &mut self.chunks[i];
                c.dynamics = Dynamics::Neurons(Box::new(all.range(at..at + c.len)));
                at += c.len;
            }
        }
        for (ring, b) in [&self.ring_ex, &self.ring_in].into_iter().zip(rings) {
            state::unpack_ring(b, step, self.slots, self.n_local, |i, v| {
                ring[i].store(v, Ordering::Relaxed)
            });
        }
        for c in &mut self.chunks {
            c.poisson_block = u64::MAX;
            c.poisson_cache.clear();
        }
        self.step = step;
        Ok(())
    }
}
