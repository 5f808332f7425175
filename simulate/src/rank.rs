//! One rank's simulation behind one interface, whatever the backend: the
//! CPU [`Engine`] ([`CpuRank`]) or the GPU engine
//! ([`crate::gpu::GpuEngine`]).
//!
//! The run loop ([`crate::run`]) and the communicators
//! ([`crate::cluster`]) drive a [`RankEngine`] interval by interval:
//!
//! 1. [`RankEngine::update`]: the steps of the interval; the spikes stay in
//!    the engine (on the GPU: in device memory);
//! 2. [`RankEngine::pack`] / [`RankEngine::pack_collective`]: the wire
//!    entries for other ranks (only with more than one rank);
//! 3. [`RankEngine::receive`] / [`RankEngine::receive_collective`]: the
//!    entries other ranks sent;
//! 4. [`RankEngine::deliver`]: own spikes and received ones into the ring
//!    buffers.
//!
//! Recording is configured once ([`RankEngine::set_recording`]); the engine
//! keeps what it records and hands it over in chunks
//! ([`RankEngine::take_recorded`]), sorted by (step, local index), so the
//! spike files do not depend on the backend.

use snn_formats::checkpoint::Section;
use snn_formats::shard::ArchivedShardData;

use crate::engine::{Engine, StepSpikes};
use crate::SimError;

/// Recorded data handed over by [`RankEngine::take_recorded`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    /// Spikes as (step, local index), sorted.
    pub spikes: Vec<(u64, u32)>,
    /// V_m samples: one row per recorded step (in order), one column per
    /// recorded neuron (in the order given to
    /// [`RankEngine::set_recording`]).
    pub vm: Vec<f64>,
}

/// One rank's simulation, interval by interval. See the module
/// documentation.
pub trait RankEngine: Send {
    /// The backend, for the summary (`cpu`, `cuda`).
    fn backend(&self) -> String;
    /// The device, for the summary (its description; `None` on the CPU).
    fn device(&self) -> Option<String> {
        None
    }
    /// The most device memory the rank's buffers have held, bytes (0 on
    /// the CPU).
    fn device_memory_bytes(&self) -> u64 {
        0
    }
    /// The shard's data (routing tables, local-to-global map).
    fn data(&self) -> &ArchivedShardData;
    /// Local neurons.
    fn n_local(&self) -> usize;
    /// The current step (steps done).
    fn step(&self) -> u64;
    /// The communication interval, steps.
    fn interval(&self) -> u64;
    /// First local index of each population.
    fn pop_first_local(&self) -> &[usize];
    /// Size of [`RankEngine::save_state`]'s sections, roughly, bytes.
    fn state_bytes(&self) -> u64;
    /// Record the spikes of steps `>= from_step` and the membrane potential
    /// of local neurons `vm_locals` after every step `s >= from_step`.
    fn set_recording(&mut self, from_step: u64, vm_locals: &[usize]) -> Result<(), SimError>;
    /// The membrane potential of local neurons `locals` now (NaN for a
    /// generator), as a recorded row holds it.
    fn v_m_now(&mut self, locals: &[usize]) -> Result<Vec<f64>, SimError>;
    /// Update `n_steps` steps (at most one interval).
    fn update(&mut self, n_steps: u64) -> Result<(), SimError>;
    /// Run `n_steps` steps (any number) of a rank that is alone in its run
    /// (no other rank to exchange spikes with): interval by interval,
    /// [`RankEngine::update`] then [`RankEngine::deliver`], or anything
    /// with the same results.
    fn run_alone(&mut self, n_steps: u64, count_events: bool) -> Result<(), SimError> {
        by_intervals(self, n_steps, count_events)
    }
    /// Point-to-point wire entries of the interval for each of `n_ranks`
    /// ranks (`offset << 32 | position in the send table`, as
    /// [`Engine::route`]; order within a list unspecified).
    fn pack(&mut self, n_ranks: usize) -> Result<Vec<Vec<u64>>, SimError>;
    /// Collective wire entries of the interval (`offset << 32 | local`, as
    /// [`Engine::route_collective`]; order unspecified).
    fn pack_collective(&mut self) -> Result<Vec<u64>, SimError>;
    /// Entries `packed` from rank `from` (as [`RankEngine::pack`] made them
    /// for this rank), delivered by the next [`RankEngine::deliver`].
    fn receive(&mut self, from: u32, packed: &[u64]) -> Result<(), SimError>;
    /// Collective entries from rank `from`.
    fn receive_collective(&mut self, from: u32, packed: &[u64]) -> Result<(), SimError>;
    /// Deliver the interval's own spikes and the received ones; their
    /// synaptic events are counted when `count_events`.
    fn deliver(&mut self, count_events: bool) -> Result<(), SimError>;
    /// Synaptic events counted so far.
    fn events(&mut self) -> Result<u64, SimError>;
    /// Set the event count (restoring a checkpoint).
    fn set_events(&mut self, events: u64) -> Result<(), SimError>;
    /// The recorded data not handed over yet: all of it when `flush`,
    /// otherwise possibly nothing (a backend may keep it for a bigger
    /// chunk).
    fn take_recorded(&mut self, flush: bool) -> Result<Recorded, SimError>;
    /// The dynamic state as checkpoint sections ([`Engine::save_state`]'s
    /// sections, the same bytes on every backend).
    fn save_state(&mut self) -> Result<Vec<Section>, SimError>;
    /// Restore a state saved by [`RankEngine::save_state`] of any backend.
    fn restore_state<'s>(&mut self, get: &dyn Fn(&str) -> Option<&'s [u8]>)
        -> Result<(), SimError>;
}

/// [`RankEngine::run_alone`] interval by interval.
fn by_intervals<R: RankEngine + ?Sized>(
    rank: &mut R,
    n_steps: u64,
    count_events: bool,
) -> Result<(), SimError> {
    let mut done = 0;
    while done < n_steps {
        let n = rank.interval().min(n_steps - done);
        rank.update(n)?;
        rank.deliver(count_events)?;
        done += n;
    }
    Ok(())
}

/// The CPU backend: an [`Engine`] with the interval's spikes and received
/// deliveries.
pub struct CpuRank {
    engine: Engine,
    spikes: Vec<StepSpikes>,
    interval_start: u64,
    received: Vec<(u64, u32)>,
    events: u64,
    record_from: u64,
    vm_locals: Vec<usize>,
    recorded: Recorded,
}

impl CpuRank {
    /// A rank around `engine`.
    pub fn new(engine: Engine) -> CpuRank {
        CpuRank {
            interval_start: engine.step(),
            engine,
            spikes: Vec::new(),
            received: Vec::new(),
            events: 0,
            record_from: u64::MAX,
            vm_locals: Vec::new(),
            recorded: Recorded::default(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl RankEngine for CpuRank {
    fn backend(&self) -> String {
        "cpu".into()
    }
    fn data(&self) -> &ArchivedShardData {
        self.engine.data()
    }
    fn n_local(&self) -> usize {
        self.engine.n_local()
    }
    fn step(&self) -> u64 {
        self.engine.step()
    }
    fn interval(&self) -> u64 {
        self.engine.interval()
    }
    fn pop_first_local(&self) -> &[usize] {
        self.engine.pop_first_local()
    }
    fn state_bytes(&self) -> u64 {
        self.engine.state_bytes()
    }
    fn set_recording(&mut self, from_step: u64, vm_locals: &[usize]) -> Result<(), SimError> {
        if let Some(&l) = vm_locals.iter().find(|&&l| l >= self.engine.n_local()) {
            return Err(SimError::Internal(format!(
                "V_m recording of local neuron {l} of {}",
                self.engine.n_local()
            )));
        }
        self.record_from = from_step;
        self.vm_locals = vm_locals.to_vec();
        Ok(())
    }
    fn v_m_now(&mut self, locals: &[usize]) -> Result<Vec<f64>, SimError> {
        let n = self.engine.n_local();
        locals
            .iter()
            .map(|&l| {
                if l < n {
                    Ok(self.engine.v_m(l))
                } else {
                    Err(SimError::Internal(format!(
                        "V_m of local neuron {l} of {n}"
                    )))
                }
            })
            .collect()
    }
    fn update(&mut self, n_steps: u64) -> Result<(), SimError> {
        self.interval_start = self.engine.step();
        self.received.clear();
        self.spikes = if self.vm_locals.is_empty() {
            self.engine.update(n_steps)?
        } else {
            let mut all = Vec::with_capacity(n_steps as usize);
            for _ in 0..n_steps {
                all.extend(self.engine.update(1)?);
                if self.engine.step() > self.record_from {
                    let e = &self.engine;
                    self.recorded
                        .vm
                        .extend(self.vm_locals.iter().map(|&l| e.v_m(l)));
                }
            }
            all
        };
        for s in &self.spikes {
            if s.step >= self.record_from {
                self.recorded
                    .spikes
                    .extend(s.local.iter().map(|&l| (s.step, l)));
            }
        }
        Ok(())
    }
    fn run_alone(&mut self, n_steps: u64, count_events: bool) -> Result<(), SimError> {
        if !self.vm_locals.is_empty() {
            // V_m is sampled after every step: interval by interval.
            return by_intervals(self, n_steps, count_events);
        }
        self.received.clear();
        self.spikes.clear();
        let (spikes, events) = self.engine.run_alone(n_steps, count_events)?;
        self.interval_start = self.engine.step();
        self.events += events;
        let from = spikes.partition_point(|&(s, _)| s < self.record_from);
        self.recorded.spikes.extend_from_slice(&spikes[from..]);
        Ok(())
    }
    fn pack(&mut self, n_ranks: usize) -> Result<Vec<Vec<u64>>, SimError> {
        Ok(self
            .engine
            .route(&self.spikes, self.interval_start, n_ranks)
            .1)
    }
    fn pack_collective(&mut self) -> Result<Vec<u64>, SimError> {
        Ok(self
            .engine
            .route_collective(&self.spikes, self.interval_start)
            .1)
    }
    fn receive(&mut self, from: u32, packed: &[u64]) -> Result<(), SimError> {
        self.engine
            .receive(from, packed, self.interval_start, &mut self.received)
    }
    fn receive_collective(&mut self, from: u32, packed: &[u64]) -> Result<(), SimError> {
        self.engine
            .receive_collective(from, packed, self.interval_start, &mut self.received)
    }
    fn deliver(&mut self, count_events: bool) -> Result<(), SimError> {
        let mut all = std::mem::take(&mut self.received);
        for s in &self.spikes {
            all.extend(s.local.iter().map(|&l| (s.step, l)));
        }
        let events = self.engine.deliver(&all)?;
        if count_events {
            self.events += events;
        }
        self.spikes.clear();
        all.clear();
        self.received = all;
        Ok(())
    }
    fn events(&mut self) -> Result<u64, SimError> {
        Ok(self.events)
    }
    fn set_events(&mut self, events: u64) -> Result<(), SimError> {
        self.events = events;
        Ok(())
    }
    fn take_recorded(&mut self, _flush: bool) -> Result<Recorded, SimError> {
        Ok(std::mem::take(&mut self.recorded))
    }
    fn save_state(&mut self) -> Result<Vec<Section>, SimError> {
        self.engine.save_state()
    }
    fn restore_state<'s>(
        &mut self,
        get: &dyn Fn(&str) -> Option<&'s [u8]>,
    ) -> Result<(), SimError> {
        self.engine.restore_state(get)?;
        self.interval_start = self.engine.step();
        Ok(())
    }
}
