/*
 * checks_park.c — waiting and waking: park / wake round trips, one waiter woken, callback waiters, a
 * waiter taken back while a notify detaches it, pool threads that serve jobs while they wait, producers
 * woken only at the resume size.
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

int check_park_wake(void) {
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

int check_wake_one(void) {
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

int check_callbacks(void) {
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

int check_unawait_race(void) {
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

int check_serving(void) {
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

/* ---------- a serving pusher overtaken by a ring's capacity reserves the room
              ([an overtaken pusher reserves the room], [a starving pusher gets the room]) ---------- */

#define FAIR_CAP 64
#define FAIR_BATCH 16
#define FAIR_B_TOTAL (400 * FAIR_CAP)
#define FAIR_B 0x8000000000000000ull /* B's items carry this bit; A's do not */

typedef struct {
    flow_ring *r;
    uint64_t *log; /* every item popped, in pop (queue) order */
    _Atomic uint64_t logged;
    _Atomic uint64_t b_pushed; /* B's items whose push has returned */
} fair_ctx;

/* Pop up to a batch and append it to the log; one thread pops at a time (the job, then the drain after it). */
static int64_t fair_log(fair_ctx *c) {
    uint64_t buf[FAIR_BATCH];
    int64_t k = flow_ring_pop_n(c->r, buf, FAIR_BATCH);
    if (k <= 0) return k;
    uint64_t at = atomic_load(&c->logged);
    memcpy(c->log + at, buf, (size_t)k * sizeof buf[0]);
    atomic_store(&c->logged, at + (uint64_t)k);
    return k;
}

/* The consumer, as the job a waiting pusher runs: pop a batch, then hold the thread a while (a commit), during
 * which the room it made is there for whoever pushes first. */
static int fair_run_one(void *a) {
    fair_ctx *c = a;
    if (fair_log(c) <= 0) return 0;
    uint64_t until = flow_now_ns() + 200000;
    while (flow_now_ns() < until) sched_yield();
    return 1;
}
static int fair_pending(void *a) { return flow_ring_size_approx(((fair_ctx *)a)->r) > 0; }

/* B: a producer that waits by spinning and parking (no jobs), woken by every pop (resume at any free slot). */
static void *fair_producer(void *a) {
    fair_ctx *c = a;
    uint64_t buf[FAIR_BATCH];
    for (uint64_t i = 0; i < FAIR_B_TOTAL; i += FAIR_BATCH) {
        for (uint64_t j = 0; j < FAIR_BATCH; j++) buf[j] = FAIR_B | (i + j);
        if (flow_ring_push_all_wait(c->r, buf, FAIR_BATCH, -1, NULL) != FAIR_BATCH) break;
        atomic_fetch_add(&c->b_pushed, FAIR_BATCH);
    }
    return NULL;
}

int check_serving_fair(void) {
    fair_ctx c = {mk_ring(FAIR_CAP, 8, 20000, FLOW_QUEUE_RING), malloc((FAIR_B_TOTAL + FAIR_CAP) * 8), 0, 0};
    flow_parker *parker = flow_parker_create();
    flow_jobs jobs = {fair_run_one, fair_pending, &c, parker};
    pthread_t th;
    pthread_create(&th, NULL, fair_producer, &c);
    uint64_t deadline = flow_now_ns() + 30000000000ull;
    while (flow_ring_size_approx(c.r) < FAIR_CAP && flow_now_ns() < deadline) sched_yield(); /* B fills it */
    /* A: one push of a ring's worth, serving the consumer's job while the ring is full */
    uint64_t started = atomic_load(&c.b_pushed), mine[FAIR_CAP];
    for (uint64_t j = 0; j < FAIR_CAP; j++) mine[j] = j;
    int64_t pushed = 0;
    int64_t k = flow_ring_push_all_serving(c.r, mine, FAIR_CAP, &jobs, &pushed);
    CHECK(k == FAIR_CAP, "A's serving push ended with %lld (%lld pushed)", (long long)k, (long long)pushed);
    for (;;) { /* drain: B goes on, then ends */
        if (fair_log(&c) > 0) {
            continue;
        } else if (atomic_load(&c.b_pushed) == FAIR_B_TOTAL) {
            break;
        } else {
            CHECK(flow_now_ns() < deadline + 30000000000ull, "B stopped at %llu items",
                  (unsigned long long)atomic_load(&c.b_pushed));
            sched_yield();
        }
    }
    pthread_join(th, NULL);
    uint64_t total = atomic_load(&c.logged), last_a = 0, a_seen = 0, overtaking = 0;
    CHECK(total == FAIR_B_TOTAL + FAIR_CAP, "popped %llu items, pushed %llu", (unsigned long long)total,
          (unsigned long long)(FAIR_B_TOTAL + FAIR_CAP));
    for (uint64_t i = 0; i < total; i++)
        if (!(c.log[i] & FAIR_B)) {
            CHECK(c.log[i] == a_seen, "A's item %llu came as %llu", (unsigned long long)a_seen,
                  (unsigned long long)c.log[i]);
            a_seen++;
            last_a = i;
        }
    for (uint64_t i = 0; i < last_a; i++)
        if ((c.log[i] & FAIR_B) && (c.log[i] & ~FAIR_B) >= started) overtaking++;
    /* A reserves the room once B has pushed a ring's capacity since A began to wait; one claim of B's may race
       with the reservation, and one may have been under way when A read B's count */
    CHECK(overtaking <= FAIR_CAP + 2 * FAIR_BATCH,
          "B's items went in before A's last one %llu times after A began to wait (at most %d: a ring and two batches)",
          (unsigned long long)overtaking, FAIR_CAP + 2 * FAIR_BATCH);
    flow_ring_destroy(c.r);
    flow_parker_destroy(parker);
    free(c.log);
    snprintf(g_msg, g_len, "a serving push overtaken by %llu items of a producer that spins (bound %d), then in",
             (unsigned long long)overtaking, FAIR_CAP + 2 * FAIR_BATCH);
    return FLOW_CHECK_PASS;
}

/* ---------- producer hysteresis (resume_producers_at) ---------- */

int check_resume_watermark(void) {
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
