// Poisson drive of the neurons: the CUDA C twin of simulate/src/input.rs
// (poisson_words, PoissonTable::sample); checked bit for bit against it by
// tests/kernels_host.rs (root package).
#ifndef SNN_POISSON_CUH
#define SNN_POISSON_CUH

#include "port.cuh"
#include "philox.cuh"

// The uniform word of the Poisson drive of neuron `gid` for the input
// emitted in step `emit_step` (input::poisson_word): word emit_step % 4 of
// the Philox block (seed; counter block_hi, PoissonDrive << 24 | gid_hi,
// gid_lo, block_lo) with block = emit_step / 4.
SNN_HD uint32_t snn_poisson_word(uint64_t seed, uint64_t gid, uint64_t emit_step) {
    uint64_t block = emit_step >> 2;
    SnnU32x4 c;
    c.v[0] = (uint32_t)(block >> 32);
    c.v[1] = (SNN_PURPOSE_POISSON_DRIVE << 24) | ((uint32_t)(gid >> 32) & 0x00ffffffu);
    c.v[2] = (uint32_t)gid;
    c.v[3] = (uint32_t)block;
    SnnU32x4 w = snn_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    return w.v[emit_step & 3];
}

// The count for the uniform word `u` from an inversion table
// (PoissonTable): the number of thresholds <= u. The thresholds increase
// and the last one is 2^32, which no word reaches.
SNN_HD uint32_t snn_poisson_count(const uint64_t* thresholds, uint32_t len, uint32_t u) {
    uint32_t k = 0;
    while (k < len && thresholds[k] <= (uint64_t)u) {
        ++k;
    }
    return k;
}

#endif  // SNN_POISSON_CUH
