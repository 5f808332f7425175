//! Which rank owns which neuron, and the neuron's index on that rank.
//!
//! Local indices on a rank follow global ids in increasing order. Placement
//! never changes the network (construction is keyed by global ids) nor the
//! spikes; it only decides where things are computed.
//!
//! Every scheme but `round_robin` gives each rank a contiguous block of each
//! population, so a placement is the table of block boundaries: rank `r`
//! owns indices `bounds[p][r] .. bounds[p][r + 1]` of population `p`.
//! * `block`: each population cut into `n_ranks` near-equal blocks;
//! * `population`: a whole population on the rank its config names;
//! * `area`: the areas, in order of their first population, laid along a
//!   line of load, each neuron weighing its expected in-degree + 1 (what
//!   building and storing it costs, and most of what simulating it costs);
//!   the line is cut into `n_ranks` equal parts, and a cut within
//!   `area_balance_tolerance` of the mean load per rank from the boundary
//!   between two areas is moved onto it, so no area is split for a small
//!   gain in balance. An area cut between ranks is split in the same
//!   proportions in each of its populations (`round(size * fraction)`).

use crate::config::PlacementScheme;
use crate::model::Model;

/// Default of `placement.area_balance_tolerance`.
pub const DEFAULT_AREA_BALANCE_TOLERANCE: f64 = 0.05;

/// Placement of a model's neurons on `n_ranks` ranks.
#[derive(Clone, Debug)]
pub struct Placement {
    scheme: PlacementScheme,
    n_ranks: u32,
    /// Per population: first global id and size.
    pops: Vec<(u64, u64)>,
    /// `bounds[pop * (n_ranks + 1) + r]`: first population index owned by
    /// rank `r` (all schemes but round robin); the last entry is the size.
    bounds: Vec<u64>,
    /// `local_base[pop * n_ranks + rank]`: local index on `rank` of the first
    /// neuron of `pop` owned by it (all schemes but round robin).
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
        let r_n = n_ranks as usize;
        Self::check_size(model, n_ranks)?;
        let mut n_local = vec![0u64; r_n];
        let (mut bounds, mut local_base) = (Vec::new(), Vec::new());
        if scheme == PlacementScheme::RoundRobin {
            let total: u64 = pops.iter().map(|p| p.1).sum();
            for (r, n) in n_local.iter_mut().enumerate() {
                *n = round_robin_count(total, n_ranks, r as u32);
            }
        } else {
            bounds = match scheme {
                PlacementScheme::Block => pops
                    .iter()
                    .flat_map(|&(_, size)| {
                        (0..=n_ranks).map(move |r| block_start(size, n_ranks, r))
                    })
                    .collect(),
                PlacementScheme::Population => model
                    .populations
                    .iter()
                    .flat_map(|p| {
                        // Modulo the rank count, so one placement serves any
                        // number of ranks (e.g. areas on fewer GPUs than
                        // areas).
                        let rank =
                            *model.placement.population_ranks.get(&p.name).unwrap_or(&0) % n_ranks;
                        (0..=n_ranks).map(move |r| if r <= rank { 0 } else { p.size })
                    })
                    .collect(),
                PlacementScheme::Area => area_bounds(model, n_ranks),
                PlacementScheme::RoundRobin => unreachable!("handled above"),
            };
            local_base = vec![0u64; pops.len() * r_n];
            for p in 0..pops.len() {
                let b = &bounds[p * (r_n + 1)..(p + 1) * (r_n + 1)];
                for r in 0..r_n {
                    local_base[p * r_n + r] = n_local[r];
                    n_local[r] += b[r + 1] - b[r];
                }
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
            bounds,
            local_base,
            n_local,
        })
    }

    /// Refuse a rank count whose tables (two entries per population and
    /// rank) would exceed 2^31 entries, before anything is allocated.
    pub fn check_size(model: &Model, n_ranks: u32) -> Result<(), PlacementError> {
        let pops = model.populations.len() as u128;
        if pops * (n_ranks as u128 + 1) > (1u128 << 31) {
            return Err(PlacementError(format!(
                "--ranks {n_ranks}: {pops} populations on {n_ranks} ranks: the placement tables would need over 2^31 entries"
            )));
        }
        Ok(())
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

    /// Block boundaries of population `p` (`n_ranks + 1` entries).
    fn pop_bounds(&self, p: usize) -> &[u64] {
        let w = self.n_ranks as usize + 1;
        &self.bounds[p * w..(p + 1) * w]
    }

    /// The neurons of population `pop` (indices within it) that `rank`
    /// owns, if the scheme gives each rank one block of it (every scheme
    /// but round robin).
    pub fn block(&self, pop: usize, rank: u32) -> Option<std::ops::Range<u64>> {
        if self.scheme == PlacementScheme::RoundRobin {
            return None;
        }
        let b = self.pop_bounds(pop);
        Some(b[rank as usize]..b[rank as usize + 1])
    }

    /// How many neurons of population `pop` rank `rank` owns.
    pub fn count_in(&self, pop: usize, rank: u32) -> u64 {
        match self.block(pop, rank) {
            Some(r) => r.end - r.start,
            None => {
                // Round robin: global ids first..first+size that are = rank
                // modulo n_ranks.
                let (first, size) = self.pops[pop];
                let below = |g: u64| {
                    let r_n = self.n_ranks as u64;
                    g / r_n + u64::from(g % r_n > rank as u64)
                };
                below(first + size) - below(first)
            }
        }
    }

    /// The rank owning global neuron `global` and its local index there.
    #[inline]
    pub fn locate(&self, global: u64) -> (u32, u32) {
        let r_n = self.n_ranks as u64;
        if self.scheme == PlacementScheme::RoundRobin {
            return ((global % r_n) as u32, (global / r_n) as u32);
        }
        let p = self.pop_of(global);
        let i = global - self.pops[p].0;
        let b = self.pop_bounds(p);
        // The block r with b[r] <= i < b[r + 1] (empty blocks skipped).
        let r = b
            .partition_point(|&x| x <= i)
            .saturating_sub(1)
            .min(r_n as usize - 1);
        let base = self.local_base[p * r_n as usize + r];
        (r as u32, (base + i - b[r]) as u32)
    }

    /// The global ids owned by `rank`, in increasing order (= local order).
    pub fn owned(&self, rank: u32) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.n_local(rank) as usize);
        if self.scheme == PlacementScheme::RoundRobin {
            let total: u64 = self.pops.iter().map(|p| p.1).sum();
            let mut g = rank as u64;
            while g < total {
                out.push(g);
                g += self.n_ranks as u64;
            }
        } else {
            for (p, &(first, _)) in self.pops.iter().enumerate() {
                let b = self.pop_bounds(p);
                out.extend(first + b[rank as usize]..first + b[rank as usize + 1]);
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

/// Block boundaries of the `area` scheme (see the module documentation).
fn area_bounds(model: &Model, n_ranks: u32) -> Vec<u64> {
    let n_pops = model.populations.len();
    let n_areas = model.areas.len();
    // Load of a neuron of each population: expected in-degree + 1.
    let mut per_neuron = vec![1.0f64; n_pops];
    for pr in &model.projections {
        per_neuron[pr.target] += pr.expected_indegree(model);
    }
    let mut area_load = vec![0.0f64; n_areas];
    for (p, pop) in model.populations.iter().enumerate() {
        area_load[pop.area] += per_neuron[p] * pop.size as f64;
    }
    // Areas in order along the line of load: starts[a]..starts[a + 1].
    let mut starts = Vec::with_capacity(n_areas + 1);
    let mut acc = 0.0;
    starts.push(0.0);
    for l in &area_load {
        acc += l;
        starts.push(acc);
    }
    let total = acc;
    let per_rank = total / n_ranks as f64;
    let tolerance = model
        .placement
        .area_balance_tolerance
        .unwrap_or(DEFAULT_AREA_BALANCE_TOLERANCE)
        * per_rank;
    // Cut r (1..n_ranks) at r * per_rank, or on the nearest area boundary
    // within the tolerance. Cuts stay in order: they are per_rank apart and
    // move by at most a tolerance below half of that.
    let cuts: Vec<f64> = (0..=n_ranks)
        .map(|r| {
            if r == 0 {
                return 0.0;
            }
            if r == n_ranks {
                return total;
            }
            let x = r as f64 * per_rank;
            let a = starts.partition_point(|&s| s < x);
            let near = [a.checked_sub(1), Some(a)]
                .into_iter()
                .flatten()
                .filter_map(|i| starts.get(i).copied())
                .min_by(|p, q| (p - x).abs().total_cmp(&(q - x).abs()));
            match near {
                Some(b) if (b - x).abs() <= tolerance => b,
                _ => x,
            }
        })
        .collect();
    let w = n_ranks as usize + 1;
    let mut bounds = vec![0u64; n_pops * w];
    for (p, pop) in model.populations.iter().enumerate() {
        let (lo, load) = (starts[pop.area], area_load[pop.area]);
        let b = &mut bounds[p * w..(p + 1) * w];
        for (r, &cut) in cuts.iter().enumerate() {
            let q = if load > 0.0 {
                ((cut - lo) / load).clamp(0.0, 1.0)
            } else {
                0.0
            };
            b[r] = ((pop.size as f64 * q).round() as u64).min(pop.size);
        }
        b[n_ranks as usize] = pop.size;
        // Monotone by construction (cuts and q are); kept so even in
        // degenerate floating-point cases.
        for r in 1..w {
            b[r] = b[r].max(b[r - 1]);
        }
    }
    bounds
}
