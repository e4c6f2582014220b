/*
 * flow_pool.h — N pthreads, optionally pinned, each running a loop handed over as a C function.
 *
 * Life cycle: flow_pool_create (no threads yet) -> flow_pool_start (spawn, pin) ->
 * flow_pool_request_stop (sets a flag the loops poll; does not interrupt a blocked call: close the
 * rings the loops wait on) -> flow_pool_join (waits for every thread) -> flow_pool_destroy.
 * Every thread started is joined by flow_pool_join (or by flow_pool_destroy); none is detached.
 */
#ifndef CFLOW_POOL_H
#define CFLOW_POOL_H

#include "flow_base.h"
#include "flow_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flow_pool flow_pool;
typedef struct flow_worker flow_worker;

/** The loop a worker runs; it returns when its work is over or flow_worker_should_stop() says so. */
typedef void (*flow_worker_fn)(flow_worker *worker, void *ctx);

/** Per-worker counters (each worker's on its own cache lines). */
typedef struct flow_worker_stats {
    uint64_t items;   /**< items the loop reported through flow_worker_record */
    uint64_t busy_ns; /**< busy time the loop reported */
    uint64_t parked;  /**< times this worker parked in a blocking ring call */
} flow_worker_stats;

int flow_pool_create(const flow_config *cfg, flow_worker_fn fn, void *ctx, flow_pool **out,
                     flow_error *err);
/** Spawn the threads, pinned as cfg says. On failure the threads already started keep running with
 *  stop requested: close the rings their loops may block on, then flow_pool_join as usual. */
int flow_pool_start(flow_pool *p, flow_error *err);
void flow_pool_request_stop(flow_pool *p);
/** Fault injection for tests: make flow_pool_start fail (FLOW_ESYS, as if pthread_create had) after
 *  `started` threads have been started. */
void flow_pool_inject_start_failure(flow_pool *p, uint32_t started);
/** Join every started thread. Idempotent. */
int flow_pool_join(flow_pool *p);
/** Join (if needed) and free. */
void flow_pool_destroy(flow_pool *p);

uint32_t flow_pool_size(const flow_pool *p);
/** Worker threads of every pool in this process that are running now (started and not yet finished).
 *  After flow_pool_join returns, that pool's threads are no longer counted. */
uint32_t flow_pool_live_workers(void);
/** CPU worker i was pinned to, or -1 when not pinned. */
int flow_pool_worker_cpu(const flow_pool *p, uint32_t i);
flow_worker_stats flow_pool_worker_stats(const flow_pool *p, uint32_t i);

uint32_t flow_worker_index(const flow_worker *w);
/** The worker whose loop the calling thread is running, or NULL on any other thread
 *  ([a worker knows it is in its loop]). */
flow_worker *flow_current_worker(void);
/** CPU this worker was pinned to, or -1. */
int flow_worker_cpu(const flow_worker *w);
int flow_worker_should_stop(const flow_worker *w);
/** Add to this worker's item and busy counters (single writer: the worker itself). */
void flow_worker_record(flow_worker *w, uint64_t items, uint64_t busy_ns);

#ifdef __cplusplus
}
#endif
#endif
