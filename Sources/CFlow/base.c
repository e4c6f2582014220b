/*
 * base.c — what every CFlow unit shares: error records, status names, the clock, and the hook through
 * which a pool counts its threads' parks. Depends on nothing else in CFlow.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <time.h>

#include "internal.h"

_Thread_local _Atomic uint64_t *flow_tls_parked = NULL;

void flow_spin_pause(void) { flow_cpu_relax(); }

uint64_t flow_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int flow_fail(flow_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *flow_status_name(int s) {
    switch (s) {
    case FLOW_OK: return "FLOW_OK";
    case FLOW_FULL: return "FLOW_FULL";
    case FLOW_EMPTY: return "FLOW_EMPTY";
    case FLOW_CLOSED: return "FLOW_CLOSED";
    case FLOW_TIMEDOUT: return "FLOW_TIMEDOUT";
    case FLOW_EINVAL: return "FLOW_EINVAL";
    case FLOW_ENOMEM: return "FLOW_ENOMEM";
    case FLOW_ENOTSUP: return "FLOW_ENOTSUP";
    case FLOW_ESYS: return "FLOW_ESYS";
    case FLOW_READY: return "FLOW_READY";
    case FLOW_ESTATE: return "FLOW_ESTATE";
    default: return s > 0 ? "count" : "FLOW_UNKNOWN";
    }
}
