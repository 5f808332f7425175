//! Whether a build fits in memory, decided before anything big is
//! allocated or drawn.
//!
//! The estimates count only what a build certainly holds (the synapse arrays
//! of the largest rank, the per-thread counters of the counting pass, the
//! per-rank routing lists and the placement tables), so they are lower
//! bounds: a refused build could not have succeeded, and an accepted one
//! still allocates fallibly ([`zeroed`]), so that running out of memory
//! later is a clean error too.

use snn_formats::config::PlacementScheme;
use snn_formats::limits::{available_bytes, human_bytes};
use snn_formats::model::{Model, Rule};
use snn_formats::placement::Placement;

use crate::connect::ExplicitEdges;
use crate::rank::BLOCK_SYNAPSES;
use crate::BuildError;

/// Bytes of one `Vec` header (pointer, capacity, length).
const VEC_BYTES: u64 = 24;

/// Bytes of the placement tables of `model` on `n_ranks` ranks (what
/// [`Placement::new`] allocates).
pub fn placement_bytes(model: &Model, n_ranks: u32) -> f64 {
    let n = n_ranks as f64;
    let pops = model.populations.len() as f64;
    let tables = if model.placement.scheme == PlacementScheme::RoundRobin {
        0.0
    } else {
        8.0 * pops * (2.0 * n + 1.0)
    };
    8.0 * n + tables
}

/// What is being built, for the estimate.
#[derive(Clone, Copy, Debug)]
pub enum Job<'a> {
    /// Every rank in this process, one after the other (`--ranks N`).
    AllRanks,
    /// Only these ranks (`--only-ranks`).
    SomeRanks(&'a [u32]),
    /// A dry run of these ranks: counting only, no synapses stored.
    DryRun(&'a [u32]),
}

/// The part of [`estimate`] that needs no placement: the placement tables
/// and the per-rank routing lists (for a whole build, those of every rank),
/// checked before the placement is made.
pub fn structural_bytes(model: &Model, n_ranks: u32, job: Job) -> f64 {
    let n = n_ranks as f64;
    let lists = 2.0 * VEC_BYTES as f64 * n;
    placement_bytes(model, n_ranks)
        + match job {
            Job::AllRanks if n_ranks > 1 => VEC_BYTES as f64 * n * n + lists,
            _ => lists,
        }
}

/// A lower bound of the memory the build of `job` needs at its peak, and
/// the rank whose build sets it.
pub fn estimate(model: &Model, placement: &Placement, threads: usize, job: Job) -> (f64, u32) {
    let n_ranks = placement.n_ranks();
    let n = n_ranks as f64;
    let n_neurons = model.n_neurons as f64;
    // Expected in-degree of a neuron of each population.
    let mut indegree = vec![0.0f64; model.populations.len()];
    for p in &model.projections {
        indegree[p.target] += p.expected_indegree(model);
    }
    let synapses_of = |r: u32| -> f64 {
        (0..model.populations.len())
            .map(|p| placement.count_in(p, r) as f64 * indegree[p])
            .sum()
    };
    // Counters of the counting pass (one array of u32 per thread) and the
    // row of each source, for every rank built.
    let counters = 4.0 * n_neurons * (threads.max(1) as f64 + 1.0);
    // A rank's own lists: images and send tables per rank, its neurons.
    let lists = |r: u32| 2.0 * VEC_BYTES as f64 * n + 16.0 * placement.n_local(r) as f64;
    let chunks = threads.max(1) as f64;
    // Rule sonata_edges: the edges onto the rank's targets, read from the
    // file and held while the rank is built (and their per-target offsets).
    let explicit = |r: u32| -> f64 {
        model
            .projections
            .iter()
            .filter(|p| matches!(p.rule, Rule::SonataEdges { .. }))
            .map(|p| {
                placement.count_in(p.target, r) as f64
                    * p.expected_indegree(model)
                    * ExplicitEdges::BYTES_PER_EDGE
                    + 8.0 * (model.populations[p.target].size as f64 + 1.0)
            })
            .sum()
    };
    let rank_bytes = |r: u32, store: bool| {
        if !store {
            return counters + lists(r) + explicit(r);
        }
        let syn = synapses_of(r);
        // The fill pass: 8 bytes per synapse, per thread a write buffer
        // of up to BLOCK_SYNAPSES synapses (28 bytes each) and two counters
        // per row, and per row (own neurons at least) its length, offset
        // (twice) and source.
        let block = ((syn / chunks).min(BLOCK_SYNAPSES as f64) + 4096.0) * 28.0;
        let rows = placement.n_local(r) as f64;
        8.0 * syn + chunks * (block + 8.0 * rows) + 32.0 * rows + counters + lists(r) + explicit(r)
    };
    let common = placement_bytes(model, n_ranks);
    let pick = |ranks: &mut dyn Iterator<Item = u32>, store: bool| -> (f64, u32) {
        ranks
            .map(|r| (rank_bytes(r, store), r))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((0.0, 0))
    };
    match job {
        Job::AllRanks => {
            // The largest rank: for round robin every rank holds about the
            // same, rank 0 at least as much as any other.
            let (peak, r) = if model.placement.scheme == PlacementScheme::RoundRobin {
                (rank_bytes(0, true), 0)
            } else {
                pick(&mut (0..n_ranks), true)
            };
            // With several ranks, the image lists of every rank are kept
            // from the first pass to the second.
            let all_images = if n_ranks > 1 {
                VEC_BYTES as f64 * n * n
            } else {
                0.0
            };
            (common + all_images + peak, r)
        }
        Job::SomeRanks(ranks) => {
            let (peak, r) = pick(&mut ranks.iter().copied(), true);
            (common + peak, r)
        }
        Job::DryRun(ranks) => {
            let (peak, r) = pick(&mut ranks.iter().copied(), false);
            (common + peak, r)
        }
    }
}

/// Refuse a build whose estimated peak memory exceeds what the machine (or
/// the process's limits) offers. `what` names the job in the message.
pub fn check_fits(need: f64, what: &str) -> Result<(), BuildError> {
    let Some((avail, source)) = available_bytes() else {
        return Ok(());
    };
    if need > avail as f64 {
        return Err(BuildError::TooLarge(format!(
            "{what} would need at least {} of memory, but only {} are available ({source}); use a smaller scale, fewer ranks per process (mpirun, --only-ranks) or a larger machine",
            human_bytes(need as u64),
            human_bytes(avail)
        )));
    }
    Ok(())
}

/// A vector of `n` zeros, allocated fallibly: an allocation failure becomes
/// an error naming `what` instead of an abort.
pub fn zeroed<T: Copy + Default>(n: usize, what: &str) -> Result<Vec<T>, BuildError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        BuildError::TooLarge(format!(
            "out of memory allocating {} for {what}",
            human_bytes((n as u64).saturating_mul(std::mem::size_of::<T>() as u64))
        ))
    })?;
    v.resize(n, T::default());
    Ok(v)
}
