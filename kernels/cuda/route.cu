// The simulation engine's kernels besides the neuron update and delivery:
// spike routing (packing per destination rank, unpacking received spikes),
// spike generators and recording. Twins of simulate/src/engine.rs.
#ifndef SNN_ROUTE_CU
#define SNN_ROUTE_CU

#include "port.cuh"

#endif  // SNN_ROUTE_CU
