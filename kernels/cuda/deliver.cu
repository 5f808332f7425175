// Spike delivery: the weights of the synapses of each spiking row are added
// with 64-bit integer atomics into the fixed-point ring buffers, as
// Engine::deliver does on the CPU (simulate/src/engine.rs). Integer sums do
// not depend on the order of the additions, so the result is the CPU's bit
// for bit whatever the thread timing (checked by tests/kernels_host.rs of
// the root package).
#ifndef SNN_DELIVER_CU
#define SNN_DELIVER_CU

#include "port.cuh"

// The synapses of one row: the weights of row `row`'s synapses added to the
// ring cells of step `step` plus their delays (see snn_deliver).
SNN_HD void snn_deliver_row(uint64_t step, uint32_t row, const uint64_t* row_ptr,
                            const uint32_t* syn_td, const int32_t* syn_w, uint32_t target_bits,
                            uint64_t slots, uint32_t n_local, int64_t* ring_ex,
                            int64_t* ring_in) {
    uint32_t mask = (1u << target_bits) - 1u;
    uint64_t a = row_ptr[row];
    uint64_t b = row_ptr[row + 1];
    SNN_FOR_THREADS(j, a, b) {
        uint32_t td = syn_td[j];
        uint64_t target = td & mask;
        uint64_t slot = (step + (uint64_t)(td >> target_bits)) % slots;
        int64_t w = syn_w[j];
        int64_t* ring = w >= 0 ? ring_ex : ring_in;
        snn_atomic_add_i64(&ring[slot * n_local + target], w);
    }
}

#ifdef SNN_TEST_KERNELS
// A test kernel (feature test-kernels of snn-kernels): the engine delivers
// with snn_deliver_list, through the same snn_deliver_row.

// Delivers `n_spikes` entries `offset << 32 | row` (step = interval_start +
// offset; row = a local index, or n_local + image index for a spike of a
// remote neuron). Row `row` holds the synapses row_ptr[row] ..
// row_ptr[row + 1] of the shard's CSR: syn_td = local target |
// delay_steps << target_bits, syn_w = fixed-point weight. A synapse adds its
// weight to ring_ex (weight >= 0) or ring_in (< 0) at
// [((step + delay) % slots) * n_local + target].
//
// One block per spike (block-stride over the spikes), the block's threads
// striding over the row (consecutive threads read consecutive synapses).
SNN_KERNEL snn_deliver(const uint64_t* spikes, uint32_t n_spikes, uint64_t interval_start,
                       const uint64_t* row_ptr, const uint32_t* syn_td, const int32_t* syn_w,
                       uint32_t target_bits, uint64_t slots, uint32_t n_local, int64_t* ring_ex,
                       int64_t* ring_in) {
    SNN_FOR_BLOCKS(s, n_spikes) {
        uint64_t e = spikes[s];
        snn_deliver_row(interval_start + (e >> 32), (uint32_t)e, row_ptr, syn_td, syn_w,
                        target_bits, slots, n_local, ring_ex, ring_in);
    }
}
#endif  // SNN_TEST_KERNELS

// snn_deliver for the simulation engine (simulate/src/gpu.rs): the number
// of entries is read from device memory (`*n_spikes`, the counter of the
// list's atomic appends, so the host need not copy it back), at most
// `capacity` (a counter past it means entries were dropped: err[err_index]
// is incremented once). When count_events is 1, the synapses of the
// delivered rows are added to *n_events (the synaptic event count of
// Engine::deliver; one add per row, by its block's thread 0).
SNN_KERNEL snn_deliver_list(const uint64_t* spikes, const uint32_t* n_spikes, uint32_t capacity,
                            uint64_t interval_start, const uint64_t* row_ptr,
                            const uint32_t* syn_td, const int32_t* syn_w, uint32_t target_bits,
                            uint64_t slots, uint32_t n_local, int64_t* ring_ex, int64_t* ring_in,
                            uint32_t count_events, int64_t* n_events, uint32_t* err,
                            uint32_t err_index) {
    uint32_t n = snn_list_len(n_spikes, capacity, err, err_index);
    SNN_FOR_BLOCKS(s, n) {
        uint64_t e = spikes[s];
        uint32_t row = (uint32_t)e;
        snn_deliver_row(interval_start + (e >> 32), row, row_ptr, syn_td, syn_w, target_bits,
                        slots, n_local, ring_ex, ring_in);
        if (count_events != 0u && SNN_THREAD_IDX == 0) {
            snn_atomic_add_i64(n_events, (int64_t)(row_ptr[row + 1] - row_ptr[row]));
        }
    }
}

#endif  // SNN_DELIVER_CU
