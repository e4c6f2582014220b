/*
 * ring.c — a flow_ring: a storage kind (queue_ops.h: the array, array_queue.c, or liburcu's queue,
 * urcu_queue.c) plus what every kind shares: argument checks, the two eventcount parkers, the blocking
 * calls (spin for a budget, then park) and await registration for callbacks. The calls of a thread that
 * serves jobs while it waits are ring_serving.c's.
 *
 * Invariants:
 *  [every change notifies] Every successful push notifies not_empty and every successful pop whose storage
 *    says waiting producers may go on ([producers resume at a size]) notifies not_full, after the storage
 *    operation is complete; close() notifies both. A push refused by close notifies not_empty too
 *    ([no push accepted after close]).
 *  [waits announce and re-check] A caller waits only after announcing itself on the parker and re-checking
 *    ([announce before re-checking]): the blocking calls retry the operation, await re-checks with the
 *    storage's ready_to_pop / push, which decide at the same points (and fences) as the operations
 *    ([full and empty decided after a fence]). So no wake-up is lost.
 *  [spins bounded in time] Spinning is bounded in nanoseconds (spin_ns), busy for ~2 us, then yielding
 *    between re-checks; after the budget a waiter parks (no CPU burnt by an idle pipeline).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring_internal.h"

int flow_ring_kind_available(flow_queue_kind kind) {
    return kind == FLOW_QUEUE_RING || (kind == FLOW_QUEUE_URCU && flow_urcu_ops != NULL);
}

flow_ring *flow_ring_create(const flow_ring_options *o, flow_error *err) {
    if (!o) {
        flow_fail(err, FLOW_EINVAL, "ring options: NULL");
        return NULL;
    }
    if (o->capacity < 1 || o->capacity > ((uint64_t)1 << 40)) {
        flow_fail(err, FLOW_EINVAL, "ring capacity %llu: must be between 1 and 2^40",
                  (unsigned long long)o->capacity);
        return NULL;
    }
    if (o->elem_size < 1 || o->elem_size > FLOW_MAX_ELEM_SIZE) {
        flow_fail(err, FLOW_EINVAL, "ring elem_size %zu: must be between 1 and 1 MiB", o->elem_size);
        return NULL;
    }
    if (o->kind != FLOW_QUEUE_RING && o->kind != FLOW_QUEUE_URCU) {
        flow_fail(err, FLOW_EINVAL, "ring kind %d: unknown queue kind", (int)o->kind);
        return NULL;
    }
    if (!flow_ring_kind_available(o->kind)) {
        flow_fail(err, FLOW_ENOTSUP, "ring kind FLOW_QUEUE_URCU: this build has no liburcu (build with the URCU trait)");
        return NULL;
    }
    if (o->capacity * o->elem_size / o->elem_size != o->capacity ||
        o->capacity * o->elem_size > ((uint64_t)1 << 40)) {
        flow_fail(err, FLOW_EINVAL, "ring capacity %llu x elem_size %zu: too large",
                  (unsigned long long)o->capacity, o->elem_size);
        return NULL;
    }
    if (o->spin_ns > FLOW_MAX_SPIN_NS) {
        flow_fail(err, FLOW_EINVAL, "ring spin_ns %lld: must be at most 10 s", (long long)o->spin_ns);
        return NULL;
    }
    flow_ring *r = aligned_alloc(FLOW_CACHELINE, sizeof(struct flow_ring));
    if (!r) {
        flow_fail(err, FLOW_ENOMEM, "ring: out of memory");
        return NULL;
    }
    memset(r, 0, sizeof *r);
    r->cap = o->capacity;
    r->elem_size = o->elem_size;
    r->spin_ns = o->spin_ns < 0 ? FLOW_DEFAULT_SPIN_NS : o->spin_ns;
    int ok = flow_parker_init(&r->not_empty) == FLOW_OK && flow_parker_init(&r->not_full) == FLOW_OK;
    if (ok) {
        /* resume_producers_at is the array's ([producers resume at a size]): liburcu wakes producers on
         * any free slot */
        r->ops = o->kind == FLOW_QUEUE_RING ? flow_array_ops : flow_urcu_ops;
        r->q = o->kind == FLOW_QUEUE_RING ? flow_array_create(r->cap, r->elem_size, o->resume_producers_at)
                                          : flow_urcu_create(r->cap, r->elem_size);
        ok = r->q != NULL;
    }
    if (!ok) {
        flow_ring_destroy(r);
        flow_fail(err, FLOW_ENOMEM, "ring capacity %llu x %zu bytes: out of memory",
                  (unsigned long long)o->capacity, o->elem_size);
        return NULL;
    }
    return r;
}

void flow_ring_destroy(flow_ring *r) {
    if (!r) return;
    flow_parker_fini(&r->not_empty);
    flow_parker_fini(&r->not_full);
    if (r->q) r->ops->destroy(r->q);
    free(r);
}

uint64_t flow_ring_capacity(const flow_ring *r) { return r->cap; }
size_t flow_ring_elem_size(const flow_ring *r) { return r->elem_size; }
flow_parker *flow_ring_not_empty(flow_ring *r) { return &r->not_empty; }
flow_parker *flow_ring_not_full(flow_ring *r) { return &r->not_full; }

int flow_ring_is_closed(const flow_ring *r) { return r->ops->is_closed(r->q); }
uint64_t flow_ring_size_approx(const flow_ring *r) { return r->ops->size(r->q); }

int64_t flow_ring_push_n(flow_ring *r, const void *items, int64_t n) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    int64_t k = r->ops->push_n(r->q, items, n);
    if (k > 0)
        flow_parker_notify(&r->not_empty, (int32_t)(k < INT32_MAX ? k : INT32_MAX));
    else if (k == FLOW_CLOSED)
        /* a push refused by close may have held a reservation a consumer waits on before it can see
         * "closed and drained" (liburcu, urcu_queue.c [no push accepted after close]): wake consumers
         * (close already woke them once) */
        flow_parker_notify(&r->not_empty, INT32_MAX);
    return k;
}

int64_t flow_ring_pop_n(flow_ring *r, void *items, int64_t n) { return ring_pop(r, items, n, NULL); }

int64_t flow_ring_pop_n_seq(flow_ring *r, void *items, int64_t n, uint64_t *first_seq) {
    if (!first_seq) return FLOW_EINVAL;
    return ring_pop(r, items, n, first_seq);
}

int flow_ring_try_push(flow_ring *r, const void *item) {
    int64_t k = flow_ring_push_n(r, item, 1);
    return k == 1 ? FLOW_OK : (int)k;
}

int flow_ring_try_pop(flow_ring *r, void *item) {
    int64_t k = flow_ring_pop_n(r, item, 1);
    return k == 1 ? FLOW_OK : (int)k;
}

void flow_ring_close(flow_ring *r) {
    r->ops->close(r->q);
    flow_parker_notify(&r->not_empty, INT32_MAX);
    flow_parker_notify(&r->not_full, INT32_MAX);
}

/* Spin for the budget, then park on `parker` until `op` stops answering `would_block`. */
static int64_t ring_wait(flow_ring *r, ring_op op, void *buf, int64_t n, uint64_t *seq, int64_t would_block,
                         struct flow_parker *parker, int64_t timeout_ns) {
    int64_t k = op(r, buf, n, seq);
    if (k != would_block) return k;
    uint64_t start = flow_now_ns();
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
    uint64_t spin_end = start + (uint64_t)r->spin_ns;
    if (spin_end > deadline) spin_end = deadline;
    k = ring_spin(r, op, buf, n, seq, would_block, start, spin_end, NULL, NULL);
    if (k != would_block) return k;
    for (;;) {
        uint32_t key = flow_parker_prepare(parker);
        k = op(r, buf, n, seq); /* re-check after announcing ([waits announce and re-check]) */
        if (k != would_block) {
            flow_parker_cancel(parker);
            return k;
        }
        int64_t left = -1;
        if (deadline != UINT64_MAX) {
            uint64_t now = flow_now_ns();
            if (now >= deadline) {
                flow_parker_cancel(parker);
                return FLOW_TIMEDOUT;
            }
            left = (int64_t)(deadline - now);
        }
        flow_parker_wait(parker, key, left);
        k = op(r, buf, n, seq);
        if (k != would_block) return k;
    }
}

int64_t flow_ring_push_n_wait(flow_ring *r, const void *items, int64_t n, int64_t timeout_ns) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    return ring_wait(r, ring_push_op, (void *)items, n, NULL, FLOW_FULL, &r->not_full, timeout_ns);
}

int64_t flow_ring_pop_n_wait(flow_ring *r, void *items, int64_t n, int64_t timeout_ns) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    return ring_wait(r, ring_pop_op, items, n, NULL, FLOW_EMPTY, &r->not_empty, timeout_ns);
}

int64_t flow_ring_pop_n_wait_seq(flow_ring *r, void *items, int64_t n, int64_t timeout_ns, uint64_t *first_seq) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    if (!first_seq) return FLOW_EINVAL;
    return ring_wait(r, ring_pop_op, items, n, first_seq, FLOW_EMPTY, &r->not_empty, timeout_ns);
}

int flow_ring_push_wait(flow_ring *r, const void *item, int64_t timeout_ns) {
    int64_t k = flow_ring_push_n_wait(r, item, 1, timeout_ns);
    return k == 1 ? FLOW_OK : (int)k;
}

int flow_ring_pop_wait(flow_ring *r, void *item, int64_t timeout_ns) {
    int64_t k = flow_ring_pop_n_wait(r, item, 1, timeout_ns);
    return k == 1 ? FLOW_OK : (int)k;
}

/* flow_ring_push_all_wait's one blocking push: up to n items, with what is left of the deadline. */
static int64_t push_until(flow_ring *r, const void *items, int64_t n, const void *deadline) {
    uint64_t end = *(const uint64_t *)deadline;
    int64_t left = -1;
    if (end != UINT64_MAX) {
        uint64_t now = flow_now_ns();
        left = now >= end ? 0 : (int64_t)(end - now);
    }
    return flow_ring_push_n_wait(r, items, n, left);
}

int64_t flow_ring_push_all_wait(flow_ring *r, const void *items, int64_t n, int64_t timeout_ns,
                                int64_t *pushed) {
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : flow_now_ns() + (uint64_t)timeout_ns;
    return ring_push_all(r, items, n, pushed, push_until, &deadline);
}

int64_t ring_push_all(flow_ring *r, const void *items, int64_t n, int64_t *pushed, ring_push_some push_some,
                      const void *ctx) {
    const unsigned char *p = items;
    int64_t done = 0;
    while (done < n) {
        int64_t k = push_some(r, p + (size_t)done * r->elem_size, n - done, ctx);
        if (k < 0) {
            if (pushed) *pushed = done;
            return k;
        }
        done += k;
    }
    if (pushed) *pushed = done;
    return done;
}

/* Register w on `parker` unless `ready` holds after the announcement ([announce before re-checking],
 * [callbacks refused or fired]). */
int ring_await(flow_ring *r, struct flow_parker *parker, int (*ready)(void *), flow_waiter *w) {
    uint32_t key = flow_parker_prepare(parker);
    if (ready(r->q)) {
        flow_parker_cancel(parker);
        return FLOW_READY;
    }
    return flow_parker_register(parker, key, w);
}

int flow_ring_await_pop(flow_ring *r, flow_waiter *w) {
    return ring_await(r, &r->not_empty, r->ops->ready_to_pop, w);
}
int flow_ring_await_push(flow_ring *r, flow_waiter *w) {
    return ring_await(r, &r->not_full, r->ops->ready_to_push, w);
}

int flow_ring_unawait(flow_ring *r, flow_waiter *w) {
    /* unregister checks ownership under each parker's lock, so trying both is safe */
    return flow_parker_unregister(&r->not_empty, w) || flow_parker_unregister(&r->not_full, w);
}
