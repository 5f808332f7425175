//! Which rank owns which neuron, and the neuron's index on that rank.
//!
//! Local indices on a rank follow global ids in increasing order. Placement
//! never changes the network (construction is keyed by global ids) nor the
//! spikes; it only decides where things are computed.

use crate::config::PlacementScheme;
use crate::model::Model;

/// Placement of a model's neurons on `n_ranks` ranks.
#[derive(Clone, Debug)]
pub struct Placement {
    scheme: PlacementScheme,
    n_ranks: u32,
    /// Per population: first global id and size.
    pops: Vec<(u64, u64)>,
    /// Per population: its rank (scheme `population`).
    pop_rank: Vec<u32>,
    /// `local_base[pop * n_ranks + rank]`: local index on `rank` of the first
    /// neuron of `pop` owned by it (schemes `block` and `population`).
    local_base: Vec<u64>,
    /// Neurons per rank.
    n_local: Vec<u64>,
}

/// Why a placement cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("placement: {0}")]
pub struct PlacementError(pub String);

impl Placement {
    /// The placement of `model` on `n_ranks` ranks.
    pub fn new(model: &Model, n_ranks: u32) -> Result<Placement, PlacementError> {
        if n_ranks == 0 {
            return Err(PlacementError(
                "the number of ranks must be at least 1".into(),
            ));
        }
        let pops: Vec<(u64, u64)> = model
            .populations
            .iter()
            .map(|p| (p.first_id, p.size))
            .collect();
        let scheme = model.placement.scheme;
        let mut pop_rank = vec![0u32; pops.len()];
        if scheme == PlacementScheme::Population {
            for (i, p) in model.populations.iter().enumerate() {
                // Modulo the rank count, so one placement serves any number
                // of ranks (e.g. areas on fewer GPUs than areas).
                pop_rank[i] =
                    *model.placement.population_ranks.get(&p.name).unwrap_or(&0) % n_ranks;
            }
        }
        let r_n = n_ranks as usize;
        let mut local_base = vec![0u64; pops.len() * r_n];
        let mut n_local = vec![0u64; r_n];
        for (pi, &(_, size)) in pops.iter().enumerate() {
            for r in 0..r_n {
                local_base[pi * r_n + r] = n_local[r];
                let count = match scheme {
                    PlacementScheme::RoundRobin => 0,
                    PlacementScheme::Block => {
                        block_start(size, n_ranks, r as u32 + 1)
                            - block_start(size, n_ranks, r as u32)
                    }
                    PlacementScheme::Population => {
                        if pop_rank[pi] == r as u32 {
                            size
                        } else {
                            0
                        }
                    }
                };
                n_local[r] += count;
            }
        }
        if scheme == PlacementScheme::RoundRobin {
            let total: u64 = pops.iter().map(|p| p.1).sum();
            for (r, n) in n_local.iter_mut().enumerate() {
                *n = round_robin_count(total, n_ranks, r as u32);
            }
        }
        if let Some(n) = n_local.iter().find(|&&n| n > u32::MAX as u64) {
            return Err(PlacementError(format!(
                "a rank would own {n} neurons; at most 2^32-1 per rank"
            )));
        }
        Ok(Placement {
            scheme,
            n_ranks,
            pops,
            pop_rank,
            local_base,
            n_local,
        })
    }

    /// Number of ranks.
    pub fn n_ranks(&self) -> u32 {
        self.n_ranks
    }

    /// Neurons owned by `rank`.
    pub fn n_local(&self, rank: u32) -> u64 {
        self.n_local[rank as usize]
    }

    fn pop_of(&self, global: u64) -> usize {
        self.pops
            .partition_point(|&(first, size)| first + size <= global)
            .min(self.pops.len() - 1)
    }

    /// The rank owning global neuron `global` and its local index there.
    #[inline]
    pub fn locate(&self, global: u64) -> (u32, u32) {
        let r_n = self.n_ranks as u64;
        match self.scheme {
            PlacementScheme::RoundRobin => ((global % r_n) as u32, (global / r_n) as u32),
            PlacementScheme::Block => {
                let p = self.pop_of(global);
                let (first, size) = self.pops[p];
                let i = global - first;
                // The block b with block_start(b) <= i < block_start(b + 1).
                let mut r = ((i as u128 * r_n as u128) / size.max(1) as u128) as u32;
                while r + 1 < self.n_ranks && block_start(size, self.n_ranks, r + 1) <= i {
                    r += 1;
                }
                while r > 0 && block_start(size, self.n_ranks, r) > i {
                    r -= 1;
                }
                let base = self.local_base[p * self.n_ranks as usize + r as usize];
                (r, (base + i - block_start(size, self.n_ranks, r)) as u32)
            }
            PlacementScheme::Population => {
                let p = self.pop_of(global);
                let r = self.pop_rank[p];
                let base = self.local_base[p * self.n_ranks as usize + r as usize];
                (r, (base + global - self.pops[p].0) as u32)
            }
        }
    }

    /// The global ids owned by `rank`, in increasing order (= local order).
    pub fn owned(&self, rank: u32) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.n_local(rank) as usize);
        match self.scheme {
            PlacementScheme::RoundRobin => {
                let total: u64 = self.pops.iter().map(|p| p.1).sum();
                let mut g = rank as u64;
                while g < total {
                    out.push(g);
                    g += self.n_ranks as u64;
                }
            }
            PlacementScheme::Block => {
                for &(first, size) in &self.pops {
                    let a = block_start(size, self.n_ranks, rank);
                    let b = block_start(size, self.n_ranks, rank + 1);
                    out.extend((a..b).map(|i| first + i));
                }
            }
            PlacementScheme::Population => {
                for (p, &(first, size)) in self.pops.iter().enumerate() {
                    if self.pop_rank[p] == rank {
                        out.extend(first..first + size);
                    }
                }
            }
        }
        out
    }
}

/// First population-local index of block `b` of `n_ranks` blocks.
fn block_start(size: u64, n_ranks: u32, b: u32) -> u64 {
    ((size as u128 * b as u128) / n_ranks as u128) as u64
}

fn round_robin_count(total: u64, n_ranks: u32, rank: u32) -> u64 {
    let r = n_ranks as u64;
    total / r + u64::from((rank as u64) < total % r)
}
