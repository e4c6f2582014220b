/*
 * checks.c — behavioural checks of CFlow: exactness under contention, close, park/wake, callbacks,
 * pool life cycle and pinning, configuration errors. Hangs are detected inside each check (deadlines
 * and timed waits), never left to the CI time-out. Sizes scale with FLOW_CHECK_SCALE (default 1).
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

#define DEADLINE_NS (240ull * 1000000000ull)

static char *g_msg;
static size_t g_len;

static int failf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, g_len, fmt, ap);
    va_end(ap);
    return FLOW_CHECK_FAIL;
}

#define CHECK(cond, ...) do { if (!(cond)) return failf(__VA_ARGS__); } while (0)

static double scale(void) {
    const char *s = getenv("FLOW_CHECK_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

static uint64_t g_resume_at; /* resume_producers_at for the rings mk_ring makes (0: default) */

static flow_ring *mk_ring(uint64_t cap, size_t elem, int64_t spin, flow_queue_kind kind) {
    flow_ring_options o = {cap, elem, spin, kind, g_resume_at};
    return flow_ring_create(&o, NULL);
}

/* ---------- single-threaded semantics ---------- */

static int check_ring_basic(void) {
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

static int run_exact(unsigned P, unsigned C, uint64_t cap, uint64_t total, int batch, int blocking, size_t elem,
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

static int check_exact_single(void) { return exact_grid(0, 0, 20000, FLOW_QUEUE_RING); }
static int check_exact_batch(void) { return exact_grid(1, 0, 100000, FLOW_QUEUE_RING); }
static int check_exact_blocking(void) { return exact_grid(0, 1, 20000, FLOW_QUEUE_RING); }
static int check_exact_blocking_batch(void) { return exact_grid(1, 1, 100000, FLOW_QUEUE_RING); }

/* 10 M unique values through the ring, in the configurations the issue names, single and batch. */
static int check_exact_10m(void) {
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

static int check_urcu_exact(void) {
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

static int check_pop_seq(void) {
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

static int wait_for_waiters(flow_parker *p, uint32_t n) {
    uint64_t end = flow_now_ns() + 10000000000ull;
    while (flow_parker_waiters(p) < n) {
        if (flow_now_ns() > end) return 0;
        sched_yield();
    }
    return 1;
}

static int check_close_blocked(void) {
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

static int check_close_midstream(void) {
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

/* ---------- park / wake ---------- */

typedef struct { flow_ring *ping, *pong; uint64_t cycles; _Atomic int failed; } pingpong_ctx;

static void *pong_side(void *a) {
    pingpong_ctx *c = a;
    uint64_t v;
    for (uint64_t i = 0; i < c->cycles; i++) {
        int rc = flow_ring_pop_wait(c->ping, &v, 2000000000ll); /* a lost wake-up shows as a 2 s timeout */
        if (rc != FLOW_OK || v != i) { atomic_store(&c->failed, rc == FLOW_OK ? 1000 : rc); return NULL; }
        if (flow_ring_push_wait(c->pong, &v, 2000000000ll) != FLOW_OK) { atomic_store(&c->failed, 2000); return NULL; }
    }
    return NULL;
}

static int check_park_wake(void) {
    uint64_t cycles = (uint64_t)(1000000 * scale());
    pingpong_ctx c;
    memset(&c, 0, sizeof c);
    c.ping = mk_ring(1, 8, 0, FLOW_QUEUE_RING); /* spin budget 0: every empty wait parks */
    c.pong = mk_ring(1, 8, 0, FLOW_QUEUE_RING);
    c.cycles = cycles;
    flow_config cfg;
    flow_config_init(&cfg, NULL);
    pthread_t th;
    pthread_create(&th, NULL, pong_side, &c);
    uint64_t v, t0 = flow_now_ns();
    int rc = FLOW_CHECK_PASS;
    for (uint64_t i = 0; i < cycles && !atomic_load(&c.failed); i++) {
        if (flow_ring_push_wait(c.ping, &i, 2000000000ll) != FLOW_OK) { rc = failf("cycle %llu: push timed out", (unsigned long long)i); break; }
        int r = flow_ring_pop_wait(c.pong, &v, 2000000000ll);
        if (r != FLOW_OK || v != i) {
            rc = failf("cycle %llu: %s (lost wake-up)", (unsigned long long)i, flow_status_name(r));
            break;
        }
    }
    if (rc != FLOW_CHECK_PASS) { flow_ring_close(c.ping); flow_ring_close(c.pong); }
    pthread_join(th, NULL);
    if (rc == FLOW_CHECK_PASS && atomic_load(&c.failed))
        rc = failf("pong side failed: %s", flow_status_name(atomic_load(&c.failed)));
    if (rc == FLOW_CHECK_PASS)
        snprintf(g_msg, g_len, "%llu wake cycles, no lost wake-up (%.1f us per round trip)",
                 (unsigned long long)cycles, (double)(flow_now_ns() - t0) / 1000.0 / (double)cycles);
    flow_ring_destroy(c.ping);
    flow_ring_destroy(c.pong);
    return rc;
}

/* A consumer parked on an empty ring wakes for exactly one item, and it really parked. */
typedef struct { flow_ring *r; _Atomic int rc; uint64_t v; } one_ctx;
static void *one_popper(void *a) {
    one_ctx *c = a;
    atomic_store(&c->rc, flow_ring_pop_wait(c->r, &c->v, 10000000000ll) + 100);
    return NULL;
}

static int check_wake_one(void) {
    for (int round = 0; round < 200; round++) {
        one_ctx c;
        memset(&c, 0, sizeof c);
        c.r = mk_ring(8, 8, 0, FLOW_QUEUE_RING);
        pthread_t th;
        pthread_create(&th, NULL, one_popper, &c);
        CHECK(wait_for_waiters(flow_ring_not_empty(c.r), 1), "consumer never parked");
        uint64_t v = 7000 + (uint64_t)round;
        CHECK(flow_ring_try_push(c.r, &v) == FLOW_OK, "push");
        pthread_join(th, NULL);
        CHECK(atomic_load(&c.rc) - 100 == FLOW_OK && c.v == v, "round %d: parked consumer got %s / %llu", round,
              flow_status_name(atomic_load(&c.rc) - 100), (unsigned long long)c.v);
        CHECK(flow_parker_waiters(flow_ring_not_empty(c.r)) == 0, "waiter count not withdrawn");
        flow_ring_destroy(c.r);
    }
    snprintf(g_msg, g_len, "200 rounds: a parked consumer wakes for one item");
    return FLOW_CHECK_PASS;
}

/* Callback waiters: fire exactly once per registration; unregister wins or loses cleanly. */
typedef struct { _Atomic uint64_t fired; } cb_count;
static void count_cb(void *ctx) { atomic_fetch_add(&((cb_count *)ctx)->fired, 1); }

typedef struct { flow_ring *r; uint64_t n; _Atomic int done; } cb_producer_ctx;
static void *cb_producer(void *a) {
    cb_producer_ctx *c = a;
    for (uint64_t i = 0; i < c->n; i++)
        if (flow_ring_push_wait(c->r, &i, 5000000000ll) != FLOW_OK) break;
    atomic_store(&c->done, 1);
    return NULL;
}

static int check_callbacks(void) {
    /* single-threaded contract */
    flow_ring *r = mk_ring(2, 8, 0, FLOW_QUEUE_RING);
    cb_count cnt = {0};
    flow_waiter w = {count_cb, &cnt, NULL, NULL, NULL};
    CHECK(flow_ring_await_pop(r, &w) == FLOW_OK, "await_pop on empty ring not registered");
    CHECK(flow_parker_waiters(flow_ring_not_empty(r)) == 1, "waiter not counted");
    uint64_t v = 5;
    flow_ring_try_push(r, &v);
    CHECK(atomic_load(&cnt.fired) == 1, "callback fired %llu times", (unsigned long long)atomic_load(&cnt.fired));
    CHECK(flow_ring_unawait(r, &w) == 0, "unawait after fire returned 1");
    CHECK(flow_ring_await_pop(r, &w) == FLOW_READY, "await_pop with an item not READY");
    flow_ring_try_push(r, &v);
    CHECK(flow_ring_await_push(r, &w) == FLOW_OK, "await_push on full ring not registered");
    CHECK(flow_ring_unawait(r, &w) == 1, "unawait of registered waiter failed");
    flow_ring_try_pop(r, &v);
    CHECK(atomic_load(&cnt.fired) == 1, "unregistered callback fired");
    CHECK(flow_parker_waiters(flow_ring_not_full(r)) == 0, "waiters left after unawait");
    flow_ring_close(r);
    CHECK(flow_ring_await_pop(r, &w) == FLOW_READY && flow_ring_await_push(r, &w) == FLOW_READY, "closed ring not READY");
    flow_ring_destroy(r);
    /* concurrent: a consumer that never sleeps a thread, only registers callbacks (as Swift will) */
    uint64_t n = (uint64_t)(200000 * scale());
    r = mk_ring(3, 8, 0, FLOW_QUEUE_RING);
    cb_producer_ctx pc = {r, n, 0};
    pthread_t th;
    pthread_create(&th, NULL, cb_producer, &pc);
    uint64_t got = 0, registrations = 0;
    cb_count c2 = {0};
    flow_waiter w2 = {count_cb, &c2, NULL, NULL, NULL};
    uint64_t deadline = flow_now_ns() + 60000000000ull;
    while (got < n) {
        uint64_t x;
        int rc = flow_ring_try_pop(r, &x);
        if (rc == FLOW_OK) {
            CHECK(x == got, "callback consumer: got %llu want %llu", (unsigned long long)x, (unsigned long long)got);
            got++;
            continue;
        }
        uint64_t before = atomic_load(&c2.fired);
        if (flow_ring_await_pop(r, &w2) == FLOW_READY) continue;
        registrations++;
        while (atomic_load(&c2.fired) == before) { /* the "continuation" waits for its callback */
            if (flow_now_ns() > deadline) return failf("callback never fired after %llu items (lost wake-up)", (unsigned long long)got);
            sched_yield();
        }
    }
    pthread_join(th, NULL);
    CHECK(atomic_load(&c2.fired) == registrations, "fired %llu for %llu registrations",
          (unsigned long long)atomic_load(&c2.fired), (unsigned long long)registrations);
    flow_ring_destroy(r);
    snprintf(g_msg, g_len, "callback contract; %llu items through callback waits (%llu registrations, each fired once)",
             (unsigned long long)n, (unsigned long long)registrations);
    return FLOW_CHECK_PASS;
}

/* ---------- flow_ring_unawait while a notify detaches the node ([a node's owner read atomically])
 * ---------- */

typedef struct { flow_ring *r; uint64_t rounds; _Atomic int stop; } unawait_ctx;

static void *unawait_notifier(void *a) {
    unawait_ctx *c = a;
    uint64_t v = 0;
    while (!atomic_load(&c->stop)) { /* each pop fires the callbacks on not_full; the push refills it */
        if (flow_ring_try_pop(c->r, &v) == FLOW_OK) flow_ring_try_push(c->r, &v);
    }
    return NULL;
}

static int check_unawait_race(void) {
    /* A waiter registered on not_full (a full ring) is taken back with flow_ring_unawait, which asks both
     * of the ring's parkers, not_empty first under its own lock, while pops on another thread detach it
     * under not_full's lock, so the node's owner is read under one lock and written under the other
     * ([a node's owner read atomically]: ThreadSanitizer checks that). Whichever wins, the callback runs
     * exactly once or not at all. */
    unawait_ctx c = {mk_ring(4, 8, 0, FLOW_QUEUE_RING), 0, 0};
    for (uint64_t v = 0; v < 4; v++) flow_ring_try_push(c.r, &v);
    pthread_t th;
    pthread_create(&th, NULL, unawait_notifier, &c);
    cb_count cnt = {0};
    uint64_t registered = 0, removed = 0, want = (uint64_t)(200 * scale()) + 10;
    uint64_t end = flow_now_ns() + 60000000000ull;
    /* until both outcomes were seen `want` times: the wait before unawait varies, so some callbacks are
       fired first and some waiters taken back first */
    for (uint64_t i = 0; (removed < want || registered - removed < want) && flow_now_ns() < end; i++) {
        flow_waiter w = {count_cb, &cnt, NULL, NULL, NULL};
        uint64_t before = atomic_load(&cnt.fired); /* before registering: a fire may come at once */
        if (flow_ring_await_push(c.r, &w) != FLOW_OK) continue;
        registered++;
        for (uint64_t j = 0; j < (i * 7919) % 4096; j++) flow_spin_pause(); /* let pushes in */
        if (flow_ring_unawait(c.r, &w)) {
            removed++;
        } else { /* a notify took it: its callback runs (or ran) once; wait for it before w goes */
            uint64_t deadline = flow_now_ns() + 10000000000ull;
            while (atomic_load(&cnt.fired) == before)
                if (flow_now_ns() > deadline) {
                    atomic_store(&c.stop, 1);
                    pthread_join(th, NULL);
                    return failf("detached waiter's callback never ran");
                }
        }
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    CHECK(removed >= want && registered - removed >= want, "in 60 s, %llu of %llu waiters taken back, the rest fired: "
          "not both %llu times", (unsigned long long)removed, (unsigned long long)registered, (unsigned long long)want);
    CHECK(atomic_load(&cnt.fired) + removed == registered, "fired %llu + removed %llu != registered %llu",
          (unsigned long long)atomic_load(&cnt.fired), (unsigned long long)removed, (unsigned long long)registered);
    flow_ring_destroy(c.r);
    snprintf(g_msg, g_len, "%llu registrations: %llu taken back, %llu fired, each once", (unsigned long long)registered,
             (unsigned long long)removed, (unsigned long long)(registered - removed));
    return FLOW_CHECK_PASS;
}

/* ---------- pool threads serving jobs while they wait ([a serving waiter misses no job]) ---------- */

typedef struct {
    _Atomic uint64_t queued; /* jobs queued and not taken */
    _Atomic uint64_t ran;    /* jobs run */
    flow_parker *parker;
} job_queue;

static int jq_run_one(void *ctx) {
    job_queue *q = ctx;
    uint64_t n = atomic_load(&q->queued);
    while (n > 0)
        if (atomic_compare_exchange_weak(&q->queued, &n, n - 1)) {
            atomic_fetch_add(&q->ran, 1);
            return 1;
        }
    return 0;
}
static int jq_pending(void *ctx) { return atomic_load(&((job_queue *)ctx)->queued) > 0; }
static void jq_enqueue(job_queue *q) {
    atomic_fetch_add(&q->queued, 1);
    flow_parker_notify(q->parker, 1); /* after queuing ([a queued job wakes a parked thread]) */
}

typedef struct {
    flow_ring *r;
    const flow_jobs *jobs;
    uint64_t n; /* items to move */
    uint64_t got;
    int64_t last;
    int order_ok;
} serve_ctx;

static void *serve_consumer(void *a) {
    serve_ctx *c = a;
    uint64_t buf[4], seq = 0;
    c->order_ok = 1;
    for (;;) {
        int64_t k = flow_ring_pop_n_serving(c->r, buf, 4, &seq, c->jobs);
        if (k <= 0) {
            c->last = k;
            break;
        }
        for (int64_t i = 0; i < k; i++)
            if (buf[i] != c->got + (uint64_t)i) c->order_ok = 0;
        c->got += (uint64_t)k;
    }
    return NULL;
}

static void *serve_producer(void *a) {
    serve_ctx *c = a;
    uint64_t buf[8];
    for (uint64_t i = 0; i < c->n; i += 8) {
        uint64_t k = c->n - i < 8 ? c->n - i : 8;
        for (uint64_t j = 0; j < k; j++) buf[j] = i + j;
        int64_t pushed = 0;
        c->last = flow_ring_push_all_serving(c->r, buf, (int64_t)k, c->jobs, &pushed);
        c->got += (uint64_t)pushed;
        if (c->last < 0) break;
    }
    return NULL;
}

/* Wait (bounded) until `ran` reaches `want`. */
static int await_ran(job_queue *q, uint64_t want) {
    uint64_t deadline = flow_now_ns() + 30000000000ull;
    while (atomic_load(&q->ran) < want)
        if (flow_now_ns() > deadline) return 0;
        else sched_yield();
    return 1;
}

static int check_serving(void) {
    flow_parker *parker = flow_parker_create();
    job_queue q = {0, 0, parker};
    flow_jobs jobs = {jq_run_one, jq_pending, &q, parker};
    uint64_t rounds = (uint64_t)(2000 * scale()) + 1;
    /* 1. a consumer parked on an empty ring (spin 0: it parks at once) is woken by a queued job, runs it,
          and parks again; then it takes items pushed between jobs, in order, and leaves on close */
    flow_ring *r = mk_ring(4, 8, 0, FLOW_QUEUE_RING);
    serve_ctx c = {r, &jobs, 0, 0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, serve_consumer, &c);
    for (uint64_t i = 0; i < rounds; i++) {
        jq_enqueue(&q);
        CHECK(await_ran(&q, i + 1), "parked consumer: job %llu never ran (lost wake-up)", (unsigned long long)i);
        CHECK(flow_ring_push_wait(r, &i, 30000000000ll) == FLOW_OK, "push %llu", (unsigned long long)i);
    }
    flow_ring_close(r);
    pthread_join(th, NULL);
    CHECK(c.last == FLOW_CLOSED, "serving pop ended with %lld, not FLOW_CLOSED", (long long)c.last);
    CHECK(c.got == rounds && c.order_ok, "serving pop took %llu of %llu items (in order: %d)", (unsigned long long)c.got,
          (unsigned long long)rounds, c.order_ok);
    CHECK(atomic_load(&q.ran) == rounds, "ran %llu jobs of %llu", (unsigned long long)atomic_load(&q.ran),
          (unsigned long long)rounds);
    flow_ring_destroy(r);
    /* 2. a producer parked on a full ring: woken by jobs, and by the pops that make room; every item
          arrives once, in order; a close ends its push with FLOW_CLOSED and the count pushed */
    r = mk_ring(3, 8, 0, FLOW_QUEUE_RING);
    serve_ctx p = {r, &jobs, rounds * 4 + 8, 0, 0, 0};
    pthread_create(&th, NULL, serve_producer, &p);
    uint64_t got = 0, x, jobs_before = atomic_load(&q.ran);
    for (uint64_t i = 0; got < rounds * 4; i++) {
        if (i % 4 == 0) {
            jq_enqueue(&q);
            CHECK(await_ran(&q, jobs_before + i / 4 + 1), "parked producer: job never ran (lost wake-up)");
        }
        CHECK(flow_ring_pop_wait(r, &x, 30000000000ll) == FLOW_OK, "pop %llu", (unsigned long long)got);
        CHECK(x == got, "serving push: got %llu want %llu", (unsigned long long)x, (unsigned long long)got);
        got++;
    }
    uint64_t deadline = flow_now_ns() + 30000000000ull;
    /* the producer fills it, parks */
    while (flow_ring_size_approx(r) < 3 && flow_now_ns() < deadline) sched_yield();
    flow_ring_close(r);
    pthread_join(th, NULL);
    CHECK(p.last == FLOW_CLOSED, "serving push after close ended with %lld", (long long)p.last);
    while (flow_ring_try_pop(r, &x) == FLOW_OK) got++;
    CHECK(got == p.got, "popped %llu, producer counted %llu pushed", (unsigned long long)got, (unsigned long long)p.got);
    flow_ring_destroy(r);
    flow_parker_destroy(parker);
    snprintf(g_msg, g_len, "parked pop and push woken by %llu jobs each; items exact and in order; close ends both",
             (unsigned long long)rounds);
    return FLOW_CHECK_PASS;
}

/* ---------- producer hysteresis (resume_producers_at) ---------- */

static int check_resume_watermark(void) {
    flow_ring_options o = {8, 8, 0, FLOW_QUEUE_RING, 2};
    flow_ring *r = flow_ring_create(&o, NULL);
    uint64_t v = 0;
    for (v = 0; v < 8; v++) flow_ring_try_push(r, &v);
    cb_count cnt = {0};
    flow_waiter w = {count_cb, &cnt, NULL, NULL, NULL};
    CHECK(flow_ring_await_push(r, &w) == FLOW_OK, "await_push on a full ring not registered");
    for (int i = 0; i < 5; i++) {
        CHECK(flow_ring_try_pop(r, &v) == FLOW_OK, "pop");
        CHECK(atomic_load(&cnt.fired) == 0, "producer woken at size %d, above resume_producers_at 2", 7 - i);
    }
    CHECK(flow_ring_try_pop(r, &v) == FLOW_OK && atomic_load(&cnt.fired) == 1, "producer not woken at size 2");
    CHECK(flow_ring_try_push(r, &v) == FLOW_OK, "push after wake");  /* size 3 */
    CHECK(flow_ring_await_push(r, &w) == FLOW_OK, "await_push above the mark not registered");
    flow_ring_close(r);
    CHECK(atomic_load(&cnt.fired) == 2, "close did not wake the producer");
    flow_ring_destroy(r);
    /* under contention, with parking producers: still exactly once, no lost wake-up (timed waits) */
    g_resume_at = 16;
    int rc = FLOW_CHECK_PASS;
    for (unsigned P = 1; P <= 3 && rc == FLOW_CHECK_PASS; P++)
        rc = run_exact(P, 2, 64, (uint64_t)(200000 * scale()), P != 2, 1, 8, FLOW_QUEUE_RING, 0);
    g_resume_at = 0;
    if (rc != FLOW_CHECK_PASS) return rc;
    snprintf(g_msg, g_len, "woken only at size <= mark and on close; 1-3 producers x 2 consumers exact with spin 0");
    return FLOW_CHECK_PASS;
}

/* ---------- pool ---------- */

typedef struct {
    _Atomic uint32_t ran;
    _Atomic uint64_t mask;
    _Atomic int bad_cpu;
    _Atomic int stopped_seen;
    _Atomic int bad_name;
    /* flow_current_worker() was not the loop's own worker ([a worker knows it is in its loop]) */
    _Atomic int bad_current;
    _Atomic int bad_sched; /* 1 + the class a worker found itself in, when it is not cfg.sched */
    flow_sched_mode want_sched;
    _Atomic int bad_nice; /* 100 + the nice value a worker found, when it is not want_nice */
    int want_nice;
    _Atomic long long bad_slice; /* 1 + the slice a worker found, when it is not want_slice */
    long long want_slice;
} pool_ctx;

int flow_check_thread_nice(void) { return getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)); }

int flow_check_process_nice(void) { return getpriority(PRIO_PROCESS, (id_t)getpid()); }

/* sched_getattr's argument (SCHED_ATTR_SIZE_VER0), as pool.c declares it for sched_setattr. */
struct check_sched_attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
};

static long long slice_of(pid_t tid) {
    struct check_sched_attr a;
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, tid, &a, (unsigned)sizeof a, 0u) != 0) return -1;
    return (long long)a.runtime;
}

long long flow_check_thread_slice_ns(void) { return slice_of(0); }

long long flow_check_process_slice_ns(void) { return slice_of(getpid()); }

int flow_check_thread_sched(void) {
    int policy = sched_getscheduler(0); /* Linux: the calling thread's */
    return policy == SCHED_IDLE ? FLOW_SCHED_IDLE : policy == SCHED_BATCH ? FLOW_SCHED_BATCH
           : policy == SCHED_OTHER ? FLOW_SCHED_NORMAL : -1;
}

int flow_check_on_pool_thread(void) {
    char name[16] = {0};
    return pthread_getname_np(pthread_self(), name, sizeof name) == 0 && strncmp(name, "flow-worker-", 12) == 0;
}

static void pool_loop(flow_worker *w, void *ctx) {
    pool_ctx *c = ctx;
    char name[16], want[16];
    snprintf(want, sizeof want, "flow-worker-%u", flow_worker_index(w));
    if (pthread_getname_np(pthread_self(), name, sizeof name) != 0 || strcmp(name, want) != 0)
        atomic_store(&c->bad_name, 1);
    if (flow_current_worker() != w) atomic_store(&c->bad_current, 1);
    atomic_fetch_or(&c->mask, 1ull << flow_worker_index(w));
    atomic_fetch_add(&c->ran, 1);
    int cpu = flow_worker_cpu(w);
    if (cpu >= 0) {
        cpu_set_t cs;
        CPU_ZERO(&cs);
        pthread_getaffinity_np(pthread_self(), sizeof cs, &cs);
        if (sched_getcpu() != cpu || CPU_COUNT(&cs) != 1 || !CPU_ISSET(cpu, &cs)) atomic_store(&c->bad_cpu, cpu + 1);
    }
    int sched = flow_check_thread_sched();
    if (sched != (int)c->want_sched) atomic_store(&c->bad_sched, 1 + sched);
    if (flow_check_thread_nice() != c->want_nice) atomic_store(&c->bad_nice, 100 + flow_check_thread_nice());
    if (flow_check_thread_slice_ns() != c->want_slice) atomic_store(&c->bad_slice, 1 + flow_check_thread_slice_ns());
    while (!flow_worker_should_stop(w)) sched_yield();
    flow_worker_record(w, flow_worker_index(w) + 1, 10);
    atomic_fetch_add(&c->stopped_seen, 1);
}

/* The nice value a worker with FLOW_NICE `increment` runs at (pool.c set_own_share). */
static int want_nice(int increment) {
    int n = flow_check_process_nice() + increment;
    return n > FLOW_MAX_NICE ? FLOW_MAX_NICE : n;
}

/* The slice a worker with FLOW_SLICE_NS `slice` reports ([workers take a longer slice]): the kernel's own
 * for 0 (the main thread's), nothing where the kernel reports none. */
static long long want_slice(int64_t slice) {
    long long base = flow_check_process_slice_ns();
    return base <= 0 || slice == 0 ? base : (long long)slice;
}

static int count_threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}

static void *noop_thread(void *a) { return a; }

static int check_pool(void) {
    static const flow_pin_mode modes[] = {FLOW_PIN_NONE, FLOW_PIN_COMPACT, FLOW_PIN_SPREAD};
    pthread_t warm; /* a first thread lets a sanitizer start its own helper thread before the baseline */
    pthread_create(&warm, NULL, noop_thread, NULL);
    pthread_join(warm, NULL);
    int threads0 = count_threads();
    for (int m = 0; m < 3; m++) {
        for (uint32_t n = 1; n <= 6; n++) {
            flow_config cfg;
            flow_error e;
            CHECK(flow_config_init(&cfg, &e) == FLOW_OK, "config init: %s", e.message);
            cfg.workers = n;
            cfg.pin = modes[m];
            pool_ctx c;
            memset(&c, 0, sizeof c);
            c.want_nice = want_nice(cfg.nice);
            c.want_slice = want_slice(cfg.slice_ns);
            flow_pool *p;
            CHECK(flow_pool_create(&cfg, pool_loop, &c, &p, &e) == FLOW_OK, "create: %s", e.message);
            CHECK(flow_pool_size(p) == n, "size");
            CHECK(flow_pool_start(p, &e) == FLOW_OK, "start: %s", e.message);
            CHECK(flow_pool_start(p, &e) == FLOW_ESTATE, "second start accepted");
            while (atomic_load(&c.ran) < n) sched_yield();
            CHECK(flow_pool_live_workers() == n, "%u live workers, %u started", flow_pool_live_workers(), n);
            flow_pool_request_stop(p);
            flow_pool_join(p);
            CHECK(flow_pool_live_workers() == 0, "%u workers still live after join", flow_pool_live_workers());
            CHECK(atomic_load(&c.stopped_seen) == (int)n, "%d of %u workers saw stop", atomic_load(&c.stopped_seen), n);
            CHECK(atomic_load(&c.mask) == (1ull << n) - 1, "worker indices %llx", (unsigned long long)atomic_load(&c.mask));
            CHECK(atomic_load(&c.bad_cpu) == 0, "worker pinned to CPU %d ran elsewhere", atomic_load(&c.bad_cpu) - 1);
            CHECK(atomic_load(&c.bad_name) == 0, "a worker thread is not named flow-worker-<index>");
            CHECK(atomic_load(&c.bad_current) == 0, "flow_current_worker() in a loop was not its worker");
            CHECK(flow_current_worker() == NULL, "flow_current_worker() on a thread of no pool");
            CHECK(atomic_load(&c.bad_nice) == 0, "a worker ran at nice %d, not %d", atomic_load(&c.bad_nice) - 100,
                  c.want_nice);
            CHECK(atomic_load(&c.bad_slice) == 0, "a worker ran with a %lld ns slice, not %lld",
                  atomic_load(&c.bad_slice) - 1, c.want_slice);
            uint32_t ncpu = flow_cpuset_count(&cfg.cpus);
            for (uint32_t i = 0; i < n; i++) {
                flow_worker_stats s = flow_pool_worker_stats(p, i);
                CHECK(s.items == i + 1 && s.busy_ns == 10, "worker %u stats %llu/%llu", i, (unsigned long long)s.items,
                      (unsigned long long)s.busy_ns);
                int cpu = flow_pool_worker_cpu(p, i);
                if (modes[m] == FLOW_PIN_NONE) CHECK(cpu == -1, "unpinned worker has CPU %d", cpu);
                else CHECK(cpu >= 0 && flow_cpuset_has(&cfg.cpus, (uint32_t)cpu), "worker %u pinned to %d", i, cpu);
                if (modes[m] != FLOW_PIN_NONE && i > 0 && i < ncpu)
                    CHECK(cpu != flow_pool_worker_cpu(p, i - 1), "workers %u and %u share CPU %d with CPUs free", i - 1, i, cpu);
            }
            flow_pool_destroy(p);
        }
    }
    /* FLOW_SCHED: every worker runs in the class asked for, from its first instruction
     * ([settings before the first instruction]) */
    static const flow_sched_mode classes[] = {FLOW_SCHED_NORMAL, FLOW_SCHED_BATCH, FLOW_SCHED_IDLE};
    for (int k = 0; k < 3; k++) {
        flow_config cfg;
        flow_error e;
        CHECK(flow_config_init(&cfg, &e) == FLOW_OK, "config init: %s", e.message);
        cfg.workers = 2;
        cfg.sched = classes[k];
        cfg.nice = k; /* FLOW_NICE 0, 1, 2 beside the classes */
        static const int64_t slices[] = {0, 3000000, FLOW_MIN_SLICE_NS}; /* FLOW_SLICE_NS too */
        cfg.slice_ns = slices[k];
        pool_ctx c;
        memset(&c, 0, sizeof c);
        c.want_sched = classes[k];
        c.want_nice = want_nice(k);
        c.want_slice = want_slice(slices[k]);
        flow_pool *p;
        CHECK(flow_pool_create(&cfg, pool_loop, &c, &p, &e) == FLOW_OK, "create: %s", e.message);
        CHECK(flow_pool_start(p, &e) == FLOW_OK, "start with sched %d: %s", (int)classes[k], e.message);
        while (atomic_load(&c.ran) < 2) sched_yield();
        flow_pool_request_stop(p);
        flow_pool_destroy(p);
        CHECK(atomic_load(&c.bad_sched) == 0, "FLOW_SCHED %d: a worker ran in class %d", (int)classes[k],
              atomic_load(&c.bad_sched) - 1);
        CHECK(atomic_load(&c.bad_nice) == 0, "FLOW_NICE %d: a worker ran at nice %d, not %d", k,
              atomic_load(&c.bad_nice) - 100, c.want_nice);
        CHECK(atomic_load(&c.bad_slice) == 0, "FLOW_SLICE_NS %lld: a worker ran with a %lld ns slice, not %lld",
              (long long)slices[k], atomic_load(&c.bad_slice) - 1, c.want_slice);
    }
    /* a process started under SCHED_BATCH (chrt --batch): its workers inherit the class and keep it with
       their nice value and slice ([workers take a longer slice]) */
    struct sched_param zero = {.sched_priority = 0};
    CHECK(sched_setscheduler(0, SCHED_BATCH, &zero) == 0, "SCHED_BATCH for the creating thread: %s", strerror(errno));
    {
        flow_config cfg;
        flow_error e;
        CHECK(flow_config_init(&cfg, &e) == FLOW_OK, "config init: %s", e.message);
        cfg.workers = 2;
        pool_ctx c;
        memset(&c, 0, sizeof c);
        c.want_sched = FLOW_SCHED_BATCH;
        c.want_nice = want_nice(cfg.nice);
        c.want_slice = want_slice(cfg.slice_ns);
        flow_pool *p;
        int created = flow_pool_create(&cfg, pool_loop, &c, &p, &e) == FLOW_OK;
        int started = created && flow_pool_start(p, &e) == FLOW_OK;
        if (started)
            while (atomic_load(&c.ran) < 2) sched_yield();
        if (created) {
            flow_pool_request_stop(p);
            flow_pool_destroy(p);
        }
        sched_setscheduler(0, SCHED_OTHER, &zero);
        CHECK(started, "pool under an inherited SCHED_BATCH: %s", e.message);
        CHECK(atomic_load(&c.bad_sched) == 0, "inherited SCHED_BATCH: a worker ran in class %d",
              atomic_load(&c.bad_sched) - 1);
        CHECK(atomic_load(&c.bad_slice) == 0 && atomic_load(&c.bad_nice) == 0,
              "inherited SCHED_BATCH: a worker ran with slice %lld / nice %d", atomic_load(&c.bad_slice) - 1,
              atomic_load(&c.bad_nice) - 100);
    }
    CHECK(count_threads() == threads0, "thread count %d after pools, %d before", count_threads(), threads0);
    snprintf(g_msg, g_len, "1-6 workers x none/compact/spread: start, stop, join, pinning checked with sched_getcpu, names flow-worker-N; FLOW_SCHED normal/batch/idle checked with sched_getscheduler, FLOW_NICE 5 (default), 0, 1, 2 with getpriority, FLOW_SLICE_NS 5 ms (default), 0, 3 ms, 0.1 ms with sched_getattr (main thread's slice %lld ns), an inherited SCHED_BATCH kept; threads back to %d", flow_check_process_slice_ns(), threads0);
    return FLOW_CHECK_PASS;
}

typedef struct { flow_ring *r; _Atomic uint64_t got; } park_ctx;
static void park_loop(flow_worker *w, void *ctx) {
    park_ctx *c = ctx;
    uint64_t v;
    (void)w;
    while (flow_ring_pop_wait(c->r, &v, FLOW_FOREVER) == FLOW_OK) atomic_fetch_add(&c->got, 1);
}

static int check_pool_parks(void) {
    flow_config cfg;
    flow_config_init(&cfg, NULL);
    cfg.workers = 2;
    park_ctx c = {mk_ring(4, 8, 0, FLOW_QUEUE_RING), 0};
    flow_pool *p;
    flow_error e;
    CHECK(flow_pool_create(&cfg, park_loop, &c, &p, &e) == FLOW_OK, "create: %s", e.message);
    CHECK(flow_pool_start(p, &e) == FLOW_OK, "start: %s", e.message);
    for (uint64_t i = 0; i < 10; i++) {
        /* wait for the park itself to be counted (a waiter that re-checks in time does not park), then
           hand over one item: the parked worker must wake for it */
        uint64_t deadline = flow_now_ns() + 10000000000ull;
        while (flow_pool_worker_stats(p, 0).parked + flow_pool_worker_stats(p, 1).parked < i + 1) {
            CHECK(flow_now_ns() < deadline, "item %llu: no worker parked on the empty ring", (unsigned long long)i);
            sched_yield();
        }
        flow_ring_push_wait(c.r, &i, FLOW_FOREVER);
        while (atomic_load(&c.got) < i + 1) {
            CHECK(flow_now_ns() < deadline, "item %llu: no parked worker woke for it", (unsigned long long)i);
            sched_yield();
        }
    }
    flow_ring_close(c.r); /* close releases the parked workers: the stop path */
    flow_pool_request_stop(p);
    flow_pool_join(p);
    uint64_t parked = flow_pool_worker_stats(p, 0).parked + flow_pool_worker_stats(p, 1).parked;
    CHECK(atomic_load(&c.got) == 10, "got %llu of 10", (unsigned long long)atomic_load(&c.got));
    CHECK(parked >= 10, "workers parked %llu times, expected >= 10", (unsigned long long)parked);
    flow_pool_destroy(p);
    flow_ring_destroy(c.r);
    snprintf(g_msg, g_len, "pool workers parked %llu times on an empty ring, woken per item, released by close",
             (unsigned long long)parked);
    return FLOW_CHECK_PASS;
}

/* A pool whose start fails part-way: the threads already started are still running (blocked in a ring
   call), start returns the error at once, and closing the ring then joining releases them. Before the
   fix, start joined them itself and hung, since request_stop does not interrupt a blocked call. */
typedef struct { flow_pool *p; _Atomic int rc; _Atomic int done; } start_ctx;
static void *start_in_thread(void *a) {
    start_ctx *s = a;
    flow_error e;
    atomic_store(&s->rc, flow_pool_start(s->p, &e));
    atomic_store(&s->done, 1);
    return NULL;
}

static int check_pool_start_failure(void) {
    flow_config cfg;
    flow_config_init(&cfg, NULL);
    cfg.workers = 3;
    park_ctx c = {mk_ring(4, 8, 0, FLOW_QUEUE_RING), 0};
    flow_pool *p;
    flow_error e;
    CHECK(flow_pool_create(&cfg, park_loop, &c, &p, &e) == FLOW_OK, "create: %s", e.message);
    flow_pool_inject_start_failure(p, 2);
    start_ctx s = {p, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, start_in_thread, &s);
    uint64_t deadline = flow_now_ns() + 10000000000ull;
    while (!atomic_load(&s.done) && flow_now_ns() < deadline) sched_yield();
    int hung = !atomic_load(&s.done);
    flow_ring_close(c.r); /* releases the started workers (and a start that hung in join) */
    pthread_join(th, NULL);
    CHECK(!hung, "flow_pool_start hung joining workers blocked in a ring call");
    CHECK(atomic_load(&s.rc) == FLOW_ESYS, "start returned %s", flow_status_name(atomic_load(&s.rc)));
    flow_pool_join(p);
    flow_pool_destroy(p);
    flow_ring_destroy(c.r);
    snprintf(g_msg, g_len, "start failing after 2 of 3 threads returns at once; close + join releases them");
    return FLOW_CHECK_PASS;
}

/* ---------- configuration ---------- */

static int expect_env_error(const char *name, const char *value, const char *needle) {
    flow_config cfg;
    flow_error e;
    memset(&e, 0, sizeof e);
    flow_config_init(&cfg, NULL);
    setenv(name, value, 1);
    int rc = flow_config_apply_env(&cfg, &e);
    unsetenv(name);
    CHECK(rc == FLOW_EINVAL, "%s=\"%s\" accepted", name, value);
    char quoted[300];
    snprintf(quoted, sizeof quoted, "%s=\"%.64s\"", name, value);
    CHECK(strstr(e.message, quoted) || (!*value && strstr(e.message, name)), "%s=\"%s\": message does not name it: %s", name, value, e.message);
    CHECK(strstr(e.message, needle), "%s=\"%s\": message lacks \"%s\": %s", name, value, needle, e.message);
    return FLOW_CHECK_PASS;
}

static int check_config(void) {
    const char *vars[] = {"FLOW_WORKERS", "FLOW_CPUS", "FLOW_PIN", "FLOW_SPIN_NS", "FLOW_SCHED", "FLOW_SLICE_NS"};
    for (int i = 0; i < 6; i++) unsetenv(vars[i]);
    flow_config cfg;
    flow_error e;
    CHECK(flow_config_init(&cfg, &e) == FLOW_OK, "init: %s", e.message);
    flow_cpuset allowed;
    flow_cpuset_allowed(&allowed, NULL);
    CHECK(cfg.workers == flow_cpuset_count(&allowed) && cfg.pin == FLOW_PIN_NONE && cfg.spin_ns == FLOW_DEFAULT_SPIN_NS &&
              cfg.sched == FLOW_SCHED_NORMAL && cfg.slice_ns == FLOW_DEFAULT_SLICE_NS,
          "defaults: workers %u pin %d spin %lld sched %d slice %lld", cfg.workers, cfg.pin, (long long)cfg.spin_ns,
          (int)cfg.sched, (long long)cfg.slice_ns);
    /* cpulist grammar */
    flow_cpuset s;
    CHECK(flow_cpulist_parse("0-3,8,10-14:2", &s, "FLOW_CPUS", &e) == FLOW_OK, "parse: %s", e.message);
    char buf[64];
    flow_cpulist_format(&s, buf, sizeof buf);
    CHECK(strcmp(buf, "0-3,8,10,12,14") == 0 && flow_cpuset_count(&s) == 8, "0-3,8,10-14:2 became %s", buf);
    const char *bad_lists[] = {"0-x", "x", "1,", ",1", "1-", "3-1", "1-4:0", "0 1", "-1", "1--2", "0-3:", "5000"};
    for (size_t i = 0; i < sizeof bad_lists / sizeof bad_lists[0]; i++)
        CHECK(flow_cpulist_parse(bad_lists[i], &s, "FLOW_CPUS", &e) == FLOW_EINVAL, "cpulist \"%s\" accepted", bad_lists[i]);
    /* every variable with garbage, empty and out-of-range values */
    int rc;
    if ((rc = expect_env_error("FLOW_CPUS", "0-x", "not a CPU list")) ||
        (rc = expect_env_error("FLOW_CPUS", "", "empty")) ||
        (rc = expect_env_error("FLOW_CPUS", "3-1", "backwards")) ||
        (rc = expect_env_error("FLOW_CPUS", "1-4:0", "stride 0")) ||
        (rc = expect_env_error("FLOW_CPUS", "99999", "out of range")) ||
        (rc = expect_env_error("FLOW_WORKERS", "abc", "not a whole number")) ||
        (rc = expect_env_error("FLOW_WORKERS", "", "empty")) ||
        (rc = expect_env_error("FLOW_WORKERS", "0", "out of range")) ||
        (rc = expect_env_error("FLOW_WORKERS", "-2", "not a whole number")) ||
        (rc = expect_env_error("FLOW_WORKERS", "5000", "out of range")) ||
        (rc = expect_env_error("FLOW_WORKERS", "4 ", "not a whole number")) ||
        (rc = expect_env_error("FLOW_PIN", "tight", "expected none, compact or spread")) ||
        (rc = expect_env_error("FLOW_PIN", "", "expected none")) ||
        (rc = expect_env_error("FLOW_SCHED", "fifo", "expected normal, batch or idle")) ||
        (rc = expect_env_error("FLOW_SCHED", "", "expected normal")) ||
        (rc = expect_env_error("FLOW_SPIN_NS", "1e3", "not a whole number")) ||
        (rc = expect_env_error("FLOW_SPIN_NS", "", "empty")) ||
        (rc = expect_env_error("FLOW_SPIN_NS", "99999999999", "out of range")) ||
        (rc = expect_env_error("FLOW_SPIN_NS", "184467440737095516160", "not a whole number")) ||
        (rc = expect_env_error("FLOW_SLICE_NS", "99999", "out of range (0, or 100000-100000000)")) ||
        (rc = expect_env_error("FLOW_SLICE_NS", "100000001", "out of range")) ||
        (rc = expect_env_error("FLOW_SLICE_NS", "5ms", "not a whole number")) ||
        (rc = expect_env_error("FLOW_SLICE_NS", "", "empty")))
        return rc;
    /* a CPU outside the allowed set */
    uint32_t outside = FLOW_CPU_SETSIZE - 1;
    while (flow_cpuset_has(&allowed, outside)) outside--;
    snprintf(buf, sizeof buf, "%u", outside);
    if ((rc = expect_env_error("FLOW_CPUS", buf, "not in this process's allowed set"))) return rc;
    /* good values apply; FLOW_CPUS sets the default worker count unless FLOW_WORKERS is given */
    uint32_t first = 0;
    while (!flow_cpuset_has(&allowed, first)) first++;
    snprintf(buf, sizeof buf, "%u", first);
    setenv("FLOW_CPUS", buf, 1);
    setenv("FLOW_PIN", "spread", 1);
    setenv("FLOW_SPIN_NS", "0", 1);
    setenv("FLOW_SCHED", "idle", 1);
    setenv("FLOW_SLICE_NS", "0", 1);
    flow_config_init(&cfg, NULL);
    rc = flow_config_apply_env(&cfg, &e);
    CHECK(rc == FLOW_OK && cfg.workers == 1 && cfg.pin == FLOW_PIN_SPREAD && cfg.spin_ns == 0 &&
              cfg.sched == FLOW_SCHED_IDLE && cfg.slice_ns == 0 && flow_cpuset_count(&cfg.cpus) == 1,
          "good env: rc %d workers %u sched %d slice %lld", rc, cfg.workers, (int)cfg.sched, (long long)cfg.slice_ns);
    setenv("FLOW_SLICE_NS", "100000", 1);
    flow_config_init(&cfg, NULL);
    rc = flow_config_apply_env(&cfg, &e);
    CHECK(rc == FLOW_OK && cfg.slice_ns == FLOW_MIN_SLICE_NS, "FLOW_SLICE_NS=100000: rc %d slice %lld", rc,
          (long long)cfg.slice_ns);
    setenv("FLOW_WORKERS", "3", 1);
    flow_config_init(&cfg, NULL);
    rc = flow_config_apply_env(&cfg, &e);
    CHECK(rc == FLOW_OK && cfg.workers == 3, "FLOW_WORKERS with FLOW_CPUS: workers %u", cfg.workers);
    for (int i = 0; i < 6; i++) unsetenv(vars[i]);
    CHECK(flow_config_set(&cfg, "FLOW_THREADS", "2", &e) == FLOW_EINVAL && strstr(e.message, "FLOW_THREADS"),
          "unknown variable: %s", e.message);
    cfg.workers = 0;
    CHECK(flow_config_validate(&cfg, &e) == FLOW_EINVAL && strstr(e.message, "workers=0"), "workers 0: %s", e.message);
    flow_config_init(&cfg, NULL);
    cfg.slice_ns = 50000;
    CHECK(flow_config_validate(&cfg, &e) == FLOW_EINVAL && strstr(e.message, "slice_ns=50000"), "slice 50000: %s",
          e.message);
    cfg.workers = 0;
    flow_pool *p;
    CHECK(flow_pool_create(&cfg, pool_loop, NULL, &p, &e) == FLOW_EINVAL && p == NULL, "pool with 0 workers created");
    snprintf(g_msg, g_len, "defaults, cpulist grammar, 24 bad values each named in its error, good values applied");
    return FLOW_CHECK_PASS;
}

/* ---------- registry ---------- */

typedef struct { const char *name; int (*fn)(void); } check_entry;
static const check_entry checks[] = {
    {"ring_basic", check_ring_basic},
    {"exact_single", check_exact_single},
    {"exact_batch", check_exact_batch},
    {"exact_blocking", check_exact_blocking},
    {"exact_blocking_batch", check_exact_blocking_batch},
    {"exact_10m", check_exact_10m},
    {"urcu_exact", check_urcu_exact},
    {"pop_seq", check_pop_seq},
    {"resume_watermark", check_resume_watermark},
    {"close_blocked", check_close_blocked},
    {"close_midstream", check_close_midstream},
    {"wake_one", check_wake_one},
    {"park_wake", check_park_wake},
    {"callbacks", check_callbacks},
    {"unawait_race", check_unawait_race},
    {"serving", check_serving},
    {"pool", check_pool},
    {"pool_parks", check_pool_parks},
    {"pool_start_failure", check_pool_start_failure},
    {"config", check_config},
};

int flow_check_count(void) { return (int)(sizeof checks / sizeof checks[0]); }
const char *flow_check_name(int i) { return i >= 0 && i < flow_check_count() ? checks[i].name : NULL; }

int flow_check_run(const char *name, char *msg, size_t len) {
    g_msg = msg;
    g_len = len;
    if (len) msg[0] = 0;
    for (int i = 0; i < flow_check_count(); i++)
        if (strcmp(checks[i].name, name) == 0) return checks[i].fn();
    snprintf(msg, len, "no check named %s", name);
    return FLOW_CHECK_FAIL;
}

size_t flow_check_heap_in_use(void) {
    malloc_trim(0);
    return mallinfo2().uordblks;
}
