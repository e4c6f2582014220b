/*
 * flow_base.h — status codes and the error record shared by every CFlow API.
 *
 * Conventions: functions that can fail return an int status (FLOW_OK or a negative FLOW_E* code);
 * counting functions return an int64_t that is a count (>= 0) or a negative status. Where a
 * `flow_error *` is taken it may be NULL; when given, it receives a human-readable message that names
 * the offending parameter or environment variable and its value.
 */
#ifndef CFLOW_BASE_H
#define CFLOW_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes. Every failure is negative. */
enum {
    FLOW_OK = 0,
    FLOW_FULL = -1,      /**< non-blocking push: no free slot */
    FLOW_EMPTY = -2,     /**< non-blocking pop: no item */
    FLOW_CLOSED = -3,    /**< push after close(), or pop on a closed and drained queue */
    FLOW_TIMEDOUT = -4,  /**< a blocking call reached its timeout */
    FLOW_EINVAL = -5,    /**< bad argument or configuration value (see the flow_error message) */
    FLOW_ENOMEM = -6,    /**< allocation failed */
    FLOW_ENOTSUP = -7,   /**< feature not compiled in (e.g. the liburcu queue without the URCU trait) */
    FLOW_ESYS = -8,      /**< an OS call failed (message carries strerror) */
    FLOW_READY = -9,     /**< an await-registration found the condition already true: retry, do not wait */
    FLOW_ESTATE = -10,   /**< call not valid in the object's current state (e.g. start twice) */
};

/** An error record: the status and a message naming what is wrong. */
typedef struct flow_error {
    int code;
    char message[256];
} flow_error;

/** A short constant name for a status code ("FLOW_CLOSED"), for logs. */
const char *flow_status_name(int status);

/** Pass as a timeout to wait without limit. */
#define FLOW_FOREVER ((int64_t)-1)

/** Default spin budget before a blocking call parks, in ns: about one futex wake on these machines. */
#define FLOW_DEFAULT_SPIN_NS 40000
/** One pool thread at a time whose recent waits for items averaged under this many spin budgets spins up
 *  to twice its average wait, at most this many budgets ([one long spinner]): 240 us with the default budget.
 *  */
#define FLOW_ADAPTIVE_SPIN_FACTOR 6
/** The largest spin budget a ring or FLOW_SPIN_NS accepts, in ns (10 s). */
#define FLOW_MAX_SPIN_NS 10000000000LL

/** Monotonic clock in nanoseconds. */
uint64_t flow_now_ns(void);

/** One spin-wait pause (x86 `pause`, Arm `yield`): for busy-wait loops outside CFlow. */
void flow_spin_pause(void);

#ifdef __cplusplus
}
#endif
#endif
