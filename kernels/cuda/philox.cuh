// Philox4x32-10 and the sequential stream reader: the CUDA C twin of
// kernels/src/rng.rs (bit-identical; checked by kernels/tests/cuda_twin.rs).
//
// A stream is named by a 64-bit seed (the Philox key: low word first) and
// three 32-bit words (counter words 1..3); counter word 0 numbers the blocks.
// Words are read in block order, the four words of a block in order.
#ifndef SNN_PHILOX_CUH
#define SNN_PHILOX_CUH

#include "port.cuh"

// Defined in detmath.cuh (included at the end of this file).
SNN_HD double snn_ln(double x);

#define SNN_PHILOX_M0 0xD2511F53u
#define SNN_PHILOX_M1 0xCD9E8D57u
#define SNN_PHILOX_W0 0x9E3779B9u
#define SNN_PHILOX_W1 0xBB67AE85u

// Stream purposes (top byte of stream word 0); same values as rng::Purpose.
#define SNN_PURPOSE_SYNAPSE 1u
#define SNN_PURPOSE_TOTAL_NUMBER_SPLIT 2u
#define SNN_PURPOSE_BERNOULLI 3u
#define SNN_PURPOSE_INITIAL_VM 4u
#define SNN_PURPOSE_POISSON_DRIVE 5u
#define SNN_PURPOSE_NO_MULTAPSE 6u

struct SnnU32x4 {
    uint32_t v[4];
};

// One Philox4x32-10 block of a 128-bit counter and a 64-bit key.
SNN_HD SnnU32x4 snn_philox4x32_10(SnnU32x4 ctr, uint32_t key0, uint32_t key1) {
    uint32_t c0 = ctr.v[0], c1 = ctr.v[1], c2 = ctr.v[2], c3 = ctr.v[3];
    uint32_t k0 = key0, k1 = key1;
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += SNN_PHILOX_W0;
            k1 += SNN_PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)SNN_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)SNN_PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    SnnU32x4 out;
    out.v[0] = c0;
    out.v[1] = c1;
    out.v[2] = c2;
    out.v[3] = c3;
    return out;
}

// Sequential reader over one stream (rng::CounterRng).
struct SnnRng {
    uint32_t key[2];
    uint32_t words[3];
    uint32_t block;
    uint32_t buf[4];
    uint32_t used;
};

// The stream with raw counter words and a starting block number.
SNN_HD SnnRng snn_rng_from_raw(uint64_t seed, uint32_t w0, uint32_t w1, uint32_t w2,
                               uint32_t first_block) {
    SnnRng r;
    r.key[0] = (uint32_t)seed;
    r.key[1] = (uint32_t)(seed >> 32);
    r.words[0] = w0;
    r.words[1] = w1;
    r.words[2] = w2;
    r.block = first_block;
    r.buf[0] = r.buf[1] = r.buf[2] = r.buf[3] = 0;
    r.used = 4;
    return r;
}

// The stream (seed, purpose, w0, w1, w2); w0 must fit in 24 bits.
SNN_HD SnnRng snn_rng_new(uint64_t seed, uint32_t purpose, uint32_t w0, uint32_t w1,
                          uint32_t w2) {
    return snn_rng_from_raw(seed, (purpose << 24) | w0, w1, w2, 0);
}

// The next 32 random bits.
SNN_HD uint32_t snn_rng_next_u32(SnnRng* r) {
    if (r->used == 4) {
        SnnU32x4 c;
        c.v[0] = r->block;
        c.v[1] = r->words[0];
        c.v[2] = r->words[1];
        c.v[3] = r->words[2];
        SnnU32x4 b = snn_philox4x32_10(c, r->key[0], r->key[1]);
        r->buf[0] = b.v[0];
        r->buf[1] = b.v[1];
        r->buf[2] = b.v[2];
        r->buf[3] = b.v[3];
        r->block += 1;
        r->used = 0;
    }
    return r->buf[r->used++];
}

// The next 64 random bits (two words, the first one high).
SNN_HD uint64_t snn_rng_next_u64(SnnRng* r) {
    uint64_t hi = snn_rng_next_u32(r);
    uint64_t lo = snn_rng_next_u32(r);
    return (hi << 32) | lo;
}

// A uniform integer in 0..n (n > 0) by 64-bit multiply-high.
SNN_HD uint64_t snn_rng_below(SnnRng* r, uint64_t n) {
    return snn_umulhi64(snn_rng_next_u64(r), n);
}

// A uniform double in (0, 1): (j + 1/2) / 2^52, j = top 52 bits of 64.
SNN_HD double snn_rng_open01(SnnRng* r) {
    uint64_t bits = snn_rng_next_u64(r) >> 12;
    return ((double)bits + 0.5) * (1.0 / 4503599627370496.0);
}

// A uniform double in (-1, 1) from 32 random bits.
SNN_HD double snn_rng_open_pm1(SnnRng* r) {
    return ((double)(int32_t)snn_rng_next_u32(r) + 0.5) * (1.0 / 2147483648.0);
}

// A standard normal variate (Marsaglia's polar method), 64 bits per attempt.
SNN_HD double snn_rng_normal(SnnRng* r) {
    for (;;) {
        double u = snn_rng_open_pm1(r);
        double v = snn_rng_open_pm1(r);
        double s = u * u + v * v;
        if (s < 1.0 && s > 0.0) {
            return u * snn_sqrt(-2.0 * snn_ln(s) / s);
        }
    }
}

// Two standard normal variates from one accepted polar pair (rng::normal2):
// same words as snn_rng_normal, which returns the first of them.
SNN_HD void snn_rng_normal2(SnnRng* r, double* a, double* b) {
    for (;;) {
        double u = snn_rng_open_pm1(r);
        double v = snn_rng_open_pm1(r);
        double s = u * u + v * v;
        if (s < 1.0 && s > 0.0) {
            double f = snn_sqrt(-2.0 * snn_ln(s) / s);
            *a = u * f;
            *b = v * f;
            return;
        }
    }
}

#include "detmath.cuh"

#endif  // SNN_PHILOX_CUH
