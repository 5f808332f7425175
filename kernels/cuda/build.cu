// The GPU builder's kernels besides connection generation (connect.cu):
// grouping the generated synapses by source into the CSR, the canonical
// order inside rows, image maps and send tables. Twins of
// build-net/src/rank.rs.
#ifndef SNN_BUILD_CU
#define SNN_BUILD_CU

#include "port.cuh"

#endif  // SNN_BUILD_CU
