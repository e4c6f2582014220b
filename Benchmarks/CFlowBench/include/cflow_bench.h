/* cflow_bench.h — ring measurements shared by ring_bench (CMake) and flow-bench's `ring` scenario. */
#ifndef CFLOW_BENCH_H
#define CFLOW_BENCH_H
#include <stdint.h>

#include "flow_ring.h"

/** ns per item moving `items` 8-byte items through a capacity-1024 ring with `pairs` producer/consumer
 *  pairs (1..4), single (batch 0) or batch-64 operations, blocking calls with the default spin.
 *  -1 when `kind` is not built in or the arguments are out of range. */
double flow_bench_ring(flow_queue_kind kind, unsigned pairs, int batch, uint64_t items);
/** ns per round trip of a ping-pong over two capacity-1 rings with spin 0 (both sides park each time). */
double flow_bench_park_wake(uint64_t trips);
/** Whether the measurements pin their threads (the process may use at least two CPUs). */
int flow_bench_pinned(void);
#endif
