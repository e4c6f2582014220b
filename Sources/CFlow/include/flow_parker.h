/*
 * flow_parker.h — an eventcount: park threads (or register callbacks) until a condition may have changed.
 *
 * Use (thread):                              Use (callback, e.g. a Swift continuation):
 *   for (;;) {                                 uint32_t key = flow_parker_prepare(p);
 *       if (condition()) break;                if (condition()) { flow_parker_cancel(p); go on; }
 *       uint32_t key = flow_parker_prepare(p); w->fn = resume; w->ctx = ctx;
 *       if (condition()) { flow_parker_cancel(p); break; }   if (flow_parker_register(p, key, w) == FLOW_READY)
 *       flow_parker_wait(p, key, FLOW_FOREVER);                  retry at once;  (else fn(ctx) runs on a later notify)
 *   }
 * The side that makes the condition true calls flow_parker_notify() afterwards. When nobody waits,
 * notify costs one fence, one load and one branch. No wake-up is lost: see the invariants in parker.c.
 */
#ifndef CFLOW_PARKER_H
#define CFLOW_PARKER_H

#include "flow_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flow_parker flow_parker;

/**
 * A callback waiter, allocated and owned by the caller. Fill `fn` and `ctx`; the other fields are the
 * parker's. After a successful flow_parker_register() the node belongs to the parker until either
 * `fn(ctx)` has been called (exactly once, on the notifying thread, outside any lock) or
 * flow_parker_unregister() returned 1.
 */
typedef struct flow_waiter {
    void (*fn)(void *ctx);
    void *ctx;
    struct flow_waiter *next;
    struct flow_waiter *prev;
    void *owner;
} flow_waiter;

/** Create / destroy a standalone parker (rings embed their own). */
flow_parker *flow_parker_create(void);
void flow_parker_destroy(flow_parker *p);

/** Announce an intent to wait; returns the key to pass to wait/register. Must be followed by exactly
 *  one of cancel, wait or register. */
uint32_t flow_parker_prepare(flow_parker *p);
/** Withdraw a prepare() after the re-check found the condition true. */
void flow_parker_cancel(flow_parker *p);
/** Sleep until a notify after prepare(), or until timeout_ns (FLOW_FOREVER for none).
 *  Returns FLOW_OK or FLOW_TIMEDOUT. Spurious returns are possible: re-check the condition. */
int flow_parker_wait(flow_parker *p, uint32_t key, int64_t timeout_ns);
/** Instead of sleeping, hand a callback to run on the next notify. Returns FLOW_OK (registered) or
 *  FLOW_READY (a notify already happened since prepare: nothing registered, re-check at once). */
int flow_parker_register(flow_parker *p, uint32_t key, flow_waiter *w);
/** Remove a registered waiter. Returns 1 if removed (fn will not run), 0 if a notify has taken it
 *  (fn has run or is about to run). */
int flow_parker_unregister(flow_parker *p, flow_waiter *w);
/** Wake up to `n` sleeping threads (INT32_MAX: all) and run every registered callback. */
void flow_parker_notify(flow_parker *p, int32_t n);
/** Number of announced waiters right now (approximate; for tests and stats). */
uint32_t flow_parker_waiters(const flow_parker *p);

#ifdef __cplusplus
}
#endif
#endif
