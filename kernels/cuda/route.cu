// The simulation engine's spike routing: packing the interval's spikes per
// destination rank (point to point) or once for all (collective), and
// unpacking received spikes into the delivery list. Twins of
// simulate/src/engine.rs (Engine::route, route_collective, receive,
// receive_collective); driven by simulate/src/gpu.rs and checked bit for bit
// against the CPU engine by the root package's tests/gpu_sim_host.rs. (The
// generators and the recording of spikes are in neuron.cu.)
//
// Entry formats (all u64):
// * spike entry: `offset << 32 | local`, offset = step - interval_start
//   (neuron.cu's compaction; the delivery format of deliver.cu);
// * wire entry (point-to-point): `offset << 32 | position in the send table
//   to that rank`; wire entry (collective): `offset << 32 | local`.
//
// Every list is filled by an atomic counter: entries come in thread order,
// and a counter past the capacity means entries were dropped, which the
// kernels report in the error counters (`err[k]`, see SNN_ERR_*). The
// host reads the error counters before it trusts a result.
#ifndef SNN_ROUTE_CU
#define SNN_ROUTE_CU

#include "port.cuh"
// The error counters' indices into the engine's `err` array (SNN_ERR_*),
// defined once in Rust (snn_kernels::registry::ERR_*).
#include "constants.cuh"

// Point-to-point packing (Engine::route): for every spike entry and every
// (rank, position) of its neuron's send entries (send_entries[send_ptr[l]
// .. send_ptr[l + 1]], each `rank << 32 | position`), appends `offset << 32 |
// position` to that rank's region of `out` (region q: out_start[q] ..
// out_start[q] + out_cap[q], filled through out_count[q]).
SNN_KERNEL snn_pack_p2p(const uint64_t* spikes, const uint32_t* n_spikes, uint32_t capacity,
                        const uint32_t* send_ptr, const uint64_t* send_entries,
                        const uint64_t* out_start, const uint32_t* out_cap, uint64_t* out,
                        uint32_t* out_count, uint32_t* err) {
    uint32_t n = snn_list_len(n_spikes, capacity, err, SNN_ERR_SPIKE_OVERFLOW);
    SNN_FOR_GRID(i, n) {
        uint64_t e = spikes[i];
        uint32_t l = (uint32_t)e;
        uint64_t off = e >> 32;
        for (uint32_t k = send_ptr[l]; k < send_ptr[l + 1]; ++k) {
            uint64_t se = send_entries[k];
            uint32_t q = (uint32_t)(se >> 32);
            uint32_t slot = snn_atomic_add_u32(&out_count[q], 1u);
            if (slot < out_cap[q]) {
                out[out_start[q] + slot] = (off << 32) | (se & 0xffffffffull);
            } else {
                snn_atomic_add_u32(&err[SNN_ERR_PACK_OVERFLOW], 1u);
            }
        }
    }
}

// The regions of snn_pack_p2p back to back, for one copy to the host (with
// many ranks, one copy instead of one per destination): first the start of
// each region in the packed list, `starts[q]` = the sum of the regions'
// lengths min(out_count[p], out_cap[p]) for p < q, and `starts[n_ranks]` =
// the total (one thread: n_ranks is small next to the entries)...
SNN_KERNEL snn_pack_prefix(const uint32_t* out_count, const uint32_t* out_cap, uint32_t n_ranks,
                           uint32_t* starts) {
    SNN_FOR_GRID(i, 1u) {
        uint32_t s = 0;
        for (uint32_t q = 0; q < n_ranks; ++q) {
            starts[q] = s;
            uint32_t c = out_count[q];
            s += c < out_cap[q] ? c : out_cap[q];
        }
        starts[n_ranks] = s;
    }
}

// ... then the copy: region q (out[out_start[q] ..], starts[q + 1] -
// starts[q] entries) to packed[starts[q] ..], one block per region, its
// threads striding over the entries.
SNN_KERNEL snn_pack_gather(const uint64_t* out, const uint64_t* out_start, const uint32_t* starts,
                           uint32_t n_ranks, uint64_t* packed) {
    SNN_FOR_BLOCKS(q, n_ranks) {
        uint32_t a = starts[q];
        uint32_t n = starts[q + 1] - a;
        uint64_t from = out_start[q];
        SNN_FOR_THREADS(j, 0, n) {
            packed[a + j] = out[from + j];
        }
    }
}

// Collective packing (Engine::route_collective): the entries of neurons
// with any send entry, as they are (`offset << 32 | local`).
SNN_KERNEL snn_pack_collective(const uint64_t* spikes, const uint32_t* n_spikes,
                               uint32_t capacity, const uint32_t* send_ptr, uint64_t* out,
                               uint32_t* out_count, uint32_t out_cap, uint32_t* err) {
    uint32_t n = snn_list_len(n_spikes, capacity, err, SNN_ERR_SPIKE_OVERFLOW);
    SNN_FOR_GRID(i, n) {
        uint64_t e = spikes[i];
        uint32_t l = (uint32_t)e;
        if (send_ptr[l] != send_ptr[l + 1]) {
            uint32_t slot = snn_atomic_add_u32(out_count, 1u);
            if (slot < out_cap) {
                out[slot] = e;
            } else {
                snn_atomic_add_u32(&err[SNN_ERR_PACK_OVERFLOW], 1u);
            }
        }
    }
}

// The sender of received entry i when the entries of n_seg senders lie
// back to back, sender s's at seg[s] .. seg[s + 1] (seg increasing from
// seg[0] = 0): the largest s < n_seg with seg[s] <= i.
SNN_HD uint32_t snn_segment_of(const uint64_t* seg, uint32_t n_seg, uint64_t i) {
    uint32_t lo = 0, hi = n_seg;
    while (hi - lo > 1u) {
        uint32_t mid = lo + (hi - lo) / 2u;
        if (seg[mid] <= i) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// Point-to-point unpacking (Engine::receive) of the entries of n_seg
// senders in one launch: sender s's wire entries are recv[seg[s] ..
// seg[s + 1]] and its images are rows n_local + images[2 s] .. n_local +
// images[2 s + 1]; each entry becomes the delivery entry `offset << 32 |
// (n_local + images[2 s] + position)`. An entry with offset >= interval or
// a position past the sender's images is malformed: counted in
// err[SNN_ERR_MALFORMED] and not delivered.
SNN_KERNEL snn_unpack_p2p(const uint64_t* recv, const uint64_t* seg, uint32_t n_seg,
                          const uint64_t* images, uint64_t interval, uint32_t n_local,
                          uint64_t* deliv, uint32_t* n_deliv, uint32_t deliv_cap,
                          uint32_t* err) {
    SNN_FOR_GRID(i, seg[n_seg]) {
        uint32_t s = snn_segment_of(seg, n_seg, i);
        uint64_t image_begin = images[2u * s];
        uint64_t image_end = images[2u * s + 1u];
        uint64_t w = recv[i];
        uint64_t off = w >> 32;
        uint64_t pos = w & 0xffffffffull;
        if (off >= interval || image_begin + pos >= image_end) {
            snn_atomic_add_u32(&err[SNN_ERR_MALFORMED], 1u);
        } else {
            uint32_t slot = snn_atomic_add_u32(n_deliv, 1u);
            if (slot < deliv_cap) {
                deliv[slot] = (off << 32) | ((uint64_t)n_local + image_begin + pos);
            } else {
                snn_atomic_add_u32(&err[SNN_ERR_RECV_OVERFLOW], 1u);
            }
        }
    }
}

// Collective unpacking (Engine::receive_collective) of the entries of n_seg
// senders in one launch: sender s's entries `offset << 32 | source-local
// index` are recv[seg[s] .. seg[s + 1]]; those whose index is among the
// rank's images of that sender (needs[params[3 s] ..], params[3 s + 1]
// source-local indices, increasing) become delivery entries `offset << 32
// | (params[3 s + 2] + position in those needs)`; others are skipped.
// offset >= interval is malformed.
SNN_KERNEL snn_unpack_collective(const uint64_t* recv, const uint64_t* seg, uint32_t n_seg,
                                 const uint64_t* params, uint64_t interval,
                                 const uint32_t* needs, uint64_t* deliv, uint32_t* n_deliv,
                                 uint32_t deliv_cap, uint32_t* err) {
    SNN_FOR_GRID(i, seg[n_seg]) {
        uint32_t s = snn_segment_of(seg, n_seg, i);
        const uint32_t* own = needs + params[3u * s];
        uint32_t n_needs = (uint32_t)params[3u * s + 1u];
        uint64_t base_row = params[3u * s + 2u];
        uint64_t w = recv[i];
        uint64_t off = w >> 32;
        uint32_t l = (uint32_t)w;
        if (off >= interval) {
            snn_atomic_add_u32(&err[SNN_ERR_MALFORMED], 1u);
            continue;
        }
        // Binary search for l in own[0 .. n_needs).
        uint32_t lo = 0, hi = n_needs;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2u;
            if (own[mid] < l) {
                lo = mid + 1u;
            } else {
                hi = mid;
            }
        }
        if (lo < n_needs && own[lo] == l) {
            uint32_t slot = snn_atomic_add_u32(n_deliv, 1u);
            if (slot < deliv_cap) {
                deliv[slot] = (off << 32) | (base_row + lo);
            } else {
                snn_atomic_add_u32(&err[SNN_ERR_RECV_OVERFLOW], 1u);
            }
        }
    }
}

#endif  // SNN_ROUTE_CU
