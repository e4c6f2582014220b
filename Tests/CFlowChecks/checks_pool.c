/*
 * checks_pool.c — the worker pool: its life cycle, pinning, scheduling class, nice value and slice,
 * parking inside ring calls, a start that fails part-way.
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

int check_pool(void) {
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

int check_pool_parks(void) {
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

int check_pool_start_failure(void) {
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
