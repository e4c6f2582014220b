/* internal.h — private helpers every CFlow unit may use (not installed): the base layer. */
#ifndef CFLOW_INTERNAL_H
#define CFLOW_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "flow_base.h"

#define FLOW_CACHELINE 128

#if defined(__x86_64__) || defined(__i386__)
#define flow_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define flow_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define flow_cpu_relax() ((void)0)
#endif

/* Fill err (if any) with code and a formatted message; returns code. */
int flow_fail(flow_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Where the calling thread counts its parks: a pool points it at its worker's counter
 * ([worker counters on their own lines]); NULL outside a pool thread. Defined in base.c, so the parker
 * does not depend on the pool. */
extern _Thread_local _Atomic uint64_t *flow_tls_parked;

#endif
