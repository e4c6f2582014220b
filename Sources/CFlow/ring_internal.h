/*
 * ring_internal.h — a flow_ring's layout and the steps its files share (ring.c: the ring and its blocking
 * calls; ring_serving.c: the calls of a thread that serves jobs while it waits). Not part of the API.
 */
#ifndef FLOW_RING_INTERNAL_H
#define FLOW_RING_INTERNAL_H
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "flow_ring.h"
#include "parker_internal.h"
#include "queue_ops.h"

struct flow_ring {
    const flow_queue_ops *ops; /* the storage: flow_array_ops or flow_urcu_ops */
    void *q;
    uint64_t cap;
    size_t elem_size;
    int64_t spin_ns;
    struct flow_parker not_empty; /* consumers park here; notified by pushes and close */
    struct flow_parker not_full;  /* producers park here; notified by pops and close */
};

_Static_assert(offsetof(struct flow_ring, not_empty) % FLOW_CACHELINE == 0 &&
                   offsetof(struct flow_ring, not_full) % FLOW_CACHELINE == 0,
               "each parker on its own cache lines, apart from the read-mostly fields");

/* One try of a ring operation (a push or a pop of up to n into / from buf): a count or a status. */
typedef int64_t (*ring_op)(flow_ring *, void *, int64_t, uint64_t *);

/* A pop of up to n items, notifying waiting producers when the storage says they may go on
 * ([every change notifies]); with seq, the first item's position. */
static inline int64_t ring_pop(flow_ring *r, void *items, int64_t n, uint64_t *seq) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    int resume = 0;
    int64_t k = r->ops->pop_n(r->q, items, n, seq, &resume);
    if (k > 0 && resume) /* [every change notifies] */
        flow_parker_notify(&r->not_full, (int32_t)(k < INT32_MAX ? k : INT32_MAX));
    return k;
}

/* The ring's push and pop as ring_ops, each notifying the other side ([every change notifies]). Inline
 * here, so that a wait that spins on them (ring.c, ring_serving.c) calls them directly. */
static inline int64_t ring_push_op(flow_ring *r, void *buf, int64_t n, uint64_t *seq) {
    (void)seq;
    return flow_ring_push_n(r, buf, n);
}
static inline int64_t ring_pop_op(flow_ring *r, void *buf, int64_t n, uint64_t *seq) {
    return ring_pop(r, buf, n, seq);
}

/* [spins bounded in time]: re-try `op` until `spin_end` (nothing when spin_ns is 0): busy-wait with pause
 * for the first ~2 us, then yield between re-checks, so a thread this one waits for (often on the same
 * core when CPUs are oversubscribed, e.g. a Swift task consuming our output) gets the CPU instead of our
 * spinning. Returns op's first answer that is not `would_block`, or `would_block` when the budget is spent
 * or, with `jobs`, as soon as a job is queued (then *job is set). */
static inline int64_t ring_spin(flow_ring *r, ring_op op, void *buf, int64_t n, uint64_t *seq,
                                int64_t would_block, uint64_t start, uint64_t spin_end, const flow_jobs *jobs,
                                int *job) {
    uint64_t busy_end = start + 2000 < spin_end ? start + 2000 : spin_end;
    for (unsigned i = 1; r->spin_ns > 0; i++) {
        uint64_t t = (i & 7) == 0 ? flow_now_ns() : 0;
        if (t && t >= spin_end) break;
        if (t && t >= busy_end)
            sched_yield();
        else
            for (int j = 0; j < 16; j++) flow_cpu_relax();
        int64_t k = op(r, buf, n, seq);
        if (k != would_block) return k;
        if (jobs && jobs->pending(jobs->ctx)) {
            *job = 1;
            break;
        }
    }
    return would_block;
}

/* Register w on `parker` unless `ready` holds after the announcement: FLOW_OK or FLOW_READY. */
int ring_await(flow_ring *r, struct flow_parker *parker, int (*ready)(void *), flow_waiter *w);

/* A blocking push of up to n items, as a push-all repeats it: a count (>= 1) or an error. */
typedef int64_t (*ring_push_some)(flow_ring *r, const void *items, int64_t n, const void *ctx);

/* Push all n items, `push_some` at a time, until they are in or it fails; *pushed (when set) says how
 * many went in either way. */
int64_t ring_push_all(flow_ring *r, const void *items, int64_t n, int64_t *pushed, ring_push_some push_some,
                      const void *ctx);
#endif
