// Portability layer of the snn kernels: the same headers compile as CUDA
// (nvcc, or NVRTC with __CUDACC_RTC__) and as plain host C++ (C++11 or later;
// the tests use g++/clang++ -std=c++17 -O2 -ffp-contract=off).
//
// Determinism rules for every file that includes this one (see DESIGN.md,
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

#endif  // SNN_PORT_CUH
