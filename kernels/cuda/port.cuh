// Portability layer of the snn kernels: the same headers compile as CUDA
// (nvcc, or NVRTC with __CUDACC_RTC__) and as plain host C++ (C++11 or later;
// the tests use g++/clang++ -std=c++17 -O2 -ffp-contract=off).
//
// Determinism rules for every file that includes this one (see ARCHITECTURE.md,
// "determinism contract"): only + - * / sqrt floor fabs and bit manipulation
// on doubles, evaluated in the order written; never fast-math; never FMA
// contraction (nvcc --fmad=false, host -ffp-contract=off). The Rust twin is
// kernels/src/{rng,detmath}.rs; tests/cuda_twin.rs checks bit-identity.
#ifndef SNN_PORT_CUH
#define SNN_PORT_CUH

#if defined(__CUDACC_RTC__)
// NVRTC has no standard headers; sqrt, floor and fabs are builtins.
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;
typedef int int32_t;
#else
#include <stdint.h>
#include <string.h>
#include <math.h>
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SNN_HD __host__ __device__ __forceinline__
#else
#define SNN_HD inline
#endif

// Reinterpretation between double and its IEEE 754 bits.
SNN_HD uint64_t snn_double_to_bits(double x) {
#if defined(__CUDA_ARCH__)
    return (uint64_t)__double_as_longlong(x);
#else
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
#endif
}

SNN_HD double snn_bits_to_double(uint64_t b) {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double((long long)b);
#else
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
#endif
}

// High 64 bits of the 128-bit product a * b.
SNN_HD uint64_t snn_umulhi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#elif defined(__SIZEOF_INT128__) && !defined(SNN_PORT_NO_INT128)
    __extension__ typedef unsigned __int128 snn_u128;
    return (uint64_t)(((snn_u128)a * b) >> 64);
#else
    // Portable fallback (also forced by SNN_PORT_NO_INT128, for the tests).
    uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32;
    uint64_t b_lo = b & 0xffffffffu, b_hi = b >> 32;
    uint64_t lo_lo = a_lo * b_lo;
    uint64_t hi_lo = a_hi * b_lo;
    uint64_t lo_hi = a_lo * b_hi;
    uint64_t hi_hi = a_hi * b_hi;
    uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffu) + lo_hi;
    return hi_hi + (hi_lo >> 32) + (cross >> 32);
#endif
}

// IEEE operations that are correctly rounded (or exact) on every target.
SNN_HD double snn_sqrt(double x) { return sqrt(x); }
SNN_HD double snn_floor(double x) { return floor(x); }
SNN_HD double snn_fabs(double x) { return fabs(x); }
// NaN test that needs no library (fast-math is forbidden anyway).
SNN_HD bool snn_isnan(double x) { return x != x; }


// ---- Kernels, launches and atomics --------------------------------------
//
// A kernel is written as `SNN_KERNEL name(args) { ... }` with its work in
// the loops below, never with blockIdx/threadIdx directly, and without
// shared memory or barriers (each thread's work must be independent, apart
// from integer atomics, whose results do not depend on their order). Then the
// same source is
// * a CUDA kernel (`extern "C" __global__`) under nvcc or NVRTC, and
// * a plain inline function in host C++, run by snn_host_launch() below,
//   which calls it once per (block, thread) of the launch shape, one after
//   the other, in an order of the caller's choice: a legal serialisation of
//   the GPU execution, so the host run checks the kernel's logic (every
//   index covered once, whatever the shape; no dependence on thread order).

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SNN_KERNEL extern "C" __global__ void
#define SNN_GRID_DIM gridDim.x
#define SNN_BLOCK_DIM blockDim.x
#define SNN_BLOCK_IDX blockIdx.x
#define SNN_THREAD_IDX threadIdx.x
#else
// The launch position of the kernel call in progress (host emulation).
struct SnnHostGrid {
    uint32_t grid_dim;
    uint32_t block_dim;
    uint32_t block_idx;
    uint32_t thread_idx;
};
inline SnnHostGrid& snn_host_grid() {
    static SnnHostGrid g = {1, 1, 0, 0};
    return g;
}
#define SNN_KERNEL inline void
#define SNN_GRID_DIM (snn_host_grid().grid_dim)
#define SNN_BLOCK_DIM (snn_host_grid().block_dim)
#define SNN_BLOCK_IDX (snn_host_grid().block_idx)
#define SNN_THREAD_IDX (snn_host_grid().thread_idx)
#endif

// Grid-stride loop: each i in [0, n) exactly once over the whole launch.
#define SNN_FOR_GRID(i, n)                                                  \
    for (uint64_t i = (uint64_t)SNN_BLOCK_IDX * SNN_BLOCK_DIM + SNN_THREAD_IDX; \
         i < (uint64_t)(n); i += (uint64_t)SNN_BLOCK_DIM * SNN_GRID_DIM)
// Block-stride loop: each item i in [0, n) to one block (all its threads).
#define SNN_FOR_BLOCKS(i, n) \
    for (uint64_t i = SNN_BLOCK_IDX; i < (uint64_t)(n); i += SNN_GRID_DIM)
// Thread-stride loop inside a block: each j in [a, b) to one of its threads.
#define SNN_FOR_THREADS(j, a, b)                                   \
    for (uint64_t j = (uint64_t)(a) + SNN_THREAD_IDX; j < (uint64_t)(b); \
         j += SNN_BLOCK_DIM)

// Atomic add on a 32-bit counter; returns the old value.
SNN_HD uint32_t snn_atomic_add_u32(uint32_t* p, uint32_t v) {
#if defined(__CUDA_ARCH__)
    return atomicAdd((unsigned int*)p, (unsigned int)v);
#else
    uint32_t old = *p;
    *p = old + v;
    return old;
#endif
}

// The number of valid entries of a list filled through the atomic counter
// *count, at most `capacity`: a counter past the capacity means entries
// were dropped, which err[which] counts once (block 0, thread 0).
SNN_HD uint32_t snn_list_len(const uint32_t* count, uint32_t capacity, uint32_t* err,
                             uint32_t which) {
    uint32_t n = *count;
    if (n > capacity) {
        if (SNN_BLOCK_IDX == 0 && SNN_THREAD_IDX == 0) {
            snn_atomic_add_u32(&err[which], 1u);
        }
        n = capacity;
    }
    return n;
}

// Atomic add on a signed 64-bit integer, wrapping (two's complement: the
// unsigned 64-bit atomic add gives the same bits, as AtomicI64::fetch_add).
SNN_HD void snn_atomic_add_i64(int64_t* p, int64_t v) {
#if defined(__CUDA_ARCH__)
    atomicAdd((unsigned long long*)p, (unsigned long long)v);
#else
    uint64_t x;
    memcpy(&x, p, sizeof x);
    x += (uint64_t)v;
    memcpy(p, &x, sizeof x);
#endif
}

// Wrapping signed 64-bit arithmetic (Rust's release-mode i64 + and *), with
// no undefined behaviour in C++.
SNN_HD int64_t snn_wrapping_add_i64(int64_t a, int64_t b) {
    return (int64_t)((uint64_t)a + (uint64_t)b);
}
SNN_HD int64_t snn_wrapping_mul_i64(int64_t a, int64_t b) {
    return (int64_t)((uint64_t)a * (uint64_t)b);
}

#if !defined(__CUDACC__) && !defined(__CUDACC_RTC__)
// Host emulation of a launch of `grid` blocks of `block` threads: calls
// `kernel()` once per (block, thread), in the order given by `order`:
// 0 increasing (block major), 1 decreasing, otherwise a pseudo-random
// permutation of all (block, thread) pairs chosen by `order`.
template <class F>
inline void snn_host_launch(uint32_t grid, uint32_t block, uint32_t order, F kernel) {
    uint64_t total = (uint64_t)grid * block;
    if (total == 0 || total >= (1ull << 32)) {
        return;  // (host launches are small; the caller checks the shape)
    }
    // Permutation r -> (r * mul + add) % total with mul coprime to total.
    uint64_t mul = 1, add = 0;
    if (order >= 2) {
        uint64_t h = (uint64_t)order * 0x9E3779B97F4A7C15ull;
        mul = (h >> 17) % total | 1;
        for (;;) {
            uint64_t a = mul, b = total;
            while (b != 0) {
                uint64_t t = a % b;
                a = b;
                b = t;
            }
            if (a == 1) {
                break;
            }
            mul += 2;
        }
        mul %= total;
        if (mul == 0) {
            mul = 1;
        }
        add = (h >> 41) % total;
    }
    SnnHostGrid saved = snn_host_grid();
    for (uint64_t r = 0; r < total; ++r) {
        uint64_t k;
        if (order == 0) {
            k = r;
        } else if (order == 1) {
            k = total - 1 - r;
        } else {
            k = (r * mul + add) % total;  // no overflow: total < 2^32
        }
        SnnHostGrid g = {grid, block, (uint32_t)(k / block), (uint32_t)(k % block)};
        snn_host_grid() = g;
        kernel();
    }
    snn_host_grid() = saved;
}
#endif

#endif  // SNN_PORT_CUH
