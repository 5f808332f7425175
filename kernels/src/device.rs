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

use snn_formats::model::Dist;

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

/// The project's headers, by file name.
pub const HEADERS: [(&str, &str); 6] = [
    ("port.cuh", include_str!("../cuda/port.cuh")),
    ("philox.cuh", include_str!("../cuda/philox.cuh")),
    ("detmath.cuh", include_str!("../cuda/detmath.cuh")),
    ("ziggurat.cuh", include_str!("../cuda/ziggurat.cuh")),
    ("poisson.cuh", include_str!("../cuda/poisson.cuh")),
    ("sort.cuh", include_str!("../cuda/sort.cuh")),
];

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
/// declaration order, [`KernelId::name`] and [`KernelId::module`].
macro_rules! kernels {
    ($($(#[doc = $doc:literal])* $v:ident = $name:literal in $module:ident,)+) => {
        /// A kernel: an `extern "C" __global__` function of a [`Module`].
        ///
        /// The argument lists (C types; structs by value) are documented in
        /// the `.cu` files; the structs have Rust mirrors in this module.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum KernelId {
            $($(#[doc = $doc])* $v,)+
        }

        impl KernelId {
            /// All kernels, in declaration order.
            pub const ALL: &'static [KernelId] = &[$(KernelId::$v,)+];

            /// The function name (C linkage).
            pub fn name(self) -> &'static str {
                match self {
                    $(KernelId::$v => $name,)+
                }
            }

            /// The module that defines it.
            pub fn module(self) -> Module {
                match self {
                    $(KernelId::$v => Module::$module,)+
                }
            }
        }
    };
}

kernels! {
    /// `snn_iaf_psc_exp_update(ExpConsts, StepInput, v_m, i_syn_ex,
    /// i_syn_in, refractory, row_ex, row_in, gid, table, spikes, n_spikes)`.
    IafPscExpUpdate = "snn_iaf_psc_exp_update" in Neuron,
    /// `snn_iaf_psc_alpha_update(AlphaConsts, StepInput, v_m, i_syn_ex,
    /// di_syn_ex, i_syn_in, di_syn_in, refractory, row_ex, row_in, gid,
    /// table, spikes, n_spikes)`.
    IafPscAlphaUpdate = "snn_iaf_psc_alpha_update" in Neuron,
    /// `snn_deliver(spikes, n_spikes, interval_start, row_ptr, syn_td,
    /// syn_w, target_bits, slots, n_local, ring_ex, ring_in)`.
    Deliver = "snn_deliver" in Deliver,
    /// `snn_connect_per_synapse(ConnectParams, zig_tables, syn_offset,
    /// n_targets, tgt_index, tgt_local, out_src, out_w, out_td,
    /// n_bad_delay)`.
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
    /// `snn_update_step(UpdateStep, pops, v_m, i_syn_ex, di_syn_ex,
    /// i_syn_in, di_syn_in, refractory, row_ex, row_in, gid, table,
    /// gen_steps, spikes, n_spikes, n_spikes_next, rec, n_rec, err_record,
    /// vm_col, vm_row)`: one step of every local neuron of a rank (all
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
    /// `SnnIafPscExpConsts` (`neuron.cu`): the per-population constants of
    /// `iaf_psc_exp`, potentials relative to `E_L`. The CPU backend uses
    /// the same struct (`snn_simulate::neuron::IafPscExpConsts`, made by
    /// `iaf_psc_exp_consts`).
    pub struct ExpConsts {
        /// `E_L`, mV.
        pub e_l: f64,
        /// `V_th - E_L`, mV.
        pub theta: f64,
        /// `V_reset - E_L`, mV.
        pub v_reset: f64,
        /// `I_e`, pA.
        pub i_e: f64,
        /// `exp(-h/tau_m)`: propagator of `V`.
        pub p22: f64,
        /// `exp(-h/tau_syn_ex)`: propagator of `I_ex`.
        pub p11_ex: f64,
        /// `exp(-h/tau_syn_in)`: propagator of `I_in`.
        pub p11_in: f64,
        /// `I_ex -> V` propagator, mV/pA.
        pub p21_ex: f64,
        /// `I_in -> V` propagator, mV/pA.
        pub p21_in: f64,
        /// `I_e -> V` propagator `tau_m/C_m (1 - P22)`, mV/pA.
        pub p20: f64,
        /// Refractory period, steps.
        pub refractory_steps: u32,
        /// Padding (0).
        pub pad: u32,
    }
}

device_struct! {
    /// `SnnIafPscAlphaConsts` (`neuron.cu`): the per-population constants of
    /// `iaf_psc_alpha`, potentials relative to `E_L`. The CPU backend uses
    /// the same struct (`snn_simulate::neuron::IafPscAlphaConsts`, made by
    /// `iaf_psc_alpha_consts`).
    pub struct AlphaConsts {
        /// `E_L`, mV.
        pub e_l: f64,
        /// `V_th - E_L`, mV.
        pub theta: f64,
        /// `V_reset - E_L`, mV.
        pub v_reset: f64,
        /// `I_e`, pA.
        pub i_e: f64,
        /// `expm1(-h/tau_m)`: `V(t+h) = ... + expm1_tau_m V + V`.
        pub expm1_tau_m: f64,
        /// `I_e -> V` propagator `-tau_m/C_m expm1(-h/tau_m)`, mV/pA.
        pub p30: f64,
        /// `exp(-h/tau_syn_ex)`.
        pub p11_ex: f64,
        /// `h exp(-h/tau_syn_ex)`.
        pub p21_ex: f64,
        /// `dI_ex -> V`.
        pub p31_ex: f64,
        /// `I_ex -> V`.
        pub p32_ex: f64,
        /// `exp(-h/tau_syn_in)`.
        pub p11_in: f64,
        /// `h exp(-h/tau_syn_in)`.
        pub p21_in: f64,
        /// `dI_in -> V`.
        pub p31_in: f64,
        /// `I_in -> V`.
        pub p32_in: f64,
        /// `e / tau_syn_ex`, 1/ms: a weight `w` adds `w e/tau_syn_ex` to
        /// `dI_ex`.
        pub epsc_initial: f64,
        /// `e / tau_syn_in`.
        pub ipsc_initial: f64,
        /// Refractory period, steps.
        pub refractory_steps: u32,
        /// Padding (0).
        pub pad: u32,
    }
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

/// `SNN_POP_IAF_PSC_EXP` (`neuron.cu`): a [`PopDesc`] of `iaf_psc_exp`
/// neurons.
pub const POP_IAF_PSC_EXP: u32 = 0;
/// `SNN_POP_IAF_PSC_ALPHA`: `iaf_psc_alpha` neurons.
pub const POP_IAF_PSC_ALPHA: u32 = 1;
/// `SNN_POP_SPIKE_GENERATOR`: spike generators.
pub const POP_SPIKE_GENERATOR: u32 = 2;
/// `SNN_NO_COLUMN`: a neuron without a V_m column.
pub const NO_COLUMN: u32 = u32::MAX;

device_struct! {
    /// `SnnPopDesc` (`neuron.cu`): one population's local neurons for
    /// `snn_update_step` (an array of them in device memory).
    pub struct PopDesc {
        /// Constants of `iaf_psc_exp` neurons (zero for other kinds).
        pub exp: ExpConsts,
        /// Constants of `iaf_psc_alpha` neurons (zero for other kinds).
        pub alpha: AlphaConsts,
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
        /// [`POP_IAF_PSC_EXP`], [`POP_IAF_PSC_ALPHA`] or
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

/// `SNN_DIST_CONSTANT` of `connect.cu`.
pub const DIST_CONSTANT: u32 = 0;
/// `SNN_DIST_NORMAL`.
pub const DIST_NORMAL: u32 = 1;
/// `SNN_DIST_UNIFORM`.
pub const DIST_UNIFORM: u32 = 2;

device_struct! {
    /// `SnnDist` (`connect.cu`): a resolved [`Dist`].
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
    /// The device form of `d`.
    pub fn new(d: &Dist) -> DistParams {
        match *d {
            Dist::Constant(v) => DistParams {
                kind: DIST_CONSTANT,
                value: v,
                ..Default::default()
            },
            Dist::Normal {
                mean,
                std,
                min,
                max,
                clip,
            } => DistParams {
                kind: DIST_NORMAL,
                clip: u32::from(clip),
                value: mean,
                std,
                min,
                max,
            },
            Dist::Uniform { min, max } => DistParams {
                kind: DIST_UNIFORM,
                min,
                max,
                ..Default::default()
            },
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

/// `SNN_RULE_PER_SYNAPSE` of `connect.cu`: each synapse draws its source
/// (`fixed_total_number`, `fixed_indegree` with multapses).
pub const RULE_PER_SYNAPSE: u32 = 0;
/// `SNN_RULE_ONE_TO_ONE`.
pub const RULE_ONE_TO_ONE: u32 = 1;
/// `SNN_RULE_ALL_TO_ALL`.
pub const RULE_ALL_TO_ALL: u32 = 2;
/// `SNN_RULE_BERNOULLI` (`pairwise_bernoulli`).
pub const RULE_BERNOULLI: u32 = 3;
/// `SNN_RULE_DISTINCT` (`fixed_indegree` without multapses).
pub const RULE_DISTINCT: u32 = 4;

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

/// Where `libnvrtc` is looked for (see [`nvrtc_candidates`]).
pub const NVRTC_ENV: &str = "SNN_NVRTC_LIB";

/// The NVRTC libraries a loader should try, best first: the file or
/// directory named by `$SNN_NVRTC_LIB`; then the NVRTC of the pip wheel
/// `nvidia-cuda-nvrtc-cu12` in each of `venvs` and in `$VIRTUAL_ENV`
/// (`<venv>/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so*`).
/// Only existing files are listed. Not finding any is no error: the
/// library may still be on the loader's default path (`LD_LIBRARY_PATH`,
/// the system's CUDA).
pub fn nvrtc_candidates(venvs: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    fn libs_in(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libnvrtc.so") || n == "nvrtc64.dll")
            })
            .collect();
        found.sort();
        out.extend(found);
    }
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(NVRTC_ENV).map(PathBuf::from) {
        if p.is_dir() {
            libs_in(&p, &mut out);
        } else if p.is_file() {
            out.push(p);
        }
    }
    let mut roots: Vec<PathBuf> = venvs.to_vec();
    roots.extend(std::env::var_os("VIRTUAL_ENV").map(PathBuf::from));
    for root in roots {
        let Ok(rd) = std::fs::read_dir(root.join("lib")) else {
            continue;
        };
        let mut pys: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        pys.sort();
        for py in pys {
            libs_in(&py.join("site-packages/nvidia/cuda_nvrtc/lib"), &mut out);
        }
    }
    out
}

/// Errors of the device layer.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No usable `libnvrtc`.
    #[error("NVRTC (libnvrtc) not found: tried {tried}; install the pip wheel nvidia-cuda-nvrtc-cu12 (scripts/install.sh does) or set {NVRTC_ENV} to the library")]
    NoNvrtc {
        /// What was tried.
        tried: String,
    },
    /// A module did not compile.
    #[error("NVRTC could not compile {module} ({options}):\n{log}")]
    Compile {
        /// The module.
        module: Module,
        /// The options given.
        options: String,
        /// NVRTC's log.
        log: String,
    },
    /// Another NVRTC failure.
    #[error("NVRTC failed on {module}: {message}")]
    Nvrtc {
        /// The module.
        module: Module,
        /// What failed.
        message: String,
    },
}

/// NVRTC, with the `cuda` feature.
#[cfg(feature = "cuda")]
pub mod nvrtc {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use super::{nvrtc_candidates, DeviceError, Module};

    /// The NVRTC in use.
    #[derive(Clone, Debug)]
    pub struct NvrtcInfo {
        /// The file loaded by path, or `None` when it was found by name on
        /// the loader's default path.
        pub path: Option<PathBuf>,
        /// NVRTC's version (major, minor).
        pub version: (i32, i32),
    }

    /// Libraries loaded by path: kept for the life of the process.
    static LOADED: OnceLock<Mutex<Vec<libloading::Library>>> = OnceLock::new();

    /// Finds and loads `libnvrtc` (first the [`nvrtc_candidates`] for
    /// `venvs`, then by name as cudarc would), and checks that cudarc will
    /// find it. Call this before any other NVRTC function: cudarc panics
    /// when its library is missing, this returns an error instead.
    ///
    /// A library found by path is loaded with its full path first; cudarc
    /// then loads it by its `soname` (`libnvrtc.so.12`), which the dynamic
    /// loader resolves to the library already loaded.
    pub fn load(venvs: &[PathBuf]) -> Result<NvrtcInfo, DeviceError> {
        static INFO: OnceLock<Mutex<Option<NvrtcInfo>>> = OnceLock::new();
        let info = INFO.get_or_init(|| Mutex::new(None));
        let mut info = info.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = info.as_ref() {
            return Ok(i.clone());
        }
        let candidates = nvrtc_candidates(venvs);
        let mut path = None;
        for c in &candidates {
            if preload(c) {
                path = Some(c.clone());
                break;
            }
        }
        // SAFETY: only tries to open the library under cudarc's candidate
        // names (dlopen); nothing is called in it.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            let mut tried: Vec<String> =
                candidates.iter().map(|p| p.display().to_string()).collect();
            tried.push("libnvrtc.so* on the loader's path".into());
            return Err(DeviceError::NoNvrtc {
                tried: tried.join(", "),
            });
        }
        let (mut major, mut minor) = (0, 0);
        // SAFETY: the library is present (checked above), and
        // nvrtcVersion only writes the two integers.
        let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(DeviceError::NoNvrtc {
                tried: format!("nvrtcVersion failed: {r:?}"),
            });
        }
        let i = NvrtcInfo {
            path,
            version: (major, minor),
        };
        *info = Some(i.clone());
        Ok(i)
    }

    /// Loads the library at `path` and keeps it loaded; false if it cannot
    /// be loaded.
    fn preload(path: &Path) -> bool {
        // SAFETY: loading NVRTC runs its initialisers only, which have no
        // preconditions.
        match unsafe { libloading::Library::new(path) } {
            Ok(lib) => {
                LOADED
                    .get_or_init(|| Mutex::new(Vec::new()))
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(lib);
                true
            }
            Err(_) => false,
        }
    }

    /// The options every module is compiled with for virtual architecture
    /// `arch` (e.g. `compute_80`, or the device's `compute_90`): no fused
    /// multiply-add (bit-identity with the CPU), IEEE division and square
    /// root, no flush to zero.
    pub fn options(arch: &'static str) -> cudarc::nvrtc::CompileOptions {
        cudarc::nvrtc::CompileOptions {
            fmad: Some(false),
            prec_div: Some(true),
            prec_sqrt: Some(true),
            ftz: Some(false),
            use_fast_math: Some(false),
            arch: Some(arch),
            options: vec!["--std=c++17".into()],
            ..Default::default()
        }
    }

    /// Compiles `module` to PTX for `arch`, once per process (later calls
    /// return the same text), through the disk cache of [`cache_dir`] when
    /// there is one. [`load`] must have succeeded.
    pub fn compile(module: Module, arch: &'static str) -> Result<Arc<String>, DeviceError> {
        type Cache = HashMap<(Module, &'static str), Arc<String>>;
        static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some(p) = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(module, arch))
        {
            return Ok(p.clone());
        }
        let (ptx, hit) = compile_with_cache(module, arch, cache_dir().as_deref())?;
        if hit {
            DISK_HITS.fetch_add(1, Ordering::Relaxed);
        }
        let ptx = Arc::new(ptx);
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((module, arch), ptx.clone());
        Ok(ptx)
    }

    /// Modules [`compile`] found in the disk cache in this process.
    static DISK_HITS: AtomicU64 = AtomicU64::new(0);

    /// How many modules [`compile`] took from the disk cache in this
    /// process (for the device's description).
    pub fn disk_cache_hits() -> u64 {
        DISK_HITS.load(Ordering::Relaxed)
    }

    /// The environment variable naming the PTX disk cache: a directory, or
    /// `off` (or empty) for none.
    pub const CACHE_ENV: &str = "SNN_KERNEL_CACHE";

    /// The directory of the PTX disk cache: `$SNN_KERNEL_CACHE` when set
    /// (`off` or empty: no cache), otherwise `$XDG_CACHE_HOME/snn/kernels`
    /// or `$HOME/.cache/snn/kernels` (`None` without either).
    pub fn cache_dir() -> Option<PathBuf> {
        let env = |v: &str| std::env::var_os(v).filter(|x| !x.is_empty());
        match std::env::var_os(CACHE_ENV) {
            Some(v) if v.is_empty() || v == "off" => None,
            Some(v) => Some(PathBuf::from(v)),
            None => env("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("snn").join("kernels")),
        }
    }

    /// First line of a cache file: this tag and the xxh3-64 (hex) of the
    /// PTX that follows the line.
    const CACHE_TAG: &str = "// snn-ptx-cache v1 ";

    /// The cache file of `module` for `arch`: named by the module, the
    /// architecture and the xxh3-64 of everything the PTX depends on (the
    /// source with its headers, the options, NVRTC's version), so a change
    /// of any of them is a new file, never a stale one.
    fn cache_file(dir: &Path, module: Module, arch: &'static str, version: (i32, i32)) -> PathBuf {
        use xxhash_rust::xxh3::Xxh3;
        let mut h = Xxh3::new();
        let mut opts = options(arch);
        opts.name = Some(module.file_name().into());
        h.update(module.source().as_bytes());
        h.update(format!("\0{opts:?}\0{version:?}").as_bytes());
        dir.join(format!(
            "{}-{arch}-{:016x}.ptx",
            module.file_name().trim_end_matches(".cu"),
            h.digest()
        ))
    }

    /// The PTX of `module` for `arch`: from the cache file in `cache` when
    /// there is a valid one (the bool is then true), otherwise compiled by
    /// NVRTC and written there (atomically, by a rename; a cache that
    /// cannot be written is skipped silently, as is a damaged file, which
    /// is replaced). No in-process cache: see [`compile`]. An error, not a
    /// panic, when NVRTC was not loaded by [`load`] (nor can be found
    /// without the caller's venvs).
    pub fn compile_with_cache(
        module: Module,
        arch: &'static str,
        cache: Option<&Path>,
    ) -> Result<(String, bool), DeviceError> {
        // Memoised: the library the first successful `load` found.
        let version = load(&[])?.version;
        let file = cache.map(|d| cache_file(d, module, arch, version));
        if let Some(ptx) = file.as_deref().and_then(read_cached) {
            return Ok((ptx, true));
        }
        let ptx = nvrtc_compile(module, arch)?;
        if let (Some(dir), Some(file)) = (cache, file.as_deref()) {
            let _ = write_cached(dir, file, &ptx);
        }
        Ok((ptx, false))
    }

    /// The PTX of a cache file, if it is one and its checksum holds.
    fn read_cached(file: &Path) -> Option<String> {
        let text = std::fs::read_to_string(file).ok()?;
        let (first, ptx) = text.split_once('\n')?;
        let sum = u64::from_str_radix(first.strip_prefix(CACHE_TAG)?, 16).ok()?;
        (xxhash_rust::xxh3::xxh3_64(ptx.as_bytes()) == sum).then(|| ptx.to_owned())
    }

    /// Writes a cache file through a temporary file in the same directory.
    fn write_cached(dir: &Path, file: &Path, ptx: &str) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let sum = xxhash_rust::xxh3::xxh3_64(ptx.as_bytes());
        write!(tmp, "{CACHE_TAG}{sum:016x}\n{ptx}")?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }

    /// Compiles `module` to PTX for `arch` with NVRTC.
    fn nvrtc_compile(module: Module, arch: &'static str) -> Result<String, DeviceError> {
        let mut opts = options(arch);
        opts.name = Some(module.file_name().into());
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(module.source(), opts).map_err(|e| {
            use cudarc::nvrtc::CompileError as E;
            match e {
                E::CompileError { options, log, .. } => DeviceError::Compile {
                    module,
                    options: options.join(" "),
                    log: log.to_string_lossy().into_owned(),
                },
                other => DeviceError::Nvrtc {
                    module,
                    message: format!("{other:?}"),
                },
            }
        })?;
        Ok(ptx.to_src())
    }
}

#[cfg(feature = "cuda")]
mod device_repr {
    use super::{
        AlphaConsts, BuildProjParams, ConnectParams, DistParams, ExpConsts, PopDesc, StepInput,
        UpdateStep,
    };
    // SAFETY: this and the following are #[repr(C)] structs of integers
    // and floats without implicit padding (checked at compile time), in the
    // layout of their C twins, so they can be passed by value as kernel
    // arguments.
    unsafe impl cudarc::driver::DeviceRepr for ExpConsts {}
    // SAFETY: as above.
    unsafe impl cudarc::driver::DeviceRepr for AlphaConsts {}
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
            for (name, _) in HEADERS {
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

    #[test]
    fn struct_sizes() {
        assert_eq!(std::mem::size_of::<ExpConsts>(), 88);
        assert_eq!(std::mem::size_of::<AlphaConsts>(), 136);
        assert_eq!(std::mem::size_of::<StepInput>(), 64);
        assert_eq!(std::mem::size_of::<PopDesc>(), 280);
        assert_eq!(std::mem::size_of::<UpdateStep>(), 72);
        assert_eq!(std::mem::size_of::<DistParams>(), 40);
        assert_eq!(std::mem::size_of::<ConnectParams>(), 120);
        assert_eq!(ConnectParams::default().to_le_bytes().len(), 120);
        assert_eq!(std::mem::size_of::<BuildProjParams>(), 144);
        assert_eq!(BuildProjParams::default().to_le_bytes().len(), 144);
    }
}
