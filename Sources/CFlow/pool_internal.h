/* pool_internal.h — what pool.c takes from the pool's other files (not installed). */
#ifndef CFLOW_POOL_INTERNAL_H
#define CFLOW_POOL_INTERNAL_H
#include <stdint.h>

#include "flow_config.h"

/* The CPUs of cfg->cpus in the order cfg->pin gives them (pin_order.c): writes them to `out` (room for
 * FLOW_CPU_SETSIZE) and returns how many; 0 if memory ran out. */
uint32_t flow_pin_order(const flow_config *cfg, uint32_t *out);
#endif
