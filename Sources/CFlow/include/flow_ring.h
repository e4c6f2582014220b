/*
 * flow_ring.h — a bounded multi-producer multi-consumer queue of fixed-size items. Its storage is a kind
 * (flow_queue_kind): the array ring, or liburcu's linked queue bounded by a counter; the API keeps the
 * name flow_ring for both, so that C users' code does not change with the kind.
 *
 * Items are copied by value into slots (no per-item allocation). Capacity is exact (any value >= 1).
 * Operations:
 *   try_push / try_pop            one item, never block: FLOW_OK, FLOW_FULL / FLOW_EMPTY, FLOW_CLOSED
 *   push_n / pop_n                claim up to n consecutive slots at once: returns the count (>= 1) or
 *                                 FLOW_FULL / FLOW_EMPTY / FLOW_CLOSED (0 only when n == 0)
 *   push_wait / pop_n_wait ...    the same, blocking: spin for the ring's spin budget (ns), then park
 *                                 on an eventcount; FLOW_TIMEDOUT after timeout_ns (FLOW_FOREVER: none)
 *   close                         producers then get FLOW_CLOSED; consumers drain what is left, then get
 *                                 FLOW_CLOSED; everyone parked is woken. Idempotent.
 *   await_pop / await_push        register a callback (flow_waiter) to run when the ring may have become
 *                                 non-empty / non-full, instead of parking a thread.
 * Item order: items pushed by one producer are popped in that order by any one consumer.
 * A batch pop returns items in queue order. The ring itself is opaque.
 */
#ifndef CFLOW_RING_H
#define CFLOW_RING_H

#include "flow_base.h"
#include "flow_parker.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The largest item a ring holds inline (elem_size), in bytes. */
#define FLOW_MAX_ELEM_SIZE ((size_t)1 << 20)

typedef struct flow_ring flow_ring;

/** Queue implementations behind the ring interface. */
typedef enum flow_queue_kind {
    FLOW_QUEUE_RING = 0, /**< the array ring (per-slot sequence numbers): the default */
    FLOW_QUEUE_URCU = 1, /**< liburcu's wait-free concurrent queue, bounded by a counter (URCU trait) */
} flow_queue_kind;

typedef struct flow_ring_options {
    uint64_t capacity;     /**< items, >= 1 */
    size_t elem_size;      /**< bytes per item, >= 1 (Swift: MemoryLayout<T>.stride) */
    int64_t spin_ns;       /**< spin budget before parking; < 0: the default (FLOW_DEFAULT_SPIN_NS) */
    flow_queue_kind kind;
    /** Hysteresis for waiting producers: a parked or awaiting producer is woken once the ring holds at
     *  most this many items (0, the default: as soon as one slot is free). Producers spinning within
     *  their budget still take any free slot. FLOW_QUEUE_RING only. */
    uint64_t resume_producers_at;
} flow_ring_options;

/** Create a ring. On failure returns NULL and fills err (capacity 0, elem_size 0, kind not built...). */
flow_ring *flow_ring_create(const flow_ring_options *opts, flow_error *err);
/** Destroy a ring. No thread may be using it. Items still inside are dropped as bytes. */
void flow_ring_destroy(flow_ring *r);
/** Whether this build has the liburcu queue (FLOW_QUEUE_URCU). */
int flow_ring_kind_available(flow_queue_kind kind);

uint64_t flow_ring_capacity(const flow_ring *r);
size_t flow_ring_elem_size(const flow_ring *r);
/** Approximate number of items: exact only when no operation is in progress. */
uint64_t flow_ring_size_approx(const flow_ring *r);
int flow_ring_is_closed(const flow_ring *r);

int flow_ring_try_push(flow_ring *r, const void *item);
int flow_ring_try_pop(flow_ring *r, void *item);
int64_t flow_ring_push_n(flow_ring *r, const void *items, int64_t n);
int64_t flow_ring_pop_n(flow_ring *r, void *items, int64_t n);

/** pop_n that also reports the queue-order number of the first item popped (0 for the first item ever
 *  pushed; the batch's items are numbered consecutively). Lets parallel consumers restore queue order.
 *  FLOW_ENOTSUP for FLOW_QUEUE_URCU. */
int64_t flow_ring_pop_n_seq(flow_ring *r, void *items, int64_t n, uint64_t *first_seq);
/** The blocking form of flow_ring_pop_n_seq. */
int64_t flow_ring_pop_n_wait_seq(flow_ring *r, void *items, int64_t n, int64_t timeout_ns, uint64_t *first_seq);

/** Blocking single push: FLOW_OK, FLOW_CLOSED or FLOW_TIMEDOUT. */
int flow_ring_push_wait(flow_ring *r, const void *item, int64_t timeout_ns);
/** Blocking single pop: FLOW_OK, FLOW_CLOSED (closed and drained) or FLOW_TIMEDOUT. */
int flow_ring_pop_wait(flow_ring *r, void *item, int64_t timeout_ns);
/** Blocking batch push: pushes at least one, up to n; returns the count, FLOW_CLOSED or FLOW_TIMEDOUT. */
int64_t flow_ring_push_n_wait(flow_ring *r, const void *items, int64_t n, int64_t timeout_ns);
/** Blocking batch pop: pops at least one (whatever is there, never waits to fill), up to n. */
int64_t flow_ring_pop_n_wait(flow_ring *r, void *items, int64_t n, int64_t timeout_ns);
/** Push all n items, blocking as needed. Returns n, or FLOW_CLOSED / FLOW_TIMEDOUT with *pushed set. */
int64_t flow_ring_push_all_wait(flow_ring *r, const void *items, int64_t n, int64_t timeout_ns,
                                int64_t *pushed);

/** What a pool thread serves while it waits on a ring (the pipeline's other stages, as Swift jobs):
 *  run_one runs one queued job (1) or finds none (0); pending says whether one is queued; whoever
 *  queues a job notifies `parker` after queuing it. */
typedef struct flow_jobs {
    int (*run_one)(void *ctx);
    int (*pending)(void *ctx);
    void *ctx;
    flow_parker *parker;
} flow_jobs;

/** How many serving waits (the *_serving calls) of the calling thread are running a job right now: 0
 *  outside any. A job that could run for long without returning checks it: the waiter under it gets its
 *  thread back only when the job returns. */
int flow_jobs_under_wait(void);

/** flow_ring_pop_n_wait_seq (no timeout) that runs `jobs` while the ring is empty: between re-checks it
 *  runs every queued job; it parks only when the ring is empty and no job is queued, and is woken by
 *  a push, a close or a job. */
int64_t flow_ring_pop_n_serving(flow_ring *r, void *items, int64_t n, uint64_t *first_seq, const flow_jobs *jobs);
/** flow_ring_push_all_wait (no timeout) that runs `jobs` while the ring is full, like pop_n_serving.
 *  Returns n, or FLOW_CLOSED with *pushed set. */
int64_t flow_ring_push_all_serving(flow_ring *r, const void *items, int64_t n, const flow_jobs *jobs,
                                   int64_t *pushed);

/** Close the ring (idempotent). */
void flow_ring_close(flow_ring *r);

/** Register w to run when the ring may have items (or is closed). FLOW_OK: registered; FLOW_READY:
 *  items are there or the ring is closed already (nothing registered, pop now). */
int flow_ring_await_pop(flow_ring *r, flow_waiter *w);
/** Register w to run when the ring may have a free slot (or is closed). FLOW_OK or FLOW_READY. */
int flow_ring_await_push(flow_ring *r, flow_waiter *w);
/** Remove a waiter registered by await_pop / await_push: 1 removed, 0 already fired. */
int flow_ring_unawait(flow_ring *r, flow_waiter *w);

/** The parkers behind the blocking calls (for stats and tests). */
flow_parker *flow_ring_not_empty(flow_ring *r);
flow_parker *flow_ring_not_full(flow_ring *r);

#ifdef __cplusplus
}
#endif
#endif
