//! The CUDA kernels: typed ids, their source text, the parameter structs
//! they take, and (with the `cuda` feature) their compilation by NVRTC.
//!
//! Every kernel is reached through a [`KernelId`] (its function name and its
//! [`Module`], the `.cu` file it lives in), never through a string written
//! elsewhere. A module's source ([`Module::source`]) is the `.cu` file with
//! the project's headers (`kernels/cuda/*.cuh`) pasted in where they are
//! included, so it compiles on its own: no include path and no file of the
//! source tree are needed at run time.
//!
//! The kernels are also compiled as host C++ by the tests
//! (`kernels/tests/kernels_host.rs`, `tests/kernels_host.rs`), which run them
//! on the CPU and compare their results bit for bit with the Rust CPU
//! backend; see `kernels/README.md`.
//!
//! # Without CUDA
//!
//! Nothing here needs CUDA to build. The `cuda` feature (off by default)
//! adds the module `nvrtc`: locating `libnvrtc` (it is loaded at run time, through
//! cudarc's `dynamic-loading`), checking that it is there before any cudarc
//! call (cudarc panics when a library is missing), and compiling modules to
//! PTX with `--fmad=false`.

use std::fmt;
use std::sync::LazyLock;

use crate::models::{self, ModelConsts};

/// A compilation unit: one `.cu` file of `kernels/cuda/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    /// `neuron.cu`: neuron updates with ring-buffer input, Poisson drive and
    /// spike compaction.
    Neuron,
    /// `deliver.cu`: spike delivery into the fixed-point ring buffers.
    Deliver,
    /// `connect.cu`: per-synapse connection generation.
    Connect,
    /// `route.cu`: the simulation engine's spike routing (packing per
    /// destination rank, unpacking received spikes).
    Route,
    /// `build.cu`: the GPU builder's grouping of synapses into the CSR,
    /// images and send tables.
    Build,
}

impl Module {
    /// All modules.
    pub const ALL: [Module; 5] = [
        Module::Neuron,
        Module::Deliver,
        Module::Connect,
        Module::Route,
        Module::Build,
    ];

    /// The modules the simulation engine launches.
    pub const SIMULATOR: [Module; 3] = [Module::Neuron, Module::Deliver, Module::Route];

    /// The modules the GPU builder launches.
    pub const BUILDER: [Module; 2] = [Module::Connect, Module::Build];

    /// File name in `kernels/cuda/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Module::Neuron => "neuron.cu",
            Module::Deliver => "deliver.cu",
            Module::Connect => "connect.cu",
            Module::Route => "route.cu",
            Module::Build => "build.cu",
        }
    }

    /// The file's text as written (with its `#include "..."` lines).
    pub fn raw_source(self) -> &'static str {
        match self {
            Module::Neuron => include_str!("../cuda/neuron.cu"),
            Module::Deliver => include_str!("../cuda/deliver.cu"),
            Module::Connect => include_str!("../cuda/connect.cu"),
            Module::Route => include_str!("../cuda/route.cu"),
            Module::Build => include_str!("../cuda/build.cu"),
        }
    }

    /// The kernels defined in the module.
    pub fn kernels(self) -> impl Iterator<Item = KernelId> {
        KernelId::ALL
            .iter()
            .copied()
            .filter(move |k| k.module() == self)
    }

    /// The self-contained source: [`raw_source`](Self::raw_source) with each
    /// project header pasted in at its first `#include "name.cuh"` (later
    /// ones are dropped, as the headers' include guards would make them
    /// empty), with `#line` markers so that compiler messages name the
    /// original files. `#include <...>` lines are left alone (the headers
    /// only use them outside NVRTC).
    pub fn source(self) -> String {
        let mut out = String::new();
        let mut seen = Vec::new();
        expand_includes(self.file_name(), self.raw_source(), &mut seen, &mut out);
        out
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// Declares the constants the kernels and the host share, once: each as a
/// Rust `pub const` and as a `#define` of the generated header
/// `constants.cuh` ([`CONSTANTS_CUH`], one of [`HEADERS`]), which the `.cu`
/// files include instead of writing the numbers again.
macro_rules! shared_constants {
    ($($(#[doc = $doc:literal])* $name:ident = $c_name:literal: $value:literal,)+) => {
        $($(#[doc = $doc])* pub const $name: u32 = $value;)+

        /// The header `constants.cuh`, generated from the constants above
        /// (`#define SNN_... <value>u`).
        pub const CONSTANTS_CUH: &str = concat!(
            "// constants.cuh: generated from snn_kernels::registry (shared_constants!).\n",
            "#ifndef SNN_CONSTANTS_CUH\n#define SNN_CONSTANTS_CUH\n",
            $("#define ", $c_name, " ", stringify!($value), "u\n",)+
            "#endif\n"
        );
    };
}

shared_constants! {
    /// `SNN_POP_SPIKE_GENERATOR` (`neuron.cu`): the kind of a [`PopDesc`]
    /// of spike generators (neuron models have the kinds
    /// [`ModelId::kind`](crate::models::ModelId::kind), from 0 up).
    POP_SPIKE_GENERATOR = "SNN_POP_SPIKE_GENERATOR": 0xffff,
    /// `SNN_NO_COLUMN`: a neuron without a V_m column.
    NO_COLUMN = "SNN_NO_COLUMN": 0xffffffff,
    /// `SNN_DIST_CONSTANT` (`connect.cu`): a [`DistParams`] of a constant.
    DIST_CONSTANT = "SNN_DIST_CONSTANT": 0,
    /// `SNN_DIST_NORMAL`: a normal, redrawn or clipped into its bounds.
    DIST_NORMAL = "SNN_DIST_NORMAL": 1,
    /// `SNN_DIST_UNIFORM`: a uniform.
    DIST_UNIFORM = "SNN_DIST_UNIFORM": 2,
    /// `SNN_RULE_PER_SYNAPSE` (`connect.cu`): each synapse draws its source
    /// (`fixed_total_number`, `fixed_indegree` with multapses).
    RULE_PER_SYNAPSE = "SNN_RULE_PER_SYNAPSE": 0,
    /// `SNN_RULE_ONE_TO_ONE`.
    RULE_ONE_TO_ONE = "SNN_RULE_ONE_TO_ONE": 1,
    /// `SNN_RULE_ALL_TO_ALL`.
    RULE_ALL_TO_ALL = "SNN_RULE_ALL_TO_ALL": 2,
    /// `SNN_RULE_BERNOULLI` (`pairwise_bernoulli`: sources by
    /// `snn_build_bernoulli_sources`).
    RULE_BERNOULLI = "SNN_RULE_BERNOULLI": 3,
    /// `SNN_RULE_DISTINCT` (`fixed_indegree` without multapses: sources by
    /// `snn_build_distinct_sources`).
    RULE_DISTINCT = "SNN_RULE_DISTINCT": 4,
    /// `SNN_ERR_SPIKE_OVERFLOW` (`route.cu`, index into the simulation
    /// engine's error counters): the interval's spike list overflowed.
    ERR_SPIKE_OVERFLOW = "SNN_ERR_SPIKE_OVERFLOW": 0,
    /// `SNN_ERR_MALFORMED`: a received entry does not fit the tables.
    ERR_MALFORMED = "SNN_ERR_MALFORMED": 1,
    /// `SNN_ERR_RECORD_OVERFLOW`: the recording buffer overflowed
    /// (`neuron.cu`).
    ERR_RECORD_OVERFLOW = "SNN_ERR_RECORD_OVERFLOW": 2,
    /// `SNN_ERR_PACK_OVERFLOW`: an outgoing buffer overflowed.
    ERR_PACK_OVERFLOW = "SNN_ERR_PACK_OVERFLOW": 3,
    /// `SNN_ERR_RECV_OVERFLOW`: the received delivery list overflowed.
    ERR_RECV_OVERFLOW = "SNN_ERR_RECV_OVERFLOW": 4,
    /// The number of error counters.
    N_ERR = "SNN_N_ERR": 5,
}

/// The project's headers, by file name: `kernels/cuda/*.cuh`, the neuron
/// models' (`kernels/src/models/*.cuh`) and the generated `constants.cuh`
/// and `models.cuh` ([`crate::models::models_cuh`]).
pub static HEADERS: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    let mut h = vec![
        ("constants.cuh", CONSTANTS_CUH),
        ("port.cuh", include_str!("../cuda/port.cuh")),
        ("philox.cuh", include_str!("../cuda/philox.cuh")),
        ("detmath.cuh", include_str!("../cuda/detmath.cuh")),
        ("ziggurat.cuh", include_str!("../cuda/ziggurat.cuh")),
        ("poisson.cuh", include_str!("../cuda/poisson.cuh")),
        ("sort.cuh", include_str!("../cuda/sort.cuh")),
        ("models.cuh", String::leak(models::models_cuh())),
    ];
    h.extend_from_slice(models::MODEL_HEADERS);
    h
});

/// The name in a line `#include "name"`, if it is one.
fn quoted_include(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let rest = rest.strip_prefix("include")?.trim();
    rest.strip_prefix('"')?.strip_suffix('"')
}

fn expand_includes(
    file: &'static str,
    text: &'static str,
    seen: &mut Vec<&'static str>,
    out: &mut String,
) {
    out.push_str(&format!("#line 1 \"{file}\"\n"));
    for (i, line) in text.lines().enumerate() {
        let header = quoted_include(line)
            .and_then(|name| HEADERS.iter().find(|(n, _)| *n == name))
            .copied();
        match header {
            Some((name, body)) => {
                if !seen.contains(&name) {
                    seen.push(name);
                    expand_includes(name, body, seen, out);
                    out.push_str(&format!("#line {} \"{file}\"\n", i + 2));
                }
            }
            // An unknown quoted include is kept: the compiler reports it.
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
}

/// Declares [`KernelId`] from one table (each kernel once: its doc, its
/// variant, its C name and its module), with [`KernelId::ALL`] in
/// declaration order, [`KernelId::name`] and [`KernelId::module`]. The
/// kernels only tests launch (one population's update, one delivery, one
/// projection's synapses: the pieces the fused kernels are checked
/// against) carry `#[cfg(feature = "test-kernels")]`, and their CUDA code
/// stands inside `#ifdef SNN_TEST_KERNELS`: without the feature they are
/// neither in the registry nor compiled.
macro_rules! kernels {
    ($(
        $(#[doc = $doc:literal])*
        $(#[cfg($cfg:meta)])*
        $v:ident = $name:literal in $module:ident,
    )+) => {
        /// A kernel: an `extern "C" __global__` function of a [`Module`].
        ///
        /// The argument lists (C types; structs by value) are documented in
        /// the `.cu` files; the structs have Rust mirrors in this module.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum KernelId {
            $($(#[doc = $doc])* $(#[cfg($cfg)])* $v,)+
        }

        impl KernelId {
            /// All kernels, in declaration order (the test kernels only
            /// with the feature `test-kernels`).
            pub const ALL: &'static [KernelId] = &[$($(#[cfg($cfg)])* KernelId::$v,)+];

            /// The function name (C linkage).
            pub fn name(self) -> &'static str {
                match self {
                    $($(#[cfg($cfg)])* KernelId::$v => $name,)+
                }
            }

            /// The module that defines it.
            pub fn module(self) -> Module {
                match self {
                    $($(#[cfg($cfg)])* KernelId::$v => Module::$module,)+
                }
            }
        }
    };
}

kernels! {
    /// `snn_model_update(kind, ModelConsts, StepInput, vars, stride,
    /// refractory, row_ex, row_in, gid, table, spikes, n_spikes)`: one step
    /// of one population's block of neurons of any model.
    #[cfg(feature = "test-kernels")]
    ModelUpdate = "snn_model_update" in Neuron,
    /// `snn_deliver(spikes, n_spikes, interval_start, row_ptr, syn_td,
    /// syn_w, target_bits, slots, n_local, ring_ex, ring_in)`.
    #[cfg(feature = "test-kernels")]
    Deliver = "snn_deliver" in Deliver,
    /// `snn_connect_per_synapse(ConnectParams, zig_tables, syn_offset,
    /// n_targets, tgt_index, tgt_local, out_src, out_w, out_td,
    /// n_bad_delay)`.
    #[cfg(feature = "test-kernels")]
    ConnectPerSynapse = "snn_connect_per_synapse" in Connect,
    /// `snn_build_bernoulli_count(projs, n_pairs, pair_tgt_index, pair_proj,
    /// pair_n)`: in-degrees of the builder's `pairwise_bernoulli` pairs.
    BuildBernoulliCount = "snn_build_bernoulli_count" in Connect,
    /// `snn_build_bernoulli_sources(projs, n_pairs, pair_tgt_index,
    /// pair_proj, tp_off, out_src)`: their sources.
    BuildBernoulliSources = "snn_build_bernoulli_sources" in Connect,
    /// `snn_build_synapses(projs, zig_tables, tp_off, n_pairs,
    /// pair_tgt_index, pair_tgt_local, pair_proj, out_src, out_w, out_td,
    /// src_count, n_bad_delay)`: every synapse of a rank, canonical order.
    BuildSynapses = "snn_build_synapses" in Connect,
    /// `snn_build_scan_partials(in, n, seg, partial)`.
    BuildScanPartials = "snn_build_scan_partials" in Build,
    /// `snn_build_scan_top(partial, n_seg, out, n)`.
    BuildScanTop = "snn_build_scan_top" in Build,
    /// `snn_build_scan_finish(in, n, seg, partial, out)`.
    BuildScanFinish = "snn_build_scan_finish" in Build,
    /// `snn_build_gather_u64(src, idx, n, out)`.
    BuildGatherU64 = "snn_build_gather_u64" in Build,
    /// `snn_build_proj_totals(pair_n, n_pairs, pair_proj, totals)`.
    BuildProjTotals = "snn_build_proj_totals" in Build,
    /// `snn_build_distinct_sources(projs, n_pairs, pair_tgt_index,
    /// pair_proj, tp_off, out_src, scratch_a, scratch_b)`: sources of
    /// `fixed_indegree` without multapses (Floyd's sampling).
    BuildDistinctSources = "snn_build_distinct_sources" in Connect,
    /// `snn_build_image_flags(perm, n_neurons, own_lo, own_hi, src_count,
    /// flags)`.
    BuildImageFlags = "snn_build_image_flags" in Build,
    /// `snn_build_rows(perm, n_neurons, own_lo, own_hi, flags, pos, n_local,
    /// row_of, images)`.
    BuildRows = "snn_build_rows" in Build,
    /// `snn_build_row_len(src_count, n_neurons, row_of, row_len)`.
    BuildRowLen = "snn_build_row_len" in Build,
    /// `snn_build_scatter(gen_src, n_syn, row_of, row_ptr, cursor, key,
    /// n_err)`.
    BuildScatter = "snn_build_scatter" in Build,
    /// `snn_build_sort_rows(row_ptr, n_rows, key)`.
    BuildSortRows = "snn_build_sort_rows" in Build,
    /// `snn_build_gather_synapses(key, n_syn, gen_td, gen_w, out_td,
    /// out_w)`.
    BuildGatherSynapses = "snn_build_gather_synapses" in Build,
    /// `snn_deliver_list(spikes, n_spikes*, capacity, interval_start,
    /// row_ptr, syn_td, syn_w, target_bits, slots, n_local, ring_ex,
    /// ring_in, count_events, n_events*, err, err_index)`: [`Self::Deliver`]
    /// with the count read from device memory and synaptic events counted.
    DeliverList = "snn_deliver_list" in Deliver,
    /// `snn_pack_p2p(spikes, n_spikes*, capacity, send_ptr, send_entries,
    /// out_start, out_cap, out, out_count, err)`.
    PackP2p = "snn_pack_p2p" in Route,
    /// `snn_pack_prefix(out_count, out_cap, n_ranks, starts)`: where each
    /// region of [`Self::PackP2p`] goes in the packed list (one thread).
    PackPrefix = "snn_pack_prefix" in Route,
    /// `snn_pack_gather(out, out_start, starts, n_ranks, packed)`: the
    /// regions of [`Self::PackP2p`] back to back.
    PackGather = "snn_pack_gather" in Route,
    /// `snn_pack_collective(spikes, n_spikes*, capacity, send_ptr, out,
    /// out_count, out_cap, err)`.
    PackCollective = "snn_pack_collective" in Route,
    /// `snn_unpack_p2p(recv, seg, n_seg, images, interval, n_local, deliv,
    /// n_deliv, deliv_cap, err)`: the entries of `n_seg` senders in one
    /// launch.
    UnpackP2p = "snn_unpack_p2p" in Route,
    /// `snn_unpack_collective(recv, seg, n_seg, params, interval, needs,
    /// deliv, n_deliv, deliv_cap, err)`: the entries of `n_seg` senders in
    /// one launch.
    UnpackCollective = "snn_unpack_collective" in Route,
    /// `snn_update_step(UpdateStep, pops, vars, refractory, row_ex, row_in,
    /// gid, table, gen_steps, spikes, n_spikes, n_spikes_next, rec, n_rec,
    /// err_record, vm_col, vm_row)`: one step of every local neuron of a rank (all
    /// populations, [`PopDesc`] each), with spike and V_m recording.
    UpdateStep = "snn_update_step" in Neuron,
}

impl fmt::Display for KernelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares a `#[repr(C)]` plain-data struct, the mirror of a C struct of
/// the kernels, with `to_le_bytes` (its bytes in C layout; the fields are
/// laid out without implicit padding, checked at compile time).
macro_rules! device_struct {
    ($(#[$m:meta])* pub struct $name:ident {
        $($(#[$fm:meta])* pub $f:ident : $t:ty,)*
    }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        #[repr(C)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $name {
            /// The struct's bytes as the C struct holds them (little-endian).
            pub fn to_le_bytes(&self) -> Vec<u8> {
                let mut v = Vec::with_capacity(std::mem::size_of::<Self>());
                $(v.extend_from_slice(&self.$f.to_le_bytes());)*
                v
            }
        }

        const _: () = assert!(
            std::mem::size_of::<$name>() == 0 $(+ std::mem::size_of::<$t>())*,
            "implicit padding"
        );
    };
}

device_struct! {
    /// `SnnStepInput` (`neuron.cu`): one step of one block of neurons.
    pub struct StepInput {
        /// The step being updated.
        pub step: u64,
        /// First step of the interval (spike entries hold `step -
        /// interval_start`).
        pub interval_start: u64,
        /// Simulation seed.
        pub seed: u64,
        /// `2^-weight_frac_bits`.
        pub weight_scale: f64,
        /// Poisson weight, fixed point.
        pub poisson_weight: i64,
        /// Poisson delay, steps.
        pub poisson_delay: u64,
        /// Thresholds of the Poisson table; 0: no Poisson drive.
        pub poisson_len: u32,
        /// Local index of the block's first neuron.
        pub first_local: u32,
        /// Neurons in the block.
        pub n: u32,
        /// Capacity of the spike list.
        pub spike_capacity: u32,
    }
}

device_struct! {
    /// `SnnPopDesc` (`neuron.cu`): one population's local neurons for
    /// `snn_update_step` (an array of them in device memory).
    pub struct PopDesc {
        /// The constants of the population's model (zero for
        /// generators).
        pub consts: ModelConsts,
        /// `E_L`, mV: the recorded `V_m` is row 0 of the state plus it.
        pub e_l: f64,
        /// Poisson weight, fixed point.
        pub poisson_weight: i64,
        /// Poisson delay, steps.
        pub poisson_delay: u64,
        /// First threshold of the population in the concatenated Poisson
        /// table.
        pub table_offset: u64,
        /// Generators: first step in the concatenated step lists.
        pub gen_offset: u64,
        /// Generators: steps in the list (sorted).
        pub gen_len: u32,
        /// Thresholds of the Poisson table; 0: no Poisson drive.
        pub poisson_len: u32,
        /// The model's [`ModelId::kind`](crate::models::ModelId::kind), or
        /// [`POP_SPIKE_GENERATOR`].
        pub kind: u32,
        /// Local index of the population's first local neuron.
        pub first_local: u32,
        /// Local neurons of the population.
        pub n: u32,
        /// Padding (0).
        pub pad: u32,
    }
}

device_struct! {
    /// `SnnUpdateStep` (`neuron.cu`): one step of `snn_update_step`.
    pub struct UpdateStep {
        /// The step being updated.
        pub step: u64,
        /// First step of the interval (spike entries hold `step -
        /// interval_start`).
        pub interval_start: u64,
        /// Simulation seed.
        pub seed: u64,
        /// `2^-weight_frac_bits`.
        pub weight_scale: f64,
        /// `step` minus the first step of the recording chunk (recorded
        /// entries hold it).
        pub rec_offset: u64,
        /// Local neurons.
        pub n_local: u32,
        /// Population descriptors.
        pub n_pops: u32,
        /// Capacity of the spike list.
        pub spike_capacity: u32,
        /// 1: the step's spikes are recorded.
        pub record_spikes: u32,
        /// Capacity of the spike recording buffer.
        pub rec_capacity: u32,
        /// 1: the step's V_m samples are written.
        pub record_vm: u32,
        /// 1: the other interval parity's spike counter is reset.
        pub reset_next: u32,
        /// Padding (0).
        pub pad: u32,
    }
}

device_struct! {
    /// `SnnDist` (`connect.cu`): a resolved distribution of weights or
    /// delays (`snn_formats::model::Dist` on the host).
    pub struct DistParams {
        /// [`DIST_CONSTANT`], [`DIST_NORMAL`] or [`DIST_UNIFORM`].
        pub kind: u32,
        /// Normal: 1 to clamp to the bounds instead of redrawing.
        pub clip: u32,
        /// Constant: the value; normal: the mean.
        pub value: f64,
        /// Normal: the standard deviation.
        pub std: f64,
        /// Lower bound.
        pub min: f64,
        /// Upper bound.
        pub max: f64,
    }
}

impl DistParams {
    /// A constant `value`.
    pub fn constant(value: f64) -> DistParams {
        DistParams {
            kind: DIST_CONSTANT,
            value,
            ..Default::default()
        }
    }

    /// A normal of `mean` and `std` in `[min, max]`: redrawn until inside,
    /// or clamped with `clip`.
    pub fn normal(mean: f64, std: f64, min: f64, max: f64, clip: bool) -> DistParams {
        DistParams {
            kind: DIST_NORMAL,
            clip: u32::from(clip),
            value: mean,
            std,
            min,
            max,
        }
    }

    /// A uniform on `[min, max)`.
    pub fn uniform(min: f64, max: f64) -> DistParams {
        DistParams {
            kind: DIST_UNIFORM,
            min,
            max,
            ..Default::default()
        }
    }
}

device_struct! {
    /// `SnnConnectParams` (`connect.cu`): one projection, prepared.
    pub struct ConnectParams {
        /// Network seed.
        pub seed: u64,
        /// Source population size.
        pub n_src: u64,
        /// Weight distribution, pA.
        pub weight: DistParams,
        /// Delay distribution, ms.
        pub delay: DistParams,
        /// Time step, ms.
        pub dt_ms: f64,
        /// Projection index (< 2^24).
        pub projection: u32,
        /// 1: redraw a source equal to the target.
        pub exclude_self: u32,
        /// Weight fraction bits.
        pub frac_bits: u32,
        /// Bits of the local target in a packed synapse.
        pub target_bits: u32,
    }
}

device_struct! {
    /// `SnnBuildProj` (`connect.cu`): one projection of the GPU builder.
    pub struct BuildProjParams {
        /// The projection's drawing parameters (`target_bits`: the rank's).
        pub connect: ConnectParams,
        /// Global id of the first source neuron.
        pub src_first: u64,
        /// `pairwise_bernoulli`: ln(1 - p).
        pub ln_1mp: f64,
        /// One of the `RULE_*` constants.
        pub rule: u32,
        /// Padding (0).
        pub pad: u32,
    }
}

#[cfg(feature = "cuda")]
mod device_repr {
    use super::{
        BuildProjParams, ConnectParams, DistParams, ModelConsts, PopDesc, StepInput, UpdateStep,
    };
    // SAFETY: this and the following are #[repr(C)] structs of integers
    // and floats without implicit padding (checked at compile time), in the
    // layout of their C twins, so they can be passed by value as kernel
    // arguments.
    unsafe impl cudarc::driver::DeviceRepr for ModelConsts {}
    // SAFETY: as above.
    unsafe impl cudarc::driver::DeviceRepr for StepInput {}
    // SAFETY: as above.
    unsafe impl cudarc::driver::DeviceRepr for PopDesc {}
    // SAFETY: as above.
    unsafe impl cudarc::driver::DeviceRepr for UpdateStep {}
    // SAFETY: as above.
    unsafe impl cudarc::driver::DeviceRepr for DistParams {}
    // SAFETY: as above.
    unsafe impl cudarc::driver::DeviceRepr for ConnectParams {}
    // SAFETY: as above.
    unsafe impl cudarc::driver::DeviceRepr for BuildProjParams {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_self_contained() {
        for m in Module::ALL {
            let src = m.source();
            assert!(
                !src.lines().any(|l| quoted_include(l).is_some()),
                "{m}: an include is left"
            );
            for k in m.kernels() {
                assert!(src.contains(&format!("SNN_KERNEL {}(", k.name())), "{k}");
            }
            // Each header at most once.
            for (name, _) in HEADERS.iter() {
                let marker = format!("#line 1 \"{name}\"");
                assert!(src.matches(&marker).count() <= 1, "{m}: {name} twice");
            }
        }
        assert!(Module::Connect
            .source()
            .contains("#line 1 \"ziggurat.cuh\""));
        assert_eq!(quoted_include("  #  include \"a.cuh\" "), Some("a.cuh"));
        assert_eq!(quoted_include("#include <stdint.h>"), None);
    }

    /// The `.cu` files get the Rust values: the generated header is pasted
    /// into every module that uses a shared constant, and none of them
    /// defines one by hand.
    #[test]
    fn shared_constants_reach_the_kernels() {
        for (module, define) in [
            (
                Module::Route,
                format!("#define SNN_ERR_MALFORMED {ERR_MALFORMED}u"),
            ),
            (
                Module::Neuron,
                format!("#define SNN_POP_SPIKE_GENERATOR {POP_SPIKE_GENERATOR:#x}u"),
            ),
            (
                Module::Neuron,
                format!("#define SNN_NO_COLUMN 0x{NO_COLUMN:x}u"),
            ),
            (
                Module::Connect,
                format!("#define SNN_DIST_UNIFORM {DIST_UNIFORM}u"),
            ),
            (
                Module::Connect,
                format!("#define SNN_RULE_DISTINCT {RULE_DISTINCT}u"),
            ),
        ] {
            assert!(module.source().contains(&define), "{module}: {define}");
        }
        // The models' header and each model's update reach the neuron kernels.
        let neuron = Module::Neuron.source();
        assert!(neuron.contains("SNN_HD bool snn_model_neuron("));
        for (name, _) in crate::models::MODEL_HEADERS {
            assert!(neuron.contains(&format!("#line 1 \"{name}\"")), "{name}");
        }
        for m in Module::ALL {
            for line in m.raw_source().lines() {
                let t = line.trim_start();
                for prefix in [
                    "SNN_ERR_",
                    "SNN_POP_",
                    "SNN_DIST_",
                    "SNN_RULE_",
                    "SNN_NO_COLUMN",
                ] {
                    assert!(
                        !t.starts_with(&format!("#define {prefix}")),
                        "{m} defines {line:?} by hand"
                    );
                }
            }
        }
    }

    #[test]
    fn struct_sizes() {
        assert_eq!(
            std::mem::size_of::<crate::models::iaf_psc_exp::Consts>(),
            88
        );
        assert_eq!(
            std::mem::size_of::<crate::models::iaf_psc_alpha::Consts>(),
            136
        );
        assert_eq!(
            std::mem::size_of::<crate::models::iaf_psc_delta::Consts>(),
            56
        );
        assert_eq!(std::mem::size_of::<ModelConsts>(), 136);
        assert_eq!(std::mem::size_of::<StepInput>(), 64);
        assert_eq!(std::mem::size_of::<PopDesc>(), 200);
        assert_eq!(std::mem::size_of::<UpdateStep>(), 72);
        assert_eq!(std::mem::size_of::<DistParams>(), 40);
        assert_eq!(std::mem::size_of::<ConnectParams>(), 120);
        assert_eq!(ConnectParams::default().to_le_bytes().len(), 120);
        assert_eq!(std::mem::size_of::<BuildProjParams>(), 144);
        assert_eq!(BuildProjParams::default().to_le_bytes().len(), 144);
    }
}
