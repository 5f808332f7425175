//! Building one rank's shard.
//!
//! Two passes over the rank's own targets, split into contiguous chunks (one
//! per thread, balanced by expected synapse count):
//! 1. *count*: draw only the sources and count synapses per (chunk, source);
//!    this gives the images (remote sources) and the CSR row sizes;
//! 2. *fill*: draw everything again (the streams are counter-based, so the
//!    same numbers come out) and write each synapse straight to its final
//!    position. A chunk's synapses of one row go after those of earlier
//!    chunks, and inside a chunk targets are visited in order, so every row
//!    ends up in canonical order (target, projection, synapse index) whatever
//!    the number of threads.
//!
//! Memory: the final arrays (8 bytes per synapse) plus `4 * n_neurons *
//! (chunks + 1)` bytes of counters, never a second copy of the synapses.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use snn_formats::model::{Model, Projection, Rule};
use snn_formats::placement::Placement;
use snn_formats::shard::ShardData;

use crate::connect::{split_total_number, ExplicitEdges, ProjPlan};
use crate::memory::zeroed;
use crate::BuildError;

/// The groups one after the other, and the offsets of each group's start
/// (one more than groups): the shard's per-rank image and send lists.
pub(crate) fn flatten<T: Copy>(groups: &[Vec<T>]) -> (Vec<T>, Vec<u64>) {
    let mut flat = Vec::with_capacity(groups.iter().map(Vec::len).sum());
    let mut offsets = Vec::with_capacity(groups.len() + 1);
    offsets.push(0u64);
    for g in groups {
        flat.extend_from_slice(g);
        offsets.push(flat.len() as u64);
    }
    (flat, offsets)
}

/// Row index marker for sources without synapses here.
pub(crate) const NO_ROW: u32 = u32::MAX;

/// The rank's own targets and their in-degrees.
pub struct RankPlan<'a> {
    pub(crate) model: &'a Model,
    pub(crate) placement: &'a Placement,
    pub(crate) rank: u32,
    /// Global ids of own neurons.
    pub(crate) owned: Vec<u64>,
    /// Per population: range of local indices.
    pub(crate) pop_local: Vec<(usize, usize)>,
    /// Prepared projections.
    pub(crate) projs: Vec<ProjPlan>,
    /// Per population: indices into `projs` of projections targeting it.
    pub(crate) by_target: Vec<Vec<usize>>,
    /// Per projection: in-degree per own target of its target population
    /// (fixed_total_number only).
    pub(crate) split_indeg: Vec<Vec<u32>>,
    /// Chunk boundaries in local indices.
    pub(crate) chunks: Vec<(usize, usize)>,
}

/// Result of the counting pass.
pub struct Counts {
    /// Per chunk: synapses per global source.
    per_chunk: Vec<Vec<u32>>,
    /// Synapses per chunk.
    per_chunk_total: Vec<u64>,
    /// Synapses per projection.
    pub per_projection: Vec<u64>,
}

impl<'a> RankPlan<'a> {
    /// Plan rank `rank` with `n_chunks` parallel chunks.
    pub fn new(
        model: &'a Model,
        placement: &'a Placement,
        rank: u32,
        n_chunks: usize,
    ) -> Result<RankPlan<'a>, BuildError> {
        Self::with_projections(model, placement, rank, n_chunks, |_| true)
    }

    /// Plan rank `rank` for the projections that `keep` accepts only (the
    /// others draw nothing): what [`RankPlan::needs_of`] uses to look at the
    /// synapses from one rank's neurons alone.
    pub fn with_projections(
        model: &'a Model,
        placement: &'a Placement,
        rank: u32,
        n_chunks: usize,
        keep: impl Fn(&Projection) -> bool,
    ) -> Result<RankPlan<'a>, BuildError> {
        let owned = placement.owned(rank);
        let mut pop_local = Vec::with_capacity(model.populations.len());
        for p in &model.populations {
            let a = owned.partition_point(|&g| g < p.first_id);
            let b = owned.partition_point(|&g| g < p.first_id + p.size);
            pop_local.push((a, b));
        }
        let mut projs: Vec<ProjPlan> = model
            .projections
            .iter()
            .map(|p| ProjPlan::new(model, p))
            .collect();
        // Rule sonata_edges: the edges onto own targets, from the file.
        for pp in projs.iter_mut() {
            if !matches!(pp.proj.rule, Rule::SonataEdges { .. }) || !keep(&pp.proj) {
                continue;
            }
            let (a, b) = pop_local[pp.proj.target];
            let own = &owned[a..b];
            let first = pp.tgt_first;
            let is_own = |t: u64| own.binary_search(&(first + t)).is_ok();
            pp.explicit = Some(std::sync::Arc::new(ExplicitEdges::load(
                model, &pp.proj, &is_own,
            )?));
        }
        let mut by_target = vec![Vec::new(); model.populations.len()];
        for (i, p) in projs.iter().enumerate() {
            if keep(&p.proj) {
                by_target[p.proj.target].push(i);
            }
        }
        let kept: Vec<bool> = projs.iter().map(|p| keep(&p.proj)).collect();
        // In-degrees of fixed_total_number projections, for own targets.
        let split_indeg = projs
            .par_iter()
            .zip(&kept)
            .map(|(pp, &kept)| {
                let Rule::FixedTotalNumber { n } = pp.proj.rule else {
                    return Vec::new();
                };
                if !kept {
                    return Vec::new();
                }
                let (a, b) = pop_local[pp.proj.target];
                let own = &owned[a..b];
                let first = pp.tgt_first;
                let wanted = |lo: u64, hi: u64| {
                    let i = own.partition_point(|&g| g < first + lo);
                    i < own.len() && own[i] < first + hi
                };
                let mut all = vec![0u32; pp.n_tgt as usize];
                split_total_number(pp.seed, pp.proj.index, n, pp.n_tgt, &wanted, &mut all);
                own.iter().map(|&g| all[(g - first) as usize]).collect()
            })
            .collect();
        // Chunks balanced by expected synapses.
        let mut weight = vec![0.0f64; owned.len()];
        for (pi, list) in by_target.iter().enumerate() {
            let (a, b) = pop_local[pi];
            let w: f64 = list
                .iter()
                .map(|&j| projs[j].proj.expected_indegree(model))
                .sum::<f64>()
                + 1.0;
            for x in &mut weight[a..b] {
                *x = w;
            }
        }
        let total: f64 = weight.iter().sum();
        let n_chunks = n_chunks.max(1);
        let mut chunks = Vec::with_capacity(n_chunks);
        let mut start = 0usize;
        let mut acc = 0.0;
        for (i, w) in weight.iter().enumerate() {
            acc += w;
            if chunks.len() + 1 < n_chunks
                && acc >= total * (chunks.len() + 1) as f64 / n_chunks as f64
            {
                chunks.push((start, i + 1));
                start = i + 1;
            }
        }
        chunks.push((start, owned.len()));
        Ok(RankPlan {
            model,
            placement,
            rank,
            owned,
            pop_local,
            projs,
            by_target,
            split_indeg,
            chunks,
        })
    }

    /// Own neurons.
    pub fn n_local(&self) -> usize {
        self.owned.len()
    }

    pub(crate) fn pop_of_local(&self, l: usize) -> usize {
        self.pop_local.partition_point(|&(_, b)| b <= l)
    }

    /// Visit the own targets of a chunk with their population, index within
    /// it and the projections targeting it.
    fn for_targets(&self, (a, b): (usize, usize), mut f: impl FnMut(usize, u64, &[usize], usize)) {
        let mut l = a;
        while l < b {
            let pi = self.pop_of_local(l);
            let (pa, pb) = self.pop_local[pi];
            let end = pb.min(b);
            let first = self.model.populations[pi].first_id;
            for ll in l..end {
                f(ll, self.owned[ll] - first, &self.by_target[pi], ll - pa);
            }
            l = end;
        }
    }

    fn indegree(&self, j: usize, own_in_pop: usize) -> u64 {
        match self.projs[j].proj.rule {
            Rule::FixedIndegree { k } => k,
            Rule::FixedTotalNumber { .. } => self.split_indeg[j][own_in_pop] as u64,
            _ => 0,
        }
    }

    /// Pass 1: count synapses per chunk and global source.
    pub fn count(&self, progress: &AtomicU64) -> Counts {
        let n = self.model.n_neurons as usize;
        let n_proj = self.projs.len();
        let results: Vec<(Vec<u32>, Vec<u64>)> = self
            .chunks
            .par_iter()
            .map(|&range| {
                let mut counts = vec![0u32; n];
                let mut per_proj = vec![0u64; n_proj];
                let mut scratch = Vec::new();
                self.for_targets(range, |_, t, projs, own_in_pop| {
                    let mut done = 0u64;
                    for &j in projs {
                        let pp = &self.projs[j];
                        let first = pp.src_first as usize;
                        let mut c = 0u64;
                        pp.for_each_source(t, self.indegree(j, own_in_pop), &mut scratch, |s| {
                            counts[first + s as usize] += 1;
                            c += 1;
                        });
                        per_proj[j] += c;
                        done += c;
                    }
                    progress.fetch_add(done, Ordering::Relaxed);
                });
                (counts, per_proj)
            })
            .collect();
        let mut per_projection = vec![0u64; n_proj];
        let mut per_chunk = Vec::with_capacity(results.len());
        let mut per_chunk_total = Vec::with_capacity(results.len());
        for (c, p) in results {
            for (a, b) in per_projection.iter_mut().zip(&p) {
                *a += b;
            }
            per_chunk_total.push(p.iter().sum());
            per_chunk.push(c);
        }
        Counts {
            per_chunk,
            per_chunk_total,
            per_projection,
        }
    }

    /// The neurons of rank `from` that this rank's synapses come from, as
    /// local indices on `from`, increasing: `from`'s send table to this
    /// rank. Draws the sources of the synapses from `from`'s populations
    /// only (the same draws as [`RankPlan::count`]); plan with
    /// [`RankPlan::with_projections`] keeping the projections whose source
    /// population has neurons on `from` to skip the others entirely.
    pub fn needs_of(&self, from: u32) -> Vec<u32> {
        let placement = self.placement;
        let n_from = placement.n_local(from) as usize;
        // Per projection: where the sources on `from` are.
        let filters: Vec<Option<SourceFilter>> = self
            .projs
            .iter()
            .map(|pp| {
                let p = pp.proj.source;
                if placement.count_in(p, from) == 0 {
                    return None;
                }
                Some(match placement.block(p, from) {
                    Some(block) => SourceFilter::Block {
                        lo: block.start,
                        hi: block.end,
                        base: placement.locate(pp.src_first + block.start).1 as u64,
                    },
                    None => SourceFilter::Modulo {
                        first: pp.src_first,
                        n_ranks: placement.n_ranks() as u64,
                        rank: from as u64,
                    },
                })
            })
            .collect();
        let marks = self
            .chunks
            .par_iter()
            .map(|&range| {
                let mut mark = vec![0u64; n_from.div_ceil(64)];
                let mut scratch = Vec::new();
                self.for_targets(range, |_, t, projs, own_in_pop| {
                    for &j in projs {
                        let Some(f) = &filters[j] else { continue };
                        self.projs[j].for_each_source(
                            t,
                            self.indegree(j, own_in_pop),
                            &mut scratch,
                            |s| {
                                if let Some(l) = f.local(s) {
                                    mark[(l >> 6) as usize] |= 1 << (l & 63);
                                }
                            },
                        );
                    }
                });
                mark
            })
            .reduce_with(|mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x |= y;
                }
                a
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for (w, &bits) in marks.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                out.push((w * 64) as u32 + b.trailing_zeros());
                b &= b - 1;
            }
        }
        out
    }

    /// Remote sources with synapses here, grouped by owner rank, sorted.
    pub fn images(&self, counts: &Counts) -> Vec<Vec<u64>> {
        let mut out = vec![Vec::new(); self.placement.n_ranks() as usize];
        for g in 0..self.model.n_neurons as usize {
            if counts.per_chunk.iter().any(|c| c[g] > 0) {
                let (r, _) = self.placement.locate(g as u64);
                if r != self.rank {
                    out[r as usize].push(g as u64);
                }
            }
        }
        out
    }

    /// Pass 2: fill the synapses and assemble the shard. `images` is this
    /// rank's [`RankPlan::images`], `send` the local indices each other rank
    /// needs from this one.
    pub fn fill(
        &self,
        mut counts: Counts,
        images: &[Vec<u64>],
        send: &[Vec<u32>],
        model_hash: [u8; 16],
        progress: &AtomicU64,
    ) -> Result<ShardData, BuildError> {
        let n_local = self.owned.len();
        let n_images: usize = images.iter().map(|v| v.len()).sum();
        let n_rows = n_local + n_images;
        if n_rows >= NO_ROW as usize {
            return Err(BuildError::TooLarge(format!(
                "rank {} would have {n_rows} rows (own neurons + images); at most 2^32-2",
                self.rank
            )));
        }
        // Row of each global source.
        let mut row_of = zeroed::<u32>(self.model.n_neurons as usize, "the row of each source")?;
        row_of.fill(NO_ROW);
        for (l, &g) in self.owned.iter().enumerate() {
            row_of[g as usize] = l as u32;
        }
        let mut row = n_local as u32;
        for group in images {
            for &g in group {
                row_of[g as usize] = row;
                row += 1;
            }
        }
        // Row sizes and chunk cursors (relative to the row start).
        let mut row_len = zeroed::<u64>(n_rows, "the row lengths")?;
        for (g, &r) in row_of.iter().enumerate() {
            if r == NO_ROW {
                continue;
            }
            let mut acc = 0u32;
            for c in counts.per_chunk.iter_mut() {
                let k = c[g];
                c[g] = acc;
                acc += k;
            }
            row_len[r as usize] = acc as u64;
        }
        let mut row_ptr = Vec::new();
        row_ptr.try_reserve_exact(n_rows + 1).map_err(|_| {
            BuildError::TooLarge(format!(
                "out of memory allocating the {} row offsets",
                n_rows + 1
            ))
        })?;
        let mut acc = 0u64;
        row_ptr.push(0);
        for len in &row_len {
            acc += len;
            row_ptr.push(acc);
        }
        drop(row_len);
        let n_syn = acc as usize;
        let target_bits = bits_for(n_local as u64);
        let delay_limit = 1u64 << (32 - target_bits);
        let mut syn_td = zeroed::<u32>(n_syn, "the synapses' targets and delays")?;
        let mut syn_w = zeroed::<i32>(n_syn, "the synapses' weights")?;
        {
            let td = SharedOut(syn_td.as_mut_ptr());
            let wt = SharedOut(syn_w.as_mut_ptr());
            let (td, wt) = (&td, &wt);
            let row_ptr = &row_ptr;
            let row_of = &row_of;
            let mut source_of = zeroed::<usize>(n_rows, "the source of each row")?;
            for (g, &r) in row_of.iter().enumerate() {
                if r != NO_ROW {
                    source_of[r as usize] = g;
                }
            }
            let source_of = &source_of;
            let totals = &counts.per_chunk_total;
            let results: Vec<Result<(u32, u32, u64), BuildError>> = self
                .chunks
                .par_iter()
                .zip(counts.per_chunk.par_iter_mut())
                .enumerate()
                .map(|(c, (&range, cursor))| {
                    let mut scratch = Vec::new();
                    let (mut dmin, mut dmax) = (u32::MAX, 0u32);
                    let mut written = 0u64;
                    let mut err = None;
                    let mut block = Blocker::new(n_rows, totals[c])?;
                    let out = Out {
                        td,
                        wt,
                        n_syn,
                        row_ptr,
                        row_of,
                        source_of,
                    };
                    self.for_targets(range, |l, t, projs, own_in_pop| {
                        if err.is_some() {
                            return;
                        }
                        let mut done = 0u64;
                        for &j in projs {
                            let pp = &self.projs[j];
                            let first = pp.src_first as usize;
                            pp.for_each_synapse(t, self.indegree(j, own_in_pop), &mut scratch, |s, w, d| {
                                if d as u64 >= delay_limit {
                                    err.get_or_insert(BuildError::TooLarge(format!(
                                        "projections[{}].delay ('{}'): a delay of {d} steps of {} ms does not fit next to the {target_bits}-bit local targets of rank {}: at most {} steps",
                                        pp.proj.index,
                                        pp.proj.name,
                                        self.model.dt_ms,
                                        self.rank,
                                        delay_limit - 1
                                    )));
                                    return;
                                }
                                dmin = dmin.min(d);
                                dmax = dmax.max(d);
                                block.push(first + s as usize, l as u32 | (d << target_bits), w);
                                done += 1;
                            });
                        }
                        written += done;
                        progress.fetch_add(done, Ordering::Relaxed);
                        if block.len() >= BLOCK_SYNAPSES {
                            if let Err(e) = block.flush(&out, cursor) {
                                err.get_or_insert(e);
                            }
                        }
                    });
                    if err.is_none() {
                        if let Err(e) = block.flush(&out, cursor) {
                            err.get_or_insert(e);
                        }
                    }
                    match err {
                        Some(e) => Err(e),
                        None => Ok((dmin, dmax, written)),
                    }
                })
                .collect();
            let (mut dmin, mut dmax) = (u32::MAX, 0u32);
            for (c, r) in results.into_iter().enumerate() {
                let (a, b, written) = r?;
                dmin = dmin.min(a);
                dmax = dmax.max(b);
                if written != counts.per_chunk_total[c] {
                    return Err(BuildError::Internal(
                        "fill pass disagrees with count pass".into(),
                    ));
                }
            }
            // Pass 2 wrote exactly what pass 1 counted: per chunk in total
            // (above), cursors in order, and the last one at each row's end.
            for (g, &r) in row_of.iter().enumerate() {
                if r == NO_ROW {
                    continue;
                }
                let len = row_ptr[r as usize + 1] - row_ptr[r as usize];
                let chunks = &counts.per_chunk;
                let ordered = chunks.windows(2).all(|w| w[0][g] <= w[1][g]);
                if !ordered || chunks.last().map(|c| c[g] as u64) != Some(len) {
                    return Err(BuildError::Internal(
                        "fill pass disagrees with count pass".into(),
                    ));
                }
            }
            let (min_delay_steps, max_delay_steps) = if n_syn == 0 { (0, 0) } else { (dmin, dmax) };
            let (flat_images, image_offsets) = flatten(images);
            let (flat_send, send_offsets) = flatten(send);
            let per_projection = std::mem::take(&mut counts.per_projection);
            drop(counts);
            Ok(ShardData {
                rank: self.rank,
                n_ranks: self.placement.n_ranks(),
                model_hash,
                n_neurons: self.model.n_neurons,
                weight_frac_bits: self.model.weight_frac_bits,
                target_bits,
                min_delay_steps,
                max_delay_steps,
                local_to_global: self.owned.clone(),
                image_offsets,
                images: flat_images,
                send_offsets,
                send: flat_send,
                row_ptr: row_ptr.clone(),
                syn_target_delay: std::mem::take(&mut syn_td),
                syn_weight: std::mem::take(&mut syn_w),
                projection_synapses: per_projection,
            })
        }
    }
}

/// Which sources (population indices) of a projection a given rank owns,
/// and their local indices there.
enum SourceFilter {
    /// Indices `lo..hi`, local indices from `base`.
    Block { lo: u64, hi: u64, base: u64 },
    /// Global ids equal to `rank` modulo `n_ranks` (round robin).
    Modulo { first: u64, n_ranks: u64, rank: u64 },
}

impl SourceFilter {
    #[inline]
    fn local(&self, s: u64) -> Option<u64> {
        match *self {
            SourceFilter::Block { lo, hi, base } => (s >= lo && s < hi).then(|| base + s - lo),
            SourceFilter::Modulo {
                first,
                n_ranks,
                rank,
            } => {
                let g = first + s;
                (g % n_ranks == rank).then(|| g / n_ranks)
            }
        }
    }
}

/// Bits needed to address `n` local neurons (at least 1).
pub fn bits_for(n: u64) -> u32 {
    let mut b = 1;
    while b < 31 && (1u64 << b) < n {
        b += 1;
    }
    b
}

/// Synapses generated per thread before they are grouped by source and
/// written (at most about 100 MB of buffers per thread). The more synapses
/// per block, the longer the runs each row receives: a full-scale
/// multi-area rank has about a million rows, so blocks of 2^19 synapses
/// took 20.6 s where 2^22 take 17.5 (rank 0 of 128, 1.9e8 synapses).
pub(crate) const BLOCK_SYNAPSES: usize = 1 << 22;

/// Where the fill threads write.
struct Out<'a> {
    td: &'a SharedOut<u32>,
    wt: &'a SharedOut<i32>,
    n_syn: usize,
    row_ptr: &'a [u64],
    row_of: &'a [u32],
    /// The global id of each row's source (the inverse of `row_of`).
    source_of: &'a [usize],
}

/// Groups a block of generated synapses by source before writing them, so
/// that each row receives one contiguous run per block instead of one
/// scattered store per synapse (the scattered stores missed the cache and
/// dominated large builds). Grouping is stable, so rows keep the canonical
/// order.
struct Blocker {
    g: Vec<usize>,
    td: Vec<u32>,
    w: Vec<i32>,
    /// Per synapse of the block: its row.
    rows: Vec<u32>,
    /// Per row: synapses in the block (zero between flushes).
    count: Vec<u32>,
    /// Per row: next slot in the grouped buffers.
    pos: Vec<u32>,
    tmp_td: Vec<u32>,
    tmp_w: Vec<i32>,
}

impl Blocker {
    /// A blocker for `n_rows` rows and a chunk of `synapses` synapses.
    fn new(n_rows: usize, synapses: u64) -> Result<Blocker, BuildError> {
        let cap = (synapses as usize).min(BLOCK_SYNAPSES) + 4096;
        let buffer = |v: &mut dyn FnMut() -> Result<(), std::collections::TryReserveError>| {
            v().map_err(|_| {
                BuildError::TooLarge(format!(
                    "out of memory allocating the write buffers of {cap} synapses"
                ))
            })
        };
        let mut b = Blocker {
            g: Vec::new(),
            td: Vec::new(),
            w: Vec::new(),
            rows: Vec::new(),
            count: zeroed(n_rows, "the row counters of a write buffer")?,
            pos: zeroed(n_rows, "the row cursors of a write buffer")?,
            tmp_td: Vec::new(),
            tmp_w: Vec::new(),
        };
        buffer(&mut || b.g.try_reserve_exact(cap))?;
        buffer(&mut || b.td.try_reserve_exact(cap))?;
        buffer(&mut || b.w.try_reserve_exact(cap))?;
        buffer(&mut || b.rows.try_reserve_exact(cap))?;
        buffer(&mut || b.tmp_td.try_reserve_exact(cap))?;
        buffer(&mut || b.tmp_w.try_reserve_exact(cap))?;
        Ok(b)
    }

    fn len(&self) -> usize {
        self.g.len()
    }

    #[inline]
    fn push(&mut self, g: usize, td: u32, w: i32) {
        self.g.push(g);
        self.td.push(td);
        self.w.push(w);
    }

    /// Write the block: counting sort by row into the temporary buffers,
    /// then one contiguous copy per row at the chunk's cursor.
    fn flush(&mut self, out: &Out, cursor: &mut [u32]) -> Result<(), BuildError> {
        let n = self.g.len();
        if n == 0 {
            return Ok(());
        }
        self.rows.clear();
        for &g in &self.g {
            let r = out.row_of[g];
            if r == NO_ROW {
                return Err(BuildError::Internal(
                    "synapse from a source without a row".into(),
                ));
            }
            self.count[r as usize] += 1;
            self.rows.push(r);
        }
        // Grouped in row order, so that the runs below go out in address
        // order (rows are laid out in order).
        let mut off = 0u32;
        for (p, &c) in self.pos.iter_mut().zip(&self.count) {
            *p = off;
            off += c;
        }
        self.tmp_td.resize(n, 0);
        self.tmp_w.resize(n, 0);
        for i in 0..n {
            let r = self.rows[i] as usize;
            let p = self.pos[r] as usize;
            self.tmp_td[p] = self.td[i];
            self.tmp_w[p] = self.w[i];
            self.pos[r] += 1;
        }
        for r in 0..self.count.len() {
            let k = self.count[r] as usize;
            if k == 0 {
                continue;
            }
            let g = out.source_of[r];
            let from = self.pos[r] as usize - k;
            let dst = (out.row_ptr[r] + cursor[g] as u64) as usize;
            if dst + k > out.n_syn || dst + k > out.row_ptr[r + 1] as usize {
                return Err(BuildError::Internal("synapse position out of range".into()));
            }
            // SAFETY: `dst + k` is within the row and the arrays (checked
            // above). Positions are disjoint between chunks: each (chunk,
            // source) pair owns the range [row start + cursor at pass start,
            // + its pass-1 count), and pass 2 draws the same sources as pass
            // 1 (same counter streams); the checks after the pass confirm it.
            unsafe {
                std::ptr::copy_nonoverlapping(self.tmp_td.as_ptr().add(from), out.td.0.add(dst), k);
                std::ptr::copy_nonoverlapping(self.tmp_w.as_ptr().add(from), out.wt.0.add(dst), k);
            }
            cursor[g] += k as u32;
            self.count[r] = 0;
        }
        self.g.clear();
        self.td.clear();
        self.w.clear();
        Ok(())
    }
}

/// Raw output pointer shared by the fill threads.
struct SharedOut<T>(*mut T);
// SAFETY: the threads write disjoint positions (see the write site), and
// the owning Vec outlives the parallel section.
unsafe impl<T: Send> Sync for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SharedOut<T> {}
