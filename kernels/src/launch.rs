//! Typed launches of the kernels the simulation engine and the GPU builder
//! run: one declaration per kernel signature, the arguments by name and
//! type, instead of positional [`Arg`] lists. (The test kernels are
//! launched by the tests with [`Arg`] lists.)
//!
//! Each kernel is a struct whose fields are the C function's parameters in
//! order (pointers as [`Ptr`], scalars as their Rust type, structs by value
//! as their `#[repr(C)]` mirror); `launch` passes them to
//! [`Device::launch`] in that order. The C signatures are in the `.cu`
//! files and in [`KernelId`]'s documentation.

use crate::device::{Arg, Device, DeviceError, Ptr, Shape};
use crate::registry::{KernelId, UpdateStep as UpdateStepParams};

/// A value a kernel takes as one argument.
pub trait KernelArg {
    /// The argument as [`Device::launch`] takes it.
    fn arg(&self) -> Arg;
}

impl KernelArg for Ptr {
    fn arg(&self) -> Arg {
        (*self).into()
    }
}

impl KernelArg for u32 {
    fn arg(&self) -> Arg {
        Arg::U32(*self)
    }
}

impl KernelArg for u64 {
    fn arg(&self) -> Arg {
        Arg::U64(*self)
    }
}

impl KernelArg for UpdateStepParams {
    fn arg(&self) -> Arg {
        Arg::Struct(self.to_le_bytes())
    }
}

/// Declares a struct per kernel (fields = the C parameters in order) with
/// its `launch`.
macro_rules! launches {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident => $kernel:ident {
            $($(#[doc = $fdoc:literal])* $field:ident: $ty:ty,)+
        }
    )+) => {$(
        $(#[doc = $doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            $($(#[doc = $fdoc])* pub $field: $ty,)+
        }

        impl $name {
            /// Launch it on `dev` with `shape`.
            pub fn launch(&self, dev: &mut dyn Device, shape: Shape) -> Result<(), DeviceError> {
                dev.launch(KernelId::$kernel, shape, &[$(KernelArg::arg(&self.$field),)+])
            }
        }
    )+};
}

launches! {
    /// `snn_update_step`: one step of every local neuron of a rank, with
    /// spike and V_m recording.
    UpdateStep => UpdateStep {
        /// The step's parameters.
        step: UpdateStepParams,
        /// The populations' descriptors (`PopDesc`s).
        pops: Ptr,
        /// The state rows (`n_local` each; row 0 the membrane potentials).
        vars: Ptr,
        /// Remaining refractory steps.
        refractory: Ptr,
        /// The step's excitatory ring row.
        row_ex: Ptr,
        /// The step's inhibitory ring row.
        row_in: Ptr,
        /// Global ids (Poisson words).
        gid: Ptr,
        /// Poisson tables.
        table: Ptr,
        /// Spike generator steps.
        gen_steps: Ptr,
        /// The spike list.
        spikes: Ptr,
        /// Its counter.
        n_spikes: Ptr,
        /// The other interval parity's counter.
        n_spikes_next: Ptr,
        /// The spike recording.
        rec: Ptr,
        /// Its counter.
        n_rec: Ptr,
        /// The recording's overflow counter.
        err_record: Ptr,
        /// Per neuron: its V_m column or `NO_COLUMN`.
        vm_col: Ptr,
        /// The step's V_m row.
        vm_row: Ptr,
    }

    /// `snn_deliver_list`: the listed spikes' synapses into the ring
    /// buffers, the count read from device memory.
    DeliverList => DeliverList {
        /// Entries `offset << 32 | row`.
        spikes: Ptr,
        /// Their count (device memory).
        n_spikes: Ptr,
        /// The list's capacity.
        capacity: u32,
        /// First step of the interval.
        interval_start: u64,
        /// The shard's row offsets.
        row_ptr: Ptr,
        /// Targets and delays.
        syn_td: Ptr,
        /// Fixed-point weights.
        syn_w: Ptr,
        /// Bits of the target in `syn_td`.
        target_bits: u32,
        /// Ring slots.
        slots: u64,
        /// Local neurons.
        n_local: u32,
        /// Excitatory ring.
        ring_ex: Ptr,
        /// Inhibitory ring.
        ring_in: Ptr,
        /// 1: count the synaptic events into `n_events`.
        count_events: u32,
        /// The event counter.
        n_events: Ptr,
        /// The error counters.
        err: Ptr,
        /// The counter to increment when the list overflowed.
        err_index: u32,
    }

    /// `snn_pack_p2p`: every spike's send entries into the destinations'
    /// regions of `out`.
    PackP2p => PackP2p {
        /// The spike list.
        spikes: Ptr,
        /// Its count (device memory).
        n_spikes: Ptr,
        /// Its capacity.
        capacity: u32,
        /// Per local neuron: its range of `send_entries`.
        send_ptr: Ptr,
        /// `rank << 32 | position`.
        send_entries: Ptr,
        /// Start of each destination's region.
        out_start: Ptr,
        /// Capacity of each region.
        out_cap: Ptr,
        /// The regions.
        out: Ptr,
        /// Per destination: entries written.
        out_count: Ptr,
        /// The error counters.
        err: Ptr,
    }

    /// `snn_pack_prefix`: where each region of [`PackP2p`] goes in the
    /// packed list (one thread).
    PackPrefix => PackPrefix {
        /// Per destination: entries written.
        out_count: Ptr,
        /// Capacity of each region.
        out_cap: Ptr,
        /// Destinations.
        n_ranks: u32,
        /// The `n_ranks + 1` starts (written).
        starts: Ptr,
    }

    /// `snn_pack_gather`: the regions of [`PackP2p`] back to back.
    PackGather => PackGather {
        /// The regions.
        out: Ptr,
        /// Start of each region.
        out_start: Ptr,
        /// Their starts in `packed`.
        starts: Ptr,
        /// Destinations.
        n_ranks: u32,
        /// The packed list (written).
        packed: Ptr,
    }

    /// `snn_pack_collective`: the spikes any other rank needs, once.
    PackCollective => PackCollective {
        /// The spike list.
        spikes: Ptr,
        /// Its count (device memory).
        n_spikes: Ptr,
        /// Its capacity.
        capacity: u32,
        /// Per local neuron: its range of send entries (empty: not needed).
        send_ptr: Ptr,
        /// The output.
        out: Ptr,
        /// Entries written.
        out_count: Ptr,
        /// The output's capacity.
        out_cap: u32,
        /// The error counters.
        err: Ptr,
    }

    /// `snn_unpack_p2p`: the point-to-point entries of `n_seg` senders into
    /// the delivery list.
    UnpackP2p => UnpackP2p {
        /// The received entries.
        recv: Ptr,
        /// The senders' segments.
        seg: Ptr,
        /// Senders.
        n_seg: u32,
        /// Per sender `s`: its images are rows `n_local + images[2 s]` ..
        /// `n_local + images[2 s + 1]`.
        images: Ptr,
        /// Steps per interval.
        interval: u64,
        /// Local neurons (rows of images start after them).
        n_local: u32,
        /// The delivery list.
        deliv: Ptr,
        /// Its count.
        n_deliv: Ptr,
        /// Its capacity.
        deliv_cap: u32,
        /// The error counters.
        err: Ptr,
    }

    /// `snn_unpack_collective`: the collective entries of `n_seg` senders
    /// into the delivery list.
    UnpackCollective => UnpackCollective {
        /// The received entries.
        recv: Ptr,
        /// The senders' segments.
        seg: Ptr,
        /// Senders.
        n_seg: u32,
        /// Per sender `s`: the start in `needs` of its images, their
        /// number and the row of the first (`params[3 s ..]`).
        params: Ptr,
        /// Steps per interval.
        interval: u64,
        /// The image table.
        needs: Ptr,
        /// The delivery list.
        deliv: Ptr,
        /// Its count.
        n_deliv: Ptr,
        /// Its capacity.
        deliv_cap: u32,
        /// The error counters.
        err: Ptr,
    }

    /// `snn_build_scan_partials`: the sums of segments of `seg` elements.
    BuildScanPartials => BuildScanPartials {
        /// The values (`u32`).
        input: Ptr,
        /// Their number.
        n: u64,
        /// Elements per segment.
        seg: u64,
        /// Per segment: its sum (written).
        partial: Ptr,
    }

    /// `snn_build_scan_top`: exclusive prefix sums of the segment sums (one
    /// thread), and the total at `out[n]`.
    BuildScanTop => BuildScanTop {
        /// The segment sums (replaced by their prefix sums).
        partial: Ptr,
        /// Segments.
        n_seg: u64,
        /// The result (`n + 1` entries; the total written).
        out: Ptr,
        /// Values.
        n: u64,
    }

    /// `snn_build_scan_finish`: the exclusive prefix sums inside each
    /// segment.
    BuildScanFinish => BuildScanFinish {
        /// The values.
        input: Ptr,
        /// Their number.
        n: u64,
        /// Elements per segment.
        seg: u64,
        /// The segments' prefix sums.
        partial: Ptr,
        /// The result (written).
        out: Ptr,
    }

    /// `snn_build_bernoulli_count`: in-degrees of the `pairwise_bernoulli`
    /// pairs.
    BuildBernoulliCount => BuildBernoulliCount {
        /// The projections (`BuildProjParams`).
        projs: Ptr,
        /// (target, projection) pairs.
        n_pairs: u32,
        /// Per pair: the target's index in its population.
        pair_tgt_index: Ptr,
        /// Per pair: the projection.
        pair_proj: Ptr,
        /// Per pair: its synapses (written).
        pair_n: Ptr,
    }

    /// `snn_build_proj_totals`: synapses per projection.
    BuildProjTotals => BuildProjTotals {
        /// Per pair: its synapses.
        pair_n: Ptr,
        /// Pairs.
        n_pairs: u32,
        /// Per pair: the projection.
        pair_proj: Ptr,
        /// Per projection: its synapses (added to).
        totals: Ptr,
    }

    /// `snn_build_bernoulli_sources`: the sources of the
    /// `pairwise_bernoulli` pairs.
    BuildBernoulliSources => BuildBernoulliSources {
        /// The projections.
        projs: Ptr,
        /// Pairs.
        n_pairs: u32,
        /// Per pair: the target's index in its population.
        pair_tgt_index: Ptr,
        /// Per pair: the projection.
        pair_proj: Ptr,
        /// Per pair: its first synapse.
        tp_off: Ptr,
        /// Per synapse: its source (written).
        out_src: Ptr,
    }

    /// `snn_build_distinct_sources`: sources of `fixed_indegree` without
    /// multapses (Floyd's sampling).
    BuildDistinctSources => BuildDistinctSources {
        /// The projections.
        projs: Ptr,
        /// Pairs.
        n_pairs: u32,
        /// Per pair: the target's index in its population.
        pair_tgt_index: Ptr,
        /// Per pair: the projection.
        pair_proj: Ptr,
        /// Per pair: its first synapse.
        tp_off: Ptr,
        /// Per synapse: its source (written).
        out_src: Ptr,
        /// Scratch, one word per synapse.
        scratch_a: Ptr,
        /// Scratch, one word per synapse.
        scratch_b: Ptr,
    }

    /// `snn_build_synapses`: every synapse of a rank, in canonical order.
    BuildSynapses => BuildSynapses {
        /// The projections.
        projs: Ptr,
        /// The ziggurat tables.
        zig_tables: Ptr,
        /// Per pair: its first synapse.
        tp_off: Ptr,
        /// Pairs.
        n_pairs: u32,
        /// Per pair: the target's index in its population.
        pair_tgt_index: Ptr,
        /// Per pair: the target's local index.
        pair_tgt_local: Ptr,
        /// Per pair: the projection.
        pair_proj: Ptr,
        /// Per synapse: its source (drawn here or listed before).
        out_src: Ptr,
        /// Per synapse: its fixed-point weight (written).
        out_w: Ptr,
        /// Per synapse: target and delay (written).
        out_td: Ptr,
        /// Per source neuron: its synapses (added to).
        src_count: Ptr,
        /// Synapses whose delay does not fit (added to).
        n_bad_delay: Ptr,
    }

    /// `snn_build_image_flags`: which neurons of other ranks have synapses
    /// here.
    BuildImageFlags => BuildImageFlags {
        /// The placement's permutation.
        perm: Ptr,
        /// Neurons of the network.
        n_neurons: u64,
        /// First position this rank owns.
        own_lo: u64,
        /// End of the positions this rank owns.
        own_hi: u64,
        /// Per source neuron: its synapses here.
        src_count: Ptr,
        /// Per position: 1 for an image (written).
        flags: Ptr,
    }

    /// `snn_build_rows`: the row of every neuron and the images.
    BuildRows => BuildRows {
        /// The placement's permutation.
        perm: Ptr,
        /// Neurons of the network.
        n_neurons: u64,
        /// First position this rank owns.
        own_lo: u64,
        /// End of the positions this rank owns.
        own_hi: u64,
        /// Per position: 1 for an image.
        flags: Ptr,
        /// The flags' prefix sums.
        pos: Ptr,
        /// Local neurons.
        n_local: u32,
        /// Per neuron: its row (written).
        row_of: Ptr,
        /// The images' global ids (written).
        images: Ptr,
    }

    /// `snn_build_gather_u64`: `out[i] = src[idx[i]]`.
    BuildGatherU64 => BuildGatherU64 {
        /// The values.
        src: Ptr,
        /// The indices.
        idx: Ptr,
        /// Indices.
        n: u64,
        /// The result (written).
        out: Ptr,
    }

    /// `snn_build_row_len`: synapses per row.
    BuildRowLen => BuildRowLen {
        /// Per source neuron: its synapses here.
        src_count: Ptr,
        /// Neurons of the network.
        n_neurons: u64,
        /// Per neuron: its row.
        row_of: Ptr,
        /// Per row: its synapses (written).
        row_len: Ptr,
    }

    /// `snn_build_scatter`: the canonical index of every synapse into its
    /// row.
    BuildScatter => BuildScatter {
        /// Per synapse: its source.
        gen_src: Ptr,
        /// Synapses.
        n_syn: u64,
        /// Per neuron: its row.
        row_of: Ptr,
        /// The rows' offsets.
        row_ptr: Ptr,
        /// Per row: the next free place (advanced).
        cursor: Ptr,
        /// Per place: the canonical index of its synapse (written).
        key: Ptr,
        /// Synapses that did not fit their row (added to).
        n_err: Ptr,
    }

    /// `snn_build_sort_rows`: each row in canonical order.
    BuildSortRows => BuildSortRows {
        /// The rows' offsets.
        row_ptr: Ptr,
        /// Rows.
        n_rows: u64,
        /// Per place: the canonical index (sorted per row).
        key: Ptr,
    }

    /// `snn_build_gather_synapses`: the synapses in row order.
    BuildGatherSynapses => BuildGatherSynapses {
        /// Per place: the canonical index of its synapse.
        key: Ptr,
        /// Synapses.
        n_syn: u64,
        /// Per synapse: target and delay.
        gen_td: Ptr,
        /// Per synapse: weight.
        gen_w: Ptr,
        /// Target and delay in row order (written).
        out_td: Ptr,
        /// Weight in row order (written).
        out_w: Ptr,
    }
}
