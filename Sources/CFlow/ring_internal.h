/*
 * ring_internal.h — a flow_ring's layout and the steps its files share (ring.c: the ring and its blocking
 * calls; ring_serving.c: the calls of a thread that serves jobs while it waits). Not part of the API.
 */
#ifndef FLOW_RING_INTERNAL_H
#define FLOW_RING_INTERNAL_H
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

/* The ring's push and pop as ring_ops (a pop with the first item's position when seq is set), each
 * notifying the other side ([every change notifies]). */
int64_t ring_push_op(flow_ring *r, void *buf, int64_t n, uint64_t *seq);
int64_t ring_pop_op(flow_ring *r, void *buf, int64_t n, uint64_t *seq);
int64_t ring_pop(flow_ring *r, void *items, int64_t n, uint64_t *seq);

/* [spins bounded in time]: re-try `op` until `spin_end`; op's first answer that is not `would_block`, or
 * `would_block` when the budget is spent or, with `jobs`, as soon as a job is queued (then *job is set). */
int64_t ring_spin(flow_ring *r, ring_op op, void *buf, int64_t n, uint64_t *seq, int64_t would_block,
                  uint64_t start, uint64_t spin_end, const flow_jobs *jobs, int *job);

/* Register w on `parker` unless `ready` holds after the announcement: FLOW_OK or FLOW_READY. */
int ring_await(flow_ring *r, struct flow_parker *parker, int (*ready)(void *), flow_waiter *w);

/* A blocking push of up to n items, as a push-all repeats it: a count (>= 1) or an error. */
typedef int64_t (*ring_push_some)(flow_ring *r, const void *items, int64_t n, const void *ctx);

/* Push all n items, `push_some` at a time, until they are in or it fails; *pushed (when set) says how
 * many went in either way. */
int64_t ring_push_all(flow_ring *r, const void *items, int64_t n, int64_t *pushed, ring_push_some push_some,
                      const void *ctx);
#endif
