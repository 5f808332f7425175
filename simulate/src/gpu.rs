//! The GPU engine (`snn-sim --backend cuda`): one rank's network resident
//! in device memory, stepped by the kernels of `kernels/cuda/` through the
//! [`Device`] interface, so that the same host code drives a CUDA GPU
//! (`snn_kernels::cuda::CudaDevice`) and, in the tests, the host C++
//! stand-in device, and is checked there bit for bit against the CPU
//! [`Engine`](crate::engine::Engine).
//!
//! # The device-resident loop
//!
//! Everything a step touches lives on the device: the neuron states (one
//! array per state variable over all local neurons, indexed by local index;
//! each population a slice of them), a table of population descriptors
//! (`PopDesc`: model, range of local indices, constants, Poisson drive,
//! generator steps), the fixed-point ring buffers (the CPU engine's layout:
//! `slots` rows of `n_local` `i64` per receptor), the shard's CSR
//! (`row_ptr`, `syn_target_delay`, `syn_weight`, copied once from the
//! memory-mapped shard, piece by piece, never whole in host memory), the
//! global ids, the concatenated Poisson tables and generator step lists,
//! and the interval's spike list. One interval of `D` steps is:
//!
//! 1. per step, ONE launch of `snn_update_step` over all local neurons
//!    (every population, both neuron models and the spike generators; each
//!    thread finds its neuron's descriptor by a binary search over the few
//!    descriptors): ring input, Poisson drive, `I_e` as DC input,
//!    threshold; spikes appended to the spike list by an atomic counter,
//!    and, from the first recorded step on, to the recording buffer (as
//!    `(step - chunk start) << 32 | local`); the membrane potentials of the
//!    recorded neurons (a per-neuron column index) written into the step's
//!    row of the V_m buffer by the same threads;
//! 2. with more than one rank: `snn_pack_p2p` / `snn_pack_collective`
//!    (entries per destination rank, atomic counters per destination; from
//!    3 ranks on, `snn_pack_prefix` and `snn_pack_gather` then put the
//!    destinations' entries back to back); the host copies back the counts
//!    and the packed entries only (two copies whatever the rank count), exchanges
//!    them (MPI or in memory), checks the received entries against the
//!    routing tables (a malformed one is an error naming its sender) and
//!    copies those of all senders to the device in one copy, where one
//!    launch of `snn_unpack_p2p` / `snn_unpack_collective` turns them all
//!    into delivery entries (each thread finds its entry's sender by a
//!    binary search over the senders' starts; each entry is checked again:
//!    a malformed one is counted in the error counters, never written);
//! 3. `snn_deliver_list` of the own spike list and of the received list:
//!    64-bit integer atomics into the ring buffers; the number of entries is
//!    read by the kernel from the list's counter in device memory.
//!
//! The spike list's counter alternates between two words by interval
//! parity: the first update launch of an interval appends through its
//! parity's counter and sets the other one to 0 (block 0, thread 0; no
//! other thread of that launch touches it, and its last readers, the
//! previous interval's pack and delivery launches, precede it in the
//! stream), so the next interval starts from an empty list without a
//! memset. The host keeps track of which counter is known to be 0 and
//! falls back to a memset where it is not (after an update of 0 steps; a
//! restored state zeroes both).
//!
//! # Launches per step
//!
//! On one rank, per interval of `D` steps: `D` launches of
//! `snn_update_step` and one of `snn_deliver_list`; no memset, no copy
//! (checked by `tests/gpu_sim_host.rs`, `launches_per_step`). With the
//! microcircuit's `D = 1`: **2 launches per step** (spike generators,
//! recording and V_m sampling are done by the update's threads). With
//! several ranks, per interval add one pack launch (three from 3 ranks on,
//! point to point; plus a memset of its counters), one unpack launch for
//! every sender's entries (plus one memset of the received list's counter)
//! and a second delivery launch: the launches per interval do not grow
//! with the number of ranks. Copies back of the recording (and its
//! counter's memset) happen per chunk, not per interval.
//!
//! # What crosses the bus per interval
//!
//! On one rank: nothing but the launches (their arguments). The spike
//! count never comes back; the recording buffers come back in chunks, when
//! they could otherwise overflow (their worst case, every neuron firing in
//! every step, is reserved) and before checkpoints and at the end; the
//! error counters are read with each chunk. With several ranks: per
//! interval the per-destination counts (4 bytes per rank, with the error
//! counters) and the packed entries (8 bytes per spike and destination)
//! down, and the received entries up: at most two copies back and one up
//! per interval, whatever the number of ranks
//! (`tests/gpu_sim_host.rs`, `copies_per_interval_do_not_grow_with_ranks`,
//! on 2, 3 and 4 ranks).
//!
//! Two floors bound the time of an interval and are what a measurement on
//! a GPU should be compared with: the synaptic events of the interval times
//! the bytes each reads and writes (a 4-byte target/delay, a 4-byte
//! weight, an 8-byte atomic add) over the memory bandwidth; and the
//! launches (above) times the launch latency (a few microseconds each).
//! For small networks with short intervals the second may dominate:
//! `bench/gpu/run.sh micro` measures it on a 77-neuron network; CUDA graphs
//! of many steps or a persistent kernel are the next steps if it does (not
//! done).
//!
//! # Determinism
//!
//! The entries of the spike, packed and received lists come in thread
//! order, which varies from run to run; nothing depends on it: ring sums
//! are integer, the wire lists are counted not ordered (bytes sent are the
//! CPU's), and the recorded entries (`(step - chunk start) << 32 | local`)
//! are sorted on the host before they are written, so the spike files are
//! the CPU backend's byte for byte. Checkpoints hold the CPU engine's
//! sections ([`Engine::save_state`](crate::engine::Engine::save_state)), so
//! a run may resume on either backend.

use snn_formats::checkpoint::Section;
use snn_formats::model::Model;
use snn_formats::shard::ArchivedShardData;
use snn_formats::Shard;
use snn_kernels::device::{grid_for, DevVec, Device, Ptr, Shape};
use snn_kernels::launch;
use snn_kernels::registry;
use snn_kernels::registry::{PopDesc, UpdateStep, NO_COLUMN, POP_SPIKE_GENERATOR};

use crate::input::{generator_steps, initial_v_m};
use crate::neuron::{self, ModelId};
use crate::rank::{RankEngine, Recorded};
use crate::{layout, state, SimError};

/// Buffer sizes of the GPU engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuOptions {
    /// Entries of the spike recording buffer (8 bytes each; at least one
    /// interval's worst case, `n_local * interval`, is used). The buffer
    /// is copied back when the next interval could overflow it.
    pub record_entries: usize,
    /// Steps of V_m samples held on the device before they are copied
    /// back (at least one interval).
    pub vm_steps: usize,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            record_entries: 1 << 22,
            vm_steps: 4096,
        }
    }
}

/// Indices in the counter buffer: the spike list's counters (two: one per
/// interval parity, see the module documentation), the recording's, the
/// received deliveries'.
const C_SPIKES: usize = 0;
const C_REC: usize = 2;
const C_DELIV: usize = 3;
/// First error counter (the `SNN_ERR_*` of [`snn_kernels::registry`]
/// follow).
const C_ERR: usize = 4;
const N_ERR: usize = registry::N_ERR as usize;
const ERR_SPIKE_OVERFLOW: usize = registry::ERR_SPIKE_OVERFLOW as usize;
const ERR_MALFORMED: usize = registry::ERR_MALFORMED as usize;
const ERR_RECORD_OVERFLOW: usize = registry::ERR_RECORD_OVERFLOW as usize;
const ERR_PACK_OVERFLOW: usize = registry::ERR_PACK_OVERFLOW as usize;
const ERR_RECV_OVERFLOW: usize = registry::ERR_RECV_OVERFLOW as usize;
/// Collective pack count.
const C_COLL: usize = C_ERR + N_ERR;
/// First per-destination pack count (then, from `C_P2P + n_ranks`, the
/// `n_ranks + 1` starts of the packed list, see [`GATHER_FROM_RANKS`]).
const C_P2P: usize = C_COLL + 1;
/// From this many ranks, point-to-point packing gathers the destinations'
/// regions back to back on the device (`snn_pack_prefix`,
/// `snn_pack_gather`: two more launches) so that the host copies them back
/// in one copy with the counts in another, instead of one copy per
/// non-empty destination: two waits for the device per interval whatever
/// the number of ranks. With two ranks there is one destination, so
/// nothing to gather.
const GATHER_FROM_RANKS: usize = 3;

/// One population's local neurons (local indices `first_local ..
/// first_local + n` of the whole-rank arrays; a [`PopDesc`] on the device).
struct Block {
    pop: usize,
    first_local: u32,
    n: u32,
    /// The neuron model; `None` for spike generators.
    model: Option<ModelId>,
    /// `E_L`, mV (the state holds `V_m - E_L`).
    e_l: f64,
}

impl Block {
    fn range(&self) -> std::ops::Range<usize> {
        self.first_local as usize..(self.first_local + self.n) as usize
    }
}

/// A CPU block of `b`'s neurons (the population's constants, a state of
/// `b.n` neurons at rest), for the state's checkpoint bytes.
fn cpu_block(model: &Model, b: &Block) -> Result<neuron::Block, SimError> {
    let p = &model.populations[b.pop].params;
    neuron::block(p, model.dt_ms, b.n as usize, |_| 0.0)
        .ok_or_else(|| SimError::Internal(format!("{:?} neurons have no state", p.model)))
}

/// The neuron state of all local neurons: `n_vars` rows of `stride` (the
/// number of local neurons, at least 1) `f64`s, row `k` holding state
/// variable `k` of each neuron whose model has one (`V_m - E_L` is row 0
/// for every model; see `ModelId::state_vars`), and the remaining refractory
/// steps, all indexed by local index. Generators have no state.
struct NeuronState {
    vars: DevVec<f64>,
    stride: usize,
    refractory: DevVec<u32>,
}

/// Received entries waiting for the next delivery.
struct Staged {
    from: u32,
    collective: bool,
    entries: Vec<u64>,
}

/// One rank's simulation on a device. See the module documentation.
pub struct GpuEngine {
    dev: Box<dyn Device>,
    model: Model,
    shard: Shard,
    seed: u64,
    n_local: usize,
    n_ranks: usize,
    slots: u64,
    interval: u64,
    step: u64,
    interval_start: u64,
    weight_scale: f64,
    target_bits: u32,
    pop_first_local: Vec<usize>,
    blocks: Vec<Block>,
    /// The blocks' descriptors (`PopDesc`s).
    pops: DevVec<u8>,
    state: NeuronState,
    /// Global ids (Poisson words), per local neuron.
    gid: DevVec<u64>,
    /// The Poisson tables, concatenated.
    table: DevVec<u64>,
    /// The generators' spike steps, concatenated.
    gen_steps: DevVec<u64>,
    rings: Rings,
    row_ptr: DevVec<u64>,
    syn_td: DevVec<u32>,
    syn_w: DevVec<i32>,
    spikes: DevVec<u64>,
    spike_cap: u32,
    /// The parity of the last update's spike counter (`C_SPIKES + parity`).
    parity: usize,
    /// Per parity: whether its spike counter is known to be 0.
    spikes_zeroed: [bool; 2],
    ctr: DevVec<u32>,
    events: DevVec<i64>,
    routing: Routing,
    recorder: Recorder,
}

/// The synaptic input waiting for its arrival step: `slots` rows of
/// `n_local` fixed-point sums per receptor.
struct Rings {
    ex: DevVec<i64>,
    inh: DevVec<i64>,
}

impl Rings {
    fn new(dev: &mut dyn Device, slots: u64, n_local: usize) -> Result<Rings, SimError> {
        let len = slots as usize * n_local;
        Ok(Rings {
            ex: DevVec::zeros(dev, len, "ring buffer (excitatory)")?,
            inh: DevVec::zeros(dev, len, "ring buffer (inhibitory)")?,
        })
    }
}

/// Spikes between ranks (more than one rank): the send tables and buffers,
/// the image table, what was received and waits for the next delivery.
struct Routing {
    send_ptr: DevVec<u32>,
    send_entries: DevVec<u64>,
    out_start_host: Vec<u64>,
    out_cap_host: Vec<u32>,
    out_start: DevVec<u64>,
    out_cap: DevVec<u32>,
    /// The regions of `out` back to back (with [`GATHER_FROM_RANKS`] ranks
    /// or more; empty otherwise).
    packed: DevVec<u64>,
    out: DevVec<u64>,
    coll_out: DevVec<u64>,
    coll_cap: u32,
    needs: DevVec<u32>,
    /// Per source rank: range into `needs`.
    needs_range: Vec<(usize, usize)>,
    staged: Vec<Staged>,
    /// The staged entries of all senders with the unpack kernels' segment
    /// tables, gathered for one upload (kept to reuse its allocation).
    recv_host: Vec<u64>,
    recv: DevVec<u64>,
    deliv: DevVec<u64>,
}

/// What is recorded (spikes and V_m) on the device and not yet taken by the
/// host.
struct Recorder {
    record_from: u64,
    rec: DevVec<u64>,
    rec_cap: u32,
    rec_bound: u64,
    chunk_start: u64,
    /// Per local neuron: its V_m column, or `NO_COLUMN`.
    vm_col: DevVec<u32>,
    /// V_m columns (destination, source) of neurons recorded twice: the
    /// device writes the first column, the host copies it.
    vm_dup_cols: Vec<(usize, usize)>,
    vm_nan_cols: Vec<usize>,
    vm_width: usize,
    vm_buf: DevVec<f64>,
    vm_rows_cap: usize,
    vm_rows: usize,
    pending: Recorded,
}

/// Little-endian archived integers of the shard, viewed as their bytes.
trait LeBytes: Sized {
    /// The slice's bytes (the little-endian encoding of its elements).
    fn le_bytes(xs: &[Self]) -> &[u8];
}

macro_rules! le_bytes {
    ($($a:ty => $t:ty),*) => {$(
        const _: () = assert!(std::mem::size_of::<$a>() == std::mem::size_of::<$t>());
        impl LeBytes for $a {
            fn le_bytes(xs: &[Self]) -> &[u8] {
                // SAFETY: with rkyv's `little_endian` feature (set for the
                // workspace) `Archived<$t>` is `$a`, rend's little-endian integer:
                // a `repr(C)` wrapper of one integer of the same size (no
                // padding, asserted above) holding the little-endian
                // bytes. So the slice is `size_of_val(xs)` initialised
                // bytes, readable as `u8` (alignment 1) for as long as
                // `xs` is borrowed.
                unsafe {
                    std::slice::from_raw_parts(xs.as_ptr() as *const u8, std::mem::size_of_val(xs))
                }
            }
        }
    )*};
}
le_bytes!(rkyv::rend::u64_le => u64, rkyv::rend::u32_le => u32, rkyv::rend::i32_le => i32);

impl Routing {
    /// The routing tables (as `Engine::new` builds them) on the device, with
    /// a send buffer region per destination rank for an interval's
    /// entries; empty buffers on a single rank.
    fn new(
        dev_ref: &mut dyn Device,
        model: &Model,
        d: &ArchivedShardData,
        interval: u64,
    ) -> Result<Routing, SimError> {
        let n_ranks = d.n_ranks.to_native() as usize;
        let routing = layout::Routing::new(model, d)?;
        let mut out_start_host = Vec::with_capacity(n_ranks);
        let mut out_cap_host = Vec::with_capacity(n_ranks);
        let mut total_out = 0u64;
        for q in 0..n_ranks {
            let entries = d.send_offsets[q + 1].to_native() - d.send_offsets[q].to_native();
            out_start_host.push(total_out);
            let cap = entries * interval;
            out_cap_host.push(u32::try_from(cap).map_err(|_| {
                SimError::Invalid("send table too large for the GPU engine".into())
            })?);
            total_out += cap;
        }
        let send_ptr = routing.send_ptr;
        let send_entries: Vec<u64> = routing
            .send_entries
            .iter()
            .map(|&(q, pos)| (q as u64) << 32 | pos as u64)
            .collect();
        let senders = send_ptr.windows(2).filter(|w| w[0] != w[1]).count() as u64;
        let mut needs = Vec::new();
        let mut needs_range = Vec::with_capacity(n_ranks);
        for v in &routing.needs_local {
            needs_range.push((needs.len(), needs.len() + v.len()));
            needs.extend_from_slice(v);
        }
        let multi = n_ranks > 1;
        let coll_cap = if multi { senders * interval } else { 0 };
        let coll_cap = u32::try_from(coll_cap)
            .map_err(|_| SimError::Invalid("send table too large for the GPU engine".into()))?;
        let (send_ptr, send_entries, out_start, out_cap, out, coll_out, needs) = if multi {
            (
                DevVec::from_slice(dev_ref, &send_ptr, "send_ptr")?,
                DevVec::from_slice(dev_ref, &send_entries, "send entries")?,
                DevVec::from_slice(dev_ref, &out_start_host, "send buffer offsets")?,
                DevVec::from_slice(dev_ref, &out_cap_host, "send buffer capacities")?,
                DevVec::zeros(dev_ref, total_out as usize, "send buffers")?,
                DevVec::zeros(dev_ref, coll_cap as usize, "collective send buffer")?,
                DevVec::from_slice(dev_ref, &needs, "image table")?,
            )
        } else {
            (
                DevVec::zeros(dev_ref, 0, "send_ptr")?,
                DevVec::zeros(dev_ref, 0, "send entries")?,
                DevVec::zeros(dev_ref, 0, "send buffer offsets")?,
                DevVec::zeros(dev_ref, 0, "send buffer capacities")?,
                DevVec::zeros(dev_ref, 0, "send buffers")?,
                DevVec::zeros(dev_ref, 0, "collective send buffer")?,
                DevVec::zeros(dev_ref, 0, "image table")?,
            )
        };
        let gather = n_ranks >= GATHER_FROM_RANKS;
        if gather && total_out > u32::MAX as u64 {
            return Err(SimError::Invalid(
                "send table too large for the GPU engine".into(),
            ));
        }
        let packed = DevVec::zeros(
            dev_ref,
            if gather { total_out as usize } else { 0 },
            "packed send buffer",
        )?;
        Ok(Routing {
            send_ptr,
            send_entries,
            out_start_host,
            out_cap_host,
            out_start,
            out_cap,
            packed,
            out,
            coll_out,
            coll_cap,
            needs,
            needs_range,
            staged: Vec::new(),
            recv_host: Vec::new(),
            recv: DevVec::zeros(dev_ref, 0, "received entries")?,
            deliv: DevVec::zeros(dev_ref, 0, "received deliveries")?,
        })
    }
}

impl Recorder {
    /// Nothing recorded yet; `vm_col` (every neuron `NO_COLUMN`) is
    /// uploaded by the caller.
    fn new(
        dev_ref: &mut dyn Device,
        vm_col: DevVec<u32>,
        n_local: usize,
        interval: u64,
        options: &GpuOptions,
    ) -> Result<Recorder, SimError> {
        let rec_cap = (options.record_entries as u64).max(n_local as u64 * interval);
        Ok(Recorder {
            record_from: u64::MAX,
            rec: DevVec::zeros(dev_ref, 1, "spike recording")?,
            rec_cap: u32::try_from(rec_cap).unwrap_or(u32::MAX),
            rec_bound: 0,
            chunk_start: 0,
            vm_col,
            vm_dup_cols: Vec::new(),
            vm_nan_cols: Vec::new(),
            vm_width: 0,
            vm_buf: DevVec::zeros(dev_ref, 1, "V_m recording")?,
            vm_rows_cap: options.vm_steps.max(interval as usize),
            vm_rows: 0,
            pending: Recorded::default(),
        })
    }
}

impl GpuEngine {
    /// Loads a rank onto `dev`: the same initial state as
    /// [`Engine::new`](crate::engine::Engine::new) (potentials drawn from
    /// `seed`, empty ring buffers, step 0), the shard's synapses copied
    /// from its memory map.
    pub fn new(
        mut dev: Box<dyn Device>,
        model: Model,
        shard: Shard,
        min_delay_steps: u32,
        max_delay_steps: u32,
        seed: u64,
        options: &GpuOptions,
    ) -> Result<GpuEngine, SimError> {
        let d = shard.data();
        let n_local = d.local_to_global.len();
        let dt = model.dt_ms;
        let interval = min_delay_steps.max(1) as u64;
        let slots = max_delay_steps.max(1) as u64 + 1;
        let spike_cap = u32::try_from(n_local as u64 * interval).map_err(|_| {
            SimError::Invalid(format!(
                "{n_local} local neurons times an interval of {interval} steps do not fit the GPU engine's 32-bit spike list; use more ranks"
            ))
        })?;
        if n_local as u64 + d.images.len() as u64 > u32::MAX as u64 {
            return Err(SimError::Invalid(
                "too many rows for the GPU engine's 32-bit delivery entries".into(),
            ));
        }
        let mut blocks = Vec::new();
        let mut descs: Vec<u8> = Vec::new();
        let mut table: Vec<u64> = Vec::new();
        let mut gen_steps: Vec<u64> = Vec::new();
        // The initial state of each population's local neurons (the CPU
        // engine's blocks: the same constants and initial potentials).
        let mut initial: Vec<(usize, neuron::Block)> = Vec::new();
        let ranges = layout::population_ranges(&model, d)?;
        let pop_first_local = ranges.iter().map(|r| r.start).collect();
        for ((pi, p), r) in model.populations.iter().enumerate().zip(&ranges) {
            let (a, l) = (r.start, r.end);
            if a == l {
                continue;
            }
            let n = l - a;
            let mut desc = PopDesc {
                first_local: a as u32,
                n: n as u32,
                ..PopDesc::default()
            };
            let v0 = |i: usize| {
                let g = d.local_to_global[a + i].to_native();
                initial_v_m(seed, pi, g - p.first_id, &p.v_m_init)
            };
            let mut e_l = 0.0;
            let model_id = match neuron::block(&p.params, dt, n, v0) {
                Some(b) => {
                    let id = b.model();
                    e_l = b.e_l();
                    desc.kind = id.kind();
                    desc.consts = b.device_consts();
                    desc.e_l = b.e_l();
                    if let Some(pd) = layout::poisson_drive(&model, p) {
                        desc.table_offset = table.len() as u64;
                        desc.poisson_len = pd.table.thresholds().len() as u32;
                        desc.poisson_weight = i64::from(pd.weight_fixed);
                        desc.poisson_delay = pd.delay_steps;
                        table.extend_from_slice(pd.table.thresholds());
                    }
                    initial.push((a, b));
                    Some(id)
                }
                None => {
                    desc.kind = POP_SPIKE_GENERATOR;
                    let steps = generator_steps(&p.params.spike_times, dt);
                    desc.gen_offset = gen_steps.len() as u64;
                    desc.gen_len = u32::try_from(steps.len()).map_err(|_| {
                        SimError::Invalid(format!("too many spike times in {}", p.name))
                    })?;
                    gen_steps.extend(steps);
                    None
                }
            };
            descs.extend(desc.to_le_bytes());
            blocks.push(Block {
                pop: pi,
                first_local: a as u32,
                n: n as u32,
                model: model_id,
                e_l,
            });
        }
        let dev_ref: &mut dyn Device = dev.as_mut();
        let n1 = n_local.max(1);
        let what = "neuron state";
        // As many rows as the local model with the most variables has.
        let n_vars = initial
            .iter()
            .map(|(_, b)| b.vars().len())
            .max()
            .unwrap_or(1);
        let mut vars0 = vec![0f64; n_vars * n1];
        for (a, b) in &initial {
            for (k, row) in b.vars().into_iter().enumerate() {
                vars0[k * n1 + a..k * n1 + a + row.len()].copy_from_slice(row);
            }
        }
        drop(initial);
        let state = NeuronState {
            vars: DevVec::from_slice(dev_ref, &vars0, what)?,
            stride: n1,
            refractory: DevVec::zeros(dev_ref, n1, what)?,
        };
        let mut gids: Vec<u64> = (0..n_local)
            .map(|i| d.local_to_global[i].to_native())
            .collect();
        gids.resize(n1, 0);
        table.resize(table.len().max(1), 0);
        gen_steps.resize(gen_steps.len().max(1), 0);
        descs.resize(descs.len().max(std::mem::size_of::<PopDesc>()), 0);
        let pops = DevVec::from_slice(dev_ref, &descs, "population descriptors")?;
        let gid = DevVec::from_slice(dev_ref, &gids, "global ids")?;
        let table = DevVec::from_slice(dev_ref, &table, "Poisson tables")?;
        let gen_steps = DevVec::from_slice(dev_ref, &gen_steps, "spike generator steps")?;
        let vm_col = DevVec::from_slice(dev_ref, &vec![NO_COLUMN; n1], "V_m columns")?;
        // The synapses, straight from the shard's memory map.
        let row_ptr =
            DevVec::from_le_bytes(dev_ref, LeBytes::le_bytes(d.row_ptr.as_slice()), "row_ptr")?;
        let syn_td = DevVec::from_le_bytes(
            dev_ref,
            LeBytes::le_bytes(d.syn_target_delay.as_slice()),
            "syn_target_delay",
        )?;
        let syn_w = DevVec::from_le_bytes(
            dev_ref,
            LeBytes::le_bytes(d.syn_weight.as_slice()),
            "syn_weight",
        )?;
        let rings = Rings::new(dev_ref, slots, n_local)?;
        let spikes = DevVec::zeros(dev_ref, spike_cap.max(1) as usize, "spike list")?;
        let n_ranks = d.n_ranks.to_native() as usize;
        let routing = Routing::new(dev_ref, &model, d, interval)?;
        let ctr = DevVec::zeros(dev_ref, C_P2P + 2 * n_ranks + 1, "counters")?;
        let events = DevVec::zeros(dev_ref, 1, "event counter")?;
        let recorder = Recorder::new(dev_ref, vm_col, n_local, interval, options)?;
        let target_bits = d.target_bits.to_native();
        Ok(GpuEngine {
            weight_scale: 1.0 / (2f64).powi(model.weight_frac_bits as i32),
            dev,
            model,
            shard,
            seed,
            n_local,
            n_ranks,
            slots,
            interval,
            step: 0,
            interval_start: 0,
            target_bits,
            pop_first_local,
            blocks,
            pops,
            state,
            gid,
            table,
            gen_steps,
            rings,
            row_ptr,
            syn_td,
            syn_w,
            spikes,
            spike_cap,
            parity: 0,
            spikes_zeroed: [true; 2],
            ctr,
            events,
            routing,
            recorder,
        })
    }

    /// The device's description.
    pub fn device_description(&self) -> String {
        self.dev.describe()
    }

    /// The whole grid: for kernels whose work count is in device memory.
    fn full(&self) -> Shape {
        Shape {
            grid: self.dev.full_grid().max(1),
            block: self.dev.block_size().max(1),
        }
    }

    /// The error counters, as an error if any is set.
    fn check_errors(&mut self) -> Result<(), SimError> {
        let err = self.ctr.read(self.dev.as_mut(), C_ERR..C_ERR + N_ERR)?;
        errors(&err)
    }

    /// Copies the recording buffers back into `pending` and empties them.
    fn flush_recording(&mut self) -> Result<(), SimError> {
        self.check_errors()?;
        let dev = self.dev.as_mut();
        if self.recorder.record_from != u64::MAX {
            let n = self.ctr.read(dev, C_REC..C_REC + 1)?[0];
            if n > self.recorder.rec_cap {
                return Err(SimError::Internal(
                    "GPU engine: the spike recording buffer overflowed".into(),
                ));
            }
            let mut entries = self.recorder.rec.read(dev, 0..n as usize)?;
            entries.sort_unstable();
            let base = self.recorder.chunk_start;
            self.recorder
                .pending
                .spikes
                .extend(entries.iter().map(|&e| (base + (e >> 32), e as u32)));
            dev.zero(self.ctr.id(), (C_REC * 4) as u64, 4)?;
        }
        if self.recorder.vm_rows > 0 {
            let mut v = self
                .recorder
                .vm_buf
                .read(dev, 0..self.recorder.vm_rows * self.recorder.vm_width)?;
            for row in v.chunks_mut(self.recorder.vm_width.max(1)) {
                for &(dst, src) in &self.recorder.vm_dup_cols {
                    row[dst] = row[src];
                }
                for &c in &self.recorder.vm_nan_cols {
                    row[c] = f64::NAN;
                }
            }
            self.recorder.pending.vm.extend(v);
            self.recorder.vm_rows = 0;
        }
        self.recorder.rec_bound = 0;
        self.recorder.chunk_start = self.step;
        Ok(())
    }

    /// Delivery entries of the staged receptions (uploaded, unpacked on
    /// the device); returns whether there are any.
    ///
    /// The entries are checked on the host first (as
    /// [`Engine::receive`](crate::engine::Engine::receive) does), so a
    /// malformed one is an error naming its sender without reading the
    /// device's error counters back: nothing here waits for the device.
    /// The unpack kernels check again (counting into the error counters,
    /// read at the next flush) and never write out of bounds.
    fn unpack_staged(&mut self) -> Result<bool, SimError> {
        if let Some(s) = self.routing.staged.iter().find(|s| self.has_malformed(s)) {
            let from = s.from;
            self.routing.staged.clear();
            return Err(SimError::Internal(format!(
                "malformed spike entry from rank {from}"
            )));
        }
        let total: usize = self.routing.staged.iter().map(|s| s.entries.len()).sum();
        if total == 0 {
            self.routing.staged.clear();
            return Ok(false);
        }
        // One upload for everything received: per kind (point to point,
        // collective) with entries, the entries of its senders back to
        // back, their starts (`seg`) and per sender the unpack kernel's
        // parameters (images, or needs range and first row); then one
        // unpack launch per kind, not one per sender.
        let d = self.shard.data();
        let mut words = std::mem::take(&mut self.routing.recv_host);
        words.clear();
        // (kind, entries at, entries, seg at, senders, params at)
        let mut launches = Vec::with_capacity(2);
        for collective in [false, true] {
            let senders: Vec<&Staged> = self
                .routing
                .staged
                .iter()
                .filter(|s| s.collective == collective && !s.entries.is_empty())
                .collect();
            if senders.is_empty() {
                continue;
            }
            let at = words.len();
            for s in &senders {
                words.extend_from_slice(&s.entries);
            }
            let n = words.len() - at;
            let seg_at = words.len();
            let mut start = 0u64;
            for s in &senders {
                words.push(start);
                start += s.entries.len() as u64;
            }
            words.push(start);
            let params_at = words.len();
            for s in &senders {
                let q = s.from as usize;
                if collective {
                    let (a, b) = self.routing.needs_range[q];
                    words.extend_from_slice(&[
                        a as u64,
                        (b - a) as u64,
                        self.n_local as u64 + d.image_offsets[q].to_native(),
                    ]);
                } else {
                    words.extend_from_slice(&[
                        d.image_offsets[q].to_native(),
                        d.image_offsets[q + 1].to_native(),
                    ]);
                }
            }
            launches.push((collective, at, n, seg_at, senders.len(), params_at));
        }
        let dev = self.dev.as_mut();
        if self.routing.recv.len() < words.len() {
            let old = std::mem::replace(
                &mut self.routing.recv,
                DevVec::zeros(dev, words.len().next_power_of_two(), "received entries")?,
            );
            old.free(dev);
        }
        if self.routing.deliv.len() < total {
            let old = std::mem::replace(
                &mut self.routing.deliv,
                DevVec::zeros(dev, total.next_power_of_two(), "received deliveries")?,
            );
            old.free(dev);
        }
        let cap = u32::try_from(self.routing.deliv.len()).unwrap_or(u32::MAX);
        dev.zero(self.ctr.id(), (C_DELIV * 4) as u64, 4)?;
        self.routing.recv.write(dev, 0, &words)?;
        self.routing.recv_host = words;
        for (collective, at, n, seg_at, n_seg, params_at) in launches {
            let shape = grid_for(dev, n as u64);
            let r = &self.routing;
            if collective {
                launch::UnpackCollective {
                    recv: r.recv.ptr_at(at),
                    seg: r.recv.ptr_at(seg_at),
                    n_seg: n_seg as u32,
                    params: r.recv.ptr_at(params_at),
                    interval: self.interval,
                    needs: r.needs.ptr(),
                    deliv: r.deliv.ptr(),
                    n_deliv: self.ctr.ptr_at(C_DELIV),
                    deliv_cap: cap,
                    err: self.ctr.ptr_at(C_ERR),
                }
                .launch(dev, shape)?;
            } else {
                launch::UnpackP2p {
                    recv: r.recv.ptr_at(at),
                    seg: r.recv.ptr_at(seg_at),
                    n_seg: n_seg as u32,
                    images: r.recv.ptr_at(params_at),
                    interval: self.interval,
                    n_local: self.n_local as u32,
                    deliv: r.deliv.ptr(),
                    n_deliv: self.ctr.ptr_at(C_DELIV),
                    deliv_cap: cap,
                    err: self.ctr.ptr_at(C_ERR),
                }
                .launch(dev, shape)?;
            }
        }
        self.routing.staged.clear();
        Ok(true)
    }

    /// Whether any entry of `s` is malformed (the unpack kernels' test: an
    /// offset past the interval, or for point-to-point entries a position
    /// past the sender's images). Runs on every received entry, so the
    /// sender's bounds are looked up once.
    fn has_malformed(&self, s: &Staged) -> bool {
        let images = if s.collective {
            u64::MAX
        } else {
            let d = self.shard.data();
            let q = s.from as usize;
            (d.image_offsets[q + 1].to_native()).saturating_sub(d.image_offsets[q].to_native())
        };
        s.entries
            .iter()
            .any(|&w| w >> 32 >= self.interval || (w & 0xffff_ffff) >= images)
    }

    fn deliver_list(
        &mut self,
        list: Ptr,
        count: Ptr,
        capacity: u32,
        count_events: bool,
        err_index: usize,
    ) -> Result<(), SimError> {
        let shape = self.full();
        launch::DeliverList {
            spikes: list,
            n_spikes: count,
            capacity,
            interval_start: self.interval_start,
            row_ptr: self.row_ptr.ptr(),
            syn_td: self.syn_td.ptr(),
            syn_w: self.syn_w.ptr(),
            target_bits: self.target_bits,
            slots: self.slots,
            n_local: self.n_local as u32,
            ring_ex: self.rings.ex.ptr(),
            ring_in: self.rings.inh.ptr(),
            count_events: u32::from(count_events),
            n_events: self.events.ptr(),
            err: self.ctr.ptr_at(C_ERR),
            err_index: err_index as u32,
        }
        .launch(self.dev.as_mut(), shape)?;
        Ok(())
    }

    /// Checks that a received source rank exists.
    fn check_source(&self, from: u32) -> Result<(), SimError> {
        if from as usize >= self.n_ranks {
            return Err(SimError::Internal(format!(
                "spikes from unknown rank {from}"
            )));
        }
        Ok(())
    }
}

/// The error counters `err` (the `N_ERR` words from `C_ERR`), as an error
/// if any is set.
fn errors(err: &[u32]) -> Result<(), SimError> {
    let what = [
        (ERR_SPIKE_OVERFLOW, "the spike list overflowed"),
        (ERR_MALFORMED, "malformed spike entries were received"),
        (ERR_RECORD_OVERFLOW, "the spike recording buffer overflowed"),
        (ERR_PACK_OVERFLOW, "a send buffer overflowed"),
        (ERR_RECV_OVERFLOW, "the received delivery list overflowed"),
    ];
    for (i, msg) in what {
        if err[i] != 0 {
            return Err(SimError::Internal(format!("GPU engine: {msg}")));
        }
    }
    Ok(())
}

impl RankEngine for GpuEngine {
    fn backend(&self) -> String {
        "cuda".into()
    }
    fn device(&self) -> Option<String> {
        Some(self.dev.describe())
    }
    fn device_memory_bytes(&self) -> u64 {
        self.dev.peak_allocated_bytes()
    }
    fn data(&self) -> &ArchivedShardData {
        self.shard.data()
    }
    fn n_local(&self) -> usize {
        self.n_local
    }
    fn step(&self) -> u64 {
        self.step
    }
    fn interval(&self) -> u64 {
        self.interval
    }
    fn pop_first_local(&self) -> &[usize] {
        &self.pop_first_local
    }
    fn state_bytes(&self) -> u64 {
        let n = self.n_local as u64;
        n * (2 * 8 * self.slots + 48)
    }

    fn v_m_now(&mut self, locals: &[usize]) -> Result<Vec<f64>, SimError> {
        let dev = self.dev.as_mut();
        let mut out = Vec::with_capacity(locals.len());
        for &l in locals {
            let b = self
                .blocks
                .iter()
                .find(|b| b.range().contains(&l))
                .ok_or_else(|| {
                    SimError::Internal(format!("V_m of local neuron {l} of {}", self.n_local))
                })?;
            out.push(match b.model {
                None => f64::NAN,
                Some(_) => self.state.vars.read(dev, l..l + 1)?[0] + b.e_l,
            });
        }
        Ok(out)
    }

    fn set_recording(&mut self, from_step: u64, vm_locals: &[usize]) -> Result<(), SimError> {
        let dev = self.dev.as_mut();
        self.recorder.record_from = from_step;
        let rec = std::mem::replace(
            &mut self.recorder.rec,
            DevVec::zeros(
                dev,
                (self.recorder.rec_cap as usize).max(1),
                "spike recording",
            )?,
        );
        rec.free(dev);
        self.recorder.vm_nan_cols.clear();
        self.recorder.vm_dup_cols.clear();
        let mut cols = vec![NO_COLUMN; self.n_local.max(1)];
        for (col, &l) in vm_locals.iter().enumerate() {
            let b = self
                .blocks
                .iter()
                .find(|b| b.range().contains(&l))
                .ok_or_else(|| {
                    SimError::Internal(format!(
                        "V_m recording of local neuron {l} of {}",
                        self.n_local
                    ))
                })?;
            if b.model.is_none() {
                self.recorder.vm_nan_cols.push(col);
            } else if cols[l] == NO_COLUMN {
                cols[l] = u32::try_from(col)
                    .map_err(|_| SimError::Invalid("too many V_m columns".into()))?;
            } else {
                self.recorder.vm_dup_cols.push((col, cols[l] as usize));
            }
        }
        self.recorder.vm_col.write(dev, 0, &cols)?;
        self.recorder.vm_width = vm_locals.len();
        let vm = std::mem::replace(
            &mut self.recorder.vm_buf,
            DevVec::zeros(
                dev,
                (self.recorder.vm_rows_cap * self.recorder.vm_width).max(1),
                "V_m recording",
            )?,
        );
        vm.free(dev);
        self.recorder.vm_rows = 0;
        self.recorder.rec_bound = 0;
        self.recorder.chunk_start = self.step;
        Ok(())
    }

    fn update(&mut self, n_steps: u64) -> Result<(), SimError> {
        if n_steps > self.interval {
            return Err(SimError::Internal(format!(
                "update of {n_steps} steps, more than the interval of {}",
                self.interval
            )));
        }
        let recording = self.step + n_steps > self.recorder.record_from;
        if recording {
            let worst = self.n_local as u64 * n_steps;
            let span = self.step + n_steps - self.recorder.chunk_start;
            if self.recorder.rec_bound + worst > self.recorder.rec_cap as u64
                || (self.recorder.vm_width > 0
                    && self.recorder.vm_rows + n_steps as usize > self.recorder.vm_rows_cap)
                || span >= u32::MAX as u64
            {
                self.flush_recording()?;
            }
        }
        let dev = self.dev.as_mut();
        let start = self.step;
        self.interval_start = start;
        // The spike counter of this interval's parity; the first launch
        // resets the other one (read last by the previous interval's
        // kernels, which precede it in the stream), for the next interval.
        let p = self.parity ^ 1;
        if !self.spikes_zeroed[p] {
            dev.zero(self.ctr.id(), ((C_SPIKES + p) * 4) as u64, 4)?;
        }
        self.spikes_zeroed[p] = false;
        self.parity = p;
        let shape = grid_for(dev, self.n_local as u64);
        let st = &self.state;
        for t in start..start + n_steps {
            let row = (t % self.slots) as usize * self.n_local;
            let record_vm = self.recorder.vm_width > 0 && t >= self.recorder.record_from;
            let step = UpdateStep {
                step: t,
                interval_start: start,
                seed: self.seed,
                weight_scale: self.weight_scale,
                rec_offset: t - self.recorder.chunk_start,
                n_local: self.n_local as u32,
                n_pops: self.blocks.len() as u32,
                spike_capacity: self.spike_cap,
                record_spikes: u32::from(t >= self.recorder.record_from),
                rec_capacity: self.recorder.rec_cap,
                record_vm: u32::from(record_vm),
                reset_next: u32::from(t == start),
                pad: 0,
            };
            let vm_row = if record_vm {
                self.recorder
                    .vm_buf
                    .ptr_at(self.recorder.vm_rows * self.recorder.vm_width)
            } else {
                self.recorder.vm_buf.ptr()
            };
            launch::UpdateStep {
                step,
                pops: self.pops.ptr(),
                vars: st.vars.ptr(),
                refractory: st.refractory.ptr(),
                row_ex: self.rings.ex.ptr_at(row),
                row_in: self.rings.inh.ptr_at(row),
                gid: self.gid.ptr(),
                table: self.table.ptr(),
                gen_steps: self.gen_steps.ptr(),
                spikes: self.spikes.ptr(),
                n_spikes: self.ctr.ptr_at(C_SPIKES + p),
                n_spikes_next: self.ctr.ptr_at(C_SPIKES + (p ^ 1)),
                rec: self.recorder.rec.ptr(),
                n_rec: self.ctr.ptr_at(C_REC),
                err_record: self.ctr.ptr_at(C_ERR + ERR_RECORD_OVERFLOW),
                vm_col: self.recorder.vm_col.ptr(),
                vm_row,
            }
            .launch(dev, shape)?;
            if t == start {
                self.spikes_zeroed[p ^ 1] = true;
            }
            if record_vm {
                self.recorder.vm_rows += 1;
            }
        }
        if recording {
            self.recorder.rec_bound += self.n_local as u64 * n_steps;
        }
        self.step = start + n_steps;
        Ok(())
    }

    fn pack(&mut self, n_ranks: usize) -> Result<Vec<Vec<u64>>, SimError> {
        if n_ranks != self.n_ranks {
            return Err(SimError::Internal(format!(
                "pack for {n_ranks} ranks, the shard has {}",
                self.n_ranks
            )));
        }
        if n_ranks == 1 {
            return Ok(vec![Vec::new()]);
        }
        let shape = self.full();
        let dev = self.dev.as_mut();
        dev.zero(self.ctr.id(), (C_P2P * 4) as u64, (4 * n_ranks) as u64)?;
        let gather = n_ranks >= GATHER_FROM_RANKS;
        let r = &self.routing;
        launch::PackP2p {
            spikes: self.spikes.ptr(),
            n_spikes: self.ctr.ptr_at(C_SPIKES + self.parity),
            capacity: self.spike_cap,
            send_ptr: r.send_ptr.ptr(),
            send_entries: r.send_entries.ptr(),
            out_start: r.out_start.ptr(),
            out_cap: r.out_cap.ptr(),
            out: r.out.ptr(),
            out_count: self.ctr.ptr_at(C_P2P),
            err: self.ctr.ptr_at(C_ERR),
        }
        .launch(dev, shape)?;
        if gather {
            let c_start = C_P2P + n_ranks;
            launch::PackPrefix {
                out_count: self.ctr.ptr_at(C_P2P),
                out_cap: r.out_cap.ptr(),
                n_ranks: n_ranks as u32,
                starts: self.ctr.ptr_at(c_start),
            }
            .launch(dev, Shape { grid: 1, block: 1 })?;
            launch::PackGather {
                out: r.out.ptr(),
                out_start: r.out_start.ptr(),
                starts: self.ctr.ptr_at(c_start),
                n_ranks: n_ranks as u32,
                packed: r.packed.ptr(),
            }
            .launch(dev, shape)?;
            // The error counters, the counts and the starts in one copy,
            // the packed entries in another.
            let head = self.ctr.read(dev, C_ERR..c_start + n_ranks + 1)?;
            errors(&head[..N_ERR])?;
            let counts = &head[C_P2P - C_ERR..c_start - C_ERR];
            let starts = &head[c_start - C_ERR..];
            if counts
                .iter()
                .zip(&self.routing.out_cap_host)
                .any(|(c, cap)| c > cap)
            {
                return Err(SimError::Internal(
                    "GPU engine: a send buffer overflowed".into(),
                ));
            }
            let total = starts[n_ranks] as usize;
            if starts.windows(2).any(|w| w[0] > w[1]) || total > self.routing.packed.len() {
                return Err(SimError::Internal(
                    "GPU engine: inconsistent packed send list".into(),
                ));
            }
            let all = if total == 0 {
                Vec::new()
            } else {
                self.routing.packed.read(dev, 0..total)?
            };
            return Ok(starts
                .windows(2)
                .map(|w| all[w[0] as usize..w[1] as usize].to_vec())
                .collect());
        }
        let counts = self.ctr.read(dev, C_P2P..C_P2P + n_ranks)?;
        let mut out = Vec::with_capacity(n_ranks);
        for (q, &c) in counts.iter().enumerate() {
            if c > self.routing.out_cap_host[q] {
                return Err(SimError::Internal(
                    "GPU engine: a send buffer overflowed".into(),
                ));
            }
            let a = self.routing.out_start_host[q] as usize;
            out.push(if c == 0 {
                Vec::new()
            } else {
                self.routing.out.read(dev, a..a + c as usize)?
            });
        }
        Ok(out)
    }

    fn pack_collective(&mut self) -> Result<Vec<u64>, SimError> {
        if self.n_ranks == 1 {
            return Ok(Vec::new());
        }
        let shape = self.full();
        let dev = self.dev.as_mut();
        dev.zero(self.ctr.id(), (C_COLL * 4) as u64, 4)?;
        launch::PackCollective {
            spikes: self.spikes.ptr(),
            n_spikes: self.ctr.ptr_at(C_SPIKES + self.parity),
            capacity: self.spike_cap,
            send_ptr: self.routing.send_ptr.ptr(),
            out: self.routing.coll_out.ptr(),
            out_count: self.ctr.ptr_at(C_COLL),
            out_cap: self.routing.coll_cap,
            err: self.ctr.ptr_at(C_ERR),
        }
        .launch(dev, shape)?;
        let c = self.ctr.read(dev, C_COLL..C_COLL + 1)?[0];
        if c > self.routing.coll_cap {
            return Err(SimError::Internal(
                "GPU engine: the collective send buffer overflowed".into(),
            ));
        }
        Ok(self.routing.coll_out.read(dev, 0..c as usize)?)
    }

    fn receive(&mut self, from: u32, packed: &[u64]) -> Result<(), SimError> {
        self.check_source(from)?;
        self.routing.staged.push(Staged {
            from,
            collective: false,
            entries: packed.to_vec(),
        });
        Ok(())
    }

    fn receive_collective(&mut self, from: u32, packed: &[u64]) -> Result<(), SimError> {
        self.check_source(from)?;
        let (a, b) = self.routing.needs_range[from as usize];
        if a == b {
            return Ok(());
        }
        self.routing.staged.push(Staged {
            from,
            collective: true,
            entries: packed.to_vec(),
        });
        Ok(())
    }

    fn deliver(&mut self, count_events: bool) -> Result<(), SimError> {
        let received = self.unpack_staged()?;
        self.deliver_list(
            self.spikes.ptr(),
            self.ctr.ptr_at(C_SPIKES + self.parity),
            self.spike_cap,
            count_events,
            ERR_SPIKE_OVERFLOW,
        )?;
        if received {
            let cap = u32::try_from(self.routing.deliv.len()).unwrap_or(u32::MAX);
            self.deliver_list(
                self.routing.deliv.ptr(),
                self.ctr.ptr_at(C_DELIV),
                cap,
                count_events,
                ERR_RECV_OVERFLOW,
            )?;
        }
        Ok(())
    }

    fn events(&mut self) -> Result<u64, SimError> {
        Ok(self.events.read(self.dev.as_mut(), 0..1)?[0] as u64)
    }

    fn set_events(&mut self, events: u64) -> Result<(), SimError> {
        self.events.write(self.dev.as_mut(), 0, &[events as i64])?;
        Ok(())
    }

    fn take_recorded(&mut self, flush: bool) -> Result<Recorded, SimError> {
        if flush {
            self.flush_recording()?;
        }
        Ok(std::mem::take(&mut self.recorder.pending))
    }

    fn save_state(&mut self) -> Result<Vec<Section>, SimError> {
        self.check_errors()?;
        let dev = self.dev.as_mut();
        let mut out = state::header_sections(self.step, self.n_local, self.slots);
        let st = &self.state;
        for b in &self.blocks {
            if b.model.is_none() {
                continue;
            }
            // The CPU engine's block of these neurons, filled from the
            // device, writes the state as the CPU engine does.
            let mut cpu = cpu_block(&self.model, b)?;
            let r = b.range();
            for (k, row) in cpu.vars_mut().into_iter().enumerate() {
                let at = k * st.stride;
                row.copy_from_slice(&st.vars.read(dev, at + r.start..at + r.end)?);
            }
            cpu.refractory_mut()
                .copy_from_slice(&st.refractory.read(dev, r)?);
            let bytes = cpu.state_to_bytes();
            out.push(Section::new(
                format!("engine/neurons/{}", self.model.populations[b.pop].name),
                bytes,
            ));
        }
        for (name, ring) in state::RING_SECTIONS
            .into_iter()
            .zip([&self.rings.ex, &self.rings.inh])
        {
            let all = ring.to_vec(dev)?;
            out.push(state::ring_section(
                name,
                self.step,
                self.slots,
                self.n_local,
                |i| all[i],
            ));
        }
        Ok(out)
    }

    fn restore_state<'s>(
        &mut self,
        get: &dyn Fn(&str) -> Option<&'s [u8]>,
    ) -> Result<(), SimError> {
        let (step, rings) = state::read_header(get, self.n_local, self.slots)?;
        let dev = self.dev.as_mut();
        let st = &self.state;
        for b in &self.blocks {
            let p = &self.model.populations[b.pop];
            let name = format!("engine/neurons/{}", p.name);
            if b.model.is_none() {
                continue;
            }
            let bytes =
                get(&name).ok_or_else(|| state::bad_state(&format!("section {name} missing")))?;
            let total = b.n as usize;
            let wrong = || {
                state::bad_state(&format!(
                    "section {name} is not a state of {total} {:?} neurons",
                    p.params.model
                ))
            };
            let at = b.first_local as usize;
            let cpu = cpu_block(&self.model, b)?
                .with_state_bytes(bytes, total)
                .ok_or_else(wrong)?;
            for (k, row) in cpu.vars().into_iter().enumerate() {
                st.vars.write(dev, k * st.stride + at, row)?;
            }
            st.refractory.write(dev, at, cpu.refractory())?;
        }
        for (ring, bytes) in [&self.rings.ex, &self.rings.inh].into_iter().zip(rings) {
            let mut all = vec![0i64; self.slots as usize * self.n_local];
            state::unpack_ring(bytes, step, self.slots, self.n_local, |i, v| all[i] = v);
            ring.write(dev, 0, &all)?;
        }
        self.step = step;
        self.interval_start = step;
        self.recorder.chunk_start = step;
        self.recorder.rec_bound = 0;
        self.recorder.vm_rows = 0;
        dev.zero(self.ctr.id(), (C_REC * 4) as u64, 4)?;
        dev.zero(self.ctr.id(), (C_SPIKES * 4) as u64, 8)?;
        self.spikes_zeroed = [true; 2];
        Ok(())
    }
}
