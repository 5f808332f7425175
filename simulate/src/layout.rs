//! What both engines (CPU [`crate::engine`], GPU [`crate::gpu`]) derive from
//! a rank's shard and the model before they allocate anything: the local
//! index range of each population, the Poisson drive of each population,
//! and the routing tables (where each own neuron's spikes go; which source
//! neurons this rank has images of).

use std::ops::Range;

use snn_formats::model::{quantize_weight, Model, NeuronModel, Population};
use snn_formats::shard::ArchivedShardData;

use crate::input::PoissonTable;
use crate::SimError;

/// The local index range of each population (empty for a population
/// without local neurons). Errors if the shard's local neurons are not in
/// population order or not all covered.
pub(crate) fn population_ranges(
    model: &Model,
    d: &ArchivedShardData,
) -> Result<Vec<Range<usize>>, SimError> {
    let n_local = d.local_to_global.len();
    let mut ranges = Vec::with_capacity(model.populations.len());
    let mut l = 0usize;
    for p in &model.populations {
        let a = l;
        while l < n_local && d.local_to_global[l].to_native() < p.first_id + p.size {
            if d.local_to_global[l].to_native() < p.first_id {
                return Err(SimError::Internal(
                    "local neurons out of population order".into(),
                ));
            }
            l += 1;
        }
        ranges.push(a..l);
    }
    if l != n_local {
        return Err(SimError::Internal(
            "local neurons not covered by populations".into(),
        ));
    }
    Ok(ranges)
}

/// The Poisson drive of a population's neurons.
pub(crate) struct PoissonDrive {
    /// Counts per step.
    pub table: PoissonTable,
    /// Weight per input spike, fixed point (as a synapse's).
    pub weight_fixed: i32,
    /// Delay, steps.
    pub delay_steps: u64,
}

/// The Poisson drive of population `p`, if it has one (a positive rate, a
/// neuron model, and the model's Poisson background).
pub(crate) fn poisson_drive(model: &Model, p: &Population) -> Option<PoissonDrive> {
    let pi = model.poisson.as_ref()?;
    if p.poisson_rate_hz <= 0.0 || p.params.model == NeuronModel::SpikeGenerator {
        return None;
    }
    Some(PoissonDrive {
        table: PoissonTable::new(p.poisson_rate_hz * model.dt_ms * 1e-3),
        weight_fixed: quantize_weight(pi.weight_pa, model.weight_frac_bits),
        delay_steps: pi.delay_steps as u64,
    })
}

/// The routing tables of a rank.
pub(crate) struct Routing {
    /// Per local neuron: range into `send_entries`.
    pub send_ptr: Vec<u32>,
    /// (destination rank, position in that rank's send table), by local
    /// neuron: the inverse of the shard's send tables.
    pub send_entries: Vec<(u32, u32)>,
    /// Per source rank: the source-local indices of this rank's images of
    /// it, increasing (= that rank's send table to this one); decodes
    /// collective exchanges, which carry source-local indices.
    pub needs_local: Vec<Vec<u32>>,
}

impl Routing {
    /// The tables of the rank of shard `d`.
    pub(crate) fn new(model: &Model, d: &ArchivedShardData) -> Result<Routing, SimError> {
        let n_local = d.local_to_global.len();
        let n_ranks = d.n_ranks.to_native() as usize;
        let mut per_neuron: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n_local];
        for q in 0..n_ranks {
            let (a, b) = (
                d.send_offsets[q].to_native() as usize,
                d.send_offsets[q + 1].to_native() as usize,
            );
            for (pos, l) in d.send[a..b].iter().enumerate() {
                per_neuron[l.to_native() as usize].push((q as u32, pos as u32));
            }
        }
        let mut send_ptr = Vec::with_capacity(n_local + 1);
        let mut send_entries = Vec::new();
        send_ptr.push(0u32);
        for v in per_neuron {
            send_entries.extend(v);
            send_ptr.push(send_entries.len() as u32);
        }
        let placement = snn_formats::Placement::new(model, n_ranks as u32)
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        let needs_local = (0..n_ranks)
            .map(|q| {
                let (a, b) = (
                    d.image_offsets[q].to_native() as usize,
                    d.image_offsets[q + 1].to_native() as usize,
                );
                d.images[a..b]
                    .iter()
                    .map(|g| placement.locate(g.to_native()).1)
                    .collect()
            })
            .collect();
        Ok(Routing {
            send_ptr,
            send_entries,
            needs_local,
        })
    }
}
