// Heap sort of a small array by one thread (no extra memory, no recursion),
// for the GPU builder's rows and sampled source lists (build.cu,
// connect.cu). The result is the increasing order, unique for distinct
// keys, so it does not depend on the order the keys were written in.
#ifndef SNN_SORT_CUH
#define SNN_SORT_CUH

#include "port.cuh"

template <class T>
SNN_HD void snn_sift_down(T* a, uint64_t root, uint64_t end) {
    for (;;) {
        uint64_t child = 2 * root + 1;
        if (child >= end) {
            return;
        }
        if (child + 1 < end && a[child] < a[child + 1]) {
            child += 1;
        }
        if (!(a[root] < a[child])) {
            return;
        }
        T x = a[root];
        a[root] = a[child];
        a[child] = x;
        root = child;
    }
}

// a[0 .. n) in increasing order.
template <class T>
SNN_HD void snn_heap_sort(T* a, uint64_t n) {
    if (n < 2) {
        return;
    }
    for (uint64_t start = n / 2; start-- > 0;) {
        snn_sift_down(a, start, n);
    }
    for (uint64_t end = n - 1; end > 0; --end) {
        T x = a[0];
        a[0] = a[end];
        a[end] = x;
        snn_sift_down(a, 0, end);
    }
}

#endif  // SNN_SORT_CUH
