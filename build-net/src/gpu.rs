//! Building a rank's shard on a device (`snn-build --backend cuda`), with the
//! same result as the CPU builder ([`crate::rank`]) byte for byte.
//!
//! Written against [`Device`], so the same host code drives a CUDA GPU
//! (`snn_kernels::cuda::CudaDevice`) and, in the tests, the host C++
//! stand-in that runs the kernels on the CPU in permuted thread orders.
//!
//! # Pipeline (one rank)
//!
//! *Host plan* (small): the rank's own targets and, for each (own target,
//! projection targeting its population) *pair*, in canonical order (target
//! local index, then projection in config order), the target's index in its
//! population, its local index, the projection slot and the in-degree where
//! the host knows it (`fixed_indegree` with multapses: `k`; `one_to_one`;
//! `all_to_all`; `fixed_total_number`: the binomial split of
//! [`crate::connect::split_total_number`], computed on the host as in the
//! CPU builder).
//!
//! *Device*, kernels of `kernels/cuda/connect.cu` and `build.cu`:
//! 1. `snn_build_bernoulli_count`: in-degrees of `pairwise_bernoulli` pairs
//!    (one thread per pair walks the geometric gaps);
//! 2. exclusive scan of the in-degrees: `tp_off`, the first canonical index
//!    of each pair (scan without shared memory: segment sums, a one-thread
//!    scan of the sums, segment fills); `snn_build_proj_totals`: synapses
//!    per projection;
//! 3. sources that are not a function of `k` alone: `pairwise_bernoulli`
//!    (`snn_build_bernoulli_sources`, the same walk writing the sources) and
//!    `fixed_indegree` without multapses (`snn_build_distinct_sources`:
//!    Floyd's sampling with an open-addressing hash table of `2k` slots in
//!    the not yet written weight and packed-word arrays, then a heap sort;
//!    one thread per pair);
//! 4. `snn_build_synapses`: every synapse of the rank, one thread each,
//!    written at its canonical index (target, projection, synapse index):
//!    global source, weight, target | delay; synapses per source counted with
//!    32-bit atomic adds;
//! 5. images: flags of remote sources with synapses, in the order of the
//!    neurons grouped by owner rank (`Placement::owned` of each rank,
//!    uploaded); their exclusive scan gives each image's position, the image
//!    list and every neuron's row (`snn_build_rows`); the image offsets per
//!    rank are gathered from the scan;
//! 6. row lengths (`snn_build_row_len`) and their scan: `row_ptr`;
//! 7. `snn_build_scatter`: each synapse's canonical index into its row, at a
//!    slot from the row's atomic cursor (so in thread order), then
//!    `snn_build_sort_rows` sorts each row's indices (heap sort, one thread
//!    per row): the indices are distinct, so the sorted row is the canonical
//!    one whatever the thread order;
//! 8. `snn_build_gather_synapses`: the packed (target, delay) words and the
//!    weights in CSR order.
//!
//! Send tables depend on the other ranks' images: the host computes them
//! from the image lists of all ranks (in one process: a first pass that
//! stops after step 5 for every rank; under MPI: the one all-to-all
//! exchange of `mpi_build`).
//!
//! Every connection rule runs on the device; the host only computes the
//! `fixed_total_number` in-degrees (a binomial tree, per target).
//!
//! # Memory and transfers
//!
//! Device memory at the peak: 24 bytes per synapse of the rank (generated
//! source, packed word and weight, 12 bytes, and a 64-bit canonical index
//! during the scatter; the source array is freed before the final 8 bytes
//! per synapse are allocated), plus 16 to 24 bytes per neuron of the network
//! (synapses per source, row of each neuron, the rank order and the scan of
//! the image flags), 16 bytes per row and 24 bytes per pair.
//!
//! Host to device: 16 bytes per pair, 4 bytes per neuron of the network (the
//! rank order), the projections' parameters and the ziggurat tables (6 KiB).
//! Device to host: the images (8 bytes each), `row_ptr` (8 bytes per row),
//! the synapses (8 bytes each: the shard is written by the host), the
//! synapses per projection and a few scalars. Nothing else crosses: the
//! generated synapses, the counts per source and the rows stay on the
//! device.
//!
//! On an error the buffers of the failed rank are left to the device, which
//! the caller drops.

use snn_formats::model::{Model, Rule};
use snn_formats::placement::Placement;
use snn_formats::shard::ShardData;
pub use snn_kernels::device::DeviceFactory;
use snn_kernels::device::{grid_for, DevVec, Device, DeviceError};
use snn_kernels::launch;
use snn_kernels::registry::{
    BuildProjParams, ConnectParams, RULE_ALL_TO_ALL, RULE_BERNOULLI, RULE_DISTINCT,
    RULE_ONE_TO_ONE, RULE_PER_SYNAPSE,
};
use snn_kernels::ziggurat::ZigguratTables;

use crate::connect::{device_dist, SourceMode};
use crate::rank::{bits_for, RankPlan, NO_ROW};
use crate::BuildError;

/// The exclusive prefix sums of `input[..n]` on the device: `n + 1` values,
/// the last one the total. Segments of `seg` items (0: a size chosen from
/// `n`) are summed by one thread each, the segment sums scanned by one
/// thread, and the segments filled in.
pub fn exclusive_scan(
    dev: &mut dyn Device,
    input: &DevVec<u32>,
    n: usize,
    seg: u64,
) -> Result<DevVec<u64>, DeviceError> {
    if n > input.len() {
        return Err(DeviceError::Range(format!(
            "scan of {n} items of a buffer of {}",
            input.len()
        )));
    }
    let n64 = n as u64;
    let seg = if seg == 0 {
        // Balance the segment loops and the one-thread scan of their sums.
        (n64 as f64).sqrt().ceil().max(1.0) as u64
    } else {
        seg
    };
    let n_seg = n64.div_ceil(seg);
    let out = DevVec::<u64>::zeros(dev, n + 1, "prefix sums")?;
    let partial = DevVec::<u64>::zeros(dev, n_seg as usize + 1, "segment sums")?;
    let shape = grid_for(dev, n_seg);
    launch::BuildScanPartials {
        input: input.ptr(),
        n: n64,
        seg,
        partial: partial.ptr(),
    }
    .launch(dev, shape)?;
    let top = grid_for(dev, 1);
    launch::BuildScanTop {
        partial: partial.ptr(),
        n_seg,
        out: out.ptr(),
        n: n64,
    }
    .launch(dev, top)?;
    launch::BuildScanFinish {
        input: input.ptr(),
        n: n64,
        seg,
        partial: partial.ptr(),
        out: out.ptr(),
    }
    .launch(dev, shape)?;
    partial.free(dev);
    Ok(out)
}

fn read_one<T: snn_kernels::device::Pod>(
    dev: &mut dyn Device,
    v: &DevVec<T>,
    i: usize,
) -> Result<T, DeviceError> {
    Ok(v.read(dev, i..i + 1)?.first().copied().unwrap_or_default())
}

/// A rank generated on the device, up to its images (steps 1 to 5 of the
/// module documentation); [`GpuRank::finish`] builds the CSR. Its buffers
/// live on the device it was generated on.
pub struct GpuRank<'a> {
    plan: RankPlan<'a>,
    target_bits: u32,
    n_syn: usize,
    per_projection: Vec<u64>,
    images: Vec<Vec<u64>>,
    gen_src: DevVec<u32>,
    gen_td: DevVec<u32>,
    gen_w: DevVec<i32>,
    src_count: DevVec<u32>,
    row_of: DevVec<u32>,
}

impl<'a> GpuRank<'a> {
    /// Generates rank `rank`'s synapses on `dev` and finds its images.
    pub fn generate(
        dev: &mut dyn Device,
        model: &'a Model,
        placement: &'a Placement,
        rank: u32,
    ) -> Result<GpuRank<'a>, BuildError> {
        let n_neurons = model.n_neurons;
        if n_neurons >= u32::MAX as u64 {
            return Err(BuildError::TooLarge(format!(
                "{n_neurons} neurons: the GPU builder handles fewer than 2^32 - 1"
            )));
        }
        check_buildable(model)?;
        let plan = RankPlan::new(model, placement, rank, 1)?;
        let n_local = plan.owned.len();
        let target_bits = bits_for(n_local as u64);

        // The pairs, on the host.
        let mut tgt_index = Vec::new();
        let mut tgt_local = Vec::new();
        let mut pair_proj = Vec::new();
        let mut pair_n = Vec::new();
        let (mut any_bernoulli, mut any_distinct) = (false, false);
        let too_large = |what: &str| BuildError::TooLarge(format!("rank {rank}: {what}"));
        for l in 0..n_local {
            let pi = plan.pop_of_local(l);
            let t = plan.owned[l] - model.populations[pi].first_id;
            let own_in_pop = l - plan.pop_local[pi].0;
            for &j in &plan.by_target[pi] {
                let pp = &plan.projs[j];
                let excl = u64::from(pp.exclude_self);
                let n: u64 = match pp.proj.rule {
                    Rule::FixedTotalNumber { .. } => plan.split_indeg[j][own_in_pop] as u64,
                    Rule::FixedIndegree { k } if pp.mode == SourceMode::PerSynapse => k,
                    Rule::OneToOne => 1 - excl,
                    Rule::AllToAll => pp.n_src - excl,
                    Rule::PairwiseBernoulli { .. } => {
                        any_bernoulli = true;
                        0
                    }
                    // Without multapses: min(k, available sources).
                    Rule::FixedIndegree { k } => {
                        any_distinct = true;
                        k.min(pp.n_src - excl)
                    }
                    Rule::SonataEdges { .. } => return Err(sonata_on_gpu(&pp.proj)),
                };
                tgt_index.push(u32::try_from(t).map_err(|_| too_large("population index"))?);
                tgt_local.push(l as u32);
                pair_proj.push(j as u32);
                pair_n.push(u32::try_from(n).map_err(|_| too_large("in-degree over 2^32"))?);
            }
        }
        let n_pairs =
            u32::try_from(tgt_index.len()).map_err(|_| too_large("over 2^32 target pairs"))?;
        let n_proj = plan.projs.len();

        // Projection parameters.
        let mut params = Vec::new();
        for pp in &plan.projs {
            let rule = match pp.proj.rule {
                _ if pp.mode == SourceMode::PerSynapse => RULE_PER_SYNAPSE,
                Rule::OneToOne => RULE_ONE_TO_ONE,
                Rule::AllToAll => RULE_ALL_TO_ALL,
                Rule::PairwiseBernoulli { .. } => RULE_BERNOULLI,
                _ => RULE_DISTINCT,
            };
            let p = BuildProjParams {
                connect: ConnectParams {
                    seed: pp.seed,
                    n_src: pp.n_src,
                    weight: device_dist(&pp.proj.weight_pa),
                    delay: device_dist(&pp.proj.delay_ms),
                    dt_ms: pp.dt_ms,
                    projection: pp.proj.index,
                    exclude_self: u32::from(pp.exclude_self),
                    frac_bits: pp.frac_bits,
                    target_bits,
                },
                src_first: pp.src_first,
                ln_1mp: pp.ln_1mp,
                rule,
                pad: 0,
            };
            params.extend_from_slice(&p.to_le_bytes());
        }
        let projs = DevVec::<u8>::from_slice(dev, &params, "projection parameters")?;
        let d_tgt_index = DevVec::from_slice(dev, &tgt_index, "pair targets")?;
        let d_tgt_local = DevVec::from_slice(dev, &tgt_local, "pair local targets")?;
        let d_pair_proj = DevVec::from_slice(dev, &pair_proj, "pair projections")?;
        let d_pair_n = DevVec::from_slice(dev, &pair_n, "pair in-degrees")?;
        drop((tgt_index, tgt_local, pair_proj, pair_n));
        let pairs_shape = grid_for(dev, n_pairs as u64);
        if any_bernoulli {
            launch::BuildBernoulliCount {
                projs: projs.ptr(),
                n_pairs,
                pair_tgt_index: d_tgt_index.ptr(),
                pair_proj: d_pair_proj.ptr(),
                pair_n: d_pair_n.ptr(),
            }
            .launch(dev, pairs_shape)?;
        }
        let tp_off = exclusive_scan(dev, &d_pair_n, n_pairs as usize, 0)?;
        let n_syn64 = read_one(dev, &tp_off, n_pairs as usize)?;
        let n_syn = usize::try_from(n_syn64).map_err(|_| too_large("synapse count"))?;
        let totals = DevVec::<i64>::zeros(dev, n_proj, "synapses per projection")?;
        launch::BuildProjTotals {
            pair_n: d_pair_n.ptr(),
            n_pairs,
            pair_proj: d_pair_proj.ptr(),
            totals: totals.ptr(),
        }
        .launch(dev, pairs_shape)?;
        let per_projection: Vec<u64> = totals.to_vec(dev)?.into_iter().map(|x| x as u64).collect();
        totals.free(dev);
        d_pair_n.free(dev);
        if per_projection.iter().sum::<u64>() != n_syn64 {
            return Err(BuildError::Internal(
                "synapses per projection disagree with the in-degrees".into(),
            ));
        }

        // Sources that are not a function of the synapse index.
        let gen_src = DevVec::<u32>::zeros(dev, n_syn, "generated sources")?;
        let gen_td = DevVec::<u32>::zeros(dev, n_syn, "generated targets and delays")?;
        let gen_w = DevVec::<i32>::zeros(dev, n_syn, "generated weights")?;
        if any_bernoulli {
            launch::BuildBernoulliSources {
                projs: projs.ptr(),
                n_pairs,
                pair_tgt_index: d_tgt_index.ptr(),
                pair_proj: d_pair_proj.ptr(),
                tp_off: tp_off.ptr(),
                out_src: gen_src.ptr(),
            }
            .launch(dev, pairs_shape)?;
        }
        if any_distinct {
            // gen_td and gen_w serve as the hash tables of Floyd's sampling
            // before the synapses are written there.
            launch::BuildDistinctSources {
                projs: projs.ptr(),
                n_pairs,
                pair_tgt_index: d_tgt_index.ptr(),
                pair_proj: d_pair_proj.ptr(),
                tp_off: tp_off.ptr(),
                out_src: gen_src.ptr(),
                scratch_a: gen_td.ptr(),
                scratch_b: gen_w.ptr(),
            }
            .launch(dev, pairs_shape)?;
        }

        // Every synapse.
        let zig = DevVec::from_slice(dev, &ZigguratTables::get().to_flat(), "ziggurat tables")?;
        let src_count = DevVec::<u32>::zeros(dev, n_neurons as usize, "synapses per source")?;
        let n_bad = DevVec::<u32>::zeros(dev, n_proj, "delay overflows")?;
        let shape = grid_for(dev, n_syn64);
        launch::BuildSynapses {
            projs: projs.ptr(),
            zig_tables: zig.ptr(),
            tp_off: tp_off.ptr(),
            n_pairs,
            pair_tgt_index: d_tgt_index.ptr(),
            pair_tgt_local: d_tgt_local.ptr(),
            pair_proj: d_pair_proj.ptr(),
            out_src: gen_src.ptr(),
            out_w: gen_w.ptr(),
            out_td: gen_td.ptr(),
            src_count: src_count.ptr(),
            n_bad_delay: n_bad.ptr(),
        }
        .launch(dev, shape)?;
        let bad = n_bad.to_vec(dev)?;
        for b in [n_bad, d_tgt_index, d_tgt_local, d_pair_proj] {
            b.free(dev);
        }
        zig.free(dev);
        tp_off.free(dev);
        projs.free(dev);
        if let Some((j, &c)) = bad.iter().enumerate().find(|(_, &c)| c > 0) {
            return Err(BuildError::TooLarge(format!(
                "projection '{}': {c} delays do not fit next to {target_bits}-bit targets",
                plan.projs[j].proj.name
            )));
        }

        // Images and rows.
        let n_ranks = placement.n_ranks();
        let mut perm: Vec<u32> = Vec::with_capacity(n_neurons as usize);
        let mut rank_off: Vec<u64> = Vec::with_capacity(n_ranks as usize + 1);
        for q in 0..n_ranks {
            rank_off.push(perm.len() as u64);
            if q == rank {
                perm.extend(plan.owned.iter().map(|&g| g as u32));
            } else {
                perm.extend(placement.owned(q).into_iter().map(|g| g as u32));
            }
        }
        rank_off.push(perm.len() as u64);
        if perm.len() as u64 != n_neurons {
            return Err(BuildError::Internal(
                "the placement does not cover every neuron once".into(),
            ));
        }
        let (own_lo, own_hi) = (rank_off[rank as usize], rank_off[rank as usize + 1]);
        let d_perm = DevVec::from_slice(dev, &perm, "neurons by rank")?;
        drop(perm);
        let flags = DevVec::<u32>::zeros(dev, n_neurons as usize, "image flags")?;
        let neuron_shape = grid_for(dev, n_neurons);
        launch::BuildImageFlags {
            perm: d_perm.ptr(),
            n_neurons,
            own_lo,
            own_hi,
            src_count: src_count.ptr(),
            flags: flags.ptr(),
        }
        .launch(dev, neuron_shape)?;
        let pos = exclusive_scan(dev, &flags, n_neurons as usize, 0)?;
        let n_images = read_one(dev, &pos, n_neurons as usize)? as usize;
        let n_rows = n_local + n_images;
        if n_rows >= NO_ROW as usize {
            return Err(BuildError::TooLarge(format!(
                "rank {rank} would have {n_rows} rows (own neurons + images); at most 2^32-2"
            )));
        }
        let row_of = DevVec::<u32>::zeros(dev, n_neurons as usize, "row of each neuron")?;
        let d_images = DevVec::<u64>::zeros(dev, n_images, "images")?;
        launch::BuildRows {
            perm: d_perm.ptr(),
            n_neurons,
            own_lo,
            own_hi,
            flags: flags.ptr(),
            pos: pos.ptr(),
            n_local: n_local as u32,
            row_of: row_of.ptr(),
            images: d_images.ptr(),
        }
        .launch(dev, neuron_shape)?;
        let d_rank_off = DevVec::from_slice(dev, &rank_off, "rank offsets")?;
        let d_image_off = DevVec::<u64>::zeros(dev, rank_off.len(), "image offsets")?;
        let shape = grid_for(dev, rank_off.len() as u64);
        launch::BuildGatherU64 {
            src: pos.ptr(),
            idx: d_rank_off.ptr(),
            n: rank_off.len() as u64,
            out: d_image_off.ptr(),
        }
        .launch(dev, shape)?;
        let image_off = d_image_off.to_vec(dev)?;
        let flat_images = d_images.to_vec(dev)?;
        for b in [d_perm, flags] {
            b.free(dev);
        }
        for b in [pos, d_rank_off, d_image_off, d_images] {
            b.free(dev);
        }
        let mut images = Vec::with_capacity(n_ranks as usize);
        for w in image_off.windows(2) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            if a > b || b > flat_images.len() {
                return Err(BuildError::Internal("image offsets out of order".into()));
            }
            images.push(flat_images[a..b].to_vec());
        }
        Ok(GpuRank {
            plan,
            target_bits,
            n_syn,
            per_projection,
            images,
            gen_src,
            gen_td,
            gen_w,
            src_count,
            row_of,
        })
    }

    /// Synapses of the rank.
    pub fn n_synapses(&self) -> u64 {
        self.n_syn as u64
    }

    /// Remote sources with synapses here, grouped by owner rank, sorted (as
    /// [`RankPlan::images`]).
    pub fn images(&self) -> &[Vec<u64>] {
        &self.images
    }

    /// Frees the device buffers without building the CSR.
    pub fn free(self, dev: &mut dyn Device) {
        for b in [self.gen_src, self.gen_td, self.src_count, self.row_of] {
            b.free(dev);
        }
        self.gen_w.free(dev);
    }

    /// Builds the CSR on the device (steps 6 to 8) and the shard, with send
    /// tables `send` (for each rank, the local indices of own neurons it
    /// has images of).
    pub fn finish(
        self,
        dev: &mut dyn Device,
        send: &[Vec<u32>],
        model_hash: [u8; 16],
    ) -> Result<ShardData, BuildError> {
        let GpuRank {
            plan,
            target_bits,
            n_syn,
            per_projection,
            images,
            gen_src,
            gen_td,
            gen_w,
            src_count,
            row_of,
        } = self;
        let n_neurons = plan.model.n_neurons;
        let n_local = plan.owned.len();
        let n_images: usize = images.iter().map(|v| v.len()).sum();
        let n_rows = n_local + n_images;
        let row_len = DevVec::<u32>::zeros(dev, n_rows, "row lengths")?;
        let shape = grid_for(dev, n_neurons);
        launch::BuildRowLen {
            src_count: src_count.ptr(),
            n_neurons,
            row_of: row_of.ptr(),
            row_len: row_len.ptr(),
        }
        .launch(dev, shape)?;
        src_count.free(dev);
        let row_ptr = exclusive_scan(dev, &row_len, n_rows, 0)?;
        row_len.free(dev);
        let cursor = DevVec::<u32>::zeros(dev, n_rows, "row cursors")?;
        let key = DevVec::<u64>::zeros(dev, n_syn, "canonical indices")?;
        let n_err = DevVec::<u32>::zeros(dev, 1, "scatter errors")?;
        let shape = grid_for(dev, n_syn as u64);
        launch::BuildScatter {
            gen_src: gen_src.ptr(),
            n_syn: n_syn as u64,
            row_of: row_of.ptr(),
            row_ptr: row_ptr.ptr(),
            cursor: cursor.ptr(),
            key: key.ptr(),
            n_err: n_err.ptr(),
        }
        .launch(dev, shape)?;
        for b in [cursor, gen_src, row_of] {
            b.free(dev);
        }
        let errors = read_one(dev, &n_err, 0)?;
        n_err.free(dev);
        let shape = grid_for(dev, n_rows as u64);
        launch::BuildSortRows {
            row_ptr: row_ptr.ptr(),
            n_rows: n_rows as u64,
            key: key.ptr(),
        }
        .launch(dev, shape)?;
        let out_td = DevVec::<u32>::zeros(dev, n_syn, "synapse targets and delays")?;
        let out_w = DevVec::<i32>::zeros(dev, n_syn, "synapse weights")?;
        let shape = grid_for(dev, n_syn as u64);
        launch::BuildGatherSynapses {
            key: key.ptr(),
            n_syn: n_syn as u64,
            gen_td: gen_td.ptr(),
            gen_w: gen_w.ptr(),
            out_td: out_td.ptr(),
            out_w: out_w.ptr(),
        }
        .launch(dev, shape)?;
        key.free(dev);
        gen_td.free(dev);
        gen_w.free(dev);
        let row_ptr_host = row_ptr.to_vec(dev)?;
        row_ptr.free(dev);
        let syn_target_delay = out_td.read(dev, 0..n_syn)?;
        let syn_weight = out_w.read(dev, 0..n_syn)?;
        out_td.free(dev);
        out_w.free(dev);
        if errors != 0 || row_ptr_host.last().copied() != Some(n_syn as u64) {
            return Err(BuildError::Internal(
                "the CSR scatter disagrees with the synapse counts".into(),
            ));
        }
        let (mut dmin, mut dmax) = (u32::MAX, 0u32);
        for &td in &syn_target_delay {
            let d = td >> target_bits;
            dmin = dmin.min(d);
            dmax = dmax.max(d);
        }
        let (min_delay_steps, max_delay_steps) = if n_syn == 0 { (0, 0) } else { (dmin, dmax) };
        let (flat_images, image_offsets) = crate::rank::flatten(&images);
        let (flat_send, send_offsets) = crate::rank::flatten(send);
        Ok(ShardData {
            rank: plan.rank,
            n_ranks: plan.placement.n_ranks(),
            model_hash,
            n_neurons,
            weight_frac_bits: plan.model.weight_frac_bits,
            target_bits,
            min_delay_steps,
            max_delay_steps,
            local_to_global: plan.owned,
            image_offsets,
            images: flat_images,
            send_offsets,
            send: flat_send,
            row_ptr: row_ptr_host,
            syn_target_delay,
            syn_weight,
            projection_synapses: per_projection,
        })
    }
}

/// Builds rank `rank`'s shard on `dev` (one rank alone: `images_of` gives,
/// for each other rank, its image lists as [`GpuRank::images`], from which
/// the send tables are made; empty for one rank).
pub fn build_rank_on_device(
    dev: &mut dyn Device,
    model: &Model,
    placement: &Placement,
    rank: u32,
    images_of: &[Vec<Vec<u64>>],
    model_hash: [u8; 16],
) -> Result<ShardData, BuildError> {
    let g = GpuRank::generate(dev, model, placement, rank)?;
    let send = send_tables(placement, rank, images_of);
    g.finish(dev, &send, model_hash)
}

/// Send tables of rank `rank`: for each destination `d`, the local indices
/// of the neurons of `rank` that `d` has images of (`images_of[d][rank]`).
pub fn send_tables(placement: &Placement, rank: u32, images_of: &[Vec<Vec<u64>>]) -> Vec<Vec<u32>> {
    (0..placement.n_ranks() as usize)
        .map(|d| {
            images_of
                .get(d)
                .and_then(|im| im.get(rank as usize))
                .map(|v| v.iter().map(|&g| placement.locate(g).1).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// Refuse, before any device is opened, a model the GPU builder cannot
/// build: one with synapses read from files (rule `sonata_edges`).
pub fn check_buildable(model: &Model) -> Result<(), BuildError> {
    match model
        .projections
        .iter()
        .find(|p| matches!(p.rule, Rule::SonataEdges { .. }))
    {
        Some(p) => Err(sonata_on_gpu(p)),
        None => Ok(()),
    }
}

/// The GPU builder draws synapses; it does not read them from files.
fn sonata_on_gpu(p: &snn_formats::model::Projection) -> BuildError {
    BuildError::Invalid(format!(
        "projections[{}] ('{}'): rule sonata_edges reads its synapses from a file; build it on the CPU (--backend cpu)",
        p.index, p.name
    ))
}
