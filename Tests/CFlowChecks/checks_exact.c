/*
 * checks_exact.c — exactness under contention: many producers and consumers, single items and batches,
 * spinning and blocking, each storage kind; every item is delivered exactly once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cflow.h"
#include "cflow_checks.h"
#include "check_support.h"

/* ---------- exactness under contention ---------- */

typedef struct {
    flow_ring *r;
    unsigned P, C;
    int batch, blocking;
    size_t elem; /* 8 or 16 (16: second word is ~v, catches torn copies) */
    uint64_t per_producer;
    _Atomic unsigned char *seen;
    _Atomic uint64_t popped;
    _Atomic unsigned producers_left;
    _Atomic int failed;
    char why[200];
    uint64_t deadline;
} exact_ctx;

typedef struct { exact_ctx *x; unsigned id; } exact_arg;

static void exact_fail(exact_ctx *x, const char *fmt, ...) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&x->failed, &expected, 1)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->why, sizeof x->why, fmt, ap);
        va_end(ap);
    }
    flow_ring_close(x->r); /* release everyone */
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t v = *s;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    return *s = v;
}

static void *exact_producer(void *a) {
    exact_arg *arg = a;
    exact_ctx *x = arg->x;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (arg->id + 1);
    uint64_t base = (uint64_t)arg->id * x->per_producer + 1, i = 0;
    uint64_t buf[2 * 64];
    size_t words = x->elem / 8;
    while (i < x->per_producer && !atomic_load(&x->failed)) {
        int64_t want = x->batch ? (int64_t)(xorshift(&rng) % 64 + 1) : 1;
        if ((uint64_t)want > x->per_producer - i) want = (int64_t)(x->per_producer - i);
        for (int64_t j = 0; j < want; j++) {
            buf[j * words] = base + i + (uint64_t)j;
            if (words == 2) buf[j * words + 1] = ~(base + i + (uint64_t)j);
        }
        int64_t k = x->blocking ? flow_ring_push_n_wait(x->r, buf, want, 1000000000) : flow_ring_push_n(x->r, buf, want);
        if (k > 0) {
            i += (uint64_t)k;
        } else if (k == FLOW_FULL || k == FLOW_TIMEDOUT) {
            if (flow_now_ns() > x->deadline) exact_fail(x, "producer %u stuck at %llu (hang)", arg->id, (unsigned long long)i);
            if (k == FLOW_FULL) sched_yield();
        } else if (k == FLOW_CLOSED) {
            if (!atomic_load(&x->failed)) exact_fail(x, "producer %u: CLOSED before it closed", arg->id);
            break;
        } else {
            exact_fail(x, "producer %u: push returned %s", arg->id, flow_status_name((int)k));
        }
    }
    if (atomic_fetch_sub(&x->producers_left, 1) == 1) flow_ring_close(x->r); /* last producer closes */
    return NULL;
}

static void *exact_consumer(void *a) {
    exact_arg *arg = a;
    exact_ctx *x = arg->x;
    uint64_t *last = calloc(x->P, sizeof *last); /* per-producer order as seen by this consumer */
    uint64_t rng = 0x51ed270b27ull * (arg->id + 7);
    uint64_t buf[2 * 64];
    size_t words = x->elem / 8;
    for (;;) {
        int64_t want = x->batch ? (int64_t)(xorshift(&rng) % 64 + 1) : 1;
        int64_t k = x->blocking ? flow_ring_pop_n_wait(x->r, buf, want, 1000000000) : flow_ring_pop_n(x->r, buf, want);
        if (k == FLOW_CLOSED) break;
        if (k == FLOW_EMPTY || k == FLOW_TIMEDOUT) {
            if (flow_now_ns() > x->deadline) { exact_fail(x, "consumer %u stuck (hang)", arg->id); break; }
            if (k == FLOW_EMPTY) sched_yield();
            continue;
        }
        if (k <= 0 || k > want) { exact_fail(x, "consumer %u: pop returned %lld", arg->id, (long long)k); break; }
        for (int64_t j = 0; j < k; j++) {
            uint64_t v = buf[j * words];
            if (words == 2 && buf[j * words + 1] != ~v) { exact_fail(x, "torn item %llu", (unsigned long long)v); break; }
            if (v == 0 || v > x->P * x->per_producer) { exact_fail(x, "invented value %llu", (unsigned long long)v); break; }
            unsigned p = (unsigned)((v - 1) / x->per_producer);
            if (v <= last[p]) { exact_fail(x, "producer %u's order broken: %llu after %llu", p, (unsigned long long)v, (unsigned long long)last[p]); break; }
            last[p] = v;
            if (atomic_fetch_add_explicit(&x->seen[v - 1], 1, memory_order_relaxed) != 0) {
                exact_fail(x, "value %llu popped twice", (unsigned long long)v);
                break;
            }
        }
        atomic_fetch_add_explicit(&x->popped, (uint64_t)k, memory_order_relaxed);
    }
    free(last);
    return NULL;
}

int run_exact(unsigned P, unsigned C, uint64_t cap, uint64_t total, int batch, int blocking, size_t elem,
              flow_queue_kind kind, int64_t spin) {
    exact_ctx x;
    memset(&x, 0, sizeof x);
    x.r = mk_ring(cap, elem, spin, kind);
    CHECK(x.r, "ring create (cap %llu) failed", (unsigned long long)cap);
    x.P = P;
    x.C = C;
    x.batch = batch;
    x.blocking = blocking;
    x.elem = elem;
    x.per_producer = total / P;
    x.seen = calloc(P * x.per_producer, 1);
    atomic_store(&x.producers_left, P);
    x.deadline = flow_now_ns() + DEADLINE_NS;
    pthread_t th[8];
    exact_arg args[8];
    for (unsigned i = 0; i < C; i++) {
        args[P + i] = (exact_arg){&x, i};
        pthread_create(&th[P + i], NULL, exact_consumer, &args[P + i]);
    }
    for (unsigned i = 0; i < P; i++) {
        args[i] = (exact_arg){&x, i};
        pthread_create(&th[i], NULL, exact_producer, &args[i]);
    }
    for (unsigned i = 0; i < P + C; i++) pthread_join(th[i], NULL);
    int rc = FLOW_CHECK_PASS;
    const char *mode = batch ? (blocking ? "batch blocking" : "batch") : (blocking ? "single blocking" : "single");
    if (atomic_load(&x.failed)) {
        rc = failf("%uP%uC cap %llu %s: %s", P, C, (unsigned long long)cap, mode, x.why);
    } else if (atomic_load(&x.popped) != P * x.per_producer) {
        rc = failf("%uP%uC cap %llu %s: popped %llu of %llu", P, C, (unsigned long long)cap, mode,
                   (unsigned long long)atomic_load(&x.popped), (unsigned long long)(P * x.per_producer));
    } else {
        for (uint64_t v = 0; v < P * x.per_producer; v++)
            if (atomic_load_explicit(&x.seen[v], memory_order_relaxed) != 1) {
                rc = failf("%uP%uC cap %llu %s: value %llu seen %d times", P, C, (unsigned long long)cap, mode,
                           (unsigned long long)v + 1, (int)x.seen[v]);
                break;
            }
    }
    free((void *)x.seen);
    flow_ring_destroy(x.r);
    return rc;
}

/* The P x C x capacity grid: every (P, C) in 1..4, capacities 1, 3, 64, 1000. */
static int exact_grid(int batch, int blocking, uint64_t per_config, flow_queue_kind kind) {
    static const uint64_t caps[] = {1, 3, 64, 1000};
    uint64_t total = (uint64_t)(per_config * scale());
    unsigned configs = 0;
    for (unsigned P = 1; P <= 4; P++)
        for (unsigned C = 1; C <= 4; C++)
            for (size_t ci = 0; ci < 4; ci++) {
                int rc = run_exact(P, C, caps[ci], total, batch, blocking, (P + C) % 2 ? 16 : 8, kind, blocking ? 2000 : 0);
                if (rc != FLOW_CHECK_PASS) return rc;
                configs++;
            }
    snprintf(g_msg, g_len, "%u configs (P,C in 1..4 x cap 1,3,64,1000), %llu values each, each popped exactly once",
             configs, (unsigned long long)total);
    return FLOW_CHECK_PASS;
}

int check_exact_single(void) { return exact_grid(0, 0, 20000, FLOW_QUEUE_RING); }
int check_exact_batch(void) { return exact_grid(1, 0, 100000, FLOW_QUEUE_RING); }
int check_exact_blocking(void) { return exact_grid(0, 1, 20000, FLOW_QUEUE_RING); }
int check_exact_blocking_batch(void) { return exact_grid(1, 1, 100000, FLOW_QUEUE_RING); }

/* 10 M unique values through the ring, in the configurations the issue names, single and batch. */
int check_exact_10m(void) {
    uint64_t total = (uint64_t)(10000000 * scale());
    struct { unsigned P, C; uint64_t cap; int batch; } cfgs[] = {
        {1, 1, 1, 0}, {1, 1, 1000, 0}, {1, 1, 64, 1}, {2, 2, 64, 0}, {2, 2, 1000, 1}, {4, 4, 3, 1}, {4, 4, 1000, 1},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        int rc = run_exact(cfgs[i].P, cfgs[i].C, cfgs[i].cap, total, cfgs[i].batch, 1, 8, FLOW_QUEUE_RING, -1);
        if (rc != FLOW_CHECK_PASS) return rc;
    }
    snprintf(g_msg, g_len, "%llu values x 7 configs (1P1C, 2P2C, 4P4C; cap 1, 3, 64, 1000; single and batch), blocking",
             (unsigned long long)total);
    return FLOW_CHECK_PASS;
}

int check_urcu_exact(void) {
    if (!flow_ring_kind_available(FLOW_QUEUE_URCU)) {
        snprintf(g_msg, g_len, "built without the URCU trait");
        return FLOW_CHECK_SKIP;
    }
    flow_error e;
    flow_ring_options o = {3, 8, 0, FLOW_QUEUE_URCU, 0};
    flow_ring *r = flow_ring_create(&o, &e);
    CHECK(r, "urcu create: %s", e.message);
    uint64_t v = 1, w = 0;
    for (int i = 0; i < 3; i++) CHECK(flow_ring_try_push(r, &v) == FLOW_OK, "urcu push %d", i);
    CHECK(flow_ring_try_push(r, &v) == FLOW_FULL, "urcu bound not exact");
    flow_ring_close(r);
    CHECK(flow_ring_try_push(r, &v) == FLOW_CLOSED, "urcu push after close");
    for (int i = 0; i < 3; i++) CHECK(flow_ring_try_pop(r, &w) == FLOW_OK, "urcu drain %d", i);
    CHECK(flow_ring_try_pop(r, &w) == FLOW_CLOSED, "urcu closed after drain");
    flow_ring_destroy(r);
    static const uint64_t caps[] = {1, 64, 1000};
    for (unsigned P = 1; P <= 4; P += 3)
        for (unsigned C = 1; C <= 4; C += 3)
            for (int ci = 0; ci < 3; ci++)
                for (int batch = 0; batch < 2; batch++) {
                    int rc = run_exact(P, C, caps[ci], (uint64_t)(50000 * scale()), batch, 1, 8, FLOW_QUEUE_URCU, 2000);
                    if (rc != FLOW_CHECK_PASS) return rc;
                }
    snprintf(g_msg, g_len, "liburcu queue: exact bound, close, 24 contention configs");
    return FLOW_CHECK_PASS;
}
