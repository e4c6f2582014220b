/*
 * checks_ring.c — a ring's own semantics: single-threaded behaviour, queue-order numbers, close while
 * blocked or mid-stream.
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

/* ---------- single-threaded semantics ---------- */

int check_ring_basic(void) {
    static const uint64_t caps[] = {1, 2, 3, 5, 64, 1000};
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        uint64_t cap = caps[ci];
        flow_ring *r = mk_ring(cap, 8, 0, FLOW_QUEUE_RING);
        CHECK(r, "create cap %llu failed", (unsigned long long)cap);
        uint64_t next_in = 0, next_out = 0;
        for (int lap = 0; lap < 7; lap++) { /* many laps: wrap-around and lap arithmetic */
            for (uint64_t i = 0; i < cap; i++) {
                CHECK(flow_ring_try_push(r, &next_in) == FLOW_OK, "cap %llu: push %llu of %llu refused",
                      (unsigned long long)cap, (unsigned long long)i, (unsigned long long)cap);
                next_in++;
            }
            CHECK(flow_ring_size_approx(r) == cap, "cap %llu: size %llu when full", (unsigned long long)cap,
                  (unsigned long long)flow_ring_size_approx(r));
            uint64_t x = 999;
            CHECK(flow_ring_try_push(r, &x) == FLOW_FULL, "cap %llu: push beyond capacity accepted",
                  (unsigned long long)cap);
            uint64_t half = (cap + 1) / 2;
            for (uint64_t i = 0; i < half; i++) {
                CHECK(flow_ring_try_pop(r, &x) == FLOW_OK && x == next_out, "cap %llu: pop got %llu want %llu",
                      (unsigned long long)cap, (unsigned long long)x, (unsigned long long)next_out);
                next_out++;
            }
            for (uint64_t i = 0; i < half; i++) { /* refill across the wrap */
                CHECK(flow_ring_try_push(r, &next_in) == FLOW_OK, "cap %llu: refill refused", (unsigned long long)cap);
                next_in++;
            }
            /* batch pop whatever is there, across the wrap point: must return all, in order */
            uint64_t buf[2048];
            uint64_t got = 0;
            while (got < cap) {
                int64_t k = flow_ring_pop_n(r, buf + got, 2048);
                CHECK(k > 0, "cap %llu: pop_n returned %lld with %llu left", (unsigned long long)cap, (long long)k,
                      (unsigned long long)(cap - got));
                got += (uint64_t)k;
            }
            CHECK(got == cap, "cap %llu: pop_n took %llu", (unsigned long long)cap, (unsigned long long)got);
            for (uint64_t i = 0; i < cap; i++, next_out++)
                CHECK(buf[i] == next_out, "cap %llu: batch item %llu is %llu want %llu", (unsigned long long)cap,
                      (unsigned long long)i, (unsigned long long)buf[i], (unsigned long long)next_out);
            CHECK(flow_ring_try_pop(r, &x) == FLOW_EMPTY, "cap %llu: pop on empty ring", (unsigned long long)cap);
            CHECK(flow_ring_size_approx(r) == 0, "cap %llu: size not 0 when empty", (unsigned long long)cap);
            /* push_n claims at most the free space */
            uint64_t in[2048];
            for (uint64_t i = 0; i < 2048; i++) in[i] = next_in + i;
            uint64_t pushed = 0;
            while (pushed < cap) {
                int64_t k = flow_ring_push_n(r, in + pushed, 2048);
                CHECK(k > 0, "cap %llu: push_n returned %lld", (unsigned long long)cap, (long long)k);
                pushed += (uint64_t)k;
            }
            CHECK(pushed == cap && flow_ring_push_n(r, in, 5) == FLOW_FULL, "cap %llu: push_n overfilled",
                  (unsigned long long)cap);
            next_in += cap;
            for (uint64_t i = 0; i < cap; i++, next_out++)
                CHECK(flow_ring_try_pop(r, &x) == FLOW_OK && x == next_out, "cap %llu: after push_n got %llu want %llu",
                      (unsigned long long)cap, (unsigned long long)x, (unsigned long long)next_out);
        }
        /* close: pushes refused, the rest drains, then CLOSED; idempotent */
        uint64_t x = 42, y = 0;
        CHECK(flow_ring_try_push(r, &x) == FLOW_OK, "push before close");
        flow_ring_close(r);
        flow_ring_close(r);
        CHECK(flow_ring_is_closed(r), "is_closed after close");
        CHECK(flow_ring_try_push(r, &x) == FLOW_CLOSED, "push after close not CLOSED");
        CHECK(flow_ring_push_n(r, &x, 1) == FLOW_CLOSED, "push_n after close not CLOSED");
        CHECK(flow_ring_pop_wait(r, &y, 1000000000) == FLOW_OK && y == 42, "drain after close");
        CHECK(flow_ring_try_pop(r, &y) == FLOW_CLOSED, "pop after drain not CLOSED");
        CHECK(flow_ring_pop_n_wait(r, &y, 4, 1000000000) == FLOW_CLOSED, "pop_n_wait after drain not CLOSED");
        flow_ring_destroy(r);
    }
    /* odd item sizes keep their bytes */
    static const size_t sizes[] = {1, 3, 24, 100};
    for (size_t si = 0; si < 4; si++) {
        size_t es = sizes[si];
        flow_ring *r = mk_ring(7, es, 0, FLOW_QUEUE_RING);
        unsigned char in[100], out[100];
        for (int round = 0; round < 50; round++) {
            for (size_t b = 0; b < es; b++) in[b] = (unsigned char)(round * 31 + b);
            CHECK(flow_ring_try_push(r, in) == FLOW_OK, "size %zu push", es);
            memset(out, 0, sizeof out);
            CHECK(flow_ring_try_pop(r, out) == FLOW_OK && memcmp(in, out, es) == 0, "size %zu bytes differ", es);
        }
        flow_ring_destroy(r);
    }
    /* bad arguments: a clear error, no crash */
    flow_error e;
    flow_ring_options bad = {0, 8, -1, FLOW_QUEUE_RING, 0};
    CHECK(!flow_ring_create(&bad, &e) && e.code == FLOW_EINVAL && strstr(e.message, "capacity 0"),
          "capacity 0: %s", e.message);
    bad.capacity = 4;
    bad.elem_size = 0;
    CHECK(!flow_ring_create(&bad, &e) && strstr(e.message, "elem_size 0"), "elem_size 0: %s", e.message);
    snprintf(g_msg, g_len, "capacities 1,2,3,5,64,1000 over 7 laps; item sizes 1,3,24,100; close; bad args");
    return FLOW_CHECK_PASS;
}

/* ---------- queue-order numbers (pop_n_seq) ---------- */

typedef struct { flow_ring *r; _Atomic int bad; _Atomic uint64_t got; } seq_ctx;

static void *seq_consumer(void *a) {
    seq_ctx *c = a;
    uint64_t buf[32], first;
    for (;;) {
        int64_t k = flow_ring_pop_n_wait_seq(c->r, buf, 1 + (int64_t)(atomic_load(&c->got) % 32), 5000000000ll, &first);
        if (k <= 0) break;
        for (int64_t j = 0; j < k; j++)
            if (buf[j] != first + (uint64_t)j) atomic_store(&c->bad, 1); /* one producer: value == position */
        atomic_fetch_add(&c->got, (uint64_t)k);
    }
    return NULL;
}

int check_pop_seq(void) {
    static const uint64_t caps[] = {1, 3, 5, 64, 1000};
    for (size_t ci = 0; ci < 5; ci++) {
        seq_ctx c = {mk_ring(caps[ci], 8, 500, FLOW_QUEUE_RING), 0, 0};
        pthread_t th[3];
        for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, seq_consumer, &c);
        uint64_t n = (uint64_t)(300000 * scale());
        for (uint64_t i = 0; i < n; i++) CHECK(flow_ring_push_wait(c.r, &i, 5000000000ll) == FLOW_OK, "push %llu", (unsigned long long)i);
        flow_ring_close(c.r);
        for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
        CHECK(!atomic_load(&c.bad), "cap %llu: an item's number differs from its queue position", (unsigned long long)caps[ci]);
        CHECK(atomic_load(&c.got) == n, "cap %llu: got %llu of %llu", (unsigned long long)caps[ci],
              (unsigned long long)atomic_load(&c.got), (unsigned long long)n);
        uint64_t x, first;
        CHECK(flow_ring_pop_n_seq(c.r, &x, 1, NULL) == FLOW_EINVAL, "NULL first_seq accepted");
        CHECK(flow_ring_pop_n_seq(c.r, &x, 1, &first) == FLOW_CLOSED, "drained ring not CLOSED");
        flow_ring_destroy(c.r);
    }
    snprintf(g_msg, g_len, "1 producer, 3 consumers, caps 1..1000: every batch's number is its queue position");
    return FLOW_CHECK_PASS;
}

/* ---------- close while blocked ---------- */

typedef struct { flow_ring *r; _Atomic int results[8]; int which; } blocked_ctx;
typedef struct { blocked_ctx *b; int id; } blocked_arg;

static void *blocked_pusher(void *a) {
    blocked_arg *x = a;
    uint64_t v = 100 + (uint64_t)x->id;
    atomic_store(&x->b->results[x->id], flow_ring_push_wait(x->b->r, &v, 10000000000ll) + 100);
    return NULL;
}

static void *blocked_popper(void *a) {
    blocked_arg *x = a;
    uint64_t v;
    atomic_store(&x->b->results[x->id], flow_ring_pop_wait(x->b->r, &v, 10000000000ll) + 100);
    return NULL;
}

int wait_for_waiters(flow_parker *p, uint32_t n) {
    uint64_t end = flow_now_ns() + 10000000000ull;
    while (flow_parker_waiters(p) < n) {
        if (flow_now_ns() > end) return 0;
        sched_yield();
    }
    return 1;
}

int check_close_blocked(void) {
    for (int round = 0; round < 20; round++) {
        /* producers blocked on a full ring */
        blocked_ctx b;
        memset(&b, 0, sizeof b);
        b.r = mk_ring(4, 8, 0, FLOW_QUEUE_RING);
        for (uint64_t i = 0; i < 4; i++) flow_ring_try_push(b.r, &i);
        pthread_t th[8];
        blocked_arg args[8];
        for (int i = 0; i < 4; i++) {
            args[i] = (blocked_arg){&b, i};
            pthread_create(&th[i], NULL, blocked_pusher, &args[i]);
        }
        CHECK(wait_for_waiters(flow_ring_not_full(b.r), 4), "pushers never parked on the full ring");
        flow_ring_close(b.r);
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 4; i++)
            CHECK(atomic_load(&b.results[i]) - 100 == FLOW_CLOSED, "blocked pusher %d returned %s", i,
                  flow_status_name(atomic_load(&b.results[i]) - 100));
        uint64_t v;
        for (uint64_t i = 0; i < 4; i++)
            CHECK(flow_ring_try_pop(b.r, &v) == FLOW_OK && v == i, "item %llu pushed before close lost", (unsigned long long)i);
        CHECK(flow_ring_try_pop(b.r, &v) == FLOW_CLOSED, "closed ring not CLOSED after drain");
        flow_ring_destroy(b.r);
        /* consumers blocked on an empty ring */
        memset(&b, 0, sizeof b);
        b.r = mk_ring(4, 8, 0, FLOW_QUEUE_RING);
        for (int i = 0; i < 4; i++) {
            args[i] = (blocked_arg){&b, i};
            pthread_create(&th[i], NULL, blocked_popper, &args[i]);
        }
        CHECK(wait_for_waiters(flow_ring_not_empty(b.r), 4), "poppers never parked on the empty ring");
        flow_ring_close(b.r);
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 4; i++)
            CHECK(atomic_load(&b.results[i]) - 100 == FLOW_CLOSED, "blocked popper %d returned %s", i,
                  flow_status_name(atomic_load(&b.results[i]) - 100));
        flow_ring_destroy(b.r);
    }
    snprintf(g_msg, g_len, "20 rounds: 4 parked pushers and 4 parked poppers released by close, items drained");
    return FLOW_CHECK_PASS;
}

/* close in the middle of traffic: every push that returned OK is popped, nothing else */
typedef struct { flow_ring *r; _Atomic uint64_t pushed, popped; _Atomic int stop; } midclose_ctx;

static void *mid_producer(void *a) {
    midclose_ctx *m = a;
    uint64_t v = 1;
    for (;;) {
        int64_t k = flow_ring_push_n_wait(m->r, &v, 1, 5000000000ll);
        if (k == 1) atomic_fetch_add(&m->pushed, 1);
        else break;
    }
    return NULL;
}

static void *mid_consumer(void *a) {
    midclose_ctx *m = a;
    uint64_t buf[16];
    for (;;) {
        int64_t k = flow_ring_pop_n_wait(m->r, buf, 16, 5000000000ll);
        if (k > 0) atomic_fetch_add(&m->popped, (uint64_t)k);
        else break;
    }
    return NULL;
}

int check_close_midstream(void) {
    for (int round = 0; round < 50; round++) {
        midclose_ctx m;
        memset(&m, 0, sizeof m);
        m.r = mk_ring((uint64_t)(round % 5) * 7 + 1, 8, 1000, FLOW_QUEUE_RING);
        pthread_t th[4];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, mid_producer, &m);
        for (int i = 2; i < 4; i++) pthread_create(&th[i], NULL, mid_consumer, &m);
        while (atomic_load(&m.popped) < (uint64_t)(round + 1) * 500) sched_yield();
        flow_ring_close(m.r);
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        CHECK(atomic_load(&m.pushed) == atomic_load(&m.popped), "round %d: pushed %llu popped %llu", round,
              (unsigned long long)atomic_load(&m.pushed), (unsigned long long)atomic_load(&m.popped));
        flow_ring_destroy(m.r);
    }
    snprintf(g_msg, g_len, "50 rounds of close during 2P2C traffic: pushed == popped");
    return FLOW_CHECK_PASS;
}
